"""Which sockets a confined program may open: ``confine.sockets`` (seccomp,
through libseccomp).

Landlock's network rules cover TCP ports only: a Landlock-confined program
could still connect to a pathname Unix socket (the user's systemd, D-Bus,
docker, ssh-agent), or carry an input out in a UDP packet (DNS to any
resolver) or over a raw socket. Under this filter the program creates only
TCP sockets (IPv4 or IPv6; Landlock and the network namespace say where
they go) and connected pairs of stream Unix sockets (``socketpair``, which
reach nothing outside the program: asyncio's self-pipe is one); every other
``socket``/``socketpair`` fails with EACCES, and so does ``io_uring_setup``
(its rings could open sockets beside the filter). Other architectures'
system calls (x32, i386 ``socketcall``) kill the program: libseccomp's default.

``SOCKETS`` is the pure description; ``Filter`` builds it in the parent and
``load`` (in the child, after fork) puts it on for good.
"""
from __future__ import annotations

import errno
import functools
import socket

SOCKETS = ("none", "auto", "seccomp")
TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC sit above it
ALLOWED_FAMILIES = (socket.AF_INET, socket.AF_INET6)
TCP_PROTOCOLS = (0, socket.IPPROTO_TCP)
# the largest address family a kernel may know; anything above is refused too
FAMILY_TOP = 64


def denials() -> list[tuple[str, list[tuple[int, str, int, int]]]]:
    """The filter as (system call, [(argument, op, value, mask)]) rules, each
    refused with EACCES; anything not listed is allowed. Every value but the
    allowed ones is listed (a rule compares all 64 bits, the kernel reads 32:
    a value with high bits set is refused, never let through)."""
    rules: list = []
    for family in range(FAMILY_TOP):
        if family not in ALLOWED_FAMILIES:
            rules.append(("socket", [(0, "eq", family, 0)]))
    rules.append(("socket", [(0, "gt", FAMILY_TOP - 1, 0)]))
    for kind in range(TYPE_MASK + 1):
        if kind != socket.SOCK_STREAM:
            rules.append(("socket", [(1, "masked_eq", kind, TYPE_MASK)]))
            rules.append(("socketpair", [(1, "masked_eq", kind, TYPE_MASK)]))
    for proto in range(1, socket.IPPROTO_TCP):
        rules.append(("socket", [(2, "eq", proto, 0)]))
    rules.append(("socket", [(2, "gt", socket.IPPROTO_TCP, 0)]))
    rules.append(("socketpair", [(0, "ne", socket.AF_UNIX, 0)]))
    rules.append(("io_uring_setup", []))
    return rules


@functools.lru_cache(maxsize=1)
def seccomp_problem() -> str | None:
    """Why this filter cannot be had here, or None."""
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        return "pyseccomp is not installed (python3 -m pip install pyseccomp)"
    except OSError as exc:  # libseccomp itself is missing
        return f"libseccomp cannot be loaded ({exc}; apt-get install libseccomp2)"
    try:
        Filter().close()
    except OSError as exc:
        return f"seccomp: {exc}"
    return None


class Filter:
    """The socket filter, built here; ``load`` (in the child) puts it on the
    calling process and everything it starts, for good."""

    def __init__(self):
        import pyseccomp as sc

        ops = {"eq": sc.EQ, "ne": sc.NE, "gt": sc.GT, "masked_eq": sc.MASKED_EQ}
        self._filter = sc.SyscallFilter(sc.ALLOW)
        refuse = sc.ERRNO(errno.EACCES)
        for call, args in denials():
            conditions = [sc.Arg(arg, ops[op], mask if op == "masked_eq" else value,
                                 value if op == "masked_eq" else 0) for arg, op, value, mask in args]
            self._filter.add_rule(refuse, call, *conditions)
        self._load = self._filter.load  # looked up here: after fork, only the call

    def load(self) -> None:
        self._load()

    def close(self) -> None:
        self._filter = self._load = None
