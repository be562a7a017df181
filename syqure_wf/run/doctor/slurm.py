"""SLURM, for a Snakemake profile that submits to it: its client tools, the
executor plugin and the status command the profile uses."""
from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

from ...errors import ConfigError
from ..schema import load_yaml
from .check import Check, fail, info, last_line, ok


def profile_settings(profile: str) -> dict:
    path = Path(profile)
    if path.is_dir():
        path = path / "config.yaml"
    elif not path.exists():
        path = Path("profiles") / profile / "config.yaml"
    try:
        data = load_yaml(path.read_text()) or {}  # a profile: every key once
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
            problem = None if proc.returncode == 0 else last_line(proc.stderr, proc.returncode)
        except subprocess.TimeoutExpired:
            problem = "no answer within 20 s"
        fix = ("set slurm-status-command: squeue in the profile (no accounting database)" if status == "sacct"
               else "check that slurmctld runs and this host may reach it")
        out.append(fail("status command", f"{status}: {problem}", fix) if problem else
                   ok("status command", f"{status} answers"))
    return out
