#!/bin/bash
# Same-run throughput comparison against llama.cpp (README "Performance").
#
# Needs the peers harness built once: cp -r ../shared/peers DIR && bash DIR/run.sh
# (it builds llama.cpp and the membw probe and writes the random-weight
# Qwen3-0.6B-shape model as HF directories and GGUF files under DIR/.cache).
#
#   PEERS=DIR/.cache Q=target/release/quorum bash benches/compare_llama_cpp.sh
#
# Prints membw before/after, then per precision llama-batched-bench's table and
# `quorum bench throughput --json`, interleaved so drift hits both alike.
set -u
C=${PEERS:?set PEERS to the peers harness cache dir (…/.cache)}
Q=${Q:-target/release/quorum}
LB=$C/build/llama.cpp/bin/llama-batched-bench
NPL=${NPL:-1,8}
QN=${QN:-1,8,32}
echo "== $(date -u) membw"; "$C/build/membw" 2>&1 | tail -2
# llama.cpp's KV cache is f16 by default (-ctk/-ctv f16), for every model
# type; Quorum's f32 row is given both its default f32 cache and f16.
for p in f32 bf16; do
  echo "== llama.cpp $p"
  "$LB" -m "$C/gguf/qwen3-0.6b-shape-$p.gguf" -c 4096 -b 2048 -ub 512 -npp 128 -ntg 128 \
    -npl "$NPL" -pps -t 2 -tb 2 2>/dev/null | grep -E '^\|'
  echo "== quorum $p"
  "$Q" bench throughput --model "$C/models/qwen3-0.6b-shape-$p" --n "$QN" \
    --prompt-tokens 128 --gen-tokens 128 --json 2>/dev/null
  if [ "$p" = f32 ]; then
    echo "== quorum f32 --kv-cache-dtype f16"
    "$Q" bench throughput --model "$C/models/qwen3-0.6b-shape-f32" --kv-cache-dtype f16 \
      --n "$QN" --prompt-tokens 128 --gen-tokens 128 --json 2>/dev/null
    # The row-major f32 kernel (before the AVX-512 panel packing), for A/B.
    echo "== quorum f32 QUORUM_PACK_F32=off"
    QUORUM_PACK_F32=off "$Q" bench throughput --model "$C/models/qwen3-0.6b-shape-f32" \
      --n "$QN" --prompt-tokens 128 --gen-tokens 128 --json 2>/dev/null
  fi
done
echo "== quorum bf16 --amx off"
"$Q" bench throughput --model "$C/models/qwen3-0.6b-shape-bf16" --amx off --n 1,8 \
  --prompt-tokens 128 --gen-tokens 128 --json 2>/dev/null
# llama.cpp's Q8_0 segfaults on this CPU when it repacks the weights for its
# CPU "extra" buffer types (the default); --no-repack runs its plain Q8_0 path.
echo "== llama.cpp q8_0 --no-repack"
"$LB" -m "$C/gguf/qwen3-0.6b-shape-q8_0.gguf" -c 4096 -b 2048 -ub 512 -npp 128 -ntg 128 \
  -npl "$NPL" -pps -t 2 -tb 2 --no-repack 2>/dev/null | grep -E '^\|'
echo "== quorum q8_0 --amx on --kv-cache-dtype f16"
"$Q" bench throughput --model "$C/models/qwen3-0.6b-shape-f32" --quantize q8_0 --amx on \
  --kv-cache-dtype f16 --n "$QN" --prompt-tokens 128 --gen-tokens 128 --json 2>/dev/null
echo "== quorum q8_0 (candle QMatMul)"
"$Q" bench throughput --model "$C/models/qwen3-0.6b-shape-f32" --quantize q8_0 --n 1,8 \
  --prompt-tokens 128 --gen-tokens 128 --json 2>/dev/null
echo "== $(date -u) membw"; "$C/build/membw" 2>&1 | tail -2
