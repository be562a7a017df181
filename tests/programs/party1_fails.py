"""Party 1 gives up after start; the others wait for its input (a failing party)."""
from mpyc.runtime import mpc


async def main():
    await mpc.start()
    if mpc.pid == 1:
        raise SystemExit('party 1 gives up: broken input')
    await mpc.output(mpc.input(mpc.SecInt(32)(1))[0])
    await mpc.shutdown()

mpc.run(main())
