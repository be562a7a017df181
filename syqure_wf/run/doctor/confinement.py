"""What walls a party in here: a network namespace of its own, and
Landlock's view of its files (what a submitted party gets)."""
from __future__ import annotations

from .check import Check, fail, info, ok


def namespace_check(cfg, parties_here: int) -> Check:
    from ..isolation import isolation_for, netns_problem

    wanted = isolation_for(cfg, parties_here) if cfg else "none"
    problem = netns_problem()
    if wanted != "netns":
        why = "one party here" if cfg and parties_here == 1 else "the engine has no fixed ports"
        return info("namespaces", f"not needed ({why}); " + (f"unavailable: {problem}" if problem else "available"))
    if problem:
        return fail("namespaces", f"the run needs a network namespace per party, but {problem}",
                    "run as root (or with CAP_SYS_ADMIN), or one party per machine (syqure-wf party --pid N)")
    return ok("namespaces", f"{parties_here} parties here, a network namespace each can be made")


def confinement_check(cfg) -> Check:
    """Landlock here, tried on a real child; FAIL only where the run demands it."""
    from ..confine import Settings, landlock_abi, probe

    files = Settings.of(cfg).files if cfg else "auto"
    abi, why = landlock_abi()
    problem = why or probe()
    if problem is None:
        return ok("confinement", f"Landlock ABI {abi}, tried on a child: it could not read a file beside "
                                 "its view and wrote its output folder (submitted parties run so)")
    if files == "landlock":
        return fail("confinement", problem, "run on a Linux kernel with Landlock (5.13+) and python3 -m pip "
                    "install py-landlock, or set confine.files: auto")
    return info("confinement", f"none here: {problem} (a submitted party then sees what its agent sees)")
