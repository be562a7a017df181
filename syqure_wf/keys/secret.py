"""A run secret shared out of band (``encryption.secret_file`` or
``secret_env``; ``syqure-wf secret`` makes one), and the key of each
direction of a run derived from it: HKDF-SHA256 of the secret, the run id
and the direction. The other source of keys is the sites' own
(``handshake.py``); the sealing is the same (``transport/seal.py``)."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError

MIN_SECRET = 16
KEY_BYTES = 32
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
