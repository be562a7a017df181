"""Liveness (PROTOCOL.md, Liveness): whether a peer runs, judged from its
heartbeat counter on this party's own clock, and whether this site's own
sync works; bounds on what comes from peers stretch to a synced folder's
pace and stand still while the sync is down. Pure: readings and times in.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import PeerFailed

STARTED, RUNNING, DONE, FAILED = "started", "running", "done", "failed"
FAST_BEAT = 0.1  # heartbeat while a peer has yet to take our first message: it waits for a beat


PATIENCE = 3  # a synced folder's news is late by up to this many of its longest gaps


@dataclass
class PeerWatch:
    """What this party knows of one peer: pure bookkeeping over readings.

    Over a synced folder (``synced``) news of a live peer arrives in bursts,
    one per sync, possibly minutes apart: every bound on what comes from the
    peer then stretches to a few of the longest gaps seen between its
    heartbeats; until a second heartbeat has shown a gap, to a few times the
    wait for the first (counted from ``started``).

    Each proxy process is an incarnation with a token of its own, in its
    record and in the ``writer.id`` stamp of its outboxes. An incarnation is
    ``live`` once its heartbeat was seen to change on this party's clock: a
    running process, not a record left behind. Without a run id nothing says
    which run a record is of, so the record found at the first reading
    counts only once it proves live or another incarnation replaces it (a
    dead run's ``failed`` must not fail a new run). The same holds where a run
    id names a folder that runs reuse (Biovault's: ``reused``)."""

    pid: int
    run_id: str | None
    synced: bool = False
    started: float = 0.0
    last_count: int | None = None
    last_change: float | None = None
    changes: int = 0
    first_wait: float = 0.0
    longest_gap: float = 0.0
    state: str | None = None
    reason: str = ""
    incarnation: str | None = None
    live: bool = False
    reused: bool = False  # the run id may be an earlier run's too: first readings prove nothing
    _read: bool = False  # a record was read before
    _stale: tuple | None = None  # (incarnation, heartbeat) of a first reading not yet trusted
    _inc_count: object = None

    def observe(self, record: dict | None, now: float) -> None:
        if record is None or (self.run_id and record.get("run_id") != self.run_id):
            return  # absent, or a record of another run
        inc, count = record.get("incarnation"), record.get("heartbeat")
        if inc != self.incarnation:
            self.incarnation, self.live, self._inc_count = inc, False, count
        elif count != self._inc_count:
            self.live, self._inc_count = True, count
        if not self._read and (not self.run_id or self.reused):
            self._stale = (inc, count)
        self._read = True
        if self._stale is not None:
            if self._stale == (inc, count):
                return  # maybe a dead run's: judged once it changes
            self._stale = None
        self.state = record.get("state")
        self.reason = str(record.get("reason", ""))
        if count != self.last_count:
            if self.last_change is not None:
                self.longest_gap = max(self.longest_gap, now - self.last_change)
            else:
                self.first_wait = now - self.started
            self.last_count, self.last_change = count, now
            self.changes += 1

    def writes_as(self, stamp: str | None) -> bool:
        """Messages stamped ``stamp`` come from this peer's running process."""
        return bool(stamp) and stamp == self.incarnation and self.live and self.state not in (DONE, FAILED)

    def patience(self, bound: float, start_timeout: float) -> float:
        """``bound`` stretched to what the sync has shown of its pace."""
        if not self.synced:
            return bound
        if self.changes == 0:
            return max(bound, start_timeout)
        if self.changes == 1:
            return max(bound, PATIENCE * self.first_wait)
        return max(bound, PATIENCE * self.longest_gap)

    def check(self, now: float, started: float, start_timeout: float, peer_timeout: float) -> None:
        """Raise PeerFailed when the peer failed, vanished or never came up."""
        if self.state == FAILED:
            raise PeerFailed(f"party {self.pid} failed: {self.reason or 'no reason given'}")
        if self.state == DONE:
            return
        if self.last_change is None:
            if start_timeout and now - started > start_timeout:
                raise PeerFailed(f"party {self.pid} never started: no status from it "
                                 f"within {start_timeout:g} s")
            return
        if peer_timeout and now - self.last_change > self.patience(peer_timeout, start_timeout):
            raise PeerFailed(f"party {self.pid} stopped: no heartbeat from it for "
                             f"{now - self.last_change:.1f} s (last state {self.state})")


class SyncWatch:
    """This site's sync, up or down, from successive probes: pure bookkeeping.

    While the sync is down nothing from the peers can arrive, so no bound on
    what comes from them may run: ``clock`` is a monotonic clock that stands
    still while the sync is down. Every bound on peers is measured on it."""

    def __init__(self, now: float):
        self.paused = 0.0  # seconds of outage already behind us
        self.down_since: float | None = None  # monotonic
        self.down_wall: float | None = None  # wall clock, for people
        self.reason = ""
        self.last_outage = 0.0  # seconds the last outage lasted

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def observe(self, problem: str | None, now: float, wall: float) -> str | None:
        """Take a probe's result; returns "down" or "up" when the state changed."""
        if problem and self.down_since is None:
            self.down_since, self.down_wall, self.reason = now, wall, problem
            return "down"
        if problem:
            self.reason = problem
            return None
        if self.down_since is not None:
            self.last_outage = now - self.down_since
            self.paused += self.last_outage
            self.down_since, self.down_wall, self.reason = None, None, ""
            return "up"
        return None

    def clock(self, now: float) -> float:
        """``now`` less every moment the sync was down."""
        return now - self.paused - (now - self.down_since if self.down_since is not None else 0.0)

    def down_for(self, now: float) -> float:
        return now - self.down_since if self.down_since is not None else 0.0

    def record(self) -> dict:
        """What the status record says of this site's sync."""
        if self.down_since is None:
            return {"state": "up"}
        return {"state": "down", "since": self.down_wall, "reason": self.reason}


def beat_interval(heartbeat: float, peer_waits: bool) -> float:
    """Seconds to the next heartbeat: fast while a peer waits to see us beat
    (it takes no first message of ours before, ``WriterProof``; nor a key)."""
    return min(heartbeat, FAST_BEAT) if peer_waits else heartbeat


def writer_patience(watch: "PeerWatch", peer_timeout: float, heartbeat: float, start_timeout: float) -> float:
    """How long a writer (or a key's owner) may take to show it runs."""
    return watch.patience(max(peer_timeout, 3 * heartbeat), start_timeout)
