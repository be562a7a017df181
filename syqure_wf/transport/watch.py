"""Wake-up on new files: inotify on Linux, watchdog elsewhere (FSEvents on
macOS), polling where told (``--poll-ms``, for network file systems).

A consumer subscribes a callback to a folder, for ``arrivals`` (a marker
created: the shared layout, where the marker comes last),
``writes`` (arrivals, and files written in place, as a sync client does) or
``removals`` (one deleted: the peer consumed it). Only message file names
wake anybody: temporary files, stamps and status records do not. The ``Waiter`` turns
callbacks into a bounded wait with no lost wake-up: ``clear()``, look at
the disk, then ``await wait(timeout)`` if there was nothing.
"""
from __future__ import annotations

import asyncio
import os
import struct
import sys
from pathlib import Path
from typing import Callable

ARRIVALS, WRITES, REMOVALS = "arrivals", "writes", "removals"


class Waiter:
    """A flag with a bounded, cancellation-safe wait; no task per wait."""

    def __init__(self) -> None:
        self._flag = False
        self._future: asyncio.Future | None = None

    def clear(self) -> None:
        self._flag = False

    def notify(self) -> None:
        self._flag = True
        if self._future is not None and not self._future.done():
            self._future.set_result(True)

    async def wait(self, timeout: float) -> bool:
        """True when notified, False when ``timeout`` seconds ran out first."""
        if self._flag:
            return True
        loop = asyncio.get_running_loop()
        self._future = future = loop.create_future()
        timer = loop.call_later(timeout, lambda: future.done() or future.set_result(False))
        try:
            return await future
        finally:
            timer.cancel()
            self._future = None


_MARKERS = (b".ready", b".end")


def _wakes(name: bytes, on: str) -> bool:
    """Whether an event for ``name`` may change what a consumer waits for.
    Arrivals in the shared layout happen by rename, the marker last: only
    markers wake. Files written in place by a sync may complete in any order.
    """
    if not name[:1].isdigit():
        return False  # temporary files, stamps, status records
    return name.endswith(_MARKERS) if on == ARRIVALS else True


class PollWatcher:
    """Calls every callback every ``interval`` seconds (the seed's behaviour)."""

    kind = "poll"

    def __init__(self, interval: float):
        self.interval = interval
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task | None = None

    def subscribe(self, folder: Path, callback: Callable[[], None], on: str = ARRIVALS) -> None:
        self._callbacks.append(callback)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for callback in self._callbacks:
                callback()

    def close(self) -> None:
        if self._task:
            self._task.cancel()


class InotifyWatcher:
    """One inotify descriptor read by the event loop itself: no thread, no
    task, and no CPU while idle. asyncinotify opens it and registers the
    watches; the events are parsed here, straight from the bytes, because
    building its Event objects (paths, enums) cost more than all the file
    operations of a message."""

    kind = "inotify"
    _EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length

    def __init__(self) -> None:
        from asyncinotify import Inotify, Mask

        # Arrivals: the marker is created last, so its creation is the only event
        # the reader needs (renames of the message itself would wake it early).
        arrivals = Mask.CREATE | Mask.ONLYDIR
        self._masks = {ARRIVALS: arrivals,
                       WRITES: arrivals | Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.MODIFY,
                       REMOVALS: Mask.DELETE | Mask.MOVED_FROM | Mask.ONLYDIR}
        self._inotify = Inotify()
        self._fd = self._inotify.fd
        # asyncinotify 4.x defines NONBLOCK as O_CLOEXEC: the descriptor must be
        # made non-blocking here, or a read would block the whole loop.
        os.set_blocking(self._fd, False)
        self._subs: dict[Path, list[tuple[int, str, Callable[[], None]]]] = {}
        self._by_wd: dict[int, list[tuple[int, str, Callable[[], None]]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, folder: Path, callback: Callable[[], None], on: str = ARRIVALS) -> None:
        folder = Path(folder)
        subs = self._subs.setdefault(folder, [])
        subs.append((int(self._masks[on]), on, callback))
        combined = 0
        for mask, _, _ in subs:
            combined |= mask
        watch = self._inotify.add_watch(folder, combined)  # replaces the folder's mask
        self._by_wd[watch.wd] = subs

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._drain)

    def _drain(self) -> None:
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        pos, size = 0, self._EVENT.size
        while pos < len(data):
            wd, mask, _, length = self._EVENT.unpack_from(data, pos)
            name = data[pos + size:pos + size + length].rstrip(b"\0")
            pos += size + length
            for wanted, on, callback in self._by_wd.get(wd, ()):
                if mask & wanted and _wakes(name, on):
                    callback()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._inotify.close()


class WatchdogWatcher:
    """watchdog's native observer (FSEvents on macOS), woken across threads."""

    kind = "watchdog"

    def __init__(self) -> None:
        from watchdog.observers import Observer

        self._observer = Observer()
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, folder: Path, callback: Callable[[], None], on: str = ARRIVALS) -> None:
        from watchdog.events import FileSystemEventHandler

        watcher = self
        wanted = {ARRIVALS: {"created", "moved"}, WRITES: {"created", "moved", "modified", "closed"},
                  REMOVALS: {"deleted", "moved"}}[on]

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                path = (getattr(event, "dest_path", "") if event.event_type == "moved" and on != REMOVALS
                        else event.src_path)
                if (event.event_type in wanted and _wakes(os.fsencode(Path(str(path)).name), on)
                        and watcher._loop is not None):
                    watcher._loop.call_soon_threadsafe(callback)

        self._observer.schedule(Handler(), str(folder), recursive=False)

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
