#!/bin/sh
# prune-tokens on vit-mnist against PyTorch (tests/models/prune/make_refs.py: ToMe, PiToMe and EViT as their
# reference implementations define them, in float64): the logits of four held-out images under each
# method and schedule, in the interpreter (all seven) and compiled (ToMe r=8, EViT, PiToMe), 1e-4 relative
# to the largest logit; EViT at other layers compiled (1 and 2 threads) against the interpreter. Then the tiny ViT (examples/vit, rank-2 tokens, no batch axis) merged, compiled
# against the interpreter.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
M=examples/vit-mnist/vit-mnist.kiln I=examples/vit-mnist/ref/images_4.npy R=tests/models/prune
check() { # name spec [--interp]
    "$KILN" run $M $3 --prune-tokens "$2" --input image=$I --output logits="$OUT/$1.npy" >/dev/null
    "$NPYCMP" --maxrel 1e-4 "$OUT/$1.npy" $R/$1.npy
}
check tome_r8 tome:r=8 --interp
check tome_r5_noprop tome:r=5,prop=off --interp
check tome_decreasing tome:r=6,schedule=decreasing --interp
check tome_list tome:r=3,0,9,1 --interp
check evit_07 evit:keep=0.7,layers=1,3,4 --interp
check pitome_09 pitome:ratio=0.9 --interp
check pitome_08_prop pitome:ratio=0.8,prop=on --interp
check tome_r8 tome:r=8 ""
check evit_07 evit:keep=0.7,layers=1,3,4 ""
check pitome_09 pitome:ratio=0.9 ""
# EViT compiled (each layer's [CLS] probabilities from its attention's kernel, cls_probs) against the
# interpreter, at 1 and 2 threads, 1e-4 relative: keep 0.5 at layers 0, 2 and 4
"$KILN" run $M --interp --prune-tokens evit:keep=0.5,layers=0,2,4 --input image=$I --output logits="$OUT/ei.npy" >/dev/null
for t in 1 2; do
    "$KILN" run $M --threads $t --prune-tokens evit:keep=0.5,layers=0,2,4 --input image=$I --output logits="$OUT/en.npy" >/dev/null
    "$NPYCMP" --maxrel 1e-4 "$OUT/en.npy" "$OUT/ei.npy"
done
V="examples/vit/vit.kiln -D D=64 -D H=4 -D L=2 -D P=8 -D IMG=32 -D CLASSES=10 --weights examples/vit/vit-small-random.safetensors"
for spec in tome:r=3 pitome:ratio=0.75 evit:keep=0.5,layers=0,1; do
    "$KILN" run $V --interp --prune-tokens $spec --input image=tests/models/vit/image.npy --output logits="$OUT/vi.npy" >/dev/null
    "$KILN" run $V --prune-tokens $spec --input image=tests/models/vit/image.npy --output logits="$OUT/vn.npy" >/dev/null
    "$NPYCMP" --maxrel 1e-4 "$OUT/vn.npy" "$OUT/vi.npy"
done
