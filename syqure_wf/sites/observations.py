"""What the agent's loop tells one run (``run.py``): each observation is a
fact it read or a thing it did, never a file or a process."""
from __future__ import annotations

from dataclasses import dataclass

from .manifest import Manifest
from .policy import Policy


@dataclass(frozen=True)
class Received:
    """A manifest addressed to this site, read for the first time."""
    manifest: Manifest
    policy: Policy
    full: str | None = None  # why this site cannot hold it now (intake.room): rejected, code limit
    keys: dict | None = None  # each other site's published key fingerprint (None: none yet)
    known: dict | None = None  # the fingerprints this site pinned (known_sites)
    reads: int = 0  # runs that read this site's input within the policy's period


@dataclass(frozen=True)
class Refused:
    """A manifest no site can run, naming this site: answered once."""
    code: str
    reason: str


@dataclass(frozen=True)
class ManifestChanged:
    """The manifest this site answered is another now (``program``: its
    digest), or no longer one at all (``error``)."""
    program: str | None = None
    error: str = ""


@dataclass(frozen=True)
class PolicyChanged:
    policy: Policy


@dataclass(frozen=True)
class Request:
    """The operator's approve or reject, of one version of the manifest."""
    action: str
    manifest: str | None
    by: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Look:
    """The run's files and process now."""
    cancelled: bool  # the submitter's cancel.json
    peers: dict  # the other sites' records of this manifest (None: no answer yet)
    exit: int | None = None  # its build's or party's exit code; None while it runs; -1 with none
    party: dict | None = None  # its party's status record, while it runs


@dataclass(frozen=True)
class Tick:
    """The clock: a live run says it is alive every HEARTBEAT seconds."""


@dataclass(frozen=True)
class Restarted:
    """The agent started again, with this run on record."""


@dataclass(frozen=True)
class Stopping:
    """The agent stops while this run's build or party runs."""


# -- the outcome of an action (actions.py)
@dataclass(frozen=True)
class Prepared:
    needs_build: bool


@dataclass(frozen=True)
class NotRunnable:
    """The manifest cannot run here (an input not mapped...): rejected."""
    code: str
    reason: str


@dataclass(frozen=True)
class ConfigFailed:
    reason: str


@dataclass(frozen=True)
class BuildStarted:
    pass


@dataclass(frozen=True)
class PartyStarted:
    pass


@dataclass(frozen=True)
class ProgramChanged:
    """This site's copy of the program, taken again just before the start, is ``found``."""
    found: str


@dataclass(frozen=True)
class Shared:
    result: str  # shared or kept


@dataclass(frozen=True)
class Pinned:
    """The keys an operator approved, pinned (``error``: why not)."""
    by: str | None = None
    error: str = ""
