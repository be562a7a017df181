"""The message judge: whether one slot of an inbox may be delivered now,
must be waited for, or is corrupt (PROTOCOL.md, Reading). One judge for
every layout; the layout's adapter gathers what is on disk into a ``Slot``
and acts on the ``Decision``. Pure.

Two kinds of slot:

* plain (layout ``shared``): the ``.msg`` file's kind, size and header;
* self-checking (``marked``: layouts fed by a file sync, ``syftbox``): the
  marker's record (run, writer, length, files, SHA-256), then what was read
  of its files. A marked slot is judged twice: on its marker alone the judge
  says ``FETCH`` with the sizes of the files to read (so that no claimed
  length makes the reader read more than the maximum), then on the files.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from .framing import HEADER
from .names import END, MSG, READY, file_name, part_name, split_sizes


@dataclass(frozen=True)
class Slot:
    """What the reader saw of one seq. ``msg`` is the kind of the .msg entry:
    'file', 'link', 'dir', 'other' or None (absent). Marked slots carry the
    marker's (or the end marker's) ``record``, None while it is still arriving,
    and once fetched, ``parts``: the size read of each file (-1: absent; the
    reader stops at the first file that is not complete) and their ``content``."""

    seq: int
    ready: bool = False
    end: bool = False
    msg: str | None = None
    size: int = 0
    header: bytes = b""
    marked: bool = False
    record: dict | None = None
    parts: tuple | None = None
    content: bytes | bytearray = b""
    where: str = ""  # the folder, for people


class Verdict(str, Enum):
    DELIVER = "deliver"
    END = "end"
    WAIT = "wait"
    CORRUPT = "corrupt"
    FETCH = "fetch"  # a marked slot's marker is sound: read its files, then judge again


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    length: int = 0
    reason: str = ""
    sizes: tuple = ()  # FETCH: the size of each file to read
    mismatch: bool = False  # WAIT: whole, but not what its marker's digest says (Arrival counts these)


WAIT_ABSENT = Decision(Verdict.WAIT, reason="no marker yet")


@dataclass(frozen=True)
class Rules:
    """What a judge holds a slot to: the largest message, the run, and (marked
    layouts) the largest file and the incarnation known to write this inbox."""

    max_message: int
    run_id: str | None = None
    max_file: int = 0
    writer: str | None = None


def judge(slot: Slot, max_message: int = 0, rules: Rules | None = None) -> Decision:
    """The decision on one slot, by ``rules`` (plain slots: ``max_message`` is enough)."""
    if not slot.marked:  # (no Rules made at every look of a plain slot)
        return _judge_plain(slot, rules.max_message if rules else max_message)
    return _judge_marked(slot, rules or Rules(max_message))


def _judge_plain(slot: Slot, max_message: int) -> Decision:
    if slot.end:
        if slot.ready or slot.msg is not None:
            return Decision(Verdict.CORRUPT, reason=f"{file_name(slot.seq, END)} stands beside a message")
        return Decision(Verdict.END)
    if not slot.ready:
        return WAIT_ABSENT
    if slot.msg == "file" and slot.size >= HEADER.size:
        (length,) = HEADER.unpack(slot.header[:HEADER.size])
        expected = HEADER.size + length
        if 0 <= length <= max_message and slot.size == expected:
            return Decision(Verdict.DELIVER, length=length)  # (the usual case: no name formatted)
    name = file_name(slot.seq, MSG)
    if slot.msg is None:
        return Decision(Verdict.WAIT, reason=f"{file_name(slot.seq, READY)} is there but {name} is not")
    if slot.msg != "file":
        what = {"link": "a symbolic link", "dir": "a directory"}.get(slot.msg, "not a regular file")
        return Decision(Verdict.CORRUPT, reason=f"{name} is {what}")
    if slot.size < HEADER.size:
        return Decision(Verdict.WAIT, reason=f"{name} is shorter than its header")
    if length < 0:  # (a file with a whole header: decoded above)
        return Decision(Verdict.CORRUPT, reason=f"{name} has a negative length {length}")
    if length > max_message:
        return Decision(Verdict.CORRUPT,
                        reason=f"{name} has length {length}, above the maximum {max_message}")
    if slot.size < expected:
        return Decision(Verdict.WAIT, reason=f"{name} has {slot.size} of {expected} bytes")
    return Decision(Verdict.CORRUPT,
                    reason=f"{name} is {slot.size} bytes, longer than its header says ({expected})")


def _judge_marked(slot: Slot, rules: Rules) -> Decision:
    seq, record = slot.seq, slot.record
    if slot.end:
        if record is None:
            return Decision(Verdict.WAIT, reason="end marker still arriving")
        problem = _foreign(slot, record, rules, f"end {seq}")
        return problem or Decision(Verdict.END)
    if not slot.ready:
        return WAIT_ABSENT
    if record is None:
        return Decision(Verdict.WAIT, reason=f"marker {seq} still arriving")
    problem = _foreign(slot, record, rules, f"message {seq}")
    if problem:
        return problem
    try:
        length, parts = int(record["length"]), int(record["parts"])
    except (TypeError, ValueError):
        return Decision(Verdict.CORRUPT, reason=f"message {seq} has a marker without numbers")
    if length < 0 or length > rules.max_message:
        return Decision(Verdict.CORRUPT, reason=f"message {seq} claims {length} bytes (max {rules.max_message})")
    sizes = split_sizes(HEADER.size + length, rules.max_file)
    if parts != len(sizes):
        return Decision(Verdict.CORRUPT, reason=f"message {seq} claims {parts} files, its length needs {len(sizes)}")
    if slot.parts is None:
        return Decision(Verdict.FETCH, length=length, sizes=tuple(sizes))
    for index, size in enumerate(sizes):
        got = slot.parts[index] if index < len(slot.parts) else -1
        if got < size:
            return Decision(Verdict.WAIT, reason=f"{part_name(seq, index)} is not all there yet")
        if got > size:
            return Decision(Verdict.WAIT, reason=f"{part_name(seq, index)} is longer than its marker says")
    if hashlib.sha256(slot.content).hexdigest() != record["sha256"]:
        return Decision(Verdict.WAIT, reason=f"message {seq} does not match its digest", mismatch=True)
    (header,) = HEADER.unpack_from(slot.content)
    if header != length:
        return Decision(Verdict.CORRUPT, reason=f"message {seq}: header says {header}")
    return Decision(Verdict.DELIVER, length=length)


def _foreign(slot: Slot, record: dict, rules: Rules, what: str) -> Decision | None:
    """A marked file of another run (corrupt), or of a writer that is not the
    one known to be running: left by an earlier run, or synced again (waited
    past, never delivered)."""
    if record.get("run") != rules.run_id:
        return Decision(Verdict.CORRUPT, reason=f"message {slot.seq} in {slot.where} belongs to run "
                                                f"{record.get('run')!r}, not {rules.run_id!r}")
    if rules.writer and record.get("writer") and record["writer"] != rules.writer:
        return Decision(Verdict.WAIT, reason=f"{what} is an earlier writer's")
    return None
