#!/bin/sh
# The integer dtypes i16, u16 and u32 (tests/models/intdtypes/intdtypes.kiln): .npy inputs, a u32
# weight from safetensors, and arithmetic, comparisons, promotions, casts and reductions on them,
# compared exactly with NumPy's results (want_*.npy: integer arithmetic wraps as NumPy's does; the
# power and casts are computed in float64 and rounded once, as kiln does) through the interpreter,
# compiled in memory, and as a program from `kiln build`. A value that does not fit its dtype in a
# .kir constant is an error.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
D=tests/models/intdtypes
IN=""
for i in a b c d e f x; do IN="$IN --input $i=$D/$i.npy"; done
OUTS="mx16 mn16 add16 mul16 sub32 mix16 mix32 pw tou16 tof32 gt sum16 max32 minw"
outs() { for o in $OUTS; do printf ' --output %s=%s/%s.npy' "$o" "$OUT" "$o"; done; }
check() {
    for o in $OUTS; do "$NPYCMP" --rtol 0 --atol 0 "$OUT/$o.npy" "$D/want_$o.npy"; done
    # the dtypes too: npycmp reads every element as a double
    for o in mx16 mn16 mul16 sub32 mix16 mix32 tou16 max32 gt; do
        want=$(head -c 128 "$D/want_$o.npy" | tr -d '\0' | grep -ao "'descr': '[^']*'")
        [ -n "$want" ] && head -c 128 "$OUT/$o.npy" | tr -d '\0' | grep -aq "$want" ||
            { echo "$o: not $want" >&2; exit 1; }
    done
    rm -f "$OUT"/*.npy
}
# shellcheck disable=SC2046,SC2086
for mode in --interp "--threads 1" "--threads 2"; do
    "$KILN" run $D/intdtypes.kiln $mode $IN $(outs)
    check
done
"$KILN" build $D/intdtypes.kiln -o "$OUT/prog"
# shellcheck disable=SC2046,SC2086
"$OUT/prog" $IN $(outs)
check
# .kir constants of the new dtypes: in range read back, out of range an error
printf 'model k\n%%0 = const {data=[4294967295, 0]} : u32[2]\noutput c = %%0\n' > "$OUT/ok.kir"
"$KILN" run "$OUT/ok.kir" --interp --passes none | grep -q "4294967295, 0"
printf 'model k\n%%0 = const {data=[32768]} : i16[1]\noutput c = %%0\n' > "$OUT/bad.kir"
if "$KILN" check "$OUT/bad.kir" 2> "$OUT/err.txt"; then exit 1; fi
grep -q "value 32768 does not fit in i16" "$OUT/err.txt"
echo "integer dtypes: ok"
