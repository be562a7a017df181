"""Checks before anything runs: ``validate`` (a configuration) and
``doctor`` (this machine, for a configuration)."""
from __future__ import annotations

import os
import sys

import click

from ..errors import ConfigError
from .common import load_config, main, one_line_errors


@main.command("validate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True)
@click.option("--pid", type=int, multiple=True, help="Check only these parties (default: all, on this machine).")
@one_line_errors
def validate_cmd(config_path: str, pid: tuple[int, ...]) -> None:
    """Check a run configuration without running anything (a Sequre program
    is compiled, into the cache, so that Codon's errors show here)."""
    from ..run.config import check_inputs
    from ..run.local import check_fresh, check_ports_free

    cfg = load_config(config_path)
    pids = list(pid) or [p.pid for p in cfg.parties]
    for p in pids:
        cfg.party(p)
    check_inputs(cfg, pids)
    from ..run.isolation import isolation_for

    if cfg.proxied and isolation_for(cfg, cfg.n) == "none" and not pid:
        check_ports_free(cfg)
    check_fresh(cfg)
    for folder in (cfg.workdir, cfg.data_dir):
        check_writable(folder)
    from ..engines import get_engine

    built = ""
    if get_engine(cfg.engine["name"]).needs_build(cfg.engine):
        from ..engines.build import build_run

        done = build_run(cfg, say=lambda line: click.echo(line, err=True))
        built = f", program {'compiled' if done.compiled else 'built (cached)'}"
    click.echo(f"{cfg.where}: ok{built}: {cfg.n} parties, engine {cfg.engine['name']}, framing {cfg.framing}, "
               f"layout {cfg.layout}, run folder {cfg.workdir}")


@main.command("doctor")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The run configuration to check this machine for (default: the MPyC example's needs).")
@click.option("--pid", type=int, default=None, help="Only this party runs here (default: every party).")
@click.option("--profile", default=None, help="A Snakemake profile (folder or name under profiles/): its scheduler.")
@one_line_errors
def doctor_cmd(config_path: str | None, pid: int | None, profile: str | None) -> None:
    """Check that this machine can run a configuration: one line per check,
    with what to do when it fails; exit 0 only when it can run here."""
    from ..run.doctor import run_checks
    from ..run.doctor.check import FAIL

    checks = run_checks(config_path, pid, profile)
    for check in checks:
        click.echo(check.line())
    failed = [c.name for c in checks if c.state == FAIL]
    if failed:
        click.echo(f"{len(failed)} check(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


def check_writable(folder) -> None:
    """The nearest existing folder on the way must be writable; nothing is created."""
    from pathlib import Path

    path = Path(folder)
    while not path.exists():
        path = path.parent
    if path.is_symlink() or not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create {folder}: {path} is not a writable folder")
