#!/bin/sh
# kiln explore (driver/explore.c): its table's quality column is what the model gives when built and
# run directly at that knob.
#   - vit-mnist, --prune-tokens 'tome:r=[0,8]', 100 held-out MNIST images: the accuracy at r=8 equals
#     the share of images the program built with --prune-tokens tome:r=8 classifies right (counted by
#     tests/tools/mnist), and the FLOPs at r=8 are fewer than at r=0; with gnuplot, --plot writes a PNG;
#   - charlm, --kv-cache 'window:[16,64]', 1200 characters of held-out text: the nats/char at window:16
#     equal what the program built with --kv-cache window:16 prints for --eval FILE --stream;
#   - without quality data, a usage error (status 2).
# No time is asserted.
set -eu
KILN=$1 NPYCMP=$2
MNIST="$(dirname "$NPYCMP")/mnist"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
DATA=../shared/data
row() { grep "^| $1 |" "$T/table.txt" | awk -F'|' "{ gsub(/ /, \"\", \$$2); print \$$2 }"; }

M=examples/vit-mnist/vit-mnist.kiln
gzip -dc "$DATA/mnist-t10k-images-idx3-ubyte.gz" > "$T/images.idx"
gzip -dc "$DATA/mnist-t10k-labels-idx1-ubyte.gz" > "$T/labels.idx"
"$MNIST" images "$T/images.idx" 8000 100 "$T/x.npy"
"$MNIST" labels "$T/labels.idx" 8000 100 "$T/y.npy"
PLOT=""
command -v gnuplot >/dev/null && PLOT="--plot $T/curve.png"
# shellcheck disable=SC2086
"$KILN" explore $M --prune-tokens 'tome:r=[0,8]' --input image="$T/x.npy" --labels "$T/y.npy" --threads 2 $PLOT \
    > "$T/table.txt"
cat "$T/table.txt"
"$KILN" build $M --prune-tokens tome:r=8 -o "$T/vit8"
"$T/vit8" --input image="$T/x.npy" --output logits="$T/l8.npy" --threads 2
want=$(awk -v n="$("$MNIST" correct "$T/l8.npy" "$T/y.npy")" 'BEGIN { printf "%.2f", n }') # of 100 images: n %
got=$(row tome:r=8 7)
[ "$got" = "$want" ] || { echo "FAIL: explore says $got% at tome:r=8, the program $want%"; exit 1; }
awk -v a="$(row tome:r=0 3)" -v b="$(row tome:r=8 3)" 'BEGIN { exit !(b < a) }' ||
    { echo "FAIL: r=8 does not have fewer FLOPs than r=0"; exit 1; }
if [ -n "$PLOT" ]; then
    [ "$(head -c 4 "$T/curve.png" | od -An -c | tr -d ' ')" = "211PNG" ] || { echo "FAIL: no PNG from --plot"; exit 1; }
fi

M=examples/charlm/charlm.kiln
total=$(wc -c < "$DATA/tinyshakespeare.txt")
tail -c +$((total * 9 / 10 + 1)) "$DATA/tinyshakespeare.txt" | head -c 1200 > "$T/text.txt"
"$KILN" explore $M --kv-cache 'window:[16,64]' --text "$T/text.txt" --threads 2 > "$T/table.txt"
cat "$T/table.txt"
"$KILN" build $M --kv-cache window:16 -o "$T/charlm16"
want=$("$T/charlm16" --eval "$T/text.txt" --stream --threads 2 | sed -n 's/^\([0-9.]*\) nats\/char.*/\1/p')
got=$(row window:16 7)
[ "$got" = "$want" ] || { echo "FAIL: explore says $got nats/char at window:16, the program $want"; exit 1; }

status=0
"$KILN" explore $M --kv-cache 'window:[16,64]' 2> "$T/err.txt" || status=$?
[ "$status" = 2 ] && grep -q -- "--text FILE" "$T/err.txt" || { echo "FAIL: no usage error without quality data"; exit 1; }
echo "explore: OK"
