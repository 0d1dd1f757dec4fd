#!/bin/sh
# The man page (cmake/kiln-man.sh, built as BUILD/kiln.1): man renders it without roff warnings, it
# has a section for every command `kiln --help` lists, and every option any help text names (-D,
# --weights, ...) appears in the rendered page.
#   tests/install/man.sh KILN MANPAGE
set -eu
KILN=$1 PAGE=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
groff -man -ww -z "$PAGE" 2> "$T/warn.txt"
if [ -s "$T/warn.txt" ]; then echo "FAIL: roff warnings:"; cat "$T/warn.txt"; exit 1; fi
MANWIDTH=200 MAN_KEEP_FORMATTING=0 man -l "$PAGE" 2>/dev/null | col -bx > "$T/page.txt"
grep -q "^NAME" "$T/page.txt"
"$KILN" --help > "$T/help.txt"
for c in $(sed -n '/^commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' "$T/help.txt"); do
    grep -q "^   kiln $c\$" "$T/page.txt" || { echo "FAIL: no section for kiln $c"; exit 1; }
    "$KILN" "$c" --help >> "$T/help.txt"
done
n=0
for opt in $(grep -o -- '\(^\|[][ (,|]\)--*[a-zA-Z][-a-zA-Z0-9]*' "$T/help.txt" | sed 's/^[][ (,|]*//' | sort -u); do
    n=$((n + 1))
    grep -qwF -e "$opt" "$T/page.txt" || { echo "FAIL: $opt is in --help but not in the man page"; exit 1; }
done
[ "$n" -gt 10 ] || { echo "FAIL: only $n options found in the help texts"; exit 1; }
echo "man: OK ($n options)"
