/* entry.c: the entry functions, the node functions they call, and the RtModel descriptor.
 *
 * The entry `kiln_<name>_run_raw(weights, activations, syms, inputs, outputs, pool)` computes each
 * node's buffer from the plan (blob offset, arena offset, caller's input or output) and calls the
 * node's function in graph order. Node functions are internal, so LLVM may inline them; each
 * returns 0, or a non-zero code when a run-time check fails (an index out of range), which the
 * entry returns at once.
 *
 * A graph with state or declared entries (ir/entry.c) gets one function per entry instead,
 * `kiln_<name>_<entry>_raw(weights, activations, state, syms, inputs, outputs, pool)`: it calls the
 * functions of the nodes that entry needs, in graph order (node functions are shared between
 * entries), reads states and writes the updates plan-memory put there through the state pointer,
 * then copies its outputs and updates that live elsewhere, outputs first. The descriptor lists the
 * entries and the states (RtModel.entries, states, state_bytes) and leaves RtModel.run NULL.
 */
#include "codegen/codegen.h"
#include "passes/passes.h"
#include "runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static LLVMValueRef global_string(Cg *cg, const char *s, const char *name)
{
    LLVMValueRef init = LLVMConstStringInContext(cg->ctx, s, (unsigned)strlen(s), 0);
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}

/* The pointer to a node's buffer inside the entry function: args are (weights, activations, syms,
 * inputs, outputs, pool, state), state NULL without state. */
static LLVMValueRef place_ptr(Cg *cg, const Place *pl, LLVMValueRef *args)
{
    LLVMValueRef base;
    switch (pl->home) {
    case HOME_WEIGHTS: base = args[0]; break;
    case HOME_ARENA: base = args[1]; break;
    case HOME_STATE: base = args[6]; break;
    case HOME_INPUT:
    case HOME_OUTPUT: {
        LLVMValueRef arr = pl->home == HOME_INPUT ? args[3] : args[4];
        LLVMValueRef p = LLVMBuildGEP2(cg->b, cg->ptr, arr, (LLVMValueRef[]){cg_i64(cg, pl->index)}, 1, "");
        return LLVMBuildLoad2(cg->b, cg->ptr, p, "");
    }
    default: UNREACHABLE();
    }
    if (!pl->offset)
        return base;
    return LLVMBuildGEP2(cg->b, cg->i8, base, (LLVMValueRef[]){cg_i64(cg, pl->offset)}, 1, "");
}

static int emit_kernel(Cg *cg, const Node *n, const Fused *f, LLVMValueRef out, LLVMValueRef *in)
{
    int flags = op_info[n->op].flags;
    for (int i = 0; i < n->rank; i++)
        if (dim_is_const(n->shape[i]) && dim_value(n->shape[i]) == 0)
            return 0; /* an empty result (a dimension of 0) has nothing to compute; a kernel's blocking
                       * could divide by its 0 (a matmul [M, K] @ [K, 0]) */
    if (f)
        return cg_fused(cg, f, out, in);
    switch (n->op) {
    case OP_ARANGE:
    case OP_CAUSAL_MASK: return cg_source(cg, n, out);
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
    case OP_LAYERNORM:
    case OP_RMSNORM: return cg_normalise(cg, n, out, in);
    case OP_MATMUL: return cg_matmul(cg, n, out, in);
    case OP_CONV2D: return cg_conv2d(cg, n, out, in);
    case OP_ATTENTION: return cg_attention(cg, n, out, in);
    case OP_QUANTIZE: case OP_DEQUANTIZE: case OP_QMATMUL: return cg_quant(cg, n, out, in);
    case OP_SCATTER: return cg_scatter(cg, n, out, in);
    case OP_TOME_MATCH: case OP_PITOME_MATCH: case OP_TOKEN_MERGE: case OP_CLS_ATTN: case OP_EVIT_SELECT: return cg_tokens(cg, n, out, in);
    default: break;
    }
    if (flags & F_EW)
        return cg_elementwise(cg, n, out, in);
    if (flags & F_MOVE)
        return cg_movement(cg, n, out, in);
    if (flags & F_RED)
        return cg_reduce(cg, n, out, in);
    diag_error(cg->d, n->loc, "internal error: no code generator for op '%s'", op_info[n->op].name);
    return -1;
}

/* Builds `i32 node_<id>(ptr out, ptr in..., ptr syms, ptr pool)`: in... are the node's inputs, or
 * with f, the values its fused loop reads (cg_fused_collect). */
static LLVMValueRef node_function(Cg *cg, const Node *n, const Fused *f, int nops)
{
    LLVMTypeRef params[IR_MAX_RANK + 72];
    int np = 0;
    KILN_ASSERT(nops <= 72);
    params[np++] = cg->ptr;
    for (int i = 0; i < nops; i++)
        params[np++] = cg->ptr;
    params[np++] = cg->ptr;
    params[np++] = cg->ptr;
    LLVMTypeRef fty = LLVMFunctionType(cg->i32, params, (unsigned)np, 0);
    char name[64];
    snprintf(name, sizeof name, "node%d_%s", n->id, op_info[n->op].name);
    LLVMValueRef fn = LLVMAddFunction(cg->mod, name, fty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    /* the plan places a result over a value its kernel reads only when it says so (in place) */
    if (!n->inplace)
        LLVMAddAttributeAtIndex(fn, 1, LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry");
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, entry);
    cg->fn = fn;
    cg->syms = LLVMGetParam(fn, (unsigned)np - 2);
    cg->pool = LLVMGetParam(fn, (unsigned)np - 1);
    cg->status = LLVMBuildAlloca(cg->b, cg->i32, "status");
    LLVMBuildStore(cg->b, LLVMConstInt(cg->i32, 0, 0), cg->status);
    LLVMValueRef in[72];
    for (int i = 0; i < nops; i++)
        in[i] = LLVMGetParam(fn, (unsigned)i + 1);
    emit_kernel(cg, n, f, LLVMGetParam(fn, 0), in);
    LLVMBuildRet(cg->b, LLVMBuildLoad2(cg->b, cg->i32, cg->status, ""));
    if (saved)
        LLVMPositionBuilderAtEnd(cg->b, saved);
    return fn;
}

/* ---------------------------------------------------------------- one function per kind of node
 *
 * The layers of a transformer repeat: ViT-B/16's 12 blocks make the same kernels 12 times over.
 * A node function depends only on what its key holds: the op, attributes and types of the node and
 * of every inline node it computes (the tree, with the stored values it reads numbered in order),
 * the types of those values, and what the plan decides for it (a packed operand, a table read from a
 * packed copy, the value overwritten in place). Nodes with equal keys call one function, which keeps
 * LLVM's work, and the compile time, to one block's worth. A gather's function reports its own node
 * id on an index out of range, so gathers are not shared. */

/* The node's line of the text form without ids, name and location: op, attributes, type. */
static void key_line(FILE *f, const Graph *g, const Node *x)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    KILN_ASSERT(m);
    ir_print_node(m, g, x);
    fclose(m);
    for (const char *p = buf; *p && *p != '\n'; p++) {
        if (*p == '%') { /* a reference: its digits are dropped */
            while (p[1] >= '0' && p[1] <= '9')
                p++;
            continue;
        }
        if (*p == '@' || *p == '#') /* the source location, the attention comment */
            break;
        fputc(*p, f);
    }
    free(buf);
}

static void key_tree(FILE *f, const Graph *g, const Node *x, const Fused *fu, int root)
{
    if (!root && !x->inl) {
        for (int k = 0; k < fu->nleaf; k++)
            if (fu->leaf[k] == x)
                fprintf(f, "L%d", k);
        return;
    }
    fputc('{', f);
    key_line(f, g, x);
    for (int j = 0; j < x->nin; j++) {
        const Node *y = x->in[j];
        if (y == fu->mm) {
            fputs("{MM", f);
            key_line(f, g, y);
            fputc('}', f);
        } else {
            key_tree(f, g, y, fu, 0);
        }
        fputc(',', f);
    }
    fputc('}', f);
}

/* The key of node n's function, malloc'ed. */
static char *node_key(Cg *cg, const Node *n, const Fused *fu, const Node *const *ops, int nops)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    KILN_ASSERT(f);
    if (fu)
        key_tree(f, cg->g, n, fu, 1);
    else
        key_line(f, cg->g, n);
    char tb[IR_MAX_RANK * 96 + 16];
    for (int j = 0; j < nops; j++)
        fprintf(f, "|%s", node_type_str(cg->g, ops[j], tb, sizeof tb));
    /* an elementwise kernel reads an operand given twice once (x * x has one leaf), so which
     * operands are the same value is part of the function: x * x must not serve a * b */
    for (int j = 0; j < nops; j++)
        for (int i = 0; i < j; i++)
            if (ops[i] == ops[j]) {
                fprintf(f, "|same %d %d", i, j);
                break;
            }
    const Node *mm = fu ? fu->mm : n;
    fprintf(f, "|packed %d|inplace %d|gather %d", mm && cg->plan.packed[mm->id] >= 0, n->inplace,
            n->op == OP_GATHER || n->op == OP_SCATTER ? n->id : -1);
    if (n->op == OP_ATTENTION) /* operands read, and the result written, through strides */
        cg_attention_layout(f, cg, n);
    if (n->inplace) { /* which value is overwritten: the loop reads it through the output's pointer */
        const Place *o = &cg->plan.place[n->id];
        for (int j = 0; j < nops; j++) {
            const Place *l = &cg->plan.place[ops[j]->id];
            fprintf(f, "%d", l->home == o->home && l->index == o->index && l->offset == o->offset);
        }
    }
    fclose(f);
    return buf;
}

static int needs_kernel(const Cg *cg, const Node *n)
{
    if (n->op == OP_INPUT || n->op == OP_WEIGHT || n->op == OP_CONST || n->op == OP_STATE || cg->plan.folded[n->id] ||
        n->inl)
        return 0;
    if (cg->plan.view[n->id] || cg->plan.written_by[n->id] >= 0) /* attention reads or writes it in place */
        return 0;
    if (n->op == OP_CLS_PROBS) /* its attention's kernel writes it */
        return 0;
    /* a reshape sharing its input's storage costs nothing, nor a slice that is a block of it */
    if (n->op == OP_RESHAPE || n->op == OP_SLICE) {
        const Place *a = &cg->plan.place[n->id], *b = &cg->plan.place[n->in[0]->id];
        int64_t shift = n->op == OP_RESHAPE ? 0 : plan_slice_shift(n);
        return !(shift >= 0 && a->home == b->home && a->index == b->index && a->offset == b->offset + shift);
    }
    return 1;
}

/* A tensor's type for the descriptor: a node's, or a state's. */
typedef struct TensorType {
    DType dtype;
    int rank;
    const Dim *shape;
} TensorType;

/* An RtDim: n, sym[RT_DIM_TERMS], a[RT_DIM_TERMS], b (the unused terms 0). */
static LLVMValueRef descriptor_dim(Cg *cg, LLVMTypeRef rdim, Dim d)
{
    _Static_assert((int)DIM_TERMS == (int)RT_DIM_TERMS, "a Dim's terms fit an RtDim's");
    LLVMValueRef sym[RT_DIM_TERMS], a[RT_DIM_TERMS];
    for (int i = 0; i < RT_DIM_TERMS; i++) {
        int64_t coef = 0;
        int s = i < dim_nterms(d) ? dim_term(d, i, &coef) : 0;
        sym[i] = cg_i64(cg, s);
        a[i] = cg_i64(cg, coef);
    }
    LLVMValueRef f[4] = {cg_i64(cg, dim_nterms(d)), LLVMConstArray2(cg->i64, sym, RT_DIM_TERMS),
                         LLVMConstArray2(cg->i64, a, RT_DIM_TERMS), cg_i64(cg, dim_value(d))};
    return LLVMConstNamedStruct(rdim, f, 4);
}

static LLVMValueRef descriptor_tensors(Cg *cg, LLVMTypeRef tdesc, LLVMTypeRef rdim, int n, const TensorType *types,
                                       const char *const *names, const char *what)
{
    LLVMValueRef *elems = calloc((size_t)n + 1, sizeof *elems);
    KILN_ASSERT(elems);
    for (int i = 0; i < n; i++) {
        const TensorType *x = &types[i];
        LLVMValueRef dims[RT_MAX_RANK];
        for (int k = 0; k < RT_MAX_RANK; k++) {
            dims[k] = descriptor_dim(cg, rdim, k < x->rank ? x->shape[k] : dim_const(0));
        }
        char gname[64];
        snprintf(gname, sizeof gname, ".%s%d", what, i);
        LLVMValueRef f[4] = {global_string(cg, names[i], gname), cg_i64(cg, x->dtype), cg_i64(cg, x->rank),
                             LLVMConstArray2(rdim, dims, RT_MAX_RANK)};
        elems[i] = LLVMConstNamedStruct(tdesc, f, 4);
    }
    LLVMValueRef init = LLVMConstArray2(tdesc, elems, (uint64_t)n);
    free(elems);
    char gname[64];
    snprintf(gname, sizeof gname, "kiln_%s_%s", cg->prefix, what);
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), gname);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    return g;
}

static void descriptor(Cg *cg, LLVMValueRef *entries)
{
    const Graph *g = cg->g;
    int stateful = g->nentry || g->nstate, ne = ir_nentries(g);
    LLVMTypeRef rdim = LLVMStructCreateNamed(cg->ctx, "RtDim");
    LLVMTypeRef terms = LLVMArrayType2(cg->i64, RT_DIM_TERMS);
    LLVMStructSetBody(rdim, (LLVMTypeRef[]){cg->i64, terms, terms, cg->i64}, 4, 0);
    LLVMTypeRef tdesc = LLVMStructCreateNamed(cg->ctx, "RtTensorDesc");
    LLVMStructSetBody(tdesc, (LLVMTypeRef[]){cg->ptr, cg->i64, cg->i64, LLVMArrayType2(rdim, RT_MAX_RANK)}, 4, 0);
    LLVMTypeRef sdesc = LLVMStructCreateNamed(cg->ctx, "RtSymDesc");
    LLVMStructSetBody(sdesc, (LLVMTypeRef[]){cg->ptr, cg->i64}, 2, 0);

    /* each entry's inputs and outputs (a model without state: its one entry, described in RtModel) */
    LLVMTypeRef edesc = LLVMStructCreateNamed(cg->ctx, "RtEntryDesc");
    LLVMStructSetBody(edesc, (LLVMTypeRef[]){cg->ptr, cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr}, 6, 0);
    LLVMValueRef *edescs = calloc((size_t)ne, sizeof *edescs), ins = NULL, outv = NULL;
    int *ix = malloc(sizeof(int) * ((size_t)g->ninput + (size_t)g->noutput + 1));
    const char **names = malloc(sizeof(char *) * ((size_t)g->ninput + (size_t)g->noutput + (size_t)g->nstate + 1));
    TensorType *types = malloc(sizeof(TensorType) * ((size_t)g->ninput + (size_t)g->noutput + (size_t)g->nstate + 1));
    KILN_ASSERT(edescs && ix && names && types);
    int nin0 = 0, nout0 = 0;
    for (int e = 0; e < ne; e++) {
        char what[96];
        int nin = ir_entry_inputs(g, e, ix);
        for (int i = 0; i < nin; i++) {
            const Node *x = g->inputs[ix[i]];
            names[i] = x->name;
            types[i] = (TensorType){x->dtype, x->rank, x->shape};
        }
        snprintf(what, sizeof what, e ? "inputs%d" : "inputs", e);
        LLVMValueRef iv = descriptor_tensors(cg, tdesc, rdim, nin, types, names, what);
        int nout = ir_entry_outputs(g, e, 0, ix);
        for (int i = 0; i < nout; i++) {
            const Node *x = g->outputs[ix[i]].node;
            names[i] = g->outputs[ix[i]].name;
            types[i] = (TensorType){x->dtype, x->rank, x->shape};
        }
        snprintf(what, sizeof what, e ? "outputs%d" : "outputs", e);
        LLVMValueRef ov = descriptor_tensors(cg, tdesc, rdim, nout, types, names, what);
        if (!e) {
            ins = iv;
            outv = ov;
            nin0 = nin;
            nout0 = nout;
        }
        char gname[96];
        snprintf(gname, sizeof gname, ".entry%d", e);
        LLVMValueRef f[6] = {global_string(cg, ir_entry_name(g, e), gname), cg_i64(cg, nin), cg_i64(cg, nout), iv, ov,
                             entries[e]};
        edescs[e] = LLVMConstNamedStruct(edesc, f, 6);
    }
    for (int i = 0; i < g->nstate; i++) {
        names[i] = g->states[i].name;
        types[i] = (TensorType){g->states[i].dtype, g->states[i].rank, g->states[i].shape};
    }
    LLVMValueRef statev = descriptor_tensors(cg, tdesc, rdim, g->nstate, types, names, "states");
    LLVMValueRef einit = LLVMConstArray2(edesc, edescs, (uint64_t)ne);
    LLVMValueRef eg = LLVMAddGlobal(cg->mod, LLVMTypeOf(einit), ".entries");
    LLVMSetInitializer(eg, einit);
    LLVMSetGlobalConstant(eg, 1);
    LLVMSetLinkage(eg, LLVMPrivateLinkage);
    free(edescs);
    free(ix);
    free(names);
    free(types);
    LLVMValueRef syms[IR_MAX_SYMS + 1];
    for (int i = 0; i < g->nsym; i++) {
        char gname[32];
        snprintf(gname, sizeof gname, ".sym%d", i);
        syms[i] = LLVMConstNamedStruct(sdesc, (LLVMValueRef[]){global_string(cg, g->syms[i].name, gname),
                                                               cg_i64(cg, g->syms[i].bound)}, 2);
    }
    LLVMValueRef sinit = LLVMConstArray2(sdesc, syms, (uint64_t)g->nsym);
    LLVMValueRef sg = LLVMAddGlobal(cg->mod, LLVMTypeOf(sinit), ".syms");
    LLVMSetInitializer(sg, sinit);
    LLVMSetGlobalConstant(sg, 1);
    LLVMSetLinkage(sg, LLVMPrivateLinkage);

    LLVMValueRef blob = LLVMConstNull(cg->ptr);
    if (cg->opt.embed_weights) {
        LLVMValueRef init = LLVMConstStringInContext(cg->ctx, (const char *)cg->plan.weights,
                                                     (unsigned)cg->plan.weights_bytes, 1);
        char gname[128];
        snprintf(gname, sizeof gname, "kiln_%s_weights", cg->prefix);
        blob = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), gname);
        LLVMSetInitializer(blob, init);
        LLVMSetGlobalConstant(blob, 1);
        LLVMSetLinkage(blob, LLVMPrivateLinkage);
        LLVMSetAlignment(blob, 64);
    }
    LLVMTypeRef mty = LLVMStructCreateNamed(cg->ctx, "RtModel");
    LLVMTypeRef mf[20] = {cg->i64, cg->ptr, cg->i64, cg->i64, cg->i64, cg->ptr, cg->ptr,
                          cg->ptr, cg->i64, cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr,
                          cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->i64};
    LLVMStructSetBody(mty, mf, 20, 0);
    LLVMValueRef vocab = g->vocab ? global_string(cg, g->vocab, ".vocab") : LLVMConstNull(cg->ptr);
    LLVMValueRef mv[20] = {cg_i64(cg, RT_ABI_VERSION), global_string(cg, g->model ? g->model : "model", ".name"),
                           cg_i64(cg, nin0), cg_i64(cg, nout0), cg_i64(cg, g->nsym), ins, outv, sg,
                           cg_i64(cg, cg->plan.weights_bytes), cg_i64(cg, cg->plan.arena_bytes),
                           LLVMConstInt(cg->i64, cg->plan.weights_hash, 0), blob,
                           stateful ? LLVMConstNull(cg->ptr) : entries[0], vocab,
                           cg_i64(cg, stateful ? ne : 0), stateful ? eg : LLVMConstNull(cg->ptr),
                           cg_i64(cg, g->nstate), statev, cg_i64(cg, ir_states_bytes(g)),
                           cg_i64(cg, cg->amx_used ? RT_NEEDS_AMX : 0)};
    char gname[128];
    snprintf(gname, sizeof gname, "kiln_model_%s", cg->prefix);
    LLVMValueRef m = LLVMAddGlobal(cg->mod, mty, gname);
    LLVMSetInitializer(m, LLVMConstNamedStruct(mty, mv, 20));
    LLVMSetGlobalConstant(m, 1);
}

/* Node functions shared by every entry: their keys (node_key) and functions. */
typedef struct Shared {
    char **keys;
    LLVMValueRef *fns;
    int n;
} Shared;

/* Builds entry e's function (e < 0: the classic `run_raw` of a graph without state, every node). */
static LLVMValueRef build_entry(Cg *cg, int e, Shared *sh)
{
    Graph *g = (Graph *)cg->g;
    int stateful = e >= 0;
    LLVMTypeRef params[7] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr};
    LLVMTypeRef fty = LLVMFunctionType(cg->i32, params, stateful ? 7 : 6, 0);
    char name[256];
    if (stateful)
        snprintf(name, sizeof name, "kiln_%s_%s_raw", cg->prefix, ir_entry_name(g, e));
    else
        snprintf(name, sizeof name, "kiln_%s_run_raw", cg->prefix);
    LLVMValueRef entry = LLVMAddFunction(cg->mod, name, fty);
    /* args in one order for both forms: weights, activations, syms, inputs, outputs, pool, state */
    static const int classic[7] = {0, 1, 2, 3, 4, 5, -1}, withstate[7] = {0, 1, 3, 4, 5, 6, 2};
    LLVMValueRef args[7];
    for (int i = 0; i < 7; i++) {
        int p = (stateful ? withstate : classic)[i];
        args[i] = p < 0 ? LLVMConstNull(cg->ptr) : LLVMGetParam(entry, (unsigned)p);
    }
    unsigned char *need = stateful ? ir_entry_needs(g, e) : NULL;
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(cg->ctx, entry, "entry");
    LLVMPositionBuilderAtEnd(cg->b, bb);
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(cg->ctx, entry, "fail");
    LLVMValueRef *ptrs = calloc((size_t)g->nnode + 1, sizeof *ptrs);
    KILN_ASSERT(ptrs);
    LLVMValueRef fail_phi_vals[1024];
    LLVMBasicBlockRef fail_phi_bbs[1024];
    int nfail = 0;
    LLVMPositionBuilderAtEnd(cg->b, fail);
    LLVMValueRef fail_phi = LLVMBuildPhi(cg->b, cg->i32, "code");
    LLVMBuildRet(cg->b, fail_phi);
    LLVMPositionBuilderAtEnd(cg->b, bb);
    /* the profile's table of this entry's kernel calls (codegen/profile.c): counted first, made after
     * the loop, referenced through a placeholder meanwhile */
    int ngroup = 0;
    for (int i = 0; i < g->nnode; i++)
        ngroup += !(cg->plan.folded[i] || g->nodes[i]->inl || (need && !need[i])) && needs_kernel(cg, g->nodes[i]);
    CgProfGroup *groups = calloc((size_t)ngroup + 1, sizeof *groups);
    LLVMValueRef ptable = LLVMAddGlobal(cg->mod, cg->i8, "prof.placeholder");
    int kgroup = 0;
    KILN_ASSERT(groups);
    for (int i = 0; i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (cg->plan.folded[i] || n->inl || (need && !need[i])) /* read only through packed copies, computed
                                                                  in a loop, or another entry's */
            continue;
        if (cg->plan.view[i]) { /* its base's storage, from where its first element is */
            PlanView v;
            KILN_ASSERT(plan_view(n, cg->plan.view, &v) && ptrs[v.base->id]);
            ptrs[i] = LLVMBuildGEP2(cg->b, cg->f32, ptrs[v.base->id], (LLVMValueRef[]){cg_i64(cg, v.offset)}, 1, "");
            continue;
        }
        ptrs[i] = place_ptr(cg, &cg->plan.place[i], args);
        if (!needs_kernel(cg, n))
            continue;
        Fused fu;
        int fused = (op_info[n->op].flags & F_EW) && cg_fused_collect(n, &fu);
        const Node *ops[72], *mm = fused ? fu.mm : n;
        int nops = 0;
        if (fused) {
            for (int j = 0; j < fu.nleaf; j++)
                ops[nops++] = fu.leaf[j];
            if (fu.mm)
                for (int j = 0; j < fu.mm->nin; j++)
                    ops[nops++] = fu.mm->in[j];
        } else {
            for (int j = 0; j < n->nin; j++)
                ops[nops++] = n->in[j];
            /* an attention's second result, its cls_probs: one more pointer, NULL when this entry
             * does not need it (cg_attention) */
            const Node *p = n->op == OP_ATTENTION ? cg_attention_cls(g, n) : NULL;
            if (p) {
                ops[nops++] = p;
                if (!need || need[p->id])
                    ptrs[p->id] = place_ptr(cg, &cg->plan.place[p->id], args);
            }
        }
        char *key = node_key(cg, n, fused ? &fu : NULL, ops, nops);
        LLVMValueRef f = NULL;
        for (int k = 0; k < sh->n && !f; k++)
            if (!strcmp(sh->keys[k], key))
                f = sh->fns[k];
        if (f) {
            free(key);
        } else {
            f = node_function(cg, n, fused ? &fu : NULL, nops);
            sh->keys[sh->n] = key;
            sh->fns[sh->n++] = f;
        }
        LLVMValueRef call_args[72 + 3];
        int k = 0;
        call_args[k++] = ptrs[i];
        for (int j = 0; j < nops; j++)
            call_args[k++] = ptrs[ops[j]->id] ? ptrs[ops[j]->id] : LLVMConstNull(cg->ptr); /* NULL: folded */
        if (mm && cg->plan.packed[mm->id] >= 0) /* the kernel reads the packed copy of mm's in[1] */
            call_args[fused ? fu.nleaf + 2 : 2] = LLVMBuildGEP2(cg->b, cg->i8, args[0], (LLVMValueRef[]){cg_i64(cg, cg->plan.packed[mm->id])}, 1, "");
        if (n->op == OP_GATHER && cg->plan.gather_from[i] >= 0) /* the table's rows from a packed copy */
            call_args[1] = LLVMBuildGEP2(cg->b, cg->i8, args[0],
                                         (LLVMValueRef[]){cg_i64(cg, cg->plan.packed[cg->plan.gather_from[i]])}, 1, "");
        call_args[k++] = args[2];
        call_args[k++] = args[5];
        cg_profile_group(cg, n, fused ? &fu : NULL, ops, nops, &groups[kgroup]);
        cg_profile_mark(cg, ptable, ngroup, kgroup++);
        LLVMValueRef rc = LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(f), f, call_args, (unsigned)k, "");
        if (n->op == OP_GATHER || n->op == OP_SCATTER) { /* the kernels with a run-time check */
            LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->ctx, entry, "next");
            LLVMValueRef bad = LLVMBuildICmp(cg->b, LLVMIntNE, rc, LLVMConstInt(cg->i32, 0, 0), "");
            if (nfail < 1024) {
                fail_phi_vals[nfail] = rc;
                fail_phi_bbs[nfail++] = LLVMGetInsertBlock(cg->b);
                LLVMBuildCondBr(cg->b, bad, fail, next);
            } else
                LLVMBuildBr(cg->b, next);
            LLVMPositionBuilderAtEnd(cg->b, next);
        }
    }
    /* outputs that live elsewhere (an input, a weight, a state, another output) are copied, then the
     * updates that plan-memory did not write straight into their state */
    for (int upd = 0; upd < 2; upd++)
        for (int k = 0, local = 0; k < g->noutput; k++) {
            const Output *o = &g->outputs[k];
            if ((stateful && o->entry != e) || o->update != upd)
                continue;
            int at = local++;
            if (!cg->plan.copy_out[k])
                continue;
            const Node *n = o->node;
            Place out = {HOME_OUTPUT, at, 0};
            if (upd) {
                out.home = HOME_STATE;
                ir_state_bytes(g, ir_find_state(g, o->name), &out.offset);
            }
            LLVMValueRef dst = place_ptr(cg, &out, args);
            LLVMValueRef dims[IR_MAX_RANK];
            cg->syms = args[2];
            cg_shape(cg, n, dims);
            LLVMValueRef bytes = cg_bytes(cg, n->dtype, cg_numel(cg, n->rank, dims));
            LLVMBuildMemCpy(cg->b, dst, 1, ptrs[n->id], 1, bytes);
        }
    cg_profile_mark(cg, ptable, ngroup, ngroup); /* the last group ends */
    KILN_ASSERT(kgroup == ngroup);
    char tname[300];
    snprintf(tname, sizeof tname, "%s.profile", name);
    LLVMValueRef table = cg_profile_table(cg, tname, groups, ngroup);
    LLVMReplaceAllUsesWith(ptable, table);
    LLVMDeleteGlobal(ptable);
    for (int i = 0; i < ngroup; i++)
        free(groups[i].label);
    free(groups);
    LLVMBuildRet(cg->b, LLVMConstInt(cg->i32, 0, 0));
    if (nfail)
        LLVMAddIncoming(fail_phi, fail_phi_vals, fail_phi_bbs, (unsigned)nfail);
    else
        LLVMDeleteBasicBlock(fail);
    free(ptrs);
    free(need);
    return entry;
}

void cg_entry(Cg *cg)
{
    const Graph *g = cg->g;
    int stateful = g->nentry || g->nstate, ne = ir_nentries(g);
    Shared sh = {calloc((size_t)g->nnode + 1, sizeof(char *)), calloc((size_t)g->nnode + 1, sizeof(LLVMValueRef)), 0};
    LLVMValueRef *entries = calloc((size_t)ne, sizeof *entries);
    KILN_ASSERT(sh.keys && sh.fns && entries);
    for (int e = 0; e < ne; e++)
        entries[e] = build_entry(cg, stateful ? e : -1, &sh);
    for (int k = 0; k < sh.n; k++)
        free(sh.keys[k]);
    free(sh.keys);
    free(sh.fns);
    descriptor(cg, entries);
    free(entries);
}

void cg_add_main(Cg *cg)
{
    /* int main(int argc, char **argv) { return rt_main(&kiln_model_<name>, argc, argv); } */
    LLVMTypeRef mt = LLVMFunctionType(cg->i32, (LLVMTypeRef[]){cg->i32, cg->ptr}, 2, 0);
    LLVMValueRef f = LLVMAddFunction(cg->mod, "main", mt);
    LLVMTypeRef rt = LLVMFunctionType(cg->i32, (LLVMTypeRef[]){cg->ptr, cg->i32, cg->ptr}, 3, 0);
    LLVMValueRef rtmain = LLVMAddFunction(cg->mod, "rt_main", rt);
    char name[128];
    snprintf(name, sizeof name, "kiln_model_%s", cg->prefix);
    LLVMValueRef model = LLVMGetNamedGlobal(cg->mod, name);
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    LLVMValueRef args[3] = {model, LLVMGetParam(f, 0), LLVMGetParam(f, 1)};
    LLVMBuildRet(cg->b, LLVMBuildCall2(cg->b, rt, rtmain, args, 3, ""));
}
