/* fuse_loops.c: the second half of fuse-ops: which values are computed where they are used.
 *
 * Every elementwise node would otherwise be its own loop over memory: `gelu(x @ w + b)` writes the
 * product, reads it back to add the bias, writes that, reads it back for the GELU. This half marks
 * nodes `inline` (Node.inl): computed inside the loop of their one consumer and never stored. The
 * code generator then emits one loop per stored elementwise node (its *root*) evaluating the whole
 * tree of inline nodes under it for each element, and runs a root whose tree holds an inline matmul
 * as that matmul's epilogue: on each micro-tile of the product, in cache, right after its last block
 * of K (codegen/gemm.c), so `x + gelu(x @ w + b)` is one kernel.
 *
 * An elementwise node is inline when it is no output, all its uses are by one elementwise node of the
 * same shape (a node broadcast into a larger one would be computed once per element of the larger:
 * left stored), and its dtype computes as it stores (f32, f64, bool: an f16 or an integer kept in a
 * register would skip the rounding or wrapping the interpreter does at each node).
 * A matmul is inline under the same conditions when it computes in f32 with a product the packed
 * kernel runs (a matrix or a batch of them on the right), its root stores f32 and holds no other
 * inline matmul; a qmatmul (choose-quant's) likewise: qgemm.c runs the epilogue on each micro-tile
 * of the int8 GEMM, quant.c's portable kernels as a loop after the product. A root reads at most MAX_LEAVES stored values; a tree that would read more is left
 * as it was. A tree is at most MAX_DEPTH nodes deep.
 */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

enum {
    MAX_LEAVES = 12, /* codegen: CG_MAX_LEAVES */
    MAX_DEPTH = 64,  /* inline nodes nested under a root (an unrolled chain of 100,000 adds is cut) */
};

typedef struct Uses {
    Node **user; /* the one consumer of each node, NULL when it has none or several */
    int *n;      /* distinct consumers, outputs counted as two */
} Uses;

static Uses uses_of(const Graph *g)
{
    Uses u = {calloc((size_t)g->nnode + 1, sizeof(Node *)), calloc((size_t)g->nnode + 1, sizeof(int))};
    KILN_ASSERT(u.user && u.n);
    Node **last = calloc((size_t)g->nnode + 1, sizeof(Node *));
    KILN_ASSERT(last);
    for (int i = 0; i < g->nnode; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) {
            int k = g->nodes[i]->in[j]->id;
            if (last[k] != g->nodes[i])
                u.n[k]++;
            last[k] = g->nodes[i];
        }
    for (int i = 0; i < g->noutput; i++)
        u.n[g->outputs[i].node->id] += 2;
    for (int i = 0; i < g->nnode; i++)
        u.user[i] = u.n[i] == 1 ? last[i] : NULL;
    free(last);
    return u;
}

static int keeps_dtype(DType t)
{
    return t == DT_F32 || t == DT_F64 || t == DT_BOOL;
}

/* A product gemm.c runs: f32, a matrix (or a batch) on the right, a batch on the left when the
 * right is batched. */
static int packed_product(const Node *m)
{
    const Node *a = m->in[0], *b = m->in[1];
    return m->dtype == DT_F32 && a->dtype == DT_F32 && b->dtype == DT_F32 && b->rank >= 2 && a->rank >= 1 &&
           !(b->rank > 2 && a->rank < 2);
}

/* The stored node whose loop computes x. */
static const Node *root_of(const Uses *u, const Node *x)
{
    while (x->inl)
        x = u->user[x->id];
    return x;
}

/* Counts the distinct stored values under n (seen marks them), and inline matmuls in *mms. */
static int leaves(const Node *n, unsigned char *seen, int *mms)
{
    int k = 0;
    for (int j = 0; j < n->nin; j++) {
        const Node *x = n->in[j];
        if (x->inl && ir_is_product(x)) {
            (*mms)++;
            for (int t = 0; t < x->nin; t++)
                if (!seen[x->in[t]->id]++)
                    k++;
        } else if (x->inl) {
            k += leaves(x, seen, mms);
        } else if (!seen[x->id]++) {
            k++;
        }
    }
    return k;
}

static void unmark(Node *n)
{
    for (int j = 0; j < n->nin; j++)
        if (n->in[j]->inl) {
            n->in[j]->inl = 0;
            unmark(n->in[j]);
        }
}

int fuse_loops(Graph *g, const PassOptions *o)
{
    Uses u = uses_of(g);
    int marked = 0;
    /* depth[i]: inline levels under node i; a chain deeper than MAX_DEPTH is cut (stored) there, so
     * that the recursions over trees, here and in the code generator, stay shallow on any graph */
    int *depth = calloc((size_t)g->nnode + 1, sizeof(int));
    KILN_ASSERT(depth);
    for (int i = 0; i < g->nnode; i++) {
        Node *x = g->nodes[i], *c = u.user[i];
        for (int j = 0; j < x->nin; j++)
            if (x->in[j]->inl && depth[x->in[j]->id] + 1 > depth[i])
                depth[i] = depth[x->in[j]->id] + 1;
        if (!c || !(op_info[c->op].flags & F_EW) || !ir_same_shape(x, c) || !keeps_dtype(x->dtype))
            continue;
        if ((op_info[x->op].flags & F_EW) && depth[i] < MAX_DEPTH)
            x->inl = 1;
    }
    free(depth);
    /* matmuls, once the chains above them are known: one per root */
    int explain = o->explain && !strcmp(o->explain, "fuse-ops");
    for (int i = 0; i < g->nnode; i++) {
        Node *x = g->nodes[i], *c = u.user[i];
        if (!ir_is_product(x))
            continue;
        const char *why = NULL;
        if (x->op == OP_MATMUL && !packed_product(x))
            why = "not an f32 product of a matrix (or a batch of them) on the right";
        else if (u.n[i] != 1)
            why = u.n[i] >= 2 && !c ? "its result has several readers, or is an output" : "nothing reads its result";
        else if (!(op_info[c->op].flags & F_EW))
            why = "its reader is not elementwise";
        else if (!ir_same_shape(x, c))
            why = "its reader broadcasts it to another shape";
        else {
            const Node *r = root_of(&u, c);
            unsigned char *seen = calloc((size_t)g->nnode + 1, 1);
            KILN_ASSERT(seen);
            int mms = 0;
            leaves(r, seen, &mms);
            free(seen);
            if (r->dtype != DT_F32)
                why = "the value its epilogue stores is not f32";
            else if (mms)
                why = "the loop it would run in already holds another product";
            else
                x->inl = 1;
        }
        if (why && explain)
            diag_note(o->d, x->loc, "matmul without an epilogue: %s", why);
    }
    /* roots that would read too many values are not fused */
    for (int i = g->nnode - 1; i >= 0; i--) {
        Node *x = g->nodes[i];
        if (x->inl)
            continue;
        unsigned char *seen = calloc((size_t)g->nnode + 1, 1);
        KILN_ASSERT(seen);
        int mms = 0;
        if (leaves(x, seen, &mms) > MAX_LEAVES)
            unmark(x);
        free(seen);
    }
    for (int i = 0; i < g->nnode; i++)
        marked += g->nodes[i]->inl;
    free(u.user);
    free(u.n);
    return marked;
}
