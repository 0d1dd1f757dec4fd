#!/bin/sh
# ONNX with two dynamic axes: one step of attention with a KV cache, written as Hugging Face's GPT-2
# writes it, exported by torch.onnx.export (tests/onnx/cache/make_cache.py): the cache's length P
# (past_key, past_value [4, P, 16], one dim_param shared by two inputs: one symbol) and the new
# tokens' T (x [T, 64]). ONNX Concat along P and T gives present_key, present_value [4, P + T, 16];
# GPT-2's causal mask takes rows kl - ql .. kl of a buffer, kl = P + T and ql = T from Shape, which
# the importer turns into slice(bias, P, P + T). Imported with --bound P=32 --bound T=8, it matches
# PyTorch at (P, T) = (5, 3) (three new tokens: the mask matters) and (12, 1) in the interpreter and
# compiled (1e-4 relative: f32 products over 64 terms and softmax over P + T keys, summed in another
# order). fuse-attention reads the sliced buffer as the causal flag (`kiln ir` shows one attention,
# mask causal). cache_arange.onnx writes the mask as bench/decode_peer.py does (arange(P + T) <=
# arange(T) + P, P from Shape: the importer writes it as the size P, not its bound), fused the same way
# and checked at the same sizes. With --bound P=0 (the first call: no past) the past inputs are left
# out, and both files match PyTorch at T = 3 from x alone; an empty past given to the P build is an
# error that says so.
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
for m in cache cache_arange; do
    "$KILN" ir $D/$m.onnx $B > "$OUT/ir.txt"
    [ "$(grep -c '= attention(.*causal=true' "$OUT/ir.txt")" = 1 ]
    if grep -q ' = softmax(' "$OUT/ir.txt"; then exit 1; fi
done
for PT in 5_3 12_1; do
    for mode in --interp ""; do
        # shellcheck disable=SC2086
        "$KILN" run $D/cache_arange.onnx $B $mode --input past_key=$D/past_key_$PT.npy \
            --input past_value=$D/past_value_$PT.npy --input x=$D/x_$PT.npy --output y="$OUT/y.npy"
        "$NPYCMP" --maxrel 1e-4 "$OUT/y.npy" $D/y_arange_$PT.npy
    done
    # the fused, compiled step against the interpreter on the graph no pass has touched
    # shellcheck disable=SC2086
    "$KILN" run $D/cache_arange.onnx $B --interp --passes none --input past_key=$D/past_key_$PT.npy \
        --input past_value=$D/past_value_$PT.npy --input x=$D/x_$PT.npy --output y="$OUT/yref.npy"
    "$NPYCMP" --maxrel 1e-5 "$OUT/y.npy" "$OUT/yref.npy"
done
# P = 0
B0="--bound P=0 --bound T=8"
"$KILN" import $M -o "$OUT/first.kiln" $B0
if grep -q 'input  past_' "$OUT/first.kiln"; then exit 1; fi
grep -q 'output present_key: f32\[4, T, 16\]' "$OUT/first.kiln"
for m in cache cache_arange; do
    y=y_0_3
    [ $m = cache ] || y=y_arange_0_3
    for mode in --interp ""; do
        # shellcheck disable=SC2086
        "$KILN" run $D/$m.onnx $B0 $mode --input x=$D/x_0_3.npy --output y="$OUT/y.npy" \
            --output present_key="$OUT/k.npy" --output present_value="$OUT/v.npy"
        "$NPYCMP" --maxrel 1e-4 "$OUT/y.npy" $D/$y.npy
        "$NPYCMP" --maxrel 1e-4 "$OUT/k.npy" $D/present_key_0_3.npy
        "$NPYCMP" --maxrel 1e-4 "$OUT/v.npy" $D/present_value_0_3.npy
    done
done
# an empty past (past_empty.npy: f32[4, 0, 16]) given to the P build, interpreted and compiled
for mode in --interp ""; do
    # shellcheck disable=SC2086
    if "$KILN" run $M $B $mode --input x=$D/x_0_3.npy --input past_key=$D/past_empty.npy \
        --input past_value=$D/past_empty.npy --output y="$OUT/y.npy" >/dev/null 2>"$OUT/err.txt"; then
        echo "onnx_cache: an empty past was accepted" >&2
        exit 1
    fi
    grep -q "input 'past_key': .*P would be 0: a symbolic size is never 0; .*--bound P=0" "$OUT/err.txt"
done
echo "onnx_cache: caches and outputs match PyTorch, attention fused, P = 0 imported"
