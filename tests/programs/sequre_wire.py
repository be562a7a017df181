"""A party that speaks Sequre's wire protocol, for transport tests.

Lower pid listens (one connection, like Sequre), higher pid connects with
retries. Each party sends COUNT frames to each peer: 8-byte LE length and
payload as two writes; party 0 (the dealer) merges several frames into one
write. Every received frame is checked against what the peer must have sent.
Usage: sequre_wire.py PID PARTIES PORT_BASE COUNT [MAX_BYTES]
PORT_BASE "env" reads $SEQURE_PORT_BASE, as a Sequre build does; peers are
reached at the addresses of $SEQURE_CP_IPS when it is set.
"""
import os
import asyncio
import hashlib
import random
import struct
import sys


def offset(a, b, n):
    a, b = min(a, b), max(a, b)
    return a * n - a * (a + 1) // 2 + (b - a)


def frames(src, dst, count, max_bytes):
    rng = random.Random(f"{src}->{dst}")
    for i in range(count):
        r = rng.random()
        size = (0 if r < 0.05 else rng.randrange(1, 1024) if r < 0.7
                else rng.randrange(1024, 256 << 10) if r < 0.95 else rng.randrange(256 << 10, max_bytes))
        block = hashlib.sha256(f"{src}/{dst}/{i}".encode()).digest() * 2
        yield (block * (size // 64 + 1))[:size]


async def send_all(writer, me, peer, count, max_bytes):
    batch = []
    for payload in frames(me, peer, count, max_bytes):
        header = struct.pack("<q", len(payload))
        if me == 0:  # the dealer flushes several frames at once
            batch += [header, payload]
            if len(batch) >= 8:
                writer.write(b"".join(batch))
                batch = []
        else:
            writer.write(header)
            await writer.drain()
            writer.write(payload)
        await writer.drain()
    if batch:
        writer.write(b"".join(batch))
        await writer.drain()


async def recv_all(reader, me, peer, count, max_bytes):
    for i, expected in enumerate(frames(peer, me, count, max_bytes)):
        (length,) = struct.unpack("<q", await reader.readexactly(8))
        data = await reader.readexactly(length) if length else b""
        if data != expected:
            raise SystemExit(f"party {me}: frame {i} from {peer} differs "
                             f"({length} bytes, expected {len(expected)})")
    return count


async def channel(me, peer, n, base, count, max_bytes):
    port = base + offset(me, peer, n)
    if me < peer:
        accepted = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda r, w: accepted.done() or accepted.set_result((r, w)),
                                            "127.0.0.1", port)
        reader, writer = await accepted
        server.close()
    else:
        for _ in range(600):
            try:
                ips = os.environ.get("SEQURE_CP_IPS")
                host = ips.split(",")[peer] if ips else "127.0.0.1"
                reader, writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"party {me}: cannot reach port {port}")
    _, got = await asyncio.gather(send_all(writer, me, peer, count, max_bytes),
                                  recv_all(reader, me, peer, count, max_bytes))
    writer.close()
    return got


async def main():
    if sys.argv[3] == "env":
        sys.argv[3] = os.environ["SEQURE_PORT_BASE"]
    me, n, base, count = map(int, sys.argv[1:5])
    max_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 6 << 20
    got = await asyncio.gather(*(channel(me, p, n, base, count, max_bytes) for p in range(n) if p != me))
    print(f"party {me}: received {sum(got)} frames, all byte-exact")


if __name__ == "__main__":  # imported by the in-process tests for its parties
    asyncio.run(main())
