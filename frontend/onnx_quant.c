/* onnx_quant.c: ONNX's quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
 * MatMulInteger and QLinearMatMul, written in the model language with ONNX's rounding (half to
 * even) and saturation, per tensor or per axis.
 *
 * onnx_ops.c says how a handler works and holds what the handlers share; the ops' names are in this
 * file's table, ox_quant_ops, at its end.
 */

#include "frontend/onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(v) ox_tensor(I, (v))
#define ERR(...) ox_err(I, __VA_ARGS__)

/* ---------------------------------------------------------------- quantization */

/* Rounds the float expression e (dtype fd) half to even, as ONNX's quantizers do, from what the
 * language has: truncation by a cast to i64, then one step away from zero when the fraction is over
 * one half, or exactly one half and the truncated value odd. Returns the variable of the result. */
static const char *round_even(Imp *I, const char *e, int fd)
{
    const char *q = ox_temp(I, "t_q"), *t = ox_temp(I, "t_trunc"), *aw = ox_temp(I, "t_away"), *r = ox_temp(I, "t_round");
    const char *fn = dtype_traits[fd].name;
    ox_emit(I, "%s = %s\n", q, e);
    ox_emit(I, "%s = cast(cast(%s, i64), %s)\n", t, q, fn);
    ox_emit(I, "%s = where(%s < 0.0, %s - 1.0, %s + 1.0)\n", aw, q, t, t);
    ox_emit(I, "%s = where(abs(%s - %s) > 0.5, %s, where(abs(%s - %s) == 0.5, where(%s - 2.0 * cast(cast(%s * 0.5, i64), %s) != 0.0, %s, %s), %s))\n",
            r, q, t, aw, q, t, t, t, fn, aw, t, t);
    return r;
}

/* a per-axis parameter (1-D, n = dims[axis]) reshaped to ox_broadcast against a tensor of rank r */
static const char *per_axis(Imp *I, OVal *p, const OVal *x, int64_t axis, const char *text)
{
    if (p->rank == 0 || ox_numel(p) == 1)
        return p->rank == 0 ? text : arena_printf(I->a, "%s.reshape([])", text);
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = i == axis ? x->dims[i] : 1;
    return arena_printf(I->a, "%s.reshape(%s)", text, ox_dims_text(I, x->rank, dims, NULL));
}

static int quant_param(Imp *I, OVal *p, const OVal *x, int64_t axis, const char *what)
{
    if (!p)
        return 1;
    if (p->rank > 1 || (p->rank == 1 && ox_numel(p) != 1 && p->dims[0] != x->dims[axis]))
        return ERR("%s '%s' must be a scalar or have one value per element of axis %lld, got %s", what, p->name,
                   (long long)axis, ox_type_str(I, p)), 0;
    return 1;
}

static int op_quantize(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *sc = nin > 1 ? in[1] : NULL, *zp = nin > 2 ? in[2] : NULL;
    if (!x || !sc || !ox_need_dtype(I, x) || !ox_need_dtype(I, sc) || (zp && !ox_need_dtype(I, zp)))
        return ERR("needs x and y_scale");
    int odt = zp ? zp->dt : DT_U8;
    if (odt != DT_U8 && odt != DT_I8)
        return ERR("quantizes to %s; kiln handles uint8 and int8", dtype_traits[odt].name);
    if (x->dt != DT_F32 && x->dt != DT_I32)
        return ERR("x must be float32 or int32, got %s", ox_type_str(I, x));
    int64_t axis = 0; /* read only for per-axis parameters */
    if (ox_numel(sc) > 1 && !ox_norm_axis(I, ox_attr_i(n, "axis", 1), x->rank, &axis))
        return 1;
    if (!quant_param(I, sc, x, axis, "y_scale") || !quant_param(I, zp, x, axis, "y_zero_point"))
        return 1;
    ox_copy_type(out[0], x);
    ox_type(out[0], odt, x->rank, x->dims, x->sym);
    const char *xs = x->dt == DT_F32 ? T(x) : arena_printf(I->a, "cast(%s, f32)", T(x));
    const char *r = round_even(I, arena_printf(I->a, "%s / %s", xs, per_axis(I, sc, x, axis, T(sc))), DT_F32);
    const char *zpt = zp ? arena_printf(I->a, " + cast(%s, f32)", per_axis(I, zp, x, axis, T(zp))) : "";
    int lo = odt == DT_U8 ? 0 : -128, hi = odt == DT_U8 ? 255 : 127;
    ox_assign(I, out[0], "cast(minimum(maximum(%s%s, %d.0), %d.0), %s)", r, zpt, lo, hi, dtype_traits[odt].name);
    return 0;
}

static int op_dequantize(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *sc = nin > 1 ? in[1] : NULL, *zp = nin > 2 ? in[2] : NULL;
    if (!x || !sc || !ox_need_dtype(I, x) || !ox_need_dtype(I, sc) || (zp && !ox_need_dtype(I, zp)))
        return ERR("needs x and x_scale");
    if (x->dt != DT_U8 && x->dt != DT_I8 && x->dt != DT_I32)
        return ERR("x must be uint8, int8 or int32, got %s", ox_type_str(I, x));
    if (sc->dt != DT_F32)
        return ERR("x_scale must be float32");
    int64_t axis = 0; /* read only for per-axis parameters */
    if (ox_numel(sc) > 1 && !ox_norm_axis(I, ox_attr_i(n, "axis", 1), x->rank, &axis))
        return 1;
    if (!quant_param(I, sc, x, axis, "x_scale") || !quant_param(I, zp, x, axis, "x_zero_point"))
        return 1;
    ox_type(out[0], DT_F32, x->rank, x->dims, x->sym);
    const char *zpt = zp ? arena_printf(I->a, " - cast(%s, f32)", per_axis(I, zp, x, axis, T(zp))) : "";
    ox_assign(I, out[0], "(cast(%s, f32)%s) * %s", T(x), zpt, per_axis(I, sc, x, axis, T(sc)));
    return 0;
}

static int op_dynamic_quantize(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x) || x->dt != DT_F32)
        return ERR("x must be float32");
    if (!ox_need_static(I, x, "DynamicQuantizeLinear"))
        return 1;
    const char *xt = T(x);
    const char *mx = ox_temp(I, "t_max"), *mn = ox_temp(I, "t_min"), *sc = ox_temp(I, "t_scale");
    /* the range always includes 0, so that 0 is exact */
    ox_emit(I, "%s = maximum(max(%s), 0.0)\n%s = minimum(min(%s), 0.0)\n", mx, xt, mn, xt);
    ox_emit(I, "%s = (%s - %s) / 255.0\n", sc, mx, mn);
    const char *zr = round_even(I, arena_printf(I->a, "(0.0 - %s) / %s", mn, sc), DT_F32);
    const char *zp = ox_temp(I, "t_zp");
    ox_emit(I, "%s = minimum(maximum(%s, 0.0), 255.0)\n", zp, zr);
    const char *yr = round_even(I, arena_printf(I->a, "%s / %s", xt, sc), DT_F32);
    ox_type(out[0], DT_U8, x->rank, x->dims, x->sym);
    ox_assign(I, out[0], "cast(minimum(maximum(%s + %s, 0.0), 255.0), u8)", yr, zp);
    if (nout > 1 && out[1]) {
        ox_type(out[1], DT_F32, 0, NULL, NULL);
        ox_assign(I, out[1], "%s", sc);
    }
    if (nout > 2 && out[2]) {
        ox_type(out[2], DT_U8, 0, NULL, NULL);
        ox_assign(I, out[2], "cast(%s, u8)", zp);
    }
    return 0;
}

/* integer matrix products, exact in f64 (every i32 accumulation of u8/i8 products fits) */
static const char *centred(Imp *I, OVal *v, OVal *zp, int rows)
{
    const char *e = arena_printf(I->a, "cast(%s, f64)", T(v));
    if (!zp)
        return e;
    const char *z = T(zp);
    if (rows && zp->rank == 1 && ox_numel(zp) > 1)
        z = arena_printf(I->a, "%s.unsqueeze(1)", z); /* a's zero point per row */
    return arena_printf(I->a, "(%s - cast(%s, f64))", e, z);
}

static int int_matmul_shape(Imp *I, OVal *a, OVal *b, OVal *out, int dt)
{
    if (a->rank < 2 || b->rank < 2 || a->dims[a->rank - 1] != b->dims[b->rank - 2])
        return ERR("takes matrices with matching inner dimensions, got %s and %s", ox_type_str(I, a), ox_type_str(I, b)), 0;
    OVal ba = *a, bb = *b;
    ba.rank -= 2, bb.rank -= 2;
    int r;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!ox_broadcast(I, &ba, &bb, &r, dims, sym))
        return 0;
    dims[r] = a->dims[a->rank - 2], sym[r++] = a->sym[a->rank - 2];
    dims[r] = b->dims[b->rank - 1], sym[r++] = b->sym[b->rank - 1];
    ox_type(out, dt, r, dims, sym);
    return 1;
}

static int op_matmul_integer(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *a = in[0], *b = nin > 1 ? in[1] : NULL, *az = nin > 2 ? in[2] : NULL, *bz = nin > 3 ? in[3] : NULL;
    if (!a || !b || !ox_need_dtype(I, a) || !ox_need_dtype(I, b))
        return ERR("needs A and B");
    if ((a->dt != DT_U8 && a->dt != DT_I8) || (b->dt != DT_U8 && b->dt != DT_I8))
        return ERR("A and B must be uint8 or int8");
    if (!int_matmul_shape(I, a, b, out[0], DT_I32))
        return 1;
    ox_assign(I, out[0], "cast(%s @ %s, i32)", centred(I, a, az, 1), centred(I, b, bz, 0));
    return 0;
}

static int op_qlinear_matmul(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (nin != 8)
        return ERR("needs eight inputs");
    for (int i = 0; i < 8; i++)
        if (!in[i] || !ox_need_dtype(I, in[i]))
            return ERR("needs eight inputs");
    OVal *a = in[0], *as = in[1], *az = in[2], *b = in[3], *bs = in[4], *bz = in[5], *ys = in[6], *yz = in[7];
    int odt = yz->dt;
    if ((odt != DT_U8 && odt != DT_I8) || as->dt != DT_F32 || bs->dt != DT_F32 || ys->dt != DT_F32)
        return ERR("takes float32 scales and a uint8 or int8 output");
    if (ox_numel(as) != 1 || ox_numel(bs) != 1 || ox_numel(ys) != 1 || ox_numel(yz) != 1)
        return ERR("only per-tensor scales and zero points are supported");
    if (!int_matmul_shape(I, a, b, out[0], odt))
        return 1;
    const char *acc = arena_printf(I->a, "%s @ %s", centred(I, a, az, 1), centred(I, b, bz, 0));
    /* the scale multiplies in f32 as the reference does, the accumulator in f64 */
    const char *mult = arena_printf(I->a, "cast(%s * %s / %s, f64)", T(as), T(bs), T(ys));
    if (as->rank)
        mult = arena_printf(I->a, "%s.reshape([])", mult);
    const char *r = round_even(I, arena_printf(I->a, "(%s) * %s", acc, mult), DT_F64);
    int lo = odt == DT_U8 ? 0 : -128, hi = odt == DT_U8 ? 255 : 127;
    ox_assign(I, out[0], "cast(minimum(maximum(%s + cast(%s, f64), %d.0), %d.0), %s)", r,
              yz->rank ? arena_printf(I->a, "%s.reshape([])", T(yz)) : T(yz), lo, hi, dtype_traits[odt].name);
    return 0;
}

/* ---------------------------------------------------------------- ONNX Runtime's dynamic quantization
 *
 * onnxruntime.quantization.quantize_dynamic writes each MatMul it quantizes as
 *   x_q, x_scale, x_zp = DynamicQuantizeLinear(x)
 *   acc = MatMulInteger(x_q, W_q, x_zp, W_zp?)      W_q [K, N] and W_zp initializers
 *   s = Mul(x_scale, W_scale)                        W_scale an initializer: one, or one per column
 *   y = Mul(Cast(acc, to=float), s)
 * (the operands of each Mul in either order). The importer writes y as
 *   y = qmatmul(x, W, scale, dynamic=true)
 * kiln's W8A8 product: the weights are ONNX's integers exactly (u8 ones less their zero point, when
 * every difference fits i8), scale [1, N] is W_scale, and the activations are quantized per row to
 * i8 at run time, symmetric, where ONNX quantizes them per tensor to u8 with a zero point. Both are
 * x @ ((W_q - W_zp) * W_scale) up to half a quantization step of each activation; they are not equal
 * bit for bit (docs/ONNX.md). The pattern's other nodes are not written when nothing else reads their
 * outputs (the three projections of an attention share one DynamicQuantizeLinear). */

struct OxQmm {
    size_t n;              /* the graph's nodes */
    unsigned char *role;   /* (n) OX_QMM_* */
    const char **x, **w, **wzp, **ws; /* (n) at the pattern's last Mul: the ONNX names of its operands */
};

enum { OX_QMM_WRITE, OX_QMM_SKIP, OX_QMM_LAST };

/* The node whose output `name` is, or -1 (a linear search over the earlier nodes: patterns are
 * searched only at the Muls that end them). */
static long producer(const Onnx__GraphProto *g, size_t before, const char *name, const char *op)
{
    if (!name || !*name)
        return -1;
    for (size_t k = before; k-- > 0;) {
        const Onnx__NodeProto *n = g->node[k];
        for (size_t i = 0; i < n->n_output; i++)
            if (n->output[i] && !strcmp(n->output[i], name))
                return n->op_type && !strcmp(n->op_type, op) && (!n->domain || !*n->domain) ? (long)k : -1;
    }
    return -1;
}

static int same(const char *a, const char *b)
{
    return a && b && *a && !strcmp(a, b);
}

/* The weights as i8: W_q less its zero point (one, or one per column), 0 when a difference does not fit. */
static int qmm_weights(OVal *w, OVal *zp, int8_t *out)
{
    int64_t K = w->dims[0], N = w->dims[1];
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            int64_t v = ox_int(w, k * N + j) - (zp ? ox_int(zp, ox_numel(zp) == 1 ? 0 : j) : 0);
            if (v < -128 || v > 127)
                return 0;
            if (out)
                out[k * N + j] = (int8_t)v;
        }
    return 1;
}

/* Whether the pattern ending at Mul node k matches; its operands' names into q. */
static int qmm_match(Imp *I, const Onnx__GraphProto *g, size_t k, OxQmm *q)
{
    const Onnx__NodeProto *m = g->node[k];
    if (!m->op_type || strcmp(m->op_type, "Mul") || m->n_input != 2 || (m->domain && *m->domain))
        return 0;
    for (int side = 0; side < 2; side++) {
        long c = producer(g, k, m->input[side], "Cast"), s = producer(g, k, m->input[1 - side], "Mul");
        if (c < 0 || s < 0 || ox_attr_i(g->node[c], "to", 0) != 1 /* FLOAT */)
            continue;
        const Onnx__NodeProto *cn = g->node[c], *sn = g->node[s];
        long mm = producer(g, (size_t)c, cn->n_input ? cn->input[0] : NULL, "MatMulInteger");
        if (mm < 0 || g->node[mm]->n_input < 3 || sn->n_input != 2)
            continue;
        const Onnx__NodeProto *qn = g->node[mm];
        long dq = producer(g, (size_t)mm, qn->input[0], "DynamicQuantizeLinear");
        if (dq < 0)
            continue;
        const Onnx__NodeProto *dn = g->node[dq];
        if (dn->n_input != 1 || dn->n_output != 3 || !same(qn->input[0], dn->output[0]) ||
            !same(qn->input[2], dn->output[2]))
            continue;
        int si = same(sn->input[0], dn->output[1]) ? 1 : same(sn->input[1], dn->output[1]) ? 0 : -1;
        if (si < 0)
            continue;
        OVal *x = ox_value(I, dn->input[0]), *w = ox_value(I, qn->input[1]), *ws = ox_value(I, sn->input[si]);
        OVal *wzp = qn->n_input > 3 && qn->input[3] && *qn->input[3] ? ox_value(I, qn->input[3]) : NULL;
        if (!w || !w->is_const || w->rank != 2 || (w->dt != DT_I8 && w->dt != DT_U8) || !ws || !ws->is_const ||
            ws->dt != DT_F32 || ws->rank > 1 || (ox_numel(ws) != 1 && ox_numel(ws) != w->dims[1]) ||
            (qn->n_input > 3 && qn->input[3] && *qn->input[3] &&
             (!wzp || !wzp->is_const || wzp->rank > 1 || (ox_numel(wzp) != 1 && ox_numel(wzp) != w->dims[1]))) ||
            (x && x->dt != DT_F32) || !qmm_weights(w, wzp, NULL))
            continue;
        q->x[k] = dn->input[0];
        q->w[k] = qn->input[1];
        q->wzp[k] = wzp ? qn->input[3] : NULL;
        q->ws[k] = sn->input[si];
        q->role[k] = OX_QMM_LAST;
        q->role[dq] = q->role[mm] = q->role[c] = q->role[s] = OX_QMM_SKIP;
        return 1;
    }
    return 0;
}

OxQmm *ox_qmm_find(Imp *I, const Onnx__GraphProto *g)
{
    OxQmm *q = arena_alloc(I->a, sizeof *q);
    q->n = g->n_node;
    q->role = arena_alloc(I->a, q->n + 1);
    const char ***names[4] = {&q->x, &q->w, &q->wzp, &q->ws};
    for (int t = 0; t < 4; t++)
        *names[t] = arena_alloc(I->a, sizeof(char *) * (q->n + 1));
    int any = 0;
    for (size_t k = 0; k < g->n_node; k++)
        any |= qmm_match(I, g, k, q);
    if (!any)
        return NULL;
    /* a skipped node must be read only by skipped nodes and the patterns' last Muls: write the
     * others after all (until nothing changes: writing one may need its producers written) */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t k = 0; k < g->n_node; k++) {
            const Onnx__NodeProto *n = g->node[k];
            if (q->role[k] != OX_QMM_SKIP)
                continue;
            int keep = 0;
            for (size_t o = 0; o < n->n_output && !keep; o++) {
                for (size_t j = 0; j < g->n_output && !keep; j++)
                    keep = same(n->output[o], g->output[j]->name);
                for (size_t u = k + 1; u < g->n_node && !keep; u++)
                    for (size_t i = 0; i < g->node[u]->n_input && !keep; i++)
                        keep = same(g->node[u]->input[i], n->output[o]) && q->role[u] == OX_QMM_WRITE;
            }
            if (keep) {
                q->role[k] = OX_QMM_WRITE;
                changed = 1;
            }
        }
    }
    return q;
}

int ox_qmm_role(const OxQmm *q, size_t k)
{
    return q && k < q->n ? q->role[k] : OX_QMM_WRITE;
}

int ox_qmm_write(Imp *I, const OxQmm *q, size_t k, OVal *out)
{
    OVal *x = ox_value(I, q->x[k]), *w = ox_value(I, q->w[k]), *ws = ox_value(I, q->ws[k]);
    OVal *wzp = q->wzp[k] ? ox_value(I, q->wzp[k]) : NULL;
    if (!x)
        return ERR("input '%s' is not computed by any earlier node", q->x[k]);
    if (x->rank < 1 || x->dims[x->rank - 1] != w->dims[0] || x->sym[x->rank - 1])
        return ERR("takes x [..., %lld] for weights %s, got %s", (long long)w->dims[0], ox_type_str(I, w),
                   ox_type_str(I, x));
    int64_t N = w->dims[1];
    int zero = 1; /* i8 weights with zero points of 0 are used as they are */
    for (int64_t j = 0; wzp && j < ox_numel(wzp); j++)
        zero &= ox_int(wzp, j) == 0;
    OVal *wq = w;
    if (w->dt != DT_I8 || !zero) {
        wq = arena_alloc(I->a, sizeof *wq);
        wq->name = arena_printf(I->a, "%s_i8", w->name);
        ox_type(wq, DT_I8, 2, w->dims, NULL);
        qmm_weights(w, wzp, ox_alloc(I, wq));
    }
    OVal *sc = arena_alloc(I->a, sizeof *sc);
    sc->name = arena_printf(I->a, "%s_cols", ws->name);
    ox_type(sc, DT_F32, 2, (int64_t[]){1, N}, NULL);
    float *sp = ox_alloc(I, sc);
    for (int64_t j = 0; j < N; j++)
        sp[j] = (float)ox_f(ws, ox_numel(ws) == 1 ? 0 : j);
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = x->dims[i], sym[i] = x->sym[i];
    dims[x->rank - 1] = N, sym[x->rank - 1] = NULL;
    ox_type(out, DT_F32, x->rank, dims, sym);
    if (x->rank == 1) /* a vector (ViT's head on the [CLS] token): MatMul's [K] @ [K, N] -> [N] */
        ox_assign(I, out, "qmatmul(%s.reshape([1, %lld]), %s, %s, dynamic=true).reshape([%lld])", T(x),
                  (long long)w->dims[0], T(wq), T(sc), (long long)N);
    else
        ox_assign(I, out, "qmatmul(%s, %s, %s, dynamic=true)", T(x), T(wq), T(sc));
    return 0;
}

/* ---------------------------------------------------------------- the table */

const OxOp ox_quant_ops[] = {
    {"DequantizeLinear", op_dequantize},
    {"DynamicQuantizeLinear", op_dynamic_quantize},
    {"MatMulInteger", op_matmul_integer},
    {"QLinearMatMul", op_qlinear_matmul},
    {"QuantizeLinear", op_quantize},
    {NULL, NULL},
};
