"""``syqure-wf-biovault``: Biovault's ``runtime: syqure`` step, run through syqure-wf.

Biovault (OpenMined/biovault, ``cli/src/cli/commands/run_dynamic.rs``) starts
its syqure binary at each datasite as ``BINARY ENTRYPOINT -- PID``, in a
per-party work folder (``SYQURE_BUNDLE_CACHE``) and its own process group,
with the run described by ``SEQURE_*`` and ``BV_*`` variables. Pointed at
this command instead, a party is run the syqure-wf way:

- the module's program is compiled once per machine (the build cache);
- ``SEQURE_TRANSPORT=file``: the program talks TCP to its own proxy (a
  network namespace of its own where one can be made), and the messages go
  through the channel folders Biovault prepared,
  ``{SEQURE_DATASITES_ROOT}/{sender email}/{SEQURE_FILE_DIR}/{from}_to_{to}/``,
  in syqure-wf's format, with heartbeats and status records beside them;
- ``SEQURE_TRANSPORT=tcp`` (or ``hotlink``): the program runs directly over
  TCP, as the syqure binary would;
- every other ``SEQURE_*`` and ``BV_*`` variable reaches the program unchanged.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, one_line
from .run import module

PROG = "syqure-wf-biovault"
USAGE = f"usage: {PROG} [--skip-mhe-setup] ENTRYPOINT -- PID"


@dataclass
class Step:
    """One party of a Biovault syqure step, as its runner describes it."""

    entrypoint: Path
    pid: int
    emails: list[str]
    transport: str  # file | tcp
    skip_mhe_setup: bool
    workdir: Path  # SYQURE_BUNDLE_CACHE: Biovault's log is here, and ours
    datasites: Path | None = None  # SEQURE_DATASITES_ROOT
    file_dir: str | None = None  # SEQURE_FILE_DIR, inside each datasite

    @property
    def run_id(self) -> str:
        """The run is its folder: every party derives the same id from it."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.file_dir or "run").strip("-.")[-60:] or "run"
        digest = hashlib.sha256((self.file_dir or "").encode()).hexdigest()[:8]
        return f"bv-{slug}-{digest}".replace("--", "-")


def parse_argv(argv: list[str]) -> tuple[bool, Path, int]:
    """``[--skip-mhe-setup] ENTRYPOINT -- PID``."""
    skip = False
    args = list(argv)
    while args and args[0].startswith("--") and args[0] != "--":
        if args[0] == "--skip-mhe-setup":
            skip = True
            args.pop(0)
        else:
            raise ConfigError(f"unknown option {args[0]}; {USAGE}")
    if len(args) == 3 and args[1] == "--":
        entry, pid = args[0], args[2]
    elif len(args) == 2:
        entry, pid = args
    else:
        raise ConfigError(USAGE)
    try:
        number = int(pid)
    except ValueError:
        raise ConfigError(f"PID must be a number, got {pid!r}; {USAGE}") from None
    return skip, Path(entry), number


def step_from(argv: list[str], env: dict[str, str]) -> Step:
    """Everything checked before anything starts; one line when it is wrong."""
    skip, entrypoint, pid = parse_argv(argv)
    entrypoint = entrypoint.expanduser().absolute()
    if not entrypoint.is_file():
        raise ConfigError(f"entrypoint {entrypoint} does not exist")
    skip = skip or module.load(entrypoint.parent, entrypoint).skip_mhe_setup
    emails = [e.strip() for e in env.get("SEQURE_PARTY_EMAILS", "").split(",") if e.strip()]
    count = env.get("SEQURE_CP_COUNT")
    if count is not None:
        if not count.strip().isdigit():
            raise ConfigError(f"SEQURE_CP_COUNT={count!r} is not a number")
        if emails and int(count) != len(emails):
            raise ConfigError(f"SEQURE_CP_COUNT={count} but SEQURE_PARTY_EMAILS names {len(emails)} parties")
    parties = len(emails) or int(count or 0)
    if parties < 2:
        raise ConfigError("SEQURE_PARTY_EMAILS must name every party (at least 2), in pid order")
    if not 0 <= pid < parties:
        raise ConfigError(f"PID {pid} is out of range: the run has parties 0..{parties - 1}")
    local = env.get("SEQURE_LOCAL_EMAIL")
    if local and local not in emails:
        raise ConfigError(f"SEQURE_PARTY_EMAILS ({','.join(emails)}) does not hold SEQURE_LOCAL_EMAIL {local}")
    if local and emails[pid] != local:
        raise ConfigError(f"PID {pid} is {emails[pid]} in SEQURE_PARTY_EMAILS, "
                          f"but SEQURE_LOCAL_EMAIL is {local} (pid {emails.index(local)})")
    transport = env.get("SEQURE_TRANSPORT", "file").strip().lower() or "file"
    transport = "file" if transport == "file" else "tcp"
    workdir = Path(env.get("SYQURE_BUNDLE_CACHE") or os.getcwd())
    step = Step(entrypoint, pid, emails, transport, skip, workdir)
    if transport == "file":
        root, file_dir = env.get("SEQURE_DATASITES_ROOT"), env.get("SEQURE_FILE_DIR")
        if not root or not file_dir:
            raise ConfigError("SEQURE_TRANSPORT=file needs SEQURE_DATASITES_ROOT and SEQURE_FILE_DIR")
        step.datasites, step.file_dir = Path(root).expanduser().absolute(), file_dir.strip("/")
        if step.datasites.name != "datasites":
            raise ConfigError(f"SEQURE_DATASITES_ROOT={root} is not a SyftBox datasites folder")
        if not (step.datasites / emails[pid]).is_dir():
            raise ConfigError(f"{step.datasites / emails[pid]} does not exist: this party's datasite")
    return step


def run_config(step: Step, isolation: str) -> dict:
    """The run configuration of this party: the SyftBox layout in Biovault's folders."""
    return {
        "run_id": step.run_id,
        "layout": "syftbox",
        "syftbox": {"folder": str(step.datasites.parent), "run_dir": step.file_dir},
        "parties": [{"pid": p, "email": e} for p, e in enumerate(step.emails)],
        # the program talks TCP to its proxy: the fork's own file transport stays off
        "engine": {"name": "sequre", "program": str(step.entrypoint),
                   "args": ["--skip-mhe-setup"] if step.skip_mhe_setup else [],
                   "env": {"SEQURE_TRANSPORT": "tcp"}},
        "workdir": str(step.workdir / "syqure-wf"),
        "isolation": isolation,
    }


def run_files(step: Step) -> int:
    """This party through syqure-wf's files: proxy, heartbeats, status."""
    from .run import config as config_mod, isolation
    from .run.party import run_party

    inside = isolation.inside()
    mode = "netns" if inside or isolation.netns_problem() is None else "none"
    cfg = config_mod.resolve(run_config(step, mode), None, step.workdir)
    if mode == "netns" and not inside:
        isolation.enter(cfg, step.pid, [sys.executable, "-m", "syqure_wf.biovault", *sys.argv[1:]])
    result = asyncio.run(run_party(cfg, step.pid))  # compiles first, once per machine (the build cache)
    return result.exit_code


def run_tcp(step: Step) -> int:
    """Hotlink: the compiled program alone, over TCP, as the syqure binary runs it."""
    from .engines.build import build

    spec = {"name": "sequre", "program": str(step.entrypoint)}
    done = build(spec, step.entrypoint, say=lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True))
    argv = [str(done.binary), *(["--skip-mhe-setup"] if step.skip_mhe_setup else []), str(step.pid)]
    os.execv(argv[0], argv)
    return 127  # not reached


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        codon_root = os.environ.get("CODON_PATH", "")
        if codon_root and Path(codon_root, "lib", "codon").is_dir():
            # Biovault's CODON_PATH names a Codon install (its own pre-flight check);
            # Codon reads CODON_PATH as its stdlib: the plugin's own is found from codon.
            del os.environ["CODON_PATH"]
        step = step_from(argv, dict(os.environ))
        step.workdir.mkdir(parents=True, exist_ok=True)
        code = run_files(step) if step.transport == "file" else run_tcp(step)
    except (Exception, KeyboardInterrupt) as exc:
        said = one_line(exc)
        if said is None:
            raise
        print(f"{PROG}: error: {said[0]}", file=sys.stderr)
        sys.exit(said[1])
    sys.exit(code)


if __name__ == "__main__":
    main()
