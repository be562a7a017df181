"""Soak: more than a gigabyte through two proxies, with their memory sampled.

    python bench/soak.py [--dir DIR] [--gib 1.2]

For 64 MiB and 1 MiB Sequre frames, prints the resident memory (RSS) of the
sending and the receiving proxy at the start, its maximum, and at the end:
flat means no growth with the number of messages.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from transport import HEADER, Path2, connect, recv_exact


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(workdir: Path, size: int, count: int) -> dict:
    path = Path2("proxy", workdir, "sink", count)
    proxies = {"receiver (party 0)": path.procs[1].pid, "sender (party 1)": path.procs[2].pid}
    samples = {name: [] for name in proxies}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for name, pid in proxies.items():
                try:
                    samples[name].append(rss_mib(pid))
                except OSError:
                    pass
            time.sleep(0.05)

    try:
        sock = connect(path.client_port)
        time.sleep(0.5)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        payload = os.urandom(size)
        t = time.perf_counter()
        for _ in range(count):
            sock.sendall(HEADER.pack(size))
            sock.sendall(payload)
        recv_exact(sock, 10)
        seconds = time.perf_counter() - t
        stop.set()
        sampler.join()
        return {"seconds": seconds, "samples": samples}
    finally:
        stop.set()
        path.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--gib", type=float, default=1.2)
    args = ap.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="syqure-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    total = int(args.gib * (1 << 30))
    print("| frames | bytes | MB/s | proxy | RSS start (MiB) | RSS max (MiB) | RSS end (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in (64 << 20, 1 << 20):
        count = max(1, total // size)
        result = soak(workdir, size, count)
        for name, rss in result["samples"].items():
            head = rss[: max(1, len(rss) // 10)]
            tail = rss[-max(1, len(rss) // 10):]
            print(f"| {count} x {size >> 20} MiB | {size * count / 1e9:.2f} GB | "
                  f"{size * count / result['seconds'] / 1e6:.0f} | {name} | {min(head):.0f} | "
                  f"{max(rss):.0f} | {tail[-1]:.0f} |")


if __name__ == "__main__":
    main()
