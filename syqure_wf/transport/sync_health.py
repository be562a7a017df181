"""Is this site's sync working? Whether the SyftBox client that syncs a
folder (``files/syftbox_client.py`` finds it) and its server answer."""
from __future__ import annotations

import time
from pathlib import Path

from ..files.syftbox_client import SyncClient, find_client
from .protocol.liveness import SyncWatch  # noqa: F401 (what its verdicts feed: the session's)



def answers(url: str, timeout: float = 3.0) -> bool:
    """An HTTP server answers at ``url`` (any status: it is up)."""
    import urllib.error  # here: a party's process imports this module, and pays for it at its start
    import urllib.request
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
