#!/bin/sh
# ONNX end to end: the trained ViT on MNIST exported by torch.onnx.export (examples/vit-mnist/
# export_onnx.py, opset 17) is imported and must match PyTorch's logits of four held-out images
# (1e-4 relative) in the interpreter and natively, with each of its 6 layers' attention fused;
# `kiln import` writes a model file and weights that compile to the same result, and `kiln build`
# of the .onnx makes a program that gives it too.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
M=examples/vit-mnist/vit-mnist.onnx R=examples/vit-mnist/ref
"$KILN" run $M --interp --input image=$R/images_4.npy --output logits="$OUT/i.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/i.npy" $R/logits_4.npy
"$KILN" run $M --input image=$R/images_4.npy --output logits="$OUT/n.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/n.npy" $R/logits_4.npy
fused=$("$KILN" ir $M | grep -c ' = attention' || true)
echo "attention fused in $fused layers"
[ "$fused" -eq 6 ]
"$KILN" import $M -o "$OUT/vit.kiln"
[ -s "$OUT/vit.safetensors" ]
"$KILN" run "$OUT/vit.kiln" --input image=$R/images_4.npy --output logits="$OUT/k.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/k.npy" $R/logits_4.npy
"$KILN" build $M -o "$OUT/vit-onnx"
"$OUT/vit-onnx" --input image=$R/images_4.npy --output logits="$OUT/b.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/b.npy" $R/logits_4.npy
