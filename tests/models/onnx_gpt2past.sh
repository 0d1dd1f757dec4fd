#!/bin/sh
# ONNX GPT-2 with past keys and values (issue #12): a small GPT-2 (2 layers, random weights) exported by
# torch.onnx.export with the cache's length P and the new tokens' T dynamic
# (tests/onnx/gpt2past/make_gpt2past.py): per layer past_key_L, past_value_L [2, P, 16] in,
# present_key_L, present_value_L [2, P + T, 16] out, positions wpe[P:P+T], GPT-2's causal mask sliced
# from its buffer by sizes taken with Shape. Imported with --bound P=24 --bound T=8, the logits and the
# last layer's caches match PyTorch at (P, T) = (5, 3) and (12, 1), in the interpreter and compiled
# (1e-4 relative: f32 sums in another order). Both attentions are fused with the causal flag (GPT-2's
# mask buffer sliced to rows P .. P + T).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
D=tests/onnx/gpt2past M=tests/onnx/gpt2past/gpt2past.onnx
B="--bound P=24 --bound T=8"
"$KILN" import $M -o "$OUT/g.kiln" $B
grep -q 'input  past_key_1: f32\[2, P, 16\]' "$OUT/g.kiln"
grep -q 'output present_value_1: f32\[2, P + T, 16\]' "$OUT/g.kiln"
# shellcheck disable=SC2086
"$KILN" ir $M $B > "$OUT/ir.txt"
[ "$(grep -c '= attention(.*causal=true' "$OUT/ir.txt")" = 2 ]
for PT in 5_3 12_1; do
    IN="--input tokens=$D/tokens_$PT.npy"
    for n in past_key_0 past_value_0 past_key_1 past_value_1; do
        IN="$IN --input $n=$D/${n}_$PT.npy"
    done
    for mode in --interp ""; do
        # shellcheck disable=SC2086
        "$KILN" run $M $B $mode $IN --output logits="$OUT/l.npy" --output present_key_1="$OUT/k.npy" \
            --output present_value_1="$OUT/v.npy" >/dev/null
        "$NPYCMP" --maxrel 1e-4 "$OUT/l.npy" $D/logits_$PT.npy
        "$NPYCMP" --maxrel 1e-4 "$OUT/k.npy" $D/present_key_1_$PT.npy
        "$NPYCMP" --maxrel 1e-4 "$OUT/v.npy" $D/present_value_1_$PT.npy
    done
done
echo "onnx_gpt2past: logits and caches match PyTorch"
