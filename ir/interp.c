/* interp.c: the interpreter, the oracle every other part of kiln is tested against.
 *
 * How: every value is a C-order array of doubles; every op is a plain loop that accumulates in
 * double; after a node is computed each of its elements is rounded with dtype_round() to the
 * node's dtype, so an f16 graph gives what a real f16 execution would (modulo the order of sums
 * inside one op, which the oracle does in double and a kernel does in its own way).
 *
 * Memory: the symbols are bound from the inputs' shapes, every node gets its concrete shape, and
 * each intermediate is freed right after its last reader has run. WEIGHT and CONST nodes are not
 * kept at all: their bytes are already in memory (at.data), so they are converted to doubles when
 * a reader needs them and dropped right after it; a GPT-2 therefore never holds all its weights
 * twice, once as float and once as double.
 *
 * What it expects: a graph in topological order whose node ids are their indices (ir_compact).
 * What it guarantees: bad inputs (dtype, rank, a size that is not static or exceeds its bound) and
 * bad data (a gather index out of range) are reported through the Diag and make ir_interp return
 * non-zero; so are shapes that do not fit an op (the verifier should have caught them first): the
 * interpreter never reads out of bounds because a graph is wrong.
 *
 * Semantic choices, where PyTorch, NumPy and C differ (each follows the op's PyTorch meaning
 * unless said otherwise):
 *   - integer DIV (the node's dtype is an integer type) truncates toward zero, as C does (PyTorch's
 *     trunc rounding mode, not NumPy's floor); an integer division by zero gives 0 instead of a
 *     trap; other integer ops are computed in double and wrap to the dtype (dtype_round), so i64
 *     and u64 values are exact only up to 2^53 (a u64 is read as the nearest double; a result
 *     below 0 wraps, 0 - 1 being 2^64 - 1, whose nearest double is 2^64). Division of two
 *     non-negative integers below 2^64 is exact (the quotient then held as its nearest double).
 *   - MAXIMUM, MINIMUM, RMAX, RMIN propagate NaN (as torch.maximum and torch.amax do).
 *   - SOFTMAX and LOG_SOFTMAX subtract the row's maximum first; a row that is all -inf gives NaN,
 *     as in PyTorch (the fused attention kernels must do the same to match the oracle).
 *   - RMAX/RMIN of an empty axis give -inf/+inf; MEAN of one gives NaN (0/0).
 *   - CAST converts through dtype_round: to integers truncates toward zero and wraps, to bool is
 *     x != 0, NaN to integers is 0; u64 to a narrower or signed integer keeps the low bits (2^63
 *     to i64 is -2^63); a float to u64 wraps modulo 2^64 in (-2^64, 2^64) and saturates outside
 *     (graph.c's to_u64).
 *   - GATHER indices must be integers in [0, n): negative indices are not wrapped.
 *   - LAYERNORM uses the biased variance (PyTorch), two passes over the row.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Interp {
    const Graph *g;
    const HostTensor *inputs;
    Diag *d;
    int64_t vals[IR_MAX_SYMS];
    int64_t (*shape)[IR_MAX_RANK]; /* (nnode, rank) concrete sizes */
    int64_t *numel;                /* (nnode) */
    double **val;                  /* (nnode) NULL when not (or no longer) held */
    int *last;                     /* (nnode) index of the last reader; nnode for outputs, -1: none */
    int *input_ix;                 /* (nnode) position in the inputs given for INPUT nodes */
    IrState *st;                   /* the states' values (ir_interp_entry), or NULL */
    int *cls;                      /* (nnode) for an attention, the cls_probs node it computes too, or -1 */
} Interp;

struct IrState {
    const Graph *g;
    void **data; /* (g->nstate) each state's bytes */
    size_t *bytes;
};

/* Reports a problem with node n at its source location; returns -1 for `return bad(...)`. */
__attribute__((format(printf, 3, 4))) static int bad(Interp *I, const Node *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(I->d, n->loc, "%s (node %%%d)", msg, n->id);
    return -1;
}

/* "[2, 3, 4]" */
static const char *shape_str(int rank, const int64_t *s, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

static int64_t prod(const int64_t *s, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= s[i];
    return p;
}

static int is_lazy(const Node *n)
{
    return n->op == OP_WEIGHT || n->op == OP_CONST;
}

/* ---------------------------------------------------------------- binding the symbols */

static int sym_used(const Graph *g, int s, const unsigned char *need)
{
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (need && !need[i])
            continue;
        for (int k = 0; k < n->rank; k++)
            if (dim_coef(n->shape[k], s))
                return 1;
        if ((op_info[n->op].attrs & A_RANGE) && (dim_coef(n->at.start, s) || dim_coef(n->at.end, s)))
            return 1;
    }
    return 0;
}

/* "i32[T] with T <= 256" */
static void expected_str(const Graph *g, const Node *n, char *buf, size_t len)
{
    node_type_str(g, n, buf, len);
    int seen = 0;
    for (int i = 0; i < n->rank; i++)
        for (int t = 0; t < dim_nterms(n->shape[i]); t++) {
            int s = dim_term(n->shape[i], t, NULL);
            if (s >= g->nsym || (seen & (1 << s)))
                continue;
            size_t k = strlen(buf);
            snprintf(buf + k, len - k, "%s%s <= %lld", seen ? ", " : " with ", g->syms[s].name,
                     (long long)g->syms[s].bound);
            seen |= 1 << s;
        }
}

/* The dims of input n that use several symbols (P+T) against tensor t, once the inputs' other dims
 * have bound the symbols (a symbol no dim binds alone is reported by the caller). The number of errors. */
static int check_sums(const Graph *g, const Node *n, const HostTensor *t, const int *bound, const int64_t *vals,
                      Diag *d)
{
    for (int i = 0; i < n->rank; i++) {
        Dim dm = n->shape[i];
        int known = dim_nterms(dm) > 1;
        for (int j = 0; j < dim_nterms(dm); j++)
            known &= bound[dim_term(dm, j, NULL)] != 0;
        if (!known || dim_eval(dm, vals) == t->shape[i])
            continue;
        char want[512], ds[IR_DIM_STR], with[256] = "";
        expected_str(g, n, want, sizeof want);
        for (int j = 0, k = 0; j < dim_nterms(dm) && k < (int)sizeof with; j++) {
            int s = dim_term(dm, j, NULL);
            k += snprintf(with + k, sizeof with - (size_t)k, "%s%s = %lld", j ? ", " : "", g->syms[s].name,
                          (long long)vals[s]);
        }
        diag_fatal(d, "input '%s': expected %s, but dimension %d is %lld where %s = %lld (%s)",
                   n->name ? n->name : "?", want, i, (long long)t->shape[i], dim_str(g, dm, ds, sizeof ds),
                   (long long)dim_eval(dm, vals), with);
        return 1;
    }
    return 0;
}

/* Binds from the inputs of entry e (e < 0: every input of g, in order), inputs[k] being the k-th of
 * them; need (NULL: every node) says which nodes must have their symbols bound. */
static int bind_entry(const Graph *g, int e, const unsigned char *need, const HostTensor *inputs,
                      int64_t *vals, Diag *d)
{
    int bound[IR_MAX_SYMS] = {0};     /* 1 + the input that fixed the symbol, 0: not yet */
    int nerr = 0;
    for (int s = 0; s < IR_MAX_SYMS; s++)
        vals[s] = 0;
    int nin = 0, ix[256];
    for (int k = 0; k < g->ninput; k++)
        if (e < 0 || g->inputs[k]->entry == e) {
            KILN_ASSERT(nin < 256);
            ix[nin++] = k;
        }
    if (nin && !inputs) {
        diag_fatal(d, "the model has %d inputs but none were given", nin);
        return -1;
    }
    for (int k = 0; k < nin; k++) {
        const Node *n = g->inputs[ix[k]];
        const HostTensor *t = &inputs[k];
        const char *name = n->name ? n->name : "?";
        char want[512], got[512], why[256] = "";
        expected_str(g, n, want, sizeof want);
        if (t->rank < 0 || t->rank > IR_MAX_RANK || (int)t->dtype < 0 || t->dtype >= DT_COUNT) {
            diag_fatal(d, "input '%s': expected %s, got a tensor of unknown dtype or rank", name, want);
            nerr++;
            continue;
        }
        Dim got_dims[IR_MAX_RANK];
        for (int i = 0; i < t->rank; i++)
            got_dims[i] = dim_const(t->shape[i]);
        type_str(g, t->dtype, t->rank, got_dims, got, sizeof got);

        int ok = t->dtype == n->dtype && t->rank == n->rank;
        for (int i = 0; ok && i < n->rank; i++) {
            Dim dm = n->shape[i];
            int64_t act = t->shape[i];
            int sym;
            int64_t coef, off;
            if (act < 0) {
                ok = 0;
            } else if (dim_is_const(dm)) {
                ok = act == dim_value(dm);
            } else if (!dim_in_graph(g, dm)) {
                ok = 0;
            } else if (dim_sym1(dm, &sym, &coef, &off)) {
                if (sym >= g->nsym) {
                    ok = 0;
                    break;
                }
                const Sym *sy = &g->syms[sym];
                int64_t num = act - off;
                if (num % coef != 0) {
                    char ds[IR_DIM_STR];
                    snprintf(why, sizeof why, " (no whole %s makes %s = %lld)", sy->name,
                             dim_str(g, dm, ds, sizeof ds), (long long)act);
                    ok = 0;
                    break;
                }
                int64_t v = num / coef;
                if (v < 1 || v > sy->bound) {
                    if (v == 0) /* an ONNX cache's first call: the importer's --bound NAME=0 builds it */
                        snprintf(why, sizeof why, " (%s would be 0: a symbolic size is never 0; an ONNX model "
                                 "imported with --bound %s=0 leaves out the inputs it empties)", sy->name, sy->name);
                    else
                        snprintf(why, sizeof why, " (%s would be %lld)", sy->name, (long long)v);
                    ok = 0;
                } else if (bound[sym] && vals[sym] != v) {
                    snprintf(why, sizeof why, " (%s = %lld from input '%s')", sy->name,
                             (long long)vals[sym], g->inputs[ix[bound[sym] - 1]]->name);
                    ok = 0;
                } else {
                    vals[sym] = v;
                    bound[sym] = k + 1;
                }
            } /* else a dim of several symbols (P+T): checked below, once every input has been read */
        }
        if (!ok) {
            diag_fatal(d, "input '%s': expected %s, got %s%s", name, want, got, why);
            nerr++;
            continue;
        }
        int64_t numel = 1;
        for (int i = 0; i < t->rank; i++)
            numel *= t->shape[i];
        if (numel > 0 && !t->data) {
            diag_fatal(d, "input '%s': %s has no data", name, got);
            nerr++;
        }
    }
    if (nerr)
        return -1;
    for (int k = 0; k < nin; k++)
        nerr += check_sums(g, g->inputs[ix[k]], &inputs[k], bound, vals, d);
    for (int s = 0; s < g->nsym; s++)
        if (!bound[s] && sym_used(g, s, need)) {
            diag_fatal(d, "symbol '%s' is not determined by the shape of any input", g->syms[s].name);
            nerr++;
        }
    return nerr ? -1 : 0;
}

int ir_bind_inputs(const Graph *g, const HostTensor *inputs, int64_t *vals, Diag *d)
{
    return bind_entry(g, -1, NULL, inputs, vals, d);
}

/* ---------------------------------------------------------------- elementwise */

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static double ew1(Op op, const Attrs *at, double x)
{
    switch (op) {
    case OP_NEG: return -x;
    case OP_ABS: return fabs(x);
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_SQRT: return sqrt(x);
    case OP_RSQRT: return 1.0 / sqrt(x);
    case OP_TANH: return tanh(x);
    case OP_ERF: return erf(x);
    case OP_SIGMOID: return sigmoid(x);
    case OP_RELU: return x < 0 ? 0.0 : x; /* NaN stays NaN, as in PyTorch */
    case OP_GELU:
        if (at && at->approx)
            return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1.0 + erf(x / M_SQRT2));
    case OP_SILU: return x * sigmoid(x);
    case OP_SIN: return sin(x);
    case OP_COS: return cos(x);
    case OP_CAST: return x; /* the conversion is the rounding to the node's dtype */
    default: UNREACHABLE();
    }
}

/* C's integer division: truncation toward zero; by zero gives 0 (documented above). */
static double int_div(double a, double b)
{
    if (b == 0 || isnan(a) || isnan(b))
        return 0;
    if (a >= 0 && b > 0 && a < 18446744073709551616.0 && b < 18446744073709551616.0)
        return (double)((uint64_t)a / (uint64_t)b); /* exact for u64 values past 2^63 too */
    if (fabs(a) < 9.2e18 && fabs(b) < 9.2e18) {
        int64_t ia = (int64_t)a, ib = (int64_t)b;
        if (ib == -1)
            return -(double)ia; /* INT64_MIN / -1 would trap */
        return (double)(ia / ib);
    }
    return trunc(a / b);
}

static double ew2(Op op, int intdiv, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return intdiv ? int_div(a, b) : a / b;
    case OP_POW: return pow(a, b);
    case OP_MAXIMUM: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case OP_MINIMUM: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    default: UNREACHABLE();
    }
}

double ir_eval_scalar(Op op, const Attrs *at, DType dt, int nin, const double *x)
{
    KILN_ASSERT(op_info[op].flags & F_EW);
    if (nin == 1)
        return ew1(op, at, x[0]);
    if (nin == 2)
        return ew2(op, dtype_traits[dt].is_int, x[0], x[1]);
    KILN_ASSERT(op == OP_WHERE && nin == 3);
    return x[0] != 0 ? x[1] : x[2];
}

/* Strides (in elements) with which an input of shape in[ri] is read for each dimension of an
 * output of shape out[r], NumPy-aligned to the right; 0 where the input is broadcast.
 * Returns 0 when in does not broadcast to out. */
static int bcast_strides(int r, const int64_t *out, int ri, const int64_t *in, int64_t *st)
{
    if (ri > r)
        return 0;
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        int j = i - (r - ri);
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        if (in[j] == out[i])
            st[i] = in[j] == 1 ? 0 : s;
        else if (in[j] == 1)
            st[i] = 0;
        else
            return 0;
        s *= in[j];
    }
    return 1;
}

/* Advances the output index idx[r] by one element in C order and the input offsets with it. */
static void step(int r, const int64_t *dims, int64_t *idx, int nin, int64_t (*st)[IR_MAX_RANK],
                 int64_t *off)
{
    for (int k = r - 1; k >= 0; k--) {
        for (int j = 0; j < nin; j++)
            off[j] += st[j][k];
        if (++idx[k] < dims[k])
            return;
        for (int j = 0; j < nin; j++)
            off[j] -= st[j][k] * dims[k];
        idx[k] = 0;
    }
}

/* y[e] = x[offset of e], reading x through strides st (transpose, expand). */
static void copy_strided(double *y, int r, const int64_t *dims, int64_t n, const double *x,
                         const int64_t *st)
{
    int64_t idx[IR_MAX_RANK] = {0}, off = 0, sts[1][IR_MAX_RANK];
    memcpy(sts[0], st, sizeof(int64_t) * (size_t)r);
    for (int64_t e = 0; e < n; e++) {
        y[e] = x[off];
        step(r, dims, idx, 1, sts, &off);
    }
}

static int eval_ew(Interp *I, const Node *n, double *y)
{
    int r = n->rank, nin = n->nin;
    const int64_t *dims = I->shape[n->id];
    int64_t st[3][IR_MAX_RANK], off[3] = {0, 0, 0}, idx[IR_MAX_RANK] = {0};
    const double *x[3];
    if (nin > 3)
        return bad(I, n, "%s: %d inputs", op_info[n->op].name, nin);
    for (int j = 0; j < nin; j++) {
        const Node *in = n->in[j];
        x[j] = I->val[in->id];
        if (!bcast_strides(r, dims, in->rank, I->shape[in->id], st[j])) {
            char a[128], b[128];
            return bad(I, n, "%s: input %d of shape %s does not broadcast to %s", op_info[n->op].name,
                       j, shape_str(in->rank, I->shape[in->id], a, sizeof a),
                       shape_str(r, dims, b, sizeof b));
        }
    }
    int64_t ne = I->numel[n->id];
    /* u64 to another integer type keeps the low bits, as i64 does: 2^63 and up wrap to negatives */
    int u64_wrap = n->op == OP_CAST && n->in[0]->dtype == DT_U64 && dtype_traits[n->dtype].is_int && n->dtype != DT_U64;
    for (int64_t e = 0; e < ne; e++) {
        double v[3];
        for (int j = 0; j < nin; j++)
            v[j] = x[j][off[j]];
        y[e] = ir_eval_scalar(n->op, &n->at, n->dtype, nin, v);
        if (u64_wrap && y[e] >= 9223372036854775808.0)
            y[e] -= 18446744073709551616.0;
        step(r, dims, idx, nin, st, off);
    }
    return 0;
}

/* ---------------------------------------------------------------- reductions and normalisations */

/* Splits the input of n around axis: outer x len x inner. */
static int split_axis(Interp *I, const Node *n, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    const Node *in = n->in[0];
    if (axis < 0 || axis >= in->rank)
        return bad(I, n, "%s: axis %d out of range for rank %d", op_info[n->op].name, axis, in->rank);
    const int64_t *s = I->shape[in->id];
    *outer = prod(s, 0, axis);
    *len = s[axis];
    *inner = prod(s, axis + 1, in->rank);
    return 0;
}

static int eval_reduce(Interp *I, const Node *n, double *y)
{
    int64_t outer, len, inner;
    if (split_axis(I, n, n->at.axis, &outer, &len, &inner))
        return -1;
    const Node *in = n->in[0];
    int want_rank = n->at.keepdims ? in->rank : in->rank - 1;
    if (n->rank != want_rank || I->numel[n->id] != outer * inner) {
        char a[128], b[128];
        return bad(I, n, "%s: output %s does not fit input %s reduced over axis %d%s",
                   op_info[n->op].name, shape_str(n->rank, I->shape[n->id], a, sizeof a),
                   shape_str(in->rank, I->shape[in->id], b, sizeof b), n->at.axis,
                   n->at.keepdims ? " (keepdims)" : "");
    }
    const double *x = I->val[in->id];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const double *p = x + o * len * inner + i;
            double acc;
            switch (n->op) {
            case OP_SUM:
            case OP_MEAN:
                acc = 0;
                for (int64_t k = 0; k < len; k++)
                    acc += p[k * inner];
                if (n->op == OP_MEAN)
                    acc /= (double)len;
                break;
            case OP_RMAX:
            case OP_RMIN:
                acc = n->op == OP_RMAX ? -INFINITY : INFINITY;
                for (int64_t k = 0; k < len; k++) {
                    double v = p[k * inner];
                    if (isnan(v)) {
                        acc = v;
                        break;
                    }
                    if (n->op == OP_RMAX ? v > acc : v < acc)
                        acc = v;
                }
                break;
            default: UNREACHABLE();
            }
            y[o * inner + i] = acc;
        }
    return 0;
}

static int same_shape(Interp *I, const Node *a, const Node *b)
{
    return a->rank == b->rank &&
           !memcmp(I->shape[a->id], I->shape[b->id], sizeof(int64_t) * (size_t)a->rank);
}

static int eval_softmax(Interp *I, const Node *n, double *y)
{
    int64_t outer, len, inner;
    if (split_axis(I, n, n->at.axis, &outer, &len, &inner))
        return -1;
    if (!same_shape(I, n, n->in[0]))
        return bad(I, n, "%s: output shape differs from the input's", op_info[n->op].name);
    const double *x = I->val[n->in[0]->id];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double m = -INFINITY, s = 0;
            for (int64_t k = 0; k < len; k++) {
                double v = x[base + k * inner];
                if (v > m || isnan(v))
                    m = v;
                if (isnan(v))
                    break;
            }
            /* all -inf: m = -inf and x - m is NaN everywhere, as in PyTorch */
            for (int64_t k = 0; k < len; k++)
                s += exp(x[base + k * inner] - m);
            for (int64_t k = 0; k < len; k++) {
                double v = x[base + k * inner] - m;
                y[base + k * inner] = n->op == OP_SOFTMAX ? exp(v) / s : v - log(s);
            }
        }
    return 0;
}

/* LAYERNORM(x, gamma, beta) and RMSNORM(x, gamma) over the last axis. */
static int eval_norm(Interp *I, const Node *n, double *y)
{
    const Node *xn = n->in[0];
    if (xn->rank < 1 || !same_shape(I, n, xn))
        return bad(I, n, "%s: the output must have the input's shape, of rank >= 1", op_info[n->op].name);
    int64_t len = I->shape[xn->id][xn->rank - 1], rows = len ? I->numel[xn->id] / len : 0;
    for (int j = 1; j < n->nin; j++)
        if (I->numel[n->in[j]->id] != len)
            return bad(I, n, "%s: input %d has %lld elements, the last axis %lld", op_info[n->op].name,
                       j, (long long)I->numel[n->in[j]->id], (long long)len);
    const double *x = I->val[xn->id], *gamma = I->val[n->in[1]->id];
    const double *beta = n->op == OP_LAYERNORM ? I->val[n->in[2]->id] : NULL;
    for (int64_t r = 0; r < rows; r++) {
        const double *p = x + r * len;
        double *q = y + r * len;
        if (n->op == OP_LAYERNORM) {
            double mean = 0, var = 0;
            for (int64_t k = 0; k < len; k++)
                mean += p[k];
            mean /= (double)len;
            for (int64_t k = 0; k < len; k++)
                var += (p[k] - mean) * (p[k] - mean);
            var /= (double)len;
            double rstd = 1.0 / sqrt(var + n->at.eps);
            for (int64_t k = 0; k < len; k++)
                q[k] = (p[k] - mean) * rstd * gamma[k] + beta[k];
        } else {
            double ms = 0;
            for (int64_t k = 0; k < len; k++)
                ms += p[k] * p[k];
            ms /= (double)len;
            double rs = 1.0 / sqrt(ms + n->at.eps);
            for (int64_t k = 0; k < len; k++)
                q[k] = p[k] * rs * gamma[k];
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- matmul and convolution */

static int eval_matmul(Interp *I, const Node *n, double *y)
{
    const Node *an = n->in[0], *bn = n->in[1];
    char sa[128], sb[128], so[128];
    if (an->rank < 1 || bn->rank < 1)
        return bad(I, n, "matmul: inputs must have rank >= 1");
    /* Promote vectors: a [K] is [1, K], b [K] is [K, 1]; those dims are dropped from the output. */
    int64_t a[IR_MAX_RANK + 1], b[IR_MAX_RANK + 1];
    int ra = an->rank, rb = bn->rank;
    memcpy(a, I->shape[an->id], sizeof(int64_t) * (size_t)ra);
    memcpy(b, I->shape[bn->id], sizeof(int64_t) * (size_t)rb);
    if (ra == 1) {
        a[1] = a[0];
        a[0] = 1;
        ra = 2;
    }
    if (rb == 1) {
        b[1] = 1;
        rb = 2;
    }
    int64_t M = a[ra - 2], K = a[ra - 1], N = b[rb - 1];
    /* the batch dims, broadcast */
    int rba = ra - 2, rbb = rb - 2, r = rba > rbb ? rba : rbb;
    int64_t batch[IR_MAX_RANK], st[2][IR_MAX_RANK];
    int ok = b[rb - 2] == K;
    for (int i = 0; ok && i < r; i++) {
        int ia = i - (r - rba), ib = i - (r - rbb);
        int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        ok = da == db || da == 1 || db == 1;
        batch[i] = da == 1 ? db : da;
    }
    /* the output shape this gives */
    int64_t want[IR_MAX_RANK + 2];
    int rw = r;
    memcpy(want, batch, sizeof(int64_t) * (size_t)r);
    if (an->rank > 1)
        want[rw++] = M;
    if (bn->rank > 1)
        want[rw++] = N;
    if (ok)
        ok = rw == n->rank && !memcmp(want, I->shape[n->id], sizeof(int64_t) * (size_t)rw);
    if (!ok)
        return bad(I, n, "matmul: %s @ %s does not give %s",
                   shape_str(an->rank, I->shape[an->id], sa, sizeof sa),
                   shape_str(bn->rank, I->shape[bn->id], sb, sizeof sb),
                   shape_str(n->rank, I->shape[n->id], so, sizeof so));
    bcast_strides(r, batch, rba, a, st[0]);
    bcast_strides(r, batch, rbb, b, st[1]);
    int64_t nb = prod(batch, 0, r), off[2] = {0, 0}, idx[IR_MAX_RANK] = {0};
    const double *x = I->val[an->id], *w = I->val[bn->id];
    /* C[i][j] = sum over k in order of A[i][k] * B[k][j]. The loops run k-i-j over tiles of JB
     * columns so that a tile of C stays in cache while each row of B is read once: a GPT-2 head
     * ([T, 768] @ [768, 50257]) would otherwise stream B from memory T times. */
    enum { JB = 256 };
    for (int64_t bi = 0; bi < nb; bi++) {
        /* batch strides count whole matrices */
        const double *A = x + off[0] * M * K, *B = w + off[1] * K * N;
        double *C = y + bi * M * N;
        for (int64_t e = 0; e < M * N; e++)
            C[e] = 0;
        for (int64_t j0 = 0; j0 < N; j0 += JB) {
            int64_t jn = N - j0 < JB ? N - j0 : JB;
            for (int64_t k = 0; k < K; k++) {
                const double *brow = B + k * N + j0;
                for (int64_t i = 0; i < M; i++) {
                    double av = A[i * K + k], *c = C + i * N + j0;
                    for (int64_t j = 0; j < jn; j++)
                        c[j] += av * brow[j];
                }
            }
        }
        step(r, batch, idx, 2, st, off);
    }
    return 0;
}

/* attention: softmax(q k^T * scale + mask [+ causal]) v over broadcast batch dims, in double. A row
 * whose keys are all masked (every score -inf) gives zeros, as the fused kernel does: this op is
 * what fuse-attention makes, and that is its definition, where the unfused softmax would give NaN.
 * With the attribute scores, each output row of Dv values is followed by the row's Tk probabilities
 * (the kv-cache policies read them; 0 for a masked key and for every key of a fully masked row). A
 * fifth input n bounds the keys read to 0..n-1, the others masked (a decode step's filled slots).
 * With cls (not NULL), the first query row's probabilities are also written there, [batch..., Tk]:
 * the node's cls_probs, computed here as the kernel computes it, with the row. */
static int eval_attention(Interp *I, const Node *n, double *y, double *cls)
{
    const Node *qn = n->in[0], *kn = n->in[1], *vn = n->in[2], *mn = n->nin > 3 ? n->in[3] : NULL;
    const int64_t *qs = I->shape[qn->id], *ks = I->shape[kn->id], *vs = I->shape[vn->id];
    int r = n->rank - 2;
    int64_t Tq = qs[qn->rank - 2], D = qs[qn->rank - 1], Tk = ks[kn->rank - 2], Dv = vs[vn->rank - 1];
    const int64_t *os = I->shape[n->id];
    int64_t st[3][IR_MAX_RANK], mst[IR_MAX_RANK + 2] = {0}, full[IR_MAX_RANK + 2];
    if (!bcast_strides(r, os, qn->rank - 2, qs, st[0]) || !bcast_strides(r, os, kn->rank - 2, ks, st[1]) ||
        !bcast_strides(r, os, vn->rank - 2, vs, st[2]) || ks[kn->rank - 1] != D || vs[vn->rank - 2] != Tk)
        return bad(I, n, "attention: q, k and v do not fit");
    memcpy(full, os, sizeof(int64_t) * (size_t)r);
    full[r] = Tq;
    full[r + 1] = Tk;
    if (mn && !bcast_strides(r + 2, full, mn->rank, I->shape[mn->id], mst))
        return bad(I, n, "attention: the mask does not broadcast to the scores");
    /* with a count of keys (a KV cache's filled slots), the keys from it on are not read: masked */
    int64_t Tn = Tk;
    if (n->nin > 4) {
        double c = I->val[n->in[4]->id][0];
        Tn = c < 0 ? 0 : c < (double)Tk ? (int64_t)c : Tk;
    }
    /* batch strides count whole matrices: rescale the element strides of the batch dims */
    int64_t nb = prod(os, 0, r), idx[IR_MAX_RANK] = {0}, off[3] = {0, 0, 0};
    double *sc = malloc(sizeof(double) * (size_t)(Tk ? Tk : 1));
    if (!sc)
        return bad(I, n, "out of memory");
    const double *Q = I->val[qn->id], *K = I->val[kn->id], *V = I->val[vn->id], *M = mn ? I->val[mn->id] : NULL;
    double *deq[2] = {NULL, NULL};
    if (cls)
        memset(cls, 0, sizeof(double) * (size_t)(nb * Tk)); /* masked keys, and a batch index with no row */
    if (n->nin > 6) { /* int8 k and v: each row its f32 product with its scale, as the kernel reads it */
        for (int j = 0; j < 2; j++) {
            const Node *x = n->in[1 + j];
            int64_t cols = I->shape[x->id][x->rank - 1], cnt = prod(I->shape[x->id], 0, x->rank);
            const double *src = I->val[x->id], *s = I->val[n->in[5 + j]->id];
            if (!(deq[j] = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1)))) {
                free(deq[0]);
                free(sc);
                return bad(I, n, "out of memory");
            }
            for (int64_t e = 0; e < cnt; e++)
                deq[j][e] = (double)((float)src[e] * (float)s[e / cols]);
        }
        K = deq[0];
        V = deq[1];
    }
    for (int64_t b = 0; b < nb; b++) {
        int64_t moff = 0;
        for (int i = 0; i < r; i++)
            moff += idx[i] * mst[i];
        const double *q = Q + off[0] * Tq * D, *k = K + off[1] * Tk * D, *v = V + off[2] * Tk * Dv;
        int64_t ow = Dv + (n->at.scores ? Tk : 0); /* an output row */
        double *out = y + b * Tq * ow;
        for (int64_t i = 0; i < Tq; i++) {
            double mx = -INFINITY;
            for (int64_t j = 0; j < Tn; j++) {
                double dot = 0;
                for (int64_t e = 0; e < D; e++)
                    dot += q[i * D + e] * k[j * D + e];
                double sij = dot * n->at.scale;
                /* the masked score is rounded to the node's dtype, as the graph the op replaces rounds
                 * s + mask: a score plus a large finite mask (-1e9) is then the mask itself, and a row
                 * masked everywhere that way has equal weights, as it has there */
                if (M)
                    sij = dtype_round(n->dtype, sij + M[moff + i * mst[r] + j * mst[r + 1]]);
                if (n->at.causal && j > i + Tk - Tq)
                    sij = -INFINITY;
                sc[j] = sij;
                mx = sij > mx ? sij : mx;
            }
            for (int64_t e = 0; e < ow; e++)
                out[i * ow + e] = 0;
            if (mx == -INFINITY)
                continue; /* every key masked: zeros */
            double sum = 0;
            for (int64_t j = 0; j < Tn; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (int64_t j = 0; j < Tn; j++)
                for (int64_t e = 0; e < Dv; e++)
                    out[i * ow + e] += sc[j] / sum * v[j * Dv + e];
            for (int64_t j = 0; j < ow - Dv && j < Tn; j++) /* the keys past Tn keep their 0 */
                out[i * ow + Dv + j] = sc[j] / sum;
            for (int64_t j = 0; cls && i == 0 && j < Tn; j++)
                cls[b * Tk + j] = sc[j] / sum;
        }
        /* next batch index; the strides from bcast_strides are in batch elements of each input */
        for (int k2 = r - 1; k2 >= 0; k2--) {
            for (int j = 0; j < 3; j++)
                off[j] += st[j][k2];
            if (++idx[k2] < os[k2])
                break;
            for (int j = 0; j < 3; j++)
                off[j] -= st[j][k2] * os[k2];
            idx[k2] = 0;
        }
    }
    free(sc);
    free(deq[0]);
    free(deq[1]);
    return 0;
}

/* tome_match, token_merge, cls_attn, evit_select (tokens.c): batch rows [..., T, *] one at a time; the
 * inputs share the batch dims (the verifier checks it). */
static int eval_tokens(Interp *I, const Node *n, double *y)
{
    const Node *x = n->in[0];
    const int64_t *xs = I->shape[x->id], *os = I->shape[n->id];
    const double *X = I->val[x->id];
    switch (n->op) {
    case OP_TOME_MATCH: {
        int64_t T = xs[x->rank - 2], C = xs[x->rank - 1], nb = prod(xs, 0, x->rank - 2);
        for (int64_t b = 0; b < nb; b++)
            if (ir_tome_match_row(X + b * T * C, T, C, n->at.r, n->at.cls, y + b * T))
                return bad(I, n, "out of memory");
        return 0;
    }
    case OP_PITOME_MATCH: {
        int64_t T = xs[x->rank - 2], C = xs[x->rank - 1], nb = prod(xs, 0, x->rank - 2);
        for (int64_t b = 0; b < nb; b++)
            if (ir_pitome_match_row(X + b * T * C, T, C, n->at.r, n->at.cls, n->at.margin, n->at.bsm, y + b * T))
                return bad(I, n, "out of memory");
        return 0;
    }
    case OP_TOKEN_MERGE: {
        int64_t T = xs[x->rank - 2], D = xs[x->rank - 1], nb = prod(xs, 0, x->rank - 2), T2 = os[n->rank - 2];
        const double *dest = I->val[n->in[1]->id], *w = n->nin > 2 ? I->val[n->in[2]->id] : NULL;
        for (int64_t i = 0; i < nb * T; i++)
            if (!(dest[i] >= 0 && dest[i] < (double)T2))
                return bad(I, n, "token_merge: token %lld goes to %g, outside [0, %lld)", (long long)i, dest[i],
                           (long long)T2);
        double *wsum = malloc(sizeof(double) * (size_t)(T2 + 1));
        if (!wsum)
            return bad(I, n, "out of memory");
        for (int64_t b = 0; b < nb; b++)
            ir_token_merge_row(X + b * T * D, dest + b * T, w ? w + b * T : NULL, T, D, T2, n->at.mode == 0,
                               y + b * T2 * D, wsum);
        free(wsum);
        return 0;
    }
    case OP_CLS_ATTN: {
        const Node *k = n->in[1];
        int64_t Tq = xs[x->rank - 2], d = xs[x->rank - 1], Tk = I->shape[k->id][k->rank - 2];
        int64_t nb = prod(xs, 0, x->rank - 2);
        for (int64_t b = 0; b < nb; b++)
            ir_cls_attn_row(X + b * Tq * d, I->val[k->id] + b * Tk * d, Tk, d, n->at.scale, y + b * Tk);
        return 0;
    }
    case OP_EVIT_SELECT: {
        int64_t T = xs[x->rank - 1], nb = prod(xs, 0, x->rank - 1);
        for (int64_t b = 0; b < nb; b++)
            if (ir_evit_select_row(X + b * T, T, n->at.keep, y + b * T))
                return bad(I, n, "out of memory");
        return 0;
    }
    default: UNREACHABLE();
    }
}

static int eval_conv2d(Interp *I, const Node *n, double *y)
{
    if (n->nin != 2 && n->nin != 3)
        return bad(I, n, "conv2d: %d inputs (x, w and an optional bias)", n->nin);
    const Node *xn = n->in[0], *wn = n->in[1], *bn = n->nin == 3 ? n->in[2] : NULL;
    const int64_t *xs = I->shape[xn->id], *ws = I->shape[wn->id], *ys = I->shape[n->id];
    int batched = xn->rank == 4;
    int64_t NB = batched ? xs[0] : 1;
    const int64_t *x3 = xs + batched; /* C, H, W */
    int sh = n->at.stride[0], sw = n->at.stride[1], ph = n->at.pad[0], pw = n->at.pad[1];
    char a[128], b[128], c[128];
    if ((xn->rank != 3 && xn->rank != 4) || wn->rank != 4 || sh < 1 || sw < 1 || ph < 0 || pw < 0 ||
        ws[1] != x3[0] || (bn && I->numel[bn->id] != ws[0]))
        return bad(I, n, "conv2d: x %s, w %s, stride %d,%d, pad %d,%d do not fit",
                   shape_str(xn->rank, xs, a, sizeof a), shape_str(wn->rank, ws, b, sizeof b), sh, sw,
                   ph, pw);
    int64_t O = ws[0], C = ws[1], KH = ws[2], KW = ws[3], H = x3[1], W = x3[2];
    int64_t OH = (H + 2 * ph - KH) / sh + 1, OW = (W + 2 * pw - KW) / sw + 1;
    int64_t want[4] = {NB, O, OH, OW};
    if (H + 2 * ph < KH || W + 2 * pw < KW || n->rank != xn->rank ||
        memcmp(want + !batched, ys, sizeof(int64_t) * (size_t)n->rank))
        return bad(I, n, "conv2d: x %s and w %s give [%lld, %lld, %lld, %lld], not %s",
                   shape_str(xn->rank, xs, a, sizeof a), shape_str(wn->rank, ws, b, sizeof b),
                   (long long)NB, (long long)O, (long long)OH, (long long)OW,
                   shape_str(n->rank, ys, c, sizeof c));
    const double *x = I->val[xn->id], *w = I->val[wn->id], *bias = bn ? I->val[bn->id] : NULL;
    for (int64_t nb = 0; nb < NB; nb++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[o] : 0;
                    for (int64_t ci = 0; ci < C; ci++)
                        for (int64_t kh = 0; kh < KH; kh++) {
                            int64_t ih = oh * sh - ph + kh;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t iw = ow * sw - pw + kw;
                                if (iw < 0 || iw >= W)
                                    continue;
                                acc += x[((nb * C + ci) * H + ih) * W + iw] *
                                       w[((o * C + ci) * KH + kh) * KW + kw];
                            }
                        }
                    y[((nb * O + o) * OH + oh) * OW + ow] = acc;
                }
    return 0;
}

/* ---------------------------------------------------------------- data movement */

static int eval_transpose(Interp *I, const Node *n, double *y)
{
    const Node *in = n->in[0];
    const int64_t *is = I->shape[in->id], *os = I->shape[n->id];
    int r = n->rank, used = 0;
    int64_t ist[IR_MAX_RANK], st[IR_MAX_RANK];
    if (in->rank != r)
        return bad(I, n, "transpose: rank %d to rank %d", in->rank, r);
    for (int i = r - 1; i >= 0; i--)
        ist[i] = i == r - 1 ? 1 : ist[i + 1] * is[i + 1];
    for (int i = 0; i < r; i++) {
        int p = n->at.perm[i];
        if (p < 0 || p >= r || (used & (1 << p)) || os[i] != is[p])
            return bad(I, n, "transpose: perm does not map the input's shape to the output's");
        used |= 1 << p;
        st[i] = ist[p];
    }
    copy_strided(y, r, os, I->numel[n->id], I->val[in->id], st);
    return 0;
}

static int eval_expand(Interp *I, const Node *n, double *y)
{
    const Node *in = n->in[0];
    int64_t st[IR_MAX_RANK];
    char a[128], b[128];
    if (!bcast_strides(n->rank, I->shape[n->id], in->rank, I->shape[in->id], st))
        return bad(I, n, "expand: %s does not broadcast to %s",
                   shape_str(in->rank, I->shape[in->id], a, sizeof a),
                   shape_str(n->rank, I->shape[n->id], b, sizeof b));
    copy_strided(y, n->rank, I->shape[n->id], I->numel[n->id], I->val[in->id], st);
    return 0;
}

static int eval_slice(Interp *I, const Node *n, double *y)
{
    const Node *in = n->in[0];
    int axis = n->at.axis;
    int64_t start = dim_eval(n->at.start, I->vals), end = dim_eval(n->at.end, I->vals);
    int64_t outer, len, inner;
    if (split_axis(I, n, axis, &outer, &len, &inner))
        return -1;
    int ok = in->rank == n->rank && start >= 0 && start <= end && end <= len;
    for (int i = 0; ok && i < n->rank; i++)
        ok = I->shape[n->id][i] == (i == axis ? end - start : I->shape[in->id][i]);
    if (!ok) {
        char a[128], b[128];
        return bad(I, n, "slice: [%lld:%lld] along axis %d of %s does not give %s", (long long)start,
                   (long long)end, axis, shape_str(in->rank, I->shape[in->id], a, sizeof a),
                   shape_str(n->rank, I->shape[n->id], b, sizeof b));
    }
    const double *x = I->val[in->id];
    int64_t chunk = (end - start) * inner;
    for (int64_t o = 0; o < outer; o++)
        memcpy(y + o * chunk, x + (o * len + start) * inner, sizeof(double) * (size_t)chunk);
    return 0;
}

static int eval_concat(Interp *I, const Node *n, double *y)
{
    int axis = n->at.axis, r = n->rank;
    const int64_t *os = I->shape[n->id];
    if (axis < 0 || axis >= r)
        return bad(I, n, "concat: axis %d out of range for rank %d", axis, r);
    int64_t total = 0;
    for (int j = 0; j < n->nin; j++) {
        const Node *in = n->in[j];
        int ok = in->rank == r;
        for (int i = 0; ok && i < r; i++)
            ok = i == axis || I->shape[in->id][i] == os[i];
        if (!ok) {
            char a[128], b[128];
            return bad(I, n, "concat: input %d of shape %s does not fit %s along axis %d", j,
                       shape_str(in->rank, I->shape[in->id], a, sizeof a), shape_str(r, os, b, sizeof b),
                       axis);
        }
        total += I->shape[in->id][axis];
    }
    if (total != os[axis])
        return bad(I, n, "concat: the inputs add up to %lld along axis %d, the output has %lld",
                   (long long)total, axis, (long long)os[axis]);
    int64_t outer = prod(os, 0, axis), inner = prod(os, axis + 1, r), pos = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int j = 0; j < n->nin; j++) {
            const Node *in = n->in[j];
            int64_t chunk = I->shape[in->id][axis] * inner;
            memcpy(y + pos, I->val[in->id] + o * chunk, sizeof(double) * (size_t)chunk);
            pos += chunk;
        }
    return 0;
}

static int eval_gather(Interp *I, const Node *n, double *y)
{
    const Node *tn = n->in[0], *xn = n->in[1];
    int axis = n->at.axis;
    int64_t outer, len, inner;
    if (split_axis(I, n, axis, &outer, &len, &inner))
        return -1;
    /* out shape = table[:axis] + idx + table[axis+1:] */
    const int64_t *ts = I->shape[tn->id], *xs = I->shape[xn->id], *os = I->shape[n->id];
    int ok = n->rank == tn->rank - 1 + xn->rank;
    for (int i = 0; ok && i < n->rank; i++) {
        int64_t want = i < axis ? ts[i] : i < axis + xn->rank ? xs[i - axis] : ts[i - xn->rank + 1];
        ok = os[i] == want;
    }
    if (!ok) {
        char a[128], b[128], c[128];
        return bad(I, n, "gather: table %s, indices %s along axis %d do not give %s",
                   shape_str(tn->rank, ts, a, sizeof a), shape_str(xn->rank, xs, b, sizeof b), axis,
                   shape_str(n->rank, os, c, sizeof c));
    }
    const double *t = I->val[tn->id], *idx = I->val[xn->id];
    int64_t nidx = I->numel[xn->id];
    for (int64_t k = 0; k < nidx; k++) {
        double v = idx[k];
        if (!(v >= 0 && v < (double)len && v == floor(v))) {
            if (n->at.check == CHECK_PREFILL) /* the kv-cache pass's checks (attrs.def's check) */
                return bad(I, n, "decode before prefill: the KV cache is empty");
            if (n->at.check == CHECK_BUDGET)
                return bad(I, n, "the KV cache's budget is reached: policy full holds no more tokens, or the prompt is "
                           "longer than the budget");
            if (n->at.check == CHECK_POSITIONS)
                return bad(I, n, "position %.17g is past the model's learned position table of %lld rows", v,
                           (long long)len);
            char a[128];
            return bad(I, n, "gather: index %.17g (at position %lld of the indices) is out of range "
                       "[0, %lld) for axis %d of the table %s", v, (long long)k, (long long)len, axis,
                       shape_str(tn->rank, ts, a, sizeof a));
        }
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < nidx; k++)
            memcpy(y + (o * nidx + k) * inner, t + (o * len + (int64_t)idx[k]) * inner,
                   sizeof(double) * (size_t)inner);
    return 0;
}

/* scatter(base, index, values) {axis}: rows written in the index's order (a repeated index: the
 * last write wins); an index outside [0, len) is an error, as for gather */
static int eval_scatter(Interp *I, const Node *n, double *y)
{
    const Node *bn = n->in[0], *xn = n->in[1], *vn = n->in[2];
    int axis = n->at.axis;
    int64_t outer, len, inner;
    if (split_axis(I, n, axis, &outer, &len, &inner))
        return -1;
    int64_t nidx = I->numel[xn->id];
    if (I->numel[bn->id] != I->numel[n->id] || I->numel[vn->id] != outer * nidx * inner)
        return bad(I, n, "scatter: base, index and values do not fit the node");
    const double *idx = I->val[xn->id], *v = I->val[vn->id];
    memcpy(y, I->val[bn->id], sizeof(double) * (size_t)I->numel[n->id]);
    for (int64_t k = 0; k < nidx; k++) {
        double r = idx[k];
        if (!(r >= 0 && r < (double)len && r == floor(r)))
            return bad(I, n, "scatter: index %.17g (at position %lld of the index) is out of range [0, %lld) "
                       "for axis %d", r, (long long)k, (long long)len, axis);
        for (int64_t o = 0; o < outer; o++)
            memcpy(y + (o * len + (int64_t)r) * inner, v + (o * nidx + k) * inner, sizeof(double) * (size_t)inner);
    }
    return 0;
}

/* ---------------------------------------------------------------- sources and dispatch */

/* y[0..n) = the n elements at p, of dtype t (float32 without a call per element: weights) */
static void load_all(double *y, DType t, const void *p, int64_t n)
{
    if (t == DT_F32)
        for (int64_t e = 0; e < n; e++)
            y[e] = ((const float *)p)[e];
    else
        for (int64_t e = 0; e < n; e++)
            y[e] = dtype_load(t, p, (size_t)e);
}

/* Rounds y[0..n) to dtype t: dtype_round, with the common float32 case inline. */
static void round_all(double *y, DType t, int64_t n)
{
    if (t == DT_F64)
        return;
    if (t == DT_F32)
        for (int64_t e = 0; e < n; e++)
            y[e] = (float)y[e];
    else
        for (int64_t e = 0; e < n; e++)
            y[e] = dtype_round(t, y[e]);
}

static int eval_source(Interp *I, const Node *n, double *y)
{
    const int64_t *s = I->shape[n->id];
    int64_t ne = I->numel[n->id];
    switch (n->op) {
    case OP_INPUT: {
        const HostTensor *t = &I->inputs[I->input_ix[n->id]];
        load_all(y, t->dtype, t->data, ne);
        return 0;
    }
    case OP_STATE: {
        int st = n->name ? ir_find_state(I->g, n->name) : -1;
        if (st < 0 || !I->st)
            return bad(I, n, "state \"%s\" has no value here (run the graph with ir_interp_entry)",
                       n->name ? n->name : "");
        if ((size_t)ne * (size_t)dtype_traits[n->dtype].size != I->st->bytes[st])
            return bad(I, n, "state \"%s\" does not have the node's size", n->name);
        load_all(y, n->dtype, I->st->data[st], ne);
        return 0;
    }
    case OP_WEIGHT:
    case OP_CONST:
        if (!n->at.data && ne)
            return bad(I, n, "%s%s%s%s has no data", op_info[n->op].name, n->name ? " '" : "",
                       n->name ? n->name : "", n->name ? "'" : "");
        load_all(y, n->dtype, n->at.data, ne);
        return 0;
    case OP_ARANGE:
        if (n->rank != 1)
            return bad(I, n, "arange: rank %d, not 1", n->rank);
        for (int64_t e = 0; e < ne; e++)
            y[e] = (double)e;
        return 0;
    case OP_CAUSAL_MASK:
        if (n->rank != 2)
            return bad(I, n, "causal_mask: rank %d, not 2", n->rank);
        for (int64_t i = 0; i < s[0]; i++)
            for (int64_t j = 0; j < s[1]; j++)
                y[i * s[1] + j] = j <= i + (s[1] - s[0]) ? 0.0 : -INFINITY;
        return 0;
    default: UNREACHABLE();
    }
}

/* y1: the node's second result (an attention's cls_probs), or NULL */
static int eval(Interp *I, const Node *n, double *y, double *y1)
{
    const OpInfo *oi = &op_info[n->op];
    if (n->nin < oi->min_in || (oi->max_in >= 0 && n->nin > oi->max_in))
        return bad(I, n, "%s: %d inputs", oi->name, n->nin);
    if (op_info[n->op].flags & F_EW)
        return eval_ew(I, n, y);
    switch (n->op) {
    case OP_INPUT:
    case OP_WEIGHT:
    case OP_CONST:
    case OP_ARANGE:
    case OP_STATE:
    case OP_CAUSAL_MASK: return eval_source(I, n, y);
    case OP_SCATTER: return eval_scatter(I, n, y);
    case OP_SUM:
    case OP_MEAN:
    case OP_RMAX:
    case OP_RMIN: return eval_reduce(I, n, y);
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX: return eval_softmax(I, n, y);
    case OP_LAYERNORM:
    case OP_RMSNORM: return eval_norm(I, n, y);
    case OP_MATMUL: return eval_matmul(I, n, y);
    case OP_CONV2D: return eval_conv2d(I, n, y);
    case OP_ATTENTION: return eval_attention(I, n, y, y1);
    case OP_CLS_PROBS: /* computed with its attention (compute), which always runs first */
        return bad(I, n, "cls_probs: its attention %%%d did not compute it", n->in[0]->id);
    case OP_TOME_MATCH:
    case OP_PITOME_MATCH:
    case OP_TOKEN_MERGE:
    case OP_CLS_ATTN:
    case OP_EVIT_SELECT: return eval_tokens(I, n, y);
    case OP_RESHAPE:
        if (I->numel[n->id] != I->numel[n->in[0]->id])
            return bad(I, n, "reshape: %lld elements to %lld", (long long)I->numel[n->in[0]->id],
                       (long long)I->numel[n->id]);
        memcpy(y, I->val[n->in[0]->id], sizeof(double) * (size_t)I->numel[n->id]);
        return 0;
    case OP_TRANSPOSE: return eval_transpose(I, n, y);
    case OP_EXPAND: return eval_expand(I, n, y);
    case OP_SLICE: return eval_slice(I, n, y);
    case OP_CONCAT: return eval_concat(I, n, y);
    case OP_GATHER: return eval_gather(I, n, y);
    case OP_QUANTIZE:
    case OP_DEQUANTIZE:
    case OP_QMATMUL: {
        const int64_t *shape[5] = {I->shape[n->id]};
        const double *in[4] = {0};
        char err[256] = "more than 4 inputs";
        for (int j = 0; j < n->nin && j < 4; j++) {
            shape[1 + j] = I->shape[n->in[j]->id];
            in[j] = I->val[n->in[j]->id];
        }
        return n->nin > 4 || ir_quant_eval(n, shape, in, y, err, sizeof err) ? bad(I, n, "%s", err) : 0;
    }
    default:
        /* A new op in ops.def: tests/unit/test_interp.c fails until it is implemented here. */
        return bad(I, n, "the interpreter does not implement op '%s'", op_info[n->op].name);
    }
}

static double *alloc_val(Interp *I, const Node *n)
{
    int64_t ne = I->numel[n->id];
    if ((uint64_t)ne > SIZE_MAX / sizeof(double)) {
        bad(I, n, "%lld elements do not fit in memory", (long long)ne);
        return NULL;
    }
    double *p = malloc(ne ? (size_t)ne * sizeof(double) : 1);
    if (!p)
        bad(I, n, "out of memory for %lld elements", (long long)ne);
    return p;
}

/* Computes node n into I->val; rounds to its dtype. An attention read by a cls_probs computes that
 * node's value too. */
static int compute(Interp *I, const Node *n)
{
    const Node *p = n->op == OP_ATTENTION && I->cls[n->id] >= 0 ? I->g->nodes[I->cls[n->id]] : NULL;
    double *y = alloc_val(I, n), *y1 = p ? alloc_val(I, p) : NULL;
    if (!y || (p && !y1) || eval(I, n, y, y1)) {
        free(y);
        free(y1);
        return -1;
    }
    round_all(y, n->dtype, I->numel[n->id]);
    I->val[n->id] = y;
    if (p) {
        round_all(y1, p->dtype, I->numel[p->id]);
        I->val[p->id] = y1;
    }
    return 0;
}

static int check_order(const Graph *g, Diag *d)
{
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (n->id != i || n->op < 0 || n->op >= OP_COUNT) {
            diag_fatal(d, "interpreter: node %d has id %d (call ir_compact after editing the graph)", i,
                       n->id);
            return -1;
        }
        for (int j = 0; j < n->nin; j++) {
            const Node *in = n->in[j];
            if (!in || in->id < 0 || in->id >= i || g->nodes[in->id] != in) {
                diag_error(d, n->loc, "interpreter: input %d of node %%%d is not an earlier node", j, i);
                return -1;
            }
        }
    }
    for (int k = 0; k < g->noutput; k++) {
        const Node *n = g->outputs[k].node;
        if (!n || n->id < 0 || n->id >= g->nnode || g->nodes[n->id] != n) {
            diag_fatal(d, "interpreter: output '%s' is not a node of the graph", g->outputs[k].name);
            return -1;
        }
    }
    return 0;
}

/* Runs entry e (e < 0: the whole graph, every input and output, as ir_interp) with state st. */
static int run(const Graph *g, int e, IrState *st, const HostTensor *inputs, HostTensor *outputs, Diag *d)
{
    if (check_order(g, d))
        return -1;
    Interp I = {.g = g, .inputs = inputs, .d = d, .st = st};
    unsigned char *need = e >= 0 ? ir_entry_needs((Graph *)g, e) : NULL;
    int nupd = 0, *upd = malloc(sizeof(int) * ((size_t)g->noutput + 1));
    void **newval = calloc((size_t)g->noutput + 1, sizeof(void *));
    KILN_ASSERT(upd && newval);
    if (bind_entry(g, e, need, inputs, I.vals, d)) {
        free(need);
        free(upd);
        free(newval);
        return -1;
    }
    size_t nn = (size_t)g->nnode + 1;
    I.shape = calloc(nn, sizeof *I.shape);
    I.numel = calloc(nn, sizeof *I.numel);
    I.val = calloc(nn, sizeof *I.val);
    I.last = calloc(nn, sizeof *I.last);
    I.input_ix = calloc(nn, sizeof *I.input_ix);
    I.cls = malloc(nn * sizeof *I.cls);
    int rc = -1, nout = 0;
    if (!I.shape || !I.numel || !I.val || !I.last || !I.input_ix || !I.cls) {
        diag_fatal(d, "interpreter: out of memory");
        goto done;
    }

    /* concrete shapes, readers, inputs */
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        I.numel[i] = 1;
        I.last[i] = -1;
        I.cls[i] = -1;
        if (need && !need[i])
            continue;
        if (n->op == OP_CLS_PROBS)
            I.cls[n->in[0]->id] = i;
        for (int k = 0; k < n->rank; k++) {
            int64_t v = dim_eval(n->shape[k], I.vals);
            if (v < 0) {
                char ts[256];
                bad(&I, n, "the shape %s is negative at the inputs' sizes", node_type_str(g, n, ts, sizeof ts));
                goto done;
            }
            I.shape[i][k] = v;
            I.numel[i] *= v;
        }
        for (int j = 0; j < n->nin; j++)
            I.last[n->in[j]->id] = i;
    }
    for (int k = 0, j = 0; k < g->ninput; k++)
        if (e < 0 || g->inputs[k]->entry == e)
            I.input_ix[g->inputs[k]->id] = j++;
    for (int k = 0; k < g->noutput; k++)
        if (e < 0 || g->outputs[k].entry == e)
            I.last[g->outputs[k].node->id] = g->nnode;

    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (need && !need[i])
            continue;
        if (is_lazy(n) && I.last[i] < g->nnode)
            continue; /* converted when a reader needs it */
        for (int j = 0; j < n->nin; j++)
            if (!I.val[n->in[j]->id] && compute(&I, n->in[j]))
                goto done;
        if (!I.val[i] && compute(&I, n)) /* a cls_probs has its value from its attention */
            goto done;
        for (int j = 0; j < n->nin; j++) {
            const Node *in = n->in[j];
            if (I.last[in->id] == i || (is_lazy(in) && I.last[in->id] < g->nnode)) {
                free(I.val[in->id]);
                I.val[in->id] = NULL;
            }
        }
        if (I.last[i] < 0) { /* nobody reads it */
            free(I.val[i]);
            I.val[i] = NULL;
        }
    }

    for (int k = 0; k < g->noutput; k++) {
        const Output *o = &g->outputs[k];
        if ((e >= 0 && o->entry != e) || !o->update)
            continue;
        int s = ir_find_state(g, o->name);
        if (s < 0 || !st) {
            diag_fatal(d, "interpreter: update of state '%s', which has no value here", o->name);
            goto done;
        }
        if (!(newval[nupd] = malloc(st->bytes[s] + 1))) {
            diag_fatal(d, "interpreter: out of memory for state '%s'", o->name);
            goto done;
        }
        upd[nupd] = s;
        for (int64_t x = 0; x < I.numel[o->node->id]; x++)
            dtype_store(o->node->dtype, newval[nupd], (size_t)x, I.val[o->node->id][x]);
        nupd++;
    }
    for (int k = 0; k < g->noutput; k++) {
        if ((e >= 0 && g->outputs[k].entry != e) || g->outputs[k].update)
            continue;
        const Node *n = g->outputs[k].node;
        HostTensor *t = &outputs[nout++];
        int64_t ne = I.numel[n->id];
        size_t sz = (size_t)dtype_traits[n->dtype].size;
        t->dtype = n->dtype;
        t->rank = n->rank;
        memcpy(t->shape, I.shape[n->id], sizeof t->shape);
        t->data = (uint64_t)ne > SIZE_MAX / sz ? NULL : calloc(ne ? (size_t)ne : 1, sz); /* zeroed: packed stores keep the other nibble */
        if (!t->data) {
            nout--;
            diag_fatal(d, "interpreter: out of memory for output '%s'", g->outputs[k].name);
            goto done;
        }
        for (int64_t x = 0; x < ne; x++)
            dtype_store(n->dtype, t->data, (size_t)x, I.val[n->id][x]);
    }
    /* the updates take effect together, once nothing can fail */
    for (int k = 0; k < nupd; k++) {
        memcpy(st->data[upd[k]], newval[k], st->bytes[upd[k]]);
    }
    rc = 0;

done:
    if (rc)
        for (int k = 0; k < nout; k++) {
            free(outputs[k].data);
            outputs[k].data = NULL;
        }
    if (I.val)
        for (int i = 0; i < g->nnode; i++)
            free(I.val[i]);
    free(I.shape);
    free(I.numel);
    free(I.val);
    free(I.last);
    free(I.input_ix);
    free(I.cls);
    for (int k = 0; k < nupd; k++)
        free(newval[k]);
    free(newval);
    free(upd);
    free(need);
    return rc;
}

int ir_interp(const Graph *g, const HostTensor *inputs, HostTensor *outputs, Diag *d)
{
    if (g->nentry || g->nstate) {
        diag_fatal(d, "interpreter: the graph has %d state%s and %d entr%s: run an entry with ir_interp_entry",
                   g->nstate, g->nstate == 1 ? "" : "s", ir_nentries(g), ir_nentries(g) == 1 ? "y" : "ies");
        return -1;
    }
    return run(g, -1, NULL, inputs, outputs, d);
}

int ir_interp_entry(const Graph *g, int e, IrState *st, const HostTensor *inputs, HostTensor *outputs, Diag *d)
{
    KILN_ASSERT(e >= 0 && e < ir_nentries(g) && st && st->g == g);
    return run(g, e, st, inputs, outputs, d);
}

IrState *ir_state_new(const Graph *g)
{
    IrState *s = calloc(1, sizeof *s);
    KILN_ASSERT(s);
    s->g = g;
    s->data = calloc((size_t)g->nstate + 1, sizeof(void *));
    s->bytes = calloc((size_t)g->nstate + 1, sizeof(size_t));
    KILN_ASSERT(s->data && s->bytes);
    for (int i = 0; i < g->nstate; i++) {
        const StateDecl *sd = &g->states[i];
        size_t b = (size_t)dtype_traits[sd->dtype].size;
        for (int k = 0; k < sd->rank; k++)
            b *= (size_t)dim_value(sd->shape[k]);
        s->bytes[i] = b;
        s->data[i] = calloc(b + 1, 1);
        KILN_ASSERT(s->data[i]);
    }
    return s;
}

void ir_state_reset(IrState *s)
{
    for (int i = 0; i < s->g->nstate; i++)
        memset(s->data[i], 0, s->bytes[i]);
}

void ir_state_free(IrState *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->g->nstate; i++)
        free(s->data[i]);
    free(s->data);
    free(s->bytes);
    free(s);
}

void *ir_state_data(IrState *s, int i)
{
    return s->data[i];
}
