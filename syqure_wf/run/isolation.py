"""Network namespaces: several parties of one run on one host, each with a
loopback of its own, so that builds with compiled-in ports (Sequre) never
meet. A ``syqure-wf party`` whose run says ``isolation: netns`` re-executes
itself inside a new namespace; its proxy and its program share it, and the
message folder (a file system) is seen by all. A site's agent gives every
party it runs one (``isolation: auto`` in its policy; sites/partyconfig.py):
nothing on the host's network, the host's loopback included, is in reach.

The namespace comes with a user namespace of its own (``unshare --user
--map-root-user``): no root needed wherever the kernel lets users make one,
and root gets no more than a user inside (files of other users are out of
its reach). Inside, the process is uid 0 of that namespace only."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from ..errors import ConfigError

MARK = "SYQURE_WF_NETNS"  # set inside the namespace: enter it once
UNSHARE = ("unshare", "--user", "--map-root-user", "--net", "--")


@functools.lru_cache(maxsize=1)
def netns_problem() -> str | None:
    """Why a network namespace cannot be made here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces exist on Linux only"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare and ip (util-linux, iproute2) are not installed"
    try:
        probe = subprocess.run([*UNSHARE, "ip", "link", "set", "lo", "up"],
                               capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no user and network namespace: {exc}"
    if probe.returncode != 0:
        said = (probe.stderr.strip().splitlines() or ['exit %d' % probe.returncode])[-1]
        return f"no user and network namespace ({said}; is kernel.unprivileged_userns_clone or " \
               "AppArmor's userns restriction on?)"
    return None


def check_netns(why: str) -> None:
    problem = netns_problem()
    if problem:
        raise ConfigError(f"isolation: {why}, so each party needs a network namespace of its own, "
                          f"but {problem}: let users make namespaces (sysctl), or run one party per "
                          "machine (syqure-wf party --pid N on each)")


def isolate(cfg, parties_here: int):
    """``cfg`` with its isolation settled for ``parties_here`` parties of the
    run on this host, once sure a namespace can be made where one is needed."""
    from dataclasses import replace

    from ..engines import get_engine

    cfg = replace(cfg, isolation=isolation_for(cfg, parties_here))
    if cfg.isolation == "netns":
        check_netns(f"{cfg.engine['name']} parties on one host use the same ports"
                    if get_engine(cfg.engine["name"]).needs_isolation(cfg) else "the run asks for it")
    return cfg


def inside() -> bool:
    return os.environ.get(MARK) == "1"


def reexec_inside(argv: list[str]) -> None:
    """Replace this process by ``argv`` run in a new network namespace with its loopback up."""
    os.environ[MARK] = "1"
    os.execvp("unshare", [*UNSHARE, "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv])


def enter(cfg, pid: int, argv: list[str]) -> None:
    """Re-exec party ``pid`` as ``argv`` in its namespace. Its site's SyftBox
    client and server stay out of its reach there, so the sync probe stays
    outside: a relay on the host's network writes its verdicts where the
    party reads them (transport/sync_relay.py)."""
    if cfg.layout == "syftbox":
        start_sync_relay(cfg.logs_dir, pid, cfg.syftbox_folder(pid))
    reexec_inside(argv)


def start_sync_relay(logs_dir, pid: int, folder) -> subprocess.Popen:
    """Party ``pid``'s sync relay; it dies with this process, which stays the
    same process through the exec into the namespace."""
    from ..transport import prepare_relay
    from .children import die_with_parent

    return subprocess.Popen(prepare_relay(logs_dir, pid, folder), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, preexec_fn=die_with_parent())


def isolation_for(cfg, parties_here: int) -> str:
    """none or netns for ``parties_here`` parties of the run on this host:
    ``auto`` gives each a network namespace where the engine needs it
    (Sequre's compiled-in ports); one party per machine needs none."""
    if cfg.isolation != "auto":
        return cfg.isolation
    from ..engines import get_engine

    return "netns" if parties_here > 1 and get_engine(cfg.engine["name"]).needs_isolation(cfg) else "none"


def check_port_overlap(cfg) -> None:
    """Parties on one host must not share a port (their proxies' or their own),
    unless each has a network namespace of its own."""
    from ..engines import get_engine

    if isolation_for(cfg, cfg.n) == "netns":
        return
    if cfg.transport == "tcp" and get_engine(cfg.engine["name"]).shared_port_base(cfg.engine):
        return  # no proxies: the build's own plan (lower listens, higher dials) never clashes
    owner: dict[tuple[str, int], int] = {}
    for p in cfg.parties:
        for port in cfg.ports(p.pid):
            other = owner.setdefault((p.host, port), p.pid)
            if other != p.pid:
                fix = ("this build's ports are compiled in: use isolation: netns (or auto), or one "
                       "party per machine" if get_engine(cfg.engine["name"]).shared_port_base(cfg.engine)
                       else "give them other base ports")
                raise ConfigError(f"{cfg.where}: ports: parties {other} and {p.pid} on host {p.host} "
                                  f"would both use port {port}; {fix}")
