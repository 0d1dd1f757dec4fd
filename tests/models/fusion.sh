#!/bin/sh
# Fused loops, matmul epilogues, in-place buffers and slices that are views (t[0], t[1] of a
# transposed intermediate), compiled (default passes, 1 and 2 threads)
# against the interpreter on the unfused graph (--passes none). The operands are all made from one
# committed image (tests/models/vit/image.npy, [3, 32, 32]), so no generator is needed: the products'
# right sides are computed, not constant (the packed-weight epilogue is covered by the example models).
# Tolerance: 1e-5 of the largest output (f32 products over K = 64 and 48 terms, computed in another
# order than the interpreter's double accumulation).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cat > "$OUT/fusion.kiln" <<'MODEL'
model fusion
input img: f32[3, 32, 32]
output y: f32[48, 64]
output z: f32[48]
output r: f32[48, 48]
output v: f32[48, 48]
x = img.reshape(48, 64)
w1 = img.reshape(64, 48) * 0.25
b1 = sum(w1, axis=0) * 0.01
w2 = x.transpose(1, 0).reshape(48, 64) * 0.1
h = gelu(x @ w1 + b1)
y = x + (h @ w2 + sum(x, axis=0))
a = exp(x * 0.5)
b = softmax(a, axis=-1)
c = a + b
z = sum(c * c, axis=-1)
r = tanh(h * h - 1.0) * sigmoid(h)
t = exp(x * 0.1).reshape(48, 2, 32).permute(1, 0, 2)
v = t[1] @ t[0].transpose(1, 0) * 0.01
MODEL
"$KILN" run "$OUT/fusion.kiln" --interp --passes none --input img=tests/models/vit/image.npy \
    --output y="$OUT/y.ref.npy" --output z="$OUT/z.ref.npy" --output r="$OUT/r.ref.npy" --output v="$OUT/v.ref.npy"
# the compiled graph must hold what is tested: inline nodes, an epilogue and a buffer in place
"$KILN" ir "$OUT/fusion.kiln" | grep -q "matmul(.*{inline}"
"$KILN" check "$OUT/fusion.kiln" | grep -q "[1-9][0-9]* more written in place"
for t in 1 2; do
    "$KILN" run "$OUT/fusion.kiln" --threads $t --input img=tests/models/vit/image.npy \
        --output y="$OUT/y.npy" --output z="$OUT/z.npy" --output r="$OUT/r.npy" --output v="$OUT/v.npy"
    for o in y z r v; do
        "$NPYCMP" --maxrel 1e-5 "$OUT/$o.npy" "$OUT/$o.ref.npy"
    done
done
