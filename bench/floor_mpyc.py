"""The least the file protocol costs an MPyC job: its parties on a bare file
transport, against MPyC's TCP and syqure-wf's own in-process path, in one
run (bench/RESULTS.md, "The 1.3x targets against the protocol's floor under MPyC").

    python bench/floor_mpyc.py [--repeat 3] [--rounds 200] [--only round]

The bare transport makes the shared layout's files, in their order, with
the fewest system calls a message can take, and nothing else. The writes
of one turn of the party's loop are one message: a pooled file filled
through the descriptor its reader kept (truncated only when it was
larger), renamed in, its ``.ready`` linked. The reader, told by the inotify
event's name which marker arrived (a look by name only at the start and
after an overflow), opens the file, reads it in one call, removes the
marker, moves the file to its pool and gives MPyC the bytes, all in the
event's callback on the party's own loop. No session, no framing, no
proxy's loop, no liveness, none of the reader's checks: no implementation
of this protocol in Python can go below it. TCP is MPyC's own (``-P
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
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inproc import ELAPSED, JOBS, installed, environment, syqure_run  # noqa: E402

READ_WRITE = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC  # the reader keeps it for its writer
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PARTIES = 3
IN_CREATE, IN_ONLYDIR, IN_Q_OVERFLOW = 0x100, 0x01000000, 0x4000
EVENT = struct.Struct("iIII")  # inotify's: wd, mask, cookie, name length


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


class Floor:
    """One party's side of the bare transport (the module's docstring)."""

    SCAN = -1  # in a peer's pending seqs: look by name (what came before the watch; an overflow)

    def __init__(self, root: str, me: int, loop):
        from asyncinotify import Inotify

        from syqure_wf.transport.turns import TurnEnd

        self.me, self.loop, self.turn_end = me, loop, TurnEnd.of(loop)
        self.pool = f"{root}/pool{me}"
        os.makedirs(self.pool, exist_ok=True)
        self.marker = f"{self.pool}/marker"
        os.close(os.open(self.marker, CREATE, 0o600))
        self.free: list[tuple[str, int, int]] = []  # (path, size, the descriptor its reader kept)
        self.kept = 0
        self.out, self.inn, self.seq_out, self.seq_in, self.ends = {}, {}, {}, {}, {}
        self.inotify = Inotify()
        os.set_blocking(self.inotify.fd, False)
        self.peer_of, self.pending, self.events = {}, {}, bytearray(1 << 16)
        for p in range(PARTIES):
            if p != me:
                self.out[p], self.inn[p] = f"{root}/{me}to{p}", f"{root}/{p}to{me}"
                for d in (self.out[p], self.inn[p]):
                    os.makedirs(d, exist_ok=True)
                self.seq_out[p] = self.seq_in[p] = 0
                self.peer_of[self.inotify.add_watch(self.inn[p], IN_CREATE | IN_ONLYDIR).wd] = p
                self.pending[p] = {self.SCAN}
        loop.add_reader(self.inotify.fd, self.arrived)

    def send(self, peer: int, data: bytes | None) -> None:
        seq = self.seq_out[peer]
        self.seq_out[peer] = seq + 1
        slot = f"{self.out[peer]}/{seq:08d}"
        if data is None:
            os.close(os.open(slot + ".end", CREATE, 0o600))
            return
        if self.free:
            path, size, fd = self.free.pop()
            os.pwrite(fd, data, 0)
            if size > len(data):
                os.ftruncate(fd, len(data))
        else:
            self.kept += 1
            path = f"{self.pool}/f{self.kept}"
            fd = os.open(path, CREATE, 0o600)
            os.write(fd, data)
        os.close(fd)
        os.rename(path, slot + ".msg")
        os.link(self.marker, slot + ".ready")

    def arrived(self) -> None:
        try:
            n = os.readv(self.inotify.fd, [self.events])
        except BlockingIOError:
            return
        buf, at, peers = self.events, 0, set()
        while at < n:
            wd, mask, _, length = EVENT.unpack_from(buf, at)
            name, at = bytes(buf[at + 16:at + 16 + length]), at + 16 + length
            peer = self.peer_of.get(wd)
            if peer is None or mask & IN_Q_OVERFLOW:  # every inbox looked at by name
                for p in self.pending:
                    self.pending[p].add(self.SCAN)
                peers.update(self.pending)
            elif name[8:14] in (b".ready", b".end\0\0") and int(name[:8]) >= self.seq_in[peer]:
                self.pending[peer].add(int(name[:8]))
                peers.add(peer)
        for peer in peers:
            if peer in self.ends:
                self.look(peer)

    def look(self, peer: int) -> None:
        end, inbox, pending = self.ends[peer], self.inn[peer], self.pending[peer]
        scan = self.SCAN in pending
        pending.discard(self.SCAN)
        while True:
            seq = self.seq_in[peer]
            slot = f"{inbox}/{seq:08d}"
            if scan:
                if not os.path.lexists(slot + ".ready") and not os.path.lexists(slot + ".end"):
                    return
            elif seq in pending:
                pending.discard(seq)
            else:
                return
            try:
                fd = os.open(slot + ".msg", READ_WRITE)
            except FileNotFoundError:  # an end of stream
                self.seq_in[peer] = seq + 1
                end.closing = True
                end.protocol.connection_lost(None)
                return
            data = os.read(fd, 1 << 16)
            if len(data) == 1 << 16:
                data += b"".join(iter(lambda: os.read(fd, 1 << 20), b""))  # noqa: B023 (called here)
            self.seq_in[peer] = seq + 1
            os.unlink(slot + ".ready")
            self.kept += 1
            path = f"{self.pool}/f{self.kept}"
            os.rename(slot + ".msg", path)
            self.free.append((path, len(data), fd))
            end.protocol.data_received(data)

    def connect(self, peer: int, protocol) -> Bare:
        end = Bare(self, peer)
        end.protocol = protocol
        self.ends[peer] = end
        protocol.connection_made(end)
        self.loop.call_soon(self.look, peer)  # what came before
        return end


def bare_party(root: str, me: int, argv: list[str]) -> None:
    """Run the MPyC program ``argv`` as party ``me`` on the bare transport."""
    sys.argv = argv + [a for k in range(PARTIES) for a in ("-P", f"{'' if k == me else 'files'}:{k}")] \
        + ["-I", str(me)]
    from mpyc.runtime import mpc

    loop = mpc._loop
    hub = Floor(root, me, loop)

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
            cmd = [sys.executable, __file__, "--party", str(work), str(me),
                   engine["program"], *engine.get("args", [])]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=environment(), cwd=work))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(p.returncode for p in procs):
        raise SystemExit(f"{kind}: a party failed:\n" + "\n".join(o[-1500:] for o in outs))
    elapsed = mpyc_elapsed(outs)
    messages = sum(int(n) for o in outs for n in re.findall(r"^messages=(\d+)", o, re.M))
    return elapsed, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, messages


def mpyc_elapsed(logs: list[str]) -> float:
    """The slowest party's "Stop MPyC -- elapsed time"."""
    return max(int(h) * 3600 + int(m) * 60 + float(s) for log in logs for h, m, s in ELAPSED.findall(log))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--only", default="")
    if sys.argv[1:2] == ["--party"]:  # one party of the bare transport: --party ROOT PID PROGRAM ARGS...
        return bare_party(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
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
        got: dict = {"tcp": [], "bare": [], "files": []}
        for i in range(args.repeat):
            for kind in got:
                work = root / f"{n}-{kind}-{i}"
                if kind == "files":
                    got[kind].append((mpyc_elapsed(syqure_run(job, "files", work)[1]),))
                else:
                    got[kind].append(direct(job, kind, work))
        med = {k: [statistics.median(r[i] for r in v) for i in range(len(v[0]))] for k, v in got.items()}
        t = {k: v[0] for k, v in med.items()}
        rows.append(f"| {name} | {t['tcp']:.3f} | {t['bare']:.3f} | {t['files']:.3f} | {t['bare'] / t['tcp']:.2f}x "
                    f"| {t['files'] / t['tcp']:.2f}x | {t['files'] / t['bare']:.2f}x |")
        messages = med["bare"][3]
        user, system = ((med["bare"][k] - med["tcp"][k]) / messages * 1e6 for k in (1, 2))
        cpus.append(f"| {name} | {messages:.0f} | {sum(med['tcp'][1:3]):.3f} | {sum(med['bare'][1:3]):.3f} "
                    f"| {user:.0f} | {system:.0f} | {user + system:.0f} |")
    print("| job | TCP (s) | bare files (s) | syqure-wf files (s) | bare / TCP | syqure-wf / TCP | syqure-wf / bare |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\n| job | message files | CPU of the parties, TCP (s) | bare files (s) "
          "| bare's more than TCP's per message: user (us) | system (us) | total (us) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(cpus))


if __name__ == "__main__":
    main()
