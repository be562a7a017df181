"""MPyC on the file transport in its own process (``transport: files``, the
default) against the same through proxy processes (``transport: proxy``)
and direct TCP (``transport: tcp``), in one run.

    python bench/inproc.py [--repeat 3] [--quick] [--only example]

Jobs, each run with `syqure-wf run` (3 parties): MPyC's `secretsanta` demo
at N=7, the round-heavy job (sequential secure comparisons), the example
(allele counts), and a ping-pong (2 parties: rounds of one small `transfer`
each way, the median round in ms). Two times per job: the whole run (process
start-up included, the same for all) and MPyC's own elapsed time (the
slowest party's "Stop MPyC -- elapsed time", start-up excluded: what the
transport changes). Medians of --repeat runs, the transports interleaved;
every ratio is against TCP of the same run. Prints a Markdown table.

Python's bytecode is cached for the runs, as an installed wheel or image
has it, also where PYTHONDONTWRITEBYTECODE is set (this machine's
environment: every process would compile every module it imports, and a
party in process imports the transport too); one unrecorded run of each
transport fills the cache first. --compile: without the cache.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"
EXAMPLE = REPO / "examples" / "allele-counts"
TRANSPORTS = ("tcp", "proxy", "files")
JOBS = {
    "secretsanta N=7": {"engine": {"name": "mpyc", "program": str(PROGRAMS / "secretsanta.py"), "args": ["7"]}},
    "round-heavy: {rounds} sequential comparisons": {
        "engine": {"name": "mpyc", "program": str(REPO / "tests/programs/mpyc_rounds.py"),
                   "args": ["--rounds", "{rounds}"]}},
    "allele counts (the example)": {
        "engine": {"name": "mpyc", "program": str(EXAMPLE / "allele_counts.py")},
        "inputs": {"1": str(EXAMPLE / "data/site1.json"), "2": str(EXAMPLE / "data/site2.json")}},
    "ping-pong, 2 parties: one round (ms)": {
        "engine": {"name": "mpyc", "program": str(PROGRAMS / "pingpong.py"), "args": ["{pings}"]}, "parties": 2},
}
BYTECODE: dict = {"cache": None}  # the runs' bytecode cache (``installed``)
ELAPSED = re.compile(r"Stop MPyC -- elapsed time: (\d+):(\d+):([\d.]+)")
ROUND = re.compile(r"round_ms=([\d.]+)")


def syqure_run(job: dict, transport: str, work: Path) -> tuple[dict, list[str]]:
    """One ``syqure-wf run`` of ``job`` (3 parties unless it says): its
    summary, and each party's log."""
    from syqure_wf.sites.partyconfig import free_base  # below hand-started runs and the ephemeral range

    cfg = {"parties": 3, **job, "workdir": str(work), "transport": transport,
           "ports": {"base": free_base(300), "stride": 100}}
    path = work.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "syqure_wf", "run", "--config", str(path), "--json"],
                          capture_output=True, text=True, timeout=900, env=environment())
    if done.returncode != 0:
        raise SystemExit(f"{transport} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout), [p.read_text() for p in sorted((work / "logs").glob("party-[0-9].log"))]


def installed(root: Path, compile_each: bool) -> None:
    """The runs' Python caches its bytecode in ``root`` (unless ``compile_each``)."""
    BYTECODE["cache"] = None if compile_each else root / "bytecode"


def environment() -> dict | None:
    if BYTECODE["cache"] is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(BYTECODE["cache"])}


def warm_up(job: dict, transports, root: Path) -> None:
    """One unrecorded run of each transport: the bytecode cache filled."""
    for transport in transports:
        syqure_run(job, transport, root / f"warm-{transport}")


def run(job: dict, transport: str, work: Path) -> tuple[float, float]:
    """(whole run in s, MPyC's elapsed s, or the median round in ms for the ping-pong)."""
    summary, logs = syqure_run(job, transport, work)
    rounds = [float(m.group(1)) for log in logs for m in ROUND.finditer(log)]
    if rounds:
        return summary["seconds"], max(rounds)
    spans = [int(h) * 3600 + int(m) * 60 + float(s) for log in logs for h, m, s in ELAPSED.findall(log)]
    return summary["seconds"], max(spans)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--pings", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="one run each, fewer rounds")
    ap.add_argument("--only", default="", help="the jobs whose name contains this")
    ap.add_argument("--compile", action="store_true", help="no bytecode cache: each process compiles")
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.rounds, args.pings = 1, 50, 100
    root = Path(tempfile.mkdtemp(prefix="syqure-inproc-bench-"))
    installed(root, args.compile)
    warm_up(JOBS["allele counts (the example)"], TRANSPORTS, root)
    print("| job | measure | TCP | proxy | in-process | proxy / TCP | in-process / TCP |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, (name, job) in enumerate(JOBS.items()):
        if args.only not in name:
            continue
        job = json.loads(json.dumps(job).replace("{rounds}", str(args.rounds)).replace("{pings}", str(args.pings)))
        name = name.format(rounds=args.rounds)
        whole = {t: [] for t in TRANSPORTS}
        inner = {t: [] for t in TRANSPORTS}
        for i in range(args.repeat):
            for transport in TRANSPORTS:
                w, e = run(job, transport, root / f"{n}-{transport}-{i}")
                whole[transport].append(w)
                inner[transport].append(e)
        rows = [("MPyC elapsed (s)" if "ping" not in name else "median round (ms)", inner)]
        rows.append(("whole run (s)", whole))
        for measure, times in rows:
            med = {t: statistics.median(v) for t, v in times.items()}
            print(f"| {name} | {measure} | {med['tcp']:.3f} | {med['proxy']:.3f} | {med['files']:.3f} "
                  f"| {med['proxy'] / med['tcp']:.2f}x | {med['files'] / med['tcp']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
