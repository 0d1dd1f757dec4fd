/* elementwise.c: elementwise ops, data movement and the generated sources (arange, causal_mask).
 *
 * All of them are one pattern: a loop nest over the output's dimensions in C order, each input read
 * through a View (strides, 0 where it broadcasts, an offset for slices), one scalar computed and
 * stored. Transpose, expand, slice and concat are copies through such views; gather reads its index
 * tensor inside the nest and checks it. The innermost loop walks the output contiguously, which is
 * the loop LLVM's vectoriser sees; the hand-written vector kernels of later work replace the hot ones.
 *
 * Scalars are computed in the compute types of loops.c. Float semantics follow the interpreter:
 * maximum/minimum propagate NaN, relu keeps NaN; exp, tanh and erf are polynomial code (loops.c) so
 * that loops using them vectorise.
 */
#include "codegen/codegen.h"
#include "runtime/kiln_rt.h"

#include <math.h>

typedef struct Map {
    const Node *n;
    View out;
    int nin;
    View in[3];
} Map;

static LLVMValueRef fconst(Cg *cg, LLVMTypeRef t, double v)
{
    return LLVMConstReal(t, v);
}

static LLVMValueRef float_unary(Cg *cg, const Node *n, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef one = fconst(cg, t, 1.0);
    switch (n->op) {
    case OP_NEG: return LLVMBuildFNeg(cg->b, x, "");
    case OP_ABS: return cg_intrinsic(cg, "llvm.fabs", &x, 1);
    case OP_EXP: return cg_exp(cg, x);
    case OP_LOG: return cg_intrinsic(cg, "llvm.log", &x, 1);
    case OP_SQRT: return cg_intrinsic(cg, "llvm.sqrt", &x, 1);
    case OP_RSQRT: return LLVMBuildFDiv(cg->b, one, cg_intrinsic(cg, "llvm.sqrt", &x, 1), "");
    case OP_TANH: return cg_tanh(cg, x);
    case OP_ERF: return cg_erf(cg, x);
    case OP_SIN: return cg_intrinsic(cg, "llvm.sin", &x, 1);
    case OP_COS: return cg_intrinsic(cg, "llvm.cos", &x, 1);
    case OP_SIGMOID:
    case OP_SILU: {
        LLVMValueRef nx = LLVMBuildFNeg(cg->b, x, "");
        LLVMValueRef e = cg_exp(cg, nx);
        LLVMValueRef s = LLVMBuildFDiv(cg->b, one, LLVMBuildFAdd(cg->b, one, e, ""), "");
        return n->op == OP_SIGMOID ? s : LLVMBuildFMul(cg->b, x, s, "");
    }
    case OP_RELU: {
        LLVMValueRef le = LLVMBuildFCmp(cg->b, LLVMRealOLE, x, fconst(cg, t, 0), "");
        return LLVMBuildSelect(cg->b, le, fconst(cg, t, 0), x, "");
    }
    case OP_GELU: {
        LLVMValueRef half_x = LLVMBuildFMul(cg->b, x, fconst(cg, t, 0.5), "");
        LLVMValueRef inner;
        if (n->at.approx) {
            LLVMValueRef x3 = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, x, x, ""), x, "");
            LLVMValueRef u = LLVMBuildFAdd(cg->b, x, LLVMBuildFMul(cg->b, x3, fconst(cg, t, 0.044715), ""), "");
            inner = cg_tanh(cg, LLVMBuildFMul(cg->b, u, fconst(cg, t, sqrt(2.0 / M_PI)), ""));
        } else {
            inner = cg_erf(cg, LLVMBuildFMul(cg->b, x, fconst(cg, t, M_SQRT1_2), ""));
        }
        return LLVMBuildFMul(cg->b, half_x, LLVMBuildFAdd(cg->b, one, inner, ""), "");
    }
    default: UNREACHABLE();
    }
}

/* An integer op on x of dtype dt held in an i64 (u64: the same bits, read as unsigned); the result in
 * the same form (dt), which the caller converts to the node's dtype. */
static LLVMValueRef int_unary(Cg *cg, const Node *n, DType dt, LLVMValueRef x)
{
    LLVMValueRef zero = LLVMConstNull(LLVMTypeOf(x));
    int u = dt == DT_U64; /* no value is below 0: abs and relu keep it */
    switch (n->op) {
    case OP_NEG: return LLVMBuildSub(cg->b, zero, x, "");
    case OP_ABS: return u ? x : LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, x, zero, ""),
                                                LLVMBuildSub(cg->b, zero, x, ""), x, "");
    case OP_RELU: return u ? x : LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, x, zero, ""), x, zero, "");
    default: {
        /* transcendental ops on integers are computed in double and converted back */
        LLVMValueRef f = cg_convert(cg, x, dt, DT_F64);
        return cg_convert(cg, float_unary(cg, n, f), DT_F64, dt);
    }
    }
}

static LLVMValueRef float_binary(Cg *cg, Op op, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef args[2] = {a, b};
    switch (op) {
    case OP_ADD: return LLVMBuildFAdd(cg->b, a, b, "");
    case OP_SUB: return LLVMBuildFSub(cg->b, a, b, "");
    case OP_MUL: return LLVMBuildFMul(cg->b, a, b, "");
    case OP_DIV: return LLVMBuildFDiv(cg->b, a, b, "");
    case OP_POW: return cg_intrinsic(cg, "llvm.pow", args, 2);
    case OP_MAXIMUM: return cg_intrinsic(cg, "llvm.maximum", args, 2);
    case OP_MINIMUM: return cg_intrinsic(cg, "llvm.minimum", args, 2);
    case OP_LT: return LLVMBuildFCmp(cg->b, LLVMRealOLT, a, b, "");
    case OP_LE: return LLVMBuildFCmp(cg->b, LLVMRealOLE, a, b, "");
    case OP_GT: return LLVMBuildFCmp(cg->b, LLVMRealOGT, a, b, "");
    case OP_GE: return LLVMBuildFCmp(cg->b, LLVMRealOGE, a, b, "");
    case OP_EQ: return LLVMBuildFCmp(cg->b, LLVMRealOEQ, a, b, "");
    case OP_NE: return LLVMBuildFCmp(cg->b, LLVMRealUNE, a, b, "");
    default: UNREACHABLE();
    }
}

/* The same for two operands of dtype dt: u64 divides and compares unsigned. */
static LLVMValueRef int_binary(Cg *cg, Op op, DType dt, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef zero = LLVMConstNull(LLVMTypeOf(a));
    int u = dt == DT_U64;
    if (u && op == OP_DIV) /* x / 0 is 0, as for the signed types */
        return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, b, zero, ""), zero,
                               LLVMBuildUDiv(cg->b, a, LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, b, zero, ""),
                                                                      LLVMConstInt(LLVMTypeOf(b), 1, 0), b, ""), ""), "");
    switch (op) {
    case OP_ADD: return LLVMBuildAdd(cg->b, a, b, "");
    case OP_SUB: return LLVMBuildSub(cg->b, a, b, "");
    case OP_MUL: return LLVMBuildMul(cg->b, a, b, "");
    case OP_DIV: {
        /* C's truncating division; x / 0 is 0 and INT_MIN / -1 wraps, as in the interpreter */
        LLVMValueRef is0 = LLVMBuildICmp(cg->b, LLVMIntEQ, b, zero, "");
        LLVMValueRef ism1 = LLVMBuildICmp(cg->b, LLVMIntEQ, b, LLVMConstAllOnes(LLVMTypeOf(b)), "");
        LLVMValueRef safe = LLVMBuildSelect(cg->b, LLVMBuildOr(cg->b, is0, ism1, ""), LLVMConstInt(LLVMTypeOf(b), 1, 0), b, "");
        LLVMValueRef q = LLVMBuildSDiv(cg->b, a, safe, "");
        q = LLVMBuildSelect(cg->b, ism1, LLVMBuildSub(cg->b, zero, a, ""), q, "");
        return LLVMBuildSelect(cg->b, is0, zero, q, "");
    }
    case OP_POW: {
        LLVMValueRef fa = cg_convert(cg, a, dt, DT_F64), fb = cg_convert(cg, b, dt, DT_F64);
        return cg_convert(cg, float_binary(cg, OP_POW, fa, fb), DT_F64, dt);
    }
    case OP_MAXIMUM: return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, u ? LLVMIntUGE : LLVMIntSGE, a, b, ""), a, b, "");
    case OP_MINIMUM: return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, u ? LLVMIntULE : LLVMIntSLE, a, b, ""), a, b, "");
    case OP_LT: return LLVMBuildICmp(cg->b, u ? LLVMIntULT : LLVMIntSLT, a, b, "");
    case OP_LE: return LLVMBuildICmp(cg->b, u ? LLVMIntULE : LLVMIntSLE, a, b, "");
    case OP_GT: return LLVMBuildICmp(cg->b, u ? LLVMIntUGT : LLVMIntSGT, a, b, "");
    case OP_GE: return LLVMBuildICmp(cg->b, u ? LLVMIntUGE : LLVMIntSGE, a, b, "");
    case OP_EQ: return LLVMBuildICmp(cg->b, LLVMIntEQ, a, b, "");
    case OP_NE: return LLVMBuildICmp(cg->b, LLVMIntNE, a, b, "");
    default: UNREACHABLE();
    }
}

/* The scalar result of an elementwise node from its loaded inputs, in the compute type of its dtype. */
static LLVMValueRef scalar(Cg *cg, const Node *n, LLVMValueRef *x)
{
    DType in = n->in[0]->dtype;
    int fl = dtype_traits[in].is_float;
    switch (op_info[n->op].min_in) {
    case 1:
        if (n->op == OP_CAST)
            return cg_convert(cg, x[0], in, n->dtype);
        if (in == DT_BOOL)
            x[0] = cg_convert(cg, x[0], DT_BOOL, DT_I64);
        if (fl)
            return float_unary(cg, n, x[0]);
        in = in == DT_BOOL ? DT_I64 : in;
        return cg_convert(cg, int_unary(cg, n, in, x[0]), in, n->dtype);
    case 2:
        if (in == DT_BOOL && (n->op == OP_EQ || n->op == OP_NE))
            return LLVMBuildICmp(cg->b, n->op == OP_EQ ? LLVMIntEQ : LLVMIntNE, x[0], x[1], "");
        if (in == DT_BOOL) {
            /* arithmetic on bools as the interpreter does it: in double, then nonzero is true */
            LLVMValueRef a = cg_convert(cg, x[0], DT_BOOL, DT_F64), b = cg_convert(cg, x[1], DT_BOOL, DT_F64);
            LLVMValueRef r = float_binary(cg, n->op, a, b);
            return op_info[n->op].flags & F_CMP ? r : cg_convert(cg, r, DT_F64, n->dtype);
        }
        return fl ? float_binary(cg, n->op, x[0], x[1]) : int_binary(cg, n->op, in, x[0], x[1]);
    case 3: /* where */
        return LLVMBuildSelect(cg->b, x[0], x[1], x[2], "");
    default: UNREACHABLE();
    }
}

/* ---------------------------------------------------------------- fused loops
 *
 * A stored elementwise node (a root) computes, per element, the tree of inline nodes under it
 * (fuse-ops, passes/fuse_loops.c): each inline node's scalar from its inputs' scalars, each stored
 * value loaded through a view broadcast to the root's shape, each value computed once per element
 * however often the tree reads it. The loop runs over rows (every dimension but the last, flattened)
 * and, inside, along the last dimension, where every view moves by 0 or 1 element: the loop LLVM
 * vectorises. Large loops are split by rows over the runtime's threads. When the tree holds an inline
 * matmul, the same row loop is the matmul's epilogue: gemm.c calls it on each micro-tile of the
 * product, in the output buffer the product was just written to, reading the product's element where
 * the tree has the matmul.
 */

static void collect(const Node *n, Fused *f)
{
    for (int j = 0; j < n->nin; j++) {
        const Node *x = n->in[j];
        if (x->inl && ir_is_product(x)) {
            f->mm = x;
            continue;
        }
        if (x->inl) {
            collect(x, f);
            continue;
        }
        int seen = 0;
        for (int k = 0; k < f->nleaf; k++)
            seen |= f->leaf[k] == x;
        if (!seen) {
            KILN_ASSERT(f->nleaf < CG_MAX_LEAVES);
            f->leaf[f->nleaf++] = x;
        }
    }
}

int cg_fused_collect(const Node *root, Fused *f)
{
    *f = (Fused){.root = root};
    collect(root, f);
    int fused = 0;
    for (int j = 0; j < root->nin; j++)
        fused |= root->in[j]->inl;
    return fused;
}

typedef struct Eval {
    const Fused *f;
    View leaf[CG_MAX_LEAVES];
    LLVMValueRef acc;  /* the matmul's element, when the tree has one */
    int nmemo;
    const Node *memo_node[64];
    LLVMValueRef memo_val[64];
} Eval;

static LLVMValueRef eval(Cg *cg, Eval *e, const Node *n, int rank, LLVMValueRef *idx)
{
    if (n == e->f->mm)
        return e->acc;
    if (n != e->f->root && !n->inl) {
        for (int k = 0; k < e->f->nleaf; k++)
            if (e->f->leaf[k] == n)
                return cg_load(cg, e->leaf[k].base, n->dtype, cg_view_index(cg, &e->leaf[k], rank, idx));
        UNREACHABLE();
    }
    for (int k = 0; k < e->nmemo; k++)
        if (e->memo_node[k] == n)
            return e->memo_val[k];
    LLVMValueRef x[3];
    for (int j = 0; j < n->nin; j++)
        x[j] = eval(cg, e, n->in[j], rank, idx);
    LLVMValueRef v = scalar(cg, n, x);
    if (e->nmemo < 64) {
        e->memo_node[e->nmemo] = n;
        e->memo_val[e->nmemo++] = v;
    }
    return v;
}

/* Rows [r0, r1) of the root (its dimensions but the last, flattened), columns [c0, c1) of each. */
static void fused_rows(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *leafp, LLVMValueRef r0,
                       LLVMValueRef r1, LLVMValueRef c0, LLVMValueRef c1, LLVMValueRef acc, LLVMValueRef ldacc)
{
    const Node *n = f->root;
    int rank = n->rank > 0 ? n->rank : 1;
    LLVMValueRef dims[IR_MAX_RANK], idx[IR_MAX_RANK];
    if (n->rank > 0)
        cg_shape(cg, n, dims);
    else
        dims[0] = cg_i64(cg, 1);
    Eval e = {.f = f};
    for (int k = 0; k < f->nleaf; k++)
        e.leaf[k] = cg_view_broadcast(cg, f->leaf[k], leafp[k], rank);
    LLVMValueRef cols = dims[rank - 1];
    RowLoop lr = cg_rows_begin(cg, rank, dims, r0, r1, idx);
    LLVMValueRef base = LLVMBuildMul(cg->b, lr.loop.iv, cols, "");
    Loop lc = cg_loop_begin(cg, c0, c1, "col");
    idx[rank - 1] = lc.iv;
    LLVMValueRef at = LLVMBuildAdd(cg->b, base, lc.iv, "");
    e.nmemo = 0;
    if (f->mm && acc) /* the matmul's value in a tile: acc[(row - r0) * ldacc + col - c0] */
        e.acc = cg_load(cg, acc, DT_F32,
                        LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, lr.loop.iv, r0, ""), ldacc, ""),
                                     LLVMBuildSub(cg->b, lc.iv, c0, ""), ""));
    else if (f->mm) /* in the output itself */
        e.acc = cg_load(cg, out, DT_F32, at);
    cg_store(cg, out, n->dtype, at, eval(cg, &e, n, rank, idx));
    cg_loop_end(cg, &lc);
    cg_rows_end(cg, &lr);
}

static LLVMValueRef row_count(Cg *cg, const Node *n, LLVMValueRef *cols)
{
    LLVMValueRef dims[IR_MAX_RANK];
    if (n->rank == 0) {
        *cols = cg_i64(cg, 1);
        return cg_i64(cg, 1);
    }
    cg_shape(cg, n, dims);
    *cols = dims[n->rank - 1];
    return cg_numel(cg, n->rank - 1, dims);
}

/* The leaf whose buffer the root's result overwrites (plan-memory's in place), or -1. */
static int inplace_leaf(const Cg *cg, const Fused *f)
{
    if (!f->root->inplace)
        return -1;
    const Place *o = &cg->plan.place[f->root->id];
    for (int k = 0; k < f->nleaf; k++) {
        const Place *l = &cg->plan.place[f->leaf[k]->id];
        if (l->home == o->home && l->index == o->index && l->offset == o->offset)
            return k;
    }
    return -1;
}

typedef struct Rows {
    const Fused *f;
    int alias; /* inplace_leaf */
} Rows;

static void rows_range(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Rows *r = ctx;
    LLVMValueRef cols, leafp[CG_MAX_LEAVES];
    row_count(cg, r->f->root, &cols);
    /* the leaf read in place is read through the output's pointer: then LLVM sees each element
     * loaded and stored at the same address, not two pointers that might overlap */
    for (int k = 0; k < r->f->nleaf; k++)
        leafp[k] = k == r->alias ? cap[0] : cap[k + 1];
    fused_rows(cg, r->f, cap[0], leafp, begin, end, cg_i64(cg, 0), cols, NULL, NULL);
}

/* The loop of a root without a matmul: over the pool when it is large. */
static void fused_loop(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *leafp)
{
    LLVMValueRef cols, rows = row_count(cg, f->root, &cols);
    LLVMValueRef cap[CG_MAX_LEAVES + 1];
    Rows r = {f, inplace_leaf(cg, f)};
    cap[0] = out;
    for (int k = 0; k < f->nleaf; k++)
        cap[k + 1] = leafp[k];
    char name[64];
    snprintf(name, sizeof name, "node%d_%s_rows", f->root->id, op_info[f->root->op].name);
    cg_parallel_work(cg, rows, LLVMBuildMul(cg->b, rows, cols, ""), f->nleaf + 1, cap, rows_range, &r, name);
}

LLVMValueRef cg_fused_epilogue(Cg *cg, const Fused *f, int tile)
{
    /* void epi(ptr out, ptr leaves, ptr syms, i64 r0, i64 r1, i64 c0, i64 c1): rows [r0, r1) and
     * columns [c0, c1) of the output, the matmul's values in it; with tile, two more parameters,
     * (ptr acc, i64 ldacc): the matmul's values at acc (row r0, column c0; rows ldacc floats apart),
     * a micro-tile on the caller's stack that overlaps nothing else (noalias: LLVM vectorises the
     * loop without checks; reading the values from C through a pointer it could not tell from out
     * left fc1's GELU epilogue unvectorised: 2% -> 9% of ViT-B/16 fp32) */
    LLVMTypeRef params[9] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64};
    char name[64];
    snprintf(name, sizeof name, "node%d_%s_epilogue%s", f->root->id, op_info[f->root->op].name, tile ? "_tile" : "");
    LLVMValueRef fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, params, tile ? 9 : 7, 0));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    if (tile)
        LLVMAddAttributeAtIndex(fn, 8, LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
    LLVMValueRef saved_fn = cg->fn, saved_syms = cg->syms, saved_status = cg->status;
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->b);
    cg->fn = fn;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry"));
    cg->syms = LLVMGetParam(fn, 2);
    cg->status = cg_alloca(cg, cg->i32, "status");
    LLVMValueRef leafp[CG_MAX_LEAVES];
    for (int k = 0; k < f->nleaf; k++) {
        LLVMValueRef slot = LLVMBuildGEP2(cg->b, cg->ptr, LLVMGetParam(fn, 1), (LLVMValueRef[]){cg_i64(cg, k)}, 1, "");
        leafp[k] = LLVMBuildLoad2(cg->b, cg->ptr, slot, "");
    }
    fused_rows(cg, f, LLVMGetParam(fn, 0), leafp, LLVMGetParam(fn, 3), LLVMGetParam(fn, 4), LLVMGetParam(fn, 5),
               LLVMGetParam(fn, 6), tile ? LLVMGetParam(fn, 7) : NULL, tile ? LLVMGetParam(fn, 8) : NULL);
    LLVMBuildRetVoid(cg->b);
    cg->fn = saved_fn;
    cg->syms = saved_syms;
    cg->status = saved_status;
    LLVMPositionBuilderAtEnd(cg->b, saved_bb);
    return fn;
}

LLVMValueRef cg_fused_leaves(Cg *cg, const Fused *f, LLVMValueRef *leafp)
{
    if (!f->nleaf)
        return LLVMConstNull(cg->ptr);
    LLVMValueRef leaves = cg_alloca(cg, LLVMArrayType2(cg->ptr, (uint64_t)f->nleaf), "leaves");
    for (int i = 0; i < f->nleaf; i++)
        LLVMBuildStore(cg->b, leafp[i], LLVMBuildGEP2(cg->b, cg->ptr, leaves, (LLVMValueRef[]){cg_i64(cg, i)}, 1, ""));
    return leaves;
}

int cg_fused(Cg *cg, const Fused *f, LLVMValueRef out, LLVMValueRef *in)
{
    if (f->mm) {
        if (f->mm->op == OP_QMATMUL ? cg_quant_fused(cg, f, out, in) : cg_gemm_fused(cg, f, out, in)) {
            diag_error(cg->d, f->root->loc, "internal error: the matmul under this node cannot run its epilogue");
            return -1;
        }
        return 0;
    }
    fused_loop(cg, f, out, in);
    return 0;
}

int cg_elementwise(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    Fused f;
    cg_fused_collect(n, &f);
    LLVMValueRef leafp[CG_MAX_LEAVES];
    for (int k = 0; k < f.nleaf; k++)
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] == f.leaf[k])
                leafp[k] = in[j];
    fused_loop(cg, &f, out, leafp);
    return 0;
}

/* ---------------------------------------------------------------- movement */

/* The output as a contiguous view. */
static View out_view(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *dims)
{
    View v = {.base = out, .dtype = n->dtype, .offset = cg_i64(cg, 0)};
    cg_strides(cg, n->rank, dims, v.stride);
    return v;
}

static void copy_body(Cg *cg, void *ctx, LLVMValueRef *idx)
{
    Map *m = ctx;
    int rank = m->n->rank;
    LLVMValueRef v = cg_load(cg, m->in[0].base, m->in[0].dtype, cg_view_index(cg, &m->in[0], rank, idx));
    cg_store(cg, m->out.base, m->out.dtype, cg_view_index(cg, &m->out, rank, idx), v);
}

typedef struct GatherCtx {
    Cg *cg;
    const Node *n;
    View out, table, idx; /* idx iterated over its own dims: strides set for the output's dims */
    LLVMValueRef limit;   /* size of the gathered axis */
    LLVMValueRef tstride; /* stride of the gathered axis in the table */
    int64_t nr;           /* the table is a packed copy with panels of nr rows (cg_gemm_panel_width), or 0 */
} GatherCtx;

static void gather_body(Cg *cg, void *ctx, LLVMValueRef *idx)
{
    GatherCtx *c = ctx;
    int rank = c->n->rank;
    LLVMValueRef i = cg_load(cg, c->idx.base, c->idx.dtype, cg_view_index(cg, &c->idx, rank, idx));
    /* an index out of range reads row 0 and records the error, which the entry returns */
    LLVMValueRef bad = LLVMBuildOr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, i, cg_i64(cg, 0), ""),
                                   LLVMBuildICmp(cg->b, LLVMIntSGE, i, c->limit, ""), "");
    /* a kv-cache check says what failed (kiln_rt.h's RT_ERR_*), another gather which node */
    unsigned long long id = c->n->at.check ? RT_ERR_CHECK + (unsigned long long)c->n->at.check
                                           : (unsigned long long)c->n->id + 1;
    LLVMValueRef code = LLVMBuildSelect(cg->b, bad, LLVMConstInt(cg->i32, id, 0),
                                        LLVMBuildLoad2(cg->b, cg->i32, cg->status, ""), "");
    LLVMBuildStore(cg->b, code, cg->status);
    i = LLVMBuildSelect(cg->b, bad, cg_i64(cg, 0), i, "");
    LLVMValueRef row;
    if (c->nr) /* row i starts at (i / nr) * D * nr + i % nr of the panels */
        row = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildSDiv(cg->b, i, cg_i64(cg, c->nr), ""), c->tstride, ""),
                           LLVMBuildSRem(cg->b, i, cg_i64(cg, c->nr), ""), "");
    else
        row = LLVMBuildMul(cg->b, i, c->tstride, "");
    LLVMValueRef t = LLVMBuildAdd(cg->b, cg_view_index(cg, &c->table, rank, idx), row, "");
    LLVMValueRef v = cg_load(cg, c->table.base, c->table.dtype, t);
    cg_store(cg, c->out.base, c->out.dtype, cg_view_index(cg, &c->out, rank, idx), v);
}

/* The input of a transpose, expand or slice as a view iterated by the output's indices. */
static View moved_view(Cg *cg, const Node *n, LLVMValueRef in)
{
    const Node *x = n->in[0];
    LLVMValueRef idims[IR_MAX_RANK], istr[IR_MAX_RANK];
    cg_shape(cg, x, idims);
    cg_strides(cg, x->rank, idims, istr);
    View v = {.base = in, .dtype = x->dtype, .offset = cg_i64(cg, 0)};
    switch (n->op) {
    case OP_TRANSPOSE:
        for (int i = 0; i < n->rank; i++)
            v.stride[i] = istr[n->at.perm[i]];
        break;
    case OP_EXPAND: v = cg_view_broadcast(cg, x, in, n->rank); break;
    case OP_SLICE:
        for (int i = 0; i < n->rank; i++)
            v.stride[i] = istr[i];
        v.offset = LLVMBuildMul(cg->b, cg_dim(cg, n->at.start), istr[n->at.axis], "");
        break;
    default: UNREACHABLE();
    }
    return v;
}

/* Rows [begin, end) of a transpose, expand or slice (every dimension but the last, flattened), each
 * copied along the last dimension. cap: out, in. */
static void move_range(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Node *n = ctx;
    LLVMValueRef dims[IR_MAX_RANK], idx[IR_MAX_RANK];
    cg_shape(cg, n, dims);
    View o = out_view(cg, n, cap[0], dims), v = moved_view(cg, n, cap[1]);
    RowLoop lr = cg_rows_begin(cg, n->rank, dims, begin, end, idx);
    Loop lc = cg_loop_begin(cg, cg_i64(cg, 0), dims[n->rank - 1], "col");
    idx[n->rank - 1] = lc.iv;
    LLVMValueRef x = cg_load(cg, v.base, v.dtype, cg_view_index(cg, &v, n->rank, idx));
    cg_store(cg, o.base, o.dtype, cg_view_index(cg, &o, n->rank, idx), x);
    cg_loop_end(cg, &lc);
    cg_rows_end(cg, &lr);
}

int cg_movement(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    LLVMValueRef dims[IR_MAX_RANK], idims[IR_MAX_RANK], istr[IR_MAX_RANK];
    cg_shape(cg, n, dims);
    Map m = {.n = n, .nin = 1};
    m.out = out_view(cg, n, out, dims);
    const Node *x = n->in[0];
    cg_shape(cg, x, idims);
    cg_strides(cg, x->rank, idims, istr);
    View *v = &m.in[0];
    *v = (View){.base = in[0], .dtype = x->dtype, .offset = cg_i64(cg, 0)};
    if ((n->op == OP_TRANSPOSE || n->op == OP_EXPAND || n->op == OP_SLICE) && n->rank > 0) {
        LLVMValueRef rows = cg_numel(cg, n->rank - 1, dims), cap[2] = {out, in[0]};
        char name[64];
        snprintf(name, sizeof name, "node%d_%s_rows", n->id, op_info[n->op].name);
        cg_parallel_work(cg, rows, cg_numel(cg, n->rank, dims), 2, cap, move_range, (void *)n, name);
        return 0;
    }
    switch (n->op) {
    case OP_RESHAPE: {
        LLVMValueRef bytes = cg_bytes(cg, n->dtype, cg_numel(cg, n->rank, dims));
        LLVMBuildMemCpy(cg->b, out, 1, in[0], 1, bytes);
        return 0;
    }
    case OP_TRANSPOSE: /* rank 0: a single element */
    case OP_EXPAND:
    case OP_SLICE: *v = moved_view(cg, n, in[0]); break;
    case OP_CONCAT: {
        /* each input copied into its band of the output */
        LLVMValueRef at = cg_i64(cg, 0);
        for (int j = 0; j < n->nin; j++) {
            const Node *xj = n->in[j];
            LLVMValueRef jd[IR_MAX_RANK];
            cg_shape(cg, xj, jd);
            Map mj = {.n = xj, .nin = 1};
            mj.out = m.out;
            mj.out.offset = LLVMBuildMul(cg->b, at, m.out.stride[n->at.axis], "");
            mj.in[0] = (View){.base = in[j], .dtype = xj->dtype, .offset = cg_i64(cg, 0)};
            cg_strides(cg, xj->rank, jd, mj.in[0].stride);
            cg_nest(cg, xj->rank, jd, copy_body, &mj);
            at = LLVMBuildAdd(cg->b, at, jd[n->at.axis], "");
        }
        return 0;
    }
    case OP_GATHER: {
        const Node *ix = n->in[1];
        int axis = n->at.axis, ri = ix->rank;
        LLVMValueRef xd[IR_MAX_RANK], xs[IR_MAX_RANK];
        cg_shape(cg, ix, xd);
        cg_strides(cg, ri, xd, xs);
        GatherCtx c = {.cg = cg, .n = n, .out = m.out};
        c.table = (View){.base = in[0], .dtype = x->dtype, .offset = cg_i64(cg, 0)};
        c.idx = (View){.base = in[1], .dtype = ix->dtype, .offset = cg_i64(cg, 0)};
        for (int i = 0; i < n->rank; i++) {
            int in_idx = i >= axis && i < axis + ri;
            c.table.stride[i] = in_idx ? cg_i64(cg, 0) : istr[i < axis ? i : i - ri + 1];
            c.idx.stride[i] = in_idx ? xs[i - axis] : cg_i64(cg, 0);
        }
        c.limit = idims[axis];
        c.tstride = istr[axis];
        if (cg->plan.gather_from && cg->plan.gather_from[n->id] >= 0) {
            /* rows of [V, D] from panels of nr of them, each D x nr: an element every nr floats */
            c.nr = cg_gemm_panel_width(cg);
            c.tstride = LLVMBuildMul(cg->b, idims[1], cg_i64(cg, c.nr), "");
            c.table.stride[n->rank - 1] = cg_i64(cg, c.nr);
        }
        cg_nest(cg, n->rank, dims, gather_body, &c);
        return 0;
    }
    default: UNREACHABLE();
    }
    cg_nest(cg, n->rank, dims, copy_body, &m);
    return 0;
}

/* ---------------------------------------------------------------- sources */

typedef struct SourceCtx {
    const Node *n;
    View out;
    LLVMValueRef shift; /* causal_mask: S - T */
} SourceCtx;

static void source_body(Cg *cg, void *ctx, LLVMValueRef *idx)
{
    SourceCtx *c = ctx;
    LLVMValueRef v;
    if (c->n->op == OP_ARANGE) {
        v = cg_convert(cg, idx[0], DT_I64, c->n->dtype);
    } else {
        LLVMValueRef lim = LLVMBuildAdd(cg->b, idx[0], c->shift, "");
        LLVMValueRef ok = LLVMBuildICmp(cg->b, LLVMIntSLE, idx[1], lim, "");
        LLVMTypeRef t = cg_ctype(cg, c->n->dtype);
        v = LLVMBuildSelect(cg->b, ok, LLVMConstReal(t, 0), LLVMConstReal(t, -INFINITY), "");
    }
    cg_store(cg, c->out.base, c->n->dtype, cg_view_index(cg, &c->out, c->n->rank, idx), v);
}

int cg_source(Cg *cg, const Node *n, LLVMValueRef out)
{
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, n, dims);
    SourceCtx c = {.n = n, .out = out_view(cg, n, out, dims)};
    if (n->op == OP_CAUSAL_MASK)
        c.shift = LLVMBuildSub(cg->b, dims[1], dims[0], "");
    cg_nest(cg, n->rank, dims, source_body, &c);
    return 0;
}
