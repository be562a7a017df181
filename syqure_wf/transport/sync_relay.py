"""The sync probe's verdicts carried into a party's network namespace.

A party in a namespace of its own (run/isolation.py) reaches neither its
site's SyftBox client (the host's loopback) nor its server, so it cannot
ask whether its sync works. Before it enters the namespace, its runner
starts a relay that stays on the host's network: it runs the probe
(``sync_health.ClientProbe``) every round and writes each verdict, with
when it was made, to an owner-only file in the party's private logs folder
(never a synced one), atomically. Inside, the proxy reads that file in
place of probing (``RelayedProbe``); a missing, stale, foreign or malformed
file is no evidence, as a client that cannot be found. The relay carries
verdicts only: what they mean stays with the proxy's session
(``protocol/session.py``: ``SyncVerdict``). It dies with the party (PR_SET_PDEATHSIG, and a look at its
parent every round)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..errors import SyqureError
from ..files.private import make_private_dir, read_small, write_private
from ..files.peer_json import json_of

STALE = 20.0  # seconds: an older verdict is no evidence (a round takes at most ~8 s: two 3 s asks)
MAX_RELAY = 4096  # bytes: a verdict is a line; anything bigger is not one
MAX_REASON = 300  # characters of a problem kept


def relay_path(logs_dir: Path, pid: int) -> Path:
    """Where party ``pid``'s relay writes: its runner's private logs folder."""
    return logs_dir / f"party-{pid}.sync.json"


def verdict(problem: str | None, now: float) -> bytes:
    import json

    return json.dumps({"problem": problem, "at": now}).encode()


def take(data: bytes | None, now: float) -> str | None:
    """The problem a relay file's bytes say (None: up, or no evidence)."""
    value, _ = json_of(data)
    if not isinstance(value, dict):
        return None
    at, problem = value.get("at"), value.get("problem")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= now - at <= STALE:
        return None
    if not isinstance(problem, str) or not problem:
        return None
    return "".join(c if c.isprintable() else "?" for c in problem[:MAX_REASON])


class RelayedProbe:
    """A probe (as ``sync_health.ClientProbe``) that reads the relay's last verdict."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self) -> str | None:
        try:
            st = os.lstat(self.path)
            if st.st_uid != os.getuid():  # written by the party's own runner, or taken as nothing
                return None
            return take(read_small(self.path, MAX_RELAY), time.monotonic())
        except (OSError, SyqureError):
            return None


def prepare(logs_dir: Path, pid: int, folder: Path) -> list[str]:
    """The relay's command for party ``pid``, its folder made and an earlier
    run's verdict gone (not this run's evidence); started by run/isolation.py."""
    make_private_dir(logs_dir)
    path = relay_path(logs_dir, pid)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    return [sys.executable, "-m", "syqure_wf.transport.sync_relay", str(folder), str(path), str(os.getpid())]


def relay(folder: Path, path: Path, parent: int) -> None:
    """The relay's loop: probe, write the verdict, until the party is gone."""
    from .sync_health import SYNC_PROBE, ClientProbe

    probe = ClientProbe(folder)
    while os.getppid() == parent:
        try:
            write_private(path, verdict(probe(), time.monotonic()))
        except OSError:  # its folder gone (the run cleaned up): the party reads no evidence
            pass
        time.sleep(SYNC_PROBE)


if __name__ == "__main__":
    try:
        relay(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
    except KeyboardInterrupt:
        pass
