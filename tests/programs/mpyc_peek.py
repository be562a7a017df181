"""A program that looks beyond what it was given: it tries to read each
path of --read, to write each of --write, to reach TCP port --port, to send
to the Unix sockets of --unix (a path, or @name: abstract) and to UDP port
--udp on this host's loopback, and records what happened in its result file (SYQURE_OUTPUT) with the names of
its environment, around an ordinary secure sum. Paths may be baked in
instead (PEEK = {...}), for a submitted run whose args carry no paths."""
import argparse
import json
import os
import socket
import sys

from mpyc.runtime import mpc

PEEK = {"read": [], "write": [], "port": 0}
PEEK.update(unix=[], udp=0)
ap = argparse.ArgumentParser()
ap.add_argument("--read", action="append", default=PEEK["read"])
ap.add_argument("--write", action="append", default=PEEK["write"])
ap.add_argument("--port", type=int, default=PEEK["port"])
ap.add_argument("--unix", action="append", default=PEEK["unix"])
ap.add_argument("--udp", type=int, default=PEEK["udp"])
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


def unix(where):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect("\0" + where[1:] if where.startswith("@") else where)
        s.sendall(b"an input")


def udp(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"an input", ("127.0.0.1", port))


async def main():
    await mpc.start()
    seen = {"read": {p: attempt(lambda p=p: open(p, "rb").read(1)) for p in args.read},
            "write": {p: attempt(lambda p=p: write(p)) for p in args.write},
            "input": attempt(lambda: open(os.environ["SYQURE_INPUT"], "rb").read(1))
            if os.environ.get("SYQURE_INPUT") else "none",
            "environment": sorted(os.environ)}
    if args.port:
        seen["connect"] = attempt(lambda: socket.create_connection(("127.0.0.1", args.port), timeout=5).close())
    if args.unix:
        seen["unix"] = {p: attempt(lambda p=p: unix(p)) for p in args.unix}
    if args.udp:
        seen["udp"] = attempt(lambda: udp(args.udp))
    seen["sum"] = await mpc.output(mpc.sum(mpc.input(mpc.SecInt(32)(mpc.pid + 1))))
    await mpc.shutdown()
    with open(os.environ["SYQURE_OUTPUT"], "w") as f:
        json.dump(seen, f)


mpc.run(main())
