/* entry.c: state and several entry points of one graph.
 *
 * A model may own persistent state tensors (a KV cache, a position counter) and several entries
 * (prefill, decode) sharing one weights blob and one state. The graph keeps one node list for all
 * entries, so weights and common subexpressions are shared and every pass runs once; what belongs
 * to an entry is tagged: its INPUT nodes (Node.entry), its outputs and state updates (Output.entry,
 * Output.update). An update is kept in Graph.outputs on purpose: every pass that treats outputs as
 * roots (dead code, use counts, plan-memory) then keeps and stores updates without knowing about
 * them. An entry computes the nodes its outputs and updates depend on, in graph order; a `state`
 * node reads the state's value when the call starts, and the updates take effect together at the
 * end of the call (plan-memory writes an update straight into the state when nothing later in the
 * entry reads the old value, see passes/plan_memory.c).
 *
 * A graph without declared entries is the classic single-entry graph: one entry "run" with every
 * input and output and no state; it prints exactly as before.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static void *grow_array(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    int c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    void *q = realloc(p, (size_t)c * elem);
    KILN_ASSERT(q);
    *cap = c;
    return q;
}

int ir_find_state(const Graph *g, const char *name)
{
    for (int i = 0; i < g->nstate; i++)
        if (!strcmp(g->states[i].name, name))
            return i;
    return -1;
}

int ir_add_state(Graph *g, const char *name, DType dt, int rank, const Dim *shape)
{
    KILN_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    if (ir_find_state(g, name) >= 0)
        return -1;
    g->states = grow_array(g->states, &g->capstate, g->nstate + 1, sizeof(StateDecl));
    StateDecl *s = &g->states[g->nstate];
    memset(s, 0, sizeof *s);
    s->name = arena_strdup(g->arena, name);
    s->dtype = dt;
    s->rank = rank;
    if (rank)
        memcpy(s->shape, shape, sizeof(Dim) * (size_t)rank);
    return g->nstate++;
}

int ir_find_entry(const Graph *g, const char *name)
{
    for (int i = 0; i < g->nentry; i++)
        if (!strcmp(g->entries[i].name, name))
            return i;
    if (!g->nentry && !strcmp(name, "run"))
        return 0;
    return -1;
}

int ir_add_entry(Graph *g, const char *name)
{
    for (int i = 0; i < g->nentry; i++)
        if (!strcmp(g->entries[i].name, name))
            return -1;
    g->entries = grow_array(g->entries, &g->capentry, g->nentry + 1, sizeof(Entry));
    g->entries[g->nentry].name = arena_strdup(g->arena, name);
    return g->nentry++;
}

void ir_add_update(Graph *g, const char *state, Node *n)
{
    ir_add_output(g, state, n);
    g->outputs[g->noutput - 1].update = 1;
}

int ir_nentries(const Graph *g)
{
    return g->nentry ? g->nentry : 1;
}

const char *ir_entry_name(const Graph *g, int e)
{
    return g->nentry ? g->entries[e].name : "run";
}

unsigned char *ir_entry_needs(Graph *g, int e)
{
    unsigned char *need = calloc((size_t)g->nnode + 1, 1);
    KILN_ASSERT(need);
    for (int i = 0; i < g->nnode; i++)
        g->nodes[i]->id = i;
    for (int k = 0; k < g->noutput; k++)
        if (g->outputs[k].entry == e)
            need[g->outputs[k].node->id] = 1;
    for (int k = 0; k < g->ninput; k++)
        if (g->inputs[k]->entry == e)
            need[g->inputs[k]->id] = 1;
    for (int i = g->nnode - 1; i >= 0; i--)
        if (need[i])
            for (int j = 0; j < g->nodes[i]->nin; j++)
                need[g->nodes[i]->in[j]->id] = 1;
    return need;
}

int ir_entry_inputs(const Graph *g, int e, int *ix)
{
    int k = 0;
    for (int i = 0; i < g->ninput; i++)
        if (g->inputs[i]->entry == e)
            ix[k++] = i;
    return k;
}

int ir_entry_outputs(const Graph *g, int e, int update, int *ix)
{
    int k = 0;
    for (int i = 0; i < g->noutput; i++)
        if (g->outputs[i].entry == e && !g->outputs[i].update == !update)
            ix[k++] = i;
    return k;
}

int64_t ir_state_bytes(const Graph *g, int s, int64_t *off)
{
    int64_t at = 0, bytes = 0;
    for (int i = 0; i <= s; i++) {
        const StateDecl *d = &g->states[i];
        at += bytes;
        bytes = dtype_traits[d->dtype].size;
        for (int k = 0; k < d->rank; k++)
            bytes *= dim_value(d->shape[k]);
        bytes = (bytes + 63) & ~(int64_t)63;
    }
    if (off)
        *off = at;
    return bytes;
}

int64_t ir_states_bytes(const Graph *g)
{
    if (!g->nstate)
        return 0;
    int64_t off, bytes = ir_state_bytes(g, g->nstate - 1, &off);
    return off + bytes;
}
