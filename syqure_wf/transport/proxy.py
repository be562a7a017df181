"""The per-party proxy: its party's TCP channels carried through message files.

One asyncio loop serves every channel of the party (``channel.py``). Per
connection (``link.py``), two tasks: ``upstream`` (socket -> framer ->
message files, then an end marker) and ``downstream`` (message files in seq
order -> socket, then a half-close). A channel carries successive
connections (MPyC reconnects), each ended by an end marker in both
directions. Where the party listens the proxy dials it, at once (Sequre's
listener speaks first) or when the first message for the connection arrives
(MPyC); where the party connects the proxy listens. This module is the glue:
heartbeats and peers' liveness, the handshake, this site's sync, and the end
of the run, each decided in ``protocol/``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path

from ..errors import ConfigError, SyqureError
from .aio import cancel_all
from .channel import Channel, Hub
from .localhop import loopback_problem
from .progress import Progress
from .protocol import completion, names
from .protocol.completion import ChannelState, Drain, Linger, PeerEnd, Settle
from .protocol.framing import make_framer
from .protocol.liveness import DONE, FAILED, FAST_BEAT, RUNNING, beat_interval, writer_patience
from .protocol.ports import plan_channels
from .protocol.session import PartySession
from .segments import VERSION as SEAL_FORMAT
from .settings import ProxySettings, make_folder
from .status import StatusRecord, read_status
from .sync_health import ClientProbe, watch_sync
from .sync_relay import RelayedProbe
from .watch import REMOVALS, Waiter, Wakeups, fs_type, make_watcher

log = logging.getLogger(__name__)

RESCAN = 1.0  # seconds between looks for consumption that no event asked for
KEY_POLL = 0.05  # seconds between looks for the peers' keys, until every peer is keyed


class Proxy:
    """All channels of one party. ``run`` returns a summary or raises SyqureError."""

    def __init__(self, settings: ProxySettings, *, status: StatusRecord | None = None,
                 resumable: bool = False, party=None, local=None):
        """``party``: gives the pid of the party's process (None until it runs);
        every connection towards the party must then come from that process.
        ``local``: the party in this process (inproc.PartySide): no socket at all."""
        self.settings = s = settings
        self.local = local  # the party's side in this process (inproc.PartySide), or None: TCP
        if s.run_id:
            names.check_id(s.run_id, "run id")
        problem = loopback_problem(s.host)
        if problem:
            raise ConfigError(f"host: {problem}")
        if party is None and s.party_pid is not None:
            party = lambda: s.party_pid  # noqa: E731
        self.party = party
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
        self.started = time.monotonic()
        folder = self.folder
        self.session = PartySession(
            s, self.started, synced=folder.synced, reused=folder.reused_folder,  # a caller's named run folder
            wheres={p: str(folder.inbox(p)) for p in folder.peers()}, seal_format=SEAL_FORMAT,
            emails=folder.emails if folder.layout == "syftbox" else None, settles=folder.layout == "syftbox")
        self.peers = {p: st.watch for p, st in self.session.peers.items()}
        self._changed = Waiter()
        self._beat = Waiter()
        self._consumption_watched = False
        # a file's time, to the second: since this process started (a peer on the fork's own
        # transport logs once as it starts, and may wait for us while we wait for its key)
        self.started_wall = min(time.time(), process_started()) - 1.0
        # Bounds on what comes from peers run on a clock that stands still while
        # this site's own sync is down: nothing from a peer can arrive then.
        self.sync = self.session.sync
        self.incarnation = secrets.token_hex(8)  # this process, as its peers see it

    def clock(self) -> float:
        return self.sync.clock(time.monotonic())

    def changed(self) -> None:
        self._changed.notify()

    def beat_soon(self) -> None:
        self._beat.notify()

    def noted(self, note: str) -> None:
        # once: from now on this proxy polls
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
            self.status = StatusRecord(self.folder.status_dir(), s.pid, s.parties, s.run_id,
                                       published=self.folder.layout == "syftbox")
        self.watcher = make_watcher(s.poll_ms)
        where = os.path.commonpath([str(self.folder.inbox(p).parent) for p in self.folder.peers()])
        self.wakeups = Wakeups(where, fs_type(where), s.poll_ms, misses=1 if self.watcher.exact else 2)
        if self.wakeups.polling:
            log.info("%s", self.wakeups.note)
        self.session.wakeups, self.session.progress = self.wakeups, self.progress is not None
        hub = Hub(s, self.folder, self.progress, self.watcher, self.session, self.beat_soon, self.changed,
                  self.noted, self.party, self.local)
        if self.party is None and self.local is None:
            log.info("party %d: connections to it are not proven to come from its process (no --party-pid): "
                        "any local process may take a channel", s.pid)
        pending = self.keys.pending if self.keys else ()
        self.channels = [Channel(hub, plan, plan.peer not in pending) for plan in self.plans]
        for ch in self.channels:
            await ch.listen()
        await self.watcher.start()
        self.running = True
        self.status.update(state=RUNNING, incarnation=self.incarnation, channels=self.stats(), framing=s.framing,
                           convention=s.convention, layout=self.folder.layout, wakeup=self.wakeups.note,
                           sealing=s.sealing, local_hop="in-process" if self.local is not None else "proven" if self.party else "unproven",
                           **({"site_key": self.keys.site.fingerprint} if self.keys else {}),
                           **({"seal_format": SEAL_FORMAT} if s.sealing != "off" else {}))

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
            await self._beat.wait(beat_interval(s.heartbeat, waits))

    def _check_sealing(self, pid: int, record: dict | None) -> None:
        """Every party of a run seals the same way, or none can read the others."""
        theirs, mine = (record or {}).get("sealing"), self.settings.sealing
        if theirs and record.get("incarnation") == self.peers[pid].incarnation and theirs != mine:
            who = f"party {pid}" + (f" ({self.folder.emails[pid]})" if self.folder.layout == "syftbox" else "")
            raise SyqureError(f"{who} seals its messages with {theirs}, this party with {mine}: every party "
                              "of a run must (encryption: the same setting everywhere)")
        form = (record or {}).get("seal_format")
        if mine != "off" and theirs == mine and form != SEAL_FORMAT \
                and record.get("incarnation") == self.peers[pid].incarnation:
            who = f"party {pid}" + (f" ({self.folder.emails[pid]})" if self.folder.layout == "syftbox" else "")
            raise SyqureError(f"{who} seals its messages in format {form or 1}, this party in format "
                              f"{SEAL_FORMAT} (PROTOCOL.md, A sealed message): every party of a run must "
                              "run a syqure-wf that seals alike")

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
                if keys.poll(pid, watch, now, writer_patience(watch, s.peer_timeout, s.heartbeat, s.start_timeout)):
                    log.info("party %d: site key %s verified", pid, keys.fingerprints[pid])
                    for ch in self.channels:
                        if ch.peer == pid:
                            ch.keyed_now()
            await asyncio.sleep(KEY_POLL)
        self.status.update(peer_keys={str(p): f for p, f in sorted(keys.fingerprints.items())})
        await asyncio.get_running_loop().create_future()  # done: it ends with the run

    async def _watch_sync(self) -> None:
        if self.settings.sync_relay:  # in a network namespace: the probe runs outside (sync_relay.py)
            probe = RelayedProbe(Path(self.settings.sync_relay))
        elif self.settings.syftbox:
            probe = ClientProbe(Path(self.settings.syftbox["folder"]).expanduser())
        else:
            probe = None
        if probe:
            await watch_sync(probe, self.sync, self.settings.sync_timeout, self.status.update)
        await asyncio.get_running_loop().create_future()  # no folder: no evidence, for ever

    def _first_unread(self) -> bool:
        """A peer has not yet taken our first message: before it does, it must
        see our heartbeat move (``inbound.WriterProof``), so we beat fast."""
        unread = False
        for ch in self.channels:
            st = ch.state
            if st.outbox.next_seq and not st.first_taken:
                st.first_taken = 0 not in self.folder.listing(self.folder.outbox(ch.peer))
                unread = unread or not st.first_taken
        return unread

    def _states(self, need_connections: bool) -> list[ChannelState] | None:
        """Each channel's state for completion, or None while one is still busy
        (consumption is looked at only when nothing else is due)."""
        states = [ChannelState(ch.name, ch.peer, ch.active, ch.inbound_pending(), ch.connections)
                  for ch in self.channels]
        if completion.busy(states, need_connections):
            return None
        return [self._consumption(st) for st in states]

    def _consumption(self, st: ChannelState) -> ChannelState:
        self.folder.reap(st.peer)
        left = len(self.folder.unconsumed(st.peer, self._channel(st.name).outbox.next_seq))
        if left:
            self._watch_consumption()
        return ChannelState(st.name, st.peer, st.active, st.pending, st.connections, left)

    def _channel(self, name: str) -> Channel:
        return next(ch for ch in self.channels if ch.name == name)

    def _quiet(self, need_connections: bool) -> tuple | None:
        """A snapshot of a finished state, or None while anything is still due."""
        states = self._states(need_connections)
        if states is None or any(st.unconsumed for st in states):
            return None
        return completion.snapshot(states)

    async def _finished(self, party_exit: asyncio.Future | None) -> None:
        if party_exit is None:
            await self._linger()
        else:
            await party_exit
            await self._drain(Drain(self.settings.pid, self.clock()))

    async def _linger(self) -> None:
        """Standalone: done once every channel carried a connection and all stayed quiet."""
        linger = Linger(self.settings.linger)
        while True:
            self._changed.clear()
            wait = linger.observe(self._quiet(True), time.monotonic())
            if wait is None:
                return
            if wait:
                await asyncio.sleep(wait)
            else:
                await self._changed.wait(self._rescan())

    async def _drain(self, drain: Drain) -> None:
        """The party exited: done once everything was delivered and consumed."""
        s = self.settings
        while True:
            self._changed.clear()
            states = [self._consumption(ChannelState(ch.name, ch.peer, ch.active, ch.inbound_pending(),
                                                     ch.connections)) for ch in self.channels]
            if not completion.busy(states, False) and not any(st.unconsumed for st in states):
                return await self._settle()
            peers = {pid: PeerEnd(w.state in (DONE, FAILED), w.patience(s.heartbeat * 3, s.start_timeout),
                                  w.patience(s.drain_timeout, s.start_timeout)) for pid, w in self.peers.items()}
            drain.check(states, peers, self.clock())
            await self._changed.wait(self._rescan())

    def _rescan(self) -> float:
        # where peers' removals raise no events, their consumption is looked for as often as their messages
        return max(self.wakeups.interval, FAST_BEAT / 2) if self.wakeups.polling else RESCAN

    async def _settle(self) -> None:
        """A sync may bring back a file its writer removed: clean until the outboxes stay empty."""
        if self.folder.layout != "syftbox":
            return
        settle = Settle(time.monotonic())
        while True:
            for ch in self.channels:
                self.folder.reap(ch.peer)
            empty = not any(self.folder.unconsumed(ch.peer, ch.outbox.next_seq) or
                            self.folder.listing(self.folder.outbox(ch.peer)) for ch in self.channels)
            if settle.observe(empty, time.monotonic()):
                return
            await asyncio.sleep(completion.SETTLE_LOOK)


def process_started() -> float:
    """When this process started, on the wall clock (Linux; elsewhere: now)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
