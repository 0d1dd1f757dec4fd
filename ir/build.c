/* build.c: shape and dtype inference, and the typed node builders made from it.
 *
 * ir_infer is the one place that knows, for every op, which inputs fit together and what type the
 * result has. Everything that makes or checks nodes asks it: the builders below (used by lowering,
 * by every pass and by the tests), and the verifier, which infers each node's type from its inputs
 * and attributes and compares it with the type the node carries. So a rule changes in one place.
 *
 * The IR does no implicit conversion: the inputs of a binary op, a where, a matmul, a norm, a concat
 * or an attention must already have one dtype (the frontend applies the language's promotion rules
 * and inserts the casts first). A builder that is refused returns NULL and says why in an IrWhy: a
 * sentence without a location, worded so that the frontend can show it as its own diagnostic (the
 * texts of tests/diag come from here), and the index of the input at fault. Passes build nodes that
 * must fit; they pass why = NULL, and then a misfit is an internal error (kiln_panic with the reason).
 *
 * Ops whose result type is not a function of their inputs take it from the caller: the dtype of a
 * cast, the shape of a reshape or an expand, and everything of a source (input, weight, const, arange,
 * causal_mask). ir_infer checks that requested type instead of computing it.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TBUF = IR_MAX_RANK * 96 + 16 };

/* Fills why (when given) and returns 0, so that a check reads `return refuse(w, i, "...")`. */
static int refuse(IrWhy *w, int input, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(IrWhy *w, int input, const char *fmt, ...)
{
    if (!w)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
    w->input = input;
    return 0;
}

/* Types as text, in a few rotating buffers so that one message can show several. */
static const char *ty(const Graph *g, const Node *n)
{
    static _Thread_local char bufs[6][TBUF];
    static _Thread_local int k;
    return node_type_str(g, n, bufs[k++ % 6], TBUF);
}

static const char *shp(const Graph *g, DType dt, int rank, const Dim *shape)
{
    static _Thread_local char bufs[4][TBUF];
    static _Thread_local int k;
    return type_str(g, dt, rank, shape, bufs[k++ & 3], TBUF);
}

static const char *ds(const Graph *g, Dim d)
{
    static _Thread_local char bufs[6][IR_DIM_STR];
    static _Thread_local int k;
    return dim_str(g, d, bufs[k++ % 6], IR_DIM_STR);
}

/* The bounds of the symbols d uses: "T <= 16", "P <= 8, T <= 16". */
static const char *bounds(const Graph *g, Dim d)
{
    static _Thread_local char bufs[2][IR_DIM_STR];
    static _Thread_local int k;
    char *b = bufs[k++ % 2];
    size_t n = 0;
    b[0] = 0;
    for (int i = 0; i < dim_nterms(d) && n < IR_DIM_STR; i++) {
        const Sym *s = &g->syms[dim_term(d, i, NULL)];
        int w = snprintf(b + n, IR_DIM_STR - n, "%s%s <= %lld", i ? ", " : "", s->name, (long long)s->bound);
        n += w < 0 ? IR_DIM_STR : (size_t)w;
    }
    return b;
}

static const char *dtn(DType t) { return dtype_traits[t].name; }

static int is_float(DType t) { return dtype_traits[t].is_float; }

static void set_shape(IrType *t, int rank, const Dim *shape)
{
    t->rank = rank;
    if (rank)
        memcpy(t->shape, shape, sizeof(Dim) * (size_t)rank);
}

int ir_same_type(const IrType *a, const IrType *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (!dim_eq(a->shape[i], b->shape[i]))
            return 0;
    return 1;
}

IrType ir_type_of(const Node *n)
{
    IrType t = {.dtype = n->dtype, .rank = n->rank};
    set_shape(&t, n->rank, n->shape);
    return t;
}

/* x <= y for every value of the symbols (each over 1..bound, independently). */
int dim_le(const Graph *g, Dim x, Dim y)
{
    Dim diff;
    if (dim_sub(y, x, &diff))
        return dim_min(g, diff) >= 0;
    return dim_max(g, x) <= dim_min(g, y);
}

static int axis_ok(IrWhy *w, int axis, int rank)
{
    if (axis < 0 || axis >= rank)
        return refuse(w, 0, "axis %d is out of range for a tensor of %d dimension%s", axis, rank,
                      rank == 1 ? "" : "s");
    return 1;
}

/* How a binary op is written, for messages: '+' rather than "add". */
static const char *op_symbol(Op op)
{
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_POW: return "**";
    case OP_LT: return "<";
    case OP_LE: return "<=";
    case OP_GT: return ">";
    case OP_GE: return ">=";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    default: return op_info[op].name;
    }
}

/* ---------------------------------------------------------------- per op family */

static int infer_source(const Graph *g, Op op, IrType *t, IrWhy *w)
{
    switch (op) {
    case OP_INPUT: return 1;
    case OP_WEIGHT:
    case OP_CONST:
        for (int i = 0; i < t->rank; i++)
            if (!dim_is_const(t->shape[i]))
                return refuse(w, -1, "a %s must have a static shape, not %s", op_info[op].name,
                              shp(g, t->dtype, t->rank, t->shape));
        return 1;
    case OP_ARANGE:
        if (t->rank != 1)
            return refuse(w, -1, "arange is rank 1, not %s", shp(g, t->dtype, t->rank, t->shape));
        if (t->dtype == DT_BOOL)
            return refuse(w, -1, "arange must be numeric, not bool");
        return 1;
    case OP_STATE: /* its declared type: the verifier checks the name and the declaration */
        for (int i = 0; i < t->rank; i++)
            if (!dim_is_const(t->shape[i]))
                return refuse(w, -1, "a state must have a static shape, not %s", shp(g, t->dtype, t->rank, t->shape));
        return 1;
    case OP_CAUSAL_MASK:
        if (t->rank != 2)
            return refuse(w, -1, "causal_mask is rank 2 [T, S], not %s", shp(g, t->dtype, t->rank, t->shape));
        if (!is_float(t->dtype))
            return refuse(w, -1, "causal_mask must be a float type, not %s", dtn(t->dtype));
        return 1;
    default: UNREACHABLE();
    }
}

static int infer_unary(const Graph *g, Op op, const Attrs *at, const Node *x, IrType *t, IrWhy *w)
{
    set_shape(t, x->rank, x->shape);
    if (op == OP_CAST)
        return 1; /* any dtype to any dtype; t->dtype is the caller's */
    t->dtype = x->dtype;
    switch (op) {
    case OP_NEG:
    case OP_ABS:
    case OP_RELU:
        if (x->dtype == DT_BOOL)
            return refuse(w, 0, "%s needs a numeric type, not bool", op_info[op].name);
        return 1;
    case OP_GELU:
        if (at->approx != 0 && at->approx != 1)
            return refuse(w, -1, "gelu's approx is 0 (erf) or 1 (tanh), not %d", at->approx);
        /* fall through */
    default:
        if (!is_float(x->dtype))
            return refuse(w, 0, "%s needs a float type, not %s", op_info[op].name, ty(g, x));
        return 1;
    }
}

static int infer_binary(const Graph *g, Op op, const Node *a, const Node *b, IrType *t, IrWhy *w)
{
    if (!shape_broadcast(a->rank, a->shape, b->rank, b->shape, &t->rank, t->shape))
        return refuse(w, -1, "shapes do not broadcast in '%s': %s and %s", op_symbol(op), ty(g, a), ty(g, b));
    if (a->dtype != b->dtype)
        return refuse(w, 1, "'%s' of %s and %s: the operands have different dtypes", op_symbol(op), ty(g, a),
                      ty(g, b));
    t->dtype = op_info[op].flags & F_CMP ? DT_BOOL : a->dtype;
    return 1;
}

static int infer_where(const Graph *g, const Node *c, const Node *a, const Node *b, IrType *t, IrWhy *w)
{
    if (c->dtype != DT_BOOL)
        return refuse(w, 0, "where: the condition must be bool, not %s", ty(g, c));
    if (a->dtype != b->dtype)
        return refuse(w, 2, "where: the values %s and %s have different dtypes", ty(g, a), ty(g, b));
    int r;
    Dim s[IR_MAX_RANK];
    if (!shape_broadcast(c->rank, c->shape, a->rank, a->shape, &r, s) ||
        !shape_broadcast(r, s, b->rank, b->shape, &t->rank, t->shape))
        return refuse(w, -1, "where: shapes do not broadcast: %s, %s and %s", ty(g, c), ty(g, a), ty(g, b));
    t->dtype = a->dtype;
    return 1;
}

static int infer_reduce(const Graph *g, Op op, const Attrs *at, const Node *x, IrType *t, IrWhy *w)
{
    if (op == OP_MEAN && !is_float(x->dtype))
        return refuse(w, 0, "mean needs a float type, not %s", ty(g, x));
    if (x->dtype == DT_BOOL)
        return refuse(w, 0, "%s needs a numeric type, not bool", op_info[op].name);
    if (!axis_ok(w, at->axis, x->rank))
        return 0;
    t->dtype = x->dtype;
    t->rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (i != at->axis)
            t->shape[t->rank++] = x->shape[i];
        else if (at->keepdims)
            t->shape[t->rank++] = dim_const(1);
    return 1;
}

static int infer_norm(const Graph *g, Op op, const Attrs *at, int nin, Node *const *in, IrType *t, IrWhy *w)
{
    const Node *x = in[0];
    const char *name = op_info[op].name;
    if (!is_float(x->dtype))
        return refuse(w, 0, "%s needs a float type, not %s", name, ty(g, x));
    if (x->rank < 1)
        return refuse(w, 0, "%s of a scalar", name);
    t->dtype = x->dtype;
    set_shape(t, x->rank, x->shape);
    if (op == OP_SOFTMAX || op == OP_LOG_SOFTMAX)
        return axis_ok(w, at->axis, x->rank);
    if (!(at->eps >= 0) || isinf(at->eps))
        return refuse(w, -1, "%s: eps must be finite and >= 0, not %g", name, at->eps);
    Dim last = x->shape[x->rank - 1];
    for (int i = 1; i < nin; i++) {
        const Node *p = in[i];
        const char *what = i == 1 ? "weight" : "bias";
        if (!is_float(p->dtype)) /* any float type: an f32 weight may scale an f16 input */
            return refuse(w, i, "%s: the %s %s must be a float type", name, what, ty(g, p));
        if (p->rank != 1 || !dim_eq(p->shape[0], last))
            return refuse(w, i, "%s: the %s must have the shape of the last dimension of %s, got %s", name, what,
                          ty(g, x), ty(g, p));
    }
    return 1;
}

static int infer_matmul(const Graph *g, const Node *a, const Node *b, IrType *t, IrWhy *w)
{
    if (a->rank == 0 || b->rank == 0)
        return refuse(w, -1, "'@' needs tensors of at least one dimension, got %s @ %s", ty(g, a), ty(g, b));
    if (a->dtype != b->dtype)
        return refuse(w, 1, "'@': the operands have different dtypes: %s @ %s", ty(g, a), ty(g, b));
    if (!is_float(a->dtype))
        return refuse(w, -1, "'@' needs float operands, got %s @ %s", ty(g, a), ty(g, b));
    /* NumPy: a vector a is [1, K] with the 1 dropped after; a vector b is [K, 1] likewise. */
    Dim ka = a->shape[a->rank - 1], kb = b->shape[b->rank >= 2 ? b->rank - 2 : 0];
    if (!dim_eq(ka, kb))
        return refuse(w, -1, "'@': inner dimensions differ: %s @ %s", ty(g, a), ty(g, b));
    int ra = a->rank > 2 ? a->rank - 2 : 0, rb = b->rank > 2 ? b->rank - 2 : 0, r;
    Dim out[IR_MAX_RANK + 2];
    if (!shape_broadcast(ra, a->shape, rb, b->shape, &r, out))
        return refuse(w, -1, "'@': batch dimensions do not broadcast: %s @ %s", ty(g, a), ty(g, b));
    if (a->rank >= 2)
        out[r++] = a->shape[a->rank - 2];
    if (b->rank >= 2)
        out[r++] = b->shape[b->rank - 1];
    if (r > IR_MAX_RANK)
        return refuse(w, -1, "'@': result has more than %d dimensions", IR_MAX_RANK);
    t->dtype = a->dtype;
    set_shape(t, r, out);
    return 1;
}

/* One spatial output dim of conv2d: (h + 2*pad - k) / stride + 1; 0 when it cannot be decided. */
static int conv_out(Dim h, Dim k, int pad, int stride, Dim *out)
{
    Dim t;
    if (!dim_add(h, dim_const(2 * (int64_t)pad), &t) || !dim_sub(t, k, &t))
        return 0;
    if (dim_is_const(t)) {
        if (dim_value(t) < 0)
            return 0;
        *out = dim_const(dim_value(t) / stride + 1);
        return 1;
    }
    if (!dim_div(t, dim_const(stride), &t))
        return 0;
    return dim_add(t, dim_const(1), out);
}

static int infer_conv(const Graph *g, const Attrs *at, int nin, Node *const *in, IrType *t, IrWhy *w)
{
    const Node *x = in[0], *k = in[1], *bias = nin > 2 ? in[2] : NULL;
    if (!is_float(x->dtype))
        return refuse(w, 0, "conv2d needs a float image, not %s", ty(g, x));
    if (k->dtype != x->dtype || (bias && bias->dtype != x->dtype))
        return refuse(w, -1, "conv2d: the image %s, kernel %s%s%s must have one dtype", ty(g, x), ty(g, k),
                      bias ? " and bias " : "", bias ? ty(g, bias) : "");
    if ((x->rank != 3 && x->rank != 4) || k->rank != 4)
        return refuse(w, -1, "conv2d takes an image [C, H, W] or [N, C, H, W] and a kernel [O, C, KH, KW], got %s and %s",
                      ty(g, x), ty(g, k));
    for (int i = 0; i < 2; i++)
        if (at->stride[i] < 1 || at->pad[i] < 0)
            return refuse(w, -1, "conv2d: stride must be at least 1 and padding at least 0");
    int c = x->rank - 3;
    if (!dim_eq(k->shape[1], x->shape[c]))
        return refuse(w, -1, "conv2d: channels of the image and the kernel differ: %s and %s", ty(g, x), ty(g, k));
    if (bias && (bias->rank != 1 || !dim_eq(bias->shape[0], k->shape[0])))
        return refuse(w, 2, "conv2d: the bias must be [%s], got %s", ds(g, k->shape[0]), ty(g, bias));
    t->dtype = x->dtype;
    t->rank = 0;
    if (c)
        t->shape[t->rank++] = x->shape[0];
    t->shape[t->rank++] = k->shape[0];
    for (int i = 0; i < 2; i++) {
        Dim h = x->shape[c + 1 + i], kk = k->shape[2 + i], o;
        if (dim_is_const(h) && dim_is_const(kk) && dim_value(h) + 2 * (int64_t)at->pad[i] < dim_value(kk))
            return refuse(w, -1, "conv2d: the kernel is larger than the padded image");
        if (!conv_out(h, kk, at->pad[i], at->stride[i], &o))
            return refuse(w, -1, "conv2d: the %s of %s with kernel %s, stride %d and pad %d is not of the form a*S+b",
                          i ? "width" : "height", ty(g, x), ty(g, k), at->stride[i], at->pad[i]);
        t->shape[t->rank++] = o;
    }
    return 1;
}

static int infer_attention(const Graph *g, const Attrs *at, int nin, Node *const *in, IrType *t, IrWhy *w)
{
    const Node *q = in[0], *k = in[1], *v = in[2];
    int q8 = nin == 7;
    if (nin == 6)
        return refuse(w, 5, "attention: six inputs: int8 k and v take two scales, (q, k, v, mask, n, kscale, vscale)");
    if (nin == 7) { /* int8 k and v, each with a scale per row (a quantized KV cache) */
        for (int j = 1; j <= 2; j++) {
            const Node *x = in[j], *s = in[j + 4];
            int fits = x->dtype == DT_I8 && s->dtype == DT_F32 && s->rank == x->rank &&
                       dim_eq(s->shape[s->rank - 1], dim_const(1));
            for (int i = 0; fits && i < x->rank - 1; i++)
                fits = dim_eq(s->shape[i], x->shape[i]);
            if (!fits)
                return refuse(w, j + 4, "attention: with scales, %s is i8 and its scale %s f32 of its shape with "
                              "the last dimension 1", ty(g, x), ty(g, s));
        }
        if (at->scores)
            return refuse(w, -1, "attention: the probabilities (scores) are not computed with int8 k and v");
        nin = 5;
    }
    if (nin == 5) { /* the keys read: an integer count, after the mask */
        const Node *n = in[4];
        int one = 1;
        for (int i = 0; i < n->rank; i++)
            one &= dim_eq(n->shape[i], dim_const(1));
        if (!dtype_traits[n->dtype].is_int || !one)
            return refuse(w, 4, "attention: the count of keys read is %s, not one integer", ty(g, n));
        nin = 4;
    }
    for (int i = 1; i < nin; i++)
        if (in[i]->dtype != q->dtype && !(q8 && i <= 2))
            return refuse(w, i, "attention: input %d is %s but q is %s: one dtype for all", i, ty(g, in[i]), ty(g, q));
    if (!is_float(q->dtype))
        return refuse(w, 0, "attention needs a float type, not %s", dtn(q->dtype));
    if (q->rank < 2 || k->rank < 2 || v->rank < 2)
        return refuse(w, -1, "attention: q, k and v need at least two dimensions: %s, %s, %s", ty(g, q), ty(g, k),
                      ty(g, v));
    Dim Tq = q->shape[q->rank - 2], d = q->shape[q->rank - 1], Tk = k->shape[k->rank - 2];
    if (!dim_eq(k->shape[k->rank - 1], d) || !dim_eq(v->shape[v->rank - 2], Tk))
        return refuse(w, -1, "attention: q %s, k %s and v %s do not fit: q and k share the head size, k and v the keys",
                      ty(g, q), ty(g, k), ty(g, v));
    Dim b1[IR_MAX_RANK], out[IR_MAX_RANK + 2];
    int r1, r;
    if (!shape_broadcast(q->rank - 2, q->shape, k->rank - 2, k->shape, &r1, b1) ||
        !shape_broadcast(r1, b1, v->rank - 2, v->shape, &r, out))
        return refuse(w, -1, "attention: the batch dimensions of %s, %s and %s do not broadcast", ty(g, q), ty(g, k),
                      ty(g, v));
    if (r + 2 > IR_MAX_RANK)
        return refuse(w, -1, "attention: the result would have more than %d dimensions", IR_MAX_RANK);
    if (nin == 4) {
        const Node *m = in[3];
        Dim full[IR_MAX_RANK + 2], bm[IR_MAX_RANK + 2];
        memcpy(full, out, sizeof(Dim) * (size_t)r);
        full[r] = Tq;
        full[r + 1] = Tk;
        int rm, fits = shape_broadcast(r + 2, full, m->rank, m->shape, &rm, bm) && rm == r + 2;
        for (int i = 0; fits && i < rm; i++)
            fits = dim_eq(bm[i], full[i]);
        if (!fits)
            return refuse(w, 3, "attention: the mask %s does not broadcast to the scores %s", ty(g, m),
                          shp(g, q->dtype, r + 2, full));
    }
    if (!isfinite(at->scale))
        return refuse(w, -1, "attention: scale must be finite");
    out[r++] = Tq;
    out[r++] = v->shape[v->rank - 1];
    if (at->scores && !dim_add(out[r - 1], Tk, &out[r - 1]))
        return refuse(w, -1, "attention: the probabilities' row dv + Tk cannot be written as one size");
    t->dtype = q->dtype;
    set_shape(t, r, out);
    return 1;
}

static int infer_slice(const Graph *g, const Attrs *at, const Node *x, IrType *t, IrWhy *w)
{
    if (!axis_ok(w, at->axis, x->rank))
        return 0;
    int ax = at->axis;
    Dim s = at->start, e = at->end, size = x->shape[ax], len;
    for (int i = 0; i < 2; i++) {
        if (!dim_in_graph(g, i ? e : s))
            return refuse(w, -1, "slice: the %s names a symbol the graph does not have", i ? "end" : "start");
    }
    if (!dim_le(g, dim_const(0), s)) {
        if (dim_is_const(s))
            return refuse(w, -1, "slice start %lld is negative", (long long)dim_value(s));
        if (dim_nterms(s) == 1) {
            const char *S = g->syms[dim_term(s, 0, NULL)].name;
            return refuse(w, -1, "slice start %s is negative when %s is small (%s >= 1)", ds(g, s), S, S);
        }
        return refuse(w, -1, "slice start %s can be as low as %lld (%s)", ds(g, s), (long long)dim_min(g, s),
                      bounds(g, s));
    }
    if (!dim_le(g, e, size)) {
        if (dim_is_const(e))
            return refuse(w, -1, "slice end %s is past the end of dimension %d of %s", ds(g, e), ax, ty(g, x));
        return refuse(w, -1, "slice end %s can reach %lld (%s) but dimension %d of %s has size %s", ds(g, e),
                      (long long)dim_max(g, e), bounds(g, e), ax, ty(g, x), ds(g, size));
    }
    if (!dim_le(g, s, e) || !dim_sub(e, s, &len))
        return refuse(w, -1, "slice [%s:%s] has no valid length", ds(g, s), ds(g, e));
    t->dtype = x->dtype;
    set_shape(t, x->rank, x->shape);
    t->shape[ax] = len;
    return 1;
}

static int infer_move(const Graph *g, Op op, const Attrs *at, int nin, Node *const *in, IrType *t, IrWhy *w)
{
    const Node *x = in[0];
    switch (op) {
    case OP_RESHAPE:
        t->dtype = x->dtype;
        if (!shape_numel_eq(g, x->rank, x->shape, t->rank, t->shape))
            return refuse(w, -1, "cannot reshape %s to %s: the element counts differ", ty(g, x),
                          shp(g, x->dtype, t->rank, t->shape));
        return 1;
    case OP_EXPAND: {
        t->dtype = x->dtype;
        int r;
        Dim out[IR_MAX_RANK];
        int ok = x->rank <= t->rank && shape_broadcast(x->rank, x->shape, t->rank, t->shape, &r, out) && r == t->rank;
        for (int i = 0; ok && i < r; i++)
            ok = dim_eq(out[i], t->shape[i]);
        if (!ok)
            return refuse(w, -1, "cannot expand %s to %s", ty(g, x), shp(g, x->dtype, t->rank, t->shape));
        return 1;
    }
    case OP_TRANSPOSE: {
        int seen[IR_MAX_RANK] = {0};
        for (int i = 0; i < x->rank; i++) {
            int p = at->perm[i];
            if (p < 0 || p >= x->rank || seen[p]++)
                return refuse(w, -1, "transpose: the axes are not a permutation of 0..%d for %s", x->rank - 1, ty(g, x));
        }
        t->dtype = x->dtype;
        t->rank = x->rank;
        for (int i = 0; i < x->rank; i++)
            t->shape[i] = x->shape[at->perm[i]];
        return 1;
    }
    case OP_SLICE: return infer_slice(g, at, x, t, w);
    case OP_CONCAT: {
        int ax = at->axis;
        if (!axis_ok(w, ax, x->rank))
            return 0;
        t->dtype = x->dtype;
        set_shape(t, x->rank, x->shape);
        for (int i = 1; i < nin; i++) {
            const Node *p = in[i];
            if (p->dtype != x->dtype)
                return refuse(w, i, "concat: %s and %s have different dtypes", ty(g, x), ty(g, p));
            int ok = p->rank == x->rank;
            for (int j = 0; ok && j < x->rank; j++)
                ok = j == ax || dim_eq(p->shape[j], x->shape[j]);
            if (!ok)
                return refuse(w, i, "concat along axis %d: %s and %s differ in another dimension", ax, ty(g, x),
                              ty(g, p));
            if (!dim_add(t->shape[ax], p->shape[ax], &t->shape[ax]))
                return refuse(w, i, "concat along axis %d: the sizes use two different symbols", ax);
        }
        return 1;
    }
    case OP_GATHER: {
        const Node *idx = in[1];
        if (!dtype_traits[idx->dtype].is_int)
            return refuse(w, 1, "indexing %s needs an integer tensor of indices, got %s", ty(g, x), ty(g, idx));
        if (!axis_ok(w, at->axis, x->rank))
            return 0;
        if (x->rank - 1 + idx->rank > IR_MAX_RANK)
            return refuse(w, -1, "indexing gives more than %d dimensions", IR_MAX_RANK);
        int ax = at->axis;
        t->dtype = x->dtype;
        t->rank = 0;
        for (int i = 0; i < ax; i++)
            t->shape[t->rank++] = x->shape[i];
        for (int i = 0; i < idx->rank; i++)
            t->shape[t->rank++] = idx->shape[i];
        for (int i = ax + 1; i < x->rank; i++)
            t->shape[t->rank++] = x->shape[i];
        return 1;
    }
    default: UNREACHABLE();
    }
}

/* scatter(base, index[n], values) {axis} (ir/entry.c): base's type; index i32 or i64 of rank 1;
 * values base's shape with n along axis, base's dtype */
static int infer_scatter(const Graph *g, const Attrs *at, Node *const *in, IrType *t, IrWhy *w)
{
    const Node *base = in[0], *ix = in[1], *val = in[2];
    if ((ix->dtype != DT_I32 && ix->dtype != DT_I64) || ix->rank != 1)
        return refuse(w, 1, "the index of a scatter must be i32 or i64 of rank 1, not %s", ty(g, ix));
    if (!axis_ok(w, at->axis, base->rank))
        return 0;
    if (val->dtype != base->dtype)
        return refuse(w, 2, "scatter: the values are %s but the base is %s", ty(g, val), ty(g, base));
    Dim want[IR_MAX_RANK];
    memcpy(want, base->shape, sizeof(Dim) * (size_t)base->rank);
    want[at->axis] = ix->shape[0];
    int same = val->rank == base->rank;
    for (int i = 0; same && i < base->rank; i++)
        same = dim_eq(val->shape[i], want[i]);
    if (!same)
        return refuse(w, 2, "scatter: the values are %s but must be %s (the index's length along axis %d)",
                      ty(g, val), shp(g, val->dtype, base->rank, want), at->axis);
    t->dtype = base->dtype;
    set_shape(t, base->rank, base->shape);
    return 1;
}

/* cls_probs(a): the first query row's probabilities of attention a, [a's batch dims..., Tk]. a is an f32
 * attention of q, k, v and maybe a mask (not the kv-cache's forms with a count of keys or int8 k and v,
 * nor one with scores, whose rows already hold them). */
static int infer_cls_probs(const Graph *g, Node *const *in, IrType *t, IrWhy *w)
{
    const Node *a = in[0];
    if (a->op != OP_ATTENTION || a->nin < 3 || a->nin > 4 || a->at.scores || a->dtype != DT_F32 || a->rank < 2 ||
        a->in[1]->rank < 2)
        return refuse(w, 0, "cls_probs reads an f32 attention of q, k, v and a mask at most, without scores, not %s %s",
                      op_info[a->op].name, ty(g, a));
    const Node *k = a->in[1];
    t->dtype = DT_F32;
    set_shape(t, a->rank - 1, a->shape);
    t->shape[a->rank - 2] = k->shape[k->rank - 2];
    return 1;
}

/* ---------------------------------------------------------------- inference */

/* The token ops of prune-tokens (tokens.c): f32 values, i32 destinations, batch dims shared. token_merge's
 * token count is the caller's (t on entry), at least 1 and at most x's. */
static int same_lead(const Node *a, int n, const Node *b)
{
    if (a->rank < n || b->rank < n)
        return 0;
    for (int i = 0; i < n; i++)
        if (!dim_eq(a->shape[i], b->shape[i]))
            return 0;
    return 1;
}

static int infer_tokens(const Graph *g, Op op, const Attrs *at, Node *const *in, int nin, IrType *t, IrWhy *w)
{
    const Node *x = in[0];
    int r = x->rank;
    const char *name = op_info[op].name;
    if (x->dtype != DT_F32 || (op == OP_CLS_ATTN && in[1]->dtype != DT_F32))
        return refuse(w, 0, "%s reads f32 values, not %s", name, ty(g, x));
    if (r < (op == OP_EVIT_SELECT ? 1 : 2))
        return refuse(w, 0, "%s needs a token axis: %s", name, ty(g, x));
    switch (op) {
    case OP_TOME_MATCH: /* metric [..., T, C] -> i32 [..., T] */
    case OP_PITOME_MATCH:
        if (at->r < 0 || 2 * (int64_t)at->r > dim_max(g, x->shape[r - 2]) - (at->cls != 0))
            return refuse(w, -1, "%s: r = %d is more than half the mergeable tokens of %s", name, at->r, ty(g, x));
        if (op == OP_PITOME_MATCH && !isfinite(at->margin))
            return refuse(w, -1, "pitome_match: the margin must be finite");
        t->dtype = DT_I32;
        set_shape(t, r - 1, x->shape);
        return 1;
    case OP_EVIT_SELECT: /* attention [..., T] -> i32 [..., T] */
        if (at->keep < 1 || (int64_t)at->keep + 1 > dim_max(g, x->shape[r - 1]))
            return refuse(w, -1, "evit_select keeps %d tokens of %s after the first", at->keep, ty(g, x));
        t->dtype = DT_I32;
        set_shape(t, r, x->shape);
        return 1;
    case OP_CLS_ATTN: { /* q [..., Tq, d], k [..., Tk, d] -> [..., Tk] */
        const Node *k = in[1];
        if (k->rank != r || !same_lead(x, r - 2, k) || !dim_eq(x->shape[r - 1], k->shape[r - 1]))
            return refuse(w, 1, "cls_attn: q %s and k %s need the same batch dims and head size", ty(g, x), ty(g, k));
        t->dtype = DT_F32;
        set_shape(t, r - 1, x->shape);
        t->shape[r - 2] = k->shape[r - 2];
        return 1;
    }
    case OP_TOKEN_MERGE: { /* x [..., T, D], dest i32 [..., T], w [..., T, 1]? -> [..., T2, D] */
        const Node *dest = in[1], *wt = nin > 2 ? in[2] : NULL;
        if (dest->dtype != DT_I32 || dest->rank != r - 1 || !same_lead(x, r - 1, dest))
            return refuse(w, 1, "token_merge: the destinations %s must be i32 with x's batch dims and tokens (x %s)",
                          ty(g, dest), ty(g, x));
        if (wt && (wt->dtype != DT_F32 || wt->rank != r || !same_lead(x, r - 1, wt) ||
                   !dim_eq(wt->shape[r - 1], dim_const(1))))
            return refuse(w, 2, "token_merge: the weights %s must be f32 [..., T, 1] with x's tokens (x %s)", ty(g, wt),
                          ty(g, x));
        if (t->rank != r || !dim_is_const(t->shape[r - 2]) || dim_value(t->shape[r - 2]) < 1 ||
            !dim_le(g, t->shape[r - 2], x->shape[r - 2]))
            return refuse(w, -1, "token_merge of %s: the result's token count must be given, static, at least 1 and at "
                          "most x's (not %s)", ty(g, x), shp(g, t->dtype, t->rank, t->shape));
        Dim T2 = t->shape[r - 2];
        t->dtype = DT_F32;
        set_shape(t, r, x->shape);
        t->shape[r - 2] = T2;
        return 1;
    }
    default: UNREACHABLE();
    }
}

int ir_infer(const Graph *g, Op op, const Attrs *at, int nin, Node *const *in, IrType *t, IrWhy *w)
{
    static const Attrs none;
    if (!at)
        at = &none;
    int lo = op_info[op].min_in, hi = op_info[op].max_in;
    if (nin < lo || (hi >= 0 && nin > hi)) {
        if (lo == hi)
            return refuse(w, -1, "%s takes %d input%s, not %d", op_info[op].name, lo, lo == 1 ? "" : "s", nin);
        if (hi < 0)
            return refuse(w, -1, "%s takes at least %d input%s, not %d", op_info[op].name, lo, lo == 1 ? "" : "s", nin);
        return refuse(w, -1, "%s takes %d to %d inputs, not %d", op_info[op].name, lo, hi, nin);
    }
    int flags = op_info[op].flags;
    char qmsg[512];
    if (!ir_quant_packed_ok(op, nin, in, op == OP_CAST ? t->dtype : DT_F32, qmsg, sizeof qmsg))
        return refuse(w, -1, "%s", qmsg);
    if (flags & F_SOURCE)
        return infer_source(g, op, t, w);
    if (flags & F_EW) {
        if (nin == 1)
            return infer_unary(g, op, at, in[0], t, w);
        if (op == OP_WHERE)
            return infer_where(g, in[0], in[1], in[2], t, w);
        return infer_binary(g, op, in[0], in[1], t, w);
    }
    if (flags & F_RED)
        return infer_reduce(g, op, at, in[0], t, w);
    if (flags & F_MOVE)
        return infer_move(g, op, at, nin, in, t, w);
    switch (op) {
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
    case OP_LAYERNORM:
    case OP_RMSNORM: return infer_norm(g, op, at, nin, in, t, w);
    case OP_MATMUL: return infer_matmul(g, in[0], in[1], t, w);
    case OP_CONV2D: return infer_conv(g, at, nin, in, t, w);
    case OP_ATTENTION: return infer_attention(g, at, nin, in, t, w);
    case OP_CLS_PROBS: return infer_cls_probs(g, in, t, w);
    case OP_SCATTER: return infer_scatter(g, at, in, t, w);
    case OP_TOME_MATCH:
    case OP_PITOME_MATCH:
    case OP_TOKEN_MERGE:
    case OP_CLS_ATTN:
    case OP_EVIT_SELECT: return infer_tokens(g, op, at, in, nin, t, w);
    case OP_QUANTIZE:
    case OP_DEQUANTIZE:
    case OP_QMATMUL: return ir_quant_infer(g, op, at, nin, in, t, qmsg, sizeof qmsg) ? 1 : refuse(w, -1, "%s", qmsg);
    default: return refuse(w, -1, "no shape rule for op %s (add one to ir/build.c)", op_info[op].name);
    }
}

/* ---------------------------------------------------------------- builders */

Node *ir_build(Graph *g, Op op, const Attrs *at, int nin, Node *const *in, const IrType *given, SrcLoc loc,
               IrWhy *why)
{
    IrType t = {.dtype = DT_F32, .rank = 0};
    if (given)
        t = *given;
    IrWhy local;
    IrWhy *w = why ? why : &local;
    for (int i = 0; i < nin; i++)
        KILN_ASSERT(in[i]);
    if (!ir_infer(g, op, at, nin, in, &t, w)) {
        if (!why)
            kiln_panic(__FILE__, __LINE__, "a pass built a %s that does not fit: %s", op_info[op].name, w->msg);
        return NULL;
    }
    Node *n = ir_node(g, op, t.dtype, t.rank, t.shape, nin, in, loc);
    if (at)
        n->at = *at;
    return n;
}

Node *ir_unary(Graph *g, Op op, Node *x, SrcLoc loc, IrWhy *why)
{
    KILN_ASSERT((op_info[op].flags & F_EW) && op_info[op].max_in == 1 && op != OP_CAST && op != OP_GELU);
    return ir_build(g, op, NULL, 1, &x, NULL, loc, why);
}

Node *ir_gelu(Graph *g, Node *x, int approx, SrcLoc loc, IrWhy *why)
{
    Attrs at = {0};
    at.approx = approx;
    return ir_build(g, OP_GELU, &at, 1, &x, NULL, loc, why);
}

Node *ir_cast(Graph *g, Node *x, DType dt, SrcLoc loc)
{
    IrType t = {.dtype = dt, .rank = 0};
    return ir_build(g, OP_CAST, NULL, 1, &x, &t, loc, NULL);
}

Node *ir_binary(Graph *g, Op op, Node *a, Node *b, SrcLoc loc, IrWhy *why)
{
    KILN_ASSERT((op_info[op].flags & F_EW) && op_info[op].max_in == 2 && op != OP_WHERE);
    Node *in[2] = {a, b};
    return ir_build(g, op, NULL, 2, in, NULL, loc, why);
}

Node *ir_where(Graph *g, Node *cond, Node *a, Node *b, SrcLoc loc, IrWhy *why)
{
    Node *in[3] = {cond, a, b};
    return ir_build(g, OP_WHERE, NULL, 3, in, NULL, loc, why);
}

Node *ir_reduce(Graph *g, Op op, Node *x, int axis, int keepdims, SrcLoc loc, IrWhy *why)
{
    KILN_ASSERT(op_info[op].flags & F_RED);
    Attrs at = {0};
    at.axis = axis;
    at.keepdims = keepdims;
    return ir_build(g, op, &at, 1, &x, NULL, loc, why);
}

Node *ir_softmax(Graph *g, Op op, Node *x, int axis, SrcLoc loc, IrWhy *why)
{
    KILN_ASSERT(op == OP_SOFTMAX || op == OP_LOG_SOFTMAX);
    Attrs at = {0};
    at.axis = axis;
    return ir_build(g, op, &at, 1, &x, NULL, loc, why);
}

Node *ir_norm(Graph *g, Op op, Node *x, Node *gamma, Node *beta, double eps, SrcLoc loc, IrWhy *why)
{
    KILN_ASSERT(op == OP_LAYERNORM || op == OP_RMSNORM);
    Attrs at = {0};
    at.eps = eps;
    Node *in[3] = {x, gamma, beta};
    return ir_build(g, op, &at, op == OP_LAYERNORM ? 3 : 2, in, NULL, loc, why);
}

Node *ir_matmul(Graph *g, Node *a, Node *b, SrcLoc loc, IrWhy *why)
{
    Node *in[2] = {a, b};
    return ir_build(g, OP_MATMUL, NULL, 2, in, NULL, loc, why);
}

Node *ir_conv2d(Graph *g, Node *x, Node *w, Node *bias, int stride, int pad, SrcLoc loc, IrWhy *why)
{
    Attrs at = {0};
    at.stride[0] = at.stride[1] = stride;
    at.pad[0] = at.pad[1] = pad;
    Node *in[3] = {x, w, bias};
    return ir_build(g, OP_CONV2D, &at, bias ? 3 : 2, in, NULL, loc, why);
}

Node *ir_reshape(Graph *g, Node *x, int rank, const Dim *shape, SrcLoc loc, IrWhy *why)
{
    IrType t = {.dtype = x->dtype, .rank = 0};
    KILN_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    set_shape(&t, rank, shape);
    return ir_build(g, OP_RESHAPE, NULL, 1, &x, &t, loc, why);
}

Node *ir_expand(Graph *g, Node *x, int rank, const Dim *shape, SrcLoc loc, IrWhy *why)
{
    IrType t = {.dtype = x->dtype, .rank = 0};
    KILN_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    set_shape(&t, rank, shape);
    return ir_build(g, OP_EXPAND, NULL, 1, &x, &t, loc, why);
}

Node *ir_transpose(Graph *g, Node *x, const int *perm, SrcLoc loc, IrWhy *why)
{
    Attrs at = {0};
    memcpy(at.perm, perm, sizeof(int) * (size_t)x->rank);
    return ir_build(g, OP_TRANSPOSE, &at, 1, &x, NULL, loc, why);
}

Node *ir_slice(Graph *g, Node *x, int axis, Dim start, Dim end, SrcLoc loc, IrWhy *why)
{
    Attrs at = {0};
    at.axis = axis;
    at.start = start;
    at.end = end;
    return ir_build(g, OP_SLICE, &at, 1, &x, NULL, loc, why);
}

Node *ir_concat(Graph *g, int n, Node *const *xs, int axis, SrcLoc loc, IrWhy *why)
{
    Attrs at = {0};
    at.axis = axis;
    return ir_build(g, OP_CONCAT, &at, n, xs, NULL, loc, why);
}

Node *ir_gather(Graph *g, Node *table, Node *idx, int axis, SrcLoc loc, IrWhy *why)
{
    Attrs at = {0};
    at.axis = axis;
    Node *in[2] = {table, idx};
    return ir_build(g, OP_GATHER, &at, 2, in, NULL, loc, why);
}

Node *ir_attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, double scale, int causal, SrcLoc loc,
                   IrWhy *why)
{
    Attrs at = {0};
    at.scale = scale;
    at.causal = causal;
    Node *in[4] = {q, k, v, mask};
    return ir_build(g, OP_ATTENTION, &at, mask ? 4 : 3, in, NULL, loc, why);
}

Node *ir_const(Graph *g, DType dt, int rank, const Dim *shape, const void *data, SrcLoc loc)
{
    IrType t = {.dtype = dt, .rank = 0};
    set_shape(&t, rank, shape);
    Attrs at = {0};
    at.data = data;
    return ir_build(g, OP_CONST, &at, 0, NULL, &t, loc, NULL);
}

Node *ir_scalar(Graph *g, DType dt, double v, SrcLoc loc)
{
    void *data = arena_alloc(g->arena, 8);
    dtype_store(dt, data, 0, v);
    return ir_const(g, dt, 0, NULL, data, loc);
}

Node *ir_source(Graph *g, Op op, DType dt, int rank, const Dim *shape, SrcLoc loc)
{
    KILN_ASSERT(op_info[op].flags & F_SOURCE);
    IrType t = {.dtype = dt, .rank = 0};
    set_shape(&t, rank, shape);
    return ir_build(g, op, NULL, 0, NULL, &t, loc, NULL);
}
