"""A co-party that sends code: the last party's mpc.transfer carries a
pickle whose loading would write MARKER (argument --marker); the others
receive it. Then an ordinary secure sum, as an honest program would go on."""
import argparse
import sys

from mpyc.runtime import mpc

ap = argparse.ArgumentParser()
ap.add_argument("--marker", required=True)
args = ap.parse_args(sys.argv[1:])


class Payload:
    def __reduce__(self):
        return (exec, (f"open({args.marker!r}, 'w').write('a peer ran code here')",))


async def main():
    await mpc.start()
    last = len(mpc.parties) - 1
    others = [p for p in range(len(mpc.parties)) if p != last]
    got = await mpc.transfer(Payload() if mpc.pid == last else None, senders=last, receivers=others)
    print(f"party {mpc.pid} received {got!r}")
    print("sum", await mpc.output(mpc.sum(mpc.input(mpc.SecInt(32)(mpc.pid)))))
    await mpc.shutdown()


mpc.run(main())
