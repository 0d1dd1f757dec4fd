#!/bin/sh
# --profile (issue #17): the time per node group of a compiled run, from `kiln run` and from a built
# program. Times are not checked (no timed tests); what is checked is what the report must get right
# whatever the machine: every group is there once, the shares add up to 100%, the FLOPs per run
# equal `kiln check`'s count at the same size (at the bound, and at T = 16, which is not one of the
# points the compiler fitted each group's FLOPs at), and the Chrome trace holds one event per group
# and timed run.
set -eu
KILN=$1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
G="-D V=96 -D D=64 -D H=4 -D L=2 --weights examples/gpt2/gpt2-tiny.safetensors"
flops_check() { # kiln check's FLOPs per run, in MFLOP
    "$KILN" check examples/gpt2/gpt2.kiln $G "$@" | sed -n 's/^FLOPs per run: \([0-9.]*\) MFLOP.*/\1/p'
}
flops_profile() { # the profile's MFLOP per run, rounded as kiln check rounds
    awk '/all \(MFLOP per run\)/ { printf "%.2f\n", $3 }' "$1"
}
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --input tokens=tests/models/gpt2/tokens_64.npy \
    --output logits="$OUT/l.npy" --profile >"$OUT/p64.txt"
[ "$(flops_profile "$OUT/p64.txt")" = "$(flops_check -D CTX=64)" ]
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --input tokens=tests/models/gpt2/tokens_16.npy \
    --output logits="$OUT/l.npy" --profile >"$OUT/p16.txt"
[ "$(flops_profile "$OUT/p16.txt")" = "$(flops_check -D CTX=16)" ]
# the groups: as many lines as the header says, each once, the attention among them
n=$(sed -n 's/^profile: \([0-9]*\) groups.*/\1/p' "$OUT/p16.txt")
[ "$(grep -c ' %[0-9]* ' "$OUT/p16.txt")" -eq "$n" ]
[ "$(grep -o ' %[0-9]* ' "$OUT/p16.txt" | sort | uniq -d | wc -l)" -eq 0 ]
grep -q " attention  %[0-9]* attention f32\[4, T, 16\]" "$OUT/p16.txt"
grep -q " matmul  %[0-9]* matmul + epilogue " "$OUT/p16.txt"
awk '/ %[0-9]+ / { s += $2 } END { if (s < 99 || s > 101) { print "shares add up to " s; exit 1 } }' "$OUT/p16.txt"
# a built program: warm runs with --bench, and the trace
"$KILN" build examples/gpt2/gpt2.kiln $G -D CTX=64 -o "$OUT/gpt2"
"$OUT/gpt2" --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/l.npy" --bench 3 --profile \
    --profile-trace "$OUT/trace.json" >"$OUT/pb.txt"
grep -q "^bench: 3 runs" "$OUT/pb.txt"
[ "$(sed -n 's/^profile: \([0-9]*\) groups.*/\1/p' "$OUT/pb.txt")" -eq "$n" ]
grep -q ' 3 .* matmul  %' "$OUT/pb.txt"
[ "$(flops_profile "$OUT/pb.txt")" = "$(flops_check -D CTX=16)" ]
head -1 "$OUT/trace.json" | grep -q '^{"displayTimeUnit": "ms", "traceEvents": \[$'
tail -1 "$OUT/trace.json" | grep -q '^\]}$'
[ "$(grep -c '"ph": "X"' "$OUT/trace.json")" -eq $((3 * n)) ]
echo "profile: $n groups, FLOPs as kiln check counts them"
