/* pool.c: the thread pool a compiled model splits its kernels over.
 *
 * A pool of n threads is the calling thread plus n-1 workers created once, in rt_pool_new, and
 * kept until rt_pool_free. rt_parallel_for publishes one job (fn, ctx, n and the number of chunks
 * k, at most one per thread) and a new generation of the claim word; the caller runs chunk 0, and
 * chunks 1 .. k-1 go to whoever claims them first: a worker, or the caller itself once its own
 * chunk is done. The claim word holds the generation, k and the next unclaimed chunk in one atomic
 * 64-bit value, so a claim is one compare-and-swap that fails if the job has changed; a thread
 * reads the job only after a claim, and the caller writes the next job only after every chunk has
 * been counted done. So a worker that did not get a core in time (another process on the CPUs, or
 * more threads than CPUs) costs one chunk's worth of the caller's time, not a wait for the
 * scheduler to run it: with chunk w given to worker w, as before, vit-mnist ran 30 times slower at
 * 2 threads than at 1 while other processes held the cores. Both sides spin briefly before sleeping
 * on a condition variable: kernels come back to back within one model run, so a worker usually
 * finds the next generation while still spinning and a dispatch costs no system call.
 *
 * A pool is used by one thread at a time (the one running the model); nothing here is global, so
 * two pools in two threads do not interact. The generation is 32 bits: a worker would have to stall
 * between reading the word and its compare-and-swap for 2^32 dispatches to claim a stale chunk.
 *
 * Worker threads are created with every signal blocked, so signals go to the program's threads.
 */
#include "runtime/kiln_rt.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    POOL_MAX_THREADS = 1024, /* more is certainly a mistake in KILN_THREADS or --threads */
    POOL_SPIN = 2000,        /* polls before sleeping: a few microseconds */
};

typedef void (*PoolFn)(void *ctx, int64_t begin, int64_t end);

typedef struct PoolWorker {
    pthread_t thread;
    struct RtPool *pool;
} PoolWorker;

struct RtPool {
    /* written by the caller before each generation, read by a thread after it claims a chunk */
    PoolFn fn;
    void *ctx;
    int64_t n;

    int nthreads;        /* caller included */
    PoolWorker *workers; /* (nthreads - 1) */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers sleep here waiting for a new generation */
    pthread_cond_t done; /* the caller sleeps here waiting for left to reach 0 */
    atomic_int quit;     /* set (with a new generation) by rt_pool_free: the workers return */

    /* on their own cache lines: every worker polls the word, and whoever runs a chunk writes left */
    alignas(64) atomic_uint_fast64_t word; /* generation << 32 | chunks << 16 | next unclaimed */
    alignas(64) atomic_int left;           /* chunks of the current generation not yet done */
};

#define WORD_GEN(w) ((uint32_t)((w) >> 32))
#define WORD_K(w) ((int)(((w) >> 16) & 0xffff))
#define WORD_NEXT(w) ((int)((w) & 0xffff))

/* One step of a spin-wait. Every 64th step gives the CPU away: with more threads than free CPUs
 * (another process busy, or KILN_THREADS above the CPU count) a pure spin would keep the thread
 * being waited for off its CPU; yielding made a dispatch ten times cheaper in that case and costs
 * nothing measurable otherwise. */
static inline void pool_relax(int i)
{
    if (i % 64 == 63) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/* Chunk i of k over [0, n): the first n % k chunks get one more. */
static inline void pool_chunk(int64_t n, int k, int i, int64_t *begin, int64_t *end)
{
    int64_t q = n / k, r = n % k;
    *begin = i * q + (i < r ? i : r);
    *end = *begin + q + (i < r);
}

/* Waits for a generation other than `seen`; returns the claim word that has it. */
static uint64_t pool_wait_word(RtPool *p, uint32_t seen)
{
    uint64_t w;
    for (int i = 0; i < POOL_SPIN; i++) {
        if (WORD_GEN(w = atomic_load_explicit(&p->word, memory_order_acquire)) != seen)
            return w;
        pool_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while (WORD_GEN(w = atomic_load_explicit(&p->word, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return w;
}

/* Runs chunk i of the current job and counts it done; the last one done wakes the caller in case it
 * has stopped spinning (taking the mutex orders the signal after the caller's check under it). */
static void pool_run(RtPool *p, int i, int k)
{
    int64_t b, e;
    pool_chunk(p->n, k, i, &b, &e);
    p->fn(p->ctx, b, e);
    if (atomic_fetch_sub_explicit(&p->left, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Claims and runs chunks of generation gen, starting from its word w, until none is left (or the
 * generation is over). */
static void pool_claim(RtPool *p, uint32_t gen, uint64_t w)
{
    while (WORD_GEN(w) == gen && WORD_NEXT(w) < WORD_K(w)) {
        if (atomic_compare_exchange_weak_explicit(&p->word, &w, w + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            pool_run(p, WORD_NEXT(w), WORD_K(w));
            w = atomic_load_explicit(&p->word, memory_order_acquire);
        }
    }
}

static void *pool_worker(void *arg)
{
    PoolWorker *me = arg;
    RtPool *p = me->pool;
    uint32_t seen = 0;
    for (;;) {
        uint64_t w = pool_wait_word(p, seen);
        seen = WORD_GEN(w);
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            return NULL;
        pool_claim(p, seen, w);
    }
}

/* Publishes a job of k chunks, chunk 0 already the caller's (k = 0: a generation with nothing to
 * claim, to wake the workers), and wakes those asleep. Returns the new generation. */
static uint32_t pool_publish(RtPool *p, PoolFn fn, void *ctx, int64_t n, int k)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->ctx = ctx, p->n = n;
    atomic_store_explicit(&p->left, k, memory_order_relaxed);
    uint32_t gen = WORD_GEN(atomic_load_explicit(&p->word, memory_order_relaxed)) + 1;
    atomic_store_explicit(&p->word, (uint64_t)gen << 32 | (uint64_t)k << 16 | (k > 0), memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    return gen;
}

/* Returns once every chunk of the current job is done. */
static void pool_wait(RtPool *p)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        if (atomic_load_explicit(&p->left, memory_order_acquire) == 0)
            return;
        pool_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->left, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

RtPool *rt_pool_new(int n)
{
    if (n < 1)
        n = 1;
    if (n > POOL_MAX_THREADS)
        n = POOL_MAX_THREADS;
    size_t size = (sizeof(RtPool) + 63) / 64 * 64;
    RtPool *p = aligned_alloc(64, size);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    atomic_init(&p->word, 0);
    atomic_init(&p->left, 0);
    atomic_init(&p->quit, 0);
    p->nthreads = 1;
    if (n == 1)
        return p;

    p->workers = calloc((size_t)n - 1, sizeof *p->workers);
    if (!p->workers)
        goto fail;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&p->wake, NULL) != 0)
        goto fail_mu;
    if (pthread_cond_init(&p->done, NULL) != 0)
        goto fail_wake;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* A thread that cannot be created leaves a smaller pool rather than a failure: the model
     * runs correctly on any number of threads. */
    for (int i = 1; i < n; i++) {
        PoolWorker *w = &p->workers[i - 1];
        w->pool = p;
        if (pthread_create(&w->thread, NULL, pool_worker, w) != 0)
            break;
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;

fail_wake:
    pthread_cond_destroy(&p->wake);
fail_mu:
    pthread_mutex_destroy(&p->mu);
fail:
    free(p->workers);
    free(p);
    return NULL;
}

void rt_pool_free(RtPool *p)
{
    if (!p)
        return;
    if (p->workers) {
        if (p->nthreads > 1) {
            atomic_store_explicit(&p->quit, 1, memory_order_release);
            pool_publish(p, NULL, NULL, 0, 0); /* every worker sees quit and returns */
            for (int i = 0; i < p->nthreads - 1; i++)
                pthread_join(p->workers[i].thread, NULL);
        }
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        free(p->workers);
    }
    free(p);
}

int rt_pool_size(const RtPool *p)
{
    return p ? p->nthreads : 1;
}

void rt_parallel_for(RtPool *p, int64_t n, void (*fn)(void *ctx, int64_t begin, int64_t end),
                     void *ctx)
{
    if (n <= 0)
        return;
    int k = p ? p->nthreads : 1;
    if (n < k)
        k = (int)n;
    if (k <= 1) {
        fn(ctx, 0, n);
        return;
    }
    uint32_t gen = pool_publish(p, fn, ctx, n, k);
    pool_run(p, 0, k);
    pool_claim(p, gen, atomic_load_explicit(&p->word, memory_order_acquire)); /* chunks nobody took yet */
    pool_wait(p);
}

int rt_default_threads(void)
{
    const char *s = getenv("KILN_THREADS");
    if (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end == 0 && v >= 1 && v <= POOL_MAX_THREADS)
            return (int)v;
    }
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)c;
}
