/* test_codegen_ops.c: every op of ops.def compiled by the code generator, against the interpreter.
 *
 * Each case is a small graph in the IR text form (inputs, the op under test with its attributes,
 * one or two outputs; `const` nodes for constant operands), read with ir_parse and checked with
 * ir_verify. For each value of its symbol T (`sym T <= 40` and `sym S <= 45` head every case; cases
 * with a symbolic shape run at several values of T, 1 and the bound 40 always among them, with
 * S = T + 5 for the few that use a second symbol; every value runs even after one fails, so a
 * report says which sizes are wrong) the test fills the inputs
 * from a fixed-seed xorshift generator with values suited to the op, binds the symbols with
 * ir_bind_inputs, runs ir_interp (the oracle) and the JIT (cg_new with -O2, cg_build, cg_optimise,
 * cg_jit_run with one thread) and compares the outputs element by element. cg_jit_run consumes the
 * module, so each value of T is a fresh compilation (about 20-50 ms each).
 *
 * A case may name a CPU (run_on, as --cpu does) to compile for instead of the host's, so that the
 * fallback of a kernel that needs a feature (VNNI: the AVX2 target x86-64-v3) runs and is compared too.
 *
 * Shapes are odd on purpose (1, 3, 7, 17, 33, 65): a kernel vectorised by 8 or 16 must get its
 * remainder loop right. Output buffers are filled with 0xff bytes (NaN for floats) before a run, so
 * an element the kernel forgets shows up, and followed by 64 guard bytes that must be untouched.
 *
 * Tolerances, per case (the Tol of each case below; NaN must match NaN and infinities must match
 * exactly in every mode):
 *   EXACT      movement ops, integer and bool results, comparisons, casts, neg/abs/relu, max/min
 *              reductions, sources: the same bits (as doubles; -0 equals +0).
 *   EW         f32 elementwise math: |got - want| <= 1e-6 * |want| + 1e-6 (a few f32 ulps: the
 *              kernels call the f32 libm where the interpreter calls the double one and rounds;
 *              the absolute floor covers results that cancel to ~0, such as gelu(-5) and sin near
 *              its zeros, where a correctly rounded f32 evaluation differs by 1e-7 absolute; exp,
 *              sqrt and rsqrt, which never cancel, get a floor of 1e-37 instead).
 *   F16, BF16  elementwise on f16 and bf16: one ulp of the format relative to the value (2^-10 and
 *              2^-7, so 1e-3 and 8e-3): the kernels compute in f32 and round once, the interpreter in
 *              double and rounds once, so an f32 libm's last bit may tip the final rounding.
 *   F64        elementwise in f64: 1e-12 relative; both sides compute in double with the same libm,
 *              so only the order of operations in gelu and rsqrt may cost an ulp or two.
 *   RED        sum and mean: 1e-6 of the largest |want| of the output, since both sides accumulate
 *              in double and only the final rounding to f32 may differ.
 *   NORM       softmax, log_softmax, layernorm, rmsnorm: 1e-5 of the largest finite |want| (the
 *              kernels accumulate in double too, but exp and log of f32 inputs go through different
 *              paths).
 *   MM         matmul and conv2d in f32: 1e-5 of the largest |want|: the kernels accumulate in
 *              f32, the interpreter in double; over K <= 65 terms of size ~1 that is ~1e-6.
 *   MM16       matmul and conv2d in f16 (bf16): 1e-3 (8e-3) of the largest |want|, one ulp of the
 *              format at the output's scale: a correct kernel accumulates in f32 and rounds once,
 *              which costs half an ulp; rounding every partial sum to f16 costs far more.
 *
 * The test fails if an op of ops.def other than the sources INPUT, WEIGHT and CONST (which every
 * case exercises) and STATE (a state's read needs an instance: tests/models/state.sh) has no case, so
 * a new op cannot skip this test. Three more cases give gather an
 * index out of range (past the end, negative, and past the end of a kv-cache check=positions gather,
 * whose messages must say so): the interpreter and cg_jit_run must both return non-zero with an
 * error, and nothing may crash.
 *
 * Every case runs in a child process (fork), so a code generator that crashes or hangs on one case
 * (an LLVM assertion, a KILN_ASSERT, a wild store) shows up as that case's failure and the others
 * still run. Output: one line per case (op, input and output types, attributes, the values of T,
 * the largest error), then `N passed, M failed`; the exit status is non-zero on any failure.
 * `test_codegen_ops N` runs case #N alone (its inputs are the same: each case seeds its own
 * generator from its number). It reads no files; ctest runs it from the repository root.
 */
#define _GNU_SOURCE /* open_memstream */
#include "codegen/codegen.h"
#include "ir/ir.h"

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- tolerances */

typedef enum TolKind {
    T_EXACT, /* the same value */
    T_ELEM,  /* |got - want| <= atol + rtol * |want| */
    T_MAX,   /* |got - want| <= atol + rtol * max |want| over the output */
} TolKind;

typedef struct Tol {
    TolKind kind;
    double rtol, atol;
    const char *name;
} Tol;

static const Tol EXACT = {T_EXACT, 0, 0, "exact"};
static const Tol EW = {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"};
static const Tol F16 = {T_ELEM, 1e-3, 1e-6, "1e-3 rel + 1e-6"};
static const Tol BF16 = {T_ELEM, 8e-3, 1e-6, "8e-3 rel + 1e-6"};
static const Tol RED = {T_MAX, 1e-6, 1e-30, "1e-6 of max"};
static const Tol NORM = {T_MAX, 1e-5, 1e-30, "1e-5 of max"};
static const Tol MM = {T_MAX, 1e-5, 1e-30, "1e-5 of max"};
static const Tol F64 = {T_ELEM, 1e-12, 1e-300, "1e-12 rel"};
static const Tol MM16 = {T_MAX, 1e-3, 1e-30, "1e-3 of max"};
static const Tol MMBF16 = {T_MAX, 8e-3, 1e-30, "8e-3 of max"};

/* ---------------------------------------------------------------- input generators */

typedef enum GenKind {
    G_UNI,  /* uniform in [lo, hi] */
    G_SPEC, /* uniform in [lo, hi], one in ten replaced by NaN, +-inf, -0 or 0 */
    G_WIDE, /* magnitude log-uniform in [lo, hi], random sign; one in twenty 0 */
    G_POS,  /* log-uniform in [lo, hi]; one in twenty 0, +inf, NaN or -1 */
    G_INT,  /* integers uniform in [lo, hi] (also for float inputs: ties and equal values) */
    G_BOOL, /* 0 or 1 */
    G_NINF, /* uniform in [lo, hi], one in four -inf, and the first row along `axis` all -inf */
    G_EDGE, /* the cast edge values of edge_values[], then G_WIDE over [1e-3, 1e5] */
} GenKind;

typedef struct Gen {
    GenKind kind;
    double lo, hi;
    int axis; /* G_NINF */
} Gen;

#define UNI(a, b) ((Gen){G_UNI, a, b, 0})
#define SPEC(a, b) ((Gen){G_SPEC, a, b, 0})
#define WIDE(a, b) ((Gen){G_WIDE, a, b, 0})
#define POS(a, b) ((Gen){G_POS, a, b, 0})
#define INT(a, b) ((Gen){G_INT, a, b, 0})
#define BOOL ((Gen){G_BOOL, 0, 1, 0})
#define NINF(a, b, ax) ((Gen){G_NINF, a, b, ax})
#define EDGE ((Gen){G_EDGE, 0, 0, 0})

/* Values where conversions differ when done wrong: rounding ties, the edges of i8, u8, i32, f16
 * and bf16, values past them (truncation then wrap, as the interpreter defines it: to_i64 in
 * ir/graph.c saturates at +-9.2e18, so +-1e20 and +-inf give INT64_MAX/MIN, then the low bits),
 * f16 subnormals and underflow, NaN. */
static const double edge_values[] = {
    0.0, -0.0, 0.5, -0.5, 0.75, 1.5, 2.5, -2.5, 127.0, 127.9, 128.0, -128.0, -128.5, -129.0,
    255.0, 255.5, 256.0, 300.7, -300.7, 1000.25, 65504.0, 65519.0, 65520.0, 70000.0, -70000.0,
    2147483520.0, -2147483648.0, 3e9, -3e9, 1e10, 1e20, -1e20, INFINITY, -INFINITY, NAN,
    1e-8, 6e-8, 3e-5, 6.1e-5, 1.00048828125, 1.0009765625, 1.001953125, 1.00390625, 3.4e38,
    -3.4e38, 1.0 / 3.0, 3.0e-39, 1.17549435e-38,
};

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static double unif(void) /* [0, 1) */
{
    return (double)(rng() >> 11) * (1.0 / 9007199254740992.0);
}

static double gen_one(const Gen *g, int64_t e)
{
    switch (g->kind) {
    case G_UNI: return g->lo + (g->hi - g->lo) * unif();
    case G_SPEC:
        if (rng() % 10 == 0) {
            static const double sp[5] = {NAN, INFINITY, -INFINITY, -0.0, 0.0};
            return sp[rng() % 5];
        }
        return g->lo + (g->hi - g->lo) * unif();
    case G_WIDE: {
        if (rng() % 20 == 0)
            return 0;
        double m = exp(log(g->lo) + (log(g->hi) - log(g->lo)) * unif());
        return rng() & 1 ? m : -m;
    }
    case G_POS:
        if (rng() % 20 == 0) {
            static const double sp[4] = {0.0, INFINITY, NAN, -1.0};
            return sp[rng() % 4];
        }
        return exp(log(g->lo) + (log(g->hi) - log(g->lo)) * unif());
    case G_INT: return g->lo + (double)(rng() % (uint64_t)(g->hi - g->lo + 1));
    case G_BOOL: return (double)(rng() & 1);
    case G_NINF: return rng() % 4 == 0 ? -INFINITY : g->lo + (g->hi - g->lo) * unif();
    case G_EDGE: {
        int64_t n = (int64_t)(sizeof edge_values / sizeof edge_values[0]);
        if (e < n)
            return edge_values[e];
        Gen w = WIDE(1e-3, 1e5);
        return gen_one(&w, e);
    }
    }
    UNREACHABLE();
}

/* Fills t (shape and dtype set, data allocated) from g. */
static void fill(HostTensor *t, const Gen *g)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    for (int64_t e = 0; e < n; e++)
        dtype_store(t->dtype, t->data, (size_t)e, gen_one(g, e));
    if (g->kind == G_NINF && g->axis < t->rank) {
        /* the first row along the axis (all other indices 0): all -inf */
        int64_t inner = 1;
        for (int i = g->axis + 1; i < t->rank; i++)
            inner *= t->shape[i];
        for (int64_t k = 0; k < t->shape[g->axis]; k++)
            dtype_store(t->dtype, t->data, (size_t)(k * inner), -INFINITY);
    }
}

/* ---------------------------------------------------------------- cases */

enum { MAX_IO = 4, GUARD = 64 };

typedef struct Spec {
    const char *op;      /* the op under test, by its text name */
    Tol tol;
    const int64_t *T;    /* values of T, ending with 0; NULL: T is not used, run once */
    Gen gen[MAX_IO];     /* one per input, in declaration order */
    const char *ir;      /* the nodes and outputs; "sym T <= 40" is put in front */
    int bad_index;       /* the run must fail: a gather index out of range */
} Spec;

/* The CPU the next cases compile for (--cpu) rather than the host's, to run a kernel's fallback;
 * NULL: the host. Set around run() by run_on(). */
static const char *case_cpu;

static const int64_t TS5[] = {1, 2, 5, 17, 40, 0};
static const int64_t TS3[] = {1, 17, 40, 0};
static const int64_t TS2[] = {1, 40, 0};

static int npass, nfail, ncase;
static unsigned char covered[OP_COUNT], covered_dt[DT_COUNT], covered_attr[AI_COUNT];

/* Whether text has `word` followed by `after`, not preceded by a letter or digit ("f16[" is not in
 * "bf16["). */
static int has_word(const char *text, const char *word, char after)
{
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word))
        if ((p == text || !isalnum((unsigned char)p[-1])) && p[n] == after)
            return 1;
    return 0;
}
static int only = -1; /* a case number from the command line: run just that one */

/* The worst error of one comparison: largest |got - want| over finite pairs and its ratio to what
 * the tolerance allows. */
typedef struct Err {
    double abs, ratio;
    int bad;            /* mismatching elements */
    char first[256];    /* the first mismatch, described */
} Err;

static int nonfinite_match(double got, double want)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    return got == want; /* an infinity on either side */
}

static void compare(const HostTensor *got, const HostTensor *want, Tol tol, int64_t T, Err *err)
{
    int64_t n = 1;
    for (int i = 0; i < want->rank; i++)
        n *= want->shape[i];
    double maxabs = 0;
    for (int64_t e = 0; e < n; e++) {
        double w = dtype_load(want->dtype, want->data, (size_t)e);
        if (isfinite(w) && fabs(w) > maxabs)
            maxabs = fabs(w);
    }
    for (int64_t e = 0; e < n; e++) {
        double w = dtype_load(want->dtype, want->data, (size_t)e);
        double g = dtype_load(got->dtype, got->data, (size_t)e);
        int ok;
        double allow = 0;
        if (!isfinite(w) || !isfinite(g)) {
            ok = nonfinite_match(g, w);
        } else {
            double d = fabs(g - w);
            if (tol.kind == T_EXACT)
                ok = g == w;
            else {
                allow = tol.atol + tol.rtol * (tol.kind == T_ELEM ? fabs(w) : maxabs);
                ok = d <= allow;
            }
            if (d > err->abs)
                err->abs = d;
            if (allow > 0 && d / allow > err->ratio)
                err->ratio = d / allow;
        }
        if (!ok && err->bad++ == 0) {
            char at[32] = "";
            if (T)
                snprintf(at, sizeof at, "T=%lld ", (long long)T);
            snprintf(err->first, sizeof err->first, "%selement %lld: got %.9g, want %.9g", at, (long long)e, g, w);
        }
    }
}

/* "f32[T, 17], f32[17] -> f32[T, 17] {axis=1}": the case's inputs, output and the attributes of the
 * node under test. */
static void describe(const Graph *g, const Node *n, char *buf, size_t len)
{
    size_t k = 0;
    char ts[256];
    for (int i = 0; i < n->nin && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? ", " : "", node_type_str(g, n->in[i], ts, sizeof ts));
    if (k < len)
        k += (size_t)snprintf(buf + k, len - k, "%s-> %s", n->nin ? " " : "", node_type_str(g, n, ts, sizeof ts));
    char *line = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&line, &sz);
    KILN_ASSERT(f);
    ir_print_node(f, g, n);
    fclose(f);
    char *a = strchr(line, '{'), *b = a ? strrchr(line, '}') : NULL;
    if (a && b && k < len)
        snprintf(buf + k, len - k, " %.*s", (int)(b - a + 1), a);
    free(line);
}

static void print_diag(FILE *f)
{
    char buf[1024];
    rewind(f);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
}

/* Runs one case in this process: returns 0 when it passes. Prints its line. */
static int run_spec(const Spec *s, int num)
{
    FILE *df = tmpfile();
    KILN_ASSERT(df);
    Diag *d = diag_new(df);
    size_t tl = strlen(s->ir) + 64;
    char *text = malloc(tl);
    KILN_ASSERT(text);
    snprintf(text, tl, "sym T <= 40\nsym S <= 45\n%s", s->ir);
    int status = 1;
    char what[512] = "?";
    Graph *g = ir_parse("<case>", text, NULL, d);
    Err err = {0};
    char tvals[128] = "";
    if (!g || ir_verify(g, d)) {
        printf("FAIL #%d %-11s the case does not parse or verify:\n", num, s->op);
        print_diag(df);
        goto out;
    }
    const Node *n = NULL;
    int op = op_from_name(s->op);
    for (int i = 0; i < g->nnode && !n; i++) /* the first node of the op; later ones are helpers */
        if ((int)g->nodes[i]->op == op)
            n = g->nodes[i];
    if (!n) {
        printf("FAIL #%d %-11s the case has no such node\n", num, s->op);
        goto out;
    }
    describe(g, n, what, sizeof what);
    if (case_cpu)
        snprintf(what + strlen(what), sizeof what - strlen(what), " [--cpu %s]", case_cpu);

    static const int64_t once[] = {1, 0};
    const int64_t *Ts = s->T ? s->T : once;
    size_t tk = 0, fk = 0;
    char failT[128] = "";
    status = 0;
    /* every value of T runs, failing or not, so a report says which sizes are wrong */
    for (int r = 0; Ts[r]; r++) {
        int64_t T = Ts[r];
        if (s->T)
            tk += (size_t)snprintf(tvals + tk, sizeof tvals - tk, "%s%lld", r ? "," : "T=", (long long)T);
        rng_state = 0x9E3779B97F4A7C15ull * (uint64_t)(num * 64 + r + 1);
        HostTensor in[MAX_IO] = {{0}}, want[MAX_IO] = {{0}}, got[MAX_IO] = {{0}};
        void *inp[MAX_IO], *outp[MAX_IO];
        int64_t vals[IR_MAX_SYMS] = {T, T + 5}, bound[IR_MAX_SYMS];
        KILN_ASSERT(g->ninput <= MAX_IO && g->noutput <= MAX_IO);
        for (int k = 0; k < g->ninput; k++) {
            const Node *x = g->inputs[k];
            in[k].dtype = x->dtype;
            in[k].rank = x->rank;
            int64_t ne = 1;
            for (int i = 0; i < x->rank; i++)
                ne *= in[k].shape[i] = dim_eval(x->shape[i], vals);
            in[k].data = calloc(1, (size_t)ne * (size_t)dtype_traits[x->dtype].size + 1);
            KILN_ASSERT(in[k].data);
            fill(&in[k], &s->gen[k]);
            inp[k] = in[k].data;
        }
        Cg *cg = NULL;
        int irc = -1, crc = -1, bad_before = err.bad;
        char at[32] = "";
        if (s->T)
            snprintf(at, sizeof at, " at T=%lld", (long long)T);
        if (ir_bind_inputs(g, in, bound, d)) {
            printf("FAIL #%d %-11s %s%s: the inputs do not bind\n", num, s->op, what, at);
            print_diag(df);
            status = 1;
            goto next;
        }
        irc = ir_interp(g, in, want, d);
        for (int k = 0; k < g->noutput; k++) {
            const Node *x = g->outputs[k].node;
            got[k].dtype = x->dtype;
            got[k].rank = x->rank;
            int64_t ne = 1;
            for (int i = 0; i < x->rank; i++)
                ne *= got[k].shape[i] = dim_eval(x->shape[i], bound);
            size_t bytes = (size_t)ne * (size_t)dtype_traits[x->dtype].size;
            got[k].data = malloc(bytes + GUARD);
            KILN_ASSERT(got[k].data);
            memset(got[k].data, 0xff, bytes);
            memset((char *)got[k].data + bytes, 0x5a, GUARD);
            outp[k] = got[k].data;
        }
        cg = cg_new(&(CgOptions){.opt = 2, .cpu = case_cpu}, d);
        if (cg && !cg_build(cg, g) && !cg_optimise(cg))
            crc = cg_jit_run(cg, bound, inp, outp, 1);
        if (s->bad_index) {
            /* both must refuse, with an error, and nothing may have crashed to get here */
            if (irc == 0 || crc == 0 || diag_errors(d) < 2) {
                printf("FAIL #%d %-11s %s%s: an index out of range: interpreter rc %d, JIT rc %d, %d errors\n",
                       num, s->op, what, at, irc, crc, diag_errors(d));
                print_diag(df);
                status = 1;
            } else if (strstr(s->ir, "check=positions")) { /* both say what the check means */
                char line[1024];
                int named = 0;
                rewind(df);
                while (fgets(line, sizeof line, df))
                    named += strstr(line, "past the model's learned position table") != NULL;
                if (named < 2) {
                    printf("FAIL #%d %-11s %s%s: a check=positions gather: %d messages name it\n", num, s->op,
                           what, at, named);
                    print_diag(df);
                    status = 1;
                }
            }
            goto next;
        }
        if (irc || crc) {
            printf("FAIL #%d %-11s %s%s: %s failed\n", num, s->op, what, at,
                   irc ? "the interpreter" : "the code generator");
            print_diag(df);
            status = 1;
            goto next;
        }
        for (int k = 0; k < g->noutput; k++) {
            size_t bytes = (size_t)shape_numel(g->outputs[k].node->rank, g->outputs[k].node->shape, bound) *
                           (size_t)dtype_traits[got[k].dtype].size;
            for (int b = 0; b < GUARD; b++)
                if (((unsigned char *)got[k].data)[bytes + b] != 0x5a) {
                    if (!err.bad++)
                        snprintf(err.first, sizeof err.first, "%s: the kernel wrote past the end of output %d",
                                 at, k);
                    break;
                }
            compare(&got[k], &want[k], s->tol, s->T ? T : 0, &err);
        }
        if (err.bad > bad_before) {
            status = 1;
            fk += (size_t)snprintf(failT + fk, sizeof failT - fk, "%s%lld", fk ? "," : "", (long long)T);
        }
    next:
        cg_free(cg);
        for (int k = 0; k < MAX_IO; k++) {
            free(in[k].data);
            free(want[k].data);
            free(got[k].data);
        }
    }
    if (s->bad_index && !status) {
        /* the JIT's message, as a user would see it */
        char msg[1024] = "";
        rewind(df);
        while (fgets(msg, sizeof msg, df))
            if (strstr(msg, "JIT") || strstr(msg, "run time"))
                break;
        msg[strcspn(msg, "\n")] = 0;
        printf("ok   #%d %-11s %s  %s  rejected: %s\n", num, s->op, what, tvals, msg);
    } else if (!status) {
        printf("ok   #%d %-11s %s  %s  max |err| %.3g", num, s->op, what, tvals, err.abs);
        if (s->tol.kind != T_EXACT)
            printf(", %.2g of the tolerance (%s)\n", err.ratio, s->tol.name);
        else
            printf(" (exact)\n");
    } else if (err.bad) {
        printf("FAIL #%d %-11s %s  %s  %d elements differ (%s)%s%s, max |err| %.3g; first: %s\n", num,
               s->op, what, tvals, err.bad, s->tol.name, s->T ? " at T=" : "", s->T ? failT : "", err.abs,
               err.first);
    }
out:
    fflush(stdout);
    if (g)
        ir_graph_free(g);
    diag_free(d);
    fclose(df);
    free(text);
    return status;
}

/* Runs one case in a child process, so that a crash or a hang is that case's failure. */
static void run(Spec s)
{
    int num = ++ncase;
    int op = op_from_name(s.op);
    if (op < 0) {
        printf("FAIL #%d: unknown op '%s'\n", num, s.op);
        nfail++;
        return;
    }
    covered[op] = 1;
    for (int t = 0; t < DT_COUNT; t++)
        covered_dt[t] |= has_word(s.ir, dtype_traits[t].name, '[');
    for (int a = 0; a < AI_COUNT; a++)
        covered_attr[a] |= has_word(s.ir, attr_info[a].name, '=');
    if (only >= 0 && num != only)
        return;
    fflush(stdout);
    pid_t pid = fork();
    KILN_ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(60);
        _exit(run_spec(&s, num));
    }
    int ws;
    KILN_ASSERT(waitpid(pid, &ws, 0) == pid);
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        npass++;
        return;
    }
    if (WIFSIGNALED(ws))
        printf("FAIL #%d %-11s crashed (signal %d: %s)\n", num, s.op, WTERMSIG(ws), strsignal(WTERMSIG(ws)));
    nfail++;
}

/* Formats an IR body into a buffer that lives until the next call with the same slot. */
/* run(s) compiled for cpu (NULL: the host). */
static void run_on(const char *cpu, Spec s)
{
    case_cpu = cpu;
    run(s);
    case_cpu = NULL;
}

static const char *ir(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *ir(const char *fmt, ...)
{
    static char bufs[8][512 << 10];
    static int slot;
    char *b = bufs[slot++ % 8];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    KILN_ASSERT(n > 0 && n < (int)sizeof bufs[0]);
    return b;
}

/* ---------------------------------------------------------------- elementwise */

static void unary_cases(void)
{
    static const struct {
        const char *op, *attrs;
        Gen gen;
        Tol tol;
    } u[] = {
        {"neg", "", SPEC(-100, 100), {T_EXACT, 0, 0, "exact"}},
        {"abs", "", SPEC(-100, 100), {T_EXACT, 0, 0, "exact"}},
        {"relu", "", SPEC(-100, 100), {T_EXACT, 0, 0, "exact"}},
        /* exp over its whole range: overflow to inf above 88.7, subnormal results below -87 */
        {"exp", "", UNI(-110, 95), {T_ELEM, 1e-6, 1e-37, "1e-6 rel + 1e-37"}},
        {"log", "", POS(1e-30, 1e30), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"sqrt", "", POS(1e-30, 1e30), {T_ELEM, 1e-6, 1e-37, "1e-6 rel + 1e-37"}},
        {"rsqrt", "", POS(1e-30, 1e30), {T_ELEM, 1e-6, 1e-37, "1e-6 rel + 1e-37"}},
        {"tanh", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"erf", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"sigmoid", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"silu", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"gelu", " {approx=erf}", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"gelu", " {approx=tanh}", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"sin", "", UNI(-1000, 1000), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"cos", "", UNI(-1000, 1000), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        /* symbolic rows of an odd width, a long odd vector, a scalar, a rank-3 block */
        run((Spec){u[i].op, u[i].tol, TS5, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[T, 17]\n%%1 = %s(%%0)%s : f32[T, 17]\noutput y = %%1\n",
                      u[i].op, u[i].attrs), 0});
        run((Spec){u[i].op, u[i].tol, NULL, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[65]\n%%1 = %s(%%0)%s : f32[65]\noutput y = %%1\n",
                      u[i].op, u[i].attrs), 0});
        run((Spec){u[i].op, u[i].tol, NULL, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[]\n%%1 = %s(%%0)%s : f32[]\noutput y = %%1\n", u[i].op,
                      u[i].attrs), 0});
        run((Spec){u[i].op, u[i].tol, NULL, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[3, 7, 33]\n%%1 = %s(%%0)%s : f32[3, 7, 33]\noutput y = %%1\n",
                      u[i].op, u[i].attrs), 0});
    }
    /* the numeric unary ops on integers (wrapping: abs(-128) in i8 is -128) and on f16, bf16 */
    static const char *const iops[] = {"neg", "abs", "relu"};
    for (int i = 0; i < 3; i++) {
        run((Spec){iops[i], EXACT, TS3, {INT(-2147483647, 2147483647)},
                   ir("%%0 = input \"x\" : i32[T, 7]\n%%1 = %s(%%0) : i32[T, 7]\noutput y = %%1\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(-128, 127)},
                   ir("%%0 = input \"x\" : i8[256]\n%%1 = %s(%%0) : i8[256]\noutput y = %%1\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(-1000000000000, 1000000000000)},
                   ir("%%0 = input \"x\" : i64[33]\n%%1 = %s(%%0) : i64[33]\noutput y = %%1\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(0, 255)},
                   ir("%%0 = input \"x\" : u8[17]\n%%1 = %s(%%0) : u8[17]\noutput y = %%1\n", iops[i]), 0});
    }
    run((Spec){"exp", F16, TS3, {UNI(-20, 12)},
               "%0 = input \"x\" : f16[T, 17]\n%1 = exp(%0) : f16[T, 17]\noutput y = %1\n", 0});
    run((Spec){"tanh", BF16, NULL, {WIDE(1e-3, 1e3)},
               "%0 = input \"x\" : bf16[65]\n%1 = tanh(%0) : bf16[65]\noutput y = %1\n", 0});
    run((Spec){"gelu", F16, NULL, {WIDE(1e-3, 1e3)},
               "%0 = input \"x\" : f16[7, 9]\n%1 = gelu(%0) {approx=tanh} : f16[7, 9]\noutput y = %1\n", 0});
    /* f64: computed in double on both sides */
    static const char *const dops[] = {"exp", "log", "tanh", "erf", "sigmoid", "silu", "rsqrt", "sin"};
    for (int i = 0; i < 8; i++)
        run((Spec){dops[i], F64, NULL, {i == 1 || i == 6 ? POS(1e-30, 1e30) : WIDE(1e-4, 1e3)},
                   ir("%%0 = input \"x\" : f64[33]\n%%1 = %s(%%0) : f64[33]\noutput y = %%1\n", dops[i]), 0});
    run((Spec){"gelu", F64, NULL, {WIDE(1e-4, 1e3)},
               "%0 = input \"x\" : f64[33]\n%1 = gelu(%0) {approx=erf} : f64[33]\noutput y = %1\n", 0});
    run((Spec){"neg", EXACT, NULL, {SPEC(-1e4, 1e4)},
               "%0 = input \"x\" : bf16[33]\n%1 = neg(%0) : bf16[33]\noutput y = %1\n", 0});
}

/* One binary op over several broadcasting shapes; `a` and `b` generate the two operands. */
static void binary_shapes(const char *op, const char *dt, const char *odt, Tol tol, Gen a, Gen b)
{
    /* same shape, symbolic rows */
    run((Spec){op, tol, TS5, {a, b},
               ir("%%0 = input \"a\" : %s[T, 17]\n%%1 = input \"b\" : %s[T, 17]\n%%2 = %s(%%0, %%1) : %s[T, 17]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
    /* a lower-rank operand on the right: [T, 17] with [17] */
    run((Spec){op, tol, TS2, {a, b},
               ir("%%0 = input \"a\" : %s[T, 17]\n%%1 = input \"b\" : %s[17]\n%%2 = %s(%%0, %%1) : %s[T, 17]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
    /* size-1 dims on both sides and a lower rank on the right: [3, 1, 7] with [5, 1] */
    run((Spec){op, tol, NULL, {a, b},
               ir("%%0 = input \"a\" : %s[3, 1, 7]\n%%1 = input \"b\" : %s[5, 1]\n%%2 = %s(%%0, %%1) : %s[3, 5, 7]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
    /* a lower rank on the left, a column against a row: [T, 1] with [2, 1, 33] */
    run((Spec){op, tol, TS2, {a, b},
               ir("%%0 = input \"a\" : %s[T, 1]\n%%1 = input \"b\" : %s[2, 1, 33]\n%%2 = %s(%%0, %%1) : %s[2, T, 33]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
}

static void binary_cases(void)
{
    static const char *const fops[] = {"add", "sub", "mul", "div", "maximum", "minimum"};
    for (int i = 0; i < 6; i++)
        binary_shapes(fops[i], "f32", "f32", EW, SPEC(-1e3, 1e3), i == 3 ? WIDE(1e-3, 1e3) : SPEC(-1e3, 1e3));
    /* pow: positive bases with any exponent, and negative bases with integer exponents */
    binary_shapes("pow", "f32", "f32", EW, POS(1e-3, 1e2), UNI(-6, 6));
    run((Spec){"pow", EW, NULL, {INT(-9, 9), INT(-5, 7)},
               "%0 = input \"a\" : f32[7, 9]\n%1 = input \"b\" : f32[9]\n%2 = pow(%0, %1) : f32[7, 9]\noutput y = %2\n", 0});
    /* a scalar constant operand, on either side */
    run((Spec){"mul", EW, TS3, {SPEC(-1e3, 1e3)},
               "%0 = input \"a\" : f32[T, 7]\n%1 = const {data=[2.5]} : f32[]\n%2 = mul(%0, %1) : f32[T, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"sub", EW, TS3, {SPEC(-1e3, 1e3)},
               "%0 = input \"a\" : f32[T, 7]\n%1 = const {data=[-0.75]} : f32[]\n%2 = sub(%1, %0) : f32[T, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"div", EW, NULL, {WIDE(1e-2, 1e2)},
               "%0 = input \"a\" : f32[3, 5]\n%1 = const {data=[1, -2, 0, inf, nan]} : f32[5]\n"
               "%2 = div(%0, %1) : f32[3, 5]\noutput y = %2\n", 0});
    run((Spec){"pow", EW, NULL, {POS(1e-3, 1e3)},
               "%0 = input \"a\" : f32[33]\n%1 = const {data=[0.5]} : f32[]\n%2 = pow(%0, %1) : f32[33]\n"
               "output y = %2\n", 0});
    run((Spec){"maximum", EW, NULL, {SPEC(-10, 10)},
               "%0 = input \"a\" : f32[4, 17]\n%1 = const {data=[0]} : f32[1, 1]\n%2 = maximum(%0, %1) : f32[4, 17]\n"
               "output y = %2\n", 0});
    /* 4-D with size-1 dims in both operands: [2, 3, 1, 65] with [3, 17, 1] */
    run((Spec){"add", EW, NULL, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[2, 3, 1, 65]\n%1 = input \"b\" : f32[3, 17, 1]\n"
               "%2 = add(%0, %1) : f32[2, 3, 17, 65]\noutput y = %2\n", 0});

    static const char *const d2[] = {"add", "div", "pow", "maximum"};
    for (int i = 0; i < 4; i++)
        run((Spec){d2[i], F64, NULL, {i == 2 ? POS(1e-3, 1e2) : SPEC(-1e3, 1e3), i == 2 ? UNI(-6, 6) : SPEC(-1e3, 1e3)},
                   ir("%%0 = input \"a\" : f64[5, 1]\n%%1 = input \"b\" : f64[7]\n%%2 = %s(%%0, %%1) : f64[5, 7]\n"
                      "output y = %%2\n", d2[i]), 0});
    /* two symbols: [T, 1] with [1, S] */
    run((Spec){"add", EW, TS3, {SPEC(-1e3, 1e3), SPEC(-1e3, 1e3)},
               "%0 = input \"a\" : f32[T, 1]\n%1 = input \"b\" : f32[1, S]\n%2 = add(%0, %1) : f32[T, S]\n"
               "output y = %2\n", 0});

    /* integer dtypes: wrapping add/sub/mul, C division with 0 and -1 divisors, pow */
    static const char *const iops[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};
    for (int i = 0; i < 7; i++) {
        int pw = i == 6, dv = i == 3;
        /* products stay below 2^53 (the interpreter computes integers in double) */
        Gen a32 = pw ? INT(-7, 7) : i == 2 ? INT(-50000000, 50000000) : INT(-2147483647, 2147483647);
        Gen b32 = pw ? INT(-2, 12) : i == 2 ? INT(-50000000, 50000000) : dv ? INT(-3, 3) : INT(-2147483647, 2147483647);
        binary_shapes(iops[i], "i32", "i32", EXACT, a32, b32);
        run((Spec){iops[i], EXACT, NULL, {INT(-128, 127), pw ? INT(-1, 9) : dv ? INT(-2, 2) : INT(-128, 127)},
                   ir("%%0 = input \"a\" : i8[9, 17]\n%%1 = input \"b\" : i8[9, 1]\n%%2 = %s(%%0, %%1) : i8[9, 17]\n"
                      "output y = %%2\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(0, 255), pw ? INT(0, 9) : dv ? INT(0, 3) : INT(0, 255)},
                   ir("%%0 = input \"a\" : u8[9, 17]\n%%1 = input \"b\" : u8[17]\n%%2 = %s(%%0, %%1) : u8[9, 17]\n"
                      "output y = %%2\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, TS2,
                   {pw ? INT(-30, 30) : INT(-1000000000000, 1000000000000),
                    pw ? INT(0, 9) : dv ? INT(-3, 3) : INT(-1000, 1000)},
                   ir("%%0 = input \"a\" : i64[T, 5]\n%%1 = input \"b\" : i64[T, 5]\n%%2 = %s(%%0, %%1) : i64[T, 5]\n"
                      "output y = %%2\n", iops[i]), 0});
    }
    run((Spec){"div", EXACT, NULL, {INT(-10, 10)},
               "%0 = input \"a\" : i32[2, 4]\n%1 = const {data=[3, -3, 0, -1]} : i32[4]\n"
               "%2 = div(%0, %1) : i32[2, 4]\noutput y = %2\n", 0});
    run((Spec){"div", EXACT, NULL, {UNI(0, 0)},
               "%0 = input \"a\" : i8[4]\n%1 = const {data=[-128, -128, 127, -7]} : i8[4]\n"
               "%2 = const {data=[-1, 1, -1, 0]} : i8[4]\n%3 = add(%0, %1) : i8[4]\n%4 = div(%3, %2) : i8[4]\n"
               "output y = %4\n", 0});
    /* bool operands (the verifier accepts them): computed as numbers, then x != 0 */
    static const char *const bops[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
    for (int i = 0; i < 7; i++)
        run((Spec){bops[i], EXACT, NULL, {BOOL, BOOL},
                   ir("%%0 = input \"a\" : bool[4, 1]\n%%1 = input \"b\" : bool[4]\n%%2 = %s(%%0, %%1) : bool[4, 4]\n"
                      "output y = %%2\n", bops[i]), 0});
    /* outputs that are not a kernel's own buffer: one node twice, an input, constants */
    run((Spec){"neg", EXACT, TS2, {SPEC(-10, 10)},
               "%0 = input \"x\" : f32[T, 3]\n%1 = neg(%0) : f32[T, 3]\n"
               "output y = %1\noutput z = %1\noutput w = %0\n", 0});
    run((Spec){"add", EW, NULL, {UNI(0, 0)},
               "%0 = const {data=[1, 2.5, -3]} : f32[3]\n%1 = const {data=[0.25]} : f32[1]\n%2 = add(%0, %1) : f32[3]\n"
               "output y = %2\noutput c = %0\n", 0});

    /* f16 and bf16: computed in f32, rounded once */
    static const char *const hops[] = {"add", "sub", "mul", "div", "pow", "maximum"};
    for (int i = 0; i < 6; i++) {
        Gen a = i == 4 ? POS(1e-2, 10) : SPEC(-100, 100), b = i == 4 ? UNI(-3, 3) : SPEC(-100, 100);
        run((Spec){hops[i], F16, TS2, {a, b},
                   ir("%%0 = input \"a\" : f16[T, 17]\n%%1 = input \"b\" : f16[17]\n%%2 = %s(%%0, %%1) : f16[T, 17]\n"
                      "output y = %%2\n", hops[i]), 0});
        run((Spec){hops[i], BF16, NULL, {a, b},
                   ir("%%0 = input \"a\" : bf16[3, 1, 7]\n%%1 = input \"b\" : bf16[5, 1]\n"
                      "%%2 = %s(%%0, %%1) : bf16[3, 5, 7]\noutput y = %%2\n", hops[i]), 0});
    }
}

static void compare_cases(void)
{
    static const char *const ops[] = {"lt", "le", "gt", "ge", "eq", "ne"};
    for (int i = 0; i < 6; i++) {
        /* integer-valued floats so that equal values occur; NaN, infinities and -0 */
        run((Spec){ops[i], EXACT, TS3, {SPEC(-3, 3), SPEC(-3, 3)},
                   ir("%%0 = input \"a\" : f32[T, 1]\n%%1 = input \"b\" : f32[17]\n%%2 = %s(%%0, %%1) : bool[T, 17]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-3, 3), INT(-3, 3)},
                   ir("%%0 = input \"a\" : f32[5, 7]\n%%1 = input \"b\" : f32[5, 7]\n%%2 = %s(%%0, %%1) : bool[5, 7]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-5, 5), INT(-5, 5)},
                   ir("%%0 = input \"a\" : i32[3, 1, 7]\n%%1 = input \"b\" : i32[5, 1]\n"
                      "%%2 = %s(%%0, %%1) : bool[3, 5, 7]\noutput y = %%2\n", ops[i]), 0});
        /* u8 above 127 must compare unsigned; f16 */
        run((Spec){ops[i], EXACT, NULL, {INT(120, 135), INT(120, 135)},
                   ir("%%0 = input \"a\" : u8[33]\n%%1 = input \"b\" : u8[33]\n%%2 = %s(%%0, %%1) : bool[33]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-4, 4), INT(-4, 4)},
                   ir("%%0 = input \"a\" : f16[17]\n%%1 = input \"b\" : f16[]\n%%2 = %s(%%0, %%1) : bool[17]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-4, 4)},
                   ir("%%0 = input \"a\" : i64[17]\n%%1 = const {data=[1]} : i64[]\n%%2 = %s(%%0, %%1) : bool[17]\n"
                      "output y = %%2\n", ops[i]), 0});
    }
    run((Spec){"eq", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[7, 3]\n%1 = input \"b\" : bool[3]\n%2 = eq(%0, %1) : bool[7, 3]\noutput y = %2\n", 0});
    run((Spec){"lt", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[7, 3]\n%1 = input \"b\" : bool[3]\n%2 = lt(%0, %1) : bool[7, 3]\noutput y = %2\n", 0});
    run((Spec){"ne", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[7, 3]\n%1 = input \"b\" : bool[7, 1]\n%2 = ne(%0, %1) : bool[7, 3]\noutput y = %2\n", 0});

    /* where(cond, a, b): bool conditions that broadcast, values of several dtypes, constants */
    run((Spec){"where", EXACT, TS5, {BOOL, SPEC(-10, 10), SPEC(-10, 10)},
               "%0 = input \"c\" : bool[T, 17]\n%1 = input \"a\" : f32[T, 17]\n%2 = input \"b\" : f32[T, 17]\n"
               "%3 = where(%0, %1, %2) : f32[T, 17]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, TS2, {BOOL, SPEC(-10, 10)},
               "%0 = input \"c\" : bool[T, 1]\n%1 = input \"a\" : f32[33]\n%2 = const {data=[-inf]} : f32[]\n"
               "%3 = where(%0, %1, %2) : f32[T, 33]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, INT(-100, 100), INT(-100, 100)},
               "%0 = input \"c\" : bool[3, 1, 7]\n%1 = input \"a\" : i32[5, 1]\n%2 = input \"b\" : i32[7]\n"
               "%3 = where(%0, %1, %2) : i32[3, 5, 7]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, UNI(-10, 10), UNI(-10, 10)},
               "%0 = input \"c\" : bool[65]\n%1 = input \"a\" : f16[65]\n%2 = input \"b\" : f16[1]\n"
               "%3 = where(%0, %1, %2) : f16[65]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, UNI(-10, 10), UNI(-10, 10)},
               "%0 = input \"c\" : bool[]\n%1 = input \"a\" : bf16[3, 3]\n%2 = input \"b\" : bf16[3, 3]\n"
               "%3 = where(%0, %1, %2) : bf16[3, 3]\noutput y = %3\n", 0});
    /* a computed condition */
    run((Spec){"where", EXACT, TS2, {SPEC(-10, 10)},
               "%0 = input \"x\" : f32[T, 9]\n%1 = const {data=[0]} : f32[]\n%2 = gt(%0, %1) : bool[T, 9]\n"
               "%3 = neg(%0) : f32[T, 9]\n%4 = where(%2, %0, %3) : f32[T, 9]\noutput y = %4\n", 0});
}

static void cast_cases(void)
{
    static const struct {
        const char *from, *to;
        Gen gen;
    } c[] = {
        {"f32", "f16", EDGE}, {"f16", "f32", WIDE(1e-7, 6e4)}, {"f32", "bf16", EDGE},
        {"bf16", "f32", WIDE(1e-30, 1e30)}, {"f32", "i32", EDGE}, {"f32", "i8", EDGE},
        {"f32", "u8", EDGE}, {"f32", "i64", EDGE}, {"f32", "bool", EDGE}, {"i32", "f32", INT(-2147483647, 2147483647)},
        {"u8", "f32", INT(0, 255)}, {"i8", "f32", INT(-128, 127)}, {"i64", "f32", INT(-4e15, 4e15)},
        {"bool", "f32", BOOL}, {"bool", "i32", BOOL}, {"i32", "bool", INT(-2, 2)},
        {"i32", "i8", INT(-100000, 100000)}, {"i32", "u8", INT(-1000, 1000)}, {"u8", "i8", INT(0, 255)},
        {"i8", "u8", INT(-128, 127)}, {"i64", "i32", INT(-4e15, 4e15)}, {"i32", "i64", INT(-2147483647, 2147483647)},
        {"f16", "bf16", WIDE(1e-6, 6e4)}, {"bf16", "f16", EDGE}, {"f16", "i32", EDGE}, {"bf16", "i8", EDGE},
        {"f32", "f64", EDGE}, {"f64", "f32", EDGE}, {"f64", "f16", EDGE}, {"f16", "bool", EDGE},
        {"i32", "f16", INT(-70000, 70000)}, {"i32", "bf16", INT(-2147483647, 2147483647)},
        {"f32", "f32", EDGE}, {"bool", "bool", BOOL}, {"i64", "u8", INT(-100000, 100000)}, {"bool", "f16", BOOL},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        run((Spec){"cast", EXACT, NULL, {c[i].gen},
                   ir("%%0 = input \"x\" : %s[129]\n%%1 = cast(%%0) : %s[129]\noutput y = %%1\n", c[i].from, c[i].to), 0});
    }
    run((Spec){"cast", EXACT, TS3, {EDGE},
               "%0 = input \"x\" : f32[T, 65]\n%1 = cast(%0) : f16[T, 65]\noutput y = %1\n", 0});
    /* f64 double rounding to f16: 1 + 2^-11 + 2^-40 is above the midpoint of two f16 values, but
     * through f32 it becomes the midpoint and rounds to even; the interpreter rounds through f32 as
     * well (dtype_store), so both must give 1 */
    run((Spec){"cast", EXACT, NULL, {UNI(0, 0)},
               "%0 = input \"x\" : f64[2]\n%1 = const {data=[1.0004882812509095, -1.0004882812509095]} : f64[2]\n"
               "%2 = add(%0, %1) : f64[2]\n%3 = cast(%2) : f16[2]\noutput y = %3\n", 0});
}

/* ---------------------------------------------------------------- reductions and normalisations */

static void reduce_cases(void)
{
    static const char *const ops[] = {"sum", "mean", "max", "min"};
    static const char *const out_shape[3][2] = {
        {"[7, 17]", "[1, 7, 17]"}, {"[T, 17]", "[T, 1, 17]"}, {"[T, 7]", "[T, 7, 1]"}};
    for (int i = 0; i < 4; i++)
        for (int axis = 0; axis < 3; axis++)
            for (int kd = 0; kd < 2; kd++) {
                const char *os = out_shape[axis][kd];
                if (axis == 0) /* reducing T away: the output has no T */
                    os = kd ? "[1, 7, 17]" : "[7, 17]";
                run((Spec){ops[i], i < 2 ? RED : EXACT, TS3, {i < 2 ? UNI(-100, 100) : SPEC(-100, 100)},
                           ir("%%0 = input \"x\" : f32[T, 7, 17]\n%%1 = %s(%%0) {axis=%d, keepdims=%s} : f32%s\n"
                              "output y = %%1\n", ops[i], axis, kd ? "true" : "false", os), 0});
            }
    /* integer sums wrap (i32), max and min of i32, u8 and i64; a long row; a rank-1 input */
    for (int i = 0; i < 4; i++) {
        if (i == 1)
            continue; /* mean is float only */
        run((Spec){ops[i], EXACT, TS3, {INT(-2147483647, 2147483647)},
                   ir("%%0 = input \"x\" : i32[T, 33]\n%%1 = %s(%%0) {axis=0, keepdims=false} : i32[33]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-1000000, 1000000)},
                   ir("%%0 = input \"x\" : i32[3, 65]\n%%1 = %s(%%0) {axis=1, keepdims=true} : i32[3, 1]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(0, 255)},
                   ir("%%0 = input \"x\" : u8[5, 9]\n%%1 = %s(%%0) {axis=1, keepdims=false} : u8[5]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-1000000000000, 1000000000000)},
                   ir("%%0 = input \"x\" : i64[4, 7]\n%%1 = %s(%%0) {axis=0, keepdims=false} : i64[7]\n"
                      "output y = %%1\n", ops[i]), 0});
    }
    /* an axis of T - 1 elements, empty at T = 1: sum 0, mean NaN, max -inf, min +inf */
    for (int i = 0; i < 4; i++)
        run((Spec){ops[i], i < 2 ? RED : EXACT, TS2, {UNI(-10, 10)},
                   ir("%%0 = input \"x\" : f32[T, 5]\n%%1 = slice(%%0) {axis=0, start=1, end=T} : f32[T-1, 5]\n"
                      "%%2 = %s(%%1) {axis=0, keepdims=false} : f32[5]\noutput y = %%2\n", ops[i]), 0});
    run((Spec){"sum", RED, NULL, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[4099]\n%1 = sum(%0) {axis=0, keepdims=false} : f32[]\noutput y = %1\n", 0});
    run((Spec){"mean", RED, NULL, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[1, 1]\n%1 = mean(%0) {axis=1, keepdims=true} : f32[1, 1]\noutput y = %1\n", 0});
    run((Spec){"sum", RED, NULL, {UNI(-1e3, 1e3)},
               "%0 = input \"x\" : f64[9, 17]\n%1 = sum(%0) {axis=0, keepdims=false} : f64[17]\noutput y = %1\n", 0});
    run((Spec){"min", EXACT, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f64[9, 17]\n%1 = min(%0) {axis=1, keepdims=true} : f64[9, 1]\noutput y = %1\n", 0});
    run((Spec){"max", EXACT, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f16[9, 17]\n%1 = max(%0) {axis=1, keepdims=false} : f16[9]\noutput y = %1\n", 0});
    run((Spec){"sum", F16, NULL, {UNI(-4, 4)},
               "%0 = input \"x\" : f16[9, 33]\n%1 = sum(%0) {axis=1, keepdims=false} : f16[9]\noutput y = %1\n", 0});
    run((Spec){"mean", BF16, NULL, {UNI(-4, 4)},
               "%0 = input \"x\" : bf16[33, 9]\n%1 = mean(%0) {axis=0, keepdims=true} : bf16[1, 9]\noutput y = %1\n", 0});
}

static void normalise_cases(void)
{
    static const char *const ops[] = {"softmax", "log_softmax"};
    for (int i = 0; i < 2; i++) {
        for (int axis = 0; axis < 3; axis++) {
            /* -inf entries, the first row along the axis all -inf (NaN, as PyTorch) */
            run((Spec){ops[i], NORM, TS3, {NINF(-30, 30, axis)},
                       ir("%%0 = input \"x\" : f32[T, 3, 17]\n%%1 = %s(%%0) {axis=%d} : f32[T, 3, 17]\n"
                          "output y = %%1\n", ops[i], axis), 0});
        }
        /* large magnitudes: rows dominated by one entry, exp underflowing to 0 */
        run((Spec){ops[i], NORM, TS2, {WIDE(1e-2, 1e4)},
                   ir("%%0 = input \"x\" : f32[T, 65]\n%%1 = %s(%%0) {axis=1} : f32[T, 65]\noutput y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], NORM, NULL, {UNI(-5, 5)},
                   ir("%%0 = input \"x\" : f32[1]\n%%1 = %s(%%0) {axis=0} : f32[1]\noutput y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], F16, NULL, {UNI(-8, 8)},
                   ir("%%0 = input \"x\" : f16[5, 33]\n%%1 = %s(%%0) {axis=1} : f16[5, 33]\noutput y = %%1\n", ops[i]), 0});
    }
    /* attention over S keys for T queries: causal mask [T, S] */
    run((Spec){"softmax", NORM, TS3, {UNI(-10, 10)},
               "%0 = input \"x\" : f32[T, S]\n%1 = causal_mask : f32[T, S]\n%2 = add(%0, %1) : f32[T, S]\n"
               "%3 = softmax(%2) {axis=1} : f32[T, S]\noutput y = %3\n", 0});
    run((Spec){"log_softmax", NORM, NULL, {NINF(-30, 30, 1)},
               "%0 = input \"x\" : f64[5, 9]\n%1 = log_softmax(%0) {axis=1} : f64[5, 9]\noutput y = %1\n", 0});
    /* NaN and +inf in rows: NaN rows */
    run((Spec){"softmax", NORM, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f32[9, 7]\n%1 = softmax(%0) {axis=1} : f32[9, 7]\noutput y = %1\n", 0});
    run((Spec){"log_softmax", NORM, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f32[7, 9]\n%1 = log_softmax(%0) {axis=0} : f32[7, 9]\noutput y = %1\n", 0});
    /* softmax after a causal mask, the attention pattern */
    run((Spec){"softmax", NORM, TS3, {UNI(-10, 10)},
               "%0 = input \"x\" : f32[2, T, T]\n%1 = causal_mask : f32[T, T]\n%2 = add(%0, %1) : f32[2, T, T]\n"
               "%3 = softmax(%2) {axis=2} : f32[2, T, T]\noutput y = %3\n", 0});

    Gen x = UNI(-10, 10), gm = UNI(-2, 2);
    run((Spec){"layernorm", NORM, TS5, {x, gm, gm},
               "%0 = input \"x\" : f32[T, 17]\n%1 = input \"g\" : f32[17]\n%2 = input \"b\" : f32[17]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[T, 17]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, NULL, {x, gm, gm},
               "%0 = input \"x\" : f32[2, 3, 65]\n%1 = input \"g\" : f32[65]\n%2 = input \"b\" : f32[65]\n"
               "%3 = layernorm(%0, %1, %2) {eps=0.001} : f32[2, 3, 65]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, NULL, {x, gm, gm},
               "%0 = input \"x\" : f32[7, 1]\n%1 = input \"g\" : f32[1]\n%2 = input \"b\" : f32[1]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[7, 1]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, NULL, {UNI(1000, 1001), gm, gm}, /* a large mean: two passes matter */
               "%0 = input \"x\" : f32[33]\n%1 = input \"g\" : f32[33]\n%2 = input \"b\" : f32[33]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[33]\noutput y = %3\n", 0});
    run((Spec){"layernorm", F16, NULL, {x, gm, gm},
               "%0 = input \"x\" : f16[3, 17]\n%1 = input \"g\" : f16[17]\n%2 = input \"b\" : f16[17]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f16[3, 17]\noutput y = %3\n", 0});
    run((Spec){"layernorm", F16, NULL, {x, gm, gm},
               "%0 = input \"x\" : f16[3, 17]\n%1 = input \"g\" : f32[17]\n%2 = input \"b\" : f32[17]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f16[3, 17]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, TS3, {x, gm, gm}, /* over a symbolic axis */
               "%0 = input \"x\" : f32[3, T]\n%1 = input \"g\" : f32[T]\n%2 = input \"b\" : f32[T]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[3, T]\noutput y = %3\n", 0});
    run((Spec){"rmsnorm", NORM, TS5, {x, gm},
               "%0 = input \"x\" : f32[T, 17]\n%1 = input \"g\" : f32[17]\n"
               "%2 = rmsnorm(%0, %1) {eps=1e-06} : f32[T, 17]\noutput y = %2\n", 0});
    run((Spec){"rmsnorm", NORM, NULL, {x, gm},
               "%0 = input \"x\" : f32[2, 3, 65]\n%1 = input \"g\" : f32[65]\n"
               "%2 = rmsnorm(%0, %1) {eps=1e-05} : f32[2, 3, 65]\noutput y = %2\n", 0});
    run((Spec){"rmsnorm", NORM, NULL, {x, gm},
               "%0 = input \"x\" : f32[1]\n%1 = input \"g\" : f32[1]\n%2 = rmsnorm(%0, %1) {eps=0} : f32[1]\n"
               "output y = %2\n", 0});
    run((Spec){"rmsnorm", BF16, NULL, {x, gm},
               "%0 = input \"x\" : bf16[5, 33]\n%1 = input \"g\" : bf16[33]\n"
               "%2 = rmsnorm(%0, %1) {eps=1e-05} : bf16[5, 33]\noutput y = %2\n", 0});
}

/* ---------------------------------------------------------------- matmul and conv2d */

static void matmul_cases(void)
{
    static const struct {
        const char *a, *b, *out;
        const int64_t *T;
    } m[] = {
        {"[T, 17]", "[17, 33]", "[T, 33]", TS5},
        {"[7, 65]", "[65, 3]", "[7, 3]", NULL},      /* K = 65 */
        {"[5, 1]", "[1, 7]", "[5, 7]", NULL},        /* K = 1: an outer product */
        {"[1, 1]", "[1, 1]", "[1, 1]", NULL},
        {"[3, T, 7]", "[3, 7, 9]", "[3, T, 9]", TS3}, /* batched 3-D */
        {"[2, 3, 5, 7]", "[7, 9]", "[2, 3, 5, 9]", NULL},
        {"[2, 1, 5, 7]", "[3, 7, 9]", "[2, 3, 5, 9]", NULL}, /* broadcast batch dims */
        {"[1, 5, 7]", "[4, 1, 7, 2]", "[4, 1, 5, 2]", NULL},
        {"[4, 1, 3, 17]", "[1, 2, 17, 5]", "[4, 2, 3, 5]", NULL},
        {"[17]", "[17, 33]", "[33]", NULL},          /* a vector on the left */
        {"[17]", "[3, 17, 5]", "[3, 5]", NULL},
        {"[T, 17]", "[17]", "[T]", TS3},             /* a vector on the right */
        {"[2, 3, 17]", "[17]", "[2, 3]", NULL},
        {"[65]", "[65]", "[]", NULL},                /* both: a dot product */
        {"[4, T, 16]", "[4, 16, T]", "[4, T, T]", TS3}, /* attention scores */
        {"[3, T]", "[T, 5]", "[3, 5]", TS3},           /* a symbolic K */
        {"[1, 5, 7]", "[T, 7, 3]", "[T, 5, 3]", TS3},  /* a symbolic batch against 1 */
        {"[1]", "[1]", "[]", NULL},
        {"[2, T, 8]", "[2, 8, S]", "[2, T, S]", TS3},  /* T queries against S keys */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        run((Spec){"matmul", MM, m[i].T, {UNI(-1, 1), UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32%s\n%%1 = input \"b\" : f32%s\n%%2 = matmul(%%0, %%1) : f32%s\n"
                      "output y = %%2\n", m[i].a, m[i].b, m[i].out), 0});
    /* K = T - 1: empty at T = 1, the output must still be written (zeros) */
    run((Spec){"matmul", MM, TS2, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[3, T]\n%1 = input \"b\" : f32[T, 5]\n"
               "%2 = slice(%0) {axis=1, start=1, end=T} : f32[3, T-1]\n%3 = slice(%1) {axis=0, start=1, end=T} : f32[T-1, 5]\n"
               "%4 = matmul(%2, %3) : f32[3, 5]\noutput y = %4\n", 0});
    run((Spec){"matmul", MM, NULL, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f64[3, 17]\n%1 = input \"b\" : f64[17, 5]\n%2 = matmul(%0, %1) : f64[3, 5]\n"
               "output y = %2\n", 0});
    /* f16 and bf16: one rounding of an f32 accumulation at the end */
    run((Spec){"matmul", MM16, TS2, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f16[T, 65]\n%1 = input \"b\" : f16[65, 33]\n%2 = matmul(%0, %1) : f16[T, 33]\n"
               "output y = %2\n", 0});
    run((Spec){"matmul", MMBF16, NULL, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : bf16[5, 256]\n%1 = input \"b\" : bf16[256, 7]\n%2 = matmul(%0, %1) : bf16[5, 7]\n"
               "output y = %2\n", 0});
}

/* ---------------------------------------------------------------- fused loops
 *
 * Nodes marked inline (what fuse-ops does) are computed in the loop of the node that stores: chains
 * of elementwise ops, and a matmul with its elementwise consumers as the epilogue of each micro-tile
 * (K = 700 spans several blocks of K: the epilogue must run after the last one only). */
static void fused_cases(void)
{
    run((Spec){"matmul", MM, TS5, {UNI(-1, 1), UNI(-0.1, 0.1), UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 700]\n%1 = input \"w\" : f32[700, 70]\n%2 = input \"b\" : f32[70]\n"
               "%3 = matmul(%0, %1) {inline} : f32[T, 70]\n%4 = add(%3, %2) {inline} : f32[T, 70]\n"
               "%5 = gelu(%4) {approx=erf} : f32[T, 70]\noutput y = %5\n", 0});
    /* a residual and a scale: r + (x @ w + b) * 0.5 */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 33]\n%1 = input \"w\" : f32[33, 47]\n%2 = input \"b\" : f32[47]\n"
               "%3 = input \"r\" : f32[T, 47]\n%4 = matmul(%0, %1) {inline} : f32[T, 47]\n"
               "%5 = add(%4, %2) {inline} : f32[T, 47]\n%6 = const {data=[0.5]} : f32[]\n"
               "%7 = mul(%5, %6) {inline} : f32[T, 47]\n%8 = add(%3, %7) : f32[T, 47]\noutput y = %8\n", 0});
    /* batched product, a leaf broadcast over rows and one over columns */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[3, T, 17]\n%1 = input \"b\" : f32[3, 17, 9]\n%2 = input \"c\" : f32[3, 1, 9]\n"
               "%3 = input \"d\" : f32[T, 1]\n%4 = matmul(%0, %1) {inline} : f32[3, T, 9]\n"
               "%5 = sub(%4, %2) {inline} : f32[3, T, 9]\n%6 = mul(%5, %3) {inline} : f32[3, T, 9]\n"
               "%7 = relu(%6) : f32[3, T, 9]\noutput y = %7\n", 0});
    /* rows of a 4-D output against one matrix; a leaf broadcast over the leading dimensions */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[2, 3, T, 17]\n%1 = input \"w\" : f32[17, 33]\n%2 = input \"c\" : f32[3, 1, 33]\n"
               "%3 = matmul(%0, %1) {inline} : f32[2, 3, T, 33]\n%4 = add(%2, %3) : f32[2, 3, T, 33]\n"
               "output y = %4\n", 0});
    /* a symbolic number of columns */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[5, 17]\n%1 = input \"w\" : f32[17, T]\n%2 = input \"b\" : f32[T]\n"
               "%3 = matmul(%0, %1) {inline} : f32[5, T]\n%4 = add(%3, %2) {inline} : f32[5, T]\n"
               "%5 = tanh(%4) : f32[5, T]\noutput y = %5\n", 0});
    /* chains without a matmul: a value read twice (computed once), a comparison, a broadcast leaf */
    run((Spec){"add", EW, TS5, {UNI(-2, 2), UNI(-2, 2), UNI(-2, 2)},
               "%0 = input \"a\" : f32[T, 19]\n%1 = input \"b\" : f32[T, 19]\n%2 = input \"c\" : f32[19]\n"
               "%3 = add(%0, %2) {inline} : f32[T, 19]\n%4 = mul(%3, %3) {inline} : f32[T, 19]\n"
               "%5 = gt(%4, %1) {inline} : bool[T, 19]\n%6 = exp(%1) {inline} : f32[T, 19]\n"
               "%7 = where(%5, %6, %0) : f32[T, 19]\noutput y = %7\n", 0});
    run((Spec){"neg", EW, NULL, {UNI(-2, 2)},
               "%0 = input \"a\" : f32[]\n%1 = neg(%0) {inline} : f32[]\n%2 = sigmoid(%1) : f32[]\noutput y = %2\n", 0});
}

/* ---------------------------------------------------------------- token merging and pruning
 *
 * The kernels (token_merge and tome_match's similarity generated by codegen/merge.c, the rest the
 * runtime's, runtime/tokens.c) over batch rows T of static
 * token counts. The destinations must be exact: the kernels compute in f32 and the interpreter in
 * double, so inputs are kept far from ties (random scores over a dozen tokens). token_merge reads
 * random destinations (every token somewhere in [0, T2), some rows empty: a mean over nothing is
 * NaN on both sides). */
static void token_cases(void)
{
    static const struct {
        const char *in, *out, *attrs;
    } m[] = {
        {"[T, 11, 8]", "[T, 11]", "r=4, cls=true"},
        {"[T, 12, 5]", "[T, 12]", "r=6"},
        {"[T, 3, 17, 33]", "[T, 3, 17]", "r=1, cls=true"},
        {"[T, 1, 7]", "[T, 1]", "r=0"},
        {"[T, 50, 32]", "[T, 50]", "r=4, cls=true"},   /* vit-mnist's layer 0 */
        {"[T, 197, 64]", "[T, 197]", "r=13, cls=true"}, /* ViT-B/16's */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        run((Spec){"tome_match", EXACT, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"m\" : f32%s\n%%1 = tome_match(%%0) {%s} : i32%s\noutput y = %%1\n", m[i].in,
                      m[i].attrs, m[i].out), 0});
    static const struct {
        const char *in, *out, *attrs;
    } pm[] = {
        {"[T, 13, 8]", "[T, 13]", "r=3, cls=true, margin=0.5"},
        {"[T, 12, 5]", "[T, 12]", "r=4, cls=true, margin=0.75, bsm=true"},
        {"[T, 2, 10, 16]", "[T, 2, 10]", "r=5, margin=0.25"},
        {"[T, 9, 7]", "[T, 9]", "r=2, margin=0, bsm=true"},
    };
    for (size_t i = 0; i < sizeof pm / sizeof pm[0]; i++)
        run((Spec){"pitome_match", EXACT, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"m\" : f32%s\n%%1 = pitome_match(%%0) {%s} : i32%s\noutput y = %%1\n", pm[i].in,
                      pm[i].attrs, pm[i].out), 0});
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 6), UNI(0.5, 4)},
               "%0 = input \"x\" : f32[T, 11, 70]\n%1 = input \"d\" : i32[T, 11]\n%2 = input \"w\" : f32[T, 11, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=mean} : f32[T, 7, 70]\noutput y = %3\n", 0});
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 4)},
               "%0 = input \"x\" : f32[T, 9, 3]\n%1 = input \"d\" : i32[T, 9]\n"
               "%2 = token_merge(%0, %1) {mode=sum} : f32[T, 5, 3]\noutput y = %2\n", 0});
    run((Spec){"token_merge", MM, NULL, {UNI(-2, 2), INT(0, 190), UNI(0, 1)},
               "%0 = input \"x\" : f32[2, 197, 768]\n%1 = input \"d\" : i32[2, 197]\n%2 = input \"w\" : f32[2, 197, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=sum} : f32[2, 191, 768]\noutput y = %3\n", 0});
    /* the generated merge's column blocks (8 vectors: 32, 64 or 128 columns): whole, one column, a
     * block and one more, several batch dims, a mean without weights, every token into one */
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 4)},
               "%0 = input \"x\" : f32[T, 13, 64]\n%1 = input \"d\" : i32[T, 13]\n"
               "%2 = token_merge(%0, %1) {mode=mean} : f32[T, 5, 64]\noutput y = %2\n", 0});
    run((Spec){"token_merge", MM, NULL, {UNI(-2, 2), INT(0, 2), UNI(0.5, 2)},
               "%0 = input \"x\" : f32[3, 2, 23, 129]\n%1 = input \"d\" : i32[3, 2, 23]\n"
               "%2 = input \"w\" : f32[3, 2, 23, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=mean} : f32[3, 2, 3, 129]\noutput y = %3\n", 0});
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 0), UNI(0.5, 2)},
               "%0 = input \"x\" : f32[T, 7, 1]\n%1 = input \"d\" : i32[T, 7]\n%2 = input \"w\" : f32[T, 7, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=sum} : f32[T, 1, 1]\noutput y = %3\n", 0});
    run((Spec){"cls_attn", NORM, TS3, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[T, 3, 9, 16]\n%1 = input \"k\" : f32[T, 3, 13, 16]\n"
               "%2 = cls_attn(%0, %1) {scale=0.25} : f32[T, 3, 13]\noutput y = %2\n", 0});
    run((Spec){"cls_attn", NORM, NULL, {UNI(-3, 3), UNI(-3, 3)},
               "%0 = input \"q\" : f32[5, 64]\n%1 = input \"k\" : f32[197, 64]\n"
               "%2 = cls_attn(%0, %1) {scale=0.125} : f32[197]\noutput y = %2\n", 0});
    run((Spec){"evit_select", EXACT, TS3, {UNI(0, 1)},
               "%0 = input \"a\" : f32[T, 13]\n%1 = evit_select(%0) {keep=7} : i32[T, 13]\noutput y = %1\n", 0});
    run((Spec){"evit_select", EXACT, TS3, {INT(0, 3)}, /* ties: the lower index first, on both sides */
               "%0 = input \"a\" : f32[T, 20]\n%1 = evit_select(%0) {keep=10} : i32[T, 20]\noutput y = %1\n", 0});
}

/* ---------------------------------------------------------------- fused attention */

/* Attention with the probabilities after each row (scores=true, what the kv-cache policies read):
 * causal prefill rows (all to the row kernel), a decoding row against a masked cache, and one
 * against 700 keys split into chunks (grouped-query heads), the first with every key masked. */
static void attention_scores_cases(void)
{
    run((Spec){"attention", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, T, 16]\n%2 = input \"v\" : f32[2, T, 24]\n"
               "%3 = attention(%0, %1, %2) {scale=0.25, causal=true, scores=true} : f32[2, T, T+24]\noutput y = %3\n", 0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[3, 1, 40]\n%1 = input \"k\" : f32[3, T, 40]\n%2 = input \"v\" : f32[3, T, 40]\n"
               "%3 = input \"m\" : f32[1, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.2, causal=false, scores=true} : f32[3, 1, T+40]\noutput y = %4\n", 0});
    for (int axis = 0; axis < 2; axis++)
        run((Spec){"attention", MM, NULL, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, axis)},
                   "%0 = input \"q\" : f32[2, 4, 1, 80]\n%1 = input \"k\" : f32[2, 1, 700, 80]\n"
                   "%2 = input \"v\" : f32[2, 1, 700, 80]\n%3 = input \"m\" : f32[1, 700]\n"
                   "%4 = attention(%0, %1, %2, %3) {scale=0.11180339887498948, causal=false, scores=true} : "
                   "f32[2, 4, 1, 780]\noutput y = %4\n", 0});
}

static void attention_cases(void)
{
    /* head sizes 32, 64, 80, 128; causal and not; T from 1 up; grouped-query broadcast */
    static const struct {
        const char *q, *k, *v, *out, *attrs;
        const int64_t *T;
        double range; /* inputs uniform in [-range, range]: 30 with d = 128 gives scores near 1e4 */
    } a[] = {
        {"[2, T, 32]", "[2, T, 32]", "[2, T, 32]", "[2, T, 32]", "scale=0.17677669529663687, causal=true", TS5, 1},
        {"[3, T, 64]", "[3, T, 64]", "[3, T, 64]", "[3, T, 64]", "scale=0.125, causal=false", TS3, 1},
        {"[1, T, 80]", "[1, T, 80]", "[1, T, 80]", "[1, T, 80]", "scale=0.11180339887498948, causal=true", TS3, 1},
        {"[2, T, 128]", "[2, T, 128]", "[2, T, 128]", "[2, T, 128]", "scale=1, causal=true", TS3, 30},
        {"[2, 3, T, 16]", "[2, 1, T, 16]", "[2, 1, T, 16]", "[2, 3, T, 16]", "scale=0.25, causal=true", TS3, 1},
        {"[2, T, 16]", "[2, S, 16]", "[2, S, 8]", "[2, T, 8]", "scale=0.25, causal=true", TS3, 1},  /* 5 more keys */
        {"[1, 4096, 32]", "[1, 4096, 32]", "[1, 4096, 32]", "[1, 4096, 32]", "scale=0.17677669529663687, causal=false", NULL, 1},
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        double r = a[i].range;
        run((Spec){"attention", MM, a[i].T, {UNI(-r, r), UNI(-r, r), UNI(-1, 1)},
                   ir("%%0 = input \"q\" : f32%s\n%%1 = input \"k\" : f32%s\n%%2 = input \"v\" : f32%s\n"
                      "%%3 = attention(%%0, %%1, %%2) {%s} : f32%s\noutput y = %%3\n",
                      a[i].q, a[i].k, a[i].v, a[i].attrs, a[i].out), 0});
    }
    /* an additive mask with -inf entries and a fully masked first row: zeros, never NaN */
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, T, 16]\n%2 = input \"v\" : f32[2, T, 16]\n"
               "%3 = input \"m\" : f32[T, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=false} : f32[2, T, 16]\noutput y = %4\n", 0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 1)},
               "%0 = input \"q\" : f32[2, 2, T, 16]\n%1 = input \"k\" : f32[2, 1, T, 16]\n%2 = input \"v\" : f32[2, 1, T, 16]\n"
               "%3 = input \"m\" : f32[2, 1, T, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=true} : f32[2, 2, T, 16]\noutput y = %4\n", 0});

    /* The kernel's paths (codegen/attention.c): blocks of 16 rows (AVX-512; 8 with AVX2) with a
     * last block of 1 to 15 rows, rows one by one when a block has fewer than 8, head sizes that are
     * no multiple of the vector (40, 8, 24, 80), dv != d, fewer keys than queries under the causal
     * mask (the first rows see nothing: zeros), head sizes only known at run time, and a single
     * query row against thousands of keys, whose keys are split into chunks merged at the end
     * (one row on one thread: two chunks). */
    static const struct {
        const char *q, *k, *v, *out, *attrs;
        const int64_t *T;
        double range;
    } b[] = {
        {"[3, T, 40]", "[3, T, 40]", "[3, T, 40]", "[3, T, 40]", "scale=0.15811388300841897, causal=false", TS5, 1},
        {"[2, T, 8]", "[2, S, 8]", "[2, S, 24]", "[2, T, 24]", "scale=0.35355339059327373, causal=true", TS5, 1},
        {"[2, T, 24]", "[2, 3, 24]", "[2, 3, 24]", "[2, T, 24]", "scale=0.2, causal=true", TS5, 1},
        {"[2, T, 16]", "[2, T, 16]", "[2, T, T]", "[2, T, T]", "scale=0.25, causal=false", TS3, 1},
        {"[2, 9, T]", "[2, 12, T]", "[2, 12, 20]", "[2, 9, 20]", "scale=0.2, causal=true", TS3, 1},
        {"[1, 1, 64]", "[1, 3000, 64]", "[1, 3000, 64]", "[1, 1, 64]", "scale=0.125, causal=false", NULL, 1},
        {"[1, 1, 64]", "[1, 3000, 64]", "[1, 3000, 64]", "[1, 1, 64]", "scale=0.125, causal=true", NULL, 1},
        {"[1, 128]", "[2000, 128]", "[2000, 128]", "[1, 128]", "scale=1, causal=true", NULL, 30},
        {"[2, 4, 1, 80]", "[2, 1, 700, 80]", "[2, 1, 700, 80]", "[2, 4, 1, 80]", "scale=0.11180339887498948, causal=true", NULL, 1},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        double r = b[i].range;
        run((Spec){"attention", MM, b[i].T, {UNI(-r, r), UNI(-r, r), UNI(-1, 1)},
                   ir("%%0 = input \"q\" : f32%s\n%%1 = input \"k\" : f32%s\n%%2 = input \"v\" : f32%s\n"
                      "%%3 = attention(%%0, %%1, %%2) {%s} : f32%s\noutput y = %%3\n",
                      b[i].q, b[i].k, b[i].v, b[i].attrs, b[i].out), 0});
    }
    /* one row against 3000 keys with a mask: a quarter of the keys masked, then all of them (zeros) */
    for (int axis = 0; axis < 2; axis++)
        run((Spec){"attention", MM, NULL, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, axis)},
                   "%0 = input \"q\" : f32[1, 1, 64]\n%1 = input \"k\" : f32[1, 3000, 64]\n%2 = input \"v\" : f32[1, 3000, 64]\n"
                   "%3 = input \"m\" : f32[1, 3000]\n"
                   "%4 = attention(%0, %1, %2, %3) {scale=0.125, causal=true} : f32[1, 1, 64]\noutput y = %4\n", 0});
    /* a padding mask, the same for every query of a batch index (one value per key and block) */
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[2, 2, T, 24]\n%1 = input \"k\" : f32[2, 2, T, 24]\n%2 = input \"v\" : f32[2, 2, T, 24]\n"
               "%3 = input \"m\" : f32[2, 1, 1, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.2, causal=false} : f32[2, 2, T, 24]\noutput y = %4\n", 0});
    /* Splits of a few keys into many chunks (KILN_ATTN, read at compile time by the forked case):
     * chunks past a row's last visible key are empty, and the first row, masked everywhere, gives 0 */
    setenv("KILN_ATTN", "split=40,chunk=1", 1);
    run((Spec){"attention", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 1)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, S, 16]\n%2 = input \"v\" : f32[2, S, 16]\n"
               "%3 = input \"m\" : f32[T, S]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=true} : f32[2, T, 16]\noutput y = %4\n", 0});
    run((Spec){"attention", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[3, T, 40]\n%1 = input \"k\" : f32[3, T, 40]\n%2 = input \"v\" : f32[3, T, 40]\n"
               "%3 = attention(%0, %1, %2) {scale=0.15811388300841897, causal=true} : f32[3, T, 40]\noutput y = %3\n", 0});
    attention_scores_cases();
    unsetenv("KILN_ATTN");
    attention_scores_cases();

    /* q, k and v read through strides from where they lie (codegen/plan.c's Plan.view), and the
     * result written through strides into its transpose's storage (Plan.writes_into): GPT-2's
     * slices of one [T, 3D] product, reshaped to heads and transposed; ViT's reshape to [T, 3, H, d],
     * one transpose and slices along the first axis; the same with q also an output (so q is
     * stored, k and v are not) and no causal mask; d = 24 over 2 heads with a mask. */
    run((Spec){"attention", MM, TS5, {UNI(-1, 1)}, "%0 = input \"x\" : f32[T, 144]\n"
        "%1 = slice(%0) {axis=1, start=0, end=48} : f32[T, 48]\n%2 = slice(%0) {axis=1, start=48, end=96} : f32[T, 48]\n"
        "%3 = slice(%0) {axis=1, start=96, end=144} : f32[T, 48]\n"
        "%4 = reshape(%1) : f32[T, 3, 16]\n%5 = transpose(%4) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
        "%6 = reshape(%2) : f32[T, 3, 16]\n%7 = transpose(%6) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
        "%8 = reshape(%3) : f32[T, 3, 16]\n%9 = transpose(%8) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
        "%10 = attention(%5, %7, %9) {scale=0.25, causal=true} : f32[3, T, 16]\n"
        "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%12 = reshape(%11) : f32[T, 48]\noutput y = %12\n", 0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 144]\n%1 = reshape(%0) : f32[T, 3, 3, 16]\n"
               "%2 = transpose(%1) {perm=[1, 2, 0, 3]} : f32[3, 3, T, 16]\n"
               "%3 = slice(%2) {axis=0, start=0, end=1} : f32[1, 3, T, 16]\n%4 = reshape(%3) : f32[3, T, 16]\n"
               "%5 = slice(%2) {axis=0, start=1, end=2} : f32[1, 3, T, 16]\n%6 = reshape(%5) : f32[3, T, 16]\n"
               "%7 = slice(%2) {axis=0, start=2, end=3} : f32[1, 3, T, 16]\n%8 = reshape(%7) : f32[3, T, 16]\n"
               "%9 = attention(%4, %6, %8) {scale=0.25, causal=false} : f32[3, T, 16]\n"
               "%10 = transpose(%9) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%11 = reshape(%10) : f32[T, 48]\noutput y = %11\n",
               0});
    /* ViT's layout with q also an output: the transpose to [3, H, T, d] is stored (q's slice reads it),
     * and k and v are views of that stored transpose, not of the product below it (whose buffer is
     * free once the transpose has read it) */
    run((Spec){"attention", MM, TS3, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 144]\n%12 = neg(%0) : f32[T, 144]\n%1 = reshape(%12) : f32[T, 3, 3, 16]\n"
               "%2 = transpose(%1) {perm=[1, 2, 0, 3]} : f32[3, 3, T, 16]\n"
               "%3 = slice(%2) {axis=0, start=0, end=1} : f32[1, 3, T, 16]\n%4 = reshape(%3) : f32[3, T, 16]\n"
               "%5 = slice(%2) {axis=0, start=1, end=2} : f32[1, 3, T, 16]\n%6 = reshape(%5) : f32[3, T, 16]\n"
               "%7 = slice(%2) {axis=0, start=2, end=3} : f32[1, 3, T, 16]\n%8 = reshape(%7) : f32[3, T, 16]\n"
               "%9 = attention(%4, %6, %8) {scale=0.25, causal=true} : f32[3, T, 16]\n"
               "%10 = transpose(%9) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%11 = reshape(%10) : f32[T, 48]\n"
               "output y = %11\noutput q = %4\n",
               0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 144]\n"
               "%1 = slice(%0) {axis=1, start=0, end=48} : f32[T, 48]\n%2 = slice(%0) {axis=1, start=48, end=96} : f32[T, 48]\n"
               "%3 = slice(%0) {axis=1, start=96, end=144} : f32[T, 48]\n"
               "%4 = reshape(%1) : f32[T, 3, 16]\n%5 = transpose(%4) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
               "%6 = reshape(%2) : f32[T, 3, 16]\n%7 = transpose(%6) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
               "%8 = reshape(%3) : f32[T, 3, 16]\n%9 = transpose(%8) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
               "%10 = attention(%5, %7, %9) {scale=0.25, causal=false} : f32[3, T, 16]\n"
               "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%12 = reshape(%11) : f32[T, 48]\n"
               "output y = %12\noutput q = %5\n",
               0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), NINF(-2, 2, 1)},
               "%0 = input \"x\" : f32[T, 144]\n%1 = input \"m\" : f32[T, T]\n%2 = reshape(%0) : f32[T, 3, 2, 24]\n"
               "%3 = transpose(%2) {perm=[1, 2, 0, 3]} : f32[3, 2, T, 24]\n"
               "%4 = slice(%3) {axis=0, start=0, end=1} : f32[1, 2, T, 24]\n%5 = reshape(%4) : f32[2, T, 24]\n"
               "%6 = slice(%3) {axis=0, start=1, end=2} : f32[1, 2, T, 24]\n%7 = reshape(%6) : f32[2, T, 24]\n"
               "%8 = slice(%3) {axis=0, start=2, end=3} : f32[1, 2, T, 24]\n%9 = reshape(%8) : f32[2, T, 24]\n"
               "%10 = attention(%5, %7, %9, %1) {scale=0.2, causal=true} : f32[2, T, 24]\n"
               "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[T, 2, 24]\n%12 = reshape(%11) : f32[T, 48]\noutput y = %12\n",
               0});

    /* The same comparison on two threads (run() uses one): one or two decoding rows split over the
     * threads by keys, and blocks of rows shared out. In a child process, as run() does. */
    static const char *const two[] = {
        "%0 = input \"q\" : f32[1, 1, 64]\n%1 = input \"k\" : f32[1, 3000, 64]\n%2 = input \"v\" : f32[1, 3000, 64]\n"
        "%3 = attention(%0, %1, %2) {scale=0.125, causal=false} : f32[1, 1, 64]\noutput y = %3\n",
        "%0 = input \"q\" : f32[2, 1, 40]\n%1 = input \"k\" : f32[2, 1000, 40]\n%2 = input \"v\" : f32[2, 1000, 40]\n"
        "%3 = input \"m\" : f32[1, 1000]\n"
        "%4 = attention(%0, %1, %2, %3) {scale=0.15811388300841897, causal=true} : f32[2, 1, 40]\noutput y = %4\n",
        "%0 = input \"q\" : f32[3, 45, 64]\n%1 = input \"k\" : f32[3, 45, 64]\n%2 = input \"v\" : f32[3, 45, 64]\n"
        "%3 = attention(%0, %1, %2) {scale=0.125, causal=true} : f32[3, 45, 64]\noutput y = %3\n",
        /* q, k, v and the result through strides (GPT-2's layout) */
        "%0 = input \"x\" : f32[40, 144]\n"
        "%1 = slice(%0) {axis=1, start=0, end=48} : f32[40, 48]\n%2 = slice(%0) {axis=1, start=48, end=96} : f32[40, 48]\n"
        "%3 = slice(%0) {axis=1, start=96, end=144} : f32[40, 48]\n"
        "%4 = reshape(%1) : f32[40, 3, 16]\n%5 = transpose(%4) {perm=[1, 0, 2]} : f32[3, 40, 16]\n"
        "%6 = reshape(%2) : f32[40, 3, 16]\n%7 = transpose(%6) {perm=[1, 0, 2]} : f32[3, 40, 16]\n"
        "%8 = reshape(%3) : f32[40, 3, 16]\n%9 = transpose(%8) {perm=[1, 0, 2]} : f32[3, 40, 16]\n"
        "%10 = attention(%5, %7, %9) {scale=0.25, causal=true} : f32[3, 40, 16]\n"
        "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[40, 3, 16]\n%12 = reshape(%11) : f32[40, 48]\noutput y = %12\n",
    };
    for (size_t c = 0; c < sizeof two / sizeof two[0]; c++) {
        int num = ++ncase;
        if (only >= 0 && num != only)
            continue;
        fflush(stdout);
        pid_t pid = fork();
        KILN_ASSERT(pid >= 0);
        if (pid == 0) {
            alarm(60);
            rng_state = 0x9E3779B97F4A7C15ull * (uint64_t)(num * 64 + 1);
            Diag *d = diag_new(stderr);
            Graph *g = ir_parse("<case>", two[c], NULL, d);
            KILN_ASSERT(g && !ir_verify(g, d) && g->ninput <= MAX_IO);
            HostTensor in[MAX_IO] = {{0}}, want[MAX_IO] = {{0}}, got = {0};
            void *inp[MAX_IO], *outp[1];
            int64_t bound[IR_MAX_SYMS] = {0};
            for (int k = 0; k < g->ninput; k++) {
                const Node *x = g->inputs[k];
                in[k].dtype = x->dtype;
                in[k].rank = x->rank;
                int64_t ne = 1;
                for (int i = 0; i < x->rank; i++)
                    ne *= in[k].shape[i] = dim_value(x->shape[i]);
                in[k].data = calloc((size_t)ne, sizeof(float));
                KILN_ASSERT(in[k].data);
                Gen gen = k == 3 ? NINF(-2, 2, 0) : UNI(-1, 1);
                fill(&in[k], &gen);
                inp[k] = in[k].data;
            }
            const Node *y = g->outputs[0].node;
            got.dtype = y->dtype;
            got.rank = y->rank;
            int64_t ne = 1;
            for (int i = 0; i < y->rank; i++)
                ne *= got.shape[i] = dim_value(y->shape[i]);
            got.data = malloc((size_t)ne * sizeof(float));
            KILN_ASSERT(got.data);
            memset(got.data, 0xff, (size_t)ne * sizeof(float));
            outp[0] = got.data;
            KILN_ASSERT(!ir_bind_inputs(g, in, bound, d) && !ir_interp(g, in, want, d));
            Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
            KILN_ASSERT(cg && !cg_build(cg, g) && !cg_optimise(cg));
            KILN_ASSERT(!cg_jit_run(cg, bound, inp, outp, 2));
            Err err = {0};
            compare(&got, &want[0], MM, 0, &err);
            char what[512];
            describe(g, g->nodes[g->nnode - 1], what, sizeof what);
            if (err.bad)
                printf("FAIL #%d attention   %s  on 2 threads: %d elements differ (%s); first: %s\n", num, what,
                       err.bad, MM.name, err.first);
            else
                printf("ok   #%d attention   %s  on 2 threads  max |err| %.3g, %.2g of the tolerance (%s)\n", num,
                       what, err.abs, err.ratio, MM.name);
            fflush(stdout);
            _exit(err.bad ? 1 : 0);
        }
        int ws;
        KILN_ASSERT(waitpid(pid, &ws, 0) == pid);
        if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
            npass++;
        } else {
            if (WIFSIGNALED(ws))
                printf("FAIL #%d attention   on 2 threads: crashed (signal %d: %s)\n", num, WTERMSIG(ws),
                       strsignal(WTERMSIG(ws)));
            nfail++;
        }
    }
}

static void conv_cases(void)
{
    Gen g = UNI(-1, 1);
    /* no batch, no bias, 3x3, stride 1, no padding */
    run((Spec){"conv2d", MM, NULL, {g, g},
               "%0 = input \"x\" : f32[3, 9, 11]\n%1 = input \"w\" : f32[4, 3, 3, 3]\n"
               "%2 = conv2d(%0, %1) {stride=[1, 1], pad=[0, 0]} : f32[4, 7, 9]\noutput y = %2\n", 0});
    /* batch, bias, stride (2, 1), padding (1, 0), a 3x2 kernel */
    run((Spec){"conv2d", MM, NULL, {g, g, g},
               "%0 = input \"x\" : f32[2, 3, 9, 11]\n%1 = input \"w\" : f32[5, 3, 3, 2]\n%2 = input \"b\" : f32[5]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[2, 1], pad=[1, 0]} : f32[2, 5, 5, 10]\noutput y = %3\n", 0});
    /* 1x1 kernel, stride 2 */
    run((Spec){"conv2d", MM, NULL, {g, g},
               "%0 = input \"x\" : f32[1, 1, 7, 7]\n%1 = input \"w\" : f32[2, 1, 1, 1]\n"
               "%2 = conv2d(%0, %1) {stride=[2, 2], pad=[0, 0]} : f32[1, 2, 4, 4]\noutput y = %2\n", 0});
    /* 5x5, padding 2, stride 3, bias, no batch */
    run((Spec){"conv2d", MM, NULL, {g, g, g},
               "%0 = input \"x\" : f32[2, 17, 17]\n%1 = input \"w\" : f32[3, 2, 5, 5]\n%2 = input \"b\" : f32[3]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[3, 3], pad=[2, 2]} : f32[3, 6, 6]\noutput y = %3\n", 0});
    /* sizes that the stride does not divide: the last partial window is dropped */
    run((Spec){"conv2d", MM, NULL, {g, g},
               "%0 = input \"x\" : f32[2, 10, 8]\n%1 = input \"w\" : f32[3, 2, 3, 3]\n"
               "%2 = conv2d(%0, %1) {stride=[2, 3], pad=[0, 1]} : f32[3, 4, 3]\noutput y = %2\n", 0});
    /* padding larger than the kernel's reach: whole output rows of bias only */
    run((Spec){"conv2d", MM, NULL, {g, g, g},
               "%0 = input \"x\" : f32[1, 3, 3]\n%1 = input \"w\" : f32[2, 1, 2, 2]\n%2 = input \"b\" : f32[2]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[1, 1], pad=[3, 3]} : f32[2, 8, 8]\noutput y = %3\n", 0});
    run((Spec){"conv2d", MM16, NULL, {g, g, g},
               "%0 = input \"x\" : f16[1, 8, 9, 9]\n%1 = input \"w\" : f16[3, 8, 3, 3]\n%2 = input \"b\" : f16[3]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[1, 1], pad=[1, 1]} : f16[1, 3, 9, 9]\noutput y = %3\n", 0});
    /* a symbolic height: same padding keeps H = T */
    run((Spec){"conv2d", MM, TS3, {g, g},
               "%0 = input \"x\" : f32[3, T, 9]\n%1 = input \"w\" : f32[4, 3, 3, 3]\n"
               "%2 = conv2d(%0, %1) {stride=[1, 1], pad=[1, 1]} : f32[4, T, 9]\noutput y = %2\n", 0});
}

/* ---------------------------------------------------------------- data movement and sources */

static void movement_cases(void)
{
    Gen g = SPEC(-100, 100);
    /* reshape: output straight from an input, a symbolic split, through a computed node */
    run((Spec){"reshape", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 6]\n%1 = reshape(%0) : f32[T, 2, 3]\noutput y = %1\n", 0});
    run((Spec){"reshape", EXACT, NULL, {INT(-128, 127)},
               "%0 = input \"x\" : i8[3, 4, 5]\n%1 = reshape(%0) : i8[60]\noutput y = %1\n", 0});
    run((Spec){"reshape", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 6]\n%1 = neg(%0) : f32[T, 6]\n%2 = reshape(%1) : f32[3, 2*T]\n"
               "%3 = abs(%2) : f32[3, 2*T]\noutput y = %3\n", 0});
    run((Spec){"reshape", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[7]\n%1 = neg(%0) : f32[7]\n%2 = reshape(%1) : f32[1, 7, 1]\n"
               "output y = %2\noutput z = %1\n", 0});

    /* transpose: several permutations, dtypes */
    static const struct {
        const char *in, *perm, *out;
        const int64_t *T;
    } t[] = {
        {"[T, 3, 17]", "[1, 0, 2]", "[3, T, 17]", TS3},
        {"[T, 3, 17]", "[2, 1, 0]", "[17, 3, T]", TS3},
        {"[T, 3, 17]", "[0, 2, 1]", "[T, 17, 3]", TS2},
        {"[T, 3, 17]", "[2, 0, 1]", "[17, T, 3]", TS2},
        {"[T, 65]", "[1, 0]", "[65, T]", TS5},
        {"[2, 3, 5, 7]", "[3, 1, 0, 2]", "[7, 3, 2, 5]", NULL},
        {"[1, 9]", "[1, 0]", "[9, 1]", NULL},
        {"[4]", "[0]", "[4]", NULL},
        {"[2, 1, 3, 1, 5]", "[4, 2, 0, 3, 1]", "[5, 3, 2, 1, 1]", NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        run((Spec){"transpose", EXACT, t[i].T, {g},
                   ir("%%0 = input \"x\" : f32%s\n%%1 = transpose(%%0) {perm=%s} : f32%s\noutput y = %%1\n",
                      t[i].in, t[i].perm, t[i].out), 0});
    run((Spec){"transpose", EXACT, NULL, {INT(-100000, 100000)},
               "%0 = input \"x\" : i32[3, 7, 5]\n%1 = transpose(%0) {perm=[2, 0, 1]} : i32[5, 3, 7]\noutput y = %1\n", 0});
    run((Spec){"transpose", EXACT, NULL, {g},
               "%0 = input \"x\" : f16[9, 17]\n%1 = transpose(%0) {perm=[1, 0]} : f16[17, 9]\noutput y = %1\n", 0});

    /* expand */
    run((Spec){"expand", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[17]\n%1 = input \"t\" : f32[T]\n%2 = expand(%0) : f32[T, 17]\noutput y = %2\n", 0});
    run((Spec){"expand", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 1]\n%1 = expand(%0) : f32[T, 33]\noutput y = %1\n", 0});
    run((Spec){"expand", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[3, 1, 7]\n%1 = expand(%0) : f32[2, 3, 5, 7]\noutput y = %1\n", 0});
    run((Spec){"expand", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[]\n%1 = expand(%0) : f32[4, 5]\noutput y = %1\n", 0});
    run((Spec){"expand", EXACT, NULL, {INT(0, 255)},
               "%0 = input \"x\" : u8[1, 9]\n%1 = expand(%0) : u8[7, 9]\noutput y = %1\n", 0});

    /* slice, with symbolic bounds */
    run((Spec){"slice", EXACT, TS5, {g},
               "%0 = input \"x\" : f32[T, 17]\n%1 = slice(%0) {axis=0, start=1, end=T} : f32[T-1, 17]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 17]\n%1 = slice(%0) {axis=1, start=3, end=10} : f32[T, 7]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[2, 40, 5]\n%1 = input \"t\" : f32[T]\n"
               "%2 = slice(%0) {axis=1, start=T, end=40} : f32[2, -T+40, 5]\noutput y = %2\n", 0});
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[2, T+3, 5]\n%1 = slice(%0) {axis=1, start=2, end=T+3} : f32[2, T+1, 5]\n"
               "output y = %1\n", 0});
    /* a dim that shrinks as T grows (-T+40) in an intermediate: its arena block must be sized for
     * T = 1 (39 rows), not for T at its bound (0 rows), or the next node's block overlaps it */
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[2, 40, 5]\n%1 = input \"t\" : f32[T]\n"
               "%2 = slice(%0) {axis=1, start=T, end=40} : f32[2, -T+40, 5]\n%3 = neg(%0) : f32[2, 40, 5]\n"
               "%4 = slice(%3) {axis=1, start=0, end=T} : f32[2, T, 5]\n%5 = concat(%2, %4) {axis=1} : f32[2, 40, 5]\n"
               "output y = %5\n", 0});
    run((Spec){"slice", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[65, 3]\n%1 = slice(%0) {axis=0, start=64, end=65} : f32[1, 3]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, NULL, {g},
               "%0 = input \"x\" : bf16[3, 7, 33]\n%1 = slice(%0) {axis=2, start=5, end=22} : bf16[3, 7, 17]\n"
               "output y = %1\n", 0});
    run((Spec){"slice", EXACT, TS2, {g},
               "%0 = input \"x\" : f32[64, 8]\n%1 = input \"t\" : i32[T]\n"
               "%2 = slice(%0) {axis=0, start=0, end=T} : f32[T, 8]\noutput y = %2\n", 0});

    /* concat: 2 and 3 inputs, every axis */
    run((Spec){"concat", EXACT, TS3, {g, g},
               "%0 = input \"a\" : f32[T, 5]\n%1 = input \"b\" : f32[3, 5]\n%2 = concat(%0, %1) {axis=0} : f32[T+3, 5]\n"
               "output y = %2\n", 0});
    run((Spec){"concat", EXACT, TS3, {g, g, g},
               "%0 = input \"a\" : f32[T, 5]\n%1 = input \"b\" : f32[T, 1]\n%2 = input \"c\" : f32[T, 7]\n"
               "%3 = concat(%0, %1, %2) {axis=1} : f32[T, 13]\noutput y = %3\n", 0});
    run((Spec){"concat", EXACT, NULL, {g, g, g},
               "%0 = input \"a\" : f32[2, 3, 4]\n%1 = input \"b\" : f32[2, 3, 1]\n%2 = input \"c\" : f32[2, 3, 17]\n"
               "%3 = concat(%0, %1, %2) {axis=2} : f32[2, 3, 22]\noutput y = %3\n", 0});
    run((Spec){"concat", EXACT, TS3, {g, g},
               "%0 = input \"a\" : f32[2, T, 3]\n%1 = input \"b\" : f32[2, T, 3]\n"
               "%2 = concat(%0, %1) {axis=1} : f32[2, 2*T, 3]\noutput y = %2\n", 0});
    run((Spec){"concat", EXACT, NULL, {g, g, g},
               "%0 = input \"a\" : f32[1, 3, 4]\n%1 = input \"b\" : f32[2, 3, 4]\n%2 = input \"c\" : f32[3, 3, 4]\n"
               "%3 = concat(%0, %1, %2) {axis=0} : f32[6, 3, 4]\noutput y = %3\n", 0});
    run((Spec){"concat", EXACT, NULL, {INT(-100, 100), INT(-100, 100)},
               "%0 = input \"a\" : i32[7]\n%1 = input \"b\" : i32[9]\n%2 = concat(%0, %1) {axis=0} : i32[16]\n"
               "output y = %2\n", 0});
    run((Spec){"concat", EXACT, NULL, {g},
               "%0 = input \"a\" : f16[3, 5]\n%1 = concat(%0) {axis=1} : f16[3, 5]\noutput y = %1\n", 0});
    run((Spec){"concat", EXACT, TS3, {g},
               "%0 = input \"a\" : f32[T, 4]\n%1 = neg(%0) : f32[T, 4]\n%2 = concat(%1, %0, %1) {axis=0} : f32[3*T, 4]\n"
               "output y = %2\n", 0});

    /* bool data through every movement op */
    run((Spec){"transpose", EXACT, TS2, {BOOL},
               "%0 = input \"x\" : bool[T, 5]\n%1 = transpose(%0) {perm=[1, 0]} : bool[5, T]\noutput y = %1\n", 0});
    run((Spec){"concat", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[3, 5]\n%1 = input \"b\" : bool[3, 2]\n%2 = concat(%0, %1) {axis=1} : bool[3, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"expand", EXACT, NULL, {BOOL},
               "%0 = input \"x\" : bool[5]\n%1 = expand(%0) : bool[3, 5]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, NULL, {BOOL},
               "%0 = input \"x\" : bool[9, 5]\n%1 = slice(%0) {axis=0, start=2, end=7} : bool[5, 5]\noutput y = %1\n", 0});
    run((Spec){"gather", EXACT, NULL, {BOOL, INT(0, 8)},
               "%0 = input \"t\" : bool[9, 5]\n%1 = input \"i\" : i32[4]\n%2 = gather(%0, %1) {axis=0} : bool[4, 5]\n"
               "output y = %2\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, BOOL, BOOL},
               "%0 = input \"c\" : bool[9]\n%1 = input \"a\" : bool[9]\n%2 = input \"b\" : bool[1]\n"
               "%3 = where(%0, %1, %2) : bool[9]\noutput y = %3\n", 0});

    /* gather: axis 0 and 1, i32 and i64 indices, a symbolic count */
    run((Spec){"gather", EXACT, TS5, {g, INT(0, 16)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i32[T]\n%2 = gather(%0, %1) {axis=0} : f32[T, 33]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 16)},
               "%0 = input \"t\" : f32[5, 17]\n%1 = input \"i\" : i64[3, 7]\n%2 = gather(%0, %1) {axis=1} : f32[5, 3, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, TS3, {g, INT(0, 2)},
               "%0 = input \"t\" : f32[7, 3, 5]\n%1 = input \"i\" : i32[T]\n%2 = gather(%0, %1) {axis=1} : f32[7, T, 5]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, TS3, {INT(-1000, 1000), INT(0, 39)},
               "%0 = input \"t\" : i32[40, 2]\n%1 = input \"i\" : i64[T, 2]\n%2 = gather(%0, %1) {axis=0} : i32[T, 2, 2]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, TS3, {g, INT(0, 5)},
               "%0 = input \"t\" : f32[T, 6]\n%1 = input \"i\" : i32[4]\n%2 = gather(%0, %1) {axis=1} : f32[T, 4]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 64)},
               "%0 = input \"t\" : f16[65]\n%1 = input \"i\" : u8[9]\n%2 = gather(%0, %1) {axis=0} : f16[9]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 6)},
               "%0 = input \"t\" : f32[7, 3]\n%1 = input \"i\" : i32[]\n%2 = gather(%0, %1) {axis=0} : f32[3]\n"
               "output y = %2\n", 0});
    /* an index out of range (17 in a table of 17 rows, -1): an error, not a crash */
    run((Spec){"gather", EXACT, NULL, {g, INT(17, 17)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i32[3]\n%2 = gather(%0, %1) {axis=0} : f32[3, 33]\n"
               "output y = %2\n", 1});
    run((Spec){"gather", EXACT, NULL, {g, INT(-1, -1)},
               "%0 = input \"t\" : f32[5, 17]\n%1 = input \"i\" : i64[2]\n%2 = gather(%0, %1) {axis=1} : f32[5, 2]\n"
               "output y = %2\n", 1});
    /* a kv-cache check (attrs.def's check): in range it is a gather; out of range the entry returns
     * the named code (RT_ERR_POSITIONS), which the message says */
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 16)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i64[1]\n"
               "%2 = gather(%0, %1) {axis=0, check=positions} : f32[1, 33]\noutput y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(17, 17)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i64[1]\n"
               "%2 = gather(%0, %1) {axis=0, check=positions} : f32[1, 33]\noutput y = %2\n", 1});
}

/* scatter (ir/entry.c's state updates): rows along axis 0 and 1, i32 and i64 indices, a symbolic
 * count with repeated indices (the last write wins), integer data; an index out of range fails */
static void scatter_cases(void)
{
    Gen g = UNI(-1, 1);
    run((Spec){"scatter", EXACT, TS3, {g, INT(0, 7), g},
               "%0 = input \"b\" : f32[8, 5]\n%1 = input \"i\" : i32[T]\n%2 = input \"v\" : f32[T, 5]\n"
               "%3 = scatter(%0, %1, %2) {axis=0} : f32[8, 5]\noutput y = %3\n", 0});
    run((Spec){"scatter", EXACT, NULL, {g, INT(0, 5), g},
               "%0 = input \"b\" : f32[2, 6, 3]\n%1 = input \"i\" : i64[4]\n%2 = input \"v\" : f32[2, 4, 3]\n"
               "%3 = scatter(%0, %1, %2) {axis=1} : f32[2, 6, 3]\noutput y = %3\n", 0});
    run((Spec){"scatter", EXACT, NULL, {INT(-9, 9), INT(0, 3), INT(-9, 9)},
               "%0 = input \"b\" : i32[3, 4]\n%1 = input \"i\" : i32[2]\n%2 = input \"v\" : i32[3, 2]\n"
               "%3 = scatter(%0, %1, %2) {axis=1} : i32[3, 4]\noutput y = %3\n", 0});
    run((Spec){"scatter", EXACT, NULL, {g, INT(8, 8), g},
               "%0 = input \"b\" : f32[8, 5]\n%1 = input \"i\" : i32[2]\n%2 = input \"v\" : f32[2, 5]\n"
               "%3 = scatter(%0, %1, %2) {axis=0} : f32[8, 5]\noutput y = %3\n", 1});
    run((Spec){"scatter", EXACT, NULL, {g, INT(-1, -1), g},
               "%0 = input \"b\" : f32[2, 6]\n%1 = input \"i\" : i64[1]\n%2 = input \"v\" : f32[2, 1]\n"
               "%3 = scatter(%0, %1, %2) {axis=1} : f32[2, 6]\noutput y = %3\n", 1});
}

/* ---------------------------------------------------------------- quantization
 *
 * quantize and the dynamic (W8A8) qmatmul must give the interpreter's bits (ir/quant.c defines every
 * float32 step): integer inputs make ties (x / 2 for odd x) and saturation (300 / 1), integer scales
 * include 0 (the zero point). Weight-only qmatmul dequantises exactly and differs only in the order of
 * its f32 sums (MM). K is not a multiple of the group; M and N are odd; i4 and u4 weights come as
 * constants (no input is packed). */
static const char *nibbles(int n, int lo, int hi, unsigned seed)
{
    static char bufs[4][512 << 10];
    static int slot;
    char *b = bufs[slot++ % 4];
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        k += (size_t)snprintf(b + k, sizeof bufs[0] - k, "%s%d", i ? ", " : "", lo + (int)((seed >> 16) % (unsigned)(hi - lo + 1)));
        KILN_ASSERT(k < sizeof bufs[0]);
    }
    return b;
}

static void quant_cases(void)
{
    run((Spec){"quantize", EXACT, TS3, {INT(-300, 300), INT(0, 4)},
               "%0 = input \"x\" : f32[T, 33]\n%1 = input \"s\" : f32[1, 33]\n"
               "%2 = quantize(%0, %1) {axis=0, group=0} : i8[T, 33]\noutput y = %2\n", 0});
    run((Spec){"quantize", EXACT, TS3, {SPEC(-300, 300), POS(1e-2, 10), INT(0, 255)},
               "%0 = input \"x\" : f32[T, 10]\n%1 = input \"s\" : f32[T, 3]\n%2 = input \"z\" : u8[T, 3]\n"
               "%3 = quantize(%0, %1, %2) {axis=1, group=4} : u8[T, 10]\noutput y = %3\n", 0});
    /* to i4 in groups of 4 along axis 0 (17 rows: 5 groups, the last of one row), and back */
    run((Spec){"dequantize", EXACT, NULL, {INT(-20, 20), INT(0, 3)},
               "%0 = input \"x\" : f32[17, 5]\n%1 = input \"s\" : f32[5, 1]\n"
               "%2 = quantize(%0, %1) {axis=0, group=4} : i4[17, 5]\n"
               "%3 = dequantize(%2, %1) {axis=0, group=4} : f32[17, 5]\noutput y = %3\noutput q = %2\n", 0});
    run((Spec){"dequantize", EXACT, TS3, {INT(0, 255), POS(1e-3, 1), INT(0, 255)},
               "%0 = input \"q\" : u8[T, 33]\n%1 = input \"s\" : f32[1, 33]\n%2 = input \"z\" : u8[1, 33]\n"
               "%3 = dequantize(%0, %1, %2) {axis=0, group=0} : f32[T, 33]\noutput y = %3\n", 0});
    /* weight-only, 8-bit, groups of 16 along K = 65, and u8 with a zero point per column */
    run((Spec){"qmatmul", MM, TS5, {UNI(-1, 1), INT(-128, 127), INT(0, 3)},
               "%0 = input \"a\" : f32[T, 65]\n%1 = input \"w\" : i8[65, 33]\n%2 = input \"s\" : f32[5, 33]\n"
               "%3 = qmatmul(%0, %1, %2) {group=16, dynamic=false} : f32[T, 33]\noutput y = %3\n", 0});
    run((Spec){"qmatmul", MM, TS3, {UNI(-1, 1), INT(0, 255), UNI(0, 0.1), INT(0, 255)},
               "%0 = input \"a\" : f32[2, T, 17]\n%1 = input \"w\" : u8[17, 7]\n%2 = input \"s\" : f32[1, 7]\n"
               "%3 = input \"z\" : u8[1, 7]\n%4 = qmatmul(%0, %1, %2, %3) {group=0, dynamic=false} : f32[2, T, 7]\n"
               "output y = %4\n", 0});
    /* 4-bit weights: i4 in groups of 8 along K = 37 (5 groups), u4 with zero points */
    run((Spec){"qmatmul", MM, TS3, {UNI(-1, 1), UNI(0, 0.2)},
               ir("%%0 = input \"a\" : f32[T, 37]\n%%1 = input \"s\" : f32[5, 9]\n"
                  "%%2 = const {data=[%s]} : i4[37, 9]\n%%3 = qmatmul(%%0, %%2, %%1) {group=8, dynamic=false} : f32[T, 9]\n"
                  "%%4 = const {data=[%s]} : u4[37, 9]\n%%5 = const {data=[%s]} : u4[5, 9]\n"
                  "%%6 = qmatmul(%%0, %%4, %%1, %%5) {group=8, dynamic=false} : f32[T, 9]\noutput y = %%3\noutput y2 = %%6\n",
                  nibbles(37 * 9, -8, 7, 1), nibbles(37 * 9, 0, 15, 2), nibbles(45, 0, 15, 3)), 0});
    /* dynamic W8A8: bit for bit, with rows of very different ranges, and specials (a NaN or inf in a row) */
    run((Spec){"qmatmul", EXACT, TS5, {WIDE(1e-3, 1e3), INT(-128, 127), INT(0, 2)},
               "%0 = input \"a\" : f32[T, 70]\n%1 = input \"w\" : i8[70, 17]\n%2 = input \"s\" : f32[1, 17]\n"
               "%3 = qmatmul(%0, %1, %2) {group=0, dynamic=true} : f32[T, 17]\noutput y = %3\n", 0});
    /* dynamic with constant weights and scales: the VNNI kernel where the CPU has it (packed weights,
     * blocks of 4 rows and the rest, a masked last panel; K padded to 4), else the portable one */
    static const int qshape[][2] = {{70, 17}, {65, 33}, {3, 48}, {1, 1}, {130, 16}};
    for (size_t i = 0; i < sizeof qshape / sizeof qshape[0]; i++) {
        int K = qshape[i][0], N = qshape[i][1];
        run((Spec){"qmatmul", EXACT, TS5, {WIDE(1e-3, 1e3)},
                   ir("%%0 = input \"a\" : f32[T, %d]\n%%1 = const {data=[%s]} : i8[%d, %d]\n"
                      "%%2 = const {data=[%s]} : f32[1, %d]\n"
                      "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[T, %d]\noutput y = %%3\n",
                      K, nibbles(K * N, -128, 127, 7 + (unsigned)i), K, N, nibbles(N, 0, 3, 11 + (unsigned)i), N, N), 0});
    }
    run((Spec){"qmatmul", EXACT, TS2, {SPEC(-2, 2), INT(-128, 127), UNI(0, 0.01)},
               "%0 = input \"a\" : f32[3, T, 33]\n%1 = input \"w\" : i8[33, 5]\n%2 = input \"s\" : f32[1, 5]\n"
               "%3 = qmatmul(%0, %1, %2) {group=0, dynamic=true} : f32[3, T, 5]\noutput y = %3\n", 0});
    /* the VNNI GEMM's tiles: up to 320 rows (two m-blocks of at most 216, partial last micro-tiles), N = 300 (several n-blocks, a partial last panel), K = 130 (not a multiple of 4),
     * K = 1001 (two blocks of K, the last one not a multiple of 4); rows with NaN, inf, -0 and zeros,
     * rows of three small integers (some all zero: sa = 0), zero scales */
    static const struct { int K, N; Gen a; const char *shape; } tiles[] = {
        {130, 300, SPEC(-3, 3), "8, T"}, {3, 100, INT(-1, 1), "T"}, {1001, 16, WIDE(1e-2, 1e2), "2, T"}};
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        int K = tiles[i].K, N = tiles[i].N;
        run((Spec){"qmatmul", EXACT, TS3, {tiles[i].a},
                   ir("%%0 = input \"a\" : f32[%s, %d]\n%%1 = const {data=[%s]} : i8[%d, %d]\n"
                      "%%2 = const {data=[%s]} : f32[1, %d]\n"
                      "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[%s, %d]\noutput y = %%3\n",
                      tiles[i].shape, K, nibbles(K * N, -128, 127, 21 + (unsigned)i), K, N, nibbles(N, 0, 3, 31 + (unsigned)i),
                      N, tiles[i].shape, N), 0});
    }
    /* without VNNI (AVX2: --cpu x86-64-v3) the portable kernel, the same bits */
    run_on("x86-64-v3", (Spec){"qmatmul", EXACT, TS3, {WIDE(1e-3, 1e3)},
               ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = const {data=[%s]} : i8[70, 17]\n%%2 = const {data=[%s]} : f32[1, 17]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[T, 17]\noutput y = %%3\n",
                  nibbles(70 * 17, -128, 127, 41), nibbles(17, 0, 3, 42)), 0});
}

/* bf16 weights: a rounded to bf16, f32 sums (vdpbf16ps where the CPU has AVX512-BF16: the tiles'
 * shapes as above; the portable kernel for weights that are an input, and for --cpu x86-64-v3).
 * The products are exact; the interpreter sums them in double, the kernels in f32 in another order,
 * so MM's tolerance (weights are small integers, exact in bf16). */
static void bf16_cases(void)
{
    static const struct { int K, N; const char *shape, *cpu; } cs[] = {
        {130, 300, "8, T", NULL}, {3, 100, "T", NULL}, {1001, 16, "2, T", NULL}, {70, 17, "T", "x86-64-v3"}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        run_on(cs[i].cpu, (Spec){"qmatmul", MM, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32[%s, %d]\n%%1 = const {data=[%s]} : bf16[%d, %d]\n"
                      "%%2 = qmatmul(%%0, %%1) {group=0, dynamic=false} : f32[%s, %d]\noutput y = %%2\n",
                      cs[i].shape, cs[i].K, nibbles(cs[i].K * cs[i].N, -8, 8, 71 + (unsigned)i), cs[i].K, cs[i].N,
                      cs[i].shape, cs[i].N), 0});
    run((Spec){"qmatmul", MM, TS3, {SPEC(-2, 2), UNI(-1, 1)},
               "%0 = input \"a\" : f32[T, 33]\n%1 = input \"w\" : bf16[33, 5]\n"
               "%2 = qmatmul(%0, %1) {group=0, dynamic=false} : f32[T, 5]\noutput y = %2\n", 0});
    run((Spec){"qmatmul", MM, TS5, {UNI(-2, 2), UNI(-1, 1)},
               ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = input \"b\" : f32[100]\n"
                  "%%2 = const {data=[%s]} : bf16[70, 100]\n%%3 = qmatmul(%%0, %%2) {group=0, dynamic=false, inline} : f32[T, 100]\n"
                  "%%4 = add(%%3, %%1) {inline} : f32[T, 100]\n%%5 = relu(%%4) : f32[T, 100]\noutput y = %%5\n",
                  nibbles(7000, -4, 4, 81)), 0});
}

/* A qmatmul under an epilogue (fuse-ops' bias, GELU and residual): the VNNI kernel runs it on each
 * micro-tile, the portable kernels (--cpu x86-64-v3, weight-only) as a loop after the product. The
 * product is the interpreter's (bits for W8A8), the epilogue's f32 GELU differs as elementwise ops do
 * (EW; MM for weight-only, whose sums differ in order). */
static void quant_fused_cases(void)
{
    static const char *cpus[] = {NULL, "x86-64-v3"};
    for (int c = 0; c < 2; c++)
        run_on(cpus[c], (Spec){"qmatmul", EW, TS3, {UNI(-2, 2), UNI(-1, 1), UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = input \"b\" : f32[100]\n%%2 = input \"r\" : f32[T, 100]\n"
                      "%%3 = const {data=[%s]} : i8[70, 100]\n%%4 = const {data=[%s]} : f32[1, 100]\n"
                      "%%5 = qmatmul(%%0, %%3, %%4) {group=0, dynamic=true, inline} : f32[T, 100]\n"
                      "%%6 = add(%%5, %%1) {inline} : f32[T, 100]\n%%7 = gelu(%%6) {approx=erf, inline} : f32[T, 100]\n"
                      "%%8 = add(%%2, %%7) : f32[T, 100]\noutput y = %%8\n",
                      nibbles(70 * 100, -128, 127, 51), nibbles(100, 1, 3, 52)), 0});
    run((Spec){"qmatmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1)},
               ir("%%0 = input \"a\" : f32[2, T, 37]\n%%1 = input \"b\" : f32[9]\n%%2 = input \"s\" : f32[5, 9]\n"
                  "%%3 = const {data=[%s]} : i4[37, 9]\n%%4 = qmatmul(%%0, %%3, %%2) {group=8, dynamic=false, inline} : f32[2, T, 9]\n"
                  "%%5 = add(%%4, %%1) {inline} : f32[2, T, 9]\n%%6 = relu(%%5) : f32[2, T, 9]\noutput y = %%6\n",
                  nibbles(37 * 9, -8, 7, 61)), 0});
}

static void source_cases(void)
{
    Gen g = UNI(0, 1);
    run((Spec){"arange", EXACT, TS5, {g},
               "%0 = input \"x\" : f32[T]\n%1 = arange : i32[T]\noutput y = %1\n", 0});
    run((Spec){"arange", EXACT, TS2, {g},
               "%0 = input \"x\" : f32[T]\n%1 = arange : f32[2*T+1]\noutput y = %1\n", 0});
    run((Spec){"arange", EXACT, NULL, {g},
               "%0 = arange : i64[65]\noutput y = %0\n", 0});
    run((Spec){"arange", EXACT, NULL, {g},
               "%0 = arange : f16[33]\noutput y = %0\n", 0});
    run((Spec){"arange", EXACT, NULL, {g}, "%0 = arange : u8[300]\noutput y = %0\n", 0});
    run((Spec){"arange", EXACT, NULL, {g}, "%0 = arange : bf16[300]\noutput y = %0\n", 0});
    run((Spec){"causal_mask", EXACT, NULL, {g}, "%0 = causal_mask : bf16[3, 4]\noutput y = %0\n", 0});
    run((Spec){"causal_mask", EXACT, TS5, {g},
               "%0 = input \"x\" : f32[T]\n%1 = causal_mask : f32[T, T]\noutput y = %1\n", 0});
    run((Spec){"causal_mask", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T]\n%1 = causal_mask : f32[T, T+2]\noutput y = %1\n", 0});
    run((Spec){"causal_mask", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T]\n%1 = causal_mask : f32[T+2, T]\noutput y = %1\n", 0});
    run((Spec){"causal_mask", EXACT, TS3, {g, g},
               "%0 = input \"x\" : f32[T]\n%1 = input \"s\" : f32[S]\n%2 = causal_mask : f32[T, S]\noutput y = %2\n", 0});
    run((Spec){"causal_mask", EXACT, NULL, {g},
               "%0 = causal_mask : f32[5, 9]\noutput y = %0\n", 0});
    run((Spec){"causal_mask", EXACT, NULL, {g},
               "%0 = causal_mask : f16[7, 3]\noutput y = %0\n", 0});
}

int main(int argc, char **argv)
{
    if (argc > 1)
        only = atoi(argv[1]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* initialise LLVM's targets once, before the children are forked */
    Diag *d = diag_new(stderr);
    cg_free(cg_new(&(CgOptions){.opt = 2}, d));
    diag_free(d);

    unary_cases();
    binary_cases();
    compare_cases();
    cast_cases();
    reduce_cases();
    normalise_cases();
    matmul_cases();
    fused_cases();
    attention_cases();
    token_cases();
    conv_cases();
    movement_cases();
    source_cases();
    scatter_cases();
    quant_cases();
    quant_fused_cases();
    bf16_cases();

    for (int op = 0; op < OP_COUNT; op++) {
        if (op == OP_INPUT || op == OP_WEIGHT || op == OP_CONST || op == OP_STATE /* tests/models/state.sh */ ||
            covered[op])
            continue;
        printf("FAIL op '%s' of ops.def has no case\n", op_info[op].name);
        nfail++;
    }
    for (int t = 0; t < DT_COUNT; t++)
        if (!covered_dt[t]) {
            printf("FAIL dtype '%s' of kiln_dtype.h has no case\n", dtype_traits[t].name);
            nfail++;
        }
    for (int a = 0; a < AI_COUNT; a++)
        if (!covered_attr[a]) {
            printf("FAIL attribute '%s' of attrs.def has no case\n", attr_info[a].name);
            nfail++;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%d passed, %d failed (%d cases, %.1f s)\n", npass, nfail, ncase,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return nfail ? 1 : 0;
}
