"""``syqure-wf doctor``: can this machine run this configuration? One
module per subject; ``run_checks`` asks each.

Each check gives one line: ``ok``, ``FAIL`` (with what to do) or ``--`` (not
needed here, shown for information). A configuration can run here when no
check fails. Checks run real things where that is cheap: the Sequre plugin
is loaded by compiling and running a one-line program (cached per toolchain),
a network namespace is made, a file is written into the message folder, the
SyftBox client and server and the SLURM controller are asked.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from .check import Check, fail, ok
from .confinement import confinement_check, namespace_check
from .folder import folder_check
from .python import mpyc_check, python_packages
from .sequre import sequre_checks
from .slurm import profile_settings, slurm_checks
from .syftbox import syftbox_checks

def run_checks(config_path: str | None, pid: int | None, profile: str | None) -> list[Check]:
    from .. import config as config_mod

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
