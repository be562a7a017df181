"""One run's review sheet, for the page and for ``show --html`` and
``show --json``: ``show``'s lines (sheet.py cuts them into fields), the
program's files highlighted, and the manifest version they are all of."""
from __future__ import annotations

import hashlib
import time
from importlib import resources

from jinja2 import Environment, PackageLoader, select_autoescape

from ..errors import SyqureError
from ..sites import lifecycle as lc
from ..sites.board import Board, read_record
from ..sites.manifest import MAX_BYTES, parse
from ..sites.operator import run_folder
from ..sites.peertext import shown
from ..sites.show import show
from . import sheet


def utc(t) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return "?"


def environment() -> Environment:
    """The templates: every value escaped unless marked safe (only Pygments' output is)."""
    env = Environment(loader=PackageLoader("syqure_wf.desk", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["utc"] = utc
    env.filters["peer"] = shown
    return env


def review(board: Board, run_id: str, submitter: str | None, policy_path: str | None = None) -> dict:
    """``show``'s sheet, the program's files, and the manifest version they are of."""
    folder = run_folder(board, run_id, submitter)
    record = read_record(folder / "record.json") or {}
    lines = show(board, run_id, submitter, policy_path)
    data = board.read(folder / "manifest.json", MAX_BYTES)
    version = "sha256:" + hashlib.sha256(data).hexdigest() if data is not None else None
    if version != record.get("manifest"):
        raise SyqureError(f"run {run_id} changed while it was read: read it again")
    m = parse(data)
    files = [{"name": name, "html": sheet.source(name, body)}
             for name, body in sorted(m.files.items(), key=lambda kv: (kv[0] != m.entry, kv[0]))]
    return {"record": record, "sheet": sheet.fields(lines), "files": files, "version": version,
            "buttons": record.get("state") == lc.PENDING}


def as_json(data: dict) -> dict:
    """The sheet for machines: the fields as ``show`` says them, the kept record and version."""
    return {"run_id": data["record"].get("run_id"), "submitter": data["record"].get("submitter"),
            "state": data["record"].get("state"), "manifest": data["version"], "title": data["sheet"]["title"],
            "fields": [{k: f[k] for k in ("label", "value", "rows", "table")} for f in data["sheet"]["fields"]],
            "files": [f["name"] for f in data["files"]]}


def as_html(board: Board, data: dict) -> str:
    """One self-contained page (styles inline, no script) to file with a change request."""
    css = resources.files("syqure_wf.desk").joinpath("static", "desk.css").read_text() + sheet.highlight_css()
    return environment().get_template("sheet.html").render(me=board.me, css=css, now=time.time(), **data)
