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
 * When no profile is active on the calling thread (the normal case) a mark is one test and a return:
 * a transformer's entry makes a few hundred marks per run, which costs well under a microsecond.
 * rt_profile_start makes a profile active on the calling thread (thread-local, so two instances on two
 * threads profile separately); it allocates its tables on the first mark of each entry and its
 * event buffer up front, so a profiled run allocates (the only exception to the runtime's rule of
 * allocating nothing after load: profiling is a diagnostic mode).
 */
#include "runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PROF_MAX_TABLES = 8 };

typedef struct ProfTable {
    const RtProfGroup *key; /* the entry's table, which identifies it while the code is loaded */
    RtProfGroup *groups;    /* (n) a copy with copied strings: the report may come after the code is gone
                               (a JIT's memory is released when its run ends) */
    int32_t n;
    double *seconds; /* (n) */
    int64_t *calls;  /* (n) */
} ProfTable;

typedef struct ProfEvent {
    int32_t table, group;
    double t0, dur; /* seconds since the profile started */
} ProfEvent;

struct RtProfile {
    ProfTable tables[PROF_MAX_TABLES];
    int ntables;
    int last_table, last_group; /* the group running since t_last, -1 when none */
    double t_last, t_start;
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
        free(t->calls);
    }
    free(p->events);
    free(p);
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
    t->calls = calloc((size_t)n + 1, sizeof *t->calls);
    t->groups = calloc((size_t)n + 1, sizeof *t->groups);
    int ok = t->seconds && t->calls && t->groups;
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
    double now = prof_now();
    if (p->last_group >= 0) {
        ProfTable *t = &p->tables[p->last_table];
        t->seconds[p->last_group] += now - p->t_last;
        t->calls[p->last_group]++;
        if (p->events) {
            if (p->nevents < p->cap)
                p->events[p->nevents++] = (ProfEvent){p->last_table, p->last_group, p->t_last - p->t_start, now - p->t_last};
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
    p->t_last = prof_now(); /* after the bookkeeping: it is not the group's time */
}

static double poly(const double *c, int64_t sym, const int64_t *syms)
{
    double s = sym >= 0 && syms ? (double)syms[sym] : 0;
    return c[0] + c[1] * s + c[2] * s * s;
}

typedef struct Row {
    const RtProfGroup *g;
    double sec;
    int64_t calls;
    double flops, bytes;
} Row;

static int row_cmp(const void *a, const void *b)
{
    double x = ((const Row *)a)->sec, y = ((const Row *)b)->sec;
    return x < y ? 1 : x > y ? -1 : 0;
}

int rt_profile_report(const RtProfile *p, const int64_t *syms, FILE *f)
{
    int64_t nrow = 0;
    for (int i = 0; i < p->ntables; i++)
        nrow += p->tables[i].n;
    Row *rows = calloc((size_t)nrow + 1, sizeof *rows);
    if (!rows)
        return -1;
    double total = 0, tflops = 0, tbytes = 0;
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
            r->calls = t->calls[j];
            r->flops = poly(g->flops, g->sym, syms) * (double)t->calls[j];
            r->bytes = poly(g->bytes, g->sym, syms) * (double)t->calls[j];
            total += r->sec;
            tflops += r->flops;
            tbytes += r->bytes;
        }
    }
    qsort(rows, (size_t)k, sizeof *rows, row_cmp);
    int64_t ncalls = 0; /* runs: the most calls of a group */
    fprintf(f, "profile: %lld groups, %.3f ms in kernels over all runs (time per group, largest first)\n",
            (long long)k, total * 1e3);
    fprintf(f, "%10s %6s %7s %12s %9s %9s %10s  %s\n", "ms", "share", "calls", "MFLOP/call", "GFLOP/s", "GB/s", "kind",
            "group");
    for (int64_t i = 0; i < k; i++) {
        const Row *r = &rows[i];
        double gf = r->sec > 0 ? r->flops / r->sec * 1e-9 : 0, gb = r->sec > 0 ? r->bytes / r->sec * 1e-9 : 0;
        fprintf(f, "%10.3f %5.1f%% %7lld %12.3f %9.2f %9.2f %10s  %s\n", r->sec * 1e3,
                total > 0 ? 100 * r->sec / total : 0, (long long)r->calls, r->flops / (double)r->calls * 1e-6, gf, gb,
                r->g->kind, r->g->label);
        ncalls = r->calls > ncalls ? r->calls : ncalls;
    }
    fprintf(f, "%10.3f %5.1f%% %7s %12.3f %9.2f %9.2f %10s  %s\n", total * 1e3, 100.0, "",
            ncalls ? tflops / (double)ncalls * 1e-6 : 0, total > 0 ? tflops / total * 1e-9 : 0,
            total > 0 ? tbytes / total * 1e-9 : 0, "", "all (MFLOP per run)");
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
        fprintf(f, ", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, \"pid\": 1, \"tid\": 1}%s\n", e->t0 * 1e6,
                e->dur * 1e6, i + 1 < p->nevents ? "," : "");
    }
    fputs("]}\n", f);
    if (fclose(f)) {
        snprintf(err, errlen, "%s: cannot write the trace", path);
        return -1;
    }
    return 0;
}
