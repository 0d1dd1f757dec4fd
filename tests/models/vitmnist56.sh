#!/bin/sh
# vit-mnist56 (examples/vit-mnist56: 197 tokens, ViT-B/16's count) against PyTorch
# (examples/vit-mnist56/make_refs.py): the logits of four held-out images, 1e-4 relative to the
# largest, in the interpreter and compiled; compiled under ToMe r = 13 and EViT against the reference
# forward passes of tests/models/prune/make_refs.py (float64), 1e-4 relative; ToMe r = 13 compiled
# against the interpreter, 1e-4, and EViT on 2 threads against the interpreter, 1e-4; and the compiled program's held-out accuracy (images 8000..9999
# upsampled as the model was trained) within 0.1 point of PyTorch's.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
M=examples/vit-mnist56/vit-mnist56.kiln R=examples/vit-mnist56/ref
"$KILN" run $M --interp --input image=$R/images_4.npy --output logits="$OUT/i.npy" >/dev/null
"$NPYCMP" --maxrel 1e-4 "$OUT/i.npy" $R/logits_4.npy
"$KILN" build $M -o "$OUT/vm56"
"$OUT/vm56" --input image=$R/images_4.npy --output logits="$OUT/n.npy" >/dev/null
"$NPYCMP" --maxrel 1e-4 "$OUT/n.npy" $R/logits_4.npy
"$KILN" run $M --prune-tokens tome:r=13 --input image=$R/images_4.npy --output logits="$OUT/t.npy" >/dev/null
"$NPYCMP" --maxrel 1e-4 "$OUT/t.npy" $R/tome_r13.npy
"$KILN" run $M --interp --prune-tokens tome:r=13 --input image=$R/images_4.npy --output logits="$OUT/ti.npy" >/dev/null
"$NPYCMP" --maxrel 1e-4 "$OUT/t.npy" "$OUT/ti.npy"
"$KILN" run $M --prune-tokens evit:keep=0.7,layers=1,3,5 --input image=$R/images_4.npy --output logits="$OUT/e.npy" >/dev/null
"$NPYCMP" --maxrel 1e-4 "$OUT/e.npy" $R/evit_07.npy
"$KILN" run $M --interp --prune-tokens evit:keep=0.7,layers=1,3,5 --input image=$R/images_4.npy --output logits="$OUT/ei.npy" >/dev/null
"$KILN" run $M --threads 2 --prune-tokens evit:keep=0.7,layers=1,3,5 --input image=$R/images_4.npy --output logits="$OUT/e2.npy" >/dev/null
"$NPYCMP" --maxrel 1e-4 "$OUT/e2.npy" "$OUT/ei.npy"
MNIST="$(dirname "$NPYCMP")/mnist" examples/vit-mnist56/eval "$OUT/vm56" --threads 2 | tee "$OUT/eval.txt"
got=$(sed -n 's/.*(\([0-9]*\) of 2000)/\1/p' "$OUT/eval.txt")
want=$(cat $R/heldout_correct.txt)
awk -v g="$got" -v w="$want" 'BEGIN { d = (g - w) / 20; if (d < 0) d = -d; printf "accuracy %.2f%%, PyTorch %.2f%%: %.2f points apart (at most 0.1)\n", g / 20, w / 20, d; exit !(d <= 0.1) }'
