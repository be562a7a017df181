"""Secure NumPy arrays: every party inputs an array of N secure integers,
the parties add them and open the sum; shares travel as pickled NumPy
arrays (what the unpickling guard reads). Usage: np_sum.py [N] MPYC-OPTIONS"""
import sys

import numpy as np
from mpyc.runtime import mpc

n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 100_000


async def main():
    await mpc.start()
    secint = mpc.SecInt(32)
    mine = secint.array(np.full(n, mpc.pid + 1))
    shares = mpc.input(mine)
    total = sum(shares[1:], shares[0])
    opened = await mpc.output(total)
    print("sum of the first", int(opened[0]), "over", len(opened))
    await mpc.shutdown()


mpc.run(main())
