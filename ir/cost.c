/* cost.c — parameter counts, FLOPs and activation bytes of a graph.
 *
 * The numbers are estimates, not measurements: the one FLOP model of gradc
 * (`gradc check`, `plan`, `bench` and codegen's per-kernel figures all come
 * from here).  Each op's rule and per-element weight are the cost and
 * flops columns of ops.def (cost.h lists them).  Everything is computed in doubles and
 * saturated when converted back, so a huge binding cannot overflow.
 */
#include "cost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---------------------------------------------------------------- ops.def's cost column */

typedef double (*CostRule)(const IrGraph *g, const IrNode *n, const int64_t *binding, double w);

static double cost_none(const IrGraph *g, const IrNode *n, const int64_t *binding, double w)
{
    return 0;
}

/* w per output element (elementwise ops, most composites). */
static double cost_out(const IrGraph *g, const IrNode *n, const int64_t *binding, double w)
{
    return w * numel(&n->shape, binding);
}

/* w per element of operand 0 (reductions, cross_entropy per logit). */
static double cost_in(const IrGraph *g, const IrNode *n, const int64_t *binding, double w)
{
    return n->nin ? w * numel(&n->in[0]->shape, binding) : 0;
}

/* w*M*N*K per batch entry (w = 2: a multiply and an add), that is w*K per
 * output element. */
static double cost_matmul(const IrGraph *g, const IrNode *n, const int64_t *binding, double w)
{
    const IrShape *a = &n->in[0]->shape;
    if (a->rank < 2)
        return 0;
    IrDim k = ir_node_int(n, ATTR_TA, 0) ? a->d[a->rank - 2] : a->d[a->rank - 1];
    return w * dim_value(k, binding) * numel(&n->shape, binding);
}

/* Per causal (i, j <= i) pair and head: forward q.k, exp, and the
 * weighted v (4*hd + 10); the gradient recomputes q.k twice (row
 * statistics, then the weights) and adds dout.v, dq, dk, dv (12*hd + 20);
 * times w. */
static double cost_attention(const IrGraph *g, const IrNode *n, const int64_t *binding, double w)
{
    const IrShape *x = &n->in[0]->shape;
    double T = dim_value(x->d[x->rank - 2], binding), D = dim_value(x->d[x->rank - 1], binding) / 3;
    double H = (double)ir_node_int(n, ATTR_HEADS, 1), hd = D / H;
    double pairs = numel(x, binding) / (T * 3 * D) * H * T * (T + 1) / 2;
    return w * pairs * (n->op == OP_CAUSAL_ATTENTION ? 4 * hd + 10 : 12 * hd + 20);
}

/* The binding of a body's symbols (its own list) from g's. */
static void body_binding(const IrGraph *g, const IrGraph *body, const int64_t *binding,
                         int64_t *b)
{
    for (int s = 0; s < IR_MAX_SYMS; s++) {
        int p = s < body->nsym ? ir_graph_find_sym(g, body->sym[s]) : -1;
        b[s] = p >= 0 && binding ? binding[p] : 1;
    }
}

/* A fused node: the sum over its body. */
static double cost_body(const IrGraph *g, const IrNode *n, const int64_t *binding, double w)
{
    if (!n->body)
        return 0;
    int64_t b[IR_MAX_SYMS];
    body_binding(g, n->body, binding, b);
    return (double)ir_cost_flops(n->body, b);
}

static const CostRule cost_rules[OP_COUNT] = {
#define OP(E, n, mi, ma, k, sr, dr, lower, math, cost, ...) [OP_##E] = cost_##cost,
#include "ops.def"
#undef OP
};

static double node_flops(const IrGraph *g, const IrNode *n, const int64_t *binding)
{
    if (n->body)
        return cost_body(g, n, binding, 1);
    return n->op < OP_COUNT ? cost_rules[n->op](g, n, binding, ir_ops[n->op].flops) : 0;
}

int64_t ir_cost_node_flops(const IrGraph *g, const IrNode *n, const int64_t *binding)
{
    return to_i64(node_flops(g, n, binding));
}

/* ---------------------------------------------------------------- FLOPs of a kernel */

/* A run of sibling fused nodes is one kernel: codegen merges their bodies
 * and computes what they share once (a layernorm's statistics, a matmul
 * heading several epilogues).  So its FLOPs are those of the distinct
 * nodes of the bodies: body input k stands for operand k of every sibling,
 * and two nodes are one when their op, attributes, type and operands are. */
typedef struct Distinct {
    const IrNode *n;
    int in[IR_MAX_IN];
} Distinct;

static bool same_attrs(const IrNode *a, const IrNode *b)
{
    if (a->nattr != b->nattr)
        return false;
    for (int k = 0; k < a->nattr; k++) {
        const IrAttr *x = &a->attr[k], *y = &b->attr[k];
        if (x->key != y->key || x->n != y->n || memcmp(x->i, y->i, sizeof x->i) ||
            x->f != y->f || (x->s != y->s && (!x->s || !y->s || strcmp(x->s, y->s))))
            return false;
    }
    return true;
}

static bool same_node(const Distinct *d, const IrNode *n, const int *in)
{
    return d->n->op == n->op && d->n->nin == n->nin && d->n->dtype == n->dtype &&
           ir_shape_eq(&d->n->shape, &n->shape) && same_attrs(d->n, n) &&
           !memcmp(d->in, in, sizeof *in * (size_t)n->nin);
}

/* The id of body node n (operand ids in `in`); *fresh when first seen. */
static int intern(Distinct *ds, int *nd, const IrNode *n, const int *in, bool *fresh)
{
    for (int k = 0; k < *nd; k++)
        if (same_node(&ds[k], n, in)) {
            *fresh = false;
            return IR_MAX_IN + k;
        }
    ds[*nd].n = n;
    memcpy(ds[*nd].in, in, sizeof *in * (size_t)n->nin);
    *fresh = true;
    return IR_MAX_IN + (*nd)++;
}

/* Adds the FLOPs of body's nodes not seen yet to *flops. */
static void add_body(const IrGraph *g, const IrGraph *body, const int64_t *binding,
                     Distinct *ds, int *nd, int64_t *flops)
{
    int64_t b[IR_MAX_SYMS];
    int *id = ir_malloc(sizeof *id * ((size_t)body->nnodes + 1)), ninput = 0;
    body_binding(g, body, binding, b);
    for (int i = 0; i < body->nnodes; i++) {
        const IrNode *n = body->nodes[i];
        int in[IR_MAX_IN];
        bool fresh;
        for (int k = 0; k < n->nin; k++)
            in[k] = id[n->in[k]->index];
        if (n->op == OP_INPUT) {
            id[i] = ninput++;
            continue;
        }
        id[i] = intern(ds, nd, n, in, &fresh);
        *flops += fresh ? ir_cost_node_flops(body, n, b) : 0;
    }
    free(id);
}

int64_t ir_cost_run_flops(const IrGraph *g, int first, int end, const int64_t *binding)
{
    if (first == end || !g->nodes[first]->body)
        return ir_cost_node_flops(g, g->nodes[first], binding);
    int cap = 0;
    for (int i = first; i <= end; i++)
        cap += g->nodes[i]->body->nnodes;
    Distinct *ds = ir_malloc(sizeof *ds * ((size_t)cap + 1));
    int nd = 0;
    int64_t flops = 0;
    for (int i = first; i <= end; i++)
        add_body(g, g->nodes[i]->body, binding, ds, &nd, &flops);
    free(ds);
    return flops;
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
