"""One peer of a party: its listener or dialer towards the local party and
both directions of its traffic. What to do and when is the session's
(``protocol/session.py``: every look, wait and delivery of an inbound
message); this interprets its commands: the hand-off, the disk read, the waits."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import SyqureError
from .aio import bounded, cancel_all
from .link import Link, Upstream
from .localhop import prove
from .protocol import inbound
from .protocol.events import (
    Consume, Deliver, Delivered, Fail, Flush, Flushed, HalfClose, List, Listed, Look, Looked, Next, Note,
    Opened, ReadWriter, RecordReceived, Resumed, TrustWriter, Wait, Woken, WriterRead,
)
from .protocol.framing import HEADER, make_framer
from .protocol.ports import ChannelPlan, Role
from .status import read_status
from .waiter import Waiter

log = logging.getLogger(__name__)

SEND_PIECE = 1 << 20  # a message held in memory goes to the party in pieces of this size
DELIVER, WAIT, WRITER = "deliver", "wait", "writer"  # what the session's commands come to (Channel._step)
END = inbound.Verdict.END
DIAL_RETRY = 0.1
PROOF_POLL = 0.02  # while a dialled connection waits for the party to accept it
PROOF_WAIT = 10.0  # seconds the party may take to accept a connection it listens for


@dataclass
class Hub:
    """What the channels of one proxy share, given to each explicitly."""
    settings: object  # ProxySettings
    folder: object  # the layout (folder.Layout, possibly sealed)
    progress: object  # progress.Progress or None
    watcher: object
    session: object  # protocol.session.PartySession: what to do, and when
    beat_soon: Callable[[], None]
    changed: Callable[[], None]
    noted: Callable[[str], None]  # how this proxy now wakes up (said once)
    party: Callable[[], int | None] | None = None  # the party's pid (None: not running yet); None: no proof
    local: object = None  # the party in this process (inproc.PartySide): no socket at all


class Channel:
    """One peer of this party: its listener or dialer, its two directions."""

    def __init__(self, hub: Hub, plan: ChannelPlan, keyed: bool):
        s, folder = hub.settings, hub.folder
        self.hub, self.settings, self.folder, self.session = hub, s, folder, hub.session
        self.plan, self.peer, self.name = plan, plan.peer, plan.name
        self.state = hub.session.peers[plan.peer]  # its counters, its peer's watch: the session's
        self.outbox, self.inbox, self.watch = self.state.outbox, self.state.inbox, self.state.watch
        if hub.progress and hub.progress.resumed:
            self._resume(hub.progress)
        self.connections = 0
        self.active = False
        self._accepted: asyncio.Queue = asyncio.Queue()
        self._server: asyncio.AbstractServer | None = None
        self._latest: Link | None = None  # the party's latest connection: the next one waits for its end
        self._admitting: set = set()
        self.refused = 0  # connections not proven to come from the party
        self._pending: tuple | None = None
        self.waiting_since: float | None = None  # for progress: who waits on whom
        self.session.handle(Opened(self.peer, not folder.listing(folder.inbox(self.peer)), keyed), time.monotonic())
        self._on_keyed: list = []
        self.waiter = Waiter(self._arrived)
        self._lane: Link | None = None  # the link the downstream waits to deliver to (``_arrived``)
        self._next = Next(self.peer)
        self._skip = 0 if s.framing == "sequre" else HEADER.size  # of a message file, what the party does not get
        hub.watcher.subscribe(folder.inbox(self.peer), self.waiter.notify, folder.arrivals)
        self.where = f"{s.host}:{plan.port}"

    def upstream(self) -> Upstream:
        s = self.settings
        framer = make_framer(s.framing, max_message=s.max_message, chunk=s.chunk, channel=self.name)
        return Upstream(self.folder, self.peer, self.session, framer, self.hub.progress, self.hub.beat_soon)

    # -- connections to the local party
    async def listen(self) -> None:
        if self.plan.role is not Role.ACCEPT or self.hub.local is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._on_accept, self.settings.host, self.plan.port)
        except OSError as exc:
            raise SyqureError(f"channel {self.name}: cannot listen on {self.where}: {exc.strerror} "
                              "(another proxy or an earlier run still holds it?)") from None

    def _on_accept(self) -> Link:
        link = Link(self)
        task = asyncio.ensure_future(self._admit(link))
        self._admitting.add(task)
        task.add_done_callback(self._admitting.discard)
        return link

    async def _admit(self, link: Link) -> None:
        """One connection at a time, each the party's own (PROTOCOL.md, the local hop)."""
        await link.made
        why = await self._prove(link)
        if why is None and not self._accepted.empty():
            why = "another connection of the party already waits its turn"
        if why is not None:
            return self._refuse(link, why)
        before, self._latest = self._latest, link
        if before is not None and not before.upstream_done.done():
            link.hold("turn")
            before.upstream_done.add_done_callback(lambda _: link.release("turn"))
        link.release("proof")
        self._accepted.put_nowait(link)

    async def _prove(self, link: Link, patience: float = PROOF_WAIT) -> str | None:
        """None once the connection is shown to come from the party's process, else why not."""
        if self.hub.party is None:  # a proxy not told its party's pid (SECURITY.md)
            return None
        deadline = time.monotonic() + patience
        while True:
            if link.transport.is_closing():
                return "it closed before its proof"
            verdict = prove(*link.ends(), self.hub.party())
            if verdict.proven:
                return None
            if not verdict.wait or time.monotonic() > deadline:
                return verdict.reason
            await asyncio.sleep(PROOF_POLL)

    def _refuse(self, link: Link, why: str) -> None:
        self.refused += 1
        theirs = link.ends()[1] if link.transport is not None else None
        log.warning("channel %s: refused a connection%s: %s", self.name,
                    f" from {theirs[0]}:{theirs[1]}" if theirs else "", why)
        link.refuse()
        self.hub.changed()

    def close(self) -> None:
        if self._server:
            self._server.close()
        for task in list(self._admitting):
            task.cancel()

    @property
    def keyed(self) -> bool:
        """Its channel keys are known (else its bytes are held)."""
        return self.state.keyed

    def when_keyed(self, callback) -> None:
        self._on_keyed.append(callback)

    def keyed_now(self) -> None:
        callbacks, self._on_keyed = self._on_keyed, []
        for callback in callbacks:
            callback()
        self.waiter.notify()  # a message that waited for the key is looked at again

    async def serve(self) -> None:
        while True:
            link = await self._next_connection()
            self.active = True
            log.debug("channel %s: connection %d open", self.name, self.connections)
            try:
                await self._carry(link)
            finally:
                self.active = False
                link.close()
            self.connections += 1
            self.hub.changed()
            log.debug("channel %s: connection %d closed", self.name, self.connections - 1)

    def _resume(self, progress) -> None:
        """Carry on where a proxy killed in this run stopped: its counters, a
        message it had placed but not yet announced, messages it had delivered
        but not yet removed."""
        self.session.handle(Resumed(self.peer, self.folder.resume_outbox(self.peer, progress.out(self.peer)),
                                    progress.inn(self.peer)), time.monotonic())
        self.folder.drop_delivered(self.peer, self.inbox.next_seq)
        log.warning("channel %s: resumed at seq %d out, %d in", self.name,
                    self.outbox.next_seq, self.inbox.next_seq)

    async def _next_connection(self) -> Link:
        s = self.settings
        if self.plan.role is Role.ACCEPT:
            if self.connections:
                return await self._accepted.get()
            try:
                return await bounded(self._accepted.get(), s.connect_timeout or None)
            except asyncio.TimeoutError:
                raise SyqureError(f"channel {self.name}: party {s.pid} never connected to {self.where} "
                                  f"within {s.connect_timeout:g} s") from None
        if self.connections or not s.eager:
            self._pending = await self._next_inbound()
        return await self._dial()

    async def _dial(self) -> Link:
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + (s.connect_timeout or float("inf"))
        if self.hub.local is not None:
            return await self.hub.local.dial(self, loop.time() + (s.connect_timeout or float("inf")))
        refused = None  # why the first connection that was not the party's was refused
        while True:
            try:
                _, link = await loop.create_connection(lambda: Link(self), s.host, self.plan.port)
            except OSError as exc:
                why = exc.strerror or str(exc)
            else:
                why = await self._prove(link, min(PROOF_WAIT, max(deadline - time.monotonic(), 1.0)))
                if why is None:
                    link.release("proof")
                    return link
                self._refuse(link, why)
                refused = refused or why
            if time.monotonic() > deadline:
                if refused:
                    raise SyqureError(f"channel {self.name}: party {s.pid} is not listening on {self.where} "
                                      f"after {s.connect_timeout:g} s: another process is ({refused})")
                raise SyqureError(f"channel {self.name}: party {s.pid} is not listening on "
                                  f"{self.where} after {s.connect_timeout:g} s ({why})")
            await asyncio.sleep(DIAL_RETRY)

    async def _carry(self, link: Link) -> None:
        down = asyncio.ensure_future(self._downstream(link))
        try:
            await asyncio.gather(link.upstream_done, down)
        finally:
            await cancel_all([down])

    # -- files -> party
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
        if type(content) is not bytearray or decision.verdict is END or not link.writable or link.paused:
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
        finally:
            self._lane = None
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

    # -- bookkeeping
    def inbound_pending(self) -> bool:
        if self._pending is not None:
            return True
        decision, _ = self.folder.look(self.peer, self.inbox.next_seq, peek=True)
        return decision is not inbound.WAIT_ABSENT

    def stats(self) -> dict:
        waiting = time.monotonic() - self.waiting_since if self.waiting_since else 0.0
        return {"peer": self.peer, "connections": self.connections, "active": self.active, "refused": self.refused,
                "waiting_s": round(waiting, 1), "dropped_messages": self.state.dropped,
                "sent_messages": self.outbox.sent, "sent_bytes": self.outbox.bytes,
                "received_messages": self.inbox.delivered, "received_bytes": self.inbox.bytes,
                "next_seq_out": self.outbox.next_seq, "next_seq_in": self.inbox.next_seq}
