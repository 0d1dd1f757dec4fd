#!/bin/sh
# Static against dynamic W8A8: the time of `y = x @ w.w` (random weights, f32 [K, N], as
# scripts/quant_rates.sh builds it) under `--quant int8` (each row's scale found at run time) and
# `--quant int8s` (one scale from calibration: --calibrate on 16 random rows, another 16 held out),
# at several row counts M: the program's --bench median at THREADS threads, under `chrt -f 50` when
# FIFO=1 and inside `flock LOCK` when LOCK=FILE (one lock per timed run, so another agent's timing
# never overlaps). The two schemes alternate within each round; every round's medians are printed
# (the spread is the machine's noise), then the lowest per scheme. Prints lines
#   round K N M int8-ms int8s-ms
#   best K N M int8-ms int8s-ms int8/int8s
#
#   [FIFO=1] [LOCK=FILE] [THREADS=1] [BENCH=20] [ROUNDS=3] [MS="1 16 197"] sh scripts/int8s_rates.sh [KxN ...]
#
# Run from the repository's root after building (build/kiln). A measurement, not a test.
set -eu
KILN=${KILN:-./build/kiln}
BENCH=${BENCH:-20}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
MS=${MS:-"1 16 197"}
SHAPES=${*:-"768x768 768x3072 3072x768"}
TIMER=""
[ -z "${FIFO:-}" ] || TIMER="chrt -f 50"
[ -z "${LOCK:-}" ] || TIMER="flock $LOCK $TIMER"
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
for name in ("cal", "held"):
    np.save(f"{d}/{name}_{K}.npy", rng.standard_normal((16, K)).astype('<f4'))
for m in sys.argv[4:]:
    np.save(f"{d}/x_{K}_{m}.npy", rng.standard_normal((int(m), K)).astype('<f4'))
PY
    W="-D K=$K -D N=$N --weights $TMP/w_${K}_${N}.safetensors"
    "$KILN" build "$TMP/prod.kiln" $W --quant int8 -o "$TMP/p_int8" > /dev/null
    "$KILN" build "$TMP/prod.kiln" $W --quant int8s --calibrate "$TMP/cal_$K.npy" --quant-heldout "$TMP/held_$K.npy" \
        -o "$TMP/p_int8s" > /dev/null 2>&1
    for M in $MS; do
        r=0
        while [ $r -lt "$ROUNDS" ]; do
            r=$((r + 1))
            line="round $K $N $M"
            for s in int8 int8s; do
                ms=$($TIMER "$TMP/p_$s" --input x="$TMP/x_${K}_${M}.npy" --threads "$THREADS" --bench "$BENCH" |
                    sed -n 's/^bench: .* median \([0-9.]*\) ms$/\1/p')
                line="$line $ms"
            done
            echo "$line" | tee -a "$TMP/t.txt"
        done
    done
done
awk '{ k = $2 " " $3 " " $4; if (!(k in a) || $5 < a[k]) a[k] = $5; if (!(k in b) || $6 < b[k]) b[k] = $6; if (!(k in o)) o[k] = n++ }
     END { for (k in o) printf "%d best %s %s %s %.3f\n", o[k], k, a[k], b[k], a[k] / b[k] }' "$TMP/t.txt" | sort -n | cut -d' ' -f2-
