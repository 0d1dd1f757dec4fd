/* test_dims.c: dims linear in several symbols (P+T), from the arithmetic to the compiled code.
 *
 * 1. The arithmetic of ir/graph.c: canonical form (P+T equals T+P, a cancelled term disappears),
 *    what stays linear and what fails (a product of two symbolic dims, a fifth symbol, overflow),
 *    exact division, the largest and smallest values over independent bounds, printing, and element
 *    counts compared as polynomials.
 * 2. The model language: inputs past[P, 8] and x[T, 8] with their own symbols; concat gives P+T, a
 *    score matrix [T, P+T] with a causal mask of that shape, softmax over P+T keys, a slice back to
 *    the last T rows. The interpreter on the unoptimised graph against the code generator (JIT,
 *    default passes; 1 thread, and 2 at two pairs) at six (P, T), sizes 1 and the bounds included,
 *    each pair's inputs drawn anew. Tolerance: 1e-5 of the largest |value| of each output (f32 products
 *    over at most 24 terms, computed in another order than the interpreter's double sums).
 * 3. Errors: the verifier's for a node typed T+1 whose inputs give P+T; the frontend's for P * T;
 *    the interpreter's for an input whose P+T dim disagrees with P and T from the other inputs, and
 *    for a symbol only a dim of two symbols uses.
 */
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

static const char *str_of(const Graph *g, Dim d)
{
    static char buf[4][IR_DIM_STR];
    static int k;
    return dim_str(g, d, buf[k++ % 4], IR_DIM_STR);
}

/* ---------------------------------------------------------------- 1. arithmetic */

static void test_arith(void)
{
    Graph *g = ir_graph_new();
    int P = ir_sym(g, "P", 8), T = ir_sym(g, "T", 4), A = ir_sym(g, "A", 2), B = ir_sym(g, "B", 2),
        C = ir_sym(g, "C", 2);
    Dim p = dim_sym(P), t = dim_sym(T), pt, tp, r, one = dim_const(1);

    CHECK(dim_add(p, t, &pt) && dim_add(t, p, &tp) && dim_eq(pt, tp), "P+T and T+P are one dim");
    CHECK(dim_hash(pt) == dim_hash(tp), "equal dims hash equally");
    CHECK(!strcmp(str_of(g, pt), "P+T"), "P+T prints as %s", str_of(g, pt));
    CHECK(dim_nterms(pt) == 2 && dim_term(pt, 0, NULL) == P && dim_term(pt, 1, NULL) == T, "terms in order");
    CHECK(dim_coef(pt, T) == 1 && dim_coef(pt, A) == 0, "coefficients");
    CHECK(!dim_sym1(pt, NULL, NULL, NULL) && !dim_is_sym(pt, -1) && !dim_is_const(pt), "P+T is no single symbol");

    /* 2*P - T + 1, then the T cancels */
    Dim x;
    CHECK(dim_mul(dim_const(2), p, &x) && dim_sub(x, t, &x) && dim_add(x, one, &x), "2*P-T+1");
    CHECK(!strcmp(str_of(g, x), "2*P-T+1"), "prints as %s", str_of(g, x));
    CHECK(dim_add(x, t, &r) && dim_nterms(r) == 1 && dim_sym1(r, NULL, NULL, NULL), "T cancels: %s", str_of(g, r));
    CHECK(dim_eq(r, dim_add_const(dim_mul_const(p, 2), 1)), "2*P+1 = %s", str_of(g, r));
    CHECK(dim_sub(pt, pt, &r) && dim_is_const(r) && dim_value(r) == 0, "P+T - (P+T) = 0");
    CHECK(!strcmp(str_of(g, dim_add_const(dim_mul_const(t, -1), 3)), "-T+3"), "-T+3");

    /* not linear, or too many symbols: refused, out unchanged */
    r = one;
    CHECK(!dim_mul(p, t, &r) && dim_eq(r, one), "P*T is not linear");
    CHECK(!dim_mul(pt, pt, &r), "(P+T)*(P+T) is not linear");
    Dim four = pt;
    CHECK(dim_add(four, dim_sym(A), &four) && dim_add(four, dim_sym(B), &four), "four symbols");
    CHECK(!dim_add(four, dim_sym(C), &r) && dim_eq(r, one), "a fifth symbol is refused");
    CHECK(dim_add(four, dim_sym(P), &r) && dim_coef(r, P) == 2, "a fifth term of a symbol it has is not");
    CHECK(!dim_mul(dim_const(INT64_MAX), dim_mul_const(pt, 2), &r) && !dim_add(dim_const(INT64_MAX), one, &r), "overflow is refused");

    /* exact division */
    Dim pt2;
    CHECK(dim_mul(pt, dim_const(2), &pt2) && dim_add(pt2, dim_const(4), &pt2), "2*P+2*T+4");
    CHECK(dim_div(pt2, dim_const(2), &r) && dim_eq(r, dim_add_const(pt, 2)), "(2*P+2*T+4)/2 = %s", str_of(g, r));
    CHECK(!dim_div(pt2, dim_const(4), &r), "(2*P+2*T+4)/4 is not exact");
    CHECK(dim_div(pt2, dim_add_const(pt, 2), &r) && dim_is_const(r) && dim_value(r) == 2, "(2*P+2*T+4)/(P+T+2) = 2");
    CHECK(!dim_div(pt2, pt, &r), "(2*P+2*T+4)/(P+T) is not a constant");
    CHECK(!dim_div(pt, p, &r), "(P+T)/P is not a dim");

    /* extremes over independent bounds (P <= 8, T <= 4) */
    Dim pmt;
    CHECK(dim_sub(p, t, &pmt), "P-T");
    CHECK(dim_max(g, pt) == 12 && dim_min(g, pt) == 2, "P+T in [2, 12]");
    CHECK(dim_max(g, pmt) == 7 && dim_min(g, pmt) == -3, "P-T in [-3, 7]");
    CHECK(dim_le(g, t, pt) && !dim_le(g, pt, dim_const(11)) && dim_le(g, pt, dim_const(12)), "dim_le");
    int64_t vals[IR_MAX_SYMS] = {5, 3};
    CHECK(dim_eval(x, vals) == 2 * 5 - 3 + 1, "2*P-T+1 at P=5, T=3");

    /* element counts as polynomials: [P+T, 2] and [2*P+2*T] agree, [P, T] and [P*T] cannot be
     * written, [P+T, P] and [P, T+P] agree, [P+T, T] and [P, T+T] do not (they meet at P = T) */
    Dim a1[2] = {pt, dim_const(2)}, b1[1] = {dim_add_const(pt2, -4)};
    CHECK(shape_numel_eq(g, 2, a1, 1, b1), "[P+T, 2] ~ [2*P+2*T]");
    Dim a2[2] = {pt, p}, b2[2] = {p, tp};
    CHECK(shape_numel_eq(g, 2, a2, 2, b2), "[P+T, P] ~ [P, T+P]");
    Dim a3[2] = {pt, t}, b3[2] = {p, dim_mul_const(t, 2)};
    CHECK(!shape_numel_eq(g, 2, a3, 2, b3), "[P+T, T] !~ [P, 2*T]");
    Dim a4[1] = {dim_add_const(pt, 1)}, b4[1] = {pt};
    CHECK(!shape_numel_eq(g, 1, a4, 1, b4), "[P+T+1] !~ [P+T]");
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- 2. interpreter against compiled code */

static const char *MODEL = "model pt\n"
                           "input past: f32[P, 8] where P <= 16\n"
                           "input x: f32[T, 8] where T <= 8\n"
                           "output y: f32[P + T, 8]\n"
                           "output z: f32[T, 8]\n"
                           "output m: f32[T, P + T]\n"
                           "output last: f32[T, 8]\n"
                           "h = concat(past, x, axis=0)\n"
                           "y = tanh(h * 0.5) + h\n"
                           "s = (x @ h.transpose(1, 0)) / sqrt(8)\n"
                           "m = softmax(s + causal_mask(T, P + T), axis=-1)\n"
                           "z = m @ h\n"
                           "last = y[P:P + T] * 2.0\n";

static Graph *compile_model(const char *passes, Diag *d)
{
    Graph *g = fe_compile_text("pt.kiln", MODEL, &(FrontendOptions){0}, d);
    if (!g)
        return NULL;
    PassOptions po = {.d = d};
    if (pass_pipeline(g, passes, NULL, NULL, &po)) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float unif(void) /* [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1);
}

static void alloc_like(HostTensor *t, const Node *n, const int64_t *vals)
{
    t->dtype = n->dtype;
    t->rank = n->rank;
    for (int i = 0; i < n->rank; i++)
        t->shape[i] = dim_eval(n->shape[i], vals);
    t->data = calloc((size_t)shape_numel(n->rank, n->shape, vals) + 1, sizeof(float));
    KILN_ASSERT(t->data);
}

/* Largest |got - want| over the largest |want|; 1e30 when the shapes differ. */
static double max_rel(const HostTensor *got, const HostTensor *want)
{
    if (got->rank != want->rank || memcmp(got->shape, want->shape, sizeof(int64_t) * (size_t)got->rank))
        return 1e30;
    int64_t n = 1;
    for (int i = 0; i < got->rank; i++)
        n *= got->shape[i];
    double err = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double w = ((const float *)want->data)[i], v = ((const float *)got->data)[i];
        err = fmax(err, fabs(v - w));
        scale = fmax(scale, fabs(w));
        if (isnan(v) != isnan(w))
            return 1e30;
    }
    return err / scale;
}

static void test_compiled(void)
{
    Diag *d = diag_new(stderr);
    Graph *ref = compile_model("none", d), *opt = compile_model("default", d);
    CHECK(ref && opt, "the model compiles");
    if (!ref || !opt)
        return;
    char ty[256];
    CHECK(!strcmp(node_type_str(ref, ref->outputs[2].node, ty, sizeof ty), "f32[T, P+T]"), "m is %s", ty);
    CHECK(ref->nsym == 2, "two symbols");
    /* the sizes' ends and two pairs inside; two threads at two of them (each run is a compilation) */
    static const int64_t PT[][3] = {{1, 1, 1}, {16, 8, 2}, {1, 8, 1}, {16, 1, 1}, {5, 3, 2}, {3, 7, 1}};
    for (size_t c = 0; c < sizeof PT / sizeof PT[0]; c++) {
        int64_t vals[IR_MAX_SYMS] = {PT[c][0], PT[c][1]}, bound[IR_MAX_SYMS];
        HostTensor in[2] = {{0}}, want[4] = {{0}}, got[4] = {{0}};
        void *inp[2], *outp[4];
        for (int k = 0; k < 2; k++) {
            alloc_like(&in[k], ref->inputs[k], vals);
            for (int64_t i = 0; i < shape_numel(in[k].rank, ref->inputs[k]->shape, vals); i++)
                ((float *)in[k].data)[i] = unif();
            inp[k] = in[k].data;
        }
        CHECK(!ir_bind_inputs(ref, in, bound, d) && bound[0] == PT[c][0] && bound[1] == PT[c][1],
              "P=%lld, T=%lld bind", (long long)PT[c][0], (long long)PT[c][1]);
        CHECK(!ir_interp(ref, in, want, d), "the interpreter runs at P=%lld, T=%lld", (long long)PT[c][0],
              (long long)PT[c][1]);
        for (int threads = 1; threads <= PT[c][2]; threads++) {
            for (int k = 0; k < 4; k++) {
                alloc_like(&got[k], opt->outputs[k].node, vals);
                outp[k] = got[k].data;
            }
            /* cg_jit_run consumes the module: one compilation per run */
            Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
            int ok = cg && !cg_build(cg, opt) && !cg_optimise(cg) && !cg_jit_run(cg, vals, inp, outp, threads);
            CHECK(ok, "the compiled code runs at P=%lld, T=%lld", (long long)PT[c][0], (long long)PT[c][1]);
            cg_free(cg);
            for (int k = 0; k < 4; k++) {
                double e = max_rel(&got[k], &want[k]);
                CHECK(!ok || e <= 1e-5, "output %s at P=%lld, T=%lld, %d threads: %.3g of its largest value",
                      opt->outputs[k].name, (long long)PT[c][0], (long long)PT[c][1], threads, e);
                free(got[k].data);
            }
        }
        for (int k = 0; k < 4; k++)
            free(want[k].data);
        free(in[0].data);
        free(in[1].data);
    }
    ir_graph_free(ref);
    ir_graph_free(opt);
    diag_free(d);
}

/* ---------------------------------------------------------------- 3. errors */

/* Diagnostics collected in a string. */
typedef struct Msgs {
    char *buf;
    size_t n;
    FILE *f;
    Diag *d;
} Msgs;

static Diag *msgs_open(Msgs *m)
{
    m->buf = NULL;
    m->f = open_memstream(&m->buf, &m->n);
    KILN_ASSERT(m->f);
    return m->d = diag_new(m->f);
}

static char *msgs_close(Msgs *m) /* the messages, malloc'ed */
{
    diag_free(m->d);
    fclose(m->f);
    return m->buf;
}

static void test_errors(void)
{
    Msgs ms;
    Diag *d;

    /* the verifier: P+T where the text says T+1 */
    d = msgs_open(&ms);
    Graph *g = ir_parse("<t>", "sym P <= 8\nsym T <= 4\n%0 = input \"past\" : f32[P, 2]\n"
                               "%1 = input \"x\" : f32[T, 2]\n%2 = concat(%0, %1) {axis=0} : f32[T+1, 2]\noutput y = %2\n",
                        NULL, d);
    int nerr = g ? ir_verify(g, d) : -1;
    char *msg = msgs_close(&ms);
    CHECK(nerr == 1, "one verifier error, got %d", nerr);
    CHECK(strstr(msg, "give f32[P+T, 2] but the node is f32[T+1, 2]"), "verifier said: %s", msg);
    free(msg);
    ir_graph_free(g);

    /* the frontend: a product of two symbols, at its position */
    d = msgs_open(&ms);
    g = fe_compile_text("bad.kiln",
                        "model bad\ninput x: f32[P, T] where P <= 4, T <= 4\noutput y: f32[16]\ny = x.reshape(P * T)\n",
                        &(FrontendOptions){0}, d);
    msg = msgs_close(&ms);
    CHECK(!g && strstr(msg, "bad.kiln:4:17: error: P * T is not a size kiln can represent"), "frontend said: %s", msg);
    free(msg);

    /* the interpreter: y's P+T against P and T from past and x; then P from no dim alone */
    d = msgs_open(&ms);
    g = ir_parse("<t>", "sym P <= 8\nsym T <= 4\n%0 = input \"past\" : f32[P, 2]\n%1 = input \"x\" : f32[T, 2]\n"
                        "%2 = input \"y\" : f32[P+T, 2]\noutput o = %2\n", NULL, d);
    CHECK(g && !ir_verify(g, d), "the binding model verifies");
    float data[64] = {0};
    HostTensor in[3] = {{DT_F32, 2, {3, 2}, data}, {DT_F32, 2, {2, 2}, data}, {DT_F32, 2, {6, 2}, data}};
    int64_t vals[IR_MAX_SYMS];
    CHECK(g && ir_bind_inputs(g, in, vals, d), "y with 6 rows where P+T = 5 is refused");
    in[2].shape[0] = 5;
    CHECK(g && !ir_bind_inputs(g, in, vals, d) && vals[0] == 3 && vals[1] == 2, "5 rows bind");
    msg = msgs_close(&ms);
    CHECK(strstr(msg, "input 'y': expected f32[P+T, 2] with P <= 8, T <= 4, but dimension 0 is 6 where P+T = 5 "
                      "(P = 3, T = 2)"),
          "interpreter said: %s", msg);
    free(msg);
    ir_graph_free(g);

    d = msgs_open(&ms);
    g = ir_parse("<t>", "sym P <= 8\nsym T <= 4\n%0 = input \"x\" : f32[T, 2]\n%1 = input \"y\" : f32[P+T, 2]\n"
                        "output o = %1\n", NULL, d);
    HostTensor in2[2] = {{DT_F32, 2, {2, 2}, data}, {DT_F32, 2, {5, 2}, data}};
    CHECK(g && ir_bind_inputs(g, in2, vals, d), "P given only by P+T is refused");
    msg = msgs_close(&ms);
    CHECK(strstr(msg, "symbol 'P' is not determined by the shape of any input"), "interpreter said: %s", msg);
    free(msg);
    ir_graph_free(g);
}

int main(void)
{
    test_arith();
    test_compiled();
    test_errors();
    if (failures)
        return 1;
    printf("test_dims: ok\n");
    return 0;
}
