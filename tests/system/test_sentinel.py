"""A runner killed with SIGKILL (alone, or with its whole process group, as
schedulers and Biovault kill) still leaves `failed` in its status record:
its sentinel, in a session of its own, writes it. A runner that finished
keeps its own last word."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import wait_until

RUNNER = """
import sys, time
from pathlib import Path
from syqure_wf.transport.status import StatusRecord, RUNNING, DONE
from syqure_wf.run import sentinel
rec = StatusRecord(Path(sys.argv[1]), 1, 3, "r1")
rec.update(state=RUNNING)
sentinel.start(rec.path)
print("ready", flush=True)
if sys.argv[2] == "finish":
    rec.update(state=DONE)
else:
    time.sleep(60)
"""


def start_runner(tmp_path, how):
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path), how], stdout=subprocess.PIPE,
                            start_new_session=True, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("kill", ["runner", "group"])
def test_a_killed_runner_is_recorded_failed(tmp_path, kill):
    proc = start_runner(tmp_path, "hang")
    if kill == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait(10)
    record = tmp_path / "party-1.json"
    wait_until(lambda: json.loads(record.read_text())["state"] == "failed", 10, "the sentinel's record")
    data = json.loads(record.read_text())
    assert f"party 1's runner (process {proc.pid}" in data["reason"] and data["heartbeat"] >= 1


def test_a_finished_runner_keeps_its_own_record(tmp_path):
    proc = start_runner(tmp_path, "finish")
    proc.wait(20)
    time.sleep(1.0)
    assert json.loads((tmp_path / "party-1.json").read_text())["state"] == "done"
