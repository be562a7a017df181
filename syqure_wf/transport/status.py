"""Status records: what each party says about itself, and what it learns
of its peers. One JSON file per party, rewritten atomically; a counter that
grows with each heartbeat lets a reader judge liveness on its own monotonic
clock, so clock jumps or skew between machines never matter.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PeerFailed
from .folder import read_small, write_private

STARTED, RUNNING, DONE, FAILED = "started", "running", "done", "failed"


def status_path(status_dir: Path, pid: int) -> Path:
    return Path(status_dir) / f"party-{pid}.json"


def read_status(status_dir: Path, pid: int) -> dict | None:
    raw = read_small(status_path(status_dir, pid))
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None  # being replaced by a sync: read again next beat
    return record if isinstance(record, dict) else None


class StatusRecord:
    """This party's own record; ``beat`` rewrites it with a new counter."""

    def __init__(self, status_dir: Path, pid: int, parties: int, run_id: str | None):
        self.path = status_path(status_dir, pid)
        self.data: dict = {"pid": pid, "parties": parties, "run_id": run_id, "state": STARTED,
                           "heartbeat": 0, "host": os.uname().nodename, "started_at": time.time()}
        if os.environ.get("SLURMD_NODENAME"):  # the cluster node, where nodes may share a host
            self.data["node"] = os.environ["SLURMD_NODENAME"]

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.write()

    def beat(self, **fields) -> None:
        self.data["heartbeat"] += 1
        self.data["seen_at"] = time.time()
        self.update(**fields)

    def write(self) -> None:
        write_private(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())


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
