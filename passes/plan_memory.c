/* plan_memory.c: the plan-memory pass: one activation arena, an offset for every stored intermediate.
 *
 * The last pass. It decides which nodes own a buffer in the arena and where: not the inputs (read in
 * place from the caller's buffers), weights and constants (the weights blob), an output (written
 * straight into the caller's output buffer), an inline node (computed in its consumer's loop, see
 * fuse_loops.c), a reshape (it shares the storage of its input), a slice that is one contiguous block
 * of an intermediate (leading dimensions 1: it is that block of the storage), nor what only the compile-time
 * packing of a matmul's constant operand reads (the transpose of nn.Linear's weight: folded).
 * Everything else gets an interval of the graph's order, from its definition to its last use (the
 * last use of anything sharing its storage, and for a value an inline node reads, the stored node
 * that computes the inline one), every buffer sized for every symbol at its bound and 64-byte
 * aligned. Each interval goes at the lowest offset free for its whole lifetime, placed once in the
 * graph's order and once largest first; the smaller arena is kept (place_blocks).
 *
 * Views around attention (plan_views): a slice, reshape or transpose that only attention nodes read as
 * q, k or v is a strided view of what lies below it, so it is not stored (it shares its base's
 * storage, whose lifetime extends to the attention); a transpose that is an attention's only reader
 * shares that attention's buffer, which the attention writes in the transpose's layout.
 *
 * In place: a stored elementwise node writes over one of the values its loop reads when that value
 * has exactly its shape and element size, lives in the arena, and this node is its last reader (the
 * loop reads each element before it writes the same element). Not under a matmul epilogue, whose
 * product is written to the buffer before the epilogue reads the other values.
 *
 * State (ir/entry.c): a `state` node reads the state buffer, outside the arena. A state update is
 * written straight into the state when that is safe (plan_update_direct), a scatter whose base is the
 * state's read then in place (only the written rows are copied); otherwise the update gets an arena
 * buffer and the entry copies it into the state at its end. An output of several entries lives in the
 * arena and is copied into each entry's output buffer.
 *
 * A cls_probs is its attention's second result: the attention's kernel writes it, so its block lives
 * from the attention on, and it reads nothing of the attention's storage (it is no reader there: the
 * attention may still write into its transpose's buffer, and its block may end before the cls_probs).
 *
 * Results: Node.arena (offset, or -1), Node.inplace, Graph.arena_bytes, Graph.planned. The code
 * generator places buffers from them (codegen/plan.c runs plan_memory itself on a graph that did not
 * go through this pass), and `kiln check` reports the arena's size.
 */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

static int64_t align64(int64_t n)
{
    return (n + 63) & ~(int64_t)63;
}

/* The matmul whose packed copy can serve gather x as its table: x gathers rows (axis 0) of a 2-D f32
 * weight or constant W that some matmul reads as transpose(W) and packs (a language model's tied
 * embedding: tokens look rows of wte up, the logits multiply by wte^T). NULL when none. */
static const Node *packed_table(const Graph *g, const Node *x)
{
    if (x->op != OP_GATHER || x->at.axis != 0 || x->in[0]->rank != 2 || x->dtype != DT_F32)
        return NULL;
    const Node *w = x->in[0];
    for (int i = 0; i < g->nnode; i++) {
        const Node *m = g->nodes[i];
        int trans;
        if (ir_packed_rhs(m, &trans) == w && trans &&
            m->in[1]->op == OP_TRANSPOSE && m->in[1]->in[0] == w)
            return m;
    }
    return NULL;
}

void plan_folded(const Graph *g, unsigned char *folded, int *gather_from)
{
    int n = g->nnode;
    unsigned char *needed = calloc((size_t)n + 1, 1), *packs = calloc((size_t)n + 1, 1);
    KILN_ASSERT(needed && packs);
    /* consumers come after their inputs, so walking backwards settles every consumer of a node
     * before the node itself */
    for (int k = 0; k < g->noutput; k++)
        needed[g->outputs[k].node->id] = 1;
    for (int i = n - 1; i >= 0; i--) {
        const Node *x = g->nodes[i];
        int movable = x->op == OP_WEIGHT || x->op == OP_CONST || x->op == OP_TRANSPOSE || x->op == OP_RESHAPE ||
                      x->op == OP_CAST;
        folded[i] = movable && packs[i] && !needed[i];
        int trans, packing = ir_packed_rhs(x, &trans) != NULL;
        const Node *table = packed_table(g, x);
        if (gather_from)
            gather_from[i] = table ? table->id : -1;
        for (int j = 0; j < x->nin; j++) {
            int in = x->in[j]->id;
            if (folded[i] || (j == 1 && packing) || (j == 0 && table))
                packs[in] = 1;
            else
                needed[in] = 1;
        }
    }
    free(needed);
    free(packs);
}

int64_t plan_slice_shift(const Node *x)
{
    if (x->op != OP_SLICE || !dim_is_const(x->at.start))
        return -1;
    const Node *in = x->in[0];
    for (int i = 0; i < x->at.axis; i++)
        if (!dim_eq(in->shape[i], dim_const(1)))
            return -1;
    if (dtype_traits[in->dtype].block > 1) /* packed: an element may start mid-byte */
        return -1;
    int64_t inner = dtype_traits[in->dtype].size;
    for (int i = x->at.axis + 1; i < in->rank; i++) {
        if (!dim_is_const(in->shape[i]))
            return -1;
        inner *= dim_value(in->shape[i]);
    }
    return dim_value(x->at.start) * inner;
}

/* Whether x's storage is that of state `name`: its read, or a view (reshape, slice) of it. */
static int views_state(const Node *x, const char *name)
{
    while (x->op == OP_RESHAPE || x->op == OP_SLICE)
        x = x->in[0];
    return x->op == OP_STATE && !strcmp(x->name, name);
}

/* Whether computing x reads the storage of state `name` (through inline nodes). */
static int reads_state(const Node *x, const char *name)
{
    for (int j = 0; j < x->nin; j++)
        if (views_state(x->in[j], name) || (x->in[j]->inl && reads_state(x->in[j], name)))
            return 1;
    return 0;
}

int plan_update_direct(Graph *g, int k)
{
    const Output *o = &g->outputs[k];
    Node *u = o->node;
    const char *name = o->name;
    if (!o->update || u->inl || (op_info[u->op].flags & F_SOURCE) || u->op == OP_RESHAPE || u->op == OP_SLICE)
        return 0;
    /* one home: u is no other result than updates of this one state */
    for (int j = 0; j < g->noutput; j++)
        if (g->outputs[j].node == u && (!g->outputs[j].update || strcmp(g->outputs[j].name, name)))
            return 0;
    /* u may read the state only as the base of a scatter, which it then updates in place */
    for (int j = 0; j < u->nin; j++)
        if (views_state(u->in[j], name) || (u->in[j]->inl && reads_state(u->in[j], name)))
            if (!(u->op == OP_SCATTER && j == 0 && u->in[0]->op == OP_STATE))
                return 0;
    /* nothing an entry computing u runs after it, nor any result it copies at its end, reads the old value */
    int direct = 1;
    for (int e = 0; e < ir_nentries(g) && direct; e++) {
        unsigned char *need = ir_entry_needs(g, e);
        if (need[u->id]) {
            for (int i = u->id + 1; i < g->nnode && direct; i++)
                if (need[i] && !g->nodes[i]->inl && reads_state(g->nodes[i], name))
                    direct = 0;
            for (int j = 0; j < g->noutput && direct; j++)
                if (g->outputs[j].entry == e && g->outputs[j].node != u && views_state(g->outputs[j].node, name))
                    direct = 0;
        }
        free(need);
    }
    return direct;
}

int plan_output_single(const Graph *g, int k)
{
    const Output *o = &g->outputs[k];
    for (int j = 0; j < g->noutput; j++)
        if (g->outputs[j].node == o->node && (g->outputs[j].update || g->outputs[j].entry != o->entry))
            return 0;
    return !o->update;
}

/* ---------------------------------------------------------------- views around attention */

/* C-order strides of x when its dimensions after the first are static. */
static int c_strides(const Node *x, int64_t *st)
{
    int64_t s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        st[i] = s;
        if (i > 0) {
            if (!dim_is_const(x->shape[i]))
                return 0;
            s *= dim_value(x->shape[i]);
        }
    }
    return 1;
}

static int is_one(Dim d)
{
    return dim_eq(d, dim_const(1));
}

/* The strides of reshape y of a view of x with strides is, when the reshape moves no element: each
 * group of dimensions that y splits or merges (static sizes of equal products) is contiguous in x. */
static int reshape_strides(const Node *x, const Node *y, const int64_t *is, int64_t *os)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < x->rank && is_one(x->shape[i]))
            i++;
        while (j < y->rank && is_one(y->shape[j]))
            os[j++] = 0; /* never stepped along */
        if (i == x->rank || j == y->rank)
            return i == x->rank && j == y->rank;
        if (dim_eq(x->shape[i], y->shape[j])) {
            os[j++] = is[i++];
            continue;
        }
        if (!dim_is_const(x->shape[i]) || !dim_is_const(y->shape[j]))
            return 0;
        int i0 = i, j0 = j;
        int64_t pi = dim_value(x->shape[i++]), pj = dim_value(y->shape[j++]);
        while (pi != pj) {
            if (pi < pj) {
                if (i == x->rank || !dim_is_const(x->shape[i]))
                    return 0;
                pi *= dim_value(x->shape[i++]);
            } else {
                if (j == y->rank || !dim_is_const(y->shape[j]))
                    return 0;
                pj *= dim_value(y->shape[j++]);
            }
        }
        /* x's group [i0, i) contiguous (size-1 dimensions aside), then y's group from its innermost stride */
        int64_t inner = -1, want = -1;
        for (int k = i - 1; k >= i0; k--) {
            if (dim_value(x->shape[k]) == 1)
                continue;
            if (want >= 0 && is[k] != want)
                return 0;
            if (inner < 0)
                inner = is[k];
            want = is[k] * dim_value(x->shape[k]);
        }
        int64_t s = inner < 0 ? 1 : inner;
        for (int k = j - 1; k >= j0; k--) {
            os[k] = s;
            s *= dim_value(y->shape[k]);
        }
    }
}

int plan_view(const Node *x, const unsigned char *view, PlanView *v)
{
    if (x->op != OP_SLICE && x->op != OP_RESHAPE && x->op != OP_TRANSPOSE) {
        v->base = x;
        v->offset = 0;
        return c_strides(x, v->stride);
    }
    const Node *in = x->in[0];
    if (!view[in->id]) { /* a stored input is the base: its storage is in its own C order */
        if (!c_strides(in, v->stride))
            return 0;
        v->base = in;
        v->offset = 0;
    } else if (!plan_view(in, view, v)) {
        return 0;
    }
    int64_t st[IR_MAX_RANK];
    switch (x->op) {
    case OP_TRANSPOSE:
        for (int k = 0; k < x->rank; k++)
            st[k] = v->stride[x->at.perm[k]];
        memcpy(v->stride, st, sizeof st);
        return 1;
    case OP_SLICE:
        if (!dim_is_const(x->at.start))
            return 0;
        v->offset += dim_value(x->at.start) * v->stride[x->at.axis];
        return 1;
    default:
        if (!reshape_strides(in, x, v->stride, st))
            return 0;
        memcpy(v->stride, st, sizeof st);
        return 1;
    }
}

void plan_write_strides(const Node *a, const Node *c, int64_t *stride)
{
    int64_t sc[IR_MAX_RANK];
    KILN_ASSERT(c_strides(c, sc));
    for (int k = 0; k < c->rank; k++)
        stride[c->at.perm[k]] = sc[k];
}

void plan_views(const Graph *g, unsigned char *view, int *writes_into)
{
    int n = g->nnode;
    int *uses = calloc((size_t)n + 1, sizeof(int)), *reader = malloc(sizeof(int) * ((size_t)n + 1));
    unsigned char *out = calloc((size_t)n + 1, 1), *based = calloc((size_t)n + 1, 1);
    KILN_ASSERT(uses && reader && out && based);
    for (int k = 0; k < g->noutput; k++)
        out[g->outputs[k].node->id] = 1;
    for (int i = 0; i < n; i++) {
        view[i] = 0;
        writes_into[i] = -1;
        reader[i] = -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->nin && g->nodes[i]->op != OP_CLS_PROBS; j++) { /* it reads nothing */
            uses[g->nodes[i]->in[j]->id]++;
            reader[g->nodes[i]->in[j]->id] = i;
        }
    /* Every candidate first, then candidates dropped until what is left is consistent: each view is
     * read only by attention (as q, k or v) and by other views, and is a view (contiguous rows) of the
     * first node below it that is not a view, which is stored. The base is read when the attention
     * runs, not where the view was: so not a state or an output, whose storage an update may overwrite
     * in between (an arena buffer lives until its last reader). Dropping only ever removes views, so
     * this ends. */
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        view[i] = (x->op == OP_SLICE || x->op == OP_RESHAPE || x->op == OP_TRANSPOSE) && !out[i] && !x->inl &&
                  uses[i] && x->dtype == DT_F32 && x->rank > 0; /* attention's operands have rank >= 2 */
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = n - 1; i >= 0; i--) {
            const Node *x = g->nodes[i];
            PlanView v;
            if (!view[i])
                continue;
            int ok = plan_view(x, view, &v) && v.stride[x->rank - 1] == 1 && !v.base->inl && v.base->op != OP_WEIGHT &&
                     v.base->op != OP_CONST && v.base->op != OP_STATE && !out[v.base->id];
            for (int r = i + 1; r < n && ok; r++) {
                const Node *c = g->nodes[r];
                for (int j = 0; j < c->nin; j++)
                    if (c->in[j] == x && !(view[r] || (c->op == OP_ATTENTION && c->dtype == DT_F32 && j <= 2)))
                        ok = 0;
            }
            if (!ok) {
                view[i] = 0;
                changed = 1;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        PlanView v;
        if (view[i] && plan_view(g->nodes[i], view, &v))
            based[v.base->id] = 1; /* its storage must stay in its own C order */
    }
    for (int i = 0; i < n; i++) {
        const Node *a = g->nodes[i];
        if (a->op != OP_ATTENTION || a->dtype != DT_F32 || out[i] || uses[i] != 1 || based[i])
            continue;
        const Node *c = g->nodes[reader[i]];
        int64_t sc[IR_MAX_RANK];
        if (c->op == OP_TRANSPOSE && !out[c->id] && !c->inl && !view[c->id] && c->at.perm[c->rank - 1] == c->rank - 1 &&
            c_strides(c, sc))
            writes_into[i] = c->id;
    }
    free(uses);
    free(reader);
    free(out);
    free(based);
}

typedef struct Block {
    int64_t off, size;
    int def, last; /* node indices of the definition and of the last use */
} Block;

/* Offsets for blocks b[i] with owner[i] == i (the others are not blocks): each at the lowest offset
 * where it overlaps no block already placed that is live at the same time. The order matters, and
 * neither is always best: definition order (first fit as the graph runs) and largest first (ties
 * in definition order, as TFLite's greedy-by-size planner) are both tried and the smaller arena kept.
 * Returns the arena's size. */
static int lower_offset(const void *pa, const void *pb)
{
    const Block *a = *(const Block *const *)pa, *b = *(const Block *const *)pb;
    return (a->off > b->off) - (a->off < b->off);
}

static int larger_first(const void *pa, const void *pb)
{
    const Block *a = *(const Block *const *)pa, *b = *(const Block *const *)pb;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    return (a->def > b->def) - (a->def < b->def);
}

/* Places order[0..nb) in turn; live (nb) is scratch for the placed blocks live with the current one. */
static int64_t place_in_order(Block **order, int nb, const Block **live)
{
    int64_t top = 0;
    for (int k = 0; k < nb; k++) {
        Block *x = order[k];
        int nlive = 0;
        for (int j = 0; j < k; j++)
            if (order[j]->def <= x->last && x->def <= order[j]->last)
                live[nlive++] = order[j];
        qsort(live, (size_t)nlive, sizeof *live, lower_offset);
        int64_t off = 0;
        for (int j = 0; j < nlive && live[j]->off < off + x->size; j++)
            if (live[j]->off + live[j]->size > off)
                off = live[j]->off + live[j]->size;
        x->off = off;
        if (off + x->size > top)
            top = off + x->size;
    }
    return top;
}

static int64_t place_blocks(Block *b, const int *owner, int n)
{
    Block **order = malloc(sizeof(Block *) * ((size_t)n + 1));
    const Block **live = malloc(sizeof(Block *) * ((size_t)n + 1));
    int64_t *first = malloc(sizeof(int64_t) * ((size_t)n + 1));
    KILN_ASSERT(order && live && first);
    int nb = 0;
    for (int i = 0; i < n; i++)
        if (owner[i] == i)
            order[nb++] = &b[i];
    int64_t top_order = place_in_order(order, nb, live);
    for (int k = 0; k < nb; k++)
        first[k] = order[k]->off;
    Block **sorted = malloc(sizeof(Block *) * ((size_t)nb + 1));
    KILN_ASSERT(sorted);
    memcpy(sorted, order, sizeof(Block *) * (size_t)nb);
    qsort(sorted, (size_t)nb, sizeof *sorted, larger_first);
    int64_t top = place_in_order(sorted, nb, live);
    if (top >= top_order) { /* definition order was as good: keep its offsets */
        for (int k = 0; k < nb; k++)
            order[k]->off = first[k];
        top = top_order;
    }
    free(sorted);
    free(order);
    free(live);
    free(first);
    return top;
}

/* The stored values the loop of root reads (through inline nodes); 0 when the tree holds an inline
 * matmul, or more than max values. */
static int loop_reads(const Node *n, const Node **out, int k, int max)
{
    for (int j = 0; j < n->nin && k >= 0; j++) {
        const Node *x = n->in[j];
        if (x->inl && ir_is_product(x))
            return -1;
        if (x->inl)
            k = loop_reads(x, out, k, max);
        else if (k < max)
            out[k++] = x;
        else
            return -1;
    }
    return k;
}

int plan_memory(Graph *g)
{
    int n = g->nnode;
    unsigned char *folded = calloc((size_t)n + 1, 1), *elsewhere = calloc((size_t)n + 1, 1);
    int *root = malloc(sizeof(int) * ((size_t)n + 1)), *last = malloc(sizeof(int) * ((size_t)n + 1));
    int *host = malloc(sizeof(int) * ((size_t)n + 1));
    int64_t *shift = calloc((size_t)n + 1, sizeof(int64_t)); /* bytes into the storage of root */
    unsigned char *view = malloc((size_t)n + 1);
    int *writes_into = malloc(sizeof(int) * ((size_t)n + 1)), *written_by = malloc(sizeof(int) * ((size_t)n + 1));
    KILN_ASSERT(folded && elsewhere && root && last && host && shift && view && writes_into && written_by);
    plan_folded(g, folded, NULL);
    plan_views(g, view, writes_into);
    for (int i = 0; i < n; i++)
        written_by[i] = -1;
    for (int i = 0; i < n; i++)
        if (writes_into[i] >= 0)
            written_by[writes_into[i]] = i;

    /* what lives outside the arena: sources, inputs, the caller's output buffers */
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        elsewhere[i] = x->op == OP_INPUT || x->op == OP_WEIGHT || x->op == OP_CONST || x->op == OP_STATE;
    }
    int *copied = calloc((size_t)n + 1, sizeof(int)); /* an output read from elsewhere at the end */
    unsigned char *direct = calloc((size_t)g->noutput + 1, 1);
    KILN_ASSERT(copied && direct);
    for (int k = 0; k < g->noutput; k++)
        direct[k] = g->outputs[k].update ? plan_update_direct(g, k) : plan_output_single(g, k);
    for (int k = 0; k < g->noutput; k++) {
        int id = g->outputs[k].node->id;
        if (elsewhere[id] || !direct[k])
            copied[id] = 1;
        else
            elsewhere[id] = 1;
    }

    /* reshapes share storage; an inline node is computed where its host is */
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        root[i] = i;
        /* a view attention reads through strides is its base's storage; a transpose an attention
         * writes into is that attention's */
        if (view[i] || written_by[i] >= 0) {
            root[i] = view[i] ? root[x->in[0]->id] : root[written_by[i]];
            last[i] = i;
            host[i] = i;
            continue;
        }
        if (!elsewhere[i] && x->op == OP_RESHAPE) {
            root[i] = root[x->in[0]->id];
            shift[i] = shift[x->in[0]->id];
        }
        /* a slice that is one contiguous block of an intermediate is a view of it */
        int64_t sh = plan_slice_shift(x);
        if (!elsewhere[i] && sh >= 0 && !elsewhere[root[x->in[0]->id]] && !folded[root[x->in[0]->id]]) {
            root[i] = root[x->in[0]->id];
            shift[i] = shift[x->in[0]->id] + sh;
        }
        last[i] = i;
        host[i] = i;
    }
    for (int i = n - 1; i >= 0; i--)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            if (g->nodes[i]->in[j]->inl)
                host[g->nodes[i]->in[j]->id] = host[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->nin && g->nodes[i]->op != OP_CLS_PROBS; j++) {
            int r = root[g->nodes[i]->in[j]->id];
            if (last[r] < host[i])
                last[r] = host[i];
        }
    for (int i = 0; i < n; i++)
        if (copied[i])
            last[root[i]] = n; /* copied at the very end */

    /* Storage: each stored node either owns a block [its definition, its block's last use] or
     * writes in place into the block of a value it reads for the last time; then the blocks are
     * placed (place_blocks) and every node takes its block's offset. */
    int ninplace = 0;
    int *owner = malloc(sizeof(int) * ((size_t)n + 1));
    Block *blk = malloc(sizeof(Block) * ((size_t)n + 1));
    KILN_ASSERT(owner && blk);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        x->arena = -1;
        x->inplace = 0;
        owner[i] = -1;
        if (elsewhere[i] || folded[i] || x->inl || view[i] || root[i] != i)
            continue;
        int64_t size = align64(ir_bytes_at_bound(g, x));
        /* in place over a value this node reads for the last time */
        if (op_info[x->op].flags & F_EW) {
            const Node *reads[16];
            int nr = loop_reads(x, reads, 0, 16);
            for (int r = 0; r < nr && !x->inplace; r++) {
                const Node *v = reads[r];
                int vr = root[v->id], aligned = 1;
                for (int t = 0; t < nr; t++) /* every read of that storage at the element written */
                    if (root[reads[t]->id] == vr && (!ir_same_shape(reads[t], x) || shift[reads[t]->id]))
                        aligned = 0;
                if (!aligned || dtype_traits[v->dtype].size != dtype_traits[x->dtype].size || owner[vr] < 0 ||
                    last[vr] != i || blk[owner[vr]].size < size)
                    continue;
                owner[i] = owner[vr];
                if (blk[owner[i]].last < last[i])
                    blk[owner[i]].last = last[i];
                x->inplace = 1;
                ninplace++;
            }
            if (x->inplace)
                continue;
        }
        owner[i] = i;
        /* a cls_probs is written by its attention's kernel: its block lives from there */
        blk[i] = (Block){-1, size, x->op == OP_CLS_PROBS ? x->in[0]->id : i, last[i]};
    }
    g->arena_bytes = place_blocks(blk, owner, n);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        if (owner[i] >= 0)
            x->arena = blk[owner[i]].off;
        else if (!(elsewhere[i] || folded[i] || x->inl || view[i]) && root[i] != i)
            x->arena = g->nodes[root[i]]->arena + shift[i];
    }
    free(owner);
    free(blk);
    /* a scatter written straight into the state it reads as its base overwrites that base */
    for (int k = 0; k < g->noutput; k++)
        if (direct[k] && g->outputs[k].update && g->outputs[k].node->op == OP_SCATTER)
            g->outputs[k].node->inplace = 1;
    free(direct);
    g->planned = 1;
    free(folded);
    free(elsewhere);
    free(copied);
    free(root);
    free(last);
    free(host);
    free(shift);
    free(view);
    free(writes_into);
    free(written_by);
    return ninplace;
}

int pass_plan_memory(Graph *g, const PassOptions *o)
{
    (void)o;
    return plan_memory(g);
}
