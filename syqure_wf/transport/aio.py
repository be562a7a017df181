"""Waiting with a bound that never swallows a cancellation.

``asyncio.wait_for`` on Python <= 3.11 drops a cancellation that arrives as
its inner future completes; the cancelled task then runs on and a shutdown
waits for it forever. ``asyncio.wait`` has no such race.
"""
from __future__ import annotations

import asyncio
import signal


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


class SignalStop:
    """Within ``with``: SIGTERM or SIGINT cancels the current task, and
    ``caught`` says which signal did, so the caller can report it."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.caught: str | None = None

    def __enter__(self) -> "SignalStop":
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig, task)
        return self

    def _on_signal(self, sig: signal.Signals, task: asyncio.Task) -> None:
        self.caught = self.caught or sig.name
        task.cancel()

    def __exit__(self, *exc) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.remove_signal_handler(sig)
