#!/bin/sh
# The trained character model (examples/charlm) against PyTorch: logits on held-out text (1e-4
# relative) in the interpreter and natively; greedy generation from a prompt character for
# character; and --eval on the held-out 10% within 0.01 nats/char of PyTorch's figure
# (examples/charlm/make_refs.py wrote them all into examples/charlm/ref/).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
M=examples/charlm/charlm.kiln R=examples/charlm/ref
for t in 64 256; do
    "$KILN" run $M --interp --input tokens=$R/tokens_$t.npy --output logits="$OUT/i$t.npy"
    "$NPYCMP" --maxrel 1e-4 "$OUT/i$t.npy" $R/logits_$t.npy
done
"$KILN" build $M -o "$OUT/charlm"
"$OUT/charlm" --input tokens=$R/tokens_256.npy --output logits="$OUT/n256.npy"
"$NPYCMP" --maxrel 1e-4 "$OUT/n256.npy" $R/logits_256.npy
"$OUT/charlm" --prompt "ROMEO:" -n 80 --temperature 0 > "$OUT/greedy.txt"
if ! cmp -s "$OUT/greedy.txt" $R/greedy.txt; then
    echo "FAIL: greedy generation differs from PyTorch's:"
    cat "$OUT/greedy.txt" $R/greedy.txt
    exit 1
fi
echo "greedy generation matches PyTorch"
# sampling is reproducible from its seed
"$OUT/charlm" --prompt "ROMEO:" -n 60 --temperature 0.8 --top-k 10 --seed 7 > "$OUT/s1.txt"
"$OUT/charlm" --prompt "ROMEO:" -n 60 --temperature 0.8 --top-k 10 --seed 7 > "$OUT/s2.txt"
cmp "$OUT/s1.txt" "$OUT/s2.txt"
test "$(wc -c < "$OUT/s1.txt")" -eq 67 # 6 of prompt + 60 characters + a newline
# held-out loss
examples/charlm/eval "$OUT/charlm" --threads 2 | tee "$OUT/eval.txt"
got=$(sed -n 's/^\([0-9.]*\) nats\/char.*/\1/p' "$OUT/eval.txt")
want=$(cat $R/heldout_nats.txt)
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; printf "eval %s nats/char, PyTorch %s: difference %.4f (at most 0.01)\n", g, w, d; exit !(d <= 0.01) }'
