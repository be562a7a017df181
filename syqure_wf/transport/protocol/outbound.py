"""Outbound sequence (PROTOCOL.md, Writing): seqs of one direction are
allocated once, in order, never reused, also across a restart; what the
reader consumed is the writer's to remove (syftbox: once its live reader
recorded it). Pure.
"""
from __future__ import annotations

from .names import END, READY


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
