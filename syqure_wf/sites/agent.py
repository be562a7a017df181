"""The site agent: one long-running process per site that answers the runs
addressed to it by its policy, prepares them, and runs its party only when
every site is ready (PROTOCOL.md, "Across organisations").

It wakes on file events (its peers' manifests and states as the sync client
writes them, the operator's requests, the policy file) and on the few
deadlines it keeps (heartbeats, a failure's grace, expiries), and each time
reconciles every run it knows with what it sees. Everything it decided is
kept in its own folder, outside the synced tree, so that an agent started
again never answers a run twice. It executes only its own copy of a program
whose digest it approved, checked again just before the party starts.
What it reads of its peers, and how much, is ``intake.py``'s; no peer file
stops it: one that cannot be read is refused once and the loop goes on.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..engines import get_engine
from ..engines.program import digest, program_files
from ..errors import ConfigError, SyqureError
from ..run.children import die_with_parent, stop_groups
from ..transport.folder import make_private_dir, write_private
from ..transport.status import read_status
from ..transport.syftbox import run_folder
from . import lifecycle as lc
from . import policy as policies
from .audit import Audit
from .board import Board, channel_id, dump, subfolders
from .events import Events
from .intake import Intake, Key
from .manifest import MAX_BYTES, Manifest, ManifestError, check_email, parse
from .peertext import outgoing

log = logging.getLogger("syqure-wf.agent")

HEARTBEAT = 10.0  # seconds between an agent's state records while a run is live
SETTLE = 0.5  # seconds a rewritten policy file must stay unchanged before it is read (not half written)
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a party


@dataclass
class Run:
    """This site's part in one submitted run."""
    record: dict  # what this site publishes (and keeps) about the run
    manifest: Manifest | None = None  # while the run is live
    proc: subprocess.Popen | None = None  # the build, then the party
    exited: float = 0.0  # when the party failed (a cancel may still explain it)
    exit_code: int = 0
    size: int = 0  # bytes of its manifest held here

    @property
    def state(self) -> str:
        return self.record["state"]

    @property
    def key(self) -> Key:
        return self.record["submitter"], self.record["run_id"]

    @property
    def expires(self) -> float:
        return float(self.record.get("expires") or (self.manifest.expires if self.manifest else 0))


@dataclass
class Agent:
    folder: Path
    me: str
    policy_path: Path
    say: object = print
    runs: dict[Key, Run] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.board = Board(self.folder, self.me, on_refused=self._file_refused)
        self.policy = policies.load(self.policy_path)
        self._policy_seen = _stamp(self.policy_path)
        self._policy_changed: tuple[tuple, float] | None = None  # a new version, since when
        self.incarnation = secrets.token_hex(4)
        self.wake = threading.Event()
        self.events: Events | None = None
        make_private_dir(self.board.private)
        make_private_dir(self.board.requests)
        self.audit = Audit(self.board.audit_path)
        self.intake = Intake(self.board, self.audit.write)

    # -- the loop
    def serve(self) -> int:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.board.private / "agent.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise SyqureError(f"another agent already runs for {self.me} on {self.board.folder}") from None
        write_private(self.board.private / "agent.json", dump({"policy": str(self.policy_path), "pid": os.getpid()}))
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
            self.say(f"agent {self.me}: watching {self.board.datasites} (policy {self.policy_path})")
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
                if run.proc is not None and run.proc.poll() is None:
                    self._stop(run)
                    self._end(run, lc.FAILED, "agent_stopped", f"the agent of {self.me} was stopped")
        finally:
            events.close()
            lock.release()
        return 0

    def next_tick(self) -> float:
        now, tick = time.time(), 60.0
        for run in self.runs.values():
            if run.state in lc.ENDED or run.manifest is None:
                continue
            tick = min(tick, float(run.record.get("heartbeat", 0)) + HEARTBEAT - now)
            if run.exited:
                tick = min(tick, run.exited + lc.FAIL_GRACE - now)
            if run.state != lc.RUNNING:
                tick = min(tick, run.expires - now)
        if self.intake.incomplete:
            tick = min(tick, 1.0)
        if self._policy_changed:
            tick = min(tick, SETTLE)
        return max(0.05, tick)

    def reconcile(self) -> None:
        self._reload_policy()
        self._requests()
        self._manifests()
        for run in list(self.runs.values()):
            if run.state not in lc.ENDED:
                try:
                    self._step(run)
                except (SyqureError, OSError) as exc:  # this run's trouble, not the others'
                    self.say(f"agent {self.me}: {run.record['run_id']}: error: {exc}")
                except Exception:  # a bug, or a peer's file no check foresaw: this run's, not the loop's
                    log.exception("agent %s: %s", self.me, run.record["run_id"])
        self._watch_folders()  # after: what this round found (a run folder, a run) is watched from now on

    def _watch_folders(self) -> None:
        """Every accepted submitter's jobs, the folders of manifests still
        arriving, and each live run's folder at every site (released when
        the run ends)."""
        events = self.events
        if events is None:
            return
        before = events.count
        for site in subfolders(self.board.datasites):
            app = self.board.app(site)
            chain = [self.board.datasites / site, app.parent, app, app / "jobs"]
            events.watch_deepest(chain + ([self.board.jobs(site)] if self.policy.accepts(site) else []))
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

    def _release(self, run: Run) -> None:
        if self.events is None or run.manifest is None:
            return
        sub, rid = run.key
        for site in {*run.manifest.parties, sub}:
            self.events.unwatch(self.board.jobs(site, sub, rid))

    # -- start-up
    def recover(self) -> None:
        """What this site had answered before it stopped: kept, never answered again."""
        for path in sorted((self.board.private / "runs").glob("*/*/record.json")):
            try:
                record = json.loads(path.read_text())
                run = Run(record)
                if run.state not in lc.ENDED:
                    data = self.board.read(path.parent / "manifest.json", MAX_BYTES)
                    run.manifest, run.size = (parse(data), len(data)) if data else (None, 0)
            except (OSError, ValueError, KeyError, ManifestError):
                continue
            self.runs[run.key] = run
            if run.state not in lc.ENDED and run.manifest is None:
                self._end(run, lc.FAILED, "agent_restarted", f"the agent of {self.me} restarted and cannot read "
                          "the manifest it kept")
            elif run.state == lc.RUNNING:
                self._end(run, lc.FAILED, "agent_restarted",
                          f"the agent of {self.me} restarted while its party ran; the party was stopped")
            elif run.state == lc.ACCEPTED:
                self.say(f"agent {self.me}: {record['run_id']}: preparing again after a restart")

    # -- the policy, re-read when its file changes
    def _reload_policy(self) -> None:
        stamp_now, now = _stamp(self.policy_path), time.time()
        if stamp_now == self._policy_seen:
            self._policy_changed = None
            return
        if self._policy_changed is None or self._policy_changed[0] != stamp_now:
            self._policy_changed = (stamp_now, now)  # a decision on half a file would reject runs
        if now - self._policy_changed[1] < SETTLE:
            return
        self._policy_seen, self._policy_changed = stamp_now, None
        try:
            self.policy = policies.load(self.policy_path)
        except ConfigError as exc:
            self.say(f"agent {self.me}: {exc}; keeping the previous policy")
            self.audit.write("policy_error", reason=str(exc))
            return
        self.say(f"agent {self.me}: policy {self.policy_path} re-read")
        self.audit.write("policy_reloaded")
        for run in list(self.runs.values()):  # every run not started yet, decided again
            if run.state in (lc.PENDING, lc.ACCEPTED, lc.READY) and run.manifest is not None:
                d = policies.redecide(run.state, run.record.get("approved_by", ""),
                                      policies.decide(run.manifest, self.policy, self.me, time.time()))
                if d is not None:
                    self._decided(run, d)

    def _decided(self, run: Run, d: policies.Decision, **audit) -> None:
        sub, rid = run.key
        self.audit.write("decision", rid, run.record["program"], submitter=sub, state=d.state, code=d.code,
                         how=d.how or "waiting", **audit)
        if d.state == lc.REJECTED:
            self._stop(run)
            self._end(run, lc.REJECTED, d.code, d.reason)
        elif d.state == lc.PENDING:
            self._set(run, lc.PENDING, code=d.code, reason=d.reason)
        else:  # prepared at once: its peers see 'ready' (or 'accepted' while it compiles) one sync sooner
            run.record.update(state=lc.ACCEPTED, approved_by=d.how, code="", reason="")
            self._prepare(run)

    # -- the operator's approve / reject
    def _requests(self) -> None:
        for path in sorted(self.board.requests.glob("*.json")):
            try:
                request = json.loads(path.read_text())
                run = self.runs.get((request.get("submitter"), request.get("run_id")))
                if run is None or run.state in lc.ENDED:
                    continue
                if request.get("manifest") != run.record.get("manifest"):
                    self.say(f"agent {self.me}: {run.record['run_id']}: the request was for another "
                             "version of the manifest; ignored")
                    continue
                if request.get("action") == "approve" and run.state == lc.PENDING:
                    self._decided(run, policies.Decision(lc.ACCEPTED, how="hand"), by=request.get("by"))
                elif request.get("action") == "reject":
                    self._stop(run)
                    self.audit.write("decision", run.record["run_id"], run.record["program"], state=lc.REJECTED,
                                     how="hand", by=request.get("by"), submitter=run.record["submitter"])
                    self._end(run, lc.REJECTED, "operator",
                              f"rejected by {self.me}'s operator: {request.get('reason') or 'no reason given'}",
                              approved_by="hand")
            except (OSError, ValueError, AttributeError, TypeError):
                pass
            finally:
                path.unlink(missing_ok=True)

    # -- manifests addressed to this site
    def _manifests(self) -> None:
        for key, version, data in self.intake.changed(self.policy):
            try:
                if data is None:
                    raise ManifestError(f"manifest larger than {MAX_BYTES} bytes, or not a regular file")
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
            if run is None:
                self._received(m, data)
            elif run.record.get("manifest") != m.sha256:
                self._changed(run, m)

    def _refused(self, key: Key, data: bytes, exc: ManifestError) -> None:
        """A manifest no site can run: refused once; the sites it names learn why."""
        run = self.runs.get(key)
        if run is not None:
            if run.state not in lc.ENDED:  # a run it answered has changed into something unreadable
                self._stop(run)
                self._end(run, lc.REJECTED, "manifest_changed", f"the manifest changed after the decision: {exc}")
            return
        sub, rid = key
        self.intake.once(("refused", key, exc.code), "refused", rid, None, submitter=sub, reason=str(exc),
                         code=exc.code)
        named = _parties(data)
        if self.me in named:
            self.say(f"agent {self.me}: {rid} from {sub}: refused: {exc}")
            run = Run(self._new_record(key, None, None, f"sha256:{_sha(data)}", sorted({sub, *named})))
            self.runs[key] = run
            self._end(run, lc.REJECTED, exc.code, str(exc))

    def _new_record(self, key: Key, pid, program, manifest_sha, readers, expires: float = 0) -> dict:
        return {"run_id": key[1], "site": self.me, "pid": pid, "submitter": key[0], "program": program,
                "manifest": manifest_sha, "readers": readers, "state": "", "code": "", "reason": "",
                "approved_by": "", "agent": self.incarnation, "heartbeat": 0, "expires": round(expires, 3)}

    def _received(self, m: Manifest, data: bytes) -> None:
        now = time.time()
        d = policies.decide(m, self.policy, self.me, now)
        full = self.intake.room(m.submitter, len(data), self.runs)
        if full:  # answered, never held
            d = policies.Decision(lc.REJECTED, "limit", full)
        else:
            private = self.board.run_private(*m.key)
            make_private_dir(private)
            write_private(private / "manifest.json", data)
        run = Run(self._new_record(m.key, m.pid_of(self.me), m.digest, m.sha256, m.readers(),
                                   policies.expiry(m, self.policy, now)), m, size=0 if full else len(data))
        self.runs[m.key] = run
        self.audit.write("received", m.run_id, m.digest, submitter=m.submitter, parties=m.parties)
        self.say(f"agent {self.me}: {m.run_id} from {m.submitter}: {d.state}"
                 + (f" ({d.reason})" if d.reason else f" by {d.how}"))
        self._decided(run, d)

    def _changed(self, run: Run, m: Manifest) -> None:
        """A manifest that changed after this site answered is never run: a new
        run needs a new id and its own decision."""
        self.intake.once(("changed", run.key), "refused", m.run_id, m.digest, submitter=m.submitter,
                         reason="the manifest changed after the decision", was=run.record.get("program"))
        if run.state in lc.ENDED:
            return
        self._stop(run)
        self._end(run, lc.REJECTED, "manifest_changed",
                  f"the manifest changed after the decision (program now {m.digest}); submit it as a new run")

    def _file_refused(self, path: Path, code: str, reason: str) -> None:
        """A peer's state or cancel file that cannot be read: once in the audit log."""
        where = str(path.relative_to(self.board.datasites)) if path.is_relative_to(self.board.datasites) else str(path)
        self.intake.once(("file", where, code), "refused", None, None, file=where, code=code, reason=reason)

    # -- one run, one step further
    def _step(self, run: Run) -> None:
        m = run.manifest
        if m is None:
            return
        sub, rid = run.key
        now = time.time()
        if self.board.cancelled(sub, rid):
            self._stop(run)
            self._end(run, lc.CANCELLED, "cancelled", f"cancelled by {sub}")
            return
        if run.state in (lc.PENDING, lc.ACCEPTED, lc.READY) and now > run.expires:
            self._stop(run)
            self._end(run, lc.EXPIRED, "expired", "the run expired before every site was ready")
            return
        others = {s: lc.current(self.board.state_of(s, sub, rid), run.record["manifest"])
                  for s in m.parties if s != self.me}
        found = lc.blocking(others, self.me)
        if found:  # a party that died before it could say so is named by its agent: ours stops too
            bad, running = lc.ending(*found), run.state == lc.RUNNING
            cancelled = found[1]["state"] == lc.CANCELLED  # a cancel seen there first
            self._stop(run)
            self._end(run, lc.FAILED if running and not cancelled else lc.CANCELLED, "peer",
                      f"stopped: {bad}" if running else f"not run: {bad}")
            return
        if run.state == lc.ACCEPTED:
            self._prepare(run)
        elif run.state == lc.READY:
            records = {**others, self.me: run.record}
            if lc.may_start(records):
                self._start(run)
        elif run.state == lc.RUNNING:
            self._watch_party(run)
        if run.state not in lc.ENDED and now - float(run.record.get("heartbeat", 0)) >= HEARTBEAT:
            self._publish(run)

    def _prepare(self, run: Run) -> None:
        """Own copy of the program, this site's configuration, a compile (once):
        then ``ready``. A compile never eats the parties' start bound."""
        if run.proc is not None:
            code = run.proc.poll()
            if code is None:
                return
            run.proc = None
            if code != 0:  # its log stays here: it names this site's paths
                self._end(run, lc.FAILED, "build", f"the build exited with code {code}")
                return
            self.audit.write("compiled", run.record["run_id"], run.record["program"])
            self._set(run, lc.READY)
            return
        m, folder = run.manifest, self._dir(run)
        try:
            config = self._party_config(run)
        except ManifestError as exc:
            self._end(run, lc.REJECTED, exc.code, str(exc))
            return
        except SyqureError as exc:
            self._end(run, lc.FAILED, "config", str(exc))
            return
        if not get_engine(m.engine).needs_build(config["engine"]):
            self._set(run, lc.READY)
            return
        run.proc = self._spawn(run, [sys.executable, "-m", "syqure_wf", "build", "--config",
                                     str(folder / "run.yaml")], folder / "build.log")
        self._set(run, lc.ACCEPTED)  # the heartbeat while it compiles

    def _party_config(self, run: Run) -> dict:
        from ..run import config as run_config

        m, folder = run.manifest, self._dir(run)
        program = write_program(m, folder / "program")
        pid = m.pid_of(self.me)
        name = m.inputs.get(pid)
        local_input = self.policy.inputs.get(name) if name else None
        if name and (local_input is None or not local_input.is_file()):
            raise ManifestError(f"input '{name}' maps to no file here" if local_input
                                else f"input '{name}' not mapped here", "input")
        raw = party_config(m, pid, self.board.folder, program, local_input, folder / "work", self.policy)
        write_private(folder / "run.yaml", yaml.safe_dump(raw).encode())
        run_config.load(folder / "run.yaml")  # this site's checks, before it says ready
        return raw

    def _start(self, run: Run) -> None:
        """Every site is ready: the approved bytes, checked again, and the party."""
        m, folder = run.manifest, self._dir(run)
        try:
            found = digest(m.entry, program_files(folder / "program" / m.entry))
        except OSError as exc:
            found = f"unreadable ({exc.strerror})"
        if found != m.program_digest:
            self.audit.write("refused", m.run_id, m.digest, submitter=m.submitter, reason=f"own copy is now {found}")
            self._end(run, lc.FAILED, "program_changed",
                      f"this site's copy of the program is {found}, not the approved {m.program_digest}")
            return
        run.proc = self._spawn(run, [sys.executable, "-m", "syqure_wf", "party", "--config",
                                     str(folder / "run.yaml"), "--pid", str(m.pid_of(self.me))],
                               folder / "party.log")
        self.audit.write("started", m.run_id, m.digest, pid=m.pid_of(self.me))
        self.say(f"agent {self.me}: {m.run_id}: every site is ready; party {m.pid_of(self.me)} started")
        self._set(run, lc.RUNNING)

    def _watch_party(self, run: Run) -> None:
        code = run.proc.poll() if run.proc is not None else -1
        if code is None:
            return
        if code == 0:
            run.proc = None
            shared = self._share(run)
            self._end(run, lc.DONE, "", "", result=shared)
            return
        if not run.exited:  # a cancel on its way would explain it: wait a moment for it
            run.exited, run.exit_code = time.time(), code
            return
        if time.time() - run.exited < lc.FAIL_GRACE:
            return
        run.proc = None
        status = self._party_status(run)
        reason = status.get("reason") or f"the party exited with code {run.exit_code}"
        self._end(run, lc.FAILED, "party", reason)

    def _share(self, run: Run) -> str:
        """This site's result, to whom its policy allows."""
        m = run.manifest
        pid = m.pid_of(self.me)
        out = self._dir(run) / "work" / "outputs" / f"party-{pid}.json"
        readers = {"submitter": [m.submitter], "parties": m.readers(), "none": []}[self.policy.share_results]
        data = self.board.read(out, MAX_BYTES)
        if not readers or data is None:
            return "kept"
        self.board.publish(self.board.result_path(self.me, m.submitter, m.run_id, pid), data, readers)
        return "shared"

    # -- processes
    def _spawn(self, run: Run, argv: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            os.chmod(log_path, 0o600)
            # spawned from the loop's own thread: the death signal follows this thread
            proc = subprocess.Popen(argv, cwd=self._dir(run), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent(signal.SIGTERM))
        threading.Thread(target=lambda: (proc.wait(), self.wake.set()), daemon=True).start()
        return proc

    def _stop(self, run: Run) -> None:
        """The party (or build) and every process it started: gone."""
        proc, run.proc = run.proc, None
        if proc is not None:
            stop_groups([proc], STOP_GRACE)

    # -- what this site says
    def _party_status(self, run: Run) -> dict:
        """The status record this site's party writes in its run folder."""
        m = run.manifest
        return read_status(run_folder(self.board.folder, self.me, channel_id(*m.key)) / "status",
                           m.pid_of(self.me)) or {}

    def _dir(self, run: Run) -> Path:
        return self.board.run_private(*run.key)

    def _set(self, run: Run, state: str, **fields) -> None:
        changed = state != run.state
        if changed and state in (lc.ACCEPTED, lc.READY, lc.RUNNING):
            run.record.update(code="", reason="")
        run.record.update(state=state, **fields)
        if changed and state == lc.READY:
            self.audit.write("ready", run.record["run_id"], run.record["program"])
        self._publish(run)

    def _end(self, run: Run, state: str, code: str, reason: str, **fields) -> None:
        reason = outgoing(reason) if reason else ""  # one line for the peers, none of this site's paths
        run.record.update(state=state, code=code, reason=reason, **fields)
        run.exited = 0.0
        self.audit.write(state, run.record["run_id"], run.record.get("program"), code=code, reason=reason)
        if state != lc.DONE:
            self.say(f"agent {self.me}: {run.record['run_id']}: {state}: {reason}")
        else:
            self.say(f"agent {self.me}: {run.record['run_id']}: done ({fields.get('result', '')})")
        self._publish(run)
        self._release(run)
        run.manifest = None  # its bytes are on disk; an ended run needs only its record

    def _publish(self, run: Run) -> None:
        now = time.time()
        run.record.update(heartbeat=round(now, 3), agent=self.incarnation)
        if run.state == lc.RUNNING and run.manifest is not None:  # its party's own record, in short
            status = self._party_status(run)
            run.record["party"] = {k: outgoing(status[k]) for k in ("state", "reason", "sync") if status.get(k)}
        folder = self._dir(run)
        make_private_dir(folder)
        write_private(folder / "record.json", dump(run.record))
        sub, rid = run.key
        self.board.publish(self.board.state_path(self.me, sub, rid), dump(run.record),
                           run.record.get("readers") or [])


def write_program(m: Manifest, folder: Path) -> Path:
    """The manifest's program files, as they were approved, in a fresh private ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    make_private_dir(folder)
    for name, data in m.files.items():
        make_private_dir((folder / name).parent)
        write_private(folder / name, data)
    return folder


def party_config(m: Manifest, pid: int, folder: Path, program: Path, local_input: Path | None,
                 workdir: Path, policy) -> dict:
    """This site's run configuration for its party of ``m``: the submitter's
    settings, this site's folder, input, engine settings and bounds."""
    timeouts = dict(m.config.get("timeouts") or {})
    timeouts["run"] = min(timeouts.get("run") or policy.max_seconds, policy.max_seconds)
    engine = {**m.config["engine"], **policy.engine, "program": str(program / m.entry)}
    raw = {"run_id": channel_id(*m.key), "layout": "syftbox", "syftbox": {"folder": str(folder)},
           # other sites' parties run elsewhere: only this site's ports are this machine's
           "parties": [{"pid": i, "email": e, "host": "localhost" if i == pid else f"site-{i}"}
                       for i, e in enumerate(m.parties)],
           "engine": engine, "workdir": str(workdir), "timeouts": timeouts, "isolation": policy.isolation,
           # the program: a clean environment, and Landlock's view where the kernel has it (run/confine.py)
           "confine": {"env": "clean", "files": "auto"},
           **{k: m.config[k] for k in ("framing", "max_message") if k in m.config}}
    if local_input is not None:
        raw["inputs"] = {str(pid): str(local_input)}
    if m.engine == "mpyc":  # ports of its own, free now, so that runs at once never meet
        from ..transport.ports import max_offset

        span = 2 * max_offset(len(m.parties)) + 2
        base = free_base(2 * span)
        raw["parties"][pid].update(base_port=base, party_base_port=base + span)
    return raw


def free_base(span: int) -> int:
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20000, 60000 - span)
        try:
            for port in range(base, base + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise SyqureError("no free range of local ports for the party")


def _stamp(path: Path) -> tuple:
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return ()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _parties(data: bytes) -> list[str]:
    """The emails a manifest no site can run still names (the sites to tell why)."""
    try:
        m = json.loads(data)
        emails = m.get("parties") if isinstance(m, dict) else None
        return [check_email(e) for e in emails][:64] if isinstance(emails, list) else []
    except Exception:  # nested too deep, or anything else: nobody to tell
        return []
