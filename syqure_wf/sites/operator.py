"""A site's operator: ``approve`` and ``reject`` a run its agent holds, and
``runs``, every run the agent answered. A request goes into the agent's own
folder (never synced), bound to the version of the manifest it was about.
A run is its submitter's run id: ``--submitter`` tells two apart."""
from __future__ import annotations

import getpass
import secrets
import time
from pathlib import Path

from ..errors import ConfigError
from ..files.private import make_private_dir, write_private
from . import lifecycle as lc
from .board import Board, dump, read_record

ANSWER_WAIT = 15.0  # seconds for a running agent to act on a request


def run_folder(board: Board, run_id: str, submitter: str | None = None) -> Path:
    """The agent's folder of run ``run_id`` (from ``submitter``, where two
    submitters used that id)."""
    found = sorted(p.parent for p in (board.private / "runs").glob(f"*/{run_id}/record.json")
                   if submitter is None or p.parent.parent.name == submitter)
    if not found:
        raise ConfigError(f"no run {run_id}{f' from {submitter}' if submitter else ''} at {board.me} "
                          "(syqure-wf runs lists them)")
    if len(found) > 1:
        raise ConfigError(f"run {run_id} came from {', '.join(p.parent.name for p in found)}: "
                          "say which with --submitter")
    return found[0]


def record_of(board: Board, run_id: str, submitter: str | None = None) -> dict:
    record = read_record(run_folder(board, run_id, submitter) / "record.json")
    if record is None:
        raise ConfigError(f"the record of run {run_id} at {board.me} cannot be read")
    return record


def request(board: Board, run_id: str, action: str, reason: str = "", say=print,
            submitter: str | None = None, manifest: str | None = None, by: str | None = None) -> str:
    """Ask the agent to approve or reject ``run_id``; its state once it acted.
    ``manifest``: the version the operator read (the desk's page), else the kept one."""
    record = record_of(board, run_id, submitter)
    submitter = record["submitter"]
    if manifest is not None and manifest != record["manifest"]:
        raise ConfigError(f"run {run_id} at {board.me} changed since it was read: review it again")
    if action == "approve" and record["state"] != lc.PENDING:
        raise ConfigError(f"run {run_id} is not waiting for approval at {board.me} (it is {record['state']})")
    if record["state"] in lc.ENDED:
        raise ConfigError(f"run {run_id} has already ended at {board.me} ({record['state']})")
    make_private_dir(board.requests)
    write_private(board.requests / f"{run_id}-{secrets.token_hex(3)}.json",
                  dump({"run_id": run_id, "submitter": submitter, "action": action, "reason": reason,
                        "manifest": manifest or record["manifest"], "by": by or getpass.getuser(), "time": round(time.time(), 3)}))
    deadline = time.time() + ANSWER_WAIT
    while time.time() < deadline:
        now = record_of(board, run_id, submitter)["state"]
        if now != record["state"]:
            say(f"run {run_id} at {board.me}: {now}")
            return now
        time.sleep(0.1)
    say(f"run {run_id} at {board.me}: {action} queued; the agent acts on it when it runs")
    return record["state"]


def take_requests(board: Board) -> list[dict]:
    """The requests waiting for the agent, each taken once (read, and gone)."""
    found = []
    for path in sorted(board.requests.glob("*.json")):
        request = read_record(path)
        path.unlink(missing_ok=True)
        if request is not None:
            found.append(request)
    return found


def runs(board: Board) -> list[dict]:
    found = []
    for path in sorted((board.private / "runs").glob("*/*/record.json")):
        record = read_record(path)
        if record is not None:
            found.append(record)
    return found


def table(records: list[dict]) -> list[str]:
    head = ("RUN", "STATE", "SUBMITTER", "DIGEST", "APPROVED")
    rows = [head] + [(r.get("run_id", ""), r.get("state", ""), r.get("submitter", ""),
                      r.get("program") or "-", r.get("approved_by") or "-") for r in records]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
