/* kiln_rt.h: the runtime linked into every compiled model, and the NumPy file I/O it shares with
 * the compiler.
 *
 * Plain C11 with no dependency beyond libc (and pthreads for the pool). Functions report errors by
 * return value and a message written into a caller's buffer; nothing here prints or exits.
 *
 * Sections, by source file:
 *   npy.c   .npy files: version 1.0-3.0 headers, little-endian, C order
 */
#ifndef KILN_RT_H
#define KILN_RT_H

#include <stddef.h>
#include <stdint.h>

enum { RT_MAX_RANK = 8 };

/* ---------------------------------------------------------------- npy.c */

typedef struct RtNpy {
    char descr[8];               /* NumPy type descr: "<f4", "<i4", "|u1", ... */
    int rank;
    int64_t shape[RT_MAX_RANK];  /* (rank) */
    size_t elem_size;            /* bytes per element */
    size_t nbytes;               /* elem_size x element count */
    void *data;                  /* malloc'ed; free with rt_npy_free */
} RtNpy;

/* Reads a whole .npy file. Rejects big-endian data, Fortran order, object and structured dtypes,
 * and files shorter than their header says, with a sentence naming the file in err.
 * Returns 0 on success, -1 on error. */
int rt_npy_read(const char *path, RtNpy *out, char *err, size_t errlen);
/* Writes a .npy (version 1.0) file with the given descr and shape. Returns 0 on success. */
int rt_npy_write(const char *path, const char *descr, int rank, const int64_t *shape,
                 const void *data, char *err, size_t errlen);
void rt_npy_free(RtNpy *a);

#endif
