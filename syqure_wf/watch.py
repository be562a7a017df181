"""Wake-up on new files: inotify on Linux, watchdog elsewhere (FSEvents on
macOS), polling where told (``--poll-ms``, for network file systems).

A consumer subscribes to a folder and gets a ``Waiter``. The pattern that
loses no wake-up: ``waiter.clear()``, look at the disk, then
``await waiter.wait(timeout)`` if there was nothing.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path


class Waiter:
    def __init__(self, event: asyncio.Event | None = None) -> None:
        self._event = event or asyncio.Event()

    def clear(self) -> None:
        self._event.clear()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when the timeout ran out first."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


def _ignored(name: str | None) -> bool:
    # Temporary files are written and renamed; their own events wake nobody.
    return bool(name) and name.startswith(".") and name.endswith(".tmp")


class PollWatcher:
    """Wakes every waiter every ``interval`` seconds (the seed's behaviour)."""

    kind = "poll"

    def __init__(self, interval: float):
        self.interval = interval
        self._waiters: list[Waiter] = []
        self._task: asyncio.Task | None = None

    def subscribe(self, folder: Path, event: asyncio.Event | None = None) -> Waiter:
        waiter = Waiter(event)
        self._waiters.append(waiter)
        return waiter

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for waiter in self._waiters:
                waiter.notify()

    def close(self) -> None:
        if self._task:
            self._task.cancel()


class InotifyWatcher:
    """One inotify descriptor read by the event loop itself: no thread, no
    CPU while idle."""

    kind = "inotify"

    def __init__(self) -> None:
        from asyncinotify import Inotify, Mask

        self._mask = (Mask.CREATE | Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.DELETE
                      | Mask.MOVED_FROM | Mask.ATTRIB | Mask.ONLYDIR)
        self._inotify = Inotify()
        self._by_path: dict[Path, list[Waiter]] = {}
        self._task: asyncio.Task | None = None

    def subscribe(self, folder: Path, event: asyncio.Event | None = None) -> Waiter:
        folder = Path(folder)
        waiter = Waiter(event)
        if folder not in self._by_path:
            self._inotify.add_watch(folder, self._mask)
            self._by_path[folder] = []
        self._by_path[folder].append(waiter)
        return waiter

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        async for event in self._inotify:
            if event.watch is None or _ignored(event.name and str(event.name)):
                continue
            for waiter in self._by_path.get(event.watch.path, ()):
                waiter.notify()

    def close(self) -> None:
        if self._task:
            self._task.cancel()
        self._inotify.close()


class WatchdogWatcher:
    """watchdog's native observer (FSEvents on macOS), woken across threads."""

    kind = "watchdog"

    def __init__(self) -> None:
        from watchdog.observers import Observer

        self._observer = Observer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_path: dict[str, list[Waiter]] = {}

    def subscribe(self, folder: Path, event: asyncio.Event | None = None) -> Waiter:
        from watchdog.events import FileSystemEventHandler

        key = str(Path(folder))
        waiter = Waiter(event)
        if key not in self._by_path:
            self._by_path[key] = []
            watcher = self

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event):
                    name = Path(str(getattr(event, "dest_path", "") or event.src_path)).name
                    if not _ignored(name) and watcher._loop is not None:
                        for w in watcher._by_path[key]:
                            watcher._loop.call_soon_threadsafe(w.notify)

            self._observer.schedule(Handler(), key, recursive=False)
        self._by_path[key].append(waiter)
        return waiter

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._observer.start()

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=2)


def make_watcher(poll_ms: float | None = None, backend: str | None = None):
    """The best watcher here; ``poll_ms`` forces polling at that interval."""
    if poll_ms:
        return PollWatcher(poll_ms / 1000.0)
    if backend in (None, "inotify") and sys.platform.startswith("linux"):
        try:
            return InotifyWatcher()
        except (ImportError, OSError):
            if backend == "inotify":
                raise
    try:
        return WatchdogWatcher()
    except ImportError:
        return PollWatcher(0.01)
