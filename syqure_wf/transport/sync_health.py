"""Is this site's sync working? The SyftBox client that syncs a folder, as
its own configuration names it, and whether it and its server answer.

A SyftBox client (0.4 and the current one alike) keeps a JSON configuration
with ``data_dir`` (the folder), ``email``, ``server_url`` and ``client_url``
(its local API). The configuration is found where the client reads it:
``$SYFTBOX_CLIENT_CONFIG_PATH``, ``~/.syftbox/config.json``, or the
``-c/--config`` argument of a running ``syftbox`` process. Only this
user's: a process or a file of another local user could otherwise point
the probe at a client it runs, and hold the run's bounds still.
"""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import SyqureError
from .files import read_small
from .protocol.liveness import SyncWatch  # noqa: F401 (what its verdicts feed: the session's)
from .protocol.records import json_of



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


def answers(url: str, timeout: float = 3.0) -> bool:
    """An HTTP server answers at ``url`` (any status: it is up)."""
    from urllib.parse import urlsplit

    local = urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if local else urllib.request.build_opener()
    try:
        with opener.open(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def problem_of(client: SyncClient) -> str | None:
    """Why this site's sync does not work now, or None: its client must
    answer, and so must the server it syncs with (from here)."""
    if not answers(client.client_url):
        return f"SyftBox client at {client.client_url} not answering"
    if client.server_url and not answers(client.server_url):
        return f"SyftBox server {client.server_url} unreachable"
    return None


def describe(sync: dict | None) -> str:
    """'sync down since 12:34:56 (reason)' for a status record's ``sync``, or ''."""
    if not sync or sync.get("state") != "down":
        return ""
    since = time.strftime("%H:%M:%S", time.localtime(sync.get("since") or 0))
    return f"sync down since {since} ({sync.get('reason', '?')})"


SYNC_PROBE = 1.0  # seconds between looks at this site's sync (its client and server)
CLIENT_LOOK = 10.0  # seconds between searches for a sync client not found yet


class ClientProbe:
    """This site's sync as its SyftBox client and server say it now: a
    problem, or None (working, or no client found: no evidence)."""

    def __init__(self, folder: Path):
        self.folder, self.client, self.look_at = folder, None, 0.0

    def __call__(self) -> str | None:
        now = time.monotonic()
        if self.client is None and now >= self.look_at:
            self.client, self.look_at = find_client(self.folder), now + CLIENT_LOOK
        return problem_of(self.client) if self.client else None
