"""The local hop's proof (transport/localhop.py): the parser on kernel text,
then the proof on real sockets of real processes."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys

import pytest

from conftest import wait_until

from syqure_wf.transport import localhop
from syqure_wf.transport.localhop import Entry, judge, loopback_problem, other_end, parse, prove

IP4 = ipaddress.ip_address("127.0.0.1")

# /proc/net/tcp as the kernel writes it (little-endian words): a listener on
# 127.0.0.1:14438, and both ends of a connection 127.0.0.1:50738 <-> :42017
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:3866 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 29990 1 0000 100 0 0 10 0
   1: 0100007F:C632 0100007F:A421 01 00000000:00000000 00:00000000 00000000     0        0 31000 1 0000 20 4 30 10 -1
   2: 0100007F:A421 0100007F:C632 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000 20 4 30 10 -1
   3: garbage
"""
# tcp6: ::1 port 8080 and an IPv4-mapped 127.0.0.1 port 9000
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000
   1: 0000000000000000FFFF00000100007F:2328 0000000000000000FFFF00000100007F:2329 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000
"""


@pytest.mark.skipif(sys.byteorder != "little", reason="the samples are a little-endian kernel's")
def test_parse_reads_addresses_ports_and_inodes():
    entries = parse(TCP)
    assert entries[0] == Entry((IP4, 14438), (ipaddress.ip_address("0.0.0.0"), 0), 29990, localhop.LISTEN)
    assert entries[1] == Entry((IP4, 50738), (IP4, 42017), 31000, 1)
    assert len(entries) == 3  # the garbage line is skipped
    six = parse(TCP6)
    assert six[0].local == (ipaddress.ip_address("::1"), 8080) and six[0].inode == 4242
    assert six[1].local == (IP4, 9000) and six[1].remote == (IP4, 9001)  # mapped: read as IPv4


@pytest.mark.skipif(sys.byteorder != "little", reason="the samples are a little-endian kernel's")
def test_judge_finds_the_other_end():
    # our accepted socket is 127.0.0.1:42017 <- 50738: the other end is entry 1
    inode = other_end(TCP, (IP4, 42017), (IP4, 50738))
    assert inode == 31000
    assert judge(inode, {31000}, (IP4, 50738), "p").proven
    no = judge(inode, {1, 2}, (IP4, 50738), "the party")
    assert not no.proven and not no.wait and "not an open socket of the party" in no.reason
    # we dialled 50738 -> 42017: the other end is not accepted yet (inode 0): wait
    assert judge(other_end(TCP, (IP4, 50738), (IP4, 42017)), {31000}, (IP4, 42017), "p").wait
    gone = judge(other_end(TCP, (IP4, 1), (IP4, 2)), {31000}, (IP4, 2), "p")
    assert not gone.proven and not gone.wait
    # an IPv4 connection of a dual-stack socket is written mapped, in tcp6
    assert other_end(TCP6, (IP4, 9001), (IP4, 9000)) == 4343
    assert other_end(TCP6, (IP4, 9000), (IP4, 9001)) is None


def test_loopback_only():
    for good in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "::ffff:127.0.0.1"):
        assert loopback_problem(good) is None, good
    for bad in ("0.0.0.0", "::", "10.0.0.1", "example.org", ""):
        assert loopback_problem(bad), bad


# -- real sockets, real processes

CONNECT = "import socket,sys,time; s=socket.create_connection(('127.0.0.1',int(sys.argv[1]))); print('in',flush=True); time.sleep(60)"
LISTEN = ("import os,socket,sys,time; l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(); "
          "print(l.getsockname()[1],flush=True)\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
          "c,_=l.accept(); print('in',flush=True); time.sleep(60)")


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(10)
    yield srv
    srv.close()


def child(procs, code, *args, **kw):
    return procs.start([sys.executable, "-c", code, *map(str, args)], **kw)


def test_an_accepted_connection_is_proven_of_its_process_and_descendants_only(procs, listener):
    port = listener.getsockname()[1]
    party = child(procs, CONNECT, port)
    conn, _ = listener.accept()
    ends = conn.getsockname(), conn.getpeername()
    assert prove(*ends, party.pid).proven
    # the same connection is no other process's, not even of the same user
    other = child(procs, "import time; time.sleep(60)")
    verdict = prove(*ends, other.pid)
    assert not verdict.proven and not verdict.wait and f"process {other.pid}" in verdict.reason
    # a party started through a shell: the connection of its child is the party's
    shell = procs.start(["sh", "-c", f'{sys.executable} -c "$1" {port}; true', "sh", CONNECT])
    grand, _ = listener.accept()
    assert prove(grand.getsockname(), grand.getpeername(), shell.pid).proven
    assert not prove(grand.getsockname(), grand.getpeername(), party.pid).proven
    # this test process connecting is not the party
    mine = socket.create_connection(("127.0.0.1", port))
    own, _ = listener.accept()
    assert not prove(own.getsockname(), own.getpeername(), party.pid).proven
    early = prove(own.getsockname(), own.getpeername(), None)
    assert early.wait and early.reason == "the party's process has not started"
    for s in (conn, grand, mine, own):
        s.close()


def test_a_dialled_connection_is_proven_once_the_party_accepts_it(procs, tmp_path):
    go = tmp_path / "go"
    party = child(procs, LISTEN, go)
    port = int(party.stdout.readline())
    conn = socket.create_connection(("127.0.0.1", port))
    ends = conn.getsockname(), conn.getpeername()
    assert prove(*ends, party.pid).wait  # in the listener's queue: no process holds it yet
    go.touch()
    assert party.stdout.readline() == b"in\n"
    assert wait_until(lambda: prove(*ends, party.pid).proven, 10, "the accepted socket among the party's files")
    conn.close()


def test_process_tree_lists_descendants():
    proc = subprocess.Popen(["sh", "-c", f"{sys.executable} -c 'import time; time.sleep(30)' & wait"],
                            start_new_session=True)
    try:
        tree = wait_until(lambda: (lambda t: t if len(t) >= 2 else None)(localhop.process_tree(proc.pid)),
                          10, "the shell's child")
        assert tree[0] == proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
