"""The local runner's wait (run/local.py): a party's exit ends the wait at
once, not at the display's next tick. Real processes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syqure_wf.run.local import exit_fd, wait_for_exit

LONG = 600.0  # a tick no test waits out: only an exit ends these waits


@pytest.mark.timeout(60)
def test_the_wait_ends_when_a_party_exits_not_at_the_tick():
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    fds = [exit_fd(slow), exit_fd(quick)]
    try:
        if None in fds:
            pytest.skip("no pidfd_open here: the runner waits a tick")
        wait_for_exit(fds, LONG)
        assert quick.poll() == 0 and slow.poll() is None
    finally:
        slow.kill()
        slow.wait(10)
        quick.wait(10)
        for fd in fds:
            if fd is not None:
                os.close(fd)
