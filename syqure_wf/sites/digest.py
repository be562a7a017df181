"""What a site approves: one digest over a submitted run's program and
every setting that changes what the run computes or reveals (PROTOCOL.md,
"The digest"). A policy lists it, ``approve`` approves it, ``syqure-wf
digest``, ``runs``, ``show``, the states and the audit log name runs by it.

It covers the program and every file it imports (each by its SHA-256), the
engine and its flavour, ``args``, the framing, ``tls``, the number of
parties and the roles: which site holds which pid and which input name
each holder supplies. The approved allele counts with ``--holders 1``,
with MPyC's ``-T 0``, among two parties, with its parties permuted (whose
results would solve for one site's counts) or with a site's input switched
to another mapped file is another run, with another digest.
"""
from __future__ import annotations

import hashlib
import json

FORMAT = "syqure-wf run 3"


def covered(config: dict, entry: str, files: dict[str, bytes | str], roles: list[str],
            inputs: dict[int, str] | None = None) -> dict:
    """What the digest is taken over. ``config``: a manifest's (``engine``
    with name, flavour, args, tls; ``framing``); ``files``: name to bytes,
    or to the hex SHA-256 already taken; ``roles``: the parties' emails in
    pid order; ``inputs``: pid -> the input name that party supplies."""
    engine = config["engine"]
    return {"format": FORMAT, "engine": engine["name"], "flavour": engine.get("flavour"),
            "args": list(engine.get("args") or []), "framing": config.get("framing"),
            "tls": bool(engine.get("tls", False)), "parties": len(roles), "entry": entry,
            "roles": list(roles), "inputs": {str(pid): name for pid, name in sorted((inputs or {}).items())},
            "files": {name: data if isinstance(data, str) else hashlib.sha256(data).hexdigest()
                      for name, data in sorted(files.items())}}


def canonical(doc: dict) -> bytes:
    """The bytes hashed: JSON, keys sorted, no spaces, ASCII only."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def run_digest(config: dict, entry: str, files: dict[str, bytes | str], roles: list[str],
               inputs: dict[int, str] | None = None) -> str:
    return "sha256:" + hashlib.sha256(canonical(covered(config, entry, files, roles, inputs))).hexdigest()
