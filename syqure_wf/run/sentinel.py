"""A party's last word. A runner killed with SIGKILL, or whose whole process
group a scheduler or Biovault kills, writes no final status record: its peers
would learn of it only after ``timeouts.peer`` of silence (300 s over SyftBox).
This small process, in a session of its own so that a group kill spares it,
waits for its runner to end; if the runner's record then says neither
``done`` nor ``failed``, it writes ``failed``, naming the runner, and its
peers stop within a sync hop. It dies with its machine only."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from ..files.private import read_small, write_private
from ..files.peer_json import mapping_of
from ..transport.status import DONE, FAILED


def start(record: Path) -> subprocess.Popen | None:
    """Watch this process (the runner) and its status record ``record``."""
    try:
        return subprocess.Popen([sys.executable, "-m", "syqure_wf.run.sentinel", str(os.getpid()), str(record)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    except OSError:
        return None  # no last word: the peers' bound still finds a dead runner


def wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while True:  # no pidfd (old kernel): look twice a second
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)
    with os.fdopen(fd) as handle:
        select.select([handle], [], [])


def last_word(record: Path, runner: int) -> bool:
    """``failed`` into the record if the runner left it unfinished; True if written."""
    data = mapping_of(read_small(record))
    if data is None or data.get("state") in (DONE, FAILED):
        return False
    data.update(state=FAILED, heartbeat=int(data.get("heartbeat") or 0) + 1, seen_at=time.time(),
                reason=f"party {data.get('pid')}'s runner (process {runner} on {os.uname().nodename}) "
                       "was killed before it could say why")
    write_private(record, json.dumps(data, indent=1, sort_keys=True).encode())
    return True


def main() -> None:
    runner, record = int(sys.argv[1]), Path(sys.argv[2])
    wait_for_exit(runner)
    try:
        last_word(record, runner)
    except OSError:
        pass


if __name__ == "__main__":
    main()
