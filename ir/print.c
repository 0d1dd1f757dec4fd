/* print.c: the text form of a graph.
 *
 * One statement per line; ir_parse (parse.c) reads exactly this back, and printing what it read
 * gives the same bytes again. The form, in the order the printer writes it:
 *
 *   model gpt2                                   model name: an identifier, else a quoted string
 *   source "examples/gpt2/gpt2.kiln"             only when Graph.source is set
 *   weights "examples/gpt2/gpt2.safetensors"     only when Graph.weights_path is set
 *   sym T <= 1024                                one per symbol, in index order
 *   state kv : f32[2, 64, 16]                    one per state (ir/entry.c), in declaration order
 *   %0 = input "tokens" : i32[T]                 one per node, in graph order
 *   %2 = gather(%1, %0) {axis=0} : f32[T, 768]   @12:5
 *   output logits = %57                          one per output, in declaration order
 *   update kv = %40                              one per state update, among the outputs
 *   entry decode(%41, %42)                       with declared entries: before the outputs and
 *                                                updates of each entry, naming its inputs
 *
 * A node line is `%ID = OP ["NAME"] [(%A, %B, ...)] [{ATTRS}] : TYPE [@LINE:COL]`:
 *   - ID is the node's position in Graph.nodes, and inputs are referred to by their positions, so a
 *     graph whose ids are stale after a pass still prints consistently.
 *   - the quoted NAME appears for input, weight and state only; the parentheses are left out for source ops
 *     (no inputs), so `%4 = arange : i64[T]`.
 *   - ATTRS are exactly the attributes op_info[op].attrs names, in attrs.def's order, each printed as
 *     its kind says (axis=N, keepdims=true|false, perm=[...] one entry per output dimension,
 *     start=DIM, eps=FLOAT, approx=erf|tanh, stride=[H, W], data=[...] numel values, C order, flat);
 *     an optional attribute (attrs.def's required column 0) only when it is not zero; then `inline`
 *     (no value) on any node fuse-ops marked (Node.inl).
 *   - floating-point values print as the shortest %g form that reads back to the same bits in the
 *     node's dtype (at most 17 digits for f64, 9 for f32, fewer for f16 and bf16), except that
 *     whole numbers below 1e15 print without exponent (65504, not 6.55e+04); and inf, -inf, nan
 *     (NaN payloads are not kept). Integer dtypes print exactly; bool prints true/false.
 *   - TYPE is type_str's form, f32[T, 768]; dims are dim_str's form: 768, T, T+1, T-1, 2*T, -T+3, P+T.
 *   - the location is the node's SrcLoc (line and column in the model file), three spaces after the
 *     type, when loc.line > 0. The file index is not printed: it belongs to a Diag, not to the graph.
 *   - then where in the model the node came from, each when it has one: `layer=N` (Node.layer, the
 *     iteration of the outermost loop) and `scope="h.3.attn"` (Node.scope, a quoted string).
 * ir_print_node writes one node line, newline included (what `--print-after` and debugging want).
 * Strings are quoted with C escapes for ", \ and control bytes (\n, \t, \r, \xHH); other bytes,
 * UTF-8 included, print as they are.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void print_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* [A-Za-z_][A-Za-z0-9_]*: what the parser reads as an identifier. */
static int is_ident(const char *s)
{
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    for (s++; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static void print_name(FILE *f, const char *s)
{
    if (is_ident(s))
        fputs(s, f);
    else
        print_string(f, s ? s : "");
}

/* The position of n in g->nodes, or -1. The id is tried first: it is right except after a pass
 * has edited g->nodes and not yet called ir_compact. */
static int node_pos(const Graph *g, const Node *n)
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

static void print_ref(FILE *f, const Graph *g, const Node *n)
{
    int p = node_pos(g, n);
    if (p >= 0)
        fprintf(f, "%%%d", p);
    else
        fputs("%?", f); /* not in the graph: the verifier says so; the parser rejects it */
}

static void print_dim(FILE *f, const Graph *g, Dim d)
{
    char buf[4 * IR_DIM_STR]; /* never truncated, so that the text reads back: symbol names are short */
    fputs(dim_str(g, d, buf, sizeof buf), f);
}

/* type_str's form, f32[P+T, 768], without its buffer's limit. */
static void print_type(FILE *f, const Graph *g, DType dt, int rank, const Dim *shape)
{
    fprintf(f, "%s[", dtype_traits[dt].name);
    for (int i = 0; i < rank; i++) {
        if (i)
            fputs(", ", f);
        print_dim(f, g, shape[i]);
    }
    fputc(']', f);
}

/* Element i of data (dtype t) as the shortest decimal that reads back, through strtod and
 * dtype_store as the parser does it, to the same bytes. */
static void fmt_float(char *buf, size_t n, DType t, const void *data, size_t i)
{
    double v = dtype_load(t, data, i);
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v < 0 ? "-inf" : "inf");
        return;
    }
    size_t sz = (size_t)dtype_traits[t].size;
    const unsigned char *orig = (const unsigned char *)data + i * sz;
    unsigned char back[8];
    if (v == floor(v) && fabs(v) < 1e15 && !(v == 0 && signbit(v))) {
        snprintf(buf, n, "%.0f", v); /* 65504, not 6.55e+04: exact, so it reads back */
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        dtype_store(t, back, 0, strtod(buf, NULL));
        if (!memcmp(orig, back, sz))
            return;
    }
    snprintf(buf, n, "%.17g", v); /* not reached: 17 digits always round-trip a double */
}

static void print_value(FILE *f, DType t, const void *data, size_t i)
{
    char buf[64];
    if (dtype_traits[t].is_float) {
        fmt_float(buf, sizeof buf, t, data, i);
        fputs(buf, f);
    } else if (t == DT_BOOL) {
        fputs(((const uint8_t *)data)[i] ? "true" : "false", f);
    } else if (t == DT_I64) {
        fprintf(f, "%lld", (long long)((const int64_t *)data)[i]);
    } else if (t == DT_U64) {
        fprintf(f, "%llu", (unsigned long long)((const uint64_t *)data)[i]);
    } else {
        fprintf(f, "%lld", (long long)dtype_load(t, data, i));
    }
}

/* The name of value v of an ENUM attribute (names: "erf|tanh"), or NULL when v has none. */
static const char *enum_name(const char *names, int v, char *buf, size_t n)
{
    for (const char *p = names; p && v >= 0; v--) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (v == 0) {
            snprintf(buf, n, "%.*s", (int)len, p);
            return buf;
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

/* Whether attribute ai of n holds its zero value (an optional attribute is then not printed). */
static int attr_is_zero(const Node *n, int ai)
{
    static const Attrs zero;
    const AttrInfo *ia = &attr_info[ai];
    const char *x = (const char *)&n->at + ia->offset, *z = (const char *)&zero + ia->offset;
    switch (ia->kind) {
    case AK_PERM: return !memcmp(x, z, sizeof(int) * IR_MAX_RANK);
    case AK_DIM: return dim_eq(*(const Dim *)x, dim_const(0));
    case AK_F64: return !memcmp(x, z, sizeof(double));
    case AK_INT2: return !memcmp(x, z, 2 * sizeof(int));
    case AK_DATA: return *(const void *const *)x == NULL;
    default: return *(const int *)x == 0;
    }
}

/* One attribute's value, as attrs.def's kind of it prints. */
static void print_attr_value(FILE *f, const Graph *g, const Node *n, int ai)
{
    const AttrInfo *ia = &attr_info[ai];
    const char *x = (const char *)&n->at + ia->offset;
    char buf[64];
    switch (ia->kind) {
    case AK_INT: fprintf(f, "%d", *(const int *)x); return;
    case AK_BOOL: fputs(*(const int *)x ? "true" : "false", f); return;
    case AK_ENUM: {
        const char *nm = enum_name(ia->names, *(const int *)x, buf, sizeof buf);
        if (nm)
            fputs(nm, f);
        else
            fprintf(f, "%d", *(const int *)x);
        return;
    }
    case AK_PERM:
        fputc('[', f);
        for (int i = 0; i < n->rank; i++)
            fprintf(f, "%s%d", i ? ", " : "", ((const int *)x)[i]);
        fputc(']', f);
        return;
    case AK_DIM: print_dim(f, g, *(const Dim *)x); return;
    case AK_F64:
        fmt_float(buf, sizeof buf, DT_F64, x, 0);
        fputs(buf, f);
        return;
    case AK_INT2: fprintf(f, "[%d, %d]", ((const int *)x)[0], ((const int *)x)[1]); return;
    case AK_DATA: {
        /* Without data or with a symbolic shape there is nothing safe to print; the verifier
         * rejects such a node and the parser will not read `data=[]` back for a non-empty shape. */
        const void *data = *(const void *const *)x;
        int64_t k = data ? ir_static_numel(n) : -1;
        fputc('[', f);
        for (int64_t i = 0; i < k; i++) {
            if (i)
                fputs(", ", f);
            print_value(f, n->dtype, data, (size_t)i);
        }
        fputc(']', f);
        return;
    }
    }
    UNREACHABLE();
}

static void print_attrs(FILE *f, const Graph *g, const Node *n)
{
    int attrs = op_info[n->op].attrs;
    int any = n->inl;
    for (int i = 0; i < AI_COUNT; i++)
        any |= (attrs & (1 << i)) && (attr_info[i].required || !attr_is_zero(n, i));
    if (!any)
        return;
    const char *sep = "";
    fputs(" {", f);
    for (int i = 0; i < AI_COUNT; i++) {
        if (!(attrs & (1 << i)) || (!attr_info[i].required && attr_is_zero(n, i)))
            continue;
        fprintf(f, "%s%s=", sep, attr_info[i].name);
        print_attr_value(f, g, n, i);
        sep = ", ";
    }
    if (n->inl)
        fprintf(f, "%sinline", sep);
    fputc('}', f);
}

/* The batch dimensions of an attention operand (all but the last two), multiplied out: "12", "4*T". */
static const char *batch_str(const Graph *g, const Node *x, char *buf, size_t n)
{
    Dim d = dim_const(1);
    for (int i = 0; i + 2 < x->rank; i++)
        if (!dim_mul(d, x->shape[i], &d)) {
            snprintf(buf, n, "?");
            return buf;
        }
    return dim_str(g, d, buf, n);
}

void ir_print_node(FILE *f, const Graph *g, const Node *n)
{
    fputc('%', f);
    int p = node_pos(g, n);
    if (p >= 0)
        fprintf(f, "%d", p);
    else
        fputc('?', f);
    if (n->op < 0 || n->op >= OP_COUNT) {
        fprintf(f, " = <bad op %d>\n", (int)n->op);
        return;
    }
    fprintf(f, " = %s", op_info[n->op].name);
    if (n->op == OP_INPUT || n->op == OP_WEIGHT || n->op == OP_STATE) {
        fputc(' ', f);
        print_string(f, n->name ? n->name : "");
    }
    if (!(op_info[n->op].flags & F_SOURCE) || n->nin > 0) {
        fputc('(', f);
        for (int i = 0; i < n->nin; i++) {
            if (i)
                fputs(", ", f);
            print_ref(f, g, n->in[i]);
        }
        fputc(')', f);
    }
    print_attrs(f, g, n);
    if (n->dtype >= 0 && n->dtype < DT_COUNT && n->rank >= 0 && n->rank <= IR_MAX_RANK)
        fputs(" : ", f), print_type(f, g, n->dtype, n->rank, n->shape);
    else
        fprintf(f, " : <bad type %d, rank %d>", (int)n->dtype, n->rank);
    if (n->loc.line > 0)
        fprintf(f, "   @%d:%d", n->loc.line, n->loc.col);
    if (n->layer >= 0)
        fprintf(f, " layer=%d", n->layer);
    if (n->scope) {
        fputs(" scope=", f);
        print_string(f, n->scope);
    }
    if (n->op == OP_ATTENTION && n->nin >= 3) {
        /* what the attributes do not say, as a comment the parser skips: heads are the product of
         * the batch dimensions of q and of k (grouped-query attention when they differ) */
        char b1[IR_DIM_STR], b2[IR_DIM_STR];
        fprintf(f, "   # heads %s, kv heads %s, mask %s%s", batch_str(g, n->in[0], b1, sizeof b1),
                batch_str(g, n->in[1], b2, sizeof b2), n->nin > 3 ? "additive" : n->at.causal ? "causal" : "none",
                n->nin > 6 ? ", int8 k and v with a scale per row" : "");
    }
    fputc('\n', f);
}

void ir_print(FILE *f, const Graph *g)
{
    if (g->model) {
        fputs("model ", f);
        print_name(f, g->model);
        fputc('\n', f);
    }
    if (g->source) {
        fputs("source ", f);
        print_string(f, g->source);
        fputc('\n', f);
    }
    if (g->weights_path) {
        fputs("weights ", f);
        print_string(f, g->weights_path);
        fputc('\n', f);
    }
    for (int i = 0; i < g->nsym; i++)
        fprintf(f, "sym %s <= %lld\n", g->syms[i].name, (long long)g->syms[i].bound);
    for (int i = 0; i < g->nstate; i++) {
        const StateDecl *s = &g->states[i];
        fputs("state ", f);
        print_name(f, s->name);
        fputs(" : ", f), print_type(f, g, s->dtype, s->rank, s->shape), fputc('\n', f);
    }
    for (int i = 0; i < g->nnode; i++)
        ir_print_node(f, g, g->nodes[i]);
    for (int e = 0; e < ir_nentries(g); e++) {
        if (g->nentry) {
            fputs("entry ", f);
            print_name(f, g->entries[e].name);
            fputc('(', f);
            for (int i = 0, k = 0; i < g->ninput; i++)
                if (g->inputs[i]->entry == e) {
                    fputs(k++ ? ", " : "", f);
                    print_ref(f, g, g->inputs[i]);
                }
            fputs(")\n", f);
        }
        for (int i = 0; i < g->noutput; i++) {
            if (g->outputs[i].entry != e)
                continue;
            fputs(g->outputs[i].update ? "update " : "output ", f);
            print_name(f, g->outputs[i].name);
            fputs(" = ", f);
            print_ref(f, g, g->outputs[i].node);
            fputc('\n', f);
        }
    }
}
