#!/bin/sh
# The accuracy/cost trade-off of vit-mnist under prune-tokens: for each --prune-tokens setting, the
# held-out accuracy (MNIST 8000..9999, examples/vit-mnist/eval), the model's matmul and attention FLOPs
# from the pass's report (per image), and the latency of one batch of 500 held-out images (the built
# program's --bench: median of BENCH timed runs after a warm-up). Prints a Markdown table; with PLOT
# set, also draws accuracy against FLOPs and against latency, one curve per method, with gnuplot.
#
#   [PLOT=OUT.png] [BENCH=5] sh examples/vit-mnist/prune_tokens.sh [THREADS] [SPEC ...]
# Run from the repository's root after building (build/kiln, build/tests/mnist). Accuracy and FLOPs do
# not depend on the machine; the latency does: take it on a quiet machine. A benchmark, not a test.
# examples/vit-mnist56/prune_tokens.sh runs it on vit-mnist56 through MODEL, EVAL, IMAGES (the mnist
# tool's command that makes the model's input) and NAME.
set -eu
THREADS=${1:-2}
[ $# -gt 0 ] && shift
SPECS=${*:-"none tome:r=1 tome:r=2 tome:r=3 tome:r=4 tome:r=6 tome:r=8 \
tome:r=1,prop=off tome:r=2,prop=off tome:r=3,prop=off tome:r=4,prop=off tome:r=6,prop=off tome:r=8,prop=off \
pitome:ratio=0.95 pitome:ratio=0.9 pitome:ratio=0.85 pitome:ratio=0.8 \
pitome:ratio=0.95,prop=on pitome:ratio=0.9,prop=on pitome:ratio=0.85,prop=on pitome:ratio=0.8,prop=on \
evit:keep=0.9,layers=1,3,5 evit:keep=0.7,layers=1,3,5 evit:keep=0.5,layers=1,3,5 evit:keep=0.3,layers=1,3,5"}
KILN=${KILN:-./build/kiln}
MNIST=${MNIST:-./build/tests/mnist}
BENCH=${BENCH:-5}
M=${MODEL:-examples/vit-mnist/vit-mnist.kiln}
EVAL=${EVAL:-examples/vit-mnist/eval}
IMAGES=${IMAGES:-images}
NAME=${NAME:-vit-mnist}
DATA=../shared/data
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
gzip -dc "$DATA/mnist-t10k-images-idx3-ubyte.gz" > "$TMP/images.idx"
"$MNIST" "$IMAGES" "$TMP/images.idx" 8000 500 "$TMP/bench.npy"

# The curve a setting belongs to: the method, and whether attention is proportional (ToMe's default
# is on, PiToMe's off; EViT has none).
series() {
    case $1 in
    none) echo "unmerged" ;;
    tome:*prop=off*) echo "ToMe without proportional attention" ;;
    tome:*) echo "ToMe" ;;
    pitome:*prop=on*) echo "PiToMe with proportional attention" ;;
    pitome:*) echo "PiToMe" ;;
    evit:*) echo "EViT" ;;
    *) echo "other" ;;
    esac
}

echo "| --prune-tokens | accuracy | MFLOP per image | FLOPs | ms per batch of 500 ($THREADS threads) |"
echo "|---|---|---|---|---|"
: > "$TMP/plot.dat"
for spec in $SPECS; do
    opt="" copt="--prune-tokens tome:r=0" # r=0: the report with nothing merged
    [ "$spec" = none ] || opt="--prune-tokens $spec" copt=$opt
    # the report counts the batch at its bound (1000): per image is a thousandth
    "$KILN" check $M $copt > "$TMP/check.txt"
    "$KILN" build $M $opt -o "$TMP/prog" > "$TMP/build.txt" 2>&1 || { cat "$TMP/build.txt" >&2; exit 1; }
    acc=$("$EVAL" "$TMP/prog" --threads "$THREADS" | sed 's/accuracy //')
    ms=$("$TMP/prog" --input image="$TMP/bench.npy" --threads "$THREADS" --bench "$BENCH" |
        sed -n 's/^bench: .* median \([0-9.]*\) ms$/\1/p' | awk '{ printf "%.0f", $1 }')
    flops=$(sed -n 's/^  model: \([0-9.e+]*\) -> \([0-9.e+]*\) \([A-Z]*FLOP\).*(\([0-9.-]*\)% fewer.*/\2 \3 \4/p' "$TMP/check.txt")
    set -- $flops
    case $2 in GFLOP) m=1000;; MFLOP) m=1;; *) m=0.001;; esac
    f=$(awk -v v="$1" -v m="$m" 'BEGIN { printf "%.2f", v * m / 1000 }')
    share=$(awk -v s="$3" 'BEGIN { printf "%.1f%%", 100 - s }')
    printf '| %s | %s | %s | %s | %s |\n' "$spec" "$acc" "$f" "$share" "$ms"
    printf '%s\t%s\t%s\t%s\t%s\n' "$(series "$spec")" "$spec" "${acc%%%*}" "$f" "$ms" >> "$TMP/plot.dat"
done

[ -n "${PLOT:-}" ] || exit 0
# One gnuplot data block per curve, each starting from the unmerged point; the curves' names, one a
# line, in names.txt. The data stay beside the plot (OUT.dat).
DAT=${PLOT%.png}.dat
awk -F '\t' -v names="$TMP/names.txt" '$1 == "unmerged" { base = $0; next }
    { s[$1] = s[$1] $0 "\n"; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
    END { for (i = 0; i < n; i++) {
            b = base; sub(/^[^\t]*/, order[i], b); printf "%s\n%s\n\n", b, s[order[i]]; print order[i] > names } }' \
    "$TMP/plot.dat" > "$DAT"
curves() { # gnuplot's plot list with x from column $1
    awk -v f="$DAT" -v x="$1" '{ printf "%s\047%s\047 index %d using %d:3 with linespoints pt 7 title \047%s\047",
        (NR > 1 ? ", " : ""), f, NR - 1, x, $0 }' "$TMP/names.txt"
}
cat > "$TMP/plot.gp" <<EOF
set terminal pngcairo size 1200,560
set output '$PLOT'
set grid
set datafile separator '\t'
set key below
set ylabel 'held-out accuracy, % (MNIST 8000..9999)'
set multiplot layout 1,2 title '$NAME under prune-tokens ($THREADS threads)'
set xlabel 'MFLOP per image (matmul and attention)'
plot $(curves 4)
set xlabel 'ms per batch of 500 (median of $BENCH runs; machine load changes it)'
plot $(curves 5)
unset multiplot
EOF
gnuplot "$TMP/plot.gp"
