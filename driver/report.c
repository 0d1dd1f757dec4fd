/* report.c: what `kiln check` tells about a model.
 *
 * Sizes are reported with every symbolic size at its bound, the case buffers are planned for.
 * FLOPs count a multiply-add as two operations and an elementwise operation as one per element
 * (transcendentals included), which is the convention the benchmarks' GFLOP/s figures use.
 * Activation memory is measured by walking the graph in order and freeing each intermediate after
 * its last use: an upper bound on what a memory planner needs, and exactly what the interpreter uses.
 */
#include "driver/driver.h"

#include <stdlib.h>
#include <string.h>

static double numel(const Node *n, const int64_t *vals)
{
    return (double)shape_numel(n->rank, n->shape, vals);
}

static double node_bytes(const Node *n, const int64_t *vals)
{
    return (double)kiln_dtype_bytes(&dtype_traits[n->dtype], (int64_t)numel(n, vals));
}

/* Which nodes are parameters (by id; the caller frees it): the weights, and the constants a qmatmul
 * reads as its weights, scales or minima (choose-quant's quantized copies, which replace the weight
 * nodes). */
static char *params_of(const Graph *g)
{
    int top = 0;
    for (int i = 0; i < g->nnode; i++)
        top = g->nodes[i]->id > top ? g->nodes[i]->id : top;
    char *p = calloc((size_t)top + 1, 1);
    KILN_ASSERT(p);
    for (int i = 0; i < g->nnode; i++) {
        const Node *m = g->nodes[i];
        p[m->id] |= m->op == OP_WEIGHT;
        for (int j = 1; m->op == OP_QMATMUL && j < m->nin; j++)
            p[m->in[j]->id] |= m->in[j]->op == OP_CONST;
    }
    return p;
}

void report_activation_bytes(const Graph *g, const int64_t *vals, double *peak, double *total)
{
    int *last = calloc((size_t)g->nnode + 1, sizeof *last);
    KILN_ASSERT(last);
    for (int i = 0; i < g->nnode; i++) {
        last[i] = i;
        for (int j = 0; j < g->nodes[i]->nin; j++)
            last[g->nodes[i]->in[j]->id] = i;
    }
    for (int i = 0; i < g->noutput; i++)
        last[g->outputs[i].node->id] = g->nnode; /* outputs live to the end */
    double live = 0, hi = 0, sum = 0;
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (!(op_info[n->op].flags & F_SOURCE) || n->op == OP_ARANGE || n->op == OP_CAUSAL_MASK) {
            live += node_bytes(n, vals);
            sum += node_bytes(n, vals);
        }
        if (live > hi)
            hi = live;
        for (int j = 0; j < n->nin; j++) {
            const Node *in = n->in[j];
            int dup = 0;
            for (int k = 0; k < j; k++)
                dup |= n->in[k] == in;
            if (!dup && last[in->id] == i &&
                (!(op_info[in->op].flags & F_SOURCE) || in->op == OP_ARANGE || in->op == OP_CAUSAL_MASK))
                live -= node_bytes(in, vals);
        }
    }
    free(last);
    *peak = hi;
    *total = sum;
}

static void human(char *buf, size_t n, double v, const char *unit, int base)
{
    const char *pre[] = {"", base == 1024 ? "Ki" : "k", base == 1024 ? "Mi" : "M", base == 1024 ? "Gi" : "G",
                         base == 1024 ? "Ti" : "T"};
    int k = 0;
    while (v >= base && k < 4) {
        v /= base;
        k++;
    }
    snprintf(buf, n, k ? "%.2f %s%s" : "%.0f %s%s", v, pre[k], unit);
    size_t len = strlen(buf);
    if (len && buf[len - 1] == ' ') /* a plain count: "12", not "12 " */
        buf[len - 1] = 0;
}

/* Per layer (Node.layer, the iterations of the model's outermost loop): its scope (the longest
 * dotted prefix shared by its nodes' scopes), nodes, parameters and FLOPs. */
static void report_layers(FILE *f, const Graph *g, const int64_t *vals)
{
    int nl = ir_layer_count(g);
    if (!nl)
        return;
    fprintf(f, "layers: %d\n", nl);
    /* one sweep over the nodes for every layer at once (a loop of 50,000 layers is legal) */
    double *params = calloc((size_t)nl, sizeof(double)), *flops = calloc((size_t)nl, sizeof(double));
    int *count = calloc((size_t)nl, sizeof(int));
    const char **scope = calloc((size_t)nl, sizeof(char *));
    size_t *slen = calloc((size_t)nl, sizeof(size_t));
    char *par = params_of(g);
    KILN_ASSERT(params && flops && count && scope && slen);
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        int l = n->layer;
        if (l < 0 || l >= nl)
            continue;
        count[l]++;
        if (par[n->id])
            params[l] += numel(n, vals);
        flops[l] += ir_node_flops(n, vals);
        if (!n->scope)
            continue;
        if (!scope[l]) {
            scope[l] = n->scope;
            slen[l] = strlen(n->scope);
            continue;
        }
        size_t j = 0;
        while (j < slen[l] && n->scope[j] == scope[l][j])
            j++;
        if (j < slen[l] && !(n->scope[j] == 0 && scope[l][j] == '.'))
            while (j > 0 && scope[l][j] != '.')
                j--; /* back to a whole component */
        slen[l] = j;
    }
    for (int l = 0; l < nl; l++) {
        char h1[64], h2[64];
        human(h1, sizeof h1, params[l], "", 1000);
        human(h2, sizeof h2, flops[l], "FLOP", 1000);
        fprintf(f, "  layer %d%s%.*s%s: %d nodes, %s parameters, %s\n", l, slen[l] ? " (" : "", (int)slen[l],
                scope[l] ? scope[l] : "", slen[l] ? ")" : "", count[l], h1, h2);
    }
    free(par);
    free(params);
    free(flops);
    free(count);
    free(scope);
    free(slen);
}

void report_summary(FILE *f, const Graph *g)
{
    int64_t vals[IR_MAX_SYMS];
    for (int i = 0; i < g->nsym; i++)
        vals[i] = g->syms[i].bound;
    char buf[256], h1[64], h2[64];
    fprintf(f, "model %s", g->model ? g->model : "?");
    if (g->source)
        fprintf(f, " (%s)", g->source);
    fputc('\n', f);

    if (!g->nentry && !g->nstate) {
        fprintf(f, "inputs:\n");
        for (int i = 0; i < g->ninput; i++)
            fprintf(f, "  %s: %s\n", g->inputs[i]->name, node_type_str(g, g->inputs[i], buf, sizeof buf));
        fprintf(f, "outputs:\n");
        for (int i = 0; i < g->noutput; i++)
            fprintf(f, "  %s: %s\n", g->outputs[i].name, node_type_str(g, g->outputs[i].node, buf, sizeof buf));
    } else { /* state and entries (ir/entry.c) */
        fprintf(f, "state: %lld bytes\n", (long long)ir_states_bytes(g));
        for (int i = 0; i < g->nstate; i++)
            fprintf(f, "  %s: %s\n", g->states[i].name,
                    type_str(g, g->states[i].dtype, g->states[i].rank, g->states[i].shape, buf, sizeof buf));
        for (int e = 0; e < ir_nentries(g); e++) {
            fprintf(f, "entry %s:\n", ir_entry_name(g, e));
            for (int i = 0; i < g->ninput; i++)
                if (g->inputs[i]->entry == e)
                    fprintf(f, "  input %s: %s\n", g->inputs[i]->name, node_type_str(g, g->inputs[i], buf, sizeof buf));
            for (int i = 0; i < g->noutput; i++)
                if (g->outputs[i].entry == e && !g->outputs[i].update)
                    fprintf(f, "  output %s: %s\n", g->outputs[i].name,
                            node_type_str(g, g->outputs[i].node, buf, sizeof buf));
            int nu = 0;
            for (int i = 0; i < g->noutput; i++)
                nu += g->outputs[i].entry == e && g->outputs[i].update;
            fprintf(f, "  updates %d state%s\n", nu, nu == 1 ? "" : "s");
        }
    }
    if (g->nsym) {
        fprintf(f, "symbolic sizes:");
        for (int i = 0; i < g->nsym; i++)
            fprintf(f, "%s %s <= %lld", i ? "," : "", g->syms[i].name, (long long)g->syms[i].bound);
        fputc('\n', f);
    }

    double params = 0, pbytes = 0, flops = 0;
    int nweights = 0;
    char *par = params_of(g);
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (par[n->id]) {
            nweights++;
            params += numel(n, vals);
            pbytes += node_bytes(n, vals);
        }
        flops += ir_node_flops(n, vals);
    }
    free(par);
    human(h1, sizeof h1, pbytes, "B", 1024);
    fprintf(f, "parameters: %.0f in %d tensors (%s)", params, nweights, h1);
    if (g->weights_path)
        fprintf(f, " from %s", g->weights_path);
    fputc('\n', f);

    const char *at = g->nsym ? " (symbolic sizes at their bounds)" : "";
    human(h1, sizeof h1, flops, "FLOP", 1000);
    fprintf(f, "FLOPs per run: %s%s\n", h1, at);
    /* the largest single buffer: after fuse-attention, never a T x T score matrix */
    const Node *big = NULL;
    if (g->planned) {
        /* the arena plan-memory laid out; the largest buffer among those it placed and the outputs */
        double sum = 0;
        int nbuf = 0, ninplace = 0;
        for (int i = 0; i < g->nnode; i++) {
            const Node *n = g->nodes[i];
            /* a reshape, or a slice that is a block of its input, is a view of the input's buffer */
            const Node *in = n->nin ? n->in[0] : NULL;
            int view = (n->op == OP_RESHAPE || n->op == OP_SLICE) && in->arena >= 0 && n->arena >= in->arena &&
                       n->arena < in->arena + (((int64_t)node_bytes(in, vals) + 63) & ~(int64_t)63);
            int owns = n->arena >= 0 && !n->inplace && !view;
            int output = 0;
            for (int k = 0; k < g->noutput; k++)
                output |= g->outputs[k].node == n && !(op_info[n->op].flags & F_SOURCE);
            if (owns) {
                nbuf++;
                sum += node_bytes(n, vals);
            }
            ninplace += n->inplace;
            if ((owns || n->inplace || output) && (!big || node_bytes(n, vals) > node_bytes(big, vals)))
                big = n;
        }
        human(h1, sizeof h1, (double)g->arena_bytes, "B", 1024);
        human(h2, sizeof h2, sum, "B", 1024);
        fprintf(f, "activation memory: %s planned arena (plan-memory: %d buffer%s, %d more written in place; "
                   "%s if none shared memory)%s\n", h1, nbuf, nbuf == 1 ? "" : "s", ninplace, h2,
                g->nsym ? " (symbolic sizes at their bounds)" : "");
    } else {
        double peak, total;
        report_activation_bytes(g, vals, &peak, &total);
        human(h1, sizeof h1, peak, "B", 1024);
        human(h2, sizeof h2, total, "B", 1024);
        fprintf(f, "activation memory: %s peak, freeing each intermediate after its last use (%s if none were freed)%s\n",
                h1, h2, at);
        for (int i = 0; i < g->nnode; i++) {
            const Node *n = g->nodes[i];
            if (op_info[n->op].flags & F_SOURCE && n->op != OP_ARANGE && n->op != OP_CAUSAL_MASK)
                continue;
            if (!big || node_bytes(n, vals) > node_bytes(big, vals))
                big = n;
        }
    }
    if (big) {
        human(h1, sizeof h1, node_bytes(big, vals), "B", 1024);
        fprintf(f, "largest intermediate: %%%d = %s : %s (%s)\n", big->id, op_info[big->op].name,
                node_type_str(g, big, buf, sizeof buf), h1);
    }
    fprintf(f, "IR: %d nodes\n", g->nnode);
    report_layers(f, g, vals);
}
