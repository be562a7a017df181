"""Authenticated encryption of message files.

A file sync, or its server, sees every file of every party: without
encryption it holds all parties' views at once (SECURITY.md). Every message
is sealed with AES-256-GCM under a key of its own run and direction. The
key comes from one of two sources; the sealing is the same:

- the sites' keys (``handshake.py``): layout ``syftbox``, on by default;
- a run secret shared out of band: HKDF-SHA256 of the secret (``secret_key``).

The run id, the direction and the sequence number are the associated data,
so a replayed, reordered, swapped, altered or foreign file is refused. A
fresh random nonce per message means a restarted writer never reuses one.

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

from . import mailbox
from ..errors import ConfigError, CorruptMessage
from .framing import HEADER

NONCE, TAG = 12, 16
OVERHEAD = NONCE + TAG
MIN_SECRET = 16
KEY_BYTES = 32
SECRET_SALT = b"syqure-wf seal v2"


def new_secret() -> str:
    return os.urandom(32).hex()


def read_secret(path: str | os.PathLike) -> bytes:
    """A run secret from a file: hex (as ``syqure-wf secret`` writes) or raw bytes."""
    try:
        raw = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the run secret {path}: {exc.strerror}") from None
    try:
        secret = bytes.fromhex(raw.decode())
    except ValueError:
        secret = raw
    return check_secret(secret, str(path))


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
    ``seal_into``/``open_into`` reuse the caller's buffers (no copy per message)."""

    def __init__(self, key: bytes, run_id: str, src: int, dst: int):
        self._aead = AESGCM(key)
        self._prefix = f"{run_id}|{src}->{dst}|".encode()

    def _bound(self, seq: int) -> bytes:
        return self._prefix + b"%d" % seq

    def seal(self, seq: int, plaintext) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, self._bound(seq))

    def seal_into(self, seq: int, plaintext, out: memoryview) -> bytes:
        """Ciphertext and tag into ``out`` (exactly ``len(plaintext) + TAG``); returns the nonce."""
        nonce = os.urandom(NONCE)
        self._aead.encrypt_into(nonce, plaintext, self._bound(seq), out)
        return nonce

    def open(self, seq: int, sealed) -> bytes:
        sealed = memoryview(sealed)
        if len(sealed) < OVERHEAD:
            raise InvalidTag
        return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], self._bound(seq))

    def open_into(self, seq: int, sealed: memoryview, out: memoryview) -> None:
        """``sealed`` (nonce, ciphertext, tag) opened into ``out`` (exactly ``len(sealed) - OVERHEAD``)."""
        if len(sealed) < OVERHEAD:
            raise InvalidTag
        self._aead.decrypt_into(sealed[:NONCE], sealed[NONCE:], self._bound(seq), out)


class Buffer:
    """A bytearray that keeps its memory between messages: a 1 MiB message
    costs no fresh pages (page faults) every time."""

    def __init__(self):
        self.data = bytearray()
        self.size = 0

    def reset(self) -> None:
        self.size = 0

    def append(self, chunk) -> None:
        end = self.size + len(chunk)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[self.size:end] = chunk
        self.size = end

    def view(self, size: int | None = None) -> memoryview:
        """The first ``size`` bytes (default: what was appended), grown if needed."""
        size = self.size if size is None else size
        if size > len(self.data):
            self.data.extend(bytes(size - len(self.data)))
        return memoryview(self.data)[:size]


class SealedWriter:
    """Collects a message, then writes it sealed through the layout's writer."""

    def __init__(self, inner_writer, seal: Seal, seq: int, plain: Buffer, out: Buffer):
        self.inner, self.seal, self.seq = inner_writer, seal, seq
        self.plain, self.out = plain, out
        plain.reset()

    def write(self, data) -> None:
        self.plain.append(data)

    def commit(self, placed=None) -> None:
        plain = self.plain.view()
        sealed = self.out.view(len(plain) + TAG)
        nonce = self.seal.seal_into(self.seq, plain, sealed)
        self.inner.write(HEADER.pack(NONCE + len(sealed)))
        self.inner.write(nonce)
        self.inner.write(sealed)  # the inner writer copies or writes it before returning
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
        self._out: dict[int, Seal] = {}
        self._in: dict[int, Seal] = {}
        # per peer: what is being sealed (plaintext, sealed) and what is being read
        self._buffers = {p: (Buffer(), Buffer(), Buffer()) for p in inner.peers()}
        for peer, (out_key, in_key) in (keys or {}).items():
            self.set_keys(peer, out_key, in_key)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def set_keys(self, peer: int, out_key: bytes, in_key: bytes) -> None:
        pid = self.inner.pid
        self._out[peer] = Seal(out_key, self.run_id, pid, peer)
        self._in[peer] = Seal(in_key, self.run_id, peer, pid)

    def keyed(self, peer: int) -> bool:
        return peer in self._out

    def open_message(self, peer: int, seq: int) -> SealedWriter:
        if peer not in self._out:  # the proxy never reads its party's bytes before: a bug
            raise CorruptMessage(f"no verified key for party {peer} yet: nothing may be written to it")
        plain, out, _ = self._buffers[peer]
        return SealedWriter(self.inner.open_message(peer, seq), self._out[peer], seq, plain, out)

    def look(self, peer: int, seq: int, peek: bool = False):
        if peer not in self._in:
            decision, _ = self.inner.look(peer, seq, peek=True)
            if decision.verdict is mailbox.Verdict.DELIVER and not peek:
                return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"waiting for party {peer}'s verified key"), None
            return decision, None
        decision, content = self.inner.look(peer, seq, peek)
        if decision.verdict is not mailbox.Verdict.DELIVER or peek:
            return decision, None
        sealed_buf = self._buffers[peer][2]
        size = HEADER.size + decision.length
        if isinstance(content, (bytes, bytearray)):
            sealed = memoryview(content)[HEADER.size:size]
        else:
            with content:  # a large message came as an open file
                sealed = sealed_buf.view(size)
                got = content.readinto(sealed)
                sealed = sealed[HEADER.size:got]
        # a new buffer per message: the party's socket may keep a view of it until sent
        plain = bytearray(max(0, len(sealed) - OVERHEAD))
        try:
            self._in[peer].open_into(seq, sealed, memoryview(plain))
        except InvalidTag:
            raise CorruptMessage(
                f"channel {min(peer, self.inner.pid)}-{max(peer, self.inner.pid)}: message {seq} from "
                f"party {peer} failed authentication: replayed, reordered, swapped, altered, or sealed "
                "with another run's key") from None
        length = HEADER.unpack_from(plain)[0] if len(plain) >= HEADER.size else -1
        if length != len(plain) - HEADER.size or length > self.max_message:
            raise CorruptMessage(f"message {seq} from party {peer}: bad length inside the seal")
        return mailbox.Decision(mailbox.Verdict.DELIVER, length=length), plain
