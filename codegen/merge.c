/* merge.c: the nodes of token merging and pruning (tome_match, pitome_match, token_merge, cls_attn,
 * evit_select).
 *
 * token_merge is generated here (vectors over the columns, items over the thread pool), and so are
 * the similarities of tome_match and pitome_match (PiToMe's energies too: a small GEMM of the
 * normalised metric with itself), whose selections (sorts of a few hundred scores) they hand to the
 * runtime per batch row (rt_tome_select, rt_pitome_rank and rt_pitome_assign), and cls_attn (one
 * row of attention per head, on its own; prune-tokens no longer makes it: EViT reads cls_probs, the
 * row the fused attention kernel writes as a by-product, codegen/attention.c). evit_select calls its kernel in the runtime (runtime/tokens.c) with the
 * node's buffers, its batch rows and token count (run-time values) and keep: EViT's top-k is a sort,
 * branchy code. The runtime's functions are declared with ordinary external linkage (not weakly, as
 * rt_parallel_for is): a program that uses them must link them, and the JIT defines them by address
 * (cg.c).
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

/* ---------------------------------------------------------------- pitome_match, generated
 *
 * PiToMe's matching (ir/tokens.c defines it) per batch row, rows over the pool. Its cost is the
 * cosine similarity of every pair of the n tokens after [CLS], n^2 C multiply-adds, and an elu of
 * each: generated, as a small GEMM of the normalised metric with itself. The two sorts (energies,
 * best scores) and the assignment of destinations stay C (rt_pitome_rank and rt_pitome_assign,
 * runtime/tokens.c), called once per row.
 *
 *   1. The rows' norms (vector dot products), and the normalised metric written transposed,
 *      X^T [C][np] (np: n rounded up to whole vectors, zeros past n), on the body's stack.
 *   2. The energies: blocks of RB rows x one vector of columns, each element the dot product over C
 *      (RB broadcasts of X^T[c][i] against one vector X^T[c][j..], in RB vector registers), then
 *      elu(s - margin) with the vector exponential. The matrix is symmetric, so only the blocks on
 *      and right of the diagonal are computed: lanes j > i add to row i's sum (a vector per row,
 *      summed across lanes at the row's end) and to column j's (a vector added to memory), the
 *      diagonal j = i to row i's alone; energy = (row + column sums) / n. The order of the terms is
 *      not the interpreter's (which sums in double, in j's order): the energies agree to f32
 *      rounding, so their order does wherever no two energies are that close.
 *   3. rt_pitome_rank: the stable descending order of the energies.
 *   4. Each A token's best B token: A and B are the even and odd energy ranks (all of them with bsm,
 *      the first 2r without), copied in rank order into A^T [C][nap] and B^T [C][nbp]; the same
 *      blocks of dot products, and per lane the best score and its column (strictly greater
 *      replaces, so a lane keeps its first best), then the best across lanes, the lowest column on
 *      ties: the first on ties, as the interpreter's loop and torch.max.
 *   5. rt_pitome_assign: the sort of the best scores (bsm) and the destinations.
 *
 * The stack holds X^T, A^T and B^T (about 2 n C floats: 100 KB for 197 tokens of 64) and a few
 * vectors of n. RB is 8 with 32 vector registers (8 accumulators, and 8 row sums or 16 best values
 * and columns beside them), else 4; it divides the vector width, so np is whole blocks of rows. */

typedef struct PitomeGen {
    CgVec v;
    int rb; /* rows per register block, at most 8 */
    int cls, bsm;
    /* the body's vector slots, one per row of a block: its dot products; its row sum (energies) or
     * best scores (matching); its best columns (i32) */
    LLVMValueRef acc[8], aux[8], aux2[8];
} PitomeGen;

static LLVMValueRef fld(Cg *cg, LLVMValueRef p, LLVMValueRef i)
{
    return LLVMBuildLoad2(cg->b, cg->f32, cg_fptr(cg, p, i), "");
}

static void fst(Cg *cg, LLVMValueRef p, LLVMValueRef i, LLVMValueRef x)
{
    LLVMBuildStore(cg->b, x, cg_fptr(cg, p, i));
}

/* A buffer of n floats (n an i64 value) on the body's stack, 64-byte aligned. */
static LLVMValueRef stack_buf(Cg *cg, LLVMTypeRef t, LLVMValueRef n, const char *name)
{
    LLVMValueRef s = LLVMBuildArrayAlloca(cg->b, t, cg_smax(cg, n, cg_i64(cg, 1)), name);
    LLVMSetAlignment(s, 64);
    return s;
}

/* n rounded up to whole vectors, at least one. */
static LLVMValueRef whole_vecs(Cg *cg, const CgVec *v, LLVMValueRef n)
{
    LLVMValueRef w = cg_i64(cg, v->vw);
    return LLVMBuildMul(cg->b, cg_smax(cg, cg_ceil_div(cg, n, w), cg_i64(cg, 1)), w, "");
}

/* acc[q] = the dot products over c < C of x[c * xs + i0 + q] and the vector y[c * ys + j0 ..], q < rb. */
static void gram_block(Cg *cg, const PitomeGen *g, LLVMValueRef x, LLVMValueRef xs, LLVMValueRef i0, LLVMValueRef y,
                       LLVMValueRef ys, LLVMValueRef j0, LLVMValueRef C)
{
    const CgVec *v = &g->v;
    for (int q = 0; q < g->rb; q++)
        LLVMBuildStore(cg->b, cg_vconst(v, 0), g->acc[q]);
    Loop c = cg_loop_begin(cg, cg_i64(cg, 0), C, "k");
    LLVMValueRef yv = cg_vload(v, cg_fptr(cg, y, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, c.iv, ys, ""), j0, "")), 4);
    LLVMValueRef xr = cg_fptr(cg, x, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, c.iv, xs, ""), i0, ""));
    for (int q = 0; q < g->rb; q++) {
        LLVMValueRef xq = cg_vsplat(v, fld(cg, xr, cg_i64(cg, q)));
        LLVMBuildStore(cg->b, cg_vfma(v, xq, yv, LLVMBuildLoad2(cg->b, v->vt, g->acc[q], "")), g->acc[q]);
    }
    cg_loop_end(cg, &c);
}

/* The lanes' columns j0 + lane, as i32. */
static LLVMValueRef lane_cols(Cg *cg, const CgVec *v, LLVMValueRef j0)
{
    return LLVMBuildAdd(cg->b, cg_vsplat(v, LLVMBuildTrunc(cg->b, j0, cg->i32, "")), v->lanes, "");
}

static LLVMValueRef vsplat32(Cg *cg, const CgVec *v, LLVMValueRef x)
{
    return cg_vsplat(v, LLVMBuildTrunc(cg->b, x, cg->i32, ""));
}

/* energy[0..n) from X^T [C][np]: step 2 above. rsum and csum hold np floats. */
static void pitome_energy(Cg *cg, const PitomeGen *g, LLVMValueRef xt, LLVMValueRef np, LLVMValueRef n, LLVMValueRef C,
                          LLVMValueRef margin, LLVMValueRef rsum, LLVMValueRef csum)
{
    const CgVec *v = &g->v;
    LLVMBuilderRef b = cg->b;
    LLVMValueRef vw = cg_i64(cg, v->vw), rb = cg_i64(cg, g->rb), zero = cg_vconst(v, 0), mv = cg_vsplat(v, margin);
    Loop z = cg_loop_begin(cg, cg_i64(cg, 0), np, "zero");
    fst(cg, csum, z.iv, cg_f32(cg, 0));
    cg_loop_end(cg, &z);
    Loop ib = cg_loop_begin(cg, cg_i64(cg, 0), cg_ceil_div(cg, n, rb), "row_block");
    LLVMValueRef i0 = LLVMBuildMul(b, ib.iv, rb, "");
    for (int q = 0; q < g->rb; q++)
        LLVMBuildStore(b, zero, g->aux[q]);
    /* the column blocks from the one holding the block's first row */
    Loop jb = cg_loop_begin(cg, LLVMBuildSDiv(b, i0, vw, ""), LLVMBuildSDiv(b, np, vw, ""), "col_block");
    LLVMValueRef j0 = LLVMBuildMul(b, jb.iv, vw, "");
    gram_block(cg, g, xt, np, i0, xt, np, j0, C);
    LLVMValueRef jv = lane_cols(cg, v, j0);
    LLVMValueRef in = LLVMBuildICmp(b, LLVMIntSLT, jv, vsplat32(cg, v, n), "");
    LLVMValueRef cs = zero;
    for (int q = 0; q < g->rb; q++) {
        LLVMValueRef iv = vsplat32(cg, v, LLVMBuildAdd(b, i0, cg_i64(cg, q), ""));
        LLVMValueRef x = LLVMBuildFSub(b, LLVMBuildLoad2(b, v->vt, g->acc[q], ""), mv, "");
        LLVMValueRef pos = LLVMBuildFCmp(b, LLVMRealOGT, x, zero, "");
        /* elu: x above 0, e^x - 1 at or below (the exponential of min(x, 0), never of a positive x) */
        LLVMValueRef em1 = LLVMBuildFSub(b, cg_vexp_neg(v, LLVMBuildSelect(b, pos, zero, x, "")), cg_vconst(v, 1), "");
        LLVMValueRef e = LLVMBuildSelect(b, pos, x, em1, "");
        LLVMValueRef row = LLVMBuildAnd(b, in, LLVMBuildICmp(b, LLVMIntSGE, jv, iv, ""), "");
        LLVMValueRef col = LLVMBuildAnd(b, in, LLVMBuildICmp(b, LLVMIntSGT, jv, iv, ""), "");
        LLVMValueRef rs = LLVMBuildLoad2(b, v->vt, g->aux[q], "");
        LLVMBuildStore(b, LLVMBuildFAdd(b, rs, LLVMBuildSelect(b, row, e, zero, ""), ""), g->aux[q]);
        cs = LLVMBuildFAdd(b, cs, LLVMBuildSelect(b, col, e, zero, ""), "");
    }
    LLVMValueRef pc = cg_fptr(cg, csum, j0);
    cg_vstore(v, LLVMBuildFAdd(b, cg_vload(v, pc, 4), cs, ""), pc, 4);
    cg_loop_end(cg, &jb);
    for (int q = 0; q < g->rb; q++)
        fst(cg, rsum, LLVMBuildAdd(b, i0, cg_i64(cg, q), ""), cg_vhsum(v, LLVMBuildLoad2(b, v->vt, g->aux[q], "")));
    cg_loop_end(cg, &ib);
    LLVMValueRef nf = LLVMBuildSIToFP(b, n, cg->f32, "");
    Loop e = cg_loop_begin(cg, cg_i64(cg, 0), n, "energy");
    fst(cg, rsum, e.iv, LLVMBuildFDiv(b, LLVMBuildFAdd(b, fld(cg, rsum, e.iv), fld(cg, csum, e.iv), ""), nf, ""));
    cg_loop_end(cg, &e);
}

/* dst[c * ds + k] = X^T[c * xs + eord[2k + odd]] for k < cnt, 0 for cnt <= k < ds: the A (odd = 0) or B
 * (odd = 1) tokens in rank order. */
static void pitome_pick(Cg *cg, LLVMValueRef dst, LLVMValueRef ds, LLVMValueRef cnt, LLVMValueRef xt, LLVMValueRef xs,
                        LLVMValueRef eord, int odd, LLVMValueRef C)
{
    LLVMBuilderRef b = cg->b;
    Loop c = cg_loop_begin(cg, cg_i64(cg, 0), C, "pick");
    LLVMValueRef dr = cg_fptr(cg, dst, LLVMBuildMul(b, c.iv, ds, ""));
    LLVMValueRef xr = cg_fptr(cg, xt, LLVMBuildMul(b, c.iv, xs, ""));
    Loop k = cg_loop_begin(cg, cg_i64(cg, 0), cnt, "token");
    LLVMValueRef t = ld32(cg, eord, LLVMBuildAdd(b, LLVMBuildMul(b, k.iv, cg_i64(cg, 2), ""), cg_i64(cg, odd), ""));
    fst(cg, dr, k.iv, fld(cg, xr, t));
    cg_loop_end(cg, &k);
    Loop p = cg_loop_begin(cg, cnt, ds, "pad");
    fst(cg, dr, p.iv, cg_f32(cg, 0));
    cg_loop_end(cg, &p);
    cg_loop_end(cg, &c);
}

/* best[a], bidx[a] for a < na: step 4 above, from A^T [C][nap] and B^T [C][nbp]. */
static void pitome_best(Cg *cg, const PitomeGen *g, LLVMValueRef at, LLVMValueRef nap, LLVMValueRef na, LLVMValueRef bt,
                        LLVMValueRef nbp, LLVMValueRef nb, LLVMValueRef C, LLVMValueRef best, LLVMValueRef bidx)
{
    const CgVec *v = &g->v;
    LLVMBuilderRef b = cg->b;
    LLVMValueRef vw = cg_i64(cg, v->vw), rb = cg_i64(cg, g->rb);
    Loop ib = cg_loop_begin(cg, cg_i64(cg, 0), cg_ceil_div(cg, na, rb), "a_block");
    LLVMValueRef i0 = LLVMBuildMul(b, ib.iv, rb, "");
    for (int q = 0; q < g->rb; q++) {
        LLVMBuildStore(b, cg_vconst(v, -INFINITY), g->aux[q]);
        LLVMBuildStore(b, cg_viconst(v, cg->i32, 0), g->aux2[q]);
    }
    Loop jb = cg_loop_begin(cg, cg_i64(cg, 0), LLVMBuildSDiv(b, nbp, vw, ""), "b_block");
    LLVMValueRef j0 = LLVMBuildMul(b, jb.iv, vw, "");
    gram_block(cg, g, at, nap, i0, bt, nbp, j0, C);
    LLVMValueRef jv = lane_cols(cg, v, j0);
    LLVMValueRef in = LLVMBuildICmp(b, LLVMIntSLT, jv, vsplat32(cg, v, nb), "");
    for (int q = 0; q < g->rb; q++) {
        LLVMValueRef s = LLVMBuildLoad2(b, v->vt, g->acc[q], ""), bv = LLVMBuildLoad2(b, v->vt, g->aux[q], "");
        LLVMValueRef better = LLVMBuildAnd(b, in, LLVMBuildFCmp(b, LLVMRealOGT, s, bv, ""), "");
        LLVMBuildStore(b, LLVMBuildSelect(b, better, s, bv, ""), g->aux[q]);
        LLVMBuildStore(b, LLVMBuildSelect(b, better, jv, LLVMBuildLoad2(b, v->it, g->aux2[q], ""), ""), g->aux2[q]);
    }
    cg_loop_end(cg, &jb);
    for (int q = 0; q < g->rb; q++) {
        LLVMValueRef bv = LLVMBuildLoad2(b, v->vt, g->aux[q], ""), m = cg_vhmax(v, bv);
        LLVMValueRef top = LLVMBuildFCmp(b, LLVMRealOEQ, bv, cg_vsplat(v, m), "");
        LLVMValueRef cols = LLVMBuildSelect(b, top, LLVMBuildLoad2(b, v->it, g->aux2[q], ""),
                                            cg_viconst(v, cg->i32, INT32_MAX), "");
        LLVMTypeRef it = v->it;
        LLVMValueRef j = cg_call_intrinsic(cg, "llvm.vector.reduce.smin", &it, 1, &cols, 1);
        LLVMValueRef a = LLVMBuildAdd(b, i0, cg_i64(cg, q), "");
        fst(cg, best, a, m);
        LLVMBuildStore(b, j, LLVMBuildGEP2(b, cg->i32, bidx, &a, 1, ""));
    }
    cg_loop_end(cg, &ib);
}

/* Batch rows [begin, end); cap: dest, metric, T, C, r, margin. */
static void pitome_rows(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    PitomeGen *g = ctx;
    const CgVec *v = &g->v;
    LLVMBuilderRef b = cg->b;
    for (int q = 0; q < g->rb; q++) {
        g->acc[q] = cg_alloca(cg, v->vt, "acc");
        g->aux[q] = cg_alloca(cg, v->vt, "aux");
        g->aux2[q] = cg_alloca(cg, v->it, "aux2");
    }
    LLVMValueRef dest = cap[0], metric = cap[1], T = cap[2], C = cap[3], r = cap[4], margin = cap[5];
    LLVMValueRef one = cg_i64(cg, 1), two = cg_i64(cg, 2), c0 = cg_i64(cg, g->cls ? 1 : 0);
    LLVMValueRef n = cg_smax(cg, LLVMBuildSub(b, T, c0, ""), cg_i64(cg, 0));
    LLVMValueRef na, nb;
    if (g->bsm) {
        na = LLVMBuildSDiv(b, LLVMBuildAdd(b, n, one, ""), two, "");
        nb = LLVMBuildSDiv(b, n, two, "");
    } else { /* the 2r most energetic, r at most n / 2 */
        na = nb = cg_smin(cg, r, LLVMBuildSDiv(b, n, two, ""));
    }
    LLVMValueRef np = whole_vecs(cg, v, n), nap = whole_vecs(cg, v, na), nbp = whole_vecs(cg, v, nb);
    LLVMValueRef cwhole = LLVMBuildMul(b, LLVMBuildSDiv(b, C, cg_i64(cg, v->vw), ""), cg_i64(cg, v->vw), "");
    /* scratch once per range, in the body's entry block */
    LLVMValueRef xt = stack_buf(cg, cg->f32, LLVMBuildMul(b, C, np, ""), "xt");
    LLVMValueRef at = stack_buf(cg, cg->f32, LLVMBuildMul(b, C, nap, ""), "at");
    LLVMValueRef bt = stack_buf(cg, cg->f32, LLVMBuildMul(b, C, nbp, ""), "bt");
    LLVMValueRef rsum = stack_buf(cg, cg->f32, np, "energy"), csum = stack_buf(cg, cg->f32, np, "colsum");
    LLVMValueRef eord = stack_buf(cg, cg->i32, n, "eord");
    LLVMValueRef best = stack_buf(cg, cg->f32, nap, "best"), bidx = stack_buf(cg, cg->i32, nap, "bidx");
    LLVMValueRef dot = cg_alloca(cg, v->vt, "dot");
    LLVMTypeRef rps[3] = {cg->ptr, cg->ptr, cg->i64};
    LLVMTypeRef rty = LLVMFunctionType(cg->void_, rps, 3, 0);
    LLVMTypeRef aps[8] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i32, cg->i32};
    LLVMTypeRef aty = LLVMFunctionType(cg->void_, aps, 8, 0);

    Loop row = cg_loop_begin(cg, begin, end, "row");
    LLVMValueRef first = LLVMBuildAdd(b, LLVMBuildMul(b, row.iv, T, ""), c0, ""); /* the first token after [CLS] */
    LLVMValueRef mr = cg_fptr(cg, metric, LLVMBuildMul(b, first, C, ""));
    /* 1. X^T, zeros past n */
    Loop i = cg_loop_begin(cg, cg_i64(cg, 0), np, "normalise");
    LLVMValueRef pi = cg_fptr(cg, mr, LLVMBuildMul(b, i.iv, C, ""));
    LLVMBasicBlockRef done = cg_if_begin(cg, LLVMBuildICmp(b, LLVMIntSLT, i.iv, n, ""), "token");
    LLVMValueRef s = cg_intrinsic(cg, "llvm.sqrt", (LLVMValueRef[]){match_dot(cg, v, pi, pi, C, cwhole, dot)}, 1);
    LLVMValueRef inv = LLVMBuildFDiv(b, cg_f32(cg, 1), cg_vmax(v, s, cg_f32(cg, 1e-12)), ""); /* F.normalize */
    Loop c = cg_loop_begin(cg, cg_i64(cg, 0), C, "col");
    fst(cg, xt, LLVMBuildAdd(b, LLVMBuildMul(b, c.iv, np, ""), i.iv, ""), LLVMBuildFMul(b, fld(cg, pi, c.iv), inv, ""));
    cg_loop_end(cg, &c);
    cg_if_end(cg, done);
    done = cg_if_begin(cg, LLVMBuildICmp(b, LLVMIntSGE, i.iv, n, ""), "pad");
    Loop cp = cg_loop_begin(cg, cg_i64(cg, 0), C, "col");
    fst(cg, xt, LLVMBuildAdd(b, LLVMBuildMul(b, cp.iv, np, ""), i.iv, ""), cg_f32(cg, 0));
    cg_loop_end(cg, &cp);
    cg_if_end(cg, done);
    cg_loop_end(cg, &i);
    /* 2, 3 */
    pitome_energy(cg, g, xt, np, n, C, margin, rsum, csum);
    LLVMBuildCall2(b, rty, rt_fn(cg, "rt_pitome_rank", rty), (LLVMValueRef[]){eord, rsum, n}, 3, "");
    /* 4, 5 */
    pitome_pick(cg, at, nap, na, xt, np, eord, 0, C);
    pitome_pick(cg, bt, nbp, nb, xt, np, eord, 1, C);
    pitome_best(cg, g, at, nap, na, bt, nbp, nb, C, best, bidx);
    LLVMValueRef drow = LLVMBuildGEP2(b, cg->i32, dest, (LLVMValueRef[]){LLVMBuildMul(b, row.iv, T, "")}, 1, "");
    LLVMValueRef args[8] = {drow, eord, best, bidx, T, r, LLVMConstInt(cg->i32, (unsigned)g->cls, 0),
                            LLVMConstInt(cg->i32, (unsigned)g->bsm, 0)};
    LLVMBuildCall2(b, aty, rt_fn(cg, "rt_pitome_assign", aty), args, 8, "");
    cg_loop_end(cg, &row);
}

static int pitome_match_gen(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int rk = x->rank;
    CgTarget t = cg_target(cg);
    PitomeGen g = {.v = cg_vec(cg, t.vw, t.fma), .rb = t.regs >= 32 ? 8 : 4, .cls = n->at.cls, .bsm = n->at.bsm};
    g.rb = g.rb < t.vw ? g.rb : t.vw;
    KILN_ASSERT(t.vw % g.rb == 0);
    LLVMValueRef T = cg_dim(cg, x->shape[rk - 2]), C = cg_dim(cg, x->shape[rk - 1]), nb = rows(cg, x, rk - 2);
    LLVMValueRef cap[6] = {out, in[0], T, C, cg_i64(cg, n->at.r), cg_f32(cg, n->at.margin)};
    char name[64];
    snprintf(name, sizeof name, "kiln_pitome_match%s%s", g.cls ? "_cls" : "", g.bsm ? "_bsm" : "");
    /* the work: T^2 / 2 dot products of C per row */
    LLVMValueRef work = LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, nb, T, ""), T, ""), C, "");
    CgPar p = {.split = CG_RANGES, .n = nb, .work = work, .min_work = CG_PARALLEL_WORK, .name = name, .shared = 1,
               .vw = t.vw};
    cg_parallel(cg, &p, 6, cap, pitome_rows, &g);
    return 0;
}

/* ---------------------------------------------------------------- cls_attn, generated
 *
 * Per row (batch x head, rows over the pool): the first query's scores against every key, dot products
 * as vectors over the head size (a masked last vector) with their maximum kept on the way, then
 * softmax over the row with vectors: e^(s - max) (the vector exponential of a non-positive argument),
 * their sum, and a division by it. One row of attention, so never the T x T matrix. */

/* Rows [begin, end); cap: out, q, k, Tq, Tk, d, scale. */
static void cls_rows(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const CgVec *v = ctx;
    LLVMBuilderRef b = cg->b;
    LLVMValueRef out = cap[0], q = cap[1], k = cap[2], Tq = cap[3], Tk = cap[4], d = cap[5], scale = cap[6];
    LLVMValueRef vw = cg_i64(cg, v->vw);
    LLVMValueRef dwhole = LLVMBuildMul(b, LLVMBuildSDiv(b, d, vw, ""), vw, "");
    LLVMValueRef twhole = LLVMBuildMul(b, LLVMBuildSDiv(b, Tk, vw, ""), vw, "");
    LLVMValueRef dot = cg_alloca(cg, v->vt, "dot"), mx = cg_alloca(cg, cg->f32, "max");
    LLVMValueRef sum = cg_alloca(cg, v->vt, "sum");
    Loop row = cg_loop_begin(cg, begin, end, "row");
    LLVMValueRef qr = cg_fptr(cg, q, LLVMBuildMul(b, LLVMBuildMul(b, row.iv, Tq, ""), d, ""));
    LLVMValueRef kr = cg_fptr(cg, k, LLVMBuildMul(b, LLVMBuildMul(b, row.iv, Tk, ""), d, ""));
    LLVMValueRef y = cg_fptr(cg, out, LLVMBuildMul(b, row.iv, Tk, ""));
    LLVMBuildStore(b, LLVMConstReal(cg->f32, -INFINITY), mx);
    Loop j = cg_loop_begin(cg, cg_i64(cg, 0), Tk, "key");
    LLVMValueRef kj = cg_fptr(cg, kr, LLVMBuildMul(b, j.iv, d, ""));
    LLVMValueRef s = LLVMBuildFMul(b, match_dot(cg, v, qr, kj, d, dwhole, dot), scale, "");
    fst(cg, y, j.iv, s);
    LLVMValueRef m = LLVMBuildLoad2(b, cg->f32, mx, "");
    LLVMBuildStore(b, LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, s, m, ""), s, m, ""), mx);
    cg_loop_end(cg, &j);
    /* e^(s - max) over the row, whole vectors then a masked one; then each divided by their sum */
    LLVMValueRef mv = cg_vsplat(v, LLVMBuildLoad2(b, cg->f32, mx, ""));
    LLVMBuildStore(b, cg_vconst(v, 0), sum);
    Loop e = cg_loop_begin(cg, cg_i64(cg, 0), twhole, "exp");
    LLVMValueRef pe = cg_fptr(cg, y, e.iv);
    LLVMValueRef x = cg_vexp_neg(v, LLVMBuildFSub(b, cg_vload(v, pe, 4), mv, ""));
    cg_vstore(v, x, pe, 4);
    LLVMBuildStore(b, LLVMBuildFAdd(b, LLVMBuildLoad2(b, v->vt, sum, ""), x, ""), sum);
    cg_loop_end_step(cg, &e, LLVMBuildAdd(b, e.iv, vw, ""));
    LLVMValueRef tail = cg_vlanes_below(v, LLVMBuildSub(b, Tk, twhole, "")), pt = cg_fptr(cg, y, twhole);
    LLVMValueRef xt = cg_vexp_neg(v, LLVMBuildFSub(b, cg_vmasked_load(v, pt, tail), mv, ""));
    cg_vmasked_store(v, xt, pt, tail);
    LLVMValueRef tot = cg_vsplat(v, cg_vhsum(v, LLVMBuildFAdd(b, LLVMBuildLoad2(b, v->vt, sum, ""),
                                                             LLVMBuildSelect(b, tail, xt, cg_vconst(v, 0), ""), "")));
    Loop n = cg_loop_begin(cg, cg_i64(cg, 0), twhole, "norm");
    LLVMValueRef pn = cg_fptr(cg, y, n.iv);
    cg_vstore(v, LLVMBuildFDiv(b, cg_vload(v, pn, 4), tot, ""), pn, 4);
    cg_loop_end_step(cg, &n, LLVMBuildAdd(b, n.iv, vw, ""));
    cg_vmasked_store(v, LLVMBuildFDiv(b, cg_vmasked_load(v, pt, tail), tot, ""), pt, tail);
    cg_loop_end(cg, &row);
}

static int cls_attn_gen(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0], *k = n->in[1];
    int r = x->rank;
    CgTarget t = cg_target(cg);
    CgVec v = cg_vec(cg, t.vw, t.fma);
    LLVMValueRef nb = rows(cg, x, r - 2), Tk = cg_dim(cg, k->shape[r - 2]), d = cg_dim(cg, x->shape[r - 1]);
    LLVMValueRef cap[7] = {out, in[0], in[1], cg_dim(cg, x->shape[r - 2]), Tk, d, cg_f32(cg, n->at.scale)};
    /* the work: Tk dot products of d per row */
    LLVMValueRef work = LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, nb, Tk, ""), d, "");
    CgPar p = {.split = CG_RANGES, .n = nb, .work = work, .min_work = CG_PARALLEL_WORK, .name = "kiln_cls_attn",
               .shared = 1, .vw = t.vw};
    cg_parallel(cg, &p, 7, cap, cls_rows, &v);
    return 0;
}

int cg_tokens(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int r = x->rank;
    LLVMTypeRef P = cg->ptr, I = cg->i64;
    switch (n->op) {
    case OP_TOME_MATCH:
        return tome_match_gen(cg, n, out, in);
    case OP_PITOME_MATCH:
        return pitome_match_gen(cg, n, out, in);
    case OP_TOKEN_MERGE:
        return token_merge_gen(cg, n, out, in);
    case OP_CLS_ATTN:
        return cls_attn_gen(cg, n, out, in);
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
