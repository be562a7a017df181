"""The per-party proxy: its party's TCP channels carried through message files.

One asyncio loop serves every channel of the party (``channel.py``). Per
connection (``link.py``), two tasks: ``upstream`` (socket -> framer ->
message files, then an end marker) and ``downstream`` (message files in seq
order -> socket, then a half-close). A channel carries successive
connections (MPyC reconnects), each ended by an end marker in both
directions. Where the party listens the proxy dials it, at once (Sequre's
listener speaks first) or when the first message for the connection arrives
(MPyC); where the party connects the proxy listens. What happens when is
decided by one ``PartySession`` (``protocol/session.py``); this module
interprets its commands for heartbeats and peers' records, the handshake,
and the end of the run, and starts this site's sync probe.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
import os
import secrets
import time
from pathlib import Path

from ..errors import ConfigError, SyqureError
from .aio import cancel_all
from .channel import Channel, Hub
from .localhop import loopback_problem
from .progress import Progress
from .protocol import names
from .protocol.completion import ChannelState
from .protocol.events import (
    Beat, CheckNative, Count, Counted, Done, Fail, FirstLooked, Idle, KeysPending, KeyVerified, Lingering,
    LookFirst, PartyExited, PeerRecords, PollKey, ReadPeers, Rest, Sleep, Survey, Surveyed, SyncChanged, SyncLost,
    SyncVerdict, Tick, Tidied, Tidy, TrustReader, Unhold, WatchConsumption,
)
from .protocol.framing import make_framer
from .protocol.liveness import RUNNING
from .protocol.ports import plan_channels
from .protocol.session import PartySession
from .segments import VERSION as SEAL_FORMAT
from .settings import ProxySettings, make_folder
from .status import StatusRecord, read_status
from .sync_health import SYNC_PROBE, ClientProbe, describe
from .sync_relay import RelayedProbe
from .waiter import Waiter
from .watch import REMOVALS, Wakeups, fs_type, make_watcher

log = logging.getLogger(__name__)

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
            emails=folder.emails if folder.layout == "syftbox" else None, settles=folder.layout == "syftbox",
            reader_removes=folder.reader_removes)
        self.peers = {p: st.watch for p, st in self.session.peers.items()}
        self._changed = Waiter()
        self._beat = Waiter()
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
        for peer in self.folder.peers():  # (asked for once: the session's ``consumption_watched``)
            self.watcher.subscribe(self.folder.outbox(peer), self.changed, REMOVALS)

    # -- what the party runner asks of its proxy
    @property
    def synced(self) -> bool:
        """Its folder is fed by a sync: peers' news may lag by a sync's pace."""
        return self.folder.synced

    def peer_failure(self, pid: int, record: dict | None) -> str | None:
        """Why peer ``pid`` failed, judged from its ``record`` as this proxy
        judges it (a record an earlier run left does not count), or None."""
        return self.session.peer_failure(pid, record, time.monotonic())

    def discard_unconsumed(self) -> None:
        """A failed run: what this party wrote that nobody will read goes."""
        self.folder.discard_unconsumed()

    def stats(self) -> dict:
        return {ch.name: ch.stats() for ch in self.channels}

    async def start(self) -> None:
        """Prepare folders and listeners: every start-up error surfaces here."""
        s = self.settings
        if self.resumable and s.run_id:  # counters survive a restart only within a named run
            self.progress = Progress(self.folder.progress_path(), s.run_id, s.pid, s.parties)
        self.folder.prepare(resume=bool(self.progress and self.progress.resumed))
        if s.sealing == "site-keys":
            from ..keys.peerkeys import PeerKeys

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
            for task in done:  # the end's own failure too (a drain that fails): never a finished run
                exc = task.exception()
                if exc is not None or task is not finish:
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

    # -- the interpreter of the session's commands (protocol/session.py)
    async def _obey(self, seen) -> bool:
        """Tell the session what was seen, do what it says, and tell it what
        that showed, until it asks nothing more. True once it says done."""
        queue = deque([seen])
        while queue:
            for cmd in self.session.handle(queue.popleft(), time.monotonic()):
                kind = type(cmd)
                if kind is Done:
                    return True
                if kind is Fail:
                    raise cmd.error
                shown = await self._do(kind, cmd)
                if shown is not None:
                    queue.append(shown)
        return False

    async def _do(self, kind, cmd):
        folder = self.folder
        if kind is Beat:
            self.status.beat(channels=self.stats(), peer_gaps=cmd.gaps)
        elif kind is ReadPeers:
            return PeerRecords({pid: read_status(folder.status_dir_of(pid), pid) for pid in self.peers})
        elif kind is TrustReader:
            folder.trust_reader(cmd.peer, cmd.incarnation)
        elif kind is CheckNative:
            problem = folder.native_peer(cmd.peer, self.started_wall)
            if problem:
                raise SyqureError(problem)
        elif kind is LookFirst:  # a peer takes our first message once it saw us beat
            return FirstLooked({pid: 0 not in folder.listing(folder.outbox(pid)) for pid in cmd.peers})
        elif kind is Rest:
            await self._beat.wait(cmd.seconds)
        elif kind is PollKey:
            if self.keys.poll(cmd.peer, self.peers[cmd.peer], self.clock(), cmd.patience):
                return KeyVerified(cmd.peer)
        elif kind is Unhold:
            log.info("party %d: site key %s verified", cmd.peer, self.keys.fingerprints[cmd.peer])
            for ch in self.channels:
                if ch.peer == cmd.peer:
                    ch.keyed_now()
        elif kind is Survey:
            self._changed.clear()
            return Surveyed(tuple(ChannelState(ch.name, ch.peer, ch.active, ch.inbound_pending(), ch.connections)
                                  for ch in self.channels))
        elif kind is Count:
            for ch in self.channels:
                folder.reap(ch.peer)
            return Counted({ch.peer: len(folder.unconsumed(ch.peer, ch.outbox.next_seq)) for ch in self.channels})
        elif kind is WatchConsumption:
            self._watch_consumption()
        elif kind is Idle:
            await self._changed.wait(cmd.seconds)
        elif kind is Sleep:
            await asyncio.sleep(cmd.seconds)
        elif kind is SyncChanged:
            if cmd.change == "down":
                log.warning("%s", describe(cmd.record))
            else:
                log.warning("sync back after %.0f s", cmd.outage)
            self.status.update(sync=cmd.record)
        elif kind is SyncLost:
            since = time.strftime("%H:%M:%S", time.localtime(cmd.since))
            raise SyqureError(f"{cmd.reason} since {since}: this site's sync did not come back "
                              f"within {cmd.bound:g} s (timeouts.sync)")
        elif kind is Tidy:
            if cmd.after:
                await asyncio.sleep(cmd.after)
            for ch in self.channels:
                folder.reap(ch.peer)
            return Tidied(not any(folder.unconsumed(ch.peer, ch.outbox.next_seq) or
                                  folder.listing(folder.outbox(ch.peer)) for ch in self.channels))
        return None

    async def _monitor(self) -> None:
        """Heartbeats, and the peers' records read and judged at each."""
        while True:
            self._beat.clear()
            await self._obey(Tick())

    async def _handshake(self) -> None:
        """Each peer's channel keys, from its site's verified key (PeerKeys);
        until then the channel holds its party's bytes and the peer's messages."""
        keys, folder = self.keys, self.folder
        while keys.pending:
            await self._obey(KeysPending({pid: read_status(folder.status_dir_of(pid), pid)
                                          for pid in sorted(keys.pending)}))
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
        while probe:  # its client and its server must answer (PROTOCOL.md, This site's own sync)
            problem = await asyncio.to_thread(probe)
            await self._obey(SyncVerdict(problem, time.time()))
            await asyncio.sleep(SYNC_PROBE)
        await asyncio.get_running_loop().create_future()  # no folder: no evidence, for ever

    async def _finished(self, party_exit: asyncio.Future | None) -> None:
        """Standalone: done once every channel carried a connection and all
        stayed quiet. The party runner: once the party exited and everything
        was delivered and consumed."""
        if party_exit is not None:
            await party_exit
        await self._obey(Lingering() if party_exit is None else PartyExited())


def process_started() -> float:
    """When this process started, on the wall clock (Linux; elsewhere: now)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
