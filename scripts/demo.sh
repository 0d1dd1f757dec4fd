#!/bin/sh
# The main job: set up, build kiln, compile the default example model to a native program and run it.
# The default example is GPT-2 (examples/gpt2/gpt2.kiln) at a small size on random weights.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
SIZE="-D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 --weights examples/gpt2/gpt2-tiny.safetensors"
set -x
# shellcheck disable=SC2086
./build/kiln check examples/gpt2/gpt2.kiln $SIZE
# shellcheck disable=SC2086
./build/kiln build examples/gpt2/gpt2.kiln $SIZE -o build/gpt2-tiny
./build/gpt2-tiny --input tokens=tests/models/gpt2/tokens_16.npy
./build/gpt2-tiny --input tokens=tests/models/gpt2/tokens_64.npy --bench 20
