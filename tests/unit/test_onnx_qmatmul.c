/* test_onnx_qmatmul.c: ONNX Runtime's dynamically quantized MatMuls imported as kiln's W8A8 qmatmul
 * (frontend/onnx_quant.c), on ONNX files this test writes itself (protobuf-c).
 *
 * The graph is what onnxruntime.quantization.quantize_dynamic writes for two MatMuls of one input
 * x f32[2, 5, 40]: one DynamicQuantizeLinear, then for each weight MatMulInteger, Cast to float, Mul of
 * the two scales and Mul of the product by them:
 *   y1: W1 i8 [40, 24] with zero points of 0 per column and a scale per column;
 *   y2: W2 u8 [40, 16] with one zero point 128 and one scale, every Mul's operands swapped;
 *   y3 (second file only): W3 u8 with zero point 0 and values up to 255, which do not fit i8;
 * and a third file as the first with x a vector f32[40] (ViT-B/16's head on the [CLS] token: MatMul's
 * [K] @ [K, N] -> [N]).
 * Checked:
 *   - y1 and y2 become `qmatmul(..., dynamic=true)` and the nodes only they read are not written (no
 *     DynamicQuantizeLinear in the first file's text); in the second file y3 is written op by op as
 *     before, and so is the DynamicQuantizeLinear it shares;
 *   - the graph holds dynamic qmatmul nodes, and the compiled code (the whole pass pipeline, LLVM's
 *     JIT) gives the interpreter's bits;
 *   - each output is within the quantization error of ONNX's own semantics, computed here: ONNX
 *     quantizes x per tensor to u8 (step s_x; an activation is off by at most one step, the largest
 *     when the rounded zero point pushes it to the clamp), kiln per row to i8 (step s_r, off by at
 *     most half), so with the dequantized weights w, |y_kiln - y_onnx| <= (s_x + s_r / 2) *
 *     sum_k |w[k, j]| (plus 1e-5 relative for float rounding); and y3 equals ONNX's semantics to
 *     1e-5 relative (it is computed exactly).
 */
#include "check.h"
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "onnx.pb-c.h"
#include "onnx_pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { B = 2, M = 5, K = 40, N1 = 24, N2 = 16, N3 = 8 };

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double unif(void) /* [-1, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}

/* The weights, scales and zero points, as the file holds them. */
static int8_t w1[K * N1], z1[N1];
static uint8_t w2[K * N2], z2 = 128, w3[K * N3], z3 = 0;
static float s1[N1], s2 = 0.0123f, s3 = 0.004f;
static int rows = B * M; /* rows of x: B * M, or 1 when x is a vector */

static Onnx__TensorProto *tensor(const char *name, int type, int rank, const int64_t *dims, const void *data,
                                 size_t bytes)
{
    Onnx__TensorProto *t = calloc(1, sizeof *t);
    REQUIRE(t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name, t->has_data_type = 1, t->data_type = type;
    t->n_dims = (size_t)rank, t->dims = (int64_t *)dims;
    t->has_raw_data = 1, t->raw_data.len = bytes, t->raw_data.data = (uint8_t *)data;
    return t;
}

static Onnx__NodeProto *node(const char *name, const char *op, int nin, char **in, int nout, char **out)
{
    Onnx__NodeProto *n = calloc(1, sizeof *n);
    REQUIRE(n);
    onnx__node_proto__init(n);
    n->name = (char *)name, n->op_type = (char *)op;
    n->n_input = (size_t)nin, n->input = in, n->n_output = (size_t)nout, n->output = out;
    return n;
}

static Onnx__ValueInfoProto *value(const char *name, int rank, const int64_t *dims)
{
    Onnx__ValueInfoProto *v = calloc(1, sizeof *v);
    Onnx__TypeProto *ty = calloc(1, sizeof *ty);
    Onnx__TypeProto__Tensor *tt = calloc(1, sizeof *tt);
    Onnx__TensorShapeProto *sh = calloc(1, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dp = calloc((size_t)rank, sizeof *dp);
    REQUIRE(v && ty && tt && sh && dp);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(ty);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < rank; i++) {
        dp[i] = calloc(1, sizeof *dp[i]);
        REQUIRE(dp[i]);
        onnx__tensor_shape_proto__dimension__init(dp[i]);
        dp[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dp[i]->dim_value = dims[i];
    }
    sh->n_dim = (size_t)rank, sh->dim = dp;
    tt->has_elem_type = 1, tt->elem_type = 1, tt->shape = sh;
    ty->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, ty->tensor_type = tt;
    v->name = (char *)name, v->type = ty;
    return v;
}

static void value_free(Onnx__ValueInfoProto *v)
{
    Onnx__TensorShapeProto *sh = v->type->tensor_type->shape;
    for (size_t i = 0; i < sh->n_dim; i++)
        free(sh->dim[i]);
    free(sh->dim);
    free(sh);
    free(v->type->tensor_type);
    free(v->type);
    free(v);
}

/* The file's bytes (malloc'ed): y1, y2, and with fallback y3 instead of y2. */
static uint8_t *make_model(int fallback, int vec, size_t *len)
{
    static const int64_t xd[3] = {B, M, K}, y1d[3] = {B, M, N1}, y2d[3] = {B, M, N2}, y3d[3] = {B, M, N3};
    int r = vec ? 1 : 3, o = vec ? 2 : 0; /* a vector x: the last dimension alone */
    static const int64_t w1d[2] = {K, N1}, w2d[2] = {K, N2}, w3d[2] = {K, N3}, n1d[1] = {N1};
    Onnx__TensorProto *inits[6] = {
        tensor("W1", 3 /* INT8 */, 2, w1d, w1, sizeof w1), tensor("W1_zp", 3, 1, n1d, z1, sizeof z1),
        tensor("W1_scale", 1, 1, n1d, s1, sizeof s1),
        fallback ? tensor("W3", 2 /* UINT8 */, 2, w3d, w3, sizeof w3) : tensor("W2", 2, 2, w2d, w2, sizeof w2),
        fallback ? tensor("W3_zp", 2, 0, NULL, &z3, 1) : tensor("W2_zp", 2, 0, NULL, &z2, 1),
        fallback ? tensor("W3_scale", 1, 0, NULL, &s3, 4) : tensor("W2_scale", 1, 0, NULL, &s2, 4)};
    static char *dq_in[] = {"x"}, *dq_out[] = {"xq", "xs", "xz"};
    static char *q1_in[] = {"xq", "W1", "xz", "W1_zp"}, *q1_out[] = {"a1"}, *c1_in[] = {"a1"}, *c1_out[] = {"f1"};
    static char *s1_in[] = {"xs", "W1_scale"}, *s1_out[] = {"sc1"}, *m1_in[] = {"f1", "sc1"}, *m1_out[] = {"y1"};
    static char *q2_in[] = {"xq", "W2", "xz", "W2_zp"}, *q2_out[] = {"a2"}, *c2_in[] = {"a2"}, *c2_out[] = {"f2"};
    static char *s2_in[] = {"W2_scale", "xs"}, *s2_out[] = {"sc2"}, *m2_in[] = {"sc2", "f2"}, *m2_out[] = {"y2"};
    static char *q3_in[] = {"xq", "W3", "xz", "W3_zp"}, *q3_out[] = {"a3"}, *c3_in[] = {"a3"}, *c3_out[] = {"f3"};
    static char *s3_in[] = {"xs", "W3_scale"}, *s3_out[] = {"sc3"}, *m3_in[] = {"f3", "sc3"}, *m3_out[] = {"y3"};
    Onnx__AttributeProto to = ONNX__ATTRIBUTE_PROTO__INIT;
    to.name = "to", to.has_type = 1, to.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, to.has_i = 1, to.i = 1;
    Onnx__AttributeProto *toa[1] = {&to};
    Onnx__NodeProto *nodes[9] = {
        node("x_quant", "DynamicQuantizeLinear", 1, dq_in, 3, dq_out),
        node("mm1_quant", "MatMulInteger", 4, q1_in, 1, q1_out),
        node("mm1_cast", "Cast", 1, c1_in, 1, c1_out),
        node("mm1_scales", "Mul", 2, s1_in, 1, s1_out),
        node("mm1", "Mul", 2, m1_in, 1, m1_out),
        fallback ? node("mm3_quant", "MatMulInteger", 4, q3_in, 1, q3_out) : node("mm2_quant", "MatMulInteger", 4, q2_in, 1, q2_out),
        fallback ? node("mm3_cast", "Cast", 1, c3_in, 1, c3_out) : node("mm2_cast", "Cast", 1, c2_in, 1, c2_out),
        fallback ? node("mm3_scales", "Mul", 2, s3_in, 1, s3_out) : node("mm2_scales", "Mul", 2, s2_in, 1, s2_out),
        fallback ? node("mm3", "Mul", 2, m3_in, 1, m3_out) : node("mm2", "Mul", 2, m2_in, 1, m2_out)};
    nodes[2]->n_attribute = nodes[6]->n_attribute = 1;
    nodes[2]->attribute = nodes[6]->attribute = toa;
    Onnx__ValueInfoProto *ins[1] = {value("x", r, xd + o)};
    Onnx__ValueInfoProto *outs[2] = {value("y1", r, y1d + o), fallback ? value("y3", r, y3d + o) : value("y2", r, y2d + o)};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "qproj", g.n_node = 9, g.node = nodes, g.n_initializer = 6, g.initializer = inits;
    g.n_input = 1, g.input = ins, g.n_output = 2, g.output = outs;
    uint8_t *buf = onnx_pack(&g, len);
    REQUIRE(buf);
    for (int i = 0; i < 6; i++)
        free(inits[i]);
    for (int i = 0; i < 9; i++)
        free(nodes[i]);
    value_free(ins[0]);
    value_free(outs[0]);
    value_free(outs[1]);
    return buf;
}

/* ONNX's round half to even (the default rounding mode: to nearest, ties to even) */
static double round_even(double v)
{
    return nearbyint(v);
}

/* ONNX's semantics of the pattern, in double: y[B*M, n] for weights w (kiln's i8 form: W - zero point)
 * and scales sc[n]; *sx is ONNX's activation step. */
static void onnx_reference(const float *x, const int *w, const float *sc, int n, double *y, double *sx)
{
    float mx = 0, mn = 0; /* in f32, as ONNX (and the importer's text) computes them */
    for (int i = 0; i < rows * K; i++)
        mx = fmaxf(mx, x[i]), mn = fminf(mn, x[i]);
    float s = (mx - mn) / 255.0f;
    double zp = fmin(fmax(round_even((0.0f - mn) / s), 0), 255);
    *sx = s;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) {
            int64_t acc = 0;
            for (int k = 0; k < K; k++) {
                double q = fmin(fmax(round_even(x[r * K + k] / s) + zp, 0), 255);
                acc += (int64_t)(q - zp) * w[k * n + j];
            }
            y[r * n + j] = (double)(float)acc * (double)(float)(s * sc[j]);
        }
}

/* Checks got (kiln, [B*M, n]) against ONNX's semantics: within the two quantizations' error, or (exact)
 * to 1e-5 relative. */
static void check_output(const float *got, const float *x, const int *w, const float *sc, int n, int exact)
{
    double *want = malloc(sizeof(double) * (size_t)rows * (size_t)n), sx;
    REQUIRE(want);
    onnx_reference(x, w, sc, n, want, &sx);
    for (int r = 0; r < rows; r++) {
        double amax = 0;
        for (int k = 0; k < K; k++)
            amax = fmax(amax, fabs(x[r * K + k]));
        double sr = amax / 127; /* kiln's step for this row */
        for (int j = 0; j < n; j++) {
            double wsum = 0;
            for (int k = 0; k < K; k++)
                wsum += fabs((double)w[k * n + j] * sc[j]);
            /* a full step of ONNX's: its rounded zero point can push the largest value one step up,
             * to the clamp */
            double y = want[r * n + j], tol = exact ? 1e-5 * fabs(y) + 1e-6 : (sx + sr / 2) * wsum + 1e-5 * fabs(y);
            if (fabs(got[r * n + j] - y) > tol) {
                fprintf(stderr, "row %d column %d: kiln %.7g, ONNX %.7g, allowed %.3g\n", r, j, got[r * n + j], y, tol);
                exit(1);
            }
        }
    }
    free(want);
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* Imports, checks the text, runs the graph through the interpreter and compiled; outputs into y. */
static void run(const char *path, int fallback, float *x, float **y)
{
    Diag *d = diag_new(stderr);
    OnnxModel *m = onnx_import(path, "qproj.safetensors", &(OnnxOptions){0}, d);
    REQUIRE(m && diag_errors(d) == 0);
    REQUIRE(count(m->text, "qmatmul(") == (fallback ? 1 : 2));
    REQUIRE(count(m->text, "dynamic=true)") == (fallback ? 1 : 2));
    REQUIRE(count(m->text, "(DynamicQuantizeLinear)") == fallback);
    REQUIRE(count(m->text, "(MatMulInteger)") == fallback);
    REQUIRE(strstr(m->text, "# mm1 (Mul: a MatMul quantized by ONNX Runtime, as one qmatmul)"));
    Graph *ref = onnx_compile_model(m, path, NULL, d), *opt = onnx_compile_model(m, path, NULL, d);
    REQUIRE(ref && opt && diag_errors(d) == 0);
    int nq = 0;
    for (int i = 0; i < ref->nnode; i++)
        nq += ref->nodes[i]->op == OP_QMATMUL && ref->nodes[i]->at.dynamic;
    REQUIRE(nq == (fallback ? 1 : 2));
    PassOptions po = {.d = d};
    REQUIRE(pass_pipeline(opt, "default", NULL, NULL, &po) == 0);
    int rank = rows == 1 ? 1 : 3;
    HostTensor in = {.dtype = DT_F32, .rank = rank, .shape = {B, M, K}, .data = x}, want[2] = {{0}};
    if (rank == 1)
        in.shape[0] = K;
    REQUIRE(ir_interp(ref, &in, want, d) == 0);
    int n[2] = {N1, fallback ? N3 : N2};
    void *inp[1] = {x}, *outp[2];
    for (int k = 0; k < 2; k++) {
        REQUIRE(want[k].rank == rank && want[k].shape[rank - 1] == n[k]);
        y[k] = calloc((size_t)(rows * n[k]), sizeof(float));
        REQUIRE(y[k]);
        outp[k] = y[k];
    }
    int64_t syms[IR_MAX_SYMS] = {0};
    for (int threads = 1; threads <= 2; threads++) {
        Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
        REQUIRE(cg && !cg_build(cg, opt) && !cg_optimise(cg) && !cg_jit_run(cg, syms, inp, outp, threads));
        cg_free(cg);
        for (int k = 0; k < 2; k++) /* qmatmul's kernels give the interpreter's bits */
            REQUIRE(!memcmp(y[k], want[k].data, sizeof(float) * (size_t)(rows * n[k])));
    }
    for (int k = 0; k < 2; k++)
        free(want[k].data);
    Graph *gs[2] = {ref, opt};
    for (int k = 0; k < 2; k++) {
        if (gs[k]->weights)
            st_close(gs[k]->weights);
        ir_graph_free(gs[k]);
    }
    diag_free(d);
    onnx_model_free(m);
}

int main(void)
{
    char dir[64] = "/tmp/kiln_test_onnx_qmm_XXXXXX", path[128];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/qproj.onnx", dir);
    int wi1[K * N1], wi2[K * N2], wi3[K * N3];
    for (int i = 0; i < K * N1; i++)
        wi1[i] = w1[i] = (int8_t)lrint(unif() * 127);
    for (int j = 0; j < N1; j++)
        s1[j] = (float)(0.002 + 0.01 * (unif() + 1));
    for (int i = 0; i < K * N2; i++) {
        w2[i] = (uint8_t)lrint(128 + unif() * 127.4);
        wi2[i] = w2[i] - z2;
    }
    for (int i = 0; i < K * N3; i++)
        wi3[i] = w3[i] = (uint8_t)lrint(127.5 + unif() * 127.5);
    float x[B * M * K];
    for (int i = 0; i < B * M * K; i++) /* rows of different ranges: per-row quantization differs */
        x[i] = (float)(unif() * (1 + i / K));
    float s2v[N2], s3v[N3];
    for (int j = 0; j < N2; j++)
        s2v[j] = s2;
    for (int j = 0; j < N3; j++)
        s3v[j] = s3;

    for (int variant = 0; variant < 3; variant++) { /* 2: the first file with a vector x */
        int fallback = variant == 1;
        rows = variant == 2 ? 1 : B * M;
        size_t len;
        uint8_t *bytes = make_model(fallback, variant == 2, &len);
        FILE *f = fopen(path, "wb");
        REQUIRE(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0);
        free(bytes);
        float *y[2];
        run(path, fallback, x, y);
        check_output(y[0], x, wi1, s1, N1, 0);
        if (fallback)
            check_output(y[1], x, wi3, s3v, N3, 1);
        else
            check_output(y[1], x, wi2, s2v, N2, 0);
        free(y[0]);
        free(y[1]);
    }
    remove(path);
    rmdir(dir);
    printf("test_onnx_qmatmul: ok\n");
    return 0;
}
