"""A submitted run's life at each site, and what follows from every site's
published state: pure functions of records, no files.

    (new) -> pending_approval -> accepted -> ready -> running -> done
      |             |                |          |         |
      +-> rejected  +----------------+----------+---------+--> rejected | failed | cancelled
                    +----------------+----------+------------> expired

``NEXT`` draws the same, and ``check_transition`` holds every change of a
site's state to it (``run.py`` changes them). A site's party starts only
once every site is ``ready`` (or past it): MPC cannot run partially. One
site that rejects, fails, is cancelled or expires ends the run everywhere.
"""
from __future__ import annotations

from ..files.peer_json import finite
from .peertext import shown

PENDING = "pending_approval"
ACCEPTED = "accepted"
READY = "ready"
RUNNING = "running"
DONE = "done"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"

ENDED = (DONE, REJECTED, FAILED, CANCELLED, EXPIRED)
BAD_ENDS = (REJECTED, FAILED, CANCELLED, EXPIRED)
PREPARED = (READY, RUNNING, DONE)  # this site can run, or did
STALE_AFTER = 300.0  # seconds without a heartbeat from an agent whose run is live (the syftbox bound on peers)
FAIL_GRACE = 5.0  # seconds a failed party waits for a cancel that would explain it


STATES = (PENDING, ACCEPTED, READY, RUNNING, *ENDED)
NEW = ""  # a run this site has not answered yet
STOPPED = (REJECTED, FAILED, CANCELLED)  # how a live run ends before it is done
NEXT = {  # the states a run may go to from each; an ended run goes nowhere
    NEW: (PENDING, ACCEPTED, REJECTED),
    PENDING: (ACCEPTED, *STOPPED, EXPIRED),
    ACCEPTED: (READY, *STOPPED, EXPIRED),
    READY: (RUNNING, *STOPPED, EXPIRED),
    RUNNING: (DONE, *STOPPED),
}


class IllegalTransition(RuntimeError):
    """A change of state the lifecycle does not draw: a bug, never a peer's doing."""


def check_transition(old: str, new: str) -> None:
    if new not in NEXT.get(old, ()):
        raise IllegalTransition(f"a run cannot go from {old or 'new'} to {new}")
_TEXT = ("code", "reason", "approved_by", "agent", "result", "program", "manifest")
TEXT_MAX = 1000  # characters of one field of a peer's record


def peer_record(raw: dict, site: str, submitter: str, run_id: str) -> dict:
    """A site's published state, as a peer reads it: only its known fields,
    each of its type, strings escaped and bounded; ValueError otherwise."""
    if raw.get("site") != site or raw.get("run_id") != run_id or raw.get("submitter") != submitter:
        raise ValueError(f"a state that is not {site}'s of {submitter}'s run {run_id}")
    if raw.get("state") not in STATES:
        raise ValueError("no known state")
    record = {"site": site, "run_id": run_id, "submitter": submitter, "state": raw["state"]}
    for key in _TEXT:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} is not a string")
        if value is not None:
            record[key] = shown(value[:TEXT_MAX])
    for key in ("heartbeat", "expires"):
        value = raw.get(key, 0)
        if not finite(value):
            raise ValueError(f"{key} is not a finite number")
        record[key] = float(value)
    if isinstance(raw.get("pid"), int) and not isinstance(raw["pid"], bool):
        record["pid"] = raw["pid"]
    party = raw.get("party")
    if isinstance(party, dict):
        record["party"] = {k: shown(v[:TEXT_MAX]) for k, v in party.items()
                           if k in ("state", "reason", "sync") and isinstance(v, str)}
    return record


def current(record: dict | None, manifest_sha: str) -> dict | None:
    """A site's record if it is about this manifest (an earlier version's is not)."""
    return record if record and record.get("manifest") == manifest_sha else None


def blocking(records: dict[str, dict | None], me: str | None = None) -> tuple[str, dict] | None:
    """The site (other than ``me``) whose state ends the run, and its record:
    one that rejected, failed or expired before one cancelled because of it."""
    ended = [(BAD_ENDS.index(r["state"]) if r["state"] != CANCELLED else len(BAD_ENDS), site, r)
             for site, r in records.items() if site != me and r and r.get("state") in BAD_ENDS]
    if not ended:
        return None
    _, site, record = min(ended, key=lambda e: e[0])
    return site, record


def ending(site: str, record: dict) -> str:
    """A site's end of the run as one line: 'site state: reason'."""
    return f"{site} {record['state']}: {record.get('reason') or record.get('code') or 'no reason given'}"


def blocker(records: dict[str, dict | None], me: str | None = None) -> str | None:
    """``blocking`` as one line."""
    found = blocking(records, me)
    return ending(*found) if found else None


def may_start(records: dict[str, dict | None]) -> bool:
    """Every site is ready, or already running or done."""
    return all(r and r.get("state") in PREPARED for r in records.values())


def outcome(records: dict[str, dict | None], expires: float, now: float,
            stale_after: float = STALE_AFTER) -> tuple[str, str]:
    """What the submitter sees: ('done', ''), ('waiting', what for) or ('failed', why, naming the site)."""
    bad = blocker(records)
    if bad:
        return "failed", bad
    if all(r and r.get("state") == DONE for r in records.values()):
        return "done", ""
    started = all(r and r.get("state") in (RUNNING, DONE) for r in records.values())
    if not started and now > expires:
        late = [f"{s} ({r.get('state') if r else 'no answer'})" for s, r in records.items()
                if not (r and r.get("state") in PREPARED)]
        return "failed", f"the run expired before every site was ready: {', '.join(late)}"
    for site, r in records.items():
        # a heartbeat from the future is no proof of life either: it would never go stale
        silent = now - float(r.get("heartbeat") or 0) if r else 0.0
        if r and r.get("state") not in ENDED and r.get("state") != PENDING and abs(silent) > stale_after:
            return "failed", (f"{site}: its agent has been silent for {silent:.0f} s" if silent > 0 else
                              f"{site}: its heartbeat is {-silent:.0f} s ahead of this clock")
    waiting = [f"{s} {r.get('state') if r else 'no answer yet'}" for s, r in records.items()
               if not (r and r.get("state") == DONE)]
    return "waiting", ", ".join(waiting)
