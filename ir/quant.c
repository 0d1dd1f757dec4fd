/* quant.c: the arithmetic of quantization, which the interpreter, the code generator and
 * choose-quant share, and the verifier's and interpreter's rules for quantize, dequantize and qmatmul.
 *
 * Definitions (every kernel must compute exactly these; the arithmetic is IEEE float32, in the
 * order written, so a vector kernel reproduces it bit for bit):
 *   quantize(x, s, z)   = z                                   when s == 0 or x / s is NaN
 *                         clamp(rint(x / s) + z, lo, hi)      otherwise
 *     rint rounds half to even; lo..hi is the range of the node's dtype (i8 -128..127, u8 0..255,
 *     i4 -8..7, u4 0..15); x / s is one float division (no reciprocal), so +-inf saturates.
 *   dequantize(q, s, z) = (float)(q - z) * s
 *   The scale (and zero point, of the quantized dtype) broadcasts against x NumPy-style with one
 *   rank-equal shape, except along at.axis when at.group = G > 0: there the scale has ceil(D / G)
 *   entries and element k reads entry k / G (the last group may be short: D need not be a
 *   multiple of G). So per tensor is a scale of shape [1, 1], per output channel [1, N], per group
 *   of G along K of a [K, N] weight [ceil(K / G), N] with axis 0.
 *   qmatmul(a[..., M, K] f32, w[K, N] i8/u8/i4/u4, s[ceil(K / G) or 1, N], z?) -> f32[..., M, N]:
 *     weight-only (dynamic = 0): a @ dequantize(w, s, z) with groups of G along K (G = 0: one
 *     scale per column); the sum is the only place a kernel may differ (its order, as for matmul,
 *     and whether the scale multiplies each weight or a group's sum of a * (q - z): the same
 *     value but for rounding; every dequantised weight a kernel uses is (q - z) * s exactly).
 *     dynamic = 1 (W8A8; w i8, G = 0, no zero point): each row of a is quantized to i8 at run time
 *     with amax = the largest |a[m, k]| (NaN ignored, as maxnum), sa = amax / 127,
 *     qa = quantize(a, sa, 0) clamped to -127..127; then acc = sum_k qa * w as an exact integer and
 *     y = ((float)acc * sa) * s[n]. Every step is exact or one IEEE rounding, so the kernels
 *     (VNNI and portable) give the interpreter's bits.
 *     static (ascale = S > 0, dynamic = 0; W8A8 with the same operands): as dynamic, but every row's
 *     sa is (float)S, fixed at compile time (choose-quant's int8s: from the calibration runs'
 *     ranges), so a value beyond 127 * sa saturates to +-127; no pass over the row for its maximum.
 *   qmatmul(a[..., M, K] f32, w[K, N] bf16) -> f32[..., M, N] (no scale, no zero point, G = 0, not
 *     dynamic): bf16: y = sum_k bf16(a[m, k]) * w[k, n], bf16() rounding to nearest even (as a cast
 *     to bf16 does). Each product of two bf16 values is exact in f32; the interpreter sums in double,
 *     the kernels in f32 (AVX512-BF16's vdpbf16ps adds two products at a time and flushes bf16
 *     subnormals, below 1.2e-38, to zero), so the sum is where they may differ, as for matmul.
 *
 * Why these choices: symmetric -127..127 for activations keeps u8 = qa + 128 and the AVX2 pair
 * sums in range (the VNNI form subtracts 128 * colsum(w)); one division per element rather than a
 * multiply by a reciprocal because it is the definition users expect (PyTorch's and ONNX's
 * QuantizeLinear divide) and vdivps is cheap next to the GEMM.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ir_quant_range(DType t, int *lo, int *hi)
{
    switch (t) {
    case DT_I8: *lo = -128, *hi = 127; return 1;
    case DT_U8: *lo = 0, *hi = 255; return 1;
    case DT_I4: *lo = -8, *hi = 7; return 1;
    case DT_U4: *lo = 0, *hi = 15; return 1;
    default: return 0;
    }
}

float ir_quantize1(float x, float s, float z, int lo, int hi)
{
    float d = x / s;
    if (s == 0 || isnan(d))
        return z < (float)lo ? (float)lo : z > (float)hi ? (float)hi : z;
    float r = rintf(d) + z;
    return r < (float)lo ? (float)lo : r > (float)hi ? (float)hi : r;
}

float ir_dequantize1(float q, float s, float z)
{
    return (q - z) * s;
}

int ir_qmm_w8a8(const Node *n)
{
    return n->op == OP_QMATMUL && (n->at.dynamic || n->at.ascale != 0);
}

float ir_qmm_static_scale(const Node *n)
{
    return n->op == OP_QMATMUL && !n->at.dynamic ? (float)n->at.ascale : 0.0f;
}

void ir_quant_scales(const float *w, int64_t K, int64_t N, int group, DType t, float *scale, float *zero)
{
    int lo, hi;
    KILN_ASSERT(ir_quant_range(t, &lo, &hi));
    int64_t G = group > 0 ? group : K, ng = group > 0 ? (K + G - 1) / G : 1;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t n = 0; n < N; n++) {
            float mn = 0, mx = 0; /* the range always holds 0, so 0 is exact */
            for (int64_t k = g * G; k < K && k < (g + 1) * G; k++) {
                float v = w[k * N + n];
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
            }
            float s;
            if (lo < 0) { /* symmetric: -hi..hi, the zero point 0 */
                float a = -mn > mx ? -mn : mx;
                s = a / (float)hi;
            } else {
                s = (mx - mn) / (float)hi;
            }
            scale[g * N + n] = isfinite(s) ? s : 0;
            if (zero)
                zero[g * N + n] = lo < 0 || s == 0 ? 0 : ir_quantize1(-mn, s, 0, lo, hi);
        }
}

/* ---------------------------------------------------------------- verifier rules */

static int is_quant(DType t)
{
    int lo, hi;
    return ir_quant_range(t, &lo, &hi);
}

/* The scale's (and zero's) shape against x's: the rule in the header. */
static int params_fit(const Node *x, const Node *s, int axis, int group)
{
    if (s->rank == 0)
        return group == 0;
    if (s->rank != x->rank)
        return 0;
    for (int i = 0; i < x->rank; i++) {
        Dim d = s->shape[i];
        if (group > 0 && i == axis) {
            if (!dim_is_const(x->shape[i]) || !dim_is_const(d) ||
                dim_value(d) != (dim_value(x->shape[i]) + group - 1) / group)
                return 0;
        } else if (!(dim_is_const(d) && dim_value(d) == 1) && !dim_eq(d, x->shape[i])) {
            return 0;
        }
    }
    return 1;
}

static const char *tstr(const Graph *g, const Node *n, char *buf, size_t len)
{
    return node_type_str(g, n, buf, len);
}

int ir_quant_infer(const Graph *g, Op op, const Attrs *at, int nin, Node *const *in, IrType *t, char *msg,
                   size_t len)
{
    char t0[256], t1[256];
    msg[0] = 0;
    if (op == OP_QUANTIZE || op == OP_DEQUANTIZE) {
        const Node *x = in[0], *s = in[1], *z = nin > 2 ? in[2] : NULL;
        if (op == OP_DEQUANTIZE)
            t->dtype = DT_F32;
        DType qt = op == OP_QUANTIZE ? t->dtype : x->dtype;
        DType ft = op == OP_QUANTIZE ? x->dtype : t->dtype;
        if (!is_quant(qt))
            return snprintf(msg, len, "%s: the quantized dtype is %s, not i8, u8, i4 or u4", op_info[op].name,
                            dtype_traits[qt].name), 0;
        if (ft != DT_F32)
            return snprintf(msg, len, "%s: the input is %s, not f32", op_info[op].name, dtype_traits[ft].name), 0;
        if (at->group < 0 || (at->group > 0 && (at->axis < 0 || at->axis >= x->rank)))
            return snprintf(msg, len, "%s: group %d along axis %d does not fit rank %d", op_info[op].name, at->group,
                            at->axis, x->rank), 0;
        if (s->dtype != DT_F32 || !params_fit(x, s, at->axis, at->group))
            return snprintf(msg, len, "%s: scale %s does not fit %s (group %d along axis %d)", op_info[op].name,
                            tstr(g, s, t0, sizeof t0), tstr(g, x, t1, sizeof t1), at->group, at->axis), 0;
        if (z && (z->dtype != qt || !ir_same_shape(z, s)))
            return snprintf(msg, len, "%s: zero point %s must have the scale's shape and dtype %s", op_info[op].name,
                            tstr(g, z, t0, sizeof t0), dtype_traits[qt].name), 0;
        t->rank = x->rank;
        memcpy(t->shape, x->shape, sizeof(Dim) * (size_t)x->rank);
        return 1;
    }
    KILN_ASSERT(op == OP_QMATMUL);
    const Node *a = in[0], *w = in[1], *s = nin > 2 ? in[2] : NULL, *z = nin > 3 ? in[3] : NULL;
    if (a->dtype != DT_F32 || a->rank < 2)
        return snprintf(msg, len, "qmatmul: a is %s, not f32 of rank >= 2", tstr(g, a, t0, sizeof t0)), 0;
    if ((!is_quant(w->dtype) && w->dtype != DT_BF16) || w->rank != 2 || !dim_is_const(w->shape[0]) ||
        !dim_is_const(w->shape[1]))
        return snprintf(msg, len, "qmatmul: w is %s, not a static [K, N] of i8, u8, i4, u4 or bf16",
                        tstr(g, w, t0, sizeof t0)), 0;
    if (w->dtype == DT_BF16 && (s || at->group || at->dynamic))
        return snprintf(msg, len, "qmatmul: bf16 weights take no scale, zero point or group and are not dynamic"), 0;
    if (!s && w->dtype != DT_BF16)
        return snprintf(msg, len, "qmatmul: %s weights need a scale", dtype_traits[w->dtype].name), 0;
    int64_t K = dim_value(w->shape[0]), N = dim_value(w->shape[1]), G = at->group;
    if (!dim_eq(a->shape[a->rank - 1], w->shape[0]))
        return snprintf(msg, len, "qmatmul: a %s and w %s differ in K", tstr(g, a, t0, sizeof t0),
                        tstr(g, w, t1, sizeof t1)), 0;
    if (G < 0)
        return snprintf(msg, len, "qmatmul: group %d is negative", at->group), 0;
    int64_t ng = G > 0 ? (K + G - 1) / G : 1;
    if (s && (s->dtype != DT_F32 || s->rank != 2 || !dim_is_const(s->shape[0]) || dim_value(s->shape[0]) != ng ||
        !dim_eq(s->shape[1], w->shape[1])))
        return snprintf(msg, len, "qmatmul: scale %s is not f32[%lld, %lld] (group %d)", tstr(g, s, t0, sizeof t0),
                        (long long)ng, (long long)N, at->group), 0;
    if (z && (z->dtype != w->dtype || !ir_same_shape(z, s)))
        return snprintf(msg, len, "qmatmul: zero point %s must have the scale's shape and dtype %s",
                        tstr(g, z, t0, sizeof t0), dtype_traits[w->dtype].name), 0;
    if (at->dynamic && (w->dtype != DT_I8 || G != 0 || z))
        return snprintf(msg, len, "qmatmul: dynamic (W8A8) needs i8 weights, one scale per column and no zero point"), 0;
    if (at->ascale != 0) {
        float sa = (float)at->ascale;
        if (!(sa > 0) || isinf(sa))
            return snprintf(msg, len, "qmatmul: ascale %g is not a positive f32 (a static activation scale)", at->ascale), 0;
        if (at->dynamic)
            return snprintf(msg, len, "qmatmul: dynamic and a static ascale exclude each other"), 0;
        if (w->dtype != DT_I8 || G != 0 || z)
            return snprintf(msg, len, "qmatmul: static (ascale, W8A8) needs i8 weights, one scale per column and no "
                            "zero point"), 0;
    }
    t->dtype = DT_F32;
    t->rank = a->rank;
    memcpy(t->shape, a->shape, sizeof(Dim) * (size_t)a->rank);
    t->shape[a->rank - 1] = w->shape[1];
    return 1;
}

/* Packed 4-bit values are read and written two to a byte, which only the quantization kernels do:
 * anything else (an elementwise loop split over threads, a slice view) would write half a byte. */
int ir_quant_packed_ok(Op op, int nin, Node *const *in, DType out, char *msg, size_t len)
{
    if (dtype_traits[out].block > 1 && !(op_info[op].flags & F_SOURCE) && op != OP_QUANTIZE && op != OP_RESHAPE)
        return snprintf(msg, len, "%s values are made by const, weight, quantize and reshape only, not %s",
                        dtype_traits[out].name, op_info[op].name), 0;
    for (int j = 0; j < nin; j++)
        if (in[j] && dtype_traits[in[j]->dtype].block > 1 && op != OP_DEQUANTIZE && op != OP_QMATMUL &&
            op != OP_RESHAPE && !(op == OP_QUANTIZE && j == 2))
            return snprintf(msg, len, "input %d is %s, which only dequantize, qmatmul and reshape read", j,
                            dtype_traits[in[j]->dtype].name), 0;
    return 1;
}

/* ---------------------------------------------------------------- the interpreter's rules */

/* Offset of the scale entry for element e of x (shape xs, rank r): the rule in the header. */
static int64_t param_index(int r, const int64_t *xs, int sr, const int64_t *ss, int axis, int group,
                           const int64_t *idx)
{
    if (sr == 0)
        return 0;
    int64_t off = 0;
    for (int i = 0; i < r; i++) {
        int64_t k = ss[i] == 1 ? 0 : group > 0 && i == axis ? idx[i] / group : idx[i];
        (void)xs;
        off = off * ss[i] + k;
    }
    return off;
}

static int quant_elementwise(const Node *n, const int64_t *const *shape, const double *const *in, double *y)
{
    const Node *x = n->in[0], *s = n->in[1];
    int r = x->rank, lo = 0, hi = 0;
    DType qt = n->op == OP_QUANTIZE ? n->dtype : x->dtype;
    KILN_ASSERT(ir_quant_range(qt, &lo, &hi));
    const int64_t *xs = shape[1], *ss = shape[2];
    int64_t numel = 1, idx[IR_MAX_RANK] = {0};
    for (int i = 0; i < r; i++)
        numel *= xs[i];
    for (int64_t e = 0; e < numel; e++) {
        int64_t p = param_index(r, xs, s->rank, ss, n->at.axis, n->at.group, idx);
        float sc = (float)in[1][p], z = n->nin > 2 ? (float)in[2][p] : 0.0f;
        y[e] = n->op == OP_QUANTIZE ? ir_quantize1((float)in[0][e], sc, z, lo, hi)
                                    : ir_dequantize1((float)in[0][e], sc, z);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < xs[i])
                break;
            idx[i] = 0;
        }
    }
    return 0;
}

/* bf16: y = sum_k bf16(a) * w, each product exact, summed in double and rounded once. */
static void bf16_matmul(const double *A, const double *W, int64_t rows, int64_t K, int64_t N, double *y)
{
    for (int64_t m = 0; m < rows; m++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += dtype_round(DT_BF16, A[m * K + k]) * W[k * N + j];
            y[m * N + j] = acc;
        }
}

static int quant_matmul(const Node *n, const int64_t *const *shape, const double *const *in, double *y)
{
    const Node *a = n->in[0];
    const int64_t *as = shape[1], *ws = shape[2];
    int64_t K = ws[0], N = ws[1], M = as[a->rank - 2], rows = 1, G = n->at.group > 0 ? n->at.group : K;
    for (int i = 0; i < a->rank - 1; i++)
        rows *= as[i];
    const double *A = in[0], *W = in[1], *S = in[2], *Z = n->nin > 3 ? in[3] : NULL;
    (void)M;
    if (n->in[1]->dtype == DT_BF16) {
        bf16_matmul(A, W, rows, K, N, y);
        return 0;
    }
    if (ir_qmm_w8a8(n)) {
        int *qa = malloc(sizeof(int) * (size_t)(K ? K : 1));
        if (!qa)
            return -1;
        for (int64_t m = 0; m < rows; m++) {
            const double *ar = A + m * K;
            float sa = ir_qmm_static_scale(n);
            if (n->at.dynamic) {
                float amax = 0;
                for (int64_t k = 0; k < K; k++)
                    amax = fmaxf(amax, fabsf((float)ar[k]));
                sa = amax / 127.0f;
            }
            for (int64_t k = 0; k < K; k++)
                qa[k] = (int)ir_quantize1((float)ar[k], sa, 0, -127, 127);
            for (int64_t j = 0; j < N; j++) {
                int64_t acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (int64_t)qa[k] * (int64_t)W[k * N + j];
                y[m * N + j] = ((float)acc * sa) * (float)S[j];
            }
        }
        free(qa);
        return 0;
    }
    double *wd = malloc(sizeof(double) * (size_t)(K * N > 0 ? K * N : 1));
    if (!wd)
        return -1;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            int64_t p = k / G * N + j;
            wd[k * N + j] = ir_dequantize1((float)W[k * N + j], (float)S[p], Z ? (float)Z[p] : 0.0f);
        }
    for (int64_t m = 0; m < rows; m++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += A[m * K + k] * wd[k * N + j];
            y[m * N + j] = acc;
        }
    free(wd);
    return 0;
}

/* The concrete shapes against the rules (the verifier checked the symbolic ones), so that a wrong
 * graph cannot make the interpreter read out of bounds. */
static int shapes_ok(const Node *n, const int64_t *const *shape, char *err, size_t len)
{
    if (n->op == OP_QMATMUL) {
        const Node *a = n->in[0];
        int r = a->rank;
        const int64_t *as = shape[1], *ws = shape[2], *ss = shape[3];
        int64_t K = ws[0], N = ws[1], G = n->at.group, ng = G > 0 ? (K + G - 1) / G : 1;
        int bf16 = n->in[1]->dtype == DT_BF16;
        int ok = (bf16 ? n->nin == 2 : n->nin >= 3) && r >= 2 && n->rank == r && n->in[1]->rank == 2 &&
                 (bf16 || (n->in[2]->rank == 2 && ss[0] == ng && ss[1] == N)) && as[r - 1] == K &&
                 shape[0][r - 1] == N;
        for (int i = 0; ok && i < r - 1; i++)
            ok = shape[0][i] == as[i];
        if (ok && n->nin > 3)
            ok = n->in[3]->rank == 2 && shape[4][0] == ng && shape[4][1] == N;
        if (!ok)
            snprintf(err, len, "qmatmul: the operands' sizes do not fit (K %lld, N %lld, group %d)", (long long)K,
                     (long long)N, n->at.group);
        return ok;
    }
    const Node *x = n->in[0], *s = n->in[1];
    int r = x->rank, ok = n->rank == r && (s->rank == 0 || s->rank == r);
    for (int i = 0; ok && i < r; i++)
        ok = shape[0][i] == shape[1][i];
    for (int i = 0; ok && s->rank && i < r; i++) {
        int64_t d = shape[2][i], G = n->at.group;
        ok = d == 1 || d == shape[1][i] || (G > 0 && i == n->at.axis && d == (shape[1][i] + G - 1) / G);
    }
    for (int i = 0; ok && n->nin > 2 && i < s->rank; i++)
        ok = n->in[2]->rank == s->rank && shape[3][i] == shape[2][i];
    if (!ok)
        snprintf(err, len, "%s: the scale's sizes do not fit the input's", op_info[n->op].name);
    return ok;
}

int ir_quant_eval(const Node *n, const int64_t *const *shape, const double *const *in, double *y, char *err,
                  size_t len)
{
    if (!shapes_ok(n, shape, err, len))
        return -1;
    snprintf(err, len, "%s: out of memory", op_info[n->op].name);
    switch (n->op) {
    case OP_QUANTIZE:
    case OP_DEQUANTIZE: return quant_elementwise(n, shape, in, y);
    case OP_QMATMUL: return quant_matmul(n, shape, in, y);
    default: UNREACHABLE();
    }
}
