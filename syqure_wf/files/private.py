"""This user's private files: folders 0700, files 0600 (they hold secret
shares, keys, a site's decisions), written atomically, read without
following a symbolic link. The transport, the sites' agent and the runner
all keep their files through these helpers."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import SyqureError

FILE_MODE = 0o600
DIR_MODE = 0o700
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_CLOEXEC", 0)  # a new file, never a link's
READ = os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_UID = os.getuid()


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
        fd = os.open(tmp, CREATE | os.O_TRUNC, FILE_MODE)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, CREATE, FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_small(path: Path, limit: int = 1 << 20) -> bytes | None:
    """Up to ``limit`` bytes of a regular file, None if absent; never through a link."""
    try:
        fd = os.open(path, READ)
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


def remove_file(path) -> None:
    """Remove a file that may already be gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
