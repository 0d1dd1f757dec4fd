#!/bin/sh
# The main job: set up, build kiln, compile the default example model to a native program and run it.
# The default example is charlm (examples/charlm): a character-level GPT trained on Shakespeare,
# whose compiled program writes text from a prompt: a prefill entry reads the prompt, a decode entry
# adds one character at a time through a KV cache (--kv-cache full).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
set -x
./build/kiln check examples/charlm/charlm.kiln
./build/kiln build examples/charlm/charlm.kiln --kv-cache full -o build/charlm
./build/charlm --prompt "ROMEO:" -n 300 --temperature 0.8 --top-k 20 --seed 1
