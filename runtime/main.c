/* main.c: rt_main, the command line of a program built with `kiln build --emit exe`.
 *
 *   PROGRAM --input NAME=FILE.npy ... [--output NAME=FILE.npy ...] [--weights FILE] [--threads N]
 *           [--bench N]
 *
 * It reads every input from a .npy file, checks its dtype and rank against the model and binds the
 * symbolic sizes from the shapes (rt_bind), opens the model, allocates the outputs at the bound
 * shapes, runs once (or, with --bench, once to warm up and N times timed), then writes each output
 * named by --output and prints the others, first 8 values, on stdout.
 *
 * Exit status: 0 on success; 2 for a command line that cannot be right for this model whatever the
 * files hold (an unknown option, a malformed or missing value, an unknown or missing input); 1 when
 * a file, the weights or a run fails. Every error is one line on stderr, `PROGRAM: error: ...`.
 * Everything allocated is freed before returning, so that the tests can run it under LeakSanitizer.
 * rt_error_message, here too, says what an entry's return code means (the library's users call it).
 */
#include "runtime/kiln_rt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* model.c: a tensor's declared shape, "[T, 768]" */
enum { MAIN_MAX_THREADS = 1024, MAIN_MAX_BENCH = 1000000, MAIN_SHOW = 8 };

typedef struct MainArgs {
    const char *prog;          /* argv[0] without its directory */
    const char **input_files;  /* (ninputs) NULL where not given */
    const char **output_files; /* (noutputs) NULL where not given */
    const char *weights;
    int threads; /* 0: rt_default_threads() */
    int bench;   /* timed runs; 0: one plain run */
    int profile; /* --profile: time per node group */
    const char *trace; /* --profile-trace FILE: Chrome trace JSON of the profiled runs */
} MainArgs;

static void main_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void main_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int main_dtype_ok(int64_t dt)
{
    return dt >= 0 && dt < RT_DTYPE_COUNT;
}

/* "f32[T, 768]" */
static void main_type_str(const RtModel *m, const RtTensorDesc *t, char *buf, size_t n)
{
    char shape[256];
    rt_shape_desc(m, t, shape, sizeof shape);
    snprintf(buf, n, "%s%s", main_dtype_ok(t->dtype) ? rt_dtypes[t->dtype].name : "?", shape);
}

/* Whether input i is the first place symbol s appears (so --help states its bound there). */
static int main_sym_first(const RtModel *m, int64_t i, int64_t s)
{
    for (int64_t j = 0; j <= i; j++)
        for (int64_t d = 0; d < m->inputs[j].rank; d++)
            for (int64_t t = 0; t < m->inputs[j].dims[d].n && t < RT_DIM_TERMS; t++)
                if (m->inputs[j].dims[d].sym[t] == s)
                    return j == i;
    return 0;
}

static void main_usage(const RtModel *m, const char *prog, FILE *f)
{
    char ty[320];
    fprintf(f,
            "usage: %s --input NAME=FILE.npy ... [--output NAME=FILE.npy ...] [--weights FILE]\n"
            "       [--threads N] [--bench N] [--profile] [--profile-trace FILE]\n\n"
            "Runs model '%s', compiled by kiln. Outputs not written with --output are printed.\n\n"
            "inputs:\n", prog, m->name);
    for (int64_t i = 0; i < m->ninputs; i++) {
        main_type_str(m, &m->inputs[i], ty, sizeof ty);
        fprintf(f, "  %s: %s", m->inputs[i].name, ty);
        int first = 1;
        for (int64_t s = 0; s < m->nsyms; s++)
            if (main_sym_first(m, i, s)) {
                fprintf(f, "%s%s <= %lld", first ? "  (" : ", ", m->syms[s].name,
                        (long long)m->syms[s].bound);
                first = 0;
            }
        fprintf(f, "%s\n", first ? "" : ")");
    }
    fprintf(f, "outputs:\n");
    for (int64_t i = 0; i < m->noutputs; i++) {
        main_type_str(m, &m->outputs[i], ty, sizeof ty);
        fprintf(f, "  %s: %s\n", m->outputs[i].name, ty);
    }
    fprintf(f,
            "\noptions:\n"
            "  --input NAME=FILE.npy   an input, as a NumPy file of its dtype and shape\n"
            "  --output NAME=FILE.npy  write an output to a NumPy file instead of printing it\n"
            "  --weights FILE          the weights file written by kiln build%s\n"
            "  --threads N             threads to run on (default: $KILN_THREADS, else every CPU)\n"
            "  --bench N               after one warm-up run, time N runs; print min and median\n"
            "  --profile               print the time of each node group (matmul with its epilogue,\n"
            "                          attention, fused loop, ...): wall and CPU ms, share, GFLOP/s,\n"
            "                          GB/s and %% of the machine's peak (FMA rate at the model's\n"
            "                          vector width on these threads, or STREAM triad bandwidth,\n"
            "                          measured first; none for int8 and bf16 products, kind\n"
            "                          qmatmul); with --bench over the timed runs, else over\n"
            "                          the one run\n"
            "  --profile-trace FILE    also write the groups' times as Chrome trace JSON\n"
            "                          (chrome://tracing, Perfetto), the peak in its metadata\n"
            "  --help                  print this help\n",
            m->embedded_weights || !m->weights_bytes ? " (optional: built in)"
                                                     : " (default: PROGRAM.weights beside the program)");
    if (m->vocab)
        fprintf(f,
                "\ntext (a character-level language model):\n"
                "  --prompt TEXT [-n N] [--temperature T] [--top-k K] [--seed S]\n"
                "                          generate N characters after TEXT; prints N tokens in S s (R tokens/s)\n"
                "                          on stderr%s\n"
                "  --eval FILE%s  score a text file in windows of the context%s\n"
                "  --eval FILE --window W  score it with every character predicted from the W before it,\n"
                "                          the model run again for each (the sliding-window baseline)\n",
                rt_entry_index(m, "decode") >= 0 ? " (prefill once, then decode with the KV cache)" : "",
                rt_entry_index(m, "decode") >= 0 ? " [--stream]" : "           ",
                rt_entry_index(m, "decode") >= 0 ? "; --stream: as one stream through the KV cache" : "");
}

/* If argv[*i] is option opt, as "--opt VALUE" or "--opt=VALUE", sets *val to the value (NULL when
 * it is missing), moves *i past it and returns 1; else returns 0. */
static int main_opt(int argc, char **argv, int *i, const char *opt, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(opt);
    if (strncmp(a, opt, n) != 0 || (a[n] != 0 && a[n] != '='))
        return 0;
    if (a[n] == '=')
        *val = a + n + 1;
    else
        *val = *i + 1 < argc ? argv[++*i] : NULL;
    return 1;
}

static int main_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Sets files[k] for "NAME=FILE", NAME one of the n tensors; 0, or 2 after an error. */
static int main_named(const char *prog, const RtModel *m, const char *opt, const char *val,
                      const RtTensorDesc *ts, int64_t n, const char **files)
{
    const char *eq = strchr(val, '=');
    if (!eq || eq == val || !eq[1]) {
        main_error(prog, "%s expects NAME=FILE.npy, got '%s'", opt, val);
        return 2;
    }
    size_t len = (size_t)(eq - val);
    for (int64_t k = 0; k < n; k++)
        if (strlen(ts[k].name) == len && !strncmp(ts[k].name, val, len)) {
            if (files[k]) {
                main_error(prog, "%s %.*s is given twice", opt, (int)len, val);
                return 2;
            }
            files[k] = eq + 1;
            return 0;
        }
    const char *kind = ts == m->inputs ? "input" : "output";
    fprintf(stderr, "%s: error: model '%s' has no %s '%.*s'; its %ss are", prog, m->name, kind,
            (int)len, val, kind);
    for (int64_t k = 0; k < n; k++)
        fprintf(stderr, "%s %s", k ? "," : "", ts[k].name);
    fprintf(stderr, "%s\n", n ? "" : " none");
    return 2;
}

/* Parses the command line into a; returns 0, 2 after a usage error, or -1 after --help. */
static int main_parse(const RtModel *m, int argc, char **argv, MainArgs *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL, *arg = argv[i];
        int r = 0;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            main_usage(m, a->prog, stdout);
            return -1;
        } else if (main_opt(argc, argv, &i, "--input", &v)) {
            r = v ? main_named(a->prog, m, "--input", v, m->inputs, m->ninputs, a->input_files) : 3;
        } else if (main_opt(argc, argv, &i, "--output", &v)) {
            r = v ? main_named(a->prog, m, "--output", v, m->outputs, m->noutputs, a->output_files)
                  : 3;
        } else if (main_opt(argc, argv, &i, "--weights", &v)) {
            r = v ? (a->weights = v, 0) : 3;
        } else if (main_opt(argc, argv, &i, "--threads", &v)) {
            if (!v)
                r = 3;
            else if (main_int(v, 1, MAIN_MAX_THREADS, &a->threads)) {
                main_error(a->prog, "--threads expects a whole number from 1 to %d, got '%s'",
                           MAIN_MAX_THREADS, v);
                r = 2;
            }
        } else if (!strcmp(arg, "--profile")) {
            a->profile = 1;
        } else if (main_opt(argc, argv, &i, "--profile-trace", &v)) {
            r = v ? (a->trace = v, a->profile = 1, 0) : 3;
        } else if (main_opt(argc, argv, &i, "--bench", &v)) {
            if (!v)
                r = 3;
            else if (main_int(v, 1, MAIN_MAX_BENCH, &a->bench)) {
                main_error(a->prog, "--bench expects a number of runs from 1 to %d, got '%s'",
                           MAIN_MAX_BENCH, v);
                r = 2;
            }
        } else {
            main_error(a->prog, "%s '%s'; see %s --help",
                       arg[0] == '-' ? "unknown option" : "unexpected argument", arg, a->prog);
            r = 2;
        }
        if (r == 3) {
            main_error(a->prog, "%s expects a value; see %s --help", arg, a->prog);
            r = 2;
        }
        if (r)
            return r;
    }
    for (int64_t k = 0; k < m->ninputs; k++)
        if (!a->input_files[k]) {
            char ty[320];
            main_type_str(m, &m->inputs[k], ty, sizeof ty);
            main_error(a->prog, "missing input '%s' (%s); pass --input %s=FILE.npy",
                       m->inputs[k].name, ty, m->inputs[k].name);
            return 2;
        }
    return 0;
}

/* Reads input k into *x and checks its dtype and rank; 0, or 1 after an error. */
static int main_read_input(const char *prog, const RtModel *m, int64_t k, const char *path,
                           RtNpy *x)
{
    const RtTensorDesc *t = &m->inputs[k];
    char err[512], ty[320];
    if (!main_dtype_ok(t->dtype)) {
        main_error(prog, "model '%s' is malformed: input '%s' has dtype code %lld", m->name,
                   t->name, (long long)t->dtype);
        return 1;
    }
    main_type_str(m, t, ty, sizeof ty);
    if (!rt_dtypes[t->dtype].npy) {
        main_error(prog, "input '%s' is %s, which a .npy file cannot hold", t->name, ty);
        return 1;
    }
    if (rt_npy_read(path, x, err, sizeof err)) {
        main_error(prog, "%s", err);
        return 1;
    }
    if (strcmp(x->descr, rt_dtypes[t->dtype].npy) != 0) {
        main_error(prog, "%s: input '%s' is %s but the file holds '%s' data; save it with "
                   "a.astype(np.%s)", path, t->name, ty, x->descr, rt_dtypes[t->dtype].numpy);
        return 1;
    }
    if (x->rank != t->rank) {
        char got[256];
        size_t n = 0;
        n += (size_t)snprintf(got + n, sizeof got - n, "[");
        for (int d = 0; d < x->rank && n < sizeof got; d++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%lld", d ? ", " : "",
                                  (long long)x->shape[d]);
        if (n < sizeof got)
            snprintf(got + n, sizeof got - n, "]");
        main_error(prog, "%s: input '%s' is %s, of rank %lld, but the file has shape %s", path,
                   t->name, ty, (long long)t->rank, got);
        return 1;
    }
    return 0;
}

static float main_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, man = h & 0x3ff, f;
    if (e == 31)
        f = sign | 0x7f800000u | man << 13;
    else if (e)
        f = sign | (e + 112) << 23 | man << 13;
    else if (!man)
        f = sign;
    else {
        e = 113;
        while (!(man & 0x400))
            man <<= 1, e--;
        f = sign | e << 23 | (man & 0x3ff) << 13;
    }
    float v;
    memcpy(&v, &f, 4);
    return v;
}

static float main_bf16(uint16_t h)
{
    uint32_t f = (uint32_t)h << 16;
    float v;
    memcpy(&v, &f, 4);
    return v;
}

static void main_print_value(int64_t dt, const void *data, size_t i)
{
    const unsigned char *p = (const unsigned char *)data + i * rt_dtypes[dt].size;
    union {
        float f;
        double d;
        int64_t l;
        int32_t w;
        int8_t b;
        uint16_t h;
    } u;
    memcpy(&u, p, rt_dtypes[dt].size);
    switch (dt) {
    case RT_F32: printf("%.6g", u.f); break;
    case RT_F16: printf("%.6g", main_f16(u.h)); break;
    case RT_BF16: printf("%.6g", main_bf16(u.h)); break;
    case RT_F64: printf("%.6g", u.d); break;
    case RT_I64: printf("%lld", (long long)u.l); break;
    case RT_I32: printf("%d", u.w); break;
    case RT_I8: printf("%d", u.b); break;
    case RT_U8: printf("%u", *p); break;
    case RT_I16: printf("%d", (int)(int16_t)u.h); break;
    case RT_U16: printf("%u", (unsigned)u.h); break;
    case RT_U32: printf("%u", (unsigned)(uint32_t)u.w); break;
    case RT_U64: printf("%llu", (unsigned long long)(uint64_t)u.l); break;
    default: printf("%s", *p ? "true" : "false"); break;
    }
}

/* "z: f32[16, 96] = [v0, ..., v7, ...] (1536 values)" */
static void main_print(const RtTensorDesc *t, const int64_t *shape, const void *data, size_t count)
{
    printf("%s: %s[", t->name, rt_dtypes[t->dtype].name);
    for (int64_t d = 0; d < t->rank; d++)
        printf("%s%lld", d ? ", " : "", (long long)shape[d]);
    printf("] = [");
    for (size_t i = 0; i < count && i < MAIN_SHOW; i++) {
        if (i)
            printf(", ");
        main_print_value(t->dtype, data, i);
    }
    printf("%s] (%zu value%s)\n", count > MAIN_SHOW ? ", ..." : "", count, count == 1 ? "" : "s");
}

/* Writes output t to path; a bf16 output becomes float32, which holds it exactly. */
static int main_write(const char *prog, const RtTensorDesc *t, const char *path,
                      const int64_t *shape, const void *data, size_t count)
{
    char err[512];
    float *conv = NULL;
    const char *descr = rt_dtypes[t->dtype].npy;
    if (t->dtype == RT_BF16) {
        conv = malloc(count ? count * sizeof *conv : 1);
        if (!conv) {
            main_error(prog, "%s: out of memory converting output '%s' to float32", path, t->name);
            return 1;
        }
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, (const char *)data + 2 * i, 2);
            conv[i] = main_bf16(h);
        }
        data = conv, descr = "<f4";
    }
    int r = rt_npy_write(path, descr, (int)t->rank, shape, data, err, sizeof err);
    free(conv);
    if (r) {
        main_error(prog, "%s", err);
        return 1;
    }
    return 0;
}

static double main_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int main_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Opens the model, runs it (timing the runs with --bench) and writes or prints the outputs. */
static int main_run(const RtModel *m, const MainArgs *a, const int64_t *syms, void *const *in,
                    void **out, int64_t (*oshape)[RT_MAX_RANK], size_t *ocount)
{
    char err[512];
    for (int64_t k = 0; k < m->noutputs; k++) {
        const RtTensorDesc *t = &m->outputs[k];
        if (!main_dtype_ok(t->dtype) || t->rank < 0 || t->rank > RT_MAX_RANK) {
            main_error(a->prog, "model '%s' is malformed: output '%s' has dtype code %lld and "
                       "rank %lld", m->name, t->name, (long long)t->dtype, (long long)t->rank);
            return 1;
        }
        rt_output_shape(m, (int)k, syms, oshape[k]);
        size_t count = 1, bytes;
        for (int64_t d = 0; d < t->rank; d++)
            if (oshape[k][d] < 0 ||
                __builtin_mul_overflow(count, (size_t)oshape[k][d], &count))
                count = SIZE_MAX;
        if (count == SIZE_MAX || __builtin_mul_overflow(count, rt_dtypes[t->dtype].size, &bytes) ||
            bytes > SIZE_MAX - 64 || !(out[k] = aligned_alloc(64, (bytes + 64) / 64 * 64))) {
            main_error(a->prog, "cannot allocate output '%s' of %zu elements", t->name, count);
            return 1;
        }
        memset(out[k], 0, bytes);
        ocount[k] = count;
    }

    char beside[4096];
    RtInstance *inst = rt_open(m, rt_weights_beside(m, a->weights, beside, sizeof beside), a->threads, err, sizeof err);
    if (!inst) {
        main_error(a->prog, "%s", err);
        return 1;
    }
    double *times = a->bench ? malloc((size_t)a->bench * sizeof *times) : NULL;
    if (a->bench && !times) {
        rt_close(inst);
        main_error(a->prog, "out of memory for %d bench timings", a->bench);
        return 1;
    }
    /* the profile takes the timed runs with --bench (cleared after the warm-up, which measures the
     * machine's peak untimed), else the one run */
    RtProfile *prof = NULL;
    if (a->profile && !(prof = rt_profile_start(a->trace ? 1 << 20 : 0))) {
        rt_close(inst);
        free(times);
        main_error(a->prog, "out of memory for the profile");
        return 1;
    }
    int rc = rt_run(inst, syms, in, (void *const *)out);
    if (prof && a->bench)
        rt_profile_clear(prof);
    for (int r = 0; r < a->bench && !rc; r++) {
        double t0 = main_now_ms();
        rc = rt_run(inst, syms, in, (void *const *)out);
        times[r] = main_now_ms() - t0;
    }
    if (prof)
        rt_profile_stop(prof);
    rt_close(inst);
    if (rc) {
        free(times);
        rt_profile_free(prof);
        if (rc > RT_ERR_CHECK)
            main_error(a->prog, "model '%s' stopped: %s (error %d)", m->name, rt_error_message(rc), rc);
        else
            main_error(a->prog, "model '%s' stopped: an index in the input is out of range (error %d: gather %%%d of the model's IR)", m->name, rc, rc - 1);
        return 1;
    }

    int status = 0;
    for (int64_t k = 0; k < m->noutputs && !status; k++) {
        const char *path = a->output_files[k];
        if (path)
            status = main_write(a->prog, &m->outputs[k], path, oshape[k], out[k], ocount[k]);
        else
            main_print(&m->outputs[k], oshape[k], out[k], ocount[k]);
    }
    if (a->bench) {
        qsort(times, (size_t)a->bench, sizeof *times, main_cmp_double);
        int n = a->bench;
        double median = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
        printf("bench: %d runs, min %.3f ms, median %.3f ms\n", n, times[0], median);
    }
    free(times);
    if (prof && !rc) {
        if (rt_profile_report(prof, syms, stdout))
            main_error(a->prog, "out of memory for the profile's report");
        if (a->trace && rt_profile_write_trace(prof, a->trace, err, sizeof err)) {
            main_error(a->prog, "%s", err);
            status = 1;
        }
    }
    rt_profile_free(prof);
    fflush(stdout);
    return status;
}

const char *rt_error_message(int code)
{
    switch (code) {
    case 0: return "no error";
    case -1: return "a size is below 1 or above its bound";
    case RT_ERR_NO_PREFILL: return "decode before prefill: the KV cache is empty (prefill a prompt first, and again after a reset)";
    case RT_ERR_BUDGET:
        return "the KV cache's budget is reached: policy full holds no more tokens, or the prompt is longer than the "
               "budget (prefill a shorter context again, or build with an evicting policy)";
    case RT_ERR_POSITIONS:
        return "the position is past the model's learned position table: the model cannot see further (prefill a "
               "shorter context again)";
    default: return code > 0 ? "an index input is out of range" : "unknown error code";
    }
}

const char *rt_weights_beside(const RtModel *m, const char *given, char *buf, size_t n)
{
    if (given || m->embedded_weights || !m->weights_bytes || n <= sizeof ".weights")
        return given;
    ssize_t k = readlink("/proc/self/exe", buf, n - sizeof ".weights");
    if (k <= 0)
        return NULL;
    memcpy(buf + k, ".weights", sizeof ".weights");
    return access(buf, R_OK) == 0 ? buf : NULL;
}

int rt_main(const RtModel *m, int argc, char **argv)
{
    if (rt_text_wanted(m, argc, argv))
        return rt_text_main(m, argc, argv);
    MainArgs a = {0};
    const char *slash = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
    a.prog = argc > 0 && argv[0] ? (slash ? slash + 1 : argv[0]) : m->name;

    size_t ni = (size_t)m->ninputs, no = (size_t)m->noutputs, ns = (size_t)m->nsyms;
    a.input_files = calloc(ni + 1, sizeof *a.input_files);
    a.output_files = calloc(no + 1, sizeof *a.output_files);
    RtNpy *x = calloc(ni + 1, sizeof *x);
    const int64_t **shapes = calloc(ni + 1, sizeof *shapes);
    void **in = calloc(ni + 1, sizeof *in);
    void **out = calloc(no + 1, sizeof *out);
    int64_t(*oshape)[RT_MAX_RANK] = calloc(no + 1, sizeof *oshape);
    size_t *ocount = calloc(no + 1, sizeof *ocount);
    int64_t *syms = calloc(ns + 1, sizeof *syms);
    int status = 0;
    if (!a.input_files || !a.output_files || !x || !shapes || !in || !out || !oshape || !ocount ||
        !syms) {
        main_error(a.prog, "out of memory");
        status = 1;
        goto done;
    }

    status = main_parse(m, argc, argv, &a);
    if (status) {
        status = status < 0 ? 0 : status; /* -1: --help */
        goto done;
    }
    for (size_t k = 0; k < ni; k++) {
        if ((status = main_read_input(a.prog, m, (int64_t)k, a.input_files[k], &x[k])))
            goto done;
        shapes[k] = x[k].shape;
        in[k] = x[k].data;
    }
    char err[512];
    if (rt_bind(m, shapes, syms, err, sizeof err)) {
        main_error(a.prog, "%s", err);
        status = 1;
        goto done;
    }
    status = main_run(m, &a, syms, in, out, oshape, ocount);

done:
    fflush(stdout);
    for (size_t k = 0; x && k < ni; k++)
        rt_npy_free(&x[k]);
    for (size_t k = 0; out && k < no; k++)
        free(out[k]);
    free(a.input_files);
    free(a.output_files);
    free(x);
    free(shapes);
    free(in);
    free(out);
    free(oshape);
    free(ocount);
    free(syms);
    return status;
}
