/* test_codegen_ops.c: every op of ops.def compiled by the code generator, against the interpreter:
 * the harness and main. The cases are in codegen_ops_FAMILY.c, one file per family of ops (see
 * codegen_ops.h and families[] below).
 *
 * Each case is a small graph in the IR text form (inputs, the op under test with its attributes,
 * one or two outputs; `const` nodes for constant operands), read with ir_parse and checked with
 * ir_verify. For each value of its symbol T (`sym T <= 40` and `sym S <= 45` head every case; cases
 * with a symbolic shape run at several values of T, 1 and the bound 40 always among them, with
 * S = T + 5 for the few that use a second symbol; every value runs even after one fails, so a
 * report says which sizes are wrong) the test fills the inputs
 * from a fixed-seed xorshift generator with values suited to the op, binds the symbols with
 * ir_bind_inputs, runs ir_interp (the oracle) and the JIT (cg_new with -O2, cg_build, cg_optimise,
 * cg_jit_run with one thread, or two: run_threads) and compares the outputs element by element. cg_jit_run consumes the
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
 *
 * `test_codegen_ops` runs every case; `test_codegen_ops FAMILY` (elementwise, reduce, matmul,
 * attention, tokens, movement, quant) runs one family's, which is how ctest runs them
 * (unit/test_codegen_ops/FAMILY, in parallel: together they take minutes, under ASan many); and
 * `test_codegen_ops N` runs case #N alone. Every run numbers all the cases in the same order and
 * checks that every op, dtype and attribute has one, so a case's number, and with it its inputs
 * (each case seeds its generator from its number), do not depend on what runs. It reads no files;
 * ctest runs it from the repository root.
 */
#define _GNU_SOURCE /* open_memstream */
#include "codegen_ops.h"

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- tolerances */

const Tol EXACT = {T_EXACT, 0, 0, "exact"};
const Tol EW = {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"};
const Tol F16 = {T_ELEM, 1e-3, 1e-6, "1e-3 rel + 1e-6"};
const Tol BF16 = {T_ELEM, 8e-3, 1e-6, "8e-3 rel + 1e-6"};
const Tol RED = {T_MAX, 1e-6, 1e-30, "1e-6 of max"};
const Tol NORM = {T_MAX, 1e-5, 1e-30, "1e-5 of max"};
const Tol MM = {T_MAX, 1e-5, 1e-30, "1e-5 of max"};
const Tol F64 = {T_ELEM, 1e-12, 1e-300, "1e-12 rel"};
const Tol MM16 = {T_MAX, 1e-3, 1e-30, "1e-3 of max"};
const Tol MMBF16 = {T_MAX, 8e-3, 1e-30, "8e-3 of max"};

/* ---------------------------------------------------------------- input generators */

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
    case G_TIES: { /* fill() makes the rows; each element on its own: a magnitude as the rows' first */
        double m = exp(log(g->lo) + (log(g->hi) - log(g->lo)) * unif());
        return rng() & 1 ? m : -m;
    }
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
    if (g->kind == G_TIES && t->rank > 0 && t->dtype == DT_F32) {
        int64_t L = t->shape[t->rank - 1];
        float *x = t->data;
        for (int64_t e = 0; e < n; e++) {
            if (e % L == 0)
                continue; /* the row's A: the largest magnitude */
            float a = fabsf(x[e - e % L]), s = a / 127.0f, v = s * ((float)(int)(rng() % 254) - 127.0f + 0.5f);
            uint32_t u;
            memcpy(&u, &v, 4);
            u += (uint32_t)(int)(rng() % 9) - 4u;
            memcpy(&v, &u, 4);
            x[e] = fabsf(v) > a ? copysignf(a, v) : v;
        }
    }
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

enum { GUARD = 64 }; /* bytes after each output that must stay untouched */

/* The CPU the next cases compile for (--cpu) rather than the host's, to run a kernel's fallback;
 * NULL: the host. Set around run() by run_on(). */
static const char *case_cpu;
/* The threads the next cases' compiled code runs on; set around run() by run_threads(). */
static int case_threads = 1;

const int64_t TS5[] = {1, 2, 5, 17, 40, 0};
const int64_t TS3[] = {1, 17, 40, 0};
const int64_t TS2[] = {1, 40, 0};

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
static int only = -1;      /* a case number from the command line: run just that one */
static int selected = 1;   /* whether the family whose cases are being counted runs */

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
    if (case_threads > 1)
        snprintf(what + strlen(what), sizeof what - strlen(what), " on %d threads", case_threads);

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
            crc = cg_jit_run(cg, bound, inp, outp, case_threads);
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
void run(Spec s)
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
    if (!selected || (only >= 0 && num != only))
        return;
    fflush(stdout);
    pid_t pid = fork();
    KILN_ASSERT(pid >= 0);
    if (pid == 0) {
        /* A hang is 60 s of CPU (a loop) or 10 minutes of wall time (a deadlock): not a wall-clock
         * minute, which a case that needs 4 s of CPU can take on a busy machine. */
        setrlimit(RLIMIT_CPU, &(struct rlimit){60, 70});
        alarm(600);
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

void run_on(const char *cpu, Spec s)
{
    case_cpu = cpu;
    run(s);
    case_cpu = NULL;
}

void run_threads(int threads, Spec s)
{
    case_threads = threads;
    run(s);
    case_threads = 1;
}

const char *ir(const char *fmt, ...)
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

/* The case functions in the order that numbers the cases, each with its family (ctest's unit). */
static const struct {
    const char *family;
    void (*cases)(void);
} families[] = {
    {"elementwise", unary_cases}, {"elementwise", binary_cases}, {"elementwise", compare_cases},
    {"elementwise", cast_cases},  {"reduce", reduce_cases},       {"reduce", normalise_cases},
    {"matmul", matmul_cases},     {"matmul", fused_cases},        {"attention", attention_cases},
    {"tokens", token_cases},      {"matmul", conv_cases},         {"movement", movement_cases},
    {"movement", source_cases},   {"movement", scatter_cases},    {"quant", quant_cases},
    {"quant", quant_fused_cases}, {"quant", bf16_cases},       {"elementwise", int_dtype_cases},
    {"elementwise", u64_cases},   {"reduce", u64_reduce_cases},
};
enum { NFAMILIES = sizeof families / sizeof families[0] };

int main(int argc, char **argv)
{
    const char *family = NULL;
    if (argc > 1 && isdigit((unsigned char)argv[1][0])) {
        only = atoi(argv[1]);
    } else if (argc > 1) {
        family = argv[1];
        int known = 0;
        for (int f = 0; f < NFAMILIES; f++)
            known |= !strcmp(family, families[f].family);
        if (!known) {
            fprintf(stderr, "usage: test_codegen_ops [FAMILY | CASE-NUMBER]; no family '%s'\n", family);
            return 2;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* initialise LLVM's targets once, before the children are forked */
    Diag *d = diag_new(stderr);
    cg_free(cg_new(&(CgOptions){.opt = 2}, d));
    diag_free(d);

    for (int f = 0; f < NFAMILIES; f++) {
        selected = !family || !strcmp(family, families[f].family);
        families[f].cases();
    }
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
    printf("%d passed, %d failed (%d of the %d cases%s%s, %.1f s)\n", npass, nfail, npass + nfail, ncase,
           family ? ": family " : "", family ? family : "",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return nfail ? 1 : 0;
}
