"""Engines: how to start one party of an MPC framework so that it reaches
its proxy. Each engine is one module (``engine.py``: what they all are);
``get_engine(name)`` returns it. ``build`` compiles a Sequre program once
per machine (the build cache)."""
from __future__ import annotations

from ..errors import ConfigError
from .engine import Engine


def get_engine(name: str) -> Engine:
    from . import command, mpyc, sequre

    engines = {"mpyc": mpyc.MPyC(), "sequre": sequre.Sequre(), "command": command.Command()}
    if name not in engines:
        raise ConfigError(f"engine.name: unknown engine {name!r} (choose {', '.join(engines)})")
    return engines[name]
