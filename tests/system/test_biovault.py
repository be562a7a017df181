"""Biovault's `runtime: syqure` steps through `syqure-wf-biovault` (issue 18).
Parties are started the way Biovault's runner starts its syqure binary
(OpenMined/biovault, cli/src/cli/commands/run_dynamic.rs): argv `BINARY
ENTRYPOINT -- PID`, cwd and SYQURE_BUNDLE_CACHE a per-party work folder,
a process group of its own, the run in SEQURE_* and BV_* variables, the
channel folders prepared in each sender's datasite with a syft.pub.yaml.
The program is a real Sequre program in Biovault's module form
(examples/biovault-module/secure-sum), built once for the module."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, one_line_error, output, wait_until
from sequre_install import sequre_env, sequre_home

pytestmark = pytest.mark.minutes(2)

MODULE = REPO / "examples/biovault-module/secure-sum"
EMAILS = ["aggregator@biovault.org", "client1@biovault.org", "client2@biovault.org"]
COUNTS = {1: [3, 0, 7, 11, 2], 2: [4, 9, 0, 1, 5]}
SUMS = [7, 9, 7, 12, 7]
BIOVAULT = [sys.executable, "-m", "syqure_wf.biovault"]


class Flow:
    """Three datasites in one folder, as SyftBox syncs them, and one
    Biovault run of the secure-sum step."""

    def __init__(self, root: Path, run_id: str, module: Path = MODULE, roots: dict[int, Path] | None = None,
                 counts: dict[int, list[int]] = COUNTS):
        self.root, self.run_id, self.module, self.counts = root, run_id, module, counts
        self.datasites = root / "SyftBox" / "datasites"
        # each party's SEQURE_DATASITES_ROOT: one folder for all, or each site's SyftBox client's
        self.roots = roots or {p: self.datasites for p in range(3)}
        self.file_dir = f"shared/flows/secure-sum/{run_id}/_mpc"
        for p, email in enumerate(EMAILS):
            mpc = self.roots[p] / email / self.file_dir
            for q in range(3):
                if q != p:  # Biovault prepares {from}_to_{to} in the sender's datasite
                    channel = mpc / f"{p}_to_{q}"
                    channel.mkdir(parents=True, exist_ok=True)
                    (channel / "syft.pub.yaml").write_text(
                        f"rules:\n  - pattern: '**'\n    access:\n      read: [{email}, {EMAILS[q]}]\n"
                        f"      write: [{email}, {EMAILS[q]}]\n")
        for p, counts in self.counts.items():
            path = root / "inputs" / f"counts-{p}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(counts))

    def results(self, p: int) -> Path:
        return self.root / "results" / f"party-{p}"

    def output(self, p: int) -> Path:
        return self.results(p) / "aggregated_counts.json"

    def env(self, p: int, base: dict) -> dict:
        bundle = self.root / "bundle" / f"party-{p}"
        bundle.mkdir(parents=True, exist_ok=True)
        self.results(p).mkdir(parents=True, exist_ok=True)
        env = {**base, "SEQURE_TRANSPORT": "file", "SEQURE_FILE_DIR": self.file_dir, "SEQURE_FILE_POLL_MS": "50",
               "SEQURE_CP_COUNT": "3", "SEQURE_PARTY_EMAILS": ",".join(EMAILS),
               "SEQURE_DATASITES_ROOT": str(self.roots[p]), "SEQURE_LOCAL_EMAIL": EMAILS[p],
               "SEQURE_FILE_KEEP": "1", "SEQURE_FILE_DEBUG": "1",
               "BV_DATASITES": ",".join(EMAILS), "BV_DATASITE_INDEX": str(p), "BV_CURRENT_DATASITE": EMAILS[p],
               "BV_RESULTS_DIR": str(self.results(p)), "BV_RUN_ID": self.run_id, "BV_FLOW_NAME": "secure-sum",
               "BV_SYQURE_PORT_BASE": "21000", "SYQURE_BUNDLE_CACHE": str(bundle),
               "SEQURE_OUTPUT_AGGREGATED_COUNTS": str(self.output(p)),
               "BV_OUTPUT_AGGREGATED_COUNTS": str(self.output(p))}
        if p in self.counts:
            counts = str(self.root / "inputs" / f"counts-{p}.json")
            env.update(SEQURE_INPUT_COUNTS=counts, BV_INPUT_COUNTS=counts)
        return env

    def start(self, procs, p: int, base: dict, binary=BIOVAULT, extra=(), overrides=None):
        env = {**self.env(p, base), **(overrides or {})}
        return procs.start([*binary, *extra, self.module / "secure_sum.codon", "--", str(p)],
                           log=self.root / f"party-{p}-{time.monotonic_ns()}.log", env=env,
                           cwd=env["SYQURE_BUNDLE_CACHE"])

    @property
    def sums(self) -> list[int]:
        return [a + b for a, b in zip(self.counts[1], self.counts[2])]

    def record(self, p: int) -> dict:
        try:
            return json.loads((self.roots[p] / EMAILS[p] / self.file_dir / "status" / f"party-{p}.json").read_text())
        except (OSError, ValueError):
            return {}

    def message_files(self, p: int) -> list[Path]:
        mpc = self.roots[p] / EMAILS[p] / self.file_dir
        return [f for f in mpc.glob("*_to_*/*") if f.name[:1].isdigit()]


@pytest.fixture(scope="module")
def sequre(tmp_path_factory):
    """The fork's codon first on PATH, and one build cache for this module's
    tests: the first run compiles, every later one takes the cached binary."""
    home = sequre_home()
    return sequre_env(home, "fork", tmp_path_factory.mktemp("bv-cache"))


def start_three(procs, flow: Flow, env: dict, gap: float = 0.5, order=(0, 1, 2), overrides=None) -> dict:
    started = {}
    for p in order:
        started[p] = flow.start(procs, p, env, overrides=overrides)
        time.sleep(gap)
    return started


def test_three_parties_started_as_biovault_starts_them(procs, tmp_path, sequre):
    flow = Flow(tmp_path, "run-1")
    started = start_three(procs, flow, sequre)
    for proc in started.values():
        assert procs.wait(proc, 900) == 0, output(proc)[-3000:]
    for p in range(3):
        assert json.loads(flow.output(p).read_text()) == SUMS, p
    # the messages lived in each sender's own folder; every outbox is empty now
    for p in range(3):
        assert flow.message_files(p) == [], flow.message_files(p)
        mpc = flow.datasites / EMAILS[p] / flow.file_dir
        assert json.loads((mpc / "status" / f"party-{p}.json").read_text())["state"] == "done"
        assert not list((flow.datasites / EMAILS[p]).glob(f"{flow.file_dir}/status/party-[!{p}].json"))
        # Biovault's permissions stay as it wrote them
        assert "write: [" in (mpc / f"{p}_to_{(p + 1) % 3}" / "syft.pub.yaml").read_text()
        # our logs beside Biovault's, in SYQURE_BUNDLE_CACHE
        assert (tmp_path / "bundle" / f"party-{p}" / "syqure-wf" / "logs" / f"party-{p}.log").is_file()
    # compiled once: one binary in the cache
    assert len(list(Path(sequre["SYQURE_WF_CACHE"]).glob("secure_sum-*/secure_sum"))) == 1


def test_a_killed_party_is_named_and_a_rerun_in_the_same_folder_never_sees_its_files(procs, tmp_path, sequre):
    n = 50000  # long enough a run to be killed in its middle
    flow = Flow(tmp_path, "run-2", counts={1: list(range(n)), 2: [7] * n})
    started = start_three(procs, flow, sequre, gap=0.2)
    # mid-run: every party is running and party 2 has sent messages
    wait_until(lambda: all(flow.record(p).get("state") == "running" for p in range(3)) and any(
        c.get("sent_messages", 0) for c in (flow.record(2).get("channels") or {}).values()),
        600, "every party to be running, party 2 sending", step=0.05)
    killed = time.monotonic()
    os.killpg(started[2].pid, signal.SIGKILL)  # as Biovault stops a step: its process group
    for p in (0, 1):
        code = procs.wait(started[p], 60)
        assert code != 0
        text = output(started[p])
        assert "party 2" in text.strip().splitlines()[-1], text[-2000:]
    took = time.monotonic() - killed
    assert took < 20, f"the others took {took:.1f} s to stop"
    left = flow.message_files(2)  # the killed run's messages, still in party 2's outboxes
    # the same step again, in the same _mpc folder
    again = start_three(procs, flow, sequre, gap=0.5, order=(2, 0, 1))
    for proc in again.values():
        assert procs.wait(proc, 600) == 0, output(proc)[-3000:]
    for p in range(3):
        assert json.loads(flow.output(p).read_text()) == flow.sums
    print(f"killed party 2: the others stopped in {took:.1f} s; the rerun found {len(left)} of its files")


def test_three_sites_through_real_syftbox(procs, tmp_path, sequre):
    """Each site with its own SyftBox 0.4 client (stock 1 s interval is the
    slow test's; 0.1 s here), the messages only in each sender's datasite."""
    from syftbox_net import SyftBoxNet

    net = SyftBoxNet(procs, tmp_path / "syftbox", EMAILS, interval=0.1)
    flow = Flow(tmp_path, "run-sbx", roots={p: net.folders[e] / "datasites" for p, e in enumerate(EMAILS)})
    started = start_three(procs, flow, sequre)
    for proc in started.values():
        assert procs.wait(proc, 900) == 0, output(proc)[-3000:]
    for p in range(3):
        assert json.loads(flow.output(p).read_text()) == SUMS
        # nobody wrote into another site's datasite: SyftBox would have rejected it
        theirs = [f for q in range(3) if q != p
                  for f in (net.folders[EMAILS[p]] / "datasites" / EMAILS[q]).rglob("*syftrejected*")]
        assert not theirs, theirs


def test_a_site_on_the_forks_own_file_transport_is_refused_naming_it(procs, tmp_path, sequre):
    """A mixed run: party 2 still runs the fork's native file transport (the
    compiled program itself, with Biovault's SEQURE_TRANSPORT=file)."""
    flow = Flow(tmp_path, "run-3")
    subprocess.run([sys.executable, "-m", "syqure_wf", "build", "--config", write_build_config(tmp_path)],
                   env=sequre, check=True, capture_output=True, timeout=900)
    binary = next(Path(sequre["SYQURE_WF_CACHE"]).glob("secure_sum-*/secure_sum"))
    ours = {p: flow.start(procs, p, sequre) for p in (0, 1)}
    env = flow.env(2, sequre)
    native = procs.start([binary, "--skip-mhe-setup", "2"], log=tmp_path / "native.log", env=env,
                         cwd=env["SYQURE_BUNDLE_CACHE"])
    for proc in ours.values():
        assert procs.wait(proc, 180) != 0
        line = output(proc).strip().splitlines()[-1]
        assert f"party 2 ({EMAILS[2]}) runs the Sequre fork's own file transport" in line, line
        assert "syqure-wf-biovault" in line
    procs.kill(native)  # the fork's own transport waits for ever: Biovault's timeout would end it


def test_hotlink_runs_the_program_directly_over_tcp(procs, tmp_path, sequre):
    """SEQURE_TRANSPORT=tcp: no proxy, no message files; the compiled program
    over Sequre's own sockets (its compiled-in ports, 9001-9003 here)."""
    flow = Flow(tmp_path, "run-tcp")
    started = start_three(procs, flow, sequre, gap=0.5,
                          overrides={"SEQURE_TRANSPORT": "tcp", "SEQURE_CP_IPS": "127.0.0.1,127.0.0.1,127.0.0.1"})
    for p, proc in started.items():
        assert procs.wait(proc, 600) == 0, output(proc)[-3000:]
        assert json.loads(flow.output(p).read_text()) == SUMS
        assert flow.message_files(p) == [] and flow.record(p) == {}


def write_build_config(tmp_path: Path) -> Path:
    path = tmp_path / "build.yaml"
    path.write_text(f"engine: {{name: sequre, program: {MODULE / 'secure_sum.codon'}}}\nparties: 3\n"
                    f"workdir: {tmp_path / 'build-run'}\n")
    return path


@pytest.mark.parametrize("case,expected", [
    ("no entrypoint", "does not exist"),
    ("local email not listed", "does not hold SEQURE_LOCAL_EMAIL"),
    ("pid out of range", "PID 3 is out of range"),
    ("not a module", "not a Biovault module (kind: Module)"),
    ("no arguments", "usage: syqure-wf-biovault"),
])
def test_bad_input_is_one_line_before_anything_starts(procs, tmp_path, case, expected):
    flow = Flow(tmp_path, "bad")
    env = flow.env(1, dict(os.environ))
    module = MODULE
    args = [str(MODULE / "secure_sum.codon"), "--", "1"]
    if case == "no entrypoint":
        args[0] = str(tmp_path / "missing.codon")
    elif case == "local email not listed":
        env["SEQURE_LOCAL_EMAIL"] = "someone@else.org"
    elif case == "pid out of range":
        args[2] = "3"
    elif case == "not a module":
        module = tmp_path / "flowdir"
        module.mkdir()
        (module / "module.yaml").write_text("kind: Flow\nspec: {}\n")
        (module / "secure_sum.codon").write_text("print(1)\n")
        args[0] = str(module / "secure_sum.codon")
    elif case == "no arguments":
        args = []
    proc = subprocess.run([*BIOVAULT, *args], env=env, capture_output=True, text=True, timeout=60,
                          cwd=env["SYQURE_BUNDLE_CACHE"])
    assert proc.returncode == 2
    line = one_line_error(proc.stdout + proc.stderr)
    assert line.startswith("syqure-wf-biovault: error: ") and expected in line, line
    # nothing started: no status, no work folder of ours
    assert not list(flow.datasites.rglob("status"))
    assert not (tmp_path / "bundle" / "party-1" / "syqure-wf").exists()


def test_a_module_in_the_snakemake_workflow(tmp_path, sequre):
    """`mpc.module` in the workflow's config: one build job, three party jobs,
    each party's named outputs where the module says."""
    import yaml

    from jobs import copy_repo

    root = copy_repo(tmp_path / "clone")
    inputs = {}
    for p, counts in COUNTS.items():
        path = tmp_path / f"site{p}.json"
        path.write_text(json.dumps(counts))
        inputs[p] = {"counts": str(path)}
    (root / "config" / "module.yaml").write_text(yaml.safe_dump(
        {"run": "secure-sum", "parties_here": "all",
         "mpc": {"module": {"path": "examples/biovault-module/secure-sum", "inputs": inputs}}}))
    cmd = [sys.executable, "-m", "snakemake", "--profile", "local-3party", "--configfile", "config/module.yaml"]
    done = subprocess.run(cmd, cwd=root, env=sequre, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-3000:]
    assert text.count("rule build:") == 1 and text.count("rule party:") == 3, text[-3000:]
    for p in range(3):
        listed = json.loads((root / "results/secure-sum" / f"party-{p}.json").read_text())
        assert json.loads(Path(listed["outputs"]["aggregated_counts"]).read_text()) == SUMS
