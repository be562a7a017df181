"""The shared layout on disk: one folder holds every direction (the seed's).

Thin adapter around ``protocol``: it gathers what is on disk into a Slot
for the judge (``protocol/judge.py``),
writes message files atomically (temporary name, then rename, then the
marker) and never follows a symbolic link. Folders are 0700, files 0600:
they hold secret shares.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import SyqureError
from .files import (_CREATE, _READ, FILE_MODE, FilePool, MessageWriter, _exists, _read_upto, listed,
                    make_private_dir, read_small, remove_file, write_private)
from .protocol import inbound, names, outbound
from .protocol.framing import DEFAULT_MAX_MESSAGE, HEADER
from .protocol.judge import WAIT_ABSENT, Slot, Verdict, judge

INLINE_MAX = 512 << 10  # larger messages go to the socket by sendfile, not through memory


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


class SharedFolder(Layout):
    """Every direction of a run under one ``data_dir`` (layout ``shared``)."""

    layout = "shared"
    arrivals = "arrivals"  # files appear by rename: no need to watch writes in place

    def __init__(self, data_dir: str | os.PathLike, pid: int, parties: int,
                 run_id: str | None = None, max_message: int = DEFAULT_MAX_MESSAGE):
        self.root = Path(data_dir)
        self.pid, self.parties = pid, parties
        self.run_id = run_id
        self.max_message = max_message
        self._run_checked: set[int] = set()
        # string paths: the hot path joins names to them for every message
        self._out = {p: str(self.outbox(p)) for p in self.peers()}
        self._in = {p: str(self.inbox(p)) for p in self.peers()}
        self._tmp = str(self.root / ".tmp")  # same file system: renames from it are atomic
        # per run: two runs in one folder never share a pool or a progress record
        self._own = f"party{pid}" + (f".{run_id}" if run_id else "")
        self.pool = FilePool(os.path.join(self._tmp, self._own))

    # -- where things are
    def outbox(self, peer: int) -> Path:
        return self.root / names.direction_name(self.pid, peer)

    def inbox(self, peer: int) -> Path:
        return self.root / names.direction_name(peer, self.pid)

    def status_dir(self) -> Path:
        return self.root / names.STATUS

    def status_dir_of(self, pid: int) -> Path:
        return self.status_dir()  # one folder holds every party's record

    def removable(self) -> list:
        return [f for p in self.peers() for f in (self._out[p], self._in[p])]  # the reader deletes

    # -- start of a run
    def prepare(self, resume: bool = False) -> None:
        """Create this party's folders and refuse messages of an earlier run
        (unless resuming this run: then they are this proxy's own)."""
        make_private_dir(self.root)
        for peer in self.peers():
            make_private_dir(self.outbox(peer))
            make_private_dir(self.inbox(peer))
        make_private_dir(self.status_dir())
        make_private_dir(Path(self._tmp))
        for peer in self.peers():
            if not resume:
                self.refuse_leftovers(self.outbox(peer), "use a new data folder or run id")
        for peer in self.peers():
            if self.run_id:
                write_private(self.outbox(peer) / names.RUN_STAMP, self.run_id.encode())
            if self.run_id and names.leftovers(listed(self.inbox(peer))):
                self.check_inbox_run(peer)
        self.pool.reset()

    def progress_path(self) -> Path:
        return Path(self._tmp) / f"{self._own}.progress"

    def check_inbox_run(self, peer: int) -> None:
        """Messages in an inbox belong to this run only if their writer stamped it."""
        if not self.run_id or peer in self._run_checked:
            return
        folder = self.inbox(peer)
        stamp = read_small(folder / names.RUN_STAMP)
        found = stamp.decode(errors="replace").strip() if stamp is not None else None
        if found != self.run_id:
            what = f"run {found!r}" if found else "a run without a run id"
            raise SyqureError(f"{folder} holds messages of {what}, not of run {self.run_id!r}: "
                              "run 'syqure-wf clean' or use a new data folder")
        self._run_checked.add(peer)

    # -- writing
    def open_message(self, peer: int, seq: int) -> MessageWriter:
        return MessageWriter(self._out[peer], seq, self._tmp, self.pool)

    def release(self) -> None:
        self.pool.release()

    def write_end(self, peer: int, seq: int) -> None:
        os.close(os.open(os.path.join(self._out[peer], names.file_name(seq, names.END)),
                         _CREATE, FILE_MODE))

    # -- reading
    def look(self, peer: int, seq: int, peek: bool = False):
        """Judge slot ``seq`` of the inbox from ``peer``. With DELIVER comes the
        content (header included): bytes for a small message, an open file for
        a large one (the caller sends it with sendfile and closes it), nothing
        when ``peek``. All of it through one descriptor, never through a link."""
        folder = self._in[peer]
        ready = _exists(os.path.join(folder, names.file_name(seq, names.READY)))
        end = not ready and self.plain_ends and _exists(os.path.join(folder, names.file_name(seq, names.END)))
        if not ready and not end:
            return WAIT_ABSENT, None
        path = os.path.join(folder, names.file_name(seq, names.MSG))
        try:
            fd = os.open(path, _READ)
        except FileNotFoundError:
            return judge(Slot(seq, ready, end), self.max_message), None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return judge(Slot(seq, ready, end, "link"), self.max_message), None
            raise
        keep = False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "dir" if stat.S_ISDIR(st.st_mode) else "other"
                return judge(Slot(seq, ready, end, kind), self.max_message), None
            large = st.st_size > INLINE_MAX
            # A small file is read whole at once: the header comes with it.
            content = None if large else _read_upto(fd, st.st_size)
            header = os.pread(fd, HEADER.size, 0) if large else bytes(content[:HEADER.size])
            decision = judge(Slot(seq, ready, end, "file", st.st_size, header),
                                     self.max_message)
            if decision.verdict is not Verdict.DELIVER or peek:
                return decision, None
            if large:
                keep = True
                return decision, os.fdopen(fd, "rb")
            return decision, content
        finally:
            if not keep:
                os.close(fd)

    def consume(self, peer: int, seq: int, what: str) -> None:
        """Remove a delivered message (marker first; the message file goes to
        the pool) or end marker."""
        folder = self._in[peer]
        if what != names.MSG:
            remove_file(os.path.join(folder, names.file_name(seq, names.END)))
            return
        remove_file(os.path.join(folder, names.file_name(seq, names.READY)))
        path = os.path.join(folder, names.file_name(seq, names.MSG))
        if not self.pool.give(path):
            remove_file(path)

    def unconsumed(self, peer: int, next_seq: int) -> list[int]:
        return outbound.unconsumed(self.listing(self.outbox(peer)), next_seq)

    def resume_outbox(self, peer: int, next_seq: int) -> int:
        # placed (counted) but not announced when the proxy was killed: announce it
        last = os.path.join(self._out[peer], names.file_name(next_seq - 1, names.MSG))
        ready = os.path.join(self._out[peer], names.file_name(next_seq - 1, names.READY))
        if next_seq > 0 and _exists(last) and not _exists(ready):
            self.pool.mark(ready)
        return super().resume_outbox(peer, next_seq)


def clean(data_dir: str | os.PathLike) -> int:
    """Remove message, marker, stamp and status files of a run; returns how many.
    Only names this project writes are removed; links are removed, never followed."""
    root = Path(data_dir)
    removed = 0
    if not root.is_dir() or root.is_symlink():
        return 0
    for entry in os.scandir(root):
        if entry.is_symlink() or not entry.is_dir():
            continue
        is_direction = names.parse_direction(entry.name) is not None
        if entry.name == ".tmp":
            removed += _clean_tmp(entry.path)
            continue
        if not (is_direction or entry.name == "status"):
            continue
        for f in os.scandir(entry.path):
            n = f.name
            if (names.parse_name(n) or n in (names.RUN_STAMP, names.WRITER_STAMP) or n.endswith(".tmp")
                    or (entry.name == "status" and n.endswith(".json"))):
                os.unlink(f.path)
                removed += 1
    return removed


def _clean_tmp(folder: str) -> int:
    """Half-written messages, the proxies' pools of consumed files and progress."""
    removed = 0
    for f in os.scandir(folder):
        if f.is_symlink():
            continue
        if f.is_file() and f.name.endswith((".tmp", ".progress")):
            os.unlink(f.path)
            removed += 1
        elif f.is_dir() and f.name.startswith("party"):
            removed += FilePool(f.path).release()
    return removed
