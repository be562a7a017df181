"""MPyC on the file transport in its own process (issue 31): no proxy
process, nothing listens, and such a party and one behind a proxy carry one
run together. Real MPyC parties, real files, the real CLI."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import yaml

from conftest import free_base, message_files, output
from jobs import EXAMPLE, cli, plain_sum


class Seen(asyncio.Protocol):
    """A party's protocol on one end of an in-process pipe: what it got, and its ends."""

    def __init__(self):
        self.data, self.events = bytearray(), []

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")
        return True

    def connection_lost(self, exc):
        self.events.append("lost")


def example_config(tmp_path: Path, **extra) -> dict:
    cfg = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    cfg.update(workdir=str(tmp_path / "run"), inputs={k: str(EXAMPLE / v) for k, v in cfg["inputs"].items()},
               ports={"base": free_base(span=300), "stride": 100}, **extra)
    cfg["engine"]["program"] = str(EXAMPLE / cfg["engine"]["program"])
    return cfg


def check_results(work: Path) -> None:
    for pid in range(3):
        result = json.loads((work / "outputs" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == plain_sum("allele_count")
        assert result["allele_number"] == plain_sum("allele_number")
    assert message_files(work / "messages") == []


# -- what a run's processes listen on, from /proc

def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def listening() -> dict[int, int]:
    """socket inode -> port of every TCP listener on this host (IPv4 and IPv6)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def ports_of(pids: set[int]) -> set[int]:
    """The ports these processes listen on: their socket fds among the listeners."""
    listeners, ports = listening(), set()
    for pid in pids:
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
            links = [os.readlink(fd.path) for fd in fds]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                inode = int(link[8:-1])
                if inode in listeners:
                    ports.add(listeners[inode])
    return ports


def mpyc_hello(port: int, claimed: int) -> bytes:
    """Connect as MPyC party ``claimed`` (its pid, 2 bytes LE, and a PRSS
    key) and return whatever comes back within a second."""
    got = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(claimed.to_bytes(2, "little") + secrets.token_bytes(16))
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    piece = s.recv(65536)
                except socket.timeout:
                    break
                if not piece:
                    break
                got += piece
    except OSError:
        pass
    return got


class Intruder(threading.Thread):
    """Looks for the run's listeners all through the run and connects to each."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.stop = root, threading.Event()
        self.ports: set[int] = set()
        self.received: dict[tuple[int, int], int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            for port in ports_of(descendants(self.root)) - self.ports:
                self.ports.add(port)
                for claimed in (0, 1):
                    got = mpyc_hello(port, claimed)
                    if got:
                        self.received[(port, claimed)] = len(got)
            time.sleep(0.02)


def test_nothing_listens_and_a_local_intruder_gets_nothing(procs, tmp_path):
    """The default run of the example: every port any of its processes
    listens on is tried with MPyC's hello as party 0 and as party 1; none
    answers a byte (there is none to try), and the run's result is right."""
    cfg = example_config(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = procs.start(cli("run", "--config", path, "--json"))
    intruder = Intruder(proc.pid)
    intruder.start()
    try:
        assert procs.wait(proc, 120) == 0, output(proc)
    finally:
        intruder.stop.set()
        intruder.join(10)
    assert intruder.received == {}, f"an intruder received bytes: {intruder.received}"
    assert intruder.ports == set(), f"the run listened on {sorted(intruder.ports)}"
    check_results(tmp_path / "run")
    for pid in range(3):  # the transport ran, in the party's process: its record says what it carried
        record = json.loads((tmp_path / "run" / "messages" / "status" / f"party-{pid}.json").read_text())
        assert record["state"] == "done" and record["heartbeat"] > 0 and record["transport"] == "in process"
        assert sum(ch["sent_messages"] for ch in record["channels"].values()) > 0


def test_in_process_and_proxied_parties_carry_one_run(procs, tmp_path):
    """Parties 0 and 2 speak the files in their own processes, party 1
    through its proxy (``transport: proxy``), each started as a site would
    (``syqure-wf party``): the same files, one run, the right sums."""
    cfg = example_config(tmp_path, run_id="mixed")
    paths = {}
    for transport in ("files", "proxy"):
        paths[transport] = tmp_path / f"{transport}.yaml"
        paths[transport].write_text(yaml.safe_dump({**cfg, "transport": transport}))
    started = {pid: procs.start(cli("party", "--config", paths["proxy" if pid == 1 else "files"], "--pid", pid),
                                log=tmp_path / f"party{pid}.runner.log") for pid in range(3)}
    for pid, proc in started.items():
        assert procs.wait(proc, 120) == 0, f"party {pid}: {output(proc)}"
    check_results(tmp_path / "run")
    records = {pid: json.loads((tmp_path / "run" / "messages" / "status" / f"party-{pid}.json").read_text())
               for pid in range(3)}
    assert "files:" in records[0]["command"] and "files:" in records[2]["command"]
    assert "files:" not in records[1]["command"]  # its proxy's ports
    assert [records[p]["transport"] for p in range(3)] == ["in process", "proxy", "in process"]
    for record in records.values():
        assert record["state"] == "done"
        assert all(ch["received_messages"] > 0 for ch in record["channels"].values())


# -- the pieces, without processes

def test_a_transport_failure_is_reported_as_the_error_it_was():
    from syqure_wf.errors import PeerFailed, SyqureError
    from syqure_wf.transport.party_thread import failure_line, failure_of

    line = failure_line(PeerFailed("party 2 stopped: no heartbeat\nfor 3 s"))
    got = failure_of(["a program's line", line])
    assert "\n" not in line and type(got) is PeerFailed and str(got) == "party 2 stopped: no heartbeat for 3 s"
    assert type(failure_of([failure_line(ValueError("a bug"))])) is SyqureError
    assert type(failure_of(["syqure-wf: transport: Stopped: by a peer's line"])) is SyqureError
    assert type(failure_of(["syqure-wf: transport: object: no class of ours"])) is SyqureError
    assert failure_of(["syqure-wf: refused something else"]) is None


def test_a_pipe_between_two_loops_keeps_order_and_its_ends():
    """Pieces written on one thread's loop arrive in order on the other's,
    held while its reading is paused, then the half-close, then the close."""
    from syqure_wf.transport.inproc import pipe

    far_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=far_loop.run_forever, daemon=True)
    thread.start()
    near_loop = asyncio.new_event_loop()
    try:
        near, far = pipe(near_loop, far_loop)
        seen = Seen()
        far_loop.call_soon_threadsafe(lambda: (far.set_protocol(seen), far.pause_reading()))
        near.set_protocol(asyncio.Protocol())
        for i in range(1000):
            near.write(b"%d," % i)
        near.close()
        near_loop.run_until_complete(asyncio.sleep(0.05))
        assert seen.data == b"" and seen.events == []  # held while paused
        far_loop.call_soon_threadsafe(far.resume_reading)
        deadline = time.monotonic() + 10
        while seen.events != ["eof", "lost"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bytes(seen.data) == b"".join(b"%d," % i for i in range(1000)) and seen.events == ["eof", "lost"]
    finally:
        far_loop.call_soon_threadsafe(far_loop.stop)
        thread.join(5)
        far_loop.close()
        near_loop.close()


def test_what_a_party_writes_in_one_turn_of_its_loop_is_fed_as_one_piece():
    """To a channel that takes data on the writer's thread (``direct``), the
    writes of one turn of the party's loop go as one piece, in order, at the
    end of that turn, or at once when they reach ``SEND_NOW`` (a turn that
    computes on would hold them back); a flush (the loop stopped) or the
    close sends the rest."""
    from syqure_wf.transport.inproc import SEND_NOW, pipe

    big = b"x" * SEND_NOW

    class Direct(asyncio.Protocol):
        def __init__(self):
            self.pieces, self.threads, self.events = [], set(), []

        def feed_now(self, data):
            self.pieces.append(data)
            self.threads.add(threading.get_ident())

        def eof_received(self):
            self.events.append("eof")
            return True

        def connection_lost(self, exc):
            self.events.append("lost")

    far_loop, near_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    thread = threading.Thread(target=far_loop.run_forever, daemon=True)
    thread.start()
    try:
        near, far = pipe(near_loop, far_loop)
        seen = Direct()
        far.set_protocol(seen)
        far.direct = True
        near.set_protocol(asyncio.Protocol())

        async def turns():
            for i in range(3):
                near.write(b"%d," % i)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert seen.pieces == [b"0,1,2,"]
            near.write(b"3,")
            near.write(big)  # the turn's writes reach SEND_NOW: they go at once, not as it ends
            assert seen.pieces == [b"0,1,2,", b"3," + big]
            near.write(b"4,")
        near_loop.run_until_complete(turns())
        near.flush()  # the loop stopped before the end of the turn that wrote it
        near.write(b"5,")
        near.close()
        assert seen.pieces == [b"0,1,2,", b"3," + big, b"4,", b"5,"] and seen.threads == {threading.get_ident()}
        deadline = time.monotonic() + 10
        while seen.events != ["eof", "lost"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen.events == ["eof", "lost"]
    finally:
        far_loop.call_soon_threadsafe(far_loop.stop)
        thread.join(5)
        far_loop.close()
        near_loop.close()


def test_a_partys_running_loop_runs_its_proxys_and_the_proxys_thread_keeps_time_while_it_computes():
    """Lent (``Turns``), the proxy's timers and wake-ups run on the party's
    thread while the party's loop turns; when it computes, or is given
    back, they run on the proxy's thread again, on time."""
    from syqure_wf.transport.turns import STALE, Turns

    proxy_loop, party_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    ticks, box = [], {}

    async def proxy_main():
        box["turns"] = Turns(asyncio.get_running_loop())
        box["done"] = asyncio.get_running_loop().create_future()
        while not box["done"].done():
            ticks.append((time.monotonic(), threading.get_ident()))
            await asyncio.wait([box["done"]], timeout=0.01)
        box["turns"].reclaim()

    thread = threading.Thread(target=proxy_loop.run_until_complete, args=(proxy_main(),), daemon=True)
    thread.start()
    me = threading.get_ident()
    try:
        deadline = time.monotonic() + 10
        while "done" not in box and time.monotonic() < deadline:
            time.sleep(0.01)
        turns = box["turns"]
        phases = {}

        async def party_main():
            turns.lend(party_loop)
            assert turns.lent
            t0 = time.monotonic()
            woken = party_loop.create_future()
            threading.Thread(target=lambda: proxy_loop.call_soon_threadsafe(
                lambda: party_loop.call_soon_threadsafe(woken.set_result, threading.get_ident()))).start()
            assert await asyncio.wait_for(woken, 5) == me  # a wake-up of the proxy's loop is served here
            await asyncio.sleep(0.3)
            phases["turning"] = (t0, time.monotonic())
            time.sleep(0.5)  # noqa: ASYNC251 (the party computes: its loop does not turn)
            phases["computing"] = (phases["turning"][1], time.monotonic())
        party_loop.run_until_complete(party_main())
        turns.give_back()
        given = time.monotonic()
        time.sleep(0.3)
        proxy_loop.call_soon_threadsafe(box["done"].set_result, None)
        thread.join(10)
        assert not thread.is_alive()

        def during(phase, start=None, end=None):
            a, b = phases[phase] if phase else (start, end)
            return [who for t, who in ticks if a + 2 * STALE < t < b]
        assert me in during("turning")  # (a loaded machine may leave the party's thread without a core: then the proxy's)
        computing = during("computing")
        assert computing and me not in computing
        assert set(during(None, given + STALE, given + 0.3)) == {thread.ident}
    finally:
        party_loop.close()
        if not thread.is_alive():
            proxy_loop.close()


def test_a_party_that_computes_inside_mpc_run_longer_than_the_peer_bound_keeps_its_heartbeat(procs, tmp_path):
    """While MPyC's loop runs, it runs the party's proxy too; when the
    program computes without yielding, the proxy's thread keeps its
    heartbeats: the peer waiting for it does not take it for dead
    (``timeouts.peer`` 3 s, 6 s of work)."""
    from conftest import PROGRAMS

    cfg = {"parties": 2, "engine": {"name": "mpyc", "program": str(PROGRAMS / "mpyc_computes.py"), "args": ["6"]},
           "workdir": str(tmp_path / "run"), "ports": {"base": free_base(span=300), "stride": 100},
           "timeouts": {"peer": 3}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = procs.start(cli("run", "--config", path))
    assert procs.wait(proc, 120) == 0, output(proc)
    for pid in range(2):
        assert "got=[0, 1]" in (tmp_path / "run" / "logs" / f"party-{pid}.log").read_text()


def _party_loop_with_a_proxy_end():
    """A pipe whose far end (the party's) is on the loop this thread runs,
    its near end (the channel's) on another loop: as under ``Turns``, where
    the party's thread runs the proxy's loop and the channel writes on it."""
    from syqure_wf.transport.inproc import pipe

    party_loop, proxy_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    near, far = pipe(proxy_loop, party_loop)
    seen = Seen()
    far.set_protocol(seen)
    near.set_protocol(asyncio.Protocol())
    return party_loop, proxy_loop, near, far, seen


def test_a_party_end_that_closed_gets_no_data_fed_on_its_own_thread():
    """The party closed its end (asyncio: no data_received after close());
    what the channel writes then, on the party's thread, is dropped as it is
    when handed over by the party's loop, never fed to the closed protocol."""
    party_loop, proxy_loop, near, far, seen = _party_loop_with_a_proxy_end()

    async def turn():
        far.close()  # the party closes its connection ...
        near.write(b"late")  # ... and the channel delivers in the same turn (the lane, under Turns)
        await asyncio.sleep(0.05)

    try:
        party_loop.run_until_complete(turn())
        assert seen.data == b"" and seen.events == ["lost"], seen.events
    finally:
        party_loop.close()
        proxy_loop.close()


def test_a_party_protocol_that_raises_in_data_received_does_not_raise_in_the_channel():
    """An exception in the party's data_received is the party's loop's (as
    with a socket: asyncio's transport reports it); the channel's write (a
    delivery, in the proxy's lane or task) does not raise it."""
    party_loop, proxy_loop, near, far, seen = _party_loop_with_a_proxy_end()
    errors = []
    party_loop.set_exception_handler(lambda loop, context: errors.append(context.get("exception")))

    def broken(data):
        raise ValueError("the party's own bug")

    seen.data_received = broken

    async def turn():
        near.write(b"a message")
        await asyncio.sleep(0.05)

    try:
        party_loop.run_until_complete(turn())  # raised the party's ValueError from near.write at d87e785
        assert [type(e) for e in errors] == [ValueError]  # the party's loop reported it
    finally:
        party_loop.close()
        proxy_loop.close()
