"""The session's vocabulary (``session.py``): observations (what the
interpreter saw) and commands (what it does), small frozen values. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import SyqureError


# -- observations: what the interpreter saw
@dataclass(frozen=True, slots=True)
class Opened:
    peer: int
    inbox_empty: bool
    keyed: bool

@dataclass(frozen=True, slots=True)
class Resumed:
    peer: int
    out_seq: int
    in_seq: int

@dataclass(frozen=True, slots=True)
class Next:
    peer: int  # the channel wants the next inbound message

@dataclass(frozen=True, slots=True)
class Looked:
    peer: int
    decision: object  # judge.Decision
    events: int  # wake-ups counted before the look

@dataclass(frozen=True, slots=True)
class Listed:
    peer: int
    present: dict

@dataclass(frozen=True, slots=True)
class Woken:
    peer: int
    by_event: bool

@dataclass(frozen=True, slots=True)
class Flushed:
    peer: int
    events: int

@dataclass(frozen=True, slots=True)
class WriterRead:
    peer: int
    record: dict | None
    stamp: str | None

@dataclass(frozen=True, slots=True)
class Began:
    peer: int
    length: int  # the party's next message starts: so many bytes


@dataclass(frozen=True, slots=True)
class Framed:
    peer: int  # the party's message is complete


@dataclass(frozen=True, slots=True)
class Closed:
    peer: int  # the party ended its stream (its connection's end)


@dataclass(frozen=True, slots=True)
class Delivered:
    peer: int
    length: int
    end: bool
    dropped: bool  # the party had closed its side

@dataclass(frozen=True, slots=True)
class Tick:
    pass

@dataclass(frozen=True, slots=True)
class PeerRecords:
    records: dict  # pid -> record or None

@dataclass(frozen=True, slots=True)
class FirstLooked:
    taken: dict  # peer -> our first message is gone from its inbox

@dataclass(frozen=True, slots=True)
class KeysPending:
    records: dict  # pid -> record or None, of every peer whose key is not verified yet

@dataclass(frozen=True, slots=True)
class KeyVerified:
    peer: int

@dataclass(frozen=True, slots=True)
class Lingering:
    pass

@dataclass(frozen=True, slots=True)
class PartyExited:
    pass

@dataclass(frozen=True, slots=True)
class Surveyed:
    states: tuple  # completion.ChannelState, consumption aside

@dataclass(frozen=True, slots=True)
class Counted:
    unconsumed: dict  # peer -> our messages it has not consumed

@dataclass(frozen=True, slots=True)
class Tidied:
    empty: bool


# -- commands: what the interpreter does
@dataclass(frozen=True, slots=True)
class Look:
    peer: int
    seq: int

@dataclass(frozen=True, slots=True)
class List:
    peer: int

@dataclass(frozen=True, slots=True)
class Wait:
    peer: int
    timeout: float

@dataclass(frozen=True, slots=True)
class Flush:
    peer: int

@dataclass(frozen=True, slots=True)
class Note:
    text: str  # how this proxy now wakes up, said once

@dataclass(frozen=True, slots=True)
class Deliver:
    peer: int
    seq: int  # the inbox's run stamp checked first

@dataclass(frozen=True, slots=True)
class ReadWriter:
    peer: int
    after: float  # the peer's record and the writer stamp, after so many seconds

@dataclass(frozen=True, slots=True)
class TrustWriter:
    peer: int
    stamp: str | None

@dataclass(frozen=True, slots=True)
class RecordReceived:
    peer: int
    upto: int  # every inbound seq below was delivered (a restarted proxy carries on here)


@dataclass(frozen=True, slots=True)
class Open:
    peer: int
    seq: int
    length: int  # a message file, its header written


@dataclass(frozen=True, slots=True)
class Commit:
    peer: int
    upto: int  # the message whole, ``RecordSent(upto)`` before its marker


@dataclass(frozen=True, slots=True)
class BeatSoon:
    pass


@dataclass(frozen=True, slots=True)
class RecordSent:
    peer: int
    upto: int  # every outbound seq below is placed


@dataclass(frozen=True, slots=True)
class WriteEnd:
    peer: int
    seq: int

@dataclass(frozen=True, slots=True)
class Consume:
    peer: int
    seq: int
    kind: str

@dataclass(frozen=True, slots=True)
class HalfClose:
    peer: int

@dataclass(frozen=True, slots=True)
class Fail:
    error: SyqureError

@dataclass(frozen=True, slots=True)
class Beat:
    gaps: dict

@dataclass(frozen=True, slots=True)
class ReadPeers:
    pass

@dataclass(frozen=True, slots=True)
class TrustReader:
    peer: int
    incarnation: str | None

@dataclass(frozen=True, slots=True)
class CheckNative:
    peer: int

@dataclass(frozen=True, slots=True)
class LookFirst:
    peers: tuple

@dataclass(frozen=True, slots=True)
class Rest:
    seconds: float  # until the next beat, or one asked for


@dataclass(frozen=True, slots=True)
class Idle:
    seconds: float  # or until something changes (a connection, a peer's consumption)

@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float  # whatever changes meanwhile

@dataclass(frozen=True, slots=True)
class PollKey:
    peer: int
    patience: float

@dataclass(frozen=True, slots=True)
class Unhold:
    peer: int

@dataclass(frozen=True, slots=True)
class Survey:
    pass

@dataclass(frozen=True, slots=True)
class Count:
    pass

@dataclass(frozen=True, slots=True)
class Tidy:
    after: float  # seconds; then remove what peers consumed, and say whether the outboxes are empty

@dataclass(frozen=True, slots=True)
class WatchConsumption:
    pass

@dataclass(frozen=True, slots=True)
class Done:
    pass
