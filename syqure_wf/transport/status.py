"""Status records: what each party says about itself, and what it learns
of its peers. One JSON file per party, rewritten atomically; a counter that
grows with each heartbeat lets a reader judge liveness on its own monotonic
clock, so clock jumps or skew between machines never matter.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .files import read_small, write_private
from .protocol.records import mapping_of
from .protocol.liveness import DONE, FAILED, PATIENCE, RUNNING, STARTED, PeerWatch  # noqa: F401 (their home)


def status_path(status_dir: Path, pid: int) -> Path:
    return Path(status_dir) / f"party-{pid}.json"


def read_status(status_dir: Path, pid: int) -> dict | None:
    return mapping_of(read_small(status_path(status_dir, pid)))  # None while a sync replaces it


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
