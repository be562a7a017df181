"""Every JSON file a peer or a sync may have written is read here: the one
reader of peer files. A file still being written is no JSON yet (ARRIVING);
JSON that no reader takes (nested deep enough to exhaust the parser's stack,
or what no check foresaw) is named, never raised: no file stops a reader."""
from __future__ import annotations

import json

ARRIVING = "not JSON (yet)"  # bytes a sync or a writer has not finished


def json_of(data: bytes | str | None) -> tuple[object, str]:
    """(value, "") for whole JSON; (None, ARRIVING) for absent or unfinished
    bytes; (None, why) for JSON no reader takes."""
    if not data:
        return None, ARRIVING
    try:
        return json.loads(data), ""
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
