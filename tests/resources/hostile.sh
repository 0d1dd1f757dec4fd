#!/bin/sh
# The compiler on hostile model files (issue 16): each must end with a clear error (or, for the long
# but legal chain, compile) instead of hanging, crashing or exhausting memory. A hang fails the test
# through `timeout` (120 s, generous for the ASan build; each case takes about a second).
#   sh tests/resources/hostile.sh KILN
set -u
KILN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
rep() { awk -v s="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'; }
head4() { printf 'model hostile\ninput a: f32[4]\noutput b: f32[4]\n'; }

# CASE NAME STATUS TEXT: kiln check on $T/NAME.kiln exits with STATUS and its stderr contains TEXT
check() {
    timeout 120 "$KILN" check "$T/$1.kiln" >/dev/null 2>"$T/$1.err"
    st=$?
    if [ $st -ne "$2" ] || { [ -n "$3" ] && ! grep -qF -- "$3" "$T/$1.err"; }; then
        echo "FAIL $1: exit $st (want $2), stderr:"; head -c 600 "$T/$1.err"; echo
        fail=1
    else
        echo "ok   $1: $(head -1 "$T/$1.err" | cut -c1-160)"
    fi
}

{ head4; echo 'b = a'; echo 'for i in 0..1000000000 { b = b + 1.0 }'; } > "$T/unroll_1e9.kiln"
check unroll_1e9 1 "loop of 1000000000 iterations is too long to unroll"

{ head4; echo 'b = a'; echo 'for i in 0..100000 { for j in 0..100000 { b = b + 1.0 } }'; } > "$T/unroll_nested_1e10.kiln"
check unroll_nested_1e10 1 "the model is too large: unrolling this loop makes more than 250000 nodes"

printf 'model hostile\ninput a: f32[4611686018427387904]\noutput b: f32[4611686018427387904]\nb = a + 1.0\n' > "$T/shape_2e62.kiln"
check shape_2e62 1 "2:7: error: the tensor f32[4611686018427387904] has more than 2^40 elements"

printf 'model hostile\ninput a: f32[T, 1048576, 1048576, 1048576] where T <= 1000000\noutput b: f32[T, 1048576, 1048576, 1048576]\nb = a * 2.0\n' > "$T/shape_overflow.kiln"
check shape_overflow 1 "has more than 2^40 elements"

printf 'model hostile\ninput a: f32[1048576, 1048576]\noutput b: f32[1048576, 1048576, 1048576]\nb = a.expand(1048576, 1048576, 1048576)\n' > "$T/expand_huge.kiln"
check expand_huge 1 "has more than 2^40 elements"

{ head4; printf 'b = '; rep '(' 100000; printf 'a'; rep ')' 100000; echo; } > "$T/brackets_1e5.kiln"
check brackets_1e5 1 "expression nested too deeply"

{ head4; printf 'b = '; rep 'exp(' 50000; printf 'a'; rep ')' 50000; echo; } > "$T/calls_5e4.kiln"
check calls_5e4 1 "expression nested too deeply"

{ head4; printf 'b = a'; rep ' + a' 200000; echo; } > "$T/sum_2e5_terms.kiln"
check sum_2e5_terms 1 "expression nested more than 2000 deep"

# legal, long: 100,000 statements, and a loop of 50,000 calls (200,000 nodes), through every pass
{ head4; echo 'b = a'; rep 'b = b * 0.5 + a
' 100000; } > "$T/statements_1e5.kiln"
check statements_1e5 0 ""
{ head4; echo 'fn f(x) { return x * 0.5 + 1.0 }'; echo 'b = a'; echo 'for i in 0..50000 { b = f(b) }'; } > "$T/chain_5e4_calls.kiln"
check chain_5e4_calls 0 ""

# a weights file whose header declares one 100 GB tensor (the file itself is small)
json='{"big":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}'
n=${#json}
le=""
for k in 0 1 2 3 4 5 6 7; do le="$le\\$(printf %03o $(( (n >> (8 * k)) & 255 )))"; done
# shellcheck disable=SC2059
{ printf "$le"; printf '%s' "$json"; rep 'x' 64; } > "$T/w100g.safetensors"
printf 'model hostile\nweights "w100g.safetensors"\ninput a: f32[4]\noutput b: f32[4]\nb = a + w.big[0:4]\n' > "$T/weights_100g.kiln"
check weights_100g 1 "tensor 'big': data_offsets [0, 100000000000] go beyond the data section"
# ... and a header length of 100 GB
{ printf '\000\350\166\110\027\000\000\000'; printf '%s' "$json"; } > "$T/hlen100g.safetensors"
printf 'model hostile\nweights "hlen100g.safetensors"\ninput a: f32[4]\noutput b: f32[4]\nb = a + w.big[0:4]\n' > "$T/header_100g.kiln"
check header_100g 1 "header length 100000000000 goes beyond the end of the file"
# files that are not text files: a directory, a NUL byte; and IR text from a FIFO (no size to trust)
mkdir "$T/dir.kiln"
check dir 1 "cannot read model file '$T/dir.kiln': Is a directory"
printf 'model a\000\n' > "$T/nul.kiln"
check nul 1 "model file '$T/nul.kiln' contains a NUL byte"
mkfifo "$T/fifo.kir"
printf 'model m\n%%0 = input "x" : f32[4]\n%%1 = exp(%%0) : f32[4]\noutput y = %%1\n' > "$T/fifo.kir" &
if timeout 120 "$KILN" check "$T/fifo.kir" > "$T/fifo.out" 2>&1 && grep -q "IR: 2 nodes" "$T/fifo.out"; then
    echo "ok   fifo.kir: read to its end"
else
    echo "FAIL fifo.kir:"; head -c 600 "$T/fifo.out"; echo
    fail=1
fi
wait
exit $fail
