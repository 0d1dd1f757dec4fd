/* kiln_decode.c: times a language model's prefill and decode entries, as compiled by
 * `kiln build MODEL --kv-cache POLICY --emit lib`, through the runtime's entry API.
 *
 *   cc -O2 -DKILN_MODEL=kiln_model_NAME kiln_decode.c LIB -Iruntime-include -lm -lpthread -o kiln_decode
 *   kiln_decode [--weights FILE] --threads T --vocab V --prefill N,... --decode N,... --runs R
 *               [--steps S] [--tokens FILE.i32] [--logits-out FILE.f32] [--profile FILE]
 *
 * The model is any one whose prefill takes i32 tokens [T] and whose decode takes one token and
 * returns the next logits (examples/gpt2, charlm, llama and llamachar with --kv-cache). Tokens are
 * pseudo-random in 0..V-1 (a fixed seed), or read from --tokens (raw little-endian int32, at least
 * as many as the largest length asked for plus one). --logits-out writes the logits of the first
 * --decode measurement's step (raw float32 [V]), for comparing with another engine's.
 *
 * prefill N: reset, then one prefill of N tokens (a warm-up, then R timed runs; median).
 * decode at N: reset, prefill N tokens, then one timed decode step, the (N+1)-th token with N
 *   tokens cached; repeated R times after a warm-up (each time from a fresh prefill, so every step
 *   is at exactly N cached tokens). The steps of generation beyond that are what --steps adds:
 *   after the last timed step, S more steps in a row, each timed (their median is printed too:
 *   the weights' reuse from cache between consecutive steps is what generation sees).
 *
 * --profile FILE writes the runtime's profile (rt_profile_report: time per node group, its share,
 * GB/s and % of the peak) of the --steps consecutive decode steps after the first --decode
 * measurement: where a step's time goes.
 *
 * Prints one JSON line per measurement: {"what": "prefill"|"decode", "tokens"|"cached": N,
 * "min_ms", "median_ms", "runs", "threads"}. Timing is CLOCK_MONOTONIC around the entry call.
 * Exits non-zero, with the runtime's message, when an entry fails (a budget exceeded, say).
 */
#define _POSIX_C_SOURCE 200809L
#include "runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef KILN_MODEL
#error "compile with -DKILN_MODEL=kiln_model_NAME (the descriptor the generated header declares)"
#endif
extern const RtModel KILN_MODEL;

enum { MAXN = 16 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int parse_list(const char *s, long *out)
{
    int n = 0;
    while (s && *s && n < MAXN) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0)
            return -1;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "kiln_decode: %s: %s\n", what, why);
    exit(1);
}

typedef struct Run {
    RtInstance *inst;
    int prefill, decode; /* entry indices */
    int64_t nsyms;
    int32_t *tokens;     /* (bound) */
    float *logits;       /* (bound, vocab): the prefill's output */
    float *next;         /* (vocab): the decode's output */
} Run;

static double run_prefill(Run *r, long n)
{
    int64_t syms[8] = {0};
    for (int64_t i = 0; i < r->nsyms && i < 8; i++)
        syms[i] = n; /* the prompt's one symbol (T) */
    void *in[1] = {r->tokens}, *out[1] = {r->logits};
    rt_reset(r->inst);
    double t0 = now_ms();
    if (rt_run_entry(r->inst, r->prefill, syms, in, out) != 0)
        die("prefill", "the entry failed (a prompt longer than the cache's budget?)");
    return now_ms() - t0;
}

static double run_decode(Run *r, long pos)
{
    int64_t syms[8] = {0};
    void *in[1] = {&r->tokens[pos]}, *out[1] = {r->next};
    double t0 = now_ms();
    if (rt_run_entry(r->inst, r->decode, syms, in, out) != 0)
        die("decode", "the entry failed (the cache or the position table is full?)");
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    const char *weights = NULL, *tokens_path = NULL, *logits_out = NULL, *profile = NULL;
    int threads = 1, runs = 5, steps = 0;
    long vocab = 0, pre[MAXN], dec[MAXN];
    int npre = 0, ndec = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die(a, "needs a value");
        if (!strcmp(a, "--weights"))
            weights = v;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--runs"))
            runs = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--vocab"))
            vocab = atol(v);
        else if (!strcmp(a, "--tokens"))
            tokens_path = v;
        else if (!strcmp(a, "--logits-out"))
            logits_out = v;
        else if (!strcmp(a, "--profile"))
            profile = v;
        else if (!strcmp(a, "--prefill"))
            npre = parse_list(v, pre);
        else if (!strcmp(a, "--decode"))
            ndec = parse_list(v, dec);
        else
            die(a, "unknown option (--weights, --threads, --vocab, --prefill, --decode, --runs, --steps, --tokens, "
                   "--logits-out, --profile)");
        i++;
    }
    if (threads < 1 || runs < 1 || runs > 1000 || steps < 0 || vocab < 1 || npre < 0 || ndec < 0)
        die("options", "need --threads >= 1, --runs 1..1000, --vocab >= 1 and lists of whole numbers");

    const RtModel *m = &KILN_MODEL;
    Run r = {.prefill = rt_entry_index(m, "prefill"), .decode = rt_entry_index(m, "decode")};
    if (r.prefill < 0 || r.decode < 0)
        die(m->name, "has no prefill and decode entries: build it with kiln build --kv-cache POLICY");
    r.nsyms = m->nsyms;
    int64_t bound = r.nsyms ? m->syms[0].bound : 1;
    char err[512];
    if (!(r.inst = rt_open(m, weights, threads, err, sizeof err)))
        die("open", err);
    r.tokens = malloc(sizeof(int32_t) * (size_t)(bound + steps + 2));
    r.logits = malloc(sizeof(float) * (size_t)bound * (size_t)vocab);
    r.next = malloc(sizeof(float) * (size_t)vocab);
    if (!r.tokens || !r.logits || !r.next)
        die("memory", "cannot allocate the tokens and logits");
    unsigned long long x = 88172645463325252ULL;
    for (int64_t i = 0; i < bound + steps + 2; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        r.tokens[i] = (int32_t)(x % (unsigned long long)vocab);
    }
    if (tokens_path) {
        FILE *f = fopen(tokens_path, "rb");
        if (!f)
            die(tokens_path, "cannot open the tokens file");
        size_t got = fread(r.tokens, sizeof(int32_t), (size_t)(bound + steps + 2), f);
        fclose(f);
        for (size_t i = 0; i < got; i++)
            if (r.tokens[i] < 0 || r.tokens[i] >= vocab)
                die(tokens_path, "holds a token outside 0..V-1");
        long need = 0;
        for (int j = 0; j < npre; j++)
            need = pre[j] > need ? pre[j] : need;
        for (int j = 0; j < ndec; j++)
            need = dec[j] + 1 > need ? dec[j] + 1 : need;
        if ((long)got < need)
            die(tokens_path, "holds fewer tokens than the longest measurement needs");
    }
    double *t = malloc(sizeof(double) * (size_t)(runs > steps ? runs : steps + 1));
    for (int j = 0; j < npre; j++) {
        if (pre[j] < 1 || pre[j] > bound)
            die("--prefill", "each length must be from 1 to the model's bound");
        run_prefill(&r, pre[j]);
        for (int k = 0; k < runs; k++)
            t[k] = run_prefill(&r, pre[j]);
        double mn = t[0];
        for (int k = 1; k < runs; k++)
            mn = t[k] < mn ? t[k] : mn;
        printf("{\"what\": \"prefill\", \"tokens\": %ld, \"min_ms\": %.4f, \"median_ms\": %.4f, \"runs\": %d, "
               "\"threads\": %d}\n", pre[j], mn, median(t, runs), runs, threads);
        fflush(stdout);
    }
    for (int j = 0; j < ndec; j++) {
        if (dec[j] < 1 || dec[j] >= bound)
            die("--decode", "each number of cached tokens must be from 1 to the model's bound - 1");
        run_prefill(&r, dec[j]);
        run_decode(&r, dec[j]);
        for (int k = 0; k < runs; k++) {
            run_prefill(&r, dec[j]);
            t[k] = run_decode(&r, dec[j]);
        }
        if (logits_out && j == 0) {
            FILE *f = fopen(logits_out, "wb");
            if (!f || fwrite(r.next, sizeof(float), (size_t)vocab, f) != (size_t)vocab)
                die(logits_out, "cannot write the logits");
            fclose(f);
        }
        double mn = t[0];
        for (int k = 1; k < runs; k++)
            mn = t[k] < mn ? t[k] : mn;
        printf("{\"what\": \"decode\", \"cached\": %ld, \"min_ms\": %.4f, \"median_ms\": %.4f, \"runs\": %d, "
               "\"threads\": %d", dec[j], mn, median(t, runs), runs, threads);
        /* then generation: consecutive steps from dec[j] + 1 cached tokens on */
        RtProfile *prof = NULL;
        if (profile && j == 0 && !(prof = rt_profile_start(0)))
            die("--profile", "out of memory");
        if (prof) { /* a step untimed: the profile measures the machine's peak during it */
            run_prefill(&r, dec[j]);
            run_decode(&r, dec[j]);
            rt_profile_clear(prof);
        }
        int s = 0;
        for (; s < steps && dec[j] + 1 + s < bound; s++)
            t[s] = run_decode(&r, dec[j] + 1 + s);
        if (prof) {
            rt_profile_stop(prof);
            int64_t none[8] = {0};
            FILE *f = fopen(profile, "w");
            if (!f || rt_profile_report(prof, none, f) || fclose(f))
                die(profile, "cannot write the profile");
            rt_profile_free(prof);
        }
        if (s > 0)
            printf(", \"steps\": %d, \"steps_median_ms\": %.4f", s, median(t, s));
        printf("}\n");
        fflush(stdout);
    }
    rt_close(r.inst);
    free(t);
    free(r.tokens);
    free(r.logits);
    free(r.next);
    return 0;
}
