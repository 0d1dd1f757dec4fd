/* choose_quant.c: the choose-quant pass: a quantization scheme for every layer's matmuls, fixed
 * (`--quant bf16|int8|w8|w4`), pinned by hand (`--quant-overrides FILE`), or chosen from calibration runs
 * under a budget (`--calibrate FILE... --quant-budget loss=X,size=MB,speed=F`).
 *
 * What is quantized: every f32 matmul whose right operand is a constant matrix (a weight or const,
 * through reshapes, one cast from f16/bf16 and one 2-D transpose: ir_packed_rhs, the operands the
 * GEMM would pack) and whose left operand has rank >= 2 becomes a qmatmul reading a new constant
 * holding the quantized weight [K, N] and its scales, computed here at compile time with
 * ir_quant_scales and ir_quantize1 (ir/quant.c), so the interpreter and the compiled code run the
 * same integers. The schemes:
 *   fp32  left alone;
 *   bf16  bf16 weights (rounded to nearest even), activations rounded to bf16 as the product reads
 *         them, f32 sums (qmatmul with bf16 weights: vdpbf16ps where the CPU has AVX512-BF16);
 *   int8  W8A8: i8 weights with one symmetric scale per output column (max|w| / 127), activations
 *         quantized per row at run time (qmatmul's dynamic mode);
 *   int8s static W8A8: int8's weights, activations quantized with one scale per matmul fixed at
 *         compile time from the calibration runs (qmatmul's ascale; act_scale says which statistic),
 *         so it needs --calibrate; values beyond the calibrated range saturate;
 *   w8    weight-only i8, one scale per output column;
 *   w4    weight-only i4 (-8..7, zero point 0), one scale per group of 32 along K (groups of K when
 *         K <= 32), chosen by weighted least squares among ±max|w| / d, 7 <= d <= 10 (w4_scales).
 * Matmuls of two activations (attention's scores) and vector products stay f32.
 *
 * Layers: the matmuls with the same Node.layer (the iteration of the model's outermost loop) form
 * one layer and take one scheme together; matmuls outside the loop form one layer per scope (`head`),
 * those without a scope the layer `top`.
 *
 * Choosing (with --calibrate): the runs of the calibration files (quant_calib.c) are split into a
 * calibration part and a held-out part (the last quarter, or the runs of --quant-heldout). Then:
 *   1. the fp32 model runs on every run: its first output is the reference, and the left operand of
 *      every quantizable matmul is recorded (min, max, 99.9th percentile of |x|);
 *   2. sensitivity: for each layer and each scheme, a copy of the graph with only that layer
 *      quantized runs the calibration part; its loss is the change of the first output (mean KL of
 *      the softmax for an output named *logits*, else relative error);
 *   3. choice, a multiple-choice knapsack solved by dynamic programming (pass_quant_mckp): each
 *      layer's scheme costs its loss alone, its bytes and its estimated time on the target (est_ms,
 *      time_model); with loss=X the choice of the fewest bytes whose summed losses stay within X
 *      (and, with speed=F, whose time is at most fp32's / F), without it the least summed loss
 *      within size=MB and speed=F; the sum of losses is only an estimate, since the layers' errors
 *      interact;
 *   4. verification: the copy with the whole choice runs the held-out part; while its loss exceeds
 *      loss=X, the quantized layer that alone loses most on the held-out part (measured then, once
 *      per layer and scheme) moves back up (w4 to the best of int8, int8s and w8 if that lost less
 *      than w4 on the calibration part, else to bf16 if that did, else to fp32; int8, int8s and w8 to
 *      bf16 likewise, else fp32; bf16 to fp32), and the copy runs again;
 *   5. the table (layer, scheme, scope, the losses, bytes, MFLOP, estimated ms), after a header that
 *      says the time model's target and rates (write_time_model), goes to --quant-report FILE, to
 *      stdout with `kiln check`, to stderr with -v or --explain choose-quant; the overrides reader
 *      takes that file back (its first two columns).
 * A budget no choice meets (the weights cannot fit size=MB, the time cannot meet speed=F, or pinned
 * layers alone break loss=X) is an error that says so; the table of the closest choice is still written.
 * The copies run in the interpreter, so calibrating costs (1 + 5 x layers) x calibration runs plus the
 * verifications' held-out runs of the interpreter: calibration sets are meant to be small.
 *
 * Where it runs: after fuse-attention and before fuse-ops, so that fuse-ops makes a qmatmul's
 * consumers (bias, activation, residual) its epilogue (Node.inl) as it does a matmul's.
 */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Scheme {
    const char *name;
    DType dt;
    int group;   /* along K; 0: one scale per column */
    int dynamic; /* activations quantized per row at run time */
    int kind;    /* which quantized copy of the weight it reads (Cand.qw), -1: none */
    int act;     /* activations quantized with a scale fixed from the calibration ranges (act_scale) */
} Scheme;

enum { S_FP32, S_BF16, S_INT8, S_INT8S, S_W8, S_W4, NSCHEME };

static const Scheme schemes[NSCHEME] = {
    {"fp32", DT_F32, 0, 0, -1, 0},
    {"bf16", DT_BF16, 0, 0, 2, 0},
    {"int8", DT_I8, 0, 1, 0, 0},
    {"int8s", DT_I8, 0, 0, 0, 1}, /* the same weights as int8 */
    {"w8", DT_I8, 0, 0, 0, 0},    /* likewise */
    {"w4", DT_I4, 32, 0, 1, 0},
};

const char *pass_quant_schemes(void)
{
    return "bf16, int8, int8s, w8, w4";
}

/* fp32 is a scheme of the overrides file, not of --quant (which would then do nothing). */
static int scheme_index(const char *name, size_t len)
{
    for (int i = 0; i < NSCHEME; i++)
        if (strlen(schemes[i].name) == len && !strncmp(schemes[i].name, name, len))
            return i;
    return -1;
}

int pass_quant_scheme_ok(const char *name)
{
    return scheme_index(name, strlen(name)) > S_FP32;
}

int pass_quant_on(const PassOptions *o)
{
    return o->quant || o->ncalib || o->quant_overrides;
}

int pass_quant_budget(const char *spec, double *loss, double *size_mb, double *speed)
{
    *loss = *size_mb = *speed = -1;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        char *end;
        size_t key = !strncmp(p, "loss=", 5) || !strncmp(p, "size=", 5) ? 5 : !strncmp(p, "speed=", 6) ? 6 : 0;
        double *v = key == 6 ? speed : !key ? NULL : p[0] == 'l' ? loss : size_mb;
        if (!v || *v >= 0)
            return 0;
        *v = strtod(p + key, &end);
        if (end != p + len || end == p + key || !(*v >= 0) || !isfinite(*v) || (v == speed && !(*v > 0)))
            return 0;
        p += len + (p[len] == ',');
        if (p[-1] == ',' && !*p) /* a trailing comma */
            return 0;
    }
    return *loss >= 0 || *size_mb >= 0 || *speed >= 0;
}

/* ---------------------------------------------------------------- layers and their matmuls */

typedef struct QWeight {
    void *q;      /* [K, N] of the scheme's dtype, in g's arena */
    float *scale; /* [ceil(K / group) or 1, N] */
    int gen;      /* Q.gen of the graph cq and cs are in; 0: none yet */
    Node *cq, *cs; /* the constants holding q and scale in that graph, which every twin reads */
} QWeight;

typedef struct Cand {
    Node *n;      /* the matmul in g */
    int unit;     /* its layer (index into Q.unit) */
    int64_t M, K, N; /* M: its rows at the symbols' bounds */
    const Node *b; /* the constant it reads (ir_packed_rhs) */
    int trans;     /* b's data is [N, K] */
    int twin;      /* the first candidate reading the same b the same way (itself when none): a
                      KV cache's prefill and decode products of one weight share one quantized copy */
    QWeight qw[3]; /* the quantized copies by Scheme.kind, made when first needed (the twin's are used) */
    CalibStats *st; /* the range of its left operand over the calibration runs, or NULL */
} Cand;

typedef struct Unit {
    const char *key;          /* "3", "head", "top": what the report and the overrides call it */
    const char *scope;        /* the common scope of its matmuls, or NULL */
    int64_t bytes[NSCHEME];   /* its weights' bytes under each scheme (fp32: the bytes its
                                 quantization frees, 0 for a weight something else also reads) */
    double loss[NSCHEME];     /* measured alone on the calibration runs; NAN: not measured */
    double held[NSCHEME];     /* measured alone on the held-out runs when a verification failed */
    double mflop;             /* its matmuls' MFLOP at the symbols' bounds */
    double ms[NSCHEME];       /* its matmuls' estimated time under each scheme at the bounds, one
                                 thread, in ms (est_ms) */
    int choice;
    int pinned;               /* by --quant-overrides */
} Unit;

/* The time model: a product of M x K by K x N under scheme s takes
 *     t = max(2 M K N / F, W / B)
 * the larger of its arithmetic at the kernel's rate (F GOP/s) and of going through its stored weights
 * (W bytes, scheme_bytes) at B GB/s: for few rows (decoding) the weights' bytes, or their
 * dequantisation, bound the product. Estimates are for one thread at a nominal clock of 3.5 GHz
 * (the clock is not a target fact; the choice only compares the estimates, a speed budget being a
 * ratio to fp32's).
 *
 * F and B come from the target (PassOptions.quant_target, codegen's CgTarget facts), by which kernel
 * codegen will run the scheme on it (codegen/gemm.c, qgemm.c, qwgemm.c, quant.c):
 *   - a kernel bound by one instruction (fp32's GEMM: vfmadd; int8's: vpdpbusd or AMX's tdpbusd;
 *     bf16's: vdpbf16ps or tdpbf16ps): F = that instruction's peak per core x an efficiency. The
 *     f32 FMA peak is pipes x bits / 32 x 2 FLOP per cycle (the known core's pipes and bits from
 *     codegen/target.c's table, else 2 pipes of the vector width; x 1 without FMA); one vpdpbusd
 *     lane does 4 multiply-adds where an FMA lane does 1, so its peak is 4x (as measured on Zen 4:
 *     392 GOPS at 3.49 GHz, 112 of 128 per cycle; Sapphire Rapids: 858 at 3.79 GHz, 226 of 256);
 *     vdpbf16ps's 2x (Zen 4: 58 of 64 per cycle; Sapphire Rapids ran it at half that, 29 of 128,
 *     but uses AMX there); AMX's tdpbusd 2048 and tdpbf16ps 1024 per cycle (16 x 16 x 64 or 32
 *     multiply-adds per 16 cycles). The efficiencies are the generated kernels' rates over those
 *     peaks: fp32 0.89, int8 0.80, bf16 0.89 on Zen 4 (scripts/quant_rates.sh: 100, 360, 200 GOP/s;
 *     products of 128 to 3072 by 1 to 800 rows), AMX int8 0.22 and bf16 0.26 on Sapphire Rapids
 *     (docs/PERF.md's int8 and bf16 GEMM at 1 thread: about 1750 GOPS and 1000 GFLOP/s at 3.79 GHz,
 *     M >= 128). B, the weights' bytes per ns for few rows, was measured with them on Zen 4 (67, 74,
 *     73 GB/s, weights in L3) and is kept for every target.
 *   - a kernel bound by several instructions (the weight-only kernel's dequantisation, the AVX2 int8
 *     kernel (vpmaddwd, vpaddd), the portable kernel that runs int8 below AVX2 and bf16 without
 *     AVX512-BF16, and w8 and w4 off x86 or below AVX2): F and B measured on the generated kernels
 *     at each vector width, on Zen 4 (FLAGS="--cpu skylake-avx512" (16 floats), "--cpu znver3" (8),
 *     "--cpu x86-64" (4) sh scripts/quant_rates.sh 768x768 768x3072 with 1, 16 and 200 rows), the
 *     table wk below.
 * Weights beyond the last-level cache: when the model's weights with every layer under scheme s
 * (q->fixed included) exceed the target's LLC, s's B is at most DRAM_GBS (the development machine's
 * STREAM copy at 1 thread, 24.7 GB/s; a product's own weights are re-read from memory on every run);
 * an unknown LLC (a cross-compiled CPU) leaves them in cache. Not modelled: L2-resident weights
 * (faster than B), the threads, the clock of the target, and int8's cost of quantizing rows on
 * small products (up to 1.5x overestimated on Zen 4). The model is within 10% of 110 of the 115
 * products timed on Zen 4 with VNNI (figures in docs/PASSES.md). */
typedef struct Rate {
    double gops;        /* F: 2 x multiply-adds per ns */
    double gbs;         /* B: the weights' bytes per ns for few rows */
    const char *kernel; /* what runs the scheme on the target */
    char why[128];      /* how F was found */
} Rate;

typedef struct Q {
    Graph *g;
    const PassOptions *o;
    int ncand, nunit;
    Cand *cand;
    Unit *unit;
    int *cand_of;     /* (g->nnode) the candidate of a node, -1: none */
    int64_t fixed;    /* bytes of every weight quantization leaves as it is */
    int kl;           /* the loss is a KL divergence (else a relative error) */
    CalibSet cal, held;
    HostTensor *ref_cal, *ref_held; /* the fp32 model's first output on each run */
    double held_loss; /* of the final choice on the held-out runs; NAN: not measured */
    int progress_done, progress_total;
    const char *phase; /* the phase progress() last reported */
    int tty;
    int gen;          /* counts the graphs quantized copies were put in (trial's and apply's) */
    QuantTarget target;   /* the options' or the development machine's */
    Rate rate[NSCHEME];   /* the time model's, from target (time_model) */
    int64_t ws[NSCHEME];  /* the model's weights with every layer under each scheme */
    int dram[NSCHEME];    /* ws exceeds the LLC: B is DRAM's */
} Q;

static int is_candidate(const Node *n, int *trans)
{
    return n->op == OP_MATMUL && ir_packed_rhs(n, trans) && n->in[0]->rank >= 2 && n->rank == n->in[0]->rank &&
           dim_value(n->in[1]->shape[0]) >= 1 && dim_value(n->in[1]->shape[1]) >= 1;
}

/* The longest dotted prefix of a and b ("blocks.0.attn.qkv", "blocks.0.mlp.fc1" -> "blocks.0"). */
static const char *common_scope(Arena *ar, const char *a, const char *b)
{
    if (!a || !b)
        return NULL;
    size_t keep = 0, i = 0;
    for (; a[i] && a[i] == b[i]; i++)
        if (a[i] == '.')
            keep = i;
    if ((!a[i] && (!b[i] || b[i] == '.')) || (!b[i] && a[i] == '.'))
        keep = i;
    return keep ? arena_strndup(ar, a, keep) : NULL;
}

/* The bytes a [K, N] weight takes under scheme s as the compiled model stores it: the weights, and
 * the scales as f32, but w4's as f16 (w4_scales rounds them to f16, and the weight-only kernel's
 * packed copy holds them so: codegen/qwgemm.c). The packing's padding (to whole panels) and the
 * int8 kernel's column sums (4 bytes a column) are not counted. */
static int64_t scheme_bytes(const Scheme *s, int64_t K, int64_t N)
{
    int64_t ng = s->group && K > s->group ? (K + s->group - 1) / s->group : 1;
    int64_t scale = s->kind < 0 || s->dt == DT_BF16 ? 0 : s->dt == DT_I4 ? 2 : (int64_t)sizeof(float);
    return dtype_bytes(s->dt, K * N) + scale * ng * N;
}

enum { CLOCK_MHZ = 3500 };
#define DRAM_GBS 24.7

/* The kernels bound by several instructions, measured on Zen 4 by vector width (16, 8, 4 floats:
 * code for skylake-avx512, znver3 and x86-64 run on Zen 4, whose f32 FMA peak for that code is 32,
 * 32 and 8 FLOP per cycle: 2 pipes of 256 bits with FMA; SSE2's 2 of 128 without): F in GOP/s at
 * 3.5 GHz, scaled by the target's f32 FMA peak over that one (their integer, conversion and shuffle
 * work runs on the same vector pipes); B in GB/s, kept. */
typedef struct Measured {
    double gops[3], gbs[3];
} Measured;
static const Measured wk_w8 = {{85, 42, 12.5}, {27, 24, 2.8}}, wk_w4 = {{83, 45, 5}, {16.5, 10.5, 0.25}},
                      wk_int8 = {{50, 40, 6}, {27, 20, 3}}, wk_bf16 = {{32, 28, 12.5}, {20, 16, 8}};
static const int measured_flop[3] = {32, 32, 8};
/* codegen/qgemm_avx2.c's int8 GEMM (x86 with AVX2, no AVX-512 VNNI: vpmaddwd on 256-bit vectors),
 * measured likewise with code for znver3 on Zen 4 (scripts/quant_rates.sh 768x768 768x3072, MS="1 16
 * 200": 150 GOP/s from 16 rows on; 43 GB/s at one row, 768 x 3072); its vectors are 256 bits on
 * every target, so F scales by the target's f32 FMA peak on 256 bits over Zen 4's 32. */
static const Measured wk_int8_avx2 = {{0, 150, 0}, {0, 43, 0}};

/* The dot-product instructions' efficiencies: the generated kernels' rates over their peaks, fp32,
 * bf16 and int8 on Zen 4 (at 3.5 GHz: 100 of 112, 200 of 224, 360 of 448 GOP/s), AMX's on Sapphire
 * Rapids (at 3.79 GHz: about 1750 of 7762 GOPS, 1000 of 3881 GFLOP/s). */
#define EFF_FP32 (100.0 / 112)
#define EFF_BF16 (200.0 / 224)
#define EFF_INT8 (360.0 / 448)
#define EFF_AMX_INT8 (1750.0 / 7762)
#define EFF_AMX_BF16 (1000.0 / 3881)

/* The development machine (a PassOptions without a target). */
static const QuantTarget dev_machine = {
    .known = 1, .cpu = "znver4", .isa = "AVX-512", .core = "AMD Zen 4", .x86 = 1, .vw = 16, .fma = 1, .vnni = 1,
    .bf16 = 1, .fma_pipes = 2, .fma_bits = 256, .llc = 32L << 20, .llc_from = "the development machine"};

static void measured(Rate *r, const Measured *m, int vw, double p32, const char *kernel)
{
    int i = vw >= 16 ? 0 : vw >= 8 ? 1 : 2;
    r->gops = m->gops[i] * p32 / measured_flop[i];
    r->gbs = m->gbs[i];
    r->kernel = kernel;
    snprintf(r->why, sizeof r->why, "%.4g measured at %d floats a vector x %.4g / %d FLOP per cycle", m->gops[i],
             vw >= 16 ? 16 : vw >= 8 ? 8 : 4, p32, measured_flop[i]);
}

static void peak(Rate *r, double per_cycle, double eff, double gbs, const char *kernel, const char *instr)
{
    r->gops = per_cycle * CLOCK_MHZ / 1e3 * eff;
    r->gbs = gbs;
    r->kernel = kernel;
    snprintf(r->why, sizeof r->why, "%s: %.0f per cycle x %.3f", instr, per_cycle, eff);
}

/* The static activation scale of candidate c (int8s): amax / 127 in f32, amax the calibration
 * runs' ACT_PCT percentile of |x| (quant_calib.c's histogram: exact to about 4%) rather than
 * max|x|, so that rare outliers saturate instead of coarsening every other value's step. A range
 * of 0 (the operand was always 0) or not finite gives amax = 1: any scale quantizes 0 exactly.
 * Measured on charlm's held-out text (calibrated on its first 1024 characters; fp32 1.5179, int8
 * 1.5183 nats/char): the 99.99th percentile 1.5187, max|x| 1.5190, the 99.9th 1.5229 (too many
 * values clipped); on vit-mnist all three within one image of 2000 of fp32's accuracy. */
#define ACT_PCT 99.99
static double act_scale(const Cand *c)
{
    KILN_ASSERT(c->st);
    double amax = pass_calib_percentile(c->st, ACT_PCT);
    if (!(amax > 0) || !isfinite(amax) || !((float)amax / 127.0f > 0) || isinf((float)amax / 127.0f))
        amax = 1;
    /* the shortest decimal that is the same f32, so that the IR prints it short */
    float sa = (float)amax / 127.0f;
    char buf[32];
    for (int prec = 1;; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)sa);
        if ((float)strtod(buf, NULL) == sa || prec == 9)
            return strtod(buf, NULL);
    }
}

static double est_ms(const Q *q, int s, int64_t M, int64_t K, int64_t N)
{
    const Rate *r = &q->rate[s];
    double compute = 2.0 * (double)M * (double)K * (double)N / (r->gops * 1e9);
    double stream = (double)scheme_bytes(&schemes[s], K, N) / (r->gbs * 1e9);
    return 1e3 * (M > 0 ? fmax(compute, stream) : 0);
}

/* Q.rate from Q.target; then every layer's ms (after find_layers: the LLC needs the bytes). */
static void time_model(Q *q)
{
    const QuantTarget *t = &q->target;
    int pipes = t->fma_pipes > 0 ? t->fma_pipes : 2, bits = t->fma_bits > 0 ? t->fma_bits : 32 * t->vw;
    double p32 = pipes * bits / 32.0 * (t->fma ? 2 : 1); /* f32 FLOP per cycle */
    Rate *r = q->rate;
    peak(&r[S_FP32], p32, EFF_FP32, 67, "f32 GEMM", t->fma ? "vector FMA" : "vector mul + add");
    if (t->amx_bf16)
        peak(&r[S_BF16], 1024, EFF_AMX_BF16, 73, "AMX bf16 GEMM", "tdpbf16ps");
    else if (t->bf16)
        peak(&r[S_BF16], 2 * p32, EFF_BF16, 73, "bf16 GEMM", "vdpbf16ps");
    else
        measured(&r[S_BF16], &wk_bf16, t->vw, p32, "portable kernel (no AVX512-BF16)");
    if (t->amx_int8 && t->vnni) /* codegen/qgemm.c takes int8 only with VNNI, then AMX if it can */
        peak(&r[S_INT8], 2048, EFF_AMX_INT8, 74, "AMX int8 GEMM", "tdpbusd");
    else if (t->vnni)
        peak(&r[S_INT8], 4 * p32, EFF_INT8, 74, "int8 GEMM", "vpdpbusd");
    else if (t->x86 && t->vw >= 8) /* codegen/qgemm_avx2.c */
        measured(&r[S_INT8], &wk_int8_avx2, 8, pipes * (bits < 256 ? bits : 256) / 32.0 * (t->fma ? 2 : 1),
                 "AVX2 int8 GEMM (no AVX-512 VNNI)");
    else
        measured(&r[S_INT8], &wk_int8, t->vw, p32, "portable kernel (no AVX-512 VNNI)");
    r[S_INT8S] = r[S_INT8]; /* the same kernel, without the pass for each row's maximum (not modelled) */
    int wonly = t->x86 && t->vw >= 8; /* codegen/qwgemm.c's condition */
    measured(&r[S_W8], &wk_w8, wonly ? t->vw : 4, p32, wonly ? "weight-only kernel" : "portable kernel (not x86 with AVX2)");
    measured(&r[S_W4], &wk_w4, wonly ? t->vw : 4, p32, wonly ? "weight-only kernel" : "portable kernel (not x86 with AVX2)");
    for (int s = 0; s < NSCHEME; s++) {
        q->ws[s] = q->fixed;
        for (int u = 0; u < q->nunit; u++)
            q->ws[s] += q->unit[u].bytes[s];
        q->dram[s] = t->llc > 0 && q->ws[s] > t->llc && r[s].gbs > DRAM_GBS;
        if (q->dram[s])
            r[s].gbs = DRAM_GBS;
    }
    for (int u = 0; u < q->nunit; u++)
        for (int s = 0; s < NSCHEME; s++)
            q->unit[u].ms[s] = 0;
    for (int c = 0; c < q->ncand; c++)
        for (int s = 0; s < NSCHEME; s++)
            q->unit[q->cand[c].unit].ms[s] += est_ms(q, s, q->cand[c].M, q->cand[c].K, q->cand[c].N);
}

/* Whether something besides the operand chains of candidate c and its twins reads the weight it
 * packs (a tied embedding): then quantizing them frees nothing. in_chain[id]: 1 + the twin of the
 * candidate whose chain (the nodes from its in[1] down to its b) holds node id, 0: none. */
static int weight_shared(const Q *q, const Cand *c, const int *in_chain)
{
    const Graph *g = q->g;
    for (const Node *x = c->n->in[1];; x = x->in[0]) {
        for (int i = 0; i < g->nnode; i++) {
            const Node *y = g->nodes[i];
            for (int j = 0; j < y->nin; j++) {
                if (y->in[j] != x)
                    continue;
                int ci = q->cand_of[i];
                int twin_product = ci >= 0 && j == 1 && q->cand[ci].twin == c->twin;
                if (!twin_product && in_chain[i] != c->twin + 1)
                    return 1;
            }
        }
        if (x == c->b || x->nin == 0)
            return 0;
    }
}

static int find_unit(Q *q, const Node *n, int *is_new)
{
    char buf[32];
    const char *key = n->layer >= 0 ? (snprintf(buf, sizeof buf, "%d", n->layer), buf) : n->scope ? n->scope : "top";
    *is_new = 0;
    for (int u = 0; u < q->nunit; u++)
        if (!strcmp(q->unit[u].key, key))
            return u;
    q->unit = realloc(q->unit, sizeof *q->unit * (size_t)(q->nunit + 1));
    KILN_ASSERT(q->unit);
    Unit *u = &q->unit[q->nunit];
    memset(u, 0, sizeof *u);
    u->key = arena_strdup(q->g->arena, key);
    u->scope = n->scope;
    for (int s = 0; s < NSCHEME; s++)
        u->loss[s] = u->held[s] = s == S_FP32 ? 0 : NAN;
    *is_new = 1;
    return q->nunit++;
}

/* The candidates and their layers. A weight that several candidates read the same way (a KV cache's
 * prefill and decode entries) counts once: the first of them is the twin of the others, and they all
 * read its quantized copy. Twins in different layers (not made by kv-cache, which keeps decode's
 * nodes in their layer) would share the copy only when they choose the same scheme. */
static void find_layers(Q *q)
{
    Graph *g = q->g;
    q->cand_of = malloc(sizeof(int) * ((size_t)g->nnode + 1));
    int *in_chain = calloc((size_t)g->nnode + 1, sizeof(int));
    KILN_ASSERT(q->cand_of && in_chain);
    int64_t vals[IR_MAX_SYMS];
    for (int s = 0; s < IR_MAX_SYMS; s++)
        vals[s] = s < g->nsym ? g->syms[s].bound : 0;
    for (int i = 0; i < g->nnode; i++) {
        Node *n = g->nodes[i];
        q->cand_of[i] = -1;
        if (n->op == OP_WEIGHT || n->op == OP_CONST)
            q->fixed += dtype_bytes(n->dtype, shape_numel(n->rank, n->shape, vals));
        int trans = 0;
        if (!is_candidate(n, &trans))
            continue;
        q->cand = realloc(q->cand, sizeof *q->cand * (size_t)(q->ncand + 1));
        KILN_ASSERT(q->cand);
        Cand *c = &q->cand[q->ncand];
        memset(c, 0, sizeof *c);
        c->n = n;
        c->b = ir_packed_rhs(n, &c->trans);
        c->K = dim_value(n->in[1]->shape[0]);
        c->N = dim_value(n->in[1]->shape[1]);
        c->twin = q->ncand;
        for (int t = 0; t < q->ncand; t++)
            if (q->cand[t].twin == t && q->cand[t].b == c->b && q->cand[t].trans == c->trans &&
                q->cand[t].K == c->K && q->cand[t].N == c->N) {
                c->twin = t;
                break;
            }
        for (Node *x = n->in[1];; x = x->in[0]) {
            in_chain[x->id] = c->twin + 1;
            if (x == c->b || x->nin == 0)
                break;
        }
        q->cand_of[i] = q->ncand++;
    }
    for (int ci = 0; ci < q->ncand; ci++) {
        Cand *c = &q->cand[ci];
        int is_new, u = find_unit(q, c->n, &is_new);
        Unit *un = &q->unit[u];
        if (!is_new)
            un->scope = common_scope(g->arena, un->scope, c->n->scope);
        c->unit = u;
        un->mflop += ir_node_flops(c->n, vals) / 1e6;
        c->M = shape_numel(c->n->in[0]->rank, c->n->in[0]->shape, vals) / c->K;
        if (c->twin != ci && q->cand[c->twin].unit == u)
            continue; /* its weight is counted with its twin's */
        int shared = weight_shared(q, c, in_chain);
        int64_t own = dtype_bytes(c->b->dtype, c->K * c->N);
        if (!shared && c->twin == ci)
            q->fixed -= own;
        for (int s = 0; s < NSCHEME; s++)
            un->bytes[s] += s == S_FP32 ? (shared ? 0 : own) : scheme_bytes(&schemes[s], c->K, c->N);
    }
    free(in_chain);
}

/* ---------------------------------------------------------------- quantized weights and copies */

/* The error of a group's values x[0..n) as scale * clamp(rint(x / scale), -8, 7): squared, each
 * weighted by x^2 (the larger weights' errors count more, as llama.cpp's make_qx_quants weighs them
 * when it has no importance matrix). */
static double w4_err(const float *x, int64_t n, float scale)
{
    double err = 0;
    for (int64_t k = 0; k < n; k++) {
        double e = x[k] - scale * ir_quantize1(x[k], scale, 0, -8, 7);
        err += e * e * x[k] * x[k];
    }
    return err;
}

/* A 4-bit scale rounded to the nearest f16 (kept as it is where that would overflow): w4's packed
 * weights hold their scales as f16 (codegen/qwgemm.c), which is exact only for such a value; the
 * interpreter reads the same float, so the compiled code and it still agree bit for bit. */
static float f16_scale(float s)
{
    float h = (float)dtype_round(DT_F16, s);
    return isfinite(h) ? h : s;
}

/* 4-bit scales by weighted least squares: for each group of a column, the scale among ±max|w| / d (d
 * from 7 to 10 by 0.1: every 0.5 first, then by 0.1 around the best; each rounded to f16, f16_scale)
 * whose codes round(w / scale) clamped to -8..7 reconstruct the group with the least error (w4_err).
 * d = 7 is the plain symmetric scale
 * (nothing clipped, the code -8 unused); a larger d spends the levels on the bulk of the group and
 * clips its extremes; a negative scale maps the group's side with the largest magnitude to the codes
 * down to -8 (llama.cpp's Q4_0 takes d = 8 with that sign). The codes are exactly what qweight stores
 * with that scale (ir_quantize1). On examples/llamachar it took w4's held-out loss from 1.5144 nats/char
 * (max|w| / 7) to 1.5074 (fp32: 1.5032; unweighted squared error: 1.5082-1.5087). */
static void w4_scales(const float *w, int64_t K, int64_t N, int group, float *scale)
{
    int64_t G = group > 0 ? group : K, ng = group > 0 ? (K + G - 1) / G : 1;
    float *x = malloc(sizeof(float) * (size_t)G);
    KILN_ASSERT(x);
    for (int64_t g = 0; g < ng; g++)
        for (int64_t n = 0; n < N; n++) {
            int64_t k0 = g * G, m = k0 + G < K ? G : K - k0;
            float amax = 0;
            for (int64_t k = 0; k < m; k++) {
                x[k] = w[(k0 + k) * N + n];
                amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
            }
            float best = isfinite(amax) ? f16_scale(amax / 7) : 0;
            if (best > 0) {
                double best_err = INFINITY;
                int best_i = 0, best_sign = 1;
                for (int i = 0; i <= 30; i += 5) /* d = 7, 7.5, ..., 10 */
                    for (int sign = 1; sign >= -1; sign -= 2) {
                        float sc = f16_scale((float)sign * amax / (7.0f + 0.1f * (float)i));
                        double err = w4_err(x, m, sc);
                        if (err < best_err)
                            best_err = err, best = sc, best_i = i, best_sign = sign;
                    }
                for (int i = best_i - 4; i <= best_i + 4; i++) {
                    if (i < 0 || i > 30 || i == best_i)
                        continue;
                    float sc = f16_scale((float)best_sign * amax / (7.0f + 0.1f * (float)i));
                    double err = w4_err(x, m, sc);
                    if (err < best_err)
                        best_err = err, best = sc;
                }
            }
            scale[g * N + n] = best;
        }
    free(x);
}

/* c's weight quantized for scheme s, made once (int8 and w8 share it). */
static QWeight *qweight(Q *q, Cand *c, const Scheme *s)
{
    QWeight *w = &q->cand[c->twin].qw[s->kind];
    if (w->q)
        return w;
    int64_t K = c->K, N = c->N;
    if (s->dt == DT_BF16) { /* rounded to nearest even, no scale */
        w->q = arena_alloc(q->g->arena, (size_t)dtype_bytes(DT_BF16, K * N));
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                dtype_store(DT_BF16, w->q, (size_t)(k * N + j),
                            dtype_load(c->b->dtype, c->b->at.data, (size_t)(c->trans ? j * K + k : k * N + j)));
        return w;
    }
    int group = s->group && K > s->group ? s->group : 0;
    int64_t ng = group ? (K + group - 1) / group : 1;
    float *f = malloc(sizeof(float) * (size_t)(K * N));
    KILN_ASSERT(f);
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++)
            f[k * N + j] = (float)dtype_load(c->b->dtype, c->b->at.data, (size_t)(c->trans ? j * K + k : k * N + j));
    w->scale = arena_alloc(q->g->arena, sizeof(float) * (size_t)(ng * N));
    if (s->dt == DT_I4)
        w4_scales(f, K, N, group, w->scale);
    else
        ir_quant_scales(f, K, N, group, s->dt, w->scale, NULL);
    int lo, hi;
    KILN_ASSERT(ir_quant_range(s->dt, &lo, &hi));
    w->q = arena_alloc(q->g->arena, (size_t)dtype_bytes(s->dt, K * N));
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            float sc = w->scale[(group ? k / group : 0) * N + j];
            dtype_store(s->dt, w->q, (size_t)(k * N + j), ir_quantize1(f[k * N + j], sc, 0, lo, hi));
        }
    free(f);
    return w;
}

/* In graph h (the q->gen-th), the qmatmul of a by candidate c's weight under scheme s (in c's layer
 * and scope). Twins read the same constants, so that the weights blob holds one copy (and codegen's
 * packing, which shares a copy between products of one constant, one packed copy). */
static Node *build_qmatmul(Q *q, Graph *h, Node *a, Cand *c, const Scheme *s)
{
    QWeight *w = qweight(q, c, s);
    int group = s->group && c->K > s->group ? s->group : 0;
    int64_t ng = group ? (c->K + group - 1) / group : 1;
    ir_set_origin(h, c->n);
    if (w->gen != q->gen) {
        Dim ws[2] = {dim_const(c->K), dim_const(c->N)}, ss[2] = {dim_const(ng), dim_const(c->N)};
        w->cq = ir_const(h, s->dt, 2, ws, w->q, c->b->loc);
        w->cs = w->scale ? ir_const(h, DT_F32, 2, ss, w->scale, c->b->loc) : NULL;
        w->gen = q->gen;
    }
    Node *in[3] = {a, w->cq, w->cs};
    Attrs at = {0};
    at.group = group;
    at.dynamic = s->dynamic;
    at.ascale = s->act ? act_scale(c) : 0;
    Node *qm = ir_build(h, OP_QMATMUL, &at, w->scale ? 3 : 2, in, NULL, c->n->loc, NULL);
    ir_set_origin(h, NULL);
    return qm;
}

/* A copy of g in which every matmul of a layer whose choice is not fp32 is a qmatmul; with probes,
 * the left operands of the candidates are extra outputs after g's (in candidate order). */
static Graph *trial(Q *q, const int *choice, int probes)
{
    Graph *g = q->g, *h = ir_graph_new();
    q->gen++;
    h->model = g->model;
    h->source = g->source;
    h->vocab = g->vocab;
    h->nsym = g->nsym;
    memcpy(h->syms, g->syms, sizeof g->syms);
    Node **map = malloc(sizeof(Node *) * ((size_t)g->nnode + 1));
    KILN_ASSERT(map);
    for (int i = 0; i < g->nnode; i++) {
        Node *n = g->nodes[i];
        int ci = q->cand_of[i];
        int s = ci >= 0 ? choice[q->cand[ci].unit] : S_FP32;
        if (s != S_FP32) {
            map[i] = build_qmatmul(q, h, map[n->in[0]->id], &q->cand[ci], &schemes[s]);
            continue;
        }
        Node **in = malloc(sizeof(Node *) * ((size_t)n->nin + 1));
        KILN_ASSERT(in);
        for (int j = 0; j < n->nin; j++)
            in[j] = map[n->in[j]->id];
        Node *m = ir_node(h, n->op, n->dtype, n->rank, n->shape, n->nin, in, n->loc);
        free(in);
        m->at = n->at;
        m->name = n->name;
        m->inl = n->inl;
        m->scope = n->scope;
        m->layer = n->layer;
        map[i] = m;
    }
    for (int k = 0; k < g->ninput; k++) /* the declaration order, which the inputs' values follow */
        h->inputs[k] = map[g->inputs[k]->id];
    for (int k = 0; k < g->noutput; k++)
        ir_add_output(h, g->outputs[k].name, map[g->outputs[k].node->id]);
    for (int c = 0; probes && c < q->ncand; c++)
        ir_add_output(h, "probe", map[q->cand[c].n->in[0]->id]);
    free(map);
    ir_compact(h); /* the quantized matmuls' fp32 weight chains are dead now */
    return h;
}

static void free_outputs(HostTensor *out, int n)
{
    for (int k = 0; k < n; k++)
        free(out[k].data);
}

/* One line on stderr: rewritten in place on a terminal, else a line at the start of each phase and
 * at the end. */
static void progress(Q *q, const char *what)
{
    int first = what != q->phase, last = ++q->progress_done == q->progress_total;
    q->phase = what;
    if (q->tty || first || last)
        fprintf(stderr, "%schoose-quant: %s: %d/%d interpreter runs%s", q->tty ? "\r\033[K" : "", what,
                q->progress_done, q->progress_total, last || !q->tty ? "\n" : "");
}

/* The fp32 model on every run: the references, and (on the calibration runs) the activations' ranges. */
static int reference(Q *q)
{
    int *fp = calloc((size_t)q->nunit + 1, sizeof(int));
    Graph *h = trial(q, fp, 1);
    free(fp);
    HostTensor *out = calloc((size_t)h->noutput, sizeof *out);
    q->ref_cal = calloc((size_t)q->cal.nrun + 1, sizeof *q->ref_cal);
    q->ref_held = calloc((size_t)q->held.nrun + 1, sizeof *q->ref_held);
    KILN_ASSERT(out && q->ref_cal && q->ref_held);
    for (int c = 0; c < q->ncand; c++)
        q->cand[c].st = calloc(1, sizeof(CalibStats));
    int rc = 0;
    for (int r = 0; r < q->cal.nrun + q->held.nrun && !rc; r++) {
        int held = r >= q->cal.nrun;
        if ((rc = pass_calib_run(h, held ? &q->held : &q->cal, held ? r - q->cal.nrun : r, out, q->o->d)))
            break;
        for (int c = 0; !held && c < q->ncand; c++)
            pass_calib_observe(q->cand[c].st, &out[q->g->noutput + c]);
        (held ? q->ref_held : q->ref_cal)[held ? r - q->cal.nrun : r] = out[0];
        out[0].data = NULL;
        free_outputs(out, h->noutput);
        progress(q, "fp32 reference");
    }
    free(out);
    ir_graph_free(h);
    return rc;
}

/* The loss of the choice on a set of runs against their references; -1 after an error. */
static int measure(Q *q, const int *choice, const CalibSet *s, const HostTensor *ref, double *loss, const char *what)
{
    Graph *h = trial(q, choice, 0);
    HostTensor *out = calloc((size_t)h->noutput + 1, sizeof *out);
    KILN_ASSERT(out);
    CalibLoss l = {0};
    int rc = 0;
    for (int r = 0; r < s->nrun && !rc; r++) {
        if ((rc = pass_calib_run(h, s, r, out, q->o->d)))
            break;
        pass_calib_loss_add(&l, q->kl, &ref[r], &out[0]);
        free_outputs(out, h->noutput);
        progress(q, what);
    }
    free(out);
    ir_graph_free(h);
    *loss = pass_calib_loss(&l, q->kl);
    return rc;
}

static int sensitivity(Q *q)
{
    int *choice = malloc(sizeof(int) * ((size_t)q->nunit + 1));
    KILN_ASSERT(choice);
    for (int u = 0; u < q->nunit; u++)
        for (int s = S_FP32 + 1; s < NSCHEME; s++) {
            for (int v = 0; v < q->nunit; v++)
                choice[v] = v == u ? s : S_FP32;
            if (measure(q, choice, &q->cal, q->ref_cal, &q->unit[u].loss[s], "sensitivity")) {
                free(choice);
                return -1;
            }
        }
    free(choice);
    return 0;
}

/* ---------------------------------------------------------------- the choice */

static int64_t total_bytes(const Q *q)
{
    int64_t b = q->fixed;
    for (int u = 0; u < q->nunit; u++)
        b += q->unit[u].bytes[q->unit[u].choice];
    return b;
}

/* The multiple-choice knapsack (passes.h), by dynamic programming over the constrained dimensions
 * (one or two) discretised. In dimension d, layer i's option s costs
 *     units = ceil((cost - least) / slack x G)
 * where least is the least of layer i's options' costs, slack = budget - the sum of the layers' least
 * costs, and G the grid's units; a choice whose units sum to at most G then costs at most
 * sum(least) + slack = budget, so every choice the program finds meets the budgets (rounding each
 * cost up is what makes it sound). The reverse fails only near the edge: a choice whose costs use
 * more than all but n / G of the slack may be missed (n layers). best[a][b] is the least objective
 * (compared as a tuple: obj's cost, then the other dimensions' in order) of the layers so far with
 * at most a units in the first dimension and b in the second; one layer at a time, each state takes
 * the best option whose units fit; the options chosen are kept per layer and state, and read back
 * from the state of the whole budget. Memory: the choices, n x states bytes, kept under MCKP_BYTES by
 * a coarser grid for many layers; time: n x states x options. */
enum { MCKP_GRID1 = 1 << 15, MCKP_GRID2 = 512, MCKP_BYTES = 1 << 25 };

static int tuple_less(const double *a, const double *b)
{
    for (int k = 0; k < 3; k++)
        if (a[k] != b[k])
            return a[k] < b[k];
    return 0;
}

int pass_quant_mckp(int n, int nopt, const double *cost, const double *budget, int obj, int *choice)
{
    KILN_ASSERT(obj >= 0 && obj < 3 && nopt > 0 && nopt < 255);
    int cd[3], nc = 0, ord[3] = {obj, 0, 0};
    for (int d = 0, k = 1; d < 3; d++) {
        if (d != obj && budget[d] >= 0)
            cd[nc++] = d;
        if (d != obj)
            ord[k++] = d;
    }
    KILN_ASSERT(nc <= 2);
    if (n == 0)
        return 0;
    int64_t per = MCKP_BYTES / n;
    int64_t G[2] = {0, 0};
    if (nc == 1)
        G[0] = per < MCKP_GRID1 ? (per < 64 ? 64 : per) : MCKP_GRID1;
    for (int k = 0; nc == 2 && k < 2; k++) {
        int64_t g = (int64_t)sqrt((double)per);
        G[k] = g < MCKP_GRID2 ? (g < 16 ? 16 : g) : MCKP_GRID2;
    }
    int64_t W = (G[0] + 1) * (G[1] + 1);
    int64_t *units = calloc((size_t)n * (size_t)nopt * 2, sizeof(int64_t));
    KILN_ASSERT(units);
    int rc = 0;
    for (int k = 0; k < nc && !rc; k++) {
        int d = cd[k];
        double sum = 0;
        double *least = malloc(sizeof(double) * (size_t)n);
        KILN_ASSERT(least);
        for (int i = 0; i < n; i++) {
            least[i] = INFINITY;
            for (int s = 0; s < nopt; s++) {
                const double *c = &cost[((size_t)i * nopt + s) * 3];
                if (!isnan(c[0]) && !isnan(c[1]) && !isnan(c[2]) && c[d] < least[i])
                    least[i] = c[d];
            }
            sum += least[i];
        }
        double slack = budget[d] - sum;
        if (!(slack >= 0)) /* also a layer without options (sum infinite) */
            rc = 1;
        for (int i = 0; i < n && !rc; i++)
            for (int s = 0; s < nopt; s++) {
                double extra = cost[((size_t)i * nopt + s) * 3 + d] - least[i], u;
                if (!(extra > 0))
                    u = 0;
                else
                    u = slack > 0 ? ceil(extra / slack * (double)G[k]) : INFINITY;
                units[((size_t)i * nopt + s) * 2 + k] = u > (double)G[k] ? G[k] + 1 : (int64_t)u;
            }
        free(least);
    }
    if (rc) {
        free(units);
        return 1;
    }
    double *best = malloc(sizeof(double) * 3 * (size_t)W), *next = malloc(sizeof(double) * 3 * (size_t)W);
    unsigned char *ch = calloc((size_t)n * (size_t)W, 1);
    KILN_ASSERT(best && next && ch);
    for (int64_t st = 0; st < 3 * W; st++)
        best[st] = 0;
    for (int i = 0; i < n; i++) {
        for (int64_t a = 0; a <= G[0]; a++)
            for (int64_t b = 0; b <= G[1]; b++) {
                int64_t st = a * (G[1] + 1) + b;
                double *v = &next[3 * st], t[3];
                v[0] = v[1] = v[2] = INFINITY;
                int bs = 255;
                for (int s = 0; s < nopt; s++) {
                    const double *c = &cost[((size_t)i * nopt + s) * 3];
                    const int64_t *u = &units[((size_t)i * nopt + s) * 2];
                    if (isnan(c[0]) || isnan(c[1]) || isnan(c[2]) || u[0] > a || u[1] > b)
                        continue;
                    const double *from = &best[3 * ((a - u[0]) * (G[1] + 1) + b - u[1])];
                    if (isinf(from[0]))
                        continue;
                    for (int k = 0; k < 3; k++)
                        t[k] = from[k] + c[ord[k]];
                    if (bs == 255 || tuple_less(t, v))
                        memcpy(v, t, sizeof t), bs = s;
                }
                ch[(size_t)i * (size_t)W + (size_t)st] = (unsigned char)bs;
            }
        double *x = best;
        best = next, next = x;
    }
    int64_t a = G[0], b = G[1];
    if (ch[(size_t)(n - 1) * (size_t)W + (size_t)(a * (G[1] + 1) + b)] == 255) {
        rc = 1;
    } else {
        for (int i = n - 1; i >= 0; i--) {
            int s = ch[(size_t)i * (size_t)W + (size_t)(a * (G[1] + 1) + b)];
            KILN_ASSERT(s != 255);
            choice[i] = s;
            a -= units[((size_t)i * nopt + s) * 2];
            b -= units[((size_t)i * nopt + s) * 2 + 1];
        }
        if (budget[obj] >= 0 && best[3 * (G[0] * (G[1] + 1) + G[1])] > budget[obj])
            rc = 1; /* the least obj breaks obj's budget: no choice meets it (choice: the closest) */
    }
    free(best);
    free(next);
    free(ch);
    free(units);
    return rc;
}

/* Layer u's options for the knapsack: cost[(u * NSCHEME + s) * 3 + d], d = loss, bytes, ms; NaN for a
 * scheme it cannot take (pinned to another, or not measured). */
static double *costs(const Q *q)
{
    double *c = malloc(sizeof(double) * 3 * NSCHEME * ((size_t)q->nunit + 1));
    KILN_ASSERT(c);
    for (int u = 0; u < q->nunit; u++)
        for (int s = 0; s < NSCHEME; s++) {
            const Unit *un = &q->unit[u];
            double *x = &c[(u * NSCHEME + s) * 3];
            int ok = un->pinned ? s == un->choice : !isnan(un->loss[s]);
            x[0] = ok ? un->loss[s] : NAN;
            x[1] = ok ? (double)un->bytes[s] : NAN;
            x[2] = ok ? un->ms[s] : NAN;
        }
    return c;
}

static double total_ms(const Q *q, int fp32)
{
    double t = 0;
    for (int u = 0; u < q->nunit; u++)
        t += q->unit[u].ms[fp32 ? S_FP32 : q->unit[u].choice];
    return t;
}

/* The choice under the budgets (< 0: not given): with loss=X, the fewest bytes whose summed losses
 * stay within X (and whose estimated time meets speed=F); without it, the least summed loss that meets
 * size=MB and speed=F. When no choice meets them, the closest: within loss=X if that alone can be met
 * (else the least loss), the fastest with speed=F, else the smallest. */
static void choose(Q *q, double loss_budget, double size_budget, double speed)
{
    double *c = costs(q);
    double budget[3] = {loss_budget, size_budget >= 0 ? size_budget - (double)q->fixed : -1,
                        speed > 0 ? total_ms(q, 1) / speed : -1};
    /* the weights no quantization touches alone exceed size=MB: none meets it */
    int over = size_budget >= 0 && budget[1] < 0;
    int *ch = malloc(sizeof(int) * ((size_t)q->nunit + 1));
    KILN_ASSERT(ch);
    int least = speed > 0 ? 2 : 1; /* the resource the closest choice spares */
    double none[3] = {-1, -1, -1}, loss_only[3] = {loss_budget, -1, -1};
    if ((over || pass_quant_mckp(q->nunit, NSCHEME, c, budget, loss_budget >= 0 ? 1 : 0, ch)) &&
        (loss_budget < 0 || pass_quant_mckp(q->nunit, NSCHEME, c, loss_only, least, ch)))
        pass_quant_mckp(q->nunit, NSCHEME, c, none, loss_budget >= 0 ? 0 : least, ch);
    for (int u = 0; u < q->nunit; u++)
        q->unit[u].choice = ch[u];
    free(ch);
    free(c);
}

/* The loss of layer u alone under its current scheme on the held-out runs (measured once). */
static int held_alone(Q *q, int u, double *loss)
{
    Unit *un = &q->unit[u];
    if (isnan(un->held[un->choice])) {
        int *c = calloc((size_t)q->nunit + 1, sizeof(int));
        KILN_ASSERT(c);
        c[u] = un->choice;
        q->progress_total += q->held.nrun;
        int rc = measure(q, c, &q->held, q->ref_held, &un->held[un->choice], "verification");
        free(c);
        if (rc)
            return -1;
    }
    *loss = un->held[un->choice];
    return 0;
}

/* The quantized layer whose scheme alone loses most on the held-out runs (where the choice failed:
 * the calibration runs may not show it) moves up one step: w4 to the 8-bit scheme that lost less on
 * the calibration runs (if that lost less than w4), the others to fp32. Returns 1, 0 when no layer
 * can move, -1 after an error. */
static int move_up(Q *q)
{
    int worst = -1;
    double wl = -INFINITY, l;
    for (int u = 0; u < q->nunit; u++) {
        const Unit *un = &q->unit[u];
        if (un->pinned || un->choice == S_FP32)
            continue;
        if (held_alone(q, u, &l))
            return -1;
        if (worst < 0 || l > wl)
            worst = u, wl = l;
    }
    if (worst < 0)
        return 0;
    Unit *un = &q->unit[worst];
    int up = S_FP32;
    if (un->choice == S_W4) {
        int s8 = un->loss[S_W8] <= un->loss[S_INT8] ? S_W8 : S_INT8;
        s8 = un->loss[S_INT8S] < un->loss[s8] ? S_INT8S : s8;
        if (un->loss[s8] < un->loss[S_W4])
            up = s8;
    }
    if (up == S_FP32 && un->choice != S_BF16 && un->loss[S_BF16] < un->loss[un->choice])
        up = S_BF16;
    if (q->o->log)
        fprintf(q->o->log, "choose-quant: layer %s (alone %.4g on the held-out runs) moves from %s to %s\n", un->key,
                wl, schemes[un->choice].name, schemes[up].name);
    un->choice = up;
    return 1;
}

static int *choices(const Q *q)
{
    int *c = malloc(sizeof(int) * ((size_t)q->nunit + 1));
    KILN_ASSERT(c);
    for (int u = 0; u < q->nunit; u++)
        c[u] = q->unit[u].choice;
    return c;
}

/* Verifies the choice on the held-out runs, moving layers up until it holds. Returns 0, 1 when no
 * move makes it hold (pinned layers), -1 after an error. */
static int verify(Q *q, double loss_budget)
{
    for (;;) {
        int *c = choices(q);
        int rc = measure(q, c, &q->held, q->ref_held, &q->held_loss, "verification");
        free(c);
        if (rc)
            return -1;
        if (loss_budget < 0 || q->held_loss <= loss_budget)
            return 0;
        if (q->o->log)
            fprintf(q->o->log, "choose-quant: held-out loss %.4g is over the budget %.4g: moving a layer up\n",
                    q->held_loss, loss_budget);
        int m = move_up(q);
        if (m <= 0)
            return m < 0 ? -1 : 1;
        q->progress_total += q->held.nrun;
    }
}

/* ---------------------------------------------------------------- report and overrides */

static void loss_str(double v, char *buf, size_t n)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.4g", v);
}

/* The time model's target and rates, as comment lines of the report. */
static void write_time_model(const Q *q, FILE *f)
{
    const QuantTarget *t = &q->target;
    fprintf(f, "# time model (t = max(2MKN / F, weight bytes / B), one thread, a nominal %.1f GHz): CPU %s", CLOCK_MHZ / 1e3,
            t->cpu ? t->cpu : "?");
    if (t->core)
        fprintf(f, " (%s: %d FMA pipes of %d bits)", t->core, t->fma_pipes, t->fma_bits);
    else
        fprintf(f, " (not a known core: 2 FMA pipes of %d bits assumed)", 32 * t->vw);
    fprintf(f, ", %s, %d floats a vector%s, VNNI %s, AVX512-BF16 %s, AMX %s; last-level cache ", t->isa ? t->isa : "?",
            t->vw, t->fma ? "" : ", no FMA", t->vnni ? "yes" : "no", t->bf16 ? "yes" : "no",
            t->amx_int8 && t->amx_bf16 ? "int8 and bf16" : t->amx_int8 ? "int8" : t->amx_bf16 ? "bf16" : "no");
    if (t->llc > 0)
        fprintf(f, "%.4g MiB, from %s%s\n", (double)t->llc / (1 << 20), t->llc_from ? t->llc_from : "?",
                q->target.known && q->o->quant_target.known ? "" : " (no target given: the development machine's)");
    else
        fprintf(f, "unknown (weights taken to stay in cache)\n");
    for (int s = 0; s < NSCHEME; s++) {
        const Rate *r = &q->rate[s];
        fprintf(f, "#   %-5s F %6.4g GOP/s (%s), B %5.3g GB/s: %s; all weights under it %.4g MB%s\n", schemes[s].name,
                r->gops, r->why, r->gbs, r->kernel, (double)q->ws[s] / 1e6,
                q->dram[s] ? ", beyond the LLC: B is DRAM's" : "");
    }
}

static void write_report(const Q *q, FILE *f)
{
    const Graph *g = q->g;
    const PassOptions *o = q->o;
    fprintf(f, "# kiln choose-quant: model %s", g->model ? g->model : "?");
    if (q->cal.nrun)
        fprintf(f, ", %d calibration run%s, %d held-out run%s", q->cal.nrun, q->cal.nrun == 1 ? "" : "s",
                q->held.nrun, q->held.nrun == 1 ? "" : "s");
    if (o->quant_budget)
        fprintf(f, ", budget %s", o->quant_budget);
    if (o->quant)
        fprintf(f, ", --quant %s", o->quant);
    fprintf(f, "\n");
    if (q->cal.nrun)
        fprintf(f, "# loss: %s against fp32 over the calibration runs with only that layer quantized ('-': not "
                   "measured)\n",
                q->kl ? "mean KL divergence (nats) of the softmax of the first output" : "relative error of the first output");
    if (!isnan(q->held_loss))
        fprintf(f, "# the whole choice on the held-out runs: loss %.4g\n", q->held_loss);
    int64_t fp = q->fixed;
    for (int u = 0; u < q->nunit; u++)
        fp += q->unit[u].bytes[S_FP32];
    fprintf(f, "# weights: %.6g MB (fp32: %.6g MB); bytes: the layer's matmul weights and scales; MFLOP: its "
               "matmuls' at the inputs' largest sizes\n",
            (double)total_bytes(q) / 1e6, (double)fp / 1e6);
    fprintf(f, "# matmuls: an estimated %.4g ms (fp32: %.4g ms; speed %.3gx); ms: the layer's under its scheme, "
               "fp32-ms under fp32, at those sizes on one thread (the time model below)\n",
            total_ms(q, 0), total_ms(q, 1), total_ms(q, 0) > 0 ? total_ms(q, 1) / total_ms(q, 0) : 1.0);
    write_time_model(q, f);
    fprintf(f, "# edit the scheme column (fp32, bf16, int8, int8s, w8, w4) and pass the file to --quant-overrides\n");
    fprintf(f, "# %-6s %-6s %-18s %-10s %-10s %-10s %-10s %-10s %-10s %10s %10s %9s %9s %9s\n", "layer", "scheme",
            "scope", "loss", "bf16", "int8", "int8s", "w8", "w4", "bytes", "fp32-bytes", "MFLOP", "ms", "fp32-ms");
    for (int u = 0; u < q->nunit; u++) {
        const Unit *un = &q->unit[u];
        char l[NSCHEME][32]; /* l[0]: the chosen scheme's */
        loss_str(un->loss[un->choice], l[0], sizeof l[0]);
        for (int s = S_FP32 + 1; s < NSCHEME; s++)
            loss_str(un->loss[s], l[s], sizeof l[s]);
        fprintf(f, "  %-6s %-6s %-18s %-10s %-10s %-10s %-10s %-10s %-10s %10lld %10lld %9.4g %9.4g %9.4g\n", un->key,
                schemes[un->choice].name, un->scope ? un->scope : "-", l[0], l[1], l[2], l[3], l[4], l[5],
                (long long)un->bytes[un->choice], (long long)un->bytes[S_FP32], un->mflop, un->ms[un->choice],
                un->ms[S_FP32]);
    }
    if (q->cand && q->cand[0].st) {
        fprintf(f, "# the matmuls' left operands over the calibration runs: min, max, 99.9th percentile of |x|, "
                   "int8s's scale\n");
        for (int c = 0; c < q->ncand; c++) {
            const CalibStats *st = q->cand[c].st;
            fprintf(f, "#   %-6s %-24s %11.4g %11.4g %11.4g %11.4g\n", q->unit[q->cand[c].unit].key,
                    q->cand[c].n->scope ? q->cand[c].n->scope : "-", st->min, st->max,
                    pass_calib_percentile(st, 99.9), act_scale(&q->cand[c]));
        }
    }
}

static int report(const Q *q)
{
    const PassOptions *o = q->o;
    int explain = o->explain && !strcmp(o->explain, "choose-quant");
    if (explain)
        write_report(q, stderr);
    if (o->report && !(explain && o->report == stderr))
        write_report(q, o->report);
    if (!o->quant_report)
        return 0;
    FILE *f = fopen(o->quant_report, "w");
    if (!f) {
        diag_fatal(o->d, "--quant-report: cannot write '%s'", o->quant_report);
        return -1;
    }
    write_report(q, f);
    if (fclose(f)) {
        diag_fatal(o->d, "--quant-report: cannot write '%s'", o->quant_report);
        return -1;
    }
    return 0;
}

/* The layers' names for an error: "top, 0, 1, ..., head". */
static const char *layer_list(const Q *q, char *buf, size_t n)
{
    buf[0] = 0;
    for (int u = 0; u < q->nunit; u++) {
        size_t k = strlen(buf);
        snprintf(buf + k, n - k, "%s%s", u ? ", " : "", q->unit[u].key);
    }
    return buf;
}

/* Each line "LAYER SCHEME ..." (the report's columns; '#' starts a comment) pins a layer. */
static int read_overrides(Q *q, const char *path)
{
    Diag *d = q->o->d;
    size_t len;
    char *text = pass_calib_read_text(path, &len);
    if (!text) {
        diag_fatal(d, "--quant-overrides: cannot open '%s'", path);
        return -1;
    }
    int file = diag_add_file(d, path, text), errors = diag_errors(d), line = 1;
    char names[1024];
    for (const char *p = text; *p; line++) {
        const char *eol = p + strcspn(p, "\n");
        const char *t = p + strspn(p, " \t\r");
        size_t klen = strcspn(t, " \t\r\n#");
        if (klen && *t != '#') {
            const char *sch = t + klen + strspn(t + klen, " \t\r");
            size_t slen = sch < eol ? strcspn(sch, " \t\r\n#") : 0;
            SrcLoc kloc = {file, line, (int)(t - p) + 1}, sloc = {file, line, (int)(sch - p) + 1};
            int u = 0;
            while (u < q->nunit && (strlen(q->unit[u].key) != klen || strncmp(q->unit[u].key, t, klen)))
                u++;
            int s = scheme_index(sch, slen);
            if (u == q->nunit)
                diag_error(d, kloc, "no layer '%.*s' in model %s (its layers: %s)", (int)klen, t,
                           q->g->model ? q->g->model : "?", layer_list(q, names, sizeof names));
            else if (!slen)
                diag_error(d, sloc, "layer %s needs a scheme after it (fp32, bf16, int8, int8s, w8 or w4)", q->unit[u].key);
            else if (s < 0)
                diag_error(d, sloc, "unknown scheme '%.*s' for layer %s (the schemes: fp32, bf16, int8, int8s, w8, w4)", (int)slen,
                           sch, q->unit[u].key);
            else if (q->unit[u].pinned)
                diag_error(d, kloc, "layer %s is given twice", q->unit[u].key);
            else if (schemes[s].act && !q->o->ncalib)
                diag_error(d, sloc, "layer %s: int8s needs --calibrate FILE... (its activation scales come from the "
                           "calibration runs' ranges)", q->unit[u].key);
            else
                q->unit[u].pinned = 1, q->unit[u].choice = s;
        }
        p = *eol ? eol + 1 : eol;
    }
    free(text);
    return diag_errors(d) > errors ? -1 : 0;
}

/* ---------------------------------------------------------------- the pass */

/* Loads the calibration and held-out runs and measures; returns 0 or -1 after an error. */
static int calibrate(Q *q)
{
    const PassOptions *o = q->o;
    CalibSet all = {0};
    if (pass_calib_load(q->g, o->ncalib, o->calib, &all, o->d) ||
        pass_calib_load(q->g, o->nheldout, o->heldout, &q->held, o->d)) {
        pass_calib_free(&all);
        return -1;
    }
    if (!o->nheldout) { /* the last quarter of the runs, at least one, is held out */
        if (all.nrun < 2) {
            diag_fatal(o->d, "--calibrate: %d run in the calibration files; at least 2 are needed to hold some out "
                       "(or give --quant-heldout FILE...)", all.nrun);
            pass_calib_free(&all);
            return -1;
        }
        int keep = all.nrun - (all.nrun / 4 > 0 ? all.nrun / 4 : 1);
        q->cal = all;
        q->held.nrun = all.nrun - keep;
        q->held.in = malloc(sizeof *q->held.in * (size_t)q->held.nrun);
        q->held.data = malloc(sizeof *q->held.data * (size_t)q->held.nrun);
        KILN_ASSERT(q->held.in && q->held.data);
        memcpy(q->held.in, all.in + keep, sizeof *q->held.in * (size_t)q->held.nrun);
        memcpy(q->held.data, all.data + keep, sizeof *q->held.data * (size_t)q->held.nrun);
        q->cal.nrun = keep;
    } else {
        q->cal = all;
    }
    q->kl = pass_calib_is_kl(q->g);
    q->tty = isatty(2);
    q->progress_total = (q->cal.nrun + q->held.nrun) + (NSCHEME - 1) * q->nunit * q->cal.nrun + q->held.nrun;
    return reference(q) || sensitivity(q) ? -1 : 0;
}

static void apply(Q *q)
{
    Graph *g = q->g;
    q->gen++;
    for (int c = 0; c < q->ncand; c++) {
        Cand *cd = &q->cand[c];
        int s = q->unit[cd->unit].choice;
        if (s == S_FP32)
            continue;
        Node *qm = build_qmatmul(q, g, cd->n->in[0], cd, &schemes[s]);
        ir_replace_uses(g, cd->n, qm);
    }
    ir_toposort(g);
    ir_compact(g);
}

static void q_free(Q *q)
{
    for (int c = 0; c < q->ncand; c++)
        free(q->cand[c].st);
    for (int r = 0; r < q->cal.nrun; r++)
        free(q->ref_cal[r].data);
    for (int r = 0; r < q->held.nrun; r++)
        free(q->ref_held[r].data);
    free(q->ref_cal);
    free(q->ref_held);
    if (q->o->nheldout) {
        pass_calib_free(&q->held);
    } else { /* held-out runs are the tail of cal's arrays */
        q->cal.nrun += q->held.nrun;
        free(q->held.in);
        free(q->held.data);
    }
    pass_calib_free(&q->cal);
    free(q->cand);
    free(q->unit);
    free(q->cand_of);
}

/* Chooses under the budget and verifies; 0, or -1 after an error (reported). */
static int budgeted(Q *q)
{
    const PassOptions *o = q->o;
    double loss_b = -1, size_mb = -1, speed = -1;
    if (o->quant_budget && !pass_quant_budget(o->quant_budget, &loss_b, &size_mb, &speed)) {
        diag_fatal(o->d, "--quant-budget: expected loss=X, size=MB, speed=F or several (loss=0.01,speed=2), not '%s'",
                   o->quant_budget);
        return -1;
    }
    double size_b = size_mb >= 0 ? size_mb * 1e6 : -1;
    if (!o->quant_budget) { /* measure and report; the choice is the overrides' */
        q->progress_total -= q->held.nrun;
        q->held_loss = NAN;
        return 0;
    }
    choose(q, loss_b, size_b, speed);
    int v = verify(q, loss_b);
    if (v < 0)
        return -1;
    if (v > 0) {
        diag_fatal(o->d, "--quant-budget %s: no choice meets it: with the pinned layers alone the held-out loss is "
                   "%.4g; the closest choice is in the report", o->quant_budget, q->held_loss);
        return -1;
    }
    int size_over = size_b >= 0 && (double)total_bytes(q) > size_b;
    int speed_over = speed > 0 && total_ms(q, 0) > total_ms(q, 1) / speed * (1 + 1e-9); /* the sums' rounding */
    if (size_over || speed_over) {
        char what[160] = "";
        if (size_over)
            snprintf(what, sizeof what, "%.6g MB of weights", (double)total_bytes(q) / 1e6);
        if (speed_over) {
            size_t k = strlen(what);
            snprintf(what + k, sizeof what - k, "%san estimated %.4g ms of matmuls (%.3gx fp32's speed)",
                     size_over ? " and " : "", total_ms(q, 0), total_ms(q, 1) / total_ms(q, 0));
        }
        diag_fatal(o->d, "--quant-budget %s: no choice meets it: the closest (in the report) has %s%s", o->quant_budget,
                   what, loss_b >= 0 ? " within the loss" : speed > 0 ? " (every layer at its fastest scheme)"
                                                                     : " (every layer at its smallest scheme)");
        return -1;
    }
    return 0;
}

int pass_choose_quant(Graph *g, const PassOptions *o)
{
    if (!pass_quant_on(o))
        return 0;
    Q q = {.g = g, .o = o, .held_loss = NAN, .target = o->quant_target.known ? o->quant_target : dev_machine};
    find_layers(&q);
    time_model(&q);
    int fixed = o->quant ? scheme_index(o->quant, strlen(o->quant)) : S_FP32;
    if (fixed < 0) {
        diag_fatal(o->d, "--quant: unknown scheme '%s' (the schemes are: %s)", o->quant, pass_quant_schemes());
        q_free(&q);
        return 0;
    }
    if (schemes[fixed].act && !o->ncalib) {
        diag_fatal(o->d, "--quant int8s needs --calibrate FILE...: its activation scales come from the calibration "
                   "runs' ranges");
        q_free(&q);
        return -1;
    }
    for (int u = 0; u < q.nunit; u++)
        q.unit[u].choice = fixed;
    int rc = o->quant_overrides ? read_overrides(&q, o->quant_overrides) : 0;
    if (!rc && o->ncalib)
        rc = calibrate(&q);
    if (!rc) {
        rc = o->ncalib ? budgeted(&q) : 0;
        if (report(&q)) /* after a budget no choice meets too: the closest choice */
            rc = -1;
    }
    int changes = 0;
    for (int c = 0; !rc && c < q.ncand; c++)
        changes += q.unit[q.cand[c].unit].choice != S_FP32;
    if (!rc && changes)
        apply(&q);
    q_free(&q);
    return rc ? -1 : changes;
}
