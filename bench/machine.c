/* Machine measurements for kiln's benchmarks.
 *
 *   machine clock              core clock: chains of 5 M dependent register-register integer adds
 *                              (one cycle each on current x86 cores) timed by the thread's CPU time;
 *                              best of 300. Not `add $1, reg`: Golden Cove and later Intel cores
 *                              fold chains of immediate adds at rename, several per cycle (that
 *                              read 17.7 GHz on a Xeon of family 6 model 207)
 *   machine fma T              fp32 FMA throughput on T threads: each thread runs 12 independent
 *                              chains of vfmadd on 512-bit and on 256-bit registers; best of 5, by
 *                              wall time (all threads) and by each thread's CPU time (one core).
 *                              fma_peak_gflops is the peak the benchmark's "% of peak" figures use
 *                              for T threads: T x the best one-thread rate over its own CPU time
 *                              while all T ran, of the wider of the two vector widths that is
 *                              faster. Measured per thread count, because a core's clock under
 *                              wide FMAs can depend on how many cores run them (Intel's AVX-512
 *                              licences), and measured at all, because FMA pipes per core and
 *                              their width differ between CPUs (Zen 4 double-pumps 512-bit FMAs,
 *                              Zen 5 and Xeons with two 512-bit ports do not).
 *   machine int8 T             int8 dot-product peak on T threads, as `fma` measures the FMA peak:
 *                              12 independent chains of AVX-512 VNNI vpdpbusd (16 lanes x 4 u8 x s8
 *                              products into i32 per instruction: 128 ops, a multiply and an add
 *                              each); int8_peak_gops is T x the best one-thread rate over its own
 *                              CPU time. The peak of codegen/qgemm.c's kernel.
 *   machine bf16 T             likewise for AVX512-BF16 vdpbf16ps (16 lanes x 2 bf16 products into
 *                              f32: 64 FLOP per instruction): bf16_peak_gflops.
 *   machine amx-int8 T         the AMX tile unit's int8 peak on T threads: each thread runs 6
 *                              independent chains of tdpbusd (C tiles 0-5 += A tile 6 x B tile 7:
 *                              16 x 16 x 64 u8 x s8 products, 32768 ops an instruction) after
 *                              asking the OS for AMX (arch_prctl); amx_int8_peak_gops as above. The
 *                              peak of codegen/qgemm.c's AMX kernel.
 *   machine amx-bf16 T         likewise for tdpbf16ps (16 x 16 x 32 bf16 products into f32: 16384
 *                              FLOP an instruction): amx_bf16_peak_gflops.
 *   machine stream T MIB       STREAM-like copy (c = a) and triad (a = b + s*c) over three double
 *                              arrays of MIB MiB each, each of T OpenMP threads on its own static
 *                              chunk; small arrays are passed over several times per timing; best
 *                              of 10 trials; bytes counted as STREAM does (copy 16 B, triad 24 B
 *                              per element, no write-allocate traffic)
 *
 * Output lines are `key value` pairs that bench/harness.py parses.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- clock ---- */

/* CPU time of the calling thread: on a shared machine, the time the thread was not running
 * (another process had the core) is left out, which wall time would count. */
static double thread_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double clock_ghz(void)
{
    const long iters = 50000; /* x 100 adds: 5 M cycles, about 1.5 ms at 3.5 GHz */
    double best = 0;
    for (int trial = 0; trial < 300; trial++) {
        unsigned long x = 0, one = 1;
        double t0 = thread_s();
        for (long i = 0; i < iters; i++)
            __asm__ volatile(".rept 100\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
        double dt = thread_s() - t0;
        double ghz = (double)iters * 100 / dt / 1e9;
        if (ghz > best)
            best = ghz;
    }
    return best;
}

/* ---- FMA peak ---- */

/* What the chains run: ops counts one instruction's arithmetic (a multiply-add is 2). */
typedef enum { K_FMA512, K_FMA256, K_VNNI512, K_BF16_512, K_AMX_INT8, K_AMX_BF16 } Kind;
static const int kind_ops[] = {16 * 2, 8 * 2, 16 * 4 * 2, 16 * 2 * 2, 16 * 16 * 64 * 2, 16 * 16 * 32 * 2};
static const int kind_chains[] = {12, 12, 12, 12, 6, 6}; /* independent chains, one instruction each a step */

typedef struct {
    long iters;
    Kind kind;
    float sink;
    double cpu_s; /* the thread's CPU time for its chains */
} FmaJob;

__attribute__((target("avx512f"))) static float fma512(long iters)
{
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c);
        a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c);
        a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c);
        a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c);
        a11 = _mm512_fmadd_ps(a11, m, c);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
        __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma256(long iters)
{
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m256 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c);
        a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c);
        a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c);
        a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c);
        a11 = _mm256_fmadd_ps(a11, m, c);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
        __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float f[8];
    _mm256_storeu_ps(f, s);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}

/* acc_i = OP(acc_i, x, y) for the 12 chains a0..a11, kept in registers (the asm), iters times. */
#define CHAINS12(OP, x, y)                                                                                   \
    for (long i = 0; i < iters; i++) {                                                                     \
        a0 = OP(a0, x, y), a1 = OP(a1, x, y), a2 = OP(a2, x, y), a3 = OP(a3, x, y);                           \
        a4 = OP(a4, x, y), a5 = OP(a5, x, y), a6 = OP(a6, x, y), a7 = OP(a7, x, y);                           \
        a8 = OP(a8, x, y), a9 = OP(a9, x, y), a10 = OP(a10, x, y), a11 = OP(a11, x, y);                       \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));                \
        __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));              \
    }

/* 12 chains of vpdpbusd: acc += u8 x s8 of constant operands (the sums wrap, which costs nothing). */
__attribute__((target("avx512f,avx512vnni"))) static float vnni512(long iters)
{
    __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512i a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512i u = _mm512_set1_epi32(0x01020304), w = _mm512_set1_epi32(0x7f7e7d7c);
    CHAINS12(_mm512_dpbusd_epi32, u, w)
    a0 = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
    a4 = _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7));
    a8 = _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11));
    return (float)_mm512_reduce_add_epi32(_mm512_add_epi32(a0, _mm512_add_epi32(a4, a8)));
}

/* 12 chains of vdpbf16ps: acc += pairs of bf16 products, in f32. */
__attribute__((target("avx512f,avx512bf16"))) static float bf16_512(long iters)
{
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3400); /* 1, 2^-23 */
    CHAINS12(_mm512_dpbf16_ps, x, y)
    a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    a4 = _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7));
    a8 = _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11));
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, _mm512_add_ps(a4, a8)));
}

/* 6 chains of tdpbusd or tdpbf16ps on tiles of 16 rows x 64 bytes (operands of small values:
 * loaded once from memory, so that no unit can skip zeros). */
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) static float amx_chains(long iters, int bf16)
{
    static _Alignas(64) unsigned char cfg[64], a[1024], b[1024];
    static _Alignas(64) float c[256];
    cfg[0] = 1;
    for (int t = 0; t < 8; t++) {
        cfg[16 + 2 * t] = 64;
        cfg[48 + t] = 16;
    }
    for (int i = 0; i < 1024; i++)
        a[i] = b[i] = bf16 ? (i % 2 ? 0x3c : 0x00) : 3; /* bf16 2^-7 (bytes 00 3c), or bytes 3 */
    _tile_loadconfig(cfg);
    /* tile numbers are immediates: one call per tile */
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    _tile_loadd(6, a, 64);
    _tile_loadd(7, b, 64);
    if (bf16)
        for (long i = 0; i < iters; i++) {
            _tile_dpbf16ps(0, 6, 7);
            _tile_dpbf16ps(1, 6, 7);
            _tile_dpbf16ps(2, 6, 7);
            _tile_dpbf16ps(3, 6, 7);
            _tile_dpbf16ps(4, 6, 7);
            _tile_dpbf16ps(5, 6, 7);
        }
    else
        for (long i = 0; i < iters; i++) {
            _tile_dpbusd(0, 6, 7);
            _tile_dpbusd(1, 6, 7);
            _tile_dpbusd(2, 6, 7);
            _tile_dpbusd(3, 6, 7);
            _tile_dpbusd(4, 6, 7);
            _tile_dpbusd(5, 6, 7);
        }
    _tile_stored(0, c, 64);
    _tile_release();
    return c[0];
}

static void *fma_thread(void *p)
{
    FmaJob *j = p;
    double t0 = thread_s();
    switch (j->kind) {
    case K_FMA512: j->sink = fma512(j->iters); break;
    case K_FMA256: j->sink = fma256(j->iters); break;
    case K_VNNI512: j->sink = vnni512(j->iters); break;
    case K_BF16_512: j->sink = bf16_512(j->iters); break;
    case K_AMX_INT8: j->sink = amx_chains(j->iters, 0); break;
    case K_AMX_BF16: j->sink = amx_chains(j->iters, 1); break;
    }
    j->cpu_s = thread_s() - t0;
    return NULL;
}

/* Best of 5 trials of `threads` threads each running the chains; returns the wall-clock rate of
 * all threads together and, in *per_core, the best rate of one thread over its own CPU time (what
 * a core does while it runs, whatever else shares the machine). */
static double fma_gflops(int threads, Kind kind, double *per_core)
{
    const long iters = kind >= K_AMX_INT8 ? 200000 : 5000000; /* an AMX step is 6 x 16 cycles */
    double best = 0, best_core = 0;
    for (int trial = 0; trial < 5; trial++) {
        FmaJob jobs[64];
        pthread_t tid[64];
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            jobs[t] = (FmaJob){iters, kind, 0, 0};
            pthread_create(&tid[t], NULL, fma_thread, &jobs[t]);
        }
        for (int t = 0; t < threads; t++)
            pthread_join(tid[t], NULL);
        double dt = now_s() - t0;
        double flop1 = (double)iters * kind_chains[kind] * kind_ops[kind];
        if (flop1 * threads / dt / 1e9 > best)
            best = flop1 * threads / dt / 1e9;
        for (int t = 0; t < threads; t++)
            if (flop1 / jobs[t].cpu_s / 1e9 > best_core)
                best_core = flop1 / jobs[t].cpu_s / 1e9;
        if (jobs[0].sink == 12345.0f) /* keep the result alive */
            putchar(' ');
    }
    *per_core = best_core;
    return best;
}

/* ---- STREAM-like bandwidth ---- */

static void stream(int threads, double mib)
{
    size_t n = (size_t)(mib * 1024 * 1024 / sizeof(double));
    double *a = aligned_alloc(64, (n * sizeof(double) + 63) / 64 * 64);
    double *b = aligned_alloc(64, (n * sizeof(double) + 63) / 64 * 64);
    double *c = aligned_alloc(64, (n * sizeof(double) + 63) / 64 * 64);
    if (!a || !b || !c) {
        fprintf(stderr, "machine: out of memory\n");
        exit(1);
    }
    omp_set_num_threads(threads);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.5;
    }
    /* Each timed trial is one parallel region in which every thread runs the kernel `reps` times
     * over its own static chunk (as STREAM's static schedule gives it), so that small arrays are
     * timed over a few milliseconds rather than per pass. Best of the trials. */
    int reps = (int)(4e6 / (double)n);
    if (reps < 1)
        reps = 1;
    int trials = 10;
    double best_copy = 1e30, best_triad = 1e30;
    const double s = 3.0;
    for (int t = 0; t < trials; t++) {
        double t0 = now_s();
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), me = omp_get_thread_num();
            size_t lo = n * (size_t)me / (size_t)nt, hi = n * (size_t)(me + 1) / (size_t)nt;
            for (int r = 0; r < reps; r++) {
                for (size_t i = lo; i < hi; i++)
                    c[i] = a[i];
                __asm__ volatile("" ::: "memory");
            }
        }
        double t1 = now_s();
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), me = omp_get_thread_num();
            size_t lo = n * (size_t)me / (size_t)nt, hi = n * (size_t)(me + 1) / (size_t)nt;
            for (int r = 0; r < reps; r++) {
                for (size_t i = lo; i < hi; i++)
                    a[i] = b[i] + s * c[i];
                __asm__ volatile("" ::: "memory");
            }
        }
        double t2 = now_s();
        if ((t1 - t0) / reps < best_copy)
            best_copy = (t1 - t0) / reps;
        if ((t2 - t1) / reps < best_triad)
            best_triad = (t2 - t1) / reps;
    }
    double check = a[n / 2] + c[n / 3];
    printf("stream_threads %d\nstream_mib %.3f\nstream_trials %d\nstream_reps %d\n", threads, mib, trials, reps);
    printf("copy_gbs %.2f\ntriad_gbs %.2f\n", 16.0 * (double)n / best_copy / 1e9,
           24.0 * (double)n / best_triad / 1e9);
    if (check == 12345.0)
        putchar(' ');
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv)
{
    double core_rate;
    if (argc >= 2 && !strcmp(argv[1], "clock")) {
        printf("clock_ghz %.3f\n", clock_ghz());
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "fma")) {
        int t = atoi(argv[2]);
        if (t < 1 || t > 64)
            return 2;
        printf("fma_threads %d\n", t);
        double core, best_core = 0;
        const char *isa = "avx2";
        if (__builtin_cpu_supports("avx512f")) {
            printf("fma512_gflops %.2f\n", fma_gflops(t, K_FMA512, &core));
            printf("fma512_core_gflops %.2f\n", core);
            best_core = core;
            isa = "avx512";
        }
        printf("fma256_gflops %.2f\n", fma_gflops(t, K_FMA256, &core));
        printf("fma256_core_gflops %.2f\n", core);
        if (core > best_core) {
            best_core = core;
            isa = "avx2";
        }
        printf("fma_peak_isa %s\nfma_peak_core_gflops %.2f\nfma_peak_gflops %.2f\n", isa, best_core,
               best_core * t);
        return 0;
    }
    if (argc >= 3 && (!strcmp(argv[1], "int8") || !strcmp(argv[1], "bf16"))) {
        int t = atoi(argv[2]), int8 = !strcmp(argv[1], "int8");
        if (t < 1 || t > 64)
            return 2;
        const char *feat = int8 ? "avx512vnni" : "avx512bf16";
        printf("%s_threads %d\n", argv[1], t);
        int has = int8 ? __builtin_cpu_supports("avx512vnni") : __builtin_cpu_supports("avx512bf16");
        if (!__builtin_cpu_supports("avx512f") || !has) {
            printf("%s_peak none (no %s)\n", argv[1], feat);
            return 0;
        }
        double all = fma_gflops(t, int8 ? K_VNNI512 : K_BF16_512, &core_rate);
        printf("%s_%s %.2f\n%s_core_%s %.2f\n%s_peak_%s %.2f\n", argv[1], int8 ? "gops" : "gflops", all, argv[1],
               int8 ? "gops" : "gflops", core_rate, argv[1], int8 ? "gops" : "gflops", core_rate * t);
        return 0;
    }
    if (argc >= 3 && (!strcmp(argv[1], "amx-int8") || !strcmp(argv[1], "amx-bf16"))) {
        int t = atoi(argv[2]), int8 = !strcmp(argv[1], "amx-int8");
        const char *key = int8 ? "amx_int8" : "amx_bf16", *unit = int8 ? "gops" : "gflops";
        if (t < 1 || t > 64)
            return 2;
        printf("%s_threads %d\n", key, t);
        if (!__builtin_cpu_supports("amx-tile") || !(int8 ? __builtin_cpu_supports("amx-int8") : __builtin_cpu_supports("amx-bf16"))) {
            printf("%s_peak none (no %s)\n", key, int8 ? "amx-int8" : "amx-bf16");
            return 0;
        }
        if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) {
            printf("%s_peak none (the OS does not grant AMX)\n", key);
            return 0;
        }
        double all = fma_gflops(t, int8 ? K_AMX_INT8 : K_AMX_BF16, &core_rate);
        printf("%s_%s %.2f\n%s_core_%s %.2f\n%s_peak_%s %.2f\n", key, unit, all, key, unit, core_rate, key, unit,
               core_rate * t);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "stream")) {
        int t = atoi(argv[2]);
        double mib = atof(argv[3]);
        if (t < 1 || mib <= 0)
            return 2;
        stream(t, mib);
        return 0;
    }
    fprintf(stderr, "usage: machine clock | machine fma THREADS | machine int8 THREADS | machine bf16 THREADS | "
                    "machine amx-int8 THREADS | machine amx-bf16 THREADS | machine stream THREADS MIB\n");
    return 2;
}
