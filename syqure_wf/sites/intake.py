"""Which of its peers' manifests an agent reads, and how much of them it
holds: the bounds that no number or size of peer files can pass
(PROTOCOL.md, "Bounds").

- Only submitters the policy accepts are read at all: a refused
  submitter's folder is never listed, nothing of it is stored or answered,
  and the audit log says so once.
- At most MAX_LISTED_PER_SUBMITTER run folders per submitter are looked
  at, MAX_LISTED in total; each manifest is read once per version (a
  manifest that is not JSON yet waits up to INCOMPLETE_GRACE).
- A new run is held only while its submitter has fewer than
  MAX_LIVE_PER_SUBMITTER runs not ended here, the site fewer than
  MAX_LIVE, and their manifests take less than MAX_STORED bytes.
- Every refusal is one audit line per event (``once``), never one per
  rewrite of a file.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from .board import Board, stamp, subfolders
from .lifecycle import ENDED
from .signature import MAX_SIGNED

Key = tuple[str, str]  # (submitter, run id)

MAX_LISTED_PER_SUBMITTER = 2000
MAX_LISTED = 20_000
MAX_LIVE_PER_SUBMITTER = 20
MAX_LIVE = 200
MAX_STORED = 512 << 20
INCOMPLETE_GRACE = 30.0  # a manifest that is not JSON, or a run folder without one, may still be arriving
TOLD_MAX = 10_000


class Intake:
    def __init__(self, board: Board, audit: Callable[..., None]) -> None:
        self.board = board
        self.audit = audit  # audit(event, run_id, program, **fields)
        self.seen: dict[Key, tuple] = {}  # the version of each manifest read
        self.incomplete: dict[Key, tuple[float, tuple]] = {}  # since when, in which version
        self.empty: dict[Key, float] = {}  # run folders without a manifest: since when
        self.told: dict[tuple, None] = {}  # events already in the audit log

    def once(self, what: tuple, event: str, run_id: str | None = None, program: str | None = None,
             **fields) -> bool:
        """Write an audit line for ``what`` unless it was written already."""
        if what in self.told:
            return False
        if len(self.told) >= TOLD_MAX:
            self.told.pop(next(iter(self.told)))
        self.told[what] = None
        self.audit(event, run_id, program, **fields)
        return True

    def changed(self, policy) -> Iterator[tuple[Key, tuple, bytes | None]]:
        """(key, version, bytes) of every manifest not read in this version,
        from the submitters ``policy`` accepts; bytes None for a file too
        large or not a regular file."""
        present: set[Key] = set()
        listed = 0
        now = time.time()
        for site in subfolders(self.board.datasites):
            if not self.board.jobs(site).is_dir():
                continue
            if not policy.accepts(site):
                self.once(("submitter", site), "refused", submitter=site, code="submitter",
                          reason=f"submitter {site} not allowed: its manifests are not read")
                continue
            cap = min(MAX_LISTED_PER_SUBMITTER, MAX_LISTED - listed)
            ids = self.board.run_ids(site, cap + 1)
            if len(ids) > cap:
                self.once(("limit", site), "refused", submitter=site, code="limit",
                          reason=f"more than {cap} runs from {site}: the others are not read")
                ids = ids[:cap]
            listed += len(ids)
            for run_id in ids:
                key = (site, run_id)
                present.add(key)
                path = self.board.manifest_path(site, run_id)
                version = stamp(path)
                if not version:
                    self.empty.setdefault(key, now)
                    continue
                self.empty.pop(key, None)
                if self.seen.get(key) == version:
                    continue
                yield key, version, self.board.read(path, MAX_SIGNED)
        for table in (self.seen, self.incomplete, self.empty):  # what is gone is forgotten
            for key in [k for k in table if k not in present]:
                del table[key]

    def read(self, key: Key, version: tuple) -> None:
        """This version of the manifest was read and answered (or refused)."""
        self.seen[key] = version
        self.incomplete.pop(key, None)

    def waits(self, key: Key, version: tuple) -> bool:
        """A manifest that is not JSON yet: True while it may still be arriving."""
        now = time.time()
        first, seen = self.incomplete.get(key, (now, version))
        if seen != version:
            first = now
        self.incomplete[key] = (first, version)
        return now - first < INCOMPLETE_GRACE

    def arriving(self) -> list[Key]:
        """Run folders without a readable manifest yet, within the grace: worth a watch."""
        now = time.time()
        return [k for k, since in self.empty.items() if now - since < INCOMPLETE_GRACE] + list(self.incomplete)

    def room(self, submitter: str, size: int, runs: dict) -> str | None:
        """Why a new run of ``size`` bytes from ``submitter`` cannot be held
        here now (None: it can). ``runs``: the agent's, with ``state``,
        ``record`` and ``size``."""
        live = [r for r in runs.values() if r.state not in ENDED]
        mine = sum(1 for r in live if r.record.get("submitter") == submitter)
        if mine >= MAX_LIVE_PER_SUBMITTER:
            return f"{submitter} has {mine} runs waiting or running here already (at most {MAX_LIVE_PER_SUBMITTER})"
        if len(live) >= MAX_LIVE:
            return f"this site holds {len(live)} runs not ended already (at most {MAX_LIVE})"
        stored = sum(r.size for r in live)
        if stored + size > MAX_STORED:
            return f"this site holds {stored >> 20} MB of manifests of runs not ended (at most {MAX_STORED >> 20} MB)"
        return None
