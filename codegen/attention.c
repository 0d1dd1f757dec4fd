/* attention.c: the fused attention op, softmax(q k^T * scale + mask) v without the T x T scores.
 *
 * Online softmax. The keys are visited in tiles. For each query row the kernel keeps the running
 * maximum m of the scores seen so far, the running sum l of exp(score - m) and an accumulator of
 * exp(score - m) * v; each tile rescales l and the accumulator by exp(m_old - m_new) (1 when the
 * maximum did not move). At the end the accumulator is divided by l, or the row is set to zero when
 * no key was visible (m is still -inf): never NaN. Every exponent is score - max <= 0, so logits of
 * 1e4 are safe. Under the causal mask (key j visible from query i when j <= i + Tk - Tq) the keys
 * past the last row's limit are never visited; in the tile that straddles the diagonal a lane
 * compare sets the invisible scores to -inf. An additive mask (any broadcast) is added to the
 * scores before the maximum.
 *
 * Two kernels, both written out as vector IR (VW floats a vector: 16 with AVX-512, 8 with AVX2, 4
 * with SSE, NEON and elsewhere, read from the target's features as gemm.c does; llvm.fma where the
 * target has it):
 *
 * The block kernel takes BVW query rows at once and puts one row in each lane of vectors of BVW
 * floats: BVW = VW, or 2 VW where the target has 32 registers of 16 floats (AVX-512), each vector
 * then two registers, so that every broadcast of an element of K or V feeds two multiply-adds (the
 * loops below issued one load per multiply-add, as many as the load ports allow, and a miss stalled
 * them: ViT-B/16's attention, 1 thread, AMX Xeon, 1.15 -> 1.00 ms a layer; KILN_ATTN lanes=1 keeps
 * VW). Below, VW stands for BVW. The query block is copied once into Qt [d][VW] on the stack,
 * multiplied by the scale and transposed (VW x VW transposes in registers, log2(VW) stages of
 * two-input shuffles), so that the scores of one key for all VW rows are one vector:
 *   S^T[j] = sum over c of splat(k[j, c]) * Qt[c]
 * computed SB keys at a time (SB accumulators in registers; per step of c one load of Qt[c] and SB
 * broadcasts of k, which x86 folds into the FMA: K is read where it is, never packed or
 * transposed). The sum over c goes to fresh partial sums every DC columns, so that logits near 1e4
 * round like a vectorised dot product's. A tile of BC keys gives S^T [BC][VW] in a stack buffer;
 * the running max and sum are vectors (one lane a row), the probabilities one vector exp per key,
 * and the accumulator is kept transposed, O^T [dv][VW] on the stack, so that the rescaling is one
 * multiply per column and p v is
 *   O^T[e] += splat(v[j, e]) * P^T[j]
 * EC columns at a time (EC accumulators in registers over the tile's keys; each column of O^T is
 * loaded, rescaled and stored once per tile). Each element of K and V loaded serves VW rows, and
 * per key and block the two products are 2 d fused multiply-adds against about 20 other vector
 * operations (max, exp, sum). The head sizes need no particular multiple: the lanes are rows, not
 * columns. Before p v the tile's rows of V are copied into a stack buffer [BC][dv] (read once,
 * in vectors): p v reads each of them dv / EC times, and rows that lie where the plan's views put
 * them (ViT-B/16's heads cut out of its qkv product, 9 KiB apart) fall into a few of L1's sets and
 * evicted each other between those passes (on the AMX Xeon the copy took ViT-B/16's attention from
 * 1.26 to 1.18 ms a layer at 1 thread; KILN_ATTN pack=0 turns it off). At the end O^T / l is
 * transposed back into the output rows (a scatter would write VW cache lines per column). Measured
 * on Zen 4 (one core, 12 heads, T = 1024, before blocks of 2 VW and the copy of V): 86% of the FMA
 * peak at d = 64, 89% at d = 128; the rest is mostly the exp.
 *
 * The row kernel takes one query row with its d columns across vectors: q in ceil(d / VW)
 * registers, the accumulator in ceil(dv / VW) registers over all keys, one reduction per score,
 * scores and probabilities in a stack buffer per tile of RBC keys. It does the blocks of fewer than
 * MINROWS rows (decoding, short prompts, the last rows of a long one), where the block kernel
 * would compute mostly empty lanes. It needs d and dv known at compile time (else the block kernel
 * does every row, just slower).
 *
 * Work. The work items are (batch index, query block), run by cg_parallel's CG_ITEMS (parallel.c):
 * the threads take items one at a time from a shared counter, so that a thread that was
 * descheduled, or whose blocks cost more, does fewer, rather than the others waiting for its fixed
 * share; the body is one function for all the nodes of the same shapes, as a model's layers are. A batch index's blocks are taken together (its K and V stay
 * in cache); under the causal mask, where block b costs about b, the last first, so that the
 * items left at the end are the small ones. Decoding (every row to the row kernel, fewer than two
 * rows per thread: one token with few heads, or one sequence) also splits the keys, into chunks of
 * at least CHUNK keys: the items are (row, chunk), each writes its (m, l, accumulator) to scratch
 * on the node function's stack (SPLIT_BYTES at most), and after the parallel loop the node merges
 * each row's chunks: M = max m_c, L = sum exp(m_c - M) l_c, out = sum exp(m_c - M) acc_c / L.
 *
 * Tile sizes. BC is chosen so that what the block kernel keeps in L1 (Qt, O^T, S^T and the copied
 * tile of V, 4 VW (d + dv + BC) + 4 BC dv bytes) takes three quarters of it, K streaming through
 * the rest (each of its elements is loaded once per block); RBC so that a tile of K and V takes
 * half of L1. L1 is the host's (sysconf) when compiling for the host, 32 KiB otherwise. The
 * environment variable KILN_ATTN ("bc=128,rbc=128,sb=8,ec=16,minrows=8,chunk=256,split=0,pack=1,
 * lanes=2") overrides them at compile time, for measurements and tests (split: the (row, chunk)
 * items a split aims at, at least, whatever the threads). On Zen 4, BC from 64 to 256, SB 6 to 12 and EC 16 to 32 all measure
 * within 2% of each other at T = 1024.
 *
 * Layout. Rows of q, k, v and of the output are contiguous, but rows and batch indices may be any
 * distance apart: the plan (plan_views) has attention read q, k and v through the strides of the
 * slices, reshapes and transposes that made them (GPT-2's and ViT's heads cut out of one qkv
 * product, never copied) and write its result in the layout of the transpose that reads it, with
 * the strides as constants of the kernel (its name hashes them). Otherwise the strides are the C
 * order of the operands' shapes.
 *
 * The first row's probabilities (a cls_probs node reads the attention: EViT's [CLS] attention). The
 * kernel writes them into the cls_probs' buffer, [batch][Tk], as a by-product, as it writes a row's
 * probabilities with the attribute scores: the item that has query row 0 of a batch index (the first
 * block, or the row kernel's row 0, or the chunks of row 0 of a split) stores that row's raw scores
 * (lane 0 of each tile's S^T in the block kernel) and, once the row's maximum m and sum l are final,
 * replaces them by e^(s - m) / l (0 for keys masked, past the causal limit or not read). No second pass
 * over K, and no T x T matrix. The pointer comes after the node's inputs; NULL at run time (an entry
 * that does not need the cls_probs) writes nothing.
 *
 * Rounding: the scale is applied to q before the product (exact when it is a power of two), and
 * sums are reassociated; both are within the tolerance of an f32 accumulation.
 *
 * Not done: a prompt with fewer query blocks than threads (one short sequence, one head) is not
 * split over the keys, only decoding is; an additive mask that varies along the queries is read
 * with a gather per key and block.
 */
#include "codegen/codegen.h"
#include "passes/passes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_SB = 16,       /* keys per step of the score loop, at most */
    MAX_EC = 32,       /* value columns per pass of p v, at most */
    MAX_ROW_VECS = 32, /* registers of q (and of the accumulator) the row kernel may use */
    MAX_SPLIT = 128,   /* (row, chunk) items of a split, at most */
    SPLIT_BYTES = 64 << 10, /* their scratch, on the node's stack, at most */
    DC = 16,           /* columns of d summed apart in the block kernel's score loop */
};

typedef struct AttnCfg {
    int vw;      /* floats per vector of the row kernel and the split (the target's) */
    int bvw;     /* rows of a block: floats per vector of the block kernel, vw or 2 vw (two registers) */
    int fma;     /* llvm.fma, else llvm.fmuladd */
    int sb;      /* keys per step of the block kernel's score loop (accumulators) */
    int ec;      /* value columns per pass of the block kernel's p v (accumulators) */
    int bc;      /* keys per tile of the block kernel (a multiple of sb) */
    int rbc;     /* keys per tile of the row kernel (a multiple of vw) */
    int minrows; /* fewer rows in a block: the row kernel does them one by one */
    int chunk;   /* fewest keys per chunk of a split */
    int split;   /* (row, chunk) items a split aims at, at least (else two per thread) */
    int pack;    /* the block kernel copies each tile of V into a stack buffer before p v */
    int rows;    /* the row kernel can be used: d and dv known and small enough */
    int dq, dvv; /* vectors of a row of q and of v (row kernel) */
} AttnCfg;

/* ---------------------------------------------------------------- the target */

static AttnCfg attn_config(const Cg *cg, const Node *n)
{
    AttnCfg k = {0};
    CgTarget tg = cg_target(cg);
    k.vw = tg.vw;
    k.fma = tg.fma;
    /* with 32 registers of 16 floats a block is 32 rows, each of its vectors two registers: per load
     * of K's or V's element broadcast, two multiply-adds instead of one */
    int lanes = tg.regs >= 32 && tg.vw >= 16 ? 2 : 1;
    k.minrows = k.vw / 2 > 1 ? k.vw / 2 : 2;
    k.chunk = 256;
    k.pack = 1;
    const Node *q = n->in[0], *v = n->in[2];
    Dim dd = q->shape[q->rank - 1], dvd = v->shape[v->rank - 1];
    int64_t d = dim_max(cg->g, dd), dv = dim_max(cg->g, dvd);
    long l1 = tg.l1;
    const char *env = getenv("KILN_ATTN");
    int bc = 0, rbc = 0;
    for (const char *p = env; p && *p;) {
        char key[16] = {0};
        int len = 0;
        long val = 0;
        int got = sscanf(p, "%15[a-z]=%ld%n", key, &val, &len) == 2;
        if (got && !strcmp(key, "pack")) {
            k.pack = val != 0;
        } else if (got && val > 0) {
            if (!strcmp(key, "bc") && val <= 1024)
                bc = (int)val;
            else if (!strcmp(key, "rbc") && val <= 4096)
                rbc = (int)val;
            else if (!strcmp(key, "sb") && val <= MAX_SB)
                k.sb = (int)val;
            else if (!strcmp(key, "ec") && val <= MAX_EC)
                k.ec = (int)val;
            else if (!strcmp(key, "minrows"))
                k.minrows = (int)val;
            else if (!strcmp(key, "chunk"))
                k.chunk = (int)val;
            else if (!strcmp(key, "split") && val <= MAX_SPLIT)
                k.split = (int)val;
            else if (!strcmp(key, "lanes") && val <= 2)
                lanes = (int)val;
        }
        const char *c = strchr(p, ',');
        p = c ? c + 1 : NULL;
    }
    k.bvw = k.vw * lanes;
    /* a quarter of the vector registers hold the score loop's sums (each with a partial sum beside
     * it, see DC), half the p v loop's accumulators */
    k.sb = k.sb ? k.sb : tg.regs / 4 / lanes;
    k.ec = k.ec ? k.ec : tg.regs / 2 / lanes;
    int64_t dvp = (dv + k.bvw - 1) / k.bvw * k.bvw;
    if (dvp * 4 * 32 > l1) /* not even a tile of 32 rows of V fits in L1: no copy (no stack of MBs) */
        k.pack = 0;
    if (!bc) {
        /* Qt, O^T and S^T (and the copied tile of V) in three quarters of L1; K (and V) stream
         * through the rest */
        int64_t fit = ((int64_t)l1 * 3 / 4 / 4 - k.bvw * (d + dv)) / (k.bvw + (k.pack ? dvp : 0));
        bc = fit < 32 ? 32 : fit > 256 ? 256 : (int)fit;
    }
    k.bc = (bc + k.sb - 1) / k.sb * k.sb;
    if (!rbc) {
        int64_t fit = (int64_t)l1 / 2 / 4 / (d + dv > 0 ? d + dv : 1);
        rbc = fit < 32 ? 32 : fit > 512 ? 512 : (int)fit;
    }
    k.rbc = (rbc + k.vw - 1) / k.vw * k.vw;
    k.dq = (int)((d + k.vw - 1) / k.vw);
    k.dvv = (int)((dv + k.vw - 1) / k.vw);
    k.rows = dim_is_const(dd) && dim_is_const(dvd) && k.dq <= MAX_ROW_VECS && k.dvv <= MAX_ROW_VECS;
    if (!k.rows)
        k.minrows = 1;
    return k;
}

void cg_attention_explain(Cg *cg, const Node *n, FILE *out)
{
    if (n->nin == 7) { /* int8 k and v: qattention.c */
        cg_qattention_explain(cg, n, out);
        return;
    }
    AttnCfg k = attn_config(cg, n);
    CgTarget t = cg_target(cg);
    const Node *q = n->in[0], *v = n->in[2];
    int64_t d = dim_max(cg->g, q->shape[q->rank - 1]), dv = dim_max(cg->g, v->shape[v->rank - 1]);
    const char *env = getenv("KILN_ATTN");
    int regs = k.bvw / k.vw; /* registers per vector of a block */
    fprintf(out, "codegen: attention (d %lld, dv %lld%s): blocks of %d query rows (one a lane of vectors of %d register%s), "
                 "%d keys a step of the scores and %d value columns a pass (%d and %d of the %d registers), tiles of "
                 "%d keys (Qt, O^T, the scores%s in 3/4 of L1)",
            (long long)d, (long long)dv, n->at.causal ? ", causal" : "", k.bvw, regs, regs > 1 ? "s" : "", k.sb, k.ec,
            k.sb * regs, k.ec * regs, t.regs, k.bc, k.pack ? " and the tile's rows of V, copied" : "");
    if (k.rows)
        fprintf(out, "; blocks of fewer than %d rows one row at a time, in tiles of %d keys (K and V in half of L1); "
                     "decoding splits the keys into chunks of at least %d",
                k.minrows, k.rbc, k.chunk);
    fprintf(out, "%s%s\n", env ? "; KILN_ATTN=" : "", env ? env : "");
}

/* ---------------------------------------------------------------- IR helpers (the vector ones are vec.c's) */

/* What the kernels of one node share: the node, its operands and sizes as values of the function
 * being built, and the vector types. */
typedef struct Attn {
    Cg *cg;
    const Node *n;
    AttnCfg k;
    CgVec V;                 /* the vector helpers (vec.c) at width vw */
    LLVMTypeRef vt, it;      /* <vw x float>, <vw x i32> (V's) */
    LLVMValueRef out, q, kk, v, mask;
    LLVMValueRef cls;                /* where the node's cls_probs goes, [batch][Tkall] (NULL at run time: not
                                        wanted), or NULL when it has none */
    LLVMValueRef Tq, Tk, D, Dv, off; /* off = Tk - Tq; Tk the keys read (the count input's, when given) */
    LLVMValueRef Tkall;              /* the keys k holds (the probabilities' row) */
    LLVMValueRef lanes;              /* <0, 1, ..., vw-1> as i32 */
    int nbatch;
    LLVMValueRef qs[IR_MAX_RANK], ks[IR_MAX_RANK], vs[IR_MAX_RANK], ms[IR_MAX_RANK + 2], os[IR_MAX_RANK];
    LLVMValueRef qrs, krs, vrs, ors; /* elements between rows of q, k, v and the output */
} Attn;

static LLVMValueRef i64c(Attn *a, int64_t x)
{
    return cg_i64(a->cg, x);
}

static LLVMValueRef add(Attn *a, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildAdd(a->cg->b, x, y, "");
}

static LLVMValueRef sub(Attn *a, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSub(a->cg->b, x, y, "");
}

static LLVMValueRef mul(Attn *a, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildMul(a->cg->b, x, y, "");
}

static LLVMValueRef fload(Attn *a, LLVMValueRef p)
{
    return LLVMBuildLoad2(a->cg->b, a->cg->f32, p, "");
}

/* A value of a stack slot. */
static LLVMValueRef get(Attn *a, LLVMValueRef slot, LLVMTypeRef t)
{
    return LLVMBuildLoad2(a->cg->b, t, slot, "");
}

static void set(Attn *a, LLVMValueRef slot, LLVMValueRef x)
{
    LLVMBuildStore(a->cg->b, x, slot);
}

/* lane * x + y as <vw x i32> offsets, x and y i64 (small: within one block of rows) */
static LLVMValueRef lane_offsets(Attn *a, LLVMValueRef x, LLVMValueRef y)
{
    LLVMBuilderRef b = a->cg->b;
    LLVMValueRef x32 = LLVMBuildTrunc(b, x, a->cg->i32, ""), y32 = LLVMBuildTrunc(b, y, a->cg->i32, "");
    return LLVMBuildAdd(b, LLVMBuildMul(b, a->lanes, cg_vsplat(&a->V, x32), ""), cg_vsplat(&a->V, y32), "");
}

/* A stack slot of n floats, 64-byte aligned. */
static LLVMValueRef stack_floats(Attn *a, int64_t n, const char *name)
{
    LLVMValueRef s = cg_alloca(a->cg, LLVMArrayType2(a->cg->f32, (uint64_t)(n > 0 ? n : 1)), name);
    LLVMSetAlignment(s, 64);
    return s;
}

/* ---------------------------------------------------------------- sizes and offsets */

/* The strides of q, k, v (in[0..2]) and of the result (in[-1]), in elements, as constants when the
 * plan has them read or written through a view (Plan.view, Plan.writes_into), else C order. Returns
 * 1 and st[] (x's rank) for a view, 0 otherwise. */
static int layout(const Cg *cg, const Node *n, int j, int64_t *st)
{
    const Node *x = j < 0 ? n : n->in[j];
    PlanView v;
    if (j >= 0 && cg->plan.view && cg->plan.view[x->id]) {
        KILN_ASSERT(plan_view(x, cg->plan.view, &v));
        memcpy(st, v.stride, sizeof v.stride);
        return 1;
    }
    if (j < 0 && cg->plan.writes_into && cg->plan.writes_into[n->id] >= 0) {
        plan_write_strides(n, cg->g->nodes[cg->plan.writes_into[n->id]], st);
        return 1;
    }
    return 0;
}

void cg_attention_layout(FILE *f, const Cg *cg, const Node *n)
{
    int64_t st[IR_MAX_RANK];
    for (int j = -1; j < 3; j++) {
        int rank = j < 0 ? n->rank : n->in[j]->rank;
        if (!layout(cg, n, j, st)) {
            fputs("|c", f);
            continue;
        }
        fputs("|s", f);
        for (int d = 0; d < rank; d++)
            fprintf(f, " %lld", (long long)st[d]);
    }
}

/* Operand j's (or the result's, j = -1) strides: per batch dimension of the output (right-aligned; 0
 * where the operand broadcasts) and between rows. The last dimension is contiguous. */
static void strides_of(Attn *a, int j, LLVMValueRef *bst, LLVMValueRef *rs)
{
    Cg *cg = a->cg;
    const Node *x = j < 0 ? a->n : a->n->in[j];
    LLVMValueRef dims[IR_MAX_RANK], strides[IR_MAX_RANK];
    int64_t st[IR_MAX_RANK];
    if (layout(cg, a->n, j, st)) {
        KILN_ASSERT(st[x->rank - 1] == 1);
        for (int d = 0; d < x->rank; d++)
            strides[d] = cg_i64(cg, st[d]);
    } else {
        cg_shape(cg, x, dims);
        cg_strides(cg, x->rank, dims, strides);
    }
    *rs = strides[x->rank - 2];
    int xb = x->rank - 2;
    for (int i = 0; i < a->nbatch; i++) {
        int d = i - (a->nbatch - xb);
        bst[i] = d < 0 || dim_eq(x->shape[d], dim_const(1)) ? cg_i64(cg, 0) : strides[d];
    }
}

/* Sizes, strides and vector types, computed in the function that uses them; ops are out, q, k, v,
 * the mask (or NULL), the count of keys read (or NULL) and where the cls_probs goes (or NULL) as
 * values of that function. */
static void setup(Attn *a, Cg *cg, const Node *n, LLVMValueRef *ops)
{
    const Node *q = n->in[0], *k = n->in[1], *v = n->in[2];
    a->cg = cg;
    a->n = n;
    a->k = attn_config(cg, n);
    a->V = cg_vec(cg, a->k.vw, a->k.fma);
    a->vt = a->V.vt;
    a->it = a->V.it;
    a->lanes = a->V.lanes;
    a->out = ops[0];
    a->q = ops[1];
    a->kk = ops[2];
    a->v = ops[3];
    a->mask = n->nin > 3 ? ops[4] : NULL;
    a->cls = cg_attention_cls(cg->g, n) ? ops[6] : NULL;
    a->nbatch = n->rank - 2;
    a->Tq = cg_dim(cg, q->shape[q->rank - 2]);
    a->D = cg_dim(cg, q->shape[q->rank - 1]);
    a->Tk = a->Tkall = cg_dim(cg, k->shape[k->rank - 2]);
    a->Dv = cg_dim(cg, v->shape[v->rank - 1]);
    a->off = sub(a, a->Tk, a->Tq);
    if (n->nin > 4) { /* a decode step's filled slots: every loop over the keys stops there */
        LLVMValueRef c = cg_convert(cg, cg_load(cg, ops[5], n->in[4]->dtype, i64c(a, 0)), n->in[4]->dtype, DT_I64);
        a->Tk = cg_smax(cg, cg_smin(cg, a->Tk, c), i64c(a, 0));
    }
    strides_of(a, 0, a->qs, &a->qrs);
    strides_of(a, 1, a->ks, &a->krs);
    strides_of(a, 2, a->vs, &a->vrs);
    strides_of(a, -1, a->os, &a->ors);
    if (a->mask) {
        /* the mask broadcast over batch + [Tq, Tk] */
        View mv = cg_view_broadcast(cg, n->in[3], a->mask, a->nbatch + 2);
        for (int i = 0; i < a->nbatch + 2; i++)
            a->ms[i] = mv.stride[i];
    }
}

/* a as the block kernel sees it: vectors of bvw floats (one row a lane), the same operands. */
static Attn block_attn(const Attn *a)
{
    Attn b = *a;
    b.k.vw = a->k.bvw;
    b.V = cg_vec(a->cg, b.k.vw, b.k.fma);
    b.vt = b.V.vt;
    b.it = b.V.it;
    b.lanes = b.V.lanes;
    return b;
}

/* Where batch index b (flattened over the output's batch dims) starts in each operand. */
typedef struct Batch {
    LLVMValueRef b, qo, ko, vo, mo, oo;
} Batch;

static Batch batch_at(Attn *a, LLVMValueRef b)
{
    Batch r = {b, i64c(a, 0), i64c(a, 0), i64c(a, 0), i64c(a, 0), i64c(a, 0)};
    LLVMValueRef rest = b;
    for (int d = a->nbatch - 1; d >= 0; d--) {
        LLVMValueRef size = cg_dim(a->cg, a->n->shape[d]);
        LLVMValueRef bi = LLVMBuildSRem(a->cg->b, rest, size, "");
        rest = LLVMBuildSDiv(a->cg->b, rest, size, "");
        r.qo = add(a, r.qo, mul(a, bi, a->qs[d]));
        r.ko = add(a, r.ko, mul(a, bi, a->ks[d]));
        r.vo = add(a, r.vo, mul(a, bi, a->vs[d]));
        r.oo = add(a, r.oo, mul(a, bi, a->os[d]));
        if (a->mask)
            r.mo = add(a, r.mo, mul(a, bi, a->ms[d]));
    }
    return r;
}

/* 1 when the mask does not vary along the queries (its query dimension is absent or 1). */
static int mask_rows_same(Attn *a)
{
    const Node *m = a->n->in[3];
    return m->rank < 2 || dim_eq(m->shape[m->rank - 2], dim_const(1));
}

/* The keys query row i sees: [0, min(Tk, i + Tk - Tq + 1)) under the causal mask, else [0, Tk). */
static LLVMValueRef keys_end(Attn *a, LLVMValueRef i)
{
    if (!a->n->at.causal)
        return a->Tk;
    return cg_smax(a->cg, cg_smin(a->cg, a->Tk, add(a, add(a, i, a->off), i64c(a, 1))), i64c(a, 0));
}

/* ---------------------------------------------------------------- the row kernel */

/* One query row's pass over keys [ja, jb). */
typedef struct RowAcc {
    LLVMValueRef m, l;              /* float slots */
    LLVMValueRef acc[MAX_ROW_VECS]; /* <vw x float> slots: the accumulator, columns across vectors */
} RowAcc;

/* The mask of the last vector of a row of n floats (NULL when n is a multiple of vw). */
static LLVMValueRef tail_mask(Attn *a, int64_t n)
{
    if (n % a->k.vw == 0)
        return NULL;
    return cg_vlanes_below(&a->V, i64c(a, n % a->k.vw));
}

/* Vector x of a row at p with n floats: masked beyond the end. */
static LLVMValueRef row_load(Attn *a, LLVMValueRef p, int x, int nvec, LLVMValueRef tail)
{
    LLVMValueRef px = cg_fptr(a->cg, p, i64c(a, (int64_t)x * a->k.vw));
    return x == nvec - 1 && tail ? cg_vmasked_load(&a->V, px, tail) : cg_vload(&a->V, px, 4);
}

/* With the attribute scores: where row i's Tk probabilities go, after its dv outputs. */
static LLVMValueRef score_row(Attn *a, const Batch *bt, LLVMValueRef i)
{
    int64_t dv = dim_value(a->n->in[2]->shape[a->n->in[2]->rank - 1]);
    return cg_fptr(a->cg, a->out, add(a, add(a, bt->oo, mul(a, i, a->ors)), i64c(a, dv)));
}

/* With a cls_probs: where batch bt's first row's Tkall probabilities go. */
static LLVMValueRef cls_row(Attn *a, const Batch *bt)
{
    return cg_fptr(a->cg, a->cls, mul(a, bt->b, a->Tkall));
}

/* Code that runs when row i is the first and the cls_probs is wanted (its pointer not NULL); end with
 * cg_if_end. */
static LLVMBasicBlockRef if_cls_row(Attn *a, LLVMValueRef i)
{
    LLVMBuilderRef b = a->cg->b;
    LLVMValueRef want = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntEQ, i, i64c(a, 0), ""),
                                     LLVMBuildIsNotNull(b, a->cls, ""), "");
    return cg_if_begin(a->cg, want, "clsrow");
}

/* A row's probabilities from the raw scores the kernel left at p[0..Tkall), in place: e^(s - m) * inv
 * (inv = 1 / l, or 0 when the row saw no key) for the keys below kend whose score is not -inf, 0 for
 * the others (past the causal limit, masked, not read). */
static void normalise_row(Attn *a, LLVMValueRef p, LLVMValueRef kend, LLVMValueRef m, LLVMValueRef inv)
{
    Cg *cg = a->cg;
    LLVMValueRef ninf = LLVMConstReal(cg->f32, -INFINITY);
    Loop lj = cg_loop_begin(cg, i64c(a, 0), a->Tkall, "prob");
    LLVMValueRef pj = cg_fptr(a->cg, p, lj.iv);
    LLVMValueRef live = LLVMBuildICmp(cg->b, LLVMIntSLT, lj.iv, kend, "");
    LLVMValueRef sj = LLVMBuildSelect(cg->b, live, fload(a, pj), ninf, "");
    live = LLVMBuildAnd(cg->b, live, LLVMBuildFCmp(cg->b, LLVMRealOGT, sj, ninf, ""), "");
    LLVMValueRef e = cg_exp(cg, LLVMBuildFSub(cg->b, LLVMBuildSelect(cg->b, live, sj, m, ""), m, ""));
    LLVMBuildStore(cg->b, LLVMBuildSelect(cg->b, live, LLVMBuildFMul(cg->b, e, inv, ""), LLVMConstReal(cg->f32, 0), ""), pj);
    cg_loop_end(cg, &lj);
}

static void row_pass(Attn *a, const Batch *bt, LLVMValueRef i, LLVMValueRef ja, LLVMValueRef jb, RowAcc *r)
{
    Cg *cg = a->cg;
    const AttnCfg *k = &a->k;
    LLVMTypeRef f = cg->f32;
    int64_t d = dim_value(a->n->in[0]->shape[a->n->in[0]->rank - 1]), dv = dim_value(a->n->in[2]->shape[a->n->in[2]->rank - 1]);
    LLVMValueRef dtail = tail_mask(a, d), vtail = tail_mask(a, dv);
    LLVMValueRef sbuf = stack_floats(a, k->rbc, "scores");
    LLVMValueRef tmax = cg_alloca(cg, a->vt, "tmax"), tsum = cg_alloca(cg, a->vt, "tsum");
    LLVMValueRef ninf = LLVMConstReal(f, -INFINITY);
    r->m = cg_alloca(cg, f, "m");
    r->l = cg_alloca(cg, f, "l");
    set(a, r->m, ninf);
    set(a, r->l, LLVMConstReal(f, 0));
    for (int x = 0; x < k->dvv; x++) {
        r->acc[x] = cg_alloca(cg, a->vt, "acc");
        set(a, r->acc[x], LLVMConstNull(a->vt));
    }
    /* q, scaled, in registers */
    LLVMValueRef qrow = cg_fptr(a->cg, a->q, add(a, bt->qo, mul(a, i, a->qrs)));
    LLVMValueRef qv[MAX_ROW_VECS];
    for (int x = 0; x < k->dq; x++)
        qv[x] = LLVMBuildFMul(cg->b, row_load(a, qrow, x, k->dq, dtail), cg_vconst(&a->V, a->n->at.scale), "");
    LLVMValueRef mrow = NULL;
    if (a->mask)
        mrow = add(a, bt->mo, mul(a, i, a->ms[a->nbatch]));

    Loop lt = cg_loop_begin(cg, ja, jb, "rtile");
    LLVMValueRef j0 = lt.iv, jn = cg_smin(a->cg, i64c(a, k->rbc), sub(a, jb, j0));
    /* 1. the scores of the tile, and -inf up to a whole vector */
    Loop ls = cg_loop_begin(cg, i64c(a, 0), jn, "rkey");
    LLVMValueRef j = add(a, j0, ls.iv);
    LLVMValueRef krow = cg_fptr(a->cg, a->kk, add(a, bt->ko, mul(a, j, a->krs)));
    LLVMValueRef dot[2] = {NULL, NULL};
    for (int x = 0; x < k->dq; x++) {
        LLVMValueRef kv = row_load(a, krow, x, k->dq, dtail);
        dot[x & 1] = dot[x & 1] ? cg_vfma(&a->V, qv[x], kv, dot[x & 1]) : LLVMBuildFMul(cg->b, qv[x], kv, "");
    }
    LLVMValueRef dv2 = dot[1] ? LLVMBuildFAdd(cg->b, dot[0], dot[1], "") : dot[0];
    LLVMValueRef s = dv2 ? cg_vhsum(&a->V, dv2) : LLVMConstReal(f, 0);
    if (a->mask) {
        LLVMValueRef mi = add(a, mrow, mul(a, j, a->ms[a->nbatch + 1]));
        s = LLVMBuildFAdd(cg->b, s, fload(a, cg_fptr(a->cg, a->mask, mi)), "");
    }
    LLVMBuildStore(cg->b, s, cg_fptr(a->cg, sbuf, ls.iv));
    if (a->n->at.scores) /* the raw score, normalised by row_store once m and l are final */
        LLVMBuildStore(cg->b, s, cg_fptr(a->cg, score_row(a, bt, i), j));
    if (a->cls) { /* the first row's, likewise, for the cls_probs */
        LLVMBasicBlockRef first = if_cls_row(a, i);
        LLVMBuildStore(cg->b, s, cg_fptr(a->cg, cls_row(a, bt), j));
        cg_if_end(a->cg, first);
    }
    cg_loop_end(cg, &ls);
    LLVMValueRef nvec = cg_ceil_div(a->cg, jn, i64c(a, k->vw)), jpad = mul(a, nvec, i64c(a, k->vw));
    Loop lp = cg_loop_begin(cg, jn, jpad, "rpad");
    LLVMBuildStore(cg->b, ninf, cg_fptr(a->cg, sbuf, lp.iv));
    cg_loop_end(cg, &lp);
    /* 2. the tile's maximum; a tile with every key masked changes nothing */
    set(a, tmax, cg_vconst(&a->V, -INFINITY));
    Loop lm = cg_loop_begin(cg, i64c(a, 0), nvec, "rmax");
    set(a, tmax, cg_vmax(&a->V, get(a, tmax, a->vt), cg_vload(&a->V, cg_fptr(a->cg, sbuf, mul(a, lm.iv, i64c(a, k->vw))), 64)));
    cg_loop_end(cg, &lm);
    LLVMValueRef tm = cg_vhmax(&a->V, get(a, tmax, a->vt));
    LLVMBasicBlockRef skip = cg_if_begin(a->cg, LLVMBuildFCmp(cg->b, LLVMRealOGT, tm, ninf, ""), "rlive");
    /* 3. a new maximum rescales what was accumulated */
    LLVMValueRef mold = get(a, r->m, f);
    LLVMValueRef mnew = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, tm, mold, ""), tm, mold, "");
    LLVMValueRef corr = cg_exp(cg, LLVMBuildFSub(cg->b, mold, mnew, "")); /* 0 on the first live tile */
    set(a, r->m, mnew);
    LLVMValueRef vcorr = cg_vsplat(&a->V, corr);
    for (int x = 0; x < k->dvv; x++)
        set(a, r->acc[x], LLVMBuildFMul(cg->b, get(a, r->acc[x], a->vt), vcorr, ""));
    /* 4. probabilities (masked keys and padding: 1e-38, see cg_vexp_neg) and their sum */
    set(a, tsum, LLVMConstNull(a->vt));
    LLVMValueRef vm = cg_vsplat(&a->V, mnew);
    Loop le = cg_loop_begin(cg, i64c(a, 0), nvec, "rexp");
    LLVMValueRef ps = cg_fptr(a->cg, sbuf, mul(a, le.iv, i64c(a, k->vw)));
    LLVMValueRef p = cg_vexp_neg(&a->V, LLVMBuildFSub(cg->b, cg_vload(&a->V, ps, 64), vm, ""));
    cg_vstore(&a->V, p, ps, 64);
    set(a, tsum, LLVMBuildFAdd(cg->b, get(a, tsum, a->vt), p, ""));
    cg_loop_end(cg, &le);
    set(a, r->l, LLVMBuildFAdd(cg->b, LLVMBuildFMul(cg->b, get(a, r->l, f), corr, ""), cg_vhsum(&a->V, get(a, tsum, a->vt)), ""));
    /* 5. acc += p v over the tile's keys */
    Loop la = cg_loop_begin(cg, i64c(a, 0), jn, "rpv");
    LLVMValueRef pj = cg_vsplat(&a->V, fload(a, cg_fptr(a->cg, sbuf, la.iv)));
    LLVMValueRef vrow = cg_fptr(a->cg, a->v, add(a, bt->vo, mul(a, add(a, j0, la.iv), a->vrs)));
    for (int x = 0; x < k->dvv; x++)
        set(a, r->acc[x], cg_vfma(&a->V, pj, row_load(a, vrow, x, k->dvv, vtail), get(a, r->acc[x], a->vt)));
    cg_loop_end(cg, &la);
    cg_if_end(a->cg, skip);
    cg_loop_end_step(cg, &lt, add(a, j0, i64c(a, k->rbc)));
}

/* out[batch bt, row i] = acc / l, or 0 when no key was visible. */
static void row_store(Attn *a, const Batch *bt, LLVMValueRef i, RowAcc *r)
{
    Cg *cg = a->cg;
    int64_t dv = dim_value(a->n->in[2]->shape[a->n->in[2]->rank - 1]);
    LLVMValueRef vtail = tail_mask(a, dv);
    LLVMValueRef m = get(a, r->m, cg->f32), l = get(a, r->l, cg->f32);
    LLVMValueRef inv = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, m, LLVMConstReal(cg->f32, -INFINITY), ""),
                                       LLVMBuildFDiv(cg->b, LLVMConstReal(cg->f32, 1), l, ""), LLVMConstReal(cg->f32, 0), "");
    LLVMValueRef vinv = cg_vsplat(&a->V, inv);
    LLVMValueRef orow = cg_fptr(a->cg, a->out, add(a, bt->oo, mul(a, i, a->ors)));
    for (int x = 0; x < a->k.dvv; x++) {
        LLVMValueRef y = LLVMBuildFMul(cg->b, get(a, r->acc[x], a->vt), vinv, "");
        LLVMValueRef p = cg_fptr(a->cg, orow, i64c(a, (int64_t)x * a->k.vw));
        if (x == a->k.dvv - 1 && vtail)
            cg_vmasked_store(&a->V, y, p, vtail);
        else
            cg_vstore(&a->V, y, p, 4);
    }
    /* the probabilities: row_pass left each visited key's score there; keys past the causal limit,
     * masked keys and every key of a row that saw none get 0 */
    if (a->n->at.scores)
        normalise_row(a, score_row(a, bt, i), keys_end(a, i), m, inv);
    if (a->cls) {
        LLVMBasicBlockRef first = if_cls_row(a, i);
        normalise_row(a, cls_row(a, bt), keys_end(a, i), m, inv);
        cg_if_end(a->cg, first);
    }
}

/* Transposes the vw x vw matrix whose rows are r[0..vw-1], in place: log2(vw) stages that swap
 * the off-diagonal h x h blocks of every 2h x 2h block (h = vw/2, ..., 1), each a two-input
 * shuffle per row (vpermt2ps and the like): 64 shuffles for 16 x 16, where gathers would load
 * one float at a time. */
static void transpose(Attn *a, LLVMValueRef *r)
{
    int vw = a->k.vw;
    for (int h = vw / 2; h >= 1; h /= 2) {
        LLVMValueRef lo[CG_MAX_VW], hi[CG_MAX_VW];
        for (int j = 0; j < vw; j++) {
            /* row i (bit h clear) keeps its lanes without bit h and takes row i+h's lanes j-h */
            lo[j] = LLVMConstInt(a->cg->i32, (unsigned long long)(j & h ? vw + j - h : j), 0);
            hi[j] = LLVMConstInt(a->cg->i32, (unsigned long long)(j & h ? vw + j : j + h), 0);
        }
        LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)vw), mhi = LLVMConstVector(hi, (unsigned)vw);
        for (int i = 0; i < vw; i++) {
            if (i & h)
                continue;
            LLVMValueRef x = r[i], y = r[i + h];
            r[i] = LLVMBuildShuffleVector(a->cg->b, x, y, mlo, "");
            r[i + h] = LLVMBuildShuffleVector(a->cg->b, x, y, mhi, "");
        }
    }
}

/* ---------------------------------------------------------------- the block kernel */

/* Stack buffers of the block kernel, one set per function. */
typedef struct Block {
    LLVMValueRef qt;    /* [d][vw]: the query block, transposed and scaled */
    LLVMValueRef st;    /* [bc][vw]: a tile's scores, then probabilities, one key a vector */
    LLVMValueRef ot;    /* [dv rounded up to ot_unit][vw]: the accumulator, one column a vector */
    LLVMValueRef vp;    /* [bc][vps]: the tile's rows of V, copied (when k.pack), or NULL */
    int64_t vps;        /* dv rounded up to vw: the floats between rows of vp */
    LLVMValueRef m, l;  /* <vw x float> slots: running max and sum, one row a lane */
    LLVMValueRef tmax, tsum;
    LLVMValueRef acc[MAX_EC > MAX_SB ? MAX_EC : MAX_SB];
} Block;

/* O^T's columns come in multiples of this: whole passes of ec columns, whole transposes of vw. */
static int ot_unit(Attn *a)
{
    int x = a->k.ec, y = a->k.vw;
    while (y) {
        int t = x % y;
        x = y;
        y = t;
    }
    return a->k.ec / x * a->k.vw;
}

static Block block_buffers(Attn *a)
{
    Cg *cg = a->cg;
    const Node *n = a->n;
    int64_t d = dim_max(cg->g, n->in[0]->shape[n->in[0]->rank - 1]);
    int64_t dv = dim_max(cg->g, n->in[2]->shape[n->in[2]->rank - 1]);
    Block B;
    B.qt = stack_floats(a, d * a->k.vw, "qt");
    B.st = stack_floats(a, (int64_t)a->k.bc * a->k.vw, "st");
    int64_t unit = ot_unit(a);
    B.ot = stack_floats(a, (dv + unit - 1) / unit * unit * a->k.vw, "ot");
    B.vps = (dv + a->k.vw - 1) / a->k.vw * a->k.vw;
    B.vp = a->k.pack ? stack_floats(a, (int64_t)a->k.bc * B.vps, "vp") : NULL;
    B.m = cg_alloca(cg, a->vt, "m");
    B.l = cg_alloca(cg, a->vt, "l");
    B.tmax = cg_alloca(cg, a->vt, "tmax");
    B.tsum = cg_alloca(cg, a->vt, "tsum");
    for (int i = 0; i < (MAX_EC > MAX_SB ? MAX_EC : MAX_SB); i++)
        B.acc[i] = cg_alloca(cg, a->vt, "acc");
    return B;
}

/* Vector x of a [*][vw] stack buffer. */
static LLVMValueRef slot(Attn *a, LLVMValueRef buf, LLVMValueRef x)
{
    return cg_fptr(a->cg, buf, mul(a, x, i64c(a, a->k.vw)));
}

/* Row j of the packed tile of V. */
static LLVMValueRef slot_row(Attn *a, Block *B, LLVMValueRef j)
{
    return cg_fptr(a->cg, B->vp, mul(a, j, i64c(a, B->vps)));
}

/* vp = rows [j0, j0 + jn) of V, read once where they are, in vectors (the last masked when dv is not
 * a multiple of vw): the p v loop reads each row dv / ec times (why the copy: the header). */
static void block_pack_v(Attn *a, Block *B, const Batch *bt, LLVMValueRef j0, LLVMValueRef jn)
{
    Cg *cg = a->cg;
    LLVMValueRef nv = cg_ceil_div(cg, a->Dv, i64c(a, a->k.vw));
    Loop lj = cg_loop_begin(cg, i64c(a, 0), jn, "vpack");
    LLVMValueRef src = cg_fptr(cg, a->v, add(a, bt->vo, mul(a, add(a, j0, lj.iv), a->vrs)));
    LLVMValueRef dst = slot_row(a, B, lj.iv);
    Loop le = cg_loop_begin(cg, i64c(a, 0), nv, "vpackc");
    LLVMValueRef e0 = mul(a, le.iv, i64c(a, a->k.vw));
    LLVMValueRef x = cg_vmasked_load(&a->V, cg_fptr(cg, src, e0), cg_vlanes_below(&a->V, sub(a, a->Dv, e0)));
    cg_vstore(&a->V, x, cg_fptr(cg, dst, e0), 64);
    cg_loop_end(cg, &le);
    cg_loop_end(cg, &lj);
}

/* O^T[c0 + e] = O^T[c0 + e] * corr + sum over the tile's keys of splat(v[j, c0 + e]) * P^T[j], for
 * e < nacc; columns past the end (when clamp) read the last column and land in O^T's padding. */
static void block_pv(Attn *a, Block *B, const Batch *bt, LLVMValueRef j0, LLVMValueRef jn, LLVMValueRef c0,
                     int nacc, int clamp, LLVMValueRef corr)
{
    Cg *cg = a->cg;
    for (int e = 0; e < nacc; e++)
        set(a, B->acc[e], LLVMBuildFMul(cg->b, cg_vload(&a->V, slot(a, B->ot, add(a, c0, i64c(a, e))), 64), corr, ""));
    LLVMValueRef last = sub(a, a->Dv, i64c(a, 1));
    Loop lj = cg_loop_begin(cg, i64c(a, 0), jn, "pv");
    LLVMValueRef p = cg_vload(&a->V, slot(a, B->st, lj.iv), 64);
    LLVMValueRef vrow = B->vp ? slot_row(a, B, lj.iv)
                              : cg_fptr(a->cg, a->v, add(a, bt->vo, mul(a, add(a, j0, lj.iv), a->vrs)));
    for (int e = 0; e < nacc; e++) {
        LLVMValueRef col = add(a, c0, i64c(a, e));
        if (clamp)
            col = cg_smin(a->cg, col, last);
        LLVMValueRef x = cg_vsplat(&a->V, fload(a, cg_fptr(a->cg, vrow, col)));
        set(a, B->acc[e], cg_vfma(&a->V, x, p, get(a, B->acc[e], a->vt)));
    }
    cg_loop_end(cg, &lj);
    for (int e = 0; e < nacc; e++)
        cg_vstore(&a->V, get(a, B->acc[e], a->vt), slot(a, B->ot, add(a, c0, i64c(a, e))), 64);
}

/* Query rows [i0, i0 + nr) of batch bt, nr <= vw. */
static void block_rows(Attn *a, Block *B, const Batch *bt, LLVMValueRef i0, LLVMValueRef nr)
{
    Cg *cg = a->cg;
    const AttnCfg *k = &a->k;
    const Node *n = a->n;
    LLVMValueRef live = cg_vlanes_below(&a->V, nr);
    /* Qt[c] = q[i0 + lane, c] * scale: vw columns at a time, the block's rows loaded (the last row
     * again for lanes past nr, columns past d masked) and transposed in registers */
    LLVMValueRef qblk = cg_fptr(a->cg, a->q, add(a, bt->qo, mul(a, i0, a->qrs)));
    LLVMValueRef vscale = cg_vconst(&a->V, n->at.scale);
    LLVMValueRef rlast = sub(a, nr, i64c(a, 1));
    LLVMValueRef rowp[CG_MAX_VW];
    for (int r = 0; r < k->vw; r++)
        rowp[r] = cg_fptr(a->cg, qblk, mul(a, cg_smin(a->cg, i64c(a, r), rlast), a->qrs));
    Loop lq = cg_loop_begin(cg, i64c(a, 0), cg_ceil_div(a->cg, a->D, i64c(a, k->vw)), "qt");
    LLVMValueRef qc0 = mul(a, lq.iv, i64c(a, k->vw));
    LLVMValueRef cm = cg_vlanes_below(&a->V, sub(a, a->D, qc0));
    LLVMValueRef rv[CG_MAX_VW];
    for (int r = 0; r < k->vw; r++)
        rv[r] = cg_vmasked_load(&a->V, cg_fptr(a->cg, rowp[r], qc0), cm);
    transpose(a, rv);
    for (int c = 0; c < k->vw; c++) {
        /* column qc0 + c exists: store it */
        LLVMBasicBlockRef skip = cg_if_begin(a->cg, LLVMBuildICmp(cg->b, LLVMIntSLT, add(a, qc0, i64c(a, c)), a->D, ""), "qcol");
        cg_vstore(&a->V, LLVMBuildFMul(cg->b, rv[c], vscale, ""), slot(a, B->qt, add(a, qc0, i64c(a, c))), 64);
        cg_if_end(a->cg, skip);
    }
    cg_loop_end(cg, &lq);
    /* O^T = 0, m = -inf, l = 0 */
    LLVMValueRef ncol = mul(a, cg_ceil_div(a->cg, a->Dv, i64c(a, ot_unit(a))), i64c(a, ot_unit(a)));
    Loop lz = cg_loop_begin(cg, i64c(a, 0), ncol, "otz");
    cg_vstore(&a->V, LLVMConstNull(a->vt), slot(a, B->ot, lz.iv), 64);
    cg_loop_end(cg, &lz);
    set(a, B->m, cg_vconst(&a->V, -INFINITY));
    set(a, B->l, LLVMConstNull(a->vt));
    LLVMValueRef mblk = NULL, midx = NULL;
    if (a->mask) {
        mblk = cg_fptr(a->cg, a->mask, add(a, bt->mo, mul(a, i0, a->ms[a->nbatch])));
        midx = lane_offsets(a, a->ms[a->nbatch], i64c(a, 0));
    }
    /* keys: those the last row sees; lane r sees key j when j <= i0 + r + off */
    LLVMValueRef jend = keys_end(a, sub(a, add(a, i0, nr), i64c(a, 1)));
    LLVMValueRef diag = add(a, i0, a->off); /* key j is visible to lanes >= j - i0 - off */
    LLVMValueRef ninf = cg_vconst(&a->V, -INFINITY);

    Loop lt = cg_loop_begin(cg, i64c(a, 0), jend, "tile");
    LLVMValueRef j0 = lt.iv, jn = cg_smin(a->cg, i64c(a, k->bc), sub(a, jend, j0));
    LLVMValueRef jlast = sub(a, jend, i64c(a, 1));
    set(a, B->tmax, ninf);
    /* 1. S^T for sb keys at a time (past the end: the last key again, which changes no maximum) */
    Loop ls = cg_loop_begin(cg, i64c(a, 0), jn, "keys");
    LLVMValueRef kp[MAX_SB], jj[MAX_SB], part[MAX_SB];
    for (int t = 0; t < k->sb; t++) {
        jj[t] = cg_smin(a->cg, add(a, add(a, j0, ls.iv), i64c(a, t)), jlast);
        kp[t] = cg_fptr(a->cg, a->kk, add(a, bt->ko, mul(a, jj[t], a->krs)));
        set(a, B->acc[t], LLVMConstNull(a->vt));
    }
    /* DC columns of d straight-line into fresh partial sums, added to the keys' sums after each
     * group: sums of about d / DC + DC terms in a row rather than d, which keeps the rounding of
     * logits near 1e4 within that of a vectorised dot product */
    LLVMValueRef dfull = mul(a, LLVMBuildSDiv(cg->b, a->D, i64c(a, DC), ""), i64c(a, DC));
    Loop ld = cg_loop_begin(cg, i64c(a, 0), dfull, "d");
    for (int c = 0; c < DC; c++) {
        LLVMValueRef dc = add(a, ld.iv, i64c(a, c));
        LLVMValueRef qv = cg_vload(&a->V, slot(a, B->qt, dc), 64);
        for (int t = 0; t < k->sb; t++) {
            LLVMValueRef kx = cg_vsplat(&a->V, fload(a, cg_fptr(a->cg, kp[t], dc)));
            part[t] = c ? cg_vfma(&a->V, kx, qv, part[t]) : LLVMBuildFMul(cg->b, kx, qv, "");
        }
    }
    for (int t = 0; t < k->sb; t++)
        set(a, B->acc[t], LLVMBuildFAdd(cg->b, get(a, B->acc[t], a->vt), part[t], ""));
    cg_loop_end_step(cg, &ld, add(a, ld.iv, i64c(a, DC)));
    Loop lr = cg_loop_begin(cg, dfull, a->D, "drest");
    LLVMValueRef qv = cg_vload(&a->V, slot(a, B->qt, lr.iv), 64);
    for (int t = 0; t < k->sb; t++) {
        LLVMValueRef kx = cg_vsplat(&a->V, fload(a, cg_fptr(a->cg, kp[t], lr.iv)));
        set(a, B->acc[t], cg_vfma(&a->V, kx, qv, get(a, B->acc[t], a->vt)));
    }
    cg_loop_end(cg, &lr);
    for (int t = 0; t < k->sb; t++) {
        LLVMValueRef s = get(a, B->acc[t], a->vt);
        if (a->mask) {
            /* the mask's values of key jj[t] for the block's rows: one value when the mask is the
             * same for every query (a padding mask, [batch, 1, 1, Tk]), else a gather */
            LLVMValueRef mp = cg_fptr(a->cg, mblk, mul(a, jj[t], a->ms[a->nbatch + 1]));
            LLVMValueRef mv = mask_rows_same(a) ? cg_vsplat(&a->V, fload(a, mp)) : cg_vgather(&a->V, mp, midx, live);
            s = LLVMBuildFAdd(cg->b, s, mv, "");
        }
        if (n->at.causal) {
            LLVMValueRef lim = LLVMBuildTrunc(cg->b, sub(a, jj[t], diag), cg->i32, "");
            s = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, a->lanes, cg_vsplat(&a->V, lim), ""), s, ninf, "");
        }
        set(a, B->tmax, cg_vmax(&a->V, get(a, B->tmax, a->vt), s));
        cg_vstore(&a->V, s, slot(a, B->st, add(a, ls.iv, i64c(a, t))), 64);
    }
    cg_loop_end_step(cg, &ls, add(a, ls.iv, i64c(a, k->sb)));
    if (a->cls) { /* the first row's raw scores (lane 0 of the first block), normalised at the end */
        LLVMBasicBlockRef first = if_cls_row(a, i0);
        LLVMValueRef dst = cg_fptr(a->cg, cls_row(a, bt), j0);
        Loop lc = cg_loop_begin(cg, i64c(a, 0), jn, "clsraw");
        LLVMValueRef s0 = LLVMBuildExtractElement(cg->b, cg_vload(&a->V, slot(a, B->st, lc.iv), 64), LLVMConstInt(cg->i32, 0, 0), "");
        LLVMBuildStore(cg->b, s0, cg_fptr(a->cg, dst, lc.iv));
        cg_loop_end(cg, &lc);
        cg_if_end(a->cg, first);
    }
    /* 2. new maxima (per lane), the correction of what was accumulated, and the probabilities. A lane
     * that has seen no visible key keeps m = -inf and subtracts 0 (its probabilities are 1e-38, see
     * cg_vexp_neg, and its output is set to 0 at the end). */
    LLVMValueRef mold = get(a, B->m, a->vt);
    LLVMValueRef mnew = cg_vmax(&a->V, mold, get(a, B->tmax, a->vt));
    LLVMValueRef msub = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOEQ, mnew, ninf, ""), LLVMConstNull(a->vt), mnew, "");
    LLVMValueRef corr = cg_vexp_neg(&a->V, LLVMBuildFSub(cg->b, mold, msub, ""));
    set(a, B->m, mnew);
    set(a, B->tsum, LLVMConstNull(a->vt));
    Loop le = cg_loop_begin(cg, i64c(a, 0), jn, "exp");
    LLVMValueRef ps = slot(a, B->st, le.iv);
    LLVMValueRef p = cg_vexp_neg(&a->V, LLVMBuildFSub(cg->b, cg_vload(&a->V, ps, 64), msub, ""));
    cg_vstore(&a->V, p, ps, 64);
    set(a, B->tsum, LLVMBuildFAdd(cg->b, get(a, B->tsum, a->vt), p, ""));
    cg_loop_end(cg, &le);
    set(a, B->l, cg_vfma(&a->V, get(a, B->l, a->vt), corr, get(a, B->tsum, a->vt)));
    /* 3. O^T = O^T * corr + P V, ec columns at a time, then the columns left */
    if (B->vp)
        block_pack_v(a, B, bt, j0, jn);
    const Node *vn = n->in[2];
    Dim dvd = vn->shape[vn->rank - 1];
    LLVMValueRef full = LLVMBuildSDiv(cg->b, a->Dv, i64c(a, k->ec), "");
    Loop lc = cg_loop_begin(cg, i64c(a, 0), full, "cols");
    block_pv(a, B, bt, j0, jn, mul(a, lc.iv, i64c(a, k->ec)), k->ec, 0, corr);
    cg_loop_end(cg, &lc);
    LLVMValueRef c0 = mul(a, full, i64c(a, k->ec));
    if (dim_is_const(dvd)) {
        if (dim_value(dvd) % k->ec)
            block_pv(a, B, bt, j0, jn, c0, (int)(dim_value(dvd) % k->ec), 0, corr);
    } else {
        LLVMBasicBlockRef done = cg_if_begin(a->cg, LLVMBuildICmp(cg->b, LLVMIntSLT, c0, a->Dv, ""), "cols_left");
        block_pv(a, B, bt, j0, jn, c0, k->ec, 1, corr);
        cg_if_end(a->cg, done);
    }
    cg_loop_end_step(cg, &lt, add(a, j0, i64c(a, k->bc)));

    /* out[i0 + r, :] = column r of O^T / l[r] (0 for a row that saw no key): vw columns of O^T at a
     * time transposed in registers into vw pieces of output rows (a scatter would write 16 lines) */
    LLVMValueRef seen = LLVMBuildFCmp(cg->b, LLVMRealOGT, get(a, B->m, a->vt), ninf, "");
    LLVMValueRef inv = LLVMBuildSelect(cg->b, seen, LLVMBuildFDiv(cg->b, cg_vconst(&a->V, 1.0), get(a, B->l, a->vt), ""),
                                       LLVMConstNull(a->vt), "");
    if (a->cls) { /* the first row's probabilities, from lane 0's maximum and sum */
        LLVMBasicBlockRef first = if_cls_row(a, i0);
        LLVMValueRef lane0 = LLVMConstInt(cg->i32, 0, 0);
        normalise_row(a, cls_row(a, bt), keys_end(a, i64c(a, 0)), LLVMBuildExtractElement(cg->b, get(a, B->m, a->vt), lane0, ""),
                      LLVMBuildExtractElement(cg->b, inv, lane0, ""));
        cg_if_end(a->cg, first);
    }
    LLVMValueRef oblk = cg_fptr(a->cg, a->out, add(a, bt->oo, mul(a, i0, a->ors)));
    Loop lo = cg_loop_begin(cg, i64c(a, 0), cg_ceil_div(a->cg, a->Dv, i64c(a, k->vw)), "ocol");
    LLVMValueRef e0 = mul(a, lo.iv, i64c(a, k->vw));
    LLVMValueRef em = cg_vlanes_below(&a->V, sub(a, a->Dv, e0));
    LLVMValueRef ov[CG_MAX_VW];
    for (int e = 0; e < k->vw; e++) /* O^T's columns past dv: its zeroed padding, not stored */
        ov[e] = LLVMBuildFMul(cg->b, cg_vload(&a->V, slot(a, B->ot, add(a, e0, i64c(a, e))), 64), inv, "");
    transpose(a, ov);
    for (int r = 0; r < k->vw; r++) {
        LLVMBasicBlockRef skip = cg_if_begin(a->cg, LLVMBuildICmp(cg->b, LLVMIntSLT, i64c(a, r), nr, ""), "orow");
        cg_vmasked_store(&a->V, ov[r], cg_fptr(a->cg, oblk, add(a, mul(a, i64c(a, r), a->ors), e0)), em);
        cg_if_end(a->cg, skip);
    }
    cg_loop_end(cg, &lo);
}

/* ---------------------------------------------------------------- work split */

/* The name of a node's kernel function: its kind and a hash of all the emitted code depends on
 * (the dtypes and shapes, symbols included, of the operands and the output, the scale, causal, the
 * strides of views read or written), so that alike nodes (every layer of a model) share one function:
 * less code, less compile time. */
static void kernel_name(const Cg *cg, const Node *n, const char *kind, char *buf, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ull, bits;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 0x100000001B3ull, h ^= h >> 29)
    memcpy(&bits, &n->at.scale, sizeof bits < sizeof n->at.scale ? sizeof bits : sizeof n->at.scale);
    MIX(bits);
    MIX(n->at.causal);
    MIX(n->at.scores);
    MIX(cg_attention_cls(cg->g, n) != NULL);
    MIX(n->nin);
    for (int i = -1; i < n->nin; i++) {
        const Node *x = i < 0 ? n : n->in[i];
        MIX(x->dtype);
        MIX(x->rank);
        for (int d = 0; d < x->rank; d++)
            MIX(dim_hash(x->shape[d]));
    }
    for (int j = -1; j < 3; j++) {
        int64_t st[IR_MAX_RANK];
        int rank = j < 0 ? n->rank : n->in[j]->rank, v = layout(cg, n, j, st);
        MIX(v);
        for (int d = 0; v && d < rank; d++)
            MIX(st[d]);
    }
#undef MIX
    snprintf(buf, len, "kiln_attention_%s_%016llx", kind, (unsigned long long)h);
}

/* Runs body over n items taken one at a time from a shared counter (cg_parallel's CG_ITEMS); body is
 * emitted once per kind and hash of the node (kernel_name), for every node alike. */
static void parallel_items(Attn *a, LLVMValueRef n, int ncap, LLVMValueRef *cap, CgRange body, const char *kind)
{
    char name[96];
    kernel_name(a->cg, a->n, kind, name, sizeof name);
    CgPar p = {.split = CG_ITEMS, .n = n, .name = name, .shared = 1, .vw = a->k.vw};
    cg_parallel(a->cg, &p, ncap, cap, body, (void *)a->n);
}

/* The item (batch index, query block) begin, in the function parallel_items made. */
static void blocks_range(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    Attn A, *a = &A;
    setup(a, cg, ctx, cap);
    Attn AB = block_attn(a); /* the block kernel's vectors */
    Block B = block_buffers(&AB);
    LLVMValueRef nqb = cg_ceil_div(a->cg, a->Tq, i64c(a, a->k.bvw));
    LLVMValueRef b = LLVMBuildSDiv(cg->b, begin, nqb, ""), t = LLVMBuildSRem(cg->b, begin, nqb, "");
    /* A batch index's blocks are taken together (its K and V stay in cache), under the causal mask
     * the last (largest) first, so that the items left at the end are small. */
    LLVMValueRef qb = a->n->at.causal ? sub(a, sub(a, nqb, i64c(a, 1)), t) : t;
    Batch bt = batch_at(a, b);
    LLVMValueRef i0 = mul(a, qb, i64c(a, a->k.bvw));
    LLVMValueRef nr = cg_smin(a->cg, i64c(a, a->k.bvw), sub(a, a->Tq, i0));
    if (a->k.rows) {
        LLVMBasicBlockRef blk = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "block");
        LLVMBasicBlockRef rows = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "rows");
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "next");
        /* the scores: every row to the row kernel, which writes them (the block kernel does not) */
        LLVMValueRef few = a->n->at.scores ? LLVMConstInt(cg->i1, 1, 0)
                                           : LLVMBuildICmp(cg->b, LLVMIntSLT, nr, i64c(a, a->k.minrows), "");
        LLVMBuildCondBr(cg->b, few, rows, blk);
        LLVMPositionBuilderAtEnd(cg->b, rows);
        Loop lr = cg_loop_begin(cg, i64c(a, 0), nr, "row");
        LLVMValueRef i = add(a, i0, lr.iv);
        RowAcc r;
        row_pass(a, &bt, i, i64c(a, 0), keys_end(a, i), &r);
        row_store(a, &bt, i, &r);
        cg_loop_end(cg, &lr);
        LLVMBuildBr(cg->b, next);
        LLVMPositionBuilderAtEnd(cg->b, blk);
        block_rows(&AB, &B, &bt, i0, nr);
        LLVMBuildBr(cg->b, next);
        LLVMPositionBuilderAtEnd(cg->b, next);
    } else {
        block_rows(&AB, &B, &bt, i0, nr);
    }
}

/* Scratch of one (row, chunk) item of a split: the accumulator (whole vectors), then m and l. */
static int64_t split_stride(const AttnCfg *k)
{
    return (int64_t)k->dvv * k->vw + k->vw;
}

/* The item (row, chunk) begin: cap[7] is the scratch, cap[8] the chunks per row, cap[9] the keys per
 * chunk. */
static void split_range(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    Attn A, *a = &A;
    setup(a, cg, ctx, cap);
    LLVMValueRef scratch = cap[7], nchunk = cap[8], cs = cap[9];
    LLVMValueRef row = LLVMBuildSDiv(cg->b, begin, nchunk, ""), c = LLVMBuildSRem(cg->b, begin, nchunk, "");
    LLVMValueRef b = LLVMBuildSDiv(cg->b, row, a->Tq, ""), i = LLVMBuildSRem(cg->b, row, a->Tq, "");
    Batch bt = batch_at(a, b);
    LLVMValueRef ja = mul(a, c, cs);
    LLVMValueRef jb = cg_smin(a->cg, keys_end(a, i), add(a, ja, cs));
    RowAcc r;
    row_pass(a, &bt, i, ja, jb, &r);
    LLVMValueRef s = cg_fptr(a->cg, scratch, mul(a, begin, i64c(a, split_stride(&a->k))));
    for (int x = 0; x < a->k.dvv; x++)
        cg_vstore(&a->V, get(a, r.acc[x], a->vt), cg_fptr(a->cg, s, i64c(a, (int64_t)x * a->k.vw)), 4);
    LLVMValueRef ms = cg_fptr(a->cg, s, i64c(a, (int64_t)a->k.dvv * a->k.vw));
    LLVMBuildStore(cg->b, get(a, r.m, cg->f32), ms);
    LLVMBuildStore(cg->b, get(a, r.l, cg->f32), cg_fptr(a->cg, ms, i64c(a, 1)));
}

/* After a split: each row from its chunks, in the node's function. */
static void split_merge(Attn *a, LLVMValueRef scratch, LLVMValueRef rows, LLVMValueRef nchunk)
{
    Cg *cg = a->cg;
    LLVMTypeRef f = cg->f32;
    int64_t stride = split_stride(&a->k), mo = (int64_t)a->k.dvv * a->k.vw;
    LLVMValueRef ninf = LLVMConstReal(f, -INFINITY);
    LLVMValueRef M = cg_alloca(cg, f, "mmax"), L = cg_alloca(cg, f, "lsum");
    RowAcc r;
    r.m = M;
    r.l = L;
    for (int x = 0; x < a->k.dvv; x++)
        r.acc[x] = cg_alloca(cg, a->vt, "acc");
    Loop lr = cg_loop_begin(cg, i64c(a, 0), rows, "mrow");
    LLVMValueRef base = mul(a, mul(a, lr.iv, nchunk), i64c(a, stride));
    set(a, M, ninf);
    Loop l1 = cg_loop_begin(cg, i64c(a, 0), nchunk, "mc");
    LLVMValueRef mc = fload(a, cg_fptr(a->cg, scratch, add(a, base, add(a, mul(a, l1.iv, i64c(a, stride)), i64c(a, mo)))));
    LLVMValueRef cur = get(a, M, f);
    set(a, M, LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, mc, cur, ""), mc, cur, ""));
    cg_loop_end(cg, &l1);
    LLVMValueRef mmax = get(a, M, f);
    /* a row whose chunks all saw nothing: M = -inf; subtract 0 then (every weight is 0 or unused) */
    LLVMValueRef msub = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOEQ, mmax, ninf, ""), LLVMConstReal(f, 0), mmax, "");
    set(a, L, LLVMConstReal(f, 0));
    for (int x = 0; x < a->k.dvv; x++)
        set(a, r.acc[x], LLVMConstNull(a->vt));
    Loop l2 = cg_loop_begin(cg, i64c(a, 0), nchunk, "mc");
    LLVMValueRef s = cg_fptr(a->cg, scratch, add(a, base, mul(a, l2.iv, i64c(a, stride))));
    LLVMValueRef ms = cg_fptr(a->cg, s, i64c(a, mo));
    LLVMValueRef w = cg_exp(cg, LLVMBuildFSub(cg->b, fload(a, ms), msub, "")); /* a chunk with m = -inf: 0 */
    set(a, L, cg_vfma(&a->V, w, fload(a, cg_fptr(a->cg, ms, i64c(a, 1))), get(a, L, f)));
    LLVMValueRef vwt = cg_vsplat(&a->V, w);
    for (int x = 0; x < a->k.dvv; x++)
        set(a, r.acc[x], cg_vfma(&a->V, vwt, cg_vload(&a->V, cg_fptr(a->cg, s, i64c(a, (int64_t)x * a->k.vw)), 4), get(a, r.acc[x], a->vt)));
    cg_loop_end(cg, &l2);
    Batch bt = batch_at(a, LLVMBuildSDiv(cg->b, lr.iv, a->Tq, ""));
    row_store(a, &bt, LLVMBuildSRem(cg->b, lr.iv, a->Tq, ""), &r);
    cg_loop_end(cg, &lr);
}

const Node *cg_attention_cls(const Graph *g, const Node *n)
{
    for (int i = n->id + 1; n->op == OP_ATTENTION && i < g->nnode; i++)
        if (g->nodes[i]->op == OP_CLS_PROBS && g->nodes[i]->in[0] == n)
            return g->nodes[i];
    return NULL;
}

int cg_attention(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    if (n->nin == 7) /* int8 k and v with their scales (a quantized KV cache): qattention.c */
        return cg_qattention(cg, n, out, in);
    if (n->dtype != DT_F32) {
        diag_error(cg->d, n->loc, "the fused attention kernel takes f32, not %s", dtype_traits[n->dtype].name);
        return -1;
    }
    LLVMValueRef none = LLVMConstNull(cg->ptr);
    LLVMValueRef ops[7] = {out, in[0], in[1], in[2], n->nin > 3 ? in[3] : none, n->nin > 4 ? in[4] : none,
                           cg_attention_cls(cg->g, n) ? in[n->nin] : none};
    Attn A, *a = &A;
    setup(a, cg, n, ops);
    if (n->at.scores && !a->k.rows) {
        diag_error(cg->d, n->loc, "attention with scores needs the row kernel: head sizes known at compile time, "
                   "at most %d vectors", MAX_ROW_VECS);
        return -1;
    }
    cg_vector_width_attr(a->cg, cg->fn, a->k.vw);
    LLVMValueRef od[IR_MAX_RANK];
    cg_shape(cg, n, od);
    LLVMValueRef nb = cg_numel(cg, n->rank - 2, od); /* batch indices */
    LLVMValueRef items = mul(a, nb, cg_ceil_div(a->cg, a->Tq, i64c(a, a->k.bvw)));
    LLVMValueRef cap[10] = {ops[0], ops[1], ops[2], ops[3], ops[4], ops[5], ops[6]};
    if (a->cls) { /* no query rows (a symbolic Tq of 0): no first row, its probabilities 0 */
        LLVMValueRef norows = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, a->Tq, i64c(a, 0), ""),
                                           LLVMBuildIsNotNull(cg->b, a->cls, ""), "");
        LLVMBasicBlockRef skip = cg_if_begin(cg, norows, "clszero");
        LLVMBuildMemSet(cg->b, a->cls, LLVMConstInt(cg->i8, 0, 0), mul(a, mul(a, nb, a->Tkall), i64c(a, 4)), 4);
        cg_if_end(cg, skip);
    }
    if (!a->k.rows) {
        parallel_items(a, items, 7, cap, blocks_range, "blocks");
        return 0;
    }
    /* Every row to the row kernel and fewer than two rows per thread: split the keys too, into
     * chunks of at least k.chunk keys, at most nsplit items in all. */
    int64_t nsplit = SPLIT_BYTES / 4 / split_stride(&a->k);
    nsplit = nsplit < MAX_SPLIT ? nsplit : MAX_SPLIT;
    LLVMValueRef one = i64c(a, 1);
    LLVMValueRef rows = mul(a, nb, a->Tq), rows1 = cg_smax(a->cg, rows, one);
    LLVMValueRef nchunk = cg_ceil_div(a->cg, cg_smax(a->cg, mul(a, i64c(a, 2), cg_pool_threads(a->cg)), i64c(a, a->k.split)), rows1);
    nchunk = cg_smin(a->cg, nchunk, LLVMBuildSDiv(cg->b, a->Tk, i64c(a, a->k.chunk), ""));
    nchunk = cg_smin(a->cg, nchunk, LLVMBuildSDiv(cg->b, i64c(a, nsplit), rows1, ""));
    LLVMValueRef split = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, a->Tq, i64c(a, a->k.minrows), ""),
                                      LLVMBuildICmp(cg->b, LLVMIntSGT, nchunk, one, ""), "");
    LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "split");
    LLVMBasicBlockRef no = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "blocks");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "done");
    LLVMBuildCondBr(cg->b, split, yes, no);
    LLVMPositionBuilderAtEnd(cg->b, no);
    parallel_items(a, items, 7, cap, blocks_range, "blocks");
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, yes);
    LLVMValueRef scratch = stack_floats(a, nsplit * split_stride(&a->k), "split");
    /* the widest key range of a row, in nchunk chunks */
    cap[7] = scratch;
    cap[8] = nchunk;
    cap[9] = cg_ceil_div(a->cg, cg_smax(a->cg, keys_end(a, sub(a, a->Tq, one)), one), nchunk);
    parallel_items(a, mul(a, rows, nchunk), 10, cap, split_range, "split");
    split_merge(a, scratch, rows, nchunk);
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
    return 0;
}
