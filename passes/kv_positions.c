/* kv_positions.c: the kv-cache pass's positions=cache, rotary positions within the cache.
 *
 * StreamingLLM's positions for rotary models (mit-han-lab/streaming-llm's pos_shift attention): the
 * cache holds each key before its rotary embedding, and decode rotates the held keys by their rank
 * among the held tokens in token order (0 for the oldest held) and the new token's query by the
 * number of tokens held before it, so a stream never shows the model a distance longer than the
 * cache. kv_cache.c decides where (which slots are held, per policy); this file finds what to cache
 * and rebuilds what the attention reads.
 *
 * It does not look for rotary embeddings by name: for each attention input that depends on the
 * positions (a T-arange) it finds the region between the input and the one value x every token
 * path goes through (kv_find_regions), checks that the region is token-wise (each row from its own
 * row of x and its own position: elementwise ops, moves and reductions that keep the token axis),
 * and kv_cache.c caches x. Decode clones the region with T = the slots, x = the cache and the
 * arange = the slots' ranks (kv_rerotated), and for q with T = 1 and the arange = the new token's
 * rank (kv_reclone). Cost per decode step and layer: the region over every slot (for a rotary
 * embedding: the cached keys times cos and sin tables of the slots' ranks; per KV head once for h2o,
 * whose heads hold different tokens) and a slots x slots comparison for the ranks.
 *
 * What it refuses, with the node that stops it: a learned position table (its rows are absolute
 * positions), a region that mixes tokens (a matmul, a reduction over the tokens: positions before
 * the projections), positions used outside the attentions' q and k, and k or v whose value before
 * the positions is not shaped as the keys (the cache's layout).
 */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

enum { DEP_POS = 1, DEP_TOK = 2 }; /* a node depends on the positions, on the token ids */

typedef struct Ctx {
    Graph *g;
    Diag *d;
    int tsym; /* T, the tokens' symbol */
    int n0;   /* the nodes of the model (the regions are among them) */
    char *dep; /* (n0) DEP_POS | DEP_TOK */
} Ctx;

int kv_subst(int tsym, Dim d, int64_t n, Dim *out)
{
    if (dim_is_const(d)) {
        *out = d;
        return 1;
    }
    int sym;
    int64_t coef, off;
    if (!dim_sym1(d, &sym, &coef, &off) || sym != tsym)
        return 0;
    *out = dim_const(coef * n + off);
    return 1;
}

int kv_uses_sym(const Node *x)
{
    for (int i = 0; i < x->rank; i++)
        if (!dim_is_const(x->shape[i]))
            return 1;
    return (op_info[x->op].attrs & A_RANGE) && (!dim_is_const(x->at.start) || !dim_is_const(x->at.end));
}

/* the axis of x of size T (exactly), or -1 when there is none or T appears in more than one or in
 * another form */
static int t_axis(int tsym, const Node *x)
{
    int t = -1;
    for (int i = 0; i < x->rank; i++) {
        if (dim_is_const(x->shape[i]))
            continue;
        if (!dim_is_sym(x->shape[i], tsym) || t >= 0)
            return -1;
        t = i;
    }
    return t;
}

static int64_t prefix_numel(const Node *x, int axis)
{
    int64_t n = 1;
    for (int i = 0; i < axis; i++)
        n *= dim_value(x->shape[i]);
    return n;
}

/* Why node y of a region is not token-wise, or NULL. */
static const char *tokenwise_problem(int tsym, const Node *y)
{
    int t = t_axis(tsym, y);
    if (t < 0 && y->rank)
        return "its tokens are not one axis of size T";
    for (int i = 0; i < y->nin; i++) {
        const Node *u = y->in[i];
        int tu = t_axis(tsym, u);
        if (!kv_uses_sym(u))
            continue;
        if (tu < 0)
            return "an input's tokens are not one axis of size T";
        if ((op_info[y->op].flags & F_EW) || y->op == OP_EXPAND) {
            if (y->rank - t != u->rank - tu)
                return "it broadcasts the tokens against another axis";
        } else if (y->op == OP_RESHAPE) {
            if (prefix_numel(y, t) != prefix_numel(u, tu))
                return "it merges the tokens with another axis";
        } else if (y->op == OP_SLICE || y->op == OP_CONCAT) {
            if (y->at.axis == t)
                return "it slices or joins along the tokens";
        } else if ((op_info[y->op].flags & F_RED) || y->op == OP_SOFTMAX || y->op == OP_LOG_SOFTMAX) {
            if (y->at.axis == tu)
                return "it reduces over the tokens";
        } else if (y->op == OP_RMSNORM || y->op == OP_LAYERNORM) {
            if (tu == u->rank - 1)
                return "it normalises over the tokens";
        } else if (y->op != OP_TRANSPOSE) {
            return "it is not elementwise over the tokens";
        }
    }
    return NULL;
}

/* The region of input top of attention a; r->x NULL when top does not depend on the positions.
 * Sweeps down from top in descending ids: a position-dependent node joins the region; a node that
 * depends on the tokens alone is x once no other token path is pending, else joins the region too
 * (x and rotate_half(x) both feed a rotary embedding: the region grows until they meet). -1 after
 * an error (reported). */
static int find_region(Ctx *c, const Node *a, const Node *top, KvRegion *r)
{
    Graph *g = c->g;
    memset(r, 0, sizeof *r);
    if (!(c->dep[top->id] & DEP_POS))
        return 0;
    char *mark = calloc((size_t)c->n0, 1);
    r->ids = arena_alloc(g->arena, sizeof(int) * (size_t)(top->id + 1));
    KILN_ASSERT(mark);
    r->top = top;
    mark[top->id] = 1;
    int pending = (c->dep[top->id] & DEP_TOK) != 0; /* marked nodes on token paths, not yet swept */
    const char *why = NULL;
    const Node *at = NULL;
    for (int i = top->id; i >= 0 && !why; i--) {
        if (!mark[i])
            continue;
        const Node *y = g->nodes[i];
        int tok = c->dep[i] & DEP_TOK;
        pending -= tok != 0;
        if (!(c->dep[i] & DEP_POS) && (!tok || (!pending && !r->x))) {
            if (tok)
                r->x = y;
            continue;
        }
        r->ids[r->n++] = i;
        if ((why = tokenwise_problem(c->tsym, y)))
            at = y;
        for (int j = 0; j < y->nin; j++)
            if (!mark[y->in[j]->id]) {
                mark[y->in[j]->id] = 1;
                pending += (c->dep[y->in[j]->id] & DEP_TOK) != 0;
            }
    }
    free(mark);
    if (!why && !r->x) {
        why = "no one value before the positions apply";
        at = top;
    }
    if (!why && top != a->in[0]) { /* k or v: the cache holds x in place of the attention's input */
        int same = r->x->rank == top->rank && r->x->dtype == top->dtype;
        for (int i = 0; same && i < top->rank; i++)
            same = dim_eq(r->x->shape[i], top->shape[i]);
        if (!same) {
            why = "the value before the positions is not shaped as the keys";
            at = r->x;
        }
    }
    if (why) {
        diag_error(c->d, at->loc, "kv-cache: positions=cache: %s %%%d, between the positions and attention %%%d's "
                   "inputs, stops it: %s (positions within the cache need the positions to enter only through "
                   "a token-wise embedding of q and k, as rotary embeddings do)", op_info[at->op].name, at->id,
                   a->id, why);
        return -1;
    }
    return 0;
}

int kv_find_regions(Graph *g, int tsym, int n0, KvRegion *reg, Diag *d)
{
    Ctx c = {.g = g, .d = d, .tsym = tsym, .n0 = n0, .dep = calloc((size_t)n0, 1)};
    char *covered = calloc((size_t)n0, 1);
    KILN_ASSERT(c.dep && covered);
    int rc = 0, any = 0;
    for (int i = 0; i < n0 && !rc; i++) {
        const Node *x = g->nodes[i];
        if (x->op == OP_SLICE && kv_uses_sym(x) && !kv_uses_sym(x->in[0])) {
            diag_error(d, x->loc, "kv-cache: positions=cache: slice %%%d reads a learned position table by "
                       "position; positions within the cache apply to rotary models (a learned table's rows are "
                       "absolute positions)", i);
            rc = -1;
        }
        char dep = (x->op == OP_INPUT ? DEP_TOK : 0) | (x->op == OP_ARANGE && kv_uses_sym(x) ? DEP_POS : 0);
        for (int j = 0; j < x->nin; j++) /* what attention computes depends on the positions through q, k */
            dep |= c.dep[x->in[j]->id] & (x->op == OP_ATTENTION ? DEP_TOK : DEP_POS | DEP_TOK);
        c.dep[i] = dep;
    }
    for (int i = 0, l = 0; i < n0 && !rc; i++) {
        const Node *a = g->nodes[i];
        if (a->op != OP_ATTENTION)
            continue;
        for (int j = 0; j < 3 && !rc; j++) {
            KvRegion *r = &reg[3 * l + j];
            rc = find_region(&c, a, a->in[j], r);
            for (int k = 0; k < r->n; k++)
                covered[r->ids[k]] = 1;
            any |= r->x != NULL;
        }
        l++;
    }
    for (int i = 0; i < n0 && !rc; i++)
        if ((c.dep[i] & DEP_POS) && !covered[i] && g->nodes[i]->op != OP_ATTENTION) {
            diag_error(d, g->nodes[i]->loc, "kv-cache: positions=cache: %s %%%d depends on the positions outside the "
                       "attentions' q and k", op_info[g->nodes[i]->op].name, i);
            rc = -1;
        }
    if (!rc && !any) {
        diag_fatal(d, "kv-cache: positions=cache: no attention's q or k depends on the positions (a T-arange, as "
                      "rotary embeddings have)");
        rc = -1;
    }
    free(c.dep);
    free(covered);
    return rc;
}

Node *kv_reclone(Graph *g, int tsym, Node *const *map, const KvRegion *r, Node *x, Node *pos, int64_t n)
{
    Node **m = calloc((size_t)r->top->id + 1, sizeof(Node *));
    KILN_ASSERT(m);
    for (int k = r->n - 1; k >= 0; k--) {
        const Node *y = g->nodes[r->ids[k]];
        Node *in[8];
        KILN_ASSERT(y->nin <= 8);
        for (int j = 0; j < y->nin; j++) {
            const Node *u = y->in[j];
            in[j] = u == r->x ? x : m[u->id] ? m[u->id] : map[u->id];
        }
        Dim shape[IR_MAX_RANK];
        for (int i = 0; i < y->rank; i++)
            KILN_ASSERT(kv_subst(tsym, y->shape[i], n, &shape[i]));
        Node *z;
        if (y->op == OP_ARANGE) {
            z = y->dtype == DT_I64 ? pos : ir_cast(g, pos, y->dtype, y->loc);
        } else {
            z = ir_node(g, y->op, y->dtype, y->rank, shape, y->nin, in, y->loc);
            z->at = y->at;
            if (op_info[y->op].attrs & A_RANGE)
                KILN_ASSERT(kv_subst(tsym, y->at.start, n, &z->at.start) && kv_subst(tsym, y->at.end, n, &z->at.end));
        }
        m[y->id] = z;
    }
    Node *top = m[r->top->id];
    free(m);
    return top;
}

void kv_ranks(Graph *g, Node *pos1, Node **ranks, Node **qpos)
{
    SrcLoc loc = pos1->loc;
    int r = pos1->rank;
    int64_t S = dim_value(pos1->shape[r - 1]), rows = prefix_numel(pos1, r - 1);
    Dim sa[IR_MAX_RANK], sb[IR_MAX_RANK];
    memcpy(sa, pos1->shape, sizeof(Dim) * (size_t)r);
    memcpy(sb, pos1->shape, sizeof(Dim) * (size_t)r);
    sa[r] = sb[r - 1] = dim_const(1);
    sb[r] = dim_const(S);
    Node *zero = ir_scalar(g, DT_I64, 0, loc), *one = ir_scalar(g, DT_F32, 1, loc), *none = ir_scalar(g, DT_F32, 0, loc);
    Node *mine = ir_reshape(g, pos1, r + 1, sa, loc, NULL), *other = ir_reshape(g, pos1, r + 1, sb, loc, NULL);
    Node *held = ir_binary(g, OP_GT, other, zero, loc, NULL);
    Node *before = ir_where(g, held, ir_binary(g, OP_LT, other, mine, loc, NULL), held, loc, NULL); /* and */
    Node *n = ir_reduce(g, OP_SUM, ir_where(g, before, one, none, loc, NULL), r, 0, loc, NULL);
    *ranks = ir_cast(g, n, DT_I64, loc);
    Node *row0 = ir_slice(g, ir_reshape(g, pos1, 2, (Dim[]){dim_const(rows), dim_const(S)}, loc, NULL), 0,
                          dim_const(0), dim_const(1), loc, NULL);
    Node *count = ir_reduce(g, OP_SUM, ir_where(g, ir_binary(g, OP_GT, row0, zero, loc, NULL), one, none, loc, NULL),
                            1, 0, loc, NULL);
    *qpos = ir_binary(g, OP_SUB, ir_cast(g, count, DT_I64, loc), ir_scalar(g, DT_I64, 1, loc), loc, NULL);
}

Node *kv_rerotated(Graph *g, int tsym, Node *const *map, const KvRegion *r, Node *cached, Node *ranks)
{
    SrcLoc loc = cached->loc;
    int rr = ranks->rank;
    int64_t S = dim_value(ranks->shape[rr - 1]), rows = prefix_numel(ranks, rr - 1);
    if (rr == 1)
        return kv_reclone(g, tsym, map, r, cached, ranks, S);
    Node *flat = ir_reshape(g, ranks, 2, (Dim[]){dim_const(rows), dim_const(S)}, loc, NULL), *out = NULL;
    for (int64_t h = 0; h < rows; h++) {
        Node *rh = ir_reshape(g, ir_slice(g, flat, 0, dim_const(h), dim_const(h + 1), loc, NULL), 1,
                              (Dim[]){dim_const(S)}, loc, NULL);
        Node *z = kv_reclone(g, tsym, map, r, cached, rh, S);
        if (!out) {
            out = z;
            continue;
        }
        Dim ms[IR_MAX_RANK]; /* row h of the KV heads: [rows..., 1, 1], true at h */
        memcpy(ms, ranks->shape, sizeof(Dim) * (size_t)(rr - 1));
        for (int i = rr - 1; i < z->rank; i++)
            ms[i] = dim_const(1);
        unsigned char *at = arena_alloc(g->arena, (size_t)rows);
        memset(at, 0, (size_t)rows);
        at[h] = 1;
        out = ir_where(g, ir_const(g, DT_BOOL, z->rank, ms, at, loc), z, out, loc, NULL);
    }
    return out;
}
