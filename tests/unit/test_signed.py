"""A run is exactly what every site signed and approved (issue 32): the
pure parts, in milliseconds. Signed files, results sealed to their readers,
the roles and disclosure limits in the decision, a new site key waiting for
an operator, and one pin of two first sights. The same, attacked through
a real SyftBox server and agents, is in test_sites.py."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from syqure_wf.sites import actions as do
from syqure_wf.sites import lifecycle as lc
from syqure_wf.sites import observations as seen
from syqure_wf.sites.manifest import encode, from_config, parse
from syqure_wf.sites.policy import Policy, decide
from syqure_wf.sites.results import About, ResultError, open_sealed, seal
from syqure_wf.sites.run import Run
from syqure_wf.sites.signature import SignatureError, opened, sign, verify
from syqure_wf.keys.known_sites import KnownSites
from syqure_wf.keys.sitekey import Refused, new_site_key

EMAILS = ["a@x.org", "b@y.org", "c@z.org"]


@pytest.fixture
def keys(tmp_path):
    return {e: new_site_key(e, tmp_path / f"{e}.jwks") for e in EMAILS}


@pytest.fixture
def manifest(tmp_path):
    program = tmp_path / "prog"
    program.mkdir()
    (program / "main.py").write_text("print('hi')\n")

    def make(to=EMAILS, inputs=None):
        raw = {"engine": {"name": "mpyc", "program": "main.py"},
               "inputs": {1: "counts", 2: "counts"} if inputs is None else inputs}
        return parse(encode(from_config(raw, "run.yaml", program, list(to), EMAILS[0], 3600, now=1000.0)))
    return make


# -- signed files

def test_a_signed_file_verifies_only_as_its_signer_wrote_it(keys):
    a, b = keys[EMAILS[0]], keys[EMAILS[1]]
    body = b'{"run_id": "r1", "state": "ready"}\n'
    data = sign(a, "state", body)
    assert verify(opened(data, "state"), a.public(), EMAILS[0]) == body
    doc = json.loads(data)
    for field, value in (("body", body.decode().replace("ready", "done")), ("signer", EMAILS[1]),
                         ("key", b.fingerprint)):
        with pytest.raises(SignatureError):  # altered, claimed by another site, or another key
            verify(opened(json.dumps({**doc, field: value}).encode(), "state"), a.public(), EMAILS[0])
    with pytest.raises(SignatureError, match="not by"):  # a's file where b's is expected
        verify(opened(data, "state"), b.public(), EMAILS[1])
    with pytest.raises(SignatureError, match="not a cancel"):  # a state never counts as a cancel
        opened(data, "cancel")
    with pytest.raises(SignatureError) as unsigned:
        opened(body, "state")
    assert unsigned.value.code == "unsigned"
    assert opened(data[:40], "state") is None  # still arriving


# -- results sealed to their readers

def test_a_result_opens_only_for_its_readers_and_only_where_it_was_made(keys):
    a, b, c = (keys[e] for e in EMAILS)
    about = About("r1", EMAILS[0], EMAILS[1], 1, "sha256:" + "1" * 64)
    body = seal(b'{"allele_count": [3, 5]}', about, [a.public()])
    assert open_sealed(body, about, EMAILS[0], a.prekey) == b'{"allele_count": [3, 5]}'
    assert b"allele_count" not in body and b"[3, 5]" not in body
    with pytest.raises(ResultError, match="not sealed to"):
        open_sealed(body, about, EMAILS[2], c.prekey)
    doc = json.loads(body)
    with pytest.raises(ResultError, match="does not open"):  # the same ciphertext relabelled as another run's
        open_sealed(json.dumps({**doc, "run_id": "r2"}).encode(), About("r2", *list(about.__dict__.values())[1:]),
                    EMAILS[0], a.prekey)
    with pytest.raises(ResultError, match="moved or replayed"):
        open_sealed(body, About("r1", EMAILS[0], EMAILS[2], 2, about.manifest), EMAILS[0], a.prekey)
    text = doc["ciphertext"]
    flipped = text[:-2] + ("A" if text[-2] != "A" else "B") + text[-1]
    with pytest.raises(ResultError, match="does not open"):  # a result altered on the server
        open_sealed(json.dumps({**doc, "ciphertext": flipped}).encode(), about, EMAILS[0], a.prekey)
    with pytest.raises(ResultError, match="does not open"):  # a reader entry given another reader's key
        open_sealed(body, about, EMAILS[0], b.prekey)


# -- what a site decides: roles, disclosure, keys

def test_roles_are_in_the_digest_so_a_permuted_run_waits_for_an_operator(manifest):
    approved = manifest()
    permuted = manifest(to=[EMAILS[1], EMAILS[0], EMAILS[2]])
    switched = manifest(inputs={1: "counts", 2: "genomes"})
    assert len({approved.digest, permuted.digest, switched.digest}) == 3
    policy = Policy(submitters=["*"], programs=[approved.digest],
                    inputs={"counts": Path("/c"), "genomes": Path("/g")})
    assert decide(approved, policy, EMAILS[2], 1000).state == lc.ACCEPTED
    for m in (permuted, switched):
        d = decide(m, policy, EMAILS[2], 1000)
        assert (d.state, d.code) == (lc.PENDING, "program")


def test_disclosure_limits_refuse_an_input_alone_or_read_too_often(manifest):
    alone = manifest(inputs={1: "counts"})
    policy = Policy(submitters=["*"], programs=[alone.digest], inputs={"counts": Path("/c")})
    d = decide(alone, policy, EMAILS[1], 1000)
    assert (d.state, d.code) == (lc.REJECTED, "disclosure") and "min_other_holders 1" in d.reason
    policy.min_other_holders = 0
    assert decide(alone, policy, EMAILS[1], 1000).state == lc.ACCEPTED
    d = decide(alone, policy, EMAILS[1], 1000, reads=20)
    assert (d.state, d.code) == (lc.REJECTED, "disclosure") and "max_reads is 20" in d.reason
    assert decide(alone, policy, EMAILS[0], 1000, reads=20).state == lc.ACCEPTED  # no input of its own


def test_a_site_key_never_met_waits_for_an_operator_a_changed_one_is_refused(manifest, keys):
    m = manifest()
    fps = {e: keys[e].fingerprint for e in EMAILS}
    found = {e: fps[e] for e in (EMAILS[0], EMAILS[2])}  # what site 1 sees published
    policy = Policy(submitters=["*"], programs=[m.digest], inputs={"counts": Path("/c")})
    d = decide(m, policy, EMAILS[1], 1000, found, {})
    assert (d.state, d.code) == (lc.PENDING, "key") and fps[EMAILS[0]] in d.reason and fps[EMAILS[2]] in d.reason
    assert decide(m, policy, EMAILS[1], 1000, found, found).state == lc.ACCEPTED  # met before (pinned)
    policy.peers = {"*": None, EMAILS[0]: fps[EMAILS[0]], EMAILS[2]: fps[EMAILS[2]]}
    assert decide(m, policy, EMAILS[1], 1000, found, {}).state == lc.ACCEPTED  # listed by the policy
    swapped = {**found, EMAILS[2]: fps[EMAILS[1]]}  # a key that is not the one listed
    d = decide(m, policy, EMAILS[1], 1000, swapped, {})
    assert (d.state, d.code) == (lc.REJECTED, "key")
    policy.peers = None
    d = decide(m, policy, EMAILS[1], 1000, swapped, found)  # nor the one pinned
    assert (d.state, d.code) == (lc.REJECTED, "key")
    policy.unlisted_programs = "reject"
    assert decide(m, policy, EMAILS[1], 1000, found, {}).state == lc.REJECTED


def test_an_approval_pins_the_keys_it_was_shown_first(manifest, keys):
    m = manifest()
    found = {e: keys[e].fingerprint for e in (EMAILS[0], EMAILS[2])}
    policy = Policy(submitters=["*"], programs=[m.digest], inputs={"counts": Path("/c")})
    run = Run.new(m.key, EMAILS[1], "inc", m.sha256, m.readers())
    run.handle(seen.Received(m, policy, None, found, {}), 1000)
    assert (run.state, run.record["code"]) == (lc.PENDING, "key")
    out = run.handle(seen.Request("approve", m.sha256, "op"), 1001)
    assert out == [do.Pin(found, "op")] and run.state == lc.PENDING  # nothing prepared before the pin stands
    assert any(isinstance(a, do.Prepare) for a in run.handle(seen.Pinned("op"), 1002))
    assert (run.state, run.record["approved_by"]) == (lc.ACCEPTED, "hand")
    other = Run.new(m.key, EMAILS[1], "inc", m.sha256, m.readers())
    other.handle(seen.Received(m, policy, None, found, {}), 1000)
    other.handle(seen.Request("approve", m.sha256, "op"), 1001)
    other.handle(seen.Pinned("op", "another key is pinned"), 1002)
    assert (other.state, other.record["code"]) == (lc.REJECTED, "key")


# -- two first sights at once: one pin

def _pin(folder: str, fp: str, barrier, out) -> None:
    barrier.wait()
    try:
        KnownSites(folder, EMAILS[0]).pin(EMAILS[2], fp)
        out.put(("pinned", fp))
    except Refused:
        out.put(("refused", fp))


def test_two_concurrent_first_sights_leave_one_pin(tmp_path, keys):
    """Two processes (two parties of one site, or an approval and a party)
    see two different keys of one site first, at once: one pin stands, and
    the other is refused, never silently replaced."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        folder = tmp_path / f"site-{attempt}"
        barrier, out = ctx.Barrier(2), ctx.Queue()
        fps = [keys[EMAILS[1]].fingerprint, keys[EMAILS[2]].fingerprint]
        procs = [ctx.Process(target=_pin, args=(str(folder), fp, barrier, out)) for fp in fps]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        got = sorted(out.get(timeout=5) for _ in procs)
        assert [g[0] for g in got] == ["pinned", "refused"], got
        winner = next(fp for what, fp in got if what == "pinned")
        assert KnownSites(folder, EMAILS[0]).read() == {EMAILS[2]: winner}


# -- the manifest's hash in the handshake

def test_two_sites_shown_different_manifests_derive_different_channel_keys(keys):
    """The agent gives each party the SHA-256 of the manifest it approved as
    the run secret mixed into every channel key (effects.py): the same
    manifest gives one key per direction, two manifests give keys that
    never authenticate each other's messages."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from syqure_wf.keys.handshake import channel_keys, contribute

    a, b = keys[EMAILS[0]], keys[EMAILS[1]]
    ea, eb = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    ca = contribute(a, ea, "run", 0, EMAILS[:2], "i0")
    cb = contribute(b, eb, "run", 1, EMAILS[:2], "i1")
    shown = {name: hashlib.sha256(name.encode()).digest() for name in ("manifest A", "manifest B")}
    a_out, a_in = channel_keys(a, ea, ca, b.public(), cb, shown["manifest A"])
    same_out, same_in = channel_keys(b, eb, cb, a.public(), ca, shown["manifest A"])
    assert (a_out, a_in) == (same_in, same_out)
    b_out, b_in = channel_keys(b, eb, cb, a.public(), ca, shown["manifest B"])
    assert a_out != b_in and a_in != b_out
