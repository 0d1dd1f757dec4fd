/* test_quant_time.c: choose-quant's time model follows the target it is given (PassOptions.quant_target).
 *
 * examples/charlm with every layer under --quant int8, through pass_choose_quant with a report file,
 * for targets made by hand; the report's estimated time of the matmuls under the choice and under
 * fp32 (its `# matmuls:` line) must move as the model says (docs/PASSES.md's time estimate):
 *   - at T = 256 every product is compute-bound, so the ratio int8 / fp32 is the ratio of their
 *     F: Zen 4 with VNNI 100 / 360; without VNNI (and BF16) the portable kernel's 100 / 50; with AMX
 *     (amx-int8) 100 / (2048 x 3.5 x 1750 / 7762); on a core of twice the FMA width both scale;
 *   - at T = 1 every product is bound by its weights' bytes: with a last-level cache smaller than the
 *     weights (1 MiB) fp32's time grows by 67 / 24.7 (B becomes DRAM's) against a 64 MiB one, and
 *     the report says so; an unknown cache leaves B as it is;
 *   - without a target (known = 0) the report says that the development machine's figures are used.
 * The report prints the times to 4 digits, so ratios are compared to 2e-3 relative.
 */
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"

static const QuantTarget zen4 = {.known = 1, .cpu = "znver4", .isa = "AVX-512", .core = "AMD Zen 4", .x86 = 1,
                                 .vw = 16, .fma = 1, .vnni = 1, .bf16 = 1, .fma_pipes = 2, .fma_bits = 256,
                                 .llc = 64L << 20, .llc_from = "the test"};

/* The report of charlm (T <= ctx) under --quant int8 for target t: the estimated ms of the choice and
 * of fp32; the report's text in text (n bytes). Returns 0. */
static int estimate(const QuantTarget *t, const char *ctx, double *ms, double *fp32, char *text, size_t n)
{
    Diag *d = diag_new(stderr);
    Define def = {"CTX", ctx};
    FrontendOptions fo = {.ndefine = 1, .defines = &def};
    Graph *g = fe_compile("examples/charlm/charlm.kiln", &fo, d);
    REQUIRE(g);
    char path[] = "/tmp/kiln_quant_time_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    PassOptions po = {.d = d, .quant = "int8", .quant_report = path};
    if (t)
        po.quant_target = *t;
    REQUIRE(pass_choose_quant(g, &po) > 0);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    size_t len = fread(text, 1, n - 1, f);
    text[len] = 0;
    fclose(f);
    unlink(path);
    const char *line = strstr(text, "# matmuls: an estimated ");
    REQUIRE(line);
    REQUIRE(sscanf(line, "# matmuls: an estimated %lf ms (fp32: %lf ms", ms, fp32) == 2);
    if (g->weights)
        st_close(g->weights);
    ir_graph_free(g);
    diag_free(d);
    return 0;
}

static int near(double a, double b)
{
    return fabs(a - b) <= 2e-3 * fabs(b);
}

int main(void)
{
    static char text[1 << 16];
    double ms, fp, ms2, fp2;

    /* compute-bound: the ratio of the F's */
    estimate(&zen4, "256", &ms, &fp, text, sizeof text);
    CHECK(near(ms / fp, 100.0 / 360), "Zen 4 with VNNI: int8 / fp32 = %g, expected %g", ms / fp, 100.0 / 360);
    CHECK(strstr(text, "vpdpbusd: 128 per cycle") != NULL, "no vpdpbusd in the report:\n%s", text);
    double zen4_fp = fp;

    /* without VNNI on x86: codegen/qgemm_avx2.c's kernel (150 GOP/s measured on 256-bit vectors); not
     * x86: the portable kernel */
    QuantTarget t = zen4;
    t.vnni = t.bf16 = 0;
    estimate(&t, "256", &ms, &fp, text, sizeof text);
    CHECK(near(ms / fp, 100.0 / 150), "without VNNI: int8 / fp32 = %g, expected %g", ms / fp, 100.0 / 150);
    CHECK(near(fp, zen4_fp), "without VNNI fp32 changed: %g against %g", fp, zen4_fp);
    CHECK(strstr(text, "AVX2 int8 GEMM (no AVX-512 VNNI)") != NULL, "the AVX2 kernel is not named:\n%s", text);
    t.x86 = 0;
    estimate(&t, "256", &ms, &fp, text, sizeof text);
    CHECK(near(ms / fp, 100.0 / 50), "not x86: int8 / fp32 = %g, expected 2", ms / fp);
    CHECK(strstr(text, "portable kernel (no AVX-512 VNNI)") != NULL, "the portable kernel is not named:\n%s", text);

    t = zen4;
    t.amx_int8 = t.amx_bf16 = 1;
    estimate(&t, "256", &ms, &fp, text, sizeof text);
    double amx = 2048 * 3.5 * 1750.0 / 7762;
    CHECK(near(ms / fp, 100.0 / amx), "AMX: int8 / fp32 = %g, expected %g", ms / fp, 100.0 / amx);

    t = zen4;
    t.fma_bits = 512;
    estimate(&t, "256", &ms, &fp, text, sizeof text);
    CHECK(near(fp, zen4_fp / 2), "two 512-bit FMA pipes: fp32 %g ms, expected half of %g", fp, zen4_fp);
    CHECK(near(ms / fp, 100.0 / 360), "two 512-bit FMA pipes: int8 / fp32 = %g", ms / fp);

    /* bound by the weights' bytes: the last-level cache */
    estimate(&zen4, "1", &ms, &fp, text, sizeof text);
    CHECK(!strstr(text, "beyond the LLC"), "64 MiB of LLC, and weights beyond it:\n%s", text);
    t = zen4;
    t.llc = 1L << 20;
    estimate(&t, "1", &ms2, &fp2, text, sizeof text);
    CHECK(near(fp2 / fp, 67 / 24.7), "LLC of 1 MiB: fp32 %g ms against %g, expected x %g", fp2, fp, 67 / 24.7);
    CHECK(near(ms2 / ms, 74 / 24.7), "LLC of 1 MiB: int8 %g ms against %g, expected x %g", ms2, ms, 74 / 24.7);
    CHECK(strstr(text, "fp32  F") && strstr(text, "beyond the LLC: B is DRAM's"), "not said:\n%s", text);
    t.llc = 0;
    estimate(&t, "1", &ms2, &fp2, text, sizeof text);
    CHECK(near(fp2, fp) && near(ms2, ms), "an unknown LLC changed the estimate: %g %g against %g %g", ms2, fp2, ms, fp);
    CHECK(strstr(text, "last-level cache unknown") != NULL, "the unknown LLC is not said:\n%s", text);

    /* no target given */
    estimate(NULL, "256", &ms, &fp, text, sizeof text);
    CHECK(strstr(text, "no target given: the development machine's") != NULL, "not said:\n%s", text);
    CHECK(near(fp, zen4_fp), "the development machine's fp32 %g against Zen 4's %g", fp, zen4_fp);
    printf("test_quant_time: charlm int8 at T = 256: %g ms, fp32 %g ms (Zen 4); %d failures\n", ms, fp, failures);
    return failures != 0;
}
