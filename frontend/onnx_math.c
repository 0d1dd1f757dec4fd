/* onnx_math.c: the ONNX ops that compute: elementwise arithmetic, comparisons and functions
 * (folded when every input is known at import time), Where, Cast, Clip, the reductions, MatMul and
 * Gemm, Trilu and CumSum written from what the language has, and Einsum.
 *
 * onnx_ops.c says how a handler works (infer the outputs' types, then fold or write model text) and
 * holds what the handlers share; the ops' names are in this file's table, ox_math_ops, at its end.
 */

#include "frontend/onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(v) ox_tensor(I, (v))
#define ERR(...) ox_err(I, __VA_ARGS__)

/* ---------------------------------------------------------------- elementwise */

/* An operand of an elementwise op whose result has rank r: a constant of one element is written as a
 * number (it becomes a constant of the other operand's dtype, which ONNX requires to be its own), so
 * `x / 8.0` reads as it would be written, and passes see a constant scale, not a weight. */
static const char *operand(Imp *I, OVal *v, int r)
{
    if (v->is_const && ox_numel(v) == 1 && v->rank <= r && v->dt >= 0 && v->dt != DT_BOOL && v->dt != DT_I64 && v->dt != DT_U64 &&
        !ox_has_sym(v)) /* a size stands there: its data is only the bound */
        return ox_num(I, ox_f(v, 0), v->dt);
    return T(v);
}

static double fold1(const char *op, double x)
{
    if (!strcmp(op, "Neg")) return -x;
    if (!strcmp(op, "Abs")) return fabs(x);
    if (!strcmp(op, "Exp")) return exp(x);
    if (!strcmp(op, "Log")) return log(x);
    if (!strcmp(op, "Sqrt")) return sqrt(x);
    if (!strcmp(op, "Tanh")) return tanh(x);
    if (!strcmp(op, "Erf")) return erf(x);
    if (!strcmp(op, "Sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(op, "Relu")) return x > 0 ? x : 0;
    if (!strcmp(op, "Reciprocal")) return 1 / x;
    return NAN;
}

static int op_unary(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    static const struct { const char *onnx, *kiln; int float_only; } map[] = {
        {"Exp", "exp", 1},   {"Log", "log", 1},   {"Sqrt", "sqrt", 1},       {"Tanh", "tanh", 1},
        {"Erf", "erf", 1},   {"Sigmoid", "sigmoid", 1}, {"Relu", "relu", 0}, {"Neg", "neg", 0},
        {"Abs", "abs", 0},   {"Reciprocal", NULL, 1},
    };
    OVal *x = in[0];
    if (nin < 1 || !x || !ox_need_dtype(I, x))
        return ERR("needs one input");
    int k = 0;
    while (strcmp(map[k].onnx, n->op_type))
        k++;
    if (map[k].float_only && !dtype_traits[x->dt].is_float)
        return ERR("input '%s' is %s; this op takes floats", x->name, ox_type_str(I, x));
    ox_copy_type(out[0], x);
    if (x->is_const) {
        ox_alloc(I, out[0]);
        for (int64_t i = 0; i < ox_numel(x); i++)
            dtype_store((DType)x->dt, out[0]->data, (size_t)i, fold1(n->op_type, ox_f(x, i)));
        return 0;
    }
    if (!map[k].kiln)
        ox_assign(I, out[0], "1.0 / %s", T(x));
    else
        ox_assign(I, out[0], "%s(%s)", map[k].kiln, T(x));
    return 0;
}

static double fold2(const char *op, double a, double b, int is_int)
{
    if (!strcmp(op, "Add")) return a + b;
    if (!strcmp(op, "Sub")) return a - b;
    if (!strcmp(op, "Mul")) return a * b;
    if (!strcmp(op, "Div")) return is_int ? (b != 0 ? trunc(a / b) : 0) : a / b;
    if (!strcmp(op, "Pow")) return pow(a, b);
    if (!strcmp(op, "Max")) return a > b || isnan(a) ? a : b;
    if (!strcmp(op, "Min")) return a < b || isnan(a) ? a : b;
    if (!strcmp(op, "Equal")) return a == b;
    if (!strcmp(op, "Less")) return a < b;
    if (!strcmp(op, "Greater")) return a > b;
    if (!strcmp(op, "LessOrEqual")) return a <= b;
    if (!strcmp(op, "GreaterOrEqual")) return a >= b;
    if (!strcmp(op, "And")) return a != 0 && b != 0;
    if (!strcmp(op, "Or")) return a != 0 || b != 0;
    if (!strcmp(op, "Xor")) return (a != 0) != (b != 0);
    return NAN;
}

/* Add, Sub, Mul, Div, Pow, Equal, Less; Max and Min (variadic) */
static int op_binary(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    const char *op = n->op_type;
    int variadic = !strcmp(op, "Max") || !strcmp(op, "Min");
    if (nin < (variadic ? 1 : 2))
        return ERR("needs %s inputs", variadic ? "at least one" : "two");
    for (int i = 0; i < nin; i++)
        if (!in[i] || !ox_need_dtype(I, in[i]))
            return 1;
    int is_pow = !strcmp(op, "Pow");
    int cmp = !strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater") || !strcmp(op, "LessOrEqual") ||
              !strcmp(op, "GreaterOrEqual");
    int logic = !strcmp(op, "And") || !strcmp(op, "Or") || !strcmp(op, "Xor");
    if (logic && in[0]->dt != DT_BOOL)
        return ERR("takes bool inputs, got %s", ox_type_str(I, in[0]));
    cmp |= logic;
    for (int i = 1; i < nin; i++)
        if (in[i]->dt != in[0]->dt && !is_pow)
            return ERR("inputs '%s' and '%s' have different dtypes (%s and %s)", in[0]->name, in[i]->name,
                       ox_type_str(I, in[0]), ox_type_str(I, in[i]));
    if (in[0]->dt == DT_BOOL && !cmp)
        return ERR("bool inputs are not supported by this op");
    if (is_pow && !dtype_traits[in[0]->dt].is_float && !dtype_traits[in[0]->dt].is_int)
        return ERR("Pow of %s is not supported", ox_type_str(I, in[0]));
    if (nin == 1) {
        ox_copy_type(out[0], in[0]);
        if (in[0]->is_const)
            ox_fold_same_data(I, in[0], out[0], in[0]->rank, in[0]->dims);
        else
            ox_assign(I, out[0], "%s", T(in[0]));
        return 0;
    }
    int rank = in[0]->rank;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    for (int i = 0; i < rank; i++)
        dims[i] = in[0]->dims[i], sym[i] = in[0]->sym[i];
    for (int i = 1; i < nin; i++) {
        OVal acc = {0};
        ox_type(&acc, in[0]->dt, rank, dims, sym);
        if (!ox_broadcast(I, &acc, in[i], &rank, dims, sym))
            return 1;
    }
    int odt = cmp ? DT_BOOL : in[0]->dt;
    ox_type(out[0], odt, rank, dims, sym);
    int is_int = !dtype_traits[in[0]->dt].is_float;
    if (ox_all_const(in, nin) && nin == 2) {
        /* sizes from Shape: + and - of them, * by a number (kl - ql for GPT-2's mask) */
        int lin = odt == DT_I64 && (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul"));
        if ((ox_has_sym(in[0]) || ox_has_sym(in[1])) && strcmp(op, "Equal") && !lin)
            return ERR("%s of a symbolic size (from Shape) is not supported", op);
        ox_alloc(I, out[0]);
        int64_t idx[IR_MAX_RANK] = {0}, cnt = ox_numel(out[0]);
        for (int64_t k = 0; k < cnt; k++, ox_next_index(rank, dims, idx)) {
            int64_t ia = ox_bcast_offset(in[0], rank, idx), ib = ox_bcast_offset(in[1], rank, idx);
            const char *sa = in[0]->esym ? in[0]->esym[ia] : NULL, *sb = in[1]->esym ? in[1]->esym[ib] : NULL;
            if ((sa || sb) && lin) {
                if (ox_sym_arith(I, op, sa, ox_int(in[0], ia), sb, ox_int(in[1], ib), out[0], k))
                    return 1;
                continue;
            }
            if (sa || sb) {
                /* a symbolic size is at least 1: never equal to a constant below 1 (the -1 of exporters'
                 * Expand shapes); equal to itself */
                if (sa && sb)
                    ((uint8_t *)out[0]->data)[k] = !strcmp(sa, sb);
                else if ((sa ? ox_int(in[1], ib) : ox_int(in[0], ia)) < 1)
                    ((uint8_t *)out[0]->data)[k] = 0;
                else
                    return ERR("comparing the symbolic size %s with %lld is not known at import", sa ? sa : sb,
                               (long long)(sa ? ox_int(in[1], ib) : ox_int(in[0], ia)));
                continue;
            }
            if (odt == DT_I64 && strcmp(op, "Pow")) {
                int64_t a = ox_int(in[0], ia), b = ox_int(in[1], ib), r = 0;
                if (!strcmp(op, "Add")) r = a + b;
                else if (!strcmp(op, "Sub")) r = a - b;
                else if (!strcmp(op, "Mul")) r = a * b;
                else if (!strcmp(op, "Div")) r = b ? a / b : 0;
                else if (!strcmp(op, "Max")) r = a > b ? a : b;
                else if (!strcmp(op, "Min")) r = a < b ? a : b;
                ((int64_t *)out[0]->data)[k] = r;
            } else if (in[0]->dt == DT_U64 && strcmp(op, "Pow")) { /* exactly, past 2^53 and 2^63 too */
                uint64_t a = (uint64_t)ox_int(in[0], ia), b = (uint64_t)ox_int(in[1], ib), r = 0;
                if (!strcmp(op, "Add")) r = a + b;
                else if (!strcmp(op, "Sub")) r = a - b;
                else if (!strcmp(op, "Mul")) r = a * b;
                else if (!strcmp(op, "Div")) r = b ? a / b : 0;
                else if (!strcmp(op, "Max")) r = a > b ? a : b;
                else if (!strcmp(op, "Min")) r = a < b ? a : b;
                else if (!strcmp(op, "Equal")) r = a == b;
                else if (!strcmp(op, "Less")) r = a < b;
                else if (!strcmp(op, "Greater")) r = a > b;
                else if (!strcmp(op, "LessOrEqual")) r = a <= b;
                else if (!strcmp(op, "GreaterOrEqual")) r = a >= b;
                if (odt == DT_BOOL)
                    ((uint8_t *)out[0]->data)[k] = r != 0;
                else
                    ((uint64_t *)out[0]->data)[k] = r;
            } else
                dtype_store((DType)odt, out[0]->data, (size_t)k, fold2(op, ox_f(in[0], ia), ox_f(in[1], ib), is_int));
        }
        return 0;
    }
    /* numbers only where the other side is a tensor that decides the dtype */
    int lit = !is_pow && !(is_int && !strcmp(op, "Div"));
    const char *a = lit && !in[1]->is_const ? operand(I, in[0], rank) : T(in[0]);
    const char *b = lit && !in[0]->is_const ? operand(I, in[1], rank) : T(in[1]);
    const char *dtn = dtype_traits[in[0]->dt].name;
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul"))
        ox_assign(I, out[0], "%s %c %s", a, op[0] == 'A' ? '+' : op[0] == 'S' ? '-' : '*', b);
    else if (!strcmp(op, "Div"))
        /* the language's / is true division; ONNX's on integers truncates toward zero, which a cast
         * from f64 does (exact for every i32, and for i64 and u64 below 2^53) */
        ox_assign(I, out[0], is_int ? "cast(cast(%s, f64) / cast(%s, f64), %s)" : "%s / %s%s", a, b, is_int ? dtn : "");
    else if (is_pow)
        ox_assign(I, out[0], is_int ? "cast(pow(cast(%s, f64), cast(%s, f64)), %s)" : "cast(pow(%s, %s), %s)", a, b, dtn);
    else if (!strcmp(op, "Equal"))
        ox_assign(I, out[0], "%s == %s", a, b);
    else if (!strcmp(op, "Less"))
        ox_assign(I, out[0], "%s < %s", a, b);
    else if (!strcmp(op, "Greater"))
        ox_assign(I, out[0], "%s > %s", a, b);
    else if (!strcmp(op, "LessOrEqual"))
        ox_assign(I, out[0], "%s <= %s", a, b);
    else if (!strcmp(op, "GreaterOrEqual"))
        ox_assign(I, out[0], "%s >= %s", a, b);
    /* bools: the language has no logical operators, but bool arithmetic counts in i32 */
    else if (!strcmp(op, "And"))
        ox_assign(I, out[0], "%s * %s != 0", a, b);
    else if (!strcmp(op, "Or"))
        ox_assign(I, out[0], "%s + %s != 0", a, b);
    else if (!strcmp(op, "Xor"))
        ox_assign(I, out[0], "%s != %s", a, b);
    else {
        /* Max, Min: a chain */
        const char *fn = op[1] == 'a' ? "maximum" : "minimum";
        const char *acc = arena_printf(I->a, "%s(%s, %s)", fn, a, b);
        for (int i = 2; i < nin; i++)
            acc = arena_printf(I->a, "%s(%s, %s)", fn, acc, T(in[i]));
        ox_assign(I, out[0], "%s", acc);
    }
    return 0;
}

static int op_where(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (nin != 3 || !in[0] || !in[1] || !in[2] || !ox_need_dtype(I, in[1]) || !ox_need_dtype(I, in[2]))
        return ERR("needs three inputs");
    if (in[0]->dt != DT_BOOL || in[1]->dt != in[2]->dt)
        return ERR("takes a bool condition and two values of one dtype, got %s, %s, %s", ox_type_str(I, in[0]),
                   ox_type_str(I, in[1]), ox_type_str(I, in[2]));
    int r;
    int64_t d1[IR_MAX_RANK], d2[IR_MAX_RANK];
    const char *s1[IR_MAX_RANK], *s2[IR_MAX_RANK];
    if (!ox_broadcast(I, in[0], in[1], &r, d1, s1))
        return 1;
    OVal tmp = {0};
    ox_type(&tmp, in[1]->dt, r, d1, s1);
    if (!ox_broadcast(I, &tmp, in[2], &r, d2, s2))
        return 1;
    ox_type(out[0], in[1]->dt, r, d2, s2);
    if (ox_all_const(in, 3)) {
        ox_alloc(I, out[0]);
        int64_t idx[IR_MAX_RANK] = {0}, cnt = ox_numel(out[0]);
        size_t es = (size_t)dtype_traits[in[1]->dt].size;
        for (int64_t k = 0; k < cnt; k++, ox_next_index(r, d2, idx)) {
            int c = ox_f(in[0], ox_bcast_offset(in[0], r, idx)) != 0;
            OVal *src = c ? in[1] : in[2];
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)src->data + ox_bcast_offset(src, r, idx) * (int64_t)es, es);
            ox_move_sym(I, out[0], src, k, ox_bcast_offset(src, r, idx), 1);
        }
        return 0;
    }
    const char *a = in[2]->is_const ? T(in[1]) : operand(I, in[1], r), *b = in[1]->is_const ? T(in[2]) : operand(I, in[2], r);
    ox_assign(I, out[0], "where(%s, %s, %s)", T(in[0]), a, b);
    return 0;
}

static int op_not(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (!in[0] || in[0]->dt != DT_BOOL)
        return ERR("takes one bool input");
    ox_copy_type(out[0], in[0]);
    if (in[0]->is_const) {
        uint8_t *p = ox_alloc(I, out[0]);
        for (int64_t i = 0; i < ox_numel(in[0]); i++)
            p[i] = !((uint8_t *)in[0]->data)[i];
        return 0;
    }
    ox_assign(I, out[0], "%s == 0", T(in[0]));
    return 0;
}

static int op_cast(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    int64_t to = ox_attr_i(n, "to", -1);
    if (!in[0] || !ox_need_dtype(I, in[0]))
        return 1;
    int dt = ox_onnx_dtype((int)to);
    if (dt < 0)
        return ERR("casts to %s, which kiln does not support", ox_onnx_dtype_name((int)to));
    ox_type(out[0], dt, in[0]->rank, in[0]->dims, in[0]->sym);
    if (in[0]->is_const) {
        ox_alloc(I, out[0]);
        if (dtype_traits[dt].is_int)
            ox_move_sym(I, out[0], in[0], 0, 0, ox_numel(in[0]));
        else if (ox_has_sym(in[0]))
            return ERR("casting a symbolic size to %s is not supported", dtype_traits[dt].name);
        for (int64_t i = 0; i < ox_numel(in[0]); i++) {
            if ((in[0]->dt == DT_I64 || in[0]->dt == DT_U64) && dtype_traits[dt].is_int && dtype_traits[dt].block == 1) {
                /* the low bytes of the 64 bits (little-endian), as the compiled cast keeps the low
                 * bits: -1 is 2^64 - 1, 2^63 + 5 to i32 is 5; never through a double */
                int64_t b = ox_int(in[0], i);
                memcpy((char *)out[0]->data + i * dtype_traits[dt].size, &b, (size_t)dtype_traits[dt].size);
            } else
                dtype_store((DType)dt, out[0]->data, (size_t)i, ox_f(in[0], i));
        }
        return 0;
    }
    ox_assign(I, out[0], "cast(%s, %s)", T(in[0]), dtype_traits[dt].name);
    return 0;
}

static int op_clip(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    ox_copy_type(out[0], x);
    const char *e = T(x);
    if (I->opset < 11) {
        const Onnx__AttributeProto *lo = ox_attr(n, "min"), *hi = ox_attr(n, "max");
        if (lo)
            e = arena_printf(I->a, "maximum(%s, %s)", e, ox_num(I, lo->f, x->dt));
        if (hi)
            e = arena_printf(I->a, "minimum(%s, %s)", e, ox_num(I, hi->f, x->dt));
    } else {
        for (int k = 1; k < 3 && k < nin; k++) {
            if (!in[k])
                continue;
            if (in[k]->dt != x->dt || in[k]->rank != 0)
                return ERR("the %s bound '%s' must be a scalar of the input's dtype, got %s", k == 1 ? "lower" : "upper",
                           in[k]->name, ox_type_str(I, in[k]));
            e = arena_printf(I->a, "%s(%s, %s)", k == 1 ? "maximum" : "minimum", e, T(in[k]));
        }
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- reductions */

static int op_reduce(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    const char *op = n->op_type;
    const char *fn = !strcmp(op, "ReduceSum") ? "sum" : !strcmp(op, "ReduceMean") ? "mean" : "max";
    int64_t axes[IR_MAX_RANK];
    int naxes, have;
    /* ReduceSum takes its axes as an input from opset 13 on; the others from opset 18 */
    if (!ox_get_axes(I, n, in, nin, 1, axes, &naxes, &have))
        return 1;
    int keep = (int)ox_attr_i(n, "keepdims", 1);
    if (!naxes && ox_attr_i(n, "noop_with_empty_axes", 0)) {
        ox_copy_type(out[0], x);
        ox_assign(I, out[0], "%s", T(x));
        return 0;
    }
    int red[IR_MAX_RANK] = {0};
    if (!naxes)
        for (int i = 0; i < x->rank; i++)
            red[i] = 1;
    for (int i = 0; i < naxes; i++) {
        int64_t a;
        if (!ox_norm_axis(I, axes[i], x->rank, &a))
            return 1;
        red[a] = 1;
    }
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (red[i] && x->dims[i] == 0)
            return ERR("reducing an empty dimension is not supported");
        if (red[i] && !keep)
            continue;
        dims[r] = red[i] ? 1 : x->dims[i];
        sym[r++] = red[i] ? NULL : x->sym[i];
    }
    ox_type(out[0], x->dt, r, dims, sym);
    int is_int = !dtype_traits[x->dt].is_float;
    if (is_int && strcmp(fn, "max") && x->dt != DT_I32 && x->dt != DT_I64)
        return ERR("%s of %s is not supported", op, ox_type_str(I, x));
    /* sums of integers in f64 (the language's sum of an integer tensor is f32), then back */
    const char *e = is_int && strcmp(fn, "max") ? arena_printf(I->a, "cast(%s, f64)", T(x)) : T(x);
    if (r == 0 || (x->rank == 0)) {
        e = arena_printf(I->a, "%s(%s)", fn, e);
    } else {
        for (int i = x->rank - 1; i >= 0; i--)
            if (red[i])
                e = arena_printf(I->a, "%s(%s, axis=%d, keepdims=true)", fn, e, i);
        if (!keep)
            e = arena_printf(I->a, "%s.reshape(%s)", e, ox_dims_text(I, r, dims, sym));
    }
    if (is_int && strcmp(fn, "max"))
        e = arena_printf(I->a, "cast(%s, %s)", e, dtype_traits[x->dt].name);
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- linear algebra */

static int op_matmul(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *a = in[0], *b = nin > 1 ? in[1] : NULL;
    if (!a || !b || !ox_need_dtype(I, a) || !ox_need_dtype(I, b))
        return ERR("needs two inputs");
    if (a->dt != b->dt)
        return ERR("inputs of different dtypes (%s and %s)", ox_type_str(I, a), ox_type_str(I, b));
    if (a->rank < 1 || b->rank < 1)
        return ERR("MatMul of a scalar");
    /* NumPy's matmul: a vector operand gets a dimension of 1 added, then removed */
    OVal A = *a, B = *b;
    if (a->rank == 1) {
        A.rank = 2, A.dims[0] = 1, A.dims[1] = a->dims[0], A.sym[0] = NULL, A.sym[1] = a->sym[0];
    }
    if (b->rank == 1) {
        B.rank = 2, B.dims[0] = b->dims[0], B.dims[1] = 1, B.sym[0] = b->sym[0], B.sym[1] = NULL;
    }
    if (A.dims[A.rank - 1] != B.dims[B.rank - 2] || (A.sym[A.rank - 1] != B.sym[B.rank - 2] &&
        (!A.sym[A.rank - 1] || !B.sym[B.rank - 2] || strcmp(A.sym[A.rank - 1], B.sym[B.rank - 2]))))
        return ERR("inner dimensions differ: %s and %s", ox_type_str(I, a), ox_type_str(I, b));
    OVal ba = A, bb = B;
    ba.rank -= 2, bb.rank -= 2;
    int r;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!ox_broadcast(I, &ba, &bb, &r, dims, sym))
        return 1;
    if (a->rank > 1)
        dims[r] = A.dims[A.rank - 2], sym[r++] = A.sym[A.rank - 2];
    if (b->rank > 1)
        dims[r] = B.dims[B.rank - 1], sym[r++] = B.sym[B.rank - 1];
    ox_type(out[0], a->dt, r, dims, sym);
    const char *ea = a->rank == 1 ? arena_printf(I->a, "%s.unsqueeze(0)", T(a)) : T(a);
    const char *eb = b->rank == 1 ? arena_printf(I->a, "%s.unsqueeze(1)", T(b)) : T(b);
    int is_int = !dtype_traits[a->dt].is_float;
    const char *e = is_int ? arena_printf(I->a, "cast(cast(%s, f64) @ cast(%s, f64), %s)", ea, eb, dtype_traits[a->dt].name)
                           : arena_printf(I->a, "%s @ %s", ea, eb);
    if (a->rank == 1 || b->rank == 1)
        e = arena_printf(I->a, "(%s).reshape(%s)", e, r ? ox_dims_text(I, r, dims, sym) : "[]");
    ox_assign(I, out[0], "%s", e);
    return 0;
}

static int op_gemm(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *a = in[0], *b = nin > 1 ? in[1] : NULL, *c = nin > 2 ? in[2] : NULL;
    if (!a || !b || !ox_need_dtype(I, a) || !ox_need_dtype(I, b))
        return ERR("needs A and B");
    if (a->rank != 2 || b->rank != 2 || a->dt != b->dt || !dtype_traits[a->dt].is_float)
        return ERR("takes two float matrices of one dtype, got %s and %s", ox_type_str(I, a), ox_type_str(I, b));
    int ta = (int)ox_attr_i(n, "transA", 0), tb = (int)ox_attr_i(n, "transB", 0);
    double alpha = ox_attr_f(n, "alpha", 1), beta = ox_attr_f(n, "beta", 1);
    int64_t dims[2] = {a->dims[ta ? 1 : 0], b->dims[tb ? 0 : 1]};
    const char *sym[2] = {a->sym[ta ? 1 : 0], b->sym[tb ? 0 : 1]};
    if (a->dims[ta ? 0 : 1] != b->dims[tb ? 1 : 0])
        return ERR("inner dimensions differ: %s and %s", ox_type_str(I, a), ox_type_str(I, b));
    ox_type(out[0], a->dt, 2, dims, sym);
    const char *e = arena_printf(I->a, "%s%s @ %s%s", T(a), ta ? ".T" : "", T(b), tb ? ".T" : "");
    if (alpha != 1)
        e = arena_printf(I->a, "(%s) * %s", e, ox_num(I, alpha, a->dt));
    if (c && beta != 0) {
        if (!ox_need_dtype(I, c) || c->dt != a->dt)
            return ERR("C must have A's dtype");
        e = beta != 1 ? arena_printf(I->a, "%s + %s * %s", e, T(c), ox_num(I, beta, a->dt)) : arena_printf(I->a, "%s + %s", e, T(c));
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- composites */

/* Trilu: where(j - i >= k, x, 0) (upper) or j - i <= k (lower), over the last two axes. */
static int op_trilu(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    if (x->rank < 2)
        return ERR("needs at least two dimensions");
    int64_t k = 0;
    int nk;
    if (nin > 1 && in[1] && !ox_const_ints(I, in[1], "k", &k, 1, &nk))
        return 1;
    int upper = (int)ox_attr_i(n, "upper", 1);
    int r = x->rank;
    ox_copy_type(out[0], x);
    if (x->is_const || (ox_numel(x) == 0 && ox_need_static(I, x, "an empty Trilu"))) {
        /* a mask made from a constant (exporters' causal masks), or an empty input (no data): folded */
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[x->dt].size;
        int64_t rows = x->dims[r - 2], cols = x->dims[r - 1];
        for (int64_t e = 0; e < ox_numel(x); e++) {
            int64_t j = e % cols, i = (e / cols) % rows;
            int keep = upper ? j - i >= k : j - i <= k;
            if (keep)
                memcpy((char *)out[0]->data + e * (int64_t)es, (char *)x->data + e * (int64_t)es, es);
        }
        return 0;
    }
    ox_assign(I, out[0], "where(arange(%s, dtype=i64).unsqueeze(0) - arange(%s, dtype=i64).unsqueeze(1) %s %lld, %s, 0)",
              ox_dim(I, x, r - 1), ox_dim(I, x, r - 2), upper ? ">=" : "<=", (long long)k, T(x));
    return 0;
}

/* CumSum: along the axis, a matmul with a 0/1 triangular matrix m[j][i] = (j contributes to i) */
static int op_cumsum(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || nin < 2 || !in[1] || !ox_need_dtype(I, x))
        return ERR("needs x and axis");
    int64_t a;
    int na;
    if (!ox_const_ints(I, in[1], "the axis", &a, 1, &na) || !ox_norm_axis(I, a, x->rank, &a))
        return 1;
    if (x->sym[a])
        return ERR("CumSum along the symbolic size %s is not supported", x->sym[a]);
    if (x->dt != DT_F32 && x->dt != DT_F64 && x->dt != DT_I32 && x->dt != DT_I64)
        return ERR("CumSum of %s is not supported", ox_type_str(I, x));
    int excl = (int)ox_attr_i(n, "exclusive", 0), rev = (int)ox_attr_i(n, "reverse", 0);
    static const char *cmp[2][2] = {{"<=", "<"}, {">=", ">"}};
    ox_copy_type(out[0], x);
    int last = (int)a == x->rank - 1;
    const char *xt = T(x);
    const char *m = ox_temp(I, "t_tri");
    int fdt = x->dt == DT_F32 ? DT_F32 : DT_F64; /* integers summed exactly in f64 */
    ox_emit(I, "%s = cast(arange(%lld, dtype=i64).unsqueeze(1) %s arange(%lld, dtype=i64).unsqueeze(0), %s)\n", m,
            (long long)x->dims[a], cmp[rev][excl], (long long)x->dims[a], dtype_traits[fdt].name);
    const char *e = last ? xt : arena_printf(I->a, "swapaxes(%s, %lld, -1)", xt, (long long)a);
    if (fdt != x->dt)
        e = arena_printf(I->a, "cast(%s, f64)", e);
    if (x->rank == 1)
        e = arena_printf(I->a, "(%s.unsqueeze(0) @ %s).squeeze(0)", e, m);
    else
        e = arena_printf(I->a, "%s @ %s", e, m);
    if (!last)
        e = arena_printf(I->a, "swapaxes(%s, %lld, -1)", e, (long long)a);
    if (fdt != x->dt)
        e = arena_printf(I->a, "cast(%s, %s)", e, dtype_traits[x->dt].name);
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- Einsum */

/* Einsum, any number of operands: repeated letters of one operand become its diagonal (a gather of
 * the flattened pair), every operand is laid out over all letters (output letters first, then the
 * summed ones; a missing letter is a dimension of 1), the operands multiply with broadcasting and the
 * summed letters are reduced. The 2-operand matrix forms come out as a product and a sum, which is
 * exact but not a matmul. */
static int op_einsum(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    const Onnx__AttributeProto *eq = ox_attr(n, "equation");
    if (!eq || !eq->has_s)
        return ERR("needs an equation");
    char buf[256];
    size_t len = 0;
    for (size_t i = 0; i < eq->s.len && len < sizeof buf - 1; i++) {
        if (eq->s.data[i] >= 128 || !eq->s.data[i]) /* letters index tables of 128 (found by fuzz_onnx) */
            return ERR("the equation has a byte outside ASCII");
        if (eq->s.data[i] != ' ')
            buf[len++] = (char)eq->s.data[i];
    }
    buf[len] = 0;
    char *arrow = strstr(buf, "->");
    char *rhs = arrow ? arrow + 2 : NULL;
    if (arrow)
        *arrow = 0;
    char terms[8][64];
    int nt = 0;
    char ell[IR_MAX_RANK + 1] = ""; /* the letters standing for "..." */
    int nell = -1;
    for (char *p = buf; nt < 8;) {
        char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (nt >= nin || !in[nt] || !ox_need_dtype(I, in[nt]))
            return ERR("the equation has more operands than the node has inputs");
        OVal *v = in[nt];
        char t[64] = "";
        size_t k = 0;
        for (size_t i = 0; i < l; i++) {
            if (!strncmp(p + i, "...", 3)) {
                int named = 0;
                for (size_t j = 0; j < l; j++)
                    named += (p[j] >= 'a' && p[j] <= 'z') || (p[j] >= 'A' && p[j] <= 'Z');
                int m = v->rank - named;
                if (m < 0 || (nell >= 0 && m != nell))
                    return ERR("the ellipsis of operand %d does not fit %s", nt, ox_type_str(I, v));
                nell = m;
                for (int j = 0; j < m; j++)
                    ell[j] = (char)('0' + j), t[k++] = (char)('0' + j);
                ell[m] = 0;
                i += 2;
            } else
                t[k++] = p[i];
        }
        t[k] = 0;
        if ((int)k != v->rank)
            return ERR("term '%.*s' does not match %s", (int)l, p, ox_type_str(I, v));
        snprintf(terms[nt++], sizeof terms[0], "%s", t);
        if (!c)
            break;
        p = c + 1;
    }
    if (nt != nin)
        return ERR("the equation has %d operands, the node %d inputs", nt, nin);
    char outl[IR_MAX_RANK + 1] = "";
    if (rhs) {
        size_t k = 0;
        for (size_t i = 0; rhs[i] && k < IR_MAX_RANK; i++) {
            if (!strncmp(rhs + i, "...", 3)) {
                for (int j = 0; j < (nell > 0 ? nell : 0); j++)
                    outl[k++] = ell[j];
                i += 2;
            } else
                outl[k++] = rhs[i];
        }
        outl[k] = 0;
    } else { /* implicit: the ellipsis, then letters that appear once, in alphabetical order */
        size_t k = 0;
        for (int j = 0; j < (nell > 0 ? nell : 0); j++)
            outl[k++] = ell[j];
        for (int c = 'A'; c <= 'z'; c++) {
            int cnt = 0;
            for (int t = 0; t < nt; t++)
                for (char *p = terms[t]; *p; p++)
                    cnt += *p == c;
            if (cnt == 1 && k < IR_MAX_RANK)
                outl[k++] = (char)c;
        }
        outl[k] = 0;
    }
    /* all letters: output first, then the summed ones; with each one's size */
    char all[32] = "";
    int64_t size[128] = {0};
    snprintf(all, sizeof all, "%s", outl);
    const char *ops[8];
    int64_t tdims[8][IR_MAX_RANK];
    for (int t = 0; t < nt; t++) {
        OVal *v = in[t];
        if (v->dt != in[0]->dt)
            return ERR("operands of different dtypes");
        ops[t] = T(v);
        /* diagonals: a letter twice in one term; the operand's dims tracked in cur */
        int64_t cur[IR_MAX_RANK];
        for (int i = 0; i < v->rank; i++)
            cur[i] = v->dims[i];
        for (;;) {
            int p = -1, q = -1, r = (int)strlen(terms[t]);
            for (int i = 0; i < r && p < 0; i++)
                for (int j = i + 1; j < r; j++)
                    if (terms[t][i] == terms[t][j]) {
                        p = i, q = j;
                        break;
                    }
            if (p < 0)
                break;
            if (cur[p] != cur[q])
                return ERR("letter '%c' has sizes %lld and %lld", terms[t][p], (long long)cur[p], (long long)cur[q]);
            int64_t d = cur[p], dims[IR_MAX_RANK];
            int perm[IR_MAX_RANK], np = 0;
            char nt2[IR_MAX_RANK + 1];
            for (int i = 0; i < r; i++)
                if (i != p && i != q)
                    perm[np] = i, dims[np] = cur[i], nt2[np] = terms[t][i], np++;
            char pl[64] = "";
            for (int i = 0; i < np; i++)
                snprintf(pl + strlen(pl), sizeof pl - strlen(pl), ", %d", perm[i]);
            snprintf(pl + strlen(pl), sizeof pl - strlen(pl), ", %d, %d", p, q);
            dims[np] = d * d;
            OVal *idx = arena_alloc(I->a, sizeof *idx);
            idx->name = arena_printf(I->a, "%s_diag", out[0]->name);
            ox_type(idx, DT_I64, 1, &d, NULL);
            int64_t *ip = ox_alloc(I, idx);
            for (int64_t k = 0; k < d; k++)
                ip[k] = k * (d + 1);
            ops[t] = arena_printf(I->a, "gather(permute(%s%s).reshape(%s), %s, axis=%d)", ops[t], pl,
                                  ox_dims_text(I, np + 1, dims, NULL), T(idx), np);
            nt2[np] = terms[t][p];
            nt2[np + 1] = 0;
            dims[np] = d;
            snprintf(terms[t], sizeof terms[t], "%s", nt2);
            for (int i = 0; i <= np; i++)
                cur[i] = dims[i];
        }
        for (char *p = terms[t]; *p; p++) {
            int64_t dsz = cur[p - terms[t]];
            unsigned char c = (unsigned char)*p;
            if (size[c] && size[c] != dsz && dsz != 1 && size[c] != 1)
                return ERR("letter '%c' has sizes %lld and %lld", *p, (long long)size[c], (long long)dsz);
            if (!size[c] || size[c] == 1)
                size[c] = dsz;
            if (!strchr(all, *p)) {
                size_t l = strlen(all);
                all[l] = *p, all[l + 1] = 0;
            }
        }
        for (int i = 0; i < (int)strlen(terms[t]); i++)
            tdims[t][i] = cur[i];
    }
    int na = (int)strlen(all), no = (int)strlen(outl);
    if (na > IR_MAX_RANK)
        return ERR("too many letters");
    /* each operand over all letters */
    char *prod = arena_strdup(I->a, "");
    for (int t = 0; t < nt; t++) {
        int r = (int)strlen(terms[t]);
        int perm[IR_MAX_RANK], np = 0;
        int64_t dims[IR_MAX_RANK];
        for (int i = 0; i < na; i++) {
            char *at = strchr(terms[t], all[i]);
            dims[i] = at ? tdims[t][at - terms[t]] : 1;
            if (at)
                perm[np++] = (int)(at - terms[t]);
        }
        const char *e = ops[t];
        int ident = 1;
        for (int i = 0; i < r; i++)
            ident &= perm[i] == i;
        if (!ident && r >= 2) {
            char pl[64] = "";
            for (int i = 0; i < r; i++)
                snprintf(pl + strlen(pl), sizeof pl - strlen(pl), ", %d", perm[i]);
            e = arena_printf(I->a, "permute(%s%s)", e, pl);
        }
        if (r != na)
            e = arena_printf(I->a, "%s.reshape(%s)", e, ox_dims_text(I, na, dims, NULL));
        prod = arena_printf(I->a, "%s%s%s", prod, t ? " * " : "", e);
    }
    int64_t odims[IR_MAX_RANK];
    for (int i = 0; i < no; i++)
        odims[i] = size[(unsigned char)outl[i]];
    ox_type(out[0], in[0]->dt, no, odims, NULL);
    const char *e = nt > 1 ? arena_printf(I->a, "(%s)", prod) : prod;
    if (no == 0 && na > 0)
        e = arena_printf(I->a, "sum(%s)", e);
    else if (na > no) {
        for (int i = na - 1; i >= no; i--)
            e = arena_printf(I->a, "sum(%s, axis=%d)", e, i);
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- the table */

const OxOp ox_math_ops[] = {
    {"Abs", op_unary},
    {"Add", op_binary},
    {"And", op_binary},
    {"Cast", op_cast},
    {"Clip", op_clip},
    {"CumSum", op_cumsum},
    {"Div", op_binary},
    {"Einsum", op_einsum},
    {"Equal", op_binary},
    {"Erf", op_unary},
    {"Exp", op_unary},
    {"Greater", op_binary},
    {"GreaterOrEqual", op_binary},
    {"Gemm", op_gemm},
    {"Less", op_binary},
    {"LessOrEqual", op_binary},
    {"Log", op_unary},
    {"MatMul", op_matmul},
    {"Max", op_binary},
    {"Min", op_binary},
    {"Mul", op_binary},
    {"Neg", op_unary},
    {"Not", op_not},
    {"Or", op_binary},
    {"Pow", op_binary},
    {"Reciprocal", op_unary},
    {"ReduceMax", op_reduce},
    {"ReduceMean", op_reduce},
    {"ReduceSum", op_reduce},
    {"Relu", op_unary},
    {"Sigmoid", op_unary},
    {"Sqrt", op_unary},
    {"Sub", op_binary},
    {"Tanh", op_unary},
    {"Trilu", op_trilu},
    {"Where", op_where},
    {"Xor", op_binary},
    {NULL, NULL},
};
