"""Submit once, every site's agent runs its own party (issue 17): three
datasites on a real SyftBox 0.4 server with a real client each, an agent at
each site with its own policy, MPyC parties started by the agents.

Policies (one net for the module; every scenario has its own run id):
  site 0  submitters *           peers *     programs D, D2, L   unlisted: ask     inputs counts
  site 1  submitters cp0, cp1    peers all   programs D, L       unlisted: ask     inputs counts
  site 2  submitters *           peers all   programs D, D2, L   unlisted: reject  inputs counts
D is the allele-counts example's run digest (3 parties in pid order, no
args, inputs 'counts' at pids 1 and 2), D2 the same program with another
comment (site 1 asks its operator), L a long round-heavy program (with the
args the tests give it, no inputs), and every marker program (which writes
a file when executed) is listed nowhere. Every policy lists the three
sites' key fingerprints (a site key never met waits for an operator).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import PY, REPO, one_line_error, output, processes_mentioning, wait_until
from jobs import EXAMPLE, cli
from sites_net import Sites, run_digest_of, sh
from syftbox_net import EMAILS
from summary_schema import checked_summary

from syqure_wf.engines.program import digest
from syqure_wf.sites.board import channel_id
from syqure_wf.sites.signature import sign
from syqure_wf.keys.sitekey import load_or_create

pytestmark = pytest.mark.minutes(15)


def signed(sites: "Sites", pid: int, kind: str, body: bytes) -> bytes:
    """``body`` as site ``pid`` signs it (a hostile site signs what it writes too)."""
    return sign(load_or_create(sites.folder(pid), EMAILS[pid]), kind, body)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    s = Sites(tmp_path_factory.mktemp("sites"))
    yield s
    s.close()


def marker_program(sites: Sites, name: str) -> tuple[str, Path]:
    """An MPyC program that leaves a file behind if anybody ever executes it."""
    marker = sites.root / f"{name}.executed"
    (sites.programs / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                               + (EXAMPLE / "allele_counts.py").read_text())
    return f"{name}.py", marker


def expected_counts() -> list[int]:
    sites_data = [json.loads((EXAMPLE / "data" / f"site{i}.json").read_text()) for i in (1, 2)]
    return [a + b for a, b in zip(sites_data[0]["allele_count"], sites_data[1]["allele_count"])]


# -- the whole thing, approved by policy

def test_one_submit_and_one_wait_collect_what_a_local_run_computes(sites, tmp_path):
    local = tmp_path / "local"
    done = sh("run", "--config", EXAMPLE / "config.yaml", "--workdir", local, "--quiet", timeout=180)
    assert done.returncode == 0, done.stderr
    digested = sh("digest", "--config", sites.config("policy-run"), "--to", ",".join(EMAILS))
    assert digested.stdout.strip() == sites.D, digested.stderr  # what the policies list
    run_id = sites.submit(sites.config("policy-run"))
    assert run_id == "policy-run"
    waited = sites.wait(run_id, results=tmp_path / "results")
    assert waited.returncode == 0, waited.stderr
    for pid in range(3):
        got = json.loads((tmp_path / "results" / run_id / f"party-{pid}.json").read_text())
        want = json.loads((local / "outputs" / f"party-{pid}.json").read_text())
        assert got["allele_count"] == want["allele_count"] == expected_counts()
        assert sites.state(run_id, pid)["approved_by"] == "policy"
    for pid in range(3):  # the audit: received, decided by policy, ready, started, done, each with the digest
        events = [e for e in sites.audit(pid) if e["run_id"] == run_id]
        assert [e["event"] for e in events] == ["received", "decision", "ready", "started", "done"]
        assert {e["program"] for e in events} == {sites.D} and events[1]["how"] == "policy"
    runs = sh("runs", *sites.site(1))
    assert "policy-run" in runs.stdout and sites.D in runs.stdout and "policy" in runs.stdout
    again = sites.submit(sites.config("policy-run"))  # the same submission is the same run
    assert again == run_id
    from syqure_wf.run.isolation import netns_problem

    if netns_problem() is None:  # each party in a namespace: its sync probe ran outside (sync_relay.py)
        for pid in range(3):
            relayed = list(sites.root.rglob(f"logs/party-{pid}.sync.json"))
            assert relayed and relayed[0].stat().st_mode & 0o777 == 0o600, pid


@pytest.mark.slow  # the default run keeps the scenarios the issue names
def test_a_derived_run_id_is_fresh_for_every_submission(sites):
    cfg = sites.root / "derived.yaml"
    cfg.write_text(yaml.safe_dump({"engine": {"name": "mpyc", "program": str(sites.programs / "allele_counts.py")},
                                   "inputs": {1: "counts", 2: "counts"}}))
    first = sites.submit(cfg)
    again = sites.submit(cfg)  # a rerun never meets the first one's outcome
    assert first.startswith("job-") and again.startswith("job-") and again != first
    assert sites.wait(first).returncode == 0 and sites.wait(again).returncode == 0


# -- by hand

def test_a_run_waits_for_the_operator_and_starts_after_approve(sites):
    run_id = sites.submit(sites.config("by-hand", "allele_counts2.py"))
    pending = sites.wait_state(run_id, 1, "pending_approval")
    assert pending["code"] == "program"
    sites.wait_state(run_id, 0, "ready")
    sites.wait_state(run_id, 2, "ready")
    time.sleep(1)
    assert sites.started_anywhere(run_id) == []
    status = sh("status", run_id, *sites.site(0))
    assert "pending_approval" in status.stdout, status.stdout
    # what the operator reads first: the digest, the co-parties, the settings, the files, its input and result
    shown = sh("show", run_id, *sites.site(1), "--source")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for line in (f"digest   {sites.D2}", "policy   asks an operator (program): the digest is not listed",
                 "engine   mpyc, framing stream, tls false", "args     (none)", "parties  3",
                 f"input    'counts' -> {EXAMPLE / 'data' / 'site1.json'}",
                 f"result   this site's result goes to {EMAILS[0]} (share_results: submitter)",
                 f"{(sites.programs / 'allele_counts2.py').stat().st_size:>8} bytes  allele_counts2.py",
                 "--- allele_counts2.py", "# the same program, another digest: site 1 asks its operator"):
        assert line in text, (line, text)
    assert [ln.split()[:4] for ln in text.splitlines() if ln.startswith("  ") and "@" in ln] == [
        ["0", EMAILS[0], "submitter", "yes"], ["1", EMAILS[1], "this", "site"], ["2", EMAILS[2], "-", "yes"]]
    from syqure_wf.keys.sitekey import published  # every co-party's key, as its site publishes it
    for pid in range(3):  # (each agent published its site's key when it started)
        fingerprint = published(sites.folder(1), EMAILS[pid]).fingerprint
        assert any(EMAILS[pid] in ln and f"  {fingerprint} (" in ln for ln in text.splitlines()), (pid, text)
    assert f"{published(sites.folder(1), EMAILS[1]).fingerprint} (this site's)" in text
    approved = sh("approve", run_id, *sites.site(1))
    assert approved.returncode == 0, approved.stderr
    assert sites.wait(run_id).returncode == 0
    assert sites.state(run_id, 1)["approved_by"] == "hand"
    assert [e["how"] for e in sites.audit(1) if e["run_id"] == run_id and e["event"] == "decision"] == ["waiting", "hand"]


def test_after_reject_wait_fails_in_seconds_naming_the_site_and_nothing_started(sites):
    run_id = sites.submit(sites.config("rejected-by-hand", "allele_counts2.py"))
    sites.wait_state(run_id, 1, "pending_approval")
    waiter = sites.procs.start(cli("wait", run_id, *sites.site(0), "--results", sites.root / "results"))
    rejected = sh("reject", run_id, "--reason", "not this quarter", *sites.site(1))
    assert rejected.returncode == 0, rejected.stderr
    t0 = time.monotonic()
    code = sites.procs.wait(waiter, 30)
    assert code != 0 and time.monotonic() - t0 < 10
    line = output(waiter).strip().splitlines()[-1]
    assert EMAILS[1] in line and "not this quarter" in line, line
    for pid in (0, 2):
        sites.wait_state(run_id, pid, "cancelled")
    assert sites.started_anywhere(run_id) == []


# -- refused by policy, never executed

@pytest.mark.parametrize("case", ["program", "submitter", "input"])
def test_refused_by_policy_with_its_code_and_never_executed(sites, case):
    program, marker = marker_program(sites, f"marker_{case}")
    run_id = f"refused-{case}"
    if case == "program":  # site 2 rejects what it does not list
        by, site, cfg = 0, 2, sites.config(run_id, program)
    elif case == "submitter":  # site 1 accepts cp0 and cp1 only
        by, site, cfg = 2, 1, sites.config(run_id, program)
    else:  # site 2 has no 'genomes'
        by, site, cfg = 0, 2, sites.config(run_id, program, inputs={1: "counts", 2: "genomes"})
    run_id = sites.submit(cfg, by=by)
    waited = sites.wait(run_id, by=by, timeout=60)
    assert waited.returncode != 0
    last = waited.stderr.strip().splitlines()[-1]
    assert "rejected" in last and EMAILS[2] in last, last  # site 2 rejects the marker in every case
    if case == "submitter":  # a submitter it does not accept is not even read (issue 33): nothing kept,
        # published or audited for it (site 2's rejection, waited for above, came long after site 1 could look)
        assert not any(e.get("run_id") == run_id for e in sites.audit(1)), sites.audit(1)
        assert not sites.jobs(1, run_id, by, seen_by=1).exists() and not (sites.private(1, run_id, by)).exists()
    else:
        record = sites.wait_state(run_id, site, "rejected", by=by)
        want = {"program": f"program {sites.digest(program)} not approved",
                "input": "input 'genomes' not mapped here"}[case]
        assert record["code"] == case and record["reason"] == want, record
    for pid in {0, 1, 2} - ({1} if case == "submitter" else set()):
        sites.wait_state(run_id, pid, ("rejected", "cancelled"), by=by)
    assert not marker.exists() and sites.started_anywhere(run_id, by) == []


# -- approval covers what the run does (issue 24)

def publish_as(sites: Sites, pid: int, folder: Path, files: dict[str, bytes], readers=EMAILS) -> None:
    """Files a site writes in its own datasite (synced by its client), as a hostile peer would."""
    from syqure_wf.transport.syftbox import permissions

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**permissions(list(readers)), **files}.items():
        (folder / name).write_bytes(text)


def handmade(sites: Sites, run_id: str, program: str = "allele_counts.py", to=EMAILS, by: int = 0, **engine) -> dict:
    from syqure_wf.sites.manifest import from_config

    raw = {"run_id": run_id, "engine": {"name": "mpyc", "program": program}, "inputs": {1: "counts", 2: "counts"}}
    m = from_config(raw, "test", sites.programs, list(to), EMAILS[by], 3600)
    m["config"]["engine"].update(engine)
    return m


STRANGER = "stranger@elsewhere.org"


@pytest.mark.parametrize("case", ["holders", "threshold", "placeholder", "two-parties", "stranger"])
def test_a_run_the_policy_does_not_approve_is_refused_with_a_code_and_never_started(sites, case):
    """The approved allele counts with --holders 1 (site 1's raw counts opened),
    MPyC's -T 0 (shares in the clear), {input} in args, a 2-party run and an
    unknown co-party: each has another digest than the approved run, or is
    refused outright. Site 1 (ask) waits for its operator with the code, site
    2 (reject) refuses with it, and nothing starts anywhere."""
    from syqure_wf.sites.manifest import encode

    run_id, to = f"unapproved-{case}", EMAILS
    if case in ("holders", "threshold"):
        args = ["--holders", "1"] if case == "holders" else ["-T", "0"]
        run_id = sites.submit(sites.config(run_id, args=args))
        want = {1: ("decision", "pending_approval", "program"), 2: ("decision", "rejected", "program")}
    elif case == "placeholder":  # refused at submit; a hand-made manifest is refused by every site it names
        refused = sh("submit", "--config", sites.config(run_id, args=["{input}"]), "--to", ",".join(EMAILS),
                     *sites.site(0))
        assert refused.returncode == 2 and "no placeholders" in one_line_error(refused.stderr), refused.stderr
        made = handmade(sites, run_id, args=["{input}"])
        publish_as(sites, 0, sites.jobs(0, run_id), {"manifest.json": signed(sites, 0, "manifest", encode(made))})
        want = {p: ("rejected", None, "args") for p in range(3)}
    elif case == "two-parties":
        to = [EMAILS[0], EMAILS[2]]
        run_id = sites.submit(sites.config(run_id, inputs={1: "counts"}), to=to)
        want = {0: ("decision", "pending_approval", "parties"), 2: ("decision", "rejected", "disclosure")}
    else:
        to = [*EMAILS, STRANGER]
        run_id = sites.submit(sites.config(run_id), to=to)
        want = {0: ("decision", "pending_approval", "program"), 1: ("decision", "pending_approval", "peers"),
                2: ("decision", "rejected", "peers")}
    for pid, (event, state, code) in want.items():
        wait_until(lambda: any(e["run_id"] == run_id and e["event"] == event and e.get("state") == state
                               and e.get("code") == code for e in sites.audit(pid)), 30,
                   f"site {pid}'s {event} {state} {code}", step=0.1)
    for pid in want:
        record = sites.wait_state(run_id, pid, ("rejected", "cancelled"))
        assert record["code"] in (want[pid][2], "peer"), record
    if case != "placeholder":  # (the submitter itself cannot read that one)
        waited = sites.wait(run_id, timeout=30)
        assert waited.returncode != 0 and "rejected" in waited.stderr.strip().splitlines()[-1]
    assert sites.started_anywhere(run_id) == []


def test_an_operator_approves_that_exact_run(sites):
    """A 2-party run waits at both sites (min_parties 3) and runs only once
    each operator approved that very manifest."""
    to = EMAILS[:2]
    run_id = sites.submit(sites.config("two-by-hand", inputs={0: "counts", 1: "counts"}), to=to)
    for pid in (0, 1):
        record = sites.wait_state(run_id, pid, "pending_approval")
        assert record["code"] == "parties" and \
            sites.digest("allele_counts.py", parties=2, inputs={0: "counts", 1: "counts"}) in record["reason"]
    time.sleep(0.5)
    assert sites.started_anywhere(run_id) == []
    for pid in (0, 1):
        assert sh("approve", run_id, *sites.site(pid)).returncode == 0
    waited = sites.wait(run_id)
    assert waited.returncode == 0, waited.stderr
    assert {sites.state(run_id, pid)["approved_by"] for pid in (0, 1)} == {"hand"}


def test_a_policy_change_decides_every_run_not_started_again(sites):
    run_id = sites.submit(sites.config("policy-change", "allele_counts2.py"))
    sites.wait_state(run_id, 2, "ready")
    sites.wait_state(run_id, 1, "pending_approval")
    before = sites.policy_path(2).read_text()
    policy = yaml.safe_load(before)
    policy["programs"].remove(sites.D2)
    try:
        sites.policy_path(2).write_text(yaml.safe_dump(policy))
        record = sites.wait_state(run_id, 2, "rejected", timeout=30)
        assert record["code"] == "policy" and record["reason"] == (f"this site's policy changed: program {sites.D2} "
                                                                   "not approved"), record
    finally:
        sites.policy_path(2).write_text(before)
    for pid in (0, 1):
        sites.wait_state(run_id, pid, "cancelled")
    assert sites.started_anywhere(run_id) == []


def test_a_manifest_changed_after_approval_is_never_executed(sites):
    run_id = sites.submit(sites.config("tampered", "allele_counts2.py"))
    sites.wait_state(run_id, 0, "ready")
    sites.wait_state(run_id, 2, "ready")
    # the submitter's datasite now offers other bytes under the same run, self-consistent
    path = sites.jobs(0, run_id) / "manifest.json"
    manifest = json.loads(json.loads(path.read_text())["body"])
    program, marker = marker_program(sites, "marker_tampered")
    body = (sites.programs / program).read_bytes()
    import base64
    import hashlib

    entry = manifest["program"]["entry"]
    manifest["program"]["files"] = [{"name": entry, "sha256": hashlib.sha256(body).hexdigest(),
                                     "data": base64.b64encode(body).decode()}]
    manifest["program"]["digest"] = digest(entry, {entry: body})
    path.write_bytes(signed(sites, 0, "manifest", json.dumps(manifest).encode()))  # by the submitter itself
    # a site that sees the new bytes refuses them; one that first hears of a
    # peer's refusal stops for that reason: either way, about the change
    for pid in range(3):
        record = sites.wait_state(run_id, pid, ("rejected", "cancelled"))
        assert "the manifest changed after the decision" in record["reason"], record
    assert sites.state(run_id, 0)["code"] == "manifest_changed"
    assert sh("approve", run_id, *sites.site(1)).returncode != 0
    assert not marker.exists() and sites.started_anywhere(run_id) == []


def test_the_own_copy_is_checked_again_before_the_party_starts(sites):
    run_id = sites.submit(sites.config("copy-changed", "allele_counts2.py"))
    sites.wait_state(run_id, 0, "ready")
    _, marker = marker_program(sites, "marker_copy")
    copy = sites.private(0, run_id) / "program" / "allele_counts2.py"
    copy.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    sites.wait_state(run_id, 1, "pending_approval")
    assert sh("approve", run_id, *sites.site(1)).returncode == 0
    record = sites.wait_state(run_id, 0, "failed")
    assert record["code"] == "program_changed", record
    assert not marker.exists()
    assert sites.wait(run_id, timeout=60).returncode != 0


# -- agents and runs that stop

def test_cancel_mid_run_stops_every_party_within_10_s(sites):
    run_id = sites.submit(sites.config("cancelled", "long.py", inputs={}, args=["--rounds", "100000"]))
    for pid in range(3):
        sites.wait_state(run_id, pid, "running")
    wait_until(lambda: len(processes_mentioning(f"/{run_id}/")) >= 6, 60, "every party and program to run")
    t0 = time.monotonic()
    done = sh("cancel", run_id, *sites.site(0), timeout=90)  # beyond cancel's own 60 s bound: its error names who did not answer
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not processes_mentioning(f"/{run_id}/"), 10, "every party to be gone")
    assert time.monotonic() - t0 < 10
    assert {sites.state(run_id, pid)["state"] for pid in range(3)} == {"cancelled"}


def test_two_runs_submitted_at_once_from_two_sites_both_complete(sites):
    a = sites.config("at-once-a")
    b = sites.config("at-once-b")
    subs = [sites.procs.start(cli("submit", "--config", cfg, "--to", ",".join(EMAILS), *sites.site(by)))
            for cfg, by in ((a, 0), (b, 1))]
    assert [sites.procs.wait(p, 120) for p in subs] == [0, 0]
    waits = [sites.procs.start(cli("wait", rid, *sites.site(by), "--results", sites.root / f"results-{by}"))
             for rid, by in (("at-once-a", 0), ("at-once-b", 1))]
    assert [sites.procs.wait(p, 240) for p in waits] == [0, 0], [output(p) for p in waits]


def test_an_agent_killed_and_started_again(sites):
    running = sites.submit(sites.config("killed-while-running", "long.py", inputs={}, args=["--rounds", "100000"]))
    queued = sites.submit(sites.config("queued", "allele_counts2.py"))
    sites.wait_state(queued, 1, "pending_approval")
    for pid in range(3):
        sites.wait_state(running, pid, "running")
    record = (sites.folder(1) / "datasites" / EMAILS[1] / "app_data/syqure/runs" / channel_id(EMAILS[0], running)
              / "status/party-1.json")
    wait_until(lambda: record.exists() and json.loads(record.read_text()).get("state") == "running", 60,
               "site 1's party to run",
               seen=lambda: (record.read_text() if record.exists() else "no record",
                             [sites.state(running, pid, pid).get("state") for pid in range(3)]))
    answered = [e for e in sites.audit(1) if e["event"] in ("received", "decision")]
    sites.kill_agent(1)
    # its party goes with it (it is told by the kernel), and the peers name it
    wait_until(lambda: not processes_mentioning(f"{EMAILS[1]}/runs/{EMAILS[0]}/{running}/"), 15,
               "site 1's party to stop")
    sites.start_agent(1)
    record = sites.wait_state(running, 1, "failed", seen_by=0)
    assert record["code"] == "agent_restarted", record
    for pid in (0, 2):
        sites.wait_state(running, pid, "failed")
    assert sites.wait(running, timeout=60).returncode != 0
    # nothing answered twice, and the queued run goes on
    again = [e for e in sites.audit(1) if e["event"] in ("received", "decision")]
    assert again == answered
    assert sites.state(queued, 1)["state"] == "pending_approval"
    assert sh("approve", queued, *sites.site(1)).returncode == 0
    assert sites.wait(queued).returncode == 0


@pytest.mark.slow  # the default run keeps the scenarios the issue names
def test_an_agent_started_after_the_submit_answers_it(sites):
    """Sites start when they start: a manifest that waits in the submitter's
    datasite is answered when the agent comes up."""
    sites.agents[2].send_signal(signal.SIGTERM)
    assert sites.agents[2].wait(20) == 0
    run_id = sites.submit(sites.config("late-agent"))
    sites.wait_state(run_id, 0, "ready")
    sites.wait_state(run_id, 1, "ready")
    time.sleep(1)
    assert sites.state(run_id, 2, seen_by=2) == {} and sites.started_anywhere(run_id) == []
    sites.start_agent(2)
    assert sites.wait(run_id).returncode == 0


# -- bad input: one line, a non-zero exit, nothing runs, the agent stays up

def test_bad_input_gets_one_line_and_the_agent_stays_up(sites, tmp_path):
    for command in (("approve", "no-such-run"), ("wait", "no-such-run"), ("status", "no-such-run"),
                    ("cancel", "no-such-run"), ("reject", "no-such-run", "--reason", "x")):
        done = sh(*command, *sites.site(0))
        assert done.returncode != 0 and "no-such-run" in one_line_error(done.stderr), done.stderr
    # a submission whose input is a path, and an unknown engine setting
    cfg = sites.root / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"engine": {"name": "mpyc", "program": str(sites.programs / "long.py")},
                                   "inputs": {1: "/etc/passwd"}}))
    done = sh("submit", "--config", cfg, "--to", ",".join(EMAILS), *sites.site(0))
    assert done.returncode == 2 and "never a path" in one_line_error(done.stderr)
    # a policy with an error: the agent refuses to start; a running one keeps its policy
    broken = tmp_path / "broken.yaml"
    broken.write_text("submitters: [a@b]\nprogramz: []\n")
    done = sh("agent", *sites.site(0), "--policy", broken, timeout=30)
    assert done.returncode == 2 and "programz" in one_line_error(done.stderr)
    good = sites.policy_path(0).read_text()
    sites.policy_path(0).write_text("submitters: [oops\n")
    wait_until(lambda: "keeping the previous policy" in sites.agent_log(0), 20, "the agent to refuse the policy")
    sites.policy_path(0).write_text(good)
    # a manifest no site can run: refused with its reason, published, nothing runs
    bad = sites.jobs(0, "bad-manifest")
    bad.mkdir(parents=True)
    from syqure_wf.transport.syftbox import permissions

    for name, text in permissions(EMAILS).items():  # readable by the sites it names, as a submit makes it
        (bad / name).write_bytes(text)
    (bad / "manifest.json").write_bytes(signed(sites, 0, "manifest", json.dumps(
        {"format": "syqure-wf manifest 2", "run_id": "bad-manifest", "parties": EMAILS,
         "submitter": EMAILS[0]}).encode()))
    for pid in range(3):
        record = sites.wait_state("bad-manifest", pid, "rejected", seen_by=0)
        assert record["code"] == "bad_manifest" and "missing" in record["reason"], record
    assert all(sites.agents[pid].poll() is None for pid in range(3))


# -- no peer file stops an agent, and nothing grows without bound (issue 24)

def memory_kb(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def watched_inodes(pid: int) -> set[int]:
    """The inodes an agent's inotify watches (its fdinfo)."""
    found = set()
    for entry in os.scandir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(entry.path).read_text()
        except OSError:
            continue
        found |= {int(part[4:], 16) for line in text.splitlines() if line.startswith("inotify wd:")
                  for part in line.split() if part.startswith("ino:")}
    return found


def test_no_peer_file_stops_an_agent(tmp_path):
    """Beside an ordinary run, which completes: a manifest, a state file and a
    cancel file nested 200,000 deep, 1,000 manifests from a submitter site 1
    refuses, a 7.9 MB manifest and the ordinary run's id taken first by
    another site. Each file is refused once with a code in the audit log,
    nothing of the refused submitter is stored or published at site 1, every
    agent stays up with its memory bounded, and the run's watches end with it.
    One folder holds the three datasites: SyftBox 0.4 uploads about 8 files a
    second, and what matters here is what the agents do with the files."""
    sites = Sites(tmp_path, shared=True)
    try:
        hostile_files_beside_an_ordinary_run(sites)
    finally:
        sites.close()


def hostile_files_beside_an_ordinary_run(sites: Sites) -> None:
    from syqure_wf.sites.manifest import encode

    cp2 = sites.folder(2) / "datasites" / EMAILS[2] / "app_data/syqure/jobs" / EMAILS[2]  # what every site reads of cp2
    deep = b"[" * 200_000 + b"]" * 200_000
    before = {p: memory_kb(sites.agents[p].pid) for p in range(3)}
    # cp2 submits first what it then uses against the others
    squatted = sites.submit(sites.config("ordinary", marker_program(sites, "marker_squat")[0]), by=2)
    live = sites.submit(sites.config("hostile-live", "allele_counts2.py"), by=2)  # ready at sites 0 and 2
    publish_as(sites, 2, cp2, {})  # one rule for every folder below
    cp2_key = load_or_create(sites.folder(2), EMAILS[2])  # cp2 signs what it writes, hostile or not
    for i in range(1000):  # addressed to site 1 (and two sites that do not exist)
        m = handmade(sites, f"spam-{i:04d}", to=[EMAILS[1], "x@nowhere.org", "y@nowhere.org"], by=2)
        (cp2 / f"spam-{i:04d}").mkdir()
        (cp2 / f"spam-{i:04d}" / "manifest.json").write_bytes(sign(cp2_key, "manifest", encode(m)))
    (sites.programs / "big.py").write_bytes(b"# " + b"x" * 5_900_000 + b"\n")
    big = signed(sites, 2, "manifest", encode(handmade(sites, "big", "big.py", by=2)))
    assert 7_800_000 < len(big) < 8_100_000
    for name, data in (("deep", deep), ("big", big)):
        (cp2 / name).mkdir()
        (cp2 / name / "manifest.json").write_bytes(data)
    for pid in (0, 2):
        sites.wait_state(live, pid, "ready", by=2)
    (cp2 / live / "cancel.json").write_bytes(deep)
    publish_as(sites, 1, sites.jobs(1, live, by=2, seen_by=1), {"state.json": deep})  # site 1 never answered cp2
    # the ordinary run, beside all this
    run_id = sites.submit(sites.config("ordinary"))
    assert run_id == squatted
    for pid in range(3):
        sites.wait_state(run_id, pid, ("ready", "running", "done"))
    wait_until(lambda: all(sites.jobs(q, run_id, seen_by=p).is_dir() for p in range(3) for q in range(3)), 30,
               "every site's folder of the run at every site")
    folders = {p: {os.stat(sites.jobs(q, run_id, seen_by=p)).st_ino for q in range(3)} for p in range(3)}
    wait_until(lambda: all(folders[p] <= watched_inodes(sites.agents[p].pid) for p in range(3)), 10,
               "every agent to watch the live run's folders")
    waited = sites.wait(run_id)
    assert waited.returncode == 0, waited.stderr
    for pid in range(3):
        got = json.loads((sites.root / "results" / run_id / f"party-{pid}.json").read_text())
        assert got["allele_count"] == expected_counts()
    # each hostile file refused once, with its code; the live run untouched by the bad cancel and state
    files = {"deep manifest": (f"{EMAILS[2]}/app_data/syqure/jobs/{EMAILS[2]}/deep", "bad_manifest"),
             "cancel": (f"{EMAILS[2]}/app_data/syqure/jobs/{EMAILS[2]}/{live}/cancel.json", "bad_file"),
             "state": (f"{EMAILS[1]}/app_data/syqure/jobs/{EMAILS[2]}/{live}/state.json", "bad_file")}
    for pid in (0, 2):
        def refusals(what):
            where, code = files[what]
            return [e for e in sites.audit(pid) if e["event"] == "refused" and e.get("code") == code
                    and (e.get("file") == where or f"{e.get('submitter')}/app_data/syqure/jobs/{e.get('submitter')}/"
                         f"{e.get('run_id')}" == where)]
        for what in files:
            wait_until(lambda: refusals(what), 30, f"site {pid} to refuse the {what}", step=0.2)
            assert len(refusals(what)) == 1 and "nested too deep" in refusals(what)[0]["reason"], refusals(what)
        assert sites.state(live, pid, seen_by=pid, by=2)["state"] == "ready"
        big_answer = sites.wait_state("big", pid, ("rejected", "cancelled"), by=2)
        assert big_answer["code"] in ("program", "peer"), big_answer
    # site 1: none of cp2's manifests read, stored or answered; one line in its audit log
    about_cp2 = [e for e in sites.audit(1) if e.get("submitter") == EMAILS[2]]
    assert [(e["event"], e["code"]) for e in about_cp2] == [("refused", "submitter")], about_cp2
    assert not (sites.folder(1) / "syqure-wf" / EMAILS[1] / "runs" / EMAILS[2]).exists()
    assert {p.name for p in sites.jobs(1, "", by=2, seen_by=1).iterdir()} == {live}  # only what the test put there
    # the squatter's run is its own: both are in site 0's records
    both = json.loads(sh("runs", *sites.site(0), "--json").stdout)
    assert {(r["submitter"], r["state"]) for r in both if r["run_id"] == run_id} >= {(EMAILS[0], "done")}
    assert (EMAILS[2], "done") not in {(r["submitter"], r["state"]) for r in both if r["run_id"] == run_id}
    # every agent up, its memory bounded, the ended run's folders no longer watched
    after = {p: memory_kb(sites.agents[p].pid) for p in range(3)}
    print("agent memory (kB) before -> after, peak:", {p: (before[p]["VmRSS"], after[p]["VmRSS"], after[p]["VmHWM"])
                                                        for p in range(3)})
    for pid in range(3):  # (measured: 34 MB before, 2-4 MB more after, a 65 MB peak reading the 7.9 MB one)
        assert sites.agents[pid].poll() is None
        assert after[pid]["VmRSS"] - before[pid]["VmRSS"] < 16 << 10, (before, after)
        assert after[pid]["VmHWM"] < 128 << 10, after
        assert not folders[pid] & watched_inodes(sites.agents[pid].pid), "an ended run's folders stay watched"
    assert after[1]["VmHWM"] - before[1]["VmRSS"] < 8 << 10, (before, after)  # it never read cp2's files
    assert sh("cancel", live, *sites.site(2)).returncode == 0


# -- real Sequre (the fork) through the agents

@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.skipif(os.geteuid() != 0, reason="three Sequre parties on one host need a network namespace each (root)")
def test_real_sequre_through_agents_compiled_before_the_start(tmp_path_factory, tmp_path):
    """A .py Sequre program (Codon compiles both): compiled at submit and by
    each agent before it says ready (one build cache: once), then the three
    parties, each in its own namespace, give the MPyC job's numbers."""
    from sequre_install import sequre_env, sequre_home

    home = sequre_home()
    env = sequre_env(home, "fork", tmp_path_factory.mktemp("builds"))
    codon = str(home / "fork" / "bin" / "codon")
    data = EXAMPLE / "data"
    common = {"submitters": ["*"], "unlisted_programs": "ask", "isolation": "netns", "engine": {"codon": codon}}
    root = tmp_path_factory.mktemp("sequre-sites")
    program = root / "sequre" / "allele_counts.py"
    program.parent.mkdir()
    program.write_bytes((EXAMPLE / "allele_counts.codon").read_bytes())
    engine = {"name": "sequre", "flavour": "fork", "program": str(program), "args": ["--skip-mhe-setup"]}
    d = run_digest_of({"engine": engine}, root, EMAILS, {1: "counts", 2: "counts"})
    policies = {0: {**common, "programs": [d]},
                1: {**common, "programs": [d], "inputs": {"counts": str(data / "site1.tsv")}},
                2: {**common, "programs": [d], "inputs": {"counts": str(data / "site2.tsv")}}}
    s = Sites(root, policies, env)
    try:
        cfg = root / "sequre.yaml"
        cfg.write_text(yaml.safe_dump({"run_id": "sequre-run", "inputs": {1: "counts", 2: "counts"},
                                       "engine": engine}))
        run_id = s.submit(cfg, timeout=900)
        waited = sh("wait", run_id, *s.site(0), "--results", tmp_path, timeout=600, env=env)
        assert waited.returncode == 0, waited.stderr
        local = tmp_path / "local"
        done = sh("run", "--config", EXAMPLE / "config.yaml", "--workdir", local, "--quiet", timeout=180)
        assert done.returncode == 0, done.stderr
        for pid in range(3):
            got = json.loads((tmp_path / run_id / f"party-{pid}.json").read_text())
            want = json.loads((local / "outputs" / f"party-{pid}.json").read_text())
            assert got["allele_count"] == want["allele_count"]
            # ready only once compiled; the party then took the binary from the cache
            events = [e["event"] for e in s.audit(pid) if e["run_id"] == run_id]
            assert events == ["received", "decision", "compiled", "ready", "started", "done"], events
            status = json.loads((s.folder(pid) / "datasites" / EMAILS[pid] / "app_data/syqure/runs"
                                 / channel_id(EMAILS[0], run_id) / "status" / f"party-{pid}.json").read_text())
            assert status["times"]["build_s"] < 30, status["times"]
    finally:
        s.close()


# -- the workflows' submit step

def test_snakemake_submit_step_embedded_as_a_module(sites, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "Snakefile").write_text(f'''
module syqure:
    snakefile: "{REPO / "workflow/Snakefile"}"
    config: config["syqure"]
    prefix: "mpc"

use rule * from syqure as syqure_*

rule all:
    input: "mpc/results/sub/summary.json"
    default_target: True
''')
    (host / "config.yaml").write_text(yaml.safe_dump({"syqure": {
        "run": "sub", "submit": {"to": EMAILS, "syftbox_folder": str(sites.folder(0)), "email": EMAILS[0]},
        "mpc": {"run_id": "snakemake-submit", "inputs": {1: "counts", 2: "counts"},
                "engine": {"name": "mpyc", "program": str(sites.programs / "allele_counts.py")}}}}))
    done = subprocess.run([PY, "-m", "snakemake", "--cores", "1", "--configfile", "config.yaml"], cwd=host,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    summary = checked_summary(host / "mpc/results/sub/summary.json", "submit")
    assert summary["run_id"] == "snakemake-submit" and {p["state"] for p in summary["parties"]} == {"done"}
    assert [p["site"] for p in summary["parties"]] == EMAILS
    for pid in range(3):
        got = json.loads((host / "mpc/results/sub" / f"party-{pid}.json").read_text())
        assert got["allele_count"] == expected_counts()


@pytest.mark.slow  # the default run keeps the scenarios the issue names
def test_nextflow_submit_profile_runs_against_the_agents(sites, nextflow, tmp_path):
    """`nextflow run nextflow/main.nf -profile submit` by a real Nextflow
    (issue 25): SUBMIT submits, every site's agent runs its party, SUBMIT
    waits and publishes what each site shared and the summary."""
    import shutil

    launch = tmp_path / "launch"
    shutil.copytree(REPO / "nextflow", launch / "nextflow")
    for name in ("main.nf", "nextflow.config", "nextflow_schema.json"):
        shutil.copy(REPO / name, launch / name)
    done = nextflow.run("run", "main.nf", "-profile", "submit", "--run_config", sites.config("nextflow-submit"),
                        "--to", ",".join(EMAILS), "--syftbox_folder", sites.folder(0), "--email", EMAILS[0],
                        "--run", "sub", "--expires", "600", "--timeout", "240", cwd=launch, env=sites.env, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Submitted process > SUBMIT (sub)" in done.stdout
    published = launch / "results/sub"
    summary = checked_summary(published / "summary.json", "submit")
    assert summary["run_id"] == "nextflow-submit" and [p["site"] for p in summary["parties"]] == EMAILS
    assert sorted(p.name for p in published.iterdir()) == [f"party-{p}.json" for p in range(3)] + ["summary.json"]
    for pid in range(3):
        assert json.loads((published / f"party-{pid}.json").read_text())["allele_count"] == expected_counts()
    command = next((launch / "work").glob("*/*/.command.sh")).read_text()
    assert "--expires 600" in command and "--timeout 240" in command


# -- what a submitted party may do at its site (issue 24, section 5)

def test_a_submitted_party_reads_only_its_own_and_the_run_completes(sites, tmp_path):
    """A program approved by policy looks beyond what it was given: each
    site's policy and audit log, and a file outside its folders. With
    Landlock (the agents' default where the kernel has it) every look is
    refused, the run still completes, and its environment is not the agent's."""
    from syqure_wf.run.confine import BASE_ENV, landlock_abi, matches

    if landlock_abi()[1]:
        pytest.skip(f"no Landlock here: {landlock_abi()[1]}")
    own = [sites.folder(p) / "syqure-wf" / EMAILS[p] for p in range(3)]  # each agent's folder
    reads = [str(sites.policy_path(p)) for p in range(3)] + [str(o / "audit.jsonl") for o in own] + \
        [str(o / "runs" / EMAILS[0] / "peek" / "run.yaml") for o in own]  # its own run's, in the folder it starts in
    writes = [str(sites.root / "escaped")] + [str(sites.folder(p) / "datasites" / EMAILS[p] / "escaped")
                                              for p in range(3)]
    text = (REPO / "tests/programs/mpyc_peek.py").read_text()
    baked = text.replace('PEEK = {"read": [], "write": [], "port": 0}',
                         f"PEEK = {{'read': {reads!r}, 'write': {writes!r}, 'port': 0}}")
    assert baked != text
    (sites.programs / "peek.py").write_text(baked)
    d = sites.digest("peek.py", inputs={1: "counts", 2: "counts"})
    for pid in range(3):  # approved by policy at every site
        before = sites.agent_log(pid).count("re-read")
        sites.policy_path(pid).write_text(yaml.safe_dump({**sites.policies[pid],
                                                          "programs": [*sites.policies[pid]["programs"], d]}))
        wait_until(lambda: sites.agent_log(pid).count("re-read") > before, 30, f"agent {pid} to re-read its policy")
    run_id = sites.submit(sites.config("peek", "peek.py"))
    waited = sites.wait(run_id, results=tmp_path)
    assert waited.returncode == 0, waited.stderr
    for pid in range(3):
        seen = json.loads((tmp_path / run_id / f"party-{pid}.json").read_text())
        assert seen["sum"] == 6 and seen["input"] == ("done" if pid else "none")
        assert set(seen["read"]) == set(reads) and set(seen["read"].values()) == {"refused: PermissionError"}, seen
        assert set(seen["write"]) == set(writes) and set(seen["write"].values()) == {"refused: PermissionError"}
        strange = [k for k in seen["environment"] if not matches(k, (*BASE_ENV, "SYQURE_*", "MPYC_*"))]
        assert strange == [], strange
        status = json.loads((sites.folder(pid) / "datasites" / EMAILS[pid] / "app_data/syqure/runs"
                             / channel_id(EMAILS[0], run_id) / "status" / f"party-{pid}.json").read_text())
        assert status["confinement"] == f"Landlock ABI {landlock_abi()[0]}; seccomp: TCP sockets only; " \
            "network: a namespace of its own (only its loopback); clean environment", status  # test_reach.py
        assert sites.state(run_id, pid)["approved_by"] == "policy"
    assert not any(Path(w).exists() for w in writes)


# -- sealed by the sites' keys (issue 23): what the sync server holds, and what it may try

class ServerStorage(threading.Thread):
    """The SyftBox server's own copy of a run's message files, read while the
    run goes (writers remove what was consumed); ``tamper`` turns it into the
    server's operator, who rewrites each new message of one direction and its
    marker, and its own records so that every client takes the new bytes."""

    def __init__(self, sites: Sites, run_id: str, tamper: str | None = None) -> None:
        super().__init__(daemon=True)
        self.root = sites.net.root / "server"
        self.run_id, self.tamper = channel_id(EMAILS[0], run_id), tamper  # the channels' folder
        self.files: dict[str, bytes] = {}
        self.tampered: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for path in (self.root / "snapshot").glob(f"*/app_data/syqure/runs/{self.run_id}/*_to_*/[0-9]*"):
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                rel = str(path.relative_to(self.root / "snapshot"))
                if path.suffix != ".ready" and path.suffix != ".end" and data:
                    self.files.setdefault(rel, data)
                if self.tamper and path.parent.name == self.tamper and path.suffix == ".ready" \
                        and rel not in self.tampered:
                    self._rewrite(path, rel)
            time.sleep(0.005)

    def _rewrite(self, marker: Path, rel: str) -> None:
        import hashlib

        message = marker.with_suffix(".msg")
        try:
            record, data = json.loads(marker.read_bytes()), bytearray(message.read_bytes())
        except (OSError, ValueError):
            return  # not all there yet
        if record.get("parts") != 1 or len(data) != 8 + record["length"]:
            return
        data[-1] ^= 0x01  # one bit of the tag: a share the server changed
        record["sha256"] = hashlib.sha256(data).hexdigest()  # and the digest a sync checks, to match
        server_rewrites(self.root, {message: bytes(data),
                                    marker: json.dumps(record, separators=(",", ":")).encode()})
        self.tampered.append(rel)

    def __enter__(self) -> "ServerStorage":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)


def server_rewrites(root: Path, new: dict[Path, bytes]) -> None:
    """The server's operator rewrites files in its storage, and its own
    records so that every client takes the new bytes."""
    import hashlib
    import sqlite3
    from datetime import datetime, timedelta, timezone

    later = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    with sqlite3.connect(root / "file.db", timeout=10) as db:
        for path, content in new.items():
            path.write_bytes(content)
            db.execute("UPDATE file_metadata SET hash = ?, file_size = ?, last_modified = ? WHERE path = ?",
                       (hashlib.sha256(content).hexdigest(), len(content), later,
                        str(path.relative_to(root / "snapshot"))))


def looks_sealed(bodies: list[bytes]) -> tuple[float, int]:
    """How much zlib shrinks the message files (their 8-byte length header
    aside), and how many hold 6 zero bytes in a row (a plaintext length
    header, MPyC's integers): 1.0 and 0 for ciphertext; the example's
    plaintext shares shrink to 0.82."""
    import zlib

    joined = b"".join(b[8:] for b in bodies)
    return len(zlib.compress(joined, 9)) / max(1, len(joined)), sum(b"\0" * 6 in b[8:] for b in bodies)


def test_the_server_holds_only_ciphertext_of_a_submitted_run(sites, tmp_path):
    with ServerStorage(sites, "sealed-run") as server:
        run_id = sites.submit(sites.config("sealed-run"))
        waited = sites.wait(run_id, results=tmp_path)
        assert waited.returncode == 0, waited.stderr
    for pid in range(3):
        assert json.loads((tmp_path / run_id / f"party-{pid}.json").read_text())["allele_count"] == expected_counts()
    assert len(server.files) >= 10, sorted(server.files)
    ratio, zero_runs = looks_sealed(list(server.files.values()))
    assert ratio > 0.99 and zero_runs == 0, (ratio, zero_runs)
    # every site sealed with its site key and verified each peer's
    for pid in range(3):
        status = json.loads((sites.folder(pid) / "datasites" / EMAILS[pid] / "app_data/syqure/runs"
                             / channel_id(EMAILS[0], run_id) / "status" / f"party-{pid}.json").read_text())
        assert status["sealing"] == "site-keys" and len(status["peer_keys"]) == 2, status
    assert looks_sealed([b"\0" * 8 + json.dumps(expected_counts()).encode()])[0] < 0.9  # the check can fail
    # issue 32: the results too are ciphertext in the server's storage, sealed to the submitter, signed
    snapshot = sites.net.root / "server" / "snapshot"
    stored = {pid: snapshot / EMAILS[pid] / "app_data/syqure/results" / EMAILS[0] / run_id / f"party-{pid}.json"
              for pid in range(3)}
    counts = [str(c).encode() for c in expected_counts()]
    for pid, path in stored.items():
        data = path.read_bytes()
        assert b"allele_count" not in data and not all(c in data for c in counts), data[:400]
        envelope = json.loads(data)
        assert envelope["kind"] == "result" and envelope["signer"] == EMAILS[pid]
        assert [r["email"] for r in json.loads(envelope["body"])["readers"]] == [EMAILS[0]]
    # and a result the server alters is refused by wait, naming its site
    envelope = json.loads(stored[1].read_bytes())
    body = json.loads(envelope["body"])
    text = body["ciphertext"]
    body["ciphertext"] = text[:10] + ("A" if text[10] != "A" else "B") + text[11:]
    local = sites.folder(0) / "datasites" / EMAILS[1] / "app_data/syqure/results" / EMAILS[0] / run_id / "party-1.json"
    before = local.read_bytes()
    server_rewrites(sites.net.root / "server", {stored[1]: json.dumps({**envelope, "body": json.dumps(body)}).encode()})
    wait_until(lambda: local.read_bytes() != before, 30, "site 0's client to take the altered result", step=0.1)
    again = sites.wait(run_id, results=tmp_path / "again", timeout=60)
    assert again.returncode != 0
    line = again.stderr.strip().splitlines()[-1]
    assert f"refused the result of {EMAILS[1]}" in line and "does not verify" in line, line
    assert not (tmp_path / "again" / run_id / "party-1.json").exists()


def test_a_message_altered_on_the_server_fails_the_run_naming_the_channel(sites):
    with ServerStorage(sites, "altered-run", tamper="1_to_0") as server:
        run_id = sites.submit(sites.config("altered-run"))
        waited = sites.wait(run_id, timeout=120)
    assert server.tampered, "the server never saw a message of 1_to_0"
    assert waited.returncode != 0
    line = waited.stderr.strip().splitlines()[-1]
    assert "channel 0-1" in line and "from party 1 failed authentication" in line, line


def test_a_site_whose_published_key_changed_is_refused_naming_it(sites):
    """Site 2's key changes (a new key, or a server that swaps its DID
    document). Site 0's policy lists the old one: it refuses the run, naming
    the site and both keys, before anything runs. Site 1 never met site 2
    (its policy lists no key for it, nothing pinned): the run waits for its
    operator, whom 'show' gives the new fingerprint (issue 32: no trust on
    first sight for a submitted run). Nothing is sent to site 2."""
    from syqure_wf.keys import sitekey
    from syqure_wf.keys.known_sites import KnownSites

    site2 = sites.folder(2)
    old = sitekey.load_or_create(site2, EMAILS[2])
    KnownSites(sites.folder(1), EMAILS[1]).forget(EMAILS[2])
    did = sitekey.did_path(site2, EMAILS[2])
    saved = {p: p.read_bytes() for p in (old.path, did)}
    policy1 = sites.policy_path(1).read_text()
    unmet = {**sites.policies[1], "peers": [*sites.pins[:2], EMAILS[2]]}
    try:
        before = sites.agent_log(1).count("re-read")
        sites.policy_path(1).write_text(yaml.safe_dump(unmet))
        wait_until(lambda: sites.agent_log(1).count("re-read") > before, 30, "agent 1 to re-read its policy")
        for p in saved:
            p.unlink()
        made = sh("keys", *sites.site(2))
        assert made.returncode == 0, made.stderr
        new = made.stdout.split()[1]
        assert new != old.fingerprint
        for pid in (0, 1):
            wait_until(lambda: (sitekey.published(sites.folder(pid), EMAILS[2]) or old).fingerprint == new, 30,
                       f"site {pid} to see site 2's new key", step=0.1)
        with ServerStorage(sites, "changed-key") as server:
            run_id = sites.submit(sites.config("changed-key"))
            waited = sites.wait(run_id, timeout=120)
            asked = wait_until(lambda: [e for e in sites.audit(1) if e["run_id"] == run_id
                                        and e["event"] == "decision"], 30, "site 1's decision", step=0.1)
        assert waited.returncode != 0
        line = waited.stderr.strip().splitlines()[-1]
        assert EMAILS[2] in line and old.fingerprint in line and new in line and "key" in line, line
        assert (asked[0]["state"], asked[0]["code"]) == ("pending_approval", "key"), asked
        shown = sh("show", run_id, *sites.site(1))
        assert f"{new} (NEW: never met here, 'approve' pins it)" in shown.stdout, shown.stdout
        assert f"policy   asks an operator (key): new site key {EMAILS[2]} {new}" in shown.stdout, shown.stdout
        assert sites.started_anywhere(run_id) == []
        assert not [f for f in server.files if "_to_2/" in f], sorted(server.files)  # nothing sent to site 2
        assert EMAILS[2] not in KnownSites(sites.folder(1), EMAILS[1]).read()  # nothing pinned without the operator
    finally:
        sites.policy_path(1).write_text(policy1)
        for p, data in saved.items():
            p.write_bytes(data)
            os.chmod(p, 0o600)
        for pid in (0, 1):
            wait_until(lambda: (sitekey.published(sites.folder(pid), EMAILS[2]) or old).fingerprint
                       == old.fingerprint, 30, f"site {pid} to see site 2's key back", step=0.1)


# -- a run is exactly what every site signed and approved (issue 32)

def test_a_permuted_role_map_or_a_copied_manifest_runs_nowhere_without_an_operator(sites):
    """The approved allele counts submitted with its parties permuted (whose
    results, B+C, A+C, A+B, would solve for every site's counts) is another
    digest: it waits for an operator or is refused. A signed manifest of the
    approved run, copied by the server under a new run id (its body's run id
    changed, or the file as it is), is refused by every site, named in the
    audit log, never answered, and runs nowhere."""
    from syqure_wf.sites.manifest import encode

    permuted = [EMAILS[1], EMAILS[0], EMAILS[2]]
    run_id = sites.submit(sites.config("permuted"), to=permuted)
    want = {0: ("pending_approval", "program"), 1: ("pending_approval", "program"), 2: ("rejected", "program")}
    for pid, (state, code) in want.items():
        wait_until(lambda: any(e["run_id"] == run_id and e["event"] == "decision" and e.get("state") == state
                               and e.get("code") == code for e in sites.audit(pid)), 30,
                   f"site {pid}'s decision on the permuted run", step=0.1)
    # the approved run's manifest, as its submitter signed it, in the server's hands
    original = signed(sites, 0, "manifest", encode(handmade(sites, "approved-original")))
    envelope = json.loads(original)
    body = json.loads(envelope["body"])
    copied = json.dumps({**envelope, "body": json.dumps({**body, "run_id": "copied-run"})}).encode()
    publish_as(sites, 0, sites.jobs(0, "copied-run"), {"manifest.json": copied})
    publish_as(sites, 0, sites.jobs(0, "copied-as-is"), {"manifest.json": original})
    for pid in (1, 2):
        for rid, code in (("copied-run", "signature"), ("copied-as-is", "bad_manifest")):
            wait_until(lambda: any(e["event"] == "refused" and e.get("run_id") == rid and e.get("code") == code
                                   for e in sites.audit(pid)), 30, f"site {pid} to refuse {rid}", step=0.1)
    refusal = next(e for e in sites.audit(1) if e.get("run_id") == "copied-run" and e["event"] == "refused")
    assert "signature does not verify" in refusal["reason"] and EMAILS[0] in refusal["reason"], refusal
    time.sleep(1)
    for rid in ("copied-run", "copied-as-is"):
        assert sites.started_anywhere(rid) == []
        assert not any(sites.state(rid, pid) for pid in range(3))  # never answered
    assert sites.started_anywhere(run_id) == []
