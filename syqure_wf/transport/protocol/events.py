"""The session's vocabulary (``session.py``): observations (what the
interpreter saw) and commands (what it does), small immutable values. Pure.

Named tuples, not frozen dataclasses: several are made for every message
(the hot path), and a tuple is made in half the time. Each compares equal
only to a value of its own kind (``Look(1, 0) != Wait(1, 0)``)."""
from __future__ import annotations

from typing import NamedTuple, TypeVar

from .judge import Decision

from ...errors import SyqureError

T = TypeVar("T")


def _same(a: tuple, b: object) -> bool:
    return type(a) is type(b) and tuple.__eq__(a, b)


def _other(a: tuple, b: object) -> bool:
    return not _same(a, b)


def _hash(a: tuple) -> int:
    return hash((type(a).__name__, tuple(a)))


def value(cls: T) -> T:
    """A named tuple that equals only its own kind."""
    setattr(cls, "__eq__", _same)  # noqa: B010 (cls is any class to mypy)
    setattr(cls, "__ne__", _other)  # noqa: B010
    setattr(cls, "__hash__", _hash)  # noqa: B010
    return cls


# -- observations: what the interpreter saw
@value
class Opened(NamedTuple):
    peer: int
    inbox_empty: bool
    keyed: bool


@value
class Resumed(NamedTuple):
    peer: int
    out_seq: int
    in_seq: int


@value
class Next(NamedTuple):
    peer: int  # the channel wants the next inbound message


@value
class Looked(NamedTuple):
    peer: int
    decision: Decision
    events: int  # wake-ups counted before the look


@value
class Listed(NamedTuple):
    peer: int
    present: dict


@value
class Woken(NamedTuple):
    peer: int
    by_event: bool


@value
class Flushed(NamedTuple):
    peer: int
    events: int


@value
class WriterRead(NamedTuple):
    peer: int
    record: dict | None
    stamp: str | None


@value
class Began(NamedTuple):
    peer: int
    length: int  # the party's next message starts: so many bytes


@value
class Framed(NamedTuple):
    peer: int  # the party's message is complete


@value
class Closed(NamedTuple):
    peer: int  # the party ended its stream (its connection's end)


@value
class Delivered(NamedTuple):
    peer: int
    length: int
    end: bool
    dropped: bool  # the party had closed its side


@value
class SyncVerdict(NamedTuple):
    problem: str | None  # what this site's sync probe found wrong, or None
    wall: float  # the wall clock, for people


@value
class Tick(NamedTuple):
    pass


@value
class PeerRecords(NamedTuple):
    records: dict  # pid -> record or None


@value
class FirstLooked(NamedTuple):
    taken: dict  # peer -> our first message is gone from its inbox


@value
class KeysPending(NamedTuple):
    records: dict  # pid -> record or None, of every peer whose key is not verified yet


@value
class KeyVerified(NamedTuple):
    peer: int


@value
class Lingering(NamedTuple):
    pass


@value
class PartyExited(NamedTuple):
    pass


@value
class Surveyed(NamedTuple):
    states: tuple  # completion.ChannelState, consumption aside


@value
class Counted(NamedTuple):
    unconsumed: dict  # peer -> our messages it has not consumed


@value
class Tidied(NamedTuple):
    empty: bool


# -- commands: what the interpreter does
@value
class Look(NamedTuple):
    peer: int
    seq: int


@value
class List(NamedTuple):
    peer: int


@value
class Wait(NamedTuple):
    peer: int
    timeout: float


@value
class Flush(NamedTuple):
    peer: int


@value
class Note(NamedTuple):
    text: str  # how this proxy now wakes up, said once


@value
class Deliver(NamedTuple):
    peer: int
    seq: int  # the inbox's run stamp checked first


@value
class ReadWriter(NamedTuple):
    peer: int
    after: float  # the peer's record and the writer stamp, after so many seconds


@value
class TrustWriter(NamedTuple):
    peer: int
    stamp: str | None


@value
class RecordReceived(NamedTuple):
    peer: int
    upto: int  # every inbound seq below was delivered (a restarted proxy carries on here)


@value
class Open(NamedTuple):
    peer: int
    seq: int
    length: int  # a message file, its header written


@value
class Commit(NamedTuple):
    peer: int
    upto: int  # the message whole, ``RecordSent(upto)`` before its marker


@value
class BeatSoon(NamedTuple):
    pass


@value
class RecordSent(NamedTuple):
    peer: int
    upto: int  # every outbound seq below is placed


@value
class WriteEnd(NamedTuple):
    peer: int
    seq: int


@value
class Consume(NamedTuple):
    peer: int
    seq: int
    kind: str


@value
class HalfClose(NamedTuple):
    peer: int


@value
class Fail(NamedTuple):
    error: SyqureError


@value
class SyncChanged(NamedTuple):
    change: str  # "down" or "up"
    record: dict  # what the status record says of the sync now
    outage: float  # seconds the last outage lasted (up)


@value
class SyncLost(NamedTuple):
    reason: str
    since: float | None  # the wall clock when it went down
    bound: float  # seconds it may be down (timeouts.sync)


@value
class Beat(NamedTuple):
    gaps: dict


@value
class ReadPeers(NamedTuple):
    pass


@value
class TrustReader(NamedTuple):
    peer: int
    incarnation: str | None


@value
class CheckNative(NamedTuple):
    peer: int


@value
class LookFirst(NamedTuple):
    peers: tuple


@value
class Rest(NamedTuple):
    seconds: float  # until the next beat, or one asked for


@value
class Idle(NamedTuple):
    seconds: float  # or until something changes (a connection, a peer's consumption)


@value
class Sleep(NamedTuple):
    seconds: float  # whatever changes meanwhile


@value
class PollKey(NamedTuple):
    peer: int
    patience: float


@value
class Unhold(NamedTuple):
    peer: int


@value
class Survey(NamedTuple):
    pass


@value
class Count(NamedTuple):
    pass


@value
class Tidy(NamedTuple):
    after: float  # seconds; then remove what peers consumed, and say whether the outboxes are empty


@value
class WatchConsumption(NamedTuple):
    pass


@value
class Done(NamedTuple):
    pass
