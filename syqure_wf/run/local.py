"""The local runner: every party of a run on this machine, like the seed's
``syqure.sh``. Each party is its own ``syqure-wf party`` process (as on
separate machines); this runner prepares the run folder, shows progress
from the parties' status records, cleans up every process it started and
says where each party's output and log are."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .config import RunConfig, check_inputs
from . import summary as summary_file
from ..errors import ConfigError, Stopped, SyqureError
from ..files.private import make_private_dir, write_private
from .children import die_with_parent, stop_groups
from .progressline import size
from ..transport import DONE, FAILED, describe_sync, leftovers, parse_direction, read_status

TICK = 0.25  # the display's pace; a party's exit is seen at once (``_wait``)


def check_ports_free(cfg: RunConfig) -> None:
    for p in cfg.parties:
        for port in sorted(cfg.ports(p.pid)):
            with socket.socket() as s:
                # as the proxies and MPyC bind: connections of a finished run may linger in TIME_WAIT
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((cfg.host, port))
                except OSError as exc:
                    raise ConfigError(f"port {port} of party {p.pid} on {cfg.host} is in use "
                                      f"({exc.strerror}): an earlier run still going? set ports.base "
                                      "to another value") from None


def check_fresh(cfg: RunConfig) -> None:
    if not cfg.data_dir.is_dir():
        return
    for entry in os.scandir(cfg.data_dir):
        if entry.is_dir(follow_symlinks=False) and parse_direction(entry.name):
            left = leftovers(os.listdir(entry.path))
            if left:
                raise ConfigError(f"{entry.path} holds messages of an earlier run: "
                                  f"run 'syqure-wf clean {cfg.workdir}' or use another workdir")


def prepare(cfg: RunConfig) -> Path:
    """Create the run folder and write the resolved configuration every party reads."""
    check_inputs(cfg, [p.pid for p in cfg.parties])
    check_fresh(cfg)
    make_private_dir(cfg.workdir)
    make_private_dir(cfg.logs_dir)
    path = cfg.workdir / "config.yaml"
    write_private(path, yaml.safe_dump(cfg.resolved(), sort_keys=False).encode())
    return path


def party_command(cfg: RunConfig, config_path: Path, pid: int) -> list[str]:
    # with isolation: netns the party enters a namespace of its own (isolation.py)
    return [sys.executable, "-m", "syqure_wf", "party", "--config", str(config_path), "--pid", str(pid)]


def isolate_and_build(cfg: RunConfig, parties_here: int, say=None) -> RunConfig:
    """What every party run on this host needs before it starts: a namespace
    each where the engine needs it, and its program built once (``cfg`` with both)."""
    from ..engines import get_engine
    from .isolation import isolate

    cfg = isolate(cfg, parties_here)
    if get_engine(cfg.engine["name"]).needs_build(cfg.engine):
        from ..engines.build import build_run

        from .confine import build_jail

        done = build_run(cfg, say=say, confine=build_jail(cfg))
        cfg = cfg.with_engine(binary=str(done.binary))
        if say and done.compiled:
            say(f"compiled {done.binary.name} in {done.seconds:.0f} s")
    return cfg


class Display:
    """Live progress: a rich table on a terminal, state changes otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.live = None
        self.seen: dict[int, str] = {}
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, cfg: RunConfig, records: dict[int, dict | None], started: float) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(self._table(cfg, records, started))
            return
        for pid, rec in records.items():
            state = _state(rec)
            if self.seen.get(pid) != state:
                back = "; sync back" if "sync down" in self.seen.get(pid, "") and "sync down" not in state else ""
                self.seen[pid] = state
                print(f"[{time.monotonic() - started:6.1f}s] party {pid}: {state}{back}", file=sys.stderr, flush=True)

    def _table(self, cfg, records, started):
        from rich.table import Table

        table = Table(title=f"run {cfg.run_id}: {time.monotonic() - started:.1f} s", title_justify="left")
        for col in ("party", "state", "sent", "received", "waiting on"):
            table.add_column(col)
        for pid, rec in records.items():
            rec = rec or {}
            chans = (rec.get("channels") or {}).values()
            sent = sum(c.get("sent_messages", 0) for c in chans)
            sent_b = sum(c.get("sent_bytes", 0) for c in chans)
            recv = sum(c.get("received_messages", 0) for c in chans)
            recv_b = sum(c.get("received_bytes", 0) for c in chans)
            waiting = ", ".join(f"{c['peer']} ({c['waiting_s']:.0f} s)" for c in chans
                                if c.get("waiting_s", 0) >= 1)
            table.add_row(str(pid), _state(rec), f"{sent} msgs / {size(sent_b)}",
                          f"{recv} msgs / {size(recv_b)}", waiting)
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _state(rec: dict | None) -> str:
    """A party's state as its record says, with its site's sync when that is down."""
    rec = rec or {}
    down = describe_sync(rec.get("sync"))
    return f"{rec.get('state', 'starting')}; {down}" if down else rec.get("state", "starting")


class LocalRun:
    def __init__(self, cfg: RunConfig, *, progress: bool = True):
        self.cfg = cfg
        self.procs: dict[int, subprocess.Popen] = {}
        self.exits: dict[int, int | None] = {}  # per party process: readable once it exited (``exit_fd``)
        self.display = Display(progress)
        self.started = time.monotonic()
        self.stop_signal: str | None = None

    def run(self) -> dict:
        self.cfg = cfg = isolate_and_build(self.cfg, self.cfg.n, say=self.say)
        if cfg.proxied and cfg.isolation == "none":
            check_ports_free(cfg)
        config_path = prepare(cfg)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for p in cfg.parties:
                out = open(cfg.logs_dir / f"party-{p.pid}.runner.log", "wb")
                self.procs[p.pid] = subprocess.Popen(
                    party_command(cfg, config_path, p.pid), stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=die_with_parent(signal.SIGTERM))
                out.close()
                self.exits[p.pid] = exit_fd(self.procs[p.pid])
            self._watch()
        finally:
            self._kill_all()
            for fd in self.exits.values():
                if fd is not None:
                    os.close(fd)
            self.display.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.stop_signal:
            raise Stopped(f"run {cfg.run_id} stopped by {self.stop_signal}", self.stop_signal)
        folders = {p.output.parent for p in cfg.parties}
        if len(folders) == 1:  # summary.json beside the results, as every front door writes it (docs/outputs.md)
            folder = folders.pop()
            records = {p.pid: run_status(cfg, p.pid) for p in cfg.parties}
            summary_file.write(summary_file.of_parties(cfg.run_id, records, folder, "run"), folder / "summary.json")
        return self.summary()

    def say(self, line: str) -> None:
        if self.display.enabled:
            print(f"[{time.monotonic() - self.started:6.1f}s] {line}", file=sys.stderr, flush=True)

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signal.Signals(signum).name

    def _watch(self) -> None:
        cfg = self.cfg
        first_failure = None
        grace = min(cfg.timeouts.peer or 10, 10) + 5
        while not self.stop_signal:
            records = {p.pid: run_status(cfg, p.pid) for p in cfg.parties}
            self.display.update(cfg, records, self.started)
            codes = {pid: proc.poll() for pid, proc in self.procs.items()}
            if all(code is not None for code in codes.values()):
                return
            if first_failure is None and any(code not in (None, 0) for code in codes.values()):
                first_failure = time.monotonic()
            if first_failure is not None and time.monotonic() - first_failure > grace:
                return  # the rest did not stop by themselves: they are stopped below
            wait_for_exit([self.exits.get(pid) for pid, code in codes.items() if code is None], TICK)

    def _kill_all(self) -> None:
        stop_groups(list(self.procs.values()))

    def summary(self) -> dict:
        cfg = self.cfg
        parties = []
        for p in cfg.parties:
            rec = run_status(cfg, p.pid) or {}
            code = self.procs[p.pid].returncode if p.pid in self.procs else None
            reason = rec.get("reason", "")
            if code not in (0, None) and not reason:
                reason = _last_line(cfg.logs_dir / f"party-{p.pid}.runner.log") or f"exit code {code}"
            parties.append({
                "pid": p.pid, "name": p.name, "state": rec.get("state", "never started"),
                "exit_code": code, "reason": reason, "output": str(p.output),
                "log": str(cfg.logs_dir / f"party-{p.pid}.log"), "channels": rec.get("channels", {})})
        ok = all(x["exit_code"] == 0 and x["state"] == DONE for x in parties)
        return {"run_id": cfg.run_id, "workdir": str(cfg.workdir), "ok": ok,
                "seconds": round(time.monotonic() - self.started, 3), "parties": parties}


def exit_fd(proc: subprocess.Popen) -> int | None:
    """A descriptor that polls readable once ``proc`` exited (Linux >= 5.3), or None."""
    try:
        return os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return None


def wait_for_exit(fds: list[int | None], tick: float) -> None:
    """A tick, or less: until one of these processes (``exit_fd``) exits, so
    that the run's end is not rounded up to a tick. Without descriptors, a tick."""
    if fds and None not in fds:
        select.select(fds, [], [], tick)
    else:
        time.sleep(tick)


def run_status(cfg: RunConfig, pid: int) -> dict | None:
    """Party ``pid``'s record of this run; a record left by an earlier run in
    the same folder is none of this run's business."""
    record = read_status(cfg.status_dir_of(pid), pid)
    return record if record and record.get("run_id") == cfg.run_id else None


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def print_summary(summary: dict) -> None:
    err = sys.stderr
    status = "done" if summary["ok"] else "FAILED"
    print(f"run {summary['run_id']} {status} in {summary['seconds']:.1f} s ({summary['workdir']})", file=err)
    for p in summary["parties"]:
        msgs = sum(c.get("sent_messages", 0) for c in p["channels"].values())
        line = f"  party {p['pid']}: {p['state']}"
        if p["state"] == DONE:
            line += f", {msgs} messages sent; output {p['output']}"
        elif p["reason"]:
            line += f": {p['reason']}"
        print(line + f"\n    log {p['log']}", file=err)


def run_local(cfg: RunConfig, *, progress: bool = True, as_json: bool = False) -> int:
    summary = LocalRun(cfg, progress=progress and not as_json).run()
    if as_json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary(summary)
    if not summary["ok"]:
        failed = [p for p in summary["parties"] if p["state"] == FAILED or p["exit_code"] not in (0, None)]
        culprit = failed[0] if failed else summary["parties"][0]
        raise SyqureError(f"run {summary['run_id']} failed: party {culprit['pid']}: "
                          f"{culprit['reason'] or culprit['state']}")
    return 0
