"""One TCP connection to the local party: ``Link`` (the asyncio protocol,
its flow control both ways) and ``Upstream`` (party bytes -> framer ->
message files, then an end marker; which seq and when to record it: the
session's, ``protocol/session.py``)."""
from __future__ import annotations

import asyncio
import socket
import time

from ..errors import SyqureError
from .protocol.events import BeatSoon, Began, Closed, Commit, Framed, Open, RecordSent, WriteEnd
from .protocol.framing import HEADER, Begin, Data

WRITE_BUFFER = 4 << 20  # bytes queued to the party before the downstream waits
# Sequre sends a frame's length and its payload as two writes: with Nagle on,
# the payload waits for the length's ACK, which a receiver delays ~40 ms.
# The proxy receives from its party and ACKs at once (Linux resets the flag
# after each read, so it is set again every time).
QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class Upstream:
    """Party -> files for one connection: the framer's events become message
    files, written as the bytes arrive; the end becomes an end marker."""

    def __init__(self, folder, peer: int, session, framer, progress, beat_soon):
        self.folder, self.peer, self.session, self.framer = folder, peer, session, framer
        self.progress, self.beat_soon = progress, beat_soon
        self.msg = None
        self._framed = Framed(peer)

    def feed(self, data: bytes) -> None:
        for ev in self.framer.feed(data):
            if type(ev) is Data:
                self.msg.write(ev.chunk)
            else:
                self._obey(self.session.handle(Began(self.peer, ev.length) if type(ev) is Begin else self._framed,
                                               time.monotonic()))

    def _obey(self, commands) -> None:
        for cmd in commands:
            kind = type(cmd)
            if kind is Open:
                self.msg = self.folder.open_message(self.peer, cmd.seq)
                self.msg.write(HEADER.pack(cmd.length))
            elif kind is Commit:
                # the message is whole and its marker not yet there (no reader has it):
                # from here a restarted proxy publishes it, not rewrites it
                progress, upto = self.progress, cmd.upto
                self.msg.commit((lambda: progress.sent(self.peer, upto)) if progress else None)  # noqa: B023 (called within)
                self.msg = None
            elif kind is BeatSoon:
                self.beat_soon()
            elif kind is RecordSent:
                if self.progress:
                    self.progress.sent(self.peer, cmd.upto)
            elif kind is WriteEnd:
                self.folder.write_end(self.peer, cmd.seq)

    def finish(self) -> None:
        self.framer.eof()
        self._obey(self.session.handle(Closed(self.peer), time.monotonic()))

    def abort(self) -> None:
        if self.msg is not None:
            self.msg.abort()
            self.msg = None


class Link(asyncio.Protocol):
    """One TCP connection to the local party. Bytes from the party go to the
    files inside ``data_received``: the loop is busy while a file is written,
    which is the back-pressure. ``upstream_done`` resolves at the party's
    end of stream, or with the error that stopped the upstream."""

    def __init__(self, channel: "Channel"):  # noqa: F821 (channel.py imports this module, not back)
        self.upstream = channel.upstream()
        self.channel = channel  # its name, and its key gate
        loop = asyncio.get_running_loop()
        self.upstream_done = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.writable = True  # False once the party's side is gone
        self._resume: asyncio.Future | None = None
        # Nothing is read from the connection while a hold is on: "proof" until it is
        # proven to come from the party (localhop.py), "key" until the peer's key is
        # verified (no share leaves before), "turn" while the party's connection before it is open.
        self._holds = {"proof"}
        self.proven = False  # unproven, its bytes are never framed and its end writes nothing
        self.made = loop.create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER)
        self._sock = transport.get_extra_info("socket") if QUICKACK is not None else None
        self._quickack()
        transport.pause_reading()
        if not self.channel.keyed:
            self._holds.add("key")
            self.channel.when_keyed(lambda: self.release("key"))
        self.made.set_result(None)

    def hold(self, reason: str) -> None:
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        if reason == "proof":
            self.proven = True
        self._holds.discard(reason)
        if not self._holds and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def ends(self) -> tuple:
        """(ours, theirs): the two addresses of the connection, as this proxy sees them."""
        return self.transport.get_extra_info("sockname"), self.transport.get_extra_info("peername")

    def refuse(self) -> None:
        """Not the party's: reset, with nothing sent, framed or written."""
        if self.transport is not None:
            self.transport.abort()

    def _quickack(self) -> None:
        if self._sock is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                self._sock = None

    def data_received(self, data: bytes) -> None:
        self._quickack()
        if self.upstream_done.done():
            return
        try:
            self.upstream.feed(data)
        except SyqureError as exc:
            self._finish(exc)
        except OSError as exc:
            self._finish(self.unwritable(exc))

    def unwritable(self, exc: OSError) -> SyqureError:
        """The outbox refused a message or the end marker: the run fails, naming it."""
        return SyqureError(f"channel {self.channel.name}: cannot write to "
                           f"{self.upstream.folder.outbox(self.upstream.peer)}: {exc.strerror or exc}")

    def eof_received(self) -> bool:
        self._finish(None)
        return True  # keep our write side open: the peer may still send

    def connection_lost(self, exc) -> None:
        self.writable = False
        self._finish(None)
        self._wake_writer()

    def _finish(self, error: Exception | None) -> None:
        if self.upstream_done.done():
            return
        if not self.proven:  # a refused connection, or one that ended before its proof
            self.upstream_done.set_result(None)
            return
        if error is None:
            try:
                self.upstream.finish()
            except SyqureError as exc:
                error = exc
            except OSError as exc:  # in a protocol callback: raised, it would leave upstream_done unresolved
                error = self.unwritable(exc)
        if error is not None:
            self.upstream.abort()
            self.upstream_done.set_exception(error)
            if self.transport:
                self.transport.abort()
        else:
            self.upstream_done.set_result(None)

    # -- flow control of the downstream writes
    def pause_writing(self) -> None:
        # A pause while paused (sendfile can cause one) keeps the pending future:
        # replacing it would leave a waiting drain() asleep for ever.
        if self._resume is None or self._resume.done():
            self._resume = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)
        self._resume = None

    @property
    def paused(self) -> bool:
        """The party's side has more to read than it should hold: a send waits (``drain``)."""
        return self._resume is not None

    async def drain(self) -> None:
        if self._resume is not None:
            await self._resume

    def send(self, data) -> None:
        if self.writable:
            self.transport.write(data)

    async def send_file(self, file, offset: int, count: int) -> None:
        """Zero-copy: the kernel moves a large message from its file to the socket."""
        if not self.writable:
            return
        try:
            await asyncio.get_running_loop().sendfile(self.transport, file, offset, count)
        except (ConnectionError, RuntimeError):
            self.writable = False

    def half_close(self) -> None:
        if self.writable and self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except (OSError, RuntimeError):
                pass

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
