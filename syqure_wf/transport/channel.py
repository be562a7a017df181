"""One peer of a party: its listener or dialer towards the local party and
both directions of its traffic (party -> files: ``link.Upstream``; files
-> party: ``downstream.Downstream``). What to do and when is the session's
(``protocol/session.py``)."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import SyqureError
from .aio import bounded, cancel_all
from .downstream import Downstream
from .link import Link, Upstream
from .localhop import prove
from .protocol.events import Opened, Resumed
from .protocol.framing import make_framer
from .protocol.ports import ChannelPlan, Role

log = logging.getLogger(__name__)

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


class Channel(Downstream):
    """One peer of this party: its listener or dialer, its two directions
    (files -> party: ``downstream.Downstream``)."""

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
        self.session.handle(Opened(self.peer, not folder.listing(folder.inbox(self.peer)), keyed), time.monotonic())
        self._on_keyed: list = []
        self.open_downstream()
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

    # -- bookkeeping
    def stats(self) -> dict:
        waiting = time.monotonic() - self.waiting_since if self.waiting_since else 0.0
        return {"peer": self.peer, "connections": self.connections, "active": self.active, "refused": self.refused,
                "waiting_s": round(waiting, 1), "dropped_messages": self.state.dropped,
                "sent_messages": self.outbox.sent, "sent_bytes": self.outbox.bytes,
                "received_messages": self.inbox.delivered, "received_bytes": self.inbox.bytes,
                "next_seq_out": self.outbox.next_seq, "next_seq_in": self.inbox.next_seq}
