"""Submit once, every site's agent runs its own party (issue 17): three
datasites on a real SyftBox 0.4 server with a real client each, an agent at
each site with its own policy, MPyC parties started by the agents.

Policies (one net for the module; every scenario has its own run id):
  site 0  submitters *           programs D, D2, L   unlisted: ask
  site 1  submitters cp0, cp1    programs D, L       unlisted: ask     inputs counts
  site 2  submitters *           programs D, D2, L   unlisted: reject  inputs counts
D is the allele-counts example, D2 the same with another comment (site 1
asks its operator), L a long round-heavy program, and every marker program
(which writes a file when executed) is listed nowhere.
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

from conftest import PY, REPO, Procs, one_line_error, output, processes_mentioning, wait_until
from test_syftbox_real import EMAILS, SyftBoxNet

from syqure_wf.engines.program import digest, program_files

EXAMPLE = REPO / "examples" / "allele-counts"
INTERVAL = 0.1


def cli(*args) -> list[str]:
    return [PY, "-m", "syqure_wf", *map(str, args)]


def sh(*args, timeout: float = 60, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


class Sites:
    """The net, the programs, the policies and one agent per site."""

    def __init__(self, root: Path, policies: dict | None = None, env: dict | None = None) -> None:
        self.procs = Procs()
        try:
            self._start(root, policies, env)
        except BaseException:  # nothing it started outlives a set-up that failed
            self.procs.cleanup()
            raise

    def _start(self, root: Path, policies: dict | None, env: dict | None) -> None:
        self.env = env
        self.root = root
        self.net = SyftBoxNet(self.procs, root / "syftbox", EMAILS, INTERVAL)
        self.programs = root / "programs"
        self.programs.mkdir(exist_ok=True)
        for name in ("allele_counts.py",):
            (self.programs / name).write_bytes((EXAMPLE / name).read_bytes())
        (self.programs / "allele_counts2.py").write_bytes(
            b"# the same program, another digest: site 1 asks its operator\n" + (EXAMPLE / "allele_counts.py").read_bytes())
        (self.programs / "long.py").write_bytes((REPO / "tests/programs/mpyc_rounds.py").read_bytes())
        self.D, self.D2, self.L = (self.digest(n) for n in ("allele_counts.py", "allele_counts2.py", "long.py"))
        data = EXAMPLE / "data"
        self.policies = {
            0: {"submitters": ["*"], "programs": [self.D, self.D2, self.L]},
            1: {"submitters": EMAILS[:2], "programs": [self.D, self.L], "inputs": {"counts": str(data / "site1.json")}},
            2: {"submitters": ["*"], "programs": [self.D, self.D2, self.L], "unlisted_programs": "reject",
                "inputs": {"counts": str(data / "site2.json")}},
        }
        self.policies = policies or self.policies
        self.agents: dict[int, subprocess.Popen] = {}
        for pid in range(3):
            self.policy_path(pid).write_text(yaml.safe_dump(self.policies[pid]))
            self.start_agent(pid)

    def digest(self, name: str) -> str:
        return digest(name, program_files(self.programs / name))

    def folder(self, pid: int) -> Path:
        return self.net.folders[EMAILS[pid]]

    def site(self, pid: int) -> list[str]:
        return ["--syftbox-folder", str(self.folder(pid)), "--email", EMAILS[pid]]

    def policy_path(self, pid: int) -> Path:
        return self.root / f"policy-{pid}.yaml"

    def start_agent(self, pid: int) -> None:
        log = self.root / f"agent-{pid}-{time.monotonic():.0f}.log"
        self.agents[pid] = self.procs.start(cli("agent", *self.site(pid), "--policy", self.policy_path(pid)), log=log,
                                            env=self.env)
        wait_until(lambda: "watching" in log.read_text(), 30, f"agent {pid} to start")

    def kill_agent(self, pid: int) -> None:
        os.kill(self.agents[pid].pid, signal.SIGKILL)  # the agent alone, not its process group
        self.agents[pid].wait(10)

    def agent_log(self, pid: int) -> str:
        return Path(self.agents[pid].log).read_text()

    def config(self, run_id: str, program: str = "allele_counts.py", inputs=None, args=None) -> Path:
        cfg = {"run_id": run_id, "engine": {"name": "mpyc", "program": str(self.programs / program)},
               "inputs": {1: "counts", 2: "counts"} if inputs is None else inputs}
        if args:
            cfg["engine"]["args"] = args
        path = self.root / f"{run_id}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def submit(self, cfg: Path, by: int = 0, timeout: float = 120) -> str:
        done = sh("submit", "--config", cfg, "--to", ",".join(EMAILS), *self.site(by), timeout=timeout, env=self.env)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout.strip().splitlines()[-1]

    def wait(self, run_id: str, by: int = 0, timeout: float = 180, results: Path | None = None):
        return sh("wait", run_id, *self.site(by), "--results", results or self.root / "results", timeout=timeout)

    def state(self, run_id: str, pid: int, seen_by: int = 0) -> dict:
        path = (self.folder(seen_by) / "datasites" / EMAILS[pid] / "app_data/syqure/jobs" / run_id / "state.json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_state(self, run_id: str, pid: int, states, timeout: float = 60, seen_by: int | None = None) -> dict:
        states = (states,) if isinstance(states, str) else states
        return wait_until(lambda: (s := self.state(run_id, pid, pid if seen_by is None else seen_by))
                          and s.get("state") in states and s, timeout,
                          f"site {pid} to be {'/'.join(states)} in {run_id}", step=0.1)

    def audit(self, pid: int) -> list[dict]:
        path = self.folder(pid) / "syqure-wf" / EMAILS[pid] / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def started_anywhere(self, run_id: str) -> list[str]:
        return [f"site {p}" for p in range(3)
                if any(e["event"] == "started" and e["run_id"] == run_id for e in self.audit(p))
                or (self.folder(p) / "datasites" / EMAILS[p] / "app_data/syqure/runs" / run_id).exists()]

    def close(self) -> None:
        self.procs.cleanup()


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


@pytest.mark.slow  # the default run keeps the scenarios the issue names
def test_a_derived_run_id_is_the_same_for_the_same_submission(sites):
    cfg = sites.root / "derived.yaml"
    cfg.write_text(yaml.safe_dump({"engine": {"name": "mpyc", "program": str(sites.programs / "allele_counts.py")},
                                   "inputs": {1: "counts", 2: "counts"}}))
    first = sites.submit(cfg)
    assert first.startswith("job-") and sites.submit(cfg) == first
    assert sites.wait(first).returncode == 0


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
    approved = sh("approve", run_id, *sites.site(1))
    assert approved.returncode == 0, approved.stderr
    assert sites.wait(run_id).returncode == 0
    assert sites.state(run_id, 1)["approved_by"] == "hand"
    assert [e["how"] for e in sites.audit(1) if e["run_id"] == run_id and e["event"] == "decision"] == ["waiting", "hand"]


def test_after_reject_wait_fails_in_seconds_naming_the_site_and_nothing_started(sites):
    run_id = sites.submit(sites.config("rejected-by-hand", "allele_counts2.py"))
    sites.wait_state(run_id, 1, "pending_approval")
    # another site offering a run under the same id changes nothing of this one
    assert sites.submit(sites.config("rejected-by-hand", "long.py", inputs={}), by=2) == run_id
    wait_until(lambda: any(e["event"] == "refused" and e["run_id"] == run_id and EMAILS[0] in e["reason"]
                           for e in sites.audit(1)), 30, "site 1 to refuse the second manifest", step=0.1)
    assert sites.state(run_id, 1)["state"] == "pending_approval"
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
    record = sites.wait_state(run_id, site, "rejected")
    want = {"program": (f"program {sites.digest(program)} not approved"),
            "submitter": f"submitter {EMAILS[2]} not allowed", "input": "input 'genomes' not mapped here"}[case]
    assert record["code"] == case and record["reason"] == want, record
    last = waited.stderr.strip().splitlines()[-1]
    assert "rejected" in last and (case == "submitter" or EMAILS[site] in last), last  # site 2 rejects the marker too
    for pid in range(3):
        sites.wait_state(run_id, pid, ("rejected", "cancelled"))
    assert not marker.exists() and sites.started_anywhere(run_id) == []


def test_a_manifest_changed_after_approval_is_never_executed(sites):
    run_id = sites.submit(sites.config("tampered", "allele_counts2.py"))
    sites.wait_state(run_id, 0, "ready")
    sites.wait_state(run_id, 2, "ready")
    # the submitter's datasite now offers other bytes under the same run, self-consistent
    path = sites.folder(0) / "datasites" / EMAILS[0] / "app_data/syqure/jobs" / run_id / "manifest.json"
    manifest = json.loads(path.read_text())
    program, marker = marker_program(sites, "marker_tampered")
    body = (sites.programs / program).read_bytes()
    import base64
    import hashlib

    entry = manifest["program"]["entry"]
    manifest["program"]["files"] = [{"name": entry, "sha256": hashlib.sha256(body).hexdigest(),
                                     "data": base64.b64encode(body).decode()}]
    manifest["program"]["digest"] = digest(entry, {entry: body})
    path.write_text(json.dumps(manifest))
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
    copy = sites.folder(0) / "syqure-wf" / EMAILS[0] / "runs" / run_id / "program" / "allele_counts2.py"
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
    wait_until(lambda: len(processes_mentioning(f"/runs/{run_id}/")) >= 6, 60, "every party and program to run")
    t0 = time.monotonic()
    done = sh("cancel", run_id, *sites.site(0), timeout=60)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not processes_mentioning(f"/runs/{run_id}/"), 10, "every party to be gone")
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
    record = sites.folder(1) / "datasites" / EMAILS[1] / "app_data/syqure/runs" / running / "status/party-1.json"
    wait_until(lambda: record.exists() and json.loads(record.read_text()).get("state") == "running", 60,
               "site 1's party to run")
    answered = [e for e in sites.audit(1) if e["event"] in ("received", "decision")]
    sites.kill_agent(1)
    # its party goes with it (it is told by the kernel), and the peers name it
    wait_until(lambda: not processes_mentioning(f"{EMAILS[1]}/runs/{running}/"), 15, "site 1's party to stop")
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
    bad = sites.folder(0) / "datasites" / EMAILS[0] / "app_data/syqure/jobs/bad-manifest"
    bad.mkdir(parents=True)
    from syqure_wf.transport.syftbox import permissions

    for name, text in permissions(EMAILS).items():  # readable by the sites it names, as a submit makes it
        (bad / name).write_bytes(text)
    (bad / "manifest.json").write_text(json.dumps({"format": "syqure-wf manifest 1", "run_id": "bad-manifest",
                                                   "parties": EMAILS, "submitter": EMAILS[0]}))
    for pid in range(3):
        record = sites.wait_state("bad-manifest", pid, "rejected", seen_by=0)
        assert record["code"] == "bad_manifest" and "missing" in record["reason"], record
    assert all(sites.agents[pid].poll() is None for pid in range(3))


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
    d = digest(program.name, program_files(program))
    policies = {0: {**common, "programs": [d]},
                1: {**common, "programs": [d], "inputs": {"counts": str(data / "site1.tsv")}},
                2: {**common, "programs": [d], "inputs": {"counts": str(data / "site2.tsv")}}}
    s = Sites(root, policies, env)
    try:
        cfg = root / "sequre.yaml"
        cfg.write_text(yaml.safe_dump({"run_id": "sequre-run", "inputs": {1: "counts", 2: "counts"},
                                       "engine": {"name": "sequre", "program": str(program),
                                                  "args": ["--skip-mhe-setup"]}}))
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
            status = json.loads((s.folder(pid) / "datasites" / EMAILS[pid] / "app_data/syqure/runs" / run_id
                                 / "status" / f"party-{pid}.json").read_text())
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
    summary = json.loads((host / "mpc/results/sub/summary.json").read_text())
    assert summary["run_id"] == "snakemake-submit" and {s["state"] for s in summary["sites"].values()} == {"done"}
    for pid in range(3):
        got = json.loads((host / "mpc/results/sub/sites" / f"party-{pid}.json").read_text())
        assert got["allele_count"] == expected_counts()


@pytest.mark.slow  # the default run keeps the scenarios the issue names
def test_the_nextflow_submit_process_runs_its_script(sites, tmp_path):
    """Nextflow cannot be installed here (FINDINGS.md): SUBMIT's script, its
    inputs filled in as Nextflow would, run by bash in a work folder."""
    import re

    text = (REPO / "nextflow/modules/submit/main.nf").read_text()
    script = re.search(r'script:\s*"""(.*?)"""', text, re.S).group(1)
    values = {"config": "run.yaml", "to": ",".join(EMAILS), "syftbox_folder": str(sites.folder(0)),
              "email": EMAILS[0]}
    script = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], script).replace("\\$", "$")
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.yaml").symlink_to(sites.config("nextflow-submit"))  # staged, as Nextflow does
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((work / "summary.json").read_text())["run_id"] == "nextflow-submit"
    assert sorted(p.name for p in (work / "results").iterdir()) == [f"party-{p}.json" for p in range(3)]


# -- sealed by the sites' keys (issue 23): what the sync server holds, and what it may try

class ServerStorage(threading.Thread):
    """The SyftBox server's own copy of a run's message files, read while the
    run goes (writers remove what was consumed); ``tamper`` turns it into the
    server's operator, who rewrites each new message of one direction and its
    marker, and its own records so that every client takes the new bytes."""

    def __init__(self, sites: Sites, run_id: str, tamper: str | None = None) -> None:
        super().__init__(daemon=True)
        self.root = sites.net.root / "server"
        self.run_id, self.tamper = run_id, tamper
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
        import sqlite3
        from datetime import datetime, timedelta, timezone

        message = marker.with_suffix(".msg")
        try:
            record, data = json.loads(marker.read_bytes()), bytearray(message.read_bytes())
        except (OSError, ValueError):
            return  # not all there yet
        if record.get("parts") != 1 or len(data) != 8 + record["length"]:
            return
        data[-1] ^= 0x01  # one bit of the tag: a share the server changed
        record["sha256"] = hashlib.sha256(data).hexdigest()  # and the digest a sync checks, to match
        new = {message: bytes(data), marker: json.dumps(record, separators=(",", ":")).encode()}
        later = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
        with sqlite3.connect(self.root / "file.db", timeout=10) as db:
            for path, content in new.items():
                path.write_bytes(content)
                db.execute("UPDATE file_metadata SET hash = ?, file_size = ?, last_modified = ? WHERE path = ?",
                           (hashlib.sha256(content).hexdigest(), len(content), later,
                            str(path.relative_to(self.root / "snapshot"))))
        self.tampered.append(rel)

    def __enter__(self) -> "ServerStorage":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)


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
        status = json.loads((sites.folder(pid) / "datasites" / EMAILS[pid] / "app_data/syqure/runs" / run_id
                             / "status" / f"party-{pid}.json").read_text())
        assert status["sealing"] == "site-keys" and len(status["peer_keys"]) == 2, status
    assert looks_sealed([b"\0" * 8 + json.dumps(expected_counts()).encode()])[0] < 0.9  # the check can fail


def test_a_message_altered_on_the_server_fails_the_run_naming_the_channel(sites):
    with ServerStorage(sites, "altered-run", tamper="1_to_0") as server:
        run_id = sites.submit(sites.config("altered-run"))
        waited = sites.wait(run_id, timeout=120)
    assert server.tampered, "the server never saw a message of 1_to_0"
    assert waited.returncode != 0
    line = waited.stderr.strip().splitlines()[-1]
    assert "channel 0-1" in line and "from party 1 failed authentication" in line, line


def test_a_site_whose_published_key_changed_is_refused_naming_it(sites):
    """Site 2's key, pinned at sites 0 and 1, changes (a new key, or a server
    that swaps its DID document): a run with it fails before any share goes
    to it, naming the site and both keys."""
    from syqure_wf.transport import sitekey

    site2 = sites.folder(2)
    old = sitekey.load_or_create(site2, EMAILS[2])
    for pid in (0, 1):
        sitekey.KnownSites(sites.folder(pid), EMAILS[pid]).pin(EMAILS[2], old.fingerprint)
    did = sitekey.did_path(site2, EMAILS[2])
    saved = {p: p.read_bytes() for p in (old.path, did)}
    try:
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
        assert waited.returncode != 0
        line = waited.stderr.strip().splitlines()[-1]
        assert f"site {EMAILS[2]}'s key changed: it was {old.fingerprint}" in line and new in line, line
        assert not [f for f in server.files if "_to_2/" in f], sorted(server.files)  # nothing sent to site 2
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
            os.chmod(p, 0o600)
        for pid in (0, 1):
            wait_until(lambda: (sitekey.published(sites.folder(pid), EMAILS[2]) or old).fingerprint
                       == old.fingerprint, 30, f"site {pid} to see site 2's key back", step=0.1)
