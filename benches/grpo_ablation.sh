#!/usr/bin/env bash
# GRPO ablations: short runs from the same start (the recipe's model.init),
# one switch changed per row, all at the same seed, run one after another on
# the same machine. Prints a table (held-out pass@1 at the end, mean reward
# over the last 20 steps, zero-variance fraction, wall time, s/step) and
# writes OUT/ablation.json.
#
#   bash benches/grpo_ablation.sh [STEPS] [OUT]
#
# Rows: baseline (token aggregation, symmetric clip 0.2, no KL, sync),
# kl (beta 0.04, k3 against the frozen start), clip-higher (eps_high 0.28),
# sequence and dr_grpo aggregation, dynamic sampling (2 refill rounds),
# offline filtering (train only on prompts with pass rate in [0.1, 0.9] at
# k = 8, measured by `quorum train filter` on the start model), async
# (one-step off-policy rollouts).
set -euo pipefail
STEPS=${1:-80}
OUT=${2:-runs/grpo-ablation}
Q=${Q:-./target/release/quorum}
RECIPE=config/train/tiny-reasoner-grpo.toml
mkdir -p "$OUT"
INIT=$(sed -n 's/^init = "\(.*\)"/\1/p' "$RECIPE" | head -1)
TRAIN=$(sed -n 's/^train = "\(.*\)"/\1/p' "$RECIPE" | head -1)

if [ ! -f "$OUT/filtered.jsonl" ]; then
  head -n 1000 "$TRAIN" > "$OUT/filter-pool.jsonl"
  "$Q" train filter --model "$INIT" --data "$OUT/filter-pool.jsonl" -k 8 --band 0.1,0.9 \
    --max-new-tokens 192 --out "$OUT/filtered.jsonl" --rates "$OUT/filter-rates.jsonl" \
    --plot "$OUT/filter-hist.png" | tail -n 20
fi

declare -A ROWS=(
  [baseline]=""
  [kl]="objective.kl_beta=0.04"
  [clip_higher]="objective.clip_high=0.28"
  [sequence]="objective.aggregation=sequence"
  [dr_grpo]="objective.aggregation=dr_grpo"
  [dynamic]="sampling.dynamic=true sampling.max_refill_rounds=2"
  [offline_filter]="data.train=$OUT/filtered.jsonl"
  [async]="sampling.async_rollouts=true"
)
ORDER="baseline kl clip_higher sequence dr_grpo dynamic offline_filter async"
for row in $ORDER; do
  [ -f "$OUT/$row/checkpoint-$(printf %06d "$STEPS")/model.safetensors" ] && continue
  rm -rf "${OUT:?}/$row"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$Q" train grpo --config "$RECIPE" --out "$OUT/$row" train.steps="$STEPS" eval.every=0 \
    checkpoint.every=0 checkpoint.keep=1 ${ROWS[$row]} > "$OUT/$row.log" 2>&1
  end=$(date +%s.%N)
  echo "$row $(echo "$end - $start" | bc)" >> "$OUT/wall.txt"
done

python3 - "$OUT" $ORDER <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
wall = {}
for line in open(f"{out}/wall.txt"):
    k, v = line.split()
    wall[k] = float(v)
table = []
for row in rows:
    recs = [json.loads(l) for l in open(f"{out}/{row}/metrics.jsonl")]
    steps = [r for r in recs if r["kind"] == "step"]
    evals = [r for r in recs if r["kind"] == "eval"]
    last = steps[-20:]
    table.append({
        "row": row,
        "pass1_start": evals[0]["accuracy"]["think"],
        "pass1_end": evals[-1]["accuracy"]["think"],
        "reward_last20": sum(s["reward_mean"] for s in last) / len(last),
        "zero_var": sum(s["zero_variance_fraction"] for s in steps) / len(steps),
        "clip_fraction": sum(s.get("clip_fraction", 0) for s in steps) / len(steps),
        "s_per_step": sum(s["step_s"] for s in steps[1:]) / max(1, len(steps) - 1),
        "wall_s": wall.get(row),
    })
json.dump(table, open(f"{out}/ablation.json", "w"), indent=1)
print(f"| row | pass@1 start | pass@1 end | reward (last 20) | zero-var | clip frac | s/step | wall s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for t in table:
    print(f"| {t['row']} | {t['pass1_start']:.3f} | {t['pass1_end']:.3f} | {t['reward_last20']:.3f} | "
          f"{t['zero_var']:.2f} | {t['clip_fraction']:.4f} | {t['s_per_step']:.2f} | {t['wall_s']:.0f} |")
PY
