"""The pure parts of submit/agent (issues 17, 24): a program's digest and a
run's (what a site approves), the manifest a peer sends (every field
checked, any shape of bytes refused as a ManifestError), a policy's
decision and its re-decision, a peer's state as read, the text shown and
sent, the intake's bounds over real folders, and what every site's
published state adds up to. No SyftBox here: test_sites.py runs the real
thing."""
from __future__ import annotations

import base64
import copy
import hashlib
from pathlib import Path

import pytest
import yaml

from syqure_wf.engines.program import digest, imported_names, imports, program_files
from syqure_wf.errors import ConfigError
from syqure_wf.sites import lifecycle as lc
from syqure_wf.sites.digest import canonical, covered, run_digest
from syqure_wf.sites.manifest import ManifestError, encode, from_config, parse
from syqure_wf.sites.policy import Decision, Policy, decide, expiry, load, redecide

EMAILS = ["a@x.org", "b@y.org", "c@z.org"]


@pytest.fixture
def program(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "main.py").write_text("import os\nfrom helper import f\nfrom lib.util import g\nfrom sequre import local\n")
    (tmp_path / "helper.codon").write_text("def f(): pass\n")
    (tmp_path / "lib" / "util.py").write_text("from .deep import h\n")
    (tmp_path / "lib" / "deep.py").write_text("h = 1\n")
    (tmp_path / "unused.py").write_text("x = 1\n")
    return tmp_path / "main.py"


def test_a_program_is_its_file_and_every_local_file_it_imports(program):
    names = sorted(program_files(program))
    assert names == ["helper.codon", "lib/deep.py", "lib/util.py", "main.py"]
    assert imports(program)[0] == program
    assert imported_names("from . import x\nimport a.b, c\n") == [".", "a.b", "c"]


def test_the_digest_covers_every_byte_every_name_and_the_entry(program):
    files = program_files(program)
    d = digest("main.py", files)
    assert d.startswith("sha256:") and len(d) == 71 and d == digest("main.py", dict(files))
    assert digest("main.py", {**files, "lib/deep.py": b"h = 2\n"}) != d
    assert digest("main.py", {**{k: v for k, v in files.items() if k != "lib/deep.py"}, "lib/deep2.py": b"h = 1\n"}) != d
    assert digest("helper.codon", files) != d
    # the same with hashes given instead of bytes
    assert digest("main.py", {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}) == d


def manifest(program, **raw) -> dict:
    config = {"engine": {"name": "mpyc", "program": program.name}, "inputs": {1: "counts", 2: "counts"}, **raw}
    return from_config(config, "run.yaml", program.parent, EMAILS, EMAILS[0], 3600, now=1000.0)


def test_a_manifest_round_trips_and_every_submission_gets_a_fresh_run_id(program):
    m = manifest(program)
    parsed = parse(encode(m))
    assert parsed.parties == EMAILS and parsed.submitter == EMAILS[0] and parsed.inputs == {1: "counts", 2: "counts"}
    assert parsed.program_digest == digest("main.py", program_files(program))
    assert set(parsed.files) == set(program_files(program))
    assert parsed.digest == run_digest(parsed.config, "main.py", program_files(program), EMAILS, parsed.inputs)
    assert parsed.config["framing"] == "stream" and parsed.config["engine"]["tls"] is False
    assert parsed.expires == 4600.0 and parsed.run_id.startswith("job-")
    later = from_config({"engine": {"name": "mpyc", "program": "main.py"}, "inputs": {1: "counts", 2: "counts"}},
                        "run.yaml", program.parent, EMAILS, EMAILS[0], 60, now=5000.0)
    # a rerun is a new run: its id is fresh (its content's hash, then when, then chance)
    assert later["run_id"] != m["run_id"] and later["run_id"][:12] == m["run_id"][:12]
    assert manifest(program)["run_id"] != m["run_id"]
    assert manifest(program, inputs={1: "other"})["run_id"][:12] != m["run_id"][:12]
    assert manifest(program, run_id="mine")["run_id"] == "mine"


@pytest.mark.parametrize("raw, message", [
    ({"inputs": {1: "/etc/passwd"}}, "never a path"),
    ({"inputs": {1: "../x"}}, "never a path"),
    ({"inputs": {7: "counts"}}, "no party 7"),
    ({"engine": {"name": "mpyc", "program": "main.py", "env": {"LD_PRELOAD": "x"}}}, "engine.env: each site's own"),
    ({"engine": {"name": "command", "command": "rm -rf /"}}, "cannot be submitted"),
    ({"encryption": {"secret_file": "s"}}, "encryption: a submitted run is always sealed by the sites' keys"),
    ({"run_id": "../escape"}, "run_id"),
    ({"transport": "tcp"}, "transport"),
])
def test_a_submission_that_cannot_be_sent_is_refused_here(program, raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        manifest(program, **raw)


def test_a_submission_needs_emails_that_name_no_folder(program):
    with pytest.raises(ManifestError, match="not allowed"):
        from_config({"engine": {"name": "mpyc", "program": "main.py"}}, "r", program.parent,
                    ["a@x.org", "../b@y.org"], EMAILS[0], 60)


def tampered(m: dict, how: str) -> dict:
    m = copy.deepcopy(m)
    f = m["program"]["files"][0]
    if how == "bytes":
        f["data"] = base64.b64encode(b"import os; os.system('x')").decode()
    elif how == "bytes and sha":
        body = b"import os; os.system('x')"
        f.update(data=base64.b64encode(body).decode(), sha256=hashlib.sha256(body).hexdigest())
    elif how == "name":
        f["name"] = "../../.bashrc"
    elif how == "run id":
        m["run_id"] = "../../x"
    elif how == "email":
        m["parties"][1] = "b@y.org/../../c"
    elif how == "engine command":
        m["config"]["engine"]["command"] = "sh -c x"
    elif how == "args path":
        m["config"]["engine"]["args"] = ["--out=/etc/x"]
    elif how == "unknown field":
        m["extra"] = 1
    return m


@pytest.mark.parametrize("how, code", [
    ("bytes", "digest"), ("bytes and sha", "digest"), ("name", "bad_manifest"), ("run id", "bad_manifest"),
    ("email", "bad_manifest"), ("engine command", "bad_manifest"), ("args path", "bad_manifest"),
    ("unknown field", "bad_manifest"),
])
def test_a_peers_manifest_is_checked_field_by_field(program, how, code):
    with pytest.raises(ManifestError) as caught:
        parse(encode(tampered(manifest(program), how)))
    assert caught.value.code == code


def test_a_manifest_still_arriving_is_incomplete_not_bad(program):
    data = encode(manifest(program))
    with pytest.raises(ManifestError) as caught:
        parse(data[: len(data) // 2])
    assert caught.value.code == "incomplete"
    with pytest.raises(ManifestError, match="larger"):
        parse(b" " * (9 << 20))


def test_the_policy_decides_with_a_code_and_a_line(program):
    m = parse(encode(manifest(program, inputs={1: "counts", 2: "counts"})))
    policy = Policy(submitters=["*"], programs=[m.digest], inputs={"counts": Path("/data/c.json")})
    assert decide(m, policy, EMAILS[1], 1000).state == lc.ACCEPTED
    cases = [
        (Policy(submitters=["z@z.org"], programs=[m.digest]), EMAILS[1], "submitter", f"submitter {EMAILS[0]} not allowed"),
        (Policy(submitters=["*"], programs=[]), EMAILS[0], "program", None),
        (Policy(submitters=["*"], programs=[], unlisted_programs="reject"), EMAILS[0], "program",
         f"program {m.digest} not approved"),
        (Policy(submitters=["*"], programs=[m.digest]), EMAILS[1], "input", "input 'counts' not mapped here"),
        (Policy(submitters=["*"], programs=[m.digest], max_parties=2), EMAILS[0], "limit", None),
    ]
    for pol, me, code, line in cases:
        d = decide(m, pol, me, 1000)
        assert d.code == code, (pol, d)
        assert d.state == (lc.PENDING if pol.unlisted_programs == "ask" and code == "program" else lc.REJECTED)
        if line:
            assert d.reason == line
    assert decide(m, policy, EMAILS[1], 10_000).code == "expired"
    slow = parse(encode(manifest(program, timeouts={"run": 7200}, inputs={1: "counts", 2: "counts"})))
    assert decide(slow, Policy(submitters=["*"], programs=[slow.digest], inputs=policy.inputs, max_seconds=60),
                  EMAILS[1], 1000).code == "limit"


def test_a_policy_file_with_an_error_is_one_line_naming_the_key(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"submitters": ["*"], "programs": ["md5:abc"]}))
    with pytest.raises(ConfigError, match="programs.0"):
        load(path)
    path.write_text(yaml.safe_dump({"submitters": ["*"], "inputs": {"counts": "data/c.json"}}))
    assert load(path).inputs["counts"] == tmp_path / "data" / "c.json"


def record(state, **kw):
    return {"state": state, "heartbeat": 1000.0, "manifest": "sha256:m", **kw}


def test_what_the_sites_states_add_up_to():
    sites = {e: record(lc.READY) for e in EMAILS}
    assert lc.may_start(sites) and lc.outcome(sites, 2000, 1001)[0] == "waiting"
    assert not lc.may_start({**sites, EMAILS[2]: record(lc.PENDING)})
    assert not lc.may_start({**sites, EMAILS[2]: None})
    assert lc.outcome({e: record(lc.DONE) for e in EMAILS}, 2000, 1001) == ("done", "")
    # a rejection is named before the cancellations it caused
    ended = {EMAILS[0]: record(lc.CANCELLED, reason="not run"), EMAILS[1]: record(lc.REJECTED, reason="no"),
             EMAILS[2]: record(lc.READY)}
    verdict, why = lc.outcome(ended, 2000, 1001)
    assert verdict == "failed" and why.startswith(f"{EMAILS[1]} rejected: no")
    verdict, why = lc.outcome({**sites, EMAILS[2]: record(lc.PENDING)}, 2000, 2001)
    assert verdict == "failed" and "expired" in why and EMAILS[2] in why
    verdict, why = lc.outcome({e: record(lc.RUNNING) for e in EMAILS}, 2000, 1000 + lc.STALE_AFTER + 1)
    assert verdict == "failed" and "silent" in why
    assert lc.current(record(lc.READY), "sha256:other") is None


# -- what a site approves (issue 24)

def test_the_run_digest_is_the_documented_bytes(program):
    files = program_files(program)
    sha = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
    config = {"engine": {"name": "mpyc", "program": "main.py", "args": ["--holders", "1,2"], "tls": False},
              "framing": "stream"}
    by_hand = ('{"args":["--holders","1,2"],"engine":"mpyc","entry":"main.py","files":{'
               + ",".join(f'"{n}":"{sha[n]}"' for n in sorted(sha))
               + '},"flavour":null,"format":"syqure-wf run 3","framing":"stream","inputs":{"1":"counts"},'
               + '"parties":3,"roles":[' + ",".join(f'"{e}"' for e in EMAILS) + '],"tls":false}')
    assert canonical(covered(config, "main.py", files, EMAILS, {1: "counts"})) == by_hand.encode()
    assert run_digest(config, "main.py", files, EMAILS, {1: "counts"}) == \
        "sha256:" + hashlib.sha256(by_hand.encode()).hexdigest()
    assert run_digest(config, "main.py", sha, EMAILS, {1: "counts"}) == \
        run_digest(config, "main.py", files, EMAILS, {1: "counts"})  # hashes or bytes


@pytest.mark.parametrize("change", ["args", "threshold", "parties", "framing", "tls", "engine", "bytes", "entry",
                                    "permuted", "input", "holder"])
def test_the_run_digest_covers_what_the_run_does(program, change):
    """Roles included: the approved run with its parties permuted (whose
    results would solve for one site's counts), a holder's input switched to
    another mapped file, or another holder, is another digest."""
    files = program_files(program)
    config = {"engine": {"name": "mpyc", "program": "main.py", "tls": False}, "framing": "stream"}
    inputs = {1: "counts", 2: "counts"}
    before = run_digest(config, "main.py", files, EMAILS, inputs)
    config, entry, roles = copy.deepcopy(config), "main.py", list(EMAILS)
    if change == "args":
        config["engine"]["args"] = ["--holders", "1"]
    elif change == "threshold":
        config["engine"]["args"] = ["-T", "0"]
    elif change == "parties":
        roles = roles[:2]
    elif change == "permuted":
        roles = [roles[1], roles[0], roles[2]]
    elif change == "input":
        inputs = {1: "counts", 2: "genomes"}
    elif change == "holder":
        inputs = {0: "counts", 2: "counts"}
    elif change == "framing":
        config["framing"] = "sequre"
    elif change == "tls":
        config["engine"]["tls"] = True
    elif change == "engine":
        config["engine"].update(name="sequre", flavour="fork")
    elif change == "bytes":
        files = {**files, "lib/deep.py": b"h = 2\n"}
    else:
        entry = "helper.codon"
    assert run_digest(config, entry, files, roles, inputs) != before


@pytest.mark.parametrize("arg", ["{input}", "--result={output}", "{pid:>4000000000}", "x}"])
def test_no_placeholder_in_a_submitted_run(program, arg):
    with pytest.raises(ConfigError, match="no placeholders"):
        manifest(program, engine={"name": "mpyc", "program": "main.py", "args": [arg]})
    m = manifest(program)
    m["config"]["engine"]["args"] = [arg]
    with pytest.raises(ManifestError) as caught:
        parse(encode(m))
    assert caught.value.code == "args"


def test_framing_and_tls_are_always_explicit(program):
    m = manifest(program)
    for drop in ("framing", "tls"):
        bad = copy.deepcopy(m)
        del (bad["config"] if drop == "framing" else bad["config"]["engine"])[drop]
        with pytest.raises(ManifestError, match="tls .* and framing"):
            parse(encode(bad))


def nested(depth: int, shape: str = "list") -> bytes:
    return (b"[" * depth + b"]" * depth) if shape == "list" else (b'{"a":' * depth + b"1" + b"}" * depth)


@pytest.mark.parametrize("body", [
    nested(200_000), nested(200_000, "dict"), b'{"format": "syqure-wf manifest 2", "run_id": "x"}',
    "parties", "inputs", "program files", "config", "times",
])
def test_any_shape_of_bytes_is_a_manifest_error(program, body):
    """A peer's bytes never raise anything but ManifestError (RecursionError,
    type errors...): the agent refuses that one file and goes on."""
    if isinstance(body, str):
        m = manifest(program)
        if body == "parties":
            m["parties"] = [{"a": 1}, ["b"], "c@z.org"]
        elif body == "inputs":
            m["inputs"] = {"1": {"nested": []}}
        elif body == "program files":
            m["program"]["files"] = [["name", "sha256", "data"]]
        elif body == "config":
            m["config"] = {"engine": {"name": ["mpyc"]}}
        else:
            m["expires"] = {"t": 1}
        body = encode(m)
    with pytest.raises(ManifestError):
        parse(body)


def test_a_run_id_leaves_room_for_its_channels(program):
    with pytest.raises(ConfigError, match="at most 100"):
        manifest(program, run_id="r" * 101)


def policy_for(m, **kw) -> Policy:
    """(a single holder allowed: these are about what an operator may approve, not disclosure)"""
    return Policy(**{"submitters": ["*"], "programs": [m.digest], "inputs": {"counts": Path("/data/c.json")},
                     "min_other_holders": 0, **kw})


@pytest.mark.parametrize("case, code", [
    ("holders", "program"), ("threshold", "program"), ("two parties", "parties"), ("stranger", "peers"),
])
def test_what_only_an_operator_may_approve_waits_or_is_refused(program, case, code):
    approved = parse(encode(manifest(program)))
    to = EMAILS
    raw = {}
    if case == "holders":
        raw = {"engine": {"name": "mpyc", "program": "main.py", "args": ["--holders", "1"]}}
    elif case == "threshold":
        raw = {"engine": {"name": "mpyc", "program": "main.py", "args": ["-T", "0"]}}
    elif case == "two parties":
        to = EMAILS[:2]
    else:
        to = [EMAILS[0], EMAILS[1], "stranger@else.org"]
    m = parse(encode(from_config({"engine": {"name": "mpyc", "program": "main.py"}, "inputs": {1: "counts"}, **raw},
                                 "run.yaml", program.parent, to, EMAILS[0], 3600, now=1000.0)))
    peers = {e: None for e in EMAILS}  # the three sites, not the stranger
    asked = decide(m, policy_for(approved, peers=peers), EMAILS[1], 1000)
    assert (asked.state, asked.code) == (lc.PENDING, code) and m.digest in asked.reason
    refused = decide(m, policy_for(approved, peers=peers, unlisted_programs="reject"), EMAILS[1], 1000)
    assert (refused.state, refused.code) == (lc.REJECTED, code)
    # listing this very run's digest approves it; the approved one's does not
    assert decide(m, policy_for(m, peers={**peers, "stranger@else.org": None}, min_parties=2), EMAILS[1],
                  1000).state == lc.ACCEPTED


def test_peers_default_to_the_submitters_and_take_fingerprints(tmp_path, program):
    m = parse(encode(manifest(program)))
    assert decide(m, policy_for(m, submitters=EMAILS[:2]), EMAILS[1], 1000).code == "peers"  # c@z.org
    assert decide(m, policy_for(m, submitters=EMAILS), EMAILS[1], 1000).state == lc.ACCEPTED
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"submitters": [EMAILS[0]], "peers": [EMAILS[0], {"email": EMAILS[2],
                                                                                     "fingerprint": "SHA256:" + "A" * 43}]}))
    policy = load(path)
    assert policy.computes_with(EMAILS[2]) and not policy.computes_with("x@y.org")
    assert policy.fingerprint(EMAILS[2]) == "SHA256:" + "A" * 43 and policy.fingerprint(EMAILS[0]) is None
    assert (policy.min_parties, policy.max_expiry) == (3, 7 * 86400)
    for bad, key in (({"peers": ["../x@y.org"]}, "peers.0"), ({"peers": [{"email": "a@b.org"}]}, "peers.0"),
                     ({"submitters": ["a@b.org/.."]}, "submitters.0"), ({"min_parties": 1}, "min_parties")):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load(path)


def test_an_input_restricted_to_digests(tmp_path, program):
    m = parse(encode(manifest(program)))
    path = tmp_path / "policy.yaml"
    other = "sha256:" + "0" * 64
    path.write_text(yaml.safe_dump({"submitters": ["*"], "programs": [m.digest],
                                    "inputs": {"counts": {"file": "c.json", "programs": [other]}}}))
    policy = load(path)
    assert policy.inputs["counts"] == tmp_path / "c.json"
    d = decide(m, policy, EMAILS[1], 1000)
    assert (d.state, d.code, d.reason) == (lc.REJECTED, "input", f"input 'counts' is not for program {m.digest}")
    policy.input_programs["counts"].append(m.digest)
    assert decide(m, policy, EMAILS[1], 1000).state == lc.ACCEPTED


def test_a_changed_policy_decides_every_run_not_started_again():
    yes, ask = Decision(lc.ACCEPTED), Decision(lc.PENDING, "program", "waits")
    no_program, no_submitter = Decision(lc.REJECTED, "program", "not approved"), Decision(lc.REJECTED, "submitter", "x")
    for state in (lc.ACCEPTED, lc.READY):
        assert redecide(state, "policy", yes) is None
        for d in (ask, no_program, no_submitter):  # the approval was the policy's: withdrawn
            assert redecide(state, "policy", d).code == "policy"
        assert redecide(state, "hand", ask) is None and redecide(state, "hand", no_program) is None
        assert redecide(state, "hand", no_submitter).code == "policy"  # refused outright
    assert redecide(lc.PENDING, "", yes) is yes and redecide(lc.PENDING, "", ask) is None
    assert redecide(lc.PENDING, "", no_program).state == lc.REJECTED
    assert redecide(lc.RUNNING, "policy", no_submitter) is None


def test_expiry_is_capped_by_the_policy(program):
    m = parse(encode(from_config({"engine": {"name": "mpyc", "program": "main.py"}}, "r", program.parent, EMAILS,
                                 EMAILS[0], 365 * 86400, now=1000.0)))
    assert expiry(m, Policy(), 1000.0) == 1000.0 + 7 * 86400
    assert expiry(m, Policy(max_expiry=60), 2000.0) == 2060.0


# -- text between sites, a peer's state, the bounds of what an agent reads

def test_peer_text_is_shown_escaped_and_a_sites_reason_keeps_its_paths():
    from syqure_wf.sites.peertext import REASON_MAX, outgoing, shown

    assert shown("ok\x1b[2J\x07\u202eevil\r\n") == "ok\\x1b[2J\\x07\\u202eevil\\x0d\\x0a"
    assert shown("line 1\n\tline 2\x1b", keep_lines=True) == "line 1\n\tline 2\\x1b"
    line = outgoing("build failed:\n  /home/site/SyftBox/syqure-wf/x/run.yaml: no file ~/data/site1.json "
                    "(--out=/etc/passwd) at http://127.0.0.1:5001/api \x1b[31m")
    assert "/home" not in line and "site1.json" not in line and "/etc" not in line and "\n" not in line
    assert "http://127.0.0.1:5001/api" in line and "\\x1b" in line and line.count("<path>") == 3
    assert len(outgoing("x" * 5000)) == REASON_MAX


def state(**kw) -> dict:
    return {"site": EMAILS[1], "run_id": "r1", "submitter": EMAILS[0], "state": lc.READY, "heartbeat": 5.0,
            "reason": "", **kw}


def test_a_peers_state_is_read_field_by_field():
    got = lc.peer_record({**state(reason="\x1b]0;owned\x07", extra=1), "party": {"reason": "x\x1b", "n": [1]}},
                         EMAILS[1], EMAILS[0], "r1")
    assert got["reason"] == "\\x1b]0;owned\\x07" and "extra" not in got and got["party"] == {"reason": "x\\x1b"}
    for bad in (state(site=EMAILS[2]), state(submitter=EMAILS[2]), state(state="hacked"), state(state=["ready"]),
                state(heartbeat={"t": 1}), state(reason=["x"]), state(heartbeat=True)):
        with pytest.raises(ValueError):
            lc.peer_record(bad, EMAILS[1], EMAILS[0], "r1")


def datasite(root: Path, site: str) -> Path:
    app = root / "datasites" / site / "app_data" / "syqure"
    app.mkdir(parents=True, exist_ok=True)
    return app


def test_a_peer_file_that_cannot_be_read_is_refused_once(tmp_path):
    from syqure_wf.sites.board import Board

    for site in EMAILS:
        datasite(tmp_path, site)
    told = []
    board = Board(tmp_path, EMAILS[0], on_refused=lambda path, code, reason: told.append((path.name, code, reason)))
    folder = board.jobs(EMAILS[1], EMAILS[0], "r1")
    folder.mkdir(parents=True)
    path = folder / "state.json"
    path.write_bytes(nested(200_000))
    for _ in range(3):
        assert board.state_of(EMAILS[1], EMAILS[0], "r1") is None
    assert told == [("state.json", "bad_file", "nested too deep")]
    import json

    from syqure_wf.sites.signature import sign
    from syqure_wf.keys.sitekey import load_or_create

    key = load_or_create(tmp_path, EMAILS[1])  # a state is its site's signed word (signature.py)
    path.write_bytes(sign(key, "state", json.dumps(state(heartbeat="soon")).encode()))
    assert board.state_of(EMAILS[1], EMAILS[0], "r1") is None and told[-1][1] == "bad_state"
    path.write_bytes(sign(key, "state", json.dumps(state()).encode()))
    assert board.state_of(EMAILS[1], EMAILS[0], "r1")["state"] == lc.READY
    path.write_text(json.dumps(state()))  # unsigned: refused once, never acted on
    assert board.state_of(EMAILS[1], EMAILS[0], "r1") is None and told[-1][1] == "unsigned"
    path.write_text('{"run_id": "r1", "ha')  # half synced: read again later, not refused
    assert board.state_of(EMAILS[1], EMAILS[0], "r1") is None and len(told) == 3
    cancel = board.cancel_path(EMAILS[0], "r1")
    cancel.parent.mkdir(parents=True)
    cancel.write_bytes(nested(200_000))
    assert not board.cancelled(EMAILS[0], "r1") and not board.cancelled(EMAILS[0], "r1")
    assert told[-1] == ("cancel.json", "bad_file", "nested too deep") and len(told) == 4


def test_one_json_reader_for_records_requests_and_peer_files(tmp_path):
    from syqure_wf.sites.board import RECORD_MAX, read_record
    from syqure_wf.files.peer_json import ARRIVING, json_of

    assert json_of(b'{"a": 1}') == ({"a": 1}, "") and json_of(b"[1]") == ([1], "")
    assert json_of(b'{"a": ') == (None, ARRIVING) and json_of(b"\xff\xfe") == (None, ARRIVING)
    assert json_of(nested(200_000)) == (None, "nested too deep")
    good = tmp_path / "record.json"
    good.write_text('{"state": "ready"}')
    assert read_record(good) == {"state": "ready"}
    for name, data in (("list.json", b"[1, 2]"), ("half.json", b'{"st'), ("deep.json", nested(200_000)),
                       ("big.json", b'{"a": "' + b"x" * RECORD_MAX + b'"}')):
        (tmp_path / name).write_bytes(data)
        assert read_record(tmp_path / name) is None, name
    (tmp_path / "link.json").symlink_to(good)  # never through a link
    assert read_record(tmp_path / "link.json") is None and read_record(tmp_path / "absent.json") is None


def test_the_intake_reads_only_accepted_submitters_and_that_much(tmp_path, monkeypatch):
    from syqure_wf.sites import intake
    from syqure_wf.sites.board import Board

    for site in EMAILS:
        datasite(tmp_path, site)
    lines = []
    board = Board(tmp_path, EMAILS[0])
    take = intake.Intake(board, lambda event, run_id=None, program=None, **f: lines.append((event, f.get("code"))))
    for i in range(1000):  # a refused submitter's: never listed
        (board.jobs(EMAILS[2], EMAILS[2], f"spam-{i}")).mkdir(parents=True)
        (board.manifest_path(EMAILS[2], f"spam-{i}")).write_text("{}")
    for i in range(8):
        (board.jobs(EMAILS[1], EMAILS[1], f"run-{i}")).mkdir(parents=True)
        (board.manifest_path(EMAILS[1], f"run-{i}")).write_text("{}")
    monkeypatch.setattr(intake, "MAX_LISTED_PER_SUBMITTER", 5)
    policy = Policy(submitters=[EMAILS[0], EMAILS[1]])
    for _ in range(2):
        got = list(take.changed(policy))
        assert {k[0] for k, _, _ in got} <= {EMAILS[1]} and len(take.seen) + len(got) <= 5
        for key, version, _ in got:
            take.read(key, version)
    assert len(take.seen) == 5 and list(take.changed(policy)) == []  # each version read once
    assert sorted(lines) == [("refused", "limit"), ("refused", "submitter")]  # once each, not once per round or file
    board.manifest_path(*sorted(take.seen)[0]).write_text('{"changed": 1}')
    assert len(list(take.changed(policy))) == 1


def test_show_escapes_every_string_from_the_manifest(program):
    from syqure_wf.sites.show import lines

    program.write_text(program.read_text() + "print('\x1b]0;owned\x07')\n")
    m = parse(encode(manifest(program, engine={"name": "mpyc", "program": "main.py", "args": ["\x1b[2J", "-T", "0"]})))
    policy = policy_for(m, inputs={"counts": Path("/data/c.json")}, peers={EMAILS[0]: None})
    text = "\n".join(lines(m, {"state": lc.PENDING, "code": "peers", "expires": 4000.0}, policy, EMAILS[1], 1000.0,
                           source=True))
    assert "\x1b" not in text and "\x07" not in text
    assert "args     '\\x1b[2J' -T 0" in text and "print('\\x1b]0;owned\\x07')" in text
    assert f"digest   {m.digest}" in text and f"policy   asks an operator (peers): {EMAILS[2]} is not among" in text
    assert f"2    {EMAILS[2]}  -          no: not among the peers" in text
    assert "input    'counts' -> /data/c.json" in text and "expires  1970-01-01 01:06:40 UTC (in 0.8 h)" in text


def test_the_intake_holds_so_many_runs(tmp_path):
    from syqure_wf.sites import intake
    from syqure_wf.sites.agent import Run
    from syqure_wf.sites.board import Board

    for site in EMAILS:
        datasite(tmp_path, site)
    take = intake.Intake(Board(tmp_path, EMAILS[0]), lambda *a, **f: None)

    def runs(n: int, by: str, state: str = lc.PENDING, size: int = 1000) -> dict:
        return {(by, f"r{i}"): Run({"submitter": by, "run_id": f"r{i}", "state": state}, size=size) for i in range(n)}
    assert take.room(EMAILS[1], 1000, runs(intake.MAX_LIVE_PER_SUBMITTER - 1, EMAILS[1])) is None
    assert "runs waiting or running here already" in take.room(
        EMAILS[1], 1000, runs(intake.MAX_LIVE_PER_SUBMITTER, EMAILS[1]))
    assert take.room(EMAILS[1], 1000, runs(5 * intake.MAX_LIVE_PER_SUBMITTER, EMAILS[1], lc.DONE)) is None  # ended
    many = {k: v for i in range(intake.MAX_LIVE // 10) for k, v in runs(10, f"s{i}@x.org").items()}
    assert "runs not ended already" in take.room(EMAILS[1], 1000, many)
    assert "MB of manifests" in take.room(EMAILS[1], 8 << 20, runs(3, EMAILS[2], size=intake.MAX_STORED // 3))
