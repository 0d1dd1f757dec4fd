#!/bin/sh
# The int8 KV cache (--kv-cache POLICY,kv=int8: caches in i8 with an f32 scale per row, decode's
# attention reading them through codegen/qattention.c) natively:
#   - against the interpreter (the oracle): GPT-2 (learned positions) and the Llama-style model
#     (rotary, grouped-query attention) built as static libraries with full, window and sinks, and
#     the Llama-style one with positions=cache (decode dequantizes its keys to rotate them), driven
#     by tests/models/native/use_kv.c --dump against `test_kv_cache --dump`: each decode step's logits
#     within 1e-5 of the row's largest |logit| (measured: at most 7e-7; both sides quantize the same
#     f32 values with the same rounding, so the integers agree unless a value's f32 rounding differs
#     at a tie of x / scale: none here);
#   - against the f32 cache: use_kv's every decode step after every prefill length (charlm: every
#     fifth) against a full f32 recompute of the prefix, within 1e-2 (GPT-2 tiny) or 5e-2 (Llama tiny,
#     charlm) of the largest logit (measured: 2.3e-3, 2.5e-2 and 2.6e-2: per-token scales round a
#     key's small channels coarsely where another channel is large; a wrong cache, or one that lost
#     its scales, is O(1)), and the states really are i8 (the IR's state lines);
#   - bad spellings and a policy int8 does not support are refused with the sentence that says so.
set -eu
KILN=$1
DUMP=$(dirname "$KILN")/tests/test_kv_cache
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CC=${CC:-cc}
SAN=$(nm "$(dirname "$KILN")/libkiln_rt.a" 2>/dev/null | grep -q __asan_init && echo "-fsanitize=address,undefined" || true)
GPT2="examples/gpt2/gpt2.kiln -D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 --weights examples/gpt2/gpt2-tiny.safetensors"
LLAMA="examples/llama/llama.kiln -D V=128 -D D=64 -D H=4 -D KVH=2 -D F=172 -D L=2 -D CTX=64
       --weights examples/llama/llama-tiny.safetensors"
. "$(dirname "$0")/../tools/kv_same.sh" # same NATIVE INTERP
lib() { # lib NAME POLICY KILN-ARGS...: the library and use_kv linked with it, as $OUT/use_NAME
    name=$1 policy=$2
    shift 2
    "$KILN" build "$@" --kv-cache "$policy" --emit lib -o "$OUT/lib$name.a"
    $CC -std=c11 -Wall -Werror -I. -DMODEL=kiln_model_$name tests/models/native/use_kv.c "$OUT/lib$name.a" \
        -lm -lpthread $SAN -o "$OUT/use_$name"
}
interp() { # interp NAME POLICY NTOKENS VOCAB PROMPT KILN-ARGS...
    name=$1 policy=$2 n=$3 voc=$4 p=$5
    shift 5
    lib "$name" "$policy" "$@"
    "$OUT/use_$name" --dump "$n" "$voc" "$p" > "$OUT/native.txt"
    "$DUMP" --dump "$name" "$policy" "$n" "$p" > "$OUT/interp.txt"
    same "$OUT/native.txt" "$OUT/interp.txt"
    echo "$name $policy: $(grep -c '^logits' "$OUT/native.txt") decode steps agree with the interpreter"
}
echo "== compiled against the interpreter"
# shellcheck disable=SC2086
interp gpt2 full,kv=int8 48 96 5 $GPT2
# shellcheck disable=SC2086
interp gpt2 window:8,kv=int8 48 96 3 $GPT2
# shellcheck disable=SC2086
interp llama full,kv=int8 48 128 5 $LLAMA
# shellcheck disable=SC2086
interp llama sinks:2,window:5,kv=int8 48 128 6 $LLAMA
# shellcheck disable=SC2086
interp llama window:8,positions=cache,kv=int8 40 128 3 $LLAMA

echo "== against the f32 cache (a full f32 recompute of every prefix)"
f32() { # f32 NAME TOL NTOKENS VOCAB STEP KILN-ARGS...
    name=$1 tol=$2 n=$3 voc=$4 step=$5
    shift 5
    "$KILN" build "$@" --kv-cache full,kv=int8 --emit ir -o "$OUT/$name.ir"
    grep -q '^state "cache.0.k" : i8\[' "$OUT/$name.ir"
    grep -q '^state "cache.0.ks" : f32\[.*, 1\]$' "$OUT/$name.ir"
    lib "$name" full,kv=int8 "$@"
    USE_KV_TOL=$tol "$OUT/use_$name" "$n" "$voc" "$step"
}
# shellcheck disable=SC2086
f32 gpt2 1e-2 64 96 1 $GPT2
# shellcheck disable=SC2086
f32 llama 5e-2 64 128 1 $LLAMA
f32 charlm 5e-2 96 65 5 examples/charlm/charlm.kiln

echo "== bad spellings"
refused() { # refused POLICY TEXT
    if "$KILN" build examples/charlm/charlm.kiln --kv-cache "$1" --emit ir -o "$OUT/x.ir" 2> "$OUT/err.txt"; then
        echo "--kv-cache $1 was accepted"
        exit 1
    fi
    grep -q "$2" "$OUT/err.txt" || { cat "$OUT/err.txt"; exit 1; }
}
refused full,kv=int4 "cannot read the policy 'full,kv=int4' .*,kv=int8 or ,kv=f32"
refused full,kv=int8,kv=f32 "cannot read the policy 'full,kv=int8,kv=f32'"
refused window:8,kv= "cannot read the policy 'window:8,kv='"
refused full,kv=int8,positions=cache,positions=cache "cannot read the policy"
refused tova:8,kv=int8 "kv=int8 works with the policies full, window and sinks, not with 'tova:8,kv=int8'"
refused h2o:heavy=2,recent=2,kv=int8 "kv=int8 works with the policies full, window and sinks"
refused cascade:12,n=2,kv=int8 "kv=int8 works with the policies full, window and sinks"
echo "all int8 kv-cache checks passed"
