#!/bin/sh
# The IR's text form on every example: the IR printed for the model (before and after the passes)
# parses back and prints byte-identically, and the re-read IR computes the same outputs in the
# interpreter as the model file (bit-identical: the same graph in the same order).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
check() { # check NAME INPUT=FILE MODEL OPTIONS...  (each example's output is `logits`)
    name=$1 input=$2
    shift 2
    for passes in none default; do
        "$KILN" ir "$@" --passes $passes > "$OUT/$name.kir"
        "$KILN" ir "$OUT/$name.kir" --passes none > "$OUT/$name.again.kir"
        cmp "$OUT/$name.kir" "$OUT/$name.again.kir"
        "$KILN" run "$OUT/$name.kir" --interp --input "$input" --output "logits=$OUT/$name.kir.npy" --passes none
        "$KILN" run "$@" --interp --passes $passes --input "$input" --output "logits=$OUT/$name.npy"
        "$NPYCMP" --rtol 0 --atol 0 "$OUT/$name.kir.npy" "$OUT/$name.npy"
        echo "$name ($passes): round trip ok"
    done
}
check gpt2 tokens=tests/models/gpt2/tokens_16.npy examples/gpt2/gpt2.kiln -D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 \
    --weights examples/gpt2/gpt2-tiny.safetensors
check vit image=tests/models/vit/image.npy examples/vit/vit.kiln -D D=64 -D H=4 -D L=2 -D P=8 -D IMG=32 -D CLASSES=10 \
    --weights examples/vit/vit-small-random.safetensors
check llama tokens=tests/models/llama/tokens_7.npy examples/llama/llama.kiln -D V=128 -D D=64 -D H=4 -D KVH=2 -D F=172 \
    -D L=2 -D CTX=64 --weights examples/llama/llama-tiny.safetensors
