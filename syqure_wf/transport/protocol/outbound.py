"""Outbound sequence (PROTOCOL.md, Writing): seqs of one direction are
allocated once, in order, never reused, also across a restart; what the
reader consumed is the writer's to remove (syftbox: once its live reader
recorded it). Pure.
"""
from __future__ import annotations

from .names import END, READY

# The steps of publishing one message: its content whole in the outbox, the
# writer's progress record counting it, its marker (the reader's signal).
PLACE, COUNT, MARK = "place", "count", "mark"


def publication(reader_removes: bool) -> tuple[str, str, str]:
    """The order of a message's publication: the crash-safety rule of every
    layout. The content is whole before its marker says so (PLACE before
    MARK), and the writer's progress counts the message (COUNT) before
    anything may remove its marker, so that a writer killed in between and
    restarted never writes that seq again (a reader past it would never read
    it) and never loses it:

    - where the reader removes what it consumed (``reader_removes``: shared),
      COUNT before MARK: a restart finds the message placed and counted but
      not announced, and announces it (``announce``); counted after its
      marker, it could be read and removed before the count, and the restart
      would write its seq again;
    - where only the writer removes its files, once its reader recorded them
      (syftbox), MARK before COUNT: a restart finds the marker and resumes
      past it (``resume_seq``); counted first and killed before the marker,
      the slot would stay a hole (its marker holds a digest of the parts,
      known to the killed writer only) that the reader reports as stalled.
    """
    return (PLACE, COUNT, MARK) if reader_removes else (PLACE, MARK, COUNT)


def announce(reader_removes: bool, next_seq: int, placed: bool, marked: bool) -> bool:
    """After a restart: whether the last counted message (``next_seq - 1``)
    is to be announced now (its marker made): counted, whole in the outbox and
    unannounced, where ``publication`` counts before the marker."""
    return reader_removes and next_seq > 0 and placed and not marked


class Outbox:
    """Sequence numbers of one outgoing direction."""

    def __init__(self, next_seq: int = 0):
        self.next_seq = next_seq
        self.sent = 0
        self.bytes = 0

    def allocate(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def count(self, length: int) -> None:
        self.sent += 1
        self.bytes += length

    def unconsumed(self, present: dict[int, set[str]]) -> list[int]:
        return sorted(s for s in present if s < self.next_seq)


def resume_seq(present: dict[int, set[str]], next_seq: int) -> int:
    """The next seq to write after a restart: past any marker already out
    (counted before its marker: a kill in between leaves a hole, never a reused seq)."""
    while present.get(next_seq, set()) & {READY, END}:
        next_seq += 1
    return next_seq


def unconsumed(present: dict[int, set[str]], next_seq: int, consumed_upto: int = -1) -> list[int]:
    """Seqs written and not yet consumed: below ``next_seq``, above what the
    reader recorded as consumed (layouts where the reader deletes: -1)."""
    return sorted(s for s in present if consumed_upto < s < next_seq)


def reapable(present: dict[int, set[str]], consumed_upto: int) -> list[tuple[int, str]]:
    """Files (seq, kind) the writer removes: its reader recorded them consumed."""
    return [(seq, kind) for seq, kinds in sorted(present.items()) if seq <= consumed_upto for kind in sorted(kinds)]


def consumed_upto(record: dict | None, run_id: str, reader: str | None, known: int) -> int:
    """The highest seq a reader says it consumed: its record counts only for
    this run and from its live incarnation (a dead run's record must not
    remove a new run's messages); it never goes back."""
    if record and record.get("run") == run_id and isinstance(record.get("upto"), int) \
            and record.get("reader") == reader:
        return max(known, int(record["upto"]))
    return known
