"""A site's policy: which submitters it accepts, which sites it computes
with, which runs start without asking, which local file each named input
is (and which runs may read it), and its limits. YAML, checked against a
schema, re-read by the agent when it changes.

``decide`` and ``redecide`` are pure: a manifest, a policy, this site's
email and the time in, a decision out (state, reason code, one line, how
it was decided). ``PolicyFile`` re-reads the file once a new version of it
has settled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..run.limits import parse as memory_of
from ..run.schema import check_schema, read_yaml
from ..keys.sitekey import FINGERPRINT
from .lifecycle import ACCEPTED, PENDING, READY, REJECTED
from .manifest import Manifest, ManifestError, check_email
from .notify import SCHEMA as NOTIFY

DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
WEEK = 7 * 86400.0
MAX_MESSAGE = 256 << 20  # bytes: a peer's message this site's party reads at most, unless the policy says
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "submitters": {"type": "array", "items": {"type": "string", "minLength": 1},
                       "description": "Emails whose runs this site considers; '*' for anyone."},
        "programs": {"type": "array", "items": DIGEST,
                     "description": "Run digests (syqure-wf digest) that run without asking."},
        "unlisted_programs": {"enum": ["ask", "reject"],
                              "description": "A run the policy does not approve by itself (another digest, "
                                             "a site not among the peers, too few parties): wait for "
                                             "approve/reject (ask), or reject."},
        "inputs": {"type": "object",
                   "additionalProperties": {"oneOf": [
                       {"type": "string"},
                       {"type": "object", "additionalProperties": False, "required": ["file"],
                        "properties": {"file": {"type": "string"},
                                       "programs": {"type": "array", "items": DIGEST}}}]},
                   "propertyNames": {"pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"},
                   "description": "Input name to a local file, or to {file, programs: the only run "
                                  "digests that may read it}."},
        "max_seconds": {"type": "number", "exclusiveMinimum": 0,
                        "description": "Longest a party of this site may run."},
        "max_parties": {"type": "integer", "minimum": 2},
        "min_parties": {"type": "integer", "minimum": 2,
                        "description": "Fewest parties a run may have (default 3: with two, the other "
                                       "party alone learns what the result reveals of this site's input)."},
        "max_expiry": {"type": "number", "exclusiveMinimum": 0,
                       "description": "Seconds a run may wait for every site at most (default 7 days)."},
        "max_message": {"type": "integer", "minimum": 1024,
                        "description": "Largest message (bytes) a peer may send this site's party "
                                       "(default 256 MiB); a run asking for more is refused."},
        "memory": {"type": ["integer", "string"],
                   "description": "Each party's memory limit at this site: bytes, or 4G, 512M; 0 - none "
                                  "(default: half of the machine's memory)."},
        "min_other_holders": {"type": "integer", "minimum": 0,
                              "description": "Disclosure: the fewest other sites whose inputs this site's "
                                             "input must be combined with (default 1: never a run over "
                                             "this site's input alone)."},
        "max_reads": {"type": "integer", "minimum": 1,
                      "description": "Disclosure: how many runs may read one input in reads_period "
                                     "(default 20)."},
        "reads_period": {"type": "number", "exclusiveMinimum": 0,
                         "description": "The period of max_reads, in seconds (default 86400: a day)."},
        "share_results": {"enum": ["submitter", "parties", "none"],
                          "description": "Who reads this site's result (default: the submitter)."},
        "engine": {"type": "object", "additionalProperties": False,
                   "properties": {"codon": {"type": "string"}, "cache": {"type": "string"},
                                  "cert_dir": {"type": "string"},
                                  "build_flags": {"oneOf": [{"type": "string"},
                                                            {"type": "array", "items": {"type": "string"}}]}},
                   "description": "This site's own engine settings (where Codon is, its cache...)."},
        "isolation": {"enum": ["auto", "none", "netns"],
                      "description": "netns: this site's party in a network namespace of its own, or no "
                                     "run; auto (default): one where this machine can make it; none."},
        "confine": {"enum": ["auto", "required"],
                    "description": "required: no run without Landlock and the seccomp socket filter; "
                                   "auto (default): each where this machine has it, said in the party's record."},
        "peers": {"type": "array", "items": {"oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "object", "additionalProperties": False, "required": ["email", "fingerprint"],
             "properties": {"email": {"type": "string", "minLength": 1},
                            "fingerprint": {"type": "string", "pattern": FINGERPRINT}}}]},
                  "description": "The sites this site computes with (default: the submitters): an email, "
                                 "'*' for any, or {email, fingerprint}: the fingerprint its site key must "
                                 "have, as 'syqure-wf keys' shows it."},
        "notify": NOTIFY,
    },
}


@dataclass
class Policy:
    submitters: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    unlisted_programs: str = "ask"
    inputs: dict[str, Path] = field(default_factory=dict)
    input_programs: dict[str, list[str]] = field(default_factory=dict)  # input name -> the only digests reading it
    max_seconds: float = 24 * 3600.0
    max_parties: int = 64
    min_parties: int = 3
    max_expiry: float = WEEK
    max_message: int = MAX_MESSAGE
    memory: int | None = None  # bytes each party may take (run/limits.py); None: its default
    min_other_holders: int = 1
    max_reads: int = 20
    reads_period: float = 86400.0
    share_results: str = "submitter"
    engine: dict = field(default_factory=dict)
    isolation: str = "auto"
    confine: str = "auto"  # required: no run without every wall (run/confine.py)
    peers: dict[str, str | None] | None = None  # email or '*' -> pinned key fingerprint; None: the submitters
    notify: dict = field(default_factory=dict)  # whom to tell of a run (sites/notify.py)
    source: Path | None = None

    def accepts(self, email: str) -> bool:
        return "*" in self.submitters or email in self.submitters

    def computes_with(self, email: str) -> bool:
        peers = self.peers if self.peers is not None else dict.fromkeys(self.submitters)
        return "*" in peers or email in peers

    def fingerprint(self, email: str) -> str | None:
        """The key fingerprint this site pins for ``email``, if any."""
        return (self.peers or {}).get(email)


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
    peers = None
    if "peers" in raw:
        peers = {}
        for i, p in enumerate(raw["peers"]):
            email, pin = (p, None) if isinstance(p, str) else (p["email"], p["fingerprint"])
            peers[_email(email, source, f"peers.{i}")] = pin
    for i, email in enumerate(raw.get("submitters") or []):
        _email(email, source, f"submitters.{i}")
    inputs = {k: v if isinstance(v, str) else v["file"] for k, v in (raw.get("inputs") or {}).items()}
    return Policy(submitters=list(raw.get("submitters") or []), programs=list(raw.get("programs") or []),
                  unlisted_programs=raw.get("unlisted_programs", "ask"),
                  inputs={k: fix(v) for k, v in inputs.items()},
                  input_programs={k: list(v["programs"]) for k, v in (raw.get("inputs") or {}).items()
                                  if isinstance(v, dict) and "programs" in v},
                  max_seconds=float(raw.get("max_seconds", 24 * 3600)),
                  max_parties=int(raw.get("max_parties", 64)), min_parties=int(raw.get("min_parties", 3)),
                  max_expiry=float(raw.get("max_expiry", WEEK)),
                  max_message=int(raw.get("max_message", MAX_MESSAGE)),
                  memory=memory_of(raw["memory"], f"{source}: memory") if "memory" in raw else None,
                  min_other_holders=int(raw.get("min_other_holders", 1)), max_reads=int(raw.get("max_reads", 20)),
                  reads_period=float(raw.get("reads_period", 86400)),
                  share_results=raw.get("share_results", "submitter"), engine=engine,
                  isolation=raw.get("isolation", "auto"), confine=raw.get("confine", "auto"),
                  peers=peers, source=source, notify=dict(raw.get("notify") or {}))


class PolicyFile:
    """A policy file, re-read when it changes: a new version once it stayed
    the same SETTLE seconds (a decision on half a file would reject runs)."""
    SETTLE = 0.5

    def __init__(self, path: Path) -> None:
        self.path = path
        self.policy = load(path)
        self._seen = _stamp(path)
        self._new: tuple[tuple, float] | None = None  # a new version, since when

    @property
    def settling(self) -> bool:
        return self._new is not None

    def changed(self, now: float) -> Policy | None:
        """The policy, re-read if its file changed and settled (else None);
        ConfigError for a new version that is no policy (the last one stays)."""
        stamp = _stamp(self.path)
        if stamp == self._seen:
            self._new = None
            return None
        if self._new is None or self._new[0] != stamp:
            self._new = (stamp, now)
        if now - self._new[1] < self.SETTLE:
            return None
        self._seen, self._new = stamp, None
        self.policy = load(self.path)
        return self.policy


def _stamp(path: Path) -> tuple:
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return ()


def _email(value: str, source: Path, key: str) -> str:
    if value == "*":
        return value
    try:
        return check_email(value, "email")
    except ManifestError as exc:
        raise ConfigError(f"{source}: {key}: {exc}") from None


@dataclass
class Decision:
    state: str  # accepted, pending_approval or rejected
    code: str = ""  # why, for machines: submitter, peers, parties, program, input, limit, expired
    reason: str = ""  # why, in one line
    how: str = "policy"
    why: str = ""  # what an operator is asked about, beside the digest (peers, parties)


def decide(m: Manifest, policy: Policy, me: str, now: float, keys: dict | None = None,
           known: dict | None = None, reads: int = 0) -> Decision:
    """This site's answer to manifest ``m`` under ``policy``: refused outright
    (expired, submitter, limit, input, disclosure, a key that changed),
    approved by the policy, or, for what only an operator may approve
    (another digest, a site not among the peers, too few parties, a site key
    never met), asked or refused as ``unlisted_programs`` says. ``keys``: each
    other site's published fingerprint (None: none yet), ``known``: the
    fingerprints pinned here, ``reads``: the runs that read this site's input
    within ``reads_period``."""
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
    if m.config.get("max_message", 0) > policy.max_message:
        return Decision(REJECTED, "limit", f"max_message {m.config['max_message']} bytes, more than this "
                                           f"site's {policy.max_message}")
    name = m.inputs.get(pid)
    if name is not None and name not in policy.inputs:
        return Decision(REJECTED, "input", f"input '{name}' not mapped here")
    if name is not None and name in policy.input_programs and m.digest not in policy.input_programs[name]:
        return Decision(REJECTED, "input", f"input '{name}' is not for program {m.digest}")
    if name is not None:
        others = len({p for p in m.inputs if p != pid})
        if others < policy.min_other_holders:
            return Decision(REJECTED, "disclosure", f"input '{name}' would be combined with {others} other "
                                                    f"input(s), fewer than this site's min_other_holders "
                                                    f"{policy.min_other_holders}")
        if reads >= policy.max_reads:
            return Decision(REJECTED, "disclosure", f"input '{name}' was read by {reads} runs within "
                                                    f"{policy.reads_period:g} s: this site's max_reads is "
                                                    f"{policy.max_reads}")
    new_keys = []
    for email, fp in sorted((keys or {}).items()):
        pin, seen = policy.fingerprint(email), (known or {}).get(email)
        if fp is not None and (pin or seen) not in (None, fp):
            return Decision(REJECTED, "key", f"site {email} publishes the key {fp}, not the "
                                             f"{'one the policy lists' if pin else 'one pinned here'}, {pin or seen}")
        if pin is None and seen is None:
            new_keys.append(f"{email} {fp or '(no key published yet)'}")
    strangers = [p for p in m.parties if p != me and not policy.computes_with(p)]
    if strangers:
        return _unlisted(policy, "peers", m.digest, f"{strangers[0]} is not among this site's peers")
    if len(m.parties) < policy.min_parties:
        return _unlisted(policy, "parties", m.digest, f"{len(m.parties)} parties, fewer than this site's "
                                                     f"min_parties {policy.min_parties}")
    # a site never met: an operator sees its key (show) before anything of this site goes to it
    met = "new site key " + ", ".join(new_keys) if new_keys else ""
    if m.digest in policy.programs:
        return _unlisted(policy, "key", m.digest, met) if met else Decision(ACCEPTED, how="policy")
    return _unlisted(policy, "program", m.digest, met)


def _unlisted(policy: Policy, code: str, digest: str, why: str) -> Decision:
    """What only an operator may approve: refused, or waiting for them."""
    if policy.unlisted_programs == "reject":
        return Decision(REJECTED, code, why or f"program {digest} not approved")
    return Decision(PENDING, code, f"program {digest} waits for this site's approval" + (f": {why}" if why else ""),
                    how="", why=why)


ASKABLE = ("peers", "parties", "key", "program")  # what an operator may approve by hand


def redecide(state: str, approved_by: str, d: Decision) -> Decision | None:
    """A run not started yet, under a changed policy: its new decision, or
    None where it stands. A waiting run the policy now approves goes on; an
    approval the policy withdrew, and any run it now refuses, is rejected
    with code ``policy``; an operator's approval stands unless the policy
    now refuses the run outright (submitter, limits, input)."""
    if d.code == "expired":
        return None  # the agent's own clock ends it
    outright = d.state == REJECTED and d.code not in ASKABLE
    if state == PENDING:
        if d.state == PENDING:
            return None
        return d if d.state == ACCEPTED else Decision(REJECTED, "policy", f"this site's policy changed: {d.reason}")
    if state not in (ACCEPTED, READY) or d.state == ACCEPTED or (approved_by == "hand" and not outright):
        return None
    return Decision(REJECTED, "policy", "this site's policy changed: " + (
        d.reason if d.state == REJECTED else "it no longer approves this run"))


def expiry(m: Manifest, policy: Policy, now: float) -> float:
    """When the run expires here: its own expiry, at most ``max_expiry`` from now."""
    return min(m.expires, now + policy.max_expiry)


def _when(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
