"""The proxy of a party in a thread of the party's own process (``inproc.py``
gives it its connections), and what passes between that process and its
runner: the settings, over an inherited socket pair; the status record,
handed over once the proxy starts; a failure, as one line and an exit code."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import traceback
from asyncio import events
from pathlib import Path

from .. import errors
from ..errors import SyqureError
from .inproc import PartySide
from .status import StatusRecord

log = logging.getLogger(__name__)

ABANDON_WAIT = 5.0  # seconds a failed program's last bytes may take to reach the files

FAILED = 76  # exit code of a party whose transport failed (EX_PROTOCOL); its line says why
PREFIX = "syqure-wf: transport: "
FD_VAR = "SYQURE_WF_TRANSPORT_FD"  # the runner's socket pair: the proxy's settings, then the record's hand-over
TAKE, TAKEN = b"take\n", b"ok\n"
HANDOVER_WAIT = 10.0  # seconds the party waits for its runner to stop writing its record


def settings_json(settings, record: dict | None = None) -> bytes:
    """The settings, and how the party's record is written (``record``: the
    keyword arguments of ``StatusRecord`` beyond its place: published, private, hide)."""
    from dataclasses import asdict

    data = asdict(settings)
    if data.get("secret") is not None:
        data["secret"] = data["secret"].hex()
    return json.dumps({"settings": data, "record": record or {}}).encode()


def settings_from(raw: bytes):
    """(the proxy's settings, the record's keyword arguments)."""
    from .settings import ProxySettings

    given = json.loads(raw)
    data, record = given["settings"], given.get("record") or {}
    if data.get("secret") is not None:
        data["secret"] = bytes.fromhex(data["secret"])
    if record.get("private"):
        record["private"] = Path(record["private"])
    return ProxySettings(**data), record


def read_settings(sock):
    """The settings, one line of JSON, from the runner's end of ``sock``."""
    data = b""
    while not data.endswith(b"\n"):
        piece = sock.recv(65536)
        if not piece:
            raise SyqureError("the party's runner closed its socket before the transport's settings")
        data += piece
    return settings_from(data)


def take_record(sock, wait: float = HANDOVER_WAIT) -> None:
    """Ask the runner to stop beating for this party, and wait until it has
    (its last write is then on disk): from here the proxy writes the record."""
    try:
        sock.settimeout(wait)
        sock.sendall(TAKE)
        sock.recv(len(TAKEN))
    except OSError:
        pass  # a runner gone or slow: its record is the proxy's from now on anyway
    finally:
        sock.close()


async def beat_until_taken(sock, record, interval: float) -> None:
    """The runner's side: keep the party's record beating while its process
    starts (imports take seconds), until its proxy takes the record over."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    try:
        while True:
            record.beat()
            try:
                got = await asyncio.wait_for(loop.sock_recv(sock, len(TAKE)), interval)
            except asyncio.TimeoutError:
                continue
            if got:
                await loop.sock_sendall(sock, TAKEN)
            return
    except OSError:
        return
    finally:
        sock.close()


def failure_line(exc: BaseException) -> str:
    kind = type(exc).__name__ if isinstance(exc, SyqureError) else "SyqureError"
    if isinstance(exc, SyqureError):
        text = str(exc)
    else:  # a bug, or something the party's confinement refused: where, in one line
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        text = f"internal error: {exc!r}" + "".join(f" at {f.filename}:{f.lineno} ({f.name})" for f in where)
    return f"{PREFIX}{kind}: {' '.join(text.split())}"


def failure_of(lines: list[str]) -> SyqureError | None:
    """The transport's failure a party's log ends with, as the error it was."""
    said = [ln for ln in lines if ln.startswith(PREFIX)]
    if not said:
        return None
    kind, _, text = said[-1].removeprefix(PREFIX).partition(": ")
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, SyqureError)) or cls is errors.Stopped:
        cls = SyqureError
    return cls(text)


class HeldRecord(StatusRecord):
    """The party's status record, written only once the runner has handed it over."""

    held = True

    def write(self) -> None:
        if not self.held:
            super().write()


STALE = 0.05  # seconds the proxy's work may wait for a party's loop that does not turn, before its thread does it
PARK_WAIT = 2.0  # seconds the party waits for the proxy's thread to hand its loop over
BURST = 4  # iterations of the proxy's loop in one turn of the party's, while it has work ready


class Turns:
    """Who runs the proxy's loop: its thread, or, once lent (``lend``), the
    party's own thread from inside the party's loop (``mpc.run``). Lent, a
    message that arrives wakes the party's thread itself (the proxy's epoll
    descriptor is one of its loop's readers) and is read, consumed and handed
    to MPyC there: no hand-off between threads, each of which waited for the
    interpreter's lock (bench/RESULTS.md). The proxy's thread keeps what is
    due (heartbeats, looks) whenever the party's loop does not turn for
    ``STALE`` s: it computes, or runs no loop between two ``mpc.run``. One
    lock: whoever runs an iteration of the proxy's loop holds it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        # on the proxy's thread, inside an iteration of its loop
        self.loop, self.inner = loop, loop._selector  # type: ignore[attr-defined]
        self.owner = threading.get_ident()
        self.lock = threading.Lock()
        self.lock.acquire()  # the proxy's thread holds it, but while it waits in ``select``
        self.lent = False
        self.parked, self.nudge = threading.Event(), threading.Event()
        self.pumps = 0
        self.party: asyncio.AbstractEventLoop | None = None
        self._soon = self._at = None
        loop._selector = self  # type: ignore[attr-defined]

    def __getattr__(self, name):  # the selector's other methods: register, modify, unregister, ...
        return getattr(self.inner, name)

    def select(self, timeout=None):
        if threading.get_ident() != self.owner:
            return self.inner.select(0)  # a pump on the party's thread (it holds the lock)
        self.lock.release()
        try:
            if not self.lent:
                return self.inner.select(timeout)
            self._park()
        finally:
            self.lock.acquire()
        return self.inner.select(0)

    def _park(self) -> None:
        """While lent: return when given back, or when work is due that the party's loop does not pump."""
        seen = self.pumps
        while self.lent:
            self.parked.set()
            if self.nudge.wait(STALE):
                self.nudge.clear()
                continue
            if self.pumps == seen and self._due():
                return
            seen = self.pumps

    def _due(self) -> bool:
        loop = self.loop  # work ready, a timer due, or an event (a message arrived) its loop did not pump
        try:  # read while a pump may change them: at worst an iteration for nothing
            return bool(loop._ready or loop._scheduled and loop._scheduled[0]._when <= loop.time()  # type: ignore
                        or self.inner.select(0))
        except (IndexError, OSError):
            return True

    # -- on the party's thread
    def lend(self, party: asyncio.AbstractEventLoop) -> None:
        """From now on the party's loop runs the proxy's while it turns."""
        if self.lent:
            return
        self.parked.clear()
        self.lent = True
        self.nudge.set()
        self.loop._write_to_self()  # type: ignore[attr-defined]  # out of its wait for events
        if not self.parked.wait(PARK_WAIT):
            self.lent = False  # busy: it keeps its loop, the party tries again at its next run
            return
        self.party = party
        party.add_reader(self.inner.fileno(), self.pump)
        self.pump()

    def pump(self) -> None:
        """One turn of the party's loop: iterations of the proxy's while it has work."""
        party = self.party
        if not self.lent:  # given back, or its thread ended (holding the lock)
            return self._unhook()
        if not self.lock.acquire(timeout=PARK_WAIT):
            log.warning("the proxy's loop is busy on its thread: left to it")
            return self.give_back()
        try:
            ended = self._iterate()
        except Exception:  # a bug here must not stop MPyC's loop: the proxy's thread takes over
            log.exception("the proxy's loop in the party's: given back to its thread")
            ended = True
        except BaseException:  # an interrupt is the party's: it goes on, the proxy's thread takes over
            self.give_back()
            raise
        finally:
            self.lock.release()
        if ended:  # the proxy's loop was stopped (the proxy ended): its thread ends it
            return self.give_back()
        self._next(party)

    def _iterate(self) -> bool:
        """Holding the lock: True when the proxy's loop is not the party's to run (any more)."""
        if not self.lent:
            return True
        self.pumps += 1
        running = events._get_running_loop()
        events._set_running_loop(self.loop)
        try:
            for _ in range(BURST):
                self.loop._run_once()  # type: ignore[attr-defined]
                if not self.loop._ready or self.loop._stopping:  # type: ignore[attr-defined]
                    break
        finally:
            events._set_running_loop(running)
        return bool(self.loop._stopping)  # type: ignore[attr-defined]

    def _next(self, party) -> None:
        loop = self.loop
        if loop._ready:  # type: ignore[attr-defined]
            if self._soon is None or self._soon.cancelled():
                self._soon = party.call_soon(self._pump_soon)
        elif loop._scheduled:  # type: ignore[attr-defined]
            when = loop._scheduled[0]._when  # type: ignore[attr-defined]
            # Armed again only for an earlier timer: one armed earlier than needed
            # (the proxy's timer was cancelled or moved) pumps once for nothing.
            if self._at is None or when < self._at.when():
                if self._at is not None:
                    self._at.cancel()
                self._at = party.call_at(when, self._pump_at)

    def _pump_soon(self) -> None:
        self._soon = None
        self.pump()

    def _pump_at(self) -> None:
        self._at = None
        self.pump()

    def give_back(self) -> None:
        """On the party's thread, its loop stopped or in a callback: the proxy's thread runs its loop again."""
        self.lent = False
        self._unhook()
        self.nudge.set()

    def _unhook(self) -> None:
        party, self.party = self.party, None
        for handle in (self._soon, self._at):
            if handle is not None:
                handle.cancel()
        self._soon = self._at = None
        if party is not None and not party.is_closed():
            party.remove_reader(self.inner.fileno())

    def reclaim(self) -> None:
        """On the proxy's thread (it holds the lock): its loop ends, the party's pumps stop."""
        self.lent = False


class ProxyThread:
    """The proxy of this party, in a thread of its own: ``start`` before the
    party opens connections, ``finish`` once its program returned (the
    proxy then drains, as it does when its party exits). A failure ends the
    process at once, with one line (``failure_line``) and exit ``FAILED``."""

    def __init__(self, given, runner=None):
        from .proxy import Proxy

        settings, self.record_kw = given if isinstance(given, tuple) else (given, {})

        self.side = PartySide()
        self.proxy = Proxy(settings, local=self.side)
        self.runner = runner  # the socket to the runner, for the record's hand-over
        self.loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Future | None = None
        self.thread = threading.Thread(target=self._main, name="syqure-wf transport", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        """The party's program returned: drain, settle, then return."""
        self.side.ready.result()
        self.side.flush()
        self.side.turns.give_back()
        self.loop.call_soon_threadsafe(self._exit.set_result, None)
        self.thread.join()

    def abandon(self, wait: float = ABANDON_WAIT) -> None:
        """The program ended with an error: what it wrote reaches the files,
        then the process may exit. No end of stream: a peer learns of the
        failure from this party's record (the runner names it), never from
        a stream cut short before a message it still waits for."""
        if not self.side.ready.done() or self.side.ready.exception() is not None:
            return
        self.side.flush()
        self.side.turns.give_back()
        handed = threading.Event()
        try:
            self.loop.call_soon_threadsafe(handed.set)  # after every hand-off queued before it
        except RuntimeError:
            return
        handed.wait(wait)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 (every failure ends the party, said in one line)
            if not isinstance(exc, SyqureError):
                traceback.print_exc()
            try:
                self.proxy.close()
            except Exception:  # noqa: BLE001
                pass
            os.write(2, (failure_line(exc) + "\n").encode(errors="replace"))
            os._exit(FAILED)

    async def _run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.side.turns = Turns(self.loop)
        try:
            await self._serve()
        finally:
            self.side.turns.reclaim()

    async def _serve(self) -> None:
        from .status import read_status

        self._exit = self.loop.create_future()
        s, folder = self.proxy.settings, self.proxy.folder
        record = HeldRecord(folder.status_dir(), s.pid, s.parties, s.run_id, **self.record_kw)
        own = set(record.data)
        self.proxy.status = record
        await self.proxy.start()  # the runner beats for this party meanwhile
        if self.runner is not None:
            await asyncio.to_thread(take_record, self.runner)
        earlier = read_status(folder.status_dir(), s.pid) or {}
        if earlier.get("run_id") == s.run_id:  # the runner's record: carried on, not restarted
            record.data = {**earlier, **{k: v for k, v in record.data.items() if k not in own}}
        record.held = False
        record.beat()
        self.side.started(self.proxy.channels)
        summary = await self.proxy.run(self._exit)
        self.proxy.status.update(channels=summary["channels"])
