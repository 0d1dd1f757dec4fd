/* codegen.h: from a checked graph to native code through the LLVM C API.
 *
 * One Cg owns all LLVM state (context, module, builder, target machine, data layout), created and
 * disposed in one place. The sequence is always the same: targets initialised, target machine
 * created, data layout set, IR built, LLVMVerifyModule, LLVMRunPasses with the new pass manager,
 * then an object, assembly or LLVM IR emitted, or the module handed to the JIT.
 *
 * The generated code follows the runtime's ABI (runtime/kiln_rt.h): one entry function per model
 * that runs every node in order over buffers it is given (weights blob, activation arena, inputs,
 * outputs), and one RtModel descriptor. Each node becomes an internal function; symbolic sizes are
 * run-time values read from the entry's `syms` argument.
 *
 * Sections, by source file:
 *   cg.c          the context, targets, optimisation, emission, the JIT
 *   target.c      the target's vector width, registers and caches; the known cores; --explain codegen
 *   plan.c        where every node's result lives: weights blob, arena offsets, inputs, outputs
 *   entry.c       the entry function, the RtModel descriptor, the weights blob
 *   loops.c       loop nests, dimensions, element loads and stores, dtype conversions
 *   elementwise.c elementwise ops and data movement
 *   reduce.c      reductions, softmax, layernorm, rmsnorm
 *   matmul.c      matrix multiplication and convolution
 *   attention.c   fused attention: online softmax, no T x T buffer
 *   gemm.c        fast f32 matrix multiplication: packed weights, vector micro-kernels, tiles on threads
 *   profile.c     the table of node groups an entry reports to the runtime's profiler, and its marks
 *   merge.c       token merging and pruning nodes: calls of the runtime's kernels
 *   quant.c       quantize, dequantize and the quantized matmul (qmatmul), portable
 *   qgemm.c       the dynamic int8 qmatmul with AVX-512 VNNI or AMX tiles (and the bf16 one likewise):
 *                 packed weights, register-blocked tiles on threads, exact i32 sums, the rescale and
 *                 fuse-ops' epilogue on each micro-tile
 *   qgemm_avx2.c  the dynamic int8 qmatmul on AVX2 without AVX-512 VNNI: vpmaddwd on i16 pairs, or
 *                 AVX-VNNI's vpdpbusd on ymm; qgemm.c's tiles at 8 lanes (qgemm.c hands it over)
 *   qwgemm.c      the weight-only qmatmul (w8, w4) for decoding: packed weights dequantised in
 *                 registers (AVX-512 or AVX2), output panels split over the threads
 *   parallel.c    work over the runtime's threads: ranges or shared-counter items, serial when small
 *   vec.c         vector-IR helpers the kernels share, the exponentials
 *   artifact.c    executables, libraries, headers, Graphviz: the files `kiln build` writes
 */
#ifndef KILN_CODEGEN_H
#define KILN_CODEGEN_H

#include "ir/ir.h"

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

/* ---------------------------------------------------------------- cg.c */

typedef struct CgOptions {
    const char *triple;   /* NULL: the host's */
    const char *cpu;      /* NULL: the host's (or "generic" when cross-compiling) */
    const char *features; /* NULL: the host CPU's features (or none when cross-compiling) */
    int opt;              /* 0..3 */
    int embed_weights;    /* the weights blob inside the object */
    FILE *explain;        /* when set, cg_build prints what the kernels chose and why (cg_explain) */
} CgOptions;

/* Where a node's result lives at run time. */
typedef enum Home {
    HOME_NONE,     /* not materialised */
    HOME_WEIGHTS,  /* offset in the weights blob (WEIGHT and CONST) */
    HOME_ARENA,    /* offset in the activation arena */
    HOME_INPUT,    /* inputs[index] */
    HOME_OUTPUT,   /* outputs[index] */
    HOME_STATE,    /* offset in the state buffer (ir/entry.c) */
} Home;

typedef struct Place {
    Home home;
    int index;      /* HOME_INPUT / HOME_OUTPUT */
    int64_t offset; /* HOME_WEIGHTS / HOME_ARENA, bytes */
} Place;

typedef struct Plan {
    Place *place;             /* (g->nnode) */
    int64_t arena_bytes;      /* at the symbols' bounds */
    int64_t weights_bytes;
    unsigned char *weights;   /* the blob (malloc'ed) */
    uint64_t weights_hash;
    int *copy_out;            /* (g->noutput) 1 when the output must be copied from elsewhere */
    int64_t *packed;          /* (g->nnode) blob offset of a copy of the node's in[1] prepared at compile
                                 time (a matmul's weights packed by gemm.c), passed to its kernel in
                                 place of in[1]; -1 when none */
    unsigned char *folded;    /* (g->nnode) 1 when only packed copies read the node: no kernel, no buffer */
    int *gather_from;         /* (g->nnode) for a gather whose table is a weight a matmul packs transposed
                                 (tied embeddings): that matmul's id, and the gather reads its rows from
                                 the packed copy; else -1 (plan_folded) */
    unsigned char *view;      /* (g->nnode) 1: a slice, reshape or transpose attention reads through strides
                                 from its base (plan_views): no kernel, no buffer */
    int *writes_into;         /* (g->nnode) for an attention, the transpose reading it whose storage it writes
                                 in that transpose's layout (plan_views), else -1 */
    int *written_by;          /* (g->nnode) the inverse: for that transpose, the attention; else -1 */
} Plan;

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTargetMachineRef tm;
    LLVMTargetDataRef td;
    char *triple;
    char *cpu;
    char *features;
    CgOptions opt;
    Diag *d;
    const Graph *g;
    Plan plan;
    const char *prefix;       /* C identifier made from the model's name */
    /* types used everywhere */
    LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, f64, ptr, void_;
    /* while a node's function is being built */
    LLVMValueRef fn;
    LLVMValueRef syms;        /* i64* */
    LLVMValueRef pool;
    LLVMValueRef status;      /* i32 alloca: 0, or an error code set by a kernel */
    int amx_used;             /* a kernel uses AMX tiles: the process must ask the OS for them (RtModel.needs) */
} Cg;

/* ---------------------------------------------------------------- target.c */

/* What the kernels need to know of the target (target.c says where each fact comes from): the
 * widest float vector, fused multiply-add, the vector registers, the architecture, and the L1 data
 * and L2 cache sizes per core (this machine's when compiling for it, else a known core's from the
 * table, else 32 KiB and 1 MiB). */
typedef struct CgTarget {
    int vw;     /* floats per vector: 16 with AVX-512, 8 with AVX2, 4 with SSE, NEON and elsewhere */
    int fma;
    int regs;   /* vector registers: 32 with AVX-512 and on aarch64, 16 otherwise */
    int x86, arm;
    int vnni;   /* AVX-512 VNNI (vpdpbusd on 512-bit vectors) */
    int avxvnni; /* AVX-VNNI (the VEX-encoded vpdpbusd on 256-bit vectors) */
    int bf16;   /* AVX512-BF16 (vdpbf16ps, vcvtneps2bf16 on 512-bit vectors) */
    int amx_int8, amx_bf16; /* AMX tiles with tdpbusd / tdpbf16ps (amx-tile and amx-int8 / amx-bf16) */
    long l1, l2;
    const char *isa;        /* "AVX-512", "AVX2", "SSE", "NEON", "generic vectors" */
    const char *core;       /* the known core the CPU is (target.c's table), or NULL */
    const char *core_from;  /* how it was known: "its name" or "its features (AMX)" */
    int fma_pipes, fma_bits; /* the known core's vector FMA pipes and their width; 0 when unknown */
    const char *vec_from;   /* where vw, fma and regs came from */
    const char *cache_from; /* where l1 and l2 came from */
} CgTarget;
CgTarget cg_target(const Cg *cg);
/* Prints the target facts, and the kernel parameters chosen from them (the GEMM's, each kind of
 * attention node's of the graph built) with the reasons: `kiln build --explain codegen`. */
void cg_explain(Cg *cg, FILE *out);

/* Creates the context and target machine. NULL after an error (reported). */
Cg *cg_new(const CgOptions *o, Diag *d);
void cg_free(Cg *cg);
/* Builds the module for g: plan, kernels, entry, descriptor. Returns 0 on success. */
int cg_build(Cg *cg, const Graph *g);
/* Verifies and optimises the module (LLVMRunPasses, -O level of the options). */
int cg_optimise(Cg *cg);
/* Writes the module as LLVM IR text, assembly or an object file. Returns 0 on success. */
int cg_write_llvm(Cg *cg, const char *path);
int cg_emit_file(Cg *cg, const char *path, int assembly);
/* Runs the optimised module in-process (LLJIT): inputs and outputs as for RtEntry, symbol values
 * from ir_bind_inputs. Consumes the module. Returns 0 on success. */
int cg_jit_run(Cg *cg, const int64_t *syms, void *const *inputs, void *const *outputs, int threads);
/* A C identifier from a model name ("vit-mnist" -> "vit_mnist"). */
char *cg_ident(const char *name);

/* ---------------------------------------------------------------- plan.c */

/* Decides where every node lives and builds the weights blob: the weights and constants that some
 * kernel reads as they are, then the packed copies (Plan.packed), each 64-byte aligned. Returns 0 on
 * success. */
int cg_plan(Cg *cg);
void cg_plan_free(Plan *p);

/* ---------------------------------------------------------------- state.c */

/* scatter(base, index, values) {axis} (ir/entry.c's state updates): in place when out is base. */
int cg_scatter(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);

/* ---------------------------------------------------------------- entry.c */

/* Adds the entry function `kiln_<prefix>_run_raw` and the descriptor `kiln_model_<prefix>`. */
void cg_entry(Cg *cg);
/* Adds `main`, which hands the descriptor to the runtime's rt_main (for --emit exe). */
void cg_add_main(Cg *cg);

/* ---------------------------------------------------------------- loops.c */

/* A tensor as a kernel sees it: a base pointer, an element offset and a stride per iterated
 * dimension (in elements; 0 broadcasts). */
typedef struct View {
    LLVMValueRef base;   /* ptr */
    DType dtype;
    LLVMValueRef offset; /* i64 elements */
    LLVMValueRef stride[IR_MAX_RANK];
} View;

typedef struct Loop {
    LLVMBasicBlockRef head, body, exit;
    LLVMValueRef iv;  /* i64 induction variable */
    LLVMValueRef phi;
} Loop;

/* for (iv = from; iv < to; iv++): the builder is left in the body. */
Loop cg_loop_begin(Cg *cg, LLVMValueRef from, LLVMValueRef to, const char *name);
/* Closes the loop: the builder is left after it. */
void cg_loop_end(Cg *cg, Loop *l);

LLVMValueRef cg_i64(Cg *cg, int64_t v);
LLVMValueRef cg_f32(Cg *cg, double v);
/* The run-time value of a dimension. */
LLVMValueRef cg_dim(Cg *cg, Dim d);
/* The run-time shape of a node, and its C-order strides in elements. */
void cg_shape(Cg *cg, const Node *n, LLVMValueRef *dims);
void cg_strides(Cg *cg, int rank, LLVMValueRef *dims, LLVMValueRef *strides);
LLVMValueRef cg_numel(Cg *cg, int rank, LLVMValueRef *dims);

/* Bytes of numel elements of dtype t at run time (whole blocks for the packed types: dtype_bytes). */
LLVMValueRef cg_bytes(Cg *cg, DType t, LLVMValueRef numel);
/* The LLVM type kernels compute in for a dtype: float for f32/f16/bf16, double for f64, i64 for
 * integers, i1 for bool. */
LLVMTypeRef cg_ctype(Cg *cg, DType t);
/* Storage type of one element. */
LLVMTypeRef cg_stype(Cg *cg, DType t);
/* Loads element idx of ptr (dtype t) into its compute type; stores one back. */
LLVMValueRef cg_load(Cg *cg, LLVMValueRef ptr, DType t, LLVMValueRef idx);
void cg_store(Cg *cg, LLVMValueRef ptr, DType t, LLVMValueRef idx, LLVMValueRef v);
/* Converts a compute-type value of dtype `from` to the compute type of `to`, as CAST does. */
LLVMValueRef cg_convert(Cg *cg, LLVMValueRef v, DType from, DType to);
/* Calls an LLVM intrinsic overloaded on the type of args[0]. */
LLVMValueRef cg_intrinsic(Cg *cg, const char *name, LLVMValueRef *args, int nargs);
/* tanh and erf likewise: polynomial code for f32 (a few ulp), the C library for other types. */
LLVMValueRef cg_tanh(Cg *cg, LLVMValueRef x);
LLVMValueRef cg_erf(Cg *cg, LLVMValueRef x);
/* Calls a C library function float f(float) or double f(double). */
LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x);

/* A stack slot in the entry block of the function being built (promoted to a register by LLVM). */
LLVMValueRef cg_alloca(Cg *cg, LLVMTypeRef t, const char *name);
/* Loops over dims[rank] and calls body(cg, ctx, idx) with the indices of the innermost point. */
typedef void (*CgBody)(Cg *cg, void *ctx, LLVMValueRef *idx);
void cg_nest(Cg *cg, int rank, LLVMValueRef *dims, CgBody body, void *ctx);
/* A loop over rows [begin, end) of a tensor of dims[rank] (rank >= 1): every dimension but the last,
 * flattened. cg_rows_begin leaves the builder in the body with idx[0 .. rank-2] set to the row's
 * multi-index (divided out once, before the loop, then counted up), cg_rows_end closes the loop. */
typedef struct RowLoop {
    Loop loop;
    int rank;
    LLVMValueRef slot[IR_MAX_RANK], dims[IR_MAX_RANK];
} RowLoop;
RowLoop cg_rows_begin(Cg *cg, int rank, LLVMValueRef *dims, LLVMValueRef begin, LLVMValueRef end, LLVMValueRef *idx);
void cg_rows_end(Cg *cg, RowLoop *r);
/* The element index of a view at the given loop indices. */
LLVMValueRef cg_view_index(Cg *cg, const View *v, int rank, LLVMValueRef *idx);
/* A view of node n (pointer p, C-order) iterated by an output of rank `rank` under NumPy
 * broadcasting (n's dims aligned to the right; size-1 dims get stride 0). */
View cg_view_broadcast(Cg *cg, const Node *n, LLVMValueRef p, int rank);

/* ---------------------------------------------------------------- parallel.c */

/* A function of the runtime (rt_parallel_for, rt_pool_size, rt_profile_mark), declared once per
 * module, weakly (NULL where the process that runs the code lacks it; see parallel.c). */
LLVMValueRef cg_runtime_function(Cg *cg, const char *name, LLVMTypeRef fty);
/* The pool's threads (i64; 1 when cg->pool is NULL). */
LLVMValueRef cg_pool_threads(Cg *cg);
/* A body of work: emitted into a function of its own, it sees the captured values cap[ncap]
 * (re-loaded there: values of the calling function are not visible in it) and cg->syms, and emits
 * the work for [begin, end). */
typedef void (*CgRange)(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end);
typedef enum CgSplit {
    CG_RANGES, /* contiguous ranges of [0, n), one per thread */
    CG_ITEMS,  /* items of [0, n) taken one at a time from a shared counter: body(item, item + 1) */
} CgSplit;
typedef struct CgPar {
    CgSplit split;
    LLVMValueRef n;     /* i64: indices or items */
    LLVMValueRef work;  /* i64 or NULL: under min_work the calling thread does everything */
    int64_t min_work;
    const char *name;   /* the body's function */
    int shared;         /* a function of that name already in the module is this body: called, not emitted
                           again (the name must then say everything the body's code depends on) */
    int vw;             /* floats per vector the body keeps whole (cg_vector_width_attr), 0: none */
} CgPar;
/* Runs body over the pool's threads as p says (rt_parallel_for on cg->pool). */
void cg_parallel(Cg *cg, const CgPar *p, int ncap, LLVMValueRef *cap, CgRange body, void *ctx);
/* CG_RANGES over [0, n), always on the pool; and on the calling thread alone when work (elements
 * touched, say) is under CG_PARALLEL_WORK, where waking the pool would cost more than it saves. */
enum { CG_PARALLEL_WORK = 1 << 15 };
void cg_parallel_for(Cg *cg, LLVMValueRef n, int ncap, LLVMValueRef *cap, CgRange body, void *ctx, const char *name);
void cg_parallel_work(Cg *cg, LLVMValueRef n, LLVMValueRef work, int ncap, LLVMValueRef *cap, CgRange body, void *ctx,
                      const char *name);

/* ---------------------------------------------------------------- vec.c */

enum { CG_MAX_VW = 32 }; /* floats per vector, at most (two AVX-512 registers: attention.c's blocks) */

/* A vector width and what the vector helpers need with it. */
typedef struct CgVec {
    Cg *cg;
    int vw;             /* lanes */
    int fma;            /* llvm.fma, else llvm.fmuladd (targets without fused multiply-add) */
    LLVMTypeRef vt, it; /* <vw x float>, <vw x i32> */
    LLVMValueRef lanes; /* <0, 1, ..., vw-1> as i32 */
} CgVec;
CgVec cg_vec(Cg *cg, int vw, int fma);
/* Calls an intrinsic overloaded on several types (cg_intrinsic: on the first argument's). */
LLVMValueRef cg_call_intrinsic(Cg *cg, const char *name, LLVMTypeRef *tys, int ntys, LLVMValueRef *args, int nargs);
/* Keeps vw-float vectors whole in f (x86 splits 512-bit vectors on CPUs that prefer 256 bits). */
void cg_vector_width_attr(Cg *cg, LLVMValueRef f, int vw);
/* i64 min, max and ceil(x / y) (x >= 0, y > 0); p + i floats. */
LLVMValueRef cg_smin(Cg *cg, LLVMValueRef x, LLVMValueRef y);
LLVMValueRef cg_smax(Cg *cg, LLVMValueRef x, LLVMValueRef y);
LLVMValueRef cg_ceil_div(Cg *cg, LLVMValueRef x, LLVMValueRef y);
LLVMValueRef cg_fptr(Cg *cg, LLVMValueRef p, LLVMValueRef i);
/* Closes a loop of cg_loop_begin whose induction variable goes to next (a step other than 1). */
void cg_loop_end_step(Cg *cg, Loop *l, LLVMValueRef next);
/* if (c) { ... }: cg_if_begin leaves the builder in the then-block and returns the block to
 * continue in, which cg_if_end branches to. */
LLVMBasicBlockRef cg_if_begin(Cg *cg, LLVMValueRef c, const char *name);
void cg_if_end(Cg *cg, LLVMBasicBlockRef done);
/* Every lane x (any scalar type); constant vectors of f32 and of integers of type et. */
LLVMValueRef cg_vsplat(const CgVec *v, LLVMValueRef x);
/* A hint that p is read (write = 0) or written soon: llvm.prefetch into every cache level. */
void cg_prefetch(Cg *cg, LLVMValueRef p, int write);
LLVMValueRef cg_vconst(const CgVec *v, double x);
LLVMValueRef cg_viconst(const CgVec *v, LLVMTypeRef et, int64_t x);
/* x * y + z (vectors or scalars); the larger of x and y for inputs that are never NaN (one vmaxps). */
LLVMValueRef cg_vfma(const CgVec *v, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z);
LLVMValueRef cg_vmax(const CgVec *v, LLVMValueRef x, LLVMValueRef y);
/* The sum (reassociated) and the maximum (no NaN) of the lanes. */
LLVMValueRef cg_vhsum(const CgVec *v, LLVMValueRef x);
LLVMValueRef cg_vhmax(const CgVec *v, LLVMValueRef x);
LLVMValueRef cg_vload(const CgVec *v, LLVMValueRef p, unsigned align);
void cg_vstore(const CgVec *v, LLVMValueRef x, LLVMValueRef p, unsigned align);
/* The lanes below n (i64, clamped to [0, vw]) as <vw x i1>. */
LLVMValueRef cg_vlanes_below(const CgVec *v, LLVMValueRef n);
/* Loads and stores of the lanes where m is set (0 elsewhere); lanes of p + idx[lane] floats. */
LLVMValueRef cg_vmasked_load(const CgVec *v, LLVMValueRef p, LLVMValueRef m);
void cg_vmasked_store(const CgVec *v, LLVMValueRef x, LLVMValueRef p, LLVMValueRef m);
LLVMValueRef cg_vgather(const CgVec *v, LLVMValueRef p, LLVMValueRef idx, LLVMValueRef m);
/* e^x without a library call for f32 and vectors of it (about 1 ulp, the whole range); other types
 * use llvm.exp. */
LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x);
/* e^x for x <= 0 lane by lane, cheaper (about 2 ulp; never subnormal: 1.2e-38 below -87.3). */
LLVMValueRef cg_vexp_neg(const CgVec *v, LLVMValueRef x);

/* ---------------------------------------------------------------- fused loops (elementwise.c) */

enum { CG_MAX_LEAVES = 13 }; /* stored values one fused loop reads (fuse-ops keeps to 12) */

/* A stored elementwise node and the inline nodes it computes (Node.inl, set by fuse-ops). */
typedef struct Fused {
    const Node *root;
    const Node *mm;                    /* the inline matmul or qmatmul under root, or NULL */
    int nleaf;
    const Node *leaf[CG_MAX_LEAVES];   /* the stored values the loop reads (not mm's operands) */
} Fused;

/* Fills f for root; returns 1 when root computes inline nodes (then its kernel's operands are the
 * leaves, followed by mm's operands when there is a product), 0 when it reads its inputs only. */
int cg_fused_collect(const Node *root, Fused *f);
/* The kernel of such a root: in = the leaves' buffers, then mm's (in[1] packed when the plan says). */
int cg_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in);
/* void epi(ptr out, ptr leaves, ptr syms, i64 r0, i64 r1, i64 c0, i64 c1): the root's loop over rows
 * [r0, r1) and columns [c0, c1), reading mm's element from out: the epilogue gemm.c calls on each
 * micro-tile. leaves points to the leaves' buffer pointers. With tile, two more parameters, (ptr acc,
 * i64 ldacc): mm's elements are read from a micro-tile at acc instead (qgemm.c). */
LLVMValueRef cg_fused_epilogue(Cg *cg, const Fused *f, int tile);
/* The leaves' buffers leafp[f->nleaf] as the array of pointers an epilogue takes (a stack slot of the
 * function being built; a null pointer when there are none). */
LLVMValueRef cg_fused_leaves(Cg *cg, const Fused *f, LLVMValueRef *leafp);

/* ---------------------------------------------------------------- kernels
 *
 * Each emits the body of a node's function: out is the node's buffer, in[] its inputs' buffers.
 * They return 0, or -1 when the node cannot be lowered (reported). */
int cg_elementwise(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
int cg_movement(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
int cg_source(Cg *cg, const Node *n, LLVMValueRef out);
int cg_reduce(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
int cg_normalise(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
int cg_matmul(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
int cg_conv2d(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
/* attention.c; in[n->nin], after the inputs, is where the attention's cls_probs goes when it has one
 * (cg_attention_cls; NULL at run time: not wanted by this call, nothing written) */
int cg_attention(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
/* The cls_probs node that reads attention n (its second result, which n's kernel writes), or NULL. */
const Node *cg_attention_cls(const Graph *g, const Node *n);
/* attention over int8 k and v with their scales (seven inputs; cg_attention hands it over) (qattention.c) */
int cg_qattention(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
void cg_qattention_explain(Cg *cg, const Node *n, FILE *out);
/* tome_match, pitome_match, token_merge, cls_attn, evit_select: calls of runtime/tokens.c's kernels (merge.c) */
int cg_tokens(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
/* What attention node n's code depends on beyond its type: the strides it reads its operands and
 * writes its result with (Plan.view, Plan.writes_into), printed to f for node function keys. */
void cg_attention_layout(FILE *f, const Cg *cg, const Node *n);
/* Attention node n's tiles and work split, and why (--explain codegen). */
void cg_attention_explain(Cg *cg, const Node *n, FILE *out);

/* ---------------------------------------------------------------- gemm.c */

/* Bytes of the compile-time packed copy of matmul n's right operand, 0 when n's right operand is not
 * a constant f32 matrix (a WEIGHT or CONST, through reshapes and one 2-D transpose). */
int64_t cg_gemm_packed_bytes(Cg *cg, const Node *n);
/* Columns per panel of a packed copy: column j of B (row j of a transposed weight) starts at float
 * (j / NR) * K * NR + j % NR, and its elements are NR floats apart. */
int cg_gemm_panel_width(Cg *cg);
/* The GEMM's register and cache blocking and thread split, and why (--explain codegen). */
void cg_gemm_explain(Cg *cg, FILE *out);
/* Writes that packed copy (cg_gemm_packed_bytes(cg, n) bytes) to dst. */
void cg_gemm_pack(Cg *cg, const Node *n, void *dst);
/* The f32 matmul kernel (in[1] is the packed copy when Plan.packed has one): 0 when emitted, 1 when
 * n is a matmul it does not handle (the caller falls back). */
int cg_gemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
/* The product of f->mm with f's root as its epilogue, applied to each micro-tile after its last block
 * of K: in = f's leaves, then mm's two operands. 0 when emitted, 1 when the product is not one this
 * kernel runs. */
int cg_gemm_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in);

/* ---------------------------------------------------------------- profile.c */

/* A node group of an entry as the profile table describes it (runtime/kiln_rt.h's RtProfGroup). */
typedef struct CgProfGroup {
    char *label;        /* malloc'ed */
    const char *kind;
    int64_t sym;
    double flops[3], bytes[3];
} CgProfGroup;

/* Describes the group of node n (with f: its fused loop) whose kernel reads ops[nops]. */
void cg_profile_group(Cg *cg, const Node *n, const Fused *f, const Node *const *ops, int nops, CgProfGroup *out);
/* Emits the constant table of n groups, a global named `name`; returns it. */
LLVMValueRef cg_profile_table(Cg *cg, const char *name, const CgProfGroup *groups, int n);
/* Emits rt_profile_mark(table, n, k) at the builder (skipped when the runtime is not linked). */
void cg_profile_mark(Cg *cg, LLVMValueRef table, int n, int k);
/* ---------------------------------------------------------------- quant.c, qgemm.c, qwgemm.c */

/* i64 x + y and x * y, and p + off bytes: the index arithmetic the quantized kernels spell often. */
static inline LLVMValueRef cg_add(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildAdd(cg->b, x, y, "");
}
static inline LLVMValueRef cg_mul(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildMul(cg->b, x, y, "");
}
static inline LLVMValueRef cg_gep8(Cg *cg, LLVMValueRef p, LLVMValueRef off)
{
    return LLVMBuildGEP2(cg->b, cg->i8, p, &off, 1, "");
}

/* quantize, dequantize and qmatmul (the VNNI kernel when the plan packed the weights). */
int cg_quant(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
/* ir_quantize1 on f32 values: never NaN. */
LLVMValueRef cg_quantize_f32(Cg *cg, LLVMValueRef x, LLVMValueRef s, LLVMValueRef z, int lo, int hi);
/* Bytes of the compile-time packed copy of a dynamic qmatmul's weights for the VNNI kernel (with its
 * column sums and scales), 0 when the target has no VNNI or the weights or scales are not constant. */
int64_t cg_qgemm_packed_bytes(Cg *cg, const Node *n);
void cg_qgemm_pack(Cg *cg, const Node *n, void *dst);
/* The VNNI kernel (in[1] is the packed copy): 0 when emitted, 1 when n is not one it runs. */
int cg_qgemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);
/* The same with f's root as the epilogue of each micro-tile (f->mm is the qmatmul; in = f's leaves,
 * then its operands): 0 when emitted, 1 when not. */
int cg_qgemm_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in);
/* The int8 GEMM's blocking, or why there is none (--explain codegen). */
void cg_qgemm_explain(Cg *cg, FILE *out);
/* The weight-only kernel (qwgemm.c): the bytes of its packed copy of n's weights, scales and zero
 * points (0 when it does not run n: not x86 with AVX2, weights or scales not constant, an odd group
 * of 4-bit weights), the copy itself, its parameters (--explain codegen), and the product of a by
 * the packed pk into out, with f's root as the epilogue of each tile when f is not NULL (leafp: the
 * leaves' buffers): 0 when emitted, 1 when n is not one it runs. cg_qgemm's functions call these. */
int64_t cg_qwgemm_packed_bytes(Cg *cg, const Node *n);
void cg_qwgemm_pack(Cg *cg, const Node *n, void *dst);
void cg_qwgemm_explain(Cg *cg, FILE *out);
int cg_qwgemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef a, LLVMValueRef pk, const Fused *f,
              LLVMValueRef *leafp);
/* The dynamic int8 kernel for AVX2 targets without AVX-512 VNNI (qgemm_avx2.c): the bytes of its
 * packed copy of n's weights (0 when it does not run n), the copy, and the product as cg_qwgemm's
 * (0 when emitted, 1 when not); its explain line (1 when it is the target's int8 GEMM and printed
 * it). cg_qgemm's functions call these first. */
int64_t cg_qgemm_avx2_packed_bytes(Cg *cg, const Node *n);
void cg_qgemm_avx2_pack(Cg *cg, const Node *n, void *dst);
int cg_qgemm_avx2_explain(Cg *cg, FILE *out);
int cg_qgemm_avx2(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef a, LLVMValueRef pk, const Fused *f,
                  LLVMValueRef *leafp);
/* A root whose tree holds an inline qmatmul: the VNNI kernel with the epilogue per micro-tile, else
 * the portable qmatmul into out and then the root's loop over it. */
int cg_quant_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in);

/* ---------------------------------------------------------------- artifact.c */

typedef enum Emit {
    EMIT_EXE, EMIT_LIB, EMIT_SHARED, EMIT_OBJ, EMIT_LLVM, EMIT_ASM, EMIT_IR, EMIT_DOT, EMIT_SVG
} Emit;

/* Writes the C header of a library build: typed open/run/close and the raw entry; amx: the code uses
 * AMX tiles (NAME_NEEDS_AMX, for callers of the raw entry). */
int cg_write_header(const Graph *g, const Plan *p, const char *prefix, int amx, const char *path, Diag *d);
/* Writes a Graphviz description of the graph. */
int cg_write_dot(const Graph *g, const char *path, Diag *d);
/* Writes the external weights file (RtWeightsHeader + blob). */
int cg_write_weights(const Plan *p, const char *path, Diag *d);
/* Links object + runtime into an executable, a static library or a shared library with the
 * system's C compiler driver and ar. */
int cg_link(Emit kind, const char *obj, const char *out, Diag *d);

#endif
