"""Who runs an asyncio loop's turns when two loops share a process: the
party's loop runs its proxy's while it turns (``Turns``), and a party's
writes of one turn go out as the turn ends (``TurnEnd``). Both wrap a
loop's selector, and so lean on private parts of asyncio's loops
(``_selector``, ``_run_once``, ``_ready``, ``_scheduled``)."""
from __future__ import annotations

import asyncio
import logging
import threading
from asyncio import events

log = logging.getLogger(__name__)

STALE = 0.05  # seconds the proxy's work may wait for a party's loop that does not turn, before its thread does it
PARK_WAIT = 2.0  # seconds the party waits for the proxy's thread to hand its loop over
BURST = 4  # iterations of the proxy's loop in one turn of the party's, while it has work ready


class Turns:
    """Who runs the proxy's loop: its thread, or, once lent (``lend``), the
    party's own thread from inside the party's loop (``mpc.run``). Lent, a
    message that arrives wakes the party's thread itself (the proxy's epoll
    descriptor is one of its loop's readers) and is read, consumed and handed
    to MPyC there: no hand-off between threads, each of which waited for the
    interpreter's lock (bench/RESULTS.md). The proxy's thread keeps what is
    due (heartbeats, looks) whenever the party's loop does not turn for
    ``STALE`` s: it computes, or runs no loop between two ``mpc.run``. One
    lock: whoever runs an iteration of the proxy's loop holds it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        # on the proxy's thread, inside an iteration of its loop
        self.loop, self.inner = loop, loop._selector  # type: ignore[attr-defined]
        self.owner = threading.get_ident()
        self.lock = threading.Lock()
        self.lock.acquire()  # the proxy's thread holds it, but while it waits in ``select``
        self.lent = False
        self.parked, self.nudge = threading.Event(), threading.Event()
        self.pumps = 0
        self.party: asyncio.AbstractEventLoop | None = None
        self._soon = self._at = None
        loop._selector = self  # type: ignore[attr-defined]

    def __getattr__(self, name):  # the selector's other methods: register, modify, unregister, ...
        return getattr(self.inner, name)

    def select(self, timeout=None):
        if threading.get_ident() != self.owner:
            return self.inner.select(0)  # a pump on the party's thread (it holds the lock)
        self.lock.release()
        try:
            if not self.lent:
                return self.inner.select(timeout)
            self._park()
        finally:
            self.lock.acquire()
        return self.inner.select(0)

    def _park(self) -> None:
        """While lent: return when given back, or when work is due that the party's loop does not pump."""
        seen = self.pumps
        while self.lent:
            self.parked.set()
            if self.nudge.wait(STALE):
                self.nudge.clear()
                continue
            if self.pumps == seen and self._due():
                return
            seen = self.pumps

    def _due(self) -> bool:
        loop = self.loop  # work ready, a timer due, or an event (a message arrived) its loop did not pump
        try:  # read while a pump may change them: at worst an iteration for nothing
            return bool(loop._ready or loop._scheduled and loop._scheduled[0]._when <= loop.time()  # type: ignore
                        or self.inner.select(0))
        except (IndexError, OSError):
            return True

    # -- on the party's thread
    def lend(self, party: asyncio.AbstractEventLoop) -> None:
        """From now on the party's loop runs the proxy's while it turns."""
        if self.lent:
            return
        self.parked.clear()
        self.lent = True
        self.nudge.set()
        self.loop._write_to_self()  # type: ignore[attr-defined]  # out of its wait for events
        if not self.parked.wait(PARK_WAIT):
            self.lent = False  # busy: it keeps its loop, the party tries again at its next run
            return
        self.party = party
        party.add_reader(self.inner.fileno(), self.pump)
        self.pump()

    def pump(self) -> None:
        """One turn of the party's loop: iterations of the proxy's while it has work."""
        party = self.party
        if not self.lent:  # given back, or its thread ended (holding the lock)
            return self._unhook()
        if not self.lock.acquire(timeout=PARK_WAIT):
            log.warning("the proxy's loop is busy on its thread: left to it")
            return self.give_back()
        try:
            ended = self._iterate()
        except Exception:  # a bug here must not stop MPyC's loop: the proxy's thread takes over
            log.exception("the proxy's loop in the party's: given back to its thread")
            ended = True
        except BaseException:  # an interrupt is the party's: it goes on, the proxy's thread takes over
            self.give_back()
            raise
        finally:
            self.lock.release()
        if ended:  # the proxy's loop was stopped (the proxy ended): its thread ends it
            return self.give_back()
        self._next(party)

    def _iterate(self) -> bool:
        """Holding the lock: True when the proxy's loop is not the party's to run (any more)."""
        if not self.lent:
            return True
        self.pumps += 1
        running = events._get_running_loop()
        events._set_running_loop(self.loop)
        try:
            for _ in range(BURST):
                self.loop._run_once()  # type: ignore[attr-defined]
                if not self.loop._ready or self.loop._stopping:  # type: ignore[attr-defined]
                    break
        finally:
            events._set_running_loop(running)
        return bool(self.loop._stopping)  # type: ignore[attr-defined]

    def _next(self, party) -> None:
        loop = self.loop
        if loop._ready:  # type: ignore[attr-defined]
            if self._soon is None or self._soon.cancelled():
                self._soon = party.call_soon(self._pump_soon)
        elif loop._scheduled:  # type: ignore[attr-defined]
            when = loop._scheduled[0]._when  # type: ignore[attr-defined]
            # Armed again only for an earlier timer: one armed earlier than needed
            # (the proxy's timer was cancelled or moved) pumps once for nothing.
            if self._at is None or when < self._at.when():
                if self._at is not None:
                    self._at.cancel()
                self._at = party.call_at(when, self._pump_at)

    def _pump_soon(self) -> None:
        self._soon = None
        self.pump()

    def _pump_at(self) -> None:
        self._at = None
        self.pump()

    def give_back(self) -> None:
        """On the party's thread, its loop stopped or in a callback: the proxy's thread runs its loop again."""
        self.lent = False
        self._unhook()
        self.nudge.set()

    def _unhook(self) -> None:
        party, self.party = self.party, None
        for handle in (self._soon, self._at):
            if handle is not None:
                handle.cancel()
        self._soon = self._at = None
        if party is not None and not party.is_closed():
            party.remove_reader(self.inner.fileno())

    def reclaim(self) -> None:
        """On the proxy's thread (it holds the lock): its loop ends, the party's pumps stop."""
        self.lent = False


class TurnEnd:
    """The party's loop's selector, wrapped: at the end of each turn (the next
    ``select``) the ends written to in it flush their batches. A ``call_soon``
    flush would cost a turn of its own (an ``epoll_wait``) per message."""

    def __init__(self, selector):
        self.inner, self.ends = selector, []  # the ends to flush

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> TurnEnd | None:
        """The loop's (wrapped now if not yet), or None: a loop without a selector."""
        selector = getattr(loop, "_selector", None)
        if selector is None:
            return None
        if not isinstance(selector, cls):
            selector = loop._selector = cls(selector)  # type: ignore[attr-defined]
        return selector

    def __getattr__(self, name):  # the selector's other methods: register, modify, unregister, ...
        return getattr(self.inner, name)

    def select(self, timeout=None):
        if self.ends:
            ends, self.ends = self.ends, []
            for end in ends:
                try:
                    end.flush()
                except Exception:  # as a callback's would be: said, and the loop goes on
                    log.exception("in-process connection: a flush at the end of a turn failed")
        return self.inner.select(timeout)
