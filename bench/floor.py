"""The file hop's floor: what a message costs over the shared layout's
files with nothing but the protocol's own system calls, against asyncio
TCP, in one run (bench/RESULTS.md, "The file hop's floor").

    python bench/floor.py [--rounds 5000] [--repeat 3]

Two processes play ping-pong with 8-byte messages, each on an asyncio loop:
over TCP (one connection, ``asyncio.Protocol``), and over a folder with the
calls of one message of the shared layout (``transport/shared.py``) and no
other Python: the writer fills a pooled file, renames it in and links its
``.ready`` marker; the reader, woken by inotify, finds the marker, opens,
reads and judges nothing, removes the marker, moves the file to its pool,
and looks for the next slot (its marker, its end marker). No session, no
framing, no MPyC: the least this protocol costs in Python. CPU is each
process's (user, system) over its rounds, start-up excluded; per message,
both processes' CPU over the messages both sent. Medians of --repeat.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MESSAGE = b"x" * 8
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
REWRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def files_party(first: bool, root: str, rounds: int) -> None:
    from asyncinotify import Inotify, Mask

    me, other = ("a", "b") if first else ("b", "a")
    out, inbox, pool = f"{root}/{me}to{other}", f"{root}/{other}to{me}", f"{root}/pool-{me}"
    for folder in (out, inbox, pool):
        os.makedirs(folder, exist_ok=True)
    marker = f"{pool}/marker"
    os.close(os.open(marker, CREATE, 0o600))
    inotify = Inotify()
    os.set_blocking(inotify.fd, False)
    inotify.add_watch(inbox, Mask.CREATE | Mask.ONLYDIR)
    loop = asyncio.new_event_loop()
    done = loop.create_future()
    state = {"out": 0, "in": 0, "got": 0, "kept": 0}
    free: list[str] = []

    def send() -> None:
        seq = state["out"]
        state["out"] += 1
        if free:
            tmp = free.pop()
            fd = os.open(tmp, REWRITE)
            os.fstat(fd)
        else:
            tmp = f"{pool}/new{seq}"
            fd = os.open(tmp, CREATE, 0o600)
        os.write(fd, MESSAGE)
        os.close(fd)
        os.rename(tmp, f"{out}/{seq:08d}.msg")
        os.link(marker, f"{out}/{seq:08d}.ready")

    def arrived() -> None:
        try:
            os.read(inotify.fd, 1 << 16)
        except BlockingIOError:
            return
        look()

    def look() -> None:
        while True:
            seq = state["in"]
            ready = f"{inbox}/{seq:08d}.ready"
            try:
                os.lstat(ready)
            except FileNotFoundError:
                try:
                    os.lstat(f"{inbox}/{seq:08d}.end")
                except FileNotFoundError:
                    return
            path = f"{inbox}/{seq:08d}.msg"
            fd = os.open(path, READ)
            os.read(fd, os.fstat(fd).st_size)
            os.close(fd)
            os.unlink(ready)
            state["kept"] += 1
            kept = f"{pool}/f{state['kept']}"
            os.rename(path, kept)
            free.append(kept)
            state["in"] += 1
            state["got"] += 1
            if state["got"] == rounds:
                if not first:
                    send()
                done.set_result(None)
                return
            send()

    loop.add_reader(inotify.fd, arrived)
    loop.call_soon(look)  # what came before the watch raised no event
    report(loop, done, send if first else None)
    inotify.close()


def tcp_party(first: bool, port: int, rounds: int) -> None:
    loop = asyncio.new_event_loop()
    done = loop.create_future()
    got = [0]

    class Ping(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            got[0] += 1
            if got[0] == rounds:
                if not first:
                    self.transport.write(data)
                done.set_result(None)
                return
            self.transport.write(data)

    if first:
        sock = socket.create_connection(("127.0.0.1", port))
        transport, _ = loop.run_until_complete(loop.create_connection(Ping, sock=sock))
        report(loop, done, lambda: transport.write(MESSAGE))
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        print("listening", flush=True)
        sock, _ = listener.accept()
        listener.close()
        loop.run_until_complete(loop.connect_accepted_socket(Ping, sock))
        report(loop, done, None)


def report(loop, done, start) -> None:
    (u0, s0), t0 = cpu(), time.perf_counter()
    if start is not None:
        start()
    loop.run_until_complete(done)
    (u1, s1), t1 = cpu(), time.perf_counter()
    loop.close()
    print(f"elapsed={t1 - t0:.6f} user={u1 - u0:.6f} sys={s1 - s0:.6f}", flush=True)


def one(kind: str, rounds: int) -> tuple[float, float, float]:
    """(µs a round, µs of user and of system CPU a message) of one ping-pong."""
    with tempfile.TemporaryDirectory(prefix="syqure-floor-") as root:
        if kind == "tcp":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                where = str(s.getsockname()[1])
        else:
            where = root
        cmd = [sys.executable, __file__, "--party", kind, where, str(rounds)]
        second = subprocess.Popen(cmd + ["second"], stdout=subprocess.PIPE, text=True)
        if kind == "tcp":
            assert second.stdout.readline().strip() == "listening"
        first = subprocess.Popen(cmd + ["first"], stdout=subprocess.PIPE, text=True)
        outs = [p.communicate(timeout=300)[0] for p in (first, second)]
        if first.returncode or second.returncode:
            raise SystemExit(f"{kind}: a party failed")
    said = [dict(kv.split("=") for kv in out.split()[-3:]) for out in outs]
    messages = 2 * rounds
    return (float(said[0]["elapsed"]) / rounds * 1e6,
            sum(float(s["user"]) for s in said) / messages * 1e6,
            sum(float(s["sys"]) for s in said) / messages * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--party", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.party:
        kind, where, rounds, role = args.party
        (tcp_party if kind == "tcp" else files_party)(role == "first", int(where) if kind == "tcp" else where,
                                                       int(rounds))
        return
    got: dict = {"tcp": [], "files": []}
    for _ in range(args.repeat):
        for kind in got:
            got[kind].append(one(kind, args.rounds))
    med = {k: [statistics.median(r[i] for r in rs) for i in range(3)] for k, rs in got.items()}
    print(f"| {args.rounds} rounds of 8 B each way | round (us) | CPU us / message: user | system | total "
          "| round / TCP | CPU / TCP's |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, (rnd, user, system) in med.items():
        print(f"| {kind} | {rnd:.0f} | {user:.0f} | {system:.0f} | {user + system:.0f} "
              f"| {rnd / med['tcp'][0]:.2f}x | {(user + system) / sum(med['tcp'][1:]):.2f}x |")
    extra = sum(med["files"][1:]) - sum(med["tcp"][1:])
    print(f"\nThe files' floor costs {extra:.0f} us of CPU a message more than TCP's "
          f"(user {med['files'][1] - med['tcp'][1]:.0f}, system {med['files'][2] - med['tcp'][2]:.0f}).")


if __name__ == "__main__":
    main()
