/* qattention.c: attention over an int8 KV cache, softmax(q k^T * scale + mask) v with k and v i8
 * and an f32 scale per row (the seven-input attention of ops.def: a kv-cache decode step with
 * --kv-cache POLICY,kv=int8).
 *
 * What it computes: row j of k is (f32) k8[j] * kscale[j], and of v likewise, but the kernel never
 * forms those rows: the score of key j is kscale[j] * sum over c of q[c] * (f32) k8[j, c] (q already
 * multiplied by the attention's scale), and the probability p_j of key j multiplies v's row as
 * (p_j * vscale[j]) * (f32) v8[j]. The i8 rows are read VW at a time (16 with AVX-512: one 16-byte
 * load), sign-extended to floats (vpmovsxbd + vcvtdq2ps) and fed to the same fused multiply-adds as
 * the f32 row kernel of attention.c. The interpreter dequantizes each element first ((float) q8 *
 * scale, then the products in double): the two agree to f32 rounding, not bit for bit (the tests
 * allow 1e-5 of the largest output).
 *
 * The row kernel only: one query row at a time, its d columns across vectors (q in ceil(d / VW)
 * registers, the accumulator in ceil(dv / VW)), keys in tiles of RBC with the tile's scores in a
 * stack buffer, the online softmax of attention.c (running max m and sum l; a new maximum rescales
 * the accumulator by exp(m_old - m_new); a row with no visible key is 0, never NaN). That is the
 * decode shape (one query row per head); a prompt's many rows would want attention.c's block kernel,
 * but prefill reads its own f32 k and v (the cache is written after), so only decode comes here.
 * The work items are the (batch index, query row) pairs, taken one at a time by the pool's threads
 * (cg_parallel's CG_ITEMS).
 *
 * Layout: q may be read through the strides of the view the plan made of it, and the result written
 * in the layout of the transpose that reads it (Plan.view, Plan.writes_into), as attention.c does;
 * k, v and the scales are the cache's states after the step's scatter, in C order.
 *
 * Not done: splitting one row's keys over threads (attention.c does it for decode when there are
 * fewer rows than threads; here a model with fewer heads than threads leaves threads idle), and head
 * sizes not known at compile time (refused with a message).
 */
#include "codegen/codegen.h"
#include "passes/passes.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum {
    QA_RBC = 256,    /* keys per tile (the scores' stack buffer) */
    QA_MAX_VECS = 32 /* vectors of a row of q or of the accumulator, at most */
};

typedef struct QAttn {
    Cg *cg;
    const Node *n;
    CgVec V;
    int vw, dq, dvv;
    int64_t d, dv;
    LLVMValueRef out, q, k, v, mask, ks, vs;
    LLVMValueRef Tq, Tk, off; /* Tk: the keys read (the count input's, clamped); off = keys - Tq */
    int nbatch;
    /* per batch dimension of the output (0 where the operand broadcasts), and between rows */
    LLVMValueRef qb[IR_MAX_RANK], kb[IR_MAX_RANK], vb[IR_MAX_RANK], ksb[IR_MAX_RANK], vsb[IR_MAX_RANK],
        ob[IR_MAX_RANK], mb[IR_MAX_RANK + 2];
    LLVMValueRef qrs, krs, vrs, ors;
} QAttn;

static LLVMValueRef c64(QAttn *a, int64_t x)
{
    return cg_i64(a->cg, x);
}

static LLVMValueRef add(QAttn *a, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildAdd(a->cg->b, x, y, "");
}

static LLVMValueRef mul(QAttn *a, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildMul(a->cg->b, x, y, "");
}

/* Operand j's strides (j = -1: the result's) in elements: st[rank], from the plan's view of it or C
 * order. */
static void operand_strides(QAttn *a, int j, LLVMValueRef *st)
{
    Cg *cg = a->cg;
    const Node *x = j < 0 ? a->n : a->n->in[j];
    int64_t s[IR_MAX_RANK];
    PlanView pv;
    if (j == 0 && cg->plan.view && cg->plan.view[x->id]) {
        KILN_ASSERT(plan_view(x, cg->plan.view, &pv) && pv.stride[x->rank - 1] == 1);
        for (int d = 0; d < x->rank; d++)
            st[d] = c64(a, pv.stride[d]);
        return;
    }
    if (j < 0 && cg->plan.writes_into && cg->plan.writes_into[x->id] >= 0) {
        plan_write_strides(x, cg->g->nodes[cg->plan.writes_into[x->id]], s);
        KILN_ASSERT(s[x->rank - 1] == 1);
        for (int d = 0; d < x->rank; d++)
            st[d] = c64(a, s[d]);
        return;
    }
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, x, dims);
    cg_strides(cg, x->rank, dims, st);
}

/* Operand j's strides per batch dimension of the output (right-aligned, 0 where it has size 1) and
 * between its rows. */
static void batch_strides(QAttn *a, int j, LLVMValueRef *bst, LLVMValueRef *rs)
{
    const Node *x = j < 0 ? a->n : a->n->in[j];
    LLVMValueRef st[IR_MAX_RANK];
    operand_strides(a, j, st);
    if (rs)
        *rs = st[x->rank - 2];
    int xb = x->rank - 2;
    for (int i = 0; i < a->nbatch; i++) {
        int d = i - (a->nbatch - xb);
        bst[i] = d < 0 || dim_eq(x->shape[d], dim_const(1)) ? c64(a, 0) : st[d];
    }
}

/* Sizes and strides in the function being built; ops: out, q, k, v, mask, n, kscale, vscale. */
static void setup(QAttn *a, Cg *cg, const Node *n, LLVMValueRef *ops)
{
    memset(a, 0, sizeof *a);
    a->cg = cg;
    a->n = n;
    CgTarget tg = cg_target(cg);
    a->vw = tg.vw;
    a->V = cg_vec(cg, tg.vw, tg.fma);
    const Node *q = n->in[0], *k = n->in[1], *v = n->in[2];
    a->d = dim_value(q->shape[q->rank - 1]);
    a->dv = dim_value(v->shape[v->rank - 1]);
    a->dq = (int)((a->d + a->vw - 1) / a->vw);
    a->dvv = (int)((a->dv + a->vw - 1) / a->vw);
    a->out = ops[0];
    a->q = ops[1];
    a->k = ops[2];
    a->v = ops[3];
    a->mask = ops[4];
    a->ks = ops[6];
    a->vs = ops[7];
    a->nbatch = n->rank - 2;
    a->Tq = cg_dim(cg, q->shape[q->rank - 2]);
    LLVMValueRef Tk = cg_dim(cg, k->shape[k->rank - 2]);
    a->off = LLVMBuildSub(cg->b, Tk, a->Tq, "");
    LLVMValueRef c = cg_convert(cg, cg_load(cg, ops[5], n->in[4]->dtype, c64(a, 0)), n->in[4]->dtype, DT_I64);
    a->Tk = cg_smax(cg, cg_smin(cg, Tk, c), c64(a, 0));
    batch_strides(a, 0, a->qb, &a->qrs);
    batch_strides(a, 1, a->kb, &a->krs);
    batch_strides(a, 2, a->vb, &a->vrs);
    batch_strides(a, 5, a->ksb, NULL);
    batch_strides(a, 6, a->vsb, NULL);
    batch_strides(a, -1, a->ob, &a->ors);
    View mv = cg_view_broadcast(cg, n->in[3], a->mask, a->nbatch + 2);
    for (int i = 0; i < a->nbatch + 2; i++)
        a->mb[i] = mv.stride[i];
}

/* Lanes of the last vector of a row of m elements (NULL: whole vectors). */
static LLVMValueRef tail_of(QAttn *a, int64_t m)
{
    return m % a->vw ? cg_vlanes_below(&a->V, c64(a, m % a->vw)) : NULL;
}

/* Vector x of an i8 row at p (nvec vectors, the last masked by tail) as floats. */
static LLVMValueRef i8_vector(QAttn *a, LLVMValueRef p, int x, int nvec, LLVMValueRef tail)
{
    Cg *cg = a->cg;
    LLVMTypeRef bt = LLVMVectorType(cg->i8, (unsigned)a->vw);
    LLVMValueRef px = cg_gep8(cg, p, c64(a, (int64_t)x * a->vw)), b;
    if (x == nvec - 1 && tail) {
        LLVMTypeRef tys[2] = {bt, cg->ptr};
        LLVMValueRef args[4] = {px, LLVMConstInt(cg->i32, 1, 0), tail, LLVMConstNull(bt)};
        b = cg_call_intrinsic(cg, "llvm.masked.load", tys, 2, args, 4);
    } else {
        b = LLVMBuildLoad2(cg->b, bt, px, "");
        LLVMSetAlignment(b, 1);
    }
    return LLVMBuildSIToFP(cg->b, b, a->V.vt, "");
}

/* Vector x of an f32 row at p. */
static LLVMValueRef f32_vector(QAttn *a, LLVMValueRef p, int x, int nvec, LLVMValueRef tail)
{
    LLVMValueRef px = cg_fptr(a->cg, p, c64(a, (int64_t)x * a->vw));
    return x == nvec - 1 && tail ? cg_vmasked_load(&a->V, px, tail) : cg_vload(&a->V, px, 4);
}

/* The item `item` = (batch index, query row): the whole row over its visible keys. */
static void row(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef item, LLVMValueRef end)
{
    (void)end; /* CG_ITEMS: one item */
    QAttn A, *a = &A;
    setup(a, cg, ctx, cap);
    LLVMBuilderRef b = cg->b;
    LLVMTypeRef f = cg->f32, vt = a->V.vt;
    LLVMValueRef ninf = LLVMConstReal(f, -INFINITY);
    LLVMValueRef bi = LLVMBuildSDiv(b, item, a->Tq, ""), i = LLVMBuildSRem(b, item, a->Tq, "");
    /* where batch index bi starts in each operand */
    LLVMValueRef qo = c64(a, 0), ko = qo, vo = qo, kso = qo, vso = qo, oo = qo, mo = qo, rest = bi;
    for (int d = a->nbatch - 1; d >= 0; d--) {
        LLVMValueRef size = cg_dim(cg, a->n->shape[d]);
        LLVMValueRef x = LLVMBuildSRem(b, rest, size, "");
        rest = LLVMBuildSDiv(b, rest, size, "");
        qo = add(a, qo, mul(a, x, a->qb[d]));
        ko = add(a, ko, mul(a, x, a->kb[d]));
        vo = add(a, vo, mul(a, x, a->vb[d]));
        kso = add(a, kso, mul(a, x, a->ksb[d]));
        vso = add(a, vso, mul(a, x, a->vsb[d]));
        oo = add(a, oo, mul(a, x, a->ob[d]));
        mo = add(a, mo, mul(a, x, a->mb[d]));
    }
    mo = add(a, mo, mul(a, i, a->mb[a->nbatch]));
    /* the keys row i sees */
    LLVMValueRef kend = a->Tk;
    if (a->n->at.causal)
        kend = cg_smax(cg, cg_smin(cg, a->Tk, add(a, add(a, i, a->off), c64(a, 1))), c64(a, 0));
    LLVMValueRef dtail = tail_of(a, a->d), vtail = tail_of(a, a->dv);
    LLVMValueRef sbuf = cg_alloca(cg, LLVMArrayType2(f, QA_RBC), "scores");
    LLVMSetAlignment(sbuf, 64);
    LLVMValueRef ms = cg_alloca(cg, f, "m"), ls = cg_alloca(cg, f, "l"), tmax = cg_alloca(cg, vt, "tmax"),
                 tsum = cg_alloca(cg, vt, "tsum"), acc[QA_MAX_VECS];
    LLVMBuildStore(b, ninf, ms);
    LLVMBuildStore(b, LLVMConstReal(f, 0), ls);
    for (int x = 0; x < a->dvv; x++) {
        acc[x] = cg_alloca(cg, vt, "acc");
        LLVMBuildStore(b, LLVMConstNull(vt), acc[x]);
    }
    LLVMValueRef qrow = cg_fptr(cg, a->q, add(a, qo, mul(a, i, a->qrs))), qv[QA_MAX_VECS];
    for (int x = 0; x < a->dq; x++)
        qv[x] = LLVMBuildFMul(b, f32_vector(a, qrow, x, a->dq, dtail), cg_vconst(&a->V, a->n->at.scale), "");

    Loop lt = cg_loop_begin(cg, c64(a, 0), kend, "qtile");
    LLVMValueRef j0 = lt.iv, jn = cg_smin(cg, c64(a, QA_RBC), LLVMBuildSub(b, kend, j0, ""));
    /* 1. scores: kscale[j] * (q . k8[j]) + mask, then -inf up to a whole vector */
    Loop ls1 = cg_loop_begin(cg, c64(a, 0), jn, "qkey");
    LLVMValueRef j = add(a, j0, ls1.iv);
    LLVMValueRef krow = cg_gep8(cg, a->k, add(a, ko, mul(a, j, a->krs)));
    LLVMValueRef dot[2] = {NULL, NULL};
    for (int x = 0; x < a->dq; x++) {
        LLVMValueRef kx = i8_vector(a, krow, x, a->dq, dtail);
        dot[x & 1] = dot[x & 1] ? cg_vfma(&a->V, qv[x], kx, dot[x & 1]) : LLVMBuildFMul(b, qv[x], kx, "");
    }
    LLVMValueRef dsum = dot[1] ? LLVMBuildFAdd(b, dot[0], dot[1], "") : dot[0];
    LLVMValueRef s = dsum ? cg_vhsum(&a->V, dsum) : LLVMConstReal(f, 0);
    s = LLVMBuildFMul(b, s, cg_load(cg, a->ks, DT_F32, add(a, kso, j)), "");
    s = LLVMBuildFAdd(b, s, cg_load(cg, a->mask, DT_F32, add(a, mo, mul(a, j, a->mb[a->nbatch + 1]))), "");
    LLVMBuildStore(b, s, cg_fptr(cg, sbuf, ls1.iv));
    cg_loop_end(cg, &ls1);
    LLVMValueRef nvec = cg_ceil_div(cg, jn, c64(a, a->vw)), jpad = mul(a, nvec, c64(a, a->vw));
    Loop lp = cg_loop_begin(cg, jn, jpad, "qpad");
    LLVMBuildStore(b, ninf, cg_fptr(cg, sbuf, lp.iv));
    cg_loop_end(cg, &lp);
    /* 2. the tile's maximum; a tile with every key masked changes nothing */
    LLVMBuildStore(b, cg_vconst(&a->V, -INFINITY), tmax);
    Loop lm = cg_loop_begin(cg, c64(a, 0), nvec, "qmax");
    LLVMValueRef sv = cg_vload(&a->V, cg_fptr(cg, sbuf, mul(a, lm.iv, c64(a, a->vw))), 64);
    LLVMBuildStore(b, cg_vmax(&a->V, LLVMBuildLoad2(b, vt, tmax, ""), sv), tmax);
    cg_loop_end(cg, &lm);
    LLVMValueRef tm = cg_vhmax(&a->V, LLVMBuildLoad2(b, vt, tmax, ""));
    LLVMBasicBlockRef skip = cg_if_begin(cg, LLVMBuildFCmp(b, LLVMRealOGT, tm, ninf, ""), "qlive");
    /* 3. a new maximum rescales what was accumulated */
    LLVMValueRef mold = LLVMBuildLoad2(b, f, ms, "");
    LLVMValueRef mnew = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, tm, mold, ""), tm, mold, "");
    LLVMValueRef corr = cg_exp(cg, LLVMBuildFSub(b, mold, mnew, "")); /* 0 on the first live tile */
    LLVMBuildStore(b, mnew, ms);
    LLVMValueRef vcorr = cg_vsplat(&a->V, corr);
    for (int x = 0; x < a->dvv; x++)
        LLVMBuildStore(b, LLVMBuildFMul(b, LLVMBuildLoad2(b, vt, acc[x], ""), vcorr, ""), acc[x]);
    /* 4. probabilities (masked keys and padding: 1e-38, cg_vexp_neg) and their sum */
    LLVMBuildStore(b, LLVMConstNull(vt), tsum);
    LLVMValueRef vm = cg_vsplat(&a->V, mnew);
    Loop le = cg_loop_begin(cg, c64(a, 0), nvec, "qexp");
    LLVMValueRef ps = cg_fptr(cg, sbuf, mul(a, le.iv, c64(a, a->vw)));
    LLVMValueRef p = cg_vexp_neg(&a->V, LLVMBuildFSub(b, cg_vload(&a->V, ps, 64), vm, ""));
    cg_vstore(&a->V, p, ps, 64);
    LLVMBuildStore(b, LLVMBuildFAdd(b, LLVMBuildLoad2(b, vt, tsum, ""), p, ""), tsum);
    cg_loop_end(cg, &le);
    LLVMValueRef lsum = cg_vhsum(&a->V, LLVMBuildLoad2(b, vt, tsum, ""));
    LLVMBuildStore(b, LLVMBuildFAdd(b, LLVMBuildFMul(b, LLVMBuildLoad2(b, f, ls, ""), corr, ""), lsum, ""), ls);
    /* 5. acc += (p_j * vscale[j]) v8[j] over the tile's keys */
    Loop la = cg_loop_begin(cg, c64(a, 0), jn, "qpv");
    LLVMValueRef jj = add(a, j0, la.iv);
    LLVMValueRef w = LLVMBuildFMul(b, LLVMBuildLoad2(b, f, cg_fptr(cg, sbuf, la.iv), ""),
                                   cg_load(cg, a->vs, DT_F32, add(a, vso, jj)), "");
    LLVMValueRef wv = cg_vsplat(&a->V, w);
    LLVMValueRef vrow = cg_gep8(cg, a->v, add(a, vo, mul(a, jj, a->vrs)));
    for (int x = 0; x < a->dvv; x++)
        LLVMBuildStore(b, cg_vfma(&a->V, wv, i8_vector(a, vrow, x, a->dvv, vtail), LLVMBuildLoad2(b, vt, acc[x], "")),
                       acc[x]);
    cg_loop_end(cg, &la);
    cg_if_end(cg, skip);
    cg_loop_end_step(cg, &lt, add(a, j0, c64(a, QA_RBC)));

    /* out = acc / l, or 0 when no key was visible */
    LLVMValueRef m = LLVMBuildLoad2(b, f, ms, ""), l = LLVMBuildLoad2(b, f, ls, "");
    LLVMValueRef inv = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, m, ninf, ""),
                                       LLVMBuildFDiv(b, LLVMConstReal(f, 1), l, ""), LLVMConstReal(f, 0), "");
    LLVMValueRef vinv = cg_vsplat(&a->V, inv);
    LLVMValueRef orow = cg_fptr(cg, a->out, add(a, oo, mul(a, i, a->ors)));
    for (int x = 0; x < a->dvv; x++) {
        LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildLoad2(b, vt, acc[x], ""), vinv, "");
        LLVMValueRef po = cg_fptr(cg, orow, c64(a, (int64_t)x * a->vw));
        if (x == a->dvv - 1 && vtail)
            cg_vmasked_store(&a->V, y, po, vtail);
        else
            cg_vstore(&a->V, y, po, 4);
    }
}

/* The name of the row function: all its code depends on (dtypes, shapes, scale, causal, the strides
 * of a viewed q or a result written through a transpose), hashed, so that every layer shares it. */
static void kernel_name(const Cg *cg, const Node *n, char *buf, size_t len)
{
    uint64_t h = 0xC2B2AE3D27D4EB4Full, bits;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 0x100000001B3ull, h ^= h >> 29)
    memcpy(&bits, &n->at.scale, sizeof bits);
    MIX(bits);
    MIX(n->at.causal);
    for (int i = -1; i < n->nin; i++) {
        const Node *x = i < 0 ? n : n->in[i];
        MIX(x->dtype);
        MIX(x->rank);
        for (int d = 0; d < x->rank; d++)
            MIX(dim_hash(x->shape[d]));
    }
    PlanView pv;
    if (cg->plan.view && cg->plan.view[n->in[0]->id] && plan_view(n->in[0], cg->plan.view, &pv))
        for (int d = 0; d < n->in[0]->rank; d++)
            MIX(pv.stride[d]);
    if (cg->plan.writes_into && cg->plan.writes_into[n->id] >= 0) {
        int64_t st[IR_MAX_RANK];
        plan_write_strides(n, cg->g->nodes[cg->plan.writes_into[n->id]], st);
        for (int d = 0; d < n->rank; d++)
            MIX(st[d] + 1);
    }
#undef MIX
    snprintf(buf, len, "kiln_qattention_%016llx", (unsigned long long)h);
}

void cg_qattention_explain(Cg *cg, const Node *n, FILE *out)
{
    const Node *q = n->in[0], *v = n->in[2];
    fprintf(out, "codegen: attention over int8 k and v (d %lld, dv %lld): one query row a work item, its columns across "
                 "vectors of %d floats, the i8 rows converted as they are loaded, tiles of %d keys; the keys are not "
                 "split over threads\n",
            (long long)dim_max(cg->g, q->shape[q->rank - 1]), (long long)dim_max(cg->g, v->shape[v->rank - 1]),
            cg_target(cg).vw, QA_RBC);
}

int cg_qattention(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *q = n->in[0], *v = n->in[2];
    Dim d = q->shape[q->rank - 1], dv = v->shape[v->rank - 1];
    int vw = cg_target(cg).vw;
    if (n->dtype != DT_F32 || q->dtype != DT_F32 || !dim_is_const(d) || !dim_is_const(dv) ||
        dim_value(d) > (int64_t)QA_MAX_VECS * vw || dim_value(dv) > (int64_t)QA_MAX_VECS * vw) {
        diag_error(cg->d, n->loc, "attention over int8 k and v takes f32 q and head sizes known at compile time, "
                   "at most %d", QA_MAX_VECS * vw);
        return -1;
    }
    LLVMValueRef ops[8] = {out, in[0], in[1], in[2], in[3], in[4], in[5], in[6]};
    QAttn A, *a = &A;
    setup(a, cg, n, ops);
    cg_vector_width_attr(cg, cg->fn, vw);
    LLVMValueRef od[IR_MAX_RANK];
    cg_shape(cg, n, od);
    LLVMValueRef rows = mul(a, cg_numel(cg, n->rank - 2, od), a->Tq);
    char name[64];
    kernel_name(cg, n, name, sizeof name);
    CgPar p = {.split = CG_ITEMS, .n = rows, .name = name, .shared = 1, .vw = vw};
    cg_parallel(cg, &p, 8, ops, row, (void *)n);
    return 0;
}
