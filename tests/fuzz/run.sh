#!/bin/sh
# Builds one fuzz target with clang-19, libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer
# (in build-fuzz/) and runs it for SECONDS at the lowest priority (KILN_FUZZ_NICE=N: another niceness), on one core.
#   sh tests/fuzz/run.sh TARGET SECONDS [libFuzzer options...]
# TARGET is model, ir, safetensors, npy, program or onnx (see tests/fuzz/fuzz_TARGET.c). The working corpus
# (build-fuzz/corpus/TARGET) starts from the committed one (tests/fuzz/TARGET/) and the repository's
# seed files; crashing inputs go to build-fuzz/crashes/TARGET/. The inputs are written to files in
# TMPDIR, /dev/shm when it is not set. Commit each crash, once fixed, into
# tests/fuzz/TARGET/: ctest replays that directory. The last lines printed are libFuzzer's figures
# ("Done N runs in S second(s)"). Needs clang-19 and libclang-rt-19-dev (apt-get install).
set -eu
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: sh tests/fuzz/run.sh TARGET SECONDS [libFuzzer options...]" >&2; exit 2; }
T=$1 SECS=$2
shift 2
case $T in model|ir|safetensors|npy|program|onnx) ;; *) echo "run.sh: unknown target '$T'" >&2; exit 2 ;; esac
command -v clang-19 >/dev/null || { echo "run.sh: needs clang-19: apt-get install clang-19 libclang-rt-19-dev" >&2; exit 1; }

B=${KILN_FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$B/build.ninja" ]; then
    cmake -S . -B "$B" -G Ninja -DCMAKE_C_COMPILER=clang-19 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DKILN_SANITIZE=ON -DKILN_FUZZ=ON -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
fi
nice -n 19 cmake --build "$B" --target "fuzz_$T"

# seeds: the same files ctest replays (tests/fuzz/CMakeLists.txt)
case $T in
model)       SEEDS="examples/*/*.kiln tests/lit/*.kiln tests/lit/*/*.kiln tests/diag/*.kiln tests/fuzz/program.kiln"
             DICT=tests/fuzz/model.dict MAXLEN=16384 ;;
ir)          SEEDS="tests/lit/*.kir tests/lit/*/*.kir" DICT=tests/fuzz/ir.dict MAXLEN=16384 ;;
safetensors) SEEDS="examples/gpt2/gpt2-tiny.safetensors examples/llama/llama-tiny.safetensors" DICT= MAXLEN=4096 ;;
npy)         SEEDS="tests/ops/ref/*.npy" DICT= MAXLEN=4096 ;;
onnx)        SEEDS="tests/onnx/*/*.onnx $(ls -d /usr/share/libonnx-testdata/data/node/*/model.onnx 2>/dev/null | head -300)"
             DICT= MAXLEN=8192 ;;
program)     SEEDS="" DICT= MAXLEN=4096 QUIET=-close_fd_mask=3 ;; # rt_main prints; crash reports still show
esac
C=$B/corpus/$T
# absolute: the program target runs rt_main in its scratch directory, where a relative prefix put a
# timeout's input (and lost it)
case $B in /*) ART=$B/crashes/$T/ ;; *) ART=$(pwd)/$B/crashes/$T/ ;; esac
mkdir -p "$C" "$B/crashes/$T" "$B/seeds/$T"
# the targets write each input to a file in TMPDIR for the readers to open: in memory (/dev/shm) rather
# than on a disk-backed /tmp, npy ran at over 20,000 executions a second instead of 3,300 (AMX Xeon)
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
for f in $SEEDS; do [ -f "$f" ] && cp "$f" "$B/seeds/$T/$(echo "$f" | tr / _)"; done # node tests are all model.onnx
# shellcheck disable=SC2086
exec nice -n "${KILN_FUZZ_NICE:-19}" "$B/tests/fuzz/fuzz_$T" "$C" "tests/fuzz/$T" "$B/seeds/$T" \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=$MAXLEN \
    -artifact_prefix="$ART" -print_final_stats=1 ${DICT:+-dict=$DICT} ${QUIET:-} "$@"
