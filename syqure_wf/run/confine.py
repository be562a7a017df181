"""What a party's program may see of this machine: ``confine:`` in the run
configuration (a site's agent sets it for every submitted run; off by
default for runs started by hand).

``env: clean``
    The program starts with PATH, HOME, LANG, LC_*, TZ, what its engine
    reads (``Engine.environment``) and the run's own variables (SYQURE_*,
    ``engine.env``, the party's ``env``): nothing else of the process that
    started it (an agent's settings and tokens stay with the agent).
``files: landlock | auto | none``
    Linux Landlock, put on the program between fork and exec: it reads only
    its program or build, its input, its engine's install (Python and its
    packages, Codon) and the system's libraries; it writes only its output
    folder (its proxy, not the program, writes the message folder); it binds
    and connects only its own TCP ports; it signals only its own processes.
    ``auto``: where the kernel has Landlock, else none (said why);
    ``landlock``: no start without it.
``sockets: seccomp | auto | none`` (by default ``auto`` when files are confined)
    A seccomp filter: TCP sockets and connected Unix pairs only, no pathname
    or abstract Unix socket, no UDP, no raw socket (run/sockets.py).
    ``auto``: where seccomp can be had, else none (said why); ``seccomp``:
    no start without it.

Landlock does not hide that a path exists (``stat`` still answers), only
what is in it. ``view`` (which paths, which ports) is pure; ``Landlock``
builds the kernel's ruleset in the parent, and the child only restricts
itself (two system calls) before exec.
"""
from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .sockets import Filter, seccomp_problem

BASE_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TZ")
# The system's part of an engine's install: libraries, locales, time zones,
# name resolution, TLS settings, and the devices every program opens.
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/ld.so.conf",
               "/etc/ld.so.conf.d", "/etc/localtime", "/etc/hosts", "/etc/host.conf", "/etc/nsswitch.conf",
               "/etc/resolv.conf", "/etc/gai.conf", "/etc/ssl", "/sys/devices/system/cpu",
               "/proc/stat", "/proc/cpuinfo", "/proc/meminfo",  # and the program's own /proc/self
               "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
SYSTEM_WRITE = ("/dev/null",)
FILES = ("none", "auto", "landlock")


@dataclass(frozen=True)
class Settings:
    env: str = "inherit"  # inherit | clean
    files: str = "none"  # none | auto | landlock
    sockets: str = "none"  # none | auto | seccomp

    @classmethod
    def of(cls, cfg) -> "Settings":
        return cls.given(cfg.raw.get("confine") or {})

    @classmethod
    def given(cls, given: dict) -> "Settings":
        files = given.get("files", "none")
        return cls(env=given.get("env", "inherit"), files=files,
                   sockets=given.get("sockets", "none" if files == "none" else "auto"))


def required_problem(given: dict) -> str | None:
    """What this machine lacks of a ``confine:`` that demands a wall
    (files: landlock, sockets: seccomp), or None."""
    s = Settings.given(given or {})
    if s.files == "landlock" and landlock_abi()[1]:
        return f"confine.files: landlock, but {landlock_abi()[1]}"
    if s.sockets == "seccomp" and seccomp_problem():
        return f"confine.sockets: seccomp, but {seccomp_problem()}"
    return None


@dataclass(frozen=True)
class View:
    """What the program may touch."""
    read: tuple[Path, ...]  # files and folders it reads (and runs)
    write: tuple[Path, ...]  # folders (and files) it writes
    ports: tuple[int, ...] = ()  # TCP ports it binds or connects to
    listed: tuple[Path, ...] = ()  # folders whose names (not contents) it reads: where Python imports from

    def describe(self) -> str:
        own = [str(p) for p in self.write if str(p) not in SYSTEM_WRITE]
        reads = [str(p) for p in self.read if str(p) not in SYSTEM_READ]
        return (f"writes only {', '.join(own) or 'nothing'}; TCP only on ports "
                f"{', '.join(map(str, self.ports)) or 'none'}; signals only its own processes; reads only "
                f"the system's libraries and {', '.join(reads)}")


# -- pure: what the program gets

def matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def clean_env(environ: dict, inherit: tuple[str, ...], own: dict) -> dict:
    """The program's environment: of ``environ`` only the base names and the
    engine's (``inherit``), then the run's own variables ``own``."""
    kept = {k: v for k, v in environ.items() if matches(k, BASE_ENV) or matches(k, inherit)}
    return {**kept, **own}


def view(engine_reads, inputs, outputs, ports) -> View:
    """The program's view: it reads ``engine_reads`` (program or build, the
    engine's install; a folder in a ``(folder,)`` tuple is only listed), its
    ``inputs`` and the system's libraries; it writes the folders of its
    ``outputs``; it uses ``ports``."""
    listed = {Path(p[0]) for p in engine_reads if isinstance(p, tuple)}
    write = {Path(p) for p in outputs}
    read = {Path(p) for p in (*engine_reads, *inputs, *SYSTEM_READ) if not isinstance(p, tuple)} - write
    return View(tuple(sorted(read)), tuple(sorted(write | {Path(p) for p in SYSTEM_WRITE})),
                tuple(sorted(set(ports))), tuple(sorted(listed - read - write)))


def party_view(cfg, pid: int, engine, launch) -> View:
    """The view of party ``pid``'s program in run ``cfg``."""
    p = cfg.party(pid)
    inputs = ([p.input] if p.input else []) + [f for f in p.reads if f.is_file()]
    outputs = [p.output.parent] + ([p.results] if p.results else [])
    # without proxies (transport tcp) it reaches every party's ports
    pids = [] if cfg.in_process else [pid] if cfg.transport != "tcp" else [q.pid for q in cfg.parties]
    ports = set().union(launch.ports, *(cfg.ports(q) for q in pids))
    return view(engine.reads(cfg, launch), inputs, [*outputs, *engine.scratch, *launch.writes], ports)


# -- the kernel's part

@functools.lru_cache(maxsize=1)
def landlock_abi() -> tuple[int, str | None]:
    """(Landlock ABI version, None) here, or (0, why not)."""
    try:
        import py_landlock
    except ImportError:
        return 0, "py-landlock is not installed (python3 -m pip install py-landlock)"
    try:
        return int(py_landlock.get_abi_version()), None
    except py_landlock.LandlockError as exc:
        return 0, f"Landlock: {exc}"


class Landlock:
    """A ruleset for ``view``, built here; ``restrict`` (in the child, after
    fork) puts it on the child for good."""

    def __init__(self, v: View):
        from py_landlock import (AccessFs, AccessNet, NetPortAttr, PathBeneathAttr, RulesetAttr, add_rule,
                                 create_ruleset, restrict_self)
        from py_landlock.abi import get_supported_fs, get_supported_net, get_supported_scope
        from py_landlock.prctl import set_no_new_privs

        self._calls = (set_no_new_privs, restrict_self, add_rule)  # looked up here: after fork, only calls

        abi, why = landlock_abi()
        if why:
            raise ConfigError(f"confine.files: {why}")
        self.abi = abi
        handled = get_supported_fs(abi)
        self._own_proc = PathBeneathAttr()  # the child's /proc/self (its maps, status), known only there
        self._own_proc.allowed_access = AccessFs.READ_FILE | AccessFs.READ_DIR
        attr = RulesetAttr()
        attr.handled_access_fs = handled
        attr.handled_access_net = get_supported_net(abi)
        attr.scoped = get_supported_scope(abi)  # signals and abstract sockets stay in the domain
        self.fd = create_ruleset(attr)
        file_read = AccessFs.READ_FILE | AccessFs.EXECUTE
        read = file_read | AccessFs.READ_DIR
        write = (read | AccessFs.WRITE_FILE | AccessFs.MAKE_REG | AccessFs.MAKE_DIR | AccessFs.REMOVE_FILE
                 | AccessFs.REFER | AccessFs.REMOVE_DIR | AccessFs.TRUNCATE) & handled
        file_write = (file_read | AccessFs.WRITE_FILE | AccessFs.TRUNCATE) & handled
        try:
            rules = ((v.read, read, file_read), (v.write, write, file_write), (v.listed, AccessFs.READ_DIR, 0))
            for paths, on_dir, on_file in rules:
                for path in paths:
                    try:
                        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                    except OSError:
                        continue  # not on this machine
                    try:
                        rule = PathBeneathAttr()
                        rule.allowed_access = on_dir if os.path.isdir(path) else on_file
                        if not rule.allowed_access:
                            continue
                        rule.parent_fd = fd
                        add_rule(self.fd, rule)
                    finally:
                        os.close(fd)
            if attr.handled_access_net:
                for port in v.ports:
                    rule = NetPortAttr()
                    rule.allowed_access = AccessNet.BIND_TCP | AccessNet.CONNECT_TCP
                    rule.port = port
                    add_rule(self.fd, rule)
        except BaseException:
            self.close()
            raise

    def restrict(self) -> None:
        no_new_privs, restrict_self, add_rule = self._calls
        own = os.open("/proc/self", os.O_PATH | os.O_CLOEXEC)
        try:
            self._own_proc.parent_fd = own
            add_rule(self.fd, self._own_proc)
        finally:
            os.close(own)
        no_new_privs()
        restrict_self(self.fd, None)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class Confinement:
    """How one party's program is started: its environment, what runs in the
    child before exec, and what to say of it: ``line`` for the party's log,
    ``summary`` (no local paths) for its status record."""
    env: dict
    landlock: Landlock | None = None
    sockets: Filter | None = None
    line: str = ""
    summary: str = ""
    before: list = field(default_factory=list)  # more preexec steps (the death signal)

    def preexec(self) -> None:
        for step in self.before:
            step()
        if self.landlock is not None:
            self.landlock.restrict()
        if self.sockets is not None:
            self.sockets.load()

    def close(self) -> None:
        if self.landlock is not None:
            self.landlock.close()
        if self.sockets is not None:
            self.sockets.close()


def confine(cfg, pid: int, engine, launch, environ: dict) -> Confinement:
    """Party ``pid``'s program of ``cfg``, as ``confine:`` says."""
    s = Settings.of(cfg)
    env = (clean_env(environ, engine.environment, launch.env) if s.env == "clean"
           else {**environ, **launch.env})
    said_env = "clean environment" if s.env == "clean" else "the environment of its runner"
    problem = required_problem(cfg.raw.get("confine") or {})
    if problem:  # config.py said so already, unless the machine changed since
        raise ConfigError(f"{cfg.where}: {problem}")
    net = network_line(cfg)
    sockets, said_sockets = sockets_wall(s)
    abi, why = landlock_abi()
    if s.files == "none" or why:
        none = f"files not confined ({'confine.files: none' if s.files == 'none' else why})"
        return Confinement(env, None, sockets, f"{none}; {said_sockets}; {net}; {said_env}",
                           f"{none}; {said_sockets}; {net}; {said_env}")
    v = party_view(cfg, pid, engine, launch)
    return Confinement(env, Landlock(v), sockets, f"Landlock ABI {abi}: {v.describe()}; {said_sockets}; {net}; "
                       f"{said_env}", f"Landlock ABI {abi}; {said_sockets}; {net}; {said_env}")


def sockets_wall(s: Settings) -> tuple[Filter | None, str]:
    """The socket filter ``s`` asks for and this machine gives, and what to say of it."""
    if s.sockets == "none":
        return None, "sockets not filtered (confine.sockets: none)"
    if seccomp_problem():
        return None, f"sockets not filtered ({seccomp_problem()})"
    return Filter(), "seccomp: TCP sockets only"


def network_line(cfg) -> str:
    """Whose network the party is in: its own namespace, or the host's and why."""
    from .isolation import inside, netns_problem

    if inside():
        return "network: a namespace of its own (only its loopback)"
    problem = netns_problem()
    return f"network: the host's ({'isolation: ' + cfg.isolation if problem is None else problem})"


# what a Codon build reads of the environment besides the base: its own settings
BUILD_ENV = ("CODON_*", "CC", "CXX", "LIBRARY_PATH", "LD_LIBRARY_PATH")


def install_roots(command: str) -> list[Path]:
    """The folders a compiler ``command`` runs from: the root above its bin/,
    and the same for each executable a wrapper script names (Codon's
    install may sit elsewhere, behind a script that sets its path)."""
    found, seen = [], set()

    def add(exe: str) -> None:
        real = Path(os.path.realpath(exe))
        if real in seen or not real.is_file():
            return
        seen.add(real)
        found.append(real.parent.parent if real.parent.name == "bin" else real.parent)
        try:
            with open(real, "rb") as f:
                head = f.read(65536)
        except OSError:
            return
        if head.startswith(b"#!"):
            for word in head.decode(errors="replace").replace("=", " ").split():
                word = word.strip("'\";")
                if word.startswith("/") and os.access(word, os.X_OK) and not word.startswith(("/usr", "/bin")):
                    add(word)

    add(command)
    return found


def build_jail(cfg):
    """How run ``cfg``'s Codon build runs (``engines.build.build``'s ``confine``)."""
    given, own = cfg.raw.get("confine") or {}, cfg.engine.get("env") or {}
    return lambda compiler, reads, out: build_confinement(given, compiler, reads, out, dict(os.environ), own)


def build_confinement(cfg_confine: dict, compiler: str, reads, out: Path, environ: dict, own: dict
                      ) -> Confinement | None:
    """A Codon build of a submitted program, as its run's ``confine:`` says
    (None: unconfined, a run started by hand): a clean environment (its
    temporary files in ``out``), Landlock's view (reads the compiler's
    install, ``reads`` and the system; writes only ``out``; no TCP port) and
    the socket filter."""
    s = Settings.given(cfg_confine or {})
    if s.files == "none" and s.sockets == "none" and s.env != "clean":
        return None
    problem = required_problem(cfg_confine)
    if problem:
        raise ConfigError(problem)
    env = clean_env(environ, BUILD_ENV, {**own, "TMPDIR": str(out)})
    sockets, said_sockets = sockets_wall(s)
    landlock = None
    if s.files != "none" and not landlock_abi()[1]:
        landlock = Landlock(view([*install_roots(compiler), *reads], [], [out], []))
    files = f"Landlock ABI {landlock_abi()[0]}" if landlock else "files not confined"
    return Confinement(env, landlock, sockets, f"{files}; {said_sockets}; clean environment")


def probe() -> dict:
    """Confine a child Python here as a party would be: {} when it could
    write its output folder, could not read a file beside it and could open
    no UDP socket; else, per wall ("landlock", "seccomp"), what went wrong."""
    import subprocess
    import sys
    import tempfile

    from ..engines.engine import python_install

    code = ("import socket, sys\ntry:\n    open(sys.argv[1]).read()\nexcept PermissionError:\n    pass\n"
            "else:\n    sys.exit('landlock: it read a file outside its view')\n"
            "try:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nexcept PermissionError:\n    pass\n"
            "else:\n    sys.exit('seccomp: it opened a UDP socket')\nopen(sys.argv[2], 'w').write('ok')\n")
    with tempfile.TemporaryDirectory(prefix="syqure-wf-confine-") as tmp:
        other, out = Path(tmp, "other"), Path(tmp, "out")
        other.write_text("not for the party")
        out.mkdir()
        if landlock_abi()[1] or seccomp_problem():
            return {}  # nothing to try: the caller says what is missing
        try:
            jail = Confinement({}, Landlock(view(python_install(), [], [out], [])), Filter())
        except (ConfigError, OSError) as exc:
            return {"landlock": f"no ruleset: {exc}"}
        try:
            done = subprocess.run([sys.executable, "-c", code, str(other), str(out / "result")],
                                  preexec_fn=jail.preexec, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL, cwd=tmp)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"landlock": f"a confined Python did not start: {exc}"}
        finally:
            jail.close()
        if done.returncode != 0 or not (out / "result").is_file():
            said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            wall = "seccomp" if said.startswith("seccomp") else "landlock"
            return {wall: f"a confined Python failed: {said}"}
    return {}
