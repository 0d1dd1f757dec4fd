/* reduce.c: reductions over one axis, softmax, log_softmax, layernorm and rmsnorm.
 *
 * A tensor reduced over `axis` is seen as [outer, n, inner]; each output element is one loop over n.
 * The reductions (sum, mean) accumulate in double, as the interpreter does. The normalisations use
 * reassociable sums, so LLVM vectorises them: softmax works in f32 with exp without a library call,
 * layernorm and rmsnorm in f64 (exact deviations even for rows with a large mean); the error stays
 * within 1e-5 of the row's largest value (tests/unit/test_codegen_ops.c). max and min propagate NaN.
 * Rows are split over the runtime's threads when there are enough elements (cg_parallel_work).
 */
#include "codegen/codegen.h"

#include <math.h>

typedef struct Rows {
    LLVMValueRef outer, n, inner; /* i64 */
} Rows;

static Rows rows_of(Cg *cg, const Node *x, int axis)
{
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, x, dims);
    Rows r = {cg_i64(cg, 1), dims[axis], cg_i64(cg, 1)};
    for (int i = 0; i < axis; i++)
        r.outer = LLVMBuildMul(cg->b, r.outer, dims[i], "");
    for (int i = axis + 1; i < x->rank; i++)
        r.inner = LLVMBuildMul(cg->b, r.inner, dims[i], "");
    return r;
}

/* index of element k of row (o, i) */
static LLVMValueRef at(Cg *cg, Rows r, LLVMValueRef o, LLVMValueRef i, LLVMValueRef k)
{
    return LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, o, r.n, ""), k, ""), r.inner, ""), i, "");
}

/* The rows (o, i) of flat index [begin, end), o * inner + i, each a loop over the reduced axis;
 * threads take ranges of rows. cap: out, then the inputs. */
static void reduce_range(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Node *n = ctx, *x = n->in[0];
    LLVMValueRef out = cap[0], *in = cap + 1;
    Rows r = rows_of(cg, x, n->at.axis);
    int fl = dtype_traits[x->dtype].is_float;
    int sum = n->op == OP_SUM || n->op == OP_MEAN;
    LLVMTypeRef acct = fl ? (sum ? cg->f64 : cg_ctype(cg, x->dtype)) : cg->i64;
    LLVMValueRef acc = cg_alloca(cg, acct, "acc");
    Loop lq = cg_loop_begin(cg, begin, end, "row");
    LLVMValueRef o = LLVMBuildSDiv(cg->b, lq.iv, r.inner, ""), i = LLVMBuildSRem(cg->b, lq.iv, r.inner, "");
    LLVMValueRef init;
    if (sum)
        init = LLVMConstNull(acct);
    else if (fl)
        init = LLVMConstReal(acct, n->op == OP_RMAX ? -INFINITY : INFINITY);
    else if (x->dtype == DT_U64) /* its bits unsigned: 0 and 2^64 - 1 */
        init = n->op == OP_RMAX ? cg_i64(cg, 0) : LLVMConstAllOnes(cg->i64);
    else
        init = cg_i64(cg, n->op == OP_RMAX ? INT64_MIN : INT64_MAX);
    LLVMBuildStore(cg->b, init, acc);
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), r.n, "k");
    LLVMValueRef v = cg_load(cg, in[0], x->dtype, at(cg, r, o, i, lk.iv));
    if (x->dtype == DT_BOOL)
        v = cg_convert(cg, v, DT_BOOL, DT_I64);
    LLVMValueRef a = LLVMBuildLoad2(cg->b, acct, acc, "");
    LLVMValueRef res;
    if (sum)
        res = fl ? LLVMBuildFAdd(cg->b, a, cg_convert(cg, v, x->dtype, DT_F64), "") : LLVMBuildAdd(cg->b, a, v, "");
    else if (fl)
        res = cg_intrinsic(cg, n->op == OP_RMAX ? "llvm.maximum" : "llvm.minimum", (LLVMValueRef[]){a, v}, 2);
    else if (x->dtype == DT_U64)
        res = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, n->op == OP_RMAX ? LLVMIntUGE : LLVMIntULE, a, v, ""), a, v, "");
    else
        res = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, n->op == OP_RMAX ? LLVMIntSGE : LLVMIntSLE, a, v, ""), a, v, "");
    LLVMBuildStore(cg->b, res, acc);
    cg_loop_end(cg, &lk);
    LLVMValueRef total = LLVMBuildLoad2(cg->b, acct, acc, "");
    if (n->op == OP_MEAN)
        total = fl ? LLVMBuildFDiv(cg->b, total, LLVMBuildSIToFP(cg->b, r.n, cg->f64, ""), "")
                   : x->dtype == DT_U64 ? LLVMBuildUDiv(cg->b, total, r.n, "") : LLVMBuildSDiv(cg->b, total, r.n, "");
    DType from = sum && fl ? DT_F64 : x->dtype == DT_BOOL ? DT_I64 : x->dtype;
    LLVMValueRef oidx = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, o, r.inner, ""), i, "");
    cg_store(cg, out, n->dtype, oidx, cg_convert(cg, total, from, n->dtype));
    cg_loop_end(cg, &lq);
}

/* Runs range over the rows of n's input reduced along axis, split over the pool when large. */
static void over_rows(Cg *cg, const Node *n, int axis, LLVMValueRef out, LLVMValueRef *in, CgRange range)
{
    Rows r = rows_of(cg, n->in[0], axis);
    LLVMValueRef cap[4] = {out};
    for (int i = 0; i < n->nin && i < 3; i++)
        cap[i + 1] = in[i];
    LLVMValueRef rows = LLVMBuildMul(cg->b, r.outer, r.inner, "");
    char name[64];
    snprintf(name, sizeof name, "node%d_%s_rows", n->id, op_info[n->op].name);
    cg_parallel_work(cg, rows, LLVMBuildMul(cg->b, rows, r.n, ""), n->nin + 1, cap, range, (void *)n, name);
}

int cg_reduce(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    over_rows(cg, n, n->at.axis, out, in, reduce_range);
    return 0;
}

/* Sum over k in [0, n) of f(k), in the row's working type; reassociable, so LLVM vectorises it. */
typedef LLVMValueRef (*TermFn)(Cg *cg, void *ctx, LLVMValueRef k);

typedef struct RowCtx {
    const Node *n;
    LLVMValueRef in;
    Rows r;
    LLVMValueRef o, i;
    LLVMValueRef shift; /* the row's max (softmax) or mean (layernorm) */
    DType wdt;          /* working dtype: f32 for f32/f16/bf16 rows, f64 for f64 */
    LLVMTypeRef wt;
} RowCtx;

static LLVMValueRef sum_over(Cg *cg, RowCtx *c, TermFn f, LLVMValueRef acc)
{
    LLVMBuildStore(cg->b, LLVMConstReal(c->wt, 0), acc);
    Loop l = cg_loop_begin(cg, cg_i64(cg, 0), c->r.n, "k");
    LLVMValueRef t = f(cg, c, l.iv);
    LLVMValueRef s = LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, c->wt, acc, ""), t, "");
    LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
    LLVMBuildStore(cg->b, s, acc);
    cg_loop_end(cg, &l);
    return LLVMBuildLoad2(cg->b, c->wt, acc, "");
}

static LLVMValueRef load_w(Cg *cg, RowCtx *c, LLVMValueRef k)
{
    const Node *x = c->n->in[0];
    return cg_convert(cg, cg_load(cg, c->in, x->dtype, at(cg, c->r, c->o, c->i, k)), x->dtype, c->wdt);
}

static LLVMValueRef exp_term(Cg *cg, void *ctx, LLVMValueRef k)
{
    RowCtx *c = ctx;
    return cg_exp(cg, LLVMBuildFSub(cg->b, load_w(cg, c, k), c->shift, ""));
}

static LLVMValueRef plain_term(Cg *cg, void *ctx, LLVMValueRef k)
{
    return load_w(cg, ctx, k);
}

static LLVMValueRef square_term(Cg *cg, void *ctx, LLVMValueRef k)
{
    RowCtx *c = ctx;
    LLVMValueRef d = LLVMBuildFSub(cg->b, load_w(cg, c, k), c->shift, "");
    return LLVMBuildFMul(cg->b, d, d, "");
}

static int norm_axis(const Node *n)
{
    return n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX ? n->at.axis : n->in[0]->rank - 1;
}

static void normalise_range(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Node *n = ctx, *x = n->in[0];
    LLVMValueRef out = cap[0], *in = cap + 1;
    RowCtx c = {.n = n, .in = in[0], .r = rows_of(cg, x, norm_axis(n))};
    /* softmax in f32 (exp without a library call); the norms' statistics in f64, where a row with a
     * large mean (x around 1000, deviations around 0.3) keeps its deviations exact */
    int is_softmax = n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX;
    c.wdt = n->dtype == DT_F64 || !is_softmax ? DT_F64 : DT_F32;
    c.wt = cg_ctype(cg, c.wdt);
    LLVMTypeRef wt = c.wt;
    LLVMValueRef acc = cg_alloca(cg, wt, "acc");
    Loop lq = cg_loop_begin(cg, begin, end, "row");
    c.o = LLVMBuildSDiv(cg->b, lq.iv, c.r.inner, "");
    c.i = LLVMBuildSRem(cg->b, lq.iv, c.r.inner, "");
    LLVMValueRef nd = LLVMBuildSIToFP(cg->b, c.r.n, wt, "");
    LLVMValueRef one = LLVMConstReal(wt, 1), scale, log_sum = NULL;
    if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX) {
        /* the row's max (NaN-propagating: a row of -inf gives NaN, as in PyTorch) */
        LLVMBuildStore(cg->b, LLVMConstReal(wt, -INFINITY), acc);
        Loop l = cg_loop_begin(cg, cg_i64(cg, 0), c.r.n, "k");
        LLVMValueRef m = cg_intrinsic(cg, "llvm.maximum", (LLVMValueRef[]){LLVMBuildLoad2(cg->b, wt, acc, ""), load_w(cg, &c, l.iv)}, 2);
        LLVMBuildStore(cg->b, m, acc);
        cg_loop_end(cg, &l);
        c.shift = LLVMBuildLoad2(cg->b, wt, acc, "");
        LLVMValueRef s = sum_over(cg, &c, exp_term, acc);
        scale = LLVMBuildFDiv(cg->b, one, s, "");
        log_sum = cg_intrinsic(cg, "llvm.log", &s, 1);
    } else if (n->op == OP_LAYERNORM) {
        c.shift = LLVMBuildFDiv(cg->b, sum_over(cg, &c, plain_term, acc), nd, "");
        LLVMValueRef var = LLVMBuildFDiv(cg->b, sum_over(cg, &c, square_term, acc), nd, "");
        LLVMValueRef ve = LLVMBuildFAdd(cg->b, var, LLVMConstReal(wt, n->at.eps), "");
        scale = LLVMBuildFDiv(cg->b, one, cg_intrinsic(cg, "llvm.sqrt", &ve, 1), "");
    } else { /* rmsnorm */
        c.shift = LLVMConstReal(wt, 0);
        LLVMValueRef ms = LLVMBuildFDiv(cg->b, sum_over(cg, &c, square_term, acc), nd, "");
        LLVMValueRef ve = LLVMBuildFAdd(cg->b, ms, LLVMConstReal(wt, n->at.eps), "");
        scale = LLVMBuildFDiv(cg->b, one, cg_intrinsic(cg, "llvm.sqrt", &ve, 1), "");
    }
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), c.r.n, "k");
    LLVMValueRef d = LLVMBuildFSub(cg->b, load_w(cg, &c, lk.iv), c.shift, ""), y;
    switch (n->op) {
    case OP_SOFTMAX: y = LLVMBuildFMul(cg->b, cg_exp(cg, d), scale, ""); break;
    case OP_LOG_SOFTMAX: y = LLVMBuildFSub(cg->b, d, log_sum, ""); break;
    default: {
        y = LLVMBuildFMul(cg->b, d, scale, "");
        LLVMValueRef gm = cg_convert(cg, cg_load(cg, in[1], n->in[1]->dtype, lk.iv), n->in[1]->dtype, c.wdt);
        y = LLVMBuildFMul(cg->b, y, gm, "");
        if (n->op == OP_LAYERNORM)
            y = LLVMBuildFAdd(cg->b, y, cg_convert(cg, cg_load(cg, in[2], n->in[2]->dtype, lk.iv), n->in[2]->dtype, c.wdt), "");
    }
    }
    cg_store(cg, out, n->dtype, at(cg, c.r, c.o, c.i, lk.iv), cg_convert(cg, y, c.wdt, n->dtype));
    cg_loop_end(cg, &lk);
    cg_loop_end(cg, &lq);
}

int cg_normalise(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    over_rows(cg, n, norm_axis(n), out, in, normalise_range);
    return 0;
}
