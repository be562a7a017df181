"""The pool of consumed message files (the shared layout's): a reader keeps
what it consumed, and its writer fills those files again instead of
creating new ones. Files of this user only, never through a link."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..files.private import CREATE, FILE_MODE, NOFOLLOW, make_private_dir, remove_file

_REWRITE = os.O_WRONLY | NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_UID = os.getuid()


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
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
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
        kept = f"{self.folder}/f{self._count}"  # (a str: no os.path.join per message)
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
        os.close(os.open(path, CREATE, FILE_MODE))

    def _renew_marker(self) -> None:
        make_private_dir(Path(self.folder))
        remove_file(self.marker)
        os.close(os.open(self.marker, CREATE, FILE_MODE))
