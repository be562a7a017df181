"""The SyftBox client that syncs a folder, as its own configuration names it.

A SyftBox client (0.4 and the current one alike) keeps a JSON configuration
with ``data_dir`` (the folder), ``email``, ``server_url`` and ``client_url``
(its local API). The configuration is found where the client reads it:
``$SYFTBOX_CLIENT_CONFIG_PATH``, ``~/.syftbox/config.json``, or the
``-c/--config`` argument of a running ``syftbox`` process. Only this
user's: a process or a file of another local user could otherwise point
the sync probe at a client it runs (and hold the run's bounds still), or
the site key at another server. The sync probe (``transport/sync_health.py``)
and the site key (``keys/sitekey.py``: its server, its domain) both ask.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SyqureError
from .peer_json import json_of
from .private import read_small


@dataclass(frozen=True)
class SyncClient:
    folder: Path
    email: str | None
    server_url: str | None
    client_url: str
    config: Path


def _config_paths():
    given = os.environ.get("SYFTBOX_CLIENT_CONFIG_PATH")
    if given:
        yield Path(given).expanduser()
    yield Path("~/.syftbox/config.json").expanduser()
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit() or not _ours(entry.path):
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any("syftbox" in a for a in argv[:3]):
            continue
        for i, arg in enumerate(argv):
            if arg in ("-c", "--config", "--config_path", "--config-path") and i + 1 < len(argv):
                path = Path(argv[i + 1])
                if not path.is_absolute():
                    try:
                        path = Path(os.readlink(Path(entry.path, "cwd"))) / path
                    except OSError:
                        continue
                yield path
            elif arg.startswith("--config="):
                yield Path(arg.split("=", 1)[1])


def _ours(path) -> bool:
    """``path`` (a /proc entry, a configuration) belongs to this user, and is no link."""
    try:
        return os.lstat(path).st_uid == os.getuid() and not os.path.islink(path)
    except OSError:
        return False


def _client_url(data: dict) -> str | None:
    url = data.get("client_url")
    if url:
        return str(url).rstrip("/")
    port = data.get("port")
    return f"http://127.0.0.1:{port}" if port else None


def find_client(folder: Path) -> SyncClient | None:
    """The SyftBox client whose configuration names ``folder``, or None."""
    want = os.path.realpath(folder)
    seen = set()
    for path in _config_paths():
        if path in seen:
            continue
        seen.add(path)
        if not _ours(path):
            continue
        try:
            data = json_of(read_small(path))[0]
        except (OSError, SyqureError):
            continue
        data_dir = data.get("data_dir") or data.get("sync_folder") if isinstance(data, dict) else None
        if not data_dir or os.path.realpath(os.path.expanduser(str(data_dir))) != want:
            continue
        url = _client_url(data)
        if url:
            server = data.get("server_url")
            return SyncClient(Path(want), data.get("email"), str(server).rstrip("/") if server else None, url, path)
    return None
