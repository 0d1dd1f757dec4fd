/* gemm.c: f32 matrix multiplication at speed.
 *
 * C = A @ B with A [M, K], B [K, N] and C [M, N], row-major, computed by a register-blocked
 * micro-kernel emitted as LLVM vector IR (vector loads, broadcasts, llvm.fma; the unrolling written
 * out here, not left to LLVM's vectoriser): an MR x NR block of C (NR = NV vectors of VW floats) stays
 * in MR*NV vector registers over a block of K, and each step of k loads NV vectors of B, broadcasts MR
 * elements of A and issues MR*NV fused multiply-adds. The shape comes from the target's features:
 * 12 x 32 with AVX-512 (24 accumulators of 32 registers), 6 x 16 with AVX2 and FMA (12 of 16),
 * 6 x 16 with NEON, 6 x 8 on SSE and 4 x 8 elsewhere. With fewer than 8 accumulators (M = 1 or 2, as
 * in decoding) consecutive steps of k go to 2 or 4 sets of accumulators, summed at the end, so that
 * the latency of the FMA does not bound the loop.
 *
 * Layout.
 *   B, when it is a constant matrix (a WEIGHT or CONST, through reshapes and at most one transpose,
 *   which is nn.Linear's layout), is packed at compile time into panels of NR columns, each K x NR
 *   contiguous, the last one padded with zeros. The plan puts the panels in the weights blob and the
 *   entry passes them in place of the operand, so the transpose (or weight) that only fed the
 *   packing computes and stores nothing. An activation B (attention's products) is read where it is,
 *   NR columns of one row per step of k, with masked loads at the right edge.
 *   A is copied one micro-panel (MR rows x KC) at a time into a buffer on the tile function's stack
 *   whose rows are KC+16 floats apart, by a loop of vector loads and stores per row (the function
 *   is marked no-builtins so LLVM does not turn it back into a call to memcpy, which cost 1-2% more
 *   of ViT-B/16's time on these short rows). It lets the micro-kernel
 *   address A at constant offsets from one pointer, and rows of A a multiple of 4 KiB apart
 *   (K = 1024, 3072), which would share one set of L1, no longer do. An activation B is not packed:
 *   attention's products reach oneDNN's speed reading it in place.
 *   The micro-kernel prefetches B 4 KiB ahead of the step of k it is at (KILN_GEMM pf=steps; 0
 *   turns it off): on Zen 4 this gained nothing measurable, on Zen 5, whose FMAs consume B twice as
 *   fast, it made the products whose weights come from L3 (ViT-B/16's N = 2304 and 3072, K = 3072)
 *   3-5% faster and left those whose operands stay in L2 as they were. Prefetching C before it is
 *   stored, and the next micro-panel of A, still gained nothing there.
 *
 * Blocking. K is cut into blocks of at most KC (equal ones, rounded up to 16) so that the A
 * micro-panel fills at most half of L1. Within a block of K the loop over panels of B is innermost:
 * the A micro-panel is reused from L1 by every panel, while the K-block of B (KC x NC, NC at most half
 * of L2 over KC) is reused from L2 by every micro-panel of A. C is loaded and stored once per block
 * of K. KC and NC come from the host's cache sizes (sysconf) when compiling for the host, from 32 KiB
 * of L1 and 1 MiB of L2 otherwise; the environment variable KILN_GEMM ("kc=256,nc=384,mc=96,mr=8,
 * nv=2") overrides them at compile time (mr and nv change the packed layout too).
 *
 * Threads. The work is cut into tiles: per batch, n-blocks of NCP panels times m-blocks of MCB rows
 * (MC at most), ordered batch, n-block, m-block. The tile loop is a body of cg_parallel's CG_RANGES,
 * which gives each thread one contiguous range of tiles; the m-blocks of
 * one n-block that fall in a range are done as one block of rows, so that each K-block of B goes
 * through L2 once per range. The number of n-blocks is a multiple of the pool's size when N allows,
 * so that threads get equal shares of B: with M = 1 each streams its own part of the weights.
 * A product of one batch with at least ROW_SPLIT rows per thread (KILN_GEMM rows=R; 0: never) and a B
 * of at most 16 MiB (ROW_SPLIT_B) is split by rows instead: the tiles are ordered batch, row group,
 * n-block, m-block, with one group of M / threads rows per thread (its m-blocks not rounded to
 * micro-tiles, so the groups are even and a group's last micro-tile is shorter) and nc-wide n-blocks,
 * as on one thread. Each thread then reads and writes the rows that the loops before and after it
 * (layernorm, the residual adds, which split rows in equal ranges) touch on the same core, and packs
 * its A once per n-block rather than once per NC / 4 columns; it reads all of B, from the L3 (a larger
 * B, GPT-2's 154 MB LM head, comes from memory, where the split by columns keeps each thread to its
 * half). On ViT-B/16 at two threads on Zen 4 this took the calling thread's CPU time in the products
 * from 1.90 to 1.84 s over 10 runs and made the layernorms (0.09 ms on one thread, 0.14 ms on two)
 * 0.075 ms (--profile).
 * Products of fewer than 2^17 multiply-adds stay on the calling thread, where a dispatch would cost
 * more than it saves (cg_parallel, parallel.c, does the dispatch).
 *
 * Batched products ([H, T, d] @ [H, d, T]) use the same tiles with a batch index; the offsets of a
 * batch in A, B and C come from per-dimension strides, 0 where a batch dimension broadcasts.
 *
 * What falls back to matmul.c's plain kernel: any dtype but f32 for both inputs and the output, a
 * one-dimensional B (matrix-vector), and a one-dimensional A against a batched B.
 */
#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

typedef struct GemmCfg {
    int vw;  /* floats per vector register */
    int nv;  /* vectors per row of the micro-tile: NR = nv * vw columns */
    int mr;  /* rows of the micro-tile */
    int fma; /* the target has fused multiply-add: llvm.fma, else llvm.fmuladd */
    int kc;  /* most k per block of K: the A micro-panel (mr x kc floats) fills half of L1 */
    int nc;  /* most columns per tile: a K-block of B (kc x nc floats) fills half of L2 */
    int mc;  /* most rows per m-block, the unit of work a thread takes (a multiple of mr) */
    int pf;  /* steps of k ahead that the micro-kernel prefetches B (0: none) */
    int rows; /* rows per thread from which a product of one batch is split by rows (0: never) */
} GemmCfg;

enum {
    UNROLL = 4,               /* steps of k per iteration of the micro-kernel's loop */
    APAD = 16,                /* floats between rows of the packed A micro-panel beyond kc */
    NBATCH = IR_MAX_RANK - 2, /* batch dimensions of a product, at most */
    SERIAL_WORK = 1 << 17,    /* multiply-adds under which a product stays on the calling thread */
    ROW_SPLIT = 64,           /* rows per thread from which a product of one batch is split by rows */
    ROW_SPLIT_B = 4 << 20,    /* floats of B at most for that: every thread reads all of B, from the L3 */
};

/* The context a node's function hands the tile function: a, b, c, then these i64 fields. */
enum {
    CX_M,
    CX_N,
    CX_K,
    CX_LDA,    /* floats between rows of A */
    CX_LDB,    /* floats between consecutive k in a panel of B */
    CX_BPANEL, /* floats between panels of B */
    CX_LDC,    /* floats between rows of C */
    CX_MCB,    /* rows per m-block (a multiple of mr) */
    CX_NCP,    /* panels per n-block */
    CX_TM,     /* m-blocks per batch */
    CX_TN,     /* n-blocks per batch */
    CX_TMG,    /* m-blocks per row group (CX_TM when the rows are not split) */
    CX_BDIM,   /* batch dimensions, right-aligned, 1 where unused */
    CX_ASTR = CX_BDIM + NBATCH, /* floats per step of each batch dimension in A (0: broadcast) */
    CX_BSTR = CX_ASTR + NBATCH, /* ... in B */
    CX_CSTR = CX_BSTR + NBATCH, /* ... in C */
    CX_COUNT = CX_CSTR + NBATCH,
};

/* ---------------------------------------------------------------- the target */

static GemmCfg gemm_config(const Cg *cg)
{
    CgTarget t = cg_target(cg);
    /* Three quarters of the vector registers accumulate (24 of AVX-512's or NEON's 32, 12 of 16 with
     * AVX2 or SSE); the rest hold the nv vectors of B, the broadcast of A and what the compiler
     * needs around them. NR = 2 vectors on x86 (one load port's worth per FMA pair), 4 of NEON's
     * narrow ones, so that a row of the micro-tile is 16 or 32 floats. */
    GemmCfg k = {.vw = t.vw, .nv = t.arm ? 4 : 2, .fma = t.fma, .pf = -1, .rows = -1};
    k.mr = t.regs * 3 / 4 / k.nv;
    long l1 = t.l1, l2 = t.l2;
    const char *env = getenv("KILN_GEMM");
    for (const char *p = env; p && *p;) {
        char key[8] = {0};
        int n = 0;
        long v = 0;
        if (sscanf(p, "%7[a-z]=%ld%n", key, &v, &n) == 2 && (v > 0 || !strcmp(key, "pf") || !strcmp(key, "rows"))) {
            if (!strcmp(key, "mr") && v <= 16)
                k.mr = (int)v;
            else if (!strcmp(key, "nv") && v <= 8)
                k.nv = (int)v;
            else if (!strcmp(key, "kc") && v <= 4096)
                k.kc = ((int)v + 15) & ~15;
            else if (!strcmp(key, "nc"))
                k.nc = (int)v;
            else if (!strcmp(key, "mc"))
                k.mc = (int)v;
            else if (!strcmp(key, "pf") && v <= 4096)
                k.pf = (int)v;
            else if (!strcmp(key, "rows") && v <= 1 << 20)
                k.rows = (int)v;
        }
        const char *c = strchr(p, ',');
        p = c ? c + 1 : NULL;
    }
    int nr = k.vw * k.nv;
    if (!k.kc) {
        k.kc = (int)(l1 / 2 / (k.mr * 4)) & ~15;
        k.kc = k.kc < 64 ? 64 : k.kc > 1024 ? 1024 : k.kc;
    }
    if (!k.nc)
        k.nc = (int)(l2 / 2 / (k.kc * 4));
    k.nc = k.nc < nr ? nr : k.nc / nr * nr;
    if (!k.mc)
        k.mc = 8 * k.mr;
    if (k.pf < 0)
        k.pf = 4096 / (nr * 4); /* 4 KiB of packed B ahead: 32 steps of k at NR = 32 */
    k.mc = k.mc < k.mr ? k.mr : (k.mc + k.mr - 1) / k.mr * k.mr;
    if (k.rows < 0)
        k.rows = ROW_SPLIT;
    return k;
}

void cg_gemm_explain(Cg *cg, FILE *out)
{
    CgTarget t = cg_target(cg);
    GemmCfg k = gemm_config(cg);
    int nr = k.vw * k.nv;
    const char *env = getenv("KILN_GEMM");
    fprintf(out, "codegen: GEMM micro-tile %d x %d (%d rows, %d vectors of %d floats): %d accumulators, 3/4 of the %d "
                 "vector registers, the rest for B's vectors and A's broadcast\n",
            k.mr, nr, k.mr, k.nv, k.vw, k.mr * k.nv, t.regs);
    fprintf(out, "codegen: GEMM KC %d (the A micro-panel, %d x %d floats, fills half of L1), NC %d (a K-block of B, "
                 "%d x %d floats, fills half of L2), MC %d (%d micro-tiles a unit of rows), B prefetched %d steps "
                 "of k ahead%s%s\n",
            k.kc, k.mr, k.kc, k.nc, k.kc, k.nc, k.mc, k.mc / k.mr, k.pf, env ? "; KILN_GEMM=" : "", env ? env : "");
    fprintf(out, "codegen: GEMM threads: n-blocks a multiple of the threads when N allows (each thread streams its own "
                 "share of the weights), at most %d columns on several threads (NC / 4: steadier on two threads), "
                 "ranges of tiles per thread; ",
            k.nc / nr / 4 > 0 ? k.nc / nr / 4 * nr : nr);
    if (k.rows > 0)
        fprintf(out, "products of one batch with at least %d rows per thread and at most %d MiB of B split by rows "
                     "instead (each thread its own rows of A and C, as the loops before and after split them, and all "
                     "of B); ",
                k.rows, ROW_SPLIT_B * 4 >> 20);
    fprintf(out, "under %d multiply-adds on the calling thread\n", SERIAL_WORK);
}

/* ---------------------------------------------------------------- which matmuls */

int64_t cg_gemm_packed_bytes(Cg *cg, const Node *n)
{
    int trans;
    if (!ir_packed_rhs(n, &trans))
        return 0;
    GemmCfg k = gemm_config(cg);
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), nr = k.vw * k.nv;
    return (N + nr - 1) / nr * K * nr * (int64_t)sizeof(float);
}

int cg_gemm_panel_width(Cg *cg)
{
    GemmCfg k = gemm_config(cg);
    return k.vw * k.nv;
}

void cg_gemm_pack(Cg *cg, const Node *n, void *dst)
{
    int trans;
    const Node *src = ir_packed_rhs(n, &trans);
    KILN_ASSERT(src);
    GemmCfg k = gemm_config(cg);
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), nr = k.vw * k.nv;
    const void *w = src->at.data;
    DType wt = src->dtype;
    float *out = dst;
    for (int64_t p = 0; p < (N + nr - 1) / nr; p++) {
        float *panel = out + p * K * nr;
        for (int64_t j = 0; j < nr; j++) {
            int64_t col = p * nr + j;
            /* one column of B at a time: contiguous reads of the [N, K] layout */
            for (int64_t kk = 0; kk < K; kk++) {
                size_t at = (size_t)(trans ? col * K + kk : kk * N + col);
                panel[kk * nr + j] = col >= N ? 0.0f : wt == DT_F32 ? ((const float *)w)[at] : (float)dtype_load(wt, w, at);
            }
        }
    }
}

/* ---------------------------------------------------------------- IR helpers */

static LLVMValueRef i64c(Cg *cg, int64_t v)
{
    return cg_i64(cg, v);
}

static LLVMValueRef add(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildAdd(cg->b, x, y, "");
}

static LLVMValueRef mul(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildMul(cg->b, x, y, "");
}

static LLVMValueRef load_aligned(Cg *cg, LLVMTypeRef t, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->b, t, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void set_attr(Cg *cg, LLVMValueRef f, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    KILN_ASSERT(kind);
    LLVMAddAttributeAtIndex(f, idx, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

static void set_str_attr(Cg *cg, LLVMValueRef f, const char *key, const char *val)
{
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(cg->ctx, key, (unsigned)strlen(key), val, (unsigned)strlen(val)));
}

/* An internal function of the module, with the builder moved into its entry block. The caller
 * restores the builder with end_function. */
typedef struct Saved {
    LLVMBasicBlockRef block;
    LLVMValueRef fn;
} Saved;

static LLVMValueRef begin_function(Cg *cg, const GemmCfg *k, const char *name, LLVMTypeRef fty, Saved *s)
{
    s->block = LLVMGetInsertBlock(cg->b);
    s->fn = cg->fn;
    LLVMValueRef f = LLVMAddFunction(cg->mod, name, fty);
    LLVMSetLinkage(f, LLVMInternalLinkage);
    set_attr(cg, f, LLVMAttributeFunctionIndex, "nounwind");
    cg_vector_width_attr(cg, f, k->vw);
    /* the copy loops of the A micro-panel stay loops, not calls to memcpy */
    set_str_attr(cg, f, "no-builtins", "");
    cg->fn = f;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    return f;
}

static void end_function(Cg *cg, const Saved *s)
{
    cg->fn = s->fn;
    if (s->block)
        LLVMPositionBuilderAtEnd(cg->b, s->block);
}

/* ---------------------------------------------------------------- the micro-kernel
 *
 * void ukr<mr>[_edge](ptr a, ptr b, i64 ldb, ptr c, i64 ldc, i64 kc, i64 first, i64 nrem)
 *   C[0:mr, 0:NR] (+)= A[0:mr, 0:kc] @ B[0:kc, 0:NR]
 * a: the packed micro-panel, rows KC+APAD floats apart; b: NR floats per k, ldb apart; c: ldc floats
 * per row; first: C is overwritten, else accumulated into. The _edge variant touches only the first
 * nrem columns (masked loads of B and C, masked stores of C). */

typedef struct Ukr {
    Cg *cg;
    const GemmCfg *k;
    int mr, sets, edge;
    CgVec V;
    LLVMTypeRef vt; /* V.vt */
    LLVMValueRef a, b, ldb, c, ldc;
    LLVMValueRef mask[8];
    LLVMValueRef acc[4 * 16 * 8]; /* [set][row][vector] allocas */
} Ukr;

static LLVMValueRef *acc_slot(Ukr *u, int s, int r, int v)
{
    return &u->acc[(s * u->mr + r) * u->k->nv + v];
}

/* Vector v of a row of B or C: masked in the _edge variant. */
static LLVMValueRef ukr_load(Ukr *u, LLVMValueRef p, int v)
{
    return u->edge ? cg_vmasked_load(&u->V, p, u->mask[v]) : cg_vload(&u->V, p, 4);
}

static void ukr_store(Ukr *u, LLVMValueRef x, LLVMValueRef p, int v)
{
    if (u->edge)
        cg_vmasked_store(&u->V, x, p, u->mask[v]);
    else
        cg_vstore(&u->V, x, p, 4);
}

/* One step of k into accumulator set s. */
static void ukr_step(Ukr *u, LLVMValueRef kk, int s, int lda)
{
    Cg *cg = u->cg;
    const GemmCfg *k = u->k;
    LLVMValueRef bv[8];
    LLVMValueRef brow = mul(cg, kk, u->ldb);
    for (int v = 0; v < k->nv; v++)
        bv[v] = ukr_load(u, cg_fptr(cg, u->b, add(cg, brow, i64c(cg, v * k->vw))), v);
    for (int r = 0; r < u->mr; r++) {
        LLVMValueRef x = load_aligned(cg, cg->f32, cg_fptr(cg, u->a, add(cg, kk, i64c(cg, (int64_t)r * lda))), 4);
        LLVMValueRef bc = cg_vsplat(&u->V, x);
        for (int v = 0; v < k->nv; v++) {
            LLVMValueRef slot = *acc_slot(u, s, r, v);
            LLVMBuildStore(cg->b, cg_vfma(&u->V, bc, bv[v], LLVMBuildLoad2(cg->b, u->vt, slot, "")), slot);
        }
    }
}

static LLVMValueRef ukr_function(Cg *cg, const GemmCfg *k, int mr, int edge)
{
    char name[64];
    snprintf(name, sizeof name, "kiln_gemm_ukr%d%s", mr, edge ? "_edge" : "");
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (f)
        return f;
    LLVMTypeRef params[8] = {cg->ptr, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64};
    Saved saved;
    f = begin_function(cg, k, name, LLVMFunctionType(cg->void_, params, 8, 0), &saved);
    /* called from one place each: kept out of line so that the tile loop stays small */
    set_attr(cg, f, LLVMAttributeFunctionIndex, "noinline");
    /* a (the stack buffer), b and c never overlap: attribute indices are parameter numbers + 1 */
    set_attr(cg, f, 1, "noalias");
    set_attr(cg, f, 2, "noalias");
    set_attr(cg, f, 4, "noalias");
    Ukr u = {.cg = cg, .k = k, .mr = mr, .edge = edge, .V = cg_vec(cg, k->vw, k->fma)};
    u.vt = u.V.vt;
    u.a = LLVMGetParam(f, 0);
    u.b = LLVMGetParam(f, 1);
    u.ldb = LLVMGetParam(f, 2);
    u.c = LLVMGetParam(f, 3);
    u.ldc = LLVMGetParam(f, 4);
    LLVMValueRef kc = LLVMGetParam(f, 5), first = LLVMGetParam(f, 6), nrem = LLVMGetParam(f, 7);
    int lda = k->kc + APAD;
    u.sets = 1;
    while (u.sets < UNROLL && u.sets * mr * k->nv < 8)
        u.sets *= 2;
    for (int i = 0; i < u.sets * mr * k->nv; i++)
        u.acc[i] = cg_alloca(cg, u.vt, "acc");
    if (edge) {
        LLVMValueRef lanes[16];
        LLVMTypeRef it = LLVMVectorType(cg->i64, (unsigned)k->vw);
        LLVMValueRef one = LLVMBuildInsertElement(cg->b, LLVMGetPoison(it), nrem, LLVMConstInt(cg->i32, 0, 0), "");
        LLVMValueRef lim = LLVMBuildShuffleVector(cg->b, one, LLVMGetPoison(it),
                                                  LLVMConstNull(LLVMVectorType(cg->i32, (unsigned)k->vw)), "");
        for (int v = 0; v < k->nv; v++) {
            for (int j = 0; j < k->vw; j++)
                lanes[j] = i64c(cg, v * k->vw + j);
            u.mask[v] = LLVMBuildICmp(cg->b, LLVMIntSLT, LLVMConstVector(lanes, (unsigned)k->vw), lim, "");
        }
    }
    /* accumulators: zero, or C's values when accumulating over a second block of K */
    LLVMBasicBlockRef zb = LLVMAppendBasicBlockInContext(cg->ctx, f, "zero");
    LLVMBasicBlockRef lb = LLVMAppendBasicBlockInContext(cg->ctx, f, "load");
    LLVMBasicBlockRef mb = LLVMAppendBasicBlockInContext(cg->ctx, f, "main");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntNE, first, i64c(cg, 0), ""), zb, lb);
    LLVMPositionBuilderAtEnd(cg->b, zb);
    for (int i = 0; i < u.sets * mr * k->nv; i++)
        LLVMBuildStore(cg->b, LLVMConstNull(u.vt), u.acc[i]);
    LLVMBuildBr(cg->b, mb);
    LLVMPositionBuilderAtEnd(cg->b, lb);
    for (int i = 0; i < u.sets * mr * k->nv; i++)
        LLVMBuildStore(cg->b, LLVMConstNull(u.vt), u.acc[i]);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < k->nv; v++) {
            LLVMValueRef p = cg_fptr(cg, u.c, add(cg, mul(cg, i64c(cg, r), u.ldc), i64c(cg, v * k->vw)));
            LLVMBuildStore(cg->b, ukr_load(&u, p, v), *acc_slot(&u, 0, r, v));
        }
    LLVMBuildBr(cg->b, mb);
    LLVMPositionBuilderAtEnd(cg->b, mb);
    /* UNROLL steps per iteration, then one at a time */
    Loop l4 = cg_loop_begin(cg, i64c(cg, 0), LLVMBuildSub(cg->b, kc, i64c(cg, UNROLL - 1), ""), "k4");
    /* B streams from L2 or beyond (only A's micro-panel stays in L1): ask for it pf steps of k
     * ahead, which the hardware's prefetchers alone did not do on Zen 5 (3-5% on ViT-B/16's shapes) */
    if (k->pf)
        for (int s = 0; s < UNROLL; s++)
            for (int v = 0; v < k->nv; v++)
                cg_prefetch(cg, cg_fptr(cg, u.b, add(cg, mul(cg, add(cg, l4.iv, i64c(cg, s + k->pf)), u.ldb),
                                                       i64c(cg, v * k->vw))), 0);
    for (int s = 0; s < UNROLL; s++)
        ukr_step(&u, add(cg, l4.iv, i64c(cg, s)), s % u.sets, lda);
    cg_loop_end_step(cg, &l4, add(cg, l4.iv, i64c(cg, UNROLL)));
    Loop l1 = cg_loop_begin(cg, l4.phi, kc, "k1");
    ukr_step(&u, l1.iv, 0, lda);
    cg_loop_end(cg, &l1);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < k->nv; v++) {
            LLVMValueRef sum = LLVMBuildLoad2(cg->b, u.vt, *acc_slot(&u, 0, r, v), "");
            for (int s = 1; s < u.sets; s++)
                sum = LLVMBuildFAdd(cg->b, sum, LLVMBuildLoad2(cg->b, u.vt, *acc_slot(&u, s, r, v), ""), "");
            LLVMValueRef p = cg_fptr(cg, u.c, add(cg, mul(cg, i64c(cg, r), u.ldc), i64c(cg, v * k->vw)));
            ukr_store(&u, sum, p, v);
        }
    LLVMBuildRetVoid(cg->b);
    end_function(cg, &saved);
    return f;
}

/* ---------------------------------------------------------------- the tile loop */

/* What the tile loop's body is emitted for. */
typedef struct Tiles {
    const GemmCfg *k;
    uint64_t variants; /* bit (mr-1)*2+edge for each micro-kernel the shapes may need (variants()) */
    const Fused *fused;
} Tiles;

/* The tiles [begin, end) of a product, the body of cg_parallel's CG_RANGES, in a function named
 * kiln_gemm_tiles_<variants> shared by every product (with static sizes only a few micro-kernels are
 * needed, which keeps the module small); cap = {a, b, c, the epilogue's leaves (ptr to their
 * pointers), the i64 fields [CX_COUNT]}. With an epilogue (cg_fused_epilogue) the function is the
 * node's own: each micro-tile, once its last block of K is stored, goes through the epilogue while
 * it is in L1. */
static void tiles_body(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Tiles *tl = ctx;
    const GemmCfg *k = tl->k;
    const Fused *fused = tl->fused;
    LLVMValueRef f = cg->fn;
    /* the copy loops of the A micro-panel stay loops, not calls to memcpy */
    set_str_attr(cg, f, "no-builtins", "");
    LLVMValueRef x[CX_COUNT], a = cap[0], b = cap[1], c = cap[2];
    for (int i = 0; i < CX_COUNT; i++)
        x[i] = LLVMBuildLoad2(cg->b, cg->i64, LLVMBuildGEP2(cg->b, cg->i64, cap[4], (LLVMValueRef[]){i64c(cg, i)}, 1, ""), "");
    LLVMValueRef epi = fused ? cg_fused_epilogue(cg, fused, 0) : NULL, eleaves = cap[3], esyms = cg->syms;
    uint64_t variants = tl->variants;
    int nr = k->vw * k->nv, lda_p = k->kc + APAD;
    LLVMValueRef abuf = cg_alloca(cg, LLVMArrayType2(cg->f32, (uint64_t)k->mr * lda_p), "apanel");
    LLVMSetAlignment(abuf, 64);
    LLVMValueRef M = x[CX_M], N = x[CX_N], K = x[CX_K];
    LLVMValueRef np = cg_ceil_div(cg, N, i64c(cg, nr));
    LLVMValueRef per = mul(cg, x[CX_TM], x[CX_TN]);
    /* blocks of K of equal depth (rounded up to 16), at most kc */
    LLVMValueRef kblocks = cg_smax(cg, cg_ceil_div(cg, K, i64c(cg, k->kc)), i64c(cg, 1));
    LLVMValueRef kcb = LLVMBuildAnd(cg->b, add(cg, cg_ceil_div(cg, K, kblocks), i64c(cg, 15)), i64c(cg, ~(int64_t)15), "");

    /* Consecutive tiles of one batch and n-block (a run of m-blocks) are done as one block of rows:
     * then every block of K of B is loaded into L2 once per run, not once per m-block. */
    Loop lt = cg_loop_begin(cg, begin, end, "tile");
    LLVMValueRef tmg = x[CX_TMG];
    LLVMValueRef run_end = cg_smin(cg, end, mul(cg, add(cg, LLVMBuildSDiv(cg->b, lt.iv, tmg, ""), i64c(cg, 1)), tmg));
    LLVMValueRef bi = LLVMBuildSDiv(cg->b, lt.iv, per, "");
    LLVMValueRef rem = LLVMBuildSub(cg->b, lt.iv, mul(cg, bi, per), "");
    /* tiles in the order batch, row group, n-block, m-block of the group */
    LLVMValueRef gsz = mul(cg, x[CX_TN], tmg);
    LLVMValueRef grp = LLVMBuildSDiv(cg->b, rem, gsz, "");
    LLVMValueRef r2 = LLVMBuildSub(cg->b, rem, mul(cg, grp, gsz), "");
    LLVMValueRef nb = LLVMBuildSDiv(cg->b, r2, tmg, "");
    LLVMValueRef mb = add(cg, mul(cg, grp, tmg), LLVMBuildSub(cg->b, r2, mul(cg, nb, tmg), ""));
    /* the batch's offsets: its index in each batch dimension, last dimension fastest */
    LLVMValueRef ao = i64c(cg, 0), bo = i64c(cg, 0), co = i64c(cg, 0), q = bi;
    for (int d = NBATCH - 1; d >= 0; d--) {
        LLVMValueRef dim = x[CX_BDIM + d];
        LLVMValueRef id = LLVMBuildSRem(cg->b, q, dim, "");
        q = LLVMBuildSDiv(cg->b, q, dim, "");
        ao = add(cg, ao, mul(cg, id, x[CX_ASTR + d]));
        bo = add(cg, bo, mul(cg, id, x[CX_BSTR + d]));
        co = add(cg, co, mul(cg, id, x[CX_CSTR + d]));
    }
    LLVMValueRef at = cg_fptr(cg, a, ao), bt = cg_fptr(cg, b, bo), ct = cg_fptr(cg, c, co);
    LLVMValueRef i0 = mul(cg, mb, x[CX_MCB]);
    LLVMValueRef i1 = cg_smin(cg, M, add(cg, i0, mul(cg, LLVMBuildSub(cg->b, run_end, lt.iv, ""), x[CX_MCB])));
    LLVMValueRef p0 = mul(cg, nb, x[CX_NCP]), p1 = cg_smin(cg, np, add(cg, p0, x[CX_NCP]));

    /* blocks of K: at least one, so that K = 0 still writes zeros (kc = 0, first = 1) */
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->b);
    LLVMBasicBlockRef kb = LLVMAppendBasicBlockInContext(cg->ctx, f, "kblock");
    LLVMBuildBr(cg->b, kb);
    LLVMPositionBuilderAtEnd(cg->b, kb);
    LLVMValueRef kbi = LLVMBuildPhi(cg->b, cg->i64, "kbi");
    LLVMValueRef zero = i64c(cg, 0);
    LLVMAddIncoming(kbi, &zero, &pre, 1);
    LLVMValueRef nkb = cg_smax(cg, cg_ceil_div(cg, K, cg_smax(cg, kcb, i64c(cg, 1))), i64c(cg, 1));
    LLVMValueRef pc = mul(cg, kbi, kcb);
    LLVMValueRef kc = cg_smin(cg, kcb, LLVMBuildSub(cg->b, K, pc, ""));
    LLVMValueRef first = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, kbi, zero, ""), cg->i64, "");
    LLVMValueRef kbytes = mul(cg, kc, i64c(cg, 4));

    Loop li = cg_loop_begin(cg, i0, i1, "ir");
    LLVMValueRef mr = cg_smin(cg, i64c(cg, k->mr), LLVMBuildSub(cg->b, i1, li.iv, ""));
    /* the A micro-panel: rows ir..ir+mr, columns pc..pc+kc */
    Loop lr = cg_loop_begin(cg, zero, mr, "pack");
    LLVMValueRef src = cg_fptr(cg, at, add(cg, mul(cg, add(cg, li.iv, lr.iv), x[CX_LDA]), pc));
    LLVMValueRef dst = cg_fptr(cg, abuf, mul(cg, lr.iv, i64c(cg, lda_p)));
    /* vectors of vw floats, then the rest one by one (no library call: rows are short) */
    LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)k->vw);
    LLVMValueRef kvec = LLVMBuildAnd(cg->b, kc, i64c(cg, ~(int64_t)(k->vw - 1)), "");
    Loop lv = cg_loop_begin(cg, zero, LLVMBuildSDiv(cg->b, kvec, i64c(cg, k->vw), ""), "copyv");
    LLVMValueRef off = mul(cg, lv.iv, i64c(cg, k->vw));
    LLVMValueRef v = LLVMBuildLoad2(cg->b, vt, cg_fptr(cg, src, off), "");
    LLVMSetAlignment(v, 4);
    LLVMSetAlignment(LLVMBuildStore(cg->b, v, cg_fptr(cg, dst, off)), 4);
    cg_loop_end(cg, &lv);
    Loop ls = cg_loop_begin(cg, kvec, kc, "copys");
    LLVMValueRef e = LLVMBuildLoad2(cg->b, cg->f32, cg_fptr(cg, src, ls.iv), "");
    LLVMBuildStore(cg->b, e, cg_fptr(cg, dst, ls.iv));
    cg_loop_end(cg, &ls);
    cg_loop_end(cg, &lr);
    (void)kbytes;

    Loop lj = cg_loop_begin(cg, p0, p1, "jr");
    LLVMValueRef nrem = LLVMBuildSub(cg->b, N, mul(cg, lj.iv, i64c(cg, nr)), "");
    LLVMValueRef edge = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, nrem, i64c(cg, nr), ""), cg->i64, "");
    LLVMValueRef bp = cg_fptr(cg, bt, add(cg, mul(cg, lj.iv, x[CX_BPANEL]), mul(cg, pc, x[CX_LDB])));
    LLVMValueRef cp = cg_fptr(cg, ct, add(cg, mul(cg, li.iv, x[CX_LDC]), mul(cg, lj.iv, i64c(cg, nr))));
    LLVMValueRef key = add(cg, mul(cg, LLVMBuildSub(cg->b, mr, i64c(cg, 1), ""), i64c(cg, 2)), edge);
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(cg->ctx, f, "bad");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->ctx, f, "next");
    LLVMValueRef sw = LLVMBuildSwitch(cg->b, key, bad, (unsigned)(2 * k->mr));
    for (int m = 1; m <= k->mr; m++)
        for (int e = 0; e < 2; e++) {
            if (!(variants >> ((m - 1) * 2 + e) & 1))
                continue;
            LLVMBasicBlockRef cb = LLVMAppendBasicBlockInContext(cg->ctx, f, "ukr");
            LLVMAddCase(sw, i64c(cg, (m - 1) * 2 + e), cb);
            LLVMPositionBuilderAtEnd(cg->b, cb);
            LLVMValueRef u = ukr_function(cg, k, m, e);
            LLVMValueRef args[8] = {abuf, bp, x[CX_LDB], cp, x[CX_LDC], kc, first, nrem};
            LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(u), u, args, 8, "");
            LLVMBuildBr(cg->b, next);
        }
    LLVMPositionBuilderAtEnd(cg->b, bad);
    LLVMBuildUnreachable(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, next);
    if (epi) {
        /* the micro-tile is final after the last block of K: rows of the whole output (batches
         * flattened), columns of this panel */
        LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(cg->ctx, f, "epilogue");
        LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(cg->ctx, f, "after");
        LLVMValueRef last = LLVMBuildICmp(cg->b, LLVMIntEQ, add(cg, kbi, i64c(cg, 1)), nkb, "");
        LLVMBuildCondBr(cg->b, last, run, after);
        LLVMPositionBuilderAtEnd(cg->b, run);
        LLVMValueRef row0 = add(cg, LLVMBuildSDiv(cg->b, co, N, ""), li.iv);
        LLVMValueRef col0 = mul(cg, lj.iv, i64c(cg, nr));
        LLVMValueRef eargs[7] = {c, eleaves, esyms, row0, add(cg, row0, mr), col0, cg_smin(cg, N, add(cg, col0, i64c(cg, nr)))};
        LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(epi), epi, eargs, 7, "");
        LLVMBuildBr(cg->b, after);
        LLVMPositionBuilderAtEnd(cg->b, after);
    }
    cg_loop_end(cg, &lj);
    cg_loop_end_step(cg, &li, add(cg, li.iv, i64c(cg, k->mr)));

    LLVMValueRef knext = add(cg, kbi, i64c(cg, 1));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMAddIncoming(kbi, &knext, &latch, 1);
    LLVMBasicBlockRef kdone = LLVMAppendBasicBlockInContext(cg->ctx, f, "kdone");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, knext, nkb, ""), kb, kdone);
    LLVMPositionBuilderAtEnd(cg->b, kdone);
    cg_loop_end_step(cg, &lt, run_end);
}

/* ---------------------------------------------------------------- the node */

/* The micro-kernels a product may call (bits as in Tiles): rows of the last micro-tile
 * and whether there is a partial panel, when the sizes say; every one when they are symbolic. */
static uint64_t variants(const GemmCfg *k, const Node *n)
{
    const Node *a = n->in[0], *b = n->in[1];
    int64_t M = 1, N = -1, nr = k->vw * k->nv;
    int mdims = b->rank == 2 ? a->rank - 1 : 1; /* the dims of A that make the rows */
    for (int i = a->rank - 1 - mdims; i < a->rank - 1; i++)
        M = M < 0 || !dim_is_const(a->shape[i]) ? -1 : M * dim_value(a->shape[i]);
    if (dim_is_const(b->shape[b->rank - 1]))
        N = dim_value(b->shape[b->rank - 1]);
    uint64_t rows = 0, edges = 0;
    /* rows split over the threads (gemm()): the groups' last micro-tiles may have any height */
    if (M < 0 || (b->rank == 2 && k->rows > 0 && M >= 2 * (int64_t)k->rows))
        rows = (1ull << k->mr) - 1;
    else {
        if (M >= k->mr)
            rows |= 1ull << (k->mr - 1);
        if (M % k->mr)
            rows |= 1ull << (M % k->mr - 1);
    }
    if (N < 0 || N % nr)
        edges |= 2;
    if (N < 0 || N >= nr)
        edges |= 1;
    uint64_t v = 0;
    for (int m = 0; m < k->mr; m++)
        if (rows >> m & 1)
            v |= edges << (2 * m);
    return v;
}

/* The product n (of in[0] and in[1]) into out, with f's root as the epilogue when f is not NULL
 * (leafp: the leaves' buffers). */
static int gemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in, const Fused *f, LLVMValueRef *leafp)
{
    const Node *a = n->in[0], *b = n->in[1];
    int packed = cg->plan.packed && cg->plan.packed[n->id] >= 0;
    if (n->dtype != DT_F32 || a->dtype != DT_F32 || b->dtype != DT_F32 || b->rank < 2 || a->rank < 1)
        return 1;
    if (b->rank > 2 && a->rank < 2)
        return 1;
    GemmCfg k = gemm_config(cg);
    int nr = k.vw * k.nv;
    LLVMValueRef ad[IR_MAX_RANK], bd[IR_MAX_RANK], od[IR_MAX_RANK];
    cg_shape(cg, a, ad);
    cg_shape(cg, b, bd);
    cg_shape(cg, n, od);
    LLVMValueRef x[CX_COUNT];
    for (int d = 0; d < NBATCH; d++) {
        x[CX_BDIM + d] = i64c(cg, 1);
        x[CX_ASTR + d] = x[CX_BSTR + d] = x[CX_CSTR + d] = i64c(cg, 0);
    }
    LLVMValueRef M, N = bd[b->rank - 1], K = ad[a->rank - 1], nbatch = i64c(cg, 1);
    if (b->rank == 2) {
        /* every row of A (batch dimensions included) against one B: the rows are contiguous */
        M = cg_numel(cg, a->rank - 1, ad);
    } else {
        M = ad[a->rank - 2];
        int nb = n->rank - 2, abatch = a->rank - 2, bbatch = b->rank - 2;
        LLVMValueRef as = mul(cg, M, K), bs = mul(cg, K, N), cs = mul(cg, M, N);
        for (int i = nb - 1; i >= 0; i--) {
            int ia = i - (nb - abatch), ib = i - (nb - bbatch), slot = NBATCH - nb + i;
            x[CX_BDIM + slot] = od[i];
            x[CX_ASTR + slot] = ia >= 0 && !dim_eq(a->shape[ia], dim_const(1)) ? as : i64c(cg, 0);
            x[CX_BSTR + slot] = ib >= 0 && !dim_eq(b->shape[ib], dim_const(1)) ? bs : i64c(cg, 0);
            x[CX_CSTR + slot] = cs;
            if (ia >= 0)
                as = mul(cg, as, ad[ia]);
            if (ib >= 0)
                bs = mul(cg, bs, bd[ib]);
            cs = mul(cg, cs, od[i]);
            nbatch = mul(cg, nbatch, od[i]);
        }
    }
    x[CX_M] = M;
    x[CX_N] = N;
    x[CX_K] = K;
    x[CX_LDA] = K;
    x[CX_LDC] = N;
    x[CX_LDB] = packed ? i64c(cg, nr) : N;
    x[CX_BPANEL] = packed ? mul(cg, K, i64c(cg, nr)) : i64c(cg, nr);

    /* tiles: n-blocks in a multiple of the threads when N allows, each at most nc wide; or, on several
     * threads with at least k.rows rows each (one batch, B of at most ROW_SPLIT_B floats), groups of
     * rows, one per thread */
    LLVMValueRef one = i64c(cg, 1);
    LLVMValueRef nthr = cg_pool_threads(cg);
    LLVMValueRef np = cg_ceil_div(cg, N, i64c(cg, nr));
    LLVMValueRef G = one;
    if (b->rank == 2 && k.rows > 0)
        G = LLVMBuildSelect(
            cg->b,
            LLVMBuildAnd(cg->b,
                         LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, nthr, one, ""),
                                      LLVMBuildICmp(cg->b, LLVMIntSGE, M, mul(cg, nthr, i64c(cg, k.rows)), ""), ""),
                         LLVMBuildICmp(cg->b, LLVMIntSLE, mul(cg, K, N), i64c(cg, ROW_SPLIT_B), ""), ""),
            nthr, one, "groups");
    LLVMValueRef split = LLVMBuildICmp(cg->b, LLVMIntSGT, G, one, "");
    /* On several threads n-blocks a quarter as wide: measured on Zen 4 (two threads, M = 128 and
     * 197, K = N = 768) they kept 95% of oneDNN's speed where nc-wide ones varied between 85% and
     * 98% from one minute to the next; on one thread nc-wide ones are 3% faster. */
    LLVMValueRef cols = LLVMBuildSelect(cg->b, split, one, nthr, ""); /* threads sharing the columns */
    LLVMValueRef ncmax = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, cols, one, ""),
                                         i64c(cg, k.nc / nr / 4 > 0 ? k.nc / nr / 4 : 1), i64c(cg, k.nc / nr), "");
    LLVMValueRef want = mul(cg, cols, cg_ceil_div(cg, np, mul(cg, cols, ncmax)));
    LLVMValueRef ncp = cg_smax(cg, cg_ceil_div(cg, np, want), one);
    x[CX_NCP] = ncp;
    x[CX_TN] = cg_ceil_div(cg, np, ncp);
    /* m-blocks, the units of rows a thread takes: of equal height in micro-tiles, at most mc; split by
     * rows, each group's rows (M / G, the last group fewer) in m-blocks of equal height, at most mc,
     * not rounded to micro-tiles so that the groups are even (a group's last micro-tile is shorter) */
    LLVMValueRef mr = i64c(cg, k.mr);
    LLVMValueRef Mg = cg_ceil_div(cg, M, G);
    LLVMValueRef tm = cg_smax(cg, cg_ceil_div(cg, Mg, i64c(cg, k.mc)), one);
    LLVMValueRef mcb = LLVMBuildSelect(cg->b, split, cg_smax(cg, cg_ceil_div(cg, Mg, tm), one),
                                       cg_smax(cg, mul(cg, cg_ceil_div(cg, cg_ceil_div(cg, M, tm), mr), mr), mr), "");
    x[CX_MCB] = mcb;
    x[CX_TMG] = cg_ceil_div(cg, Mg, mcb);
    x[CX_TM] = mul(cg, G, x[CX_TMG]);
    LLVMValueRef ntiles = mul(cg, nbatch, mul(cg, x[CX_TM], x[CX_TN]));

    LLVMValueRef fields = cg_alloca(cg, LLVMArrayType2(cg->i64, CX_COUNT), "gemm");
    for (int i = 0; i < CX_COUNT; i++)
        LLVMBuildStore(cg->b, x[i], LLVMBuildGEP2(cg->b, cg->i64, fields, (LLVMValueRef[]){i64c(cg, i)}, 1, ""));
    LLVMValueRef leaves = LLVMConstNull(cg->ptr);
    if (f && f->nleaf) {
        leaves = cg_alloca(cg, LLVMArrayType2(cg->ptr, (uint64_t)f->nleaf), "leaves");
        for (int i = 0; i < f->nleaf; i++)
            LLVMBuildStore(cg->b, leafp[i], LLVMBuildGEP2(cg->b, cg->ptr, leaves, (LLVMValueRef[]){i64c(cg, i)}, 1, ""));
    }
    LLVMValueRef cap[5] = {in[0], in[1], out, leaves, fields};
    Tiles tl = {&k, variants(&k, n), f};
    char name[64];
    if (f)
        snprintf(name, sizeof name, "node%d_gemm_tiles_%llx", f->root->id, (unsigned long long)tl.variants);
    else
        snprintf(name, sizeof name, "kiln_gemm_tiles_%llx", (unsigned long long)tl.variants);
    /* small products on this thread; the rest over the pool */
    LLVMValueRef work = mul(cg, mul(cg, mul(cg, M, N), cg_smax(cg, K, one)), nbatch);
    CgPar p = {.split = CG_RANGES, .n = ntiles, .work = work, .min_work = SERIAL_WORK, .name = name, .shared = 1,
               .vw = k.vw};
    cg_parallel(cg, &p, 5, cap, tiles_body, &tl);
    return 0;
}

int cg_gemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    return gemm(cg, n, out, in, NULL, NULL);
}

int cg_gemm_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in)
{
    return gemm(cg, f->mm, out, in + f->nleaf, f, in);
}
