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
 *   qgemm.c       the dynamic int8 qmatmul with AVX-512 VNNI: packed weights, exact i32 sums
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
} Cg;

/* What the kernels need to know of the target: the widest float vector (floats), fused multiply-add,
 * the architecture, and the L1 data and L2 cache sizes (the host's, from sysconf, when compiling for
 * the host; 32 KiB and 1 MiB otherwise). Read from the feature list first, then from what a CPU named
 * with --cpu implies. */
typedef struct CgTarget {
    int vw;     /* 16 with AVX-512, 8 with AVX2, 4 with SSE, NEON and elsewhere */
    int fma;
    int x86, arm;
    int vnni;   /* AVX-512 VNNI (vpdpbusd on 512-bit vectors) */
    long l1, l2;
} CgTarget;
CgTarget cg_target(const Cg *cg);

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
/* e^x without a library call for f32 (vectorisable, about 1 ulp); other types use llvm.exp. */
LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x);
/* tanh and erf likewise: polynomial code for f32 (a few ulp), the C library for other types. */
LLVMValueRef cg_tanh(Cg *cg, LLVMValueRef x);
LLVMValueRef cg_erf(Cg *cg, LLVMValueRef x);
/* Calls a C library function float f(float) or double f(double). */
LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x);

/* A stack slot in the entry block of the function being built (promoted to a register by LLVM). */
LLVMValueRef cg_alloca(Cg *cg, LLVMTypeRef t, const char *name);
/* A function of the runtime (rt_parallel_for, rt_pool_size), declared once per module and referenced
 * weakly: a process that runs the code without the runtime's pool (a JIT in a program that does not
 * export it) sees a null address, which gemm.c and attention.c test to run serially. Any program
 * that made a pool has linked pool.c. */
LLVMValueRef cg_runtime_function(Cg *cg, const char *name, LLVMTypeRef fty);
/* Runs body over [0, n) split across the runtime's threads (rt_parallel_for on cg->pool). body is
 * emitted into a separate function: it sees the captured values cap[ncap] (re-loaded there: values of
 * the calling function are not visible in it) and cg->syms, and emits the work for [begin, end). */
typedef void (*CgRange)(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end);
void cg_parallel_for(Cg *cg, LLVMValueRef n, int ncap, LLVMValueRef *cap, CgRange body, void *ctx, const char *name);
/* The same, on the calling thread alone when work (elements touched, say) is under CG_PARALLEL_WORK,
 * where waking the pool would cost more than it saves. */
enum { CG_PARALLEL_WORK = 1 << 15 };
void cg_parallel_work(Cg *cg, LLVMValueRef n, LLVMValueRef work, int ncap, LLVMValueRef *cap, CgRange body, void *ctx,
                      const char *name);
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

/* ---------------------------------------------------------------- fused loops (elementwise.c) */

enum { CG_MAX_LEAVES = 13 }; /* stored values one fused loop reads (fuse-ops keeps to 12) */

/* A stored elementwise node and the inline nodes it computes (Node.inl, set by fuse-ops). */
typedef struct Fused {
    const Node *root;
    const Node *mm;                    /* the inline matmul under root, or NULL */
    int nleaf;
    const Node *leaf[CG_MAX_LEAVES];   /* the stored values the loop reads (not mm's operands) */
} Fused;

/* Fills f for root; returns 1 when root computes inline nodes (then its kernel's operands are the
 * leaves, followed by mm's two operands when there is a matmul), 0 when it reads its inputs only. */
int cg_fused_collect(const Node *root, Fused *f);
/* The kernel of such a root: in = the leaves' buffers, then mm's (in[1] packed when the plan says). */
int cg_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in);
/* void epi(ptr out, ptr leaves, ptr syms, i64 r0, i64 r1, i64 c0, i64 c1): the root's loop over rows
 * [r0, r1) and columns [c0, c1), reading mm's element from out: the epilogue gemm.c calls on each
 * micro-tile. leaves points to the leaves' buffer pointers. */
LLVMValueRef cg_fused_epilogue(Cg *cg, const Fused *f);

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
int cg_attention(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in); /* attention.c */
/* tome_match, pitome_match, token_merge, cls_attn, evit_select: calls of runtime/tokens.c's kernels (merge.c) */
int cg_tokens(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in);

/* ---------------------------------------------------------------- gemm.c */

/* Bytes of the compile-time packed copy of matmul n's right operand, 0 when n's right operand is not
 * a constant f32 matrix (a WEIGHT or CONST, through reshapes and one 2-D transpose). */
int64_t cg_gemm_packed_bytes(Cg *cg, const Node *n);
/* Columns per panel of a packed copy: column j of B (row j of a transposed weight) starts at float
 * (j / NR) * K * NR + j % NR, and its elements are NR floats apart. */
int cg_gemm_panel_width(Cg *cg);
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
/* ---------------------------------------------------------------- quant.c, qgemm.c */

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

/* ---------------------------------------------------------------- artifact.c */

typedef enum Emit {
    EMIT_EXE, EMIT_LIB, EMIT_SHARED, EMIT_OBJ, EMIT_LLVM, EMIT_ASM, EMIT_IR, EMIT_DOT, EMIT_SVG
} Emit;

/* Writes the C header of a library build: typed open/run/close and the raw entry. */
int cg_write_header(const Graph *g, const Plan *p, const char *prefix, const char *path, Diag *d);
/* Writes a Graphviz description of the graph. */
int cg_write_dot(const Graph *g, const char *path, Diag *d);
/* Writes the external weights file (RtWeightsHeader + blob). */
int cg_write_weights(const Plan *p, const char *path, Diag *d);
/* Links object + runtime into an executable, a static library or a shared library with the
 * system's C compiler driver and ar. */
int cg_link(Emit kind, const char *obj, const char *out, Diag *d);

#endif
