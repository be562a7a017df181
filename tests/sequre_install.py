"""Real Codon 0.18 + Sequre for the tests, installed offline by
../shared/sequre/install.sh into ~/.cache/syqure-wf/sequre (SYQURE_SEQURE_HOME
overrides) on first use; both flavours, test TLS certificates."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, one_at_a_time

SHARED = Path(os.environ.get("SYQURE_SHARED", REPO.parent / "shared")) / "sequre"
HOME = Path(os.environ.get("SYQURE_SEQURE_HOME", "~/.cache/syqure-wf/sequre")).expanduser()


def sequre_home() -> Path:
    """The install, made (idempotently) if needed; the test is skipped, with
    the reason, where it cannot be."""
    script = SHARED / "install.sh"
    if not script.is_file():
        pytest.skip(f"no Sequre to install: {script} is missing (CI has it)")
    def ready() -> bool:
        return all((HOME / f / "bin" / "codon").exists() for f in ("fork", "upstream")) \
            and (HOME / "certs" / "cp2.pem").exists()

    if not ready():
        with one_at_a_time("sequre-install"):
            if not ready():
                proc = subprocess.run(["bash", str(script), str(HOME)], capture_output=True, text=True, timeout=900)
                if proc.returncode != 0:
                    pytest.fail(f"{script} failed:\n{proc.stdout}\n{proc.stderr}")
    return HOME


def sequre_env(home: Path, flavour: str, cache: Path) -> dict:
    """The environment of a user with this flavour's codon first on PATH."""
    return {**os.environ, "PATH": f"{home / flavour / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "SEQURE_CERT_DIR": str(home / "certs"), "SYQURE_WF_CACHE": str(cache)}
