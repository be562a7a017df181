"""``syqure-wf proxy`` and ``sbproxy``: one party's proxy alone (the seed's flags)."""
from __future__ import annotations

import asyncio
import json

import click

from ..errors import ConfigError
from ..transport.protocol.defaults import LINGER, TIMEOUTS
from ..transport.protocol.framing import DEFAULT_CHUNK, DEFAULT_MAX_MESSAGE, FRAMINGS
from ..transport.protocol.ports import CONVENTIONS
from .common import main, one_line_errors, setup_logging


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
                     help="Address for the party's side: a loopback address (others are refused; channels carry secret shares)."),
        click.option("--run-id", default=None, help="Binds messages to one run; every party gives the same."),
        click.option("--max-message", type=click.IntRange(min=1), default=DEFAULT_MAX_MESSAGE,
                     show_default=True, help="Largest message in bytes."),
        click.option("--chunk", type=click.IntRange(min=1), default=DEFAULT_CHUNK, show_default=True,
                     help="Largest message under stream framing."),
        click.option("--dial", type=click.Choice(["auto", "eager", "lazy"]), default="auto", show_default=True,
                     help="When to dial a listening party: at once, or on its first message."),
        click.option("--connect-timeout", type=float, default=TIMEOUTS["connect"], show_default=True,
                     help="Seconds for the local party to come up (it may be compiling)."),
        click.option("--start-timeout", type=float, default=TIMEOUTS["start"], show_default=True,
                     help="Seconds for every peer to show its status (0: never check; for seed sbproxy peers)."),
        click.option("--peer-timeout", type=float, default=TIMEOUTS["peer"], show_default=True,
                     help="Seconds without a heartbeat before a peer counts as gone (0: never)."),
        click.option("--stall-timeout", type=float, default=TIMEOUTS["stall"], show_default=True,
                     help="Seconds an incomplete message or a hole in the sequence may last."),
        click.option("--linger", type=float, default=LINGER, show_default=True,
                     help="Seconds to wait for a new connection once every channel closed."),
        click.option("--party-pid", type=click.IntRange(min=1), default=None,
                     help="The party's process: only connections from it or its children are carried "
                          "(without it, any local process may take a channel; SECURITY.md)."),
        click.option("--secret-file", type=click.Path(dir_okay=False), default=None,
                     help="Seal every message with this run secret (needs --run-id)."),
        click.option("-v", "--verbose", count=True, help="More output (-vv for debug)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _run_proxy(verbose: int, **kwargs) -> None:
    from ..transport.settings import ProxySettings
    from ..transport.standalone import run_standalone

    setup_logging(verbose, f"proxy[{kwargs['pid']}]")
    secret_file = kwargs.pop("secret_file", None)
    if secret_file:
        from ..keys.secret import read_secret

        if not kwargs.get("run_id"):
            raise ConfigError("--secret-file needs --run-id: the key is the run's")
        kwargs["secret"] = read_secret(secret_file)
    try:
        settings = ProxySettings(**kwargs)
        from ..transport.protocol.ports import check_party

        check_party(settings.pid, settings.parties)
        if settings.run_id:
            from ..transport.protocol.names import check_id
            check_id(settings.run_id, "run id")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    summary = asyncio.run(run_standalone(settings))
    if verbose:
        click.echo(json.dumps(summary, indent=1), err=True)


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
