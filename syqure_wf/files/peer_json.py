"""Every JSON file a peer or a sync may have written is read here: the one
reader of peer files. A file still being written is no JSON yet (ARRIVING);
JSON that no reader takes (nested deep enough to exhaust the parser's stack,
or what no check foresaw) is named, never raised: no file stops a reader.
Every number is finite: ``NaN``, ``Infinity`` and a float too large for
one (``1e999``) are refused here, so no expiry or heartbeat is one that
never comes, and no comparison with it is always false."""
from __future__ import annotations

import json
import math
from typing import Any, NoReturn

ARRIVING = "not JSON (yet)"  # bytes a sync or a writer has not finished
NOT_FINITE = "a number that is not finite (NaN or Infinity)"


class NotFinite(ValueError):
    pass


def _constant(name: str) -> NoReturn:
    raise NotFinite(name)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotFinite(text)
    return value


def loads(data: bytes | str) -> Any:
    """``json.loads`` that refuses non-finite numbers (ValueError)."""
    return json.loads(data, parse_constant=_constant, parse_float=_float)


def finite(value: object) -> bool:
    """A number (not a bool) that is finite: what a peer's time or count must be."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int no float holds
        return False


def json_of(data: bytes | str | None) -> tuple[object, str]:
    """(value, "") for whole JSON; (None, ARRIVING) for absent or unfinished
    bytes; (None, why) for JSON no reader takes."""
    if not data:
        return None, ARRIVING
    try:
        return loads(data), ""
    except NotFinite:
        return None, NOT_FINITE
    except (ValueError, UnicodeDecodeError):
        return None, ARRIVING
    except RecursionError:
        return None, "nested too deep"
    except Exception as exc:  # out of memory, or what no check foresaw: this file, not the reader
        return None, f"unreadable ({type(exc).__name__})"


def mapping_of(data: bytes | str | None) -> dict | None:
    """A JSON object (a record, a marker, a status), or None for anything else."""
    value = json_of(data)[0]
    return value if isinstance(value, dict) else None
