#!/bin/sh
# Remakes the seeds derived from the examples: tests/fuzz/model/{gpt2,llama,vit}-tiny.kiln (the
# example with its consts at the sizes of the committed weights) and tests/fuzz/ir/*.kir (their IR
# before and after the passes). Run after an example changes:  sh tests/fuzz/make_seeds.sh build/kiln
set -eu
cd "$(dirname "$0")/../.."
KILN=${1:-build/kiln}
tiny() { # NAME 'const line of the example' 'tiny const line' WEIGHTS
    sed -e "s/^$2/$3/" -e "s|^weights \".*\"|weights \"$(basename "$4")\"|" "examples/$1/$1.kiln" > "tests/fuzz/model/$1-tiny.kiln"
    grep -q "^$3" "tests/fuzz/model/$1-tiny.kiln" || { echo "make_seeds.sh: examples/$1/$1.kiln has no line '$2'" >&2; exit 1; }
    "$KILN" ir "tests/fuzz/model/$1-tiny.kiln" --weights "$4" --passes none > "tests/fuzz/ir/$1-frontend.kir"
    "$KILN" ir "tests/fuzz/model/$1-tiny.kiln" --weights "$4" > "tests/fuzz/ir/$1-passes.kir"
}
tiny gpt2 'const V = 50257, D = 768, H = 12, L = 12, CTX = 1024' 'const V = 96, D = 64, H = 4, L = 2, CTX = 64' \
    examples/gpt2/gpt2-tiny.safetensors
tiny llama 'const V = 32000, D = 2048, H = 32, KVH = 4, F = 5632, L = 22, CTX = 2048' \
    'const V = 128, D = 64, H = 4, KVH = 2, F = 172, L = 2, CTX = 64' examples/llama/llama-tiny.safetensors
tiny vit 'const D = 768, H = 12, L = 12, P = 16, IMG = 224, CLASSES = 1000' \
    'const D = 64, H = 4, L = 2, P = 8, IMG = 32, CLASSES = 10' examples/vit/vit-small-random.safetensors
"$KILN" ir examples/charlm/charlm.kiln > tests/fuzz/ir/charlm-passes.kir
