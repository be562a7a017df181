"""summary.json as docs/outputs.md describes it: every test that reads a
real run's summary checks it against docs/summary.schema.json here."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from conftest import REPO

SCHEMA = json.loads((REPO / "docs/summary.schema.json").read_text())


def checked_summary(path: Path, how: str | None = None) -> dict:
    """The summary at ``path``, valid against the schema; every result it
    names is a JSON file beside it."""
    summary = json.loads(Path(path).read_text())
    jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert how is None or summary["how"] == how, summary["how"]
    assert [p["pid"] for p in summary["parties"]] == sorted(p["pid"] for p in summary["parties"])
    for party in summary["parties"]:
        if party["result"]:
            json.loads((Path(path).parent / party["result"]).read_text())
    return summary
