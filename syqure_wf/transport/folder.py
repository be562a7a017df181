"""A message folder, whatever its layout: what every layout shares
(``Layout``). The layouts: ``shared.py`` (one folder, the reader deletes),
``syftbox.py`` (each sender's datasite, the writer deletes), each sealed by
``seal.py`` when the run seals.

Thin adapters around ``protocol``: they gather what is on disk into a Slot
for the judge (``protocol/judge.py``) and never follow a symbolic link.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import SyqureError
from ..files.private import read_small, write_private
from .protocol import inbound, names, outbound

# names an inbox may hold: far more than a writer has ahead of its reader, far fewer
# than a peer flooding it would make every look list (and hold in memory)
MAX_LISTED = 100_000


def listed(folder, cap: int | None = None) -> list[str]:
    """The names in a message folder; SyqureError once there are more than
    ``cap`` (MAX_LISTED: a peer's flood, not a run): never read whole."""
    cap = MAX_LISTED if cap is None else cap
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            if len(out) >= cap:
                raise SyqureError(f"{folder} holds more than {cap} files: not a run's messages")
            out.append(entry.name)
    return out


class Layout:
    """What every layout shares: its parties, the message files of a folder,
    and what a party may remove of its own."""

    pid: int
    parties: int
    reused_folder = False  # the caller names the run folder and reruns reuse it: a rerun clears this party's own earlier files
    synced = False  # a peer's files arrive as it writes them
    # Ends of stream are ``.end`` files; a sealed run (seal.SealedFolder) seals
    # them as messages instead, and an ``.end`` file there is nobody's: unseen.
    plain_ends = True

    def peers(self) -> list[int]:
        return [p for p in range(self.parties) if p != self.pid]

    def listing(self, folder) -> dict[int, set[str]]:
        try:
            present = names.group(listed(folder))
        except FileNotFoundError:
            return {}
        if not self.plain_ends:
            for seq in [s for s, kinds in present.items() if names.END in kinds]:
                present[seq].discard(names.END)
                if not present[seq]:
                    del present[seq]
        return present

    def refuse_leftovers(self, folder, remedy: str) -> None:
        """A writer's fresh outbox must be empty: anything there is an earlier run's."""
        left = names.leftovers(listed(folder))
        if left:
            raise SyqureError(f"{folder} holds {len(left)} message file(s) of an earlier run "
                              f"({left[0]}, ...): run 'syqure-wf clean' or {remedy}")

    def writer_stamp(self, peer: int) -> str | None:
        """The incarnation token of the proxy that writes to us from ``peer``."""
        raw = read_small(Path(self.inbox(peer)) / names.WRITER_STAMP, 256)
        return raw.decode(errors="replace").strip() if raw else None

    def stamp_writer(self, incarnation: str) -> None:
        """Say in every outbox which proxy process writes there (after the leftovers check)."""
        for peer in self.peers():
            write_private(Path(self.outbox(peer)) / names.WRITER_STAMP, incarnation.encode())

    def trust_writer(self, peer: int, incarnation: str) -> None:
        """``peer``'s running proxy, proven to write our inbox (layouts whose
        files name their writer use it: syftbox)."""

    def trust_reader(self, peer: int, incarnation: str) -> None:
        """``peer``'s running proxy, seen alive (syftbox: its consumption records count)."""

    def native_peer(self, peer: int, since: float) -> str | None:
        """Why ``peer`` speaks another file protocol here, or None (the syftbox layout knows the Sequre fork's)."""
        return None

    def refuse_early_inbox(self) -> None:
        """Without status records to judge a writer by (seed sbproxy peers), a
        message already in an inbox at start may be a dead run's: refused."""
        for peer in self.peers():
            self.refuse_leftovers(self.inbox(peer), "give every proxy the same --run-id")

    def removable(self) -> list:
        """Folders whose message files this party may remove after a failed run."""
        return [self.outbox(p) for p in self.peers()]

    def release(self) -> None:
        """Give back what the layout holds while a proxy runs."""

    def reap(self, peer: int) -> None:
        """Remove what ``peer`` consumed of ours, where the writer does (syftbox)."""

    def progress_path(self) -> Path:
        """Where this party's proxy keeps its counters (never synced)."""
        return Path(self._tmp) / f"party{self.pid}.progress"

    def resume_outbox(self, peer: int, next_seq: int) -> int:
        """The next seq to write after a restart: past any marker already out."""
        return outbound.resume_seq(self.listing(self.outbox(peer)), next_seq)

    def drop_delivered(self, peer: int, next_seq: int) -> None:
        """Remove what a killed proxy delivered but had not yet removed."""
        for seq, kind in inbound.Inbox(next_seq).delivered_before(self.listing(self.inbox(peer))):
            self.consume(peer, seq, kind)

    def discard_unconsumed(self) -> int:
        """Remove the message files of a failed run that nobody will read."""
        removed = 0
        for folder in self.removable():
            for name in names.leftovers(listed(folder)):
                os.unlink(os.path.join(folder, name))
                removed += 1
        return removed
