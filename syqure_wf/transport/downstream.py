"""Files -> party: a channel's inbound direction. The session says what to
look at, when to wait and what to deliver (``protocol/session.py``); this
interprets it: the disk reads, the waits, the hand-off to the party. An
arrival while the downstream waits is taken in the watcher's callback
itself (the waiter's lane, ``_arrived``); the downstream's task does the
rest: large messages, end markers, writers to prove, a party that reads slowly."""
from __future__ import annotations

import asyncio
import time

from .link import Link
from .protocol import inbound
from .protocol.events import (
    Consume, Deliver, Delivered, Fail, Flush, Flushed, HalfClose, List, Listed, Look, Looked, Next, Note,
    ReadWriter, RecordReceived, TrustWriter, Wait, Woken, WriterRead,
)
from .protocol.framing import HEADER
from .status import read_status
from .waiter import Waiter

SEND_PIECE = 1 << 20  # a message held in memory goes to the party in pieces of this size
DELIVER, WAIT, WRITER = "deliver", "wait", "writer"  # what the session's commands come to (``_step``)
END = inbound.Verdict.END


class Downstream:
    """The inbound half of a ``channel.Channel`` (its peer, settings, folder,
    session, hub and counters are the channel's)."""

    def open_downstream(self) -> None:
        self._pending: tuple | None = None  # the first message, which a dial waited for
        self.waiting_since: float | None = None  # for progress: who waits on whom
        self.waiter = Waiter(self._arrived)
        self._lane: Link | None = None  # the link the downstream waits to deliver to (``_arrived``)
        self._found: tuple | None = None  # what the lane ended that wait with, until the task takes it
        self._next = Next(self.peer)
        self._skip = 0 if self.settings.framing == "sequre" else HEADER.size  # what the party does not get
        self.hub.watcher.subscribe(self.folder.inbox(self.peer), self.waiter.notify, self.folder.arrivals)

    async def _downstream(self, link: Link) -> None:
        outcome = self._step(self._next) if self._pending is None else (DELIVER, *self._pending)
        self._pending = None  # (the first message, which the dial waited for)
        while True:
            if outcome[0] is not DELIVER:
                outcome = await self._await(outcome, link)
            elif await self._deliver(link, *outcome[1:]):
                return
            else:
                outcome = self._step(self._next)

    async def _deliver(self, link: Link, decision, content) -> bool:
        """One message (or the end marker) to the party; True at the end."""
        skip, end = self._skip, decision.verdict is END
        if end:
            pass
        elif isinstance(content, bytearray):
            view = memoryview(content)
            # in pieces: a transport's buffer that holds a whole large message is
            # moved in memory at every send (Python 3.11), tens of MB per send
            for start in range(skip, max(len(view), skip + 1), SEND_PIECE):
                if not link.writable:
                    break
                link.send(view[start:start + SEND_PIECE])
                await link.drain()
        elif hasattr(content, "pieces"):  # sealed and large: opened a few segments at a time
            with content:
                for piece in content.pieces(skip):
                    if not link.writable:
                        break
                    link.send(piece)
                    await link.drain()
        else:
            with content:
                await link.send_file(content, skip, HEADER.size + decision.length - skip)
        self._delivered(link, decision.length, end)
        return end

    def _deliver_now(self, link: Link, decision, content) -> bool:
        """A whole small message to a party that reads (no write to wait for),
        on this turn of the loop; False, with nothing done, when it is not one."""
        if type(content) is not bytearray or decision.verdict is END or not link.writable or link.paused \
                or len(content) - self._skip > SEND_PIECE:
            return False
        link.send(memoryview(content)[self._skip:])
        self._delivered(link, decision.length, False)
        return True

    def _delivered(self, link: Link, length: int, end: bool) -> None:
        # the party closed its side (dropped): what it won't read is consumed
        for cmd in self.session.handle(Delivered(self.peer, length, end, not link.writable), time.monotonic()):
            kind = type(cmd)
            if kind is RecordReceived:
                self.hub.progress.received(self.peer, cmd.upto)
            elif kind is Consume:
                self.folder.consume(self.peer, cmd.seq, cmd.kind)
            elif kind is HalfClose:
                link.half_close()

    async def _next_inbound(self):
        """The next inbound slot, deliverable: looks, lists and waits as the session says."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        outcome = self._step(self._next)
        while outcome[0] is not DELIVER:
            outcome = await self._await(outcome, None)
        return outcome[1], outcome[2]

    def _step(self, seen) -> tuple:
        """Tell the session ``seen`` and do what it says, up to what needs a
        wait: ``(DELIVER, decision, content)``, ``(WAIT, seconds)`` or
        ``(WRITER, ReadWriter, content)``."""
        folder, session, peer, waiter = self.folder, self.session, self.peer, self.waiter
        decision = content = None
        commands = session.handle(seen, time.monotonic())
        while True:
            seen = None
            for cmd in commands:
                kind = type(cmd)
                if kind is Look:
                    waiter.clear()
                    decision, content = folder.look(peer, cmd.seq)
                    seen = Looked(peer, decision, waiter.count)
                elif kind is Deliver:
                    folder.check_inbox_run(peer)
                    return DELIVER, decision, content
                elif kind is Wait:
                    return WAIT, cmd.timeout
                elif kind is List:
                    seen = Listed(peer, folder.listing(folder.inbox(peer)))
                elif kind is Flush:
                    self.hub.watcher.flush()  # an event still queued is not a missing one
                    seen = Flushed(peer, waiter.count)
                elif kind is Note:
                    self.hub.noted(cmd.text)
                elif kind is ReadWriter:
                    return WRITER, cmd, content
                elif kind is TrustWriter:
                    folder.trust_writer(peer, cmd.stamp)
                elif kind is Fail:
                    raise cmd.error
            commands = session.handle(seen, time.monotonic())

    async def _await(self, outcome: tuple, link: Link | None) -> tuple:
        """The next outcome, once what ``outcome`` waits for is there (``_arrived`` may deliver meanwhile)."""
        if outcome[0] is WRITER:
            return self._step(await self._read_writer(outcome[1], outcome[2]))
        self.waiting_since = self.waiting_since or time.monotonic()
        self._lane = link
        try:
            woken = await self.waiter.wait(outcome[1])
        except asyncio.CancelledError:  # with what the lane found, maybe an open file
            if self._found is not None and hasattr(self._found[2], "close"):
                self._found[2].close()
            raise
        finally:
            self._lane = self._found = None
            self.waiting_since = None
        return woken if type(woken) is tuple else self._step(Woken(self.peer, woken))

    def _arrived(self) -> None:
        """The waiter's lane: each whole small message that arrives while the
        downstream waits goes to the party in this callback (waking the task
        costs a turn of the loop per message); anything else ends the wait."""
        waiter, link = self.waiter, self._lane
        if link is None:
            return waiter.resolve(True)
        try:
            while True:
                outcome = self._step(Woken(self.peer, True))
                while outcome[0] is DELIVER and self._deliver_now(link, outcome[1], outcome[2]):
                    outcome = self._step(self._next)
                if outcome[0] is not WAIT or not waiter.notified():
                    break
        except Exception as exc:  # the downstream's task raises it, as its own step would have
            return waiter.fail(exc)
        if outcome[0] is WAIT:
            self.waiting_since = time.monotonic()
            waiter.extend(outcome[1])
        else:
            self._found = outcome
            waiter.resolve(outcome)

    async def _read_writer(self, cmd: ReadWriter, content) -> WriterRead:
        """The peer's record and the stamp of the writer of its messages to us."""
        folder = self.folder
        if not cmd.after:  # the slot is whole: its run is checked, its writer is not proven yet
            folder.check_inbox_run(self.peer)
            if hasattr(content, "close"):
                content.close()
        else:
            self.waiting_since = self.waiting_since or time.monotonic()
            await asyncio.sleep(cmd.after)
        return WriterRead(self.peer, read_status(folder.status_dir_of(self.peer), self.peer),
                          folder.writer_stamp(self.peer))

    def inbound_pending(self) -> bool:
        if self._pending is not None:
            return True
        decision, _ = self.folder.look(self.peer, self.inbox.next_seq, peek=True)
        return decision is not inbound.WAIT_ABSENT
