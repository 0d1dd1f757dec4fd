/* GEMM peers for kiln's benchmarks: times C[M,N] = A[M,K] @ B[K,N] (fp32, row-major, no
 * transposes, alpha 1, beta 0) with OpenBLAS's cblas_sgemm or oneDNN's dnnl_sgemm; and the int8 and
 * bf16 products kiln's --quant int8 / bf16 run, with oneDNN:
 *   dnnl-u8s8s32   dnnl_gemm_u8s8s32: A u8 (0..255), B s8, C s32, no offsets
 *   dnnl-mm-int8   the matmul primitive, u8 x s8 -> s32, B in the layout oneDNN asks for (reordered
 *                  once, untimed: kiln packs its weights at compile time too)
 *   dnnl-mm-bf16   the matmul primitive, bf16 x bf16 -> f32, B likewise
 * (A comes in the product's type: the conversion of f32 activations, which kiln's times include
 * (dynamic quantization per row, rounding to bf16), is not in these.)
 *
 *   gemm_peers --lib openblas|dnnl|dnnl-u8s8s32|dnnl-mm-int8|dnnl-mm-bf16 --threads T [--min-time S]
 *              [--max-runs N] M N K [M N K ...]
 *   gemm_peers --lib openblas|dnnl --info
 *
 * For each shape: two warm-up calls, then enough timed calls (clock_gettime(CLOCK_MONOTONIC)
 * around each call) to fill --min-time seconds, at least 5 and at most --max-runs. Prints one line
 * per shape:
 *   gemm lib=openblas threads=1 M=197 N=768 K=768 runs=57 min_ms=1.234 median_ms=1.300 maxrelerr=1e-07
 * maxrelerr compares 64 sampled entries of C with a double-precision dot product (relative to the
 * sum of |a*b|), so a library that computes wrong results on this CPU shows up (0 for the int8
 * products, which are exact). The matmul primitives' lines also say impl=NAME, the implementation
 * oneDNN chose (brg:avx512_core_amx when it runs AMX tiles).
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

enum { LIB_OPENBLAS, LIB_DNNL, LIB_U8S8S32, LIB_MM_INT8, LIB_MM_BF16 };
static const char *lib_names[] = {"openblas", "dnnl", "dnnl-u8s8s32", "dnnl-mm-int8", "dnnl-mm-bf16"};

static uint16_t to_bf16(float f) /* round to nearest even (no NaN here) */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A oneDNN matmul primitive for one shape, with its memories: dt the type of A and B (u8/s8 or
 * bf16), C s32 or f32; B reordered once into the layout the primitive wants. */
typedef struct Mm {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
    const char *impl;
} Mm;

#define DNNL_OK(x)                                                                                 \
    do {                                                                                           \
        if ((x) != dnnl_success) {                                                                 \
            fprintf(stderr, "gemm_peers: %s failed\n", #x);                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void mm_new(Mm *m, int bf16, long M, long N, long K, void *A, void *B, void *C)
{
    dnnl_memory_desc_t amd, bmd, bany, cmd;
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
    DNNL_OK(dnnl_engine_create(&m->eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&m->st, m->eng, dnnl_stream_default_flags));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&amd, 2, ad, bf16 ? dnnl_bf16 : dnnl_u8, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bmd, 2, bd, bf16 ? dnnl_bf16 : dnnl_s8, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bany, 2, bd, bf16 ? dnnl_bf16 : dnnl_s8, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&cmd, 2, cd, bf16 ? dnnl_f32 : dnnl_s32, dnnl_ab));
    dnnl_matmul_desc_t md;
    DNNL_OK(dnnl_matmul_desc_init(&md, &amd, &bany, NULL, &cmd));
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &md, NULL, m->eng, NULL));
    DNNL_OK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &m->impl));
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t braw;
    DNNL_OK(dnnl_memory_create(&m->a, &amd, m->eng, A));
    DNNL_OK(dnnl_memory_create(&braw, &bmd, m->eng, B));
    DNNL_OK(dnnl_memory_create(&m->b, wmd, m->eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&m->c, &cmd, m->eng, C));
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t re;
    DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &bmd, m->eng, wmd, m->eng, NULL));
    DNNL_OK(dnnl_primitive_create(&re, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, braw}, {DNNL_ARG_TO, m->b}};
    DNNL_OK(dnnl_primitive_execute(re, m->st, 2, rargs));
    DNNL_OK(dnnl_stream_wait(m->st));
    dnnl_primitive_destroy(re);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(braw);
    DNNL_OK(dnnl_primitive_create(&m->prim, pd));
    m->impl = strdup(m->impl); /* the string belongs to pd */
    dnnl_primitive_desc_destroy(pd);
}

static int mm_run(Mm *m)
{
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m->a}, {DNNL_ARG_WEIGHTS, m->b}, {DNNL_ARG_DST, m->c}};
    if (dnnl_primitive_execute(m->prim, m->st, 3, args) != dnnl_success)
        return 1;
    return dnnl_stream_wait(m->st) != dnnl_success;
}

static void mm_free(Mm *m)
{
    dnnl_primitive_destroy(m->prim);
    dnnl_memory_destroy(m->a);
    dnnl_memory_destroy(m->b);
    dnnl_memory_destroy(m->c);
    dnnl_stream_destroy(m->st);
    dnnl_engine_destroy(m->eng);
    free((void *)m->impl);
}

static int run_gemm(int lib, long M, long N, long K, const void *A, const void *B, void *C, Mm *mm)
{
    if (mm)
        return mm_run(mm);
    if (lib == LIB_U8S8S32) {
        static const int32_t co = 0;
        return dnnl_gemm_u8s8s32('N', 'N', 'F', M, N, K, 1.0f, A, K, 0, B, N, 0, 0.0f, C, N, &co) != dnnl_success;
    }
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
            lib = -1;
            for (int l = 0; l < (int)(sizeof lib_names / sizeof lib_names[0]); l++)
                if (!strcmp(argv[i], lib_names[l]))
                    lib = l;
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
        if (lib > LIB_DNNL)
            return usage();
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
        void *Aq = aligned_alloc(64, ((size_t)(M * K) * 2 + 63) / 64 * 64); /* u8 or bf16 */
        void *Bq = aligned_alloc(64, ((size_t)(K * N) * 2 + 63) / 64 * 64); /* s8 or bf16 */
        double *t = malloc((size_t)max_runs * sizeof *t);
        if (!A || !B || !C || !Aq || !Bq || !t) {
            fprintf(stderr, "gemm_peers: out of memory\n");
            return 1;
        }
        for (long j = 0; j < M * K; j++)
            A[j] = rnd();
        for (long j = 0; j < K * N; j++)
            B[j] = rnd();
        /* the int8 products: A as u8 (0 .. 255), B as s8 (-127 .. 127), and A and B again as floats
         * (exact) for the check; bf16: both rounded, and the floats replaced by the rounded values */
        int int8 = lib == LIB_U8S8S32 || lib == LIB_MM_INT8, bf16 = lib == LIB_MM_BF16;
        for (long j = 0; j < M * K; j++) {
            if (int8)
                A[j] = (float)(((uint8_t *)Aq)[j] = (uint8_t)(int)((A[j] + 1) * 127.5f));
            else if (bf16)
                A[j] = from_bf16(((uint16_t *)Aq)[j] = to_bf16(A[j]));
        }
        for (long j = 0; j < K * N; j++) {
            if (int8)
                B[j] = (float)(((int8_t *)Bq)[j] = (int8_t)(int)(B[j] * 127));
            else if (bf16)
                B[j] = from_bf16(((uint16_t *)Bq)[j] = to_bf16(B[j]));
        }
        const void *Ar = int8 || bf16 ? Aq : A, *Br = int8 || bf16 ? Bq : B;
        Mm mm = {0}, *mmp = NULL;
        if (lib == LIB_MM_INT8 || lib == LIB_MM_BF16) {
            mm_new(&mm, bf16, M, N, K, Aq, Bq, C);
            mmp = &mm;
        }
        for (int w = 0; w < 2; w++)
            if (run_gemm(lib, M, N, K, Ar, Br, C, mmp)) {
                fprintf(stderr, "gemm_peers: %s failed\n", lib_names[lib]);
                return 1;
            }
        int n = 0;
        double start = now_s();
        while (n < max_runs && (n < 5 || now_s() - start < min_time)) {
            double t0 = now_s();
            run_gemm(lib, M, N, K, Ar, Br, C, mmp);
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
            double got = int8 ? (double)((int32_t *)C)[r * N + c] : (double)C[r * N + c];
            double e = fabs(acc - got) / (mag > 0 ? mag : 1);
            if (e > maxrel)
                maxrel = e;
        }
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        printf("gemm lib=%s threads=%d M=%ld N=%ld K=%ld runs=%d min_ms=%.4f median_ms=%.4f maxrelerr=%.2e%s%s\n",
               lib_names[lib], threads, M, N, K, n, t[0], med, maxrel, mmp ? " impl=" : "", mmp ? mm.impl : "");
        if (mmp)
            mm_free(mmp);
        free(Aq);
        free(Bq);
        fflush(stdout);
        free(A);
        free(B);
        free(C);
        free(t);
    }
    return 0;
}
