"""Liveness bookkeeping (pure): a peer's heartbeat judged on this party's
monotonic clock; over a synced folder, bounds stretch to the sync's pace."""
import pytest

from syqure_wf.errors import PeerFailed
from syqure_wf.transport.status import PATIENCE, PeerWatch


def beat(watch: PeerWatch, count: int, now: float) -> None:
    watch.observe({"run_id": "r", "state": "running", "heartbeat": count}, now)


def test_local_folder_peer_is_gone_after_the_peer_timeout():
    w = PeerWatch(1, "r")
    for t in range(5):
        beat(w, t, float(t))
    w.check(9.0, 0.0, 60, peer_timeout=5)
    with pytest.raises(PeerFailed, match="party 1 stopped: no heartbeat"):
        w.check(9.5, 0.0, 60, peer_timeout=5)


def test_wall_clock_in_the_record_is_never_used():
    w = PeerWatch(1, "r")
    w.observe({"run_id": "r", "state": "running", "heartbeat": 1, "seen_at": 1e12}, 0.0)
    w.observe({"run_id": "r", "state": "running", "heartbeat": 2, "seen_at": -1e12}, 1.0)
    w.check(5.5, 0.0, 60, peer_timeout=5)


def test_synced_folder_bursts_minutes_apart_stretch_the_bound():
    w = PeerWatch(1, "r", synced=True, started=0.0)
    beat(w, 90, 90.0)  # first news after a 90 s sync: until a second, a few times that
    assert w.patience(30, 600) == PATIENCE * 90
    w.check(179.0, 0.0, 600, peer_timeout=30)
    beat(w, 180, 180.0)  # bursts 90 s apart: a live peer is silent that long
    assert w.patience(30, 600) == PATIENCE * 90
    w.check(180.0 + PATIENCE * 90 - 1, 0.0, 600, peer_timeout=30)
    with pytest.raises(PeerFailed, match="no heartbeat"):
        w.check(180.0 + PATIENCE * 90 + 1, 0.0, 600, peer_timeout=30)


def test_synced_folder_with_a_quick_sync_keeps_the_given_bound():
    w = PeerWatch(1, "r", synced=True, started=0.0)
    assert w.patience(30, 600) == 600  # nothing seen yet: the start bound
    beat(w, 0, 2.0)
    assert w.patience(30, 600) == 30  # a peer that dies after its first beat is found in 30 s
    with pytest.raises(PeerFailed):
        w.check(33.0, 0.0, 600, peer_timeout=30)
    for t in range(1, 10):
        beat(w, t, 2.0 + t * 1.2)
    assert w.patience(30, 600) == 30


def rec(inc, count, state="running", run_id=None):
    return {"run_id": run_id, "state": state, "heartbeat": count, "incarnation": inc}


def test_a_writer_counts_only_once_its_heartbeat_moves():
    w = PeerWatch(0, None)
    w.observe(rec("a", 5), 0.0)
    assert not w.writes_as("a")  # one reading: maybe a record left by a dead run
    w.observe(rec("a", 5), 1.0)
    assert not w.writes_as("a")
    w.observe(rec("a", 6), 1.1)
    assert w.writes_as("a") and not w.writes_as("b") and not w.writes_as(None)
    w.observe(rec("b", 0), 2.0)  # a new process: it proves itself again
    assert not w.writes_as("b")
    w.observe(rec("b", 1), 3.0)
    assert w.writes_as("b") and not w.writes_as("a")
    w.observe(rec("b", 2, "done"), 4.0)
    assert not w.writes_as("b")  # a finished writer has nothing left unconsumed


def test_without_a_run_id_a_dead_runs_record_fails_nobody():
    w = PeerWatch(0, None)
    w.observe(rec("old", 9, "failed"), 0.0)
    w.check(100.0, 0.0, 600, peer_timeout=5)  # neither "failed" nor "stopped": not yet started
    with pytest.raises(PeerFailed, match="never started"):
        w.check(601.0, 0.0, 600, peer_timeout=5)
    w.observe(rec("new", 0, "failed"), 602.0)  # another incarnation: its word counts
    with pytest.raises(PeerFailed, match="party 0 failed"):
        w.check(602.0, 0.0, 600, peer_timeout=5)


def test_with_a_run_id_the_first_reading_is_trusted():
    w = PeerWatch(0, "r")
    w.observe(rec("x", 3, "failed", run_id="r"), 0.0)
    with pytest.raises(PeerFailed, match="party 0 failed"):
        w.check(0.0, 0.0, 600, peer_timeout=5)
    w2 = PeerWatch(0, "r")
    w2.observe(rec("x", 3, "failed", run_id="other"), 0.0)  # another run's: ignored
    w2.check(0.0, 0.0, 600, peer_timeout=5)
