#!/bin/sh
# GPT-2 (examples/gpt2/gpt2.kiln) in the interpreter against PyTorch (examples/gpt2/reference.py, float64)
# on the tiny random weights, at T = 1, 16 and 64 (the bound), and with F16 weights; then compiled
# (the JIT, every pass: fused attention, epilogues, f16 weights packed as f32) on 2 threads.
# Tolerance: 1e-4 relative to the largest logit, as the foundation issue asks; f32 rounding after
# every node keeps the interpreter within about 1e-7 of PyTorch's float64 result.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
G="-D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64"
# the graph as the frontend made it (no passes: attention unfused) gives the same logits
"$KILN" run examples/gpt2/gpt2.kiln $G --weights examples/gpt2/gpt2-tiny.safetensors --interp --passes none \
    --input tokens=tests/models/gpt2/tokens_64.npy --output logits="$OUT/unfused_64.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/unfused_64.npy" tests/models/gpt2/logits_64.npy
for t in 1 16 64; do
    "$KILN" run examples/gpt2/gpt2.kiln $G --weights examples/gpt2/gpt2-tiny.safetensors --interp \
        --input tokens=tests/models/gpt2/tokens_$t.npy --output logits="$OUT/logits_$t.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/logits_$t.npy" tests/models/gpt2/logits_$t.npy
done
"$KILN" run examples/gpt2/gpt2.kiln $G --weights tests/models/gpt2/gpt2-tiny-f16.safetensors --interp \
    --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/f16.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/f16.npy" tests/models/gpt2/logits_16_f16w.npy
# compiled: the same references
"$KILN" run examples/gpt2/gpt2.kiln $G --weights tests/models/gpt2/gpt2-tiny-f16.safetensors --threads 2 \
    --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/f16_native.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/f16_native.npy" tests/models/gpt2/logits_16_f16w.npy
for t in 1 64; do
    "$KILN" run examples/gpt2/gpt2.kiln $G --weights examples/gpt2/gpt2-tiny.safetensors --threads 2 \
        --input tokens=tests/models/gpt2/tokens_$t.npy --output logits="$OUT/native_$t.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/native_$t.npy" tests/models/gpt2/logits_$t.npy
done
# Hugging Face's own checkpoint layout: exactly the key set of a GPT-2 checkpoint of 2 layers
# (tests/models/gpt2/hf_keys.txt, with the h.N.attn.bias and h.N.attn.masked_bias buffers older files
# carry, which the model does not read and which are not an error), the same logits
HF=tests/models/gpt2/gpt2-tiny-hf.safetensors
head -c 65536 "$HF" | grep -ao '"[A-Za-z0-9_.]*": *{"dtype"' | sed 's/^"\([^"]*\)".*/\1/' | LC_ALL=C sort >"$OUT/keys.txt"
diff "$OUT/keys.txt" tests/models/gpt2/hf_keys.txt
"$KILN" run examples/gpt2/gpt2.kiln $G --weights "$HF" --interp \
    --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/hf_interp.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/hf_interp.npy" tests/models/gpt2/logits_16.npy
"$KILN" run examples/gpt2/gpt2.kiln $G --weights "$HF" \
    --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/hf_native.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/hf_native.npy" tests/models/gpt2/logits_16.npy
