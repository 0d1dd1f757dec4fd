/* parallel.c: the one way generated code runs work over the runtime's threads.
 *
 * A kernel hands cg_parallel a body (a CgRange callback) and the values it captures. The body is
 * emitted into its own function, void f(ptr block, i64 begin, i64 end), which loads the captured
 * values and the symbol values from a block on the calling function's stack; the calling function
 * fills the block and calls rt_parallel_for(pool, n, f, block). Two ways to split:
 *
 *   CG_RANGES  rt_parallel_for's contiguous ranges of [0, n), one per thread (the loops, the GEMM's
 *              tiles: neighbouring work shares data in cache, and the cost per index is even);
 *   CG_ITEMS   one range per thread (min(threads, n) of them), each thread taking items from a
 *              counter on the caller's stack, an atomic add each, and calling the body for one item
 *              at a time: a thread that was descheduled, or whose items cost more (attention's late
 *              blocks under a causal mask), does fewer, rather than the others waiting for its share.
 *
 * Below a work threshold (CgPar.work < CgPar.min_work) the pool is not woken: rt_parallel_for gets
 * a NULL pool and the calling thread does everything, which costs one indirect call. A body whose
 * code depends only on what its name says is shared: with CgPar.shared, a function of that name
 * already in the module is called rather than emitted again (one for all the layers of a model).
 *
 * The kernels call rt_parallel_for and rt_pool_size without testing for them: every program that runs
 * generated code has them (executables and libraries link libkiln_rt; cg_jit_run defines them by
 * address), and both accept a NULL pool. The runtime's functions are still declared weak, so that
 * a caller that may run without them (the profiler's marks, codegen/profile.c) can test for NULL.
 */
#include "codegen/codegen.h"

enum { MAX_CAP = 16 }; /* captured values, the symbols and the items' counter and count included */

LLVMValueRef cg_runtime_function(Cg *cg, const char *name, LLVMTypeRef fty)
{
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (!f) {
        f = LLVMAddFunction(cg->mod, name, fty);
        LLVMSetLinkage(f, LLVMExternalWeakLinkage);
    }
    return f;
}

LLVMValueRef cg_pool_threads(Cg *cg)
{
    LLVMTypeRef fty = LLVMFunctionType(cg->i32, &cg->ptr, 1, 0);
    LLVMValueRef f = cg_runtime_function(cg, "rt_pool_size", fty);
    return LLVMBuildSExt(cg->b, LLVMBuildCall2(cg->b, fty, f, &cg->pool, 1, ""), cg->i64, "");
}

/* The body's function: loads what was captured, then the body over [begin, end) or item by item. */
static LLVMValueRef body_function(Cg *cg, const CgPar *p, LLVMTypeRef st, LLVMTypeRef *tys, int ntot, int nuser,
                                  CgRange body, void *ctx)
{
    LLVMTypeRef params[3] = {cg->ptr, cg->i64, cg->i64};
    LLVMTypeRef fty = LLVMFunctionType(cg->void_, params, 3, 0);
    LLVMValueRef f = LLVMAddFunction(cg->mod, p->name, fty);
    LLVMSetLinkage(f, LLVMInternalLinkage);
    const char *nounwind = "nounwind";
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName(nounwind, 8), 0));
    if (p->vw)
        cg_vector_width_attr(cg, f, p->vw);
    LLVMValueRef saved_fn = cg->fn, saved_syms = cg->syms, saved_status = cg->status, saved_pool = cg->pool;
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->b);
    cg->fn = f;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    LLVMValueRef in[MAX_CAP];
    for (int i = 0; i < ntot; i++)
        in[i] = LLVMBuildLoad2(cg->b, tys[i], LLVMBuildStructGEP2(cg->b, st, LLVMGetParam(f, 0), (unsigned)i, ""), "");
    cg->syms = in[nuser];
    cg->status = cg_alloca(cg, cg->i32, "status"); /* run-time checks are not made inside a range */
    cg->pool = LLVMConstNull(cg->ptr);             /* no nested parallel loop */
    if (p->split == CG_RANGES) {
        body(cg, ctx, in, LLVMGetParam(f, 1), LLVMGetParam(f, 2));
    } else {
        LLVMValueRef counter = in[nuser + 1], n = in[nuser + 2];
        LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(cg->ctx, f, "take");
        LLVMBasicBlockRef item = LLVMAppendBasicBlockInContext(cg->ctx, f, "item");
        LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, f, "items_done");
        LLVMBuildBr(cg->b, head);
        LLVMPositionBuilderAtEnd(cg->b, head);
        LLVMValueRef i = LLVMBuildAtomicRMW(cg->b, LLVMAtomicRMWBinOpAdd, counter, cg_i64(cg, 1),
                                            LLVMAtomicOrderingMonotonic, 0);
        LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, i, n, ""), item, done);
        LLVMPositionBuilderAtEnd(cg->b, item);
        body(cg, ctx, in, i, LLVMBuildAdd(cg->b, i, cg_i64(cg, 1), ""));
        LLVMBuildBr(cg->b, head);
        LLVMPositionBuilderAtEnd(cg->b, done);
    }
    LLVMBuildRetVoid(cg->b);
    cg->fn = saved_fn;
    cg->syms = saved_syms;
    cg->status = saved_status;
    cg->pool = saved_pool;
    LLVMPositionBuilderAtEnd(cg->b, saved_bb);
    return f;
}

void cg_parallel(Cg *cg, const CgPar *p, int ncap, LLVMValueRef *cap, CgRange body, void *ctx)
{
    int extra = p->split == CG_ITEMS ? 3 : 1; /* the symbols; the counter and the number of items */
    KILN_ASSERT(ncap + extra <= MAX_CAP);
    LLVMValueRef val[MAX_CAP];
    LLVMTypeRef tys[MAX_CAP];
    for (int i = 0; i < ncap; i++)
        val[i] = cap[i];
    val[ncap] = cg->syms;
    if (p->split == CG_ITEMS) {
        LLVMValueRef counter = cg_alloca(cg, cg->i64, "next_item");
        LLVMBuildStore(cg->b, cg_i64(cg, 0), counter);
        val[ncap + 1] = counter;
        val[ncap + 2] = p->n;
    }
    int ntot = ncap + extra;
    for (int i = 0; i < ntot; i++)
        tys[i] = LLVMTypeOf(val[i]);
    LLVMTypeRef st = LLVMStructTypeInContext(cg->ctx, tys, (unsigned)ntot, 0);
    LLVMValueRef blk = cg_alloca(cg, st, "captured");
    for (int i = 0; i < ntot; i++)
        LLVMBuildStore(cg->b, val[i], LLVMBuildStructGEP2(cg->b, st, blk, (unsigned)i, ""));

    LLVMValueRef f = p->shared ? LLVMGetNamedFunction(cg->mod, p->name) : NULL;
    if (!f)
        f = body_function(cg, p, st, tys, ntot, ncap, body, ctx);

    /* small work on this thread alone: no pool */
    LLVMValueRef pool = cg->pool;
    if (p->work)
        pool = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, p->work, cg_i64(cg, p->min_work), ""), pool,
                               LLVMConstNull(cg->ptr), "");
    LLVMValueRef n = p->n;
    if (p->split == CG_ITEMS) { /* one range per thread that has an item to take */
        LLVMValueRef saved = cg->pool;
        cg->pool = pool;
        n = cg_smin(cg, cg_pool_threads(cg), p->n);
        cg->pool = saved;
    }
    LLVMTypeRef pf[4] = {cg->ptr, cg->i64, cg->ptr, cg->ptr};
    LLVMTypeRef pfty = LLVMFunctionType(cg->void_, pf, 4, 0);
    LLVMValueRef pfor = cg_runtime_function(cg, "rt_parallel_for", pfty);
    LLVMBuildCall2(cg->b, pfty, pfor, (LLVMValueRef[]){pool, n, f, blk}, 4, "");
}

void cg_parallel_for(Cg *cg, LLVMValueRef n, int ncap, LLVMValueRef *cap, CgRange body, void *ctx, const char *name)
{
    CgPar p = {.split = CG_RANGES, .n = n, .name = name};
    cg_parallel(cg, &p, ncap, cap, body, ctx);
}

void cg_parallel_work(Cg *cg, LLVMValueRef n, LLVMValueRef work, int ncap, LLVMValueRef *cap, CgRange body, void *ctx,
                      const char *name)
{
    CgPar p = {.split = CG_RANGES, .n = n, .work = work, .min_work = CG_PARALLEL_WORK, .name = name};
    cg_parallel(cg, &p, ncap, cap, body, ctx);
}
