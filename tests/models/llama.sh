#!/bin/sh
# Llama (examples/llama/llama.kiln) in the interpreter against PyTorch (examples/llama/reference.py,
# float64) on the tiny random weights, at T = 1, 7 and 64 (the bound). The tiny model has grouped-
# query attention (4 query heads on 2 key/value heads) and peaked attention (see make_weights.py),
# so the rotary tables and the causal mask matter to the result.
# Tolerance: 1e-4 relative to the largest logit, as for GPT-2; the interpreter rounds to f32 after
# every node, rotary tables included, while the reference computes everything in float64.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
C="-D V=128 -D D=64 -D H=4 -D KVH=2 -D F=172 -D L=2 -D CTX=64"
for t in 1 7 64; do
    "$KILN" run examples/llama/llama.kiln $C --weights examples/llama/llama-tiny.safetensors --interp \
        --input tokens=tests/models/llama/tokens_$t.npy --output logits="$OUT/logits_$t.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/logits_$t.npy" tests/models/llama/logits_$t.npy
done
# compiled (every pass: grouped-query attention fused, RMSNorm, epilogues) on 2 threads
for t in 1 64; do
    "$KILN" run examples/llama/llama.kiln $C --weights examples/llama/llama-tiny.safetensors --threads 2 \
        --input tokens=tests/models/llama/tokens_$t.npy --output logits="$OUT/native_$t.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/native_$t.npy" tests/models/llama/logits_$t.npy
done
