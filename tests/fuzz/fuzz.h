/* fuzz.h: what the fuzz targets in tests/fuzz/ share.
 *
 * Each fuzz_*.c defines LLVMFuzzerTestOneInput for one kind of untrusted input. The same file is
 * built two ways: by tests/fuzz/run.sh with clang's -fsanitize=fuzzer (libFuzzer supplies main and
 * mutates), and by CMake with the normal compiler, linked with replay.c, which runs every file of
 * the committed corpus through it once (ctest). A target must return 0 for every input; a crash, a
 * sanitizer report or an internal assertion (kiln_panic) is a bug in kiln.
 *
 * The readers under test take paths, so the input is written to a scratch file first: one per
 * process, in a directory made once under $TMPDIR (or /tmp) and removed at exit.
 */
#ifndef KILN_FUZZ_H
#define KILN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef KILN_SOURCE_DIR
#error "build with -DKILN_SOURCE_DIR=\"/path/to/kiln\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The scratch directory of this process (made on first use, removed at exit). */
const char *fuzz_dir(void);
/* Writes data to fuzz_dir()/name and returns the path (a static buffer per call site's name). */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);
/* The committed weights file a model file or IR text is checked against, so that weight names
 * resolve to real tensors without the fuzzer ever opening a path it wrote: the example whose weights
 * file the text names (charlm, llama-tiny, vit-mnist, vit-small-random), else GPT-2 tiny. */
const char *fuzz_weights_for(const uint8_t *data, size_t size);
/* A stream that discards what is written (diagnostics are exercised but not shown), or stderr when
 * the environment sets KILN_FUZZ_VERBOSE. */
FILE *fuzz_null(void);

#endif
