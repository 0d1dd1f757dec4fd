#!/bin/sh
# The trained ViT on MNIST (examples/vit-mnist) against PyTorch: logits of four held-out images (1e-4
# relative) in the interpreter and natively, and the compiled program's held-out accuracy (images
# 8000..9999 in batches of 500) within 0.1 point of PyTorch's (examples/vit-mnist/ref/).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
M=examples/vit-mnist/vit-mnist.kiln R=examples/vit-mnist/ref
"$KILN" run $M --interp --input image=$R/images_4.npy --output logits="$OUT/i.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/i.npy" $R/logits_4.npy
"$KILN" build $M -o "$OUT/vit-mnist"
"$OUT/vit-mnist" --input image=$R/images_4.npy --output logits="$OUT/n.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/n.npy" $R/logits_4.npy
MNIST="$(dirname "$NPYCMP")/mnist" examples/vit-mnist/eval "$OUT/vit-mnist" --threads 2 | tee "$OUT/eval.txt"
got=$(sed -n 's/.*(\([0-9]*\) of 2000)/\1/p' "$OUT/eval.txt")
want=$(cat $R/heldout_correct.txt)
awk -v g="$got" -v w="$want" 'BEGIN { d = (g - w) / 20; if (d < 0) d = -d; printf "accuracy %.2f%%, PyTorch %.2f%%: %.2f points apart (at most 0.1)\n", g / 20, w / 20, d; exit !(d <= 0.1) }'
