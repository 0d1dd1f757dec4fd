#!/bin/sh
# GPT-2 at its real 124M shape, on random weights: the interpreter against PyTorch (1e-4 relative),
# and native builds with embedded and with external weights against the interpreter (1e-5).
# Needs /usr/bin/python3 with torch, ~3 GB of memory and ~1.5 GB of disk in $DIR; about a minute.
#   sh examples/gpt2/check_124m.sh [DIR]      (run from the repository's root, after a build)
set -eu
DIR=${1:-/tmp/kiln-gpt2-124m}
mkdir -p "$DIR"
KILN=./build/kiln NPYCMP=./build/tests/npycmp
/usr/bin/python3 examples/gpt2/make_weights.py --preset 124m --out "$DIR/gpt2.safetensors"
/usr/bin/python3 -c "import numpy as np; np.save('$DIR/tokens.npy', np.random.default_rng(5).integers(0, 50257, 8).astype(np.int32))"
/usr/bin/python3 examples/gpt2/reference.py "$DIR/gpt2.safetensors" "$DIR/tokens.npy" "$DIR/torch.npy"
W="--weights $DIR/gpt2.safetensors"
$KILN run examples/gpt2/gpt2.kiln $W --interp --input tokens="$DIR/tokens.npy" --output logits="$DIR/interp.npy"
$NPYCMP --maxrel 1e-4 "$DIR/interp.npy" "$DIR/torch.npy"
$KILN build examples/gpt2/gpt2.kiln $W --weights-mode external -o "$DIR/gpt2-external"
"$DIR/gpt2-external" --weights "$DIR/gpt2-external.weights" --input tokens="$DIR/tokens.npy" --output logits="$DIR/external.npy"
$NPYCMP --maxrel 1e-5 "$DIR/external.npy" "$DIR/interp.npy"
$KILN build examples/gpt2/gpt2.kiln $W --weights-mode embed -o "$DIR/gpt2-embedded"
"$DIR/gpt2-embedded" --input tokens="$DIR/tokens.npy" --output logits="$DIR/embedded.npy"
$NPYCMP --maxrel 1e-5 "$DIR/embedded.npy" "$DIR/interp.npy"
echo "GPT-2 124M: interpreter matches PyTorch; embedded and external builds match the interpreter"
