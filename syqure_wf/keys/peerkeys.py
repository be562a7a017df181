"""This party's side of the handshake (``handshake.py``) over the syftbox
run folders: it publishes its contribution, and for each peer reads that
site's DID document and contribution, judges the site's key against the
pins, and gives the sealed folder the channel keys. Files here, decisions
in ``handshake.py`` and ``sitekey.py``::

    {run folder}/keys/party-{pid}.json     a party's contribution (read: the run's parties)

A peer's contribution counts once it is this run's: it names the
incarnation whose heartbeat moves (``PeerWatch.writes_as``), or it appeared
or changed after this party's first look (written by a running peer). One
found at the first look may be a dead run's under the same run id
(Biovault reruns in one folder): it waits for either proof, and if it does
not verify it is only reported when the bound runs out.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..errors import SyqureError
from ..files.private import make_private_dir, read_small, write_private
from ..keys.handshake import MAX_CONTRIBUTION, channel_keys, contribute, judge_key, parse, verify
from ..keys.known_sites import KnownSites
from ..keys.sitekey import PublicKey, Refused, did_path, load_or_create, published


class PeerKeys:
    def __init__(self, folder, sealed, site_folder, incarnation: str, pinned: dict | None = None,
                 psk: bytes | None = None):
        self.folder, self.sealed = folder, sealed  # the syftbox layout, and the SealedFolder around it
        self.site_folder = Path(site_folder).expanduser()
        me = folder.emails[folder.pid]
        self.site = load_or_create(self.site_folder, me)
        self.known = KnownSites(self.site_folder, me)
        self.pinned, self.psk = dict(pinned or {}), psk
        self._ephemeral = X25519PrivateKey.generate()  # this run's, in memory only
        self.mine = contribute(self.site, self._ephemeral, folder.run_id, folder.pid, folder.emails, incarnation)
        self.pending = set(folder.peers())
        self.fingerprints: dict[int, str] = {}  # peers keyed, and their sites' keys
        self._keys: dict[int, PublicKey] = {}
        self._first: dict[int, str | None] = {}
        self._live_since: dict[int, float] = {}
        self._why: dict[int, str] = {}
        self._new: dict[int, bool] = {}  # peers seen first in this run: pinned once their contribution verifies

    def path(self, pid: int) -> Path:
        return self.folder.runs[pid] / "keys" / f"party-{pid}.json"

    def publish(self) -> None:
        """This party's contribution, in its run folder (prepared with its readers)."""
        make_private_dir(self.path(self.folder.pid).parent)
        write_private(self.path(self.folder.pid), self.mine.encode())

    def site_of(self, peer: int) -> str:
        return f"party {peer} ({self.folder.emails[peer]})"

    def poll(self, peer: int, watch, now: float, bound: float) -> bool:
        """One look at ``peer``: True when its keys are set now. Refused (the
        run fails, naming the site) for a key that changed or a contribution
        that does not verify; for a peer that runs and gives no usable key
        within ``bound`` seconds."""
        key = self._keys.get(peer) or self._site_key(peer)
        path = self.path(peer)
        try:
            raw = read_small(path, MAX_CONTRIBUTION + 1)
        except (SyqureError, OSError) as exc:
            raise Refused(f"{self.site_of(peer)}: its key contribution {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
        digest = hashlib.sha256(raw).hexdigest() if raw is not None else None
        first = self._first.setdefault(peer, digest)
        if raw is None:
            if key is not None:
                self._why[peer] = f"no key contribution at {path} yet"
        elif key is not None:
            fresh = digest != first
            contribution = parse(raw, f"{self.site_of(peer)}'s key contribution {path}")
            if contribution is None:
                self._why[peer] = f"its key contribution {path} is still arriving"
            else:
                try:
                    verify(contribution, key, self.folder.run_id, peer, self.folder.emails)
                except Refused as exc:
                    if fresh:
                        raise
                    self._why[peer] = f"{exc} (maybe an earlier run's: waiting for this run's)"
                    contribution = None
            if contribution is not None:
                if fresh or watch.writes_as(contribution.incarnation):
                    out_key, in_key = channel_keys(self.site, self._ephemeral, self.mine, key, contribution,
                                                   self.psk)
                    if self._new.pop(peer, False):  # first sight, pinned once its key proved itself in this run
                        self.known.pin(self.folder.emails[peer], key.fingerprint)
                    self.sealed.set_keys(peer, out_key, in_key)
                    self.pending.discard(peer)
                    self.fingerprints[peer] = key.fingerprint
                    return True
                self._why[peer] = (f"its key contribution {path} is from its proxy {contribution.incarnation}, "
                                   "not seen running (an earlier run's?)")
        if watch.live:
            since = self._live_since.setdefault(peer, now)
            if now - since > bound:
                raise Refused(f"{self.site_of(peer)} runs, but no key of it could be verified within "
                              f"{bound:g} s: {self._why.get(peer, 'nothing published')} (does that site run "
                              "an older syqure-wf, or with encryption: off?)")
        return False

    def _site_key(self, peer: int) -> PublicKey | None:
        """The peer's published site key, judged against the pins (and pinned at first sight)."""
        email = self.folder.emails[peer]
        key = published(self.site_folder, email)
        if key is None:
            self._why[peer] = f"no DID document at {did_path(self.site_folder, email)} yet"
            return None
        self._new[peer] = judge_key(email, key.fingerprint, self.known.get(email), self.pinned.get(email)) \
            and email not in self.pinned
        self._keys[peer] = key
        return key
