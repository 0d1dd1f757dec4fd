/* plan.c: where every node's result lives at run time.
 *
 * Weights and constants go into one blob, each tensor 64-byte aligned, in graph order; the blob is
 * embedded in the object or written beside it. Inputs are read in place from the caller's buffers;
 * an output node writes straight into the caller's output buffer. Every other stored node has the
 * offset in the activation arena that the plan-memory pass gave it (passes/plan_memory.c: lifetimes,
 * first fit, in place where legal; run here when the pipeline did not); a reshape shares its input's
 * storage, and an inline node (fuse-ops) has none.
 *
 * A matmul whose right operand is a constant matrix gets a copy of it packed at compile time for its
 * kernel (gemm.c), placed after the weights and constants (Plan.packed). A node that nothing reads
 * but such packing (the transpose of nn.Linear's weight, or the weight itself) is folded: it gets
 * no kernel, no arena buffer and no room in the blob. Products of one operand share one packed copy,
 * and a gather of rows of a weight that a product packs transposed (a tied embedding table) reads
 * them from that copy (Plan.gather_from), so the weight itself is not stored. Likewise a qmatmul's
 * weights that the int8 or bf16 GEMM packs (qgemm.c) are stored packed only.
 */
#include "codegen/codegen.h"
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

static int64_t align64(int64_t n)
{
    return (n + 63) & ~(int64_t)63;
}

void cg_plan_free(Plan *p)
{
    free(p->place);
    free(p->weights);
    free(p->copy_out);
    free(p->packed);
    free(p->folded);
    free(p->gather_from);
    free(p->view);
    free(p->writes_into);
    free(p->written_by);
    memset(p, 0, sizeof *p);
}

/* A constant that only qmatmuls read, each as the weights it packs (cg_qgemm_pack: the kernel reads
 * the packed copy alone), is folded too: the blob holds its packed copy only. So are the scales and
 * zero points of the weight-only kernel's products (qwgemm.c copies them into its packed copy too). */
static void fold_qweights(Cg *cg, Plan *p)
{
    const Graph *g = cg->g;
    int *uses = ir_use_counts((Graph *)g), *packs = calloc((size_t)g->nnode + 1, sizeof(int));
    KILN_ASSERT(packs);
    for (int i = 0; i < g->nnode; i++) {
        const Node *x = g->nodes[i];
        if (x->op == OP_QMATMUL && cg_qgemm_packed_bytes(cg, x) > 0)
            packs[x->in[1]->id]++;
        for (int j = 2; x->op == OP_QMATMUL && j < x->nin && cg_qwgemm_packed_bytes(cg, x) > 0; j++)
            packs[x->in[j]->id]++;
    }
    for (int i = 0; i < g->nnode; i++)
        if (packs[i] && packs[i] == uses[i] && (g->nodes[i]->op == OP_CONST || g->nodes[i]->op == OP_WEIGHT))
            p->folded[i] = 1;
    free(uses);
    free(packs);
}

int cg_plan(Cg *cg)
{
    const Graph *g = cg->g;
    Plan *p = &cg->plan;
    int n = g->nnode;
    p->place = calloc((size_t)n + 1, sizeof *p->place);
    p->copy_out = calloc((size_t)g->noutput + 1, sizeof *p->copy_out);
    p->packed = malloc(sizeof(int64_t) * ((size_t)n + 1));
    p->folded = calloc((size_t)n + 1, 1);
    p->gather_from = malloc(sizeof(int) * ((size_t)n + 1));
    KILN_ASSERT(p->place && p->copy_out && p->packed && p->folded && p->gather_from);
    if (!g->planned) /* the graph did not go through plan-memory (--passes without it, a .kir file) */
        plan_memory((Graph *)g);
    plan_folded(g, p->folded, p->gather_from);
    fold_qweights(cg, p);
    p->view = malloc((size_t)n + 1);
    p->writes_into = malloc(sizeof(int) * ((size_t)n + 1));
    p->written_by = malloc(sizeof(int) * ((size_t)n + 1));
    KILN_ASSERT(p->view && p->writes_into && p->written_by);
    plan_views(g, p->view, p->writes_into);
    for (int i = 0; i < n; i++)
        p->written_by[i] = -1;
    for (int i = 0; i < n; i++)
        if (p->writes_into[i] >= 0)
            p->written_by[p->writes_into[i]] = i;

    /* weights and constants that kernels read, then the packed copies: the blob */
    int64_t wbytes = 0;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if ((x->op == OP_WEIGHT || x->op == OP_CONST) && !p->folded[i]) {
            p->place[i] = (Place){HOME_WEIGHTS, 0, wbytes};
            wbytes += align64(ir_bytes_at_bound(g, x));
        }
    }
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        int64_t bytes = x->op == OP_QMATMUL ? cg_qgemm_packed_bytes(cg, x)
                                            : cg_gemm_packed_bytes(cg, x); /* 0 unless ir_packed_rhs says so */
        p->packed[i] = bytes > 0 ? wbytes : -1;
        for (int j = 0; j < i && bytes > 0; j++) /* products of one operand share one copy */
            if (p->packed[j] >= 0 && g->nodes[j]->op == x->op && g->nodes[j]->in[1] == x->in[1] &&
                (x->op != OP_QMATMUL || x->nin < 3 || g->nodes[j]->in[2] == x->in[2])) {
                p->packed[i] = p->packed[j];
                bytes = 0;
            }
        wbytes += align64(bytes);
    }
    p->weights_bytes = wbytes;
    p->weights = calloc(1, (size_t)wbytes + 64);
    KILN_ASSERT(p->weights);
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if (p->place[i].home == HOME_WEIGHTS)
            memcpy(p->weights + p->place[i].offset, x->at.data, (size_t)ir_bytes_at_bound(g, x));
        if (p->packed[i] >= 0 && x->op == OP_QMATMUL)
            cg_qgemm_pack(cg, x, p->weights + p->packed[i]);
        else if (p->packed[i] >= 0) /* a shared copy is written again, the same bytes */
            cg_gemm_pack(cg, x, p->weights + p->packed[i]);
    }
    uint64_t h = 1469598103934665603ull ^ (uint64_t)wbytes;
    for (int64_t i = 0; i < wbytes; i++)
        h = (h ^ p->weights[i]) * 1099511628211ull;
    p->weights_hash = h;

    /* inputs and outputs (indices within their entry), states and the updates written straight into
     * them (plan_memory decided which: they are the updates it left without an arena buffer) */
    int *at = calloc((size_t)ir_nentries(g), sizeof(int));
    KILN_ASSERT(at);
    for (int i = 0; i < g->ninput; i++)
        p->place[g->inputs[i]->id] = (Place){HOME_INPUT, at[g->inputs[i]->entry]++, 0};
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->op == OP_STATE) {
            int64_t off;
            ir_state_bytes(g, ir_find_state(g, g->nodes[i]->name), &off);
            p->place[i] = (Place){HOME_STATE, 0, off};
        }
    memset(at, 0, sizeof(int) * (size_t)ir_nentries(g));
    for (int k = 0; k < g->noutput; k++) {
        const Output *o = &g->outputs[k];
        const Node *x = o->node;
        int local = o->update ? -1 : at[o->entry]++;
        if (p->place[x->id].home != HOME_NONE || p->folded[x->id] || x->inl ||
            !(o->update ? plan_update_direct((Graph *)g, k) : plan_output_single(g, k))) {
            p->copy_out[k] = 1; /* an input, a weight, a state, or a node with another home */
        } else if (o->update) {
            int64_t off;
            ir_state_bytes(g, ir_find_state(g, o->name), &off);
            p->place[x->id] = (Place){HOME_STATE, 0, off};
        } else {
            p->place[x->id] = (Place){HOME_OUTPUT, local, 0};
        }
    }
    free(at);

    /* the arena, as plan-memory laid it out; a reshape outside it shares its input's place */
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if (p->place[i].home != HOME_NONE || p->folded[i] || x->inl || p->view[i])
            continue;
        if (x->arena >= 0) {
            p->place[i] = (Place){HOME_ARENA, 0, x->arena};
            if (x->arena + ir_bytes_at_bound(g, x) > top)
                top = x->arena + ir_bytes_at_bound(g, x);
        } else {
            KILN_ASSERT(x->op == OP_RESHAPE);
            p->place[i] = p->place[x->in[0]->id];
        }
    }
    KILN_ASSERT(top <= g->arena_bytes);
    p->arena_bytes = g->arena_bytes;
    return 0;
}
