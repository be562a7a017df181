"""A Biovault syqure step through `syqure-wf-biovault`, against the fork's own
file transport as Biovault configures it (SEQURE_TRANSPORT=file, 50 ms poll),
in the same run.

    PATH=~/.cache/syqure-wf/sequre/fork/bin:$PATH python bench/biovault.py [--n 20000] [--native-compile]

The step is examples/biovault-module/secure-sum (a real Sequre program in
Biovault's module form: each data holder's counts, summed under MPC) with N
counts per holder, three datasites in one folder, the parties started the
way Biovault's runner starts its binary (argv `BINARY ENTRYPOINT -- PID`,
its SEQURE_*/BV_* environment, cwd SYQURE_BUNDLE_CACHE), all at once. Wall
time is from the first start to the last exit.

Rows: `syqure-wf-biovault` with an empty build cache (the first run: one
compile on this machine, the others wait for it) and again (the second run:
the cached binary); `fork file transport` with the same compiled program
started directly (the transport alone: no compile); with --native-compile,
`codon run` per party as the syqure binary does at every run (three compiles
at once on this machine: minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "examples" / "biovault-module" / "secure-sum"
ENTRY = MODULE / "secure_sum.codon"
EMAILS = ["aggregator@bench.org", "client1@bench.org", "client2@bench.org"]


def step_folders(root: Path, run: str, n: int) -> tuple[Path, str]:
    datasites, file_dir = root / "SyftBox" / "datasites", f"shared/flows/bench/{run}/_mpc"
    for p, email in enumerate(EMAILS):
        for q in range(3):
            if q != p:
                channel = datasites / email / file_dir / f"{p}_to_{q}"
                channel.mkdir(parents=True, exist_ok=True)
                (channel / "syft.pub.yaml").write_text(f"rules:\n  - pattern: '**'\n    access:\n"
                                                       f"      read: [{email}, {EMAILS[q]}]\n")
    for p in (1, 2):
        (root / f"counts-{p}.json").write_text(json.dumps([p * i % 1000 for i in range(n)]))
    return datasites, file_dir


def env_of(root: Path, datasites: Path, file_dir: str, p: int, cache: Path) -> dict:
    bundle, results = root / "bundle" / f"party-{p}", root / "results" / f"party-{p}"
    bundle.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEQURE_TRANSPORT": "file", "SEQURE_FILE_DIR": file_dir, "SEQURE_FILE_POLL_MS": "50",
           "SEQURE_CP_COUNT": "3", "SEQURE_PARTY_EMAILS": ",".join(EMAILS), "SEQURE_DATASITES_ROOT": str(datasites),
           "SEQURE_LOCAL_EMAIL": EMAILS[p], "SEQURE_FILE_KEEP": "1", "SEQURE_FILE_DEBUG": "1",
           "BV_RESULTS_DIR": str(results), "SYQURE_BUNDLE_CACHE": str(bundle), "SYQURE_WF_CACHE": str(cache),
           "SEQURE_OUTPUT_AGGREGATED_COUNTS": str(results / "aggregated_counts.json")}
    if p:
        env["SEQURE_INPUT_COUNTS"] = str(root / f"counts-{p}.json")
    return env


def run_step(root: Path, run: str, n: int, cache: Path, argv_of) -> float:
    datasites, file_dir = step_folders(root, run, n)
    envs = {p: env_of(root, datasites, file_dir, p, cache) for p in range(3)}
    t0 = time.monotonic()
    procs = {p: subprocess.Popen(argv_of(p), env=envs[p], cwd=envs[p]["SYQURE_BUNDLE_CACHE"], start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p in range(3)}
    try:
        for p, proc in procs.items():
            if proc.wait(timeout=1800) != 0:
                raise SystemExit(f"{run}: party {p} exited {proc.returncode}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
    seconds = time.monotonic() - t0
    sums = [json.loads((root / "results" / f"party-{p}" / "aggregated_counts.json").read_text()) for p in range(3)]
    expected = [1 * i % 1000 + 2 * i % 1000 for i in range(n)]
    if any(s != expected for s in sums):
        raise SystemExit(f"{run}: wrong sums")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="counts per data holder")
    ap.add_argument("--native-compile", action="store_true", help="also `codon run` per party, as the syqure binary")
    args = ap.parse_args()
    codon = shutil.which("codon")
    if not codon:
        raise SystemExit("put Codon with the Sequre plugin first on PATH")
    biovault = [sys.executable, "-m", "syqure_wf.biovault"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-bv-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        for label in ("first run (compiles)", "second run (cached)"):
            seconds = run_step(tmp / label.split()[0], label.split()[0], args.n, cache,
                               lambda p: [*biovault, str(ENTRY), "--", str(p)])
            rows.append((f"syqure-wf-biovault, {label}", seconds))
        binary = next(cache.glob("secure_sum-*/secure_sum"))
        seconds = run_step(tmp / "native", "native", args.n, cache, lambda p: [str(binary), "--skip-mhe-setup", str(p)])
        rows.append(("fork file transport (50 ms poll), program prebuilt", seconds))
        if args.native_compile:
            seconds = run_step(tmp / "native-run", "native-run", args.n, cache,
                               lambda p: [codon, "run", "-plugin", "sequre", "-release",
                                          "--disable-opt=core-pythonic-list-addition-opt", str(ENTRY),
                                          "--skip-mhe-setup", str(p)])
            rows.append(("fork file transport, `codon run` per party (as the syqure binary)", seconds))
    base = rows[1][1]
    print(f"secure-sum module, {args.n} counts per holder, three parties on this machine\n")
    print("| step | wall, first start to last exit (s) | ratio to syqure-wf-biovault cached |")
    print("| --- | --- | --- |")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
