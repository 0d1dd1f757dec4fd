#!/bin/sh
# A model with state and two entries (tests/unit/state_ring.kir) compiled into a static library and
# used through its generated header by tests/models/native/use_state.c: over several calls, in two
# instances at once (also in two threads), through the raw entries on a caller-owned state, and an
# append past the buffer's end that must fail. The interpreter side of the same model is
# tests/unit/test_state.c.
set -eu
KILN=$1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CC=${CC:-cc}
SAN=$(nm "$(dirname "$KILN")/libkiln_rt.a" 2>/dev/null | grep -q __asan_init && echo "-fsanitize=address,undefined" || true)
"$KILN" build tests/unit/state_ring.kir --emit lib -o "$OUT/libring.a"
grep -q "RING_STATE_BYTES" "$OUT/ring.h"
$CC -std=c11 -Wall -Werror -I"$OUT" -I. tests/models/native/use_state.c "$OUT/libring.a" -lm -lpthread $SAN -o "$OUT/use_state"
"$OUT/use_state"
