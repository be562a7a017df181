"""Cluster file systems: the transport through FUSE views of one folder.

    python bench/cluster_fs.py [--rounds 200] [--repeat 3] [--baseline REV] [--intervals 5,10,20,50]

Each view is a bindfs mount of one folder (root; apt-get install bindfs): a
write through one view raises no change event on another, as between two
NFS clients. Every path is measured in the same run:

- 8-byte round trips between two proxies (median, ms; bench/transport.py),
  and the CPU both proxies use while idle (% of one core, over 3 s): on the
  local disk with this code and, with ``--baseline REV``, with REV's code
  (interleaved); through one view (events announce everything: the FUSE
  type polls anyway, the hidden type does not); through two views (the FUSE
  type polls from the start; the hidden type is detected at run time;
  ``poll_ms`` by hand at each of ``--intervals``).
- Whole jobs, three `syqure-wf party` processes, wall time (median of
  ``--repeat``): the example job and a 20-round MPyC job, every party
  through one view, each party through its own view (FUSE type; type
  hidden; poll_ms 10 by hand; REV's code, the example only), and on the
  local disk; then the 20-round job at each of ``--intervals``.

"Type hidden" runs the proxies with SYQURE_WF_FS_TYPE=ext4: they do not
know the folder is FUSE and must find out that events do not come.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport import HEADER, Path2, connect, fs_of, machine, recv_exact, round_trip  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
HIDDEN = {"SYQURE_WF_FS_TYPE": "ext4"}
EXAMPLE = REPO / "examples" / "allele-counts"
TICK = os.sysconf("SC_CLK_TCK")


# -- views
def mount(source: Path, point: Path) -> Path:
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bindfs", str(source), str(point)], check=True, timeout=30)
    return point


def unmount(point: Path) -> None:
    subprocess.run(["fusermount", "-u", str(point)], capture_output=True, timeout=30)


def baseline_code(rev: str, into: Path) -> Path:
    """REV's syqure_wf package, for its proxies and parties (PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "syqure_wf"], capture_output=True,
                             check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into


# -- round trips and idle CPU
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def idle_cpu(workdir: Path, seconds: float = 3.0, **where) -> float:
    """CPU of both proxies while nothing is sent, after a few round trips
    (a proxy that detects missing events has done so), in % of one core."""
    path = Path2("proxy", workdir, "echo", 0, where.pop("poll_ms", None), **where)
    try:
        s = connect(path.client_port)
        for _ in range(3):
            s.sendall(HEADER.pack(8) + b"pingpong")
            recv_exact(s, 16)
        time.sleep(1.5)  # settled
        proxies = [p.pid for p in path.procs[1:]]
        before = sum(cpu_seconds(p) for p in proxies)
        time.sleep(seconds)
        used = 100 * (sum(cpu_seconds(p) for p in proxies) - before) / seconds
        s.close()
        return used
    finally:
        path.close()


# -- jobs: three parties, each through the view it is given
def free_ports_base(span: int = 300) -> int:
    import random
    for _ in range(200):
        base = random.randrange(10000, 30000, 100)
        try:
            for i in range(0, span, 7):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


def job(name: str, seen_from: list[Path], run_id: str, env: dict | None = None, poll_ms=None,
        rounds: int | None = None, code: Path | None = None) -> float:
    cfg = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    cfg.update(run_id=run_id, inputs={k: str(EXAMPLE / v) for k, v in cfg["inputs"].items()},
               ports={"base": free_ports_base(), "stride": 100})
    cfg["engine"]["program"] = str(EXAMPLE / cfg["engine"]["program"])
    if rounds:
        cfg["engine"] = {"name": "mpyc", "program": str(REPO / "tests/programs/mpyc_rounds.py"),
                         "args": ["--rounds", str(rounds)]}
    if poll_ms:
        cfg["poll_ms"] = poll_ms
    env = {**os.environ, **(env or {})}
    if code:
        env["PYTHONPATH"] = str(code)
    configs = []
    for pid, view in enumerate(seen_from):
        path = view.parent / f"{run_id}-{pid}.yaml"
        path.write_text(yaml.safe_dump({**cfg, "workdir": str(view / run_id)}))
        configs.append(path)
    started = time.monotonic()
    procs = [subprocess.Popen([PY, "-m", "syqure_wf", "party", "--config", str(c), "--pid", str(pid)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=code)
             for pid, c in enumerate(configs)]
    for pid, proc in enumerate(procs):
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: party {pid} failed: {err[-1500:]}")
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200, help="round trips per path")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each job, and of the local round trips")
    ap.add_argument("--baseline", default=None, help="a git revision whose code is measured beside this one")
    ap.add_argument("--intervals", default="5,10,20,50", help="poll_ms by hand through two views (ms)")
    ap.add_argument("--job-rounds", type=int, default=20)
    ap.add_argument("--no-jobs", action="store_true")
    args = ap.parse_args()
    if not shutil.which("bindfs"):
        raise SystemExit("bindfs is needed: apt-get install bindfs")
    root = Path(tempfile.mkdtemp(prefix="syqure-fuse-bench-"))
    local, export = root / "local", root / "export"
    local.mkdir(), export.mkdir()
    views = [mount(export, root / f"view{i}") for i in range(3)]
    code = baseline_code(args.baseline, Path(tempfile.mkdtemp(prefix="baseline-", dir=root))) if args.baseline else None
    try:
        print(f"Machine: {machine()}; local disk {fs_of(local)}, views: bindfs ({fs_of(views[0])}) of "
              f"{fs_of(export)}\n")
        rows = []
        # the local disk, before and after, interleaved
        local_rt = {"this code": [], f"{args.baseline}": []}
        for _ in range(args.repeat):
            if code:
                local_rt[f"{args.baseline}"].append(round_trip("proxy", local, args.rounds, code=code))
            local_rt["this code"].append(round_trip("proxy", local, args.rounds))
        direct = round_trip("direct", local, args.rounds)
        for who, times in local_rt.items():
            if times:
                rows.append((f"local disk, {who}", statistics.median(times), ", ".join(f"{t:.3f}" for t in times),
                             idle_cpu(local, code=code if who != "this code" else None)))
        one = (views[0], views[0])
        two = (views[0], views[1])
        paths = [("one view, FUSE type (polls, events come)", {"seen_from": one}),
                 ("one view, type hidden (events only)", {"seen_from": one, "env": HIDDEN}),
                 ("two views, FUSE type (polls from the start)", {"seen_from": two}),
                 ("two views, type hidden (detected at run time)", {"seen_from": two, "env": HIDDEN})]
        paths += [(f"two views, poll_ms {ms} by hand", {"seen_from": two, "poll_ms": float(ms)})
                  for ms in args.intervals.split(",")]
        for label, where in paths:
            where = {**where}
            poll_ms = where.pop("poll_ms", None)
            # through views the proxies' data folder is made under the export, seen through each view
            rt = round_trip("proxy", export, args.rounds, poll_ms=poll_ms, warm_up=20, **where)
            rows.append((label, rt, "", idle_cpu(export, poll_ms=poll_ms, **where)))
        if code:
            rt = round_trip("proxy", export, 5, warm_up=2, seen_from=two, code=code)
            rows.append((f"two views, {args.baseline} (1 s rescan)", rt, "5 round trips", float("nan")))
        print("| 8 B round trip | median (ms) | runs | x local | idle CPU, both proxies (% of a core) |")
        print("| --- | --- | --- | --- | --- |")
        base = rows[0][1] if not code else statistics.median(local_rt["this code"])
        print(f"| direct TCP | {direct:.3f} | | | |")
        for label, rt, runs, cpu in rows:
            print(f"| {label} | {rt:.3f} | {runs} | {rt / base:.1f}x | {cpu:.1f} |")
        if args.no_jobs:
            return
        print()
        jobs = [("one view for all", [views[0]] * 3, {}),
                ("a view each, FUSE type", views, {}),
                ("a view each, type hidden", views, {"env": HIDDEN}),
                ("a view each, poll_ms 10 by hand", views, {"poll_ms": 10}),
                ("local disk", [local] * 3, {})]
        if code:
            jobs.append((f"a view each, {args.baseline}", views, {"code": code}))
        print("| job | " + " | ".join(label for label, _, _ in jobs) + " |")
        print("| --- " * (len(jobs) + 1) + "|")
        for name, rounds in (("example (allele counts)", None), (f"MPyC, {args.job_rounds} rounds", args.job_rounds)):
            cells = []
            for label, seen, extra in jobs:
                if rounds and "code" in extra:
                    cells.append("(not run)")
                    continue
                times = [job(f"{name}, {label}", seen, f"{'r' if rounds else 'x'}{i}-{abs(hash(label)) % 10**6}",
                             rounds=rounds, **extra) for i in range(args.repeat)]
                cells.append(f"{statistics.median(times):.2f} ({', '.join(f'{t:.1f}' for t in times)})")
            print(f"| {name} | " + " | ".join(cells) + " |")
        # the interval: what each costs a round-heavy job (the round trips above give its CPU)
        print()
        print(f"| MPyC, {args.job_rounds} rounds, a view each, poll_ms by hand | "
              + " | ".join(f"{ms} ms" for ms in args.intervals.split(",")) + " |")
        print("| --- " * (len(args.intervals.split(",")) + 1) + "|")
        cells = []
        for ms in args.intervals.split(","):
            times = [job(f"interval {ms}", views, f"i{ms}-{i}", poll_ms=float(ms), rounds=args.job_rounds)
                     for i in range(args.repeat)]
            cells.append(f"{statistics.median(times):.2f} ({', '.join(f'{t:.1f}' for t in times)})")
        print("| wall time (s) | " + " | ".join(cells) + " |")
    finally:
        for v in views:
            unmount(v)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
