"""The pure parts of submit/agent (issue 17): a program's digest, the
manifest a peer sends (every field checked), a policy's decision, and what
every site's published state adds up to. No SyftBox here: test_sites.py
runs the real thing."""
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
from syqure_wf.sites.manifest import ManifestError, encode, from_config, parse
from syqure_wf.sites.policy import Policy, decide, load

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
    config = {"engine": {"name": "mpyc", "program": program.name}, "inputs": {1: "counts"}, **raw}
    return from_config(config, "run.yaml", program.parent, EMAILS, EMAILS[0], 3600, now=1000.0)


def test_a_manifest_round_trips_and_its_run_id_comes_from_its_content(program):
    m = manifest(program)
    parsed = parse(encode(m))
    assert parsed.parties == EMAILS and parsed.submitter == EMAILS[0] and parsed.inputs == {1: "counts"}
    assert parsed.digest == digest("main.py", program_files(program)) and set(parsed.files) == set(program_files(program))
    assert parsed.expires == 4600.0 and parsed.run_id.startswith("job-")
    later = from_config({"engine": {"name": "mpyc", "program": "main.py"}, "inputs": {1: "counts"}},
                        "run.yaml", program.parent, EMAILS, EMAILS[0], 60, now=5000.0)
    assert later["run_id"] == m["run_id"]  # the same submission, whenever it is made
    assert manifest(program, inputs={1: "other"})["run_id"] != m["run_id"]
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
    m = parse(encode(manifest(program)))
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
    slow = parse(encode(manifest(program, timeouts={"run": 7200})))
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
