#!/bin/sh
# Runs every kiln benchmark side by side and rewrites docs/PERF.md:
#   sh bench/run.sh [--only gemm,models,compile,attention,decoders,decode,tokens] [--models vit-b16,...] [--threads 1,2]
#                   [--quick] [--fresh] [--attention-T 128,512,...] [--decoder-models llama-tiny,...]
# Installs only what is missing: Debian's libdnnl-dev, libopenblas-dev, time, python3-torch, nodejs/npm,
# git, npm's onnxruntime-node into bench/node_modules and node-llama-cpp into bench/llamacpp/node_modules
# (--ignore-scripts: the CPU libraries ship in the packages). Builds kiln into build-bench/. Generated
# files go to bench/out/. Not a test: no pass/fail.
set -eu
started=$(date +%s)
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=""
for p in libdnnl-dev libopenblas-dev time python3-torch python3-numpy python3-onnx; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v git >/dev/null 2>&1 || missing="$missing git"
if [ -n "$missing" ]; then
    echo "bench: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
if [ ! -f bench/node_modules/onnxruntime-node/package.json ]; then
    echo "bench: installing onnxruntime-node into bench/node_modules"
    (cd bench && npm install --ignore-scripts --no-audit --no-fund)
fi
# llama.cpp (the decoders section) only when that section runs: the package is large (its optional
# GPU builds come with it)
case "$*" in
*--only*) case "$*" in *decoders*) want_llama=1 ;; *) want_llama=0 ;; esac ;;
*) want_llama=1 ;;
esac
if [ "$want_llama" -eq 1 ] && [ ! -f bench/llamacpp/node_modules/node-llama-cpp/package.json ]; then
    echo "bench: installing node-llama-cpp into bench/llamacpp/node_modules"
    (cd bench/llamacpp && npm install --ignore-scripts --no-audit --no-fund) ||
        echo "bench: node-llama-cpp did not install; the decoders section will report llama.cpp as missing"
fi

echo "bench: building kiln in build-bench/"
KILN_BUILD_DIR=build-bench sh scripts/setup.sh

exec /usr/bin/python3 bench/harness.py --started "$started" "$@"
