"""Is this site's sync working? The SyftBox client that syncs a folder, as
its own configuration names it, and whether it and its server answer.

A SyftBox client (0.4 and the current one alike) keeps a JSON configuration
with ``data_dir`` (the folder), ``email``, ``server_url`` and ``client_url``
(its local API). The configuration is found where the client reads it:
``$SYFTBOX_CLIENT_CONFIG_PATH``, ``~/.syftbox/config.json``, or the
``-c/--config`` argument of a running ``syftbox`` process.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


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
        if not entry.name.isdigit():
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
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
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


class SyncWatch:
    """This site's sync, up or down, from successive probes: pure bookkeeping.

    While the sync is down nothing from the peers can arrive, so no bound on
    what comes from them may run: ``clock`` is a monotonic clock that stands
    still while the sync is down. Every bound on peers is measured on it."""

    def __init__(self, now: float):
        self.paused = 0.0  # seconds of outage already behind us
        self.down_since: float | None = None  # monotonic
        self.down_wall: float | None = None  # wall clock, for people
        self.reason = ""
        self.last_outage = 0.0  # seconds the last outage lasted

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def observe(self, problem: str | None, now: float, wall: float) -> str | None:
        """Take a probe's result; returns "down" or "up" when the state changed."""
        if problem and self.down_since is None:
            self.down_since, self.down_wall, self.reason = now, wall, problem
            return "down"
        if problem:
            self.reason = problem
            return None
        if self.down_since is not None:
            self.last_outage = now - self.down_since
            self.paused += self.last_outage
            self.down_since, self.down_wall, self.reason = None, None, ""
            return "up"
        return None

    def clock(self, now: float) -> float:
        """``now`` less every moment the sync was down."""
        return now - self.paused - (now - self.down_since if self.down_since is not None else 0.0)

    def down_for(self, now: float) -> float:
        return now - self.down_since if self.down_since is not None else 0.0

    def record(self) -> dict:
        """What the status record says of this site's sync."""
        if self.down_since is None:
            return {"state": "up"}
        return {"state": "down", "since": self.down_wall, "reason": self.reason}


def describe(sync: dict | None) -> str:
    """'sync down since 12:34:56 (reason)' for a status record's ``sync``, or ''."""
    import time

    if not sync or sync.get("state") != "down":
        return ""
    since = time.strftime("%H:%M:%S", time.localtime(sync.get("since") or 0))
    return f"sync down since {since} ({sync.get('reason', '?')})"
