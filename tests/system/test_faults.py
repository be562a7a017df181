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

from conftest import engine_of, processes_mentioning, wait_until
from jobs import cli, party_pids, rounds_config, running

pytestmark = pytest.mark.minutes(2)

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
    pid = runner if victim == "runner" else engine_of(runner)
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
    for record in records.values():
        for name, ch in record["channels"].items():
            if ch["peer"] != target:
                assert ch["received_messages"] <= records[ch["peer"]]["channels"][name]["sent_messages"]
    wait_until(lambda: not processes_mentioning(str(work)), 10, "every process of the run to be gone")


# -- clocks that jump: an NTP step, a VM whose wall clock is set mid-run

def faked_clock(clock_file: Path) -> dict:
    """Environment that makes a process read its wall clock shifted by the
    offset in ``clock_file`` (libfaketime, re-read at every call); its
    monotonic clock stays true, as under an NTP step."""
    import libfaketime

    _, env = libfaketime.get_reload_information()
    clock_file.write_text("+0")
    return {**os.environ, "LD_PRELOAD": str(Path(env["LD_LIBRARY_PATH"]) / env["LD_PRELOAD"]),
            "FAKETIME_TIMESTAMP_FILE": str(clock_file), "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1"}


def seen_at(work: Path, pid: int) -> float:
    return json.loads((work / "messages/status" / f"party-{pid}.json").read_text())["seen_at"]


def test_wall_clock_jumps_trip_no_timeout(procs, tmp_path):
    """Party 0's wall clock jumps an hour ahead, party 1's two hours back,
    then they swap, mid-run, with a 3 s peer timeout: the job finishes."""
    from syqure_wf.run import config as config_mod
    from syqure_wf.run.local import prepare

    work = tmp_path / "run"
    # Behind proxies: libfaketime also fakes the timed waits of a process's
    # threads (pthread_cond_timedwait), so at a jump the interpreter lock of
    # an in-process party (two threads) is not handed over for the size of
    # the jump; a real clock step leaves those waits alone. The liveness
    # code is the same in process.
    config = rounds_config(tmp_path, timeouts={"peer": 3}, transport="proxy")
    text = config.read_text().replace("'100000'", "'2500'")
    config.write_text(text)
    prepare(config_mod.load(config))
    clocks = [tmp_path / f"clock{p}" for p in range(3)]
    runners = [procs.start(cli("party", "--config", work / "config.yaml", "--pid", p),
                           env=faked_clock(clocks[p]), log=tmp_path / f"party{p}.log") for p in range(3)]
    wait_until(lambda: running(work, 3), 60, "all parties to exchange messages", step=0.2)
    for steps in (("+3600", "-7200"), ("-3600", "+7200")):
        clocks[0].write_text(steps[0])
        clocks[1].write_text(steps[1])
        # the jump is real: the records carry the shifted wall clocks
        wait_until(lambda: abs(seen_at(work, 0) - time.time() - int(steps[0])) < 60
                   and abs(seen_at(work, 1) - time.time() - int(steps[1])) < 60, 10, "the clocks to jump")
        time.sleep(4)  # longer than the peer timeout
    assert all(r.poll() is None for r in runners), "the job ended before the clocks jumped: make it longer"
    for p, r in enumerate(runners):
        assert procs.wait(r, 240) == 0, (tmp_path / f"party{p}.log").read_text()[-2000:]
    for p in range(3):
        assert "rounds=2500" in (work / "logs" / f"party-{p}.log").read_text()
