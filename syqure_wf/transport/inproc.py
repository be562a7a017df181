"""The file transport inside the party's own process: no proxy process, no
TCP, nothing listens.

The proxy (``proxy.py``, its channels and their ``Link`` protocol) runs
unchanged on its own asyncio loop, in a thread of the party's process: its
heartbeats, peers' liveness, handshake and sync watch go on while the party
computes between two ``mpc.run`` calls, when the party's loop stands still;
while the party's loop runs, that loop runs the proxy's too
(``turns.Turns``). Where the channels would meet the party's
sockets, each connection is a pipe: two ``End`` transports, one on each
loop. What the party writes in one turn of its loop goes to the files as
one message, on its own thread (``PipeLink.feed_now``), as the turn ends
(``TurnEnd``); what a channel delivers is queued on the party's loop (no
wake-up to send when the party's thread runs both). ``PartySide`` stands
in for the party's own ``create_server``/``create_connection``: a
connection the party "dials" is a link its channel accepts; a listener the
party opens is where its channel's dial lands.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading

from ..errors import SyqureError
from .link import Link
from .turns import TurnEnd

EOF, GONE = object(), object()  # in a stream of pieces: the writer half-closed; then closed
PIECE = 1 << 20  # a message file goes to the party in pieces of this size
LISTEN_POLL = 0.05  # while a peer's first message waits for the party to listen
# Bytes written in one turn that go to the files at once, not at the turn's
# end: a turn that goes on computing after a large write would hold it back.
SEND_NOW = 64 << 10


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
        self._batch: list = []  # written in this turn of the loop, for a ``direct`` reader
        self._batched = 0  # bytes in it
        self._turn_end: TurnEnd | None = None  # flushes the batch when the turn ends
        # Held while pieces go to this end's protocol: a writer on the other
        # thread may then feed it directly (``direct``), in order.
        self.feeding = threading.RLock()
        self.direct = False  # its protocol takes data on the writer's thread (``feed_now``)

    # -- writing (on this end's loop)
    def write(self, data) -> None:
        if data and not self._eof_sent:
            data = bytes(data)  # a copy: the writer may reuse its buffer
            if not self.other.direct:
                self._queue(data)
                return
            # What the party writes in one turn of its loop is one message
            # file, not one per write (MPyC writes a frame per operation):
            # written at the end of the turn (``flush``).
            if not self._batch:
                if asyncio._get_running_loop() is not self.loop:
                    self._batch.append(data)
                    return self.flush()  # no turn to wait for the end of
                self._turn_end = self._turn_end or TurnEnd.of(self.loop)
                if self._turn_end is None:
                    self.loop.call_soon(self.flush)  # a loop without a selector: a callback of the next turn
                else:
                    self._turn_end.ends.append(self)
            self._batch.append(data)
            self._batched += len(data)
            if self._batched >= SEND_NOW:
                self.flush()

    def flush(self) -> None:
        """What was written so far goes to the other end (in order)."""
        if self._batch:
            data = b"".join(self._batch) if len(self._batch) > 1 else self._batch[0]
            self._batch, self._batched = [], 0
            if not self._feed_directly(data):
                self._queue(data)

    def _feed_directly(self, data: bytes) -> bool:
        """Hand ``data`` to the other end's protocol on this thread, at once,
        when nothing is queued before it and the other end reads: a writer's
        (``direct``: into the files), or one whose loop runs ours on this
        thread (``Turns``), where a hand-over by ``call_soon`` would cost that
        loop a turn per message (a ``data_received`` only records and
        resolves futures)."""
        other = self.other
        with other.feeding:
            with self._lock:
                if self._out or self._handing:
                    return False
            if other._paused or other._lost or other.protocol is None:
                return False
            if other.direct:
                other.protocol.feed_now(data)
                return True
            if other._closing:  # closed on this turn: as its loop would, after its close, drop it
                return False
            try:
                other._received(data)
            except Exception as exc:  # the party's own bug: its loop's to report, as for a socket
                other.loop.call_exception_handler({"message": "protocol.data_received() call failed",
                                                   "exception": exc, "transport": other,
                                                   "protocol": other.protocol})
            return True

    def writelines(self, list_of_data) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._eof_sent:
            self.flush()
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
        other = self.other.loop
        here = getattr(other, "_thread_id", None) == threading.get_ident()  # its loop runs ours (Turns)
        if here and piece is not EOF and piece is not GONE and self._feed_directly(piece):
            return
        with self._lock:
            self._out.append(piece)
            if self._handing:
                return
            self._handing = True
        if here:
            other.call_soon(self._hand_over)  # its loop runs ours (Turns): no thread to wake, no turn of ours to wait
        elif asyncio._get_running_loop() is self.loop:
            # The other thread is woken at the end of this turn: what the turn
            # still does (the proxy consumes the file, looks for the next) is
            # done before that thread competes for the interpreter's lock.
            self.loop.call_soon(self._wake)
        else:
            self._wake()

    def _wake(self) -> None:
        other = self.other.loop
        try:
            if getattr(other, "_thread_id", None) == threading.get_ident():
                other.call_soon(self._hand_over)  # its loop runs ours (turns.Turns): no wake-up to send
            else:
                other.call_soon_threadsafe(self._hand_over)
        except RuntimeError:  # the other loop is closed: nobody reads any more
            pass

    def _hand_over(self) -> None:
        # on the other end's loop
        with self.other.feeding:
            with self._lock:
                pieces, self._out, self._handing = self._out, [], False
            self._deliver(pieces)

    def _deliver(self, pieces: list) -> None:
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
        with self.feeding:  # what was held goes first
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
    """A channel's ``Link`` over an ``End``: no socket, so no sendfile. What
    the party sends is written to the files on the party's own thread, as it
    sends it (``feed_now``): a hop to the proxy's thread would wait for the
    interpreter's lock while the party computes, at every system call."""

    def __init__(self, channel):
        super().__init__(channel)
        self.loop = self.upstream_done.get_loop()
        beat = self.upstream.beat_soon
        self.upstream.beat_soon = lambda: self.loop.call_soon_threadsafe(beat)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        transport.direct = True
        self.release("proof")  # the party in this very process: its own by construction, no socket to prove

    def feed_now(self, data: bytes) -> None:
        """On the party's thread (its end holds ``feeding``): into the files."""
        if self.upstream_done.done():
            return
        try:
            self.upstream.feed(data)
        except SyqureError as exc:
            self.loop.call_soon_threadsafe(self._finish, exc)
        except OSError as exc:
            self.loop.call_soon_threadsafe(self._finish, self.unwritable(exc))

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
        self.turns = None  # turns.Turns: who runs the proxy's loop, once it started
        self._lending = False  # the party's loop lends itself once the proxy started

    def lend(self, loop) -> None:
        """On the party's loop, about to run: it runs the proxy's loop too from
        now on (``Turns``), as soon as the proxy started."""
        if self.ready.done():
            if self.ready.exception() is None:
                self.turns.lend(loop)
        elif not self._lending:
            self._lending = True
            self.ready.add_done_callback(lambda _: loop.call_soon_threadsafe(self._lend_running, loop))

    def _lend_running(self, loop) -> None:
        if loop.is_running() and self.ready.exception() is None:
            self.turns.lend(loop)

    def flush(self) -> None:
        """On the party's thread: what the party wrote goes to the files now
        (its loop stopped before the end of the turn that wrote it)."""
        for end in list(self.ends):
            end.flush()

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
