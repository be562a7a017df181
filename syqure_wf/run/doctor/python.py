"""The Python side: syqure-wf's requirements at their bounds, and MPyC's runtime."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from .check import Check, fail, ok


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
