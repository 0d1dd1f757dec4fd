#!/bin/sh
# choose-quant's trade-off curves: for each setting, a uniform scheme (`--quant`) or a budget
# (`--quant-budget`, chosen from calibration runs), the held-out quality of the built program, the
# weights' size and the estimated matmul time from choose-quant's report, and the measured latency.
# Prints a Markdown table; with PLOT set, also draws quality against size and against latency.
#
#   [PLOT=OUT.png] [BENCH=5] [ROUNDS=3] [FIFO=1] [LOCK=FILE] [TIMES=FILE] sh scripts/quant_curves.sh vit-mnist|charlm [SETTING ...]
#
# SETTING: fp32, bf16, int8, w8, w4 (one scheme for every layer), or a budget as --quant-budget takes
# it (loss=1e-3, size=1, speed=2, loss=1e-3,speed=2; the closest choice when none meets it, marked).
#   vit-mnist: calibration on MNIST test images 0..23 as 6 runs of 4 (the last run held out: each
#              budget's calibration takes about a minute of the interpreter);
#              quality: accuracy on the held-out images 8000..9999 (examples/vit-mnist/eval);
#              latency: one batch of 100 images 8000..8099, the program's --bench median of BENCH runs.
#   charlm:    calibration on 12 windows of 256 characters of the training text (the first 90% of
#              tinyshakespeare.txt; the last 3 windows held out); quality: nats/char on the whole
#              held-out text (examples/charlm/eval); latency: --eval of the first 4096 held-out
#              characters (16 windows of 256: prefill-shaped products), the whole process's wall
#              time, best of BENCH runs.
# The budgets' calibrations run JOBS (2) at a time; every setting is built; then the programs are timed in ROUNDS interleaved rounds, every
# setting once per round, and a setting's latency is the lowest of its rounds (slow drift of the
# host hits every setting alike). FIFO=1 times at 1 thread under SCHED_FIFO (`chrt -f 50`: root or
# CAP_SYS_NICE); else at 1 thread at the ordinary priority. LOCK=FILE holds that lock (flock) while a
# setting is timed (released between settings), so that no other agent times at once. TIMES=FILE
# keeps every round's figure.
# Run from the repository's root after building (build/kiln, build/tests/mnist). A benchmark, not a test.
set -eu
WHAT=${1:?usage: scripts/quant_curves.sh vit-mnist|charlm [SETTING ...]}
shift
KILN=${KILN:-./build/kiln}
MNIST=${MNIST:-./build/tests/mnist}
BENCH=${BENCH:-5}
ROUNDS=${ROUNDS:-3}
DATA=../shared/data
TIMER=""
HOW="1 thread"
[ -z "${FIFO:-}" ] || TIMER="chrt -f 50" HOW="1 thread, SCHED_FIFO"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
case $WHAT in
vit-mnist)
    M=examples/vit-mnist/vit-mnist.kiln
    SETTINGS=${*:-"fp32 bf16 int8 w8 w4 loss=1e-4 loss=1e-3 size=1.5 size=1 speed=1.5 speed=2 speed=3"}
    gzip -dc "$DATA/mnist-t10k-images-idx3-ubyte.gz" > "$TMP/images.idx"
    CAL=""
    i=0
    while [ $i -lt 6 ]; do
        "$MNIST" images "$TMP/images.idx" $((4 * i)) 4 "$TMP/cal$i.npy"
        CAL="$CAL $TMP/cal$i.npy"
        i=$((i + 1))
    done
    "$MNIST" images "$TMP/images.idx" 8000 100 "$TMP/bench.npy"
    QUALITY="accuracy (%)"
    quality() { examples/vit-mnist/eval "$1" --threads 2 | sed 's/^accuracy \([0-9.]*\)%.*/\1/'; }
    latency() { $TIMER "$1" --input image="$TMP/bench.npy" --threads 1 --bench "$BENCH" |
        sed -n 's/^bench: .* median \([0-9.]*\) ms$/\1/p'; }
    LAT="ms per batch of 100"
    ;;
charlm)
    M=examples/charlm/charlm.kiln
    SETTINGS=${*:-"fp32 bf16 int8 w8 w4 loss=1e-3 loss=1e-2 size=2 speed=1.5 speed=2 speed=3"}
    total=$(wc -c < "$DATA/tinyshakespeare.txt")
    head -c 3072 "$DATA/tinyshakespeare.txt" > "$TMP/cal.txt"
    CAL="$TMP/cal.txt"
    tail -c +$((total * 9 / 10 + 1)) "$DATA/tinyshakespeare.txt" | head -c 4096 > "$TMP/bench.txt"
    QUALITY="nats/char"
    quality() { examples/charlm/eval "$1" --threads 2 | sed -n 's/^\([0-9.]*\) nats\/char.*/\1/p'; }
    latency() { # the best wall time of BENCH runs of --eval, in ms
        k=0 best=""
        while [ $k -lt "$BENCH" ]; do
            k=$((k + 1))
            t0=$(date +%s%N)
            $TIMER "$1" --eval "$TMP/bench.txt" --threads 1 > /dev/null
            t1=$(date +%s%N)
            best=$(awk -v b="$best" -v t=$(((t1 - t0) / 1000)) 'BEGIN { t /= 1000; print (b == "" || t < b) ? t : b }')
        done
        echo "$best"
    }
    LAT="ms per 4096 characters (--eval)"
    ;;
*)
    echo "quant_curves.sh: expected vit-mnist or charlm, not '$WHAT'" >&2
    exit 2
    ;;
esac

# The curve a setting belongs to
series() {
    case $1 in
    fp32 | bf16 | int8 | w8 | w4) echo "uniform" ;;
    *speed=*) echo "chosen under speed=" ;;
    loss=*) echo "chosen under loss=" ;;
    size=*) echo "chosen under size=" ;;
    *) echo "other" ;;
    esac
}

# The budgets' reports first, JOBS at a time (the calibration runs in the interpreter, one thread)
JOBS=${JOBS:-2}
i=0 j=0
for s in $SETTINGS; do
    i=$((i + 1))
    mkdir "$TMP/$i"
    case $s in
    fp32 | bf16 | int8 | w8 | w4) continue ;;
    esac
    rc=0
    ( "$KILN" check $M --calibrate $CAL --quant-budget "$s" --quant-report "$TMP/$i/r.txt" > /dev/null 2> "$TMP/$i/err.txt" || rc=$?
      echo $rc > "$TMP/$i/rc" ) &
    j=$((j + 1))
    [ $((j % JOBS)) -ne 0 ] || wait
done
wait

# Build every setting: row i of rows.txt (setting, schemes, quality, MB, held-out loss, est. ms,
# est. fp32 ms, met) goes with program i/prog.
: > "$TMP/rows.txt"
printf 'top fp32\n' > "$TMP/fp32.txt" # pins one layer at fp32: the others stay fp32 too, and the report is written
i=0
for s in $SETTINGS; do
    i=$((i + 1))
    met=yes
    case $s in
    fp32) "$KILN" check $M --quant-overrides "$TMP/fp32.txt" --quant-report "$TMP/$i/r.txt" > /dev/null ;;
    bf16 | int8 | w8 | w4) "$KILN" check $M --quant $s --quant-report "$TMP/$i/r.txt" > /dev/null ;;
    *) [ "$(cat "$TMP/$i/rc")" = 0 ] ||
        { grep -q "no choice meets it" "$TMP/$i/err.txt" || { cat "$TMP/$i/err.txt" >&2; exit 1; }; met=no; } ;;
    esac
    "$KILN" build $M --quant-overrides "$TMP/$i/r.txt" -o "$TMP/$i/prog" > "$TMP/build.txt" 2>&1 ||
        { cat "$TMP/build.txt" >&2; exit 1; }
    qual=$(quality "$TMP/$i/prog")
    mb=$(sed -n 's/^# weights: \([0-9.e+-]*\) MB.*/\1/p' "$TMP/$i/r.txt")
    held=$(sed -n 's/^# the whole choice on the held-out runs: loss \(.*\)/\1/p' "$TMP/$i/r.txt")
    est=$(sed -n 's/^# matmuls: an estimated \([0-9.e+-]*\) ms (fp32: \([0-9.e+-]*\) ms.*/\1 \2/p' "$TMP/$i/r.txt")
    schemes=$(awk '/^  / { printf "%s%s", n++ ? " " : "", $2 }' "$TMP/$i/r.txt")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$schemes" "$qual" "$mb" "${held:--}" "$est" "$met" >> "$TMP/rows.txt"
done
n=$i

: > "$TMP/times.txt"
r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    i=0
    while [ $i -lt $n ]; do
        i=$((i + 1))
        [ -z "${LOCK:-}" ] || { exec 9> "$LOCK"; flock 9; }
        ms=$(latency "$TMP/$i/prog")
        [ -z "${LOCK:-}" ] || { flock -u 9; exec 9>&-; }
        [ -n "$ms" ] || { echo "quant_curves.sh: no time from setting $i" >&2; exit 1; }
        echo "$i $ms" >> "$TMP/times.txt"
    done
done
[ -z "${TIMES:-}" ] || awk 'NR == FNR { s[FNR] = $1; next } { print s[$1], $2 }' FS='\t' "$TMP/rows.txt" FS=' ' "$TMP/times.txt" > "$TIMES"
awk '!($1 in b) || $2 < b[$1] { b[$1] = $2 } END { for (i in b) print i, b[i] }' "$TMP/times.txt" | sort -n > "$TMP/best.txt"
base=$(awk -F '\t' '$1 == "fp32" { print NR; exit }' "$TMP/rows.txt")
t0=$([ -z "$base" ] || awk -v b="$base" '$1 == b { print $2 }' "$TMP/best.txt")

echo "| setting | schemes | $QUALITY | weights (MB) | held-out loss | est. speed vs fp32 | $LAT ($HOW) | measured speed vs fp32 |"
echo "|---|---|---|---|---|---|---|---|"
: > "$TMP/plot.dat"
i=0
while [ $i -lt $n ]; do
    i=$((i + 1))
    IFS='	' read -r s schemes qual mb held est met <<ROW
$(sed -n "${i}p" "$TMP/rows.txt")
ROW
    t=$(awk -v i="$i" '$1 == i { print $2 }' "$TMP/best.txt")
    espeed=$(echo "$est" | awk '{ printf "%.2fx", $2 / $1 }')
    speed=$([ -z "$t0" ] && echo - || awk -v t="$t" -v t0="$t0" 'BEGIN { printf "%.2fx", t0 / t }')
    label=$s
    [ "$met" = yes ] || label="$s (not met: closest)"
    printf '| %s | %s | %s | %.3f | %s | %s | %.1f | %s |\n' "$label" "$schemes" "$qual" "$mb" "$held" "$espeed" "$t" "$speed"
    printf '%s\t%s\t%s\t%s\t%s\n' "$(series "$s")" "$s" "$qual" "$mb" "$t" >> "$TMP/plot.dat"
done

[ -n "${PLOT:-}" ] || exit 0
# One gnuplot data block per curve, each sorted by size; the data stay beside the plot (OUT.dat):
# curve, setting, quality, MB, ms.
DAT=${PLOT%.png}.dat
: > "$TMP/names.txt"
for c in "uniform" "chosen under loss=" "chosen under size=" "chosen under speed="; do
    awk -F '\t' -v c="$c" '$1 == c' "$TMP/plot.dat" | sort -t '	' -k4,4g > "$TMP/c.dat"
    [ -s "$TMP/c.dat" ] || continue
    cat "$TMP/c.dat" >> "$DAT.tmp"
    printf '\n\n' >> "$DAT.tmp"
    echo "$c" >> "$TMP/names.txt"
done
mv "$DAT.tmp" "$DAT"
curves() { # gnuplot's plot list with x from column $1: every setting a point labelled with its name
    awk -v f="$DAT" -v x="$1" '{ printf "%s\047%s\047 index %d using %d:3 with points pt %d ps 1.5 title \047%s\047, \047%s\047 index %d using %d:3:2 with labels offset 0,%s font \047,9\047 notitle",
        (NR > 1 ? ", " : ""), f, NR - 1, x, NR == 1 ? 5 : 7, $0 == "uniform" ? "uniform (one scheme for all)" : $0, f, NR - 1, x, NR % 2 ? "0.9" : "-0.9" }' "$TMP/names.txt"
}
cat > "$TMP/plot.gp" <<GP
set terminal pngcairo size 1200,600 noenhanced
set output '$PLOT'
set grid
set datafile separator '\t'
set key below
set offsets graph 0.06, graph 0.06, graph 0.12, graph 0.12
set ylabel 'held-out $QUALITY'
set multiplot layout 1,2
set title '$WHAT: quality against the weights'' size'
set xlabel 'weights (MB)'
plot $(curves 4)
set title '$WHAT: quality against latency (lowest of $ROUNDS interleaved rounds)'
set xlabel '$LAT ($HOW)'
plot $(curves 5)
unset multiplot
GP
gnuplot "$TMP/plot.gp"
