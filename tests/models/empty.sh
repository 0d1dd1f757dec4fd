#!/bin/sh
# Empty tensors (a dimension of 0) end to end: tests/models/empty/empty.kiln declares inputs of no
# elements (f32[96, 0], f32[0, 80], i64[0, 5], i64[0]) and reads a weight of no bytes (f32[0, 80] in
# a safetensors file that holds nothing else), through concat, transpose, reshape, where, softmax,
# gather with no indices, elementwise ops, a layernorm of an empty product, the reductions of an
# empty axis (sum 0, max -inf, mean NaN: ir/interp.c's definitions), a [96, 0] @ [0, 80] matmul
# (a contraction over nothing: zeros, then + x), products with M = 0 and N = 0 (codegen emits
# nothing for an empty result: a kernel's blocking divided by the N of 0), attention over no tokens
# (plain and causal) and a convolution of no images. Each output is compared exactly with NumPy's (the
# want_*.npy files, or x itself) through the interpreter, compiled in memory at 1 and 2 threads, and
# as a program from `kiln build` (whose runtime reads and writes the .npy files of no elements).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
D=tests/models/empty
IN=""
for i in e x v i ix qk img kw; do IN="$IN --input $i=$D/$i.npy"; done
OUTS="a b s m mn p r q sm g ln c z n0 at ca cv"
outs() { for o in $OUTS; do printf ' --output %s=%s/%s.npy' "$o" "$OUT" "$o"; done; }
check() {
    for o in a p z; do "$NPYCMP" --rtol 0 --atol 0 "$OUT/$o.npy" $D/x.npy; done
    for o in b s m mn r q sm g ln c n0 at ca cv; do "$NPYCMP" --rtol 0 --atol 0 "$OUT/$o.npy" "$D/want_$o.npy"; done
    rm -f "$OUT"/*.npy
}
# shellcheck disable=SC2046,SC2086
for mode in --interp "--threads 1" "--threads 2"; do
    "$KILN" run $D/empty.kiln $mode $IN $(outs)
    check
done
"$KILN" build $D/empty.kiln -o "$OUT/prog"
# shellcheck disable=SC2046,SC2086
"$OUT/prog" $IN $(outs) --threads 2
check
# a dimension below 0 is still an error
printf 'model bad\ninput x: f32[3, -1]\noutput y: f32[3, -1]\ny = x\n' > "$OUT/bad.kiln"
if "$KILN" check "$OUT/bad.kiln" 2> "$OUT/err.txt"; then exit 1; fi
grep -q "a dimension must be at least 0, got -1" "$OUT/err.txt"
echo "empty tensors: ok"
