/* lower.c: from the syntax tree to a checked IR graph.
 *
 * Lowering is an evaluator: it walks the tree with an environment of Values. Numbers and symbolic
 * sizes are computed at compile time; tensors are IR nodes appended to the graph in evaluation order,
 * which is therefore topological. Functions are inlined at every call (a call stack catches
 * recursion), `for` loops over constant ranges are unrolled, and weight paths such as w.h[3].attn
 * stay strings until used as tensors, when the weights file supplies their dtype and shape.
 *
 * Every check that can be made before running is made here, with the source location of the
 * expression: unknown names, arity, dtypes, shapes (both printed), bounds of symbolic sizes. An
 * expression that failed evaluates to V_NONE, which every operation passes through silently, so one
 * mistake gives one error and the rest of the file is still checked.
 */
#include "frontend/frontend.h"
#include "parser.tab.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Binding {
    const char *name;
    Value v;
    SrcLoc loc;
} Binding;

struct Env {
    Env *parent;
    int n, cap;
    Binding *b;
};

typedef struct WeightRef {
    const char *name;
    Node *node;
} WeightRef;

struct Lower {
    Graph *g;
    Diag *d;
    Arena *a;
    const FrontendOptions *o;
    int file;                /* the model file's index in the Diag */
    const char *dir;         /* directory of the model file, for its relative weights path */
    Env *globals;
    Weights *w;              /* opened on first use of a weight */
    const char *wpath;       /* resolved path of the weights file */
    SrcLoc wloc;             /* where the `weights` statement is */
    int wfailed;             /* opening the weights file failed: do not try again */
    int nwref, capwref;
    WeightRef *wref;         /* weight nodes made so far, one per tensor name */
    int depth;
    const Ast *stack[64];    /* functions being inlined, to catch recursion */
    int *define_used;        /* (o->ndefine) */
    int nesting;             /* eval's recursion: expressions inside expressions */
    int too_big;             /* a limit of lower_limits was reported: stop unrolling */
};

/* Limits that keep a hostile or mistyped model file from hanging the compiler or exhausting the
 * machine: each is far above any real model's needs (GPT-2 124M lowers to about 1,000 nodes). */
enum {
    LW_MAX_NESTING = 2000,    /* expressions nested in expressions (a + a + ... is nested too) */
    LW_MAX_NODES = 250000,    /* nodes made by lowering, dead ones included: unrolled loops */
};
#define LW_MAX_ELEMENTS ((int64_t)1 << 40) /* elements of one tensor, every symbol at its bound */

Value v_none(void) { return (Value){.k = V_NONE}; }
Value v_int(int64_t i) { return (Value){.k = V_INT, .i = i}; }
Value v_float(double f) { return (Value){.k = V_FLOAT, .f = f}; }
Value v_tensor(Node *t) { return t ? (Value){.k = V_TENSOR, .t = t} : v_none(); }
static Value v_bool(int b) { return (Value){.k = V_BOOL, .i = b != 0}; }
static Value v_dim(Dim d) { return dim_is_const(d) ? v_int(dim_value(d)) : (Value){.k = V_DIM, .dim = d}; }

Graph *lower_graph(Lower *L) { return L->g; }
Diag *lower_diag(Lower *L) { return L->d; }

const char *lw_value_kind(Value v)
{
    switch (v.k) {
    case V_NONE: return "nothing";
    case V_INT: return "an integer";
    case V_FLOAT: return "a number";
    case V_BOOL: return "a boolean";
    case V_STR: return "a string";
    case V_DIM: return "a symbolic size";
    case V_DTYPE: return "a dtype";
    case V_TENSOR: return "a tensor";
    case V_PATH: return "a weights path";
    case V_TUPLE: return "a tuple";
    case V_FN: return "a function";
    case V_BUILTIN: return "a builtin function";
    }
    return "?";
}

#define ERR(loc, ...) diag_error(L->d, (loc), __VA_ARGS__)

/* ---------------------------------------------------------------- environments */

static Env *env_new(Lower *L, Env *parent)
{
    Env *e = arena_alloc(L->a, sizeof *e);
    e->parent = parent;
    return e;
}

static Binding *env_find_local(Env *e, const char *name)
{
    for (int i = e->n - 1; i >= 0; i--)
        if (!strcmp(e->b[i].name, name))
            return &e->b[i];
    return NULL;
}

static Binding *env_find(Env *e, const char *name)
{
    for (; e; e = e->parent) {
        Binding *b = env_find_local(e, name);
        if (b)
            return b;
    }
    return NULL;
}

static void env_set(Lower *L, Env *e, const char *name, Value v, SrcLoc loc)
{
    Binding *b = env_find_local(e, name);
    if (b) {
        b->v = v;
        return;
    }
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 16;
        Binding *nb = arena_alloc(L->a, sizeof *nb * (size_t)cap);
        if (e->n)
            memcpy(nb, e->b, sizeof *nb * (size_t)e->n);
        e->b = nb;
        e->cap = cap;
    }
    e->b[e->n++] = (Binding){name, v, loc};
}

/* The name in scope (or builtin) closest to `name`, or NULL when nothing is close. */
static const char *closest_name(Env *e, const char *name)
{
    /* one- and two-letter names are too short for a guess to mean anything */
    size_t len = strlen(name);
    if (len <= 2)
        return NULL;
    const char *best = NULL;
    int bestd = len <= 4 ? 2 : 3;
    for (; e; e = e->parent)
        for (int i = 0; i < e->n; i++) {
            int dd = diag_distance(name, e->b[i].name);
            if (dd < bestd) {
                bestd = dd;
                best = e->b[i].name;
            }
        }
    const char *bb = builtin_closest(name);
    if (bb && diag_distance(name, bb) < bestd)
        best = bb;
    return best;
}

/* ---------------------------------------------------------------- weights */

static int open_weights(Lower *L, SrcLoc loc)
{
    if (L->w)
        return 1;
    if (L->wfailed)
        return 0;
    if (!L->wpath) {
        ERR(loc, "the model uses weights but names no weights file: add `weights \"FILE\"` or pass --weights FILE");
        L->wfailed = 1;
        return 0;
    }
    L->w = st_open(L->wpath, L->d);
    if (!L->w) {
        L->wfailed = 1;
        if (!L->o->weights_override && L->wloc.line > 0)
            diag_note(L->d, L->wloc, "the weights file is named here");
        return 0;
    }
    L->g->weights = L->w;
    L->g->vocab = st_meta(L->w, "vocab");
    return 1;
}

static Node *weight_node(Lower *L, const char *name, SrcLoc loc)
{
    for (int i = 0; i < L->nwref; i++)
        if (!strcmp(L->wref[i].name, name))
            return L->wref[i].node;
    if (!open_weights(L, loc))
        return NULL;
    if (!*name) {
        ERR(loc, "`w` is the whole weights file, not a tensor: name a tensor, as in w.wte");
        return NULL;
    }
    const WTensor *t = st_find(L->w, name);
    if (!t) {
        const char *near[3];
        int n = st_closest(L->w, name, near, 3);
        /* suggest only names that are plausibly what was meant */
        while (n > 0 && diag_distance(name, near[n - 1]) > (int)strlen(name) / 3 + 1)
            n--;
        char hint[512] = "";
        size_t k = 0;
        for (int i = 0; i < n && k < sizeof hint; i++)
            k += (size_t)snprintf(hint + k, sizeof hint - k, "%s'%s'", i ? ", " : "", near[i]);
        if (n)
            ERR(loc, "weights file '%s' has no tensor '%s'; closest: %s", L->wpath, name, hint);
        else
            ERR(loc, "weights file '%s' has no tensor '%s'", L->wpath, name);
        return NULL;
    }
    Dim shape[IR_MAX_RANK];
    for (int i = 0; i < t->rank; i++)
        shape[i] = dim_const(t->shape[i]);
    Node *n = ir_source(L->g, OP_WEIGHT, t->dtype, t->rank, shape, loc);
    n->name = arena_strdup(L->a, name);
    n->at.data = t->data;
    if (L->nwref == L->capwref) {
        L->capwref = L->capwref ? L->capwref * 2 : 64;
        L->wref = realloc(L->wref, sizeof *L->wref * (size_t)L->capwref);
        KILN_ASSERT(L->wref);
    }
    L->wref[L->nwref++] = (WeightRef){n->name, n};
    return n;
}

/* Whether the path names a tensor of the weights file (false when no file can be opened). */
static int path_is_tensor(Lower *L, const char *path)
{
    return *path && L->wpath && !L->wfailed && open_weights(L, (SrcLoc){0}) && st_find(L->w, path);
}

static const char *path_join(Lower *L, const char *prefix, const char *part)
{
    return *prefix ? arena_printf(L->a, "%s.%s", prefix, part) : arena_strdup(L->a, part);
}

/* ---------------------------------------------------------------- tensors */

static char *tstr(Lower *L, const Node *n)
{
    char buf[256];
    return arena_strdup(L->a, node_type_str(L->g, n, buf, sizeof buf));
}

Node *lw_scalar(Lower *L, DType dt, double v, SrcLoc loc)
{
    return ir_scalar(L->g, dt, v, loc);
}

Node *lw_cast(Lower *L, Node *x, DType dt, SrcLoc loc)
{
    if (!x || x->dtype == dt)
        return x;
    return ir_cast(L->g, x, dt, loc);
}

/* A builder's result, or its refusal as this phase's diagnostic: at the location of the input at
 * fault when the caller knows it (ins), else at loc. */
static Node *built(Lower *L, Node *n, const IrWhy *why, SrcLoc loc, const SrcLoc *ins, int nins)
{
    if (!n)
        ERR(ins && why->input >= 0 && why->input < nins ? ins[why->input] : loc, "%s", why->msg);
    return n;
}

Node *lw_built(Lower *L, Node *n, const IrWhy *why, SrcLoc loc, const SrcLoc *ins, int nins)
{
    return built(L, n, why, loc, ins, nins);
}

Node *lw_tensor(Lower *L, Value v, SrcLoc loc)
{
    switch (v.k) {
    case V_TENSOR: return v.t;
    case V_PATH: return weight_node(L, v.s, loc);
    case V_INT: return lw_scalar(L, DT_I32, (double)v.i, loc);
    case V_FLOAT: return lw_scalar(L, DT_F32, v.f, loc);
    case V_BOOL: return lw_scalar(L, DT_BOOL, (double)v.i, loc);
    case V_NONE: return NULL;
    case V_DIM: {
        char buf[64];
        ERR(loc, "the symbolic size %s is a shape, not a tensor value", dim_str(L->g, v.dim, buf, sizeof buf));
        return NULL;
    }
    default: ERR(loc, "expected a tensor, got %s", lw_value_kind(v)); return NULL;
    }
}

/* The dtype two operands meet at: the wider float, a float over an integer, the wider integer; a
 * signed and an unsigned integer of the same width meet at the next wider signed one (u16 and i16
 * at i32, as NumPy), u64 and i64 at f64 (there is none; NumPy does the same), except i8 and u8,
 * which meet at the first operand's (as before there was i16). */
static DType promote(DType a, DType b)
{
    if (a == b)
        return a;
    const DTypeTraits *ta = &dtype_traits[a], *tb = &dtype_traits[b];
    if (ta->is_float && tb->is_float)
        return ta->size > tb->size ? a : tb->size > ta->size ? b : DT_F32; /* f16 with bf16: f32 */
    if (ta->is_float)
        return a;
    if (tb->is_float)
        return b;
    if (a == DT_BOOL)
        return b;
    if (b == DT_BOOL)
        return a;
    if (ta->size == tb->size && ta->is_signed != tb->is_signed)
        return ta->size == 2 ? DT_I32 : ta->size == 4 ? DT_I64 : ta->size == 8 ? DT_F64 : a;
    return ta->size >= tb->size ? a : b;
}

static int is_float(const Node *n) { return dtype_traits[n->dtype].is_float; }

Node *lw_unary(Lower *L, Op op, Node *x, SrcLoc loc)
{
    if (!x)
        return NULL;
    if (op != OP_NEG && op != OP_ABS && op != OP_RELU && !is_float(x))
        x = lw_cast(L, x, DT_F32, loc); /* exp of an integer tensor is a float, as in PyTorch */
    IrWhy why;
    return built(L, ir_unary(L->g, op, x, loc, &why), &why, loc, NULL, 0);
}

/* The language's promotion for a binary operator: both operands meet at one dtype, division and
 * power are true (float) operations, arithmetic on bools is on i32. The IR's binary ops then see
 * operands of one dtype. */
Node *lw_binary(Lower *L, Op op, Node *a, Node *b, SrcLoc loc)
{
    if (!a || !b)
        return NULL;
    int r;
    Dim shape[IR_MAX_RANK];
    IrWhy why;
    if (!shape_broadcast(a->rank, a->shape, b->rank, b->shape, &r, shape)) {
        /* before any cast is made: the builder words the refusal */
        Node *in[2] = {a, b};
        IrType t;
        ir_infer(L->g, op, NULL, 2, in, &t, &why);
        ERR(loc, "%s", why.msg);
        return NULL;
    }
    DType dt = promote(a->dtype, b->dtype);
    if ((op == OP_DIV || op == OP_POW) && !dtype_traits[dt].is_float)
        dt = DT_F32; /* true division, as in Python and PyTorch */
    if (dt == DT_BOOL && !(op_info[op].flags & F_CMP) && op != OP_EQ && op != OP_NE)
        dt = DT_I32;
    a = lw_cast(L, a, dt, loc);
    b = lw_cast(L, b, dt, loc);
    return built(L, ir_binary(L->g, op, a, b, loc, &why), &why, loc, NULL, 0);
}

Node *lw_matmul(Lower *L, Node *a, Node *b, SrcLoc loc)
{
    if (!a || !b)
        return NULL;
    DType dt = promote(a->dtype, b->dtype);
    if (!dtype_traits[dt].is_float)
        dt = DT_F32;
    IrWhy why;
    if (a->dtype != dt || b->dtype != dt) {
        /* the shapes are checked before any cast is made */
        Node sa = *a, sb = *b, *in[2] = {&sa, &sb};
        IrType t;
        sa.dtype = sb.dtype = dt;
        if (!ir_infer(L->g, OP_MATMUL, NULL, 2, in, &t, &why)) {
            ERR(loc, "%s", why.msg);
            return NULL;
        }
    }
    a = lw_cast(L, a, dt, loc);
    b = lw_cast(L, b, dt, loc);
    return built(L, ir_matmul(L->g, a, b, loc, &why), &why, loc, NULL, 0);
}

Node *lw_reshape(Lower *L, Node *x, int rank, const Dim *shape, SrcLoc loc)
{
    if (!x)
        return NULL;
    if (rank == x->rank) {
        int same = 1;
        for (int i = 0; i < rank; i++)
            same &= dim_eq(shape[i], x->shape[i]);
        if (same)
            return x;
    }
    IrWhy why;
    return built(L, ir_reshape(L->g, x, rank, shape, loc, &why), &why, loc, NULL, 0);
}

Node *lw_transpose(Lower *L, Node *x, const int *perm, SrcLoc loc)
{
    if (!x)
        return NULL;
    int identity = 1;
    for (int i = 0; i < x->rank; i++)
        identity &= perm[i] == i;
    if (identity)
        return x;
    IrWhy why;
    return built(L, ir_transpose(L->g, x, perm, loc, &why), &why, loc, NULL, 0);
}

/* Whether `hi` can exceed `lim` for some value of the symbols. */
static int dim_may_exceed(Lower *L, Dim hi, Dim lim)
{
    Dim diff;
    if (dim_sub(lim, hi, &diff))
        return dim_min(L->g, diff) < 0;
    if (dim_is_const(lim))
        return dim_max(L->g, hi) > dim_value(lim);
    return 0; /* symbolic limit, other symbol: checked at run time */
}

Node *lw_slice(Lower *L, Node *x, int axis, Dim start, Dim end, SrcLoc loc)
{
    if (!x)
        return NULL;
    if (dim_eq(start, dim_const(0)) && dim_eq(end, x->shape[axis]))
        return x;
    IrWhy why;
    return built(L, ir_slice(L->g, x, axis, start, end, loc, &why), &why, loc, NULL, 0);
}

Node *lw_concat(Lower *L, int n, Node **xs, int axis, SrcLoc loc)
{
    for (int i = 0; i < n; i++)
        if (!xs[i])
            return NULL;
    if (n == 1)
        return xs[0];
    DType dt = xs[0]->dtype;
    for (int i = 1; i < n; i++)
        dt = promote(dt, xs[i]->dtype);
    IrWhy why;
    /* the shapes are checked before any cast is made */
    Node *s = arena_alloc(L->a, sizeof(Node) * (size_t)n), **ps = arena_alloc(L->a, sizeof(Node *) * (size_t)n);
    for (int i = 0; i < n; i++) {
        s[i] = *xs[i];
        s[i].dtype = dt;
        ps[i] = &s[i];
    }
    Attrs at = {0};
    at.axis = axis;
    IrType t;
    if (!ir_infer(L->g, OP_CONCAT, &at, n, ps, &t, &why)) {
        ERR(loc, "%s", why.msg);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        xs[i] = lw_cast(L, xs[i], dt, loc);
    return built(L, ir_concat(L->g, n, xs, axis, loc, &why), &why, loc, NULL, 0);
}

Node *lw_gather(Lower *L, Node *table, Node *idx, int axis, SrcLoc loc)
{
    if (!table || !idx)
        return NULL;
    IrWhy why;
    return built(L, ir_gather(L->g, table, idx, axis, loc, &why), &why, loc, NULL, 0);
}

Node *lw_expand(Lower *L, Node *x, int rank, const Dim *shape, SrcLoc loc)
{
    if (!x)
        return NULL;
    IrWhy why;
    return built(L, ir_expand(L->g, x, rank, shape, loc, &why), &why, loc, NULL, 0);
}

int lw_axis(Lower *L, int64_t axis, int rank, SrcLoc loc)
{
    if (axis < -rank || axis >= rank) {
        ERR(loc, "axis %lld is out of range for a tensor of %d dimension%s", (long long)axis, rank,
            rank == 1 ? "" : "s");
        return -1;
    }
    return (int)(axis < 0 ? axis + rank : axis);
}

int lw_dim(Lower *L, Value v, SrcLoc loc, Dim *out)
{
    if (v.k == V_INT) {
        *out = dim_const(v.i);
        return 1;
    }
    if (v.k == V_DIM) {
        *out = v.dim;
        return 1;
    }
    if (v.k != V_NONE)
        ERR(loc, "expected a size (an integer or a symbolic size), got %s", lw_value_kind(v));
    return 0;
}

/* ---------------------------------------------------------------- expressions */

static Value eval(Lower *L, Env *env, const Ast *e);
static Value call_fn(Lower *L, const Ast *fn, Args *args, SrcLoc loc);

static int is_number(Value v) { return v.k == V_INT || v.k == V_FLOAT || v.k == V_BOOL; }
static double num(Value v) { return v.k == V_FLOAT ? v.f : (double)v.i; }

static Op binop_to_op(int op);

/* Operators on numbers. Integers stay exact 64-bit integers (sizes, counts, D / H when it divides);
 * anything else is computed by the interpreter's definition of the op (ir_eval_scalar), so that a
 * folded expression gives what the same op gives on tensors (NaN, infinities and -0 included). What
 * the language adds: a number divided by zero is an error, and '%' is for integers. */
static Value fold_numbers(Lower *L, int op, Value a, Value b, SrcLoc loc)
{
    int ints = a.k != V_FLOAT && b.k != V_FLOAT;
    double x = num(a), y = num(b);
    switch (op) {
    case '+':
    case '-':
    case '*':
        if (ints) {
            int64_t r;
            if (op == '+' ? __builtin_add_overflow(a.i, b.i, &r)
                : op == '-' ? __builtin_sub_overflow(a.i, b.i, &r)
                            : __builtin_mul_overflow(a.i, b.i, &r)) {
                ERR(loc, "integer overflow: %lld %c %lld does not fit in 64 bits", (long long)a.i, op, (long long)b.i);
                return v_none();
            }
            return v_int(r);
        }
        break;
    case '/':
        if (y == 0) {
            ERR(loc, "division by zero");
            return v_none();
        }
        /* integers divide exactly to an integer (D / H), otherwise to a number */
        if (ints && b.i == -1 && a.i != INT64_MIN) /* INT64_MIN / -1 does not fit: as a number */
            return v_int(-a.i);
        if (ints && b.i != -1 && a.i % b.i == 0)
            return v_int(a.i / b.i);
        break;
    case '%':
        if (!ints || b.i == 0) {
            ERR(loc, ints ? "modulo by zero" : "'%%' needs integers");
            return v_none();
        }
        if (b.i == -1)
            return v_int(0);
        return v_int(((a.i % b.i) + b.i) % b.i); /* |a % b| < |b|: no overflow */
    case POW:
        if (ints && b.i >= 0 && b.i < 63) {
            int64_t r = 1;
            for (int64_t i = 0; i < b.i; i++)
                if (__builtin_mul_overflow(r, a.i, &r)) {
                    ERR(loc, "integer overflow: %lld ** %lld does not fit in 64 bits", (long long)a.i, (long long)b.i);
                    return v_none();
                }
            return v_int(r);
        }
        break;
    case '<':
    case '>':
    case LE:
    case GE:
    case EQ:
    case NE: break;
    case '@': /* found by fuzz_model: `N @ 1` */
        ERR(loc, "'@' multiplies tensors, and both operands here are numbers");
        return v_none();
    default: UNREACHABLE();
    }
    Op o = binop_to_op(op);
    double r = ir_eval_scalar(o, NULL, DT_F64, 2, (double[]){x, y});
    return op_info[o].flags & F_CMP ? v_bool(r != 0) : v_float(r);
}

static Op binop_to_op(int op)
{
    switch (op) {
    case '+': return OP_ADD;
    case '-': return OP_SUB;
    case '*': return OP_MUL;
    case '/': return OP_DIV;
    case POW: return OP_POW;
    case '<': return OP_LT;
    case '>': return OP_GT;
    case LE: return OP_LE;
    case GE: return OP_GE;
    case EQ: return OP_EQ;
    case NE: return OP_NE;
    default: return OP_COUNT;
    }
}

static const char *binop_text(int op)
{
    switch (op) {
    case POW: return "**";
    case LE: return "<=";
    case GE: return ">=";
    case EQ: return "==";
    case NE: return "!=";
    case '+': return "+";
    case '-': return "-";
    case '*': return "*";
    case '/': return "/";
    case '%': return "%";
    case '@': return "@";
    case '<': return "<";
    case '>': return ">";
    }
    return "?";
}

/* A Python number meeting a tensor takes the tensor's dtype (x * 0.5 stays f16 when x is f16),
 * except a fractional number meeting an integer tensor, which makes it f32. */
static Node *number_for(Lower *L, Value v, const Node *t, SrcLoc loc)
{
    DType dt = t->dtype;
    if (v.k == V_FLOAT && !dtype_traits[dt].is_float)
        dt = DT_F32;
    if (dt == DT_BOOL && v.k != V_BOOL)
        dt = v.k == V_FLOAT ? DT_F32 : DT_I32;
    return lw_scalar(L, dt, num(v), loc);
}

/* a op b at loc; aloc and bloc are the operands' positions, for errors about the operands themselves. */
static Value binary(Lower *L, int op, Value a, Value b, SrcLoc loc, SrcLoc aloc, SrcLoc bloc)
{
    if (a.k == V_NONE || b.k == V_NONE)
        return v_none();
    if (is_number(a) && is_number(b))
        return fold_numbers(L, op, a, b, loc);
    /* sizes: T + 1, 2 * T, B * 49, D / H */
    if ((a.k == V_DIM || a.k == V_INT) && (b.k == V_DIM || b.k == V_INT)) {
        Dim r, x, y;
        lw_dim(L, a, loc, &x);
        lw_dim(L, b, loc, &y);
        int ok = op == '+' ? dim_add(x, y, &r)
               : op == '-' ? dim_sub(x, y, &r)
               : op == '*' ? dim_mul(x, y, &r)
               : op == '/' ? dim_div(x, y, &r)
               : -1;
        if (ok == 1)
            return v_dim(r);
        char b1[IR_DIM_STR], b2[IR_DIM_STR];
        if (ok == 0)
            ERR(loc, "%s %s %s is not a size kiln can represent (sizes are linear in at most %d symbols, "
                     "like 2*T + P + 1)",
                dim_str(L->g, x, b1, sizeof b1), binop_text(op), dim_str(L->g, y, b2, sizeof b2), DIM_TERMS);
        else
            ERR(loc, "'%s' is not defined on symbolic sizes", binop_text(op));
        return v_none();
    }
    if (op == '%') {
        ERR(loc, "'%%' is only defined on integers");
        return v_none();
    }
    Node *ta, *tb;
    if (is_number(a) && (b.k == V_TENSOR || b.k == V_PATH)) {
        tb = lw_tensor(L, b, bloc);
        ta = tb ? number_for(L, a, tb, aloc) : NULL;
    } else if (is_number(b) && (a.k == V_TENSOR || a.k == V_PATH)) {
        ta = lw_tensor(L, a, aloc);
        tb = ta ? number_for(L, b, ta, bloc) : NULL;
    } else {
        if (a.k != V_TENSOR && a.k != V_PATH) {
            ERR(loc, "'%s' cannot take %s on its left", binop_text(op), lw_value_kind(a));
            return v_none();
        }
        if (b.k != V_TENSOR && b.k != V_PATH) {
            ERR(loc, "'%s' cannot take %s on its right", binop_text(op), lw_value_kind(b));
            return v_none();
        }
        ta = lw_tensor(L, a, aloc);
        tb = lw_tensor(L, b, bloc);
    }
    if (op == '@')
        return v_tensor(lw_matmul(L, ta, tb, loc));
    return v_tensor(lw_binary(L, binop_to_op(op), ta, tb, loc));
}

static Value lookup(Lower *L, Env *env, const char *name, SrcLoc loc)
{
    Binding *b = env_find(env, name);
    if (b)
        return b->v;
    if (builtin_exists(name))
        return (Value){.k = V_BUILTIN, .s = name};
    int dt = dtype_from_name(name);
    if (dt >= 0)
        return (Value){.k = V_DTYPE, .i = dt};
    if (!strcmp(name, "inf"))
        return v_float(INFINITY);
    if (!strcmp(name, "pi"))
        return v_float(M_PI);
    const char *near = closest_name(env, name);
    if (near)
        ERR(loc, "unknown name '%s'; did you mean '%s'?", name, near);
    else
        ERR(loc, "unknown name '%s'", name);
    return v_none();
}

/* x[i], x[a:b], x[:, idx], table[tokens]: one item per leading dimension. */
static Value index_tensor(Lower *L, Env *env, Node *x, const Ast *items, SrcLoc loc)
{
    if (!x)
        return v_none();
    int n = ast_count(items);
    int axis = 0, nkeep = 0, drop[IR_MAX_RANK] = {0};
    Node *cur = x;
    for (const Ast *it = items; it; it = it->next) {
        if (axis >= cur->rank) {
            ERR(it->loc, "too many indices: %s has %d dimension%s, indexed with %d", tstr(L, x), x->rank,
                x->rank == 1 ? "" : "s", n);
            return v_none();
        }
        Dim size = cur->shape[axis];
        if (it->kind == AST_RANGE) {
            Dim lo = dim_const(0), hi = size;
            if (it->a) {
                Value v = eval(L, env, it->a);
                if (!lw_dim(L, v, it->a->loc, &lo))
                    return v_none();
                if (dim_is_const(lo) && dim_value(lo) < 0 && !dim_add(size, lo, &lo))
                    return v_none();
            }
            if (it->b) {
                Value v = eval(L, env, it->b);
                if (!lw_dim(L, v, it->b->loc, &hi))
                    return v_none();
                if (dim_is_const(hi) && dim_value(hi) < 0 && !dim_add(size, hi, &hi))
                    return v_none();
            }
            cur = lw_slice(L, cur, axis, lo, hi, it->loc);
            if (!cur)
                return v_none();
            axis++;
            nkeep++;
            continue;
        }
        Value v = eval(L, env, it);
        if (v.k == V_NONE)
            return v_none();
        if (v.k == V_INT || v.k == V_DIM) {
            Dim i, end;
            lw_dim(L, v, it->loc, &i);
            if (dim_is_const(i) && dim_value(i) < 0 && !dim_add(size, i, &i))
                return v_none();
            dim_add(i, dim_const(1), &end);
            if (dim_min(L->g, i) < 0 || dim_may_exceed(L, end, size)) {
                char b1[64], b2[64];
                ERR(it->loc, "index %s is out of range for dimension %d of %s%s", dim_str(L->g, i, b1, sizeof b1), axis,
                    tstr(L, x), dim_is_const(size) ? "" : arena_printf(L->a, " (%s can be as small as %lld)",
                                                                          dim_str(L->g, size, b2, sizeof b2), (long long)dim_min(L->g, size)));
                return v_none();
            }
            cur = lw_slice(L, cur, axis, i, end, it->loc);
            if (!cur)
                return v_none();
            drop[axis] = 1;
            axis++;
            continue;
        }
        Node *idx = lw_tensor(L, v, it->loc);
        if (!idx)
            return v_none();
        cur = lw_gather(L, cur, idx, axis, it->loc);
        if (!cur)
            return v_none();
        /* the index's dimensions replace the one indexed */
        for (int j = IR_MAX_RANK - 1; j > axis; j--)
            drop[j] = j - idx->rank + 1 > axis && j - idx->rank + 1 < IR_MAX_RANK ? drop[j - idx->rank + 1] : 0;
        for (int j = axis; j < axis + idx->rank && j < IR_MAX_RANK; j++)
            drop[j] = 0;
        axis += idx->rank;
    }
    (void)nkeep;
    int r = 0, any = 0;
    Dim shape[IR_MAX_RANK];
    for (int i = 0; i < cur->rank; i++) {
        if (drop[i]) {
            any = 1;
            continue;
        }
        shape[r++] = cur->shape[i];
    }
    return v_tensor(any ? lw_reshape(L, cur, r, shape, loc) : cur);
}

static Value eval_index(Lower *L, Env *env, const Ast *e)
{
    Value obj = eval(L, env, e->a);
    if (obj.k == V_NONE)
        return obj;
    /* w.h[3]: an integer index extends a weights path, unless the path already names a tensor
     * (then w.wte[3] is row 3 of wte); any other index needs the tensor. */
    if (obj.k == V_PATH && ast_count(e->list) == 1 && e->list->kind != AST_RANGE && !path_is_tensor(L, obj.s)) {
        Value i = eval(L, env, e->list);
        if (i.k == V_NONE)
            return i;
        if (i.k == V_INT)
            return (Value){.k = V_PATH, .s = path_join(L, obj.s, arena_printf(L->a, "%lld", (long long)i.i))};
    }
    if (obj.k == V_TUPLE) {
        Value i = ast_count(e->list) == 1 && e->list->kind != AST_RANGE ? eval(L, env, e->list) : v_none();
        if (i.k != V_INT) {
            if (i.k != V_NONE || ast_count(e->list) != 1)
                ERR(e->loc, "a tuple is indexed by one integer");
            return v_none();
        }
        int64_t k = i.i < 0 ? i.i + obj.n : i.i;
        if (k < 0 || k >= obj.n) {
            ERR(e->list->loc, "index %lld is out of range for a tuple of %d", (long long)i.i, obj.n);
            return v_none();
        }
        return obj.items[k];
    }
    if (obj.k != V_TENSOR && obj.k != V_PATH) {
        ERR(e->loc, "%s cannot be indexed", lw_value_kind(obj));
        return v_none();
    }
    return index_tensor(L, env, lw_tensor(L, obj, e->a->loc), e->list, e->loc);
}

static Value eval_attr(Lower *L, Env *env, const Ast *e)
{
    Value obj = eval(L, env, e->a);
    if (obj.k == V_NONE)
        return obj;
    if (obj.k == V_PATH && !(builtin_is_property(e->s) && path_is_tensor(L, obj.s)))
        return (Value){.k = V_PATH, .s = path_join(L, obj.s, e->s)};
    if ((obj.k == V_TENSOR || obj.k == V_PATH) && builtin_is_property(e->s)) {
        Node *x = lw_tensor(L, obj, e->a->loc);
        return x ? builtin_property(L, x, e->s, e->loc) : v_none();
    }
    if (obj.k == V_TENSOR && builtin_is_method(e->s))
        ERR(e->loc, "'%s' is a method: call it, as in x.%s(...)", e->s, e->s);
    else
        ERR(e->loc, "%s has no attribute '%s'", lw_value_kind(obj), e->s);
    return v_none();
}

static int eval_args(Lower *L, Env *env, const Ast *list, Args *a, int extra)
{
    int n = 0, nkw = 0, ok = 1;
    for (const Ast *x = list; x; x = x->next)
        x->kind == AST_KWARG ? nkw++ : n++;
    a->v = arena_alloc(L->a, sizeof(Value) * (size_t)(n + extra + 1));
    a->loc = arena_alloc(L->a, sizeof(SrcLoc) * (size_t)(n + extra + 1));
    a->kw = arena_alloc(L->a, sizeof(char *) * (size_t)(nkw + 1));
    a->kv = arena_alloc(L->a, sizeof(Value) * (size_t)(nkw + 1));
    a->kwloc = arena_alloc(L->a, sizeof(SrcLoc) * (size_t)(nkw + 1));
    a->kwused = arena_alloc(L->a, sizeof(int) * (size_t)(nkw + 1));
    a->n = extra;
    a->nkw = 0;
    int positional_after_kw = 0;
    for (const Ast *x = list; x; x = x->next) {
        if (x->kind == AST_KWARG) {
            for (int i = 0; i < a->nkw; i++)
                if (!strcmp(a->kw[i], x->s)) {
                    ERR(x->loc, "keyword argument '%s' given twice", x->s);
                    ok = 0;
                }
            a->kw[a->nkw] = x->s;
            a->kwloc[a->nkw] = x->loc;
            a->kv[a->nkw++] = eval(L, env, x->a);
            positional_after_kw = 1;
        } else {
            if (positional_after_kw) {
                ERR(x->loc, "positional argument after a keyword argument");
                ok = 0;
            }
            a->loc[a->n] = x->loc;
            a->v[a->n++] = eval(L, env, x);
        }
    }
    for (int i = 0; i < a->n; i++)
        if (i >= extra && a->v[i].k == V_NONE)
            ok = 0;
    for (int i = 0; i < a->nkw; i++)
        if (a->kv[i].k == V_NONE)
            ok = 0;
    return ok;
}

static Value eval_call(Lower *L, Env *env, const Ast *e)
{
    Args args;
    const Ast *callee = e->a;
    /* x.reshape(...): a method is the builtin with the object first */
    if (callee->kind == AST_ATTR && builtin_is_method(callee->s)) {
        Value obj = eval(L, env, callee->a);
        if (obj.k == V_NONE)
            return obj;
        /* a method on a weights path is a method on the tensor it names (an error if none) */
        if (obj.k == V_TENSOR || obj.k == V_PATH) {
            if (!eval_args(L, env, e->list, &args, 1))
                return v_none();
            args.v[0] = obj;
            args.loc[0] = callee->a->loc;
            return builtin_call(L, callee->s, &args, callee->loc);
        }
    }
    Value f = eval(L, env, callee);
    if (f.k == V_NONE)
        return f;
    if (f.k != V_FN && f.k != V_BUILTIN) {
        ERR(e->loc, "%s is not callable", lw_value_kind(f));
        return v_none();
    }
    if (!eval_args(L, env, e->list, &args, 0))
        return v_none();
    if (f.k == V_BUILTIN)
        return builtin_call(L, f.s, &args, callee->loc);
    return call_fn(L, f.fn, &args, e->loc);
}

static Value eval_node(Lower *L, Env *env, const Ast *e);

/* eval_node with a bound on its recursion, which otherwise follows the nesting of the file. */
static Value eval(Lower *L, Env *env, const Ast *e)
{
    if (L->nesting >= LW_MAX_NESTING) {
        if (!L->too_big)
            ERR(e->loc, "expression nested more than %d deep", LW_MAX_NESTING);
        L->too_big = 1;
        return v_none();
    }
    L->nesting++;
    Value v = eval_node(L, env, e);
    L->nesting--;
    return v;
}

static Value eval_node(Lower *L, Env *env, const Ast *e)
{
    switch (e->kind) {
    case AST_INT: return v_int(e->i);
    case AST_FLOAT: return v_float(e->f);
    case AST_BOOL: return v_bool((int)e->i);
    case AST_STRING: return (Value){.k = V_STR, .s = e->s};
    case AST_NAME: return lookup(L, env, e->s, e->loc);
    case AST_NEG: {
        Value v = eval(L, env, e->a);
        if (v.k == V_INT || v.k == V_BOOL)
            return v_int(-v.i);
        if (v.k == V_FLOAT)
            return v_float(ir_eval_scalar(OP_NEG, NULL, DT_F64, 1, &v.f));
        if (v.k == V_DIM) {
            Dim r;
            dim_mul(v.dim, dim_const(-1), &r);
            return v_dim(r);
        }
        if (v.k == V_NONE)
            return v;
        return v_tensor(lw_unary(L, OP_NEG, lw_tensor(L, v, e->loc), e->loc));
    }
    case AST_BINARY: {
        Value a = eval(L, env, e->a), b = eval(L, env, e->b);
        return binary(L, e->op, a, b, e->loc, e->a->loc, e->b->loc);
    }
    case AST_CALL: return eval_call(L, env, e);
    case AST_INDEX: return eval_index(L, env, e);
    case AST_ATTR: return eval_attr(L, env, e);
    case AST_TUPLE:
    case AST_LIST: {
        Value t = {.k = V_TUPLE, .n = ast_count(e->list)};
        t.items = arena_alloc(L->a, sizeof(Value) * (size_t)(t.n + 1));
        int i = 0;
        for (const Ast *x = e->list; x; x = x->next) {
            t.items[i] = eval(L, env, x);
            if (t.items[i++].k == V_NONE)
                return v_none();
        }
        return t;
    }
    case AST_RANGE: ERR(e->loc, "a range a:b can only appear inside [ ]"); return v_none();
    case AST_KWARG: ERR(e->loc, "a keyword argument can only appear in a call"); return v_none();
    default: ERR(e->loc, "this is a declaration, not an expression"); return v_none();
    }
}

/* ---------------------------------------------------------------- types */

/* Checks v against a declared type. With `bind`, names in the dimensions that are not defined are
 * bound to the actual sizes in bind (a function's generic dimensions, as in fn f(x: f32[N, D])). */
static int check_type(Lower *L, Env *env, Env *bind, Value v, const Ast *type, const char *what)
{
    if (v.k == V_NONE)
        return 0;
    int dt = dtype_from_name(type->s);
    if (dt < 0) {
        ERR(type->loc, "unknown dtype '%s' (kiln has f32, f16, bf16, f64, i64, i32, u32, i16, u16, i8, u8, bool)", type->s);
        return 0;
    }
    Node *x = v.k == V_TENSOR || v.k == V_PATH ? lw_tensor(L, v, type->loc) : NULL;
    if (!x) {
        if (v.k != V_TENSOR && v.k != V_PATH)
            ERR(type->loc, "%s: expected a tensor of type %s[...], got %s", what, type->s, lw_value_kind(v));
        return 0;
    }
    int rank = ast_count(type->list);
    Dim shape[IR_MAX_RANK];
    int ok = rank == x->rank && (int)x->dtype == dt, k = 0;
    for (const Ast *d = type->list; d && k < IR_MAX_RANK; d = d->next, k++) {
        if (bind && d->kind == AST_NAME && !env_find(env, d->s) && !env_find(bind, d->s) && k < x->rank) {
            shape[k] = x->shape[k];
            env_set(L, bind, d->s, v_dim(x->shape[k]), d->loc);
            continue;
        }
        Value dv = eval(L, bind ? bind : env, d);
        if (!lw_dim(L, dv, d->loc, &shape[k]))
            return 0;
        if (k < x->rank && !dim_eq(shape[k], x->shape[k]))
            ok = 0;
    }
    if (rank > IR_MAX_RANK) {
        ERR(type->loc, "a type has at most %d dimensions", IR_MAX_RANK);
        return 0;
    }
    if (!ok) {
        char buf[256];
        ERR(type->loc, "%s: type mismatch: declared %s, got %s", what,
            type_str(L->g, (DType)dt, rank, shape, buf, sizeof buf), tstr(L, x));
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- statements */

typedef struct Frame {
    Env *env;
    int in_fn;      /* inside a function body: `return` allowed, declarations not */
    int returned;
    Value ret;
} Frame;

static void exec_block(Lower *L, Frame *f, const Ast *block);

static void exec_assign(Lower *L, Frame *f, const Ast *s)
{
    Value v = eval(L, f->env, s->a);
    int n = ast_count(s->list);
    if (s->b && v.k != V_NONE)
        check_type(L, f->env, NULL, v, s->b, arena_printf(L->a, "'%s'", s->list->s));
    if (n == 1) {
        env_set(L, f->env, s->list->s, v, s->list->loc);
        return;
    }
    if (v.k != V_TUPLE && v.k != V_NONE)
        ERR(s->loc, "cannot unpack %s into %d names", lw_value_kind(v), n);
    else if (v.k == V_TUPLE && v.n != n)
        ERR(s->loc, "cannot unpack %d values into %d names", v.n, n);
    int i = 0;
    for (const Ast *t = s->list; t; t = t->next, i++)
        env_set(L, f->env, t->s, v.k == V_TUPLE && v.n == n ? v.items[i] : v_none(), t->loc);
}

static void exec_for(Lower *L, Frame *f, const Ast *s)
{
    Value from = eval(L, f->env, s->a), to = eval(L, f->env, s->b);
    for (int i = 0; i < 2; i++) {
        Value v = i ? to : from;
        if (v.k != V_INT && v.k != V_NONE) {
            ERR((i ? s->b : s->a)->loc, "loop bound is not a constant integer (got %s): loops are unrolled at compile time",
                lw_value_kind(v));
            return;
        }
    }
    if (from.k == V_NONE || to.k == V_NONE)
        return;
    if (to.i - from.i > 100000) {
        ERR(s->loc, "loop of %lld iterations is too long to unroll", (long long)(to.i - from.i));
        return;
    }
    /* the outermost loop counts the layers; an inner loop's iterations stay in its layer */
    int outer = L->g->layer < 0;
    for (int64_t i = from.i; i < to.i && !f->returned && !L->too_big; i++) {
        if (L->g->nnode > LW_MAX_NODES) { /* nested loops multiply */
            ERR(s->loc, "the model is too large: unrolling this loop makes more than %d nodes", LW_MAX_NODES);
            L->too_big = 1;
            break;
        }
        if (outer)
            L->g->layer = i < 0 ? -1 : i > INT32_MAX ? INT32_MAX : (int)i;
        env_set(L, f->env, s->s, v_int(i), s->loc);
        exec_block(L, f, s->c);
    }
    if (outer)
        L->g->layer = -1;
}

static int64_t eval_const_int(Lower *L, Env *env, const Ast *e, const char *what)
{
    Value v = eval(L, env, e);
    if (v.k == V_INT)
        return v.i;
    if (v.k != V_NONE)
        ERR(e->loc, "%s must be a constant integer, got %s", what, lw_value_kind(v));
    return -1;
}

static void decl_input(Lower *L, Frame *f, const Ast *s)
{
    for (const Ast *b = s->list; b; b = b->next) {
        int64_t bound = eval_const_int(L, f->env, b->a, "the bound of a symbolic size");
        if (bound < 0)
            continue;
        if (bound < 1) {
            ERR(b->a->loc, "the bound of %s must be at least 1", b->s);
            continue;
        }
        Binding *old = env_find(L->globals, b->s);
        if (old) {
            ERR(b->loc, "'%s' is already defined", b->s);
            diag_note(L->d, old->loc, "'%s' was defined here", b->s);
            continue;
        }
        int sym = ir_sym(L->g, b->s, bound);
        if (sym < 0) {
            ERR(b->loc, "too many symbolic sizes (at most %d)", IR_MAX_SYMS);
            continue;
        }
        env_set(L, L->globals, b->s, (Value){.k = V_DIM, .dim = dim_sym(sym)}, b->loc);
    }
    const Ast *type = s->a;
    /* until the declaration succeeds the input is V_NONE, so its uses raise no further errors */
    Binding *prev = env_find_local(L->globals, s->s);
    if (!prev || (prev->v.k == V_PATH && !*prev->v.s)) /* an input may take the name `w` */
        env_set(L, L->globals, s->s, v_none(), s->loc);
    else {
        ERR(s->loc, "'%s' is already defined", s->s);
        return;
    }
    int dt = dtype_from_name(type->s);
    if (dt < 0) {
        ERR(type->loc, "unknown dtype '%s' (kiln has f32, f16, bf16, f64, i64, i32, u32, i16, u16, i8, u8, bool)", type->s);
        return;
    }
    Dim shape[IR_MAX_RANK];
    int rank = 0, ok = 1;
    for (const Ast *d = type->list; d; d = d->next) {
        if (rank == IR_MAX_RANK) {
            ERR(d->loc, "a type has at most %d dimensions", IR_MAX_RANK);
            return;
        }
        if (d->kind == AST_NAME && !env_find(f->env, d->s) && !builtin_exists(d->s)) {
            ERR(d->loc, "unknown size '%s': declare its bound, as in `where %s <= 256`", d->s, d->s);
            ok = 0;
            rank++;
            continue;
        }
        Value v = eval(L, f->env, d);
        if (!lw_dim(L, v, d->loc, &shape[rank++]))
            ok = 0;
        else if (dim_is_const(shape[rank - 1]) && dim_value(shape[rank - 1]) < 0) {
            ERR(d->loc, "a dimension must be at least 0, got %lld", (long long)dim_value(shape[rank - 1]));
            ok = 0;
        }
    }
    if (!ok)
        return;
    Node *n = ir_source(L->g, OP_INPUT, (DType)dt, rank, shape, s->loc);
    n->name = s->s;
    env_set(L, L->globals, s->s, v_tensor(n), s->loc);
}

static void exec_stmt(Lower *L, Frame *f, const Ast *s)
{
    int top = !f->in_fn;
    switch (s->kind) {
    case AST_ASSIGN: exec_assign(L, f, s); return;
    case AST_FOR: exec_for(L, f, s); return;
    case AST_RETURN:
        if (top) {
            ERR(s->loc, "'return' outside a function: outputs are assigned by name, as in `logits = ...`");
            return;
        }
        f->ret = eval(L, f->env, s->a);
        f->returned = 1;
        return;
    case AST_MODEL:
    case AST_WEIGHTS:
    case AST_CONST:
    case AST_INPUT:
    case AST_OUTPUT:
    case AST_FN:
        if (!top || f->env != L->globals) {
            ERR(s->loc, "declarations belong at the top level of the model file, not inside %s",
                f->in_fn ? "a function" : "a loop");
            return;
        }
        break;
    default: UNREACHABLE();
    }
    switch (s->kind) {
    case AST_MODEL:
    case AST_WEIGHTS:
    case AST_FN:
    case AST_OUTPUT:
        return; /* collected before execution (see fe_compile) */
    case AST_CONST: {
        Binding *old = env_find_local(L->globals, s->s);
        if (old) {
            ERR(s->loc, "'%s' is already defined", s->s);
            diag_note(L->d, old->loc, "'%s' was defined here", s->s);
            return;
        }
        Value v = v_none();
        int overridden = 0;
        for (int i = 0; i < L->o->ndefine; i++)
            if (!strcmp(L->o->defines[i].name, s->s)) {
                const char *t = L->o->defines[i].value;
                char *end;
                errno = 0;
                long long iv = strtoll(t, &end, 10); /* 010 is ten, not octal eight */
                if (*t && !*end && !errno)
                    v = v_int(iv);
                else {
                    double fv = strtod(t, &end);
                    if (*t && !*end)
                        v = v_float(fv);
                    else
                        diag_fatal(L->d, "-D %s=%s: the value must be a number", s->s, t);
                }
                L->define_used[i] = 1;
                overridden = 1;
            }
        if (!overridden)
            v = eval(L, f->env, s->a);
        if (v.k != V_INT && v.k != V_FLOAT && v.k != V_BOOL && v.k != V_NONE) {
            ERR(s->a->loc, "a const must be a number, got %s", lw_value_kind(v));
            v = v_none();
        }
        env_set(L, L->globals, s->s, v, s->loc);
        return;
    }
    case AST_INPUT: decl_input(L, f, s); return;
    default: UNREACHABLE();
    }
}

static void exec_block(Lower *L, Frame *f, const Ast *block)
{
    for (const Ast *s = block->list; s && !f->returned; s = s->next)
        exec_stmt(L, f, s);
}

static Value call_fn(Lower *L, const Ast *fn, Args *args, SrcLoc loc)
{
    for (int i = 0; i < L->depth; i++)
        if (L->stack[i] == fn) {
            ERR(loc, "recursive call of '%s': functions are inlined, so recursion would never end", fn->s);
            diag_note(L->d, fn->loc, "'%s' is defined here", fn->s);
            return v_none();
        }
    if (L->depth == (int)(sizeof L->stack / sizeof L->stack[0])) {
        ERR(loc, "calls nested too deeply");
        return v_none();
    }
    int nparam = ast_count(fn->list);
    if (args->n > nparam) {
        ERR(loc, "'%s' takes %d argument%s, got %d", fn->s, nparam, nparam == 1 ? "" : "s", args->n);
        return v_none();
    }
    Env *env = env_new(L, L->globals);
    Value *vals = arena_alloc(L->a, sizeof(Value) * (size_t)(nparam + 1));
    int *set = arena_alloc(L->a, sizeof(int) * (size_t)(nparam + 1));
    for (int i = 0; i < args->n; i++) {
        vals[i] = args->v[i];
        set[i] = 1;
    }
    int ok = 1;
    for (int k = 0; k < args->nkw; k++) {
        int i = 0;
        const Ast *p = fn->list;
        for (; p && strcmp(p->s, args->kw[k]); p = p->next)
            i++;
        if (!p) {
            ERR(args->kwloc[k], "'%s' has no parameter '%s'", fn->s, args->kw[k]);
            ok = 0;
        } else if (set[i]) {
            ERR(args->kwloc[k], "parameter '%s' of '%s' given twice", p->s, fn->s);
            ok = 0;
        } else {
            vals[i] = args->kv[k];
            set[i] = 1;
        }
    }
    int i = 0;
    for (const Ast *p = fn->list; p; p = p->next, i++)
        if (!set[i]) {
            ERR(loc, "'%s' takes %d argument%s, got %d (missing '%s')", fn->s, nparam, nparam == 1 ? "" : "s",
                args->n + args->nkw, p->s);
            return v_none();
        }
    if (!ok)
        return v_none();
    i = 0;
    for (const Ast *p = fn->list; p; p = p->next, i++) {
        if (p->a && !check_type(L, env, env, vals[i], p->a, arena_printf(L->a, "argument '%s' of '%s'", p->s, fn->s)))
            ok = 0;
        env_set(L, env, p->s, vals[i], p->loc);
    }
    if (!ok)
        return v_none();
    /* the nodes of the call are in the scope of its first weight-path argument (block(x, w.h[3]):
     * "h.3"), or, without one, in the caller's scope extended by the function's name */
    const char *outer = L->g->scope, *scope = NULL;
    for (int k = 0; k < nparam && !scope; k++)
        if (vals[k].k == V_PATH && vals[k].s[0])
            scope = vals[k].s;
    if (!scope)
        scope = outer ? arena_printf(L->a, "%s.%s", outer, fn->s) : fn->s;
    L->g->scope = scope;
    L->stack[L->depth++] = fn;
    Frame f = {.env = env, .in_fn = 1};
    exec_block(L, &f, fn->b);
    L->depth--;
    L->g->scope = outer;
    if (!f.returned) {
        ERR(fn->loc, "function '%s' ends without a return", fn->s);
        return v_none();
    }
    if (fn->a && f.ret.k != V_NONE &&
        !check_type(L, env, NULL, f.ret, fn->a, arena_printf(L->a, "result of '%s'", fn->s)))
        return v_none();
    return f.ret;
}

/* ---------------------------------------------------------------- the model file */

/* The weights path as written is relative to the model file's directory. */
static const char *resolve_relative(Lower *L, const char *path)
{
    if (path[0] == '/' || !L->dir)
        return path;
    return arena_printf(L->a, "%s/%s", L->dir, path);
}

Graph *fe_compile(const char *path, const FrontendOptions *o, Diag *d)
{
    char *text = diag_read_text(d, path, "model file");
    if (!text)
        return NULL;
    Graph *g = fe_compile_text(path, text, o, d);
    free(text);
    return g;
}

Graph *fe_compile_text(const char *path, const char *text, const FrontendOptions *o, Diag *d)
{
    static const FrontendOptions none = {0};
    if (!o)
        o = &none;
    Graph *g = ir_graph_new();
    Lower L0 = {.g = g, .d = d, .a = g->arena, .o = o}, *L = &L0;
    g->source = arena_strdup(g->arena, path);
    const char *slash = strrchr(path, '/');
    L->dir = slash ? arena_strndup(g->arena, path, (size_t)(slash - path)) : NULL;
    const Ast *root = parse_file(path, text, g->arena, d, &L->file);
    if (!root) {
        ir_graph_free(g);
        return NULL;
    }
    SrcLoc file_start = {L->file, 1, 1};
    L->define_used = arena_alloc(g->arena, sizeof(int) * (size_t)(o->ndefine + 1));
    L->globals = env_new(L, NULL);
    env_set(L, L->globals, "w", (Value){.k = V_PATH, .s = ""}, (SrcLoc){0});

    /* Declarations that do not depend on order: the model's name, its weights file, its functions
     * (so a function may be called above its definition) and its outputs. */
    const Ast *model = NULL, *weights = NULL;
    for (const Ast *s = root->list; s; s = s->next) {
        if (s->kind == AST_MODEL) {
            if (model)
                ERR(s->loc, "the model is already named '%s'", model->s);
            model = s;
        } else if (s->kind == AST_WEIGHTS) {
            if (weights)
                ERR(s->loc, "the weights file is already given");
            weights = s;
        } else if (s->kind == AST_FN) {
            Binding *old = env_find_local(L->globals, s->s);
            if (old) {
                ERR(s->loc, "'%s' is already defined", s->s);
                diag_note(d, old->loc, "'%s' was defined here", s->s);
            } else /* a function may shadow a builtin of the same name, as in Python */
                env_set(L, L->globals, s->s, (Value){.k = V_FN, .fn = s}, s->loc);
        }
    }
    if (!model)
        ERR(file_start, "the file does not name its model: start it with `model NAME`");
    g->model = model ? model->s : "model";
    if (o->weights_override)
        L->wpath = arena_strdup(g->arena, o->weights_override);
    else if (weights)
        L->wpath = resolve_relative(L, weights->s);
    if (weights)
        L->wloc = weights->loc;
    g->weights_path = L->wpath;

    Frame top = {.env = L->globals};
    exec_block(L, &top, root);

    for (int i = 0; i < o->ndefine; i++)
        if (!L->define_used[i])
            diag_fatal(d, "-D %s: the model has no const %s", o->defines[i].name, o->defines[i].name);

    /* Outputs: each declared output is the top-level variable of its name, checked against its type. */
    int noutput = 0;
    for (const Ast *s = root->list; s; s = s->next) {
        if (s->kind != AST_OUTPUT)
            continue;
        noutput++;
        Binding *b = env_find_local(L->globals, s->s);
        for (int i = 0; i < g->noutput; i++)
            if (!strcmp(g->outputs[i].name, s->s))
                ERR(s->loc, "output '%s' is declared twice", s->s);
        if (!b || b->v.k == V_FN) {
            ERR(s->loc, "output '%s' is declared but never assigned", s->s);
            continue;
        }
        if (b->v.k == V_NONE)
            continue;
        if (!check_type(L, L->globals, NULL, b->v, s->a, arena_printf(g->arena, "output '%s'", s->s)))
            continue;
        ir_add_output(g, s->s, lw_tensor(L, b->v, s->loc));
    }
    if (!noutput && diag_errors(d) == 0)
        ERR(file_start, "the model declares no output: add `output NAME: TYPE`");
    /* a tensor no machine holds (a hostile or mistyped shape), before anything computes its size */
    for (int i = 0; i < g->nnode && !diag_errors(d); i++) {
        const Node *n = g->nodes[i];
        int64_t count = 1;
        for (int k = 0; k < n->rank; k++) {
            int64_t m = dim_max(g, n->shape[k]);
            if (m < 0 || __builtin_mul_overflow(count, m, &count) || count > LW_MAX_ELEMENTS) {
                char tb[256];
                ERR(n->loc, "the tensor %s has more than 2^40 elements (every symbol at its bound): more than kiln compiles",
                    node_type_str(g, n, tb, sizeof tb));
                break;
            }
        }
    }
    free(L->wref);
    if (diag_errors(d)) {
        if (L->w)
            st_close(L->w);
        ir_graph_free(g);
        return NULL;
    }
    ir_compact(g);
    return g;
}
