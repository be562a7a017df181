"""One peer of a party: its listener or dialer towards the local party and
both directions of its traffic. The rules come from ``protocol/``
(``inbound.Arrival`` decides every wait for a message); this is their IO
driver: the hand-off, the disk read, the waits."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import CorruptMessage, SyqureError
from .aio import bounded, cancel_all
from .link import Link, Upstream
from .localhop import prove
from .protocol import inbound
from .protocol.framing import HEADER, make_framer
from .protocol.inbound import Arrival, Inbox, WriterProof
from .protocol.liveness import PeerWatch, writer_patience
from .protocol.names import END, MSG
from .protocol.outbound import Outbox
from .protocol.ports import ChannelPlan, Role
from .status import read_status
from .watch import LOOK, Waiter

log = logging.getLogger(__name__)

SEND_PIECE = 1 << 20  # a message held in memory goes to the party in pieces of this size
DIAL_RETRY = 0.1
WRITER_POLL = 0.05  # while a first message waits for proof that its writer runs
PROOF_POLL = 0.02  # while a dialled connection waits for the party to accept it
PROOF_WAIT = 10.0  # seconds the party may take to accept a connection it listens for


@dataclass
class Hub:
    """What the channels of one proxy share, given to each explicitly."""
    settings: object  # ProxySettings
    folder: object  # the layout (folder.Layout, possibly sealed)
    progress: object  # progress.Progress or None
    watcher: object
    wakeups: object  # watch.Wakeups
    clock: Callable[[], float]  # the peer clock: stands still while this site's sync is down
    started: float  # on the peer clock
    beat_soon: Callable[[], None]
    changed: Callable[[], None]
    arrived: Callable[[bool], None]  # a look found a message: announced by an event or not
    party: Callable[[], int | None] | None = None  # the party's pid (None: not running yet); None: no proof
    local: object = None  # the party in this process (inproc.PartySide): no socket at all


class Channel:
    """One peer of this party: its listener or dialer, its two directions."""

    def __init__(self, hub: Hub, plan: ChannelPlan, watch: PeerWatch, keyed: bool):
        s, folder = hub.settings, hub.folder
        self.hub, self.settings, self.folder = hub, s, folder
        self.plan, self.peer, self.name, self.watch = plan, plan.peer, plan.name, watch
        self.outbox, self.inbox = Outbox(), Inbox()
        if hub.progress and hub.progress.resumed:
            self._resume(hub.progress)
        self.connections = 0
        self.active = False
        self.dropped = 0  # messages the party had closed its side for
        self._accepted: asyncio.Queue = asyncio.Queue()
        self._server: asyncio.AbstractServer | None = None
        self._latest: Link | None = None  # the party's latest connection: the next one waits for its end
        self._admitting: set = set()
        self.refused = 0  # connections not proven to come from the party
        self._pending: tuple | None = None
        self.waiting_since: float | None = None  # for progress: who waits on whom
        self.writer_known = inbound.writer_known_at_start(
            s.start_timeout, folder.synced, not folder.listing(folder.inbox(self.peer)))
        self.first_taken = False  # the peer took our first message
        self.keyed = keyed  # its channel keys are known
        self._on_keyed: list = []
        self.waiter = Waiter()
        self.empty_at: int | None = None  # the waiter's count when a look last found no message
        hub.watcher.subscribe(folder.inbox(self.peer), self.waiter.notify, folder.arrivals)
        self.where = f"{s.host}:{plan.port}"

    def upstream(self) -> Upstream:
        s = self.settings
        framer = make_framer(s.framing, max_message=s.max_message, chunk=s.chunk, channel=self.name)
        return Upstream(self.folder, self.peer, self.outbox, framer, self.hub.progress, self.hub.beat_soon)

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

    def when_keyed(self, callback) -> None:
        self._on_keyed.append(callback)

    def keyed_now(self) -> None:
        self.keyed = True
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
        self.outbox.next_seq = self.folder.resume_outbox(self.peer, progress.out(self.peer))
        self.inbox.next_seq = progress.inn(self.peer)
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
        folder = self.folder
        skip = 0 if self.settings.framing == "sequre" else HEADER.size
        while True:
            decision, content = await self._next_inbound()
            seq = self.inbox.next_seq
            if decision.verdict is inbound.Verdict.END:
                self._delivered(seq)
                folder.consume(self.peer, seq, END)
                self.inbox.advance(message=False)
                link.half_close()
                return
            if isinstance(content, bytearray):
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
            if not link.writable:
                self.dropped += 1  # the party closed its side; what it won't read is consumed
            self._delivered(seq)
            folder.consume(self.peer, seq, MSG)
            self.inbox.advance(decision.length)

    def _delivered(self, seq: int) -> None:
        # Recorded before the files go: a restarted proxy never delivers them again.
        if self.hub.progress:
            self.hub.progress.received(self.peer, seq + 1)

    async def _next_inbound(self):
        """The next inbound slot, deliverable: looks, and waits as ``Arrival`` says."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        folder, wakeups, clock = self.folder, self.hub.wakeups, self.hub.clock
        arrival = Arrival(self.inbox.next_seq, self.inbox, writer_known=self.writer_known, look_every=LOOK)
        while True:
            self.waiter.clear()
            decision, content = folder.look(self.peer, arrival.seq)
            step = arrival.looked(decision, clock(), self.stall_bound(), wakeups.interval)
            if type(step) is inbound.Take or type(step) is inbound.Prove:
                if self.empty_at is not None:
                    self._judge_wakeup()
                folder.check_inbox_run(self.peer)
                if type(step) is inbound.Take:
                    return decision, content
                if hasattr(content, "close"):
                    content.close()
                await self._await_writer()
                arrival.proven()
                continue
            if type(step) is inbound.Corrupt:
                raise CorruptMessage(f"channel {self.name}: {folder.inbox(self.peer)}: {step.reason}")
            if decision is inbound.WAIT_ABSENT and self.empty_at is None:
                self.empty_at = self.waiter.count
            if type(step) is inbound.List:
                step = arrival.listed(folder.listing(folder.inbox(self.peer)), clock(), self.stall_bound(),
                                      wakeups.interval)
            if type(step) is inbound.Stalled:
                raise CorruptMessage(f"channel {self.name}: {folder.inbox(self.peer)}: {step.reason} "
                                     f"for {step.seconds:.1f} s")
            if self.waiting_since is None:
                self.waiting_since = time.monotonic()
            try:
                arrival.waited(await self.waiter.wait(step.timeout))
            finally:
                self.waiting_since = None

    def _judge_wakeup(self) -> None:
        """A message is here that a look before did not find: did an event say so?"""
        if self.waiter.count == self.empty_at:
            self.hub.watcher.flush()  # an event still queued is not a missing one
        self.hub.arrived(self.waiter.count != self.empty_at)
        self.empty_at = None

    async def _await_writer(self) -> None:
        """Deliver nothing from the peer before its running proxy is seen to be
        the writer of this inbox (``inbound.WriterProof``, PROTOCOL.md)."""
        s, folder, watch, clock = self.settings, self.folder, self.watch, self.hub.clock
        proof = WriterProof(clock())
        while True:
            now = clock()
            watch.observe(read_status(folder.status_dir_of(self.peer), self.peer), now)
            stamp = folder.writer_stamp(self.peer)
            bound = writer_patience(watch, s.peer_timeout, s.heartbeat, s.start_timeout)
            verdict = proof.observe(watch.writes_as(stamp), now, bound)
            if verdict == "proven":
                self.writer_known = True
                folder.trust_writer(self.peer, stamp)
                return
            watch.check(now, self.hub.started, s.start_timeout, s.peer_timeout)
            if verdict == "dead":
                left = sorted(folder.listing(folder.inbox(self.peer)))
                raise SyqureError(
                    f"{folder.inbox(self.peer)} holds {len(left)} message(s) (from seq "
                    f"{left[0] if left else '?'}) whose writer is not running "
                    f"(no live proxy of party {self.peer} wrote them within {bound:g} s): an earlier "
                    "run? run 'syqure-wf clean', or give every proxy the same --run-id")
            self.waiting_since = self.waiting_since or time.monotonic()
            await asyncio.sleep(WRITER_POLL)

    def stall_bound(self) -> float:
        s = self.settings
        return self.watch.patience(s.stall_timeout, s.start_timeout)

    # -- bookkeeping
    def inbound_pending(self) -> bool:
        if self._pending is not None:
            return True
        decision, _ = self.folder.look(self.peer, self.inbox.next_seq, peek=True)
        return decision is not inbound.WAIT_ABSENT

    def first_unread(self) -> bool:
        """The peer has not yet taken our first message (it waits for our beat first)."""
        if self.outbox.next_seq and not self.first_taken:
            self.first_taken = 0 not in self.folder.listing(self.folder.outbox(self.peer))
        return bool(self.outbox.next_seq) and not self.first_taken

    def stats(self) -> dict:
        waiting = time.monotonic() - self.waiting_since if self.waiting_since else 0.0
        return {"peer": self.peer, "connections": self.connections, "active": self.active, "refused": self.refused,
                "waiting_s": round(waiting, 1), "dropped_messages": self.dropped,
                "sent_messages": self.outbox.sent, "sent_bytes": self.outbox.bytes,
                "received_messages": self.inbox.delivered, "received_bytes": self.inbox.bytes,
                "next_seq_out": self.outbox.next_seq, "next_seq_in": self.inbox.next_seq}
