/* profile.c: the table of node groups an entry function reports to the runtime's profiler, and
 * the marks it makes (runtime/profile.c says how the time is taken).
 *
 * A group is one kernel call of the entry: a node, or a stored elementwise node with the inline
 * nodes its loop computes (an inline matmul makes it "matmul + epilogue"). Its FLOPs and bytes
 * (values read and written, weights included) depend on the symbolic sizes; the table stores them as
 * a quadratic in the first symbol the group's shapes use, fitted from the exact counts at that
 * symbol = 1, 2, 3 with the others at their bounds. That is exact for every group of a model with one
 * symbolic size (attention is quadratic in T, the rest linear), and an estimate with several.
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

static const char *kind_of(const Node *n, const Fused *f)
{
    if (f && f->mm)
        return "matmul";
    int fl = op_info[n->op].flags;
    switch (n->op) {
    case OP_MATMUL:
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

void cg_profile_mark(Cg *cg, LLVMValueRef table, int n, int k)
{
    /* void rt_profile_mark(ptr groups, i32 n, i32 k), referenced weakly: skipped where the process
     * that runs the code has no runtime (cg_runtime_function) */
    LLVMTypeRef fty = LLVMFunctionType(cg->void_, (LLVMTypeRef[]){cg->ptr, cg->i32, cg->i32}, 3, 0);
    LLVMValueRef f = cg_runtime_function(cg, "rt_profile_mark", fty);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef call = LLVMAppendBasicBlockInContext(cg->ctx, fn, "prof"),
                      next = LLVMAppendBasicBlockInContext(cg->ctx, fn, "prof.next");
    LLVMBuildCondBr(cg->b, LLVMBuildIsNotNull(cg->b, f, ""), call, next);
    LLVMPositionBuilderAtEnd(cg->b, call);
    LLVMValueRef args[3] = {table, LLVMConstInt(cg->i32, (unsigned long long)n, 0), LLVMConstInt(cg->i32, (unsigned long long)k, 0)};
    LLVMBuildCall2(cg->b, fty, f, args, 3, "");
    LLVMBuildBr(cg->b, next);
    LLVMPositionBuilderAtEnd(cg->b, next);
}
