/* text.c: the text options of a character-level language model's program.
 *
 * A model whose descriptor carries a vocabulary (RtModel.vocab, one byte per token id) and whose
 * signature is tokens: i32[T] -> logits: f32[T, V] can generate text from a prompt and score a text
 * file. Without a KV cache every new character runs the model over the last CTX characters (CTX is
 * the bound of T). A model built with `kiln build --kv-cache POLICY` has prefill and decode entries
 * (passes/kv_cache.c): the prompt (its last CTX characters) goes through prefill once, and each new
 * character through decode, which reads and appends the cache; when decode fails because the cache
 * or a learned position table is full (the codes RT_ERR_BUDGET, RT_ERR_POSITIONS: policy full's B
 * tokens, GPT-2's wpe), the last CTX/2 characters are prefilled again and decoding goes on. A
 * prefill that fails with RT_ERR_BUDGET (a prompt longer than the budget of full:B; the evicting
 * policies reduce a long prompt themselves) is retried with the last half of its tokens, down to one. Any other failure is an error
 * that says what failed (rt_error_message). Generation ends with `N tokens in S s (R tokens/s)` on
 * stderr, the prompt's prefill included.
 * Sampling: logits / temperature, the k largest kept (top-k), softmax, one draw from a xorshift64*
 * generator seeded by --seed, so a run is reproducible; temperature 0 takes the most likely.
 */
#include "runtime/kiln_rt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct TextArgs {
    const char *prog;
    const char *prompt, *eval, *weights;
    int n, top_k, threads;
    int stream; /* --stream: --eval through prefill and decode, character by character */
    int window; /* --window W: --eval predicting every character from the W before it, recomputed */
    double temperature;
    uint64_t seed;
} TextArgs;

static void text_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int rt_text_wanted(const RtModel *m, int argc, char **argv)
{
    if (!m->vocab)
        return 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--prompt") || !strcmp(argv[i], "--eval"))
            return 1;
    return 0;
}

static int parse(const RtModel *m, int argc, char **argv, TextArgs *a)
{
    *a = (TextArgs){.prog = argv[0], .n = 200, .temperature = 1.0, .seed = 1};
    const char *slash = strrchr(a->prog, '/');
    if (slash)
        a->prog = slash + 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--stream")) {
            a->stream = 1;
            continue;
        }
        if (!v) {
            text_error(a->prog, "%s needs a value", o);
            return 2;
        }
        char *end = NULL;
        if (!strcmp(o, "--prompt"))
            a->prompt = v;
        else if (!strcmp(o, "--eval"))
            a->eval = v;
        else if (!strcmp(o, "--weights"))
            a->weights = v;
        else if (!strcmp(o, "-n") || !strcmp(o, "--top-k") || !strcmp(o, "--threads") || !strcmp(o, "--window")) {
            long x = strtol(v, &end, 10);
            int positive = !strcmp(o, "--threads") || !strcmp(o, "--window");
            if (*end || x < 0 || x > 100000000 || (positive && x < 1)) {
                text_error(a->prog, "%s needs a %s integer, got '%s'", o, positive ? "positive" : "non-negative", v);
                return 2;
            }
            *(!strcmp(o, "-n")        ? &a->n
              : !strcmp(o, "--top-k") ? &a->top_k
              : !strcmp(o, "--window") ? &a->window
                                      : &a->threads) = (int)x;
        } else if (!strcmp(o, "--temperature")) {
            a->temperature = strtod(v, &end);
            if (*end || !(a->temperature >= 0)) {
                text_error(a->prog, "--temperature needs a number >= 0, got '%s'", v);
                return 2;
            }
        } else if (!strcmp(o, "--seed")) {
            a->seed = strtoull(v, &end, 10);
            if (*end) {
                text_error(a->prog, "--seed needs an integer, got '%s'", v);
                return 2;
            }
        } else {
            text_error(a->prog, "unknown option '%s' (text mode takes --prompt TEXT or --eval FILE [--stream | --window W], -n, "
                                "--temperature, --top-k, --seed, --weights, --threads)", o);
            return 2;
        }
        i++;
    }
    if (!!a->prompt == !!a->eval) {
        text_error(a->prog, "give either --prompt TEXT or --eval FILE");
        return 2;
    }
    if (a->stream && (!a->eval || rt_entry_index(m, "decode") < 0)) {
        text_error(a->prog, "--stream scores --eval FILE through a KV cache: build the model with kiln build "
                            "--kv-cache POLICY");
        return 2;
    }
    if (a->window && (!a->eval || a->stream)) {
        text_error(a->prog, "--window W scores --eval FILE by recomputing the last W characters for each one; it "
                            "does not go with --prompt or --stream");
        return 2;
    }
    return 0;
}

/* The model must be tokens: i32[T] -> logits: f32[T, V] with V the vocabulary's size. */
static int check_signature(const RtModel *m, const char *prog, int64_t *sym, int64_t *ctx)
{
    int64_t V = (int64_t)strlen(m->vocab);
    const RtTensorDesc *in = m->ninputs == 1 ? &m->inputs[0] : NULL, *out = m->noutputs == 1 ? &m->outputs[0] : NULL;
    if (!in || !out || in->dtype != RT_I32 || in->rank != 1 || in->dims[0].n != 1 || in->dims[0].a[0] != 1 ||
        in->dims[0].b != 0 || out->dtype != RT_F32 || out->rank != 2 || out->dims[1].n != 0 ||
        out->dims[1].b != V || memcmp(&out->dims[0], &in->dims[0], sizeof(RtDim))) {
        text_error(prog, "model '%s' is not a character model of the form tokens: i32[T] -> logits: f32[T, %lld]",
                   m->name, (long long)V);
        return 1;
    }
    *sym = in->dims[0].sym[0];
    *ctx = m->syms[*sym].bound;
    return 0;
}

typedef struct Runner {
    RtInstance *inst;
    int prefill, decode; /* the entries of a model with a KV cache, else -1 */
    int64_t nsym;
    int64_t syms[16];
    int64_t sym, ctx, V;
    int32_t *tokens; /* (ctx) */
    float *logits;   /* (ctx, V) */
} Runner;

static int run(Runner *r, int64_t T)
{
    r->syms[r->sym] = T;
    void *in[1] = {r->tokens}, *out[1] = {r->logits};
    return rt_run(r->inst, r->syms, in, out);
}

/* prefill of the T tokens in r->tokens (a model with a KV cache) */
static int run_prefill(Runner *r, int64_t T)
{
    r->syms[r->sym] = T;
    void *in[1] = {r->tokens}, *out[1] = {r->logits};
    return rt_run_entry(r->inst, r->prefill, r->syms, in, out);
}

/* prefill of the last of the *T tokens in r->tokens: all of them, or when that fails because the
 * prompt is longer than the cache's budget (RT_ERR_BUDGET: the runtime does not know the budget),
 * the last half, and so on down to one token; *T becomes the count prefilled */
static int prefill_last(Runner *r, int64_t *T)
{
    int rc = run_prefill(r, *T);
    while (rc == RT_ERR_BUDGET && *T > 1) {
        int64_t h = *T / 2;
        memmove(r->tokens, r->tokens + (*T - h), sizeof(int32_t) * (size_t)h);
        *T = h;
        rc = run_prefill(r, h);
    }
    return rc;
}

static int run_decode(Runner *r, int32_t token)
{
    r->syms[r->sym] = 0;
    void *in[1] = {&token}, *out[1] = {r->logits};
    return rt_run_entry(r->inst, r->decode, r->syms, in, out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Draws a token from one row of logits. */
static int sample(const float *row, int64_t V, const TextArgs *a, uint64_t *rng, float *scratch)
{
    if (a->temperature == 0) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (row[i] > row[best])
                best = i;
        return (int)best;
    }
    float cut = -INFINITY;
    if (a->top_k > 0 && a->top_k < V) {
        memcpy(scratch, row, sizeof(float) * (size_t)V);
        qsort(scratch, (size_t)V, sizeof(float), cmp_desc);
        cut = scratch[a->top_k - 1];
    }
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < V; i++)
        if (row[i] >= cut && row[i] > mx)
            mx = row[i];
    for (int64_t i = 0; i < V; i++)
        sum += row[i] >= cut ? exp((row[i] - mx) / a->temperature) : 0;
    double u = (double)(next(rng) >> 11) / 9007199254740992.0 * sum, acc = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < V; i++) {
        if (row[i] < cut)
            continue;
        last = i;
        acc += exp((row[i] - mx) / a->temperature);
        if (u < acc)
            return (int)i;
    }
    return (int)last;
}

static int generate(Runner *r, const TextArgs *a, const int *map)
{
    const RtModel *m = rt_model(r->inst);
    size_t plen = strlen(a->prompt);
    int64_t cap = (int64_t)plen + a->n + 1;
    int32_t *hist = malloc(sizeof(int32_t) * (size_t)cap);
    float *scratch = malloc(sizeof(float) * (size_t)r->V);
    if (!hist || !scratch) {
        free(hist);
        free(scratch);
        text_error(a->prog, "out of memory");
        return 1;
    }
    int64_t len = 0;
    for (size_t i = 0; i < plen; i++) {
        int id = map[(unsigned char)a->prompt[i]];
        if (id < 0) {
            text_error(a->prog, "the prompt's character '%c' (byte 0x%02x) is not in the model's vocabulary",
                       a->prompt[i], (unsigned char)a->prompt[i]);
            free(hist);
            free(scratch);
            return 1;
        }
        hist[len++] = id;
    }
    if (len == 0) /* an empty prompt starts from a newline when the vocabulary has one, else token 0 */
        hist[len++] = map['\n'] >= 0 ? map['\n'] : 0;
    fputs(a->prompt, stdout);
    uint64_t rng = a->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!rng)
        rng = 1;
    double t0 = now_s();
    int cached = 0; /* a KV cache holds every token of hist but the last */
    for (int step = 0; step < a->n; step++) {
        int64_t T = len < r->ctx ? len : r->ctx;
        const float *row = r->logits + (T - 1) * r->V;
        int rc = 1;
        if (r->decode >= 0 && cached) {
            rc = run_decode(r, hist[len - 1]);
            row = r->logits;
            if (rc == RT_ERR_BUDGET || rc == RT_ERR_POSITIONS) { /* the cache, or a learned position table, is
                                                                  * full: prefill the recent half again */
                T = len < r->ctx / 2 ? len : (r->ctx / 2 > 0 ? r->ctx / 2 : 1);
                cached = 0;
            }
        }
        if (!cached) {
            memcpy(r->tokens, hist + len - T, sizeof(int32_t) * (size_t)T);
            rc = r->prefill >= 0 ? prefill_last(r, &T) : run(r, T);
            row = r->logits + (T - 1) * r->V;
            cached = r->decode >= 0 && !rc;
        }
        if (rc) {
            text_error(a->prog, "model '%s' failed to run: %s", m->name, rt_error_message(rc));
            free(hist);
            free(scratch);
            return 1;
        }
        int id = sample(row, r->V, a, &rng, scratch);
        hist[len++] = id;
        fputc(m->vocab[id], stdout);
        fflush(stdout);
    }
    fputc('\n', stdout);
    double dt = now_s() - t0;
    fprintf(stderr, "%s: %d tokens in %.3f s (%.1f tokens/s%s)\n", a->prog, a->n, dt, dt > 0 ? a->n / dt : 0.0,
            r->decode >= 0 ? ", prefill and decode with a KV cache" : ", the model over the last CTX tokens each");
    free(hist);
    free(scratch);
    return 0;
}

/* -log softmax(row)[target] */
static double nll(const float *row, int64_t V, int target)
{
    double mx = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; v++)
        mx = row[v] > mx ? row[v] : mx;
    for (int64_t v = 0; v < V; v++)
        s += exp(row[v] - mx);
    return mx + log(s) - row[target];
}

/* --eval --stream: character 0 prefilled, then every character decoded in turn, each predicting the
 * next; the cache's policy decides what stays in view, so a text far longer than the context is
 * scored as one stream. Where decode fails (policy full, or a learned position table, is full), the
 * last CTX/2 characters are prefilled again, as generation does. */
static int evaluate_stream(Runner *r, const TextArgs *a, const int *map, const unsigned char *text, size_t n)
{
    double total = 0, t0 = now_s();
    int64_t refills = 0;
    r->tokens[0] = map[text[0]];
    int rc = run_prefill(r, 1);
    if (rc) {
        text_error(a->prog, "model '%s' failed to run: %s", rt_model(r->inst)->name, rt_error_message(rc));
        return 1;
    }
    total += nll(r->logits, r->V, map[text[1]]);
    for (size_t i = 1; i + 1 < n; i++) {
        if ((rc = run_decode(r, map[text[i]])) && rc != RT_ERR_BUDGET && rc != RT_ERR_POSITIONS) {
            text_error(a->prog, "model '%s' failed to run: %s", rt_model(r->inst)->name, rt_error_message(rc));
            return 1;
        }
        if (rc) {
            int64_t T = (int64_t)i + 1 < r->ctx / 2 ? (int64_t)i + 1 : (r->ctx / 2 > 0 ? r->ctx / 2 : 1);
            for (int64_t t = 0; t < T; t++)
                r->tokens[t] = map[text[i + 1 - (size_t)T + (size_t)t]];
            refills++;
            if ((rc = prefill_last(r, &T))) {
                text_error(a->prog, "model '%s' failed to run: %s", rt_model(r->inst)->name, rt_error_message(rc));
                return 1;
            }
            total += nll(r->logits + (T - 1) * r->V, r->V, map[text[i + 1]]);
        } else {
            total += nll(r->logits, r->V, map[text[i + 1]]);
        }
    }
    double dt = now_s() - t0, nats = total / (double)(n - 1);
    printf("streamed %zu characters (%zu predicted; %lld prefilled again when the cache was full)\n", n, n - 1,
           (long long)refills);
    printf("%.4f nats/char, %.4f bits/char\n", nats, nats / log(2.0));
    fprintf(stderr, "%s: %zu tokens in %.3f s (%.1f tokens/s)\n", a->prog, n - 1, dt, dt > 0 ? (double)(n - 1) / dt : 0.0);
    return 0;
}

/* --eval --window W: every character i >= 1 predicted from the W characters before it (fewer at the
 * start), the model run over them again for each: StreamingLLM's "sliding window with
 * re-computation", the baseline a KV cache's policy is measured against. n - 1 runs of up to W
 * tokens: slow by design. */
static int evaluate_window(Runner *r, const TextArgs *a, const int *map, const unsigned char *text, size_t n)
{
    double total = 0, t0 = now_s();
    int tty = isatty(2);
    for (size_t i = 1; i < n; i++) {
        int64_t T = (int64_t)i < a->window ? (int64_t)i : a->window;
        for (int64_t t = 0; t < T; t++)
            r->tokens[t] = map[text[i - (size_t)T + (size_t)t]];
        int rc = r->prefill >= 0 ? run_prefill(r, T) : run(r, T);
        if (rc) {
            text_error(a->prog, "model '%s' failed to run: %s", rt_model(r->inst)->name, rt_error_message(rc));
            return 1;
        }
        total += nll(r->logits + (T - 1) * r->V, r->V, map[text[i]]);
        if (tty && i % 256 == 0)
            fprintf(stderr, "\r%s: character %zu of %zu", a->prog, i, n - 1);
    }
    if (tty)
        fputc('\n', stderr);
    double dt = now_s() - t0, nats = total / (double)(n - 1);
    printf("%zu characters, each predicted from the %d before it (%zu predicted)\n", n, a->window, n - 1);
    printf("%.4f nats/char, %.4f bits/char\n", nats, nats / log(2.0));
    fprintf(stderr, "%s: %zu tokens in %.3f s (%.1f tokens/s)\n", a->prog, n - 1, dt, dt > 0 ? (double)(n - 1) / dt : 0.0);
    return 0;
}

static int evaluate(Runner *r, const TextArgs *a, const int *map)
{
    FILE *f = fopen(a->eval, "rb");
    if (!f) {
        text_error(a->prog, "cannot open '%s'", a->eval);
        return 1;
    }
    size_t cap = 1 << 20, n = 0, k;
    unsigned char *text = malloc(cap);
    while (text && (k = fread(text + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            unsigned char *t = realloc(text, cap *= 2);
            if (!t) {
                free(text);
                text = NULL;
            } else
                text = t;
        }
    }
    fclose(f);
    if (!text) {
        text_error(a->prog, "out of memory reading '%s'", a->eval);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (map[text[i]] < 0) {
            text_error(a->prog, "%s: the character at offset %zu (byte 0x%02x) is not in the model's vocabulary",
                       a->eval, i, text[i]);
            free(text);
            return 1;
        }
    if (a->window > r->ctx) {
        text_error(a->prog, "--window %d is longer than the model's context of %lld", a->window, (long long)r->ctx);
        free(text);
        return 1;
    }
    if (a->stream || a->window) {
        int st = n < 2 ? 1 : a->stream ? evaluate_stream(r, a, map, text, n) : evaluate_window(r, a, map, text, n);
        if (n < 2)
            text_error(a->prog, "%s: fewer than 2 characters to score", a->eval);
        free(text);
        return st;
    }
    int64_t ctx = r->ctx, nwin = n > 0 ? (int64_t)(n - 1) / ctx : 0;
    if (nwin < 1) {
        text_error(a->prog, "%s: %zu characters are fewer than one window of %lld + 1", a->eval, n, (long long)ctx);
        free(text);
        return 1;
    }
    int tty = isatty(2);
    double total = 0;
    for (int64_t w = 0; w < nwin; w++) {
        for (int64_t t = 0; t < ctx; t++)
            r->tokens[t] = map[text[w * ctx + t]];
        int rc = run(r, ctx);
        if (rc) {
            text_error(a->prog, "model '%s' failed to run: %s", rt_model(r->inst)->name, rt_error_message(rc));
            free(text);
            return 1;
        }
        for (int64_t t = 0; t < ctx; t++)
            total += nll(r->logits + t * r->V, r->V, map[text[w * ctx + t + 1]]);
        if (tty)
            fprintf(stderr, "\r%s: window %lld of %lld", a->prog, (long long)w + 1, (long long)nwin);
    }
    if (tty)
        fputc('\n', stderr);
    double nats = total / (double)(nwin * ctx);
    printf("%lld windows of %lld characters (%lld predicted)\n", (long long)nwin, (long long)ctx,
           (long long)(nwin * ctx));
    printf("%.4f nats/char, %.4f bits/char\n", nats, nats / log(2.0));
    free(text);
    return 0;
}

int rt_text_main(const RtModel *m, int argc, char **argv)
{
    TextArgs a;
    int st = parse(m, argc, argv, &a);
    if (st)
        return st;
    Runner r = {.nsym = m->nsyms, .prefill = -1, .decode = -1};
    if (m->nsyms > 16) {
        text_error(a.prog, "model '%s' has too many symbolic sizes for text mode", m->name);
        return 1;
    }
    if (check_signature(m, a.prog, &r.sym, &r.ctx))
        return 1;
    r.V = (int64_t)strlen(m->vocab);
    if (rt_entry_index(m, "prefill") >= 0 && rt_entry_index(m, "decode") >= 0) {
        r.prefill = rt_entry_index(m, "prefill");
        r.decode = rt_entry_index(m, "decode");
    }
    int map[256];
    for (int i = 0; i < 256; i++)
        map[i] = -1;
    for (int64_t i = r.V - 1; i >= 0; i--)
        map[(unsigned char)m->vocab[i]] = (int)i;
    char err[512];
    char beside[4096];
    r.inst = rt_open(m, rt_weights_beside(m, a.weights, beside, sizeof beside), a.threads, err, sizeof err);
    if (!r.inst) {
        text_error(a.prog, "%s", err);
        return 1;
    }
    r.tokens = calloc((size_t)r.ctx, sizeof(int32_t));
    r.logits = aligned_alloc(64, ((size_t)(r.ctx * r.V) * sizeof(float) + 63) / 64 * 64);
    if (!r.tokens || !r.logits) {
        text_error(a.prog, "out of memory");
        st = 1;
    } else
        st = a.eval ? evaluate(&r, &a, map) : generate(&r, &a, map);
    free(r.tokens);
    free(r.logits);
    rt_close(r.inst);
    return st;
}
