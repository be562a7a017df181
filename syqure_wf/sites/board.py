"""Where a submitted run's files are, in the SyftBox folder and beside it,
and how a site reads a peer's (never through a link, bounded) and writes
its own (atomically, owner-only, readable by the run's sites only)::

    datasites/{site}/app_data/syqure/
        jobs/{run_id}/manifest.json      the submitter's proposal   (read: the run's sites)
        jobs/{run_id}/cancel.json        the submitter's cancel     (read: the run's sites)
        jobs/{run_id}/state.json         each site's state          (read: the run's sites)
        results/{run_id}/party-{pid}.json  a site's result          (read: per its policy)
        runs/{run_id}/...                the MPC channels (the syftbox layout)
    syqure-wf/{site}/                    the agent's own: never synced
        runs/{run_id}/record.json, program/, run.yaml, work/, party.log
        requests/                        approve / reject, from the operator
        audit.jsonl                      one line per event
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import SyqureError
from ..transport import mailbox
from ..transport.folder import make_private_dir, read_small, write_private
from ..transport.sitekey import private_dir
from ..transport.syftbox import APP, permissions
from .manifest import MAX_BYTES, ManifestError, check_email

RECORD_MAX = 1 << 20


class Board:
    """One site's view of the SyftBox folder: ``folder`` holds ``datasites/``
    (a SyftBox client's folder, or one folder holding every site's datasite)."""

    def __init__(self, folder: str | os.PathLike, me: str):
        self.folder = Path(folder).expanduser().resolve()
        try:
            self.me = check_email(me, "--email")
        except ManifestError as exc:
            raise SyqureError(str(exc)) from None
        self.datasites = self.folder / "datasites"
        if not self.datasites.is_dir():
            raise SyqureError(f"{self.folder} is not a SyftBox folder (it has no datasites/)")
        self.private = private_dir(self.folder, me)

    # -- where things are
    def app(self, site: str) -> Path:
        return self.datasites / site / "app_data" / APP

    def jobs(self, site: str, run_id: str) -> Path:
        return self.app(site) / "jobs" / mailbox.check_id(run_id, "run id")

    def manifest_path(self, submitter: str, run_id: str) -> Path:
        return self.jobs(submitter, run_id) / "manifest.json"

    def cancel_path(self, submitter: str, run_id: str) -> Path:
        return self.jobs(submitter, run_id) / "cancel.json"

    def state_path(self, site: str, run_id: str) -> Path:
        return self.jobs(site, run_id) / "state.json"

    def result_path(self, site: str, run_id: str, pid: int) -> Path:
        return self.app(site) / "results" / run_id / f"party-{pid}.json"

    def run_private(self, run_id: str) -> Path:
        return self.private / "runs" / mailbox.check_id(run_id, "run id")

    @property
    def requests(self) -> Path:
        return self.private / "requests"

    @property
    def audit_path(self) -> Path:
        return self.private / "audit.jsonl"

    # -- what is there
    def manifests(self):
        """(submitter folder, run id, path) of every manifest in any datasite; names
        that could escape a folder, and links, are passed over."""
        for site in subfolders(self.datasites):
            jobs = self.datasites / site / "app_data" / APP / "jobs"
            for run_id in subfolders(jobs):
                try:
                    mailbox.check_id(run_id, "run id")
                except ValueError:
                    continue
                path = jobs / run_id / "manifest.json"
                if os.path.isfile(path) and not os.path.islink(path):
                    yield site, run_id, path

    def read(self, path: Path, limit: int = RECORD_MAX) -> bytes | None:
        """A peer's file: None if absent, a link or too large to be ours."""
        try:
            data = read_small(path, limit + 1)
        except (SyqureError, OSError):
            return None
        return None if data is None or len(data) > limit else data

    def read_manifest(self, submitter: str, run_id: str) -> bytes | None:
        return self.read(self.manifest_path(submitter, run_id), MAX_BYTES)

    def read_json(self, path: Path) -> dict | None:
        """A small JSON record, None while absent or half synced."""
        data = self.read(path)
        try:
            value = json.loads(data) if data else None
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def state_of(self, site: str, run_id: str) -> dict | None:
        record = self.read_json(self.state_path(site, run_id))
        # a record is only the site's own word about this run
        return record if record and record.get("site") == site and record.get("run_id") == run_id else None

    def cancelled(self, submitter: str, run_id: str) -> bool:
        record = self.read_json(self.cancel_path(submitter, run_id))
        return bool(record and record.get("run_id") == run_id)

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


def subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    except OSError:
        return []


def dump(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, indent=1).encode() + b"\n"
