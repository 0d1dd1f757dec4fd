/* onnx_ops.c: how each ONNX op is written in the model language or folded at import time, what the
 * op handlers share, and the lookup of an op's handler.
 *
 * A handler gets its node's input values (NULL for an optional input left out) and the output values
 * to fill: it infers their dtype and shape (the model text declares only inputs and outputs, but an
 * op such as Reshape or Flatten needs its input's shape to be written at all), then either
 *   - folds: every input it reads is known at import time (initializers, Constant, Shape of a static
 *     shape, and what shape subgraphs compute from those), so the output is data, written to the
 *     weights file only if a run-time op reads it; or
 *   - writes the lines of the model language that compute it (ox_assign).
 * Operands that ONNX allows at run time but that decide a shape (Reshape's shape, Slice's starts,
 * Unsqueeze's axes ...) must fold: kiln's shapes are fixed at compile time, up to symbolic sizes.
 *
 * Folding computes in double (int64 through int64_t where exactness matters: shapes and indices);
 * it is meant for shape arithmetic and small constants, not for whole layers.
 *
 * Where the language lacks an op, the handler writes it from what the language has, exactly:
 * Trilu is a where() over a mask of aranges, CumSum a matmul with a triangular 0/1 matrix, Slice with
 * a step a gather with constant indices, Conv's asymmetric padding a concat with zeros.
 *
 * The handlers live by concept, each file with the table of its ops: onnx_math.c (elementwise,
 * reductions, matrix products, Einsum), onnx_shape.c (movement and the shape sources), onnx_nn.c
 * (Softmax, LayerNormalization, Conv), onnx_quant.c (the quantization ops). This file holds what
 * they share: shapes and broadcasting, constant operands, axes, and symbolic sizes as linear
 * expressions.
 */
#include "frontend/onnx.h"

#include <stdlib.h>
#include <string.h>

#define T(v) ox_tensor(I, (v))
#define ERR(...) ox_err(I, __VA_ARGS__)

/* ---------------------------------------------------------------- helpers */

int ox_all_const(OVal **in, int nin)
{
    for (int i = 0; i < nin; i++)
        if (in[i] && !in[i]->is_const)
            return 0;
    return 1;
}

int ox_norm_axis(Imp *I, int64_t axis, int rank, int64_t *out)
{
    if (axis < -rank || axis >= (rank ? rank : 1)) {
        ox_err(I, "axis %lld is out of range for rank %d", (long long)axis, rank);
        return 0;
    }
    *out = axis < 0 ? axis + rank : axis;
    return 1;
}

int ox_need_static(Imp *I, const OVal *v, const char *what)
{
    for (int i = 0; i < v->rank; i++)
        if (v->sym[i]) {
            ox_err(I, "%s needs the static shape of '%s', but its dimension %d is the symbolic size %s", what, v->name, i,
                   v->sym[i]);
            return 0;
        }
    return 1;
}

int ox_need_dtype(Imp *I, const OVal *v)
{
    if (v->dt < 0)
        return ERR("input '%s' has dtype %s, which kiln does not support", v->name, ox_onnx_dtype_name(v->odt)), 0;
    return 1;
}

/* A list of dims as model text: "2, T, 64". */
const char *ox_dims_text(Imp *I, int rank, const int64_t *dims, const char *const *sym)
{
    char buf[512] = "";
    size_t n = 0;
    for (int i = 0; i < rank && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "",
                              sym && sym[i] ? sym[i] : arena_printf(I->a, "%lld", (long long)dims[i]));
    return arena_strdup(I->a, buf);
}

/* NumPy broadcasting of a and b's shapes into out. */
int ox_broadcast(Imp *I, const OVal *a, const OVal *b, int *rank, int64_t *dims, const char **sym)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        const char *sa = ia >= 0 ? a->sym[ia] : NULL, *sb = ib >= 0 ? b->sym[ib] : NULL;
        if (sa || sb) {
            if (sa && sb && strcmp(sa, sb))
                return ERR("shapes %s and %s do not ox_broadcast", ox_type_str(I, a), ox_type_str(I, b)), 0;
            if ((sa && !sb && db != 1) || (sb && !sa && da != 1))
                return ERR("shapes %s and %s do not ox_broadcast", ox_type_str(I, a), ox_type_str(I, b)), 0;
            sym[i] = sa ? sa : sb;
            dims[i] = sa ? da : db;
            continue;
        }
        sym[i] = NULL;
        if (da != db && da != 1 && db != 1)
            return ERR("shapes %s and %s do not ox_broadcast", ox_type_str(I, a), ox_type_str(I, b)), 0;
        dims[i] = da == 1 ? db : da;
    }
    *rank = r;
    return 1;
}

/* The flat index into v of the output element at multi-index idx (rank r), broadcasting. */
int64_t ox_bcast_offset(const OVal *v, int r, const int64_t *idx)
{
    int64_t off = 0;
    for (int i = 0; i < v->rank; i++) {
        int64_t k = idx[i + r - v->rank];
        off = off * v->dims[i] + (v->dims[i] == 1 ? 0 : k);
    }
    return off;
}

void ox_next_index(int r, const int64_t *dims, int64_t *idx)
{
    for (int i = r - 1; i >= 0; i--) {
        if (++idx[i] < dims[i])
            return;
        idx[i] = 0;
    }
}

/* A copy of in's data and type into out (Identity, Reshape and the like on constants). */
void ox_fold_same_data(Imp *I, OVal *in, OVal *out, int rank, const int64_t *dims)
{
    ox_type(out, in->dt, rank, dims, NULL);
    out->odt = in->odt;
    out->data = in->data;
    out->esym = in->esym;
    out->is_const = 1;
    (void)I;
}

/* Symbolic elements follow data moved by a fold: element dst of out is element src of in. */
void ox_move_sym(Imp *I, OVal *out, const OVal *in, int64_t dst, int64_t src, int64_t n)
{
    if (!in->esym)
        return;
    if (!out->esym)
        out->esym = arena_alloc(I->a, sizeof(char *) * (size_t)(ox_numel(out) + 1));
    for (int64_t k = 0; k < n; k++)
        out->esym[dst + k] = in->esym[src + k];
}

int ox_has_sym(const OVal *v)
{
    for (int64_t i = 0; v->esym && i < ox_numel(v); i++)
        if (v->esym[i])
            return 1;
    return 0;
}

/* Ints of a constant 1-D (or scalar) operand; syms (when not NULL) receives the symbolic sizes some
 * may stand for, else a symbolic element is an error. */
int ox_const_ints_sym(Imp *I, OVal *v, const char *what, int64_t *out, int max, int *n, const char **syms)
{
    if (!ox_const(I, v, what))
        return 0;
    if (ox_has_sym(v) && !syms)
        return ERR("%s ('%s') depends on a symbolic size, which this op does not take", what, v->name), 0;
    for (int i = 0; syms && i < max; i++)
        syms[i] = v->esym && i < ox_numel(v) ? v->esym[i] : NULL;
    if (v->rank > 1 || ox_numel(v) > max || (v->dt >= 0 && !dtype_traits[v->dt].is_int))
        return ERR("%s ('%s') must be a list of at most %d integers, got %s", what, v->name, max, ox_type_str(I, v)), 0;
    *n = (int)ox_numel(v);
    for (int i = 0; i < *n; i++)
        out[i] = ox_int(v, i);
    return 1;
}

int ox_const_ints(Imp *I, OVal *v, const char *what, int64_t *out, int max, int *n)
{
    return ox_const_ints_sym(I, v, what, out, max, n, NULL);
}

/* ---- symbolic sizes as linear expressions (onnx.h's OxLin) */

/* l += c * name; 0 when l is full or a coefficient overflows */
static int lin_term(OxLin *l, const char *name, int64_t c)
{
    int i = 0;
    while (i < l->n && strcmp(l->name[i], name) < 0)
        i++;
    if (i < l->n && !strcmp(l->name[i], name)) {
        if (__builtin_add_overflow(l->c[i], c, &l->c[i]))
            return 0;
        if (!l->c[i]) {
            for (int j = i; j + 1 < l->n; j++)
                l->name[j] = l->name[j + 1], l->c[j] = l->c[j + 1];
            l->n--;
        }
        return 1;
    }
    if (c == 0)
        return 1;
    if (l->n == OX_LIN_TERMS)
        return 0;
    for (int j = l->n; j > i; j--)
        l->name[j] = l->name[j - 1], l->c[j] = l->c[j - 1];
    l->name[i] = name, l->c[i] = c, l->n++;
    return 1;
}

/* l += m * x; 0 when it does not fit (a hostile file's numbers overflow) */
int ox_lin_add(OxLin *l, const OxLin *x, int64_t m)
{
    int64_t t;
    for (int i = 0; i < x->n; i++)
        if (__builtin_mul_overflow(m, x->c[i], &t) || !lin_term(l, x->name[i], t))
            return 0;
    return !__builtin_mul_overflow(m, x->k, &t) && !__builtin_add_overflow(l->k, t, &l->k);
}

/* The size s (ox_lin_text's form, or one symbol's name; NULL: the number v). */
int ox_lin_of(Imp *I, const char *s, int64_t v, OxLin *l)
{
    *l = (OxLin){0};
    if (!s) {
        l->k = v;
        return 1;
    }
    const char *p = s;
    int64_t sign = 1;
    if (*p == '-')
        sign = -1, p++;
    for (;;) {
        int64_t c = 1;
        if (*p >= '0' && *p <= '9') {
            char *e;
            c = strtoll(p, &e, 10); /* ox_lin_text's numbers: no overflow */
            p = e;
            if (strncmp(p, " * ", 3)) { /* the constant */
                l->k += sign * c;
                goto sep;
            }
            p += 3;
        }
        size_t len = strcspn(p, " ");
        if (!len || !lin_term(l, arena_strndup(I->a, p, len), sign * c))
            return 0;
        p += len;
    sep:
        if (!*p)
            return 1;
        if (strncmp(p, " + ", 3) && strncmp(p, " - ", 3))
            return 0;
        sign = p[1] == '-' ? -1 : 1;
        p += 3;
    }
}

/* Element k of out (i64) = a op b for op Add, Sub or Mul, where a stands for the size sa when sa is
 * not NULL (va its bound), b likewise: a size when the result uses a symbol (its bound computed from
 * the operands' as the value), else the number. 1 with an error when it is not linear. */
int ox_sym_arith(Imp *I, const char *op, const char *sa, int64_t va, const char *sb, int64_t vb, OVal *out,
                 int64_t k)
{
    OxLin la, lb, r = {0};
    int ok = ox_lin_of(I, sa, va, &la) && ox_lin_of(I, sb, vb, &lb);
    if (op[0] == 'A')
        ok = ok && ox_lin_add(&r, &la, 1) && ox_lin_add(&r, &lb, 1);
    else if (op[0] == 'S')
        ok = ok && ox_lin_add(&r, &la, 1) && ox_lin_add(&r, &lb, -1);
    else
        ok = ok && (!la.n || !lb.n) && ox_lin_add(&r, la.n ? &la : &lb, la.n ? lb.k : la.k);
    if (!ok)
        return ERR("%s of %s and %s is not a size kiln can represent (linear in the symbols)", op, sa ? sa : "a number",
                   sb ? sb : "a number");
    const char *t = ox_lin_text(I, &r);
    /* the bound: wrapping arithmetic, as a hostile file's numbers may overflow (then the lowering's
     * own bounds, from the text, are what holds) */
    uint64_t ua = (uint64_t)va, ub = (uint64_t)vb;
    ((int64_t *)out->data)[k] = !t ? r.k : (int64_t)(op[0] == 'A' ? ua + ub : op[0] == 'S' ? ua - ub : ua * ub);
    if (t && !out->esym)
        out->esym = arena_alloc(I->a, sizeof(char *) * (size_t)(ox_numel(out) + 1));
    if (out->esym)
        out->esym[k] = t;
    return 0;
}

/* The model text of l; NULL when l is a constant. */
const char *ox_lin_text(Imp *I, const OxLin *l)
{
    if (!l->n)
        return NULL;
    char *t = arena_strdup(I->a, "");
    for (int i = 0; i < l->n; i++) {
        /* magnitudes unsigned: -INT64_MIN is no int64_t */
        uint64_t c = l->c[i] < 0 ? -(uint64_t)l->c[i] : (uint64_t)l->c[i];
        const char *sep = l->c[i] < 0 ? (i ? " - " : "-") : i ? " + " : "";
        t = c == 1 ? arena_printf(I->a, "%s%s%s", t, sep, l->name[i])
                   : arena_printf(I->a, "%s%s%llu * %s", t, sep, (unsigned long long)c, l->name[i]);
    }
    if (l->k)
        t = arena_printf(I->a, "%s %c %llu", t, l->k < 0 ? '-' : '+',
                         (unsigned long long)(l->k < 0 ? -(uint64_t)l->k : (uint64_t)l->k));
    return t;
}

/* axes from the attribute (older opsets) or from input k (newer), *have = 0 when absent */
int ox_get_axes(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, int k, int64_t *axes, int *naxes, int *have)
{
    const Onnx__AttributeProto *a = ox_attr(n, "axes");
    *have = 0;
    *naxes = 0;
    if (a) {
        if (a->n_ints > IR_MAX_RANK)
            return ERR("too many axes"), 0;
        for (size_t i = 0; i < a->n_ints; i++)
            axes[i] = a->ints[i];
        *naxes = (int)a->n_ints;
        *have = 1;
        return 1;
    }
    if (k < nin && in[k]) {
        *have = 1;
        return ox_const_ints(I, in[k], "the axes", axes, IR_MAX_RANK, naxes);
    }
    return 1;
}

void ox_copy_type(OVal *out, const OVal *in)
{
    ox_type(out, in->dt, in->rank, in->dims, in->sym);
    out->odt = in->odt;
}

/* ---------------------------------------------------------------- the table */

OxHandler ox_handler(const char *op)
{
    static const OxOp *const tables[] = {ox_math_ops, ox_shape_ops, ox_nn_ops, ox_quant_ops};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const OxOp *o = tables[t]; o->name; o++)
            if (!strcmp(o->name, op))
                return o->fn;
    return NULL;
}

/* The opset versions at which ONNX changed the definition of each op kiln imports (its since_version
 * history, as ONNX 1.12's operator schemas list it, up to opset 17). An opset selects the newest
 * definition at or below it. The handlers implement the definitions that opsets 6 to 17 select; a
 * model of an older opset is read when every op it uses has the same definition there as at opset 6
 * (Not, MatMul, Softmax ... unchanged since 1), and rejected naming the op otherwise (Add-1 had
 * `broadcast` and `consumed_inputs`, Reshape-1 took its shape as an attribute). */
static const struct {
    const char *op;
    int since[8]; /* ascending, ended by 0 */
} op_versions[] = {
    {"Abs", {1, 6, 13}}, {"Add", {1, 6, 7, 13, 14}}, {"And", {1, 7}}, {"Cast", {1, 6, 9, 13}},
    {"Clip", {1, 6, 11, 12, 13}}, {"Concat", {1, 4, 11, 13}}, {"Constant", {1, 9, 11, 12, 13}},
    {"ConstantOfShape", {9}}, {"Conv", {1, 11}}, {"CumSum", {11, 14}}, {"DequantizeLinear", {10, 13}},
    {"Div", {1, 6, 7, 13, 14}}, {"DynamicQuantizeLinear", {11}}, {"Einsum", {12}}, {"Equal", {1, 7, 11, 13}},
    {"Erf", {9, 13}}, {"Exp", {1, 6, 13}}, {"Expand", {8, 13}}, {"Flatten", {1, 9, 11, 13}},
    {"Gather", {1, 11, 13}}, {"Gemm", {1, 6, 7, 9, 11, 13}}, {"Greater", {1, 7, 9, 13}},
    {"GreaterOrEqual", {12, 16}}, {"Identity", {1, 13, 14, 16}}, {"LayerNormalization", {17}},
    {"Less", {1, 7, 9, 13}}, {"LessOrEqual", {12, 16}}, {"Log", {1, 6, 13}}, {"MatMul", {1, 9, 13}},
    {"MatMulInteger", {10}}, {"Max", {1, 6, 8, 12, 13}}, {"Min", {1, 6, 8, 12, 13}}, {"Mul", {1, 6, 7, 13, 14}},
    {"Neg", {1, 6, 13}}, {"Not", {1}}, {"Or", {1, 7}}, {"Pow", {1, 7, 12, 13, 15}}, {"QLinearMatMul", {10}},
    {"QuantizeLinear", {10, 13}}, {"Range", {11}}, {"Reciprocal", {1, 6, 13}}, {"ReduceMax", {1, 11, 12, 13}},
    {"ReduceMean", {1, 11, 13}}, {"ReduceSum", {1, 11, 13}}, {"Relu", {1, 6, 13, 14}}, {"Reshape", {1, 5, 13, 14}},
    {"Shape", {1, 13, 15}}, {"Sigmoid", {1, 6, 13}}, {"Slice", {1, 10, 11, 13}}, {"Softmax", {1, 11, 13}},
    {"Split", {1, 2, 11, 13}}, {"Sqrt", {1, 6, 13}}, {"Squeeze", {1, 11, 13}}, {"Sub", {1, 6, 7, 13, 14}},
    {"Tanh", {1, 6, 13}}, {"Transpose", {1, 13}}, {"Trilu", {14}}, {"Unsqueeze", {1, 11, 13}}, {"Where", {9, 16}},
    {"Xor", {1, 7}},
};

int ox_op_version(const char *op, int opset)
{
    for (size_t i = 0; i < sizeof op_versions / sizeof op_versions[0]; i++)
        if (!strcmp(op_versions[i].op, op)) {
            int v = 0;
            for (int k = 0; k < 8 && op_versions[i].since[k] && op_versions[i].since[k] <= opset; k++)
                v = op_versions[i].since[k];
            return v;
        }
    return -1;
}

int onnx_op_supported(const char *op)
{
    return ox_handler(op) != NULL;
}
