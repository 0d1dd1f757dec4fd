/* test_runtime.c: unit tests for runtime/pool.c, runtime/model.c and runtime/main.c, without the
 * compiler.
 *
 * The models are written by hand here as the compiler would emit them: "axpy" (z = 2*x + y + w[0:T],
 * T <= 64, through the activation arena, with two rt_parallel_for calls per run), "shapes" (static,
 * scaled and offset dimensions and two symbols, for rt_bind and rt_output_shape) and "types" (an
 * output of every dtype, for rt_main's printing). Checked:
 *   - rt_parallel_for covers every index exactly once, in at most one chunk per thread, for every
 *     n in {0, 1, 2, 3, 7, 1000} and pool size in {NULL, 1, 2, 3, 8}, many times over;
 *   - rt_default_threads follows KILN_THREADS when it is valid;
 *   - rt_bind's success and each of its errors, and rt_output_shape;
 *   - rt_open with embedded weights, with weights files written here (valid, bad magic, shorter
 *     than the header, truncated, hash mismatch, size mismatch, missing, a directory), ABI mismatch;
 *   - rt_run's results, and two instances in two threads running 1000 times each at once giving
 *     exactly what each gives alone;
 *   - rt_main end to end, with its stdout and stderr captured: outputs written and printed, --bench,
 *     --help, and every kind of usage and input error with its exit status.
 * Files go to a fresh directory under /tmp, removed at the end. Exits non-zero at the first failure.
 */
#include "check.h"
#include "runtime/kiln_rt.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* err must contain want */
#define CHECK_HAS(err, want)                                                                   \
    do {                                                                                       \
        if (!strstr((err), (want))) {                                                          \
            fprintf(stderr, "%s:%d: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (err), (want)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static char tmpdir[64];
static char paths[64][128]; /* every file made, to remove at the end */
static int npaths;

static const char *tmp_path(const char *name)
{
    for (int i = 0; i < npaths; i++)
        if (!strcmp(strrchr(paths[i], '/') + 1, name))
            return paths[i];
    REQUIRE(npaths < 64);
    snprintf(paths[npaths], sizeof paths[npaths], "%s/%s", tmpdir, name);
    return paths[npaths++];
}

/* ---------------------------------------------------------------- the axpy model */

enum { AXPY_T = 64 };
static const uint64_t axpy_hash = 0x6b696c6e61787079ull;
static _Alignas(64) float axpy_weights[AXPY_T]; /* w[i] = 0.5 * i, set in main */

typedef struct AxpyCtx {
    const float *x, *y, *w;
    float *tmp, *z;
} AxpyCtx;

static void axpy_scale(void *ctx, int64_t b, int64_t e)
{
    AxpyCtx *c = ctx;
    for (int64_t i = b; i < e; i++)
        c->tmp[i] = 2 * c->x[i];
}

static void axpy_add(void *ctx, int64_t b, int64_t e)
{
    AxpyCtx *c = ctx;
    for (int64_t i = b; i < e; i++)
        c->z[i] = c->tmp[i] + c->y[i] + c->w[i];
}

static int axpy_run(const void *weights, void *activations, const int64_t *syms,
                    void *const *inputs, void *const *outputs, RtPool *pool)
{
    REQUIRE(((uintptr_t)weights & 63) == 0 && ((uintptr_t)activations & 63) == 0);
    AxpyCtx c = {inputs[0], inputs[1], weights, activations, outputs[0]};
    rt_parallel_for(pool, syms[0], axpy_scale, &c);
    rt_parallel_for(pool, syms[0], axpy_add, &c);
    return 0;
}

static const RtSymDesc axpy_syms[] = {{"T", AXPY_T}};
static const RtTensorDesc axpy_inputs[] = {
    {"x", RT_F32, 1, {{1, {0}, {1}, 0}}},
    {"y", RT_F32, 1, {{1, {0}, {1}, 0}}},
};
static const RtTensorDesc axpy_outputs[] = {{"z", RT_F32, 1, {{1, {0}, {1}, 0}}}};
static const RtModel axpy_model = {
    RT_ABI_VERSION, "axpy", 2, 1, 1, axpy_inputs, axpy_outputs, axpy_syms,
    sizeof axpy_weights, AXPY_T * sizeof(float), axpy_hash, axpy_weights, axpy_run, NULL, 0, NULL, 0, NULL, 0, 0,
};

static void axpy_expect(int64_t t, const float *x, const float *y, float *z)
{
    for (int64_t i = 0; i < t; i++)
        z[i] = 2 * x[i] + y[i] + axpy_weights[i];
}

/* ---------------------------------------------------------------- the shapes model */

static int nop_run(const void *weights, void *activations, const int64_t *syms,
                   void *const *inputs, void *const *outputs, RtPool *pool)
{
    return 0;
}

/* a: f32[T, 3], b: f32[2*T+1], c: i32[S, 4]; o: f32[S, 2*T-1, 5] */
static const RtSymDesc shapes_syms[] = {{"T", 8}, {"S", 4}};
static const RtTensorDesc shapes_inputs[] = {
    {"a", RT_F32, 2, {{1, {0}, {1}, 0}, {0, {0}, {0}, 3}}},
    {"b", RT_F32, 1, {{1, {0}, {2}, 1}}},
    {"c", RT_I32, 2, {{1, {1}, {1}, 0}, {0, {0}, {0}, 4}}},
};
static const RtTensorDesc shapes_outputs[] = {{"o", RT_F32, 3, {{1, {1}, {1}, 0}, {1, {0}, {2}, -1}, {0, {0}, {0}, 5}}}};
static const RtModel shapes_model = {
    RT_ABI_VERSION, "shapes", 3, 1, 2, shapes_inputs, shapes_outputs, shapes_syms,
    0, 0, 1, NULL, nop_run, NULL, 0, NULL, 0, NULL, 0, 0,
};

/* ---------------------------------------------------------------- rt_parallel_for */

typedef struct CoverCtx {
    atomic_int *count; /* (n) */
    atomic_int calls;
    int64_t n;
} CoverCtx;

static void cover(void *ctx, int64_t b, int64_t e)
{
    CoverCtx *c = ctx;
    REQUIRE(0 <= b && b < e && e <= c->n);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add_explicit(&c->count[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
}

static void test_parallel_for(void)
{
    static const int64_t ns[] = {0, 1, 2, 3, 7, 1000};
    static const int sizes[] = {0, 1, 2, 3, 8}; /* 0: a NULL pool */
    static atomic_int count[1000];
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        RtPool *p = sizes[s] ? rt_pool_new(sizes[s]) : NULL;
        REQUIRE(!sizes[s] || p);
        int threads = sizes[s] ? sizes[s] : 1;
        REQUIRE(rt_pool_size(p) == threads);
        for (int rep = 0; rep < 50; rep++)
            for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
                CoverCtx c = {count, 0, ns[k]};
                for (int64_t i = 0; i < ns[k]; i++)
                    atomic_store(&count[i], 0);
                rt_parallel_for(p, ns[k], cover, &c);
                for (int64_t i = 0; i < ns[k]; i++)
                    REQUIRE(atomic_load(&count[i]) == 1);
                int64_t want = ns[k] < threads ? ns[k] : threads;
                REQUIRE(atomic_load(&c.calls) == want);
            }
        rt_pool_free(p);
    }
    rt_pool_free(NULL);
    /* n <= 1 and odd sizes: nothing to create */
    RtPool *p = rt_pool_new(0);
    REQUIRE(p && rt_pool_size(p) == 1);
    rt_pool_free(p);
    p = rt_pool_new(-5);
    REQUIRE(p && rt_pool_size(p) == 1);
    rt_pool_free(p);
    /* a pool freed right after creation, before any job */
    rt_pool_free(rt_pool_new(4));
}

static void test_default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    REQUIRE(setenv("KILN_THREADS", "3", 1) == 0);
    REQUIRE(rt_default_threads() == 3);
    static const char *const bad[] = {"0", "-2", "abc", "4x", "", "100000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        REQUIRE(setenv("KILN_THREADS", bad[i], 1) == 0);
        REQUIRE(rt_default_threads() == (cpus < 1 ? 1 : cpus));
    }
    REQUIRE(unsetenv("KILN_THREADS") == 0);
    REQUIRE(rt_default_threads() == (cpus < 1 ? 1 : cpus));
}

/* ---------------------------------------------------------------- rt_bind, rt_output_shape */

static void bind_error(const int64_t *a, const int64_t *b, const int64_t *c, const char *want)
{
    const int64_t *shapes[3] = {a, b, c};
    int64_t syms[2];
    char err[256] = "";
    REQUIRE(rt_bind(&shapes_model, shapes, syms, err, sizeof err) == -1);
    if (strcmp(err, want) != 0) {
        fprintf(stderr, "test_runtime: rt_bind said \"%s\", expected \"%s\"\n", err, want);
        exit(1);
    }
}

static void test_bind(void)
{
    int64_t a[2] = {4, 3}, b[1] = {9}, c[2] = {2, 4}, syms[2] = {-7, -7};
    const int64_t *shapes[3] = {a, b, c};
    char err[256] = "";
    REQUIRE(rt_bind(&shapes_model, shapes, syms, err, sizeof err) == 0);
    REQUIRE(syms[0] == 4 && syms[1] == 2);
    int64_t o[3];
    rt_output_shape(&shapes_model, 0, syms, o);
    REQUIRE(o[0] == 2 && o[1] == 7 && o[2] == 5);

    /* at the bounds */
    int64_t a8[2] = {8, 3}, b8[1] = {17}, c4[2] = {4, 4};
    const int64_t *top[3] = {a8, b8, c4};
    REQUIRE(rt_bind(&shapes_model, top, syms, err, sizeof err) == 0);
    REQUIRE(syms[0] == 8 && syms[1] == 4);
    rt_output_shape(&shapes_model, 0, syms, o);
    REQUIRE(o[0] == 4 && o[1] == 15 && o[2] == 5);

    /* a static dimension */
    bind_error((int64_t[]){4, 4}, b, c, "input 'a': expected shape [T, 3], got [4, 4]");
    bind_error(a, b, (int64_t[]){2, 5}, "input 'c': expected shape [S, 4], got [2, 5]");
    /* a bound */
    bind_error((int64_t[]){9, 3}, b, c, "input 'a': dimension 0 is 9 but T <= 8");
    bind_error(a, b, (int64_t[]){5, 4}, "input 'c': dimension 0 is 5 but S <= 4");
    bind_error(a8, (int64_t[]){19}, c,
               "input 'b': dimension 0 is 19 (2*T+1), so T = 9, but T <= 8");
    /* below 1 */
    bind_error((int64_t[]){0, 3}, b, c, "input 'a': dimension 0 is 0 but T must be at least 1 (a symbolic size is never 0); an ONNX "
                                           "model imported with --bound T=0 leaves out the inputs it empties");
    bind_error((int64_t[]){1, 3}, (int64_t[]){1}, c,
               "input 'b': dimension 0 is 1 (2*T+1), so T = 0, but T must be at least 1");
    /* inconsistent */
    bind_error(a, (int64_t[]){11}, c,
               "input 'b': dimension 0 is 11 (2*T+1), so T = 5, but input 'a' gives T = 4");
    /* not of the form a*T+b */
    bind_error(a, (int64_t[]){10}, c,
               "input 'b': dimension 0 is 10 but must be 2*T+1 for a whole number T");

    /* the error buffer may be NULL */
    int64_t bad[2] = {4, 4};
    const int64_t *badshapes[3] = {bad, b, c};
    REQUIRE(rt_bind(&shapes_model, badshapes, syms, NULL, 0) == -1);

    /* a symbol no input determines is the compiler's bug, reported as such */
    RtModel m = shapes_model;
    m.ninputs = 2;
    REQUIRE(rt_bind(&m, shapes, syms, err, sizeof err) == -1);
    CHECK_HAS(err, "'S' is in no input's shape on its own");
}

/* p: f32[P], x: f32[T, 2], y: f32[P+T, 2]; o: f32[P+T-1]: a dim of two symbols is checked, not bound */
static const RtSymDesc sums_syms[] = {{"P", 8}, {"T", 8}};
static const RtTensorDesc sums_inputs[] = {
    {"p", RT_F32, 1, {{1, {0}, {1}, 0}}},
    {"x", RT_F32, 2, {{1, {1}, {1}, 0}, {0, {0}, {0}, 2}}},
    {"y", RT_F32, 2, {{2, {0, 1}, {1, 1}, 0}, {0, {0}, {0}, 2}}},
};
static const RtTensorDesc sums_outputs[] = {{"o", RT_F32, 1, {{2, {0, 1}, {1, 1}, -1}}}};
static const RtModel sums_model = {
    RT_ABI_VERSION, "sums", 3, 1, 2, sums_inputs, sums_outputs, sums_syms, 0, 0, 1, NULL, nop_run, NULL, 0, NULL, 0, NULL, 0, 0,
};

static void test_bind_sums(void)
{
    int64_t p[1] = {3}, x[2] = {5, 2}, y[2] = {8, 2}, syms[2], o[1];
    const int64_t *shapes[3] = {p, x, y};
    char err[256] = "", want[256];
    REQUIRE(rt_bind(&sums_model, shapes, syms, err, sizeof err) == 0);
    REQUIRE(syms[0] == 3 && syms[1] == 5);
    rt_output_shape(&sums_model, 0, syms, o);
    REQUIRE(o[0] == 7);
    REQUIRE(rt_dim_value(&sums_outputs[0].dims[0], syms) == 7);
    rt_shape_desc(&sums_model, &sums_inputs[2], want, sizeof want);
    REQUIRE(!strcmp(want, "[P+T, 2]"));

    y[0] = 9; /* P+T is 8 */
    REQUIRE(rt_bind(&sums_model, shapes, syms, err, sizeof err) == -1);
    REQUIRE(!strcmp(err, "input 'y': dimension 0 is 9 but P+T = 8 (P = 3, T = 5)"));

    /* P given by no input alone: the compiler's bug, reported as such */
    RtModel m = sums_model;
    m.inputs = sums_inputs + 1, m.ninputs = 2;
    const int64_t *xy[2] = {x, y};
    REQUIRE(rt_bind(&m, xy, syms, err, sizeof err) == -1);
    CHECK_HAS(err, "'P' is in no input's shape on its own");

    /* a malformed descriptor: too many terms, a symbol out of range */
    RtTensorDesc bad[3];
    memcpy(bad, sums_inputs, sizeof bad);
    m = sums_model;
    m.inputs = bad;
    bad[2].dims[0].n = RT_DIM_TERMS + 1;
    y[0] = 8;
    REQUIRE(rt_bind(&m, shapes, syms, err, sizeof err) == -1);
    CHECK_HAS(err, "is malformed");
    bad[2].dims[0].n = 2, bad[2].dims[0].sym[1] = 2;
    REQUIRE(rt_bind(&m, shapes, syms, err, sizeof err) == -1);
    CHECK_HAS(err, "is malformed");
}

/* ---------------------------------------------------------------- rt_open, rt_run */

static void write_weights(const char *path, const char *magic, uint64_t hash, uint64_t bytes,
                          size_t have)
{
    unsigned char head[64] = {0};
    RtWeightsHeader h;
    memcpy(h.magic, magic, 8);
    h.hash = hash;
    h.bytes = bytes;
    memcpy(head, &h, sizeof h);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(head, 1, 64, f) == 64);
    for (size_t i = 0; i < have; i++) /* the weights, then zeros */
        REQUIRE(fputc(i < sizeof axpy_weights ? ((const unsigned char *)axpy_weights)[i] : 0, f) !=
              EOF);
    REQUIRE(fclose(f) == 0);
}

static void open_error(const RtModel *m, const char *path, const char *want1, const char *want2)
{
    char err[512] = "";
    REQUIRE(rt_open(m, path, 1, err, sizeof err) == NULL);
    if (path)
        CHECK_HAS(err, path);
    CHECK_HAS(err, want1);
    if (want2)
        CHECK_HAS(err, want2);
}

/* Runs inst on inputs of length t and checks the result against axpy_expect. */
static void run_axpy(RtInstance *inst, int64_t t, const float *x, const float *y)
{
    float z[AXPY_T + 1], want[AXPY_T];
    z[t] = 12345;
    axpy_expect(t, x, y, want);
    void *in[2] = {(void *)x, (void *)y}, *out[1] = {z};
    int64_t syms[1] = {t};
    REQUIRE(rt_run(inst, syms, in, out) == 0);
    REQUIRE(!memcmp(z, want, (size_t)t * sizeof *z));
    REQUIRE(z[t] == 12345);
}

static void test_open_run(void)
{
    float x[AXPY_T], y[AXPY_T];
    for (int i = 0; i < AXPY_T; i++)
        x[i] = (float)i - 7.25f, y[i] = 1.0f / (float)(i + 1);
    char err[512] = "";

    /* embedded weights, over several pool sizes and lengths */
    for (int threads = 0; threads <= 3; threads++) {
        RtInstance *inst = rt_open(&axpy_model, NULL, threads, err, sizeof err);
        if (!inst) {
            fprintf(stderr, "test_runtime: rt_open: %s\n", err);
            exit(1);
        }
        REQUIRE(rt_model(inst) == &axpy_model);
        for (int64_t t = 1; t <= AXPY_T; t++)
            run_axpy(inst, t, x, y);
        rt_close(inst);
    }
    rt_close(NULL);

    /* an external weights file */
    RtModel ext = axpy_model;
    ext.embedded_weights = NULL;
    open_error(&ext, NULL,
               "this program was built with external weights and PROGRAM.weights is not beside it: "
               "pass --weights FILE",
               NULL);
    const char *good = tmp_path("good.weights");
    write_weights(good, "KILNWTS1", axpy_hash, sizeof axpy_weights, sizeof axpy_weights);
    RtInstance *inst = rt_open(&ext, good, 2, err, sizeof err);
    if (!inst) {
        fprintf(stderr, "test_runtime: rt_open %s: %s\n", good, err);
        exit(1);
    }
    run_axpy(inst, 64, x, y);
    run_axpy(inst, 5, x, y);
    rt_close(inst);
    /* a file also overrides embedded weights; a longer file is accepted */
    const char *longer = tmp_path("longer.weights");
    write_weights(longer, "KILNWTS1", axpy_hash, sizeof axpy_weights - 8, sizeof axpy_weights);
    RtModel shorter = axpy_model;
    shorter.weights_bytes -= 8;
    inst = rt_open(&shorter, longer, 1, err, sizeof err);
    REQUIRE(inst);
    run_axpy(inst, 3, x, y);
    rt_close(inst);

    const char *p = tmp_path("magic.weights");
    write_weights(p, "KILNWTS0", axpy_hash, sizeof axpy_weights, sizeof axpy_weights);
    open_error(&ext, p, "not a kiln weights file", "KILNWTS1");
    p = tmp_path("trunc.weights");
    write_weights(p, "KILNWTS1", axpy_hash, sizeof axpy_weights, sizeof axpy_weights - 1);
    open_error(&ext, p, "file is truncated", "255");
    p = tmp_path("tiny.weights");
    FILE *f = fopen(p, "wb");
    REQUIRE(f && fwrite("KILNWTS1", 1, 8, f) == 8 && fclose(f) == 0);
    open_error(&ext, p, "file is truncated", "64-byte header");
    p = tmp_path("hash.weights");
    write_weights(p, "KILNWTS1", axpy_hash ^ 1, sizeof axpy_weights, sizeof axpy_weights);
    open_error(&ext, p, "was written for another build of model 'axpy' (hash mismatch", NULL);
    p = tmp_path("size.weights");
    write_weights(p, "KILNWTS1", axpy_hash, sizeof axpy_weights + 4, sizeof axpy_weights + 4);
    open_error(&ext, p, "holds 260 bytes of weights but model 'axpy' expects 256", NULL);
    open_error(&ext, tmp_path("missing.weights"), "cannot open", NULL);
    open_error(&ext, tmpdir, "not a regular file", NULL);
    REQUIRE(rt_open(&ext, p, 1, NULL, 0) == NULL);

    /* embedded weights the compiler failed to align */
    RtModel skew = axpy_model;
    skew.embedded_weights = (const char *)axpy_weights + 4;
    open_error(&skew, NULL, "embedded weights are not 64-byte aligned", NULL);

    /* the ABI version */
    RtModel old = axpy_model;
    old.abi_version = RT_ABI_VERSION + 1;
    open_error(&old, NULL, "ABI version", NULL);

    /* a model whose code uses AMX tiles (RtModel.needs): it opens where the OS grants them; else
     * rt_open refuses with a sentence naming the model, AMX and the OS's reason */
    RtModel amx = axpy_model;
    amx.needs = RT_NEEDS_AMX;
    char why[256] = "";
    if (rt_request_amx(why, sizeof why) == 0) {
        inst = rt_open(&amx, NULL, 1, err, sizeof err);
        REQUIRE(inst);
        rt_close(inst);
        printf("test_runtime: this process may use AMX: a model that needs it opens\n");
    } else {
        open_error(&amx, NULL, "model 'axpy' was compiled for Intel AMX", why);
        printf("test_runtime: no AMX here (%s): a model that needs it is refused at open\n", why);
    }

    /* no activations at all, and no weights */
    inst = rt_open(&shapes_model, NULL, 2, err, sizeof err);
    REQUIRE(inst);
    rt_close(inst);
}

/* ---- two instances in two threads */

enum { CONCURRENT_RUNS = 1000 };

typedef struct Runner {
    int64_t t;
    float x[AXPY_T], y[AXPY_T], want[AXPY_T];
    int failures;
} Runner;

static void *runner(void *arg)
{
    Runner *r = arg;
    char err[256];
    RtInstance *inst = rt_open(&axpy_model, NULL, 2, err, sizeof err);
    REQUIRE(inst);
    void *in[2] = {r->x, r->y};
    int64_t syms[1] = {r->t};
    for (int k = 0; k < CONCURRENT_RUNS; k++) {
        float z[AXPY_T];
        void *out[1] = {z};
        REQUIRE(rt_run(inst, syms, in, out) == 0);
        r->failures += memcmp(z, r->want, (size_t)r->t * sizeof *z) != 0;
    }
    rt_close(inst);
    return NULL;
}

static void test_concurrent(void)
{
    static Runner rs[2];
    for (int k = 0; k < 2; k++) {
        rs[k].t = k ? 37 : 64;
        for (int i = 0; i < AXPY_T; i++)
            rs[k].x[i] = (float)(i * (k + 1)), rs[k].y[i] = (float)(k * 100 - i);
        /* the reference: one instance alone */
        RtInstance *inst = rt_open(&axpy_model, NULL, 1, NULL, 0);
        REQUIRE(inst);
        void *in[2] = {rs[k].x, rs[k].y}, *out[1] = {rs[k].want};
        REQUIRE(rt_run(inst, &rs[k].t, in, out) == 0);
        rt_close(inst);
    }
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        REQUIRE(pthread_create(&th[k], NULL, runner, &rs[k]) == 0);
    for (int k = 0; k < 2; k++)
        REQUIRE(pthread_join(th[k], NULL) == 0);
    REQUIRE(rs[0].failures == 0 && rs[1].failures == 0);
}

/* ---------------------------------------------------------------- rt_main */

/* "types": input s: i32[N]; one output of each dtype, [N] long, filled with fixed values. */
static int types_run(const void *weights, void *activations, const int64_t *syms,
                     void *const *inputs, void *const *outputs, RtPool *pool)
{
    static const uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7c00};  /* 1 -2 2^-24 inf */
    static const uint16_t bf16[4] = {0x3f80, 0xbfc0, 0x4049, 0x0000}; /* 1 -1.5 3.140625 0 */
    for (int64_t i = 0; i < syms[0]; i++) {
        int32_t s = ((const int32_t *)inputs[0])[i];
        ((uint16_t *)outputs[0])[i] = f16[i % 4];
        ((uint16_t *)outputs[1])[i] = bf16[i % 4];
        ((double *)outputs[2])[i] = s * 0.25;
        ((int64_t *)outputs[3])[i] = (int64_t)s << 33;
        ((int8_t *)outputs[4])[i] = (int8_t)-s;
        ((uint8_t *)outputs[5])[i] = (uint8_t)(200 + s);
        ((uint8_t *)outputs[6])[i] = s % 2;
    }
    return 0;
}

static const RtSymDesc types_syms[] = {{"N", 4}};
static const RtTensorDesc types_inputs[] = {{"s", RT_I32, 1, {{1, {0}, {1}, 0}}}};
static const RtTensorDesc types_outputs[] = {
    {"h", RT_F16, 1, {{1, {0}, {1}, 0}}}, {"bh", RT_BF16, 1, {{1, {0}, {1}, 0}}}, {"d", RT_F64, 1, {{1, {0}, {1}, 0}}},
    {"l", RT_I64, 1, {{1, {0}, {1}, 0}}}, {"b", RT_I8, 1, {{1, {0}, {1}, 0}}},    {"u", RT_U8, 1, {{1, {0}, {1}, 0}}},
    {"q", RT_BOOL, 1, {{1, {0}, {1}, 0}}},
};
static const RtModel types_model = {
    RT_ABI_VERSION, "types", 1, 7, 1, types_inputs, types_outputs, types_syms, 0, 0, 2, NULL,
    types_run, NULL, 0, NULL, 0, NULL, 0, 0,
};

static int fail_run(const void *weights, void *activations, const int64_t *syms,
                    void *const *inputs, void *const *outputs, RtPool *pool)
{
    return 3;
}

static char main_out[16384], main_err[16384];

static void slurp(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
}

/* Calls rt_main(m, argv...) with stdout and stderr captured in main_out and main_err, checks its
 * exit status, and checks that stderr is empty exactly when it is 0. */
static void run_main(const RtModel *m, int want, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, want);
    argv[argc++] = "/some/dir/prog";
    while ((argv[argc] = va_arg(ap, char *)))
        REQUIRE(++argc < 31);
    va_end(ap);

    const char *outp = tmp_path("stdout.txt"), *errp = tmp_path("stderr.txt");
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(so >= 0 && se >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    int r = rt_main(m, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so), close(se), close(fo), close(fe);
    slurp(outp, main_out, sizeof main_out);
    slurp(errp, main_err, sizeof main_err);
    if (r != want || (r == 0) != (main_err[0] == 0)) {
        fprintf(stderr, "test_runtime: rt_main %s ... returned %d, expected %d\nstdout: %s\n"
                "stderr: %s\n", argc > 1 ? argv[1] : "", r, want, main_out, main_err);
        exit(1);
    }
    if (r)
        REQUIRE(!strncmp(main_err, "prog: error: ", 13) && strchr(main_err, '\n') &&
              strchr(main_err, '\n')[1] == 0);
}

static const char *npy_file(const char *name, const char *descr, int rank, const int64_t *shape,
                            const void *data)
{
    const char *p = tmp_path(name);
    char err[256];
    REQUIRE(rt_npy_write(p, descr, rank, shape, data, err, sizeof err) == 0);
    return p;
}

static char *arg(const char *fmt, const char *a, const char *b)
{
    static char bufs[16][192];
    static int next;
    char *s = bufs[next++ % 16];
    snprintf(s, sizeof bufs[0], fmt, a, b);
    return s;
}

static void test_main(void)
{
    float x[10], y[10], z[10];
    for (int i = 0; i < 10; i++)
        x[i] = (float)i, y[i] = 1;
    axpy_expect(10, x, y, z);
    int64_t n5[1] = {5}, n10[1] = {10}, n4[1] = {4}, n65[1] = {65}, n22[2] = {2, 2};
    const char *x5 = npy_file("x5.npy", "<f4", 1, n5, x), *y5 = npy_file("y5.npy", "<f4", 1, n5, y);
    const char *x10 = npy_file("x10.npy", "<f4", 1, n10, x);
    const char *y10 = npy_file("y10.npy", "<f4", 1, n10, y);
    const char *zp = tmp_path("z.npy");
    double xd[5] = {0};
    float big[65] = {0};

    /* written to a file, with --bench and --threads */
    run_main(&axpy_model, 0, arg("--input=x=%s", x10, 0), "--input", arg("y=%s", y10, 0),
             "--output", arg("z=%s", zp, 0), "--bench", "3", "--threads", "2", NULL);
    CHECK_HAS(main_out, "bench: 3 runs, min ");
    CHECK_HAS(main_out, " ms, median ");
    RtNpy a;
    char err[256];
    REQUIRE(rt_npy_read(zp, &a, err, sizeof err) == 0);
    REQUIRE(!strcmp(a.descr, "<f4") && a.rank == 1 && a.shape[0] == 10);
    REQUIRE(!memcmp(a.data, z, sizeof z));
    rt_npy_free(&a);

    /* printed */
    run_main(&axpy_model, 0, "--input", arg("x=%s", x5, 0), "--input", arg("y=%s", y5, 0), NULL);
    REQUIRE(!strcmp(main_out, "z: f32[5] = [1, 3.5, 6, 8.5, 11] (5 values)\n"));
    run_main(&axpy_model, 0, "--input", arg("x=%s", x10, 0), "--input", arg("y=%s", y10, 0),
             "--threads=1", NULL);
    REQUIRE(!strcmp(main_out,
                  "z: f32[10] = [1, 3.5, 6, 8.5, 11, 13.5, 16, 18.5, ...] (10 values)\n"));

    /* --help */
    run_main(&axpy_model, 0, "--help", NULL);
    CHECK_HAS(main_out, "usage: prog --input NAME=FILE.npy");
    CHECK_HAS(main_out, "  x: f32[T]  (T <= 64)\n  y: f32[T]\n");
    CHECK_HAS(main_out, "outputs:\n  z: f32[T]\n");
    run_main(&shapes_model, 0, "-h", NULL);
    CHECK_HAS(main_out, "  a: f32[T, 3]  (T <= 8)\n  b: f32[2*T+1]\n  c: i32[S, 4]  (S <= 4)\n");
    CHECK_HAS(main_out, "  o: f32[S, 2*T-1, 5]\n");

    /* usage errors: 2 */
    run_main(&axpy_model, 2, "--input", arg("x=%s", x5, 0), NULL);
    CHECK_HAS(main_err, "missing input 'y' (f32[T]); pass --input y=FILE.npy");
    run_main(&axpy_model, 2, "--frobnicate", NULL);
    CHECK_HAS(main_err, "unknown option '--frobnicate'");
    run_main(&axpy_model, 2, "stray", NULL);
    CHECK_HAS(main_err, "unexpected argument 'stray'");
    run_main(&axpy_model, 2, "--input", arg("q=%s", x5, 0), NULL);
    CHECK_HAS(main_err, "model 'axpy' has no input 'q'; its inputs are x, y");
    run_main(&axpy_model, 2, "--input", arg("x=%s", x5, 0), "--input", arg("y=%s", y5, 0),
             "--output", "w=out.npy", NULL);
    CHECK_HAS(main_err, "model 'axpy' has no output 'w'; its outputs are z");
    run_main(&axpy_model, 2, "--input", arg("x=%s", x5, 0), "--input", arg("x=%s", x5, 0), NULL);
    CHECK_HAS(main_err, "--input x is given twice");
    run_main(&axpy_model, 2, "--input", "x", NULL);
    CHECK_HAS(main_err, "--input expects NAME=FILE.npy, got 'x'");
    run_main(&axpy_model, 2, "--input", NULL);
    CHECK_HAS(main_err, "--input expects a value");
    run_main(&axpy_model, 2, "--threads", "two", NULL);
    CHECK_HAS(main_err, "--threads expects a whole number");
    run_main(&axpy_model, 2, "--bench", "0", NULL);
    CHECK_HAS(main_err, "--bench expects a number of runs");

    /* input errors: 1 */
    const char *xd5 = npy_file("xd5.npy", "<f8", 1, n5, xd);
    run_main(&axpy_model, 1, "--input", arg("x=%s", xd5, 0), "--input", arg("y=%s", y5, 0), NULL);
    CHECK_HAS(main_err, arg("%s: input 'x' is f32[T] but the file holds '<f8' data", xd5, 0));
    CHECK_HAS(main_err, "a.astype(np.float32)");
    const char *x4 = npy_file("x4.npy", "<f4", 1, n4, x);
    run_main(&axpy_model, 1, "--input", arg("x=%s", x4, 0), "--input", arg("y=%s", y5, 0), NULL);
    CHECK_HAS(main_err, "input 'y': dimension 0 is 5 but input 'x' gives T = 4");
    const char *x22 = npy_file("x22.npy", "<f4", 2, n22, x);
    run_main(&axpy_model, 1, "--input", arg("x=%s", x22, 0), "--input", arg("y=%s", y5, 0), NULL);
    CHECK_HAS(main_err, "input 'x' is f32[T], of rank 1, but the file has shape [2, 2]");
    const char *x65 = npy_file("x65.npy", "<f4", 1, n65, big);
    run_main(&axpy_model, 1, "--input", arg("x=%s", x65, 0), "--input", arg("y=%s", x65, 0), NULL);
    CHECK_HAS(main_err, "input 'x': dimension 0 is 65 but T <= 64");
    run_main(&axpy_model, 1, "--input", arg("x=%s", tmp_path("nope.npy"), 0), "--input",
             arg("y=%s", y5, 0), NULL);
    CHECK_HAS(main_err, "nope.npy: cannot open");
    run_main(&axpy_model, 1, "--input", arg("x=%s", x5, 0), "--input", arg("y=%s", y5, 0),
             "--output", "z=/nonexistent-dir/z.npy", NULL);
    CHECK_HAS(main_err, "/nonexistent-dir/z.npy: cannot create");

    /* weights */
    RtModel ext = axpy_model;
    ext.embedded_weights = NULL;
    run_main(&ext, 1, "--input", arg("x=%s", x5, 0), "--input", arg("y=%s", y5, 0), NULL);
    CHECK_HAS(main_err, "external weights and PROGRAM.weights is not beside it: pass --weights FILE");
    run_main(&ext, 0, "--input", arg("x=%s", x5, 0), "--input", arg("y=%s", y5, 0), "--weights",
             tmp_path("good.weights"), NULL);
    REQUIRE(!strcmp(main_out, "z: f32[5] = [1, 3.5, 6, 8.5, 11] (5 values)\n"));
    run_main(&ext, 1, "--input", arg("x=%s", x5, 0), "--input", arg("y=%s", y5, 0), "--weights",
             tmp_path("hash.weights"), NULL);
    CHECK_HAS(main_err, "hash.weights: was written for another build of model 'axpy'");
    run_main(&ext, 0, "--help", NULL);
    CHECK_HAS(main_out, "(default: PROGRAM.weights beside the program)");

    /* every dtype printed; bf16 written as float32 */
    int32_t s[4] = {1, 2, 3, 4};
    const char *sp = npy_file("s.npy", "<i4", 1, n4, s), *bhp = tmp_path("bh.npy");
    run_main(&types_model, 0, "--input", arg("s=%s", sp, 0), "--output", arg("bh=%s", bhp, 0),
             NULL);
    REQUIRE(!strcmp(main_out, "h: f16[4] = [1, -2, 5.96046e-08, inf] (4 values)\n"
                            "d: f64[4] = [0.25, 0.5, 0.75, 1] (4 values)\n"
                            "l: i64[4] = [8589934592, 17179869184, 25769803776, 34359738368] "
                            "(4 values)\n"
                            "b: i8[4] = [-1, -2, -3, -4] (4 values)\n"
                            "u: u8[4] = [201, 202, 203, 204] (4 values)\n"
                            "q: bool[4] = [true, false, true, false] (4 values)\n"));
    REQUIRE(rt_npy_read(bhp, &a, err, sizeof err) == 0);
    REQUIRE(!strcmp(a.descr, "<f4") && a.rank == 1 && a.shape[0] == 4);
    const float bhw[4] = {1, -1.5f, 3.140625f, 0};
    REQUIRE(!memcmp(a.data, bhw, sizeof bhw));
    rt_npy_free(&a);
    int64_t n1[1] = {1};
    const char *s1 = npy_file("s1.npy", "<i4", 1, n1, s);
    run_main(&types_model, 0, "--input", arg("s=%s", s1, 0), NULL);
    CHECK_HAS(main_out, "bh: bf16[1] = [1] (1 value)\n");

    /* an entry that reports failure */
    RtModel failing = types_model;
    failing.run = fail_run;
    run_main(&failing, 1, "--input", arg("s=%s", s1, 0), "--bench", "2", NULL);
    CHECK_HAS(main_err, "model 'types' stopped: an index in the input is out of range (error 3: gather %2 of the model's IR)");
    REQUIRE(main_out[0] == 0);
}

int main(void)
{
    for (int i = 0; i < AXPY_T; i++)
        axpy_weights[i] = 0.5f * (float)i;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_test_runtime.XXXXXX");
    REQUIRE(mkdtemp(tmpdir));

    test_parallel_for();
    test_default_threads();
    test_bind();
    test_bind_sums();
    test_open_run();
    test_concurrent();
    test_main();

    for (int i = 0; i < npaths; i++)
        remove(paths[i]);
    REQUIRE(rmdir(tmpdir) == 0);
    printf("test_runtime: ok\n");
    return 0;
}
