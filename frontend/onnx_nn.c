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

enum { CONV_MAX_SP = 3 }; /* spatial dimensions: 1-D, 2-D and 3-D convolutions */

/* The convolution's geometry, per spatial dimension (ONNX's order: the last of x's dims last). */
typedef struct ConvGeom {
    int sp;                                   /* spatial dimensions */
    int64_t in[CONV_MAX_SP], k[CONV_MAX_SP];  /* image and kernel sizes */
    int64_t stride[CONV_MAX_SP], dil[CONV_MAX_SP];
    int64_t pad0[CONV_MAX_SP], pad1[CONV_MAX_SP]; /* zeros before and after */
    int64_t out[CONV_MAX_SP];
} ConvGeom;

/* strides, dilations, pads and auto_pad into g; 0 with an error when one is malformed. */
static int conv_geom(Imp *I, const Onnx__NodeProto *n, ConvGeom *g)
{
    const Onnx__AttributeProto *at;
    for (int i = 0; i < g->sp; i++) {
        if (g->k[i] < 1) /* an empty kernel: nothing to slide (and the im2col table divided by it) */
            return ERR("the kernel's spatial dimension %d is %lld: it must be at least 1", i, (long long)g->k[i]), 0;
        g->stride[i] = g->dil[i] = 1, g->pad0[i] = g->pad1[i] = 0;
    }
    const char *names[2] = {"strides", "dilations"};
    int64_t *dst[2] = {g->stride, g->dil};
    for (int t = 0; t < 2; t++)
        if ((at = ox_attr(n, names[t]))) {
            if ((int)at->n_ints != g->sp)
                return ERR("%s must have %d entries", names[t], g->sp), 0;
            for (int i = 0; i < g->sp; i++)
                if ((dst[t][i] = at->ints[i]) < 1)
                    return ERR("%s must be at least 1, got %lld", names[t], (long long)at->ints[i]), 0;
        }
    const Onnx__AttributeProto *ap = ox_attr(n, "auto_pad");
    const char *autopad = ap && ap->has_s ? arena_strndup(I->a, (const char *)ap->s.data, ap->s.len) : "NOTSET";
    if (!strcmp(autopad, "SAME_UPPER") || !strcmp(autopad, "SAME_LOWER")) {
        for (int i = 0; i < g->sp; i++) {
            int64_t o = (g->in[i] + g->stride[i] - 1) / g->stride[i];
            int64_t total = (o - 1) * g->stride[i] + g->dil[i] * (g->k[i] - 1) + 1 - g->in[i];
            total = total < 0 ? 0 : total;
            int64_t small = total / 2, big = total - small;
            g->pad0[i] = autopad[5] == 'U' ? small : big;
            g->pad1[i] = autopad[5] == 'U' ? big : small;
        }
    } else if (!strcmp(autopad, "NOTSET")) {
        if ((at = ox_attr(n, "pads"))) {
            if ((int)at->n_ints != 2 * g->sp)
                return ERR("pads must have %d entries", 2 * g->sp), 0;
            for (int i = 0; i < g->sp; i++)
                g->pad0[i] = at->ints[i], g->pad1[i] = at->ints[g->sp + i];
        }
    } else if (strcmp(autopad, "VALID"))
        return ERR("auto_pad '%s' is not supported", autopad), 0;
    for (int i = 0; i < g->sp; i++) {
        if (g->pad0[i] < 0 || g->pad1[i] < 0)
            return ERR("negative pads are not supported"), 0;
        int64_t span = g->dil[i] * (g->k[i] - 1) + 1;
        if (g->in[i] + g->pad0[i] + g->pad1[i] < span)
            return ERR("the kernel is larger than the padded image"), 0;
        g->out[i] = (g->in[i] + g->pad0[i] + g->pad1[i] - span) / g->stride[i] + 1;
    }
    return 1;
}

/* x's text with g's zeros concatenated before and after each spatial dimension. */
static const char *conv_pad(Imp *I, OVal *x, const char *xt, const ConvGeom *g, const char *name)
{
    int64_t cur[2 + CONV_MAX_SP];
    for (int i = 0; i < x->rank; i++)
        cur[i] = x->dims[i];
    for (int i = 0; i < g->sp; i++)
        for (int side = 0; side < 2; side++) {
            int64_t p = side ? g->pad1[i] : g->pad0[i];
            if (!p)
                continue;
            OVal *z = arena_alloc(I->a, sizeof *z);
            z->name = arena_printf(I->a, "%s_pad%d", name, 2 * i + side);
            int64_t zd[2 + CONV_MAX_SP];
            memcpy(zd, cur, sizeof zd);
            zd[2 + i] = p;
            ox_type(z, x->dt, x->rank, zd, NULL);
            ox_alloc(I, z);
            xt = side ? arena_printf(I->a, "concat(%s, %s, axis=%d)", xt, T(z), 2 + i)
                      : arena_printf(I->a, "concat(%s, %s, axis=%d)", T(z), xt, 2 + i);
            cur[2 + i] += p;
        }
    return xt;
}

/* The general convolution, as im2col: the padded image flattened over its spatial axes, each output
 * position's receptive field gathered by a constant table of flat positions [P, K] (P output
 * positions, K kernel taps, dilation and stride in the table), then one batched matmul over the
 * groups with the kernel laid out as [G, C/G * K, O/G]. It costs the gathered copy of the image (K
 * times its size over the stride), which conv2d's kernel does not; it is used where conv2d cannot
 * go: 3-D, dilations, unequal strides. */
static int conv_im2col(Imp *I, OVal *x, OVal *w, OVal *b, const ConvGeom *g, int64_t group, OVal *out)
{
    int64_t N = x->dims[0], C = x->dims[1], O = w->dims[0], P = 1, K = 1, flat = 1;
    int64_t padded[CONV_MAX_SP];
    for (int i = 0; i < g->sp; i++) {
        padded[i] = g->in[i] + g->pad0[i] + g->pad1[i];
        P *= g->out[i];
        K *= g->k[i];
        flat *= padded[i];
    }
    /* the table is a constant of the model, built here: at most 2^26 entries (512 MiB), which the
     * 3-D and dilated convolutions of real models stay far below (the fuzzer's 2^40 took 2 GB) */
    if (P > ((int64_t)1 << 26) / K)
        return ERR("the convolution's table of %lld x %lld positions is too large (at most 2^26 entries)",
                   (long long)P, (long long)K);
    OVal *idx = arena_alloc(I->a, sizeof *idx);
    idx->name = arena_printf(I->a, "%s_taps", out->name);
    ox_type(idx, DT_I64, 2, (int64_t[]){P, K}, NULL);
    int64_t *t = ox_alloc(I, idx);
    int64_t op[CONV_MAX_SP] = {0}, kq[CONV_MAX_SP];
    for (int64_t p = 0; p < P; p++) {
        memset(kq, 0, sizeof kq);
        for (int64_t q = 0; q < K; q++) {
            int64_t f = 0;
            for (int i = 0; i < g->sp; i++)
                f = f * padded[i] + op[i] * g->stride[i] + kq[i] * g->dil[i];
            t[p * K + q] = f;
            ox_next_index(g->sp, g->k, kq);
        }
        ox_next_index(g->sp, g->out, op);
    }
    int64_t cg = C / group, og = O / group;
    const char *xt = conv_pad(I, x, T(x), g, out->name);
    const char *cols = ox_temp(I, "t_cols");
    ox_emit(I, "%s = gather(reshape(%s, %lld, %lld, %lld), %s, axis=2)\n", cols, xt, (long long)N, (long long)C,
            (long long)flat, T(idx));
    /* [N, C, P, K] -> [N, G, P, C/G * K] */
    ox_emit(I, "%s = %s.reshape(%lld, %lld, %lld, %lld, %lld).transpose(0, 1, 3, 2, 4).reshape(%lld, %lld, %lld, %lld)\n",
            cols, cols, (long long)N, (long long)group, (long long)cg, (long long)P, (long long)K, (long long)N,
            (long long)group, (long long)P, (long long)(cg * K));
    /* [N, G, P, O/G] -> [N, O, out...] */
    const char *e = arena_printf(I->a, "(%s @ %s.reshape(%lld, %lld, %lld).transpose(0, 2, 1)).transpose(0, 1, 3, 2).reshape(%lld, %lld, %s)",
                                 cols, T(w), (long long)group, (long long)og, (long long)(cg * K), (long long)N,
                                 (long long)O, ox_dims_text(I, g->sp, g->out, NULL));
    if (b) {
        int64_t ones[1 + CONV_MAX_SP] = {O, 1, 1, 1};
        e = arena_printf(I->a, "%s + %s.reshape(%s)", e, T(b), ox_dims_text(I, 1 + g->sp, ones, NULL));
    }
    ox_assign(I, out, "%s", e);
    return 0;
}

/* Conv: 2-D (and 1-D as 2-D with a height of 1) with equal strides and no dilation through the
 * language's conv2d, groups as one conv2d per group concatenated, uneven padding as zeros
 * concatenated first; 3-D, dilated or unequally strided ones through conv_im2col. */
static int op_conv(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *w = nin > 1 ? in[1] : NULL, *b = nin > 2 ? in[2] : NULL;
    if (!x || !w || !ox_need_dtype(I, x) || !ox_need_dtype(I, w))
        return ERR("needs X and W");
    if (x->rank != w->rank || x->rank < 3 || x->rank > 2 + CONV_MAX_SP)
        return ERR("only 1-D, 2-D and 3-D convolutions ([N, C, D...] input, [O, C/group, K...] kernel of the same "
                   "rank) are supported, got %s and %s",
                   ox_type_str(I, x), ox_type_str(I, w));
    if (!ox_need_static(I, x, "Conv") || !ox_need_static(I, w, "Conv"))
        return 1;
    if (x->dt != w->dt || !dtype_traits[x->dt].is_float)
        return ERR("X and W must be floats of one dtype");
    int64_t group = ox_attr_i(n, "group", 1);
    int64_t C = x->dims[1], O = w->dims[0];
    if (group < 1 || C % group || O % group || w->dims[1] != C / group)
        return ERR("group %lld does not fit %s and %s", (long long)group, ox_type_str(I, x), ox_type_str(I, w));
    if (b && (b->rank != 1 || b->dims[0] != O))
        return ERR("the bias must be [%lld], got %s", (long long)O, ox_type_str(I, b));
    ConvGeom g = {.sp = x->rank - 2};
    for (int i = 0; i < g.sp; i++)
        g.in[i] = x->dims[2 + i], g.k[i] = w->dims[2 + i];
    if (!conv_geom(I, n, &g))
        return 1;
    int64_t dims[2 + CONV_MAX_SP] = {x->dims[0], O};
    for (int i = 0; i < g.sp; i++)
        dims[2 + i] = g.out[i];
    ox_type(out[0], x->dt, x->rank, dims, NULL);
    int plain = g.sp <= 2;
    for (int i = 0; i < g.sp; i++)
        plain &= g.dil[i] == 1 && g.stride[i] == g.stride[0];
    if (!plain)
        return conv_im2col(I, x, w, b, &g, group, out[0]);
    int one_d = g.sp == 1;
    int64_t stride = g.stride[0];
    int even = !one_d || !g.pad0[0]; /* conv2d's padding would pad a 1-D one's height of 1 too */
    for (int i = 0; i < g.sp; i++)
        even &= g.pad0[i] == g.pad0[0] && g.pad1[i] == g.pad0[0];
    int64_t pad = even ? g.pad0[0] : 0;
    const char *xt = even ? T(x) : conv_pad(I, x, T(x), &g, out[0]->name), *wt = T(w);
    if (one_d) {
        xt = arena_printf(I->a, "%s.unsqueeze(2)", xt);
        wt = arena_printf(I->a, "%s.unsqueeze(2)", wt);
    }
    const char *bt = b ? T(b) : NULL;
    const char *e;
    if (group == 1) {
        e = arena_printf(I->a, "conv2d(%s, %s%s%s, stride=%lld, padding=%lld)", xt, wt, b ? ", " : "", b ? bt : "",
                         (long long)stride, (long long)pad);
    } else {
        const char *xv = ox_temp(I, "t_x"), *wv = ox_temp(I, "t_w");
        ox_emit(I, "%s = %s\n%s = %s\n", xv, xt, wv, wt);
        char *parts = arena_strdup(I->a, "");
        int64_t cg = C / group, og = O / group;
        for (int64_t k = 0; k < group; k++) {
            const char *bg = b ? arena_printf(I->a, ", slice(%s, %lld, %lld, axis=0)", bt, (long long)(k * og), (long long)((k + 1) * og)) : "";
            parts = arena_printf(I->a, "%s%sconv2d(slice(%s, %lld, %lld, axis=1), slice(%s, %lld, %lld, axis=0)%s, stride=%lld, padding=%lld)",
                                 parts, k ? ", " : "", xv, (long long)(k * cg), (long long)((k + 1) * cg), wv,
                                 (long long)(k * og), (long long)((k + 1) * og), bg, (long long)stride, (long long)pad);
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
