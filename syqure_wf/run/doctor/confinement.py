"""What walls a party in here: a user and network namespace of its own,
Landlock's view of its files and the seccomp socket filter (what a
submitted party gets), each tried on a real child."""
from __future__ import annotations

from .check import Check, fail, info, ok

NO_NETNS_FIX = ("let users make user namespaces (sysctl kernel.unprivileged_userns_clone=1, or AppArmor's "
                "kernel.apparmor_restrict_unprivileged_userns=0), or one party per machine (syqure-wf party --pid N)")


def namespace_check(cfg, parties_here: int) -> Check:
    from ..isolation import isolation_for, netns_problem

    wanted = isolation_for(cfg, parties_here) if cfg else "none"
    problem = netns_problem()
    if wanted != "netns":
        why = "one party here" if cfg and parties_here == 1 else "the engine has no fixed ports"
        return info("namespaces", f"not needed by this run ({why}); a submitted party gets its own "
                    + (f"where it can: not here, {problem}" if problem else
                       "user and network namespace here (no root needed)"))
    if problem:
        return fail("namespaces", f"the run needs a network namespace per party, but {problem}", NO_NETNS_FIX)
    return ok("namespaces", f"{parties_here} parties here, a user and network namespace each can be made")


def confinement_check(cfg) -> Check:
    """Landlock, seccomp and namespaces here, tried on a real child; FAIL only where the run demands one."""
    from ..confine import landlock_abi, probe, required_problem
    from ..isolation import netns_problem
    from ..sockets import seccomp_problem

    abi, why = landlock_abi()
    found = probe()
    why = why or found.get("landlock")
    no_seccomp = seccomp_problem() or found.get("seccomp")
    walls = [f"Landlock ABI {abi}" if not why else f"no Landlock ({why})",
             "seccomp socket filter" if not no_seccomp else f"no seccomp ({no_seccomp})",
             "user+network namespaces" if not netns_problem() else f"no namespaces ({netns_problem()})"]
    said = "; ".join(walls)
    demanded = required_problem((cfg.raw.get("confine") if cfg else None) or {})
    if demanded:
        return fail("confinement", demanded, "run on a Linux kernel with Landlock (5.13+) and seccomp, "
                    "python3 -m pip install py-landlock pyseccomp, or set confine.files and confine.sockets: auto")
    if not why and not no_seccomp and not netns_problem():
        return ok("confinement", f"{said}; tried on a child: it read no file beside its view, wrote its output "
                                 "folder, and opened no UDP or Unix socket (submitted parties run so)")
    return info("confinement", f"{said} (a submitted party gets only the walls listed here; a policy's "
                               "confine: required refuses its runs)")
