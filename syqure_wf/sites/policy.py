"""A site's policy: which submitters it accepts, which programs run without
asking, which local file each named input is, and its limits. YAML,
checked against a schema, re-read by the agent when it changes.

``decide`` is pure: a manifest, a policy, this site's email and the time in,
a decision out (state, reason code, one line, how it was decided).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..run.config import check_schema, read_yaml
from ..transport.sitekey import FINGERPRINT
from .lifecycle import ACCEPTED, PENDING, REJECTED
from .manifest import Manifest

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "submitters": {"type": "array", "items": {"type": "string", "minLength": 1},
                       "description": "Emails whose runs this site considers; '*' for anyone."},
        "programs": {"type": "array", "items": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                     "description": "Program digests (syqure-wf digest) that run without asking."},
        "unlisted_programs": {"enum": ["ask", "reject"],
                              "description": "Another program: wait for approve/reject (ask), or reject."},
        "inputs": {"type": "object", "additionalProperties": {"type": "string"},
                   "propertyNames": {"pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"},
                   "description": "Input name to a local file."},
        "max_seconds": {"type": "number", "exclusiveMinimum": 0,
                        "description": "Longest a party of this site may run."},
        "max_parties": {"type": "integer", "minimum": 2},
        "share_results": {"enum": ["submitter", "parties", "none"],
                          "description": "Who reads this site's result (default: the submitter)."},
        "engine": {"type": "object", "additionalProperties": False,
                   "properties": {"codon": {"type": "string"}, "cache": {"type": "string"},
                                  "cert_dir": {"type": "string"},
                                  "build_flags": {"oneOf": [{"type": "string"},
                                                            {"type": "array", "items": {"type": "string"}}]}},
                   "description": "This site's own engine settings (where Codon is, its cache...)."},
        "isolation": {"enum": ["auto", "none", "netns"],
                      "description": "netns: this site's party in a network namespace of its own."},
        "peers": {"type": "array", "items": {"oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "object", "additionalProperties": False, "required": ["email"],
             "properties": {"email": {"type": "string", "minLength": 1},
                            "fingerprint": {"type": "string", "pattern": FINGERPRINT}}}]},
                  "description": "Sites this site computes with (an email, '*', or {email, fingerprint}: "
                                 "the fingerprint its site key must have, as 'syqure-wf keys' shows it)."},
    },
}


@dataclass
class Policy:
    submitters: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    unlisted_programs: str = "ask"
    inputs: dict[str, Path] = field(default_factory=dict)
    max_seconds: float = 24 * 3600.0
    max_parties: int = 64
    share_results: str = "submitter"
    engine: dict = field(default_factory=dict)
    isolation: str = "auto"
    peers: list = field(default_factory=list)
    source: Path | None = None

    def accepts(self, email: str) -> bool:
        return "*" in self.submitters or email in self.submitters


def load(path: str | os.PathLike) -> Policy:
    """The policy at ``path``; ConfigError (one line, naming file and key) otherwise."""
    source = Path(path).resolve()
    raw = read_yaml(source)
    check_schema(raw, str(source), SCHEMA)
    base = source.parent
    fix = lambda p: Path(os.path.normpath(os.path.join(base, os.path.expanduser(p))))  # noqa: E731
    engine = dict(raw.get("engine") or {})
    for key in ("cache", "cert_dir"):
        if key in engine:
            engine[key] = str(fix(engine[key]))
    return Policy(submitters=list(raw.get("submitters") or []), programs=list(raw.get("programs") or []),
                  unlisted_programs=raw.get("unlisted_programs", "ask"),
                  inputs={k: fix(v) for k, v in (raw.get("inputs") or {}).items()},
                  max_seconds=float(raw.get("max_seconds", 24 * 3600)),
                  max_parties=int(raw.get("max_parties", 64)),
                  share_results=raw.get("share_results", "submitter"), engine=engine,
                  isolation=raw.get("isolation", "auto"), peers=list(raw.get("peers") or []), source=source)


def pinned_fingerprints(peers: list, co_parties: list[str]) -> dict[str, str]:
    """The fingerprints ``peers`` (the policy's entries) pins for a run's
    co-parties: {email: fingerprint}. Their keys must be these, whatever this
    site saw before (PROTOCOL.md, "Site keys")."""
    return {e["email"]: e["fingerprint"] for e in peers
            if isinstance(e, dict) and e.get("fingerprint") and e.get("email") in co_parties}


@dataclass
class Decision:
    state: str  # accepted, pending_approval or rejected
    code: str = ""  # why, for machines: submitter, program, input, limit, expired, engine
    reason: str = ""  # why, in one line
    how: str = "policy"


def decide(m: Manifest, policy: Policy, me: str, now: float) -> Decision:
    """This site's answer to manifest ``m`` under ``policy``."""
    pid = m.pid_of(me)
    if now > m.expires:
        return Decision(REJECTED, "expired", f"the run expired at {_when(m.expires)}")
    if not policy.accepts(m.submitter):
        return Decision(REJECTED, "submitter", f"submitter {m.submitter} not allowed")
    if len(m.parties) > policy.max_parties:
        return Decision(REJECTED, "limit", f"{len(m.parties)} parties, more than this site's {policy.max_parties}")
    asked = m.config.get("timeouts", {}).get("run") or 0
    if asked > policy.max_seconds:
        return Decision(REJECTED, "limit", f"timeouts.run {asked:g} s, more than this site's "
                                           f"max_seconds {policy.max_seconds:g}")
    name = m.inputs.get(pid)
    if name is not None and name not in policy.inputs:
        return Decision(REJECTED, "input", f"input '{name}' not mapped here")
    if m.digest in policy.programs:
        return Decision(ACCEPTED, how="policy")
    if policy.unlisted_programs == "reject":
        return Decision(REJECTED, "program", f"program {m.digest} not approved")
    return Decision(PENDING, "program", f"program {m.digest} waits for this site's approval", how="")


def _when(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
