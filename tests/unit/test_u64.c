/* test_u64.c: the u64 dtype at its edges, compiled code and interpreter against C's own uint64_t.
 *
 * Each case is a small IR graph (text, ir_parse) run by the interpreter (ir_interp) and compiled
 * (cg_build, -O2, cg_jit_run) on inputs chosen where a signed reading of the 64 bits would go wrong:
 * values at and above 2^63, 0 - 1, the largest values, u64 -> f32 roundings that tie. The compiled
 * code must give C's result bit for bit. The interpreter holds values as doubles (ir/interp.c), so
 * it must give the same bits where every input and the result are exact doubles (the values below
 * are multiples of 2^11 above 2^63 for that reason), and elsewhere the result's nearest double
 * (the rule docs/IR.md states); each check says which of the two it expects. A value that is not a
 * double (2^63 + 2^39 + 1) is checked against the compiled code only: the interpreter rounds it to a
 * double on reading, which is the documented limit, not a bug.
 *
 * Also: a .npy file of u64 ("<u8") written and read back by the runtime, and a NumPy-style file
 * (the header NumPy writes) read as RT_U64; the IR text's u64 constants past 2^63 printed and parsed
 * back; a safetensors U64 tensor written and read back; and the refusals: `exp` of a u64 names the node, a
 * negative u64 constant in IR text is an error with its position, u64 meets i64 at f64 in the model
 * language.
 */
#include "check.h"
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/kiln_rt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P63 9223372036854775808ull /* 2^63 */
#define MAX64 18446744073709551615ull

enum { N = 12 };

/* The diagnostics of the last run, for checks on their text. */
static char diag_text[4096];

/* Runs the graph text (inputs and one output, all of N elements, static) through the interpreter and
 * the compiled code; the outputs' bytes go to interp and jit. 0 when both ran; errors are kept in
 * diag_text. */
static int run_both(const char *text, void *const *in, void *interp, void *jit)
{
    FILE *df = tmpfile();
    REQUIRE(df);
    Diag *d = diag_new(df);
    int rc = -1;
    Graph *g = ir_parse("<u64 case>", text, NULL, d);
    if (g && !ir_verify(g, d)) {
        HostTensor hin[4] = {{0}}, want[1] = {{0}};
        REQUIRE(g->ninput <= 4 && g->noutput == 1);
        for (int k = 0; k < g->ninput; k++) {
            const Node *x = g->inputs[k];
            hin[k].dtype = x->dtype;
            hin[k].rank = x->rank;
            for (int i = 0; i < x->rank; i++)
                hin[k].shape[i] = dim_value(x->shape[i]);
            hin[k].data = in[k];
        }
        int64_t bound[IR_MAX_SYMS] = {0};
        const Node *y = g->outputs[0].node;
        size_t bytes = (size_t)shape_numel(y->rank, y->shape, bound) * (size_t)dtype_traits[y->dtype].size;
        if (!ir_bind_inputs(g, hin, bound, d) && !ir_interp(g, hin, want, d)) {
            memcpy(interp, want[0].data, bytes);
            free(want[0].data);
            memset(jit, 0xa5, bytes);
            Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
            void *out[1] = {jit};
            if (cg && !cg_build(cg, g) && !cg_optimise(cg) && !cg_jit_run(cg, bound, in, out, 1))
                rc = 0;
            cg_free(cg);
        }
    }
    if (g)
        ir_graph_free(g);
    diag_free(d);
    rewind(df);
    size_t n = fread(diag_text, 1, sizeof diag_text - 1, df);
    diag_text[n] = 0;
    fclose(df);
    return rc;
}

/* A binary op on two u64[N] inputs, result of dtype out ("u64" or "bool"). */
static int run_u64_binary(const char *op, const char *out, const uint64_t *a, const uint64_t *b, void *interp, void *jit)
{
    char text[512];
    snprintf(text, sizeof text,
             "%%0 = input \"a\" : u64[%d]\n%%1 = input \"b\" : u64[%d]\n%%2 = %s(%%0, %%1) : %s[%d]\noutput y = %%2\n", N,
             N, op, out, N);
    void *in[2] = {(void *)a, (void *)b};
    return run_both(text, in, interp, jit);
}

/* Whether r is a double: at most 53 significant bits. */
static int is_double(uint64_t r)
{
    return r == 0 || 64 - __builtin_clzll(r) - __builtin_ctzll(r) <= 53;
}

/* exact: the interpreter must give the same bits; else the nearest double of the exact result */
static void check_u64(const char *what, int k, uint64_t want, uint64_t interp, uint64_t jit, int exact)
{
    CHECK(jit == want, "%s element %d: compiled %llu, expected %llu", what, k, (unsigned long long)jit,
          (unsigned long long)want);
    if (exact)
        CHECK(interp == want, "%s element %d: interpreter %llu, expected %llu", what, k, (unsigned long long)interp,
              (unsigned long long)want);
    else
        CHECK((double)interp == (double)want, "%s element %d: interpreter %llu, expected the nearest double of %llu",
              what, k, (unsigned long long)interp, (unsigned long long)want);
}

/* operands across 2^63 and at the top of the range; all exact doubles */
static const uint64_t A[N] = {0, 1, P63 - 1024, P63, P63 + 2048, MAX64 - 2047, 12345, 7, P63, 3, MAX64 - 2047, 1ull << 53};
static const uint64_t B[N] = {1, 0, P63, P63 - 1024, P63, 2048, 12345, 2, P63 + 4096, MAX64 - 2047, 3, 5};

static void test_compare(void)
{
    static const char *const ops[] = {"lt", "le", "gt", "ge", "eq", "ne", NULL};
    for (int o = 0; ops[o]; o++) {
        uint8_t gi[N], gj[N];
        REQUIRE(run_u64_binary(ops[o], "bool", A, B, gi, gj) == 0);
        for (int k = 0; k < N; k++) {
            uint64_t a = A[k], b = B[k];
            int want = o == 0 ? a < b : o == 1 ? a <= b : o == 2 ? a > b : o == 3 ? a >= b : o == 4 ? a == b : a != b;
            CHECK(gj[k] == want && gi[k] == want, "%s(%llu, %llu): compiled %d, interpreter %d, expected %d", ops[o],
                  (unsigned long long)a, (unsigned long long)b, gj[k], gi[k], want);
        }
    }
}

static void test_arith(void)
{
    static const char *const ops[] = {"maximum", "minimum", "div", "sub", "add", "mul", NULL};
    for (int o = 0; ops[o]; o++) {
        uint64_t gi[N], gj[N];
        REQUIRE(run_u64_binary(ops[o], "u64", A, B, gi, gj) == 0);
        for (int k = 0; k < N; k++) {
            uint64_t a = A[k], b = B[k], r;
            int exact = 1;
            char what[64];
            snprintf(what, sizeof what, "%s(%llu, %llu)", ops[o], (unsigned long long)a, (unsigned long long)b);
            switch (o) {
            case 0: r = a > b ? a : b; break;
            case 1: r = a < b ? a : b; break;
            case 2: r = b ? a / b : 0; exact = is_double(r); break; /* exact, then to the nearest double */
            case 3: r = a - b; break; /* 0 - 1 wraps to 2^64 - 1 */
            case 4: r = a + b; break;
            default: r = a * b; break;
            }
            if (o >= 3) {
                /* the interpreter computes in double, then wraps into u64 (graph.c's to_u64): it is
                 * exact where a op b is an exact double in (-2^64, 2^64); a sum or product past 2^64
                 * wraps in compiled code and saturates in the interpreter, and an inexact double
                 * has lost the low bits (docs/IR.md), so those are checked compiled only */
                double x = o == 3 ? (double)a - (double)b : o == 4 ? (double)a + (double)b : (double)a * (double)b;
                __int128 e = o == 3 ? (__int128)a - (__int128)b : o == 4 ? (__int128)a + (__int128)b
                                                                        : (__int128)((unsigned __int128)a * b);
                int inexact = o == 5 ? (unsigned __int128)a * b != (unsigned __int128)x : (__int128)x != e;
                if (x >= 18446744073709551616.0 || inexact) {
                    CHECK(gj[k] == r, "%s: compiled %llu, expected %llu", what, (unsigned long long)gj[k],
                          (unsigned long long)r);
                    continue;
                }
                exact = is_double(r); /* else its nearest double: 0 - 1 is 2^64 - 1, read as 2^64 */
            }
            check_u64(what, k, r, gi[k], gj[k], exact);
        }
    }
    /* the cases the list must hold */
    uint64_t gi[N], gj[N];
    REQUIRE(run_u64_binary("sub", "u64", A, B, gi, gj) == 0);
    CHECK(gj[0] == MAX64 && gi[0] == MAX64, "0 - 1: compiled %llu, interpreter %llu", (unsigned long long)gj[0],
          (unsigned long long)gi[0]);
    REQUIRE(run_u64_binary("div", "u64", A, B, gi, gj) == 0);
    CHECK(gj[1] == 0 && gi[1] == 0, "1 / 0 is 0: compiled %llu, interpreter %llu", (unsigned long long)gj[1],
          (unsigned long long)gi[1]);
    CHECK(gj[5] == (MAX64 - 2047) / 2048, "(2^64 - 2048) / 2048 unsigned: compiled %llu", (unsigned long long)gj[5]);
}

static void test_unary(void)
{
    static const char *const ops[] = {"neg", "abs", "relu", NULL};
    for (int o = 0; ops[o]; o++) {
        char text[256];
        snprintf(text, sizeof text, "%%0 = input \"a\" : u64[%d]\n%%1 = %s(%%0) : u64[%d]\noutput y = %%1\n", N, ops[o], N);
        uint64_t gi[N], gj[N];
        void *in[1] = {(void *)A};
        REQUIRE(run_both(text, in, gi, gj) == 0);
        for (int k = 0; k < N; k++) {
            uint64_t r = o == 0 ? 0 - A[k] : A[k]; /* no u64 is negative: abs and relu keep it */
            char what[64];
            snprintf(what, sizeof what, "%s(%llu)", ops[o], (unsigned long long)A[k]);
            check_u64(what, k, r, gi[k], gj[k], o > 0 || is_double(r));
        }
    }
}

static void test_reduce(void)
{
    /* [3, 4] reduced over each axis: max and min across 2^63 */
    static const uint64_t x[12] = {P63, 1, MAX64 - 2047, 0, P63 - 1024, P63 + 2048, 5, 7, 2, P63, 1ull << 60, 9};
    static const char *const ops[] = {"max", "min", NULL};
    for (int o = 0; ops[o]; o++)
        for (int axis = 0; axis < 2; axis++) {
            char text[256];
            int len = axis ? 3 : 4;
            snprintf(text, sizeof text,
                     "%%0 = input \"x\" : u64[3, 4]\n%%1 = %s(%%0) {axis=%d, keepdims=false} : u64[%d]\noutput y = %%1\n",
                     ops[o], axis, len);
            uint64_t gi[4], gj[4];
            void *in[1] = {(void *)x};
            REQUIRE(run_both(text, in, gi, gj) == 0);
            for (int k = 0; k < len; k++) {
                uint64_t r = o ? MAX64 : 0;
                for (int j = 0; j < (axis ? 4 : 3); j++) {
                    uint64_t v = axis ? x[k * 4 + j] : x[j * 4 + k];
                    r = o ? (v < r ? v : r) : (v > r ? v : r);
                }
                char what[64];
                snprintf(what, sizeof what, "%s over axis %d", ops[o], axis);
                check_u64(what, k, r, gi[k], gj[k], 1);
            }
        }
}

/* A cast of N elements from one dtype to another. */
static int run_cast(const char *from, const char *to, const void *x, void *interp, void *jit)
{
    char text[256];
    snprintf(text, sizeof text, "%%0 = input \"x\" : %s[%d]\n%%1 = cast(%%0) : %s[%d]\noutput y = %%1\n", from, N, to, N);
    void *in[1] = {(void *)x};
    return run_both(text, in, interp, jit);
}

static void test_casts(void)
{
    /* u64 -> f32: 2^63 + 2^39 is a tie between 2^63 and 2^63 + 2^40 (to even: 2^63); 2^11 more
     * rounds up; 2^64 - 2048 rounds to 2^64; 2^24 + 1 is a tie at f32's 24 bits (to 2^24) */
    static const uint64_t x[N] = {0,          1,          (1ull << 24) + 1,  (1ull << 24) + 3,
                                  P63,        P63 + (1ull << 39), P63 + (1ull << 39) + 2048, MAX64 - 2047,
                                  P63 - 1024, 1ull << 53, 3ull << 62,        (1ull << 63) + (3ull << 39)};
    float gi[N], gj[N];
    REQUIRE(run_cast("u64", "f32", x, gi, gj) == 0);
    for (int k = 0; k < N; k++)
        CHECK(gj[k] == (float)x[k] && gi[k] == (float)x[k], "u64 %llu -> f32: compiled %.9g, interpreter %.9g, "
              "expected %.9g", (unsigned long long)x[k], gj[k], gi[k], (float)x[k]);
    CHECK(gj[5] == 9223372036854775808.0f && gj[6] == 9223373136366403584.0f,
          "the tie to even and the value past it: %.9g %.9g", gj[5], gj[6]);
    /* not a double: 2^63 + 2^39 + 1 rounds up to 2^63 + 2^40 in one step; the interpreter reads it
     * as the double 2^63 + 2^39 first (then the tie goes to even), so compiled code only */
    uint64_t y[N];
    memcpy(y, x, sizeof y);
    y[0] = P63 + (1ull << 39) + 1;
    REQUIRE(run_cast("u64", "f32", y, gi, gj) == 0);
    CHECK(gj[0] == 9223373136366403584.0f, "u64 2^63 + 2^39 + 1 -> f32: compiled %.9g, expected 2^63 + 2^40", gj[0]);

    double di[N], dj[N];
    REQUIRE(run_cast("u64", "f64", x, di, dj) == 0);
    for (int k = 0; k < N; k++)
        CHECK(dj[k] == (double)x[k] && di[k] == (double)x[k], "u64 %llu -> f64: compiled %.17g, interpreter %.17g",
              (unsigned long long)x[k], dj[k], di[k]);

    /* u64 -> i64 and i32 keep the low bits; i64 -> u64 likewise (-1 is 2^64 - 1) */
    int64_t li[N], lj[N];
    REQUIRE(run_cast("u64", "i64", x, li, lj) == 0);
    for (int k = 0; k < N; k++)
        check_u64("u64 -> i64", k, x[k], (uint64_t)li[k], (uint64_t)lj[k], is_double(x[k]));
    CHECK(lj[4] == INT64_MIN && li[4] == INT64_MIN, "2^63 -> i64: compiled %lld, interpreter %lld", (long long)lj[4],
          (long long)li[4]);
    int32_t wi[N], wj[N];
    REQUIRE(run_cast("u64", "i32", x, wi, wj) == 0);
    for (int k = 0; k < N; k++)
        if (is_double(x[k]))
            CHECK(wj[k] == (int32_t)(uint32_t)x[k] && wi[k] == wj[k], "u64 %llu -> i32: compiled %d, interpreter %d",
                  (unsigned long long)x[k], wj[k], wi[k]);
    static const int64_t s[N] = {-1, 0, 1, INT64_MIN, INT64_MAX - 1023, -2048, 5, -5, 1ll << 53, -(1ll << 53), 7, 8};
    uint64_t ui[N], uj[N];
    REQUIRE(run_cast("i64", "u64", s, ui, uj) == 0);
    for (int k = 0; k < N; k++)
        check_u64("i64 -> u64", k, (uint64_t)s[k], ui[k], uj[k], is_double((uint64_t)s[k]));
    CHECK(uj[0] == MAX64 && ui[0] == MAX64, "-1 -> u64: compiled %llu, interpreter %llu", (unsigned long long)uj[0],
          (unsigned long long)ui[0]);

    /* f32 -> u64: toward zero; [2^63, 2^64) unsigned; 2^64 and up and +inf saturate; a negative in
     * (-2^64, 0) wraps modulo 2^64 (-1 is 2^64 - 1, -1e19 is 2^64 - 1e19), -inf is 0; NaN 0
     * (graph.c's to_u64) */
    static const float f[N] = {1.5f, -1.0f, 9223372036854775808.0f, 1e19f, 3e19f, INFINITY,
                               -INFINITY, NAN, -1e19f, 0.75f, -9223372036854775808.0f, 18446742974197923840.0f};
    static const uint64_t fw[N] = {1, MAX64, P63, 9999999980506447872ull, MAX64, MAX64, 0, 0,
                                   8446744093203103744ull, 0, P63, 18446742974197923840ull};
    REQUIRE(run_cast("f32", "u64", f, ui, uj) == 0);
    for (int k = 0; k < N; k++)
        check_u64("f32 -> u64", k, fw[k], ui[k], uj[k], 1);
    double g[N];
    for (int k = 0; k < N; k++)
        g[k] = f[k];
    REQUIRE(run_cast("f64", "u64", g, ui, uj) == 0);
    for (int k = 0; k < N; k++)
        check_u64("f64 -> u64", k, fw[k], ui[k], uj[k], 1);
}

/* pow of u64 (computed in double, as for the other integers) and f32 ** u64 as ONNX's Pow takes it */
static void test_pow(void)
{
    static const uint64_t a[N] = {2, 3, 0, 1, 10, 2, 7, 1, 5, 2, 4, 6};
    static const uint64_t b[N] = {10, 4, 0, 100, 15, 62, 3, 0, 2, 63, 1, 2};
    uint64_t gi[N], gj[N];
    REQUIRE(run_u64_binary("pow", "u64", a, b, gi, gj) == 0);
    for (int k = 0; k < N; k++) {
        uint64_t r = 1;
        for (uint64_t e = 0; e < b[k]; e++)
            r *= a[k];
        check_u64("pow", k, r, gi[k], gj[k], 1);
    }
    char text[512];
    snprintf(text, sizeof text,
             "%%0 = input \"x\" : f32[%d]\n%%1 = input \"e\" : u64[%d]\n%%2 = cast(%%1) : f32[%d]\n"
             "%%3 = pow(%%0, %%2) : f32[%d]\noutput y = %%3\n", N, N, N, N);
    static const float x[N] = {1, 2, 3, 0.5f, 2, 1, -2, 10, 1.5f, 2, 3, 4};
    float fi[N], fj[N];
    void *in[2] = {(void *)x, (void *)b};
    REQUIRE(run_both(text, in, fi, fj) == 0);
    for (int k = 0; k < N; k++) {
        float want = (float)pow((double)x[k], (double)b[k]);
        CHECK(fj[k] == want && fi[k] == want, "%g ** %llu: compiled %.9g, interpreter %.9g, expected %.9g", x[k],
              (unsigned long long)b[k], fj[k], fi[k], want);
    }
}

/* IR text: a u64 constant past 2^63 prints and parses back, and bad constants are errors. */
static void test_text(void)
{
    const char *src = "%0 = const {data=[0, 9223372036854775808, 18446744073709551615]} : u64[3]\noutput y = %0\n";
    FILE *df = tmpfile();
    REQUIRE(df);
    Diag *d = diag_new(df);
    Graph *g = ir_parse("<u64 text>", src, NULL, d);
    REQUIRE(g && !ir_verify(g, d));
    const uint64_t *v = g->outputs[0].node->at.data;
    CHECK(v[0] == 0 && v[1] == P63 && v[2] == MAX64, "parsed %llu %llu %llu", (unsigned long long)v[0],
          (unsigned long long)v[1], (unsigned long long)v[2]);
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    REQUIRE(f);
    ir_print(f, g);
    fclose(f);
    CHECK(strstr(buf, "9223372036854775808, 18446744073709551615") && strstr(buf, "u64[3]"), "printed:\n%s", buf);
    Graph *g2 = ir_parse("<printed>", buf, NULL, d);
    REQUIRE(g2);
    CHECK(!memcmp(g2->outputs[0].node->at.data, v, 24), "the printed text does not read back to the same values");
    ir_graph_free(g2);
    free(buf);
    ir_graph_free(g);
    static const char *const bad[] = {
        "%0 = const {data=[-1]} : u64[1]\noutput y = %0\n",
        "%0 = const {data=[18446744073709551616]} : u64[1]\noutput y = %0\n",
    };
    for (int i = 0; i < 2; i++) {
        int before = diag_errors(d);
        Graph *b = ir_parse("<bad>", bad[i], NULL, d);
        CHECK(!b && diag_errors(d) > before, "bad constant %d was accepted", i);
        if (b)
            ir_graph_free(b);
    }
    rewind(df);
    char text[2048];
    size_t n = fread(text, 1, sizeof text - 1, df);
    text[n] = 0;
    CHECK(strstr(text, "<bad>:1:") && strstr(text, "value -1 does not fit in u64") &&
              strstr(text, "value 18446744073709551616 does not fit in u64"),
          "the errors do not say where and what:\n%s", text);
    diag_free(d);
    fclose(df);
}

/* exp of a u64 is refused by the IR (the language casts to f32 first): the error names the node */
static void test_refusal(void)
{
    uint64_t a[N] = {0}, gi[N], gj[N];
    char text[256];
    snprintf(text, sizeof text, "%%0 = input \"a\" : u64[%d]\n%%1 = exp(%%0) : u64[%d]\noutput y = %%1\n", N, N);
    void *in[1] = {a};
    CHECK(run_both(text, in, gi, gj) != 0, "exp of u64 ran");
    CHECK(strstr(diag_text, "exp needs a float type, not u64[12]") && strstr(diag_text, "<u64 case>:2:"),
          "the refusal does not name the node and the dtype:\n%s", diag_text);
}

/* The model language: u64 declared, u64 meeting i64 is f64, meeting i32 is u64. */
static void test_language(void)
{
    const char *src = "model m\n"
                      "input a: u64[4]\n"
                      "input b: i64[4]\n"
                      "input c: i32[4]\n"
                      "output x: f64[4]\n"
                      "output y: u64[4]\n"
                      "x = a + b\n"
                      "y = maximum(a, c) - 1\n";
    FILE *df = tmpfile();
    REQUIRE(df);
    Diag *d = diag_new(df);
    Graph *g = fe_compile_text("<u64.kiln>", src, &(FrontendOptions){0}, d);
    if (!g) {
        char t[2048];
        rewind(df);
        size_t n = fread(t, 1, sizeof t - 1, df);
        t[n] = 0;
        CHECK(0, "the model does not compile:\n%s", t);
        diag_free(d);
        fclose(df);
        return;
    }
    CHECK(g->outputs[0].node->dtype == DT_F64 && g->outputs[1].node->dtype == DT_U64, "dtypes %s %s",
          dtype_traits[g->outputs[0].node->dtype].name, dtype_traits[g->outputs[1].node->dtype].name);
    static const uint64_t a[4] = {P63, 0, 5, MAX64 - 2047};
    static const int64_t b[4] = {-1, 1, -5, 2048};
    static const int32_t c[4] = {1, -1, 9, 0};
    HostTensor in[3] = {{DT_U64, 1, {4}, (void *)a}, {DT_I64, 1, {4}, (void *)b}, {DT_I32, 1, {4}, (void *)c}};
    HostTensor out[2] = {{0}};
    int64_t bound[IR_MAX_SYMS] = {0};
    REQUIRE(!ir_bind_inputs(g, in, bound, d) && !ir_interp(g, in, out, d));
    const double *x = out[0].data;
    const uint64_t *y = out[1].data;
    for (int k = 0; k < 4; k++)
        CHECK(x[k] == (double)a[k] + (double)b[k], "x[%d] = %.17g", k, x[k]);
    /* i32 -1 meets u64 as 2^64 - 1 (the wider integer, as i8 meets u32 at u32) */
    static const uint64_t yw[4] = {P63 - 1, MAX64 - 1, 8, MAX64 - 2048};
    for (int k = 0; k < 4; k++)
        CHECK((double)y[k] == (double)yw[k], "y[%d] = %llu, expected %llu", k, (unsigned long long)y[k],
              (unsigned long long)yw[k]);
    free(out[0].data);
    free(out[1].data);
    ir_graph_free(g);
    diag_free(d);
    fclose(df);
}

/* .npy: "<u8" written and read back, and the header NumPy writes for a uint64 array read as RT_U64 */
static void test_npy(void)
{
    char dir[] = "/tmp/kiln-u64-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/u.npy", dir);
    static const uint64_t v[5] = {0, 1, P63, P63 + 1, MAX64};
    int64_t shape[1] = {5};
    REQUIRE(rt_npy_write(path, rt_dtypes[RT_U64].npy, 1, shape, v, err, sizeof err) == 0);
    RtNpy a;
    REQUIRE(rt_npy_read(path, &a, err, sizeof err) == 0);
    CHECK(!strcmp(a.descr, "<u8") && a.rank == 1 && a.shape[0] == 5 && a.elem_size == 8 && !memcmp(a.data, v, 40),
          "round trip: descr %s rank %d", a.descr, a.rank);
    rt_npy_free(&a);
    /* as numpy.save writes np.array([2**64 - 1, 2**63], dtype=np.uint64) */
    const char *h = "{'descr': '<u8', 'fortran_order': False, 'shape': (2,), }";
    unsigned char buf[256];
    size_t hl = strlen(h), pad = 64 - (10 + hl + 1) % 64, k = 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl + pad + 1), buf[9] = 0;
    memcpy(buf + 10, h, hl);
    k = 10 + hl;
    memset(buf + k, ' ', pad);
    k += pad;
    buf[k++] = '\n';
    memcpy(buf + k, &v[4], 8);
    memcpy(buf + k + 8, &v[2], 8);
    k += 16;
    snprintf(path, sizeof path, "%s/numpy.npy", dir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(buf, 1, k, f) == k && fclose(f) == 0);
    REQUIRE(rt_npy_read(path, &a, err, sizeof err) == 0);
    uint64_t got[2];
    memcpy(got, a.data, 16);
    CHECK(!strcmp(a.descr, "<u8") && got[0] == MAX64 && got[1] == P63, "numpy's file: %s %llu %llu", a.descr,
          (unsigned long long)got[0], (unsigned long long)got[1]);
    int t = dtype_from_npy(a.descr);
    CHECK(t == DT_U64, "dtype_from_npy(\"<u8\") is %d", t);
    rt_npy_free(&a);
    unlink(path);
    snprintf(path, sizeof path, "%s/u.npy", dir);
    unlink(path);
    /* safetensors: a U64 tensor written and read back */
    snprintf(path, sizeof path, "%s/u.safetensors", dir);
    WTensor w = {.name = "big", .dtype = DT_U64, .rank = 1, .shape = {5}, .data = v, .nbytes = 40};
    REQUIRE(st_write(path, 1, &w, 0, NULL, NULL) == 0);
    FILE *df = tmpfile();
    REQUIRE(df);
    Diag *d = diag_new(df);
    Weights *ws = st_open(path, d);
    REQUIRE(ws);
    const WTensor *t2 = st_find(ws, "big");
    CHECK(t2 && t2->dtype == DT_U64 && t2->nbytes == 40 && !memcmp(t2->data, v, 40), "safetensors U64 round trip");
    st_close(ws);
    diag_free(d);
    fclose(df);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    CHECK(dtype_from_name("u64") == DT_U64 && dtype_traits[DT_U64].size == 8 && dtype_traits[DT_U64].is_int &&
              !dtype_traits[DT_U64].is_signed,
          "the u64 row of kiln_dtype.h");
    test_compare();
    test_arith();
    test_unary();
    test_reduce();
    test_casts();
    test_pow();
    test_text();
    test_refusal();
    test_language();
    test_npy();
    if (failures)
        fprintf(stderr, "test_u64: %d failures\n", failures);
    return failures != 0;
}
