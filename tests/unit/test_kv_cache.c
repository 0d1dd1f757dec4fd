/* test_kv_cache.c: the kv-cache pass (passes/kv_cache.c) in the interpreter.
 *
 * For the tiny GPT-2 (learned positions), the Llama-style model (rotary, grouped-query) and the
 * trained charlm, compiled with --kv-cache full:
 *   - policy full: for prefill lengths P = 1, 1+STEP, ... (every length natively, in
 *     tests/models/kv_cache.sh; here every fifth, to keep the sanitized build fast), prefill
 *     tokens[0:P] and then decode tokens[P], tokens[P+1], ... up to the test's length; each step's
 *     logits must equal a full recompute of the prefix (the prefill entry on tokens[0:t+1], last
 *     row) within 1e-5 relative to the largest logit of the row. Prefill's own logits are the
 *     original model's (the same nodes).
 *   - decode before any prefill fails, and so does a decode past the cache's budget (full), each
 *     with the interpreter's named message (the kv-cache pass's checks).
 *   - window:W and sinks:S,window:W (GPT-2 and the Llama-style model) against an independent
 *     step-by-step reference: which positions the cache holds after each step is simulated here with a
 *     list (append, evict the oldest, or the oldest after the S sinks), and the model as the frontend
 *     made it, its causal mask replaced by an input mask whose row i lets position i see exactly
 *     those positions (the prompt's rows: the prompt, causally), gives each step's expected logits:
 *     every layer of position i then reads what the cache would hold (masked_model).
 *   - tova:B (GPT-2 and the Llama-style model) against an independent step-by-step reference
 *     (test_tova): each layer's cache a list of positions, the frontend's model with a mask input
 *     per layer and each layer's softmax as an output (probs_model); the reference evicts the
 *     position the new token attends to least, averaged over the heads, once a layer holds B + 1.
 *     After each decode step the positions in kiln's cache.L.pos and the logits (1e-5) must agree.
 *   - h2o:heavy=H,recent=R likewise (test_h2o), per layer and KV head: positions with their summed
 *     attention, a mask per query head; the positions, kiln's cache.L.acc and the logits must agree.
 *   - cascade:B,n=N,sinks=S likewise (test_cascade), against the authors' ring buffers kept in the
 *     test (cascade_insert) with their scores in double: positions per layer and logits.
 *   - positions=cache (test_cachepos): on the Llama-style model with one layer, whose keys and values
 *     depend on their own token alone, each decode step's logits equal the model run over the tokens
 *     the cache holds at positions 0..n-1 (1e-5), for window, sinks, tova (whose evictions are
 *     checked against that recompute's attention too), h2o with heavy=0 and cascade; window:8 with
 *     positions=cache on the two-layer model against the masked reference above (rotary attention
 *     depends on distances, which a window keeps); full,positions=cache is the graph of full.
 *   - a model without causal attention (ViT), a policy that cannot be read and positions=cache on a
 *     model with a learned position table are refused with a clear message.
 * With `--dump MODEL POLICY N P` it prints instead what the interpreter computes for
 * tests/models/native/use_kv.c (--dump)'s sequence, which tests/models/kv_policies.sh compares.
 */
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

typedef struct Model {
    const char *name, *path, *weights;
    Define defines[8];
    int ndefine;
    int ctx;   /* the bound of T: the cache's budget with policy full */
    int vocab; /* token ids drawn from [0, vocab) */
    int ntest; /* tokens of the test sequence (<= ctx) */
} Model;

static Graph *compile(const Model *m, const char *policy, Diag *d)
{
    FrontendOptions fo = {.weights_override = m->weights, .ndefine = m->ndefine, .defines = m->defines};
    Graph *g = fe_compile(m->path, &fo, d);
    if (!g)
        return NULL;
    PassOptions po = {.d = d, .kv_cache = policy};
    if (ir_verify(g, d) || pass_pipeline(g, "canonicalize,fuse-attention", NULL, NULL, &po)) {
        if (g->weights)
            st_close(g->weights);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static void release(Graph *g)
{
    if (g && g->weights)
        st_close(g->weights);
    ir_graph_free(g);
}

/* prefill(tokens[0:n]) into st; the logits' last row into row (V floats); 0 on success */
static int prefill(const Graph *g, IrState *st, const int32_t *tokens, int n, float *row, int V, Diag *d)
{
    HostTensor in = {DT_I32, 1, {n}, (void *)tokens}, out[1];
    memset(out, 0, sizeof out);
    if (ir_interp_entry(g, ir_find_entry(g, "prefill"), st, &in, out, d))
        return -1;
    memcpy(row, (float *)out[0].data + (size_t)(n - 1) * (size_t)V, sizeof(float) * (size_t)V);
    free(out[0].data);
    return 0;
}

static int decode(const Graph *g, IrState *st, int32_t token, float *row, int V, Diag *d)
{
    HostTensor in = {DT_I32, 1, {1}, &token}, out[1];
    memset(out, 0, sizeof out);
    if (ir_interp_entry(g, ir_find_entry(g, "decode"), st, &in, out, d))
        return -1;
    memcpy(row, out[0].data, sizeof(float) * (size_t)V);
    free(out[0].data);
    return 0;
}

/* the largest |a - b| over the row, relative to the largest |b| */
static double rel_err(const float *a, const float *b, int V)
{
    double e = 0, m = 0;
    for (int i = 0; i < V; i++) {
        e = fmax(e, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? e / m : e;
}

/* n token ids in [0, vocab) from a linear congruential generator seeded with seed (malloc'ed) */
static int32_t *tokens(int n, uint32_t seed, int vocab)
{
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)vocab);
    }
    return tok;
}

/* Decodes tok[t] (after a prompt of P) and checks its logits against want's row t within 1e-5
 * relative to the row's largest logit; the worst error and the steps are counted. 0 when decode ran. */
static int decode_checked(const Graph *g, IrState *st, const char *what, const int32_t *tok, int t, int P,
                          const float *want, float *row, int V, Diag *d, double *worst, int *steps)
{
    if (decode(g, st, tok[t], row, V, d)) {
        CHECK(0, "%s: decode of position %d failed", what, t);
        return -1;
    }
    double e = rel_err(row, want + (size_t)t * (size_t)V, V);
    *worst = fmax(*worst, e);
    ++*steps;
    CHECK(e <= 1e-5, "%s: decode of position %d after a prompt of %d: relative error %.3g", what, t, P, e);
    return 0;
}

/* The reference model (probs_model) over tokens 0..t1-1 with each layer's mask sub[l] (its first
 * input's shape with the last two dimensions t1, layer l's at sub + l stride): out[0] the logits, out[1 + l] layer l's
 * probabilities. 0 on success. */
/* layer l's cache state "cache.l.FIELD" after the steps run on st */
static const void *cache_state(const Graph *g, IrState *st, const char *field, int l)
{
    char name[32];
    snprintf(name, sizeof name, "cache.%d.%s", l, field);
    return ir_state_data(st, ir_find_state(g, name));
}

static int run_probs(const Graph *ref, const int32_t *tok, int t1, int L, float *sub, size_t stride, HostTensor *in,
                     HostTensor *out, Diag *d)
{
    const Node *mk0 = ref->inputs[1];
    in[0] = (HostTensor){DT_I32, 1, {t1}, (void *)tok};
    for (int l = 0; l < L; l++) {
        in[l + 1] = (HostTensor){DT_F32, mk0->rank, {0}, sub + (size_t)l * stride};
        for (int r = 0; r < mk0->rank - 2; r++)
            in[l + 1].shape[r] = dim_value(mk0->shape[r]);
        in[l + 1].shape[mk0->rank - 2] = in[l + 1].shape[mk0->rank - 1] = t1;
    }
    memset(out, 0, sizeof(HostTensor) * (size_t)(L + 1));
    int rc = ir_interp(ref, in, out, d);
    CHECK(!rc, "the reference failed");
    return rc;
}

/* The reference (probs_model) over the prompt tokens 0..P-1 alone, every layer's rows causal (masks:
 * L layers of `per` floats, [heads..., n, n] or [n, n]; the prompt's rows are set here): the prompt's
 * own probabilities, which the policies that choose by attention read when the prompt is longer
 * than the cache. out[1 + l]: layer l's [heads..., P, P]. */
static int run_prompt(const Graph *ref, const int32_t *tok, int P, int n, int L, float *masks, size_t per, float *sub,
                      HostTensor *in, HostTensor *out, Diag *d)
{
    int nb = (int)(per / ((size_t)n * (size_t)n));
    for (int l = 0; l < L; l++)
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < P; i++)
                for (int j = 0; j < P; j++)
                    sub[(size_t)l * per + ((size_t)b * P + i) * P + j] = masks[(size_t)l * per + ((size_t)b * n + i) * n + j] =
                        j <= i ? 0 : -INFINITY;
    return run_probs(ref, tok, P, L, sub, per, in, out, d);
}

/* The k largest of w[0..n) (the lower index first on ties), ascending by index, into keep. */
static void top_k(const double *w, int n, int k, int *keep)
{
    unsigned char *taken = calloc((size_t)n, 1);
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int j = 0; j < n; j++)
            if (!taken[j] && (best < 0 || w[j] > w[best]))
                best = j;
        taken[best] = 1;
    }
    for (int j = 0, m = 0; j < n; j++)
        if (taken[j])
            keep[m++] = j;
    free(taken);
}

/* The reference over the n tokens seq with no mask of its own (the causal one only): out[0] the
 * logits, out[1] the probabilities (malloc'ed). 0 on success. */
static int recompute(const Graph *ref, const int32_t *seq, int n, float *zero, HostTensor *out, Diag *d)
{
    HostTensor in[2] = {{DT_I32, 1, {n}, (void *)seq}, {DT_F32, 2, {n, n}, zero}};
    memset(out, 0, sizeof(HostTensor) * 2);
    int rc = ir_interp(ref, in, out, d);
    CHECK(!rc, "the reference recompute over %d tokens failed", n);
    return rc;
}

static int vocab_of(const Graph *g)
{
    const Output *o = &g->outputs[0];
    return (int)dim_value(o->node->shape[o->node->rank - 1]);
}

static void test_full(const Model *m, int step)
{
    Diag *d = diag_new(stderr);
    Graph *g = compile(m, "full", d);
    CHECK(g, "%s: does not compile with --kv-cache full", m->name);
    if (!g) {
        diag_free(d);
        return;
    }
    CHECK(g->nentry == 2 && ir_find_entry(g, "prefill") == 0 && ir_find_entry(g, "decode") == 1, "%s: entries", m->name);
    int V = vocab_of(g), C = m->ntest;
    int32_t *tok = tokens(m->ctx, 12345u, m->vocab);
    /* the recomputed logits of every prefix */
    float *ref = malloc(sizeof(float) * (size_t)V * (size_t)C), *row = malloc(sizeof(float) * (size_t)V);
    IrState *st = ir_state_new(g);
    for (int t = 0; t < C; t++)
        CHECK(!prefill(g, st, tok, t + 1, ref + (size_t)t * (size_t)V, V, d), "%s: prefill of %d", m->name, t + 1);
    double worst = 0;
    int steps = 0;
    for (int P = 1; P <= C; P += step) {
        ir_state_reset(st);
        if (prefill(g, st, tok, P, row, V, d))
            continue;
        for (int t = P; t < C; t++) {
            if (decode(g, st, tok[t], row, V, d)) {
                CHECK(0, "%s: decode at %d after a prefill of %d failed", m->name, t, P);
                break;
            }
            double e = rel_err(row, ref + (size_t)t * (size_t)V, V);
            worst = fmax(worst, e);
            steps++;
            CHECK(e <= 1e-5, "%s: decode of position %d after a prefill of %d: relative error %.3g", m->name, t, P, e);
        }
    }
    printf("%s full: %d decode steps, worst relative error %.3g\n", m->name, steps, worst);

    /* bad use: decode before prefill, decode past the budget */
    ir_state_reset(st);
    char *msgs = NULL;
    size_t nmsg = 0;
    FILE *mem = open_memstream(&msgs, &nmsg);
    Diag *said = diag_new(mem);
    CHECK(decode(g, st, tok[0], row, V, said) != 0, "%s: decode before prefill succeeded", m->name);
    fflush(mem);
    CHECK(msgs && strstr(msgs, "decode before prefill: the KV cache is empty"), "%s: decode before prefill said:\n%s",
          m->name, msgs);
    ir_state_reset(st);
    CHECK(!prefill(g, st, tok, m->ctx, row, V, d), "%s: prefill of %d", m->name, m->ctx);
    CHECK(decode(g, st, tok[0], row, V, said) != 0, "%s: decode past the budget of %d succeeded", m->name, m->ctx);
    fflush(mem);
    CHECK(msgs && strstr(msgs, "the KV cache's budget is reached"), "%s: decode past the budget said:\n%s", m->name,
          msgs);
    diag_free(said);
    fclose(mem);
    free(msgs);
    ir_state_free(st);
    free(ref);
    free(row);
    free(tok);
    release(g);
    diag_free(d);
}

/* The model with every causal_mask replaced by one input mask f32[T, T] (0: visible, -inf: not). */
static Graph *masked_model(const Model *m, Diag *d)
{
    FrontendOptions fo = {.weights_override = m->weights, .ndefine = m->ndefine, .defines = m->defines};
    Graph *g = fe_compile(m->path, &fo, d);
    if (!g)
        return NULL;
    int n = g->nnode;
    Node *mask = NULL, **cm = malloc(sizeof(Node *) * (size_t)n);
    int ncm = 0;
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->op == OP_CAUSAL_MASK)
            cm[ncm++] = g->nodes[i];
    for (int i = 0; i < ncm; i++) {
        if (!mask) {
            mask = ir_node(g, OP_INPUT, DT_F32, 2, cm[i]->shape, 0, NULL, cm[i]->loc);
            mask->name = "mask";
        }
        ir_replace_uses(g, cm[i], mask);
    }
    free(cm);
    ir_toposort(g);
    ir_compact(g);
    CHECK(mask && !ir_verify(g, d), "%s: no causal mask to replace, or the masked model does not verify", m->name);
    return g;
}

/* vis[i*n + j] = 1 when position i sees position j: the prompt (i < P) causally, later positions what
 * the cache holds once i is in it. The cache is a list in arrival order: past the budget the oldest
 * entry goes (window), or the oldest after the first S (sinks). */
static void simulate(int S, int W, int P, int n, unsigned char *vis)
{
    int *list = malloc(sizeof(int) * (size_t)(n + 1)), len = 0;
    memset(vis, 0, (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++) {
        list[len++] = i;
        if (len > S + W) {
            memmove(&list[S], &list[S + 1], sizeof(int) * (size_t)(len - S - 1));
            len--;
        }
        for (int j = 0; j <= i; j++)
            vis[i * n + j] = i < P;
        for (int k = 0; k < len && i >= P; k++)
            vis[i * n + list[k]] = 1;
    }
    free(list);
}

static void test_policy(const Model *m, const char *policy, int S, int W)
{
    Diag *d = diag_new(stderr);
    char what[96];
    snprintf(what, sizeof what, "%s %s", m->name, policy);
    Graph *g = compile(m, policy, d), *ref = masked_model(m, d);
    CHECK(g && ref, "%s: %s does not compile", m->name, policy);
    int n = m->ntest, V = g ? vocab_of(g) : 0;
    int32_t *tok = tokens(n, 777u, m->vocab);
    float *mask = malloc(sizeof(float) * (size_t)n * (size_t)n), *row = malloc(sizeof(float) * (size_t)V);
    unsigned char *vis = malloc((size_t)n * (size_t)n);
    double worst = 0;
    int steps = 0;
    const int prompts[] = {1, W / 2 + 1, S + W + 3};
    for (int pi = 0; g && ref && pi < 3; pi++) {
        int P = prompts[pi];
        simulate(S, W, P, n, vis);
        for (int i = 0; i < n * n; i++)
            mask[i] = vis[i] ? 0.0f : -INFINITY;
        HostTensor in[2] = {{DT_I32, 1, {n}, tok}, {DT_F32, 2, {n, n}, mask}}, out[1];
        memset(out, 0, sizeof out);
        if (ir_interp(ref, in, out, d)) {
            CHECK(0, "%s: the masked reference failed", m->name);
            break;
        }
        const float *want = out[0].data;
        IrState *st = ir_state_new(g);
        CHECK(!prefill(g, st, tok, P, row, V, d), "%s %s: prefill of %d", m->name, policy, P);
        CHECK(rel_err(row, want + (size_t)(P - 1) * (size_t)V, V) <= 1e-5, "%s %s: prefill's last row", m->name, policy);
        for (int t = P; t < n; t++) {
            if (decode_checked(g, st, what, tok, t, P, want, row, V, d, &worst, &steps))
                break;
        }
        ir_state_free(st);
        free(out[0].data);
    }
    printf("%s %s: %d decode steps against the step-by-step reference, worst relative error %.3g\n", m->name, policy,
           steps, worst);
    free(tok);
    free(mask);
    free(row);
    free(vis);
    release(g);
    release(ref);
    diag_free(d);
}

/* The reference for the policies that evict by attention: the model as the frontend made it, where
 * each layer's softmax (in graph order) reads its scores plus an input mask of its own, `mask.l`
 * f32[T, T] (per_head: the scores' shape, [heads..., T, T]; 0: visible, -inf: not; added to the
 * causal mask already there), and is an output too,
 * `probs.l`, after the logits. Row i of mask.l lets position i see, at layer l, exactly what layer l's
 * cache held when i was decoded (and i itself). */
static Graph *probs_model(const Model *m, int per_head, int *nlayer, Diag *d)
{
    FrontendOptions fo = {.weights_override = m->weights, .ndefine = m->ndefine, .defines = m->defines};
    Graph *g = fe_compile(m->path, &fo, d);
    if (!g)
        return NULL;
    int n = g->nnode, L = 0;
    for (int i = 0; i < n; i++) {
        Node *sm = g->nodes[i];
        if (sm->op != OP_SOFTMAX)
            continue;
        Node *x = sm->in[0];
        Node *mask = per_head ? ir_node(g, OP_INPUT, DT_F32, x->rank, x->shape, 0, NULL, x->loc)
                              : ir_node(g, OP_INPUT, DT_F32, 2, (Dim[]){x->shape[x->rank - 2], x->shape[x->rank - 1]},
                                        0, NULL, x->loc);
        char name[32];
        snprintf(name, sizeof name, "mask.%d", L);
        mask->name = arena_strdup(g->arena, name);
        sm->in[0] = ir_binary(g, OP_ADD, x, mask, x->loc, NULL);
        snprintf(name, sizeof name, "probs.%d", L++);
        ir_add_output(g, arena_strdup(g->arena, name), sm);
    }
    ir_toposort(g);
    ir_compact(g);
    *nlayer = L;
    CHECK(L > 0 && !ir_verify(g, d), "%s: no softmax to mask, or the reference does not verify", m->name);
    return g;
}

/* The model compiled with policy and its reference (probs_model, L layers), what = "MODEL POLICY"
 * (96 bytes) and the Diag the test reports to; NULL (nothing to free) when either does not compile. */
static Diag *compile_pair(const Model *m, const char *policy, int per_head, Graph **g, Graph **ref, int *L, char *what)
{
    snprintf(what, 96, "%s %s", m->name, policy);
    Diag *d = diag_new(stderr);
    *L = 0;
    *g = compile(m, policy, d);
    *ref = probs_model(m, per_head, L, d);
    CHECK(*g && *ref, "%s: %s does not compile", m->name, policy);
    if (*g && *ref)
        return d;
    release(*g);
    release(*ref);
    diag_free(d);
    return NULL;
}

/* TOVA step by step: each layer's cache is a list of positions. The prompt's P positions fill it, or
 * when P > B the B that the prompt's last query attends to most, averaged over the heads (the
 * reference run over the prompt alone: TOVACache.reduce after the prompt); decoding position t, every layer attends over its list and t (the reference model recomputes the
 * whole prefix with each layer's history of what it saw), and when the list and t are more than B,
 * the one with the lowest probability from t, averaged over the heads, leaves (TOVACache.reduce).
 * kiln's decode must give the same logits, and its state cache.l.pos the same positions. */
static void test_tova(const Model *m, int B, int n)
{
    char policy[32];
    snprintf(policy, sizeof policy, "tova:%d", B);
    char what[96];
    int L;
    Graph *g, *ref;
    Diag *d = compile_pair(m, policy, 0, &g, &ref, &L, what);
    if (!d)
        return;
    int V = vocab_of(g);
    int32_t *tok = tokens(n, 4242u, m->vocab);
    float *masks = malloc(sizeof(float) * (size_t)L * (size_t)n * (size_t)n), *row = malloc(sizeof(float) * (size_t)V);
    float *sub = malloc(sizeof(float) * (size_t)L * (size_t)n * (size_t)n);
    int *list = malloc(sizeof(int) * (size_t)L * (size_t)(B + 1)), *len = calloc((size_t)L, sizeof(int));
    HostTensor *in = calloc((size_t)L + 1, sizeof(HostTensor)), *out = calloc((size_t)L + 1, sizeof(HostTensor));
    double worst = 0;
    int steps = 0, evicted = 0;
    const int prompts[] = {1, B / 2 + 1, B, B + 5, 30};
    for (int pi = 0; pi < 5; pi++) {
        int P = prompts[pi];
        for (size_t i = 0; i < (size_t)L * (size_t)n * (size_t)n; i++)
            masks[i] = -INFINITY;
        if (run_prompt(ref, tok, P, n, L, masks, (size_t)n * (size_t)n, sub, in, out, d))
            break;
        for (int l = 0; l < L; l++) {
            const HostTensor *pr = &out[l + 1]; /* [..., P, P] */
            int64_t nb = 1;
            for (int r = 0; r < pr->rank - 2; r++)
                nb *= pr->shape[r];
            double *w = calloc((size_t)P, sizeof(double));
            for (int j = 0; j < P; j++)
                for (int64_t b = 0; b < nb; b++)
                    w[j] += ((const float *)pr->data)[(b * P + P - 1) * P + j] / (double)nb;
            len[l] = P < B ? P : B;
            top_k(w, P, len[l], &list[l * (B + 1)]);
            free(w);
        }
        for (int l = 0; l <= L; l++)
            free(out[l].data);
        IrState *st = ir_state_new(g);
        CHECK(!prefill(g, st, tok, P, row, V, d), "%s %s: prefill of %d", m->name, policy, P);
        for (int t = P; t < n; t++) {
            /* the reference over positions 0..t, row t: what each layer's cache holds, and t */
            for (int l = 0; l < L; l++) {
                list[l * (B + 1) + len[l]++] = t;
                for (int k = 0; k < len[l]; k++)
                    masks[((size_t)l * n + t) * n + list[l * (B + 1) + k]] = 0;
                for (int i = 0; i <= t; i++)
                    memcpy(sub + (size_t)l * (t + 1) * (t + 1) + (size_t)i * (t + 1), masks + ((size_t)l * n + i) * n,
                           sizeof(float) * (size_t)(t + 1));
            }
            if (run_probs(ref, tok, t + 1, L, sub, (size_t)(t + 1) * (size_t)(t + 1), in, out, d))
                break;
            for (int l = 0; l < L; l++) {
                const HostTensor *pr = &out[l + 1]; /* [..., t+1, t+1] */
                int64_t nb = 1;
                for (int r = 0; r < pr->rank - 2; r++)
                    nb *= pr->shape[r];
                if (len[l] > B) { /* evict the least attended, averaged over the heads */
                    int worst_k = 0;
                    double least = INFINITY;
                    for (int k = 0; k < len[l]; k++) {
                        double w = 0;
                        for (int64_t b = 0; b < nb; b++)
                            w += ((const float *)pr->data)[(b * (t + 1) + t) * (t + 1) + list[l * (B + 1) + k]];
                        if (w / (double)nb < least) {
                            least = w / (double)nb;
                            worst_k = k;
                        }
                    }
                    memmove(&list[l * (B + 1) + worst_k], &list[l * (B + 1) + worst_k + 1],
                            sizeof(int) * (size_t)(len[l] - worst_k - 1));
                    len[l]--;
                    evicted++;
                }
            }
            if (decode_checked(g, st, what, tok, t, P, (const float *)out[0].data, row, V, d, &worst, &steps))
                break;
            /* the positions kiln's cache holds, layer by layer */
            for (int l = 0; l < L; l++) {
                const int64_t *pos = cache_state(g, st, "pos", l);
                int same = 1, held = 0;
                for (int k = 0; k <= B; k++) {
                    held += pos[k] > 0;
                    int found = pos[k] == 0;
                    for (int q = 0; q < len[l] && !found; q++)
                        found = list[l * (B + 1) + q] == pos[k] - 1;
                    same &= found;
                }
                CHECK(same && held == len[l], "%s %s: after position %d, layer %d's cache holds other positions than the "
                      "reference's %d", m->name, policy, t, l, len[l]);
            }
            for (int l = 0; l <= L; l++)
                free(out[l].data);
        }
        ir_state_free(st);
    }
    printf("%s %s: %d decode steps against the step-by-step reference, %d evictions, worst relative error %.3g\n",
           m->name, policy, steps, evicted, worst);
    free(tok);
    free(masks);
    free(sub);
    free(row);
    free(list);
    free(len);
    free(in);
    free(out);
    release(g);
    release(ref);
    diag_free(d);
}

/* H2O step by step, per layer and KV head (kv heads: the leading batch dim of the scores, each
 * followed by its G query heads): a list of positions with the attention each received, summed over
 * the queries since it came (the prompt's included: the reference run over the prompt alone) and
 * over its query heads. A prompt longer than B = H + R leaves its R most recent positions and, of
 * the others, the H with the largest sums (H2OKVCache_LayerWise after the prompt). Decoding position t,
 * each head attends over its list and t (the reference model with a mask per query head), t's
 * probabilities are added, and a head holding more than B = H + R loses the position with the least
 * sum among those not among the R most recent (t - R + 1 .. t). kiln's decode must give the same
 * logits, cache.l.pos the same positions per head, and cache.l.acc the same sums (1e-5). */
static void test_h2o(const Model *m, int H, int R, int n)
{
    char policy[48];
    snprintf(policy, sizeof policy, "h2o:heavy=%d,recent=%d", H, R);
    int B = H + R, S = B + 1, L;
    char what[96];
    Graph *g, *ref;
    Diag *d = compile_pair(m, policy, 1, &g, &ref, &L, what);
    if (!d)
        return;
    int V = vocab_of(g);
    const Node *mk0 = ref->inputs[1]; /* mask.0: [heads..., T, T] */
    int nb = 1;
    for (int r = 0; r < mk0->rank - 2; r++)
        nb *= (int)dim_value(mk0->shape[r]);
    const StateDecl *pd = &g->states[ir_find_state(g, "cache.0.pos")];
    int kvh = 1;
    for (int r = 0; r < pd->rank - 1; r++)
        kvh *= (int)dim_value(pd->shape[r]);
    CHECK(nb % kvh == 0, "%s: %d query heads, %d KV heads", m->name, nb, kvh);
    int G = nb / kvh, NH = L * kvh; /* lists: one per layer and KV head */
    int32_t *tok = tokens(n, 999u, m->vocab);
    size_t per = (size_t)nb * (size_t)n * (size_t)n; /* one layer's mask */
    float *masks = malloc(sizeof(float) * per * (size_t)L), *sub = malloc(sizeof(float) * per * (size_t)L);
    float *row = malloc(sizeof(float) * (size_t)V);
    int *list = malloc(sizeof(int) * (size_t)NH * (size_t)S), *len = calloc((size_t)NH, sizeof(int));
    double *acc = malloc(sizeof(double) * (size_t)NH * (size_t)S);
    HostTensor *in = calloc((size_t)L + 1, sizeof(HostTensor)), *out = calloc((size_t)L + 1, sizeof(HostTensor));
    double worst = 0, worst_acc = 0;
    int steps = 0, evicted = 0;
    const int prompts[] = {1, B / 2 + 1, B, B + 5, 30};
    for (int pi = 0; pi < 5 && prompts[pi] < n; pi++) {
        int P = prompts[pi];
        for (size_t i = 0; i < per * (size_t)L; i++)
            masks[i] = -INFINITY;
        if (run_prompt(ref, tok, P, n, L, masks, per, sub, in, out, d))
            break;
        for (int h = 0; h < NH; h++) { /* the prompt's column sums, then its heavy and recent positions */
            const float *pr = out[h / kvh + 1].data; /* [heads..., P, P] */
            double *sum = calloc((size_t)P, sizeof(double));
            for (int j = 0; j < P; j++)
                for (int b = (h % kvh) * G; b < (h % kvh + 1) * G; b++)
                    for (int i = 0; i < P; i++)
                        sum[j] += pr[((size_t)b * P + i) * P + j];
            int nh = P > B ? P - R : 0, *keep = malloc(sizeof(int) * (size_t)(P + 1));
            if (nh)
                top_k(sum, nh, H, keep);
            len[h] = 0;
            for (int k = 0; k < (nh ? H : 0); k++)
                list[h * S + len[h]++] = keep[k];
            for (int j = nh; j < P; j++)
                list[h * S + len[h]++] = j;
            for (int k = 0; k < len[h]; k++)
                acc[h * S + k] = sum[list[h * S + k]];
            free(sum);
            free(keep);
        }
        for (int l = 0; l <= L; l++)
            free(out[l].data);
        IrState *st = ir_state_new(g);
        CHECK(!prefill(g, st, tok, P, row, V, d), "%s %s: prefill of %d", m->name, policy, P);
        for (int t = P; t < n; t++) {
            int t1 = t + 1;
            for (int h = 0; h < NH; h++) {
                int l = h / kvh;
                list[h * S + len[h]] = t;
                acc[h * S + len[h]++] = 0;
                for (int b = (h % kvh) * G; b < (h % kvh + 1) * G; b++)
                    for (int k = 0; k < len[h]; k++)
                        masks[(size_t)l * per + ((size_t)b * n + t) * n + list[h * S + k]] = 0;
            }
            for (int l = 0; l < L; l++)
                for (int b = 0; b < nb; b++)
                    for (int i = 0; i < t1; i++)
                        memcpy(sub + (size_t)l * per + ((size_t)b * t1 + i) * t1, masks + (size_t)l * per + ((size_t)b * n + i) * n,
                               sizeof(float) * (size_t)t1);
            if (run_probs(ref, tok, t1, L, sub, per, in, out, d))
                break;
            for (int h = 0; h < NH; h++) {
                const float *pr = out[h / kvh + 1].data; /* [heads..., t1, t1] */
                for (int k = 0; k < len[h]; k++)
                    for (int b = (h % kvh) * G; b < (h % kvh + 1) * G; b++)
                        acc[h * S + k] += pr[((size_t)b * t1 + t) * t1 + list[h * S + k]];
                if (len[h] > B) { /* the least attended outside the R most recent */
                    int victim = -1;
                    for (int k = 0; k < len[h]; k++)
                        if (list[h * S + k] <= t - R && (victim < 0 || acc[h * S + k] < acc[h * S + victim]))
                            victim = k;
                    memmove(&list[h * S + victim], &list[h * S + victim + 1], sizeof(int) * (size_t)(len[h] - victim - 1));
                    memmove(&acc[h * S + victim], &acc[h * S + victim + 1], sizeof(double) * (size_t)(len[h] - victim - 1));
                    len[h]--;
                    evicted++;
                }
            }
            if (decode_checked(g, st, what, tok, t, P, (const float *)out[0].data, row, V, d, &worst, &steps))
                break;
            for (int h = 0; h < NH; h++) {
                const int64_t *pos = (const int64_t *)cache_state(g, st, "pos", h / kvh) + (h % kvh) * S;
                const float *ka = (const float *)cache_state(g, st, "acc", h / kvh) + (h % kvh) * S;
                int same = 1, held = 0;
                for (int k = 0; k < S; k++) {
                    held += pos[k] > 0;
                    int found = pos[k] == 0;
                    for (int q = 0; q < len[h] && !found; q++)
                        if (list[h * S + q] == pos[k] - 1) {
                            found = 1;
                            worst_acc = fmax(worst_acc, fabs(ka[k] - acc[h * S + q]));
                            CHECK(fabs(ka[k] - acc[h * S + q]) <= 1e-5 * (1 + fabs(acc[h * S + q])),
                                  "%s %s: after position %d, layer %d head %d: position %d received %.9g, the "
                                  "reference %.9g", m->name, policy, t, h / kvh, h % kvh, list[h * S + q], ka[k],
                                  acc[h * S + q]);
                        }
                    same &= found;
                }
                CHECK(same && held == len[h], "%s %s: after position %d, layer %d head %d holds other positions than "
                      "the reference's %d", m->name, policy, t, h / kvh, h % kvh, len[h]);
            }
            for (int l = 0; l <= L; l++)
                free(out[l].data);
        }
        ir_state_free(st);
    }
    printf("%s %s: %d decode steps against the step-by-step reference, %d evictions, worst relative error %.3g, "
           "worst accumulated score error %.3g\n", m->name, policy, steps, evicted, worst, worst_acc);
    free(tok);
    free(masks);
    free(sub);
    free(row);
    free(list);
    free(len);
    free(acc);
    free(in);
    free(out);
    release(g);
    release(ref);
    diag_free(d);
}

/* The cascading cache of one layer as the reference keeps it (cascading_cache.py's
 * _update_kv_cache_inner): S sinks, N rings of W positions each with a start index and a count,
 * and each position's score. */
typedef struct Cascade {
    int S, N, W, nsink, sink[8];
    int ring[8][16], start[8], stored[8];
} Cascade;

/* p[k][j] of probabilities pr [heads..., t1, t1] averaged over the nb heads */
static double head_mean(const HostTensor *pr, int64_t nb, int t1, int k, int j)
{
    double s = 0;
    for (int64_t b = 0; b < nb; b++)
        s += ((const float *)pr->data)[(b * t1 + k) * t1 + j];
    return s / (double)nb;
}

/* Token t (its score in sc[t]) enters as the reference's kernel has it: eager while t <= B. */
static void cascade_insert(Cascade *c, int t, const double *sc)
{
    if (c->nsink < c->S) {
        c->sink[c->nsink++] = t;
        return;
    }
    int B = c->S + c->N * c->W, tok = t;
    for (int i = 0; i < c->N; i++) {
        int accept = t <= B || (t - c->S) % (1 << i) == 0;
        if (accept && c->stored[i] < c->W) {
            c->ring[i][(c->start[i] + c->stored[i]++) % c->W] = tok;
            return;
        }
        if (accept) { /* the oldest leaves for the next ring */
            int old = c->ring[i][c->start[i]];
            c->ring[i][c->start[i]] = tok;
            c->start[i] = (c->start[i] + 1) % c->W;
            tok = old;
            continue;
        }
        if (c->stored[i] == 0) {
            c->ring[i][(c->start[i] + c->stored[i]++) % c->W] = tok;
            return;
        }
        int newest = (c->start[i] - 1 + c->stored[i]) % c->stored[i];
        if (sc[tok] >= sc[c->ring[i][newest]])
            c->ring[i][newest] = tok;
        return;
    }
}

/* Cascade step by step against that reference: per layer, the positions held (sinks and rings)
 * decide what decoding position t sees; the prompt's tokens enter one by one as the reference's
 * update() has them, with the prompt's scores (the reference run over the prompt alone: sum over
 * queries k >= j of (1 - beta) beta^(k - j) p[k][j]), which a prompt longer than B reads; each decode step: beta * score + (1 - beta) p for held
 * positions, (1 - beta) p for t; p averaged over the heads). After each step the positions each
 * layer holds (cache.L.pos) and the logits (1e-5) must agree. */
static void test_cascade(const Model *m, int B, int N, int S, int n)
{
    char policy[48];
    snprintf(policy, sizeof policy, "cascade:%d,n=%d,sinks=%d", B, N, S);
    const double beta = 0.9999;
    char what[96];
    int L;
    Graph *g, *ref;
    Diag *d = compile_pair(m, policy, 0, &g, &ref, &L, what);
    if (!d)
        return;
    int V = vocab_of(g), W = (B - S) / N;
    int32_t *tok = tokens(n, 31337u, m->vocab);
    float *masks = malloc(sizeof(float) * (size_t)L * (size_t)n * (size_t)n), *row = malloc(sizeof(float) * (size_t)V);
    float *sub = malloc(sizeof(float) * (size_t)L * (size_t)n * (size_t)n);
    double *sc = malloc(sizeof(double) * (size_t)L * (size_t)n);
    Cascade *cs = malloc(sizeof(Cascade) * (size_t)L);
    HostTensor *in = calloc((size_t)L + 1, sizeof(HostTensor)), *out = calloc((size_t)L + 1, sizeof(HostTensor));
    double worst = 0;
    int steps = 0;
    const int prompts[] = {1, S + W + 1, B, B + 1, B + 2, B + 9, 40};
    for (int pi = 0; pi < 7; pi++) {
        int P = prompts[pi];
        for (size_t i = 0; i < (size_t)L * (size_t)n * (size_t)n; i++)
            masks[i] = -INFINITY;
        if (run_prompt(ref, tok, P, n, L, masks, (size_t)n * (size_t)n, sub, in, out, d))
            break;
        for (int l = 0; l < L; l++) { /* the prompt's scores, then its tokens in order */
            const HostTensor *pr = &out[l + 1];
            int64_t nb = 1;
            for (int r = 0; r < pr->rank - 2; r++)
                nb *= pr->shape[r];
            double *scl = sc + (size_t)l * n;
            for (int j = 0; j < P; j++) {
                scl[j] = 0;
                for (int k = j; k < P; k++)
                    scl[j] += (1 - beta) * pow(beta, k - j) * head_mean(pr, nb, P, k, j);
            }
            cs[l] = (Cascade){.S = S, .N = N, .W = W};
            for (int i = 0; i < P; i++)
                cascade_insert(&cs[l], i, scl);
        }
        for (int l = 0; l <= L; l++)
            free(out[l].data);
        IrState *st = ir_state_new(g);
        CHECK(!prefill(g, st, tok, P, row, V, d), "%s %s: prefill of %d", m->name, policy, P);
        for (int t = P; t < n; t++) {
            int t1 = t + 1;
            for (int l = 0; l < L; l++) {
                const Cascade *c = &cs[l];
                float *mr = masks + ((size_t)l * n + t) * n;
                mr[t] = 0;
                for (int k = 0; k < c->nsink; k++)
                    mr[c->sink[k]] = 0;
                for (int i = 0; i < N; i++)
                    for (int k = 0; k < c->stored[i]; k++)
                        mr[c->ring[i][k]] = 0;
                for (int i = 0; i < t1; i++)
                    memcpy(sub + (size_t)l * t1 * t1 + (size_t)i * t1, masks + ((size_t)l * n + i) * n, sizeof(float) * (size_t)t1);
            }
            if (run_probs(ref, tok, t1, L, sub, (size_t)t1 * (size_t)t1, in, out, d))
                break;
            for (int l = 0; l < L; l++) {
                const HostTensor *pr = &out[l + 1];
                int64_t nb = 1;
                for (int r = 0; r < pr->rank - 2; r++)
                    nb *= pr->shape[r];
                double *scl = sc + (size_t)l * n;
                const Cascade *c = &cs[l];
                for (int i = 0; i < N; i++)
                    for (int k = 0; k < c->stored[i]; k++)
                        scl[c->ring[i][k]] = beta * scl[c->ring[i][k]] + (1 - beta) * head_mean(pr, nb, t1, t, c->ring[i][k]);
                scl[t] = (1 - beta) * head_mean(pr, nb, t1, t, t);
                cascade_insert(&cs[l], t, scl);
            }
            if (decode_checked(g, st, what, tok, t, P, (const float *)out[0].data, row, V, d, &worst, &steps))
                break;
            for (int l = 0; l < L; l++) {
                const int64_t *pos = cache_state(g, st, "pos", l);
                unsigned char want[256] = {0};
                const Cascade *c = &cs[l];
                int nwant = c->nsink, same = 1, held = 0;
                for (int k = 0; k < c->nsink; k++)
                    want[c->sink[k]] = 1;
                for (int i = 0; i < N; i++)
                    for (int k = 0; k < c->stored[i]; k++, nwant++)
                        want[c->ring[i][k]] = 1;
                for (int k = 0; k <= B; k++) {
                    held += pos[k] > 0;
                    same &= pos[k] == 0 || want[pos[k] - 1];
                }
                CHECK(same && held == nwant, "%s %s: after position %d, layer %d's cache holds other positions than the "
                      "reference's %d", m->name, policy, t, l, nwant);
            }
            for (int l = 0; l <= L; l++)
                free(out[l].data);
        }
        ir_state_free(st);
    }
    printf("%s %s: %d decode steps against the step-by-step reference, worst relative error %.3g\n", m->name, policy,
           steps, worst);
    free(tok);
    free(masks);
    free(sub);
    free(row);
    free(sc);
    free(cs);
    free(in);
    free(out);
    release(g);
    release(ref);
    diag_free(d);
}

/* positions=cache on a one-layer rotary model (the Llama-style model with L = 1): a layer-0 key or
 * value depends on its own token alone, so decoding position t with positions within the cache must
 * give exactly what the model gives run over the tokens the cache holds, in order, at positions
 * 0..n-1 (the reference recompute: the model as the frontend made it, on that shorter sequence,
 * its last row). The tokens held before each step: for window:W and sinks:S,window:W worked out
 * here (the first S and the last W up to t); for the policies with a slot map, read from kiln's
 * cache.0.pos (all rows alike: h2o with heavy=0), and for tova the one it then evicts must be the
 * one the new token attends to least in the reference (its softmax over the recomputed sequence,
 * averaged over the heads). Logits within 1e-5 relative to the row's largest. */
static void test_cachepos(const Model *m, const char *policy, int S, int W, int n)
{
    char what[96];
    Graph *g, *ref;
    int L, tova = !strncmp(policy, "tova:", 5);
    Diag *d = compile_pair(m, policy, 0, &g, &ref, &L, what);
    if (!d)
        return;
    CHECK(L == 1, "%s: the reference has %d layers, not 1", what, L);
    int V = vocab_of(g), slotmap = ir_find_state(g, "cache.0.pos") >= 0;
    int32_t *tok = tokens(n, 5150u, m->vocab), *seq = malloc(sizeof(int32_t) * (size_t)n);
    int *held = malloc(sizeof(int) * (size_t)n);
    float *row = malloc(sizeof(float) * (size_t)V), *zero = calloc((size_t)n * (size_t)n, sizeof(float));
    float *want = malloc(sizeof(float) * (size_t)V * (size_t)n);
    HostTensor out[2];
    double worst = 0;
    int steps = 0, evicted = 0;
    const int prompts[] = {1, 4, 6}; /* 6: longer than the window's and sinks' budgets, within the others' */
    for (int pi = 0; pi < 3; pi++) {
        int P = prompts[pi];
        IrState *st = ir_state_new(g);
        CHECK(!prefill(g, st, tok, P, row, V, d), "%s: prefill of %d", what, P);
        for (int t = P; t < n; t++) {
            int nh = 0;
            if (slotmap) { /* the positions held before the step, every row alike */
                const StateDecl *sd = &g->states[ir_find_state(g, "cache.0.pos")];
                int64_t slots = dim_value(sd->shape[sd->rank - 1]), rows = 1;
                for (int r = 0; r < sd->rank - 1; r++)
                    rows *= dim_value(sd->shape[r]);
                const int64_t *pos = cache_state(g, st, "pos", 0);
                for (int j = 0; j < t; j++)
                    for (int64_t k = 0; k < slots; k++)
                        if (pos[k] == j + 1) {
                            held[nh++] = j;
                            break;
                        }
                for (int64_t r = 1; r < rows; r++)
                    for (int64_t k = 0; k < slots; k++)
                        CHECK(pos[r * slots + k] == pos[k], "%s: the KV heads hold other positions", what);
            } else {
                for (int j = 0; j < t; j++)
                    if (j < S || j > t - W)
                        held[nh++] = j;
            }
            held[nh++] = t;
            for (int k = 0; k < nh; k++)
                seq[k] = tok[held[k]];
            CHECK(ref->inputs[1]->rank == 2, "%s: the reference's mask", what);
            if (recompute(ref, seq, nh, zero, out, d))
                break;
            memcpy(want + (size_t)t * (size_t)V, (const float *)out[0].data + (size_t)(nh - 1) * (size_t)V,
                   sizeof(float) * (size_t)V);
            int fails = decode_checked(g, st, what, tok, t, P, want, row, V, d, &worst, &steps);
            if (!fails && tova && nh > dim_value(g->states[ir_find_state(g, "cache.0.pos")].shape[0]) - 1) {
                /* the evicted: the least attended from the new token in the reference */
                const HostTensor *pr = &out[1];
                int64_t nb = 1;
                for (int r = 0; r < pr->rank - 2; r++)
                    nb *= pr->shape[r];
                int least = 0;
                double lw = INFINITY;
                for (int k = 0; k < nh; k++) {
                    double w = 0;
                    for (int64_t b = 0; b < nb; b++)
                        w += ((const float *)pr->data)[(b * nh + nh - 1) * nh + k];
                    if (w < lw)
                        lw = w, least = k;
                }
                const int64_t *pos = cache_state(g, st, "pos", 0);
                int64_t slots = dim_value(g->states[ir_find_state(g, "cache.0.pos")].shape[0]);
                int gone = 1;
                for (int64_t k = 0; k < slots; k++)
                    gone &= pos[k] != held[least] + 1;
                CHECK(gone, "%s: after position %d the cache still holds %d, the reference's least attended", what, t,
                      held[least]);
                evicted++;
            }
            free(out[0].data);
            free(out[1].data);
            if (fails)
                break;
        }
        ir_state_free(st);
    }
    printf("%s: %d decode steps against a recompute over the held tokens, %d evictions checked, worst relative "
           "error %.3g\n", what, steps, evicted, worst);
    free(tok);
    free(seq);
    free(held);
    free(row);
    free(zero);
    free(want);
    release(g);
    release(ref);
    diag_free(d);
}

/* h2o:heavy=H,recent=R with positions=cache on a one-layer rotary model with one KV head (the
 * Llama-style model with L = 1, H = 2, KVH = 1: both query heads share the one slot map, and a layer-0 key
 * or value depends on its own token alone), against an independent reference that keeps the heavy
 * hitters itself: a list of held positions with the attention each received, in double. The prompt
 * (P tokens, at positions 0..P-1 as prefill has them) starts the sums with its column sums over the
 * query heads, from the model run over the prompt; longer than B = H + R, it leaves its R most recent
 * positions and the H others with the largest sums. Decoding position t, the model runs over the
 * held tokens and t, in order, at positions 0..n-1 (what positions=cache gives: each key at its rank
 * among the held tokens); the last row's logits are the expected ones, and its probabilities, summed
 * over the query heads, are added to each held position's sum and start t's; then, holding more than
 * B, the position with the least sum among those not among the R most recent (t - R + 1 .. t) leaves.
 * After each step kiln's cache.0.pos must hold the same positions, cache.0.acc the same sums (1e-5
 * relative) and the logits agree within 1e-5. */
static void test_h2o_cachepos(const Model *m, int H, int R, int n)
{
    char policy[64], what[96];
    snprintf(policy, sizeof policy, "h2o:heavy=%d,recent=%d,positions=cache", H, R);
    int B = H + R, L;
    Graph *g, *ref;
    Diag *d = compile_pair(m, policy, 0, &g, &ref, &L, what);
    if (!d)
        return;
    const StateDecl *pd = &g->states[ir_find_state(g, "cache.0.pos")];
    int64_t S = dim_value(pd->shape[pd->rank - 1]), rows = 1;
    for (int r = 0; r < pd->rank - 1; r++)
        rows *= dim_value(pd->shape[r]);
    CHECK(L == 1 && rows == 1 && S == B + 1, "%s: %d layers, %lld KV heads, %lld slots", what, L, (long long)rows,
          (long long)S);
    int V = vocab_of(g);
    int32_t *tok = tokens(n, 6060u, m->vocab), *seq = malloc(sizeof(int32_t) * (size_t)n);
    int *list = malloc(sizeof(int) * (size_t)(n + 1)), len = 0, steps = 0, evicted = 0;
    double *acc = malloc(sizeof(double) * (size_t)(n + 1)), worst = 0, worst_acc = 0;
    float *row = malloc(sizeof(float) * (size_t)V), *zero = calloc((size_t)n * (size_t)n, sizeof(float));
    float *want = malloc(sizeof(float) * (size_t)V * (size_t)n);
    HostTensor out[2];
    const int prompts[] = {1, 3, B, B + 4, 20};
    for (int pi = 0; pi < 5 && rows == 1; pi++) {
        int P = prompts[pi];
        /* the prompt: its column sums, and what a long one leaves */
        if (recompute(ref, tok, P, zero, out, d))
            break;
        int64_t nb = 1; /* the query heads: the probabilities' batch dims */
        for (int r = 0; r < out[1].rank - 2; r++)
            nb *= out[1].shape[r];
        double *sum = calloc((size_t)P, sizeof(double));
        for (int j = 0; j < P; j++)
            for (int64_t b = 0; b < nb; b++)
                for (int i = 0; i < P; i++)
                    sum[j] += ((const float *)out[1].data)[(b * P + i) * P + j];
        int nh = P > B ? P - R : 0, *keep = malloc(sizeof(int) * (size_t)(P + 1));
        if (nh)
            top_k(sum, nh, H, keep);
        len = 0;
        for (int k = 0; k < (nh ? H : 0); k++)
            list[len++] = keep[k];
        for (int j = nh; j < P; j++)
            list[len++] = j;
        for (int k = 0; k < len; k++)
            acc[k] = sum[list[k]];
        free(sum);
        free(keep);
        free(out[0].data);
        free(out[1].data);
        IrState *st = ir_state_new(g);
        CHECK(!prefill(g, st, tok, P, row, V, d), "%s: prefill of %d", what, P);
        for (int t = P; t < n; t++) {
            int nq = len + 1;
            for (int k = 0; k < len; k++)
                seq[k] = tok[list[k]];
            seq[len] = tok[t];
            if (recompute(ref, seq, nq, zero, out, d))
                break;
            memcpy(want + (size_t)t * (size_t)V, (const float *)out[0].data + (size_t)(nq - 1) * (size_t)V,
                   sizeof(float) * (size_t)V);
            list[len] = t;
            acc[len++] = 0;
            for (int k = 0; k < len; k++)
                for (int64_t b = 0; b < nb; b++)
                    acc[k] += ((const float *)out[1].data)[(b * nq + nq - 1) * nq + k];
            if (len > B) {
                int victim = -1;
                for (int k = 0; k < len; k++)
                    if (list[k] <= t - R && (victim < 0 || acc[k] < acc[victim]))
                        victim = k;
                memmove(&list[victim], &list[victim + 1], sizeof(int) * (size_t)(len - victim - 1));
                memmove(&acc[victim], &acc[victim + 1], sizeof(double) * (size_t)(len - victim - 1));
                len--;
                evicted++;
            }
            free(out[0].data);
            free(out[1].data);
            if (decode_checked(g, st, what, tok, t, P, want, row, V, d, &worst, &steps))
                break;
            const int64_t *pos = cache_state(g, st, "pos", 0);
            const float *ka = cache_state(g, st, "acc", 0);
            int same = 1, held = 0;
            for (int64_t k = 0; k < S; k++) {
                held += pos[k] > 0;
                int found = pos[k] == 0;
                for (int q = 0; q < len && !found; q++)
                    if (list[q] == pos[k] - 1) {
                        found = 1;
                        worst_acc = fmax(worst_acc, fabs(ka[k] - acc[q]));
                        CHECK(fabs(ka[k] - acc[q]) <= 1e-5 * (1 + fabs(acc[q])), "%s: after position %d, position %d "
                              "received %.9g, the reference %.9g", what, t, list[q], ka[k], acc[q]);
                    }
                same &= found;
            }
            CHECK(same && held == len, "%s: after position %d (prompt %d) the cache holds other positions than the "
                  "reference's %d", what, t, P, len);
        }
        ir_state_free(st);
    }
    printf("%s: %d decode steps against a reference keeping the heavy hitters, %d evictions, worst relative error "
           "%.3g, worst accumulated score error %.3g\n", what, steps, evicted, worst, worst_acc);
    free(tok);
    free(seq);
    free(list);
    free(acc);
    free(row);
    free(zero);
    free(want);
    release(g);
    release(ref);
    diag_free(d);
}

/* full with positions=cache is full: the same graph, node for node (nothing leaves the cache, so
 * the ranks are the positions) */
static void test_full_cachepos(const Model *m)
{
    Diag *d = diag_new(stderr);
    Graph *a = compile(m, "full", d), *b = compile(m, "full,positions=cache", d);
    CHECK(a && b, "%s: full,positions=cache does not compile", m->name);
    char *ta = NULL, *tb = NULL;
    size_t na = 0, nb = 0;
    FILE *fa = open_memstream(&ta, &na), *fb = open_memstream(&tb, &nb);
    if (a && b) {
        ir_print(fa, a);
        ir_print(fb, b);
    }
    fclose(fa);
    fclose(fb);
    CHECK(a && b && na > 0 && na == nb && !memcmp(ta, tb, na), "%s: full,positions=cache is another graph than full",
          m->name);
    free(ta);
    free(tb);
    release(a);
    release(b);
    diag_free(d);
}

/* What compiling m with policy said, which must fail (malloc'ed; NULL, with a failure counted, when
 * it compiled) */
static char *refusal(const Model *m, const char *policy)
{
    char *msgs = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&msgs, &n);
    Diag *d = diag_new(f);
    Graph *g = compile(m, policy, d);
    diag_free(d);
    fclose(f);
    CHECK(!g, "%s: --kv-cache %s accepted", m->name, policy);
    release(g);
    if (g) {
        free(msgs);
        return NULL;
    }
    return msgs;
}

static void test_refused(void)
{
    /* ViT: attention that is not causal */
    Model vit = {"vit", "examples/vit/vit.kiln", "examples/vit/vit-small-random.safetensors",
                 {{"D", "64"}, {"H", "4"}, {"L", "2"}, {"P", "8"}, {"IMG", "32"}, {"CLASSES", "10"}}, 6, 0, 0, 0};
    char *msgs = refusal(&vit, "full");
    CHECK(msgs && strstr(msgs, "stops the pass: it is not causal"), "vit: no clear message:\n%s", msgs);
    free(msgs);
    Model gpt2 = {"gpt2", "examples/gpt2/gpt2.kiln", "examples/gpt2/gpt2-tiny.safetensors",
                  {{"V", "96"}, {"D", "64"}, {"H", "4"}, {"L", "2"}, {"CTX", "64"}}, 5, 64, 96, 64};
    msgs = refusal(&gpt2, "window:0");
    CHECK(msgs && strstr(msgs, "--kv-cache: cannot read the policy 'window:0'"), "bad policy:\n%s", msgs);
    free(msgs);
    static const char *const bad[] = {"tova:0", "h2o:heavy=2", "h2o:heavy=0,recent=0", "h2o:heavy=,recent=3",
                                      "cascade:10,n=3", "cascade:8,n=0", "cascade:8,n=2,sinks=9", "cascade:8",
                                      "window:8,positions=", "window:8,positions=rank", "positions=cache"};
    for (int i = 0; i < 11; i++) {
        msgs = refusal(&gpt2, bad[i]);
        CHECK(msgs && strstr(msgs, "--kv-cache: cannot read the policy") && strstr(msgs, "cascade:B,n=N[,sinks=S]"),
              "bad policy %s:\n%s", bad[i], msgs);
        free(msgs);
    }
    /* positions=cache needs rotary positions: GPT-2's learned table is refused */
    msgs = refusal(&gpt2, "sinks:2,window:6,positions=cache");
    CHECK(msgs && strstr(msgs, "positions=cache: slice %") && strstr(msgs, "reads a learned position table"),
          "gpt2 with positions=cache:\n%s", msgs);
    free(msgs);
}

/* --dump MODEL POLICY N P: what the interpreter computes for tests/models/native/use_kv.c (--dump)'s
 * sequence (same seed), in its format: after each decode step the logits, then the positions each
 * row (KV head, for h2o) of each layer's cache.L.pos state holds, ascending. tests/models/kv_cache.sh compares the two. */
static int dump(const Model *m, const char *policy, int n, int P)
{
    Diag *d = diag_new(stderr);
    Graph *g = compile(m, policy, d);
    if (!g || P < 1 || P > n)
        return 1;
    int V = vocab_of(g), rc = 0;
    int32_t *tok = tokens(n, 2024u, m->vocab);
    float *row = malloc(sizeof(float) * (size_t)V);
    IrState *st = ir_state_new(g);
    rc = prefill(g, st, tok, P, row, V, d);
    for (int t = P; t < n && !rc; t++) {
        rc = decode(g, st, tok[t], row, V, d);
        printf("logits %d", t);
        for (int v = 0; v < V && !rc; v++)
            printf(" %.9g", row[v]);
        printf("\n");
        for (int s = 0; s < g->nstate && !rc; s++) {
            int layer;
            char rest[8];
            if (sscanf(g->states[s].name, "cache.%d.%7s", &layer, rest) != 2 || strcmp(rest, "pos"))
                continue;
            const StateDecl *sd = &g->states[s];
            int64_t slots = dim_value(sd->shape[sd->rank - 1]), rows = 1;
            for (int r = 0; r < sd->rank - 1; r++)
                rows *= dim_value(sd->shape[r]);
            for (int64_t h = 0; h < rows; h++) {
                const int64_t *pos = (const int64_t *)ir_state_data(st, s) + h * slots;
                printf("pos %d %d %lld", t, layer, (long long)h);
                for (int64_t q = 0; q < t + 1; q++)
                    for (int64_t k = 0; k < slots; k++)
                        if (pos[k] == q + 1)
                            printf(" %lld", (long long)q);
                printf("\n");
            }
        }
    }
    ir_state_free(st);
    free(row);
    free(tok);
    release(g);
    diag_free(d);
    return rc;
}

int main(int argc, char **argv)
{
    Model gpt2 = {"gpt2", "examples/gpt2/gpt2.kiln", "examples/gpt2/gpt2-tiny.safetensors",
                  {{"V", "96"}, {"D", "64"}, {"H", "4"}, {"L", "2"}, {"CTX", "64"}}, 5, 64, 96, 64};
    Model llama = {"llama", "examples/llama/llama.kiln", "examples/llama/llama-tiny.safetensors",
                   {{"V", "128"}, {"D", "64"}, {"H", "4"}, {"KVH", "2"}, {"F", "172"}, {"L", "2"}, {"CTX", "64"}}, 7, 64,
                   128, 64};
    Model charlm = {"charlm", "examples/charlm/charlm.kiln", NULL, {{NULL, NULL}}, 0, 256, 65, 24};
    if (argc == 6 && !strcmp(argv[1], "--dump")) {
        const Model *m = !strcmp(argv[2], "gpt2") ? &gpt2 : !strcmp(argv[2], "llama") ? &llama : &charlm;
        return dump(m, argv[3], atoi(argv[4]), atoi(argv[5]));
    }
    test_full(&gpt2, 5);
    test_full(&llama, 5);
    test_full(&charlm, 5);
    test_policy(&gpt2, "window:8", 0, 8);
    test_policy(&gpt2, "sinks:2,window:6", 2, 6);
    test_policy(&llama, "window:8", 0, 8);
    test_policy(&llama, "sinks:4,window:5", 4, 5);
    test_tova(&gpt2, 8, 40);
    test_tova(&llama, 6, 40);
    test_h2o(&gpt2, 3, 4, 40);
    test_h2o(&llama, 2, 3, 40);
    test_h2o(&gpt2, 0, 5, 24);
    test_cascade(&gpt2, 14, 3, 2, 48);
    test_cascade(&llama, 12, 4, 0, 48);
    /* positions=cache */
    Model llama1 = llama;
    llama1.name = "llama (1 layer)";
    llama1.defines[5].value = "1";
    test_full_cachepos(&llama);
    test_policy(&llama, "window:8,positions=cache", 0, 8); /* rotary is relative: a window is unchanged */
    test_cachepos(&llama1, "window:4,positions=cache", 0, 4, 32);
    test_cachepos(&llama1, "sinks:2,window:3,positions=cache", 2, 3, 32);
    test_cachepos(&llama1, "tova:6,positions=cache", 0, 0, 32);
    test_cachepos(&llama1, "h2o:heavy=0,recent=6,positions=cache", 0, 0, 32);
    test_cachepos(&llama1, "cascade:10,n=2,sinks=2,positions=cache", 0, 0, 40);
    Model llama1kv = llama1; /* one KV head (of 32, the weights' k_proj) for two query heads: one slot map */
    llama1kv.name = "llama (1 layer, 2 heads, 1 KV head)";
    llama1kv.defines[2].value = "2";
    llama1kv.defines[3].value = "1";
    test_h2o_cachepos(&llama1kv, 2, 3, 32);
    test_refused();
    if (failures) {
        fprintf(stderr, "test_kv_cache: %d failures\n", failures);
        return 1;
    }
    printf("test_kv_cache: ok\n");
    return 0;
}
