/* llama.cpp as a benchmark peer: times prefill and decode of a GGUF model through llama.cpp's C API,
 * and writes its logits for a given token sequence (for the agreement check against kiln and PyTorch).
 *
 *   llama_peer --lib DIR --model FILE.gguf --threads T [--prefill 128,512] [--decode 128,1024]
 *              [--runs N] [--steps N] [--poll P] [--logits TOKENS.i32 --logits-out LOGITS.f32]
 *              [--eval TOKENS.i32 --window W] [--verbose]
 *
 * DIR holds llama.cpp's shared libraries (npm's @node-llama-cpp/linux-x64 ships them, with one CPU
 * backend library per x86 level: ggml_backend_load_all_from_path picks the best one this CPU runs).
 * The weights are read into memory (load mode NONE, not mmap): llama.cpp's default of mapping the file
 * was several times slower for large files in earlier measurements here, and the peer is measured at
 * its best. Tokens are ids fed directly (no tokenizer): a fixed pseudo-random sequence over [3, V).
 * One ggml thread pool of T threads is made and attached to the context, as llama-bench and llama.cpp's
 * tools do (without one, ggml makes a pool per graph); --poll sets how long its idle threads spin
 * before sleeping (ggml's polling level, 0-100; 50, ggml's default, unless given): spinning is fastest
 * on an idle machine, not when other processes want the cores.
 *
 * - prefill N: the KV cache cleared, one llama_decode of N tokens (one batch, logits of the last token
 *   only, as an application generating text asks for), llama_synchronize; one warm-up, then N runs
 *   (--runs), median and min.
 * - decode after N: N tokens prefilled (not timed), then --steps times: one llama_decode of one token
 *   at position N, llama_synchronize, and the token removed again from the cache, so that every step
 *   attends to exactly N cached tokens; one warm-up step; median and min.
 * - logits: every position's logits of the tokens in TOKENS.i32 (raw little-endian int32), written as
 *   raw float32 [T, V].
 * - eval: the held-out loss of a text's token ids as kiln's `--eval` computes it (runtime/text.c):
 *   non-overlapping windows of W tokens, window w the tokens wW..wW+W-1, each from an empty cache in
 *   one llama_decode with every position's logits, predicting tokens wW+1..wW+W; the mean of
 *   -log softmax(logits)[next] in double over the floor((T - 1) / W) windows, as nats per token.
 * Every result is one JSON line on stdout; errors are a sentence on stderr and exit status 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <llama.h>
#include <ggml-backend.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int verbose;

static void log_cb(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (verbose || level >= GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

static bool quiet_progress(float p, void *ud)
{
    (void)p;
    (void)ud;
    return true;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1) {
            fprintf(stderr, "llama_peer: bad number list '%s'\n", s);
            exit(2);
        }
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* One sequence's tokens at positions pos0.., logits requested for all or for the last only. */
static int decode(struct llama_context *ctx, const llama_token *tok, int n, int pos0, int all_logits)
{
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = tok[i];
        b.pos[i] = pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = all_logits || i == n - 1;
    }
    b.n_tokens = n;
    int rc = llama_decode(ctx, b);
    llama_synchronize(ctx);
    llama_batch_free(b);
    return rc;
}

/* The int32 token ids of a file, each checked against the vocabulary; NULL after an error (said). */
static llama_token *read_tokens(const char *path, int V, int *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "llama_peer: cannot open the token file %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    int T = (int)(sz / 4);
    llama_token *tok = malloc((size_t)(T > 0 ? T : 1) * sizeof *tok);
    if (!tok || T < 1 || sz % 4 || fread(tok, 4, (size_t)T, f) != (size_t)T) {
        fprintf(stderr, "llama_peer: %s: expected int32 token ids, got %ld bytes\n", path, sz);
        fclose(f);
        free(tok);
        return NULL;
    }
    fclose(f);
    for (int i = 0; i < T; i++)
        if (tok[i] < 0 || tok[i] >= V) {
            fprintf(stderr, "llama_peer: %s: token %d at position %d is outside the vocabulary [0, %d)\n", path,
                    tok[i], i, V);
            free(tok);
            return NULL;
        }
    *count = T;
    return tok;
}

int main(int argc, char **argv)
{
    const char *lib = NULL, *model_path = NULL, *logits_in = NULL, *logits_out = NULL, *eval_in = NULL;
    int threads = 1, runs = 5, steps = 16, poll = 50, window = 0;
    int prefill[8], decodes[8], np = 0, nd = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            verbose = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "llama_peer: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--lib"))
            lib = v;
        else if (!strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--runs"))
            runs = atoi(v);
        else if (!strcmp(a, "--poll"))
            poll = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--prefill"))
            np = parse_list(v, prefill, 8);
        else if (!strcmp(a, "--decode"))
            nd = parse_list(v, decodes, 8);
        else if (!strcmp(a, "--logits"))
            logits_in = v;
        else if (!strcmp(a, "--logits-out"))
            logits_out = v;
        else if (!strcmp(a, "--eval"))
            eval_in = v;
        else if (!strcmp(a, "--window"))
            window = atoi(v);
        else {
            fprintf(stderr, "llama_peer: unknown option %s\n", a);
            return 2;
        }
    }
    if (!lib || !model_path || threads < 1 || runs < 1 || steps < 1 || (!logits_in != !logits_out) ||
        (!eval_in != (window < 1))) {
        fprintf(stderr, "usage: llama_peer --lib DIR --model FILE.gguf --threads T [--prefill 128,512] "
                        "[--decode 128,1024] [--runs N] [--steps N] [--logits TOKENS.i32 --logits-out OUT.f32] "
                        "[--eval TOKENS.i32 --window W]\n");
        return 2;
    }

    llama_log_set(log_cb, NULL);
    ggml_backend_load_all_from_path(lib);
    if (ggml_backend_dev_count() == 0) {
        fprintf(stderr, "llama_peer: no ggml backend could be loaded from %s\n", lib);
        return 1;
    }
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.load_mode = LLAMA_LOAD_MODE_NONE; /* read into memory, not mapped */
    mp.lazy_mode = LLAMA_LAZY_MODE_OFF;
    mp.progress_callback = quiet_progress; /* its default prints dots */
    double t0 = now_ms();
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "llama_peer: llama.cpp could not load %s (run with --verbose for its log)\n", model_path);
        return 1;
    }
    double load_ms = now_ms() - t0;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int V = llama_vocab_n_tokens(vocab);

    /* the longest sequence asked for sets the context */
    int need = 1, T_logits = 0;
    for (int i = 0; i < np; i++)
        need = prefill[i] > need ? prefill[i] : need;
    for (int i = 0; i < nd; i++)
        need = decodes[i] + 1 > need ? decodes[i] + 1 : need;
    llama_token *ltok = NULL, *etok = NULL;
    int T_eval = 0;
    if (logits_in) {
        if (!(ltok = read_tokens(logits_in, V, &T_logits)))
            return 1;
        need = T_logits > need ? T_logits : need;
    }
    if (eval_in) {
        if (!(etok = read_tokens(eval_in, V, &T_eval)))
            return 1;
        if (T_eval < window + 1) {
            fprintf(stderr, "llama_peer: %s: %d tokens are fewer than one window of %d + 1\n", eval_in, T_eval, window);
            return 1;
        }
        need = window > need ? window : need;
    }
    int max_batch = 1;
    for (int i = 0; i < np; i++)
        max_batch = prefill[i] > max_batch ? prefill[i] : max_batch;
    for (int i = 0; i < nd; i++)
        max_batch = decodes[i] > max_batch ? decodes[i] : max_batch;
    max_batch = T_logits > max_batch ? T_logits : max_batch;
    max_batch = eval_in && window > max_batch ? window : max_batch;

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)((need + 255) / 256 * 256);
    cp.n_batch = (uint32_t)max_batch;
    cp.n_ubatch = (uint32_t)(max_batch < 512 ? max_batch : 512);
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama_peer: llama.cpp could not create a context of %u tokens\n", cp.n_ctx);
        return 1;
    }
    llama_memory_t mem = llama_get_memory(ctx);

    /* the CPU backend is a library loaded at run time: its thread pool functions by name */
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu ? ggml_backend_dev_backend_reg(cpu) : NULL;
    typedef struct ggml_threadpool *(*tp_new_fn)(struct ggml_threadpool_params *);
    typedef void (*tp_free_fn)(struct ggml_threadpool *);
    tp_new_fn tp_new = reg ? (tp_new_fn)ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new") : NULL;
    tp_free_fn tp_free = reg ? (tp_free_fn)ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free") : NULL;
    if (!tp_new || !tp_free) {
        fprintf(stderr, "llama_peer: the CPU backend does not export ggml_threadpool_new/free\n");
        return 1;
    }
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
    tpp.poll = (uint32_t)(poll < 0 ? 0 : poll > 100 ? 100 : poll);
    struct ggml_threadpool *pool = tp_new(&tpp);
    if (!pool) {
        fprintf(stderr, "llama_peer: could not make a thread pool of %d threads\n", threads);
        return 1;
    }
    llama_attach_threadpool(ctx, pool, pool);

    char desc[256];
    llama_model_desc(model, desc, sizeof desc);
    const char *sys = llama_print_system_info();
    printf("{\"what\": \"model\", \"desc\": \"%s\", \"params\": %llu, \"bytes\": %llu, \"vocab\": %d, "
           "\"load_ms\": %.1f, \"n_ctx\": %u, \"n_ubatch\": %u, \"threads\": %d, \"poll\": %u, \"system\": \"",
           desc, (unsigned long long)llama_model_n_params(model), (unsigned long long)llama_model_size(model), V,
           load_ms, cp.n_ctx, cp.n_ubatch, threads, tpp.poll);
    for (const char *c = sys; *c; c++)
        if (*c != '"' && *c != '\\' && *c != '\n')
            putchar(*c);
    printf("\"}\n");
    fflush(stdout);

    /* a fixed token sequence over [3, V): an LCG, the same in every run */
    llama_token *tok = malloc((size_t)need * sizeof *tok);
    uint64_t s = 12345;
    for (int i = 0; i < need; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = V > 3 ? 3 + (llama_token)((s >> 33) % (uint64_t)(V - 3)) : 0;
    }

    double *ms = malloc((size_t)(runs > steps ? runs : steps) * sizeof *ms);
    for (int p = 0; p < np; p++) {
        int n = prefill[p];
        for (int r = -1; r < runs; r++) {
            llama_memory_clear(mem, true);
            double a = now_ms();
            if (decode(ctx, tok, n, 0, 0)) {
                fprintf(stderr, "llama_peer: llama_decode of %d tokens failed\n", n);
                return 1;
            }
            if (r >= 0)
                ms[r] = now_ms() - a;
        }
        double mn = ms[0];
        for (int r = 1; r < runs; r++)
            mn = ms[r] < mn ? ms[r] : mn;
        printf("{\"what\": \"prefill\", \"tokens\": %d, \"threads\": %d, \"runs\": %d, \"median_ms\": %.3f, "
               "\"min_ms\": %.3f}\n", n, threads, runs, median(ms, runs), mn);
        fflush(stdout);
    }
    for (int d = 0; d < nd; d++) {
        int n = decodes[d];
        llama_memory_clear(mem, true);
        if (decode(ctx, tok, n, 0, 0)) {
            fprintf(stderr, "llama_peer: llama_decode of %d tokens failed\n", n);
            return 1;
        }
        for (int r = -1; r < steps; r++) {
            double a = now_ms();
            if (decode(ctx, tok + n, 1, n, 1)) {
                fprintf(stderr, "llama_peer: llama_decode of one token at position %d failed\n", n);
                return 1;
            }
            if (r >= 0)
                ms[r] = now_ms() - a;
            if (!llama_memory_seq_rm(mem, 0, n, -1)) {
                fprintf(stderr, "llama_peer: the KV cache would not drop position %d\n", n);
                return 1;
            }
        }
        double mn = ms[0];
        for (int r = 1; r < steps; r++)
            mn = ms[r] < mn ? ms[r] : mn;
        printf("{\"what\": \"decode\", \"cached\": %d, \"threads\": %d, \"steps\": %d, \"median_ms\": %.3f, "
               "\"min_ms\": %.3f}\n", n, threads, steps, median(ms, steps), mn);
        fflush(stdout);
    }
    if (logits_in) {
        llama_memory_clear(mem, true);
        if (decode(ctx, ltok, T_logits, 0, 1)) {
            fprintf(stderr, "llama_peer: llama_decode of the %d tokens of %s failed\n", T_logits, logits_in);
            return 1;
        }
        FILE *f = fopen(logits_out, "wb");
        if (!f) {
            fprintf(stderr, "llama_peer: cannot write %s\n", logits_out);
            return 1;
        }
        for (int i = 0; i < T_logits; i++) {
            const float *l = llama_get_logits_ith(ctx, i);
            if (!l || fwrite(l, sizeof *l, (size_t)V, f) != (size_t)V) {
                fprintf(stderr, "llama_peer: no logits for position %d (or %s not writable)\n", i, logits_out);
                return 1;
            }
        }
        fclose(f);
        printf("{\"what\": \"logits\", \"tokens\": %d, \"vocab\": %d, \"out\": \"%s\"}\n", T_logits, V, logits_out);
    }
    if (eval_in) {
        int nwin = (T_eval - 1) / window;
        double total = 0;
        for (int w = 0; w < nwin; w++) {
            llama_memory_clear(mem, true);
            if (decode(ctx, etok + (size_t)w * window, window, 0, 1)) {
                fprintf(stderr, "llama_peer: llama_decode of window %d of %s failed\n", w, eval_in);
                return 1;
            }
            for (int t = 0; t < window; t++) {
                const float *l = llama_get_logits_ith(ctx, t);
                if (!l) {
                    fprintf(stderr, "llama_peer: no logits for position %d of window %d\n", t, w);
                    return 1;
                }
                double mx = -1e300, sum = 0;
                for (int v = 0; v < V; v++)
                    mx = l[v] > mx ? l[v] : mx;
                for (int v = 0; v < V; v++)
                    sum += exp(l[v] - mx);
                total += mx + log(sum) - l[etok[(size_t)w * window + t + 1]];
            }
        }
        printf("{\"what\": \"eval\", \"windows\": %d, \"window\": %d, \"predicted\": %lld, "
               "\"nats_per_token\": %.6f}\n", nwin, window, (long long)nwin * window, total / ((double)nwin * window));
    }
    free(ms);
    free(tok);
    free(ltok);
    free(etok);
    llama_detach_threadpool(ctx);
    llama_free(ctx);
    tp_free(pool);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
