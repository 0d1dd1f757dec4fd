/* use_static.c: GPT-2 compiled by `kiln build --emit lib`, used through its generated header.
 *
 *   use_static TOKENS.npy OUT.npy [WEIGHTS]
 * Runs the model once and writes the logits; then opens two more instances and runs each 20 times
 * in its own thread at once, checking every result is bit-identical to the single run (instances
 * share no mutable state). Exits non-zero on any failure.
 */
#include "gpt2.h"
#include "runtime/kiln_rt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *weights;
static RtNpy tokens;
static float *reference;
static size_t nlogits;

static void *worker(void *arg)
{
    char err[256];
    gpt2 *m = gpt2_open(weights, 1, err, sizeof err);
    if (!m) {
        fprintf(stderr, "use_static: %s\n", err);
        return (void *)1;
    }
    float *out = malloc(nlogits * sizeof(float));
    intptr_t bad = 0;
    for (int i = 0; i < 20 && !bad; i++) {
        memset(out, 0, nlogits * sizeof(float));
        if (gpt2_run(m, tokens.data, out, tokens.shape[0]) || memcmp(out, reference, nlogits * sizeof(float)))
            bad = 1;
    }
    free(out);
    gpt2_close(m);
    (void)arg;
    return (void *)bad;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    weights = argc > 3 ? argv[3] : NULL;
    char err[256];
    if (rt_npy_read(argv[1], &tokens, err, sizeof err)) {
        fprintf(stderr, "use_static: %s\n", err);
        return 1;
    }
    int64_t T = tokens.shape[0];
    gpt2 *m = gpt2_open(weights, 2, err, sizeof err);
    if (!m) {
        fprintf(stderr, "use_static: %s\n", err);
        return 1;
    }
    int64_t V = 96;
    nlogits = (size_t)(T * V);
    reference = malloc(nlogits * sizeof(float));
    if (gpt2_run(m, tokens.data, reference, T)) {
        fprintf(stderr, "use_static: run failed\n");
        return 1;
    }
    /* the size check of the typed API */
    if (gpt2_run(m, tokens.data, reference + 0, GPT2_MAX_T + 1) != -1) {
        fprintf(stderr, "use_static: a size above the bound was accepted\n");
        return 1;
    }
    gpt2_close(m);
    int64_t shape[2] = {T, V};
    if (rt_npy_write(argv[2], "<f4", 2, shape, reference, err, sizeof err)) {
        fprintf(stderr, "use_static: %s\n", err);
        return 1;
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad |= r != NULL;
    }
    if (bad)
        fprintf(stderr, "use_static: two instances in two threads disagree with one alone\n");
    free(reference);
    rt_npy_free(&tokens);
    return bad;
}
