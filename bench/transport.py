"""Transport benchmark: direct TCP against the file proxies, in one run.

    python bench/transport.py [--dir DIR] [--rounds 300] [--quick]

Two parties speak Sequre framing: party 0 (a subprocess) echoes frames or
sinks them; party 1 (this process) times round trips and throughput. Each
path is measured in the same run, so the ratios compare like with like on a
noisy machine: direct TCP, the proxies, the proxies polling, and the
proxies sealing every message (a run secret: the same sealing as the sites'
keys, bench/seal.py). Prints a Markdown table.

The proxies get a run id, as `syqure-wf run` gives them: they run in seed
mode (`--start-timeout 0`, no status records needed from peers), and in seed
mode without a run id a proxy cannot tell a live peer's first message, written
before it started, from a dead run's leftover: it refuses both ("holds 2
message file(s) of an earlier run"). With one run id it delivers the first
and still refuses a message stamped with another run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HEADER = struct.Struct("<q")
PY = sys.executable


def recv_exact(sock: socket.socket, n: int, buf: bytearray | None = None) -> memoryview:
    buf = buf if buf is not None and len(buf) >= n else bytearray(n)
    view = memoryview(buf)[:n]
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise ConnectionError("peer closed")
        got += k
    return view


def serve(port: int, mode: str, count: int) -> None:
    """Party 0: listen once (like Sequre), then echo or sink frames."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    conn, _ = srv.accept()
    srv.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(1 << 20)
    try:
        while mode == "drain":
            if not conn.recv_into(buf):
                return
        while True:
            (n,) = HEADER.unpack(recv_exact(conn, 8))
            if len(buf) < n:
                buf = bytearray(n)
            data = recv_exact(conn, n, buf) if n else b""
            if mode == "echo":
                conn.sendall(HEADER.pack(n) + bytes(data))
            else:
                count -= 1
                if count == 0:
                    conn.sendall(HEADER.pack(2) + b"ok")
                    count = -1
    except ConnectionError:
        pass


def connect(port: int, timeout: float = 30) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(120)  # a stalled path fails the benchmark instead of hanging it
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def free_base() -> int:
    from syqure_wf.sites.partyconfig import free_base as block  # below hand-started runs and the ephemeral range

    return block(4)


class Path2:
    """One path between the two parties: direct, or through two proxies.
    ``seen_from``: the folder each proxy sees the message folder of
    ``workdir`` through (the same files: views of one mount, as two hosts
    see an NFS export); ``env`` and ``code`` (a folder holding another
    version's syqure_wf package) go to the proxies."""

    def __init__(self, kind: str, workdir: Path, mode: str, count: int, poll_ms=None, framing="sequre",
                 seen_from: tuple[Path, Path] | None = None, env: dict | None = None, code: Path | None = None,
                 sealed: bool = False):
        self.procs: list[subprocess.Popen] = []
        self.data = None
        b0, b1 = free_base(), free_base()
        party0_port = b0 + 1
        self.procs.append(subprocess.Popen([PY, __file__, "--serve", str(party0_port), mode, str(count)]))
        if kind == "direct":
            self.client_port = party0_port
            return
        self.data = Path(tempfile.mkdtemp(prefix="bench-", dir=workdir))
        dirs = [view / self.data.relative_to(workdir) for view in seen_from] if seen_from else [self.data] * 2
        extra = ["--framing", framing, "--start-timeout", "0", "--run-id", f"bench-{uuid.uuid4().hex[:12]}"]
        extra += ["--poll-ms", str(poll_ms)] if poll_ms else []
        if sealed:
            secret = self.data.with_suffix(".secret")
            secret.write_text(os.urandom(32).hex())
            extra += ["--secret-file", str(secret)]
        env = {**os.environ, **(env or {})}
        if code:  # PYTHONPATH comes before an editable install's finder; the folder run from, before it
            env["PYTHONPATH"] = str(code)
        for pid, base in ((0, b0), (1, b1)):
            self.procs.append(subprocess.Popen(
                [PY, "-m", "syqure_wf", "proxy", "--pid", str(pid), "--parties", "2", "--data-dir",
                 str(dirs[pid]), "--base-port", str(base), "--sequre-base-port", str(base), *extra],
                stderr=subprocess.DEVNULL, env=env, cwd=code))
        self.client_port = b1 + 1

    def proxy_messages(self) -> int:
        """Message files party 1's proxy wrote (from its status record)."""
        if self.data is None:
            return 0
        record = json.loads((self.data / "status" / "party-1.json").read_text())
        return sum(ch["sent_messages"] for ch in record["channels"].values())

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.with_suffix(".secret").unlink(missing_ok=True)


def round_trip(kind, workdir, rounds, poll_ms=None, warm_up=20, **where) -> float:
    """Median of ``rounds`` 8-byte round trips, in ms (``where``: Path2's seen_from, env, code, sealed)."""
    path = Path2(kind, workdir, "echo", 0, poll_ms, **where)
    try:
        s = connect(path.client_port)
        frame = HEADER.pack(8) + b"pingpong"
        times = []
        for i in range(rounds + warm_up):
            t = time.perf_counter()
            s.sendall(frame)
            recv_exact(s, 16)
            if i >= warm_up:
                times.append(time.perf_counter() - t)
        s.close()
        return statistics.median(times) * 1e3
    finally:
        path.close()


def throughput(kind, workdir, size, count, sealed=False) -> tuple[float, float]:
    """MB/s for ``count`` frames of ``size`` bytes one way, and files per frame."""
    path = Path2(kind, workdir, "sink", count, sealed=sealed)
    try:
        s = connect(path.client_port)
        payload = os.urandom(size)
        header = HEADER.pack(size)
        # a first frame settles the connection before the clock starts
        t = time.perf_counter()
        for _ in range(count):
            s.sendall(header)
            s.sendall(payload)
        recv_exact(s, 10)
        seconds = time.perf_counter() - t
        files = path.proxy_messages() / count if kind != "direct" else 0
        s.close()
        time.sleep(1.2)  # let the status record catch up for the file count
        files = path.proxy_messages() / count if kind != "direct" else 0
        return size * count / seconds / 1e6, files
    finally:
        path.close()


def stream_coalescing(workdir, writes=2000, size=100) -> tuple[int, int]:
    """Socket writes against files written under stream framing."""
    path = Path2("proxy", workdir, "drain", 0, framing="stream")
    try:
        s = connect(path.client_port)
        for _ in range(writes):
            s.send(b"x" * size)
        time.sleep(2.5)  # the proxy's status record is rewritten every second
        return writes, path.proxy_messages()
    finally:
        path.close()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def fs_of(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, timeout=5).stdout
        return out.splitlines()[1].split()[1]
    except Exception:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="folder for the message files (default: a temp folder)")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], int(args.serve[2]))
        return
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="syqure-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rounds = 50 if args.quick else args.rounds
    big = (8 << 20, 4) if args.quick else (64 << 20, 8)
    small = (1 << 20, 64) if args.quick else (1 << 20, 400)

    rows = []
    direct = round_trip("direct", workdir, rounds)
    events = round_trip("proxy", workdir, rounds)
    polled = round_trip("proxy", workdir, min(rounds, 100), poll_ms=10)
    sealed = round_trip("proxy", workdir, rounds, sealed=True)
    rows.append(("8 B round trip, median (ms)", f"{direct:.3f}", f"{events:.3f}", f"{polled:.2f}", f"{sealed:.3f}",
                 f"{events / direct:.0f}x TCP; {polled / events:.0f}x faster than 10 ms poll; "
                 f"sealed {sealed / events:.2f}x"))
    for size, count in (small, big):
        d, _ = throughput("direct", workdir, size, count)
        p, files = throughput("proxy", workdir, size, count)
        ps, _ = throughput("proxy", workdir, size, count, sealed=True)
        rows.append((f"{size >> 20} MiB frames x {count}, MB/s", f"{d:.0f}", f"{p:.0f}", "", f"{ps:.0f}",
                     f"{p / d:.2f} of TCP; {files:.2f} files per frame; sealed {ps / p:.2f}x"))
    writes, files = stream_coalescing(workdir)
    rows.append(("stream framing: 2000 socket writes of 100 B", "", f"{files} files", "", "",
                 f"{files / writes:.3f} files per write"))

    print(f"Machine: {machine()}; message folder on {fs_of(workdir)} ({workdir})\n")
    print("| measure | direct TCP | proxies (file events) | proxies (--poll-ms 10) | proxies, sealed | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
