"""What a party's guard and confinement cost (SECURITY.md, "A party at its
site"): MPyC programs run as three local parties over MPyC's own TCP, in
the same run,

- plain: ``python PROGRAM``, as MPyC runs it alone;
- guard: through ``engines/unpickle.py`` (what every MPyC party of
  syqure-wf runs: the audit hook, messages tagged with their sender);
- confined: the guard, a clean environment and Landlock's view (what an
  agent's party runs; skipped where the kernel has no Landlock).

    python bench/guard.py [--repeat 5]

Times are wall-clock seconds until the last party exits (Python and MPyC
start-up included, the same for all three); the table shows medians and
ratios against plain.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syqure_wf.engines.engine import python_install  # noqa: E402
from syqure_wf.engines.mpyc import BUILDERS, GUARD  # noqa: E402
from syqure_wf.run.confine import Landlock, clean_env, landlock_abi, view  # noqa: E402
from syqure_wf.sites.partyconfig import free_base  # noqa: E402

JOBS = {
    "allele counts (10,000 variants)": [str(REPO / "examples/allele-counts/allele_counts.py")],
    "round-heavy: 500 sequential comparisons": [str(REPO / "tests/programs/mpyc_rounds.py"), "--rounds", "500"],
    "secure NumPy arrays: 300,000 per party": [str(REPO / "bench/programs/np_sum.py"), "300000"],
}
DATA = {1: REPO / "examples/allele-counts/data/site1.json", 2: REPO / "examples/allele-counts/data/site2.json"}


def run(argv: list[str], how: str, out: Path) -> float:
    base = free_base(10)
    procs, jails = [], []
    t0 = time.perf_counter()
    for pid in range(3):
        env = {**os.environ, "SYQURE_OUTPUT": str(out / f"party-{pid}.json"),
               **({"SYQURE_INPUT": str(DATA[pid])} if pid in DATA else {})}
        cmd = [sys.executable, *([str(GUARD)] if how != "plain" else []), *argv, "-M3", f"-I{pid}", f"-B{base}"]
        preexec = None
        if how == "confined":
            env = clean_env(os.environ, ("MPYC_*", "PYTHONPATH"), {k: v for k, v in env.items()
                                                                    if k.startswith("SYQURE_")})
            reads = [Path(a) for a in argv if os.path.isfile(a)] + [(Path(argv[0]).parent,)] + python_install()
            jail = Landlock(view([*reads, GUARD, BUILDERS, (GUARD.parent,)], [DATA[pid]] if pid in DATA else [], [out],
                                 range(base, base + 3)))
            jails.append(jail)
            preexec = jail.restrict
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, preexec_fn=preexec))
    for jail in jails:
        jail.close()
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"{how} run of {argv[0]} failed:\n{err.decode()[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    ways = ["plain", "guard"] + (["confined"] if landlock_abi()[1] is None else [])
    out = Path(tempfile.mkdtemp(prefix="syqure-guard-bench-"))
    print(f"| job | {' | '.join(f'{w} (s)' for w in ways)} | guard / plain | confined / plain |")
    print("| --- |" + " --- |" * (len(ways) + 2))
    for name, argv in JOBS.items():
        times = {w: [] for w in ways}
        for _ in range(args.repeat):
            for w in ways:  # interleaved: the machine's noise falls on all three alike
                times[w].append(run(argv, w, out))
        med = {w: statistics.median(t) for w, t in times.items()}
        conf = f"{med['confined'] / med['plain']:.2f}" if "confined" in med else "-"
        print(f"| {name} | {' | '.join(f'{med[w]:.2f}' for w in ways)} | {med['guard'] / med['plain']:.2f} | {conf} |")


if __name__ == "__main__":
    main()
