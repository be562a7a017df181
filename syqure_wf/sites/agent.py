"""The site agent: one long-running process per site that answers the runs
addressed to it by its policy, prepares them, and runs its party only when
every site is ready (PROTOCOL.md, "Across organisations").

It wakes on file events (its peers' manifests and states as the sync client
writes them, the operator's requests, the policy file) and on the few
deadlines its runs keep (heartbeats, a failure's grace, expiries), and each
time tells every run it knows what it sees. What a run does with that is
``run.py``'s, a pure state machine; this loop only gathers observations
and performs actions (``effects.py``). Everything it decided is kept in
its own folder, outside the synced tree, so that an agent started again
never answers a run twice. What it reads of its peers, and how much, is
``intake.py``'s; no peer file stops it: one that cannot be read is
refused once and the loop goes on.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SyqureError
from ..files.private import make_private_dir, owned_private_dir, write_private
from ..files.peer_json import json_of
from ..keys.sitekey import load_or_create
from . import lifecycle as lc
from . import observations as seen
from .audit import Audit
from .board import Board, dump, read_record, subfolders
from .effects import Effects
from .events import Events
from .intake import Intake, Key
from .manifest import MAX_BYTES, Manifest, ManifestError, check_email, parse
from .operator import take_requests
from .policy import PolicyFile
from .run import Run
from .signature import SignatureError

log = logging.getLogger("syqure-wf.agent")
KEEP_ENDED = 500  # ended runs held in memory (the newest); older ones are forgotten, their keys kept
FORGOTTEN_MAX = 100_000  # keys of forgotten runs: a rewritten manifest of one is never a new run


@dataclass
class Agent:
    folder: Path
    me: str
    policy_path: Path
    say: object = print
    runs: dict[Key, Run] = field(default_factory=dict)
    forgotten: dict[Key, None] = field(default_factory=dict)  # ended runs evicted from ``runs``

    def __post_init__(self) -> None:
        self.board = Board(self.folder, self.me, on_refused=self._file_refused)
        self.policy_file = PolicyFile(self.policy_path)
        self.board.trust.policy = lambda: self.policy  # its pins decide whose signatures count
        self.incarnation = secrets.token_hex(4)
        self.wake = threading.Event()
        self.events: Events | None = None
        owned_private_dir(self.board.private, "the agent's private folder")
        make_private_dir(self.board.requests)
        self.audit = Audit(self.board.audit_path)
        self.intake = Intake(self.board, self.audit.write)
        self.effects = Effects(self.board, self.audit, lambda line: self.say(f"agent {self.me}: {line}"),
                               lambda: self.policy, self.wake, self._release)

    @property
    def policy(self):
        return self.policy_file.policy

    # -- the loop
    def serve(self) -> int:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.board.private / "agent.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise SyqureError(f"another agent already runs for {self.me} on {self.board.folder}") from None
        write_private(self.board.private / "agent.json", dump({"policy": str(self.policy_path), "pid": os.getpid()}))
        # the site's key, published before any run: peers and operators (show) see it
        key = load_or_create(self.board.folder, self.me)
        self.events = events = Events(self.wake)
        events.watch(self.board.datasites)
        events.watch(self.board.requests)
        policy_file = str(self.policy_path)
        events.watch(self.policy_path.parent, lambda p: p == policy_file)
        events.start()
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()
            self.wake.set()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        try:
            self.recover()
            self.say(f"agent {self.me}: watching {self.board.datasites} (policy {self.policy_path}; "
                     f"site key {key.fingerprint})")
            while not stop.is_set():
                self.wake.clear()
                try:
                    self.reconcile()
                except (SyqureError, OSError) as exc:  # one run's trouble never stops the site's agent
                    self.say(f"agent {self.me}: error: {exc}")
                except Exception:  # a bug: its traceback in the log, and the agent goes on
                    log.exception("agent %s: reconcile failed", self.me)
                self.wake.wait(self.next_tick())
            for run in self.runs.values():
                if self.effects.alive(run.key):
                    self.feed(run, seen.Stopping())
        finally:
            events.close()
            lock.release()
        return 0

    def next_tick(self) -> float:
        now = time.time()
        due = [d for d in (run.deadline() for run in self.runs.values()) if d is not None]
        tick = min([60.0, *(d - now for d in due)])
        if self.intake.incomplete:
            tick = min(tick, 1.0)
        if self.policy_file.settling:
            tick = min(tick, self.policy_file.SETTLE)
        return max(0.05, tick)

    def reconcile(self) -> None:
        self._reload_policy()
        self._requests()
        self._manifests()
        for run in list(self.runs.values()):
            if run.state not in lc.ENDED:
                try:
                    self.look(run)
                except (SyqureError, OSError) as exc:  # this run's trouble, not the others'
                    self.say(f"agent {self.me}: {run.record['run_id']}: error: {exc}")
                except Exception:  # a bug, or a peer's file no check foresaw: this run's, not the loop's
                    log.exception("agent %s: %s", self.me, run.record["run_id"])
        self._watch_folders()  # after: what this round found (a run folder, a run) is watched from now on
        self._evict()

    def feed(self, run: Run, event) -> None:
        """One observation to ``run``; its actions performed, and their outcomes fed back."""
        for action in run.handle(event, time.time()):
            outcome = self.effects.perform(run, action)
            if outcome is not None:
                self.feed(run, outcome)

    def look(self, run: Run) -> None:
        """What the run's files and process say now, then the clock."""
        m = run.manifest
        if m is None:
            return
        sub, rid = run.key
        running = run.state == lc.RUNNING
        self.feed(run, seen.Look(
            cancelled=self.board.cancelled(sub, rid),
            peers={s: lc.current(self.board.state_of(s, sub, rid), run.record["manifest"])
                   for s in m.parties if s != self.me},
            exit=self.effects.exit_of(run.key), party=self.effects.party_status(run) if running else None))
        self.feed(run, seen.Tick())

    def _evict(self) -> None:
        """Memory and records do not grow with a peer's run folders: past
        KEEP_ENDED ended runs, the oldest are forgotten (their key kept), and
        the private folder of one whose party never ran here is removed (a
        run that ran keeps its log and outputs)."""
        ended = [k for k, r in self.runs.items() if r.state in lc.ENDED and not self.effects.alive(k)]
        for key in ended[:max(0, len(ended) - KEEP_ENDED)]:
            del self.runs[key]
            if len(self.forgotten) >= FORGOTTEN_MAX:
                self.forgotten.pop(next(iter(self.forgotten)))
            self.forgotten[key] = None
            private = self.board.run_private(*key)
            if not (private / "work").exists():
                shutil.rmtree(private, ignore_errors=True)

    # -- the folders worth a watch
    def _watch_folders(self) -> None:
        """Every accepted submitter's jobs, the folders of manifests still
        arriving, and each live run's folder at every site (released when
        the run ends)."""
        events = self.events
        if events is None:
            return
        before = events.count
        for site in subfolders(self.board.datasites):
            if not self.policy.accepts(site):  # a stranger's writes never wake this agent
                continue
            app = self.board.app(site)
            events.watch_deepest([self.board.datasites / site, app.parent, app, app / "jobs", self.board.jobs(site)])
        for submitter, run_id in self.intake.arriving():
            events.watch(self.board.jobs(submitter, submitter, run_id))
        for run in self.runs.values():
            if run.state not in lc.ENDED and run.manifest is not None:
                sub, rid = run.key
                for site in {*run.manifest.parties, sub}:
                    app = self.board.app(site)
                    events.watch_deepest([app, app / "jobs", self.board.jobs(site, sub),
                                          self.board.jobs(site, sub, rid)])
        if events.count != before:
            self.wake.set()  # what arrived before the watch began: one more look

    def _release(self, key: Key, sites: tuple[str, ...]) -> None:
        if self.events is not None:
            sub, rid = key
            for site in sites:
                self.events.unwatch(self.board.jobs(site, sub, rid))

    # -- start-up
    def recover(self) -> None:
        """What this site had answered before it stopped: kept, never answered again."""
        for path in sorted((self.board.private / "runs").glob("*/*/record.json")):
            try:
                record = read_record(path)
                if record is None:
                    continue
                run = Run(record, incarnation=self.incarnation)
                if run.state not in lc.ENDED:
                    data = self.board.read(path.parent / "manifest.json", MAX_BYTES)
                    run.manifest, run.size = (parse(data), len(data)) if data else (None, 0)
            except (OSError, ValueError, KeyError, ManifestError):
                continue
            self.runs[run.key] = run
            self.feed(run, seen.Restarted())

    # -- the policy, re-read when its file changes
    def _reload_policy(self) -> None:
        try:
            policy = self.policy_file.changed(time.time())
        except SyqureError as exc:
            self.say(f"agent {self.me}: {exc}; keeping the previous policy")
            self.audit.write("policy_error", reason=str(exc))
            return
        if policy is None:
            return
        self.say(f"agent {self.me}: policy {self.policy_path} re-read")
        self.audit.write("policy_reloaded")
        for run in list(self.runs.values()):  # every run not started yet, decided again
            self.feed(run, seen.PolicyChanged(policy))

    # -- the operator's approve / reject
    def _requests(self) -> None:
        for request in take_requests(self.board):
            try:
                run = self.runs.get((request.get("submitter"), request.get("run_id")))
                if run is not None:
                    self.feed(run, seen.Request(request.get("action"), request.get("manifest"), request.get("by"),
                                                request.get("reason") or ""))
            except (OSError, ValueError, AttributeError, TypeError):
                pass  # a request no agent can act on

    # -- manifests addressed to this site
    def _manifests(self) -> None:
        for key, version, data in self.intake.changed(self.policy):
            try:
                if data is None:
                    raise ManifestError(f"manifest larger than {MAX_BYTES} bytes, or not a regular file")
                data = self._signed(key, data)
                m = parse(data)
            except ManifestError as exc:  # whatever a peer's bytes do, they refuse that file only
                if exc.code == "incomplete" and self.intake.waits(key, version):
                    continue  # the sync may still be writing it
                self.intake.read(key, version)
                self._refused(key, data or b"", exc)
                continue
            self.intake.read(key, version)
            if self.me not in m.parties:
                continue  # not addressed to this site
            if m.key != key:
                self.intake.once(("misplaced", key), "refused", key[1], m.digest, submitter=key[0], code="bad_manifest",
                                 reason=f"a manifest in {key[0]}'s datasite names submitter {m.submitter} "
                                        f"and run {m.run_id}")
                continue
            run = self.runs.get(key)
            if run is None and key in self.forgotten:
                self.intake.once(("forgotten", key), "refused", m.run_id, m.digest, submitter=m.submitter,
                                 code="bad_manifest", reason="a run id that ended here already")
            elif run is None:
                self._received(m, data)
            elif run.record.get("manifest") != m.sha256:
                self.intake.once(("changed", run.key), "refused", m.run_id, m.digest, submitter=m.submitter,
                                 reason="the manifest changed after the decision", was=run.record.get("program"))
                self.feed(run, seen.ManifestChanged(program=m.digest))

    def _signed(self, key: Key, data: bytes) -> bytes:
        """The manifest its submitter signed (signature.py), verified with the
        key this site trusts for it: ManifestError for one unsigned or
        mis-signed ("signature"), or whose signer publishes no key yet."""
        try:
            body = self.board.trust.body(data, "manifest", key[0], f"{key[0]}'s manifest of run {key[1]}")
        except SignatureError as exc:
            code = {"incomplete": "incomplete", "bad_file": "bad_manifest"}.get(exc.code, "signature")
            raise ManifestError(str(exc), code) from None
        if body is None:
            raise ManifestError("manifest is not JSON (yet)", "incomplete")
        return body

    def _keys(self, m: Manifest) -> tuple[dict, dict]:
        """The co-parties' and the submitter's published fingerprints, and this
        site's pins: what ``decide`` holds against its policy."""
        from ..keys.sitekey import Refused, published

        found = {}
        for email in sorted({*m.parties, m.submitter} - {self.me}):
            try:
                key = published(self.board.folder, email)
            except Refused:
                key = None
            found[email] = key.fingerprint if key else None
        return found, self.board.trust.pins()

    def _refused(self, key: Key, data: bytes, exc: ManifestError) -> None:
        """A manifest no site can run: refused once; the sites it names learn why."""
        run = self.runs.get(key)
        if run is not None:  # a run it answered has changed into something unreadable
            self.feed(run, seen.ManifestChanged(error=str(exc)))
            return
        if key in self.forgotten:  # ended here long ago: answered then
            return
        sub, rid = key
        self.intake.once(("refused", key, exc.code), "refused", rid, None, submitter=sub, reason=str(exc),
                         code=exc.code)
        named = _parties(data) if exc.code not in ("signature", "incomplete") else []  # never answered: only logged
        if self.me in named:
            run = self.runs[key] = Run.new(key, self.me, self.incarnation, f"sha256:{_sha(data)}",
                                           sorted({sub, *named}))
            self.feed(run, seen.Refused(exc.code, str(exc)))

    def _received(self, m: Manifest, data: bytes) -> None:
        full = self.intake.room(m.submitter, len(data), self.runs)
        if not full:  # answered, never held
            private = self.board.run_private(*m.key)
            make_private_dir(private)
            write_private(private / "manifest.json", data)
        run = self.runs[m.key] = Run.new(m.key, self.me, self.incarnation, m.sha256, m.readers())
        run.size = 0 if full else len(data)
        keys, known = self._keys(m)
        self.feed(run, seen.Received(m, self.policy, full, keys, known, self._reads(m)))

    def _reads(self, m: Manifest) -> int:
        """How many runs read this site's input of ``m`` within the policy's
        period: started, or on their way to a start (a disclosure limit)."""
        name = m.inputs.get(m.pid_of(self.me))
        if name is None:
            return 0
        since = time.time() - self.policy.reads_period
        return sum(1 for r in self.runs.values() if r.record.get("input") == name and r.key != m.key
                   and (r.state in (lc.ACCEPTED, lc.READY, lc.RUNNING)
                        or float(r.record.get("started") or 0) >= since))

    def _file_refused(self, path: Path, code: str, reason: str) -> None:
        """A peer's state or cancel file that cannot be read: once in the audit log."""
        where = str(path.relative_to(self.board.datasites)) if path.is_relative_to(self.board.datasites) else str(path)
        self.intake.once(("file", where, code), "refused", None, None, file=where, code=code, reason=reason)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _parties(data: bytes) -> list[str]:
    """The emails a manifest no site can run still names (the sites to tell why)."""
    m = json_of(data)[0]
    emails = m.get("parties") if isinstance(m, dict) else None
    try:
        return [check_email(e) for e in emails][:64] if isinstance(emails, list) else []
    except Exception:  # no email: nobody to tell
        return []
