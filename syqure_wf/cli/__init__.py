"""Command line: ``syqure-wf`` and ``sbproxy`` (the proxy alone, the seed's
flags). One module per group of commands; each adds its own to ``main``
when it is imported."""
from . import checks, desk, policy, proxy, run, sites, versions, watch
from .common import main
from .proxy import sbproxy

GROUPS = (run, checks, sites, proxy, desk, policy, watch, versions)
__all__ = ["main", "sbproxy"]
