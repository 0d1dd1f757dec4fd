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

/* ---------------------------------------------------------------- the table */

const OxOp ox_quant_ops[] = {
    {"DequantizeLinear", op_dequantize},
    {"DynamicQuantizeLinear", op_dynamic_quantize},
    {"MatMulInteger", op_matmul_integer},
    {"QLinearMatMul", op_qlinear_matmul},
    {"QuantizeLinear", op_quantize},
    {NULL, NULL},
};
