"""The file transport inside the party's own process: no proxy process, no
TCP, nothing listens.

The proxy (``proxy.py``, its channels and their ``Link`` protocol) runs
unchanged in a thread of the party's process, on its own asyncio loop: its
heartbeats, peers' liveness, handshake and sync watch go on while the party
computes between two ``mpc.run`` calls, when the party's loop stands still.
Where the channels would meet the party's sockets, each connection is a
``Pipe``: two ``End`` transports, one on each loop, handing bytes across
with ``call_soon_threadsafe`` (what the party wrote since the last hand-off
goes as one piece). ``PartySide`` stands in for the party's own
``create_server``/``create_connection``: a connection the party "dials" is
a link its channel accepts; a listener the party opens is where its
channel's dial lands.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import traceback

from .. import errors
from ..errors import SyqureError
from .link import Link

log = logging.getLogger(__name__)

EOF, GONE = object(), object()  # in a stream of pieces: the writer half-closed; then closed
PIECE = 1 << 20  # a message file goes to the party in pieces of this size
LISTEN_POLL = 0.05  # while a peer's first message waits for the party to listen
ABANDON_WAIT = 5.0  # seconds a failed program's last bytes may take to reach the files


class End(asyncio.Transport):
    """One end of an in-process connection, on its own loop. What is written
    here is handed to the other end's loop, in order, with its half-close."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self.loop, self.other, self.protocol = loop, None, None
        self._lock = threading.Lock()
        self._out: list = []  # pieces for the other end, not yet handed over
        self._handing = False  # a hand-off is scheduled on the other loop
        self._eof_sent = self._closing = self._lost = self._paused = False
        self._held: list = []  # pieces received while reading is paused

    # -- writing (on this end's loop)
    def write(self, data) -> None:
        if data and not self._eof_sent:
            self._queue(bytes(data))  # a copy: the writer may reuse its buffer

    def writelines(self, list_of_data) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            self._queue(EOF)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.write_eof()
        self._queue(GONE)
        self.loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name, default=None):
        return default  # no socket, no peer address

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass  # the other end takes everything at once: nothing to pause for

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_protocol(self):
        return self.protocol

    def _queue(self, piece) -> None:
        with self._lock:
            self._out.append(piece)
            if self._handing:
                return
            self._handing = True
        try:
            self.other.loop.call_soon_threadsafe(self._hand_over)
        except RuntimeError:  # the other loop is closed: nobody reads any more
            pass

    def _hand_over(self) -> None:
        # on the other end's loop
        with self._lock:
            pieces, self._out, self._handing = self._out, [], False
        data: list = []
        for piece in pieces:
            if piece is EOF or piece is GONE:
                if data:
                    self.other._received(b"".join(data))
                    data = []
                self.other._received(piece)
            else:
                data.append(piece)
        if data:
            self.other._received(b"".join(data))

    # -- reading (on this end's loop)
    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            held, self._held = self._held, []
            for piece in held:
                self._received(piece)

    def is_reading(self) -> bool:
        return not self._paused

    def _received(self, piece) -> None:
        if self._lost:
            return
        if self._paused:
            self._held.append(piece)
        elif piece is EOF:
            if not self.protocol.eof_received():
                self.close()
        elif piece is GONE:
            self._closing = True
            self._connection_lost()
        else:
            self.protocol.data_received(piece)

    def _connection_lost(self) -> None:
        if not self._lost:
            self._lost = True
            self.protocol.connection_lost(None)


def pipe(near: asyncio.AbstractEventLoop, far: asyncio.AbstractEventLoop) -> tuple[End, End]:
    a, b = End(near), End(far)
    a.other, b.other = b, a
    return a, b


class PipeLink(Link):
    """A channel's ``Link`` over an ``End``: no socket, so no sendfile."""

    async def send_file(self, file, offset: int, count: int) -> None:
        fd = file.fileno()
        while count > 0 and self.writable:
            piece = os.pread(fd, min(PIECE, count), offset)
            if not piece:
                break
            self.send(piece)
            offset += len(piece)
            count -= len(piece)
            await self.drain()


class PartySide:
    """The party's connections, for a proxy running in the party's thread
    ``tloop``: the channels call ``dial``; the party's loop calls
    ``connect`` and ``listen`` (where MPyC would open sockets)."""

    def __init__(self):
        self.tloop: asyncio.AbstractEventLoop | None = None
        self.channels: dict = {}  # peer -> Channel
        self.ready = concurrent.futures.Future()  # the proxy started (or why it could not)
        self._listener = None  # (party loop, protocol factory) while the party listens
        self.ends: list[End] = []  # the party's ends of its connections

    def started(self, channels) -> None:
        self.tloop = asyncio.get_running_loop()
        self.channels = {ch.peer: ch for ch in channels}
        self.ready.set_result(None)

    # -- on the party's loop
    def listen(self, loop, factory) -> "Listener":
        self._listener = (loop, factory)
        return Listener(self, factory)

    async def connect(self, loop, protocol, peer: int):
        """The party connects to ``peer``: its channel accepts the other end."""
        await asyncio.wrap_future(self.ready)
        channel = self.channels.get(peer)
        if channel is None:
            raise ConnectionRefusedError(f"no channel to party {peer}")
        mine, theirs = pipe(loop, self.tloop)
        self.ends.append(mine)
        self.tloop.call_soon_threadsafe(self._accepted, channel, theirs)
        mine.set_protocol(protocol)
        protocol.connection_made(mine)
        return mine, protocol

    def _accepted(self, channel, end: End) -> None:
        link = PipeLink(channel)
        end.set_protocol(link)
        link.connection_made(end)
        channel._accepted.put_nowait(link)

    # -- on the proxy's loop
    async def dial(self, channel, deadline: float) -> Link:
        """A peer's first message is here: the party's listener gets the connection."""
        loop = asyncio.get_running_loop()
        while self._listener is None:
            if loop.time() > deadline:
                raise SyqureError(f"channel {channel.name}: party {channel.settings.pid} is not "
                                  f"listening (in process) after {channel.settings.connect_timeout:g} s")
            await asyncio.sleep(LISTEN_POLL)
        party_loop, factory = self._listener
        mine, theirs = pipe(loop, party_loop)
        self.ends.append(theirs)
        link = PipeLink(channel)
        mine.set_protocol(link)
        link.connection_made(mine)

        def made() -> None:
            protocol = factory()
            theirs.set_protocol(protocol)
            protocol.connection_made(theirs)
        party_loop.call_soon_threadsafe(made)
        return link


class Listener:
    """What the party's ``create_server`` returns: closing it stops new connections."""

    def __init__(self, side: PartySide, factory):
        self.side, self.factory = side, factory

    def close(self) -> None:
        if self.side._listener and self.side._listener[1] is self.factory:
            self.side._listener = None

    async def wait_closed(self) -> None:
        pass

    def is_serving(self) -> bool:
        return self.side._listener is not None


# -- the proxy's thread in the party's process

FAILED = 76  # exit code of a party whose transport failed (EX_PROTOCOL); its line says why
PREFIX = "syqure-wf: transport: "
FD_VAR = "SYQURE_WF_TRANSPORT_FD"  # the runner's socket pair: the proxy's settings, then the record's hand-over
TAKE, TAKEN = b"take\n", b"ok\n"
HANDOVER_WAIT = 10.0  # seconds the party waits for its runner to stop writing its record


def settings_json(settings) -> bytes:
    from dataclasses import asdict

    data = asdict(settings)
    if data.get("secret") is not None:
        data["secret"] = data["secret"].hex()
    return json.dumps(data).encode()


def settings_from(raw: bytes):
    from .settings import ProxySettings

    data = json.loads(raw)
    if data.get("secret") is not None:
        data["secret"] = bytes.fromhex(data["secret"])
    return ProxySettings(**data)


def read_settings(sock) -> "object":
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
    text = str(exc) if isinstance(exc, SyqureError) else f"internal error: {exc!r}"
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


class ProxyThread:
    """The proxy of this party, in a thread of its own: ``start`` before the
    party opens connections, ``finish`` once its program returned (the
    proxy then drains, as it does when its party exits). A failure ends the
    process at once, with one line (``failure_line``) and exit ``FAILED``."""

    def __init__(self, settings, runner=None):
        from .proxy import Proxy

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
        self.loop.call_soon_threadsafe(self._exit.set_result, None)
        self.thread.join()

    def abandon(self, wait: float = ABANDON_WAIT) -> None:
        """The program ended with an error: its connections close as a dead
        process's sockets would (what it wrote is carried, then an end of
        stream), then the process may exit; the runner names the failure."""
        if not self.side.ready.done() or self.side.ready.exception() is not None:
            return
        for end in list(self.side.ends):
            end.close()
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
        from .status import StatusRecord, read_status

        self.loop = asyncio.get_running_loop()
        self._exit = self.loop.create_future()
        s, folder = self.proxy.settings, self.proxy.folder
        if self.runner is not None:
            take_record(self.runner)
        record = StatusRecord(folder.status_dir(), s.pid, s.parties, s.run_id)
        earlier = read_status(folder.status_dir(), s.pid) or {}
        if earlier.get("run_id") == s.run_id:  # the runner's record: carried on, not restarted
            record.data.update(earlier)
        self.proxy.status = record
        await self.proxy.start()
        self.side.started(self.proxy.channels)
        summary = await self.proxy.run(self._exit)
        self.proxy.status.update(channels=summary["channels"])
