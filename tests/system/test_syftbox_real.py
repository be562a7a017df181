"""The example job through a real SyftBox 0.4.0 server and real clients on
127.0.0.1 (issue 5). SyftBox lives in its own venv (about 80 packages),
built on first use under ~/.cache/syqure-wf (SYQURE_SYFTBOX_VENV overrides)."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import PY, REPO, output
from syftbox_net import EMAILS, EVE, SyftBoxNet, job_config


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
