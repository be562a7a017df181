"""A run's ``summary.json``: one format for every mode and front door
(docs/outputs.md, docs/summary.schema.json). It sits beside the results it
names: ``result`` is a file name in the summary's own folder, or null where
that party's result is not here (another machine's party, a site that kept
it). No local path, host or port of any party goes in."""
from __future__ import annotations

import json
from pathlib import Path

FORMAT = 1


def _result(folder: Path, pid: int) -> str | None:
    name = f"party-{pid}.json"
    return name if (folder / name).is_file() else None


def _counts(channels) -> dict:
    """Per channel, its numbers only (messages, bytes, seconds; no path, host or port)."""
    if not isinstance(channels, dict):
        return {}
    return {str(name): {str(k): v for k, v in c.items() if _number(v)}
            for name, c in channels.items() if isinstance(c, dict)}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def of_parties(run_id: str, records: dict[int, dict | None], folder: Path, how: str = "parties") -> dict:
    """From the parties' own status records (a run whose parties this
    machine's workflow started, all or one)."""
    parties = []
    for pid in sorted(records):
        rec = records[pid] or {}
        entry = {"pid": pid, "state": str(rec.get("state", "never started")), "site": None,
                 "result": _result(folder, pid)}
        if rec.get("reason"):
            entry["reason"] = str(rec["reason"])
        entry["channels"] = _counts(rec.get("channels"))
        times = rec.get("times") if isinstance(rec.get("times"), dict) else {}
        entry["times"] = {str(k): v for k, v in times.items() if _number(v)}
        parties.append(entry)
    return {"format": FORMAT, "how": how, "run_id": run_id, "program": None, "parties": parties}


def of_sites(run_id: str, program: str | None, sites: list[tuple[int, str, dict | None]], folder: Path) -> dict:
    """From every site's state as the submitter's ``wait`` read it: (pid from
    the manifest, site, its record)."""
    parties = []
    for pid, site, rec in sorted(sites, key=lambda s: s[0]):
        rec = rec or {}
        entry = {"pid": pid, "state": str(rec.get("state") or "no answer"), "site": site,
                 "result": _result(folder, pid)}
        for key in ("reason", "approved_by"):
            if rec.get(key):
                entry[key] = str(rec[key])
        parties.append(entry)
    return {"format": FORMAT, "how": "submit", "run_id": run_id, "program": program, "parties": parties}


def write(summary: dict, out: str | Path) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
