"""The progress record (pure codec) and its mapped file."""
import signal
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from syqure_wf.transport import progress
from syqure_wf.errors import SyqureError


@given(n=st.integers(2, 20), data=st.data())
def test_record_round_trips(n, data):
    slots = data.draw(st.lists(st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)), min_size=n, max_size=n))
    raw = progress.encode("run-1", 1, n, slots)
    assert progress.decode(raw, "run-1", 1, n) == slots


@pytest.mark.parametrize("other", [("run-2", 1, 3), ("run-1", 0, 3), ("run-1", 1, 4)])
def test_record_of_another_run_party_or_size_is_not_resumed(other):
    raw = progress.encode("run-1", 1, 3, [(5, 6)] * 3)
    assert progress.decode(raw, *other) is None


@given(raw=st.binary(max_size=progress.SIZE + 10))
def test_garbage_is_never_resumed(raw):
    assert progress.decode(raw, "run-1", 1, 3) is None or len(raw) == progress.SIZE


def test_too_many_parties_is_refused():
    with pytest.raises(SyqureError):
        progress.encode("r", 0, progress.MAX_PARTIES + 1)


def test_mapped_counters_survive_a_killed_process(tmp_path):
    path = tmp_path / ".tmp" / "party1.progress"
    code = ("import os, signal, sys; from syqure_wf.transport.progress import Progress; "
            "p = Progress(sys.argv[1], 'run-1', 1, 3); assert p.resumed is None; "
            "p.sent(0, 41); p.received(2, 7); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], timeout=30)
    assert done.returncode == -signal.SIGKILL
    q = progress.Progress(path, "run-1", 1, 3)
    assert q.resumed == [(41, 0), (0, 0), (0, 7)]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    q.close(forget=True)
    assert not path.exists()
    r = progress.Progress(path, "run-2", 1, 3)  # another run starts from 0
    assert r.resumed is None and r.out(0) == 0
