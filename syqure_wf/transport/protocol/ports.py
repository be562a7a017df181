"""Port plan: which port each channel of a party uses, and who listens.

Pure: knows nothing of sockets. Two conventions exist:

* ``sequre``: for a pair a < b, party a LISTENS on ``S_a + offset(a, b)`` and
  party b CONNECTS to ``B_b + offset(a, b)``; one port per channel.
* ``mpyc``: for a pair a < b, party b LISTENS on ONE port (its base ``S_b``)
  for all lower peers, and party a CONNECTS to ``B_a + offset(a, b)``.
* ``dial``: the party listens on nothing; it CONNECTS to ``B + offset(a, b)``
  on every channel (an MPyC party started by syqure-wf: its launcher dials
  its lower peers' channels where MPyC would listen), and the proxy proves
  each connection is the party's (PROTOCOL.md, the local hop).

``B`` is the base of ports the proxy listens on (``--base-port``), ``S`` the
base of ports the local party listens on (``--sequre-base-port``); the proxy
dials the latter. The seed used B == S, which never collides on one host
because each port is either the party's or the proxy's.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

CONVENTIONS = ("sequre", "mpyc", "dial")


class Role(str, Enum):
    # What the proxy does towards its local party on a channel.
    DIAL = "dial"  # the party listens: the proxy connects to it
    ACCEPT = "accept"  # the party connects: the proxy listens for it


def channel_offset(a: int, b: int, parties: int) -> int:
    """Offset of channel {a, b} from a port base (PROTOCOL.md), a != b."""
    a, b = min(a, b), max(a, b)
    return a * parties - a * (a + 1) // 2 + (b - a)


def max_offset(parties: int) -> int:
    return channel_offset(parties - 2, parties - 1, parties)


@dataclass(frozen=True)
class ChannelPlan:
    pid: int
    peer: int
    role: Role
    port: int  # the port the proxy listens on (ACCEPT) or dials (DIAL)

    @property
    def name(self) -> str:
        a, b = sorted((self.pid, self.peer))
        return f"{a}-{b}"


def check_party(pid: int, parties: int) -> None:
    if parties < 2:
        raise ValueError(f"an MPC run needs at least 2 parties, got {parties}")
    if not 0 <= pid < parties:
        raise ValueError(f"pid {pid} is not in 0..{parties - 1}")


def plan_channels(pid: int, parties: int, base_port: int, party_base_port: int,
                  convention: str = "sequre") -> list[ChannelPlan]:
    """The channels of party ``pid``, one per peer, in peer order."""
    check_party(pid, parties)
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r} (choose {', '.join(CONVENTIONS)})")
    plans = []
    for peer in range(parties):
        if peer == pid:
            continue
        off = channel_offset(pid, peer, parties)
        party_listens = (pid < peer) if convention == "sequre" else (pid > peer) and convention == "mpyc"
        if party_listens:
            port = party_base_port + (off if convention == "sequre" else 0)
            plans.append(ChannelPlan(pid, peer, Role.DIAL, port))
        else:
            plans.append(ChannelPlan(pid, peer, Role.ACCEPT, base_port + off))
    return plans


def ports_used(pid: int, parties: int, base_port: int, party_base_port: int,
               convention: str = "sequre") -> dict[str, set[int]]:
    """Ports bound on this host by the proxy and by its party."""
    proxy: set[int] = set()
    party: set[int] = set()
    for ch in plan_channels(pid, parties, base_port, party_base_port, convention):
        (party if ch.role is Role.DIAL else proxy).add(ch.port)
    return {"proxy": proxy, "party": party}


def mpyc_party_args(pid: int, parties: int, base_port: int, party_base_port: int,
                    host: str = "127.0.0.1", convention: str = "mpyc") -> list[str]:
    """``-P``/``-I`` arguments that make MPyC party ``pid`` talk to its proxy.

    MPyC dials only higher peers. Its own entry names its host: the launcher
    binds MPyC's listener there (MPyC itself binds every interface). With
    the ``mpyc`` convention entries for lower peers are never dialled but
    need a host, so they name the party's own port; with ``dial`` they name
    the proxy's port of that channel, which the launcher dials instead of listening.
    """
    check_party(pid, parties)
    args: list[str] = []
    for k in range(parties):
        if k > pid or (k < pid and convention == "dial"):
            entry = f"{host}:{base_port + channel_offset(pid, k, parties)}"
        else:
            entry = f"{host}:{party_base_port}"
        args += ["-P", entry]
    return args + ["-I", str(pid)]
