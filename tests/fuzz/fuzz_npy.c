/* fuzz_npy.c: fuzz target for the .npy reader (runtime/npy.c). A file it accepts is written back
 * with rt_npy_write and read again: the descr, the shape and the bytes must be the same. */
#include "fuzz.h"

#include "runtime/kiln_rt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.npy", data, size);
    RtNpy a, b;
    char err[512];
    if (rt_npy_read(path, &a, err, sizeof err))
        return 0;
    const char *again = fuzz_write("again.npy", NULL, 0);
    if (rt_npy_write(again, a.descr, a.rank, a.shape, a.data, err, sizeof err) ||
        rt_npy_read(again, &b, err, sizeof err)) {
        fprintf(stderr, "fuzz_npy: an accepted file does not round-trip: %s\n", err);
        abort();
    }
    if (strcmp(a.descr, b.descr) || a.rank != b.rank || a.nbytes != b.nbytes ||
        memcmp(a.shape, b.shape, sizeof(int64_t) * (size_t)a.rank) || (a.nbytes && memcmp(a.data, b.data, a.nbytes))) {
        fprintf(stderr, "fuzz_npy: an accepted file reads back differently\n");
        abort();
    }
    rt_npy_free(&a);
    rt_npy_free(&b);
    return 0;
}
