/* attention.c: the fused attention op, one pass over the keys per query row (online softmax).
 *
 * For each query row the keys are visited in tiles of ATTN_TILE: the tile's scores go to a small
 * stack buffer, and the kernel keeps the running maximum m of the scores seen so far, the running
 * sum l of exp(score - m), and the output row as an accumulator of exp(score - m) * v; when a tile
 * raises the maximum, l and the accumulator are rescaled by exp(m_old - m_new), once per tile. The
 * tile's probabilities (exp without a library call) and its p v products are plain loops LLVM
 * vectorises. At the end the row is divided by l, or set to zero when every key was masked (never
 * NaN). The T x T score matrix is never stored. Under a causal mask, keys after the diagonal are not
 * visited at all.
 *
 * Rows (every batch index and query) are split over the runtime's threads. Dot products may be
 * reassociated (so LLVM vectorises them). Tiling over several query rows, so that a tile of K and V
 * serves them all, is the next step for speed.
 */
#include "codegen/codegen.h"

#include <math.h>
#include <stdio.h>

/* Keys per tile: the scores of one tile live in a stack buffer; the accumulator is rescaled at most
 * once per tile. 64 keys x (d + dv) floats of K and V stay in L1 for the head sizes of transformers. */
enum { ATTN_TILE = 64 };

typedef struct AttnCtx {
    const Node *n;
    LLVMValueRef out, q, k, v, mask;
    LLVMValueRef Tq, Tk, D, Dv;
    int nbatch;
    LLVMValueRef qs[IR_MAX_RANK], ks[IR_MAX_RANK], vs[IR_MAX_RANK], ms[IR_MAX_RANK + 2];
} AttnCtx;

static LLVMValueRef load_f(Cg *cg, LLVMValueRef p, DType t, LLVMValueRef i)
{
    return cg_convert(cg, cg_load(cg, p, t, i), t, DT_F32);
}

/* Strides in elements of each batch dim of operand x (rank-2 batch dims, right-aligned against
 * the output's nbatch), 0 where x broadcasts. */
static void batch_strides(Cg *cg, const Node *x, int nbatch, LLVMValueRef *st)
{
    LLVMValueRef dims[IR_MAX_RANK], strides[IR_MAX_RANK];
    cg_shape(cg, x, dims);
    cg_strides(cg, x->rank, dims, strides);
    int xb = x->rank - 2;
    for (int i = 0; i < nbatch; i++) {
        int j = i - (nbatch - xb);
        st[i] = j < 0 || dim_eq(x->shape[j], dim_const(1)) ? cg_i64(cg, 0) : strides[j];
    }
}

/* Sizes and strides, computed in the function that uses them. */
static void setup(Cg *cg, AttnCtx *c)
{
    const Node *n = c->n, *q = n->in[0], *k = n->in[1], *v = n->in[2];
    c->nbatch = n->rank - 2;
    c->Tq = cg_dim(cg, q->shape[q->rank - 2]);
    c->D = cg_dim(cg, q->shape[q->rank - 1]);
    c->Tk = cg_dim(cg, k->shape[k->rank - 2]);
    c->Dv = cg_dim(cg, v->shape[v->rank - 1]);
    batch_strides(cg, q, c->nbatch, c->qs);
    batch_strides(cg, k, c->nbatch, c->ks);
    batch_strides(cg, v, c->nbatch, c->vs);
    if (c->mask) {
        /* the mask broadcast over batch + [Tq, Tk] */
        View mv = cg_view_broadcast(cg, n->in[3], c->mask, c->nbatch + 2);
        for (int i = 0; i < c->nbatch + 2; i++)
            c->ms[i] = mv.stride[i];
    }
}

/* One query row: row r of the flattened (batch..., Tq) rows of the output. */
static void attn_row(Cg *cg, AttnCtx *c, LLVMValueRef r)
{
    const Node *n = c->n;
    DType dt = n->dtype;
    LLVMTypeRef f = cg->f32;
    LLVMValueRef i = LLVMBuildSRem(cg->b, r, c->Tq, ""), rest = LLVMBuildSDiv(cg->b, r, c->Tq, "");
    /* element offsets of this row's batch in each operand: the batch index, digit by digit */
    LLVMValueRef qo = cg_i64(cg, 0), ko = cg_i64(cg, 0), vo = cg_i64(cg, 0), mo = cg_i64(cg, 0);
    for (int d = c->nbatch - 1; d >= 0; d--) {
        LLVMValueRef size = cg_dim(cg, n->shape[d]);
        LLVMValueRef bi = LLVMBuildSRem(cg->b, rest, size, "");
        rest = LLVMBuildSDiv(cg->b, rest, size, "");
        qo = LLVMBuildAdd(cg->b, qo, LLVMBuildMul(cg->b, bi, c->qs[d], ""), "");
        ko = LLVMBuildAdd(cg->b, ko, LLVMBuildMul(cg->b, bi, c->ks[d], ""), "");
        vo = LLVMBuildAdd(cg->b, vo, LLVMBuildMul(cg->b, bi, c->vs[d], ""), "");
        if (c->mask)
            mo = LLVMBuildAdd(cg->b, mo, LLVMBuildMul(cg->b, bi, c->ms[d], ""), "");
    }
    LLVMValueRef m = cg_alloca(cg, f, "m"), l = cg_alloca(cg, f, "l"), dot = cg_alloca(cg, f, "dot");
    LLVMValueRef tmax = cg_alloca(cg, f, "tmax"), tsum = cg_alloca(cg, f, "tsum");
    LLVMValueRef sbuf = cg_alloca(cg, LLVMArrayType2(f, ATTN_TILE), "scores"); /* one tile of scores */
    LLVMValueRef scale = LLVMConstReal(f, n->at.scale);
    LLVMValueRef ninf = LLVMConstReal(f, -INFINITY), zero = LLVMConstReal(f, 0), one = LLVMConstReal(f, 1);
    LLVMValueRef orow = LLVMBuildMul(cg->b, r, c->Dv, "");
    LLVMValueRef qrow = LLVMBuildAdd(cg->b, qo, LLVMBuildMul(cg->b, i, c->D, ""), "");
    LLVMBuildStore(cg->b, ninf, m);
    LLVMBuildStore(cg->b, zero, l);
    Loop lz = cg_loop_begin(cg, cg_i64(cg, 0), c->Dv, "e");
    cg_store(cg, c->out, DT_F32, LLVMBuildAdd(cg->b, orow, lz.iv, ""), zero);
    cg_loop_end(cg, &lz);
    /* keys visible from row i: all, or under the causal mask j <= i + Tk - Tq */
    LLVMValueRef jend = c->Tk;
    if (n->at.causal) {
        LLVMValueRef lim = LLVMBuildAdd(cg->b, LLVMBuildAdd(cg->b, i, LLVMBuildSub(cg->b, c->Tk, c->Tq, ""), ""),
                                        cg_i64(cg, 1), "");
        jend = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, lim, c->Tk, ""), lim, c->Tk, "");
    }
    LLVMValueRef ntiles = LLVMBuildSDiv(cg->b, LLVMBuildAdd(cg->b, jend, cg_i64(cg, ATTN_TILE - 1), ""), cg_i64(cg, ATTN_TILE), "");
    Loop lt = cg_loop_begin(cg, cg_i64(cg, 0), ntiles, "tile");
    LLVMValueRef j0 = LLVMBuildMul(cg->b, lt.iv, cg_i64(cg, ATTN_TILE), "");
    LLVMValueRef rem = LLVMBuildSub(cg->b, jend, j0, "");
    LLVMValueRef jn = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, rem, cg_i64(cg, ATTN_TILE), ""), rem,
                                      cg_i64(cg, ATTN_TILE), "");
    /* 1. the tile's scores, and their maximum */
    LLVMBuildStore(cg->b, ninf, tmax);
    Loop ls = cg_loop_begin(cg, cg_i64(cg, 0), jn, "jj");
    LLVMValueRef j = LLVMBuildAdd(cg->b, j0, ls.iv, "");
    LLVMValueRef krow = LLVMBuildAdd(cg->b, ko, LLVMBuildMul(cg->b, j, c->D, ""), "");
    LLVMBuildStore(cg->b, zero, dot);
    Loop ld = cg_loop_begin(cg, cg_i64(cg, 0), c->D, "d");
    LLVMValueRef qv = load_f(cg, c->q, dt, LLVMBuildAdd(cg->b, qrow, ld.iv, ""));
    LLVMValueRef kv = load_f(cg, c->k, dt, LLVMBuildAdd(cg->b, krow, ld.iv, ""));
    /* reassociation lets LLVM keep the dot product in vector registers (partial sums per lane) */
    LLVMValueRef fma = cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){qv, kv, LLVMBuildLoad2(cg->b, f, dot, "")}, 3);
    LLVMSetFastMathFlags(fma, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
    LLVMBuildStore(cg->b, fma, dot);
    cg_loop_end(cg, &ld);
    LLVMValueRef sc = LLVMBuildFMul(cg->b, LLVMBuildLoad2(cg->b, f, dot, ""), scale, "");
    if (c->mask) {
        LLVMValueRef mi = LLVMBuildAdd(cg->b, mo, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, i, c->ms[c->nbatch], ""),
                                                              LLVMBuildMul(cg->b, j, c->ms[c->nbatch + 1], ""), ""), "");
        sc = LLVMBuildFAdd(cg->b, sc, load_f(cg, c->mask, n->in[3]->dtype, mi), "");
    }
    cg_store(cg, sbuf, DT_F32, ls.iv, sc);
    LLVMValueRef tm = LLVMBuildLoad2(cg->b, f, tmax, "");
    LLVMBuildStore(cg->b, LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, sc, tm, ""), sc, tm, ""), tmax);
    cg_loop_end(cg, &ls);
    /* a tile whose keys are all masked changes nothing */
    LLVMValueRef tmv = LLVMBuildLoad2(cg->b, f, tmax, "");
    LLVMBasicBlockRef live = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "live"),
                      next = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "next");
    LLVMBuildCondBr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, tmv, ninf, ""), live, next);
    LLVMPositionBuilderAtEnd(cg->b, live);
    /* 2. a new maximum rescales what was accumulated, once per tile */
    LLVMValueRef mold = LLVMBuildLoad2(cg->b, f, m, "");
    LLVMValueRef mnew = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, tmv, mold, ""), tmv, mold, "");
    LLVMValueRef corr = cg_exp(cg, LLVMBuildFSub(cg->b, mold, mnew, "")); /* exp(-inf) = 0 on the first tile */
    LLVMBuildStore(cg->b, mnew, m);
    LLVMBasicBlockRef resc = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "rescale"),
                      probs = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "probs");
    LLVMBuildCondBr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealUNE, corr, one, ""), resc, probs);
    LLVMPositionBuilderAtEnd(cg->b, resc);
    LLVMBuildStore(cg->b, LLVMBuildFMul(cg->b, LLVMBuildLoad2(cg->b, f, l, ""), corr, ""), l);
    Loop lr = cg_loop_begin(cg, cg_i64(cg, 0), c->Dv, "e");
    LLVMValueRef oi = LLVMBuildAdd(cg->b, orow, lr.iv, "");
    cg_store(cg, c->out, DT_F32, oi, LLVMBuildFMul(cg->b, cg_load(cg, c->out, DT_F32, oi), corr, ""));
    cg_loop_end(cg, &lr);
    LLVMBuildBr(cg->b, probs);
    LLVMPositionBuilderAtEnd(cg->b, probs);
    /* 3. probabilities of the tile (masked keys: exp(-inf) = 0) and their sum */
    LLVMBuildStore(cg->b, zero, tsum);
    Loop lp = cg_loop_begin(cg, cg_i64(cg, 0), jn, "jj");
    LLVMValueRef pj = cg_exp(cg, LLVMBuildFSub(cg->b, cg_load(cg, sbuf, DT_F32, lp.iv), mnew, ""));
    cg_store(cg, sbuf, DT_F32, lp.iv, pj);
    LLVMValueRef ts = LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, f, tsum, ""), pj, "");
    LLVMSetFastMathFlags(ts, LLVMFastMathAllowReassoc);
    LLVMBuildStore(cg->b, ts, tsum);
    cg_loop_end(cg, &lp);
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, f, l, ""), LLVMBuildLoad2(cg->b, f, tsum, ""), ""), l);
    /* 4. out += p v over the tile's keys */
    Loop la = cg_loop_begin(cg, cg_i64(cg, 0), jn, "jj");
    LLVMValueRef p = cg_load(cg, sbuf, DT_F32, la.iv);
    LLVMValueRef vrow = LLVMBuildAdd(cg->b, vo, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, j0, la.iv, ""), c->Dv, ""), "");
    Loop le = cg_loop_begin(cg, cg_i64(cg, 0), c->Dv, "e");
    LLVMValueRef oe = LLVMBuildAdd(cg->b, orow, le.iv, "");
    LLVMValueRef vv = load_f(cg, c->v, dt, LLVMBuildAdd(cg->b, vrow, le.iv, ""));
    cg_store(cg, c->out, DT_F32, oe, cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){p, vv, cg_load(cg, c->out, DT_F32, oe)}, 3));
    cg_loop_end(cg, &le);
    cg_loop_end(cg, &la);
    LLVMBuildBr(cg->b, next);
    LLVMPositionBuilderAtEnd(cg->b, next);
    cg_loop_end(cg, &lt);
    /* out = acc / l, or 0 for a row with no visible key */
    LLVMValueRef lv = LLVMBuildLoad2(cg->b, f, l, "");
    LLVMValueRef inv = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, lv, zero, ""),
                                       LLVMBuildFDiv(cg->b, one, lv, ""), zero, "");
    Loop lo = cg_loop_begin(cg, cg_i64(cg, 0), c->Dv, "e");
    LLVMValueRef oi2 = LLVMBuildAdd(cg->b, orow, lo.iv, "");
    cg_store(cg, c->out, DT_F32, oi2, LLVMBuildFMul(cg->b, cg_load(cg, c->out, DT_F32, oi2), inv, ""));
    cg_loop_end(cg, &lo);
}

/* The rows [begin, end), in the function cg_parallel_for made. */
static void attn_range(Cg *cg, void *vctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    AttnCtx c = {.n = vctx, .out = cap[0], .q = cap[1], .k = cap[2], .v = cap[3], .mask = c.n->nin > 3 ? cap[4] : NULL};
    setup(cg, &c);
    Loop lr = cg_loop_begin(cg, begin, end, "row");
    attn_row(cg, &c, lr.iv);
    cg_loop_end(cg, &lr);
}

int cg_attention(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    if (n->dtype != DT_F32) {
        diag_error(cg->d, n->loc, "the fused attention kernel takes f32, not %s", dtype_traits[n->dtype].name);
        return -1;
    }
    /* rows of the output (every batch index and query), split over the threads */
    LLVMValueRef od[IR_MAX_RANK];
    cg_shape(cg, n, od);
    LLVMValueRef rows = cg_numel(cg, n->rank - 1, od);
    LLVMValueRef cap[5] = {out, in[0], in[1], in[2], n->nin > 3 ? in[3] : NULL};
    char name[64];
    snprintf(name, sizeof name, "node%d_attention_rows", n->id);
    cg_parallel_for(cg, rows, n->nin > 3 ? 5 : 4, cap, attn_range, (void *)n, name);
    return 0;
}
