/* pool.c: the thread pool a compiled model splits its kernels over.
 *
 * A pool of n threads is the calling thread plus n-1 workers created once, in rt_pool_new, and
 * kept until rt_pool_free. rt_parallel_for publishes one job (fn, ctx, n and the number of
 * chunks), bumps a generation counter and wakes the workers; worker w runs chunk w, the caller
 * runs chunk 0, and each worker acknowledges by decrementing an atomic counter that the caller
 * waits on. Both sides spin briefly before sleeping on a condition variable: kernels come back to
 * back within one model run, so a worker usually finds the next generation while still spinning
 * and a dispatch costs no system call.
 *
 * Every worker acknowledges every generation, even one with fewer chunks than threads, so that
 * when the caller sees the counter reach zero no worker is still reading the job: the next job
 * can be written without a race. A pool is used by one thread at a time (the one running the
 * model); nothing here is global, so two pools in two threads do not interact.
 *
 * Worker threads are created with every signal blocked, so signals go to the program's threads.
 */
#include "runtime/kiln_rt.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
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
    int index; /* 1 .. n-1: the chunk this worker runs */
} PoolWorker;

struct RtPool {
    /* written by the caller before each generation, read by workers after they see it */
    PoolFn fn; /* NULL: the workers exit */
    void *ctx;
    int64_t n;
    int nchunks;

    int nthreads;        /* caller included */
    PoolWorker *workers; /* (nthreads - 1) */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers sleep here waiting for a new generation */
    pthread_cond_t done; /* the caller sleeps here waiting for pending to reach 0 */

    /* on their own cache lines: every worker polls gen and writes pending */
    alignas(64) atomic_uint gen;
    alignas(64) atomic_int pending; /* workers yet to acknowledge the current generation */
};

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

static unsigned pool_wait_gen(RtPool *p, unsigned seen)
{
    unsigned g;
    for (int i = 0; i < POOL_SPIN; i++) {
        if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen)
            return g;
        pool_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *pool_worker(void *arg)
{
    PoolWorker *w = arg;
    RtPool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = pool_wait_gen(p, seen);
        PoolFn fn = p->fn;
        if (!fn)
            return NULL;
        if (w->index < p->nchunks) {
            int64_t b, e;
            pool_chunk(p->n, p->nchunks, w->index, &b, &e);
            fn(p->ctx, b, e);
        }
        /* the last to finish wakes the caller in case it has stopped spinning; taking the mutex
         * orders the signal after the caller's check of pending under it */
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Publishes a job (fn NULL: exit) to every worker and wakes those asleep. */
static void pool_publish(RtPool *p, PoolFn fn, void *ctx, int64_t n, int nchunks)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->ctx = ctx, p->n = n, p->nchunks = nchunks;
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

/* Returns once every worker has acknowledged the current job. */
static void pool_wait(RtPool *p)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        pool_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
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
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
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
        w->index = i;
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
            pool_publish(p, NULL, NULL, 0, 0); /* every worker returns */
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
    pool_publish(p, fn, ctx, n, k);
    int64_t b, e;
    pool_chunk(n, k, 0, &b, &e);
    fn(ctx, b, e);
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
