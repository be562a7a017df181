"""Who may use the page: the holder of its access token (in the URL once,
then a cookie; or ``Authorization: Bearer`` from a site's reverse proxy),
and, for a request that changes anything, the page's CSRF token as well.
Pure: no sockets, no files but the token file."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from ..errors import ConfigError
from ..files.private import write_private


def token_from(path: Path, keep: bool) -> str:
    """A fresh token written to ``path`` (owner-only); ``keep``: the one
    already there, if that file is this user's and private."""
    if keep:
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise ConfigError(f"{path}: the desk's token file must be a regular file of this user, mode 0600")
            token = path.read_text().strip()
            if len(token) >= 32:
                return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, token.encode() + b"\n")
    return token


class Access:
    def __init__(self, token: str) -> None:
        self.token = token
        self.cookie = "desk_" + hashlib.sha256(token.encode()).hexdigest()[:12]  # two desks on one host differ
        self.csrf = hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()

    def _is(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def allowed(self, query_token: str | None, cookie: str | None, authorization: str | None) -> bool:
        bearer = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else None
        return self._is(query_token) or self._is(cookie) or self._is(bearer)

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())
