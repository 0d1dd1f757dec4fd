/* kiln_rt.h: the runtime linked into every compiled model, and the NumPy file I/O it shares with
 * the compiler.
 *
 * Plain C11 with no dependency beyond libc (and pthreads for the pool). Functions report errors by
 * return value and a message written into a caller's buffer; nothing here prints or exits.
 *
 * Sections, by source file:
 *   dtype.c   the dtype table (kiln_dtype.h's rows)
 *   npy.c     .npy files: version 1.0-3.0 headers, little-endian, C order
 *   (abi)     what the compiler emits for a model and the runtime reads: RtModel
 *   pool.c    the thread pool: parallel-for over ranges
 *   model.c   opening a compiled model (weights embedded or mapped), binding sizes, running it
 *   main.c    rt_main: the command line of a program built with `kiln build --emit exe`
 *   text.c    the text options of a language model's program: generation and evaluation
 */
#ifndef KILN_RT_H
#define KILN_RT_H

#include <stddef.h>
#include <stdint.h>

#include "kiln_dtype.h"

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

/* ---------------------------------------------------------------- the ABI of a compiled model
 *
 * For a model NAME the compiler emits one constant RtModel, `kiln_model_NAME`, and the raw entry it
 * points to. Every field is 8 bytes wide so that the layout the compiler builds in LLVM IR and the
 * one C sees agree without padding rules. Dtype codes are kiln's (RT_F32 ...), generated from
 * KILN_DTYPES as ir/ir.h's DType is.
 */
enum {
    RT_ABI_VERSION = 2,
};

/* Dtype codes: the rows of KILN_DTYPES (kiln_dtype.h), the compiler's DType codes too. */
typedef enum RtDType {
#define X(e, ...) RT_##e,
    KILN_DTYPES(X)
#undef X
    RT_DTYPE_COUNT
} RtDType;

/* Each dtype's traits, indexed by RtDType (runtime/dtype.c). */
extern const KilnDTypeInfo rt_dtypes[RT_DTYPE_COUNT];

/* A dimension: b when sym < 0, else a * syms[sym] + b. */
typedef struct RtDim {
    int64_t sym;
    int64_t a;
    int64_t b;
} RtDim;

typedef struct RtTensorDesc {
    const char *name;
    int64_t dtype;              /* RtDType */
    int64_t rank;
    RtDim dims[RT_MAX_RANK];    /* (rank) */
} RtTensorDesc;

typedef struct RtSymDesc {
    const char *name;           /* "T" */
    int64_t bound;              /* largest value allowed */
} RtSymDesc;

typedef struct RtPool RtPool;

/* The raw entry: runs the model once. weights: the weights blob (RtModel.weights_bytes, 64-byte
 * aligned); activations: scratch of RtModel.activations_bytes (64-byte aligned); syms: the value of
 * each symbolic size; inputs/outputs: one pointer per tensor, C order, in declaration order; pool:
 * the thread pool or NULL for the calling thread alone. Returns 0, or a positive code when a run-time
 * check failed: an index input out of range (the code is 1 + the id of the gather node in the IR). */
typedef int (*RtEntry)(const void *weights, void *activations, const int64_t *syms, void *const *inputs,
                       void *const *outputs, RtPool *pool);

typedef struct RtModel {
    int64_t abi_version;        /* RT_ABI_VERSION */
    const char *name;
    int64_t ninputs;
    int64_t noutputs;
    int64_t nsyms;
    const RtTensorDesc *inputs;  /* (ninputs) */
    const RtTensorDesc *outputs; /* (noutputs) */
    const RtSymDesc *syms;       /* (nsyms) */
    int64_t weights_bytes;       /* size of the weights blob */
    int64_t activations_bytes;   /* size of the activation arena, every size at its bound */
    uint64_t weights_hash;       /* identifies the blob the code was compiled against */
    const void *embedded_weights; /* the blob inside the program, or NULL when it is a separate file */
    RtEntry run;
    const char *vocab;           /* a character-level language model's characters by token id (its
                                    length is the vocabulary size), or NULL; enables rt_main's text
                                    options (--prompt, --eval) */
} RtModel;

/* A weights file written by `kiln build --weights-mode external`: this header, zero padding to 64
 * bytes, then the blob. */
typedef struct RtWeightsHeader {
    char magic[8];              /* "KILNWTS1" */
    uint64_t hash;              /* RtModel.weights_hash */
    uint64_t bytes;             /* RtModel.weights_bytes */
} RtWeightsHeader;

/* ---------------------------------------------------------------- pool.c */

/* n threads in all, the calling thread included (n <= 1: no worker threads). */
RtPool *rt_pool_new(int n);
void rt_pool_free(RtPool *p);
int rt_pool_size(const RtPool *p); /* 1 for NULL */
/* Calls fn(ctx, begin, end) over [0, n) split into contiguous chunks, one per thread, and returns
 * when all are done. With a NULL pool (or n small), the calling thread does it all. Not reentrant
 * on one pool: a kernel does not call rt_parallel_for from inside fn. */
void rt_parallel_for(RtPool *p, int64_t n, void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx);
/* The number of threads to use: KILN_THREADS if set, else the number of online CPUs. */
int rt_default_threads(void);

/* ---------------------------------------------------------------- model.c */

typedef struct RtInstance RtInstance;

/* Opens a model: the weights from weights_path (a file written by --weights-mode external) or, when
 * weights_path is NULL, the embedded blob; the activation arena allocated; a pool of `threads`
 * threads (0: rt_default_threads()). NULL on failure with a sentence in err. Two instances share
 * nothing mutable and may run in two threads at once. */
RtInstance *rt_open(const RtModel *m, const char *weights_path, int threads, char *err, size_t errlen);
void rt_close(RtInstance *inst);
/* Binds the symbolic sizes from the inputs' shapes (shapes[i] has m->inputs[i].rank entries) and
 * checks every static size and bound; 0 on success, else -1 with a sentence naming the input. */
int rt_bind(const RtModel *m, const int64_t *const *shapes, int64_t *syms, char *err, size_t errlen);
/* The shape of output i for the given symbol values. */
void rt_output_shape(const RtModel *m, int i, const int64_t *syms, int64_t *shape);
/* Runs once: inputs and outputs as for RtEntry; syms from rt_bind. Returns 0. */
int rt_run(RtInstance *inst, const int64_t *syms, void *const *inputs, void *const *outputs);
const RtModel *rt_model(const RtInstance *inst);
/* Writes the declared shape of a tensor of m with symbol names: "[T, 768]". */
void rt_shape_desc(const RtModel *m, const RtTensorDesc *t, char *buf, size_t n);

/* ---------------------------------------------------------------- main.c */

/* The command line of a compiled program:
 *   PROGRAM --input NAME=FILE.npy ... [--output NAME=FILE.npy ...] [--weights FILE] [--threads N]
 *           [--bench N]
 * Returns the process's exit status. */
int rt_main(const RtModel *m, int argc, char **argv);

/* ---------------------------------------------------------------- text.c */

/* Whether argv asks for text mode (--prompt or --eval) of a model with a vocabulary. */
int rt_text_wanted(const RtModel *m, int argc, char **argv);
/* The command line of a character-level language model (one input i32[T], one output f32[T, V]):
 *   PROGRAM --prompt TEXT [-n N] [--temperature T] [--top-k K] [--seed S]   generate N characters
 *   PROGRAM --eval FILE                                                      score a text file
 * with --weights FILE and --threads N as in rt_main. --eval scores the file in non-overlapping
 * windows of the model's context (the bound of T): window w feeds characters [w*CTX, w*CTX+CTX) and
 * predicts [w*CTX+1, w*CTX+CTX+1); a final partial window is dropped. It prints the mean negative
 * log-likelihood as `X.XXXX nats/char, Y.YYYY bits/char`. Returns the exit status. */
int rt_text_main(const RtModel *m, int argc, char **argv);

#endif
