#!/bin/sh
# The whole test suite: set up, build, and run every test with ctest; then the same suite again in a
# build with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
ctest --test-dir build --output-on-failure -j2
KILN_BUILD_DIR=build-asan KILN_CMAKE_ARGS="-DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug" sh scripts/setup.sh
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j2
