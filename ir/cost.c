/* cost.c: what a node costs, for `kiln check`'s summary and the profile's GFLOP/s.
 *
 * FLOPs count a multiply-add as two operations and an elementwise operation as one per element
 * (transcendentals included), which is the convention the benchmarks' GFLOP/s figures use.
 */
#include "ir.h"

static double numel(const Node *n, const int64_t *vals)
{
    return (double)shape_numel(n->rank, n->shape, vals);
}

double ir_node_flops(const Node *n, const int64_t *vals)
{
    const OpInfo *oi = &op_info[n->op];
    if (oi->flags & (F_SOURCE | F_MOVE) || n->op == OP_CAST)
        return 0;
    if (n->op == OP_MATMUL || n->op == OP_QMATMUL) { /* a quantized product counts as the product */
        const Node *a = n->in[0];
        return 2.0 * numel(n, vals) * (double)dim_eval(a->shape[a->rank - 1], vals);
    }
    if (n->op == OP_CONV2D) {
        const Node *w = n->in[1];
        return 2.0 * numel(n, vals) * (double)(dim_eval(w->shape[1], vals) * dim_eval(w->shape[2], vals) *
                                               dim_eval(w->shape[3], vals));
    }
    if (n->op == OP_ATTENTION) {
        /* per score: q.k (2d), the scale, the softmax (4, as for the op), its share of p v (2 dv),
         * and the mask's add; every score counted, as the unfused graph counts them */
        const Node *q = n->in[0], *k = n->in[1], *v = n->in[2];
        double d = (double)dim_eval(q->shape[q->rank - 1], vals), dv = (double)dim_eval(v->shape[v->rank - 1], vals);
        double scores = numel(n, vals) / (dv > 0 ? dv : 1) * (double)dim_eval(k->shape[k->rank - 2], vals);
        return scores * (2 * d + 2 * dv + 5 + (n->nin > 3));
    }
    if (oi->flags & F_RED)
        return numel(n->in[0], vals);
    if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX)
        return 4.0 * numel(n, vals); /* max, exp, sum, scale */
    if (n->op == OP_LAYERNORM || n->op == OP_RMSNORM)
        return (n->op == OP_LAYERNORM ? 7.0 : 5.0) * numel(n, vals);
    return numel(n, vals);
}

