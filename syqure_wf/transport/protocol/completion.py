"""Completion (PROTOCOL.md, End of a run): when a party's proxy is done.
Two modes, each its own class; the proxy's driver gathers the channels'
state and the time, and does what they say. Pure.

* ``Linger`` (a standalone proxy, no party to wait for): done once every
  channel carried a connection and the state stayed quiet for ``linger``.
* ``Drain`` (the party runner: the party exited): done once every channel
  is quiet: nothing open, nothing due in, every message consumed; a peer
  that finished without consuming, or channels that do not drain within
  the bound, fail the run. ``Settle`` then waits out a sync that brings
  back what a writer removed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...errors import PeerFailed

SETTLE_QUIET = 2.5  # seconds the outboxes must stay empty after a synced run
SETTLE_BOUND = 10.0  # at most this long
SETTLE_LOOK = 0.25


@dataclass(frozen=True)
class ChannelState:
    """What completion needs of one channel at one moment."""
    name: str
    peer: int
    active: bool  # a connection is open
    pending: bool  # something is due in
    connections: int
    unconsumed: int = 0  # our messages the peer has not consumed


def busy(channels: Iterable[ChannelState], need_connections: bool) -> bool:
    """Something is still open or due in (consumption aside)."""
    return any(ch.active or ch.pending or (need_connections and not ch.connections) for ch in channels)


def snapshot(channels: Iterable[ChannelState]) -> tuple[int, ...]:
    """A quiet state, to compare after lingering."""
    return tuple(ch.connections for ch in channels)


class Linger:
    """Standalone mode: done when the same quiet snapshot held for ``linger`` seconds."""

    def __init__(self, linger: float):
        self.linger = linger
        self.held: tuple | None = None
        self.since = 0.0

    def observe(self, quiet: tuple | None, now: float) -> float | None:
        """None when done; else seconds to wait before looking again (0: wait for a change)."""
        if quiet is None:
            self.held = None
            return 0.0
        if quiet != self.held:
            self.held, self.since = quiet, now
            return self.linger
        if now - self.since >= self.linger:
            return None
        return self.since + self.linger - now


@dataclass(frozen=True)
class PeerEnd:
    """What draining needs of a peer: it finished (done or failed), and how
    long its records may lag (``PeerWatch.patience``)."""
    finished: bool
    consume_patience: float  # for its consumption record, behind its status
    drain_patience: float  # for the whole drain


class Drain:
    """Party-runner mode, after the party exited at ``exited`` (peer clock)."""

    def __init__(self, pid: int, exited: float):
        self.pid, self.exited = pid, exited
        self.unconsumed_since: dict[str, float] = {}

    def check(self, channels: Iterable[ChannelState], peers: dict[int, PeerEnd], now: float) -> None:
        """Raise PeerFailed when a finished peer left messages unconsumed past
        its patience, or the channels did not drain within the bound."""
        for ch in channels:
            peer = peers[ch.peer]
            if not (ch.unconsumed and peer.finished):
                self.unconsumed_since.pop(ch.name, None)
                continue
            # its consumption record may still be on its way, behind its status
            since = self.unconsumed_since.setdefault(ch.name, now)
            if now - since > peer.consume_patience:
                raise PeerFailed(f"party {ch.peer} finished without consuming {ch.unconsumed} "
                                 f"message(s) of channel {ch.name}")
        bound = max(p.drain_patience for p in peers.values())
        if now - self.exited > bound:
            waiting = [ch.name for ch in channels if ch.active or ch.pending or ch.unconsumed]
            raise PeerFailed(f"party {self.pid} exited but channel(s) {', '.join(waiting)} "
                             f"did not drain within {bound:g} s")


class Settle:
    """A sync may bring back a file its writer removed (SyftBox re-downloads
    it before the deletion is synced): done once the outboxes stayed empty
    for ``quiet_for``, or after ``bound`` at most."""

    def __init__(self, now: float, quiet_for: float = SETTLE_QUIET, bound: float = SETTLE_BOUND):
        self.deadline, self.empty_since, self.quiet_for = now + bound, now, quiet_for

    def observe(self, empty: bool, now: float) -> bool:
        """True when done."""
        if now >= self.deadline:
            return True
        if not empty:
            self.empty_since = now
            return False
        return now - self.empty_since >= self.quiet_for
