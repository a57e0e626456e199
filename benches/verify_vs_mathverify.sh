#!/usr/bin/env bash
# `quorum verify --jsonl` vs HF math-verify (Python) on the same 10,000
# (gold, prediction) pairs, one run each; prints pairs/s for both.
#
#   benches/verify_vs_mathverify.sh [N] [PY]
#   N  = pairs (default 10000); PY = python with math-verify
#        (default /work/tmp/verify-venv/bin/python)
# Build first: cargo build --release --bin quorum
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
PY="${2:-/work/tmp/verify-venv/bin/python}"
BIN="${QUORUM_BIN:-target/release/quorum}"
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

"$PY" benches/verify_vs_mathverify.py make "$N" "$DIR/pairs.jsonl" 2>/dev/null
n=$(wc -l < "$DIR/pairs.jsonl")

start=$(date +%s.%N)
"$BIN" verify --jsonl < "$DIR/pairs.jsonl" > "$DIR/quorum.jsonl"
end=$(date +%s.%N)
q_rate=$(awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')
echo "quorum verify --jsonl: $n pairs in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }') s = $q_rate pairs/s"

mv_line=$("$PY" benches/verify_vs_mathverify.py time "$DIR/pairs.jsonl" "$DIR/quorum.jsonl" 2>/dev/null)
echo "$mv_line"
mv_rate=$(echo "$mv_line" | sed -n 's/^math-verify: .* = \([0-9.]*\) pairs\/s$/\1/p')
awk -v q="$q_rate" -v m="$mv_rate" 'BEGIN { printf "speedup: %.0fx\n", q / m }'
