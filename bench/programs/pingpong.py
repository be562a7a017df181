"""Rounds of MPyC's smallest exchange: every party sends one small int to
every other (a pickled int, about 20 B with MPyC's header) and waits for
theirs; prints the median round in ms. bench/inproc.py runs it."""
import statistics
import sys
import time

from mpyc.runtime import mpc

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 300


async def main():
    await mpc.start()
    for i in range(10):  # warm up
        await mpc.transfer(i)
    times = []
    for i in range(ROUNDS):
        t = time.perf_counter()
        await mpc.transfer(i)
        times.append(time.perf_counter() - t)
    print(f"round_ms={statistics.median(times) * 1000:.3f}")
    await mpc.shutdown()


mpc.run(main())
