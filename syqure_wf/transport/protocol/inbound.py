"""Inbound order (PROTOCOL.md, Reading): messages of one direction are
delivered strictly by seq from 0; a hole or a slot that stays incomplete is
a stall, fatal after its bound; nothing is delivered before its writer is
proven to be the peer's running proxy. Pure: the channel's driver looks at
the disk, tells ``Arrival`` what it saw and the time, and does what it says.
"""
from __future__ import annotations

from dataclasses import dataclass

from .judge import WAIT_ABSENT, Decision, Verdict
from .names import END, MSG, READY, file_name

STALLED_LOOK = 0.2  # seconds between looks while a slot stalls
# whole reads of one slot that did not match its digest before the run fails: a sync may
# show a file mid-rewrite once or twice; a peer's marker that never matches must not
# make this reader read and hash its message on every look until the stall bound
DIGEST_TRIES = 5


class Inbox:
    """Delivery order of one incoming direction: strictly by seq, from 0."""

    def __init__(self, next_seq: int = 0):
        self.next_seq = next_seq
        self.delivered = 0
        self.bytes = 0

    def advance(self, length: int = 0, *, message: bool = True) -> None:
        self.next_seq += 1
        if message:
            self.delivered += 1
            self.bytes += length

    def gap(self, present: dict[int, set[str]]) -> int | None:
        """The lowest seq beyond the expected one that has a marker while the
        expected one has none: a hole that an in-order writer never makes."""
        if present.get(self.next_seq, set()) & {READY, END}:
            return None
        later = [s for s, kinds in present.items() if s > self.next_seq and kinds & {READY, END}]
        return min(later) if later else None

    def delivered_before(self, present: dict[int, set[str]]) -> list[tuple[int, str]]:
        """What a killed reader delivered but had not removed (resume): (seq, kind)."""
        return [(seq, END if END in kinds else MSG) for seq, kinds in sorted(present.items())
                if seq < self.next_seq]


@dataclass(frozen=True)
class Take:
    """Deliver the slot looked at (its writer is proven)."""
    decision: Decision


@dataclass(frozen=True)
class Prove:
    """The slot is whole, its writer not yet proven: prove it, then look again."""


@dataclass(frozen=True)
class List:
    """Give ``listed`` the inbox's listing (a hole is looked for at most once per ``look_every``)."""


@dataclass(frozen=True)
class Wait:
    """Wait for an event or ``timeout`` seconds, then look again."""
    timeout: float


@dataclass(frozen=True)
class Stalled:
    """Fatal: a hole or an incomplete slot outlasted its bound."""
    reason: str
    seconds: float


@dataclass(frozen=True)
class Corrupt:
    reason: str


Step = Take | Prove | List | Wait | Stalled | Corrupt  # what Arrival asks for next


class Arrival:
    """The wait for the next inbound slot of one direction.

    ``looked`` after each look at the slot, ``listed`` with the listing it
    asked for, ``waited`` with whether the wait ended by an event (no event:
    worth a listing, a later slot may be there). ``interval``: the seconds
    between looks no event asked for (it changes when a proxy starts
    polling); ``look_every``: between listings; ``bound``: how long a stall
    may last (the peer's patience)."""

    def __init__(self, seq: int, inbox: Inbox, *, writer_known: bool, look_every: float):
        self.seq, self.inbox = seq, inbox
        self.writer_known = writer_known
        self.look_every = look_every
        self.stalled_since: float | None = None
        self.reason = ""
        self.woken = True
        self.listed_at = -look_every
        self.mismatches = 0

    def looked(self, decision: Decision, now: float, bound: float, interval: float) -> Step:
        verdict = decision.verdict
        if verdict is Verdict.DELIVER or verdict is Verdict.END:
            return Take(decision) if self.writer_known else Prove()
        if verdict is Verdict.CORRUPT:
            return Corrupt(decision.reason)
        if decision.mismatch:
            self.mismatches += 1
            if self.mismatches >= DIGEST_TRIES:
                return Corrupt(f"{decision.reason}: read whole {self.mismatches} times")
        if decision is WAIT_ABSENT:
            # a listing costs a poll more than its look: one per look_every at most
            if (not self.woken or self.stalled_since is not None) and now - self.listed_at >= self.look_every:
                self.listed_at = now
                return List()
        else:
            self.reason = decision.reason
            self._stall(now)
        return self._wait(now, bound, interval)

    def listed(self, present: dict[int, set[str]], now: float, bound: float, interval: float) -> Step:
        hole = self.inbox.gap(present)
        if hole is None:
            self.stalled_since = None
        else:
            self.reason = (f"{file_name(self.seq, MSG)} is missing while "
                           f"message {hole} is there (a hole in the sequence)")
            self._stall(now)
        return self._wait(now, bound, interval)

    def _stall(self, now: float) -> None:
        if self.stalled_since is None:  # (a time may be 0: not ``or``)
            self.stalled_since = now

    def waited(self, woken: bool) -> None:
        self.woken = woken

    def proven(self) -> None:
        self.writer_known = True

    def _wait(self, now: float, bound: float, interval: float) -> Wait | Stalled:
        if self.stalled_since is not None and now - self.stalled_since > bound:
            return Stalled(self.reason, now - self.stalled_since)
        return Wait(interval if self.stalled_since is None else min(interval, STALLED_LOOK))


def writer_known_at_start(start_timeout: float, synced: bool, inbox_empty: bool) -> bool:
    """The peer's running proxy is known to write our inbox from the start: on
    a folder that is not synced, anything that appears after we saw the inbox
    empty was written by a running process (dead runs write nothing). With
    no start bound (seed sbproxy peers, no status records) there is no
    evidence to wait for: checked at start instead (``refuse_early_inbox``)."""
    return not start_timeout or (not synced and inbox_empty)


class WriterProof:
    """Proof that the writer of an inbox is the peer's running proxy: the
    ``writer.id`` stamp names an incarnation whose heartbeat changes on our
    clock (``PeerWatch.writes_as``). A dead run's writer never beats again:
    after ``bound`` its messages are refused, never delivered."""

    def __init__(self, began: float):
        self.began = began

    def observe(self, proven: bool, now: float, bound: float) -> str:
        """'proven', 'wait' or 'dead'."""
        if proven:
            return "proven"
        return "dead" if now - self.began > bound else "wait"
