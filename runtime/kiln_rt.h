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
 *   profile.c time per node group of a compiled model (--profile)
 *   text.c    the text options of a language model's program: generation and evaluation
 *   tokens.c  token merging and pruning kernels (ToMe, PiToMe, EViT) that compiled models call
 */
#ifndef KILN_RT_H
#define KILN_RT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln_dtype.h"

enum {
    RT_MAX_RANK = 8,  /* most dimensions of a tensor */
    RT_DIM_TERMS = 4, /* most symbolic sizes one dimension uses (the compiler's DIM_TERMS) */
};

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
    RT_ABI_VERSION = 5, /* 3: state and several entries (RtModel.nentries ... state_bytes);
                           4: a dimension is linear in several symbols (RtDim);
                           5: what the code needs of the OS (RtModel.needs) */
};

/* RtModel.needs: what the compiled code needs the process to have asked the OS for, at open. */
enum {
    RT_NEEDS_AMX = 1, /* AMX tile data (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) */
};

/* The codes an entry returns when a run-time check of the kv-cache pass fails (a gather with the IR
 * attribute check, passes/kv_cache.c); any other positive code is 1 + the id of a gather whose index
 * input was out of range. rt_error_message says each in a sentence. */
#define RT_ERR_CHECK 0x40000000      /* + the check (ir.h's CHECK_*) */
#define RT_ERR_NO_PREFILL 0x40000001 /* decode before any prefill (or after a reset) */
#define RT_ERR_BUDGET 0x40000002     /* policy full's budget reached, or a prompt longer than the budget */
#define RT_ERR_POSITIONS 0x40000003  /* decode past the model's learned position table */

/* Dtype codes: the rows of KILN_DTYPES (kiln_dtype.h), the compiler's DType codes too. */
typedef enum RtDType {
#define X(e, ...) RT_##e,
    KILN_DTYPES(X)
#undef X
    RT_DTYPE_COUNT
} RtDType;

/* Each dtype's traits, indexed by RtDType (runtime/dtype.c). */
extern const KilnDTypeInfo rt_dtypes[RT_DTYPE_COUNT];

/* A dimension: b + a[0] * syms[sym[0]] + ... + a[n-1] * syms[sym[n-1]] (P+T, 2*T+1, 768). */
typedef struct RtDim {
    int64_t n;                 /* number of symbolic terms, 0..RT_DIM_TERMS; 0: the constant b */
    int64_t sym[RT_DIM_TERMS]; /* (n) indices into RtModel.syms, ascending; the rest 0 */
    int64_t a[RT_DIM_TERMS];   /* (n) their coefficients, never 0; the rest 0 */
    int64_t b;                 /* constant term */
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

/* An entry of a model with state or several entries (ir/entry.c): as RtEntry, plus state, the
 * instance's state buffer (RtModel.state_bytes, 64-byte aligned; zero when opened and after a reset)
 * that the entry reads and updates. A run that fails (a non-zero code) may leave the state partly
 * updated: reset it. */
typedef int (*RtStateEntry)(const void *weights, void *activations, void *state, const int64_t *syms,
                            void *const *inputs, void *const *outputs, RtPool *pool);

typedef struct RtEntryDesc {
    const char *name;            /* "prefill", "decode"; "run" for a model whose one entry has state */
    int64_t ninputs;
    int64_t noutputs;
    const RtTensorDesc *inputs;  /* (ninputs) */
    const RtTensorDesc *outputs; /* (noutputs) */
    RtStateEntry run;
} RtEntryDesc;

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
    RtEntry run;                 /* NULL when the model has state or several entries (see entries) */
    const char *vocab;           /* a character-level language model's characters by token id (its
                                    length is the vocabulary size), or NULL; enables rt_main's text
                                    options (--prompt, --eval) */
    int64_t nentries;            /* 0 for a model without state and with one entry (run above); else
                                    its entries, the first also described by ninputs ... outputs */
    const RtEntryDesc *entries;  /* (nentries) */
    int64_t nstates;
    const RtTensorDesc *states;  /* (nstates) static shapes, in the order they lie in the state buffer,
                                    each 64-byte aligned */
    int64_t state_bytes;         /* size of the state buffer */
    int64_t needs;               /* RT_NEEDS_* bits: rt_open asks the OS for them (rt_request_amx) */
} RtModel;

/* A weights file written by `kiln build --weights-mode external`: this header, zero padding to 64
 * bytes, then the blob. */
typedef struct RtWeightsHeader {
    char magic[8];              /* "KILNWTS1" */
    uint64_t hash;              /* RtModel.weights_hash */
    uint64_t bytes;             /* RtModel.weights_bytes */
} RtWeightsHeader;

/* Asks the OS to let this process use AMX tiles (once is enough: the permission is the whole
 * process's). 0 when granted; else -1 and a sentence in err saying why (not Linux on x86-64, a kernel
 * without AMX support, a CPU without AMX). rt_open calls it for a model whose RtModel.needs has
 * RT_NEEDS_AMX; a caller of a raw entry (kiln_<model>_run_raw) of such a model calls it first. */
int rt_request_amx(char *err, size_t errlen);

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
/* The value of dimension d for the given symbol values. */
int64_t rt_dim_value(const RtDim *d, const int64_t *syms);
/* The shape of output i for the given symbol values. */
void rt_output_shape(const RtModel *m, int i, const int64_t *syms, int64_t *shape);
/* Runs once: inputs and outputs as for RtEntry; syms from rt_bind. Returns 0, or the entry's code.
 * For a model with entries, runs the first. */
int rt_run(RtInstance *inst, const int64_t *syms, void *const *inputs, void *const *outputs);
/* Models with state or several entries: the index of the entry named name, or -1. A model without
 * them has one entry, "run" (index 0). */
int rt_entry_index(const RtModel *m, const char *name);
int rt_entry_count(const RtModel *m);
/* The entry's inputs and outputs (for index 0 of a model without entries: m->inputs, m->outputs). */
const RtTensorDesc *rt_entry_inputs(const RtModel *m, int e, int64_t *n);
const RtTensorDesc *rt_entry_outputs(const RtModel *m, int e, int64_t *n);
/* rt_bind for entry e: the symbols its inputs do not use stay 0 (its code does not read them). */
int rt_bind_entry(const RtModel *m, int e, const int64_t *const *shapes, int64_t *syms, char *err,
                  size_t errlen);
/* rt_output_shape for output i of entry e. */
void rt_entry_output_shape(const RtModel *m, int e, int i, const int64_t *syms, int64_t *shape);
/* Runs entry e on the instance's state. Returns 0, or the entry's code (see RtStateEntry). */
int rt_run_entry(RtInstance *inst, int e, const int64_t *syms, void *const *inputs, void *const *outputs);
/* Sets the instance's state to zero, as when it was opened. */
void rt_reset(RtInstance *inst);
/* The instance's state buffer (RtModel.state_bytes), or NULL when the model has none. */
void *rt_state(RtInstance *inst);
const RtModel *rt_model(const RtInstance *inst);
/* Writes the declared shape of a tensor of m with symbol names: "[T, 768]". */
void rt_shape_desc(const RtModel *m, const RtTensorDesc *t, char *buf, size_t n);

/* ---------------------------------------------------------------- main.c */

/* What an entry's (or a typed function's) return code means, in a sentence without a final period:
 * 0, -1 (the typed functions: a size below 1 or above its bound), the RT_ERR_* codes, and other
 * positive codes (an index input out of range). Constant strings. */
const char *rt_error_message(int code);

/* The command line of a compiled program:
 *   PROGRAM --input NAME=FILE.npy ... [--output NAME=FILE.npy ...] [--weights FILE] [--threads N]
 *           [--bench N]
 * Returns the process's exit status. */
int rt_main(const RtModel *m, int argc, char **argv);
/* The weights file a program uses: `given` (--weights) when not NULL; else, for a model whose
 * weights are not built in, PROGRAM.weights beside the running program (/proc/self/exe), written
 * into buf, when that file exists (kiln build -o PROGRAM writes it there); else NULL. */
const char *rt_weights_beside(const RtModel *m, const char *given, char *buf, size_t n);

/* ---------------------------------------------------------------- text.c */

/* Whether argv asks for text mode (--prompt or --eval) of a model with a vocabulary. */
int rt_text_wanted(const RtModel *m, int argc, char **argv);
/* The command line of a character-level language model (one input i32[T], one output f32[T, V]):
 *   PROGRAM --prompt TEXT [-n N] [--temperature T] [--top-k K] [--seed S]   generate N characters
 *   PROGRAM --eval FILE [--stream]                                           score a text file
 * with --weights FILE and --threads N as in rt_main. --eval scores the file in non-overlapping
 * windows of the model's context (the bound of T): window w feeds characters [w*CTX, w*CTX+CTX) and
 * predicts [w*CTX+1, w*CTX+CTX+1); a final partial window is dropped. It prints the mean negative
 * log-likelihood as `X.XXXX nats/char, Y.YYYY bits/char`. With --stream (a model built with
 * --kv-cache) it scores the whole file as one stream through prefill and decode, so the cache's policy
 * decides what each character sees. Returns the exit status. */
int rt_text_main(const RtModel *m, int argc, char **argv);

/* ---------------------------------------------------------------- profile.c */

/* One node group of an entry function, as the compiler describes it for the profile: a kernel call
 * (a matmul with its epilogue, an attention, a fused loop, a norm, a copy). FLOPs and bytes (the
 * stored values read and written) are c[0] + c[1]*S + c[2]*S^2 for S = syms[sym] (sym -1: constants). */
typedef struct RtProfGroup {
    const char *label;  /* "%12 matmul + epilogue add f32[T, 192]" */
    const char *kind;   /* "matmul", "qmatmul" (int8 or bf16 products), "attention", "loop", "norm",
                           "reduce", "move", "other" */
    int64_t sym;
    double flops[3];
    double bytes[3];
} RtProfGroup;

typedef struct RtProfile RtProfile;

/* Starts profiling the runs made on the calling thread, keeping up to max_events events for a trace
 * (0: no trace). NULL when out of memory. */
RtProfile *rt_profile_start(int64_t max_events);
/* Stops recording on the calling thread (the figures stay). */
void rt_profile_stop(RtProfile *p);
void rt_profile_free(RtProfile *p);
/* Called by the generated entry before node group k of `groups` (n groups) and with k = n at its end. */
void rt_profile_mark(const RtProfGroup *groups, int32_t n, int32_t k);
/* The fp32 FMA loop the compiler emits with each model (codegen/profile.c): `iters` iterations of
 * independent chains x = x * m + c on the vectors the model's kernels use; returns their sum. */
typedef float (*RtProfFma)(int64_t iters);
/* Called by the generated entry at its start, with the model's FMA loop, its vector lanes and FLOPs
 * per iteration, and the entry's pool. While a profile is active on the calling thread and has no
 * peak yet, measures the machine's peak on the pool's threads: fma's rate (each thread's FLOPs over
 * its own CPU time while all run, the best thread times the thread count) and a STREAM triad's
 * bandwidth. The report and the trace compare each group with it. A few tens of ms, once per profile;
 * not part of any group's time. */
void rt_profile_peak(RtProfFma fma, int32_t lanes, int32_t flops_per_iter, RtPool *pool);
/* Forgets the groups' times and the trace's events, keeping the peak: a program profiling warm runs
 * starts the profile before its warm-up run (which measures the peak) and clears it after. */
void rt_profile_clear(RtProfile *p);
/* Prints the peak (when measured), then the time per group (wall clock, and the calling thread's CPU
 * time), its share, calls, GFLOP/s and GB/s at the symbol values syms (those of the runs), and the
 * percentage of the peak it reaches (GFLOP/s of the FMA peak or GB/s of the bandwidth, whichever is
 * larger: the roofline's bound), largest first. Returns 0, or -1 when out of memory. */
int rt_profile_report(const RtProfile *p, const int64_t *syms, FILE *f);
/* Writes the events as Chrome trace JSON (chrome://tracing, Perfetto). 0, or -1 with err set. */
int rt_profile_write_trace(const RtProfile *p, const char *path, char *err, size_t errlen);

/* ---------------------------------------------------------------- tokens.c
 *
 * The C parts of the nodes the prune-tokens pass makes (ir/tokens.c defines the nodes; the similarities,
 * cls_attn and token_merge are generated code, codegen/merge.c, which calls these): sorts and
 * destinations, over batch rows of T tokens each, C order, f32 values and i32 token destinations. */

/* dest[T]: where ToMe's bipartite soft matching sends each token of one batch row, given each A token's
 * (even index) best similarity best[(T + 1) / 2] and the index of its best B token (odd index) among
 * the B tokens, bidx (r merged; cls: token 0 is protected, its best -inf). */
void rt_tome_select(int32_t *dest, const float *best, const int32_t *bidx, int64_t T, int64_t r, int32_t cls);
/* PiToMe's matching of one batch row, around the generated energies and similarities: eord[n] = the
 * tokens after [CLS] (n of them) by energy[n], descending, ties to the lower index; dest[T] = where each
 * token goes, given each A token's (even energy rank) best similarity best[] and the index of its best
 * B token (odd rank) among the B tokens, bidx[] (bsm: ToMe's matching between all the even and odd
 * ranks, (n + 1) / 2 A tokens; else the 2r most energetic, r A tokens) (r merged; cls: token 0 protected). */
void rt_pitome_rank(int32_t *eord, const float *energy, int64_t n);
void rt_pitome_assign(int32_t *dest, const int32_t *eord, const float *best, const int32_t *bidx, int64_t T, int64_t r,
                      int32_t cls, int32_t bsm);
/* dest[nb, T]: EViT's selection by attn[nb, T] (token 0 the [CLS] token): keep tokens kept, the rest fused. */
void rt_evit_select(int32_t *dest, const float *attn, int64_t nb, int64_t T, int64_t keep);

#endif
