"""One run at this site, as a pure state machine: what the agent's loop saw
in (``observations.py``), what it is to do out (``actions.py``). No files,
no processes, no clock of its own: the loop (``agent.py``) gathers each
observation, passes the time, and performs the actions (``effects.py``);
an action with an outcome (a build started, the program found changed...)
comes back as the next observation.

Every change of state goes through ``_enter`` or ``_end``, which hold it
against ``lifecycle.NEXT``: a transition the lifecycle does not draw is a
bug, and raises ``lifecycle.IllegalTransition``. An ended run hears
nothing more.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import actions as do
from . import lifecycle as lc
from . import observations as seen
from .intake import Key
from .manifest import Manifest
from .peertext import outgoing
from .policy import Decision, decide, expiry, redecide

HEARTBEAT = 10.0  # seconds between a site's state records while a run is live


@dataclass
class Run:
    """This site's part in one submitted run."""
    record: dict  # what this site publishes (and keeps) about the run
    manifest: Manifest | None = None  # while the run is live
    size: int = 0  # bytes of its manifest held here
    incarnation: str = ""  # the agent's, stamped on every record it publishes
    process: str | None = None  # "build" or "party" while one runs for it
    exited: float = 0.0  # when the party failed (a cancel may still explain it)
    exit_code: int = 0
    party: dict = field(default_factory=dict)  # its party's status record, as last seen
    seen_keys: tuple = (None, None, 0)  # the keys, pins and reads it was decided on: decided again on the same
    _out: list = field(default_factory=list, init=False, repr=False)  # the actions of the event in hand
    _now: float = field(default=0.0, init=False, repr=False)

    @classmethod
    def new(cls, key: Key, site: str, incarnation: str, manifest_sha: str, readers: list[str]) -> "Run":
        """A run this site has not answered yet (its state ``lc.NEW``)."""
        return cls({"run_id": key[1], "site": site, "pid": None, "submitter": key[0], "program": None,
                    "manifest": manifest_sha, "readers": readers, "state": lc.NEW, "code": "", "reason": "",
                    "approved_by": "", "agent": incarnation, "heartbeat": 0, "expires": 0},
                   incarnation=incarnation)

    @property
    def state(self) -> str:
        return self.record["state"]

    @property
    def key(self) -> Key:
        return self.record["submitter"], self.record["run_id"]

    @property
    def me(self) -> str:
        return self.record["site"]

    @property
    def expires(self) -> float:
        return float(self.record.get("expires") or (self.manifest.expires if self.manifest else 0))

    def deadline(self) -> float | None:
        """When this run wants to be looked at again, without any file event."""
        if self.state in lc.ENDED or self.manifest is None:
            return None
        at = float(self.record.get("heartbeat", 0)) + HEARTBEAT
        if self.exited:
            at = min(at, self.exited + lc.FAIL_GRACE)
        if self.state != lc.RUNNING:
            at = min(at, self.expires)
        return at

    # -- the one entry: an observation and the time in, actions out
    def handle(self, event, now: float) -> list:
        self._out, self._now = [], now
        if self.state not in lc.ENDED:
            self._HANDLERS[type(event)](self, event)
        out, self._out = self._out, []
        return out

    def _received(self, e: seen.Received) -> None:
        m = e.manifest
        d = Decision(lc.REJECTED, "limit", e.full) if e.full else \
            decide(m, e.policy, self.me, self._now, e.keys, e.known, e.reads)
        self.manifest, self.seen_keys = m, (e.keys, e.known, e.reads)
        self.record.update(pid=m.pid_of(self.me), program=m.digest, manifest=m.sha256, readers=m.readers(),
                           expires=round(expiry(m, e.policy, self._now), 3), keys=dict(e.keys or {}),
                           input=m.inputs.get(m.pid_of(self.me)))
        self._audit("received", submitter=m.submitter, parties=m.parties)
        self._say(f"{m.run_id} from {m.submitter}: {d.state}" + (f" ({d.reason})" if d.reason else f" by {d.how}"))
        self._decided(d)

    def _refused(self, e: seen.Refused) -> None:
        sub, rid = self.key
        self._say(f"{rid} from {sub}: refused: {e.reason}")
        self._end(lc.REJECTED, e.code, e.reason)

    def _restarted(self, e: seen.Restarted) -> None:
        if self.manifest is None:
            self._end(lc.FAILED, "agent_restarted", f"the agent of {self.me} restarted and cannot read "
                      "the manifest it kept")
        elif self.state == lc.RUNNING:
            self._end(lc.FAILED, "agent_restarted",
                      f"the agent of {self.me} restarted while its party ran; the party was stopped")
        elif self.state == lc.ACCEPTED:
            self._say(f"{self.key[1]}: preparing again after a restart")

    def _policy_changed(self, e: seen.PolicyChanged) -> None:
        """A run not started yet, decided again."""
        if self.state in (lc.PENDING, lc.ACCEPTED, lc.READY) and self.manifest is not None:
            d = redecide(self.state, self.record.get("approved_by", ""),
                         decide(self.manifest, e.policy, self.me, self._now, *self.seen_keys))
            if d is not None:
                self._decided(d)

    def _request(self, e: seen.Request) -> None:
        """The operator's approve or reject, of this very version of the manifest."""
        if e.manifest != self.record.get("manifest"):
            self._say(f"{self.key[1]}: the request was for another version of the manifest; ignored")
        elif e.action == "approve" and self.state == lc.PENDING:
            keys = {k: v for k, v in (self.record.get("keys") or {}).items() if v}
            if keys:  # the keys the operator was shown (show), pinned first
                self._out.append(do.Pin(keys, e.by))
            else:
                self._decided(Decision(lc.ACCEPTED, how="hand"), by=e.by)
        elif e.action == "reject":
            self._audit("decision", state=lc.REJECTED, how="hand", by=e.by, submitter=self.key[0])
            self._end(lc.REJECTED, "operator",
                      f"rejected by {self.me}'s operator: {e.reason or 'no reason given'}", approved_by="hand")

    def _pinned(self, e: seen.Pinned) -> None:
        if self.state != lc.PENDING:
            return
        if e.error:
            self._end(lc.REJECTED, "key", e.error)
        else:
            self._decided(Decision(lc.ACCEPTED, how="hand"), by=e.by)

    def _manifest_changed(self, e: seen.ManifestChanged) -> None:
        """A run is its manifest: another version is never run (a new run needs a new id)."""
        self._end(lc.REJECTED, "manifest_changed",
                  f"the manifest changed after the decision: {e.error}" if e.error else
                  f"the manifest changed after the decision (program now {e.program}); submit it as a new run")

    def _decided(self, d: Decision, **audit) -> None:
        self._audit("decision", submitter=self.key[0], state=d.state, code=d.code, how=d.how or "waiting", **audit)
        if d.state == lc.REJECTED:
            self._end(lc.REJECTED, d.code, d.reason)
        elif d.state == lc.PENDING:
            self._enter(lc.PENDING, code=d.code, reason=d.reason)
        else:  # prepared at once: its peers see 'ready' (or 'accepted' while it compiles) one sync sooner
            self._enter(lc.ACCEPTED, publish=False, approved_by=d.how)
            self._out.append(do.Prepare())

    # -- what its files and process say now
    def _look(self, e: seen.Look) -> None:
        m = self.manifest
        if m is None:
            return
        if self.state == lc.RUNNING and e.party is not None:
            self.party = e.party
        if e.cancelled:
            self._end(lc.CANCELLED, "cancelled", f"cancelled by {m.submitter}")
            return
        if self.state in (lc.PENDING, lc.ACCEPTED, lc.READY) and self._now > self.expires:
            self._end(lc.EXPIRED, "expired", "the run expired before every site was ready")
            return
        found = lc.blocking(e.peers, self.me)
        if found:  # a party that died before it could say so is named by its agent: ours stops too
            bad, running = lc.ending(*found), self.state == lc.RUNNING
            cancelled = found[1]["state"] == lc.CANCELLED  # a cancel seen there first
            self._end(lc.FAILED if running and not cancelled else lc.CANCELLED, "peer",
                      f"stopped: {bad}" if running else f"not run: {bad}")
            return
        if self.state == lc.ACCEPTED:
            self._build(e.exit)
        elif self.state == lc.READY:
            if lc.may_start({**e.peers, self.me: self.record}):
                self._out.append(do.StartParty())
        elif self.state == lc.RUNNING:
            self._party_exit(e.exit)

    def _tick(self, e: seen.Tick) -> None:
        if self.manifest is not None and self._now - float(self.record.get("heartbeat", 0)) >= HEARTBEAT:
            self._publish()

    # -- accepted: its own copy, its configuration, a compile (once), then ready
    def _build(self, code: int | None) -> None:
        if self.process != "build":
            self._out.append(do.Prepare())
        elif code is not None:
            self.process = None
            if code != 0:  # its log stays here: it names this site's paths
                self._end(lc.FAILED, "build", f"the build exited with code {code}")
            else:
                self._audit("compiled")
                self._enter(lc.READY)

    def _prepared(self, e: seen.Prepared) -> None:
        if e.needs_build:
            self._out.append(do.StartBuild())
        else:
            self._enter(lc.READY)

    def _build_started(self, e: seen.BuildStarted) -> None:
        self.process = "build"
        self._publish()  # the heartbeat while it compiles

    def _not_runnable(self, e: seen.NotRunnable) -> None:
        self._end(lc.REJECTED, e.code, e.reason)

    def _config_failed(self, e: seen.ConfigFailed) -> None:
        self._end(lc.FAILED, "config", e.reason)

    # -- ready: every site is, and its own copy is still the approved one
    def _party_started(self, e: seen.PartyStarted) -> None:
        m = self.manifest
        self.process = "party"
        self.record["started"] = round(self._now, 3)  # a read of its input (max_reads)
        self._audit("started", pid=m.pid_of(self.me))
        self._say(f"{m.run_id}: every site is ready; party {m.pid_of(self.me)} started")
        self._enter(lc.RUNNING)

    def _program_changed(self, e: seen.ProgramChanged) -> None:
        m = self.manifest
        self._audit("refused", submitter=m.submitter, reason=f"own copy is now {e.found}")
        self._end(lc.FAILED, "program_changed",
                  f"this site's copy of the program is {e.found}, not the approved {m.program_digest}")

    # -- running: done, or failed once a cancel had its moment to explain it
    def _party_exit(self, code: int | None) -> None:
        if code is None:
            return
        if code == 0:
            self._out.append(do.Share())
            return
        if not self.exited:  # a cancel on its way would explain it: wait a moment for it
            self.exited, self.exit_code = self._now, code
            return
        if self._now - self.exited < lc.FAIL_GRACE:
            return
        self.process = None
        self._end(lc.FAILED, "party", self.party.get("reason") or f"the party exited with code {self.exit_code}")

    def _shared(self, e: seen.Shared) -> None:
        self.process = None
        self._end(lc.DONE, "", "", result=e.result)

    def _stopping(self, e: seen.Stopping) -> None:
        self._end(lc.FAILED, "agent_stopped", f"the agent of {self.me} was stopped")

    # -- the only ways a state changes
    def _enter(self, state: str, publish: bool = True, **fields) -> None:
        if state != self.state:
            lc.check_transition(self.state, state)
            if state in (lc.ACCEPTED, lc.READY, lc.RUNNING):
                self.record.update(code="", reason="")
        changed = state != self.state
        self.record.update(state=state, **fields)
        if changed and state == lc.READY:
            self._audit("ready")
        if publish:
            self._publish()

    def _end(self, state: str, code: str, reason: str, **fields) -> None:
        lc.check_transition(self.state, state)
        if self.process is not None:  # the build or party, and every process it started: gone
            self._out.append(do.Stop())
            self.process = None
        reason = outgoing(reason) if reason else ""  # one line for the peers, none of this site's paths
        self.record.update(state=state, code=code, reason=reason, **fields)
        self.exited = 0.0
        self._audit(state, code=code, reason=reason)
        rid = self.key[1]
        self._say(f"{rid}: done ({fields.get('result', '')})" if state == lc.DONE else f"{rid}: {state}: {reason}")
        self._publish()
        if self.manifest is not None:  # its folders are no longer watched
            self._out.append(do.Release(tuple(sorted({*self.manifest.parties, self.key[0]}))))
        self.manifest = None  # its bytes are on disk; an ended run needs only its record

    def _publish(self) -> None:
        self.record.update(heartbeat=round(self._now, 3), agent=self.incarnation)
        if self.state == lc.RUNNING and self.manifest is not None:  # its party's own record, in short
            self.record["party"] = {k: outgoing(self.party[k]) for k in ("state", "reason", "sync")
                                    if self.party.get(k)}
        self._out.append(do.Publish(dict(self.record)))

    def _audit(self, event: str, **fields) -> None:
        self._out.append(do.Audit(event, self.key[1], self.record.get("program"), fields))

    def _say(self, line: str) -> None:
        self._out.append(do.Say(line))

    _HANDLERS = {seen.Received: _received, seen.Refused: _refused, seen.Restarted: _restarted,
                 seen.PolicyChanged: _policy_changed, seen.Request: _request,
                 seen.ManifestChanged: _manifest_changed, seen.Look: _look, seen.Tick: _tick,
                 seen.Prepared: _prepared, seen.BuildStarted: _build_started, seen.NotRunnable: _not_runnable,
                 seen.ConfigFailed: _config_failed, seen.PartyStarted: _party_started,
                 seen.ProgramChanged: _program_changed, seen.Shared: _shared, seen.Stopping: _stopping,
                 seen.Pinned: _pinned}
