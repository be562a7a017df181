"""The mailbox: message files of one direction, their names, their checks
and the order of delivery. Pure: the folder adapter gathers what is on disk
into a ``Slot`` and acts on the ``Decision`` made here.

On disk (PROTOCOL.md), in ``{data_dir}/{from}_to_{to}/``::

    {seq:08d}.msg    [8-byte LE signed length N][N bytes]
    {seq:08d}.ready  empty marker, created after the .msg is complete
    {seq:08d}.end    end of stream of one connection (no .msg)
    .run             the run id the writer stamped before its first message
    writer.id        the incarnation token of the proxy process writing here (synced: not hidden)

Messages are written under temporary names ending in ``.tmp``, in the
hidden ``.tmp`` folder beside the directions: never synced by SyftBox,
never mistaken for a message, never waking a reader.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

from .framing import HEADER

MSG, READY, END = "msg", "ready", "end"
KINDS = (MSG, READY, END)
RUN_STAMP = ".run"
WRITER_STAMP = "writer.id"  # not hidden: SyftBox syncs no hidden file
_NAME = re.compile(r"^(\d{8,})\.(msg|ready|end|part\d+)$")  # part: continuation of a large message
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def direction_name(src: int, dst: int) -> str:
    return f"{src}_to_{dst}"


_DIRECTION = re.compile(r"^(\d+)_to_(\d+)$")


def parse_direction(name: str) -> tuple[int, int] | None:
    m = _DIRECTION.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def file_name(seq: int, kind: str) -> str:
    return f"{seq:08d}.{kind}"


def parse_name(name: str) -> tuple[int, str] | None:
    """``(seq, kind)`` of a message file name, None for anything else."""
    m = _NAME.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def check_id(value: str, what: str) -> str:
    """Refuse ids that could escape a folder (path traversal) or hide."""
    if not isinstance(value, str) or not _SAFE_ID.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} is not allowed: use letters, digits, '.', '_' "
                         "and '-', starting with a letter or digit")
    return value


def group(names) -> dict[int, set[str]]:
    """Message files present, by seq."""
    slots: dict[int, set[str]] = {}
    for name in names:
        parsed = parse_name(name)
        if parsed:
            slots.setdefault(parsed[0], set()).add(parsed[1])
    return slots


@dataclass(frozen=True)
class Slot:
    """What the reader saw of one seq. ``msg`` is the kind of the .msg entry:
    'file', 'link', 'dir', 'other' or None (absent)."""

    seq: int
    ready: bool = False
    end: bool = False
    msg: str | None = None
    size: int = 0
    header: bytes = b""


class Verdict(str, Enum):
    DELIVER = "deliver"
    END = "end"
    WAIT = "wait"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    length: int = 0
    reason: str = ""


WAIT_ABSENT = Decision(Verdict.WAIT, reason="no marker yet")


def judge(slot: Slot, max_message: int) -> Decision:
    """Whether one slot may be delivered now, must be waited for, or is corrupt."""
    name = file_name(slot.seq, MSG)
    if slot.end:
        if slot.ready or slot.msg is not None:
            return Decision(Verdict.CORRUPT, reason=f"{file_name(slot.seq, END)} stands beside a message")
        return Decision(Verdict.END)
    if not slot.ready:
        return WAIT_ABSENT
    if slot.msg is None:
        return Decision(Verdict.WAIT, reason=f"{file_name(slot.seq, READY)} is there but {name} is not")
    if slot.msg != "file":
        what = {"link": "a symbolic link", "dir": "a directory"}.get(slot.msg, "not a regular file")
        return Decision(Verdict.CORRUPT, reason=f"{name} is {what}")
    if slot.size < HEADER.size:
        return Decision(Verdict.WAIT, reason=f"{name} is shorter than its header")
    (length,) = HEADER.unpack(slot.header[:HEADER.size])
    if length < 0:
        return Decision(Verdict.CORRUPT, reason=f"{name} has a negative length {length}")
    if length > max_message:
        return Decision(Verdict.CORRUPT,
                        reason=f"{name} has length {length}, above the maximum {max_message}")
    expected = HEADER.size + length
    if slot.size < expected:
        return Decision(Verdict.WAIT, reason=f"{name} has {slot.size} of {expected} bytes")
    if slot.size > expected:
        return Decision(Verdict.CORRUPT,
                        reason=f"{name} is {slot.size} bytes, longer than its header says ({expected})")
    return Decision(Verdict.DELIVER, length=length)


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


def part_name(seq: int, index: int) -> str:
    """File ``index`` of a message split across files (0 is the .msg itself)."""
    return file_name(seq, MSG) if index == 0 else f"{seq:08d}.part{index}"


def split_sizes(total: int, max_file: int) -> list[int]:
    """Sizes of the files that carry ``total`` bytes, none above ``max_file``."""
    sizes = [max_file] * (total // max_file)
    if total % max_file or not sizes:
        sizes.append(total % max_file)
    return sizes


def encode_marker(run_id: str | None, length: int, parts: int, digest: str, writer: str | None = None) -> bytes:
    """The marker of a self-checking message (layouts fed by a file sync);
    ``writer``: the incarnation of the proxy that wrote it."""
    record = {"run": run_id, "length": length, "parts": parts, "sha256": digest}
    if writer:
        record["writer"] = writer
    return json.dumps(record, separators=(",", ":")).encode()


def decode_marker(raw: bytes | None) -> dict | None:
    """A complete marker record, or None while it is absent or still arriving."""
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict) or not {"length", "parts", "sha256"} <= record.keys():
        return None
    return record


def leftovers(names) -> list[str]:
    """Message files in a folder that a fresh writer must not find."""
    return sorted(n for n in names if parse_name(n))
