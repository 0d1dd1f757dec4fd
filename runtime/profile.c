/* profile.c: where a compiled model's time goes, group by group (`PROGRAM --profile`, `kiln run
 * --profile`).
 *
 * How: the entry function the compiler emits calls rt_profile_mark(table, n, k) before the kernel of
 * each node group k (a node with the inline nodes its loop computes: a matmul with its epilogue, an
 * attention, a fused elementwise loop, a norm, a copy) and once more with k = n after the last one.
 * The time between two marks is the group's. The table, one per entry function, is a constant the
 * compiler wrote: each group's label, kind, and FLOPs and bytes as a quadratic in one symbolic size,
 * so the report gives GFLOP/s and GB/s at the sizes of the run.
 *
 * A group's time is wall-clock time, so it includes any time the calling thread was descheduled;
 * the calling thread's CPU time between the same marks is kept beside it (cpu ms), and a group whose
 * CPU time is well under its wall time lost the core to another process, or slept waiting for the
 * pool's workers.
 *
 * When no profile is active on the calling thread (the normal case) a mark is one test and a return:
 * a transformer's entry makes a few hundred marks per run, which costs well under a microsecond.
 * rt_profile_start makes a profile active on the calling thread (thread-local, so two instances on two
 * threads profile separately); it allocates its tables on the first mark of each entry and its
 * event buffer up front, so a profiled run allocates (the only exception to the runtime's rule of
 * allocating nothing after load: profiling is a diagnostic mode).
 *
 * The peak the report compares with is measured by rt_profile_peak, which the entry calls at its
 * start with an FMA loop the compiler emitted for the model's vector width (so the peak is the one
 * the model's kernels can reach: AVX-512 or AVX2 or NEON, whatever the model was built for), on the
 * pool's threads, once per profile. FMA rate: each thread's FLOPs over its own CPU time while all
 * threads run, best of 5, times the number of threads (descheduling does not count; a core's clock
 * under wide FMAs can depend on how many cores run them, hence measured per thread count, as
 * bench/machine.c does). Bandwidth: a STREAM triad (a = b + s c, 24 bytes per element, no
 * write-allocate traffic counted) over three arrays of PROF_STREAM_MIB MiB, each thread on its own
 * part, over the slowest thread's CPU time, best of 3. That is DRAM's bandwidth where the last-level
 * cache is smaller than the arrays, and a cache's otherwise; a group whose data stays in cache can
 * exceed it. The measurement takes a few tens of ms, outside every group's time.
 */
#include "runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum {
    PROF_MAX_TABLES = 8,
    PROF_STREAM_MIB = 16, /* each of the triad's three arrays */
    PROF_FMA_TRIALS = 5,
    PROF_STREAM_TRIALS = 3,
};

typedef struct ProfTable {
    const RtProfGroup *key; /* the entry's table, which identifies it while the code is loaded */
    RtProfGroup *groups;    /* (n) a copy with copied strings: the report may come after the code is gone
                               (a JIT's memory is released when its run ends) */
    int32_t n;
    double *seconds; /* (n) wall clock */
    double *cpu;     /* (n) the calling thread's CPU time */
    int64_t *calls;  /* (n) */
} ProfTable;

/* The machine's peak, measured by rt_profile_peak. */
typedef struct ProfPeak {
    int measured;
    int threads, lanes;     /* what it was measured for: the pool's threads, floats per vector */
    double core_gflops;     /* the best thread's FMA rate over its own CPU time */
    double gflops;          /* threads x core_gflops */
    double gbs;             /* STREAM triad, all threads; 0 when its arrays could not be allocated */
    double seconds;         /* what measuring took */
    int other;              /* a later entry ran with another vector width or thread count */
} ProfPeak;

typedef struct ProfEvent {
    int32_t table, group;
    double t0, dur; /* seconds since the profile started */
    double cdur;    /* the calling thread's CPU time in it (the trace's "tdur") */
} ProfEvent;

struct RtProfile {
    ProfTable tables[PROF_MAX_TABLES];
    int ntables;
    int last_table, last_group; /* the group running since t_last, -1 when none */
    double t_last, t_start;
    double c_last; /* the calling thread's CPU time at t_last */
    double c_cost; /* what reading the CPU clock adds to an interval between two reads (a system call:
                      about a microsecond on some virtual machines), taken off each group's CPU time */
    ProfPeak peak;
    ProfEvent *events; /* (cap) for the trace; NULL: no trace */
    int64_t nevents, cap, dropped;
    int failed; /* an allocation failed: the report says so */
};

static _Thread_local RtProfile *prof_active;

static double prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The calling thread's CPU time: what it ran, not counting the time another process had its core. */
static double prof_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

RtProfile *rt_profile_start(int64_t max_events)
{
    RtProfile *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (max_events > 0) {
        p->events = malloc((size_t)max_events * sizeof *p->events);
        if (!p->events) {
            free(p);
            return NULL;
        }
        p->cap = max_events;
    }
    p->last_group = -1;
    p->c_cost = 1e30;
    for (int i = 0; i < 16; i++) { /* the least of a few back-to-back reads */
        double c0 = prof_cpu(), c1 = prof_cpu();
        p->c_cost = c1 - c0 < p->c_cost ? c1 - c0 : p->c_cost;
    }
    p->t_start = prof_now();
    prof_active = p;
    return p;
}

void rt_profile_stop(RtProfile *p)
{
    if (prof_active == p)
        prof_active = NULL;
}

void rt_profile_free(RtProfile *p)
{
    if (!p)
        return;
    rt_profile_stop(p);
    for (int i = 0; i < p->ntables; i++) {
        ProfTable *t = &p->tables[i];
        for (int j = 0; t->groups && j < t->n; j++) {
            free((char *)t->groups[j].label);
            free((char *)t->groups[j].kind);
        }
        free(t->groups);
        free(t->seconds);
        free(t->cpu);
        free(t->calls);
    }
    free(p->events);
    free(p);
}

void rt_profile_clear(RtProfile *p)
{
    for (int i = 0; i < p->ntables; i++) {
        ProfTable *t = &p->tables[i];
        memset(t->seconds, 0, (size_t)t->n * sizeof *t->seconds);
        memset(t->cpu, 0, (size_t)t->n * sizeof *t->cpu);
        memset(t->calls, 0, (size_t)t->n * sizeof *t->calls);
    }
    p->nevents = p->dropped = 0;
    p->last_group = -1;
    p->t_start = prof_now();
}

static int prof_table(RtProfile *p, const RtProfGroup *groups, int32_t n)
{
    for (int i = 0; i < p->ntables; i++)
        if (p->tables[i].key == groups)
            return i;
    if (p->ntables == PROF_MAX_TABLES)
        return -1;
    ProfTable *t = &p->tables[p->ntables];
    t->seconds = calloc((size_t)n + 1, sizeof *t->seconds);
    t->cpu = calloc((size_t)n + 1, sizeof *t->cpu);
    t->calls = calloc((size_t)n + 1, sizeof *t->calls);
    t->groups = calloc((size_t)n + 1, sizeof *t->groups);
    int ok = t->seconds && t->cpu && t->calls && t->groups;
    for (int32_t j = 0; ok && j < n; j++) {
        t->groups[j] = groups[j];
        t->groups[j].label = strdup(groups[j].label);
        t->groups[j].kind = strdup(groups[j].kind);
        ok = t->groups[j].label && t->groups[j].kind;
    }
    if (!ok) {
        for (int32_t j = 0; t->groups && j < n; j++) {
            free((char *)t->groups[j].label);
            free((char *)t->groups[j].kind);
        }
        free(t->groups);
        free(t->seconds);
        free(t->cpu);
        free(t->calls);
        memset(t, 0, sizeof *t);
        p->failed = 1;
        return -1;
    }
    t->n = n;
    t->key = groups;
    return p->ntables++;
}

void rt_profile_mark(const RtProfGroup *groups, int32_t n, int32_t k)
{
    RtProfile *p = prof_active;
    if (!p)
        return;
    double now = prof_now(), cpu = prof_cpu();
    if (p->last_group >= 0) {
        ProfTable *t = &p->tables[p->last_table];
        t->seconds[p->last_group] += now - p->t_last;
        double dc = cpu - p->c_last - p->c_cost;
        dc = dc > 0 ? dc : 0;
        t->cpu[p->last_group] += dc;
        t->calls[p->last_group]++;
        if (p->events) {
            if (p->nevents < p->cap)
                p->events[p->nevents++] = (ProfEvent){p->last_table, p->last_group, p->t_last - p->t_start, now - p->t_last, dc};
            else
                p->dropped++;
        }
    }
    p->last_group = -1;
    if (k < 0 || k >= n)
        return; /* the entry's end */
    int ti = prof_table(p, groups, n);
    if (ti < 0)
        return;
    p->last_table = ti;
    p->last_group = k;
    p->c_last = prof_cpu(); /* after the bookkeeping: it is not the group's time */
    p->t_last = prof_now();
}

/* ---- the peak ---- */

typedef struct PeakJob {
    RtProfFma fma;
    int64_t iters;
    double *cpu;  /* (threads) each thread's CPU time for its part */
    double *a, *b, *c; /* the triad's arrays, (n) each */
    int64_t n;
    int threads;
    int init;     /* the triad's job: 1 to write the arrays' first values (each thread its part) */
} PeakJob;

static void peak_fma_part(void *ctx, int64_t begin, int64_t end)
{
    PeakJob *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        double c0 = prof_cpu();
        (void)j->fma(j->iters); /* an opaque call: its chains cannot be optimised away */
        j->cpu[t] = prof_cpu() - c0;
    }
}

/* The measurement's loops are left out of the sanitizers' and the fuzzer's instrumentation: under
 * them (the fuzz build) the triad's 48 MiB took a second of checks per profiled run, and its figure
 * is a measurement, not code whose paths need coverage. */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize_coverage) && __has_attribute(no_sanitize)
#define PEAK_PLAIN __attribute__((no_sanitize_coverage, no_sanitize("address", "undefined")))
#elif __has_attribute(no_sanitize)
#define PEAK_PLAIN __attribute__((no_sanitize("address", "undefined")))
#endif
#endif
#ifndef PEAK_PLAIN
#define PEAK_PLAIN
#endif

PEAK_PLAIN static void peak_triad(double *restrict a, const double *restrict b, const double *restrict c, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = b[i] + 3.0 * c[i];
}

PEAK_PLAIN static void peak_stream_part(void *ctx, int64_t begin, int64_t end)
{
    PeakJob *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t lo = j->n * t / j->threads, hi = j->n * (t + 1) / j->threads;
        if (j->init) { /* first touch by the thread that streams it (its pages on its node) */
            for (int64_t i = lo; i < hi; i++)
                j->a[i] = 1.0, j->b[i] = 2.0, j->c[i] = 0.5;
            continue;
        }
        double c0 = prof_cpu();
        peak_triad(j->a + lo, j->b + lo, j->c + lo, hi - lo);
        j->cpu[t] = prof_cpu() - c0;
    }
}

/* The best thread's FMA rate (GFLOP/s over its CPU time) with all threads running the loop. */
static double peak_fma(PeakJob *j, RtPool *pool, int32_t flops_per_iter)
{
    /* iterations for about 1 ms of one thread, found on the calling thread (which also brings a
     * core's clock to what it runs wide FMAs at) */
    j->iters = 1024;
    for (;;) {
        double c0 = prof_cpu();
        (void)j->fma(j->iters);
        double dt = prof_cpu() - c0;
        if (dt >= 5e-4 || j->iters >= ((int64_t)1 << 32))
            break;
        j->iters *= dt > 1e-5 ? 4 : 16;
    }
    j->iters *= 2;
    double best = 0;
    for (int trial = 0; trial < PROF_FMA_TRIALS; trial++) {
        rt_parallel_for(pool, j->threads, peak_fma_part, j);
        for (int t = 0; t < j->threads; t++)
            if (j->cpu[t] > 0 && (double)flops_per_iter * (double)j->iters / j->cpu[t] > best)
                best = (double)flops_per_iter * (double)j->iters / j->cpu[t];
    }
    return best * 1e-9;
}

/* The triad's bandwidth in GB/s with all threads, or 0 when its arrays cannot be allocated. */
static double peak_stream(PeakJob *j, RtPool *pool)
{
    size_t bytes = (size_t)PROF_STREAM_MIB << 20;
    j->n = (int64_t)(bytes / sizeof(double));
    double **arr[3] = {&j->a, &j->b, &j->c};
    for (int i = 0; i < 3; i++) {
        /* in huge pages where the kernel gives them: the first touch of 48 MiB in 4 KiB pages is
         * 12,288 page faults, which on some virtual machines take longer than the measurement */
        *arr[i] = aligned_alloc((size_t)2 << 20, bytes);
#ifdef MADV_HUGEPAGE
        if (*arr[i])
            madvise(*arr[i], bytes, MADV_HUGEPAGE);
#endif
    }
    double best = 0;
    if (j->a && j->b && j->c) {
        j->init = 1;
        rt_parallel_for(pool, j->threads, peak_stream_part, j);
        j->init = 0;
        for (int trial = 0; trial < PROF_STREAM_TRIALS; trial++) {
            rt_parallel_for(pool, j->threads, peak_stream_part, j);
            double slowest = 0;
            for (int t = 0; t < j->threads; t++)
                slowest = j->cpu[t] > slowest ? j->cpu[t] : slowest;
            if (slowest > 0 && 24.0 * (double)j->n / slowest > best)
                best = 24.0 * (double)j->n / slowest;
        }
    }
    free(j->a);
    free(j->b);
    free(j->c);
    return best * 1e-9;
}

void rt_profile_peak(RtProfFma fma, int32_t lanes, int32_t flops_per_iter, RtPool *pool)
{
    RtProfile *p = prof_active;
    if (!p || !fma || flops_per_iter <= 0)
        return;
    int threads = rt_pool_size(pool);
    ProfPeak *pk = &p->peak;
    if (pk->measured) {
        pk->other |= pk->threads != threads || pk->lanes != lanes;
        return;
    }
    double t0 = prof_now();
    PeakJob j = {.fma = fma, .threads = threads, .cpu = calloc((size_t)threads, sizeof(double))};
    if (!j.cpu) {
        p->failed = 1;
        return;
    }
    pk->core_gflops = peak_fma(&j, pool, flops_per_iter);
    pk->gflops = pk->core_gflops * threads;
    pk->gbs = peak_stream(&j, pool);
    free(j.cpu);
    pk->threads = threads;
    pk->lanes = lanes;
    pk->measured = 1;
    pk->seconds = prof_now() - t0;
}

static double poly(const double *c, int64_t sym, const int64_t *syms)
{
    double s = sym >= 0 && syms ? (double)syms[sym] : 0;
    return c[0] + c[1] * s + c[2] * s * s;
}

typedef struct Row {
    const RtProfGroup *g;
    double sec, cpu;
    int64_t calls;
    double flops, bytes;
} Row;

static int row_cmp(const void *a, const void *b)
{
    double x = ((const Row *)a)->sec, y = ((const Row *)b)->sec;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The percentage of the peak a rate reaches, and against what: of the FMA peak or of the bandwidth,
 * whichever is the larger share (the roofline's bound at the group's FLOPs per byte). 0 with "-"
 * when no peak was measured. */
static double peak_share(const ProfPeak *pk, double gflops, double gbs, const char **of)
{
    *of = "-";
    if (!pk->measured || pk->gflops <= 0)
        return 0;
    double f = gflops / pk->gflops, b = pk->gbs > 0 ? gbs / pk->gbs : 0;
    *of = b > f ? "BW" : "FMA";
    return 100 * (b > f ? b : f);
}

static void report_row(FILE *f, const ProfPeak *pk, double sec, double cpu, double share, const char *calls,
                       double mflop, double flops, double bytes, const char *kind, int nopeak, const char *label)
{
    double gf = sec > 0 ? flops / sec * 1e-9 : 0, gb = sec > 0 ? bytes / sec * 1e-9 : 0;
    const char *of;
    double pct = peak_share(pk, gf, gb, &of);
    char pcts[16] = "-";
    if (nopeak) /* int8 / bf16 dot products: their peak is not the fp32 FMA's */
        of = "-";
    else if (pk->measured)
        snprintf(pcts, sizeof pcts, "%.1f%%", pct);
    fprintf(f, "%10.3f %10.3f %5.1f%% %7s %12.3f %9.2f %9.2f %7s %3s %10s  %s\n", sec * 1e3, cpu * 1e3, share,
            calls, mflop, gf, gb, pcts, of, kind, label);
}

int rt_profile_report(const RtProfile *p, const int64_t *syms, FILE *f)
{
    int64_t nrow = 0;
    for (int i = 0; i < p->ntables; i++)
        nrow += p->tables[i].n;
    Row *rows = calloc((size_t)nrow + 1, sizeof *rows);
    if (!rows)
        return -1;
    double total = 0, tcpu = 0, tflops = 0, tbytes = 0;
    int64_t k = 0;
    for (int i = 0; i < p->ntables; i++) {
        const ProfTable *t = &p->tables[i];
        for (int j = 0; j < t->n; j++) {
            if (!t->calls[j])
                continue;
            const RtProfGroup *g = &t->groups[j];
            Row *r = &rows[k++];
            r->g = g;
            r->sec = t->seconds[j];
            r->cpu = t->cpu[j];
            r->calls = t->calls[j];
            r->flops = poly(g->flops, g->sym, syms) * (double)t->calls[j];
            r->bytes = poly(g->bytes, g->sym, syms) * (double)t->calls[j];
            total += r->sec;
            tcpu += r->cpu;
            tflops += r->flops;
            tbytes += r->bytes;
        }
    }
    qsort(rows, (size_t)k, sizeof *rows, row_cmp);
    const ProfPeak *pk = &p->peak;
    if (pk->measured)
        fprintf(f,
                "profile: peak on %d thread%s: %.2f GFLOP/s fp32 FMA on %d-float vectors (%d x %.2f, each thread "
                "over its own CPU time), %.2f GB/s STREAM triad over 3 x %d MiB; measured in %.0f ms\n",
                pk->threads, pk->threads == 1 ? "" : "s", pk->gflops, pk->lanes, pk->threads, pk->core_gflops, pk->gbs,
                PROF_STREAM_MIB, pk->seconds * 1e3);
    else
        fprintf(f, "profile: no peak measured (the code was compiled without the peak's FMA loop)\n");
    if (pk->other)
        fprintf(f, "profile: some runs used another thread count or vector width than the peak was measured for\n");
    int64_t ncalls = 0; /* runs: the most calls of a group */
    int dots = 0;       /* groups of int8 / bf16 products: the whole run has no peak either */
    fprintf(f, "profile: %lld groups, %.3f ms in kernels over all runs (wall time per group, largest first; "
               "cpu ms: the calling thread's CPU time)\n",
            (long long)k, total * 1e3);
    fprintf(f, "%10s %10s %6s %7s %12s %9s %9s %7s %3s %10s  %s\n", "ms", "cpu ms", "share", "calls", "MFLOP/call",
            "GFLOP/s", "GB/s", "peak", "of", "kind", "group");
    for (int64_t i = 0; i < k; i++) {
        const Row *r = &rows[i];
        char calls[24];
        snprintf(calls, sizeof calls, "%lld", (long long)r->calls);
        report_row(f, pk, r->sec, r->cpu, total > 0 ? 100 * r->sec / total : 0, calls,
                   r->flops / (double)r->calls * 1e-6, r->flops, r->bytes, r->g->kind, !strcmp(r->g->kind, "qmatmul"),
                   r->g->label);
        ncalls = r->calls > ncalls ? r->calls : ncalls;
        dots |= !strcmp(r->g->kind, "qmatmul");
    }
    report_row(f, pk, total, tcpu, 100.0, "", ncalls ? tflops / (double)ncalls * 1e-6 : 0, tflops, tbytes,
               "", dots, "all (MFLOP per run)");
    if (dots)
        fprintf(f, "profile: groups of kind qmatmul (int8 or bf16 products) have no peak: the profile measures "
                   "the fp32 FMA rate only\n");
    if (p->failed)
        fprintf(f, "profile: some groups were not recorded (out of memory, or more than %d entries)\n",
                PROF_MAX_TABLES);
    if (p->dropped)
        fprintf(f, "profile: the trace holds the first %lld events; %lld more were not kept\n", (long long)p->cap,
                (long long)p->dropped);
    free(rows);
    return 0;
}

/* A JSON string (the labels are the compiler's, but quote what JSON needs). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

int rt_profile_write_trace(const RtProfile *p, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write the trace", path);
        return -1;
    }
    /* Chrome's trace event format (chrome://tracing, Perfetto): complete events, times in us */
    fputs("{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n", f);
    for (int64_t i = 0; i < p->nevents; i++) {
        const ProfEvent *e = &p->events[i];
        const RtProfGroup *g = &p->tables[e->table].groups[e->group];
        fputs("{\"name\": ", f);
        json_string(f, g->label);
        fputs(", \"cat\": ", f);
        json_string(f, g->kind);
        fprintf(f, ", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, \"tdur\": %.3f, \"pid\": 1, \"tid\": 1}%s\n",
                e->t0 * 1e6, e->dur * 1e6, e->cdur * 1e6, i + 1 < p->nevents ? "," : "");
    }
    fputs("],\n", f);
    /* the peak, in the trace's metadata (chrome://tracing shows otherData under "Metadata") */
    const ProfPeak *pk = &p->peak;
    if (pk->measured)
        fprintf(f,
                "\"otherData\": {\"peak_threads\": %d, \"peak_vector_floats\": %d, \"peak_gflops\": %.3f, "
                "\"peak_core_gflops\": %.3f, \"peak_stream_triad_gbs\": %.3f, \"peak_measure_ms\": %.3f}}\n",
                pk->threads, pk->lanes, pk->gflops, pk->core_gflops, pk->gbs, pk->seconds * 1e3);
    else
        fputs("\"otherData\": {}}\n", f);
    if (fclose(f)) {
        snprintf(err, errlen, "%s: cannot write the trace", path);
        return -1;
    }
    return 0;
}
