"""The party's loop lent to its proxy's (transport/party_thread.py
``Turns``) when the party's program misbehaves: it raises inside
``mpc.run`` (its loop stops while lent), then closes its loop. The proxy's
loop goes on, on its own thread; giving it back afterwards raises nothing;
the proxy's thread ends when its loop is done. Two real loops, two threads."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from syqure_wf.transport.turns import Turns

BOUND = 10.0  # seconds any wait here may take


def wait_for(what: str, check) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"waited {BOUND:g} s for {what}"
        time.sleep(0.01)


def test_a_program_that_raises_inside_its_loop_then_closes_it_leaves_the_proxys_loop_running():
    ticks: list[int] = []  # the thread each turn of the proxy's loop ran on
    box: dict = {}

    async def proxy_main():
        box["turns"] = Turns(asyncio.get_running_loop())
        box["stop"] = asyncio.get_running_loop().create_future()
        try:
            while not box["stop"].done():
                ticks.append(threading.get_ident())
                await asyncio.wait([box["stop"]], timeout=0.01)
        finally:
            box["turns"].reclaim()

    proxy = threading.Thread(target=asyncio.run, args=(proxy_main(),), daemon=True)
    proxy.start()
    wait_for("the proxy's loop to start", lambda: "stop" in box)
    turns, party = box["turns"], asyncio.new_event_loop()

    async def program():
        await asyncio.sleep(0.1)  # the proxy's loop turns on this thread meanwhile
        raise ValueError("the program's own error")

    try:
        turns.lend(party)
        with pytest.raises(ValueError, match="the program's own error"):
            party.run_until_complete(program())
        since = len(ticks)
        wait_for("the proxy's thread to take its loop back", lambda: proxy.ident in ticks[since:])
        party.close()
        since = len(ticks)
        wait_for("the proxy's loop to turn after the party's closed", lambda: len(ticks) > since + 2)
        turns.give_back()  # a closed loop: nothing to unhook, nothing raised
        since = len(ticks)
        wait_for("the proxy's loop to turn once given back", lambda: len(ticks) > since + 2)
        assert set(ticks[since:]) == {proxy.ident}
    finally:
        stop = box["stop"]
        stop.get_loop().call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
        proxy.join(BOUND)
        if not party.is_closed():
            party.close()
    assert not proxy.is_alive()
