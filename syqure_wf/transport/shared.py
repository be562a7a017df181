"""The shared layout (the seed's): one folder holds every direction of a
run, and the reader deletes what it consumed (into ``pool.py``, whose files
its writer fills again), and its message writer. Files appear by rename
(temporary name, then rename, then the marker) and are never read through
a symbolic link. Folders are 0700, files 0600: they hold secret shares.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SyqureError
from ..files.private import CREATE, FILE_MODE, READ, make_private_dir, read_small, remove_file, write_private
from .folder import Content, Folder, Layout, MessageWriter, Publication, listed
from .pool import FilePool
from .protocol import names, outbound
from .protocol.framing import DEFAULT_MAX_MESSAGE, HEADER
from .protocol.judge import WAIT_ABSENT, Decision, Slot, Verdict, judge

MSG, READY, END = names.MSG, names.READY, names.END
INLINE_MAX = 512 << 10  # larger messages go to the socket by sendfile, not through memory


class SharedFolder(Layout):
    """Every direction of a run under one ``data_dir`` (layout ``shared``)."""

    layout = "shared"
    reader_removes = True
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
        self._tmp: str = str(self.root / ".tmp")  # same file system: renames from it are atomic
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
    def open_message(self, peer: int, seq: int) -> SharedWriter:
        return SharedWriter(self._out[peer], seq, self._tmp, self.pool)

    def release(self) -> None:
        self.pool.release()

    def write_end(self, peer: int, seq: int) -> None:
        os.close(os.open(os.path.join(self._out[peer], names.file_name(seq, names.END)),
                         CREATE, FILE_MODE))

    # -- reading
    def look(self, peer: int, seq: int, peek: bool = False) -> tuple[Decision, Content]:
        """Judge slot ``seq`` of the inbox from ``peer``. With DELIVER comes the
        content (header included): bytes for a small message, an open file for
        a large one (the caller sends it with sendfile and closes it), nothing
        when ``peek``. All of it through one descriptor, never through a link."""
        folder = self._in[peer]
        ready = _exists(_slot(folder, seq, READY))
        end = not ready and self.plain_ends and _exists(_slot(folder, seq, END))
        if not ready and not end:
            return WAIT_ABSENT, None
        path = _slot(folder, seq, MSG)
        try:
            fd = os.open(path, READ)
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
            header = os.pread(fd, HEADER.size, 0) if content is None else bytes(content[:HEADER.size])
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
        if what != MSG:
            remove_file(_slot(folder, seq, END))
            return
        remove_file(_slot(folder, seq, READY))
        path = _slot(folder, seq, MSG)
        if not self.pool.give(path):
            remove_file(path)

    def unconsumed(self, peer: int, next_seq: int) -> list[int]:
        return outbound.unconsumed(self.listing(self.outbox(peer)), next_seq)

    def _announce(self, peer: int, seq: int) -> None:
        self.pool.mark(os.path.join(self._out[peer], names.file_name(seq, names.READY)))


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


class SharedWriter(Publication):
    """One outgoing message file being written; ``commit`` publishes it.
    Small messages go to disk in one write at commit."""

    BUFFER = 256 << 10
    order = outbound.publication(SharedFolder.reader_removes)

    def __init__(self, folder: str, seq: int, tmp_dir: str, pool: FilePool):
        self.folder, self.seq, self.pool = folder, seq, pool
        reused = pool.take()
        if reused:
            self.tmp, self.fd, self._old_size = reused
        else:
            # Written outside the watched folder, then renamed in: the reader wakes
            # once per message, for its marker, not for every step of the writing.
            self.tmp = os.path.join(tmp_dir, f"{os.path.basename(folder)}.{seq:08d}.msg.tmp")
            self.fd = os.open(self.tmp, CREATE, FILE_MODE)
            self._old_size = 0
        self.size = 0
        self._buffer = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if len(self._buffer) + len(data) < self.BUFFER:
            self._buffer += data
            return
        self._flush()
        self._write(data)

    def _write(self, data) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _flush(self) -> None:
        if self._buffer:
            self._write(self._buffer)
            self._buffer.clear()

    def _place(self) -> None:
        """The whole file renamed in (``commit`` counts it, then marks it: Publication)."""
        self._flush()
        if self._old_size > self.size:
            os.ftruncate(self.fd, self.size)
        os.close(self.fd)
        self.fd = -1
        os.rename(self.tmp, _slot(self.folder, self.seq, MSG))

    def _mark(self) -> None:
        self.pool.mark(_slot(self.folder, self.seq, READY))

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        remove_file(self.tmp)


def _slot(folder: str, seq: int, kind: str) -> str:
    """The path of a message file (``names.file_name``) in ``folder`` (a str, no
    trailing slash): made several times a message, so not by ``os.path.join``."""
    return f"{folder}/{seq:08d}.{kind}"


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
        return True
    except FileNotFoundError:
        return False


def _read_upto(fd: int, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            break
        got += n
    return buf if got == size else buf[:got]


if TYPE_CHECKING:  # the port's Protocols, as mypy checks them
    def _ports(layout: SharedFolder, writer: SharedWriter) -> tuple[Folder, MessageWriter]:
        return layout, writer
