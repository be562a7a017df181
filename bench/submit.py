"""Submit once through the sites' agents, against parties started by hand,
through a real SyftBox 0.4 server and three real clients on this machine at
the stock sync interval (1 s), in the same run.

    python bench/submit.py [--repeat 3] [--interval 1.0]

Rows, each the median of --repeat runs of the allele-counts example:
  `by hand`         the three `syqure-wf party` started at the same moment
                    (the best three operators could do), from that moment;
  `submit, policy`  one `syqure-wf submit` + `syqure-wf wait`, every site's
                    agent approving by its policy, from the submit.
Columns: when the manifest was in the submitter's datasite (after the
submit's own checks), the first MPC message file written, every result
collected at the submitter (by hand: every party done); then the agents'
own cost, in seconds and in sync hops (each run's own hop: its manifest
from the submitter's folder into the other sites' folders; a tiny file's
hop before the runs is printed too, but a client's sync cycle grows with
the files in its datasites and the machine's load): from
the manifest to the first party started, and from the last party done to
the results collected. The MPC run in between is the same work either way
(and its time through SyftBox varies by tens of seconds between runs). The agents' path
adds the manifest's hop to the sites and the 'ready' states' hop between
them before the first message, and the results' hop back at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the real SyftBox net the tests use: server, clients, venv

from conftest import PY, Procs, free_base  # noqa: E402
from test_syftbox_real import EMAILS, SyftBoxNet  # noqa: E402

from syqure_wf.sites.digest import run_digest  # noqa: E402
from syqure_wf.sites.manifest import submitted as submitted_settings  # noqa: E402

EXAMPLE = REPO / "examples" / "allele-counts"


def cli(*args) -> list[str]:
    return [PY, "-m", "syqure_wf", *map(str, args)]


def first_message(net: SyftBoxNet, run_id: str, t0: float, stop: float) -> float | None:
    """Seconds from t0 to the first message file in any channel of the run, at any site."""
    while time.time() < stop:
        for email in EMAILS:
            own = net.folders[email] / "datasites" / email / "app_data/syqure/runs" / run_id
            if own.is_dir() and any(p.name[:1].isdigit() for p in own.glob("*_to_*/*")):
                return time.time() - t0
        time.sleep(0.01)
    return None


def one_hop(net: SyftBoxNet, root: Path) -> float:
    src = net.folders[EMAILS[0]] / "datasites" / EMAILS[0] / "app_data" / "hop"
    src.mkdir(parents=True, exist_ok=True)
    (src / "syftperm.yaml").write_text("- path: '**'\n  user: '*'\n  permissions: [read]\n")
    seen = []
    for _ in range(5):
        name = f"hop-{time.time_ns()}.txt"
        t0 = time.time()
        (src / name).write_text("x")
        dst = net.folders[EMAILS[1]] / "datasites" / EMAILS[0] / "app_data" / "hop" / name
        while not dst.exists() and time.time() - t0 < 30:
            time.sleep(0.005)
        seen.append(time.time() - t0)
    return statistics.median(seen)


def by_hand(net: SyftBoxNet, procs: Procs, root: Path, i: int) -> tuple[float, float]:
    run_id = f"hand-{i}-{int(time.time())}"
    cfg = {"layout": "syftbox", "run_id": run_id,
           "parties": [{"pid": p, "email": EMAILS[p], "folder": str(net.folders[EMAILS[p]])} for p in range(3)],
           "engine": {"name": "mpyc", "program": str(EXAMPLE / "allele_counts.py")},
           "inputs": {"1": str(EXAMPLE / "data/site1.json"), "2": str(EXAMPLE / "data/site2.json")},
           "workdir": str(root / run_id), "ports": {"base": free_base(span=300), "stride": 100}}
    path = root / f"{run_id}.yaml"
    path.write_text(json.dumps(cfg))
    t0 = time.time()
    parties = [procs.start(cli("party", "--config", path, "--pid", p), log=root / f"{run_id}-{p}.log") for p in range(3)]
    first = first_message(net, run_id, t0, t0 + 300)
    codes = [procs.wait(p, 600) for p in parties]
    assert codes == [0, 0, 0], codes
    return first, time.time() - t0


def submitted(net: SyftBoxNet, procs: Procs, root: Path, i: int) -> tuple[float, float, float]:
    cfg = root / f"submit-{i}.yaml"
    run_id = f"submit-{i}-{int(time.time())}"
    cfg.write_text(json.dumps({"run_id": run_id, "inputs": {"1": "counts", "2": "counts"},
                               "engine": {"name": "mpyc", "program": str(EXAMPLE / "allele_counts.py")}}))
    site = ["--syftbox-folder", net.folders[EMAILS[0]], "--email", EMAILS[0]]
    t0 = time.time()
    done = subprocess.run(cli("submit", "--config", cfg, "--to", ",".join(EMAILS), *site),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    waiter = procs.start(cli("wait", run_id, *site, "--results", root / "results"), log=root / f"{run_id}-wait.log")
    first = first_message(net, run_id, t0, t0 + 300)
    assert procs.wait(waiter, 600) == 0, Path(waiter.log).read_text()
    end = time.time()
    manifest = (net.folders[EMAILS[0]] / "datasites" / EMAILS[0] / "app_data/syqure/jobs" / EMAILS[0] / run_id
                / "manifest.json")
    published = os.stat(manifest).st_mtime  # after the submit's own checks
    events = [json.loads(line) for email in EMAILS
              for line in (net.folders[email] / "syqure-wf" / email / "audit.jsonl").read_text().splitlines()]
    started = min(e["time"] for e in events if e["run_id"] == run_id and e["event"] == "started")
    done = max(e["time"] for e in events if e["run_id"] == run_id and e["event"] == "done")
    # this run's own hop: the manifest from the submitter's folder into the other sites'
    arrived = [os.stat(net.folders[e] / "datasites" / EMAILS[0] / "app_data/syqure/jobs" / EMAILS[0] / run_id
                       / "manifest.json").st_mtime - published for e in EMAILS[1:]]
    # the agents' own cost: manifest -> first party started, last party done -> results collected
    return first, end - t0, published - t0, started - published, end - done, statistics.mean(arrived)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--interval", type=float, default=1.0, help="SyftBox sync interval, seconds (stock: 1)")
    ap.add_argument("--keep", type=Path, default=None, help="Work in this folder and keep it (logs, audit).")
    args = ap.parse_args()
    procs = Procs()
    with tempfile.TemporaryDirectory(prefix="syqure-bench-submit-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        try:
            net = SyftBoxNet(procs, root / "syftbox", EMAILS, args.interval)
            d = run_digest(*submitted_settings({"engine": {"name": "mpyc", "program": "allele_counts.py"}}, "bench",
                                               EXAMPLE), 3)
            data = {1: EXAMPLE / "data/site1.json", 2: EXAMPLE / "data/site2.json"}
            for p, email in enumerate(EMAILS):
                policy = root / f"policy-{p}.yaml"
                policy.write_text(json.dumps({"submitters": ["*"], "programs": [d],
                                              **({"inputs": {"counts": str(data[p])}} if p in data else {})}))
                procs.start(cli("agent", "--syftbox-folder", net.folders[email], "--email", email, "--policy", policy),
                            log=root / f"agent-{p}.log")
            time.sleep(2)
            hop = one_hop(net, root)
            rows = {"by hand": [], "submit, policy": []}
            for i in range(args.repeat):
                rows["by hand"].append(by_hand(net, procs, root, i))
                rows["submit, policy"].append(submitted(net, procs, root, i))
        finally:
            procs.cleanup()
    med = {k: [statistics.median(r[j] for r in v) for j in range(len(v[0]))] for k, v in rows.items()}
    print(f"SyftBox 0.4, interval {args.interval:g} s, one hop {hop:.2f} s (median of 5), "
          f"{args.repeat} runs each, median; {os.cpu_count()} cores")
    print(f"{'':16} {'manifest':>9} {'first message':>14} {'results':>9} {'hop':>7}   {'to the start':>13} "
          f"{'from the end':>13}")
    base_first = med["by hand"][0]
    for name, values in med.items():
        first, total = values[:2]
        if name == "by hand":
            print(f"{name:16} {'':>9} {first:13.2f}s {total:8.2f}s")
            continue
        published, to_start, from_end, run_hop = values[2:]
        print(f"{name:16} {published:8.2f}s {first:13.2f}s {total:8.2f}s {run_hop:6.2f}s   "
              f"{to_start:6.2f}s {to_start / run_hop:4.1f}h {from_end:6.2f}s {from_end / run_hop:4.1f}h")
    extra = [(r[0] - r[2] - base_first) / r[5] for r in rows["submit, policy"]]
    print(f"first message after the manifest, beyond by hand, in each run's hops: "
          f"{statistics.median(extra):.1f} (runs: {', '.join(f'{x:.1f}' for x in extra)})")
    for name, values in rows.items():
        print(f"  {name}: " + "; ".join(" ".join(f"{x:.2f}" for x in r) for r in values))


if __name__ == "__main__":
    main()
