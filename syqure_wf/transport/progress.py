"""Where each direction of a proxy stands, kept on disk so that a proxy
restarted in the middle of a run resumes its sequence numbers instead of
starting again at 0 (which its peers would never read).

Per peer two counters: the next seq this proxy will write to it and the next
it will read from it. The file is mapped into memory: a store is a write to
the page cache, without a system call, and survives the proxy being killed
(not the machine crashing). The order of stores against the files is the
proxies' business (``link.Upstream``, ``downstream.Downstream``); the
record format below is pure and tested alone.
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from ..errors import SyqureError
from ..files.private import make_private_dir, open_private, remove_file

MAGIC = b"SQWFPRG1"
SIZE = 4096
_HEAD = struct.Struct("<8s64sii")  # magic, run id, pid, parties
_SLOT = struct.Struct("<qq")  # next seq out, next seq in
MAX_PARTIES = (SIZE - _HEAD.size) // _SLOT.size


def encode(run_id: str, pid: int, parties: int, slots: list[tuple[int, int]] | None = None) -> bytes:
    if parties > MAX_PARTIES:
        raise SyqureError(f"at most {MAX_PARTIES} parties can resume a run")
    raw = bytearray(SIZE)
    _HEAD.pack_into(raw, 0, MAGIC, run_id.encode()[:64], pid, parties)
    for peer, (out, inn) in enumerate(slots or [(0, 0)] * parties):
        _SLOT.pack_into(raw, _HEAD.size + peer * _SLOT.size, out, inn)
    return bytes(raw)


def decode(raw: bytes, run_id: str, pid: int, parties: int) -> list[tuple[int, int]] | None:
    """The counters of this run, party and size of run, or None for anything else."""
    if len(raw) != SIZE:
        return None
    magic, rid, p, n = _HEAD.unpack_from(raw, 0)
    if magic != MAGIC or rid.rstrip(b"\0") != run_id.encode()[:64] or p != pid or n != parties:
        return None
    slots = [_SLOT.unpack_from(raw, _HEAD.size + i * _SLOT.size) for i in range(parties)]
    return slots if all(o >= 0 and i >= 0 for o, i in slots) else None


class Progress:
    """The mapped counters of one proxy (thin adapter over ``encode``/``decode``)."""

    def __init__(self, path: Path, run_id: str, pid: int, parties: int):
        self.path = Path(path)
        self.resumed: list[tuple[int, int]] | None = None
        make_private_dir(self.path.parent)
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise SyqureError(f"cannot keep this proxy's progress in {self.path}: "
                              f"{exc.strerror}") from None
        try:
            old = os.pread(fd, SIZE + 1, 0)
            self.resumed = decode(old, run_id, pid, parties) if old else None
            if self.resumed is None:
                os.ftruncate(fd, 0)
                os.pwrite(fd, encode(run_id, pid, parties), 0)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)

    def out(self, peer: int) -> int:
        return _SLOT.unpack_from(self._map, _HEAD.size + peer * _SLOT.size)[0]

    def inn(self, peer: int) -> int:
        return _SLOT.unpack_from(self._map, _HEAD.size + peer * _SLOT.size)[1]

    def sent(self, peer: int, next_seq: int) -> None:
        struct.pack_into("<q", self._map, _HEAD.size + peer * _SLOT.size, next_seq)

    def received(self, peer: int, next_seq: int) -> None:
        struct.pack_into("<q", self._map, _HEAD.size + peer * _SLOT.size + 8, next_seq)

    def close(self, forget: bool = False) -> None:
        """Unmap; ``forget`` (a finished or failed run: nothing to resume) removes the record."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if forget:
            remove_file(self.path)
