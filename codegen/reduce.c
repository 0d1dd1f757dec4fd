/* reduce.c: reductions over one axis, softmax, log_softmax, layernorm and rmsnorm.
 *
 * A tensor reduced over `axis` is seen as [outer, n, inner]; each output element is one loop over n.
 * Sums and the statistics of the normalisations accumulate in double, as the interpreter does, so
 * a long row (softmax over 4096 keys, a 3072-wide layer) does not drift; max and min propagate NaN.
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

int cg_reduce(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    Rows r = rows_of(cg, x, n->at.axis);
    int fl = dtype_traits[x->dtype].is_float;
    int sum = n->op == OP_SUM || n->op == OP_MEAN;
    LLVMTypeRef acct = fl ? (sum ? cg->f64 : cg_ctype(cg, x->dtype)) : cg->i64;
    LLVMValueRef acc = cg_alloca(cg, acct, "acc");
    Loop lo = cg_loop_begin(cg, cg_i64(cg, 0), r.outer, "o");
    Loop li = cg_loop_begin(cg, cg_i64(cg, 0), r.inner, "i");
    LLVMValueRef init;
    if (sum)
        init = LLVMConstNull(acct);
    else if (fl)
        init = LLVMConstReal(acct, n->op == OP_RMAX ? -INFINITY : INFINITY);
    else
        init = cg_i64(cg, n->op == OP_RMAX ? INT64_MIN : INT64_MAX);
    LLVMBuildStore(cg->b, init, acc);
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), r.n, "k");
    LLVMValueRef v = cg_load(cg, in[0], x->dtype, at(cg, r, lo.iv, li.iv, lk.iv));
    if (x->dtype == DT_BOOL)
        v = cg_convert(cg, v, DT_BOOL, DT_I64);
    LLVMValueRef a = LLVMBuildLoad2(cg->b, acct, acc, "");
    LLVMValueRef res;
    if (sum)
        res = fl ? LLVMBuildFAdd(cg->b, a, cg_convert(cg, v, x->dtype, DT_F64), "") : LLVMBuildAdd(cg->b, a, v, "");
    else if (fl)
        res = cg_intrinsic(cg, n->op == OP_RMAX ? "llvm.maximum" : "llvm.minimum", (LLVMValueRef[]){a, v}, 2);
    else
        res = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, n->op == OP_RMAX ? LLVMIntSGE : LLVMIntSLE, a, v, ""), a, v, "");
    LLVMBuildStore(cg->b, res, acc);
    cg_loop_end(cg, &lk);
    LLVMValueRef total = LLVMBuildLoad2(cg->b, acct, acc, "");
    if (n->op == OP_MEAN)
        total = fl ? LLVMBuildFDiv(cg->b, total, LLVMBuildSIToFP(cg->b, r.n, cg->f64, ""), "")
                   : LLVMBuildSDiv(cg->b, total, r.n, "");
    DType from = sum && fl ? DT_F64 : x->dtype == DT_BOOL ? DT_I64 : x->dtype;
    LLVMValueRef oidx = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lo.iv, r.inner, ""), li.iv, "");
    cg_store(cg, out, n->dtype, oidx, cg_convert(cg, total, from, n->dtype));
    cg_loop_end(cg, &li);
    cg_loop_end(cg, &lo);
    return 0;
}

/* Sum over k in [0, n) of f(k), accumulated in double. */
typedef LLVMValueRef (*TermFn)(Cg *cg, void *ctx, LLVMValueRef k);

static LLVMValueRef sum_over(Cg *cg, LLVMValueRef n, TermFn f, void *ctx, LLVMValueRef acc)
{
    LLVMBuildStore(cg->b, LLVMConstReal(cg->f64, 0), acc);
    Loop l = cg_loop_begin(cg, cg_i64(cg, 0), n, "k");
    LLVMValueRef t = f(cg, ctx, l.iv);
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, cg->f64, acc, ""), t, ""), acc);
    cg_loop_end(cg, &l);
    return LLVMBuildLoad2(cg->b, cg->f64, acc, "");
}

typedef struct RowCtx {
    const Node *n;
    LLVMValueRef in;
    Rows r;
    LLVMValueRef o, i;
    LLVMValueRef shift; /* the row's max (softmax) or mean (layernorm), as double */
} RowCtx;

static LLVMValueRef load_d(Cg *cg, RowCtx *c, LLVMValueRef k)
{
    const Node *x = c->n->in[0];
    return cg_convert(cg, cg_load(cg, c->in, x->dtype, at(cg, c->r, c->o, c->i, k)), x->dtype, DT_F64);
}

static LLVMValueRef exp_term(Cg *cg, void *ctx, LLVMValueRef k)
{
    RowCtx *c = ctx;
    LLVMValueRef d = LLVMBuildFSub(cg->b, load_d(cg, c, k), c->shift, "");
    return cg_intrinsic(cg, "llvm.exp", &d, 1);
}

static LLVMValueRef plain_term(Cg *cg, void *ctx, LLVMValueRef k)
{
    return load_d(cg, ctx, k);
}

static LLVMValueRef square_term(Cg *cg, void *ctx, LLVMValueRef k)
{
    RowCtx *c = ctx;
    LLVMValueRef d = LLVMBuildFSub(cg->b, load_d(cg, c, k), c->shift, "");
    return LLVMBuildFMul(cg->b, d, d, "");
}

int cg_normalise(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int axis = n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX ? n->at.axis : x->rank - 1;
    RowCtx c = {.n = n, .in = in[0], .r = rows_of(cg, x, axis)};
    LLVMValueRef acc = cg_alloca(cg, cg->f64, "acc");
    Loop lo = cg_loop_begin(cg, cg_i64(cg, 0), c.r.outer, "o");
    Loop li = cg_loop_begin(cg, cg_i64(cg, 0), c.r.inner, "i");
    c.o = lo.iv;
    c.i = li.iv;
    LLVMValueRef nd = LLVMBuildSIToFP(cg->b, c.r.n, cg->f64, "");
    LLVMValueRef scale, log_sum = NULL;
    if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX) {
        /* the row's max (NaN-propagating: a row of -inf gives NaN, as in PyTorch) */
        LLVMBuildStore(cg->b, LLVMConstReal(cg->f64, -INFINITY), acc);
        Loop l = cg_loop_begin(cg, cg_i64(cg, 0), c.r.n, "k");
        LLVMValueRef m = cg_intrinsic(cg, "llvm.maximum", (LLVMValueRef[]){LLVMBuildLoad2(cg->b, cg->f64, acc, ""), load_d(cg, &c, l.iv)}, 2);
        LLVMBuildStore(cg->b, m, acc);
        cg_loop_end(cg, &l);
        c.shift = LLVMBuildLoad2(cg->b, cg->f64, acc, "");
        LLVMValueRef s = sum_over(cg, c.r.n, exp_term, &c, acc);
        scale = LLVMBuildFDiv(cg->b, LLVMConstReal(cg->f64, 1), s, "");
        log_sum = cg_intrinsic(cg, "llvm.log", &s, 1);
    } else if (n->op == OP_LAYERNORM) {
        c.shift = LLVMBuildFDiv(cg->b, sum_over(cg, c.r.n, plain_term, &c, acc), nd, "");
        LLVMValueRef var = LLVMBuildFDiv(cg->b, sum_over(cg, c.r.n, square_term, &c, acc), nd, "");
        LLVMValueRef ve = LLVMBuildFAdd(cg->b, var, LLVMConstReal(cg->f64, n->at.eps), "");
        scale = LLVMBuildFDiv(cg->b, LLVMConstReal(cg->f64, 1), cg_intrinsic(cg, "llvm.sqrt", &ve, 1), "");
    } else { /* rmsnorm */
        c.shift = LLVMConstReal(cg->f64, 0);
        LLVMValueRef ms = LLVMBuildFDiv(cg->b, sum_over(cg, c.r.n, square_term, &c, acc), nd, "");
        LLVMValueRef ve = LLVMBuildFAdd(cg->b, ms, LLVMConstReal(cg->f64, n->at.eps), "");
        scale = LLVMBuildFDiv(cg->b, LLVMConstReal(cg->f64, 1), cg_intrinsic(cg, "llvm.sqrt", &ve, 1), "");
    }
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), c.r.n, "k");
    LLVMValueRef d = LLVMBuildFSub(cg->b, load_d(cg, &c, lk.iv), c.shift, ""), y;
    switch (n->op) {
    case OP_SOFTMAX: y = LLVMBuildFMul(cg->b, cg_intrinsic(cg, "llvm.exp", &d, 1), scale, ""); break;
    case OP_LOG_SOFTMAX: y = LLVMBuildFSub(cg->b, d, log_sum, ""); break;
    default: {
        y = LLVMBuildFMul(cg->b, d, scale, "");
        LLVMValueRef gm = cg_convert(cg, cg_load(cg, in[1], n->in[1]->dtype, lk.iv), n->in[1]->dtype, DT_F64);
        y = LLVMBuildFMul(cg->b, y, gm, "");
        if (n->op == OP_LAYERNORM)
            y = LLVMBuildFAdd(cg->b, y, cg_convert(cg, cg_load(cg, in[2], n->in[2]->dtype, lk.iv), n->in[2]->dtype, DT_F64), "");
    }
    }
    cg_store(cg, out, n->dtype, at(cg, c.r, c.o, c.i, lk.iv), cg_convert(cg, y, DT_F64, n->dtype));
    cg_loop_end(cg, &lk);
    cg_loop_end(cg, &li);
    cg_loop_end(cg, &lo);
    return 0;
}
