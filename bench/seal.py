"""The cost of sealing: sealed against plain, in the same run.

    python bench/seal.py [--dir DIR] [--repeat 5] [--syftbox-repeat 3] [--interval 1.0] [--no-syftbox]
                         [--before REV] [--large-size 64] [--large-count 8]

1. The AEAD alone (`cryptography`): AES-256-GCM, which syqure-wf seals
   with, and ChaCha20-Poly1305, which it sealed with before: 1 MiB
   (one-shot, and into a reused buffer as the proxy does) and 16 B.
2. The transport (bench/transport.py's paths, shared layout, Sequre
   framing): the 8 B round trip and 1 MiB frames, through the proxies plain
   and sealed (a run secret: the same sealing as the sites' keys, only the
   key's source differs), interleaved --repeat times; medians and ratios.
   Beside them the round trip's floor: plain proxies (a patched copy of the
   package) that make only the AEAD's calls, one seal per message written
   and one open per message read: what sealing costs at the least with
   `cryptography` called from Python. And sealed by the code before
   streamed sealing (`--before`, a git revision: its package, extracted).
3. Large messages (--large-size, 64 MiB by default) x --large-count one way
   through the proxies: plain, sealed, and sealed by the code before
   (`--before`), interleaved --repeat times; throughput and the peak
   resident memory (VmHWM) of the reading and the writing proxy.
4. The example (examples/allele-counts, 3 parties, `syqure-wf run`) through
   a real SyftBox 0.4 server and three clients on loopback (the tests'
   SyftBoxNet) at --interval: sealed by the sites' keys (the default) and
   `encryption: off`, interleaved --syftbox-repeat times after one sealed
   run that makes and publishes the sites' keys (shown apart); medians.
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

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))  # the real SyftBox net the tests use: server, clients, venv

import transport  # noqa: E402


def aead_table() -> list[str]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    data, small, nonce, aad = bytearray(os.urandom(1 << 20)), os.urandom(16), os.urandom(12), b"run|1->0|12345"
    rows = []
    for name, cls in (("AES-256-GCM", AESGCM), ("ChaCha20-Poly1305", ChaCha20Poly1305)):
        aead = cls(os.urandom(32))
        out = bytearray(len(data) + 16)
        sealed = aead.encrypt(nonce, data, aad)
        plain = bytearray(len(data))

        def rate(fn, n=200) -> float:
            fn()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            return n * len(data) / (time.perf_counter() - t) / 1e9

        def each(fn, n=20000) -> float:
            t = time.perf_counter()
            for _ in range(n):
                fn()
            return (time.perf_counter() - t) / n * 1e6

        rows.append(f"| {name} | {rate(lambda: aead.encrypt(nonce, data, aad)):.2f} "
                    f"| {rate(lambda: aead.encrypt_into(nonce, data, aad, out)):.2f} "
                    f"| {rate(lambda: aead.decrypt_into(nonce, sealed, aad, plain)):.2f} "
                    f"| {each(lambda: aead.encrypt(nonce, small, aad)):.2f} |")
    return ["| AEAD | seal 1 MiB (GB/s) | seal 1 MiB into a reused buffer (GB/s) | open 1 MiB into a buffer (GB/s) "
            "| seal 16 B (us) |", "| --- | --- | --- | --- | --- |", *rows]


# The floor: a copy of the package whose plain proxies make exactly the AEAD
# calls that sealing makes on a small message's path (one seal per message
# written, one open per message read), and nothing else of the sealing.
_AEAD = ("from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM\n"
         "_AEAD, _AAD = _AESGCM(bytes(32)), b'run|0->1|5'\n"
         "_SEAL, _OPEN, _OUT = _AEAD.encrypt_into, _AEAD.decrypt_into, bytearray(32)\n"
         "_SEALED = _AEAD.encrypt(bytes(12), bytes(16), _AAD)\n")
FLOOR_PATCH = {  # file: [(text, the text that replaces it)]
    "transport/link.py": [
        ("from .protocol.outbound import Outbox\n", "from .protocol.outbound import Outbox\n" + _AEAD),
        ("                self.msg.commit(self._placed)\n",
         "                _SEAL(bytes(12), bytes(16), _AAD, _OUT)\n                self.msg.commit(self._placed)\n"),
    ],
    "transport/channel.py": [
        ("log = logging.getLogger(__name__)\n", "log = logging.getLogger(__name__)\n" + _AEAD),
        ("            if isinstance(content, bytearray):\n",
         "            if isinstance(content, bytearray):\n"
         "                _OPEN(bytes(12), _SEALED, _AAD, bytearray(16))\n"),
    ],
}


def aead_floor_copy(workdir: Path) -> Path:
    """The package, copied into ``workdir`` and patched as FLOOR_PATCH says."""
    import shutil

    copy = Path(tempfile.mkdtemp(prefix="floor-", dir=workdir))
    shutil.copytree(REPO / "syqure_wf", copy / "syqure_wf", ignore=shutil.ignore_patterns("__pycache__"))
    for name, edits in FLOOR_PATCH.items():
        path = copy / "syqure_wf" / name
        text = path.read_text()
        for old, new in edits:
            if text.count(old) != 1:
                sys.exit(f"bench/seal.py: the floor's patch no longer fits {name} ({old.strip()!r}): "
                         "update FLOOR_PATCH")
            text = text.replace(old, new)
        path.write_text(text)
    return copy


BEFORE = "6e0af8a"  # the last commit before sealing in segments and sealed ends (issue 31)


def before_copy(workdir: Path, rev: str) -> Path:
    """The package as it was at ``rev``, extracted into ``workdir``."""
    copy = Path(tempfile.mkdtemp(prefix="before-", dir=workdir))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "syqure_wf"], capture_output=True,
                             timeout=60)
    if archive.returncode != 0:
        sys.exit(f"bench/seal.py: cannot read revision {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True, timeout=60)
    return copy


def transport_table(workdir: Path, repeat: int, rounds: int, before: Path) -> list[str]:
    floor_code = aead_floor_copy(workdir)
    rt = {False: [], True: [], "floor": [], "before": []}
    mb = {False: [], True: []}
    for _ in range(repeat):
        for sealed in (False, True):
            rt[sealed].append(transport.round_trip("proxy", workdir, rounds, sealed=sealed))
            mb[sealed].append(transport.throughput("proxy", workdir, 1 << 20, 400, sealed=sealed)[0])
        rt["floor"].append(transport.round_trip("proxy", workdir, rounds, code=floor_code))
        rt["before"].append(transport.round_trip("proxy", workdir, rounds, code=before, sealed=True))
    med = {k: statistics.median(v) for k, v in rt.items()}
    thr = {k: statistics.median(v) for k, v in mb.items()}

    def runs(values, fmt):
        return ", ".join(fmt.format(v) for v in values)

    return ["| measure | plain | sealed | sealed / plain | runs (plain; sealed) |", "| --- | --- | --- | --- | --- |",
            f"| 8 B round trip through the proxies, median of medians (ms) | {med[False]:.3f} | {med[True]:.3f} "
            f"| {med[True] / med[False]:.3f} | {runs(rt[False], '{:.3f}')}; {runs(rt[True], '{:.3f}')} |",
            f"| 8 B round trip, plain proxies making only the AEAD's calls (the floor; ms) | {med[False]:.3f} "
            f"| {med['floor']:.3f} | {med['floor'] / med[False]:.3f} | {runs(rt[False], '{:.3f}')}; "
            f"{runs(rt['floor'], '{:.3f}')} |",
            f"| 8 B round trip, sealed by the code before (`--before`; ms) | {med[False]:.3f} "
            f"| {med['before']:.3f} | {med['before'] / med[False]:.3f} | {runs(rt[False], '{:.3f}')}; "
            f"{runs(rt['before'], '{:.3f}')} |",
            f"| 1 MiB frames x 400 through the proxies (MB/s) | {thr[False]:.0f} | {thr[True]:.0f} "
            f"| {thr[True] / thr[False]:.3f} | {runs(mb[False], '{:.0f}')}; {runs(mb[True], '{:.0f}')} |"]


def peak_mib(pid: int) -> float:
    """The peak resident memory of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def large_run(workdir: Path, size: int, count: int, sealed: bool, code: Path | None) -> tuple[float, float, float]:
    """MB/s of ``count`` frames of ``size`` bytes one way, and the peak MiB of
    the reading and the writing proxy."""
    path = transport.Path2("proxy", workdir, "sink", count, sealed=sealed, code=code)
    try:
        s = transport.connect(path.client_port)
        payload, header = os.urandom(size), transport.HEADER.pack(size)
        t = time.perf_counter()
        for _ in range(count):
            s.sendall(header)
            s.sendall(payload)
        transport.recv_exact(s, 10)
        seconds = time.perf_counter() - t
        reader, writer = (peak_mib(p.pid) for p in path.procs[1:3])  # proxy 0 reads, proxy 1 writes
        s.close()
        return size * count / seconds / 1e6, reader, writer
    finally:
        path.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def round_trip_cpu(workdir: Path, rounds: int, sealed: bool, code: Path | None) -> tuple[float, float]:
    """The median 8 B round trip (ms) and the CPU both proxies spent per round trip (us):
    CPU time barely moves with the load of a shared machine, wall time does."""
    path = transport.Path2("proxy", workdir, "echo", 0, sealed=sealed, code=code)
    try:
        s = transport.connect(path.client_port)
        frame = transport.HEADER.pack(8) + b"pingpong"
        for _ in range(50):  # warm up
            s.sendall(frame)
            transport.recv_exact(s, 16)
        proxies = [p.pid for p in path.procs[1:3]]
        cpu0 = sum(cpu_seconds(p) for p in proxies)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            s.sendall(frame)
            transport.recv_exact(s, 16)
            times.append(time.perf_counter() - t)
        cpu = sum(cpu_seconds(p) for p in proxies) - cpu0
        s.close()
        return statistics.median(times) * 1e3, cpu / rounds * 1e6
    finally:
        path.close()


def cpu_table(workdir: Path, repeat: int, rounds: int, before: Path) -> list[str]:
    kinds = {"plain": (False, None), "sealed": (True, None), "sealed, the code before": (True, before)}
    got = {k: [] for k in kinds}
    for i in range(repeat):
        for kind in (list(kinds) if i % 2 == 0 else list(reversed(kinds))):
            got[kind].append(round_trip_cpu(workdir, rounds, *kinds[kind]))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in got.items()}
    rows = [f"8 B round trips through two proxies (shared layout), {rounds} per run, {repeat} interleaved runs, "
            "medians", "", "| path | round trip (ms) | / plain | both proxies' CPU per round trip (us) | / plain "
            "| runs (CPU us) |", "| --- | --- | --- | --- | --- | --- |"]
    for kind, (ms, cpu) in med.items():
        rows.append(f"| {kind} | {ms:.3f} | {ms / med['plain'][0]:.3f} | {cpu:.0f} | {cpu / med['plain'][1]:.3f} "
                    f"| {', '.join(f'{r[1]:.0f}' for r in got[kind])} |")
    return rows


def large_table(workdir: Path, repeat: int, size: int, count: int, before: Path) -> list[str]:
    kinds = {"plain": (False, None), "sealed": (True, None), "sealed, the code before": (True, before)}
    got = {k: [] for k in kinds}
    for i in range(repeat):
        order = list(kinds) if i % 2 == 0 else list(reversed(kinds))
        for kind in order:
            got[kind].append(large_run(workdir, size, count, *kinds[kind]))
    med = {k: [statistics.median(r[j] for r in v) for j in range(3)] for k, v in got.items()}
    plain = med["plain"][0]
    rows = [f"{count} frames of {size >> 20} MiB one way through two proxies (shared layout, Sequre framing), "
            f"{repeat} interleaved runs, medians", "",
            "| path | MB/s | / plain | reading proxy's peak RSS (MiB) | writing proxy's peak RSS (MiB) "
            "| runs (MB/s) |", "| --- | --- | --- | --- | --- | --- |"]
    for kind, (mbs, reader, writer) in med.items():
        rows.append(f"| {kind} | {mbs:.0f} | {mbs / plain:.3f} | {reader:.0f} | {writer:.0f} "
                    f"| {', '.join(f'{r[0]:.0f}' for r in got[kind])} |")
    return rows


def syftbox_table(root: Path, repeat: int, interval: float) -> list[str]:
    from conftest import PY, Procs
    from test_syftbox_real import EMAILS, SyftBoxNet, job_config

    procs = Procs()
    try:
        net = SyftBoxNet(procs, root / "syftbox", EMAILS, interval)

        def run(name: str, sealed: bool) -> tuple[float, int]:
            folder = root / name
            folder.mkdir()
            path = job_config(folder, net, f"{name}-{int(time.time())}")
            if not sealed:
                cfg = yaml.safe_load(path.read_text())
                cfg["encryption"] = "off"
                path.write_text(yaml.safe_dump(cfg))
            done = subprocess.run([PY, "-m", "syqure_wf", "run", "--config", str(path), "--json", "--quiet"],
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
            summary = json.loads(done.stdout)
            messages = sum(c["sent_messages"] for p in summary["parties"] for c in p["channels"].values())
            return summary["seconds"], messages

        first, _ = run("first", True)
        times = {True: [], False: []}
        messages = 0
        for i in range(repeat):
            for sealed in (False, True) if i % 2 == 0 else (True, False):
                seconds, messages = run(f"{'sealed' if sealed else 'plain'}-{i}", sealed)
                times[sealed].append(seconds)
        plain, sealed = statistics.median(times[False]), statistics.median(times[True])
        return [f"SyftBox sync interval {interval:g} s; {messages} messages per run; the first sealed run "
                f"(each site's key made and published, then synced to the others): {first:.1f} s", "",
                "| example over SyftBox | plain (`encryption: off`) | sealed (sites' keys) | sealed / plain "
                "| runs (plain; sealed) |", "| --- | --- | --- | --- | --- |",
                f"| wall time of `syqure-wf run` (s), median | {plain:.1f} | {sealed:.1f} | {sealed / plain:.3f} | "
                f"{', '.join(f'{t:.1f}' for t in times[False])}; {', '.join(f'{t:.1f}' for t in times[True])} |"]
    finally:
        procs.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="folder for the message files (default: a temp folder)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--syftbox-repeat", type=int, default=3)
    ap.add_argument("--interval", type=float, default=1.0, help="SyftBox sync interval (1 s: the stock one)")
    ap.add_argument("--no-syftbox", action="store_true")
    ap.add_argument("--before", default=BEFORE, help=f"git revision of the code to compare with (default {BEFORE})")
    ap.add_argument("--large-size", type=int, default=64, help="MiB per large frame")
    ap.add_argument("--large-count", type=int, default=8)
    ap.add_argument("--only-large", action="store_true", help="only the large messages' table")
    ap.add_argument("--only-cpu", action="store_true", help="only the small messages' CPU table")
    ap.add_argument("--cpu-rounds", type=int, default=3000)
    args = ap.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="syqure-seal-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {transport.machine()}; message folder on {transport.fs_of(workdir)} ({workdir})\n")
    before = before_copy(workdir, args.before)
    if args.only_cpu:
        print("\n".join(cpu_table(workdir, args.repeat, args.cpu_rounds, before)))
        return
    if args.only_large:
        print("\n".join(large_table(workdir, args.repeat, args.large_size << 20, args.large_count, before)))
        return
    print("\n".join(aead_table()) + "\n")
    print("\n".join(transport_table(workdir, args.repeat, args.rounds, before)) + "\n")
    print("\n".join(cpu_table(workdir, args.repeat, args.cpu_rounds, before)) + "\n")
    print("\n".join(large_table(workdir, args.repeat, args.large_size << 20, args.large_count, before)) + "\n")
    if not args.no_syftbox:
        print("\n".join(syftbox_table(Path(tempfile.mkdtemp(prefix="syqure-seal-sbx-")), args.syftbox_repeat,
                                      args.interval)))


if __name__ == "__main__":
    main()
