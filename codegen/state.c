/* state.c: the kernel of scatter, the write that state updates are made of (ir/entry.c).
 *
 * scatter(base, index[n], values) {axis}: the output is base with its row index[k] along axis
 * replaced by row k of values, k = 0..n-1 in order (a repeated index: the last write wins, as in the
 * interpreter). With outer = the product of the dimensions before axis, len = the axis and inner =
 * the bytes of one row after it, row k of values is outer blocks of inner bytes, each copied with one
 * memcpy: a KV cache append writes a few rows of a large buffer, so the cost is the rows, not the
 * buffer.
 *
 * In place: when plan-memory puts the output over base (a state updated where it lies, Node.inplace),
 * the pointers are equal and base is not copied; otherwise base is copied first. Every index is
 * checked before anything is written, so an index out of range leaves the output as it was and sets
 * the status to 1 + the node's id (the entry returns it, as for gather).
 */
#include "codegen/codegen.h"

int cg_scatter(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, n, dims);
    int axis = n->at.axis;
    const Node *ix = n->in[1];
    LLVMValueRef outer = cg_numel(cg, axis, dims), len = dims[axis];
    LLVMValueRef inner = LLVMBuildMul(cg->b, cg_numel(cg, n->rank - axis - 1, dims + axis + 1),
                                      cg_i64(cg, dtype_traits[n->dtype].size), "inner");
    LLVMValueRef nidx = cg_dim(cg, ix->shape[0]);

    /* every index in range first */
    Loop chk = cg_loop_begin(cg, cg_i64(cg, 0), nidx, "check");
    LLVMValueRef r = cg_load(cg, in[1], ix->dtype, chk.iv);
    LLVMValueRef bad = LLVMBuildOr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, r, cg_i64(cg, 0), ""),
                                   LLVMBuildICmp(cg->b, LLVMIntSGE, r, len, ""), "");
    LLVMValueRef code = LLVMBuildSelect(cg->b, bad, LLVMConstInt(cg->i32, (unsigned long long)n->id + 1, 0),
                                        LLVMBuildLoad2(cg->b, cg->i32, cg->status, ""), "");
    LLVMBuildStore(cg->b, code, cg->status);
    cg_loop_end(cg, &chk);
    LLVMBasicBlockRef copy = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "copy_base");
    LLVMBasicBlockRef rows = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "rows");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "done");
    LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "ok");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntNE, LLVMBuildLoad2(cg->b, cg->i32, cg->status, ""),
                                         LLVMConstInt(cg->i32, 0, 0), ""), done, ok);

    /* base into the output, unless it is the output */
    LLVMPositionBuilderAtEnd(cg->b, ok);
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, out, in[0], ""), rows, copy);
    LLVMPositionBuilderAtEnd(cg->b, copy);
    LLVMValueRef all = LLVMBuildMul(cg->b, LLVMBuildMul(cg->b, outer, len, ""), inner, "");
    LLVMBuildMemCpy(cg->b, out, 1, in[0], 1, all);
    LLVMBuildBr(cg->b, rows);

    /* the rows */
    LLVMPositionBuilderAtEnd(cg->b, rows);
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), nidx, "row");
    LLVMValueRef at = cg_load(cg, in[1], ix->dtype, lk.iv);
    Loop lo = cg_loop_begin(cg, cg_i64(cg, 0), outer, "outer");
    LLVMValueRef dst = LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lo.iv, len, ""), at, ""), inner, "");
    LLVMValueRef src = LLVMBuildMul(cg->b, LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, lo.iv, nidx, ""), lk.iv, ""), inner, "");
    LLVMBuildMemCpy(cg->b, LLVMBuildGEP2(cg->b, cg->i8, out, &dst, 1, ""), 1,
                    LLVMBuildGEP2(cg->b, cg->i8, in[2], &src, 1, ""), 1, inner);
    cg_loop_end(cg, &lo);
    cg_loop_end(cg, &lk);
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
    return 0;
}
