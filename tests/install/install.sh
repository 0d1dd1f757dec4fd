#!/bin/sh
# cmake --install, moved prefix and the CMake package (docs/INSTALL.md): installs kiln from the build
# directory into a temporary prefix, moves the prefix (everything must be found relative to itself),
# then
#   - the installed kiln links a program against the installed runtime (CC logs its arguments), not
#     the build tree's;
#   - pkg-config's flags from kiln.pc link an object from `kiln build --emit obj`;
#   - examples/cmake-project (copied with the vit-mnist model) configures with find_package(kiln),
#     builds, and its program's logits of four held-out images match PyTorch's (1e-4 relative);
#   - the model is compiled again when its file changes, and not when nothing changed;
#   - the generated header is an output of that step: deleted, it is made again.
#   tests/install/install.sh BUILD_DIR NPYCMP
set -eu
BUILD=$1 NPYCMP=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/p0" >/dev/null
mv "$T/p0" "$T/prefix"
P=$T/prefix
for f in bin/kiln lib/libkiln_rt.a include/kiln/kiln_rt.h include/kiln/kiln_dtype.h lib/cmake/kiln/kilnConfig.cmake \
         lib/cmake/kiln/kilnConfigVersion.cmake lib/cmake/kiln/kilnFunctions.cmake lib/pkgconfig/kiln.pc \
         share/man/man1/kiln.1; do
    [ -f "$P/$f" ] || { echo "FAIL: $f is not installed"; exit 1; }
done
"$P/bin/kiln" --version

# the installed runtime, found relative to the moved kiln
cat > "$T/tiny.kiln" <<'M'
model tiny
input  x: f32[T, 4] where T <= 8
output y: f32[T, 4]
y = x * 2.0 + 1.0
M
printf '#!/bin/sh\necho "$@" >> "%s/cc.log"\nexec cc "$@"\n' "$T" > "$T/cc"
chmod +x "$T/cc"
CC="$T/cc" "$P/bin/kiln" build "$T/tiny.kiln" -o "$T/tiny"
grep -q " $P/bin/../lib/libkiln_rt.a " "$T/cc.log" || { echo "FAIL: not linked against $P/lib/libkiln_rt.a:"; cat "$T/cc.log"; exit 1; }
"$T/tiny" --input x="$T/none.npy" 2>"$T/err.txt" && exit 1
grep -q "none.npy" "$T/err.txt"

# pkg-config: an object from --emit obj linked with kiln.pc's flags
if command -v pkg-config >/dev/null; then
    "$P/bin/kiln" build "$T/tiny.kiln" --emit obj -o "$T/tiny.o"
    printf '#include <kiln/kiln_rt.h>\nextern const RtModel kiln_model_tiny;\nint main(int c, char **v) { return rt_main(&kiln_model_tiny, c, v); }\n' > "$T/main.c"
    # shellcheck disable=SC2046
    cc -o "$T/tiny2" "$T/main.c" "$T/tiny.o" $(PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config --cflags --libs kiln) \
        $(grep -q 'fsanitize' "$P/lib/cmake/kiln/kilnConfig.cmake" && echo -fsanitize=address,undefined)
    "$T/tiny2" --help >/dev/null
    [ "$(PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config --variable=kiln kiln)" -ef "$P/bin/kiln" ]
fi

# the example project against the installed package
mkdir -p "$T/src/vit-mnist"
cp -r examples/cmake-project "$T/src/"
cp examples/vit-mnist/vit-mnist.kiln examples/vit-mnist/vit-mnist.safetensors "$T/src/vit-mnist/"
GEN=""
command -v ninja >/dev/null && GEN="-G Ninja"
# shellcheck disable=SC2086
cmake -S "$T/src/cmake-project" -B "$T/ex" $GEN -DCMAKE_PREFIX_PATH="$P" >/dev/null
cmake --build "$T/ex" > "$T/build1.txt"
grep -q "kiln: compiling" "$T/build1.txt"
"$T/ex/classify" examples/vit-mnist/ref/images_4.npy "$T/logits.npy"
"$NPYCMP" --maxrel 1e-4 "$T/logits.npy" examples/vit-mnist/ref/logits_4.npy
cmake --build "$T/ex" > "$T/build2.txt"
if grep -q "kiln: compiling" "$T/build2.txt"; then echo "FAIL: the model was compiled again with nothing changed"; exit 1; fi
sleep 1 # a coarse file system clock must see the change
touch "$T/src/vit-mnist/vit-mnist.kiln"
cmake --build "$T/ex" > "$T/build3.txt"
grep -q "kiln: compiling" "$T/build3.txt" || { echo "FAIL: the model was not compiled again after it changed"; exit 1; }
# the generated header is an output of the build step: deleted, it is made again (and classify.c,
# which includes it, builds), rather than the build stopping at a missing file
rm "$T/ex/kiln/vit_mnist_model/vit_mnist.h"
cmake --build "$T/ex" > "$T/build4.txt" 2>&1 || { echo "FAIL: the build stopped with the header deleted:"; cat "$T/build4.txt"; exit 1; }
grep -q "kiln: compiling" "$T/build4.txt" || { echo "FAIL: the deleted header was not made again"; exit 1; }
[ -f "$T/ex/kiln/vit_mnist_model/vit_mnist.h" ]
echo "install: OK"
