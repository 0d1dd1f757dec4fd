#!/bin/sh
# fuse-ops computes what the primitives compute: every model of tests/lit/fuse-ops/ (the fused
# spellings and the near misses) is run three ways on the same inputs, and every output compared:
#   ref     the interpreter without passes: the primitives, each rounded to its dtype;
#   interp  the interpreter after the default passes: the fused ops, computed in double;
#   native  native code after the default passes: the kernels.
# Tolerance, element by element: |a - e| <= 1e-5 + 1e-5 |e| for f32 outputs (a few f32 roundings
# apart, and the kernels' polynomial erf, tanh and exp), 1e-3 + 4e-3 |e| for f16 outputs (the
# primitives round to f16 in the middle of the expression, the fused op only at its end).
# The inputs are committed in tests/lit/fuse-ops/inputs/, made once with NumPy from a fixed seed:
# x = 0.5 + 2 N(0, 1) as f32[7, 64], g = 1 + 0.2 N(0, 1), b = 0.1 N(0, 1), h = x as f16, g16 f16.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
DIR=tests/lit/fuse-ops
n=0
for f in $DIR/*.kiln; do
    name=$(basename "$f" .kiln)
    outputs=$(sed -n 's/^output \([A-Za-z0-9_]*\):.*/\1/p' "$f")
    ins=""
    for i in $(sed -n 's/^input \([A-Za-z0-9_]*\):.*/\1/p' "$f"); do
        ins="$ins --input $i=$DIR/inputs/$i.npy"
    done
    for mode in ref interp native; do
        outs=""
        for o in $outputs; do
            outs="$outs --output $o=$OUT/$mode.$o.npy"
        done
        case $mode in
        ref) flags="--interp --passes none" ;;
        interp) flags="--interp" ;;
        native) flags="" ;;
        esac
        # shellcheck disable=SC2086
        "$KILN" run "$f" $flags $ins $outs
    done
    for o in $outputs; do
        tol="--rtol 1e-5 --atol 1e-5"
        if sed -n "s/^output $o: //p" "$f" | grep -q '^f16'; then
            tol="--rtol 4e-3 --atol 1e-3"
        fi
        for mode in interp native; do
            printf '%s: %s, %s: ' "$name" "$o" "$mode"
            # shellcheck disable=SC2086
            "$NPYCMP" $tol "$OUT/$mode.$o.npy" "$OUT/ref.$o.npy"
        done
        n=$((n + 1))
    done
done
echo "$n outputs of the fuse-ops models agree with the unfused interpreter"
