#!/bin/sh
# Query rows whose every key is masked (issue #10): the fused attention keeps the meaning of the graph
# it replaces. Row 0 of `keep` is all false, for three spellings of the mask:
#   a: where(keep, s, -1e9)          every score is the same fill: the row is the mean of V
#   b: s + where(keep, 0, -1e9)      an additive finite mask: again (nearly) equal scores, the mean of V
#   c: where(keep, s, -inf)          no key at all: softmax gives NaN (0/0), as in PyTorch
# The interpreter on the unfused graph (--passes none) is the oracle; the interpreter after the passes,
# and the compiled code unfused and fused (1 and 2 threads) must agree with it, NaN where it has NaN.
# The test also checks that the three attentions were fused, and what row 0 holds.
# Tolerance: 1e-5 of the largest output (f32 sums of 8 terms in another order).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cat > "$OUT/m.kiln" <<'MODEL'
model masked
input img: f32[3, 32, 32]
output a: f32[4, 8, 16]
output b: f32[4, 8, 16]
output c: f32[4, 8, 16]
output vmean: f32[4, 1, 16]
x = img.reshape(3, 64, 16)
q = x[0].reshape(4, 16, 16)
k = x[1].reshape(4, 16, 16)[:, 0:8, :]
v = x[2].reshape(4, 16, 16)[:, 0:8, :]
keep = arange(8).reshape(1, 8) < arange(8).reshape(8, 1)
a = softmax(where(keep, q[:, 0:8, :] @ k.transpose(0, 2, 1) * 0.25, -1e9), axis=-1) @ v
b = softmax(q[:, 4:12, :] @ k.transpose(0, 2, 1) * 0.25 + where(keep, 0.0, -1e9), axis=-1) @ v
c = softmax(where(keep, q[:, 8:16, :] @ k.transpose(0, 2, 1) * 0.25, -inf), axis=-1) @ v
vmean = mean(v, axis=1, keepdims=true)
MODEL
IMG=tests/models/vit/image.npy
[ "$("$KILN" ir "$OUT/m.kiln" | grep -c "= attention(")" -eq 3 ]
run() { # $1: name, then kiln run options
    name=$1
    shift
    "$KILN" run "$OUT/m.kiln" "$@" --input img=$IMG --output a="$OUT/a.$name.npy" --output b="$OUT/b.$name.npy" \
        --output c="$OUT/c.$name.npy" --output vmean="$OUT/vmean.$name.npy"
}
run ref --interp --passes none
run interp --interp
run unfused --passes none
run fused1 --threads 1
run fused2 --threads 2
for m in interp unfused fused1 fused2; do
    for o in a b c; do
        "$NPYCMP" --maxrel 1e-5 "$OUT/$o.$m.npy" "$OUT/$o.ref.npy"
    done
done
# what the oracle holds: row 0 of a and of b is the mean of V; c is NaN in row 0 of every head and
# nowhere else (4 x 16 of its 512 elements)
cat > "$OUT/row0.kiln" <<'MODEL'
model row0
input a: f32[4, 8, 16]
input c: f32[4, 8, 16]
output a0: f32[4, 1, 16]
output nans: f32[4, 8]
output total: f32[]
a0 = a[:, 0:1, :]
nans = sum(where(c != c, 1.0, 0.0), axis=-1)
total = sum(sum(nans, axis=-1), axis=-1)
MODEL
for o in a b; do
    "$KILN" run "$OUT/row0.kiln" --interp --input a="$OUT/$o.ref.npy" --input c="$OUT/c.ref.npy" \
        --output a0="$OUT/${o}0.npy" --output nans="$OUT/nans.npy" --output total="$OUT/total.npy"
    "$NPYCMP" --maxrel 1e-6 "$OUT/${o}0.npy" "$OUT/vmean.ref.npy"
done
"$KILN" run "$OUT/row0.kiln" --interp --input a="$OUT/a.ref.npy" --input c="$OUT/c.ref.npy" >"$OUT/print.txt"
grep -q "^nans: f32\[4, 8\] = \[16, 0, 0, 0, 0, 0, 0, 0, \.\.\.\]" "$OUT/print.txt"
grep -q "^total: f32\[\] = \[64\]" "$OUT/print.txt"
echo "masked rows: interpreter, unfused and fused code agree"
