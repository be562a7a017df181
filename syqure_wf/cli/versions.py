"""``syqure-wf versions``: every tool that shapes a run, as the versions.yml
of a Nextflow process (nf-core's layout), so that a version skew between
sites has a name."""
from __future__ import annotations

import json
import platform

import click

from .. import __version__
from .common import load_config, main, one_line_errors


def tools(engine: dict | None) -> dict[str, str]:
    """syqure-wf, Python, MPyC and, for a Sequre program, Codon and the Sequre flavour."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mpyc = version("mpyc")
    except PackageNotFoundError:
        mpyc = "not installed"
    found = {"syqure-wf": __version__, "python": platform.python_version(), "mpyc": mpyc}
    if engine and engine.get("name") == "sequre" and not engine.get("command"):
        from ..engines.build import toolchain

        chain = toolchain(engine)
        found.update({"codon": chain.version.split()[-1] if chain.version.split() else "?",
                      "sequre": chain.flavour})
    return found


@main.command("versions")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="A run configuration: also the engine's tools (Codon and Sequre's flavour for Sequre).")
@click.option("--process", default=None, help="Nest under this name (a Nextflow process: versions.yml).")
@one_line_errors
def versions_cmd(config_path: str | None, process: str | None) -> None:
    """Print the versions of the tools that shape a run, as YAML."""
    engine = load_config(config_path).engine if config_path else None
    lines = [f"{name}: {json.dumps(str(value))}" for name, value in tools(engine).items()]  # JSON strings: YAML
    if process:
        click.echo(f'"{process}":')
        lines = ["    " + line for line in lines]
    click.echo("\n".join(lines))
