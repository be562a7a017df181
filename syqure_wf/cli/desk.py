"""``syqure-wf desk``: the data steward's page (syqure_wf/desk)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import main, one_line_errors, stamp
from .sites import _board, site_options


@main.command("desk")
@site_options
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="The port on 127.0.0.1 (0: any free one).")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="Where the access token is kept (default: this site's private folder, desk.token).")
@click.option("--keep-token", is_flag=True,
              help="Reuse the token already in the token file (for a reverse proxy configured with it).")
@click.option("--user-header", default=None, metavar="NAME",
              help="The header a site's SSO proxy names its user in (e.g. X-Forwarded-User): "
                   "recorded as who approved.")
@one_line_errors
def desk_cmd(folder: str, email: str, port: int, token_file: str | None, keep_token: bool,
             user_header: str | None) -> None:
    """A page on 127.0.0.1 to review, approve and reject the runs waiting at
    this site, with every run's state and the audit log. Prints its URL
    (with an access token) first."""
    from ..desk.serve import serve

    def say(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    try:
        serve(_board(folder, email), port, Path(token_file).absolute() if token_file else None, keep_token,
              user_header, say, log=lambda line: click.echo(f"{stamp()} {line}", err=True))
    except KeyboardInterrupt:
        pass
