"""A program that looks beyond what it was given: it tries to read each
path of --read, to write each of --write and to reach TCP port --port, and
records what happened in its result file (SYQURE_OUTPUT) with the names of
its environment, around an ordinary secure sum. Paths may be baked in
instead (PEEK = {...}), for a submitted run whose args carry no paths."""
import argparse
import json
import os
import socket
import sys

from mpyc.runtime import mpc

PEEK = {"read": [], "write": [], "port": 0}
ap = argparse.ArgumentParser()
ap.add_argument("--read", action="append", default=PEEK["read"])
ap.add_argument("--write", action="append", default=PEEK["write"])
ap.add_argument("--port", type=int, default=PEEK["port"])
args = ap.parse_args(sys.argv[1:])


def attempt(action) -> str:
    try:
        action()
        return "done"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


def write(path):
    with open(path, "w") as f:
        f.write("escaped")


async def main():
    await mpc.start()
    seen = {"read": {p: attempt(lambda p=p: open(p, "rb").read(1)) for p in args.read},
            "write": {p: attempt(lambda p=p: write(p)) for p in args.write},
            "input": attempt(lambda: open(os.environ["SYQURE_INPUT"], "rb").read(1))
            if os.environ.get("SYQURE_INPUT") else "none",
            "environment": sorted(os.environ)}
    if args.port:
        seen["connect"] = attempt(lambda: socket.create_connection(("127.0.0.1", args.port), timeout=5).close())
    seen["sum"] = await mpc.output(mpc.sum(mpc.input(mpc.SecInt(32)(mpc.pid + 1))))
    await mpc.shutdown()
    with open(os.environ["SYQURE_OUTPUT"], "w") as f:
        json.dump(seen, f)


mpc.run(main())
