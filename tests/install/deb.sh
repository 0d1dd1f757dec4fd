#!/bin/sh
# The Debian package CPack makes (cmake/install.cmake): built into a temporary directory, extracted
# with dpkg-deb -x (never installed on the test machine), then
#   - the extracted kiln prints its version, which is the package's Version;
#   - it compiles a model into a program, linked against the runtime inside the package;
#   - Depends names the package of every shared library the kiln program needs (its NEEDED entries,
#     found by ldd, owned as dpkg -S says; what those libraries need is their packages' business), and a C compiler, binutils (ar) and libc6-dev, which `kiln build` runs and links with.
#   tests/install/deb.sh BUILD_DIR
set -eu
BUILD=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cpack -G DEB -B "$T/pkg" --config "$BUILD/CPackConfig.cmake" > "$T/cpack.txt" || { cat "$T/cpack.txt"; exit 1; }
DEB=$(ls "$T"/pkg/kiln_*.deb)
dpkg-deb -I "$DEB"
dpkg-deb -x "$DEB" "$T/root"
K=$T/root/usr/bin/kiln
got=$("$K" --version)
want="kiln $(dpkg-deb -f "$DEB" Version)"
[ "$got" = "$want" ] || { echo "FAIL: '$got', the package says '$want'"; exit 1; }
echo "$got"

printf 'model tiny\ninput  x: f32[4]\noutput y: f32[4]\ny = x * 2.0\n' > "$T/tiny.kiln"
printf '#!/bin/sh\necho "$@" >> "%s/cc.log"\nexec cc "$@"\n' "$T" > "$T/cc"
chmod +x "$T/cc"
CC="$T/cc" "$K" build "$T/tiny.kiln" -o "$T/tiny"
grep -q " $T/root/usr/bin/../lib/libkiln_rt.a " "$T/cc.log" || { echo "FAIL: not linked against the package's runtime"; exit 1; }

deps=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $deps"
has() { echo ", $deps," | grep -q "[ ,|]$1[ ,(]"; }
for p in gcc binutils libc6-dev; do
    has "$p" || { echo "FAIL: Depends does not name $p"; exit 1; }
done
n=0
ldd "$K" > "$T/ldd.txt"
for so in $(objdump -p "$K" | sed -n 's/^ *NEEDED *//p'); do
    lib=$(sed -n "s|^[[:space:]]*$so => \(/[^ ]*\) .*|\1|p; s|^[[:space:]]*\(/[^ ]*/$so\) .*|\1|p" "$T/ldd.txt")
    [ -n "$lib" ] || { echo "FAIL: ldd does not find $so"; exit 1; }
    pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || true)
    pkg=$(echo "$pkg" | head -n 1 | sed 's/:.*//')
    [ -n "$pkg" ] || { echo "FAIL: no Debian package owns $lib"; exit 1; }
    has "$pkg" || { echo "FAIL: kiln loads $lib from $pkg, which Depends does not name"; exit 1; }
    n=$((n + 1))
done
[ "$n" -ge 3 ] || { echo "FAIL: ldd found only $n libraries"; exit 1; }
echo "deb: OK ($n shared libraries, each from a package Depends names)"
