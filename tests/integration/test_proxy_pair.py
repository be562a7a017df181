"""The transport end to end in one process: real `Proxy` objects, one per
party, in one asyncio loop on a temporary shared folder, carrying the TCP
streams of parties that are coroutines of the same loop (Sequre's wire
protocol, `tests/programs/sequre_wire.py`) over loopback sockets the test
owns. The same rules as tests/system/test_proxy.py proves through
processes, in well under a second each: every frame byte-exact and in
order, one message file per frame, nothing left in the folder, sealed files
unreadable at rest, the sites' keys in the syftbox layout, a silent peer
named, a corrupt file named."""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest

from conftest import PROGRAMS, free_base, message_files
from proxies import frame, put

from syqure_wf.errors import SyqureError
from syqure_wf.transport.proxy import Proxy
from syqure_wf.transport.shared import SharedWriter
from syqure_wf.transport.settings import ProxySettings

spec = importlib.util.spec_from_file_location("sequre_wire", PROGRAMS / "sequre_wire.py")
wire = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wire)

BOUND = 60  # seconds any one test may take, everything included


def settings(pid: int, n: int, data, base: int, run_id: str | None = "pair", **extra) -> ProxySettings:
    return ProxySettings(pid=pid, parties=n, data_dir=str(data), base_port=base, party_base_port=base,
                         run_id=run_id, linger=0.3, heartbeat=0.2, **extra)


async def party(me: int, n: int, base: int, count: int, max_bytes: int) -> int:
    """A Sequre-wire party: COUNT frames to every peer, each received one checked."""
    got = await asyncio.gather(*(wire.channel(me, p, n, base, count, max_bytes) for p in range(n) if p != me))
    return sum(got)


async def run_all(proxies: list[Proxy], parties: list) -> list[dict]:
    """Parties and proxies in this loop until every one ends, bounded."""
    async def everything():
        return await asyncio.gather(*(pr.run() for pr in proxies), *parties)

    return await asyncio.wait_for(everything(), BOUND)


async def connect_party_1(run: asyncio.Future, base: int):
    """Party 1's connection to its proxy, once the proxy listens (its run still going)."""
    while True:
        assert not run.done(), run.exception()
        try:
            return await asyncio.open_connection("127.0.0.1", base + wire.offset(0, 1, 2))
        except OSError:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
@pytest.mark.parametrize("n", [2, 3])
def test_parties_talk_through_proxies_in_one_loop(tmp_path, n, sealed, monkeypatch):
    data, count, max_bytes = tmp_path / "msgs", 60, 300_000
    bases = [free_base() for _ in range(n)]
    secret = {"secret": os.urandom(32)} if sealed else {}
    proxies = [Proxy(settings(p, n, data, bases[p], **secret)) for p in range(n)]
    seen_at_rest: list[bytes] = []
    mark = SharedWriter._mark

    def look_at_rest(writer):  # each message file as the folder holds it, when its marker is made
        seen_at_rest.append((Path(writer.folder) / f"{writer.seq:08d}.msg").read_bytes())
        mark(writer)

    # (a look every few ms missed them all at times: the reader consumes a file in the turn it is marked)
    monkeypatch.setattr(SharedWriter, "_mark", look_at_rest)
    results = asyncio.run(run_all(proxies, [party(p, n, bases[p], count, max_bytes) for p in range(n)]))
    summaries, received = results[:n], results[n:]
    assert received == [count * (n - 1)] * n  # every frame byte-exact, in order (sequre_wire checks)
    for summary in summaries:
        for ch in summary["channels"].values():  # one message file per frame, each way
            assert ch["sent_messages"] == count and ch["received_messages"] == count, summary
    assert message_files(data) == []
    assert seen_at_rest, "no message file was seen during the run"
    # the frames' plaintext (sequre_wire's blocks: a digest per frame) at rest only when not sealed
    blocks = [hashlib.sha256(f"{a}/{b}/{i}".encode()).digest() for a in range(n) for b in range(n) if a != b
              for i in range(count)]
    assert any(block in raw for raw in seen_at_rest for block in blocks) is not sealed


def test_a_peer_that_goes_silent_is_named(tmp_path):
    """Proxy 0 stops (its task cancelled: no more heartbeats, its party's
    socket open): proxy 1 fails after the peer bound, naming party 0."""
    data, bases = tmp_path / "msgs", [free_base(), free_base()]
    proxies = [Proxy(settings(p, 2, data, bases[p], peer_timeout=1.0)) for p in range(2)]

    async def main():
        listening = asyncio.Event()
        accepted = []

        async def party0():  # listens, takes its proxy's dial, then says nothing
            server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1",
                                                bases[0] + wire.offset(0, 1, 2))
            listening.set()
            await asyncio.sleep(BOUND)
            server.close()

        p0 = asyncio.ensure_future(party0())
        await listening.wait()
        first = asyncio.ensure_future(proxies[0].run())
        second = asyncio.ensure_future(proxies[1].run())
        await asyncio.sleep(1.0)  # both running, each has seen the other beat
        assert not second.done() and not first.done()
        first.cancel()
        try:
            with pytest.raises(SyqureError) as failed:
                await asyncio.wait_for(second, BOUND)
            return str(failed.value)
        finally:
            p0.cancel()
            for w in accepted:
                w.close()

    reason = asyncio.run(main())
    assert "party 0" in reason and "heartbeat" in reason, reason


@pytest.mark.parametrize("case,words", [
    ("negative", "negative length"),
    ("too long", "above the maximum"),
    ("trailing", "longer than its header"),
    ("directory", "a directory"),
])
def test_a_corrupt_message_file_fails_the_run_naming_it(tmp_path, case, words):
    """Proxy 1 of 2 on its own (no run id, no peer status checked), the test
    holding party 1's socket and writing the inbox as party 0's writer would:
    a good message, then a bad one. The good one is delivered once, nothing of
    the bad one, and the run fails naming its file."""
    data, base = tmp_path / "msgs", free_base()
    proxy = Proxy(settings(1, 2, data, base, run_id=None, start_timeout=0, max_message=1000))
    inbox = data / "0_to_1"

    async def main():
        run = asyncio.ensure_future(proxy.run())
        reader, writer = await connect_party_1(run, base)
        put(inbox, 0, b"good")
        if case == "negative":
            put(inbox, 1, b"", length=-3)
        elif case == "too long":
            put(inbox, 1, b"x" * 10, length=5000)
        elif case == "trailing":
            put(inbox, 1, b"abc", extra=b"surplus")
        else:
            (inbox / "00000001.msg").mkdir()
            (inbox / "00000001.ready").touch()
        try:
            with pytest.raises(SyqureError) as failed:
                await asyncio.wait_for(run, BOUND)
            return str(failed.value), await asyncio.wait_for(reader.read(), BOUND)
        finally:
            writer.close()

    reason, received = asyncio.run(main())
    assert "00000001.msg" in reason and words in reason and "channel 0-1" in reason, reason
    assert received == frame(b"good")


def test_an_end_of_stream_that_cannot_be_written_fails_the_run_naming_the_outbox(tmp_path):
    """Party 1 ends its stream while its outbox cannot take the end marker
    (the folder gone): the run fails at once with one
    error naming the outbox, as a message that cannot be written does; not
    an exception in a callback and a proxy that waits on for ever."""
    data, base = tmp_path / "msgs", free_base()
    proxy = Proxy(settings(1, 2, data, base, run_id=None, start_timeout=0))
    outbox = data / "1_to_0"

    async def main():
        run = asyncio.ensure_future(proxy.run())
        _, writer = await connect_party_1(run, base)
        for f in outbox.iterdir():
            f.unlink()
        outbox.rmdir()
        writer.close()
        with pytest.raises(SyqureError) as failed:
            await asyncio.wait_for(run, 10)
        return str(failed.value)

    reason = asyncio.run(main())
    assert str(outbox) in reason and "channel 0-1" in reason, reason


def test_a_run_whose_channels_do_not_drain_fails_after_the_bound(tmp_path):
    """The party exited, a message for it stays undelivered (it never
    connects): the run fails after the drain bound, naming the channel;
    a failure of the end of a run is a failure, never a finished run."""
    data, base = tmp_path / "msgs", free_base()
    proxy = Proxy(settings(1, 2, data, base, run_id=None, start_timeout=0, drain_timeout=0.5, connect_timeout=30))

    async def main():
        await proxy.start()
        put(data / "0_to_1", 0, b"never delivered")
        exited = asyncio.get_running_loop().create_future()
        exited.set_result(0)
        with pytest.raises(SyqureError) as failed:
            await asyncio.wait_for(proxy.run(exited), 10)
        return str(failed.value)

    reason = asyncio.run(main())
    assert "did not drain" in reason and "0-1" in reason, reason


def test_the_syftbox_layout_with_the_sites_keys(tmp_path):
    """The syftbox layout on one folder holding every datasite (as a sync
    would make it): each proxy publishes its site key, verifies its peers'
    and seals with the channel keys the handshake gives; the run is
    byte-exact and every status record says site-keys."""
    n, count, emails = 3, 30, ["cp0@hospital-a.org", "cp1@hospital-b.org", "cp2@hospital-c.org"]
    for email in emails:
        (tmp_path / "datasites" / email).mkdir(parents=True)
    bases = [free_base() for _ in range(n)]
    proxies = [Proxy(settings(p, n, tmp_path / "unused", bases[p], layout="syftbox", sync_probe=False,
                              syftbox={"folder": str(tmp_path), "emails": emails})) for p in range(n)]
    results = asyncio.run(run_all(proxies, [party(p, n, bases[p], count, 300_000) for p in range(n)]))
    assert results[n:] == [count * (n - 1)] * n
    records = [json.loads(f.read_text()) for f in tmp_path.rglob("party-*.json")]
    assert sorted(r["pid"] for r in records if r.get("sealing") == "site-keys" and r.get("site_key")) == list(range(n))
    assert message_files(tmp_path / "datasites") == []


def test_a_large_message_held_in_memory_goes_to_the_party_in_pieces(tmp_path, monkeypatch):
    """The syftbox layout holds every message in memory (a bytearray, however
    large): the channel sends it to the party in pieces of SEND_PIECE, never
    whole (a transport buffer holding a whole large message is moved at every
    send, Python 3.11) -- also when it arrives while the downstream waits
    (the waiter's lane, ``Downstream._arrived``/``_deliver_now``)."""
    from syqure_wf.transport import downstream as channel_mod
    from syqure_wf.transport.link import Link

    n, emails = 2, ["cp0@hospital-a.org", "cp1@hospital-b.org"]
    for email in emails:
        (tmp_path / "datasites" / email).mkdir(parents=True)
    bases = [free_base() for _ in range(n)]
    sent: list[int] = []
    send = Link.send

    def recording(self, data):
        sent.append(len(data))
        send(self, data)

    monkeypatch.setattr(Link, "send", recording)
    proxies = [Proxy(settings(p, n, tmp_path / "unused", bases[p], layout="syftbox", sync_probe=False, seal="off",
                              syftbox={"folder": str(tmp_path), "emails": emails})) for p in range(n)]
    big = os.urandom(3 << 19)  # 1.5 MiB, sent once the reader's downstream waits for it

    async def party0():
        port = bases[0] + wire.offset(0, 1, 2)
        accepted = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda r, w: accepted.done() or accepted.set_result((r, w)),
                                            "127.0.0.1", port)
        reader, writer = await accepted
        server.close()
        writer.write(frame(b"first"))  # the first: the writer is proven (by the task)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.write(frame(big))
        await writer.drain()
        assert await reader.read() == b""
        writer.close()

    async def party1():
        reader, writer = await connect_party_1(asyncio.get_running_loop().create_future(), bases[1])
        got = await reader.readexactly(len(big) + 8 + 13)
        writer.close()
        return got

    results = asyncio.run(run_all(proxies, [party0(), party1()]))
    assert results[-1] == frame(b"first") + frame(big)
    assert max(sent) > 256 << 10, sent  # the large frame went through Link.send
    assert max(sent) <= channel_mod.SEND_PIECE, f"one send of {max(sent)} bytes (> {channel_mod.SEND_PIECE})"


@pytest.mark.parametrize("case,words", [
    ("too long", "above the maximum"),
    ("trailing", "longer than its header"),
    ("directory", "a directory"),
])
def test_a_corrupt_message_that_arrives_while_the_downstream_waits_fails_the_run_naming_it(tmp_path, case, words):
    """As above, but each file arrives while the downstream waits (the waiter's
    lane judges it, in the watcher's callback): a burst of good messages is
    delivered once each, in order, then the bad one fails the run with the
    same error, not a traceback in a callback nor a hang."""
    data, base = tmp_path / "msgs", free_base()
    proxy = Proxy(settings(1, 2, data, base, run_id=None, start_timeout=0, max_message=1000))
    inbox = data / "0_to_1"
    goods = [b"good %d" % i for i in range(50)]

    async def main():
        run = asyncio.ensure_future(proxy.run())
        reader, writer = await connect_party_1(run, base)
        put(inbox, 0, goods[0])
        first = await asyncio.wait_for(reader.readexactly(len(frame(goods[0]))), BOUND)  # the writer is proven
        await asyncio.sleep(0.1)  # the downstream waits for seq 1
        for seq, good in enumerate(goods[1:], 1):  # a burst: the lane delivers each as its event comes
            put(inbox, seq, good)
        got = await asyncio.wait_for(reader.readexactly(sum(len(frame(g)) for g in goods[1:])), BOUND)
        await asyncio.sleep(0.1)
        bad = len(goods)
        if case == "too long":
            put(inbox, bad, b"x" * 10, length=5000)
        elif case == "trailing":
            put(inbox, bad, b"abc", extra=b"surplus")
        else:
            (inbox / f"{bad:08d}.msg").mkdir()
            (inbox / f"{bad:08d}.ready").touch()
        try:
            with pytest.raises(SyqureError) as failed:
                await asyncio.wait_for(run, BOUND)
            return str(failed.value), first + got + await asyncio.wait_for(reader.read(), BOUND)
        finally:
            writer.close()

    reason, received = asyncio.run(main())
    assert f"{len(goods):08d}.msg" in reason and words in reason and "channel 0-1" in reason, reason
    assert received == b"".join(frame(g) for g in goods)
    assert not any(f.name.endswith(".ready") and int(f.name[:8]) < len(goods) for f in inbox.iterdir())


def test_a_burst_to_a_party_that_does_not_read_waits_for_it_and_loses_nothing(tmp_path):
    """Messages arrive while the downstream waits and the party reads
    nothing: the lane delivers until the link pauses (its write buffer
    full), then the downstream's task waits for the party; once the party
    reads, every message comes once, in order, and the inbox is emptied."""
    data, base = tmp_path / "msgs", free_base()
    proxy = Proxy(settings(1, 2, data, base, run_id=None, start_timeout=0))
    inbox = data / "0_to_1"
    msgs = [bytes([i % 251]) * (200 << 10) for i in range(80)]  # 16 MB: well over the write buffer

    async def main():
        run = asyncio.ensure_future(proxy.run())
        reader, writer = await connect_party_1(run, base)
        put(inbox, 0, b"first")
        first = await asyncio.wait_for(reader.readexactly(len(frame(b"first"))), BOUND)
        await asyncio.sleep(0.1)
        for seq, msg in enumerate(msgs, 1):
            put(inbox, seq, msg)
        await asyncio.sleep(1.0)  # the party reads nothing meanwhile
        left = len(list(inbox.glob("*.ready")))
        got = await asyncio.wait_for(reader.readexactly(sum(len(frame(m)) for m in msgs)), BOUND)
        for _ in range(100):
            if not list(inbox.glob("*.ready")):
                break
            await asyncio.sleep(0.05)
        writer.close()
        run.cancel()
        return first + got, left

    received, left = asyncio.run(main())
    assert received == frame(b"first") + b"".join(frame(m) for m in msgs)
    assert left > 0  # it did wait for the party (not all in the buffers)
    assert not list(inbox.glob("*.ready"))


def test_a_downstream_cancelled_with_a_message_the_lane_found_leaves_no_file_open(tmp_path, monkeypatch):
    """The lane ends a wait with a large message (an open file, for sendfile)
    and the downstream is cancelled before it resumes (the run ends, its
    upstream failed): the file is closed, as when it is cancelled anywhere else."""
    waiter_mod = pytest.importorskip("syqure_wf.transport.waiter")  # (no lane before d87e785)

    data, base = tmp_path / "msgs", free_base()
    proxy = Proxy(settings(1, 2, data, base, run_id=None, start_timeout=0))
    inbox = data / "0_to_1"
    found = []
    resolve = getattr(waiter_mod.Waiter, "resolve", None)

    def resolving(self, value):
        resolve(self, value)
        if type(value) is tuple and value[0] == "deliver" and hasattr(value[2], "closed"):
            found.append(value[2])
            for task in asyncio.all_tasks():  # the run ends now: its downstream is cancelled
                if task.get_coro().__qualname__ == "Downstream._downstream":
                    task.cancel()

    if resolve is not None:
        monkeypatch.setattr(waiter_mod.Waiter, "resolve", resolving)

    async def main():
        run = asyncio.ensure_future(proxy.run())
        reader, writer = await connect_party_1(run, base)
        put(inbox, 0, b"first")
        await asyncio.wait_for(reader.readexactly(len(frame(b"first"))), BOUND)
        await asyncio.sleep(0.1)
        put(inbox, 1, b"y" * (600 << 10))  # above INLINE_MAX: delivered from its open file
        for _ in range(40):
            await asyncio.sleep(0.05)
            if found:
                break
        await asyncio.sleep(0.1)
        writer.close()
        run.cancel()
        try:
            await run
        except (asyncio.CancelledError, SyqureError):
            pass

    asyncio.run(main())
    assert all(f.closed for f in found), "the message file the lane opened is left open"
