"""Command line: ``syqure-wf`` and ``sbproxy`` (the proxy alone, the seed's flags)."""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import time

import click

from . import __version__
from .errors import ConfigError, one_line
from .transport.framing import DEFAULT_CHUNK, DEFAULT_MAX_MESSAGE, FRAMINGS
from .transport.ports import CONVENTIONS

def fail(message: str, code: int) -> None:
    click.echo(f"{_prog()}: error: {message}", err=True)
    sys.exit(code)


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in ("sbproxy", "syqure-wf") else "syqure-wf"


def one_line_errors(func):
    """Every failure the user can cause ends as one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as exc:
            said = one_line(exc)
            if said is None:
                raise
            fail(*said)
    return wrapper


def setup_logging(verbose: int, name: str) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format=f"{name}: %(message)s", stream=sys.stderr)


def proxy_options(func):
    """The seed sbproxy's flags, then this project's."""
    opts = [
        click.option("--pid", type=int, required=True, help="This party's id, 0..N-1."),
        click.option("--parties", type=int, default=3, show_default=True, help="N, the number of parties."),
        click.option("--data-dir", type=click.Path(file_okay=False), required=True,
                     help="The message folder shared by the parties."),
        click.option("--base-port", type=int, required=True,
                     help="Base of the ports the proxy listens on for its party."),
        click.option("--sequre-base-port", "party_base_port", type=int, required=True,
                     help="Base of the ports the party listens on (the proxy dials them)."),
        click.option("--framing", type=click.Choice(FRAMINGS), default="sequre", show_default=True,
                     help="sequre: one file per Sequre frame; stream: any TCP protocol."),
        click.option("--convention", type=click.Choice(CONVENTIONS), default="sequre", show_default=True,
                     help="Who listens: sequre (lower pid) or mpyc (higher pid, one port)."),
        click.option("--poll-ms", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Poll the folder at this interval instead of file events (not needed: network "
                          "and FUSE file systems, and folders whose events miss peers' writes, are polled anyway)."),
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address for the party's side; keep it on loopback: channels carry secret shares."),
        click.option("--run-id", default=None, help="Binds messages to one run; every party gives the same."),
        click.option("--max-message", type=click.IntRange(min=1), default=DEFAULT_MAX_MESSAGE,
                     show_default=True, help="Largest message in bytes."),
        click.option("--chunk", type=click.IntRange(min=1), default=DEFAULT_CHUNK, show_default=True,
                     help="Largest message under stream framing."),
        click.option("--dial", type=click.Choice(["auto", "eager", "lazy"]), default="auto", show_default=True,
                     help="When to dial a listening party: at once, or on its first message."),
        click.option("--connect-timeout", type=float, default=300.0, show_default=True,
                     help="Seconds for the local party to come up (it may be compiling)."),
        click.option("--start-timeout", type=float, default=600.0, show_default=True,
                     help="Seconds for every peer to show its status (0: never check; for seed sbproxy peers)."),
        click.option("--peer-timeout", type=float, default=10.0, show_default=True,
                     help="Seconds without a heartbeat before a peer counts as gone (0: never)."),
        click.option("--stall-timeout", type=float, default=30.0, show_default=True,
                     help="Seconds an incomplete message or a hole in the sequence may last."),
        click.option("--linger", type=float, default=2.0, show_default=True,
                     help="Seconds to wait for a new connection once every channel closed."),
        click.option("--secret-file", type=click.Path(dir_okay=False), default=None,
                     help="Seal every message with this run secret (needs --run-id)."),
        click.option("-v", "--verbose", count=True, help="More output (-vv for debug)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _run_proxy(verbose: int, **kwargs) -> None:
    from .transport.proxy import ProxySettings, run_standalone

    setup_logging(verbose, f"proxy[{kwargs['pid']}]")
    secret_file = kwargs.pop("secret_file", None)
    if secret_file:
        from .transport.seal import read_secret

        if not kwargs.get("run_id"):
            raise ConfigError("--secret-file needs --run-id: the key is the run's")
        kwargs["secret"] = read_secret(secret_file)
    try:
        settings = ProxySettings(**kwargs)
        from .transport.ports import check_party

        check_party(settings.pid, settings.parties)
        if settings.run_id:
            from .transport.mailbox import check_id
            check_id(settings.run_id, "run id")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    summary = asyncio.run(run_standalone(settings))
    if verbose:
        click.echo(json.dumps(summary, indent=1), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syqure-wf")
def main() -> None:
    """Run multi-party computation across sites that share only a synced folder."""


@main.command("proxy")
@proxy_options
@one_line_errors
def proxy_cmd(**kwargs) -> None:
    """Carry one party's TCP channels through message files."""
    _run_proxy(**kwargs)


@click.command("sbproxy", context_settings={"help_option_names": ["-h", "--help"]})
@proxy_options
@one_line_errors
def sbproxy(**kwargs) -> None:
    """TCP-to-file proxy for one MPC party (drop-in for the seed's sbproxy)."""
    _run_proxy(**kwargs)


def _load(config: str | None, overrides: dict | None = None):
    from .run import config as config_mod

    return config_mod.load(config, overrides)


@main.command("party")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="The run configuration (the same file at every party).")
@click.option("--pid", type=int, required=True, help="This machine's party.")
@click.option("--input", "input_path", default=None, help="This party's private input (overrides the configuration).")
@click.option("--output", "output_path", default=None, help="Where the party's program writes its result.")
@click.option("--binary", "binary_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="sequre: the program built by 'syqure-wf build' (no build here).")
@click.option("-v", "--verbose", count=True)
@one_line_errors
def party_cmd(config_path: str, pid: int, input_path: str | None, output_path: str | None,
              binary_path: str | None, verbose: int) -> None:
    """Run one party: its proxy and its MPC program."""
    from pathlib import Path

    from .run import isolation
    from .run.party import run_party

    setup_logging(verbose, f"party[{pid}]")
    cfg = _load(config_path)
    cfg.party(pid)
    if not isolation.inside():
        cfg = isolation.isolate(cfg, 1)
        if cfg.isolation == "netns":
            isolation.reexec_inside([sys.executable, "-m", "syqure_wf", *sys.argv[1:]])
    if binary_path:
        cfg = cfg.with_engine(binary=str(Path(binary_path).absolute()))
    if input_path:
        cfg = cfg.with_party(pid, input=Path(input_path).absolute())
    if output_path:
        cfg = cfg.with_party(pid, output=Path(output_path).absolute())
    result = asyncio.run(run_party(cfg, pid))
    click.echo(f"party {pid}: done; output {cfg.party(pid).output}", err=True)
    sys.exit(result.exit_code)


@main.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The run configuration; without it, the options below describe the run.")
@click.option("--engine", type=click.Choice(["mpyc", "sequre", "command"]), default=None)
@click.option("--parties", type=int, default=None, help="Number of parties.")
@click.option("--workdir", default=None, help="Run folder (default runs/RUN_ID).")
@click.option("--run-id", default=None)
@click.option("--framing", type=click.Choice(FRAMINGS), default=None)
@click.option("--transport", type=click.Choice(["files", "tcp"]), default=None,
              help="tcp: direct connections, for comparison.")
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
    from .run.local import run_local

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
    cfg = _load(config_path, overrides)
    sys.exit(run_local(cfg, progress=not quiet, as_json=as_json))


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
@click.option("--parties-here", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many parties of the run share one host (a network namespace each where needed).")
@one_line_errors
def prepare_cmd(config_path: str, out_path: str, run_id: str | None, run_dir: str | None,
                clean_leftovers: bool, parties_here: int) -> None:
    """Fix one run (id, folders, defaults) in a file that every party reads."""
    from .run.steps import prepare

    cfg = prepare(config_path, out_path, run_id=run_id, clean_leftovers=clean_leftovers,
                  parties_here=parties_here, run_dir=run_dir)
    click.echo(f"run {cfg.run_id}: {cfg.n} parties, run folder {cfg.workdir}", err=True)


@main.command("collect")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="The resolved configuration (from prepare).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True)
@click.option("--wait", type=float, default=None, help="Seconds to wait for parties still running.")
@one_line_errors
def collect_cmd(config_path: str, out_path: str, wait: float | None) -> None:
    """Check that every party of a run is done and write the run's summary."""
    from .run.steps import collect

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

    from .engines.build import build_run
    from .engines import get_engine

    cfg = _load(config_path)
    if not get_engine(cfg.engine["name"]).needs_build(cfg.engine):
        if if_needed:
            click.echo(f"engine {cfg.engine['name']}: nothing to compile", err=True)
            return
        raise ConfigError(f"{cfg.where}: engine: only a sequre program without engine.command is built")
    program = cfg.resolve(cfg.engine["program"])
    done = build_run(cfg, say=lambda line: click.echo(line, err=True))
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


@main.command("validate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True)
@click.option("--pid", type=int, multiple=True, help="Check only these parties (default: all, on this machine).")
@one_line_errors
def validate_cmd(config_path: str, pid: tuple[int, ...]) -> None:
    """Check a run configuration without running anything (a Sequre program
    is compiled, into the cache, so that Codon's errors show here)."""
    from .run.config import check_inputs
    from .run.local import check_fresh, check_ports_free

    cfg = _load(config_path)
    pids = list(pid) or [p.pid for p in cfg.parties]
    for p in pids:
        cfg.party(p)
    check_inputs(cfg, pids)
    from .run.isolation import isolation_for

    if cfg.transport == "files" and isolation_for(cfg, cfg.n) == "none" and not pid:
        check_ports_free(cfg)
    check_fresh(cfg)
    for folder in (cfg.workdir, cfg.data_dir):
        check_writable(folder)
    from .engines import get_engine

    built = ""
    if get_engine(cfg.engine["name"]).needs_build(cfg.engine):
        from .engines.build import build_run

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
    from .run.doctor import run_checks
    from .run.doctor.check import FAIL

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


@main.command("secret")
@one_line_errors
def secret_cmd() -> None:
    """Print a new run secret (share it with the other parties out of band)."""
    from .transport.seal import new_secret

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

    from .transport.folder import clean

    if config_path:
        folder = str(_load(config_path).data_dir)
    if not folder:
        raise ConfigError("give a FOLDER or --config FILE")
    target = Path(folder)
    if (target / "messages").is_dir() and not (target / "status").is_dir():
        target = target / "messages"
    removed = clean(target)
    click.echo(f"removed {removed} file(s) from {target}")


# -- across organisations: submit at one site, an agent at every site (syqure_wf/sites)

def site_options(func):
    opts = [click.option("--syftbox-folder", "folder", envvar="SYFTBOX_FOLDER", required=True,
                         type=click.Path(file_okay=False, exists=True),
                         help="This site's SyftBox folder (holds datasites/); env SYFTBOX_FOLDER."),
            click.option("--email", "email", envvar="SYFTBOX_EMAIL", required=True,
                         help="This site's SyftBox email; env SYFTBOX_EMAIL.")]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _board(folder: str, email: str):
    from .sites.board import Board

    return Board(folder, email)


@main.command("digest")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True)
@click.option("--parties", type=click.IntRange(2, 64), default=None,
              help="The number of parties (default: the configuration's parties).")
@one_line_errors
def digest_cmd(config_path: str, parties: int | None) -> None:
    """The run's digest, sha256:<hex>, over the program and every file it
    imports, the engine, args, framing, tls and the number of parties: what
    policies list, 'approve' approves and 'runs' and 'show' name."""
    from pathlib import Path

    from .run.schema import check_schema, read_yaml
    from .sites.digest import run_digest
    from .sites.manifest import submitted

    source = Path(config_path).absolute()
    raw = read_yaml(source)
    check_schema(raw, str(source))
    if not (raw.get("engine") or {}).get("program"):
        raise ConfigError(f"{source}: engine.program: no program to digest")
    config, entry, files = submitted(raw, str(source), source.parent)
    given = raw.get("parties")
    n = parties or (given if isinstance(given, int) else len(given) if isinstance(given, list) else 0)
    if not n:
        raise ConfigError(f"{source}: the number of parties is part of the digest: give --parties N")
    click.echo(run_digest(config, entry, files, n))


@main.command("submit")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True), required=True)
@click.option("--to", default="", help="The parties' emails in pid order, comma-separated "
              "(default: the emails of the configuration's parties).")
@site_options
@click.option("--expires", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="Seconds for every site to be ready.")
@one_line_errors
def submit_cmd(config_path: str, to: str, folder: str, email: str, expires: float) -> None:
    """Propose a run: check it here (compile a Sequre program), then publish
    its manifest for the parties' agents. Runs nothing. Prints the run id last."""
    from .sites.submitter import submit

    emails = [e.strip() for e in to.split(",") if e.strip()]
    click.echo(submit(config_path, emails, _board(folder, email), expires, say=click.echo))


@main.command("agent")
@site_options
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), required=True,
              help="This site's policy (YAML): submitters, programs, inputs, max_seconds...")
@click.option("-v", "--verbose", count=True)
@one_line_errors
def agent_cmd(folder: str, email: str, policy_path: str, verbose: int) -> None:
    """This site's agent: answers the runs addressed to it by its policy and
    runs its party once every site is ready. Runs until stopped."""
    from pathlib import Path

    from .sites.agent import Agent

    setup_logging(verbose, "agent")
    agent = Agent(Path(folder), email, Path(policy_path).absolute(),
                  say=lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True))
    sys.exit(agent.serve())


_submitter_option = click.option("--submitter", default=None,
                                 help="The run's submitter, where two submitters used its id.")


@main.command("show")
@click.argument("run_id")
@site_options
@_submitter_option
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The policy to judge it by (default: the one this site's agent runs with).")
@click.option("--source", is_flag=True, help="Print every program file, escaped.")
@one_line_errors
def show_cmd(run_id: str, folder: str, email: str, submitter: str | None, policy_path: str | None,
             source: bool) -> None:
    """What a run would do at this site, to read before 'approve': its
    digest, submitter and co-parties, engine, args, framing, tls, program
    files, this site's input and result, expiry, and the policy's verdict."""
    from .sites.show import show

    click.echo("\n".join(show(_board(folder, email), run_id, submitter, policy_path, source)))


@main.command("approve")
@click.argument("run_id")
@site_options
@_submitter_option
@one_line_errors
def approve_cmd(run_id: str, folder: str, email: str, submitter: str | None) -> None:
    """Approve a run waiting at this site (pending_approval): this very
    manifest, and its digest ('show' says what it does)."""
    from .sites.operator import request

    request(_board(folder, email), run_id, "approve", say=click.echo, submitter=submitter)


@main.command("reject")
@click.argument("run_id")
@click.option("--reason", required=True, help="One line for the submitter.")
@site_options
@_submitter_option
@one_line_errors
def reject_cmd(run_id: str, reason: str, folder: str, email: str, submitter: str | None) -> None:
    """Reject a run at this site (its party stops if it runs)."""
    from .sites.operator import request

    request(_board(folder, email), run_id, "reject", " ".join(reason.split()), say=click.echo, submitter=submitter)


@main.command("runs")
@site_options
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
def runs_cmd(folder: str, email: str, as_json: bool) -> None:
    """Every run this site's agent answered: state, submitter, digest, how approved."""
    from .sites.operator import runs, table

    found = runs(_board(folder, email))
    click.echo(json.dumps(found, indent=1) if as_json else "\n".join(table(found)))


@main.command("status")
@click.argument("run_id")
@site_options
@one_line_errors
def status_cmd(run_id: str, folder: str, email: str) -> None:
    """Each site's state of a run, as this site sees it now."""
    from .sites.submitter import status

    verdict, lines = status(_board(folder, email), run_id)
    click.echo("\n".join(lines))
    sys.exit(1 if verdict == "failed" else 0)


@main.command("wait")
@click.argument("run_id")
@site_options
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default="results",
              show_default=True, help="Results go to RESULTS/<run>/.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0,
              help="Seconds (0: until the run ends, a site fails, or it expires).")
@one_line_errors
def wait_cmd(run_id: str, folder: str, email: str, results_dir: str, timeout: float) -> None:
    """Follow a run live; exit 0 with its results collected, or non-zero
    naming the site that rejected, failed or never became ready."""
    from pathlib import Path

    from .sites.submitter import wait

    wait(_board(folder, email), run_id, Path(results_dir).absolute(), timeout,
         say=lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True))


@main.command("cancel")
@click.argument("run_id")
@site_options
@click.option("--timeout", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds for every site to say it stopped.")
@one_line_errors
def cancel_cmd(run_id: str, folder: str, email: str, timeout: float) -> None:
    """Stop a run this site submitted, at every site."""
    from .sites.submitter import cancel

    cancel(_board(folder, email), run_id, timeout, say=click.echo)

if __name__ == "__main__":
    main()
