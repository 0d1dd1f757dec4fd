/* qwgemm.c: the weight-only qmatmul (i4, u4, i8 or u8 weights, a scale per column or per group of G
 * along K, optionally a zero point) with the weights packed at compile time and dequantised in
 * registers, on AVX-512 or AVX2. It is made for decoding, where M is 1 to a few rows and the product
 * is bound by the bytes of the weights: 4-bit weights are an eighth of f32's, so the kernel has to
 * turn them into floats at least as fast as the memory delivers them. quant.c's portable kernel
 * runs what this one does not take (weights or scales that are not constants, odd groups of 4-bit
 * weights, other targets).
 *
 * Arithmetic. Each weight is dequantised exactly as the interpreter does it, (float)(q - z) * s in
 * f32 (ir/quant.c: q and z are small integers, exact in f32, so the only rounding is the product's),
 * and the products a[m, k] * w[k, n] are summed in f32 with fused multiply-adds; the interpreter
 * sums the same products in double. Where the registers allow it (no zero point, at most 3 rows of
 * the micro-tile) the kernel is factored: it sums a[m, k] * q[k, n] over a group, then adds that sum
 * times the group's scale, which saves a multiply per weight and changes only the rounding, as the
 * sum's order does (ir/quant.c allows both). tests/unit/test_qwgemm.c checks the bits on data where
 * every sum is exact, and a bound on the rounding elsewhere.
 *
 * Packed weights (cg_qwgemm_pack, into the weights blob through Plan.packed): panels of NR = nv * vw
 * columns (K x NR each; the last padded with zero columns); within a panel, 8-bit weights row by
 * row (NR bytes per k: one vpmovsxbd of vw bytes per vector), 4-bit weights in blocks of 8 rows of
 * k, one 32-bit word per column holding w[8j + i, c] in bits 4i..4i+3, so one 64-byte load gives
 * 16 columns of 8 rows (the last block padded with zeros). After the panels, 64-byte aligned: the
 * scales [ng, Np] (Np = N padded to panels, zeros past N), then with a zero point the zero points
 * [ng, Np], both as f16 when every scale and zero point of the product is exactly a finite f16, else
 * both as f32 (WLay.sb). The f16 form is exact: the kernel widens each vector of them (vcvtph2ps) to
 * the very floats the interpreter reads. choose-quant rounds w4's group scales to f16 for it
 * (passes/choose_quant.c), which saves 2 bytes of every 32 weights' 18: on a Llama-form model of
 * GPT-2 small's size, w4's decode step read 69.6 MB of weights instead of 77.3. The packed copy
 * holds the scales and zero points, so plan.c stores them only there.
 *
 * Dequantising a vector. 8-bit: the bytes sign- or zero-extended to i32 and converted. 4-bit on
 * AVX-512: vpermps with a table of the 16 nibble values as floats (-8..7 for i4, 0..15 for u4)
 * reads the low 4 bits of each i32 lane as the index, so row 8j costs one instruction and the
 * others a shift more (no byte-to-word widening, which would compete with vpermps for the shuffle
 * unit: it ran 1.4x slower); on AVX2 (whose vpermps has 8 entries) shifts extract the nibble
 * (arithmetic for i4) and it is converted (on AVX-512 that form, KILN_QWGEMM=perm=0, ran 1.7x
 * slower than the table on a hot 768 x 2304 product). Then (q - z) * s with the vector of the group's
 * scales (and zero points), loaded once per group (and widened from f16), or q alone when factored.
 *
 * Micro-kernel: mr rows of a by one panel, mr * nv accumulators; for each group of K, its scales,
 * then for each k the panel's nv vectors dequantised once and each multiplied with mr broadcasts of
 * a (read from a in place: decoding reads each element of a once per panel, and L1 holds the rows).
 * With few accumulators (M = 1 or 2) even and odd k go to two sets, added at the end, so that the
 * multiply-add's latency does not bound the loop. The last panel's stores are masked. A group of
 * 4-bit weights must be a multiple of 8 (a block never straddles groups); K need not be (the last
 * block is read as far as K goes) nor a multiple of the group (the last group is short).
 *
 * Tiles and threads: m-blocks of MB rows by panels, ordered m-block then panel, contiguous ranges
 * per thread (cg_parallel's CG_RANGES): decoding (one m-block) splits the panels, that is the output
 * columns, over the threads. fuse-ops' epilogue (bias, activation, residual) runs on each tile while
 * it is in L1. Products of fewer than 2^17 multiply-adds stay on the calling thread.
 *
 * Prefetch: each block of 4-bit weights (row of 8-bit weights) the micro-kernel loads, it prefetches
 * the cache lines pf = 4 KiB further on (prefetch_ahead). On GPT-2 124M's w4 decode step through the
 * KV cache (Emerald Rapids, 1 thread, chrt, the weights streamed from memory) it took the step from
 * 11.2 ms to 8.6 ms (pf 1 KiB: 9.1 ms, 8 KiB: 8.8 ms); at 2 threads 6.1 to 4.6 ms.
 *
 * KILN_QWGEMM ("nv=4,mr=4,mb=32,perm=1,off=0,pf=4096") overrides the blocking at compile time (nv
 * changes the packed layout), perm=0 uses the shifts on AVX-512 too, off=1 leaves every weight-only
 * qmatmul to the portable kernel (for comparing them), pf=0 prefetches nothing.
 */
#include "codegen/codegen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SERIAL_WORK = 1 << 17 };

typedef struct WCfg {
    int vw;   /* floats per vector: 16 (AVX-512) or 8 (AVX2) */
    int nv;   /* vectors per panel */
    int nr;   /* nv * vw: columns per panel */
    int mr;   /* rows of the micro-tile, at most */
    int mb;   /* rows per m-block (a multiple of mr) */
    int perm; /* 4-bit through vpermps's 16-entry table (AVX-512 only) */
    int pf;   /* bytes ahead in the packed weights that the micro-kernel prefetches (0: none) */
    int off;  /* never take a node (the portable kernel runs) */
} WCfg;

static WCfg wcfg(const Cg *cg)
{
    int avx512 = cg_target(cg).vw >= 16;
    WCfg c = {.vw = avx512 ? 16 : 8, .nv = 4, .mr = 4, .mb = 32, .perm = avx512, .pf = 4096};
    for (const char *p = getenv("KILN_QWGEMM"); p && *p;) {
        char key[8] = {0};
        int n = 0;
        long v = 0;
        if (sscanf(p, "%7[a-z]=%ld%n", key, &v, &n) == 2) {
            if (!strcmp(key, "nv") && v >= 1 && v <= 8)
                c.nv = (int)v;
            else if (!strcmp(key, "mr") && v >= 1 && v <= 8)
                c.mr = (int)v;
            else if (!strcmp(key, "mb") && v >= 1 && v <= 4096)
                c.mb = (int)v;
            else if (!strcmp(key, "perm"))
                c.perm = avx512 && v;
            else if (!strcmp(key, "off"))
                c.off = v != 0;
            else if (!strcmp(key, "pf") && v >= 0 && v <= (1 << 20))
                c.pf = (int)v;
        }
        const char *e = strchr(p, ',');
        p = e ? e + 1 : NULL;
    }
    c.nr = c.nv * c.vw;
    c.mb = (c.mb + c.mr - 1) / c.mr * c.mr;
    return c;
}

static int64_t pad(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

static int four_bit(DType t)
{
    return t == DT_I4 || t == DT_U4;
}

/* The packed copy's shape: sizes in elements, offsets in bytes. */
typedef struct WLay {
    int64_t K, N, G, ng; /* G: rows of k per group (K when one scale per column); ng = ceil(K / G) */
    int64_t Np, kh;      /* columns padded to panels; bytes per column of a panel (K, or 4 ceil(K / 8)) */
    int64_t sc, zp;      /* offsets of the scales and the zero points (zp = 0: none) */
    int64_t sb;          /* bytes per scale (and zero point): 2 when every one is exactly an f16, else 4 */
    int64_t bytes;
} WLay;

/* Whether every value of the constant x (f32 scales or zero points) is a finite f16 exactly, so that
 * the packed copy can hold it as one and the kernel's widening (vcvtph2ps) gives the same float back. */
static int exact_f16(const Node *x)
{
    int64_t n = ir_static_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double v = dtype_load(x->dtype, x->at.data, (size_t)i);
        if (!isfinite(dtype_round(DT_F16, v)) || dtype_round(DT_F16, v) != v)
            return 0;
    }
    return 1;
}

static WLay layout(const WCfg *c, const Node *n)
{
    const Node *w = n->in[1];
    WLay l = {.K = dim_value(w->shape[0]), .N = dim_value(w->shape[1])};
    l.G = n->at.group > 0 && n->at.group < l.K ? n->at.group : l.K;
    l.ng = (l.K + l.G - 1) / l.G;
    l.Np = pad(l.N, c->nr);
    l.kh = four_bit(w->dtype) ? (l.K + 7) / 8 * 4 : l.K;
    l.sb = exact_f16(n->in[2]) && (n->nin <= 3 || exact_f16(n->in[3])) ? 2 : 4;
    l.sc = pad(l.kh * l.Np, 64);
    l.bytes = l.sc + l.sb * l.ng * l.Np;
    if (n->nin > 3) {
        l.zp = pad(l.bytes, 64);
        l.bytes = l.zp + l.sb * l.ng * l.Np;
    }
    return l;
}

static int is_constant(const Node *x)
{
    return (x->op == OP_CONST || x->op == OP_WEIGHT) && x->at.data;
}

static int takes(const Cg *cg, const WCfg *c, const Node *n)
{
    if (c->off || n->op != OP_QMATMUL || ir_qmm_w8a8(n) || n->nin < 3 || !cg_target(cg).x86 || cg_target(cg).vw < 8)
        return 0;
    DType wt = n->in[1]->dtype;
    if (wt != DT_I4 && wt != DT_U4 && wt != DT_I8 && wt != DT_U8)
        return 0;
    for (int i = 1; i < n->nin; i++)
        if (!is_constant(n->in[i]))
            return 0;
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]);
    if (K < 1 || N < 1 || K >= (1 << 24))
        return 0;
    return !(four_bit(wt) && n->at.group > 0 && n->at.group < K && n->at.group % 8);
}

int64_t cg_qwgemm_packed_bytes(Cg *cg, const Node *n)
{
    WCfg c = wcfg(cg);
    return takes(cg, &c, n) ? layout(&c, n).bytes : 0;
}

void cg_qwgemm_pack(Cg *cg, const Node *n, void *dst)
{
    WCfg c = wcfg(cg);
    WLay l = layout(&c, n);
    const Node *w = n->in[1], *s = n->in[2], *z = n->nin > 3 ? n->in[3] : NULL;
    int four = four_bit(w->dtype);
    uint8_t *p = dst;
    memset(dst, 0, (size_t)l.bytes);
    for (int64_t j = 0; j < l.N; j++) {
        uint8_t *panel = p + j / c.nr * l.kh * c.nr;
        int64_t cc = j % c.nr;
        for (int64_t k = 0; k < l.K; k++) {
            int q = (int)dtype_load(w->dtype, w->at.data, (size_t)(k * l.N + j));
            if (four) /* nibble k % 8 of column cc's dword (little-endian) in block k / 8 */
                panel[(k / 8 * c.nr + cc) * 4 + k % 8 / 2] |= (uint8_t)((q & 15) << (4 * (k % 2)));
            else
                panel[k * c.nr + cc] = (uint8_t)q;
        }
        for (int64_t g = 0; g < l.ng; g++) {
            DType st = l.sb == 2 ? DT_F16 : DT_F32;
            dtype_store(st, p + l.sc, (size_t)(g * l.Np + j), dtype_load(s->dtype, s->at.data, (size_t)(g * l.N + j)));
            if (z)
                dtype_store(st, p + l.zp, (size_t)(g * l.Np + j), dtype_load(z->dtype, z->at.data, (size_t)(g * l.N + j)));
        }
    }
}

void cg_qwgemm_explain(Cg *cg, FILE *out)
{
    CgTarget t = cg_target(cg);
    WCfg c = wcfg(cg);
    const char *env = getenv("KILN_QWGEMM");
    if (c.off || !t.x86 || t.vw < 8) {
        fprintf(out, "codegen: weight-only GEMM (w8, w4): %s: quant.c's portable kernel\n",
                c.off ? "off (KILN_QWGEMM)" : "no AVX2 or AVX-512 on this target");
        return;
    }
    fprintf(out, "codegen: weight-only GEMM (w8, w4): dequantised in registers (4-bit by %s), panels of %d columns "
                 "(%d vectors of %d), micro-tiles of up to %d rows, m-blocks of %d rows; panels split over the "
                 "threads, weights prefetched %d bytes ahead%s%s\n",
            c.perm ? "a vpermps table" : "shifts", c.nr, c.nv, c.vw, c.mr, c.mb, c.pf, env ? "; KILN_QWGEMM=" : "",
            env ? env : "");
    int n16 = 0, n32 = 0;
    for (int i = 0; cg->g && i < cg->g->nnode; i++) {
        const Node *n = cg->g->nodes[i];
        if (n->op == OP_QMATMUL && takes(cg, &c, n)) {
            int h = layout(&c, n).sb == 2;
            n16 += h;
            n32 += !h;
        }
    }
    if (cg->g)
        fprintf(out, "codegen: weight-only GEMM: scales (and zero points) packed as f16 when every one of a product's is "
                     "exactly an f16 (choose-quant's w4 scales are), else f32; in this graph: %d products f16, %d f32\n",
                n16, n32);
}

/* ---------------------------------------------------------------- the micro-kernel
 *
 * void kiln_qw<dtype>[z]_ukr<mr>x<nv>[_edge](ptr a, i64 lda, ptr b, ptr c, i64 ldc, ptr sc, ptr zp,
 *                                            i64 ldsc, i64 K, i64 G, i64 nrem)
 *   C[0:mr, 0:NR] = A[0:mr, 0:K] @ dequantize(B)[0:K, 0:NR]
 * a: mr rows lda floats apart; b: the panel; c: ldc floats per row; sc (zp): the panel's first
 * column of the scales (zero points), ldsc floats per group; the _edge variant stores only the
 * first nrem columns. */

typedef struct Ukr {
    Cg *cg;
    const WCfg *c;
    CgVec V;
    DType wt;
    int half; /* scales (and zero points) stored as f16, widened on loading */
    int mr, sets;
    int factored; /* the products of a group summed unscaled (into part), then times its scales */
    LLVMValueRef a, lda, table;
    LLVMValueRef sv[8], zv[8];
    LLVMValueRef acc[2 * 8 * 8];  /* [set][row][vector] allocas: the result */
    LLVMValueRef part[2 * 8 * 8]; /* [set][row][vector] allocas: the group's sums when factored */
} Ukr;

static LLVMValueRef *slot(Ukr *u, LLVMValueRef *arr, int s, int r, int v)
{
    return &arr[(s * u->mr + r) * u->c->nv + v];
}

/* The vw weights of a vector of 8-bit lanes at p, as floats. */
static LLVMValueRef load_8bit(Ukr *u, LLVMValueRef p)
{
    Cg *cg = u->cg;
    LLVMValueRef x = LLVMBuildLoad2(cg->b, LLVMVectorType(cg->i8, (unsigned)u->V.vw), p, "");
    LLVMSetAlignment(x, 1);
    x = u->wt == DT_I8 ? LLVMBuildSExt(cg->b, x, u->V.it, "") : LLVMBuildZExt(cg->b, x, u->V.it, "");
    return LLVMBuildSIToFP(cg->b, x, u->V.vt, "");
}

/* Nibble i (an i32: constant, or a run-time value in the last block of K) of each lane of x (8
 * nibbles of k per column) as floats. */
static LLVMValueRef nibble(Ukr *u, LLVMValueRef x, LLVMValueRef i)
{
    Cg *cg = u->cg;
    const CgVec *V = &u->V;
    LLVMValueRef sh = cg_vsplat(V, LLVMBuildMul(cg->b, i, LLVMConstInt(cg->i32, 4, 0), ""));
    int first = LLVMIsConstant(i) && !LLVMConstIntGetZExtValue(i);
    if (u->table) /* vpermps reads the low 4 bits of each lane */
        return cg_call_intrinsic(cg, "llvm.x86.avx512.permvar.sf.512", NULL, 0,
                                 (LLVMValueRef[]){u->table, first ? x : LLVMBuildLShr(cg->b, x, sh, "")}, 2);
    if (u->wt == DT_I4) { /* the nibble to the top, then an arithmetic shift down */
        LLVMValueRef t = LLVMBuildShl(cg->b, x, LLVMBuildSub(cg->b, cg_viconst(V, cg->i32, 28), sh, ""), "");
        return LLVMBuildSIToFP(cg->b, LLVMBuildAShr(cg->b, t, cg_viconst(V, cg->i32, 28), ""), V->vt, "");
    }
    LLVMValueRef t = LLVMBuildAnd(cg->b, LLVMBuildLShr(cg->b, x, sh, ""), cg_viconst(V, cg->i32, 15), "");
    return LLVMBuildSIToFP(cg->b, t, V->vt, "");
}

/* Adds a[r, k] * q for every row and vector: q as it is when factored (the group's scales come
 * after its sum), else dequantised, (q - z) * s. */
static void fma_rows(Ukr *u, LLVMValueRef k, LLVMValueRef *q, int set)
{
    Cg *cg = u->cg;
    LLVMValueRef w[8];
    for (int v = 0; v < u->c->nv; v++) {
        w[v] = q[v];
        if (!u->factored) {
            if (u->zv[v])
                w[v] = LLVMBuildFSub(cg->b, w[v], u->zv[v], "");
            w[v] = LLVMBuildFMul(cg->b, w[v], u->sv[v], "");
        }
    }
    for (int r = 0; r < u->mr; r++) {
        LLVMValueRef ap = cg_fptr(cg, u->a, cg_add(cg, cg_mul(cg, cg_i64(cg, r), u->lda), k));
        LLVMValueRef av = cg_vsplat(&u->V, LLVMBuildLoad2(cg->b, cg->f32, ap, ""));
        for (int v = 0; v < u->c->nv; v++) {
            LLVMValueRef p = *slot(u, u->factored ? u->part : u->acc, set, r, v);
            LLVMBuildStore(cg->b, cg_vfma(&u->V, av, w[v], LLVMBuildLoad2(cg->b, u->V.vt, p, "")), p);
        }
    }
}

/* The cache lines of the bytes [p + pf, p + pf + n): the weights the kernel reads pf bytes later. The
 * packed weights are read once, in order, panel after panel (so past a panel's end is the next
 * panel); the hardware's prefetchers alone left a cold decode step far below the memory's bandwidth
 * (w4 on GPT-2 124M at 1 thread: about 8 GB/s where f32 streams at 14). */
static void prefetch_ahead(Ukr *u, LLVMValueRef p, int64_t n)
{
    for (int64_t o = 0; u->c->pf > 0 && o < n; o += 64)
        cg_prefetch(u->cg, cg_gep8(u->cg, p, cg_i64(u->cg, u->c->pf + o)), 0);
}

/* 4-bit: the block of 8 rows of k at element k8 of the panel b, its first n rows (n: constant 8,
 * or a run-time count below 8 in the last block of K). */
static void block_4bit(Ukr *u, LLVMValueRef b, LLVMValueRef k8, LLVMValueRef n)
{
    Cg *cg = u->cg;
    LLVMValueRef x[8], q[8];
    LLVMValueRef blk = cg_gep8(cg, b, cg_mul(cg, LLVMBuildUDiv(cg->b, k8, cg_i64(cg, 8), ""), cg_i64(cg, 4 * u->c->nr)));
    for (int v = 0; v < u->c->nv; v++) {
        x[v] = LLVMBuildLoad2(cg->b, u->V.it, cg_gep8(cg, blk, cg_i64(cg, 4 * v * u->V.vw)), "");
        LLVMSetAlignment(x[v], 4);
    }
    prefetch_ahead(u, blk, 4 * u->c->nr);
    if (LLVMIsConstant(n)) {
        for (int i = 0; i < 8; i++) {
            for (int v = 0; v < u->c->nv; v++)
                q[v] = nibble(u, x[v], LLVMConstInt(cg->i32, (unsigned)i, 0));
            fma_rows(u, cg_add(cg, k8, cg_i64(cg, i)), q, i % u->sets);
        }
        return;
    }
    Loop li = cg_loop_begin(cg, cg_i64(cg, 0), n, "nib");
    for (int v = 0; v < u->c->nv; v++)
        q[v] = nibble(u, x[v], LLVMBuildTrunc(cg->b, li.iv, cg->i32, ""));
    fma_rows(u, cg_add(cg, k8, li.iv), q, 0);
    cg_loop_end(cg, &li);
}

/* 8-bit: row k of the panel b. */
static void row_8bit(Ukr *u, LLVMValueRef b, LLVMValueRef k, int set)
{
    Cg *cg = u->cg;
    LLVMValueRef q[8], row = cg_gep8(cg, b, cg_mul(cg, k, cg_i64(cg, u->c->nr)));
    prefetch_ahead(u, row, u->c->nr);
    for (int v = 0; v < u->c->nv; v++)
        q[v] = load_8bit(u, cg_gep8(cg, row, cg_i64(cg, v * u->V.vw)));
    fma_rows(u, k, q, set);
}

/* The vector of vw scales (zero points) at element off of p: f32, or f16 widened (vcvtph2ps: exact). */
static LLVMValueRef load_scales(Ukr *u, LLVMValueRef p, LLVMValueRef off)
{
    Cg *cg = u->cg;
    if (!u->half)
        return cg_vload(&u->V, cg_fptr(cg, p, off), 4);
    LLVMTypeRef ht = LLVMVectorType(cg->f16, (unsigned)u->V.vw);
    LLVMValueRef x = LLVMBuildLoad2(cg->b, ht, cg_gep8(cg, p, cg_mul(cg, off, cg_i64(cg, 2))), "");
    LLVMSetAlignment(x, 2);
    return LLVMBuildFPExt(cg->b, x, u->V.vt, "");
}

static LLVMValueRef ukr_function(Cg *cg, const WCfg *c, DType wt, int zp, int half, int mr, int edge)
{
    char name[80];
    snprintf(name, sizeof name, "kiln_qw%s%s%s_ukr%dx%d%s%s", dtype_traits[wt].name, zp ? "z" : "", half ? "h" : "",
             mr, c->nv, c->perm ? "" : "_shift", edge ? "_edge" : "");
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (f)
        return f;
    LLVMTypeRef params[11] = {cg->ptr, cg->i64, cg->ptr, cg->ptr, cg->i64, cg->ptr,
                              cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64};
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->b);
    LLVMValueRef saved_fn = cg->fn;
    f = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, params, 11, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    cg_vector_width_attr(cg, f, c->vw);
    cg->fn = f;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    Ukr u = {.cg = cg, .c = c, .V = cg_vec(cg, c->vw, 1), .wt = wt, .half = half, .mr = mr};
    u.a = LLVMGetParam(f, 0);
    u.lda = LLVMGetParam(f, 1);
    LLVMValueRef b = LLVMGetParam(f, 2), out = LLVMGetParam(f, 3), ldc = LLVMGetParam(f, 4);
    LLVMValueRef sc = LLVMGetParam(f, 5), zpp = LLVMGetParam(f, 6), ldsc = LLVMGetParam(f, 7);
    LLVMValueRef K = LLVMGetParam(f, 8), G = LLVMGetParam(f, 9), nrem = LLVMGetParam(f, 10);
    int four = four_bit(wt), nacc = mr * c->nv;
    if (four && c->perm) {
        LLVMValueRef t[16];
        for (int i = 0; i < 16; i++)
            t[i] = LLVMConstReal(cg->f32, wt == DT_I4 && i >= 8 ? i - 16 : i);
        u.table = LLVMConstVector(t, 16);
    }
    /* two sets of sums (even and odd k) when there are few, so that the multiply-add's latency does
     * not bound the loop; factored when the result and the group's sums fit in 24 registers */
    u.sets = nacc <= 8 ? 2 : 1;
    u.factored = !zp && nacc * (u.sets + 1) <= 24;
    for (int i = 0; i < nacc * (u.factored ? 1 : u.sets); i++) {
        u.acc[i] = cg_alloca(cg, u.V.vt, "acc");
        LLVMBuildStore(cg->b, LLVMConstNull(u.V.vt), u.acc[i]);
    }
    for (int i = 0; u.factored && i < nacc * u.sets; i++)
        u.part[i] = cg_alloca(cg, u.V.vt, "part");
    /* for each group: its scales (and zero points), then its rows of k */
    Loop lg = cg_loop_begin(cg, cg_i64(cg, 0), cg_ceil_div(cg, K, G), "group");
    LLVMValueRef k0 = cg_mul(cg, lg.iv, G), k1 = cg_smin(cg, K, cg_add(cg, k0, G));
    for (int v = 0; v < c->nv; v++) {
        LLVMValueRef off = cg_add(cg, cg_mul(cg, lg.iv, ldsc), cg_i64(cg, v * c->vw));
        u.sv[v] = load_scales(&u, sc, off);
        u.zv[v] = zp ? load_scales(&u, zpp, off) : NULL;
    }
    for (int i = 0; u.factored && i < nacc * u.sets; i++)
        LLVMBuildStore(cg->b, LLVMConstNull(u.V.vt), u.part[i]);
    if (four) { /* k0 is a multiple of 8 (G is): whole blocks of 8, then the rest of K's last block */
        LLVMValueRef eight = cg_i64(cg, 8), kb = cg_mul(cg, LLVMBuildUDiv(cg->b, k1, eight, ""), eight);
        Loop lb = cg_loop_begin(cg, k0, kb, "block");
        block_4bit(&u, b, lb.iv, cg_i64(cg, 8));
        cg_loop_end_step(cg, &lb, cg_add(cg, lb.iv, eight));
        LLVMBasicBlockRef done = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntSLT, kb, k1, ""), "lastk");
        block_4bit(&u, b, kb, LLVMBuildSub(cg->b, k1, kb, ""));
        cg_if_end(cg, done);
    } else { /* two rows at a time (into the two sets), then the odd one */
        LLVMValueRef two = cg_i64(cg, 2);
        LLVMValueRef kp = cg_add(cg, k0, cg_mul(cg, LLVMBuildUDiv(cg->b, LLVMBuildSub(cg->b, k1, k0, ""), two, ""), two));
        Loop lk = cg_loop_begin(cg, k0, kp, "k2");
        row_8bit(&u, b, lk.iv, 0);
        row_8bit(&u, b, cg_add(cg, lk.iv, cg_i64(cg, 1)), u.sets - 1);
        cg_loop_end_step(cg, &lk, cg_add(cg, lk.iv, two));
        LLVMBasicBlockRef done = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntSLT, kp, k1, ""), "lastk");
        row_8bit(&u, b, kp, 0);
        cg_if_end(cg, done);
    }
    for (int r = 0; u.factored && r < mr; r++) /* the group's sums times its scales */
        for (int v = 0; v < c->nv; v++) {
            LLVMValueRef p = LLVMBuildLoad2(cg->b, u.V.vt, *slot(&u, u.part, 0, r, v), "");
            if (u.sets > 1)
                p = LLVMBuildFAdd(cg->b, p, LLVMBuildLoad2(cg->b, u.V.vt, *slot(&u, u.part, 1, r, v), ""), "");
            LLVMValueRef a = *slot(&u, u.acc, 0, r, v);
            LLVMBuildStore(cg->b, cg_vfma(&u.V, p, u.sv[v], LLVMBuildLoad2(cg->b, u.V.vt, a, "")), a);
        }
    cg_loop_end(cg, &lg);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < c->nv; v++) {
            LLVMValueRef y = LLVMBuildLoad2(cg->b, u.V.vt, *slot(&u, u.acc, 0, r, v), "");
            if (u.sets > 1 && !u.factored)
                y = LLVMBuildFAdd(cg->b, y, LLVMBuildLoad2(cg->b, u.V.vt, *slot(&u, u.acc, 1, r, v), ""), "");
            LLVMValueRef p = cg_fptr(cg, out, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldc), cg_i64(cg, v * c->vw)));
            if (edge)
                cg_vmasked_store(&u.V, y, p, cg_vlanes_below(&u.V, LLVMBuildSub(cg->b, nrem, cg_i64(cg, v * c->vw), "")));
            else
                cg_vstore(&u.V, y, p, 4);
        }
    LLVMBuildRetVoid(cg->b);
    cg->fn = saved_fn;
    LLVMPositionBuilderAtEnd(cg->b, saved_bb);
    return f;
}

/* ---------------------------------------------------------------- tiles */

enum { CP_OUT, CP_A, CP_PK, CP_LEAVES, CP_M, CP_COUNT };

typedef struct Tiles {
    const WCfg *c;
    const WLay *l;
    const Node *n;
    LLVMValueRef epi; /* the epilogue's function, or NULL */
} Tiles;

/* Tiles [begin, end), m-block then panel: each tile's micro-rows, then its epilogue. */
static void tiles_body(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Tiles *tl = ctx;
    const WCfg *c = tl->c;
    const WLay *l = tl->l;
    const Node *n = tl->n;
    int64_t np = l->Np / c->nr;
    LLVMValueRef out = cap[CP_OUT], pk = cap[CP_PK], M = cap[CP_M];
    Loop lt = cg_loop_begin(cg, begin, end, "tile");
    LLVMValueRef mb = LLVMBuildSDiv(cg->b, lt.iv, cg_i64(cg, np), ""), p = LLVMBuildSRem(cg->b, lt.iv, cg_i64(cg, np), "");
    LLVMValueRef i0 = cg_mul(cg, mb, cg_i64(cg, c->mb)), i1 = cg_smin(cg, M, cg_add(cg, i0, cg_i64(cg, c->mb)));
    LLVMValueRef col = cg_mul(cg, p, cg_i64(cg, c->nr)), nrem = LLVMBuildSub(cg->b, cg_i64(cg, l->N), col, "");
    LLVMValueRef edge = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, nrem, cg_i64(cg, c->nr), ""), cg->i64, "");
    LLVMValueRef panel = cg_gep8(cg, pk, cg_mul(cg, p, cg_i64(cg, l->kh * c->nr)));
    LLVMValueRef sc = cg_gep8(cg, pk, cg_add(cg, cg_i64(cg, l->sc), cg_mul(cg, col, cg_i64(cg, l->sb))));
    LLVMValueRef zp = l->zp ? cg_gep8(cg, pk, cg_add(cg, cg_i64(cg, l->zp), cg_mul(cg, col, cg_i64(cg, l->sb)))) : LLVMConstNull(cg->ptr);
    Loop li = cg_loop_begin(cg, i0, i1, "ir");
    LLVMValueRef mr = cg_smin(cg, cg_i64(cg, c->mr), LLVMBuildSub(cg->b, i1, li.iv, ""));
    LLVMValueRef args[11] = {cg_fptr(cg, cap[CP_A], cg_mul(cg, li.iv, cg_i64(cg, l->K))), cg_i64(cg, l->K), panel,
                             cg_fptr(cg, out, cg_add(cg, cg_mul(cg, li.iv, cg_i64(cg, l->N)), col)), cg_i64(cg, l->N), sc, zp,
                             cg_i64(cg, l->Np), cg_i64(cg, l->K), cg_i64(cg, l->G), nrem};
    /* the micro-kernel for (rows, edge) */
    LLVMValueRef key = cg_add(cg, cg_mul(cg, LLVMBuildSub(cg->b, mr, cg_i64(cg, 1), ""), cg_i64(cg, 2)), edge);
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "bad");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "next");
    LLVMValueRef sw = LLVMBuildSwitch(cg->b, key, bad, (unsigned)(2 * c->mr));
    for (int m = 1; m <= c->mr; m++)
        for (int e = 0; e < 2; e++) {
            if ((e && l->N % c->nr == 0) || (!e && l->N < c->nr))
                continue;
            LLVMBasicBlockRef cb = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "ukr");
            LLVMAddCase(sw, cg_i64(cg, (m - 1) * 2 + e), cb);
            LLVMPositionBuilderAtEnd(cg->b, cb);
            LLVMValueRef u = ukr_function(cg, c, n->in[1]->dtype, l->zp != 0, l->sb == 2, m, e);
            LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(u), u, args, 11, "");
            LLVMBuildBr(cg->b, next);
        }
    LLVMPositionBuilderAtEnd(cg->b, bad);
    LLVMBuildUnreachable(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, next);
    if (tl->epi) {
        LLVMValueRef eargs[7] = {out, cap[CP_LEAVES], cg->syms, li.iv, cg_add(cg, li.iv, mr), col,
                                 cg_smin(cg, cg_i64(cg, l->N), cg_add(cg, col, cg_i64(cg, c->nr)))};
        LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(tl->epi), tl->epi, eargs, 7, "");
    }
    cg_loop_end_step(cg, &li, cg_add(cg, li.iv, cg_i64(cg, c->mr)));
    cg_loop_end(cg, &lt);
}

int cg_qwgemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef a, LLVMValueRef pk, const Fused *f,
              LLVMValueRef *leafp)
{
    WCfg c = wcfg(cg);
    if (!takes(cg, &c, n))
        return 1;
    WLay l = layout(&c, n);
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, n->in[0], dims);
    LLVMValueRef M = cg_numel(cg, n->in[0]->rank - 1, dims);
    LLVMValueRef tm = cg_ceil_div(cg, M, cg_i64(cg, c.mb));
    LLVMValueRef leaves = f ? cg_fused_leaves(cg, f, leafp) : LLVMConstNull(cg->ptr);
    LLVMValueRef cap[CP_COUNT] = {out, a, pk, leaves, M};
    Tiles tl = {&c, &l, n, f ? cg_fused_epilogue(cg, f, 0) : NULL};
    char name[64];
    snprintf(name, sizeof name, "node%d_qwgemm_tiles", f ? f->root->id : n->id);
    CgPar p = {.split = CG_RANGES, .n = cg_mul(cg, tm, cg_i64(cg, l.Np / c.nr)), .work = cg_mul(cg, M, cg_i64(cg, l.K * l.N)),
               .min_work = SERIAL_WORK, .name = name, .vw = c.vw};
    cg_parallel(cg, &p, CP_COUNT, cap, tiles_body, &tl);
    return 0;
}
