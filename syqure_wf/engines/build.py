"""Compile once, run many: a Sequre program built by Codon into a cached binary.

Compiling a Sequre program costs a minute or more and close to a gigabyte
per compile; every party of a run, and every
rerun, runs the same binary instead. The cache key covers everything that
changes the binary: the program and the files it imports from its folder
(``program.py``), the Sequre stdlib and plugin library (the flavour), the Codon
version and the build flags. A lock per key lets parties that start
together on one machine wait for one compile instead of racing three.

    {cache}/{program stem}-{key}/{program stem}    the binary
    {cache}/{program stem}-{key}/build.log         what Codon said
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, SyqureError
from ..files.private import check_owned
from .program import imports

DEFAULT_FLAGS = ("-release", "--disable-opt=core-pythonic-list-addition-opt")
BUILD_TIMEOUT = 1800.0  # seconds: a full compile takes one to three minutes on 2 cores
_ERROR = re.compile(r"^(?P<where>[^\s:][^:\n]*:\d+:\d+(?:-\d+)?): error: (?P<what>.*)$", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cache_dir(spec: dict | None = None) -> Path:
    """Where binaries are kept: ``engine.cache``, $SYQURE_WF_CACHE, or ~/.cache/syqure-wf/builds."""
    given = (spec or {}).get("cache") or os.environ.get("SYQURE_WF_CACHE")
    if given:
        return Path(os.path.expanduser(given))
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(root) / "syqure-wf" / "builds"


@dataclass(frozen=True)
class Toolchain:
    """The Codon and Sequre a program is built with."""

    codon: str  # the command, as found on PATH or configured
    version: str
    stdlib: Path | None  # Sequre's stdlib folder (its sequre/ package inside)
    flavour: str  # fork | upstream | unknown

    def fingerprint(self) -> dict:
        return {"codon": os.path.realpath(self.codon), "codon_file": _file_digest(self.codon),
                "version": self.version, "flavour": self.flavour,
                "stdlib": _tree_digest(self.stdlib) if self.stdlib else None,
                "plugin": _file_digest(self.stdlib.parent / "build" / "libsequre.so") if self.stdlib else None}


def codon_command(spec: dict) -> str:
    return spec.get("codon") or "codon"


@functools.lru_cache(maxsize=16)
def _toolchain(codon: str, codon_path: str) -> Toolchain:
    found = shutil.which(codon) if os.sep not in codon else (codon if os.access(codon, os.X_OK) else None)
    if not found:
        raise ConfigError(
            f"engine: {codon} was not found: put Codon with the Sequre plugin on PATH (for the test "
            "install: PATH=~/.cache/syqure-wf/sequre/fork/bin:$PATH), or set engine.codon")
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"engine.codon: {found} --version failed: {exc}") from None
    version = (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"
    stdlib = _find_stdlib(Path(found), codon_path)
    return Toolchain(found, version, stdlib, _flavour(stdlib))


def toolchain(spec: dict, env: dict | None = None) -> Toolchain:
    env = {**os.environ, **(env or {})}
    return _toolchain(codon_command(spec), env.get("CODON_PATH", ""))


def _find_stdlib(codon: Path, codon_path: str) -> Path | None:
    """Sequre's stdlib: on CODON_PATH, in a plugin folder holding bin/codon
    (the layout the tests' Sequre install makes), or in Codon's plugins."""
    candidates = [Path(p) for p in codon_path.split(os.pathsep) if p]
    candidates.append(codon.parent.parent / "stdlib")
    candidates.append(Path(os.path.realpath(codon)).parent.parent / "lib" / "codon" / "plugins" / "sequre" / "stdlib")
    for folder in candidates:
        if (folder / "sequre" / "__init__.codon").is_file():
            return folder
    return None


def _flavour(stdlib: Path | None) -> str:
    """fork (the seed's build: Sequre frames from byte 0) or upstream (raw
    seed bytes first, TLS on by default): what the wire carries."""
    if stdlib is None:
        return "unknown"
    constants = stdlib / "sequre" / "constants.codon"
    text = constants.read_text(errors="replace") if constants.is_file() else ""
    return "upstream" if "SEQURE_USE_TLS" in text else "fork"


def _file_digest(path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.codon")):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def build_flags(spec: dict) -> list[str]:
    flags = spec.get("build_flags")
    return shlex.split(flags) if isinstance(flags, str) else list(flags or DEFAULT_FLAGS)


def build_key(program: Path, tc: Toolchain, flags: list[str]) -> str:
    sources = {str(p.relative_to(program.parent)) if p.is_relative_to(program.parent) else str(p):
               _file_digest(p) for p in imports(program)}
    blob = json.dumps({"sources": sources, "toolchain": tc.fingerprint(), "flags": flags}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Build:
    binary: Path
    compiled: bool  # False: taken from the cache
    seconds: float
    toolchain: Toolchain


def binary_path(spec: dict, program: Path, env: dict | None = None) -> Path:
    """Where the binary of this program, toolchain and flags lives (built or not)."""
    tc = toolchain(spec, env)
    key = build_key(program, tc, build_flags(spec))
    return cache_dir(spec) / f"{program.stem}-{key}" / program.stem


def build(spec: dict, program: Path, env: dict | None = None, *, timeout: float = BUILD_TIMEOUT,
          say=None, confine=None) -> Build:
    """The binary of ``program``: from the cache, or compiled now (once, even
    when several processes ask at the same moment). ``confine(compiler,
    reads, out)``, where given, says how Codon runs: its environment and what
    runs in the child before exec (run/confine.py: ``build_jail``)."""
    from filelock import FileLock, Timeout

    started = time.monotonic()
    tc = toolchain(spec, env)
    flags = build_flags(spec)
    target = binary_path(spec, program, env)
    folder = target.parent
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_owned(folder.parent, "engine.cache")  # another user's cache could hand us their binary
    if _ready(target):
        return Build(target, False, time.monotonic() - started, tc)
    lock = FileLock(str(folder) + ".lock")
    try:
        with lock.acquire(timeout=timeout):
            if _ready(target):  # another process built it while we waited
                return Build(target, False, time.monotonic() - started, tc)
            if say:
                say(f"compiling {program.name} with Codon {tc.version} ({tc.flavour} Sequre, "
                    f"{' '.join(flags)}): once for this machine, cached in {folder}")
            _compile(tc, program, flags, folder, timeout, env, confine)
    except Timeout:
        raise SyqureError(f"engine.program: waited {timeout:g} s for another process compiling "
                          f"{program.name} (lock {lock.lock_file})") from None
    return Build(target, True, time.monotonic() - started, tc)


def build_run(cfg, say=None, confine=None) -> Build:
    """Build (or take from the cache) the program of run configuration ``cfg``;
    its parties then run that binary (``cfg.with_engine(binary=...)``)."""
    return build(cfg.engine, cfg.resolve(cfg.engine["program"]), cfg.engine.get("env"), say=say, confine=confine)


def _ready(binary: Path) -> bool:
    if not (binary.is_file() and os.access(binary, os.X_OK) and (binary.parent / "build.log").is_file()):
        return False
    for path in (binary.parent, binary):  # ours alone, or it is no build of ours
        check_owned(path, "cached build")
    return True


def _compile(tc: Toolchain, program: Path, flags: list[str], folder: Path, timeout: float,
             env: dict | None, confine=None) -> None:
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    log = tmp / "build.log"
    cmd = [tc.codon, "build", *flags, "-plugin", "sequre", "-o", str(tmp / program.stem), program.name]
    reads = [program.parent, *([tc.stdlib, tc.stdlib.parent] if tc.stdlib else [])]
    jail = confine(tc.codon, reads, tmp) if confine else None
    try:
        with open(log, "wb") as out:
            out.write((shlex.join(cmd) + "\n").encode())
            if jail:
                out.write(f"syqure-wf: the build runs confined: {jail.line}\n".encode())
            out.flush()
            proc = subprocess.run(cmd, cwd=program.parent, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout,
                                  env=jail.env if jail else {**os.environ, **(env or {})},
                                  preexec_fn=jail.preexec if jail else None)
    except subprocess.TimeoutExpired:
        raise SyqureError(f"engine.program: compiling {program.name} took over {timeout:g} s (log {log})") from None
    except OSError as exc:
        raise SyqureError(f"engine.program: cannot run {tc.codon}: {exc.strerror}") from None
    except subprocess.SubprocessError as exc:  # the confinement failed in the child
        raise SyqureError(f"engine.program: cannot confine the build: {exc}") from None
    finally:
        if jail:
            jail.close()
    if proc.returncode != 0 or not (tmp / program.stem).is_file():
        text = _ANSI.sub("", log.read_text(errors="replace"))
        kept = folder.with_name(folder.name + ".failed.log")
        shutil.copyfile(log, kept)
        shutil.rmtree(tmp, ignore_errors=True)
        raise SyqureError(f"engine.program: {program.name} does not compile: {compile_error(text, program)} "
                          f"(log {kept})")
    os.chmod(tmp / program.stem, 0o700)  # whatever the umask: no one else may change what parties run
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(tmp, folder)


def compile_error(text: str, program: Path) -> str:
    """Codon's first error as ``file:line:col: message``, the path made short."""
    m = _ERROR.search(text)
    if not m:
        lines = [ln.strip() for ln in text.splitlines()[1:] if ln.strip()]
        return lines[-1] if lines else "codon failed without a message"
    where = m.group("where")
    prefix = str(program.parent) + os.sep
    return f"{where[len(prefix):] if where.startswith(prefix) else where}: {m.group('what').strip()}"
