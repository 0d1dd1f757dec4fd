/* use_kv.c: a language model built with `kiln build --kv-cache full --emit lib`, driven through the
 * runtime's entry API (rt_entry_index, rt_bind_entry, rt_run_entry, rt_reset). Compiled with
 * -DMODEL=kiln_model_NAME for the model's descriptor.
 *
 *   use_kv NTOKENS VOCAB [STEP]
 * Token ids are a fixed pseudo-random sequence in [0, VOCAB). For each prefill length P in
 * 1, 1+STEP, ... <= NTOKENS: reset, prefill tokens[0:P], then decode tokens[P..NTOKENS-1] one by one;
 * each decode step's logits must equal a full recompute of the prefix (prefill of tokens[0:t+1] on a
 * second instance, its last row) within 1e-5 relative to the row's largest logit (the environment's
 * USE_KV_TOL instead, for bf16: there the two paths' activations, equal to an f32 rounding, may round
 * to neighbouring bf16 values, 2^-8 apart). Then bad use must
 * fail with its named code (RT_ERR_*): decode before any prefill, and decode once the cache holds
 * its budget (the bound of T).
 * Last, eight instances in eight threads each generate NTOKENS - 4 tokens greedily (prefill of 4
 * tokens, then decode of what they generate) and must give the tokens one instance gave alone.
 * Exits non-zero on any failure.
 *
 *   use_kv --bad B VOCAB
 * A model built with --kv-cache full:B (B below the bound of T): decode before any prefill, a
 * prefill of B + 1 tokens and a decode after a prefill of B must return RT_ERR_NO_PREFILL,
 * RT_ERR_BUDGET, RT_ERR_BUDGET; with B = 0 a model with a learned position table and a window
 * policy: decode after a prefill of the whole context must return RT_ERR_POSITIONS. Each code is
 * printed with rt_error_message's sentence.
 *
 *   use_kv --dump NTOKENS VOCAB P
 * For tests/models/kv_policies.sh, which compares it with the interpreter (`test_kv_cache --dump`,
 * the oracle) line by line: token ids from the generator and seed of test_kv_cache's --dump; prefill
 * of tokens[0:P], then decode of tokens[P..NTOKENS-1]; after each decode step one line
 * `logits t v0 v1 ...` and, for each state named cache.L.pos (the policies that choose what to
 * evict), one line `pos t L h p0 p1 ...` per row h of it (tova and cascade: one per layer; h2o: one
 * per KV head) with the positions that row of the cache holds, ascending.
 */
#include "runtime/kiln_rt.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const RtModel MODEL;

static int failures;

/* what must return code want (0: success); prints the runtime's sentence for it */
static void expect_code(const char *what, int rc, int want)
{
    printf("use_kv: %s: code %#x: %s\n", what, (unsigned)rc, rt_error_message(rc));
    if (rc != want) {
        fprintf(stderr, "use_kv: %s returned %#x, not %#x\n", what, (unsigned)rc, (unsigned)want);
        failures++;
    }
}

/* n token ids in [0, voc) from a linear congruential generator seeded with seed (malloc'ed) */
static int32_t *tokens(int64_t n, uint32_t seed, int voc)
{
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)voc);
    }
    return tok;
}

static int run(RtInstance *inst, int e, const int32_t *tok, int64_t n, float *logits)
{
    const RtModel *m = rt_model(inst);
    int64_t shape[1] = {n}, syms[16] = {0};
    const int64_t *shapes[1] = {shape};
    char err[256];
    if (rt_bind_entry(m, e, shapes, syms, err, sizeof err)) {
        fprintf(stderr, "use_kv: %s\n", err);
        return -1;
    }
    void *const in[1] = {(void *)tok}, *const out[1] = {logits};
    return rt_run_entry(inst, e, syms, in, out);
}

typedef struct Gen {
    const int32_t *prompt;
    int n;         /* tokens in all */
    int32_t *out;  /* (n) the prompt, then what was generated */
    int rc;
} Gen;

/* greedy generation on an instance of its own */
static void *generate(void *arg)
{
    Gen *g = arg;
    const RtModel *m = &MODEL;
    char err[256];
    RtInstance *inst = rt_open(m, NULL, 1, err, sizeof err);
    int64_t nout;
    const RtTensorDesc *o = rt_entry_outputs(m, rt_entry_index(m, "decode"), &nout);
    int64_t V = o[0].dims[o[0].rank - 1].b;
    float *logits = malloc(sizeof(float) * (size_t)(V * 4));
    g->rc = !inst || !logits;
    memcpy(g->out, g->prompt, sizeof(int32_t) * 4);
    for (int t = 4; t < g->n && !g->rc; t++) {
        const float *row = logits;
        if (t == 4) {
            g->rc = run(inst, rt_entry_index(m, "prefill"), g->out, 4, logits);
            row = logits + 3 * V;
        } else {
            g->rc = run(inst, rt_entry_index(m, "decode"), &g->out[t - 1], 1, logits);
        }
        int best = 0;
        for (int64_t v = 1; v < V; v++)
            best = row[v] > row[best] ? (int)v : best;
        g->out[t] = best;
    }
    free(logits);
    rt_close(inst);
    return NULL;
}

/* the positions one row of n slots of a cache.L.pos state holds (each slot: position + 1, 0 when
 * empty), ascending; row: the KV head (h2o), 0 for a layer's one row (tova) */
static void print_pos(const int64_t *pos, int64_t n, int t, int layer, int64_t row)
{
    printf("pos %d %d %lld", t, layer, (long long)row);
    for (int64_t want = 1, found = 1; found;) { /* smallest held position >= want, in turn */
        int64_t best = 0;
        for (int64_t k = 0; k < n; k++)
            if (pos[k] >= want && (!best || pos[k] < best))
                best = pos[k];
        found = best > 0;
        if (found)
            printf(" %lld", (long long)(best - 1));
        want = best + 1;
    }
    printf("\n");
}

/* --dump: prefill of tokens[0:P] (a sequence of its own, the seed of tests/unit/test_kv_cache.c's
 * --dump), then decode of the rest; the lines described at the top */
static int dump(int N, int VOC, int P)
{
    const RtModel *m = &MODEL;
    int pre = rt_entry_index(m, "prefill"), dec = rt_entry_index(m, "decode");
    int64_t nout;
    const RtTensorDesc *o = rt_entry_outputs(m, dec, &nout);
    int64_t V = o[0].dims[o[0].rank - 1].b;
    char err[256];
    RtInstance *a = rt_open(m, NULL, 1, err, sizeof err);
    if (!a || pre < 0 || dec < 0 || N < 1 || P < 1 || P > N) {
        fprintf(stderr, "use_kv --dump: %s\n", a ? "no prefill and decode entries, or bad arguments" : err);
        return 1;
    }
    int32_t *tok = tokens(N, 2024u, VOC);
    float *logits = malloc(sizeof(float) * (size_t)(V * P));
    if (run(a, pre, tok, P, logits)) {
        fprintf(stderr, "use_kv --dump: prefill of %d failed\n", P);
        return 1;
    }
    for (int t = P; t < N; t++) {
        if (run(a, dec, &tok[t], 1, logits)) {
            fprintf(stderr, "use_kv --dump: decode of position %d failed\n", t);
            return 1;
        }
        printf("logits %d", t);
        for (int64_t v = 0; v < V; v++)
            printf(" %.9g", logits[v]);
        printf("\n");
        const char *state = rt_state(a);
        int64_t off = 0;
        for (int64_t s = 0; s < m->nstates; s++) {
            const RtTensorDesc *d = &m->states[s];
            int64_t n = 1;
            for (int64_t k = 0; k < d->rank; k++)
                n *= d->dims[k].b;
            int layer;
            char rest[8];
            int64_t S = d->dims[d->rank - 1].b;
            if (sscanf(d->name, "cache.%d.%7s", &layer, rest) == 2 && !strcmp(rest, "pos"))
                for (int64_t row = 0; row < n / S; row++)
                    print_pos((const int64_t *)(state + off) + row * S, S, t, layer, row);
            off += (kiln_dtype_bytes(&rt_dtypes[d->dtype], n) + 63) & ~(int64_t)63;
        }
    }
    free(tok);
    free(logits);
    rt_close(a);
    return 0;
}

/* --bad B VOCAB: a model built with --kv-cache full:B (B below the bound of T) or, B = 0, with a
 * window over a learned position table: the named errors of bad use */
static int bad_use(int B, int VOC)
{
    const RtModel *m = &MODEL;
    int pre = rt_entry_index(m, "prefill"), dec = rt_entry_index(m, "decode");
    int64_t nout, ctx = m->syms[0].bound;
    const RtTensorDesc *o = rt_entry_outputs(m, dec, &nout);
    int64_t V = o[0].dims[o[0].rank - 1].b;
    char err[256];
    RtInstance *a = rt_open(m, NULL, 1, err, sizeof err);
    if (!a || pre < 0 || dec < 0) {
        fprintf(stderr, "use_kv --bad: %s\n", a ? "no prefill and decode entries" : err);
        return 1;
    }
    int32_t *tok = tokens(ctx, 7u, VOC);
    float *logits = malloc(sizeof(float) * (size_t)(V * ctx));
    expect_code("decode before any prefill", run(a, dec, tok, 1, logits), RT_ERR_NO_PREFILL);
    rt_reset(a);
    if (B > 0) {
        expect_code("a prompt longer than the budget", run(a, pre, tok, B + 1, logits), RT_ERR_BUDGET);
        rt_reset(a);
        expect_code("a prompt of the budget", run(a, pre, tok, B, logits), 0);
        expect_code("decode past the budget", run(a, dec, tok, 1, logits), RT_ERR_BUDGET);
    } else {
        expect_code("a prompt of the whole context", run(a, pre, tok, ctx, logits), 0);
        expect_code("decode past the position table", run(a, dec, tok, 1, logits), RT_ERR_POSITIONS);
    }
    free(tok);
    free(logits);
    rt_close(a);
    return failures != 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--dump"))
        return dump(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "--bad"))
        return bad_use(atoi(argv[2]), atoi(argv[3]));
    if (argc < 3)
        return 2;
    int N = atoi(argv[1]), VOC = atoi(argv[2]), step = argc > 3 ? atoi(argv[3]) : 1;
    double tol = getenv("USE_KV_TOL") ? atof(getenv("USE_KV_TOL")) : 1e-5;
    const RtModel *m = &MODEL;
    int pre = rt_entry_index(m, "prefill"), dec = rt_entry_index(m, "decode");
    if (pre < 0 || dec < 0 || m->nsyms < 1) {
        fprintf(stderr, "use_kv: the model has no prefill and decode entries\n");
        return 1;
    }
    int64_t nout;
    const RtTensorDesc *o = rt_entry_outputs(m, dec, &nout);
    int64_t V = o[0].dims[o[0].rank - 1].b, B = m->syms[0].bound;
    char err[256];
    RtInstance *a = rt_open(m, NULL, 1, err, sizeof err), *b = rt_open(m, NULL, 2, err, sizeof err);
    if (!a || !b) {
        fprintf(stderr, "use_kv: %s\n", err);
        return 1;
    }
    int32_t *tok = tokens(B, 12345u, VOC);
    float *ref = malloc(sizeof(float) * (size_t)(V * N)), *all = malloc(sizeof(float) * (size_t)(V * B));
    for (int t = 0; t < N; t++) {
        if (run(b, pre, tok, t + 1, all)) {
            fprintf(stderr, "use_kv: prefill of %d failed\n", t + 1);
            return 1;
        }
        memcpy(ref + (size_t)(t * V), all + (size_t)(t * V), sizeof(float) * (size_t)V);
    }
    double worst = 0;
    int steps = 0;
    for (int P = 1; P <= N; P += step) {
        rt_reset(a);
        if (run(a, pre, tok, P, all)) {
            fprintf(stderr, "use_kv: prefill of %d failed\n", P);
            failures++;
            continue;
        }
        for (int t = P; t < N; t++) {
            if (run(a, dec, &tok[t], 1, all)) {
                fprintf(stderr, "use_kv: decode of position %d after a prefill of %d failed\n", t, P);
                failures++;
                break;
            }
            double e = 0, mx = 0;
            for (int64_t i = 0; i < V; i++) {
                e = fmax(e, fabs((double)all[i] - (double)ref[t * V + i]));
                mx = fmax(mx, fabs((double)ref[t * V + i]));
            }
            e = mx > 0 ? e / mx : e;
            worst = fmax(worst, e);
            steps++;
            if (!(e <= tol)) {
                fprintf(stderr, "use_kv: decode of position %d after a prefill of %d: relative error %.3g\n", t, P, e);
                failures++;
            }
        }
    }
    printf("use_kv %s: %d decode steps, worst relative error %.3g\n", m->name, steps, worst);
    rt_reset(a);
    expect_code("decode before any prefill", run(a, dec, tok, 1, all), RT_ERR_NO_PREFILL);
    if (run(a, pre, tok, B, all)) {
        fprintf(stderr, "use_kv: a full prefill failed\n");
        failures++;
    }
    expect_code("decode past the budget", run(a, dec, tok, 1, all), RT_ERR_BUDGET);
    rt_close(a);
    rt_close(b);

    /* eight instances in eight threads, against one alone */
    Gen one = {tok, N, malloc(sizeof(int32_t) * (size_t)N), 0}, many[8];
    generate(&one);
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        many[i] = (Gen){tok, N, malloc(sizeof(int32_t) * (size_t)N), 0};
        pthread_create(&th[i], NULL, generate, &many[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        if (one.rc || many[i].rc || memcmp(one.out, many[i].out, sizeof(int32_t) * (size_t)N)) {
            fprintf(stderr, "use_kv: thread %d generated other tokens than one instance alone\n", i);
            failures++;
        }
        free(many[i].out);
    }
    free(one.out);
    free(tok);
    free(ref);
    free(all);
    if (failures) {
        fprintf(stderr, "use_kv: %d failures\n", failures);
        return 1;
    }
    return 0;
}
