/* grad_rules.c — one gradient rule per op of ir/ops.def.
 *
 * Rule ad_<name> receives a node n and g = d loss / d n (n's shape) and
 * hands each differentiable operand its share with ad_acc.  Rules only
 * append ordinary IR nodes, so the backward pass is IR like the forward
 * one: it prints, fuses, schedules and runs in the interpreter.
 *
 * Conventions that every rule follows:
 *  - an operand gets a gradient only when ad_wants says it needs one, so
 *    work that feeds only frozen params or integer inputs is never built;
 *  - operands of broadcasting ops get `unbroadcast(g)`: a sum over the
 *    axes that broadcasting added or stretched, back to the operand shape;
 *  - composites (softmax, layernorm, gelu, cross_entropy, ...) get their
 *    gradient written in primitives and other composites, recomputing the
 *    statistics they need (mean, rstd) instead of saving them;
 *  - ops that cannot carry a gradient (integer indices, comparisons, the
 *    where condition, RNG counters) have ops.def's nondiff (or step)
 *    column, with a reason.
 * docs/autodiff.md gives the formulas; tests/unit/test_autodiff.c checks
 * each rule against central finite differences op by op.
 */
#include "grad_rules.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- non-differentiable operands */

/* ops.def's nondiff column, and the RNG step operand of its step column. */
const char *pass_autodiff_nondiff_reason(IrOp op, int operand)
{
    if (op >= OP_COUNT)
        return NULL;
    const IrOpInfo *o = &ir_ops[op];
    if (operand == o->step)
        return "the step operand only keys the RNG counter";
    if (o->nondiff == -1 || o->nondiff == operand)
        return o->nondiff_why;
    return NULL;
}

/* ---------------------------------------------------------------- builders */

static IrNode *mk(AdState *ad, IrOp op, IrNode **in, int nin, const IrAttr *at, int nat,
                  const IrDType *dt, const IrShape *s)
{
    IrError e = {0};
    IrNode *r = ir_node_new(ad->g, op, in, nin, at, nat, dt, s, &e);
    if (!r) {
        fprintf(stderr, "gradc: internal error: autodiff built an ill-typed %s: %s\n",
                ir_op_name(op), e.msg);
        IR_ASSERT(!"autodiff: ill-typed node");
    }
    return r;
}

static IrNode *cst(AdState *ad, double v, const IrShape *s)
{
    IrDType dt = DT_F32;
    IrAttr a = ir_attr_float(ATTR_VALUE, v);
    return mk(ad, OP_CONST, NULL, 0, &a, 1, &dt, s);
}

static IrNode *sc(AdState *ad, double v)
{
    IrShape s;
    memset(&s, 0, sizeof s);
    return cst(ad, v, &s);
}

static IrNode *bin(AdState *ad, IrOp op, IrNode *a, IrNode *b)
{
    IrNode *in[2] = {a, b};
    return mk(ad, op, in, 2, NULL, 0, NULL, NULL);
}

static IrNode *add(AdState *ad, IrNode *a, IrNode *b) { return bin(ad, OP_ADD, a, b); }
static IrNode *sub(AdState *ad, IrNode *a, IrNode *b) { return bin(ad, OP_SUB, a, b); }
static IrNode *mul(AdState *ad, IrNode *a, IrNode *b) { return bin(ad, OP_MUL, a, b); }
static IrNode *dvd(AdState *ad, IrNode *a, IrNode *b) { return bin(ad, OP_DIV, a, b); }

static IrNode *un(AdState *ad, IrOp op, IrNode *a)
{
    return mk(ad, op, &a, 1, NULL, 0, NULL, NULL);
}

static IrNode *sel(AdState *ad, IrNode *c, IrNode *a, IrNode *b)
{
    IrNode *in[3] = {c, a, b};
    return mk(ad, OP_WHERE, in, 3, NULL, 0, NULL, NULL);
}

/* 1.0 where c holds, else 0.0 (f32, c's shape). */
static IrNode *ind(AdState *ad, IrNode *c)
{
    return sel(ad, c, sc(ad, 1), sc(ad, 0));
}

static IrNode *reshape_to(AdState *ad, IrNode *x, const IrShape *s)
{
    if (ir_shape_eq(&x->shape, s))
        return x;
    return mk(ad, OP_RESHAPE, &x, 1, NULL, 0, NULL, s);
}

static IrNode *bcast_to(AdState *ad, IrNode *x, const IrShape *s)
{
    if (ir_shape_eq(&x->shape, s))
        return x;
    return mk(ad, OP_BROADCAST, &x, 1, NULL, 0, NULL, s);
}

/* Sums over the axes set in mask; no axes set means no reduction at all
 * (unlike the op, where empty `axes` means every axis). */
static IrNode *sum_mask(AdState *ad, IrNode *x, const bool *mask, bool keep)
{
    int64_t ax[IR_MAX_RANK];
    int n = 0;
    for (int i = 0; i < x->shape.rank; i++)
        if (mask[i])
            ax[n++] = i;
    if (n == 0)
        return x;
    IrAttr at[2] = {ir_attr_ints(ATTR_AXES, ax, n), ir_attr_int(ATTR_KEEPDIM, keep)};
    return mk(ad, OP_SUM, &x, 1, at, 2, NULL, NULL);
}

/* Reduction over one axis with keepdim, e.g. the softmax axis. */
static IrNode *reduce_axis(AdState *ad, IrOp op, IrNode *x, int axis)
{
    int64_t ax = axis;
    IrAttr at[2] = {ir_attr_ints(ATTR_AXES, &ax, 1), ir_attr_int(ATTR_KEEPDIM, 1)};
    return mk(ad, op, &x, 1, at, 2, NULL, NULL);
}

/* The gradient of a broadcast operand: sum g back to the operand shape. */
static IrNode *unbroadcast(AdState *ad, IrNode *g, const IrShape *to)
{
    bool lead[IR_MAX_RANK] = {0}, ones[IR_MAX_RANK] = {0};
    int extra = g->shape.rank - to->rank;
    IR_ASSERT(extra >= 0);
    for (int i = 0; i < extra; i++)
        lead[i] = true;
    g = sum_mask(ad, g, lead, false);
    for (int i = 0; i < to->rank; i++)
        ones[i] = ir_dim_is_one(to->d[i]) && !ir_dim_is_one(g->shape.d[i]);
    g = sum_mask(ad, g, ones, true);
    IR_ASSERT(ir_shape_eq(&g->shape, to));
    return g;
}

static void acc_ub(AdState *ad, IrNode *n, int j, IrNode *g)
{
    if (ad_wants(ad, n, j))
        ad_acc(ad, n->in[j], unbroadcast(ad, g, &n->in[j]->shape));
}

/* The reduced axes of a reduce node (empty `axes`: all). */
static void reduced_axes(const IrNode *n, bool *mask)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    for (int i = 0; i < IR_MAX_RANK; i++)
        mask[i] = i < r && (!a || a->n == 0);
    for (int i = 0; a && i < a->n; i++)
        mask[ir_axis(a->i[i], r)] = true;
}

/* g of a reduce node, reshaped to keepdim form and broadcast to the input. */
static IrNode *spread(AdState *ad, IrNode *n, IrNode *g)
{
    bool mask[IR_MAX_RANK];
    IrShape keep = n->in[0]->shape;
    reduced_axes(n, mask);
    for (int i = 0; i < keep.rank; i++)
        if (mask[i])
            keep.d[i] = ir_dim_const(1);
    return bcast_to(ad, reshape_to(ad, g, &keep), &n->in[0]->shape);
}

/* The number of elements a reduce node folds into one, as a scalar node:
 * a constant when the dims are known, else a sum of ones of those dims. */
static IrNode *fold_count(AdState *ad, const IrNode *n)
{
    bool mask[IR_MAX_RANK];
    IrShape s;
    memset(&s, 0, sizeof s);
    reduced_axes(n, mask);
    for (int i = 0; i < n->in[0]->shape.rank; i++)
        if (mask[i])
            s.d[s.rank++] = n->in[0]->shape.d[i];
    IrDim c;
    int64_t v;
    if (ir_shape_numel(&s, &c) && ir_dim_is_const(c, &v))
        return sc(ad, (double)v);
    bool all[IR_MAX_RANK] = {true, true, true, true, true, true};
    return sum_mask(ad, cst(ad, 1, &s), all, false);
}

static int node_axis(const IrNode *n, int64_t dflt)
{
    return ir_axis(ir_node_int(n, ATTR_AXIS, dflt), n->in[0]->shape.rank);
}

/* ---------------------------------------------------------------- sources */

static void ad_input(AdState *ad, IrNode *n, IrNode *g) {}
static void ad_param(AdState *ad, IrNode *n, IrNode *g) {} /* read from the side table */
static void ad_const(AdState *ad, IrNode *n, IrNode *g) {}
static void ad_iota(AdState *ad, IrNode *n, IrNode *g) {} /* nondiff */

/* ---------------------------------------------------------------- elementwise unary */

static void ad_neg(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], un(ad, OP_NEG, g));
}

static void ad_exp(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], mul(ad, g, n));
}

static void ad_log(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], dvd(ad, g, n->in[0]));
}

/* y = sqrt(x): dy = 0.5 / y */
static void ad_sqrt(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], dvd(ad, mul(ad, g, sc(ad, 0.5)), n));
}

/* y = x^-1/2: dy = -0.5 y^3 */
static void ad_rsqrt(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *y3 = mul(ad, n, mul(ad, n, n));
    ad_acc(ad, n->in[0], mul(ad, g, mul(ad, y3, sc(ad, -0.5))));
}

/* y = tanh(x): dy = 1 - y^2 */
static void ad_tanh(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], mul(ad, g, sub(ad, sc(ad, 1), mul(ad, n, n))));
}

/* y = sin(x): dy = cos(x) */
static void ad_sin(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], mul(ad, g, un(ad, OP_COS, n->in[0])));
}

/* y = cos(x): dy = -sin(x) */
static void ad_cos(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], un(ad, OP_NEG, mul(ad, g, un(ad, OP_SIN, n->in[0]))));
}

/* y = 1/x: dy = -y^2 */
static void ad_recip(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], un(ad, OP_NEG, mul(ad, g, mul(ad, n, n))));
}

/* sign(x), with sign(0) = 0 as in PyTorch. */
static void ad_abs(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *x = n->in[0], *z = sc(ad, 0);
    IrNode *sign = sub(ad, ind(ad, bin(ad, OP_LT, z, x)), ind(ad, bin(ad, OP_LT, x, z)));
    ad_acc(ad, x, mul(ad, g, sign));
}

/* relu'(0) = 0, as in PyTorch. */
static void ad_relu(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *x = n->in[0];
    ad_acc(ad, x, sel(ad, bin(ad, OP_LT, sc(ad, 0), x), g, sc(ad, 0)));
}

/* Only f32 -> f32 casts carry a gradient; integer and bool values don't
 * (ad_wants is false for them, as their dtype is not f32). */
static void ad_cast(AdState *ad, IrNode *n, IrNode *g)
{
    if (n->in[0]->dtype == DT_F32 && n->dtype == DT_F32)
        ad_acc(ad, n->in[0], g);
}

/* dropout(x) = x * mask / (1-p) with the mask keyed by (seed, step,
 * element index), so it is linear in x: the gradient is the same dropout,
 * with the same seed and step, applied to g. */
static void ad_dropout(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *in[2] = {g, n->nin > 1 ? n->in[1] : NULL};
    ad_acc(ad, n->in[0], mk(ad, OP_DROPOUT, in, n->nin, n->attr, n->nattr, NULL, NULL));
}

/* ---------------------------------------------------------------- elementwise binary */

static void ad_add(AdState *ad, IrNode *n, IrNode *g)
{
    acc_ub(ad, n, 0, g);
    acc_ub(ad, n, 1, g);
}

static void ad_sub(AdState *ad, IrNode *n, IrNode *g)
{
    acc_ub(ad, n, 0, g);
    if (ad_wants(ad, n, 1))
        acc_ub(ad, n, 1, un(ad, OP_NEG, g));
}

static void ad_mul(AdState *ad, IrNode *n, IrNode *g)
{
    if (ad_wants(ad, n, 0))
        acc_ub(ad, n, 0, mul(ad, g, n->in[1]));
    if (ad_wants(ad, n, 1))
        acc_ub(ad, n, 1, mul(ad, g, n->in[0]));
}

/* y = a / b: da = g / b, db = -g * y / b */
static void ad_div(AdState *ad, IrNode *n, IrNode *g)
{
    if (ad_wants(ad, n, 0))
        acc_ub(ad, n, 0, dvd(ad, g, n->in[1]));
    if (ad_wants(ad, n, 1))
        acc_ub(ad, n, 1, un(ad, OP_NEG, dvd(ad, mul(ad, g, n), n->in[1])));
}

/* maximum/minimum: the winner takes g; a tie splits it in halves (the
 * value central differences see).  `first_wins` holds where a wins. */
static void minmax(AdState *ad, IrNode *n, IrNode *g, IrNode *first_wins)
{
    IrNode *tie = bin(ad, OP_EQ, n->in[0], n->in[1]);
    IrNode *wa = sel(ad, first_wins, sc(ad, 1), sel(ad, tie, sc(ad, 0.5), sc(ad, 0)));
    if (ad_wants(ad, n, 0))
        acc_ub(ad, n, 0, mul(ad, g, wa));
    if (ad_wants(ad, n, 1))
        acc_ub(ad, n, 1, mul(ad, g, sub(ad, sc(ad, 1), wa)));
}

static void ad_maximum(AdState *ad, IrNode *n, IrNode *g)
{
    minmax(ad, n, g, bin(ad, OP_LT, n->in[1], n->in[0]));
}

static void ad_minimum(AdState *ad, IrNode *n, IrNode *g)
{
    minmax(ad, n, g, bin(ad, OP_LT, n->in[0], n->in[1]));
}

static void ad_lt(AdState *ad, IrNode *n, IrNode *g) {} /* nondiff */
static void ad_le(AdState *ad, IrNode *n, IrNode *g) {} /* nondiff */
static void ad_eq(AdState *ad, IrNode *n, IrNode *g) {} /* nondiff */

static void ad_where(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *z = sc(ad, 0);
    if (ad_wants(ad, n, 1))
        acc_ub(ad, n, 1, sel(ad, n->in[0], g, z));
    if (ad_wants(ad, n, 2))
        acc_ub(ad, n, 2, sel(ad, n->in[0], z, g));
}

/* ---------------------------------------------------------------- reductions */

static void ad_sum(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], spread(ad, n, g));
}

static void ad_mean(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], spread(ad, n, dvd(ad, g, fold_count(ad, n))));
}

/* The max elements share g equally (ties as central differences see them). */
static void ad_max(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *x = n->in[0];
    IrNode *hit = ind(ad, bin(ad, OP_EQ, x, spread(ad, n, n)));
    bool mask[IR_MAX_RANK];
    reduced_axes(n, mask);
    IrNode *ties = sum_mask(ad, hit, mask, true);
    ad_acc(ad, x, mul(ad, dvd(ad, hit, ties), spread(ad, n, g)));
}

/* ---------------------------------------------------------------- movement */

static void ad_reshape(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], reshape_to(ad, g, &n->in[0]->shape));
}

static void ad_transpose(AdState *ad, IrNode *n, IrNode *g)
{
    const IrAttr *p = ir_node_attr(n, ATTR_PERM);
    int64_t inv[IR_MAX_RANK];
    for (int i = 0; i < p->n; i++)
        inv[ir_axis(p->i[i], p->n)] = i;
    IrAttr a = ir_attr_ints(ATTR_PERM, inv, p->n);
    ad_acc(ad, n->in[0], mk(ad, OP_TRANSPOSE, &g, 1, &a, 1, NULL, NULL));
}

static void ad_broadcast(AdState *ad, IrNode *n, IrNode *g)
{
    ad_acc(ad, n->in[0], unbroadcast(ad, g, &n->in[0]->shape));
}

/* Slice backward: g padded with zeros before and after along the axis. */
static void ad_slice(AdState *ad, IrNode *n, IrNode *g)
{
    IrShape s = n->in[0]->shape;
    int ax = node_axis(n, 0);
    int64_t st = ir_node_int(n, ATTR_START, 0), en = ir_node_int(n, ATTR_END, 0);
    IrDim len = s.d[ax], rest;
    IrNode *in[3];
    int k = 0;
    if (st > 0) {
        s.d[ax] = ir_dim_const(st);
        in[k++] = cst(ad, 0, &s);
    }
    in[k++] = g;
    if (ir_dim_sub(len, ir_dim_const(en), &rest) && rest.n > 0) {
        s.d[ax] = rest;
        in[k++] = cst(ad, 0, &s);
    }
    IrAttr a = ir_attr_int(ATTR_AXIS, ax);
    ad_acc(ad, n->in[0], k == 1 ? g : mk(ad, OP_CONCAT, in, k, &a, 1, NULL, NULL));
}

/* Concat backward: each operand gets its slice of g.  Slices need
 * constant bounds, so offsets along a symbolic axis are an error. */
static void ad_concat(AdState *ad, IrNode *n, IrNode *g)
{
    int ax = node_axis(n, 0);
    int64_t off = 0, len;
    for (int j = 0; j < n->nin; j++) {
        if (!ir_dim_is_const(n->in[j]->shape.d[ax], &len)) {
            if (ad_wants(ad, n, j))
                ad_fail(ad, n, "concat along an axis of symbolic size has no gradient rule");
            return;
        }
        IrAttr a[3] = {ir_attr_int(ATTR_AXIS, ax), ir_attr_int(ATTR_START, off),
                       ir_attr_int(ATTR_END, off + len)};
        if (ad_wants(ad, n, j))
            ad_acc(ad, n->in[j], mk(ad, OP_SLICE, &g, 1, a, 3, NULL, NULL));
        off += len;
    }
}

/* ---------------------------------------------------------------- opaque */

static IrNode *mm(AdState *ad, IrNode *a, IrNode *b, int ta, int tb)
{
    IrNode *in[2] = {a, b};
    IrAttr at[2] = {ir_attr_int(ATTR_TA, ta), ir_attr_int(ATTR_TB, tb)};
    int nat = 0;
    if (ta)
        at[nat++] = at[0];
    if (tb)
        at[nat++] = at[1];
    return mk(ad, OP_MATMUL, in, 2, at, nat, NULL, NULL);
}

/* x[..., M, K] -> [prod(...)*M, K] */
static IrNode *rows2d(AdState *ad, IrNode *x)
{
    IrShape s;
    memset(&s, 0, sizeof s);
    s.rank = 2;
    s.d[0] = ir_dim_const(1);
    for (int i = 0; i < x->shape.rank - 1; i++)
        IR_ASSERT(ir_dim_mul(s.d[0], x->shape.d[i], &s.d[0]));
    s.d[1] = x->shape.d[x->shape.rank - 1];
    return reshape_to(ad, x, &s);
}

/* C = op(A) @ op(B), op = transpose when ta/tb:
 *   ta tb   dA            dB
 *   0  0    G @ B^T       A^T @ G
 *   0  1    G @ B         G^T @ A
 *   1  0    B @ G^T       A @ G
 *   1  1    B^T @ G^T     G^T @ A^T
 * then summed over broadcast batch dims.  A rank-2 weight B used by a
 * batched A (x @ W) gets one 2-D matmul over the flattened rows instead. */
static void ad_matmul(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *a = n->in[0], *b = n->in[1];
    int ta = ir_node_int(n, ATTR_TA, 0) != 0, tb = ir_node_int(n, ATTR_TB, 0) != 0;
    if (ad_wants(ad, n, 0)) {
        IrNode *ga = ta ? (tb ? mm(ad, b, g, 1, 1) : mm(ad, b, g, 0, 1))
                        : (tb ? mm(ad, g, b, 0, 0) : mm(ad, g, b, 0, 1));
        acc_ub(ad, n, 0, ga);
    }
    if (!ad_wants(ad, n, 1))
        return;
    if (b->shape.rank == 2 && a->shape.rank > 2 && !ta) {
        a = rows2d(ad, a);
        g = rows2d(ad, g);
    }
    IrNode *gb = tb ? (ta ? mm(ad, g, a, 1, 1) : mm(ad, g, a, 1, 0))
                    : (ta ? mm(ad, a, g, 0, 0) : mm(ad, a, g, 1, 0));
    acc_ub(ad, n, 1, gb);
}

/* gather backward: rows of g added into a zero table at their indices,
 * repeated indices accumulating. */
static void ad_gather(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *in[3] = {cst(ad, 0, &n->in[0]->shape), n->in[1], g};
    ad_acc(ad, n->in[0], mk(ad, OP_SCATTER_ADD, in, 3, NULL, 0, NULL, NULL));
}

/* scatter_add(base, idx, src): base passes g through, src reads its rows. */
static void ad_scatter_add(AdState *ad, IrNode *n, IrNode *g)
{
    if (ad_wants(ad, n, 0))
        ad_acc(ad, n->in[0], g);
    if (ad_wants(ad, n, 2)) {
        IrNode *in[2] = {g, n->in[1]};
        ad_acc(ad, n->in[2], mk(ad, OP_GATHER, in, 2, NULL, 0, NULL, NULL));
    }
}

/* ---------------------------------------------------------------- composites */

/* y = softmax(x): dx = y * (g - sum(g * y)) over the axis */
static void ad_softmax(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *dot = reduce_axis(ad, OP_SUM, mul(ad, g, n), node_axis(n, -1));
    ad_acc(ad, n->in[0], mul(ad, n, sub(ad, g, dot)));
}

/* y = log_softmax(x): dx = g - exp(y) * sum(g) over the axis */
static void ad_log_softmax(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *s = reduce_axis(ad, OP_SUM, g, node_axis(n, -1));
    ad_acc(ad, n->in[0], sub(ad, g, mul(ad, un(ad, OP_EXP, n), s)));
}

/* y = xhat * gamma + beta, xhat = (x - mean) * rstd over the last axis:
 *   dgamma = sum(g * xhat), dbeta = sum(g)   (over the leading axes)
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * gamma */
static void ad_layernorm(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *x = n->in[0], *gamma = n->in[1];
    int last = x->shape.rank - 1;
    IrNode *xc = sub(ad, x, reduce_axis(ad, OP_MEAN, x, last));
    IrNode *var = reduce_axis(ad, OP_MEAN, mul(ad, xc, xc), last);
    IrNode *eps = sc(ad, ir_node_float(n, ATTR_EPS, 1e-5));
    IrNode *rstd = un(ad, OP_RSQRT, add(ad, var, eps));
    IrNode *xhat = mul(ad, xc, rstd);
    if (ad_wants(ad, n, 1))
        acc_ub(ad, n, 1, mul(ad, g, xhat));
    if (ad_wants(ad, n, 2))
        acc_ub(ad, n, 2, g);
    if (!ad_wants(ad, n, 0))
        return;
    IrNode *dxh = mul(ad, g, gamma);
    IrNode *m1 = reduce_axis(ad, OP_MEAN, dxh, last);
    IrNode *m2 = reduce_axis(ad, OP_MEAN, mul(ad, dxh, xhat), last);
    ad_acc(ad, x, mul(ad, rstd, sub(ad, sub(ad, dxh, m1), mul(ad, xhat, m2))));
}

/* gelu (tanh form) y = 0.5 x (1 + t), t = tanh(c (x + k x^3)):
 *   dy = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2) */
static void ad_gelu(AdState *ad, IrNode *n, IrNode *g)
{
    const double c = sqrt(2.0 / M_PI), k = 0.044715;
    IrNode *x = n->in[0], *half = sc(ad, 0.5), *one = sc(ad, 1);
    IrNode *x2 = mul(ad, x, x);
    IrNode *u = mul(ad, sc(ad, c), add(ad, x, mul(ad, sc(ad, k), mul(ad, x2, x))));
    IrNode *t = un(ad, OP_TANH, u);
    IrNode *du = mul(ad, sc(ad, c), add(ad, one, mul(ad, sc(ad, 3 * k), x2)));
    IrNode *dt = mul(ad, sub(ad, one, mul(ad, t, t)), du);
    IrNode *dy = add(ad, mul(ad, half, add(ad, one, t)), mul(ad, mul(ad, half, x), dt));
    ad_acc(ad, x, mul(ad, g, dy));
}

/* Masked positions are constants: g flows only where causal_mask keeps x.
 * The kept set is read off causal_mask applied to zeros, so the rule
 * follows the op's own convention for the diagonal and fill value. */
static void ad_causal_mask(AdState *ad, IrNode *n, IrNode *g)
{
    const IrShape *s = &n->shape;
    IrShape tt = ir_shape_of(2, (IrDim[]){s->d[s->rank - 2], s->d[s->rank - 1]});
    IrNode *z = cst(ad, 0, &tt);
    IrNode *kept = bin(ad, OP_EQ, un(ad, OP_CAUSAL_MASK, z), z);
    ad_acc(ad, n->in[0], sel(ad, kept, g, sc(ad, 0)));
}

/* loss = sum over valid rows of -log_softmax(z)[t] / count(valid), valid =
 * (t != ignore_index):  dz = g * (softmax(z) - onehot(t)) * valid / count. */
static void ad_cross_entropy(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *z = n->in[0], *t = n->in[1];
    IrDType i32 = DT_I32;
    IrShape col = t->shape;
    col.d[col.rank++] = ir_dim_const(1);
    IrAttr iv = ir_attr_float(ATTR_VALUE, (double)ir_node_int(n, ATTR_IGNORE_INDEX, -100));
    IrShape scalar;
    memset(&scalar, 0, sizeof scalar);
    IrNode *ign = mk(ad, OP_CONST, NULL, 0, &iv, 1, &i32, &scalar);
    IrNode *valid = reshape_to(ad, sel(ad, bin(ad, OP_EQ, t, ign), sc(ad, 0), sc(ad, 1)), &col);
    bool all[IR_MAX_RANK] = {true, true, true, true, true, true};
    IrNode *count = bin(ad, OP_MAXIMUM, sum_mask(ad, valid, all, false), sc(ad, 1));
    IrAttr ax = ir_attr_int(ATTR_AXIS, z->shape.rank - 1);
    IrNode *cls = mk(ad, OP_IOTA, NULL, 0, &ax, 1, &i32, &z->shape);
    IrNode *onehot = ind(ad, bin(ad, OP_EQ, cls, reshape_to(ad, t, &col)));
    IrNode *sm = mk(ad, OP_SOFTMAX, &z, 1, &ax, 1, NULL, NULL);
    IrNode *scale = dvd(ad, g, count);
    ad_acc(ad, z, mul(ad, mul(ad, sub(ad, sm, onehot), valid), scale));
}

/* causal_attention(qkv[, step]): its gradient is one op that recomputes
 * the weights row by row from qkv (never a T x T buffer), with the forward
 * output for the softmax term and the same seed and step for dropout. */
static void ad_causal_attention(AdState *ad, IrNode *n, IrNode *g)
{
    IrNode *in[4] = {n->in[0], n, g, n->nin > 1 ? n->in[1] : NULL};
    ad_acc(ad, n->in[0], mk(ad, OP_CAUSAL_ATTENTION_GRAD, in, n->nin + 2, n->attr, n->nattr,
                            NULL, NULL));
}

/* The gradient of the gradient is not needed for training; like a fused
 * kernel, reaching this rule is an error rather than a silent zero. */
static void ad_causal_attention_grad(AdState *ad, IrNode *n, IrNode *g)
{
    ad_fail(ad, n, "causal_attention_grad has no gradient rule (no second derivatives)");
}

/* Fused kernels are made by the fuse pass, after autodiff.  A gradient that
 * reaches one is an error rather than a silent zero for what lies behind. */
static void ad_fused(AdState *ad, IrNode *n, IrNode *g)
{
    ad_fail(ad, n, "a fused kernel has no gradient rule: differentiate before the fuse pass");
}

/* ---------------------------------------------------------------- the table */

const AdRule ad_rules[OP_COUNT] = {
#define OP(E, n, ...) [OP_##E] = ad_##n,
#include "ir/ops.def"
#undef OP
};
