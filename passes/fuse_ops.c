/* fuse_ops.c: the fuse-ops pass. Its first half recognises layernorm, RMSNorm, GELU (erf and tanh
 * forms), SiLU and sigmoid written out in primitives and replaces each by its one op; its second
 * half (fuse_loops.c) then decides which elementwise values are computed inside their consumer's loop.
 *
 * How the recognition reads an expression. Every one of these functions is a product: layernorm is
 * (x - mu) * rstd * gamma (+ beta), RMSNorm x * rstd * gamma, GELU 0.5 * x * (1 + erf(x / sqrt 2)),
 * SiLU x / (1 + exp(-x)). So a candidate root is flattened into a Prod: a constant coefficient times
 * factors, each in the numerator or the denominator, by walking down through mul, div, neg, float
 * casts and scalar constants (a constant may be broadcast by expand or cast). The order in which the
 * user wrote the product then no longer matters: `0.5 * x * (...)`, `x * (...) / 2`,
 * `(x - mu) / sqrt(v + eps) * g` and `g * ((x - mu) * rsqrt(v + eps))` give the same factors. The
 * factors are then classified: the standard deviation's inverse (rsqrt(v + eps), sqrt(...) in the
 * denominator, pow(..., -0.5)), the normalised value (x - mean(x), or x), the per-feature parameters
 * (anything of shape [D] or a scalar that does not depend on x: they multiply into gamma).
 * Constants are compared with a relative tolerance of 1e-6 (f32 rounding of 0.044715 or sqrt(2/pi)
 * is far below; 0.05 instead of 0.044715 is far above), wider for f16/bf16 graphs.
 *
 * What it expects: a canonicalized graph (the default pipeline runs canonicalize first), so that
 * `x - mu` written twice is one node. What it guarantees: nothing is fused when any intermediate
 * value (a mean, x - mu, the variance, erf(...)) is read by anything outside the expression or is an
 * output; reductions must be over the last axis with keepdims; the input and the result have one
 * float dtype and shape (a cast from x's dtype to f32 around an RMSNorm or layernorm, as Llama's
 * reference code does, is absorbed: the fused op computes in its own working precision).
 *
 * Candidate roots are visited from the last node to the first, so the largest expression is tried
 * before its parts (`(x - mu) * rstd * g + b` before `(x - mu) * rstd`). Rounds repeat until nothing
 * changes: `x * sigmoid(x)` becomes silu once the sigmoid's primitive form has become a sigmoid.
 */
#include "passes/passes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    MAX_FACTORS = 16, /* factors of one product */
    MAX_SET = 64,     /* nodes one fused op replaces */
};

typedef struct Ctx {
    Graph *g;
    int n0;      /* nodes that existed when the round began; newer ones are opaque */
    int *uses;   /* (n0) readers of each node, one per input slot, an output counting as one */
    char *dead;  /* (n0) replaced by a fusion of this round */
    double tol;  /* relative tolerance for constants, for the current root's dtype */
    int budget;  /* node visits left for depends_on */
} Ctx;

/* The nodes a match replaces (the root first), without repeats. */
typedef struct Set {
    int n;
    int full; /* more than MAX_SET: the match is given up */
    Node *node[MAX_SET];
} Set;

typedef struct Factor {
    Node *n;
    int den; /* in the denominator */
} Factor;

typedef struct Prod {
    double coef;
    int nf;
    Factor f[MAX_FACTORS];
} Prod;

/* ---------------------------------------------------------------- helpers */

static void set_add(Set *s, Node *n)
{
    for (int i = 0; i < s->n; i++)
        if (s->node[i] == n)
            return;
    if (s->n == MAX_SET)
        s->full = 1;
    else
        s->node[s->n++] = n;
}

static int in_set(const Set *s, const Node *n)
{
    for (int i = 0; i < s->n; i++)
        if (s->node[i] == n)
            return 1;
    return 0;
}

static int old(const Ctx *c, const Node *n)
{
    return n->id >= 0 && n->id < c->n0 && c->g->nodes[n->id] == n;
}

static int uses(const Ctx *c, const Node *n)
{
    return old(c, n) ? c->uses[n->id] : 1 << 20;
}

static void count_uses(Ctx *c)
{
    Graph *g = c->g;
    c->n0 = g->nnode;
    c->uses = ir_use_counts(g);
    c->dead = calloc((size_t)g->nnode + 1, 1);
    KILN_ASSERT(c->dead);
}

/* Whether every element of n is one known number: a constant whose elements are all equal, possibly
 * broadcast by expand or converted by cast. */
static int const_value_dt(const Node *n, double *v, DType *dt)
{
    while (n->op == OP_EXPAND || (n->op == OP_CAST && dtype_traits[n->dtype].is_float))
        n = n->in[0];
    if (n->op != OP_CONST)
        return 0;
    int64_t k = 1;
    for (int i = 0; i < n->rank; i++) {
        if (!dim_is_const(n->shape[i]))
            return 0;
        k *= dim_value(n->shape[i]);
    }
    if (k < 1 || k > 4096)
        return 0;
    double x = dtype_load(n->dtype, n->at.data, 0);
    for (int64_t i = 1; i < k; i++)
        if (dtype_load(n->dtype, n->at.data, (size_t)i) != x)
            return 0;
    *v = x;
    *dt = n->dtype;
    return 1;
}

static int const_value(const Node *n, double *v)
{
    DType dt;
    return const_value_dt(n, v, &dt);
}

static int near(const Ctx *c, double v, double want)
{
    return fabs(v - want) <= c->tol * fabs(want);
}

static int is_const_near(const Ctx *c, const Node *n, double want)
{
    double v;
    return const_value(n, &v) && near(c, v, want);
}

/* Whether x is `target` or computed from it; a graph too large to search counts as yes, which only
 * forgoes a fusion. */
static int depends_on(Ctx *c, const Node *x, const Node *target)
{
    if (x == target || --c->budget < 0)
        return 1;
    for (int i = 0; i < x->nin; i++)
        if (depends_on(c, x->in[i], target))
            return 1;
    return 0;
}

/* a and b compute the same value: one node, or two equal subtractions or casts of the same inputs
 * (for graphs that were not canonicalized). */
static int same_value(const Node *a, const Node *b)
{
    if (a == b)
        return 1;
    if (a->op != b->op || (a->op != OP_SUB && a->op != OP_CAST) || a->dtype != b->dtype || !ir_same_shape(a, b))
        return 0;
    for (int i = 0; i < a->nin; i++)
        if (a->in[i] != b->in[i])
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- products */

/* Adds n (raised to -1 when den) to p, descending into the nodes a product is made of. Interior
 * nodes other than `top` must have one reader; they go into s. Returns 0 when the product is too
 * long to hold. */
static int flatten_into(const Ctx *c, Node *n, int den, int top, Prod *p, Set *s)
{
    double v;
    if (const_value(n, &v)) {
        p->coef = den ? p->coef / v : p->coef * v;
        return 1;
    }
    int interior = top || (old(c, n) && uses(c, n) == 1);
    if (interior && (n->op == OP_MUL || n->op == OP_DIV) && dtype_traits[n->dtype].is_float) {
        set_add(s, n);
        return flatten_into(c, n->in[0], den, 0, p, s) &&
               flatten_into(c, n->in[1], n->op == OP_DIV ? !den : den, 0, p, s);
    }
    if (interior && n->op == OP_NEG) {
        set_add(s, n);
        p->coef = -p->coef;
        return flatten_into(c, n->in[0], den, 0, p, s);
    }
    /* a cast between float types inside a product (Llama's `(x.float() * rstd).half() * w`) */
    if (interior && n->op == OP_CAST && dtype_traits[n->dtype].is_float && dtype_traits[n->in[0]->dtype].is_float &&
        (n->in[0]->op == OP_MUL || n->in[0]->op == OP_DIV)) {
        set_add(s, n);
        return flatten_into(c, n->in[0], den, 0, p, s);
    }
    if (p->nf == MAX_FACTORS)
        return 0;
    p->f[p->nf++] = (Factor){n, den};
    return 1;
}

static int flatten(const Ctx *c, Node *n, Prod *p, Set *s)
{
    p->coef = 1;
    p->nf = 0;
    return flatten_into(c, n, 0, 1, p, s);
}


/* The exponent k when p is the monomial coef * x^k (x, x*x*x, pow(x, 3), x * pow(x, 2)); -1 when
 * it is not one. The pow nodes go into s. */
static int degree_in(const Prod *p, const Node *x, Set *s)
{
    int k = 0;
    for (int i = 0; i < p->nf; i++) {
        Node *f = p->f[i].n;
        double e;
        if (p->f[i].den)
            return -1;
        if (f == x)
            k++;
        else if (f->op == OP_POW && f->in[0] == x && const_value(f->in[1], &e) && e == floor(e) && e >= 1 && e <= 8) {
            set_add(s, f);
            k += (int)e;
        } else
            return -1;
    }
    return k;
}

/* Which side of the sum n = a + b is the constant `want`: returns the other side, or NULL. */
static Node *plus_const(const Ctx *c, Node *n, double want)
{
    if (n->op != OP_ADD)
        return NULL;
    for (int side = 0; side < 2; side++)
        if (is_const_near(c, n->in[side], want) && ir_same_shape(n->in[!side], n))
            return n->in[!side];
    return NULL;
}

/* ---------------------------------------------------------------- layernorm and RMSNorm */

/* mean(y) over the last axis with keepdims, also written sum(y) / D or sum(y) * (1/D). Returns y and
 * adds the nodes to s, or returns NULL. */
static Node *mean_of(const Ctx *c, Node *m, Set *s)
{
    if (m->op == OP_MEAN && m->at.keepdims && m->at.axis == m->rank - 1) {
        set_add(s, m);
        return m->in[0];
    }
    if (m->op != OP_DIV && m->op != OP_MUL)
        return NULL;
    for (int side = 0; side < (m->op == OP_MUL ? 2 : 1); side++) {
        Node *sum = m->in[side], *k = m->in[!side];
        if (sum->op != OP_SUM || !sum->at.keepdims || sum->at.axis != sum->rank - 1 || !ir_same_shape(sum, m))
            continue;
        Dim d = sum->in[0]->shape[sum->rank - 1];
        if (!dim_is_const(d) || dim_value(d) < 1)
            continue;
        if (is_const_near(c, k, m->op == OP_DIV ? (double)dim_value(d) : 1.0 / (double)dim_value(d))) {
            set_add(s, m);
            set_add(s, sum);
            return sum->in[0];
        }
    }
    return NULL;
}

/* y*y or pow(y, 2): returns y and adds the nodes to s, or returns NULL. */
static Node *square_of(const Ctx *c, Node *n, Set *s)
{
    if (n->op == OP_MUL && same_value(n->in[0], n->in[1])) {
        set_add(s, n);
        if (n->in[1] != n->in[0])
            set_add(s, n->in[1]);
        return n->in[0];
    }
    if (n->op == OP_POW && is_const_near(c, n->in[1], 2)) {
        set_add(s, n);
        return n->in[0];
    }
    return NULL;
}

/* What the square root of a normalisation reads. */
typedef struct Norm {
    Op op;     /* OP_LAYERNORM or OP_RMSNORM */
    Node *x;   /* the normalised tensor as the expression reads it (maybe a cast of the op's input) */
    Node *mu;  /* layernorm: the mean subtracted in the variance, or NULL */
    double eps;
} Norm;

/* The shortest decimal that the constant's dtype rounds to v: eps=1e-05 rather than 9.99999975e-06. */
static double short_decimal(double v, DType dt)
{
    for (int prec = 1; prec <= 17; prec++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        double w = strtod(buf, NULL);
        if (dtype_round(dt, w) == v)
            return w;
    }
    return v;
}

/* z = v + eps (or v alone: eps 0) with v the variance, mean((x - mean(x))^2) or mean(x^2) - mean(x)^2
 * (layernorm), or the mean square mean(x^2) (RMSNorm). */
static int read_variance(const Ctx *c, Node *z, Norm *nm, Set *s)
{
    Node *v = z;
    nm->eps = 0;
    if (z->op == OP_ADD) {
        for (int side = 0; side < 2; side++) {
            DType dt;
            if (const_value_dt(z->in[side], &nm->eps, &dt)) {
                nm->eps = short_decimal(nm->eps, dt);
                v = z->in[!side];
                break;
            }
        }
        if (v == z || !(nm->eps >= 0) || isinf(nm->eps) || !ir_same_shape(v, z))
            return 0;
        set_add(s, z);
    }
    set_add(s, v);
    if (v->op == OP_SUB) { /* E[x^2] - E[x]^2 */
        Node *sq = mean_of(c, v->in[0], s), *x = sq ? square_of(c, sq, s) : NULL;
        Node *mu = x ? square_of(c, v->in[1], s) : NULL, *mx = mu ? mean_of(c, mu, s) : NULL;
        if (!mx || !same_value(mx, x))
            return 0;
        *nm = (Norm){OP_LAYERNORM, x, mu, nm->eps};
        return 1;
    }
    Node *sq = mean_of(c, v, s), *y = sq ? square_of(c, sq, s) : NULL;
    if (!y)
        return 0;
    if (y->op == OP_SUB) {
        Set tmp = *s;
        Node *m = mean_of(c, y->in[1], &tmp);
        if (m && same_value(m, y->in[0])) {
            *s = tmp;
            set_add(s, y);
            *nm = (Norm){OP_LAYERNORM, y->in[0], y->in[1], nm->eps};
            return 1;
        }
    }
    *nm = (Norm){OP_RMSNORM, y, NULL, nm->eps};
    return 1;
}

/* Whether factor f is 1/sqrt(z): rsqrt(z), 1/sqrt(z), pow(z, -0.5), 1/pow(z, 0.5). Returns z. */
static Node *rstd_arg(const Ctx *c, const Factor *f)
{
    Node *n = f->n;
    if ((!f->den && n->op == OP_RSQRT) || (f->den && n->op == OP_SQRT))
        return n->in[0];
    if (n->op == OP_POW && is_const_near(c, n->in[1], f->den ? 0.5 : -0.5))
        return n->in[0];
    return NULL;
}

/* Whether factor f is the normalised value: x (RMSNorm) or x - mean(x) (layernorm). Its nodes go
 * into s. */
static int is_normalised(const Ctx *c, Node *f, const Norm *nm, Set *s)
{
    if (nm->op == OP_RMSNORM) {
        if (f != nm->x && same_value(f, nm->x))
            set_add(s, f);
        return same_value(f, nm->x);
    }
    if (f->op != OP_SUB || !same_value(f->in[0], nm->x))
        return 0;
    Set tmp = *s;
    set_add(&tmp, f);
    if (f->in[0] != nm->x)
        set_add(&tmp, f->in[0]);
    if (f->in[1] != nm->mu) {
        Node *m = mean_of(c, f->in[1], &tmp);
        if (!m || !same_value(m, nm->x))
            return 0;
    }
    *s = tmp;
    return 1;
}

/* A per-feature parameter of a norm over x: a scalar or a vector along the last axis (its other
 * dimensions 1), of a float dtype, not computed from x. */
static int is_param(Ctx *c, Node *p, const Node *x)
{
    if (!dtype_traits[p->dtype].is_float || p->rank > x->rank)
        return 0;
    for (int i = 0; i < p->rank - 1; i++)
        if (!dim_eq(p->shape[i], dim_const(1)))
            return 0;
    Dim last = p->rank ? p->shape[p->rank - 1] : dim_const(1);
    if (!dim_eq(last, dim_const(1)) && !dim_eq(last, x->shape[x->rank - 1]))
        return 0;
    c->budget = 20000;
    return !depends_on(c, p, x);
}

static Node *scalar_node(Graph *g, DType dt, double v, SrcLoc loc)
{
    return ir_scalar(g, dt, v, loc);
}

/* A parameter as a scalar (rank 0) or a vector [d] of dtype dt. */
static Node *as_param(Graph *g, Node *p, DType dt, Dim d, SrcLoc loc)
{
    if (p->dtype != dt)
        p = ir_cast(g, p, dt, loc);
    int scalar = p->rank == 0 || dim_eq(p->shape[p->rank - 1], dim_const(1));
    if (scalar && p->rank)
        return ir_reshape(g, p, 0, NULL, loc, NULL);
    if (!scalar && p->rank != 1)
        return ir_reshape(g, p, 1, &d, loc, NULL);
    return p;
}

/* a op b for parameters (scalars or [d]). */
static Node *param_op(Graph *g, Op op, Node *a, Node *b, Dim d, SrcLoc loc)
{
    (void)d; /* scalars and [d] broadcast to [d] */
    return ir_binary(g, op, a, b, loc, NULL);
}

/* A scalar or [d] parameter broadcast to [d], as the frontend's layernorm() makes its missing bias. */
static Node *to_vector(Graph *g, Node *p, Dim d, SrcLoc loc)
{
    if (p->rank == 1)
        return p;
    return ir_expand(g, p, 1, &d, loc, NULL);
}

/* Whether the nodes of s other than the root are read only inside s (no output either), none was
 * replaced earlier in this round, and none is the fused op's input x. */
static int self_contained(const Ctx *c, const Set *s, const Node *root, const Node *x)
{
    if (s->full)
        return 0;
    for (int i = 0; i < s->n; i++) {
        const Node *n = s->node[i];
        if (!old(c, n) || c->dead[n->id] || n == x)
            return 0;
        if (n == root)
            continue;
        int inside = 0;
        for (int k = 0; k < s->n; k++)
            for (int j = 0; j < s->node[k]->nin; j++)
                inside += s->node[k]->in[j] == n;
        if (inside != c->uses[n->id])
            return 0;
    }
    return 1;
}

static void kill(Ctx *c, const Set *s)
{
    for (int i = 0; i < s->n; i++)
        c->dead[s->node[i]->id] = 1;
}

/* root = prod [+ beta] with prod = (x - mean(x)) * rstd * params (layernorm) or x * rstd * params
 * (RMSNorm); prod being the side `side` of an addition root. Returns the fused node, or NULL. */
static Node *try_norm_side(Ctx *c, Node *root, int side)
{
    Graph *g = c->g;
    int add = root->op == OP_ADD;
    Node *prod = add ? root->in[side] : root, *beta = add ? root->in[!side] : NULL;
    Set s = {0};
    Prod p;
    set_add(&s, root);
    if (add && (uses(c, prod) != 1 || !ir_same_shape(prod, root)))
        return NULL;
    if (!flatten(c, prod, &p, &s))
        return NULL;
    /* exactly one factor is 1/sqrt(variance + eps) */
    int rstd = -1;
    for (int i = 0; i < p.nf; i++)
        if (rstd_arg(c, &p.f[i])) {
            if (rstd >= 0)
                return NULL;
            rstd = i;
        }
    if (rstd < 0)
        return NULL;
    Norm nm;
    set_add(&s, p.f[rstd].n);
    if (!read_variance(c, rstd_arg(c, &p.f[rstd]), &nm, &s))
        return NULL;
    if (beta && nm.op == OP_RMSNORM)
        return NULL; /* x * rstd * g + b is no RMSNorm: the product alone is tried as a root later */
    /* exactly one factor, in the numerator, is the normalised value */
    int main = -1;
    for (int i = 0; i < p.nf && main < 0; i++)
        if (i != rstd && !p.f[i].den && is_normalised(c, p.f[i].n, &nm, &s))
            main = i;
    if (main < 0)
        return NULL;
    /* x itself stays, unless it is a cast to a wider type that the fused op makes unnecessary */
    Node *x = nm.x;
    if (x->dtype != root->dtype) {
        if (x->op != OP_CAST || x->in[0]->dtype != root->dtype)
            return NULL;
        set_add(&s, x);
        x = x->in[0];
    }
    if (!dtype_traits[x->dtype].is_float || x->rank < 1 || !ir_same_shape(x, root) || x->dtype != root->dtype)
        return NULL;
    /* every other factor is a parameter: it multiplies (or divides) gamma */
    for (int i = 0; i < p.nf; i++)
        if (i != main && i != rstd && (!is_param(c, p.f[i].n, x) || in_set(&s, p.f[i].n)))
            return NULL;
    if (beta && (!is_param(c, beta, x) || in_set(&s, beta)))
        return NULL;
    if (!self_contained(c, &s, root, x))
        return NULL;

    /* gamma = coef * (numerator parameters) / (denominator parameters); missing: ones */
    SrcLoc loc = root->loc;
    DType dt = x->dtype;
    Dim d = x->shape[x->rank - 1];
    Node *gm = NULL;
    for (int i = 0; i < p.nf; i++)
        if (i != main && i != rstd && !p.f[i].den) {
            Node *q = as_param(g, p.f[i].n, dt, d, loc);
            gm = gm ? param_op(g, OP_MUL, gm, q, d, loc) : q;
        }
    if (p.coef != 1) {
        Node *k = scalar_node(g, dt, p.coef, loc);
        gm = gm ? param_op(g, OP_MUL, gm, k, d, loc) : k;
    }
    for (int i = 0; i < p.nf; i++)
        if (i != main && i != rstd && p.f[i].den)
            gm = param_op(g, OP_DIV, gm ? gm : scalar_node(g, dt, 1, loc), as_param(g, p.f[i].n, dt, d, loc), d, loc);
    Node *in[3] = {x, to_vector(g, gm ? gm : scalar_node(g, dt, 1, loc), d, loc), NULL};
    if (nm.op == OP_LAYERNORM) /* missing beta: zeros */
        in[2] = to_vector(g, beta ? as_param(g, beta, dt, d, loc) : scalar_node(g, dt, 0, loc), d, loc);
    Node *n = ir_norm(g, nm.op, x, in[1], in[2], nm.eps, loc, NULL);
    kill(c, &s);
    return n;
}

static Node *try_norm(Ctx *c, Node *root)
{
    Node *n = NULL;
    switch (root->op) {
    case OP_ADD:
        if (!(n = try_norm_side(c, root, 0)))
            n = try_norm_side(c, root, 1);
        return n;
    case OP_MUL:
    case OP_DIV:
    case OP_CAST:
        return try_norm_side(c, root, 0);
    default:
        return NULL;
    }
}

/* ---------------------------------------------------------------- GELU, SiLU, sigmoid */

/* Whether x and the root are one float tensor type, and the match can be taken. */
static int elementwise_ok(const Ctx *c, const Set *s, const Node *root, const Node *x)
{
    return dtype_traits[x->dtype].is_float && x->dtype == root->dtype && ir_same_shape(x, root) &&
           self_contained(c, s, root, x);
}

/* inner = sqrt(2/pi) * (x + 0.044715 x^3), also as sqrt(2/pi) * x * (1 + 0.044715 x^2). */
static int tanh_arg(const Ctx *c, Node *u, const Node *x, Set *s)
{
    Prod q, r;
    if (!flatten(c, u, &q, s) || !near(c, q.coef, sqrt(2 / M_PI)))
        return 0;
    Node *b = NULL;
    int deg = 0;
    if (q.nf == 1 && !q.f[0].den) {
        b = q.f[0].n;
        deg = 3;
    } else if (q.nf == 2 && !q.f[0].den && !q.f[1].den && (q.f[0].n == x || q.f[1].n == x)) {
        b = q.f[q.f[0].n == x].n;
        deg = 2;
    } else
        return 0;
    Node *cube = NULL;
    if (deg == 3 && b->op == OP_ADD && ir_same_shape(b->in[0], b->in[1]))
        cube = b->in[0] == x ? b->in[1] : b->in[1] == x ? b->in[0] : NULL;
    else if (deg == 2)
        cube = plus_const(c, b, 1);
    if (!cube)
        return 0;
    set_add(s, b);
    return flatten(c, cube, &r, s) && near(c, r.coef, 0.044715) && degree_in(&r, x, s) == deg;
}

/* 0.5 * x * (1 + erf(x / sqrt 2)) and 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), the
 * factors in any order, 0.5 also as a division by 2, 1/sqrt 2 as a multiplication. */
static Node *try_gelu(Ctx *c, Node *root)
{
    if (root->op != OP_MUL && root->op != OP_DIV)
        return NULL;
    Set s0 = {0};
    Prod p;
    if (!flatten(c, root, &p, &s0) || p.nf != 2 || p.f[0].den || p.f[1].den || !near(c, p.coef, 0.5))
        return NULL;
    for (int a = 0; a < 2; a++) {
        Node *x = p.f[!a].n, *e = plus_const(c, p.f[a].n, 1);
        if (!e || (e->op != OP_ERF && e->op != OP_TANH))
            continue;
        Set s = s0;
        set_add(&s, p.f[a].n);
        set_add(&s, e);
        int approx = e->op == OP_TANH;
        if (approx) {
            if (!tanh_arg(c, e->in[0], x, &s))
                continue;
        } else {
            Prod q;
            if (!flatten(c, e->in[0], &q, &s) || q.nf != 1 || q.f[0].den || q.f[0].n != x ||
                !near(c, q.coef, M_SQRT1_2))
                continue;
        }
        if (!elementwise_ok(c, &s, root, x))
            continue;
        Node *n = ir_gelu(c->g, x, approx, root->loc, NULL);
        kill(c, &s);
        return n;
    }
    return NULL;
}

/* d = 1 + exp(-x): returns x and adds the nodes to s, or NULL. */
static Node *one_plus_exp_neg(const Ctx *c, Node *d, Set *s)
{
    Node *e = plus_const(c, d, 1);
    Prod q;
    if (!e || e->op != OP_EXP)
        return NULL;
    set_add(s, d);
    set_add(s, e);
    if (!flatten(c, e->in[0], &q, s) || q.nf != 1 || q.f[0].den || !near(c, q.coef, -1))
        return NULL;
    return q.f[0].n;
}

/* x * sigmoid(x), x / (1 + exp(-x)) -> silu(x); 1 / (1 + exp(-x)) -> sigmoid(x). */
static Node *try_silu(Ctx *c, Node *root)
{
    if (root->op != OP_MUL && root->op != OP_DIV)
        return NULL;
    Set s = {0};
    Prod p;
    if (!flatten(c, root, &p, &s) || !near(c, p.coef, 1))
        return NULL;
    Node *x = NULL;
    Op op = OP_SILU;
    if (p.nf == 1 && p.f[0].den) {
        x = one_plus_exp_neg(c, p.f[0].n, &s);
        op = OP_SIGMOID;
    } else if (p.nf == 2 && p.f[0].den != p.f[1].den) {
        int num = p.f[1].den ? 0 : 1;
        x = p.f[num].n;
        if (one_plus_exp_neg(c, p.f[!num].n, &s) != x)
            return NULL;
    } else if (p.nf == 2 && !p.f[0].den && !p.f[1].den) {
        for (int a = 0; a < 2 && !x; a++)
            if (p.f[a].n->op == OP_SIGMOID && p.f[a].n->in[0] == p.f[!a].n) {
                x = p.f[!a].n;
                set_add(&s, p.f[a].n);
            }
    }
    if (!x || !elementwise_ok(c, &s, root, x))
        return NULL;
    Node *n = ir_unary(c->g, op, x, root->loc, NULL);
    kill(c, &s);
    return n;
}

/* ---------------------------------------------------------------- the pass */

/* The relative tolerance for constants in a graph of dtype dt: what its rounding allows, at least 1e-6. */
static double tolerance(DType dt)
{
    switch (dt) {
    case DT_F16: return 2e-3;
    case DT_BF16: return 1e-2;
    default: return 1e-6;
    }
}

int pass_fuse_ops(Graph *g, const PassOptions *o)
{
    int fused = 0;
    for (int round = 0; round < 8; round++) {
        Ctx c = {.g = g};
        int before = fused;
        count_uses(&c);
        for (int i = c.n0 - 1; i >= 0; i--) {
            Node *r = g->nodes[i], *n;
            if (c.dead[i] || !dtype_traits[r->dtype].is_float)
                continue;
            c.tol = tolerance(r->dtype);
            ir_set_origin(g, r); /* the fused node stays in the layer and scope of the root it replaces */
            if ((n = try_norm(&c, r)) || (n = try_gelu(&c, r)) || (n = try_silu(&c, r))) {
                ir_replace_uses(g, r, n);
                fused++;
            }
        }
        ir_set_origin(g, NULL);
        free(c.uses);
        free(c.dead);
        if (fused == before)
            break;
        ir_toposort(g);
        ir_compact(g);
    }
    return fused + fuse_loops(g, o);
}
