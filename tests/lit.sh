#!/bin/sh
# Golden tests in the manner of LLVM's lit: every line `# RUN: command` of the test file runs with
#   %s          the test file
#   %kiln       the kiln binary
#   %FileCheck  LLVM's FileCheck
#   %llvm       the directory of LLVM's tools (FileCheck's), for %llvm/llvm-readelf
#   %t          a scratch directory of this test, removed afterwards
# and must succeed. CHECK lines in the file are read by FileCheck. Each command runs under bash
# with pipefail, so a kiln that crashes or fails in the middle of a pipe fails the test even when
# FileCheck is satisfied by what it printed before.
#
#   sh tests/lit.sh [--bless] FILE KILN FILECHECK
# --bless re-records the expected output instead of checking it: for each RUN line of the form
# `COMMAND | %FileCheck %s [--check-prefix=P] ...` it runs COMMAND and replaces the file's P lines
# (`# P:`, `# P-NEXT:`, `# P-EMPTY:`) with what COMMAND printed, one line each, where the first of
# them was. Only literal expectations are re-recorded: a file whose P lines hold FileCheck patterns
# ([[...]] or {{...}}) is left alone with a message, since blessing would turn the patterns into
# the ids of one run. Review the diff before committing.
set -u
BLESS=0
if [ "${1:-}" = "--bless" ]; then
    BLESS=1
    shift
fi
FILE=$1 KILN=$2 FILECHECK=$3
LLVMBIN=$(dirname "$FILECHECK")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
subst() {
    printf '%s' "$1" | sed -e "s|%kiln|$KILN|g" -e "s|%FileCheck|$FILECHECK|g" -e "s|%llvm|$LLVMBIN|g" \
        -e "s|%t|$TMP|g" -e "s|%s|$FILE|g"
}
while IFS= read -r raw; do
    n=$((n + 1))
    if [ $BLESS -eq 1 ]; then
        case "$raw" in
        *"| %FileCheck %s"*) ;;
        *) continue ;;
        esac
        prefix=$(printf '%s' "$raw" | sed -n 's/.*--check-prefix=\([A-Za-z0-9_-]*\).*/\1/p')
        [ -n "$prefix" ] || prefix=CHECK
        strict=0
        case "$raw" in *--strict-whitespace*) strict=1 ;; esac
        if grep -E "^# $prefix(-NEXT|-EMPTY)?:" "$FILE" | grep -qE '\[\[|\{\{'; then
            echo "bless: $FILE: the $prefix lines hold patterns; edit them by hand"
            continue
        fi
        cmd=$(subst "${raw%%| %FileCheck*}")
        if ! bash -o pipefail -c "$cmd" >"$TMP/out"; then
            echo "FAIL: $cmd"
            exit 1
        fi
        awk -v P="$prefix" -v S="$strict" -v OUT="$TMP/out" '
            function emit(   line, k, sp) {
                sp = S ? "" : " "
                k = 0
                while ((getline line < OUT) > 0) {
                    if (line == "") print "# " P "-EMPTY:"
                    else print "# " P (k ? "-NEXT:" : ":") sp line
                    k++
                }
            }
            $0 ~ "^# " P "(-NEXT|-EMPTY)?:" { if (!done) { emit(); done = 1 } next }
            { print }
            END { if (!done) emit() }' "$FILE" >"$TMP/new" && cat "$TMP/new" >"$FILE"
        echo "blessed: $FILE ($prefix)"
        continue
    fi
    cmd=$(subst "$raw")
    echo "RUN: $cmd"
    if ! bash -o pipefail -c "$cmd"; then
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
