/* test_irtext.c: the IR text form and the verifier.
 *
 * 1. Builds a graph with a node of every op of ops.def (symbolic dims, const data of every dtype, weights
 *    from a safetensors file written under /tmp), prints it, parses the text back, prints again, and
 *    requires the two texts to be byte-identical and both graphs to verify cleanly.
 * 2. Feeds broken graphs to the verifier and broken texts to the parser, each with one distinct
 *    mistake, and requires an error that says what is wrong.
 * Exits non-zero on the first failed expectation family, after reporting every failure.
 */
#include "ir/ir.h"
#include "frontend/frontend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"

static char wpath[256];

/* ---- building graphs */

static Node *mk(Graph *g, Op op, DType dt, int rank, const Dim *shape, int nin, Node *const *in)
{
    return ir_node(g, op, dt, rank, shape, nin, in, (SrcLoc){0, 0, 0});
}

#define SH(...) (int)(sizeof((Dim[]){__VA_ARGS__}) / sizeof(Dim)), (Dim[]){__VA_ARGS__}
#define INS(...) (int)(sizeof((Node *[]){__VA_ARGS__}) / sizeof(Node *)), (Node *[]){__VA_ARGS__}

static Dim dadd(Dim d, int64_t k)
{
    Dim r;
    KILN_ASSERT(dim_add(d, dim_const(k), &r));
    return r;
}

static Dim dmul(Dim d, int64_t k)
{
    Dim r;
    KILN_ASSERT(dim_mul(d, dim_const(k), &r));
    return r;
}

static const void *copy(Graph *g, const void *p, size_t n)
{
    void *q = arena_alloc(g->arena, n);
    memcpy(q, p, n);
    return q;
}

static Node *cnst(Graph *g, DType dt, int rank, const Dim *shape, const void *data, size_t bytes)
{
    Node *n = mk(g, OP_CONST, dt, rank, shape, 0, NULL);
    n->at.data = copy(g, data, bytes);
    return n;
}

/* The weights file the round-trip graph reads. */
static float wte_data[10 * 8], proj_data[8 * 4], lnf_data[8];

static void write_weights(void)
{
    for (int i = 0; i < 80; i++)
        wte_data[i] = (float)i * 0.25f - 3;
    for (int i = 0; i < 32; i++)
        proj_data[i] = (float)(i % 7) * 0.5f;
    for (int i = 0; i < 8; i++)
        lnf_data[i] = 1 + (float)i / 8;
    WTensor t[3] = {
        {.name = "wte", .dtype = DT_F32, .rank = 2, .shape = {10, 8}, .data = wte_data, .nbytes = sizeof wte_data},
        {.name = "proj.w", .dtype = DT_F32, .rank = 2, .shape = {8, 4}, .data = proj_data, .nbytes = sizeof proj_data},
        {.name = "ln_f.weight", .dtype = DT_F32, .rank = 1, .shape = {8}, .data = lnf_data, .nbytes = sizeof lnf_data},
    };
    snprintf(wpath, sizeof wpath, "/tmp/kiln_test_irtext_%d.safetensors", (int)getpid());
    KILN_ASSERT(st_write(wpath, 3, t, 0, NULL, NULL) == 0);
}

static Node *weight(Graph *g, const char *name, DType dt, int rank, const Dim *shape, const void *data)
{
    Node *n = mk(g, OP_WEIGHT, dt, rank, shape, 0, NULL);
    n->name = arena_strdup(g->arena, name);
    n->at.data = data;
    return n;
}

static Node *input(Graph *g, const char *name, DType dt, int rank, const Dim *shape)
{
    Node *n = mk(g, OP_INPUT, dt, rank, shape, 0, NULL);
    n->name = arena_strdup(g->arena, name);
    return n;
}

/* A graph with every op, symbolic dims and const data of every dtype. */
static Graph *build_full(void)
{
    Graph *g = ir_graph_new();
    g->model = "irtext-test";
    g->source = "tests/unit/model.kiln";
    g->weights_path = wpath;
    int ts = ir_sym(g, "T", 16), bs = ir_sym(g, "B", 4);
    Dim T = dim_sym(ts), B = dim_sym(bs), c1 = dim_const(1), c2 = dim_const(2), c3 = dim_const(3),
        c4 = dim_const(4), c6 = dim_const(6), c8 = dim_const(8), c10 = dim_const(10);

    Node *tok = input(g, "tokens", DT_I32, SH(T));
    Node *img = input(g, "image", DT_F32, SH(B, c2, c6, c6));
    Node *odd = input(g, "we\"ird\\name\t\x01", DT_F32, SH(T, c8));
    Node *wte = weight(g, "wte", DT_F32, SH(c10, c8), wte_data);
    Node *proj = weight(g, "proj.w", DT_F32, SH(c8, c4), proj_data);
    Node *lnf = weight(g, "ln_f.weight", DT_F32, SH(c8), lnf_data);

    Node *x = mk(g, OP_GATHER, DT_F32, SH(T, c8), INS(wte, tok));
    x->loc = (SrcLoc){0, 12, 5};
    float scal = 0.125f;
    Node *c = cnst(g, DT_F32, 0, NULL, &scal, sizeof scal);
    float vec[8] = {0.1f, -2.5f, 1e-8f, 3.4e38f, -0.0f, INFINITY, -INFINITY, NAN};
    Node *cv = cnst(g, DT_F32, SH(c8), vec, sizeof vec);
    /* f16 and bf16 through dtype_store, so the bits are what the type holds */
    uint16_t h[4], bf[3];
    double hv[4] = {0.1, 65504, -5.9604644775390625e-08, 1.0 / 3}, bv[3] = {0.1, -3.14159, 1e30};
    for (int i = 0; i < 4; i++)
        dtype_store(DT_F16, h, (size_t)i, hv[i]);
    for (int i = 0; i < 3; i++)
        dtype_store(DT_BF16, bf, (size_t)i, bv[i]);
    cnst(g, DT_F16, SH(c4), h, sizeof h);
    cnst(g, DT_BF16, SH(c3), bf, sizeof bf);
    double f64[2] = {0.1, 1.0 / 3};
    cnst(g, DT_F64, SH(c2), f64, sizeof f64);
    int64_t i64[3] = {INT64_MIN, INT64_MAX, 9007199254740993LL};
    cnst(g, DT_I64, SH(c3), i64, sizeof i64);
    int32_t i32[2] = {INT32_MIN, 7};
    cnst(g, DT_I32, SH(c2, c1), i32, sizeof i32);
    int8_t i8[3] = {-128, 0, 127};
    cnst(g, DT_I8, SH(c3), i8, sizeof i8);
    uint8_t u8[2] = {0, 255}, b8[2] = {1, 0};
    cnst(g, DT_U8, SH(c2), u8, sizeof u8);
    cnst(g, DT_BOOL, SH(c2), b8, sizeof b8);
    int16_t i16[2] = {INT16_MIN, INT16_MAX};
    cnst(g, DT_I16, SH(c2), i16, sizeof i16);
    uint16_t u16[2] = {0, UINT16_MAX};
    cnst(g, DT_U16, SH(c2), u16, sizeof u16);
    uint32_t u32[2] = {1, UINT32_MAX};
    cnst(g, DT_U32, SH(c2), u32, sizeof u32);
    uint64_t u64[3] = {0, 9223372036854775808ull, UINT64_MAX}; /* past INT64_MAX: never through a double */
    cnst(g, DT_U64, SH(c3), u64, sizeof u64);

    mk(g, OP_ARANGE, DT_I64, SH(T), 0, NULL);
    mk(g, OP_CAUSAL_MASK, DT_F32, SH(T, T), 0, NULL);

    static const Op unary[] = {OP_NEG, OP_ABS, OP_EXP, OP_LOG, OP_SQRT, OP_RSQRT, OP_TANH,
                               OP_ERF, OP_SIGMOID, OP_RELU, OP_GELU, OP_SILU, OP_SIN, OP_COS};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        if (unary[i] == OP_SIN) { /* a layer and a scope, as lowering gives the nodes of a loop's call */
            Node h = {0};
            h.layer = 3;
            h.scope = "h.3.attn \"q\"";
            ir_set_origin(g, &h);
        }
        Node *u = mk(g, unary[i], DT_F32, SH(T, c8), INS(x));
        if (unary[i] == OP_GELU)
            u->at.approx = 1;
        if (unary[i] == OP_SIN)
            u->loc = (SrcLoc){0, 7, 3};
        if (unary[i] == OP_COS)
            ir_set_origin(g, NULL);
    }
    mk(g, OP_CAST, DT_F16, SH(T, c8), INS(x));
    static const Op binary[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM};
    for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++)
        mk(g, binary[i], DT_F32, SH(T, c8), INS(x, i % 2 ? c : cv));
    mk(g, OP_ADD, DT_F32, SH(T, c8), INS(odd, x));
    static const Op cmp[] = {OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE};
    Node *lt = NULL;
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
        Node *k = mk(g, cmp[i], DT_BOOL, SH(T, c8), INS(x, cv));
        lt = lt ? lt : k;
    }
    mk(g, OP_WHERE, DT_F32, SH(T, c8), INS(lt, x, c));

    Node *s = mk(g, OP_SUM, DT_F32, SH(T), INS(x));
    s->at.axis = 1;
    Node *m = mk(g, OP_MEAN, DT_F32, SH(T, c1), INS(x));
    m->at.axis = 1;
    m->at.keepdims = 1;
    mk(g, OP_RMAX, DT_F32, SH(c8), INS(x));
    Node *mn = mk(g, OP_RMIN, DT_F32, SH(T, c1), INS(x));
    mn->at.axis = 1;
    mn->at.keepdims = 1;

    Node *sm = mk(g, OP_SOFTMAX, DT_F32, SH(T, c8), INS(x));
    sm->at.axis = 1;
    mk(g, OP_LOG_SOFTMAX, DT_F32, SH(T, c8), INS(x));
    Node *ln = mk(g, OP_LAYERNORM, DT_F32, SH(T, c8), INS(x, lnf, cv));
    ln->at.eps = 1e-5;
    ln->loc = (SrcLoc){0, 40, 9};
    Node *rms = mk(g, OP_RMSNORM, DT_F32, SH(T, c8), INS(x, lnf));
    rms->at.eps = 1.0 / 3;

    Node *logits = mk(g, OP_MATMUL, DT_F32, SH(T, c4), INS(ln, proj));
    mk(g, OP_MATMUL, DT_F32, SH(T), INS(x, lnf)); /* matrix @ vector */

    float cwv[3 * 2 * 3 * 3], cbv[3] = {0.5f, -0.5f, 0};
    for (int i = 0; i < 54; i++)
        cwv[i] = (float)(i % 9) * 0.01f - 0.04f;
    Node *cw = cnst(g, DT_F32, SH(c3, c2, c3, c3), cwv, sizeof cwv);
    Node *cb = cnst(g, DT_F32, SH(c3), cbv, sizeof cbv);
    Node *conv = mk(g, OP_CONV2D, DT_F32, SH(B, c3, c3, c3), INS(img, cw, cb));
    conv->at.stride[0] = conv->at.stride[1] = 2;
    conv->at.pad[0] = conv->at.pad[1] = 1;

    Node *r = mk(g, OP_RESHAPE, DT_F32, SH(T, c2, c4), INS(x));
    Node *tr = mk(g, OP_TRANSPOSE, DT_F32, SH(c2, T, c4), INS(r));
    tr->at.perm[0] = 1;
    tr->at.perm[1] = 0;
    tr->at.perm[2] = 2;
    /* fused attention: heads [2, T, 4], causal, with a scale that is not a round number */
    Node *att = mk(g, OP_ATTENTION, DT_F32, SH(c2, T, c4), INS(tr, tr, tr));
    att->at.scale = 0.3535533905932738;
    att->at.causal = 1;
    mk(g, OP_CLS_PROBS, DT_F32, SH(c2, T), INS(att)); /* its first row's probabilities, per head */
    mk(g, OP_EXPAND, DT_F32, SH(T, c8), INS(c));
    Node *sl = mk(g, OP_SLICE, DT_F32, SH(dadd(T, -1), c8), INS(x));
    sl->at.start = dim_const(1);
    sl->at.end = T;
    mk(g, OP_CONCAT, DT_F32, SH(dmul(T, 2), c8), INS(x, x));
    Node *row = mk(g, OP_RESHAPE, DT_F32, SH(c1, c8), INS(cv));
    Node *cat1 = mk(g, OP_CONCAT, DT_F32, SH(dadd(T, 1), c8), INS(row, x));
    /* table [T, 8] along axis 1 by indices [B, T]: [T, B, T] */
    Node *idx = input(g, "idx", DT_I64, SH(B, T));
    Node *ga = mk(g, OP_GATHER, DT_F32, SH(T, B, T), INS(x, idx));
    ga->at.axis = 1;
    /* token merging and pruning over [B, 6, 4] */
    Node *tx = input(g, "tokx", DT_F32, SH(B, c6, c4)), *tw = input(g, "tokw", DT_F32, SH(B, c6, c1));
    Node *match = mk(g, OP_TOME_MATCH, DT_I32, SH(B, c6), INS(tx));
    match->at.r = 2;
    match->at.cls = 1;
    Node *pm = mk(g, OP_PITOME_MATCH, DT_I32, SH(B, c6), INS(tx));
    pm->at.r = 2;
    pm->at.cls = 1;
    pm->at.margin = 0.5625;
    pm->at.bsm = 1;
    Node *tm = mk(g, OP_TOKEN_MERGE, DT_F32, SH(B, c4, c4), INS(tx, match, tw));
    tm->at.mode = 1;
    mk(g, OP_TOKEN_MERGE, DT_F32, SH(B, c4, c4), INS(tx, match));
    Node *ca = mk(g, OP_CLS_ATTN, DT_F32, SH(B, c6), INS(tx, tx));
    ca->at.scale = 0.125;
    Node *ev = mk(g, OP_EVIT_SELECT, DT_I32, SH(B, c6), INS(ca));
    ev->at.keep = 3;

    /* a state (ir/entry.c) read and updated by a scatter of two rows */
    ir_add_state(g, "kv", DT_F32, SH(c4, c8));
    Node *st = mk(g, OP_STATE, DT_F32, SH(c4, c8), 0, NULL);
    st->name = "kv";
    int32_t rows[2] = {3, 0};
    Node *ri = cnst(g, DT_I32, SH(c2), rows, sizeof rows);
    Node *rv = input(g, "rows", DT_F32, SH(c2, c8));
    Node *sc = mk(g, OP_SCATTER, DT_F32, SH(c4, c8), INS(st, ri, rv));
    sc->at.axis = 0;

    /* quantization: x to i8 per column and back; a product with 4-bit weights in groups of 5 along
     * K = 8 (the last group short) with a zero point, and a dynamic W8A8 one */
    float qs[8] = {0.5f, 0.25f, 0, 1e-3f, 2, 0.125f, 3, 0.01f};
    Node *qsc = cnst(g, DT_F32, SH(c1, c8), qs, sizeof qs);
    Node *xq = mk(g, OP_QUANTIZE, DT_I8, SH(T, c8), INS(x, qsc));
    mk(g, OP_DEQUANTIZE, DT_F32, SH(T, c8), INS(xq, qsc));
    Node *x4 = mk(g, OP_QUANTIZE, DT_I4, SH(T, c8), INS(x, cnst(g, DT_F32, SH(c1, c2), qs, 8)));
    x4->at.axis = 1;
    x4->at.group = 5; /* 8 columns in groups of 5: two scales */
    uint8_t w4[16], z4[4];
    for (int i = 0; i < 32; i++)
        dtype_store(DT_U4, w4, (size_t)i, (i * 7) % 16);
    for (int i = 0; i < 8; i++)
        dtype_store(DT_U4, z4, (size_t)i, 8 - i);
    float s4[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    Node *qw = cnst(g, DT_U4, SH(c8, c4), w4, sizeof w4);
    Node *qm = mk(g, OP_QMATMUL, DT_F32, SH(T, c4),
                  INS(x, qw, cnst(g, DT_F32, SH(c2, c4), s4, sizeof s4), cnst(g, DT_U4, SH(c2, c4), z4, 4)));
    qm->at.group = 5;
    int8_t w8[32];
    for (int i = 0; i < 32; i++)
        w8[i] = (int8_t)(i * 37 - 128);
    Node *qd = mk(g, OP_QMATMUL, DT_F32, SH(T, c4), INS(x, cnst(g, DT_I8, SH(c8, c4), w8, sizeof w8),
                                                       cnst(g, DT_F32, SH(c1, c4), s4, 16)));
    qd->at.dynamic = 1;
    ir_add_output(g, "q4", qm);

    ir_add_output(g, "logits", logits);
    ir_add_output(g, "y.2", cat1);
    ir_add_output(g, "conv", conv);
    ir_add_update(g, "kv", sc);
    return g;
}

/* ---- running the printer, parser and verifier into strings */

static char *print_graph(const Graph *g)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ir_print(f, g);
    fclose(f);
    return buf;
}

/* Runs ir_verify with its diagnostics in *msgs (malloc'ed); returns the count. */
static int verify_msgs(const Graph *g, char **msgs)
{
    size_t n = 0;
    FILE *f = open_memstream(msgs, &n);
    Diag *d = diag_new(f);
    int k = ir_verify(g, d);
    diag_free(d);
    fclose(f);
    return k;
}

static Graph *parse_msgs(const char *text, const char *override, char **msgs)
{
    size_t n = 0;
    FILE *f = open_memstream(msgs, &n);
    Diag *d = diag_new(f);
    Graph *g = ir_parse("t.kir", text, override, d);
    diag_free(d);
    fclose(f);
    return g;
}

static int contains_all(const char *msg, const char *const *words)
{
    for (; *words; words++)
        if (!strstr(msg, *words))
            return 0;
    return 1;
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_verify_error(const char *what, Graph *g, const char *const *words)
{
    char *msgs = NULL;
    int k = verify_msgs(g, &msgs);
    CHECK(k > 0, "%s: the verifier found no problem", what);
    CHECK(contains_all(msgs, words), "%s: unexpected message:\n%s", what, msgs);
    free(msgs);
    ir_graph_free(g);
}

static void expect_parse_error(const char *what, const char *text, const char *const *words)
{
    char *msgs = NULL;
    Graph *g = parse_msgs(text, NULL, &msgs);
    CHECK(!g, "%s: the parser accepted:\n%s", what, text);
    CHECK(contains_all(msgs, words), "%s: unexpected message:\n%s", what, msgs);
    if (g) {
        if (g->weights)
            st_close(g->weights);
        ir_graph_free(g);
    }
    free(msgs);
}

/* ---- 1. the round trip */

static void test_round_trip(void)
{
    Graph *g = build_full();
    int seen[OP_COUNT] = {0};
    for (int i = 0; i < g->nnode; i++)
        seen[g->nodes[i]->op] = 1;
    for (int op = 0; op < OP_COUNT; op++)
        CHECK(seen[op], "no %s node in the round-trip graph: add one to build_full", op_info[op].name);
    /* every dtype and every attribute too, so each prints and parses back */
    int seen_dt[DT_COUNT] = {0}, seen_attr[AI_COUNT] = {0};
    for (int i = 0; i < g->nnode; i++) {
        seen_dt[g->nodes[i]->dtype] = 1;
        for (int a = 0; a < AI_COUNT; a++)
            if (op_info[g->nodes[i]->op].attrs & (1 << a))
                seen_attr[a] = 1;
    }
    for (int t = 0; t < DT_COUNT; t++)
        CHECK(seen_dt[t], "no %s node in the round-trip graph: add one to build_full", dtype_traits[t].name);
    for (int a = 0; a < AI_COUNT; a++)
        CHECK(seen_attr[a], "no node with attribute %s in the round-trip graph: add one to build_full",
              attr_info[a].name);

    char *msgs = NULL;
    int k = verify_msgs(g, &msgs);
    CHECK(k == 0, "the built graph has %d problems:\n%s", k, msgs);
    free(msgs);

    char *t1 = print_graph(g);
    Graph *g2 = parse_msgs(t1, NULL, &msgs);
    CHECK(g2, "the printed graph does not parse back:\n%s\n%s", msgs, t1);
    free(msgs);
    if (g2) {
        char *t2 = print_graph(g2);
        CHECK(!strcmp(t1, t2), "print(parse(print(g))) differs from print(g):\n--- first\n%s--- second\n%s", t1, t2);
        k = verify_msgs(g2, &msgs);
        CHECK(k == 0, "the parsed graph has %d problems:\n%s", k, msgs);
        free(msgs);
        CHECK(g2->weights != NULL, "the parsed graph has no weights");
        CHECK(g2->nnode == g->nnode && g2->ninput == g->ninput && g2->noutput == g->noutput,
              "node, input or output counts differ");
        /* weights resolved to the file's data; const data kept bit for bit */
        for (int i = 0; i < g2->nnode && i < g->nnode; i++) {
            const Node *a = g->nodes[i], *b = g2->nodes[i];
            CHECK(a->op == b->op && a->dtype == b->dtype && a->rank == b->rank, "node %d differs", i);
            CHECK(a->layer == b->layer && (a->scope ? b->scope && !strcmp(a->scope, b->scope) : !b->scope),
                  "node %d: layer or scope differs", i);
            if (b->op == OP_WEIGHT)
                CHECK(b->at.data && !memcmp(a->at.data, b->at.data, sizeof(float) * (size_t)(dim_value(b->shape[0]) *
                      (b->rank > 1 ? dim_value(b->shape[1]) : 1))), "weight %s has the wrong data", b->name);
            if (b->op == OP_CONST) {
                int64_t numel = 1;
                for (int j = 0; j < b->rank; j++)
                    numel *= dim_value(b->shape[j]);
                size_t sz = (size_t)dtype_traits[b->dtype].size;
                int same = 1;
                for (int64_t j = 0; j < numel; j++) {
                    /* NaN payloads are not kept (the text says "nan"); every other value is */
                    int nan = isnan(dtype_load(a->dtype, a->at.data, (size_t)j)) &&
                              isnan(dtype_load(b->dtype, b->at.data, (size_t)j));
                    if (!nan && memcmp((const char *)a->at.data + (size_t)j * sz,
                                       (const char *)b->at.data + (size_t)j * sz, sz))
                        same = 0;
                }
                CHECK(same, "const %%%d lost bits in the round trip", i);
            }
        }
        int in64 = 0;
        for (int i = 0; i < g2->nnode; i++)
            if (g2->nodes[i]->op == OP_CONST && g2->nodes[i]->dtype == DT_I64)
                in64 = ((const int64_t *)g2->nodes[i]->at.data)[2] == 9007199254740993LL;
        CHECK(in64, "i64 const data lost precision");
        free(t2);
        st_close(g2->weights);
        ir_graph_free(g2);
    }
    /* spot checks of the form golden tests rely on */
    CHECK(strstr(t1, "model \"irtext-test\"\n"), "model line:\n%s", t1);
    CHECK(strstr(t1, "sym T <= 16\nsym B <= 4\n"), "sym lines:\n%s", t1);
    CHECK(strstr(t1, "%0 = input \"tokens\" : i32[T]\n"), "input line:\n%s", t1);
    CHECK(strstr(t1, "%6 = gather(%3, %0) {axis=0} : f32[T, 8]   @12:5\n"), "gather line:\n%s", t1);
    CHECK(strstr(t1, "%7 = const {data=[0.125]} : f32[]\n"), "scalar const:\n%s", t1);
    CHECK(strstr(t1, "{data=[0.1, -2.5, 1e-08, 3.4e+38, -0, inf, -inf, nan]} : f32[8]"), "f32 data:\n%s", t1);
    CHECK(strstr(t1, "{data=[-9223372036854775808, 9223372036854775807, 9007199254740993]} : i64[3]"), "i64:\n%s", t1);
    CHECK(strstr(t1, "{data=[true, false]} : bool[2]"), "bool:\n%s", t1);
    CHECK(strstr(t1, "{data=[0.1, 65504, -6e-08, 0.3333]} : f16[4]"), "f16:\n%s", t1);
    CHECK(strstr(t1, "{perm=[1, 0, 2]} : f32[2, T, 4]"), "perm:\n%s", t1);
    CHECK(strstr(t1, "{axis=0, start=1, end=T} : f32[T-1, 8]"), "slice:\n%s", t1);
    CHECK(strstr(t1, ": f32[2*T, 8]") && strstr(t1, ": f32[T+1, 8]"), "symbolic dims:\n%s", t1);
    CHECK(strstr(t1, "{eps=1e-05} : f32[T, 8]   @40:9"), "eps:\n%s", t1);
    CHECK(strstr(t1, "{stride=[2, 2], pad=[1, 1]} : f32[B, 3, 3, 3]"), "conv:\n%s", t1);
    CHECK(strstr(t1, "{axis=1, keepdims=true} : f32[T, 1]"), "keepdims:\n%s", t1);
    CHECK(strstr(t1, "{approx=tanh}"), "approx:\n%s", t1);
    CHECK(strstr(t1, " = sin(%6) : f32[T, 8]   @7:3 layer=3 scope=\"h.3.attn \\\"q\\\"\"\n") &&
              strstr(t1, " = cos(%6) : f32[T, 8] layer=3 scope=\"h.3.attn \\\"q\\\"\"\n"),
          "layer and scope:\n%s", t1);
    CHECK(strstr(t1, "input \"we\\\"ird\\\\name\\t\\x01\""), "escapes:\n%s", t1);
    CHECK(strstr(t1, "output logits = %") && strstr(t1, "output \"y.2\" = %"), "outputs:\n%s", t1);
    CHECK(strstr(t1, " = arange : i64[T]\n") && strstr(t1, " = causal_mask : f32[T, T]\n"), "sources:\n%s", t1);
    free(t1);
    ir_graph_free(g);
}

/* Layers and scopes: what ir_node stamps, and the helpers passes use to find a layer's nodes. */
static void test_layers(void)
{
    Graph *g = ir_graph_new();
    Node *x = input(g, "x", DT_F32, SH(dim_const(4)));
    Node o = {0};
    o.layer = 1;
    o.scope = "h.1.attn";
    ir_set_origin(g, &o);
    Node *a = mk(g, OP_EXP, DT_F32, SH(dim_const(4)), INS(x));
    Node *b = mk(g, OP_NEG, DT_F32, SH(dim_const(4)), INS(a));
    ir_set_origin(g, NULL);
    Node *c = mk(g, OP_NEG, DT_F32, SH(dim_const(4)), INS(b));
    CHECK(x->layer == -1 && !x->scope && c->layer == -1 && !c->scope, "nodes outside any origin have none");
    CHECK(ir_layer_of(a) == 1 && ir_layer_of(b) == 1 && !strcmp(b->scope, "h.1.attn"), "origin stamped");
    CHECK(ir_layer_count(g) == 2, "layer count %d", ir_layer_count(g));
    int k;
    Node **ns = ir_layer_nodes(g, 1, &k);
    CHECK(k == 2 && ns[0] == a && ns[1] == b, "layer 1 has a and b in graph order");
    free(ns);
    CHECK(!ir_layer_nodes(g, 0, &k) && k == 0, "layer 0 is empty");
    CHECK(ir_in_scope(a, "h.1") && ir_in_scope(a, "h.1.attn") && !ir_in_scope(a, "h.1.at") &&
              !ir_in_scope(a, "h.10") && !ir_in_scope(c, "h"), "ir_in_scope");
    ir_graph_free(g);
}

/* Hand-written text: comments, ids that are not positions, locations in the source file. */
static void test_hand_written(void)
{
    char text[1024];
    snprintf(text, sizeof text,
             "# RUN: kiln verify %%s\n"
             "model m   # trailing comment\n"
             "source \"m.kiln\"\n"
             "weights \"%s\"\n"
             "\n"
             "sym T <= 10\n"
             "%%10 = input \"tokens\" : i32[T]\n"
             "%%20 = weight \"wte\" : f32[10, 8]\n"
             "%%30 = gather(%%20, %%10) {axis=0} : f32[T, 8]\n"
             "%%31 = const {data=[1, 2, 3, 4, 5, 6, 7, 9]} : f32[8]\n"
             "%%32 = add(%%30, %%31) : f32[T, 9]   @3:7\n"
             "output y = %%32\n",
             wpath);
    /* one Diag for both, as the driver does, so the verifier can name the source file */
    char *msgs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&msgs, &len);
    Diag *d = diag_new(f);
    Graph *g = ir_parse("t.kir", text, NULL, d);
    int k = g ? ir_verify(g, d) : -1;
    diag_free(d);
    fclose(f);
    CHECK(g, "hand-written text does not parse:\n%s", msgs);
    if (!g) {
        free(msgs);
        return;
    }
    CHECK(g->nnode == 5 && g->nodes[4]->in[0] == g->nodes[2], "ids were not mapped to nodes");
    CHECK(k == 1, "expected one problem, got %d:\n%s", k, msgs);
    CHECK(strstr(msgs, "m.kiln:3:7: error: verifier: %4 = add: its inputs (f32[T, 8], f32[8]) give f32[T, 8] "
                       "but the node is f32[T, 9]"), "verifier message:\n%s", msgs);
    free(msgs);
    char *t = print_graph(g);
    CHECK(strstr(t, "%2 = gather(%1, %0) {axis=0} : f32[T, 8]\n"), "renumbered:\n%s", t);
    free(t);
    st_close(g->weights);
    ir_graph_free(g);

    /* a node without `@`: the verifier points at its line in the text, quoted */
    f = open_memstream(&msgs, &len);
    d = diag_new(f);
    g = ir_parse("t.kir", "model m\n%0 = input \"x\" : f32[4]\n%1 = exp(%0) : f32[5]\noutput y = %1\n", NULL, d);
    k = g ? ir_verify(g, d) : -1;
    diag_free(d);
    fclose(f);
    CHECK(k == 1 && strstr(msgs, "t.kir:3:1: error: verifier: %1 = exp: its inputs (f32[4]) give f32[4] but the "
                                 "node is f32[5]") && strstr(msgs, "    3 | %1 = exp(%0) : f32[5]"),
          "verifier message for a node without @:\n%s", msgs);
    free(msgs);
    if (g)
        ir_graph_free(g);

    /* weights_override replaces the path of the text */
    g = parse_msgs("model m\nweights \"/nonexistent.safetensors\"\n%0 = weight \"wte\" : f32[10, 8]\noutput w = %0\n",
                   wpath, &msgs);
    CHECK(g && g->weights && !strcmp(g->weights_path, wpath), "weights_override not used:\n%s", msgs);
    free(msgs);
    if (g) {
        st_close(g->weights);
        ir_graph_free(g);
    }
}

/* ---- 2. broken graphs */

static Graph *small(Node **x)
{
    Graph *g = ir_graph_new();
    int ts = ir_sym(g, "T", 16);
    *x = input(g, "x", DT_F32, SH(dim_sym(ts), dim_const(8)));
    return g;
}

static void test_broken_graphs(void)
{
    Node *x;
    Graph *g;
    Dim T = dim_sym(0), c8 = dim_const(8);

    g = small(&x);
    Node *a = input(g, "a", DT_F32, SH(T, dim_const(64))), *b = input(g, "b", DT_F32, SH(T, dim_const(65)));
    mk(g, OP_ADD, DT_F32, SH(T, dim_const(64)), INS(a, b));
    expect_verify_error("bad broadcast", g,
                        WORDS("verifier: %3 = add: shapes do not broadcast in '+': f32[T, 64] and f32[T, 65]"));

    g = small(&x);
    Node *t = mk(g, OP_TRANSPOSE, DT_F32, SH(T, c8), INS(x));
    t->at.perm[0] = t->at.perm[1] = 0;
    expect_verify_error("bad perm", g, WORDS("transpose", "not a permutation of 0..1 for f32[T, 8]"));

    g = small(&x);
    mk(g, OP_ADD, DT_F32, SH(T, c8), INS(x));
    expect_verify_error("wrong arity", g, WORDS("add", "takes 2 inputs, not 1"));

    g = small(&x);
    mk(g, OP_RESHAPE, DT_F32, SH(T, dim_const(9)), INS(x));
    expect_verify_error("reshape numel", g, WORDS("reshape", "f32[T, 8]", "f32[T, 9]", "element counts differ"));

    g = small(&x);
    Node *w = input(g, "w", DT_F32, SH(dim_const(9), dim_const(4)));
    mk(g, OP_MATMUL, DT_F32, SH(T, dim_const(4)), INS(x, w));
    expect_verify_error("matmul inner dims", g, WORDS("matmul", "inner dimensions differ", "f32[T, 8] @ f32[9, 4]"));

    g = small(&x);
    float z[80] = {0};
    Node *tab = cnst(g, DT_F32, SH(dim_const(10), c8), z, sizeof z);
    Node *s = mk(g, OP_SLICE, DT_F32, SH(T, c8), INS(tab));
    s->at.end = T;
    expect_verify_error("slice out of range", g, WORDS("slice", "end T can reach 16", "f32[10, 8] has size 10"));

    /* the same slice is fine when T's bound is within the table: wpe[0:T] with T <= 10 */
    g = small(&x);
    g->syms[0].bound = 10;
    tab = cnst(g, DT_F32, SH(dim_const(10), c8), z, sizeof z);
    s = mk(g, OP_SLICE, DT_F32, SH(T, c8), INS(tab));
    s->at.end = T;
    char *msgs = NULL;
    CHECK(verify_msgs(g, &msgs) == 0, "slice [0:T] of 10 rows with T <= 10 rejected:\n%s", msgs);
    free(msgs);
    ir_graph_free(g);

    g = small(&x);
    Node *n1 = mk(g, OP_NEG, DT_F32, SH(T, c8), INS(x)), *n2 = mk(g, OP_EXP, DT_F32, SH(T, c8), INS(n1));
    g->nodes[1] = n2; /* swap: exp now comes before the neg it reads */
    g->nodes[2] = n1;
    n2->id = 1;
    n1->id = 2;
    expect_verify_error("topological order", g, WORDS("%1 = exp", "topological order"));

    g = small(&x);
    mk(g, OP_GATHER, DT_F32, SH(T, c8), INS(x, x));
    expect_verify_error("float indices", g, WORDS("gather", "input 1", "needs an integer tensor of indices"));

    g = small(&x);
    mk(g, OP_LT, DT_F32, SH(T, c8), INS(x, x));
    expect_verify_error("comparison dtype", g, WORDS("lt", "give bool[T, 8] but the node is f32[T, 8]"));

    g = small(&x);
    Node *r = mk(g, OP_SUM, DT_F32, SH(T, c8), INS(x));
    r->at.axis = 1;
    expect_verify_error("reduction shape", g, WORDS("sum", "give f32[T] but the node is f32[T, 8]"));

    g = small(&x);
    Node *gam = input(g, "gamma", DT_F32, SH(dim_const(7)));
    mk(g, OP_RMSNORM, DT_F32, SH(T, c8), INS(x, gam));
    expect_verify_error("norm gamma", g, WORDS("rmsnorm", "weight", "last dimension of f32[T, 8], got f32[7]"));

    g = small(&x);
    Dim T1;
    dim_add(T, dim_const(1), &T1);
    mk(g, OP_CONCAT, DT_F32, SH(T1, c8), INS(x, x));
    expect_verify_error("concat sum", g, WORDS("concat", "give f32[2*T, 8] but the node is f32[T+1, 8]"));

    g = small(&x);
    Node *img = input(g, "img", DT_F32, SH(dim_const(2), dim_const(6), dim_const(6)));
    Node *cw = input(g, "cw", DT_F32, SH(dim_const(3), dim_const(2), dim_const(3), dim_const(3)));
    Node *cv = mk(g, OP_CONV2D, DT_F32, SH(dim_const(3), dim_const(6), dim_const(4)), INS(img, cw));
    cv->at.stride[0] = cv->at.stride[1] = 1;
    expect_verify_error("conv shape", g, WORDS("conv2d", "give f32[3, 4, 4] but the node is f32[3, 6, 4]"));

    g = small(&x);
    mk(g, OP_CONST, DT_F32, SH(T), 0, NULL);
    expect_verify_error("const without data", g, WORDS("const", "no data", "static shape"));

    g = small(&x);
    ir_add_output(g, "y", x);
    ir_add_output(g, "y", x);
    expect_verify_error("output names", g, WORDS("two outputs are named \"y\""));
}

/* ---- 3. broken texts */

static void test_broken_texts(void)
{
    char buf[1024];
    expect_parse_error("undefined id", "sym T <= 4\n%0 = input \"x\" : f32[T]\n%1 = neg(%5) : f32[T]\n",
                       WORDS("t.kir:3:10: error: undefined node %5"));
    expect_parse_error("later id", "%0 = input \"x\" : f32[2]\n%1 = neg(%2) : f32[2]\n%2 = neg(%0) : f32[2]\n",
                       WORDS("t.kir:2:", "%2 is used before its definition", "topological"));
    expect_parse_error("duplicate id", "%0 = input \"x\" : f32[2]\n%0 = neg(%0) : f32[2]\n",
                       WORDS("t.kir:2:1:", "%0 is defined twice (first on line 1)"));
    expect_parse_error("wrong arity", "%0 = input \"x\" : f32[2]\n%1 = add(%0) : f32[2]\n",
                       WORDS("t.kir:2:6:", "add takes 2 inputs, got 1"));
    expect_parse_error("unknown op", "%0 = input \"x\" : f32[2]\n%1 = frobnicate(%0) : f32[2]\n",
                       WORDS("unknown op 'frobnicate'"));
    expect_parse_error("unknown attr", "%0 = input \"x\" : f32[2]\n%1 = relu(%0) {axis=0} : f32[2]\n",
                       WORDS("t.kir:2:16:", "unknown attribute 'axis' for relu"));
    expect_parse_error("made-up attr", "%0 = input \"x\" : f32[2]\n%1 = sum(%0) {axis=0, color=1} : f32[]\n",
                       WORDS("unknown attribute 'color'"));
    expect_parse_error("missing attr", "%0 = input \"x\" : f32[2]\n%1 = sum(%0) {axis=0} : f32[]\n",
                       WORDS("sum needs the attribute 'keepdims'"));
    expect_parse_error("unknown symbol", "sym T <= 4\n%0 = input \"x\" : f32[S, 2]\n",
                       WORDS("t.kir:2:22:", "unknown symbol 'S'"));
    expect_parse_error("unknown dtype", "%0 = input \"x\" : f33[2]\n", WORDS("unknown dtype 'f33'"));
    expect_parse_error("const count", "%0 = const {data=[1, 2, 3]} : f32[2, 2]\n",
                       WORDS("data has 3 values but the shape has 4 elements"));
    expect_parse_error("const range", "%0 = const {data=[1, 300]} : u8[2]\n", WORDS("value 300 does not fit in u8"));
    expect_parse_error("perm length", "%0 = input \"x\" : f32[2, 3]\n%1 = transpose(%0) {perm=[1, 0, 2]} : f32[3, 2]\n",
                       WORDS("perm has 3 entries but the node has rank 2"));
    expect_parse_error("no weights line", "%0 = weight \"wte\" : f32[10, 8]\n",
                       WORDS("t.kir:1:1:", "no `weights \"FILE\"` line"));
    expect_parse_error("bad token", "%0 = input \"x\" : f32[2] ; \n", WORDS("unexpected character ';'"));
    expect_parse_error("product of symbols", "sym T <= 4\nsym S <= 4\n%0 = input \"x\" : f32[2*T*S]\n",
                       WORDS("t.kir:3:22:", "cannot multiply two of them"));
    expect_parse_error("five symbols",
                       "sym A <= 4\nsym B <= 4\nsym C <= 4\nsym D <= 4\nsym E <= 4\n%0 = input \"x\" : f32[A+B+C+D+E]\n",
                       WORDS("t.kir:6:22:", "at most 4 symbols"));

    snprintf(buf, sizeof buf, "weights \"%s\"\n%%0 = weight \"wtf\" : f32[10, 8]\n", wpath);
    expect_parse_error("weight missing", buf, WORDS("t.kir:2:1:", "weight \"wtf\" is not in", "closest: \"wte\""));
    snprintf(buf, sizeof buf, "weights \"%s\"\n%%0 = weight \"wte\" : f32[10, 9]\n", wpath);
    expect_parse_error("weight shape", buf, WORDS("weight \"wte\" is declared f32[10, 9] but is f32[10, 8]"));
    snprintf(buf, sizeof buf, "weights \"%s\"\n%%0 = weight \"wte\" : f16[10, 8]\n", wpath);
    expect_parse_error("weight dtype", buf, WORDS("declared f16[10, 8] but is f32[10, 8]"));

    /* several errors in one text are all reported, and a failed line does not cascade */
    char *msgs = NULL;
    Graph *g = parse_msgs("%0 = input \"x\" : f32[2]\n%1 = bogus(%0) : f32[2]\n%2 = neg(%1) : f32[2]\n"
                          "%3 = relu(%0, %0) : f32[2]\n",
                          NULL, &msgs);
    CHECK(!g, "accepted a broken text");
    CHECK(strstr(msgs, "unknown op 'bogus'") && strstr(msgs, "relu takes 1 input, got 2") &&
              !strstr(msgs, "undefined") && !strstr(msgs, "before its definition"),
          "errors not collected, or cascading:\n%s", msgs);
    free(msgs);
}

int main(void)
{
    write_weights();
    test_round_trip();
    test_layers();
    test_hand_written();
    test_broken_graphs();
    test_broken_texts();
    unlink(wpath);
    if (failures) {
        fprintf(stderr, "test_irtext: %d failures\n", failures);
        return 1;
    }
    printf("test_irtext: ok\n");
    return 0;
}
