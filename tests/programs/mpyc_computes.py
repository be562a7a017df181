"""An MPyC program whose party 0 computes without yielding inside
``mpc.run`` for longer than the peer bound (its loop does not turn) while
the others wait for it, then exchanges.
Usage: mpyc_computes.py SECONDS MPYC-OPTIONS"""
import sys
import time

from mpyc.runtime import mpc

SECONDS = float(sys.argv.pop(1))


async def main():
    await mpc.start()
    await mpc.transfer(mpc.pid)
    end = time.monotonic() + (SECONDS if mpc.pid == 0 else 0)
    while time.monotonic() < end:  # busy, as a long computation is: MPyC's loop stands still
        sum(range(10000))
    got = await mpc.transfer(mpc.pid)
    print(f"got={got}")
    await mpc.shutdown()


mpc.run(main())
