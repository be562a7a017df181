"""What building a peer's pickle through safe constructors costs
(engines/safepickle.py) against ``pickle.loads``, in the same run, on what
MPyC sends: plain values, field elements, field arrays, object arrays of
shares.

    python bench/unpickle.py [--repeat 5]

Microseconds per load (medians of ``--repeat`` runs, each the mean of many
loads) and the ratio safe / plain.
"""
from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syqure_wf.engines import unpickle  # noqa: E402
from syqure_wf.engines.safepickle import SafeUnpickler  # noqa: E402


def payloads() -> dict[str, bytes]:
    import numpy as np
    from mpyc.runtime import mpc

    field = mpc.SecFld(2**61 - 1).field
    return {
        "a list of 10 ints": pickle.dumps(list(range(10))),
        "a field element": pickle.dumps(field(5)),
        "a field array of 1,000": pickle.dumps(field.array(np.arange(1000))),
        "an int64 array of 100,000": pickle.dumps(np.arange(100_000)),
        "an object array of 100,000 shares": pickle.dumps(np.array([2**70 + i for i in range(100_000)], dtype=object)),
    }


def per_load(load, data: bytes) -> float:
    n = max(5, min(5000, 2_000_000 // max(len(data), 1)))
    started = time.perf_counter()
    for _ in range(n):
        load(data)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    safe = lambda data: SafeUnpickler.loads(data, unpickle.allowed)  # noqa: E731
    print("| payload | bytes | pickle.loads (us) | safe (us) | safe / plain |")
    print("| --- | --- | --- | --- | --- |")
    for name, data in payloads().items():
        plain = statistics.median(per_load(pickle.loads, data) for _ in range(args.repeat))
        ours = statistics.median(per_load(safe, data) for _ in range(args.repeat))
        print(f"| {name} | {len(data)} | {plain:.1f} | {ours:.1f} | {ours / plain:.2f} |", flush=True)


if __name__ == "__main__":
    main()
