"""Authenticated encryption of message files.

A file sync, or its server, sees every file of every party: without
encryption it holds all parties' views at once (SECURITY.md). Every message
is sealed with AES-256-GCM under a key of its own run and direction, in
segments (``segments.py``: the format). The key comes from one of two
sources; the sealing is the same:

- the sites' keys (``keys/handshake.py``): layout ``syftbox``, on by default;
- a run secret shared out of band: HKDF-SHA256 of the secret (``secret_key``).

The run id, the direction, the sequence number and the segment's place are
the associated data, so a replayed, reordered, swapped, cut, altered or
foreign file is refused. The end of a stream is a sealed message too (its
content: the length -1), so nobody without the key can end a stream, and
an ``.end`` file means nothing in a sealed run.

On disk a sealed message is an ordinary message file whose content is the
sealed bytes; the receiving proxy opens it back into the original content
(its own 8-byte header included). ``SealedFolder`` wraps any layout.
AES-256-GCM, not ChaCha20-Poly1305: bench/seal.py measures both on these
machines (AES-NI).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError, CorruptMessage
from .protocol.framing import HEADER
from .protocol.judge import Decision, Verdict
from .protocol.names import MSG
from .folder import Content, Folder, MessageWriter
from .segments import HEAD, SEALED_SEGMENT, SEGMENT, TAG, VERSION, Opening, Seal, count, plain_size, sealed_size

__all__ = ["Seal", "SealedFolder", "SealedWriter", "secret_key"]

MIN_SECRET = 16
KEY_BYTES = 32
END_CONTENT = HEADER.pack(-1)  # a sealed end of stream: a length no message has
INLINE = 1 << 20  # a sealed message up to this size is opened whole, larger ones as they are sent
BATCH = 16  # sealed segments a large message's writer hands on at once (1 MiB: written, not copied)
SECRET_SALT = b"syqure-wf seal v2"


def new_secret() -> str:
    return os.urandom(32).hex()


def read_secret(path: str | os.PathLike) -> bytes:
    """A run secret from a file: hex (as ``syqure-wf secret`` writes) or raw bytes."""
    try:
        raw = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the run secret {path}: {exc.strerror}") from None
    return secret_from(raw, str(path))


def secret_from(raw: bytes, where: str) -> bytes:
    """A run secret from its text, wherever it was kept (a file, an
    environment variable): hex or raw bytes, at least MIN_SECRET bytes."""
    raw = raw.strip()
    try:
        secret = bytes.fromhex(raw.decode())
    except ValueError:
        secret = raw
    return check_secret(secret, where)


def check_secret(secret: bytes, where: str) -> bytes:
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"the run secret in {where} is too short ({len(secret)} bytes; "
                          f"at least {MIN_SECRET}): make one with 'syqure-wf secret'")
    return secret


def secret_key(secret: bytes, run_id: str, src: int, dst: int) -> bytes:
    """The key of one direction of a run from a run secret."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=SECRET_SALT,
                info=f"{run_id}|{src}->{dst}".encode()).derive(secret)


def grown(buf: bytearray, size: int) -> bytearray:
    """``buf`` with room for ``size`` bytes: buffers keep their memory between
    messages, so a 1 MiB message costs no fresh pages every time."""
    if size > len(buf):
        buf.extend(bytes(size - len(buf)))
    return buf


class SealedWriter:
    """One message being sealed into the layout's writer. A message of one
    segment is collected and sealed in one go (the small messages' path);
    a larger one is sealed segment by segment as its bytes come, so that
    no more than a segment is held. Its content's own header (the first
    8 bytes written) says its length. One per direction, reused: a proxy
    writes one message at a time to a peer."""

    __slots__ = ("inner", "seal", "seq", "plain", "out", "size", "total", "first", "index", "done", "batched")

    inner: MessageWriter  # the layout's writer of the message being sealed (``start``)

    def __init__(self, seal: Seal):
        self.seal, self.plain, self.out = seal, bytearray(), bytearray()
        self.seq, self.size, self.total = 0, 0, -1
        self.first = self.index = self.done = self.batched = 0

    def start(self, inner_writer: MessageWriter, seq: int) -> SealedWriter:
        self.inner, self.seq, self.size, self.index = inner_writer, seq, 0, -1
        return self

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.index >= 0:
            self._stream(data)
            return
        end = self.size + len(data)
        if end > SEGMENT:  # more than a segment: a large message
            self._begin(data)
            return
        if end > len(self.plain):
            grown(self.plain, end)
        self.plain[self.size:end] = data
        self.size = end

    def _begin(self, data) -> None:
        """A large message: its file header and the seal's head now, its segments as they fill."""
        held = bytes(self.plain[:self.size])
        (length,) = HEADER.unpack_from((held + bytes(data[:HEADER.size]))[:HEADER.size])
        self.total = HEADER.size + max(0, length)
        self.first = self.seal.start(count(self.total))
        self.inner.write(HEADER.pack(sealed_size(self.total)) + bytes((VERSION,))
                         + self.first.to_bytes(12, "big"))
        self.size, self.index, self.done, self.batched = 0, 0, 0, 0
        grown(self.plain, SEGMENT)
        grown(self.out, BATCH * SEALED_SEGMENT)
        self._stream(held)
        self._stream(data)

    def _stream(self, data) -> None:
        view = memoryview(data)
        while view:
            if not self.size and len(view) >= SEGMENT and self.done + SEGMENT < self.total:
                self._seal(view[:SEGMENT], last=False)  # a whole segment as it came: no copy
                view = view[SEGMENT:]
                continue
            take = min(SEGMENT - self.size, len(view))
            if not take:  # the last segment is full and more came: never sealed, never looped on
                raise CorruptMessage(f"message {self.seq}: more bytes written than its header says ({self.total})")
            self.plain[self.size:self.size + take] = view[:take]
            self.size += take
            view = view[take:]
            if self.size == SEGMENT and self.done + SEGMENT < self.total:
                self._seal(memoryview(self.plain)[:SEGMENT], last=False)
                self.size = 0

    def _seal(self, plain, last: bool) -> None:
        """One segment into the batch; a full batch (or the last segment) to the inner writer."""
        at = self.batched
        self.batched = end = at + len(plain) + TAG
        self.seal.seal_segment(self.first, self.seq, self.index, last, plain, memoryview(self.out)[at:end])
        self.index += 1
        self.done += len(plain)
        if last or end + SEALED_SEGMENT > len(self.out):
            self.inner.write(memoryview(self.out)[:end])  # the inner writer copies or writes it before returning
            self.batched = 0

    def commit(self, placed=None) -> None:
        if self.index >= 0:
            if self.done + self.size != self.total:
                raise CorruptMessage(f"message {self.seq}: {self.done + self.size} bytes written, "
                                     f"its header says {self.total}")
            self._seal(memoryview(self.plain)[:self.size], last=True)
        else:  # one segment (a larger message streams)
            size = HEADER.size + HEAD + TAG + self.size
            out = memoryview(grown(self.out, size))[:size]
            HEADER.pack_into(out, 0, size - HEADER.size)
            self.seal.seal_one(self.seq, memoryview(self.plain)[:self.size], out[HEADER.size:])
            self.inner.write(out)
        self.inner.commit(placed)

    def abort(self) -> None:
        self.inner.abort()


class SealedFolder:
    """Any layout, with every message sealed on write and opened on read.

    ``keys`` maps each peer to its two directions' keys (out, in). A peer
    without keys yet (the handshake has not verified it) gets nothing
    written (the proxy holds its party's bytes: ``keyed``) and nothing
    delivered: its messages wait. Ends of stream are sealed messages: the
    inner layout neither writes nor reads ``.end`` files (``plain_ends``)."""

    def __init__(self, inner: Folder, run_id: str, keys: dict[int, tuple[bytes, bytes]] | None = None):
        if not run_id:
            raise ConfigError("encryption needs a run id shared by every party")
        self.inner, self.run_id = inner, run_id
        self.max_message = inner.max_message
        inner.max_message = sealed_size(HEADER.size + inner.max_message)  # what the sealed files may hold
        inner.plain_ends = False
        self._writers: dict[int, SealedWriter] = {}
        self._in: dict[int, Seal] = {}
        self._decisions: dict[int, Decision] = {}
        for peer, (out_key, in_key) in (keys or {}).items():
            self.set_keys(peer, out_key, in_key)

    def __getattr__(self, name):
        value = getattr(self.inner, name)
        if callable(value):  # the inner layout's methods, looked up once (the hot path calls them)
            setattr(self, name, value)
        return value

    def set_keys(self, peer: int, out_key: bytes, in_key: bytes) -> None:
        pid = self.inner.pid
        self._writers[peer] = SealedWriter(Seal(out_key, self.run_id, pid, peer))
        self._in[peer] = Seal(in_key, self.run_id, peer, pid)

    def keyed(self, peer: int) -> bool:
        return peer in self._writers

    def open_message(self, peer: int, seq: int) -> SealedWriter:
        writer = self._writers.get(peer)
        if writer is None:  # the proxy never reads its party's bytes before: a bug
            raise CorruptMessage(f"no verified key for party {peer} yet: nothing may be written to it")
        return writer.start(self.inner.open_message(peer, seq), seq)

    def write_end(self, peer: int, seq: int) -> None:
        """The end of the stream to ``peer``: a sealed message whose content is END_CONTENT."""
        writer = self.open_message(peer, seq)
        writer.write(END_CONTENT)
        writer.commit()

    def consume(self, peer: int, seq: int, what: str) -> None:
        self.inner.consume(peer, seq, MSG)  # an end of stream is a message file here

    def _refused(self, peer: int, seq: int) -> CorruptMessage:
        return CorruptMessage(
            f"channel {min(peer, self.inner.pid)}-{max(peer, self.inner.pid)}: message {seq} from "
            f"party {peer} failed authentication: replayed, reordered, swapped, cut, altered, or sealed "
            "with another run's key")

    def look(self, peer: int, seq: int, peek: bool = False) -> tuple[Decision, Content]:
        opener = self._in.get(peer)
        if opener is None:
            decision, _ = self.inner.look(peer, seq, peek=True)
            if decision.verdict is Verdict.DELIVER and not peek:
                return Decision(Verdict.WAIT, reason=f"waiting for party {peer}'s verified key"), None
            return decision, None
        decision, content = self.inner.look(peer, seq, peek)
        if peek or decision.verdict is not Verdict.DELIVER:
            return decision, None
        if decision.length > INLINE or not isinstance(content, (bytes, bytearray)):
            return self._opening(peer, seq, decision.length, content)
        sealed = memoryview(content)[HEADER.size:HEADER.size + decision.length]
        # a new buffer per message: the party's socket may keep a view of it until sent
        plain = bytearray(plain_size(len(sealed)) or 0)
        try:
            opener.open_into(seq, sealed, plain)
        except InvalidTag:
            raise self._refused(peer, seq) from None
        return self._judged(peer, seq, plain, len(plain)), plain

    def _judged(self, peer: int, seq: int, head, total: int) -> Decision:
        """The decision on an opened message: ``head``, its first bytes, hold its header; ``total``: its size."""
        (said,) = HEADER.unpack_from(head)
        if said == -1 and total == HEADER.size:
            return Decision(Verdict.END)
        length = total - HEADER.size
        if said != length or length > self.max_message:
            raise CorruptMessage(f"message {seq} from party {peer}: bad length inside the seal")
        decision = self._decisions.get(length)
        if decision is None:  # one per length: most messages have one of a few lengths
            if len(self._decisions) > 1024:
                self._decisions.clear()
            decision = self._decisions[length] = Decision(Verdict.DELIVER, length=length)
        return decision

    def _opening(self, peer: int, seq: int, sealed: int, content):
        """A large message, opened as it is sent: from its open file, or from memory (syftbox)."""
        if isinstance(content, (bytes, bytearray)):
            source = _ViewReader(memoryview(content)[HEADER.size:HEADER.size + sealed])
        else:
            content.seek(HEADER.size)
            source = content
        try:
            opening = Opening(self._in[peer], seq, sealed, source.readinto)
        except InvalidTag:
            source.close()
            raise self._refused(peer, seq) from None
        decision = self._judged(peer, seq, opening.head, opening.size)
        if decision.verdict is Verdict.END:
            source.close()
            return decision, None
        return decision, OpenedMessage(opening, source, self._refused(peer, seq))


class OpenedMessage:
    """A large sealed message for the channel to send: ``pieces`` of its
    plaintext, opened as they go (``segments.Opening``); closes its source."""

    def __init__(self, opening: Opening, source, refused: CorruptMessage):
        self.opening, self.source, self.refused = opening, source, refused

    def pieces(self, skip: int):
        try:
            yield from self.opening.pieces(skip)
        except InvalidTag:
            raise self.refused from None

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> "OpenedMessage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ViewReader:
    """``readinto`` over bytes in memory, without a copy of them."""

    def __init__(self, view: memoryview):
        self.view = view

    def readinto(self, buf) -> int:
        n = min(len(buf), len(self.view))
        buf[:n] = self.view[:n]
        self.view = self.view[n:]
        return n

    def close(self) -> None:
        self.view = memoryview(b"")


if TYPE_CHECKING:  # the port's Protocols, as mypy checks them
    def _ports(layout: SealedFolder, writer: SealedWriter) -> tuple[Folder, MessageWriter]:
        return layout, writer
