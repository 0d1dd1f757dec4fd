/* choose_quant.c: the choose-quant pass, first form: one quantization scheme for every layer
 * (`--quant int8|w8|w4`).
 *
 * What it does: every f32 matmul whose right operand is a constant matrix (a weight or const,
 * through reshapes, one cast from f16/bf16 and one 2-D transpose: ir_packed_rhs, the operands the
 * GEMM would pack) and whose left operand has rank >= 2 becomes a qmatmul reading a new constant
 * holding the quantized weight [K, N] and its scales, computed here at compile time with
 * ir_quant_scales and ir_quantize1 (ir/quant.c), so the interpreter and the compiled code run the
 * same integers:
 *   int8  W8A8: i8 weights with one symmetric scale per output column (max|w| / 127), activations
 *         quantized per row at run time (qmatmul's dynamic mode);
 *   w8    weight-only i8, one scale per output column;
 *   w4    weight-only i4 (-8..7, symmetric), one scale per group of 32 along K (groups of K when
 *         K <= 32).
 * Matmuls of two activations (attention's scores) and vector products stay f32.
 *
 * Where it runs: after fuse-attention and before fuse-ops, because fuse-ops makes a matmul's
 * consumers its epilogue (Node.inl) and a qmatmul has no epilogue yet: its bias and activation run as
 * their own loop. What it does not do yet (issue 15): calibration, per-layer sensitivity, a budget,
 * verification on held-out inputs, reports and overrides, bf16.
 */
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct Scheme {
    const char *name;
    DType dt;
    int group;   /* along K; 0: one scale per column */
    int dynamic; /* activations quantized per row at run time */
} Scheme;

static const Scheme schemes[] = {
    {"int8", DT_I8, 0, 1},
    {"w8", DT_I8, 0, 0},
    {"w4", DT_I4, 32, 0},
};

const char *pass_quant_schemes(void)
{
    return "int8, w8, w4";
}

int pass_quant_scheme_ok(const char *name)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!strcmp(schemes[i].name, name))
            return 1;
    return 0;
}

static Node *const_node(Graph *g, DType dt, int64_t rows, int64_t cols, void *data, SrcLoc loc)
{
    Dim shape[2] = {dim_const(rows), dim_const(cols)};
    return ir_const(g, dt, 2, shape, data, loc);
}

/* The qmatmul that replaces matmul n under scheme s, or NULL when n is not one it takes. */
static Node *quantize_matmul(Graph *g, Node *n, const Scheme *s)
{
    int trans = 0;
    const Node *b = ir_packed_rhs(n, &trans);
    if (!b || n->in[0]->rank < 2 || n->rank != n->in[0]->rank)
        return NULL;
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]);
    if (K < 1 || N < 1)
        return NULL;
    int group = s->group && K > s->group ? s->group : 0;
    int64_t ng = group ? (K + group - 1) / group : 1;
    float *w = malloc(sizeof(float) * (size_t)(K * N));
    KILN_ASSERT(w);
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++)
            w[k * N + j] = (float)dtype_load(b->dtype, b->at.data, (size_t)(trans ? j * K + k : k * N + j));
    float *scale = arena_alloc(g->arena, sizeof(float) * (size_t)(ng * N));
    ir_quant_scales(w, K, N, group, s->dt, scale, NULL);
    int lo, hi;
    KILN_ASSERT(ir_quant_range(s->dt, &lo, &hi));
    void *q = arena_alloc(g->arena, (size_t)dtype_bytes(s->dt, K * N));
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            float sc = scale[(group ? k / group : 0) * N + j];
            dtype_store(s->dt, q, (size_t)(k * N + j), ir_quantize1(w[k * N + j], sc, 0, lo, hi));
        }
    free(w);
    Node *in[3] = {n->in[0], const_node(g, s->dt, K, N, q, b->loc), const_node(g, DT_F32, ng, N, scale, b->loc)};
    Attrs at = {0};
    at.group = group;
    at.dynamic = s->dynamic;
    return ir_build(g, OP_QMATMUL, &at, 3, in, NULL, n->loc, NULL);
}

int pass_choose_quant(Graph *g, const PassOptions *o)
{
    if (!o->quant)
        return 0;
    const Scheme *s = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!strcmp(schemes[i].name, o->quant))
            s = &schemes[i];
    if (!s) {
        diag_fatal(o->d, "--quant: unknown scheme '%s' (the schemes are: %s)", o->quant, pass_quant_schemes());
        return 0;
    }
    int changes = 0, nnode = g->nnode;
    for (int i = 0; i < nnode; i++) {
        Node *n = g->nodes[i];
        if (n->op != OP_MATMUL)
            continue;
        ir_set_origin(g, n); /* the qmatmul and its constants stay in the matmul's layer and scope */
        Node *qm = quantize_matmul(g, n, s);
        ir_set_origin(g, NULL);
        if (!qm)
            continue;
        ir_replace_uses(g, n, qm);
        changes++;
    }
    if (changes) {
        ir_toposort(g);
        ir_compact(g);
    }
    return changes;
}
