"""This site's SyftBox client configuration, where ``--syftbox-folder`` and
``--email`` default from: ``$SYFTBOX_CLIENT_CONFIG_PATH``, else
``~/.syftbox/config.json`` (the client's own defaults), its ``data_dir``
(or the older ``sync_folder``) and ``email``. Nothing found: no default."""
from __future__ import annotations

import json
import os
from pathlib import Path

MAX = 1 << 16


def path() -> Path:
    given = os.environ.get("SYFTBOX_CLIENT_CONFIG_PATH")
    return Path(given).expanduser() if given else Path.home() / ".syftbox" / "config.json"


def setting(name: str) -> str | None:
    """``folder`` or ``email`` from the client's configuration, if it says."""
    try:
        with open(path(), "rb") as f:
            raw = json.loads(f.read(MAX))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    value = raw.get("data_dir") or raw.get("sync_folder") if name == "folder" else raw.get("email")
    return value if isinstance(value, str) and value else None
