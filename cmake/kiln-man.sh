#!/bin/sh
# kiln-man.sh: writes the man page kiln.1 from the help texts of the kiln program itself, so the man
# page and --help never disagree: `kiln --help` is the synopsis and description, and each command
# listed under "commands:" there gets a section with `kiln COMMAND --help`. The texts are kept as
# they are laid out (no-fill), with roff's special characters escaped.
#   sh cmake/kiln-man.sh KILN OUT.1
set -eu
KILN=$1 OUT=$2
# roff: backslashes written as \e, '-' as \- (a minus that man renders as the ASCII hyphen, so
# options can be searched and copied), a line starting with . or ' guarded by \&
escape() {
    sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\([.']\)/\\\\\&\1/"
}
version=$("$KILN" --version | sed 's/^kiln //')
"$KILN" --help > "$OUT.help"
commands=$(sed -n '/^commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' "$OUT.help")
{
    printf '.TH KILN 1 "" "kiln %s" "User Commands"\n' "$version"
    printf '.SH NAME\nkiln \\- an ahead-of\\-time compiler for transformer models\n'
    printf '.SH SYNOPSIS\n.nf\n'
    head -n 1 "$OUT.help" | sed 's/^usage: //' | escape
    printf '.fi\n.SH DESCRIPTION\n.nf\n'
    tail -n +3 "$OUT.help" | escape
    printf '.fi\n.SH COMMANDS\n'
    for c in $commands; do
        printf '.SS kiln %s\n.nf\n' "$c"
        "$KILN" "$c" --help | escape
        printf '.fi\n'
    done
    printf '.SH SEE ALSO\n'
    printf 'The documentation in the source tree: README.md, docs/INSTALL.md, docs/LANGUAGE.md, docs/PASSES.md,\n'
    printf 'docs/ABI.md.\n'
} > "$OUT.tmp"
rm -f "$OUT.help"
mv "$OUT.tmp" "$OUT"
