/* matmul.c: matrix multiplication (NumPy semantics, batch dimensions broadcast) and convolution.
 *
 * This is the straightforward kernel: for each batch and row, the output row is cleared and then
 * accumulated as a sum of rows of B scaled by elements of A (i-k-j order), so the innermost loop
 * walks B and the output contiguously. Accumulation is in the output's compute type (f32). f32
 * products go to gemm.c's packed, register-blocked kernel; this one takes the rest (f16, bf16, f64,
 * a one-dimensional B) and is the plain baseline that kernel was written against. A 16-bit output
 * accumulates each element in f32 and is stored once (j-inner accumulation in the output would
 * round every partial sum).
 */
#include "codegen/codegen.h"

typedef struct MatmulCtx {
    const Node *n;
    LLVMValueRef out, a, b;
    LLVMValueRef M, N, K;
    int nbatch;
    LLVMValueRef out_bstride[IR_MAX_RANK], a_bstride[IR_MAX_RANK], b_bstride[IR_MAX_RANK];
} MatmulCtx;

static void matmul_body(Cg *cg, void *ctx, LLVMValueRef *bidx)
{
    MatmulCtx *c = ctx;
    const Node *n = c->n;
    DType at = n->in[0]->dtype, bt = n->in[1]->dtype, ot = n->dtype;
    LLVMValueRef ob = cg_i64(cg, 0), ab = cg_i64(cg, 0), bb = cg_i64(cg, 0);
    for (int i = 0; i < c->nbatch; i++) {
        ob = LLVMBuildAdd(cg->b, ob, LLVMBuildMul(cg->b, bidx[i], c->out_bstride[i], ""), "");
        ab = LLVMBuildAdd(cg->b, ab, LLVMBuildMul(cg->b, bidx[i], c->a_bstride[i], ""), "");
        bb = LLVMBuildAdd(cg->b, bb, LLVMBuildMul(cg->b, bidx[i], c->b_bstride[i], ""), "");
    }
    LLVMTypeRef ct = cg_ctype(cg, ot);
    Loop lm = cg_loop_begin(cg, cg_i64(cg, 0), c->M, "m");
    LLVMValueRef orow = LLVMBuildAdd(cg->b, ob, LLVMBuildMul(cg->b, lm.iv, c->N, ""), "");
    if (ot == DT_F16 || ot == DT_BF16) {
        /* a 16-bit output cannot hold partial sums: each element is a dot product in f32, stored once */
        LLVMValueRef acc = cg_alloca(cg, ct, "acc");
        Loop ln = cg_loop_begin(cg, cg_i64(cg, 0), c->N, "n");
        LLVMBuildStore(cg->b, LLVMConstNull(ct), acc);
        Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), c->K, "k");
        LLVMValueRef aidx = LLVMBuildAdd(cg->b, ab, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lm.iv, c->K, ""), lk.iv, ""), "");
        LLVMValueRef bidx = LLVMBuildAdd(cg->b, bb, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lk.iv, c->N, ""), ln.iv, ""), "");
        LLVMValueRef av = cg_convert(cg, cg_load(cg, c->a, at, aidx), at, ot);
        LLVMValueRef bv = cg_convert(cg, cg_load(cg, c->b, bt, bidx), bt, ot);
        LLVMValueRef sum = cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){av, bv, LLVMBuildLoad2(cg->b, ct, acc, "")}, 3);
        LLVMBuildStore(cg->b, sum, acc);
        cg_loop_end(cg, &lk);
        cg_store(cg, c->out, ot, LLVMBuildAdd(cg->b, orow, ln.iv, ""), LLVMBuildLoad2(cg->b, ct, acc, ""));
        cg_loop_end(cg, &ln);
        cg_loop_end(cg, &lm);
        return;
    }
    Loop lz = cg_loop_begin(cg, cg_i64(cg, 0), c->N, "n");
    cg_store(cg, c->out, ot, LLVMBuildAdd(cg->b, orow, lz.iv, ""), LLVMConstNull(ct));
    cg_loop_end(cg, &lz);
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), c->K, "k");
    LLVMValueRef aidx = LLVMBuildAdd(cg->b, ab, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lm.iv, c->K, ""), lk.iv, ""), "");
    LLVMValueRef av = cg_convert(cg, cg_load(cg, c->a, at, aidx), at, ot);
    LLVMValueRef brow = LLVMBuildAdd(cg->b, bb, LLVMBuildMul(cg->b, lk.iv, c->N, ""), "");
    Loop ln = cg_loop_begin(cg, cg_i64(cg, 0), c->N, "n");
    LLVMValueRef bv = cg_convert(cg, cg_load(cg, c->b, bt, LLVMBuildAdd(cg->b, brow, ln.iv, "")), bt, ot);
    LLVMValueRef oidx = LLVMBuildAdd(cg->b, orow, ln.iv, "");
    LLVMValueRef acc = cg_load(cg, c->out, ot, oidx);
    LLVMValueRef fma = cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){av, bv, acc}, 3);
    cg_store(cg, c->out, ot, oidx, fma);
    cg_loop_end(cg, &ln);
    cg_loop_end(cg, &lk);
    cg_loop_end(cg, &lm);
}

int cg_matmul(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *a = n->in[0], *b = n->in[1];
    if (!dtype_traits[n->dtype].is_float) {
        diag_error(cg->d, n->loc, "matmul of %s is not supported by the code generator", dtype_traits[n->dtype].name);
        return -1;
    }
    int fast = cg_gemm(cg, n, out, in); /* f32: gemm.c; the rest below */
    if (fast <= 0)
        return fast;
    LLVMValueRef ad[IR_MAX_RANK], bd[IR_MAX_RANK], od[IR_MAX_RANK];
    cg_shape(cg, a, ad);
    cg_shape(cg, b, bd);
    cg_shape(cg, n, od);
    MatmulCtx c = {.n = n, .out = out, .a = in[0], .b = in[1]};
    c.M = a->rank >= 2 ? ad[a->rank - 2] : cg_i64(cg, 1);
    c.K = ad[a->rank - 1];
    c.N = b->rank >= 2 ? bd[b->rank - 1] : cg_i64(cg, 1);
    int abatch = a->rank > 2 ? a->rank - 2 : 0, bbatch = b->rank > 2 ? b->rank - 2 : 0;
    c.nbatch = abatch > bbatch ? abatch : bbatch;
    /* batch strides: a matrix is M*K (K*N) elements; a broadcast batch dimension has stride 0 */
    LLVMValueRef as = LLVMBuildMul(cg->b, c.M, c.K, ""), bs = LLVMBuildMul(cg->b, c.K, c.N, "");
    LLVMValueRef os = LLVMBuildMul(cg->b, c.M, c.N, "");
    for (int i = c.nbatch - 1; i >= 0; i--) {
        int ia = i - (c.nbatch - abatch), ib = i - (c.nbatch - bbatch);
        c.out_bstride[i] = os;
        c.a_bstride[i] = ia >= 0 && !dim_eq(a->shape[ia], dim_const(1)) ? as : cg_i64(cg, 0);
        c.b_bstride[i] = ib >= 0 && !dim_eq(b->shape[ib], dim_const(1)) ? bs : cg_i64(cg, 0);
        if (ia >= 0)
            as = LLVMBuildMul(cg->b, as, ad[ia], "");
        if (ib >= 0)
            bs = LLVMBuildMul(cg->b, bs, bd[ib], "");
        os = LLVMBuildMul(cg->b, os, od[i], "");
    }
    cg_nest(cg, c.nbatch, od, matmul_body, &c);
    return 0;
}

int cg_conv2d(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0], *w = n->in[1];
    int batch = x->rank == 4;
    /* sizes as run-time values: the image (and so the output) may be symbolic */
    LLVMValueRef C = cg_dim(cg, w->shape[1]), H = cg_dim(cg, x->shape[batch + 1]), W = cg_dim(cg, x->shape[batch + 2]);
    LLVMValueRef O = cg_dim(cg, w->shape[0]), KH = cg_dim(cg, w->shape[2]), KW = cg_dim(cg, w->shape[3]);
    LLVMValueRef OH = cg_dim(cg, n->shape[batch + 1]), OW = cg_dim(cg, n->shape[batch + 2]);
    int64_t sh = n->at.stride[0], sw = n->at.stride[1], ph = n->at.pad[0], pw = n->at.pad[1];
    LLVMValueRef N = batch ? cg_dim(cg, x->shape[0]) : cg_i64(cg, 1); /* the batch may be symbolic */
    DType ot = n->dtype;
    LLVMTypeRef ct = cg_ctype(cg, ot);
    LLVMValueRef acc = cg_alloca(cg, ct, "acc");
    Loop lb = cg_loop_begin(cg, cg_i64(cg, 0), N, "b");
    Loop lo = cg_loop_begin(cg, cg_i64(cg, 0), O, "o");
    Loop ly = cg_loop_begin(cg, cg_i64(cg, 0), OH, "y");
    Loop lx = cg_loop_begin(cg, cg_i64(cg, 0), OW, "x");
    LLVMValueRef init = n->nin == 3 ? cg_convert(cg, cg_load(cg, in[2], n->in[2]->dtype, lo.iv), n->in[2]->dtype, ot)
                                    : LLVMConstNull(ct);
    LLVMBuildStore(cg->b, init, acc);
    Loop lc = cg_loop_begin(cg, cg_i64(cg, 0), C, "c");
    Loop lr = cg_loop_begin(cg, cg_i64(cg, 0), KH, "r");
    Loop ls = cg_loop_begin(cg, cg_i64(cg, 0), KW, "s");
    LLVMValueRef iy = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, ly.iv, cg_i64(cg, sh), ""), LLVMBuildSub(cg->b, lr.iv, cg_i64(cg, ph), ""), "");
    LLVMValueRef ix = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lx.iv, cg_i64(cg, sw), ""), LLVMBuildSub(cg->b, ls.iv, cg_i64(cg, pw), ""), "");
    /* zero padding: points outside the image contribute nothing (unsigned compare covers < 0) */
    LLVMValueRef inside = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntULT, iy, H, ""),
                                       LLVMBuildICmp(cg->b, LLVMIntULT, ix, W, ""), "");
    LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "in"), done = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "done");
    LLVMBuildCondBr(cg->b, inside, yes, done);
    LLVMPositionBuilderAtEnd(cg->b, yes);
    LLVMValueRef xi = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lb.iv, C, ""), lc.iv, ""), H, ""), iy, ""), W, ""), ix, "");
    LLVMValueRef wi = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lo.iv, C, ""), lc.iv, ""), KH, ""), lr.iv, ""), KW, ""), ls.iv, "");
    LLVMValueRef xv = cg_convert(cg, cg_load(cg, in[0], x->dtype, xi), x->dtype, ot);
    LLVMValueRef wv = cg_convert(cg, cg_load(cg, in[1], w->dtype, wi), w->dtype, ot);
    LLVMBuildStore(cg->b, cg_intrinsic(cg, "llvm.fmuladd", (LLVMValueRef[]){xv, wv, LLVMBuildLoad2(cg->b, ct, acc, "")}, 3), acc);
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
    cg_loop_end(cg, &ls);
    cg_loop_end(cg, &lr);
    cg_loop_end(cg, &lc);
    LLVMValueRef oi = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lb.iv, O, ""), lo.iv, ""), OH, ""), ly.iv, ""), OW, ""), lx.iv, "");
    cg_store(cg, out, ot, oi, LLVMBuildLoad2(cg->b, ct, acc, ""));
    cg_loop_end(cg, &lx);
    cg_loop_end(cg, &ly);
    cg_loop_end(cg, &lo);
    cg_loop_end(cg, &lb);
    return 0;
}
