#!/usr/bin/env bash
# Same-run A/B of two `quorum` binaries (e.g. before and after a refactor) on
# the same weights: `quorum bench throughput` for each model directory, the
# two binaries interleaved, then the decode / prefill ratios (B over A).
#
#   bash benches/ab_throughput.sh OLD_BIN NEW_BIN MODEL_DIR... [-- extra bench flags]
#
# Make the models with `quorum model init --preset qwen3-0.6b [--dtype bf16] --out DIR`.
set -euo pipefail
a=$1 b=$2; shift 2
dirs=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do dirs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
out=$(mktemp -d)
for d in "${dirs[@]}"; do
  for which in a b; do
    bin=${!which}
    "$bin" bench throughput --model "$d" --n 1,8,32 --prompt-tokens 128 --gen-tokens 128 --json "$@" \
      > "$out/$(basename "$d")-$which.json"
  done
done
python3 - "$out" "${dirs[@]}" <<'PY'
import json, os, sys
out, dirs = sys.argv[1], sys.argv[2:]
print("| model | N | A decode tok/s | B decode tok/s | B/A | A prefill | B prefill |")
print("|---|---|---|---|---|---|---|")
for d in dirs:
    name = os.path.basename(d)
    a = json.load(open(f"{out}/{name}-a.json")); b = json.load(open(f"{out}/{name}-b.json"))
    for x, y in zip(a, b):
        print(f"| {name} | {x['n']} | {x['decode_tokens_per_s']:.2f} | {y['decode_tokens_per_s']:.2f} "
              f"| {y['decode_tokens_per_s'] / x['decode_tokens_per_s']:.3f} "
              f"| {x['prefill_tokens_per_s']:.0f} | {y['prefill_tokens_per_s']:.0f} |")
PY
