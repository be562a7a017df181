"""Parties start when they start (issue 12): proxies launched apart, with and
without a run id, never refuse a live peer's messages, and never deliver a
dead run's. Real proxies, real parties speaking Sequre's wire protocol."""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conftest import PROGRAMS, PY, REPO, free_base, message_files, one_line_error, output

pytestmark = pytest.mark.minutes(1.5)

EXAMPLE = REPO / "examples" / "allele-counts"


def proxy_cmd(pid, n, data, base, *extra):
    return [PY, "-m", "syqure_wf", "proxy", "--pid", pid, "--parties", n, "--data-dir", data,
            "--base-port", base, "--sequre-base-port", base, "--linger", "0.3", *extra]


def staggered_trial(procs, tmp_path: Path, rng: random.Random, bases: list[int], count: int = 40,
                    extra=()) -> None:
    n = len(bases)
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "msgs"
    delays = sorted((rng.uniform(0, 2), p) for p in range(n))
    t0 = time.monotonic()
    parties = [procs.start([PY, PROGRAMS / "sequre_wire.py", p, n, bases[p], count, 1 << 20],
                           log=tmp_path / f"party{p}.log") for p in range(n)]
    proxies = {}
    for delay, p in delays:
        time.sleep(max(0.0, delay - (time.monotonic() - t0)))
        proxies[p] = procs.start(proxy_cmd(p, n, data, bases[p], *extra), log=tmp_path / f"proxy{p}.log")
    order = ", ".join(f"proxy {p} at {d:.2f} s" for d, p in delays)
    for p in range(n):
        assert procs.wait(parties[p], 60) == 0, f"{order}: {output(parties[p])}"
        assert "all byte-exact" in output(parties[p])
    for p in range(n):
        assert procs.wait(proxies[p], 30) == 0, f"{order}: {output(proxies[p])}"
    assert message_files(data) == [], order
    for p in range(n):
        record = json.loads((data / "status" / f"party-{p}.json").read_text())
        assert record["state"] == "done"
        assert all(ch["received_messages"] == count for ch in record["channels"].values())


@pytest.mark.slow  # 20 trials of one rule (the writer proof: tests/unit/test_protocol.py); one trial: test_staggered_starts_with_a_run_id
def test_twenty_staggered_starts_without_a_run_id(procs, tmp_path):
    """The seed's syqure.sh way: no run id, each proxy started 0-2 s after the
    parties. Every trial byte-exact, exit 0, nothing left."""
    rng = random.Random(12)
    bases = [free_base() for _ in range(3)]  # one trial ends before the next: its ports are free again
    for trial in range(20):
        staggered_trial(procs, tmp_path / f"t{trial}", rng, bases)
        procs.cleanup()
        procs.procs.clear()


def test_staggered_starts_with_a_run_id(procs, tmp_path):
    rng = random.Random(7)
    bases = [free_base() for _ in range(3)]
    for trial in range(3):
        staggered_trial(procs, tmp_path / f"t{trial}", rng, bases, extra=("--run-id", f"run{trial}"))


def dead_run(data: Path, run_id: str | None = None) -> None:
    """What a run killed hours ago leaves: party 0's frames to party 1, its
    writer stamp, and a status record whose heartbeat never moves again."""
    inbox = data / "0_to_1"
    inbox.mkdir(parents=True)
    old = time.time() - 5 * 3600
    for seq in range(3):
        frame = b"%8s" % b"" + f"dead run frame {seq}".encode()  # a Sequre frame, its header as content
        (inbox / f"{seq:08d}.msg").write_bytes(len(frame).to_bytes(8, "little") + frame)
        (inbox / f"{seq:08d}.ready").write_bytes(b"")
    (inbox / "writer.id").write_text("deadbeefdeadbeef")
    if run_id:
        (inbox / ".run").write_text(run_id)
    (data / "status").mkdir()
    (data / "status" / "party-0.json").write_text(json.dumps(
        {"pid": 0, "parties": 2, "run_id": run_id, "state": "running", "heartbeat": 4711,
         "incarnation": "deadbeefdeadbeef", "started_at": old, "seen_at": old}))
    for f in [*inbox.iterdir(), data / "status" / "party-0.json"]:
        os.utime(f, (old, old))


class Listener:
    """Party 1 of a 2-party Sequre-convention run: it dials its proxy for
    channel 0-1 and records every byte that ever reaches it."""

    def __init__(self, port: int):
        import socket

        self.sock = None
        self.port = port
        self.got = b""
        self._socket = socket

    def poll(self) -> None:
        if self.sock is None:
            try:
                self.sock = self._socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
                self.sock.settimeout(0.05)
            except OSError:
                return
        try:
            chunk = self.sock.recv(1 << 16)
            self.got += chunk
        except (OSError, self._socket.timeout):
            pass


@pytest.mark.parametrize("run_id", [None, "same-run"])
@pytest.mark.parametrize("first", [0, 1])
def test_a_dead_runs_frames_never_reach_a_new_run(procs, tmp_path, run_id, first):
    """Frames hours old, no writer alive: whichever proxy starts first and
    however far apart, party 1 never receives a byte of them and both
    proxies fail with one line, pointing at 'syqure-wf clean'."""
    data = tmp_path / "msgs"
    dead_run(data, run_id)
    bases = {0: free_base(), 1: free_base()}
    extra = ("--run-id", run_id) if run_id else ()
    args = {p: proxy_cmd(p, 2, data, bases[p], "--peer-timeout", "3", *extra) for p in (0, 1)}
    party1 = Listener(bases[1] + 1)
    proxies = {first: procs.start(args[first], log=tmp_path / f"proxy{first}.log")}
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        party1.poll()
        time.sleep(0.02)
    other = 1 - first
    proxies[other] = procs.start(args[other], log=tmp_path / f"proxy{other}.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p.poll() is None for p in proxies.values()):
        party1.poll()
        time.sleep(0.02)
    assert party1.got == b"", party1.got
    for p, proc in proxies.items():
        assert proc.poll() == 1, f"proxy {p} still running or exit {proc.poll()}"
    line = one_line_error(output(proxies[0]))
    assert "earlier run" in line and "syqure-wf clean" in line, line
    line1 = one_line_error(output(proxies[1]))
    assert "party 0" in line1 or "earlier run" in line1, line1
    assert sorted(p.name for p in (data / "0_to_1").iterdir() if p.suffix == ".msg") == \
        ["00000000.msg", "00000001.msg", "00000002.msg"]  # refused, not consumed


def party_config(tmp_path: Path, layout: str) -> Path:
    cfg = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    cfg.update(run_id=f"apart-{layout}", workdir=str(tmp_path / "run"),
               inputs={k: str(EXAMPLE / v) for k, v in cfg["inputs"].items()},
               timeouts={"peer": 5, "start": 60})
    cfg["engine"]["program"] = str(EXAMPLE / cfg["engine"]["program"])
    if layout == "netns":
        cfg["isolation"] = "netns"
    else:
        cfg["ports"] = {"base": free_base(span=300), "stride": 100}
    if layout == "syftbox":
        # one folder seen by all three sites, as a finished sync would show it
        cfg.update(layout="syftbox", syftbox={"folder": str(tmp_path / "SyftBox")},
                   parties=[{"pid": p, "email": f"site{p}@example.org"} for p in range(3)],
                   timeouts={"peer": 5, "start": 60, "stall": 30})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def netns_available() -> bool:
    import subprocess

    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10).returncode == 0


@pytest.mark.parametrize("layout", ["shared", "syftbox", "netns"])
def test_parties_started_by_hand_apart(procs, tmp_path, layout):
    """Three sites run `syqure-wf party` whenever they get to it, in a
    shuffled order, seconds apart (the bound is timeouts.start)."""
    if layout == "netns" and not netns_available():
        pytest.skip("network namespaces need root and unshare here")
    config = party_config(tmp_path, layout)
    order = list(range(3))
    random.Random(layout).shuffle(order)
    started = {}
    for i, pid in enumerate(order):
        if i:
            time.sleep(3)
        cmd = [PY, "-m", "syqure_wf", "party", "--config", config, "--pid", pid]
        if layout == "netns":
            cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
        started[pid] = procs.start(cmd, log=tmp_path / f"party{pid}.runner.log")
    for pid, proc in started.items():
        assert procs.wait(proc, 90) == 0, f"order {order}: party {pid}: {output(proc)}"
    for pid in range(3):
        result = json.loads((tmp_path / "run" / "outputs" / f"party-{pid}.json").read_text())
        assert sum(result["allele_count"]) > 0 and len(result["variants"]) == 10_000
    assert message_files(tmp_path) == []


def test_a_reused_run_folder_shows_no_old_states(procs, tmp_path):
    """The second run into one folder starts from 'starting', not from the
    first run's 'done'."""
    work = tmp_path / "run"
    cmd = [PY, "-m", "syqure_wf", "run", "--config", EXAMPLE / "config.yaml", "--workdir", work]
    first = procs.start(cmd, log=tmp_path / "first.log")
    assert procs.wait(first, 120) == 0, output(first)
    second = procs.start(cmd, log=tmp_path / "second.log")
    assert procs.wait(second, 120) == 0, output(second)
    lines = [ln for ln in output(second).splitlines() if ln.startswith("[")]
    firsts = {}
    for ln in lines:
        pid = ln.split("party ")[1].split(":")[0]
        firsts.setdefault(pid, ln.rsplit(": ", 1)[1])
    assert set(firsts) == {"0", "1", "2"}, lines
    assert all(state in ("starting", "started", "running") for state in firsts.values()), lines
