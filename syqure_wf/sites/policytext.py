"""A policy in plain words, for ``syqure-wf policy check``: what the agent
will do with it, one sentence per key, and what looks wrong (an input file
that is not there). Pure but for looking at the input files."""
from __future__ import annotations

from .notify import EVENTS
from .policy import Policy


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:g} {unit[:-1] if n == 1 else unit}"
    return f"{seconds:g} seconds"


def _list(items) -> str:
    items = list(items)
    return "anyone" if "*" in items else ", ".join(items) if items else "nobody"


def words(p: Policy) -> tuple[list[str], list[str]]:
    """(sentences, warnings)."""
    out, warn = [], []
    out.append(f"Considers runs submitted by {_list(p.submitters)}; every other submitter's runs are never read.")
    if p.peers is None:
        out.append("Computes only with the submitters (no peers: given).")
    else:
        pins = [f"{e} (key {f})" if f else f"{e} (its key as first seen)" for e, f in p.peers.items() if e != "*"]
        out.append("Computes with " + ("any site" if "*" in p.peers else "nobody else") * (not pins)
                   + ", ".join(pins) + (" and any other site" if "*" in p.peers and pins else "") + ".")
    listed = f"{len(p.programs)} run digest(s)" if p.programs else "no run digest"
    other = "waits for an operator (syqure-wf desk, or approve)" if p.unlisted_programs == "ask" else "is rejected"
    out.append(f"Runs {listed} without asking; any other run {other}, as does a run with a site outside "
               f"its peers or fewer than {p.min_parties} parties.")
    out.append(f"Never joins a run of more than {p.max_parties} parties; a party of this site runs at most "
               f"{_span(p.max_seconds)}; a run waits at most {_span(p.max_expiry)} for every site.")
    for name, path in sorted(p.inputs.items()):
        only = p.input_programs.get(name)
        out.append(f"Input '{name}' is {path}" + (f", read only by {', '.join(only)}" if only else "") + ".")
        if not path.is_file():
            warn.append(f"input '{name}': {path} is not a file here (a run needing it is rejected, code input)")
    if not p.inputs:
        out.append("Supplies no input to any run.")
    out.append({"submitter": "Its result goes to the run's submitter.", "parties": "Its result goes to every party.",
                "none": "Its result stays at this site."}[p.share_results])
    if p.notify:
        how = [f"runs {p.notify['command']!r}" if p.notify.get("command") else "",
               f"tells {len(p.notify.get('apprise') or [])} Apprise URL(s)" if p.notify.get("apprise") else ""]
        out.append(f"When a run is {' or '.join(p.notify.get('when', EVENTS))}, it "
                   + " and ".join(h for h in how if h) + ".")
    else:
        out.append("Tells nobody when a run waits (notify: not given): look at syqure-wf desk or runs --pending.")
    return out, warn
