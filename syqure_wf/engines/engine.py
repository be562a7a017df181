"""What every engine is (``Engine``: how to start one party of its MPC
framework so that it reaches its proxy, and what its program sees) and the
helpers the engines share."""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError


@dataclass
class Launch:
    """A party's process: its command line and its extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # what it touches besides its engine's install and the party's files (run/confine.py):
    # the transport, where it runs in the party's process
    reads: list = field(default_factory=list)
    writes: list = field(default_factory=list)
    ports: list = field(default_factory=list)

    def describe(self) -> str:
        return shlex.join(self.argv)


class Engine:
    name = "?"
    default_port_base = 20000
    same_port_base = False  # the party listens and connects on one base (Sequre)
    # what its program reads from a clean environment besides the run's own
    # variables (names; "X_*" for a prefix): run/confine.py
    environment: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ()  # what its runtime writes besides its output (run/confine.py)
    in_process = False  # can speak the file transport in its own process (transport: files)

    def default_framing(self, spec: dict) -> str:
        return "stream"

    def framing_problem(self, spec: dict, framing: str) -> str | None:
        return None

    def convention(self, spec: dict) -> str:
        return "sequre"

    def config_problem(self, cfg) -> str | None:
        return None

    def shared_port_base(self, spec: dict) -> bool:
        """Every party uses the same ports (a build with its port base compiled in)."""
        return False

    def needs_isolation(self, cfg) -> bool:
        """Parties of this engine on one host need a network namespace each."""
        return False

    def open_listener(self, spec: dict) -> str | None:
        """Where the party's own listener binds when that is not loopback and
        cannot be changed (compiled in): only a network namespace of its own
        keeps other processes from connecting to it first. None: loopback or nothing."""
        return None

    def needs_build(self, spec: dict) -> bool:
        return False

    def settled(self, spec: dict) -> dict:
        """``spec`` with what the engine learns from this machine, so that
        the resolved configuration holds it for every party."""
        return spec

    def launch(self, cfg, pid: int) -> Launch:
        raise NotImplementedError

    def reads(self, cfg, launch: Launch) -> list:
        """The files and folders its program reads besides its input: its
        program or build and the engine's install (run/confine.py; a folder
        in a 1-tuple is listed, not read). Here: the command (Python's
        install, for Python) and the files its command line names."""
        exe = which(launch.argv[0])
        named = [Path(a) for a in launch.argv[1:] if os.path.isfile(a)]
        if exe and os.path.realpath(exe) == os.path.realpath(sys.executable):
            return [*python_install(), *named]
        return [Path(exe).resolve(), *named] if exe else named

    def exit_reason(self, code: int, log_tail: list[str]) -> str | None:
        """What an exit code of its program means, where the engine knows better than 'failed'."""
        return None


def placeholders(cfg, pid: int) -> dict[str, str]:
    p = cfg.party(pid)
    program = cfg.engine.get("program")
    return {"pid": str(pid), "parties": str(cfg.n), "run_id": cfg.run_id,
            "input": str(p.input or ""), "output": str(p.output), "workdir": str(cfg.workdir),
            "program": str(cfg.resolve(program)) if program else "",
            "base_port": str(p.base_port), "party_base_port": str(p.party_base_port),
            "python": sys.executable}


def fill(template: str, values: dict[str, str], where: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown placeholder {exc} (known: "
                          f"{', '.join('{' + k + '}' for k in values)})") from None


def common_env(cfg, pid: int) -> dict[str, str]:
    p = cfg.party(pid)
    return {"SYQURE_PID": str(pid), "SYQURE_PARTIES": str(cfg.n), "SYQURE_RUN_ID": cfg.run_id,
            "SYQURE_INPUT": str(p.input or ""), "SYQURE_OUTPUT": str(p.output),
            "SYQURE_WORKDIR": str(cfg.workdir),
            **{k: str(v) for k, v in (cfg.engine.get("env") or {}).items()}, **p.env}


def program_problem(cfg, suffixes: tuple[str, ...]) -> str | None:
    program = cfg.engine.get("program")
    if not program:
        return f"engine.program: the {cfg.engine['name']} engine needs a program"
    path = cfg.resolve(program)
    if not path.is_file():
        return f"engine.program: no such file {path}"
    if suffixes and path.suffix not in suffixes:
        return f"engine.program: {path.name} is not a {' or '.join(suffixes)} program"
    return None


def python_install() -> list[Path]:
    """This Python and what it imports from: its prefixes and every folder of
    its path, but not the folder it was started in."""
    here = os.getcwd()
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.realpath(sys.executable)}
    places.update(p for p in sys.path if p and os.path.abspath(p) != here)
    return sorted(Path(p).resolve() for p in places if os.path.exists(p))


def which(executable: str) -> str | None:
    from shutil import which as _which

    return _which(executable) if os.sep not in executable else (executable if os.access(executable, os.X_OK) else None)
