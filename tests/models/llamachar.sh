#!/bin/sh
# The trained Llama-style character model (examples/llamachar: RMSNorm, rotary, grouped-query
# attention, SwiGLU) compiled from examples/llama/llama.kiln, against PyTorch
# (tests/models/charmodel.inc says what is checked; examples/llamachar/make_refs.py wrote the
# references into examples/llamachar/ref/).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
. tests/models/charmodel.inc
char_model llamachar examples/llama/llama.kiln examples/llamachar/ref \
    -D V=65 -D D=192 -D H=6 -D KVH=2 -D F=512 -D L=4 -D CTX=256 --weights examples/llamachar/llamachar.safetensors
