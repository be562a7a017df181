"""``syqure-wf party``'s progress line, printed at a steady pace while it
runs and once at its end: per peer, the messages and bytes sent and
received, and whom it waits on. From the party's own status record (what
``run``'s table shows); ``line`` is pure, ``Ticker`` its thread."""
from __future__ import annotations

import threading
from typing import Callable

EVERY = 10.0  # seconds between two lines


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def line(record: dict | None) -> str:
    """One line of a party's status record (its channels' counters)."""
    record = record or {}
    chans = [c for c in (record.get("channels") or {}).values() if isinstance(c, dict)]
    state = record.get("state") or "starting"
    if not chans:
        return f"progress: {state}, no channel open yet"
    peers = [f"peer {c.get('peer')}: sent {c.get('sent_messages', 0)} msgs/{size(c.get('sent_bytes', 0))}, "
             f"received {c.get('received_messages', 0)} msgs/{size(c.get('received_bytes', 0))}"
             for c in sorted(chans, key=lambda c: str(c.get("peer")))]
    waits = [f"{c.get('peer')} ({c['waiting_s']:.0f} s)" for c in chans
             if isinstance(c.get("waiting_s"), (int, float)) and c["waiting_s"] >= 1]
    return f"progress: {state}; " + "; ".join(peers) + (f"; waiting on {', '.join(waits)}" if waits else "")


class Ticker:
    """Says ``line(read())`` every ``every`` seconds until stopped, and once more then."""

    def __init__(self, read: Callable[[], dict | None], say: Callable[[str], None], every: float = EVERY) -> None:
        self.read, self.say, self.every = read, say, every
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Ticker":
        if self.every > 0:
            self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop_event.wait(self.every):
            self._say()

    def _say(self) -> None:
        try:
            self.say(line(self.read()))
        except Exception:  # noqa: BLE001 - a progress line never fails a party
            pass

    def stop(self) -> None:
        self.stop_event.set()
        if self.every > 0:
            self._say()
