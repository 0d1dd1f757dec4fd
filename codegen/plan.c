/* plan.c: where every node's result lives at run time.
 *
 * Weights and constants go into one blob, each tensor 64-byte aligned, in graph order; the blob is
 * embedded in the object or written beside it. Inputs are read in place from the caller's buffers;
 * an output node writes straight into the caller's output buffer. A reshape is free: it shares its
 * input's storage. Every other node gets an offset in one activation arena, sized for every symbolic
 * size at its bound: intervals from a node's definition to its last use (through reshapes sharing
 * its storage) are packed first-fit, so buffers whose lifetimes do not overlap share memory.
 * A node never shares memory with its own inputs (no in-place updates yet). An inline node (fuse-ops)
 * has no storage; the values it reads live until the stored node that computes it.
 *
 * A matmul whose right operand is a constant matrix gets a copy of it packed at compile time for its
 * kernel (gemm.c), placed after the weights and constants (Plan.packed). A node that nothing reads
 * but such packing (the transpose of nn.Linear's weight, or the weight itself) is folded: it gets
 * no kernel, no arena buffer and no room in the blob.
 */
#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

static int64_t align64(int64_t n)
{
    return (n + 63) & ~(int64_t)63;
}

/* The most bytes n can take: each dimension at its largest (a dimension may shrink as a symbol
 * grows, like 40 - T, so "every symbol at its bound" is not always the largest). */
static int64_t bytes_at_bound(const Graph *g, const Node *n)
{
    int64_t k = dtype_traits[n->dtype].size;
    for (int i = 0; i < n->rank; i++)
        k *= dim_max(g, n->shape[i]);
    return k;
}

typedef struct Block {
    int64_t off, size;
    int last; /* node index of the last use */
} Block;

void cg_plan_free(Plan *p)
{
    free(p->place);
    free(p->weights);
    free(p->copy_out);
    free(p->packed);
    free(p->folded);
    memset(p, 0, sizeof *p);
}

int cg_plan(Cg *cg)
{
    const Graph *g = cg->g;
    Plan *p = &cg->plan;
    int n = g->nnode;
    p->place = calloc((size_t)n + 1, sizeof *p->place);
    p->copy_out = calloc((size_t)g->noutput + 1, sizeof *p->copy_out);
    int *root = malloc(sizeof(int) * ((size_t)n + 1)), *last = malloc(sizeof(int) * ((size_t)n + 1));
    p->packed = malloc(sizeof(int64_t) * ((size_t)n + 1));
    p->folded = calloc((size_t)n + 1, 1);
    int64_t *pbytes = calloc((size_t)n + 1, sizeof *pbytes);
    unsigned char *needed = calloc((size_t)n + 1, 1), *packs = calloc((size_t)n + 1, 1);
    KILN_ASSERT(p->place && p->copy_out && root && last && p->packed && p->folded && pbytes && needed && packs);

    /* packed copies, and the nodes only they read: consumers come after their inputs, so walking
     * backwards settles every consumer of a node before the node itself */
    for (int k = 0; k < g->noutput; k++)
        needed[g->outputs[k].node->id] = 1;
    for (int i = n - 1; i >= 0; i--) {
        const Node *x = g->nodes[i];
        p->packed[i] = -1;
        pbytes[i] = x->op == OP_MATMUL ? cg_gemm_packed_bytes(cg, x) : 0;
        int movable = x->op == OP_WEIGHT || x->op == OP_CONST || x->op == OP_TRANSPOSE || x->op == OP_RESHAPE;
        p->folded[i] = movable && packs[i] && !needed[i];
        for (int j = 0; j < x->nin; j++) {
            int in = x->in[j]->id;
            if (p->folded[i] || (j == 1 && pbytes[i] > 0))
                packs[in] = 1;
            else
                needed[in] = 1;
        }
    }

    /* weights and constants that kernels read, then the packed copies: the blob */
    int64_t wbytes = 0;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if ((x->op == OP_WEIGHT || x->op == OP_CONST) && !p->folded[i]) {
            p->place[i] = (Place){HOME_WEIGHTS, 0, wbytes};
            wbytes += align64(bytes_at_bound(g, x));
        }
    }
    for (int i = 0; i < n; i++)
        if (pbytes[i] > 0) {
            p->packed[i] = wbytes;
            wbytes += align64(pbytes[i]);
        }
    p->weights_bytes = wbytes;
    p->weights = calloc(1, (size_t)wbytes + 64);
    KILN_ASSERT(p->weights);
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if (p->place[i].home == HOME_WEIGHTS)
            memcpy(p->weights + p->place[i].offset, x->at.data, (size_t)bytes_at_bound(g, x));
        if (p->packed[i] >= 0)
            cg_gemm_pack(cg, x, p->weights + p->packed[i]);
    }
    free(pbytes);
    free(needed);
    free(packs);
    uint64_t h = 1469598103934665603ull ^ (uint64_t)wbytes;
    for (int64_t i = 0; i < wbytes; i++)
        h = (h ^ p->weights[i]) * 1099511628211ull;
    p->weights_hash = h;

    /* inputs and outputs */
    for (int i = 0; i < g->ninput; i++)
        p->place[g->inputs[i]->id] = (Place){HOME_INPUT, i, 0};
    for (int k = 0; k < g->noutput; k++) {
        const Node *x = g->outputs[k].node;
        if (p->place[x->id].home == HOME_NONE)
            p->place[x->id] = (Place){HOME_OUTPUT, k, 0};
        else
            p->copy_out[k] = 1; /* an input, a weight, or a node that is already another output */
    }

    /* an inline node is computed in the loop of the stored node above it (its host), which is where
     * the inline node's inputs are read */
    int *host = malloc(sizeof(int) * ((size_t)n + 1));
    KILN_ASSERT(host);
    for (int i = 0; i < n; i++)
        host[i] = i;
    for (int i = n - 1; i >= 0; i--)
        for (int j = 0; j < g->nodes[i]->nin; j++) {
            const Node *x = g->nodes[i]->in[j];
            if (x->inl)
                host[x->id] = host[i];
        }

    /* reshapes share storage; lifetimes are per storage root */
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        root[i] = x->op == OP_RESHAPE && p->place[i].home == HOME_NONE ? root[x->in[0]->id] : i;
        last[i] = i;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) {
            int r = root[g->nodes[i]->in[j]->id];
            if (last[r] < host[i])
                last[r] = host[i];
        }
    for (int k = 0; k < g->noutput; k++)
        if (p->copy_out[k])
            last[root[g->outputs[k].node->id]] = n; /* copied at the very end */

    Block *live = malloc(sizeof(Block) * ((size_t)n + 1));
    KILN_ASSERT(live);
    int nlive = 0;
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        /* buffers whose last use came before this node are free again */
        int k = 0;
        for (int j = 0; j < nlive; j++)
            if (live[j].last >= i)
                live[k++] = live[j];
        nlive = k;
        if (p->place[i].home != HOME_NONE || p->folded[i] || x->inl)
            continue;
        if (root[i] != i) {
            p->place[i] = p->place[root[i]];
            continue;
        }
        int64_t size = align64(bytes_at_bound(g, x));
        /* first fit: the lowest offset where [off, off+size) misses every live block */
        int64_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < nlive; j++)
                if (off < live[j].off + live[j].size && live[j].off < off + size) {
                    off = live[j].off + live[j].size;
                    moved = 1;
                }
        }
        p->place[i] = (Place){HOME_ARENA, 0, off};
        live[nlive++] = (Block){off, size, last[i]};
        if (off + size > top)
            top = off + size;
    }
    p->arena_bytes = top;
    free(live);
    free(host);
    free(root);
    free(last);
    return 0;
}
