"""A small MPyC program: secure sum, product and comparison of one private
input per party; run twice (two runtimes) when given --twice, like demos
that start the runtime again. Prints the results it reveals."""
import sys

from mpyc.runtime import mpc

twice = "--twice" in sys.argv
if twice:
    sys.argv.remove("--twice")


async def main():
    await mpc.start()
    secint = mpc.SecInt(32)
    mine = 10 * (mpc.pid + 1) + 3
    xs = mpc.input(secint(mine))
    total = await mpc.output(mpc.sum(xs))
    largest = await mpc.output(mpc.max(xs))
    lt = await mpc.output(xs[0] < xs[-1])
    print(f"sum={total} max={largest} first<last={int(lt)}")
    await mpc.shutdown()


mpc.run(main())
if twice:
    mpc.run(main())
