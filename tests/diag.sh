#!/bin/sh
# Diagnostic tests: a model file that must be rejected carries its expected errors inline:
#   # ERROR: LINE:COL: text      an error at that position whose message contains text
#   # ERROR: text                an error without a position (weights files, options)
#   # ARGS: options              extra options for `kiln check` (paths relative to the repo root)
# The test passes when `kiln check` exits with status 1, prints every expected error, and prints
# no error that is not expected.
set -u
FILE=$1 KILN=$2
ARGS=$(sed -n 's/^# ARGS: //p' "$FILE")
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT
# shellcheck disable=SC2086
"$KILN" check "$FILE" $ARGS >/dev/null 2>"$ERR"
status=$?
fail=0
if [ $status -ne 1 ]; then
    echo "FAIL: kiln check exited with $status, expected 1"
    fail=1
fi
expected=0
while IFS= read -r line; do
    expected=$((expected + 1))
    case "$line" in
    [0-9]*:[0-9]*:*)
        pos=${line%%: *}
        text=${line#*: }
        want="$FILE:$pos: error: "
        if ! grep -F -- "$want" "$ERR" | grep -qF -- "$text"; then
            echo "FAIL: expected '$want$text'"
            fail=1
        fi ;;
    *)
        if ! grep -F -- "error: " "$ERR" | grep -qF -- "$line"; then
            echo "FAIL: expected an error containing '$line'"
            fail=1
        fi ;;
    esac
done <<EOF2
$(sed -n 's/^.*# ERROR: //p' "$FILE")
EOF2
got=$(grep -c "error: " "$ERR")
if [ "$got" -ne "$expected" ]; then
    echo "FAIL: $got errors printed, $expected expected"
    fail=1
fi
if [ $fail -ne 0 ]; then
    echo "--- stderr of kiln check:"
    cat "$ERR"
fi
exit $fail
