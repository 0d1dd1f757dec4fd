/* test_attention_kv.c: the fused attention op with a count of keys read (its fifth input n, what a
 * kv-cache decode step passes: the slots filled so far), compiled against the interpreter.
 *
 * Each case is a decode-shaped attention (one query row per head, or a few rows for the block
 * kernel) over a cache of B slots, run at several fill levels n: 1, 2, B / 2, around the key chunk
 * of a split (256), B - 1, B, and past B (clamped to B). The keys and values from slot n
 * on are NaN and their mask entries 0, so a kernel that read one of them would give NaN: only the
 * count keeps them out. For each n:
 *   - the interpreter's result is finite and equals, within 1e-12 relative to the row's largest
 *     value, the interpreter on the same graph cut to the first n keys with no count (the op's
 *     definition: the keys past n are masked), the probabilities past n (scores=true) 0;
 *   - the compiled kernel (cg_jit_run, one thread, and two for the caches of more than 256 slots,
 *     whose keys are split) equals the interpreter within 1e-5 of
 *     the largest |value| of the output (f32 accumulation against double), NaN nowhere.
 * Some slots below n are masked with -inf too, as a policy that emptied a slot leaves it.
 * It reads no files.
 */
#include "codegen/codegen.h"
#include "ir/ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

static uint64_t rng = 88172645463325252ull;

static double uni(double lo, double hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

typedef struct Case {
    int hq, hk;     /* query heads (batch [hk, hq / hk]), KV heads */
    int tq, d, dv;  /* query rows, head sizes */
    int B;          /* slots */
    int scores;     /* the probabilities after each row */
} Case;

/* The graph of case c with Tk keys, with the count input (counted) or not. NULL when it does not
 * parse. */
static Graph *graph(const Case *c, int Tk, int counted, Diag *d)
{
    int g = c->hq / c->hk, ow = c->dv + (c->scores ? Tk : 0);
    char text[2048];
    snprintf(text, sizeof text,
             "%%0 = input \"q\" : f32[%d, %d, %d, %d]\n%%1 = input \"k\" : f32[%d, 1, %d, %d]\n"
             "%%2 = input \"v\" : f32[%d, 1, %d, %d]\n%%3 = input \"m\" : f32[1, %d]\n%s"
             "%%%d = attention(%%0, %%1, %%2, %%3%s) {scale=0.125, causal=false%s} : f32[%d, %d, %d, %d]\n"
             "output y = %%%d\n",
             c->hk, g, c->tq, c->d, c->hk, Tk, c->d, c->hk, Tk, c->dv, Tk, counted ? "%4 = input \"n\" : i64[1]\n" : "",
             counted ? 5 : 4, counted ? ", %4" : "", c->scores ? ", scores=true" : "", c->hk, g, c->tq, ow,
             counted ? 5 : 4);
    Graph *gr = ir_parse("<case>", text, NULL, d);
    if (gr && ir_verify(gr, d)) {
        ir_graph_free(gr);
        gr = NULL;
    }
    CHECK(gr, "the case does not parse:\n%s", text);
    return gr;
}

/* rows x cols of src (row stride sstride) into dst (cols a row) */
static void cut(float *dst, const float *src, int rows, int cols, int sstride)
{
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * cols, src + (size_t)r * sstride, sizeof(float) * (size_t)cols);
}

static void run_case(const Case *c, int n)
{
    Diag *d = diag_new(stderr);
    int B = c->B, held = n < B ? n : B, G = c->hq / c->hk;
    int rows = c->hk * G * c->tq, ow = c->dv + (c->scores ? B : 0), owc = c->dv + (c->scores ? held : 0);
    Graph *full = graph(c, B, 1, d), *part = graph(c, held, 0, d);
    float *q = malloc(sizeof(float) * (size_t)rows * c->d), *k = malloc(sizeof(float) * (size_t)c->hk * B * c->d);
    float *v = malloc(sizeof(float) * (size_t)c->hk * B * c->dv), *m = malloc(sizeof(float) * (size_t)B);
    float *kc = malloc(sizeof(float) * (size_t)c->hk * held * c->d), *vc = malloc(sizeof(float) * (size_t)c->hk * held * c->dv);
    float *got = malloc(sizeof(float) * (size_t)rows * ow);
    int64_t cnt = n;
    for (int i = 0; i < rows * c->d; i++)
        q[i] = (float)uni(-1, 1);
    for (int h = 0; h < c->hk; h++)
        for (int j = 0; j < B; j++) {
            for (int e = 0; e < c->d; e++)
                k[((size_t)h * B + j) * c->d + e] = j < held ? (float)uni(-1, 1) : NAN;
            for (int e = 0; e < c->dv; e++)
                v[((size_t)h * B + j) * c->dv + e] = j < held ? (float)uni(-1, 1) : NAN;
        }
    for (int j = 0; j < B; j++) /* a fifth of the filled slots emptied (-inf), never the first */
        m[j] = j > 0 && j < held && uni(0, 1) < 0.2 ? -INFINITY : 0;
    cut(kc, k, c->hk, held * c->d, B * c->d);
    cut(vc, v, c->hk, held * c->dv, B * c->dv);
    if (!full || !part)
        goto out;
    HostTensor in[5] = {{DT_F32, 4, {c->hk, G, c->tq, c->d}, q}, {DT_F32, 4, {c->hk, 1, B, c->d}, k},
                        {DT_F32, 4, {c->hk, 1, B, c->dv}, v}, {DT_F32, 2, {1, B}, m}, {DT_I64, 1, {1}, &cnt}};
    HostTensor inc[4] = {in[0], {DT_F32, 4, {c->hk, 1, held, c->d}, kc}, {DT_F32, 4, {c->hk, 1, held, c->dv}, vc},
                         {DT_F32, 2, {1, held}, m}};
    HostTensor want[1] = {{0}}, ref[1] = {{0}};
    int64_t syms[IR_MAX_SYMS] = {0};
    if (ir_interp(full, in, want, d) || ir_interp(part, inc, ref, d)) {
        CHECK(0, "the interpreter failed at n = %d", n);
        goto out;
    }
    const float *w = want[0].data, *r = ref[0].data;
    double big = 0, e = 0;
    int finite = 1;
    for (int i = 0; i < rows * ow; i++) {
        finite &= isfinite(w[i]);
        big = fmax(big, fabs(w[i]));
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < ow; j++) {
            double x = w[(size_t)i * ow + j], y = j < owc ? r[(size_t)i * owc + j] : 0;
            e = fmax(e, fabs(x - y));
        }
    CHECK(finite && e <= 1e-12 * fmax(big, 1e-30), "hq %d d %d B %d n %d: the interpreter with the count differs from "
          "the attention over the first %d keys by %.3g (finite: %d)", c->hq, c->d, B, n, held, e, finite);
    for (int threads = 1; threads <= (B > 256 ? 2 : 1); threads++) { /* two: a split over the keys */
        memset(got, 0xff, sizeof(float) * (size_t)rows * ow);
        Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
        void *inp[5] = {q, k, v, m, &cnt}, *outp[1] = {got};
        int rc = !cg || cg_build(cg, full) || cg_optimise(cg) || cg_jit_run(cg, syms, inp, outp, threads);
        if (cg)
            cg_free(cg);
        CHECK(!rc, "hq %d d %d B %d n %d: the compiled kernel failed", c->hq, c->d, B, n);
        if (rc)
            break;
        double ge = 0;
        for (int i = 0; i < rows * ow; i++)
            ge = isfinite(got[i]) ? fmax(ge, fabs((double)got[i] - w[i])) : INFINITY;
        CHECK(ge <= 1e-5 * fmax(big, 1e-30), "hq %d tq %d d %d B %d%s n %d, %d threads: compiled against the "
              "interpreter: %.3g (largest %.3g)", c->hq, c->tq, c->d, B, c->scores ? " scores" : "", n, threads, ge,
              big);
    }
    free(want[0].data);
    free(ref[0].data);
out:
    free(q);
    free(k);
    free(v);
    free(m);
    free(kc);
    free(vc);
    free(got);
    if (full)
        ir_graph_free(full);
    if (part)
        ir_graph_free(part);
    diag_free(d);
}

int main(void)
{
    static const Case cases[] = {
        {4, 4, 1, 64, 64, 64, 0},   /* GPT-2's decode: one row per head, the row kernel */
        {4, 4, 1, 64, 64, 64, 1},   /* with the probabilities (tova, h2o, cascade) */
        {4, 2, 1, 16, 16, 33, 1},   /* grouped-query heads, an odd number of slots */
        {2, 1, 1, 80, 80, 700, 0},  /* keys split into chunks of 256 when enough are filled */
        {2, 1, 1, 80, 80, 700, 1},
        {2, 2, 20, 32, 24, 300, 0}, /* 20 query rows: the block kernel */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        int fills[] = {1, 2, c->B / 2, 256, 257, c->B - 1, c->B, c->B + 5};
        for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++)
            if (fills[f] >= 1 && (fills[f] <= c->B || f == sizeof fills / sizeof fills[0] - 1))
                run_case(c, fills[f]);
    }
    if (failures) {
        fprintf(stderr, "test_attention_kv: %d failures\n", failures);
        return 1;
    }
    printf("test_attention_kv: ok\n");
    return 0;
}
