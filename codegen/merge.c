/* merge.c: the nodes of token merging and pruning (tome_match, pitome_match, token_merge, cls_attn,
 * evit_select).
 *
 * token_merge is generated here (vectors over the columns, items over the thread pool), and so is
 * tome_match's similarity, whose selection (a sort of a few hundred scores) it hands to the runtime's
 * rt_tome_select per batch row. The others call their kernel in the runtime (runtime/tokens.c) with
 * the node's buffers, its batch rows, token count and width (run-time values) and its attributes:
 * PiToMe's matching and EViT's top-k are sorts, branchy code, and cls_attn one row of attention. The runtime's functions are
 * declared with ordinary external linkage (not weakly, as rt_parallel_for is): a program that uses
 * them must link them, and the JIT defines them by address (cg.c).
 */
#include "codegen/codegen.h"

#include <math.h>

/* The product of n's dims [from, to) at run time. */
static LLVMValueRef rows(Cg *cg, const Node *n, int to)
{
    LLVMValueRef p = cg_i64(cg, 1);
    for (int i = 0; i < to; i++)
        p = LLVMBuildMul(cg->b, p, cg_dim(cg, n->shape[i]), "");
    return p;
}

/* A runtime function, declared once per module, linked strongly. */
static LLVMValueRef rt_fn(Cg *cg, const char *name, LLVMTypeRef fty)
{
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    return f ? f : LLVMAddFunction(cg->mod, name, fty);
}

/* ---------------------------------------------------------------- token_merge, generated
 *
 * out[j, :] = the sum over tokens i with dest[i] = j of w[i] x[i, :], divided by the sum of those w[i]
 * under mode mean (w = 1 when absent), for every batch row. Rather than scattering each x row into
 * out (a read-modify-write of out per token and a zeroing pass before, as a scatter must), a work
 * item first inverts its batch row's dest (a counting sort: each destination's tokens in index
 * order; a destination outside [0, T2) is skipped, as the interpreter would refuse it) and then
 * gathers: per output row, the weighted sum of its tokens in vector registers and one store. Items
 * are (batch row, block of MERGE_VECS vectors of columns), so that a batch of one image still spreads
 * over the threads; the inversion is redone per item, T steps against T x block multiply-adds. The
 * last block of a row that is not whole is read and written through masks. */
enum { MERGE_VECS = 8 };

typedef struct MergeGen {
    CgVec v;
    int mean;  /* divide by the sum of the weights */
    int has_w; /* a weight per token, else 1 */
} MergeGen;

/* An i32 element of p, sign-extended, and a store of one. */
static LLVMValueRef ld32(Cg *cg, LLVMValueRef p, LLVMValueRef i)
{
    LLVMValueRef q = LLVMBuildGEP2(cg->b, cg->i32, p, &i, 1, "");
    return LLVMBuildSExt(cg->b, LLVMBuildLoad2(cg->b, cg->i32, q, ""), cg->i64, "");
}

static void st32(Cg *cg, LLVMValueRef p, LLVMValueRef i, LLVMValueRef v)
{
    LLVMValueRef q = LLVMBuildGEP2(cg->b, cg->i32, p, &i, 1, "");
    LLVMBuildStore(cg->b, LLVMBuildTrunc(cg->b, v, cg->i32, ""), q);
}

/* The tokens of destination j are src[start[j-1] .. start[j]) (start[-1] = 0), in index order. */
static void merge_invert(Cg *cg, LLVMValueRef dest, LLVMValueRef T, LLVMValueRef T2, LLVMValueRef start,
                         LLVMValueRef src)
{
    LLVMValueRef one = cg_i64(cg, 1);
    Loop z = cg_loop_begin(cg, cg_i64(cg, 0), LLVMBuildAdd(cg->b, T2, one, ""), "zero");
    st32(cg, start, z.iv, cg_i64(cg, 0));
    cg_loop_end(cg, &z);
    /* start[j + 1] counts j's tokens */
    Loop c = cg_loop_begin(cg, cg_i64(cg, 0), T, "count");
    LLVMValueRef j = ld32(cg, dest, c.iv);
    LLVMBasicBlockRef done = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntULT, j, T2, ""), "valid");
    LLVMValueRef j1 = LLVMBuildAdd(cg->b, j, one, "");
    st32(cg, start, j1, LLVMBuildAdd(cg->b, ld32(cg, start, j1), one, ""));
    cg_if_end(cg, done);
    cg_loop_end(cg, &c);
    /* start[j] = the first slot of j */
    Loop p = cg_loop_begin(cg, cg_i64(cg, 0), T2, "prefix");
    LLVMValueRef p1 = LLVMBuildAdd(cg->b, p.iv, one, "");
    st32(cg, start, p1, LLVMBuildAdd(cg->b, ld32(cg, start, p1), ld32(cg, start, p.iv), ""));
    cg_loop_end(cg, &p);
    /* each token into its destination's next slot: start[j] ends as the end of j's slots */
    Loop f = cg_loop_begin(cg, cg_i64(cg, 0), T, "fill");
    j = ld32(cg, dest, f.iv);
    done = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntULT, j, T2, ""), "valid");
    LLVMValueRef slot = ld32(cg, start, j);
    st32(cg, src, slot, f.iv);
    st32(cg, start, j, LLVMBuildAdd(cg->b, slot, one, ""));
    cg_if_end(cg, done);
    cg_loop_end(cg, &f);
}

/* Every output row of one block of columns: xr and yr point at the block's first column of the batch
 * row, wr at its weights (NULL: none); mask[q] the lanes of vector q inside the row (NULL: whole). */
static void merge_gather(Cg *cg, const MergeGen *m, LLVMValueRef xr, LLVMValueRef yr, LLVMValueRef wr,
                         LLVMValueRef D, LLVMValueRef T2, LLVMValueRef start, LLVMValueRef src, LLVMValueRef *mask)
{
    const CgVec *v = &m->v;
    LLVMValueRef lo = cg_alloca(cg, cg->i64, "lo"), wsum = cg_alloca(cg, cg->f32, "wsum"), acc[MERGE_VECS];
    for (int q = 0; q < MERGE_VECS; q++)
        acc[q] = cg_alloca(cg, v->vt, "acc");
    LLVMBuildStore(cg->b, cg_i64(cg, 0), lo);
    Loop j = cg_loop_begin(cg, cg_i64(cg, 0), T2, "out_row");
    LLVMValueRef hi = ld32(cg, start, j.iv);
    LLVMBuildStore(cg->b, cg_f32(cg, 0), wsum);
    for (int q = 0; q < MERGE_VECS; q++)
        LLVMBuildStore(cg->b, cg_vconst(v, 0), acc[q]);
    Loop s = cg_loop_begin(cg, LLVMBuildLoad2(cg->b, cg->i64, lo, ""), hi, "source");
    LLVMValueRef i = ld32(cg, src, s.iv);
    LLVMValueRef wi = wr ? LLVMBuildLoad2(cg->b, cg->f32, cg_fptr(cg, wr, i), "") : cg_f32(cg, 1);
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, cg->f32, wsum, ""), wi, ""), wsum);
    LLVMValueRef xi = cg_fptr(cg, xr, LLVMBuildMul(cg->b, i, D, "")), wv = cg_vsplat(v, wi);
    for (int q = 0; q < MERGE_VECS; q++) {
        LLVMValueRef px = cg_fptr(cg, xi, cg_i64(cg, (int64_t)q * v->vw));
        LLVMValueRef xv = mask ? cg_vmasked_load(v, px, mask[q]) : cg_vload(v, px, 4);
        LLVMValueRef a = LLVMBuildLoad2(cg->b, v->vt, acc[q], "");
        LLVMBuildStore(cg->b, wr ? cg_vfma(v, wv, xv, a) : LLVMBuildFAdd(cg->b, a, xv, ""), acc[q]);
    }
    cg_loop_end(cg, &s);
    LLVMValueRef yj = cg_fptr(cg, yr, LLVMBuildMul(cg->b, j.iv, D, ""));
    LLVMValueRef div = m->mean ? cg_vsplat(v, LLVMBuildLoad2(cg->b, cg->f32, wsum, "")) : NULL;
    for (int q = 0; q < MERGE_VECS; q++) {
        LLVMValueRef y = LLVMBuildLoad2(cg->b, v->vt, acc[q], ""); /* a mean over nothing: 0 / 0, NaN */
        y = div ? LLVMBuildFDiv(cg->b, y, div, "") : y;
        LLVMValueRef py = cg_fptr(cg, yj, cg_i64(cg, (int64_t)q * v->vw));
        if (mask)
            cg_vmasked_store(v, y, py, mask[q]);
        else
            cg_vstore(v, y, py, 4);
    }
    LLVMBuildStore(cg->b, hi, lo);
    cg_loop_end(cg, &j);
}

/* Items [begin, end) of (batch row, column block); cap: out, x, dest, w, T, D, T2, blocks per row. */
static void merge_items(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const MergeGen *m = ctx;
    LLVMValueRef out = cap[0], x = cap[1], dest = cap[2], w = cap[3], T = cap[4], D = cap[5], T2 = cap[6];
    LLVMValueRef nblk = cap[7], cols = cg_i64(cg, (int64_t)MERGE_VECS * m->v.vw);
    /* scratch once per range, in the body's entry block: start[T2 + 1], src[T] */
    LLVMValueRef start = LLVMBuildArrayAlloca(cg->b, cg->i32, LLVMBuildAdd(cg->b, T2, cg_i64(cg, 1), ""), "start");
    LLVMValueRef src = LLVMBuildArrayAlloca(cg->b, cg->i32, cg_smax(cg, T, cg_i64(cg, 1)), "src");
    Loop it = cg_loop_begin(cg, begin, end, "item");
    LLVMValueRef row = LLVMBuildSDiv(cg->b, it.iv, nblk, "");
    LLVMValueRef c0 = LLVMBuildMul(cg->b, LLVMBuildSRem(cg->b, it.iv, nblk, ""), cols, "");
    LLVMValueRef nc = cg_smin(cg, cols, LLVMBuildSub(cg->b, D, c0, ""));
    merge_invert(cg, LLVMBuildGEP2(cg->b, cg->i32, dest, (LLVMValueRef[]){LLVMBuildMul(cg->b, row, T, "")}, 1, ""), T,
                 T2, start, src);
    LLVMValueRef xr = cg_fptr(cg, x, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, row, T, ""), D, ""), c0, ""));
    LLVMValueRef yr = cg_fptr(cg, out, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, row, T2, ""), D, ""), c0, ""));
    LLVMValueRef wr = m->has_w ? cg_fptr(cg, w, LLVMBuildMul(cg->b, row, T, "")) : NULL;
    LLVMValueRef whole = LLVMBuildICmp(cg->b, LLVMIntEQ, nc, cols, "");
    LLVMBasicBlockRef done = cg_if_begin(cg, whole, "whole");
    merge_gather(cg, m, xr, yr, wr, D, T2, start, src, NULL);
    cg_if_end(cg, done);
    done = cg_if_begin(cg, LLVMBuildNot(cg->b, whole, ""), "part");
    LLVMValueRef mask[MERGE_VECS];
    for (int q = 0; q < MERGE_VECS; q++)
        mask[q] = cg_vlanes_below(&m->v, LLVMBuildSub(cg->b, nc, cg_i64(cg, (int64_t)q * m->v.vw), ""));
    merge_gather(cg, m, xr, yr, wr, D, T2, start, src, mask);
    cg_if_end(cg, done);
    cg_loop_end(cg, &it);
}

static int token_merge_gen(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int r = x->rank;
    CgTarget t = cg_target(cg);
    MergeGen m = {cg_vec(cg, t.vw, t.fma), n->at.mode == 0, n->nin > 2};
    LLVMValueRef T = cg_dim(cg, x->shape[r - 2]), D = cg_dim(cg, x->shape[r - 1]), nb = rows(cg, x, r - 2);
    LLVMValueRef nblk = cg_ceil_div(cg, D, cg_i64(cg, (int64_t)MERGE_VECS * t.vw));
    LLVMValueRef cap[8] = {out, in[0], in[1], m.has_w ? in[2] : LLVMConstNull(cg->ptr), T, D,
                           cg_dim(cg, n->shape[r - 2]), nblk};
    char name[64];
    snprintf(name, sizeof name, "kiln_token_merge_%s%s", m.mean ? "mean" : "sum", m.has_w ? "_w" : "");
    CgPar p = {.split = CG_RANGES, .n = LLVMBuildMul(cg->b, nb, nblk, ""),
               .work = LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, nb, T, ""), D, ""), .min_work = CG_PARALLEL_WORK,
               .name = name, .shared = 1, .vw = t.vw};
    cg_parallel(cg, &p, 8, cap, merge_items, &m);
    return 0;
}

/* ---------------------------------------------------------------- tome_match's similarity, generated
 *
 * ToMe's bipartite matching in two parts: the similarities, generated here, and the selection, a
 * sort of the A tokens by their best score, which stays C (rt_tome_select, runtime/tokens.c). Per
 * batch row: the rows' inverse norms, then for every A token (even index) its best B token (odd
 * index) by cosine similarity, the first on ties (as torch.max); [CLS]'s row is -inf with the first
 * B token as its best. Dot products are vectors over the metric's width C (the head size), one
 * masked vector for the last part. Batch rows go over the pool; best and its index live on the
 * body's stack. */

/* The dot product of a[0..C) and b[0..C): whole vectors, then the rest through a mask. */
static LLVMValueRef match_dot(Cg *cg, const CgVec *v, LLVMValueRef a, LLVMValueRef b, LLVMValueRef C,
                              LLVMValueRef cwhole, LLVMValueRef acc)
{
    LLVMBuildStore(cg->b, cg_vconst(v, 0), acc);
    Loop c = cg_loop_begin(cg, cg_i64(cg, 0), cwhole, "dot");
    LLVMValueRef x = cg_vload(v, cg_fptr(cg, a, c.iv), 4), y = cg_vload(v, cg_fptr(cg, b, c.iv), 4);
    LLVMBuildStore(cg->b, cg_vfma(v, x, y, LLVMBuildLoad2(cg->b, v->vt, acc, "")), acc);
    cg_loop_end_step(cg, &c, LLVMBuildAdd(cg->b, c.iv, cg_i64(cg, v->vw), ""));
    LLVMValueRef m = cg_vlanes_below(v, LLVMBuildSub(cg->b, C, cwhole, ""));
    LLVMValueRef xt = cg_vmasked_load(v, cg_fptr(cg, a, cwhole), m), yt = cg_vmasked_load(v, cg_fptr(cg, b, cwhole), m);
    return cg_vhsum(v, cg_vfma(v, xt, yt, LLVMBuildLoad2(cg->b, v->vt, acc, "")));
}

typedef struct MatchGen {
    CgVec v;
    int cls;
    int64_t r;
} MatchGen;

/* Batch rows [begin, end); cap: dest, metric, T, C. */
static void match_rows(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const MatchGen *m = ctx;
    const CgVec *v = &m->v;
    LLVMValueRef dest = cap[0], metric = cap[1], T = cap[2], C = cap[3], one = cg_i64(cg, 1);
    LLVMValueRef na = LLVMBuildSDiv(cg->b, LLVMBuildAdd(cg->b, T, one, ""), cg_i64(cg, 2), "");
    LLVMValueRef nb = LLVMBuildSDiv(cg->b, T, cg_i64(cg, 2), "");
    LLVMValueRef cwhole = LLVMBuildMul(cg->b, LLVMBuildSDiv(cg->b, C, cg_i64(cg, v->vw), ""), cg_i64(cg, v->vw), "");
    /* scratch once per range, in the body's entry block: inv[T], best[na], bidx[na] */
    LLVMValueRef inv = LLVMBuildArrayAlloca(cg->b, cg->f32, cg_smax(cg, T, one), "inv");
    LLVMValueRef best = LLVMBuildArrayAlloca(cg->b, cg->f32, cg_smax(cg, na, one), "best");
    LLVMValueRef bidx = LLVMBuildArrayAlloca(cg->b, cg->i32, cg_smax(cg, na, one), "bidx");
    LLVMValueRef acc = cg_alloca(cg, v->vt, "dot"), bs = cg_alloca(cg, cg->f32, "bs"), bj = cg_alloca(cg, cg->i64, "bj");
    LLVMTypeRef sps[6] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i32};
    LLVMTypeRef sty = LLVMFunctionType(cg->void_, sps, 6, 0);
    LLVMValueRef select = rt_fn(cg, "rt_tome_select", sty);

    Loop row = cg_loop_begin(cg, begin, end, "row");
    LLVMValueRef mr = cg_fptr(cg, metric, LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, row.iv, T, ""), C, ""));
    Loop i = cg_loop_begin(cg, cg_i64(cg, 0), T, "norm");
    LLVMValueRef pi = cg_fptr(cg, mr, LLVMBuildMul(cg->b, i.iv, C, ""));
    LLVMValueRef s = match_dot(cg, v, pi, pi, C, cwhole, acc);
    LLVMValueRef sq = cg_intrinsic(cg, "llvm.sqrt", &s, 1);
    LLVMBuildStore(cg->b, LLVMBuildFDiv(cg->b, cg_f32(cg, 1), sq, ""), cg_fptr(cg, inv, i.iv));
    cg_loop_end(cg, &i);

    Loop x = cg_loop_begin(cg, cg_i64(cg, 0), na, "a_token");
    LLVMValueRef ia = LLVMBuildMul(cg->b, x.iv, cg_i64(cg, 2), "");
    LLVMBuildStore(cg->b, LLVMConstReal(cg->f32, -INFINITY), bs);
    LLVMBuildStore(cg->b, cg_i64(cg, 0), bj);
    LLVMValueRef skip = m->cls ? LLVMBuildICmp(cg->b, LLVMIntEQ, x.iv, cg_i64(cg, 0), "") : LLVMConstInt(cg->i1, 0, 0);
    LLVMBasicBlockRef done = cg_if_begin(cg, LLVMBuildNot(cg->b, skip, ""), "scored");
    LLVMValueRef pa = cg_fptr(cg, mr, LLVMBuildMul(cg->b, ia, C, ""));
    LLVMValueRef inva = LLVMBuildLoad2(cg->b, cg->f32, cg_fptr(cg, inv, ia), "");
    Loop y = cg_loop_begin(cg, cg_i64(cg, 0), nb, "b_token");
    LLVMValueRef ib = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, y.iv, cg_i64(cg, 2), ""), one, "");
    LLVMValueRef d = match_dot(cg, v, pa, cg_fptr(cg, mr, LLVMBuildMul(cg->b, ib, C, "")), C, cwhole, acc);
    d = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, d, inva, ""), LLVMBuildLoad2(cg->b, cg->f32, cg_fptr(cg, inv, ib), ""), "");
    LLVMValueRef better = LLVMBuildOr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, d, LLVMBuildLoad2(cg->b, cg->f32, bs, ""), ""),
                                      LLVMBuildICmp(cg->b, LLVMIntEQ, y.iv, cg_i64(cg, 0), ""), "");
    LLVMBuildStore(cg->b, LLVMBuildSelect(cg->b, better, d, LLVMBuildLoad2(cg->b, cg->f32, bs, ""), ""), bs);
    LLVMBuildStore(cg->b, LLVMBuildSelect(cg->b, better, y.iv, LLVMBuildLoad2(cg->b, cg->i64, bj, ""), ""), bj);
    cg_loop_end(cg, &y);
    cg_if_end(cg, done);
    LLVMBuildStore(cg->b, LLVMBuildLoad2(cg->b, cg->f32, bs, ""), cg_fptr(cg, best, x.iv));
    st32(cg, bidx, x.iv, LLVMBuildLoad2(cg->b, cg->i64, bj, ""));
    cg_loop_end(cg, &x);

    LLVMValueRef drow = LLVMBuildGEP2(cg->b, cg->i32, dest, (LLVMValueRef[]){LLVMBuildMul(cg->b, row.iv, T, "")}, 1, "");
    LLVMValueRef args[6] = {drow, best, bidx, T, cg_i64(cg, m->r), LLVMConstInt(cg->i32, (unsigned)m->cls, 0)};
    LLVMBuildCall2(cg->b, sty, select, args, 6, "");
    cg_loop_end(cg, &row);
}

static int tome_match_gen(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int rk = x->rank;
    CgTarget t = cg_target(cg);
    MatchGen m = {cg_vec(cg, t.vw, t.fma), n->at.cls, n->at.r};
    LLVMValueRef T = cg_dim(cg, x->shape[rk - 2]), C = cg_dim(cg, x->shape[rk - 1]), nb = rows(cg, x, rk - 2);
    LLVMValueRef cap[4] = {out, in[0], T, C};
    char name[64];
    snprintf(name, sizeof name, "kiln_tome_match_r%lld%s", (long long)m.r, m.cls ? "_cls" : "");
    /* the work: (T/2)^2 dot products of C per row */
    LLVMValueRef work = LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, nb, T, ""), T, ""), C, "");
    CgPar p = {.split = CG_RANGES, .n = nb, .work = work, .min_work = CG_PARALLEL_WORK, .name = name, .shared = 1,
               .vw = t.vw};
    cg_parallel(cg, &p, 4, cap, match_rows, &m);
    return 0;
}

int cg_tokens(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int r = x->rank;
    LLVMTypeRef P = cg->ptr, I = cg->i64, W = cg->i32;
    switch (n->op) {
    case OP_TOME_MATCH:
        return tome_match_gen(cg, n, out, in);
    case OP_PITOME_MATCH: {
        LLVMTypeRef ps[10] = {P, P, P, I, I, I, I, W, cg->f32, W};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 10, 0);
        LLVMValueRef args[10] = {cg->pool, out, in[0], rows(cg, x, r - 2), cg_dim(cg, x->shape[r - 2]),
                                 cg_dim(cg, x->shape[r - 1]), cg_i64(cg, n->at.r), LLVMConstInt(W, (unsigned)n->at.cls, 0),
                                 cg_f32(cg, n->at.margin), LLVMConstInt(W, (unsigned)n->at.bsm, 0)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_pitome_match", fty), args, 10, "");
        return 0;
    }
    case OP_TOKEN_MERGE:
        return token_merge_gen(cg, n, out, in);
    case OP_CLS_ATTN: {
        const Node *k = n->in[1];
        LLVMTypeRef ps[9] = {P, P, P, P, I, I, I, I, cg->f32};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 9, 0);
        LLVMValueRef args[9] = {cg->pool, out, in[0], in[1], rows(cg, x, r - 2), cg_dim(cg, x->shape[r - 2]),
                                cg_dim(cg, k->shape[r - 2]), cg_dim(cg, x->shape[r - 1]), cg_f32(cg, n->at.scale)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_cls_attn", fty), args, 9, "");
        return 0;
    }
    case OP_EVIT_SELECT: {
        LLVMTypeRef ps[5] = {P, P, I, I, I};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 5, 0);
        LLVMValueRef args[5] = {out, in[0], rows(cg, x, r - 1), cg_dim(cg, x->shape[r - 1]), cg_i64(cg, n->at.keep)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_evit_select", fty), args, 5, "");
        return 0;
    }
    default:
        diag_error(cg->d, n->loc, "internal error: merge.c has no kernel for op '%s'", op_info[n->op].name);
        return -1;
    }
}
