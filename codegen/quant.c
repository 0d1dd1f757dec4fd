/* quant.c: kernels of the quantization ops: quantize, dequantize and qmatmul (ir/quant.c defines
 * them; the interpreter is the oracle and every kernel reproduces its float32 steps exactly).
 *
 * quantize and dequantize are one serial loop nest over the elements: they convert activations at
 * the edges of a quantized region, cheap next to the products between, and a packed 4-bit output is
 * written a nibble at a time (read, modify, write), which a split over threads could tear.
 *
 * qmatmul, portable form: the rows of a (every dimension but the last, flattened) are split over the
 * runtime's threads. A row accumulates as a sum of rows of w scaled by elements of a (k outer, n
 * inner, so the inner loop walks w and the output contiguously and LLVM vectorises it):
 *   - weight-only: each row of w is dequantised once per block of RB rows of a into a stack buffer,
 *     (q - z) * s in f32, and accumulated in f32 into the block's output rows (per element, without
 *     the buffer, when a row of w exceeds WBUF bytes); bf16 weights are read as they are and each
 *     element of a is rounded to bf16 first;
 *   - dynamic (W8A8): the row's largest |a| gives its scale, the row is quantized into an i8 buffer
 *     on the stack (K is static), the integer products accumulate exactly in i32 in the output row,
 *     which is then rescaled in place: ((float)acc * sa) * s[n]. Identical bits to the interpreter.
 *     Static W8A8 (ascale) is the same with the node's scale as every row's sa, and no maximum.
 */
#include "codegen/codegen.h"

/* ---------------------------------------------------------------- scalar steps (ir/quant.c) */

/* v as a constant of type t: f32, or a vector of f32 */
static LLVMValueRef fconst_of(Cg *cg, LLVMTypeRef t, double v)
{
    if (LLVMGetTypeKind(t) != LLVMVectorTypeKind)
        return LLVMConstReal(t, v);
    LLVMValueRef e[64];
    unsigned n = LLVMGetVectorSize(t);
    KILN_ASSERT(n <= 64);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstReal(cg->f32, v);
    return LLVMConstVector(e, n);
}

static LLVMValueRef clampf(Cg *cg, LLVMValueRef r, int lo, int hi)
{
    LLVMValueRef l = fconst_of(cg, LLVMTypeOf(r), lo), h = fconst_of(cg, LLVMTypeOf(r), hi);
    r = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOLT, r, l, ""), l, r, "");
    return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, r, h, ""), h, r, "");
}

/* ir_quantize1: z when s == 0 or x / s is NaN, else clamp(roundeven(x / s) + z); f32 in, f32 out
 * (never NaN, so the conversion to an integer that follows is defined); lane by lane for vectors of
 * f32 (x, s and z all of one type). */
LLVMValueRef cg_quantize_f32(Cg *cg, LLVMValueRef x, LLVMValueRef s, LLVMValueRef z, int lo, int hi)
{
    LLVMValueRef d = LLVMBuildFDiv(cg->b, x, s, "");
    LLVMValueRef q = LLVMBuildFAdd(cg->b, cg_intrinsic(cg, "llvm.roundeven", &d, 1), z, "");
    LLVMValueRef none = LLVMBuildOr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOEQ, s, LLVMConstNull(LLVMTypeOf(s)), ""),
                                    LLVMBuildFCmp(cg->b, LLVMRealUNO, d, d, ""), "");
    return clampf(cg, LLVMBuildSelect(cg->b, none, z, q, ""), lo, hi);
}

/* An integer (i64, as cg_load gives) as f32. */
static LLVMValueRef itof(Cg *cg, LLVMValueRef v)
{
    return LLVMBuildSIToFP(cg->b, v, cg->f32, "");
}

/* ---------------------------------------------------------------- quantize, dequantize */

typedef struct QCtx {
    const Node *n;
    LLVMValueRef out, x, s, z;
    LLVMValueRef xstride[IR_MAX_RANK], sstride[IR_MAX_RANK], sdims[IR_MAX_RANK];
} QCtx;

static void quant_body(Cg *cg, void *ctx, LLVMValueRef *idx)
{
    QCtx *c = ctx;
    const Node *n = c->n, *x = n->in[0], *s = n->in[1];
    LLVMValueRef e = cg_i64(cg, 0), p = cg_i64(cg, 0);
    for (int i = 0; i < x->rank; i++) {
        e = LLVMBuildAdd(cg->b, e, LLVMBuildMul(cg->b, idx[i], c->xstride[i], ""), "");
        if (!s->rank)
            continue;
        /* the scale's index along i: 0 where it has size 1, k / G along the group axis, else k */
        LLVMValueRef k = idx[i];
        if (n->at.group > 0 && i == n->at.axis)
            k = LLVMBuildUDiv(cg->b, k, cg_i64(cg, n->at.group), "");
        LLVMValueRef one = LLVMBuildICmp(cg->b, LLVMIntEQ, c->sdims[i], cg_i64(cg, 1), "");
        k = LLVMBuildSelect(cg->b, one, cg_i64(cg, 0), k, "");
        p = LLVMBuildAdd(cg->b, p, LLVMBuildMul(cg->b, k, c->sstride[i], ""), "");
    }
    DType qt = n->op == OP_QUANTIZE ? n->dtype : x->dtype;
    int lo = 0, hi = 0;
    KILN_ASSERT(ir_quant_range(qt, &lo, &hi));
    LLVMValueRef sv = cg_load(cg, c->s, DT_F32, p);
    LLVMValueRef zv = c->z ? itof(cg, cg_load(cg, c->z, qt, p)) : LLVMConstNull(cg->f32);
    if (n->op == OP_QUANTIZE) {
        LLVMValueRef q = cg_quantize_f32(cg, cg_load(cg, c->x, DT_F32, e), sv, zv, lo, hi);
        cg_store(cg, c->out, qt, e, LLVMBuildFPToSI(cg->b, q, cg->i64, ""));
    } else {
        LLVMValueRef q = itof(cg, cg_load(cg, c->x, qt, e));
        cg_store(cg, c->out, DT_F32, e, LLVMBuildFMul(cg->b, LLVMBuildFSub(cg->b, q, zv, ""), sv, ""));
    }
}

static int quant_elementwise(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    QCtx c = {.n = n, .out = out, .x = in[0], .s = in[1], .z = n->nin > 2 ? in[2] : NULL};
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, n->in[0], dims);
    cg_strides(cg, n->rank, dims, c.xstride);
    if (n->in[1]->rank) {
        cg_shape(cg, n->in[1], c.sdims);
        cg_strides(cg, n->in[1]->rank, c.sdims, c.sstride);
    }
    cg_nest(cg, n->rank, dims, quant_body, &c);
    return 0;
}

/* ---------------------------------------------------------------- qmatmul, portable */

enum {
    RB = 8,            /* weight-only: output rows that share each dequantised row of w */
    WBUF = 64 << 10,   /* ... when that row takes at most this many bytes (else per element) */
};

/* Element k of a row of a weight-only qmatmul's left operand: for bf16 weights rounded to bf16 (to
 * nearest even: through a bf16 store and load, which LLVM folds into integer operations). */
static LLVMValueRef a_value(Cg *cg, const Node *n, LLVMValueRef a, LLVMValueRef idx, LLVMValueRef slot)
{
    LLVMValueRef v = cg_load(cg, a, DT_F32, idx);
    if (n->in[1]->dtype != DT_BF16)
        return v;
    cg_store(cg, slot, DT_BF16, cg_i64(cg, 0), v);
    return cg_load(cg, slot, DT_BF16, cg_i64(cg, 0));
}

/* Element wi of a weight-only qmatmul's w dequantised, its scale (and zero point) at sp: (q - z) * s,
 * or the bf16 value itself. */
static LLVMValueRef w_value(Cg *cg, const Node *n, LLVMValueRef wp, LLVMValueRef s, LLVMValueRef z, LLVMValueRef wi,
                            LLVMValueRef sp)
{
    DType wt = n->in[1]->dtype;
    if (wt == DT_BF16)
        return cg_load(cg, wp, DT_BF16, wi);
    LLVMValueRef q = itof(cg, cg_load(cg, wp, wt, wi));
    if (z)
        q = LLVMBuildFSub(cg->b, q, itof(cg, cg_load(cg, z, wt, sp)), "");
    return LLVMBuildFMul(cg->b, q, cg_load(cg, s, DT_F32, sp), "");
}

/* Rows [begin, end) of a qmatmul. cap: out, a, w, s, z (s and z may be null pointers). */
static void qmm_rows(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Node *n = ctx, *w = n->in[1];
    int64_t K = dim_value(w->shape[0]), N = dim_value(w->shape[1]), G = n->at.group > 0 ? n->at.group : K;
    LLVMValueRef out = cap[0], a = cap[1], wp = cap[2], s = cap[3], z = n->nin > 3 ? cap[4] : NULL;
    LLVMValueRef cK = cg_i64(cg, K), cN = cg_i64(cg, N);
    LLVMValueRef slot = cg_alloca(cg, cg->i16, "bf16");
    if (!ir_qmm_w8a8(n) && N * 4 <= WBUF) {
        /* weight-only, blocks of RB rows: each row k of w dequantised once into a stack buffer, then
         * added into the block's RB output rows (a contiguous, vectorisable loop) */
        LLVMValueRef wbuf = cg_alloca(cg, LLVMArrayType2(cg->f32, (uint64_t)N), "wrow");
        LLVMValueRef nrows = LLVMBuildSub(cg->b, end, begin, "");
        LLVMValueRef nblk = LLVMBuildUDiv(cg->b, LLVMBuildAdd(cg->b, nrows, cg_i64(cg, RB - 1), ""), cg_i64(cg, RB), "");
        Loop lb = cg_loop_begin(cg, cg_i64(cg, 0), nblk, "blk");
        LLVMValueRef r0 = LLVMBuildAdd(cg->b, begin, LLVMBuildMul(cg->b, lb.iv, cg_i64(cg, RB), ""), "");
        LLVMValueRef r1 = LLVMBuildAdd(cg->b, r0, cg_i64(cg, RB), "");
        r1 = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntULT, r1, end, ""), r1, end, "");
        Loop lz = cg_loop_begin(cg, LLVMBuildMul(cg->b, r0, cN, ""), LLVMBuildMul(cg->b, r1, cN, ""), "zero");
        cg_store(cg, out, DT_F32, lz.iv, LLVMConstNull(cg->f32));
        cg_loop_end(cg, &lz);
        Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), cK, "k");
        LLVMValueRef srow = LLVMBuildMul(cg->b, LLVMBuildUDiv(cg->b, lk.iv, cg_i64(cg, G), ""), cN, "");
        LLVMValueRef wrow = LLVMBuildMul(cg->b, lk.iv, cN, "");
        Loop ld = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
        LLVMValueRef sp = LLVMBuildAdd(cg->b, srow, ld.iv, "");
        cg_store(cg, wbuf, DT_F32, ld.iv, w_value(cg, n, wp, s, z, LLVMBuildAdd(cg->b, wrow, ld.iv, ""), sp));
        cg_loop_end(cg, &ld);
        Loop lr = cg_loop_begin(cg, r0, r1, "row");
        LLVMValueRef av = a_value(cg, n, a, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lr.iv, cK, ""), lk.iv, ""), slot);
        LLVMValueRef orow = LLVMBuildMul(cg->b, lr.iv, cN, "");
        Loop ln = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
        LLVMValueRef oi = LLVMBuildAdd(cg->b, orow, ln.iv, "");
        LLVMValueRef acc = cg_load(cg, out, DT_F32, oi);
        cg_store(cg, out, DT_F32, oi,
                 cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){av, cg_load(cg, wbuf, DT_F32, ln.iv), acc}, 3));
        cg_loop_end(cg, &ln);
        cg_loop_end(cg, &lr);
        cg_loop_end(cg, &lk);
        cg_loop_end(cg, &lb);
        return;
    }
    Loop lm = cg_loop_begin(cg, begin, end, "row");
    LLVMValueRef arow = LLVMBuildMul(cg->b, lm.iv, cK, ""), orow = LLVMBuildMul(cg->b, lm.iv, cN, "");
    if (!ir_qmm_w8a8(n)) {
        Loop lz = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
        cg_store(cg, out, DT_F32, LLVMBuildAdd(cg->b, orow, lz.iv, ""), LLVMConstNull(cg->f32));
        cg_loop_end(cg, &lz);
        Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), cK, "k");
        LLVMValueRef av = a_value(cg, n, a, LLVMBuildAdd(cg->b, arow, lk.iv, ""), slot);
        LLVMValueRef srow = LLVMBuildMul(cg->b, LLVMBuildUDiv(cg->b, lk.iv, cg_i64(cg, G), ""), cN, "");
        LLVMValueRef wrow = LLVMBuildMul(cg->b, lk.iv, cN, "");
        Loop ln = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
        LLVMValueRef sp = LLVMBuildAdd(cg->b, srow, ln.iv, "");
        LLVMValueRef wd = w_value(cg, n, wp, s, z, LLVMBuildAdd(cg->b, wrow, ln.iv, ""), sp);
        LLVMValueRef oi = LLVMBuildAdd(cg->b, orow, ln.iv, "");
        LLVMValueRef acc = cg_load(cg, out, DT_F32, oi);
        cg_store(cg, out, DT_F32, oi, cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){av, wd, acc}, 3));
        cg_loop_end(cg, &ln);
        cg_loop_end(cg, &lk);
        cg_loop_end(cg, &lm);
        return;
    }
    /* W8A8: the row's scale (static: the node's), the row in i8, exact i32 sums in the output row,
     * then the rescale */
    LLVMTypeRef qt = LLVMArrayType2(cg->i8, (uint64_t)(K ? K : 1));
    LLVMValueRef qa = cg_alloca(cg, qt, "qa");
    LLVMValueRef sa = LLVMConstReal(cg->f32, ir_qmm_static_scale(n));
    if (n->at.dynamic) {
        LLVMValueRef amax = cg_alloca(cg, cg->f32, "amax");
        LLVMBuildStore(cg->b, LLVMConstNull(cg->f32), amax);
        Loop la = cg_loop_begin(cg, cg_i64(cg, 0), cK, "k");
        LLVMValueRef av = cg_load(cg, a, DT_F32, LLVMBuildAdd(cg->b, arow, la.iv, ""));
        LLVMValueRef mx = cg_intrinsic(cg, "llvm.maxnum", (LLVMValueRef[]){LLVMBuildLoad2(cg->b, cg->f32, amax, ""),
                                                                         cg_intrinsic(cg, "llvm.fabs", &av, 1)}, 2);
        LLVMBuildStore(cg->b, mx, amax);
        cg_loop_end(cg, &la);
        sa = LLVMBuildFDiv(cg->b, LLVMBuildLoad2(cg->b, cg->f32, amax, ""), LLVMConstReal(cg->f32, 127), "");
    }
    Loop lq = cg_loop_begin(cg, cg_i64(cg, 0), cK, "k");
    LLVMValueRef av = cg_load(cg, a, DT_F32, LLVMBuildAdd(cg->b, arow, lq.iv, ""));
    LLVMValueRef q = cg_quantize_f32(cg, av, sa, LLVMConstNull(cg->f32), -127, 127);
    LLVMBuildStore(cg->b, LLVMBuildFPToSI(cg->b, q, cg->i8, ""), LLVMBuildGEP2(cg->b, cg->i8, qa, &lq.iv, 1, ""));
    cg_loop_end(cg, &lq);
    Loop lz = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
    LLVMBuildStore(cg->b, LLVMConstInt(cg->i32, 0, 0),
                   LLVMBuildGEP2(cg->b, cg->i32, out, (LLVMValueRef[]){LLVMBuildAdd(cg->b, orow, lz.iv, "")}, 1, ""));
    cg_loop_end(cg, &lz);
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), cK, "k");
    LLVMValueRef qv = LLVMBuildSExt(cg->b, LLVMBuildLoad2(cg->b, cg->i8, LLVMBuildGEP2(cg->b, cg->i8, qa, &lk.iv, 1, ""), ""),
                                    cg->i32, "");
    LLVMValueRef wrow = LLVMBuildMul(cg->b, lk.iv, cN, "");
    Loop ln = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
    LLVMValueRef wv = LLVMBuildTrunc(cg->b, cg_load(cg, wp, DT_I8, LLVMBuildAdd(cg->b, wrow, ln.iv, "")), cg->i32, "");
    LLVMValueRef op = LLVMBuildGEP2(cg->b, cg->i32, out, (LLVMValueRef[]){LLVMBuildAdd(cg->b, orow, ln.iv, "")}, 1, "");
    LLVMBuildStore(cg->b, LLVMBuildAdd(cg->b, LLVMBuildLoad2(cg->b, cg->i32, op, ""), LLVMBuildMul(cg->b, qv, wv, ""), ""), op);
    cg_loop_end(cg, &ln);
    cg_loop_end(cg, &lk);
    Loop lr = cg_loop_begin(cg, cg_i64(cg, 0), cN, "n");
    LLVMValueRef oi = LLVMBuildAdd(cg->b, orow, lr.iv, "");
    LLVMValueRef acc = LLVMBuildSIToFP(cg->b, LLVMBuildLoad2(cg->b, cg->i32, LLVMBuildGEP2(cg->b, cg->i32, out, &oi, 1, ""), ""),
                                       cg->f32, "");
    LLVMValueRef y = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, acc, sa, ""), cg_load(cg, s, DT_F32, lr.iv), "");
    cg_store(cg, out, DT_F32, oi, y);
    cg_loop_end(cg, &lr);
    cg_loop_end(cg, &lm);
}

static int qmatmul(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    if (!cg_qgemm(cg, n, out, in)) /* VNNI, AVX512-BF16 or weight-only (qwgemm.c) with packed weights */
        return 0;
    const Node *a = n->in[0], *w = n->in[1];
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, a, dims);
    LLVMValueRef rows = cg_numel(cg, a->rank - 1, dims);
    LLVMValueRef none = LLVMConstNull(cg->ptr);
    LLVMValueRef cap[5] = {out, in[0], in[1], n->nin > 2 ? in[2] : none, n->nin > 3 ? in[3] : none};
    LLVMValueRef work = LLVMBuildMul(cg->b, rows, cg_i64(cg, dim_value(w->shape[0]) * dim_value(w->shape[1])), "");
    char name[64];
    snprintf(name, sizeof name, "node%d_qmatmul_rows", n->id);
    cg_parallel_work(cg, rows, work, 5, cap, qmm_rows, (void *)n, name);
    return 0;
}

/* ---------------------------------------------------------------- qmatmul with an epilogue */

typedef struct Epi {
    LLVMValueRef fn; /* cg_fused_epilogue's function */
    int64_t N;
} Epi;

/* Rows [begin, end) of the epilogue over a product already in out. cap: out, the leaves' array. */
static void epilogue_rows(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Epi *e = ctx;
    LLVMValueRef args[7] = {cap[0], cap[1], cg->syms, begin, end, cg_i64(cg, 0), cg_i64(cg, e->N)};
    LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(e->fn), e->fn, args, 7, "");
}

int cg_quant_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in)
{
    if (!cg_qgemm_fused(cg, f, out, in)) /* VNNI: the epilogue on each micro-tile */
        return 0;
    /* otherwise the product into out, then the epilogue's loop over it, rows split over the threads */
    const Node *mm = f->mm;
    qmatmul(cg, mm, out, in + f->nleaf);
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, mm->in[0], dims);
    LLVMValueRef rows = cg_numel(cg, mm->in[0]->rank - 1, dims);
    Epi e = {cg_fused_epilogue(cg, f, 0), dim_value(mm->in[1]->shape[1])};
    LLVMValueRef cap[2] = {out, cg_fused_leaves(cg, f, in)};
    char name[64];
    snprintf(name, sizeof name, "node%d_epilogue_rows", f->root->id);
    cg_parallel_work(cg, rows, LLVMBuildMul(cg->b, rows, cg_i64(cg, e.N), ""), 2, cap, epilogue_rows, &e, name);
    return 0;
}

int cg_quant(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    switch (n->op) {
    case OP_QUANTIZE:
    case OP_DEQUANTIZE: return quant_elementwise(cg, n, out, in);
    case OP_QMATMUL: return qmatmul(cg, n, out, in);
    default: UNREACHABLE();
    }
}
