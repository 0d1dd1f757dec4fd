#!/bin/sh
# The eviction policies natively, against the interpreter (the oracle; tests/unit/test_kv_cache.c
# checks it against an independent step-by-step reference): GPT-2 and the Llama-style model (rotary,
# grouped-query attention) built with --kv-cache tova:B, h2o:heavy=H,recent=R and cascade:B,n=N,sinks=S
# (and, on the Llama-style model, sinks, tova, h2o and cascade with positions=cache)
# as static libraries and driven by
# tests/models/native/use_kv.c --dump, which writes each decode step's logits and the positions each
# layer's cache holds; `test_kv_cache --dump` writes the same from the interpreter. The positions
# must be the same, and the logits within 1e-5 of the row's largest |logit|. Then the program of
# charlm with tova:64 generates past its budget (a prompt longer than it is prefilled in part).
set -eu
KILN=$1
DUMP=$(dirname "$KILN")/tests/test_kv_cache
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CC=${CC:-cc}
SAN=$(nm "$(dirname "$KILN")/libkiln_rt.a" 2>/dev/null | grep -q __asan_init && echo "-fsanitize=address,undefined" || true)
. "$(dirname "$0")/../tools/kv_same.sh" # same NATIVE INTERP
check() { # check NAME POLICY NTOKENS VOCAB PROMPT KILN-ARGS...
    name=$1 policy=$2 n=$3 voc=$4 p=$5
    shift 5
    "$KILN" build "$@" --kv-cache "$policy" --emit lib -o "$OUT/lib$name.a"
    $CC -std=c11 -Wall -Werror -I. -DMODEL=kiln_model_$name tests/models/native/use_kv.c "$OUT/lib$name.a" \
        -lm -lpthread $SAN -o "$OUT/dump_$name"
    "$OUT/dump_$name" --dump "$n" "$voc" "$p" > "$OUT/native.txt"
    "$DUMP" --dump "$name" "$policy" "$n" "$p" > "$OUT/interp.txt"
    case $policy in window*|sinks*) ;; *) grep -q "^pos" "$OUT/interp.txt" ;; esac
    same "$OUT/native.txt" "$OUT/interp.txt"
    echo "$name $policy: $(grep -c '^logits' "$OUT/native.txt") decode steps agree with the interpreter"
}
GPT2="examples/gpt2/gpt2.kiln -D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 --weights examples/gpt2/gpt2-tiny.safetensors"
LLAMA="examples/llama/llama.kiln -D V=128 -D D=64 -D H=4 -D KVH=2 -D F=172 -D L=2 -D CTX=64
       --weights examples/llama/llama-tiny.safetensors"
# shellcheck disable=SC2086
check gpt2 tova:8 48 96 3 $GPT2
# shellcheck disable=SC2086
check llama tova:6 48 128 6 $LLAMA
# shellcheck disable=SC2086
check gpt2 h2o:heavy=3,recent=4 48 96 5 $GPT2
# shellcheck disable=SC2086
check llama h2o:heavy=2,recent=3 48 128 2 $LLAMA
# shellcheck disable=SC2086
check gpt2 cascade:14,n=3,sinks=2 48 96 7 $GPT2
# shellcheck disable=SC2086
check llama cascade:12,n=4 48 128 12 $LLAMA
# positions=cache: keys cached before the rotary embedding, rotated by their rank in the cache
for policy in sinks:2,window:5,positions=cache tova:6,positions=cache h2o:heavy=2,recent=3,positions=cache \
              cascade:14,n=4,sinks=2,positions=cache; do
    # shellcheck disable=SC2086
    check llama "$policy" 40 128 3 $LLAMA
done

echo "== generation past the budget"
"$KILN" build examples/charlm/charlm.kiln --kv-cache tova:64 -o "$OUT/charlm_tova"
"$OUT/charlm_tova" --prompt "$(printf 'ROMEO:%.0s' $(seq 20))" -n 200 --seed 3 > "$OUT/gen.txt" 2> "$OUT/gen.err"
grep -q "200 tokens in" "$OUT/gen.err"
echo "all kv-cache policy checks passed"
