#!/bin/sh
# Accuracy of vit-mnist under prune-tokens against its FLOPs and its run time: for each --prune-tokens
# setting, the held-out accuracy (MNIST 8000..9999, examples/vit-mnist/eval), the model's matmul and
# attention FLOPs from the pass's report (per image), and the wall time of the four batches of 500
# (one run, so only as steady as the machine: a benchmark, not a test). Prints a Markdown table.
#
#   sh examples/vit-mnist/prune_tokens.sh [THREADS] [SPEC ...]
# Run from the repository's root after building (build/kiln, build/tests/mnist).
set -eu
THREADS=${1:-2}
[ $# -gt 0 ] && shift
SPECS=${*:-"none tome:r=2 tome:r=4 tome:r=6 tome:r=8 tome:r=4,prop=off tome:r=8,schedule=decreasing pitome:ratio=0.95 pitome:ratio=0.9 pitome:ratio=0.8 evit:keep=0.7,layers=1,3,5 evit:keep=0.5,layers=1,3,5"}
KILN=${KILN:-./build/kiln}
M=examples/vit-mnist/vit-mnist.kiln
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "| --prune-tokens | accuracy | MFLOP per image | FLOPs | time of 2000 images ($THREADS threads) |"
echo "|---|---|---|---|---|"
for spec in $SPECS; do
    opt="" copt="--prune-tokens tome:r=0" # r=0: the report with nothing merged
    [ "$spec" = none ] || opt="--prune-tokens $spec" copt=$opt
    # the report counts the batch at its bound (1000): per image is a thousandth
    "$KILN" check $M $copt > "$TMP/check.txt"
    "$KILN" build $M $opt -o "$TMP/prog" >/dev/null
    t0=$(date +%s.%N)
    acc=$(examples/vit-mnist/eval "$TMP/prog" --threads "$THREADS" | sed 's/accuracy //')
    t1=$(date +%s.%N)
    flops=$(sed -n 's/^  model: \([0-9.e+]*\) -> \([0-9.e+]*\) \([A-Z]*FLOP\).*(\([0-9.-]*\)% fewer.*/\2 \3 \4/p' "$TMP/check.txt")
    set -- $flops
    case $2 in GFLOP) m=1000;; MFLOP) m=1;; *) m=0.001;; esac
    f=$(awk -v v="$1" -v m="$m" 'BEGIN { printf "%.2f", v * m / 1000 }')
    share=$(awk -v s="$3" 'BEGIN { printf "%.1f%%", 100 - s }')
    awk -v s="$spec" -v a="$acc" -v f="$f" -v sh="$share" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "| %s | %s | %s | %s | %.2f s |\n", s, a, f, sh, t1 - t0 }'
done
