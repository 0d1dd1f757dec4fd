#!/bin/sh
# The kv-cache pass natively: GPT-2 (learned positions), the Llama-style model (rotary, grouped-query
# attention) and the trained charlm built with --kv-cache full as static libraries, driven by
# tests/models/native/use_kv.c through the runtime's entry API: every decode step's logits against a
# full recompute of the prefix (the prefill entry), 1e-5 relative to the largest logit, for prefill
# lengths 1..CTX (charlm: every fifth up to 96); decode before prefill and past the cache's budget
# must fail with their named codes (RT_ERR_NO_PREFILL, RT_ERR_BUDGET), as must a prompt longer than
# full:B's budget (library and program: exit status 1 and the sentence) and GPT-2's decode past its
# position table with a window (RT_ERR_POSITIONS); eight instances in eight threads generate the
# tokens one instance alone does. The
# interpreter side is tests/unit/test_kv_cache.c. Then a model the pass cannot take
# (ViT: no causal attention) must be refused with a message that says so.
set -eu
KILN=$1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CC=${CC:-cc}
SAN=$(nm "$(dirname "$KILN")/libkiln_rt.a" 2>/dev/null | grep -q __asan_init && echo "-fsanitize=address,undefined" || true)
check() { # check NAME NTOKENS VOCAB STEP KILN-ARGS...
    name=$1 n=$2 voc=$3 step=$4
    shift 4
    "$KILN" build "$@" --kv-cache full --emit lib -o "$OUT/lib$name.a"
    grep -q "int ${name}_decode(" "$OUT/$name.h"
    grep -q "void ${name}_reset(" "$OUT/$name.h"
    $CC -std=c11 -Wall -Werror -I. -DMODEL=kiln_model_$name tests/models/native/use_kv.c "$OUT/lib$name.a" \
        -lm -lpthread $SAN -o "$OUT/use_kv_$name"
    "$OUT/use_kv_$name" "$n" "$voc" "$step"
}
check gpt2 64 96 1 examples/gpt2/gpt2.kiln -D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 \
    --weights examples/gpt2/gpt2-tiny.safetensors
check llama 64 128 1 examples/llama/llama.kiln -D V=128 -D D=64 -D H=4 -D KVH=2 -D F=172 -D L=2 -D CTX=64 \
    --weights examples/llama/llama-tiny.safetensors
check charlm 96 65 5 examples/charlm/charlm.kiln

echo "== choose-quant under the cache: prefill and decode share one quantized copy of each weight"
# decode through the quantized weights against the quantized full recompute (the same integers on both
# sides, so 1e-5 as fp32); and the weights blob: the cache adds to a quantized model exactly what it adds
# to the fp32 one (its own constants), so no weight is stored twice (it was: 343 MB for GPT-2 124M w4)
LLAMA="examples/llama/llama.kiln -D V=128 -D D=64 -D H=4 -D KVH=2 -D F=172 -D L=2 -D CTX=64
    --weights examples/llama/llama-tiny.safetensors"
blob() { # blob NAME KILN-ARGS...: the bytes of the weights blob
    name=$1
    shift
    "$KILN" build "$@" --emit lib --weights-mode external -o "$OUT/blob_$name.a" 2> /dev/null
    wc -c < "$OUT/blob_$name.a.weights"
}
# shellcheck disable=SC2086
fp=$(blob fp $LLAMA) fpkv=$(blob fpkv $LLAMA --kv-cache full)
for q in w4 w8 int8; do
    # shellcheck disable=SC2086
    check llama 64 128 1 $LLAMA --quant $q
    # shellcheck disable=SC2086
    qb=$(blob $q $LLAMA --quant $q) qkv=$(blob ${q}kv $LLAMA --quant $q --kv-cache full)
    echo "$q: weights $qb bytes, with the cache $qkv (fp32: $fp, with the cache $fpkv)"
    [ $((qkv - qb)) -eq $((fpkv - fp)) ]
done
# bf16 rounds the activations: the decode and the recompute paths sum in other orders, so an element
# may round to the neighbouring bf16 value (2^-8 = 3.9e-3 relative); measured on llama-tiny up to
# 2.8e-3 (AMX) and 1.9e-4 (AVX-512) of the largest logit. 2e-2 still catches a wrong cache (O(1)).
# shellcheck disable=SC2086
USE_KV_TOL=2e-2 check llama 64 128 1 $LLAMA --quant bf16

echo "== bad use: named errors (RT_ERR_*, rt_error_message) through the library and the program"
GPT2="examples/gpt2/gpt2.kiln -D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 --weights examples/gpt2/gpt2-tiny.safetensors"
bad() { # bad NAME POLICY B
    mkdir "$OUT/$1"
    # shellcheck disable=SC2086
    "$KILN" build $GPT2 --kv-cache "$2" --emit lib -o "$OUT/$1/libgpt2.a"
    grep -q "const char \*rt_error_message(int code);" "$OUT/$1/gpt2.h"
    $CC -std=c11 -Wall -Werror -I. -DMODEL=kiln_model_gpt2 tests/models/native/use_kv.c "$OUT/$1/libgpt2.a" \
        -lm -lpthread $SAN -o "$OUT/use_kv_$1"
    "$OUT/use_kv_$1" --bad "$3" 96 > "$OUT/bad_$1.txt"
    cat "$OUT/bad_$1.txt"
}
bad gpt2_full8 full:8 8
grep -q "decode before any prefill: code 0x40000001: decode before prefill: the KV cache is empty" "$OUT/bad_gpt2_full8.txt"
grep -q "a prompt longer than the budget: code 0x40000002: the KV cache's budget is reached" "$OUT/bad_gpt2_full8.txt"
bad gpt2_window8 window:8 0
grep -q "decode past the position table: code 0x40000003: the position is past the model's learned position table" \
    "$OUT/bad_gpt2_window8.txt"
# the program: a prompt of 16 tokens for a cache of 8 (its --input mode runs prefill)
# shellcheck disable=SC2086
"$KILN" build $GPT2 --kv-cache full:8 -o "$OUT/gpt2_full8_prog"
if "$OUT/gpt2_full8_prog" --input tokens=tests/models/gpt2/tokens_16.npy > /dev/null 2> "$OUT/prog.err"; then
    echo "FAIL: a prompt longer than the budget of full:8 ran"
    exit 1
else
    status=$?
fi
cat "$OUT/prog.err"
[ "$status" -eq 1 ]
grep -q "error: model 'gpt2' stopped: the KV cache's budget is reached" "$OUT/prog.err"

echo "== text generation through prefill and decode (runtime/text.c)"
"$KILN" build examples/charlm/charlm.kiln --kv-cache full -o "$OUT/charlm_kv"
"$OUT/charlm_kv" --prompt "ROMEO:" -n 80 --temperature 0 > "$OUT/greedy.txt" 2> "$OUT/greedy.err"
cmp "$OUT/greedy.txt" examples/charlm/ref/greedy.txt # PyTorch's greedy text, as tests/models/charlm.sh
grep -q "80 tokens in .* tokens/s, prefill and decode with a KV cache" "$OUT/greedy.err"
# past the cache's 256 slots: the last 128 characters are prefilled again and decoding goes on
"$OUT/charlm_kv" --prompt "ROMEO:" -n 600 --seed 3 > "$OUT/long.txt" 2> "$OUT/long.err"
grep -q "600 tokens in" "$OUT/long.err"
test "$(wc -c < "$OUT/long.txt")" -ge 606

# --eval --stream: one window's worth (CTX + 1 = 257 characters of the held-out text) scored through
# prefill and decode gives the figure of the ordinary windowed --eval (full recompute)
DATA=../shared/data/tinyshakespeare.txt
if [ -f "$DATA" ]; then
    total=$(wc -c < "$DATA")
    tail -c +$((total * 9 / 10 + 1)) "$DATA" | head -c 257 > "$OUT/t257.txt"
    a=$("$OUT/charlm_kv" --eval "$OUT/t257.txt" | sed -n 's/^\([0-9.]*\) nats.*/\1/p')
    b=$("$OUT/charlm_kv" --eval "$OUT/t257.txt" --stream 2>/dev/null | sed -n 's/^\([0-9.]*\) nats.*/\1/p')
    echo "eval $a nats/char, streamed $b"
    [ -n "$a" ] && [ "$a" = "$b" ]
fi

if "$KILN" build examples/vit/vit.kiln -D D=64 -D H=4 -D L=2 -D P=8 -D IMG=32 -D CLASSES=10 \
    --weights examples/vit/vit-small-random.safetensors --kv-cache full -o "$OUT/vit" 2>"$OUT/err"; then
    echo "FAIL: --kv-cache accepted ViT"
    exit 1
fi
grep -q "kv-cache: attention %[0-9]* stops the pass: it is not causal" "$OUT/err" || { cat "$OUT/err"; exit 1; }
echo "all kv-cache checks passed"
