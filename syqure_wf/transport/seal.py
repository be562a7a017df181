"""Authenticated encryption of message files.

A file sync, or its server, sees every file of every party: without
encryption it holds all parties' views at once (SECURITY.md). Every message
is sealed with AES-256-GCM under a key of its own run and direction. The
key comes from one of two sources; the sealing is the same:

- the sites' keys (``handshake.py``): layout ``syftbox``, on by default;
- a run secret shared out of band: HKDF-SHA256 of the secret (``secret_key``).

The run id, the direction and the sequence number are the associated data,
so a replayed, reordered, swapped, altered or foreign file is refused. The
nonces of a writer start at a random 96-bit value and count up: never one
twice under a key, a restarted writer included (its start is random again),
and no system call per message.

On disk a sealed message is an ordinary message file whose content is
``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the receiving proxy
opens it back into the original content (its own 8-byte header included).
``SealedFolder`` wraps any layout. AES-256-GCM, not ChaCha20-Poly1305:
bench/seal.py measures both on these machines (AES-NI).
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .protocol.judge import Decision, Verdict
from ..errors import ConfigError, CorruptMessage
from .protocol.framing import HEADER

NONCE, TAG = 12, 16
OVERHEAD = NONCE + TAG
MIN_SECRET = 16
KEY_BYTES = 32
NONCE_MASK = (1 << 8 * NONCE) - 1
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


class Seal:
    """The key and bound data of one direction of one run. Pure: bytes in, bytes out.
    ``seal_into``/``open_into`` use the caller's buffers (no copy per message)."""

    def __init__(self, key: bytes, run_id: str, src: int, dst: int):
        self._aead = AESGCM(key)
        self._prefix = f"{run_id}|{src}->{dst}|".encode()
        self._nonce = int.from_bytes(os.urandom(NONCE), "big")

    def _next_nonce(self) -> bytes:
        self._nonce = nonce = (self._nonce + 1) & NONCE_MASK
        return nonce.to_bytes(NONCE, "big")

    def seal(self, seq: int, plaintext) -> bytes:
        nonce = self._next_nonce()
        return nonce + self._aead.encrypt(nonce, plaintext, self._prefix + b"%d" % seq)

    def seal_into(self, seq: int, plaintext, out: memoryview) -> None:
        """Nonce, ciphertext and tag into ``out`` (exactly ``len(plaintext) + OVERHEAD``)."""
        self._nonce = n = (self._nonce + 1) & NONCE_MASK
        out[:NONCE] = nonce = n.to_bytes(NONCE, "big")
        self._aead.encrypt_into(nonce, plaintext, self._prefix + b"%d" % seq, out[NONCE:])

    def open(self, seq: int, sealed) -> bytes:
        sealed = memoryview(sealed)
        if len(sealed) < OVERHEAD:
            raise InvalidTag
        return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], self._prefix + b"%d" % seq)

    def open_into(self, seq: int, sealed: memoryview, out) -> None:
        """``sealed`` (nonce, ciphertext, tag) opened into ``out`` (exactly ``len(sealed) - OVERHEAD``)."""
        if len(sealed) < OVERHEAD:
            raise InvalidTag
        self._aead.decrypt_into(sealed[:NONCE], sealed[NONCE:], self._prefix + b"%d" % seq, out)


def grown(buf: bytearray, size: int) -> bytearray:
    """``buf`` with room for ``size`` bytes: buffers keep their memory between
    messages, so a 1 MiB message costs no fresh pages every time."""
    if size > len(buf):
        buf.extend(bytes(size - len(buf)))
    return buf


class SealedWriter:
    """Collects a message, then writes its sealed file content in one go
    through the layout's writer: ``[8-byte length][nonce][ciphertext][tag]``.
    One per direction, reused: a proxy writes one message at a time to a peer."""

    __slots__ = ("inner", "seal", "seq", "plain", "out", "size")

    def __init__(self, seal: Seal):
        self.seal, self.plain, self.out = seal, bytearray(), bytearray()
        self.inner, self.seq, self.size = None, 0, 0

    def start(self, inner_writer, seq: int) -> "SealedWriter":
        self.inner, self.seq, self.size = inner_writer, seq, 0
        return self

    def write(self, data) -> None:
        end = self.size + len(data)
        if end > len(self.plain):
            grown(self.plain, end)
        self.plain[self.size:end] = data
        self.size = end

    def commit(self, placed=None) -> None:
        size = HEADER.size + self.size + OVERHEAD
        out = memoryview(grown(self.out, size))[:size]
        HEADER.pack_into(out, 0, size - HEADER.size)
        self.seal.seal_into(self.seq, memoryview(self.plain)[:self.size], out[HEADER.size:])
        self.inner.write(out)  # the inner writer copies or writes it before returning
        self.inner.commit(placed)

    def abort(self) -> None:
        self.inner.abort()


class SealedFolder:
    """Any layout, with every message sealed on write and opened on read.

    ``keys`` maps each peer to its two directions' keys (out, in). A peer
    without keys yet (the handshake has not verified it) gets nothing
    written (the proxy holds its party's bytes: ``keyed``) and nothing
    delivered: its messages wait."""

    def __init__(self, inner, run_id: str, keys: dict[int, tuple[bytes, bytes]] | None = None):
        if not run_id:
            raise ConfigError("encryption needs a run id shared by every party")
        self.inner, self.run_id = inner, run_id
        self.max_message = inner.max_message
        inner.max_message += HEADER.size + OVERHEAD  # what the sealed files may hold
        self._writers: dict[int, SealedWriter] = {}
        self._in: dict[int, Seal] = {}
        self._read = {p: bytearray() for p in inner.peers()}  # a large sealed message, read from its file
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

    def look(self, peer: int, seq: int, peek: bool = False):
        opener = self._in.get(peer)
        if opener is None:
            decision, _ = self.inner.look(peer, seq, peek=True)
            if decision.verdict is Verdict.DELIVER and not peek:
                return Decision(Verdict.WAIT, reason=f"waiting for party {peer}'s verified key"), None
            return decision, None
        decision, content = self.inner.look(peer, seq, peek)
        if peek or decision.verdict is not Verdict.DELIVER:
            return decision, None
        end = HEADER.size + decision.length
        if isinstance(content, (bytes, bytearray)):
            sealed = memoryview(content)[HEADER.size:end]
        else:
            with content:  # a large message came as an open file
                view = memoryview(grown(self._read[peer], end))[:end]
                sealed = view[HEADER.size:content.readinto(view)]
        # a new buffer per message: the party's socket may keep a view of it until sent
        plain = bytearray(max(0, len(sealed) - OVERHEAD))
        try:
            opener.open_into(seq, sealed, plain)
        except InvalidTag:
            raise CorruptMessage(
                f"channel {min(peer, self.inner.pid)}-{max(peer, self.inner.pid)}: message {seq} from "
                f"party {peer} failed authentication: replayed, reordered, swapped, altered, or sealed "
                "with another run's key") from None
        length = len(plain) - HEADER.size
        if length < 0 or HEADER.unpack_from(plain)[0] != length or length > self.max_message:
            raise CorruptMessage(f"message {seq} from party {peer}: bad length inside the seal")
        decision = self._decisions.get(length)
        if decision is None:  # one per length: most messages have one of a few lengths
            if len(self._decisions) > 1024:
                self._decisions.clear()
            decision = self._decisions[length] = Decision(Verdict.DELIVER, length=length)
        return decision, plain
