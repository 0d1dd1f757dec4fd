#!/bin/sh
# Installs what kiln needs to build (Debian packages, only those missing) and builds it in build/.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   KILN_BUILD_DIR    build directory (default: build)
#   KILN_CMAKE_ARGS   extra arguments for cmake's configure step
set -eu
cd "$(dirname "$0")/.."

PACKAGES="gcc cmake ninja-build flex bison libcjson-dev llvm-19-dev llvm-19-tools graphviz pkg-config dpkg-dev
          gnuplot-nox
          libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "kiln setup: installing$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

BUILD=${KILN_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" -G Ninja ${KILN_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD"
