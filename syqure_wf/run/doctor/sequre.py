"""Sequre: Codon, the Sequre stdlib and its flavour, the plugin (loaded by
compiling and running a one-line program, cached per toolchain), libgmp."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from ...errors import ConfigError
from .check import Check, fail, info, last_line, ok

CODON_SERIES = "0.18"


def sequre_checks(spec: dict, needed: bool) -> list[Check]:
    """Codon, the Sequre stdlib and its flavour, the plugin, libgmp.
    ``needed``: the configuration runs Sequre (else the lines are information)."""
    from ...engines.build import codon_command, toolchain
    from ...engines.sequre import gmp_library

    def miss(name, detail, fix):
        return fail(name, detail, fix) if needed else info(name, f"{detail} (only Sequre runs need it)")

    if spec.get("command"):
        return [info("codon", f"not used: engine.command runs {spec['command'].split()[0]}")]
    try:
        tc = toolchain(spec, spec.get("env"))
    except ConfigError:
        return [miss("codon", f"{codon_command(spec)} was not found",
                     "install Codon 0.18 with the Sequre plugin and put its codon first on PATH, "
                     "or set engine.codon (docs/sequre.md)")]
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
    if needed:
        out.append(listener_check())
    return out


def listener_check() -> Check:
    """Sequre's lower pid listens on every interface, compiled in (SECURITY.md):
    a network namespace per party is what keeps others from connecting first."""
    from ..isolation import netns_problem

    what = "a party's own listener binds 0.0.0.0 (compiled into Sequre)"
    problem = netns_problem()
    if problem is None:
        return ok("sequre listener", f"{what}; a network namespace per party can be made here (isolation: netns): "
                                     "then only its proxy reaches it")
    return info("sequre listener", f"{what}, and no network namespace can be made here ({problem}): any process "
                                   "of this machine or its network may connect to it before its proxy")


def plugin_problem(tc, spec: dict) -> str | None:
    """Compile and run a one-line program with the plugin; a success is kept
    per toolchain, so a second doctor costs nothing."""
    from ...engines.build import cache_dir

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
                return "does not load: " + last_line(built.stderr or built.stdout, built.returncode)
            ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            return f"{Path(str(exc.cmd[0])).name} did not finish within {exc.timeout:.0f} s"
        if ran.returncode != 0 or "syqure-wf doctor" not in ran.stdout:
            return "a program built with it does not run: " + last_line(ran.stderr, ran.returncode)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(json.dumps(tc.fingerprint()))
    return None
