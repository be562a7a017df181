"""The least the file protocol costs an MPyC job: its parties on a bare file
transport, against MPyC's TCP and syqure-wf's own in-process path, in one
run (bench/RESULTS.md, "The 1.3x targets against the protocol's floor under MPyC").

    python bench/floor_mpyc.py [--repeat 3] [--rounds 200] [--only round]

The bare transport is what ``bench/floor.py`` times, under MPyC: each
party's writes of one turn of its loop are one message file (a pooled file
filled, renamed in, its ``.ready`` linked), and an inotify event on the
party's own loop has the marker found, the file read, the marker removed,
the file moved to a pool and its bytes given to MPyC in that callback. No
session, no framing, no proxy's loop, no liveness, no checks: no
implementation of the protocol in Python can go below it. A second bare
variant hands MPyC its bytes first and removes marker and file after the
turn's writes went out (off a round's path). TCP is MPyC's own (``-P
localhost:PORT``); ``syqure-wf`` is ``syqure-wf run`` with the default
in-process transport. MPyC elapsed is the slowest party's; CPU is the
parties' processes' (user and system, start-up included, which TCP and the
bare files share), per message file of the bare run. Medians of --repeat,
the transports interleaved. Bytecode cached, as bench/inproc.py runs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import runpy
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inproc import ELAPSED, JOBS, installed, environment, syqure_run  # noqa: E402

READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
REWRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PARTIES = 3


class Bare(asyncio.Transport):
    """One peer's connection over the folder: a message per turn of the loop."""

    def __init__(self, hub, peer):
        super().__init__()
        self.hub, self.peer, self.protocol, self.batch, self.closing = hub, peer, None, [], False

    def write(self, data):
        if not self.batch:
            self.hub.turn_end.ends.append(self)
        self.batch.append(bytes(data))

    def writelines(self, pieces):
        self.write(b"".join(pieces))

    def flush(self):
        if self.batch:
            data, self.batch = b"".join(self.batch), []
            self.hub.send(self.peer, data)

    def close(self):
        if not self.closing:
            self.closing = True
            self.flush()
            self.hub.send(self.peer, None)
            self.hub.loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self):
        return self.closing

    def get_extra_info(self, name, default=None):
        return default


class Later:
    """The loop's selector, wrapped: at the end of each turn the ends flush,
    then what was left for later runs (off a round's path), then it waits,
    not at all if that made anything ready."""

    def __init__(self, loop):
        self.loop, self.inner, self.ends, self.later = loop, loop._selector, [], []
        loop._selector = self

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def select(self, timeout=None):
        while self.ends or self.later:
            ends, self.ends = self.ends, []
            for end in ends:
                end.flush()
            later, self.later = self.later, []
            for call in later:
                call()
        return self.inner.select(0 if self.loop._ready else timeout)


class Hub:
    def __init__(self, root: str, me: int, loop, defer: bool):
        from asyncinotify import Inotify, Mask

        from syqure_wf.transport.turns import TurnEnd

        self.me, self.loop, self.defer = me, loop, defer
        self.turn_end = Later(loop) if defer else TurnEnd.of(loop)
        self.pool = f"{root}/pool{me}"
        os.makedirs(self.pool, exist_ok=True)
        self.marker = f"{self.pool}/marker"
        os.close(os.open(self.marker, CREATE, 0o600))
        self.free: list[str] = []
        self.kept = 0
        self.out, self.inn, self.seq_out, self.seq_in, self.ends = {}, {}, {}, {}, {}
        self.inotify = Inotify()
        os.set_blocking(self.inotify.fd, False)
        for p in range(PARTIES):
            if p != me:
                self.out[p], self.inn[p] = f"{root}/{me}to{p}", f"{root}/{p}to{me}"
                for d in (self.out[p], self.inn[p]):
                    os.makedirs(d, exist_ok=True)
                self.seq_out[p] = self.seq_in[p] = 0
                self.inotify.add_watch(self.inn[p], Mask.CREATE | Mask.ONLYDIR)
        loop.add_reader(self.inotify.fd, self.arrived)

    def send(self, peer: int, data: bytes | None) -> None:
        seq = self.seq_out[peer]
        self.seq_out[peer] += 1
        folder = self.out[peer]
        if data is None:
            os.close(os.open(f"{folder}/{seq:08d}.end", CREATE, 0o600))
            return
        if self.free:
            tmp = self.free.pop()
            fd = os.open(tmp, REWRITE)
            os.fstat(fd)
        else:
            self.kept += 1
            tmp = f"{self.pool}/f{self.kept}"
            fd = os.open(tmp, CREATE, 0o600)
        os.write(fd, data)
        os.ftruncate(fd, len(data))
        os.close(fd)
        os.rename(tmp, f"{folder}/{seq:08d}.msg")
        os.link(self.marker, f"{folder}/{seq:08d}.ready")

    def arrived(self) -> None:
        try:
            os.read(self.inotify.fd, 1 << 16)
        except BlockingIOError:
            return
        for peer in self.ends:
            self.look(peer)

    def look(self, peer: int) -> None:
        end, inbox = self.ends[peer], self.inn[peer]
        while True:
            seq = self.seq_in[peer]
            ready = f"{inbox}/{seq:08d}.ready"
            try:
                os.lstat(ready)
            except FileNotFoundError:
                try:
                    os.lstat(f"{inbox}/{seq:08d}.end")
                except FileNotFoundError:
                    return
                self.seq_in[peer] += 1
                end.closing = True
                end.protocol.connection_lost(None)
                return
            path = f"{inbox}/{seq:08d}.msg"
            fd = os.open(path, READ)
            data = os.read(fd, os.fstat(fd).st_size)
            os.close(fd)
            self.seq_in[peer] += 1
            if self.defer:  # the party has its bytes first; the removal and the next look after its turn
                end.protocol.data_received(data)
                self.turn_end.later.append(lambda r=ready, p=path, peer=peer: self.consume(r, p, peer))
                return
            self.consume(ready, path, None)
            end.protocol.data_received(data)

    def consume(self, ready: str, path: str, peer: int | None) -> None:
        os.unlink(ready)
        self.kept += 1
        kept = f"{self.pool}/f{self.kept}"
        os.rename(path, kept)
        self.free.append(kept)
        if peer is not None:
            self.look(peer)

    def connect(self, peer: int, protocol) -> Bare:
        end = Bare(self, peer)
        end.protocol = protocol
        self.ends[peer] = end
        protocol.connection_made(end)
        self.loop.call_soon(self.look, peer)  # what came before
        return end


def bare_party(root: str, me: int, defer: bool, argv: list[str]) -> None:
    """Run the MPyC program ``argv`` as party ``me`` on the bare transport."""
    sys.argv = argv + [a for k in range(PARTIES) for a in ("-P", f"{'' if k == me else 'files'}:{k}")] \
        + ["-I", str(me)]
    from mpyc.runtime import mpc

    loop = mpc._loop
    hub = Hub(root, me, loop, defer)

    async def create_server(factory, host=None, port=None, **_):
        for peer in range(me):
            hub.connect(peer, factory())
        return type("Server", (), {"close": lambda self: None})()

    async def create_connection(factory, host=None, port=None, **_):
        protocol = factory()
        return hub.connect(protocol.peer_pid, protocol), protocol

    loop.create_server, loop.create_connection = create_server, create_connection
    runpy.run_path(argv[0], run_name="__main__")
    print(f"messages={sum(hub.seq_out.values())}")


def direct(job: dict, kind: str, work: Path) -> tuple[float, float, float, int]:
    """MPyC elapsed (the slowest party's) of ``job`` over MPyC's TCP or the bare
    files; the parties' user and system CPU (s), start-up included; the message files."""
    engine = job["engine"]
    work.mkdir(parents=True)
    port = 20000 + os.getpid() % 20000
    procs = []
    for me in range(PARTIES):
        if kind == "tcp":
            mpyc = [a for k in range(PARTIES) for a in ("-P", f"{'localhost' if k != me else ''}:{port + k}")]
            cmd = [sys.executable, engine["program"], *engine.get("args", []), *mpyc, "-I", str(me)]
        else:
            cmd = [sys.executable, __file__, "--party", str(work), str(me), kind,
                   engine["program"], *engine.get("args", [])]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=environment(), cwd=work))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(p.returncode for p in procs):
        raise SystemExit(f"{kind}: a party failed:\n" + "\n".join(o[-1500:] for o in outs))
    elapsed = max(int(h) * 3600 + int(m) * 60 + float(s) for o in outs for h, m, s in ELAPSED.findall(o))
    messages = sum(int(n) for o in outs for n in re.findall(r"^messages=(\d+)", o, re.M))
    return elapsed, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--only", default="")
    if sys.argv[1:2] == ["--party"]:  # one party of the bare transport: --party ROOT PID PROGRAM ARGS...
        return bare_party(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "later", sys.argv[5:])
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syqure-floor-mpyc-"))
    installed(root, False)
    jobs = {name.format(rounds=args.rounds): job for name, job in JOBS.items()
            if "secretsanta" in name or "round-heavy" in name}
    rows, cpus = [], []
    for n, (name, job) in enumerate(jobs.items()):
        if args.only not in name:
            continue
        job = {**job, "engine": {**job["engine"], "args": [a.replace("{rounds}", str(args.rounds))
                                                           for a in job["engine"].get("args", [])]}}
        got: dict = {"tcp": [], "bare": [], "later": [], "files": []}
        for i in range(args.repeat):
            for kind in got:
                work = root / f"{n}-{kind}-{i}"
                if kind == "files":
                    _, logs = syqure_run(job, "files", work)
                    got[kind].append((max(int(h) * 3600 + int(m) * 60 + float(s)
                                          for log in logs for h, m, s in ELAPSED.findall(log)),))
                else:
                    got[kind].append(direct(job, kind, work))
        med = {k: [statistics.median(r[i] for r in v) for i in range(len(v[0]))] for k, v in got.items()}
        t = {k: v[0] for k, v in med.items()}
        rows.append(f"| {name} | {t['tcp']:.3f} | {t['bare']:.3f} | {t['later']:.3f} | {t['files']:.3f} "
                    f"| {t['bare'] / t['tcp']:.2f}x | {t['later'] / t['tcp']:.2f}x "
                    f"| {t['files'] / t['tcp']:.2f}x | {t['files'] / t['bare']:.2f}x |")
        messages = med["bare"][3]
        user, system = ((med["bare"][k] - med["tcp"][k]) / messages * 1e6 for k in (1, 2))
        cpus.append(f"| {name} | {messages:.0f} | {sum(med['tcp'][1:3]):.3f} | {sum(med['bare'][1:3]):.3f} "
                    f"| {user:.0f} | {system:.0f} | {user + system:.0f} |")
    print("| job | TCP (s) | bare files (s) | bare, consumed after the turn (s) | syqure-wf files (s) | bare / TCP "
          "| bare after / TCP | syqure-wf / TCP | syqure-wf / bare |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\n| job | message files | CPU of the parties, TCP (s) | bare files (s) "
          "| bare's more than TCP's per message: user (us) | system (us) | total (us) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(cpus))

if __name__ == "__main__":
    main()
