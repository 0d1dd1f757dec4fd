/* test_qattention.c: attention over int8 k and v with a scale per row (the seven-input attention a
 * kv-cache decode step with kv=int8 makes), compiled (codegen/qattention.c) against the interpreter.
 *
 * Each case is a decode-shaped attention (one query row per head, or a few) over a cache of B
 * slots: q f32 [hk, hq / hk, tq, d], k i8 [hk, 1, B, d] and v i8 [hk, 1, B, dv] with random values
 * in [-127, 127] (and some -128), their scales f32 [hk, 1, B, 1], an additive mask [1, B] and the
 * count n of keys read; some rows are zero with scale 0 (what the cache holds of a zero row), a
 * fifth of the filled slots masked with -inf. Head sizes that are not a multiple of the vector
 * (24, 40, 72), odd head counts, grouped-query heads, more keys than a tile (256), fill levels 1,
 * B / 2, B and past B. For each:
 *   - the interpreter's result equals, within 1e-12 of the largest |value|, the interpreter's f32
 *     attention (five inputs) over k and v dequantized here, (float) k8 * scale row by row, and cut
 *     to the first n keys: the op's definition;
 *   - the compiled kernel (cg_jit_run, one thread and two) equals the interpreter within 1e-5 of the
 *     largest |value| (f32 accumulation against double, the scale applied to the dot product rather
 *     than to each element), and is finite everywhere.
 * It reads no files.
 */
#include "codegen/codegen.h"
#include "ir/ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double uni(double lo, double hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

typedef struct Case {
    int hq, hk;    /* query heads (batch [hk, hq / hk]), KV heads */
    int tq, d, dv; /* query rows, head sizes */
    int B;         /* slots */
    int causal;
} Case;

/* The graph of case c: with int8 k and v and their scales over B slots and the count (q8), or f32 k
 * and v over Tk keys without a count. NULL when it does not parse. */
static Graph *graph(const Case *c, int Tk, int q8, Diag *d)
{
    int g = c->hq / c->hk;
    const char *kt = q8 ? "i8" : "f32";
    char text[2048];
    if (q8)
        snprintf(text, sizeof text,
                 "%%0 = input \"q\" : f32[%d, %d, %d, %d]\n%%1 = input \"k\" : i8[%d, 1, %d, %d]\n"
                 "%%2 = input \"v\" : i8[%d, 1, %d, %d]\n%%3 = input \"m\" : f32[1, %d]\n%%4 = input \"n\" : i64[1]\n"
                 "%%5 = input \"ks\" : f32[%d, 1, %d, 1]\n%%6 = input \"vs\" : f32[%d, 1, %d, 1]\n"
                 "%%7 = attention(%%0, %%1, %%2, %%3, %%4, %%5, %%6) {scale=0.125, causal=%s} : f32[%d, %d, %d, %d]\n"
                 "output y = %%7\n",
                 c->hk, g, c->tq, c->d, c->hk, Tk, c->d, c->hk, Tk, c->dv, Tk, c->hk, Tk, c->hk, Tk,
                 c->causal ? "true" : "false", c->hk, g, c->tq, c->dv);
    else
        snprintf(text, sizeof text,
                 "%%0 = input \"q\" : f32[%d, %d, %d, %d]\n%%1 = input \"k\" : %s[%d, 1, %d, %d]\n"
                 "%%2 = input \"v\" : %s[%d, 1, %d, %d]\n%%3 = input \"m\" : f32[1, %d]\n"
                 "%%4 = attention(%%0, %%1, %%2, %%3) {scale=0.125, causal=%s} : f32[%d, %d, %d, %d]\n"
                 "output y = %%4\n",
                 c->hk, g, c->tq, c->d, kt, c->hk, Tk, c->d, kt, c->hk, Tk, c->dv, Tk, c->causal ? "true" : "false",
                 c->hk, g, c->tq, c->dv);
    Graph *gr = ir_parse("<case>", text, NULL, d);
    if (gr && ir_verify(gr, d)) {
        ir_graph_free(gr);
        gr = NULL;
    }
    CHECK(gr, "the case does not parse:\n%s", text);
    return gr;
}

/* A cache of hk x B rows of w int8 values and their scales; rows from `held` on are garbage the
 * kernel must not read (their scales NaN); about one row in eight is zero with scale 0. Also the
 * first `held` rows of each head dequantized into deq (hk x held x w). */
static void fill(int hk, int B, int held, int w, int8_t *x, float *s, float *deq)
{
    for (int h = 0; h < hk; h++)
        for (int j = 0; j < B; j++) {
            size_t r = (size_t)h * B + j;
            int zero = j > 0 && uni(0, 1) < 0.125;
            s[r] = j >= held ? NAN : zero ? 0 : (float)uni(1e-3, 2e-2);
            for (int e = 0; e < w; e++) {
                int v = zero ? 0 : (int)floor(uni(-127, 128));
                if (!zero && uni(0, 1) < 0.02)
                    v = -128;
                x[r * w + e] = (int8_t)(j >= held ? 127 : v);
                if (j < held)
                    deq[((size_t)h * held + j) * w + e] = (float)x[r * w + e] * s[r];
            }
        }
}

static void run_case(const Case *c, int n)
{
    Diag *d = diag_new(stderr);
    int B = c->B, held = n < B ? n : B, G = c->hq / c->hk, rows = c->hk * G * c->tq;
    Graph *qg = graph(c, B, 1, d), *fg = graph(c, held, 0, d);
    float *q = malloc(sizeof(float) * (size_t)rows * c->d), *m = malloc(sizeof(float) * (size_t)B);
    int8_t *k = malloc((size_t)c->hk * B * c->d), *v = malloc((size_t)c->hk * B * c->dv);
    float *ks = malloc(sizeof(float) * (size_t)c->hk * B), *vs = malloc(sizeof(float) * (size_t)c->hk * B);
    float *kd = malloc(sizeof(float) * (size_t)c->hk * held * c->d), *vd = malloc(sizeof(float) * (size_t)c->hk * held * c->dv);
    float *got = malloc(sizeof(float) * (size_t)rows * c->dv);
    int64_t cnt = n;
    for (int i = 0; i < rows * c->d; i++)
        q[i] = (float)uni(-4, 4);
    fill(c->hk, B, held, c->d, k, ks, kd);
    fill(c->hk, B, held, c->dv, v, vs, vd);
    for (int j = 0; j < B; j++) /* a fifth of the filled slots emptied (-inf), never the first */
        m[j] = j > 0 && j < held && uni(0, 1) < 0.2 ? -INFINITY : 0;
    if (!qg || !fg)
        goto out;
    HostTensor in[7] = {{DT_F32, 4, {c->hk, G, c->tq, c->d}, q}, {DT_I8, 4, {c->hk, 1, B, c->d}, k},
                        {DT_I8, 4, {c->hk, 1, B, c->dv}, v}, {DT_F32, 2, {1, B}, m}, {DT_I64, 1, {1}, &cnt},
                        {DT_F32, 4, {c->hk, 1, B, 1}, ks}, {DT_F32, 4, {c->hk, 1, B, 1}, vs}};
    HostTensor inf[4] = {in[0], {DT_F32, 4, {c->hk, 1, held, c->d}, kd}, {DT_F32, 4, {c->hk, 1, held, c->dv}, vd},
                         {DT_F32, 2, {1, held}, m}};
    HostTensor want[1] = {{0}}, ref[1] = {{0}};
    int64_t syms[IR_MAX_SYMS] = {0};
    if (ir_interp(qg, in, want, d) || ir_interp(fg, inf, ref, d)) {
        CHECK(0, "the interpreter failed at n = %d", n);
        goto out;
    }
    const float *w = want[0].data, *r = ref[0].data;
    double big = 0, e = 0;
    int finite = 1;
    for (int i = 0; i < rows * c->dv; i++) {
        finite &= isfinite(w[i]);
        big = fmax(big, fabs(w[i]));
        e = fmax(e, fabs((double)w[i] - r[i]));
    }
    CHECK(finite && e <= 1e-12 * fmax(big, 1e-30), "hq %d hk %d d %d B %d n %d: the interpreter's int8 attention "
          "differs from the f32 attention over the dequantized first %d keys by %.3g (finite: %d)", c->hq, c->hk,
          c->d, B, n, held, e, finite);
    for (int threads = 1; threads <= 2; threads++) {
        memset(got, 0xff, sizeof(float) * (size_t)rows * c->dv);
        Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
        void *inp[7] = {q, k, v, m, &cnt, ks, vs}, *outp[1] = {got};
        int rc = !cg || cg_build(cg, qg) || cg_optimise(cg) || cg_jit_run(cg, syms, inp, outp, threads);
        if (cg)
            cg_free(cg);
        CHECK(!rc, "hq %d d %d B %d n %d: the compiled kernel failed", c->hq, c->d, B, n);
        if (rc)
            break;
        double ge = 0;
        for (int i = 0; i < rows * c->dv; i++)
            ge = isfinite(got[i]) ? fmax(ge, fabs((double)got[i] - w[i])) : INFINITY;
        CHECK(ge <= 1e-5 * fmax(big, 1e-30), "hq %d hk %d tq %d d %d dv %d B %d n %d, %d threads: compiled against "
              "the interpreter: %.3g (largest %.3g)", c->hq, c->hk, c->tq, c->d, c->dv, B, n, threads, ge, big);
    }
    free(want[0].data);
    free(ref[0].data);
out:
    free(q);
    free(m);
    free(k);
    free(v);
    free(ks);
    free(vs);
    free(kd);
    free(vd);
    free(got);
    if (qg)
        ir_graph_free(qg);
    if (fg)
        ir_graph_free(fg);
    diag_free(d);
}

/* The verifier's rules for the seven inputs: a clear refusal, never a crash. */
static void refusals(void)
{
    static const char *bad[] = {
        /* the scale's last dimension must be 1 */
        "%0 = input \"q\" : f32[2, 1, 8]\n%1 = input \"k\" : i8[2, 4, 8]\n%2 = input \"v\" : i8[2, 4, 8]\n"
        "%3 = input \"m\" : f32[1, 4]\n%4 = input \"n\" : i64[1]\n%5 = input \"ks\" : f32[2, 4, 8]\n"
        "%6 = input \"vs\" : f32[2, 4, 1]\n%7 = attention(%0, %1, %2, %3, %4, %5, %6) {scale=1, causal=false} : "
        "f32[2, 1, 8]\noutput y = %7\n",
        /* f32 k with scales */
        "%0 = input \"q\" : f32[2, 1, 8]\n%1 = input \"k\" : f32[2, 4, 8]\n%2 = input \"v\" : i8[2, 4, 8]\n"
        "%3 = input \"m\" : f32[1, 4]\n%4 = input \"n\" : i64[1]\n%5 = input \"ks\" : f32[2, 4, 1]\n"
        "%6 = input \"vs\" : f32[2, 4, 1]\n%7 = attention(%0, %1, %2, %3, %4, %5, %6) {scale=1, causal=false} : "
        "f32[2, 1, 8]\noutput y = %7\n",
        /* i8 k without scales */
        "%0 = input \"q\" : f32[2, 1, 8]\n%1 = input \"k\" : i8[2, 4, 8]\n%2 = input \"v\" : i8[2, 4, 8]\n"
        "%3 = attention(%0, %1, %2) {scale=1, causal=false} : f32[2, 1, 8]\noutput y = %3\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        Diag *d = diag_new(f);
        Graph *g = ir_parse("<bad>", bad[i], NULL, d);
        int refused = !g || ir_verify(g, d);
        diag_free(d);
        fclose(f);
        CHECK(refused && buf && strstr(buf, "attention"), "bad case %zu: not refused with a message naming attention "
              "(got: %s)", i, buf ? buf : "");
        if (g)
            ir_graph_free(g);
        free(buf);
    }
}

int main(void)
{
    static const Case cases[] = {
        {4, 4, 1, 64, 64, 64, 0},   /* GPT-2-like decode: one row per head */
        {3, 3, 1, 24, 24, 37, 0},   /* odd heads, d not a multiple of the vector, odd slots */
        {6, 2, 1, 40, 40, 50, 0},   /* grouped-query heads (3 per KV head) */
        {2, 1, 1, 72, 72, 700, 0},  /* more keys than a tile (256) */
        {2, 2, 3, 32, 24, 40, 1},   /* three query rows, causal, dv != d */
        {1, 1, 1, 8, 8, 5, 0},      /* a head smaller than a vector */
    };
    refusals();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        int fills[] = {1, 2, c->B / 2, 257, c->B, c->B + 5};
        for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++)
            if (fills[f] >= 1 && (fills[f] <= c->B || f == sizeof fills / sizeof fills[0] - 1) &&
                (!c->causal || fills[f] >= c->B)) /* causal: the limit counts all B keys, so full caches only */
                run_case(c, fills[f]);
    }
    if (failures) {
        fprintf(stderr, "test_qattention: %d failures\n", failures);
        return 1;
    }
    printf("test_qattention: ok\n");
    return 0;
}
