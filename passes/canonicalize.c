/* canonicalize.c: put the graph in a normal form the other passes can match.
 *
 * - common subexpressions: two nodes with the same op, type, attributes and inputs become one (the
 *   same weight read twice, a mask built in every layer, q and k reshaped the same way);
 * - transpose(transpose(x)) becomes one transpose, or x when the permutations cancel;
 * - reshape(reshape(x)) becomes one reshape, and a reshape or cast to what x already is, x;
 * - x + 0, x - 0, x * 1 and x / 1 with a scalar constant become x when that changes no shape or dtype;
 * - a weight of one element becomes a constant of its value;
 * - a convolution whose stride is its kernel and which has no padding (a ViT's patch embedding)
 *   becomes patches times a matrix: reshapes and transposes around one matmul, which the GEMM runs;
 * - nodes no output depends on are removed.
 * Rewrites repeat until nothing changes. Iteration is in graph order, so the result is deterministic.
 */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

static int same_type(const Node *a, const Node *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (!dim_eq(a->shape[i], b->shape[i]))
            return 0;
    return 1;
}

/* Whether b computes exactly what a computes. */
static int same_node(const Node *a, const Node *b)
{
    if (a->op != b->op || a->nin != b->nin || !same_type(a, b) || a->op == OP_INPUT)
        return 0;
    if (a->op == OP_WEIGHT || a->op == OP_STATE) /* a state read: the same state's value */
        return !strcmp(a->name, b->name);
    for (int i = 0; i < a->nin; i++)
        if (a->in[i] != b->in[i])
            return 0;
    return ir_same_attrs(a, b);
}

/* The value of a scalar (or single-element) constant, or NAN-free flag 0 when n is not one. */
static int scalar_const(const Node *n, double *v)
{
    if (n->op != OP_CONST)
        return 0;
    for (int i = 0; i < n->rank; i++)
        if (!dim_eq(n->shape[i], dim_const(1)))
            return 0;
    *v = dtype_load(n->dtype, n->at.data, 0);
    return 1;
}


/* conv2d with stride = kernel and no padding, over an image [B?, C, H, W] with H and W multiples of
 * the kernel: the image cut into patches [B?, H/P * W/P, C*P*Q] times the kernel as a matrix
 * [C*P*Q, O], then put back as [B?, O, H/P, W/P]. */
static Node *patch_conv(Graph *g, Node *n)
{
    Node *x = n->in[0], *w = n->in[1];
    int b = x->rank == 4;
    if (n->dtype != DT_F32 || !dim_is_const(w->shape[2]) || !dim_is_const(w->shape[3]))
        return NULL;
    int64_t P = dim_value(w->shape[2]), Q = dim_value(w->shape[3]), C = dim_value(w->shape[1]), O = dim_value(w->shape[0]);
    Dim H = x->shape[b + 1], W = x->shape[b + 2];
    if (n->at.stride[0] != P || n->at.stride[1] != Q || n->at.pad[0] || n->at.pad[1] || !dim_is_const(H) ||
        !dim_is_const(W) || dim_value(H) % P || dim_value(W) % Q)
        return NULL;
    int64_t HP = dim_value(H) / P, WQ = dim_value(W) / Q;
    SrcLoc loc = n->loc;
    Dim bd = b ? x->shape[0] : dim_const(1);
    /* [B, C, HP, P, WQ, Q] -> [B, HP, WQ, C, P, Q] -> [B, HP*WQ, C*P*Q] */
    Dim s6[6] = {bd, dim_const(C), dim_const(HP), dim_const(P), dim_const(WQ), dim_const(Q)};
    Node *r = ir_reshape(g, x, 6, s6, loc, NULL);
    static const int p6[6] = {0, 2, 4, 1, 3, 5};
    Node *t = ir_transpose(g, r, p6, loc, NULL);
    Dim s3[3] = {bd, dim_const(HP * WQ), dim_const(C * P * Q)};
    Node *patches = ir_reshape(g, t, 3, s3, loc, NULL);
    /* the kernel as [O, C*P*Q], transposed for the product: a constant the GEMM packs */
    Dim s2[2] = {dim_const(O), dim_const(C * P * Q)};
    Node *wm = ir_reshape(g, w, 2, s2, loc, NULL);
    static const int p2[2] = {1, 0};
    Node *wt = ir_transpose(g, wm, p2, loc, NULL);
    Node *y = ir_matmul(g, patches, wt, loc, NULL);
    if (n->nin == 3)
        y = ir_binary(g, OP_ADD, y, n->in[2], loc, NULL);
    /* [B, HP*WQ, O] -> [B, O, HP*WQ] -> [B?, O, HP, WQ] */
    static const int p3[3] = {0, 2, 1};
    Node *yt = ir_transpose(g, y, p3, loc, NULL);
    return ir_reshape(g, yt, n->rank, n->shape, loc, NULL);
}

/* What n can be replaced by, or NULL. */
static Node *simplify(Graph *g, Node *n)
{
    Node *x = n->nin ? n->in[0] : NULL;
    switch (n->op) {
    case OP_TRANSPOSE: {
        int identity = 1;
        for (int i = 0; i < n->rank; i++)
            identity &= n->at.perm[i] == i;
        if (identity)
            return x;
        if (x->op == OP_TRANSPOSE) {
            int perm[IR_MAX_RANK];
            identity = 1;
            for (int i = 0; i < n->rank; i++) {
                perm[i] = x->at.perm[n->at.perm[i]];
                identity &= perm[i] == i;
            }
            if (identity)
                return x->in[0];
            return ir_transpose(g, x->in[0], perm, n->loc, NULL);
        }
        return NULL;
    }
    case OP_RESHAPE:
        if (same_type(n, x))
            return x;
        if (x->op == OP_RESHAPE)
            return ir_reshape(g, x->in[0], n->rank, n->shape, n->loc, NULL);
        return NULL;
    case OP_CAST:
        return same_type(n, x) ? x : NULL;
    case OP_WEIGHT: {
        /* a weight holding one number (ONNX exporters make initializers of the 2 in Pow(x, 2) and
         * of a layernorm's epsilon) is a constant: the patterns of the other passes read constants */
        for (int i = 0; i < n->rank; i++)
            if (!dim_eq(n->shape[i], dim_const(1)))
                return NULL;
        if (!n->at.data || dtype_traits[n->dtype].block > 1 || dtype_traits[n->dtype].size < 1)
            return NULL; /* packed (4-bit, block-quantized) types stay weights */
        size_t bytes = (size_t)dtype_traits[n->dtype].size;
        void *copy = arena_alloc(g->arena, bytes);
        memcpy(copy, n->at.data, bytes);
        return ir_const(g, n->dtype, n->rank, n->shape, copy, n->loc);
    }
    case OP_CONV2D:
        return patch_conv(g, n);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV: {
        double v;
        int neutral = n->op == OP_ADD || n->op == OP_SUB ? 0 : 1;
        if (scalar_const(n->in[1], &v) && v == neutral && same_type(n, n->in[0]))
            return n->in[0];
        if ((n->op == OP_ADD || n->op == OP_MUL) && scalar_const(n->in[0], &v) && v == neutral &&
            same_type(n, n->in[1]))
            return n->in[1];
        return NULL;
    }
    default:
        return NULL;
    }
}

/* A hash of what same_node compares, but attributes (equal nodes hash alike; nodes differing only
 * in attributes share a bucket, which same_node then tells apart). */
static uint64_t node_hash(const Node *n)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
    MIX(n->op);
    MIX(n->dtype);
    MIX(n->rank);
    for (int i = 0; i < n->rank; i++)
        MIX(dim_hash(n->shape[i]));
    for (int i = 0; i < n->nin; i++)
        MIX(n->in[i]->id);
    if (n->name)
        for (const char *c = n->name; *c; c++)
            MIX(*c);
    if (n->op == OP_CONST && n->at.data && n->rank == 0) /* scalars: many, and of few types */
        for (int i = 0; i < dtype_traits[n->dtype].size; i++)
            MIX(((const unsigned char *)n->at.data)[i]);
#undef MIX
    return h;
}

/* Common subexpressions: the first of equal nodes stays. Nodes go through a hash table in graph
 * order, each with its inputs already replaced, so one sweep merges whole chains in O(n) (a
 * pairwise comparison took minutes on an unrolled loop of 100,000 layers). */
static int cse(Graph *g)
{
    int n = g->nnode, changes = 0;
    size_t cap = 16;
    while (cap < 2 * (size_t)n)
        cap *= 2;
    Node **table = calloc(cap, sizeof *table), **rep = calloc((size_t)n + 1, sizeof *rep);
    KILN_ASSERT(table && rep);
    for (int i = 0; i < n; i++)
        g->nodes[i]->id = i;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        for (int j = 0; j < x->nin; j++)
            if (rep[x->in[j]->id])
                x->in[j] = rep[x->in[j]->id];
        for (size_t k = node_hash(x) & (cap - 1);; k = (k + 1) & (cap - 1)) {
            if (!table[k]) {
                table[k] = x;
                break;
            }
            if (same_node(table[k], x)) {
                rep[i] = table[k];
                changes++;
                break;
            }
        }
    }
    for (int i = 0; i < g->noutput; i++)
        if (rep[g->outputs[i].node->id])
            g->outputs[i].node = rep[g->outputs[i].node->id];
    if (changes)
        g->planned = 0;
    free(table);
    free(rep);
    return changes;
}

int pass_canonicalize(Graph *g, const PassOptions *o)
{
    int changes = 0;
    for (int round = 0; round < 32; round++) {
        int before = changes;
        /* simplifications: a rewritten node's users take its replacement */
        for (int i = 0; i < g->nnode; i++) {
            Node *n = g->nodes[i];
            ir_set_origin(g, n); /* what replaces n stays in its layer and scope */
            Node *r = simplify(g, n);
            if (r && r != n) {
                ir_replace_uses(g, n, r);
                changes++;
            }
        }
        ir_set_origin(g, NULL);
        ir_toposort(g);
        ir_compact(g);
        changes += cse(g);
        ir_compact(g);
        if (changes == before)
            break;
    }
    (void)o;
    return changes;
}
