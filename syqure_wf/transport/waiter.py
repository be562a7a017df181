"""A bounded wait for a notification (a watcher's callback, a beat asked
for), with no lost wake-up: ``clear()``, look at the disk, then ``await
wait(timeout)`` if there was nothing."""
from __future__ import annotations

import asyncio
from typing import Any, Callable


class Waiter:
    """A flag with a bounded, cancellation-safe wait; no task per wait, and
    no timer per wait either: a channel waits once per message, and one
    timer, armed for the earliest deadline, serves the waits that follow
    (when it fires before the current wait's deadline, it is armed again).

    A ``lane`` takes a notification during a wait itself, on the notifier's
    turn of the loop, instead of waking the waiter: it ends the wait
    (``resolve``, ``fail``) or lets it go on (``extend``)."""

    def __init__(self, lane: Callable[[], None] | None = None) -> None:
        self._flag = False
        self._future: asyncio.Future | None = None
        self._deadline = 0.0  # of the current wait, on its loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0.0  # the deadline the timer fires at
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self.count = 0  # notifications so far: did one come since a look?
        self.lane = lane
        self._in_lane = False  # a notification meanwhile only sets the flag

    def clear(self) -> None:
        self._flag = False

    def notified(self) -> bool:
        return self._flag

    def notify(self) -> None:
        self._flag = True
        self.count += 1
        if self._future is None or self._future.done() or self._in_lane:
            return
        if self.lane is None:
            self._future.set_result(True)
            return
        self._in_lane = True
        try:
            self.lane()
        finally:
            self._in_lane = False

    async def wait(self, timeout: float) -> Any:
        """True when notified, False when ``timeout`` seconds ran out first;
        or what the lane ``resolve``d the wait with."""
        if self._flag:
            return True
        loop = asyncio.get_running_loop()
        self._future = future = loop.create_future()
        self._deadline = deadline = loop.time() + timeout
        timer = self._timer
        if timer is None or deadline < self._armed or self._timer_loop is not loop:
            if timer is not None:
                timer.cancel()
            self._arm(loop, deadline)
        try:
            return await future
        finally:
            self._future = None

    # -- the lane's, during a wait
    def resolve(self, value: Any) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(value)

    def fail(self, exc: BaseException) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_exception(exc)

    def extend(self, timeout: float) -> None:
        """The wait goes on, ``timeout`` seconds from now."""
        loop = self._timer_loop
        if loop is None:
            return
        self._deadline = deadline = loop.time() + timeout
        if self._timer is None or deadline < self._armed:
            if self._timer is not None:
                self._timer.cancel()
            self._arm(loop, deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._armed, self._timer_loop = deadline, loop
        self._timer = loop.call_at(deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        future = self._future
        if future is None or future.done():
            return
        if self._deadline <= self._armed:
            future.set_result(False)
        else:  # armed for an earlier wait: this one runs on
            self._arm(loop, self._deadline)
