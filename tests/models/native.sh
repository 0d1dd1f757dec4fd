#!/bin/sh
# Native builds of the GPT-2 and ViT examples against the interpreter's outputs (tolerance 1e-5
# relative to the largest value): executables with embedded and with external weights, a static
# library used from a C program (which also runs two instances in two threads at once), and a shared
# library loaded with dlopen. Then malformed inputs to a compiled program: each must fail with a
# clear message and a non-zero status.
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CC=${CC:-cc}
# programs linking a sanitized runtime (the ASan build of the suite) need the sanitizers too
SAN=$(nm "$(dirname "$KILN")/libkiln_rt.a" 2>/dev/null | grep -q __asan_init && echo "-fsanitize=address,undefined" || true)
G="-D V=96 -D D=64 -D H=4 -D L=2 -D CTX=64 --weights examples/gpt2/gpt2-tiny.safetensors"
V="-D D=64 -D H=4 -D L=2 -D P=8 -D IMG=32 -D CLASSES=10 --weights examples/vit/vit-small-random.safetensors"

# the oracle
"$KILN" run examples/gpt2/gpt2.kiln $G --interp --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/g_interp.npy"
"$KILN" run examples/gpt2/gpt2.kiln $G --interp --input tokens=tests/models/gpt2/tokens_64.npy --output logits="$OUT/g64_interp.npy"
"$KILN" run examples/vit/vit.kiln $V --interp --input image=tests/models/vit/image.npy --output logits="$OUT/v_interp.npy"

echo "== executables"
"$KILN" build examples/gpt2/gpt2.kiln $G -o "$OUT/gpt2"
"$OUT/gpt2" --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/g_exe.npy"
"$NPYCMP" --maxrel 1e-5 "$OUT/g_exe.npy" "$OUT/g_interp.npy"
"$OUT/gpt2" --threads 2 --input tokens=tests/models/gpt2/tokens_64.npy --output logits="$OUT/g64_exe.npy"
"$NPYCMP" --maxrel 1e-5 "$OUT/g64_exe.npy" "$OUT/g64_interp.npy"
"$KILN" build examples/gpt2/gpt2.kiln $G --weights-mode external -o "$OUT/gpt2x"
test -f "$OUT/gpt2x.weights"
"$OUT/gpt2x" --weights "$OUT/gpt2x.weights" --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/g_ext.npy"
"$NPYCMP" --maxrel 1e-5 "$OUT/g_ext.npy" "$OUT/g_interp.npy"
"$KILN" build examples/vit/vit.kiln $V -o "$OUT/vit"
"$OUT/vit" --input image=tests/models/vit/image.npy --output logits="$OUT/v_exe.npy"
"$NPYCMP" --maxrel 1e-5 "$OUT/v_exe.npy" "$OUT/v_interp.npy"
"$OUT/vit" --bench 3 --input image=tests/models/vit/image.npy | grep -q "^bench: 3 runs, min .* ms, median .* ms$"

echo "== static library, two instances in two threads"
"$KILN" build examples/gpt2/gpt2.kiln $G --emit lib -o "$OUT/libgpt2.a"
test -f "$OUT/gpt2.h"
$CC -std=c11 -Wall -Werror -I"$OUT" -I. tests/models/native/use_static.c "$OUT/libgpt2.a" -lm -lpthread $SAN -o "$OUT/use_static"
"$OUT/use_static" tests/models/gpt2/tokens_16.npy "$OUT/g_lib.npy"
"$NPYCMP" --maxrel 1e-5 "$OUT/g_lib.npy" "$OUT/g_interp.npy"

echo "== shared library through dlopen"
"$KILN" build examples/vit/vit.kiln $V --emit shared -o "$OUT/libvit.so"
$CC -std=gnu11 -Wall -Werror -I. tests/models/native/use_shared.c -ldl $SAN -o "$OUT/use_shared"
"$OUT/use_shared" "$OUT/libvit.so" kiln_model_vit tests/models/vit/image.npy "$OUT/v_so.npy"
"$NPYCMP" --maxrel 1e-5 "$OUT/v_so.npy" "$OUT/v_interp.npy"

echo "== malformed inputs to a compiled program"
expect_fail() { # expect_fail TEXT COMMAND...: COMMAND fails and its stderr contains TEXT
    text=$1
    shift
    if "$@" >"$OUT/stdout" 2>"$OUT/stderr"; then
        echo "FAIL: succeeded: $*"
        exit 1
    fi
    if ! grep -qF -- "$text" "$OUT/stderr"; then
        echo "FAIL: '$*' did not say '$text'; it said:"
        cat "$OUT/stderr"
        exit 1
    fi
    echo "ok (fails as it should): $(head -1 "$OUT/stderr")"
}
"$KILN" run examples/vit/vit.kiln $V --interp --input image=tests/models/vit/image.npy --output logits="$OUT/f32_10.npy"
expect_fail "tokens" "$OUT/gpt2"
expect_fail "tokens" "$OUT/gpt2" --input tokens="$OUT/f32_10.npy"
expect_fail "tokens" "$OUT/gpt2" --input tokens=tests/models/gpt2/logits_1.npy
expect_fail "no-such.npy" "$OUT/gpt2" --input tokens="$OUT/no-such.npy"
expect_fail "image" "$OUT/vit" --input image=tests/models/gpt2/logits_16.npy
expect_fail "nonsense" "$OUT/gpt2" --input nonsense=tests/models/gpt2/tokens_16.npy
head -c 100 "$OUT/gpt2x.weights" > "$OUT/truncated.weights"
expect_fail "truncated.weights" "$OUT/gpt2x" --weights "$OUT/truncated.weights" --input tokens=tests/models/gpt2/tokens_16.npy
# without --weights the program finds gpt2x.weights beside itself; moved away, it asks for one
"$OUT/gpt2x" --input tokens=tests/models/gpt2/tokens_16.npy --output logits="$OUT/g_beside.npy"
cmp "$OUT/g_ext.npy" "$OUT/g_beside.npy"
echo "ok: $OUT/gpt2x found gpt2x.weights beside itself"
mv "$OUT/gpt2x.weights" "$OUT/gpt2x.moved"
expect_fail "--weights" "$OUT/gpt2x" --input tokens=tests/models/gpt2/tokens_16.npy
mv "$OUT/gpt2x.moved" "$OUT/gpt2x.weights"
expect_fail "out of range" "$OUT/gpt2" --input tokens=tests/models/native/bad_tokens.npy
echo "all native checks passed"
