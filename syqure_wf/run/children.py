"""The processes a runner starts (a party's program, the local runner's
parties, an agent's builds and parties): each leads a process group of its
own, dies with its parent, and is stopped as a group: SIGTERM, then SIGKILL
for what is left after a grace."""
from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import time

from ..transport import bounded

GRACE = 5.0  # seconds between SIGTERM and SIGKILL
KILL_WAIT = 5.0  # seconds for a killed group's leader to be reaped


def die_with_parent(sig: signal.Signals = signal.SIGKILL):
    """A preexec_fn: the child gets ``sig`` when its parent dies, even by
    SIGKILL, so nothing a runner started outlives it (Linux; elsewhere a no-op)."""
    def preexec() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    return preexec


def _steps(grace: float) -> tuple[tuple[signal.Signals, float], ...]:
    return (signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def stop_groups(procs: list[subprocess.Popen], grace: float = GRACE) -> None:
    """Every group led by ``procs`` still running: TERM, KILL after ``grace``."""
    for sig, wait in _steps(grace):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for proc in alive:
            _signal_group(proc.pid, sig)
        deadline = time.monotonic() + wait
        for proc in alive:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


async def stop_group(proc: asyncio.subprocess.Process, grace: float = GRACE) -> None:
    """``stop_groups`` for a child of an event loop."""
    for sig, wait in _steps(grace):
        if proc.returncode is not None:
            return
        _signal_group(proc.pid, sig)
        try:
            await bounded(asyncio.shield(proc.wait()), wait)
        except asyncio.TimeoutError:
            continue
