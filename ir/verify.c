/* verify.c: the verifier, run after the frontend, after ir_parse and after every pass.
 *
 * Each problem is one diag_error at the node's SrcLoc, reading
 *     verifier: %5 = add: shapes do not broadcast in '+': f32[T, 64] and f32[T, 65]
 * with the node's position in the graph and its op. ir_verify returns the number of problems.
 *
 * What is checked, in order, for every node (a node failing one of the structural steps 1-4 gets no
 * further checks, so one bad pointer does not cause a cascade):
 *   1. structure: the node exists, its id is its position, op, dtype and rank are in range;
 *   2. dims: each is a constant or a*S+b with S a symbol of the graph, and is >= 0 for every value
 *      of the symbols (each symbol ranges over 1..bound, independently of the others);
 *   3. inputs: each exists, is in the graph, and comes earlier (topological order);
 *   4. input count: between op_info's min_in and max_in (ops.def);
 *   5. the node's type: shape and dtype inference (ir_infer in ir/build.c, the one set of shape rules
 *      that the builders, lowering and the passes also use) computes the type the node must have from
 *      its inputs and attributes, checking them on the way (broadcasting, matmul's inner and batch
 *      dimensions, axes, permutations, slice ranges for every value of the symbols, dtypes that must
 *      agree, attribute ranges); a refusal is reported with inference's reason, a different type as
 *      "its inputs (...) give T but the node is U". For the ops whose type is chosen by their maker
 *      (reshape, expand, cast, sources) the node's own type is checked instead (element counts,
 *      broadcastability, static shapes of weights and consts). Sources also need their name and data.
 * And for the graph: symbols have names and bounds >= 1; g->inputs are INPUT nodes of the graph and
 * every INPUT node is in g->inputs; input names and output names are unique within an entry; each
 * output names a node of the graph; a state node names a declared state and has its type; states
 * have static shapes; an update names a declared state (at most once per entry) and has its type;
 * an entry needs no input of another entry and no size its inputs do not give (ir/entry.c); an
 * attention has one cls_probs at most (its kernel writes one buffer for it).
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
    const Graph *g;
    Diag *d;
    int nerr;
    const Node *n; /* the node being checked */
    int pos;       /* its position */
} Verifier;

enum { TBUF = IR_MAX_RANK * 96 + 16 };

static void bad(Verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(Verifier *v, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Node *n = v->n;
    if (n && n->op >= 0 && n->op < OP_COUNT)
        diag_error(v->d, n->loc.line ? n->loc : n->text, "verifier: %%%d = %s: %s", v->pos, op_info[n->op].name, msg);
    else if (n)
        diag_error(v->d, n->loc.line ? n->loc : n->text, "verifier: %%%d: %s", v->pos, msg);
    else
        diag_error(v->d, (SrcLoc){0, 0, 0}, "verifier: %s", msg);
    v->nerr++;
}

/* The node's or an input's type, "f32[T, 768]", into one of a few rotating buffers so that one
 * message can show several. */
static const char *ty(Verifier *v, const Node *n)
{
    static _Thread_local char bufs[4][TBUF];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return node_type_str(v->g, n, b, TBUF);
}

static const char *shp(Verifier *v, DType dt, int rank, const Dim *shape)
{
    static _Thread_local char bufs[4][TBUF];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return type_str(v->g, dt, rank, shape, b, TBUF);
}

static const char *dtn(DType t)
{
    return dtype_traits[t].name;
}

/* ---- dims over the symbols' ranges */


static int shape_eq(int ra, const Dim *a, int rb, const Dim *b)
{
    if (ra != rb)
        return 0;
    for (int i = 0; i < ra; i++)
        if (!dim_eq(a[i], b[i]))
            return 0;
    return 1;
}

static int node_in_graph(const Graph *g, const Node *n)
{
    if (!n)
        return -1;
    if (n->id >= 0 && n->id < g->nnode && g->nodes[n->id] == n)
        return n->id;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i] == n)
            return i;
    return -1;
}

/* ---- per node */

/* What only the verifier knows about sources: they are registered in the graph and carry their data.
 * Their types are checked by ir_infer like every other node's. */
static void check_source(Verifier *v)
{
    const Node *n = v->n;
    const Graph *g = v->g;
    switch (n->op) {
    case OP_INPUT: {
        if (!n->name)
            bad(v, "an input needs a name");
        int found = 0;
        for (int i = 0; i < g->ninput; i++)
            found |= g->inputs[i] == n;
        if (!found)
            bad(v, "input \"%s\" is not in the graph's input list", n->name ? n->name : "");
        break;
    }
    case OP_WEIGHT:
        if (!n->name)
            bad(v, "a weight needs a tensor name");
        if (!n->at.data)
            bad(v, "weight \"%s\" has no data (weights file not loaded?)", n->name ? n->name : "");
        break;
    case OP_CONST:
        if (!n->at.data)
            bad(v, "const has no data");
        break;
    case OP_STATE: {
        int s = n->name ? ir_find_state(g, n->name) : -1;
        if (s < 0)
            bad(v, "state \"%s\" is not declared", n->name ? n->name : "");
        else if (g->states[s].dtype != n->dtype ||
                 !shape_eq(n->rank, n->shape, g->states[s].rank, g->states[s].shape))
            bad(v, "state \"%s\" is declared %s, not %s", n->name,
                shp(v, g->states[s].dtype, g->states[s].rank, g->states[s].shape), ty(v, n));
        break;
    }
    default: break;
    }
}

/* The node's type against what shape and dtype inference (ir/build.c) says it should be. */
static void check_node(Verifier *v)
{
    const Node *n = v->n;
    if (op_info[n->op].flags & F_SOURCE)
        check_source(v);
    IrType want = ir_type_of(n), have = want;
    IrWhy why;
    if (!ir_infer(v->g, n->op, &n->at, n->nin, n->in, &want, &why)) {
        if (why.input >= 0 && why.input < n->nin)
            bad(v, "input %d (%%%d): %s", why.input, n->in[why.input]->id, why.msg);
        else
            bad(v, "%s", why.msg);
        return;
    }
    if (!ir_same_type(&want, &have)) {
        char ins[TBUF * 2];
        size_t k = 0;
        ins[0] = 0;
        for (int i = 0; i < n->nin && k < sizeof ins - 1; i++)
            k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s", i ? ", " : "", ty(v, n->in[i]));
        bad(v, "its inputs (%s) give %s but the node is %s", n->nin ? ins : "none",
            shp(v, want.dtype, want.rank, want.shape), ty(v, n));
    }
}

/* ---- the structural steps */

static int check_structure(Verifier *v, const Node *n, int pos)
{
    const Graph *g = v->g;
    if (n->id != pos)
        bad(v, "its id is %d but it is at position %d (call ir_compact after editing g->nodes)", n->id, pos);
    if (n->op < 0 || n->op >= OP_COUNT) {
        bad(v, "op %d is not an op", (int)n->op);
        return 0;
    }
    if (n->dtype < 0 || n->dtype >= DT_COUNT || n->rank < 0 || n->rank > IR_MAX_RANK) {
        bad(v, "bad dtype %d or rank %d", (int)n->dtype, n->rank);
        return 0;
    }
    for (int i = 0; i < n->rank; i++) {
        if (!dim_in_graph(g, n->shape[i])) {
            bad(v, "dimension %d names a symbol past the graph's %d", i, g->nsym);
            return 0;
        }
    }
    for (int i = 0; i < n->rank; i++)
        if (dim_min(g, n->shape[i]) < 0) {
            bad(v, "dimension %d of %s can be negative", i, ty(v, n));
            return 0;
        }
    if (n->nin < 0 || (n->nin > 0 && !n->in)) {
        bad(v, "bad input list (%d inputs)", n->nin);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < n->nin; i++) {
        const Node *in = n->in[i];
        int p = node_in_graph(g, in);
        if (!in) {
            bad(v, "input %d is NULL", i);
            ok = 0;
        } else if (p < 0) {
            bad(v, "input %d is not a node of the graph", i);
            ok = 0;
        } else if (p >= pos) {
            bad(v, "input %d is %%%d, which does not come before it (topological order)", i, p);
            ok = 0;
        } else if (in->id != p) {
            ok = 0; /* reported at the input itself */
        }
    }
    if (!ok)
        return 0;
    const OpInfo *oi = &op_info[n->op];
    if (n->nin < oi->min_in || (oi->max_in >= 0 && n->nin > oi->max_in)) {
        if (oi->min_in == oi->max_in)
            bad(v, "takes %d input%s, not %d", oi->min_in, oi->min_in == 1 ? "" : "s", n->nin);
        else if (oi->max_in < 0)
            bad(v, "takes at least %d input%s, not %d", oi->min_in, oi->min_in == 1 ? "" : "s", n->nin);
        else
            bad(v, "takes %d to %d inputs, not %d", oi->min_in, oi->max_in, n->nin);
        return 0;
    }
    return 1;
}

static void check_graph(Verifier *v)
{
    const Graph *g = v->g;
    v->n = NULL;
    for (int i = 0; i < g->nsym; i++)
        if (!g->syms[i].name || g->syms[i].bound < 1)
            bad(v, "symbol %d (%s) needs a name and a bound >= 1", i,
                g->syms[i].name ? g->syms[i].name : "unnamed");
    for (int i = 0; i < g->ninput; i++) {
        const Node *n = g->inputs[i];
        if (!n || n->op != OP_INPUT || node_in_graph(g, n) < 0) {
            bad(v, "graph input %d is not an input node of the graph", i);
            continue;
        }
        if (n->entry < 0 || n->entry >= ir_nentries(g))
            bad(v, "input \"%s\" belongs to entry %d, which does not exist", n->name ? n->name : "", n->entry);
        for (int j = 0; j < i; j++)
            if (g->inputs[j] && g->inputs[j]->name && n->name && !strcmp(g->inputs[j]->name, n->name) &&
                g->inputs[j]->entry == n->entry)
                bad(v, "two inputs are named \"%s\"", n->name);
    }
    for (int i = 0; i < g->noutput; i++) {
        const Output *o = &g->outputs[i];
        if (!o->name)
            bad(v, "output %d has no name", i);
        if (node_in_graph(g, o->node) < 0)
            bad(v, "output %s is not a node of the graph", o->name ? o->name : "");
        if (o->entry < 0 || o->entry >= ir_nentries(g))
            bad(v, "output %s belongs to entry %d, which does not exist", o->name ? o->name : "", o->entry);
        for (int j = 0; j < i; j++)
            if (o->name && g->outputs[j].name && !strcmp(o->name, g->outputs[j].name) &&
                g->outputs[j].entry == o->entry && g->outputs[j].update == o->update)
                {
                if (o->update)
                    bad(v, "entry %s updates state \"%s\" twice", ir_entry_name(g, o->entry), o->name);
                else
                    bad(v, "two outputs are named \"%s\" (entry %s)", o->name, ir_entry_name(g, o->entry));
            }
        if (o->update && o->name && node_in_graph(g, o->node) >= 0) {
            int s = ir_find_state(g, o->name);
            const Node *x = o->node;
            if (s < 0)
                bad(v, "update of state \"%s\", which is not declared", o->name);
            else if (x->dtype != g->states[s].dtype ||
                     !shape_eq(x->rank, x->shape, g->states[s].rank, g->states[s].shape))
                bad(v, "state \"%s\" is %s but is updated with %%%d: %s", o->name,
                    shp(v, g->states[s].dtype, g->states[s].rank, g->states[s].shape), x->id, ty(v, x));
        }
    }
    for (int i = 0; i < g->nstate; i++) {
        const StateDecl *s = &g->states[i];
        if (!s->name || s->dtype < 0 || s->dtype >= DT_COUNT || s->rank < 0 || s->rank > IR_MAX_RANK) {
            bad(v, "state %d is malformed", i);
            continue;
        }
        for (int k = 0; k < s->rank; k++)
            if (!dim_is_const(s->shape[k]) || dim_value(s->shape[k]) < 0)
                bad(v, "state \"%s\" needs a static shape, not %s", s->name, shp(v, s->dtype, s->rank, s->shape));
    }
}

/* Each entry computes what its outputs and updates need: none of that may read another entry's
 * inputs. Runs once the nodes are known to be sound. */
static void check_entries(Verifier *v)
{
    const Graph *g = v->g;
    if (!g->nentry)
        return;
    int n = g->nnode;
    unsigned char *need = malloc((size_t)n + 1);
    KILN_ASSERT(need);
    for (int e = 0; e < g->nentry; e++) {
        memset(need, 0, (size_t)n + 1);
        for (int k = 0; k < g->noutput; k++)
            if (g->outputs[k].entry == e)
                need[g->outputs[k].node->id] = 1;
        for (int i = n - 1; i >= 0; i--) {
            const Node *x = g->nodes[i];
            if (!need[i])
                continue;
            if (x->op == OP_INPUT && x->entry != e) {
                v->n = x;
                v->pos = i;
                bad(v, "entry %s needs input \"%s\" of entry %s", g->entries[e].name, x->name ? x->name : "",
                    ir_entry_name(g, x->entry));
            }
            for (int j = 0; j < x->nin; j++)
                need[x->in[j]->id] = 1;
        }
        /* the sizes its nodes use are known from its inputs' shapes when it is called: from a dim
         * that uses that one symbol (T, 2*T+1; P+T is checked against P and T, it does not give them) */
        int bound[IR_MAX_SYMS] = {0}, sy;
        for (int k = 0; k < g->ninput; k++)
            for (int d = 0; g->inputs[k]->entry == e && d < g->inputs[k]->rank; d++)
                if (dim_sym1(g->inputs[k]->shape[d], &sy, NULL, NULL))
                    bound[sy] = 1;
        for (int i = 0; i < n; i++) {
            const Node *x = g->nodes[i];
            Dim ds[IR_MAX_RANK + 2];
            int nd = x->rank;
            memcpy(ds, x->shape, sizeof(Dim) * (size_t)nd);
            if (op_info[x->op].attrs & A_RANGE) {
                ds[nd++] = x->at.start;
                ds[nd++] = x->at.end;
            }
            for (int d = 0; need[i] && d < nd; d++)
                for (int t = 0; t < dim_nterms(ds[d]); t++) {
                    int s = dim_term(ds[d], t, NULL);
                    if (bound[s])
                        continue;
                    v->n = x;
                    v->pos = i;
                    bad(v, "entry %s uses size %s, which none of its inputs' shapes gives", g->entries[e].name,
                        g->syms[s].name);
                    bound[s] = 1; /* once */
                }
        }
    }
    free(need);
}

/* Node.inl: the node has one consumer (which may read it more than once), an elementwise node of
 * its shape, and is no output; an inline matmul computes in f32, and the elementwise node that stores
 * (the first consumer up the chain that is not inline) has one inline matmul under it at most and
 * stores f32. Runs once the nodes themselves are known to be sound. */
static void check_inline(Verifier *v)
{
    const Graph *g = v->g;
    int n = g->nnode;
    const Node **user = calloc((size_t)n + 1, sizeof *user);
    int *nuser = calloc((size_t)n + 1, sizeof *nuser), *mms = calloc((size_t)n + 1, sizeof *mms);
    KILN_ASSERT(user && nuser && mms);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) {
            int k = g->nodes[i]->in[j]->id;
            if (user[k] != g->nodes[i])
                nuser[k]++;
            user[k] = g->nodes[i];
        }
    for (int i = 0; i < g->noutput; i++)
        nuser[g->outputs[i].node->id] += 2;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if (!x->inl)
            continue;
        v->n = x;
        v->pos = i;
        const Node *u = user[i];
        if (!(op_info[x->op].flags & F_EW) && !ir_is_product(x)) {
            bad(v, "only elementwise nodes, matmuls and qmatmuls can be inline");
            continue;
        }
        if (nuser[i] != 1 || !(op_info[u->op].flags & F_EW)) {
            bad(v, "an inline node needs exactly one consumer, an elementwise node, and cannot be an output");
            continue;
        }
        if (!shape_eq(x->rank, x->shape, u->rank, u->shape)) {
            bad(v, "an inline node needs the shape of its consumer %s", shp(v, u->dtype, u->rank, u->shape));
            continue;
        }
        if (ir_is_product(x)) {
            if (x->op == OP_MATMUL && (x->dtype != DT_F32 || x->in[0]->dtype != DT_F32 || x->in[1]->dtype != DT_F32)) {
                bad(v, "an inline matmul computes in f32");
                continue;
            }
            while (u->inl && user[u->id])
                u = user[u->id];
            if (u->dtype != DT_F32)
                bad(v, "an inline matmul's epilogue must store f32, not %s", dtn(u->dtype));
            if (mms[u->id]++)
                bad(v, "the epilogue of node %%%d holds more than one inline matmul", u->id);
        }
    }
    free(user);
    free(nuser);
    free(mms);
}

/* An attention has one cls_probs at most: its kernel writes one buffer for it (codegen/attention.c). */
static void check_cls_probs(Verifier *v)
{
    const Graph *g = v->g;
    for (int i = 0; i < g->nnode; i++) {
        const Node *x = g->nodes[i];
        if (x->op != OP_CLS_PROBS)
            continue;
        for (int j = 0; j < i; j++)
            if (g->nodes[j]->op == OP_CLS_PROBS && g->nodes[j]->in[0] == x->in[0]) {
                v->n = x;
                v->pos = i;
                bad(v, "attention %%%d already has a cls_probs, %%%d", x->in[0]->id, j);
                break;
            }
    }
}

int ir_verify(const Graph *g, Diag *d)
{
    Verifier v = {g, d, 0, NULL, 0};
    check_graph(&v);
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        v.n = n;
        v.pos = i;
        if (!n) {
            v.n = NULL;
            bad(&v, "node %d is NULL", i);
            continue;
        }
        if (check_structure(&v, n, i))
            check_node(&v);
    }
    if (!v.nerr)
        check_inline(&v);
    if (!v.nerr)
        check_cls_probs(&v);
    if (!v.nerr)
        check_entries(&v);
    return v.nerr;
}
