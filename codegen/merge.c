/* merge.c: the nodes of token merging and pruning (tome_match, pitome_match, token_merge, cls_attn,
 * evit_select).
 *
 * Each node's function calls its kernel in the runtime (runtime/tokens.c) with the node's buffers, its
 * batch rows, token count and width (run-time values) and its attributes. The kernels are C, not
 * generated IR: matching and top-k are short sorts over a few hundred tokens and the merge a scatter
 * of rows, none of which LLVM's vectoriser would turn into better code than the C compiler already
 * does; together they are under 1% of a merged ViT layer's work (docs/PASSES.md). The runtime's
 * functions are declared with ordinary external linkage (not weakly, as rt_parallel_for is): a
 * program that uses them must link them, and the JIT defines them by address (cg.c).
 */
#include "codegen/codegen.h"

/* The product of n's dims [from, to) at run time. */
static LLVMValueRef rows(Cg *cg, const Node *n, int to)
{
    LLVMValueRef p = cg_i64(cg, 1);
    for (int i = 0; i < to; i++)
        p = LLVMBuildMul(cg->b, p, cg_dim(cg, n->shape[i]), "");
    return p;
}

/* A runtime function, declared once per module, linked strongly. */
static LLVMValueRef rt_fn(Cg *cg, const char *name, LLVMTypeRef fty)
{
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    return f ? f : LLVMAddFunction(cg->mod, name, fty);
}

int cg_tokens(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    const Node *x = n->in[0];
    int r = x->rank;
    LLVMTypeRef P = cg->ptr, I = cg->i64, W = cg->i32;
    switch (n->op) {
    case OP_TOME_MATCH: {
        LLVMTypeRef ps[8] = {P, P, P, I, I, I, I, W};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 8, 0);
        LLVMValueRef args[8] = {cg->pool, out, in[0], rows(cg, x, r - 2), cg_dim(cg, x->shape[r - 2]),
                                cg_dim(cg, x->shape[r - 1]), cg_i64(cg, n->at.r), LLVMConstInt(W, (unsigned)n->at.cls, 0)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_tome_match", fty), args, 8, "");
        return 0;
    }
    case OP_PITOME_MATCH: {
        LLVMTypeRef ps[10] = {P, P, P, I, I, I, I, W, cg->f32, W};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 10, 0);
        LLVMValueRef args[10] = {cg->pool, out, in[0], rows(cg, x, r - 2), cg_dim(cg, x->shape[r - 2]),
                                 cg_dim(cg, x->shape[r - 1]), cg_i64(cg, n->at.r), LLVMConstInt(W, (unsigned)n->at.cls, 0),
                                 cg_f32(cg, n->at.margin), LLVMConstInt(W, (unsigned)n->at.bsm, 0)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_pitome_match", fty), args, 10, "");
        return 0;
    }
    case OP_TOKEN_MERGE: {
        LLVMTypeRef ps[10] = {P, P, P, P, P, I, I, I, I, W};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 10, 0);
        LLVMValueRef args[10] = {cg->pool, out, in[0], in[1], n->nin > 2 ? in[2] : LLVMConstNull(P),
                                 rows(cg, x, r - 2), cg_dim(cg, x->shape[r - 2]), cg_dim(cg, x->shape[r - 1]),
                                 cg_dim(cg, n->shape[r - 2]), LLVMConstInt(W, n->at.mode == 0, 0)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_token_merge", fty), args, 10, "");
        return 0;
    }
    case OP_CLS_ATTN: {
        const Node *k = n->in[1];
        LLVMTypeRef ps[9] = {P, P, P, P, I, I, I, I, cg->f32};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 9, 0);
        LLVMValueRef args[9] = {cg->pool, out, in[0], in[1], rows(cg, x, r - 2), cg_dim(cg, x->shape[r - 2]),
                                cg_dim(cg, k->shape[r - 2]), cg_dim(cg, x->shape[r - 1]), cg_f32(cg, n->at.scale)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_cls_attn", fty), args, 9, "");
        return 0;
    }
    case OP_EVIT_SELECT: {
        LLVMTypeRef ps[5] = {P, P, I, I, I};
        LLVMTypeRef fty = LLVMFunctionType(cg->void_, ps, 5, 0);
        LLVMValueRef args[5] = {out, in[0], rows(cg, x, r - 1), cg_dim(cg, x->shape[r - 1]), cg_i64(cg, n->at.keep)};
        LLVMBuildCall2(cg->b, fty, rt_fn(cg, "rt_evit_select", fty), args, 5, "");
        return 0;
    }
    default:
        diag_error(cg->d, n->loc, "internal error: merge.c has no kernel for op '%s'", op_info[n->op].name);
        return -1;
    }
}
