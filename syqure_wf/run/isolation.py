"""Network namespaces: several parties of one run on one host, each with a
loopback of its own, so that builds with compiled-in ports (Sequre) never
meet. A ``syqure-wf party`` whose run says ``isolation: netns`` re-executes
itself inside a new namespace; its proxy and its program share it, and the
message folder (a file system) is seen by all."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from ..errors import ConfigError

MARK = "SYQURE_WF_NETNS"  # set inside the namespace: enter it once


@functools.lru_cache(maxsize=1)
def netns_problem() -> str | None:
    """Why a network namespace cannot be made here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces exist on Linux only"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare and ip (util-linux, iproute2) are not installed"
    try:
        probe = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --net failed: {exc}"
    if probe.returncode != 0:
        return f"unshare --net failed: {(probe.stderr.strip().splitlines() or ['exit %d' % probe.returncode])[-1]}"
    return None


def check_netns(why: str) -> None:
    problem = netns_problem()
    if problem:
        raise ConfigError(f"isolation: {why}, so each party needs a network namespace of its own, "
                          f"but {problem}: run as root (or with CAP_SYS_ADMIN), or run one party per "
                          "machine (syqure-wf party --pid N on each)")


def isolate(cfg, parties_here: int) -> str:
    """Settle ``cfg.isolation`` for ``parties_here`` parties of the run on this
    host, and make sure a namespace can be made where one is needed."""
    from .config import isolation_for
    from ..engines import get_engine

    cfg.isolation = isolation_for(cfg, parties_here)
    if cfg.isolation == "netns":
        check_netns(f"{cfg.engine['name']} parties on one host use the same ports"
                    if get_engine(cfg.engine["name"]).needs_isolation(cfg) else "the run asks for it")
    return cfg.isolation


def inside() -> bool:
    return os.environ.get(MARK) == "1"


def reexec_inside(argv: list[str]) -> None:
    """Replace this process by ``argv`` run in a new network namespace with its loopback up."""
    os.environ[MARK] = "1"
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv])
