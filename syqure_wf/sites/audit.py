"""The agent's audit log: one JSON line per event, appended, never rewritten
(received, decision and how it was made, compiled, ready, started, done,
failed, cancelled, rejected, refused), each with the run id and the program's digest."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..files.private import open_private


class Audit:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, run_id: str | None = None, program: str | None = None, **fields) -> None:
        line = json.dumps({"time": round(time.time(), 3), "event": event, "run_id": run_id,
                           "program": program, **fields}, sort_keys=True) + "\n"
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())  # one write per line: lines never interleave
        finally:
            os.close(fd)


def read(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
