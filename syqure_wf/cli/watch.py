"""``syqure-wf watch RUN``: a run live, at any of its sites, whoever
submitted it: every site's state as this site sees it, and this site's
party (its state and sync) as its agent records it, one dated line per
change, until the run ends."""
from __future__ import annotations

import sys
import time

import click

from .common import main, one_line_errors, stamp
from .duration import Duration
from .sites import _board, site_options


@main.command("watch")
@click.argument("run_id")
@site_options
@click.option("--timeout", type=Duration(), default="0",
              help="Stop watching after this long: 2h, 30m or seconds (0: until the run ends).")
@click.option("--every", type=Duration(minimum=0.1), default="1", show_default=True,
              help="How often to look.")
@one_line_errors
def watch_cmd(run_id: str, folder: str, email: str, timeout: float, every: float) -> None:
    """Show a run live (read only): each site's state, this site's party.
    Exit 0 once it is done, 1 if it failed, 3 if still going at --timeout."""
    from ..errors import ConfigError
    from ..sites.operator import record_of
    from ..sites.submitter import status

    board = _board(folder, email)
    deadline = time.monotonic() + timeout if timeout else None
    before: list[str] = []
    while True:
        verdict, lines = status(board, run_id)
        try:
            party = record_of(board, run_id).get("party") or {}
        except ConfigError:  # not a party here: the submitter only
            party = {}
        if party:
            lines = lines + [f"  this site's party: {party.get('state')}"
                             + (f", sync {party['sync']}" if party.get("sync") else "")
                             + (f" ({party['reason']})" if party.get("reason") else "")]
        for line in lines:
            if line not in before:
                click.echo(f"{stamp()} {line.strip()}")
        sys.stdout.flush()
        before = lines
        if verdict in ("done", "failed"):
            sys.exit(0 if verdict == "done" else 1)
        if deadline and time.monotonic() > deadline:
            click.echo(f"{stamp()} still going after {timeout:g} s", err=True)
            sys.exit(3)
        time.sleep(every)
