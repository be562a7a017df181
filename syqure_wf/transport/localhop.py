"""The local hop: proof that a TCP connection on loopback is the party's own.

Linux gives a TCP socket no peer credentials (``SO_PEERCRED`` answers pid 0),
and a check by uid would let in any process of the same user. What the
kernel does give: every TCP socket of this network namespace, its two
addresses and its inode, in ``/proc/net/tcp`` and ``tcp6``; and each open
socket of a process as a link ``socket:[INODE]`` in ``/proc/PID/fd``. The
other end of one of our connections is the entry whose local address is our
remote one and whose remote address is our local one: the connection is
the party's when that inode is an open file of the party's process or of
one of its descendants (a launcher's child, a confinement wrapper's).

Pure: ``parse``, ``other_end``, ``judge``, ``loopback_problem``.
IO: ``prove`` reads ``/proc``.
"""
from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = 0x0A
Address = tuple  # (ipaddress.IPv4Address | IPv6Address, port)


@dataclass(frozen=True)
class Entry:
    local: Address
    remote: Address
    inode: int  # 0: no open file holds it yet (a connection still in a listener's queue)
    state: int = 0  # the kernel's TCP state: 1 established, 10 listening


@dataclass(frozen=True)
class Verdict:
    proven: bool
    wait: bool = False  # not yet decidable: look again shortly
    reason: str = ""


def _address(text: str) -> Address:
    """``0100007F:3866``: the address as the kernel's 32-bit words in host order, the port in hex."""
    hexaddr, hexport = text.split(":")
    if len(hexaddr) not in (8, 32):
        raise ValueError(f"bad address {text!r}")
    raw = b"".join(struct.pack("=I", int(hexaddr[i:i + 8], 16)) for i in range(0, len(hexaddr), 8))
    return normal(ipaddress.ip_address(raw)), int(hexport, 16)


def normal(ip):
    """An IPv4 address seen through an IPv6 socket is the IPv4 address."""
    ip = ipaddress.ip_address(ip)
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def parse(text: str) -> list[Entry]:
    """The entries of one ``/proc/net/tcp`` or ``tcp6`` text; lines that do not parse are skipped."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            out.append(Entry(_address(fields[1]), _address(fields[2]), int(fields[9]), int(fields[3], 16)))
        except ValueError:
            continue
    return out


def endpoint(addr) -> Address:
    """A socket's (host, port, ...) as asyncio or ``socket`` gives it."""
    return normal(addr[0]), int(addr[1])


def kernel_forms(addr: Address) -> set[str]:
    """How the kernel's tables write an address and port: an IPv4 address in
    ``tcp`` and, mapped, in ``tcp6`` (a dual-stack socket's)."""
    ip, port = addr
    raws = [ip.packed, ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed).packed] if ip.version == 4 \
        else [ip.packed]
    return {"".join(f"{struct.unpack('=I', raw[i:i + 4])[0]:08X}" for i in range(0, len(raw), 4)) + f":{port:04X}"
            for raw in raws}


def other_end(text: str, ours_local: Address, ours_remote: Address) -> int | None:
    """The inode of the socket at the other end of our connection, in one
    table's text: its local address is our remote one, and the other way round."""
    theirs_local, theirs_remote = kernel_forms(ours_remote), kernel_forms(ours_local)
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 10 and fields[1] in theirs_local and fields[2] in theirs_remote:
            try:
                return int(fields[9])
            except ValueError:
                return None
    return None


def judge(inode: int | None, party_sockets: set[int], ours_remote: Address, party: str) -> Verdict:
    """Is ``inode``, the other end of our connection, one of the party's open sockets?"""
    if inode is None:
        return Verdict(False, reason=f"no local socket is connected from {ours_remote[0]}:{ours_remote[1]} "
                                     "(not a connection from this machine's network)")
    if inode == 0:
        return Verdict(False, wait=True, reason="its other end is not yet accepted by any process")
    if inode in party_sockets:
        return Verdict(True)
    return Verdict(False, reason=f"its other end (socket {inode}) is not an open socket of {party}")


def loopback_problem(host: str) -> str | None:
    """Why ``host`` is not an address only this machine reaches, or None."""
    if host == "localhost":
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host!r} is not an IP address (give 127.0.0.1)"
    if not normal(ip).is_loopback:
        return f"{host} is not a loopback address: channels carry secret shares (give 127.0.0.1)"
    return None


# -- IO

def read_tables() -> list[Entry]:
    entries = []
    for path in TABLES:
        try:
            with open(path) as f:
                entries += parse(f.read())
        except OSError:
            continue  # no IPv6 here
    return entries


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from every process's parent in ``/proc``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p not in tree:
            tree.append(p)
            todo += children.get(p, [])
    return tree


def open_sockets(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    return inodes


def prove(sockname, peername, party_pid: int | None) -> Verdict:
    """Does the connection with these ends (ours) come from party process ``party_pid``?"""
    if party_pid is None:  # being started: its runner learns its pid in a moment
        return Verdict(False, wait=True, reason="the party's process has not started")
    if not os.path.isdir(f"/proc/{party_pid}"):
        return Verdict(False, reason=f"the party's process {party_pid} is not running")
    try:
        os.listdir(f"/proc/{party_pid}/fd")
    except OSError as exc:
        return Verdict(False, reason=f"cannot see the open files of the party's process {party_pid}: "
                                     f"{exc.strerror} (run the proxy as the party's user)")
    ours_local, ours_remote = endpoint(sockname), endpoint(peername)
    inode = None
    for path in TABLES:
        try:
            with open(path) as f:
                inode = other_end(f.read(), ours_local, ours_remote)
        except OSError:
            continue  # no IPv6 here
        if inode is not None:
            break
    party = f"the party's process {party_pid} or its children"
    verdict = judge(inode, open_sockets([party_pid]), ours_remote, party)
    if verdict.proven or verdict.wait or inode is None:
        return verdict
    return judge(inode, open_sockets(process_tree(party_pid)[1:]), ours_remote, party)  # a child's?
