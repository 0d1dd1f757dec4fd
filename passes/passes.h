/* passes.h: the passes over the IR and the pipeline that orders them.
 *
 * Every pass has one signature, `int pass_NAME(Graph *g, const PassOptions *o)`, returning the number
 * of changes it made, lives in its own file and keeps everything else static. The pipeline runs the
 * passes in a fixed order, verifies the graph after each one, and can print the IR after any of them.
 *
 * Sections, by source file:
 *   pipeline.c      the pass table, --passes and --print-after
 *   canonicalize.c    common subexpressions, transpose and reshape folding, algebraic identities, dead code
 *   fuse_attention.c  scaled-dot-product attention in its common spellings -> one ATTENTION node
 *   fuse_ops.c        layernorm, RMSNorm, GELU, SiLU and sigmoid from their primitive spellings -> their ops;
 *                     then fuse_loops.c's grouping
 *   fuse_loops.c      elementwise chains into one loop, matmul epilogues (marks nodes `inline`)
 *   kv_cache.c        prefill and decode entries with a bounded KV cache (--kv-cache POLICY)
 *   prune_tokens.c    token merging (ToMe, PiToMe) and [CLS]-attention pruning (EViT) in encoders, on request
 *   choose_quant.c    matmuls with constant weights -> qmatmul with quantized weights (--quant)
 *   plan_memory.c     the activation arena: an offset per stored intermediate, in place where legal
 */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "ir/ir.h"

typedef struct PassOptions {
    Diag *d;
    FILE *log;   /* what each pass did, one line per pass (NULL: quiet) */
    const char *explain; /* the pass that says, as notes at the source, why it left something alone
                            (--explain PASS), or NULL */
    const char *kv_cache; /* kv-cache's policy (--kv-cache POLICY), or NULL: the pass does not run */
    const char *prune_tokens; /* --prune-tokens SPEC (prune_tokens.c): the method and its schedule; NULL:
                                 the pass is off */
    FILE *report;        /* where a pass writes its report (prune-tokens: tokens and FLOPs per layer), or NULL */
    const char *quant;   /* choose-quant's scheme for every layer (--quant int8|w8|w4), or NULL: none */
} PassOptions;

/* ---------------------------------------------------------------- pipeline.c */

/* Runs the passes named in `list` (comma-separated, in the pipeline's order whatever the order
 * written; NULL or "default" for the default pipeline, "none" for none), verifying after each and
 * printing the graph to `print` after the pass named by print_after ("all" for every pass).
 * Returns 0, or -1 after an error (an unknown pass name, a verifier failure), reported through o->d. */
int pass_pipeline(Graph *g, const char *list, const char *print_after, FILE *print, const PassOptions *o);
/* The names of the passes, in order, separated by ", " (for --help). */
const char *pass_names(void);

/* ---------------------------------------------------------------- the passes */

int pass_canonicalize(Graph *g, const PassOptions *o);
int pass_fuse_attention(Graph *g, const PassOptions *o);
int pass_fuse_ops(Graph *g, const PassOptions *o);
/* Runs only with o->kv_cache; errors (a model it cannot derive, with the node that stops it) are
 * reported through o->d, and the pipeline stops. */
int pass_kv_cache(Graph *g, const PassOptions *o);
/* Off unless o->prune_tokens is set; returns -1 after an error in that option (reported). */
int pass_prune_tokens(Graph *g, const PassOptions *o);
/* Does nothing unless o->quant names a scheme. */
int pass_choose_quant(Graph *g, const PassOptions *o);
/* The schemes --quant takes, ", "-separated (for --help and errors), and whether name is one. */
const char *pass_quant_schemes(void);
int pass_quant_scheme_ok(const char *name);
/* The second half of fuse-ops (fuse_loops.c): marks the nodes that are computed inside the loop of
 * their one consumer (Node.inl). Returns the number of nodes marked. */
int fuse_loops(Graph *g, const PassOptions *o);
int pass_plan_memory(Graph *g, const PassOptions *o);

/* ---------------------------------------------------------------- plan_memory.c, for codegen */

/* Plans the arena (sets Node.arena, Node.inplace, Graph.arena_bytes and Graph.planned); returns the
 * number of nodes placed in place. */
int plan_memory(Graph *g);
/* Bytes into its input where slice x's elements start when they are one contiguous block of it (the
 * dimensions before the axis are 1, the start and the later dimensions static), else -1; plan-memory
 * then makes it a view of an intermediate rather than a copy. */
int64_t plan_slice_shift(const Node *x);
/* Node x (a slice, reshape or transpose) as a strided view of a stored node: through x and the views
 * below it (view[], as plan_views sets it; slices of static start, reshapes that move no element,
 * transposes) down to the first node that is not a view, whose storage is in C order. */
typedef struct PlanView {
    const Node *base;            /* the stored node whose storage x's elements are in */
    int64_t offset;              /* elements into base's storage where x[0, ..., 0] is */
    int64_t stride[IR_MAX_RANK]; /* elements between neighbours along each dimension of x */
} PlanView;
/* 1 and *v when every stride is a constant (base's dimensions after the first static, each reshape
 * one that moves no element), else 0. */
int plan_view(const Node *x, const unsigned char *view, PlanView *v);
/* The copies around attention that are never made (filled by plan_views, asked by plan-memory and by
 * codegen; either may be NULL-free arrays of g->nnode entries):
 *   view[i] = 1: node i (a slice, reshape or transpose) is read only by attention nodes, as q, k or v,
 *     or by other such nodes, and is a view (plan_view) with contiguous rows: no kernel, no buffer;
 *     the attention reads its base through the view's strides.
 *   writes_into[a] = c: attention a's only reader is c = transpose(a) keeping the last axis, and a
 *     writes its result straight into c's storage, in c's layout (c: no kernel; its buffer is a's);
 *     else -1. */
void plan_views(const Graph *g, unsigned char *view, int *writes_into);
/* The strides, in its consumer c's C-order storage, of attention a's result (writes_into[a] = c). */
void plan_write_strides(const Node *a, const Node *c, int64_t *stride);
/* folded[i] = 1 when only compile-time packing reads node i (no kernel, no buffer). gather_from (may
 * be NULL): for a gather whose table is a weight some matmul packs transposed (tied embeddings), the
 * id of that matmul, whose packed copy the gather then reads instead of the weight; else -1. */
void plan_folded(const Graph *g, unsigned char *folded, int *gather_from);
/* State updates and outputs (ir/entry.c). plan_update_direct: whether update k (Graph.outputs) is
 * computed straight into its state: nothing after it in an entry that computes it reads the state's
 * old value, it reads that value only as the base of a scatter (then in place), and it is no other
 * result. plan_output_single: whether output k is its node's only result (one entry, no update), so
 * the node is computed straight into the caller's buffer. */
int plan_update_direct(Graph *g, int k);
int plan_output_single(const Graph *g, int k);

#endif
