"""A run on this machine: ``run`` (every party), ``party`` (one), the
workflow steps ``prepare``, ``build`` and ``collect``, ``secret`` and ``clean``."""
from __future__ import annotations

import asyncio
import os
import sys

import click

from ..errors import ConfigError
from ..transport.protocol.framing import FRAMINGS
from .common import _prog, load_config, main, one_line_errors, setup_logging, stamp
from .duration import Duration


@main.command("party")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="The run configuration (the same file at every party).")
@click.option("--pid", type=int, required=True, help="This machine's party.")
@click.option("--input", "input_path", default=None, help="This party's private input (overrides the configuration).")
@click.option("--output", "output_path", default=None, help="Where the party's program writes its result.")
@click.option("--binary", "binary_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="sequre: the program built by 'syqure-wf build' (no build here).")
@click.option("--progress-every", type=Duration(), default="10s", show_default=True,
              help="A progress line this often (messages and bytes per peer, whom it waits on); 0: none.")
@click.option("-v", "--verbose", count=True)
@one_line_errors
def party_cmd(config_path: str, pid: int, input_path: str | None, output_path: str | None,
              binary_path: str | None, progress_every: float, verbose: int) -> None:
    """Run one party: its proxy and its MPC program."""
    from pathlib import Path

    from ..run import isolation
    from ..run.party import run_party

    setup_logging(verbose, f"party[{pid}]")
    cfg = load_config(config_path)
    cfg.party(pid)
    _warn_unsealed(cfg)
    if not isolation.inside():
        cfg = isolation.isolate(cfg, 1)
        if cfg.isolation == "netns":
            isolation.enter(cfg, pid, [sys.executable, "-m", "syqure_wf", *sys.argv[1:]])
    if binary_path:
        cfg = cfg.with_engine(binary=str(Path(binary_path).absolute()))
    if input_path:
        cfg = cfg.with_party(pid, input=Path(input_path).absolute())
    if output_path:
        cfg = cfg.with_party(pid, output=Path(output_path).absolute())
    ticker = _progress(cfg, pid, progress_every)
    try:
        result = asyncio.run(run_party(cfg, pid))
    finally:
        ticker.stop()
    click.echo(f"party {pid}: done; output {cfg.party(pid).output}", err=True)
    sys.exit(result.exit_code)


def _progress(cfg, pid: int, every: float):
    from ..run.progressline import Ticker
    from ..transport.status import read_status

    return Ticker(lambda: read_status(cfg.status_dir_of(pid), pid),
                  lambda line: click.echo(f"{stamp()} party[{pid}]: {line}", err=True), every).start()


@main.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The run configuration; without it, the options below describe the run.")
@click.option("--engine", type=click.Choice(["mpyc", "sequre", "command"]), default=None)
@click.option("--parties", type=int, default=None, help="Number of parties.")
@click.option("--workdir", default=None, help="Run folder (default runs/RUN_ID).")
@click.option("--run-id", default=None)
@click.option("--framing", type=click.Choice(FRAMINGS), default=None)
@click.option("--transport", type=click.Choice(["files", "proxy", "tcp"]), default=None,
              help="files (default): MPyC in its own process, Sequre through a proxy; "
                   "proxy: every party through a proxy; tcp: direct connections, for comparison.")
@click.option("--isolation", type=click.Choice(["auto", "none", "netns"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("--quiet", is_flag=True, help="No live progress.")
@click.option("--module", "module_dir", type=click.Path(file_okay=False), default=None,
              help="A Biovault module folder (module.yaml, runtime syqure) as the program.")
@click.option("--input", "module_inputs", multiple=True, metavar="PID:NAME=VALUE",
              help="A module input of one party (a path for File inputs); repeat.")
@click.argument("program", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def run_cmd(config_path, engine, parties, workdir, run_id, framing, transport, isolation,
            as_json, quiet, module_dir, module_inputs, program, args) -> None:
    """Run every party of a job on this machine, through the file transport.

    \b
    syqure-wf run --config examples/allele-counts/config.yaml
    syqure-wf run --engine mpyc --parties 3 PROGRAM.py -- ARGS
    syqure-wf run --module DIR --input 1:counts=a.json --input 2:counts=b.json
    """
    from ..run.local import run_local

    overrides: dict = {}
    if module_dir:
        overrides["module"] = {"path": os.path.abspath(module_dir), "inputs": _module_inputs(module_inputs)}
    elif module_inputs:
        raise ConfigError("--input gives a module's inputs: use it with --module")
    if engine or program:
        spec = {"name": engine or "mpyc"}
        if program:
            spec["program" if spec["name"] != "command" else "command"] = program
        if args:
            spec["args"] = list(args)
        overrides["engine"] = spec
    for key, value in (("parties", parties), ("workdir", workdir), ("run_id", run_id),
                       ("framing", framing), ("transport", transport), ("isolation", isolation)):
        if value is not None:
            overrides[key] = value
    if not config_path and "engine" not in overrides and "module" not in overrides:
        raise ConfigError("give --config FILE, --module DIR, or a PROGRAM to run (see syqure-wf run --help)")
    cfg = load_config(config_path, overrides)
    _warn_unsealed(cfg)
    sys.exit(run_local(cfg, progress=not quiet, as_json=as_json))


def _warn_unsealed(cfg) -> None:
    if cfg.layout == "syftbox" and cfg.sealing_off and cfg.transport != "tcp":
        click.echo(f"{_prog()}: warning: encryption off: every share of run {cfg.run_id} is readable by the "
                   "SyftBox server", err=True)


def _module_inputs(given) -> dict:
    """``PID:NAME=VALUE`` options, by pid; paths made absolute here."""
    out: dict = {}
    for item in given:
        head, sep, value = item.partition("=")
        pid, colon, name = head.partition(":")
        if not (sep and colon and pid.strip().isdigit() and name.strip()):
            raise ConfigError(f"--input {item}: expected PID:NAME=VALUE, e.g. 1:counts=data/site1.json")
        path = os.path.abspath(value) if os.path.exists(value) else value
        out.setdefault(int(pid), {})[name.strip()] = path
    return out


@main.command("prepare")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="The resolved configuration to write; its folder is the run folder unless --run-dir.")
@click.option("--run-id", default=None)
@click.option("--run-dir", default=None, type=click.Path(file_okay=False),
              help="The run folder the parties share (default: the folder of --out); only --clean writes there.")
@click.option("--clean", "clean_leftovers", is_flag=True, help="Remove what a failed earlier run left here.")
@click.option("--base-dir", default=None, type=click.Path(file_okay=False),
              help="Relative paths in --config are relative to this folder (default: the file's).")
@click.option("--parties-here", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many parties of the run share one host (a network namespace each where needed).")
@one_line_errors
def prepare_cmd(config_path: str, out_path: str, run_id: str | None, run_dir: str | None,
                clean_leftovers: bool, base_dir: str | None, parties_here: int) -> None:
    """Fix one run (id, folders, defaults) in a file that every party reads."""
    from pathlib import Path

    from ..run.steps import prepare

    cfg = prepare(config_path, out_path, run_id=run_id, clean_leftovers=clean_leftovers,
                  parties_here=parties_here, run_dir=run_dir, base_dir=Path(base_dir).absolute() if base_dir else None)
    click.echo(f"run {cfg.run_id}: {cfg.n} parties, run folder {cfg.workdir}", err=True)


@main.command("collect")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="The resolved configuration (from prepare).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True)
@click.option("--wait", type=float, default=None, help="Seconds to wait for parties still running.")
@one_line_errors
def collect_cmd(config_path: str, out_path: str, wait: float | None) -> None:
    """Check that every party of a run is done and write the run's summary."""
    from ..run.steps import collect

    summary = collect(config_path, out_path, wait=wait)
    click.echo(f"run {summary['run_id']}: all {len(summary['parties'])} parties done", err=True)


@main.command("build")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="The run configuration of a sequre engine run.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also put the binary here (a workflow step's output).")
@click.option("--if-needed", is_flag=True, help="An engine with nothing to compile is no error (nothing written).")
@one_line_errors
def build_cmd(config_path: str, out_path: str | None, if_needed: bool) -> None:
    """Compile the run's Sequre program once for this machine (cached)."""
    import shutil

    from ..engines.build import build_run
    from ..engines import get_engine

    cfg = load_config(config_path)
    if not get_engine(cfg.engine["name"]).needs_build(cfg.engine):
        if if_needed:
            click.echo(f"engine {cfg.engine['name']}: nothing to compile", err=True)
            return
        raise ConfigError(f"{cfg.where}: engine: only a sequre program without engine.command is built")
    program = cfg.resolve(cfg.engine["program"])
    from ..run.confine import build_jail

    done = build_run(cfg, say=lambda line: click.echo(line, err=True), confine=build_jail(cfg))
    if out_path:
        from pathlib import Path

        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.copy2(done.binary, tmp)
        os.replace(tmp, out)
    how = f"compiled in {done.seconds:.0f} s" if done.compiled else "from the cache, nothing compiled"
    click.echo(f"{program.name}: {done.toolchain.flavour} Sequre, Codon {done.toolchain.version}: {how}: "
               f"{out_path or done.binary}", err=True)


@main.command("secret")
@one_line_errors
def secret_cmd() -> None:
    """Print a new run secret (share it with the other parties out of band)."""
    from ..transport.seal import new_secret

    click.echo(new_secret())


@main.command("clean")
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Clean the message folder of this run configuration.")
@one_line_errors
def clean_cmd(folder: str | None, config_path: str | None) -> None:
    """Remove a run's messages, markers and status records (FOLDER: a message
    folder or a run folder holding messages/)."""
    from pathlib import Path

    from ..transport.shared import clean

    if config_path:
        folder = str(load_config(config_path).data_dir)
    if not folder:
        raise ConfigError("give a FOLDER or --config FILE")
    target = Path(folder)
    if (target / "messages").is_dir() and not (target / "status").is_dir():
        target = target / "messages"
    removed = clean(target)
    click.echo(f"removed {removed} file(s) from {target}")
