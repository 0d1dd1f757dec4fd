/* use_state.c: tests/unit/state_ring.kir compiled by `kiln build --emit lib`, used through its
 * generated header: a model with state (a buffer of 8 rows and a counter) and two entries.
 *
 *   use_state
 * Each check runs the entries ring_append and ring_read over several calls against a plain C model
 * of the buffer and requires equal bits: two instances in two threads at once, each with its own
 * rows (instances share no state); an append past the 8 rows fails with a non-zero code; ring_reset
 * empties the buffer; and the raw entries run on a state buffer the caller owns. Exits non-zero on
 * any failure.
 */
#include "ring.h"
#include "runtime/kiln_rt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 8, COLS = 2 };

typedef struct Ref {
    float buf[ROWS][COLS];
    int64_t n;
} Ref;

static int failures;

#define CHECK(c, ...)                                                   \
    do {                                                                \
        if (!(c)) {                                                     \
            fprintf(stderr, "use_state:%d: check failed: ", __LINE__); \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
            __atomic_add_fetch(&failures, 1, __ATOMIC_SEQ_CST);         \
        }                                                               \
    } while (0)

static void rows(float x[4][COLS], int t, float seed)
{
    for (int i = 0; i < t; i++)
        for (int j = 0; j < COLS; j++)
            x[i][j] = seed + (float)i * 0.25f - (float)j;
}

/* append t rows through the model and the reference; 0 when they agree */
static int append(ring *m, Ref *r, int t, float seed)
{
    float x[4][COLS];
    int64_t count = -1;
    rows(x, t, seed);
    int rc = ring_append(m, &x[0][0], &count, t);
    if (r->n + t > ROWS) {
        CHECK(rc != 0, "an append of %d rows at %lld succeeded", t, (long long)r->n);
        return rc == 0;
    }
    CHECK(rc == 0 && count == r->n + t, "append of %d rows at %lld: rc %d, count %lld", t, (long long)r->n, rc,
          (long long)count);
    memcpy(r->buf[r->n], x, sizeof(float) * COLS * (size_t)t);
    r->n += t;
    return rc != 0;
}

static int read_check(ring *m, const Ref *r, float scale, const char *when)
{
    float all[ROWS][COLS], want[ROWS][COLS];
    int64_t count = -1;
    int rc = ring_read(m, &scale, &all[0][0], &count);
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++)
            want[i][j] = r->buf[i][j] * scale;
    int ok = rc == 0 && count == r->n && !memcmp(all, want, sizeof all);
    CHECK(ok, "%s: read gives rc %d, count %lld (want %lld), buffer %s", when, rc, (long long)count, (long long)r->n,
          memcmp(all, want, sizeof all) ? "differs" : "equal");
    return !ok;
}

/* one instance through a sequence of calls; arg: the seed */
static void *worker(void *arg)
{
    float seed = *(float *)arg;
    char err[256];
    ring *m = ring_open(NULL, 1, err, sizeof err);
    if (!m) {
        fprintf(stderr, "use_state: %s\n", err);
        return (void *)1;
    }
    intptr_t bad = 0;
    for (int round = 0; round < 50 && !bad; round++) {
        Ref r;
        memset(&r, 0, sizeof r);
        ring_reset(m);
        bad |= read_check(m, &r, 1, "empty");
        bad |= append(m, &r, 3, seed);
        bad |= read_check(m, &r, 2, "3 rows");
        bad |= append(m, &r, 1, seed + 10);
        bad |= append(m, &r, 4, seed + 20);
        bad |= read_check(m, &r, -0.5f, "8 rows");
        bad |= append(m, &r, 1, seed + 30); /* full: fails */
    }
    ring_close(m);
    return (void *)bad;
}

int main(void)
{
    /* two instances, interleaved on one thread */
    char err[256];
    ring *a = ring_open(NULL, 1, err, sizeof err), *b = ring_open(NULL, 1, err, sizeof err);
    if (!a || !b) {
        fprintf(stderr, "use_state: %s\n", err);
        return 1;
    }
    Ref ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    append(a, &ra, 2, 1);
    append(b, &rb, 4, 100);
    append(a, &ra, 2, 2);
    read_check(a, &ra, 1, "a");
    read_check(b, &rb, 3, "b");
    ring_reset(a);
    memset(&ra, 0, sizeof ra);
    read_check(a, &ra, 1, "a after reset");
    read_check(b, &rb, 1, "b after a's reset");
    ring_close(a);
    ring_close(b);

    /* two instances in two threads at once */
    pthread_t th[2];
    float seeds[2] = {5, -7};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker, &seeds[i]);
    for (int i = 0; i < 2; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL, "thread %d failed", i);
    }

    /* the raw entries on buffers the caller owns */
    const RtModel *md = &kiln_model_ring;
    CHECK(md->nentries == 2 && md->state_bytes == RING_STATE_BYTES && RING_STATE_BYTES >= (ROWS * COLS * 4 + 8),
          "descriptor: %lld entries, %lld state bytes", (long long)md->nentries, (long long)md->state_bytes);
    void *act = aligned_alloc(64, RING_ACTIVATIONS_BYTES ? RING_ACTIVATIONS_BYTES : 64);
    void *state = aligned_alloc(64, RING_STATE_BYTES);
    memset(state, 0, RING_STATE_BYTES);
    float x[4][COLS], scale = 1, all[ROWS][COLS];
    int64_t count = 0, syms[1] = {3};
    rows(x, 3, 42);
    void *const in_a[1] = {x}, *const out_a[1] = {&count};
    CHECK(kiln_ring_append_raw(md->embedded_weights, act, state, syms, in_a, out_a, NULL) == 0 && count == 3,
          "raw append: count %lld", (long long)count);
    void *const in_r[1] = {&scale}, *const out_r[2] = {all, &count};
    syms[0] = 0;
    CHECK(kiln_ring_read_raw(md->embedded_weights, act, state, syms, in_r, out_r, NULL) == 0 && count == 3 &&
              !memcmp(all, x, sizeof(float) * 3 * COLS),
          "raw read");
    free(act);
    free(state);
    if (failures) {
        fprintf(stderr, "use_state: %d failures\n", failures);
        return 1;
    }
    printf("use_state: ok\n");
    return 0;
}
