/* profile.c: the table of node groups an entry function reports to the runtime's profiler, and
 * the marks it makes (runtime/profile.c says how the time is taken).
 *
 * A group is one kernel call of the entry: a node, or a stored elementwise node with the inline
 * nodes its loop computes (an inline matmul makes it "matmul + epilogue"). Its FLOPs and bytes
 * (values read and written, weights included) depend on the symbolic sizes; the table stores them as
 * a quadratic in the first symbol the group's shapes use, fitted from the exact counts at that
 * symbol = 1, 2, 3 with the others at their bounds. That is exact for every group of a model with one
 * symbolic size (attention is quadratic in T, the rest linear), and an estimate with several.
 *
 * The entry's first mark is preceded by rt_profile_peak(fma, lanes, flops, pool): fma is a loop this
 * file emits once per module at the target's vector width (CgTarget.vw, what the GEMM's micro-kernels
 * use), so the peak the runtime measures with it is the one this model's kernels can reach on this
 * machine, whatever ISA it was compiled for. The loop runs independent chains x = x * m + c, enough
 * of them to cover an FMA's latency times the FMA pipes of current cores (4 cycles x 2 pipes on x86,
 * up to 4 pipes on aarch64) and few enough to stay in registers with m and c.
 */
#include "codegen/codegen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The nodes of group n: n, and with f, every inline node under it (f->mm included). */
static int group_nodes(const Node *n, const Fused *f, const Node **out, int max)
{
    int k = 0;
    out[k++] = n;
    if (!f)
        return k;
    for (int i = 0; i < k; i++) { /* breadth first through the inline nodes */
        const Node *x = out[i];
        for (int j = 0; j < x->nin; j++) {
            const Node *y = x->in[j];
            int seen = 0;
            for (int t = 0; t < k; t++)
                seen |= out[t] == y;
            if (!seen && y->inl && k < max)
                out[k++] = y;
        }
    }
    return k;
}

static double node_bytes(const Node *n, const int64_t *vals)
{
    return (double)shape_numel(n->rank, n->shape, vals) * dtype_traits[n->dtype].size;
}

/* FLOPs and bytes of the group at vals: the stored values it reads (each once) and the one it writes. */
static void group_cost(const Node *const *nodes, int k, const Node *const *ops, int nops, const int64_t *vals,
                       double *flops, double *bytes)
{
    *flops = 0;
    *bytes = node_bytes(nodes[0], vals);
    for (int i = 0; i < k; i++)
        *flops += ir_node_flops(nodes[i], vals);
    for (int j = 0; j < nops; j++) {
        int dup = 0;
        for (int t = 0; t < j; t++)
            dup |= ops[t] == ops[j];
        if (!dup)
            *bytes += node_bytes(ops[j], vals);
    }
}

static int first_symbol(const Node *const *nodes, int k, const Node *const *ops, int nops)
{
    for (int i = 0; i < k + nops; i++) {
        const Node *x = i < k ? nodes[i] : ops[i - k];
        for (int d = 0; d < x->rank; d++)
            if (!dim_is_const(x->shape[d]))
                return dim_term(x->shape[d], 0, NULL);
    }
    return -1;
}

/* An int8 x int8 or bf16 product (W8A8, bf16 weights): not bound by the fp32 FMA peak the profile
 * measures. Weight-only qmatmuls (w8, w4) dequantise into f32 FMAs and stay "matmul". */
static int dot_product(const Node *n)
{
    return n->op == OP_QMATMUL && (n->in[1]->dtype == DT_BF16 || (ir_qmm_w8a8(n) && n->in[1]->dtype == DT_I8));
}

static const char *kind_of(const Node *n, const Fused *f)
{
    if (f && f->mm)
        return dot_product(f->mm) ? "qmatmul" : "matmul";
    if (dot_product(n))
        return "qmatmul";
    int fl = op_info[n->op].flags;
    switch (n->op) {
    case OP_MATMUL:
    case OP_QMATMUL:
    case OP_CONV2D: return "matmul";
    case OP_ATTENTION: return "attention";
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
    case OP_LAYERNORM:
    case OP_RMSNORM: return "norm";
    default: break;
    }
    if (fl & F_EW)
        return "loop";
    if (fl & F_RED)
        return "reduce";
    if (fl & F_MOVE)
        return "move";
    return "other";
}

void cg_profile_group(Cg *cg, const Node *n, const Fused *f, const Node *const *ops, int nops, CgProfGroup *out)
{
    const Graph *g = cg->g;
    const Node *nodes[64];
    int k = group_nodes(n, f, nodes, 64);
    char tb[IR_MAX_RANK * 96 + 16], label[IR_MAX_RANK * 96 + 200];
    node_type_str(g, n, tb, sizeof tb);
    if (f && f->mm)
        snprintf(label, sizeof label, "%%%d matmul + epilogue %s %s", f->mm->id, op_info[n->op].name, tb);
    else if (k > 1)
        snprintf(label, sizeof label, "%%%d loop of %d ops ending in %s %s", n->id, k, op_info[n->op].name, tb);
    else
        snprintf(label, sizeof label, "%%%d %s %s", n->id, op_info[n->op].name, tb);
    out->label = strdup(label);
    KILN_ASSERT(out->label);
    out->kind = kind_of(n, f);
    out->sym = first_symbol(nodes, k, ops, nops);
    int64_t vals[IR_MAX_SYMS];
    for (int s = 0; s < g->nsym; s++)
        vals[s] = g->syms[s].bound;
    double fv[3], bv[3];
    for (int p = 0; p < 3; p++) {
        if (out->sym >= 0)
            vals[out->sym] = p + 1;
        group_cost(nodes, k, ops, nops, vals, &fv[p], &bv[p]);
    }
    if (out->sym < 0) {
        out->flops[0] = fv[0], out->flops[1] = out->flops[2] = 0;
        out->bytes[0] = bv[0], out->bytes[1] = out->bytes[2] = 0;
        return;
    }
    /* f(1), f(2), f(3) -> c0 + c1 S + c2 S^2 */
    double *c[2] = {out->flops, out->bytes}, *v[2] = {fv, bv};
    for (int t = 0; t < 2; t++) {
        double c2 = (v[t][2] - 2 * v[t][1] + v[t][0]) / 2, c1 = v[t][1] - v[t][0] - 3 * c2;
        c[t][2] = c2;
        c[t][1] = c1;
        c[t][0] = v[t][0] - c1 - c2;
    }
}

LLVMValueRef cg_profile_table(Cg *cg, const char *name, const CgProfGroup *groups, int n)
{
    LLVMTypeRef d3 = LLVMArrayType2(cg->f64, 3);
    LLVMTypeRef gty = LLVMStructTypeInContext(cg->ctx, (LLVMTypeRef[]){cg->ptr, cg->ptr, cg->i64, d3, d3}, 5, 0);
    LLVMValueRef *elems = calloc((size_t)n + 1, sizeof *elems);
    KILN_ASSERT(elems);
    for (int i = 0; i < n; i++) {
        const CgProfGroup *p = &groups[i];
        LLVMValueRef fl[3], by[3];
        for (int t = 0; t < 3; t++) {
            fl[t] = LLVMConstReal(cg->f64, p->flops[t]);
            by[t] = LLVMConstReal(cg->f64, p->bytes[t]);
        }
        LLVMValueRef label = LLVMConstStringInContext(cg->ctx, p->label, (unsigned)strlen(p->label), 0);
        LLVMValueRef lg = LLVMAddGlobal(cg->mod, LLVMTypeOf(label), ".prof.label");
        LLVMSetInitializer(lg, label);
        LLVMSetGlobalConstant(lg, 1);
        LLVMSetLinkage(lg, LLVMPrivateLinkage);
        LLVMValueRef kind = LLVMConstStringInContext(cg->ctx, p->kind, (unsigned)strlen(p->kind), 0);
        LLVMValueRef kg = LLVMAddGlobal(cg->mod, LLVMTypeOf(kind), ".prof.kind");
        LLVMSetInitializer(kg, kind);
        LLVMSetGlobalConstant(kg, 1);
        LLVMSetLinkage(kg, LLVMPrivateLinkage);
        LLVMValueRef f[5] = {lg, kg, cg_i64(cg, p->sym), LLVMConstArray2(cg->f64, fl, 3), LLVMConstArray2(cg->f64, by, 3)};
        elems[i] = LLVMConstStructInContext(cg->ctx, f, 5, 0);
    }
    LLVMValueRef init = LLVMConstArray2(gty, elems, (uint64_t)n);
    free(elems);
    LLVMValueRef tg = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(tg, init);
    LLVMSetGlobalConstant(tg, 1);
    LLVMSetLinkage(tg, LLVMPrivateLinkage);
    return tg;
}

/* float fma(i64 iters) on <lanes x float>, chains accumulators; *flops_per_iter set. */
static LLVMValueRef fma_loop(Cg *cg, int *lanes, int *flops_per_iter)
{
    CgTarget t = cg_target(cg);
    enum { MAX_CHAINS = 24 };
    int chains = t.regs >= 32 ? MAX_CHAINS : 12;
    *lanes = t.vw;
    *flops_per_iter = 2 * chains * t.vw;
    const char *name = "prof.fma";
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (f)
        return f;
    LLVMTypeRef fty = LLVMFunctionType(cg->f32, &cg->i64, 1, 0);
    f = LLVMAddFunction(cg->mod, name, fty);
    LLVMSetLinkage(f, LLVMInternalLinkage);
    cg_vector_width_attr(cg, f, t.vw);
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->b);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"),
                      loop = LLVMAppendBasicBlockInContext(cg->ctx, f, "loop"),
                      done = LLVMAppendBasicBlockInContext(cg->ctx, f, "done");
    LLVMPositionBuilderAtEnd(cg->b, entry);
    CgVec v = cg_vec(cg, t.vw, t.fma);
    LLVMValueRef one = cg_vconst(&v, 1.0), m = cg_vconst(&v, 0.999999), c = cg_vconst(&v, 1e-7);
    LLVMBuildBr(cg->b, loop);
    /* do { x[j] = x[j] * m + c for every chain } while (++i < iters) */
    LLVMPositionBuilderAtEnd(cg->b, loop);
    LLVMValueRef i = LLVMBuildPhi(cg->b, cg->i64, "i"), x[MAX_CHAINS], next[MAX_CHAINS];
    LLVMValueRef zero = cg_i64(cg, 0);
    LLVMAddIncoming(i, &zero, &entry, 1);
    for (int j = 0; j < chains; j++) {
        x[j] = LLVMBuildPhi(cg->b, v.vt, "x");
        LLVMAddIncoming(x[j], &one, &entry, 1);
    }
    for (int j = 0; j < chains; j++)
        next[j] = cg_vfma(&v, x[j], m, c);
    LLVMValueRef inext = LLVMBuildNSWAdd(cg->b, i, cg_i64(cg, 1), "");
    LLVMAddIncoming(i, &inext, &loop, 1);
    for (int j = 0; j < chains; j++)
        LLVMAddIncoming(x[j], &next[j], &loop, 1);
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, inext, LLVMGetParam(f, 0), ""), loop, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
    LLVMValueRef sum = next[0];
    for (int j = 1; j < chains; j++)
        sum = LLVMBuildFAdd(cg->b, sum, next[j], "");
    LLVMBuildRet(cg->b, cg_vhsum(&v, sum));
    LLVMPositionBuilderAtEnd(cg->b, saved);
    return f;
}

/* if (fn) fn(args): a runtime function the process running the code may lack (cg_runtime_function). */
static void call_if_linked(Cg *cg, const char *name, LLVMTypeRef fty, LLVMValueRef *args, int nargs)
{
    LLVMValueRef f = cg_runtime_function(cg, name, fty);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef call = LLVMAppendBasicBlockInContext(cg->ctx, fn, "prof"),
                      next = LLVMAppendBasicBlockInContext(cg->ctx, fn, "prof.next");
    LLVMBuildCondBr(cg->b, LLVMBuildIsNotNull(cg->b, f, ""), call, next);
    LLVMPositionBuilderAtEnd(cg->b, call);
    LLVMBuildCall2(cg->b, fty, f, args, (unsigned)nargs, "");
    LLVMBuildBr(cg->b, next);
    LLVMPositionBuilderAtEnd(cg->b, next);
}

void cg_profile_mark(Cg *cg, LLVMValueRef table, int n, int k)
{
    if (k == 0) {
        /* void rt_profile_peak(ptr fma, i32 lanes, i32 flops_per_iter, ptr pool); the pool is the
         * entry's last parameter in both of its forms (RtEntry, RtStateEntry) */
        int lanes, flops;
        LLVMValueRef fma = fma_loop(cg, &lanes, &flops);
        LLVMValueRef entry = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
        LLVMTypeRef pty = LLVMFunctionType(cg->void_, (LLVMTypeRef[]){cg->ptr, cg->i32, cg->i32, cg->ptr}, 4, 0);
        LLVMValueRef args[4] = {fma, LLVMConstInt(cg->i32, (unsigned long long)lanes, 0),
                                LLVMConstInt(cg->i32, (unsigned long long)flops, 0),
                                LLVMGetParam(entry, LLVMCountParams(entry) - 1)};
        call_if_linked(cg, "rt_profile_peak", pty, args, 4);
    }
    /* void rt_profile_mark(ptr groups, i32 n, i32 k), referenced weakly: skipped where the process
     * that runs the code has no runtime (cg_runtime_function) */
    LLVMTypeRef fty = LLVMFunctionType(cg->void_, (LLVMTypeRef[]){cg->ptr, cg->i32, cg->i32}, 3, 0);
    LLVMValueRef args[3] = {table, LLVMConstInt(cg->i32, (unsigned long long)n, 0), LLVMConstInt(cg->i32, (unsigned long long)k, 0)};
    call_if_linked(cg, "rt_profile_mark", fty, args, 3);
}
