"""Waiting with a bound that never swallows a cancellation.

``asyncio.wait_for`` on Python <= 3.11 drops a cancellation that arrives as
its inner future completes; the cancelled task then runs on and a shutdown
waits for it forever. ``asyncio.wait`` has no such race.
"""
from __future__ import annotations

import asyncio


async def bounded(awaitable, timeout: float | None):
    """The result of ``awaitable``, or TimeoutError after ``timeout`` seconds."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise asyncio.TimeoutError
    return task.result()


async def cancel_all(tasks, grace: float = 5.0) -> None:
    """Cancel tasks and give them ``grace`` seconds to finish."""
    tasks = [t for t in tasks if t is not None]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)
