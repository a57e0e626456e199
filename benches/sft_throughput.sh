#!/usr/bin/env bash
# SFT throughput, Quorum vs TRL's SFTTrainer on CPU, in one sitting: the same model directory,
# the same conversations, about the same tokens per step, the same threads.
#
#   bash benches/sft_throughput.sh MODEL_DIR SFT.jsonl [STEPS] [PYTHON]
#
# PYTHON: a venv's python with torch + transformers + trl + datasets (default: python3).
# Prints each side's tokens/s (median-free: mean over the steps after the first) and the ratio.
set -euo pipefail
model=${1:?model dir}; data=${2:?sft jsonl}; steps=${3:-10}; py=${4:-python3}
here=$(cd "$(dirname "$0")" && pwd); root=$(dirname "$here")
q="$root/target/release/quorum"
[ -x "$q" ] || cargo build --release --manifest-path "$root/Cargo.toml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/sft.toml" <<TOML
out = "$tmp/run"
[model]
init = "$model"
[data]
train = "$data"
max_length = 256
[optim]
lr = 3e-3
[train]
steps = $((steps + 1))
batch_tokens = 8192
[checkpoint]
keep = 1
TOML
/usr/bin/time -f "%M" -o "$tmp/q_rss" "$q" train sft --config "$tmp/sft.toml" > /dev/null 2> "$tmp/q_err" || { cat "$tmp/q_err"; exit 1; }
qtps=$(python3 - "$tmp/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
rows = [r for r in rows if r["kind"] == "step"][1:]
tok = sum(r["tokens"] for r in rows); t = sum(r["tokens"] / r["tokens_per_s"] for r in rows)
print(f"{tok / t:.0f} {tok / len(rows):.0f}")
PY
)
/usr/bin/time -f "%M" -o "$tmp/t_rss" "$py" "$here/trl_sft.py" --model "$model" --data "$data" \
    --steps "$steps" --batch 64 --max-length 256 --threads 2 > "$tmp/trl.json" 2> "$tmp/t_err" || { tail -20 "$tmp/t_err"; exit 1; }
python3 - "$qtps" "$tmp/trl.json" "$(cat "$tmp/q_rss")" "$(cat "$tmp/t_rss")" <<'PY'
import json, sys
q_tps, q_tok = map(float, sys.argv[1].split())
t = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print(f"quorum train sft : {q_tps:8.0f} tokens/s ({q_tok:.0f} tokens/step), peak RSS {int(sys.argv[3]) / 1024:.0f} MiB")
print(f"{t['peer']}: {t['tokens_per_s']:8.0f} tokens/s ({t['tokens_per_step']:.0f} tokens/step), peak RSS {int(sys.argv[4]) / 1024:.0f} MiB")
print(f"ratio quorum/trl: {q_tps / t['tokens_per_s']:.2f}x")
PY
