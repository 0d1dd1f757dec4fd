#!/bin/sh
# The AVX2 int8 GEMM (codegen/qgemm_avx2.c) against quant.c's portable int8 kernel and the f32 GEMM,
# all built for one target (FLAGS, default "--cpu znver3": AVX2 without VNNI), on products
# M x K x N given as MxKxN (default: the bench's 197x768x768 197x768x3072 197x3072x768
# 1024x1024x1024). For each product: one program `y = x @ w.w` (random weights, f32 [K, N]) built
# three ways (fp32; --quant int8; --quant int8 with KILN_QGEMM_AVX2=off=1, the portable kernel),
# then timed at each thread count of THREADS (the program's --bench median), the three interleaved
# within each round and the lowest median of ROUNDS rounds kept. Each timed run takes LOCK (flock,
# default /tmp/kiln-time.lock) and runs under `chrt -f 50` unless FIFO=0. Prints one line per product
# and thread count: M K N threads, then ms and GOP/s for fp32, int8 (AVX2) and int8 (portable).
#
#   [FLAGS=...] [THREADS="1 2"] [ROUNDS=3] [BENCH=20] [FIFO=1] [LOCK=FILE] sh scripts/qgemm_avx2_bench.sh [MxKxN ...]
#
# Run from the repository's root after building (build/kiln). A measurement, not a test.
set -eu
KILN=${KILN:-./build/kiln}
FLAGS=${FLAGS:---cpu znver3}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
BENCH=${BENCH:-20}
LOCK=${LOCK:-/tmp/kiln-time.lock}
TIMER="flock $LOCK"
[ "${FIFO:-1}" = 0 ] || TIMER="$TIMER chrt -f 50"
SHAPES=${*:-"197x768x768 197x768x3072 197x3072x768 1024x1024x1024"}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/prod.kiln" <<'KILN'
model prod
weights "w.safetensors"
const K = 128, N = 128
input x: f32[M, K] where M <= 1024
output y: f32[M, N]
y = x @ w.w
KILN
for shape in $SHAPES; do
    M=${shape%%x*} rest=${shape#*x}
    K=${rest%x*} N=${rest#*x}
    /usr/bin/python3 - "$TMP" "$M" "$K" "$N" <<'PY'
import json, struct, sys
import numpy as np
d, M, K, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(K * 7919 + N)
w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype('<f4')
h = json.dumps({"w": {"dtype": "F32", "shape": [K, N], "data_offsets": [0, w.nbytes]}}).encode()
with open(f"{d}/w.safetensors", "wb") as f:
    f.write(struct.pack('<Q', len(h)) + h + w.tobytes())
np.save(f"{d}/x.npy", rng.standard_normal((M, K)).astype('<f4'))
PY
    # shellcheck disable=SC2086
    "$KILN" build "$TMP/prod.kiln" -D K=$K -D N=$N --weights "$TMP/w.safetensors" $FLAGS -o "$TMP/fp32" > /dev/null
    # shellcheck disable=SC2086
    "$KILN" build "$TMP/prod.kiln" -D K=$K -D N=$N --weights "$TMP/w.safetensors" --quant int8 $FLAGS -o "$TMP/avx2" > /dev/null
    # shellcheck disable=SC2086
    KILN_QGEMM_AVX2=off=1 "$KILN" build "$TMP/prod.kiln" -D K=$K -D N=$N --weights "$TMP/w.safetensors" --quant int8 $FLAGS \
        -o "$TMP/portable" > /dev/null
    for t in $THREADS; do
        : > "$TMP/t.txt"
        r=0
        while [ $r -lt "$ROUNDS" ]; do
            r=$((r + 1))
            for p in fp32 avx2 portable; do
                ms=$($TIMER "$TMP/$p" --input x="$TMP/x.npy" --threads "$t" --bench "$BENCH" |
                    sed -n 's/^bench: .* median \([0-9.]*\) ms$/\1/p')
                echo "$p $ms" >> "$TMP/t.txt"
            done
        done
        awk -v M="$M" -v K="$K" -v N="$N" -v t="$t" '
            { if (!($1 in b) || $2 < b[$1]) b[$1] = $2 }
            END { g = 2 * M * K * N / 1e6
                  printf "%d %d %d threads %d: fp32 %.3f ms %.0f GOP/s, int8 AVX2 %.3f ms %.0f GOP/s, int8 portable %.3f ms %.0f GOP/s\n",
                         M, K, N, t, b["fp32"], g / b["fp32"], b["avx2"], g / b["avx2"], b["portable"], g / b["portable"] }' "$TMP/t.txt"
    done
done
