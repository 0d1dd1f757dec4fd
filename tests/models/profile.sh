#!/bin/sh
# --profile (issue #17): the time per node group of a compiled run, from `kiln run` and from a built
# program. Times are not checked (no timed tests); what is checked is what the report must get right
# whatever the machine: every group is there once, the shares add up to 100%, the FLOPs per run
# equal `kiln check`'s count at the same size (at the bound, and at T = 16, which is not one of the
# points the compiler fitted each group's FLOPs at), the Chrome trace holds one event per group
# and timed run, and the peak: measured for the run's thread count and the model's vector width,
# stated in the header and the trace's metadata, and each group's % of it is its GFLOP/s over the FMA
# peak or its GB/s over the bandwidth, whichever is larger (to the printed digits).
set -eu
KILN=$1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
G="-D V=96 -D D=64 -D H=4 -D L=2 --weights examples/gpt2/gpt2-tiny.safetensors"
flops_check() { # kiln check's FLOPs per run, in MFLOP
    "$KILN" check examples/gpt2/gpt2.kiln $G "$@" | sed -n 's/^FLOPs per run: \([0-9.]*\) MFLOP.*/\1/p'
}
flops_profile() { # the profile's MFLOP per run, rounded as kiln check rounds
    awk '/all \(MFLOP per run\)/ { printf "%.2f\n", $4 }' "$1"
}
# the peak's line, every group's % of it, and the calling thread's CPU time over the run against its
# wall time (within 10% and 5 us a group: reading the CPU clock is a system call whose own cost varies)
check_peak() { # FILE THREADS
    grep -q "^profile: peak on $2 threads*: [0-9.]* GFLOP/s fp32 FMA on $VW-float vectors ($2 x [0-9.]*, " "$1"
    awk -v threads="$2" '
        /^profile: peak on / { pf = $6; pb = $0; sub(/.*\), /, "", pb); sub(/ GB\/s.*/, "", pb)
                               core = $0; sub(/^[^(]*\(/, "", core); sub(/^[0-9]+ x /, "", core); sub(/,.*/, "", core)
                               if (pf <= 0 || pb <= 0 || (pf - threads * core) ^ 2 > 0.02 ^ 2 * threads) bad = "peak: " $0 }
        / %[0-9]+ |all \(MFLOP per run\)/ {
            k = NF; for (i = 1; i <= NF; i++) if ($i ~ /%$/ && i > 3) { k = i; break }
            gf = $(k - 2); gb = $(k - 1); pct = $k; sub(/%/, "", pct); of = $(k + 1)
            f = 100 * gf / pf; b = 100 * gb / pb
            want = of == "FMA" ? f : b; other = of == "FMA" ? b : f
            tol = 0.06 + (100 + want) * 0.0051 / (of == "FMA" ? pf : pb) # rounding of the printed rate and peak
            if ((of != "FMA" && of != "BW") || (pct - want) ^ 2 > tol ^ 2 || other > want + tol) bad = bad "\n" $0
            if (/all \(MFLOP per run\)/ && $2 > $1 * 1.1 + 0.005 * n) bad = bad "\ncpu ms over ms: " $0
            n++ }
        END { if (!pf || !n || bad != "") { print "profile: peak columns inconsistent:" bad; exit 1 } }' "$1"
}
VW=$("$KILN" build examples/gpt2/gpt2.kiln $G -D CTX=64 --explain codegen --emit obj -o "$OUT/x.o" 2>&1 | sed -n "s/.*vectors of \([0-9]*\) floats.*/\1/p" | head -1)
[ -n "$VW" ]
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --input tokens=tests/models/gpt2/tokens_64.npy \
    --output logits="$OUT/l.npy" --profile >"$OUT/p64.txt"
[ "$(flops_profile "$OUT/p64.txt")" = "$(flops_check -D CTX=64)" ]
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --input tokens=tests/models/gpt2/tokens_16.npy \
    --output logits="$OUT/l.npy" --profile --threads 2 >"$OUT/p16.txt"
[ "$(flops_profile "$OUT/p16.txt")" = "$(flops_check -D CTX=16)" ]
check_peak "$OUT/p16.txt" 2
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --input tokens=tests/models/gpt2/tokens_16.npy \
    --output logits="$OUT/l.npy" --profile --threads 1 >"$OUT/p1.txt"
check_peak "$OUT/p1.txt" 1
# int8 products (--quant int8) are of kind qmatmul, with no peak (the profile measures the fp32
# FMA's), nor has the whole run; the other groups keep theirs
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --quant int8 --input tokens=tests/models/gpt2/tokens_16.npy \
    --output logits="$OUT/l.npy" --profile >"$OUT/pq.txt"
awk '$10 == "qmatmul" { q++; if ($8 != "-" || $9 != "-") bad = bad "\n" $0 }
     $10 == "attention" { a++; if ($9 != "FMA" && $9 != "BW") bad = bad "\n" $0 }
     /all \(MFLOP per run\)/ { if ($8 != "-") bad = bad "\n" $0 }
     END { if (!q || !a || bad != "") { print "profile --quant int8:" bad; exit 1 } }' "$OUT/pq.txt"
grep -q "^profile: groups of kind qmatmul (int8 or bf16 products) have no peak" "$OUT/pq.txt"
# without --output: the outputs first, then the profile
"$KILN" run examples/gpt2/gpt2.kiln $G -D CTX=64 --input tokens=tests/models/gpt2/tokens_16.npy --profile >"$OUT/po.txt"
awk '/^logits: / && !o { o = NR } /^profile: / && !p { p = NR } END { exit !(o && p && o < p) }' "$OUT/po.txt"
# the groups: as many lines as the header says, each once, the attention among them
n=$(sed -n 's/^profile: \([0-9]*\) groups.*/\1/p' "$OUT/p16.txt")
[ "$(grep -c ' %[0-9]* ' "$OUT/p16.txt")" -eq "$n" ]
[ "$(grep -o ' %[0-9]* ' "$OUT/p16.txt" | sort | uniq -d | wc -l)" -eq 0 ]
grep -q " attention  %[0-9]* attention f32\[4, T, 16\]" "$OUT/p16.txt"
grep -q " matmul  %[0-9]* matmul + epilogue " "$OUT/p16.txt"
awk '/ %[0-9]+ / { s += $3 } END { if (s < 99 || s > 101) { print "shares add up to " s; exit 1 } }' "$OUT/p16.txt"
# a built program: warm runs with --bench, and the trace
"$KILN" build examples/gpt2/gpt2.kiln $G -D CTX=64 -o "$OUT/gpt2"
"$OUT/gpt2" --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/l.npy" --bench 3 --profile \
    --threads 2 --profile-trace "$OUT/trace.json" >"$OUT/pb.txt"
grep -q "^bench: 3 runs" "$OUT/pb.txt"
[ "$(sed -n 's/^profile: \([0-9]*\) groups.*/\1/p' "$OUT/pb.txt")" -eq "$n" ]
grep -q ' 3 .* matmul  %' "$OUT/pb.txt"
[ "$(flops_profile "$OUT/pb.txt")" = "$(flops_check -D CTX=16)" ]
head -1 "$OUT/trace.json" | grep -q '^{"displayTimeUnit": "ms", "traceEvents": \[$'
check_peak "$OUT/pb.txt" 2
grep -q '^\],$' "$OUT/trace.json"
tail -1 "$OUT/trace.json" | grep -q "^\"otherData\": {\"peak_threads\": 2, \"peak_vector_floats\": $VW, \"peak_gflops\": [0-9.]*, .*}}$"
[ "$(grep -c '"ph": "X"' "$OUT/trace.json")" -eq $((3 * n)) ]
echo "profile: $n groups, FLOPs as kiln check counts them"
