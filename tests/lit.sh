#!/bin/sh
# Golden tests in the manner of LLVM's lit: every line `# RUN: command` of the test file runs with
#   %s          the test file
#   %kiln       the kiln binary
#   %FileCheck  LLVM's FileCheck
#   %llvm       the directory of LLVM's tools (FileCheck's), for %llvm/llvm-readelf
#   %t          a scratch directory of this test, removed afterwards
# and must succeed. CHECK lines in the file are read by FileCheck.
set -u
FILE=$1 KILN=$2 FILECHECK=$3
LLVMBIN=$(dirname "$FILECHECK")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
while IFS= read -r cmd; do
    n=$((n + 1))
    cmd=$(printf '%s' "$cmd" | sed -e "s|%kiln|$KILN|g" -e "s|%FileCheck|$FILECHECK|g" -e "s|%llvm|$LLVMBIN|g" \
        -e "s|%t|$TMP|g" -e "s|%s|$FILE|g")
    echo "RUN: $cmd"
    if ! sh -c "$cmd"; then
        echo "FAIL: $cmd"
        exit 1
    fi
done <<EOF2
$(sed -n 's/^.*# RUN: //p' "$FILE")
EOF2
if [ $n -eq 0 ]; then
    echo "FAIL: no RUN line in $FILE"
    exit 1
fi
