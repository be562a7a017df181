"""A site's result, sealed to the sites that may read it (PROTOCOL.md,
"Sealed results"). Pure: bytes and keys in, bytes or a named refusal
(``ResultError``) out; the files are ``effects.py``'s (sharing) and
``submitter.py``'s (collecting).

The result's bytes are encrypted once with a fresh 32-byte content key
(ChaCha20-Poly1305, 12-byte zero nonce: the key is never used twice), and
the content key is sealed to each reader's X25519 signed prekey (its DID
document's ``#signed-prekey``) with HPKE (RFC 9180, base mode: DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; ``enc || ciphertext``). Both
take the result's header lines as their associated data (``info`` for
HPKE), so that a sealed result moved to another run, site or pid opens
nowhere. The whole is then signed by the producing site (signature.py,
kind ``result``): the server stores ciphertext only, and can neither read
nor alter it unnoticed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import SyqureError
from ..files.peer_json import json_of
from ..keys.sitekey import PublicKey, Refused, b64u, unb64u

FORMAT = "syqure-wf sealed result 1"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
NONCE = bytes(12)
_FIELDS = {"format", "run_id", "submitter", "site", "pid", "manifest", "readers", "ciphertext"}


class ResultError(SyqureError):
    """A result this site must not use (or cannot open)."""


@dataclass(frozen=True)
class About:
    """Whose result of which run: what both the seal and the reader check."""
    run_id: str
    submitter: str
    site: str
    pid: int
    manifest: str  # sha256:… of the manifest the run ran

    def header(self) -> bytes:
        return (f"{FORMAT}\nrun {self.run_id}\nsubmitter {self.submitter}\nsite {self.site}\npid {self.pid}\n"
                f"manifest {self.manifest}\n").encode()


def seal(data: bytes, about: About, readers: list[PublicKey]) -> bytes:
    """``data`` sealed to every key in ``readers``: the body a site signs."""
    content = os.urandom(32)
    aad = about.header()
    sealed = [{"email": r.email, "key": r.fingerprint,
               "sealed_key": b64u(SUITE.encrypt(content, X25519PublicKey.from_public_bytes(r.prekey), info=aad))}
              for r in readers]
    return json.dumps({"format": FORMAT, "run_id": about.run_id, "submitter": about.submitter, "site": about.site,
                       "pid": about.pid, "manifest": about.manifest, "readers": sealed,
                       "ciphertext": b64u(ChaCha20Poly1305(content).encrypt(NONCE, data, aad))},
                      indent=1).encode() + b"\n"


def open_sealed(body: bytes, about: About, me: str, prekey: X25519PrivateKey) -> bytes:
    """The result's bytes, for reader ``me`` holding ``prekey``; ResultError
    for one of another run, site or pid, not sealed to ``me``, or altered."""
    doc, problem = json_of(body)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or set(doc) != _FIELDS:
        raise ResultError(f"not a sealed result ({problem or 'another shape'})")
    for field in ("run_id", "submitter", "site", "pid", "manifest"):
        if doc[field] != getattr(about, field):
            raise ResultError(f"a sealed result of {field} {str(doc[field])[:80]!r}, not {getattr(about, field)!r}: "
                              "moved or replayed")
    if not isinstance(doc["readers"], list) or len(doc["readers"]) > 64:
        raise ResultError("its readers are not a short list")
    mine = [r for r in doc["readers"] if isinstance(r, dict) and r.get("email") == me]
    if not mine:
        raise ResultError(f"not sealed to {me}")
    aad = about.header()
    try:
        content = SUITE.decrypt(unb64u(mine[0].get("sealed_key"), 80, "sealed key"), prekey, info=aad)
        if len(content) != 32:
            raise ResultError("its content key is not 32 bytes")
        text = doc["ciphertext"]
        if not isinstance(text, str):
            raise ResultError("its ciphertext is not text")
        return ChaCha20Poly1305(content).decrypt(NONCE, unb64u(text, (len(text) * 3) // 4, "ciphertext"), aad)
    except (InvalidTag, Refused, ValueError) as exc:
        raise ResultError(f"it does not open with {me}'s key: altered, or sealed to another key "
                          f"({type(exc).__name__})") from None
