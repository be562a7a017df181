"""Secure aggregation of allele counts (MPyC), the job Biovault runs with Sequre.

The data holders (by default every party but 0) each hold a private JSON
file of allele counts and allele numbers over the same variants. Party 0
is the aggregator and holds nothing. The parties secret-share their
vectors, add them under MPC and open only the sums: every party writes the
aggregated counts and the allele frequencies; nobody sees another's input.

    python allele_counts.py [--data SITE.json] [--result OUT.json] [--holders 1,2] MPYC-OPTIONS

--data and --result default to $SYQURE_INPUT and $SYQURE_OUTPUT (set by syqure-wf).
"""
import argparse
import hashlib
import json
import os
import sys

from mpyc.runtime import mpc  # parses and removes MPyC's own options (-P, -I, ...)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("SYQURE_INPUT") or None)
    ap.add_argument("--result", default=os.environ.get("SYQURE_OUTPUT") or None)
    ap.add_argument("--holders", default=None, help="pids holding data (default: all but 0)")
    return ap.parse_args(sys.argv[1:])


def load(path):
    with open(path) as f:
        data = json.load(f)
    n = len(data["variants"])
    if len(data["allele_count"]) != n or len(data["allele_number"]) != n:
        raise SystemExit(f"{path}: variants, allele_count and allele_number differ in length")
    if any(not 0 <= c <= a for c, a in zip(data["allele_count"], data["allele_number"])):
        raise SystemExit(f"{path}: an allele count is negative or above its allele number")
    return data


def digest(variants):
    return hashlib.sha256("\n".join(variants).encode()).hexdigest()


async def main():
    args = parse_args()
    await mpc.start()
    holders = ([int(p) for p in args.holders.split(",")] if args.holders
               else list(range(1, len(mpc.parties))))
    me = mpc.pid
    data = None
    if me in holders:
        if not args.data:
            raise SystemExit(f"party {me} holds data but got no --data")
        data = load(args.data)
    # The variant list is public metadata; the holders must agree on it.
    variants = await mpc.transfer(data["variants"] if me == holders[0] else None, senders=holders[0])
    digests = await mpc.transfer(digest(data["variants"]) if data else None, senders=holders)
    if len(set(digests)) != 1 or digests[0] != digest(variants):
        raise SystemExit("the data holders disagree on the list of variants")
    n = len(variants)
    secint = mpc.SecInt(32)
    mine = data["allele_count"] + data["allele_number"] if data else [None] * (2 * n)
    shared = mpc.input([secint(x) for x in mine], senders=holders)
    total = shared[0]
    for vector in shared[1:]:
        total = mpc.vector_add(total, vector)
    opened = [int(x) for x in await mpc.output(total)]
    counts, numbers = opened[:n], opened[n:]
    await mpc.shutdown()
    result = {"variants": variants, "allele_count": counts, "allele_number": numbers,
              "allele_frequency": [round(c / a, 6) if a else None for c, a in zip(counts, numbers)],
              "holders": holders, "party": me}
    if args.result:
        os.makedirs(os.path.dirname(os.path.abspath(args.result)), exist_ok=True)
        tmp = args.result + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, separators=(",", ":"))
        os.replace(tmp, args.result)
    print(f"party {me}: aggregated {n} variants from parties {holders}; "
          f"total allele count {sum(counts)}, allele number {sum(numbers)}")


mpc.run(main())
