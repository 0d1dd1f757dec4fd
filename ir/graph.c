/* graph.c: the dtype and op tables, dimensions, shapes, nodes and graphs.
 *
 * Dimensions are linear in the symbolic sizes: b + a1*S1 + ... with at most DIM_TERMS symbols. That
 * covers what transformer models write (T, T+1 for a [CLS] token, 2*T after a concat, B*49 after
 * flattening patches, P+T for a cache of P past tokens and T new ones, T-r after merging r tokens)
 * while keeping equality decidable by comparing a canonical form. Shapes whose element counts must
 * agree (reshape) are compared as polynomials (see shape_numel_eq).
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
    case DT_I16: LOAD(int16_t);
    case DT_U16: LOAD(uint16_t);
    case DT_U32: LOAD(uint32_t);
    case DT_U64: LOAD(uint64_t); /* to the nearest double: exact up to 2^53 */
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

/* To u64: truncate toward zero, then modulo 2^64 in (-2^64, 0) (0 - 1 is 2^64 - 1, as the compiled
 * code's wrapping subtraction gives: a u64 difference is never below -2^64); saturate outside
 * (-inf and below -2^64: 0; 2^64 and up: UINT64_MAX); NaN is 0. codegen/loops.c's cg_convert does
 * the same for a float cast to u64. */
static uint64_t to_u64(double v)
{
    if (isnan(v) || v <= -18446744073709551616.0)
        return 0;
    if (v >= 18446744073709551616.0)
        return UINT64_MAX;
    if (v < -9223372036854775808.0)
        return (uint64_t)(v + 18446744073709551616.0); /* exact: v is an integer past 2^63 */
    if (v < 0)
        return (uint64_t)(int64_t)v;
    return (uint64_t)v;
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
    case DT_I16: STORE(int16_t, (int16_t)(uint16_t)to_i64(v));
    case DT_U16: STORE(uint16_t, (uint16_t)to_i64(v));
    case DT_U32: STORE(uint32_t, (uint32_t)to_i64(v));
    case DT_U64: STORE(uint64_t, to_u64(v));
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

/* ---- dimensions
 *
 * A Dim is kept in one canonical form (terms in ascending order of symbols, no zero coefficient,
 * unused slots zero), so two dims are equal exactly when their fields are. Arithmetic that would
 * need a fifth term or overflow 64 bits fails (returns 0) rather than wrap. */

/* d += a*S; 0 when that needs more than DIM_TERMS terms or overflows. */
static int dim_put(Dim *d, int sym, int64_t a)
{
    if (a == 0)
        return 1;
    int i = 0;
    while (i < d->n && d->sym[i] < sym)
        i++;
    if (i < d->n && d->sym[i] == sym) {
        if (__builtin_add_overflow(d->a[i], a, &d->a[i]))
            return 0;
        if (d->a[i] == 0) { /* the term cancels: close the gap */
            for (int j = i; j + 1 < d->n; j++)
                d->sym[j] = d->sym[j + 1], d->a[j] = d->a[j + 1];
            d->n--;
            d->sym[d->n] = 0, d->a[d->n] = 0;
        }
        return 1;
    }
    if (d->n == DIM_TERMS)
        return 0;
    for (int j = d->n; j > i; j--)
        d->sym[j] = d->sym[j - 1], d->a[j] = d->a[j - 1];
    d->sym[i] = sym, d->a[i] = a;
    d->n++;
    return 1;
}

Dim dim_const(int64_t v)
{
    Dim d = {0};
    d.b = v;
    return d;
}

Dim dim_sym(int sym)
{
    Dim d = {0};
    KILN_ASSERT(sym >= 0);
    d.n = 1, d.sym[0] = sym, d.a[0] = 1;
    return d;
}

int dim_is_const(Dim d)
{
    return d.n == 0;
}

int64_t dim_value(Dim d)
{
    return d.b;
}

int dim_nterms(Dim d)
{
    return d.n;
}

int dim_term(Dim d, int i, int64_t *coef)
{
    KILN_ASSERT(i >= 0 && i < d.n);
    if (coef)
        *coef = d.a[i];
    return d.sym[i];
}

int64_t dim_coef(Dim d, int sym)
{
    for (int i = 0; i < d.n; i++)
        if (d.sym[i] == sym)
            return d.a[i];
    return 0;
}

int dim_sym1(Dim d, int *sym, int64_t *coef, int64_t *off)
{
    if (d.n != 1)
        return 0;
    if (sym)
        *sym = d.sym[0];
    if (coef)
        *coef = d.a[0];
    if (off)
        *off = d.b;
    return 1;
}

int dim_is_sym(Dim d, int sym)
{
    return d.n == 1 && d.a[0] == 1 && d.b == 0 && (sym < 0 || d.sym[0] == sym);
}

Dim dim_add_const(Dim d, int64_t k)
{
    KILN_ASSERT(!__builtin_add_overflow(d.b, k, &d.b));
    return d;
}

Dim dim_mul_const(Dim d, int64_t k)
{
    Dim r;
    KILN_ASSERT(dim_mul(d, dim_const(k), &r));
    return r;
}

int dim_in_graph(const Graph *g, Dim d)
{
    for (int i = 0; i < d.n; i++)
        if (d.sym[i] < 0 || d.sym[i] >= g->nsym)
            return 0;
    return 1;
}

uint64_t dim_hash(Dim d)
{
    uint64_t h = 1469598103934665603ull;
#define DIM_MIX(v) (h = (h ^ (uint64_t)(v)) * 0x100000001B3ull)
    DIM_MIX(d.n);
    for (int i = 0; i < d.n; i++) {
        DIM_MIX(d.sym[i]);
        DIM_MIX(d.a[i]);
    }
    DIM_MIX(d.b);
#undef DIM_MIX
    return h;
}

int dim_eq(Dim x, Dim y)
{
    if (x.n != y.n || x.b != y.b)
        return 0;
    for (int i = 0; i < x.n; i++)
        if (x.sym[i] != y.sym[i] || x.a[i] != y.a[i])
            return 0;
    return 1;
}

int64_t dim_eval(Dim d, const int64_t *vals)
{
    /* unsigned: a hostile dim wraps instead of overflowing (bounds keep real ones far from it) */
    uint64_t v = (uint64_t)d.b;
    for (int i = 0; i < d.n; i++)
        v += (uint64_t)d.a[i] * (uint64_t)vals[d.sym[i]];
    return (int64_t)v;
}

/* The largest (hi) or smallest value of d: the symbols range independently over 1..bound, so each
 * term takes its own extreme, at 1 or at the bound (a coefficient may be negative: 40 - T). */
static int64_t dim_extreme(const Graph *g, Dim d, int hi)
{
    __int128 v = d.b; /* saturated at the end: a hostile dim does not overflow */
    for (int i = 0; i < d.n; i++) {
        __int128 at1 = d.a[i], atb = (__int128)d.a[i] * g->syms[d.sym[i]].bound;
        v += (hi ? atb > at1 : atb < at1) ? atb : at1;
    }
    return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

int64_t dim_max(const Graph *g, Dim d)
{
    return dim_extreme(g, d, 1);
}

int64_t dim_min(const Graph *g, Dim d)
{
    return dim_extreme(g, d, 0);
}

int dim_add(Dim x, Dim y, Dim *out)
{
    Dim r = x;
    for (int i = 0; i < y.n; i++)
        if (!dim_put(&r, y.sym[i], y.a[i]))
            return 0;
    if (__builtin_add_overflow(x.b, y.b, &r.b))
        return 0;
    *out = r;
    return 1;
}

int dim_sub(Dim x, Dim y, Dim *out)
{
    Dim neg;
    return dim_mul(y, dim_const(-1), &neg) && dim_add(x, neg, out);
}

int dim_mul(Dim x, Dim y, Dim *out)
{
    if (x.n && y.n) /* a product of two sizes is not linear */
        return 0;
    if (x.n) {
        Dim t = x;
        x = y;
        y = t;
    }
    /* x is the constant k: k * y */
    int64_t k = x.b;
    if (k == 0) {
        *out = dim_const(0);
        return 1;
    }
    Dim r = y;
    for (int i = 0; i < r.n; i++)
        if (__builtin_mul_overflow(r.a[i], k, &r.a[i]))
            return 0;
    if (__builtin_mul_overflow(r.b, k, &r.b))
        return 0;
    *out = r;
    return 1;
}

int dim_div(Dim x, Dim y, Dim *out)
{
    if (y.n) {
        /* x / y is a constant q only when x = q * y */
        if (x.n != y.n || x.a[0] % y.a[0])
            return 0;
        int64_t q = x.a[0] / y.a[0];
        Dim qy;
        if (!dim_mul(y, dim_const(q), &qy) || !dim_eq(qy, x))
            return 0;
        *out = dim_const(q);
        return 1;
    }
    int64_t k = y.b;
    if (k == 0 || (k == -1 && x.b == INT64_MIN) || x.b % k)
        return 0;
    Dim r = x;
    for (int i = 0; i < r.n; i++) {
        if (r.a[i] % k || (k == -1 && r.a[i] == INT64_MIN))
            return 0;
        r.a[i] /= k;
    }
    r.b /= k;
    *out = r;
    return 1;
}

const char *dim_str(const Graph *g, Dim d, char *buf, size_t n)
{
    size_t k = 0;
    if (n)
        buf[0] = 0;
    for (int i = 0; i < d.n && k < n; i++) {
        const char *s = g && d.sym[i] < g->nsym ? g->syms[d.sym[i]].name : "?";
        /* unsigned magnitudes: -INT64_MIN is not an int64_t */
        uint64_t m = d.a[i] < 0 ? -(uint64_t)d.a[i] : (uint64_t)d.a[i];
        const char *sign = d.a[i] < 0 ? "-" : i ? "+" : "";
        int w = m == 1 ? snprintf(buf + k, n - k, "%s%s", sign, s)
                       : snprintf(buf + k, n - k, "%s%llu*%s", sign, (unsigned long long)m, s);
        k += w < 0 ? n - k : (size_t)w;
    }
    if (k < n && (d.n == 0 || d.b != 0)) {
        uint64_t m = d.b < 0 ? -(uint64_t)d.b : (uint64_t)d.b;
        snprintf(buf + k, n - k, "%s%llu", d.b < 0 ? "-" : d.n ? "+" : "", (unsigned long long)m);
    }
    return buf;
}

const char *type_str(const Graph *g, DType dt, int rank, const Dim *shape, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s[", dtype_traits[dt].name);
    for (int i = 0; i < rank && k < n; i++) {
        char d[IR_DIM_STR];
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

/* Arithmetic modulo the prime 2^61 - 1, for shape_numel_eq. */
static const uint64_t NUMEL_P = (1ull << 61) - 1;

static uint64_t mod_p(int64_t x)
{
    uint64_t m = (x < 0 ? -(uint64_t)x : (uint64_t)x) % NUMEL_P;
    return x < 0 && m ? NUMEL_P - m : m;
}

static uint64_t mul_p(uint64_t x, uint64_t y)
{
    return (uint64_t)((unsigned __int128)x * y % NUMEL_P);
}

static uint64_t numel_p(int rank, const Dim *shape, const uint64_t *vals)
{
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) {
        uint64_t v = mod_p(dim_value(shape[i]));
        for (int t = 0; t < dim_nterms(shape[i]); t++) {
            int64_t a;
            int s = dim_term(shape[i], t, &a);
            v = (v + mul_p(mod_p(a), vals[s])) % NUMEL_P;
        }
        n = mul_p(n, v);
    }
    return n;
}

/* The element counts are polynomials in the symbols, products of at most IR_MAX_RANK linear factors.
 * Two different ones agree at a random point modulo a prime p with probability at most their degree
 * over p (Schwartz-Zippel: here 8 / 2^61), so four fixed points drawn by a hash, which no shape has
 * any structure in common with, tell them apart; equal ones agree everywhere. Exact in practice,
 * and cheap for any number of symbols. */
int shape_numel_eq(const Graph *g, int ra, const Dim *a, int rb, const Dim *b)
{
    (void)g;
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int p = 0; p < 4; p++) {
        uint64_t vals[IR_MAX_SYMS];
        for (int s = 0; s < IR_MAX_SYMS; s++) { /* splitmix64 */
            uint64_t z = (h += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            vals[s] = (z ^ (z >> 31)) % NUMEL_P;
        }
        if (numel_p(ra, a, vals) != numel_p(rb, b, vals))
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
 * before its first user. The walk keeps its own stack (a node and the next input to visit) rather
 * than recursing, so a chain as long as the graph (a .kir file of a million nodes) cannot overflow
 * the C stack. */
void ir_toposort(Graph *g)
{
    for (int i = 0; i < g->nnode; i++)
        g->nodes[i]->id = i;
    char *state = calloc((size_t)g->nnode + 1, 1); /* 0 unvisited, 1 on the stack, 2 placed */
    Node **out = malloc(sizeof(Node *) * ((size_t)g->nnode + 1));
    Node **stack = malloc(sizeof(Node *) * ((size_t)g->nnode + 1));
    int *next = malloc(sizeof(int) * ((size_t)g->nnode + 1));
    KILN_ASSERT(state && out && stack && next);
    int k = 0;
    for (int i = 0; i < g->nnode; i++) {
        if (state[g->nodes[i]->id] == 2)
            continue;
        int sp = 0;
        stack[sp] = g->nodes[i];
        next[sp++] = 0;
        state[g->nodes[i]->id] = 1;
        while (sp > 0) {
            Node *n = stack[sp - 1];
            if (next[sp - 1] < n->nin) {
                Node *in = n->in[next[sp - 1]++];
                if (state[in->id] == 2)
                    continue;
                KILN_ASSERT(state[in->id] != 1); /* a cycle: a pass made a node its own input */
                state[in->id] = 1;
                stack[sp] = in;
                next[sp++] = 0;
            } else {
                state[n->id] = 2;
                out[k++] = n;
                sp--;
            }
        }
    }
    if (k) /* an empty graph has no node array */
        memcpy(g->nodes, out, sizeof(Node *) * (size_t)k);
    for (int i = 0; i < k; i++)
        g->nodes[i]->id = i;
    free(state);
    free(out);
    free(stack);
    free(next);
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
