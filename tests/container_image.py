"""The project's image for the container tests, built once per test session
by the project's own recipe (container/build.sh: a Debian base by mmdebstrap,
podman build on top; no registry). podman, mmdebstrap and runc are installed
from Debian on first use; where they cannot be, the tests skip with the reason."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, debian_packages, one_at_a_time

PACKAGES = ("podman", "mmdebstrap", "runc", "uidmap")
CONF = REPO / "container" / "containers.conf"
SHARED = Path(os.environ.get("SYQURE_SHARED", REPO.parent / "shared")) / "sequre"
_built: dict[str, str] = {}


def env() -> dict:
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def ensure_installed() -> None:
    debian_packages(PACKAGES, all(shutil.which(b) or Path("/usr/sbin", b).exists()
                                  for b in ("podman", "mmdebstrap", "runc")), "podman")


def image() -> str:
    """The tag of this checkout's image (built at most once per session;
    SYQURE_TEST_IMAGE names one already built from this checkout instead)."""
    if "tag" not in _built and os.environ.get("SYQURE_TEST_IMAGE"):
        _built["tag"] = os.environ["SYQURE_TEST_IMAGE"]
    if "tag" not in _built:
        if not (SHARED / "install.sh").is_file():
            pytest.skip(f"no Sequre bundle for the image: {SHARED} is missing (CI has it)")
        ensure_installed()
        # one build per test run, whichever pytest-xdist worker asks first (each worker is a process)
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        built = Path(tempfile.gettempdir()) / f"syqure-wf-image-{run_id}" if run_id else None
        with one_at_a_time("image-build", timeout=2700):
            if built and built.is_file():
                _built["tag"] = built.read_text().strip()
                return _built["tag"]
            proc = subprocess.run(["bash", str(REPO / "container" / "build.sh"), str(SHARED)], capture_output=True,
                                  text=True, timeout=2400, env=env())
            assert proc.returncode == 0, f"container/build.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            _built["tag"] = proc.stdout.strip().splitlines()[-1]
            if built:
                built.write_text(_built["tag"])
    return _built["tag"]


def run(tag: str, *args, mounts=(), network="none", timeout=900, extra=()) -> subprocess.CompletedProcess:
    cmd = ["podman", "run", "--rm", f"--network={network}", *extra]
    for src, dst, mode in mounts:
        cmd += ["-v", f"{src}:{dst}:{mode}"]
    return subprocess.run([*cmd, tag, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env())
