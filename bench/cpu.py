"""CPU per message of MPyC on the files in its own process (``transport:
files``) against direct TCP: far less sensitive to the machine's load than
elapsed time (bench/RESULTS.md, "CPU per message on the in-process path").

    python bench/cpu.py [--repeat 3] [--pings 1000] [--rounds 200] [--santa 7] [--only JOB]

Three jobs, each run with `syqure-wf run`, the transports interleaved: a
ping-pong (2 parties, rounds of one small `transfer` each way), the
round-heavy job (3 parties, sequential secure comparisons) and MPyC's
secretsanta demo (3 parties, N=7, as bench/inproc.py runs it). Each party's
program records its process's CPU (user + system, every thread: MPyC's
and its proxy's) around its rounds only, start-up and shutdown excluded.
"Messages" are the message files the parties wrote in process (their
records' `sent_messages`: the whole run's, the few of start-up and
shutdown included); "extra" is the in-process CPU less TCP's, per message. Medians of --repeat runs. To compare two versions, run each
tree's copy alternately (before, after, after, before), from a folder
outside the repository, its package on PYTHONPATH. Bytecode cached, as
bench/inproc.py runs (--compile: without).
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
from pathlib import Path

from inproc import JOBS, installed, syqure_run, warm_up  # bench/, run as a script: its folder is on the path

WINDOW = '''
import resource


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime


class Window:
    def start(self):
        self.t0, self.s0 = cpu()

    def stop(self):
        t, s = cpu()
        print(f"cpu_s={t - self.t0:.4f} sys_s={s - self.s0:.4f}", flush=True)
'''
PING = '''
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from window import Window
from mpyc.runtime import mpc


async def main():
    await mpc.start()
    for i in range(10):
        await mpc.transfer(i)
    w = Window()
    w.start()
    for i in range(int(sys.argv[1])):
        await mpc.transfer(i)
    w.stop()
    await mpc.shutdown()

mpc.run(main())
'''
ROUNDS = '''
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from window import Window
from mpyc.runtime import mpc


async def main():
    await mpc.start()
    secint = mpc.SecInt(32)
    w = Window()
    w.start()
    xs = mpc.input(secint(7 * mpc.pid + 1))
    below = 0
    for i in range(int(sys.argv[1])):
        below += int(await mpc.output(xs[0] + i < xs[-1]))
    w.stop()
    await mpc.shutdown()

mpc.run(main())
'''
SANTA = '''
import os, runpy, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from window import Window
from mpyc.runtime import mpc

# MPyC's demo unchanged, its CPU counted between its mpc.start and mpc.shutdown
window, start, shutdown = Window(), mpc.start, mpc.shutdown


async def started(*args, **kwargs):
    await start(*args, **kwargs)
    window.start()


async def stopping(*args, **kwargs):
    window.stop()
    await shutdown(*args, **kwargs)


mpc.start, mpc.shutdown = started, stopping
runpy.run_path(%r, run_name="__main__")
'''
CPU = re.compile(r"cpu_s=([\d.]+) sys_s=([\d.]+)")


def run(program: Path, arg: int, parties: int, transport: str, work: Path) -> tuple[float, float, int]:
    """(CPU s of the parties, of it system s, message files written)."""
    job = {"parties": parties, "engine": {"name": "mpyc", "program": str(program), "args": [str(arg)]}}
    summary, logs = syqure_run(job, transport, work)
    found = [m.groups() for log in logs for m in CPU.finditer(log)]
    sent = sum(ch.get("sent_messages", 0) for p in summary["parties"] for ch in (p.get("channels") or {}).values())
    return sum(float(t) for t, _ in found), sum(float(s) for _, s in found), sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pings", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--santa", type=int, default=7, help="secretsanta's N")
    ap.add_argument("--only", help="the jobs whose name holds this (ping-pong, round-heavy, secretsanta)")
    ap.add_argument("--compile", action="store_true", help="no bytecode cache: each process compiles")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syqure-cpu-bench-"))
    installed(root, args.compile)
    warm_up(JOBS["allele counts (the example)"], ("tcp", "files"), root)
    (root / "window.py").write_text(WINDOW)
    (root / "ping.py").write_text(PING)
    (root / "rounds.py").write_text(ROUNDS)
    (root / "santa.py").write_text(SANTA % str(Path(__file__).resolve().parent / "programs" / "secretsanta.py"))
    jobs = {f"ping-pong, {args.pings} rounds": (root / "ping.py", args.pings, 2),
            f"round-heavy, {args.rounds} comparisons": (root / "rounds.py", args.rounds, 3),
            f"secretsanta N={args.santa}": (root / "santa.py", args.santa, 3)}
    jobs = {name: job for name, job in jobs.items() if not args.only or args.only in name}
    print("| job | transport | CPU of the parties (s) | of it system (s) | messages in process | CPU us / message |")
    print("| --- | --- | --- | --- | --- | --- |")
    extra = []
    for n, (name, (program, arg, parties)) in enumerate(jobs.items()):
        got: dict = {"tcp": [], "files": []}
        for i in range(args.repeat):
            for transport in got:
                got[transport].append(run(program, arg, parties, transport, root / f"{n}-{transport}-{i}"))
        med = {t: [statistics.median(r[k] for r in rs) for k in range(3)] for t, rs in got.items()}
        messages = med["files"][2]
        for transport, (cpu, system, _) in med.items():
            print(f"| {name} | {transport} | {cpu:.3f} | {system:.3f} | {messages:.0f} "
                  f"| {cpu / messages * 1e6:.0f} |", flush=True)
        extra.append(f"{name}: {(med['files'][0] - med['tcp'][0]) / messages * 1e6:.0f} us "
                     f"(system {(med['files'][1] - med['tcp'][1]) / messages * 1e6:.0f} us)")
    print("\nCPU per message in process, more than TCP's: " + "; ".join(extra))


if __name__ == "__main__":
    main()
