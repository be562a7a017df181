"""What every command shares: the ``syqure-wf`` group, one line and an exit
code for every failure the user can cause, logging, loading a run configuration."""
from __future__ import annotations

import functools
import logging
import os
import sys
import time

import click

from .. import __version__
from ..errors import one_line


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


def stamp() -> str:
    """Now, dated, in UTC to the millisecond: what every log line starts with
    (lines from several sites then sort into one story)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class _UTC(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{stamp()} {super().format(record)}"


def setup_logging(verbose: int, name: str) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTC(f"{name}: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syqure-wf")
def main() -> None:
    """Run multi-party computation across sites that share only a synced folder."""


def load_config(config: str | None, overrides: dict | None = None):
    from ..run import config as config_mod

    return config_mod.load(config, overrides)
