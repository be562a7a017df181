"""A site's long-term key, in the form SyftBox's own end-to-end encryption
(syft-crypto) uses, and the keys of the sites it has seen (PROTOCOL.md,
"Site keys").

- **The key pair**: an Ed25519 identity key and an X25519 signed prekey
  (the identity key signs its raw 32 bytes). Private, owner-only, outside
  the synced tree, as syft-crypto writes it (``pvt.jwks.json``: each key a
  JWK with ``d``). A key syft-crypto made for this email is reused (it is
  found in ``~/.syftbox/*/`` or beside the SyftBox folder, by the DID it
  published or by its client's server); otherwise the site's own is
  ``{SyftBox folder}/syqure-wf/{email}/site.jwks.json``, made on first use.
- **The public part**: ``datasites/{email}/public/did.json``, a did:web DID
  document with the identity key (``#identity-key``, Ed25519, JWK) and the
  prekey (``#signed-prekey``, X25519, JWK with its ``signature``).
- **The fingerprint**: ``SHA256:`` and the unpadded base64 of the SHA-256
  of the raw identity key (as ``ssh-keygen -l`` shows a host key).
- **Known sites**: ``{SyftBox folder}/syqure-wf/{email}/known_sites``, one
  ``email fingerprint`` line per peer pinned at first sight (as SSH's
  ``known_hosts``).

Reading a peer's DID document trusts nothing: never through a link,
bounded in size and depth, its email checked.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from ..errors import SyqureError
from ..files.private import make_private_dir, read_small, write_private
from ..files.peer_json import ARRIVING, json_of

MAX_DID = 64 << 10  # a DID document with two keys is under 2 KB
MAX_KEY_FILE = 64 << 10
MAX_KNOWN = 1 << 20
MAX_METHODS = 16
OWN_KEY = "site.jwks.json"
SYFT_KEY = "pvt.jwks.json"  # syft-crypto's name
KNOWN = "known_sites"
FINGERPRINT = r"^SHA256:[A-Za-z0-9+/]{43}$"  # what ``fingerprint`` gives (the run schema repeats it)
RAW = (Encoding.Raw, PublicFormat.Raw)


class Refused(SyqureError):
    """A key, a DID document or a handshake contribution this site must not use."""


# -- encodings

def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64u(text, size: int, what: str) -> bytes:
    """``size`` bytes from unpadded base64url ``text`` (Refused otherwise)."""
    if not isinstance(text, str) or len(text) > 4 * size:
        raise Refused(f"{what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise Refused(f"{what} is not base64url") from None
    if len(data) != size:
        raise Refused(f"{what} holds {len(data)} bytes, not {size}")
    return data


def fingerprint(identity: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(identity).digest()).decode().rstrip("=")


def did_id(email: str, domain: str) -> str:
    return f"did:web:{domain}:{urllib.parse.quote(email, safe='')}"


def raw_public(key) -> bytes:
    return key.public_key().public_bytes(*RAW)


# -- this site's key pair

@dataclass
class SiteKey:
    email: str
    identity: Ed25519PrivateKey
    prekey: X25519PrivateKey
    path: Path  # where the private part is

    @property
    def identity_raw(self) -> bytes:
        return raw_public(self.identity)

    @property
    def prekey_raw(self) -> bytes:
        return raw_public(self.prekey)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity_raw)

    def public(self, domain: str = "localhost") -> "PublicKey":
        return PublicKey(self.email, self.identity_raw, self.prekey_raw, self.fingerprint,
                         did_id(self.email, domain))

    def did_document(self, domain: str) -> dict:
        """The public part, as syft-crypto publishes it."""
        did = did_id(self.email, domain)
        signature = self.identity.sign(self.prekey_raw)
        return {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/ed25519-2020/v1",
                         "https://w3id.org/security/suites/x25519-2020/v1"],
            "id": did,
            "verificationMethod": [{
                "id": f"{did}#identity-key", "type": "Ed25519VerificationKey2020", "controller": did,
                "publicKeyJwk": {"kty": "OKP", "crv": "Ed25519", "x": b64u(self.identity_raw),
                                 "kid": "identity-key", "use": "sig"}}],
            "keyAgreement": [{
                "id": f"{did}#signed-prekey", "type": "X25519KeyAgreementKey2020", "controller": did,
                "publicKeyJwk": {"kty": "OKP", "crv": "X25519", "x": b64u(self.prekey_raw),
                                 "kid": "signed-prekey", "use": "enc", "signature": b64u(signature)}}],
        }

    def private_document(self) -> dict:
        def jwk(key, crv):
            d = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            return {"kty": "OKP", "crv": crv, "x": b64u(raw_public(key)), "d": b64u(d)}
        return {"identity_key": jwk(self.identity, "Ed25519"), "signed_prekey": jwk(self.prekey, "X25519")}


def new_site_key(email: str, path: Path) -> SiteKey:
    return SiteKey(email, Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), path)


def parse_private(data: bytes, email: str, path: Path) -> SiteKey:
    """A ``pvt.jwks.json`` (syft-crypto's form): each key's ``d``, its ``x`` consistent."""
    doc = json_of(data)[0]
    if not isinstance(doc, dict):
        raise Refused(f"{path} is not a key file")
    keys = []
    for name, crv, cls in (("identity_key", "Ed25519", Ed25519PrivateKey), ("signed_prekey", "X25519", X25519PrivateKey)):
        jwk = doc.get(name)
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != crv:
            raise Refused(f"{path}: {name} is not an {crv} JWK")
        key = cls.from_private_bytes(unb64u(jwk.get("d"), 32, f"{path}: {name}.d"))
        if "x" in jwk and unb64u(jwk["x"], 32, f"{path}: {name}.x") != raw_public(key):
            raise Refused(f"{path}: {name}: its public part does not match its private part")
        keys.append(key)
    return SiteKey(email, keys[0], keys[1], path)


def read_private(path: Path, email: str) -> SiteKey | None:
    """This site's key file: owner-only, never through a link (None if absent)."""
    try:
        data = read_small(path, MAX_KEY_FILE + 1)
    except SyqureError as exc:
        raise Refused(f"the site key {exc}") from None
    if data is None:
        return None
    st = os.stat(path, follow_symlinks=False)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise Refused(f"the site key {path} must be this user's and owner-only (chmod 600 {path})")
    if len(data) > MAX_KEY_FILE:
        raise Refused(f"the site key {path} is larger than {MAX_KEY_FILE} bytes")
    return parse_private(data, email, path)


# -- a site's public part, as published (a peer's: hostile until checked)

@dataclass(frozen=True)
class PublicKey:
    email: str
    identity: bytes  # raw Ed25519 public key
    prekey: bytes  # raw X25519 public key, signed by the identity key
    fingerprint: str
    did: str

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.identity).verify(signature, data)
            return True
        except InvalidSignature:
            return False


def _method(entries, suffix: str, where: str) -> dict:
    if not isinstance(entries, list) or len(entries) > MAX_METHODS:
        raise Refused(f"{where}: expected a short list of keys")
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"].endswith(suffix):
            jwk = entry.get("publicKeyJwk")
            if not isinstance(jwk, dict):
                raise Refused(f"{where}: {suffix} has no publicKeyJwk")
            return jwk
    raise Refused(f"{where}: no {suffix}")


def parse_did(data: bytes, email: str, where: str = "DID document") -> PublicKey | None:
    """A DID document of ``email``'s site: None while it is not whole JSON yet
    (a sync writes in place); Refused when it is whole but not a valid key of
    ``email`` (too large, too deep, another email's, a prekey not signed by
    the identity key)."""
    if len(data) > MAX_DID:
        raise Refused(f"{where} is larger than {MAX_DID} bytes")
    doc, problem = json_of(data)
    if problem == ARRIVING:
        return None
    if problem:
        raise Refused(f"{where}: {problem}")
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise Refused(f"{where} is not a DID document")
    did = doc["id"]
    expected = ":" + urllib.parse.quote(email, safe="")
    if not (did.startswith("did:web:") and did.endswith(expected)) or len(did) > 512:
        raise Refused(f"{where} is the DID of {urllib.parse.unquote(did.rsplit(':', 1)[-1])[:80]!r}, not of {email}")
    ident = _method(doc.get("verificationMethod"), "#identity-key", where)
    agree = _method(doc.get("keyAgreement"), "#signed-prekey", where)
    if ident.get("kty") != "OKP" or ident.get("crv") != "Ed25519":
        raise Refused(f"{where}: the identity key is not Ed25519")
    if agree.get("kty") != "OKP" or agree.get("crv") != "X25519":
        raise Refused(f"{where}: the signed prekey is not X25519")
    identity = unb64u(ident.get("x"), 32, f"{where}: identity key")
    prekey = unb64u(agree.get("x"), 32, f"{where}: signed prekey")
    signature = unb64u(agree.get("signature"), 64, f"{where}: prekey signature")
    key = PublicKey(email, identity, prekey, fingerprint(identity), did)
    if not key.verify(signature, prekey):
        raise Refused(f"{where}: the signed prekey is not signed by the identity key")
    return key


def did_path(folder: Path, email: str) -> Path:
    return Path(folder).expanduser() / "datasites" / email / "public" / "did.json"


def published(folder: str | os.PathLike, email: str) -> PublicKey | None:
    """``email``'s site key as published in the SyftBox folder ``folder``
    (None while absent or arriving); Refused when it is there but unusable."""
    path = did_path(Path(folder), email)
    try:
        data = read_small(path, MAX_DID + 1)
    except (SyqureError, OSError) as exc:
        raise Refused(f"{email}'s DID document {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return None if data is None else parse_did(data, email, f"{email}'s DID document {path}")


# -- where this site's own files are, and making its key

def private_dir(folder: str | os.PathLike, email: str) -> Path:
    """The site's own folder beside the synced tree: never synced."""
    return Path(folder).expanduser() / "syqure-wf" / email


def _syft_crypto_candidates(folder: Path, email: str) -> list[Path]:
    """Key files syft-crypto may have made for this site: in the ``.syftbox``
    folder beside the SyftBox folder (its own rule) and in ``~/.syftbox``."""
    roots = {folder.parent / ".syftbox", Path("~/.syftbox").expanduser()}
    found = []
    for root in sorted(roots):
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)[:64]
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and len(entry.name) == 8:
                path = Path(entry.path) / SYFT_KEY
                if path.is_file() and not path.is_symlink():
                    found.append(path)
    return found


def _by_server(folder: Path, email: str) -> Path | None:
    """syft-crypto's own key file for this email at the server its client syncs with."""
    from ..files.syftbox_client import find_client

    client = find_client(folder)
    if client is None or not client.server_url:
        return None
    for url in {client.server_url, client.server_url.rstrip("/"), client.server_url.rstrip("/") + "/"}:
        partition = hashlib.sha256(f"{url}::{email}".encode()).hexdigest()[:8]
        path = folder.parent / ".syftbox" / partition / SYFT_KEY
        if path.is_file():
            return path
    return None


def _domain(folder: Path) -> str:
    from ..files.syftbox_client import find_client

    client = find_client(folder)
    host = urllib.parse.urlsplit(client.server_url).hostname if client and client.server_url else None
    return host or "localhost"


def load_or_create(folder: str | os.PathLike, email: str) -> SiteKey:
    """This site's key: the one its published DID names (its own file or
    syft-crypto's), or a new one, made and published now. One process at a
    time per site (a file lock): several parties of one site may start at once."""
    from filelock import FileLock

    folder = Path(folder).expanduser()
    own_dir = private_dir(folder, email)
    make_private_dir(own_dir)
    with FileLock(str(own_dir / ".site-key.lock"), timeout=60, mode=0o600):
        mine = published(folder, email)
        own = read_private(own_dir / OWN_KEY, email)
        if mine is not None:
            for key in [own] + [_try(p, email) for p in _syft_crypto_candidates(folder, email)]:
                if key is not None and key.identity_raw == mine.identity and key.prekey_raw == mine.prekey:
                    return key
            raise Refused(
                f"{did_path(folder, email)} publishes the key {mine.fingerprint} for {email}, but its private part "
                f"is not here ({own_dir / OWN_KEY}, or syft-crypto's ~/.syftbox/*/{SYFT_KEY}): restore it, or "
                "remove that DID document to make a new site key (its peers then refuse this site until "
                "they forget the old key: syqure-wf keys --forget)")
        if own is None:
            found = _by_server(folder, email)
            own = (_try(found, email) if found else None) or new_site_key(email, own_dir / OWN_KEY)
            if own.path == own_dir / OWN_KEY:
                write_private(own.path, json.dumps(own.private_document(), indent=1).encode())
        publish(folder, own)
        return own


def _try(path: Path, email: str) -> SiteKey | None:
    try:
        return read_private(path, email)
    except Refused:
        return None


PUBLIC_PERMISSIONS = {"syftperm.yaml": b"- path: '**'\n  user: '*'\n  permissions: [read]\n",
                      "syft.pub.yaml": b"rules:\n  - pattern: '**'\n    access:\n      read: ['*']\n"}


def publish(folder: Path, key: SiteKey) -> Path:
    """The DID document in the site's ``public/`` folder (readable by anyone,
    as SyftBox makes that folder; its permission files are kept if present)."""
    path = did_path(folder, key.email)
    make_private_dir(path.parent)
    if not any((path.parent / name).exists() for name in PUBLIC_PERMISSIONS):
        for name, text in PUBLIC_PERMISSIONS.items():
            write_private(path.parent / name, text)
    write_private(path, json.dumps(key.did_document(_domain(folder)), indent=2).encode() + b"\n")
    return path
