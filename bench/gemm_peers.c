/* GEMM peers for kiln's benchmarks: times C[M,N] = A[M,K] @ B[K,N] (fp32, row-major, no
 * transposes, alpha 1, beta 0) with OpenBLAS's cblas_sgemm or oneDNN's dnnl_sgemm.
 *
 *   gemm_peers --lib openblas|dnnl --threads T [--min-time S] [--max-runs N] M N K [M N K ...]
 *   gemm_peers --lib openblas|dnnl --info
 *
 * For each shape: two warm-up calls, then enough timed calls (clock_gettime(CLOCK_MONOTONIC)
 * around each call) to fill --min-time seconds, at least 5 and at most --max-runs. Prints one line
 * per shape:
 *   gemm lib=openblas threads=1 M=197 N=768 K=768 runs=57 min_ms=1.234 median_ms=1.300 maxrelerr=1e-07
 * maxrelerr compares 64 sampled entries of C with a double-precision dot product (relative to the
 * sum of |a*b|), so a library that computes wrong results on this CPU shows up.
 *
 * Threads: the caller sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS as well; this program also calls
 * openblas_set_num_threads() or omp_set_num_threads() (oneDNN here runs on GNU OpenMP).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rnd(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

enum { LIB_OPENBLAS, LIB_DNNL };

static int run_gemm(int lib, long M, long N, long K, const float *A, const float *B, float *C)
{
    if (lib == LIB_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K,
                    B, (int)N, 0.0f, C, (int)N);
        return 0;
    }
    return dnnl_sgemm('N', 'N', M, N, K, 1.0f, A, K, B, N, 0.0f, C, N) == dnnl_success ? 0 : 1;
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: gemm_peers --lib openblas|dnnl (--info | --threads T [--min-time S] "
                    "[--max-runs N] M N K [M N K ...])\n");
    return 2;
}

int main(int argc, char **argv)
{
    int lib = -1, threads = 1, info = 0, max_runs = 1000;
    double min_time = 0.5;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--lib") && i + 1 < argc) {
            i++;
            lib = !strcmp(argv[i], "openblas") ? LIB_OPENBLAS : !strcmp(argv[i], "dnnl") ? LIB_DNNL : -1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-runs") && i + 1 < argc)
            max_runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--info"))
            info = 1;
        else
            return usage();
    }
    if (lib < 0 || threads < 1 || max_runs < 5 || (!info && ((argc - i) % 3 || argc == i)))
        return usage();

    if (info) {
        if (lib == LIB_OPENBLAS) {
            printf("openblas config: %s\n", openblas_get_config());
            printf("openblas corename: %s\n", openblas_get_corename());
            printf("openblas threads (default): %d\n", openblas_get_num_threads());
        } else {
            const dnnl_version_t *v = dnnl_version();
            printf("dnnl version: %d.%d.%d (%s)\n", v->major, v->minor, v->patch, v->hash);
            printf("dnnl cpu runtime: %s\n", v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
            printf("dnnl effective isa: %s\n", isa_name(dnnl_get_effective_cpu_isa()));
            printf("omp max threads (default): %d\n", omp_get_max_threads());
        }
        return 0;
    }

    if (lib == LIB_OPENBLAS)
        openblas_set_num_threads(threads);
    omp_set_num_threads(threads);

    for (; i < argc; i += 3) {
        long M = atol(argv[i]), N = atol(argv[i + 1]), K = atol(argv[i + 2]);
        if (M < 1 || N < 1 || K < 1)
            return usage();
        float *A = aligned_alloc(64, ((size_t)(M * K) * 4 + 63) / 64 * 64);
        float *B = aligned_alloc(64, ((size_t)(K * N) * 4 + 63) / 64 * 64);
        float *C = aligned_alloc(64, ((size_t)(M * N) * 4 + 63) / 64 * 64);
        double *t = malloc((size_t)max_runs * sizeof *t);
        if (!A || !B || !C || !t) {
            fprintf(stderr, "gemm_peers: out of memory\n");
            return 1;
        }
        for (long j = 0; j < M * K; j++)
            A[j] = rnd();
        for (long j = 0; j < K * N; j++)
            B[j] = rnd();
        for (int w = 0; w < 2; w++)
            if (run_gemm(lib, M, N, K, A, B, C)) {
                fprintf(stderr, "gemm_peers: dnnl_sgemm failed\n");
                return 1;
            }
        int n = 0;
        double start = now_s();
        while (n < max_runs && (n < 5 || now_s() - start < min_time)) {
            double t0 = now_s();
            run_gemm(lib, M, N, K, A, B, C);
            t[n++] = (now_s() - t0) * 1e3;
        }
        double maxrel = 0;
        for (int s = 0; s < 64; s++) {
            long r = (long)(((unsigned)s * 2654435761u) % (unsigned)M);
            long c = (long)(((unsigned)s * 40503u + 7u) % (unsigned)N);
            double acc = 0, mag = 0;
            for (long k = 0; k < K; k++) {
                acc += (double)A[r * K + k] * B[k * N + c];
                mag += fabs((double)A[r * K + k] * B[k * N + c]);
            }
            double e = fabs(acc - C[r * N + c]) / (mag > 0 ? mag : 1);
            if (e > maxrel)
                maxrel = e;
        }
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        printf("gemm lib=%s threads=%d M=%ld N=%ld K=%ld runs=%d min_ms=%.4f median_ms=%.4f maxrelerr=%.2e\n",
               lib == LIB_OPENBLAS ? "openblas" : "dnnl", threads, M, N, K, n, t[0], med, maxrel);
        fflush(stdout);
        free(A);
        free(B);
        free(C);
        free(t);
    }
    return 0;
}
