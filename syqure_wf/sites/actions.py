"""What one run (``run.py``) asks the agent to do; ``effects.py`` does it.
Those marked with an outcome are answered by an observation."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Publish:
    """Keep ``record`` in the agent's folder and publish it as this site's state."""
    record: dict


@dataclass(frozen=True)
class Audit:
    event: str
    run_id: str
    program: str | None
    fields: dict


@dataclass(frozen=True)
class Say:
    line: str


@dataclass(frozen=True)
class Prepare:
    """Its own copy of the program and its run configuration.
    Outcome: Prepared, NotRunnable or ConfigFailed."""


@dataclass(frozen=True)
class StartBuild:
    """Outcome: BuildStarted."""


@dataclass(frozen=True)
class StartParty:
    """Take the digest of its own copy again; start the party if it is the
    approved one. Outcome: PartyStarted or ProgramChanged."""


@dataclass(frozen=True)
class Stop:
    """Its build or party, and every process it started: TERM, then KILL."""


@dataclass(frozen=True)
class Share:
    """Its result, to whom this site's policy allows. Outcome: Shared."""


@dataclass(frozen=True)
class Release:
    """Stop watching the run's folders at these sites."""
    sites: tuple[str, ...]


@dataclass(frozen=True)
class Pin:
    """Pin the site keys an operator approved (email -> fingerprint), compare-
    and-set. Outcome: Pinned (with an error if another key was pinned meanwhile)."""
    keys: dict
    by: str | None = None
