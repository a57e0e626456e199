#!/usr/bin/env bash
# GRPO throughput, Quorum vs TRL's GRPOTrainer on CPU, in one sitting: the same model directory,
# the same generated arithmetic prompts, G, prompts per step, completion limit, temperature,
# objective (no KL, token aggregation, one iteration per batch) and threads.
#
#   bash benches/grpo_throughput.sh MODEL_DIR [STEPS] [PYTHON] [JSON]
#
# PYTHON: a venv's python with torch + transformers + trl + datasets (default: python3).
# QUORUM: the binary (default: target/release/quorum, built if missing).
# Each run is STEPS + 1 steps (default 6 + 1); the first is warm-up and is not counted. Quorum runs
# twice, before and after TRL, and its timed steps are pooled.
# Prints s/step, rollout (generate + score) s and tokens/s, completion tokens/step and peak RSS of
# each side, and the ratios; writes the summary as JSON (default: grpo_throughput.json).
set -euo pipefail
model=${1:?model dir}; steps=${2:-6}; py=${3:-python3}; json=${4:-grpo_throughput.json}
G=8; B=8; max_tok=128; temp=1.0; threads=2
here=$(cd "$(dirname "$0")" && pwd); root=$(dirname "$here")
q=${QUORUM:-"$root/target/release/quorum"}
[ -x "$q" ] || cargo build --release --manifest-path "$root/Cargo.toml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$q" data gen arithmetic --n 2000 --seed 3 --split train --ops add,sub,mul --digits 3-4 \
    --mul-digits 2-3 --mul-by 1-2 --out "$tmp/tasks.jsonl" > /dev/null 2> "$tmp/gen_err" \
    || { cat "$tmp/gen_err"; exit 1; }
cat > "$tmp/grpo.toml" <<TOML
out = "$tmp/run"
[model]
init = "$model"
[data]
train = "$tmp/tasks.jsonl"
max_prompt_tokens = 64
[rollout]
group_size = $G
prompts_per_step = $B
temperature = $temp
max_completion_tokens = $max_tok
think = "on"
[objective]
clip_low = 0.2
clip_high = 0.2
kl_beta = 0.0
aggregation = "token"
iterations_per_batch = 1
[optim]
lr = 1e-4
warmup_steps = 0
min_lr_ratio = 1.0
weight_decay = 0.0
max_grad_norm = 1.0
[train]
steps = $((steps + 1))
[eval]
max_problems = 0
[checkpoint]
every = 0
keep = 1
TOML
# Quorum's run is short beside TRL's, so it runs before and after it (the load of the shared
# machine drifts); the timed steps of both runs are pooled.
quorum_run() {
    RAYON_NUM_THREADS=$threads /usr/bin/time -f "%M" -o "$tmp/q_rss$1" "$q" train grpo \
        --config "$tmp/grpo.toml" --out "$tmp/run$1" > /dev/null 2> "$tmp/q_err" || { cat "$tmp/q_err"; exit 1; }
}
quorum_run 1
TMPDIR="$tmp" /usr/bin/time -f "%M" -o "$tmp/t_rss" "$py" "$here/trl_grpo.py" --model "$model" \
    --data "$tmp/tasks.jsonl" --steps "$steps" --group-size $G --prompts-per-step $B \
    --max-completion-tokens $max_tok --temperature $temp --threads $threads --lr 1e-4 \
    > "$tmp/trl.json" 2> "$tmp/t_err" || { tail -20 "$tmp/t_err"; exit 1; }
quorum_run 2
python3 - "$tmp/run1/metrics.jsonl,$tmp/run2/metrics.jsonl" "$tmp/trl.json" \
    "$(tail -1 "$tmp/q_rss1"),$(tail -1 "$tmp/q_rss2")" "$(tail -1 "$tmp/t_rss")" "$json" \
    "$G" "$B" "$max_tok" "$temp" "$threads" <<'PY'
import json, sys
metrics, trl_json, q_rss, t_rss, out = sys.argv[1:6]
G, B, max_tok, temp, threads = sys.argv[6:11]
runs = []
for m in metrics.split(","):
    rows = [json.loads(l) for l in open(m) if l.strip()]
    runs.append([r for r in rows if r.get("kind") == "step"][1:])
rows = runs[0] + runs[1]
mean = lambda xs: sum(xs) / len(xs)
q = {"peer": "quorum train grpo", "runs": len(runs), "steps_timed": len(rows),
     "s_per_step_per_run": [mean([r["step_s"] for r in run]) for run in runs],
     "s_per_step": mean([r["step_s"] for r in rows]),
     "rollout_s": mean([r["rollout_s"] for r in rows]),
     "update_s": mean([r["update_s"] for r in rows]),
     "completion_tokens_per_step": mean([r["rollout_tokens"] for r in rows]),
     "rollout_tokens_per_s": sum(r["rollout_tokens"] for r in rows) / sum(r["rollout_s"] for r in rows),
     "reward_mean": mean([r["reward_mean"] for r in rows]),
     "peak_rss_mib": max(int(x) for x in q_rss.split(",")) / 1024}
t = json.loads(open(trl_json).read().strip().splitlines()[-1])
t["peak_rss_mib"] = int(t_rss) / 1024  # /usr/bin/time, as for Quorum
for s in (q, t):
    s["s_per_1k_completion_tokens"] = 1000 * s["s_per_step"] / s["completion_tokens_per_step"]
ratio = {"step_rate": t["s_per_step"] / q["s_per_step"],
         "rollout_tokens_per_s": q["rollout_tokens_per_s"] / t["rollout_tokens_per_s"],
         "s_per_1k_completion_tokens": t["s_per_1k_completion_tokens"] / q["s_per_1k_completion_tokens"],
         "update_s": t["update_s"] / q["update_s"]}
hdr = f"{'':22} {'s/step':>7} {'rollout s':>9} {'update s':>8} {'rollout tok/s':>13} {'tokens/step':>11} {'s/1k tok':>8} {'reward':>6} {'peak RSS':>9}"
print(f"GRPO, G={G}, {B} prompts/step, <= {max_tok} completion tokens, T={temp}, {threads} threads; "
      f"timed steps (after 1 warm-up per run): quorum {q['steps_timed']} (2 runs, before and after TRL), "
      f"trl {t['steps_timed']}")
print(hdr)
for name, s in (("quorum train grpo", q), (f"trl {t['peer'].split()[1]} GRPOTrainer", t)):
    print(f"{name:22} {s['s_per_step']:7.2f} {s['rollout_s']:9.2f} {s['update_s']:8.2f} "
          f"{s['rollout_tokens_per_s']:13.0f} {s['completion_tokens_per_step']:11.0f} "
          f"{s['s_per_1k_completion_tokens']:8.3f} {s['reward_mean']:6.3f} {s['peak_rss_mib']:6.0f} MiB")
print(f"ratio quorum/trl: step rate {ratio['step_rate']:.1f}x, rollout tokens/s {ratio['rollout_tokens_per_s']:.1f}x, "
      f"per completion token {ratio['s_per_1k_completion_tokens']:.1f}x, update {ratio['update_s']:.1f}x")
summary = {"config": {"group_size": int(G), "prompts_per_step": int(B), "max_completion_tokens": int(max_tok),
                      "temperature": float(temp), "threads": int(threads)},
           "quorum": q, "trl": t, "ratio_quorum_over_trl": ratio}
with open(out, "w") as f:
    json.dump(summary, f, indent=2)
print(f"summary: {out}")
PY
