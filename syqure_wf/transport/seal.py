"""Authenticated encryption of message files at rest (optional).

A file sync, or its server, sees every file of every party: without
encryption it holds all parties' views at once (SECURITY.md). With a run
secret shared out of band, every message is sealed with ChaCha20-Poly1305
under a key of its own run and direction (HKDF-SHA256 of the secret). The
run id, the direction and the sequence number are bound into the
authentication, so a replayed, reordered, swapped, altered or foreign file
is refused. A fresh random nonce per message means a restarted writer
never reuses one.

On disk a sealed message is an ordinary message file whose content is
``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the receiving proxy
opens it back into the original content. ``SealedFolder`` wraps any layout.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import mailbox
from ..errors import ConfigError, CorruptMessage
from .framing import HEADER

NONCE, TAG = 12, 16
OVERHEAD = NONCE + TAG
MIN_SECRET = 16


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
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"the run secret in {where} is too short ({len(secret)} bytes; "
                          f"at least {MIN_SECRET}): make one with 'syqure-wf secret'")
    return secret


class Seal:
    """The key and bound data of one direction of one run. Pure: bytes in, bytes out."""

    def __init__(self, secret: bytes, run_id: str, src: int, dst: int):
        self.context = f"{run_id}|{src}->{dst}"
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"syqure-wf seal v1",
                   info=self.context.encode()).derive(secret)
        self._aead = ChaCha20Poly1305(key)

    def _bound(self, seq: int) -> bytes:
        return f"{self.context}|{seq}".encode()

    def seal(self, seq: int, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, bytes(plaintext), self._bound(seq))

    def open(self, seq: int, sealed) -> bytes:
        sealed = bytes(sealed)
        if len(sealed) < OVERHEAD:
            raise InvalidTag
        return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], self._bound(seq))


class SealedWriter:
    """Collects a message, then writes it sealed through the layout's writer."""

    def __init__(self, inner_writer, seal: Seal, seq: int):
        self.inner, self.seal, self.seq = inner_writer, seal, seq
        self.buffer = bytearray()

    def write(self, data) -> None:
        self.buffer += data

    def commit(self, placed=None) -> None:
        sealed = self.seal.seal(self.seq, self.buffer)
        self.inner.write(HEADER.pack(len(sealed)))
        self.inner.write(sealed)
        self.inner.commit(placed)

    def abort(self) -> None:
        self.inner.abort()


class SealedFolder:
    """Any layout, with every message sealed on write and opened on read."""

    def __init__(self, inner, secret: bytes, run_id: str):
        if not run_id:
            raise ConfigError("encryption needs a run id shared by every party")
        self.inner = inner
        self.max_message = inner.max_message
        inner.max_message += HEADER.size + OVERHEAD  # what the sealed files may hold
        self._out = {p: Seal(secret, run_id, inner.pid, p) for p in inner.peers()}
        self._in = {p: Seal(secret, run_id, p, inner.pid) for p in inner.peers()}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def open_message(self, peer: int, seq: int) -> SealedWriter:
        return SealedWriter(self.inner.open_message(peer, seq), self._out[peer], seq)

    def look(self, peer: int, seq: int, peek: bool = False):
        decision, content = self.inner.look(peer, seq, peek)
        if decision.verdict is not mailbox.Verdict.DELIVER or peek:
            return decision, None
        if not isinstance(content, (bytes, bytearray)):
            with content:  # a large message came as an open file
                content = content.read()
        try:
            plain = self._in[peer].open(seq, memoryview(content)[HEADER.size:])
        except InvalidTag:
            raise CorruptMessage(
                f"channel {min(peer, self.inner.pid)}-{max(peer, self.inner.pid)}: message {seq} from "
                f"party {peer} failed authentication: replayed, reordered, swapped, altered, or sealed "
                "with another run's secret") from None
        (length,) = HEADER.unpack_from(plain)
        if length != len(plain) - HEADER.size or length > self.max_message:
            raise CorruptMessage(f"message {seq} from party {peer}: bad length inside the seal")
        return mailbox.Decision(mailbox.Verdict.DELIVER, length=length), bytearray(plain)
