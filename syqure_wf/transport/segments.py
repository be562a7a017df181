"""A sealed message, in segments (PROTOCOL.md, "A sealed message"). Pure.

The content of a message (its 8-byte header and its bytes) is cut into
segments of ``SEGMENT`` bytes, the last one shorter or whole, and each is
sealed with AES-256-GCM on its own: a large message is sealed as it is
written and opened as it is read, a few segments in memory at a time
(a STREAM construction, as age's or Tink's streaming AEAD). Sealed::

    [1 byte: VERSION][12 bytes: first nonce N][segment 0] ... [segment n-1]
    segment i = AES-256-GCM(key, nonce N + i, P[i*SEGMENT:(i+1)*SEGMENT],
                            AAD "{run}|{src}->{dst}|{seq}|{i}|{1 if last else 0}")

The AAD binds every segment to its run, direction, message and place, and
marks the last one: a segment moved, swapped with another message's, or a
message cut after a whole segment does not open. The nonces are the
writer's count (random start, one per segment), not a function of the seq:
a restarted writer may seal a seq again, and a nonce must never repeat
under a key.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag

VERSION = 2
SEGMENT = 64 << 10  # plaintext bytes per segment
NONCE, TAG = 12, 16
HEAD = 1 + NONCE  # the version and the first nonce
SEALED_SEGMENT = SEGMENT + TAG
NONCE_MASK = (1 << 8 * NONCE) - 1
_ONE = HEAD + SEALED_SEGMENT  # the most a message of one segment takes, sealed
_EMPTY = HEAD + TAG  # what no segment takes


def count(plain: int) -> int:
    """Segments of a plaintext of ``plain`` bytes (at least one)."""
    return max(1, -(-plain // SEGMENT))


def sealed_size(plain: int) -> int:
    return HEAD + plain + TAG * count(plain)


def plain_size(sealed: int) -> int | None:
    """The plaintext length a sealed length stands for; None if none does
    (every segment holds at least one byte)."""
    body = sealed - HEAD
    if body <= TAG:
        return None
    n = -(-body // SEALED_SEGMENT)
    if body - (n - 1) * SEALED_SEGMENT <= TAG:
        return None
    return body - TAG * n


def _nonce(first: int, index: int) -> bytes:
    return ((first + index) & NONCE_MASK).to_bytes(NONCE, "big")


class Seal:
    """The key and bound data of one direction of one run. Pure: bytes in,
    bytes out. ``seal_into``/``open_into`` take a whole message (the caller's
    buffers, no copy); ``start``/``seal_segment``/``open_segment`` one
    segment at a time."""

    def __init__(self, key: bytes, run_id: str, src: int, dst: int):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # not for a run that seals nothing

        aead = AESGCM(key)
        self._encrypt, self._decrypt = aead.encrypt_into, aead.decrypt_into
        self._prefix = f"{run_id}|{src}->{dst}|".encode()
        self._nonce = int.from_bytes(os.urandom(NONCE), "big")

    def start(self, segments: int) -> int:
        """The first nonce of a message of ``segments`` segments; the count moves past them."""
        first = (self._nonce + 1) & NONCE_MASK
        self._nonce = (self._nonce + segments) & NONCE_MASK
        return first

    def seal_segment(self, first: int, seq: int, index: int, last: bool, plain, out) -> None:
        """Segment ``index`` into ``out`` (exactly ``len(plain) + TAG``)."""
        self._encrypt(_nonce(first, index), plain, self._prefix + b"%d|%d|%d" % (seq, index, last), out)

    def open_segment(self, first: int, seq: int, index: int, last: bool, sealed, out) -> None:
        """Segment ``index`` (ciphertext and tag) into ``out``; InvalidTag if it does not open."""
        if len(sealed) <= TAG:
            raise InvalidTag
        self._decrypt(_nonce(first, index), sealed, self._prefix + b"%d|%d|%d" % (seq, index, last), out)

    def seal_one(self, seq: int, plain, out: memoryview) -> None:
        """A message of one segment (at most SEGMENT bytes) into ``out``
        (exactly ``len(plain) + HEAD + TAG``): the small messages' path, kept short."""
        self._nonce = first = (self._nonce + 1) & NONCE_MASK
        out[0] = VERSION
        out[1:HEAD] = nonce = first.to_bytes(NONCE, "big")
        self._encrypt(nonce, plain, self._prefix + b"%d|0|1" % seq, out[HEAD:])

    def seal_into(self, seq: int, plain, out: memoryview) -> None:
        """A whole message into ``out`` (exactly ``sealed_size(len(plain))``)."""
        size = len(plain)
        if size <= SEGMENT:
            self.seal_one(seq, plain, out)
            return
        n = count(size)
        first = self.start(n)
        out[0] = VERSION
        out[1:HEAD] = first.to_bytes(NONCE, "big")
        plain = memoryview(plain)
        for i in range(n):
            piece = plain[i * SEGMENT:(i + 1) * SEGMENT]
            at = HEAD + i * SEALED_SEGMENT
            self.seal_segment(first, seq, i, i == n - 1, piece, out[at:at + len(piece) + TAG])

    def open_into(self, seq: int, sealed, out) -> None:
        """A whole sealed message into ``out`` (exactly its ``plain_size``); InvalidTag if it does not open."""
        sealed = memoryview(sealed)
        size = len(sealed)
        if size <= _ONE:  # one segment: its nonce is the first
            if size <= _EMPTY or len(out) != size - _EMPTY or sealed[0] != VERSION:
                raise InvalidTag
            self._decrypt(sealed[1:HEAD], sealed[HEAD:], self._prefix + b"%d|0|1" % seq, out)
            return
        size = plain_size(size)
        if size is None or size != len(out) or sealed[0] != VERSION:
            raise InvalidTag
        first = int.from_bytes(sealed[1:HEAD], "big")
        n, out = count(size), memoryview(out)
        for i in range(n):
            at = HEAD + i * SEALED_SEGMENT
            piece = sealed[at:at + SEALED_SEGMENT]
            self.open_segment(first, seq, i, i == n - 1, piece, out[i * SEGMENT:i * SEGMENT + len(piece) - TAG])

    def seal(self, seq: int, plain) -> bytes:
        out = bytearray(sealed_size(len(plain)))
        self.seal_into(seq, plain, memoryview(out))
        return bytes(out)

    def open(self, seq: int, sealed) -> bytes:
        size = plain_size(len(sealed))
        if size is None:
            raise InvalidTag
        out = bytearray(size)
        self.open_into(seq, sealed, out)
        return bytes(out)


class Opening:
    """One large sealed message, opened as it is read: ``readinto`` fills a
    buffer with the next sealed bytes (after the 8-byte file header). The
    head and segment 0 are opened at once (the content's header is in it);
    ``pieces`` opens the rest, a few segments per piece, each piece a fresh
    buffer (a socket may keep it until sent). InvalidTag as soon as a
    segment does not open: nothing after it is released."""

    PIECE = 16  # segments per piece (1 MiB)

    def __init__(self, seal: Seal, seq: int, sealed: int, readinto):
        self.seal, self.seq, self.readinto = seal, seq, readinto
        size = plain_size(sealed)
        if size is None:
            raise InvalidTag
        self.size: int = size
        head = self._read(HEAD)
        if head[0] != VERSION:
            raise InvalidTag
        self.first = int.from_bytes(head[1:], "big")
        self.n = count(self.size)
        self.index = 0
        self._sealed = bytearray(min(self.n, self.PIECE) * SEALED_SEGMENT)
        self.head = self._open(1)  # segment 0: the content's header

    def _read(self, size: int, buf: bytearray | None = None) -> memoryview:
        """The next ``size`` sealed bytes, into ``buf`` (reused: what is opened goes to fresh buffers)."""
        if buf is None or len(buf) < size:
            buf = bytearray(size)
        view, got = memoryview(buf)[:size], 0
        while got < size:
            n = self.readinto(view[got:])
            if not n:
                raise InvalidTag  # shorter than its length says
            got += n
        return view

    def _open(self, segments: int) -> bytearray:
        """The next ``segments`` segments, opened into one buffer."""
        start, stop = self.index, min(self.n, self.index + segments)
        plain_end = min(self.size, stop * SEGMENT)
        sealed = self._read(plain_end - start * SEGMENT + TAG * (stop - start), self._sealed)
        out = bytearray(plain_end - start * SEGMENT)
        sview, oview = sealed, memoryview(out)
        for i in range(start, stop):
            at, length = (i - start) * SEALED_SEGMENT, min(SEGMENT, self.size - i * SEGMENT)
            self.seal.open_segment(self.first, self.seq, i, i == self.n - 1, sview[at:at + length + TAG],
                                   oview[(i - start) * SEGMENT:(i - start) * SEGMENT + length])
        self.index = stop
        return out

    def pieces(self, skip: int = 0):
        """The plaintext from byte ``skip`` on, in pieces of at most PIECE segments."""
        if skip < len(self.head):
            yield memoryview(self.head)[skip:]
        self.head = b""
        while self.index < self.n:
            yield self._open(self.PIECE)
