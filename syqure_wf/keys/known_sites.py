"""The peers this site has seen: their site keys' fingerprints, pinned at
first sight (``known_sites`` in the site's private folder)."""
from __future__ import annotations

import os
import re

from ..errors import SyqureError
from ..files.private import make_private_dir, read_small, write_private
from ..keys.sitekey import FINGERPRINT, KNOWN, MAX_KNOWN, Refused, private_dir


class KnownSites:
    """``email fingerprint`` lines, pinned at first sight; one writer at a time."""

    def __init__(self, folder: str | os.PathLike, email: str):
        self.dir = private_dir(folder, email)
        self.path = self.dir / KNOWN

    def read(self) -> dict[str, str]:
        try:
            data = read_small(self.path, MAX_KNOWN + 1)
        except SyqureError as exc:
            raise Refused(f"known sites: {exc}") from None
        pins: dict[str, str] = {}
        for number, line in enumerate((data or b"").decode(errors="replace").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2 or not re.match(FINGERPRINT, parts[1]):
                raise Refused(f"{self.path} line {number}: expected 'email SHA256:...'")
            pins[parts[0]] = parts[1]
        return pins

    def get(self, email: str) -> str | None:
        return self.read().get(email)

    def _rewrite(self, change) -> None:
        from filelock import FileLock

        make_private_dir(self.dir)
        with FileLock(str(self.dir / ".known_sites.lock"), timeout=60, mode=0o600):
            pins = self.read()
            change(pins)
            text = "".join(f"{e} {f}\n" for e, f in sorted(pins.items()))
            write_private(self.path, ("# syqure-wf: site keys pinned at first sight (email fingerprint)\n"
                                      + text).encode())

    def pin(self, email: str, fp: str) -> None:
        """Pin ``fp`` for ``email``: compare-and-set under the lock, so that
        of two first sights at once one pin stands; Refused, naming both
        keys, when another key is pinned for ``email`` already."""
        stood: dict[str, str] = {}
        self._rewrite(lambda pins: stood.setdefault("pin", pins.setdefault(email, fp)))
        if stood["pin"] != fp:
            raise Refused(f"site {email}'s key {fp} was not pinned: {stood['pin']} is pinned for it already "
                          f"(if {email} really made a new key, check it with them, then "
                          f"'syqure-wf keys --forget {email}')")

    def forget(self, email: str) -> bool:
        had = email in self.read()
        self._rewrite(lambda pins: pins.pop(email, None))
        return had
