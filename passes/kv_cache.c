/* kv_cache.c: the kv-cache pass: prefill and decode entries with a bounded KV cache, from a causal
 * decoder written once.
 *
 * What it expects: a graph with one entry and no state, one input of token ids `[T]` (an integer
 * dtype, T a symbol), and every attention fused by fuse-attention into causal `attention(q, k, v)`
 * nodes whose k and v have T as their second-to-last dimension and static dimensions elsewhere. What
 * it makes (ir/entry.c's state and entries):
 *
 *   states   `count` i64[1]: the tokens the cache has seen plus one (0: nothing prefilled yet), and
 *            per attention l, `cache.l.k` and `cache.l.v`: k's and v's shape with T replaced by the
 *            cache's budget B (its slots).
 *   prefill  the graph as it was (tokens [T], every output over the T tokens: the prompt attends to
 *            the whole prompt), plus: each layer's k and v scattered into the slots of positions
 *            0..T-1 (a repeated slot: the later position wins, so a window keeps the last tokens),
 *            and count = T + 1. It always starts from an empty cache.
 *   decode   the graph again for one token (input `token` [1]) at position p = count - 1: every
 *            size T becomes 1, a position table sliced [0:T] becomes its row p (a gather), an arange
 *            [T] (positions, rotary angles) becomes p, and each attention writes the new k and v
 *            into slot(p) of the cache and attends with an additive mask that keeps the slots
 *            holding a token (slot j holds one when j <= p: slots fill in order), reading only
 *            the first min(p + 1, slots) (attention's fifth input: the slots that may hold one).
 *            count = count + 1.
 * Bad use fails with a named error (checked: a gather with the attribute check, whose failure the
 * entry returns as kiln_rt.h's RT_ERR_* code and the interpreter reports in a sentence): decode
 * before any prefill (check prefill), a prompt longer than full's budget and a decode past full's
 * B (check budget), a learned position table read past its last row (check
 * positions). The checked value is kept in range, so that no other index fails after it.
 *
 * Policies (slot(p) for position p, B the slots):
 *   full            slot = p, B = the bound of T (or `full:B`); past B, decode fails (check budget):
 *                   a clear error, never a silently wrong answer.
 *   window:W        the last W tokens: slot = p mod W, B = W.
 *   sinks:S,window:W (StreamingLLM) the first S tokens kept and the last W: slot = p below S, else
 *                   S + (p - S) mod W; B = S + W.
 *   tova:B          (TOVA) B + 1 slots, the state cache.l.pos [B + 1] holding each slot's position
 *                   + 1 (0: empty). Decode writes the new token into the first empty slot, attends
 *                   over every held slot with the probabilities as a by-product (attention's
 *                   attribute scores), and when all B + 1 are held empties the one with the lowest
 *                   probability averaged over the heads (attend_evicting). Prefill fills slots
 *                   0..T-1, or of a longer prompt keeps the B its last query attends to most
 *                   (prefill_tova).
 *   h2o:heavy=H,recent=R (H2O) per KV head: the states cache.l.pos and cache.l.acc (k's batch
 *                   dims + [H + R + 1]) hold positions and the attention each slot received,
 *                   summed over queries and the query heads of the KV head (attend_heavy); a full
 *                   head empties its least attended slot outside the R most recent. Prefill's
 *                   attention computes its probabilities too, whose column sums start acc
 *                   (prefill_heavy).
 *   cascade:B,n=N[,sinks=S] (cascading KV cache) per layer: S sinks and N sub-caches of (B - S)/N
 *                   slots, sub-cache i accepting every 2^i-th token, tokens given up from one
 *                   offered to the next, the more attended kept by a moving average of the
 *                   attention received (attend_cascade, prefill_cascade); B + 1 slots, states
 *                   cache.l.pos, cache.l.lab (1: sink, 2 + i: sub-cache i), cache.l.score.
 * Positions: by default the cache holds k and v as the model computes them, after rotary embedding
 * when there is one: a token keeps the position it was given. With `,positions=cache` after an
 * evicting policy (not full, whose ranks are the positions), a rotary model's cache holds the keys
 * before the rotation and decode rotates them by their rank among the held tokens and the query by
 * the count held before it (StreamingLLM; kv_positions.c). A learned position
 * table (GPT-2's wpe) is read at p, so past its last row decode fails (check positions), whatever
 * the policy; positions=cache refuses such a model.
 *
 * h2o and cascade likewise keep what their references keep of a prompt longer than B
 * (prefill_heavy, prefill_cascade and cascade_long).
 *
 * Precision: with `,kv=int8` (full, window and sinks) cache.l.k and cache.l.v are i8, and the
 * states cache.l.ks and cache.l.vs (their shape with the last dimension 1, f32) hold each cached
 * row's scale: per token and KV head, scale = max |x| / 127 over the row's d values, the values
 * x / scale rounded to the nearest (ties to even) and saturated, a zero row scale 0 and values 0
 * (quant_rows: quantize nodes, so the interpreter and the kernels round alike). Prefill and decode
 * quantize what they write; prefill's own attention reads its f32 k and v. Decode's attention takes
 * the int8 caches and their scales as its sixth and seventh inputs (codegen/qattention.c reads the
 * rows as they are); with positions=cache the keys are dequantized (dequantize nodes) to be rotated
 * again, and attention reads f32. tova, h2o and cascade are refused with kv=int8 (their writes and
 * their scores would need the same treatment: not done).
 */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Policy {
    enum { KV_FULL, KV_WINDOW, KV_SINKS, KV_TOVA, KV_H2O, KV_CASCADE } kind;
    int64_t budget; /* B: the tokens a layer keeps (h2o: each KV head of a layer) */
    int64_t sinks, window;
    int64_t heavy, recent; /* h2o */
    int64_t ncascade;      /* cascade: sub-caches of `window` tokens each, after `sinks` */
    int cachepos;          /* positions=cache: rotary positions by rank within the cache (never with full) */
    int q8;                /* kv=int8: the caches in i8 with an f32 scale per cached row (quant_rows) */
} Policy;

/* cascade: the factor of the moving average of the attention a token receives (CascadingKVCache.beta) */
#define CASCADE_BETA 0.9999

/* The policies that choose what to evict from the attention the new token pays. */
static int evicting(const Policy *p)
{
    return p->kind == KV_TOVA || p->kind == KV_H2O || p->kind == KV_CASCADE;
}

/* The slots of a layer's cache: B, and one more for the policies that choose what to evict after
 * attending (the new token goes into the free slot, then the least useful of the B + 1 leaves). */
static int64_t nslots(const Policy *p)
{
    return p->budget + evicting(p);
}

typedef struct Kv {
    Graph *g;
    Diag *d;
    Policy pol;
    int tsym;        /* the symbol T */
    Node **map;      /* (nodes before the pass) decode's node for each, or NULL */
    int n0;          /* nodes before the pass */
    Node *p;         /* decode: the position, i64[1] */
    Node *nread;     /* decode: the slots that may hold a token, min(p + 1, slots), i64[1]: attention reads
                        no further (the slots fill in order, and an emptied one is taken again first) */
    Node *slot;      /* decode: slot(p), i64[1] */
    Node *mask;      /* decode: f32[1, B] additive mask, made on first use */
    Node *tcount;    /* prefill: T as an i64[1] */
    KvRegion *reg;   /* (attentions x 3) positions=cache: the part of each attention's q, k, v that
                        depends on the positions (x NULL: none; kv_positions.c) */
    Node *pos1;      /* decode, positions=cache, window and sinks: each slot's position + 1 (0: empty), [B] */
    Node *ranks, *qpos; /* and the slots' ranks, the new token's (kv_ranks), made on first use */
} Kv;

/* a count >= 1 with nothing after it, or 0 */
static int64_t count_of(const char *s)
{
    char *end;
    int64_t v = strtoll(s, &end, 10);
    return *end || v < 1 ? 0 : v;
}

/* "full", "full:B", "window:W", "sinks:S,window:W", "tova:B", "h2o:heavy=H,recent=R",
 * "cascade:B,n=N[,sinks=S]"; 0 on success */
static int parse_kind(const char *s, int64_t bound, Policy *p)
{
    char *end;
    if (!strcmp(s, "full")) {
        p->kind = KV_FULL;
        p->budget = bound;
        return 0;
    }
    if (!strncmp(s, "full:", 5)) {
        p->kind = KV_FULL;
        if ((p->budget = count_of(s + 5)) < 1)
            goto bad;
        return 0;
    }
    if (!strncmp(s, "window:", 7)) {
        p->kind = KV_WINDOW;
        if ((p->window = p->budget = count_of(s + 7)) < 1)
            goto bad;
        return 0;
    }
    if (!strncmp(s, "tova:", 5)) {
        p->kind = KV_TOVA;
        if ((p->budget = count_of(s + 5)) < 1)
            goto bad;
        return 0;
    }
    if (!strncmp(s, "h2o:heavy=", 10)) {
        p->kind = KV_H2O;
        p->heavy = strtoll(s + 10, &end, 10);
        if (end == s + 10 || p->heavy < 0 || strncmp(end, ",recent=", 8))
            goto bad;
        const char *r = end + 8;
        p->recent = strtoll(r, &end, 10);
        if (end == r || *end || p->recent < 0 || p->heavy + p->recent < 1)
            goto bad;
        p->budget = p->heavy + p->recent;
        return 0;
    }
    if (!strncmp(s, "cascade:", 8)) { /* cascade:B,n=N[,sinks=S] */
        p->kind = KV_CASCADE;
        p->budget = strtoll(s + 8, &end, 10);
        if (end == s + 8 || strncmp(end, ",n=", 3))
            goto bad;
        const char *r = end + 3;
        p->ncascade = strtoll(r, &end, 10);
        if (end == r || p->ncascade < 1 || p->ncascade > 16)
            goto bad;
        if (!strncmp(end, ",sinks=", 7)) {
            r = end + 7;
            p->sinks = strtoll(r, &end, 10);
            if (end == r || p->sinks < 0)
                goto bad;
        }
        if (*end || p->budget - p->sinks < p->ncascade || (p->budget - p->sinks) % p->ncascade)
            goto bad;
        p->window = (p->budget - p->sinks) / p->ncascade;
        return 0;
    }
    if (!strncmp(s, "sinks:", 6)) {
        p->kind = KV_SINKS;
        p->sinks = strtoll(s + 6, &end, 10);
        if (p->sinks < 0 || strncmp(end, ",window:", 8))
            goto bad;
        if ((p->window = count_of(end + 8)) < 1)
            goto bad;
        p->budget = p->sinks + p->window;
        return 0;
    }
bad:
    return -1;
}

/* a policy (parse_kind), then optionally ",positions=cache" or ",positions=absolute" (the default) and
 * ",kv=int8" or ",kv=f32" (the default), each at most once, in either order; 0 on success */
static int parse_policy(const char *s, int64_t bound, Policy *p, Diag *d)
{
    memset(p, 0, sizeof *p);
    const char *pos = strstr(s, ",positions="), *kvq = strstr(s, ",kv=");
    const char *suffix = pos && (!kvq || pos < kvq) ? pos : kvq;
    size_t n = suffix ? (size_t)(suffix - s) : strlen(s);
    char kind[128];
    int ok = n < sizeof kind, seenpos = 0, seenkv = 0;
    if (ok) {
        memcpy(kind, s, n);
        kind[n] = 0;
        ok = !parse_kind(kind, bound, p);
    }
    for (const char *o = suffix; ok && o;) {
        o++; /* past the comma */
        const char *e = strchr(o, ',');
        size_t len = e ? (size_t)(e - o) : strlen(o);
#define IS(lit) (len == sizeof(lit) - 1 && !strncmp(o, lit, len))
        if (!seenpos && (IS("positions=absolute") || IS("positions=cache")))
            seenpos = 1, p->cachepos = IS("positions=cache");
        else if (!seenkv && (IS("kv=f32") || IS("kv=int8")))
            seenkv = 1, p->q8 = IS("kv=int8");
        else
            ok = 0;
#undef IS
        o = e;
    }
    if (ok && p->q8 && evicting(p)) {
        diag_fatal(d, "--kv-cache: kv=int8 works with the policies full, window and sinks, not with '%s' (tova, "
                      "h2o and cascade keep f32 caches)", s);
        return -1;
    }
    if (ok) {
        p->cachepos &= p->kind != KV_FULL; /* nothing leaves: the ranks are the positions */
        return 0;
    }
    diag_fatal(d, "--kv-cache: cannot read the policy '%s' (full, full:B, window:W, sinks:S,window:W, tova:B, "
                  "h2o:heavy=H,recent=R or cascade:B,n=N[,sinks=S], then optionally ,positions=cache or "
                  ",positions=absolute and ,kv=int8 or ,kv=f32; B, W, H + R >= 1, S, H, R >= 0, 1 <= N <= 16 "
                  "dividing B - S)", s);
    return -1;
}

static Node *mk(Kv *kv, Op op, DType dt, int rank, const Dim *shape, int nin, Node *const *in, SrcLoc loc)
{
    return ir_node(kv->g, op, dt, rank, shape, nin, in, loc);
}

static Node *const_i64(Kv *kv, int64_t v)
{
    Node *c = mk(kv, OP_CONST, DT_I64, 0, NULL, 0, NULL, (SrcLoc){0, 0, 0});
    int64_t *data = arena_alloc(kv->g->arena, sizeof v);
    *data = v;
    c->at.data = data;
    return c;
}

static Node *const_f32(Kv *kv, float v)
{
    Node *c = mk(kv, OP_CONST, DT_F32, 0, NULL, 0, NULL, (SrcLoc){0, 0, 0});
    float *data = arena_alloc(kv->g->arena, sizeof v);
    *data = v;
    c->at.data = data;
    return c;
}

/* a op b for i64 x (any shape) and a constant b */
static Node *op_k(Kv *kv, Op op, Node *x, int64_t b)
{
    Node *in[2] = {x, const_i64(kv, b)};
    return mk(kv, op, op_info[op].flags & F_CMP ? DT_BOOL : DT_I64, x->rank, x->shape, 2, in, x->loc);
}

/* x where bad (bool, broadcast to x) does not hold, else safe; and a run-time check that fails with
 * the entry's code for `check` (CHECK_*) when it holds: a gather of index 1 from a table of one
 * (zero). The value stays in range so that no other index fails after it: one named error. */
static Node *checked(Kv *kv, Node *x, Node *bad, int64_t safe, int check)
{
    SrcLoc loc = x->loc;
    int64_t *zero = arena_alloc(kv->g->arena, sizeof *zero);
    *zero = 0;
    Node *table = ir_const(kv->g, DT_I64, 1, (Dim[]){dim_const(1)}, zero, loc);
    Node *at = mk(kv, OP_WHERE, DT_I64, bad->rank, bad->shape, 3, (Node *[]){bad, const_i64(kv, 1), const_i64(kv, 0)}, loc);
    Node *g = ir_gather(kv->g, table, at, 0, loc, NULL);
    g->at.check = check;
    Node *in[2] = {ir_where(kv->g, bad, const_i64(kv, safe), x, loc, NULL), g};
    return ir_binary(kv->g, OP_ADD, in[0], in[1], loc, NULL);
}

/* slot(p) elementwise for i64 positions p >= 0 */
static Node *slot_of(Kv *kv, Node *p)
{
    const Policy *pol = &kv->pol;
    if (pol->kind == KV_FULL || evicting(pol)) /* evicting: prefill's (decode chooses its own slot) */
        return p;
    if (pol->kind == KV_WINDOW) /* p - (p / W) * W: p mod W */
        return mk(kv, OP_SUB, DT_I64, p->rank, p->shape, 2,
                  (Node *[]){p, op_k(kv, OP_MUL, op_k(kv, OP_DIV, p, pol->window), pol->window)}, p->loc);
    Node *q = op_k(kv, OP_SUB, p, pol->sinks); /* S + (p - S) mod W, or p below S */
    Node *wrapped = op_k(kv, OP_ADD,
                         mk(kv, OP_SUB, DT_I64, p->rank, p->shape, 2,
                            (Node *[]){q, op_k(kv, OP_MUL, op_k(kv, OP_DIV, q, pol->window), pol->window)}, p->loc),
                         pol->sinks);
    return mk(kv, OP_WHERE, DT_I64, p->rank, p->shape, 3, (Node *[]){op_k(kv, OP_LT, p, pol->sinks), p, wrapped}, p->loc);
}

/* The shape of a cache: x's with its dimension `axis` (T) replaced by B. */
static void cache_shape(const Kv *kv, const Node *x, int axis, Dim *shape)
{
    memcpy(shape, x->shape, sizeof(Dim) * (size_t)x->rank);
    shape[axis] = dim_const(nslots(&kv->pol));
}

static int is_t(const Kv *kv, Dim d)
{
    return dim_is_sym(d, kv->tsym);
}

/* d with T = 1 (decode's one token); 0 when d uses another symbol */
static int subst(const Kv *kv, Dim d, Dim *out)
{
    return kv_subst(kv->tsym, d, 1, out);
}

static int uses_t(const Kv *kv, const Node *x)
{
    (void)kv;
    return kv_uses_sym(x);
}

/* Whether an attention node is one the pass can cache: causal, no mask, k and v [..., T, d] with
 * static batch dims, q [..., T, d]. */
static const char *attention_problem(const Kv *kv, const Node *a)
{
    if (a->nin != 3)
        return "it has a mask input";
    if (!a->at.causal)
        return "it is not causal";
    for (int j = 0; j < 3; j++) {
        const Node *x = a->in[j];
        if (x->rank < 2 || !is_t(kv, x->shape[x->rank - 2]))
            return "its q, k or v does not have the tokens T as its second-to-last dimension";
        for (int i = 0; i < x->rank; i++)
            if (i != x->rank - 2 && !dim_is_const(x->shape[i]))
                return "its q, k or v has a symbolic size besides T";
    }
    return NULL;
}

/* decode: the additive mask [1, B]: 0 for the slots that hold a token (j <= p), -inf for the others */
static Node *decode_mask(Kv *kv, SrcLoc loc)
{
    if (kv->mask)
        return kv->mask;
    int64_t B = kv->pol.budget;
    Node *j = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(B)}, 0, NULL, loc);
    Node *keep = mk(kv, OP_LE, DT_BOOL, 1, j->shape, 2, (Node *[]){j, kv->p}, loc);
    Node *m = mk(kv, OP_WHERE, DT_F32, 1, j->shape, 3, (Node *[]){keep, const_f32(kv, 0), const_f32(kv, -INFINITY)}, loc);
    kv->mask = mk(kv, OP_RESHAPE, DT_F32, 2, (Dim[]){dim_const(1), dim_const(B)}, 1, &m, loc);
    return kv->mask;
}

/* Shorthands for the builders (ir/build.c), which infer the types; a misfit is an internal error. */
static Node *bin(Kv *kv, Op op, Node *a, Node *b)
{
    return ir_binary(kv->g, op, a, b, a->loc, NULL);
}

static Node *sel(Kv *kv, Node *c, Node *a, Node *b)
{
    return ir_where(kv->g, c, a, b, c->loc, NULL);
}

static Node *red(Kv *kv, Op op, Node *x, int axis, int keepdims)
{
    return ir_reduce(kv->g, op, x, axis, keepdims, x->loc, NULL);
}

static Node *i64s(Kv *kv, int64_t v)
{
    return const_i64(kv, v);
}

/* The state node `cache.LAYER.WHAT` (declared by the prefill part of the pass). */
static Node *state_node(Kv *kv, int layer, const char *what, SrcLoc loc)
{
    char name[64];
    snprintf(name, sizeof name, "cache.%d.%s", layer, what);
    int s = ir_find_state(kv->g, name);
    KILN_ASSERT(s >= 0);
    const StateDecl *sd = &kv->g->states[s];
    Node *st = mk(kv, OP_STATE, sd->dtype, sd->rank, sd->shape, 0, NULL, loc);
    st->name = sd->name;
    return st;
}

/* kv=int8: x (f32 [..., n, d]) quantized per row as the cache holds it: the scale of each row,
 * max |x| / 127 ([..., n, 1] f32), in *scale, and the quantize node (i8): x / scale rounded to the
 * nearest (ties to even) and saturated, a row of zeros getting scale 0 and values 0 (quantize's
 * rule for a zero scale). */
static Node *quant_rows(Kv *kv, Node *x, Node **scale)
{
    SrcLoc loc = x->loc;
    Node *amax = red(kv, OP_RMAX, ir_unary(kv->g, OP_ABS, x, loc, NULL), x->rank - 1, 1);
    *scale = bin(kv, OP_DIV, amax, const_f32(kv, 127.0f));
    Node *q = mk(kv, OP_QUANTIZE, DT_I8, x->rank, x->shape, 2, (Node *[]){x, *scale}, loc);
    q->at.axis = 0;
    return q;
}

/* Row slots (axis: the slots) of state st replaced by x's rows, a scatter made an update of the entry
 * being built; returns the scatter (the cache after the write). */
static Node *scatter_into(Kv *kv, Node *st, Node *slots, Node *x, SrcLoc loc)
{
    Node *w = mk(kv, OP_SCATTER, st->dtype, st->rank, st->shape, 3, (Node *[]){st, slots, x}, loc);
    w->at.axis = st->rank - 2;
    ir_add_update(kv->g, st->name, w);
    return w;
}

/* decode: the new k and v (in[1], in[2] of attention x, mapped) written into slot of the layer's
 * caches, which are updated; the caches after the write in cached[0..1], and with kv=int8 the
 * scales' in cached[2..3]. */
static void cache_write(Kv *kv, const Node *x, Node *const *in, int layer, Node *slot, Node **cached)
{
    for (int j = 1; j <= 2; j++) {
        Node *st = state_node(kv, layer, j == 1 ? "k" : "v", x->loc), *val = in[j];
        if (kv->pol.q8) {
            Node *sc;
            val = quant_rows(kv, val, &sc);
            cached[j + 1] = scatter_into(kv, state_node(kv, layer, j == 1 ? "ks" : "vs", x->loc), slot, sc, x->loc);
        }
        cached[j - 1] = scatter_into(kv, st, slot, val, x->loc);
    }
}

/* decode, window and sinks: each slot's position + 1, 0 when it holds none (slots fill in order: slot
 * j holds a token when j <= p; a ring slot j >= S the newest position q with S + (q - S) mod W = j) */
static Node *ring_pos1(Kv *kv, SrcLoc loc)
{
    if (kv->pos1)
        return kv->pos1;
    const Policy *pol = &kv->pol;
    Node *j = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(pol->budget)}, 0, NULL, loc);
    Node *q = op_k(kv, OP_SUB, kv->p, pol->sinks), *d = bin(kv, OP_SUB, q, op_k(kv, OP_SUB, j, pol->sinks));
    Node *age = bin(kv, OP_SUB, d, op_k(kv, OP_MUL, op_k(kv, OP_DIV, d, pol->window), pol->window));
    Node *pos = sel(kv, op_k(kv, OP_LT, j, pol->sinks), j, op_k(kv, OP_ADD, bin(kv, OP_SUB, q, age), pol->sinks));
    kv->pos1 = sel(kv, bin(kv, OP_LE, j, kv->p), op_k(kv, OP_ADD, pos, 1), i64s(kv, 0));
    return kv->pos1;
}

/* What decode's attention of layer reads: its q, and the cached k and v (cached[0..1]) into qkv; with
 * positions=cache (pos1, the slots' positions + 1, not NULL) q and k at their ranks among the held
 * tokens (kv_positions.c). */
static void positioned(Kv *kv, int layer, Node *q, Node *const *cached, Node *pos1, Node **qkv)
{
    qkv[0] = q;
    qkv[1] = cached[0];
    qkv[2] = cached[1];
    if (!pos1)
        return;
    Node *ranks, *qpos;
    if (pos1 == kv->pos1) { /* window and sinks: one slot map for every layer */
        if (!kv->ranks)
            kv_ranks(kv->g, pos1, &kv->ranks, &kv->qpos);
        ranks = kv->ranks;
        qpos = kv->qpos;
    } else {
        kv_ranks(kv->g, pos1, &ranks, &qpos);
    }
    for (int j = 0; j < 3; j++) {
        const KvRegion *r = &kv->reg[3 * layer + j];
        if (r->x)
            qkv[j] = j ? kv_rerotated(kv->g, kv->tsym, kv->map, r, cached[j - 1], ranks)
                       : kv_reclone(kv->g, kv->tsym, kv->map, r, kv->map[r->x->id], qpos, 1);
    }
}

/* Decode's attention x of layer (q in[0]) over the cached k and v with an additive mask, computing
 * its probabilities too (the attribute scores): returns its output (shape) and the probabilities
 * [batch..., 1, n] in *probs. pos1: the slots' positions + 1 (positions=cache). */
static Node *attend_scored(Kv *kv, const Node *x, int layer, Node *q, Node *const *cached, Node *pos1, Node *mask,
                           const Dim *shape, Node **probs)
{
    Attrs at = x->at;
    at.causal = 0;
    at.scores = 1;
    Node *qkv[3];
    positioned(kv, layer, q, cached, kv->pol.cachepos ? pos1 : NULL, qkv);
    Node *a = ir_build(kv->g, OP_ATTENTION, &at, 5, (Node *[]){qkv[0], qkv[1], qkv[2], mask, kv->nread}, NULL, x->loc,
                       NULL);
    int r = a->rank;
    Dim dv = shape[r - 1];
    *probs = ir_slice(kv->g, a, r - 1, dv, a->shape[r - 1], x->loc, NULL);
    return ir_slice(kv->g, a, r - 1, dim_const(0), dv, x->loc, NULL);
}

/* What tova and cascade share (one slot map per layer, S = B + 1 slots): the state cache.LAYER.pos
 * [S] holds each slot's position + 1 (0: empty), and at least one slot is empty when decode starts.
 * The new token goes into the first empty slot and attention runs over every held slot. */
typedef struct Slots {
    Node *out;          /* attention's output */
    Node *probs;        /* [S]: the probabilities from the new token, averaged over all query heads */
    Node *pos, *pos1;   /* the state, and with the new token's slot set */
    Node *idx, *none;   /* arange(S), and S (no slot) */
    Node *isnew;        /* [S] bool: the new token's slot */
} Slots;

static Slots attend_slots(Kv *kv, const Node *x, Node *const *in, const Dim *shape, int layer)
{
    int64_t S = nslots(&kv->pol);
    SrcLoc loc = x->loc;
    Slots o;
    o.pos = state_node(kv, layer, "pos", loc);
    o.idx = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(S)}, 0, NULL, loc);
    o.none = i64s(kv, S);
    Node *slot = red(kv, OP_RMIN, sel(kv, bin(kv, OP_EQ, o.pos, i64s(kv, 0)), o.idx, o.none), 0, 1);
    Node *cached[4];
    cache_write(kv, x, in, layer, slot, cached);
    o.isnew = bin(kv, OP_EQ, o.idx, slot);
    o.pos1 = sel(kv, o.isnew, op_k(kv, OP_ADD, kv->p, 1), o.pos);
    Node *m = sel(kv, op_k(kv, OP_GT, o.pos1, 0), const_f32(kv, 0), const_f32(kv, -INFINITY));
    m = ir_reshape(kv->g, m, 2, (Dim[]){dim_const(1), dim_const(S)}, loc, NULL);
    Node *sc;
    o.out = attend_scored(kv, x, layer, in[0], cached, o.pos1, m, shape, &sc);
    int64_t nb = 1;
    for (int i = 0; i < x->rank - 2; i++)
        nb *= dim_value(shape[i]);
    o.probs = red(kv, OP_MEAN, ir_reshape(kv->g, sc, 2, (Dim[]){dim_const(nb), dim_const(S)}, loc, NULL), 0, 0);
    return o;
}

/* decode, the policies that attend before they evict (tova): attention x of layer over its S = B + 1
 * slots. The state cache.LAYER.pos [S] holds each slot's position + 1 (0: empty); at least one slot
 * is empty when decode starts. The new token goes into the first empty slot, attention runs over
 * every occupied slot with its probabilities as a by-product (the attribute scores), and when all
 * S are occupied the slot with the lowest probability averaged over the heads (the batch dims) is
 * emptied: TOVA (schwartz-lab-NLP/TOVA's TOVACache.reduce keeps the top B of the B + 1 weights of
 * the last query, averaged over the heads, the new token among them). Its k and v stay where they
 * are, masked, until a token takes the slot. Returns attention's output (shape). */
static Node *attend_evicting(Kv *kv, const Node *x, Node *const *in, const Dim *shape, int layer)
{
    Slots o = attend_slots(kv, x, in, shape, layer);
    Node *live = op_k(kv, OP_GT, o.pos1, 0);
    /* the least attended of the occupied slots (the lowest index on a tie), emptied when none is */
    Node *full = op_k(kv, OP_GT, red(kv, OP_RMIN, o.pos1, 0, 1), 0);
    Node *least = red(kv, OP_RMIN, sel(kv, live, o.probs, const_f32(kv, INFINITY)), 0, 1);
    Node *victim = red(kv, OP_RMIN, sel(kv, live, sel(kv, bin(kv, OP_EQ, o.probs, least), o.idx, o.none), o.none), 0, 1);
    Node *pos2 = sel(kv, full, sel(kv, bin(kv, OP_EQ, o.idx, victim), i64s(kv, 0), o.pos1), o.pos1);
    ir_add_update(kv->g, o.pos->name, pos2);
    return o.out;
}

/* Boolean helpers: and, or and not as selects (the IR has no logical ops). */
static Node *and_(Kv *kv, Node *a, Node *b)
{
    return sel(kv, a, b, a);
}

static Node *or_(Kv *kv, Node *a, Node *b)
{
    return sel(kv, a, a, b);
}

static Node *not_(Kv *kv, Node *a)
{
    return sel(kv, a, ir_scalar(kv->g, DT_BOOL, 0, a->loc), ir_scalar(kv->g, DT_BOOL, 1, a->loc));
}

/* The slot (of idx) holding the smallest (largest: OP_RMAX) of v among the slots where `in` holds;
 * `none` when there are none. */
static Node *slot_of_extreme(Kv *kv, Op op, Node *v, Node *in, Node *idx, Node *none)
{
    Node *far = i64s(kv, op == OP_RMIN ? INT64_MAX : -1);
    Node *e = red(kv, op, sel(kv, in, v, far), 0, 1);
    return red(kv, OP_RMIN, sel(kv, and_(kv, in, bin(kv, OP_EQ, v, e)), idx, none), 0, 1);
}

/* decode, cascade: attention x of layer over S sinks and N sub-caches of W tokens (Willette et al.,
 * "Training-free exponential context extension via cascading KV cache"; the order of operations of
 * the authors' CascadingKVCache, jeffwillette/cascading_cache_2, cascading_cache.py's
 * _update_kv_cache_inner and cascade_attention.py's scores). States per layer: pos (position + 1, 0:
 * empty), lab (1: sink, 2 + i: sub-cache i) and score (the moving average of the attention the
 * token received, averaged over the heads) for each of the B + 1 slots. The new token goes into the
 * empty slot and attention runs over every held slot; then each held non-sink score becomes
 * beta * score + (1 - beta) * p and the new token's (1 - beta) * p. The new token joins: the sinks
 * while there are fewer than S; else it is offered to sub-cache 0, and what a sub-cache gives up to
 * the next: sub-cache i accepts on the tokens where (p - S) mod 2^i = 0 (every token until the cache
 * has been filled once, p <= B: the reference's eager fill); accepting, a sub-cache with room keeps
 * it, a full one keeps it and gives up its oldest to sub-cache i + 1 (the last drops it); not
 * accepting, an empty sub-cache keeps it anyway, else it replaces the sub-cache's newest token when
 * its score is at least that one's, and is dropped otherwise. A sub-cache's tokens are its ring in
 * the reference: oldest and newest are by position, as they arrive in position order. */
static Node *attend_cascade(Kv *kv, const Node *x, Node *const *in, const Dim *shape, int layer)
{
    const Policy *pol = &kv->pol;
    int64_t P = nslots(pol);
    SrcLoc loc = x->loc;
    Slots o = attend_slots(kv, x, in, shape, layer);
    Node *lab = state_node(kv, layer, "lab", loc), *score = state_node(kv, layer, "score", loc);
    Node *pos = o.pos, *pos1 = o.pos1, *idx = o.idx, *none = o.none, *isnew = o.isnew;
    Node *fresh = bin(kv, OP_MUL, o.probs, const_f32(kv, (float)(1 - CASCADE_BETA)));
    Node *ema = bin(kv, OP_ADD, bin(kv, OP_MUL, score, const_f32(kv, (float)CASCADE_BETA)), fresh);
    Node *score1 = sel(kv, isnew, fresh, sel(kv, op_k(kv, OP_GE, lab, 2), ema, score));

    /* the new token joins the sinks, or goes down the sub-caches */
    Node *lab1 = sel(kv, and_(kv, isnew, op_k(kv, OP_LT, kv->p, pol->sinks)), i64s(kv, 1), lab);
    Node *active = op_k(kv, OP_GE, kv->p, pol->sinks), *carry = red(kv, OP_RMIN, sel(kv, isnew, idx, none), 0, 1);
    Node *eager = op_k(kv, OP_LE, kv->p, pol->budget);
    Node *q = op_k(kv, OP_SUB, kv->p, pol->sinks);
    for (int64_t i = 0; i < pol->ncascade; i++) {
        int64_t every = (int64_t)1 << i;
        Node *due = op_k(kv, OP_EQ, bin(kv, OP_SUB, q, op_k(kv, OP_MUL, op_k(kv, OP_DIV, q, every), every)), 0);
        Node *accept = or_(kv, eager, due);
        Node *member = op_k(kv, OP_EQ, lab1, 2 + i);
        Node *count = red(kv, OP_SUM, sel(kv, member, const_f32(kv, 1), const_f32(kv, 0)), 0, 1);
        Node *room = bin(kv, OP_LT, count, const_f32(kv, (float)pol->window));
        Node *empty = bin(kv, OP_LT, count, const_f32(kv, 0.5f));
        Node *oldest = slot_of_extreme(kv, OP_RMIN, pos1, member, idx, none);
        Node *newest = slot_of_extreme(kv, OP_RMAX, pos1, member, idx, none);
        Node *nsafe = bin(kv, OP_MINIMUM, newest, i64s(kv, P - 1)); /* read only when it exists */
        Node *wins = bin(kv, OP_GE, ir_gather(kv->g, score1, carry, 0, loc, NULL),
                         ir_gather(kv->g, score1, nsafe, 0, loc, NULL));
        Node *passes = and_(kv, and_(kv, active, accept), not_(kv, room));     /* keeps it, gives up its oldest */
        Node *keeps = and_(kv, active, or_(kv, accept, or_(kv, empty, wins))); /* the carried token stays here */
        Node *swaps = and_(kv, and_(kv, active, not_(kv, or_(kv, accept, empty))), wins);
        Node *drops = and_(kv, active, not_(kv, or_(kv, accept, or_(kv, empty, wins))));
        Node *at_carry = bin(kv, OP_EQ, idx, carry);
        lab1 = sel(kv, and_(kv, at_carry, keeps), i64s(kv, 2 + i), lab1);
        lab1 = sel(kv, and_(kv, at_carry, drops), i64s(kv, 0), lab1);
        lab1 = sel(kv, and_(kv, bin(kv, OP_EQ, idx, newest), swaps), i64s(kv, 0), lab1);
        carry = sel(kv, passes, oldest, carry);
        active = passes;
    }
    lab1 = sel(kv, and_(kv, bin(kv, OP_EQ, idx, carry), active), i64s(kv, 0), lab1); /* off the last sub-cache */
    Node *held = op_k(kv, OP_GT, lab1, 0);
    ir_add_update(kv->g, pos->name, sel(kv, held, pos1, i64s(kv, 0)));
    ir_add_update(kv->g, lab->name, lab1);
    ir_add_update(kv->g, score->name, sel(kv, held, score1, const_f32(kv, 0)));
    return o.out;
}

/* Probabilities sc [batch..., 1, n] of attention x summed over the query heads that share a KV head
 * (the batch axes where k has size 1, or none, and the result more) and reshaped to k's batch dims +
 * [n]: one row per KV head. */
static Node *per_kv_head(Kv *kv, const Node *x, Node *sc, Dim n)
{
    const Node *k = x->in[1];
    int r = sc->rank - 2, kb = k->rank - 2;
    for (int i = 0; i < r; i++) {
        int ki = i - (r - kb);
        if ((ki < 0 || dim_eq(k->shape[ki], dim_const(1))) && !dim_eq(sc->shape[i], dim_const(1)))
            sc = red(kv, OP_SUM, sc, i, 1);
    }
    Dim ms[IR_MAX_RANK];
    memcpy(ms, k->shape, sizeof(Dim) * (size_t)kb);
    ms[kb] = n;
    return ir_reshape(kv->g, sc, kb + 1, ms, sc->loc, NULL);
}

/* decode, h2o: attention x of layer with a slot map per KV head (H2O's real-drop cache,
 * FMInference/H2O h2o_hf/utils_real_drop, keeps its heavy hitters per head). The states cache.LAYER.pos
 * and cache.LAYER.acc (k's batch dims + [S], S = B + 1) hold each slot's position + 1 (0: empty) and
 * the attention it has received, summed over the queries since it came and over the query heads of
 * its KV head. The new token goes into each head's first empty slot (a one-hot select, as the heads
 * choose different slots), attention runs with the probabilities as a by-product, they are added to
 * acc, and when a head holds all S the slot with the least acc among those not among the R most
 * recent positions is emptied (H2OKVCache_LayerWise: topk of the scores outside the recent window, after
 * the step's scores were added). Returns attention's output (shape). */
static Node *attend_heavy(Kv *kv, const Node *x, Node *const *in, const Dim *shape, int layer)
{
    int64_t S = nslots(&kv->pol);
    SrcLoc loc = x->loc;
    const Node *ko = x->in[1];
    int kr = ko->rank, last = kr - 2; /* the slot axis of pos and acc */
    Node *p = kv->p;
    Node *pos = state_node(kv, layer, "pos", loc), *acc = state_node(kv, layer, "acc", loc);
    Node *idx = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(S)}, 0, NULL, loc);
    Node *none = i64s(kv, S);
    Node *slot = red(kv, OP_RMIN, sel(kv, bin(kv, OP_EQ, pos, i64s(kv, 0)), idx, none), last, 1);
    Node *hot = bin(kv, OP_EQ, idx, slot); /* [kb..., S] */
    Dim hs[IR_MAX_RANK];
    memcpy(hs, pos->shape, sizeof(Dim) * (size_t)pos->rank);
    hs[kr - 1] = dim_const(1);
    Node *hot4 = ir_reshape(kv->g, hot, kr, hs, loc, NULL); /* [kb..., S, 1] */
    Node *cached[2];
    for (int j = 1; j <= 2; j++) {
        Node *st = state_node(kv, layer, j == 1 ? "k" : "v", loc);
        cached[j - 1] = sel(kv, hot4, in[j], st);
        ir_add_update(kv->g, st->name, cached[j - 1]);
    }
    Node *pos1 = sel(kv, hot, op_k(kv, OP_ADD, p, 1), pos);
    Node *live = op_k(kv, OP_GT, pos1, 0);
    Node *m = sel(kv, live, const_f32(kv, 0), const_f32(kv, -INFINITY));
    memcpy(hs, pos->shape, sizeof(Dim) * (size_t)pos->rank);
    hs[kr - 2] = dim_const(1);
    hs[kr - 1] = dim_const(S);
    m = ir_reshape(kv->g, m, kr, hs, loc, NULL); /* [kb..., 1, S] */
    Node *probs;
    Node *out = attend_scored(kv, x, layer, in[0], cached, pos1, m, shape, &probs);
    Node *sc = per_kv_head(kv, x, probs, dim_const(S));
    Node *acc1 = bin(kv, OP_ADD, acc, sc);
    /* a full head empties its least attended slot outside the R most recent positions */
    Node *full = op_k(kv, OP_GT, red(kv, OP_RMIN, pos1, last, 1), 0);
    Node *old = sel(kv, live, bin(kv, OP_LE, pos1, op_k(kv, OP_SUB, p, kv->pol.recent - 1)), live);
    Node *least = red(kv, OP_RMIN, sel(kv, old, acc1, const_f32(kv, INFINITY)), last, 1);
    Node *victim = red(kv, OP_RMIN, sel(kv, old, sel(kv, bin(kv, OP_EQ, acc1, least), idx, none), none), last, 1);
    Node *gone = sel(kv, full, bin(kv, OP_EQ, idx, victim), full);
    ir_add_update(kv->g, pos->name, sel(kv, gone, i64s(kv, 0), pos1));
    ir_add_update(kv->g, acc->name, sel(kv, gone, const_f32(kv, 0), acc1));
    return out;
}

/* An update of the prefill entry (made after decode's nodes, which clone the original graph). */
static void prefill_update(Kv *kv, const char *state, Node *x)
{
    ir_add_update(kv->g, state, x);
    kv->g->outputs[kv->g->noutput - 1].entry = 0;
}

/* prefill, the policies that choose by attention: attention x (an original node) computes its
 * probabilities too, [batch..., T, T] in *probs; returns the attention node's output part, which
 * replaces x. */
static void prefill_scored(Kv *kv, Node *x, Node **probs)
{
    Attrs at = x->at;
    at.scores = 1;
    Node *a = ir_build(kv->g, OP_ATTENTION, &at, x->nin, x->in, NULL, x->loc, NULL);
    int r = a->rank;
    Dim dv = x->shape[r - 1];
    ir_replace_uses(kv->g, x, ir_slice(kv->g, a, r - 1, dim_const(0), dv, x->loc, NULL));
    *probs = ir_slice(kv->g, a, r - 1, dv, a->shape[r - 1], x->loc, NULL);
}

/* A constant of zeros (static shape). */
static Node *zeros(Kv *kv, DType dt, int rank, const Dim *shape, SrcLoc loc)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dim_value(shape[i]);
    void *data = arena_alloc(kv->g->arena, (size_t)n * (size_t)dtype_traits[dt].size);
    memset(data, 0, (size_t)n * (size_t)dtype_traits[dt].size);
    return ir_const(kv->g, dt, rank, shape, data, loc);
}

/* probabilities [batch..., T, T] averaged over the batch dims (the heads): [T, T] */
static Node *heads_mean(Kv *kv, Node *probs)
{
    int r = probs->rank;
    Dim T = probs->shape[r - 1];
    int64_t nb = 1;
    for (int i = 0; i < r - 2; i++)
        nb *= dim_value(probs->shape[i]);
    return red(kv, OP_MEAN, ir_reshape(kv->g, probs, 3, (Dim[]){dim_const(nb), T, T}, probs->loc, NULL), 0, 0);
}

/* [..., T] -> [..., T, 1] (at = 1) or [..., 1, T] (at = 0) */
static Node *unsqueeze(Kv *kv, Node *v, int at)
{
    Dim s[IR_MAX_RANK];
    memcpy(s, v->shape, sizeof(Dim) * (size_t)v->rank);
    s[v->rank] = dim_const(1);
    if (!at) {
        s[v->rank] = s[v->rank - 1];
        s[v->rank - 1] = dim_const(1);
    }
    return ir_reshape(kv->g, v, v->rank + 1, s, v->loc, NULL);
}

/* Each entry's rank (i64) in the descending order of v [..., T] (f32) along its last axis among the
 * entries where cand (bool, the same shape, or NULL: all) holds: the candidates with a larger value,
 * or an equal one at a lower index (the lower index first on ties). A T x T comparison: prefill
 * only. */
static Node *rank_desc(Kv *kv, Node *v, Node *cand)
{
    Dim T = v->shape[v->rank - 1];
    Node *ar = mk(kv, OP_ARANGE, DT_I64, 1, &T, 0, NULL, v->loc);
    Node *vi = unsqueeze(kv, v, 1), *vk = unsqueeze(kv, v, 0);
    Node *before = or_(kv, bin(kv, OP_GT, vk, vi),
                       and_(kv, bin(kv, OP_EQ, vk, vi), bin(kv, OP_LT, unsqueeze(kv, ar, 0), unsqueeze(kv, ar, 1))));
    if (cand)
        before = and_(kv, before, unsqueeze(kv, cand, 0));
    Node *n = red(kv, OP_SUM, sel(kv, before, const_f32(kv, 1), const_f32(kv, 0)), v->rank, 0); /* exact: T < 2^24 */
    return ir_cast(kv->g, n, DT_I64, v->loc);
}

/* base [rows..., S, rest...] with, in each row, slot idx[row, j] replaced by vals[row, j] (idx
 * [rows..., T], vals [rows..., T, rest...]; the later j wins, as a scatter's): one scatter over the
 * rows flattened, each row's slots offset by its row times S. */
static Node *scatter_rows(Kv *kv, Node *base, int axis, Node *idx, Node *vals)
{
    Graph *g = kv->g;
    SrcLoc loc = base->loc;
    int64_t N = 1, S = dim_value(base->shape[axis]);
    for (int i = 0; i < axis; i++)
        N *= dim_value(base->shape[i]);
    Dim T = idx->shape[idx->rank - 1], fb[IR_MAX_RANK], fv[IR_MAX_RANK];
    int rest = base->rank - axis - 1;
    fb[0] = dim_const(N * S);
    fv[0] = dim_mul_const(T, N);
    memcpy(fb + 1, base->shape + axis + 1, sizeof(Dim) * (size_t)rest);
    memcpy(fv + 1, base->shape + axis + 1, sizeof(Dim) * (size_t)rest);
    Dim rs[IR_MAX_RANK];
    memcpy(rs, base->shape, sizeof(Dim) * (size_t)axis);
    rs[axis] = dim_const(1);
    Node *row = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(N)}, 0, NULL, loc);
    row = ir_reshape(g, op_k(kv, OP_MUL, row, S), axis + 1, rs, loc, NULL); /* [rows..., 1] */
    Node *flat = ir_reshape(g, bin(kv, OP_ADD, idx, row), 1, fv, loc, NULL);
    Node *w = mk(kv, OP_SCATTER, base->dtype, rest + 1, fb, 3,
                 (Node *[]){ir_reshape(g, base, rest + 1, fb, loc, NULL), flat, ir_reshape(g, vals, rest + 1, fv, loc, NULL)},
                 loc);
    w->at.axis = 0;
    return ir_reshape(g, w, base->rank, base->shape, loc, NULL);
}

/* prefill: layer's caches of attention x (an original node) written: what the cache holds of each
 * prompt token (k and v, or with positions=cache their values before the positions) into slots,
 * [T] for every row of the cache or [kb..., T] per KV head. */
static void prefill_write(Kv *kv, const Node *x, int layer, Node *slots)
{
    for (int j = 1; j <= 2; j++) {
        Node *val = x->in[j];
        if (kv->pol.cachepos && kv->reg[3 * layer + j].x) /* the value before the positions */
            val = (Node *)kv->reg[3 * layer + j].x;
        Node *st = state_node(kv, layer, j == 1 ? "k" : "v", x->loc);
        Node *w;
        if (slots->rank > 1) {
            w = scatter_rows(kv, st, st->rank - 2, slots, val);
        } else {
            w = mk(kv, OP_SCATTER, st->dtype, st->rank, st->shape, 3, (Node *[]){st, slots, val}, x->loc);
            w->at.axis = st->rank - 2;
        }
        prefill_update(kv, st->name, w);
    }
}

/* prefill, tova: a prompt of at most B tokens fills slots 0..T-1; a longer one keeps the B that its
 * last query attends to most, averaged over the heads (TOVACache.reduce after the prompt's forward:
 * topk of the last row's mean weights), in the slots of their rank, the others go to the spare
 * slot B, which stays empty. Each layer chooses on its own. */
static void prefill_tova(Kv *kv, Node *x, int layer, Node *last)
{
    Graph *g = kv->g;
    SrcLoc loc = x->loc;
    int64_t B = kv->pol.budget, S = nslots(&kv->pol);
    Node *probs;
    prefill_scored(kv, x, &probs);
    Dim T = probs->shape[probs->rank - 1];
    Node *row = ir_slice(g, heads_mean(kv, probs), 0, dim_add_const(T, -1), T, loc, NULL); /* the last query's */
    Node *w = ir_reshape(g, row, 1, &T, loc, NULL); /* [T] */
    Node *ar = mk(kv, OP_ARANGE, DT_I64, 1, &T, 0, NULL, loc);
    Node *rank = rank_desc(kv, w, NULL);
    Node *slots = sel(kv, op_k(kv, OP_LT, last, B), ar, bin(kv, OP_MINIMUM, rank, i64s(kv, B)));
    prefill_write(kv, x, layer, slots);
    Node *base = zeros(kv, DT_I64, 1, (Dim[]){dim_const(S)}, loc);
    Node *p1 = sel(kv, op_k(kv, OP_LT, slots, B), op_k(kv, OP_ADD, ar, 1), i64s(kv, 0));
    Node *pos = mk(kv, OP_SCATTER, DT_I64, 1, base->shape, 3, (Node *[]){base, slots, p1}, loc);
    pos->at.axis = 0;
    prefill_update(kv, state_node(kv, layer, "pos", loc)->name, pos);
}

/* prefill, h2o: attention x (an original node, of layer) computes its probabilities too, and their
 * sums over the prompt's queries (per KV head) start acc. A prompt of at most B = H + R tokens fills
 * slots 0..T-1 of every head; a longer one keeps, per KV head, its R most recent tokens and, of the
 * others, the H with the largest sums (H2OKVCache_LayerWise after the prompt: topk of hh_score over
 * the tokens before the recent window, then the window), the heavy ones in the slots of their rank,
 * the recent ones in slots H..B-1, the rest to the spare slot B, which stays empty. */
static void prefill_heavy(Kv *kv, Node *x, int layer, Node *last)
{
    Graph *g = kv->g;
    SrcLoc loc = x->loc;
    const Policy *pol = &kv->pol;
    int64_t B = pol->budget;
    Node *probs;
    prefill_scored(kv, x, &probs);
    int r = probs->rank;
    Dim T = probs->shape[r - 1];
    Node *colsum = per_kv_head(kv, x, red(kv, OP_SUM, probs, r - 2, 1), T); /* [kb..., T] */
    Node *ar = mk(kv, OP_ARANGE, DT_I64, 1, &T, 0, NULL, loc);
    Node *first = op_k(kv, OP_SUB, last, pol->recent - 1); /* T - R: the first recent position */
    Node *cand = bin(kv, OP_LT, ar, first);
    Node *rank = rank_desc(kv, colsum, ir_expand(g, cand, colsum->rank, colsum->shape, loc, NULL));
    Node *recent = op_k(kv, OP_ADD, bin(kv, OP_SUB, ar, first), pol->heavy); /* H + (j - (T - R)) */
    Node *chosen = sel(kv, cand, bin(kv, OP_MINIMUM, rank, i64s(kv, pol->heavy)), recent);
    chosen = sel(kv, and_(kv, cand, op_k(kv, OP_GE, rank, pol->heavy)), i64s(kv, B), chosen);
    Node *slots = sel(kv, op_k(kv, OP_LT, last, B), ir_expand(g, ar, colsum->rank, colsum->shape, loc, NULL), chosen);
    prefill_write(kv, x, layer, slots);
    Node *pos = state_node(kv, layer, "pos", loc), *acc = state_node(kv, layer, "acc", loc);
    Node *kept = op_k(kv, OP_LT, slots, B);
    Node *zi = zeros(kv, DT_I64, pos->rank, pos->shape, loc), *zf = zeros(kv, DT_F32, acc->rank, acc->shape, loc);
    prefill_update(kv, pos->name, scatter_rows(kv, zi, pos->rank - 1, slots,
                                               sel(kv, kept, op_k(kv, OP_ADD, ar, 1), i64s(kv, 0))));
    prefill_update(kv, acc->name, scatter_rows(kv, zf, acc->rank - 1, slots, sel(kv, kept, colsum, const_f32(kv, 0))));
}

/* A constant i64 vector of n values (copied). */
static Node *i64_vec(Kv *kv, const int64_t *v, int64_t n, SrcLoc loc)
{
    int64_t *data = arena_alloc(kv->g->arena, sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    memcpy(data, v, sizeof(int64_t) * (size_t)n);
    return ir_const(kv->g, DT_I64, 1, (Dim[]){dim_const(n)}, data, loc);
}

/* prefill, cascade, a prompt longer than B: the tokens its sub-caches hold after the reference's
 * insertion of every prompt token in order (eager while p <= B, then the pow2 schedule; the scores
 * fixed, the prompt's own: the reference's update() with the prompt as one chunk), [N * W] i64,
 * sub-cache 0's W first. Which offer each sub-cache accepts, and so which entry it makes and which
 * later offer may replace that entry's token, depends on the position alone: it is worked out here
 * for every prompt length up to the bound of T, as tables of constants. Only the tokens behind the
 * entries depend on the scores: per sub-cache i, the tokens of all its entries are one vector G_i,
 * gathered from G_(i-1) (entry k takes the token sub-cache i - 1's entry src[k] gave up, or the one
 * offered at rstep[k] when that offer came before the prompt's end and its score is at least as
 * large), G_0 being the positions themselves; its last W entries made before the end are what it
 * holds. sc: the prompt scores [T] (f32), last: T - 1. */
static Node *cascade_long(Kv *kv, Node *sc, Node *last, SrcLoc loc)
{
    Graph *g = kv->g;
    const Policy *pol = &kv->pol;
    int64_t S = pol->sinks, W = pol->window, B = pol->budget, N = pol->ncascade;
    int64_t Tmax = g->syms[kv->tsym].bound, len = Tmax - S;
    int64_t *t = malloc(sizeof(int64_t) * (size_t)len), *nt = malloc(sizeof(int64_t) * (size_t)len);
    int64_t *src = malloc(sizeof(int64_t) * (size_t)len), *rsrc = malloc(sizeof(int64_t) * (size_t)len);
    int64_t *rstep = malloc(sizeof(int64_t) * (size_t)len);
    KILN_ASSERT(t && nt && src && rsrc && rstep && len > W);
    for (int64_t k = 0; k < len; k++)
        t[k] = src[k] = S + k; /* sub-cache 0: entry k is position S + k, made when it comes */
    Node *G = i64_vec(kv, src, len, loc), *held[16];
    Node *tcut = op_k(kv, OP_ADD, last, 1);
    for (int64_t i = 0;; i++) {
        /* its last W entries made before the prompt's end */
        Node *made = sel(kv, bin(kv, OP_LT, i64_vec(kv, t, len, loc), tcut), const_f32(kv, 1), const_f32(kv, 0));
        Node *n = ir_cast(g, red(kv, OP_SUM, made, 0, 1), DT_I64, loc);
        Node *at = bin(kv, OP_ADD, bin(kv, OP_SUB, n, i64s(kv, W)), mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(W)}, 0, NULL, loc));
        at = bin(kv, OP_MINIMUM, bin(kv, OP_MAXIMUM, at, i64s(kv, 0)), i64s(kv, len - 1));
        held[i] = ir_gather(g, G, at, 0, loc, NULL);
        if (i == N - 1)
            break;
        /* sub-cache i + 1: offer j is sub-cache i's entry j, given up when entry W + j is made */
        int64_t every = (int64_t)1 << (i + 1), n1 = 0, anyrep = 0;
        for (int64_t j = 0; W + j < len; j++) {
            int64_t st = t[W + j];
            if (st <= B || (st - S) % every == 0) { /* accepted: a new entry */
                nt[n1] = st;
                src[n1] = rsrc[n1] = j;
                rstep[n1++] = Tmax; /* no replacement (yet) */
            } else { /* not accepted: it may replace the newest entry's token */
                KILN_ASSERT(n1 > 0 && rstep[n1 - 1] == Tmax);
                rsrc[n1 - 1] = j;
                rstep[n1 - 1] = st;
                anyrep = 1;
            }
        }
        KILN_ASSERT(n1 >= W);
        Node *a = ir_gather(g, G, i64_vec(kv, src, n1, loc), 0, loc, NULL);
        if (anyrep) {
            Node *b = ir_gather(g, G, i64_vec(kv, rsrc, n1, loc), 0, loc, NULL);
            Node *sa = ir_gather(g, sc, bin(kv, OP_MINIMUM, a, last), 0, loc, NULL);
            Node *sb = ir_gather(g, sc, bin(kv, OP_MINIMUM, b, last), 0, loc, NULL);
            Node *ok = and_(kv, bin(kv, OP_LT, i64_vec(kv, rstep, n1, loc), tcut), bin(kv, OP_GE, sb, sa));
            a = sel(kv, ok, b, a);
        }
        G = a;
        memcpy(t, nt, sizeof(int64_t) * (size_t)n1);
        len = n1;
    }
    free(t);
    free(nt);
    free(src);
    free(rsrc);
    free(rstep);
    return ir_concat(g, (int)N, held, 0, loc, NULL);
}

/* prefill, cascade: attention x (an original node, of layer) computes its probabilities too, whose
 * reference prompt scores are score_j = sum over queries k >= j of (1 - beta) beta^(k - j) p[k][j]
 * (p averaged over the heads; cascade_attn_eager's ema_mask). A prompt of at most B tokens enters as
 * the reference's eager fill has it (by age only): the first S are sinks, then the newest W in
 * sub-cache 0, the W before in sub-cache 1, ..., token j in slot j. A longer one keeps what the
 * reference's insertion of its tokens in order keeps (cascade_long): sinks in slots 0..S-1, then
 * sub-cache i's W tokens, the spare slot B empty. The caches are gathered from the prompt's k and v
 * by the token each slot holds. */
static void prefill_cascade(Kv *kv, Node *x, int layer, Node *last)
{
    Graph *g = kv->g;
    const Policy *pol = &kv->pol;
    SrcLoc loc = x->loc;
    int64_t P = nslots(pol), B = pol->budget, S = pol->sinks, W = pol->window;
    Node *probs;
    prefill_scored(kv, x, &probs);
    Dim T = probs->shape[probs->rank - 1];
    probs = heads_mean(kv, probs);
    Node *ar = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){T}, 0, NULL, loc);
    Node *dist = bin(kv, OP_SUB, ir_reshape(g, ar, 2, (Dim[]){T, dim_const(1)}, loc, NULL),
                     ir_reshape(g, ar, 2, (Dim[]){dim_const(1), T}, loc, NULL)); /* k - j */
    Node *w = bin(kv, OP_MUL, bin(kv, OP_POW, const_f32(kv, (float)CASCADE_BETA), ir_cast(g, dist, DT_F32, loc)),
                  const_f32(kv, (float)(1 - CASCADE_BETA)));
    w = sel(kv, op_k(kv, OP_GE, dist, 0), w, const_f32(kv, 0));
    Node *sc = red(kv, OP_SUM, bin(kv, OP_MUL, probs, w), 0, 0); /* [T] */
    Node *idx = mk(kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_const(P)}, 0, NULL, loc);
    /* a short prompt: slot j holds token j; its sub-cache by age */
    Node *src = bin(kv, OP_MINIMUM, idx, last), *held = bin(kv, OP_LE, idx, last);
    Node *age = bin(kv, OP_SUB, last, idx);
    Node *lab = sel(kv, op_k(kv, OP_LT, idx, S), i64s(kv, 1), op_k(kv, OP_ADD, op_k(kv, OP_DIV, age, W), 2));
    if (g->syms[kv->tsym].bound > B) { /* a long one, when T can be longer than B */
        int64_t *pre = malloc(sizeof(int64_t) * (size_t)(S + 1)), *labs = malloc(sizeof(int64_t) * (size_t)P);
        KILN_ASSERT(pre && labs);
        for (int64_t k = 0; k < S; k++)
            pre[k] = k;
        pre[S] = 0; /* the spare slot: any token, not held */
        for (int64_t k = 0; k < P; k++)
            labs[k] = k < S ? 1 : k < B ? 2 + (k - S) / W : 0;
        Node *parts[3] = {i64_vec(kv, pre, S, loc), cascade_long(kv, sc, last, loc), i64_vec(kv, pre + S, 1, loc)};
        Node *lsrc = ir_concat(g, S ? 3 : 2, S ? parts : parts + 1, 0, loc, NULL);
        Node *longp = op_k(kv, OP_GE, last, B);
        src = sel(kv, longp, lsrc, src);
        held = sel(kv, longp, op_k(kv, OP_LT, idx, B), held);
        lab = sel(kv, longp, i64_vec(kv, labs, P, loc), lab);
        free(pre);
        free(labs);
    }
    for (int j = 1; j <= 2; j++) { /* what the cache holds of each slot's token */
        Node *val = x->in[j];
        if (kv->pol.cachepos && kv->reg[3 * layer + j].x) /* the value before the positions */
            val = (Node *)kv->reg[3 * layer + j].x;
        prefill_update(kv, state_node(kv, layer, j == 1 ? "k" : "v", loc)->name,
                       ir_gather(g, val, src, val->rank - 2, loc, NULL));
    }
    prefill_update(kv, state_node(kv, layer, "pos", loc)->name, sel(kv, held, op_k(kv, OP_ADD, src, 1), i64s(kv, 0)));
    prefill_update(kv, state_node(kv, layer, "lab", loc)->name, sel(kv, held, lab, i64s(kv, 0)));
    prefill_update(kv, state_node(kv, layer, "score", loc)->name,
                   sel(kv, held, ir_gather(g, sc, src, 0, loc, NULL), const_f32(kv, 0)));
}

/* The decode version of node x (its inputs already mapped); NULL after an error (reported). */
static Node *clone(Kv *kv, Node *x, int layer_of_attention)
{
    Graph *g = kv->g;
    if (!uses_t(kv, x)) {
        int shared = 1; /* the same value in both entries: a weight, or computed from weights alone */
        for (int j = 0; j < x->nin; j++)
            shared &= kv->map[x->in[j]->id] == x->in[j];
        if (shared && x->op != OP_INPUT)
            return x;
    }
    Node *in[256];
    KILN_ASSERT(x->nin <= 256);
    for (int j = 0; j < x->nin; j++)
        in[j] = kv->map[x->in[j]->id];
    Dim shape[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        if (!subst(kv, x->shape[i], &shape[i])) {
            diag_error(kv->d, x->loc, "kv-cache: node %%%d (%s) has a size that depends on a symbol other than %s",
                       x->id, op_info[x->op].name, g->syms[kv->tsym].name);
            return NULL;
        }
    switch (x->op) {
    case OP_INPUT: {
        Node *t = mk(kv, OP_INPUT, x->dtype, 1, (Dim[]){dim_const(1)}, 0, NULL, x->loc);
        t->name = "token";
        return t;
    }
    case OP_ARANGE: /* positions 0..T-1: the token's position */
        if (x->dtype == DT_I64)
            return kv->p;
        return mk(kv, OP_CAST, x->dtype, 1, shape, 1, &kv->p, x->loc);
    case OP_CAUSAL_MASK:
        diag_error(kv->d, x->loc, "kv-cache: a causal_mask that fuse-attention did not fuse (%%%d): the pass needs "
                   "every attention fused (see --explain fuse-attention)", x->id);
        return NULL;
    case OP_SLICE:
        if (!uses_t(kv, x->in[0])) { /* a position table sliced [0:T]: its row p */
            if (!dim_eq(x->at.start, dim_const(0)) || !is_t(kv, x->at.end)) {
                diag_error(kv->d, x->loc, "kv-cache: slice %%%d of a table by the token count is not [0:%s]",
                           x->id, g->syms[kv->tsym].name);
                return NULL;
            }
            Node *r = mk(kv, OP_GATHER, x->dtype, x->rank, shape, 2, (Node *[]){in[0], kv->p}, x->loc);
            r->at.axis = x->at.axis;
            r->at.check = CHECK_POSITIONS; /* past the table: the entry's code says so */
            return r;
        }
        break;
    case OP_ATTENTION: {
        /* what the cache holds of the new token: k and v, or with positions=cache their values before
         * the positions apply */
        Node *held[3] = {in[0], in[1], in[2]};
        for (int j = 1; j <= 2 && kv->pol.cachepos; j++)
            if (kv->reg[3 * layer_of_attention + j].x)
                held[j] = kv->map[kv->reg[3 * layer_of_attention + j].x->id];
        if (kv->pol.kind == KV_TOVA)
            return attend_evicting(kv, x, held, shape, layer_of_attention);
        if (kv->pol.kind == KV_H2O)
            return attend_heavy(kv, x, held, shape, layer_of_attention);
        if (kv->pol.kind == KV_CASCADE)
            return attend_cascade(kv, x, held, shape, layer_of_attention);
        /* the new k and v into their slot, then attention over every slot */
        Node *cached[4], *qkv[3];
        cache_write(kv, x, held, layer_of_attention, kv->slot, cached);
        if (kv->pol.q8 && !kv->pol.cachepos) { /* attention reads the int8 caches with their scales */
            Node *a = mk(kv, OP_ATTENTION, x->dtype, x->rank, shape, 7,
                         (Node *[]){in[0], cached[0], cached[1], decode_mask(kv, x->loc), kv->nread, cached[2], cached[3]},
                         x->loc);
            a->at = x->at;
            a->at.causal = 0;
            return a;
        }
        for (int j = 0; j < 2 && kv->pol.q8; j++) /* positions=cache: the keys are rotated again, in f32 */
            cached[j] = mk(kv, OP_DEQUANTIZE, DT_F32, cached[j]->rank, cached[j]->shape, 2,
                           (Node *[]){cached[j], cached[j + 2]}, x->loc);
        positioned(kv, layer_of_attention, in[0], cached, kv->pol.cachepos ? ring_pos1(kv, x->loc) : NULL, qkv);
        Node *a = mk(kv, OP_ATTENTION, x->dtype, x->rank, shape, 5,
                     (Node *[]){qkv[0], qkv[1], qkv[2], decode_mask(kv, x->loc), kv->nread}, x->loc);
        a->at = x->at;
        a->at.causal = 0;
        return a;
    }
    default: break;
    }
    Node *y = mk(kv, x->op, x->dtype, x->rank, shape, x->nin, in, x->loc);
    y->at = x->at;
    y->name = x->name;
    if ((op_info[x->op].attrs & A_RANGE) && (!subst(kv, x->at.start, &y->at.start) || !subst(kv, x->at.end, &y->at.end))) {
        diag_error(kv->d, x->loc, "kv-cache: node %%%d has a range that depends on another symbol", x->id);
        return NULL;
    }
    return y;
}

/* --explain kv-cache: how the cache treats the positions, per attention (a note at each) */
static void explain_positions(const Kv *kv)
{
    int rotary = 0;
    for (int i = 0; i < kv->n0; i++)
        rotary |= kv->g->nodes[i]->op == OP_ARANGE && uses_t(kv, kv->g->nodes[i]);
    for (int i = 0, l = 0; i < kv->n0; i++) {
        const Node *a = kv->g->nodes[i];
        if (a->op != OP_ATTENTION)
            continue;
        const KvRegion *r = kv->reg ? &kv->reg[3 * l + 1] : NULL;
        if (r && r->x)
            diag_note(kv->d, a->loc, "kv-cache: attention %%%d (layer %d): positions=cache: the cache holds its k "
                      "before the positions apply (%s %%%d; %d nodes between it and k, computed again over every "
                      "slot at each decode step with the slots' ranks among the held tokens), and its q takes the "
                      "new token's rank", i, l, op_info[r->x->op].name, r->x->id, r->n);
        else if (kv->pol.kind == KV_FULL)
            diag_note(kv->d, a->loc, "kv-cache: attention %%%d (layer %d): policy full: every token keeps its position "
                      "(positions=cache would change nothing)", i, l);
        else if (rotary)
            diag_note(kv->d, a->loc, "kv-cache: attention %%%d (layer %d): positions are absolute: the cache holds k "
                      "after its rotary embedding, each token at the position it was given; ,positions=cache would "
                      "rank them within the cache", i, l);
        else
            diag_note(kv->d, a->loc, "kv-cache: attention %%%d (layer %d): positions are absolute (no T-arange: "
                      "a learned position table, read at each token's position, or none)", i, l);
        l++;
    }
}

int pass_kv_cache(Graph *g, const PassOptions *o)
{
    if (!o->kv_cache)
        return 0;
    Kv kv = {.g = g, .d = o->d, .n0 = g->nnode, .tsym = -1};
    SrcLoc noloc = {0, 0, 0};
    /* what the pass needs of the model */
    if (g->nentry || g->nstate) {
        diag_fatal(o->d, "kv-cache: the model already has state or entries");
        return 0;
    }
    int nattn = 0;
    for (int i = 0; i < g->nnode; i++) {
        const Node *x = g->nodes[i];
        const char *why = x->op == OP_ATTENTION ? attention_problem(&kv, x) : NULL;
        if (x->op == OP_CAUSAL_MASK)
            why = "it is a causal_mask that fuse-attention did not fuse into an attention (see --explain "
                  "fuse-attention)";
        if (why) {
            diag_error(o->d, x->loc, "kv-cache: %s %%%d stops the pass: %s", op_info[x->op].name, i, why);
            return 0;
        }
        nattn += x->op == OP_ATTENTION;
    }
    if (!nattn) {
        diag_fatal(o->d, "kv-cache: the model has no causal attention (after fuse-attention) whose keys and "
                         "values could be cached");
        return 0;
    }
    const Node *tok = g->ninput == 1 ? g->inputs[0] : NULL;
    if (!tok || !dtype_traits[tok->dtype].is_int || tok->rank != 1 || !dim_is_sym(tok->shape[0], -1)) {
        diag_fatal(o->d, "kv-cache: a model with a cache has one input, its token ids: an integer tensor [T] "
                         "with a symbolic T (this one has %d input%s)", g->ninput, g->ninput == 1 ? "" : "s");
        return 0;
    }
    kv.tsym = dim_term(tok->shape[0], 0, NULL);
    for (int i = 0; i < g->nnode; i++) /* again, now that T is the tokens' symbol */
        if (g->nodes[i]->op == OP_ATTENTION && attention_problem(&kv, g->nodes[i])) {
            diag_error(o->d, g->nodes[i]->loc, "kv-cache: attention %%%d stops the pass: %s", i,
                       attention_problem(&kv, g->nodes[i]));
            return 0;
        }
    if (parse_policy(o->kv_cache, g->syms[kv.tsym].bound, &kv.pol, o->d))
        return 0;
    for (int i = 0; i < g->nnode && kv.pol.q8; i++)
        if (g->nodes[i]->op == OP_ATTENTION && (g->nodes[i]->in[1]->dtype != DT_F32 || g->nodes[i]->in[2]->dtype != DT_F32)) {
            diag_error(o->d, g->nodes[i]->loc, "kv-cache: kv=int8 quantizes f32 keys and values; attention %%%d's are %s",
                       i, dtype_traits[g->nodes[i]->in[1]->dtype].name);
            return 0;
        }
    if (kv.pol.cachepos) {
        kv.reg = arena_alloc(g->arena, sizeof(KvRegion) * 3 * (size_t)nattn);
        if (kv_find_regions(g, kv.tsym, kv.n0, kv.reg, o->d))
            return 0;
    }
    if (o->explain && !strcmp(o->explain, "kv-cache"))
        explain_positions(&kv);
    int64_t B = kv.pol.budget;

    /* prefill: the model as it is, filling the cache */
    ir_add_entry(g, "prefill");
    ir_add_state(g, "count", DT_I64, 1, (Dim[]){dim_const(1)});
    for (int i = 0, l = 0; i < kv.n0; i++) {
        Node *a = g->nodes[i];
        if (a->op != OP_ATTENTION)
            continue;
        for (int j = 1; j <= 2; j++) {
            Node *x = a->in[j];
            Dim cs[IR_MAX_RANK];
            cache_shape(&kv, x, x->rank - 2, cs);
            char name[64];
            snprintf(name, sizeof name, "cache.%d.%c", l, j == 1 ? 'k' : 'v');
            ir_add_state(g, name, kv.pol.q8 ? DT_I8 : x->dtype, x->rank, cs);
            if (kv.pol.q8) { /* a scale per cached row */
                cs[x->rank - 1] = dim_const(1);
                snprintf(name, sizeof name, "cache.%d.%cs", l, j == 1 ? 'k' : 'v');
                ir_add_state(g, name, DT_F32, x->rank, cs);
            }
        }
        if (kv.pol.kind == KV_TOVA || kv.pol.kind == KV_CASCADE) {
            char name[64];
            Dim ps = dim_const(nslots(&kv.pol));
            snprintf(name, sizeof name, "cache.%d.pos", l);
            ir_add_state(g, name, DT_I64, 1, &ps);
            if (kv.pol.kind == KV_CASCADE) {
                snprintf(name, sizeof name, "cache.%d.lab", l);
                ir_add_state(g, name, DT_I64, 1, &ps);
                snprintf(name, sizeof name, "cache.%d.score", l);
                ir_add_state(g, name, DT_F32, 1, &ps);
            }
        }
        if (kv.pol.kind == KV_H2O) { /* per KV head: k's batch dims, then the slots */
            const Node *k = a->in[1];
            Dim ms[IR_MAX_RANK];
            memcpy(ms, k->shape, sizeof(Dim) * (size_t)(k->rank - 2));
            ms[k->rank - 2] = dim_const(nslots(&kv.pol));
            char name[64];
            snprintf(name, sizeof name, "cache.%d.pos", l);
            ir_add_state(g, name, DT_I64, k->rank - 1, ms);
            snprintf(name, sizeof name, "cache.%d.acc", l);
            ir_add_state(g, name, DT_F32, k->rank - 1, ms);
        }
        l++;
    }
    Node *pos = mk(&kv, OP_ARANGE, DT_I64, 1, (Dim[]){dim_sym(kv.tsym)}, 0, NULL, noloc);
    Node *last = mk(&kv, OP_RMAX, DT_I64, 1, (Dim[]){dim_const(1)}, 1, &pos, noloc);
    last->at.axis = 0;
    last->at.keepdims = 1;
    Node *slots = slot_of(&kv, pos);
    if (kv.pol.kind == KV_FULL) /* a prompt longer than the budget: a named error */
        slots = checked(&kv, slots, op_k(&kv, OP_GE, last, B), 0, CHECK_BUDGET);
    for (int i = 0, l = 0; i < kv.n0; i++) {
        Node *a = g->nodes[i];
        if (a->op != OP_ATTENTION)
            continue;
        for (int j = 1; j <= 2 && !evicting(&kv.pol); j++) { /* those write their own */
            Node *x = a->in[j];
            if (kv.pol.cachepos && kv.reg[3 * l + j].x) /* the value before the positions */
                x = (Node *)kv.reg[3 * l + j].x;
            if (kv.pol.q8) {
                Node *sc;
                x = quant_rows(&kv, x, &sc);
                scatter_into(&kv, state_node(&kv, l, j == 1 ? "ks" : "vs", a->loc), slots, sc, a->loc);
            }
            scatter_into(&kv, state_node(&kv, l, j == 1 ? "k" : "v", a->loc), slots, x, a->loc);
        }
        l++;
    }
    ir_add_update(g, "count", op_k(&kv, OP_ADD, op_k(&kv, OP_ADD, last, 1), 1)); /* T + 1 */

    /* decode: the model again for one token at position p = count - 1 */
    ir_add_entry(g, "decode");
    Node *count = mk(&kv, OP_STATE, DT_I64, 1, (Dim[]){dim_const(1)}, 0, NULL, noloc);
    count->name = "count";
    kv.p = op_k(&kv, OP_SUB, count, 1);
    kv.p = checked(&kv, kv.p, op_k(&kv, OP_LT, kv.p, 0), 0, CHECK_PREFILL);
    if (kv.pol.kind == KV_FULL) /* the position too, so that a position table is read in range */
        kv.p = checked(&kv, kv.p, op_k(&kv, OP_GE, kv.p, B), B - 1, CHECK_BUDGET);
    kv.slot = slot_of(&kv, kv.p);
    kv.nread = ir_binary(g, OP_MINIMUM, op_k(&kv, OP_ADD, kv.p, 1), const_i64(&kv, nslots(&kv.pol)), noloc, NULL);
    kv.map = calloc((size_t)kv.n0 + 1, sizeof(Node *));
    KILN_ASSERT(kv.map);
    int nout0 = g->noutput;
    int ok = 1;
    for (int i = 0, l = 0; i < kv.n0 && ok; i++) {
        Node *x = g->nodes[i];
        ir_set_origin(g, x); /* decode's nodes in the layer and scope of what they copy (choose-quant's units) */
        kv.map[i] = clone(&kv, x, l);
        ok = kv.map[i] != NULL;
        l += x->op == OP_ATTENTION;
    }
    ir_set_origin(g, NULL);
    if (ok) {
        for (int k = 0; k < nout0; k++)
            if (g->outputs[k].entry == 0 && !g->outputs[k].update)
                ir_add_output(g, g->outputs[k].name, kv.map[g->outputs[k].node->id]);
        ir_add_update(g, "count", op_k(&kv, OP_ADD, count, 1));
    }
    free(kv.map);
    if (!ok)
        return 0;
    if (evicting(&kv.pol)) { /* prefill's attentions compute their probabilities too */
        for (int i = 0, l = 0; i < kv.n0; i++) {
            if (g->nodes[i]->op != OP_ATTENTION)
                continue;
            if (kv.pol.kind == KV_TOVA)
                prefill_tova(&kv, g->nodes[i], l, last);
            else if (kv.pol.kind == KV_H2O)
                prefill_heavy(&kv, g->nodes[i], l, last);
            else
                prefill_cascade(&kv, g->nodes[i], l, last);
            l++;
        }
        ir_toposort(g);
    }
    ir_compact(g);
    if (o->log)
        fprintf(o->log, "kv-cache: policy %s, %lld slots per layer, %d layers cached\n", o->kv_cache, (long long)B, nattn);
    return nattn;
}
