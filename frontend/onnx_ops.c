/* onnx_ops.c: each ONNX op, written in the model language or folded at import time.
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
 */
#include "frontend/onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T(v) ox_tensor(I, (v))
#define ERR(...) ox_err(I, __VA_ARGS__)

/* ---------------------------------------------------------------- helpers */

static int all_const(OVal **in, int nin)
{
    for (int i = 0; i < nin; i++)
        if (in[i] && !in[i]->is_const)
            return 0;
    return 1;
}

static int norm_axis(Imp *I, int64_t axis, int rank, int64_t *out)
{
    if (axis < -rank || axis >= (rank ? rank : 1)) {
        ox_err(I, "axis %lld is out of range for rank %d", (long long)axis, rank);
        return 0;
    }
    *out = axis < 0 ? axis + rank : axis;
    return 1;
}

static int need_static(Imp *I, const OVal *v, const char *what)
{
    for (int i = 0; i < v->rank; i++)
        if (v->sym[i]) {
            ox_err(I, "%s needs the static shape of '%s', but its dimension %d is the symbolic size %s", what, v->name, i,
                   v->sym[i]);
            return 0;
        }
    return 1;
}

static int need_dtype(Imp *I, const OVal *v)
{
    if (v->dt < 0)
        return ERR("input '%s' has dtype %s, which kiln does not support", v->name, ox_onnx_dtype_name(v->odt)), 0;
    return 1;
}

/* A list of dims as model text: "2, T, 64". */
static const char *dims_text(Imp *I, int rank, const int64_t *dims, const char *const *sym)
{
    char buf[512] = "";
    size_t n = 0;
    for (int i = 0; i < rank && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "",
                              sym && sym[i] ? sym[i] : arena_printf(I->a, "%lld", (long long)dims[i]));
    return arena_strdup(I->a, buf);
}

/* NumPy broadcasting of a and b's shapes into out. */
static int broadcast(Imp *I, const OVal *a, const OVal *b, int *rank, int64_t *dims, const char **sym)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        const char *sa = ia >= 0 ? a->sym[ia] : NULL, *sb = ib >= 0 ? b->sym[ib] : NULL;
        if (sa || sb) {
            if (sa && sb && strcmp(sa, sb))
                return ERR("shapes %s and %s do not broadcast", ox_type_str(I, a), ox_type_str(I, b)), 0;
            if ((sa && !sb && db != 1) || (sb && !sa && da != 1))
                return ERR("shapes %s and %s do not broadcast", ox_type_str(I, a), ox_type_str(I, b)), 0;
            sym[i] = sa ? sa : sb;
            dims[i] = sa ? da : db;
            continue;
        }
        sym[i] = NULL;
        if (da != db && da != 1 && db != 1)
            return ERR("shapes %s and %s do not broadcast", ox_type_str(I, a), ox_type_str(I, b)), 0;
        dims[i] = da == 1 ? db : da;
    }
    *rank = r;
    return 1;
}

/* The flat index into v of the output element at multi-index idx (rank r), broadcasting. */
static int64_t bcast_offset(const OVal *v, int r, const int64_t *idx)
{
    int64_t off = 0;
    for (int i = 0; i < v->rank; i++) {
        int64_t k = idx[i + r - v->rank];
        off = off * v->dims[i] + (v->dims[i] == 1 ? 0 : k);
    }
    return off;
}

static void next_index(int r, const int64_t *dims, int64_t *idx)
{
    for (int i = r - 1; i >= 0; i--) {
        if (++idx[i] < dims[i])
            return;
        idx[i] = 0;
    }
}

/* A copy of in's data and type into out (Identity, Reshape and the like on constants). */
static void fold_same_data(Imp *I, OVal *in, OVal *out, int rank, const int64_t *dims)
{
    ox_type(out, in->dt, rank, dims, NULL);
    out->odt = in->odt;
    out->data = in->data;
    out->esym = in->esym;
    out->is_const = 1;
    (void)I;
}

/* Symbolic elements follow data moved by a fold: element dst of out is element src of in. */
static void move_sym(Imp *I, OVal *out, const OVal *in, int64_t dst, int64_t src, int64_t n)
{
    if (!in->esym)
        return;
    if (!out->esym)
        out->esym = arena_alloc(I->a, sizeof(char *) * (size_t)(ox_numel(out) + 1));
    for (int64_t k = 0; k < n; k++)
        out->esym[dst + k] = in->esym[src + k];
}

static int has_sym(const OVal *v)
{
    for (int64_t i = 0; v->esym && i < ox_numel(v); i++)
        if (v->esym[i])
            return 1;
    return 0;
}

/* Ints of a constant 1-D (or scalar) operand; syms (when not NULL) receives the symbolic sizes some
 * may stand for, else a symbolic element is an error. */
static int const_ints_sym(Imp *I, OVal *v, const char *what, int64_t *out, int max, int *n, const char **syms)
{
    if (!ox_const(I, v, what))
        return 0;
    if (has_sym(v) && !syms)
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

static int const_ints(Imp *I, OVal *v, const char *what, int64_t *out, int max, int *n)
{
    return const_ints_sym(I, v, what, out, max, n, NULL);
}

/* ---- symbolic sizes as linear expressions
 *
 * A size the importer computes from symbolic ones (Concat of a cache and new tokens, Sub of two Shape
 * elements) is written into the model text as the language reads it, "P + T", "P + T - 1", "2 * T",
 * in one form (names in order, then the constant), so that equal sizes are equal strings wherever the
 * importer compares them. */
enum { LIN_TERMS = 8 };

typedef struct Lin {
    int n;
    const char *name[LIN_TERMS]; /* (n) in strcmp order */
    int64_t c[LIN_TERMS];        /* (n) never 0 */
    int64_t k;                   /* the constant */
} Lin;

/* l += c * name; 0 when l is full or a coefficient overflows */
static int lin_term(Lin *l, const char *name, int64_t c)
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
    if (l->n == LIN_TERMS)
        return 0;
    for (int j = l->n; j > i; j--)
        l->name[j] = l->name[j - 1], l->c[j] = l->c[j - 1];
    l->name[i] = name, l->c[i] = c, l->n++;
    return 1;
}

/* l += m * x; 0 when it does not fit (a hostile file's numbers overflow) */
static int lin_add(Lin *l, const Lin *x, int64_t m)
{
    int64_t t;
    for (int i = 0; i < x->n; i++)
        if (__builtin_mul_overflow(m, x->c[i], &t) || !lin_term(l, x->name[i], t))
            return 0;
    return !__builtin_mul_overflow(m, x->k, &t) && !__builtin_add_overflow(l->k, t, &l->k);
}

/* The size s (lin_text's form, or one symbol's name; NULL: the number v). */
static int lin_of(Imp *I, const char *s, int64_t v, Lin *l)
{
    *l = (Lin){0};
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
            c = strtoll(p, &e, 10); /* lin_text's numbers: no overflow */
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
static const char *lin_text(Imp *I, const Lin *l);
static int sym_arith(Imp *I, const char *op, const char *sa, int64_t va, const char *sb, int64_t vb, OVal *out,
                     int64_t k)
{
    Lin la, lb, r = {0};
    int ok = lin_of(I, sa, va, &la) && lin_of(I, sb, vb, &lb);
    if (op[0] == 'A')
        ok = ok && lin_add(&r, &la, 1) && lin_add(&r, &lb, 1);
    else if (op[0] == 'S')
        ok = ok && lin_add(&r, &la, 1) && lin_add(&r, &lb, -1);
    else
        ok = ok && (!la.n || !lb.n) && lin_add(&r, la.n ? &la : &lb, la.n ? lb.k : la.k);
    if (!ok)
        return ERR("%s of %s and %s is not a size kiln can represent (linear in the symbols)", op, sa ? sa : "a number",
                   sb ? sb : "a number");
    const char *t = lin_text(I, &r);
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
static const char *lin_text(Imp *I, const Lin *l)
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
static int get_axes(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, int k, int64_t *axes, int *naxes, int *have)
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
        return const_ints(I, in[k], "the axes", axes, IR_MAX_RANK, naxes);
    }
    return 1;
}

static void copy_type(OVal *out, const OVal *in)
{
    ox_type(out, in->dt, in->rank, in->dims, in->sym);
    out->odt = in->odt;
}

/* ---------------------------------------------------------------- elementwise */

/* An operand of an elementwise op whose result has rank r: a constant of one element is written as a
 * number (it becomes a constant of the other operand's dtype, which ONNX requires to be its own), so
 * `x / 8.0` reads as it would be written, and passes see a constant scale, not a weight. */
static const char *operand(Imp *I, OVal *v, int r)
{
    if (v->is_const && ox_numel(v) == 1 && v->rank <= r && v->dt >= 0 && v->dt != DT_BOOL && v->dt != DT_I64)
        return ox_num(I, ox_f(v, 0), v->dt);
    return T(v);
}

static double fold1(const char *op, double x)
{
    if (!strcmp(op, "Neg")) return -x;
    if (!strcmp(op, "Abs")) return fabs(x);
    if (!strcmp(op, "Exp")) return exp(x);
    if (!strcmp(op, "Log")) return log(x);
    if (!strcmp(op, "Sqrt")) return sqrt(x);
    if (!strcmp(op, "Tanh")) return tanh(x);
    if (!strcmp(op, "Erf")) return erf(x);
    if (!strcmp(op, "Sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(op, "Relu")) return x > 0 ? x : 0;
    if (!strcmp(op, "Reciprocal")) return 1 / x;
    return NAN;
}

static int op_unary(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    static const struct { const char *onnx, *kiln; int float_only; } map[] = {
        {"Exp", "exp", 1},   {"Log", "log", 1},   {"Sqrt", "sqrt", 1},       {"Tanh", "tanh", 1},
        {"Erf", "erf", 1},   {"Sigmoid", "sigmoid", 1}, {"Relu", "relu", 0}, {"Neg", "neg", 0},
        {"Abs", "abs", 0},   {"Reciprocal", NULL, 1},
    };
    OVal *x = in[0];
    if (nin < 1 || !x || !need_dtype(I, x))
        return ERR("needs one input");
    int k = 0;
    while (strcmp(map[k].onnx, n->op_type))
        k++;
    if (map[k].float_only && !dtype_traits[x->dt].is_float)
        return ERR("input '%s' is %s; this op takes floats", x->name, ox_type_str(I, x));
    copy_type(out[0], x);
    if (x->is_const) {
        ox_alloc(I, out[0]);
        for (int64_t i = 0; i < ox_numel(x); i++)
            dtype_store((DType)x->dt, out[0]->data, (size_t)i, fold1(n->op_type, ox_f(x, i)));
        return 0;
    }
    if (!map[k].kiln)
        ox_assign(I, out[0], "1.0 / %s", T(x));
    else
        ox_assign(I, out[0], "%s(%s)", map[k].kiln, T(x));
    return 0;
}

static double fold2(const char *op, double a, double b, int is_int)
{
    if (!strcmp(op, "Add")) return a + b;
    if (!strcmp(op, "Sub")) return a - b;
    if (!strcmp(op, "Mul")) return a * b;
    if (!strcmp(op, "Div")) return is_int ? (b != 0 ? trunc(a / b) : 0) : a / b;
    if (!strcmp(op, "Pow")) return pow(a, b);
    if (!strcmp(op, "Max")) return a > b || isnan(a) ? a : b;
    if (!strcmp(op, "Min")) return a < b || isnan(a) ? a : b;
    if (!strcmp(op, "Equal")) return a == b;
    if (!strcmp(op, "Less")) return a < b;
    if (!strcmp(op, "Greater")) return a > b;
    if (!strcmp(op, "LessOrEqual")) return a <= b;
    if (!strcmp(op, "GreaterOrEqual")) return a >= b;
    if (!strcmp(op, "And")) return a != 0 && b != 0;
    if (!strcmp(op, "Or")) return a != 0 || b != 0;
    if (!strcmp(op, "Xor")) return (a != 0) != (b != 0);
    return NAN;
}

/* Add, Sub, Mul, Div, Pow, Equal, Less; Max and Min (variadic) */
static int op_binary(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    const char *op = n->op_type;
    int variadic = !strcmp(op, "Max") || !strcmp(op, "Min");
    if (nin < (variadic ? 1 : 2))
        return ERR("needs %s inputs", variadic ? "at least one" : "two");
    for (int i = 0; i < nin; i++)
        if (!in[i] || !need_dtype(I, in[i]))
            return 1;
    int is_pow = !strcmp(op, "Pow");
    int cmp = !strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater") || !strcmp(op, "LessOrEqual") ||
              !strcmp(op, "GreaterOrEqual");
    int logic = !strcmp(op, "And") || !strcmp(op, "Or") || !strcmp(op, "Xor");
    if (logic && in[0]->dt != DT_BOOL)
        return ERR("takes bool inputs, got %s", ox_type_str(I, in[0]));
    cmp |= logic;
    for (int i = 1; i < nin; i++)
        if (in[i]->dt != in[0]->dt && !is_pow)
            return ERR("inputs '%s' and '%s' have different dtypes (%s and %s)", in[0]->name, in[i]->name,
                       ox_type_str(I, in[0]), ox_type_str(I, in[i]));
    if (in[0]->dt == DT_BOOL && !cmp)
        return ERR("bool inputs are not supported by this op");
    if (is_pow && !dtype_traits[in[0]->dt].is_float && !dtype_traits[in[0]->dt].is_int)
        return ERR("Pow of %s is not supported", ox_type_str(I, in[0]));
    if (nin == 1) {
        copy_type(out[0], in[0]);
        if (in[0]->is_const)
            fold_same_data(I, in[0], out[0], in[0]->rank, in[0]->dims);
        else
            ox_assign(I, out[0], "%s", T(in[0]));
        return 0;
    }
    int rank = in[0]->rank;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    for (int i = 0; i < rank; i++)
        dims[i] = in[0]->dims[i], sym[i] = in[0]->sym[i];
    for (int i = 1; i < nin; i++) {
        OVal acc = {0};
        ox_type(&acc, in[0]->dt, rank, dims, sym);
        if (!broadcast(I, &acc, in[i], &rank, dims, sym))
            return 1;
    }
    int odt = cmp ? DT_BOOL : in[0]->dt;
    ox_type(out[0], odt, rank, dims, sym);
    int is_int = !dtype_traits[in[0]->dt].is_float;
    if (all_const(in, nin) && nin == 2) {
        /* sizes from Shape: + and - of them, * by a number (kl - ql for GPT-2's mask) */
        int lin = odt == DT_I64 && (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul"));
        if ((has_sym(in[0]) || has_sym(in[1])) && strcmp(op, "Equal") && !lin)
            return ERR("%s of a symbolic size (from Shape) is not supported", op);
        ox_alloc(I, out[0]);
        int64_t idx[IR_MAX_RANK] = {0}, cnt = ox_numel(out[0]);
        for (int64_t k = 0; k < cnt; k++, next_index(rank, dims, idx)) {
            int64_t ia = bcast_offset(in[0], rank, idx), ib = bcast_offset(in[1], rank, idx);
            const char *sa = in[0]->esym ? in[0]->esym[ia] : NULL, *sb = in[1]->esym ? in[1]->esym[ib] : NULL;
            if ((sa || sb) && lin) {
                if (sym_arith(I, op, sa, ox_int(in[0], ia), sb, ox_int(in[1], ib), out[0], k))
                    return 1;
                continue;
            }
            if (sa || sb) {
                /* a symbolic size is at least 1: never equal to a constant below 1 (the -1 of exporters'
                 * Expand shapes); equal to itself */
                if (sa && sb)
                    ((uint8_t *)out[0]->data)[k] = !strcmp(sa, sb);
                else if ((sa ? ox_int(in[1], ib) : ox_int(in[0], ia)) < 1)
                    ((uint8_t *)out[0]->data)[k] = 0;
                else
                    return ERR("comparing the symbolic size %s with %lld is not known at import", sa ? sa : sb,
                               (long long)(sa ? ox_int(in[1], ib) : ox_int(in[0], ia)));
                continue;
            }
            if (odt == DT_I64 && strcmp(op, "Pow")) {
                int64_t a = ox_int(in[0], ia), b = ox_int(in[1], ib), r = 0;
                if (!strcmp(op, "Add")) r = a + b;
                else if (!strcmp(op, "Sub")) r = a - b;
                else if (!strcmp(op, "Mul")) r = a * b;
                else if (!strcmp(op, "Div")) r = b ? a / b : 0;
                else if (!strcmp(op, "Max")) r = a > b ? a : b;
                else if (!strcmp(op, "Min")) r = a < b ? a : b;
                ((int64_t *)out[0]->data)[k] = r;
            } else
                dtype_store((DType)odt, out[0]->data, (size_t)k, fold2(op, ox_f(in[0], ia), ox_f(in[1], ib), is_int));
        }
        return 0;
    }
    /* numbers only where the other side is a tensor that decides the dtype */
    int lit = !is_pow && !(is_int && !strcmp(op, "Div"));
    const char *a = lit && !in[1]->is_const ? operand(I, in[0], rank) : T(in[0]);
    const char *b = lit && !in[0]->is_const ? operand(I, in[1], rank) : T(in[1]);
    const char *dtn = dtype_traits[in[0]->dt].name;
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul"))
        ox_assign(I, out[0], "%s %c %s", a, op[0] == 'A' ? '+' : op[0] == 'S' ? '-' : '*', b);
    else if (!strcmp(op, "Div"))
        /* the language's / is true division; ONNX's on integers truncates toward zero, which a cast
         * from f64 does (exact for every i32, and for i64 below 2^53) */
        ox_assign(I, out[0], is_int ? "cast(cast(%s, f64) / cast(%s, f64), %s)" : "%s / %s%s", a, b, is_int ? dtn : "");
    else if (is_pow)
        ox_assign(I, out[0], is_int ? "cast(pow(cast(%s, f64), cast(%s, f64)), %s)" : "cast(pow(%s, %s), %s)", a, b, dtn);
    else if (!strcmp(op, "Equal"))
        ox_assign(I, out[0], "%s == %s", a, b);
    else if (!strcmp(op, "Less"))
        ox_assign(I, out[0], "%s < %s", a, b);
    else if (!strcmp(op, "Greater"))
        ox_assign(I, out[0], "%s > %s", a, b);
    else if (!strcmp(op, "LessOrEqual"))
        ox_assign(I, out[0], "%s <= %s", a, b);
    else if (!strcmp(op, "GreaterOrEqual"))
        ox_assign(I, out[0], "%s >= %s", a, b);
    /* bools: the language has no logical operators, but bool arithmetic counts in i32 */
    else if (!strcmp(op, "And"))
        ox_assign(I, out[0], "%s * %s != 0", a, b);
    else if (!strcmp(op, "Or"))
        ox_assign(I, out[0], "%s + %s != 0", a, b);
    else if (!strcmp(op, "Xor"))
        ox_assign(I, out[0], "%s != %s", a, b);
    else {
        /* Max, Min: a chain */
        const char *fn = op[1] == 'a' ? "maximum" : "minimum";
        const char *acc = arena_printf(I->a, "%s(%s, %s)", fn, a, b);
        for (int i = 2; i < nin; i++)
            acc = arena_printf(I->a, "%s(%s, %s)", fn, acc, T(in[i]));
        ox_assign(I, out[0], "%s", acc);
    }
    return 0;
}

static int op_where(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (nin != 3 || !in[0] || !in[1] || !in[2] || !need_dtype(I, in[1]) || !need_dtype(I, in[2]))
        return ERR("needs three inputs");
    if (in[0]->dt != DT_BOOL || in[1]->dt != in[2]->dt)
        return ERR("takes a bool condition and two values of one dtype, got %s, %s, %s", ox_type_str(I, in[0]),
                   ox_type_str(I, in[1]), ox_type_str(I, in[2]));
    int r;
    int64_t d1[IR_MAX_RANK], d2[IR_MAX_RANK];
    const char *s1[IR_MAX_RANK], *s2[IR_MAX_RANK];
    if (!broadcast(I, in[0], in[1], &r, d1, s1))
        return 1;
    OVal tmp = {0};
    ox_type(&tmp, in[1]->dt, r, d1, s1);
    if (!broadcast(I, &tmp, in[2], &r, d2, s2))
        return 1;
    ox_type(out[0], in[1]->dt, r, d2, s2);
    if (all_const(in, 3)) {
        ox_alloc(I, out[0]);
        int64_t idx[IR_MAX_RANK] = {0}, cnt = ox_numel(out[0]);
        size_t es = (size_t)dtype_traits[in[1]->dt].size;
        for (int64_t k = 0; k < cnt; k++, next_index(r, d2, idx)) {
            int c = ox_f(in[0], bcast_offset(in[0], r, idx)) != 0;
            OVal *src = c ? in[1] : in[2];
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)src->data + bcast_offset(src, r, idx) * (int64_t)es, es);
            move_sym(I, out[0], src, k, bcast_offset(src, r, idx), 1);
        }
        return 0;
    }
    const char *a = in[2]->is_const ? T(in[1]) : operand(I, in[1], r), *b = in[1]->is_const ? T(in[2]) : operand(I, in[2], r);
    ox_assign(I, out[0], "where(%s, %s, %s)", T(in[0]), a, b);
    return 0;
}

static int op_not(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (!in[0] || in[0]->dt != DT_BOOL)
        return ERR("takes one bool input");
    copy_type(out[0], in[0]);
    if (in[0]->is_const) {
        uint8_t *p = ox_alloc(I, out[0]);
        for (int64_t i = 0; i < ox_numel(in[0]); i++)
            p[i] = !((uint8_t *)in[0]->data)[i];
        return 0;
    }
    ox_assign(I, out[0], "%s == 0", T(in[0]));
    return 0;
}

static int op_cast(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    int64_t to = ox_attr_i(n, "to", -1);
    if (!in[0] || !need_dtype(I, in[0]))
        return 1;
    int dt = ox_onnx_dtype((int)to);
    if (dt < 0)
        return ERR("casts to %s, which kiln does not support", ox_onnx_dtype_name((int)to));
    ox_type(out[0], dt, in[0]->rank, in[0]->dims, in[0]->sym);
    if (in[0]->is_const) {
        ox_alloc(I, out[0]);
        if (dtype_traits[dt].is_int)
            move_sym(I, out[0], in[0], 0, 0, ox_numel(in[0]));
        else if (has_sym(in[0]))
            return ERR("casting a symbolic size to %s is not supported", dtype_traits[dt].name);
        for (int64_t i = 0; i < ox_numel(in[0]); i++) {
            if (dt == DT_I64 && in[0]->dt == DT_I64)
                ((int64_t *)out[0]->data)[i] = ox_int(in[0], i);
            else
                dtype_store((DType)dt, out[0]->data, (size_t)i, ox_f(in[0], i));
        }
        return 0;
    }
    ox_assign(I, out[0], "cast(%s, %s)", T(in[0]), dtype_traits[dt].name);
    return 0;
}

static int op_clip(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !need_dtype(I, x))
        return 1;
    copy_type(out[0], x);
    const char *e = T(x);
    if (I->opset < 11) {
        const Onnx__AttributeProto *lo = ox_attr(n, "min"), *hi = ox_attr(n, "max");
        if (lo)
            e = arena_printf(I->a, "maximum(%s, %s)", e, ox_num(I, lo->f, x->dt));
        if (hi)
            e = arena_printf(I->a, "minimum(%s, %s)", e, ox_num(I, hi->f, x->dt));
    } else {
        for (int k = 1; k < 3 && k < nin; k++) {
            if (!in[k])
                continue;
            if (in[k]->dt != x->dt || in[k]->rank != 0)
                return ERR("the %s bound '%s' must be a scalar of the input's dtype, got %s", k == 1 ? "lower" : "upper",
                           in[k]->name, ox_type_str(I, in[k]));
            e = arena_printf(I->a, "%s(%s, %s)", k == 1 ? "maximum" : "minimum", e, T(in[k]));
        }
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- normalisations, reductions */

/* [prod(dims[:axis]), prod(dims[axis:])] as text */
static int op_softmax(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !need_dtype(I, x))
        return 1;
    if (!dtype_traits[x->dt].is_float)
        return ERR("input '%s' is %s; Softmax takes floats", x->name, ox_type_str(I, x));
    int64_t axis;
    if (!norm_axis(I, ox_attr_i(n, "axis", I->opset >= 13 ? -1 : 1), x->rank, &axis))
        return 1;
    copy_type(out[0], x);
    if (I->opset >= 13 || axis == x->rank - 1) {
        ox_assign(I, out[0], "softmax(%s, axis=%lld)", T(x), (long long)axis);
        return 0;
    }
    /* before opset 13: over all axes from `axis` on, as one row */
    if (!need_static(I, x, "Softmax before opset 13"))
        return 1;
    int64_t a = 1, b = 1;
    for (int i = 0; i < x->rank; i++)
        *(i < axis ? &a : &b) *= x->dims[i];
    ox_assign(I, out[0], "softmax(%s.reshape(%lld, %lld), axis=-1).reshape(%s)", T(x), (long long)a, (long long)b,
              dims_text(I, x->rank, x->dims, NULL));
    return 0;
}

static int op_layernorm(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *s = nin > 1 ? in[1] : NULL, *b = nin > 2 ? in[2] : NULL;
    if (!x || !s || !need_dtype(I, x))
        return ERR("needs X and Scale");
    if (!dtype_traits[x->dt].is_float)
        return ERR("input '%s' is %s; LayerNormalization takes floats", x->name, ox_type_str(I, x));
    int64_t axis;
    if (!norm_axis(I, ox_attr_i(n, "axis", -1), x->rank, &axis))
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
    const char *full = dims_text(I, x->rank, x->dims, x->sym);
    int flat = axis != x->rank - 1;
    const char *lead = axis ? dims_text(I, (int)axis, x->dims, x->sym) : "";
    const char *x2 = flat ? arena_printf(I->a, "%s.reshape(%s%s%lld)", xt, lead, axis ? ", " : "", (long long)inner) : xt;
    const char *s2 = s->rank != 1 ? arena_printf(I->a, "%s.reshape(%lld)", st, (long long)inner) : st;
    const char *b2 = b && b->rank != 1 ? arena_printf(I->a, "%s.reshape(%lld)", bt, (long long)inner) : bt;
    copy_type(out[0], x);
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
    const char *sdims = dims_text(I, x->rank, sd, ss);
    int sdt = (int)ox_attr_i(n, "stash_type", 1) == 1 ? DT_F32 : x->dt;
    for (int k = 1; k < 3 && k < nout; k++) {
        if (!out[k])
            continue;
        ox_type(out[k], sdt, x->rank, sd, ss);
        ox_assign(I, out[k], "cast(%s.reshape(%s), %s)", k == 1 ? mu : rs, sdims, dtype_traits[sdt].name);
    }
    return 0;
}

static int op_reduce(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !need_dtype(I, x))
        return 1;
    const char *op = n->op_type;
    const char *fn = !strcmp(op, "ReduceSum") ? "sum" : !strcmp(op, "ReduceMean") ? "mean" : "max";
    int64_t axes[IR_MAX_RANK];
    int naxes, have;
    /* ReduceSum takes its axes as an input from opset 13 on; the others from opset 18 */
    if (!get_axes(I, n, in, nin, 1, axes, &naxes, &have))
        return 1;
    int keep = (int)ox_attr_i(n, "keepdims", 1);
    if (!naxes && ox_attr_i(n, "noop_with_empty_axes", 0)) {
        copy_type(out[0], x);
        ox_assign(I, out[0], "%s", T(x));
        return 0;
    }
    int red[IR_MAX_RANK] = {0};
    if (!naxes)
        for (int i = 0; i < x->rank; i++)
            red[i] = 1;
    for (int i = 0; i < naxes; i++) {
        int64_t a;
        if (!norm_axis(I, axes[i], x->rank, &a))
            return 1;
        red[a] = 1;
    }
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (red[i] && x->dims[i] == 0)
            return ERR("reducing an empty dimension is not supported");
        if (red[i] && !keep)
            continue;
        dims[r] = red[i] ? 1 : x->dims[i];
        sym[r++] = red[i] ? NULL : x->sym[i];
    }
    ox_type(out[0], x->dt, r, dims, sym);
    int is_int = !dtype_traits[x->dt].is_float;
    if (is_int && strcmp(fn, "max") && x->dt != DT_I32 && x->dt != DT_I64)
        return ERR("%s of %s is not supported", op, ox_type_str(I, x));
    /* sums of integers in f64 (the language's sum of an integer tensor is f32), then back */
    const char *e = is_int && strcmp(fn, "max") ? arena_printf(I->a, "cast(%s, f64)", T(x)) : T(x);
    if (r == 0 || (x->rank == 0)) {
        e = arena_printf(I->a, "%s(%s)", fn, e);
    } else {
        for (int i = x->rank - 1; i >= 0; i--)
            if (red[i])
                e = arena_printf(I->a, "%s(%s, axis=%d, keepdims=true)", fn, e, i);
        if (!keep)
            e = arena_printf(I->a, "%s.reshape(%s)", e, dims_text(I, r, dims, sym));
    }
    if (is_int && strcmp(fn, "max"))
        e = arena_printf(I->a, "cast(%s, %s)", e, dtype_traits[x->dt].name);
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- linear algebra */

static int op_matmul(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *a = in[0], *b = nin > 1 ? in[1] : NULL;
    if (!a || !b || !need_dtype(I, a) || !need_dtype(I, b))
        return ERR("needs two inputs");
    if (a->dt != b->dt)
        return ERR("inputs of different dtypes (%s and %s)", ox_type_str(I, a), ox_type_str(I, b));
    if (a->rank < 1 || b->rank < 1)
        return ERR("MatMul of a scalar");
    /* NumPy's matmul: a vector operand gets a dimension of 1 added, then removed */
    OVal A = *a, B = *b;
    if (a->rank == 1) {
        A.rank = 2, A.dims[0] = 1, A.dims[1] = a->dims[0], A.sym[0] = NULL, A.sym[1] = a->sym[0];
    }
    if (b->rank == 1) {
        B.rank = 2, B.dims[0] = b->dims[0], B.dims[1] = 1, B.sym[0] = b->sym[0], B.sym[1] = NULL;
    }
    if (A.dims[A.rank - 1] != B.dims[B.rank - 2] || (A.sym[A.rank - 1] != B.sym[B.rank - 2] &&
        (!A.sym[A.rank - 1] || !B.sym[B.rank - 2] || strcmp(A.sym[A.rank - 1], B.sym[B.rank - 2]))))
        return ERR("inner dimensions differ: %s and %s", ox_type_str(I, a), ox_type_str(I, b));
    OVal ba = A, bb = B;
    ba.rank -= 2, bb.rank -= 2;
    int r;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!broadcast(I, &ba, &bb, &r, dims, sym))
        return 1;
    if (a->rank > 1)
        dims[r] = A.dims[A.rank - 2], sym[r++] = A.sym[A.rank - 2];
    if (b->rank > 1)
        dims[r] = B.dims[B.rank - 1], sym[r++] = B.sym[B.rank - 1];
    ox_type(out[0], a->dt, r, dims, sym);
    const char *ea = a->rank == 1 ? arena_printf(I->a, "%s.unsqueeze(0)", T(a)) : T(a);
    const char *eb = b->rank == 1 ? arena_printf(I->a, "%s.unsqueeze(1)", T(b)) : T(b);
    int is_int = !dtype_traits[a->dt].is_float;
    const char *e = is_int ? arena_printf(I->a, "cast(cast(%s, f64) @ cast(%s, f64), %s)", ea, eb, dtype_traits[a->dt].name)
                           : arena_printf(I->a, "%s @ %s", ea, eb);
    if (a->rank == 1 || b->rank == 1)
        e = arena_printf(I->a, "(%s).reshape(%s)", e, r ? dims_text(I, r, dims, sym) : "[]");
    ox_assign(I, out[0], "%s", e);
    return 0;
}

static int op_gemm(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *a = in[0], *b = nin > 1 ? in[1] : NULL, *c = nin > 2 ? in[2] : NULL;
    if (!a || !b || !need_dtype(I, a) || !need_dtype(I, b))
        return ERR("needs A and B");
    if (a->rank != 2 || b->rank != 2 || a->dt != b->dt || !dtype_traits[a->dt].is_float)
        return ERR("takes two float matrices of one dtype, got %s and %s", ox_type_str(I, a), ox_type_str(I, b));
    int ta = (int)ox_attr_i(n, "transA", 0), tb = (int)ox_attr_i(n, "transB", 0);
    double alpha = ox_attr_f(n, "alpha", 1), beta = ox_attr_f(n, "beta", 1);
    int64_t dims[2] = {a->dims[ta ? 1 : 0], b->dims[tb ? 0 : 1]};
    const char *sym[2] = {a->sym[ta ? 1 : 0], b->sym[tb ? 0 : 1]};
    if (a->dims[ta ? 0 : 1] != b->dims[tb ? 1 : 0])
        return ERR("inner dimensions differ: %s and %s", ox_type_str(I, a), ox_type_str(I, b));
    ox_type(out[0], a->dt, 2, dims, sym);
    const char *e = arena_printf(I->a, "%s%s @ %s%s", T(a), ta ? ".T" : "", T(b), tb ? ".T" : "");
    if (alpha != 1)
        e = arena_printf(I->a, "(%s) * %s", e, ox_num(I, alpha, a->dt));
    if (c && beta != 0) {
        if (!need_dtype(I, c) || c->dt != a->dt)
            return ERR("C must have A's dtype");
        e = beta != 1 ? arena_printf(I->a, "%s + %s * %s", e, T(c), ox_num(I, beta, a->dt)) : arena_printf(I->a, "%s + %s", e, T(c));
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- data movement */

static int op_identity(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (!in[0])
        return ERR("needs an input");
    copy_type(out[0], in[0]);
    if (in[0]->is_const) {
        fold_same_data(I, in[0], out[0], in[0]->rank, in[0]->dims);
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
        fold_same_data(I, x, out, rank, dims);
        return 0;
    }
    ox_assign(I, out, "%s.reshape(%s)", T(x), rank ? dims_text(I, rank, dims, sym) : "[]");
    return 0;
}

static int op_reshape(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || nin < 2 || !in[1] || !need_dtype(I, x))
        return ERR("needs data and shape");
    int64_t shape[IR_MAX_RANK];
    const char *ssym[IR_MAX_RANK];
    int r;
    if (!const_ints_sym(I, in[1], "the shape", shape, IR_MAX_RANK, &r, ssym))
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
    if (!x || !need_dtype(I, x) || !need_static(I, x, "Flatten"))
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
    if (!x || !need_dtype(I, x))
        return 1;
    int64_t axes[IR_MAX_RANK];
    int naxes, have;
    if (!get_axes(I, n, in, nin, 1, axes, &naxes, &have))
        return 1;
    int unsq = !strcmp(n->op_type, "Unsqueeze");
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!unsq) {
        int drop[IR_MAX_RANK] = {0};
        for (int i = 0; i < naxes; i++) {
            int64_t a;
            if (!norm_axis(I, axes[i], x->rank, &a))
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
        if (!norm_axis(I, axes[i], r, &a))
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
    if (!x || !need_dtype(I, x))
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
        for (int64_t k = 0; k < cnt; k++, next_index(x->rank, dims, idx)) {
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
 * with an error when it does not fit a Lin. */
static const char *concat_size(Imp *I, OVal **in, int nin, int axis)
{
    Lin sum = {0}, part;
    for (int k = 0; k < nin; k++)
        if (!lin_of(I, in[k]->sym[axis], in[k]->dims[axis], &part) || !lin_add(&sum, &part, 1))
            return ERR("the size of the concatenation has more than %d symbols", LIN_TERMS), NULL;
    return lin_text(I, &sum);
}

static int op_concat(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    if (nin < 1 || !in[0])
        return ERR("needs inputs");
    for (int i = 0; i < nin; i++)
        if (!in[i] || !need_dtype(I, in[i]) || in[i]->dt != in[0]->dt || in[i]->rank != in[0]->rank)
            return ERR("inputs must have one dtype and rank");
    int64_t axis;
    if (!norm_axis(I, ox_attr_i(n, "axis", 0), in[0]->rank, &axis))
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
    if (symbolic && all_const(in, nin))
        return ERR("concatenating constants along a symbolic size is not supported");
    if (symbolic && live > 1 && !(sym[axis] = concat_size(I, in, nin, (int)axis)))
        return 1;
    if (symbolic && live == 1)
        for (int k = 0; k < nin; k++)
            if (in[k]->dims[axis] > 0)
                sym[axis] = in[k]->sym[axis];
    ox_type(out[0], in[0]->dt, in[0]->rank, dims, sym);
    if (all_const(in, nin)) {
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
                move_sym(I, out[0], in[k], (int64_t)(o - (char *)out[0]->data) / (int64_t)es, (int64_t)((size_t)j * len / es),
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
    if (!x || !need_dtype(I, x))
        return 1;
    int64_t axis;
    if (!norm_axis(I, ox_attr_i(n, "axis", 0), x->rank, &axis))
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
        if (!const_ints(I, in[1], "the split", sizes, 64, &ns))
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
    for (int i = 0; i < ns; i++) {
        if (sizes[i] <= 0)
            return ERR("a part of size %lld is not supported", (long long)sizes[i]);
        if (!out[i])
            continue;
        int64_t dims[IR_MAX_RANK];
        for (int j = 0; j < x->rank; j++)
            dims[j] = x->dims[j];
        dims[axis] = sizes[i];
        ox_type(out[i], x->dt, x->rank, dims, x->sym);
    }
    if (ns == 1) {
        ox_assign(I, out[0], "%s", T(x));
        return 0;
    }
    char *lhs = arena_strdup(I->a, ""), *sz = arena_strdup(I->a, "");
    for (int i = 0; i < ns; i++) {
        if (out[i] && !out[i]->var)
            out[i]->var = ox_fresh(I, out[i]->name);
        lhs = arena_printf(I->a, "%s%s%s", lhs, i ? ", " : "", out[i] ? out[i]->var : ox_temp(I, "t_unused"));
        sz = arena_printf(I->a, "%s%s%lld", sz, i ? ", " : "", (long long)sizes[i]);
    }
    ox_emit(I, "%s = split(%s, [%s], axis=%lld)\n", lhs, T(x), sz, (long long)axis);
    return 0;
}

static int op_slice(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !need_dtype(I, x))
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
        if (!const_ints_sym(I, in[1], "starts", st, IR_MAX_RANK, &ns, ssy) ||
            !const_ints_sym(I, in[2], "ends", en, IR_MAX_RANK, &ne, esy))
            return 1;
        na = nsp = ns;
        if (nin > 3 && in[3] && !const_ints(I, in[3], "axes", ax, IR_MAX_RANK, &na))
            return 1;
        if (!(nin > 3 && in[3]))
            for (int i = 0; i < ns; i++)
                ax[i] = i;
        if (nin > 4 && in[4] && !const_ints(I, in[4], "steps", sp, IR_MAX_RANK, &nsp))
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
        if (!norm_axis(I, ax[i], x->rank, &a))
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
            Lin ls, le, len = {0};
            if (k != 1 || s < 0 || e < 0 || e > d || !lin_of(I, ssy[i], s, &ls) || !lin_of(I, esy[i], e, &le) ||
                !lin_add(&len, &le, 1) || !lin_add(&len, &ls, -1))
                return ERR("a slice [%s, %s) with step %lld of dimension %lld is not supported (sizes need step 1, "
                           "within the dimension)", ssy[i] ? ssy[i] : ox_num(I, (double)s, DT_I64),
                           esy[i] ? esy[i] : ox_num(I, (double)e, DT_I64), (long long)k, (long long)d);
            sfrom[a] = ssy[i] ? ssy[i] : ox_num(I, (double)s, DT_I64);
            sto[a] = esy[i] ? esy[i] : ox_num(I, (double)e, DT_I64);
            osym[a] = lin_text(I, &len);
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
    for (int i = 0; i < x->rank; i++)
        if (cnt[i] == 0)
            return ERR("the slice is empty; kiln has no empty tensors");
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
        for (int64_t k = 0; k < total; k++, next_index(x->rank, cnt, idx)) {
            int64_t off = 0;
            for (int i = 0; i < x->rank; i++)
                off = off * x->dims[i] + first[i] + idx[i] * step[i];
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)x->data + off * (int64_t)es, es);
            move_sym(I, out[0], x, k, off, 1);
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
    if (!x || !ix || !need_dtype(I, x) || !need_dtype(I, ix))
        return ERR("needs data and indices");
    if (ix->dt != DT_I32 && ix->dt != DT_I64)
        return ERR("indices '%s' must be int32 or int64, got %s", ix->name, ox_type_str(I, ix));
    int64_t axis;
    if (!norm_axis(I, ox_attr_i(n, "axis", 0), x->rank, &axis))
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
                move_sym(I, out[0], x, (int64_t)(o - (char *)out[0]->data) / (int64_t)es, (j * d + v) * inner, inner);
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
    if (!x || nin < 2 || !in[1] || !need_dtype(I, x))
        return ERR("needs input and shape");
    int64_t shape[IR_MAX_RANK];
    const char *ssym[IR_MAX_RANK];
    int r;
    if (!const_ints_sym(I, in[1], "the shape", shape, IR_MAX_RANK, &r, ssym))
        return 1;
    OVal s = {0};
    ox_type(&s, x->dt, r, shape, ssym);
    int rank;
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    if (!broadcast(I, x, &s, &rank, dims, sym))
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
        for (int64_t k = 0; k < total; k++, next_index(rank, dims, idx))
            memcpy((char *)out[0]->data + k * (int64_t)es, (char *)x->data + bcast_offset(x, rank, idx) * (int64_t)es, es);
        return 0;
    }
    if (same)
        ox_assign(I, out[0], "%s", T(x));
    else
        ox_assign(I, out[0], "%s.expand(%s)", T(x), dims_text(I, rank, dims, sym));
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
    if (!len)
        return ERR("the shape slice is empty; kiln has no empty tensors");
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
    if (!in[0] || !const_ints_sym(I, in[0], "the shape", shape, IR_MAX_RANK, &r, ssym))
        return 1;
    for (int i = 0; i < r; i++)
        if (shape[i] <= 0)
            return ERR("the shape has a dimension %lld; kiln has no empty tensors", (long long)shape[i]);
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
        (void)tmp;
    }
    int symbolic = 0;
    for (int i = 0; i < r; i++)
        symbolic |= ssym[i] != NULL;
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
        ox_assign(I, out[0], "%s.expand(%s)", T(one), dims_text(I, r, shape, ssym));
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
    if (has_sym(in[0]) || has_sym(in[2]))
        return ERR("a symbolic start or delta is not supported");
    if (has_sym(in[1])) { /* Range(0, T, 1): the positions of a symbolic size */
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
    if (!cnt)
        return ERR("the range is empty; kiln has no empty tensors");
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
    if (!one)
        return ERR("an empty constant; kiln has no empty tensors");
    return 0;
}

/* ---------------------------------------------------------------- composites */

/* Trilu: where(j - i >= k, x, 0) (upper) or j - i <= k (lower), over the last two axes. */
static int op_trilu(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || !need_dtype(I, x))
        return 1;
    if (x->rank < 2)
        return ERR("needs at least two dimensions");
    int64_t k = 0;
    int nk;
    if (nin > 1 && in[1] && !const_ints(I, in[1], "k", &k, 1, &nk))
        return 1;
    int upper = (int)ox_attr_i(n, "upper", 1);
    int r = x->rank;
    if (x->dims[r - 1] == 0 || x->dims[r - 2] == 0)
        return ERR("an empty matrix; kiln has no empty tensors");
    copy_type(out[0], x);
    if (x->is_const) { /* a mask made from a constant (exporters' causal masks): folded */
        ox_alloc(I, out[0]);
        size_t es = (size_t)dtype_traits[x->dt].size;
        int64_t rows = x->dims[r - 2], cols = x->dims[r - 1];
        for (int64_t e = 0; e < ox_numel(x); e++) {
            int64_t j = e % cols, i = (e / cols) % rows;
            int keep = upper ? j - i >= k : j - i <= k;
            if (keep)
                memcpy((char *)out[0]->data + e * (int64_t)es, (char *)x->data + e * (int64_t)es, es);
        }
        return 0;
    }
    ox_assign(I, out[0], "where(arange(%s, dtype=i64).unsqueeze(0) - arange(%s, dtype=i64).unsqueeze(1) %s %lld, %s, 0)",
              ox_dim(I, x, r - 1), ox_dim(I, x, r - 2), upper ? ">=" : "<=", (long long)k, T(x));
    return 0;
}

/* CumSum: along the axis, a matmul with a 0/1 triangular matrix m[j][i] = (j contributes to i) */
static int op_cumsum(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0];
    if (!x || nin < 2 || !in[1] || !need_dtype(I, x))
        return ERR("needs x and axis");
    int64_t a;
    int na;
    if (!const_ints(I, in[1], "the axis", &a, 1, &na) || !norm_axis(I, a, x->rank, &a))
        return 1;
    if (x->sym[a])
        return ERR("CumSum along the symbolic size %s is not supported", x->sym[a]);
    if (x->dt != DT_F32 && x->dt != DT_F64 && x->dt != DT_I32 && x->dt != DT_I64)
        return ERR("CumSum of %s is not supported", ox_type_str(I, x));
    int excl = (int)ox_attr_i(n, "exclusive", 0), rev = (int)ox_attr_i(n, "reverse", 0);
    static const char *cmp[2][2] = {{"<=", "<"}, {">=", ">"}};
    copy_type(out[0], x);
    int last = (int)a == x->rank - 1;
    const char *xt = T(x);
    const char *m = ox_temp(I, "t_tri");
    int fdt = x->dt == DT_F32 ? DT_F32 : DT_F64; /* integers summed exactly in f64 */
    ox_emit(I, "%s = cast(arange(%lld, dtype=i64).unsqueeze(1) %s arange(%lld, dtype=i64).unsqueeze(0), %s)\n", m,
            (long long)x->dims[a], cmp[rev][excl], (long long)x->dims[a], dtype_traits[fdt].name);
    const char *e = last ? xt : arena_printf(I->a, "swapaxes(%s, %lld, -1)", xt, (long long)a);
    if (fdt != x->dt)
        e = arena_printf(I->a, "cast(%s, f64)", e);
    if (x->rank == 1)
        e = arena_printf(I->a, "(%s.unsqueeze(0) @ %s).squeeze(0)", e, m);
    else
        e = arena_printf(I->a, "%s @ %s", e, m);
    if (!last)
        e = arena_printf(I->a, "swapaxes(%s, %lld, -1)", e, (long long)a);
    if (fdt != x->dt)
        e = arena_printf(I->a, "cast(%s, %s)", e, dtype_traits[x->dt].name);
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* Conv: 2-D, or 1-D as 2-D with a height of 1; groups as one convolution per group, concatenated. */
static int op_conv(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *x = in[0], *w = nin > 1 ? in[1] : NULL, *b = nin > 2 ? in[2] : NULL;
    if (!x || !w || !need_dtype(I, x) || !need_dtype(I, w))
        return ERR("needs X and W");
    int one_d = x->rank == 3 && w->rank == 3;
    if (!one_d && (x->rank != 4 || w->rank != 4))
        return ERR("only 1-D and 2-D convolutions ([N, C, (H,) W] input, [O, C/group, (KH,) KW] kernel) are supported, got %s and %s",
                   ox_type_str(I, x), ox_type_str(I, w));
    if (!need_static(I, x, "Conv") || !need_static(I, w, "Conv"))
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

/* a per-axis parameter (1-D, n = dims[axis]) reshaped to broadcast against a tensor of rank r */
static const char *per_axis(Imp *I, OVal *p, const OVal *x, int64_t axis, const char *text)
{
    if (p->rank == 0 || ox_numel(p) == 1)
        return p->rank == 0 ? text : arena_printf(I->a, "%s.reshape([])", text);
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = i == axis ? x->dims[i] : 1;
    return arena_printf(I->a, "%s.reshape(%s)", text, dims_text(I, x->rank, dims, NULL));
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
    if (!x || !sc || !need_dtype(I, x) || !need_dtype(I, sc) || (zp && !need_dtype(I, zp)))
        return ERR("needs x and y_scale");
    int odt = zp ? zp->dt : DT_U8;
    if (odt != DT_U8 && odt != DT_I8)
        return ERR("quantizes to %s; kiln handles uint8 and int8", dtype_traits[odt].name);
    if (x->dt != DT_F32 && x->dt != DT_I32)
        return ERR("x must be float32 or int32, got %s", ox_type_str(I, x));
    int64_t axis = 0; /* read only for per-axis parameters */
    if (ox_numel(sc) > 1 && !norm_axis(I, ox_attr_i(n, "axis", 1), x->rank, &axis))
        return 1;
    if (!quant_param(I, sc, x, axis, "y_scale") || !quant_param(I, zp, x, axis, "y_zero_point"))
        return 1;
    copy_type(out[0], x);
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
    if (!x || !sc || !need_dtype(I, x) || !need_dtype(I, sc) || (zp && !need_dtype(I, zp)))
        return ERR("needs x and x_scale");
    if (x->dt != DT_U8 && x->dt != DT_I8 && x->dt != DT_I32)
        return ERR("x must be uint8, int8 or int32, got %s", ox_type_str(I, x));
    if (sc->dt != DT_F32)
        return ERR("x_scale must be float32");
    int64_t axis = 0; /* read only for per-axis parameters */
    if (ox_numel(sc) > 1 && !norm_axis(I, ox_attr_i(n, "axis", 1), x->rank, &axis))
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
    if (!x || !need_dtype(I, x) || x->dt != DT_F32)
        return ERR("x must be float32");
    if (!need_static(I, x, "DynamicQuantizeLinear"))
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
    if (!broadcast(I, &ba, &bb, &r, dims, sym))
        return 0;
    dims[r] = a->dims[a->rank - 2], sym[r++] = a->sym[a->rank - 2];
    dims[r] = b->dims[b->rank - 1], sym[r++] = b->sym[b->rank - 1];
    ox_type(out, dt, r, dims, sym);
    return 1;
}

static int op_matmul_integer(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    OVal *a = in[0], *b = nin > 1 ? in[1] : NULL, *az = nin > 2 ? in[2] : NULL, *bz = nin > 3 ? in[3] : NULL;
    if (!a || !b || !need_dtype(I, a) || !need_dtype(I, b))
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
        if (!in[i] || !need_dtype(I, in[i]))
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

/* ---------------------------------------------------------------- Einsum */

/* Einsum, any number of operands: repeated letters of one operand become its diagonal (a gather of
 * the flattened pair), every operand is laid out over all letters (output letters first, then the
 * summed ones; a missing letter is a dimension of 1), the operands multiply with broadcasting and the
 * summed letters are reduced. The 2-operand matrix forms come out as a product and a sum, which is
 * exact but not a matmul. */
static int op_einsum(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout)
{
    const Onnx__AttributeProto *eq = ox_attr(n, "equation");
    if (!eq || !eq->has_s)
        return ERR("needs an equation");
    char buf[256];
    size_t len = 0;
    for (size_t i = 0; i < eq->s.len && len < sizeof buf - 1; i++) {
        if (eq->s.data[i] >= 128 || !eq->s.data[i]) /* letters index tables of 128 (found by fuzz_onnx) */
            return ERR("the equation has a byte outside ASCII");
        if (eq->s.data[i] != ' ')
            buf[len++] = (char)eq->s.data[i];
    }
    buf[len] = 0;
    char *arrow = strstr(buf, "->");
    char *rhs = arrow ? arrow + 2 : NULL;
    if (arrow)
        *arrow = 0;
    char terms[8][64];
    int nt = 0;
    char ell[IR_MAX_RANK + 1] = ""; /* the letters standing for "..." */
    int nell = -1;
    for (char *p = buf; nt < 8;) {
        char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (nt >= nin || !in[nt] || !need_dtype(I, in[nt]))
            return ERR("the equation has more operands than the node has inputs");
        OVal *v = in[nt];
        char t[64] = "";
        size_t k = 0;
        for (size_t i = 0; i < l; i++) {
            if (!strncmp(p + i, "...", 3)) {
                int named = 0;
                for (size_t j = 0; j < l; j++)
                    named += (p[j] >= 'a' && p[j] <= 'z') || (p[j] >= 'A' && p[j] <= 'Z');
                int m = v->rank - named;
                if (m < 0 || (nell >= 0 && m != nell))
                    return ERR("the ellipsis of operand %d does not fit %s", nt, ox_type_str(I, v));
                nell = m;
                for (int j = 0; j < m; j++)
                    ell[j] = (char)('0' + j), t[k++] = (char)('0' + j);
                ell[m] = 0;
                i += 2;
            } else
                t[k++] = p[i];
        }
        t[k] = 0;
        if ((int)k != v->rank)
            return ERR("term '%.*s' does not match %s", (int)l, p, ox_type_str(I, v));
        snprintf(terms[nt++], sizeof terms[0], "%s", t);
        if (!c)
            break;
        p = c + 1;
    }
    if (nt != nin)
        return ERR("the equation has %d operands, the node %d inputs", nt, nin);
    char outl[IR_MAX_RANK + 1] = "";
    if (rhs) {
        size_t k = 0;
        for (size_t i = 0; rhs[i] && k < IR_MAX_RANK; i++) {
            if (!strncmp(rhs + i, "...", 3)) {
                for (int j = 0; j < (nell > 0 ? nell : 0); j++)
                    outl[k++] = ell[j];
                i += 2;
            } else
                outl[k++] = rhs[i];
        }
        outl[k] = 0;
    } else { /* implicit: the ellipsis, then letters that appear once, in alphabetical order */
        size_t k = 0;
        for (int j = 0; j < (nell > 0 ? nell : 0); j++)
            outl[k++] = ell[j];
        for (int c = 'A'; c <= 'z'; c++) {
            int cnt = 0;
            for (int t = 0; t < nt; t++)
                for (char *p = terms[t]; *p; p++)
                    cnt += *p == c;
            if (cnt == 1 && k < IR_MAX_RANK)
                outl[k++] = (char)c;
        }
        outl[k] = 0;
    }
    /* all letters: output first, then the summed ones; with each one's size */
    char all[32] = "";
    int64_t size[128] = {0};
    snprintf(all, sizeof all, "%s", outl);
    const char *ops[8];
    int64_t tdims[8][IR_MAX_RANK];
    for (int t = 0; t < nt; t++) {
        OVal *v = in[t];
        if (v->dt != in[0]->dt)
            return ERR("operands of different dtypes");
        ops[t] = T(v);
        /* diagonals: a letter twice in one term; the operand's dims tracked in cur */
        int64_t cur[IR_MAX_RANK];
        for (int i = 0; i < v->rank; i++)
            cur[i] = v->dims[i];
        for (;;) {
            int p = -1, q = -1, r = (int)strlen(terms[t]);
            for (int i = 0; i < r && p < 0; i++)
                for (int j = i + 1; j < r; j++)
                    if (terms[t][i] == terms[t][j]) {
                        p = i, q = j;
                        break;
                    }
            if (p < 0)
                break;
            if (cur[p] != cur[q])
                return ERR("letter '%c' has sizes %lld and %lld", terms[t][p], (long long)cur[p], (long long)cur[q]);
            int64_t d = cur[p], dims[IR_MAX_RANK];
            int perm[IR_MAX_RANK], np = 0;
            char nt2[IR_MAX_RANK + 1];
            for (int i = 0; i < r; i++)
                if (i != p && i != q)
                    perm[np] = i, dims[np] = cur[i], nt2[np] = terms[t][i], np++;
            char pl[64] = "";
            for (int i = 0; i < np; i++)
                snprintf(pl + strlen(pl), sizeof pl - strlen(pl), ", %d", perm[i]);
            snprintf(pl + strlen(pl), sizeof pl - strlen(pl), ", %d, %d", p, q);
            dims[np] = d * d;
            OVal *idx = arena_alloc(I->a, sizeof *idx);
            idx->name = arena_printf(I->a, "%s_diag", out[0]->name);
            ox_type(idx, DT_I64, 1, &d, NULL);
            int64_t *ip = ox_alloc(I, idx);
            for (int64_t k = 0; k < d; k++)
                ip[k] = k * (d + 1);
            ops[t] = arena_printf(I->a, "gather(permute(%s%s).reshape(%s), %s, axis=%d)", ops[t], pl,
                                  dims_text(I, np + 1, dims, NULL), T(idx), np);
            nt2[np] = terms[t][p];
            nt2[np + 1] = 0;
            dims[np] = d;
            snprintf(terms[t], sizeof terms[t], "%s", nt2);
            for (int i = 0; i <= np; i++)
                cur[i] = dims[i];
        }
        for (char *p = terms[t]; *p; p++) {
            int64_t dsz = cur[p - terms[t]];
            unsigned char c = (unsigned char)*p;
            if (size[c] && size[c] != dsz && dsz != 1 && size[c] != 1)
                return ERR("letter '%c' has sizes %lld and %lld", *p, (long long)size[c], (long long)dsz);
            if (!size[c] || size[c] == 1)
                size[c] = dsz;
            if (!strchr(all, *p)) {
                size_t l = strlen(all);
                all[l] = *p, all[l + 1] = 0;
            }
        }
        for (int i = 0; i < (int)strlen(terms[t]); i++)
            tdims[t][i] = cur[i];
    }
    int na = (int)strlen(all), no = (int)strlen(outl);
    if (na > IR_MAX_RANK)
        return ERR("too many letters");
    /* each operand over all letters */
    char *prod = arena_strdup(I->a, "");
    for (int t = 0; t < nt; t++) {
        int r = (int)strlen(terms[t]);
        int perm[IR_MAX_RANK], np = 0;
        int64_t dims[IR_MAX_RANK];
        for (int i = 0; i < na; i++) {
            char *at = strchr(terms[t], all[i]);
            dims[i] = at ? tdims[t][at - terms[t]] : 1;
            if (at)
                perm[np++] = (int)(at - terms[t]);
        }
        const char *e = ops[t];
        int ident = 1;
        for (int i = 0; i < r; i++)
            ident &= perm[i] == i;
        if (!ident && r >= 2) {
            char pl[64] = "";
            for (int i = 0; i < r; i++)
                snprintf(pl + strlen(pl), sizeof pl - strlen(pl), ", %d", perm[i]);
            e = arena_printf(I->a, "permute(%s%s)", e, pl);
        }
        if (r != na)
            e = arena_printf(I->a, "%s.reshape(%s)", e, dims_text(I, na, dims, NULL));
        prod = arena_printf(I->a, "%s%s%s", prod, t ? " * " : "", e);
    }
    int64_t odims[IR_MAX_RANK];
    for (int i = 0; i < no; i++)
        odims[i] = size[(unsigned char)outl[i]];
    ox_type(out[0], in[0]->dt, no, odims, NULL);
    const char *e = nt > 1 ? arena_printf(I->a, "(%s)", prod) : prod;
    if (no == 0 && na > 0)
        e = arena_printf(I->a, "sum(%s)", e);
    else if (na > no) {
        for (int i = na - 1; i >= no; i--)
            e = arena_printf(I->a, "sum(%s, axis=%d)", e, i);
    }
    ox_assign(I, out[0], "%s", e);
    return 0;
}

/* ---------------------------------------------------------------- the table */

static const struct {
    const char *name;
    OxHandler fn;
} handlers[] = {
    {"Abs", op_unary},
    {"Add", op_binary},
    {"And", op_binary},
    {"Cast", op_cast},
    {"Clip", op_clip},
    {"Concat", op_concat},
    {"Constant", op_constant},
    {"ConstantOfShape", op_constant_of_shape},
    {"Conv", op_conv},
    {"CumSum", op_cumsum},
    {"DequantizeLinear", op_dequantize},
    {"Div", op_binary},
    {"DynamicQuantizeLinear", op_dynamic_quantize},
    {"Einsum", op_einsum},
    {"Equal", op_binary},
    {"Erf", op_unary},
    {"Exp", op_unary},
    {"Expand", op_expand},
    {"Flatten", op_flatten},
    {"Gather", op_gather},
    {"Greater", op_binary},
    {"GreaterOrEqual", op_binary},
    {"Gemm", op_gemm},
    {"Identity", op_identity},
    {"LayerNormalization", op_layernorm},
    {"Less", op_binary},
    {"LessOrEqual", op_binary},
    {"Log", op_unary},
    {"MatMul", op_matmul},
    {"MatMulInteger", op_matmul_integer},
    {"Max", op_binary},
    {"Min", op_binary},
    {"Mul", op_binary},
    {"Neg", op_unary},
    {"Not", op_not},
    {"Or", op_binary},
    {"Pow", op_binary},
    {"QLinearMatMul", op_qlinear_matmul},
    {"QuantizeLinear", op_quantize},
    {"Range", op_range},
    {"Reciprocal", op_unary},
    {"ReduceMax", op_reduce},
    {"ReduceMean", op_reduce},
    {"ReduceSum", op_reduce},
    {"Relu", op_unary},
    {"Reshape", op_reshape},
    {"Shape", op_shape},
    {"Sigmoid", op_unary},
    {"Slice", op_slice},
    {"Softmax", op_softmax},
    {"Split", op_split},
    {"Sqrt", op_unary},
    {"Squeeze", op_squeeze},
    {"Sub", op_binary},
    {"Tanh", op_unary},
    {"Transpose", op_transpose},
    {"Trilu", op_trilu},
    {"Unsqueeze", op_squeeze},
    {"Where", op_where},
    {"Xor", op_binary},
};

OxHandler ox_handler(const char *op)
{
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (!strcmp(handlers[i].name, op))
            return handlers[i].fn;
    return NULL;
}

int onnx_op_supported(const char *op)
{
    return ox_handler(op) != NULL;
}
