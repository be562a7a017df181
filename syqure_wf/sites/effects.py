"""What the agent does for a run (``actions.py``, performed): its own copy
of the program and its run configuration, the build and the party as
processes of their own, the result shared, the state kept and published.
An action with an outcome returns it, as the run's next observation."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import yaml

from ..engines import get_engine
from ..engines.program import digest, program_files
from ..errors import SyqureError
from ..run.children import die_with_parent, stop_groups
from ..files.private import make_private_dir, write_private
from ..run import config as run_config
from ..transport.status import read_status
from . import actions as do
from . import observations as seen
from .audit import Audit
from .board import Board, dump
from .manifest import MAX_BYTES, ManifestError
from .notify import Notifier
from .partyconfig import party_config, write_program
from .policy import Policy
from .intake import Key
from .run import Run


class Effects:
    def __init__(self, board: Board, audit: Audit, say: Callable[[str], None], policy: Callable[[], Policy],
                 wake: threading.Event, release: Callable[[Key, tuple[str, ...]], None]) -> None:
        self.board, self.audit, self.say, self.policy, self.wake = board, audit, say, policy, wake
        self.me = board.me
        self.release = release
        self.procs: dict[Key, subprocess.Popen] = {}  # each run's build, then its party
        self.configs: dict[Key, run_config.RunConfig] = {}  # each run's party's configuration, as checked
        self.notifier = Notifier(board.private / "notify.log", self.me, lambda: (policy().notify, _base(policy())),
                                 say, audit.write)

    def perform(self, run: Run, action):
        """Perform ``action`` of ``run``; its outcome, if it has one."""
        return self._PERFORM[type(action)](self, run, action)

    def exit_of(self, key: Key) -> int | None:
        """The exit code of a run's process: None while it runs, -1 with none."""
        proc = self.procs.get(key)
        return -1 if proc is None else proc.poll()

    def alive(self, key: Key) -> bool:
        return self.exit_of(key) is None

    # -- what this site says
    def _publish(self, run: Run, a: do.Publish) -> None:
        folder = self._dir(run)
        make_private_dir(folder)
        write_private(folder / "record.json", dump(a.record))
        sub, rid = run.key
        self.board.publish(self.board.state_path(run.me, sub, rid), self.board.trust.sign("state", dump(a.record)),
                           a.record.get("readers") or [])
        self.notifier.published(run.key, a.record)

    def _audit(self, run: Run, a: do.Audit) -> None:
        self.audit.write(a.event, a.run_id, a.program, **a.fields)

    def _say(self, run: Run, a: do.Say) -> None:
        self.say(a.line)

    def _pin(self, run: Run, a: do.Pin):
        """The keys the operator approved, pinned (compare-and-set)."""
        from ..keys.sitekey import Refused

        try:
            self.board.trust.pin(a.keys)
        except Refused as exc:
            return seen.Pinned(a.by, str(exc))
        return seen.Pinned(a.by)

    def _release(self, run: Run, a: do.Release) -> None:
        self.procs.pop(run.key, None)
        self.configs.pop(run.key, None)
        self.release(run.key, a.sites)

    # -- accepted: own copy, this site's configuration, a compile (once)
    def _prepare(self, run: Run, a: do.Prepare):
        """A compile never eats the parties' start bound: it comes before ``ready``."""
        try:
            config = self._party_config(run)
        except ManifestError as exc:
            return seen.NotRunnable(exc.code, str(exc))
        except SyqureError as exc:
            return seen.ConfigFailed(str(exc))
        return seen.Prepared(get_engine(run.manifest.engine).needs_build(config["engine"]))

    def _party_config(self, run: Run) -> dict:
        m, folder, policy = run.manifest, self._dir(run), self.policy()
        program = write_program(m, folder / "program")
        pid = m.pid_of(run.me)
        name = m.inputs.get(pid)
        local_input = policy.inputs.get(name) if name else None
        if name and (local_input is None or not local_input.is_file()):
            raise ManifestError(f"input '{name}' maps to no file here" if local_input
                                else f"input '{name}' not mapped here", "input")
        raw = party_config(m, pid, self.board.folder, program, local_input, folder / "work", policy)
        # the keys decided on, and the manifest's hash in every channel key: two sites shown
        # different manifests never complete the handshake (PROTOCOL.md, "Signed files")
        pinned = {e: fp for e, fp in (run.record.get("keys") or {}).items() if fp and e in m.parties}
        write_private(folder / "manifest.sha256", m.sha256.split(":", 1)[1].encode() + b"\n")
        raw["encryption"] = {"pinned": {**pinned, **(raw.get("encryption") or {}).get("pinned", {})},
                             "secret_file": str(folder / "manifest.sha256")}
        write_private(folder / "run.yaml", yaml.safe_dump(raw).encode())
        self.configs[run.key] = run_config.load(folder / "run.yaml")  # this site's checks, before it says ready
        return raw

    def _start_build(self, run: Run, a: do.StartBuild):
        folder = self._dir(run)
        self._spawn(run, [sys.executable, "-m", "syqure_wf", "build", "--config", str(folder / "run.yaml")],
                    folder / "build.log")
        return seen.BuildStarted()

    # -- every site is ready: the approved bytes, checked again, and the party
    def _start_party(self, run: Run, a: do.StartParty):
        m, folder = run.manifest, self._dir(run)
        try:
            found = digest(m.entry, program_files(folder / "program" / m.entry))
        except OSError as exc:
            found = f"unreadable ({exc.strerror})"
        if found != m.program_digest:
            return seen.ProgramChanged(found)
        self._spawn(run, [sys.executable, "-m", "syqure_wf", "party", "--config", str(folder / "run.yaml"),
                          "--pid", str(m.pid_of(run.me))], folder / "party.log")
        return seen.PartyStarted()

    def party_status(self, run: Run) -> dict:
        """The status record this site's party writes, where its configuration puts it."""
        cfg = self.configs.get(run.key)
        if cfg is None:  # prepared by an agent before this one
            try:
                cfg = self.configs[run.key] = run_config.load(self._dir(run) / "run.yaml")
            except SyqureError:
                return {}
        pid = run.manifest.pid_of(self.me)
        return read_status(cfg.status_dir_of(pid), pid) or {}

    def _share(self, run: Run, a: do.Share):
        """This site's result, to whom its policy allows."""
        m = run.manifest
        pid = m.pid_of(run.me)
        out = self._dir(run) / "work" / "outputs" / f"party-{pid}.json"
        readers = {"submitter": [m.submitter], "parties": m.readers(), "none": []}[self.policy().share_results]
        data = self.board.read(out, MAX_BYTES)
        if not readers or data is None:
            return seen.Shared("kept")
        from .results import About, seal

        keys = [k for k in (self._reader_key(run, r) for r in readers) if k is not None]
        if not keys:
            return seen.Shared("kept")
        body = seal(data, About(m.run_id, m.submitter, run.me, pid, m.sha256), keys)
        self.board.publish(self.board.result_path(run.me, m.submitter, m.run_id, pid),
                           self.board.trust.sign("result", body), readers)
        return seen.Shared("shared")

    def _reader_key(self, run: Run, email: str):
        """The key a reader's copy of the result is sealed to: the one decided on."""
        from ..keys.sitekey import Refused

        try:
            key, _ = self.board.trust.key(email)
        except Refused as exc:
            self.say(f"{run.key[1]}: result not sealed to {email}: {exc}")
            return None
        decided = (run.record.get("keys") or {}).get(email)
        if key is None or (email != self.me and decided and key.fingerprint != decided):
            self.say(f"{run.key[1]}: result not sealed to {email}: its key is not the one decided on")
            return None
        return key

    # -- processes
    def _spawn(self, run: Run, argv: list[str], log_path: Path) -> None:
        with open(log_path, "ab") as out:
            os.chmod(log_path, 0o600)
            # spawned from the loop's own thread: the death signal follows this thread
            proc = subprocess.Popen(argv, cwd=self._dir(run), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent(signal.SIGTERM))
        self.procs[run.key] = proc
        threading.Thread(target=lambda: (proc.wait(), self.wake.set()), daemon=True).start()

    def _stop(self, run: Run, a: do.Stop) -> None:
        """The party (or build) and every process it started: gone."""
        proc = self.procs.pop(run.key, None)
        if proc is not None:
            stop_groups([proc])

    def _dir(self, run: Run) -> Path:
        return self.board.run_private(*run.key)

    _PERFORM = {do.Publish: _publish, do.Audit: _audit, do.Say: _say, do.Release: _release, do.Prepare: _prepare,
                do.StartBuild: _start_build, do.StartParty: _start_party, do.Share: _share, do.Stop: _stop,
                do.Pin: _pin}


def _base(policy: Policy) -> Path:
    return policy.source.parent if policy.source else Path.cwd()
