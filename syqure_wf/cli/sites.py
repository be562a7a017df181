"""Across organisations (``syqure_wf/sites``): ``digest``, ``submit``,
``status``, ``wait`` and ``cancel`` at the submitting site; ``agent``,
``show``, ``approve``, ``reject``, ``runs`` and ``keys`` at every site."""
from __future__ import annotations

import json
import sys

import click

from ..errors import ConfigError
from .common import main, one_line_errors, setup_logging, stamp
from .duration import Duration


def _client(name: str, flag: str):
    """A site option's default from the SyftBox client's configuration; a usage error without one."""
    from ..sites import clientconfig

    def default():
        value = clientconfig.setting(name)
        if value is None:
            raise click.UsageError(f"give {flag} (no SyftBox client configuration at {clientconfig.path()} says it)")
        return value
    return default


def site_options(func):

    opts = [click.option("--syftbox-folder", "folder", envvar="SYFTBOX_FOLDER", required=True,
                         type=click.Path(file_okay=False, exists=True), default=_client("folder", "--syftbox-folder"),
                         help="This site's SyftBox folder (holds datasites/); env SYFTBOX_FOLDER; "
                              "default: the SyftBox client's (~/.syftbox/config.json)."),
            click.option("--email", "email", envvar="SYFTBOX_EMAIL", required=True,
                         default=_client("email", "--email"),
                         help="This site's SyftBox email; env SYFTBOX_EMAIL; default: the SyftBox client's.")]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _board(folder: str, email: str):
    from ..sites.board import Board

    return Board(folder, email)


@main.command("keys")
@site_options
@click.option("--peer", "peers", multiple=True, metavar="EMAIL",
              help="Also show the key this peer site publishes and whether it is the one pinned here; repeat.")
@click.option("--forget", metavar="EMAIL", default=None,
              help="Forget the key pinned for a peer site that made a new one (check it with them first).")
@one_line_errors
def keys_cmd(folder: str, email: str, peers: tuple[str, ...], forget: str | None) -> None:
    """This site's key (made and published on first use) and its fingerprint,
    and the peer sites' keys pinned here."""
    from ..keys.known_sites import KnownSites
    from ..keys.sitekey import did_path, load_or_create, published

    board = _board(folder, email)
    known = KnownSites(board.folder, email)
    if forget:
        click.echo(f"{forget}: {'forgotten' if known.forget(forget) else 'was not pinned'} ({known.path})")
        return
    key = load_or_create(board.folder, email)
    click.echo(f"{email} {key.fingerprint}\n  private key {key.path} (owner-only, never synced)\n"
               f"  published   {did_path(board.folder, email)}")
    pins = known.read()
    click.echo(f"known sites ({known.path}):" + "".join(f"\n  {e} {f}" for e, f in sorted(pins.items()))
               + ("" if pins else " none yet"))
    for peer in peers:
        theirs = published(board.folder, peer)
        if theirs is None:
            click.echo(f"{peer}: no key published yet ({did_path(board.folder, peer)})")
            continue
        pinned = pins.get(peer)
        verdict = ("pinned" if pinned == theirs.fingerprint else f"CHANGED: pinned {pinned}" if pinned
                   else "not pinned yet")
        click.echo(f"{peer} {theirs.fingerprint} ({verdict})")


@main.command("digest")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True)
@click.option("--to", default="", help="The role map: the parties' emails in pid order, comma-separated "
              "(default: the emails of the configuration's parties).")
@click.option("--parties", type=click.IntRange(2, 64), default=None,
              help="The number of parties (checked against the role map).")
@one_line_errors
def digest_cmd(config_path: str, to: str, parties: int | None) -> None:
    """The run's digest, sha256:<hex>, over the program and every file it
    imports, the engine, args, framing, tls, the parties and their roles
    (which site holds which pid, which input each supplies): what policies
    list, 'approve' approves and 'runs' and 'show' name."""
    from pathlib import Path

    from ..run.schema import check_schema, read_yaml
    from ..sites.manifest import encode, from_config, parse

    source = Path(config_path).absolute()
    raw = read_yaml(source)
    check_schema(raw, str(source))
    if not (raw.get("engine") or {}).get("program"):
        raise ConfigError(f"{source}: engine.program: no program to digest")
    roles = [e.strip() for e in to.split(",") if e.strip()]
    if not roles and not all(isinstance(p, dict) and p.get("email") for p in raw.get("parties") or [{}]):
        raise ConfigError(f"{source}: the roles are part of the digest: give --to EMAIL,EMAIL,... (pid order)")
    m = from_config(raw, str(source), source.parent, roles, roles[0] if roles else raw["parties"][0]["email"], 60)
    if parties and parties != len(m["parties"]):
        raise ConfigError(f"{source}: --parties {parties}, but the role map has {len(m['parties'])} parties")
    click.echo(parse(encode(m)).digest)  # the submitter is not in it: any role's email will do


@main.command("submit")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True), required=True)
@click.option("--to", default="", help="The parties' emails in pid order, comma-separated "
              "(default: the emails of the configuration's parties).")
@site_options
@click.option("--expires", type=Duration(minimum=1), default="7d", show_default=True,
              help="How long every site has to approve and be ready: 7d, 36h, 90m or seconds.")
@click.option("--run-id", default=None, help="Reuse this run id (default: the configuration's run_id, "
              "else a fresh one for every submission).")
@one_line_errors
def submit_cmd(config_path: str, to: str, folder: str, email: str, expires: float, run_id: str | None) -> None:
    """Propose a run: check it here (compile a Sequre program), then publish
    its manifest for the parties' agents. Runs nothing. Prints the run id last."""
    from ..sites.submitter import submit

    emails = [e.strip() for e in to.split(",") if e.strip()]
    click.echo(submit(config_path, emails, _board(folder, email), expires, run_id=run_id,
                      say=lambda line: click.echo(f"{stamp()} {line}")))  # the run id alone, last


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

    from ..sites.agent import Agent

    setup_logging(verbose, "agent")
    agent = Agent(Path(folder), email, Path(policy_path).absolute(),
                  say=lambda line: click.echo(f"{stamp()} {line}", err=True))
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
@click.option("--json", "as_json", is_flag=True, help="The same sheet as JSON.")
@click.option("--html", "as_html", is_flag=True,
              help="The same sheet as one self-contained HTML page, source highlighted (to file with a change request).")
@one_line_errors
def show_cmd(run_id: str, folder: str, email: str, submitter: str | None, policy_path: str | None,
             source: bool, as_json: bool, as_html: bool) -> None:
    """What a run would do at this site, to read before 'approve': its
    digest, submitter and co-parties, engine, args, framing, tls, program
    files, this site's input and result, expiry, and the policy's verdict."""
    from ..sites.show import show

    board = _board(folder, email)
    if as_json or as_html:
        from ..desk import review

        data = review.review(board, run_id, submitter, policy_path)
        click.echo(json.dumps(review.as_json(data), indent=1) if as_json else review.as_html(board, data))
        return
    click.echo("\n".join(show(board, run_id, submitter, policy_path, source)))


@main.command("approve")
@click.argument("run_id")
@site_options
@_submitter_option
@one_line_errors
def approve_cmd(run_id: str, folder: str, email: str, submitter: str | None) -> None:
    """Approve a run waiting at this site (pending_approval): this very
    manifest, and its digest ('show' says what it does)."""
    from ..sites.operator import request

    request(_board(folder, email), run_id, "approve", say=click.echo, submitter=submitter)


@main.command("reject")
@click.argument("run_id")
@click.option("--reason", required=True, help="One line for the submitter.")
@site_options
@_submitter_option
@one_line_errors
def reject_cmd(run_id: str, reason: str, folder: str, email: str, submitter: str | None) -> None:
    """Reject a run at this site (its party stops if it runs)."""
    from ..sites.operator import request

    request(_board(folder, email), run_id, "reject", " ".join(reason.split()), say=click.echo, submitter=submitter)


@main.command("runs")
@site_options
@click.option("--json", "as_json", is_flag=True)
@click.option("--pending", is_flag=True, help="Only the runs waiting for approval here.")
@one_line_errors
def runs_cmd(folder: str, email: str, as_json: bool, pending: bool) -> None:
    """Every run this site's agent answered: state, submitter, digest, how approved."""
    from ..sites.operator import runs, table

    found = [r for r in runs(_board(folder, email)) if not pending or r.get("state") == "pending_approval"]
    click.echo(json.dumps(found, indent=1) if as_json else "\n".join(table(found)))


@main.command("status")
@click.argument("run_id")
@site_options
@one_line_errors
def status_cmd(run_id: str, folder: str, email: str) -> None:
    """Each site's state of a run, as this site sees it now."""
    from ..sites.submitter import status

    verdict, lines = status(_board(folder, email), run_id)
    click.echo("\n".join(lines))
    sys.exit(1 if verdict == "failed" else 0)


@main.command("wait")
@click.argument("run_id")
@site_options
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default="results",
              show_default=True, help="Results go to RESULTS/<run>/.")
@click.option("--timeout", type=Duration(), default="0",
              help="How long to wait: 2h, 30m or seconds (0: until the run ends, a site fails, or it expires).")
@one_line_errors
def wait_cmd(run_id: str, folder: str, email: str, results_dir: str, timeout: float) -> None:
    """Follow a run live; exit 0 with its results collected, or non-zero
    naming the site that rejected, failed or never became ready."""
    from pathlib import Path

    from ..sites.submitter import wait

    wait(_board(folder, email), run_id, Path(results_dir).absolute(), timeout,
         say=lambda line: click.echo(f"{stamp()} {line}", err=True))


@main.command("cancel")
@click.argument("run_id")
@site_options
@click.option("--timeout", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds for every site to say it stopped.")
@one_line_errors
def cancel_cmd(run_id: str, folder: str, email: str, timeout: float) -> None:
    """Stop a run this site submitted, at every site."""
    from ..sites.submitter import cancel

    cancel(_board(folder, email), run_id, timeout, say=lambda line: click.echo(f"{stamp()} {line}"))
