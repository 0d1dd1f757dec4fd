/* test_qgemm_avx2.c: the AVX2 int8 GEMM of codegen/qgemm_avx2.c (dynamic W8A8 without AVX-512 VNNI)
 * against the interpreter, the oracle: the same bits.
 *
 * Each case is a graph in the IR text form: an input a f32[T, K] (or [2, T, K]: the rows of every
 * leading dimension are M), constant i8 weights [K, N] and f32 scales [1, N], the dynamic qmatmul
 * and, with an epilogue, fuse-ops' form of `r + act(a @ w + bias)` (the qmatmul, the bias and the
 * activation inline, the residual add the stored root: qgemm_avx2.c runs it on each micro-tile).
 * Each case runs at several M (a fresh compilation each: cg_jit_run consumes the module), compiled
 * for the CPU it names (znver3 and haswell: AVX2 without any VNNI, the vpmaddwd form; skylake-avx512:
 * AVX-512 without VNNI, the same kernel) or for this host with KILN_QGEMM_AVX2=force=1, which takes
 * the products on a target with AVX-512 VNNI: there the AVX-VNNI form (vpdpbusd on ymm, encoded
 * with EVEX, as AVX512-VL has it) runs, which a host without AVX-VNNI could not run otherwise
 * (tests/lit/avx2_kernels.kir checks the VEX encoding for --cpu alderlake). Cases skip what the host
 * cannot run.
 *
 * The data:
 *   wide     |a| log-uniform in [1e-3, 1e3], random signs; one in twenty 0; one row all zero (sa = 0),
 *            one with a NaN and one with an infinity (sa = inf) when M allows
 *   extreme  each row +-A (A log-uniform), so qa is +-127 everywhere: the largest products and pair
 *            sums (vpmaddubsw would saturate them); with the extreme weights below the sums reach
 *            K x 127 x 128
 *   ties     rows of quantization ties (A, then A / 127 * (k + 0.5), moved by up to 4 ulps): the
 *            kernel multiplies by 1 / sa and must divide where that could round differently
 * Weights uniform in -128..127, with one column all -128 and one all 127 (when N allows); scales in
 * [0, 3] with every seventh 0.
 *
 * Results must be the interpreter's bits (NaN for NaN) for the product and for the exact epilogue
 * (bias, relu, residual: f32 additions, which the interpreter rounds from double to the same bits);
 * with GELU, |got - want| <= 1e-6 |want| + 1e-6 (the f32 erf against double's, as test_codegen_ops'
 * EW). Output buffers start as NaN with 64 guard bytes after them that must stay untouched. Each
 * case also checks that the kernel ran: the module must hold its micro-kernel (kiln_qgemm_avx2_madd_
 * or _vnni_) before optimising.
 */
#define _GNU_SOURCE /* open_memstream, setenv */
#include "codegen/codegen.h"
#include "ir/ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

enum { DATA_WIDE, DATA_EXTREME, DATA_TIES };
enum { EPI_NONE, EPI_RELU, EPI_GELU };

typedef struct Case {
    int K, N;
    int data;
    int batch;        /* a is [2, T, K] */
    int epi;          /* EPI_*: + bias, activation, + residual */
    const char *cpu;  /* NULL: the host (with force=1 in env) */
    const char *env;  /* KILN_QGEMM_AVX2 while compiling, or NULL */
    int threads;
    const int *Ts;    /* values of T, ending with 0 */
    const char *kind; /* the micro-kernel expected: "madd" or "vnni" */
} Case;

static uint64_t rng = 88172645463325252ull;

static double uniform(void) /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int irand(int lo, int hi)
{
    return lo + (int)(uniform() * (hi - lo + 1));
}

/* Whether the host's LLVM feature list enables f ("+avx512vnni"). */
static int host_has(const char *f)
{
    char *feats = LLVMGetHostCPUFeatures();
    const char *p = strstr(feats, f);
    int yes = p && (p[strlen(f)] == ',' || p[strlen(f)] == 0);
    LLVMDisposeMessage(feats);
    return yes;
}

/* Whether the module holds the micro-kernel of that kind (kiln_qgemm_avx2_<kind>_ukr...). */
static int has_kernel(LLVMModuleRef m, const char *kind)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "kiln_qgemm_avx2_%s_ukr", kind);
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        if (!strncmp(LLVMGetValueName2(f, &len), prefix, strlen(prefix)))
            return 1;
    }
    return 0;
}

static void list_i(FILE *f, const int *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", v[i]);
}

static void list_f(FILE *f, const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%s%.9g", i ? ", " : "", v[i]);
}

/* Row m of a (K elements) as the case's data says. */
static void fill_row(const Case *c, float *row, int64_t m, int64_t M)
{
    int K = c->K;
    double A = exp(log(1e-3) + uniform() * log(1e6));
    for (int k = 0; k < K; k++) {
        float x;
        if (c->data == DATA_EXTREME) {
            x = (float)(uniform() < 0.5 ? -A : A);
        } else if (c->data == DATA_TIES) {
            x = k == 0 ? (float)A : (float)(A / 127 * (irand(-127, 126) + 0.5));
            int ulps = irand(-4, 4);
            for (int u = 0; u < abs(ulps); u++)
                x = nextafterf(x, ulps > 0 ? INFINITY : -INFINITY);
        } else {
            double mag = exp(log(1e-3) + uniform() * log(1e6));
            x = uniform() < 0.05 ? 0.0f : (float)(uniform() < 0.5 ? -mag : mag);
        }
        row[k] = x;
    }
    if (c->data == DATA_WIDE && M >= 4) { /* specials: a zero row, a NaN, an infinity */
        if (m == 1)
            memset(row, 0, sizeof(float) * (size_t)K);
        if (m == 2)
            row[K / 2] = NAN;
        if (m == 3)
            row[K - 1] = -INFINITY;
    }
}

static int same(float got, float want, int exact)
{
    if (isnan(want))
        return isnan(got);
    if (exact)
        return got == want && signbit(got) == signbit(want);
    return fabsf(got - want) <= 1e-6f * fabsf(want) + 1e-6f;
}

static void run_case(const Case *c)
{
    int K = c->K, N = c->N;
    int *w = malloc(sizeof(int) * (size_t)K * N);
    float *s = malloc(sizeof(float) * (size_t)N), *bias = malloc(sizeof(float) * (size_t)N);
    KILN_ASSERT(w && s && bias);
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            w[k * N + j] = N >= 3 && j == 1 ? -128 : N >= 3 && j == 2 ? 127 : irand(-128, 127);
    for (int j = 0; j < N; j++) {
        s[j] = j % 7 == 3 ? 0.0f : (float)(uniform() * 3);
        bias[j] = (float)(uniform() * 2 - 1);
    }
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    KILN_ASSERT(f);
    const char *lead = c->batch ? "2, " : "";
    fprintf(f, "sym T <= 200\n%%0 = input \"a\" : f32[%sT, %d]\n%%1 = const {data=[", lead, K);
    list_i(f, w, (int64_t)K * N);
    fprintf(f, "]} : i8[%d, %d]\n%%2 = const {data=[", K, N);
    list_f(f, s, N);
    fprintf(f, "]} : f32[1, %d]\n", N);
    if (c->epi == EPI_NONE) {
        fprintf(f, "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[%sT, %d]\noutput y = %%3\n", lead, N);
    } else {
        fprintf(f, "%%4 = input \"r\" : f32[%sT, %d]\n%%5 = const {data=[", lead, N);
        list_f(f, bias, N);
        fprintf(f, "]} : f32[%d]\n%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true, inline} : f32[%sT, %d]\n"
                   "%%6 = add(%%3, %%5) {inline} : f32[%sT, %d]\n",
                N, lead, N, lead, N);
        if (c->epi == EPI_RELU)
            fprintf(f, "%%7 = relu(%%6) {inline} : f32[%sT, %d]\n", lead, N);
        else
            fprintf(f, "%%7 = gelu(%%6) {approx=erf, inline} : f32[%sT, %d]\n", lead, N);
        fprintf(f, "%%8 = add(%%4, %%7) : f32[%sT, %d]\noutput y = %%8\n", lead, N);
    }
    fclose(f);

    static const char *const dname[] = {"wide", "extreme", "ties"}, *const ename[] = {"", " +bias,relu,residual", " +bias,gelu,residual"};
    char what[200];
    snprintf(what, sizeof what, "K=%d N=%d %s%s%s --cpu %s%s%s, %d thread%s", K, N, dname[c->data], c->batch ? " [2, T, K]" : "",
             ename[c->epi], c->cpu ? c->cpu : "(host)", c->env ? " KILN_QGEMM_AVX2=" : "", c->env ? c->env : "", c->threads,
             c->threads > 1 ? "s" : "");
    Diag *d = diag_new(stderr);
    Graph *g = ir_parse("<case>", text, NULL, d);
    CHECK(g && !ir_verify(g, d), "%s: the case does not parse or verify", what);
    if (!g || diag_errors(d))
        goto out;
    if (c->env)
        setenv("KILN_QGEMM_AVX2", c->env, 1);
    int rows = c->batch ? 2 : 1, nT = 0;
    for (int r = 0; c->Ts[r]; r++) {
        int T = c->Ts[r];
        int64_t M = (int64_t)rows * T;
        HostTensor in[2] = {{DT_F32, c->batch ? 3 : 2, {0}, NULL}, {DT_F32, c->batch ? 3 : 2, {0}, NULL}}, want[1] = {{0}};
        if (c->batch) {
            in[0].shape[0] = 2, in[0].shape[1] = T, in[0].shape[2] = K;
            in[1].shape[0] = 2, in[1].shape[1] = T, in[1].shape[2] = N;
        } else {
            in[0].shape[0] = T, in[0].shape[1] = K;
            in[1].shape[0] = T, in[1].shape[1] = N;
        }
        float *a = malloc(sizeof(float) * (size_t)(M * K)), *res = malloc(sizeof(float) * (size_t)(M * N));
        float *y = malloc(sizeof(float) * (size_t)(M * N) + 64);
        KILN_ASSERT(a && res && y);
        for (int64_t m = 0; m < M; m++)
            fill_row(c, a + m * K, m, M);
        for (int64_t i = 0; i < M * N; i++)
            res[i] = (float)(uniform() * 2 - 1);
        in[0].data = a;
        in[1].data = res;
        memset(y, 0xff, sizeof(float) * (size_t)(M * N));
        memset((char *)y + sizeof(float) * (size_t)(M * N), 0x5a, 64);
        int64_t bound[IR_MAX_SYMS];
        int ok = !ir_bind_inputs(g, in, bound, d) && !ir_interp(g, in, want, d);
        CHECK(ok, "%s T=%d: the interpreter fails", what, T);
        Cg *cg = ok ? cg_new(&(CgOptions){.opt = 2, .cpu = c->cpu}, d) : NULL;
        int ran = cg && !cg_build(cg, g);
        if (ran)
            CHECK(has_kernel(cg->mod, c->kind), "%s: qgemm_avx2.c's %s kernel did not run", what, c->kind);
        ran = ran && !cg_optimise(cg);
        void *ip[2] = {a, res}, *op[1] = {y};
        CHECK(ran && !cg_jit_run(cg, bound, ip, op, c->threads), "%s T=%d: the code generator fails", what, T);
        cg_free(cg);
        for (int64_t i = 0; ran && want[0].data && i < M * N; i++) {
            float ref = ((float *)want[0].data)[i];
            if (!same(y[i], ref, c->epi != EPI_GELU)) {
                CHECK(0, "%s T=%d: element [%lld, %lld] is %.9g, the interpreter's %.9g", what, T, (long long)(i / N),
                      (long long)(i % N), y[i], ref);
                break;
            }
        }
        for (int b = 0; b < 64; b++)
            if (((unsigned char *)y)[sizeof(float) * (size_t)(M * N) + b] != 0x5a) {
                CHECK(0, "%s T=%d: the kernel wrote past the output", what, T);
                break;
            }
        free(a);
        free(res);
        free(y);
        free(want[0].data);
        nT++;
    }
    if (c->env)
        unsetenv("KILN_QGEMM_AVX2");
    printf("%s: %d values of T (x%d rows), %s\n", what, nT, rows, c->kind);
out:
    if (g)
        ir_graph_free(g);
    diag_free(d);
    free(text);
    free(w);
    free(s);
    free(bias);
}

int main(void)
{
    static const int every[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0}, some[] = {1, 5, 40, 0},
                     big[] = {1, 7, 197, 0}, one[] = {197, 0}, few[] = {3, 40, 0};
    /* init LLVM's targets before the first cg_new reads the host's features */
    Diag *d = diag_new(stderr);
    cg_free(cg_new(&(CgOptions){.opt = 2}, d));
    diag_free(d);
    int vnni = host_has("+avx512vnni") && host_has("+avx512vl"), avx512 = host_has("+avx512f");
    const Case cases[] = {
        /* every micro-row count (1..6 rows and the tails), K not a multiple of the group (70, 3, 1), N
         * under a panel, a panel, and several with a partial last one */
        {70, 17, DATA_WIDE, 0, EPI_NONE, "znver3", NULL, 1, every, "madd"},
        {3, 100, DATA_WIDE, 0, EPI_NONE, "znver3", NULL, 1, some, "madd"},
        {1, 1, DATA_WIDE, 0, EPI_NONE, "haswell", NULL, 1, some, "madd"},
        {130, 300, DATA_WIDE, 1, EPI_NONE, "haswell", NULL, 1, few, "madd"},
        /* blocks of K (kcb 512 bytes: 256 i16 elements a block): 1001 in 4, 2100 in 9; the extremes */
        {1001, 16, DATA_WIDE, 1, EPI_NONE, "znver3", NULL, 1, some, "madd"},
        {2100, 33, DATA_EXTREME, 0, EPI_NONE, "znver3", NULL, 1, some, "madd"},
        {4000, 9, DATA_EXTREME, 0, EPI_NONE, "haswell", NULL, 1, few, "madd"},
        {200, 65, DATA_TIES, 1, EPI_NONE, "znver3", NULL, 1, some, "madd"},
        /* 197 rows (m-blocks, micro-rows of 5), 1 and 2 threads; weights past L2 on two threads */
        {96, 70, DATA_WIDE, 0, EPI_NONE, "znver3", NULL, 1, one, "madd"},
        {96, 70, DATA_WIDE, 0, EPI_NONE, "znver3", NULL, 2, one, "madd"},
        {768, 200, DATA_WIDE, 1, EPI_NONE, "haswell", NULL, 2, few, "madd"},
        /* other blocking: narrow blocks of K, small m-blocks, one panel an n-block; micro-tiles of 4
         * x 24 (another packed layout) */
        {300, 50, DATA_WIDE, 0, EPI_NONE, "znver3", "kcb=64,mc=12,ncp=1", 2, big, "madd"},
        {130, 70, DATA_TIES, 0, EPI_NONE, "znver3", "mr=4,nv=3", 1, every, "madd"},
        /* the epilogue on each micro-tile */
        {70, 100, DATA_WIDE, 0, EPI_RELU, "znver3", NULL, 1, some, "madd"},
        {300, 70, DATA_WIDE, 1, EPI_RELU, "haswell", NULL, 2, few, "madd"},
        {70, 100, DATA_WIDE, 0, EPI_GELU, "znver3", NULL, 2, big, "madd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    /* AVX-512 without VNNI (the same kernel) where the host runs AVX-512 */
    const Case sky[] = {
        {130, 300, DATA_WIDE, 0, EPI_NONE, "skylake-avx512", NULL, 1, few, "madd"},
        {70, 100, DATA_TIES, 0, EPI_RELU, "skylake-avx512", NULL, 2, big, "madd"},
    };
    for (size_t i = 0; avx512 && i < sizeof sky / sizeof sky[0]; i++)
        run_case(&sky[i]);
    /* the AVX-VNNI form (vpdpbusd on ymm, u8 rows, the column sums' correction) on this host's
     * AVX-512 VNNI, and the vpmaddwd form compiled for it */
    const Case host[] = {
        {70, 17, DATA_WIDE, 0, EPI_NONE, NULL, "force=1", 1, every, "vnni"},
        {1001, 16, DATA_EXTREME, 1, EPI_NONE, NULL, "force=1", 1, some, "vnni"},
        {2100, 33, DATA_TIES, 0, EPI_NONE, NULL, "force=1", 2, big, "vnni"},
        {300, 50, DATA_WIDE, 0, EPI_NONE, NULL, "force=1,kcb=64,mc=12,ncp=1", 2, big, "vnni"},
        {70, 100, DATA_WIDE, 1, EPI_RELU, NULL, "force=1", 2, few, "vnni"},
        {70, 100, DATA_WIDE, 0, EPI_RELU, NULL, "force=1,madd=1", 1, some, "madd"},
    };
    for (size_t i = 0; vnni && i < sizeof host / sizeof host[0]; i++)
        run_case(&host[i]);
    if (!avx512)
        printf("skipped: the cases for skylake-avx512 (no AVX-512 on this host)\n");
    if (!vnni)
        printf("skipped: the AVX-VNNI form (no AVX-512 VNNI with VL on this host)\n");
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures != 0;
}
