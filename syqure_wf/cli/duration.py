"""A span of time on the command line: ``7d``, ``36h``, ``90m``, ``30s``
or a bare number of seconds."""
from __future__ import annotations

import re

import click

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def seconds(text: str) -> float:
    """``text`` in seconds; ValueError for anything else."""
    m = _SPAN.match(str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 7d, 12h, 30m, 90s or seconds)")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


class Duration(click.ParamType):
    name = "DURATION"

    def __init__(self, minimum: float = 0) -> None:
        self.minimum = minimum

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        try:
            got = seconds(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if got < self.minimum:
            self.fail(f"{value} is shorter than {self.minimum:g} s", param, ctx)
        return got
