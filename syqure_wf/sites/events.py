"""Wake-up for the agent and the submitter: watchdog's native observer
(inotify, FSEvents) on the few folders that matter, each watched alone
(never the whole datasites tree: the MPC channels beside them are busy).
Any create, write, close or rename in one of them sets a threading.Event;
the sync client writes peers' files in place, in any order."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable

WAKES = ("created", "modified", "moved", "deleted", "closed")  # closed: after a write


class _Released(logging.Filter):
    """watchdog logs an event that races the release of its watch as an
    error; a run's folders released while a peer still writes are expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_Released())


class Events:
    def __init__(self, wake: threading.Event) -> None:
        from watchdog.observers import Observer

        self.wake = wake
        self._observer = Observer()
        self._observer.daemon = True
        self._watched: dict[str, object] = {}  # folder -> its watchdog watch

    def watch(self, folder: Path, matters: Callable[[str], bool] = lambda path: True) -> bool:
        """Watch ``folder`` (not below it) once; False while it does not exist."""
        from watchdog.events import FileSystemEventHandler

        key = str(folder)
        if key in self._watched:
            return True
        if not os.path.isdir(folder) or os.path.islink(folder):
            return False
        wake = self.wake

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type not in WAKES:  # reading a file (ours too) must never wake us
                    return
                if any(p and matters(str(p)) for p in (event.src_path, getattr(event, "dest_path", ""))):
                    wake.set()

        try:
            self._watched[key] = self._observer.schedule(Handler(), key, recursive=False)
        except OSError:
            return False
        return True

    def unwatch(self, folder: Path) -> None:
        """Stop watching ``folder`` (a run that ended): its inotify watch released."""
        watch = self._watched.pop(str(folder), None)
        if watch is not None:
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError):
                pass

    def watch_deepest(self, chain: list[Path]) -> None:
        """Watch the deepest folder of ``chain`` that exists (the next one's
        creation wakes, and the caller watches deeper then)."""
        for folder in reversed(chain):
            if self.watch(folder):
                return

    @property
    def count(self) -> int:
        return len(self._watched)

    def start(self) -> "Events":
        self._observer.start()
        return self

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=2)
