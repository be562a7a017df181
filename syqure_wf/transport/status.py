"""Status records: what each party says about itself, and what it learns
of its peers. One JSON file per party, rewritten atomically; a counter that
grows with each heartbeat lets a reader judge liveness on its own monotonic
clock, so clock jumps or skew between machines never matter.

A record that peers at other sites read (``published``: the syftbox
layout) carries nothing of this machine: no host or node name, no local
path (the ``hide`` folders are replaced by ``…`` in its strings), no
command line (the MPyC listener's port is in it). What the local runner
shows of those goes to a private copy (``private``) instead.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..files.private import read_small, write_private
from ..files.peer_json import mapping_of
from .protocol.liveness import DONE, FAILED, PATIENCE, RUNNING, STARTED, PeerWatch  # noqa: F401 (their home)


def status_path(status_dir: Path, pid: int) -> Path:
    return Path(status_dir) / f"party-{pid}.json"


def read_status(status_dir: Path, pid: int) -> dict | None:
    return mapping_of(read_small(status_path(status_dir, pid)))  # None while a sync replaces it


LOCAL = ("host", "node", "log", "command", "output", "wakeup")  # this machine's: never in a published record


class StatusRecord:
    """This party's own record; ``beat`` rewrites it with a new counter."""

    def __init__(self, status_dir: Path, pid: int, parties: int, run_id: str | None, *,
                 published: bool = False, private: Path | None = None, hide: tuple[str, ...] = ()):
        self.path = status_path(status_dir, pid)
        self.published, self.private = published, private
        self.hide = sorted({str(h) for h in hide if str(h) not in ("", "/")}, key=len, reverse=True)
        self._private_written: dict | None = None
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
        data = self.data
        if self.published:
            data = {k: self._hidden(v) for k, v in data.items() if k not in LOCAL}
            local = {**{k: v for k, v in self.data.items() if k in LOCAL}, "state": self.data.get("state")}
            if self.private is not None and local != self._private_written:  # not at every beat
                write_private(self.private, json.dumps(self.data, indent=1, sort_keys=True).encode())
                self._private_written = local
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _hidden(self, value):
        if isinstance(value, str):
            for folder in self.hide:
                value = value.replace(folder, "…")
            return value
        if isinstance(value, dict):
            return {k: self._hidden(v) for k, v in value.items()}
        return value
