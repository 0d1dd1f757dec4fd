/* fuse_attention.c: find scaled-dot-product attention however it is written, and replace it by one
 * ATTENTION node (online softmax, no T x T buffer).
 *
 * The match starts from each product P @ V whose left side is a softmax over the last axis (a softmax
 * in its primitive form, exp(s - max s) / sum exp(s - max s), is first rewritten to a softmax). The
 * softmax's input is then read as
 *     scores = alpha * (A @ B) + masks
 * by walking through multiplications and divisions by scalar constants (the scale, wherever it is
 * applied: to the scores, to q, to k, as 1/sqrt(d) or a folded constant), additions of a mask
 * (causal_mask, or any tensor that broadcasts to the scores and does not depend on q or k), and
 * where(cond, scores, -inf). A is q; B is k transposed, in whatever way: K is recovered by swapping
 * B's last two axes (a transpose that does exactly that disappears; any other gets composed). Keys
 * and values broadcast over the heads of q (grouped-query attention, also when written with expand).
 *
 * A mask written out that keeps exactly the keys j <= i + Tk - Tq of query i (the fused op's causal
 * flag) becomes that flag, so that the kernel skips the hidden keys and no mask tensor is read: the
 * condition of a where() is read as an integer inequality e(i, j) <= 0, with e linear in the indices
 * (see index_form), built from arange, triangular constants (GPT-2's `bias` buffer, sliced to rows
 * P .. P + T; an exporter's folded `~tril`), comparisons, not, and the movement ops between them. This is how exports with a
 * KV cache write the mask of P cached and T new tokens, `where(bias[P:P+T, :P+T], s, -1e4)` or
 * `arange(P + T)[None] <= arange(T)[:, None] + P`.
 *
 * Not fused, with the reason kept for --explain: softmax over another axis, any other consumer of the
 * scores or of the probabilities, a mask computed from the scores (or from q or k), a scale that is a
 * tensor, a non-f32 dtype.
 */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Ctx {
    Graph *g;
    int *uses;     /* (nnode) readers of each node, an output counting as one */
} Ctx;

static void count_uses(Ctx *c)
{
    Graph *g = c->g;
    free(c->uses);
    c->uses = ir_use_counts(g);
}

static int scalar_value(const Node *n, double *v)
{
    if (n->op == OP_CAST)
        n = n->in[0];
    if (n->op != OP_CONST)
        return 0;
    for (int i = 0; i < n->rank; i++)
        if (!dim_eq(n->shape[i], dim_const(1)))
            return 0;
    *v = dtype_load(n->dtype, n->at.data, 0);
    return 1;
}

/* Whether x (or something x is computed from) is `target`. */
static int depends_on(const Node *x, const Node *target, int depth)
{
    if (x == target)
        return 1;
    if (depth > 64)
        return 1; /* too deep to tell: assume it does, which only forgoes a fusion */
    for (int i = 0; i < x->nin; i++)
        if (depends_on(x->in[i], target, depth + 1))
            return 1;
    return 0;
}

/* Whether y leads to a matmul through the operations a scores expression is made of. */
static int is_scores(const Node *y)
{
    for (int guard = 0; guard < 32; guard++) {
        double v;
        switch (y->op) {
        case OP_MATMUL: return 1;
        case OP_MUL:
        case OP_DIV:
            if (scalar_value(y->in[1], &v))
                y = y->in[0];
            else if (y->op == OP_MUL && scalar_value(y->in[0], &v))
                y = y->in[1];
            else
                return 0;
            break;
        case OP_ADD:
            if (is_scores(y->in[0]))
                return 1;
            y = y->in[1];
            break;
        case OP_WHERE:
            if (is_scores(y->in[1]))
                return 1;
            y = y->in[2];
            break;
        default: return 0;
        }
    }
    return 0;
}

/* A softmax written out: exp(s - max(s)) / sum(exp(s - max(s))) over the last axis, or without
 * subtracting the max. Returns the s it is the softmax of, or NULL. */
static Node *primitive_softmax(Ctx *c, Node *div)
{
    if (div->op != OP_DIV)
        return NULL;
    Node *e = div->in[0], *sum = div->in[1];
    if (sum->op != OP_SUM || sum->in[0] != e || !sum->at.keepdims || sum->at.axis != e->rank - 1 ||
        e->op != OP_EXP || c->uses[e->id] != 2 || c->uses[sum->id] != 1 || div->rank != e->rank)
        return NULL;
    Node *z = e->in[0];
    if (z->op == OP_SUB && z->in[1]->op == OP_RMAX && z->in[1]->in[0] == z->in[0] && z->in[1]->at.keepdims &&
        z->in[1]->at.axis == z->rank - 1 && c->uses[z->id] == 1)
        return z->in[0];
    return z;
}

typedef struct Mask {
    Node *m;       /* the additive mask, or the condition of a where */
    double factor; /* the mask enters the scores multiplied by this */
    int where;     /* m is a condition: keep where true (1) or where false (-1) */
    double fill;   /* where: the value the masked scores are replaced by (-inf, or finite: -1e9) */
} Mask;

typedef struct Match {
    Node *q, *k, *v;
    double scale;
    int causal;
    int nmask;
    Mask mask[4];
    Node *chain[40]; /* the nodes the fused op replaces (must have no other reader) */
    int nchain;
} Match;

/* Peels multiplications/divisions by scalar constants (read only by the product) off an operand. */
static Node *peel_scale(Ctx *c, Node *x, double *scale)
{
    double v;
    for (;;) {
        if ((x->op == OP_MUL || x->op == OP_DIV) && c->uses[x->id] == 1 && scalar_value(x->in[1], &v) &&
            x->in[0]->rank == x->rank) {
            *scale = x->op == OP_MUL ? *scale * v : *scale / v;
            x = x->in[0];
        } else if (x->op == OP_MUL && c->uses[x->id] == 1 && scalar_value(x->in[0], &v) && x->in[1]->rank == x->rank) {
            *scale *= v;
            x = x->in[1];
        } else
            return x;
    }
}

/* An expand that only repeats heads (the last two dims unchanged) is the broadcast attention does anyway. */
static Node *peel_expand(Ctx *c, Node *x)
{
    if (x->op == OP_EXPAND && c->uses[x->id] == 1 && x->in[0]->rank == x->rank &&
        dim_eq(x->in[0]->shape[x->rank - 1], x->shape[x->rank - 1]) &&
        dim_eq(x->in[0]->shape[x->rank - 2], x->shape[x->rank - 2]))
        return x->in[0];
    return x;
}

/* K from B = K^T: swaps B's last two axes, folding into a transpose that B already is. */
static Node *untranspose(Ctx *c, Node *b, double *scale)
{
    Graph *g = c->g;
    int r = b->rank, perm[IR_MAX_RANK];
    if (b->op == OP_TRANSPOSE && c->uses[b->id] == 1) {
        Node *y = b->in[0];
        int identity = 1;
        memcpy(perm, b->at.perm, sizeof perm);
        int t = perm[r - 1];
        perm[r - 1] = perm[r - 2];
        perm[r - 2] = t;
        for (int i = 0; i < r; i++)
            identity &= perm[i] == i;
        if (identity)
            return peel_scale(c, y, scale);
        return ir_transpose(g, y, perm, b->loc, NULL);
    }
    b = peel_scale(c, b, scale);
    for (int i = 0; i < r; i++)
        perm[i] = i;
    perm[r - 1] = r - 2;
    perm[r - 2] = r - 1;
    return ir_transpose(g, b, perm, b->loc, NULL);
}

/* ---------------------------------------------------------------- causal masks written out */

/* An integer-valued node as a function of its own indices: value(idx) = sum_k c[k] * idx[k] + d, with
 * d a size (P, T - 1, 3). A condition (a bool node) is held as the e whose value is (e(idx) <= 0). */
typedef struct Aff {
    int rank;
    int64_t c[IR_MAX_RANK]; /* (rank) the coefficient of each axis's index */
    Dim d;                  /* the constant part */
} Aff;

static int aff_scale(Aff *a, int64_t k, int64_t add)
{
    for (int i = 0; i < a->rank; i++)
        if (__builtin_mul_overflow(a->c[i], k, &a->c[i]))
            return 0;
    return dim_mul(a->d, dim_const(k), &a->d) && dim_add(a->d, dim_const(add), &a->d);
}

/* a (over x's axes) as a function of the axes of out, which x broadcasts to: an axis of size 1 is
 * always index 0, so its coefficient drops. */
static int aff_broadcast(const Node *x, const Aff *a, const Node *out, Aff *r)
{
    int off = out->rank - x->rank;
    if (off < 0)
        return 0;
    r->rank = out->rank;
    r->d = a->d;
    for (int k = 0; k < out->rank; k++)
        r->c[k] = k < off || dim_eq(x->shape[k - off], dim_const(1)) ? 0 : a->c[k - off];
    return 1;
}

/* A triangular constant: x[..., r, c] true exactly when c - r <= k (lower: GPT-2's `bias` buffer), or
 * exactly when c - r >= k (upper: the `~tril` that exporters fold a masked_fill's condition into), for
 * one k and the same in every leading slice. As a condition: c - r - k <= 0, or r - c + k <= 0. */
static int triangle_form(const Node *x, Aff *a)
{
    int r = x->rank;
    if (r < 2 || !x->at.data || dtype_traits[x->dtype].block > 1 || dtype_traits[x->dtype].size < 1)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < r; i++) {
        if (!dim_is_const(x->shape[i]) || dim_value(x->shape[i]) < 1)
            return 0;
        n *= dim_value(x->shape[i]);
        if (n > (1 << 24))
            return 0; /* too large to check */
    }
    int64_t R = dim_value(x->shape[r - 2]), C = dim_value(x->shape[r - 1]), k = 0;
    int lower = dtype_load(x->dtype, x->at.data, 0) != 0;
    if (lower) { /* row 0 keeps columns 0 .. k */
        while (k + 1 < C && dtype_load(x->dtype, x->at.data, (size_t)(k + 1)) != 0)
            k++;
    } else { /* the first true of row 0 is column k; none: the first row that keeps column 0 is row -k */
        while (k < C && dtype_load(x->dtype, x->at.data, (size_t)k) == 0)
            k++;
        if (k == C) {
            int64_t r0 = 1;
            while (r0 < R && dtype_load(x->dtype, x->at.data, (size_t)(r0 * C)) == 0)
                r0++;
            if (r0 == R)
                return 0; /* nothing kept */
            lower = 1, k = -r0;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = i % C, row = i / C % R;
        if ((dtype_load(x->dtype, x->at.data, (size_t)i) != 0) != (lower ? c - row <= k : c - row >= k))
            return 0;
    }
    memset(a, 0, sizeof *a);
    a->rank = r;
    a->c[r - 1] = lower ? 1 : -1;
    a->c[r - 2] = lower ? -1 : 1;
    a->d = dim_const(lower ? -k : k);
    return 1;
}

/* x as an Aff over its indices: a number (*cond = 0) or a condition e <= 0 (*cond = 1). Values are
 * integers throughout (positions, sizes), exact in any dtype kiln compares them in at the sizes a
 * model has. Returns 0 when x is not of this form. */
static int index_form(const Node *x, Aff *a, int *cond, int depth)
{
    if (depth > 32)
        return 0;
    Aff p, q;
    int pc, qc;
    double v;
    memset(a, 0, sizeof *a);
    a->rank = x->rank;
    a->d = dim_const(0);
    switch (x->op) {
    case OP_ARANGE:
        a->c[0] = 1;
        *cond = 0;
        return x->rank == 1;
    case OP_CONST:
    case OP_WEIGHT:
        if (scalar_value(x, &v)) {
            if (x->dtype == DT_BOOL || v != floor(v) || fabs(v) > 1e15)
                return 0;
            a->d = dim_const((int64_t)v);
            *cond = 0;
            return 1;
        }
        *cond = 1;
        return x->dtype == DT_BOOL && triangle_form(x, a);
    case OP_CAST:
        if (!index_form(x->in[0], &p, &pc, depth + 1) || pc != (x->dtype == DT_BOOL))
            return 0; /* a number cast to bool, or a condition to 0/1, is not of the form */
        *cond = pc;
        return aff_broadcast(x->in[0], &p, x, a);
    case OP_RESHAPE: {
        /* only size-1 axes inserted or removed: the other axes keep their order */
        if (!index_form(x->in[0], &p, &pc, depth + 1))
            return 0;
        const Node *y = x->in[0];
        int i = 0, o = 0;
        for (;;) {
            while (i < y->rank && dim_eq(y->shape[i], dim_const(1)))
                i++;
            while (o < x->rank && dim_eq(x->shape[o], dim_const(1)))
                a->c[o++] = 0;
            if (i == y->rank || o == x->rank)
                break;
            if (!dim_eq(y->shape[i], x->shape[o]))
                return 0;
            a->c[o++] = p.c[i++];
        }
        if (i != y->rank || o != x->rank)
            return 0;
        a->d = p.d;
        *cond = pc;
        return 1;
    }
    case OP_EXPAND:
        if (!index_form(x->in[0], &p, &pc, depth + 1))
            return 0;
        *cond = pc;
        return aff_broadcast(x->in[0], &p, x, a);
    case OP_SLICE: {
        /* index k of the result is index start + k of the input along the axis */
        Dim off;
        if (!index_form(x->in[0], &p, &pc, depth + 1) || !dim_mul(x->at.start, dim_const(p.c[x->at.axis]), &off) ||
            !dim_add(p.d, off, &p.d))
            return 0;
        *a = p;
        *cond = pc;
        return 1;
    }
    case OP_TRANSPOSE:
        if (!index_form(x->in[0], &p, &pc, depth + 1))
            return 0;
        for (int i = 0; i < x->rank; i++)
            a->c[i] = p.c[x->at.perm[i]];
        a->d = p.d;
        *cond = pc;
        return 1;
    case OP_NEG:
        if (!index_form(x->in[0], &p, &pc, depth + 1) || pc)
            return 0;
        *cond = 0;
        return aff_broadcast(x->in[0], &p, x, a) && aff_scale(a, -1, 0);
    case OP_MUL:
        for (int s = 0; s < 2; s++)
            if (scalar_value(x->in[s], &v) && v == floor(v) && fabs(v) < 1e6 && index_form(x->in[1 - s], &p, &pc, depth + 1) &&
                !pc) {
                *cond = 0;
                return aff_broadcast(x->in[1 - s], &p, x, a) && aff_scale(a, (int64_t)v, 0);
            }
        return 0;
    case OP_EQ:
    case OP_NE:
        /* a condition (cast to a number or not) compared with false or true: itself or its negation
         * (ONNX's Not is written `c == 0`, which compares c cast to i32) */
        for (int s = 0; s < 2; s++) {
            const Node *y = x->in[1 - s];
            while (y->op == OP_CAST)
                y = y->in[0];
            if (scalar_value(x->in[s], &v) && (v == 0 || v == 1) && index_form(y, &p, &pc, depth + 1) && pc) {
                *cond = 1;
                int keep = (x->op == OP_EQ) == (v == 1);
                return aff_broadcast(y, &p, x, a) && (keep || aff_scale(a, -1, 1));
            }
        }
        return 0;
    case OP_WHERE: {
        /* where(c, true, false) is c (the importer's Trilu of a dynamic size), where(c, false, true) not c */
        double t, f;
        const Node *yt = x->in[1], *yf = x->in[2];
        while (yt->op == OP_EXPAND)
            yt = yt->in[0];
        while (yf->op == OP_EXPAND)
            yf = yf->in[0];
        if (x->dtype != DT_BOOL || !scalar_value(yt, &t) || !scalar_value(yf, &f) || (t != 0) == (f != 0) ||
            !index_form(x->in[0], &p, &pc, depth + 1) || !pc)
            return 0;
        *cond = 1;
        return aff_broadcast(x->in[0], &p, x, a) && (t != 0 || aff_scale(a, -1, 1));
    }
    case OP_ADD:
    case OP_SUB:
    case OP_LE:
    case OP_LT:
    case OP_GE:
    case OP_GT: {
        if (!index_form(x->in[0], &p, &pc, depth + 1) || !index_form(x->in[1], &q, &qc, depth + 1) || pc || qc)
            return 0;
        Aff l, r;
        if (!aff_broadcast(x->in[0], &p, x, &l) || !aff_broadcast(x->in[1], &q, x, &r))
            return 0;
        /* a - b for ADD (b negated first), SUB, LE, LT; b - a for GE, GT; strict: + 1 */
        int swap = x->op == OP_GE || x->op == OP_GT;
        if (swap) {
            Aff t = l;
            l = r;
            r = t;
        }
        if (x->op != OP_ADD && !aff_scale(&r, -1, 0))
            return 0;
        for (int i = 0; i < x->rank; i++)
            if (__builtin_add_overflow(l.c[i], r.c[i], &a->c[i]))
                return 0;
        if (!dim_add(l.d, r.d, &a->d))
            return 0;
        *cond = x->op != OP_ADD && x->op != OP_SUB;
        return !(x->op == OP_LT || x->op == OP_GT) || dim_add(a->d, dim_const(1), &a->d);
    }
    default: return 0;
    }
}

/* Whether keeping the scores where m is true (keep > 0) or false (keep < 0) keeps exactly the keys
 * j <= i + Tk - Tq of each query i: the causal flag. */
static int causal_condition(const Graph *g, const Node *m, int keep, const Node *scores)
{
    int r = m->rank, R = scores->rank, cond;
    Aff e;
    if (r < 2 || r > R || !dim_eq(m->shape[r - 2], scores->shape[R - 2]) ||
        !dim_eq(m->shape[r - 1], scores->shape[R - 1]) || !index_form(m, &e, &cond, 0) || !cond)
        return 0;
    if (keep < 0 && !aff_scale(&e, -1, 1)) /* not (e <= 0) is -e + 1 <= 0 */
        return 0;
    for (int i = 0; i < r - 2; i++)
        if (e.c[i])
            return 0;
    /* a (j - i - (Tk - Tq)) <= 0 for some a > 0 */
    int64_t k = e.c[r - 1];
    Dim off, want;
    Dim tq = scores->shape[R - 2], tk = scores->shape[R - 1];
    return k > 0 && e.c[r - 2] == -k && dim_sub(tk, tq, &off) && dim_mul(off, dim_const(-k), &want) &&
           dim_eq(e.d, want) && dim_le(g, tq, tk);
}

/* ---------------------------------------------------------------- the match */

/* Reads softmax input s as alpha * (q @ kT) + masks. Returns NULL, or the reason it is not. */
static const char *match_scores(Ctx *c, Node *s, Match *m)
{
    double alpha = 1, v;
    Node *x = s;
    for (int guard = 0; x->op != OP_MATMUL; guard++) {
        if (guard > 32 || m->nchain == 40)
            return "the scores expression is too long";
        if (c->uses[x->id] != 1)
            return "the scores are read by something other than the softmax";
        m->chain[m->nchain++] = x;
        switch (x->op) {
        case OP_MUL:
        case OP_DIV:
            if (scalar_value(x->in[1], &v)) {
                alpha = x->op == OP_MUL ? alpha * v : alpha / v;
                x = x->in[0];
            } else if (x->op == OP_MUL && scalar_value(x->in[0], &v)) {
                alpha *= v;
                x = x->in[1];
            } else
                return "the scores are scaled by a tensor, not a constant";
            break;
        case OP_ADD: {
            int left = is_scores(x->in[0]), right = is_scores(x->in[1]);
            if (left == right)
                return left ? "two score products are added" : "the softmax input is not a product q @ k^T";
            Node *mk = x->in[left ? 1 : 0];
            if (m->nmask == 4)
                return "more than four masks";
            m->mask[m->nmask++] = (Mask){mk, alpha, 0, 0};
            x = x->in[left ? 0 : 1];
            break;
        }
        case OP_WHERE: {
            int keep_true = is_scores(x->in[1]);
            Node *other = x->in[keep_true ? 2 : 1];
            /* a finite fill is -inf for every row whose largest kept score is above fill + 104: exp
             * of the difference is below f32's smallest denormal, so the graph itself sums exactly 0
             * for those keys; -1e4 (GPT-2's masked_bias) leaves every score above -9896 exact */
            if (!scalar_value(other, &v) || !(v <= -1e4))
                return "where() fills the scores with something other than -inf or a large negative number";
            if (m->nmask == 4)
                return "more than four masks";
            m->mask[m->nmask++] = (Mask){x->in[0], 1, keep_true ? 1 : -1, v};
            x = x->in[keep_true ? 1 : 2];
            break;
        }
        default: return "the softmax input is not a (scaled, masked) product q @ k^T";
        }
    }
    if (c->uses[x->id] != 1)
        return "the product q @ k^T is read by something other than the softmax";
    if (x->rank < 2 || x->in[0]->rank < 2 || x->in[1]->rank < 2)
        return "q or k is a vector";
    m->chain[m->nchain++] = x;
    m->scale = alpha;
    m->q = peel_scale(c, x->in[0], &m->scale);
    m->k = untranspose(c, x->in[1], &m->scale);
    m->k = peel_expand(c, m->k);
    /* masks: causal_mask becomes the flag; no mask may be computed from q or k */
    for (int i = 0; i < m->nmask; i++) {
        Node *mk = m->mask[i].m;
        if (depends_on(mk, x->in[0], 0) || depends_on(mk, x->in[1], 0))
            return "the mask depends on the values of q or k";
        Node *base = mk->op == OP_CAST ? mk->in[0] : mk;
        if (!m->mask[i].where && base->op == OP_CAUSAL_MASK && m->mask[i].factor > 0 && !m->causal &&
            dim_eq(base->shape[0], x->shape[x->rank - 2]) && dim_eq(base->shape[1], x->shape[x->rank - 1])) {
            m->causal = 1;
            m->mask[i--] = m->mask[--m->nmask];
        } else if (m->mask[i].where && !m->causal && causal_condition(c->g, mk, m->mask[i].where, x)) {
            /* Tq <= Tk: no row is fully masked, so the fill (-inf, or a finite one, see match_scores)
             * is never what a row averages over */
            m->causal = 1;
            m->mask[i--] = m->mask[--m->nmask];
        }
    }
    return NULL;
}

/* The single additive mask of the fused node, built from the matched masks (NULL when none). */
static Node *build_mask(Graph *g, Match *m, const Node *scores, SrcLoc loc)
{
    Node *total = NULL;
    DType dt = scores->dtype;
    for (int i = 0; i < m->nmask; i++) {
        Mask *mk = &m->mask[i];
        Node *t = mk->m;
        if (mk->where) {
            /* where(cond, s, -inf) is s + where(cond, 0, -inf) */
            Node *zero = ir_scalar(g, dt, 0, loc), *ninf = ir_scalar(g, dt, -INFINITY, loc);
            t = ir_where(g, t, mk->where > 0 ? zero : ninf, mk->where > 0 ? ninf : zero, loc, NULL);
        } else {
            if (t->dtype != dt)
                t = ir_cast(g, t, dt, loc);
            if (mk->factor != 1)
                t = ir_binary(g, OP_MUL, t, ir_scalar(g, dt, mk->factor, loc), loc, NULL);
        }
        if (!total)
            total = t;
        else {
            IrWhy why; /* masks that do not broadcast together are not fused */
            total = ir_binary(g, OP_ADD, total, t, loc, &why);
            if (!total)
                return NULL;
        }
    }
    return total;
}

/* The rows whose every key the masks hide. The fused op gives 0 there (no key, no value), while the
 * graph it replaces computes a softmax over scores that are all the same fill: with -inf that is NaN
 * (0/0, as PyTorch gives), with a finite fill (where(keep, s, -1e9)) every key has the same weight
 * and the row is the mean of V. So the pass keeps the graph's meaning explicitly:
 *     where(max(mask, keys) == -inf, mean(V over keys) or NaN, attention(...))
 * A finite additive mask (s + -1e9) needs nothing: it reaches the kernel as it is. Returns NULL when
 * the shapes do not broadcast. */
static Node *dead_rows(Graph *g, Node *a, Node *mask, Node *v, SrcLoc loc)
{
    int r = mask->rank;
    Node *mx = ir_reduce(g, OP_RMAX, mask, r - 1, 1, loc, NULL);
    Node *dead = ir_binary(g, OP_EQ, mx, ir_scalar(g, mask->dtype, -INFINITY, loc), loc, NULL);
    Node *fill = v ? ir_reduce(g, OP_MEAN, v, v->rank - 2, 1, loc, NULL) : ir_scalar(g, a->dtype, NAN, loc);
    /* the result must keep the attention's type: checked before the where is made */
    Node *in[3] = {dead, fill, a};
    IrType t, ta = ir_type_of(a);
    if (!ir_infer(g, OP_WHERE, NULL, 3, in, &t, NULL) || !ir_same_type(&t, &ta))
        return NULL;
    return ir_where(g, dead, fill, a, loc, NULL);
}

/* Tries to fuse the product pv = P @ V; returns 1 when it did, else 0 with *why set. */
static int try_fuse(Ctx *c, Node *pv, const char **why, Node **softmax_out)
{
    Graph *g = c->g;
    Node *p = pv->in[0];
    *softmax_out = p;
    if (pv->dtype != DT_F32) {
        *why = "only f32 attention is fused";
        return 0;
    }
    Node *s;
    if (p->op == OP_SOFTMAX) {
        if (p->at.axis != p->rank - 1) {
            *why = "the softmax is not over the last axis (the keys)";
            return 0;
        }
        s = p->in[0];
    } else if (!(s = primitive_softmax(c, p))) {
        return 0; /* not a softmax at all: nothing to say */
    }
    if (c->uses[p->id] != 1) {
        *why = "the probabilities are read by something other than the product with V";
        return 0;
    }
    if (p->rank < 2 || pv->in[1]->rank < 2) {
        *why = "V is a vector";
        return 0;
    }
    /* in the primitive form s - max(s) reads s twice, both inside the softmax */
    int twice = p->op != OP_SOFTMAX && p->in[0]->in[0]->op == OP_SUB;
    c->uses[s->id] -= twice;
    Match m = {0};
    *why = match_scores(c, s, &m);
    c->uses[s->id] += twice;
    if (*why)
        return 0;
    m.v = peel_expand(c, pv->in[1]);
    Node *mask = build_mask(g, &m, s, pv->loc);
    if (m.nmask && !mask) {
        *why = "the masks do not broadcast together";
        return 0;
    }
    int finite_fill = 0;
    for (int i = 0; i < m.nmask; i++)
        finite_fill |= m.mask[i].where && !isinf(m.mask[i].fill);
    if (finite_fill && m.causal) {
        *why = "a where() with a finite fill on a causal attention (which keys a fully masked row averages "
               "depends on the order of the masks)";
        return 0;
    }
    Node *a = ir_attention(g, m.q, m.k, m.v, mask, m.scale, m.causal, pv->loc, NULL);
    Node *out = mask ? dead_rows(g, a, mask, finite_fill ? m.v : NULL, pv->loc) : a;
    if (!out) {
        *why = "the masks do not broadcast with the output";
        return 0;
    }
    ir_replace_uses(g, pv, out);
    return 1;
}

int pass_fuse_attention(Graph *g, const PassOptions *o)
{
    Ctx c = {.g = g};
    int fused = 0;
    count_uses(&c);
    /* the softmaxes that a fusion consumed, so the rest can be explained */
    char *done = calloc((size_t)g->nnode + 1, 1);
    KILN_ASSERT(done);
    int n0 = g->nnode, explain = o->explain && !strcmp(o->explain, "fuse-attention");
    for (int i = 0; i < n0; i++) {
        Node *pv = g->nodes[i];
        if (pv->op != OP_MATMUL)
            continue;
        const char *why = NULL;
        Node *sm;
        ir_set_origin(g, pv); /* the fused node stays in the layer and scope of the product it replaces */
        int ok = try_fuse(&c, pv, &why, &sm);
        ir_set_origin(g, NULL);
        if (ok) {
            fused++;
            done[sm->id] = 1;
        } else if (why && explain) {
            diag_note(o->d, sm->loc, "softmax not fused into attention: %s", why);
            done[sm->id] = 1;
        }
    }
    if (explain)
        for (int i = 0; i < n0; i++)
            if (g->nodes[i]->op == OP_SOFTMAX && !done[i])
                diag_note(o->d, g->nodes[i]->loc, "softmax not fused into attention: %s",
                          c.uses[i] == 1 ? "its result is not multiplied by V" : "its result has several readers");
    free(done);
    free(c.uses);
    if (fused) {
        ir_toposort(g);
        ir_compact(g);
    }
    return fused;
}
