/* builtins.c: the builtin functions and tensor methods of the model language.
 *
 * One table row per builtin: its name, how many positional arguments it takes, whether it is also a
 * tensor method (x.reshape(...)), and its handler. Handlers check their arguments, fold on numbers
 * where that makes sense (sqrt(64) is 8.0 at compile time) and otherwise build IR through the lw_*
 * constructors of lower.c, which check shapes and dtypes. Keyword arguments a handler does not read
 * are reported, so a misspelt `axsi=1` is an error rather than silently ignored.
 *
 * Conventions kept close to NumPy and PyTorch: axis (or dim) may be negative; transpose with a full
 * permutation is NumPy's, with two axes on a tensor of another rank it swaps them (PyTorch's);
 * split(x, n) makes n equal parts, split(x, [a, b]) parts of those sizes; x.T reverses all axes.
 */
#include "frontend/frontend.h"

#include <math.h>
#include <string.h>

typedef struct Builtin Builtin;
typedef Value (*BuiltinFn)(Lower *L, Args *a, SrcLoc loc, const Builtin *b);

struct Builtin {
    const char *name;
    BuiltinFn fn;
    int min, max;  /* positional arguments; max -1: any number */
    int method;    /* also callable as x.name(...) */
    Op op;         /* for the table-driven handlers */
    int extra;     /* handler-specific */
};

#define ERR(loc, ...) diag_error(lower_diag(L), (loc), __VA_ARGS__)

/* ---------------------------------------------------------------- argument helpers */

/* Finds keyword `name` (or its alias); marks it used. */
static Value *kw(Args *a, const char *name, const char *alias, SrcLoc *loc)
{
    for (int i = 0; i < a->nkw; i++)
        if (!strcmp(a->kw[i], name) || (alias && !strcmp(a->kw[i], alias))) {
            a->kwused[i] = 1;
            if (loc)
                *loc = a->kwloc[i];
            return &a->kv[i];
        }
    return NULL;
}

static int get_int(Lower *L, Value v, SrcLoc loc, const char *what, int64_t *out)
{
    if (v.k == V_INT || v.k == V_BOOL) {
        *out = v.i;
        return 1;
    }
    if (v.k != V_NONE)
        ERR(loc, "%s must be a constant integer, got %s", what, lw_value_kind(v));
    return 0;
}

static int kw_int(Lower *L, Args *a, const char *name, const char *alias, int64_t def, int64_t *out)
{
    SrcLoc loc;
    Value *v = kw(a, name, alias, &loc);
    if (!v) {
        *out = def;
        return 1;
    }
    return get_int(L, *v, loc, name, out);
}

static int kw_float(Lower *L, Args *a, const char *name, double def, double *out)
{
    SrcLoc loc;
    Value *v = kw(a, name, NULL, &loc);
    if (!v) {
        *out = def;
        return 1;
    }
    if (v->k == V_INT || v->k == V_FLOAT) {
        *out = v->k == V_INT ? (double)v->i : v->f;
        return 1;
    }
    ERR(loc, "%s must be a number, got %s", name, lw_value_kind(*v));
    return 0;
}

static Node *arg_tensor(Lower *L, Args *a, int i)
{
    return lw_tensor(L, a->v[i], a->loc[i]);
}

/* The tensor argument i, as a float tensor (integers are converted to f32). */
static Node *arg_float(Lower *L, Args *a, int i)
{
    Node *x = arg_tensor(L, a, i);
    if (x && !dtype_traits[x->dtype].is_float)
        x = lw_cast(L, x, DT_F32, a->loc[i]);
    return x;
}

/* Reads an axis: positional argument i when present, else the keyword axis= (or dim=). */
static int arg_axis(Lower *L, Args *a, int i, int64_t def, int rank, SrcLoc loc, int *axis)
{
    int64_t v = def;
    SrcLoc at = loc;
    Value *k = kw(a, "axis", "dim", &at);
    if (i < a->n) {
        if (k) {
            ERR(at, "the axis is given twice");
            return 0;
        }
        if (!get_int(L, a->v[i], a->loc[i], "the axis", &v))
            return 0;
        at = a->loc[i];
    } else if (k && !get_int(L, *k, at, "the axis", &v))
        return 0;
    *axis = lw_axis(L, v, rank, at);
    return *axis >= 0;
}

/* The sizes given as separate arguments from index `from` (reshape(x, T, H, 64)) or as one list
 * (reshape(x, [T, H, 64])). */
static int arg_dims(Lower *L, Args *a, int from, Dim *out, int *n, SrcLoc loc, int allow_infer, int *infer)
{
    Value *vs = a->v + from;
    SrcLoc *ls = a->loc + from;
    int cnt = a->n - from;
    if (cnt == 1 && a->v[from].k == V_TUPLE) {
        vs = a->v[from].items;
        cnt = a->v[from].n;
        ls = NULL;
    }
    if (cnt > IR_MAX_RANK) {
        ERR(loc, "at most %d dimensions", IR_MAX_RANK);
        return 0;
    }
    if (infer)
        *infer = -1;
    for (int i = 0; i < cnt; i++) {
        SrcLoc l = ls ? ls[i] : loc;
        if (allow_infer && vs[i].k == V_INT && vs[i].i == -1) {
            if (*infer >= 0) {
                ERR(l, "only one dimension can be -1");
                return 0;
            }
            *infer = i;
            out[i] = dim_const(1);
            continue;
        }
        if (!lw_dim(L, vs[i], l, &out[i]))
            return 0;
        if (dim_is_const(out[i]) && dim_value(out[i]) < 0) {
            ERR(l, "a dimension cannot be negative (%lld)", (long long)dim_value(out[i]));
            return 0;
        }
    }
    *n = cnt;
    return 1;
}

static int arg_ints(Lower *L, Args *a, int from, int *out, int *n, SrcLoc loc)
{
    Value *vs = a->v + from;
    int cnt = a->n - from;
    if (cnt == 1 && a->v[from].k == V_TUPLE) {
        vs = a->v[from].items;
        cnt = a->v[from].n;
    }
    if (cnt > IR_MAX_RANK) {
        ERR(loc, "at most %d axes", IR_MAX_RANK);
        return 0;
    }
    for (int i = 0; i < cnt; i++) {
        int64_t v;
        if (!get_int(L, vs[i], loc, "an axis", &v))
            return 0;
        out[i] = (int)v;
    }
    *n = cnt;
    return 1;
}

/* ---------------------------------------------------------------- elementwise */

/* Numbers fold with the interpreter's own definition of the op (ir_eval_scalar), so that relu(nan)
 * written with numbers is what the same relu computes on a tensor. */
static double fold1(Op op, double x)
{
    return ir_eval_scalar(op, NULL, DT_F64, 1, &x);
}

static Value b_unary(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Value v = a->v[0];
    if (v.k == V_INT || v.k == V_FLOAT || v.k == V_BOOL)
        return v_float(fold1(b->op, v.k == V_FLOAT ? v.f : (double)v.i));
    return v_tensor(lw_unary(L, b->op, arg_tensor(L, a, 0), loc));
}

static Value b_gelu(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    int approx = b->extra;
    SrcLoc at;
    Value *k = kw(a, "approximate", NULL, &at);
    if (k) {
        if (k->k != V_STR || (strcmp(k->s, "tanh") && strcmp(k->s, "none"))) {
            ERR(at, "approximate must be \"none\" or \"tanh\"");
            return v_none();
        }
        approx = !strcmp(k->s, "tanh");
    }
    Node *x = arg_float(L, a, 0);
    if (!x)
        return v_none();
    IrWhy why;
    return v_tensor(lw_built(L, ir_gelu(lower_graph(L), x, approx, loc, &why), &why, loc, NULL, 0));
}

static Value b_binary(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Value x = a->v[0], y = a->v[1];
    int nx = x.k == V_INT || x.k == V_FLOAT, ny = y.k == V_INT || y.k == V_FLOAT;
    if (nx && ny) {
        double p = x.k == V_FLOAT ? x.f : (double)x.i, q = y.k == V_FLOAT ? y.f : (double)y.i;
        double r = ir_eval_scalar(b->op, NULL, DT_F64, 2, (double[]){p, q});
        return x.k == V_INT && y.k == V_INT && b->op != OP_POW ? v_int((int64_t)r) : v_float(r);
    }
    Node *tx = nx ? NULL : arg_tensor(L, a, 0), *ty = ny ? NULL : arg_tensor(L, a, 1);
    if ((!nx && !tx) || (!ny && !ty))
        return v_none();
    if (nx)
        tx = lw_scalar(L, ty->dtype, x.k == V_FLOAT ? x.f : (double)x.i, a->loc[0]);
    if (ny)
        ty = lw_scalar(L, tx->dtype, y.k == V_FLOAT ? y.f : (double)y.i, a->loc[1]);
    return v_tensor(lw_binary(L, b->op, tx, ty, loc));
}

static Value b_where(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *c = arg_tensor(L, a, 0);
    if (!c)
        return v_none();
    if (c->dtype != DT_BOOL)
        c = lw_binary(L, OP_NE, c, lw_scalar(L, c->dtype, 0, loc), loc);
    Node *x = NULL, *y = NULL;
    Value vx = a->v[1], vy = a->v[2];
    int nx = vx.k == V_INT || vx.k == V_FLOAT, ny = vy.k == V_INT || vy.k == V_FLOAT;
    if (!nx)
        x = arg_tensor(L, a, 1);
    if (!ny)
        y = arg_tensor(L, a, 2);
    if ((!nx && !x) || (!ny && !y))
        return v_none();
    DType dt = x ? x->dtype : y ? y->dtype : DT_F32;
    if (x && y && x->dtype != y->dtype) {
        /* meet as the binary operators do */
        Node *t = lw_binary(L, OP_ADD, x, y, loc);
        if (!t)
            return v_none();
        dt = t->dtype;
    }
    if (nx)
        x = lw_scalar(L, dt, vx.k == V_FLOAT ? vx.f : (double)vx.i, a->loc[1]);
    if (ny)
        y = lw_scalar(L, dt, vy.k == V_FLOAT ? vy.f : (double)vy.i, a->loc[2]);
    x = lw_cast(L, x, dt, loc);
    y = lw_cast(L, y, dt, loc);
    IrWhy why;
    return v_tensor(lw_built(L, ir_where(lower_graph(L), c, x, y, loc, &why), &why, loc, NULL, 0));
}

static Value b_cast(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    if (a->v[1].k != V_DTYPE) {
        ERR(a->loc[1], "cast takes a dtype (f32, f16, bf16, i32, ...), got %s", lw_value_kind(a->v[1]));
        return v_none();
    }
    Node *x = arg_tensor(L, a, 0);
    if (!x)
        return v_none();
    if (x->dtype == (DType)a->v[1].i)
        return v_tensor(x);
    return v_tensor(lw_cast(L, x, (DType)a->v[1].i, loc));
}

/* ---------------------------------------------------------------- reductions and normalisations */

static Node *reduce(Lower *L, Op op, Node *x, int axis, int keep, SrcLoc loc)
{
    if (op != OP_RMAX && op != OP_RMIN && !dtype_traits[x->dtype].is_float)
        x = lw_cast(L, x, DT_F32, loc);
    IrWhy why;
    return lw_built(L, ir_reduce(lower_graph(L), op, x, axis, keep, loc, &why), &why, loc, NULL, 0);
}

static Value b_reduce(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    /* max(a, b) and min(a, b) of two values are elementwise */
    if ((b->op == OP_RMAX || b->op == OP_RMIN) && a->n >= 2 &&
        (a->v[1].k != V_INT || a->v[0].k == V_INT || a->v[0].k == V_FLOAT)) {
        if (a->n > 2) {
            ERR(loc, "%s of more than two values: nest the calls", b->name);
            return v_none();
        }
        Builtin e = *b;
        e.op = b->op == OP_RMAX ? OP_MAXIMUM : OP_MINIMUM;
        return b_binary(L, a, loc, &e);
    }
    if (a->n > 2) {
        ERR(loc, "'%s' takes a tensor and an axis, got %d arguments", b->name, a->n);
        return v_none();
    }
    Node *x = arg_tensor(L, a, 0);
    if (!x)
        return v_none();
    int64_t keep;
    if (!kw_int(L, a, "keepdims", "keepdim", 0, &keep))
        return v_none();
    if (a->n < 2 && !kw(a, "axis", "dim", NULL)) {
        /* no axis: over every element, as NumPy does */
        Dim all = dim_const(1);
        for (int i = 0; i < x->rank; i++)
            if (!dim_mul(all, x->shape[i], &all)) {
                ERR(loc, "%s over all elements of %s: give an axis", b->name, "a tensor with two symbolic sizes");
                return v_none();
            }
        x = lw_reshape(L, x, 1, &all, loc);
        Node *r = x ? reduce(L, b->op, x, 0, 0, loc) : NULL;
        return v_tensor(r);
    }
    int axis;
    if (!arg_axis(L, a, 1, -1, x->rank, loc, &axis))
        return v_none();
    return v_tensor(reduce(L, b->op, x, axis, keep != 0, loc));
}

static Value b_softmax(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_float(L, a, 0);
    int axis;
    if (!x || !arg_axis(L, a, 1, -1, x->rank, loc, &axis))
        return v_none();
    IrWhy why;
    return v_tensor(lw_built(L, ir_softmax(lower_graph(L), b->op, x, axis, loc, &why), &why, loc, NULL, 0));
}

static Value b_norm(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    int layer = b->op == OP_LAYERNORM;
    double eps;
    if (!kw_float(L, a, "eps", layer ? 1e-5 : 1e-6, &eps))
        return v_none();
    Node *x = arg_float(L, a, 0);
    if (!x)
        return v_none();
    if (x->rank == 0) {
        ERR(loc, "%s of a scalar", b->name);
        return v_none();
    }
    Node *in[3] = {x, NULL, NULL};
    Dim last = x->shape[x->rank - 1];
    for (int i = 1; i < a->n; i++) {
        Node *p = lw_cast(L, arg_tensor(L, a, i), x->dtype, a->loc[i]);
        if (!p)
            return v_none();
        in[i] = p;
    }
    if (layer && a->n == 2) { /* no bias: zeros, once the weight is known to fit */
        if (in[1]->rank != 1 || !dim_eq(in[1]->shape[0], last))
            in[2] = in[1];
        else
            in[2] = lw_expand(L, lw_scalar(L, x->dtype, 0, loc), 1, &last, loc);
    }
    IrWhy why;
    Graph *g = lower_graph(L);
    return v_tensor(lw_built(L, ir_norm(g, b->op, x, in[1], in[2], eps, loc, &why), &why, loc, a->loc, a->n));
}

/* ---------------------------------------------------------------- shapes */

static Value b_reshape(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_tensor(L, a, 0);
    Dim shape[IR_MAX_RANK];
    int n, infer;
    if (!x || !arg_dims(L, a, 1, shape, &n, loc, 1, &infer))
        return v_none();
    if (infer >= 0) {
        /* the -1 dimension: total / product of the others */
        Dim total = dim_const(1), rest = dim_const(1);
        int ok = 1;
        for (int i = 0; i < x->rank; i++)
            ok &= dim_mul(total, x->shape[i], &total);
        for (int i = 0; i < n; i++)
            if (i != infer)
                ok &= dim_mul(rest, shape[i], &rest);
        if (!ok || !dim_div(total, rest, &shape[infer])) {
            char buf[128];
            ERR(loc, "cannot infer the -1 dimension when reshaping %s", node_type_str(lower_graph(L), x, buf, sizeof buf));
            return v_none();
        }
    }
    return v_tensor(lw_reshape(L, x, n, shape, loc));
}

static Value b_transpose(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_tensor(L, a, 0);
    if (!x)
        return v_none();
    int perm[IR_MAX_RANK], n = 0;
    if (a->n > 1 && !arg_ints(L, a, 1, perm, &n, loc))
        return v_none();
    if (n == 0) { /* reverse all axes */
        for (int i = 0; i < x->rank; i++)
            perm[i] = x->rank - 1 - i;
    } else if (b->extra || (n == 2 && x->rank != 2)) { /* swap two axes */
        if (n != 2) {
            ERR(loc, "%s takes two axes", b->name);
            return v_none();
        }
        int p = lw_axis(L, perm[0], x->rank, loc), q = lw_axis(L, perm[1], x->rank, loc);
        if (p < 0 || q < 0)
            return v_none();
        for (int i = 0; i < x->rank; i++)
            perm[i] = i;
        perm[p] = q;
        perm[q] = p;
    } else {
        if (n != x->rank) {
            char buf[128];
            ERR(loc, "%s of %s needs %d axes, got %d", b->name, node_type_str(lower_graph(L), x, buf, sizeof buf),
                x->rank, n);
            return v_none();
        }
        for (int i = 0; i < n; i++)
            if ((perm[i] = lw_axis(L, perm[i], x->rank, loc)) < 0)
                return v_none();
    }
    return v_tensor(lw_transpose(L, x, perm, loc));
}

static Value b_unsqueeze(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_tensor(L, a, 0);
    int axis;
    if (!x)
        return v_none();
    int squeeze = b->extra;
    if (!arg_axis(L, a, 1, 0, squeeze ? x->rank : x->rank + 1, loc, &axis))
        return v_none();
    Dim shape[IR_MAX_RANK];
    int r = 0;
    if (squeeze) {
        if (!dim_eq(x->shape[axis], dim_const(1))) {
            char buf[128];
            ERR(loc, "squeeze: dimension %d of %s is not 1", axis, node_type_str(lower_graph(L), x, buf, sizeof buf));
            return v_none();
        }
        for (int i = 0; i < x->rank; i++)
            if (i != axis)
                shape[r++] = x->shape[i];
    } else {
        if (x->rank == IR_MAX_RANK) {
            ERR(loc, "unsqueeze: a tensor has at most %d dimensions", IR_MAX_RANK);
            return v_none();
        }
        for (int i = 0; i <= x->rank; i++)
            shape[r++] = i == axis ? dim_const(1) : x->shape[i - (i > axis)];
    }
    return v_tensor(lw_reshape(L, x, r, shape, loc));
}

static Value b_expand(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_tensor(L, a, 0);
    Dim shape[IR_MAX_RANK];
    int n;
    if (!x || !arg_dims(L, a, 1, shape, &n, loc, 0, NULL))
        return v_none();
    return v_tensor(lw_expand(L, x, n, shape, loc));
}

/* The tensors of a call: concat([a, b], axis=0) or concat(a, b, axis=0). */
static int tensor_list(Lower *L, Args *a, int from, Node **out, int max, SrcLoc loc)
{
    int n = 0;
    if (a->n - from == 1 && a->v[from].k == V_TUPLE) {
        Value t = a->v[from];
        for (int i = 0; i < t.n && n < max; i++)
            if (!(out[n++] = lw_tensor(L, t.items[i], a->loc[from])))
                return -1;
        return t.n > max ? (ERR(loc, "at most %d tensors", max), -1) : n;
    }
    for (int i = from; i < a->n && n < max; i++)
        if (!(out[n++] = arg_tensor(L, a, i)))
            return -1;
    return a->n - from > max ? (ERR(loc, "at most %d tensors", max), -1) : n;
}

static Value b_concat(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *xs[64];
    int n = tensor_list(L, a, 0, xs, 64, loc);
    if (n < 0)
        return v_none();
    if (n == 0) {
        ERR(loc, "concat of nothing");
        return v_none();
    }
    int64_t axis;
    if (!kw_int(L, a, "axis", "dim", 0, &axis))
        return v_none();
    int ax = lw_axis(L, axis, xs[0]->rank, loc);
    return ax < 0 ? v_none() : v_tensor(lw_concat(L, n, xs, ax, loc));
}

static Value b_split(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_tensor(L, a, 0);
    int axis;
    if (!x || !arg_axis(L, a, 2, -1, x->rank, loc, &axis))
        return v_none();
    Dim size = x->shape[axis], parts[64];
    int n = 0;
    if (a->v[1].k == V_TUPLE) {
        Value t = a->v[1];
        if (t.n > 64) {
            ERR(a->loc[1], "at most 64 parts");
            return v_none();
        }
        Dim sum = dim_const(0);
        for (int i = 0; i < t.n; i++)
            if (!lw_dim(L, t.items[i], a->loc[1], &parts[n++]) || !dim_add(sum, parts[n - 1], &sum))
                return v_none();
        if (!dim_eq(sum, size)) {
            char b1[64], b2[64];
            ERR(a->loc[1], "split: the parts add up to %s but dimension %d has size %s",
                dim_str(lower_graph(L), sum, b1, sizeof b1), axis, dim_str(lower_graph(L), size, b2, sizeof b2));
            return v_none();
        }
    } else {
        int64_t k;
        if (!get_int(L, a->v[1], a->loc[1], "the number of parts", &k))
            return v_none();
        Dim each;
        if (k < 1 || k > 64 || !dim_div(size, dim_const(k), &each)) {
            char b1[64];
            ERR(a->loc[1], "split: dimension %d of size %s does not divide into %lld equal parts", axis,
                dim_str(lower_graph(L), size, b1, sizeof b1), (long long)k);
            return v_none();
        }
        for (int i = 0; i < k; i++)
            parts[n++] = each;
    }
    Value t = {.k = V_TUPLE, .n = n};
    t.items = arena_alloc(lower_graph(L)->arena, sizeof(Value) * (size_t)n);
    Dim start = dim_const(0);
    for (int i = 0; i < n; i++) {
        Dim end;
        dim_add(start, parts[i], &end);
        t.items[i] = v_tensor(lw_slice(L, x, axis, start, end, loc));
        start = end;
    }
    return t;
}

static Value b_slice(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_tensor(L, a, 0);
    int axis;
    Dim s, e;
    if (!x || !lw_dim(L, a->v[1], a->loc[1], &s) || !lw_dim(L, a->v[2], a->loc[2], &e) ||
        !arg_axis(L, a, 3, 0, x->rank, loc, &axis))
        return v_none();
    return v_tensor(lw_slice(L, x, axis, s, e, loc));
}

static Value b_gather(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *t = arg_tensor(L, a, 0), *i = arg_tensor(L, a, 1);
    int axis;
    if (!t || !i || !arg_axis(L, a, 2, 0, t->rank, loc, &axis))
        return v_none();
    return v_tensor(lw_gather(L, t, i, axis, loc));
}

static Value b_matmul(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    return v_tensor(lw_matmul(L, arg_tensor(L, a, 0), arg_tensor(L, a, 1), loc));
}

/* qmatmul(a, w, scale, zero?, group=0, dynamic=false): the quantized product of docs/IR.md, as
 * choose-quant makes it; here so that a model file can state one (the ONNX importer writes ONNX
 * Runtime's dynamically quantized MatMul as one). The IR checks the operands. */
static Value b_qmatmul(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *in[4] = {arg_float(L, a, 0), arg_tensor(L, a, 1), arg_tensor(L, a, 2), a->n > 3 ? arg_tensor(L, a, 3) : NULL};
    int64_t group, dynamic;
    if (!in[0] || !in[1] || !in[2] || (a->n > 3 && !in[3]) || !kw_int(L, a, "group", NULL, 0, &group) ||
        !kw_int(L, a, "dynamic", NULL, 0, &dynamic))
        return v_none();
    if (group < 0 || group > INT32_MAX) {
        ERR(loc, "qmatmul: group must be between 0 and 2^31 - 1, got %lld", (long long)group);
        return v_none();
    }
    Attrs at = {0};
    at.group = (int)group;
    at.dynamic = dynamic != 0;
    IrWhy why;
    return v_tensor(lw_built(L, ir_build(lower_graph(L), OP_QMATMUL, &at, a->n, in, NULL, loc, &why), &why, loc, NULL, 0));
}

/* ---------------------------------------------------------------- sources */

static Value b_causal_mask(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Dim shape[2];
    if (!lw_dim(L, a->v[0], a->loc[0], &shape[0]))
        return v_none();
    shape[1] = shape[0];
    if (a->n > 1 && !lw_dim(L, a->v[1], a->loc[1], &shape[1]))
        return v_none();
    return v_tensor(ir_source(lower_graph(L), OP_CAUSAL_MASK, DT_F32, 2, shape, loc));
}

static Value b_arange(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Dim lo = dim_const(0), hi, n;
    int64_t step = 1;
    if (a->n == 1) {
        if (!lw_dim(L, a->v[0], a->loc[0], &hi))
            return v_none();
    } else if (!lw_dim(L, a->v[0], a->loc[0], &lo) || !lw_dim(L, a->v[1], a->loc[1], &hi))
        return v_none();
    if (a->n == 3 && !get_int(L, a->v[2], a->loc[2], "the step of arange", &step))
        return v_none();
    if (step < 1) {
        ERR(loc, "arange: the step must be a positive integer");
        return v_none();
    }
    if (!dim_sub(hi, lo, &n) || (step != 1 && !dim_is_const(n)) || (!dim_is_const(lo) && !dim_eq(lo, hi))) {
        ERR(loc, "arange: the length must be a size (with step 1 when symbolic)");
        return v_none();
    }
    if (step != 1)
        n = dim_const((dim_value(n) + step - 1) / step);
    if (dim_is_const(n) && dim_value(n) < 1) {
        ERR(loc, "arange: the range is empty");
        return v_none();
    }
    int dt = DT_I32;
    SrcLoc at;
    Value *k = kw(a, "dtype", NULL, &at);
    if (k) {
        if (k->k != V_DTYPE) {
            ERR(at, "dtype must be a dtype such as f32");
            return v_none();
        }
        dt = (int)k->i;
    }
    IrType ty = {(DType)dt, 1, {n}};
    IrWhy why;
    Node *r = lw_built(L, ir_build(lower_graph(L), OP_ARANGE, NULL, 0, NULL, &ty, loc, &why), &why, loc, NULL, 0);
    if (!r)
        return v_none();
    if (step != 1)
        r = lw_binary(L, OP_MUL, r, lw_scalar(L, (DType)dt, (double)step, loc), loc);
    if (!dim_is_const(lo) || dim_value(lo) != 0) {
        if (!dim_is_const(lo)) {
            ERR(loc, "arange: a symbolic start is not supported");
            return v_none();
        }
        r = lw_binary(L, OP_ADD, r, lw_scalar(L, (DType)dt, (double)dim_value(lo), loc), loc);
    }
    return v_tensor(r);
}

static Value b_conv2d(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *x = arg_float(L, a, 0), *w = arg_tensor(L, a, 1), *bias = NULL;
    if (!x || !w)
        return v_none();
    w = lw_cast(L, w, x->dtype, loc);
    SrcLoc bl = loc;
    Value *bk = kw(a, "bias", NULL, &bl);
    if (a->n > 2)
        bias = lw_cast(L, arg_tensor(L, a, 2), x->dtype, a->loc[2]);
    else if (bk)
        bias = lw_cast(L, lw_tensor(L, *bk, bl), x->dtype, bl);
    int64_t stride, pad;
    if (!kw_int(L, a, "stride", NULL, 1, &stride) || !kw_int(L, a, "padding", "pad", 0, &pad))
        return v_none();
    char b1[128], b2[128];
    Graph *g = lower_graph(L);
    if ((x->rank != 3 && x->rank != 4) || w->rank != 4) {
        ERR(loc, "conv2d takes an image [C, H, W] or [N, C, H, W] and a kernel [O, C, KH, KW], got %s and %s",
            node_type_str(g, x, b1, sizeof b1), node_type_str(g, w, b2, sizeof b2));
        return v_none();
    }
    /* the language asks for static image and kernel sizes (the IR would allow a symbolic image) */
    int c = x->rank - 3;
    if (!dim_is_const(w->shape[2]) || !dim_is_const(w->shape[3]) || !dim_is_const(x->shape[c + 1]) ||
        !dim_is_const(x->shape[c + 2])) {
        ERR(loc, "conv2d: the image and kernel sizes must be constants: %s and %s", node_type_str(g, x, b1, sizeof b1),
            node_type_str(g, w, b2, sizeof b2));
        return v_none();
    }
    if (stride > 1 << 20 || pad > 1 << 20 || stride < -(1 << 20) || pad < -(1 << 20)) {
        ERR(loc, "conv2d: stride and padding must be between 0 and 2^20");
        return v_none();
    }
    IrWhy why;
    return v_tensor(lw_built(L, ir_conv2d(g, x, w, bias, (int)stride, (int)pad, loc, &why), &why, loc, NULL, 0));
}

/* attention(q, k, v, causal=false, mask=None, scale=1/sqrt(d)): shorthand that expands to the same
 * primitives a model would write, so that fuse-attention has one path to recognise. */
static Value b_attention(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Node *q = arg_float(L, a, 0), *k = arg_float(L, a, 1), *v = arg_float(L, a, 2);
    if (!q || !k || !v)
        return v_none();
    if (q->rank < 2 || k->rank < 2) {
        ERR(loc, "attention: q and k need at least two dimensions (tokens, head size)");
        return v_none();
    }
    int64_t causal;
    if (!kw_int(L, a, "causal", NULL, 0, &causal))
        return v_none();
    Dim d = q->shape[q->rank - 1];
    double scale;
    if (!dim_is_const(d)) {
        ERR(a->loc[0], "attention: the head size (last dimension of q) must be a constant, got a symbolic size");
        return v_none();
    }
    if (!kw_float(L, a, "scale", 1.0 / sqrt((double)dim_value(d)), &scale))
        return v_none();
    int perm[IR_MAX_RANK];
    for (int i = 0; i < k->rank; i++)
        perm[i] = i;
    perm[k->rank - 1] = k->rank - 2;
    perm[k->rank - 2] = k->rank - 1;
    Node *s = lw_matmul(L, q, lw_transpose(L, k, perm, loc), loc);
    if (!s)
        return v_none();
    s = lw_binary(L, OP_MUL, s, lw_scalar(L, s->dtype, scale, loc), loc);
    if (causal)
        s = lw_binary(L, OP_ADD, s,
                      ir_source(lower_graph(L), OP_CAUSAL_MASK, s->dtype, 2, s->shape + s->rank - 2, loc), loc);
    SrcLoc ml;
    Value *mk = kw(a, "mask", NULL, &ml);
    if (mk && s)
        s = lw_binary(L, OP_ADD, s, lw_cast(L, lw_tensor(L, *mk, ml), s->dtype, ml), ml);
    if (!s)
        return v_none();
    IrWhy why;
    Node *p = lw_built(L, ir_softmax(lower_graph(L), OP_SOFTMAX, s, s->rank - 1, loc, &why), &why, loc, NULL, 0);
    return v_tensor(lw_matmul(L, p, v, loc));
}

/* ---------------------------------------------------------------- numbers */

static Value b_int(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Value v = a->v[0];
    if (v.k == V_INT || v.k == V_BOOL)
        return v_int(v.i);
    if (v.k == V_FLOAT)
        return b->extra ? v_float(v.f) : v_int((int64_t)v.f);
    ERR(a->loc[0], "%s() takes a number, got %s", b->name, lw_value_kind(v));
    return v_none();
}

static Value b_float(Lower *L, Args *a, SrcLoc loc, const Builtin *b)
{
    Value v = a->v[0];
    if (v.k == V_INT || v.k == V_BOOL)
        return v_float((double)v.i);
    return b_int(L, a, loc, b);
}

/* ---------------------------------------------------------------- the table */

static const Builtin builtins[] = {
    {"exp", b_unary, 1, 1, 1, OP_EXP, 0},
    {"log", b_unary, 1, 1, 1, OP_LOG, 0},
    {"sqrt", b_unary, 1, 1, 1, OP_SQRT, 0},
    {"rsqrt", b_unary, 1, 1, 1, OP_RSQRT, 0},
    {"tanh", b_unary, 1, 1, 1, OP_TANH, 0},
    {"erf", b_unary, 1, 1, 1, OP_ERF, 0},
    {"sigmoid", b_unary, 1, 1, 1, OP_SIGMOID, 0},
    {"relu", b_unary, 1, 1, 1, OP_RELU, 0},
    {"silu", b_unary, 1, 1, 1, OP_SILU, 0},
    {"sin", b_unary, 1, 1, 1, OP_SIN, 0},
    {"cos", b_unary, 1, 1, 1, OP_COS, 0},
    {"abs", b_unary, 1, 1, 1, OP_ABS, 0},
    {"neg", b_unary, 1, 1, 1, OP_NEG, 0},
    {"gelu", b_gelu, 1, 1, 1, OP_GELU, 0},
    {"gelu_tanh", b_gelu, 1, 1, 1, OP_GELU, 1},
    {"maximum", b_binary, 2, 2, 0, OP_MAXIMUM, 0},
    {"minimum", b_binary, 2, 2, 0, OP_MINIMUM, 0},
    {"pow", b_binary, 2, 2, 1, OP_POW, 0},
    {"where", b_where, 3, 3, 0, OP_WHERE, 0},
    {"cast", b_cast, 2, 2, 1, OP_CAST, 0},
    {"sum", b_reduce, 1, 2, 1, OP_SUM, 0},
    {"mean", b_reduce, 1, 2, 1, OP_MEAN, 0},
    {"max", b_reduce, 1, 3, 1, OP_RMAX, 0},
    {"min", b_reduce, 1, 3, 1, OP_RMIN, 0},
    {"softmax", b_softmax, 1, 2, 1, OP_SOFTMAX, 0},
    {"log_softmax", b_softmax, 1, 2, 1, OP_LOG_SOFTMAX, 0},
    {"layernorm", b_norm, 2, 3, 0, OP_LAYERNORM, 0},
    {"rmsnorm", b_norm, 2, 2, 0, OP_RMSNORM, 0},
    {"reshape", b_reshape, 2, -1, 1, OP_RESHAPE, 0},
    {"transpose", b_transpose, 1, -1, 1, OP_TRANSPOSE, 0},
    {"permute", b_transpose, 2, -1, 1, OP_TRANSPOSE, 0},
    {"swapaxes", b_transpose, 3, 3, 1, OP_TRANSPOSE, 1},
    {"unsqueeze", b_unsqueeze, 1, 2, 1, OP_RESHAPE, 0},
    {"squeeze", b_unsqueeze, 1, 2, 1, OP_RESHAPE, 1},
    {"expand", b_expand, 2, -1, 1, OP_EXPAND, 0},
    {"concat", b_concat, 1, -1, 0, OP_CONCAT, 0},
    {"split", b_split, 2, 3, 1, OP_SLICE, 0},
    {"slice", b_slice, 3, 4, 1, OP_SLICE, 0},
    {"gather", b_gather, 2, 3, 0, OP_GATHER, 0},
    {"matmul", b_matmul, 2, 2, 0, OP_MATMUL, 0},
    {"qmatmul", b_qmatmul, 3, 4, 0, OP_QMATMUL, 0},
    {"causal_mask", b_causal_mask, 1, 2, 0, OP_CAUSAL_MASK, 0},
    {"arange", b_arange, 1, 3, 0, OP_ARANGE, 0},
    {"conv2d", b_conv2d, 2, 3, 0, OP_CONV2D, 0},
    {"attention", b_attention, 3, 3, 0, OP_MATMUL, 0},
    {"int", b_int, 1, 1, 0, OP_COUNT, 0},
    {"float", b_float, 1, 1, 0, OP_COUNT, 1},
};

enum { NBUILTIN = sizeof builtins / sizeof builtins[0] };

static const Builtin *find(const char *name)
{
    for (int i = 0; i < NBUILTIN; i++)
        if (!strcmp(builtins[i].name, name))
            return &builtins[i];
    return NULL;
}

int builtin_exists(const char *name)
{
    return find(name) != NULL;
}

int builtin_is_method(const char *name)
{
    const Builtin *b = find(name);
    return b && b->method;
}

int builtin_is_property(const char *name)
{
    return !strcmp(name, "T") || !strcmp(name, "shape") || !strcmp(name, "ndim");
}

const char *builtin_closest(const char *name)
{
    const char *best = NULL;
    int bestd = 3;
    for (int i = 0; i < NBUILTIN; i++) {
        int d = diag_distance(name, builtins[i].name);
        if (d < bestd) {
            bestd = d;
            best = builtins[i].name;
        }
    }
    return best;
}

Value builtin_property(Lower *L, Node *x, const char *name, SrcLoc loc)
{
    if (!strcmp(name, "T")) {
        int perm[IR_MAX_RANK];
        for (int i = 0; i < x->rank; i++)
            perm[i] = x->rank - 1 - i;
        return v_tensor(lw_transpose(L, x, perm, loc));
    }
    if (!strcmp(name, "ndim"))
        return v_int(x->rank);
    Value t = {.k = V_TUPLE, .n = x->rank};
    t.items = arena_alloc(lower_graph(L)->arena, sizeof(Value) * (size_t)(x->rank + 1));
    for (int i = 0; i < x->rank; i++)
        t.items[i] = dim_is_const(x->shape[i]) ? v_int(dim_value(x->shape[i])) : (Value){.k = V_DIM, .dim = x->shape[i]};
    return t;
}

Value builtin_call(Lower *L, const char *name, Args *a, SrcLoc loc)
{
    const Builtin *b = find(name);
    KILN_ASSERT(b);
    if (a->n < b->min || (b->max >= 0 && a->n > b->max)) {
        if (b->max == b->min)
            ERR(loc, "'%s' takes %d argument%s, got %d", name, b->min, b->min == 1 ? "" : "s", a->n);
        else if (b->max < 0)
            ERR(loc, "'%s' takes at least %d argument%s, got %d", name, b->min, b->min == 1 ? "" : "s", a->n);
        else
            ERR(loc, "'%s' takes %d to %d arguments, got %d", name, b->min, b->max, a->n);
        return v_none();
    }
    Value r = b->fn(L, a, loc, b);
    /* after an error the handler may have stopped before reading its keywords */
    for (int i = 0; i < a->nkw && r.k != V_NONE; i++)
        if (!a->kwused[i])
            ERR(a->kwloc[i], "'%s' has no keyword argument '%s'", name, a->kw[i]);
    return r;
}
