/* onnx_shape.c: the ONNX ops that move data or make it: Identity, Reshape, Flatten, Squeeze and
 * Unsqueeze, Transpose, Concat, Split, Slice, Gather, Expand, and the sources Shape, ConstantOfShape,
 * Range and Constant. Most fold when their input is known at import time (the shape subgraphs
 * exporters write), and the operands that decide a shape must fold: kiln's shapes are fixed at compile
 * time, up to symbolic sizes, whose arithmetic (Concat of a cache and new tokens, a Slice's length)
 * is onnx_ops.c's linear expressions.
 *
 * onnx_ops.c says how a handler works and holds what the handlers share; the ops' names are in this
 * file's table, ox_shape_ops, at its end.
 */

#include "frontend/onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(v) ox_tensor(I, (v))
#define ERR(...) ox_err(I, __VA_ARGS__)

/* ---------------------------------------------------------------- data movement */

static int op_identity(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (!in[0])
        return ERR("needs an input");
    ox_copy_type(out[0], in[0]);
    if (in[0]->is_const) {
        ox_fold_same_data(I, in[0], out[0], in[0]->rank, in[0]->dims);
        return 0;
    }
    ox_assign(I, out[0], "%s", T(in[0]));
    return 0;
}

/* out = x with a new static shape (Reshape, Flatten, Squeeze, Unsqueeze) */
static int reshape_to(Imp *I, OVal *x, OVal *out, int rank, const int64_t *dims, const char *const *sym)
{
    ox_type(out, x->dt, rank, dims, sym);
    out->odt = x->odt;
    if (x->is_const) {
        ox_fold_same_data(I, x, out, rank, dims);
        return 0;
    }
    ox_assign(I, out, "%s.reshape(%s)", T(x), rank ? ox_dims_text(I, rank, dims, sym) : "[]");
    return 0;
}

static int op_reshape(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || nin < 2 || !in[1] || !ox_need_dtype(I, x))
        return ERR("needs data and shape");
    int64_t shape[IR_MAX_RANK];
    const char *ssym[IR_MAX_RANK];
    int r;
    if (!ox_const_ints_sym(I, in[1], "the shape", shape, IR_MAX_RANK, &r, ssym))
        return 1;
    int allowzero = (int)ox_attr_i(n, "allowzero", 0);
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    int infer = -1;
    int64_t known = 1, total = 1;
    const char *insym = NULL;
    for (int i = 0; i < x->rank; i++) {
        if (x->sym[i]) {
            if (insym)
                return ERR("reshaping a tensor with two symbolic sizes is not supported");
            insym = x->sym[i];
        } else
            total *= x->dims[i];
    }
    const char *usedsym = NULL;
    for (int i = 0; i < r; i++) {
        sym[i] = NULL;
        if (ssym[i]) { /* a symbolic size taken from a Shape */
            if (usedsym && strcmp(usedsym, ssym[i]))
                return ERR("the shape has two symbolic sizes, %s and %s", usedsym, ssym[i]);
            dims[i] = shape[i];
            sym[i] = usedsym = ssym[i];
            continue;
        }
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return ERR("shape entry %d is 0 (copy), but the input has rank %d", i, x->rank);
            dims[i] = x->dims[i];
            sym[i] = x->sym[i];
            if (sym[i])
                usedsym = sym[i];
            else
                known *= dims[i];
        } else if (shape[i] == -1) {
            if (infer >= 0)
                return ERR("the shape has two -1 entries");
            infer = i;
        } else if (shape[i] < 0) {
            return ERR("the shape has a negative entry %lld", (long long)shape[i]);
        } else {
            dims[i] = shape[i];
            known *= dims[i];
        }
    }
    if (insym && !usedsym && infer < 0)
        return ERR("the symbolic size %s of '%s' would disappear in the reshape", insym, x->name);
    if (usedsym && (!insym || strcmp(usedsym, insym)))
        return ERR("the shape has the symbolic size %s, which %s does not have", usedsym, ox_type_str(I, x));
    if (infer >= 0) {
        if (insym && !usedsym) {
            /* -1 takes the symbol (with its coefficient 1): only when the rest matches exactly */
            if (known != total)
                return ERR("cannot infer the -1 of the shape with the symbolic size %s", insym);
            dims[infer] = x->dims[0];
            for (int i = 0; i < x->rank; i++)
                if (x->sym[i])
                    dims[infer] = x->dims[i];
            sym[infer] = insym;
        } else {
            if (known == 0 || total % known)
                return ERR("cannot reshape %s to the shape with -1", ox_type_str(I, x));
            dims[infer] = total / known;
        }
    } else if (!insym && known != total)
        return ERR("cannot reshape %s (%lld elements) to %d dims of %lld elements", ox_type_str(I, x), (long long)total, r,
                   (long long)known);
    return reshape_to(I, x, out[0], r, dims, sym);
}

static int op_flatten(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x) || !ox_need_static(I, x, "Flatten"))
        return 1;
    int64_t axis = ox_attr_i(n, "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return ERR("axis %lld is out of range for rank %d", (long long)ox_attr_i(n, "axis", 1), x->rank);
    int64_t dims[2] = {1, 1};
    for (int i = 0; i < x->rank; i++)
        dims[i >= axis] *= x->dims[i];
    return reshape_to(I, x, out[0], 2, dims, NULL);
}

static int op_squeeze(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    int64_t axes[IR_MAX_RANK];
    int naxes, have;
    if (!ox_get_axes(I, n, in, nin, 1, axes, &naxes, &have))
        return 1;
    int unsq = !strcmp(n->op_type, "Unsqueeze");
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!unsq) {
        int drop[IR_MAX_RANK] = {0};
        for (int i = 0; i < naxes; i++) {
            int64_t a;
            if (!ox_norm_axis(I, axes[i], x->rank, &a))
                return 1;
            if (x->dims[a] != 1 || x->sym[a])
                return ERR("dimension %lld of %s is not 1", (long long)a, ox_type_str(I, x));
            drop[a] = 1;
        }
        if (!have)
            for (int i = 0; i < x->rank; i++)
                drop[i] = x->dims[i] == 1 && !x->sym[i];
        int r = 0;
        for (int i = 0; i < x->rank; i++)
            if (!drop[i])
                dims[r] = x->dims[i], sym[r++] = x->sym[i];
        return reshape_to(I, x, out[0], r, dims, sym);
    }
    if (!have)
        return ERR("needs axes");
    int r = x->rank + naxes;
    if (r > IR_MAX_RANK)
        return ERR("the result has more than %d dimensions", IR_MAX_RANK);
    int ins[IR_MAX_RANK] = {0};
    for (int i = 0; i < naxes; i++) {
        int64_t a;
        if (!ox_norm_axis(I, axes[i], r, &a))
            return 1;
        if (ins[a])
            return ERR("axis %lld is given twice", (long long)a);
        ins[a] = 1;
    }
    for (int i = 0, k = 0; i < r; i++) {
        if (ins[i])
            dims[i] = 1, sym[i] = NULL;
        else
            dims[i] = x->dims[k], sym[i] = x->sym[k], k++;
    }
    return reshape_to(I, x, out[0], r, dims, sym);
}

static int op_transpose(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    int perm[IR_MAX_RANK];
    const Onnx__AttributeProto *p = ox_attr(n, "perm");
    if (p && (int)p->n_ints != x->rank)
        return ERR("perm has %zu entries for rank %d", p->n_ints, x->rank);
    int seen[IR_MAX_RANK] = {0};
    for (int i = 0; i < x->rank; i++) {
        perm[i] = p ? (int)p->ints[i] : x->rank - 1 - i;
        if (perm[i] < 0 || perm[i] >= x->rank || seen[perm[i]]++)
            return ERR("perm is not a permutation");
    }
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = x->dims[perm[i]], sym[i] = x->sym[perm[i]];
    ox_type(out[0], x->dt, x->rank, dims, sym);
    if (x->is_const) {
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[x->dt].size;
        int64_t idx[IR_MAX_RANK] = {0}, cnt = ox_numel(x), st[IR_MAX_RANK];
        for (int i = x->rank - 1, s = 1; i >= 0; i--)
            st[i] = s, s *= (int)x->dims[i];
        for (int64_t k = 0; k < cnt; k++, ox_next_index(x->rank, dims, idx)) {
            int64_t off = 0;
            for (int i = 0; i < x->rank; i++)
                off += idx[i] * st[perm[i]];
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)x->data + off * (int64_t)es, es);
        }
        return 0;
    }
    if (x->rank < 2) {
        ox_assign(I, out[0], "%s", T(x));
        return 0;
    }
    char buf[128] = "";
    for (int i = 0; i < x->rank; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ", %d", perm[i]);
    ox_assign(I, out[0], "permute(%s%s)", T(x), buf);
    return 0;
}

/* The size of the concatenation of in[0..nin) along a symbolic axis: the sum of the parts' sizes. NULL
 * with an error when it does not fit a OxLin. */
static const char *concat_size(Imp *I, OVal **in, int nin, int axis)
{
    OxLin sum = {0}, part;
    for (int k = 0; k < nin; k++)
        if (!ox_lin_of(I, in[k]->sym[axis], in[k]->dims[axis], &part) || !ox_lin_add(&sum, &part, 1))
            return ERR("the size of the concatenation has more than %d symbols", OX_LIN_TERMS), NULL;
    return ox_lin_text(I, &sum);
}

static int op_concat(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (nin < 1 || !in[0])
        return ERR("needs inputs");
    for (int i = 0; i < nin; i++)
        if (!in[i] || !ox_need_dtype(I, in[i]) || in[i]->dt != in[0]->dt || in[i]->rank != in[0]->rank)
            return ERR("inputs must have one dtype and rank");
    int64_t axis;
    if (!ox_norm_axis(I, ox_attr_i(n, "axis", 0), in[0]->rank, &axis))
        return 1;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    for (int i = 0; i < in[0]->rank; i++)
        dims[i] = in[0]->dims[i], sym[i] = in[0]->sym[i];
    dims[axis] = 0;
    sym[axis] = NULL;
    int live = 0, symbolic = 0;
    for (int k = 0; k < nin; k++) {
        dims[axis] += in[k]->dims[axis]; /* a symbolic part's bound: the sum's bound */
        live += in[k]->dims[axis] > 0;
        symbolic |= in[k]->sym[axis] != NULL;
    }
    if (symbolic && ox_all_const(in, nin))
        return ERR("concatenating constants along a symbolic size is not supported");
    if (symbolic && live > 1 && !(sym[axis] = concat_size(I, in, nin, (int)axis)))
        return 1;
    if (symbolic && live == 1)
        for (int k = 0; k < nin; k++)
            if (in[k]->dims[axis] > 0)
                sym[axis] = in[k]->sym[axis];
    ox_type(out[0], in[0]->dt, in[0]->rank, dims, sym);
    if (ox_all_const(in, nin)) {
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[in[0]->dt].size;
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < axis; i++)
            outer *= dims[i];
        for (int i = (int)axis + 1; i < in[0]->rank; i++)
            inner *= dims[i];
        char *o = out[0]->data;
        for (int64_t j = 0; j < outer; j++)
            for (int k = 0; k < nin; k++) {
                size_t len = (size_t)(in[k]->dims[axis] * inner) * es;
                ox_move_sym(I, out[0], in[k], (int64_t)(o - (char *)out[0]->data) / (int64_t)es, (int64_t)((size_t)j * len / es),
                         (int64_t)(len / es));
                memcpy(o, (char *)in[k]->data + (size_t)j * len, len);
                o += len;
            }
        return 0;
    }
    char *list = arena_strdup(I->a, "");
    for (int k = 0; k < nin; k++)
        if (in[k]->dims[axis] > 0)
            list = arena_printf(I->a, "%s%s%s", list, *list ? ", " : "", T(in[k]));
    if (live == 1)
        ox_assign(I, out[0], "%s", list);
    else
        ox_assign(I, out[0], "concat(%s, axis=%lld)", list, (long long)axis);
    return 0;
}

static int op_split(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    int64_t axis;
    if (!ox_norm_axis(I, ox_attr_i(n, "axis", 0), x->rank, &axis))
        return 1;
    if (x->sym[axis])
        return ERR("splitting the symbolic size %s is not supported", x->sym[axis]);
    int64_t sizes[64];
    int ns = 0;
    const Onnx__AttributeProto *sa = ox_attr(n, "split");
    if (sa) {
        for (size_t i = 0; i < sa->n_ints && i < 64; i++)
            sizes[ns++] = sa->ints[i];
    } else if (nin > 1 && in[1]) {
        if (!ox_const_ints(I, in[1], "the split", sizes, 64, &ns))
            return 1;
    } else {
        if (x->dims[axis] % nout)
            return ERR("dimension %lld of %s does not split into %d equal parts", (long long)axis, ox_type_str(I, x), nout);
        for (int i = 0; i < nout; i++)
            sizes[ns++] = x->dims[axis] / nout;
    }
    int64_t sum = 0;
    for (int i = 0; i < ns; i++)
        sum += sizes[i];
    if (ns != nout || sum != x->dims[axis])
        return ERR("the split sizes do not add up to dimension %lld of %s over %d outputs", (long long)axis,
                   ox_type_str(I, x), nout);
    int live = 0, last = -1, xempty = ox_numel(x) == 0; /* the parts of more than 0 elements */
    for (int i = 0; i < ns; i++) {
        if (sizes[i] < 0)
            return ERR("a part of negative size %lld", (long long)sizes[i]);
        int64_t dims[IR_MAX_RANK];
        for (int j = 0; j < x->rank; j++)
            dims[j] = x->dims[j];
        dims[axis] = sizes[i];
        if (out[i])
            ox_type(out[i], x->dt, x->rank, dims, x->sym);
        if (sizes[i] == 0 || xempty) { /* an empty part has no data: a constant of its type */
            if (!ox_need_static(I, x, "an empty part"))
                return 1;
            if (out[i])
                ox_alloc(I, out[i]);
        } else
            live++, last = i;
    }
    if (live == 0)
        return 0;
    if (live == 1) {
        if (out[last])
            ox_assign(I, out[last], "%s", T(x));
        return 0;
    }
    char *lhs = arena_strdup(I->a, ""), *sz = arena_strdup(I->a, "");
    for (int i = 0, k = 0; i < ns; i++) {
        if (sizes[i] == 0 || xempty)
            continue; /* written above */
        if (out[i] && !out[i]->var)
            out[i]->var = ox_fresh(I, out[i]->name);
        lhs = arena_printf(I->a, "%s%s%s", lhs, k ? ", " : "", out[i] ? out[i]->var : ox_temp(I, "t_unused"));
        sz = arena_printf(I->a, "%s%s%lld", sz, k ? ", " : "", (long long)sizes[i]);
        k++;
    }
    ox_emit(I, "%s = split(%s, [%s], axis=%lld)\n", lhs, T(x), sz, (long long)axis);
    return 0;
}

static int op_slice(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !ox_need_dtype(I, x))
        return 1;
    int64_t st[IR_MAX_RANK], en[IR_MAX_RANK], ax[IR_MAX_RANK], sp[IR_MAX_RANK];
    const char *esy[IR_MAX_RANK] = {0}, *ssy[IR_MAX_RANK] = {0}; /* ends and starts that are symbolic sizes */
    const char *osym[IR_MAX_RANK] = {0};
    const char *sfrom[IR_MAX_RANK] = {0}, *sto[IR_MAX_RANK] = {0}; /* an axis sliced [sfrom, sto) in the text */
    int ns, ne, na, nsp;
    if (I->opset < 10) {
        const Onnx__AttributeProto *s = ox_attr(n, "starts"), *e = ox_attr(n, "ends"), *a = ox_attr(n, "axes");
        if (!s || !e || s->n_ints > IR_MAX_RANK || s->n_ints != e->n_ints)
            return ERR("needs starts and ends of one length");
        ns = ne = (int)s->n_ints;
        for (int i = 0; i < ns; i++)
            st[i] = s->ints[i], en[i] = e->ints[i], ax[i] = a && i < (int)a->n_ints ? a->ints[i] : i, sp[i] = 1;
        na = nsp = ns;
    } else {
        if (nin < 3 || !in[1] || !in[2])
            return ERR("needs data, starts and ends");
        if (!ox_const_ints_sym(I, in[1], "starts", st, IR_MAX_RANK, &ns, ssy) ||
            !ox_const_ints_sym(I, in[2], "ends", en, IR_MAX_RANK, &ne, esy))
            return 1;
        na = nsp = ns;
        if (nin > 3 && in[3] && !ox_const_ints(I, in[3], "axes", ax, IR_MAX_RANK, &na))
            return 1;
        if (!(nin > 3 && in[3]))
            for (int i = 0; i < ns; i++)
                ax[i] = i;
        if (nin > 4 && in[4] && !ox_const_ints(I, in[4], "steps", sp, IR_MAX_RANK, &nsp))
            return 1;
        if (!(nin > 4 && in[4]))
            for (int i = 0; i < ns; i++)
                sp[i] = 1;
        if (ns != ne || na != ns || nsp != ns)
            return ERR("starts, ends, axes and steps have different lengths");
    }
    /* per axis: first index, step, count */
    int64_t first[IR_MAX_RANK], step[IR_MAX_RANK], cnt[IR_MAX_RANK];
    int touched[IR_MAX_RANK] = {0};
    for (int i = 0; i < x->rank; i++)
        first[i] = 0, step[i] = 1, cnt[i] = x->dims[i];
    for (int i = 0; i < ns; i++) {
        int64_t a;
        if (!ox_norm_axis(I, ax[i], x->rank, &a))
            return 1;
        if (touched[a]++)
            return ERR("axis %lld is sliced twice", (long long)a);
        if (x->sym[a])
            return ERR("slicing the symbolic size %s is not supported", x->sym[a]);
        int64_t d = x->dims[a], s = st[i], e = en[i], k = sp[i];
        if (k == 0)
            return ERR("a step of 0");
        if (esy[i] || ssy[i]) {
            /* [S, E) with sizes (GPT-2's mask rows kl - ql .. kl): E - S rows, E at most d when every
             * symbol is at its bound (the values hold the bounds) */
            OxLin ls, le, len = {0};
            if (k != 1 || s < 0 || e < 0 || e > d || !ox_lin_of(I, ssy[i], s, &ls) || !ox_lin_of(I, esy[i], e, &le) ||
                !ox_lin_add(&len, &le, 1) || !ox_lin_add(&len, &ls, -1))
                return ERR("a slice [%s, %s) with step %lld of dimension %lld is not supported (sizes need step 1, "
                           "within the dimension)", ssy[i] ? ssy[i] : ox_num(I, (double)s, DT_I64),
                           esy[i] ? esy[i] : ox_num(I, (double)e, DT_I64), (long long)k, (long long)d);
            sfrom[a] = ssy[i] ? ssy[i] : ox_num(I, (double)s, DT_I64);
            sto[a] = esy[i] ? esy[i] : ox_num(I, (double)e, DT_I64);
            osym[a] = ox_lin_text(I, &len);
            first[a] = 0, step[a] = 1, cnt[a] = osym[a] ? e - s : len.k;
            if (cnt[a] < 1)
                cnt[a] = 1; /* the bounds' difference says nothing of the size: keep it a valid bound */
            continue;
        }
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        if (k > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            cnt[a] = e > s ? (e - s + k - 1) / k : 0;
        } else {
            s = s < 0 ? -1 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            cnt[a] = s > e ? (s - e + (-k) - 1) / (-k) : 0;
        }
        first[a] = s, step[a] = k;
    }
    int empty = 0;
    for (int i = 0; i < x->rank; i++)
        empty |= cnt[i] == 0;
    if (empty) { /* an empty result has no data: a constant of its type */
        if (!ox_need_static(I, x, "an empty slice"))
            return 1;
        ox_type(out[0], x->dt, x->rank, cnt, NULL);
        ox_alloc(I, out[0]);
        return 0;
    }
    const char *rsym[IR_MAX_RANK];
    int symbolic = 0;
    for (int i = 0; i < x->rank; i++) {
        rsym[i] = osym[i] ? osym[i] : x->sym[i];
        symbolic |= sfrom[i] != NULL;
    }
    ox_type(out[0], x->dt, x->rank, cnt, rsym);
    if (x->is_const && !symbolic) {
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[x->dt].size;
        int64_t idx[IR_MAX_RANK] = {0}, total = ox_numel(out[0]);
        for (int64_t k = 0; k < total; k++, ox_next_index(x->rank, cnt, idx)) {
            int64_t off = 0;
            for (int i = 0; i < x->rank; i++)
                off = off * x->dims[i] + first[i] + idx[i] * step[i];
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)x->data + off * (int64_t)es, es);
            ox_move_sym(I, out[0], x, k, off, 1);
        }
        return 0;
    }
    const char *e = T(x);
    for (int i = 0; i < x->rank; i++) {
        if (sfrom[i]) {
            e = arena_printf(I->a, "slice(%s, %s, %s, axis=%d)", e, sfrom[i], sto[i], i);
            continue;
        }
        if (step[i] == 1 && cnt[i] == x->dims[i])
            continue;
        if (step[i] == 1) {
            e = arena_printf(I->a, "slice(%s, %lld, %lld, axis=%d)", e, (long long)first[i], (long long)(first[i] + cnt[i]), i);
            continue;
        }
        /* a step: a gather of the positions */
        OVal *idx = arena_alloc(I->a, sizeof *idx);
        idx->name = arena_printf(I->a, "%s_slice%d", out[0]->name, i);
        ox_type(idx, DT_I64, 1, &cnt[i], NULL);
        int64_t *p = ox_alloc(I, idx);
        for (int64_t k = 0; k < cnt[i]; k++)
            p[k] = first[i] + k * step[i];
        e = arena_printf(I->a, "gather(%s, %s, axis=%d)", e, T(idx), i);
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

static int op_gather(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *ix = nin > 1 ? in[1] : NULL;
    if (!x || !ix || !ox_need_dtype(I, x) || !ox_need_dtype(I, ix))
        return ERR("needs data and indices");
    if (ix->dt != DT_I32 && ix->dt != DT_I64)
        return ERR("indices '%s' must be int32 or int64, got %s", ix->name, ox_type_str(I, ix));
    int64_t axis;
    if (!ox_norm_axis(I, ox_attr_i(n, "axis", 0), x->rank, &axis))
        return 1;
    if (x->sym[axis] && ix->is_const)
        return ERR("constant indices into the symbolic size %s are not supported", x->sym[axis]);
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    int r = 0;
    if (x->rank - 1 + ix->rank > IR_MAX_RANK)
        return ERR("the result has too many dimensions");
    for (int i = 0; i < axis; i++)
        dims[r] = x->dims[i], sym[r++] = x->sym[i];
    for (int i = 0; i < ix->rank; i++)
        dims[r] = ix->dims[i], sym[r++] = ix->sym[i];
    for (int i = (int)axis + 1; i < x->rank; i++)
        dims[r] = x->dims[i], sym[r++] = x->sym[i];
    ox_type(out[0], x->dt, r, dims, sym);
    int64_t d = x->dims[axis];
    if (ix->is_const) {
        for (int64_t k = 0; k < ox_numel(ix); k++) {
            int64_t v = ox_int(ix, k);
            if (v < -d || v >= d)
                return ERR("index %lld is out of range for dimension %lld of %s", (long long)v, (long long)axis, ox_type_str(I, x));
        }
    }
    if (x->is_const && ix->is_const) {
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[x->dt].size;
        int64_t outer = 1, inner = 1, ni = ox_numel(ix);
        for (int i = 0; i < axis; i++)
            outer *= x->dims[i];
        for (int i = (int)axis + 1; i < x->rank; i++)
            inner *= x->dims[i];
        char *o = out[0]->data;
        for (int64_t j = 0; j < outer; j++)
            for (int64_t k = 0; k < ni; k++) {
                int64_t v = ox_int(ix, k);
                v = v < 0 ? v + d : v;
                ox_move_sym(I, out[0], x, (int64_t)(o - (char *)out[0]->data) / (int64_t)es, (j * d + v) * inner, inner);
                memcpy(o, (char *)x->data + ((j * d + v) * inner) * (int64_t)es, (size_t)inner * es);
                o += (size_t)inner * es;
            }
        return 0;
    }
    const char *ie;
    if (ix->is_const) {
        /* negative indices count from the end: made positive here */
        OVal *pos = arena_alloc(I->a, sizeof *pos);
        pos->name = ix->name;
        ox_type(pos, ix->dt, ix->rank, ix->dims, NULL);
        ox_alloc(I, pos);
        int neg = 0;
        for (int64_t k = 0; k < ox_numel(ix); k++) {
            int64_t v = ox_int(ix, k);
            neg |= v < 0;
            dtype_store((DType)ix->dt, pos->data, (size_t)k, (double)(v < 0 ? v + d : v));
        }
        ie = T(neg ? pos : ix);
    } else if (x->sym[axis]) {
        ie = T(ix); /* negative indices into a symbolic size: not wrapped */
    } else {
        ie = arena_printf(I->a, "where(%s < 0, %s + %lld, %s)", T(ix), T(ix), (long long)d, T(ix));
    }
    ox_assign(I, out[0], "gather(%s, %s, axis=%lld)", T(x), ie, (long long)axis);
    return 0;
}

static int op_expand(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || nin < 2 || !in[1] || !ox_need_dtype(I, x))
        return ERR("needs input and shape");
    int64_t shape[IR_MAX_RANK];
    const char *ssym[IR_MAX_RANK];
    int r;
    if (!ox_const_ints_sym(I, in[1], "the shape", shape, IR_MAX_RANK, &r, ssym))
        return 1;
    OVal s = {0};
    ox_type(&s, x->dt, r, shape, ssym);
    int rank;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!ox_broadcast(I, x, &s, &rank, dims, sym))
        return 1;
    ox_type(out[0], x->dt, rank, dims, sym);
    int same = rank == x->rank, symbolic = 0;
    for (int i = 0; i < rank; i++) {
        same &= dims[i] == x->dims[i] && (sym[i] == x->sym[i] || (sym[i] && x->sym[i] && !strcmp(sym[i], x->sym[i])));
        symbolic |= sym[i] != NULL;
    }
    if (x->is_const && !symbolic) {
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[x->dt].size;
        int64_t idx[IR_MAX_RANK] = {0}, total = ox_numel(out[0]);
        for (int64_t k = 0; k < total; k++, ox_next_index(rank, dims, idx))
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)x->data + ox_bcast_offset(x, rank, idx) * (int64_t)es, es);
        return 0;
    }
    if (same)
        ox_assign(I, out[0], "%s", T(x));
    else
        ox_assign(I, out[0], "%s.expand(%s)", T(x), ox_dims_text(I, rank, dims, sym));
    return 0;
}

/* ---------------------------------------------------------------- sources and shapes */

static int op_shape(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x)
        return ERR("needs an input");
    int64_t s = ox_attr_i(n, "start", 0), e = ox_attr_i(n, "end", x->rank);
    s = s < 0 ? s + x->rank : s;
    e = e < 0 ? e + x->rank : e;
    s = s < 0 ? 0 : s > x->rank ? x->rank : s;
    e = e < 0 ? 0 : e > x->rank ? x->rank : e;
    int64_t len = e > s ? e - s : 0;
    ox_type(out[0], DT_I64, 1, &len, NULL);
    int64_t *p = ox_alloc(I, out[0]);
    for (int64_t i = s; i < e; i++) {
        p[i - s] = x->dims[i];
        if (x->sym[i]) { /* the element stands for the symbol; data holds its bound */
            if (!out[0]->esym)
                out[0]->esym = arena_alloc(I->a, sizeof(char *) * (size_t)(len + 1));
            out[0]->esym[i - s] = x->sym[i];
        }
    }
    return 0;
}

static int op_constant_of_shape(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    int64_t shape[IR_MAX_RANK];
    const char *ssym[IR_MAX_RANK];
    int r;
    if (!in[0] || !ox_const_ints_sym(I, in[0], "the shape", shape, IR_MAX_RANK, &r, ssym))
        return 1;
    for (int i = 0; i < r; i++)
        if (shape[i] < 0)
            return ERR("the shape has a negative dimension %lld", (long long)shape[i]);
    const Onnx__AttributeProto *va = ox_attr(n, "value");
    int dt = DT_F32;
    double val = 0;
    if (va && va->t) {
        dt = ox_onnx_dtype(va->t->data_type);
        if (dt < 0)
            return ERR("the value has dtype %s, which kiln does not support", ox_onnx_dtype_name(va->t->data_type));
        OVal tmp = {0};
        /* one element, in any of the TensorProto's fields */
        const Onnx__TensorProto *t = va->t;
        if (t->has_raw_data && t->raw_data.len >= (size_t)dtype_traits[dt].size)
            val = dtype_load((DType)dt, t->raw_data.data, 0);
        else if (t->n_float_data)
            val = t->float_data[0];
        else if (t->n_double_data)
            val = t->double_data[0];
        else if (t->n_int64_data)
            val = (double)t->int64_data[0];
        else if (t->n_int32_data)
            val = t->int32_data[0];
        else if (t->n_uint64_data) /* UINT32 and UINT64 */
            val = (double)t->uint64_data[0];
        (void)tmp;
    }
    int symbolic = 0, empty = 0;
    for (int i = 0; i < r; i++)
        symbolic |= ssym[i] != NULL, empty |= shape[i] == 0;
    if (symbolic && empty)
        return ERR("an empty result with a symbolic size is not supported");
    if (symbolic) {
        /* a size known at run time only: one element, expanded */
        OVal *one = arena_alloc(I->a, sizeof *one);
        one->name = arena_printf(I->a, "%s_value", out[0]->name);
        int64_t ones[IR_MAX_RANK];
        for (int i = 0; i < r; i++)
            ones[i] = 1;
        ox_type(one, dt, r, ones, NULL);
        dtype_store((DType)dt, ox_alloc(I, one), 0, val);
        ox_type(out[0], dt, r, shape, ssym);
        ox_assign(I, out[0], "%s.expand(%s)", T(one), ox_dims_text(I, r, shape, ssym));
        return 0;
    }
    ox_type(out[0], dt, r, shape, NULL);
    ox_alloc(I, out[0]);
    for (int64_t k = 0; k < ox_numel(out[0]); k++)
        dtype_store((DType)dt, out[0]->data, (size_t)k, val);
    return 0;
}

static int op_range(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (nin != 3 || !ox_const(I, in[0], "start") || !ox_const(I, in[1], "limit") || !ox_const(I, in[2], "delta"))
        return 1;
    int dt = in[0]->dt;
    if (dt < 0 || ox_numel(in[0]) != 1 || ox_numel(in[1]) != 1 || ox_numel(in[2]) != 1)
        return ERR("start, limit and delta must be scalars");
    if (ox_has_sym(in[0]) || ox_has_sym(in[2]))
        return ERR("a symbolic start or delta is not supported");
    if (ox_has_sym(in[1])) { /* Range(0, T, 1): the positions of a symbolic size */
        if (ox_int(in[0], 0) != 0 || ox_int(in[2], 0) != 1 || (dt != DT_I64 && dt != DT_I32))
            return ERR("with a symbolic limit only Range(0, %s, 1) of integers is supported", in[1]->esym[0]);
        int64_t bound = ox_int(in[1], 0);
        ox_type(out[0], dt, 1, &bound, &in[1]->esym[0]);
        ox_assign(I, out[0], "arange(%s, dtype=%s)", in[1]->esym[0], dtype_traits[dt].name);
        return 0;
    }
    double s = ox_f(in[0], 0), l = ox_f(in[1], 0), d = ox_f(in[2], 0);
    if (d == 0)
        return ERR("delta is 0");
    double c = ceil((l - s) / d);
    int64_t cnt = c > 0 ? (int64_t)c : 0;
    ox_type(out[0], dt, 1, &cnt, NULL);
    ox_alloc(I, out[0]);
    for (int64_t k = 0; k < cnt; k++) {
        if (dt == DT_I64)
            ((int64_t *)out[0]->data)[k] = ox_int(in[0], 0) + k * ox_int(in[2], 0);
        else
            dtype_store((DType)dt, out[0]->data, (size_t)k, s + (double)k * d);
    }
    return 0;
}

static int op_constant(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    const Onnx__AttributeProto *a;
    if ((a = ox_attr(n, "value")) && a->t) {
        /* reuse the reader of initializers through a TensorProto: copy it in */
        OVal *v = out[0];
        int dt = ox_onnx_dtype(a->t->data_type);
        if (dt < 0)
            return ERR("the value has dtype %s, which kiln does not support", ox_onnx_dtype_name(a->t->data_type));
        return ox_tensor_data(I, a->t, v, "the value");
    }
    int64_t one = 1;
    if ((a = ox_attr(n, "value_float"))) {
        ox_type(out[0], DT_F32, 0, NULL, NULL);
        *(float *)ox_alloc(I, out[0]) = a->f;
    } else if ((a = ox_attr(n, "value_int"))) {
        ox_type(out[0], DT_I64, 0, NULL, NULL);
        *(int64_t *)ox_alloc(I, out[0]) = a->i;
    } else if ((a = ox_attr(n, "value_floats"))) {
        one = (int64_t)a->n_floats;
        ox_type(out[0], DT_F32, 1, &one, NULL);
        float *p = ox_alloc(I, out[0]);
        for (size_t i = 0; i < a->n_floats; i++)
            p[i] = a->floats[i];
    } else if ((a = ox_attr(n, "value_ints"))) {
        one = (int64_t)a->n_ints;
        ox_type(out[0], DT_I64, 1, &one, NULL);
        int64_t *p = ox_alloc(I, out[0]);
        for (size_t i = 0; i < a->n_ints; i++)
            p[i] = a->ints[i];
    } else
        return ERR("only tensor, float and int values are supported (not sparse or string values)");
    return 0;
}

/* ---------------------------------------------------------------- the table */

const OxOp ox_shape_ops[] = {
    {"Concat", op_concat},
    {"Constant", op_constant},
    {"ConstantOfShape", op_constant_of_shape},
    {"Expand", op_expand},
    {"Flatten", op_flatten},
    {"Gather", op_gather},
    {"Identity", op_identity},
    {"Range", op_range},
    {"Reshape", op_reshape},
    {"Shape", op_shape},
    {"Slice", op_slice},
    {"Split", op_split},
    {"Squeeze", op_squeeze},
    {"Transpose", op_transpose},
    {"Unsqueeze", op_squeeze},
    {NULL, NULL},
};
