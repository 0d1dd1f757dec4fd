/* prune_tokens.c: token merging (ToMe, PiToMe) and [CLS]-attention pruning (EViT) in vision transformers.
 *
 * Off unless --prune-tokens gives a method (PassOptions.prune_tokens):
 *   tome:r=8                 ToMe, r tokens merged in every layer
 *   tome:r=8,16,4            r per layer (layers past the list: 0)
 *   tome:r=8,schedule=decreasing   ToMe's parse_r((r, -1)): 2r in the first layer down to 0 in the last
 *   tome:r=8,inflect=-0.5    parse_r((r, inflect)) for any inflection in [-1, 1]
 *   tome:flops=0.4           the smallest constant r whose merging removes that share of the matmul
 *                            and attention FLOPs (the largest r when no r does)
 *   pitome:ratio=0.9         PiToMe as the authors' ViT patch sets it up: every layer keeps that share of
 *                            the tokens after [CLS] (r = floor(n - n * ratio)), margins 0.75 - 0.75 l / L,
 *                            ToMe's matching between energy ranks (bsm) in the first ceil(L / 2) layers,
 *                            no proportional attention (prop=on adds it)
 *   evit:keep=0.7,layers=3,6,9   EViT at those layers (0-based): keep ceil(keep * (N - 1)) tokens
 *   ...,cls=none             the model has no [CLS] token to protect (tome only)
 *   ...,prop=off             ToMe without proportional attention
 *
 * How. ViT token counts are static, so the pass rewrites the graph once, layer by layer, and every
 * later shape stays static. A layer is an ATTENTION node (fuse-attention made it; this pass runs after
 * it and fuse-ops, whose inline marks stay valid: only token counts change) followed, through a chain of single-use nodes (the heads' transpose, the output projection and
 * its bias), by the residual add x1 = x + attn(...), which must feed a layernorm (the MLP's). At x1:
 *   ToMe   metric = mean over heads of the attention's keys (ToMe's k.mean(1)); dest = tome_match(metric)
 *          (r, cls); x1 -> token_merge(x1, dest, size) (mean: the size-weighted average, merge_wavg);
 *          size -> token_merge(size, dest) (sum). size starts as ones, [..., T, 1]. Every attention
 *          after the first merge gets log(size) as its mask, [..., 1, 1, T]: proportional attention,
 *          the same additive term for every query, which the fused attention kernel reads per key.
 *   PiToMe as ToMe with pitome_match (its energy-ordered matching) for tome_match.
 *   EViT   a = mean over heads of cls_probs(attn) (the [CLS] query's probabilities, one row per head,
 *          which the fused attention kernel writes as it computes that row: never the T x T matrix,
 *          no second pass over the keys); dest = evit_select(a) (keep); the fused token's weights are
 *          its tokens' attention, the kept tokens' 1; x1 -> token_merge(x1, dest, w) (sum).
 * Then every node downstream of x1 has its token axis resized: the axis is followed through
 * elementwise ops, norms, matmuls, reshapes (the token axis must stay a whole axis), transposes, slices
 * of other axes and attention; a slice of the token axis that stays inside the first tokens (ViT's
 * x[:, 0], the [CLS] token, which ToMe and EViT keep first) ends it. Anything else (a concat along
 * the tokens, a gather, a T x T matrix, a constant of T rows) leaves the layer alone, said by
 * --explain prune-tokens, as are layers of models without the pattern.
 *
 * [CLS]: the first block's residual stream, followed back through adds and reshapes, must be a concat
 * along the token axis whose first part is one token computed from weights only; otherwise no token is
 * protected (and EViT refuses). r is capped at (tokens - protected) / 2 as ToMe caps it; the report
 * says so.
 *
 * The report (PassOptions.report): per layer tokens in and out, and the matmul and attention FLOPs of
 * the layer before and after; then the model's.
 */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAXL = 256 };

typedef enum Method { M_TOME, M_PITOME, M_EVIT } Method;

typedef struct Spec {
    Method method;
    int nr;           /* entries of r[] given (tome:r=a,b,...) */
    int r[MAXL];
    int have_inflect;
    double inflect;
    double flops;     /* > 0: the share of FLOPs to remove */
    double ratio;     /* pitome: the share of tokens kept per layer */
    double keep;      /* evit */
    int nlayers;      /* evit layers= */
    int layers[MAXL];
    int cls_none;
    int prop_off;
} Spec;

typedef struct Block {
    Node *attn;   /* the block's ATTENTION */
    Node *x1;     /* x + attention: where tokens are merged */
    Node *xend;   /* x1 + mlp(...): the block's output (the FLOPs of a layer end here) */
    const char *why; /* not NULL: the layer is left alone, and why */
} Block;

typedef struct Ctx {
    Graph *g;
    const PassOptions *o;
    int explain;
    Spec s;
    int nb;
    Block b[MAXL];
    int cls;      /* the model has a [CLS] token at index 0 that is protected */
    int *tax;     /* (nnode) the token axis of each node downstream of the merge point, -1: none */
} Ctx;

/* ---------------------------------------------------------------- the option */

static int spec_error(Ctx *c, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    diag_fatal(c->o->d, "--prune-tokens: %s", msg);
    return -1;
}

static int parse_int(const char *s, size_t n, int *v)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *e;
    long x = strtol(buf, &e, 10);
    if (*e || x < 0 || x > 1000000)
        return 0;
    *v = (int)x;
    return 1;
}

static int parse_double(const char *s, size_t n, double *v)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *e;
    *v = strtod(buf, &e);
    return !*e && isfinite(*v);
}

static int parse_spec(Ctx *c, const char *opt)
{
    Spec *s = &c->s;
    memset(s, 0, sizeof *s);
    const char *p;
    if (!strncmp(opt, "tome:", 5)) {
        s->method = M_TOME;
        p = opt + 5;
    } else if (!strncmp(opt, "pitome:", 7)) {
        s->method = M_PITOME;
        s->prop_off = 1; /* the authors' ViT patch calls the attention without the sizes */
        p = opt + 7;
    } else if (!strncmp(opt, "evit:", 5)) {
        s->method = M_EVIT;
        p = opt + 5;
    } else {
        return spec_error(c, "'%s' names no method (tome:..., pitome:... or evit:...)", opt);
    }
    const char *key = NULL; /* the key a bare value continues (r=8,16 and layers=3,6) */
    size_t keylen = 0;
    int have_r = 0, have_keep = 0, decreasing = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        const char *val = eq ? eq + 1 : p;
        size_t vlen = eq ? len - (size_t)(eq + 1 - p) : len;
        if (eq) {
            key = p;
            keylen = (size_t)(eq - p);
        } else if (!key || !((keylen == 1 && !strncmp(key, "r", 1)) || (keylen == 6 && !strncmp(key, "layers", 6)))) {
            return spec_error(c, "'%s': expected KEY=VALUE", p);
        }
#define KEY(k) (keylen == strlen(k) && !strncmp(key, k, keylen))
        int iv;
        double dv;
        if (KEY("r") && s->method == M_TOME) {
            if (s->nr == MAXL || !parse_int(val, vlen, &iv))
                return spec_error(c, "r takes whole numbers >= 0 ('%s')", val);
            s->r[s->nr++] = iv;
            have_r = 1;
        } else if (KEY("schedule") && s->method == M_TOME) {
            if (vlen == 10 && !strncmp(val, "decreasing", 10))
                decreasing = 1;
            else if (!(vlen == 8 && !strncmp(val, "constant", 8)))
                return spec_error(c, "schedule is constant or decreasing ('%s')", val);
        } else if (KEY("inflect") && s->method == M_TOME) {
            if (!parse_double(val, vlen, &dv) || dv < -1 || dv > 1)
                return spec_error(c, "inflect is a number in [-1, 1] ('%s')", val);
            s->have_inflect = 1;
            s->inflect = dv;
        } else if (KEY("flops") && s->method == M_TOME) {
            if (!parse_double(val, vlen, &dv) || dv <= 0 || dv >= 1)
                return spec_error(c, "flops is the share of FLOPs to remove, in (0, 1) ('%s')", val);
            s->flops = dv;
        } else if (KEY("ratio") && s->method == M_PITOME) {
            if (!parse_double(val, vlen, &dv) || dv < 0.5 || dv > 1)
                return spec_error(c, "ratio is the share of tokens kept per layer, in [0.5, 1] ('%s')", val);
            s->ratio = dv;
            have_keep = 1;
        } else if (KEY("keep") && s->method == M_EVIT) {
            if (!parse_double(val, vlen, &dv) || dv <= 0 || dv > 1)
                return spec_error(c, "keep is the share of tokens kept, in (0, 1] ('%s')", val);
            s->keep = dv;
            have_keep = 1;
        } else if (KEY("layers") && s->method == M_EVIT) {
            if (s->nlayers == MAXL || !parse_int(val, vlen, &iv))
                return spec_error(c, "layers takes layer numbers from 0 ('%s')", val);
            s->layers[s->nlayers++] = iv;
        } else if (KEY("cls")) {
            if (!(vlen == 4 && !strncmp(val, "none", 4)) && !(vlen == 4 && !strncmp(val, "auto", 4)))
                return spec_error(c, "cls is none or auto ('%s')", val);
            s->cls_none = val[0] == 'n';
        } else if (KEY("prop") && s->method != M_EVIT) {
            if (!(vlen == 3 && !strncmp(val, "off", 3)) && !(vlen == 2 && !strncmp(val, "on", 2)))
                return spec_error(c, "prop is on or off ('%s')", val);
            s->prop_off = val[1] == 'f';
        } else {
            char k[64];
            snprintf(k, sizeof k, "%.*s", (int)(keylen < 60 ? keylen : 60), key);
            return spec_error(c, s->method == M_TOME     ? "tome takes r, schedule, inflect, flops, cls and prop, not '%s'"
                                 : s->method == M_PITOME ? "pitome takes ratio, cls and prop, not '%s'"
                                                         : "evit takes keep, layers and cls, not '%s'",
                              k);
        }
#undef KEY
        p += len + (e != NULL);
    }
    if (s->method == M_TOME) {
        if (decreasing) {
            s->have_inflect = 1;
            s->inflect = -1;
        }
        if (!have_r && s->flops == 0)
            return spec_error(c, "%s: tome needs r= or flops=", opt);
        if (have_r && s->flops > 0)
            return spec_error(c, "%s: give r= or flops=, not both", opt);
        if (s->have_inflect && s->nr > 1)
            return spec_error(c, "%s: a schedule takes one r, not a list", opt);
    } else if (s->method == M_PITOME) {
        if (!have_keep)
            return spec_error(c, "%s: pitome needs ratio=", opt);
    } else {
        if (!have_keep || s->nlayers == 0)
            return spec_error(c, "%s: evit needs keep= and layers=", opt);
    }
    return 0;
}

/* ToMe's parse_r(num_layers, r): an int is (r, 0); (r, inflect) runs from int(r * (1 - inflect)) to
 * 2r minus that, linearly, truncated; a list is padded with zeros. */
static void tome_schedule(const Spec *s, int L, int r0, int *r)
{
    if (s->nr > 1) {
        for (int l = 0; l < L; l++)
            r[l] = l < s->nr ? s->r[l] : 0;
        return;
    }
    double inflect = s->have_inflect ? s->inflect : 0;
    int min_val = (int)(r0 * (1.0 - inflect));
    int max_val = 2 * r0 - min_val;
    double step = L > 1 ? (double)(max_val - min_val) / (L - 1) : 0;
    for (int l = 0; l < L; l++)
        r[l] = (int)(min_val + step * l);
}

/* ---------------------------------------------------------------- finding the blocks */

static void explain(Ctx *c, const Node *at, const char *fmt, int layer, const char *why)
{
    if (c->explain)
        diag_note(c->o->d, at ? at->loc : (SrcLoc){0, 0, 0}, fmt, layer, why);
}

/* Whether target is x or computed from x (depth-first, marks in seen[]). */
static int reaches(const Node *from, const Node *target, char *seen)
{
    if (from == target)
        return 1;
    if (seen[from->id])
        return 0;
    seen[from->id] = 1;
    for (int j = 0; j < from->nin; j++)
        if (reaches(from->in[j], target, seen))
            return 1;
    return 0;
}

static int is_ancestor(Graph *g, const Node *anc, const Node *of)
{
    char *seen = calloc((size_t)g->nnode + 1, 1);
    KILN_ASSERT(seen);
    int r = reaches(of, anc, seen);
    free(seen);
    return r;
}

/* The users of node n (at most max), and how many there are. */
static int users(Graph *g, const Node *n, Node **out, int max)
{
    int k = 0;
    for (int i = 0; i < g->nnode; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            if (g->nodes[i]->in[j] == n) {
                if (k < max)
                    out[k] = g->nodes[i];
                k++;
            }
    for (int i = 0; i < g->noutput; i++)
        if (g->outputs[i].node == n)
            k += 1000; /* an output: not a chain */
    return k;
}

static void find_block(Ctx *c, Block *b)
{
    Graph *g = c->g;
    Node *a = b->attn, *cur = a, *u[4];
    if (a->nin > 3 || a->at.causal) {
        b->why = "its attention has a mask or is causal (an encoder's is neither)";
        return;
    }
    for (int step = 0; step < 16; step++) {
        if (users(g, cur, u, 4) != 1) {
            b->why = "the attention's result is used more than once before the residual add";
            return;
        }
        Node *n = u[0];
        if (n->op == OP_ADD) {
            Node *other = n->in[0] == cur ? n->in[1] : n->in[0];
            if (other != cur && other->op != OP_WEIGHT && other->op != OP_CONST && is_ancestor(g, other, a)) {
                b->x1 = n;
                break;
            }
        }
        cur = n;
    }
    if (!b->x1) {
        b->why = "no residual add after the attention";
        return;
    }
    int nu = users(g, b->x1, u, 4), ln = 0;
    for (int k = 0; k < nu && k < 4; k++) {
        ln |= u[k]->op == OP_LAYERNORM || u[k]->op == OP_RMSNORM;
        if (u[k]->op == OP_ADD)
            b->xend = u[k];
    }
    if (nu > 4 || !ln) {
        b->why = "the residual stream after the attention does not go to a layernorm (the MLP's)";
        return;
    }
    Node *x1 = b->x1, *q = a->in[0], *k = a->in[1];
    int R = x1->rank;
    if (x1->dtype != DT_F32 || R < 2 || !dim_is_const(x1->shape[R - 2])) {
        b->why = "the residual stream is not f32 [..., tokens, features] with a static token count";
        return;
    }
    if (q->rank < 2 || k->rank < 2 || !dim_eq(q->shape[q->rank - 2], x1->shape[R - 2]) ||
        !dim_eq(k->shape[k->rank - 2], x1->shape[R - 2])) {
        b->why = "the attention's queries and keys are not the residual stream's tokens";
        return;
    }
    /* the keys' batch dims (heads aside) must be the residual stream's */
    int kb = k->rank >= 3 ? k->rank - 3 : 0;
    if (kb != R - 2) {
        b->why = "the keys' batch dimensions are not the residual stream's";
        return;
    }
    for (int i = 0; i < kb; i++)
        if (!dim_eq(k->shape[i], x1->shape[i])) {
            b->why = "the keys' batch dimensions are not the residual stream's";
            return;
        }
}

/* Whether n is computed from weights and constants only. */
static int constant_only(const Node *n, int depth)
{
    if (n->op == OP_INPUT || depth > 32)
        return 0;
    for (int j = 0; j < n->nin; j++)
        if (!constant_only(n->in[j], depth + 1))
            return 0;
    return 1;
}

/* The [CLS] token: x (the first block's residual input), back through adds and reshapes that keep
 * the token axis, is a concat along it whose first part is one token made of weights alone. */
static int find_cls(const Node *x, int axis, int depth)
{
    if (depth > 16 || axis < 0 || axis >= x->rank)
        return 0;
    if (x->op == OP_CONCAT)
        return x->at.axis == axis && dim_eq(x->in[0]->shape[axis], dim_const(1)) && constant_only(x->in[0], 0);
    if (x->op == OP_ADD) {
        for (int j = 0; j < 2; j++) {
            const Node *p = x->in[j];
            int ax = axis - (x->rank - p->rank);
            if (ax >= 0 && dim_eq(p->shape[ax], x->shape[axis]) && !constant_only(p, 0))
                return find_cls(p, ax, depth + 1);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- following the token axis */

/* The token axis of n given its inputs' (c->tax); -1 when n has none (no input carries one, or it
 * ends here), -2 when n's use of the tokens cannot be resized (why says how). T is the token count
 * now (before the resize). */
static int node_tax(Ctx *c, const Node *n, int64_t T, const char **why)
{
    int ax = -1, any = 0;
    for (int j = 0; j < n->nin; j++)
        if (c->tax[n->in[j]->id] >= 0)
            any = 1;
    if (!any)
        return -1;
    const Node *x = n->in[0];
    int xa = c->tax[x->id];
    int flags = op_info[n->op].flags;
    if (flags & F_EW) {
        for (int j = 0; j < n->nin; j++) {
            const Node *p = n->in[j];
            int pa = c->tax[p->id];
            int off = n->rank - p->rank;
            if (pa >= 0) {
                if (ax >= 0 && ax != pa + off) {
                    *why = "an elementwise op mixes two token axes";
                    return -2;
                }
                ax = pa + off;
            }
        }
        for (int j = 0; j < n->nin; j++) {
            const Node *p = n->in[j];
            int pa = ax - (n->rank - p->rank);
            if (c->tax[p->id] < 0 && pa >= 0 && !dim_eq(p->shape[pa], dim_const(1))) {
                *why = "a value of the token count that does not come from the tokens (a constant or weight of T rows)";
                return -2;
            }
        }
        return ax;
    }
    switch (n->op) {
    case OP_SUM: case OP_MEAN: case OP_RMAX: case OP_RMIN:
        if (n->at.axis == xa) {
            *why = "a reduction over the tokens";
            return -2;
        }
        return n->at.keepdims || n->at.axis > xa ? xa : xa - 1;
    case OP_SOFTMAX: case OP_LOG_SOFTMAX:
        if (n->at.axis == xa) {
            *why = "a softmax over the tokens outside a fused attention";
            return -2;
        }
        return xa;
    case OP_LAYERNORM: case OP_RMSNORM:
        if (xa == x->rank - 1 || (n->nin > 1 && c->tax[n->in[1]->id] >= 0)) {
            *why = "a norm over the tokens";
            return -2;
        }
        return xa;
    case OP_MATMUL: {
        const Node *y = n->in[1];
        int ya = c->tax[y->id];
        if (ya >= 0 || xa < 0 || xa == x->rank - 1) {
            *why = "a matmul that contracts or pairs the tokens (a T x T matrix)";
            return -2;
        }
        return xa + (n->rank - x->rank);
    }
    case OP_ATTENTION: {
        const Node *k = n->in[1], *v = n->in[2];
        if (xa != x->rank - 2 || c->tax[k->id] != k->rank - 2 || c->tax[v->id] != v->rank - 2 || n->nin > 3) {
            *why = "an attention whose queries, keys and values are not all token-indexed";
            return -2;
        }
        return n->rank - 2;
    }
    case OP_TRANSPOSE:
        for (int i = 0; i < n->rank; i++)
            if (n->at.perm[i] == xa)
                return i;
        return -2;
    case OP_EXPAND:
        return xa + (n->rank - x->rank);
    case OP_RESHAPE: {
        /* the dims before the token axis must multiply to those before one output axis of size T */
        Dim pre = dim_const(1), opre = dim_const(1);
        for (int i = 0; i < xa; i++)
            if (!dim_mul(pre, x->shape[i], &pre))
                break;
        for (int k = 0; k < n->rank; k++) {
            if (dim_eq(opre, pre) && dim_eq(n->shape[k], dim_const(T)))
                return k;
            if (!dim_mul(opre, n->shape[k], &opre))
                break;
        }
        *why = "a reshape that merges the token axis with another";
        return -2;
    }
    case OP_SLICE:
        if (n->at.axis != xa)
            return xa;
        if (dim_is_const(n->at.end) && dim_value(n->at.end) <= 1) {
            return -1; /* the [CLS] token (x[:, 0]): kept first by every method */
        }
        *why = "a slice of the tokens other than the first";
        return -2;
    default:
        *why = "an op that moves tokens (concat, gather, convolution) after the merge";
        return -2;
    }
}

/* Follows the token axis from x (axis xa) through the graph (in order): c->tax for every node.
 * Returns 0, or -1 with why set when something downstream cannot be resized. */
static int follow(Ctx *c, Node *x, int xa, int64_t T, const char **why, const Node **where)
{
    Graph *g = c->g;
    free(c->tax);
    c->tax = malloc(sizeof(int) * ((size_t)g->nnode + 1));
    KILN_ASSERT(c->tax);
    for (int i = 0; i < g->nnode; i++)
        c->tax[i] = -1;
    c->tax[x->id] = xa;
    for (int i = x->id + 1; i < g->nnode; i++) {
        Node *n = g->nodes[i];
        int a = node_tax(c, n, T, why);
        if (a == -2) {
            *where = n;
            return -1;
        }
        if (a >= 0 && !dim_eq(n->shape[a], dim_const(T))) {
            *why = "the token axis changes size";
            *where = n;
            return -1;
        }
        c->tax[i] = a;
    }
    for (int k = 0; k < g->noutput; k++)
        if (c->tax[g->outputs[k].node->id] >= 0) {
            *why = "an output has the token axis";
            *where = g->outputs[k].node;
            return -1;
        }
    return 0;
}

/* ---------------------------------------------------------------- FLOPs */

/* The matmul and attention FLOPs of n (symbols at their bounds): 2 m n k, and 2 d + 2 dv per score. */
static double node_flops(const Graph *g, const Node *n)
{
    int64_t vals[IR_MAX_SYMS];
    for (int i = 0; i < g->nsym; i++)
        vals[i] = g->syms[i].bound;
    if (n->op == OP_MATMUL) {
        const Node *a = n->in[0];
        return 2.0 * (double)shape_numel(n->rank, n->shape, vals) * (double)dim_eval(a->shape[a->rank - 1], vals);
    }
    if (n->op == OP_ATTENTION) {
        const Node *q = n->in[0], *k = n->in[1], *v = n->in[2];
        double d = (double)dim_eval(q->shape[q->rank - 1], vals), dv = (double)dim_eval(v->shape[v->rank - 1], vals);
        double rows = (double)shape_numel(n->rank, n->shape, vals) / (dv > 0 ? dv : 1);
        return rows * (double)dim_eval(k->shape[k->rank - 2], vals) * (2 * d + 2 * dv);
    }
    return 0;
}

/* FLOPs per layer (the nodes up to and including the block's end, after the previous block's end)
 * into f[0..nb], f[nb] the rest of the model; with pre/att/post (may be NULL) split into the layer's
 * matmuls before the merge point (they see the layer's tokens), its attention, and its matmuls after
 * (they see the merged tokens). */
static void layer_flops(Ctx *c, double *f, double *pre, double *att, double *post)
{
    Graph *g = c->g;
    int l = 0, past = 0; /* past: after layer l's merge point */
    for (int i = 0; i <= c->nb; i++) {
        f[i] = 0;
        if (pre)
            pre[i] = att[i] = post[i] = 0;
    }
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        double x = node_flops(g, n);
        int k = l < c->nb ? l : c->nb;
        f[k] += x;
        if (pre)
            *(n->op == OP_ATTENTION ? &att[k] : past ? &post[k] : &pre[k]) += x;
        if (l < c->nb && n == c->b[l].x1)
            past = 1;
        while (l < c->nb && n == c->b[l].xend) {
            l++;
            past = 0;
        }
    }
}

/* ---------------------------------------------------------------- the rewrite */

static Node *cnode(Graph *g, Op op, DType dt, int rank, const Dim *shape, int nin, Node **in, SrcLoc loc)
{
    return ir_node(g, op, dt, rank, shape, nin, in, loc);
}

/* A constant: one value (rank 0) or `rows` ones of shape [rows, 1]. */
static Node *const_f32(Graph *g, int rank, const Dim *shape, int64_t n, float v, SrcLoc loc)
{
    Node *k = cnode(g, OP_CONST, DT_F32, rank, shape, 0, NULL, loc);
    float *d = arena_alloc(g->arena, sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        d[i] = v;
    k->at.data = d;
    return k;
}

/* Makes x1's users read `merged` instead (merged keeps reading x1), then restores the order. */
static void reroute(Graph *g, Node *x1, Node *merged)
{
    ir_replace_uses(g, x1, merged);
    merged->in[0] = x1;
    ir_toposort(g);
}

/* Resizes the token axis of every node c->tax marks downstream of x1 to T2 (x1 itself keeps T). */
static void resize(Ctx *c, Node **marked, int nmarked, const int *axes, int64_t T2)
{
    (void)c;
    for (int i = 0; i < nmarked; i++)
        marked[i]->shape[axes[i]] = dim_const(T2);
}

/* The nodes the last follow() marked (x1 excluded), with their axes; malloc'ed. */
static int collect(Ctx *c, const Node *x1, Node ***out, int **axes)
{
    Graph *g = c->g;
    int n = 0;
    *out = malloc(sizeof(Node *) * ((size_t)g->nnode + 1));
    *axes = malloc(sizeof(int) * ((size_t)g->nnode + 1));
    KILN_ASSERT(*out && *axes);
    for (int i = 0; i < g->nnode; i++)
        if (c->tax[i] >= 0 && g->nodes[i] != x1) {
            (*out)[n] = g->nodes[i];
            (*axes)[n++] = c->tax[i];
        }
    return n;
}

/* Mean over the heads axis of a [..., H, T, d] value (x itself when it has no heads axis). */
static Node *mean_heads(Graph *g, Node *x, int tokens_axis)
{
    if (tokens_axis < 1)
        return x;
    Dim sh[IR_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (i != tokens_axis - 1)
            sh[r++] = x->shape[i];
    Node *m = cnode(g, OP_MEAN, x->dtype, r, sh, 1, &x, x->loc);
    m->at.axis = tokens_axis - 1;
    return m;
}

/* ToMe (or PiToMe: pitome, its margin and bsm) at block b: returns the new size tensor ([..., T2, 1]). */
static Node *tome_layer(Ctx *c, Block *b, Node *size, int r, int64_t T, int pitome, double margin, int bsm)
{
    Graph *g = c->g;
    Node *x1 = b->x1, *k = b->attn->in[1];
    int R = x1->rank;
    int64_t T2 = T - r;
    SrcLoc loc = x1->loc;
    ir_set_origin(g, x1); /* the merge belongs to the block's layer and scope */
    Node *metric = mean_heads(g, k, k->rank - 2);
    Dim dsh[IR_MAX_RANK];
    memcpy(dsh, x1->shape, sizeof(Dim) * (size_t)(R - 1));
    Node *dest = cnode(g, pitome ? OP_PITOME_MATCH : OP_TOME_MATCH, DT_I32, R - 1, dsh, 1, &metric, loc);
    dest->at.r = r;
    dest->at.cls = c->cls;
    dest->at.margin = margin;
    dest->at.bsm = bsm;
    if (!size) { /* every token its own size: ones, [..., T, 1] */
        Dim one[2] = {dim_const(T), dim_const(1)};
        size = const_f32(g, 2, one, T, 1.0f, loc);
        if (R > 2) {
            Dim sh[IR_MAX_RANK];
            memcpy(sh, x1->shape, sizeof(Dim) * (size_t)R);
            sh[R - 1] = dim_const(1);
            size = cnode(g, OP_EXPAND, DT_F32, R, sh, 1, &size, loc);
        }
    }
    Dim xs[IR_MAX_RANK];
    memcpy(xs, x1->shape, sizeof(Dim) * (size_t)R);
    xs[R - 2] = dim_const(T2);
    Node *in[3] = {x1, dest, size};
    Node *merged = cnode(g, OP_TOKEN_MERGE, DT_F32, R, xs, 3, in, loc);
    merged->at.mode = 0; /* mean */
    xs[R - 1] = dim_const(1);
    Node *sin[2] = {size, dest};
    Node *size2 = cnode(g, OP_TOKEN_MERGE, DT_F32, R, xs, 2, sin, loc);
    size2->at.mode = 1; /* sum */
    reroute(g, x1, merged);
    return size2;
}

/* EViT at block b, keeping `keep` of the T - 1 tokens after [CLS]. */
static void evit_layer(Ctx *c, Block *b, int keep, int64_t T)
{
    Graph *g = c->g;
    Node *x1 = b->x1, *at = b->attn;
    int R = x1->rank;
    SrcLoc loc = x1->loc;
    ir_set_origin(g, x1);
    /* the attention's second result: its first row's probabilities, [..., heads, Tk] */
    Node *ca = ir_build(g, OP_CLS_PROBS, NULL, 1, &at, NULL, loc, NULL);
    Node *a = mean_heads(g, ca, ca->rank - 1);
    Node *dest = cnode(g, OP_EVIT_SELECT, DT_I32, a->rank, a->shape, 1, &a, loc);
    dest->at.keep = keep;
    /* weights: the fused token's tokens weigh their attention, the kept ones 1 */
    Node *fused = cnode(g, OP_CONST, DT_I32, 0, NULL, 0, NULL, loc);
    int32_t *fv = arena_alloc(g->arena, sizeof(int32_t));
    *fv = keep + 1;
    fused->at.data = fv;
    Node *eqin[2] = {dest, fused};
    Node *isf = cnode(g, OP_EQ, DT_BOOL, a->rank, a->shape, 2, eqin, loc);
    Node *one = const_f32(g, 0, NULL, 1, 1.0f, loc);
    Node *win[3] = {isf, a, one};
    Node *w = cnode(g, OP_WHERE, DT_F32, a->rank, a->shape, 3, win, loc);
    Dim ws[IR_MAX_RANK];
    memcpy(ws, a->shape, sizeof(Dim) * (size_t)a->rank);
    ws[a->rank] = dim_const(1);
    w = cnode(g, OP_RESHAPE, DT_F32, a->rank + 1, ws, 1, &w, loc);
    Dim xs[IR_MAX_RANK];
    memcpy(xs, x1->shape, sizeof(Dim) * (size_t)R);
    xs[R - 2] = dim_const(keep + 2);
    Node *in[3] = {x1, dest, w};
    Node *merged = cnode(g, OP_TOKEN_MERGE, DT_F32, R, xs, 3, in, loc);
    merged->at.mode = 1; /* sum */
    (void)T;
    reroute(g, x1, merged);
}

/* Proportional attention: log(size) as the mask of attention a, [..., 1, 1, T] (one value per key,
 * the same for every query and head). */
static void add_size_mask(Graph *g, Node *a, Node *size, Node **logsize)
{
    ir_set_origin(g, a);
    if (!*logsize)
        *logsize = cnode(g, OP_LOG, DT_F32, size->rank, size->shape, 1, &size, size->loc);
    Node *q = a->in[0];
    int rq = q->rank, rs = size->rank; /* size [B.., T, 1]: its batch dims lead q's */
    Dim sh[IR_MAX_RANK];
    for (int i = 0; i < rq; i++)
        sh[i] = dim_const(1);
    for (int i = 0; i < rs - 2; i++)
        sh[i] = size->shape[i];
    sh[rq - 1] = size->shape[rs - 2];
    Node *m = cnode(g, OP_RESHAPE, DT_F32, rq, sh, 1, logsize, size->loc);
    Node **in = arena_alloc(g->arena, sizeof(Node *) * 4);
    memcpy(in, a->in, sizeof(Node *) * 3);
    in[3] = m;
    a->in = in;
    a->nin = 4;
}

int pass_prune_tokens(Graph *g, const PassOptions *o)
{
    if (!o->prune_tokens)
        return 0;
    Ctx c = {.g = g, .o = o, .explain = o->explain && !strcmp(o->explain, "prune-tokens")};
    if (parse_spec(&c, o->prune_tokens))
        return -1;
    ir_toposort(g);
    for (int i = 0; i < g->nnode && c.nb < MAXL; i++)
        if (g->nodes[i]->op == OP_ATTENTION)
            c.b[c.nb++].attn = g->nodes[i];
    if (c.nb == 0) {
        if (c.explain)
            diag_note(o->d, (SrcLoc){0, 0, 0}, "prune-tokens: the model has no fused attention, so no token axis to merge");
        diag_fatal(o->d, "--prune-tokens: the model has no attention layer (no token axis to merge or prune)");
        return -1;
    }
    for (int l = 0; l < c.nb; l++)
        find_block(&c, &c.b[l]);
    /* layers named by the option must exist */
    Spec *s = &c.s;
    if (s->method == M_TOME && s->nr > c.nb) {
        char m[64];
        snprintf(m, sizeof m, "%d", c.nb);
        return spec_error(&c, "r lists more layers than the model has (%s)", m), -1;
    }
    for (int i = 0; s->method == M_EVIT && i < s->nlayers; i++)
        if (s->layers[i] >= c.nb) {
            char m[96];
            snprintf(m, sizeof m, "layer %d, but the model has %d (0 to %d)", s->layers[i], c.nb, c.nb - 1);
            return spec_error(&c, "layers names %s", m), -1;
        }
    /* [CLS] */
    Block *first = NULL;
    for (int l = 0; l < c.nb && !first; l++)
        if (!c.b[l].why)
            first = &c.b[l];
    if (!first) {
        for (int l = 0; l < c.nb; l++)
            explain(&c, c.b[l].attn, "prune-tokens: layer %d left alone: %s", l, c.b[l].why);
        if (o->report)
            fprintf(o->report, "prune-tokens: no layer has the encoder block's pattern; nothing merged\n");
        return 0;
    }
    {
        Node *x1 = first->x1, *a = first->attn;
        Node *x0 = is_ancestor(g, x1->in[0], a) ? x1->in[0] : x1->in[1];
        c.cls = !s->cls_none && find_cls(x0, x0->rank - 2, 0);
        if (!c.cls && !s->cls_none && c.explain)
            diag_note(o->d, x0->loc, "prune-tokens: no [CLS] token found (a concatenated learned token at index 0); no token is protected");
    }
    if (s->method == M_EVIT && !c.cls)
        return spec_error(&c, "%s: EViT needs the model's [CLS] token (a concatenated learned token at index 0)",
                          o->prune_tokens), -1;

    double before[MAXL + 1], after[MAXL + 1], pre[MAXL + 1], att[MAXL + 1], post[MAXL + 1];
    layer_flops(&c, before, pre, att, post);
    int64_t T0 = dim_value(first->x1->shape[first->x1->rank - 2]);

    /* the schedule: tokens removed per layer */
    int want[MAXL] = {0};
    if (s->method == M_TOME && s->flops > 0) {
        /* the smallest constant r that removes the share: a layer's matmuls scale with its tokens,
         * its attention with their square; the matmuls before the merge point see the layer's
         * tokens, those after it the merged ones */
        double total = 0;
        for (int l = 0; l <= c.nb; l++)
            total += before[l];
        int best = 0;
        for (int r = 0; r <= T0 / 2; r++) {
            double t = (double)T0, left = before[c.nb];
            for (int l = 0; l < c.nb; l++) {
                int rl = c.b[l].why ? 0 : r;
                int cap = (int)((t - c.cls) / 2);
                rl = rl < cap ? rl : cap;
                double t2 = t - rl;
                left += att[l] * (t / T0) * (t / T0) + pre[l] * (t / T0) + post[l] * (t2 / T0);
                t = t2;
            }
            best = r;
            if (1 - left / total >= s->flops)
                break;
        }
        for (int l = 0; l < c.nb; l++)
            want[l] = best;
    } else if (s->method == M_TOME) {
        tome_schedule(s, c.nb, s->r[0], want);
    } else {
        for (int i = 0; i < s->nlayers; i++)
            want[s->layers[i]] = 1;
    }

    int changes = 0;
    int64_t T = T0;
    int64_t tin[MAXL], tout[MAXL];
    int capped[MAXL] = {0};
    Node *size = NULL, *size_at[MAXL] = {0};
    for (int l = 0; l < c.nb; l++) {
        Block *b = &c.b[l];
        tin[l] = tout[l] = T;
        size_at[l] = size;
        if (b->why) {
            if (want[l])
                explain(&c, b->attn, "prune-tokens: layer %d left alone: %s", l, b->why);
            continue;
        }
        int64_t cur = dim_value(b->x1->shape[b->x1->rank - 2]);
        tin[l] = tout[l] = T = cur;
        int64_t removed = 0;
        int keep = 0;
        if (s->method == M_TOME || s->method == M_PITOME) {
            int64_t r = want[l], cap = (T - c.cls) / 2;
            if (s->method == M_PITOME) { /* pitome_vision: r = floor(T - T * ratio), T without [CLS] */
                double n = (double)(T - c.cls);
                r = s->ratio < 1.0 ? (int64_t)floor(n - n * s->ratio) : 0;
            }
            if (r > cap) {
                capped[l] = (int)r;
                r = cap;
            }
            removed = r;
        } else if (want[l]) {
            if (b->attn->dtype != DT_F32) { /* cls_probs reads an f32 attention */
                explain(&c, b->attn, "prune-tokens: layer %d left alone: %s", l, "its attention is not f32");
                continue;
            }
            keep = (int)ceil(s->keep * (double)(T - 1));
            if (keep >= T - 1) {
                explain(&c, b->attn, "prune-tokens: layer %d left alone: %s", l, "keep leaves every token");
                continue;
            }
            if (keep < 1)
                keep = 1;
            removed = T - (keep + 2); /* 0 when one token is fused into one: EViT still weighs it */
        }
        if (s->method != M_EVIT ? removed <= 0 : !want[l])
            continue;
        const char *why = NULL;
        const Node *where = NULL;
        if (follow(&c, b->x1, b->x1->rank - 2, T, &why, &where)) {
            if (c.explain)
                diag_note(o->d, where ? where->loc : b->attn->loc, "prune-tokens: layer %d left alone (and the layers after it): %s", l, why);
            break;
        }
        Node **marked;
        int *axes;
        int nm = collect(&c, b->x1, &marked, &axes);
        int64_t T2 = T - removed;
        resize(&c, marked, nm, axes, T2);
        free(marked);
        free(axes);
        if (s->method == M_TOME)
            size = tome_layer(&c, b, size, (int)removed, T, 0, 0, 0);
        else if (s->method == M_PITOME) /* the authors' margins and the first half of the layers bsm */
            size = tome_layer(&c, b, size, (int)removed, T, 1, 0.75 - 0.75 * ((double)l / c.nb),
                              l < (int)ceil(c.nb * 0.5));
        else
            evit_layer(&c, b, keep, T);
        tout[l] = T = T2;
        changes++;
    }
    /* proportional attention: each attention after a merge weighs its keys by their sizes */
    if (s->method != M_EVIT && !s->prop_off) {
        Node *logsize = NULL, *last = NULL;
        for (int l = 0; l < c.nb; l++) {
            if (!size_at[l] || c.b[l].attn->nin > 3)
                continue;
            if (size_at[l] != last)
                logsize = NULL;
            last = size_at[l];
            add_size_mask(g, c.b[l].attn, size_at[l], &logsize);
        }
        ir_toposort(g);
    }
    ir_set_origin(g, NULL);
    ir_compact(g);
    free(c.tax);

    if (o->report) {
        layer_flops(&c, after, NULL, NULL, NULL);
        double big = 0;
        for (int l = 0; l <= c.nb; l++)
            big = before[l] > big ? before[l] : big;
        double unit = big >= 1e9 ? 1e9 : big >= 1e6 ? 1e6 : 1e3;
        const char *un = big >= 1e9 ? "GFLOP" : big >= 1e6 ? "MFLOP" : "kFLOP";
        double tb = 0, ta = 0;
        fprintf(o->report, "prune-tokens: %s, %s; layer: tokens in -> out, FLOPs (matmul and attention) before -> after\n",
                s->method == M_TOME     ? (s->prop_off ? "ToMe without proportional attention" : "ToMe")
                : s->method == M_PITOME ? (s->prop_off ? "PiToMe" : "PiToMe with proportional attention")
                                        : "EViT",
                c.cls ? "[CLS] token kept" : "no [CLS] token");
        for (int l = 0; l < c.nb; l++) {
            fprintf(o->report, "  layer %d: %lld -> %lld tokens, %.4g -> %.4g %s", l, (long long)tin[l],
                    (long long)tout[l], before[l] / unit, after[l] / unit, un);
            if (capped[l])
                fprintf(o->report, " (r %d capped to %lld: half the mergeable tokens)", capped[l], (long long)(tin[l] - tout[l]));
            if (c.b[l].why)
                fprintf(o->report, " (left alone: %s)", c.b[l].why);
            fputc('\n', o->report);
        }
        for (int l = 0; l <= c.nb; l++) {
            tb += before[l];
            ta += after[l];
        }
        fprintf(o->report, "  model: %.4g -> %.4g %s (%.1f%% fewer; symbolic sizes at their bounds)\n", tb / unit,
                ta / unit, un, tb > 0 ? 100 * (1 - ta / tb) : 0.0);
    }
    return changes;
}
