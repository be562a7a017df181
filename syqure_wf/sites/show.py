"""``syqure-wf show RUN``: what a site's operator reads before ``approve``.
Everything a run would do at this site, from the manifest bytes the agent
decided on: the submitter and every co-party, the engine and its settings,
each program file with its hash (and its source), the input this site would
supply, who gets its result, the expiry, the digest and what the policy
says of it. Every string from the manifest is shown escaped (peertext)."""
from __future__ import annotations

import time

from ..errors import ConfigError
from ..keys.known_sites import KnownSites
from ..keys.sitekey import Refused, published
from . import lifecycle as lc
from . import policy as policies
from .board import Board, read_record
from .manifest import MAX_BYTES, Manifest, ManifestError, parse
from .operator import run_folder
from .peertext import shown

# the co-party table: one (heading, field) per column
PARTY_COLUMNS = (("PID", "pid"), ("SITE", "email"), ("ROLE", "role"), ("PEER", "peer"), ("INPUT", "input"),
                 ("KEY", "key"))


def show(board: Board, run_id: str, submitter: str | None = None, policy_path: str | None = None,
         source: bool = False) -> list[str]:
    folder = run_folder(board, run_id, submitter)
    record = read_record(folder / "record.json")
    if record is None:
        raise ConfigError(f"the record of run {run_id} at {board.me} cannot be read")
    data = board.read(folder / "manifest.json", MAX_BYTES)
    if data is None:
        why = f", {record.get('code')}: {shown(record.get('reason') or '')}" if record.get("code") else ""
        raise ConfigError(f"run {run_id} at {board.me}: no manifest kept ({record.get('state')}{why})")
    try:
        m = parse(data)
    except ManifestError as exc:
        raise ConfigError(f"run {run_id} at {board.me}: its kept manifest cannot be read: {exc}") from None
    policy = _policy(board, policy_path)
    try:
        known = KnownSites(board.folder, board.me).read()
    except Refused:
        known = {}
    return lines(m, record, policy, board.me, time.time(), source,
                 key_cells(board, sorted({*m.parties, m.submitter}), policy), known)


def _policy(board: Board, given: str | None) -> policies.Policy | None:
    """The policy named, or the one this site's agent runs with."""
    if not given:
        given = (read_record(board.private / "agent.json") or {}).get("policy")
        if not isinstance(given, str):
            return None
    return policies.load(given)


def key_cells(board: Board, parties: list[str], policy: policies.Policy | None) -> dict[str, str]:
    """Each party's site key as published, and whether the run would use it
    (the policy's pin, else the key this site saw first: keys/sitekey.py)."""
    try:
        known = KnownSites(board.folder, board.me).read()
    except Refused as exc:
        known, broken = {}, str(exc)
    else:
        broken = ""
    cells = {}
    for email in parties:
        try:
            key = published(board.folder, email)
        except Refused as exc:
            cells[email] = f"unusable: {shown(str(exc))}"
            continue
        if key is None:
            cells[email] = "none published yet"
            continue
        pin, seen = (policy.fingerprint(email) if policy else None), known.get(email)
        if email == board.me:
            trust = "this site's"
        elif pin:
            trust = "pinned by the policy" if pin == key.fingerprint else f"REFUSED: the policy pins {pin}"
        elif seen:
            trust = "as first seen" if seen == key.fingerprint else f"REFUSED: changed, first seen {seen}"
        else:
            trust = "NEW: never met here, 'approve' pins it" + (f" (known sites unreadable: {broken})" if broken else "")
        cells[email] = f"{key.fingerprint} ({trust})"
    return cells


def lines(m: Manifest, record: dict, policy: policies.Policy | None, me: str, now: float,
          source: bool = False, keys: dict[str, str] | None = None, known: dict | None = None) -> list[str]:
    """The run as its operator reads it (pure: everything given; ``known``:
    the keys pinned here, which with the keys the run was decided on tell a
    key never met)."""
    pid = m.pid_of(me)
    engine = m.config["engine"]
    ended = record.get("state") in lc.ENDED and record.get("code")
    out = [f"run {shown(m.run_id)} from {shown(m.submitter)}, at {me}: {record.get('state')}"
           + (f" ({record.get('code')}: {shown(record.get('reason') or '')})" if ended else ""),
           f"digest   {m.digest}",
           f"policy   {_verdict(m, policy, me, now, record, known)}",
           f"expires  {_when(float(record.get('expires') or m.expires), now)}",
           f"engine   {engine['name']}" + (f" ({engine['flavour']})" if engine.get("flavour") else "")
           + f", framing {m.config.get('framing')}, tls {'true' if engine.get('tls') else 'false'}",
           f"args     {' '.join(_arg(a) for a in engine.get('args') or []) or '(none)'}",
           f"parties  {len(m.parties)}"]
    out += ["  " + row for row in _table(party_rows(m, policy, me, keys or {}))]
    out.append("roles    the digest covers which site holds which pid and each holder's input name")
    if policy is not None:
        out.append(f"limits   an input combined with at least {policy.min_other_holders} other input(s) "
                   f"(min_other_holders); at most {policy.max_reads} runs read one input per "
                   f"{policy.reads_period / 3600:g} h (max_reads, reads_period)")
    name = m.inputs.get(pid)
    if name is None:
        out.append("input    none from this site")
    else:
        local = policy.inputs.get(name) if policy else None
        out.append(f"input    '{name}' -> " + (str(local) if local else "not mapped here"))
    out.append(f"result   {_readers(m, policy)}")
    out.append(f"program  {shown(m.entry)} and {len(m.files) - 1} file(s) it imports" if len(m.files) > 1
               else f"program  {shown(m.entry)}")
    for fname, body in sorted(m.files.items(), key=lambda kv: (kv[0] != m.entry, kv[0])):
        import hashlib

        out.append(f"  sha256:{hashlib.sha256(body).hexdigest()}  {len(body):>8} bytes  {shown(fname)}")
    if source:
        for fname, body in sorted(m.files.items(), key=lambda kv: (kv[0] != m.entry, kv[0])):
            out.append(f"--- {shown(fname)}")
            out += shown(body.decode("utf-8", errors="replace"), keep_lines=True).splitlines()
    return out


def party_rows(m: Manifest, policy: policies.Policy | None, me: str, keys: dict[str, str] | None = None) -> list[dict]:
    """One row per party (PARTY_COLUMNS' fields): who it is to this run and to this site."""
    rows = []
    for pid, email in enumerate(m.parties):
        role = "this site" if email == me else "submitter" if email == m.submitter else ""
        if email == me:
            peer = "-"
        elif policy is None:
            peer = "?"
        else:
            peer = "yes" if policy.computes_with(email) else "no: not among the peers"
        rows.append({"pid": str(pid), "email": shown(email), "role": role or "-", "peer": peer,
                     "input": shown(m.inputs[pid]) if pid in m.inputs else "-", "key": (keys or {}).get(email, "?")})
    if m.submitter not in m.parties:
        rows.append({"pid": "-", "email": shown(m.submitter), "role": "submitter (no party)", "peer": "-",
                     "input": "-", "key": (keys or {}).get(m.submitter, "-")})
    return rows


def _table(rows: list[dict]) -> list[str]:
    cells = [[h for h, _ in PARTY_COLUMNS]] + [[row[f] for _, f in PARTY_COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(PARTY_COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def _verdict(m: Manifest, policy: policies.Policy | None, me: str, now: float, record: dict | None = None,
             known: dict | None = None) -> str:
    if policy is None:
        return "unknown (no agent has run here: give --policy)"
    keys = (record or {}).get("keys")  # the keys the run was decided on
    d = policies.decide(m, policy, me, now, keys if isinstance(keys, dict) else None, known or {})
    if d.state == lc.ACCEPTED:
        return "approves this digest"
    if d.state == lc.PENDING:
        return f"asks an operator ({d.code})" + (f": {d.why}" if d.why else ": the digest is not listed")
    return f"rejects it ({d.code}): {d.reason}"


def _readers(m: Manifest, policy: policies.Policy | None) -> str:
    if policy is None:
        return "as this site's policy says (share_results)"
    readers = {"submitter": [m.submitter], "parties": m.readers(), "none": []}[policy.share_results]
    return (f"this site's result goes to {', '.join(map(shown, readers))}" if readers
            else "this site's result stays here") + f" (share_results: {policy.share_results})"


def _arg(a: str) -> str:
    import shlex

    return shown(shlex.quote(a))


def _when(t: float, now: float) -> str:
    left = t - now
    rel = f"in {left / 3600:.1f} h" if left > 0 else "passed"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) + f" ({rel})"
