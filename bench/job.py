"""Whole-job benchmark: the example job and a round-heavy MPyC program,
through the file transport and over direct TCP, in the same run.

    python bench/job.py [--repeat 3] [--rounds 200]

Times are wall-clock seconds of `syqure-wf run` (process start-up included,
the same for both transports); the table shows medians and ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
JOBS = {
    "allele counts (10,000 variants)": {
        "engine": {"name": "mpyc", "program": str(REPO / "examples/allele-counts/allele_counts.py")},
        "inputs": {"1": str(REPO / "examples/allele-counts/data/site1.json"),
                   "2": str(REPO / "examples/allele-counts/data/site2.json")}},
    "round-heavy: {rounds} sequential comparisons": {
        "engine": {"name": "mpyc", "program": str(REPO / "tests/programs/mpyc_rounds.py"),
                   "args": ["--rounds", "{rounds}"]}},
}


def run(job: dict, transport: str, work: Path) -> tuple[float, int]:
    cfg = {**job, "parties": 3, "workdir": str(work), "transport": transport}
    path = work.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "syqure_wf", "run", "--config", str(path), "--json"],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{transport} run failed:\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    messages = sum(c["sent_messages"] for p in summary["parties"] for c in p["channels"].values())
    return summary["seconds"], messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syqure-job-bench-"))
    print("| job | direct TCP (s) | files (s) | ratio | messages through files |")
    print("| --- | --- | --- | --- | --- |")
    for name, job in JOBS.items():
        job = json.loads(json.dumps(job).replace("{rounds}", str(args.rounds)))
        times = {"tcp": [], "files": []}
        messages = 0
        for i in range(args.repeat):
            for transport in ("tcp", "files"):
                seconds, count = run(job, transport, root / f"{transport}-{len(name)}-{i}")
                times[transport].append(seconds)
                messages = count if transport == "files" else messages
        tcp, files = statistics.median(times["tcp"]), statistics.median(times["files"])
        print(f"| {name.format(rounds=args.rounds)} | {tcp:.2f} | {files:.2f} | {files / tcp:.2f}x | {messages} |")


if __name__ == "__main__":
    main()
