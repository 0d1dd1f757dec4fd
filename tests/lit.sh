#!/bin/sh
# Golden tests in the manner of LLVM's lit: every line `# RUN: command` of the test file runs with
#   %s          the test file
#   %kiln       the kiln binary
#   %FileCheck  LLVM's FileCheck
# and must succeed. CHECK lines in the file are read by FileCheck.
set -u
FILE=$1 KILN=$2 FILECHECK=$3
n=0
while IFS= read -r cmd; do
    n=$((n + 1))
    cmd=$(printf '%s' "$cmd" | sed -e "s|%kiln|$KILN|g" -e "s|%FileCheck|$FILECHECK|g" -e "s|%s|$FILE|g")
    echo "RUN: $cmd"
    if ! sh -c "set -o pipefail 2>/dev/null; $cmd"; then
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
