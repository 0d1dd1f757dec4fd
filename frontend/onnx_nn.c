/* onnx_nn.c: the ONNX ops of neural networks that the language has as one op or one composite:
 * Softmax, LayerNormalization, and Conv (1-D as 2-D with a height of 1, groups as one convolution per
 * group, asymmetric padding as a concat with zeros).
 *
 * onnx_ops.c says how a handler works and holds what the handlers share; the ops' names are in this
 * file's table, ox_nn_ops, at its end.
 */

#include "frontend/onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(v) ox_tensor(I, (v))
#define ERR(...) ox_err(I, __VA_ARGS__)

/* ---------------------------------------------------------------- normalisations */

/* [prod(dims[:axis]), prod(dims[axis:])] as text */
static int op_softmax(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    if (!dtype_traits[x->dt].is_float)
        return ERR("input '%s' is %s; Softmax takes floats", x->name, ox_type_str(I, x));
    int64_t axis;
    if (!ox_norm_axis(I, ox_attr_i(n, "axis", I->opset >= 13 ? -1 : 1), x->rank, &axis))
        return 1;
    ox_copy_type(out[0], x);
    if (I->opset >= 13 || axis == x->rank - 1) {
        ox_assign(I, out[0], "softmax(%s, axis=%lld)", T(x), (long long)axis);
        return 0;
    }
    /* before opset 13: over all axes from `axis` on, as one row */
    if (!ox_need_static(I, x, "Softmax before opset 13"))
        return 1;
    int64_t a = 1, b = 1;
    for (int i = 0; i < x->rank; i++)
        *(i < axis ? &a : &b) *= x->dims[i];
    ox_assign(I, out[0], "softmax(%s.reshape(%lld, %lld), axis=-1).reshape(%s)", T(x), (long long)a, (long long)b,
              ox_dims_text(I, x->rank, x->dims, NULL));
    return 0;
}

static int op_layernorm(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *s = nin > 1 ? in[1] : NULL, *b = nin > 2 ? in[2] : NULL;
    if (!x || !s || !ox_need_dtype(I, x))
        return ERR("needs X and Scale");
    if (!dtype_traits[x->dt].is_float)
        return ERR("input '%s' is %s; LayerNormalization takes floats", x->name, ox_type_str(I, x));
    int64_t axis;
    if (!ox_norm_axis(I, ox_attr_i(n, "axis", -1), x->rank, &axis))
        return 1;
    double eps = ox_attr_f(n, "epsilon", 1e-5);
    /* the normalised axes as one: [outer..., inner] with inner = prod(dims[axis:]) */
    int64_t inner = 1;
    for (int i = (int)axis; i < x->rank; i++) {
        if (x->sym[i])
            return ERR("normalising over the symbolic size %s is not supported", x->sym[i]);
        inner *= x->dims[i];
    }
    const char *xt = T(x), *st = T(s), *bt = b ? T(b) : NULL;
    const char *full = ox_dims_text(I, x->rank, x->dims, x->sym);
    int flat = axis != x->rank - 1;
    const char *lead = axis ? ox_dims_text(I, (int)axis, x->dims, x->sym) : "";
    const char *x2 = flat ? arena_printf(I->a, "%s.reshape(%s%s%lld)", xt, lead, axis ? ", " : "", (long long)inner) : xt;
    const char *s2 = s->rank != 1 ? arena_printf(I->a, "%s.reshape(%lld)", st, (long long)inner) : st;
    const char *b2 = b && b->rank != 1 ? arena_printf(I->a, "%s.reshape(%lld)", bt, (long long)inner) : bt;
    ox_copy_type(out[0], x);
    int want_stats = (nout > 1 && out[1]) || (nout > 2 && out[2]);
    if (!want_stats) {
        const char *y = arena_printf(I->a, "layernorm(%s, %s%s%s, eps=%s)", x2, s2, b ? ", " : "", b ? b2 : "", ox_num(I, eps, DT_F64));
        ox_assign(I, out[0], flat ? "%s.reshape(%s)" : "%s%s", y, flat ? full : "");
        return 0;
    }
    /* Mean and InvStdDev asked for: written out, over the flattened axis */
    const char *xv = ox_temp(I, "t_x"), *mu = ox_temp(I, "t_mean"), *rs = ox_temp(I, "t_rstd");
    ox_emit(I, "%s = %s\n", xv, x2);
    ox_emit(I, "%s = mean(%s, axis=-1, keepdims=true)\n", mu, xv);
    ox_emit(I, "%s = 1.0 / sqrt(mean((%s - %s) * (%s - %s), axis=-1, keepdims=true) + %s)\n", rs, xv, mu, xv, mu,
            ox_num(I, eps, DT_F64));
    const char *y = arena_printf(I->a, "(%s - %s) * %s * %s%s%s", xv, mu, rs, s2, b ? " + " : "", b ? b2 : "");
    ox_assign(I, out[0], flat ? "(%s).reshape(%s)" : "%s%s", y, flat ? full : "");
    int64_t sd[IR_MAX_RANK];
    const char *ss[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        sd[i] = i < axis ? x->dims[i] : 1;
        ss[i] = i < axis ? x->sym[i] : NULL;
    }
    const char *sdims = ox_dims_text(I, x->rank, sd, ss);
    int sdt = (int)ox_attr_i(n, "stash_type", 1) == 1 ? DT_F32 : x->dt;
    for (int k = 1; k < 3 && k < nout; k++) {
        if (!out[k])
            continue;
        ox_type(out[k], sdt, x->rank, sd, ss);
        ox_assign(I, out[k], "cast(%s.reshape(%s), %s)", k == 1 ? mu : rs, sdims, dtype_traits[sdt].name);
    }
    return 0;
}

/* ---------------------------------------------------------------- convolution */
/* Conv: 2-D, or 1-D as 2-D with a height of 1; groups as one convolution per group, concatenated. */
static int op_conv(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *w = nin > 1 ? in[1] : NULL, *b = nin > 2 ? in[2] : NULL;
    if (!x || !w || !ox_need_dtype(I, x) || !ox_need_dtype(I, w))
        return ERR("needs X and W");
    int one_d = x->rank == 3 && w->rank == 3;
    if (!one_d && (x->rank != 4 || w->rank != 4))
        return ERR("only 1-D and 2-D convolutions ([N, C, (H,) W] input, [O, C/group, (KH,) KW] kernel) are supported, got %s and %s",
                   ox_type_str(I, x), ox_type_str(I, w));
    if (!ox_need_static(I, x, "Conv") || !ox_need_static(I, w, "Conv"))
        return 1;
    int64_t group = ox_attr_i(n, "group", 1);
    int sp = x->rank - 2; /* spatial dimensions */
    const Onnx__AttributeProto *at;
    if ((at = ox_attr(n, "dilations")))
        for (size_t i = 0; i < at->n_ints; i++)
            if (at->ints[i] != 1)
                return ERR("dilations other than 1 are not supported");
    /* everything in 2-D terms: (h, w); a 1-D convolution has h = kh = 1 */
    int64_t stride[2] = {1, 1}, pads[4] = {0, 0, 0, 0};
    if ((at = ox_attr(n, "strides"))) {
        if ((int)at->n_ints != sp)
            return ERR("strides must have %d entries", sp);
        for (int i = 0; i < sp; i++)
            stride[2 - sp + i] = at->ints[i];
    }
    if (one_d)
        stride[0] = stride[1]; /* with a height of 1 the vertical stride changes nothing */
    if (stride[0] != stride[1] || stride[0] < 1)
        return ERR("strides %lld, %lld: only equal strides are supported", (long long)stride[0], (long long)stride[1]);
    int64_t C = x->dims[1], O = w->dims[0];
    int64_t kh = one_d ? 1 : w->dims[2], kw = w->dims[sp + 1], H = one_d ? 1 : x->dims[2], W = x->dims[sp + 1];
    if (group < 1 || C % group || O % group || w->dims[1] != C / group)
        return ERR("group %lld does not fit %s and %s", (long long)group, ox_type_str(I, x), ox_type_str(I, w));
    const Onnx__AttributeProto *ap = ox_attr(n, "auto_pad");
    const char *autopad = ap && ap->has_s ? arena_strndup(I->a, (const char *)ap->s.data, ap->s.len) : "NOTSET";
    if (!strcmp(autopad, "SAME_UPPER") || !strcmp(autopad, "SAME_LOWER")) {
        int64_t k2[2] = {kh, kw}, in2[2] = {H, W};
        for (int i = 2 - sp; i < 2; i++) {
            int64_t o = (in2[i] + stride[0] - 1) / stride[0];
            int64_t total = (o - 1) * stride[0] + k2[i] - in2[i];
            total = total < 0 ? 0 : total;
            int64_t small = total / 2, big = total - small;
            pads[i] = autopad[5] == 'U' ? small : big;
            pads[i + 2] = autopad[5] == 'U' ? big : small;
        }
    } else if (!strcmp(autopad, "NOTSET")) {
        if ((at = ox_attr(n, "pads"))) {
            if ((int)at->n_ints != 2 * sp)
                return ERR("pads must have %d entries", 2 * sp);
            for (int i = 0; i < sp; i++)
                pads[2 - sp + i] = at->ints[i], pads[4 - sp + i] = at->ints[sp + i];
        }
    } else if (strcmp(autopad, "VALID"))
        return ERR("auto_pad '%s' is not supported", autopad);
    if (x->dt != w->dt || !dtype_traits[x->dt].is_float)
        return ERR("X and W must be floats of one dtype");
    int64_t oh = (H + pads[0] + pads[2] - kh) / stride[0] + 1, ow = (W + pads[1] + pads[3] - kw) / stride[0] + 1;
    if (oh < 1 || ow < 1)
        return ERR("the kernel is larger than the padded image");
    int64_t dims[4] = {x->dims[0], O, oh, ow};
    if (one_d)
        dims[2] = ow;
    ox_type(out[0], x->dt, x->rank, dims, NULL);
    const char *xt = T(x), *wt = T(w);
    if (one_d) {
        xt = arena_printf(I->a, "%s.unsqueeze(2)", xt);
        wt = arena_printf(I->a, "%s.unsqueeze(2)", wt);
    }
    int even = pads[0] == pads[1] && pads[0] == pads[2] && pads[0] == pads[3];
    int64_t pad = even ? pads[0] : 0;
    if (!even) {
        /* uneven padding: zeros concatenated on each side, then a convolution without padding */
        int64_t cur[4] = {x->dims[0], C, H, W};
        for (int side = 0; side < 4; side++) {
            int axis = 2 + side % 2;
            if (!pads[side])
                continue;
            if (pads[side] < 0)
                return ERR("negative pads are not supported");
            OVal *z = arena_alloc(I->a, sizeof *z);
            z->name = arena_printf(I->a, "%s_pad%d", out[0]->name, side);
            int64_t zd[4] = {cur[0], cur[1], cur[2], cur[3]};
            zd[axis] = pads[side];
            ox_type(z, x->dt, 4, zd, NULL);
            ox_alloc(I, z);
            xt = side < 2 ? arena_printf(I->a, "concat(%s, %s, axis=%d)", T(z), xt, axis)
                          : arena_printf(I->a, "concat(%s, %s, axis=%d)", xt, T(z), axis);
            cur[axis] += pads[side];
        }
    }
    const char *bt = b ? T(b) : NULL;
    const char *e;
    if (group == 1) {
        e = arena_printf(I->a, "conv2d(%s, %s%s%s, stride=%lld, padding=%lld)", xt, wt, b ? ", " : "", b ? bt : "",
                         (long long)stride[0], (long long)pad);
    } else {
        const char *xv = ox_temp(I, "t_x"), *wv = ox_temp(I, "t_w");
        ox_emit(I, "%s = %s\n%s = %s\n", xv, xt, wv, wt);
        char *parts = arena_strdup(I->a, "");
        int64_t cg = C / group, og = O / group;
        for (int64_t g = 0; g < group; g++) {
            const char *bg = b ? arena_printf(I->a, ", slice(%s, %lld, %lld, axis=0)", bt, (long long)(g * og), (long long)((g + 1) * og)) : "";
            parts = arena_printf(I->a, "%s%sconv2d(slice(%s, %lld, %lld, axis=1), slice(%s, %lld, %lld, axis=0)%s, stride=%lld, padding=%lld)",
                                 parts, g ? ", " : "", xv, (long long)(g * cg), (long long)((g + 1) * cg), wv,
                                 (long long)(g * og), (long long)((g + 1) * og), bg, (long long)stride[0], (long long)pad);
        }
        e = arena_printf(I->a, "concat(%s, axis=1)", parts);
    }
    if (one_d)
        e = arena_printf(I->a, "(%s).squeeze(2)", e);
    ox_assign(I, out[0], "%s", e);
    return 0;
}


/* ---------------------------------------------------------------- the table */

const OxOp ox_nn_ops[] = {
    {"Conv", op_conv},
    {"LayerNormalization", op_layernorm},
    {"Softmax", op_softmax},
    {NULL, NULL},
};
