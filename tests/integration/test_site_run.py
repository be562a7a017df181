"""One run at a site, as the agent's pure state machine (sites/run.py,
issue 27): observations in, actions out, every change of state held to
the lifecycle. No files, no processes, no clock: each test runs in
milliseconds; tests/system/test_sites.py runs the same through real agents."""
from __future__ import annotations

import pytest

from syqure_wf.sites import actions as do
from syqure_wf.sites import lifecycle as lc
from syqure_wf.sites import observations as seen
from syqure_wf.sites.manifest import Manifest
from syqure_wf.sites.policy import Policy
from syqure_wf.sites.run import HEARTBEAT, Run

SUB, ME, OTHER = "a@x.org", "b@y.org", "c@z.org"
DIGEST = "sha256:" + "d" * 64
LISTS = Policy(submitters=["*"], programs=[DIGEST])  # approves the run by itself
ASKS = Policy(submitters=["*"])  # asks its operator
REFUSES = Policy(submitters=["*"], unlisted_programs="reject")
# what an agent's effects answer, where they succeed
OUTCOMES = {do.Prepare: seen.Prepared(needs_build=False), do.StartBuild: seen.BuildStarted(),
            do.StartParty: seen.PartyStarted(), do.Share: seen.Shared("shared")}


def manifest(sha: str = "sha256:m1", expires: float = 1000.0) -> Manifest:
    return Manifest(run_id="r1", submitter=SUB, parties=[SUB, ME, OTHER], created=0.0, expires=expires,
                    config={"engine": {"name": "mpyc", "program": "main.py", "tls": False}, "framing": "stream"},
                    entry="main.py", program_digest="sha256:p", files={"main.py": b""}, inputs={},
                    sha256=sha, digest=DIGEST)


class Site:
    """The agent's loop, reduced to what it feeds a run: an action with an
    outcome is answered from ``outcomes`` (OUTCOMES by default)."""

    def __init__(self, policy: Policy = LISTS, now: float = 100.0, full: str | None = None, **outcomes):
        self.now, self.log = now, []
        self.outcomes = {**OUTCOMES, **{getattr(do, k): v for k, v in outcomes.items()}}
        m = manifest()
        self.run = Run.new(m.key, ME, "inc1", m.sha256, m.readers())
        self.feed(seen.Received(m, policy, full))

    def feed(self, event, now: float | None = None) -> list:
        """The actions of ``event`` and of every outcome fed back, in order."""
        self.now = self.now if now is None else now
        out = self._answer(event)
        self.log += out
        return out

    def _answer(self, event) -> list:
        out = []
        for action in self.run.handle(event, self.now):
            out.append(action)
            answer = self.outcomes.get(type(action))
            if answer is not None:
                out += self._answer(answer)
        return out

    def look(self, now: float | None = None, cancelled: bool = False, exit: int | None = None,
             party: dict | None = None, **peers) -> list:
        records = {SUB: peers.get("sub", self.peer(lc.READY)), OTHER: peers.get("other", self.peer(lc.READY))}
        return self.feed(seen.Look(cancelled, records, exit, party), now)

    def peer(self, state: str, reason: str = "") -> dict:
        return {"state": state, "manifest": "sha256:m1", "reason": reason}

    @property
    def state(self) -> str:
        return self.run.state


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def published(actions) -> list[str]:
    return [a.record["state"] for a in actions if isinstance(a, do.Publish)]


def audited(actions) -> list[tuple]:
    return [(a.event, a.fields.get("code"), a.fields.get("how")) for a in actions if isinstance(a, do.Audit)]


def running(site: Site) -> Site:
    site.look()
    assert site.state == lc.RUNNING
    return site


def test_a_run_the_policy_lists_is_accepted_prepared_and_ready_at_once():
    site = Site(LISTS)
    assert site.state == lc.READY and site.run.record["approved_by"] == "policy"
    assert audited(site.log) == [("received", None, None), ("decision", "", "policy"), ("ready", None, None)]
    assert published(site.log) == [lc.READY]  # peers see ready one sync sooner: no accepted in between
    record = site.run.record
    assert record["program"] == DIGEST and record["pid"] == 1 and record["expires"] == 1000.0
    assert record["heartbeat"] == 100.0 and record["agent"] == "inc1" and record["readers"] == [SUB, ME, OTHER]


def test_a_build_says_accepted_while_it_compiles_and_ready_once_it_succeeded():
    site = Site(LISTS, Prepare=seen.Prepared(needs_build=True))
    assert site.state == lc.ACCEPTED and kinds(site.log)[-3:] == ["Prepare", "StartBuild", "Publish"]
    assert site.look(101.0, exit=None) == []  # still compiling
    out = site.look(102.0, exit=0)
    assert site.state == lc.READY and audited(out) == [("compiled", None, None), ("ready", None, None)]
    failed = Site(LISTS, Prepare=seen.Prepared(needs_build=True))
    failed.look(101.0, exit=2)
    assert failed.state == lc.FAILED and failed.run.record["code"] == "build"
    assert "the build exited with code 2" in failed.run.record["reason"]


def test_a_run_waits_for_the_operator_then_starts_after_approve():
    site = Site(ASKS)
    assert site.state == lc.PENDING and site.run.record["code"] == "program"
    assert published(site.log) == [lc.PENDING]
    assert site.look() == []  # waiting: nothing starts, nothing is published before the heartbeat
    out = site.feed(seen.Request("approve", "sha256:other", "op"))  # about another version of the manifest
    assert site.state == lc.PENDING and kinds(out) == ["Say"] and "another version" in out[0].line
    out = site.feed(seen.Request("approve", "sha256:m1", "op"))
    assert site.state == lc.READY and site.run.record["approved_by"] == "hand"
    assert site.run.record["code"] == "" and site.run.record["reason"] == ""
    decision = [a for a in out if isinstance(a, do.Audit) and a.event == "decision"][0]
    assert decision.fields["how"] == "hand" and decision.fields["by"] == "op"
    assert site.feed(seen.Request("approve", "sha256:m1", "op")) == []  # approving a ready run does nothing


def test_rejected_by_the_policy_or_by_the_operator():
    site = Site(REFUSES)
    assert site.state == lc.REJECTED and site.run.record["code"] == "program" and site.run.manifest is None
    assert kinds(site.log)[-2:] == ["Publish", "Release"]
    site = running(Site(LISTS))
    out = site.feed(seen.Request("reject", "sha256:m1", "op", "not today"))
    assert kinds(out)[:2] == ["Audit", "Stop"]  # its party stops
    assert site.state == lc.REJECTED and site.run.record["code"] == "operator"
    assert site.run.record["reason"] == f"rejected by {ME}'s operator: not today"
    assert site.run.record["approved_by"] == "hand" and site.run.process is None
    assert site.feed(seen.Request("reject", "sha256:m1", "op")) == []  # an ended run hears nothing


def test_a_full_site_rejects_a_new_run_with_code_limit():
    site = Site(LISTS, full="this site holds 200 runs not ended already (at most 200)")
    assert site.state == lc.REJECTED and site.run.record["code"] == "limit"


def test_the_party_starts_only_when_every_site_is_ready():
    site = Site(LISTS, StartParty=None)
    for states in [(lc.READY, lc.PENDING), (lc.ACCEPTED, lc.READY), (lc.READY, None)]:
        sub, other = (site.peer(s) if s else None for s in states)
        assert site.look(sub=sub, other=other) == []
    stale = dict(site.peer(lc.READY), manifest="sha256:earlier")  # a state about another version counts not
    assert site.look(other=lc.current(stale, "sha256:m1")) == []
    assert kinds(site.look(other=site.peer(lc.RUNNING))) == ["StartParty"]  # running or done is past ready
    site.outcomes[do.StartParty] = seen.PartyStarted()
    out = site.look(sub=site.peer(lc.DONE))
    assert site.state == lc.RUNNING and site.run.process == "party"
    assert [a.event for a in out if isinstance(a, do.Audit)] == ["started"] and published(out) == [lc.RUNNING]


def test_a_peer_that_ended_the_run_ends_it_here():
    waiting = Site(ASKS)
    waiting.look(other=waiting.peer(lc.REJECTED, "input 'counts' not mapped here"))
    assert waiting.state == lc.CANCELLED and waiting.run.record["code"] == "peer"
    assert waiting.run.record["reason"] == f"not run: {OTHER} rejected: input 'counts' not mapped here"
    site = running(Site(LISTS))
    out = site.look(other=site.peer(lc.FAILED, "party 2: killed"))
    assert kinds(out)[0] == "Stop" and site.state == lc.FAILED and site.run.record["code"] == "peer"
    assert site.run.record["reason"] == f"stopped: {OTHER} failed: party 2: killed"
    site = running(Site(LISTS))  # a cancel seen at another site first: cancelled, not failed
    site.look(other=site.peer(lc.CANCELLED, "cancelled by a"))
    assert site.state == lc.CANCELLED
    site = running(Site(LISTS))  # the site that failed is named, not the one that cancelled because of it
    site.look(sub=site.peer(lc.CANCELLED), other=site.peer(lc.FAILED, "boom"))
    assert site.state == lc.FAILED and OTHER in site.run.record["reason"]


def test_the_submitters_cancel_stops_the_run_at_any_stage():
    for site in (Site(ASKS), Site(LISTS), running(Site(LISTS))):
        had_party = site.run.process is not None
        out = site.look(cancelled=True)
        assert site.state == lc.CANCELLED and site.run.record["reason"] == f"cancelled by {SUB}"
        assert ("Stop" in kinds(out)) == had_party
        assert kinds(out)[-1] == "Release" and site.run.manifest is None


def test_a_run_not_started_before_its_expiry_expires_and_a_running_one_does_not():
    site = Site(ASKS)
    assert site.run.deadline() == HEARTBEAT + 100.0
    site.look(999.0)
    assert site.state == lc.PENDING
    site.look(1000.5)
    assert site.state == lc.EXPIRED and site.run.record["code"] == "expired"
    site = running(Site(LISTS))
    site.look(5000.0)
    assert site.state == lc.RUNNING


def test_a_manifest_changed_after_the_decision_is_never_run():
    site = running(Site(LISTS))
    out = site.feed(seen.ManifestChanged(program="sha256:new"))
    assert kinds(out)[0] == "Stop" and site.state == lc.REJECTED
    assert site.run.record["code"] == "manifest_changed" and "program now sha256:new" in site.run.record["reason"]
    site = Site(ASKS)
    site.feed(seen.ManifestChanged(error="manifest is not JSON"))
    assert site.state == lc.REJECTED and site.run.record["reason"].endswith(": manifest is not JSON")
    assert site.feed(seen.ManifestChanged(program="sha256:again")) == []


def test_a_program_changed_before_the_start_fails_the_run():
    site = Site(LISTS, StartParty=seen.ProgramChanged("sha256:evil"))
    out = site.look()
    assert site.state == lc.FAILED and site.run.record["code"] == "program_changed"
    assert ("refused", None, None) in audited(out) and "sha256:evil" in site.run.record["reason"]
    assert "Stop" not in kinds(out)  # no party was started


def test_a_party_done_shares_its_result_and_one_that_failed_waits_for_a_cancel_to_explain_it():
    site = running(Site(LISTS))
    out = site.look(101.0, exit=0)
    assert kinds(out)[:1] == ["Share"] and site.state == lc.DONE and site.run.record["result"] == "shared"
    assert "Stop" not in kinds(out)
    site = running(Site(LISTS))
    party = {"state": "failed", "reason": "party 1 failed: /home/me/secret.log says no", "sync": "up"}
    assert site.look(101.0, exit=1, party=party) == []  # a cancel may still explain it
    assert site.run.deadline() == 101.0 + lc.FAIL_GRACE
    assert site.look(101.0 + lc.FAIL_GRACE - 0.1, exit=1, party=party) == []
    site.look(101.0 + lc.FAIL_GRACE, exit=1, party=party)
    assert site.state == lc.FAILED and site.run.record["code"] == "party"
    assert site.run.record["reason"] == "party 1 failed: <path> says no"  # none of this site's paths
    site = running(Site(LISTS))
    site.look(101.0, exit=1)
    site.look(102.0, cancelled=True, exit=1)
    assert site.state == lc.CANCELLED


def test_a_running_site_publishes_its_partys_record_in_short_with_every_heartbeat():
    site = running(Site(LISTS))
    assert site.feed(seen.Tick(), 100.0 + HEARTBEAT - 1) == []
    site.look(100.0 + HEARTBEAT, party={"state": "running", "sync": "down for 3 s", "log": "/x"})
    out = site.feed(seen.Tick())
    assert published(out) == [lc.RUNNING] and out[0].record["heartbeat"] == 100.0 + HEARTBEAT
    assert out[0].record["party"] == {"state": "running", "sync": "down for 3 s"}


def test_an_agent_started_again_keeps_every_answer():
    site = running(Site(LISTS))
    record, m = dict(site.run.record), site.run.manifest
    again = Run(dict(record), m, incarnation="inc2")
    again.handle(seen.Restarted(), 200.0)
    assert again.state == lc.FAILED and again.record["code"] == "agent_restarted"
    assert "the party was stopped" in again.record["reason"] and again.record["agent"] == "inc2"
    accepted = Run(dict(record, state=lc.ACCEPTED), m, incarnation="inc2")
    assert kinds(accepted.handle(seen.Restarted(), 200.0)) == ["Say"]
    assert kinds(accepted.handle(seen.Look(False, {}, -1), 200.0)) == ["Prepare"]  # prepared again
    ready = Run(dict(record, state=lc.READY), m, incarnation="inc2")
    assert ready.handle(seen.Restarted(), 200.0) == []  # the rest waits
    lost = Run(dict(record, state=lc.PENDING), None, incarnation="inc2")  # its manifest could not be read
    lost.handle(seen.Restarted(), 200.0)
    assert lost.state == lc.FAILED and "cannot read the manifest" in lost.record["reason"]
    done = Run(dict(record, state=lc.DONE), None)
    assert done.handle(seen.Restarted(), 200.0) == []


def test_a_changed_policy_decides_every_run_not_started_again():
    site = Site(ASKS)
    site.feed(seen.PolicyChanged(LISTS))
    assert site.state == lc.READY and site.run.record["approved_by"] == "policy"
    site.feed(seen.PolicyChanged(ASKS))  # an approval by the policy, withdrawn
    assert site.state == lc.REJECTED and site.run.record["code"] == "policy"
    site = Site(ASKS)
    site.feed(seen.Request("approve", "sha256:m1", "op"))
    assert site.feed(seen.PolicyChanged(ASKS)) == []  # an operator's approval stands
    site.feed(seen.PolicyChanged(Policy(submitters=[OTHER])))  # unless the policy refuses the run outright
    assert site.state == lc.REJECTED and "submitter" in site.run.record["reason"]
    site = running(Site(LISTS))
    assert site.feed(seen.PolicyChanged(REFUSES)) == []  # a started run is not decided again


def test_a_manifest_no_site_can_run_is_answered_once_as_rejected():
    run = Run.new((SUB, "r2"), ME, "inc1", "sha256:bad", [SUB, ME])
    out = run.handle(seen.Refused("bad_manifest", "manifest: unknown field x"), 100.0)
    assert run.state == lc.REJECTED and run.record["code"] == "bad_manifest"
    assert kinds(out) == ["Say", "Audit", "Say", "Publish"]  # nothing to release: it was never watched


def test_an_agent_stopped_stops_the_party_and_says_so():
    site = running(Site(LISTS))
    out = site.feed(seen.Stopping())
    assert kinds(out)[0] == "Stop" and site.state == lc.FAILED and site.run.record["code"] == "agent_stopped"


def test_every_change_of_state_is_one_the_lifecycle_draws():
    states = [lc.NEW, lc.PENDING, lc.ACCEPTED, lc.READY, lc.RUNNING, *lc.ENDED]
    drawn = {(a, b) for a, nexts in lc.NEXT.items() for b in nexts}
    for old in states:
        for new in states:
            if (old, new) in drawn:
                lc.check_transition(old, new)
            else:
                with pytest.raises(lc.IllegalTransition):
                    lc.check_transition(old, new)
    assert not any(lc.NEXT.get(s) for s in lc.ENDED)  # an ended run goes nowhere
    # a bug that would skip a step raises rather than publish it
    waiting = Site(ASKS)
    with pytest.raises(lc.IllegalTransition, match="pending_approval to ready"):
        waiting.feed(seen.Prepared(needs_build=False))
    accepted = Site(LISTS, Prepare=seen.Prepared(needs_build=True))
    with pytest.raises(lc.IllegalTransition, match="accepted to running"):
        accepted.feed(seen.PartyStarted())
    ready = Site(LISTS)
    with pytest.raises(lc.IllegalTransition, match="ready to done"):
        ready.feed(seen.Shared("shared"))


def state_writes(source: str) -> list[str]:
    """Where ``source`` sets a ``state`` field (``x["state"] = ...``,
    ``x.update(state=...)``, ``x.state = ...``): 'function:line' each."""
    import ast

    found = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            targets = child.targets if isinstance(child, ast.Assign) else \
                [child.target] if isinstance(child, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                if (isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant) and t.slice.value == "state") \
                        or (isinstance(t, ast.Attribute) and t.attr == "state"):
                    found.append(f"{where}:{child.lineno}")
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                    and child.func.attr in ("update", "setdefault") and any(k.arg == "state" for k in child.keywords):
                found.append(f"{where}:{child.lineno}")
            visit(child, inner)
    visit(ast.parse(source), "<module>")
    return found


def test_no_change_of_a_runs_state_bypasses_the_lifecycle():
    """Only run.py's _enter and _end (each held to lifecycle.NEXT) set a
    run's state: nothing else in sites/ writes one."""
    from conftest import REPO

    wrong = []
    for path in sorted((REPO / "syqure_wf" / "sites").glob("*.py")):
        for where in state_writes(path.read_text()):
            if not (path.name == "run.py" and where.split(":")[0] in ("_enter", "_end")):
                wrong.append(f"{path.name} {where}")
    assert wrong == []
    # the check sees each form of a write
    assert state_writes("def f(r):\n    r['state'] = 'done'\n") == ["f:2"]
    assert state_writes("def g(r):\n    r.record.update(code='', state='done')\n") == ["g:2"]
    assert state_writes("class A:\n    def h(self):\n        self.state = 1\n") == ["h:3"]
    assert state_writes("def f(r):\n    r['code'] = 'x'\n    r.update(code='')\n") == []
