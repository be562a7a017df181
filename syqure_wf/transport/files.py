"""Private files on disk: folders 0700, files 0600 (they hold secret
shares), written atomically, read without following a symbolic link; the
pool of consumed message files and the writer of one message file."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import SyqureError
from .protocol import names

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_REWRITE = os.O_WRONLY | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_UID = os.getuid()
_READ = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
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


def check_owned(path: Path, what: str) -> None:
    """``path`` is this user's and no one else may write it (a folder another
    local user made, or may change, could hand us their files)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise SyqureError(f"{what} {path}: {exc.strerror}") from None
    if st.st_uid != _UID:
        raise SyqureError(f"{what} {path} belongs to another user (uid {st.st_uid}), not to this one ({_UID})")
    if st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
        raise SyqureError(f"{what} {path} may be changed by other users (mode {stat.filemode(st.st_mode)})")


def owned_private_dir(path: Path, what: str = "the private folder") -> None:
    """``make_private_dir``, of a folder (and its parent) that must be this user's alone."""
    make_private_dir(path)
    for folder in (path.parent, path):
        check_owned(folder, what)


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
        os.rename(self.tmp, os.path.join(self.folder, names.file_name(self.seq, names.MSG)))
        if placed:
            placed()
        self.pool.mark(os.path.join(self.folder, names.file_name(self.seq, names.READY)))

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        remove_file(self.tmp)


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
