"""Three sites, each with an agent and its own policy, on a real SyftBox net
(or one shared folder): the set-up of the agents' system tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from conftest import REPO, Procs, wait_until
from jobs import EXAMPLE, cli
from syftbox_net import EMAILS, SyftBoxNet

from syqure_wf.sites.board import channel_id
from syqure_wf.sites.digest import run_digest
from syqure_wf.sites.manifest import submitted
from syqure_wf.keys.sitekey import load_or_create


INTERVAL = 0.1


def sh(*args, timeout: float = 60, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


class Sites:
    """The net, the programs, the policies and one agent per site. ``shared``:
    one folder holding every site's datasite instead of a SyftBox net (what
    a hostile peer writes is there at once, at any rate)."""

    def __init__(self, root: Path, policies: dict | None = None, env: dict | None = None,
                 shared: bool = False) -> None:
        self.procs = Procs()
        try:
            self._start(root, policies, env, shared)
        except BaseException:  # nothing it started outlives a set-up that failed
            self.procs.cleanup()
            raise

    def _start(self, root: Path, policies: dict | None, env: dict | None, shared: bool) -> None:
        self.env = env
        self.root = root
        if shared:
            for email in EMAILS:
                (root / "shared" / "datasites" / email).mkdir(parents=True)
            self.folders = {email: root / "shared" for email in EMAILS}
        else:
            self.net = SyftBoxNet(self.procs, root / "syftbox", EMAILS, INTERVAL)
            self.folders = self.net.folders
        self.programs = root / "programs"
        self.programs.mkdir(exist_ok=True)
        for name in ("allele_counts.py",):
            (self.programs / name).write_bytes((EXAMPLE / name).read_bytes())
        (self.programs / "allele_counts2.py").write_bytes(
            b"# the same program, another digest: site 1 asks its operator\n" + (EXAMPLE / "allele_counts.py").read_bytes())
        (self.programs / "long.py").write_bytes((REPO / "tests/programs/mpyc_rounds.py").read_bytes())
        self.D, self.D2 = self.digest("allele_counts.py"), self.digest("allele_counts2.py")
        self.L = self.digest("long.py", ["--rounds", "100000"], inputs={})
        data = EXAMPLE / "data"
        # each site's key, made before its agent starts: the policies list them (a key never met waits)
        self.keys = {pid: load_or_create(self.folder(pid), EMAILS[pid]) for pid in range(3)}
        self.pins = [{"email": e, "fingerprint": self.keys[p].fingerprint} for p, e in enumerate(EMAILS)]
        self.policies = {
            0: {"submitters": ["*"], "peers": ["*", *self.pins], "programs": [self.D, self.D2, self.L],
                "inputs": {"counts": str(data / "site1.json")}},
            1: {"submitters": EMAILS[:2], "peers": self.pins, "programs": [self.D, self.L],
                "inputs": {"counts": str(data / "site1.json")}},
            2: {"submitters": ["*"], "peers": self.pins, "programs": [self.D, self.D2, self.L],
                "unlisted_programs": "reject", "inputs": {"counts": str(data / "site2.json")}},
        }
        self.policies = policies or self.policies
        for policy in self.policies.values():  # given ones too: every site's key listed
            policy.setdefault("peers", ["*", *self.pins])
        self.agents: dict[int, subprocess.Popen] = {}
        for pid in range(3):
            self.policy_path(pid).write_text(yaml.safe_dump(self.policies[pid]))
            self.start_agent(pid)

    def digest(self, name: str, args=None, parties: int = 3, to=None, inputs=None) -> str:
        """The run digest of program ``name`` with ``args`` among ``parties``
        (``to``, default the first sites in pid order; ``inputs`` default
        'counts' at pids 1 and 2)."""
        inputs = {p: "counts" for p in (1, 2) if p < parties} if inputs is None else inputs
        return run_digest_of({"engine": {"name": "mpyc", "program": name, **({"args": args} if args else {})}},
                             self.programs, to or EMAILS[:parties], inputs)

    def folder(self, pid: int) -> Path:
        return self.folders[EMAILS[pid]]

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

    def submit(self, cfg: Path, by: int = 0, timeout: float = 120, to=EMAILS) -> str:
        done = sh("submit", "--config", cfg, "--to", ",".join(to), *self.site(by), timeout=timeout, env=self.env)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout.strip().splitlines()[-1]

    def wait(self, run_id: str, by: int = 0, timeout: float = 180, results: Path | None = None):
        return sh("wait", run_id, *self.site(by), "--results", results or self.root / "results", timeout=timeout)

    def state(self, run_id: str, pid: int, seen_by: int = 0, by: int = 0) -> dict:
        path = self.jobs(pid, run_id, by, seen_by) / "state.json"
        try:  # (signed by its site: the body)
            return json.loads(json.loads(path.read_text())["body"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def wait_state(self, run_id: str, pid: int, states, timeout: float = 60, seen_by: int | None = None,
                   by: int = 0) -> dict:
        states = (states,) if isinstance(states, str) else states
        return wait_until(lambda: (s := self.state(run_id, pid, pid if seen_by is None else seen_by, by))
                          and s.get("state") in states and s, timeout,
                          f"site {pid} to be {'/'.join(states)} in {run_id}", step=0.1)

    def audit(self, pid: int) -> list[dict]:
        path = self.folder(pid) / "syqure-wf" / EMAILS[pid] / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def jobs(self, pid: int, run_id: str, by: int = 0, seen_by: int | None = None) -> Path:
        """Site ``pid``'s folder of run ``run_id`` submitted by ``by``."""
        return (self.folder(pid if seen_by is None else seen_by) / "datasites" / EMAILS[pid] / "app_data/syqure/jobs"
                / EMAILS[by] / run_id)

    def private(self, pid: int, run_id: str, by: int = 0) -> Path:
        return self.folder(pid) / "syqure-wf" / EMAILS[pid] / "runs" / EMAILS[by] / run_id

    def started_anywhere(self, run_id: str, by: int = 0) -> list[str]:
        return [f"site {p}" for p in range(3)
                if any(e["event"] == "started" and e["run_id"] == run_id for e in self.audit(p))
                or (self.folder(p) / "datasites" / EMAILS[p] / "app_data/syqure/runs"
                    / channel_id(EMAILS[by], run_id)).exists()]

    def close(self) -> None:
        self.procs.cleanup()


def run_digest_of(raw: dict, base: Path, roles: list[str], inputs: dict) -> str:
    config, entry, files = submitted(raw, "test", base)
    return run_digest(config, entry, files, roles, inputs)
