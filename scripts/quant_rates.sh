#!/bin/sh
# The throughput of the generated matmul kernels under each choose-quant scheme, the figures behind
# choose-quant's time model (passes/choose_quant.c, est_ms): for each (K, N) and scheme one program
# `y = x @ w.w` (random weights, f32 [K, N]) built with `--quant SCHEME` (none for fp32), then timed
# at several row counts M (the program's --bench median at 1 thread, under `chrt -f 50` when FIFO=1),
# the schemes interleaved within each round and the lowest median of ROUNDS rounds kept. Prints one
# line per measurement: scheme K N M ms GOP/s weight-MB. FLAGS are given to every `kiln build` (a target
# without the dot-product instructions: FLAGS="--cpu znver3" (AVX2), "--cpu skylake-avx512" (AVX-512
# without VNNI and BF16): the figures behind the portable kernel's rates). LOCK=FILE takes that lock
# (flock) around each timed run, so that another agent's timing never overlaps.
#
#   [FIFO=1] [LOCK=FILE] [FLAGS=...] [BENCH=20] [ROUNDS=3] [MS="1 4 ..."] sh scripts/quant_rates.sh [KxN ...]
#
# Run from the repository's root after building (build/kiln). A measurement, not a test.
set -eu
KILN=${KILN:-./build/kiln}
BENCH=${BENCH:-20}
ROUNDS=${ROUNDS:-3}
MS=${MS:-"1 4 16 50 200 800"}
SHAPES=${*:-"128x128 128x512 512x128 768x768 768x3072"}
SCHEMES="fp32 bf16 int8 w8 w4"
TIMER=""
[ -z "${FIFO:-}" ] || TIMER="chrt -f 50"
[ -z "${LOCK:-}" ] || TIMER="flock $LOCK $TIMER"
FLAGS=${FLAGS:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/prod.kiln" <<'EOF'
model prod
weights "w.safetensors"
const K = 128, N = 128
input x: f32[M, K] where M <= 1024
output y: f32[M, N]
y = x @ w.w
EOF
for shape in $SHAPES; do
    K=${shape%x*} N=${shape#*x}
    /usr/bin/python3 - "$TMP" "$K" "$N" $MS <<'PY'
import json, struct, sys
import numpy as np
d, K, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(K * 7919 + N)
w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype('<f4')
h = json.dumps({"w": {"dtype": "F32", "shape": [K, N], "data_offsets": [0, w.nbytes]}}).encode()
with open(f"{d}/w_{K}_{N}.safetensors", "wb") as f:
    f.write(struct.pack('<Q', len(h)) + h + w.tobytes())
for m in sys.argv[4:]:
    np.save(f"{d}/x_{K}_{m}.npy", rng.standard_normal((int(m), K)).astype('<f4'))
PY
    for s in $SCHEMES; do
        q="--quant $s"
        [ $s = fp32 ] && q=""
        "$KILN" build "$TMP/prod.kiln" -D K=$K -D N=$N --weights "$TMP/w_${K}_${N}.safetensors" $q $FLAGS \
            -o "$TMP/p_${s}_${K}_${N}" > /dev/null
    done
    for M in $MS; do
        r=0
        while [ $r -lt "$ROUNDS" ]; do
            r=$((r + 1))
            for s in $SCHEMES; do
                ms=$($TIMER "$TMP/p_${s}_${K}_${N}" --input x="$TMP/x_${K}_${M}.npy" --threads 1 --bench "$BENCH" |
                    sed -n 's/^bench: .* median \([0-9.]*\) ms$/\1/p')
                echo "$s $K $N $M $ms" >> "$TMP/t.txt"
            done
        done
    done
done
awk '{ k = $1 " " $2 " " $3 " " $4; if (!(k in b) || $5 < b[k]) b[k] = $5; if (!(k in o)) o[k] = n++ }
     END { for (k in b) { split(k, f, " "); w = f[2] * f[3] * (f[1] == "fp32" ? 4 : f[1] == "bf16" ? 2 : f[1] == "w4" ? 0.5 + 2.0 / 32 : 1) / 1e6
                          printf "%d %s %.4f %.2f %.3f\n", o[k], k, b[k], 2 * f[2] * f[3] * f[4] / b[k] / 1e6, w } }' "$TMP/t.txt" |
    sort -n | cut -d' ' -f2-
