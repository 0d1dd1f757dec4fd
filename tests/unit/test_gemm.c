/* test_gemm.c: the f32 matmul kernel of codegen/gemm.c against the interpreter.
 *
 * Each case is a graph in the IR text form over one safetensors file written here (under /tmp) with
 * st_write: for every K and N of SIZES a matrix "wK_N" [K, N] (GPT-2's Conv1D layout, x @ w) and
 * "tN_K" [N, K] (nn.Linear's, x @ t.T), uniform in [-1, 1]. The graph is compiled once (cg_new with
 * -O2, cg_build, cg_optimise) and run for every value of its symbol T on one and on two threads, and
 * each output is compared with ir_interp's: |got - want| <= 1e-5 * max |want| (the kernel accumulates
 * in f32, the interpreter in double; over K <= 700 terms of size ~1 that is a few 1e-7). Outputs are
 * filled with NaN before a run and followed by guard bytes that must stay untouched.
 *
 * The runs go through a JIT made here like cg_jit_run's, which is given the runtime's
 * rt_parallel_for and rt_pool_size as absolute symbols (a unit test does not export its symbols to
 * the JIT), so that one compilation runs on one and on two threads. Every fourth case also runs
 * through cg_jit_run itself, on two threads.
 *
 * Coverage:
 *   - every (N, K) of SIZES x SIZES with an M of SIZES, transposed and untransposed weights
 *     alternating; the weights must be packed (Plan.packed) and the weight and transpose folded;
 *   - M symbolic (T = every value of SIZES), 3-D and 4-D x against a 2-D weight, 1-D x;
 *   - blocks of K, several n-blocks and m-blocks (K = 700, N = 450), with the host's block sizes
 *     and again with tiny ones (KILN_GEMM), which put block edges everywhere;
 *   - activation x activation: [H, T, d] @ [H, d, T] (through a transpose, as attention writes it),
 *     [H, T, T] @ [H, T, d], broadcast batch dimensions, a 2-D activation B;
 *   - a weight that another node also reads (not folded), one weight under two matmuls, a CONST B,
 *     reshapes under the weight;
 *   - the AVX2 and the SSE kernels (features -avx512f, and -avx,-avx2,-fma) on an x86 host.
 * Run with the repository root as the working directory (ctest does). Exits non-zero on any failure.
 */
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/kiln_rt.h"

#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int SIZES[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65, 100, 197};
enum { NSIZES = sizeof SIZES / sizeof SIZES[0], GUARD = 64, MAX_IO = 16 };

static char weights_path[256];
static int failures, cases;

/* ---------------------------------------------------------------- data */

static uint64_t rng = 88172645463325252ull;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static float *random_floats(int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!p)
        abort();
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)uniform();
    return p;
}

/* The weights file: wK_N [K, N] and tN_K [N, K] for all sizes, and a few more. */
static void write_weights(void)
{
    enum { MAXT = 2 * NSIZES * NSIZES + 16 };
    static WTensor t[MAXT];
    static char names[MAXT][32];
    int n = 0;
    for (int i = 0; i < NSIZES; i++)
        for (int j = 0; j < NSIZES; j++)
            for (int tr = 0; tr < 2; tr++) {
                int K = SIZES[i], N = SIZES[j];
                snprintf(names[n], sizeof names[n], tr ? "t%d_%d" : "w%d_%d", tr ? N : K, tr ? K : N);
                t[n] = (WTensor){names[n], DT_F32, 2, {tr ? N : K, tr ? K : N}, random_floats((int64_t)K * N),
                                 sizeof(float) * (size_t)K * (size_t)N};
                n++;
            }
    const struct { const char *name; int rank; int64_t shape[2]; } extra[] = {
        {"w700_450", 2, {700, 450}}, {"t450_700", 2, {450, 700}}, {"v60", 1, {60}}, {"s64", 2, {64, 64}},
        {"w16_32", 2, {16, 32}}, {"t32_16", 2, {32, 16}},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        int64_t ne = extra[i].rank == 1 ? extra[i].shape[0] : extra[i].shape[0] * extra[i].shape[1];
        t[n++] = (WTensor){extra[i].name, DT_F32, extra[i].rank, {extra[i].shape[0], extra[i].shape[1]},
                           random_floats(ne), sizeof(float) * (size_t)ne};
    }
    snprintf(weights_path, sizeof weights_path, "/tmp/kiln-test-gemm-%d.safetensors", (int)getpid());
    if (st_write(weights_path, n, t, 0, NULL, NULL)) {
        fprintf(stderr, "test_gemm: cannot write %s\n", weights_path);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        free((void *)t[i].data);
}

/* ---------------------------------------------------------------- a JIT with the runtime's pool */

static void counted_parallel_for(RtPool *p, int64_t n, void (*fn)(void *, int64_t, int64_t), void *ctx);

typedef struct Jit {
    LLVMOrcLLJITRef jit;
    RtEntry entry;
} Jit;

static int jit_fail(LLVMErrorRef e, const char *what)
{
    char *msg = LLVMGetErrorMessage(e);
    printf("  JIT: %s: %s\n", what, msg);
    LLVMDisposeErrorMessage(msg);
    return -1;
}

/* Takes cg's target machine; the module is copied. */
static int jit_open(Cg *cg, Jit *j)
{
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(cg->tm));
    cg->tm = NULL;
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->jit, jb);
    if (e)
        return jit_fail(e, "cannot create the JIT");
    LLVMOrcJITDylibRef main = LLVMOrcLLJITGetMainJITDylib(j->jit);
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL);
    if (e)
        return jit_fail(e, "cannot search the process");
    LLVMOrcJITDylibAddGenerator(main, gen);
    LLVMJITSymbolFlags fl = {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    LLVMOrcCSymbolMapPair rt[2] = {
        {LLVMOrcLLJITMangleAndIntern(j->jit, "rt_parallel_for"), {(LLVMOrcExecutorAddress)(uintptr_t)counted_parallel_for, fl}},
        {LLVMOrcLLJITMangleAndIntern(j->jit, "rt_pool_size"), {(LLVMOrcExecutorAddress)(uintptr_t)rt_pool_size, fl}},
    };
    e = LLVMOrcJITDylibDefine(main, LLVMOrcAbsoluteSymbols(rt, 2));
    if (e)
        return jit_fail(e, "cannot define the runtime's symbols");
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMMemoryBufferRef buf = LLVMWriteBitcodeToMemoryBuffer(cg->mod);
    LLVMModuleRef mod;
    int bad = LLVMParseBitcodeInContext2(LLVMOrcThreadSafeContextGetContext(tsc), buf, &mod);
    LLVMDisposeMemoryBuffer(buf);
    if (bad) {
        LLVMOrcDisposeThreadSafeContext(tsc);
        printf("  JIT: cannot copy the module\n");
        return -1;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    e = LLVMOrcLLJITAddLLVMIRModule(j->jit, main, tsm);
    if (e)
        return jit_fail(e, "cannot add the module");
    char name[256];
    snprintf(name, sizeof name, "kiln_%s_run_raw", cg->prefix);
    LLVMOrcExecutorAddress addr;
    e = LLVMOrcLLJITLookup(j->jit, &addr, name);
    if (e)
        return jit_fail(e, "cannot find the entry");
    j->entry = (RtEntry)(uintptr_t)addr;
    return 0;
}

/* ---------------------------------------------------------------- cases */

typedef struct Case {
    const char *what;     /* one line for the report */
    char ir[4096];        /* nodes and outputs */
    const int *T;         /* values of T (0-terminated), or NULL when nothing is symbolic */
    const char *features; /* CgOptions.features, or NULL for the host's */
    const char *blocks;   /* KILN_GEMM during compilation, or NULL */
    int packed;           /* every matmul must get packed weights, every weight and transpose be folded */
    int folded[3];        /* nodes that must be folded (-1: none) */
    int kept;             /* a node that must not be folded, or -1 */
} Case;

static const int T_ALL[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65, 100, 197, 0};
static const int T_FEW[] = {1, 17, 100, 197, 0};
static const int T_ATT[] = {1, 2, 17, 33, 100, 197, 0};

/* The largest |want| and the largest error, with the index of the first element out of tolerance. */
static int compare(const float *got, const float *want, int64_t n, double *maxerr, double *scale, int64_t *where)
{
    double m = 0, e = 0;
    *where = -1;
    for (int64_t i = 0; i < n; i++)
        if (fabs(want[i]) > m)
            m = fabs(want[i]);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]))
            d = INFINITY;
        if (d > e)
            e = d;
        if (*where < 0 && !(d <= 1e-5 * m + 1e-30))
            *where = i;
    }
    *maxerr = e;
    *scale = m;
    return *where >= 0;
}

/* A pool dispatch, counted: the two-thread runs must reach rt_parallel_for. */
static long dispatches;

static void counted_parallel_for(RtPool *p, int64_t n, void (*fn)(void *, int64_t, int64_t), void *ctx)
{
    if (rt_pool_size(p) > 1)
        dispatches++;
    rt_parallel_for(p, n, fn, ctx);
}

/* Runs g at syms through jit (on one thread and on two) or through cg_jit_run (two threads), and
 * compares every output with the interpreter's. */
static int check_at(Graph *g, Cg *cg, Jit *jit, const int64_t *syms, Diag *d, double *worst)
{
    HostTensor in[MAX_IO] = {{0}}, want[MAX_IO] = {{0}};
    void *inp[MAX_IO], *outp[MAX_IO] = {0};
    int bad = 0;
    rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(syms[0] * 7919 + 1);
    for (int k = 0; k < g->ninput; k++) {
        const Node *x = g->inputs[k];
        in[k].dtype = x->dtype;
        in[k].rank = x->rank;
        int64_t ne = 1;
        for (int i = 0; i < x->rank; i++)
            ne *= in[k].shape[i] = dim_eval(x->shape[i], syms);
        in[k].data = random_floats(ne);
        inp[k] = in[k].data;
    }
    int64_t bound[IR_MAX_SYMS], ne[MAX_IO];
    if (ir_bind_inputs(g, in, bound, d) || ir_interp(g, in, want, d)) {
        printf("  T=%lld: the interpreter failed\n", (long long)syms[0]);
        bad = 1;
        goto out;
    }
    for (int k = 0; k < g->noutput; k++) {
        ne[k] = shape_numel(g->outputs[k].node->rank, g->outputs[k].node->shape, bound);
        outp[k] = malloc(sizeof(float) * (size_t)ne[k] + GUARD);
    }
    for (int threads = 1; threads <= 2; threads++) {
        if (!jit && threads == 1)
            continue;
        char label[64];
        snprintf(label, sizeof label, "T=%lld, %d thread%s%s", (long long)syms[0], threads, threads > 1 ? "s" : "",
                 jit ? "" : ", cg_jit_run");
        for (int k = 0; k < g->noutput; k++) {
            memset(outp[k], 0xff, sizeof(float) * (size_t)ne[k]);
            memset((char *)outp[k] + sizeof(float) * (size_t)ne[k], 0x5a, GUARD);
        }
        int rc;
        if (jit) {
            void *arena = aligned_alloc(64, (size_t)((cg->plan.arena_bytes + 63) / 64 * 64 + 64));
            RtPool *pool = rt_pool_new(threads);
            rc = jit->entry(cg->plan.weights, arena, bound, inp, outp, pool);
            rt_pool_free(pool);
            free(arena);
        } else {
            rc = cg_jit_run(cg, bound, inp, outp, threads);
        }
        if (rc) {
            printf("  %s: the kernel failed (%d)\n", label, rc);
            bad = 1;
            continue;
        }
        for (int k = 0; k < g->noutput; k++) {
            for (int b = 0; b < GUARD; b++)
                if (((unsigned char *)outp[k])[sizeof(float) * (size_t)ne[k] + (size_t)b] != 0x5a) {
                    printf("  %s: output %d written past its end\n", label, k);
                    bad = 1;
                    break;
                }
            double err, scale;
            int64_t at;
            if (compare(outp[k], want[k].data, ne[k], &err, &scale, &at)) {
                printf("  %s: output %s element %lld: got %.9g, want %.9g (max |err| %.3g, max |want| %.3g)\n", label,
                       g->outputs[k].name, (long long)at, ((float *)outp[k])[at], ((float *)want[k].data)[at], err, scale);
                bad = 1;
            }
            if (scale > 0 && err / scale > *worst)
                *worst = err / scale;
        }
    }
out:
    for (int k = 0; k < MAX_IO; k++) {
        free(in[k].data);
        free(want[k].data);
        free(outp[k]);
    }
    return bad;
}

static Cg *compile(Graph *g, const Case *c, Diag *d)
{
    if (c->blocks)
        setenv("KILN_GEMM", c->blocks, 1);
    Cg *cg = cg_new(&(CgOptions){.opt = 2, .features = c->features}, d);
    int ok = cg && !cg_build(cg, g) && !cg_optimise(cg);
    unsetenv("KILN_GEMM");
    if (!ok) {
        cg_free(cg);
        return NULL;
    }
    return cg;
}

static void run_case(const Case *c)
{
    cases++;
    Diag *d = diag_new(stdout);
    char text[8192];
    snprintf(text, sizeof text, "model gemm\nweights \"%s\"\nsym T <= 197\n%s", weights_path, c->ir);
    Graph *g = ir_parse("<case>", text, NULL, d);
    int bad = 0;
    double worst = 0;
    if (!g || ir_verify(g, d)) {
        printf("FAIL %s: the case does not parse or verify\n%s\n", c->what, text);
        failures++;
        if (g)
            st_close(g->weights), ir_graph_free(g);
        diag_free(d);
        return;
    }
    Cg *cg = compile(g, c, d);
    if (!cg) {
        printf("FAIL %s: the code generator failed\n", c->what);
        bad = 1;
        goto done;
    }
    /* what the plan must have done */
    for (int i = 0; i < g->nnode && c->packed; i++) {
        const Node *x = g->nodes[i];
        if (x->op == OP_MATMUL && cg->plan.packed[i] < 0) {
            printf("  the weights of matmul %%%d are not packed\n", i);
            bad = 1;
        }
        if ((x->op == OP_WEIGHT || x->op == OP_TRANSPOSE) && c->kept != i && !cg->plan.folded[i]) {
            printf("  node %%%d is not folded\n", i);
            bad = 1;
        }
    }
    for (int i = 0; i < 3; i++)
        if (c->folded[i] >= 0 && !cg->plan.folded[c->folded[i]]) {
            printf("  node %%%d is not folded\n", c->folded[i]);
            bad = 1;
        }
    if (c->kept >= 0 && cg->plan.folded[c->kept]) {
        printf("  node %%%d is folded but read\n", c->kept);
        bad = 1;
    }
    static const int once[] = {1, 0};
    const int *Ts = c->T ? c->T : once;
    Jit jit = {0};
    if (jit_open(cg, &jit)) {
        bad = 1;
    } else {
        for (int r = 0; Ts[r]; r++) {
            int64_t syms[IR_MAX_SYMS] = {Ts[r]};
            bad |= check_at(g, cg, &jit, syms, d, &worst);
        }
    }
    if (jit.jit)
        LLVMOrcDisposeLLJIT(jit.jit);
    cg_free(cg);
    /* every fourth case through cg_jit_run as well (one compilation per run: it takes the module) */
    if (cases % 4 == 0) {
        int64_t syms[IR_MAX_SYMS] = {Ts[0]};
        for (int r = 0; Ts[r]; r++)
            syms[0] = Ts[r];
        cg = compile(g, c, d);
        bad |= !cg || check_at(g, cg, NULL, syms, d, &worst);
        cg_free(cg);
    }
done:
    printf("%s %s  (max |err| / max |want| %.2g)\n", bad ? "FAIL" : "ok  ", c->what, worst);
    failures += bad;
    st_close(g->weights);
    ir_graph_free(g);
    diag_free(d);
}

/* Appends x_i [M, K] @ w [K, N] (tr = 0) or x_i @ t[N, K].T (tr = 1) to c's nodes (*id: the next
 * node number) and its output y_i to outs; M may be "T". */
static void add_matmul(Case *c, char *outs, size_t cap, int *id, const char *M, int K, int N, int tr)
{
    size_t n = strlen(c->ir), o = strlen(outs);
    int x = *id, w = x + 1, y;
    n += (size_t)snprintf(c->ir + n, sizeof c->ir - n, "%%%d = input \"x%d\" : f32[%s, %d]\n", x, x, M, K);
    if (tr) {
        n += (size_t)snprintf(c->ir + n, sizeof c->ir - n,
                              "%%%d = weight \"t%d_%d\" : f32[%d, %d]\n%%%d = transpose(%%%d) {perm=[1, 0]} : f32[%d, %d]\n",
                              w, N, K, N, K, w + 1, w, K, N);
        y = w + 2;
        snprintf(c->ir + n, sizeof c->ir - n, "%%%d = matmul(%%%d, %%%d) : f32[%s, %d]\n", y, x, w + 1, M, N);
    } else {
        n += (size_t)snprintf(c->ir + n, sizeof c->ir - n, "%%%d = weight \"w%d_%d\" : f32[%d, %d]\n", w, K, N, K, N);
        y = w + 1;
        snprintf(c->ir + n, sizeof c->ir - n, "%%%d = matmul(%%%d, %%%d) : f32[%s, %d]\n", y, x, w, M, N);
    }
    KILN_ASSERT(strlen(c->ir) + 1 < sizeof c->ir);
    snprintf(outs + o, cap - o, "output y%d = %%%d\n", y, y);
    *id = y + 1;
}

/* Ends c's text with the outputs. */
static void end_case(Case *c, const char *outs)
{
    size_t n = strlen(c->ir);
    snprintf(c->ir + n, sizeof c->ir - n, "%s", outs);
    KILN_ASSERT(strlen(c->ir) + 1 < sizeof c->ir);
}

/* One graph with x[M, K] @ [K, N] for each (N, K) of nk (n pairs), transposed weights alternating
 * from tr. */
static void matmuls_case(const char *what, const char *M, const int (*nk)[2], int n, int tr, const int *T,
                         const char *features, const char *blocks)
{
    Case c = {.what = what, .T = T, .features = features, .blocks = blocks, .packed = 1, .folded = {-1, -1, -1}, .kept = -1};
    char outs[1024] = "";
    int id = 0;
    for (int i = 0; i < n; i++)
        add_matmul(&c, outs, sizeof outs, &id, M, nk[i][1], nk[i][0], (tr + i) & 1);
    end_case(&c, outs);
    run_case(&c);
}

static char *label(const char *fmt, ...)
{
    static char pool[1 << 16];
    static size_t used;
    va_list ap;
    va_start(ap, fmt);
    char *s = pool + used;
    int n = vsnprintf(s, sizeof pool - used, fmt, ap);
    va_end(ap);
    used += (size_t)n + 1;
    if (used >= sizeof pool)
        abort();
    return s;
}

int main(void)
{
    write_weights();

    /* every (N, K), an M of SIZES each, weights transposed or not: one graph per N */
    for (int i = 0; i < NSIZES; i++) {
        Case c = {.packed = 1, .folded = {-1, -1, -1}, .kept = -1};
        char outs[1024] = "";
        int id = 0;
        for (int j = 0; j < NSIZES; j++) {
            char m[16];
            snprintf(m, sizeof m, "%d", SIZES[(i * 7 + j * 3) % NSIZES]);
            add_matmul(&c, outs, sizeof outs, &id, m, SIZES[j], SIZES[i], (i + j) & 1);
        }
        end_case(&c, outs);
        c.what = label("x[M, K] @ [K, %d] for every K of the sizes, M = sizes[(7i + 3j) %% 13]", SIZES[i]);
        run_case(&c);
    }

    /* M symbolic */
    static const int NK[][2] = {{17, 33}, {64, 64}, {100, 15}, {197, 197}, {1, 7}, {33, 1}, {32, 16}};
    enum { NNK = sizeof NK / sizeof NK[0] };
    matmuls_case("x[T, K] @ [K, N], (N, K) in (17, 33) (64, 64) (100, 15) (197, 197) (1, 7) (33, 1) (32, 16)", "T",
                 NK, NNK, 0, T_ALL, NULL, NULL);
    matmuls_case("the same, the other weights transposed", "T", NK, NNK, 1, T_ALL, NULL, NULL);

    /* blocks of K, several n-blocks and m-blocks; the host's block sizes, then tiny ones */
    static const int BIG[][2] = {{450, 700}, {450, 700}};
    static const char *const blocks[] = {NULL, "kc=16,nc=32,mc=12", "kc=48,nc=64,mc=24"};
    for (int b = 0; b < 3; b++) {
        matmuls_case(label("x[T, 700] @ [700, 450], both layouts, blocks %s", b ? blocks[b] : "of the host"), "T", BIG,
                     2, 0, T_FEW, NULL, blocks[b]);
        if (b)
            matmuls_case(label("x[T, K] @ [K, N] as above, blocks %s", blocks[b]), "T", NK, NNK, 0, T_FEW, NULL, blocks[b]);
    }

    /* x with batch dimensions, or none, against a 2-D weight */
    {
        Case c = {.packed = 1, .folded = {1, -1, -1}, .kept = -1, .T = T_FEW, .what = "x[3, T, 33] @ w [33, 65]"};
        snprintf(c.ir, sizeof c.ir, "%%0 = input \"x\" : f32[3, T, 33]\n%%1 = weight \"w33_65\" : f32[33, 65]\n"
                 "%%2 = matmul(%%0, %%1) : f32[3, T, 65]\noutput y = %%2\n");
        run_case(&c);
        Case e = {.packed = 1, .folded = {1, 2, -1}, .kept = -1, .T = T_FEW, .what = "x[2, 3, T, 17] @ t.T [17, 100]"};
        snprintf(e.ir, sizeof e.ir, "%%0 = input \"x\" : f32[2, 3, T, 17]\n%%1 = weight \"t100_17\" : f32[100, 17]\n"
                 "%%2 = transpose(%%1) {perm=[1, 0]} : f32[17, 100]\n%%3 = matmul(%%0, %%2) : f32[2, 3, T, 100]\noutput y = %%3\n");
        run_case(&e);
        Case v = {.packed = 1, .folded = {1, 2, -1}, .kept = -1, .what = "x[100] @ t.T [100, 197]"};
        snprintf(v.ir, sizeof v.ir, "%%0 = input \"x\" : f32[100]\n%%1 = weight \"t197_100\" : f32[197, 100]\n"
                 "%%2 = transpose(%%1) {perm=[1, 0]} : f32[100, 197]\n%%3 = matmul(%%0, %%2) : f32[197]\noutput y = %%3\n");
        run_case(&v);
    }

    /* activation x activation */
    static const int HD[][2] = {{1, 16}, {3, 64}, {2, 17}, {12, 33}};
    for (size_t i = 0; i < sizeof HD / sizeof HD[0]; i++) {
        int H = HD[i][0], dd = HD[i][1];
        Case s = {.folded = {-1, -1, -1}, .kept = -1, .T = T_ATT};
        snprintf(s.ir, sizeof s.ir,
                 "%%0 = input \"q\" : f32[%d, T, %d]\n%%1 = input \"k\" : f32[%d, T, %d]\n"
                 "%%2 = transpose(%%1) {perm=[0, 2, 1]} : f32[%d, %d, T]\n%%3 = matmul(%%0, %%2) : f32[%d, T, T]\noutput s = %%3\n",
                 H, dd, H, dd, H, dd, H);
        s.what = label("q[%d, T, %d] @ k.T [%d, %d, T]", H, dd, H, dd);
        run_case(&s);
        Case o = {.folded = {-1, -1, -1}, .kept = -1, .T = T_ATT};
        snprintf(o.ir, sizeof o.ir,
                 "%%0 = input \"p\" : f32[%d, T, T]\n%%1 = input \"v\" : f32[%d, T, %d]\n"
                 "%%2 = matmul(%%0, %%1) : f32[%d, T, %d]\noutput o = %%2\n",
                 H, H, dd, H, dd);
        o.what = label("p[%d, T, T] @ v [%d, T, %d]", H, H, dd);
        run_case(&o);
    }
    {
        static const char *const ir[][2] = {
            {"a[1, T, 7] @ b[3, 7, 33]", "%0 = input \"a\" : f32[1, T, 7]\n%1 = input \"b\" : f32[3, 7, 33]\n"
                                         "%2 = matmul(%0, %1) : f32[3, T, 33]\noutput y = %2\n"},
            {"a[2, 1, T, 17] @ b[1, 3, 17, 65]", "%0 = input \"a\" : f32[2, 1, T, 17]\n%1 = input \"b\" : f32[1, 3, 17, 65]\n"
                                                 "%2 = matmul(%0, %1) : f32[2, 3, T, 65]\noutput y = %2\n"},
            {"a[T, 31] @ b[3, 31, 16]", "%0 = input \"a\" : f32[T, 31]\n%1 = input \"b\" : f32[3, 31, 16]\n"
                                        "%2 = matmul(%0, %1) : f32[3, T, 16]\noutput y = %2\n"},
            {"a[2, T, 65] @ b[65, 100] (activation)", "%0 = input \"a\" : f32[2, T, 65]\n%1 = input \"b\" : f32[65, 100]\n"
                                                      "%2 = matmul(%0, %1) : f32[2, T, 100]\noutput y = %2\n"},
            {"a[3, 5] @ b[5, T]", "%0 = input \"a\" : f32[3, 5]\n%1 = input \"b\" : f32[5, T]\n"
                                  "%2 = matmul(%0, %1) : f32[3, T]\noutput y = %2\n"},
        };
        for (size_t i = 0; i < sizeof ir / sizeof ir[0]; i++) {
            Case c = {.folded = {-1, -1, -1}, .kept = -1, .T = T_ATT, .what = ir[i][0]};
            snprintf(c.ir, sizeof c.ir, "%s", ir[i][1]);
            run_case(&c);
        }
    }

    /* what the plan folds and what it keeps */
    {
        Case c = {.packed = 1, .folded = {2, -1, -1}, .kept = 1,
                  .what = "a weight under a transpose and read by another node"};
        snprintf(c.ir, sizeof c.ir, "%%0 = input \"x\" : f32[64, 64]\n%%1 = weight \"s64\" : f32[64, 64]\n"
                 "%%2 = transpose(%%1) {perm=[1, 0]} : f32[64, 64]\n%%3 = matmul(%%0, %%2) : f32[64, 64]\n"
                 "%%4 = add(%%3, %%1) : f32[64, 64]\noutput y = %%3\noutput z = %%4\n");
        run_case(&c);
        Case o = {.packed = 1, .folded = {2, -1, -1}, .kept = 1, .what = "a weight that is also an output"};
        snprintf(o.ir, sizeof o.ir, "%%0 = input \"x\" : f32[5, 64]\n%%1 = weight \"s64\" : f32[64, 64]\n"
                 "%%2 = transpose(%%1) {perm=[1, 0]} : f32[64, 64]\n%%3 = matmul(%%0, %%2) : f32[5, 64]\n"
                 "output y = %%3\noutput w = %%1\n");
        run_case(&o);
        Case two = {.packed = 1, .folded = {1, 2, -1}, .kept = -1, .T = T_FEW, .what = "one weight under two matmuls"};
        snprintf(two.ir, sizeof two.ir, "%%0 = input \"x\" : f32[T, 64]\n%%1 = weight \"s64\" : f32[64, 64]\n"
                 "%%2 = transpose(%%1) {perm=[1, 0]} : f32[64, 64]\n%%3 = matmul(%%0, %%1) : f32[T, 64]\n"
                 "%%4 = matmul(%%0, %%2) : f32[T, 64]\n%%5 = add(%%3, %%4) : f32[T, 64]\noutput y = %%5\n");
        run_case(&two);
        Case k = {.packed = 1, .folded = {1, -1, -1}, .kept = -1, .T = T_FEW, .what = "a CONST B"};
        snprintf(k.ir, sizeof k.ir, "%%0 = input \"x\" : f32[T, 3]\n"
                 "%%1 = const {data=[1, -2, 0.5, 3, 0.25, -1, 2, 7, -0.5, 1.5, 4, -3, 0.125, 9, -8]} : f32[3, 5]\n"
                 "%%2 = matmul(%%0, %%1) : f32[T, 5]\noutput y = %%2\n");
        run_case(&k);
        Case r = {.packed = 1, .folded = {1, 2, -1}, .kept = -1, .T = T_FEW, .what = "a reshaped weight"};
        snprintf(r.ir, sizeof r.ir, "%%0 = input \"x\" : f32[T, 6]\n%%1 = weight \"v60\" : f32[60]\n"
                 "%%2 = reshape(%%1) : f32[6, 10]\n%%3 = matmul(%%0, %%2) : f32[T, 10]\noutput y = %%3\n");
        run_case(&r);
        Case rt = {.packed = 1, .folded = {1, 2, 3}, .kept = -1, .T = T_FEW, .what = "a reshaped weight, transposed"};
        snprintf(rt.ir, sizeof rt.ir, "%%0 = input \"x\" : f32[T, 6]\n%%1 = weight \"v60\" : f32[60]\n"
                 "%%2 = reshape(%%1) : f32[10, 6]\n%%3 = transpose(%%2) {perm=[1, 0]} : f32[6, 10]\n"
                 "%%4 = matmul(%%0, %%3) : f32[T, 10]\noutput y = %%4\n");
        run_case(&rt);
    }

    /* the AVX2 and SSE kernels */
#if defined(__x86_64__)
    static const char *const feats[] = {"-avx512f", "-avx512f,-avx2,-fma,-avx"};
    for (int f = 0; f < 2; f++) {
        matmuls_case(label("x[T, K] @ [K, N] as above, features %s", feats[f]), "T", NK, NNK, f, T_FEW, feats[f], NULL);
        matmuls_case(label("x[T, 700] @ [700, 450], features %s", feats[f]), "T", BIG, 2, 0, T_FEW, feats[f], NULL);
        Case s = {.folded = {-1, -1, -1}, .kept = -1, .T = T_ATT, .features = feats[f]};
        snprintf(s.ir, sizeof s.ir, "%%0 = input \"q\" : f32[3, T, 17]\n%%1 = input \"k\" : f32[3, T, 17]\n"
                 "%%2 = transpose(%%1) {perm=[0, 2, 1]} : f32[3, 17, T]\n%%3 = matmul(%%0, %%2) : f32[3, T, T]\n"
                 "%%4 = input \"v\" : f32[3, T, 17]\n%%5 = matmul(%%3, %%4) : f32[3, T, 17]\noutput s = %%3\noutput o = %%5\n");
        s.what = label("q[3, T, 17] @ k.T, then @ v, features %s", feats[f]);
        run_case(&s);
    }
#endif

    unlink(weights_path);
    if (!dispatches) {
        printf("FAIL no run on two threads reached rt_parallel_for\n");
        failures++;
    }
    printf("%d cases, %d failed; %ld products split over two threads\n", cases, failures, dispatches);
    return failures ? 1 : 0;
}
