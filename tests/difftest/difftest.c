/* difftest.c: runs one model file every way kiln can and compares each with the oracle.
 *
 *   difftest MODEL.kiln [--seed N] [--sample K] [-v]
 *
 * The oracle is the interpreter on the graph as the frontend made it (no passes). It is compared
 * with: the interpreter after the default passes; after each pass alone (canonicalize,
 * fuse-attention, fuse-ops; plan-memory runs in each, as in the driver); and the code the JIT
 * compiles after the default passes at -O0 with one thread, at -O2 with one and with two threads,
 * and at -O2 with no pass but plan-memory. Every variant starts from a fresh lowering of the file.
 * LLVM's -O2 takes most of the time (up to seconds for a model with attention), so --sample K
 * runs only the K-th (mod 3) of the three -O2 variants; a batch of models with consecutive K covers
 * all three (ctest's batch does this). -v prints each variant's time.
 *
 * Inputs are random with a fixed seed: each symbolic size uniform in [1, bound]; floats uniform in
 * [-2, 2]; integers in [0, M) for an input whose name ends in `_ltM` (gather indices), else in
 * [-3, 3]; bools 0 or 1.
 *
 * Tolerance, per float output: |got - want| <= 1e-3 * max(1, max |want|) for every element (the
 * compiled kernels compute in f32 with a polynomial exp in attention, the interpreter in double;
 * over the generator's chains of a dozen ops that stays far below this, while a wrong index, axis
 * or broadcast is off by the size of the values). NaN matches only NaN, an infinity only itself.
 * Integer and bool outputs must be equal.
 *
 * Exit status: 0 when every variant matches, 1 at a mismatch (each one printed, naming the variant,
 * the output, the element and both values), 2 when the model is rejected or a variant fails to run
 * (a generator or compiler bug that tests/difftest/run.py also reports).
 */
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

typedef struct Variant {
    const char *name;
    const char *passes; /* for pass_pipeline */
    int jit;            /* 0: interpreter */
    int opt, threads;
} Variant;

static const Variant variants[] = {
    {"interp, default passes", "default", 0, 0, 0},
    {"interp, canonicalize", "canonicalize", 0, 0, 0},
    {"interp, fuse-attention", "fuse-attention", 0, 0, 0},
    {"interp, fuse-ops", "fuse-ops", 0, 0, 0},
    {"jit -O0, 1 thread", "default", 1, 0, 1},
    {"jit -O2, 1 thread", "default", 1, 2, 1},
    {"jit -O2, 2 threads", "default", 1, 2, 2},
    {"jit -O2, plan-memory only", "plan-memory", 1, 2, 1},
};

static uint64_t rng;

static double uniform(void) /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int64_t numel(const HostTensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}

static Graph *lower(const char *path, const char *passes, Diag *d)
{
    Graph *g = fe_compile(path, NULL, d);
    if (!g)
        return NULL;
    PassOptions po = {.d = d};
    if (ir_verify(g, d) || pass_pipeline(g, passes, NULL, NULL, &po)) {
        if (g->weights)
            st_close(g->weights);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static void unload(Graph *g)
{
    if (g && g->weights)
        st_close(g->weights);
    ir_graph_free(g);
}

/* Runs g one way; fills out (malloc'ed data). Returns 0 on success. */
static int run(const Variant *v, const Graph *g, const HostTensor *in, HostTensor *out, Diag *d)
{
    if (!v->jit)
        return ir_interp(g, in, out, d);
    int64_t syms[IR_MAX_SYMS] = {0};
    if (ir_bind_inputs(g, in, syms, d))
        return -1;
    void *inp[64], *outp[64];
    for (int i = 0; i < g->ninput; i++)
        inp[i] = in[i].data;
    for (int i = 0; i < g->noutput; i++) {
        const Node *n = g->outputs[i].node;
        out[i].dtype = n->dtype;
        out[i].rank = n->rank;
        for (int j = 0; j < n->rank; j++)
            out[i].shape[j] = dim_eval(n->shape[j], syms);
        int64_t cnt = numel(&out[i]);
        out[i].data = calloc((size_t)(cnt ? cnt : 1), (size_t)dtype_traits[n->dtype].size);
        outp[i] = out[i].data;
    }
    CgOptions co = {.opt = v->opt};
    Cg *cg = cg_new(&co, d);
    int rc = !cg || cg_build(cg, g) || cg_optimise(cg) || cg_jit_run(cg, syms, inp, outp, v->threads);
    cg_free(cg);
    return rc ? -1 : 0;
}

/* Prints the first mismatch of one output; returns whether there was one. */
static int compare(const char *variant, const char *name, const HostTensor *want, const HostTensor *got)
{
    if (want->rank != got->rank || memcmp(want->shape, got->shape, sizeof(int64_t) * (size_t)want->rank) ||
        want->dtype != got->dtype) {
        printf("MISMATCH %s: output '%s' has another type or shape\n", variant, name);
        return 1;
    }
    int64_t n = numel(want);
    double maxabs = 1;
    for (int64_t i = 0; i < n; i++) {
        double w = dtype_load(want->dtype, want->data, (size_t)i);
        if (isfinite(w) && fabs(w) > maxabs)
            maxabs = fabs(w);
    }
    int is_float = dtype_traits[want->dtype].is_float;
    for (int64_t i = 0; i < n; i++) {
        double w = dtype_load(want->dtype, want->data, (size_t)i);
        double g = dtype_load(got->dtype, got->data, (size_t)i);
        int ok;
        if (!is_float || isnan(w) || isinf(w))
            ok = w == g || (isnan(w) && isnan(g));
        else
            ok = fabs(g - w) <= 1e-3 * maxabs;
        if (!ok) {
            printf("MISMATCH %s: output '%s' element %lld: got %.9g, want %.9g (tolerance %.3g)\n", variant, name,
                   (long long)i, g, w, is_float ? 1e-3 * maxabs : 0.0);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    unsigned long long seed = 1;
    int verbose = 0, sample = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--sample") && i + 1 < argc)
            sample = atoi(argv[++i]) % 3;
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: difftest MODEL.kiln [--seed N] [--sample K] [-v]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: difftest MODEL.kiln [--seed N] [--sample K] [-v]\n");
        return 2;
    }
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    Diag *d = diag_new(stderr);
    Graph *g = lower(path, "none", d);
    if (!g) {
        fprintf(stderr, "difftest: %s is rejected\n", path);
        return 2;
    }
    /* random inputs */
    int64_t symval[IR_MAX_SYMS];
    for (int s = 0; s < g->nsym; s++)
        symval[s] = 1 + (int64_t)(uniform() * (double)g->syms[s].bound);
    HostTensor *in = calloc((size_t)g->ninput + 1, sizeof *in);
    for (int i = 0; i < g->ninput; i++) {
        const Node *x = g->inputs[i];
        in[i].dtype = x->dtype;
        in[i].rank = x->rank;
        for (int j = 0; j < x->rank; j++)
            in[i].shape[j] = dim_eval(x->shape[j], symval);
        int64_t n = numel(&in[i]);
        in[i].data = calloc((size_t)(n ? n : 1), (size_t)dtype_traits[x->dtype].size);
        const char *lt = strstr(x->name, "_lt");
        long m = lt ? strtol(lt + 3, NULL, 10) : 0;
        for (int64_t k = 0; k < n; k++) {
            double v = dtype_traits[x->dtype].is_float ? uniform() * 4 - 2
                     : x->dtype == DT_BOOL              ? (double)(uniform() < 0.5)
                     : m > 0                            ? (double)(int64_t)(uniform() * (double)m)
                                                        : (double)((int64_t)(uniform() * 7) - 3);
            dtype_store(x->dtype, in[i].data, (size_t)k, v);
        }
    }
    HostTensor *want = calloc((size_t)g->noutput + 1, sizeof *want);
    if (ir_interp(g, in, want, d)) {
        fprintf(stderr, "difftest: the interpreter fails on %s\n", path);
        return 2;
    }
    int mismatches = 0, failures = 0;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const Variant *var = &variants[v];
        if (sample >= 0 && var->opt == 2 && (int)v - 5 != sample) /* variants 5, 6, 7 are the -O2 ones */
            continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        Graph *h = lower(path, var->passes, d);
        HostTensor *got = calloc((size_t)g->noutput + 1, sizeof *got);
        if (!h || run(var, h, in, got, d)) {
            printf("FAILED %s: the variant does not run\n", var->name);
            failures++;
        } else {
            for (int o = 0; o < g->noutput; o++)
                mismatches += compare(var->name, g->outputs[o].name, &want[o], &got[o]);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (verbose)
                printf("ran %s (%.3f s)\n", var->name, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        }
        for (int o = 0; h && o < h->noutput; o++)
            free(got[o].data);
        free(got);
        unload(h);
    }
    for (int i = 0; i < g->ninput; i++)
        free(in[i].data);
    for (int o = 0; o < g->noutput; o++)
        free(want[o].data);
    free(in);
    free(want);
    unload(g);
    diag_free(d);
    return failures ? 2 : mismatches ? 1 : 0;
}
