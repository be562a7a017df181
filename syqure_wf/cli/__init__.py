"""Command line: ``syqure-wf`` and ``sbproxy`` (the proxy alone, the seed's
flags). One module per group of commands; each adds its own to ``main``
when it is imported."""
from . import checks, proxy, run, sites, versions
from .common import main
from .proxy import sbproxy

GROUPS = (run, checks, sites, proxy, versions)
__all__ = ["main", "sbproxy"]
