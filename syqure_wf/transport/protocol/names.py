"""Names on disk (PROTOCOL.md, Message files): directions, message files,
stamps, markers of self-checking messages. Pure.

In ``{from}_to_{to}/``::

    {seq:08d}.msg    [8-byte LE signed length N][N bytes]
    {seq:08d}.partK  continuation K of a message split across files (syftbox)
    {seq:08d}.ready  marker, created after the message is complete
    {seq:08d}.end    end of stream of one connection (no .msg); runs that seal nothing only
    .run             the run id the writer stamped before its first message
    writer.id        the incarnation token of the proxy process writing here (synced: not hidden)
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable

from ...files.peer_json import mapping_of

MSG, READY, END = "msg", "ready", "end"
KINDS = (MSG, READY, END)
RUN_STAMP = ".run"
STATUS = "status"  # the parties' records: in a run folder (syftbox), in the shared data folder (every party's)
WRITER_STAMP = "writer.id"  # not hidden: SyftBox syncs no hidden file
NATIVE_SUFFIX = ".request"  # the Sequre fork's own file transport names its messages so
_NAME = re.compile(r"^(\d{8,})\.(msg|ready|end|part\d+)$")  # part: continuation of a large message
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DIRECTION = re.compile(r"^(\d+)_to_(\d+)$")


def direction_name(src: int, dst: int) -> str:
    return f"{src}_to_{dst}"


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


def group(names: Iterable[str]) -> dict[int, set[str]]:
    """Message files present, by seq."""
    slots: dict[int, set[str]] = {}
    for name in names:
        parsed = parse_name(name)
        if parsed:
            slots.setdefault(parsed[0], set()).add(parsed[1])
    return slots


def leftovers(names: Iterable[str]) -> list[str]:
    """Message files in a folder that a fresh writer must not find."""
    return sorted(n for n in names if parse_name(n))


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
    record = mapping_of(raw)
    if record is None or not {"length", "parts", "sha256"} <= record.keys():
        return None
    return record


def encode_end(run_id: str | None, writer: str | None) -> bytes:
    """The end marker of a self-checking layout."""
    return json.dumps({"run": run_id, "writer": writer}).encode()


def decode_record(raw: bytes | None) -> dict | None:
    """A JSON object (an end marker, a consumption record), or None while absent or arriving."""
    return mapping_of(raw)


def encode_consumed(run_id: str, upto: int, reader: str | None) -> bytes:
    """A reader's consumption record (syftbox: a reader never deletes the writer's files)."""
    return json.dumps({"run": run_id, "upto": upto, "reader": reader}).encode()
