#!/bin/sh
# choose-quant with one scheme for every layer (--quant) on the trained ViT on MNIST
# (examples/vit-mnist): for int8, w8 and w4, the compiled program's logits of four held-out images
# against the interpreter running the same quantized graph (1e-4 relative to the largest logit: the
# quantized products are the same integers on both sides, the rest differs as in fp32); and the int8
# program's held-out accuracy (images 8000..9999) within 0.2 point of PyTorch's fp32 accuracy
# (examples/vit-mnist/ref/heldout_correct.txt); charlm int8 within +0.01 nats/char of charlm fp32 on
# part of its held-out text. A scheme that does not exist is refused.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
M=examples/vit-mnist/vit-mnist.kiln R=examples/vit-mnist/ref
for q in int8 w8 w4; do
    "$KILN" run $M --quant $q --interp --input image=$R/images_4.npy --output logits="$OUT/i-$q.npy"
    "$KILN" build $M --quant $q -o "$OUT/vit-$q"
    "$OUT/vit-$q" --input image=$R/images_4.npy --output logits="$OUT/n-$q.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/n-$q.npy" "$OUT/i-$q.npy"
done
if "$KILN" check $M --quant int4 2> "$OUT/err.txt"; then
    echo "FAIL: --quant int4 was accepted"
    exit 1
fi
grep -q "quant needs a scheme: bf16, int8, int8s, w8, w4" "$OUT/err.txt"
MNIST="$(dirname "$NPYCMP")/mnist" examples/vit-mnist/eval "$OUT/vit-int8" --threads 2 | tee "$OUT/eval.txt"
got=$(sed -n 's/.*(\([0-9]*\) of 2000)/\1/p' "$OUT/eval.txt")
want=$(cat $R/heldout_correct.txt)
awk -v g="$got" -v w="$want" 'BEGIN { d = (g - w) / 20; if (d < 0) d = -d; printf "int8 accuracy %.2f%%, PyTorch fp32 %.2f%%: %.2f points apart (at most 0.2)\n", g / 20, w / 20, d; exit !(d <= 0.2) }'
# charlm int8 against charlm fp32, both compiled, on the first 28000 held-out characters (109 windows
# of 256; the whole held-out set is examples/charlm/eval's): within +0.01 nats/char
C=examples/charlm/charlm.kiln
DATA=../shared/data/tinyshakespeare.txt
total=$(wc -c < "$DATA")
tail -c +$((total * 9 / 10 + 1)) "$DATA" | head -c 28000 > "$OUT/heldout.txt"
"$KILN" build $C -o "$OUT/charlm"
"$KILN" build $C --quant int8 -o "$OUT/charlm-int8"
f=$("$OUT/charlm" --eval "$OUT/heldout.txt" --threads 2 | sed -n 's/^\([0-9.]*\) nats\/char.*/\1/p')
q=$("$OUT/charlm-int8" --eval "$OUT/heldout.txt" --threads 2 | sed -n 's/^\([0-9.]*\) nats\/char.*/\1/p')
awk -v f="$f" -v q="$q" 'BEGIN { printf "charlm int8 %s nats/char, fp32 %s: %+.4f (at most +0.01)\n", q, f, q - f; exit !(q - f <= 0.01) }'
