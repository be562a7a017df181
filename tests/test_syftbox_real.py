"""The example job through a real SyftBox 0.4.0 server and real clients on
127.0.0.1 (issue 5). SyftBox lives in its own venv (about 80 packages),
built on first use under ~/.cache/syqure-wf (SYQURE_SYFTBOX_VENV overrides)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import HERE, PY, REPO, free_base, output, port_free, wait_until

VENV = Path(os.environ.get("SYQURE_SYFTBOX_VENV", "~/.cache/syqure-wf/syftbox-0.4.0")).expanduser()
EMAILS = ["cp0@hospital-a.org", "cp1@hospital-b.org", "cp2@hospital-c.org"]
EVE = "eve@elsewhere.org"  # a SyftBox user of the same server, not a party


def syftbox_venv() -> Path:
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
        wait_until(lambda: all((self.folders[u] / "datasites" / v).is_dir() for u in users for v in users),
                   60, "every client to see every datasite", step=0.2)

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


def message_files_under(folder: Path, run_id: str) -> list[Path]:
    return [p for p in folder.glob(f"datasites/*/app_data/syqure/runs/{run_id}/*_to_*/*")
            if p.name[:1].isdigit()]


def run_job(procs, tmp_path, interval: float) -> dict:
    net = SyftBoxNet(procs, tmp_path / "syftbox", EMAILS + [EVE], interval)
    run_id = f"sbx-{int(time.time())}"
    seen_by_eve: list[Path] = []
    stop = threading.Event()

    def watch_eve():
        while not stop.is_set():
            seen_by_eve.extend(message_files_under(net.folders[EVE], run_id))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_eve, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", job_config(tmp_path, net, run_id), "--json", "--quiet"])
    try:
        assert procs.wait(proc, 300) == 0, output(proc)
    finally:
        stop.set()
        watcher.join()
    seconds = time.monotonic() - t0
    summary = json.loads(proc.communicate()[0])
    sites = [json.loads((REPO / "examples/allele-counts/data" / f"site{i}.json").read_text()) for i in (1, 2)]
    for pid in range(3):
        result = json.loads((tmp_path / "run/outputs" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == [a + b for a, b in zip(sites[0]["allele_count"], sites[1]["allele_count"])]
    assert seen_by_eve == [], f"a user without permission received {seen_by_eve[:3]}"
    # no reader deleted or edited a file in another datasite: SyftBox would have rejected it
    assert not list((tmp_path / "syftbox").rglob("*syftrejected*"))
    for p in range(3):  # every outbox is empty: consumed, then removed by its writer
        own = net.folders[EMAILS[p]] / "datasites" / EMAILS[p]
        assert not list(own.glob(f"app_data/syqure/runs/{run_id}/*_to_*/[0-9]*"))
    messages = sum(c["sent_messages"] for party in summary["parties"] for c in party["channels"].values())
    print(f"\nSyftBox interval {interval} s: example job {seconds:.1f} s, {messages} messages")
    return {"seconds": seconds, "messages": messages}


def test_example_job_through_real_syftbox(procs, tmp_path):
    run_job(procs, tmp_path, interval=0.1)


@pytest.mark.slow
def test_example_job_through_real_syftbox_stock_interval(procs, tmp_path):
    run_job(procs, tmp_path, interval=1.0)


def test_doctor_sees_the_client_and_the_server(procs, tmp_path):
    net = SyftBoxNet(procs, tmp_path / "syftbox", EMAILS, interval=0.1)
    config = job_config(tmp_path, net, "doctor")

    def doctor(pid):
        proc = subprocess.run([PY, "-m", "syqure_wf", "doctor", "--config", str(config), "--pid", str(pid)],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        line = next(line for line in proc.stdout.splitlines() if line[6:].startswith("syftbox"))
        return proc.returncode, line

    code, line = doctor(1)
    assert code == 0 and line.startswith("ok") and f"{EMAILS[1]}: client http://127.0.0.1:" in line, line
    net.stop_server()
    code, line = doctor(1)
    assert code == 1 and line.startswith("FAIL") and f"server {net.url} does not answer" in line, line
    net.stop_client(EMAILS[2])
    code, line = doctor(2)
    # its configuration named the folder only on the command line of the process that is gone
    assert code == 1 and line.startswith("FAIL") and "no SyftBox client runs for" in line, line
    assert line.endswith(f"-> start it: syftbox client -e {EMAILS[2]} -d {net.folders[EMAILS[2]]}"), line
