"""Sites' keys and the handshake (issue 23): the pure handshake and its
refusals, the key files and DID documents attacked, the proxy's side of the
handshake over real run folders, and the settings that turn it off. The keys
command and parties that seal differently: tests/system/test_seal.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from conftest import REPO

from syqure_wf.errors import ConfigError
from syqure_wf.keys import handshake, sitekey
from syqure_wf.keys.known_sites import KnownSites
from syqure_wf.keys.handshake import channel_keys, contribute, judge_key, verify
from syqure_wf.transport.seal import Seal
from syqure_wf.keys.sitekey import Refused, new_site_key

EMAILS = ["cp0@hospital-a.org", "cp1@hospital-b.org", "cp2@hospital-c.org"]
RUN = "run-23"


class Party:
    """One party's site key, ephemeral key and contribution to a run."""

    def __init__(self, pid: int, run: str = RUN, site=None, incarnation: str = "aaaa"):
        self.pid = pid
        self.site = site or new_site_key(EMAILS[pid], Path("/nowhere"))
        self.ephemeral = X25519PrivateKey.generate()
        self.contribution = contribute(self.site, self.ephemeral, run, pid, EMAILS, incarnation)

    @property
    def public(self):
        return self.site.public()

    def keys_with(self, other: "Party", psk=None):
        theirs = handshake.parse(other.contribution.encode())
        verify(theirs, other.public, RUN, other.pid, EMAILS)
        return channel_keys(self.site, self.ephemeral, self.contribution, other.public, theirs, psk)


# -- the handshake, pure

def test_both_ends_derive_the_same_keys_one_per_direction():
    a, b, c = Party(0), Party(1), Party(2)
    a_out, a_in = a.keys_with(b)
    b_out, b_in = b.keys_with(a)
    assert (a_out, a_in) == (b_in, b_out) and a_out != a_in
    assert a.keys_with(c)[0] not in (a_out, a_in)  # every pair its own
    sealed = Seal(a_out, RUN, 0, 1).seal(0, b"share")
    assert Seal(b_in, RUN, 0, 1).open(0, sealed) == b"share"
    with pytest.raises(InvalidTag):  # the other direction's key
        Seal(b_out, RUN, 0, 1).open(0, sealed)
    with pytest.raises(InvalidTag):  # a message presented as the other direction's
        Seal(b_in, RUN, 1, 0).open(0, sealed)
    # a fresh contribution per run: the same sites, the same run id, other keys
    assert Party(0, site=a.site).keys_with(b) != (a_out, a_in)
    assert a.keys_with(b, psk=os.urandom(32)) != (a_out, a_in)  # a run secret is mixed in


def test_a_contribution_whose_bytes_changed_is_refused():
    a, b = Party(0), Party(1)
    doc = json.loads(b.contribution.encode())
    other = X25519PrivateKey.generate().public_key().public_bytes(*sitekey.RAW)
    doc["ephemeral"] = sitekey.b64u(other)  # a server's own key, under the site's signature
    with pytest.raises(Refused, match=r"party 1 \(cp1@hospital-b.org\): the signature .* does not verify"):
        verify(handshake.parse(json.dumps(doc).encode()), b.public, RUN, 1, EMAILS)
    forged = contribute(new_site_key(EMAILS[1], Path("/x")), X25519PrivateKey.generate(), RUN, 1, EMAILS, "bbbb")
    with pytest.raises(Refused, match="signed as SHA256:.* but its site key is SHA256:"):
        verify(forged, b.public, RUN, 1, EMAILS)
    assert a.keys_with(b)  # the genuine one passes


def test_a_contribution_for_another_run_party_or_roster_is_refused():
    b = Party(1)
    with pytest.raises(Refused, match="for run 'run-23', not 'run-24' \\(replayed"):
        verify(b.contribution, b.public, "run-24", 1, EMAILS)
    replayed = Party(1, run="run-22", site=b.site).contribution  # the same site's, another run's
    with pytest.raises(Refused, match="replayed"):
        verify(replayed, b.public, RUN, 1, EMAILS)
    with pytest.raises(Refused, match="is party 1's .*swapped or replayed"):  # presented as party 2's
        verify(b.contribution, b.public, RUN, 2, [EMAILS[0], EMAILS[2], EMAILS[1]])
    with pytest.raises(Refused, match="names the parties"):
        verify(b.contribution, b.public, RUN, 1, EMAILS[:2])


def test_malformed_contributions():
    b = Party(1)
    raw = b.contribution.encode()
    assert handshake.parse(raw[:-20]) is None  # still arriving
    for doc, match in (({**json.loads(raw), "extra": 1}, "not a syqure-wf handshake 1"),
                       ({**json.loads(raw), "pid": 7}, "pid 7"),
                       ({**json.loads(raw), "email": "a b"}, "not allowed"),
                       ({**json.loads(raw), "ephemeral": "AAAA"}, "holds 3 bytes")):
        with pytest.raises(Refused, match=match):
            handshake.parse(json.dumps(doc).encode())
    with pytest.raises(Refused, match="nested too deep"):
        handshake.parse(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(Refused, match="larger than"):
        handshake.parse(b" " * (handshake.MAX_CONTRIBUTION + 1))


def test_a_key_that_changed_is_refused_naming_both():
    old, new = new_site_key(EMAILS[1], Path("/x")).fingerprint, new_site_key(EMAILS[1], Path("/y")).fingerprint
    assert judge_key(EMAILS[1], old, None, None) is True  # first sight: pin it
    assert judge_key(EMAILS[1], old, old, None) is False
    with pytest.raises(Refused) as exc:
        judge_key(EMAILS[1], new, old, None)
    assert EMAILS[1] in str(exc.value) and old in str(exc.value) and new in str(exc.value)
    assert judge_key(EMAILS[1], new, old, new) is True  # the policy's pin decides, and is remembered
    with pytest.raises(Refused, match="policy pins"):
        judge_key(EMAILS[1], old, old, new)


# -- key files and DID documents: everything a peer wrote is hostile

def did_of(key, domain="syftbox.net") -> bytes:
    return json.dumps(key.did_document(domain)).encode()


def test_did_documents_attacked(tmp_path):
    key = new_site_key(EMAILS[1], tmp_path / "k")
    good = sitekey.parse_did(did_of(key), EMAILS[1])
    assert good.fingerprint == key.fingerprint and good.prekey == key.prekey_raw
    assert sitekey.parse_did(did_of(key)[:-30], EMAILS[1]) is None  # a sync still writing it
    with pytest.raises(Refused, match="DID of 'cp1@hospital-b.org', not of cp2@hospital-c.org"):
        sitekey.parse_did(did_of(key), EMAILS[2])
    with pytest.raises(Refused, match="larger than"):
        sitekey.parse_did(did_of(key) + b" " * sitekey.MAX_DID, EMAILS[1])
    with pytest.raises(Refused, match="nested too deep"):
        sitekey.parse_did(b'{"id": ' + b"[" * 30000 + b"]" * 30000 + b"}", EMAILS[1])
    doc = key.did_document("syftbox.net")
    doc["keyAgreement"][0]["publicKeyJwk"]["x"] = sitekey.b64u(os.urandom(32))  # a prekey the site never signed
    with pytest.raises(Refused, match="not signed by the identity key"):
        sitekey.parse_did(json.dumps(doc).encode(), EMAILS[1])
    doc["verificationMethod"] = [{"id": "x"}] * 100
    with pytest.raises(Refused, match="short list"):
        sitekey.parse_did(json.dumps(doc).encode(), EMAILS[1])
    # a link in place of the published document is never followed
    public = tmp_path / "datasites" / EMAILS[1] / "public"
    public.mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_bytes(did_of(key))
    (public / "did.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(Refused, match="symbolic link"):
        sitekey.published(tmp_path, EMAILS[1])


def test_own_key_made_once_reused_and_never_read_through_a_link(tmp_path):
    key = sitekey.load_or_create(tmp_path, EMAILS[0])
    path = tmp_path / "syqure-wf" / EMAILS[0] / "site.jwks.json"
    assert key.path == path and path.stat().st_mode & 0o777 == 0o600
    assert sitekey.published(tmp_path, EMAILS[0]).fingerprint == key.fingerprint
    assert sitekey.load_or_create(tmp_path, EMAILS[0]).fingerprint == key.fingerprint
    assert "datasites" not in str(path)  # beside the synced tree, never in it
    os.chmod(path, 0o644)
    with pytest.raises(Refused, match="owner-only"):
        sitekey.load_or_create(tmp_path, EMAILS[0])
    os.chmod(path, 0o600)
    moved = tmp_path / "stolen.json"
    path.rename(moved)
    path.symlink_to(moved)
    with pytest.raises(Refused, match="symbolic link"):
        sitekey.load_or_create(tmp_path, EMAILS[0])
    path.unlink()
    # its DID is out, its private part gone: refused, never silently replaced
    with pytest.raises(Refused, match="its private part is not here"):
        sitekey.load_or_create(tmp_path, EMAILS[0])


def test_a_syft_crypto_key_is_reused(tmp_path):
    """syft-crypto keeps its key in .syftbox/<8 hex>/pvt.jwks.json beside the
    SyftBox folder and publishes its DID: that key is the site's."""
    folder = tmp_path / "SyftBox"
    theirs = new_site_key(EMAILS[0], Path("x"))
    store = tmp_path / ".syftbox" / "0123abcd"
    store.mkdir(parents=True)
    private = theirs.private_document()
    for jwk in private.values():
        del jwk["x"]  # as jwcrypto may write it: d alone
    (store / "pvt.jwks.json").write_text(json.dumps(private))
    os.chmod(store / "pvt.jwks.json", 0o600)
    public = folder / "datasites" / EMAILS[0] / "public"
    public.mkdir(parents=True)
    (public / "did.json").write_bytes(did_of(theirs))
    key = sitekey.load_or_create(folder, EMAILS[0])
    assert key.fingerprint == theirs.fingerprint and key.path == store / "pvt.jwks.json"
    assert not (folder / "syqure-wf" / EMAILS[0] / "site.jwks.json").exists()


def test_known_sites_pin_and_forget(tmp_path):
    known = KnownSites(tmp_path, EMAILS[0])
    fp = new_site_key(EMAILS[1], Path("x")).fingerprint
    known.pin(EMAILS[1], fp)
    assert known.get(EMAILS[1]) == fp and known.path.stat().st_mode & 0o777 == 0o600
    assert known.forget(EMAILS[1]) and known.get(EMAILS[1]) is None
    known.path.write_text("cp1@hospital-b.org not-a-fingerprint\n")
    with pytest.raises(Refused, match="line 1"):
        known.read()


# -- the proxy's side over real run folders (PeerKeys)

class Sealed:
    def __init__(self):
        self.keys = {}

    def set_keys(self, peer, out_key, in_key):
        self.keys[peer] = (out_key, in_key)


def peer_keys(folder: Path, pid: int, incarnation: str, pinned=None):
    from syqure_wf.keys.peerkeys import PeerKeys
    from syqure_wf.transport.syftbox import SyftboxFolder

    box = SyftboxFolder(folder, pid, EMAILS[:2], RUN)
    box.prepare()
    keys = PeerKeys(box, Sealed(), folder, incarnation, pinned)
    return keys


def watch_of(pid: int, incarnation: str | None = None):
    from syqure_wf.transport.status import PeerWatch

    watch = PeerWatch(pid, RUN, synced=True)
    if incarnation:  # seen running: its heartbeat moved
        for beat in (1, 2):
            watch.observe({"run_id": RUN, "incarnation": incarnation, "heartbeat": beat, "state": "running"}, beat)
    return watch


def test_a_contribution_found_at_the_first_look_waits_for_its_writer(tmp_path):
    """A dead run's contribution under the same run id (Biovault reruns in one
    folder) is not used until it changes or its writer is seen running."""
    a = peer_keys(tmp_path, 0, "inc-a")
    stale = peer_keys(tmp_path, 1, "dead-b")
    stale.publish()  # left by an earlier run
    assert not a.poll(1, watch_of(1), 0.0, 30) and a.pending == {1}
    assert not a.poll(1, watch_of(1, "live-b"), 1.0, 30)  # another incarnation runs
    b = peer_keys(tmp_path, 1, "live-b")
    b.publish()  # the running peer's own: changed since the first look
    assert a.poll(1, watch_of(1), 2.0, 30) and a.pending == set()
    a.publish()
    assert b.poll(0, watch_of(0), 0.0, 30) is False  # found at b's first look: its writer must be seen
    assert b.poll(0, watch_of(0, "inc-a"), 1.0, 30)
    assert a.sealed.keys[1] == b.sealed.keys[0][::-1]
    assert KnownSites(tmp_path, EMAILS[0]).get(EMAILS[1]) == b.site.fingerprint


def test_a_replayed_contribution_and_a_changed_key_fail_naming_the_site(tmp_path):
    a = peer_keys(tmp_path, 0, "inc-a")
    assert not a.poll(1, watch_of(1), 0.0, 30)  # nothing there at the first look
    other_run = Party(1, run="run-22", site=sitekey.load_or_create(tmp_path, EMAILS[1]), incarnation="old")
    target = tmp_path / "datasites" / EMAILS[1] / "app_data/syqure/runs" / RUN / "keys" / "party-1.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(other_run.contribution.encode())  # the server puts another run's there
    with pytest.raises(Refused, match=r"party 1 \(cp1@hospital-b.org\).*run-22.*replayed"):
        a.poll(1, watch_of(1), 1.0, 30)
    # site 1 pinned, then its published key changes: refused before any key is set
    KnownSites(tmp_path, EMAILS[0]).pin(EMAILS[1], new_site_key(EMAILS[1], Path("x")).fingerprint)
    again = peer_keys(tmp_path, 0, "inc-a2")
    with pytest.raises(Refused, match=f"site {EMAILS[1]}'s key changed: it was SHA256:.*, it is SHA256:"):
        again.poll(1, watch_of(1), 0.0, 30)
    assert again.sealed.keys == {}


def test_a_peer_that_runs_but_publishes_no_key_is_named_after_the_bound(tmp_path):
    a = peer_keys(tmp_path, 0, "inc-a")
    live = watch_of(1, "b")
    assert not a.poll(1, live, 10.0, 30)
    with pytest.raises(Refused, match=r"party 1 \(cp1@hospital-b.org\) runs, but no key of it could be verified "
                                      r"within 30 s: no DID document"):
        a.poll(1, live, 41.0, 30)


# -- settings

ENGINE = {"name": "mpyc", "program": str(REPO / "examples/allele-counts/allele_counts.py")}


def run_config(tmp_path: Path, **extra) -> Path:
    cfg = {"layout": "syftbox", "syftbox": {"folder": str(tmp_path)}, "run_id": RUN, "engine": ENGINE,
           "parties": [{"pid": p, "email": e} for p, e in enumerate(EMAILS)], **extra}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_sealing_is_on_in_the_syftbox_layout_unless_turned_off(tmp_path):
    from syqure_wf.run import config

    on = config.load(run_config(tmp_path)).proxy_settings(0)
    assert on.sealing == "site-keys"
    path = run_config(tmp_path)
    path.write_text(path.read_text() + "encryption: off\n")  # YAML's off: false
    cfg = config.load(path)
    assert cfg.proxy_settings(0).sealing == "off" and cfg.resolved()["encryption"] == "off"
    assert config.load(None, {"encryption": "off", "engine": ENGINE}).proxy_settings(0).sealing == "off"
    assert config.load(None, {"engine": ENGINE}).proxy_settings(0).sealing == "off"  # shared layout, no secret
    pins = {EMAILS[1]: new_site_key(EMAILS[1], Path("x")).fingerprint}
    assert config.load(run_config(tmp_path, encryption={"pinned": pins})).proxy_settings(0).pinned == pins
    with pytest.raises(ConfigError, match="encryption.pinned: sites' keys seal the syftbox layout only"):
        config.load(None, {"encryption": {"pinned": pins}, "engine": ENGINE})
    os.environ["SYQURE_TEST_SHORT_SECRET"] = "abcd"
    try:
        with pytest.raises(ConfigError, match="too short"):
            config.load(None, {"encryption": {"secret_env": "SYQURE_TEST_SHORT_SECRET"}, "engine": ENGINE}).secret()
    finally:
        del os.environ["SYQURE_TEST_SHORT_SECRET"]


def test_a_submitted_run_cannot_turn_sealing_off(tmp_path):
    from syqure_wf.sites.manifest import from_config

    (tmp_path / "p.py").write_text("print(1)\n")
    for enc in (False, {"secret_file": "x"}):
        with pytest.raises(ConfigError, match="always sealed by the sites' keys"):
            from_config({"engine": {"name": "mpyc", "program": "p.py"}, "encryption": enc}, "cfg", tmp_path,
                        EMAILS, EMAILS[0], 60)


def test_the_policy_pins_the_co_parties_keys(tmp_path):
    import yaml

    from syqure_wf.sites import policy

    fp = new_site_key(EMAILS[1], Path("x")).fingerprint
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"submitters": ["*"], "peers": [
        "*", {"email": EMAILS[1], "fingerprint": fp}, {"email": "other@x.org", "fingerprint": fp}]}))
    p = policy.load(path)
    assert p.fingerprint(EMAILS[1]) == fp and p.fingerprint(EMAILS[2]) is None
    path.write_text(yaml.safe_dump({"peers": [{"email": EMAILS[1], "fingerprint": "sha256:not-a-key"}]}))
    with pytest.raises(ConfigError, match="peers"):
        policy.load(path)
