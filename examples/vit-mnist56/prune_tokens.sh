#!/bin/sh
# The accuracy/cost trade-off of vit-mnist56 (197 tokens, ViT-B/16's count) under prune-tokens:
# examples/vit-mnist/prune_tokens.sh on this model, its eval and its 56 x 56 input; ToMe at r = 8, 13,
# 16 and 24 with and without proportional attention, PiToMe (0.96 down to 0.8 without proportional
# attention, its authors' default; to 0.87 with) and EViT over their knob at comparable FLOPs. Prints
# a Markdown table; with PLOT set, also the plot (gnuplot).
#
#   [PLOT=OUT.png] [BENCH=5] [ROUNDS=3] [FIFO=1] [TIMES=FILE] sh examples/vit-mnist56/prune_tokens.sh [THREADS] [SPEC ...]
# The environment variables are examples/vit-mnist/prune_tokens.sh's (see its header); docs/PASSES.md's
# table: PLOT=docs/prune-tokens-vit-mnist56.png BENCH=3 ROUNDS=3 FIFO=1 sh examples/vit-mnist56/prune_tokens.sh 2
# Run from the repository's root after building (build/kiln, build/tests/mnist). A benchmark, not a test.
set -eu
THREADS=${1:-2}
[ $# -gt 0 ] && shift
SPECS=${*:-"none tome:r=8 tome:r=13 tome:r=16 tome:r=24 \
tome:r=8,prop=off tome:r=13,prop=off tome:r=16,prop=off tome:r=24,prop=off \
pitome:ratio=0.96 pitome:ratio=0.93 pitome:ratio=0.9 pitome:ratio=0.87 pitome:ratio=0.84 pitome:ratio=0.8 \
pitome:ratio=0.96,prop=on pitome:ratio=0.93,prop=on pitome:ratio=0.9,prop=on pitome:ratio=0.87,prop=on \
evit:keep=0.9,layers=1,3,5 evit:keep=0.8,layers=1,3,5 evit:keep=0.7,layers=1,3,5 evit:keep=0.5,layers=1,3,5"}
MODEL=examples/vit-mnist56/vit-mnist56.kiln EVAL=examples/vit-mnist56/eval IMAGES=images2x NAME=vit-mnist56 \
    exec sh examples/vit-mnist/prune_tokens.sh "$THREADS" $SPECS
