#!/bin/sh
# The accuracy/cost trade-off of vit-mnist under prune-tokens: for each --prune-tokens setting, the
# held-out accuracy (MNIST 8000..9999, examples/vit-mnist/eval), the model's matmul and attention FLOPs
# from the pass's report (per image), and the latency of one batch of 500 held-out images (the built
# program's --bench: median of BENCH timed runs after a warm-up), with the speed relative to the
# unmerged model (`none`, when it is in the list). Prints a Markdown table; with PLOT set, also draws
# accuracy against FLOPs and against latency, one curve per method, with gnuplot.
#
#   [PLOT=OUT.png] [BENCH=5] [ROUNDS=3] [FIFO=1] [TIMES=FILE] sh examples/vit-mnist/prune_tokens.sh [THREADS] [SPEC ...]
#
# Every setting is built first (and its accuracy taken at THREADS threads); then the programs are
# timed in ROUNDS interleaved rounds, every setting once per round, and a setting's latency is the
# lowest of its round medians: slow drift of the host's speed then hits every setting alike. With
# FIFO=1 the timed runs are at 1 thread under SCHED_FIFO (`chrt -f 50 PROG ... --threads 1`: needs
# root or CAP_SYS_NICE), which gives near-quiet times on a shared machine; one such run takes BENCH + 1
# runs of the batch, so keep BENCH small (it holds a core for that long). Without FIFO the timed runs
# use THREADS threads at the ordinary priority. TIMES=FILE keeps every round's median (a line per
# timed run: setting, ms), to see the spread.
# Run from the repository's root after building (build/kiln, build/tests/mnist). Accuracy and FLOPs do
# not depend on the machine; the latency does. A benchmark, not a test.
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
ROUNDS=${ROUNDS:-3}
FIFO=${FIFO:-}
M=${MODEL:-examples/vit-mnist/vit-mnist.kiln}
EVAL=${EVAL:-examples/vit-mnist/eval}
IMAGES=${IMAGES:-images}
NAME=${NAME:-vit-mnist}
DATA=../shared/data
if [ -n "$FIFO" ]; then
    TIMER="chrt -f 50" TT=1 HOW="1 thread, SCHED_FIFO"
else
    TIMER="" TT=$THREADS HOW="$THREADS threads"
fi
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

# Build every setting, take its accuracy and FLOPs: row i of rows.txt (spec, accuracy, MFLOP, share)
# goes with the program i/prog.
: > "$TMP/rows.txt"
i=0
for spec in $SPECS; do
    i=$((i + 1))
    mkdir "$TMP/$i"
    opt="" copt="--prune-tokens tome:r=0" # r=0: the report with nothing merged
    [ "$spec" = none ] || opt="--prune-tokens $spec" copt=$opt
    # the report counts the batch at its bound (1000): per image is a thousandth
    "$KILN" check $M $copt > "$TMP/check.txt"
    "$KILN" build $M $opt -o "$TMP/$i/prog" > "$TMP/build.txt" 2>&1 || { cat "$TMP/build.txt" >&2; exit 1; }
    acc=$("$EVAL" "$TMP/$i/prog" --threads "$THREADS" | sed 's/accuracy //')
    flops=$(sed -n 's/^  model: \([0-9.e+]*\) -> \([0-9.e+]*\) \([A-Z]*FLOP\).*(\([0-9.-]*\)% fewer.*/\2 \3 \4/p' "$TMP/check.txt")
    set -- $flops
    case $2 in GFLOP) m=1000;; MFLOP) m=1;; *) m=0.001;; esac
    f=$(awk -v v="$1" -v m="$m" 'BEGIN { printf "%.2f", v * m / 1000 }')
    share=$(awk -v s="$3" 'BEGIN { printf "%.1f%%", 100 - s }')
    printf '%s\t%s\t%s\t%s\n' "$spec" "$acc" "$f" "$share" >> "$TMP/rows.txt"
done
n=$i

# Time the programs in interleaved rounds; times.txt gets one line per timed run: i, median ms.
: > "$TMP/times.txt"
r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    i=0
    while [ $i -lt $n ]; do
        i=$((i + 1))
        ms=$($TIMER "$TMP/$i/prog" --input image="$TMP/bench.npy" --threads "$TT" --bench "$BENCH" |
            sed -n 's/^bench: .* median \([0-9.]*\) ms$/\1/p')
        [ -n "$ms" ] || { echo "prune_tokens.sh: no --bench line from the program of $(sed -n "${i}p" "$TMP/rows.txt" | cut -f1)" >&2; exit 1; }
        echo "$i $ms" >> "$TMP/times.txt"
    done
done
# every round's median, with the settings' names, when TIMES names a file (to see the spread)
[ -z "${TIMES:-}" ] || awk 'NR == FNR { spec[FNR] = $1; next } { print spec[$1], $2 }' FS='\t' "$TMP/rows.txt" FS=' ' "$TMP/times.txt" > "$TIMES"
# each setting's lowest round median, and the unmerged one's (for the speed column)
awk '!($1 in best) || $2 < best[$1] { best[$1] = $2 } END { for (i in best) print i, best[i] }' "$TMP/times.txt" |
    sort -n > "$TMP/best.txt"
base=$(awk -F '\t' '$1 == "none" { print NR; exit }' "$TMP/rows.txt")
t0=$([ -z "$base" ] || awk -v b="$base" '$1 == b { print $2 }' "$TMP/best.txt")

echo "| --prune-tokens | accuracy | MFLOP per image | FLOPs | ms per batch of 500 ($HOW) | speed vs unmerged |"
echo "|---|---|---|---|---|---|"
: > "$TMP/plot.dat"
i=0
while [ $i -lt $n ]; do
    i=$((i + 1))
    IFS='	' read -r spec acc f share <<ROW
$(sed -n "${i}p" "$TMP/rows.txt")
ROW
    t=$(awk -v i="$i" '$1 == i { print $2 }' "$TMP/best.txt")
    ms=$(awk -v t="$t" 'BEGIN { printf "%.1f", t }')
    speed=$([ -z "$t0" ] && echo - || awk -v t="$t" -v t0="$t0" 'BEGIN { printf "%.2fx", t0 / t }')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$spec" "$acc" "$f" "$share" "$ms" "$speed"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(series "$spec")" "$spec" "${acc%%%*}" "$f" "$ms" "${speed%x}" >> "$TMP/plot.dat"
done

[ -n "${PLOT:-}" ] || exit 0
# One gnuplot data block per curve, each starting from the unmerged point; the curves' names, one a
# line, in names.txt. The data stay beside the plot (OUT.dat): curve, spec, accuracy %, MFLOP per
# image, ms per batch, speed vs unmerged.
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
# The issue's target on the latency panel: at most 0.5 point below the unmerged accuracy, at 1.3x its
# speed or more (above the horizontal dashed line and left of the vertical one).
target="" yrange=""
acc0=$(awk -F '\t' '$1 == "unmerged" { print $3; exit }' "$TMP/plot.dat")
if [ -n "$acc0" ] && [ -n "$t0" ]; then
    target=$(awk -v a="$acc0" -v t="$t0" 'BEGIN {
        printf "set arrow 1 from graph 0, first %.2f to graph 1, first %.2f nohead dt 2 lc rgb \"gray30\"\n", a - 0.5, a - 0.5
        printf "set arrow 2 from first %.2f, graph 0 to first %.2f, graph 1 nohead dt 2 lc rgb \"gray30\"\n", t / 1.3, t / 1.3
        printf "set label 1 \"target\" at first %.2f, graph 0.96 right offset -0.5,0 tc rgb \"gray30\"\n", t / 1.3 }')
    yrange="set yrange [*<$(awk -v a="$acc0" 'BEGIN { printf "%.2f", a - 0.6 }'):*]" # the line in view
fi
cat > "$TMP/plot.gp" <<GP
set terminal pngcairo size 1200,560 noenhanced
set output '$PLOT'
set grid
set datafile separator '\t'
set key below
set ylabel 'held-out accuracy, % (MNIST 8000..9999)'
set multiplot layout 1,2 title '$NAME under prune-tokens (latency: lowest of $ROUNDS interleaved medians of $BENCH runs)'
set xlabel 'MFLOP per image (matmul and attention)'
$yrange
plot $(curves 4)
set xlabel 'ms per batch of 500 ($HOW)'
$target
plot $(curves 5)
unset multiplot
GP
gnuplot "$TMP/plot.gp"
