"""Wake-up on new files: inotify on Linux, watchdog elsewhere (FSEvents on
macOS), polling where told (``--poll-ms``), and looks at a fixed pace where
events do not announce what peers write (``Wakeups``: network and FUSE file
systems, or any folder where a look found a message no event announced).

A consumer subscribes a callback to a folder, for ``arrivals`` (a marker
created: the shared layout, where the marker comes last),
``writes`` (arrivals, and files written in place, as a sync client does) or
``removals`` (one deleted: the peer consumed it). Only message file names
wake anybody: temporary files, stamps and status records do not. A
``waiter.Waiter`` turns callbacks into a bounded wait with no lost wake-up.
"""
from __future__ import annotations

import asyncio
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ARRIVALS, WRITES, REMOVALS = "arrivals", "writes", "removals"
LOOK = 0.25  # seconds between looks no event asked for, where events announce peers' writes
POLL = 0.01  # seconds between looks where they do not (measured: bench/RESULTS.md)
# Clients of these see no change events for what other clients (hosts, mounts) write.
REMOTE_FS = frozenset({"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "ceph", "9p",
                       "glusterfs", "afs", "davfs", "gfs2", "ocfs2", "orangefs", "pvfs2", "panfs",
                       "wekafs", "virtiofs", "fuse", "fuseblk"})
FS_TYPE_ENV = "SYQURE_WF_FS_TYPE"  # tests and benchmarks: the type to assume for every message folder


def remote_fs(fstype: str) -> bool:
    """Whether writes by another client of this file system raise no events here."""
    return fstype in REMOTE_FS or fstype.startswith(("nfs", "fuse."))


class Wakeups:
    """Whether file events announce what peers write into this party's
    inboxes, and how long to wait for one before looking anyway. Pure: the
    proxy tells it what its looks found, it answers.

    ``poll_ms`` forces polling at that pace; a known network or FUSE file
    system polls from the start, every ``poll`` seconds (events still wake
    at once where they come: a peer on the same host or mount). Elsewhere a
    proxy waits for events and looks every ``look`` seconds; when looks find
    ``misses`` messages in a row that no event announced, it polls from
    then on (1 where the watcher reads every queued event before the
    verdict, so a late event is never taken for a missing one: inotify).
    ``note`` says which, ``arrived`` returns it once when it changes."""

    def __init__(self, folder: str, fstype: str, poll_ms: float | None = None, misses: int = 1,
                 look: float = LOOK, poll: float = POLL):
        self.folder, self.fstype, self.misses, self.poll = folder, fstype, misses, poll
        self.missed = 0
        if poll_ms:
            self.polling, self.interval = True, poll_ms / 1000.0
            self.note = f"polling every {poll_ms:g} ms (poll_ms)"
        elif remote_fs(fstype):
            self.polling, self.interval = True, poll
            self.note = (f"{folder} is on {fstype}, whose other clients' writes raise no change events here: "
                         f"polling every {poll * 1000:g} ms")
        else:
            self.polling, self.interval = False, look
            self.note = f"change events on {folder} ({fstype})"

    def arrived(self, announced: bool) -> str | None:
        """A look found a message after a look that found none; ``announced``:
        an event came between. The new ``note`` when polling starts, else None."""
        if self.polling:
            return None
        if announced:
            self.missed = 0
            return None
        self.missed += 1
        if self.missed < self.misses:
            return None
        self.polling, self.interval = True, self.poll
        self.note = (f"no change events for peers' writes on {self.folder} ({self.fstype}): "
                     f"polling every {self.poll * 1000:g} ms")
        return self.note


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    root: str  # the folder of the file system mounted at ``point``


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[Mount]:
    """This process's mounts (Linux: /proc/self/mountinfo), in mount order."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 2:
            found.append(Mount(_unescape(fields[4]), rest[0], _unescape(rest[1]), _unescape(fields[3])))
    return found


def mount_of(path: str | os.PathLike) -> Mount | None:
    """The mount that holds ``path`` (the last one mounted there wins)."""
    target, best = os.path.realpath(path), None
    for m in mounts():
        if target == m.point or target.startswith(m.point.rstrip("/") + "/"):
            if best is None or len(m.point) >= len(best.point):
                best = m
    return best


def fs_type(path: str | os.PathLike) -> str:
    """The file system type of ``path`` or of its nearest existing folder ("?" where unknown)."""
    if os.environ.get(FS_TYPE_ENV):
        return os.environ[FS_TYPE_ENV]
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    m = mount_of(path)
    return m.fstype if m else "?"


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
    exact = False

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

    def flush(self) -> None:
        pass

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
    exact = True  # every event queued before a look is read by ``flush``
    _EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length
    _OVERFLOW = 0x4000  # IN_Q_OVERFLOW: events were lost, so everybody looks

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

    def _drain(self) -> bool:
        """Read and dispatch what is queued; False when nothing was."""
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return False
        pos, size = 0, self._EVENT.size
        while pos < len(data):
            wd, mask, _, length = self._EVENT.unpack_from(data, pos)
            name = data[pos + size:pos + size + length].rstrip(b"\0")
            pos += size + length
            if mask & self._OVERFLOW:
                for subs in self._by_wd.values():
                    for _, _, callback in subs:
                        callback()
                continue
            for wanted, on, callback in self._by_wd.get(wd, ()):
                if mask & wanted and _wakes(name, on):
                    callback()
        return True

    def flush(self) -> None:
        """Dispatch every event already queued (the loop may not have read them yet)."""
        while self._drain():
            pass

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._inotify.close()


class WatchdogWatcher:
    """watchdog's native observer (FSEvents on macOS), woken across threads."""

    kind = "watchdog"
    exact = False  # events come from a thread, perhaps after the look that found their file

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

    def flush(self) -> None:
        pass

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
