"""The run manifest: what a submitting site proposes, as one JSON file in
its own datasite (PROTOCOL.md, "Across organisations").

It carries the run id and the party order (pid -> email), the engine and
the run settings a peer may choose (framing and tls always explicit), the
program and every file it imports (bytes and SHA-256 each, and the
program's digest over them), the input name each party supplies (never a
path), the submitter and an expiry.

A manifest comes from a peer: ``parse`` trusts nothing in it. Every name
that becomes a path is checked, every file's hash and the digest are taken
again, the settings are limited to those that cannot name a path, a
command or an environment on the site that runs them, and the run's digest
(``digest.py``: what a site approves) is taken here, never read. Any error
while parsing (a file nested too deep included) is a ManifestError.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..engines.mpyc import TLS_MEANS_NOTHING, tls_problem
from ..engines.program import digest, program_files
from ..errors import ConfigError, SyqureError
from ..files import peer_json as records
from ..transport.protocol.names import check_id
from .digest import run_digest

FORMAT = "syqure-wf manifest 2"
MAX_RUN_ID = 100  # a run's channels are named {run_id}.{16 hex} (board.channel_id): within 128
MAX_BYTES = 8 << 20  # one file under SyftBox's 10 MB limit
ENGINES = ("mpyc", "sequre")  # a program a site can approve by its digest; command is any command
PEER_ENGINE_KEYS = ("name", "program", "args", "tls", "flavour")
PEER_KEYS = ("engine", "framing", "timeouts", "max_message")
# each site's own: where things are on its machine, how it isolates, what it trusts
LOCAL_KEYS = ("workdir", "data_dir", "layout", "syftbox", "host", "isolation", "poll_ms", "ports")
_INPUT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_EMAIL = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,63}@[A-Za-z0-9-][A-Za-z0-9.-]{0,252}$")
_FILE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(SyqureError):
    """A manifest that no site should run; ``code`` says why, for machines."""

    def __init__(self, message: str, code: str = "bad_manifest") -> None:
        super().__init__(message)
        self.code = code


def check_email(value, what: str = "email") -> str:
    if not isinstance(value, str) or not _EMAIL.match(value) or ".." in value:
        raise ManifestError(f"{what} {value!r} is not allowed (a SyftBox email, no '/' or '..')")
    return value


def check_input_name(value, what: str = "input name") -> str:
    if not isinstance(value, str) or not _INPUT.match(value) or ".." in value:
        raise ManifestError(f"{what} {value!r} is not allowed: a name (letters, digits, '.', '_', '-'), "
                            "never a path", "bad_input_name")
    return value


def check_file_name(value) -> str:
    parts = PurePosixPath(value).parts if isinstance(value, str) else ()
    if not parts or not all(_FILE_PART.match(p) for p in parts) or ".." in value or "\\" in value:
        raise ManifestError(f"program file {value!r} is not allowed: a relative name without '..'")
    return value


@dataclass
class Manifest:
    run_id: str
    submitter: str
    parties: list[str]  # by pid
    created: float
    expires: float
    config: dict  # the peer-chosen settings (PEER_KEYS)
    entry: str  # the program's file name
    program_digest: str  # sha256:… over the program and its imports
    files: dict[str, bytes]
    inputs: dict[int, str]  # pid -> input name
    sha256: str = ""  # of the manifest file's bytes: what a decision is about
    digest: str = ""  # the run's (digest.py): what a policy lists and an operator approves

    @property
    def key(self) -> tuple[str, str]:
        """A run is its submitter's run id: (submitter, run id)."""
        return self.submitter, self.run_id

    @property
    def engine(self) -> str:
        return self.config["engine"]["name"]

    def pid_of(self, email: str) -> int | None:
        return self.parties.index(email) if email in self.parties else None

    def readers(self) -> list[str]:
        return sorted(set(self.parties) | {self.submitter})


# -- at the submitter: from a run configuration

def core_of(config: dict, parties: list[str], submitter: str, entry: str, files: dict[str, bytes],
            inputs: dict[int, str]) -> dict:
    """What makes a submission the same submission: its run id is derived from it."""
    return {"submitter": submitter, "parties": parties, "config": config,
            "program": {"entry": entry, "digest": digest(entry, files)},
            "inputs": {str(k): v for k, v in sorted(inputs.items())}}


def from_config(raw: dict, where: str, base_dir: Path, to: list[str], submitter: str,
                expires_in: float, now: float | None = None) -> dict:
    """The manifest (a JSON-ready dict) of run configuration ``raw``."""
    check_email(submitter, "--email")
    parties = list(to) or [p.get("email") for p in _entries(raw)]
    if not parties or not all(parties):
        raise ConfigError(f"{where}: the parties' emails: give --to EMAIL,EMAIL,... (pid order) "
                          "or an email for every party in parties:")
    for email in parties:
        check_email(email, "party email")
    if len(set(parties)) != len(parties):
        raise ConfigError(f"{where}: a site appears twice among the parties: {', '.join(parties)}")
    entries = _entries(raw)
    if len(entries) not in (0, len(parties)) and not isinstance(raw.get("parties"), int):
        raise ConfigError(f"{where}: parties: {len(entries)} in the configuration, {len(parties)} in --to")
    if isinstance(raw.get("parties"), int) and raw["parties"] != len(parties):
        raise ConfigError(f"{where}: parties: {raw['parties']} in the configuration, {len(parties)} in --to")
    config, entry, files = submitted(raw, where, base_dir)
    inputs = {}
    for pid, name in (raw.get("inputs") or {}).items():
        try:
            inputs[int(pid)] = check_input_name(name, f"inputs.{pid}")
        except ManifestError as exc:
            raise ConfigError(f"{where}: {exc} (each site maps it to a file in its policy)") from None
        if not 0 <= int(pid) < len(parties):
            raise ConfigError(f"{where}: inputs: there is no party {pid} (pids are 0..{len(parties) - 1})")
    core = core_of(config, parties, submitter, entry, files, inputs)
    now = time.time() if now is None else now
    # a fresh id for every submission (a rerun never meets an old outcome); the same id only when named
    run_id = raw.get("run_id") or "job-{}-{}-{}".format(
        hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:8],
        time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), secrets.token_hex(3))
    try:
        check_run_id(run_id)
    except ManifestError as exc:
        raise ConfigError(f"{where}: run_id: {exc}") from None
    return {"format": FORMAT, "run_id": run_id, "created": round(now, 3), "expires": round(now + expires_in, 3),
            **core, "program": {**core["program"], "files": [
                {"name": n, "sha256": hashlib.sha256(b).hexdigest(), "data": base64.b64encode(b).decode()}
                for n, b in sorted(files.items())]}}


def submitted(raw: dict, where: str, base_dir: Path) -> tuple[dict, str, dict[str, bytes]]:
    """The settings a run configuration submits (``config`` of its manifest,
    framing and tls made explicit), its program's entry and files."""
    from ..engines import get_engine

    if "encryption" in raw:
        raise ConfigError(f"{where}: encryption: a submitted run is always sealed by the sites' keys: it cannot "
                          "be turned off and needs no secret (each site may pin its peers' keys in its policy)")
    for key in ("module", "outputs", "inputs_dir"):
        if key in raw:
            raise ConfigError(f"{where}: {key}: cannot be submitted (each site's agent runs the program "
                              "with its own files)")
    if raw.get("transport", "files") != "files":
        raise ConfigError(f"{where}: transport: a submitted run goes through the sites' SyftBox folders "
                          "(transport: files)")
    engine = dict(raw.get("engine") or {"name": "mpyc"})
    if engine.get("name") not in ENGINES:
        raise ConfigError(f"{where}: engine.name: {engine.get('name')} cannot be submitted: a site approves "
                          f"a program by its digest ({' or '.join(ENGINES)})")
    local = sorted(set(engine) - set(PEER_ENGINE_KEYS))
    if local:
        raise ConfigError(f"{where}: engine.{local[0]}: each site's own setting (the engine: of its "
                          "policy), not the submitter's")
    try:
        check_args(engine.get("args", []))
    except ManifestError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not engine.get("program"):
        raise ConfigError(f"{where}: engine.program: a submitted run needs its program")
    program = Path(base_dir, engine["program"]).resolve()
    if not program.is_file():
        raise ConfigError(f"{where}: engine.program: no such file {program}")
    files = program_files(program)
    for name in files:
        check_file_name(name)
    engine["program"] = program.name
    kind = get_engine(engine["name"])
    if engine["name"] == "sequre":  # what the sites approve is what the submitter's build speaks
        engine["flavour"] = kind.flavour(engine)
        if engine["flavour"] not in ("fork", "upstream"):
            raise ConfigError(f"{where}: engine.flavour: say fork or upstream (no Codon here tells which)")
        engine["tls"] = kind.tls(engine)
    if engine["name"] == "mpyc" and tls_problem(engine):
        raise ConfigError(f"{where}: {tls_problem(engine)}")
    engine["tls"] = bool(engine.get("tls", False))
    config = {"engine": engine, **{k: raw[k] for k in PEER_KEYS if k in raw and k != "engine"}}
    config["framing"] = raw.get("framing") or kind.default_framing(engine)
    return config, program.name, files


def check_args(args) -> list[str]:
    """A submitted run's args: short strings, no path, no placeholder (a site
    approves the very arguments its party gets)."""
    if not isinstance(args, list) or not all(isinstance(a, str) and "/" not in a and ".." not in a
                                             and len(a) < 256 for a in args) or len(args) > 64:
        raise ManifestError("engine.args must be at most 64 short strings without '/' or '..'")
    for a in args:
        if "{" in a or "}" in a:
            raise ManifestError(f"engine.args: {a!r}: no placeholders in a submitted run (a site approves "
                                "the very arguments its party gets)", "args")
    return args


def check_run_id(value) -> str:
    try:
        check_id(value, "run id")
    except ValueError as exc:
        raise ManifestError(str(exc)) from None
    if len(value) > MAX_RUN_ID:
        raise ManifestError(f"run id {value[:20]!r}…: at most {MAX_RUN_ID} characters")
    return value


def _entries(raw: dict) -> list[dict]:
    parties = raw.get("parties")
    return sorted(parties, key=lambda e: e.get("pid", 0)) if isinstance(parties, list) else []


def same_submission(a: dict, b: dict) -> bool:
    """Two manifests of one submission (their times aside)."""
    drop = ("created", "expires")
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def encode(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, indent=1).encode() + b"\n"


# -- at a site: from a peer's bytes

_TOP = {"format", "run_id", "created", "expires", "submitter", "parties", "config", "program", "inputs"}


def parse(data: bytes) -> Manifest:
    """A peer's manifest, every field checked (ManifestError otherwise, for
    any error at all: a peer's file never raises anything else)."""
    try:
        return _parse(data)
    except ManifestError:
        raise
    except RecursionError:
        raise ManifestError("manifest nested too deep") from None
    except MemoryError:
        raise ManifestError("manifest too large to read") from None
    except Exception as exc:  # a shape no check foresaw: refused all the same
        raise ManifestError(f"manifest unreadable ({type(exc).__name__})") from None


def _parse(data: bytes) -> Manifest:
    if len(data) > MAX_BYTES:
        raise ManifestError(f"manifest larger than {MAX_BYTES} bytes")
    try:
        m = records.loads(data)
    except records.NotFinite:
        raise ManifestError(f"manifest: {records.NOT_FINITE}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not JSON: {exc}", "incomplete") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ManifestError(f"not a syqure-wf manifest (format {m.get('format') if isinstance(m, dict) else None!r})")
    unknown = sorted(set(m) - _TOP)
    missing = sorted(_TOP - set(m))
    if unknown or missing:
        raise ManifestError(f"manifest: {'unknown field ' + unknown[0] if unknown else 'missing ' + missing[0]}")
    run_id = check_run_id(m["run_id"])
    submitter = check_email(m["submitter"], "submitter")
    if not isinstance(m["parties"], list) or not 2 <= len(m["parties"]) <= 64:
        raise ManifestError("manifest: parties must list 2 to 64 emails")
    parties = [check_email(e, "party email") for e in m["parties"]]
    if len(set(parties)) != len(parties):
        raise ManifestError("manifest: a site appears twice among the parties")
    for key in ("created", "expires"):
        if not records.finite(m[key]):
            raise ManifestError(f"manifest: {key} must be a time in seconds")
    config = _check_config(m["config"])
    entry, files, claimed = _check_program(m["program"])
    if config["engine"].get("program") != entry:
        raise ManifestError("manifest: engine.program is not the program's entry")
    inputs = {}
    if not isinstance(m["inputs"], dict):
        raise ManifestError("manifest: inputs must map pids to input names")
    for pid, name in m["inputs"].items():
        if not (isinstance(pid, str) and pid.isdigit() and int(pid) < len(parties)):
            raise ManifestError(f"manifest: inputs: no party {pid!r}")
        inputs[int(pid)] = check_input_name(name)
    return Manifest(run_id=run_id, submitter=submitter, parties=parties, created=float(m["created"]),
                    expires=float(m["expires"]), config=config, entry=entry, program_digest=claimed, files=files,
                    inputs=inputs, sha256="sha256:" + hashlib.sha256(data).hexdigest(),
                    digest=run_digest(config, entry, files, parties, inputs))


def _check_config(config) -> dict:
    if not isinstance(config, dict):
        raise ManifestError("manifest: config must be a mapping")
    unknown = sorted(set(config) - set(PEER_KEYS))
    if unknown:
        raise ManifestError(f"manifest: config.{unknown[0]} is not a setting a submitter may choose")
    engine = config.get("engine")
    if not isinstance(engine, dict) or engine.get("name") not in ENGINES:
        raise ManifestError(f"manifest: engine must be {' or '.join(ENGINES)}", "engine")
    unknown = sorted(set(engine) - set(PEER_ENGINE_KEYS))
    if unknown:
        raise ManifestError(f"manifest: engine.{unknown[0]} is each site's own setting, not the submitter's")
    check_args(engine.get("args", []))
    if not isinstance(engine.get("tls"), bool) or config.get("framing") not in ("stream", "sequre"):
        raise ManifestError("manifest: engine.tls (true or false) and framing (stream or sequre) must be given")
    if engine["name"] == "mpyc" and engine["tls"]:
        raise ManifestError(f"manifest: {TLS_MEANS_NOTHING}")
    if ("flavour" in engine) != (engine["name"] == "sequre"):
        raise ManifestError("manifest: engine.flavour (fork or upstream) is given for Sequre, and only for it")
    timeouts = config.get("timeouts", {})
    if not isinstance(timeouts, dict) or not all(
            k in ("connect", "start", "peer", "stall", "drain", "run", "sync")
            and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 7 * 86400
            for k, v in timeouts.items()):
        raise ManifestError("manifest: timeouts must be known bounds in seconds")
    if "max_message" in config and not (isinstance(config["max_message"], int)
                                        and 1024 <= config["max_message"] <= 1 << 30):
        raise ManifestError("manifest: max_message out of range")
    if "flavour" in engine and engine["flavour"] not in ("fork", "upstream"):
        raise ManifestError("manifest: engine.flavour must be fork or upstream")
    return config


def _check_program(program) -> tuple[str, dict[str, bytes], str]:
    if not isinstance(program, dict) or set(program) != {"entry", "digest", "files"}:
        raise ManifestError("manifest: program must hold entry, digest and files")
    entry = check_file_name(program["entry"])
    if not isinstance(program["files"], list) or not program["files"]:
        raise ManifestError("manifest: program.files must list the program's files")
    files: dict[str, bytes] = {}
    for f in program["files"]:
        if not isinstance(f, dict) or set(f) != {"name", "sha256", "data"}:
            raise ManifestError("manifest: each program file holds name, sha256 and data")
        name = check_file_name(f["name"])
        if name in files:
            raise ManifestError(f"manifest: program file {name} appears twice")
        try:
            data = base64.b64decode(f["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ManifestError(f"manifest: program file {name}: data is not base64") from None
        if not (isinstance(f["sha256"], str) and _HEX64.match(f["sha256"])) \
                or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise ManifestError(f"manifest: program file {name}: its bytes do not match its sha256", "digest")
        files[name] = data
    if entry not in files:
        raise ManifestError(f"manifest: the entry {entry} is not among the program's files")
    if digest(entry, files) != program["digest"]:
        raise ManifestError("manifest: the program's digest does not match its files", "digest")
    return entry, files, program["digest"]
