/* simplify.c — local rewrites that make a graph smaller without changing
 * its values: algebraic identities, constant folding, reshape / transpose /
 * broadcast chains, and exact strength reductions.
 *
 * The pass sweeps the graph in order and asks, for each node, whether a
 * rule replaces it; it sweeps again until a sweep changes nothing (a fixed
 * point; every rule removes a node, an operand or a level of nesting, so it
 * terminates, and SIMP_MAX_SWEEPS is only a guard).  A sweep rebuilds the
 * node list as decompose does: the list is emptied and each node appended
 * again, so that new nodes (ir_node_new appends) land where the node they
 * replace stood.  node->aux maps a replaced node to its replacement for
 * later operands and for the outputs.  A replaced node is dropped; nodes
 * that only become unused are left to dce.  Nodes with fusion bodies are
 * never rewritten and never looked through (their op is only the root of
 * the kernel); bodies are simplified as graphs of their own.
 *
 * Floats.  A rule is kept only when it gives the same value for every
 * input, NaN, inf and -0 included, with two documented exceptions (the
 * sign of a zero, and recip(recip x)):
 *   x + 0, x - 0        -> x      (x + 0 turns -0 into +0; only that sign)
 *   x * 1, x / 1        -> x
 *   x * -1, x / -1      -> neg x
 *   x + neg y           -> x - y  (IEEE defines x - y as x + (-y))
 *   x - neg y           -> x + y
 *   neg neg x           -> x
 *   recip recip x       -> x      (1/(1/x) rounds twice: within 1 ulp of x
 *                                  for normal x, but 0 or inf where 1/x
 *                                  overflows or is subnormal; the fold is
 *                                  the exact value)
 *   recip sqrt x        -> rsqrt x (rsqrt is defined as 1/sqrt(x))
 *   1 / x               -> recip x
 *   x / c               -> x * (1/c) only when 1/c is exact in f32, i.e. c
 *                                  is a power of two: then both round the
 *                                  same real number once, bit for bit
 *   dropout{p=0} x      -> x
 * Not done for floats: x * 0 -> 0 (NaN * 0 and inf * 0 are NaN, -1 * 0 is
 * -0), x - x -> 0 (inf - inf is NaN), and x / c -> x * (1/c) for other c:
 * 1/c is rounded first, and x * round(1/c) differs from x / c by up to one
 * ulp (PyTorch does not do it either).  For i32, x * 0 -> 0 and x - x -> 0
 * are exact and done.  Division by 768 (a layernorm mean over gpt2-small's
 * width) therefore stays a division; by 128 it becomes a multiplication.
 *
 * Constants.  A const node holds one value for all its elements, so only
 * elementwise ops of consts fold (to a const of the node's type); the value
 * is computed by the reference interpreter itself, on scalars, so folding
 * has exactly the oracle's semantics (i32 division truncates, a division by
 * zero is not folded, f32 values are kept in double and rounded once when
 * the const is materialized).  Reductions of consts are not folded: summing
 * n copies of c is not c*n in floating point, and n may be symbolic.  Data
 * movement of a const (reshape, transpose, broadcast, slice, a concat of
 * equal consts) is a const of the new shape.
 *
 * Movement.  reshape(reshape x) is one reshape; a reshape, broadcast or
 * transpose that keeps the shape (an identity perm) is dropped;
 * transpose(transpose x) composes the perms; broadcast(broadcast x) is one
 * broadcast; a slice of a whole axis is dropped.  Broadcast folding: an
 * operand of a broadcasting elementwise op that is a broadcast node is
 * replaced by the broadcast's input, and a const operand by a rank-0 const,
 * whenever the op's result keeps its shape (the op broadcasts anyway).
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIMP_MAX_SWEEPS 64

/* ---------------------------------------------------------------- predicates */

static bool is_op(const IrNode *n, IrOp op)
{
    return n->op == op && !n->body;
}

static bool const_value(const IrNode *n, double *v)
{
    if (!is_op(n, OP_CONST))
        return false;
    *v = ir_node_float(n, ATTR_VALUE, 0.0);
    return true;
}

/* A const whose value equals v (0 matches -0; NaN matches nothing). */
static bool is_const(const IrNode *n, double v)
{
    double c;
    return const_value(n, &c) && c == v;
}

static bool same_type(const IrNode *a, const IrNode *b)
{
    return a->dtype == b->dtype && ir_shape_eq(&a->shape, &b->shape);
}

/* ---------------------------------------------------------------- builders */

/* A new node replacing n keeps n's debug name and must have n's type. */
static IrNode *like(const IrNode *n, IrNode *m)
{
    IR_ASSERT(m && same_type(m, n));
    if (!m->name)
        m->name = n->name;
    return m;
}

static IrNode *with_shape(IrGraph *g, const IrNode *n, IrOp op, IrNode *x)
{
    IrError err = {0};
    return like(n, ir_node_new(g, op, &x, 1, NULL, 0, NULL, &n->shape, &err));
}

/* n's op and attributes over new operands; NULL if the type would change. */
static IrNode *remake(IrGraph *g, const IrNode *n, IrNode **in)
{
    IrError err = {0};
    IrNode *m = ir_node_new(g, n->op, in, n->nin, n->attr, n->nattr, &n->dtype, &n->shape, &err);
    return m ? like(n, m) : NULL;
}

static IrNode *const_like(IrGraph *g, const IrNode *n, double v)
{
    return like(n, ir_const(g, v, n->dtype, n->shape));
}

/* ---------------------------------------------------------------- arithmetic */

/* x + 0 -> x; x + neg y -> x - y (either order). */
static IrNode *s_add(IrGraph *g, IrNode *n)
{
    IrNode *a = n->in[0], *b = n->in[1];
    if (is_const(b, 0) && same_type(a, n))
        return a;
    if (is_const(a, 0) && same_type(b, n))
        return b;
    if (is_op(b, OP_NEG))
        return like(n, ir_binary(g, OP_SUB, a, b->in[0]));
    if (is_op(a, OP_NEG))
        return like(n, ir_binary(g, OP_SUB, b, a->in[0]));
    return NULL;
}

/* x - 0 -> x; x - neg y -> x + y; for i32, x - x -> 0. */
static IrNode *s_sub(IrGraph *g, IrNode *n)
{
    IrNode *a = n->in[0], *b = n->in[1];
    if (is_const(b, 0) && same_type(a, n))
        return a;
    if (is_op(b, OP_NEG))
        return like(n, ir_binary(g, OP_ADD, a, b->in[0]));
    if (a == b && n->dtype == DT_I32)
        return const_like(g, n, 0);
    return NULL;
}

/* x * 1 -> x, x * -1 -> neg x, with x on either side; i32 x * 0 -> 0. */
static IrNode *s_mul(IrGraph *g, IrNode *n)
{
    for (int j = 0; j < 2; j++) {
        IrNode *x = n->in[1 - j], *c = n->in[j];
        if (is_const(c, 1) && same_type(x, n))
            return x;
        if (is_const(c, -1) && same_type(x, n))
            return like(n, ir_unary(g, OP_NEG, x));
        if (is_const(c, 0) && n->dtype == DT_I32)
            return const_like(g, n, 0);
    }
    return NULL;
}

/* 1/c when it is exact in f32 (c = +-2^k with 1/c a finite f32), else 0. */
static double exact_recip(double c)
{
    int e;
    if (!isfinite(c) || c == 0 || fabs(frexp(c, &e)) != 0.5)
        return 0;
    double r = 1.0 / c;
    return isfinite(r) && (double)(float)r == r && fabsf((float)r) >= 0x1p-126f ? r : 0;
}

/* x / 1 -> x, x / -1 -> neg x; f32: 1 / x -> recip x, x / 2^k -> x * 2^-k. */
static IrNode *s_div(IrGraph *g, IrNode *n)
{
    IrNode *a = n->in[0], *b = n->in[1];
    double c;
    if (is_const(b, 1) && same_type(a, n))
        return a;
    if (is_const(b, -1) && same_type(a, n))
        return like(n, ir_unary(g, OP_NEG, a));
    if (n->dtype != DT_F32)
        return NULL;
    if (is_const(a, 1) && same_type(b, n))
        return like(n, ir_unary(g, OP_RECIP, b));
    if (const_value(b, &c) && exact_recip(c) != 0)
        return like(n, ir_binary(g, OP_MUL, a, ir_const(g, exact_recip(c), DT_F32, b->shape)));
    return NULL;
}

static IrNode *s_neg(IrGraph *g, IrNode *n)
{
    return is_op(n->in[0], OP_NEG) ? n->in[0]->in[0] : NULL;
}

/* recip recip x -> x; recip sqrt x -> rsqrt x. */
static IrNode *s_recip(IrGraph *g, IrNode *n)
{
    IrNode *x = n->in[0];
    if (is_op(x, OP_RECIP))
        return x->in[0];
    if (is_op(x, OP_SQRT))
        return like(n, ir_unary(g, OP_RSQRT, x->in[0]));
    return NULL;
}

static IrNode *s_dropout(IrGraph *g, IrNode *n)
{
    return ir_node_float(n, ATTR_P, 0.0) == 0 ? n->in[0] : NULL;
}

/* where(const c, a, b) -> a or b; where(c, x, x) -> x. */
static IrNode *s_where(IrGraph *g, IrNode *n)
{
    double c;
    IrNode *pick = NULL;
    if (const_value(n->in[0], &c))
        pick = n->in[c != 0 ? 1 : 2];
    else if (n->in[1] == n->in[2])
        pick = n->in[1];
    return pick && same_type(pick, n) ? pick : NULL;
}

/* ---------------------------------------------------------------- movement */

/* reshape to the same shape -> x; reshape(reshape x) -> reshape x. */
static IrNode *s_reshape(IrGraph *g, IrNode *n)
{
    IrNode *x = n->in[0];
    if (same_type(x, n))
        return x;
    if (!is_op(x, OP_RESHAPE))
        return NULL;
    x = x->in[0];
    return same_type(x, n) ? x : with_shape(g, n, OP_RESHAPE, x);
}

static bool perm_of(const IrNode *n, int64_t *p)
{
    const IrAttr *a = ir_node_attr(n, ATTR_PERM);
    bool id = true;
    for (int i = 0; i < a->n; i++) {
        p[i] = ir_axis(a->i[i], a->n);
        id = id && p[i] == i;
    }
    return id;
}

/* An identity perm -> x; transpose(transpose x) -> one transpose or x. */
static IrNode *s_transpose(IrGraph *g, IrNode *n)
{
    int64_t outer[IR_MAX_RANK], inner[IR_MAX_RANK], p[IR_MAX_RANK];
    IrNode *x = n->in[0];
    int r = n->shape.rank;
    if (perm_of(n, outer))
        return x;
    if (!is_op(x, OP_TRANSPOSE))
        return NULL;
    perm_of(x, inner);
    bool id = true;
    for (int d = 0; d < r; d++) {
        p[d] = inner[outer[d]]; /* out axis d is x's axis outer[d], its input's inner[.] */
        id = id && p[d] == d;
    }
    if (id)
        return x->in[0];
    IrAttr a = ir_attr_ints(ATTR_PERM, p, r);
    return like(n, ir_op1(g, OP_TRANSPOSE, x->in[0], &a, 1));
}

/* broadcast to the same shape -> x; broadcast(broadcast x) -> one. */
static IrNode *s_broadcast(IrGraph *g, IrNode *n)
{
    IrNode *x = n->in[0];
    if (same_type(x, n))
        return x;
    if (!is_op(x, OP_BROADCAST))
        return NULL;
    x = x->in[0];
    return same_type(x, n) ? x : with_shape(g, n, OP_BROADCAST, x);
}

/* A slice of a whole axis -> x. */
static IrNode *s_slice(IrGraph *g, IrNode *n)
{
    return same_type(n->in[0], n) ? n->in[0] : NULL;
}

/* Movement of consts of one value (bit for bit) -> a const of n's type. */
static IrNode *s_move_const(IrGraph *g, IrNode *n)
{
    double v, w;
    if (!const_value(n->in[0], &v))
        return NULL;
    for (int j = 1; j < n->nin; j++)
        if (!const_value(n->in[j], &w) || memcmp(&v, &w, sizeof v))
            return NULL;
    return const_like(g, n, v);
}

/* ---------------------------------------------------------------- constant folding */

/* n's op on scalar consts of its operands' values, by the interpreter. */
static bool eval_scalar(const IrNode *n, double *out)
{
    IrGraph *t = ir_graph_new("fold");
    IrShape s0 = ir_shape_of(0, NULL);
    IrNode *in[IR_MAX_IN];
    double v = 0;
    for (int j = 0; j < n->nin; j++) {
        const_value(n->in[j], &v);
        in[j] = ir_const(t, v, n->in[j]->dtype, s0);
    }
    IrError err = {0};
    IrNode *m = ir_node_new(t, n->op, in, n->nin, n->attr, n->nattr, &n->dtype, &s0, &err);
    IrInterp *it = m ? ir_interp_new(t, NULL, 0, &err) : NULL;
    bool ok = it && ir_interp_run(it, &err);
    if (ok)
        *out = ir_interp_value(it, m)->data[0];
    ir_interp_free(it);
    ir_graph_free(t);
    return ok;
}

/* An elementwise op (not dropout) of consts -> a const. */
static IrNode *s_fold(IrGraph *g, IrNode *n)
{
    double v;
    if (n->op == OP_DROPOUT)
        return NULL;
    for (int j = 0; j < n->nin; j++)
        if (!const_value(n->in[j], &v))
            return NULL;
    return eval_scalar(n, &v) ? const_like(g, n, v) : NULL;
}

/* ---------------------------------------------------------------- broadcast folding */

/* numpy broadcast of shapes s[0..n); false if they do not broadcast. */
static bool bcast_shape(const IrShape *s, int n, IrShape *out)
{
    IrShape u;
    memset(&u, 0, sizeof u);
    for (int j = 0; j < n; j++) {
        int r = u.rank > s[j].rank ? u.rank : s[j].rank;
        IrShape v;
        memset(&v, 0, sizeof v);
        v.rank = (uint8_t)r;
        for (int i = 0; i < r; i++) {
            int iu = u.rank - r + i, is = s[j].rank - r + i;
            IrDim a = iu >= 0 ? u.d[iu] : ir_dim_const(1);
            IrDim b = is >= 0 ? s[j].d[is] : ir_dim_const(1);
            if (!ir_dim_eq(a, b) && !ir_dim_is_one(a) && !ir_dim_is_one(b))
                return false;
            v.d[i] = ir_dim_is_one(a) ? b : a;
        }
        u = v;
    }
    *out = u;
    return true;
}

/* The shape operand x of a broadcasting op may shrink to: a broadcast's
 * input's, or [] for a const; false if neither applies. */
static bool shrinks(const IrNode *x, IrShape *s)
{
    if (is_op(x, OP_BROADCAST)) {
        *s = x->in[0]->shape;
        return true;
    }
    *s = ir_shape_of(0, NULL);
    return x->shape.rank > 0 && is_op(x, OP_CONST);
}

static IrNode *shrink(IrGraph *g, IrNode *x)
{
    if (is_op(x, OP_BROADCAST))
        return x->in[0];
    return ir_const(g, ir_node_float(x, ATTR_VALUE, 0.0), x->dtype, ir_shape_of(0, NULL));
}

/* Drops broadcasts (and const shapes) that n's own broadcasting makes
 * redundant, one operand at a time while n's shape stays the same. */
static IrNode *s_unbroadcast(IrGraph *g, IrNode *n)
{
    IrShape s[IR_MAX_IN], out;
    bool drop[IR_MAX_IN] = {0}, any = false;
    if (n->nin < 2 || n->op == OP_DROPOUT)
        return NULL;
    for (int j = 0; j < n->nin; j++)
        s[j] = n->in[j]->shape;
    for (int j = 0; j < n->nin; j++) {
        IrShape keep = s[j];
        if (!shrinks(n->in[j], &s[j])) {
            s[j] = keep;
            continue;
        }
        drop[j] = bcast_shape(s, n->nin, &out) && ir_shape_eq(&out, &n->shape);
        any = any || drop[j];
        if (!drop[j])
            s[j] = keep;
    }
    if (!any)
        return NULL;
    IrNode *in[IR_MAX_IN];
    for (int j = 0; j < n->nin; j++)
        in[j] = drop[j] ? shrink(g, n->in[j]) : n->in[j];
    return remake(g, n, in);
}

/* ---------------------------------------------------------------- dispatch */

static IrNode *s_op(IrGraph *g, IrNode *n)
{
    switch (n->op) {
    case OP_ADD:       return s_add(g, n);
    case OP_SUB:       return s_sub(g, n);
    case OP_MUL:       return s_mul(g, n);
    case OP_DIV:       return s_div(g, n);
    case OP_NEG:       return s_neg(g, n);
    case OP_RECIP:     return s_recip(g, n);
    case OP_DROPOUT:   return s_dropout(g, n);
    case OP_WHERE:     return s_where(g, n);
    case OP_RESHAPE:   return s_reshape(g, n);
    case OP_TRANSPOSE: return s_transpose(g, n);
    case OP_BROADCAST: return s_broadcast(g, n);
    case OP_SLICE:     return s_slice(g, n);
    default:           return NULL;
    }
}

/* The node that replaces n, or n itself. */
static IrNode *simplify_node(IrGraph *g, IrNode *n)
{
    IrOpKind k = ir_ops[n->op].kind;
    IrNode *r = NULL;
    if (n->body)
        return n;
    if (k == OPK_ELEMWISE)
        r = s_fold(g, n);
    if (!r && k == OPK_MOVEMENT)
        r = s_move_const(g, n);
    if (!r)
        r = s_op(g, n);
    if (!r && k == OPK_ELEMWISE)
        r = s_unbroadcast(g, n);
    return r ? r : n;
}

/* ---------------------------------------------------------------- sweeps */

static IrNode *resolve(IrNode *n)
{
    while (n->aux)
        n = n->aux;
    return n;
}

/* One pass over the nodes in order; true if any node was replaced. */
static bool sweep_nodes(IrGraph *g, IrNode **old, int nold)
{
    bool changed = false;
    g->nnodes = 0;
    for (int i = 0; i < nold; i++) {
        IrNode *n = old[i];
        for (int j = 0; j < n->nin; j++)
            n->in[j] = resolve(n->in[j]);
        IrNode *r = simplify_node(g, n);
        if (r == n) {
            ir_graph_append(g, n);
            continue;
        }
        n->aux = r;
        changed = true;
    }
    for (int i = 0; i < g->nout; i++)
        g->outs[i].node = resolve(g->outs[i].node);
    return changed;
}

static bool sweep(IrGraph *g)
{
    int nold = g->nnodes;
    IrNode **old = malloc((nold ? nold : 1) * sizeof *old);
    IR_ASSERT(old);
    if (nold)
        memcpy(old, g->nodes, nold * sizeof *old);
    for (int i = 0; i < nold; i++)
        old[i]->aux = NULL;
    bool changed = sweep_nodes(g, old, nold);
    for (int i = 0; i < nold; i++)
        old[i]->aux = NULL;
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i]->aux = NULL;
    free(old);
    ir_graph_reindex(g);
    return changed;
}

bool pass_simplify(IrGraph *g, PassCtx *ctx)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->body && !pass_simplify(g->nodes[i]->body, ctx))
            return false;
    for (int k = 0; k < SIMP_MAX_SWEEPS && sweep(g); k++)
        ;
    return true;
}
