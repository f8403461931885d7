/* decompose.c — rewrite every composite op into primitive ops.
 *
 * Composites (softmax, log_softmax, layernorm, gelu, causal_mask, mean,
 * cross_entropy) stay whole in the early dumps so that they read like the
 * model file, and autodiff differentiates them with their own rules.  The
 * fuser, though, works from primitives only: it rebuilds the softmax or
 * layernorm kernel from reductions and elementwise ops, the same shapes
 * autodiff and simplify produce.  This pass sits between the two
 * (autodiff,decompose,simplify,cse,dce,fuse,...).
 *
 * Each composite op has one rule (rules[], indexed by op) that builds the
 * replacement from primitives and returns the node that stands for the
 * composite's value; it must have the composite's exact type.  The rules
 * follow the reference interpreter (ir/interp.c) operation for operation,
 * in the same association order and the same summation order (a reduction
 * adds along its axis in ascending index order, as the interpreter's
 * composite loops do), so that in double precision the decomposed graph
 * gives the same bits as the composite, not only close values:
 *   - softmax and log_softmax subtract the row max before exp, and
 *     log_softmax is (x - max) - log(sum exp(x - max));
 *   - layernorm takes the mean, then the mean of the squared deviations
 *     (never E[x^2] - E[x]^2, which cancels), then rsqrt(var + eps);
 *   - mean is sum / count.  The count is a const when the reduced dims are
 *     numbers; over a symbolic dim (B, T) it is the sum of a const 1 over
 *     exactly the reduced dims, which is exact (an integer: exact in f32 up
 *     to 2^24, in double up to 2^53);
 *   - causal_mask is where(i + (Tk - Tq) < j, -inf, x) with i and j from
 *     iota; a symbolic Tk - Tq is computed the same way as a count;
 *   - cross_entropy picks row[target] with a one-hot (eq against an iota
 *     of the classes, where, sum), so the whole loss stays in the row's
 *     iteration space for the fuser; rows whose target is ignore_index are
 *     zeroed with where (not multiplied by a mask: their loss may be inf
 *     or NaN), and the mean divides by max(count, 1), which gives 0 when
 *     every target is ignored, as the interpreter does.
 * One difference is deliberate: the interpreter reports a target outside
 * [0, V) that is not ignore_index as an error; the decomposed graph has no
 * way to fail, and such a row contributes logsumexp(row) (its one-hot row
 * is empty).  Targets are checked where they are made, in the data loader.
 *
 * The nodes are rebuilt in order: the node list is emptied and every node
 * is appended again, a composite as its replacement (ir_node_new appends,
 * so the new nodes land exactly where the composite stood).  node->aux
 * maps a composite to its replacement for the operands of later nodes and
 * for the outputs.  Replacement nodes keep the composite's debug name: the
 * last one is named NAME, the others NAME.max, NAME.exp, ... so dumps stay
 * readable.  Fusion bodies are decomposed as graphs of their own; a node
 * that carries a body is kept as it is.
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The rewrite of one composite node. */
typedef struct Dx {
    IrGraph *g;
    const IrNode *n;
} Dx;

typedef IrNode *(*DecomposeFn)(Dx *d);

/* ---------------------------------------------------------------- builders */

/* Names m NAME.sfx (NAME alone when sfx is NULL) if the composite has a name. */
static IrNode *named(Dx *d, IrNode *m, const char *sfx)
{
    char buf[512];
    if (!d->n->name)
        return m;
    if (!sfx) {
        m->name = ir_arena_strdup(d->g->arena, d->n->name);
        return m;
    }
    snprintf(buf, sizeof buf, "%s.%s", d->n->name, sfx);
    m->name = ir_arena_strdup(d->g->arena, buf);
    return m;
}

static IrNode *scalar(Dx *d, double v, IrDType dt)
{
    return ir_const(d->g, v, dt, ir_shape_of(0, NULL));
}

static IrNode *bin(Dx *d, IrOp op, IrNode *a, IrNode *b, const char *sfx)
{
    return named(d, ir_binary(d->g, op, a, b), sfx);
}

static IrNode *un(Dx *d, IrOp op, IrNode *a, const char *sfx)
{
    return named(d, ir_unary(d->g, op, a), sfx);
}

static IrNode *where(Dx *d, IrNode *c, IrNode *a, IrNode *b, const char *sfx)
{
    IrError err = {0};
    IrNode *in[3] = {c, a, b};
    IrNode *m = ir_node_new(d->g, OP_WHERE, in, 3, NULL, 0, NULL, NULL, &err);
    IR_ASSERT(m);
    return named(d, m, sfx);
}

/* sum or max of x over one axis. */
static IrNode *reduce1(Dx *d, IrOp op, IrNode *x, int axis, bool keep, const char *sfx)
{
    return named(d, ir_reduce(d->g, op, x, &axis, 1, keep), sfx);
}

/* sum of x over every axis: an f32[] or i32[] scalar. */
static IrNode *sum_all(Dx *d, IrNode *x, const char *sfx)
{
    return named(d, ir_reduce(d->g, OP_SUM, x, NULL, 0, false), sfx);
}

static IrNode *reshape(Dx *d, IrNode *x, IrShape s, const char *sfx)
{
    IrError err = {0};
    IrNode *m = ir_node_new(d->g, OP_RESHAPE, &x, 1, NULL, 0, NULL, &s, &err);
    IR_ASSERT(m);
    return named(d, m, sfx);
}

static IrNode *iota(Dx *d, int axis, IrShape s, const char *sfx)
{
    IrError err = {0};
    IrDType dt = DT_I32;
    IrAttr a = ir_attr_int(ATTR_AXIS, axis);
    IrNode *m = ir_node_new(d->g, OP_IOTA, NULL, 0, &a, 1, &dt, &s, &err);
    IR_ASSERT(m);
    return named(d, m, sfx);
}

/* The size of dims s (their product) as a dt[] value: a const when it is a
 * number, else the sum of a const 1 of shape s (exact, see the top). */
static IrNode *size_of(Dx *d, IrShape s, IrDType dt, const char *sfx)
{
    IrDim prod;
    int64_t v;
    if (ir_shape_numel(&s, &prod) && ir_dim_is_const(prod, &v))
        return scalar(d, (double)v, dt);
    return sum_all(d, ir_const(d->g, 1.0, dt, s), sfx);
}

/* ---------------------------------------------------------------- axes */

/* The axis attribute of the composite, normalised. */
static int node_axis(const Dx *d, int64_t dflt)
{
    int ax = ir_axis(ir_node_int(d->n, ATTR_AXIS, dflt), d->n->in[0]->shape.rank);
    IR_ASSERT(ax >= 0);
    return ax;
}

/* mask[i] for the axes in attribute axes (absent or empty: every axis). */
static void node_axes(const Dx *d, bool *mask)
{
    const IrAttr *a = ir_node_attr(d->n, ATTR_AXES);
    int r = d->n->in[0]->shape.rank;
    for (int i = 0; i < r; i++)
        mask[i] = !a || a->n == 0;
    for (int i = 0; a && i < a->n; i++)
        mask[ir_axis(a->i[i], r)] = true;
}

/* The dims of s picked by mask, in order. */
static IrShape masked_dims(const IrShape *s, const bool *mask)
{
    IrShape out;
    memset(&out, 0, sizeof out);
    for (int i = 0; i < s->rank; i++)
        if (mask[i])
            out.d[out.rank++] = s->d[i];
    return out;
}

/* ---------------------------------------------------------------- rules */

/* softmax(x, axis) = e / sum(e), e = exp(x - max(x)). */
static IrNode *dx_softmax(Dx *d)
{
    IrNode *x = d->n->in[0];
    int ax = node_axis(d, -1);
    IrNode *mx = reduce1(d, OP_MAX, x, ax, true, "max");
    IrNode *e = un(d, OP_EXP, bin(d, OP_SUB, x, mx, "shift"), "exp");
    return bin(d, OP_DIV, e, reduce1(d, OP_SUM, e, ax, true, "sum"), NULL);
}

/* log_softmax(x, axis) = (x - max) - log(sum exp(x - max)). */
static IrNode *dx_log_softmax(Dx *d)
{
    IrNode *x = d->n->in[0];
    int ax = node_axis(d, -1);
    IrNode *s = bin(d, OP_SUB, x, reduce1(d, OP_MAX, x, ax, true, "max"), "shift");
    IrNode *z = reduce1(d, OP_SUM, un(d, OP_EXP, s, "exp"), ax, true, "sum");
    return bin(d, OP_SUB, s, un(d, OP_LOG, z, "log"), NULL);
}

/* layernorm(x[..., D], scale, shift) over the last axis, biased variance:
 * (x - mean) * rsqrt(mean((x - mean)^2) + eps) * scale + shift. */
static IrNode *dx_layernorm(Dx *d)
{
    IrNode *x = d->n->in[0];
    int ax = x->shape.rank - 1;
    IrShape last = ir_shape_of(1, &x->shape.d[ax]);
    IrNode *cnt = size_of(d, last, DT_F32, "count");
    IrNode *mean = bin(d, OP_DIV, reduce1(d, OP_SUM, x, ax, true, "sum"), cnt, "mean");
    IrNode *xc = bin(d, OP_SUB, x, mean, "centered");
    IrNode *sq = bin(d, OP_MUL, xc, xc, "sq");
    IrNode *var = bin(d, OP_DIV, reduce1(d, OP_SUM, sq, ax, true, "sqsum"), cnt, "var");
    IrNode *eps = scalar(d, ir_node_float(d->n, ATTR_EPS, 1e-5), DT_F32);
    IrNode *rstd = un(d, OP_RSQRT, bin(d, OP_ADD, var, eps, "var_eps"), "rstd");
    IrNode *y = bin(d, OP_MUL, bin(d, OP_MUL, xc, rstd, "norm"), d->n->in[1], "scaled");
    return bin(d, OP_ADD, y, d->n->in[2], NULL);
}

/* gelu, tanh approximation, grouped as the interpreter computes it:
 * (0.5 x) (1 + tanh(sqrt(2/pi) (x + ((0.044715 x) x) x))). */
static IrNode *dx_gelu(Dx *d)
{
    IrNode *x = d->n->in[0];
    IrNode *c = bin(d, OP_MUL, x, scalar(d, 0.044715, DT_F32), "c");
    IrNode *c3 = bin(d, OP_MUL, bin(d, OP_MUL, c, x, "cx"), x, "cx2");
    IrNode *u = bin(d, OP_ADD, x, c3, "inner");
    IrNode *v = bin(d, OP_MUL, u, scalar(d, sqrt(2.0 / M_PI), DT_F32), "scaled");
    IrNode *th = un(d, OP_TANH, v, "tanh");
    IrNode *w = bin(d, OP_ADD, th, scalar(d, 1.0, DT_F32), "onep");
    IrNode *h = bin(d, OP_MUL, x, scalar(d, 0.5, DT_F32), "half");
    return bin(d, OP_MUL, h, w, NULL);
}

/* Tk - Tq as an i32[] value, or NULL when it is 0. */
static IrNode *causal_offset(Dx *d, IrDim tq, IrDim tk)
{
    IrDim diff;
    int64_t v;
    if (ir_dim_sub(tk, tq, &diff) && ir_dim_is_const(diff, &v))
        return v ? scalar(d, (double)v, DT_I32) : NULL;
    IrNode *k = size_of(d, ir_shape_of(1, &tk), DT_I32, "tk");
    return bin(d, OP_SUB, k, size_of(d, ir_shape_of(1, &tq), DT_I32, "tq"), "offset");
}

/* causal_mask(x[..., Tq, Tk]) = where(i + (Tk - Tq) < j, -inf, x). */
static IrNode *dx_causal_mask(Dx *d)
{
    IrNode *x = d->n->in[0];
    int r = x->shape.rank;
    IrDim one = ir_dim_const(1), tq = x->shape.d[r - 2], tk = x->shape.d[r - 1];
    IrNode *rows = iota(d, 0, ir_shape_of(2, (IrDim[]){tq, one}), "rows");
    IrNode *cols = iota(d, 1, ir_shape_of(2, (IrDim[]){one, tk}), "cols");
    IrNode *off = causal_offset(d, tq, tk);
    if (off)
        rows = bin(d, OP_ADD, rows, off, "last");
    IrNode *mask = bin(d, OP_LT, rows, cols, "mask");
    return where(d, mask, scalar(d, -INFINITY, DT_F32), x, NULL);
}

/* mean(x, axes, keepdim) = sum(x, axes, keepdim) / count; the sum lists
 * its axes normalised (ascending, non-negative) and keepdim explicitly. */
static IrNode *dx_mean(Dx *d)
{
    IrNode *x = d->n->in[0];
    bool mask[IR_MAX_RANK];
    int axes[IR_MAX_RANK], n = 0;
    node_axes(d, mask);
    for (int i = 0; i < x->shape.rank; i++)
        if (mask[i])
            axes[n++] = i;
    bool keep = ir_node_int(d->n, ATTR_KEEPDIM, 0) != 0;
    IrNode *s = named(d, ir_reduce(d->g, OP_SUM, x, axes, n, keep), "sum");
    IrNode *cnt = size_of(d, masked_dims(&x->shape, mask), DT_F32, "count");
    return bin(d, OP_DIV, s, cnt, NULL);
}

/* logits[L, V] -> logsumexp over V, keepdim: max + log(sum exp(x - max)). */
static IrNode *xent_lse(Dx *d, IrNode *x, int ax)
{
    IrNode *mx = reduce1(d, OP_MAX, x, ax, true, "max");
    IrNode *e = un(d, OP_EXP, bin(d, OP_SUB, x, mx, "shift"), "exp");
    IrNode *z = un(d, OP_LOG, reduce1(d, OP_SUM, e, ax, true, "sum"), "log");
    return bin(d, OP_ADD, mx, z, "lse");
}

/* logits[L, V], targets as tk[L, 1] -> logits[l, tk[l]] as [L, 1], by a
 * one-hot over the classes (an empty row picks 0). */
static IrNode *xent_pick(Dx *d, IrNode *x, IrNode *tk, int ax)
{
    IrNode *cls = iota(d, 0, ir_shape_of(1, &x->shape.d[ax]), "classes");
    IrNode *hot = bin(d, OP_EQ, tk, cls, "onehot");
    IrNode *sel = where(d, hot, x, scalar(d, 0.0, DT_F32), "select");
    return reduce1(d, OP_SUM, sel, ax, true, "picked");
}

/* cross_entropy(logits[L..., V], targets[L...]) -> f32[]: the mean of
 * logsumexp(row) - row[target] over the rows whose target is not
 * ignore_index; 0 when every row is ignored. */
static IrNode *dx_cross_entropy(Dx *d)
{
    IrNode *x = d->n->in[0], *t = d->n->in[1];
    int ax = x->shape.rank - 1;
    IrShape ks = x->shape;
    ks.d[ax] = ir_dim_const(1);
    IrNode *tk = reshape(d, t, ks, "targets");
    IrNode *lse = xent_lse(d, x, ax);
    IrNode *loss = bin(d, OP_SUB, lse, xent_pick(d, x, tk, ax), "rowloss");
    double ign = (double)ir_node_int(d->n, ATTR_IGNORE_INDEX, -100);
    IrNode *skip = bin(d, OP_EQ, tk, scalar(d, ign, DT_I32), "ignored");
    IrNode *zero = scalar(d, 0.0, DT_F32);
    IrNode *total = sum_all(d, where(d, skip, zero, loss, "masked"), "total");
    IrNode *valid = where(d, skip, zero, scalar(d, 1.0, DT_F32), "valid");
    IrNode *cnt = sum_all(d, valid, "count");
    IrNode *den = bin(d, OP_MAXIMUM, cnt, scalar(d, 1.0, DT_F32), "denom");
    return bin(d, OP_DIV, total, den, NULL);
}

static const DecomposeFn rules[OP_COUNT] = {
    [OP_SOFTMAX] = dx_softmax,
    [OP_LOG_SOFTMAX] = dx_log_softmax,
    [OP_LAYERNORM] = dx_layernorm,
    [OP_GELU] = dx_gelu,
    [OP_CAUSAL_MASK] = dx_causal_mask,
    [OP_MEAN] = dx_mean,
    [OP_CROSS_ENTROPY] = dx_cross_entropy,
};

bool pass_decompose_has_rule(IrOp op)
{
    return op < OP_COUNT && rules[op] != NULL;
}

/* ---------------------------------------------------------------- the pass */

static bool decomposable(const IrNode *n)
{
    return ir_ops[n->op].kind == OPK_COMPOSITE && !n->body;
}

/* A composite without a rule is a bug (a new row in ops.def without its
 * decomposition); found before anything is rewritten. */
static bool check_rules(const IrGraph *g, PassCtx *ctx)
{
    for (int i = 0; i < g->nnodes; i++)
        if (decomposable(g->nodes[i]) && !rules[g->nodes[i]->op]) {
            ir_error(ctx->err, "decompose: no decomposition for composite op '%s'",
                     ir_op_name(g->nodes[i]->op));
            ir_error_hint(ctx->err, "add a rule for it in passes/decompose.c");
            ctx->internal = true;
            return false;
        }
    return true;
}

static IrNode *resolve(IrNode *n)
{
    return n->aux ? (IrNode *)n->aux : n;
}

/* Builds n's replacement at the end of g, checks its type, maps n to it. */
static void rewrite(IrGraph *g, IrNode *n)
{
    Dx d = {g, n};
    IrNode *r = rules[n->op](&d);
    IR_ASSERT(r->dtype == n->dtype && ir_shape_eq(&r->shape, &n->shape));
    n->aux = r;
}

static void rebuild(IrGraph *g, IrNode **old, int nold)
{
    g->nnodes = 0;
    for (int i = 0; i < nold; i++) {
        IrNode *n = old[i];
        for (int j = 0; j < n->nin; j++)
            n->in[j] = resolve(n->in[j]);
        if (decomposable(n))
            rewrite(g, n);
        else
            ir_graph_append(g, n);
    }
    for (int i = 0; i < g->nout; i++)
        g->outs[i].node = resolve(g->outs[i].node);
}

bool pass_decompose(IrGraph *g, PassCtx *ctx)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->body && !pass_decompose(g->nodes[i]->body, ctx))
            return false;
    if (!check_rules(g, ctx))
        return false;
    int nold = g->nnodes;
    IrNode **old = malloc((nold ? nold : 1) * sizeof *old);
    IR_ASSERT(old);
    if (nold)
        memcpy(old, g->nodes, nold * sizeof *old);
    for (int i = 0; i < nold; i++)
        old[i]->aux = NULL;
    rebuild(g, old, nold);
    for (int i = 0; i < nold; i++)
        old[i]->aux = NULL;
    free(old);
    ir_graph_reindex(g);
    return true;
}
