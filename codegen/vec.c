/* vec.c: the vector-IR helpers the hand-written kernels share (gemm.c, attention.c) and the
 * exponentials every kernel uses.
 *
 * A CgVec fixes a vector width (the target's, cg_target) and whether the target has fused
 * multiply-add; the helpers build on it: splats, constant vectors, fma, maximum, horizontal sums and
 * maxima, masked loads and stores, gathers, lane masks. They are written so that what LLVM gets is
 * exactly what a kernel spelt out before this module existed (one insertelement and one shufflevector
 * per splat, llvm.maxnum with no-NaNs, reassociating reductions), so moving a kernel onto them changes
 * no instruction it emits.
 *
 * Two exponentials share their range reduction (x = n ln2 + r, ln2 in two parts so that r is exact)
 * and the construction of 2^n from exponent bits:
 *   cg_exp      any f32 (scalar or vector): degree-7 polynomial, 2^n in two halves so results in the
 *               subnormals round once; about 1 ulp, inf above 88.73, 0 below -103.98, NaN kept.
 *   cg_vexp_neg x <= 0 only (a score minus a maximum at least as large: softmax inside attention),
 *               cheaper since it runs once per key and query: n rounded by adding 1.5 * 2^23 (whose
 *               low bits then hold n), a degree-5 polynomial fitted for relative error on
 *               [-ln2/2, ln2/2] (1.8e-7 in f32), clamped below at -87.3 so that 2^n is a normal float
 *               and no result is subnormal (which some CPUs multiply slowly): exp(x < -87.3) =
 *               1.2e-38 rather than 0, -inf included; exp(0) = 1 exactly.
 */
#include "codegen/codegen.h"

#include <string.h>

CgVec cg_vec(Cg *cg, int vw, int fma)
{
    KILN_ASSERT(vw >= 1 && vw <= CG_MAX_VW);
    CgVec v = {.cg = cg, .vw = vw, .fma = fma};
    v.vt = LLVMVectorType(cg->f32, (unsigned)vw);
    v.it = LLVMVectorType(cg->i32, (unsigned)vw);
    LLVMValueRef l[CG_MAX_VW];
    for (int i = 0; i < vw; i++)
        l[i] = LLVMConstInt(cg->i32, (unsigned long long)i, 0);
    v.lanes = LLVMConstVector(l, (unsigned)vw);
    return v;
}

LLVMValueRef cg_call_intrinsic(Cg *cg, const char *name, LLVMTypeRef *tys, int ntys, LLVMValueRef *args, int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, tys, (size_t)ntys);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, tys, (size_t)ntys);
    return LLVMBuildCall2(cg->b, fty, f, args, (unsigned)nargs, "");
}

void cg_vector_width_attr(Cg *cg, LLVMValueRef f, int vw)
{
    /* without it x86 may split 512-bit vectors into two halves on CPUs that prefer 256 bits */
    char bits[16];
    snprintf(bits, sizeof bits, "%d", vw * 32);
    const char *key = "min-legal-vector-width";
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(cg->ctx, key, (unsigned)strlen(key), bits, (unsigned)strlen(bits)));
}

/* ---------------------------------------------------------------- scalars and loops */

LLVMValueRef cg_smin(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, x, y, ""), x, y, "");
}

LLVMValueRef cg_smax(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, x, y, ""), x, y, "");
}

LLVMValueRef cg_ceil_div(Cg *cg, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSDiv(cg->b, LLVMBuildSub(cg->b, LLVMBuildAdd(cg->b, x, y, ""), cg_i64(cg, 1), ""), y, "");
}

LLVMValueRef cg_fptr(Cg *cg, LLVMValueRef p, LLVMValueRef i)
{
    return LLVMBuildGEP2(cg->b, cg->f32, p, &i, 1, "");
}

void cg_loop_end_step(Cg *cg, Loop *l, LLVMValueRef next)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMAddIncoming(l->phi, &next, &latch, 1);
    LLVMBuildBr(cg->b, l->head);
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
}

LLVMBasicBlockRef cg_if_begin(Cg *cg, LLVMValueRef c, const char *name)
{
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, name);
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "endif");
    LLVMBuildCondBr(cg->b, c, then, done);
    LLVMPositionBuilderAtEnd(cg->b, then);
    return done;
}

void cg_if_end(Cg *cg, LLVMBasicBlockRef done)
{
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
}

/* ---------------------------------------------------------------- vectors */

void cg_prefetch(Cg *cg, LLVMValueRef p, int write)
{
    LLVMTypeRef pty[4] = {cg->ptr, cg->i32, cg->i32, cg->i32};
    LLVMTypeRef ft = LLVMFunctionType(cg->void_, pty, 4, 0);
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, "llvm.prefetch.p0");
    if (!f)
        f = LLVMAddFunction(cg->mod, "llvm.prefetch.p0", ft);
    /* (address, write, locality 3: keep in every level, data cache) */
    LLVMValueRef args[4] = {p, LLVMConstInt(cg->i32, (unsigned)write, 0), LLVMConstInt(cg->i32, 3, 0),
                            LLVMConstInt(cg->i32, 1, 0)};
    LLVMBuildCall2(cg->b, ft, f, args, 4, "");
}

LLVMValueRef cg_vsplat(const CgVec *v, LLVMValueRef x)
{
    Cg *cg = v->cg;
    LLVMTypeRef t = LLVMVectorType(LLVMTypeOf(x), (unsigned)v->vw);
    LLVMValueRef one = LLVMBuildInsertElement(cg->b, LLVMGetPoison(t), x, LLVMConstInt(cg->i32, 0, 0), "");
    return LLVMBuildShuffleVector(cg->b, one, LLVMGetPoison(t), LLVMConstNull(v->it), "");
}

LLVMValueRef cg_vconst(const CgVec *v, double x)
{
    LLVMValueRef e[CG_MAX_VW];
    for (int i = 0; i < v->vw; i++)
        e[i] = LLVMConstReal(v->cg->f32, x);
    return LLVMConstVector(e, (unsigned)v->vw);
}

LLVMValueRef cg_viconst(const CgVec *v, LLVMTypeRef et, int64_t x)
{
    LLVMValueRef e[CG_MAX_VW];
    for (int i = 0; i < v->vw; i++)
        e[i] = LLVMConstInt(et, (unsigned long long)x, 1);
    return LLVMConstVector(e, (unsigned)v->vw);
}

LLVMValueRef cg_vfma(const CgVec *v, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z)
{
    return cg_intrinsic(v->cg, v->fma ? "llvm.fma" : "llvm.fmuladd", (LLVMValueRef[]){x, y, z}, 3);
}

LLVMValueRef cg_vmax(const CgVec *v, LLVMValueRef x, LLVMValueRef y)
{
    LLVMValueRef r = cg_intrinsic(v->cg, "llvm.maxnum", (LLVMValueRef[]){x, y}, 2);
    LLVMSetFastMathFlags(r, LLVMFastMathNoNaNs);
    return r;
}

LLVMValueRef cg_vhsum(const CgVec *v, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef args[2] = {LLVMConstReal(v->cg->f32, -0.0), x};
    LLVMValueRef r = cg_call_intrinsic(v->cg, "llvm.vector.reduce.fadd", &t, 1, args, 2);
    LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc);
    return r;
}

LLVMValueRef cg_vhmax(const CgVec *v, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef r = cg_call_intrinsic(v->cg, "llvm.vector.reduce.fmax", &t, 1, &x, 1);
    LLVMSetFastMathFlags(r, LLVMFastMathNoNaNs);
    return r;
}

LLVMValueRef cg_vload(const CgVec *v, LLVMValueRef p, unsigned align)
{
    LLVMValueRef x = LLVMBuildLoad2(v->cg->b, v->vt, p, "");
    LLVMSetAlignment(x, align);
    return x;
}

void cg_vstore(const CgVec *v, LLVMValueRef x, LLVMValueRef p, unsigned align)
{
    LLVMSetAlignment(LLVMBuildStore(v->cg->b, x, p), align);
}

LLVMValueRef cg_vlanes_below(const CgVec *v, LLVMValueRef n)
{
    Cg *cg = v->cg;
    LLVMValueRef c = cg_smin(cg, cg_smax(cg, n, cg_i64(cg, 0)), cg_i64(cg, v->vw));
    return LLVMBuildICmp(cg->b, LLVMIntSLT, v->lanes, cg_vsplat(v, LLVMBuildTrunc(cg->b, c, cg->i32, "")), "");
}

LLVMValueRef cg_vmasked_load(const CgVec *v, LLVMValueRef p, LLVMValueRef m)
{
    LLVMTypeRef tys[2] = {v->vt, v->cg->ptr};
    LLVMValueRef args[4] = {p, LLVMConstInt(v->cg->i32, 4, 0), m, LLVMConstNull(v->vt)};
    return cg_call_intrinsic(v->cg, "llvm.masked.load", tys, 2, args, 4);
}

void cg_vmasked_store(const CgVec *v, LLVMValueRef x, LLVMValueRef p, LLVMValueRef m)
{
    LLVMTypeRef tys[2] = {v->vt, v->cg->ptr};
    LLVMValueRef args[4] = {x, p, LLVMConstInt(v->cg->i32, 4, 0), m};
    cg_call_intrinsic(v->cg, "llvm.masked.store", tys, 2, args, 4);
}

LLVMValueRef cg_vgather(const CgVec *v, LLVMValueRef p, LLVMValueRef idx, LLVMValueRef m)
{
    LLVMValueRef ptrs = LLVMBuildGEP2(v->cg->b, v->cg->f32, p, &idx, 1, "");
    LLVMTypeRef tys[2] = {v->vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, LLVMConstInt(v->cg->i32, 4, 0), m, LLVMConstNull(v->vt)};
    return cg_call_intrinsic(v->cg, "llvm.masked.gather", tys, 2, args, 4);
}

/* ---------------------------------------------------------------- exponentials */

/* A float constant of type t (f32 or a vector of f32), every lane c. */
static LLVMValueRef fconst(Cg *cg, LLVMTypeRef t, double c)
{
    if (LLVMGetTypeKind(t) != LLVMVectorTypeKind)
        return LLVMConstReal(t, c);
    LLVMValueRef e[CG_MAX_VW];
    unsigned n = LLVMGetVectorSize(t);
    KILN_ASSERT(n <= CG_MAX_VW);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstReal(cg->f32, c);
    return LLVMConstVector(e, n);
}

/* An i32 constant shaped like t (f32 or a vector of f32). */
static LLVMValueRef iconst_like(Cg *cg, LLVMTypeRef t, int64_t c)
{
    if (LLVMGetTypeKind(t) != LLVMVectorTypeKind)
        return LLVMConstInt(cg->i32, (unsigned long long)c, 1);
    LLVMValueRef e[CG_MAX_VW];
    unsigned n = LLVMGetVectorSize(t);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstInt(cg->i32, (unsigned long long)c, 1);
    return LLVMConstVector(e, n);
}

static LLVMValueRef fma_named(Cg *cg, const char *name, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z)
{
    return cg_intrinsic(cg, name, (LLVMValueRef[]){x, y, z}, 3);
}

/* r = x - n ln2 with ln2 = 0.693359375 - 2.12194440e-4: the first product is exact (n has few
 * bits, 0.693359375 nine), so r carries no error from the reduction. */
static LLVMValueRef ln2_reduce(Cg *cg, const char *fma, LLVMValueRef n, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef r = fma_named(cg, fma, n, fconst(cg, t, -0.693359375), x);
    return fma_named(cg, fma, n, fconst(cg, t, 2.12194440e-4), r);
}

/* 2^n for integer n (i32 lanes, -126 <= n <= 127): the exponent bits of a normal float. */
static LLVMValueRef pow2i(Cg *cg, LLVMValueRef n, LLVMTypeRef ft)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef e = LLVMBuildAdd(b, n, iconst_like(cg, ft, 127), "");
    return LLVMBuildBitCast(b, LLVMBuildShl(b, e, iconst_like(cg, ft, 23), ""), ft, "");
}

LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x)
{
    LLVMTypeRef f = LLVMTypeOf(x);
    int vec = LLVMGetTypeKind(f) == LLVMVectorTypeKind;
    if ((vec ? LLVMGetElementType(f) : f) != cg->f32)
        return cg_intrinsic(cg, "llvm.exp", &x, 1);
    LLVMBuilderRef b = cg->b;
#define C(v) fconst(cg, f, v)
    LLVMValueRef xc = cg_intrinsic(cg, "llvm.minnum", (LLVMValueRef[]){x, C(89.0)}, 2);
    xc = cg_intrinsic(cg, "llvm.maxnum", (LLVMValueRef[]){xc, C(-104.0)}, 2);
    LLVMValueRef t = LLVMBuildFMul(b, xc, C(1.44269504088896341), "");
    LLVMValueRef n = cg_intrinsic(cg, "llvm.rint", &t, 1);
    LLVMValueRef r = ln2_reduce(cg, "llvm.fma", n, xc);
    static const double c[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
                               4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
    LLVMValueRef p = C(c[0]);
    for (int i = 1; i < 6; i++)
        p = fma_named(cg, "llvm.fma", p, r, C(c[i]));
    LLVMValueRef r2 = LLVMBuildFMul(b, r, r, "");
    p = fma_named(cg, "llvm.fma", p, r2, LLVMBuildFAdd(b, r, C(1.0), ""));
    /* 2^n = 2^n1 * 2^n2, each a normal float */
    LLVMTypeRef it = vec ? LLVMVectorType(cg->i32, LLVMGetVectorSize(f)) : cg->i32;
    LLVMValueRef ni = LLVMBuildFPToSI(b, n, it, "");
    LLVMValueRef n1 = LLVMBuildAShr(b, ni, iconst_like(cg, f, 1), "");
    LLVMValueRef n2 = LLVMBuildSub(b, ni, n1, "");
    LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildFMul(b, p, pow2i(cg, n1, f), ""), pow2i(cg, n2, f), "");
    LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, x, x, "");
#undef C
    return LLVMBuildSelect(b, nan, x, y, "");
}

LLVMValueRef cg_vexp_neg(const CgVec *v, LLVMValueRef x)
{
    Cg *cg = v->cg;
    LLVMBuilderRef b = cg->b;
    const char *fma = v->fma ? "llvm.fma" : "llvm.fmuladd";
    LLVMValueRef xc = cg_vmax(v, x, cg_vconst(v, -87.3));
    LLVMValueRef magic = cg_vconst(v, 12582912.0); /* 1.5 * 2^23 */
    LLVMValueRef t = fma_named(cg, fma, xc, cg_vconst(v, 1.44269504088896341), magic);
    LLVMValueRef n = LLVMBuildFSub(b, t, magic, "");
    LLVMValueRef r = ln2_reduce(cg, fma, n, xc);
    static const double c[] = {0.00831269, 0.04189021, 0.16667113, 0.49999231, 1.0, 1.0};
    LLVMValueRef p = cg_vconst(v, c[0]);
    for (int i = 1; i < 6; i++)
        p = fma_named(cg, fma, p, r, cg_vconst(v, c[i]));
    /* t's low mantissa bits hold n (two's complement, t within 2^22 of 1.5 * 2^23) */
    return LLVMBuildFMul(b, p, pow2i(cg, LLVMBuildBitCast(b, t, v->it, ""), v->vt), "");
}
