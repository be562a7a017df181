"""Each party's memory limit (issue 33): a peer's message that makes a
party allocate without end (a pickle's memo index, a bomb no check
foresaw) ends that party, named, and nothing else on the host.

``memory:`` in a run's configuration: bytes, or a size such as ``4G``,
``512M``; ``0`` for none. The default is half of this machine's memory
(at least 2 GiB): a bomb in one of three local parties leaves the others
and the host alone. Set with ``RLIMIT_AS`` in the party's process before
it runs the program, so it holds for everything the program starts.
"""
from __future__ import annotations

import os
import re

from ..errors import ConfigError

FLOOR = 2 << 30  # bytes: below this Python, NumPy and an engine's runtime may not start
_SIZE = re.compile(r"([0-9]+)\s*([KMGT]?)i?B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default() -> int:
    """Half of this machine's memory, at least FLOOR."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30
    return max(FLOOR, total // 2)


def parse(value, where: str = "memory") -> int:
    """Bytes of a ``memory:`` setting (None: the default; 0: no limit)."""
    if value is None:
        return default()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"{where}: {value!r} is no size (bytes, or a number with K, M, G or T; 0: no limit)")
    return int(match[1]) * _UNITS[match[2].upper()]


def shown(limit: int) -> str:
    """'4 GiB', '512 MiB'; 'no limit' for 0."""
    if not limit:
        return "no limit"
    for unit in ("T", "G", "M", "K"):
        if limit >= _UNITS[unit] and limit % _UNITS[unit] == 0:
            return f"{limit // _UNITS[unit]} {unit}iB"
    return f"{limit} bytes"


def limit_memory(limit: int):
    """A preexec step: the child's address space at most ``limit`` bytes."""
    def step() -> None:
        if limit:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return step


def ran_out(log_tail: list[str]) -> bool:
    """The program's last words say its memory limit stopped it."""
    return any("MemoryError" in line or "std::bad_alloc" in line or "out of memory" in line.lower()
               for line in log_tail[-20:])
