/* cost.c — parameter counts, FLOPs and activation bytes of a graph.
 *
 * The numbers are estimates for reports (`gradc check`, planners), not
 * measurements: one FLOP model per op kind, with a documented per-element
 * cost for the composites (cost.h).  Everything is computed in doubles and
 * saturated when converted back, so a huge binding cannot overflow.
 */
#include "cost.h"

#include <math.h>

#define SATURATE 2.305843009213694e18 /* INT64_MAX / 4 */

static int64_t to_i64(double v)
{
    return v >= SATURATE ? (int64_t)SATURATE : v <= 0 ? 0 : (int64_t)v;
}

static double dim_value(IrDim d, const int64_t *binding)
{
    double sum = 0;
    for (int i = 0; i < d.n; i++) {
        double v = (double)d.t[i].coef;
        for (int s = 0; s < IR_MAX_SYMS; s++)
            if (d.t[i].exp[s])
                v *= pow(binding ? (double)binding[s] : 1.0, d.t[i].exp[s]);
        sum += v;
    }
    return sum;
}

static double numel(const IrShape *s, const int64_t *binding)
{
    double n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= dim_value(s->d[i], binding);
    return n;
}

int64_t ir_cost_numel(const IrShape *s, const int64_t *binding)
{
    return to_i64(numel(s, binding));
}

IrParamStats ir_cost_params(const IrGraph *g)
{
    IrParamStats st = {0, 0, 0, 0};
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            continue;
        st.tensors++;
        int64_t e = ir_node_numel_const(n);
        if (e < 0)
            continue;
        st.elems += e;
        st.bytes += e * (int64_t)ir_dtype_size(n->dtype);
        if (ir_node_int(n, ATTR_TRAINABLE, 1))
            st.trainable += e;
    }
    return st;
}

/* 2*M*N*K per batch entry, that is 2*K per output element. */
static double matmul_flops(const IrNode *n, const int64_t *binding)
{
    const IrShape *a = &n->in[0]->shape;
    if (a->rank < 2)
        return 0;
    IrDim k = ir_node_int(n, ATTR_TA, 0) ? a->d[a->rank - 2] : a->d[a->rank - 1];
    return 2.0 * dim_value(k, binding) * numel(&n->shape, binding);
}

/* Per causal (i, j <= i) pair and head: forward q.k, exp, and the
 * weighted v (4*hd + 10); the gradient recomputes q.k twice (row
 * statistics, then the weights) and adds dout.v, dq, dk, dv (12*hd + 20).
 * Codegen reports these for the kernels too (cg_lower_attention.c). */
static double attention_flops(const IrNode *n, const int64_t *binding)
{
    const IrShape *x = &n->in[0]->shape;
    double T = dim_value(x->d[x->rank - 2], binding), D = dim_value(x->d[x->rank - 1], binding) / 3;
    double H = (double)ir_node_int(n, ATTR_HEADS, 1), hd = D / H;
    double pairs = numel(x, binding) / (T * 3 * D) * H * T * (T + 1) / 2;
    return pairs * (n->op == OP_CAUSAL_ATTENTION ? 4 * hd + 10 : 12 * hd + 20);
}

static double body_flops(const IrGraph *g, const IrGraph *body, const int64_t *binding)
{
    int64_t b[IR_MAX_SYMS];
    for (int s = 0; s < IR_MAX_SYMS; s++) {
        int p = s < body->nsym ? ir_graph_find_sym(g, body->sym[s]) : -1;
        b[s] = p >= 0 && binding ? binding[p] : 1;
    }
    return (double)ir_cost_flops(body, b);
}

static double node_flops(const IrGraph *g, const IrNode *n, const int64_t *binding)
{
    double out = numel(&n->shape, binding);
    double in0 = n->nin ? numel(&n->in[0]->shape, binding) : 0;
    if (n->body)
        return body_flops(g, n->body, binding);
    switch (n->op) {
    case OP_MATMUL: return matmul_flops(n, binding);
    case OP_GATHER: return 0;
    case OP_CAUSAL_ATTENTION: case OP_CAUSAL_ATTENTION_GRAD: return attention_flops(n, binding);
    case OP_SOFTMAX: case OP_LOG_SOFTMAX: return 5 * out;
    case OP_LAYERNORM: return 8 * out;
    case OP_GELU: return 10 * out;
    case OP_CAUSAL_MASK: return out;
    case OP_MEAN: return in0;
    case OP_CROSS_ENTROPY: return 5 * in0;
    default: break;
    }
    switch (ir_ops[n->op].kind) {
    case OPK_ELEMWISE: return out;
    case OPK_REDUCE: return in0;
    case OPK_SOURCE: case OPK_MOVEMENT: return 0;
    default: return out; /* ops added later: one per element until modelled */
    }
}

int64_t ir_cost_node_flops(const IrGraph *g, const IrNode *n, const int64_t *binding)
{
    return to_i64(node_flops(g, n, binding));
}

double ir_cost_flops_f(const IrGraph *g, const int64_t *binding)
{
    double total = 0;
    for (int i = 0; i < g->nnodes; i++)
        total += node_flops(g, g->nodes[i], binding);
    return total;
}

int64_t ir_cost_flops(const IrGraph *g, const int64_t *binding)
{
    return to_i64(ir_cost_flops_f(g, binding));
}

double ir_cost_activation_bytes_f(const IrGraph *g, const int64_t *binding)
{
    double total = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            total += numel(&n->shape, binding) * (double)ir_dtype_size(n->dtype);
    }
    return total;
}

int64_t ir_cost_activation_bytes(const IrGraph *g, const int64_t *binding)
{
    return to_i64(ir_cost_activation_bytes_f(g, binding));
}
