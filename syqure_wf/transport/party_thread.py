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
from pathlib import Path

from .. import errors
from ..errors import SyqureError
from .inproc import PartySide
from .turns import Turns
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
