"""Attacks on the local hop (issue 31): another process of this machine, the
same user's, connects where a party and its proxy talk. Real proxies, real
sockets, real MPyC parties."""
from __future__ import annotations

import json
import os
import re
import socket
import time

from conftest import PROGRAMS, PY, free_base, output, wait_until
from proxies import frame, proxy_cmd, put

from syqure_wf.engines import unpickle
from syqure_wf.transport import localhop
from syqure_wf.transport.protocol.ports import mpyc_party_args, plan_channels

HELLO = (0).to_bytes(2, "little") + bytes(16)  # MPyC's hello: "I am party 0", then a PRSS key

# Party 1 of 2: connects to its proxy once told to, keeps the peer's first
# message, then sends its own.
PARTY = """
import os, socket, struct, sys, time
port, go, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.02)
s = socket.create_connection(("127.0.0.1", port))
got = b""
while len(got) < 13:
    chunk = s.recv(100)
    if not chunk:
        break
    got += chunk
open(out + ".tmp", "wb").write(got)
os.rename(out + ".tmp", out)
s.sendall(struct.pack("<q", 4) + b"mine")
time.sleep(60)
"""


def connect(port: int):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return None


def heard(sock: socket.socket, settle: float = 0.5) -> bytes:
    """What a connection receives within ``settle`` seconds, or until it ends."""
    got, deadline = b"", time.monotonic() + settle
    sock.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got


def send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # refused already


def record(data, pid) -> dict:
    try:
        return json.loads((data / "status" / f"party-{pid}.json").read_text())
    except (OSError, ValueError):
        return {}


def test_intruders_before_and_beside_the_party_get_and_give_nothing(procs, tmp_path):
    data, base, go, got = tmp_path / "msgs", free_base(), tmp_path / "go", tmp_path / "got"
    party = procs.start([PY, "-c", PARTY, base + 1, go, got])
    proxy = procs.start(proxy_cmd(1, 2, data, base, base, "--start-timeout", "0", "--party-pid", party.pid),
                        log=tmp_path / "proxy.log")
    first = wait_until(lambda: connect(base + 1), 10, "the proxy to listen")
    put(data / "0_to_1", 0, b"hello")
    send(first, HELLO + frame(b"evil first"))
    assert heard(first) == b""  # before the party: none of the peer's messages
    first.close()
    go.touch()
    assert wait_until(lambda: got.exists() and got.read_bytes(), 10, "the party's first message") == frame(b"hello")
    second = connect(base + 1)  # the party is in: a second connection, the same user's
    if second is not None:
        send(second, frame(b"evil second"))
        assert heard(second) == b""
        second.close()
    outbox = data / "1_to_0"
    wait_until(lambda: (outbox / "00000000.ready").exists(), 10, "the party's message")
    wait_until(lambda: record(data, 1).get("channels", {}).get("0-1", {}).get("refused") == 2, 10,
               "two refusals in the status record", seen=lambda: record(data, 1).get("channels"))
    # the peer sees the party's message alone: nothing of the intruders, no end marker
    assert sorted(p.name for p in outbox.iterdir() if p.name[0].isdigit()) == ["00000000.msg", "00000000.ready"]
    assert (outbox / "00000000.msg").read_bytes() == frame(b"mine")
    assert record(data, 1)["local_hop"] == "proven"
    procs.kill(proxy)
    assert output(proxy).count("refused a connection") == 2


def test_a_squatter_on_the_partys_port_gets_nothing(procs, tmp_path):
    data, base = tmp_path / "msgs", free_base()
    party = procs.start([PY, "-c", "import time; time.sleep(60)"])  # it never listens: someone else does
    with socket.socket() as squat:
        squat.bind(("127.0.0.1", base + 1))
        squat.listen(8)
        squat.settimeout(10)
        proxy = procs.start(proxy_cmd(0, 2, data, base, base, "--start-timeout", "0", "--party-pid", party.pid,
                                      "--connect-timeout", "2"))
        conn, _ = squat.accept()
        put(data / "1_to_0", 0, b"hello")
        assert heard(conn) == b""
        assert procs.wait(proxy, 30) == 1
    said = output(proxy).strip().splitlines()
    assert "refused a connection" in said[0]
    assert f"party 0 is not listening on 127.0.0.1:{base + 1}" in said[-1] and "another process is" in said[-1]
    assert "not an open socket of the party's process" in said[-1]


def listening(pids) -> set:
    socks = localhop.open_sockets([p for pid in pids for p in localhop.process_tree(pid)])
    return {e.local for e in localhop.read_tables() if e.state == localhop.LISTEN and e.inode in socks}


def test_mpyc_run_hello_to_every_port_gets_no_byte_and_the_run_is_right(procs, tmp_path):
    """Three MPyC parties started as syqure-wf starts them (the launcher, the
    ``dial`` convention), each behind its proxy: a local process knocks on
    every port the run listens on, over and over, with MPyC's hello."""
    n, data, proxy_base = 3, tmp_path / "msgs", free_base(span=100)
    bases = [proxy_base + 20 * p for p in range(n)]
    env = {**os.environ, unpickle.DIAL: "1"}
    parties = [procs.start([PY, unpickle.__file__, PROGRAMS / "mpyc_sum.py", "--twice",
                            *mpyc_party_args(p, n, bases[p], bases[p] + 10, convention="dial")],
                           log=tmp_path / f"party{p}.log", env=env) for p in range(n)]
    proxies = [procs.start(proxy_cmd(p, n, data, bases[p], bases[p] + 10, "--framing", "stream", "--convention",
                                     "dial", "--run-id", "knock", "--party-pid", parties[p].pid),
                           log=tmp_path / f"proxy{p}.log") for p in range(n)]
    ports = {c.port for p in range(n) for c in plan_channels(p, n, bases[p], bases[p] + 10, "dial")}
    knocks, got, deadline = [], b"", time.monotonic() + 120
    while any(proc.poll() is None for proc in parties):
        assert time.monotonic() < deadline, "the run never ended"
        for port in ports:
            sock = connect(port)
            if sock is not None:
                send(sock, HELLO)
                knocks.append(sock)
        assert not listening([p.pid for p in parties])  # an MPyC party listens on nothing
        for addr in listening([p.pid for p in proxies]):
            assert addr[0].is_loopback
        for sock in knocks[-30:]:
            got += heard(sock, 0.01)
    for proc in parties:
        assert procs.wait(proc, 60) == 0, output(proc)
        assert re.findall(r"sum=.*", output(proc)) == ["sum=69 max=33 first<last=1"] * 2
    for sock in knocks:
        got += heard(sock, 0.01)
        sock.close()
    assert got == b"" and len(knocks) >= len(ports)
    for proc in proxies:
        assert procs.wait(proc, 30) == 0, output(proc)
    assert sum(ch["refused"] for p in range(n) for ch in record(data, p)["channels"].values()) >= len(ports)
