/* qgemm.c: the dot-product GEMMs of qmatmul: int8 x int8 -> int32 (W8A8, dynamic or static) with AVX-512 VNNI's
 * vpdpbusd, and bf16 x bf16 -> f32 (bf16 weights) with AVX512-BF16's vdpbf16ps; or, on a CPU with
 * AMX, the tile unit's tdpbusd and tdpbf16ps (below). Both are
 * register-blocked like gemm.c's f32 GEMM, and run fuse-ops' epilogue (bias, activation, residual)
 * on each micro-tile while it is in L1. They share everything but the arithmetic: one lane of either
 * instruction reads 4 bytes of each operand (4 int8 or 2 bf16 values of k), so the panels, the
 * prepared rows, the tiles and the threads are the same (Dot says which product a node is).
 *
 * int8 arithmetic. vpdpbusd multiplies unsigned bytes by signed bytes, four at a time, and adds the
 * four products to each i32 lane. The activations are signed (qa in -127..127), so each row is
 * stored as u = qa + 128 and the product corrected once per column: sum_k u[k] w[k, n] -
 * 128 * sum_k w[k, n] = sum_k qa[k] w[k, n], exactly (every intermediate fits in i32 for K < 2^16).
 * The result is then the interpreter's integer, rescaled the same way, ((float)acc * sa) * s[n]: the
 * same bits (ir/quant.c).
 *
 * bf16 arithmetic. Each row of a is rounded to bf16 (to nearest even, vcvtneps2bf16), each
 * vdpbf16ps adds two exact products to an f32 lane. The interpreter sums the same products in double:
 * the sums differ in order and precision as an f32 GEMM's do (and vdpbf16ps flushes bf16 subnormals,
 * below 1.2e-38, to zero), so tests compare with a tolerance.
 *
 * Weights, packed at compile time (cg_qgemm_pack, into the weights blob through Plan.packed):
 *   panels of NR = nv * 16 columns; within a panel, for each group of k (4 int8 or 2 bf16), NR x 4
 *   bytes (column c's group together, what one lane reads), so one step of the micro-kernel loads
 *   nv contiguous 64-byte vectors; K and N padded with zeros to whole groups and panels; for int8
 *   then 128 * colsum(w) as Np i32 and the scales as Np f32 (zeros past N).
 *
 * Activations. Each row is prepared once per call (and per thread that works on it): int8: its
 * largest |a| gives sa = amax / 127, then the row is written as u8 into a buffer on the thread's
 * stack (rows row_bytes apart), with sa beside it, right after its amax while it is in L1 (the next
 * row prefetched meanwhile); the quotients a / sa as a * (1 / sa), with a division only where that
 * could round differently (quantize_row); bf16: the row rounded to bf16. A thread's tiles
 * are taken m-block by m-block (below), so the prepared rows of an m-block serve every column panel
 * the thread computes for them; only an m-block that a range boundary cuts is prepared by both
 * threads. The loops are 16-float vectors; quantizing costs a few percent of the product at K = 768.
 *
 * Micro-kernel: an MR x NR block of the result in MR * nv zmm accumulators (12 x 32 by default: 24 of
 * the 32 registers, as gemm.c), each step loads nv vectors of the panel, broadcasts MR words of 4
 * bytes of the rows and issues MR * nv dot-product instructions. With fewer than 8 accumulators
 * (M = 1 or 2, decoding) consecutive steps go to 2 or 4 sets of accumulators, added at the end, so
 * that the instruction's latency does not bound the loop. Then, per column vector, int8's correction,
 * conversion and rescale; stores masked in the last panel. K is not blocked: the micro-panel of A (MR
 * x K bytes, 9 KiB for int8 at K = 768) stays in L1 and a panel of B streams from L2 at 1/MR byte per
 * multiply-add (2/MR for bf16), far below what L2 delivers, and the sums never leave registers.
 *
 * Tiles and threads. Rows are cut into m-blocks of at most MC rows (fewer when MC prepared rows would
 * exceed QBUF of stack), columns into n-blocks of panels (a K x n-block slice of B fills at most half
 * of L2, and at most NCP panels). Tiles are ordered m-block, n-block, and cg_parallel's CG_RANGES
 * gives each thread a contiguous range. M is cut into at least as many m-blocks as threads (each
 * thread prepares only its own rows) when the weights fit in L2 or, without AMX, when N <= 4 M (qgemm
 * says why); otherwise, with fewer m-blocks than threads (decoding, wide N), the threads split N into
 * a multiple of their number of n-blocks, narrower ones if need be, so that every thread has an equal
 * share. Inside a tile: for each micro-row of the
 * m-block, for each panel of the n-block, the micro-kernel, then the epilogue. Products of fewer than
 * 2^17 multiply-adds stay on the calling thread.
 *
 * AMX (amx-tile with amx-int8 / amx-bf16, the target's features: Sapphire Rapids and later). The
 * packed panels are already what a B tile reads (16 groups of k x 16 columns: rows of 64 bytes, NR x 4
 * bytes apart) and the prepared rows what an A tile reads (16 rows of 64 bytes, row_bytes apart), so
 * only the micro-kernel and the blocking change: micro-tiles of 32 x 32 (2 A tiles x 2 B tiles into 4
 * C tiles, nv = 2), K padded to whole tiles (64 int8 or 32 bf16 elements) in the panels and with zeros
 * in the prepared rows, blocks of K of 2048 bytes a row, prepared rows only as long as the block of K
 * and m-blocks of up to 256 KiB of them (a ViT's 197 rows in one: the weights stream once). The C
 * tiles go through a 32 x 32 buffer on the stack to the AVX-512 kernel's end (correction, rescale,
 * masked stores; int8 stays bit for bit the interpreter's) and the epilogue. Each thread loads the tile
 * configuration (8 tiles of 16 x 64 bytes) once for its range of tiles and releases it after; the
 * runtime asks the OS for the tiles when it opens a model whose RtModel.needs says so (Cg.amx_used).
 *
 * KILN_QGEMM ("mr=12,nv=2,mc=96,ncp=8") overrides the blocking at compile time (nv changes the packed
 * layout too; mr and nv are fixed with AMX), and amx=0 keeps the AVX-512 kernels on an AMX target.
 * Without AVX-512 VNNI, int8 products on x86 with AVX2 go to qgemm_avx2.c (vpmaddwd, or AVX-VNNI's
 * vpdpbusd on ymm) through the same entry points. Without the instruction otherwise (or with
 * non-constant weights or scales) cg_qgemm declines and quant.c's portable kernel runs instead, its
 * epilogue as a loop after it. Weight-only qmatmuls (w8,
 * w4) go to qwgemm.c through the same entry points (packed bytes, pack, kernel), or to the portable
 * kernel when it declines them.
 */
#include "codegen/codegen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    VW = 16,               /* i32 lanes of a zmm register: one vpdpbusd covers 16 columns x 4 k */
    UNROLL = 4,            /* steps of 4 bytes per iteration of the micro-kernel's loop */
    SERIAL_WORK = 1 << 17, /* multiply-adds under which a product stays on the calling thread */
};

typedef struct QCfg {
    int amx; /* 1: the AMX micro-kernel (tiles of 16 rows x 64 bytes), 0: the AVX-512 one */
    int mr;  /* rows of the micro-tile (32 with AMX: two A tiles) */
    int nv;  /* vectors of 16 columns per row of the micro-tile (2 with AMX: two B tiles) */
    int nr;  /* nv * 16: columns per panel of the packed weights */
    int mc;  /* most rows per m-block (a multiple of mr); 0: as many as QBUF holds */
    int ncp; /* most panels per n-block */
    int kcb; /* bytes of a row per block of K (kcb int8 or kcb / 2 bf16 elements) */
    int rowb; /* kcb + 64: bytes between prepared rows (a line more: rows 4 KiB apart share L1 sets) */
    int qbuf; /* bytes of prepared rows a thread keeps on its stack, at most */
    int kgrain; /* elements of k the blocks of K and the packed K are multiples of: 16, or a tile's
                   16 groups with AMX (64 int8, 32 bf16) */
} QCfg;

/* Which of the two products a qmatmul is: the row preparation, the instruction, the accumulators and
 * the end of the micro-kernel follow from it; the tiles, the panels' layout and the threads do not. */
typedef struct Dot {
    int bf16; /* 0: W8A8 (vpdpbusd, u8 x s8 into i32), 1: bf16 weights (vdpbf16ps, bf16 x bf16 into f32) */
    int kg;   /* elements of k in the 4 bytes of one lane: 4 (int8) or 2 (bf16) */
    int es;   /* bytes per element of the rows and the panels */
} Dot;

static Dot dot_of(const Node *n)
{
    int b = n->in[1]->dtype == DT_BF16;
    return (Dot){b, b ? 2 : 4, b ? 2 : 1};
}

static int64_t pad(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

/* Whether the target's tile unit runs d's product: amx-tile with amx-int8 (amx-bf16), unless
 * KILN_QGEMM says amx=0. */
static int amx_for(const Cg *cg, const Dot *d, const char **why)
{
    CgTarget t = cg_target(cg);
    const char *env = getenv("KILN_QGEMM");
    if (env && strstr(env, "amx=0")) {
        *why = "KILN_QGEMM has amx=0";
        return 0;
    }
    if (!(d->bf16 ? t.amx_bf16 : t.amx_int8)) {
        *why = d->bf16 ? "no amx-tile + amx-bf16 on this target" : "no amx-tile + amx-int8 on this target";
        return 0;
    }
    *why = d->bf16 ? "amx-tile + amx-bf16 on this target" : "amx-tile + amx-int8 on this target";
    return 1;
}

static QCfg qcfg(const Cg *cg, const Dot *d)
{
    const char *why;
    int amx = amx_for(cg, d, &why);
    /* AMX: a micro-tile of 32 x 32 (4 C tiles), blocks of K long enough that the C tiles seldom leave
     * the unit (2 KiB of a row), m-blocks of up to 256 KiB of prepared rows (read from L2 by the tile
     * loads), so that each panel of B serves many rows */
    QCfg q = {.amx = amx, .mr = amx ? 32 : 12, .nv = 2, .mc = 0, .ncp = 8, .kcb = amx ? 2048 : 512,
              .qbuf = amx ? 256 << 10 : 128 << 10};
    for (const char *p = getenv("KILN_QGEMM"); p && *p;) {
        char key[8] = {0};
        int n = 0;
        long v = 0;
        if (sscanf(p, "%7[a-z]=%ld%n", key, &v, &n) == 2 && v > 0) {
            if (!strcmp(key, "mr") && v <= 16 && !amx)
                q.mr = (int)v;
            else if (!strcmp(key, "nv") && v <= 4 && !amx)
                q.nv = (int)v;
            else if (!strcmp(key, "mc") && v <= 4096)
                q.mc = (int)v;
            else if (!strcmp(key, "ncp") && v <= 4096)
                q.ncp = (int)v;
            else if (!strcmp(key, "kcb") && v <= 16384)
                q.kcb = ((int)v + 63) & ~63;
            else if (!strcmp(key, "qbuf") && v <= 4096)
                q.qbuf = (int)v << 10;
        }
        const char *c = strchr(p, ',');
        p = c ? c + 1 : NULL;
    }
    q.nr = q.nv * VW;
    q.mc = (q.mc + q.mr - 1) / q.mr * q.mr;
    q.rowb = q.kcb + 64;
    q.kgrain = amx ? 16 * d->kg : 16;
    return q;
}

/* Elements of K per block: KCB bytes of a row (fewer, of equal blocks, rounded up to kgrain). */
static int64_t k_block(const QCfg *q, const Dot *d, int64_t K)
{
    int64_t kc = q->kcb / d->es, nkb = (K + kc - 1) / kc;
    return pad((K + nkb - 1) / nkb, q->kgrain);
}

/* K padded in the packed weights: to whole groups, and with AMX to whole tiles of 16 groups (the
 * last tile of B reads zeros, never the next panel). */
static int64_t k_packed(const QCfg *q, const Dot *d, int64_t K)
{
    return pad(K, q->amx ? q->kgrain : d->kg);
}

/* With AMX, the prepared rows of a product are as long as its block of K needs (and a line more, two
 * when that would make them 4 KiB apart), not KCB: for K = 768 an m-block then holds every row of a
 * ViT's 197 (164 KiB, in L2), and the weights stream from memory once, not once per m-block. */
static void fit_rows(QCfg *q, const Dot *d, int64_t K)
{
    if (!q->amx)
        return;
    q->rowb = (int)(pad(k_block(q, d, K) * d->es, 64) + 64);
    if (q->rowb % 4096 == 0)
        q->rowb += 64;
}

/* The most rows of an m-block: MC when given, else as many as QBUF holds (a multiple of mr). */
static int64_t mc_rows(const QCfg *q)
{
    int64_t m = q->qbuf / q->rowb / q->mr * q->mr;
    if (q->mc && q->mc < m)
        m = q->mc;
    return m < q->mr ? q->mr : m;
}

static int is_constant(const Node *x)
{
    return (x->op == OP_CONST || x->op == OP_WEIGHT) && x->at.data;
}

static int takes(const Cg *cg, const Node *n)
{
    if (n->op != OP_QMATMUL || !is_constant(n->in[1]))
        return 0;
    const Node *w = n->in[1];
    if (dim_value(w->shape[0]) < 1 || dim_value(w->shape[0]) >= (1 << 16) || dim_value(w->shape[1]) < 1)
        return 0;
    if (w->dtype == DT_BF16)
        return n->nin == 2 && cg_target(cg).bf16;
    return ir_qmm_w8a8(n) && n->nin == 3 && w->dtype == DT_I8 && is_constant(n->in[2]) && cg_target(cg).vnni;
}

int64_t cg_qgemm_packed_bytes(Cg *cg, const Node *n)
{
    int64_t avx2 = cg_qgemm_avx2_packed_bytes(cg, n); /* int8 without AVX-512 VNNI: qgemm_avx2.c */
    if (avx2)
        return avx2;
    if (!takes(cg, n))
        return cg_qwgemm_packed_bytes(cg, n); /* weight-only, or 0 */
    Dot d = dot_of(n);
    QCfg q = qcfg(cg, &d);
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), Kp = k_packed(&q, &d, K), Np = pad(N, q.nr);
    return d.bf16 ? 2 * Kp * Np : Kp * Np + 8 * Np;
}

void cg_qgemm_pack(Cg *cg, const Node *n, void *dst)
{
    if (cg_qgemm_avx2_packed_bytes(cg, n)) {
        cg_qgemm_avx2_pack(cg, n, dst);
        return;
    }
    if (!takes(cg, n)) {
        cg_qwgemm_pack(cg, n, dst);
        return;
    }
    Dot d = dot_of(n);
    QCfg q = qcfg(cg, &d);
    const Node *w = n->in[1];
    int64_t K = dim_value(w->shape[0]), N = dim_value(w->shape[1]), nr = q.nr, Kp = k_packed(&q, &d, K);
    if (w->dtype == DT_BF16) { /* pairs of k: column c's w[2g, c], w[2g + 1, c] together */
        int64_t Np = pad(N, nr);
        const uint16_t *wd = w->at.data;
        uint16_t *p = dst;
        memset(dst, 0, (size_t)(2 * Kp * Np));
        for (int64_t j = 0; j < N; j++)
            for (int64_t k = 0; k < K; k++)
                p[j / nr * Kp * nr + (k / 2) * nr * 2 + j % nr * 2 + k % 2] = wd[k * N + j];
        return;
    }
    const Node *s = n->in[2];
    int64_t Np = pad(N, nr);
    const int8_t *wd = w->at.data;
    int8_t *p = dst;
    memset(dst, 0, (size_t)(Kp * Np + 8 * Np));
    for (int64_t j = 0; j < N; j++) {
        int64_t panel = j / nr, c = j % nr, sum = 0;
        for (int64_t k = 0; k < K; k++) {
            p[panel * Kp * nr + (k / 4) * nr * 4 + c * 4 + k % 4] = wd[k * N + j];
            sum += wd[k * N + j];
        }
        int32_t comp = (int32_t)(128 * sum);
        float sc = (float)dtype_load(s->dtype, s->at.data, (size_t)j);
        memcpy(p + Kp * Np + 4 * j, &comp, 4);
        memcpy(p + Kp * Np + 4 * Np + 4 * j, &sc, 4);
    }
}

void cg_qgemm_explain(Cg *cg, FILE *out)
{
    CgTarget t = cg_target(cg);
    const char *env = getenv("KILN_QGEMM");
    for (int b = 0; b < 2; b++) {
        Dot d = {b, b ? 2 : 4, b ? 2 : 1};
        QCfg q = qcfg(cg, &d);
        const char *why;
        int amx = amx_for(cg, &d, &why);
        if (!b && cg_qgemm_avx2_explain(cg, out)) /* int8 on AVX2 (qgemm_avx2.c) */
            continue;
        if (!(b ? t.bf16 : t.vnni)) {
            fprintf(out, "codegen: %s: no %s on this target: quant.c's portable kernel\n",
                    b ? "bf16 GEMM (vdpbf16ps)" : "int8 GEMM (vpdpbusd)", b ? "AVX512-BF16" : "AVX-512 VNNI");
            continue;
        }
        if (amx)
            fprintf(out, "codegen: %s GEMM (AMX %s: %s): micro-tile 32 x 32 = 2 A tiles (16 rows x 64 bytes) by 2 B "
                         "tiles (16 groups of 4 bytes x 16 columns) into 4 C tiles of 16 x 16 %s, stored to the stack for the "
                         "%sepilogue; blocks of K of %d bytes a row (K packed to a multiple of %d), m-blocks of at most %lld "
                         "rows (%d KiB of prepared rows per thread), n-blocks of at most %d panels%s%s\n",
                    b ? "bf16" : "int8", b ? "tdpbf16ps" : "tdpbusd", why, b ? "f32" : "i32",
                    b ? "" : "rescale and the ", q.kcb, q.kgrain, (long long)mc_rows(&q), q.qbuf >> 10, q.ncp,
                    env ? "; KILN_QGEMM=" : "", env ? env : "");
        else
            fprintf(out, "codegen: %s micro-tile %d x %d (%d rows, %d vectors of 16 %s): %d accumulators; blocks of K of "
                         "%d bytes a row, m-blocks of at most %lld rows (%d KiB of prepared rows per thread), n-blocks of "
                         "at most %d panels (and a block of K of them in half of L2); AVX-512, not AMX: %s%s%s\n",
                    b ? "bf16 GEMM (vdpbf16ps)" : "int8 GEMM (vpdpbusd)", q.mr, q.nr, q.mr, q.nv, b ? "f32" : "i32",
                    q.mr * q.nv, q.kcb, (long long)mc_rows(&q), q.qbuf >> 10, q.ncp, why, env ? "; KILN_QGEMM=" : "",
                    env ? env : "");
    }
    cg_qwgemm_explain(cg, out);
}

/* ---------------------------------------------------------------- IR helpers */

static LLVMValueRef load(Cg *cg, LLVMTypeRef t, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->b, t, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store(Cg *cg, LLVMValueRef v, LLVMValueRef p, unsigned align)
{
    LLVMSetAlignment(LLVMBuildStore(cg->b, v, p), align);
}

static void set_attr(Cg *cg, LLVMValueRef f, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    KILN_ASSERT(kind);
    LLVMAddAttributeAtIndex(f, idx, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

/* Lanes j of a 16-lane vector with base + j < n, as <16 x i1>. */
static LLVMValueRef lanes_below(Cg *cg, int base, LLVMValueRef n)
{
    LLVMValueRef l[VW];
    for (int j = 0; j < VW; j++)
        l[j] = cg_i64(cg, base + j);
    LLVMTypeRef vt = LLVMVectorType(cg->i64, VW);
    LLVMValueRef one = LLVMBuildInsertElement(cg->b, LLVMGetPoison(vt), n, LLVMConstInt(cg->i32, 0, 0), "");
    LLVMValueRef lim = LLVMBuildShuffleVector(cg->b, one, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(cg->i32, VW)), "");
    return LLVMBuildICmp(cg->b, LLVMIntSLT, LLVMConstVector(l, VW), lim, "");
}

static LLVMValueRef masked_load(Cg *cg, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef m)
{
    LLVMTypeRef tys[2] = {vt, cg->ptr};
    return cg_call_intrinsic(cg, "llvm.masked.load", tys, 2, (LLVMValueRef[]){p, LLVMConstInt(cg->i32, 4, 0), m, LLVMConstNull(vt)}, 4);
}

static void masked_store(Cg *cg, LLVMValueRef x, LLVMValueRef p, LLVMValueRef m)
{
    LLVMTypeRef tys[2] = {LLVMTypeOf(x), cg->ptr};
    cg_call_intrinsic(cg, "llvm.masked.store", tys, 2, (LLVMValueRef[]){x, p, LLVMConstInt(cg->i32, 1, 0), m}, 4);
}

/* ---------------------------------------------------------------- preparing rows
 *
 * int8 first: each row's scale, sa = amax / 127 over the whole row (the interpreter's: maxnum drops
 * NaN), or a static qmatmul's fixed scale (ascale: no pass over the row), into sab. Then, block of K by block of K, the rows' elements [k0, k0 + kn) into buf (rows
 * ROWB bytes apart), in vectors of 16 with the last one masked (its lanes past kn read as 0, so the
 * rest of the last group is 0): int8 as u8 = qa + 128 with qa = quantize(a, sa, 0) on -127..127;
 * bf16 rounded to nearest even (fptrunc: vcvtneps2bf16). */

/* *amax = maxnum(*amax, |x|), lane by lane: one vmaxps(|x|, amax), which returns its second operand
 * where either is NaN (amax never is), so a NaN of x is dropped as maxnum drops it. */
static void amax_step(Cg *cg, LLVMValueRef amax, LLVMValueRef x)
{
    LLVMValueRef m = LLVMBuildLoad2(cg->b, LLVMTypeOf(x), amax, "");
    const char *name = "llvm.x86.avx512.max.ps.512";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
    LLVMValueRef args[3] = {cg_intrinsic(cg, "llvm.fabs", &x, 1), m, LLVMConstInt(cg->i32, 4, 0)};
    store(cg, LLVMBuildCall2(cg->b, LLVMIntrinsicGetType(cg->ctx, id, NULL, 0), f, args, 3, ""), amax, 64);
}

static void row_scales(Cg *cg, LLVMValueRef a, int64_t K, LLVMValueRef r0, LLVMValueRef r1, LLVMValueRef sab,
                       float fixed)
{
    if (fixed > 0) { /* static W8A8: every row's scale is the node's, no pass over the row */
        Loop lr = cg_loop_begin(cg, r0, r1, "srow");
        LLVMValueRef r = LLVMBuildSub(cg->b, lr.iv, r0, "");
        store(cg, LLVMConstReal(cg->f32, fixed), LLVMBuildGEP2(cg->b, cg->f32, sab, &r, 1, ""), 4);
        cg_loop_end(cg, &lr);
        return;
    }
    CgVec V = cg_vec(cg, VW, 1);
    int64_t full = K / VW, tail = K % VW;
    LLVMValueRef amax = cg_alloca(cg, V.vt, "amax");
    Loop lr = cg_loop_begin(cg, r0, r1, "srow");
    LLVMValueRef src = cg_fptr(cg, a, cg_mul(cg, lr.iv, cg_i64(cg, K)));
    store(cg, LLVMConstNull(V.vt), amax, 64);
    Loop lm = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, full), "amax");
    amax_step(cg, amax, cg_vload(&V, cg_fptr(cg, src, cg_mul(cg, lm.iv, cg_i64(cg, VW))), 4));
    /* the next row on its way while this one is read (rows are read one after the other) */
    cg_prefetch(cg, cg_fptr(cg, src, cg_add(cg, cg_mul(cg, lm.iv, cg_i64(cg, VW)), cg_i64(cg, K))), 0);
    cg_loop_end(cg, &lm);
    if (tail)
        amax_step(cg, amax, masked_load(cg, V.vt, cg_fptr(cg, src, cg_i64(cg, full * VW)), lanes_below(cg, 0, cg_i64(cg, tail))));
    /* no lane is NaN (they start at 0 and maxnum drops NaN), so the reduction's no-NaN flag holds */
    LLVMValueRef sa = LLVMBuildFDiv(cg->b, cg_vhmax(&V, load(cg, V.vt, amax, 64)), LLVMConstReal(cg->f32, 127), "");
    LLVMValueRef r = LLVMBuildSub(cg->b, lr.iv, r0, "");
    store(cg, sa, LLVMBuildGEP2(cg->b, cg->f32, sab, &r, 1, ""), 4);
    cg_loop_end(cg, &lr);
}

/* ir_quantize1(x, s, 0, -127, 127) for a vector of x (s = sv in every lane, rv = 1 / s): the quotient
 * x / s is taken as x * rv, a multiplication instead of a division (vdivps is the slowest step of
 * preparing a row, about 16 cycles a vector). x * rv is within 3 units in the last place of x / s
 * (2^-24 relative each: the reciprocal's rounding, the product's, and the quotient's own), 2.3e-5 for
 * quotients up to 128, so the two round to the same integer unless a half-integer lies within that
 * distance of x * rv. Lanes like that (ties, as integer inputs make them), and a product that is not
 * below 256 (NaN, infinite: s zero, subnormal or infinite, x infinite) send the whole vector to the
 * division: the interpreter's bits always. */
static LLVMValueRef quantize_row(Cg *cg, const CgVec *V, LLVMValueRef x, LLVMValueRef sv, LLVMValueRef rv)
{
    LLVMValueRef slot = cg_alloca(cg, V->vt, "quot");
    LLVMValueRef y = LLVMBuildFMul(cg->b, x, rv, "");
    store(cg, y, slot, 64);
    LLVMValueRef t = LLVMBuildFSub(cg->b, LLVMBuildFSub(cg->b, y, cg_intrinsic(cg, "llvm.floor", &y, 1), ""), cg_vconst(V, 0.5), "");
    LLVMValueRef near = LLVMBuildFCmp(cg->b, LLVMRealULE, cg_intrinsic(cg, "llvm.fabs", &t, 1), cg_vconst(V, 0x1p-15), "");
    LLVMValueRef big = LLVMBuildFCmp(cg->b, LLVMRealUGE, cg_intrinsic(cg, "llvm.fabs", &y, 1), cg_vconst(V, 256), "");
    LLVMValueRef any = cg_intrinsic(cg, "llvm.vector.reduce.or", (LLVMValueRef[]){LLVMBuildOr(cg->b, near, big, "")}, 1);
    LLVMBasicBlockRef done = cg_if_begin(cg, any, "divide");
    store(cg, LLVMBuildFDiv(cg->b, x, sv, ""), slot, 64);
    cg_if_end(cg, done);
    LLVMValueRef dq = load(cg, V->vt, slot, 64);
    LLVMValueRef q = cg_intrinsic(cg, "llvm.roundeven", &dq, 1);
    LLVMValueRef none = LLVMBuildOr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOEQ, sv, LLVMConstNull(V->vt), ""),
                                    LLVMBuildFCmp(cg->b, LLVMRealUNO, dq, dq, ""), "");
    q = LLVMBuildSelect(cg->b, none, LLVMConstNull(V->vt), q, "");
    q = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOLT, q, cg_vconst(V, -127), ""), cg_vconst(V, -127), q, "");
    return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, q, cg_vconst(V, 127), ""), cg_vconst(V, 127), q, "");
}

/* Elements k .. k+15 of the row src (the lanes of mask only, when given; the others read as 0) at
 * element k of dst: int8 quantized with scale sv as u8 = qa + 128, bf16 rounded. */
static void prepare_vector(Cg *cg, const Dot *d, const CgVec *V, LLVMValueRef src, LLVMValueRef dst, LLVMValueRef k,
                           LLVMValueRef mask, LLVMValueRef sv, LLVMValueRef rv)
{
    LLVMValueRef x = mask ? masked_load(cg, V->vt, cg_fptr(cg, src, k), mask) : cg_vload(V, cg_fptr(cg, src, k), 4);
    if (d->bf16) {
        LLVMValueRef h = LLVMBuildFPTrunc(cg->b, x, LLVMVectorType(LLVMBFloatTypeInContext(cg->ctx), VW), "");
        store(cg, h, cg_gep8(cg, dst, cg_mul(cg, k, cg_i64(cg, 2))), 1);
        return;
    }
    LLVMValueRef q = quantize_row(cg, V, x, sv, rv);
    LLVMValueRef u = cg_add(cg, LLVMBuildFPToSI(cg->b, q, V->it, ""), cg_viconst(V, cg->i32, 128));
    store(cg, LLVMBuildTrunc(cg->b, u, LLVMVectorType(cg->i8, VW), ""), cg_gep8(cg, dst, k), 1);
}

static void prepare_block(Cg *cg, const QCfg *q, const Dot *d, LLVMValueRef a, int64_t K, LLVMValueRef r0, LLVMValueRef r1,
                          LLVMValueRef k0, LLVMValueRef kn, LLVMValueRef buf, LLVMValueRef sab)
{
    CgVec V = cg_vec(cg, VW, 1);
    LLVMValueRef full = LLVMBuildUDiv(cg->b, kn, cg_i64(cg, VW), ""), done = cg_mul(cg, full, cg_i64(cg, VW));
    LLVMValueRef tail = LLVMBuildSub(cg->b, kn, done, "");
    LLVMValueRef tmask = lanes_below(cg, 0, tail);
    Loop lr = cg_loop_begin(cg, r0, r1, "prow");
    LLVMValueRef src = cg_fptr(cg, a, cg_add(cg, cg_mul(cg, lr.iv, cg_i64(cg, K)), k0));
    LLVMValueRef r = LLVMBuildSub(cg->b, lr.iv, r0, "");
    LLVMValueRef dst = cg_gep8(cg, buf, cg_mul(cg, r, cg_i64(cg, q->rowb)));
    LLVMValueRef sv = d->bf16 ? NULL : cg_vsplat(&V, load(cg, cg->f32, LLVMBuildGEP2(cg->b, cg->f32, sab, &r, 1, ""), 4));
    LLVMValueRef rv = d->bf16 ? NULL : LLVMBuildFDiv(cg->b, cg_vconst(&V, 1), sv, "");
    if (q->amx) /* the AMX kernel reads whole 64 bytes: the row's last ones zero before the elements go in */
        store(cg, LLVMConstNull(LLVMVectorType(cg->i8, 64)),
              cg_gep8(cg, dst, LLVMBuildAnd(cg->b, cg_mul(cg, kn, cg_i64(cg, d->es)), cg_i64(cg, ~(int64_t)63), "")), 64);
    Loop lc = cg_loop_begin(cg, cg_i64(cg, 0), full, "pvec");
    prepare_vector(cg, d, &V, src, dst, cg_mul(cg, lc.iv, cg_i64(cg, VW)), NULL, sv, rv);
    cg_loop_end(cg, &lc);
    LLVMBasicBlockRef after = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntSGT, tail, cg_i64(cg, 0), ""), "ptail");
    prepare_vector(cg, d, &V, src, dst, done, tmask, sv, rv);
    cg_if_end(cg, after);
    cg_loop_end(cg, &lr);
}

/* ---------------------------------------------------------------- the micro-kernel
 *
 * void kiln_{q,b}gemm_ukr<mr>x<nv>[_edge](ptr a, i64 lda, ptr b, i64 kq, ptr c, i64 ldc, ptr comp,
 *                                         ptr scale, ptr sa, i64 nrem, i64 first, i64 last,
 *                                         ptr f, i64 ldf)
 *   S = (first ? 0 : C[0:mr, 0:NR]) + A[0:mr, block] @ B[block, 0:NR]   (i32 for int8, f32 for bf16)
 *   last: F[0:mr, 0:NR] = int8: ((float)(S - comp) * sa[row]) * scale[col]; bf16: S
 *   else: C[0:mr, 0:NR] = S
 * a: mr prepared rows of one block of K (kq groups of 4 bytes), lda bytes apart; b: the panel from the
 * block's first group (NR x 4 bytes a group); c: ldc floats (or i32 partial sums) per row; f: where
 * the final values go, ldf floats per row (C itself, or the stack tile an epilogue reads); comp,
 * scale: the panel's NR entries; sa: mr floats. The _edge variant touches only the first nrem
 * columns. */

/* acc + the dot products of u and w's 4-byte lanes: vpdpbusd (i32) or vdpbf16ps (f32); u and w come
 * as <16 x i32> and are given to the intrinsic as its operand type. */
static LLVMValueRef dot(Cg *cg, const Dot *d, LLVMValueRef acc, LLVMValueRef u, LLVMValueRef w)
{
    const char *name = d->bf16 ? "llvm.x86.avx512bf16.dpbf16ps.512" : "llvm.x86.avx512.vpdpbusd.512";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, NULL, 0), pt[3];
    KILN_ASSERT(LLVMCountParamTypes(fty) == 3);
    LLVMGetParamTypes(fty, pt);
    u = LLVMBuildBitCast(cg->b, u, pt[1], "");
    w = LLVMBuildBitCast(cg->b, w, pt[2], "");
    return LLVMBuildCall2(cg->b, fty, f, (LLVMValueRef[]){acc, u, w}, 3, "");
}

typedef struct Ukr {
    Cg *cg;
    const QCfg *q;
    const Dot *d;
    int mr, sets;
    CgVec V;
    LLVMTypeRef at; /* the accumulators' type: <16 x i32> or <16 x float> */
    LLVMValueRef a, lda, b;
    LLVMValueRef acc[4 * 16 * 4]; /* [set][row][vector] allocas */
} Ukr;

static LLVMValueRef *acc_slot(Ukr *u, int s, int r, int v)
{
    return &u->acc[(s * u->mr + r) * u->q->nv + v];
}

/* One step (group kk of 4 bytes per lane) into accumulator set s. */
static void ukr_step(Ukr *u, LLVMValueRef kk, int s)
{
    Cg *cg = u->cg;
    LLVMValueRef bv[4];
    LLVMValueRef brow = cg_gep8(cg, u->b, cg_mul(cg, kk, cg_i64(cg, 4 * u->q->nr)));
    for (int v = 0; v < u->q->nv; v++)
        bv[v] = load(cg, u->V.it, cg_gep8(cg, brow, cg_i64(cg, 64 * v)), 4);
    LLVMValueRef k4 = cg_mul(cg, kk, cg_i64(cg, 4));
    for (int r = 0; r < u->mr; r++) {
        LLVMValueRef a4 = load(cg, cg->i32, cg_gep8(cg, u->a, cg_add(cg, k4, cg_mul(cg, cg_i64(cg, r), u->lda))), 1);
        LLVMValueRef bc = cg_vsplat(&u->V, a4);
        for (int v = 0; v < u->q->nv; v++) {
            LLVMValueRef slot = *acc_slot(u, s, r, v);
            store(cg, dot(cg, u->d, load(cg, u->at, slot, 64), bc, bv[v]), slot, 64);
        }
    }
}

static LLVMValueRef ukr_function(Cg *cg, const QCfg *q, const Dot *d, int mr, int edge)
{
    char name[64];
    snprintf(name, sizeof name, "kiln_%cgemm_ukr%dx%d%s", d->bf16 ? 'b' : 'q', mr, q->nv, edge ? "_edge" : "");
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (f)
        return f;
    LLVMTypeRef params[14] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64,
                              cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64};
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->b);
    LLVMValueRef saved_fn = cg->fn;
    f = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, params, 14, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    set_attr(cg, f, LLVMAttributeFunctionIndex, "nounwind");
    /* called from one place each: kept out of line so that the tile loop stays small */
    set_attr(cg, f, LLVMAttributeFunctionIndex, "noinline");
    cg_vector_width_attr(cg, f, VW);
    set_attr(cg, f, 1, "noalias"); /* a (the stack buffer), b and c never overlap */
    set_attr(cg, f, 3, "noalias");
    set_attr(cg, f, 5, "noalias");
    cg->fn = f;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    Ukr u = {.cg = cg, .q = q, .d = d, .mr = mr, .V = cg_vec(cg, VW, 1)};
    u.at = d->bf16 ? u.V.vt : u.V.it;
    u.a = LLVMGetParam(f, 0);
    u.lda = LLVMGetParam(f, 1);
    u.b = LLVMGetParam(f, 2);
    LLVMValueRef kq = LLVMGetParam(f, 3), c = LLVMGetParam(f, 4), ldc = LLVMGetParam(f, 5);
    LLVMValueRef comp = LLVMGetParam(f, 6), scale = LLVMGetParam(f, 7), sa = LLVMGetParam(f, 8);
    LLVMValueRef nrem = LLVMGetParam(f, 9), first = LLVMGetParam(f, 10), last = LLVMGetParam(f, 11);
    LLVMValueRef cfin = LLVMGetParam(f, 12), ldfin = LLVMGetParam(f, 13); /* where the final block goes */
    u.sets = 1;
    while (u.sets < UNROLL && u.sets * mr * q->nv < 8)
        u.sets *= 2;
    for (int i = 0; i < u.sets * mr * q->nv; i++) {
        u.acc[i] = cg_alloca(cg, u.at, "acc");
        store(cg, LLVMConstNull(u.at), u.acc[i], 64);
    }
    LLVMValueRef mask[4];
    for (int v = 0; v < q->nv; v++)
        mask[v] = edge ? lanes_below(cg, v * VW, nrem) : NULL;
    /* after the first block of K, the sums so far from C (i32 for int8, f32 for bf16) */
    LLVMBasicBlockRef resume = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntEQ, first, cg_i64(cg, 0), ""), "resume");
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < q->nv; v++) {
            LLVMValueRef p = cg_fptr(cg, c, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldc), cg_i64(cg, v * VW)));
            store(cg, mask[v] ? masked_load(cg, u.at, p, mask[v]) : load(cg, u.at, p, 4), *acc_slot(&u, 0, r, v), 64);
        }
    cg_if_end(cg, resume);
    Loop l4 = cg_loop_begin(cg, cg_i64(cg, 0), LLVMBuildSub(cg->b, kq, cg_i64(cg, UNROLL - 1), ""), "k4");
    for (int s = 0; s < UNROLL; s++)
        ukr_step(&u, cg_add(cg, l4.iv, cg_i64(cg, s)), s % u.sets);
    cg_loop_end_step(cg, &l4, cg_add(cg, l4.iv, cg_i64(cg, UNROLL)));
    Loop l1 = cg_loop_begin(cg, l4.phi, kq, "k1");
    ukr_step(&u, l1.iv, 0);
    cg_loop_end(cg, &l1);
    /* the sets summed; before the last block of K the sums go back to C as they are; after it, int8's
     * correction and rescale, ((float)(acc - comp) * sa) * scale */
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < q->nv; v++) {
            LLVMValueRef y = load(cg, u.at, *acc_slot(&u, 0, r, v), 64);
            for (int s = 1; s < u.sets; s++) {
                LLVMValueRef x = load(cg, u.at, *acc_slot(&u, s, r, v), 64);
                y = d->bf16 ? LLVMBuildFAdd(cg->b, y, x, "") : cg_add(cg, y, x);
            }
            store(cg, y, *acc_slot(&u, 0, r, v), 64);
        }
    LLVMBasicBlockRef fin = LLVMAppendBasicBlockInContext(cg->ctx, f, "final");
    LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(cg->ctx, f, "partial");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntNE, last, cg_i64(cg, 0), ""), fin, part);
    for (int final = 0; final < 2; final++) {
        LLVMPositionBuilderAtEnd(cg->b, final ? fin : part);
        LLVMValueRef sav[16], cv = NULL, sv = NULL;
        int rescale = final && !d->bf16;
        for (int r = 0; r < mr && rescale; r++)
            sav[r] = cg_vsplat(&u.V, load(cg, cg->f32, LLVMBuildGEP2(cg->b, cg->f32, sa, (LLVMValueRef[]){cg_i64(cg, r)}, 1, ""), 4));
        for (int v = 0; v < q->nv; v++) {
            if (rescale) {
                cv = load(cg, u.V.it, cg_gep8(cg, comp, cg_i64(cg, 64 * v)), 4);
                sv = load(cg, u.V.vt, cg_gep8(cg, scale, cg_i64(cg, 64 * v)), 4);
            }
            for (int r = 0; r < mr; r++) {
                LLVMValueRef y = load(cg, u.at, *acc_slot(&u, 0, r, v), 64);
                if (rescale) {
                    y = LLVMBuildSIToFP(cg->b, LLVMBuildSub(cg->b, y, cv, ""), u.V.vt, "");
                    y = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, y, sav[r], ""), sv, "");
                }
                LLVMValueRef p = final ? cg_fptr(cg, cfin, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldfin), cg_i64(cg, v * VW)))
                                       : cg_fptr(cg, c, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldc), cg_i64(cg, v * VW)));
                if (mask[v])
                    masked_store(cg, y, p, mask[v]);
                else
                    store(cg, y, p, 4);
            }
        }
        LLVMBuildRetVoid(cg->b);
    }
    cg->fn = saved_fn;
    LLVMPositionBuilderAtEnd(cg->b, saved_bb);
    return f;
}

/* ---------------------------------------------------------------- the AMX micro-kernel
 *
 * void kiln_{q,b}gemm_amx<ta>[_edge](ptr a, i64 lda, ptr b, i64 kq, ptr c, i64 ldc, ptr comp,
 *                                    ptr scale, ptr sa, i64 nrem, i64 first, i64 last, i64 rows,
 *                                    ptr f, i64 ldf)
 *   the same product as the AVX-512 micro-kernel's, for rows (1 .. 16 * ta) rows and 32 columns:
 *   C tiles 0, 1 (rows 0-15) and 2, 3 (rows 16-31) += A tile 4 (5) x B tiles 6, 7, one step per 16
 *   groups of k (a row's 64 bytes, a tile of B's 16 rows of NR x 4 bytes). The tile registers hold
 *   16 rows whatever rows is: the rows of A past it are whatever the prepared-rows buffer holds there
 *   (always inside it: qgemm keeps every m-block, rounded up to 16 rows, within it), and the rows of C
 *   they make are never stored.
 *   kq is padded to 16 groups: the prepared rows are zero up to the next 64 bytes and the packed K to a
 *   tile. The C tiles go to a 32 x 32 buffer on the stack, and from there through the AVX-512 kernel's
 *   end (int8's correction and rescale, masked stores, the partial sums of a block of K back to C and
 *   read again into the tiles by the next block). The caller has loaded the tile configuration. */

/* A call of one of the AMX intrinsics (tile numbers are immediates: i8 constants). */
static void amx_call(Cg *cg, const char *name, LLVMValueRef *args, int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
    LLVMBuildCall2(cg->b, LLVMIntrinsicGetType(cg->ctx, id, NULL, 0), f, args, (unsigned)nargs, "");
}

static LLVMValueRef tile_no(Cg *cg, int t)
{
    return LLVMConstInt(cg->i8, (unsigned)t, 0);
}

/* The tile configuration every AMX kernel uses: palette 1, tiles 0-7 of 16 rows x 64 bytes. */
static LLVMValueRef amx_config(Cg *cg)
{
    LLVMValueRef g = LLVMGetNamedGlobal(cg->mod, "kiln_amx_tilecfg");
    if (g)
        return g;
    unsigned char cfg[64] = {1};
    for (int t = 0; t < 8; t++) {
        cfg[16 + 2 * t] = 64; /* colsb: bytes per row (u16, little-endian) */
        cfg[48 + t] = 16;     /* rows */
    }
    LLVMValueRef init = LLVMConstStringInContext(cg->ctx, (const char *)cfg, 64, 1);
    g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), "kiln_amx_tilecfg");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetAlignment(g, 64);
    return g;
}

static LLVMValueRef amx_function(Cg *cg, const QCfg *q, const Dot *d, int ta, int edge)
{
    char name[64];
    snprintf(name, sizeof name, "kiln_%cgemm_amx%d%s", d->bf16 ? 'b' : 'q', ta, edge ? "_edge" : "");
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (f)
        return f;
    KILN_ASSERT(q->nv == 2);
    LLVMTypeRef params[15] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr,
                              cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64};
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->b);
    LLVMValueRef saved_fn = cg->fn;
    f = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, params, 15, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    set_attr(cg, f, LLVMAttributeFunctionIndex, "nounwind");
    set_attr(cg, f, LLVMAttributeFunctionIndex, "noinline");
    cg_vector_width_attr(cg, f, VW);
    cg->fn = f;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    CgVec V = cg_vec(cg, VW, 1);
    LLVMTypeRef at = d->bf16 ? V.vt : V.it;
    LLVMValueRef a = LLVMGetParam(f, 0), lda = LLVMGetParam(f, 1), b = LLVMGetParam(f, 2), kq = LLVMGetParam(f, 3);
    LLVMValueRef c = LLVMGetParam(f, 4), ldc = LLVMGetParam(f, 5), comp = LLVMGetParam(f, 6), scale = LLVMGetParam(f, 7);
    LLVMValueRef sa = LLVMGetParam(f, 8), nrem = LLVMGetParam(f, 9), first = LLVMGetParam(f, 10);
    LLVMValueRef last = LLVMGetParam(f, 11), rows = LLVMGetParam(f, 12);
    LLVMValueRef cfin = LLVMGetParam(f, 13), ldfin = LLVMGetParam(f, 14); /* where the final block goes */
    int nr = q->nr, ctiles = 2 * ta;
    LLVMValueRef cbuf = cg_alloca(cg, LLVMArrayType2(cg->i32, (uint64_t)(32 * nr)), "ctile");
    LLVMSetAlignment(cbuf, 64);
    LLVMValueRef ldb = cg_i64(cg, 4 * nr); /* bytes between rows of cbuf and of a B tile */
    LLVMValueRef mask[2];
    for (int v = 0; v < 2; v++)
        mask[v] = edge ? lanes_below(cg, v * VW, nrem) : NULL;
    /* C tile t: rows 16 * (t / 2), columns 16 * (t % 2) of cbuf */
    LLVMValueRef cptr[4];
    for (int t = 0; t < ctiles; t++)
        cptr[t] = cg_gep8(cg, cbuf, cg_i64(cg, (t / 2) * 16 * 4 * nr + (t % 2) * 64));
    /* the first block of K starts from zero tiles, the others from C's partial sums (through cbuf) */
    LLVMBasicBlockRef zero = LLVMAppendBasicBlockInContext(cg->ctx, f, "zero");
    LLVMBasicBlockRef resume = LLVMAppendBasicBlockInContext(cg->ctx, f, "resume");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg->ctx, f, "body");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntNE, first, cg_i64(cg, 0), ""), zero, resume);
    LLVMPositionBuilderAtEnd(cg->b, zero);
    for (int t = 0; t < ctiles; t++)
        amx_call(cg, "llvm.x86.tilezero", (LLVMValueRef[]){tile_no(cg, t)}, 1);
    LLVMBuildBr(cg->b, body);
    LLVMPositionBuilderAtEnd(cg->b, resume);
    Loop lr = cg_loop_begin(cg, cg_i64(cg, 0), rows, "crow");
    for (int v = 0; v < 2; v++) {
        LLVMValueRef p = cg_fptr(cg, c, cg_add(cg, cg_mul(cg, lr.iv, ldc), cg_i64(cg, v * VW)));
        LLVMValueRef x = mask[v] ? masked_load(cg, at, p, mask[v]) : load(cg, at, p, 4);
        store(cg, x, cg_gep8(cg, cbuf, cg_add(cg, cg_mul(cg, lr.iv, ldb), cg_i64(cg, 64 * v))), 64);
    }
    cg_loop_end(cg, &lr);
    for (int t = 0; t < ctiles; t++)
        amx_call(cg, "llvm.x86.tileloadd64", (LLVMValueRef[]){tile_no(cg, t), cptr[t], ldb}, 3);
    LLVMBuildBr(cg->b, body);
    LLVMPositionBuilderAtEnd(cg->b, body);
    /* the steps: 16 groups of k each */
    const char *dp = d->bf16 ? "llvm.x86.tdpbf16ps" : "llvm.x86.tdpbusd";
    LLVMValueRef steps = LLVMBuildUDiv(cg->b, cg_add(cg, kq, cg_i64(cg, 15)), cg_i64(cg, 16), "");
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), steps, "kt");
    LLVMValueRef ak = cg_gep8(cg, a, cg_mul(cg, lk.iv, cg_i64(cg, 64)));
    LLVMValueRef bk = cg_gep8(cg, b, cg_mul(cg, lk.iv, cg_i64(cg, 16 * 4 * nr)));
    for (int t = 0; t < 2; t++)
        amx_call(cg, "llvm.x86.tileloadd64", (LLVMValueRef[]){tile_no(cg, 6 + t), cg_gep8(cg, bk, cg_i64(cg, 64 * t)), ldb}, 3);
    for (int r = 0; r < ta; r++) {
        amx_call(cg, "llvm.x86.tileloadd64",
                 (LLVMValueRef[]){tile_no(cg, 4 + r), cg_gep8(cg, ak, cg_mul(cg, cg_i64(cg, 16 * r), lda)), lda}, 3);
        for (int t = 0; t < 2; t++)
            amx_call(cg, dp, (LLVMValueRef[]){tile_no(cg, 2 * r + t), tile_no(cg, 4 + r), tile_no(cg, 6 + t)}, 3);
    }
    cg_loop_end(cg, &lk);
    for (int t = 0; t < ctiles; t++)
        amx_call(cg, "llvm.x86.tilestored64", (LLVMValueRef[]){tile_no(cg, t), cptr[t], ldb}, 3);
    /* from cbuf to C: before the last block of K the sums as they are; after it, int8's correction and
     * rescale, ((float)(acc - comp) * sa) * scale */
    LLVMBasicBlockRef fin = LLVMAppendBasicBlockInContext(cg->ctx, f, "final");
    LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(cg->ctx, f, "partial");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntNE, last, cg_i64(cg, 0), ""), fin, part);
    for (int final = 0; final < 2; final++) {
        LLVMPositionBuilderAtEnd(cg->b, final ? fin : part);
        int rescale = final && !d->bf16;
        LLVMValueRef cv[2], sv[2];
        for (int v = 0; v < 2 && rescale; v++) {
            cv[v] = load(cg, V.it, cg_gep8(cg, comp, cg_i64(cg, 64 * v)), 4);
            sv[v] = load(cg, V.vt, cg_gep8(cg, scale, cg_i64(cg, 64 * v)), 4);
        }
        Loop lo = cg_loop_begin(cg, cg_i64(cg, 0), rows, final ? "orow" : "prow");
        LLVMValueRef sar = rescale ? cg_vsplat(&V, load(cg, cg->f32, LLVMBuildGEP2(cg->b, cg->f32, sa, &lo.iv, 1, ""), 4)) : NULL;
        for (int v = 0; v < 2; v++) {
            LLVMValueRef y = load(cg, at, cg_gep8(cg, cbuf, cg_add(cg, cg_mul(cg, lo.iv, ldb), cg_i64(cg, 64 * v))), 64);
            if (rescale) {
                y = LLVMBuildSIToFP(cg->b, LLVMBuildSub(cg->b, y, cv[v], ""), V.vt, "");
                y = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, y, sar, ""), sv[v], "");
            }
            LLVMValueRef p = final ? cg_fptr(cg, cfin, cg_add(cg, cg_mul(cg, lo.iv, ldfin), cg_i64(cg, v * VW)))
                                   : cg_fptr(cg, c, cg_add(cg, cg_mul(cg, lo.iv, ldc), cg_i64(cg, v * VW)));
            if (mask[v])
                masked_store(cg, y, p, mask[v]);
            else
                store(cg, y, p, 4);
        }
        cg_loop_end(cg, &lo);
        LLVMBuildRetVoid(cg->b);
    }
    cg->fn = saved_fn;
    LLVMPositionBuilderAtEnd(cg->b, saved_bb);
    return f;
}

/* ---------------------------------------------------------------- tiles */

enum { CP_OUT, CP_A, CP_PK, CP_LEAVES, CP_M, CP_MCB, CP_TM, CP_TN, CP_NCP, CP_COUNT };

typedef struct Tiles {
    const QCfg *q;
    const Node *n;
    const Fused *fused;
    LLVMValueRef epi; /* the epilogue's function, or NULL */
} Tiles;

/* Tiles [begin, end), ordered m-block then n-block (cap as CP_*). The tiles of one m-block in the
 * range are done together: for each block of K, its rows' elements are prepared once, then every
 * n-block of the range, micro-row by micro-row, panel by panel. */
static void tiles_body(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Tiles *tl = ctx;
    const QCfg *q = tl->q;
    const Node *n = tl->n;
    Dot d = dot_of(n);
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), Kp = k_packed(q, &d, K), Np = pad(N, q->nr);
    int64_t mcmax = mc_rows(q), np = Np / q->nr, panel = Kp * q->nr * d.es, kcb = k_block(q, &d, K);
    int64_t nkb = (K + kcb - 1) / kcb;
    LLVMValueRef out = cap[CP_OUT], pk = cap[CP_PK], M = cap[CP_M], mcb = cap[CP_MCB], tn = cap[CP_TN];
    LLVMValueRef ncp = cap[CP_NCP];
    LLVMValueRef buf = cg_alloca(cg, LLVMArrayType2(cg->i8, (uint64_t)(mcmax * q->rowb)), "rows");
    LLVMSetAlignment(buf, 64);
    LLVMValueRef sab = cg_alloca(cg, LLVMArrayType2(cg->f32, (uint64_t)mcmax), "sa");
    /* With an epilogue, each micro-tile's final values go to this stack tile and the epilogue reads
     * them from there. Read back from C, whose rows are a multiple of 4 KiB apart at N = 768 or 3072,
     * each load waited behind the micro-kernel's stores to the other rows (4K aliasing): on Zen 4 a
     * ReLU epilogue cost 7-10% of int8 197 x 3072 x 768 and nothing at N = 3088. From the stack tile
     * the stall moves to the epilogue's stores, C's first touch (its lines not in cache): the tile
     * function's samples over the micro-kernels' went 0.118 -> 0.081 (ReLU), 0.199 -> 0.176 (GELU). */
    LLVMValueRef fbuf = tl->epi ? cg_alloca(cg, LLVMArrayType2(cg->f32, (uint64_t)(q->mr * q->nr)), "final") : NULL;
    if (fbuf)
        LLVMSetAlignment(fbuf, 64);
    /* int8: the column sums and the scales after the panels */
    LLVMValueRef comp0 = cg_gep8(cg, pk, cg_i64(cg, Kp * Np)), scale0 = cg_gep8(cg, pk, cg_i64(cg, Kp * Np + 4 * Np));
    if (q->amx) /* this thread's tile configuration, for all its tiles; released at the end */
        amx_call(cg, "llvm.x86.ldtilecfg", (LLVMValueRef[]){amx_config(cg)}, 1);

    Loop lt = cg_loop_begin(cg, begin, end, "tile");
    LLVMValueRef mb = LLVMBuildSDiv(cg->b, lt.iv, tn, "");
    LLVMValueRef run_end = cg_smin(cg, end, cg_mul(cg, cg_add(cg, mb, cg_i64(cg, 1)), tn));
    LLVMValueRef nb0 = LLVMBuildSub(cg->b, lt.iv, cg_mul(cg, mb, tn), ""), nb1 = LLVMBuildSub(cg->b, run_end, cg_mul(cg, mb, tn), "");
    /* the last m-block ends at M: it may be longer than mcb (qgemm) */
    LLVMValueRef i0 = cg_mul(cg, mb, mcb);
    LLVMValueRef i1 = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, mb, LLVMBuildSub(cg->b, cap[CP_TM], cg_i64(cg, 1), ""), ""),
                                      M, cg_smin(cg, M, cg_add(cg, i0, mcb)), "");
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, nkb), "kblock");
    LLVMValueRef k0 = cg_mul(cg, lk.iv, cg_i64(cg, kcb)), kn = cg_smin(cg, cg_i64(cg, kcb), LLVMBuildSub(cg->b, cg_i64(cg, K), k0, ""));
    LLVMValueRef first = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, lk.iv, cg_i64(cg, 0), ""), cg->i64, "");
    LLVMValueRef last = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, lk.iv, cg_i64(cg, nkb - 1), ""), cg->i64, "");
    if (d.bf16) {
        prepare_block(cg, q, &d, cap[CP_A], K, i0, i1, k0, kn, buf, sab);
    } else { /* int8: with the first block of K, each row's scale and then its elements, while the row is in L1 */
        LLVMBasicBlockRef later = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "later");
        LLVMBasicBlockRef firstb = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "firstblock");
        LLVMBasicBlockRef prepared = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "prepared");
        LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, lk.iv, cg_i64(cg, 0), ""), firstb, later);
        LLVMPositionBuilderAtEnd(cg->b, firstb);
        Loop lr = cg_loop_begin(cg, i0, i1, "qrow");
        LLVMValueRef rr = LLVMBuildSub(cg->b, lr.iv, i0, "");
        LLVMValueRef sab_r = LLVMBuildGEP2(cg->b, cg->f32, sab, &rr, 1, "");
        row_scales(cg, cap[CP_A], K, lr.iv, cg_add(cg, lr.iv, cg_i64(cg, 1)), sab_r, ir_qmm_static_scale(n));
        prepare_block(cg, q, &d, cap[CP_A], K, lr.iv, cg_add(cg, lr.iv, cg_i64(cg, 1)), k0, kn,
                      cg_gep8(cg, buf, cg_mul(cg, rr, cg_i64(cg, q->rowb))), sab_r);
        cg_loop_end(cg, &lr);
        LLVMBuildBr(cg->b, prepared);
        LLVMPositionBuilderAtEnd(cg->b, later);
        prepare_block(cg, q, &d, cap[CP_A], K, i0, i1, k0, kn, buf, sab);
        LLVMBuildBr(cg->b, prepared);
        LLVMPositionBuilderAtEnd(cg->b, prepared);
    }
    LLVMValueRef kq = LLVMBuildUDiv(cg->b, cg_add(cg, kn, cg_i64(cg, d.kg - 1)), cg_i64(cg, d.kg), "");
    LLVMValueRef boff = cg_mul(cg, LLVMBuildUDiv(cg->b, k0, cg_i64(cg, d.kg), ""), cg_i64(cg, 4 * q->nr));

    Loop ln = cg_loop_begin(cg, nb0, nb1, "nblock");
    LLVMValueRef p0 = cg_mul(cg, ln.iv, ncp), p1 = cg_smin(cg, cg_i64(cg, np), cg_add(cg, p0, ncp));
    Loop li = cg_loop_begin(cg, i0, i1, "ir");
    LLVMValueRef mr = cg_smin(cg, cg_i64(cg, q->mr), LLVMBuildSub(cg->b, i1, li.iv, ""));
    LLVMValueRef rel = LLVMBuildSub(cg->b, li.iv, i0, "");
    LLVMValueRef arow = cg_gep8(cg, buf, cg_mul(cg, rel, cg_i64(cg, q->rowb)));
    LLVMValueRef sap = LLVMBuildGEP2(cg->b, cg->f32, sab, &rel, 1, "");
    Loop lj = cg_loop_begin(cg, p0, p1, "jr");
    LLVMValueRef col = cg_mul(cg, lj.iv, cg_i64(cg, q->nr));
    LLVMValueRef nrem = LLVMBuildSub(cg->b, cg_i64(cg, N), col, "");
    LLVMValueRef edge = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, nrem, cg_i64(cg, q->nr), ""), cg->i64, "");
    /* the final block of K: into C, or with an epilogue into the stack tile the epilogue reads */
    LLVMValueRef cptr = cg_fptr(cg, out, cg_add(cg, cg_mul(cg, li.iv, cg_i64(cg, N)), col));
    LLVMValueRef fin = tl->epi ? fbuf : cptr, ldfin = cg_i64(cg, tl->epi ? q->nr : N);
    LLVMValueRef args[15] = {arow, cg_i64(cg, q->rowb), cg_gep8(cg, pk, cg_add(cg, cg_mul(cg, lj.iv, cg_i64(cg, panel)), boff)), kq,
                             cptr, cg_i64(cg, N),
                             cg_gep8(cg, comp0, cg_mul(cg, col, cg_i64(cg, 4))), cg_gep8(cg, scale0, cg_mul(cg, col, cg_i64(cg, 4))),
                             sap, nrem, first, last, mr, fin, ldfin};
    if (!q->amx) { /* no rows argument */
        args[12] = fin;
        args[13] = ldfin;
    }
    /* the micro-kernel for (rows, edge): every row count when M is symbolic, the edge when N says;
     * with AMX, one A tile or two */
    LLVMValueRef key = q->amx ? LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, mr, cg_i64(cg, 16), ""), cg->i64, "")
                              : LLVMBuildSub(cg->b, mr, cg_i64(cg, 1), "");
    key = cg_add(cg, cg_mul(cg, key, cg_i64(cg, 2)), edge);
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "bad");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "next");
    int kinds = q->amx ? 2 : q->mr;
    LLVMValueRef sw = LLVMBuildSwitch(cg->b, key, bad, (unsigned)(2 * kinds));
    for (int m = 1; m <= kinds; m++)
        for (int e = 0; e < 2; e++) {
            if ((e && N % q->nr == 0) || (!e && N < q->nr))
                continue;
            LLVMBasicBlockRef cb = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "ukr");
            LLVMAddCase(sw, cg_i64(cg, (m - 1) * 2 + e), cb);
            LLVMPositionBuilderAtEnd(cg->b, cb);
            LLVMValueRef u = q->amx ? amx_function(cg, q, &d, m, e) : ukr_function(cg, q, &d, m, e);
            LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(u), u, args, q->amx ? 15 : 14, "");
            LLVMBuildBr(cg->b, next);
        }
    LLVMPositionBuilderAtEnd(cg->b, bad);
    LLVMBuildUnreachable(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, next);
    if (tl->epi) { /* the micro-tile is final after the last block of K: the epilogue while it is in L1 */
        LLVMBasicBlockRef skip = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntNE, last, cg_i64(cg, 0), ""), "epilogue");
        LLVMValueRef eargs[9] = {out, cap[CP_LEAVES], cg->syms, li.iv, cg_add(cg, li.iv, mr), col,
                                 cg_smin(cg, cg_i64(cg, N), cg_add(cg, col, cg_i64(cg, q->nr))), fbuf, cg_i64(cg, q->nr)};
        LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(tl->epi), tl->epi, eargs, 9, "");
        cg_if_end(cg, skip);
    }
    cg_loop_end(cg, &lj);
    cg_loop_end_step(cg, &li, cg_add(cg, li.iv, cg_i64(cg, q->mr)));
    cg_loop_end(cg, &ln);
    cg_loop_end(cg, &lk);
    cg_loop_end_step(cg, &lt, run_end);
    if (q->amx)
        amx_call(cg, "llvm.x86.tilerelease", NULL, 0);
}

/* The product n of a by the packed weights pk into out, with f's root as the epilogue when f is not
 * NULL (leafp: the leaves' buffers). */
static int qgemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef a, LLVMValueRef pk, const Fused *f,
                 LLVMValueRef *leafp)
{
    if (!cg->plan.packed || cg->plan.packed[n->id] < 0)
        return 1;
    if (cg_qgemm_avx2_packed_bytes(cg, n)) /* int8 without AVX-512 VNNI */
        return cg_qgemm_avx2(cg, n, out, a, pk, f, leafp);
    if (!takes(cg, n)) /* weight-only (qwgemm.c), or the portable kernel */
        return cg_qwgemm(cg, n, out, a, pk, f, leafp);
    Dot d = dot_of(n);
    QCfg q = qcfg(cg, &d);
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), np = pad(N, q.nr) / q.nr;
    fit_rows(&q, &d, K);
    cg->amx_used |= q.amx; /* the runtime asks the OS for the tiles at open (RtModel.needs) */
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, n->in[0], dims);
    LLVMValueRef M = cg_numel(cg, n->in[0]->rank - 1, dims), one = cg_i64(cg, 1);
    /* m-blocks of equal height in micro-tiles, at most mc_rows */
    LLVMValueRef mr = cg_i64(cg, q.mr);
    LLVMValueRef tm = cg_smax(cg, cg_ceil_div(cg, M, cg_i64(cg, mc_rows(&q))), one);
    /* An m-block per thread, where M has the micro-tiles for it, rather than threads that split N
     * and each prepare every row: (a) when the weights fit in L2 beside a thread's prepared rows;
     * (b) without AMX, also when N is at most 4 M. Per multiply-add, splitting N costs 1 / N of a
     * row element's preparation (each thread prepares every row), splitting M 1 / M of a weight
     * byte streamed from L3 (each thread reads all the weights); the AVX-512 kernels are slow enough
     * that the stream hides behind them, AMX's are not. Measured at 2 threads, medians: AMX (Xeon),
     * int8 197 x 768 x 768 0.102 -> 0.080 ms, bf16 128 x 768 x 768 (1.2 MB of weights, more than half
     * of L2) 0.103 -> 0.067 ms, but 197 x 3072 x 768 0.245 -> 0.317 ms when each thread streams the
     * weights; AVX-512 (Zen 4), int8 197 x 768 x 768 0.60 -> 0.34 ms, 197 x 768 x 3072 (2.4 MB, not
     * in L2) 2.0 -> 1.45 ms (bf16 3.9 -> 2.7), but 197 x 3072 x 768 1.40 -> 1.44 ms (N > 4 M). */
    int fits = pad(K, q.kgrain) * np * q.nr * d.es + q.qbuf <= cg_target(cg).l2;
    LLVMValueRef msplit = fits ? LLVMConstInt(cg->i1, 1, 0)
                          : q.amx ? LLVMConstInt(cg->i1, 0, 0)
                                  : LLVMBuildICmp(cg->b, LLVMIntSLE, cg_i64(cg, N), cg_mul(cg, M, cg_i64(cg, 4)), "");
    tm = LLVMBuildSelect(cg->b, msplit, cg_smax(cg, tm, cg_smin(cg, cg_pool_threads(cg), cg_ceil_div(cg, M, mr))), tm, "");
    /* with AMX in multiples of an A tile's 16 rows, not of the micro-tile's 32 (a micro-row of 16 is
     * the kernel's other kind): 197 rows on two threads are 112 + 85, not 128 + 69 */
    LLVMValueRef mg = q.amx ? cg_i64(cg, 16) : mr;
    LLVMValueRef mcb = cg_smax(cg, cg_mul(cg, cg_ceil_div(cg, cg_ceil_div(cg, M, tm), mg), mg), mg);
    /* Or m-blocks rounded down, the last one taking the rest, when its longest block is shorter and
     * fits in the prepared rows (up to a whole A tile: AMX reads 16 rows whatever the block holds): 197 rows on two threads as 96 + 101 rather than 108 + 89 (AVX-512,
     * Zen 4, 2 threads, medians: int8 197 x 768 x 768 0.32 -> 0.30 ms, 197 x 768 x 3072 1.35 -> 1.26
     * ms, bf16 0.63 -> 0.56 and 2.46 -> 2.26 ms), with AMX 96 + 101 rather than 112 + 85 */
    LLVMValueRef down = cg_smax(cg, cg_mul(cg, LLVMBuildSDiv(cg->b, cg_ceil_div(cg, M, tm), mg, ""), mg), mg);
    LLVMValueRef dlast = LLVMBuildSub(cg->b, M, cg_mul(cg, LLVMBuildSub(cg->b, tm, one, ""), down), "");
    LLVMValueRef use_down = LLVMBuildAnd(
        cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, cg_smax(cg, down, dlast), mcb, ""),
        LLVMBuildICmp(cg->b, LLVMIntSLE, cg_mul(cg, cg_ceil_div(cg, dlast, mg), mg), cg_i64(cg, mc_rows(&q)), ""), "");
    use_down = LLVMBuildAnd(cg->b, use_down, LLVMBuildICmp(cg->b, LLVMIntSGT, dlast, cg_i64(cg, 0), ""), "");
    mcb = LLVMBuildSelect(cg->b, use_down, down, mcb, "");
    tm = LLVMBuildSelect(cg->b, use_down, tm, cg_smax(cg, cg_ceil_div(cg, M, mcb), one), "");
    /* n-blocks: a block of K of them in half of L2, at most ncp panels, and enough tiles for the
     * threads when there are few m-blocks */
    int64_t l2p = cg_target(cg).l2 / 2 / (k_block(&q, &d, K) * d.es * q.nr);
    int64_t ncp_max = l2p < 1 ? 1 : l2p > q.ncp ? q.ncp : l2p;
    LLVMValueRef nthr = cg_pool_threads(cg);
    LLVMValueRef want = cg_smax(cg, cg_ceil_div(cg, cg_i64(cg, np), cg_i64(cg, ncp_max)), cg_ceil_div(cg, nthr, tm));
    /* fewer m-blocks than threads: the threads split N, in equal shares (3 n-blocks of 8 panels on
     * 2 threads gave one of them twice the other's work) */
    want = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, tm, nthr, ""),
                           cg_mul(cg, cg_ceil_div(cg, want, nthr), nthr), want, "");
    LLVMValueRef ncp = cg_smax(cg, cg_ceil_div(cg, cg_i64(cg, np), want), one);
    LLVMValueRef tn = cg_ceil_div(cg, cg_i64(cg, np), ncp);
    LLVMValueRef leaves = f ? cg_fused_leaves(cg, f, leafp) : LLVMConstNull(cg->ptr);
    LLVMValueRef cap[CP_COUNT] = {out, a, pk, leaves, M, mcb, tm, tn, ncp};
    Tiles tl = {&q, n, f, f ? cg_fused_epilogue(cg, f, 1) : NULL};
    char name[64];
    snprintf(name, sizeof name, "node%d_qgemm_tiles", f ? f->root->id : n->id);
    LLVMValueRef work = cg_mul(cg, M, cg_i64(cg, K * N));
    CgPar p = {.split = CG_RANGES, .n = cg_mul(cg, tm, tn), .work = work, .min_work = SERIAL_WORK, .name = name, .vw = VW};
    cg_parallel(cg, &p, CP_COUNT, cap, tiles_body, &tl);
    return 0; /* the epilogue is vectorised 16 floats wide by cg_optimise's prefer-vector-width */
}

int cg_qgemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    return qgemm(cg, n, out, in[0], in[1], NULL, NULL); /* in[1]: the packed copy */
}

int cg_qgemm_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in)
{
    return qgemm(cg, f->mm, out, in[f->nleaf], in[f->nleaf + 1], f, in);
}
