"""Signed files between sites (PROTOCOL.md, "Signed files"): a manifest, a
cancel, a state and a result are each one JSON envelope around the exact
bytes its author wrote, signed with the author's site key (Ed25519, the
identity key of ``keys/sitekey.py``). Pure: bytes and keys in, the
body or a named refusal (``SignatureError``) out. Whose key a site
verifies with is ``trust.py``'s.

    {"format": "syqure-wf signed 1", "kind": "manifest", "signer": EMAIL,
     "key": "SHA256:...", "body": "<the signed JSON, as a string>",
     "signature": "<base64url, 64 bytes>"}

The signature is over ``signed_bytes``: one header line per field, then
the body's UTF-8 bytes, so that no reader re-serialises anything.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..errors import SyqureError
from ..files.peer_json import ARRIVING, json_of
from ..keys.sitekey import FINGERPRINT, PublicKey, Refused, SiteKey, b64u, unb64u

FORMAT = "syqure-wf signed 1"
KINDS = ("manifest", "cancel", "state", "result")
MAX_SIGNED = (8 << 20) + (2 << 20)  # a manifest's 8 MiB, escaped into a body, under SyftBox's 10 MB
_FIELDS = {"format", "kind", "signer", "key", "body", "signature"}
_EMAIL = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,63}@[A-Za-z0-9-][A-Za-z0-9.-]{0,252}$")


class SignatureError(SyqureError):
    """A file this site must not act on: unsigned, signed by another site or
    key, altered, or of another kind. ``code`` for machines."""

    def __init__(self, message: str, code: str = "signature") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Signed:
    kind: str
    signer: str  # the author's email
    key: str  # the fingerprint of the key that signed
    body: bytes
    signature: bytes


def signed_bytes(kind: str, signer: str, key: str, body: bytes) -> bytes:
    """What the identity key signs: the header lines, then the body."""
    return f"{FORMAT}\nkind {kind}\nsigner {signer}\nkey {key}\n".encode() + body


def sign(site: SiteKey, kind: str, body: bytes) -> bytes:
    """``body`` (UTF-8 JSON text) as a file signed by ``site``."""
    assert kind in KINDS
    signature = site.identity.sign(signed_bytes(kind, site.email, site.fingerprint, body))
    return json.dumps({"format": FORMAT, "kind": kind, "signer": site.email, "key": site.fingerprint,
                       "body": body.decode("utf-8"), "signature": b64u(signature)}, indent=1).encode() + b"\n"


def opened(data: bytes | None, kind: str, where: str = "file") -> Signed | None:
    """The envelope in ``data``: None while it is not whole JSON yet (a sync
    writes in place); SignatureError when whole but no signed ``kind``."""
    doc, problem = json_of(data)
    if problem == ARRIVING:
        return None
    if problem:
        raise SignatureError(problem, "bad_file")  # (the caller names the file)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SignatureError(f"{where} is not signed (no '{FORMAT}' envelope): refused", "unsigned")
    if set(doc) != _FIELDS:
        raise SignatureError(f"{where}: a signed envelope holds exactly {', '.join(sorted(_FIELDS))}")
    if doc["kind"] != kind:
        raise SignatureError(f"{where} is a signed {str(doc['kind'])[:20]!r}, not a {kind}: refused")
    if not isinstance(doc["signer"], str) or not _EMAIL.match(doc["signer"]):
        raise SignatureError(f"{where}: its signer is not an email")
    if not isinstance(doc["key"], str) or not re.match(FINGERPRINT, doc["key"]):
        raise SignatureError(f"{where}: its key is not a fingerprint")
    if not isinstance(doc["body"], str):
        raise SignatureError(f"{where}: its body is not text")
    try:
        signature = unb64u(doc["signature"], 64, f"{where}: signature")
        body = doc["body"].encode("utf-8")
    except (Refused, UnicodeEncodeError) as exc:
        raise SignatureError(str(exc)) from None
    return Signed(kind, doc["signer"], doc["key"], body, signature)


def verify(s: Signed, key: PublicKey, signer: str, where: str = "file") -> bytes:
    """The body of ``s`` if ``signer`` signed it with ``key`` (the key this
    site trusts for that site); SignatureError, naming the site, otherwise."""
    if s.signer != signer or key.email != signer:
        raise SignatureError(f"{where} is signed by {s.signer}, not by {signer}: refused")
    if s.key != key.fingerprint:
        raise SignatureError(f"{where} is signed with the key {s.key}, but {signer}'s key is {key.fingerprint}: "
                             "refused")
    if not key.verify(s.signature, signed_bytes(s.kind, s.signer, s.key, s.body)):
        raise SignatureError(f"{where}: {signer}'s signature does not verify: altered or forged, refused")
    return s.body
