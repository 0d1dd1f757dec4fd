/* use_kv_dump.c: a language model built with `kiln build --kv-cache POLICY --emit lib`, driven through
 * the runtime's entry API, writing what it computes for tests/models/kv_cache.sh to compare with the
 * interpreter (`test_kv_cache --dump`, the oracle) line by line. Compiled with -DMODEL=kiln_model_NAME.
 *
 *   use_kv_dump NTOKENS VOCAB P
 * Token ids: the fixed pseudo-random sequence of tests/unit/test_kv_cache.c's --dump (same seed and
 * generator). Prefill of tokens[0:P], then decode of tokens[P..NTOKENS-1]; after each decode step one
 * line `logits t v0 v1 ...` and, for each state named cache.L.pos (the policies that choose what to
 * evict), one line `pos t L h p0 p1 ...` per row h of it (tova: one per layer; h2o: one per KV head)
 * with the positions that row of the cache holds, ascending.
 */
#include "runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const RtModel MODEL;

static int run(RtInstance *inst, int e, const int32_t *tok, int64_t n, float *logits)
{
    const RtModel *m = rt_model(inst);
    int64_t shape[1] = {n}, syms[16] = {0};
    const int64_t *shapes[1] = {shape};
    char err[256];
    if (rt_bind_entry(m, e, shapes, syms, err, sizeof err)) {
        fprintf(stderr, "use_kv_dump: %s\n", err);
        return -1;
    }
    void *const in[1] = {(void *)tok}, *const out[1] = {logits};
    return rt_run_entry(inst, e, syms, in, out);
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

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int N = atoi(argv[1]), VOC = atoi(argv[2]), P = atoi(argv[3]);
    const RtModel *m = &MODEL;
    int pre = rt_entry_index(m, "prefill"), dec = rt_entry_index(m, "decode");
    int64_t nout;
    const RtTensorDesc *o = rt_entry_outputs(m, dec, &nout);
    int64_t V = o[0].dims[o[0].rank - 1].b;
    char err[256];
    RtInstance *a = rt_open(m, NULL, 1, err, sizeof err);
    if (!a || pre < 0 || dec < 0 || N < 1 || P < 1 || P > N) {
        fprintf(stderr, "use_kv_dump: %s\n", a ? "no prefill and decode entries, or bad arguments" : err);
        return 1;
    }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N);
    uint32_t seed = 2024;
    for (int i = 0; i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)VOC);
    }
    float *logits = malloc(sizeof(float) * (size_t)(V * P));
    if (run(a, pre, tok, P, logits)) {
        fprintf(stderr, "use_kv_dump: prefill of %d failed\n", P);
        return 1;
    }
    for (int t = P; t < N; t++) {
        if (run(a, dec, &tok[t], 1, logits)) {
            fprintf(stderr, "use_kv_dump: decode of position %d failed\n", t);
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
