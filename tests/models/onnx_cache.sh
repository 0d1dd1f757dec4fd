#!/bin/sh
# ONNX with two dynamic axes: one step of attention with a KV cache, written as Hugging Face's GPT-2
# writes it, exported by torch.onnx.export (tests/onnx/cache/make_cache.py): the cache's length P
# (past_key, past_value [4, P, 16], one dim_param shared by two inputs: one symbol) and the new
# tokens' T (x [T, 64]). ONNX Concat along P and T gives present_key, present_value [4, P + T, 16];
# GPT-2's causal mask takes rows kl - ql .. kl of a buffer, kl = P + T and ql = T from Shape, which
# the importer turns into slice(bias, P, P + T). Imported with --bound P=32 --bound T=8, it matches
# PyTorch at (P, T) = (5, 3) (three new tokens: the mask matters) and (12, 1) in the interpreter and
# compiled (1e-4 relative: f32 products over 64 terms and softmax over P + T keys, summed in another
# order).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
D=tests/onnx/cache M=tests/onnx/cache/cache.onnx
B="--bound P=32 --bound T=8"
"$KILN" import $M -o "$OUT/cache.kiln" $B
grep -q 'input  past_value: f32\[4, P, 16\]' "$OUT/cache.kiln"
grep -q 'output present_key: f32\[4, P + T, 16\]' "$OUT/cache.kiln"
grep -q '= slice(.*, P, P + T, axis=1)' "$OUT/cache.kiln"
for PT in 5_3 12_1; do
    IN="--input past_key=$D/past_key_$PT.npy --input past_value=$D/past_value_$PT.npy --input x=$D/x_$PT.npy"
    for mode in --interp ""; do
        # shellcheck disable=SC2086
        "$KILN" run $M $B $mode $IN --output y="$OUT/y.npy" --output present_key="$OUT/k.npy" \
            --output present_value="$OUT/v.npy"
        "$NPYCMP" --maxrel 1e-4 "$OUT/y.npy" $D/y_$PT.npy
        "$NPYCMP" --maxrel 1e-4 "$OUT/k.npy" $D/present_key_$PT.npy
        "$NPYCMP" --maxrel 1e-4 "$OUT/v.npy" $D/present_value_$PT.npy
    done
done
