"""The proposing site: ``submit`` checks a run locally and publishes its
manifest, ``status`` and ``wait`` follow every site's published state and
collect the results, ``cancel`` ends the run everywhere. Nothing here
executes anything a peer wrote: states and results are read as data."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from ..errors import ConfigError, SyqureError
from ..run import summary
from ..files.private import make_private_dir, write_private
from ..files.peer_json import json_of
from . import lifecycle as lc
from .board import Board, dump
from .events import Events
from .signature import MAX_SIGNED
from .manifest import MAX_BYTES, ManifestError, encode, from_config, parse, same_submission

RESULT_WAIT = 120.0  # seconds for a shared result to follow its site's 'done' through the sync
DEFAULT_EXPIRY = 7 * 86400.0  # days: a steward answers within a working week, not an hour


def submit(config_path: str, to: list[str], board: Board, expires_in: float = DEFAULT_EXPIRY,
           say=print, run_id: str | None = None) -> str:
    """Check the run here (its program compiled, for Sequre), then publish
    its manifest in this site's datasite. Returns the run id."""
    from ..run.schema import check_schema, read_yaml

    source = Path(config_path).resolve()
    raw = read_yaml(source)
    check_schema(raw, str(source))
    if run_id:
        raw["run_id"] = run_id
    manifest = from_config(raw, str(source), source.parent, to, board.me, expires_in)
    m = parse(encode(manifest))  # what every site will check, checked here first
    _check_here(m, board, say)
    path = board.manifest_path(board.me, m.run_id)
    existing = board.read(path, MAX_SIGNED)
    if existing is not None:
        before = json_of(_own(board, existing, m.run_id))[0]
        if isinstance(before, dict) and same_submission(before, manifest):
            say(f"run {m.run_id} was already submitted: the same run")
            return m.run_id
        raise SyqureError(f"run {m.run_id} exists with another manifest: give the new run its own run_id")
    board.publish(path, board.trust.sign("manifest", encode(manifest)), m.readers())
    say(f"submitted run {m.run_id}, digest {m.digest}, to " + ", ".join(f"{p}={e}" for p, e in enumerate(m.parties)))
    return m.run_id


def _check_here(m, board: Board, say=print) -> None:
    """The run as party 0 would run it here: settings, engine, and a Sequre
    program compiled (into the build cache the agents use on this machine)."""
    import tempfile

    from ..engines import get_engine
    from ..run import config as run_config
    from .partyconfig import party_config, write_program
    from .policy import Policy

    with tempfile.TemporaryDirectory(prefix="syqure-submit-") as tmp:
        program = write_program(m, Path(tmp) / "program")
        raw = party_config(m, 0, board.folder, program, None, Path(tmp) / "work", Policy())
        raw.pop("inputs", None)
        cfg = run_config.resolve(raw, None, Path(tmp))
        if get_engine(m.engine).needs_build(cfg.engine):
            from ..engines.build import build_run

            build_run(cfg, say=lambda line: say(f"submit: {line}"))


def _own(board: Board, data: bytes, run_id: str) -> bytes:
    """The body of a manifest this site signed (signature.py)."""
    from .signature import SignatureError

    try:
        body = board.trust.body(data, "manifest", board.me, f"the manifest of run {run_id}")
    except SignatureError as exc:
        raise SyqureError(str(exc)) from None
    if body is None:
        raise SyqureError(f"the manifest of run {run_id} is being written: try again")
    return body


def _manifest(board: Board, run_id: str):
    """The manifest of a run this site submitted, or of one addressed to it."""
    data = board.read(board.manifest_path(board.me, run_id), MAX_SIGNED)
    if data is not None:
        data = _own(board, data, run_id)
    if data is None:
        from .operator import run_folder

        try:
            data = board.read(run_folder(board, run_id) / "manifest.json", MAX_BYTES)
        except ConfigError:
            data = None
    if data is None:
        raise ConfigError(f"no run {run_id} here: {board.me} neither submitted it nor received it")
    try:
        return parse(data)
    except ManifestError as exc:
        raise ConfigError(f"run {run_id}: its manifest cannot be read: {exc}") from None


def records(board: Board, m) -> dict[str, dict | None]:
    return {site: lc.current(board.state_of(site, m.submitter, m.run_id), m.sha256) for site in m.parties}


def describe(site: str, pid: int, record: dict | None) -> str:
    if not record:
        return f"  party {pid} {site}: no answer yet"
    how = f" by {record['approved_by']}" if record.get("approved_by") and record["state"] != lc.REJECTED else ""
    why = f" ({record.get('code')}: {record.get('reason')})" if record.get("reason") else ""
    by = f", approve by {_utc(record['expires'])}" if record["state"] == lc.PENDING and record.get("expires") else ""
    return f"  party {pid} {site}: {record['state']}{how}{why}{by}"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(t)))


def status(board: Board, run_id: str) -> tuple[str, list[str]]:
    m = _manifest(board, run_id)
    now_records = records(board, m)
    verdict, what = lc.outcome(now_records, m.expires, time.time())
    lines = [f"run {run_id} from {m.submitter}, digest {m.digest}: {verdict}" + (f": {what}" if what else "")]
    lines += [describe(site, pid, now_records[site]) for pid, site in enumerate(m.parties)]
    return verdict, lines


def wait(board: Board, run_id: str, results: Path, timeout: float = 0.0, say=print) -> Path:
    """Follow every site until the run is done (results collected under
    ``results/<run>``) or fails (SyqureError naming the site and its reason)."""
    m = _manifest(board, run_id)
    wake = threading.Event()
    events = Events(wake).start()
    deadline = time.time() + timeout if timeout else None
    shown: dict[str, tuple] = {}
    try:
        while True:
            wake.clear()
            for site in {*m.parties, m.submitter}:
                events.watch_deepest([board.app(site), board.app(site) / "jobs", board.jobs(site, m.submitter),
                                      board.jobs(site, m.submitter, run_id)])
            now_records = records(board, m)
            for pid, site in enumerate(m.parties):
                r = now_records[site]
                key = (r or {}).get("state"), (r or {}).get("reason")
                if shown.get(site) != key:
                    shown[site] = key
                    say(describe(site, pid, r).strip())
            verdict, what = lc.outcome(now_records, m.expires, time.time())
            if verdict == "failed":
                raise SyqureError(f"run {run_id} failed: {what}")
            if verdict == "done":
                return collect(board, m, now_records, results, say)
            if deadline and time.time() > deadline:
                raise SyqureError(f"run {run_id}: still waiting after {timeout:g} s for {what}")
            wake.wait(min(5.0, max(0.05, (deadline - time.time()) if deadline else 5.0)))
    finally:
        events.close()


def collect(board: Board, m, now_records: dict, results: Path, say=print) -> Path:
    """Every shared result, its signature and seal checked, into
    ``results/<run>/``; SyqureError naming every site whose result fails."""
    out = results / m.run_id
    make_private_dir(out)
    kept, opened, failed = [], {}, []
    for pid, site in enumerate(m.parties):
        if now_records[site].get("result") != "shared":
            kept.append(site)
            continue
        try:
            opened[pid] = _result(board, m, site, pid)
        except SyqureError as exc:
            failed.append(f"{site}: {exc}")
    if failed:
        raise SyqureError(f"run {m.run_id}: refused the result of " + "; ".join(failed))
    for pid, data in opened.items():
        write_private(out / f"party-{pid}.json", data)
    write_private(out / "sites.json", dump({"run_id": m.run_id, "program": m.digest,
                                             "sites": {s: now_records[s] for s in m.parties}}))
    summary.write(summary.of_sites(m.run_id, m.digest, [(p, s, now_records[s]) for p, s in enumerate(m.parties)],
                                   out), out / "summary.json")  # docs/outputs.md
    say(f"run {m.run_id} done: results in {out}" + (f" (kept by their site: {', '.join(kept)})" if kept else ""))
    return out


def _result(board: Board, m, site: str, pid: int) -> bytes:
    """``site``'s result, signed by it and opened with this site's key (results.py)."""
    from .results import About, ResultError, open_sealed
    from .signature import SignatureError

    path = board.result_path(site, m.submitter, m.run_id, pid)
    deadline = time.time() + RESULT_WAIT
    while True:
        data = board.read(path, MAX_SIGNED)
        try:
            body = board.trust.body(data, "result", site, f"{site}'s result") if data else None
        except SignatureError as exc:
            if exc.code != "incomplete":
                raise SyqureError(str(exc)) from None
            body = None
        if body is not None:
            break
        if time.time() > deadline:
            raise SyqureError(f"it says its result is shared, but {path} did not arrive within "
                              f"{RESULT_WAIT:g} s (is this site among its readers?)")
        time.sleep(0.2)
    try:
        data = open_sealed(body, About(m.run_id, m.submitter, site, pid, m.sha256), board.me,
                           board.trust.own.prekey)
    except ResultError as exc:
        raise SyqureError(str(exc)) from None
    problem = json_of(data)[1]
    if problem:
        raise SyqureError(f"its result is no JSON this site reads ({problem})")
    return data


def cancel(board: Board, run_id: str, timeout: float = 60.0, say=print) -> None:
    """End the run at every site: each agent stops its party and says ``cancelled``."""
    data = board.read_manifest(board.me, run_id)
    if data is None:
        raise ConfigError(f"no run {run_id} submitted by {board.me}: only its submitter cancels a run")
    m = _manifest(board, run_id)
    board.publish(board.cancel_path(board.me, run_id), board.trust.sign(
        "cancel", dump({"run_id": run_id, "by": board.me, "time": round(time.time(), 3)})), m.readers())
    say(f"run {run_id}: cancel published")
    deadline = time.time() + timeout
    while True:
        now_records = records(board, m)
        live = [s for s, r in now_records.items() if r and r.get("state") not in lc.ENDED]
        silent = [s for s, r in now_records.items() if not r]
        if not live:
            for pid, site in enumerate(m.parties):
                say(describe(site, pid, now_records[site]).strip())
            return
        if time.time() > deadline:
            raise SyqureError(f"run {run_id}: no answer to the cancel within {timeout:g} s from "
                              + ", ".join(live + silent))
        time.sleep(0.2)
