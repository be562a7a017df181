"""The waiter (waiter.py): a bounded wait with one timer for many waits,
and a lane that takes a notification during a wait on the notifier's turn."""
from __future__ import annotations

import asyncio

import pytest

from syqure_wf.transport.waiter import Waiter


def test_a_waiter_keeps_each_waits_bound_with_one_timer_for_many_waits():
    """Each wait ends when notified, or at its own deadline; the timer armed
    for an earlier wait serves the next (armed again when it fires too
    early), and a shorter wait than the one armed for arms it earlier."""

    async def main():
        loop, waiter = asyncio.get_running_loop(), Waiter()
        loop.call_later(0.02, waiter.notify)
        assert await waiter.wait(5.0) is True  # notified: the 5 s timer stays armed
        waiter.clear()
        t0 = loop.time()
        assert await waiter.wait(0.05) is False  # a shorter bound: armed again, earlier
        assert 0.04 <= loop.time() - t0 < 1.0
        loop.call_later(0.01, waiter.notify)
        assert await waiter.wait(0.05) is True  # its timer stays armed, for 0.05 s
        armed, t0 = waiter._timer, loop.time()
        waiter.clear()
        assert await waiter.wait(0.08) is False  # served by that timer, armed again when it fired
        assert waiter._timer is None and armed.cancelled() is False
        assert 0.07 <= loop.time() - t0 < 1.0
        waiter.clear()
        task = asyncio.ensure_future(waiter.wait(0.05))
        await asyncio.sleep(0)
        task.cancel()  # a cancelled wait leaves nothing waiting
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        assert waiter._future is None and waiter._timer is None

    asyncio.run(main())


def test_a_lane_takes_notifications_during_a_wait_and_ends_it_or_lets_it_go_on():
    """Outside a wait a notification only sets the flag; during one the lane
    runs on the notifier's turn (no wake-up of the waiter): it lets the wait
    go on to a new deadline, ends it with a value or an error, and a
    notification while the lane runs only sets the flag (no re-entry)."""
    said = []

    async def main():
        loop = asyncio.get_running_loop()
        script = []
        waiter = Waiter(lambda: script.pop(0)())
        waiter.notify()  # no wait: the flag, no lane
        assert await waiter.wait(5.0) is True
        waiter.clear()

        def go_on():
            said.append(("lane", waiter.notified()))
            waiter.clear()
            waiter.notify()  # in the lane: the flag only
            said.append(("flag", waiter.notified()))
            waiter.clear()
            waiter.extend(0.05)
        script += [go_on, lambda: waiter.resolve(("deliver", 1))]
        loop.call_later(0.01, waiter.notify)
        loop.call_later(0.03, waiter.notify)
        t0 = loop.time()
        assert await waiter.wait(0.02) == ("deliver", 1)  # went on past its first bound, then ended by the lane
        assert loop.time() - t0 >= 0.03
        waiter.clear()  # (a look, in a channel)
        script.append(go_on)
        loop.call_later(0.01, waiter.notify)
        t0 = loop.time()
        assert await waiter.wait(0.02) is False  # extended, then its new deadline
        assert 0.05 <= loop.time() - t0 < 1.0
        script.append(lambda: waiter.fail(OSError("disk gone")))
        loop.call_later(0.01, waiter.notify)
        with pytest.raises(OSError, match="disk gone"):
            await waiter.wait(5.0)
        assert waiter._future is None and not script

    asyncio.run(main())
    assert said == [("lane", True), ("flag", True), ("lane", True), ("flag", True)]


def test_an_extended_wait_ends_at_its_new_deadline_neither_earlier_nor_never():
    """``extend`` moves the current wait's deadline, earlier than the armed
    timer (armed again) or later (the timer, firing early, is armed again);
    a notification after the lane ended the wait, before the task resumes,
    is kept in the flag (no lost wake-up)."""

    async def main():
        loop = asyncio.get_running_loop()
        script = []
        waiter = Waiter(lambda: script.pop(0)())
        script.append(lambda: waiter.extend(0.05))
        loop.call_later(0.01, waiter.notify)
        t0 = loop.time()
        assert await waiter.wait(5.0) is False  # not 5 s: the timer armed again, earlier
        assert 0.05 <= loop.time() - t0 < 1.0
        waiter.clear()  # (a look, in a channel: the lane's)
        script.append(lambda: waiter.extend(0.2))
        loop.call_later(0.02, waiter.notify)
        t0 = loop.time()
        assert await waiter.wait(0.05) is False  # not at 0.05: the timer that fired early armed again
        assert 0.2 <= loop.time() - t0 < 1.5
        waiter.clear()

        def resolve_then_notified():
            waiter.clear()
            waiter.resolve(("deliver",))
        script.append(resolve_then_notified)
        task = asyncio.ensure_future(waiter.wait(5.0))
        await asyncio.sleep(0)
        waiter.notify()  # the lane: ends the wait
        waiter.notify()  # before the task resumed: the flag only, no lane
        assert await task == ("deliver",) and waiter.notified() and not script
        assert await waiter.wait(5.0) is True  # the next wait sees it at once

    asyncio.run(main())
