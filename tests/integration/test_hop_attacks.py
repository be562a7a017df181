"""Attacks on a run's transport at the integration level (issue 31), in the
default run: real `Proxy` objects in one loop, the test as both parties, on
a temporary folder, and a real intruder process. The same attacks through
processes: tests/system/test_localhop_attacks.py, test_sealed_ends.py,
test_inproc.py."""
from __future__ import annotations

import asyncio
import os
import sys

from conftest import free_base
from proxies import frame

from syqure_wf.transport.proxy import Proxy
from syqure_wf.transport.settings import ProxySettings

BOUND = 60  # seconds any one test may take, everything included
PORT = 1  # channel 0-1's port offset (of 2 parties)

# Another process of this machine (the same user, not of the party's process
# tree: it leaves it by forking once more): connects to a port, sends a frame,
# and writes every byte it received until closed (or 3 s) to a file.
INTRUDER = """
import os, socket, struct, sys, time
if os.fork():
    os._exit(0)
end = time.monotonic() + 10
while True:  # until the proxy listens
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        break
    except ConnectionRefusedError:
        if time.monotonic() > end:
            raise
        time.sleep(0.02)
try:
    s.sendall(struct.pack("<q", 4) + b"EVIL")
except OSError:
    pass
got, end = b"", time.monotonic() + 3
s.settimeout(0.2)
while time.monotonic() < end:
    try:
        chunk = s.recv(1 << 16)
    except socket.timeout:
        continue
    except OSError:
        break
    if not chunk:
        break
    got += chunk
open(sys.argv[2] + ".tmp", "wb").write(got)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
"""


def settings(pid: int, data, base: int, **extra) -> ProxySettings:
    return ProxySettings(pid=pid, parties=2, data_dir=str(data), base_port=base, party_base_port=base,
                         run_id="attacked", linger=0.3, heartbeat=0.2, start_timeout=0, **extra)


async def party0(base: int, got: list[bytes], says: bytes = b"") -> asyncio.Server:
    """Party 0 listens (Sequre's rule), says ``says`` and records what reaches it."""
    async def on(reader, writer):
        writer.write(says)
        while chunk := await reader.read(1 << 16):
            got.append(chunk)
        writer.close()

    return await asyncio.start_server(on, "127.0.0.1", base + PORT)


async def dial(port: int, run: asyncio.Future):
    while True:
        assert not run.done(), run.exception()
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)


async def intrude(port: int, out) -> bytes:
    """What an intruder (INTRUDER) received, connected to ``port``."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", INTRUDER, str(port), str(out))
    await asyncio.wait_for(proc.wait(), 20)
    for _ in range(1000):  # 20 s
        if out.exists():
            return out.read_bytes()
        await asyncio.sleep(0.02)
    raise AssertionError(f"the intruder connecting to {port} wrote nothing in 20 s")


def test_connections_before_and_beside_the_party_get_and_give_nothing(tmp_path):
    """Proxy 1 is told its party's process (this one). Another process
    connects to its channel before the party, then beside it: each is
    refused, receives none of party 0's bytes and sends none to it; the
    party's own connection carries both ways; two refusals are counted."""
    data, b0, b1 = tmp_path / "msgs", free_base(), free_base()
    got: list[bytes] = []
    proxies = [Proxy(settings(0, data, b0)), Proxy(settings(1, data, b1, party_pid=os.getpid()))]

    async def main():
        server = await party0(b0, got, says=frame(b"SHARE-OF-PARTY-0"))
        runs = [asyncio.ensure_future(p.run()) for p in proxies]
        try:
            before = await intrude(b1 + PORT, tmp_path / "before")
            reader, writer = await dial(b1 + PORT, runs[1])
            received = await asyncio.wait_for(reader.readexactly(len(frame(b"SHARE-OF-PARTY-0"))), BOUND)
            beside = await intrude(b1 + PORT, tmp_path / "beside")
            writer.write(frame(b"mine"))
            await writer.drain()
            writer.close()
            summaries = await asyncio.wait_for(asyncio.gather(*runs), BOUND)
            return before, beside, received, summaries
        finally:
            for run in runs:
                run.cancel()
            server.close()

    before, beside, received, summaries = asyncio.run(main())
    assert before == b"" and beside == b"", (before, beside)
    assert received == frame(b"SHARE-OF-PARTY-0")
    assert b"".join(got) == frame(b"mine")
    assert summaries[1]["channels"]["0-1"]["refused"] >= 2, summaries[1]


def test_a_planted_end_neither_truncates_nor_splices_a_sealed_stream(tmp_path):
    """Ends of stream are sealed messages: unsealed `.end` files planted in
    the slots party 0's reader waits on (as a sync server or a user of the
    folder could) end nothing; party 1's frames all arrive on one
    connection, then its own sealed end."""
    data, b0, b1, secret = tmp_path / "msgs", free_base(), free_base(), os.urandom(32)
    got: list[bytes] = []
    proxies = [Proxy(settings(p, data, (b0, b1)[p], secret=secret)) for p in range(2)]
    frames = [b"SHARE-%d" % i * 1000 for i in range(3)]

    async def main():
        server = await party0(b0, got)
        runs = [asyncio.ensure_future(p.run()) for p in proxies]
        try:
            reader, writer = await dial(b1 + PORT, runs[1])
            inbox = data / "1_to_0"
            while not (inbox / ".run").exists():
                await asyncio.sleep(0.02)
            for seq in (0, 1, 2):
                (inbox / f"{seq:08d}.end").write_bytes(b"")
            await asyncio.sleep(0.5)  # the reader has looked at planted slot 0
            for payload in frames:
                writer.write(frame(payload))
            await writer.drain()
            writer.close()
            return await asyncio.wait_for(asyncio.gather(*runs), BOUND)
        finally:
            for run in runs:
                run.cancel()
            server.close()

    summaries = asyncio.run(main())
    assert b"".join(got) == b"".join(frame(p) for p in frames)
    assert summaries[0]["channels"]["0-1"]["connections"] == 1, summaries[0]
