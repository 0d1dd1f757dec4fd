/* dot.c: the graph as Graphviz sees it, for `kiln build --emit dot|svg`.
 *
 * One box per node, coloured by op family (inputs, weights and constants, elementwise, reductions and
 * normalisations, matrix products, data movement, fused ops), labelled with its id, op, name and type.
 * Each edge carries the value's type and its size with every symbol at its bound, so the heavy
 * tensors stand out. What fuse-ops put in one loop is drawn as one cluster: a stored node and every
 * `inline` node it computes (an elementwise chain, or a matmul with its epilogue), titled by what the
 * loop stores. Weights and constants read by one node only are drawn small, so that a large model
 * stays readable. Node order is the graph's, so the output is deterministic.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct Family {
    const char *name;
    const char *fill;
} Family;

/* The op family of n and its colour. */
static Family family(const Node *n)
{
    int fl = op_info[n->op].flags;
    switch (n->op) {
    case OP_INPUT: return (Family){"input", "#9ecae1"};
    case OP_WEIGHT:
    case OP_CONST: return (Family){"data", "#e0e0e0"};
    case OP_MATMUL:
    case OP_CONV2D: return (Family){"product", "#fc9272"};
    case OP_ATTENTION: return (Family){"fused", "#c994c7"};
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
    case OP_LAYERNORM:
    case OP_RMSNORM: return (Family){"norm", "#fdd0a2"};
    default: break;
    }
    if (fl & F_FUSED)
        return (Family){"fused", "#c994c7"};
    if (fl & F_SOURCE)
        return (Family){"source", "#9ecae1"};
    if (fl & F_EW)
        return (Family){"elementwise", "#ffffcc"};
    if (fl & F_RED)
        return (Family){"reduction", "#fdd0a2"};
    if (fl & F_MOVE)
        return (Family){"movement", "#c7e9c0"};
    return (Family){"other", "#ffffff"};
}

/* A string for a double-quoted Graphviz label: quotes and backslashes escaped. */
static void put_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
}

static void human_bytes(int64_t b, char *buf, size_t n)
{
    if (b >= (1ll << 30))
        snprintf(buf, n, "%.1f GiB", (double)b / (1ll << 30));
    else if (b >= (1ll << 20))
        snprintf(buf, n, "%.1f MiB", (double)b / (1ll << 20));
    else if (b >= 1024)
        snprintf(buf, n, "%.1f KiB", (double)b / 1024);
    else
        snprintf(buf, n, "%lld B", (long long)b);
}

/* The stored node whose loop computes inline node i: its one consumer, followed up while inline. */
static int loop_root(const Graph *g, const int *user, int i)
{
    int r = i;
    while (g->nodes[r]->inl && user[r] >= 0)
        r = user[r];
    return r;
}

void ir_print_dot(FILE *f, const Graph *g)
{
    int n = g->nnode;
    int *user = malloc(sizeof(int) * ((size_t)n + 1)), *uses = calloc((size_t)n + 1, sizeof(int));
    KILN_ASSERT(user && uses);
    for (int i = 0; i < n; i++) {
        g->nodes[i]->id = i;
        user[i] = -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) {
            int k = g->nodes[i]->in[j]->id;
            user[k] = i;
            uses[k]++;
        }
    fputs("digraph \"", f);
    put_label(f, g->model ? g->model : "model");
    fputs("\" {\n  rankdir=TB;\n  node [shape=box, style=filled, fontname=\"monospace\", fontsize=10];\n"
          "  edge [fontname=\"monospace\", fontsize=8, color=\"#606060\"];\n",
          f);
    char tb[IR_MAX_RANK * 96 + 16], bb[32];
    /* clusters: a stored node with inline nodes under it, and those nodes */
    int *root = malloc(sizeof(int) * ((size_t)n + 1));
    KILN_ASSERT(root);
    for (int i = 0; i < n; i++)
        root[i] = g->nodes[i]->inl ? loop_root(g, user, i) : -1;
    for (int r = 0; r < n; r++) {
        int has = 0;
        for (int i = 0; i < n && !has; i++)
            has = root[i] == r;
        if (!has)
            continue;
        const Node *x = g->nodes[r];
        int mm = 0;
        for (int i = 0; i < n; i++)
            mm |= root[i] == r && ir_is_product(g->nodes[i]);
        fprintf(f, "  subgraph cluster_%d {\n    label=\"%s %%%d: %s\"; style=\"rounded,filled\"; fillcolor=\"#f4f4f4\";"
                   " color=\"#808080\"; fontname=\"monospace\"; fontsize=9;\n",
                r, mm ? "matmul + epilogue" : "fused loop", r, op_info[x->op].name);
        for (int i = 0; i < n; i++)
            if (root[i] == r || i == r)
                fprintf(f, "    n%d;\n", i);
        fputs("  }\n", f);
    }
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        Family fam = family(x);
        int small = (x->op == OP_WEIGHT || x->op == OP_CONST) && uses[i] <= 1;
        fprintf(f, "  n%d [label=\"%%%d %s", i, i, op_info[x->op].name);
        if (x->name) {
            fputc(' ', f);
            put_label(f, x->name);
        }
        fputs("\\n", f);
        put_label(f, node_type_str(g, x, tb, sizeof tb));
        fprintf(f, "\", fillcolor=\"%s\", tooltip=\"%s\"%s];\n", fam.fill, fam.name,
                small ? ", fontsize=7, height=0.2, margin=\"0.04,0.02\"" : "");
        for (int j = 0; j < x->nin; j++) {
            const Node *y = x->in[j];
            human_bytes(ir_bytes_at_bound(g, y), bb, sizeof bb);
            fprintf(f, "  n%d -> n%d [label=\"", y->id, i);
            put_label(f, node_type_str(g, y, tb, sizeof tb));
            fprintf(f, "\\n%s\"%s];\n", bb, y->inl ? ", style=dashed" : "");
        }
    }
    for (int k = 0; k < g->noutput; k++) {
        fprintf(f, "  out%d [label=\"", k);
        put_label(f, g->outputs[k].name);
        fprintf(f, "\", shape=ellipse, fillcolor=\"#9ecae1\"];\n  n%d -> out%d;\n", g->outputs[k].node->id, k);
    }
    fputs("}\n", f);
    free(root);
    free(user);
    free(uses);
}
