"""What a proxy does: one party's side of a run, as one machine. Pure
(observations in, commands out, h11's shape; no IO, times come in as
arguments). Its interpreter (``proxy.py`` and ``channel.py``, on asyncio)
looks at the disk and the sockets, tells ``PartySession.handle`` what it
saw, and does what the commands say; bytes keep their path in the drivers.

The story of one party's proxy:

1. **Each peer opens** (``Opened``): whether the peer's writer is known
   from the start (nothing in an unsynced inbox yet), whether its keys are.
2. **A message goes out** (``Began``, ``Framed``, ``Closed``: the party's
   stream, cut by its framer): ``Open`` its file at the next seq (each seq
   once, in order, never reused: also across a restart), ``Commit`` it,
   recorded where its layout's publication says; the stream's end is an end
   marker (``WriteEnd``), in that order too. A first message wants a beat soon
   (``BeatSoon``): the peer takes it only once it saw us beat.
3. **A message comes in** (``Next``): ``Look`` at the next slot of the
   peer's inbox. The judge's ``Looked`` decision is whole and its writer
   proven: ``Deliver`` it. Whole, writer unproven: ``ReadWriter`` until the
   peer's record shows its running proxy wrote it (``TrustWriter``), or a
   dead run's writer fails the run. Absent: ``Wait`` for an event or a
   look's pace; ``List`` the inbox at most once per ``look_every`` for a
   hole; an incomplete slot or a hole that outlasts its bound fails the run.
   A message that a look finds after one that found none decides whether
   events announce arrivals (``Flush`` queued events first): ``Note`` when
   the proxy falls back to polling.
4. **It was delivered** (``Delivered``): ``RecordReceived`` before ``Consume``
   (a restarted proxy never delivers it again); an end marker ``HalfClose``s.
5. **Every heartbeat** (``Tick``): ``Beat``, ``ReadPeers``; each peer's
   ``PeerRecords`` are checked: failed, vanished or never started fails the
   run; a live peer's reader is trusted (``TrustReader``) and must seal as
   this party does; a peer never seen may speak another file protocol
   (``CheckNative``). ``Rest`` until the next beat: fast while a peer waits
   for our beat (our first message unread: ``LookFirst``; or a key).
6. **The handshake** (``KeysPending``): ``PollKey`` per pending peer;
   ``KeyVerified`` releases the channel's held bytes (``Unhold``).
7. **The end** (``Lingering``: a standalone proxy; ``PartyExited``: the
   party runner): ``Survey`` the channels, ``Count`` what peers have not
   consumed, until quiet (linger) or drained; then, over a sync,
   ``Tidy`` until the outboxes stay empty (settle), and ``Done``.

Every bound on what comes from peers runs on the peer clock, which stands
still while this site's sync is down (``sync``, a ``SyncWatch``): each
``SyncVerdict`` of its probe may say ``SyncChanged``, and a sync down for
longer than its bound is ``SyncLost``.

Interpreters: ``proxy.py`` (beats, records, keys, the end), ``downstream.py``
(inbound messages) and ``link.py`` (outbound), on one asyncio loop; an MPyC
party in process (``inproc.py``) feeds its outbound messages from its own
thread: ``Began``, ``Framed`` and ``Closed`` touch only that peer's outbox.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ...errors import CorruptMessage, PeerFailed, SyqureError
from . import completion
from .completion import ChannelState, Drain, Linger, PeerEnd, Settle
from .events import (
    Beat, BeatSoon, Began, CheckNative, Closed, Commit, Consume, Count, Counted, Deliver, Delivered, Done, Fail,
    FirstLooked, Flush, Flushed, Framed, HalfClose, Idle, KeyVerified, KeysPending, Lingering, List, Listed, Look,
    LookFirst, Looked, Next, Note, Open, Opened, PartyExited, PeerRecords, PollKey, ReadPeers, ReadWriter,
    RecordReceived, RecordSent, Rest, Resumed, Sleep, Survey, Surveyed, SyncChanged, SyncLost, SyncVerdict, Tick,
    Tidied, Tidy, TrustReader, TrustWriter, Unhold, Wait, WatchConsumption, Woken, WriteEnd, WriterRead,
)
from .inbound import Arrival, Corrupt, Inbox, List as ListStep, Prove, Stalled, Take, WriterProof, writer_known_at_start
from .judge import WAIT_ABSENT
from .liveness import DONE, FAILED, FAST_BEAT, PeerWatch, SyncWatch, beat_interval, writer_patience
from .names import END, MSG
from .outbound import Outbox

BEAT_SOON = BeatSoon()
WRITER_POLL = 0.05  # while a first message waits for proof that its writer runs
RESCAN = 1.0  # seconds between looks for consumption that no event asked for


@dataclass
class PeerState:
    """One peer, as this party knows it."""
    watch: PeerWatch
    name: str  # the channel's name
    where: str  # its inbox, for people
    inbox: Inbox = field(default_factory=Inbox)
    outbox: Outbox = field(default_factory=Outbox)
    writer_known: bool = False
    keyed: bool = True
    first_taken: bool = False
    dropped: int = 0
    length: int = 0  # of the party's message being written
    arrival: Arrival | None = None
    proof: WriterProof | None = None
    found: object = None  # a look's step held while queued events are flushed
    empty_at: int | None = None  # wake-ups counted when a look last found nothing
    dead: float | None = None  # the writer is dead: its bound, said with the inbox's listing


class PartySession:
    """One party's proxy: ``handle(observation, now)`` -> commands. ``now``:
    a monotonic clock; bounds on peers run on ``clock(now)``."""

    def __init__(self, settings: Any, started: float, *, synced: bool, reused: bool, wheres: dict,
                 emails: dict | None = None, seal_format: int = 1, settles: bool = False,
                 progress: bool = False, wakeups: Any = None, look_every: float = 0.25, reader_removes: bool = True):
        s = self.settings = settings  # ProxySettings: pid, run_id, the bounds, sealing
        self.started, self.seal_format, self.settles, self.progress = started, seal_format, settles, progress
        self.wakeups = wakeups  # watch.Wakeups: whether events announce arrivals, the look's pace
        self.look_every, self.emails, self.reader_removes = look_every, emails, reader_removes  # (the layout's)
        self.sync = SyncWatch(started)
        self.peers: dict[int, PeerState] = {
            p: PeerState(PeerWatch(p, s.run_id, synced, started, reused=reused),
                         f"{min(s.pid, p)}-{max(s.pid, p)}", where) for p, where in wheres.items()}
        self.keys_pending: frozenset = frozenset()
        self.mode: Linger | Drain | None = None
        self.settle: Settle | None = None
        self.states: tuple = ()
        self.consumption_watched = False  # WatchConsumption asked for (once)
        self._handlers: dict[type, Callable[[Any, float], list]] = {cls: getattr(self, "_" + cls.__name__) for cls in (
            Opened, Resumed, Began, Framed, Closed, Next, Looked, Listed, Woken, Flushed, WriterRead, Delivered,
            SyncVerdict, Tick, PeerRecords, FirstLooked, KeysPending, KeyVerified, Lingering, PartyExited,
            Surveyed, Counted, Tidied)}

    def handle(self, observation: Any, now: float) -> list:
        return self._handlers[type(observation)](observation, now)

    def clock(self, now: float) -> float:
        """The peer clock: ``now`` less every moment this site's sync was down."""
        return self.sync.clock(now)

    def stall_bound(self, p: PeerState) -> float:
        return p.watch.patience(self.settings.stall_timeout, self.settings.start_timeout)

    # -- opening
    def _Opened(self, o: Opened, now: float) -> list:
        p = self.peers[o.peer]
        p.writer_known = writer_known_at_start(self.settings.start_timeout, p.watch.synced, o.inbox_empty)
        p.keyed = o.keyed  # a key pending from the start: fast beats before the handshake's first poll
        self.keys_pending |= set() if o.keyed else {o.peer}
        return []

    def _Resumed(self, o: Resumed, now: float) -> list:
        p = self.peers[o.peer]
        p.outbox.next_seq, p.inbox.next_seq = o.out_seq, o.in_seq
        return []

    # -- outbound: the party's messages become files, each seq once, in order
    def _Began(self, o: Began, now: float) -> list:
        p = self.peers[o.peer]
        first = not p.outbox.next_seq
        p.length = o.length
        opened = Open(o.peer, p.outbox.allocate(), o.length)
        return [BEAT_SOON, opened] if first else [opened]  # the peer waits for a beat before reading it

    def _Framed(self, o: Framed, now: float) -> list:
        p = self.peers[o.peer]
        p.outbox.count(p.length)
        return [Commit(o.peer, p.outbox.next_seq)]

    def _Closed(self, o: Closed, now: float) -> list:
        p = self.peers[o.peer]
        seq = p.outbox.allocate()
        # in outbound.publication's order: recorded first where the reader removes (killed between: a hole
        # the reader reports after its stall bound, never a reused seq), marked first where it does not
        return [RecordSent(o.peer, p.outbox.next_seq), WriteEnd(o.peer, seq)][::1 if self.reader_removes else -1]

    # -- inbound: one message at a time, in seq order, from a proven writer
    def _Next(self, o: Next, now: float) -> list:
        p = self.peers[o.peer]
        p.arrival = Arrival(p.inbox.next_seq, p.inbox, writer_known=p.writer_known, look_every=self.look_every)
        return [Look(o.peer, p.inbox.next_seq)]

    def _Looked(self, o: Looked, now: float) -> list:
        p, peer = self.peers[o.peer], o.peer
        arrival = p.arrival
        assert arrival is not None
        step = arrival.looked(o.decision, self.clock(now), self.stall_bound(p), self.wakeups.interval)
        kind = type(step)
        if kind is Take or kind is Prove:
            if p.empty_at is not None:
                if o.events == p.empty_at:  # an event still queued is not a missing one
                    p.found = step
                    return [Flush(peer)]
                return self._announced(p, peer, True) + self._found(p, peer, step, now)
            return self._found(p, peer, step, now)
        if type(step) is Corrupt:
            return [Fail(CorruptMessage(f"channel {p.name}: {p.where}: {step.reason}"))]
        if o.decision is WAIT_ABSENT and p.empty_at is None:
            p.empty_at = o.events
        if kind is ListStep:
            return [List(peer)]
        return self._waited(p, peer, step)

    def _Flushed(self, o: Flushed, now: float) -> list:
        p = self.peers[o.peer]
        step, p.found = p.found, None
        return self._announced(p, o.peer, o.events != p.empty_at) + self._found(p, o.peer, step, now)

    def _announced(self, p: PeerState, peer: int, by_event: bool) -> list:
        """The wake-up decision: a message a look before did not find; did an event say so?"""
        p.empty_at = None
        note = self.wakeups.arrived(by_event)
        return [Note(note)] if note else []

    def _found(self, p: PeerState, peer: int, step: object, now: float) -> list:
        if type(step) is Take:
            assert p.arrival is not None
            return [Deliver(peer, p.arrival.seq)]
        p.proof = WriterProof(self.clock(now))
        return [ReadWriter(peer, 0.0)]

    def _Listed(self, o: Listed, now: float) -> list:
        p = self.peers[o.peer]
        if p.dead is not None:
            left = sorted(o.present)
            return [Fail(SyqureError(
                f"{p.where} holds {len(left)} message(s) (from seq {left[0] if left else '?'}) whose writer "
                f"is not running (no live proxy of party {o.peer} wrote them within {p.dead:g} s): an "
                "earlier run? run 'syqure-wf clean', or give every proxy the same --run-id"))]
        assert p.arrival is not None
        step = p.arrival.listed(o.present, self.clock(now), self.stall_bound(p), self.wakeups.interval)
        return self._waited(p, o.peer, step)

    def _waited(self, p: PeerState, peer: int, step: Any) -> list:
        if type(step) is Stalled:
            return [Fail(CorruptMessage(f"channel {p.name}: {p.where}: {step.reason} for {step.seconds:.1f} s"))]
        return [Wait(peer, step.timeout)]

    def _Woken(self, o: Woken, now: float) -> list:
        p = self.peers[o.peer]
        assert p.arrival is not None
        p.arrival.waited(o.by_event)
        return [Look(o.peer, p.arrival.seq)]

    def _WriterRead(self, o: WriterRead, now: float) -> list:
        """Nothing from the peer is delivered before its running proxy is seen
        to be the writer of this inbox (``inbound.WriterProof``)."""
        s, p, clock = self.settings, self.peers[o.peer], self.clock(now)
        watch = p.watch
        watch.observe(o.record, clock)
        bound = writer_patience(watch, s.peer_timeout, s.heartbeat, s.start_timeout)
        assert p.proof is not None and p.arrival is not None
        verdict = p.proof.observe(watch.writes_as(o.stamp), clock, bound)
        if verdict == "proven":
            p.writer_known = True
            p.arrival.proven()
            return [TrustWriter(o.peer, o.stamp), Look(o.peer, p.arrival.seq)]
        try:
            watch.check(clock, self.started, s.start_timeout, s.peer_timeout)
        except PeerFailed as exc:
            return [Fail(exc)]
        if verdict == "dead":
            p.dead = bound
            return [List(o.peer)]
        return [ReadWriter(o.peer, WRITER_POLL)]

    def _Delivered(self, o: Delivered, now: float) -> list:
        p = self.peers[o.peer]
        seq = p.inbox.next_seq
        p.dropped += o.dropped
        p.inbox.advance(o.length, message=not o.end)
        if o.end:
            done = [Consume(o.peer, seq, END), HalfClose(o.peer)]
        else:
            done = [Consume(o.peer, seq, MSG)]
        if self.progress:  # recorded before the files go: a restarted proxy never delivers them again
            done.insert(0, RecordReceived(o.peer, seq + 1))
        return done

    # -- this site's sync: while it is down nothing from peers can arrive
    def _SyncVerdict(self, o: SyncVerdict, now: float) -> list:
        sync, bound = self.sync, self.settings.sync_timeout
        change = sync.observe(o.problem, now, o.wall)
        said: list = [SyncChanged(change, sync.record(), sync.last_outage)] if change else []
        if sync.down and bound and sync.down_for(now) > bound:
            said.append(SyncLost(sync.reason, sync.down_wall, bound))
        return said

    # -- liveness: beats, peers' records, the sealing agreement
    def _Tick(self, o: Tick, now: float) -> list:
        return [Beat({str(pid): round(p.watch.longest_gap, 1) for pid, p in self.peers.items()}), ReadPeers()]

    def _PeerRecords(self, o: PeerRecords, now: float) -> list:
        s, clock = self.settings, self.clock(now)
        out: list = []
        for pid, record in o.records.items():
            watch = self.peers[pid].watch
            watch.observe(record, clock)
            if watch.live:
                out.append(TrustReader(pid, watch.incarnation))
                problem = self.sealing_problem(pid, record)
                if problem:
                    return out + [Fail(SyqureError(problem))]
            elif watch.last_change is None:  # never seen: a site on another file protocol?
                out.append(CheckNative(pid))
            try:
                watch.check(clock, self.started, s.start_timeout, s.peer_timeout)
            except PeerFailed as exc:
                return out + [Fail(exc)]
        unsure = tuple(pid for pid, p in self.peers.items() if p.outbox.next_seq and not p.first_taken)
        return out + ([LookFirst(unsure)] if unsure else [self._rest()])

    def _FirstLooked(self, o: FirstLooked, now: float) -> list:
        for pid, taken in o.taken.items():
            self.peers[pid].first_taken = taken
        return [self._rest()]

    def _rest(self) -> Rest:
        # before a peer takes our first message it must see our heartbeat move (WriterProof); nor a key
        waits = any(p.outbox.next_seq and not p.first_taken for p in self.peers.values()) or bool(self.keys_pending)
        return Rest(beat_interval(self.settings.heartbeat, waits))

    def peer_failure(self, pid: int, record: dict | None, now: float) -> str | None:
        """Why peer ``pid`` failed, from its ``record``, or None (an earlier run's record is no failure)."""
        watch = self.peers[pid].watch
        watch.observe(record, self.clock(now))
        return f"party {pid} failed: {watch.reason or 'no reason given'}" if watch.state == FAILED else None

    def sealing_problem(self, pid: int, record: dict | None) -> str | None:
        """Every party of a run seals the same way, or none can read the others."""
        record = record or {}
        theirs, mine = record.get("sealing"), self.settings.sealing
        if record.get("incarnation") != self.peers[pid].watch.incarnation or not theirs:
            return None
        who = f"party {pid}" + (f" ({self.emails[pid]})" if self.emails else "")
        if theirs != mine:
            return (f"{who} seals its messages with {theirs}, this party with {mine}: every party "
                    "of a run must (encryption: the same setting everywhere)")
        form = record.get("seal_format")
        if mine != "off" and form != self.seal_format:
            return (f"{who} seals its messages in format {form or 1}, this party in format "
                    f"{self.seal_format} (PROTOCOL.md, A sealed message): every party of a run must "
                    "run a syqure-wf that seals alike")
        return None

    # -- the handshake: a channel holds its bytes until its peer's key is verified
    def _KeysPending(self, o: KeysPending, now: float) -> list:
        s, clock = self.settings, self.clock(now)
        self.keys_pending = frozenset(o.records)
        for pid, record in o.records.items():  # a contribution found at the first look counts once its writer runs
            self.peers[pid].watch.observe(record, clock)
        return [PollKey(pid, writer_patience(self.peers[pid].watch, s.peer_timeout, s.heartbeat, s.start_timeout))
                for pid in sorted(o.records)]

    def _KeyVerified(self, o: KeyVerified, now: float) -> list:
        self.peers[o.peer].keyed = True
        self.keys_pending = self.keys_pending - {o.peer}
        return [Unhold(o.peer)]

    # -- the end: linger (standalone) or drain (the party exited), then settle
    def _Lingering(self, o: Lingering, now: float) -> list:
        self.mode = Linger(self.settings.linger)
        return [Survey()]

    def _PartyExited(self, o: PartyExited, now: float) -> list:
        self.mode = Drain(self.settings.pid, self.clock(now))
        return [Survey()]

    def rescan(self) -> float:
        # where peers' removals raise no events, their consumption is looked for as often as their messages
        w = self.wakeups
        return max(w.interval, FAST_BEAT / 2) if w.polling else RESCAN

    def _Surveyed(self, o: Surveyed, now: float) -> list:
        self.states = o.states
        if type(self.mode) is Linger and completion.busy(o.states, True):
            self.mode.observe(None, now)
            return [Idle(self.rescan()), Survey()]
        return [Count()]  # consumption is looked at only when nothing else is due (linger)

    def _Counted(self, o: Counted, now: float) -> list:
        states = [ChannelState(st.name, st.peer, st.active, st.pending, st.connections, o.unconsumed[st.peer])
                  for st in self.states]
        watch = [] if self.consumption_watched or not any(o.unconsumed.values()) else [WatchConsumption()]
        self.consumption_watched |= bool(watch)  # counted again at once: a removal before the watch raised no event
        again = [*watch, Survey()] if watch else [Idle(self.rescan()), Survey()]
        if type(self.mode) is Linger:
            quiet = None if any(st.unconsumed for st in states) else completion.snapshot(states)
            wait = self.mode.observe(quiet, now)
            if wait is None:
                return [Done()]
            return watch + [Sleep(wait), Survey()] if wait else again
        if not completion.busy(states, False) and not any(st.unconsumed for st in states):
            if not self.settles:
                return [Done()]
            self.settle = Settle(now)
            return [Tidy(0.0)]
        s = self.settings
        peers = {pid: PeerEnd(p.watch.state in (DONE, FAILED), p.watch.patience(s.heartbeat * 3, s.start_timeout),
                              p.watch.patience(s.drain_timeout, s.start_timeout)) for pid, p in self.peers.items()}
        try:
            assert isinstance(self.mode, Drain)
            self.mode.check(states, peers, self.clock(now))
        except PeerFailed as exc:
            return [Fail(exc)]
        return again

    def _Tidied(self, o: Tidied, now: float) -> list:
        """A sync may bring back a file its writer removed: clean until the outboxes stay empty."""
        assert self.settle is not None
        return [Done()] if self.settle.observe(o.empty, now) else [Tidy(completion.SETTLE_LOOK)]
