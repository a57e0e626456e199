#!/usr/bin/env python3
"""Speed of HF math-verify on the pairs that `quorum verify --jsonl` is timed on.

    verify_vs_mathverify.py make N OUT.jsonl   # N fresh pairs (generator classes, seeds 1000+)
    verify_vs_mathverify.py time PAIRS.jsonl QUORUM_OUT.jsonl
        # times parse+verify on every pair (one process, one run), prints
        # pairs/s and the agreement with Quorum's verdicts on the same pairs.

Needs the math-verify venv (see scoring/tests/make_mathverify_pairs.py).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scoring", "tests"))
import make_mathverify_pairs as gen  # noqa: E402


def make(n, out):
    pairs, seen, seed = [], set(), 1000
    while len(pairs) < n:
        gen.rng.seed(seed)
        seed += 1
        for cls, f in gen.CLASSES.items():
            for g, p in f():
                if (g, p) not in seen:
                    seen.add((g, p))
                    pairs.append({"class": cls, "gold": g, "pred": p})
    with open(out, "w") as fh:
        for r in pairs[:n]:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def time_it(pairs_path, quorum_out):
    rows = [json.loads(l) for l in open(pairs_path)]
    t = time.perf_counter()
    verdicts = [bool(gen.label(r["class"], r["gold"], r["pred"])) for r in rows]
    dt = time.perf_counter() - t
    print(f"math-verify: {len(rows)} pairs in {dt:.2f} s = {len(rows) / dt:.1f} pairs/s")
    if quorum_out and os.path.exists(quorum_out):
        q = [json.loads(l)["equal"] for l in open(quorum_out)]
        same = sum(a == b for a, b in zip(q, verdicts))
        print(f"agreement, raw math-verify labels: {same}/{len(rows)} = {100 * same / len(rows):.2f}%")
        # Not timed: the deliberate departures (see make_mathverify_pairs.DELIBERATE).
        expected = []
        for r, v in zip(rows, verdicts):
            d = gen.deliberate(r["class"], r["gold"], r["pred"], v)
            expected.append(v if d is None else d[0])
        same = sum(a == b for a, b in zip(q, expected))
        print(f"agreement, with the deliberate departures: {same}/{len(rows)} = {100 * same / len(rows):.2f}%")
        if os.environ.get("SHOW_MISSES"):
            for r, a, b in zip(rows, q, expected):
                if a != b:
                    print(f"MISS [{r['class']}] quorum {a} expected {b}: {r['gold']!r} | {r['pred']!r}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), sys.argv[3])
    else:
        time_it(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
