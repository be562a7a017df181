"""Where a submitted run's files are, in the SyftBox folder and beside it,
and how a site reads a peer's (never through a link, bounded, and a file
that cannot be read refused once until it changes) and writes its own
(atomically, owner-only, readable by the run's sites only). JSON is
parsed by the one reader of peer files (files/peer_json.py);
``read_record`` reads a record or a request with it. A run is its
submitter's run id: every file of it is under ``{submitter}/{run_id}``::

    datasites/{site}/app_data/syqure/
        jobs/{submitter}/{run_id}/manifest.json     the submitter's proposal  (site = submitter)
        jobs/{submitter}/{run_id}/cancel.json       the submitter's cancel    (site = submitter)
        jobs/{submitter}/{run_id}/state.json        each site's state         (read: the run's sites)
        results/{submitter}/{run_id}/party-{pid}.json  a site's result, sealed to its readers (results.py)
    (each of these four signed by the site that wrote it: signature.py)
        runs/{run_id}.{16 hex}/...                  the MPC channels (the syftbox layout; channel_id)
    syqure-wf/{site}/                               the agent's own: never synced
        runs/{submitter}/{run_id}/record.json, manifest.json, program/, run.yaml, work/, party.log
        requests/                                   approve / reject, from the operator
        audit.jsonl                                 one line per event
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from ..errors import SyqureError
from ..transport.protocol.names import check_id
from ..files.peer_json import ARRIVING, json_of
from ..files.private import make_private_dir, read_small, write_private
from ..keys.sitekey import private_dir
from ..transport.syftbox import APP, permissions
from . import lifecycle as lc
from .manifest import ManifestError, check_email

RECORD_MAX = 1 << 20
REFUSED_MAX = 10_000  # peer files remembered as refused (the oldest forgotten first)


class Board:
    """One site's view of the SyftBox folder: ``folder`` holds ``datasites/``
    (a SyftBox client's folder, or one folder holding every site's datasite).
    ``on_refused(path, code, reason)`` hears of each peer file refused, once
    per version of it."""

    def __init__(self, folder: str | os.PathLike, me: str,
                 on_refused: Callable[[Path, str, str], None] | None = None):
        self.folder = Path(folder).expanduser().resolve()
        try:
            self.me = check_email(me, "--email")
        except ManifestError as exc:
            raise SyqureError(str(exc)) from None
        self.datasites = self.folder / "datasites"
        if not self.datasites.is_dir():
            raise SyqureError(f"{self.folder} is not a SyftBox folder (it has no datasites/)")
        self.private = private_dir(self.folder, me)
        self.on_refused = on_refused or (lambda path, code, reason: None)
        self.refused: dict[Path, tuple] = {}  # peer files refused: their version then
        from .trust import Trust

        self.trust = Trust(self.folder, me)  # whose signatures it takes (the agent gives it its policy)

    # -- where things are
    def app(self, site: str) -> Path:
        return self.datasites / site / "app_data" / APP

    def jobs(self, site: str, submitter: str | None = None, run_id: str | None = None) -> Path:
        """``site``'s folder of runs by ``submitter`` (its own: ``submitter``
        omitted), or of one run of them."""
        folder = self.app(site) / "jobs" / (submitter or site)
        return folder / check_id(run_id, "run id") if run_id is not None else folder

    def manifest_path(self, submitter: str, run_id: str) -> Path:
        return self.jobs(submitter, submitter, run_id) / "manifest.json"

    def cancel_path(self, submitter: str, run_id: str) -> Path:
        return self.jobs(submitter, submitter, run_id) / "cancel.json"

    def state_path(self, site: str, submitter: str, run_id: str) -> Path:
        return self.jobs(site, submitter, run_id) / "state.json"

    def result_path(self, site: str, submitter: str, run_id: str, pid: int) -> Path:
        return self.app(site) / "results" / submitter / check_id(run_id, "run id") / f"party-{pid}.json"

    def run_private(self, submitter: str, run_id: str) -> Path:
        return self.private / "runs" / submitter / check_id(run_id, "run id")

    @property
    def requests(self) -> Path:
        return self.private / "requests"

    @property
    def audit_path(self) -> Path:
        return self.private / "audit.jsonl"

    # -- what is there
    def run_ids(self, submitter: str, limit: int) -> list[str]:
        """The run folders in ``submitter``'s own jobs folder whose names are
        run ids: at most ``limit`` folders looked at."""
        return [r for r in subfolders(self.jobs(submitter), limit) if _is_id(r)]

    def read(self, path: Path, limit: int = RECORD_MAX) -> bytes | None:
        """A peer's file: None if absent, a link or too large to be ours."""
        return read_bytes(path, limit)

    def read_manifest(self, submitter: str, run_id: str) -> bytes | None:
        from .signature import MAX_SIGNED

        return self.read(self.manifest_path(submitter, run_id), MAX_SIGNED)

    def read_json(self, path: Path) -> dict | None:
        """A peer's small JSON record; None while absent or half synced, and
        for a file that is no such record (too large, nested too deep, not a
        mapping...): that one refused once, until it changes."""
        version = stamp(path)
        if not version or self.refused.get(path) == version:
            return None
        data = self.read(path)
        if data is None:
            if stamp(path) == version and version[1] > RECORD_MAX:
                self.refuse(path, version, "bad_file", f"larger than {RECORD_MAX} bytes")
            return None
        value, problem = json_of(data)
        if problem == ARRIVING:
            return None
        if not isinstance(value, dict):
            self.refuse(path, version, "bad_file", problem or "not a JSON mapping")
            return None
        return value

    def read_signed(self, path: Path, kind: str, signer: str) -> dict | None:
        """A peer's small JSON record that ``signer`` signed as ``kind``
        (signature.py); None while absent or arriving, and for a file unsigned
        or mis-signed: that one refused once, until it changes, never acted on."""
        from .signature import SignatureError

        version = stamp(path)
        if not version or self.refused.get(path) == version:
            return None
        data = self.read(path)
        try:
            body = self.trust.body(data, kind, signer, str(path.relative_to(self.datasites))
                                   if path.is_relative_to(self.datasites) else str(path)) if data else None
        except SignatureError as exc:
            if exc.code != "incomplete":
                self.refuse(path, version, exc.code, str(exc))
            return None
        value = json_of(body)[0] if body is not None else None
        if body is not None and not isinstance(value, dict):
            self.refuse(path, version, "bad_file", "its signed body is not a JSON mapping")
            return None
        return value

    def refuse(self, path: Path, version: tuple, code: str, reason: str) -> None:
        if len(self.refused) >= REFUSED_MAX:
            self.refused.pop(next(iter(self.refused)))
        self.refused[path] = version
        self.on_refused(path, code, reason)

    def state_of(self, site: str, submitter: str, run_id: str) -> dict | None:
        """``site``'s state of a run, each field checked (its strings escaped)."""
        path = self.state_path(site, submitter, run_id)
        record = self.read_signed(path, "state", site)
        if record is None:
            return None
        try:  # a record is only the site's own word about this run
            return lc.peer_record(record, site, submitter, run_id)
        except ValueError as exc:
            self.refuse(path, stamp(path), "bad_state", str(exc))
            return None

    def cancelled(self, submitter: str, run_id: str) -> bool:
        record = self.read_signed(self.cancel_path(submitter, run_id), "cancel", submitter)
        return bool(record and record.get("run_id") == run_id and record.get("by") == submitter)

    # -- what this site writes
    def publish(self, path: Path, data: bytes, readers: list[str]) -> None:
        """Write one of this site's files in its own datasite, readable by ``readers``."""
        if not path.is_relative_to(self.datasites / self.me):
            raise SyqureError(f"{path} is not in this site's datasite")
        folder = path.parent
        make_private_dir(folder)
        for name, text in permissions(sorted(set(readers) | {self.me})).items():
            target = folder / name
            if self.read(target) != text:
                write_private(target, text)
        write_private(path, data)


def read_bytes(path: Path, limit: int = RECORD_MAX) -> bytes | None:
    """A file's bytes: None if absent, a link or larger than ``limit``."""
    try:
        data = read_small(path, limit + 1)
    except (SyqureError, OSError):
        return None
    return None if data is None or len(data) > limit else data


def read_record(path: Path, limit: int = RECORD_MAX) -> dict | None:
    """A JSON mapping in a file (a record, a request): None if absent, a
    link, too large, no JSON or no mapping. No memory of refusals: for a
    peer's file that is read again and again, ``Board.read_json``."""
    data = read_bytes(path, limit)
    value = json_of(data)[0] if data is not None else None
    return value if isinstance(value, dict) else None


def channel_id(submitter: str, run_id: str) -> str:
    """The run id of a submitted run's channels: its own run id and its
    submitter's, so that two submitters' runs never share a folder."""
    return f"{run_id}.{hashlib.sha256(submitter.encode()).hexdigest()[:16]}"


def stamp(path: Path) -> tuple:
    """A file's version (never through a link): () while it is absent."""
    try:
        st = os.stat(path, follow_symlinks=False)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return ()


def subfolders(folder: Path, limit: int | None = None) -> list[str]:
    """The folders in ``folder`` (no links, no hidden names), sorted: the
    first ``limit`` the file system lists, if given."""
    names = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if limit is not None and len(names) >= limit:
                    break
                if e.is_dir(follow_symlinks=False) and not e.name.startswith("."):
                    names.append(e.name)
    except OSError:
        pass
    return sorted(names)


def _is_id(name: str) -> bool:
    try:
        check_id(name, "run id")
        return True
    except ValueError:
        return False


def dump(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, indent=1).encode() + b"\n"
