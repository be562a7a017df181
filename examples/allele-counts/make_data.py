"""Make the example's private inputs: allele counts of the same 10,000
variants at two sites (realistic shape: frequencies skewed to rare, some
missing calls). Deterministic: the same seed gives the same files.

    python make_data.py [--variants 10000] [--seed 7] [--out data]
"""
import argparse
import json
import random
from pathlib import Path

BASES = "ACGT"


def variants(rng, n):
    out, pos = [], {c: 10_000 for c in range(1, 23)}
    for _ in range(n):
        chrom = rng.choices(range(1, 23), weights=[249 - 9 * c for c in range(1, 23)])[0]
        pos[chrom] += rng.randrange(1, 60_000)
        ref = rng.choice(BASES)
        alt = rng.choice([b for b in BASES if b != ref])
        out.append((chrom, pos[chrom], ref, alt))
    out.sort()
    return [f"chr{c}:{p}:{r}:{a}" for c, p, r, a in out]


def site(rng, name, ids, freqs, samples):
    an, ac = [], []
    for f in freqs:
        called = samples - (rng.randrange(0, samples // 50) if rng.random() < 0.3 else 0)
        local = min(max(f * rng.uniform(0.8, 1.25), 0.0), 1.0)
        an.append(2 * called)
        ac.append(sum(1 for _ in range(2 * called) if rng.random() < local))
    return {"site": name, "samples": samples, "variants": ids, "allele_count": ac, "allele_number": an}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent / "data"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ids = variants(rng, args.variants)
    freqs = [min(rng.betavariate(0.3, 3.0), 0.99) for _ in ids]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, samples in (("site1", 420), ("site2", 310)):
        data = site(rng, name, ids, freqs, samples)
        (out / f"{name}.json").write_text(json.dumps(data, separators=(",", ":")) + "\n")
        # the same counts as TSV, for the Sequre program (Codon has no JSON reader)
        rows = zip(data["variants"], data["allele_count"], data["allele_number"])
        (out / f"{name}.tsv").write_text("".join(f"{v}\t{c}\t{a}\n" for v, c, a in rows))
        print(f"wrote {out / name}.json: {len(ids)} variants, {samples} samples")


if __name__ == "__main__":
    main()
