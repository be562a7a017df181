"""The shared layout on disk: one folder holds every direction (the seed's).

Thin adapter around ``mailbox``: it gathers what is on disk into a Slot,
writes message files atomically (temporary name, then rename, then the
marker) and never follows a symbolic link. Folders are 0700, files 0600:
they hold secret shares.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from . import mailbox
from ..errors import SyqureError
from .framing import DEFAULT_MAX_MESSAGE, HEADER

INLINE_MAX = 512 << 10  # larger messages go to the socket by sendfile, not through memory
FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_REWRITE = os.O_WRONLY | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_UID = os.getuid()
_READ = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (0700) and refuse it if it is a link or not a folder."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise SyqureError(f"cannot create the folder {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SyqureError(f"{path} is not a folder (a symbolic link or a file is in the way)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise SyqureError(f"cannot write the folder {path}")


def write_private(path: Path, data: bytes) -> None:
    """Write a small file atomically, owner-only (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, _CREATE | os.O_TRUNC, FILE_MODE)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, _CREATE, FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_small(path: Path, limit: int = 1 << 20) -> bytes | None:
    """Up to ``limit`` bytes of a regular file, None if absent; never through a link."""
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SyqureError(f"{path} is a symbolic link; refusing to follow it") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SyqureError(f"{path} is not a regular file")
        chunks, total = [], 0
        while total < limit:
            chunk = os.read(fd, limit - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class FilePool:
    """Files of consumed messages, kept by their reader to be written again.

    Creating a file is the costliest step of a message on ext4 once many
    files have been deleted (the allocator skips recently freed inodes: tens
    of microseconds, more than the rest of the hop). So a reader moves what
    it consumed here instead of deleting it, its writer fills a pooled file
    and renames it in, and every ``.ready`` marker is a hard link to one empty
    file. The files on disk and their order are the protocol's, unchanged."""

    LIMIT = 64  # files kept; more consumed files than that are deleted
    KEEP_MAX = 64 << 10  # larger files are deleted rather than shrunk

    def __init__(self, folder: str):
        self.folder = folder
        self.marker = os.path.join(folder, "marker")
        self.free: list[str] = []
        self._count = 0
        self._linking = True

    def reset(self) -> None:
        """Empty the pool (a crashed run may have left files) and make the marker."""
        self.release()
        self._renew_marker()

    def release(self) -> int:
        """Delete every pooled file and the marker (they may hold old shares);
        returns how many files went."""
        self.free.clear()
        removed = 0
        try:  # best effort: runs on the way out, perhaps after the folder failed
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
        except OSError:
            return 0  # absent, or a link: never followed
        try:
            for name in os.listdir(fd):
                os.unlink(name, dir_fd=fd)
                removed += 1
            os.rmdir(self.folder)
        except OSError:
            pass
        finally:
            os.close(fd)
        return removed

    def give(self, path: str) -> bool:
        """Keep the file at ``path`` (moved here); False when the pool is full."""
        if len(self.free) >= self.LIMIT:
            return False
        self._count += 1
        kept = os.path.join(self.folder, f"f{self._count}")
        try:
            os.rename(path, kept)
        except OSError:
            return False
        self.free.append(kept)
        return True

    def take(self) -> tuple[str, int, int] | None:
        """A pooled file open for writing: (path, descriptor, its current size)."""
        while self.free:
            path = self.free.pop()
            try:
                fd = os.open(path, _REWRITE)
            except OSError:
                remove_file(path)
                continue
            st = os.fstat(fd)
            # Only a plain file of ours, linked nowhere else, small, is reused.
            if (stat.S_ISREG(st.st_mode) and st.st_uid == _UID and st.st_nlink == 1
                    and st.st_size <= self.KEEP_MAX):
                if st.st_mode & 0o077:
                    os.fchmod(fd, FILE_MODE)
                return path, fd, st.st_size
            os.close(fd)
            remove_file(path)
        return None

    def mark(self, path: str) -> None:
        """Create the empty marker at ``path``: a hard link, or a new file where
        links are not possible."""
        for attempt in (0, 1):
            if not self._linking:
                break
            try:
                os.link(self.marker, path)
                return
            except OSError as exc:
                # gone (cleaned away) or linked as often as the file system allows
                if exc.errno in (errno.ENOENT, errno.EMLINK) and attempt == 0 \
                        and os.path.isdir(os.path.dirname(path)):
                    self._renew_marker()
                    continue
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise OSError(exc.errno, exc.strerror, path) from None  # name the folder
                self._linking = False
        os.close(os.open(path, _CREATE, FILE_MODE))

    def _renew_marker(self) -> None:
        make_private_dir(Path(self.folder))
        remove_file(self.marker)
        os.close(os.open(self.marker, _CREATE, FILE_MODE))


class MessageWriter:
    """One outgoing message file being written; ``commit`` publishes it.
    Small messages go to disk in one write at commit."""

    BUFFER = 256 << 10

    def __init__(self, folder: str, seq: int, tmp_dir: str, pool: FilePool):
        self.folder, self.seq, self.pool = folder, seq, pool
        reused = pool.take()
        if reused:
            self.tmp, self.fd, self._old_size = reused
        else:
            # Written outside the watched folder, then renamed in: the reader wakes
            # once per message, for its marker, not for every step of the writing.
            self.tmp = os.path.join(tmp_dir, f"{os.path.basename(folder)}.{seq:08d}.msg.tmp")
            self.fd = os.open(self.tmp, _CREATE, FILE_MODE)
            self._old_size = 0
        self.size = 0
        self._buffer = bytearray()

    def write(self, data) -> None:
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

    def commit(self, placed=None) -> None:
        """Rename the message in, call ``placed``, then create its marker."""
        self._flush()
        if self._old_size > self.size:
            os.ftruncate(self.fd, self.size)
        os.close(self.fd)
        self.fd = -1
        os.rename(self.tmp, os.path.join(self.folder, mailbox.file_name(self.seq, mailbox.MSG)))
        if placed:
            placed()
        self.pool.mark(os.path.join(self.folder, mailbox.file_name(self.seq, mailbox.READY)))

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        remove_file(self.tmp)


class Layout:
    """What every layout shares: its parties, the message files of a folder,
    and what a party may remove of its own."""

    pid: int
    parties: int
    fresh = False  # a rerun in the same folder clears this party's own earlier files (syftbox: Biovault)
    synced = False  # a peer's files arrive as it writes them

    def peers(self) -> list[int]:
        return [p for p in range(self.parties) if p != self.pid]

    def listing(self, folder) -> dict[int, set[str]]:
        try:
            return mailbox.group(os.listdir(folder))
        except FileNotFoundError:
            return {}

    def refuse_leftovers(self, folder, remedy: str) -> None:
        """A writer's fresh outbox must be empty: anything there is an earlier run's."""
        left = mailbox.leftovers(os.listdir(folder))
        if left:
            raise SyqureError(f"{folder} holds {len(left)} message file(s) of an earlier run "
                              f"({left[0]}, ...): run 'syqure-wf clean' or {remedy}")

    def writer_stamp(self, peer: int) -> str | None:
        """The incarnation token of the proxy that writes to us from ``peer``."""
        raw = read_small(Path(self.inbox(peer)) / mailbox.WRITER_STAMP, 256)
        return raw.decode(errors="replace").strip() if raw else None

    def stamp_writer(self, incarnation: str) -> None:
        """Say in every outbox which proxy process writes there (after the leftovers check)."""
        for peer in self.peers():
            write_private(Path(self.outbox(peer)) / mailbox.WRITER_STAMP, incarnation.encode())

    def trust_writer(self, peer: int, incarnation: str) -> None:
        """``peer``'s running proxy, proven to write our inbox (layouts whose
        files name their writer use it: syftbox)."""

    def trust_reader(self, peer: int, incarnation: str) -> None:
        """``peer``'s running proxy, seen alive (syftbox: its consumption records count)."""

    def native_peer(self, peer: int, since: float) -> str | None:
        """Why ``peer`` speaks another file protocol here, or None (Biovault's layout knows)."""
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

    def progress_path(self) -> Path:
        """Where this party's proxy keeps its counters (never synced)."""
        return Path(self._tmp) / f"party{self.pid}.progress"

    def resume_outbox(self, peer: int, next_seq: int) -> int:
        """The next seq to write after a restart: past any marker already out."""
        present = self.listing(self.outbox(peer))
        while present.get(next_seq, set()) & {mailbox.READY, mailbox.END}:
            next_seq += 1
        return next_seq

    def drop_delivered(self, peer: int, next_seq: int) -> None:
        """Remove what a killed proxy delivered but had not yet removed."""
        for seq, kinds in sorted(self.listing(self.inbox(peer)).items()):
            if seq < next_seq:
                self.consume(peer, seq, mailbox.END if mailbox.END in kinds else mailbox.MSG)

    def discard_unconsumed(self) -> int:
        """Remove the message files of a failed run that nobody will read."""
        removed = 0
        for folder in self.removable():
            for name in mailbox.leftovers(os.listdir(folder)):
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
        return self.root / mailbox.direction_name(self.pid, peer)

    def inbox(self, peer: int) -> Path:
        return self.root / mailbox.direction_name(peer, self.pid)

    def status_dir(self) -> Path:
        return self.root / "status"

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
                write_private(self.outbox(peer) / mailbox.RUN_STAMP, self.run_id.encode())
            if self.run_id and mailbox.leftovers(os.listdir(self.inbox(peer))):
                self.check_inbox_run(peer)
        self.pool.reset()

    def progress_path(self) -> Path:
        return Path(self._tmp) / f"{self._own}.progress"

    def check_inbox_run(self, peer: int) -> None:
        """Messages in an inbox belong to this run only if their writer stamped it."""
        if not self.run_id or peer in self._run_checked:
            return
        folder = self.inbox(peer)
        stamp = read_small(folder / mailbox.RUN_STAMP)
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
        os.close(os.open(os.path.join(self._out[peer], mailbox.file_name(seq, mailbox.END)),
                         _CREATE, FILE_MODE))

    # -- reading
    def look(self, peer: int, seq: int, peek: bool = False):
        """Judge slot ``seq`` of the inbox from ``peer``. With DELIVER comes the
        content (header included): bytes for a small message, an open file for
        a large one (the caller sends it with sendfile and closes it), nothing
        when ``peek``. All of it through one descriptor, never through a link."""
        folder = self._in[peer]
        ready = _exists(os.path.join(folder, mailbox.file_name(seq, mailbox.READY)))
        end = False if ready else _exists(os.path.join(folder, mailbox.file_name(seq, mailbox.END)))
        if not ready and not end:
            return mailbox.WAIT_ABSENT, None
        path = os.path.join(folder, mailbox.file_name(seq, mailbox.MSG))
        try:
            fd = os.open(path, _READ)
        except FileNotFoundError:
            return mailbox.judge(mailbox.Slot(seq, ready, end), self.max_message), None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return mailbox.judge(mailbox.Slot(seq, ready, end, "link"), self.max_message), None
            raise
        keep = False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "dir" if stat.S_ISDIR(st.st_mode) else "other"
                return mailbox.judge(mailbox.Slot(seq, ready, end, kind), self.max_message), None
            large = st.st_size > INLINE_MAX
            # A small file is read whole at once: the header comes with it.
            content = None if large else _read_upto(fd, st.st_size)
            header = os.pread(fd, HEADER.size, 0) if large else bytes(content[:HEADER.size])
            decision = mailbox.judge(mailbox.Slot(seq, ready, end, "file", st.st_size, header),
                                     self.max_message)
            if decision.verdict is not mailbox.Verdict.DELIVER or peek:
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
        if what != mailbox.MSG:
            remove_file(os.path.join(folder, mailbox.file_name(seq, mailbox.END)))
            return
        remove_file(os.path.join(folder, mailbox.file_name(seq, mailbox.READY)))
        path = os.path.join(folder, mailbox.file_name(seq, mailbox.MSG))
        if not self.pool.give(path):
            remove_file(path)

    def unconsumed(self, peer: int, next_seq: int) -> list[int]:
        return [s for s in self.listing(self.outbox(peer)) if s < next_seq]

    def resume_outbox(self, peer: int, next_seq: int) -> int:
        # placed (counted) but not announced when the proxy was killed: announce it
        last = os.path.join(self._out[peer], mailbox.file_name(next_seq - 1, mailbox.MSG))
        ready = os.path.join(self._out[peer], mailbox.file_name(next_seq - 1, mailbox.READY))
        if next_seq > 0 and _exists(last) and not _exists(ready):
            self.pool.mark(ready)
        return super().resume_outbox(peer, next_seq)


def remove_file(path) -> None:
    """Remove a file that may already be gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
        is_direction = mailbox.parse_direction(entry.name) is not None
        if entry.name == ".tmp":
            removed += _clean_tmp(entry.path)
            continue
        if not (is_direction or entry.name == "status"):
            continue
        for f in os.scandir(entry.path):
            n = f.name
            if (mailbox.parse_name(n) or n in (mailbox.RUN_STAMP, mailbox.WRITER_STAMP) or n.endswith(".tmp")
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
