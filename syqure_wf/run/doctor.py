"""``syqure-wf doctor``: can this machine run this configuration?

Each check gives one line: ``ok``, ``FAIL`` (with what to do) or ``--`` (not
needed here, shown for information). A configuration can run here when no
check fails. Checks run real things where that is cheap: the Sequre plugin
is loaded by compiling and running a one-line program (cached per toolchain),
a network namespace is made, a file is written into the message folder, the
SyftBox client and server and the SLURM controller are asked.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from ..errors import ConfigError

OK, FAIL, INFO = "ok", "FAIL", "--"
CODON_SERIES = "0.18"


@dataclass
class Check:
    name: str
    state: str  # OK, FAIL or INFO
    detail: str

    def line(self) -> str:
        return f"{self.state:<5} {self.name:<16} {self.detail}"


def ok(name, detail):
    return Check(name, OK, detail)


def fail(name, detail, fix):
    return Check(name, FAIL, f"{detail} -> {fix}")


def info(name, detail):
    return Check(name, INFO, detail)


# -- Python
def python_packages() -> Check:
    """Every requirement of the installed syqure-wf, at its pinned lower bound."""
    from packaging.requirements import Requirement

    try:
        requires = metadata.requires("syqure-wf") or []
    except metadata.PackageNotFoundError:
        return fail("python", "syqure-wf is not installed as a package", "python3 -m pip install -e .")
    found, problems = [], []
    for text in requires:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name} missing")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} (needs {req.specifier})")
        found.append(f"{req.name} {version}")
    py = ".".join(map(str, sys.version_info[:3]))
    if problems:
        return fail("python", f"Python {py}: {', '.join(problems)}", "python3 -m pip install -e .")
    return ok("python", f"Python {py}; {len(found)} packages at their bounds")


def mpyc_check() -> Check:
    """MPyC imports and sets up its runtime (a separate process: it reads argv)."""
    code = "import mpyc; from mpyc.runtime import mpc; print(mpyc.__version__)"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return fail("mpyc", "importing its runtime took over 120 s", "python3 -m pip install --force-reinstall mpyc")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        return fail("mpyc", last, "python3 -m pip install 'mpyc>=0.10'")
    version = (proc.stdout.strip().splitlines() or ["?"])[-1]  # MPyC logs to stdout first
    return ok("mpyc", f"MPyC {version}, its runtime starts")


# -- Sequre
def sequre_checks(spec: dict, needed: bool) -> list[Check]:
    """Codon, the Sequre stdlib and its flavour, the plugin, libgmp.
    ``needed``: the configuration runs Sequre (else the lines are information)."""
    from ..engines.build import codon_command, toolchain
    from ..engines.sequre import gmp_library

    def miss(name, detail, fix):
        return fail(name, detail, fix) if needed else info(name, f"{detail} (only Sequre runs need it)")

    if spec.get("command"):
        return [info("codon", f"not used: engine.command runs {spec['command'].split()[0]}")]
    try:
        tc = toolchain(spec, spec.get("env"))
    except ConfigError:
        return [miss("codon", f"{codon_command(spec)} was not found",
                     "install Codon 0.18 with the Sequre plugin and put its codon first on PATH, "
                     "or set engine.codon (README: Sequre)")]
    out = []
    version = tc.version.split()[-1] if tc.version else "?"
    if not version.startswith(CODON_SERIES):
        out.append(miss("codon", f"{tc.codon}: version {version}",
                        f"Sequre's plugin is built for Codon {CODON_SERIES}: install that version"))
    else:
        out.append(ok("codon", f"{tc.codon}: version {version}"))
    if tc.stdlib is None:
        out.append(miss("sequre stdlib", "no Sequre stdlib beside this codon or on CODON_PATH",
                        "install the Sequre plugin into Codon's plugins, or set CODON_PATH to its stdlib"))
        return out
    out.append(ok("sequre stdlib", f"{tc.stdlib} ({tc.flavour} flavour)"))
    problem = plugin_problem(tc, spec)
    if problem:
        out.append(miss("sequre plugin", problem,
                        "reinstall the Sequre plugin (libsequre.so beside the stdlib, plugin.toml) for this Codon"))
    else:
        out.append(ok("sequre plugin", "loads: a one-line program compiles with -plugin sequre and runs"))
    gmp = os.environ.get("SEQURE_GMP_PATH") or gmp_library()
    if gmp:
        out.append(ok("libgmp", gmp))
    elif tc.flavour == "fork":
        out.append(miss("libgmp", "not found (the fork dlopens it)", "apt-get install libgmp10 (or set SEQURE_GMP_PATH)"))
    else:
        out.append(info("libgmp", "not found (upstream Sequre does not load it)"))
    return out


def plugin_problem(tc, spec: dict) -> str | None:
    """Compile and run a one-line program with the plugin; a success is kept
    per toolchain, so a second doctor costs nothing."""
    from ..engines.build import cache_dir

    key = hashlib.sha256(json.dumps(tc.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]
    mark = cache_dir(spec) / "doctor" / f"plugin-{key}.ok"
    if mark.is_file():
        return None
    env = {**os.environ, **(spec.get("env") or {})}
    with tempfile.TemporaryDirectory(prefix="syqure-wf-doctor-") as tmp:
        program, binary = Path(tmp, "hello.codon"), Path(tmp, "hello")
        program.write_text('print("syqure-wf doctor")\n')
        try:
            built = subprocess.run([tc.codon, "build", "-plugin", "sequre", "-release", str(program), "-o", str(binary)],
                                   capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
            if built.returncode != 0:
                return "does not load: " + _last_line(built.stderr or built.stdout, built.returncode)
            ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            return f"{Path(str(exc.cmd[0])).name} did not finish within {exc.timeout:.0f} s"
        if ran.returncode != 0 or "syqure-wf doctor" not in ran.stdout:
            return "a program built with it does not run: " + _last_line(ran.stderr, ran.returncode)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(json.dumps(tc.fingerprint()))
    return None


def _last_line(text: str, code: int) -> str:
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {code}"


# -- isolation
def namespace_check(cfg, parties_here: int) -> Check:
    from .isolation import isolation_for
    from .isolation import netns_problem

    wanted = isolation_for(cfg, parties_here) if cfg else "none"
    problem = netns_problem()
    if wanted != "netns":
        why = "one party here" if cfg and parties_here == 1 else "the engine has no fixed ports"
        return info("namespaces", f"not needed ({why}); " + (f"unavailable: {problem}" if problem else "available"))
    if problem:
        return fail("namespaces", f"the run needs a network namespace per party, but {problem}",
                    "run as root (or with CAP_SYS_ADMIN), or one party per machine (syqure-wf party --pid N)")
    return ok("namespaces", f"{parties_here} parties here, a network namespace each can be made")


# -- what a submitted party sees
def confinement_check(cfg) -> Check:
    """Landlock here, tried on a real child; FAIL only where the run demands it."""
    from .confine import Settings, landlock_abi, probe

    files = Settings.of(cfg).files if cfg else "auto"
    abi, why = landlock_abi()
    problem = why or probe()
    if problem is None:
        return ok("confinement", f"Landlock ABI {abi}, tried on a child: it could not read a file beside "
                                 "its view and wrote its output folder (submitted parties run so)")
    if files == "landlock":
        return fail("confinement", problem, "run on a Linux kernel with Landlock (5.13+) and python3 -m pip "
                    "install py-landlock, or set confine.files: auto")
    return info("confinement", f"none here: {problem} (a submitted party then sees what its agent sees)")


# -- the message folder
def folder_check(name: str, folder: Path, poll_ms) -> Check:
    """Writable, and what the proxies will do on its file system: wait for
    change events, or poll (a network or FUSE file system, or poll_ms)."""
    from ..transport.watch import POLL, mount_of, remote_fs

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return fail(name, f"{existing} is not a folder", f"set data_dir to a folder ({folder})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".syqure-wf-doctor-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return fail(name, f"{existing} cannot be written: {exc.strerror}",
                    "choose a writable folder (data_dir, workdir or syftbox.folder) or fix its permissions")
    mount = mount_of(existing)
    if mount is None:
        return ok(name, f"{folder}: writable; its file system is unknown here: the run waits for change "
                        f"events and polls every {POLL * 1000:g} ms if a peer's message comes without one")
    where = f"{mount.fstype} ({mount.point})"
    if poll_ms:
        plan = f"the run polls every {poll_ms:g} ms (poll_ms)"
    elif remote_fs(mount.fstype):
        plan = f"other clients' writes raise no change events there, so the run polls every {POLL * 1000:g} ms"
    else:
        plan = (f"the run waits for change events, and polls every {POLL * 1000:g} ms if a peer's message "
                "comes without one")
    events = events_across(existing, mount) if remote_fs(mount.fstype) or other_openings(existing, mount) else ""
    return ok(name, f"{folder}: writable, on {where}: {plan}" + (f"; {events}" if events else ""))


def other_openings(path: Path, mount) -> list[Path]:
    """``path`` as seen through other mounts of the same export (same type
    and source, a root that holds it), as on another node of a cluster."""
    from ..transport.watch import mounts

    inside = os.path.join(mount.root, os.path.relpath(os.path.realpath(path), mount.point))
    found = []
    for m in mounts():
        if m.point == mount.point or (m.fstype, m.source) != (mount.fstype, mount.source):
            continue
        rel = os.path.relpath(inside, m.root)
        if not rel.startswith(".."):
            other = Path(os.path.normpath(os.path.join(m.point, rel)))
            if other.is_dir():
                found.append(other)
    return found


def events_across(folder: Path, mount) -> str:
    """Write a file in ``folder`` and say whether a change event for it comes
    through this opening and through another mount of the same export."""
    import asyncio

    others = other_openings(folder, mount)
    try:
        seen = asyncio.run(_events_seen(folder, [folder, *others[:1]]))
    except (ImportError, OSError) as exc:
        return f"could not tell whether change events cross mounts (no inotify here: {exc})"
    if not seen[0]:
        return "a write here raised no change event even through this mount: the run will find that out and poll"
    if not others:
        return (f"could not tell whether change events cross hosts or mounts of {mount.source} "
                "(no second mount of it here to compare)")
    if seen[1]:
        return (f"a write here raised a change event through {others[0]} (another mount of {mount.source}; "
                "other hosts may still see none)")
    return f"a write here raised no change event through {others[0]} (another mount of {mount.source})"


async def _events_seen(folder: Path, through: list[Path], wait: float = 0.5) -> list[bool]:
    import asyncio

    from ..transport.watch import WRITES, InotifyWatcher

    probe = Path(tempfile.mkdtemp(prefix=".syqure-wf-doctor-", dir=folder))
    watchers, seen = [], [False] * len(through)
    try:
        for i, where in enumerate(through):  # a watcher each: one inode seen twice is one watch in one watcher
            watcher = InotifyWatcher()
            watchers.append(watcher)
            watcher.subscribe(where / probe.name, lambda i=i: seen.__setitem__(i, True), WRITES)
            await watcher.start()
        (probe / "00000000.ready").touch()
        deadline = asyncio.get_running_loop().time() + wait
        while not all(seen) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for watcher in watchers:
            watcher.flush()
        return seen
    finally:
        for watcher in watchers:
            watcher.close()
        shutil.rmtree(probe, ignore_errors=True)


# -- SyftBox
def syftbox_checks(cfg, pids) -> list[Check]:
    from ..transport.sync_health import find_client, answers

    out = []
    for pid in pids:
        email, folder = cfg.party(pid).email, cfg.syftbox_folder(pid)
        label = f"syftbox {pid}" if len(pids) > 1 else "syftbox"
        if not folder.is_dir():
            out.append(fail(label, f"{folder} does not exist", "start the SyftBox client, or set syftbox.folder"))
            continue
        if not (folder / "datasites" / email).is_dir():
            out.append(fail(label, f"{folder}/datasites/{email} does not exist",
                            f"log the SyftBox client in as {email} with this folder"))
            continue
        client = find_client(folder)
        if client is None:
            out.append(fail(label, f"no SyftBox client runs for {folder}",
                            f"start it: syftbox client -e {email} -d {folder}"))
            continue
        if not answers(client.client_url):
            out.append(fail(label, f"the SyftBox client at {client.client_url} does not answer", "restart it"))
            continue
        if client.server_url and not answers(client.server_url):
            out.append(fail(label, f"the SyftBox server {client.server_url} does not answer",
                            "check the network, or wait for the server"))
            continue
        out.append(ok(label, f"{email}: client {client.client_url} up, server {client.server_url} answers"))
    return out


# -- SLURM
def profile_settings(profile: str) -> dict:
    path = Path(profile)
    if path.is_dir():
        path = path / "config.yaml"
    elif not path.exists():
        path = Path("profiles") / profile / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--profile: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return data if isinstance(data, dict) else {}


def slurm_checks(settings: dict) -> list[Check]:
    if settings.get("executor") != "slurm":
        return [info("slurm", f"not used (executor: {settings.get('executor', 'local')})")]
    out = []
    for tool in ("sbatch", "squeue"):
        found = shutil.which(tool)
        out.append(ok(tool, found) if found else
                   fail(tool, "not found on PATH", "run where SLURM's client tools are installed"))
    try:  # not imported: importing it runs `which` (and fails where there is none)
        out.append(ok("slurm executor", f"snakemake-executor-plugin-slurm "
                                        f"{metadata.version('snakemake-executor-plugin-slurm')}"))
    except metadata.PackageNotFoundError:
        out.append(fail("slurm executor", "snakemake-executor-plugin-slurm is missing",
                        "python3 -m pip install snakemake-executor-plugin-slurm"))
    # the executor's own default: sacct where it is installed, else squeue
    status = str(settings.get("slurm-status-command") or ("sacct" if shutil.which("sacct") else "squeue"))
    probe = {"squeue": ["squeue", "-h", "-o", "%i"], "sacct": ["sacct", "-n", "-X", "-o", "JobID"]}.get(status)
    if probe is None:
        out.append(info("status command", f"{status}: not checked"))
    elif not shutil.which(probe[0]):
        out.append(fail("status command", f"{status} not found on PATH",
                        "install it, or set slurm-status-command: squeue in the profile"))
    else:
        try:
            proc = subprocess.run(probe, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
            problem = None if proc.returncode == 0 else _last_line(proc.stderr, proc.returncode)
        except subprocess.TimeoutExpired:
            problem = "no answer within 20 s"
        fix = ("set slurm-status-command: squeue in the profile (no accounting database)" if status == "sacct"
               else "check that slurmctld runs and this host may reach it")
        out.append(fail("status command", f"{status}: {problem}", fix) if problem else
                   ok("status command", f"{status} answers"))
    return out


# -- all of it
def run_checks(config_path: str | None, pid: int | None, profile: str | None) -> list[Check]:
    from . import config as config_mod

    checks = [python_packages(), mpyc_check()]
    cfg, raw = None, {}
    if config_path:
        try:
            raw = config_mod.read_yaml(Path(config_path))
        except ConfigError as exc:
            return checks + [fail("config", str(exc), "fix the file")]
        engine = (raw.get("engine") or {}) if isinstance(raw, dict) else {}
    else:
        engine = {}
    sequre = isinstance(engine, dict) and engine.get("name") == "sequre"
    checks += sequre_checks(engine if sequre else {}, needed=sequre)
    if config_path:
        try:
            cfg = config_mod.load(config_path)
            if pid is not None:
                cfg.party(pid)
        except ConfigError as exc:
            checks.append(fail("config", str(exc), "fix the configuration (syqure-wf validate --config FILE)"))
            cfg = None
        else:
            checks.append(ok("config", f"{config_path}: {cfg.n} parties, engine {cfg.engine['name']}, "
                                       f"layout {cfg.layout}"))
    pids = [pid] if pid is not None else (list(range(cfg.n)) if cfg else [])
    checks.append(namespace_check(cfg, max(len(pids), 1)))
    checks.append(confinement_check(cfg))
    if cfg:
        if cfg.layout == "syftbox":
            for p in pids:
                if cfg.syftbox_folder(p).is_dir():  # else the SyftBox line says what to do
                    label = "message folder" + (f" {p}" if len(pids) > 1 else "")
                    checks.append(folder_check(label, cfg.run_folder(p), cfg.poll_ms))
            checks += syftbox_checks(cfg, pids)
        else:
            checks.append(folder_check("message folder", cfg.data_dir, cfg.poll_ms))
    if profile:
        checks += slurm_checks(profile_settings(profile))
    return checks
