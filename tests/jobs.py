"""The example job as tests run it, at every level: its folder, its plain
sums, the CLI, a round-heavy configuration, the party runners of a run, and
a copy of the files a fresh clone has."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from conftest import PROGRAMS, PY, REPO, command_lines, free_base

EXAMPLE = REPO / "examples" / "allele-counts"


def cli(*args):
    return [PY, "-m", "syqure_wf", *map(str, args)]


def plain_sum(field: str) -> list[int]:
    sites = [json.loads((EXAMPLE / "data" / f"site{i}.json").read_text()) for i in (1, 2)]
    return [a + b for a, b in zip(sites[0][field], sites[1][field])]


FIELDS = ("variants", "allele_count", "allele_number", "allele_frequency")


def rounds_config(tmp_path: Path, parties=3, **extra) -> Path:
    cfg = {"engine": {"name": "mpyc", "program": str(PROGRAMS / "mpyc_rounds.py"), "args": ["--rounds", "100000"]},
           "parties": parties, "workdir": str(tmp_path / "run"), "ports": {"base": free_base(span=300), "stride": 100},
           **extra}
    path = tmp_path / "rounds.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def party_pids(work: Path) -> dict[int, int]:
    """pid -> OS pid of each party runner, from the processes' command lines."""
    return {int(args[args.index(b"--pid") + 1]): pid for pid, args in command_lines()
            if b"party" in args and str(work).encode() in b" ".join(args) and b"--pid" in args}


def running(work: Path, n: int) -> bool:
    status = work / "messages" / "status"
    recs = [json.loads(p.read_text()) for p in status.glob("party-*.json")] if status.is_dir() else []
    return len(recs) == n and all(sum(c["received_messages"] for c in r.get("channels", {}).values()) > 20
                                  for r in recs)


TREE = ["workflow", "config", "profiles", "examples", "local-3party", "nextflow", "main.nf", "nextflow.config",
        "nextflow_schema.json"]


def copy_repo(dest: Path) -> Path:
    """The files a fresh clone has, without anything a run made."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TREE:
        src = REPO / name
        if src.is_symlink():
            (dest / name).symlink_to(src.readlink())
        elif src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest
