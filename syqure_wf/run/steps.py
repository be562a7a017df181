"""The steps a workflow engine runs around the parties (Snakemake rules,
Nextflow processes): ``prepare`` fixes one run (its id, folders and every
default) in a file all parties read; ``collect`` checks every party's status
record and writes the run's summary. Paths come from the caller, so that a
Snakemake module prefix or a Nextflow work folder applies."""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from . import config as config_mod, summary
from ..errors import ConfigError, PeerFailed
from ..files.private import write_private
from ..transport.shared import clean
from .local import check_fresh
from ..transport.status import DONE, FAILED, read_status


def prepare(raw: dict | str | Path, out: str | Path, *, base_dir: Path | None = None,
            run_id: str | None = None, clean_leftovers: bool = False,
            parties_here: int = 1, run_dir: str | Path | None = None) -> config_mod.RunConfig:
    """Resolve a run configuration into ``out`` (relative paths in a file
    given are relative to ``base_dir``, by default its folder); the run folder is ``run_dir``,
    by default out's folder (a Nextflow task writes only ``out``, in its work
    folder: the parties make the run folder). With several parties here, each
    gets a network namespace where the engine needs one (``isolation: auto``)."""
    out = Path(out).absolute()
    overrides = {"workdir": str(Path(run_dir).absolute() if run_dir else out.parent)}
    if run_id:
        overrides["run_id"] = run_id
    if isinstance(raw, dict):
        raw = {**raw, **overrides}
        config_mod.check_schema(raw, "workflow config mpc")
        cfg = config_mod.resolve(raw, None, base_dir or Path.cwd())
    else:
        cfg = config_mod.load(raw, overrides, base_dir)
    from .isolation import isolate

    cfg = isolate(cfg, parties_here)
    if clean_leftovers and cfg.data_dir.is_dir():
        clean(cfg.data_dir)  # this folder is ours alone: a new run replaces a failed one
    check_fresh(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_private(out, yaml.safe_dump(cfg.resolved(), sort_keys=False).encode())
    return cfg


def collect(config_path: str | Path, out: str | Path, *, wait: float | None = None) -> dict:
    """Check that every party of the run is done; write the run's summary."""
    cfg = config_mod.load(config_path)
    deadline = time.monotonic() + (cfg.timeouts.drain if wait is None else wait)
    while True:
        records = {p.pid: read_status(cfg.status_dir_of(p.pid), p.pid) for p in cfg.parties}
        for pid, rec in records.items():
            if rec and rec.get("run_id") == cfg.run_id and rec.get("state") == FAILED:
                raise PeerFailed(f"run {cfg.run_id}: party {pid} failed: {rec.get('reason', '?')}")
        pending = [pid for pid, rec in records.items()
                   if not rec or rec.get("run_id") != cfg.run_id or rec.get("state") != DONE]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise PeerFailed(f"run {cfg.run_id}: party {pending[0]} is not done "
                             f"(state {(records[pending[0]] or {}).get('state', 'no status')})")
        time.sleep(0.5)
    out = Path(out)
    return summary.write(summary.of_parties(cfg.run_id, records, out.parent), out)


def workflow_config(config: dict) -> tuple[dict, list[int]]:
    """Split a workflow's config into the run configuration and the pids
    that run here; a bad value is a ConfigError naming the key."""
    mpc = dict(config.get("mpc") or {})
    n = mpc.get("parties", 3)
    n = len(n) if isinstance(n, list) else n
    here = config.get("parties_here", "all")
    if here == "all":
        pids = list(range(n))
    else:
        pids = [here] if isinstance(here, int) else list(here)
        bad = [p for p in pids if not isinstance(p, int) or not 0 <= p < n]
        if bad:
            raise ConfigError(f"parties_here: {bad[0]!r} is not a party of this run (0..{n - 1})")
    return mpc, pids
