"""The workflows' submit step (Snakemake rule ``submit``, Nextflow process
``SUBMIT``): submit a run configuration, wait for every site, and leave the
collected results where the workflow expects its outputs."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ..files.private import make_private_dir
from .board import Board
from .submitter import DEFAULT_EXPIRY, submit, wait


def submit_and_wait(mpc: dict, site: dict, out_dir: str, work_dir: str, say=print) -> str:
    """``mpc``: the run configuration (program path absolute, inputs as names);
    ``site``: to (emails in pid order), syftbox_folder, email, expires, timeout.
    Writes ``out_dir/party-N.json`` for every shared result and
    ``out_dir/summary.json`` (docs/outputs.md); the submitted configuration
    and what ``wait`` collected stay in ``work_dir``."""
    out, work = Path(out_dir), Path(work_dir)
    make_private_dir(work)
    config = work / "submitted.yaml"
    config.write_text(yaml.safe_dump(mpc))
    board = Board(site["syftbox_folder"], site["email"])
    run_id = submit(str(config), list(site.get("to") or []), board, float(site.get("expires", DEFAULT_EXPIRY)), say)
    collected = wait(board, run_id, work / "collected", float(site.get("timeout", 0)), say)
    make_private_dir(out)
    for path in sorted(collected.glob("party-*.json")) + [collected / "summary.json"]:
        shutil.copyfile(path, out / path.name)
    return run_id
