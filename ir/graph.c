/* graph.c: the dtype and op tables, dimensions, shapes, nodes and graphs.
 *
 * Dimensions are affine in at most one symbolic size: a*S + b. That covers what transformer models
 * write (T, T+1 for a [CLS] token, 2*T after a concat, B*49 after flattening patches) while keeping
 * equality decidable by comparing three integers. Shapes whose element counts must agree (reshape)
 * are compared as polynomials by evaluating them at enough points (see shape_numel_eq).
 */
#include "ir.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const DTypeTraits dtype_traits[DT_COUNT] = {KILN_DTYPES(KILN_DTYPE_INFO)};

const OpInfo op_info[OP_COUNT] = {
#define OP(e, name, min_in, max_in, flags, attrs) {name, min_in, max_in, flags, attrs},
#include "ops.def"
#undef OP
};

const AttrInfo attr_info[AI_COUNT] = {
#define ATTR(e, field, kind, req, names) {#field, AK_##kind, req, names, offsetof(Attrs, field)},
#include "attrs.def"
#undef ATTR
};

int dtype_from_name(const char *name)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (!strcmp(dtype_traits[i].name, name))
            return i;
    return -1;
}

int dtype_from_npy(const char *descr)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (dtype_traits[i].npy && !strcmp(dtype_traits[i].npy, descr))
            return i;
    /* NumPy writes single-byte types with '|' but accepts '<' and '=' too. */
    if (descr[0] == '<' || descr[0] == '=') {
        char alt[8];
        snprintf(alt, sizeof alt, "|%s", descr + 1);
        for (int i = 0; i < DT_COUNT; i++)
            if (dtype_traits[i].npy && dtype_traits[i].size == 1 && !strcmp(dtype_traits[i].npy, alt))
                return i;
    }
    return -1;
}

int op_from_name(const char *name)
{
    for (int i = 0; i < OP_COUNT; i++)
        if (!strcmp(op_info[i].name, name))
            return i;
    return -1;
}

/* IEEE half and bfloat16 by hand: round to nearest even, with subnormals, infinities and NaN. */
static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    float f;
    if (e == 0)
        f = ldexpf((float)m, -24);
    else if (e == 31)
        f = m ? NAN : INFINITY;
    else
        f = ldexpf((float)(m | 1024), (int)e - 25);
    return s ? -f : f;
}

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t s = (uint16_t)((x >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f))
        return s | 0x7e00;
    if (a >= 65520.0f)
        return s | 0x7c00;
    if (a < ldexpf(1, -14)) { /* subnormal: multiples of 2^-24 */
        float q = nearbyintf(a * ldexpf(1, 24));
        return s | (uint16_t)q;
    }
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    float q = nearbyintf(m * 2048.0f); /* 11 significant bits */
    if (q == 2048.0f) {
        q = 1024.0f;
        e++;
    }
    int be = e - 1 + 15;
    if (be >= 31)
        return s | 0x7c00;
    return s | (uint16_t)(be << 10) | (uint16_t)((uint32_t)q - 1024);
}

static float bf16_to_float(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if (isnan(f))
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Element access goes through memcpy: weights mapped from a file need not be aligned to their
 * element size, and memcpy of a known small size compiles to one load. */
#define LOAD(T) \
    do { \
        T v_; \
        memcpy(&v_, (const char *)p + i * sizeof(T), sizeof(T)); \
        return (double)v_; \
    } while (0)

double dtype_load(DType t, const void *p, size_t i)
{
    switch (t) {
    case DT_F32: LOAD(float);
    case DT_F64: LOAD(double);
    case DT_I64: LOAD(int64_t);
    case DT_I32: LOAD(int32_t);
    case DT_I8: LOAD(int8_t);
    case DT_U8: LOAD(uint8_t);
    case DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    case DT_I4:
    case DT_U4: {
        int v = (((const uint8_t *)p)[i / 2] >> (i % 2 * 4)) & 15;
        return t == DT_I4 && v > 7 ? v - 16 : v;
    }
    case DT_F16:
    case DT_BF16: {
        uint16_t h;
        memcpy(&h, (const char *)p + i * 2, 2);
        return t == DT_F16 ? half_to_float(h) : bf16_to_float(h);
    }
    default: UNREACHABLE();
    }
}
#undef LOAD

/* Integer conversion as C casts would do it from a wider integer: truncate toward zero, wrap. */
static int64_t to_i64(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 9223372036854775808.0) /* 2^63: saturate exactly at the i64 range, as LLVM's fptosi.sat */
        return INT64_MAX;
    if (v < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

#define STORE(T, x) \
    do { \
        T v_ = (T)(x); \
        memcpy((char *)p + i * sizeof(T), &v_, sizeof(T)); \
        return; \
    } while (0)

void dtype_store(DType t, void *p, size_t i, double v)
{
    switch (t) {
    case DT_F32: STORE(float, v);
    case DT_F16: STORE(uint16_t, float_to_half((float)v));
    case DT_BF16: STORE(uint16_t, float_to_bf16((float)v));
    case DT_F64: STORE(double, v);
    case DT_I64: STORE(int64_t, to_i64(v));
    case DT_I32: STORE(int32_t, (int32_t)(uint32_t)to_i64(v));
    case DT_I8: STORE(int8_t, (int8_t)(uint8_t)to_i64(v));
    case DT_U8: STORE(uint8_t, (uint8_t)to_i64(v));
    case DT_BOOL: STORE(uint8_t, v != 0);
    case DT_I4:
    case DT_U4: { /* wraps to 4 bits like the other integers; the other nibble is kept */
        uint8_t *b = (uint8_t *)p + i / 2;
        unsigned sh = (unsigned)(i % 2 * 4), x = (unsigned)to_i64(v) & 15;
        *b = (uint8_t)((*b & ~(15u << sh)) | x << sh);
        return;
    }
    default: UNREACHABLE();
    }
}
#undef STORE

int64_t dtype_bytes(DType t, int64_t n)
{
    return kiln_dtype_bytes(&dtype_traits[t], n);
}

double dtype_round(DType t, double v)
{
    _Alignas(8) unsigned char buf[8] = {0};
    dtype_store(t, buf, 0, v);
    return dtype_load(t, buf, 0);
}

/* ---- dimensions */

Dim dim_const(int64_t v)
{
    return (Dim){-1, 0, v};
}

Dim dim_sym(int sym)
{
    return (Dim){sym, 1, 0};
}

int dim_is_const(Dim d)
{
    return d.sym < 0 || d.a == 0;
}

static Dim dim_norm(Dim d)
{
    if (d.sym < 0 || d.a == 0)
        return dim_const(d.b);
    return d;
}

int64_t dim_value(Dim d)
{
    return d.b;
}

int dim_nterms(Dim d)
{
    return dim_is_const(d) ? 0 : 1;
}

int dim_term(Dim d, int i, int64_t *coef)
{
    KILN_ASSERT(i >= 0 && i < dim_nterms(d));
    if (coef)
        *coef = d.a;
    return d.sym;
}

int64_t dim_coef(Dim d, int sym)
{
    d = dim_norm(d);
    return d.sym >= 0 && d.sym == sym ? d.a : 0;
}

int dim_sym1(Dim d, int *sym, int64_t *coef, int64_t *off)
{
    if (dim_nterms(d) != 1)
        return 0;
    if (sym)
        *sym = d.sym;
    if (coef)
        *coef = d.a;
    if (off)
        *off = d.b;
    return 1;
}

int dim_is_sym(Dim d, int sym)
{
    int s;
    int64_t a, b;
    return dim_sym1(d, &s, &a, &b) && a == 1 && b == 0 && (sym < 0 || s == sym);
}

Dim dim_add_const(Dim d, int64_t k)
{
    d = dim_norm(d);
    d.b += k;
    return d;
}

Dim dim_mul_const(Dim d, int64_t k)
{
    d = dim_norm(d);
    d.a *= k;
    d.b *= k;
    return dim_norm(d);
}

int dim_in_graph(const Graph *g, Dim d)
{
    for (int i = 0; i < dim_nterms(d); i++)
        if (dim_term(d, i, NULL) >= g->nsym)
            return 0;
    return 1;
}

uint64_t dim_hash(Dim d)
{
    d = dim_norm(d);
    uint64_t h = 1469598103934665603ull;
    int64_t parts[3] = {d.sym, d.a, d.b};
    for (int i = 0; i < 3; i++)
        h = (h ^ (uint64_t)parts[i]) * 0x100000001B3ull;
    return h;
}

int dim_eq(Dim x, Dim y)
{
    x = dim_norm(x);
    y = dim_norm(y);
    return x.sym == y.sym && x.a == y.a && x.b == y.b;
}

int64_t dim_eval(Dim d, const int64_t *vals)
{
    d = dim_norm(d);
    return d.sym < 0 ? d.b : d.a * vals[d.sym] + d.b;
}

int64_t dim_max(const Graph *g, Dim d)
{
    d = dim_norm(d);
    if (d.sym < 0)
        return d.b;
    /* a may be negative (T-1 has a = 1; 1-T would have a = -1): the largest value is at an end. */
    int64_t hi = d.a * g->syms[d.sym].bound + d.b, lo = d.a * 1 + d.b;
    return hi > lo ? hi : lo;
}

int64_t dim_min(const Graph *g, Dim d)
{
    d = dim_norm(d);
    if (d.sym < 0)
        return d.b;
    int64_t hi = d.a * g->syms[d.sym].bound + d.b, lo = d.a * 1 + d.b; /* symbols are at least 1 */
    return hi < lo ? hi : lo;
}

int dim_add(Dim x, Dim y, Dim *out)
{
    x = dim_norm(x);
    y = dim_norm(y);
    if (x.sym >= 0 && y.sym >= 0 && x.sym != y.sym)
        return 0;
    *out = dim_norm((Dim){x.sym >= 0 ? x.sym : y.sym, x.a + y.a, x.b + y.b});
    return 1;
}

int dim_sub(Dim x, Dim y, Dim *out)
{
    y = dim_norm(y);
    return dim_add(x, (Dim){y.sym, -y.a, -y.b}, out);
}

int dim_mul(Dim x, Dim y, Dim *out)
{
    x = dim_norm(x);
    y = dim_norm(y);
    if (x.sym >= 0 && y.sym >= 0)
        return 0;
    if (x.sym >= 0) {
        Dim t = x;
        x = y;
        y = t;
    }
    /* x is constant */
    *out = dim_norm((Dim){y.sym, y.a * x.b, y.b * x.b});
    return 1;
}

int dim_div(Dim x, Dim y, Dim *out)
{
    x = dim_norm(x);
    y = dim_norm(y);
    if (y.sym >= 0) {
        /* (a*S + b) / (c*S + d) is constant only when proportional. */
        if (x.sym != y.sym || y.a == 0 || x.a % y.a)
            return 0;
        int64_t q = x.a / y.a;
        if (x.b != q * y.b)
            return 0;
        *out = dim_const(q);
        return 1;
    }
    if (y.b == 0 || x.a % y.b || x.b % y.b)
        return 0;
    *out = dim_norm((Dim){x.sym, x.a / y.b, x.b / y.b});
    return 1;
}

const char *dim_str(const Graph *g, Dim d, char *buf, size_t n)
{
    d = dim_norm(d);
    if (d.sym < 0) {
        snprintf(buf, n, "%lld", (long long)d.b);
        return buf;
    }
    const char *s = g && d.sym < g->nsym ? g->syms[d.sym].name : "?";
    char coef[32] = "";
    if (d.a == -1)
        snprintf(coef, sizeof coef, "-");
    else if (d.a != 1)
        snprintf(coef, sizeof coef, "%lld*", (long long)d.a);
    if (d.b > 0)
        snprintf(buf, n, "%s%s+%lld", coef, s, (long long)d.b);
    else if (d.b < 0)
        snprintf(buf, n, "%s%s-%lld", coef, s, (long long)-d.b);
    else
        snprintf(buf, n, "%s%s", coef, s);
    return buf;
}

const char *type_str(const Graph *g, DType dt, int rank, const Dim *shape, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s[", dtype_traits[dt].name);
    for (int i = 0; i < rank && k < n; i++) {
        char d[64];
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", dim_str(g, shape[i], d, sizeof d));
    }
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

const char *node_type_str(const Graph *g, const Node *nd, char *buf, size_t n)
{
    return type_str(g, nd->dtype, nd->rank, nd->shape, buf, n);
}

int64_t shape_numel(int rank, const Dim *shape, const int64_t *vals)
{
    /* unsigned: a hostile shape wraps instead of overflowing (the frontend rejects it afterwards) */
    uint64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (uint64_t)dim_eval(shape[i], vals);
    return (int64_t)n;
}

/* The element counts are polynomials in the symbols of degree at most the rank. Two polynomials of
 * degree <= r in one variable that agree at r+1 points are equal; with several symbols we evaluate
 * on a grid of distinct values per symbol, which has the same guarantee per variable. To keep it
 * cheap we use points where every symbol takes a distinct value from a small set, varied jointly;
 * this is exact for the single-symbol case and for products of distinct symbols in practice. */
int shape_numel_eq(const Graph *g, int ra, const Dim *a, int rb, const Dim *b)
{
    int nsym = g ? g->nsym : IR_MAX_SYMS;
    int points = (ra > rb ? ra : rb) + 2;
    for (int p = 0; p < points; p++) {
        int64_t vals[IR_MAX_SYMS];
        for (int s = 0; s < nsym && s < IR_MAX_SYMS; s++)
            vals[s] = 3 + p * (s + 2) + s * 7;
        if (shape_numel(ra, a, vals) != shape_numel(rb, b, vals))
            return 0;
    }
    return 1;
}

int shape_broadcast(int ra, const Dim *a, int rb, const Dim *b, int *rout, Dim *out)
{
    int r = ra > rb ? ra : rb;
    Dim tmp[IR_MAX_RANK];
    for (int i = 0; i < r; i++) {
        int ia = i - (r - ra), ib = i - (r - rb);
        Dim da = ia >= 0 ? a[ia] : dim_const(1), db = ib >= 0 ? b[ib] : dim_const(1);
        if (dim_eq(da, db) || dim_eq(db, dim_const(1)))
            tmp[i] = da;
        else if (dim_eq(da, dim_const(1)))
            tmp[i] = db;
        else
            return 0;
    }
    memcpy(out, tmp, sizeof(Dim) * (size_t)r);
    *rout = r;
    return 1;
}

/* ---- graphs and nodes */

Graph *ir_graph_new(void)
{
    Arena *a = arena_new();
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->layer = -1;
    return g;
}

void ir_graph_free(Graph *g)
{
    if (g) {
        free(g->nodes);
        free(g->inputs);
        free(g->outputs);
        free(g->states);
        free(g->entries);
        arena_free(g->arena);
    }
}

static void grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return;
    int c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    KILN_ASSERT(q);
    *p = q;
    *cap = c;
}

Node *ir_node(Graph *g, Op op, DType dt, int rank, const Dim *shape, int nin, Node *const *in,
              SrcLoc loc)
{
    KILN_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    Node *n = arena_alloc(g->arena, sizeof *n);
    n->op = op;
    n->dtype = dt;
    n->rank = rank;
    if (rank)
        memcpy(n->shape, shape, sizeof(Dim) * (size_t)rank);
    n->nin = nin;
    if (nin) {
        n->in = arena_alloc(g->arena, sizeof(Node *) * (size_t)nin);
        memcpy(n->in, in, sizeof(Node *) * (size_t)nin);
    }
    n->loc = loc;
    n->scope = g->scope;
    n->layer = g->layer;
    n->arena = -1;
    g->planned = 0;
    grow((void **)&g->nodes, &g->capnode, g->nnode + 1, sizeof(Node *));
    n->id = g->nnode;
    g->nodes[g->nnode++] = n;
    if (op == OP_INPUT) {
        grow((void **)&g->inputs, &g->capinput, g->ninput + 1, sizeof(Node *));
        g->inputs[g->ninput++] = n;
        n->entry = g->nentry ? g->nentry - 1 : 0;
    }
    return n;
}

void ir_set_origin(Graph *g, const Node *from)
{
    g->scope = from ? from->scope : NULL;
    g->layer = from ? from->layer : -1;
}

int ir_layer_of(const Node *n)
{
    return n->layer;
}

int ir_layer_count(const Graph *g)
{
    int k = 0;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i]->layer + 1 > k)
            k = g->nodes[i]->layer + 1;
    return k;
}

Node **ir_layer_nodes(const Graph *g, int l, int *count)
{
    int k = 0;
    Node **out = NULL;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i]->layer == l)
            k++;
    *count = k;
    if (!k)
        return NULL;
    out = malloc(sizeof *out * (size_t)k);
    KILN_ASSERT(out);
    k = 0;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i]->layer == l)
            out[k++] = g->nodes[i];
    return out;
}

int ir_in_scope(const Node *n, const char *scope)
{
    if (!n->scope || !scope)
        return 0;
    size_t k = strlen(scope);
    return !strncmp(n->scope, scope, k) && (n->scope[k] == 0 || n->scope[k] == '.');
}

int ir_sym(Graph *g, const char *name, int64_t bound)
{
    for (int i = 0; i < g->nsym; i++)
        if (!strcmp(g->syms[i].name, name))
            return i;
    if (g->nsym == IR_MAX_SYMS)
        return -1;
    g->syms[g->nsym] = (Sym){arena_strdup(g->arena, name), bound};
    return g->nsym++;
}

void ir_add_output(Graph *g, const char *name, Node *n)
{
    grow((void **)&g->outputs, &g->capoutput, g->noutput + 1, sizeof(Output));
    g->outputs[g->noutput++] = (Output){arena_strdup(g->arena, name), n, g->nentry ? g->nentry - 1 : 0, 0};
}

void ir_compact(Graph *g)
{
    g->planned = 0;
    /* Mark what the outputs need (inputs always stay: they are the model's signature), walking
     * backwards so that one pass over the topological order suffices. */
    char *live = calloc((size_t)g->nnode + 1, 1);
    KILN_ASSERT(live);
    for (int i = 0; i < g->nnode; i++)
        g->nodes[i]->id = i;
    for (int i = 0; i < g->noutput; i++)
        live[g->outputs[i].node->id] = 1;
    for (int i = 0; i < g->ninput; i++)
        live[g->inputs[i]->id] = 1;
    for (int i = g->nnode - 1; i >= 0; i--)
        if (live[i])
            for (int j = 0; j < g->nodes[i]->nin; j++)
                live[g->nodes[i]->in[j]->id] = 1;
    int k = 0;
    for (int i = 0; i < g->nnode; i++)
        if (live[i]) {
            g->nodes[k] = g->nodes[i];
            g->nodes[k]->id = k;
            k++;
        }
    g->nnode = k;
    free(live);
}

void ir_replace_uses(Graph *g, Node *old, Node *new_)
{
    g->planned = 0;
    for (int i = 0; i < g->nnode; i++) {
        Node *n = g->nodes[i];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] == old)
                n->in[j] = new_;
    }
    for (int i = 0; i < g->noutput; i++)
        if (g->outputs[i].node == old)
            g->outputs[i].node = new_;
}

/* Depth-first from each node in the current order: a node goes after its inputs and otherwise keeps
 * its place, so an already-ordered graph is unchanged and a node appended by a pass moves up to just
 * before its first user. */
static void topo_visit(Node *n, char *state, Node **out, int *k)
{
    if (state[n->id] == 2)
        return;
    KILN_ASSERT(state[n->id] != 1); /* a cycle: a pass made a node its own input */
    state[n->id] = 1;
    for (int j = 0; j < n->nin; j++)
        topo_visit(n->in[j], state, out, k);
    state[n->id] = 2;
    out[(*k)++] = n;
}

void ir_toposort(Graph *g)
{
    for (int i = 0; i < g->nnode; i++)
        g->nodes[i]->id = i;
    char *state = calloc((size_t)g->nnode + 1, 1);
    Node **out = malloc(sizeof(Node *) * ((size_t)g->nnode + 1));
    KILN_ASSERT(state && out);
    int k = 0;
    for (int i = 0; i < g->nnode; i++)
        topo_visit(g->nodes[i], state, out, &k);
    if (k) /* an empty graph has no node array */
        memcpy(g->nodes, out, sizeof(Node *) * (size_t)k);
    for (int i = 0; i < k; i++)
        g->nodes[i]->id = i;
    free(state);
    free(out);
}

const Node *ir_packed_rhs(const Node *n, int *trans)
{
    if (n->op != OP_MATMUL || n->dtype != DT_F32 || n->in[0]->dtype != DT_F32 || n->in[0]->rank < 1)
        return NULL;
    const Node *b = n->in[1];
    if (b->rank != 2 || b->dtype != DT_F32 || !dim_is_const(b->shape[0]) || !dim_is_const(b->shape[1]) ||
        b->shape[0].b <= 0 || b->shape[1].b <= 0)
        return NULL;
    *trans = 0;
    if (b->op == OP_TRANSPOSE) { /* a reshape above a transpose would reorder; only one below */
        if (b->at.perm[0] != 1)
            return NULL;
        *trans = 1;
        b = b->in[0];
    }
    while (b->op == OP_RESHAPE)
        b = b->in[0];
    if (b->op == OP_CAST && dtype_traits[b->in[0]->dtype].is_float) /* f16, bf16 or f64 weights */
        b = b->in[0];
    while (b->op == OP_RESHAPE)
        b = b->in[0];
    if ((b->op != OP_WEIGHT && b->op != OP_CONST) || !dtype_traits[b->dtype].is_float || !b->at.data)
        return NULL;
    return b;
}

int ir_same_shape(const Node *a, const Node *b)
{
    if (a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (!dim_eq(a->shape[i], b->shape[i]))
            return 0;
    return 1;
}

int *ir_use_counts(Graph *g)
{
    int *uses = calloc((size_t)g->nnode + 1, sizeof(int));
    KILN_ASSERT(uses);
    for (int i = 0; i < g->nnode; i++)
        g->nodes[i]->id = i;
    for (int i = 0; i < g->nnode; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            uses[g->nodes[i]->in[j]->id]++;
    for (int i = 0; i < g->noutput; i++)
        uses[g->outputs[i].node->id]++;
    return uses;
}

int64_t ir_bytes_at_bound(const Graph *g, const Node *n)
{
    int64_t k = 1;
    for (int i = 0; i < n->rank; i++)
        k *= dim_max(g, n->shape[i]);
    return dtype_bytes(n->dtype, k);
}

/* ---- attributes */

int64_t ir_static_numel(const Node *n)
{
    int64_t k = 1;
    for (int i = 0; i < n->rank; i++) {
        if (!dim_is_const(n->shape[i]) || n->shape[i].b < 0)
            return -1;
        if (__builtin_mul_overflow(k, n->shape[i].b, &k))
            return -1;
    }
    return k;
}

int ir_attr_eq(const Node *a, const Node *b, int ai)
{
    const AttrInfo *ia = &attr_info[ai];
    const char *x = (const char *)&a->at + ia->offset, *y = (const char *)&b->at + ia->offset;
    switch (ia->kind) {
    case AK_INT:
    case AK_BOOL:
    case AK_ENUM: return *(const int *)x == *(const int *)y;
    case AK_PERM: return a->rank == b->rank && !memcmp(x, y, sizeof(int) * (size_t)a->rank);
    case AK_DIM: return dim_eq(*(const Dim *)x, *(const Dim *)y);
    case AK_F64: return !memcmp(x, y, sizeof(double));
    case AK_INT2: return !memcmp(x, y, 2 * sizeof(int));
    case AK_DATA: {
        const void *p = *(const void *const *)x, *q = *(const void *const *)y;
        int64_t k = ir_static_numel(a);
        if (p == q)
            return 1;
        if (!p || !q || k < 0 || a->dtype != b->dtype || k != ir_static_numel(b))
            return 0;
        return !memcmp(p, q, (size_t)dtype_bytes(a->dtype, k));
    }
    }
    UNREACHABLE();
}

int ir_same_attrs(const Node *a, const Node *b)
{
    if (a->op != b->op)
        return 0;
    int m = op_info[a->op].attrs;
    for (int i = 0; i < AI_COUNT; i++)
        if ((m & (1 << i)) && !ir_attr_eq(a, b, i))
            return 0;
    return 1;
}
