"""The handshake between two sites' parties: a run's channel keys from the
sites' keys, with nothing shared out of band (PROTOCOL.md, "Channel keys").
Pure: bytes and keys in, keys or a named refusal (``Refused``) out; the
files are ``peerkeys.py``'s.

Each party publishes, once per run, a **contribution**: a fresh X25519
ephemeral key and the run it is for (run id, its pid and email, every
party's email in pid order, its proxy's incarnation, its site key's
fingerprint), signed with its site's Ed25519 identity key. A peer uses it
only after checking every field and the signature against the site key it
pinned. Between parties ``lo < hi`` the input key material is three X25519
results, each party computing the same from its own private keys::

    DH(e_lo, E_hi) || DH(e_lo, S_hi) || DH(s_lo, E_hi) [|| run secret]

(``e``/``E`` the ephemeral keys, ``s``/``S`` the sites' signed prekeys), and
the key of direction ``src -> dst`` is HKDF-SHA256 of it, salted with the
SHA-256 of both signed contributions (``lo``'s first), with info
``syqure-wf channel 1 {src}->{dst}``. The ephemeral keys make every run's
keys fresh and past runs safe from a later theft of a site key; the
prekeys bind the keys to the sites' published keys as well as the
signatures do.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..files.peer_json import ARRIVING, json_of
from ..keys.sitekey import FINGERPRINT, RAW, PublicKey, Refused, SiteKey, b64u, unb64u

FORMAT = "syqure-wf handshake 1"
MAX_CONTRIBUTION = 16 << 10
KEY_BYTES = 32
_FIELDS = {"format", "run", "pid", "email", "parties", "incarnation", "identity", "ephemeral", "signature"}
_TOKEN = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._@+-]{0,255}$")  # run ids, emails, incarnations: one line, no spaces
_FINGERPRINT = re.compile(FINGERPRINT)


@dataclass(frozen=True)
class Contribution:
    run_id: str
    pid: int
    email: str
    parties: tuple[str, ...]
    incarnation: str
    identity: str  # the signer's fingerprint
    ephemeral: bytes  # raw X25519 public key
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        """What the identity key signs: one field a line, UTF-8."""
        return (f"{FORMAT}\nrun {self.run_id}\npid {self.pid}\nemail {self.email}\n"
                f"parties {','.join(self.parties)}\nincarnation {self.incarnation}\n"
                f"identity {self.identity}\nephemeral {self.ephemeral.hex()}\n").encode()

    def encode(self) -> bytes:
        return json.dumps({"format": FORMAT, "run": self.run_id, "pid": self.pid, "email": self.email,
                           "parties": list(self.parties), "incarnation": self.incarnation,
                           "identity": self.identity, "ephemeral": b64u(self.ephemeral),
                           "signature": b64u(self.signature)}, indent=1).encode() + b"\n"


def contribute(site: SiteKey, ephemeral: X25519PrivateKey, run_id: str, pid: int, parties: list[str],
               incarnation: str) -> Contribution:
    """This party's contribution to ``run_id``, signed with its site's identity key."""
    unsigned = Contribution(run_id, pid, site.email, tuple(parties), incarnation, site.fingerprint,
                            ephemeral.public_key().public_bytes(*RAW))
    for value in (run_id, site.email, incarnation, *parties):
        _token(value, "a contribution field")
    return Contribution(**{**unsigned.__dict__, "signature": site.identity.sign(unsigned.signed_bytes())})


def _token(value, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise Refused(f"{what} {str(value)[:80]!r} is not allowed")
    return value


def parse(data: bytes, where: str = "contribution") -> Contribution | None:
    """A peer's contribution file: None while it is not whole JSON yet (a sync
    writes in place); Refused when whole but malformed."""
    if len(data) > MAX_CONTRIBUTION:
        raise Refused(f"{where} is larger than {MAX_CONTRIBUTION} bytes")
    doc, problem = json_of(data)
    if problem == ARRIVING:
        return None
    if problem:
        raise Refused(f"{where}: {problem}")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or set(doc) != _FIELDS:
        raise Refused(f"{where} is not a {FORMAT} contribution")
    parties = doc["parties"]
    if not isinstance(parties, list) or not 2 <= len(parties) <= 64:
        raise Refused(f"{where}: parties must list 2 to 64 emails")
    pid = doc["pid"]
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid < len(parties):
        raise Refused(f"{where}: pid {pid!r} is not one of the run's")
    if not isinstance(doc["identity"], str) or not _FINGERPRINT.match(doc["identity"]):
        raise Refused(f"{where}: identity is not a key fingerprint")
    return Contribution(
        run_id=_token(doc["run"], f"{where}: run"), pid=pid, email=_token(doc["email"], f"{where}: email"),
        parties=tuple(_token(e, f"{where}: party") for e in parties),
        incarnation=_token(doc["incarnation"], f"{where}: incarnation"), identity=doc["identity"],
        ephemeral=unb64u(doc["ephemeral"], 32, f"{where}: ephemeral key"),
        signature=unb64u(doc["signature"], 64, f"{where}: signature"))


def verify(c: Contribution, key: PublicKey, run_id: str, pid: int, parties: list[str]) -> Contribution:
    """``c`` as party ``pid`` of ``run_id`` (``parties`` in pid order), signed by
    ``key`` (that site's pinned key). Refused, naming the site, otherwise."""
    site = f"party {pid} ({parties[pid]})"
    if c.run_id != run_id:
        raise Refused(f"{site}: its key contribution is for run {c.run_id!r}, not {run_id!r} (replayed?)")
    if c.pid != pid or c.email != parties[pid] or c.email != key.email:
        raise Refused(f"{site}: its key contribution is party {c.pid}'s ({c.email}): swapped or replayed")
    if list(c.parties) != list(parties):
        raise Refused(f"{site}: its key contribution names the parties {','.join(c.parties)}, "
                      f"not {','.join(parties)}")
    if c.identity != key.fingerprint:
        raise Refused(f"{site}: its key contribution is signed as {c.identity}, but its site key is "
                      f"{key.fingerprint}")
    if not key.verify(c.signature, c.signed_bytes()):
        raise Refused(f"{site}: the signature of its key contribution does not verify with its site key "
                      f"{key.fingerprint}: altered or forged")
    return c


def judge_key(email: str, found: str, known: str | None, pinned: str | None) -> bool:
    """Whether ``found``, the key ``email``'s site publishes, may be used, and
    is new (True: pin it now). A pin from the policy (``pinned``) decides; else
    the key seen first (``known``); a key that changed is Refused, with both."""
    if pinned is not None and found != pinned:
        raise Refused(f"site {email} publishes the key {found}, but this site's policy pins {pinned}: "
                      "refused")
    if pinned is None and known is not None and found != known:
        raise Refused(f"site {email}'s key changed: it was {known} when first seen, it is {found} now: "
                      f"refused (if {email} really made a new key, check it with them, then "
                      f"'syqure-wf keys --forget {email}')")
    return found != known


def channel_keys(site: SiteKey, ephemeral: X25519PrivateKey, mine: Contribution,
                 peer: PublicKey, theirs: Contribution, psk: bytes | None = None) -> tuple[bytes, bytes]:
    """The keys of this party's two directions with the peer: (to it, from it)."""
    me, other = mine.pid, theirs.pid
    if me == other:
        raise Refused(f"party {other}: a contribution of this party's own pid")
    peer_e = X25519PublicKey.from_public_bytes(theirs.ephemeral)
    peer_s = X25519PublicKey.from_public_bytes(peer.prekey)
    try:
        ee = ephemeral.exchange(peer_e)
        if me < other:  # DH(e_lo, S_hi), DH(s_lo, E_hi)
            es, se = ephemeral.exchange(peer_s), site.prekey.exchange(peer_e)
        else:
            es, se = site.prekey.exchange(peer_e), ephemeral.exchange(peer_s)
    except ValueError:  # a low-order point: no shared secret
        raise Refused(f"party {other} ({theirs.email}): its keys give no shared secret") from None
    lo, hi = (mine, theirs) if me < other else (theirs, mine)
    salt = hashlib.sha256(lo.signed_bytes() + hi.signed_bytes()).digest()
    ikm = ee + es + se + (psk or b"")

    def key(src: int, dst: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt,
                    info=f"syqure-wf channel 1 {src}->{dst}".encode()).derive(ikm)

    return key(me, other), key(other, me)
