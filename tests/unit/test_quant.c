/* test_quant.c: the quantization arithmetic of ir/quant.c, the packed 4-bit dtypes, and the
 * interpreter's and verifier's rules for quantize, dequantize and qmatmul where the PyTorch cases of
 * test_interp.c cannot reach (NumPy has no 4-bit type).
 *
 * Every expected value here is worked out by hand or by a plain loop over ir_quantize1 and
 * ir_dequantize1, whose own values are checked first against hand-computed numbers.
 */
#include "ir/ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

#define SH(...) (int)(sizeof((Dim[]){__VA_ARGS__}) / sizeof(Dim)), (Dim[]){__VA_ARGS__}
#define INS(...) (int)(sizeof((Node *[]){__VA_ARGS__}) / sizeof(Node *)), (Node *[]){__VA_ARGS__}
static const SrcLoc NOLOC = {0, 0, 0};

static Node *mk(Graph *g, Op op, DType dt, int rank, const Dim *shape, int nin, Node *const *in)
{
    return ir_node(g, op, dt, rank, shape, nin, in, NOLOC);
}

static Node *cnst(Graph *g, DType dt, int rank, const Dim *shape, const void *data, size_t bytes)
{
    Node *n = mk(g, OP_CONST, dt, rank, shape, 0, NULL);
    void *p = arena_alloc(g->arena, bytes);
    memcpy(p, data, bytes);
    n->at.data = p;
    return n;
}

static Node *input(Graph *g, const char *name, DType dt, int rank, const Dim *shape)
{
    Node *n = mk(g, OP_INPUT, dt, rank, shape, 0, NULL);
    n->name = name;
    return n;
}

/* The number of verifier problems, their text in *msgs (malloc'ed). */
static int verify(const Graph *g, char **msgs)
{
    size_t n = 0;
    FILE *f = open_memstream(msgs, &n);
    Diag *d = diag_new(f);
    int k = ir_verify(g, d);
    diag_free(d);
    fclose(f);
    return k;
}

static void test_rounding(void)
{
    /* half to even, from the float division */
    CHECK(ir_quantize1(1.25f, 0.5f, 0, -128, 127) == 2, "2.5 rounds to 2");
    CHECK(ir_quantize1(1.75f, 0.5f, 0, -128, 127) == 4, "3.5 rounds to 4");
    CHECK(ir_quantize1(-1.25f, 0.5f, 0, -128, 127) == -2, "-2.5 rounds to -2");
    CHECK(ir_quantize1(-0.25f, 0.5f, 0, -128, 127) == 0, "-0.5 rounds to 0");
    CHECK(ir_quantize1(0.76f, 0.5f, 0, -128, 127) == 2, "1.52 rounds to 2");
    /* the zero point is added after rounding, then the result saturates */
    CHECK(ir_quantize1(1.25f, 0.5f, 10, 0, 255) == 12, "2 + 10");
    CHECK(ir_quantize1(1000, 1, 0, -128, 127) == 127, "saturates high");
    CHECK(ir_quantize1(-1000, 1, 0, -128, 127) == -128, "saturates low");
    CHECK(ir_quantize1(INFINITY, 1, 0, -8, 7) == 7, "inf saturates");
    CHECK(ir_quantize1(-INFINITY, 1, 3, 0, 15) == 0, "-inf saturates");
    CHECK(ir_quantize1(20, 1, 0, -8, 7) == 7 && ir_quantize1(-20, 1, 0, -8, 7) == -8, "i4 range");
    /* a zero scale and NaN give the zero point */
    CHECK(ir_quantize1(5, 0, 3, 0, 15) == 3, "zero scale");
    CHECK(ir_quantize1(NAN, 1, 4, 0, 15) == 4, "NaN");
    CHECK(ir_dequantize1(12, 0.5f, 10) == 1.0f, "(12 - 10) * 0.5");
    int lo, hi;
    CHECK(ir_quant_range(DT_U4, &lo, &hi) && lo == 0 && hi == 15, "u4 range");
    CHECK(!ir_quant_range(DT_F32, &lo, &hi), "f32 is not quantized");
}

static void test_packed(void)
{
    CHECK(dtype_traits[DT_I4].block == 2 && dtype_traits[DT_I4].size == 1, "i4: two per byte");
    CHECK(dtype_bytes(DT_I4, 5) == 3 && dtype_bytes(DT_U4, 4) == 2 && dtype_bytes(DT_F32, 3) == 12, "bytes");
    CHECK(dtype_from_name("i4") == DT_I4 && dtype_from_name("u4") == DT_U4, "names");
    uint8_t b[3] = {0, 0, 0xAA};
    int vals[5] = {-8, 7, -1, 0, 3};
    for (int i = 0; i < 5; i++)
        dtype_store(DT_I4, b, (size_t)i, vals[i]);
    CHECK(b[0] == 0x78 && b[1] == 0x0F, "element 0 in the low nibble: %02x %02x", b[0], b[1]);
    CHECK(b[2] == 0xA3, "the other nibble of the last byte is kept: %02x", b[2]);
    for (int i = 0; i < 5; i++)
        CHECK(dtype_load(DT_I4, b, (size_t)i) == vals[i], "i4 element %d", i);
    CHECK(dtype_load(DT_U4, b, 0) == 8 && dtype_load(DT_U4, b, 2) == 15, "u4 reads the same nibbles");
    CHECK(dtype_round(DT_I4, 9) == -7 && dtype_round(DT_U4, 17) == 1, "integers wrap like the others");
}

static void test_scales(void)
{
    /* w[5, 2], groups of 2 along K: 3 groups, the last holding one row */
    float w[10] = {1, -4, -3, 2, 0.5f, 0, 6, 0, -2, 1};
    float s[6], z[6];
    ir_quant_scales(w, 5, 2, 2, DT_I4, s, NULL);
    float want[6] = {3.0f / 7, 4.0f / 7, 6.0f / 7, 0, 2.0f / 7, 1.0f / 7};
    for (int i = 0; i < 6; i++)
        CHECK(s[i] == want[i], "i4 scale %d: %g, not %g", i, s[i], want[i]);
    ir_quant_scales(w, 5, 2, 0, DT_U8, s, z);
    /* column 0: min -3, max 6: s = 9/255, z = rint(3 / s) = 85 */
    CHECK(s[0] == 9.0f / 255 && z[0] == 85, "u8 column 0: %g %g", s[0], z[0]);
    CHECK(s[1] == 6.0f / 255 && z[1] == 170, "u8 column 1: %g %g", s[1], z[1]);
}

/* qmatmul with i4 weights in groups of 3 along K = 7 and a u4 product with a zero point, against
 * loops over ir_dequantize1; quantize to i4 through the interpreter's output. */
static void test_interp_4bit(void)
{
    enum { M = 3, K = 7, N = 5, G = 3, NG = 3 };
    Graph *g = ir_graph_new();
    Dim cM = dim_const(M), cK = dim_const(K), cN = dim_const(N), cG = dim_const(NG), c1 = dim_const(1);
    float a[M * K], s[NG * N];
    int8_t wq[K * N];
    uint8_t w4[(K * N + 1) / 2] = {0}, u4[(K * N + 1) / 2] = {0}, z4[(NG * N + 1) / 2] = {0};
    for (int i = 0; i < M * K; i++)
        a[i] = (float)((i * 37) % 19) * 0.25f - 2;
    for (int i = 0; i < K * N; i++) {
        wq[i] = (int8_t)((i * 11) % 16 - 8);
        dtype_store(DT_I4, w4, (size_t)i, wq[i]);
        dtype_store(DT_U4, u4, (size_t)i, wq[i] + 8);
    }
    for (int i = 0; i < NG * N; i++) {
        s[i] = i % 4 == 0 ? 0 : (float)(i + 1) * 0.03f; /* some zero scales */
        dtype_store(DT_U4, z4, (size_t)i, 8 + i % 3);
    }
    Node *x = input(g, "a", DT_F32, SH(cM, cK));
    Node *sc = cnst(g, DT_F32, SH(cG, cN), s, sizeof s);
    Node *q1 = mk(g, OP_QMATMUL, DT_F32, SH(cM, cN), INS(x, cnst(g, DT_I4, SH(cK, cN), w4, sizeof w4), sc));
    q1->at.group = G;
    Node *q2 = mk(g, OP_QMATMUL, DT_F32, SH(cM, cN),
                  INS(x, cnst(g, DT_U4, SH(cK, cN), u4, sizeof u4), sc, cnst(g, DT_U4, SH(cG, cN), z4, sizeof z4)));
    q2->at.group = G;
    float qsv = 0.5f;
    Node *qa = mk(g, OP_QUANTIZE, DT_I4, SH(cM, cK), INS(x, cnst(g, DT_F32, SH(c1, c1), &qsv, 4)));
    qa->at.axis = 0;
    ir_add_output(g, "y1", q1);
    ir_add_output(g, "y2", q2);
    ir_add_output(g, "qa", qa);
    char *msgs = NULL;
    int k = verify(g, &msgs);
    CHECK(k == 0, "the graph has problems:\n%s", msgs);
    free(msgs);

    HostTensor in = {.dtype = DT_F32, .rank = 2, .shape = {M, K}, .data = a}, out[3];
    Diag *d = diag_new(stderr);
    int rc = ir_interp(g, &in, out, d);
    diag_free(d);
    CHECK(rc == 0, "ir_interp failed");
    if (rc == 0) {
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double e1 = 0, e2 = 0;
                for (int kk = 0; kk < K; kk++) {
                    float sv = s[kk / G * N + n];
                    float zv = (float)dtype_load(DT_U4, z4, (size_t)(kk / G * N + n));
                    e1 += (double)a[m * K + kk] * ir_dequantize1((float)wq[kk * N + n], sv, 0);
                    e2 += (double)a[m * K + kk] * ir_dequantize1((float)(wq[kk * N + n] + 8), sv, zv);
                }
                float g1 = ((float *)out[0].data)[m * N + n], g2 = ((float *)out[1].data)[m * N + n];
                CHECK(g1 == (float)e1, "i4 qmatmul [%d, %d]: %g, not %g", m, n, g1, (float)e1);
                CHECK(g2 == (float)e2, "u4 qmatmul [%d, %d]: %g, not %g", m, n, g2, (float)e2);
            }
        CHECK(out[2].dtype == DT_I4, "quantize gives i4");
        for (int i = 0; i < M * K; i++)
            CHECK(dtype_load(DT_I4, out[2].data, (size_t)i) == ir_quantize1(a[i], 0.5f, 0, -8, 7),
                  "quantize element %d", i);
        for (int i = 0; i < 3; i++)
            free(out[i].data);
    }
    ir_graph_free(g);
}

/* bf16 weights: a is rounded to bf16 to nearest even before the products. 1 + 1/256 is a tie between
 * bf16's 1 and 1 + 2/256 (to 1, the even one), 1 + 3/256 a tie between 1 + 2/256 and 1 + 4/256 (to
 * the even 1 + 4/256): y = 1 * 1 + (1 + 4/256) * 2 = 3.03125 (3.02734375 unrounded). */
static void test_interp_bf16(void)
{
    Graph *g = ir_graph_new();
    Dim c1 = dim_const(1), c2 = dim_const(2);
    float a[2] = {1 + 1.0f / 256, 1 + 3.0f / 256};
    uint16_t w[2] = {0x3f80, 0x4000}; /* 1, 2 */
    Node *x = input(g, "a", DT_F32, SH(c1, c2));
    Node *q = mk(g, OP_QMATMUL, DT_F32, SH(c1, c1), INS(x, cnst(g, DT_BF16, SH(c2, c1), w, sizeof w)));
    ir_add_output(g, "y", q);
    char *msgs = NULL;
    int k = verify(g, &msgs);
    CHECK(k == 0, "the graph has problems:\n%s", msgs);
    free(msgs);
    HostTensor in = {.dtype = DT_F32, .rank = 2, .shape = {1, 2}, .data = a}, out[1];
    Diag *d = diag_new(stderr);
    int rc = ir_interp(g, &in, out, d);
    diag_free(d);
    CHECK(rc == 0, "ir_interp failed");
    if (rc == 0) {
        CHECK(((float *)out[0].data)[0] == 3.03125f, "bf16 qmatmul: %.9g, not 3.03125", ((float *)out[0].data)[0]);
        free(out[0].data);
    }
    ir_graph_free(g);
}

/* Static W8A8 (ascale): every row quantized with the one fixed scale, saturating beyond 127 * sa,
 * ties to even; worked out by hand. sa = 0.5, w = [1, -1; 2, 3; -1, 1] (K 3, N 2), s = [0.25, 2]:
 *   row 0 (1.25, -0.75, 100): 2.5 -> 2, -1.5 -> -2, 200 -> 127: acc = (2 - 4 - 127, -2 - 6 + 127)
 *     = (-129, 119); y = (-129 * 0.5 * 0.25, 119 * 0.5 * 2) = (-16.125, 119)
 *   row 1 (0, -1e30, NaN): 0, -127 (saturated), NaN -> 0: acc = (-254, -381); y = (-31.75, -381)
 * Dynamic would give row 0 another scale (100 / 127); the same graph with dynamic=1 shows it. */
static void test_interp_static(void)
{
    for (int dyn = 0; dyn < 2; dyn++) {
        Graph *g = ir_graph_new();
        Dim c2 = dim_const(2), c3 = dim_const(3), c1 = dim_const(1);
        int8_t w[6] = {1, -1, 2, 3, -1, 1};
        float s[2] = {0.25f, 2}, a[6] = {1.25f, -0.75f, 100, 0, -1e30f, NAN};
        Node *x = input(g, "a", DT_F32, SH(c2, c3));
        Node *q = mk(g, OP_QMATMUL, DT_F32, SH(c2, c2),
                     INS(x, cnst(g, DT_I8, SH(c3, c2), w, sizeof w), cnst(g, DT_F32, SH(c1, c2), s, sizeof s)));
        if (dyn)
            q->at.dynamic = 1;
        else
            q->at.ascale = 0.5;
        CHECK(ir_qmm_w8a8(q) && ir_qmm_static_scale(q) == (dyn ? 0.0f : 0.5f), "ir_qmm_w8a8 / ir_qmm_static_scale");
        ir_add_output(g, "y", q);
        char *msgs = NULL;
        int k = verify(g, &msgs);
        CHECK(k == 0, "the graph has problems:\n%s", msgs);
        free(msgs);
        HostTensor in = {.dtype = DT_F32, .rank = 2, .shape = {2, 3}, .data = a}, out[1];
        Diag *d = diag_new(stderr);
        int rc = ir_interp(g, &in, out, d);
        diag_free(d);
        CHECK(rc == 0, "ir_interp failed");
        if (rc == 0) {
            const float *y = out[0].data;
            if (!dyn) {
                float want[4] = {-16.125f, 119, -31.75f, -381};
                for (int i = 0; i < 4; i++)
                    CHECK(y[i] == want[i], "static qmatmul y[%d]: %.9g, not %.9g", i, y[i], want[i]);
            } else { /* row 0's own scale 100 / 127: 1.25 -> 2 (1.5875), -0.75 -> -1, 100 -> 127 */
                float sa = 100.0f / 127.0f;
                CHECK(y[0] == ((float)(2 - 2 - 127) * sa) * 0.25f, "dynamic qmatmul y[0]: %.9g", y[0]);
            }
            free(out[0].data);
        }
        ir_graph_free(g);
    }
}

/* The verifier rejects what the kernels could not run, with a sentence saying why. */
static void expect_bad(Graph *g, const char *word)
{
    char *msgs = NULL;
    int k = verify(g, &msgs);
    CHECK(k > 0 && strstr(msgs, word), "expected an error with '%s', got:\n%s", word, msgs ? msgs : "");
    free(msgs);
    ir_graph_free(g);
}

static void test_verifier(void)
{
    Dim c1 = dim_const(1), c2 = dim_const(2), c3 = dim_const(3), c4 = dim_const(4), c8 = dim_const(8);
    float s4[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    int8_t w[32] = {0};
    uint8_t w4[16] = {0};

    Graph *g = ir_graph_new();
    Node *x = input(g, "x", DT_F32, SH(c2, c8));
    Node *q = mk(g, OP_QMATMUL, DT_F32, SH(c2, c4), INS(x, cnst(g, DT_I8, SH(c8, c4), w, 32),
                                                        cnst(g, DT_F32, SH(c2, c4), s4, 32)));
    q->at.group = 4;
    q->at.dynamic = 1;
    ir_add_output(g, "y", q);
    expect_bad(g, "dynamic (W8A8) needs i8 weights, one scale per column");

    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    q = mk(g, OP_QMATMUL, DT_F32, SH(c2, c4), INS(x, cnst(g, DT_I4, SH(c8, c4), w4, 16),
                                                  cnst(g, DT_F32, SH(c2, c4), s4, 32)));
    q->at.group = 3; /* ceil(8 / 3) = 3 groups, not 2 */
    ir_add_output(g, "y", q);
    expect_bad(g, "is not f32[3, 4] (group 3)");

    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    Node *qx = mk(g, OP_QUANTIZE, DT_I4, SH(c2, c8), INS(x, cnst(g, DT_F32, SH(c1, c3), s4, 12)));
    ir_add_output(g, "y", mk(g, OP_ADD, DT_I4, SH(c2, c8), INS(qx, qx)));
    expect_bad(g, "scale f32[1, 3] does not fit");

    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    qx = mk(g, OP_QUANTIZE, DT_I4, SH(c2, c8), INS(x, cnst(g, DT_F32, SH(c1, c1), s4, 4)));
    ir_add_output(g, "y", mk(g, OP_ADD, DT_I4, SH(c2, c8), INS(qx, qx)));
    expect_bad(g, "input 0 is i4, which only dequantize, qmatmul and reshape read");

    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    ir_add_output(g, "y", mk(g, OP_QUANTIZE, DT_F32, SH(c2, c8), INS(x, cnst(g, DT_F32, SH(c1, c1), s4, 4))));
    expect_bad(g, "the quantized dtype is f32");

    /* bf16 weights take no scale; integer weights need one */
    uint16_t wb[32] = {0};
    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    ir_add_output(g, "y", mk(g, OP_QMATMUL, DT_F32, SH(c2, c4), INS(x, cnst(g, DT_BF16, SH(c8, c4), wb, 64),
                                                                   cnst(g, DT_F32, SH(c1, c4), s4, 16))));
    expect_bad(g, "bf16 weights take no scale");
    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    ir_add_output(g, "y", mk(g, OP_QMATMUL, DT_F32, SH(c2, c4), INS(x, cnst(g, DT_I8, SH(c8, c4), w, 32))));
    expect_bad(g, "i8 weights need a scale");

    /* static (ascale): positive and finite in f32, not with dynamic, i8 weights per column only */
    double bad_scales[4] = {-0.5, 1e-50, 1e40, NAN};
    const char *why[4] = {"ascale -0.5 is not a positive f32", "ascale 1e-50 is not a positive f32",
                          "ascale 1e+40 is not a positive f32", "is not a positive f32"};
    for (int i = 0; i < 5; i++) {
        g = ir_graph_new();
        x = input(g, "x", DT_F32, SH(c2, c8));
        q = mk(g, OP_QMATMUL, DT_F32, SH(c2, c4), INS(x, cnst(g, DT_I8, SH(c8, c4), w, 32),
                                                      cnst(g, DT_F32, SH(c1, c4), s4, 16)));
        q->at.ascale = i < 4 ? bad_scales[i] : 0.5;
        q->at.dynamic = i == 4;
        ir_add_output(g, "y", q);
        expect_bad(g, i < 4 ? why[i] : "dynamic and a static ascale exclude each other");
    }
    g = ir_graph_new();
    x = input(g, "x", DT_F32, SH(c2, c8));
    q = mk(g, OP_QMATMUL, DT_F32, SH(c2, c4), INS(x, cnst(g, DT_I8, SH(c8, c4), w, 32),
                                                  cnst(g, DT_F32, SH(c2, c4), s4, 32)));
    q->at.group = 4;
    q->at.ascale = 0.5;
    ir_add_output(g, "y", q);
    expect_bad(g, "static (ascale, W8A8) needs i8 weights, one scale per column and no zero point");
}

int main(void)
{
    test_rounding();
    test_packed();
    test_scales();
    test_interp_4bit();
    test_interp_bf16();
    test_interp_static();
    test_verifier();
    if (failures) {
        fprintf(stderr, "test_quant: %d failures\n", failures);
        return 1;
    }
    printf("test_quant: ok\n");
    return 0;
}
