"""Real Sequre through the file transport, against direct TCP and against the
fork's own file transport, in the same run.

    PATH=~/.cache/syqure-wf/sequre/fork/bin:$PATH python bench/sequre.py [--repeat 3] [--only WORD]

Jobs: the example (allele counts, 10,000 variants, --skip-mhe-setup,
-release build), a round-trip bound program (bench/programs/rounds.codon:
200 sequential secure products, each revealed) and the MHE key setup (../shared/sequre/examples/
two_party_sum_tcp.codon without --skip-mhe-setup: about 1.15 GB each way
between CP1 and CP2, -debug --disable-native build, which does not crash
on AVX-512). Each program is built once (cached) before anything is timed.

Modes: `tcp` (Sequre's own sockets, no proxies), `files` (each party and
its proxy in a network namespace, syqure-wf's file transport), `fork-file`
(the fork's SEQURE_TRANSPORT=file, polling every 50 ms). Times are each
party's program wall time (engine start to exit, from its status record),
medians over the repeats; the ratio is against tcp in the same run. Also:
from a warm cache, the time from `syqure-wf run` to the first message file.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SYQURE_SHARED", REPO.parent / "shared")) / "sequre"
EXAMPLE = REPO / "examples" / "allele-counts"
JOBS = {
    "allele counts (example, -release)": {
        "engine": {"name": "sequre", "program": str(EXAMPLE / "allele_counts.codon"), "args": ["--skip-mhe-setup"]},
        "inputs": {"1": str(EXAMPLE / "data/site1.tsv"), "2": str(EXAMPLE / "data/site2.tsv")}},
    "round-trip bound: 200 secure products, each revealed (-release)": {
        "engine": {"name": "sequre", "program": str(REPO / "bench/programs/rounds.codon"), "args": ["--skip-mhe-setup"],
                   "env": {"ROUNDS": "200"}}},
    "MHE setup (-debug --disable-native)": {
        "engine": {"name": "sequre", "program": str(SHARED / "examples/two_party_sum_tcp.codon"),
                   "build_flags": ["-debug", "--disable-native", "--disable-opt=core-pythonic-list-addition-opt"]}},
}
MODES = ("tcp", "files", "fork-file")


def config(job: dict, mode: str, work: Path) -> Path:
    cfg = json.loads(json.dumps(job))
    cfg.update(parties=3, workdir=str(work), timeouts={"run": 1800})
    if mode == "tcp":
        cfg["transport"] = "tcp"
    elif mode == "fork-file":
        cfg["transport"] = "tcp"  # no proxies: the program's own file transport
        cfg["engine"]["env"] = {**cfg["engine"].get("env", {}), "SEQURE_TRANSPORT": "file",
                                "SEQURE_FILE_DIR": str(work / "fork-files"), "SEQURE_FILE_POLL_MS": "50"}
    path = work.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(job: dict, mode: str, work: Path) -> dict:
    path = config(job, mode, work)
    cmd = [sys.executable, "-m", "syqure_wf", "run", "--config", str(path), "--json"]
    if mode == "tcp":
        # Sequre binds without SO_REUSEADDR: a fresh loopback per run, or the
        # previous run's sockets in TIME_WAIT refuse the next one's bind
        cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    walls, messages, nbytes = [], 0, 0
    for p in summary["parties"]:
        record = json.loads((work / "messages" / "status" / f"party-{p['pid']}.json").read_text())
        times = record.get("times", {})
        walls.append(times["engine_exited"] - times["engine_started"])
        for ch in record.get("channels", {}).values():
            messages += ch["sent_messages"]
            nbytes += ch["sent_bytes"]
    return {"walls": walls, "messages": messages, "bytes": nbytes, "seconds": summary["seconds"]}


async def first_message(job: dict, work: Path) -> float:
    """Seconds from starting `syqure-wf run` to the first message file of the run."""
    from syqure_wf.transport.watch import make_watcher

    path = config(job, "files", work)
    data = work / "messages"
    for a in range(3):
        for b in range(3):
            if a != b:
                (data / f"{a}_to_{b}").mkdir(parents=True, mode=0o700, exist_ok=True)
    seen = asyncio.get_running_loop().create_future()
    watcher = make_watcher()
    for d in data.iterdir():
        watcher.subscribe(d, lambda: seen.done() or seen.set_result(time.monotonic()))
    await watcher.start()
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "syqure_wf", "run", "--config", str(path),
                                                "--quiet", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = await asyncio.wait_for(seen, 120)
    finally:
        await asyncio.wait_for(proc.wait(), 300)
        watcher.close()
    return first - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="only the jobs whose name holds this word")
    args = ap.parse_args()
    from syqure_wf.engines.build import build

    root = Path(tempfile.mkdtemp(prefix="syqure-sequre-bench-"))
    jobs = {k: v for k, v in JOBS.items() if args.only.lower() in k.lower()}
    for name, job in jobs.items():
        done = build(job["engine"], Path(job["engine"]["program"]))
        print(f"{name}: {done.toolchain.flavour} Sequre, Codon {done.toolchain.version}, "
              f"{'compiled in %.0f s' % done.seconds if done.compiled else 'built (cached)'}", file=sys.stderr)
    print("| job | mode | wall per party, CP0 / CP1 / CP2 (s) | ratio to tcp (slowest party) | messages (files) | MB sent |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, job in jobs.items():
        results = {m: [] for m in MODES}
        for i in range(args.repeat):
            for mode in MODES:
                results[mode].append(run(job, mode, root / f"{mode}-{len(name)}-{i}"))
        tcp = statistics.median(max(r["walls"]) for r in results["tcp"])
        for mode in MODES:
            walls = [statistics.median(r["walls"][p] for r in results[mode]) for p in range(3)]
            slowest = statistics.median(max(r["walls"]) for r in results[mode])
            msgs = results[mode][0]["messages"] if mode == "files" else "-"
            mb = f"{results[mode][0]['bytes'] / 1e6:.0f}" if mode == "files" else "-"
            print(f"| {name} | {mode} | {' / '.join(f'{w:.2f}' for w in walls)} | {slowest / tcp:.2f}x | {msgs} | {mb} |",
                  flush=True)
    example = JOBS["allele counts (example, -release)"]
    if args.only:
        return
    firsts = [asyncio.run(first_message(example, root / f"first-{i}")) for i in range(args.repeat)]
    print(f"\nwarm cache, `syqure-wf run` to the first message file: median {statistics.median(firsts):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in firsts)})")


if __name__ == "__main__":
    main()
