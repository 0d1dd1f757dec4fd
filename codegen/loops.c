/* loops.c: the building blocks every kernel uses.
 *
 * Loop nests with i64 induction variables, run-time dimensions from the symbol values, views of
 * tensors with per-dimension strides (0 to broadcast), and element loads and stores with dtype
 * conversion. Kernels compute in a small set of types: float for f32/f16/bf16, double for f64, i64 for
 * integers and i1 for bool; f16 and bf16 are widened on load and rounded on store (bf16 by hand, with
 * round-to-nearest-even, since not every target lowers LLVM's bfloat conversions).
 */
#include "codegen/codegen.h"

#include <string.h>

LLVMValueRef cg_i64(Cg *cg, int64_t v)
{
    return LLVMConstInt(cg->i64, (unsigned long long)v, 1);
}

LLVMValueRef cg_f32(Cg *cg, double v)
{
    return LLVMConstReal(cg->f32, v);
}

Loop cg_loop_begin(Cg *cg, LLVMValueRef from, LLVMValueRef to, const char *name)
{
    Loop l;
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->b);
    l.head = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, name);
    l.body = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "body");
    l.exit = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "exit");
    LLVMBuildBr(cg->b, l.head);
    LLVMPositionBuilderAtEnd(cg->b, l.head);
    l.phi = LLVMBuildPhi(cg->b, cg->i64, name);
    LLVMAddIncoming(l.phi, &from, &pre, 1);
    l.iv = l.phi;
    LLVMValueRef c = LLVMBuildICmp(cg->b, LLVMIntSLT, l.phi, to, "");
    LLVMBuildCondBr(cg->b, c, l.body, l.exit);
    LLVMPositionBuilderAtEnd(cg->b, l.body);
    return l;
}

void cg_loop_end(Cg *cg, Loop *l)
{
    LLVMValueRef next = LLVMBuildNSWAdd(cg->b, l->phi, cg_i64(cg, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMAddIncoming(l->phi, &next, &latch, 1);
    LLVMBuildBr(cg->b, l->head);
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
}

LLVMValueRef cg_dim(Cg *cg, Dim d)
{
    /* b + sum of coef * syms[sym], terms in ascending order of symbols */
    LLVMValueRef v = NULL;
    for (int i = 0; i < dim_nterms(d); i++) {
        int64_t coef;
        int sym = dim_term(d, i, &coef);
        LLVMValueRef p = LLVMBuildGEP2(cg->b, cg->i64, cg->syms, (LLVMValueRef[]){cg_i64(cg, sym)}, 1, "");
        LLVMValueRef s = LLVMBuildLoad2(cg->b, cg->i64, p, "");
        LLVMValueRef t = coef == 1 ? s : LLVMBuildMul(cg->b, s, cg_i64(cg, coef), "");
        v = v ? LLVMBuildAdd(cg->b, v, t, "") : t;
    }
    if (!v)
        return cg_i64(cg, dim_value(d));
    return dim_value(d) ? LLVMBuildAdd(cg->b, v, cg_i64(cg, dim_value(d)), "") : v;
}

void cg_shape(Cg *cg, const Node *n, LLVMValueRef *dims)
{
    for (int i = 0; i < n->rank; i++)
        dims[i] = cg_dim(cg, n->shape[i]);
}

void cg_strides(Cg *cg, int rank, LLVMValueRef *dims, LLVMValueRef *strides)
{
    LLVMValueRef s = cg_i64(cg, 1);
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s = LLVMBuildMul(cg->b, s, dims[i], "");
    }
}

LLVMValueRef cg_numel(Cg *cg, int rank, LLVMValueRef *dims)
{
    LLVMValueRef n = cg_i64(cg, 1);
    for (int i = 0; i < rank; i++)
        n = LLVMBuildMul(cg->b, n, dims[i], "");
    return n;
}

LLVMValueRef cg_bytes(Cg *cg, DType t, LLVMValueRef numel)
{
    int blk = dtype_traits[t].block;
    if (blk > 1)
        numel = LLVMBuildUDiv(cg->b, LLVMBuildAdd(cg->b, numel, cg_i64(cg, blk - 1), ""), cg_i64(cg, blk), "");
    return LLVMBuildMul(cg->b, numel, cg_i64(cg, dtype_traits[t].block_bytes), "");
}

LLVMTypeRef cg_ctype(Cg *cg, DType t)
{
    switch (t) {
    case DT_F32:
    case DT_F16:
    case DT_BF16: return cg->f32;
    case DT_F64: return cg->f64;
    case DT_BOOL: return cg->i1;
    default: return cg->i64;
    }
}

LLVMTypeRef cg_stype(Cg *cg, DType t)
{
    switch (t) {
    case DT_F32: return cg->f32;
    case DT_F16: return cg->f16;
    case DT_BF16: return cg->i16;
    case DT_F64: return cg->f64;
    case DT_I64:
    case DT_U64: return cg->i64;
    case DT_I32:
    case DT_U32: return cg->i32;
    case DT_I16:
    case DT_U16: return cg->i16;
    case DT_I8:
    case DT_U8:
    case DT_I4:
    case DT_U4:
    case DT_BOOL: return cg->i8;
    default: UNREACHABLE();
    }
}

/* Packed 4-bit: element idx is a nibble of byte idx / 2 (the low one for even idx). */
static LLVMValueRef nibble_shift(Cg *cg, LLVMValueRef idx)
{
    LLVMValueRef odd = LLVMBuildTrunc(cg->b, LLVMBuildAnd(cg->b, idx, cg_i64(cg, 1), ""), cg->i8, "");
    return LLVMBuildShl(cg->b, odd, LLVMConstInt(cg->i8, 2, 0), "");
}

LLVMValueRef cg_load(Cg *cg, LLVMValueRef ptr, DType t, LLVMValueRef idx)
{
    LLVMTypeRef st = cg_stype(cg, t);
    if (t == DT_I4 || t == DT_U4) {
        LLVMValueRef bi = LLVMBuildLShr(cg->b, idx, cg_i64(cg, 1), "");
        LLVMValueRef byte = LLVMBuildLoad2(cg->b, cg->i8, LLVMBuildGEP2(cg->b, cg->i8, ptr, &bi, 1, ""), "");
        LLVMValueRef v = LLVMBuildShl(cg->b, LLVMBuildLShr(cg->b, byte, nibble_shift(cg, idx), ""),
                                      LLVMConstInt(cg->i8, 4, 0), ""); /* the nibble in the high half */
        v = t == DT_I4 ? LLVMBuildAShr(cg->b, v, LLVMConstInt(cg->i8, 4, 0), "")
                       : LLVMBuildLShr(cg->b, v, LLVMConstInt(cg->i8, 4, 0), "");
        return t == DT_I4 ? LLVMBuildSExt(cg->b, v, cg->i64, "") : LLVMBuildZExt(cg->b, v, cg->i64, "");
    }
    LLVMValueRef p = LLVMBuildGEP2(cg->b, st, ptr, &idx, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(cg->b, st, p, "");
    switch (t) {
    case DT_F16: return LLVMBuildFPExt(cg->b, v, cg->f32, "");
    case DT_BF16: {
        LLVMValueRef w = LLVMBuildShl(cg->b, LLVMBuildZExt(cg->b, v, cg->i32, ""), LLVMConstInt(cg->i32, 16, 0), "");
        return LLVMBuildBitCast(cg->b, w, cg->f32, "");
    }
    case DT_I32:
    case DT_I16:
    case DT_I8: return LLVMBuildSExt(cg->b, v, cg->i64, "");
    case DT_U32:
    case DT_U16:
    case DT_U8: return LLVMBuildZExt(cg->b, v, cg->i64, "");
    case DT_BOOL: return LLVMBuildICmp(cg->b, LLVMIntNE, v, LLVMConstInt(cg->i8, 0, 0), "");
    default: return v;
    }
}

/* f32 -> bf16 bits, round to nearest even, NaN kept quiet. */
static LLVMValueRef to_bf16(Cg *cg, LLVMValueRef f)
{
    LLVMValueRef bits = LLVMBuildBitCast(cg->b, f, cg->i32, "");
    LLVMValueRef lsb = LLVMBuildAnd(cg->b, LLVMBuildLShr(cg->b, bits, LLVMConstInt(cg->i32, 16, 0), ""),
                                    LLVMConstInt(cg->i32, 1, 0), "");
    LLVMValueRef r = LLVMBuildAdd(cg->b, bits, LLVMBuildAdd(cg->b, lsb, LLVMConstInt(cg->i32, 0x7fff, 0), ""), "");
    LLVMValueRef rounded = LLVMBuildTrunc(cg->b, LLVMBuildLShr(cg->b, r, LLVMConstInt(cg->i32, 16, 0), ""), cg->i16, "");
    LLVMValueRef quiet = LLVMBuildTrunc(
        cg->b, LLVMBuildOr(cg->b, LLVMBuildLShr(cg->b, bits, LLVMConstInt(cg->i32, 16, 0), ""), LLVMConstInt(cg->i32, 0x40, 0), ""),
        cg->i16, "");
    LLVMValueRef nan = LLVMBuildFCmp(cg->b, LLVMRealUNO, f, f, "");
    return LLVMBuildSelect(cg->b, nan, quiet, rounded, "");
}

void cg_store(Cg *cg, LLVMValueRef ptr, DType t, LLVMValueRef idx, LLVMValueRef v)
{
    LLVMTypeRef st = cg_stype(cg, t);
    if (t == DT_I4 || t == DT_U4) { /* read, modify, write the byte: callers never split a byte between threads */
        LLVMValueRef bi = LLVMBuildLShr(cg->b, idx, cg_i64(cg, 1), "");
        LLVMValueRef p = LLVMBuildGEP2(cg->b, cg->i8, ptr, &bi, 1, "");
        LLVMValueRef sh = nibble_shift(cg, idx), byte = LLVMBuildLoad2(cg->b, cg->i8, p, "");
        LLVMValueRef x = LLVMBuildAnd(cg->b, LLVMBuildTrunc(cg->b, v, cg->i8, ""), LLVMConstInt(cg->i8, 15, 0), "");
        LLVMValueRef keep = LLVMBuildNot(cg->b, LLVMBuildShl(cg->b, LLVMConstInt(cg->i8, 15, 0), sh, ""), "");
        LLVMBuildStore(cg->b, LLVMBuildOr(cg->b, LLVMBuildAnd(cg->b, byte, keep, ""), LLVMBuildShl(cg->b, x, sh, ""), ""), p);
        return;
    }
    switch (t) {
    case DT_F16: v = LLVMBuildFPTrunc(cg->b, v, cg->f16, ""); break;
    case DT_BF16: v = to_bf16(cg, v); break;
    case DT_I32:
    case DT_U32:
    case DT_I16:
    case DT_U16:
    case DT_I8:
    case DT_U8: v = LLVMBuildTrunc(cg->b, v, st, ""); break;
    case DT_BOOL: v = LLVMBuildZExt(cg->b, v, cg->i8, ""); break;
    default: break;
    }
    LLVMValueRef p = LLVMBuildGEP2(cg->b, st, ptr, &idx, 1, "");
    LLVMBuildStore(cg->b, v, p);
}

LLVMValueRef cg_convert(Cg *cg, LLVMValueRef v, DType from, DType to)
{
    LLVMTypeRef ft = cg_ctype(cg, from), tt = cg_ctype(cg, to);
    int ff = dtype_traits[from].is_float, tf = dtype_traits[to].is_float;
    if (ff && tf) {
        if (ft == tt)
            return v;
        return ft == cg->f64 ? LLVMBuildFPTrunc(cg->b, v, tt, "") : LLVMBuildFPExt(cg->b, v, tt, "");
    }
    if (from == DT_BOOL) {
        return tf ? LLVMBuildUIToFP(cg->b, v, tt, "") : to == DT_BOOL ? v : LLVMBuildZExt(cg->b, v, tt, "");
    }
    if (to == DT_BOOL)
        return ff ? LLVMBuildFCmp(cg->b, LLVMRealUNE, v, LLVMConstNull(ft), "")
                  : LLVMBuildICmp(cg->b, LLVMIntNE, v, LLVMConstNull(ft), "");
    if (!ff && tf) /* integers are held as i64, sign- or zero-extended on load; a u64's 64 bits unsigned */
        return from == DT_U64 ? LLVMBuildUIToFP(cg->b, v, tt, "") : LLVMBuildSIToFP(cg->b, v, tt, "");
    if (ff && !tf) { /* toward zero, saturating at the i64 range, NaN to 0; stores wrap narrower types */
        LLVMValueRef args[1] = {v};
        LLVMTypeRef tys[2] = {cg->i64, ft};
        unsigned id = LLVMLookupIntrinsicID("llvm.fptosi.sat", 15);
        LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, tys, 2);
        LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, tys, 2);
        LLVMValueRef s = LLVMBuildCall2(cg->b, fty, f, args, 1, "");
        if (to != DT_U64)
            return s;
        /* u64 as graph.c's to_u64: [0, 2^64) unsigned, saturating above; [-2^63, 0) wraps through
         * i64; [-2^64, -2^63) wraps as v + 2^64 (exact: Sterbenz), saturating at 0 below */
        id = LLVMLookupIntrinsicID("llvm.fptoui.sat", 15);
        f = LLVMGetIntrinsicDeclaration(cg->mod, id, tys, 2);
        fty = LLVMIntrinsicGetType(cg->ctx, id, tys, 2);
        LLVMValueRef u = LLVMBuildCall2(cg->b, fty, f, args, 1, "");
        LLVMValueRef up[1] = {LLVMBuildFAdd(cg->b, v, LLVMConstReal(ft, 18446744073709551616.0), "")};
        LLVMValueRef w = LLVMBuildCall2(cg->b, fty, f, up, 1, "");
        LLVMValueRef neg = LLVMBuildFCmp(cg->b, LLVMRealOLT, v, LLVMConstNull(ft), "");
        LLVMValueRef low = LLVMBuildFCmp(cg->b, LLVMRealOLT, v, LLVMConstReal(ft, -9223372036854775808.0), "");
        return LLVMBuildSelect(cg->b, low, w, LLVMBuildSelect(cg->b, neg, s, u, ""), "");
    }
    /* integer to integer: wrap to the narrower type, as a store then a load would (to and from u64
     * and i64 the bits stay: -1 is 2^64 - 1) */
    if (to == DT_I32 || to == DT_U32 || to == DT_I16 || to == DT_U16 || to == DT_I8 || to == DT_U8) {
        LLVMValueRef t = LLVMBuildTrunc(cg->b, v, cg_stype(cg, to), "");
        return dtype_traits[to].is_signed ? LLVMBuildSExt(cg->b, t, cg->i64, "") : LLVMBuildZExt(cg->b, t, cg->i64, "");
    }
    return v;
}

LLVMValueRef cg_intrinsic(Cg *cg, const char *name, LLVMValueRef *args, int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMTypeRef ty = LLVMTypeOf(args[0]);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, &ty, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, &ty, 1);
    return LLVMBuildCall2(cg->b, fty, f, args, (unsigned)nargs, "");
}

LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    char full[64];
    snprintf(full, sizeof full, "%s%s", name, t == cg->f32 ? "f" : "");
    LLVMTypeRef fty = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, full);
    if (!f)
        f = LLVMAddFunction(cg->mod, full, fty);
    return LLVMBuildCall2(cg->b, fty, f, &x, 1, "");
}

static void nest(Cg *cg, int d, int rank, LLVMValueRef *dims, LLVMValueRef *idx, CgBody body, void *ctx)
{
    if (d == rank) {
        body(cg, ctx, idx);
        return;
    }
    Loop l = cg_loop_begin(cg, cg_i64(cg, 0), dims[d], "i");
    idx[d] = l.iv;
    nest(cg, d + 1, rank, dims, idx, body, ctx);
    cg_loop_end(cg, &l);
}

void cg_nest(Cg *cg, int rank, LLVMValueRef *dims, CgBody body, void *ctx)
{
    LLVMValueRef idx[IR_MAX_RANK];
    nest(cg, 0, rank, dims, idx, body, ctx);
}

LLVMValueRef cg_view_index(Cg *cg, const View *v, int rank, LLVMValueRef *idx)
{
    LLVMValueRef off = v->offset;
    for (int i = 0; i < rank; i++) {
        if (LLVMIsAConstantInt(v->stride[i]) && LLVMConstIntGetSExtValue(v->stride[i]) == 0)
            continue;
        off = LLVMBuildAdd(cg->b, off, LLVMBuildMul(cg->b, idx[i], v->stride[i], ""), "");
    }
    return off;
}

View cg_view_broadcast(Cg *cg, const Node *n, LLVMValueRef p, int rank)
{
    View v = {.base = p, .dtype = n->dtype, .offset = cg_i64(cg, 0)};
    LLVMValueRef dims[IR_MAX_RANK], strides[IR_MAX_RANK];
    cg_shape(cg, n, dims);
    cg_strides(cg, n->rank, dims, strides);
    for (int i = 0; i < rank; i++) {
        int j = i - (rank - n->rank);
        if (j < 0 || dim_eq(n->shape[j], dim_const(1)))
            v.stride[i] = cg_i64(cg, 0);
        else
            v.stride[i] = strides[j];
    }
    return v;
}

LLVMValueRef cg_alloca(Cg *cg, LLVMTypeRef t, const char *name)
{
    LLVMBuilderRef b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMBasicBlockRef e = LLVMGetEntryBasicBlock(cg->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(e);
    if (first)
        LLVMPositionBuilderBefore(b, first);
    else
        LLVMPositionBuilderAtEnd(b, e);
    LLVMValueRef v = LLVMBuildAlloca(b, t, name);
    LLVMDisposeBuilder(b);
    return v;
}

/* Horner's rule with fma: c[0] + y*(c[1] + y*(...)), for a polynomial in y. */
static LLVMValueRef horner(Cg *cg, LLVMValueRef y, const double *c, int n)
{
    LLVMTypeRef t = LLVMTypeOf(y);
    LLVMValueRef p = LLVMConstReal(t, c[n - 1]);
    for (int i = n - 2; i >= 0; i--)
        p = cg_intrinsic(cg, "llvm.fma", (LLVMValueRef[]){p, y, LLVMConstReal(t, c[i])}, 3);
    return p;
}

/* 1 / d for a finite f32 d >= 1 where a relative error of about 2^-23 is as good as the division
 * (tanh's 2 / (e^(2|x|) + 1), erf's 1 / Q(x^2)): the division marked as allowed to become a reciprocal of a finite value, which
 * LLVM's x86 backend, told so by the function's "reciprocal-estimates" (cg_optimise), computes as
 * vrcp14ps and one Newton step, a few cycles a vector instead of vdivps's ten or more. */
static LLVMValueRef cg_recip(Cg *cg, LLVMValueRef d)
{
    LLVMValueRef r = LLVMBuildFDiv(cg->b, cg_f32(cg, 1.0), d, "");
    LLVMSetFastMathFlags(r, LLVMFastMathAllowReciprocal | LLVMFastMathNoInfs | LLVMFastMathNoNaNs);
    return r;
}

/* tanh(x) for f32 without a library call. |x| < 0.55: the odd Taylor series to x^17 (the next
 * term is below 1e-8 relative); beyond: 1 - 2 / (e^(2|x|) + 1), whose cancellation costs at most a
 * couple of ulp there; the sign restored at the end; NaN stays NaN. */
LLVMValueRef cg_tanh(Cg *cg, LLVMValueRef x)
{
    if (LLVMTypeOf(x) != cg->f32)
        return cg_libm(cg, "tanh", x);
    static const double c[] = {1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925,
                               21844.0 / 6081075, -929569.0 / 638512875, 6404582.0 / 10854718875};
    LLVMBuilderRef b = cg->b;
    LLVMValueRef a = cg_intrinsic(cg, "llvm.fabs", &x, 1);
    LLVMValueRef small = LLVMBuildFMul(b, a, horner(cg, LLVMBuildFMul(b, a, a, ""), c, 9), "");
    /* |x| capped at 10 (tanh is 1 in f32 from 9.1 on) keeps e^(2|x|) + 1 finite for the reciprocal;
     * NaN, which the cap turns into 10, is put back at the end */
    LLVMValueRef ac = cg_intrinsic(cg, "llvm.minnum", (LLVMValueRef[]){a, cg_f32(cg, 10.0)}, 2);
    LLVMValueRef e = cg_exp(cg, LLVMBuildFMul(b, ac, cg_f32(cg, 2.0), ""));
    LLVMValueRef r = cg_recip(cg, LLVMBuildFAdd(b, e, cg_f32(cg, 1.0), ""));
    LLVMValueRef large = LLVMBuildFSub(b, cg_f32(cg, 1.0), LLVMBuildFMul(b, cg_f32(cg, 2.0), r, ""), "");
    LLVMValueRef y = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, a, cg_f32(cg, 0.55), ""), small, large, "");
    y = cg_intrinsic(cg, "llvm.copysign", (LLVMValueRef[]){y, x}, 2);
    return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), x, y, "");
}

/* erf(x) for f32 without a library call: x P(x^2) / Q(x^2) with |x| clamped to 3.925 (erf rounds to
 * 1 in f32 from about 3.92 on), P of degree 6 and Q of degree 4 in x^2, fitted by
 * scripts/fit_erf.py (relative error 5e-8 in double; evaluated in f32 as here, at most 3.2e-7 absolute
 * and relative on [-4.5, 4.5], the largest next to the clamp, where erf is within 1e-7 of 1). One
 * branch-free formula of about 15 vector operations: it replaced a Maclaurin series for |x| < 1
 * and Abramowitz and Stegun's 7.1.26 (1 - t P(t) e^(-x^2)) beyond, both computed and one selected,
 * about 40 (ViT-B/16 built with --quant int8, on the AMX Xeon at 1 thread: fc1's product with its GELU
 * epilogue, f32[197, 3072], 1.33 -> 0.95 ms a layer, the model 55 -> 50 ms). The
 * division is cg_recip's (Q >= 1 and finite); copysign makes erf odd and keeps erf(-0) = -0; NaN
 * stays NaN (minnum would turn it into the clamp, so it is put back). */
LLVMValueRef cg_erf(Cg *cg, LLVMValueRef x)
{
    if (LLVMTypeOf(x) != cg->f32)
        return cg_libm(cg, "erf", x);
    static const double p[] = {1.128379108205082,      0.20033863510032573,    0.05062767184776961,
                               0.0037180870736156896,  0.00014214813768744847, -1.9565790736068257e-06,
                               1.9871507502968047e-08};
    static const double q[] = {1.0, 0.5108771267333952, 0.11516900423938536, 0.014387767118742505,
                               0.0009597129927936198};
    LLVMBuilderRef b = cg->b;
    LLVMValueRef a = cg_intrinsic(cg, "llvm.fabs", &x, 1);
    a = cg_intrinsic(cg, "llvm.minnum", (LLVMValueRef[]){a, cg_f32(cg, 3.925)}, 2);
    LLVMValueRef t = LLVMBuildFMul(b, a, a, "");
    LLVMValueRef num = LLVMBuildFMul(b, a, horner(cg, t, p, 7), "");
    LLVMValueRef y = LLVMBuildFMul(b, num, cg_recip(cg, horner(cg, t, q, 5)), "");
    y = cg_intrinsic(cg, "llvm.minnum", (LLVMValueRef[]){y, cg_f32(cg, 1.0)}, 2);
    y = cg_intrinsic(cg, "llvm.copysign", (LLVMValueRef[]){y, x}, 2);
    return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), x, y, "");
}

RowLoop cg_rows_begin(Cg *cg, int rank, LLVMValueRef *dims, LLVMValueRef begin, LLVMValueRef end, LLVMValueRef *idx)
{
    RowLoop r = {.rank = rank};
    /* the multi-index of the first row, by division once; then counted up row by row */
    LLVMValueRef q = begin;
    for (int d = rank - 2; d >= 0; d--) {
        r.slot[d] = cg_alloca(cg, cg->i64, "ridx");
        r.dims[d] = dims[d];
        LLVMBuildStore(cg->b, LLVMBuildSRem(cg->b, q, dims[d], ""), r.slot[d]);
        q = LLVMBuildSDiv(cg->b, q, dims[d], "");
    }
    r.loop = cg_loop_begin(cg, begin, end, "row");
    for (int d = rank - 2; d >= 0; d--)
        idx[d] = LLVMBuildLoad2(cg->b, cg->i64, r.slot[d], "");
    return r;
}

void cg_rows_end(Cg *cg, RowLoop *r)
{
    /* idx += 1 with carries: the last of the row dimensions fastest */
    LLVMValueRef carry = cg_i64(cg, 1);
    for (int d = r->rank - 2; d >= 0; d--) {
        LLVMValueRef v = LLVMBuildAdd(cg->b, LLVMBuildLoad2(cg->b, cg->i64, r->slot[d], ""), carry, "");
        LLVMValueRef wrap = LLVMBuildICmp(cg->b, LLVMIntSGE, v, r->dims[d], "");
        LLVMBuildStore(cg->b, LLVMBuildSelect(cg->b, wrap, cg_i64(cg, 0), v, ""), r->slot[d]);
        carry = LLVMBuildZExt(cg->b, wrap, cg->i64, "");
    }
    cg_loop_end(cg, &r->loop);
}

