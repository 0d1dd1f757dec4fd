/* verify.c: the verifier, run after the frontend, after ir_parse and after every pass.
 *
 * Each problem is one diag_error at the node's SrcLoc, reading
 *     verifier: %5 = add: input shapes f32[T, 64] and f32[T, 65] do not broadcast to f32[T, 64]
 * with the node's position in the graph and its op. ir_verify returns the number of problems.
 *
 * What is checked, in order, for every node (a node failing one of the structural steps 1-4 gets no
 * further checks, so one bad pointer does not cause a cascade):
 *   1. structure: the node exists, its id is its position, op, dtype and rank are in range;
 *   2. dims: each is a constant or a*S+b with S a symbol of the graph, and is >= 0 for every value
 *      of the symbols (each symbol ranges over 1..bound, independently of the others);
 *   3. inputs: each exists, is in the graph, and comes earlier (topological order);
 *   4. input count: between op_info's min_in and max_in (ops.def);
 *   5. per op, dtypes, shapes and attributes:
 *      - input: has a name and is in g->inputs; weight: has a name, at.data and a static shape;
 *        const: at.data and a static shape; arange: rank 1, numeric; causal_mask: rank 2, float;
 *      - unary elementwise: same dtype and shape as the input (cast: any dtypes, same shape);
 *        exp, log, sqrt, rsqrt, tanh, erf, sigmoid, gelu, silu, sin, cos need a float dtype; neg,
 *        abs, relu a numeric one; gelu's approx is 0 or 1;
 *      - binary elementwise: both inputs of one dtype, the node's too (bool for comparisons); the
 *        NumPy broadcast of the input shapes equals the node's shape (shape_broadcast: dims must be
 *        equal or 1, so T against 1 broadcasts, T against S does not);
 *      - where: bool condition, both values and the node of one dtype, broadcast of all three;
 *      - sum, max, min: numeric dtype (not bool) equal to the input's; mean: float; axis in range;
 *        shape = the input's with the axis removed, or 1 with keepdims;
 *      - softmax, log_softmax: float, axis in range, same dtype and shape;
 *      - layernorm, rmsnorm: float x and node of one dtype and shape, rank >= 1; gamma and beta float
 *        of shape [last dim of x]; eps >= 0 and finite;
 *      - matmul: one float dtype for both inputs and the node; NumPy matmul shapes, rank-1 operands
 *        included (a vector is promoted then its dimension dropped), batch dims broadcast;
 *      - conv2d: x [C, H, W] or [N, C, H, W], w [O, C, KH, KW], bias [O]; one float dtype;
 *        stride >= 1, pad >= 0; out [N?, O, OH, OW] with OH = (H + 2*pad - KH) / stride + 1 (floor).
 *        With a symbolic H the spatial dims are checked only when the division is exact as a*S+b;
 *      - reshape: same dtype, same element count for every value of the symbols (shape_numel_eq);
 *      - transpose: perm is a permutation of 0..rank-1, out.shape[i] = in.shape[perm[i]];
 *      - expand: same dtype, the input broadcasts to exactly the node's shape;
 *      - slice: axis in range, other dims equal; 0 <= start <= end <= the input's dim for every
 *        value of the symbols (exactly decided: for one symbol the affine difference is checked at
 *        both ends of 1..bound; across two symbols the one's max against the other's min); the
 *        node's dim equals end - start;
 *      - concat: one dtype and rank, other dims equal, the axis dim equals the sum;
 *      - gather: integer indices, out = table[:axis] + indices + table[axis+1:], table's dtype;
 *      - attention: q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv], one float dtype; the batch dims
 *        of q, k and v broadcast; out = batch + [Tq, dv]; a mask (4th input) of that dtype
 *        broadcasts to batch + [Tq, Tk]; scale finite.
 * And for the graph: symbols have names and bounds >= 1; g->inputs are INPUT nodes of the graph and
 * every INPUT node is in g->inputs; input names and output names are unique; each output names a node
 * of the graph.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
    const Graph *g;
    Diag *d;
    int nerr;
    const Node *n; /* the node being checked */
    int pos;       /* its position */
} Verifier;

enum { TBUF = IR_MAX_RANK * 96 + 16 };

static void bad(Verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(Verifier *v, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Node *n = v->n;
    if (n && n->op >= 0 && n->op < OP_COUNT)
        diag_error(v->d, n->loc, "verifier: %%%d = %s: %s", v->pos, op_info[n->op].name, msg);
    else if (n)
        diag_error(v->d, n->loc, "verifier: %%%d: %s", v->pos, msg);
    else
        diag_error(v->d, (SrcLoc){0, 0, 0}, "verifier: %s", msg);
    v->nerr++;
}

/* The node's or an input's type, "f32[T, 768]", into one of a few rotating buffers so that one
 * message can show several. */
static const char *ty(Verifier *v, const Node *n)
{
    static _Thread_local char bufs[4][TBUF];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return node_type_str(v->g, n, b, TBUF);
}

static const char *shp(Verifier *v, DType dt, int rank, const Dim *shape)
{
    static _Thread_local char bufs[4][TBUF];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return type_str(v->g, dt, rank, shape, b, TBUF);
}

static const char *ds(Verifier *v, Dim d)
{
    static _Thread_local char bufs[4][96];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return dim_str(v->g, d, b, 96);
}

static const char *dtn(DType t)
{
    return dtype_traits[t].name;
}

/* ---- dims over the symbols' ranges */

static int dim_ok(const Graph *g, Dim d)
{
    return d.sym < 0 || d.a == 0 || (d.sym < g->nsym);
}

/* x <= y for every value of the symbols. */
static int dim_le(const Graph *g, Dim x, Dim y)
{
    Dim diff;
    if (dim_sub(y, x, &diff))
        return dim_min(g, diff) >= 0;
    return dim_max(g, x) <= dim_min(g, y);
}

static int shape_eq(int ra, const Dim *a, int rb, const Dim *b)
{
    if (ra != rb)
        return 0;
    for (int i = 0; i < ra; i++)
        if (!dim_eq(a[i], b[i]))
            return 0;
    return 1;
}

static int is_static(const Node *n)
{
    for (int i = 0; i < n->rank; i++)
        if (!dim_is_const(n->shape[i]))
            return 0;
    return 1;
}

static int node_in_graph(const Graph *g, const Node *n)
{
    if (!n)
        return -1;
    if (n->id >= 0 && n->id < g->nnode && g->nodes[n->id] == n)
        return n->id;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i] == n)
            return i;
    return -1;
}

/* ---- checks shared by several ops */

static void want_same_dtype(Verifier *v, const Node *in, const char *what)
{
    if (in->dtype != v->n->dtype)
        bad(v, "%s %%%d is %s but the node is %s", what, in->id, ty(v, in), ty(v, v->n));
}

static void want_same_shape(Verifier *v, const Node *in, const char *what)
{
    if (!shape_eq(in->rank, in->shape, v->n->rank, v->n->shape))
        bad(v, "%s %%%d is %s but the node is %s; the shapes must be equal", what, in->id, ty(v, in),
            ty(v, v->n));
}

static void want_float(Verifier *v, DType t, const char *what)
{
    if (!dtype_traits[t].is_float)
        bad(v, "%s must be a float type, not %s", what, dtn(t));
}

static int want_axis(Verifier *v, int rank)
{
    if (v->n->at.axis < 0 || v->n->at.axis >= rank) {
        bad(v, "axis %d is out of range for rank %d", v->n->at.axis, rank);
        return 0;
    }
    return 1;
}

static void want_shape(Verifier *v, int rank, const Dim *shape, const char *why)
{
    const Node *n = v->n;
    if (!shape_eq(rank, shape, n->rank, n->shape))
        bad(v, "%s gives %s but the node is %s", why, shp(v, n->dtype, rank, shape), ty(v, n));
}

/* ---- per op family */

static void check_source(Verifier *v)
{
    const Node *n = v->n;
    const Graph *g = v->g;
    switch (n->op) {
    case OP_INPUT: {
        if (!n->name)
            bad(v, "an input needs a name");
        int found = 0;
        for (int i = 0; i < g->ninput; i++)
            found |= g->inputs[i] == n;
        if (!found)
            bad(v, "input \"%s\" is not in the graph's input list", n->name ? n->name : "");
        break;
    }
    case OP_WEIGHT:
        if (!n->name)
            bad(v, "a weight needs a tensor name");
        if (!n->at.data)
            bad(v, "weight \"%s\" has no data (weights file not loaded?)", n->name ? n->name : "");
        if (!is_static(n))
            bad(v, "weight \"%s\" must have a static shape, not %s", n->name ? n->name : "", ty(v, n));
        break;
    case OP_CONST:
        if (!n->at.data)
            bad(v, "const has no data");
        if (!is_static(n))
            bad(v, "const must have a static shape, not %s", ty(v, n));
        break;
    case OP_ARANGE:
        if (n->rank != 1)
            bad(v, "arange is rank 1, not %s", ty(v, n));
        if (n->dtype == DT_BOOL)
            bad(v, "arange must be numeric, not bool");
        break;
    case OP_CAUSAL_MASK:
        if (n->rank != 2)
            bad(v, "causal_mask is rank 2 [T, S], not %s", ty(v, n));
        want_float(v, n->dtype, "causal_mask");
        break;
    default:
        UNREACHABLE();
    }
}

static void check_unary(Verifier *v)
{
    const Node *n = v->n, *x = n->in[0];
    want_same_shape(v, x, "input");
    if (n->op == OP_CAST)
        return;
    want_same_dtype(v, x, "input");
    switch (n->op) {
    case OP_NEG:
    case OP_ABS:
    case OP_RELU:
        if (n->dtype == DT_BOOL)
            bad(v, "needs a numeric type, not bool");
        break;
    case OP_GELU:
        if (n->at.approx != 0 && n->at.approx != 1)
            bad(v, "approx is 0 (erf) or 1 (tanh), not %d", n->at.approx);
        want_float(v, n->dtype, "the type");
        break;
    default:
        want_float(v, n->dtype, "the type");
    }
}

static void check_elementwise(Verifier *v)
{
    const Node *n = v->n;
    if (n->nin == 1) {
        check_unary(v);
        return;
    }
    int r;
    Dim out[IR_MAX_RANK];
    if (n->op == OP_WHERE) {
        const Node *c = n->in[0], *a = n->in[1], *b = n->in[2];
        if (c->dtype != DT_BOOL)
            bad(v, "the condition %%%d must be bool, not %s", c->id, ty(v, c));
        if (a->dtype != b->dtype || a->dtype != n->dtype)
            bad(v, "values %s and %s and the node %s must have one dtype", ty(v, a), ty(v, b), ty(v, n));
        int r1;
        Dim t[IR_MAX_RANK];
        if (!shape_broadcast(a->rank, a->shape, b->rank, b->shape, &r1, t) ||
            !shape_broadcast(c->rank, c->shape, r1, t, &r, out) || !shape_eq(r, out, n->rank, n->shape))
            bad(v, "input shapes %s, %s and %s do not broadcast to %s", ty(v, c), ty(v, a), ty(v, b),
                ty(v, n));
        return;
    }
    const Node *a = n->in[0], *b = n->in[1];
    if (a->dtype != b->dtype)
        bad(v, "inputs %s and %s have different dtypes", ty(v, a), ty(v, b));
    else if (op_info[n->op].flags & F_CMP) {
        if (n->dtype != DT_BOOL)
            bad(v, "a comparison gives bool, not %s", dtn(n->dtype));
    } else if (n->dtype != a->dtype) {
        bad(v, "inputs are %s but the node is %s", dtn(a->dtype), dtn(n->dtype));
    }
    if (!shape_broadcast(a->rank, a->shape, b->rank, b->shape, &r, out) ||
        !shape_eq(r, out, n->rank, n->shape))
        bad(v, "input shapes %s and %s do not broadcast to %s", ty(v, a), ty(v, b), ty(v, n));
}

static void check_reduction(Verifier *v)
{
    const Node *n = v->n, *x = n->in[0];
    want_same_dtype(v, x, "input");
    if (n->op == OP_MEAN)
        want_float(v, n->dtype, "mean's type");
    else if (n->dtype == DT_BOOL)
        bad(v, "needs a numeric type, not bool");
    if (!want_axis(v, x->rank))
        return;
    Dim s[IR_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (i != n->at.axis)
            s[r++] = x->shape[i];
        else if (n->at.keepdims)
            s[r++] = dim_const(1);
    char why[128];
    snprintf(why, sizeof why, "reducing %s over axis %d%s", ty(v, x), n->at.axis,
             n->at.keepdims ? " with keepdims" : "");
    want_shape(v, r, s, why);
}

static void check_norm(Verifier *v)
{
    const Node *n = v->n, *x = n->in[0];
    want_float(v, x->dtype, "the input");
    want_same_dtype(v, x, "input");
    want_same_shape(v, x, "input");
    if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX) {
        want_axis(v, x->rank);
        return;
    }
    if (!(n->at.eps >= 0) || isinf(n->at.eps))
        bad(v, "eps must be finite and >= 0, not %g", n->at.eps);
    if (x->rank < 1) {
        bad(v, "the input must have at least one dimension");
        return;
    }
    Dim last = x->shape[x->rank - 1];
    for (int i = 1; i < n->nin; i++) {
        const Node *p = n->in[i];
        const char *what = i == 1 ? "gamma" : "beta";
        want_float(v, p->dtype, what);
        if (p->rank != 1 || !dim_eq(p->shape[0], last))
            bad(v, "%s %%%d is %s but must be [%s], the input's last dimension", what, p->id, ty(v, p),
                ds(v, last));
    }
}

static void check_matmul(Verifier *v)
{
    const Node *n = v->n, *a = n->in[0], *b = n->in[1];
    if (a->dtype != b->dtype || a->dtype != n->dtype)
        bad(v, "inputs %s and %s and the node %s must have one dtype", ty(v, a), ty(v, b), ty(v, n));
    want_float(v, n->dtype, "matmul's type");
    if (a->rank < 1 || b->rank < 1) {
        bad(v, "inputs %s and %s must have at least one dimension", ty(v, a), ty(v, b));
        return;
    }
    /* NumPy: a vector a is [1, K] with the 1 dropped after; a vector b is [K, 1] likewise. */
    Dim A[IR_MAX_RANK + 1], B[IR_MAX_RANK + 1];
    int ra = a->rank, rb = b->rank;
    if (ra == 1) {
        A[0] = dim_const(1);
        A[1] = a->shape[0];
        ra = 2;
    } else {
        memcpy(A, a->shape, sizeof(Dim) * (size_t)ra);
    }
    if (rb == 1) {
        B[0] = b->shape[0];
        B[1] = dim_const(1);
        rb = 2;
    } else {
        memcpy(B, b->shape, sizeof(Dim) * (size_t)rb);
    }
    if (!dim_eq(A[ra - 1], B[rb - 2])) {
        bad(v, "inner dimensions differ: %s @ %s (%s against %s)", ty(v, a), ty(v, b), ds(v, A[ra - 1]),
            ds(v, B[rb - 2]));
        return;
    }
    Dim out[IR_MAX_RANK + 2];
    int r;
    if (!shape_broadcast(ra - 2, A, rb - 2, B, &r, out)) {
        bad(v, "batch dimensions of %s and %s do not broadcast", ty(v, a), ty(v, b));
        return;
    }
    if (a->rank > 1)
        out[r++] = A[ra - 2];
    if (b->rank > 1)
        out[r++] = B[rb - 1];
    if (r > IR_MAX_RANK) {
        bad(v, "the result would have more than %d dimensions", IR_MAX_RANK);
        return;
    }
    char why[2 * TBUF + 16];
    snprintf(why, sizeof why, "%s @ %s", ty(v, a), ty(v, b));
    want_shape(v, r, out, why);
}

static void check_attention(Verifier *v)
{
    const Node *n = v->n, *q = n->in[0], *k = n->in[1], *val = n->in[2];
    if (n->nin != 3 && n->nin != 4) {
        bad(v, "takes 3 or 4 inputs (q, k, v, mask?), not %d", n->nin);
        return;
    }
    for (int i = 0; i < n->nin; i++)
        if (n->in[i]->dtype != n->dtype) {
            bad(v, "input %d is %s but the node is %s: one dtype for all", i, ty(v, n->in[i]), ty(v, n));
            return;
        }
    want_float(v, n->dtype, "attention's type");
    if (q->rank < 2 || k->rank < 2 || val->rank < 2) {
        bad(v, "q, k and v need at least two dimensions: %s, %s, %s", ty(v, q), ty(v, k), ty(v, val));
        return;
    }
    Dim Tq = q->shape[q->rank - 2], d = q->shape[q->rank - 1], Tk = k->shape[k->rank - 2];
    if (!dim_eq(k->shape[k->rank - 1], d) || !dim_eq(val->shape[val->rank - 2], Tk)) {
        bad(v, "q %s, k %s and v %s do not fit: q and k share the head size, k and v the keys", ty(v, q), ty(v, k),
            ty(v, val));
        return;
    }
    Dim b1[IR_MAX_RANK], out[IR_MAX_RANK];
    int r1, r;
    if (!shape_broadcast(q->rank - 2, q->shape, k->rank - 2, k->shape, &r1, b1) ||
        !shape_broadcast(r1, b1, val->rank - 2, val->shape, &r, out)) {
        bad(v, "the batch dimensions of %s, %s and %s do not broadcast", ty(v, q), ty(v, k), ty(v, val));
        return;
    }
    if (n->nin == 4) {
        const Node *m = n->in[3];
        Dim full[IR_MAX_RANK + 2], bm[IR_MAX_RANK + 2];
        memcpy(full, out, sizeof(Dim) * (size_t)r);
        full[r] = Tq;
        full[r + 1] = Tk;
        int rm;
        if (!shape_broadcast(r + 2, full, m->rank, m->shape, &rm, bm) || rm != r + 2) {
            bad(v, "the mask %s does not broadcast to the scores %s", ty(v, m), shp(v, n->dtype, r + 2, full));
            return;
        }
        for (int i = 0; i < rm; i++)
            if (!dim_eq(bm[i], full[i])) {
                bad(v, "the mask %s is larger than the scores %s", ty(v, m), shp(v, n->dtype, r + 2, full));
                return;
            }
    }
    if (!isfinite(n->at.scale))
        bad(v, "scale must be finite");
    out[r++] = Tq;
    out[r++] = val->shape[val->rank - 1];
    want_shape(v, r, out, "attention of q, k and v");
}

/* One spatial output dim of conv2d: (h + 2*pad - k) / stride + 1; 0 when it cannot be decided. */
static int conv_out(Verifier *v, Dim h, Dim k, int pad, int stride, Dim *out)
{
    Dim t;
    if (!dim_add(h, dim_const(2 * (int64_t)pad), &t) || !dim_sub(t, k, &t))
        return 0;
    if (dim_is_const(t)) {
        if (t.b < 0)
            return 0;
        *out = dim_const(t.b / stride + 1);
        return 1;
    }
    if (!dim_div(t, dim_const(stride), &t))
        return 0;
    return dim_add(t, dim_const(1), out);
}

static void check_conv(Verifier *v)
{
    const Node *n = v->n, *x = n->in[0], *w = n->in[1], *bias = n->nin > 2 ? n->in[2] : NULL;
    want_float(v, x->dtype, "the input");
    if (w->dtype != x->dtype || n->dtype != x->dtype || (bias && bias->dtype != x->dtype))
        bad(v, "input %s, filter %s%s%s and node %s must have one dtype", ty(v, x), ty(v, w),
            bias ? ", bias " : "", bias ? ty(v, bias) : "", ty(v, n));
    for (int i = 0; i < 2; i++) {
        if (n->at.stride[i] < 1)
            bad(v, "stride must be >= 1, not %d", n->at.stride[i]);
        if (n->at.pad[i] < 0)
            bad(v, "pad must be >= 0, not %d", n->at.pad[i]);
    }
    if (x->rank != 3 && x->rank != 4) {
        bad(v, "the input must be [C, H, W] or [N, C, H, W], not %s", ty(v, x));
        return;
    }
    if (w->rank != 4) {
        bad(v, "the filter must be [O, C, KH, KW], not %s", ty(v, w));
        return;
    }
    int c = x->rank - 3;
    if (!dim_eq(w->shape[1], x->shape[c]))
        bad(v, "the filter %s does not match the input's %s channels of %s", ty(v, w), ds(v, x->shape[c]),
            ty(v, x));
    if (bias && (bias->rank != 1 || !dim_eq(bias->shape[0], w->shape[0])))
        bad(v, "the bias %s must be [%s]", ty(v, bias), ds(v, w->shape[0]));
    if (n->rank != x->rank) {
        bad(v, "the node %s must have the input's rank %d", ty(v, n), x->rank);
        return;
    }
    if (c && !dim_eq(n->shape[0], x->shape[0]))
        bad(v, "batch %s of the node %s differs from the input's %s", ds(v, n->shape[0]), ty(v, n),
            ds(v, x->shape[0]));
    if (!dim_eq(n->shape[c], w->shape[0]))
        bad(v, "the node %s must have %s channels, as the filter %s", ty(v, n), ds(v, w->shape[0]),
            ty(v, w));
    if (!(n->at.stride[0] >= 1 && n->at.stride[1] >= 1 && n->at.pad[0] >= 0 && n->at.pad[1] >= 0))
        return;
    for (int i = 0; i < 2; i++) {
        Dim h = x->shape[c + 1 + i], k = w->shape[2 + i], o;
        if (dim_is_const(h) && dim_is_const(k) && h.b + 2 * (int64_t)n->at.pad[i] < k.b) {
            bad(v, "the filter %s is larger than the padded input %s", ty(v, w), ty(v, x));
            return;
        }
        if (conv_out(v, h, k, n->at.pad[i], n->at.stride[i], &o) && !dim_eq(o, n->shape[c + 1 + i]))
            bad(v, "%s %s with filter %s, stride %d and pad %d gives %s, not %s", i ? "width" : "height",
                ds(v, h), ds(v, k), n->at.stride[i], n->at.pad[i], ds(v, o), ds(v, n->shape[c + 1 + i]));
    }
}

static void check_move(Verifier *v)
{
    const Graph *g = v->g;
    const Node *n = v->n, *x = n->in[0];
    switch (n->op) {
    case OP_RESHAPE:
        want_same_dtype(v, x, "input");
        if (!shape_numel_eq(g, x->rank, x->shape, n->rank, n->shape))
            bad(v, "cannot reshape %s to %s: element counts differ", ty(v, x), ty(v, n));
        return;
    case OP_EXPAND: {
        want_same_dtype(v, x, "input");
        int r;
        Dim out[IR_MAX_RANK];
        if (x->rank > n->rank || !shape_broadcast(x->rank, x->shape, n->rank, n->shape, &r, out) ||
            !shape_eq(r, out, n->rank, n->shape))
            bad(v, "cannot expand %s to %s", ty(v, x), ty(v, n));
        return;
    }
    case OP_TRANSPOSE: {
        want_same_dtype(v, x, "input");
        if (x->rank != n->rank) {
            bad(v, "the input %s and the node %s differ in rank", ty(v, x), ty(v, n));
            return;
        }
        int seen[IR_MAX_RANK] = {0};
        char perm[IR_MAX_RANK * 12 + 4];
        size_t k = (size_t)snprintf(perm, sizeof perm, "[");
        for (int i = 0; i < n->rank; i++)
            k += (size_t)snprintf(perm + k, sizeof perm - k, "%s%d", i ? ", " : "", n->at.perm[i]);
        snprintf(perm + k, sizeof perm - k, "]");
        for (int i = 0; i < n->rank; i++) {
            int p = n->at.perm[i];
            if (p < 0 || p >= n->rank || seen[p]++) {
                bad(v, "perm %s is not a permutation of 0..%d", perm, n->rank - 1);
                return;
            }
        }
        Dim out[IR_MAX_RANK];
        for (int i = 0; i < n->rank; i++)
            out[i] = x->shape[n->at.perm[i]];
        char why[TBUF + 64];
        snprintf(why, sizeof why, "transposing %s by %s", ty(v, x), perm);
        want_shape(v, n->rank, out, why);
        return;
    }
    case OP_SLICE: {
        want_same_dtype(v, x, "input");
        if (!want_axis(v, x->rank))
            return;
        if (x->rank != n->rank) {
            bad(v, "the input %s and the node %s differ in rank", ty(v, x), ty(v, n));
            return;
        }
        int ax = n->at.axis;
        Dim s = n->at.start, e = n->at.end, len = x->shape[ax];
        if (!dim_ok(g, s) || !dim_ok(g, e)) {
            bad(v, "start or end names a symbol the graph does not have");
            return;
        }
        if (!dim_le(g, dim_const(0), s) || !dim_le(g, s, e) || !dim_le(g, e, len)) {
            bad(v, "slice [%s:%s] along axis %d is out of range for %s (0 <= start <= end <= %s must hold "
                "for every value of the symbols)", ds(v, s), ds(v, e), ax, ty(v, x), ds(v, len));
            return;
        }
        Dim out[IR_MAX_RANK], d;
        memcpy(out, x->shape, sizeof(Dim) * (size_t)x->rank);
        if (!dim_sub(e, s, &d)) {
            bad(v, "the length %s - %s is not of the form a*S+b", ds(v, e), ds(v, s));
            return;
        }
        out[ax] = d;
        char why[TBUF + 128];
        snprintf(why, sizeof why, "slicing %s along axis %d by [%s:%s]", ty(v, x), ax, ds(v, s), ds(v, e));
        want_shape(v, n->rank, out, why);
        return;
    }
    case OP_CONCAT: {
        int ax = n->at.axis;
        if (!want_axis(v, n->rank))
            return;
        Dim out[IR_MAX_RANK];
        memcpy(out, n->shape, sizeof(Dim) * (size_t)n->rank);
        Dim sum = dim_const(0);
        int sum_ok = 1;
        for (int i = 0; i < n->nin; i++) {
            const Node *p = n->in[i];
            want_same_dtype(v, p, "input");
            int same = p->rank == n->rank;
            for (int j = 0; same && j < n->rank; j++)
                same = j == ax || dim_eq(p->shape[j], n->shape[j]);
            if (!same) {
                bad(v, "input %%%d is %s; all but axis %d must match the node %s", p->id, ty(v, p), ax,
                    ty(v, n));
                return;
            }
            sum_ok = sum_ok && dim_add(sum, p->shape[ax], &sum);
        }
        if (!sum_ok)
            bad(v, "the sizes along axis %d mix symbols; their sum is not of the form a*S+b", ax);
        else if (!dim_eq(sum, n->shape[ax]))
            bad(v, "the inputs add up to %s along axis %d but the node %s has %s", ds(v, sum), ax, ty(v, n),
                ds(v, n->shape[ax]));
        return;
    }
    case OP_GATHER: {
        const Node *idx = n->in[1];
        want_same_dtype(v, x, "table");
        if (!dtype_traits[idx->dtype].is_int)
            bad(v, "indices %%%d must be an integer type, not %s", idx->id, ty(v, idx));
        if (!want_axis(v, x->rank))
            return;
        int ax = n->at.axis, r = 0;
        if (x->rank - 1 + idx->rank > IR_MAX_RANK) {
            bad(v, "the result would have more than %d dimensions", IR_MAX_RANK);
            return;
        }
        Dim out[IR_MAX_RANK];
        for (int i = 0; i < ax; i++)
            out[r++] = x->shape[i];
        for (int i = 0; i < idx->rank; i++)
            out[r++] = idx->shape[i];
        for (int i = ax + 1; i < x->rank; i++)
            out[r++] = x->shape[i];
        char why[2 * TBUF + 64];
        snprintf(why, sizeof why, "gathering %s along axis %d by %s", ty(v, x), ax, ty(v, idx));
        want_shape(v, r, out, why);
        return;
    }
    default:
        UNREACHABLE();
    }
}

/* ---- the structural steps */

static int check_structure(Verifier *v, const Node *n, int pos)
{
    const Graph *g = v->g;
    if (n->id != pos)
        bad(v, "its id is %d but it is at position %d (call ir_compact after editing g->nodes)", n->id, pos);
    if (n->op < 0 || n->op >= OP_COUNT) {
        bad(v, "op %d is not an op", (int)n->op);
        return 0;
    }
    if (n->dtype < 0 || n->dtype >= DT_COUNT || n->rank < 0 || n->rank > IR_MAX_RANK) {
        bad(v, "bad dtype %d or rank %d", (int)n->dtype, n->rank);
        return 0;
    }
    for (int i = 0; i < n->rank; i++) {
        if (!dim_ok(g, n->shape[i])) {
            bad(v, "dimension %d names symbol %d; the graph has %d", i, n->shape[i].sym, g->nsym);
            return 0;
        }
    }
    for (int i = 0; i < n->rank; i++)
        if (dim_min(g, n->shape[i]) < 0) {
            bad(v, "dimension %d of %s can be negative", i, ty(v, n));
            return 0;
        }
    if (n->nin < 0 || (n->nin > 0 && !n->in)) {
        bad(v, "bad input list (%d inputs)", n->nin);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < n->nin; i++) {
        const Node *in = n->in[i];
        int p = node_in_graph(g, in);
        if (!in) {
            bad(v, "input %d is NULL", i);
            ok = 0;
        } else if (p < 0) {
            bad(v, "input %d is not a node of the graph", i);
            ok = 0;
        } else if (p >= pos) {
            bad(v, "input %d is %%%d, which does not come before it (topological order)", i, p);
            ok = 0;
        } else if (in->id != p) {
            ok = 0; /* reported at the input itself */
        }
    }
    if (!ok)
        return 0;
    const OpInfo *oi = &op_info[n->op];
    if (n->nin < oi->min_in || (oi->max_in >= 0 && n->nin > oi->max_in)) {
        if (oi->min_in == oi->max_in)
            bad(v, "takes %d input%s, not %d", oi->min_in, oi->min_in == 1 ? "" : "s", n->nin);
        else if (oi->max_in < 0)
            bad(v, "takes at least %d input%s, not %d", oi->min_in, oi->min_in == 1 ? "" : "s", n->nin);
        else
            bad(v, "takes %d to %d inputs, not %d", oi->min_in, oi->max_in, n->nin);
        return 0;
    }
    return 1;
}

static void check_node(Verifier *v)
{
    const Node *n = v->n;
    int flags = op_info[n->op].flags;
    if (flags & F_SOURCE)
        check_source(v);
    else if (flags & F_EW)
        check_elementwise(v);
    else if (flags & F_RED)
        check_reduction(v);
    else if (flags & F_MOVE)
        check_move(v);
    else if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX || n->op == OP_LAYERNORM || n->op == OP_RMSNORM)
        check_norm(v);
    else if (n->op == OP_MATMUL)
        check_matmul(v);
    else if (n->op == OP_CONV2D)
        check_conv(v);
    else if (n->op == OP_ATTENTION)
        check_attention(v);
    else
        bad(v, "the verifier has no rule for this op"); /* a new op in ops.def: add its rule here */
}

static void check_graph(Verifier *v)
{
    const Graph *g = v->g;
    v->n = NULL;
    for (int i = 0; i < g->nsym; i++)
        if (!g->syms[i].name || g->syms[i].bound < 1)
            bad(v, "symbol %d (%s) needs a name and a bound >= 1", i,
                g->syms[i].name ? g->syms[i].name : "unnamed");
    for (int i = 0; i < g->ninput; i++) {
        const Node *n = g->inputs[i];
        if (!n || n->op != OP_INPUT || node_in_graph(g, n) < 0) {
            bad(v, "graph input %d is not an input node of the graph", i);
            continue;
        }
        for (int j = 0; j < i; j++)
            if (g->inputs[j] && g->inputs[j]->name && n->name && !strcmp(g->inputs[j]->name, n->name))
                bad(v, "two inputs are named \"%s\"", n->name);
    }
    for (int i = 0; i < g->noutput; i++) {
        const Output *o = &g->outputs[i];
        if (!o->name)
            bad(v, "output %d has no name", i);
        if (node_in_graph(g, o->node) < 0)
            bad(v, "output %s is not a node of the graph", o->name ? o->name : "");
        for (int j = 0; j < i; j++)
            if (o->name && g->outputs[j].name && !strcmp(o->name, g->outputs[j].name))
                bad(v, "two outputs are named \"%s\"", o->name);
    }
}

/* Node.inl: the node has one consumer (which may read it more than once), an elementwise node of
 * its shape, and is no output; an inline matmul computes in f32, and the elementwise node that stores
 * (the first consumer up the chain that is not inline) has one inline matmul under it at most and
 * stores f32. Runs once the nodes themselves are known to be sound. */
static void check_inline(Verifier *v)
{
    const Graph *g = v->g;
    int n = g->nnode;
    const Node **user = calloc((size_t)n + 1, sizeof *user);
    int *nuser = calloc((size_t)n + 1, sizeof *nuser), *mms = calloc((size_t)n + 1, sizeof *mms);
    KILN_ASSERT(user && nuser && mms);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) {
            int k = g->nodes[i]->in[j]->id;
            if (user[k] != g->nodes[i])
                nuser[k]++;
            user[k] = g->nodes[i];
        }
    for (int i = 0; i < g->noutput; i++)
        nuser[g->outputs[i].node->id] += 2;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if (!x->inl)
            continue;
        v->n = x;
        v->pos = i;
        const Node *u = user[i];
        if (!(op_info[x->op].flags & F_EW) && x->op != OP_MATMUL) {
            bad(v, "only elementwise nodes and matmuls can be inline");
            continue;
        }
        if (nuser[i] != 1 || !(op_info[u->op].flags & F_EW)) {
            bad(v, "an inline node needs exactly one consumer, an elementwise node, and cannot be an output");
            continue;
        }
        if (!shape_eq(x->rank, x->shape, u->rank, u->shape)) {
            bad(v, "an inline node needs the shape of its consumer %s", shp(v, u->dtype, u->rank, u->shape));
            continue;
        }
        if (x->op == OP_MATMUL) {
            if (x->dtype != DT_F32 || x->in[0]->dtype != DT_F32 || x->in[1]->dtype != DT_F32) {
                bad(v, "an inline matmul computes in f32");
                continue;
            }
            while (u->inl && user[u->id])
                u = user[u->id];
            if (u->dtype != DT_F32)
                bad(v, "an inline matmul's epilogue must store f32, not %s", dtn(u->dtype));
            if (mms[u->id]++)
                bad(v, "the epilogue of node %%%d holds more than one inline matmul", u->id);
        }
    }
    free(user);
    free(nuser);
    free(mms);
}

int ir_verify(const Graph *g, Diag *d)
{
    Verifier v = {g, d, 0, NULL, 0};
    check_graph(&v);
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        v.n = n;
        v.pos = i;
        if (!n) {
            v.n = NULL;
            bad(&v, "node %d is NULL", i);
            continue;
        }
        if (check_structure(&v, n, i))
            check_node(&v);
    }
    if (!v.nerr)
        check_inline(&v);
    return v.nerr;
}
