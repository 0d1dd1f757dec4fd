#!/bin/sh
# The main job: set up, build, then check the default example model and run it.
# For now the default example is GPT-2 (examples/gpt2/gpt2.kiln) on its small random weights, run by
# the interpreter; native compilation arrives with the code generator.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
SIZE="-D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 --weights examples/gpt2/gpt2-tiny.safetensors"
set -x
# shellcheck disable=SC2086
./build/kiln check examples/gpt2/gpt2.kiln $SIZE
# shellcheck disable=SC2086
./build/kiln run examples/gpt2/gpt2.kiln $SIZE --interp --input tokens=tests/models/gpt2/tokens_16.npy
