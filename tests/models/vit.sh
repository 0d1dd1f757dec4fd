#!/bin/sh
# ViT (examples/vit/vit.kiln) in the interpreter against PyTorch (examples/vit/reference.py, float64)
# on small random weights. Tolerance: 1e-4 relative to the largest logit.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$KILN" run examples/vit/vit.kiln -D D=64 -D H=4 -D L=2 -D P=8 -D IMG=32 -D CLASSES=10 \
    --weights examples/vit/vit-small-random.safetensors --interp \
    --input image=tests/models/vit/image.npy --output logits="$OUT/logits.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/logits.npy" tests/models/vit/logits.npy
