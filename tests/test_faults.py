"""Fault injection (issue 6): a party's program or its whole runner (with the
proxy inside) killed or stopped at a random point of a running job, 20 trials.
The table of cases is in tests/README.md."""
from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from conftest import processes_mentioning, wait_until
from test_run import cli, party_pids, rounds_config, running

TRIALS = [(victim, sig, seed) for victim in ("engine", "runner")
          for sig in ("SIGKILL", "SIGTERM") for seed in range(5)]


@pytest.mark.slow
@pytest.mark.parametrize("victim,sig,seed", TRIALS)
def test_killed_party_is_named_within_seconds(procs, tmp_path, victim, sig, seed):
    rng = random.Random(seed)
    target, delay = rng.randrange(3), rng.uniform(0, 1.5)
    work = tmp_path / "run"
    proc = procs.start(cli("run", "--config", rounds_config(tmp_path), "--quiet"), log=tmp_path / "run.log")
    wait_until(lambda: running(work, 3), 60, "all parties to exchange messages", step=0.2)
    time.sleep(delay)
    runner = party_pids(work)[target]
    pid = runner if victim == "runner" else int(Path(f"/proc/{runner}/task/{runner}/children").read_text().split()[0])
    os.kill(pid, getattr(signal, sig))
    killed = time.monotonic()
    assert procs.wait(proc, 30) == 1
    assert time.monotonic() - killed < 10
    records = {p: json.loads((work / "messages/status" / f"party-{p}.json").read_text()) for p in range(3)}
    for p, record in records.items():
        if p != target:
            assert record["state"] == "failed" and f"party {target}" in record["reason"], record
    # nothing delivered twice: no direction received more than its sender sent
    # (a killed sender's last record is up to a heartbeat old: it is left out)
    for p, record in records.items():
        for name, ch in record["channels"].items():
            if ch["peer"] != target:
                assert ch["received_messages"] <= records[ch["peer"]]["channels"][name]["sent_messages"]
    wait_until(lambda: not processes_mentioning(str(work)), 10, "every process of the run to be gone")
