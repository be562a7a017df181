"""A round-heavy MPyC program: ROUNDS sequential secure comparisons, each
opened before the next starts, so every round crosses the transport.
Usage: mpyc_rounds.py [--rounds R] MPYC-OPTIONS"""
import argparse
import sys

from mpyc.runtime import mpc

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=100)
args = ap.parse_args(sys.argv[1:])


async def main():
    await mpc.start()
    secint = mpc.SecInt(32)
    xs = mpc.input(secint(7 * mpc.pid + 1))
    below = 0
    for i in range(args.rounds):
        below += int(await mpc.output(xs[0] + i < xs[-1]))
    print(f"rounds={args.rounds} below={below}")
    await mpc.shutdown()


mpc.run(main())
