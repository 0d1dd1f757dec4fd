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
 *   kv_positions.c    its positions=cache: rotary positions within the cache (StreamingLLM)
 *   prune_tokens.c    token merging (ToMe, PiToMe) and [CLS]-attention pruning (EViT) in encoders, on request
 *   choose_quant.c    matmuls with constant weights -> qmatmul with quantized weights: one scheme for
 *                     all (--quant), or one per layer chosen under a budget from calibration runs
 *   quant_calib.c     choose-quant's calibration runs, activation ranges and output-change measures
 *   plan_memory.c     the activation arena: an offset per stored intermediate, in place where legal
 */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "ir/ir.h"

/* The target choose-quant's time model describes (choose_quant.c, its time model): the facts of
 * codegen's CgTarget for the target the code is built for (the host, or kiln build's --target/--cpu/
 * --features), copied by the driver, since passes do not call codegen. known = 0 (a caller that
 * gives none): the development machine, AMD Zen 4 with AVX-512 VNNI and BF16 and 32 MiB of L3. */
typedef struct QuantTarget {
    int known;
    const char *cpu;         /* LLVM's name of the CPU */
    const char *isa;         /* "AVX-512", "AVX2", "SSE", "NEON", "generic vectors" */
    const char *core;        /* the known core (codegen/target.c's table), or NULL */
    int x86;
    int vw;                  /* floats per vector */
    int fma;                 /* fused multiply-add */
    int vnni, bf16;          /* AVX-512 VNNI (vpdpbusd), AVX512-BF16 (vdpbf16ps) */
    int amx_int8, amx_bf16;  /* AMX tiles with tdpbusd / tdpbf16ps */
    int fma_pipes, fma_bits; /* the known core's vector FMA pipes and their width; 0: unknown */
    long llc;                /* last-level cache in bytes (what one core may use); 0: unknown */
    const char *llc_from;    /* where llc came from */
} QuantTarget;

typedef struct PassOptions {
    Diag *d;
    FILE *log;   /* what each pass did, one line per pass (NULL: quiet) */
    const char *explain; /* the pass that says, as notes at the source, why it left something alone
                            (--explain PASS), or NULL */
    const char *kv_cache; /* kv-cache's policy (--kv-cache POLICY), or NULL: the pass does not run */
    const char *prune_tokens; /* --prune-tokens SPEC (prune_tokens.c): the method and its schedule; NULL:
                                 the pass is off */
    FILE *report;        /* where a pass writes its report (prune-tokens: tokens and FLOPs per layer), or NULL */
    const char *quant;   /* choose-quant's scheme for every layer (--quant bf16|int8|int8s|w8|w4), or NULL: none */
    int ncalib;          /* choose-quant's calibration files (--calibrate FILE...): .npy inputs or text */
    const char *const *calib;
    int nheldout;        /* --quant-heldout FILE...: where the choice is verified (default: the last
                            quarter of the calibration runs) */
    const char *const *heldout;
    const char *quant_budget;    /* --quant-budget loss=X,size=MB,speed=F (any of them), or NULL */
    const char *quant_report;    /* --quant-report FILE: the per-layer table, editable, or NULL */
    const char *quant_overrides; /* --quant-overrides FILE: layers pinned to a scheme, or NULL */
    QuantTarget quant_target;    /* what choose-quant's time model assumes of the target */
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
/* ---------------------------------------------------------------- kv_positions.c (for kv_cache.c) */

/* The nodes between an attention's input (q, k or v) and the one value x that every path from the
 * tokens to it goes through, where the positions (a T-arange) come in: a rotary embedding of x.
 * Token-wise (each token's row from its own row of x and its own position), so it can be computed
 * again for rows of x at other positions. */
typedef struct KvRegion {
    const Node *x;   /* the value before the positions apply (what the cache holds), or NULL: none */
    const Node *top; /* the attention's input */
    int *ids;        /* (n) the region's nodes, descending ids */
    int n;
} KvRegion;

/* The regions of every attention's q, k and v among the first n0 nodes of g, T the symbol tsym:
 * reg[3 l + j] for input j of the l-th attention; -1 after an error (reported to d). */
int kv_find_regions(Graph *g, int tsym, int n0, KvRegion *reg, Diag *d);
/* Region r again for n tokens: x the value before the positions ([..., n, ...]), pos the positions
 * (i64 [n]), map the decode node of each node outside the region; returns the attention input. */
Node *kv_reclone(Graph *g, int tsym, Node *const *map, const KvRegion *r, Node *x, Node *pos, int64_t n);
/* From pos1, each slot's position + 1 (0: empty) [rows..., S]: each held slot's rank among the held
 * slots of its row in position order (i64 [rows..., S]), and the tokens held before the newest (the
 * new token's position), from row 0 (every row holds as many), i64 [1]. */
void kv_ranks(Graph *g, Node *pos1, Node **ranks, Node **qpos);
/* Region r over the S cached rows (cached: the values before the positions), each at its rank: ranks
 * [S], or [rows..., S] per KV head (h2o: the region once per row, each row taken from its own). */
Node *kv_rerotated(Graph *g, int tsym, Node *const *map, const KvRegion *r, Node *cached, Node *ranks);
/* d with T (the symbol tsym) = n; 0 when d uses another symbol. */
int kv_subst(int tsym, Dim d, int64_t n, Dim *out);
/* Whether x has a symbolic size or a symbolic slice range. */
int kv_uses_sym(const Node *x);

/* Off unless o->prune_tokens is set; returns -1 after an error in that option (reported). */
int pass_prune_tokens(Graph *g, const PassOptions *o);
/* Does nothing unless o->quant names a scheme, or calibration files or overrides are given
 * (pass_quant_on); errors (a file that does not fit, a budget no choice meets) through o->d. */
int pass_choose_quant(Graph *g, const PassOptions *o);
int pass_quant_on(const PassOptions *o);
/* Parses --quant-budget's "loss=X", "size=MB", "speed=F" (F > 0), one or several, comma-separated
 * (-1: not given); 0 when wrong. */
int pass_quant_budget(const char *spec, double *loss, double *size_mb, double *speed);
/* The multiple-choice knapsack choose-quant solves (here for its unit test): n layers each take one
 * of nopt options (nopt < 255); cost[(i * nopt + s) * 3 + d] is option s of layer i's cost in
 * dimension d (0: loss, 1: bytes, 2: time), NaN in any dimension where layer i cannot take s;
 * budget[d] < 0: none. Minimises the summed costs of dimension obj (ties: of the other dimensions, in
 * order) subject to every other dimension's budget (at most two). Returns 0 with choice[i] set; 1
 * when no choice meets the budgets: choice untouched, or, when only obj's own budget is broken, the
 * choice of the least obj. Exact on the costs rounded up to a grid over each budget's slack (the
 * budget less the layers' least costs: 2^15 units, or 512 x 512 for two budgets, fewer for
 * thousands of layers), so a choice it returns always meets the budgets and one it misses uses more
 * than all but n / units of a slack. */
int pass_quant_mckp(int n, int nopt, const double *cost, const double *budget, int obj, int *choice);
/* The schemes --quant takes, ", "-separated (for --help and errors), and whether name is one. */
const char *pass_quant_schemes(void);
int pass_quant_scheme_ok(const char *name);
/* The second half of fuse-ops (fuse_loops.c): marks the nodes that are computed inside the loop of
 * their one consumer (Node.inl). Returns the number of nodes marked. */
int fuse_loops(Graph *g, const PassOptions *o);
int pass_plan_memory(Graph *g, const PassOptions *o);

/* ---------------------------------------------------------------- quant_calib.c, for choose_quant.c */

/* Runs of the model: in[r] is the one input of run r (data owned by the set). */
typedef struct CalibSet {
    int nrun;
    HostTensor *in; /* (nrun) */
    void **data;    /* (nrun) what the set frees */
} CalibSet;
/* Appends the runs of each file (.npy: one run; else text cut into windows of the input's bound) to s.
 * Errors name the file and what the model's input expects; returns -1 after one. */
int pass_calib_load(const Graph *g, int nfile, const char *const *files, CalibSet *s, Diag *d);
void pass_calib_free(CalibSet *s);
/* The whole file, NUL-terminated (malloc'ed; *len bytes before the NUL); NULL when it cannot be opened. */
char *pass_calib_read_text(const char *path, size_t *len);
/* Interprets h (a graph whose one input has g's type) on run r: out[] gets h->noutput tensors
 * (malloc'ed data). Returns 0, or -1 after an error reported through d. */
int pass_calib_run(const Graph *h, const CalibSet *s, int r, HostTensor *out, Diag *d);

enum { CALIB_BINS = 1 + 80 * 16 }; /* |x| histogram: zero, then 16 bins per octave from 2^-40 to 2^40 */
/* The range of one activation over the runs. */
typedef struct CalibStats {
    double min, max;
    uint64_t count;
    uint64_t hist[CALIB_BINS];
} CalibStats;
void pass_calib_observe(CalibStats *st, const HostTensor *t);
/* The p-th percentile (0..100) of |x|: the upper edge of its histogram bin, at most max |x|. */
double pass_calib_percentile(const CalibStats *st, double p);

/* The change of the model's first output against fp32, summed over runs. */
typedef struct CalibLoss {
    double num, den;
} CalibLoss;
/* Whether the measure is KL divergence (the first output is named *logits*) or relative error. */
int pass_calib_is_kl(const Graph *g);
void pass_calib_loss_add(CalibLoss *l, int kl, const HostTensor *ref, const HostTensor *q);
/* Mean KL(softmax(ref) || softmax(q)) over rows in nats, or ||q - ref|| / ||ref||. */
double pass_calib_loss(const CalibLoss *l, int kl);

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
