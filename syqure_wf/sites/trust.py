"""Whose key a site verifies a peer's files with (PROTOCOL.md, "Signed
files"): the key a site publishes (its DID document), held against the
fingerprint this site's policy lists for it, else the one pinned in its
``known_sites``. A key that differs from either is refused; a key neither
lists is *new*: a submitted run that needs one waits for an operator who
sees its fingerprint (``decide``), and the pin is written only once they
approved (``pin``, compare-and-set under a lock).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..keys.known_sites import KnownSites
from ..keys.sitekey import PublicKey, Refused, SiteKey, load_or_create, published
from .signature import SignatureError, opened, sign, verify

POLICY, KNOWN, NEW = "policy", "known", "new"  # how a site's key is trusted here


class Trust:
    """This site's view of its peers' keys; ``policy()`` its policy (or None)."""

    def __init__(self, folder: str | os.PathLike, me: str, policy: Callable[[], object] | None = None) -> None:
        self.folder, self.me = Path(folder), me
        self.policy = policy or self._agents_policy
        self.known = KnownSites(self.folder, me)
        self._own: SiteKey | None = None

    def _agents_policy(self):
        """The policy this site's agent runs with (its pins count for ``wait``
        too), read once; None where no agent ran."""
        if not hasattr(self, "_policy"):
            from ..errors import SyqureError
            from ..files.private import read_small
            from ..files.peer_json import mapping_of
            from ..keys.sitekey import private_dir
            from .policy import load

            try:
                agent = mapping_of(read_small(private_dir(self.folder, self.me) / "agent.json", 1 << 16)) or {}
                given = agent.get("policy")
                self._policy = load(given) if isinstance(given, str) else None
            except (SyqureError, OSError):
                self._policy = None
        return self._policy

    @property
    def own(self) -> SiteKey:
        """This site's key (made and published on first use)."""
        if self._own is None:
            self._own = load_or_create(self.folder, self.me)
        return self._own

    def pins(self) -> dict[str, str]:
        try:
            return self.known.read()
        except Refused:
            return {}

    def key(self, email: str) -> tuple[PublicKey | None, str]:
        """``email``'s published key and how it is trusted here (POLICY, KNOWN,
        NEW); (None, NEW) while it publishes none. Refused for a key that is
        not the one the policy lists or the one pinned."""
        if email == self.me:
            return self.own.public(), POLICY
        key = published(self.folder, email)
        policy = self.policy()
        pin = policy.fingerprint(email) if policy is not None else None
        seen = self.pins().get(email)
        if key is None:
            return None, NEW
        if pin is not None:
            if key.fingerprint != pin:
                raise Refused(f"site {email} publishes the key {key.fingerprint}, but this site's policy lists "
                              f"{pin}: refused")
            return key, POLICY
        if seen is not None:
            if key.fingerprint != seen:
                raise Refused(f"site {email}'s key changed: {seen} is pinned here, it publishes "
                              f"{key.fingerprint} now: refused")
            return key, KNOWN
        return key, NEW

    def fingerprints(self, emails) -> dict[str, str | None]:
        """Each site's published fingerprint (None: none yet; Refused for a changed one)."""
        return {e: (k.fingerprint if k else None) for e in emails for k in [self.key(e)[0]]}

    def body(self, data: bytes | None, kind: str, signer: str, where: str) -> bytes | None:
        """The body of a file ``signer`` signed as ``kind`` (None while it
        arrives); SignatureError when unsigned, mis-signed, or its signer's key
        is unknown or not the one trusted here."""
        envelope = opened(data, kind, where)
        if envelope is None:
            return None
        try:
            key, _ = self.key(signer)
        except Refused as exc:
            raise SignatureError(f"{where}: {exc}", "key") from None
        if key is None:
            raise SignatureError(f"{where}: {signer} publishes no site key yet: nothing to verify with",
                                 "incomplete")
        return verify(envelope, key, signer, where)

    def sign(self, kind: str, body: bytes) -> bytes:
        return sign(self.own, kind, body)

    def pin(self, keys: dict[str, str | None]) -> None:
        """Pin each site's key an operator approved (Refused if another is pinned by now)."""
        for email, fp in sorted(keys.items()):
            if fp and email != self.me:
                self.known.pin(email, fp)
