"""The party runner: one party of a run, its proxy in process and its engine
as a child process (an engine that speaks the files in its own process gets
the proxy's settings instead: ``transport/party_thread.py``). It records the
party's status in the run folder, stops within seconds when a peer failed
(naming it) and returns the engine's exit code, or 1 when the run failed
around it."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .children import die_with_parent, stop_group
from .config import RunConfig, check_inputs
from .confine import build_jail, confine
from .limits import limit_memory, parse as memory_of, ran_out, shown
from ..engines import get_engine
from ..errors import PeerFailed, Stopped, SyqureError
from ..files.private import append_private, make_private_dir
from ..transport import (DONE, FAILED, RUNNING, TRANSPORT_FAILED, TRANSPORT_FD, Proxy, SignalStop, StatusRecord,
                         beat_until_taken, cancel_all, failure_of, read_status, settings_json)
from . import sentinel

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for the engine


@dataclass
class PartyResult:
    pid: int
    exit_code: int
    reason: str = ""
    log: Path | None = None


def log_tail(path: Path, lines: int = 5) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            return [ln.decode(errors="replace") for ln in deque(f.read().splitlines(), lines)]
    except OSError:
        return []


def _local_folders(cfg: RunConfig) -> list:
    """Folders of this machine a party's messages may name (its sync folder)."""
    folder = (cfg.raw.get("syftbox") or {}).get("folder")
    return [Path(folder).expanduser().resolve()] if folder else []


class PartyRunner:
    def __init__(self, cfg: RunConfig, pid: int):
        self.cfg, self.pid = cfg, pid
        self.engine = get_engine(cfg.engine["name"])
        self.log = cfg.logs_dir / f"party-{pid}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.proxy: Proxy | None = None
        self.status: StatusRecord | None = None
        self.times: dict[str, float] = {}
        self.memory = 0  # bytes its program may take (limits.py), once started
        self.handover: asyncio.Future | None = None  # in process: the record's beat until the party takes it

    async def run(self) -> PartyResult:
        cfg, pid = self.cfg, self.pid
        check_inputs(cfg, [pid])
        if self.engine.needs_build(cfg.engine):  # once per machine; a rerun takes it from the cache
            from ..engines.build import build_run

            done = build_run(cfg, say=lambda line: print(f"party {pid}: {line}", file=sys.stderr, flush=True),
                             confine=build_jail(cfg))
            self.cfg = cfg = cfg.with_engine(binary=str(done.binary))
            self.times["build_s"] = round(done.seconds, 1)
        launch = self.engine.launch(cfg, pid)
        make_private_dir(cfg.logs_dir)
        make_private_dir(cfg.party(pid).output.parent)
        if cfg.party(pid).results:  # its named outputs go there
            make_private_dir(cfg.party(pid).results)
        published = cfg.layout == "syftbox"  # read by peers at other sites: nothing of this machine
        record_kw = {"published": published,
                     "private": str(cfg.logs_dir / f"party-{pid}.status.json") if published else None,
                     "hide": [str(cfg.workdir), str(Path.home()), *map(str, _local_folders(cfg))]}
        self.status = StatusRecord(cfg.status_dir_of(pid), pid, cfg.n, cfg.run_id, **{
            **record_kw, "private": Path(record_kw["private"]) if published else None})
        fds: tuple[int, ...] = ()
        handover = None
        if cfg.proxied:
            self.proxy = Proxy(cfg.proxy_settings(pid), status=self.status,
                               party=lambda: self.process.pid if self.process else None)
            await self.proxy.start()
        else:
            make_private_dir(cfg.status_dir_of(pid))
        if cfg.in_process:  # the child's proxy: its settings (a run secret among them) through a socket pair
            from ..engines.mpyc_inproc import make_folders

            make_folders(cfg, pid, launch)
            handover, theirs = socket.socketpair()
            handover.sendall(settings_json(cfg.proxy_settings(pid), record_kw) + b"\n")
            fds = (theirs.detach(),)
            launch.env[TRANSPORT_FD] = str(fds[0])
        jail = confine(cfg, pid, self.engine, launch, dict(os.environ))
        jail.before.append(die_with_parent())
        self.memory = memory_of(cfg.raw.get("memory"))
        jail.before.append(limit_memory(self.memory))
        try:
            listener = self._listener()
            self.status.update(state=RUNNING, engine=cfg.engine["name"], log=str(self.log),
                               command=launch.describe(), output=str(cfg.party(pid).output),
                               confinement=jail.summary, **({"listener": listener} if listener else {}),
                               transport="in process" if cfg.in_process else "proxy" if cfg.proxied else "tcp")
            sentinel.start(self.status.path)
            self.times["engine_started"] = time.time()
            with append_private(self.log) as log:
                log.write(f"syqure-wf: party {pid} confinement: {jail.line}\n".encode())
                if listener:
                    log.write(f"syqure-wf: party {pid} listener: {listener}\n".encode())
                log.flush()
                try:
                    self.process = await asyncio.create_subprocess_exec(
                        *launch.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                        stderr=asyncio.subprocess.STDOUT, env=jail.env,
                        start_new_session=True, preexec_fn=jail.preexec, pass_fds=fds)
                except OSError as exc:
                    raise SyqureError(f"party {pid}: cannot start {launch.argv[0]}: {exc.strerror}") from None
                except subprocess.SubprocessError as exc:  # the confinement failed in the child
                    raise SyqureError(f"party {pid}: cannot confine its program: {exc}") from None
        except BaseException:
            if handover is not None:
                handover.close()
            raise
        finally:
            jail.close()  # the child has it; nothing else may use it
            for fd in fds:
                os.close(fd)
        if handover is not None:  # its record beats on until the party's own proxy takes it
            self.handover = asyncio.ensure_future(
                beat_until_taken(handover, self.status, cfg.proxy_settings(pid).heartbeat))
        return await self._supervise()

    def _listener(self) -> str | None:
        """Said when the program's own listener is open beyond loopback (SECURITY.md)."""
        binds = self.engine.open_listener(self.cfg.engine)
        if not binds:
            return None
        from .isolation import inside

        if inside():
            return f"binds {binds}, in a network namespace of its own: only its proxy reaches it"
        return (f"binds {binds} with no network namespace of its own: any process of this machine or its "
                "network may connect to it before its proxy does (isolation: netns)")

    async def _supervise(self) -> PartyResult:
        cfg, pid = self.cfg, self.pid
        engine_exit = asyncio.ensure_future(self.process.wait())
        engine_ok = asyncio.get_running_loop().create_future()
        carry = asyncio.ensure_future(self.proxy.run(engine_ok) if self.proxy else engine_ok)
        deadline = cfg.timeouts.run or None
        try:
            done, _ = await asyncio.wait({engine_exit, carry}, timeout=deadline,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise SyqureError(f"party {pid} did not finish within {cfg.timeouts.run:g} s")
            if carry in done:
                carry.result()  # the proxy failed: its error says why
            code = await engine_exit
            self.times["engine_exited"] = time.time()
            if code != 0:
                if code == TRANSPORT_FAILED and cfg.in_process:  # its transport failed: said as a proxy says it
                    failed = failure_of(log_tail(self.log, 20))
                    if failed is not None:
                        raise failed
                said = self.engine.exit_reason(code, log_tail(self.log, 20))
                if said:  # the engine knows why (a peer's message it refused): said at once
                    raise SyqureError(f"party {pid} {said}")
                what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                if self.memory and ran_out(log_tail(self.log, 20)):
                    what += f": it ran out of its memory limit ({shown(self.memory)}, memory:)"
                # Killed from outside, the program is the cause: said at once. Else a
                # peer's failure may be, and its record may be a sync hop or two away.
                synced = self.proxy is not None and self.proxy.synced
                killed = code < 0 and -code in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
                culprit = None if killed else await self._failed_peer(wait=10.0 if synced else 2.0)
                if culprit:
                    raise PeerFailed(f"{culprit}; then party {pid}'s program {what}")
                raise SyqureError(f"party {pid}: the {cfg.engine['name']} program {what} (log: {self.log})")
            engine_ok.set_result(None)
            await carry  # everything delivered and consumed
            self._list_named_outputs()
        except BaseException:
            await self._stop_engine()
            raise
        finally:
            await cancel_all([carry, engine_exit] + ([self.handover] if self.handover else []))
        self.times["finished"] = time.time()
        self._carry_on_record()
        self.status.update(state=DONE, exit_code=0, times=self.times,
                           **({"channels": self.proxy.stats() if self.proxy else {}} if not cfg.in_process else {}))
        return PartyResult(pid, 0, log=self.log)

    def _list_named_outputs(self) -> None:
        """A program that writes named outputs (a module's) and no result
        file: the party's result file (what workflows and ``run`` collect) lists them."""
        p = self.cfg.party(self.pid)
        if p.named_outputs and not p.output.exists():
            import json

            p.output.write_text(json.dumps({"party": self.pid,
                                            "outputs": {k: str(v) for k, v in p.named_outputs.items()},
                                            "written": {k: v.is_file() for k, v in p.named_outputs.items()}}))

    async def _failed_peer(self, wait: float = 2.0) -> str | None:
        """A peer's failure that may have caused ours: a peer that dies closes
        its connections, and our program may exit before its record arrives."""
        deadline = time.monotonic() + wait
        while True:
            for peer in range(self.cfg.n):
                if peer != self.pid:
                    record = read_status(self.cfg.status_dir_of(peer, self.pid), peer) or {}
                    if self.proxy is not None:  # it knows a record left by an earlier run from this run's
                        failure = self.proxy.peer_failure(peer, record)
                        if failure:
                            return failure
                    elif record.get("state") == FAILED and record.get("run_id") == self.cfg.run_id:
                        return f"party {peer} failed: {record.get('reason', 'no reason given')}"
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)

    async def _stop_engine(self) -> None:
        if self.process is not None:
            await stop_group(self.process, KILL_GRACE)

    def _carry_on_record(self) -> None:
        """The child's proxy wrote the record since (its heartbeats, channels):
        the last word carries on from there."""
        if self.cfg.in_process and self.status is not None:
            mine = read_status(self.cfg.status_dir_of(self.pid), self.pid) or {}
            if mine.get("run_id") == self.cfg.run_id:
                self.status.data.update(mine)

    def discard(self) -> None:
        """A failed run is over: what this party wrote that nobody will read,
        and what was sent to it that it will never read, goes."""
        try:
            if self.proxy is not None:
                self.proxy.discard_unconsumed()
            elif self.cfg.in_process and self.status is not None:
                from ..transport import make_folder

                make_folder(self.cfg.proxy_settings(self.pid)).discard_unconsumed()
        except (OSError, SyqureError):
            pass

    def record_failure(self, reason: str) -> None:
        if self.status is not None:
            try:
                self._carry_on_record()
                self.status.update(state=FAILED, reason=reason, times=self.times,
                                   **({"channels": self.proxy.stats()} if self.proxy else {}))
            except OSError:
                pass


async def run_party(cfg: RunConfig, pid: int) -> PartyResult:
    """One party, with SIGTERM/SIGINT stopping the engine and recording why."""
    runner = PartyRunner(cfg, pid)
    with SignalStop() as stop:
        try:
            return await runner.run()
        except asyncio.CancelledError:
            if not stop.caught:
                raise
            error = Stopped(f"party {pid} stopped by {stop.caught}", stop.caught)
            runner.record_failure(str(error))
            runner.discard()
            raise error from None
        except SyqureError as exc:
            runner.record_failure(str(exc))
            runner.discard()
            tail = log_tail(runner.log)
            if tail and "program" in str(exc):
                print("\n".join(f"  party {pid} | {line}" for line in tail), file=sys.stderr)
            raise
        finally:
            if runner.proxy is not None:
                runner.proxy.close()
