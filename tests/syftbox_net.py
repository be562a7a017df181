"""A real SyftBox 0.4.0 server and one real client per user on 127.0.0.1.
SyftBox lives in its own venv (about 80 packages), built on first use under
~/.cache/syqure-wf (SYQURE_SYFTBOX_VENV overrides)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import HERE, REPO, free_base, one_at_a_time, port_free, wait_until


VENV = Path(os.environ.get("SYQURE_SYFTBOX_VENV", "~/.cache/syqure-wf/syftbox-0.4.0")).expanduser()
EMAILS = ["cp0@hospital-a.org", "cp1@hospital-b.org", "cp2@hospital-c.org"]
EVE = "eve@elsewhere.org"  # a SyftBox user of the same server, not a party


def syftbox_venv() -> Path:
    if not (VENV / "bin" / "syftbox").exists():
        with one_at_a_time("syftbox-venv"):
            if not (VENV / "bin" / "syftbox").exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
                subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "syftbox==0.4.0"],
                               check=True, timeout=900)
    return VENV


class SyftBoxNet:
    """A server and one client per user, all on loopback, stopped at the end.
    The server and each client can be stopped and started again (same port,
    same data): a sync outage."""

    def __init__(self, procs, root: Path, users: list[str], interval: float):
        self.venv = venv = syftbox_venv()
        self.procs, self.root, self.users, self.interval = procs, root, users, interval
        self.base = base = free_base(span=len(users) + 2)
        self.url = f"http://127.0.0.1:{base}"
        self.server_env = {**os.environ, "SYFTBOX_DATA_FOLDER": str(root / "server")}
        subprocess.run([str(venv / "bin" / "syftbox"), "server", "migrate"], env=self.server_env, check=True,
                       capture_output=True, timeout=120)
        self.start_server()
        self.folders, self.clients = {}, {}
        for user in users:
            self.folders[user] = root / f"box-{user.split('@')[0]}"
            self.start_client(user)
        wait_until(lambda: self.clients_up() and all((self.folders[u] / "datasites" / v).is_dir()
                                                     for u in users for v in users),
                   60, "every client to see every datasite", step=0.2)

    def clients_up(self) -> bool:
        """True while every client runs; a client that exited is named with
        its last line at once (a port taken, a server it cannot reach)."""
        for user, proc in self.clients.items():
            if proc.poll() is not None:
                lines = Path(proc.log).read_text(errors="replace").strip().splitlines() or ["(no output)"]
                raise AssertionError(f"the SyftBox client of {user} exited ({proc.returncode}): {lines[-1]}")
        return True

    def start_server(self) -> None:
        self.server = self.procs.start(
            [self.venv / "bin" / "uvicorn", "syftbox.server.server:app", "--host", "127.0.0.1", "--port", self.base],
            log=self.root / f"server-{time.monotonic():.0f}.log", env=self.server_env)
        wait_until(lambda: not port_free(self.base), 30, "the SyftBox server")

    def stop_server(self) -> None:
        self.procs.kill(self.server)
        wait_until(lambda: port_free(self.base), 30, "the SyftBox server's port to be free")

    def start_client(self, user: str) -> None:
        i = self.users.index(user)
        self.clients[user] = self.procs.start(
            [self.venv / "bin" / "python", HERE / "syftbox_client.py", "-e", user, "-d", self.folders[user],
             "-s", self.url, "-c", self.root / f"client-{i}.json", "-p", self.base + 1 + i, "--no-open-dir"],
            log=self.root / f"client-{i}-{time.monotonic():.0f}.log",
            env={**os.environ, "SYFTBOX_TEST_SYNC_INTERVAL": str(self.interval)})

    def stop_client(self, user: str) -> None:
        self.procs.kill(self.clients[user])
        i = self.users.index(user)
        wait_until(lambda: port_free(self.base + 1 + i), 30, f"the SyftBox client of {user} to stop")


def job_config(tmp_path: Path, net: SyftBoxNet, run_id: str) -> Path:
    example = REPO / "examples/allele-counts"
    cfg = {"layout": "syftbox", "run_id": run_id,
           "parties": [{"pid": p, "email": EMAILS[p], "folder": str(net.folders[EMAILS[p]])} for p in range(3)],
           "engine": {"name": "mpyc", "program": str(example / "allele_counts.py")},
           "inputs": {"1": str(example / "data/site1.json"), "2": str(example / "data/site2.json")},
           "workdir": str(tmp_path / "run"), "ports": {"base": free_base(span=300), "stride": 100}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
