"""``syqure-wf policy check FILE`` and ``policy schema``: a site's policy,
checked and said in plain words before an agent runs with it."""
from __future__ import annotations

import json
import sys

import click

from .common import main, one_line_errors


@main.group("policy")
def policy_group() -> None:
    """A site's policy: check it, or print its schema (for editors)."""


@policy_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@one_line_errors
def check_cmd(path: str) -> None:
    """Check a policy (its schema, every key once) and say what it means."""
    from ..sites.policy import load
    from ..sites.policytext import words

    said, warnings = words(load(path))
    click.echo(f"{path}: a valid policy. It:")
    for line in said:
        click.echo(f"- {line}")
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    sys.exit(1 if warnings else 0)


@policy_group.command("schema")
def schema_cmd() -> None:
    """The policy's JSON Schema (point an editor's YAML support at it)."""
    from ..sites.policy import SCHEMA

    click.echo(json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema",
                           "title": "syqure-wf site policy", **SCHEMA}, indent=1))
