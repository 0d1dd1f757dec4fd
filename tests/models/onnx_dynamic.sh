#!/bin/sh
# ONNX with a dynamic axis: a causal attention layer exported by torch.onnx.export with the token
# axis dynamic (tests/onnx/dynamic/make_dynamic.py) imports with --bound T=64 as the symbolic size T
# (its shape subgraphs folded to T), matches PyTorch at T = 10 and T = 37 in the interpreter and
# compiled (1e-4 relative), and its attention is fused with the causal flag (the mask is the importer's
# Trilu of a dynamic size: a where() over j - i <= 0).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
D=tests/onnx/dynamic M=tests/onnx/dynamic/dynamic.onnx
"$KILN" import $M -o "$OUT/dyn.kiln" --bound T=64
grep -q 'input  tokens: i64\[T\] where T <= 64' "$OUT/dyn.kiln"
# import writes the model as it is: an option of the other commands is a usage error, not ignored
st=0
"$KILN" import $M -o "$OUT/q.kiln" --bound T=64 --quant int8 2>"$OUT/q.err" || st=$?
[ $st -eq 2 ] && grep -q "kiln import takes -o and --bound only; '--quant' is an option of check, ir, run and build" "$OUT/q.err"
[ ! -e "$OUT/q.kiln" ]
for T in 10 37; do
    "$KILN" run $M --bound T=64 --interp --input tokens=$D/tokens_$T.npy --output logits="$OUT/i.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/i.npy" $D/logits_$T.npy
    "$KILN" run $M --bound T=64 --input tokens=$D/tokens_$T.npy --output logits="$OUT/n.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/n.npy" $D/logits_$T.npy
done
[ "$("$KILN" ir $M --bound T=64 | grep -c ' = attention(.*causal=true')" -eq 1 ]
