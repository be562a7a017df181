"""The per-party proxy: its party's TCP channels carried through message files.

One asyncio loop serves every channel of the party. Per connection, two
tasks: ``upstream`` (socket -> framer -> message files, then an end marker)
and ``downstream`` (message files in seq order -> socket, then a half-close).
A channel carries successive connections (MPyC reconnects), each ended by an
end marker in both directions. Where the party listens the proxy dials it,
at once (Sequre's listener speaks first) or when the first message for the
connection arrives (MPyC); where the party connects the proxy listens.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from . import mailbox
from .aio import SignalStop, bounded, cancel_all
from ..errors import CorruptMessage, PeerFailed, Stopped, SyqureError
from .folder import SharedFolder
from .framing import DEFAULT_CHUNK, DEFAULT_MAX_MESSAGE, Begin, Data, make_framer
from .mailbox import Verdict
from .ports import ChannelPlan, Role, plan_channels
from .progress import Progress
from .status import DONE, FAILED, RUNNING, PeerWatch, StatusRecord, read_status
from .sync_health import SyncWatch, describe, find_client, problem_of
from .watch import LOOK, REMOVALS, Waiter, Wakeups, fs_type, make_watcher

log = logging.getLogger(__name__)

WRITE_BUFFER = 4 << 20  # bytes queued to the party before the downstream waits
SEND_PIECE = 1 << 20  # a message held in memory goes to the party in pieces of this size
# Sequre sends a frame's length and its payload as two writes: with Nagle on,
# the payload waits for the length's ACK, which a receiver delays ~40 ms.
# The proxy receives from its party and ACKs at once (Linux resets the flag
# after each read, so it is set again every time).
QUICKACK = getattr(socket, "TCP_QUICKACK", None)
RESCAN = 1.0  # seconds between looks for consumption that no event asked for
DIAL_RETRY = 0.1
WRITER_POLL = 0.05  # while a first message waits for proof that its writer runs
FAST_BEAT = 0.1  # heartbeat while a peer has yet to take our first message: it waits for a beat
SYNC_PROBE = 1.0  # seconds between looks at this site's sync (its client and server)
CLIENT_LOOK = 10.0  # seconds between searches for a sync client not found yet
KEY_POLL = 0.05  # seconds between looks for the peers' keys, until every peer is keyed


@dataclass
class ProxySettings:
    pid: int
    parties: int
    data_dir: str
    base_port: int
    party_base_port: int
    framing: str = "sequre"
    convention: str = "sequre"
    host: str = "127.0.0.1"
    poll_ms: float | None = None
    max_message: int = DEFAULT_MAX_MESSAGE
    chunk: int = DEFAULT_CHUNK
    run_id: str | None = None
    dial: str = "auto"  # eager | lazy | auto (eager for the sequre convention)
    connect_timeout: float = 300.0  # the local party must be reachable by then
    start_timeout: float = 600.0  # a peer must show its status by then (0: never check)
    peer_timeout: float = 10.0  # a live peer's heartbeat changes at least this often
    stall_timeout: float = 30.0  # an incomplete message or a seq hole may last this long
    drain_timeout: float = 60.0  # after the party exited, for the peers to consume
    sync_timeout: float = 1800.0  # this site's sync may be down this long (syftbox layout; 0: for ever)
    sync_probe: bool = True  # ask this site's SyftBox client and server whether the sync works
    heartbeat: float = 1.0
    linger: float = 2.0  # a standalone proxy waits this long for a new connection
    layout: str = "shared"
    syftbox: dict | None = None  # layout syftbox: folder, emails (by pid), max_file, app
    secret: bytes | None = None  # seal every message (seal.py) with this run secret (syftbox: mixed in)
    seal: str = "auto"  # auto: syftbox by the sites' keys, shared by the secret if any; off: never
    pinned: dict | None = None  # syftbox: email -> the fingerprint its site key must have

    @property
    def sealing(self) -> str:
        """How this party seals: site-keys, secret or off (in its status record)."""
        if self.seal == "off":
            return "off"
        if self.layout == "syftbox":
            return "site-keys"
        return "secret" if self.secret else "off"

    @property
    def eager(self) -> bool:
        return self.dial == "eager" or (self.dial == "auto" and self.convention == "sequre")


class Upstream:
    """Party -> files for one connection: the framer's events become message
    files, written as the bytes arrive; the end becomes an end marker."""

    def __init__(self, channel: "Channel"):
        s = channel.proxy.settings
        self.channel, self.folder, self.peer = channel, channel.proxy.folder, channel.peer
        self.framer = make_framer(s.framing, max_message=s.max_message, chunk=s.chunk, channel=channel.name)
        self.progress = channel.proxy.progress
        self.msg = None
        self.length = 0

    def feed(self, data: bytes) -> None:
        outbox = self.channel.outbox
        for ev in self.framer.feed(data):
            if type(ev) is Data:
                self.msg.write(ev.chunk)
            elif type(ev) is Begin:
                if not outbox.next_seq:
                    self.channel.proxy.beat_soon()  # the peer waits for a beat before reading it
                self.msg = self.folder.open_message(self.peer, outbox.allocate())
                self.msg.write(mailbox.HEADER.pack(ev.length))
                self.length = ev.length
            else:
                self.msg.commit(self._placed)
                self.msg = None
                outbox.count(self.length)

    def _placed(self) -> None:
        # The message is whole in the folder and its marker not yet there (so
        # no reader has it): from here a restarted proxy publishes it, not rewrites it.
        if self.progress:
            self.progress.sent(self.peer, self.channel.outbox.next_seq)

    def finish(self) -> None:
        self.framer.eof()
        seq = self.channel.outbox.allocate()
        # Counted first: killed before the marker, the restart leaves a hole
        # that the reader reports after its stall bound; never a reused seq.
        self._placed()
        self.folder.write_end(self.peer, seq)

    def abort(self) -> None:
        if self.msg is not None:
            self.msg.abort()
            self.msg = None


class Link(asyncio.Protocol):
    """One TCP connection to the local party. Bytes from the party go to the
    files inside ``data_received``: the loop is busy while a file is written,
    which is the back-pressure. ``upstream_done`` resolves at the party's
    end of stream, or with the error that stopped the upstream."""

    def __init__(self, channel: "Channel"):
        self.upstream = Upstream(channel)
        self.channel = channel
        loop = asyncio.get_running_loop()
        self.upstream_done = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.writable = True  # False once the party's side is gone
        self._resume: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER)
        self._sock = transport.get_extra_info("socket") if QUICKACK is not None else None
        self._quickack()
        if not self.channel.keyed:  # no share leaves before the peer's key is verified
            transport.pause_reading()
            self.channel.when_keyed(self._keyed)

    def _keyed(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

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
            self._finish(SyqureError(f"channel {self.channel.name}: cannot write to "
                                     f"{self.upstream.folder.outbox(self.upstream.peer)}: "
                                     f"{exc.strerror or exc}"))

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
        if error is None:
            try:
                self.upstream.finish()
            except SyqureError as exc:
                error = exc
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


class Channel:
    """One peer of this party: its listener or dialer, its two directions."""

    def __init__(self, proxy: "Proxy", plan: ChannelPlan):
        self.proxy, self.plan, self.peer = proxy, plan, plan.peer
        self.name = plan.name
        self.outbox, self.inbox = mailbox.Outbox(), mailbox.Inbox()
        if proxy.progress and proxy.progress.resumed:
            self._resume(proxy.progress)
        self.connections = 0
        self.active = False
        self.dropped = 0  # messages the party had closed its side for
        self._accepted: asyncio.Queue = asyncio.Queue()
        self._server: asyncio.AbstractServer | None = None
        self._pending: tuple | None = None
        self.waiting_since: float | None = None  # for progress: who waits on whom
        self.unconsumed_since: float | None = None  # the peer is done, our messages still there
        # The peer's running proxy is known to write our inbox. On a folder that
        # is not synced, anything that appears after we saw the inbox empty
        # was written by a running process: dead runs write nothing. Peers
        # without status records (seed sbproxy) give no evidence: checked at start.
        self.writer_known = (not proxy.settings.start_timeout or not proxy.folder.synced
                             and not proxy.folder.listing(proxy.folder.inbox(self.peer)))
        self.first_taken = False  # the peer took our first message
        self.keyed = not proxy.keys or self.peer not in proxy.keys.pending  # its channel keys are known
        self._on_keyed: list = []
        self.waiter = Waiter()
        self.empty_at: int | None = None  # the waiter's count when a look last found no message
        proxy.watcher.subscribe(proxy.folder.inbox(self.peer), self.waiter.notify, proxy.folder.arrivals)
        self.where = f"{proxy.settings.host}:{plan.port}"

    # -- connections to the local party
    async def listen(self) -> None:
        if self.plan.role is not Role.ACCEPT:
            return
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._on_accept, self.proxy.settings.host, self.plan.port)
        except OSError as exc:
            raise SyqureError(f"channel {self.name}: cannot listen on {self.where}: {exc.strerror} "
                              "(another proxy or an earlier run still holds it?)") from None

    def _on_accept(self) -> Link:
        link = Link(self)
        self._accepted.put_nowait(link)
        return link

    def close(self) -> None:
        if self._server:
            self._server.close()

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
            self.proxy.changed()
            log.debug("channel %s: connection %d closed", self.name, self.connections - 1)

    def _resume(self, progress) -> None:
        """Carry on where a proxy killed in this run stopped: its counters, a
        message it had placed but not yet announced, messages it had delivered
        but not yet removed."""
        folder = self.proxy.folder
        self.outbox.next_seq = folder.resume_outbox(self.peer, progress.out(self.peer))
        self.inbox.next_seq = progress.inn(self.peer)
        folder.drop_delivered(self.peer, self.inbox.next_seq)
        log.warning("channel %s: resumed at seq %d out, %d in", self.name,
                    self.outbox.next_seq, self.inbox.next_seq)

    async def _next_connection(self) -> Link:
        s = self.proxy.settings
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
        s = self.proxy.settings
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + (s.connect_timeout or float("inf"))
        while True:
            try:
                _, link = await loop.create_connection(lambda: Link(self), s.host, self.plan.port)
                return link
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise SyqureError(f"channel {self.name}: party {s.pid} is not listening on "
                                      f"{self.where} after {s.connect_timeout:g} s "
                                      f"({exc.strerror or exc})") from None
            await asyncio.sleep(DIAL_RETRY)

    async def _carry(self, link: Link) -> None:
        down = asyncio.ensure_future(self._downstream(link))
        try:
            await asyncio.gather(link.upstream_done, down)
        finally:
            await cancel_all([down])

    # -- files -> party
    async def _downstream(self, link: Link) -> None:
        folder, framing = self.proxy.folder, self.proxy.settings.framing
        while True:
            decision, content = await self._next_inbound()
            seq = self.inbox.next_seq
            if decision.verdict is Verdict.END:
                self._delivered(seq)
                folder.consume(self.peer, seq, mailbox.END)
                self.inbox.advance(message=False)
                link.half_close()
                return
            skip = 0 if framing == "sequre" else mailbox.HEADER.size
            if isinstance(content, bytearray):
                view = memoryview(content)
                # in pieces: a transport's buffer that holds a whole large message is
                # moved in memory at every send (Python 3.11), tens of MB per send
                for start in range(skip, max(len(view), skip + 1), SEND_PIECE):
                    if not link.writable:
                        break
                    link.send(view[start:start + SEND_PIECE])
                    await link.drain()
            else:
                with content:
                    await link.send_file(content, skip, mailbox.HEADER.size + decision.length - skip)
            if not link.writable:
                self.dropped += 1  # the party closed its side; what it won't read is consumed
            self._delivered(seq)
            folder.consume(self.peer, seq, mailbox.MSG)
            self.inbox.advance(decision.length)

    def _delivered(self, seq: int) -> None:
        # Recorded before the files go: a restarted proxy never delivers them again.
        if self.proxy.progress:
            self.proxy.progress.received(self.peer, seq + 1)

    async def _next_inbound(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        folder, wakeups = self.proxy.folder, self.proxy.wakeups
        seq = self.inbox.next_seq
        stalled_since, reason, woken, hole_checked = None, "", True, -LOOK
        while True:
            self.waiter.clear()
            decision, content = folder.look(self.peer, seq)
            if decision.verdict is Verdict.DELIVER or decision.verdict is Verdict.END:
                if self.empty_at is not None:
                    self._judge_wakeup()
                folder.check_inbox_run(self.peer)
                if self.writer_known:
                    return decision, content
                if hasattr(content, "close"):
                    content.close()
                await self._await_writer()
                continue
            where = folder.inbox(self.peer)
            if decision.verdict is Verdict.CORRUPT:
                raise CorruptMessage(f"channel {self.name}: {where}: {decision.reason}")
            now = self.proxy.clock()
            if decision is mailbox.WAIT_ABSENT:
                if self.empty_at is None:
                    self.empty_at = self.waiter.count
                # a listing costs a poll more than its look: one per LOOK at most
                if (not woken or stalled_since is not None) and now - hole_checked >= LOOK:
                    hole_checked = now
                    hole = self.inbox.gap(folder.listing(where))
                    if hole is None:
                        stalled_since = None
                    else:
                        reason = (f"{mailbox.file_name(seq, mailbox.MSG)} is missing while "
                                  f"message {hole} is there (a hole in the sequence)")
                        stalled_since = stalled_since or now
            else:
                reason, stalled_since = decision.reason, stalled_since or now
            if stalled_since is not None and now - stalled_since > self.stall_bound():
                raise CorruptMessage(f"channel {self.name}: {where}: {reason} "
                                     f"for {now - stalled_since:.1f} s")
            if self.waiting_since is None:
                self.waiting_since = time.monotonic()
            try:
                woken = await self.waiter.wait(wakeups.interval if stalled_since is None
                                               else min(wakeups.interval, 0.2))
            finally:
                self.waiting_since = None

    def _judge_wakeup(self) -> None:
        """A message is here that a look before did not find: did an event say so?"""
        if self.waiter.count == self.empty_at:
            self.proxy.watcher.flush()  # an event still queued is not a missing one
        self.proxy.arrived(self.waiter.count != self.empty_at)
        self.empty_at = None

    async def _await_writer(self) -> None:
        """Deliver nothing from the peer before its running proxy is seen to be
        the writer of this inbox: the ``writer.id`` stamp names an incarnation
        whose heartbeat changes on our clock. A dead run's messages have a
        writer that never beats again; they are never delivered (PROTOCOL.md)."""
        s, folder = self.proxy.settings, self.proxy.folder
        watch = self.proxy.peers[self.peer]
        began = self.proxy.clock()
        while True:
            now = self.proxy.clock()
            watch.observe(read_status(folder.status_dir_of(self.peer), self.peer), now)
            stamp = folder.writer_stamp(self.peer)
            if watch.writes_as(stamp):
                self.writer_known = True
                folder.trust_writer(self.peer, stamp)
                return
            watch.check(now, self.proxy.started, s.start_timeout, s.peer_timeout)
            bound = watch.patience(max(s.peer_timeout, 3 * s.heartbeat), s.start_timeout)
            if now - began > bound:
                left = sorted(folder.listing(folder.inbox(self.peer)))
                raise SyqureError(
                    f"{folder.inbox(self.peer)} holds {len(left)} message(s) (from seq "
                    f"{left[0] if left else '?'}) whose writer is not running "
                    f"(no live proxy of party {self.peer} wrote them within {bound:g} s): an earlier "
                    "run? run 'syqure-wf clean', or give every proxy the same --run-id")
            self.waiting_since = self.waiting_since or time.monotonic()
            await asyncio.sleep(WRITER_POLL)

    def stall_bound(self) -> float:
        s = self.proxy.settings
        return self.proxy.peers[self.peer].patience(s.stall_timeout, s.start_timeout)

    # -- bookkeeping
    def inbound_pending(self) -> bool:
        if self._pending is not None:
            return True
        decision, _ = self.proxy.folder.look(self.peer, self.inbox.next_seq, peek=True)
        return decision is not mailbox.WAIT_ABSENT

    def stats(self) -> dict:
        waiting = time.monotonic() - self.waiting_since if self.waiting_since else 0.0
        return {"peer": self.peer, "connections": self.connections, "active": self.active,
                "waiting_s": round(waiting, 1), "dropped_messages": self.dropped,
                "sent_messages": self.outbox.sent, "sent_bytes": self.outbox.bytes,
                "received_messages": self.inbox.delivered, "received_bytes": self.inbox.bytes,
                "next_seq_out": self.outbox.next_seq, "next_seq_in": self.inbox.next_seq}


class Proxy:
    """All channels of one party. ``run`` returns a summary or raises SyqureError."""

    def __init__(self, settings: ProxySettings, *, status: StatusRecord | None = None,
                 resumable: bool = False):
        self.settings = s = settings
        if s.run_id:
            mailbox.check_id(s.run_id, "run id")
        self.plans = plan_channels(s.pid, s.parties, s.base_port, s.party_base_port, s.convention)
        make_framer(s.framing)  # refuse an unknown framing before anything starts
        self.folder = make_folder(s)
        self.keys = None  # PeerKeys: the handshake with each peer (layout syftbox, sealed)
        self.status = status
        self.resumable = resumable
        self.running = False  # started: listening, channels made
        self.progress: Progress | None = None
        self.finished = False
        self.watcher = None
        self.wakeups: Wakeups | None = None
        self.channels: list[Channel] = []
        now = time.monotonic()
        reused = self.folder.fresh  # Biovault: the run is its folder, and reruns reuse it
        self.peers = {p: PeerWatch(p, s.run_id, self.folder.synced, now, reused=reused) for p in self.folder.peers()}
        self._changed = Waiter()
        self._beat = Waiter()
        self._consumption_watched = False
        self.started = time.monotonic()
        # a file's time, to the second: since this process started (a peer on the fork's own
        # transport logs once as it starts, and may wait for us while we wait for its key)
        self.started_wall = min(time.time(), process_started()) - 1.0
        # Bounds on what comes from peers run on a clock that stands still while
        # this site's own sync is down: nothing from a peer can arrive then.
        self.sync = SyncWatch(self.started)
        self.incarnation = secrets.token_hex(8)  # this process, as its peers see it

    def clock(self) -> float:
        return self.sync.clock(time.monotonic())

    def changed(self) -> None:
        self._changed.notify()

    def beat_soon(self) -> None:
        self._beat.notify()

    def arrived(self, announced: bool) -> None:
        note = self.wakeups.arrived(announced)
        if note:  # once: from now on this proxy polls
            log.warning("%s", note)
            self.status.update(wakeup=note)

    def _watch_consumption(self) -> None:
        # Consumption matters to the end of a run only: watched from then on,
        # so that carrying messages never wakes the writer for its own deletes.
        if not self._consumption_watched:
            self._consumption_watched = True
            for peer in self.folder.peers():
                self.watcher.subscribe(self.folder.outbox(peer), self.changed, REMOVALS)

    def stats(self) -> dict:
        return {ch.name: ch.stats() for ch in self.channels}

    async def start(self) -> None:
        """Prepare folders and listeners: every start-up error surfaces here."""
        s = self.settings
        if self.resumable and s.run_id:  # counters survive a restart only within a named run
            self.progress = Progress(self.folder.progress_path(), s.run_id, s.pid, s.parties)
        self.folder.prepare(resume=bool(self.progress and self.progress.resumed))
        if s.sealing == "site-keys":
            from .peerkeys import PeerKeys

            self.keys = PeerKeys(self.folder.inner, self.folder, s.syftbox["folder"], self.incarnation,
                                 s.pinned, s.secret)
            self.keys.publish()
        if not s.start_timeout and not s.run_id:
            self.folder.refuse_early_inbox()
        self.folder.stamp_writer(self.incarnation)
        if self.status is None:
            self.status = StatusRecord(self.folder.status_dir(), s.pid, s.parties, s.run_id)
        self.watcher = make_watcher(s.poll_ms)
        where = os.path.commonpath([str(self.folder.inbox(p).parent) for p in self.folder.peers()])
        self.wakeups = Wakeups(where, fs_type(where), s.poll_ms, misses=1 if self.watcher.exact else 2)
        if self.wakeups.polling:
            log.info("%s", self.wakeups.note)
        self.channels = [Channel(self, plan) for plan in self.plans]
        for ch in self.channels:
            await ch.listen()
        await self.watcher.start()
        self.running = True
        self.status.update(state=RUNNING, incarnation=self.incarnation, channels=self.stats(), framing=s.framing,
                           convention=s.convention, layout=self.folder.layout, wakeup=self.wakeups.note,
                           sealing=s.sealing, **({"site_key": self.keys.site.fingerprint} if self.keys else {}))

    async def run(self, party_exit: asyncio.Future | None = None) -> dict:
        """Carry traffic until done. With ``party_exit`` (the party runner), done
        means: the party exited, and everything was delivered and consumed."""
        if self.watcher is None:
            await self.start()
        tasks = [asyncio.ensure_future(ch.serve()) for ch in self.channels]
        tasks.append(asyncio.ensure_future(self._monitor()))
        if self.folder.layout == "syftbox" and self.settings.sync_probe:
            tasks.append(asyncio.ensure_future(self._watch_sync()))
        if self.keys:
            tasks.append(asyncio.ensure_future(self._handshake()))
        finish = asyncio.ensure_future(self._finished(party_exit))
        try:
            done, _ = await asyncio.wait(tasks + [finish], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not finish:
                    exc = task.exception()
                    raise exc if exc else SyqureError("a channel task ended unexpectedly")
            self.finished = True
            return {"channels": self.stats(), "seconds": time.monotonic() - self.started}
        finally:
            await cancel_all(tasks + [finish])
            self.close()

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        if self.watcher:
            self.watcher.close()
        self.folder.release()
        if self.progress:
            self.progress.close(forget=self.finished)

    async def _monitor(self) -> None:
        s = self.settings
        while True:
            self._beat.clear()
            self.status.beat(channels=self.stats(),
                             peer_gaps={str(p): round(w.longest_gap, 1) for p, w in self.peers.items()})
            now = self.clock()
            for pid, peer in self.peers.items():
                record = read_status(self.folder.status_dir_of(pid), pid)
                peer.observe(record, now)
                if peer.live:
                    self.folder.trust_reader(pid, peer.incarnation)
                    self._check_sealing(pid, record)
                elif peer.last_change is None:  # never seen: a site on another file protocol?
                    problem = self.folder.native_peer(pid, self.started_wall)
                    if problem:
                        raise SyqureError(problem)
                peer.check(now, self.started, s.start_timeout, s.peer_timeout)
            waits = self._first_unread() or bool(self.keys and self.keys.pending)  # a peer waits for a beat
            await self._beat.wait(min(s.heartbeat, FAST_BEAT) if waits else s.heartbeat)

    def _check_sealing(self, pid: int, record: dict | None) -> None:
        """Every party of a run seals the same way, or none can read the others."""
        theirs, mine = (record or {}).get("sealing"), self.settings.sealing
        if theirs and record.get("incarnation") == self.peers[pid].incarnation and theirs != mine:
            who = f"party {pid}" + (f" ({self.folder.emails[pid]})" if self.folder.layout == "syftbox" else "")
            raise SyqureError(f"{who} seals its messages with {theirs}, this party with {mine}: every party "
                              "of a run must (encryption: the same setting everywhere)")

    async def _handshake(self) -> None:
        """Each peer's channel keys, from its site's verified key (PeerKeys);
        until then the channel holds its party's bytes and the peer's messages."""
        s, keys = self.settings, self.keys
        while keys.pending:
            now = self.clock()
            for pid in sorted(keys.pending):
                watch = self.peers[pid]
                # a contribution found at the first look counts once its writer is seen running
                watch.observe(read_status(self.folder.status_dir_of(pid), pid), now)
                if keys.poll(pid, watch, now, watch.patience(max(s.peer_timeout, 3 * s.heartbeat), s.start_timeout)):
                    log.info("party %d: site key %s verified", pid, keys.fingerprints[pid])
                    for ch in self.channels:
                        if ch.peer == pid:
                            ch.keyed_now()
            await asyncio.sleep(KEY_POLL)
        self.status.update(peer_keys={str(p): f for p, f in sorted(keys.fingerprints.items())})
        await asyncio.get_running_loop().create_future()  # done: it ends with the run

    async def _watch_sync(self) -> None:
        """This site's sync: its SyftBox client must answer, and the server it
        syncs with. While either does not, the bounds on peers stand still
        (``clock``); down for longer than ``sync_timeout``, the run fails
        naming the sync. A folder whose client cannot be found gives no
        evidence: the bounds run as on any folder (PROTOCOL.md, Liveness)."""
        s = self.settings
        folder = Path(s.syftbox["folder"]).expanduser() if s.syftbox else None
        client, look_at = None, 0.0
        while folder is not None:
            now = time.monotonic()
            if client is None and now >= look_at:
                client, look_at = await asyncio.to_thread(find_client, folder), now + CLIENT_LOOK
            problem = await asyncio.to_thread(problem_of, client) if client else None
            change = self.sync.observe(problem, time.monotonic(), time.time())
            if change == "down":
                log.warning("%s", describe(self.sync.record()))
            elif change == "up":
                log.warning("sync back after %.0f s", self.sync.last_outage)
            if change:
                self.status.update(sync=self.sync.record())
            if self.sync.down and s.sync_timeout and self.sync.down_for(time.monotonic()) > s.sync_timeout:
                since = time.strftime("%H:%M:%S", time.localtime(self.sync.down_wall))
                raise SyqureError(f"{self.sync.reason} since {since}: this site's sync did not come back "
                                  f"within {s.sync_timeout:g} s (timeouts.sync)")
            await asyncio.sleep(SYNC_PROBE)

    def _first_unread(self) -> bool:
        """A peer has not yet taken our first message: before it does, it must
        see our heartbeat move (``Channel._await_writer``), so we beat fast."""
        for ch in self.channels:
            if ch.outbox.next_seq and not ch.first_taken:
                ch.first_taken = 0 not in self.folder.listing(self.folder.outbox(ch.peer))
        return any(ch.outbox.next_seq and not ch.first_taken for ch in self.channels)

    def _quiet(self, need_connections: bool) -> tuple | None:
        """A snapshot of a finished state, or None while anything is still due."""
        for ch in self.channels:
            if ch.active or ch.inbound_pending() or (need_connections and not ch.connections):
                return None
        for ch in self.channels:
            self.folder.reap(ch.peer)
            if self.folder.unconsumed(ch.peer, ch.outbox.next_seq):
                self._watch_consumption()
                return None
        return tuple(ch.connections for ch in self.channels)

    async def _finished(self, party_exit: asyncio.Future | None) -> None:
        s = self.settings
        if party_exit is not None:
            await party_exit
            exited = self.clock()
        while True:
            self._changed.clear()
            snapshot = self._quiet(need_connections=party_exit is None)
            if snapshot is not None:
                if party_exit is not None:
                    await self._settle()
                    return
                await asyncio.sleep(s.linger)
                if self._quiet(True) == snapshot:
                    return
                continue
            if party_exit is not None:
                self._check_drain(exited)
            # where peers' removals raise no events, their consumption is looked for as often as their messages
            await self._changed.wait(max(self.wakeups.interval, FAST_BEAT / 2) if self.wakeups.polling else RESCAN)

    async def _settle(self, quiet_for: float = 2.5, bound: float = 10.0) -> None:
        """A sync may bring back a file its writer removed (SyftBox re-downloads
        it before the deletion is synced): clean until the outboxes stay empty."""
        if self.folder.layout != "syftbox":
            return
        deadline, empty_since = time.monotonic() + bound, time.monotonic()
        while time.monotonic() < deadline:
            for ch in self.channels:
                self.folder.reap(ch.peer)
            if any(self.folder.unconsumed(ch.peer, ch.outbox.next_seq) or
                   self.folder.listing(self.folder.outbox(ch.peer)) for ch in self.channels):
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since >= quiet_for:
                return
            await asyncio.sleep(0.25)

    def _check_drain(self, exited: float) -> None:
        s, now = self.settings, self.clock()
        for ch in self.channels:
            peer = self.peers[ch.peer]
            self.folder.reap(ch.peer)
            left = self.folder.unconsumed(ch.peer, ch.outbox.next_seq)
            if not (left and peer.state in (DONE, FAILED)):
                ch.unconsumed_since = None
                continue
            # its consumption record may still be on its way, behind its status
            ch.unconsumed_since = ch.unconsumed_since or now
            if now - ch.unconsumed_since > peer.patience(s.heartbeat * 3, s.start_timeout):
                raise PeerFailed(f"party {ch.peer} finished without consuming {len(left)} "
                                 f"message(s) of channel {ch.name}")
        bound = max(p.patience(s.drain_timeout, s.start_timeout) for p in self.peers.values())
        if now - exited > bound:
            waiting = [ch.name for ch in self.channels if ch.active or ch.inbound_pending()
                       or self.folder.unconsumed(ch.peer, ch.outbox.next_seq)]
            raise PeerFailed(f"party {s.pid} exited but channel(s) {', '.join(waiting)} "
                             f"did not drain within {bound:g} s")


def process_started() -> float:
    """When this process started, on the wall clock (Linux; elsewhere: now)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def make_folder(s: ProxySettings):
    """The message folder of the run's layout, sealed: by the sites' keys in the
    syftbox layout (the handshake gives them), by a run secret if there is one."""
    if s.layout == "syftbox":
        from .syftbox import DEFAULT_MAX_FILE, SyftboxFolder

        box = s.syftbox or {}
        folder = SyftboxFolder(box["folder"], s.pid, box["emails"], s.run_id, s.max_message,
                               box.get("max_file") or DEFAULT_MAX_FILE, box.get("app") or "syqure",
                               box.get("run_dir"))
    else:
        folder = SharedFolder(s.data_dir, s.pid, s.parties, s.run_id, s.max_message)
    if s.sealing == "site-keys":
        from .seal import SealedFolder

        folder = SealedFolder(folder, s.run_id)
    elif s.sealing == "secret":
        from .seal import SealedFolder, secret_key

        folder = SealedFolder(folder, s.run_id, {p: (secret_key(s.secret, s.run_id, s.pid, p),
                                                     secret_key(s.secret, s.run_id, p, s.pid))
                                                 for p in folder.peers()})
    return folder


async def run_standalone(settings: ProxySettings) -> dict:
    """The proxy as its own process: status records its end; signals stop it.
    Killed or stopped, it leaves its progress behind: started again with the
    same run id while its party keeps running, it resumes (``progress``)."""
    proxy = Proxy(settings, resumable=True)
    with SignalStop() as stop:
        try:
            await proxy.start()
            summary = await proxy.run()
            proxy.status.update(state=DONE, exit_code=0, channels=proxy.stats())
            return summary
        except asyncio.CancelledError:
            if not stop.caught:
                raise
            error = Stopped(f"party {settings.pid}: proxy stopped by {stop.caught}", stop.caught)
            _record_failure(proxy, error)
            raise error from None
        except SyqureError as exc:
            _record_failure(proxy, exc)
            if proxy.progress and proxy.running:
                proxy.progress.close(forget=True)  # a failed run is not resumed
            raise


def _record_failure(proxy: Proxy, exc: Exception) -> None:
    if proxy.status is not None:
        try:
            proxy.status.update(state=FAILED, reason=str(exc), channels=proxy.stats())
        except OSError:
            pass
