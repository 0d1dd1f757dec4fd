/* test_qwgemm.c: the weight-only qmatmul kernel of codegen/qwgemm.c (4- and 8-bit weights dequantised
 * in registers) against the interpreter, the oracle.
 *
 * Each case is a graph in the IR text form: an input a f32[T, K] (or [2, T, K]: the rows of every
 * leading dimension are M), constant weights (i4, u4, i8 or u8 [K, N]), constant scales [ceil(K / G),
 * N] (some zero) and, for u4 and u8, constant zero points; the qmatmul, and with `epi` a bias added
 * and relu as fuse-ops' epilogue (Node.inl). Every case runs at M = T = 1, 2, 5 and 13, the first
 * two at every M from 1 to 13 (a fresh compilation each: cg_jit_run consumes the module), on the host's CPU, or on the one it names (AVX2:
 * x86-64-v3), or with KILN_QWGEMM=perm=0 (AVX-512's shift form of the 4-bit path). The shapes are
 * odd on purpose: K not a multiple of the group, odd K for 4-bit weights (the last pair is half
 * read), N below one panel, a panel and one column, several panels and a partial last one.
 *
 * Two kinds of data:
 *   exact  a is small integers and the scales powers of two (or 0), so every product and every
 *          partial sum is exact in f32: the kernel must give the interpreter's bits. A misplaced
 *          nibble, a scale of the wrong group or a wrong zero point shows up as a wrong integer.
 *   real   a uniform in [-1, 1], scales uniform in [0, 0.1]: the dequantised weights are the
 *          interpreter's bits (ir/quant.c), and the sums differ in order and precision (f32 fused
 *          multiply-adds against double), so each element must be within K * 2^-23 * sum_k |a w|
 *          + 2^-24 |want| of the interpreter's: twice the textbook bound of f32 summation.
 *
 * Scales: the packed copy holds them (and the zero points) as f16 when every one of the product's
 * is exactly an f16, else as f32 (qwgemm.c). The exact data's powers of two are f16s; the real
 * data's are not. With `other` each kind takes the other layout: the exact scales become powers of
 * two from 2^10 to 2^16 with one 2^16 (past f16's largest, 65504: f32), the real ones rounded to f16
 * (as choose-quant rounds w4's). Each case checks which layout its micro-kernels were made for (the
 * name of an f16 one has "h_ukr").
 *
 * The test also checks that the kernel ran: on x86 with AVX2 the module must hold a function of
 * qwgemm.c (kiln_qw...), so that the portable kernel cannot pass in its place. It reads no files.
 */
#define _GNU_SOURCE /* open_memstream, setenv */
#include "codegen/codegen.h"
#include "ir/ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

typedef struct Case {
    const char *wt;  /* i4, u4 (with zero points), i8, u8 (with zero points) */
    int K, N, G;     /* G: the group along K, 0 for one scale per column */
    int exact;       /* integer data (above) */
    int batch;       /* a is [2, T, K] */
    int epi;         /* + bias, relu as the epilogue */
    const char *cpu; /* NULL: the host */
    const char *env; /* KILN_QWGEMM while compiling, or NULL */
    int all;         /* every M from 1 to 13, else 1, 2, 5 and 13 */
    int other;       /* the other kind of scales (above): exact f32, real f16 */
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

/* Appends v[0..n) to the text at *p as a comma-separated list (%.9g: f32 values read back exactly). */
static void list(FILE *f, const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%s%.9g", i ? ", " : "", v[i]);
}

/* 1 when the module holds a function of qwgemm.c (kiln_qw...), 2 when one made for f16 scales. */
static int has_kernel(LLVMModuleRef m)
{
    int r = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        const char *name = LLVMGetValueName2(f, &len);
        if (!strncmp(name, "kiln_qw", 7))
            r = r > 1 || strstr(name, "h_ukr") ? 2 : 1;
    }
    return r;
}

static void run_case(const Case *c)
{
    DType wt = dtype_from_name(c->wt);
    int lo, hi;
    KILN_ASSERT(ir_quant_range(wt, &lo, &hi));
    int zp = lo == 0, K = c->K, N = c->N, G = c->G > 0 && c->G < K ? c->G : K, ng = (K + G - 1) / G;
    float *w = malloc(sizeof(float) * (size_t)K * N), *s = malloc(sizeof(float) * (size_t)ng * N);
    float *z = malloc(sizeof(float) * (size_t)ng * N), *bias = malloc(sizeof(float) * (size_t)N);
    float *wd = malloc(sizeof(float) * (size_t)K * N);
    KILN_ASSERT(w && s && z && bias && wd);
    for (int i = 0; i < K * N; i++)
        w[i] = (float)irand(lo, hi);
    for (int i = 0; i < ng * N; i++) {
        s[i] = i % 7 == 3                ? 0
               : c->exact && !c->other ? ldexpf(1, -irand(0, 6))
               : c->exact              ? ldexpf(1, i ? irand(10, 16) : 16)
               : c->other              ? (float)dtype_round(DT_F16, uniform() * 0.1)
                                       : (float)(uniform() * 0.1);
        z[i] = zp ? (float)irand(lo, hi) : 0;
    }
    for (int i = 0; i < N; i++)
        bias[i] = c->exact ? (float)irand(-20, 20) : (float)(uniform() * 2 - 1);
    for (int k = 0; k < K; k++) /* the interpreter's dequantised weights */
        for (int j = 0; j < N; j++)
            wd[k * N + j] = ir_dequantize1(w[k * N + j], s[k / G * N + j], z[k / G * N + j]);

    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    KILN_ASSERT(f);
    const char *lead = c->batch ? "2, " : "";
    fprintf(f, "sym T <= 13\n%%0 = input \"a\" : f32[%sT, %d]\n%%1 = const {data=[", lead, K);
    list(f, w, (int64_t)K * N);
    fprintf(f, "]} : %s[%d, %d]\n%%2 = const {data=[", c->wt, K, N);
    list(f, s, (int64_t)ng * N);
    fprintf(f, "]} : f32[%d, %d]\n", ng, N);
    if (zp) {
        fprintf(f, "%%3 = const {data=[");
        list(f, z, (int64_t)ng * N);
        fprintf(f, "]} : %s[%d, %d]\n", c->wt, ng, N);
    }
    fprintf(f, "%%4 = qmatmul(%%0, %%1, %%2%s) {group=%d, dynamic=false%s} : f32[%sT, %d]\n", zp ? ", %3" : "", c->G,
            c->epi ? ", inline" : "", lead, N);
    if (c->epi) {
        fprintf(f, "%%5 = const {data=[");
        list(f, bias, N);
        fprintf(f, "]} : f32[%d]\n%%6 = add(%%4, %%5) {inline} : f32[%sT, %d]\n%%7 = relu(%%6) : f32[%sT, %d]\n"
                   "output y = %%7\n", N, lead, N, lead, N);
    } else {
        fprintf(f, "output y = %%4\n");
    }
    fclose(f);

    char what[160];
    int half = c->exact != c->other; /* the scales' layout the kernel should take */
    snprintf(what, sizeof what, "%s K=%d N=%d group=%d%s%s%s%s%s%s%s", c->wt, K, N, c->G, c->exact ? " exact" : " real",
             half ? " f16 scales" : " f32 scales", c->batch ? " [2, T, K]" : "", c->epi ? " +epilogue" : "",
             c->cpu ? " --cpu " : "", c->cpu ? c->cpu : "", c->env ? " KILN_QWGEMM" : "");
    Diag *d = diag_new(stderr);
    Graph *g = ir_parse("<case>", text, NULL, d);
    CHECK(g && !ir_verify(g, d), "%s: the case does not parse or verify", what);
    if (!g || diag_errors(d))
        goto out;
    if (c->env)
        setenv("KILN_QWGEMM", c->env, 1);
    int rows = c->batch ? 2 : 1;
    double worst = 0;
    static const int some[] = {1, 2, 5, 13};
    int nT = c->all ? 13 : 4;
    for (int r = 0; r < nT; r++) {
        int T = c->all ? r + 1 : some[r];
        int64_t M = (int64_t)rows * T;
        HostTensor in = {DT_F32, c->batch ? 3 : 2, {0}, NULL}, want = {0}, got = {0};
        if (c->batch) {
            in.shape[0] = 2, in.shape[1] = T, in.shape[2] = K;
        } else {
            in.shape[0] = T, in.shape[1] = K;
        }
        float *a = malloc(sizeof(float) * (size_t)(M * K)), *y = malloc(sizeof(float) * (size_t)(M * N) + 64);
        KILN_ASSERT(a && y);
        for (int64_t i = 0; i < M * K; i++)
            a[i] = c->exact ? (float)irand(-4, 4) : (float)(uniform() * 2 - 1);
        in.data = a;
        memset(y, 0xff, sizeof(float) * (size_t)(M * N)); /* NaN: an element the kernel forgets shows */
        memset((char *)y + sizeof(float) * (size_t)(M * N), 0x5a, 64);
        int64_t bound[IR_MAX_SYMS];
        CHECK(!ir_bind_inputs(g, &in, bound, d) && !ir_interp(g, &in, &want, d), "%s T=%d: the interpreter fails", what, T);
        Cg *cg = cg_new(&(CgOptions){.opt = 2, .cpu = c->cpu}, d);
        int ran = cg && !cg_build(cg, g);
        if (ran && T == 1) { /* before optimising, which inlines the micro-kernels */
            CgTarget t = cg_target(cg);
            int k = has_kernel(cg->mod);
            CHECK(!!k == (t.x86 && t.vw >= 8), "%s: qwgemm.c's kernel %s", what, k ? "ran where it should not" : "did not run");
            CHECK(!k || (k == 2) == half, "%s: the kernel took %s scales", what, k == 2 ? "f16" : "f32");
        }
        ran = ran && !cg_optimise(cg);
        void *ip[1] = {a}, *op[1] = {y};
        CHECK(ran && !cg_jit_run(cg, bound, ip, op, 1), "%s T=%d: the code generator fails", what, T);
        cg_free(cg);
        int bad = 0;
        for (int64_t i = 0; ran && want.data && i < M * N && !bad; i++) {
            int64_t m = i / N, j = i % N;
            double ref = ((float *)want.data)[i], sum = 0;
            for (int k = 0; k < K; k++)
                sum += fabs((double)a[m * K + k] * wd[k * N + j]);
            double allow = c->exact ? 0 : K * ldexp(sum, -23) + ldexp(fabs(ref), -24), e = fabs(y[i] - ref);
            if (!(e <= allow)) {
                CHECK(0, "%s T=%d: element [%lld, %lld] is %.9g, the interpreter's %.9g (allowed %.3g)", what, T,
                      (long long)m, (long long)j, y[i], ref, allow);
                bad = 1;
            }
            if (allow > 0 && e / allow > worst)
                worst = e / allow;
        }
        for (int b = 0; b < 64; b++)
            if (((unsigned char *)y)[sizeof(float) * (size_t)(M * N) + b] != 0x5a) {
                CHECK(0, "%s T=%d: the kernel wrote past the output", what, T);
                break;
            }
        free(a);
        free(y);
        free(want.data);
        (void)got;
    }
    if (c->env)
        unsetenv("KILN_QWGEMM");
    printf("%s: M = %s (x%d)%s", what, c->all ? "1..13" : "1, 2, 5, 13", rows, c->exact ? ", exact\n" : "");
    if (!c->exact)
        printf(", worst error %.2g of the bound\n", worst);
out:
    if (g)
        ir_graph_free(g);
    diag_free(d);
    free(text);
    free(w);
    free(s);
    free(z);
    free(bias);
    free(wd);
}

int main(void)
{
    static const Case cases[] = {
        /* choose-quant's w4 (i4, groups of 32) and w8 (i8, one scale per column) */
        {"i4", 100, 129, 32, 1, 0, 0, NULL, NULL, 1, 0},
        {"i4", 100, 129, 32, 0, 0, 0, NULL, NULL, 0, 0},
        {"i8", 77, 65, 0, 1, 0, 0, NULL, NULL, 1, 0},
        {"i8", 77, 65, 0, 0, 0, 0, NULL, NULL, 0, 0},
        /* odd K for 4-bit, K not a multiple of the group, N under one panel, zero points */
        {"i4", 37, 9, 8, 1, 0, 0, NULL, NULL, 0, 0},
        {"u4", 37, 9, 8, 1, 0, 0, NULL, NULL, 0, 0},
        {"u4", 65, 200, 16, 0, 1, 0, NULL, NULL, 0, 0},
        {"u8", 33, 17, 0, 1, 0, 0, NULL, NULL, 0, 0},
        {"i8", 70, 33, 16, 1, 1, 0, NULL, NULL, 0, 0},
        {"i4", 37, 64, 64, 1, 0, 0, NULL, NULL, 0, 0}, /* a group longer than K: one scale per column */
        {"i4", 2, 1, 0, 1, 0, 0, NULL, NULL, 0, 0},
        {"i8", 1, 3, 0, 1, 0, 0, NULL, NULL, 0, 0},
        /* the epilogue on each tile */
        {"i4", 37, 129, 8, 1, 0, 1, NULL, NULL, 0, 0},
        {"u8", 50, 70, 0, 0, 1, 1, NULL, NULL, 0, 0},
        /* AVX2 (shifts, 8-float vectors), and AVX-512's shift form of the 4-bit path */
        {"i4", 37, 129, 8, 1, 0, 0, "x86-64-v3", NULL, 0, 0},
        {"u4", 65, 40, 16, 0, 1, 1, "x86-64-v3", NULL, 0, 0},
        {"i8", 77, 33, 0, 1, 0, 0, "x86-64-v3", NULL, 0, 0},
        {"i4", 100, 129, 32, 1, 0, 0, NULL, "perm=0", 0, 0},
        {"u4", 37, 9, 8, 1, 1, 0, NULL, "perm=0,nv=2,mr=3", 0, 0},
        /* the other layout of the scales: f32 for exact data, f16 for real (choose-quant's w4) */
        {"i4", 100, 129, 32, 1, 0, 0, NULL, NULL, 0, 1},
        {"i4", 100, 129, 32, 0, 0, 0, NULL, NULL, 1, 1},
        {"u4", 65, 200, 16, 0, 1, 1, NULL, NULL, 0, 1},
        {"i8", 70, 33, 16, 1, 0, 0, NULL, NULL, 0, 1},
        {"i4", 37, 129, 8, 0, 0, 0, "x86-64-v3", NULL, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures != 0;
}
