/* test_interp.c: the interpreter against PyTorch, op by op, and its own contracts.
 *
 * Part 1 reads tests/ops/ref/cases.txt (written by tests/ops/make_refs.py; run with the repository
 * root as the working directory). Each line names a case, an op, its attributes and a relative
 * tolerance; the case's inputs and PyTorch's output are .npy files beside it. For each case the test
 * builds a one-op graph (INPUT nodes of the inputs' shapes and dtypes, the op node with its shape
 * worked out here from the inputs and attributes, one output), runs ir_interp and compares:
 *
 *     |actual - expected| <= ATOL + rtol * |expected|,  NaN matches NaN, infinities match exactly.
 *
 * rtol comes from cases.txt; make_refs.py explains each value: the references are computed in
 * float64 and rounded once to the output dtype, exactly as the interpreter does, so float32 results
 * may differ only by the last bits of two libms (rtol 1e-6 = about 8 float32 ulps), float16 results
 * by an ulp (2e-3), and integer, bool and data-movement results not at all (0).
 * ATOL = 1e-6 is the floor for expected values at or near zero, where a relative bound means nothing:
 * a sum or product that cancels to ~0 differs between two correct double evaluations by about
 * 1e-16 times its terms, far below 1e-6 for the O(1..1000) magnitudes of the cases.
 * The test fails when an op of ops.def (other than the INPUT, WEIGHT and CONST sources, exercised
 * by every case and by part 2) has no case, so a new op cannot skip the oracle's test.
 *
 * Part 2 checks what PyTorch cannot tell us: binding symbolic sizes (and the errors when an input
 * does not fit), gather indices out of range reported with the node's location instead of a crash,
 * causal_mask and arange values, per-node rounding to f16/bf16/integers, integer division, and
 * graphs whose outputs are sources or repeat a node.
 */
#include "ir/ir.h"
#include "runtime/kiln_rt.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define REF_DIR "tests/ops/ref"
#define ATOL 1e-6

#include "tests/unit/check.h"

static const SrcLoc NOLOC = {0, 0, 0};

/* ---------------------------------------------------------------- helpers */

static Node *input(Graph *g, const char *name, DType dt, int rank, const Dim *shape)
{
    Node *n = ir_node(g, OP_INPUT, dt, rank, shape, 0, NULL, NOLOC);
    n->name = arena_strdup(g->arena, name);
    return n;
}

static Node *node1(Graph *g, Op op, DType dt, int rank, const Dim *shape, Node *a)
{
    return ir_node(g, op, dt, rank, shape, 1, &a, NOLOC);
}

static Node *node2(Graph *g, Op op, DType dt, int rank, const Dim *shape, Node *a, Node *b)
{
    Node *in[2] = {a, b};
    return ir_node(g, op, dt, rank, shape, 2, in, NOLOC);
}

/* Runs g, sending the diagnostics to msg (when not NULL) instead of stderr. */
static int run(const Graph *g, const HostTensor *in, HostTensor *out, char *msg, size_t len)
{
    FILE *f = msg ? tmpfile() : stderr;
    KILN_ASSERT(f);
    Diag *d = diag_new(f);
    int rc = ir_interp(g, in, out, d);
    if (rc)
        CHECK(diag_errors(d) > 0, "ir_interp failed without reporting an error");
    diag_free(d);
    if (msg) {
        rewind(f);
        size_t n = fread(msg, 1, len - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    return rc;
}

static HostTensor host(DType dt, int rank, const int64_t *shape, void *data)
{
    HostTensor t = {.dtype = dt, .rank = rank, .data = data};
    memcpy(t.shape, shape, sizeof(int64_t) * (size_t)rank);
    return t;
}

static double at(const HostTensor *t, size_t i)
{
    return dtype_load(t->dtype, t->data, i);
}

static int close_enough(double a, double e, double rtol)
{
    if (isnan(e) || isnan(a))
        return isnan(e) && isnan(a);
    if (isinf(e) || isinf(a))
        return a == e;
    return fabs(a - e) <= ATOL + rtol * fabs(e);
}

/* ---------------------------------------------------------------- part 1: PyTorch cases */

typedef struct Case {
    char name[128];
    int op;
    double rtol;
    Attrs at;
    int has_shape, shape_rank;
    int64_t shape[IR_MAX_RANK]; /* shape=..., for reshape, expand, arange, causal_mask */
} Case;

/* "1,0,2" -> v[]; returns the count, -1 on a malformed list. An empty list is rank 0. */
static int parse_list(const char *s, int64_t *v, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long long x = strtoll(s, &end, 10);
        if (end == s || n == max)
            return -1;
        v[n++] = x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int parse_case(char *line, Case *c)
{
    char *tok[32];
    int nt = 0;
    for (char *p = strtok(line, " \t\r\n"); p && nt < 32; p = strtok(NULL, " \t\r\n"))
        tok[nt++] = p;
    if (nt < 3)
        return -1;
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", tok[0]);
    c->op = op_from_name(tok[1]);
    c->rtol = strtod(tok[nt - 1], NULL);
    if (c->op < 0)
        return -1;
    for (int i = 2; i < nt - 1; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq)
            return -1;
        *eq = 0;
        const char *k = tok[i], *v = eq + 1;
        int64_t l[IR_MAX_RANK];
        int nl = parse_list(v, l, IR_MAX_RANK);
        if (!strcmp(k, "axis"))
            c->at.axis = atoi(v);
        else if (!strcmp(k, "keepdims"))
            c->at.keepdims = atoi(v);
        else if (!strcmp(k, "eps"))
            c->at.eps = strtod(v, NULL);
        else if (!strcmp(k, "approx"))
            c->at.approx = atoi(v);
        else if (!strcmp(k, "scale"))
            c->at.scale = strtod(v, NULL);
        else if (!strcmp(k, "causal"))
            c->at.causal = atoi(v);
        else if (!strcmp(k, "r"))
            c->at.r = atoi(v);
        else if (!strcmp(k, "cls"))
            c->at.cls = atoi(v);
        else if (!strcmp(k, "mode"))
            c->at.mode = atoi(v);
        else if (!strcmp(k, "margin"))
            c->at.margin = strtod(v, NULL);
        else if (!strcmp(k, "bsm"))
            c->at.bsm = atoi(v);
        else if (!strcmp(k, "keep"))
            c->at.keep = atoi(v);
        else if (!strcmp(k, "group"))
            c->at.group = atoi(v);
        else if (!strcmp(k, "dynamic"))
            c->at.dynamic = atoi(v);
        else if (!strcmp(k, "start"))
            c->at.start = dim_const(atoll(v));
        else if (!strcmp(k, "end"))
            c->at.end = dim_const(atoll(v));
        else if ((!strcmp(k, "stride") || !strcmp(k, "pad")) && nl == 2) {
            int *dst = k[0] == 's' ? c->at.stride : c->at.pad;
            dst[0] = (int)l[0];
            dst[1] = (int)l[1];
        } else if (!strcmp(k, "perm") && nl >= 0) {
            for (int j = 0; j < nl; j++)
                c->at.perm[j] = (int)l[j];
        } else if (!strcmp(k, "shape") && nl >= 0) {
            c->has_shape = 1;
            c->shape_rank = nl;
            memcpy(c->shape, l, sizeof(int64_t) * (size_t)nl);
        } else
            return -1;
    }
    return 0;
}

static int load(const char *path, RtNpy *a, DType *dt)
{
    char err[256];
    if (rt_npy_read(path, a, err, sizeof err)) {
        CHECK(0, "%s", err);
        return -1;
    }
    int t = dtype_from_npy(a->descr);
    if (t < 0) {
        CHECK(0, "%s: dtype %s", path, a->descr);
        rt_npy_free(a);
        return -1;
    }
    *dt = (DType)t;
    return 0;
}

/* Runs one case; returns 1 when it passes. */
static int run_case(const Case *c)
{
    enum { MAXIN = 8 };
    RtNpy in[MAXIN], out;
    DType idt[MAXIN], odt;
    int nin = 0, ok = 0;
    char path[512];
    memset(in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    for (; nin < MAXIN; nin++) {
        snprintf(path, sizeof path, REF_DIR "/%s.in%d.npy", c->name, nin);
        FILE *f = fopen(path, "rb");
        if (!f)
            break;
        fclose(f);
        if (load(path, &in[nin], &idt[nin]))
            goto done;
    }
    snprintf(path, sizeof path, REF_DIR "/%s.out.npy", c->name);
    if (load(path, &out, &odt))
        goto done;
    Graph *g = ir_graph_new();
    Node *ins[MAXIN];
    HostTensor hin[MAXIN], hout = {0};
    for (int i = 0; i < nin; i++) {
        Dim d[IR_MAX_RANK];
        for (int k = 0; k < in[i].rank; k++)
            d[k] = dim_const(in[i].shape[k]);
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        ins[i] = input(g, nm, idt[i], in[i].rank, d);
        hin[i] = host(idt[i], in[i].rank, in[i].shape, in[i].data);
    }
    /* the IR's shape inference (ir/build.c) gives the node's type; it must be PyTorch's. Reshape
     * and expand take theirs from the case, cast its dtype from the reference. */
    IrType want = {.dtype = odt, .rank = c->shape_rank};
    for (int k = 0; c->has_shape && k < c->shape_rank; k++)
        want.shape[k] = dim_const(c->shape[k]);
    IrWhy why;
    Node *y;
    if (c->op == OP_CLS_PROBS) { /* the second result of the attention of the case's inputs and attributes */
        Node *a = ir_build(g, OP_ATTENTION, &c->at, nin, ins, NULL, NOLOC, &why);
        y = a ? ir_build(g, OP_CLS_PROBS, NULL, 1, &a, &want, NOLOC, &why) : NULL;
    } else {
        y = ir_build(g, (Op)c->op, &c->at, nin, ins, &want, NOLOC, &why);
    }
    int fits = y && y->rank == out.rank && y->dtype == odt;
    for (int k = 0; fits && k < y->rank; k++)
        fits = dim_is_const(y->shape[k]) && dim_value(y->shape[k]) == out.shape[k];
    if (!fits) {
        char b1[256];
        CHECK(0, "%s: shape inference gives %s for %s, PyTorch %d dimensions", c->name,
              y ? node_type_str(g, y, b1, sizeof b1) : why.msg, op_info[c->op].name, out.rank);
        ir_graph_free(g);
        goto done;
    }
    ir_add_output(g, "out", y);

    if (run(g, hin, &hout, NULL, 0)) {
        CHECK(0, "%s: ir_interp failed", c->name);
    } else {
        size_t n = out.elem_size ? out.nbytes / out.elem_size : 0;
        int bad = 0;
        CHECK(hout.dtype == odt && hout.rank == out.rank, "%s: output type", c->name);
        for (size_t i = 0; i < n; i++) {
            double a = at(&hout, i), e = dtype_load(odt, out.data, i);
            if (!close_enough(a, e, c->rtol) && bad++ < 3)
                CHECK(0, "%s (%s): element %zu: got %.9g, PyTorch %.9g (rtol %g)", c->name,
                      op_info[c->op].name, i, a, e, c->rtol);
        }
        ok = !bad;
        free(hout.data);
    }
    ir_graph_free(g);
done:
    for (int i = 0; i < nin; i++)
        rt_npy_free(&in[i]);
    rt_npy_free(&out);
    return ok;
}

static void test_pytorch_cases(void)
{
    FILE *f = fopen(REF_DIR "/cases.txt", "r");
    if (!f) {
        CHECK(0, "cannot open " REF_DIR "/cases.txt (run from the repository root; regenerate with "
                 "/usr/bin/python3 tests/ops/make_refs.py)");
        return;
    }
    int covered[OP_COUNT] = {0}, ncase = 0, npass = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", line);
        Case c;
        if (parse_case(copy, &c)) {
            CHECK(0, "cases.txt: cannot parse: %s", line);
            continue;
        }
        ncase++;
        covered[c.op]++;
        npass += run_case(&c);
    }
    fclose(f);
    int attr_cov[AI_COUNT] = {0};
    for (int op = 0; op < OP_COUNT; op++) {
        if (op != OP_INPUT && op != OP_WEIGHT && op != OP_CONST && op != OP_STATE) /* state: test_state.c */
            CHECK(covered[op], "op '%s' has no PyTorch case in " REF_DIR "/cases.txt (add one to "
                  "tests/ops/make_refs.py)", op_info[op].name);
        for (int a = 0; a < AI_COUNT; a++)
            if (covered[op] && (op_info[op].attrs & (1 << a)))
                attr_cov[a] = 1;
    }
    /* every attribute of attrs.def is exercised by some case (data: by every const) */
    for (int a = 0; a < AI_COUNT; a++)
        CHECK(attr_cov[a] || a == AI_DATA, "attribute '%s' has no PyTorch case in " REF_DIR "/cases.txt",
              attr_info[a].name);
    printf("pytorch cases: %d of %d pass\n", npass, ncase);
}

/* ---------------------------------------------------------------- part 2: the interpreter's contracts */

/* tokens: i32[T], T <= 8; out = wpe[0:T] + cast(tokens).reshape(T, 1): f32[T, 2] */
static void test_symbols(void)
{
    Graph *g = ir_graph_new();
    int T = ir_sym(g, "T", 8);
    Dim dT[2] = {dim_sym(T), dim_const(2)}, dW[2] = {dim_const(8), dim_const(2)};
    Dim dT1[2] = {dim_sym(T), dim_const(1)};
    static float wpe[16];
    for (int i = 0; i < 16; i++)
        wpe[i] = (float)(i * 10);
    Node *tok = input(g, "tokens", DT_I32, 1, dT);
    Node *w = ir_node(g, OP_WEIGHT, DT_F32, 2, dW, 0, NULL, NOLOC);
    w->name = "wpe";
    w->at.data = wpe;
    Node *s = node1(g, OP_SLICE, DT_F32, 2, dT, w);
    s->at.axis = 0;
    s->at.start = dim_const(0);
    s->at.end = dim_sym(T);
    Node *cst = node1(g, OP_CAST, DT_F32, 1, dT, tok);
    Node *r = node1(g, OP_RESHAPE, DT_F32, 2, dT1, cst);
    Node *y = node2(g, OP_ADD, DT_F32, 2, dT, s, r);
    ir_add_output(g, "y", y);

    int32_t toks[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t sh[2] = {5, 1};
    HostTensor in = host(DT_I32, 1, sh, toks), out = {0};
    char msg[2048];

    int64_t vals[IR_MAX_SYMS];
    Diag *d = diag_new(stderr);
    CHECK(ir_bind_inputs(g, &in, vals, d) == 0 && vals[T] == 5, "bind T = 5");
    diag_free(d);

    CHECK(run(g, &in, &out, NULL, 0) == 0, "T = 5 runs");
    CHECK(out.rank == 2 && out.shape[0] == 5 && out.shape[1] == 2 && out.dtype == DT_F32, "T = 5: shape");
    for (int i = 0; i < 5 && out.data; i++)
        for (int j = 0; j < 2; j++)
            CHECK(at(&out, (size_t)(i * 2 + j)) == wpe[i * 2 + j] + toks[i], "T = 5: y[%d][%d]", i, j);
    free(out.data);

    sh[0] = 9;
    in = host(DT_I32, 1, sh, toks);
    CHECK(run(g, &in, &out, msg, sizeof msg) != 0, "T = 9 exceeds the bound");
    CHECK(strstr(msg, "'tokens'") && strstr(msg, "T <= 8") && strstr(msg, "i32[9]"),
          "T = 9: message names the input, the bound and the shape: %s", msg);

    sh[0] = 0;
    in = host(DT_I32, 1, sh, toks);
    CHECK(run(g, &in, &out, msg, sizeof msg) != 0, "T = 0 is rejected");

    sh[0] = 5;
    in = host(DT_F32, 1, sh, toks);
    CHECK(run(g, &in, &out, msg, sizeof msg) != 0, "wrong dtype is rejected");
    CHECK(strstr(msg, "'tokens'") && strstr(msg, "expected i32[T]") && strstr(msg, "f32[5]"),
          "wrong dtype: %s", msg);

    in = host(DT_I32, 2, sh, toks);
    CHECK(run(g, &in, &out, msg, sizeof msg) != 0, "wrong rank is rejected");
    CHECK(strstr(msg, "'tokens'") && strstr(msg, "i32[5, 1]"), "wrong rank: %s", msg);
    ir_graph_free(g);

    /* x: f32[2*T+1], z: f32[T]; out = x[0:T] + z */
    g = ir_graph_new();
    T = ir_sym(g, "T", 4);
    Dim d2[1] = {dim_add_const(dim_mul_const(dim_sym(T), 2), 1)}, d1[1] = {dim_sym(T)};
    Node *x = input(g, "x", DT_F32, 1, d2), *z = input(g, "z", DT_F32, 1, d1);
    Node *xs = node1(g, OP_SLICE, DT_F32, 1, d1, x);
    xs->at.start = dim_const(0);
    xs->at.end = dim_sym(T);
    ir_add_output(g, "y", node2(g, OP_ADD, DT_F32, 1, d1, xs, z));
    float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, zv[5] = {10, 20, 30, 40, 50};
    int64_t sx = 7, sz = 3;
    HostTensor two[2] = {host(DT_F32, 1, &sx, xv), host(DT_F32, 1, &sz, zv)};
    CHECK(run(g, two, &out, NULL, 0) == 0 && out.shape[0] == 3 && at(&out, 2) == 33, "2*T+1 = 7 binds T = 3");
    free(out.data);
    sx = 8;
    two[0] = host(DT_F32, 1, &sx, xv);
    CHECK(run(g, two, &out, msg, sizeof msg) != 0 && strstr(msg, "'x'"), "2*T+1 = 8 is rejected: %s", msg);
    sx = 9;
    two[0] = host(DT_F32, 1, &sx, xv);
    CHECK(run(g, two, &out, msg, sizeof msg) != 0 && strstr(msg, "'z'") && strstr(msg, "from input 'x'"),
          "inconsistent T (4 from x, 3 from z) is rejected: %s", msg);
    ir_graph_free(g);
}

static void test_gather_range(void)
{
    static const char src[] = "model m\n\n# lookup\ny = table[ids]\n";
    Graph *g = ir_graph_new();
    Dim dt[2] = {dim_const(3), dim_const(2)}, di[1] = {dim_const(2)}, dy[2] = {dim_const(2), dim_const(2)};
    static const float table[6] = {0, 1, 2, 3, 4, 5};
    Node *t = ir_node(g, OP_WEIGHT, DT_F32, 2, dt, 0, NULL, NOLOC);
    t->name = "table";
    t->at.data = table;
    Node *ids = input(g, "ids", DT_I32, 1, di);
    Node *in[2] = {t, ids};
    Node *y = ir_node(g, OP_GATHER, DT_F32, 2, dy, 2, in, (SrcLoc){0, 4, 5});
    ir_add_output(g, "y", y);

    int32_t good[2] = {2, 0}, high[2] = {1, 3}, neg[2] = {-1, 0};
    int64_t n = 2;
    HostTensor hi = host(DT_I32, 1, &n, good), out = {0};
    CHECK(run(g, &hi, &out, NULL, 0) == 0 && at(&out, 0) == 4 && at(&out, 1) == 5 && at(&out, 2) == 0,
          "gather in range");
    free(out.data);

    FILE *f = tmpfile();
    Diag *d = diag_new(f);
    int file = diag_add_file(d, "model.kiln", src);
    y->loc = (SrcLoc){file, 4, 5};
    hi = host(DT_I32, 1, &n, high);
    out.data = NULL;
    CHECK(ir_interp(g, &hi, &out, d) != 0 && diag_errors(d) == 1, "gather index 3 of 3 rows fails");
    CHECK(out.data == NULL, "no output after an error");
    hi = host(DT_I32, 1, &n, neg);
    CHECK(ir_interp(g, &hi, &out, d) != 0 && diag_errors(d) == 2, "gather index -1 fails");
    char msg[2048];
    rewind(f);
    size_t len = fread(msg, 1, sizeof msg - 1, f);
    msg[len] = 0;
    fclose(f);
    diag_free(d);
    CHECK(strstr(msg, "model.kiln:4:5: error:") && strstr(msg, "index 3 ") && strstr(msg, "index -1 ") &&
              strstr(msg, "y = table[ids]"),
          "gather errors name the location and the value: %s", msg);
    ir_graph_free(g);
}

static void test_sources(void)
{
    Graph *g = ir_graph_new();
    int T = ir_sym(g, "T", 16);
    Dim dm[2] = {dim_const(3), dim_const(5)}, da[1] = {dim_sym(T)}, dc[2] = {dim_sym(T), dim_add_const(dim_sym(T), 2)};
    Node *x = input(g, "x", DT_F32, 1, da);
    ir_add_output(g, "mask", ir_node(g, OP_CAUSAL_MASK, DT_F32, 2, dm, 0, NULL, NOLOC));
    ir_add_output(g, "ar", ir_node(g, OP_ARANGE, DT_I32, 1, da, 0, NULL, NOLOC));
    ir_add_output(g, "kv", ir_node(g, OP_CAUSAL_MASK, DT_F32, 2, dc, 0, NULL, NOLOC)); /* [T, T+2] */
    ir_add_output(g, "x", x); /* an input straight through */
    float xv[4] = {1.5f, -2, 3, 4};
    int64_t n = 4;
    HostTensor in = host(DT_F32, 1, &n, xv), out[4];
    memset(out, 0, sizeof out);
    CHECK(run(g, &in, out, NULL, 0) == 0, "sources run");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double v = at(&out[0], (size_t)(i * 5 + j)), want = j <= i + 2 ? 0.0 : -INFINITY;
            CHECK(v == want, "causal_mask[3, 5][%d][%d] = %g", i, j, v);
        }
    CHECK(out[1].rank == 1 && out[1].shape[0] == 4 && out[1].dtype == DT_I32, "arange [T] at T = 4");
    for (int i = 0; i < 4; i++)
        CHECK(((int32_t *)out[1].data)[i] == i, "arange[%d]", i);
    CHECK(out[2].shape[0] == 4 && out[2].shape[1] == 6, "causal_mask [T, T+2]");
    CHECK(at(&out[2], 0 * 6 + 2) == 0 && isinf(at(&out[2], 0 * 6 + 3)) && at(&out[2], 3 * 6 + 5) == 0,
          "causal_mask [T, T+2] values");
    CHECK(at(&out[3], 0) == 1.5 && at(&out[3], 1) == -2, "input as output");
    for (int i = 0; i < 4; i++)
        free(out[i].data);
    ir_graph_free(g);
}

/* Each node rounds to its dtype: f16, bf16 and integer casts against values worked out by hand. */
static void test_rounding(void)
{
    enum { N = 10 };
    static const float x[N] = {1.0009765625f,  /* 1 + 2^-10: exact in f16 */
                               1.00048828125f, /* 1 + 2^-11: a tie, f16 rounds to even (1), bf16 too */
                               1.00146484375f, /* 1 + 3*2^-11: a tie, f16 rounds up to 1 + 2^-9 */
                               65504.0f,       /* the largest f16 */
                               65520.0f,       /* rounds to f16 infinity; bf16 65536 */
                               1e-8f,          /* below half the smallest f16 subnormal: 0 */
                               3e-8f,          /* f16 subnormal 2^-24 */
                               3.14159265f,    /* f16 3.140625; bf16 3.140625 */
                               1.01171875f,    /* 1 + 3*2^-8: bf16 tie, rounds up to 1 + 2^-6 */
                               -200.7f};       /* f16 -200.75; bf16 -201 */
    static const double want_f16[N] = {1.0009765625, 1.0, 1.001953125, 65504, INFINITY, 0,
                                       5.9604644775390625e-08, 3.140625, 1.01171875, -200.75};
    static const double want_bf16[N] = {1.0, 1.0, 1.0, 65536, 65536, 1.0011717677116394e-08,
                                        3.003515303134918e-08, 3.140625, 1.015625, -201};
    static const double want_i8[N] = {1, 1, 1, -32, -16, 0, 0, 3, 1, 56}; /* truncate, then wrap */
    Graph *g = ir_graph_new();
    Dim dn[1] = {dim_const(N)};
    Node *in = input(g, "x", DT_F32, 1, dn);
    DType via[3] = {DT_F16, DT_BF16, DT_I8};
    for (int k = 0; k < 3; k++)
        ir_add_output(g, "r", node1(g, OP_CAST, DT_F32, 1, dn, node1(g, OP_CAST, via[k], 1, dn, in)));
    int64_t n = N;
    HostTensor hi = host(DT_F32, 1, &n, (void *)x), out[3];
    CHECK(run(g, &hi, out, NULL, 0) == 0, "casts run");
    for (int i = 0; i < N; i++) {
        CHECK(at(&out[0], (size_t)i) == want_f16[i], "f16 round trip of %.9g: %.17g", x[i], at(&out[0], (size_t)i));
        CHECK(at(&out[1], (size_t)i) == want_bf16[i], "bf16 round trip of %.9g: %.17g", x[i], at(&out[1], (size_t)i));
        CHECK(at(&out[2], (size_t)i) == want_i8[i], "i8 round trip of %.9g: %.17g", x[i], at(&out[2], (size_t)i));
    }
    for (int k = 0; k < 3; k++)
        free(out[k].data);
    ir_graph_free(g);

    /* Every dtype of kiln_dtype.h through the interpreter: f32 -> t -> f32, against what C's own
     * conversions give (integers truncate toward zero and wrap, bool is x != 0, f64 is exact). */
    for (int t = 0; t < DT_COUNT; t++) {
        if (t == DT_F16 || t == DT_BF16) /* checked bit for bit above */
            continue;
        g = ir_graph_new();
        in = input(g, "x", DT_F32, 1, dn);
        ir_add_output(g, "r", node1(g, OP_CAST, DT_F32, 1, dn, node1(g, OP_CAST, (DType)t, 1, dn, in)));
        HostTensor o1;
        CHECK(run(g, &hi, &o1, NULL, 0) == 0, "cast through %s runs", dtype_traits[t].name);
        for (int i = 0; i < N; i++) {
            double want;
            long long tr = (long long)x[i];
            switch (t) {
            case DT_F32: case DT_F64: want = x[i]; break;
            case DT_I64: want = (double)tr; break;
            case DT_I32: want = (double)(int32_t)(uint32_t)tr; break;
            case DT_I8: want = (double)(int8_t)(uint8_t)tr; break;
            case DT_U8: want = (double)(uint8_t)tr; break;
            case DT_I16: want = (double)(int16_t)(uint16_t)tr; break;
            case DT_U16: want = (double)(uint16_t)tr; break;
            case DT_U32: want = (double)(float)(uint32_t)tr; break; /* back to f32: rounded */
            case DT_U64: want = (double)(float)(uint64_t)tr; break; /* -200 wraps to 2^64 - 200 */
            case DT_BOOL: want = x[i] != 0; break;
            case DT_I4: want = (double)((int)((tr & 15) ^ 8) - 8); break; /* the interpreter wraps them too */
            case DT_U4: want = (double)(tr & 15); break;
            default: want = NAN; CHECK(0, "dtype %s has no expectation here: add one", dtype_traits[t].name);
            }
            CHECK(at(&o1, (size_t)i) == want, "%s round trip of %.9g: %.17g, want %.17g", dtype_traits[t].name,
                  x[i], at(&o1, (size_t)i), want);
        }
        free(o1.data);
        ir_graph_free(g);
    }

    /* f16: (2048 + 1) rounds to 2048 at the add, so (a + b) - a is 0, not 1 */
    g = ir_graph_new();
    Dim d1[1] = {dim_const(1)};
    Node *a = input(g, "a", DT_F16, 1, d1), *b = input(g, "b", DT_F16, 1, d1);
    Node *s = node2(g, OP_ADD, DT_F16, 1, d1, a, b);
    ir_add_output(g, "r", node2(g, OP_SUB, DT_F16, 1, d1, s, a));
    uint16_t ha = 0x6800 /* 2048 */, hb = 0x3c00 /* 1 */;
    int64_t one = 1;
    HostTensor h2[2] = {host(DT_F16, 1, &one, &ha), host(DT_F16, 1, &one, &hb)}, o = {0};
    CHECK(run(g, h2, &o, NULL, 0) == 0 && o.dtype == DT_F16 && at(&o, 0) == 0, "f16 rounds at every node");
    free(o.data);
    ir_graph_free(g);

    /* i32: division truncates toward zero, by zero gives 0; overflow wraps */
    g = ir_graph_new();
    Dim d6[1] = {dim_const(6)};
    Node *p = input(g, "p", DT_I32, 1, d6), *q = input(g, "q", DT_I32, 1, d6);
    ir_add_output(g, "div", node2(g, OP_DIV, DT_I32, 1, d6, p, q));
    ir_add_output(g, "mul", node2(g, OP_MUL, DT_I32, 1, d6, p, q));
    int32_t pv[6] = {7, -7, 5, -9, INT32_MIN, 0}, qv[6] = {2, 2, 0, -4, -1, 0};
    int64_t six = 6;
    HostTensor h3[2] = {host(DT_I32, 1, &six, pv), host(DT_I32, 1, &six, qv)}, o3[2];
    CHECK(run(g, h3, o3, NULL, 0) == 0, "integer ops run");
    static const int32_t want_div[6] = {3, -3, 0, 2, INT32_MIN, 0}; /* INT32_MIN / -1 wraps */
    static const int32_t want_mul[6] = {14, -14, 0, 36, INT32_MIN, 0};
    for (int i = 0; i < 6; i++) {
        CHECK(((int32_t *)o3[0].data)[i] == want_div[i], "%d / %d = %d", pv[i], qv[i], ((int32_t *)o3[0].data)[i]);
        CHECK(((int32_t *)o3[1].data)[i] == want_mul[i], "%d * %d = %d", pv[i], qv[i], ((int32_t *)o3[1].data)[i]);
    }
    free(o3[0].data);
    free(o3[1].data);
    ir_graph_free(g);
}

/* Weights and constants read by several nodes (they are converted again for each reader), a node
 * that is an output twice, a node nobody reads, and a chain whose intermediates are freed early
 * (AddressSanitizer catches a use after free or a leak). */
static void test_lifetimes(void)
{
    Graph *g = ir_graph_new();
    Dim d3[1] = {dim_const(3)};
    static const float wv[3] = {1, 2, 3};
    static const int64_t cv[3] = {10, 20, 30};
    Node *w = ir_node(g, OP_WEIGHT, DT_F32, 1, d3, 0, NULL, NOLOC);
    w->at.data = wv;
    Node *c = ir_node(g, OP_CONST, DT_I64, 1, d3, 0, NULL, NOLOC);
    c->at.data = cv;
    Node *x = input(g, "x", DT_F32, 1, d3);
    Node *a = node2(g, OP_MUL, DT_F32, 1, d3, x, w);             /* x*w */
    node1(g, OP_EXP, DT_F32, 1, d3, a);                           /* dead */
    Node *cf = node1(g, OP_CAST, DT_F32, 1, d3, c);
    Node *b = node2(g, OP_ADD, DT_F32, 1, d3, a, w);              /* x*w + w */
    Node *e = node2(g, OP_ADD, DT_F32, 1, d3, b, cf);             /* + c */
    Node *f = node2(g, OP_MUL, DT_F32, 1, d3, e, e);              /* squared */
    ir_add_output(g, "f", f);
    ir_add_output(g, "f2", f);
    ir_add_output(g, "w", w);
    float xv[3] = {1, -1, 2};
    int64_t n = 3;
    HostTensor hi = host(DT_F32, 1, &n, xv), out[3];
    CHECK(run(g, &hi, out, NULL, 0) == 0, "lifetimes graph runs");
    for (int i = 0; i < 3; i++) {
        double v = xv[i] * wv[i] + wv[i] + (double)cv[i];
        CHECK(at(&out[0], (size_t)i) == v * v && at(&out[1], (size_t)i) == v * v, "f[%d]", i);
        CHECK(at(&out[2], (size_t)i) == wv[i], "w[%d]", i);
    }
    CHECK(out[0].data != out[1].data, "each output has its own buffer");
    for (int i = 0; i < 3; i++)
        free(out[i].data);
    ir_graph_free(g);
}

/* A graph the verifier would reject is reported, not run out of bounds; so is a symbol no input
 * determines. */
static void test_bad_graph(void)
{
    Graph *g = ir_graph_new();
    int S = ir_sym(g, "S", 4);
    Dim d3[1] = {dim_const(3)}, d4[1] = {dim_const(4)}, dS[1] = {dim_sym(S)};
    Node *a = input(g, "a", DT_F32, 1, d3), *b = input(g, "b", DT_F32, 1, d4);
    ir_add_output(g, "y", node2(g, OP_ADD, DT_F32, 1, d4, a, b));
    float v[4] = {1, 2, 3, 4};
    int64_t n3 = 3, n4 = 4;
    HostTensor in[2] = {host(DT_F32, 1, &n3, v), host(DT_F32, 1, &n4, v)}, out = {0};
    char msg[2048];
    CHECK(run(g, in, &out, msg, sizeof msg) != 0 && strstr(msg, "does not broadcast"),
          "[3] + [4] is reported: %s", msg);
    ir_add_output(g, "r", ir_node(g, OP_ARANGE, DT_I32, 1, dS, 0, NULL, NOLOC));
    CHECK(run(g, in, &out, msg, sizeof msg) != 0 && strstr(msg, "'S'"), "unbound S is reported: %s", msg);
    ir_graph_free(g);
}

int main(void)
{
    test_pytorch_cases();
    test_symbols();
    test_gather_range();
    test_sources();
    test_rounding();
    test_lifetimes();
    test_bad_graph();
    if (failures) {
        fprintf(stderr, "test_interp: %d failures\n", failures);
        return 1;
    }
    printf("test_interp: ok\n");
    return 0;
}
