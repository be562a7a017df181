"""The run configuration: a YAML file checked against a schema, then
resolved into what each party needs (ports, folders, engine, timeouts),
frozen: a step that settles something more (the isolation, a built
binary, a party's input given on the command line) makes a new one with
``replace``, so that no call order changes what another step sees.

Every problem becomes a ConfigError whose message names the file and key,
before any process starts.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import ConfigError
from ..transport.protocol.defaults import SYFTBOX_TIMEOUTS, TIMEOUTS
from ..transport.protocol.framing import DEFAULT_MAX_MESSAGE
from ..transport.protocol.names import STATUS, check_id
from ..transport.protocol.ports import max_offset, ports_used
from . import module
from .isolation import check_port_overlap
from .schema import absolute as _abs
from .schema import check_schema, read_yaml



def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass(frozen=True)
class Timeouts:
    """Seconds (docs/configuration.md); the transport's bounds default to its one
    table (protocol/defaults.py), ``run`` (the whole party, 0: none) is this layer's."""
    connect: float = TIMEOUTS["connect"]
    start: float = TIMEOUTS["start"]
    peer: float = TIMEOUTS["peer"]
    stall: float = TIMEOUTS["stall"]
    drain: float = TIMEOUTS["drain"]
    run: float = 0.0
    sync: float = TIMEOUTS["sync"]  # layout syftbox: this site's sync may be down this long


def status_dir(root: Path) -> Path:
    """The status folder of a party's run folder (syftbox) or of the shared
    data folder (every party's record in one)."""
    return Path(root) / STATUS


def frozen(mapping: Mapping | None) -> Mapping:
    """A read-only view of a copy of ``mapping``."""
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class PartySpec:
    pid: int
    name: str
    host: str
    email: str | None
    base_port: int  # the proxy listens here (+ channel offset)
    party_base_port: int  # the party listens here (+ offset for Sequre)
    input: Path | None
    output: Path
    folder: Path | None = None  # this party's SyftBox folder (layout syftbox)
    env: Mapping = field(default_factory=dict)  # this party's program only
    reads: tuple[Path, ...] = ()  # files its program reads besides its input (a module's named inputs)
    results: Path | None = None  # the folder its program writes its named outputs in (made before it starts)
    named_outputs: Mapping = field(default_factory=dict)  # name -> path; its result file lists them

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", frozen(self.env))
        object.__setattr__(self, "named_outputs", frozen(self.named_outputs))
        object.__setattr__(self, "reads", tuple(self.reads))


@dataclass(frozen=True)
class RunConfig:
    source: Path | None
    base_dir: Path
    run_id: str
    parties: tuple[PartySpec, ...]
    workdir: Path
    data_dir: Path
    layout: str
    framing: str
    convention: str
    engine: Mapping
    host: str = "127.0.0.1"
    transport: str = "files"
    isolation: str = "auto"  # none | netns | auto (netns where the engine needs it: isolation_for)
    poll_ms: float | None = None
    max_message: int = DEFAULT_MAX_MESSAGE
    timeouts: Timeouts = field(default_factory=Timeouts)
    syftbox: Mapping = field(default_factory=dict)
    raw: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("engine", "syftbox", "raw"):
            object.__setattr__(self, name, frozen(getattr(self, name)))
        object.__setattr__(self, "parties", tuple(self.parties))

    def with_engine(self, **settings) -> "RunConfig":
        """This configuration with these engine settings (``binary``...)."""
        return replace(self, engine={**self.engine, **settings})

    def with_party(self, pid: int, **fields) -> "RunConfig":
        """This configuration with party ``pid``'s ``fields`` (``input``, ``output``...)."""
        self.party(pid)
        return replace(self, parties=[replace(p, **fields) if p.pid == pid else p for p in self.parties])

    @property
    def in_process(self) -> bool:
        """``transport: files`` with an engine that can (MPyC): no proxy, nothing listens; not for a
        confined party of the ``syftbox`` layout (the site's private key would be in its view)."""
        from ..engines import get_engine

        if self.transport != "files" or not get_engine(self.engine["name"]).in_process:
            return False
        return self.layout != "syftbox" or not self.files_confined

    @property
    def files_confined(self) -> bool:
        """A party's program runs under Landlock (``confine.files``)."""
        from .confine import Settings, landlock_abi

        return (files := Settings.of(self).files) == "landlock" or (files == "auto" and landlock_abi()[1] is None)

    @property
    def proxied(self) -> bool:
        """Each party reaches the files through a proxy's TCP channels."""
        return self.transport != "tcp" and not self.in_process

    @property
    def n(self) -> int:
        return len(self.parties)

    def party(self, pid: int) -> PartySpec:
        for p in self.parties:
            if p.pid == pid:
                return p
        raise ConfigError(f"{self.where}: there is no party {pid} (pids are 0..{self.n - 1})")

    @property
    def where(self) -> str:
        return str(self.source) if self.source else "configuration"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    def syftbox_folder(self, pid: int) -> Path:
        p = self.party(pid)
        if p.folder:
            return p.folder
        return Path(os.path.expanduser(self.syftbox["folder"]))

    def run_folder(self, pid: int, viewer: int | None = None) -> Path:
        """Party ``pid``'s folder of this run, as seen from ``viewer``'s machine."""
        from ..transport.syftbox import APP, run_folder

        viewer = pid if viewer is None else viewer
        return run_folder(self.syftbox_folder(viewer), self.party(pid).email, self.run_id,
                          self.syftbox.get("app", APP), self.syftbox.get("run_dir"))

    def status_dir_of(self, pid: int, viewer: int | None = None) -> Path:
        """Where party ``pid`` keeps its status record, as seen from ``viewer``'s
        machine: its run folder's (syftbox), or the one shared data folder's."""
        return status_dir(self.run_folder(pid, viewer) if self.layout == "syftbox" else self.data_dir)

    def proxy_settings(self, pid: int):
        from ..transport.settings import ProxySettings
        from ..transport.sync_relay import relay_path
        from .isolation import inside

        p, t = self.party(pid), self.timeouts
        return ProxySettings(
            pid=pid, parties=self.n, data_dir=str(self.data_dir), base_port=p.base_port,
            party_base_port=p.party_base_port, framing=self.framing, convention=self.convention,
            host=self.host, poll_ms=self.poll_ms, max_message=self.max_message, run_id=self.run_id,
            connect_timeout=t.connect, start_timeout=t.start, peer_timeout=t.peer,
            stall_timeout=t.stall, drain_timeout=t.drain, sync_timeout=t.sync, layout=self.layout,
            syftbox=({"folder": str(self.syftbox_folder(pid)), "emails": [q.email for q in self.parties],
                      "max_file": self.syftbox.get("max_file_size"), "app": self.syftbox.get("app"),
                      "run_dir": self.syftbox.get("run_dir")}
                     if self.layout == "syftbox" else None),
            # in its own network namespace the SyftBox client is out of reach: its relay outside probes it
            sync_relay=str(relay_path(self.logs_dir, pid)) if inside() and self.layout == "syftbox" else None,
            secret=self.secret(), seal="off" if self.sealing_off else "auto",
            pinned=dict(self.encryption.get("pinned") or {}))

    @property
    def encryption(self) -> dict:
        enc = self.raw.get("encryption")
        return enc if isinstance(enc, dict) else {}

    @property
    def sealing_off(self) -> bool:
        """``encryption: off``: nothing sealed, not even by the sites' keys."""
        return self.raw.get("encryption") in (False, "off")

    def secret(self) -> bytes | None:
        """The run secret that seals every message, if the run has one."""
        from ..transport.seal import read_secret

        enc = self.encryption
        if enc.get("secret_file"):
            return read_secret(self.resolve(enc["secret_file"]))
        if enc.get("secret_env"):
            from ..transport.seal import secret_from

            value = os.environ.get(enc["secret_env"], "")
            if not value:
                raise ConfigError(f"{self.where}: encryption.secret_env: ${enc['secret_env']} is not set")
            return secret_from(value.encode(), f"${enc['secret_env']}")
        return None

    def resolved(self) -> dict:
        """This configuration with every default filled in and paths absolute:
        what the local runner hands to each party, so that all agree."""
        # a module is carried by the engine and each party's environment from here on
        out = {k: v for k, v in self.raw.items() if k not in ("parties", "inputs", "outputs", "encryption", "module")}
        enc = dict(self.encryption)
        if enc.get("secret_file"):
            enc["secret_file"] = str(self.resolve(enc["secret_file"]))  # the path, never the secret
        if enc or self.sealing_off:
            out["encryption"] = "off" if self.sealing_off else enc
        out.update(run_id=self.run_id, workdir=str(self.workdir), data_dir=str(self.data_dir),
                   layout=self.layout, framing=self.framing, host=self.host, transport=self.transport,
                   isolation=self.isolation, max_message=self.max_message,
                   timeouts=dict(vars(self.timeouts)))
        engine = dict(self.engine)
        for key in ("program", "binary", "cert_dir", "cache"):
            if engine.get(key):
                engine[key] = str(self.resolve(engine[key]))
        out["engine"] = engine
        out["parties"] = [{k: v for k, v in (("pid", p.pid), ("name", p.name), ("host", p.host),
                                              ("email", p.email), ("base_port", p.base_port),
                                              ("party_base_port", p.party_base_port),
                                              ("folder", str(p.folder) if p.folder else None),
                                              ("env", dict(p.env) or None),
                                              ("reads", [str(f) for f in p.reads] or None),
                                              ("results", str(p.results) if p.results else None),
                                              ("named_outputs", {k: str(v) for k, v in p.named_outputs.items()}
                                               or None)) if v is not None}
                          for p in self.parties]
        out["inputs"] = {str(p.pid): str(p.input) for p in self.parties if p.input}
        out["outputs"] = str(self.workdir / "outputs" / "party-{pid}.json") if not self.raw.get("outputs") \
            else str(self.resolve(self.raw["outputs"]))
        if self.poll_ms:
            out["poll_ms"] = self.poll_ms
        return out

    def resolve(self, path: str) -> Path:
        return _abs(path, self.base_dir)

    def ports(self, pid: int) -> set[int]:
        """Every TCP port party ``pid``'s proxy and program use."""
        p = self.party(pid)
        used = ports_used(pid, self.n, p.base_port, p.party_base_port, self.convention)
        return used["proxy"] | used["party"]


def load(path: str | os.PathLike | None = None, overrides: dict | None = None,
         base_dir: Path | None = None) -> RunConfig:
    """Read, check and resolve a run configuration (file and/or overrides)."""
    source = Path(path).resolve() if path else None
    raw = read_yaml(source) if source else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings")
    raw = {**raw, **(overrides or {})}
    where = str(source) if source else "configuration"
    check_schema(raw, where)
    return resolve(raw, source, base_dir or (source.parent if source else Path.cwd()))


def resolve(raw: dict, source: Path | None, base_dir: Path) -> RunConfig:
    where = str(source) if source else "configuration"
    from ..engines import get_engine

    mod = module.of_config(raw, base_dir)
    engine_raw = dict(raw.get("engine") or {"name": "mpyc"})
    if mod is not None:
        engine_raw = module.engine_of(mod, engine_raw)
    engine = get_engine(engine_raw["name"])
    run_id = raw.get("run_id") or new_run_id()
    try:
        check_id(run_id, "run id")
    except ValueError as exc:
        raise ConfigError(f"{where}: run_id: {exc}") from None

    entries = raw.get("parties", 3)
    if isinstance(entries, int):
        entries = [{"pid": p} for p in range(entries)]
    pids = [e["pid"] for e in entries]
    seen = set()
    for pid in pids:
        if pid in seen:
            raise ConfigError(f"{where}: parties: pid {pid} appears twice")
        seen.add(pid)
    n = len(entries)
    if n < 2:
        raise ConfigError(f"{where}: parties: an MPC run needs at least 2 parties, got {n}")
    if sorted(pids) != list(range(n)):
        raise ConfigError(f"{where}: parties: pids must be 0..{n - 1}, got {sorted(pids)}")

    engine_raw = engine.settled(engine_raw)
    framing = raw.get("framing") or engine.default_framing(engine_raw)
    problem = engine.framing_problem(engine_raw, framing)
    if problem:
        raise ConfigError(f"{where}: framing: {problem}")
    convention = engine.convention(engine_raw)

    ports = raw.get("ports") or {}
    base, stride = ports.get("base", engine.default_port_base), ports.get("stride", 1000)
    if max_offset(n) >= stride // 2:
        raise ConfigError(f"{where}: ports.stride: {stride} is too small for {n} parties "
                          f"(channel offsets reach {max_offset(n)}; use at least {2 * max_offset(n) + 2})")

    workdir = _abs(raw.get("workdir") or str(Path("runs") / run_id), base_dir)
    data_dir = _abs(raw["data_dir"], base_dir) if raw.get("data_dir") else workdir / "messages"
    outputs = raw.get("outputs") or str(workdir / "outputs" / "party-{pid}.json")
    inputs = {str(k): v for k, v in (raw.get("inputs") or {}).items()}  # YAML reads `1:` as an int
    for key in inputs:
        if int(key) not in seen:
            raise ConfigError(f"{where}: inputs: there is no party {key} (pids are 0..{n - 1})")

    parties = []
    for e in sorted(entries, key=lambda e: e["pid"]):
        pid = e["pid"]
        proxy_base = e.get("base_port", base if engine.shared_port_base(engine_raw) else base + stride * pid)
        party_base = e.get("party_base_port",
                           proxy_base if engine.same_port_base else proxy_base + stride // 2)
        given = inputs.get(str(pid))
        out = outputs.format(pid=pid, run_id=run_id, workdir=workdir)
        of_module = module.party_of_config(mod, raw, pid, workdir, base_dir, where) if mod else {}
        parties.append(PartySpec(
            pid=pid, name=e.get("name", f"party{pid}"), host=e.get("host", "localhost"),
            email=e.get("email"), base_port=proxy_base, party_base_port=party_base,
            input=_abs(given, base_dir) if given else None, output=_abs(out, base_dir),
            folder=_abs(e["folder"], base_dir) if e.get("folder") else None,
            env={**of_module.get("env", {}), **{k: str(v) for k, v in (e.get("env") or {}).items()}},
            reads=(*of_module.get("reads", ()), *(_abs(f, base_dir) for f in e.get("reads") or ())),
            results=_abs(e["results"], base_dir) if e.get("results") else of_module.get("results"),
            named_outputs={**of_module.get("named_outputs", {}),
                           **{k: _abs(v, base_dir) for k, v in (e.get("named_outputs") or {}).items()}}))
        highest = max(proxy_base, party_base) + max_offset(n)
        if highest > 65535:
            raise ConfigError(f"{where}: ports: party {pid} would need port {highest}, above 65535")

    layout = raw.get("layout", "shared")
    given_timeouts = {k: float(v) for k, v in (raw.get("timeouts") or {}).items()}
    if layout == "syftbox":
        # A peer whose own sync is down for minutes looks like a dead peer from
        # here: the bounds on peers outlast a few minutes' outage at one site.
        # A party that fails says so in its record and is named at once.
        given_timeouts = {**SYFTBOX_TIMEOUTS, **given_timeouts}
        box = raw.get("syftbox") or {}
        for e in entries:
            if not e.get("email"):
                raise ConfigError(f"{where}: parties: layout syftbox needs the email of party {e['pid']}")
            if not (e.get("folder") or box.get("folder")):
                raise ConfigError(f"{where}: syftbox.folder: layout syftbox needs this machine's SyftBox folder")
    timeouts = Timeouts(**given_timeouts)
    if layout != "syftbox" and isinstance(raw.get("encryption"), dict) and raw["encryption"].get("pinned"):
        raise ConfigError(f"{where}: encryption.pinned: sites' keys seal the syftbox layout only")
    cfg = RunConfig(
        source=source, base_dir=base_dir, run_id=run_id, parties=parties, workdir=workdir,
        data_dir=data_dir, layout=layout, framing=framing,
        convention=convention, engine=engine_raw, host=raw.get("host", "127.0.0.1"),
        transport=raw.get("transport", "files"), isolation=raw.get("isolation", "auto"),
        poll_ms=raw.get("poll_ms"), max_message=raw.get("max_message", DEFAULT_MAX_MESSAGE),
        timeouts=timeouts, syftbox=raw.get("syftbox") or {}, raw=raw)
    cfg = replace(cfg, convention="mpyc") if cfg.in_process else cfg  # no proxy to dial: MPyC's own roles
    check_port_overlap(cfg)
    from .limits import parse as memory_of

    memory_of(raw.get("memory"), f"{where}: memory")  # a bad size: said before any party starts
    if raw.get("confine"):  # a wall it demands and this machine lacks: said before any party starts
        from .confine import required_problem

        why = required_problem(raw["confine"])
        if why:
            raise ConfigError(f"{where}: {why}")
    problem = engine.config_problem(cfg)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return cfg


def check_inputs(cfg: RunConfig, pids) -> None:
    for pid in pids:
        p = cfg.party(pid)
        if p.input is not None and not p.input.is_file():
            raise ConfigError(f"{cfg.where}: inputs.{pid}: no such file {p.input}")
