/* shape.c — the shape and dtype rules of the op table.
 *
 * ops.def names a shape rule and a dtype rule per op; this file defines
 * them (ir_shape_<rule>, ir_dtype_<rule>) and ir_infer dispatches through
 * tables built from ops.def.  Rules are pure: they read operands and
 * attributes and write n->shape / n->dtype, or explain the mismatch in err
 * with both shapes.  Rules named `given` check a type written by the
 * caller (params, inputs, reshape targets) instead of computing one.
 */
#include "ir.h"

#include <string.h>

typedef bool (*ShapeRule)(const IrGraph *g, IrNode *n, IrError *err);

#define SHP(n, buf) (ir_shape_str(&(n)->shape, (g)->sym, buf, sizeof buf), buf)

int ir_axis(int64_t axis, int rank)
{
    if (axis < 0)
        axis += rank;
    return axis >= 0 && axis < rank ? (int)axis : -1;
}

static bool need_attr(const IrNode *n, IrAttrKey k, IrError *err)
{
    if (ir_node_attr(n, k))
        return true;
    ir_error(err, "%s: missing attribute '%s'", ir_op_name(n->op), ir_attr_name(k));
    return false;
}

/* ---------------------------------------------------------------- shapes */

static bool ir_shape_given(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->shape.rank > IR_MAX_RANK) {
        ir_error(err, "%s: rank %d exceeds %d", ir_op_name(n->op), n->shape.rank, IR_MAX_RANK);
        return false;
    }
    return true;
}

static bool ir_shape_iota(const IrGraph *g, IrNode *n, IrError *err)
{
    if (!need_attr(n, ATTR_AXIS, err))
        return false;
    if (ir_axis(ir_node_int(n, ATTR_AXIS, 0), n->shape.rank) < 0) {
        ir_error(err, "iota: axis %lld out of range for rank %d",
                 (long long)ir_node_int(n, ATTR_AXIS, 0), n->shape.rank);
        return false;
    }
    return true;
}

static bool ir_shape_unary(const IrGraph *g, IrNode *n, IrError *err)
{
    n->shape = n->in[0]->shape;
    return true;
}

/* unary with an optional `axis` (softmax): the axis must exist. */
static bool ir_shape_axis(const IrGraph *g, IrNode *n, IrError *err)
{
    int r = n->in[0]->shape.rank;
    if (ir_axis(ir_node_int(n, ATTR_AXIS, -1), r) < 0) {
        ir_error(err, "%s: axis %lld out of range for rank %d", ir_op_name(n->op),
                 (long long)ir_node_int(n, ATTR_AXIS, -1), r);
        return false;
    }
    n->shape = n->in[0]->shape;
    return true;
}

/* numpy broadcasting of two shapes, right-aligned. */
static bool broadcast2(const IrGraph *g, const IrShape *a, const IrShape *b, IrShape *out,
                       IrError *err, const IrNode *n)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    IrShape s;
    memset(&s, 0, sizeof s);
    s.rank = (uint8_t)r;
    for (int i = 0; i < r; i++) {
        int ia = a->rank - r + i, ib = b->rank - r + i;
        IrDim da = ia >= 0 ? a->d[ia] : ir_dim_const(1);
        IrDim db = ib >= 0 ? b->d[ib] : ir_dim_const(1);
        if (ir_dim_eq(da, db) || ir_dim_is_one(db))
            s.d[i] = da;
        else if (ir_dim_is_one(da))
            s.d[i] = db;
        else {
            char sa[128], sb[128];
            ir_shape_str(a, g->sym, sa, sizeof sa);
            ir_shape_str(b, g->sym, sb, sizeof sb);
            ir_error(err, "%s: shapes %s and %s do not broadcast (axis %d)",
                     ir_op_name(n->op), sa, sb, i);
            return false;
        }
    }
    *out = s;
    return true;
}

static bool ir_shape_broadcast(const IrGraph *g, IrNode *n, IrError *err)
{
    IrShape s = n->in[0]->shape;
    for (int i = 1; i < n->nin; i++)
        if (!broadcast2(g, &s, &n->in[i]->shape, &s, err, n))
            return false;
    n->shape = s;
    return true;
}

/* Reads attribute `axes` into a mask; empty axes means every axis. */
static bool reduce_mask(const IrGraph *g, const IrNode *n, bool *mask, IrError *err)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    memset(mask, 0, IR_MAX_RANK * sizeof *mask);
    if (!a || a->n == 0) {
        for (int i = 0; i < r; i++)
            mask[i] = true;
        return true;
    }
    for (int i = 0; i < a->n; i++) {
        int ax = ir_axis(a->i[i], r);
        if (ax < 0 || mask[ax]) {
            ir_error(err, "%s: axis %lld is out of range or repeated for rank %d",
                     ir_op_name(n->op), (long long)a->i[i], r);
            return false;
        }
        mask[ax] = true;
    }
    return true;
}

static bool ir_shape_reduce(const IrGraph *g, IrNode *n, IrError *err)
{
    bool mask[IR_MAX_RANK];
    if (!reduce_mask(g, n, mask, err))
        return false;
    bool keep = ir_node_int(n, ATTR_KEEPDIM, 0) != 0;
    const IrShape *in = &n->in[0]->shape;
    IrShape s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < in->rank; i++) {
        if (!mask[i])
            s.d[s.rank++] = in->d[i];
        else if (keep)
            s.d[s.rank++] = ir_dim_const(1);
    }
    n->shape = s;
    return true;
}

static bool ir_shape_reshape(const IrGraph *g, IrNode *n, IrError *err)
{
    IrDim a, b;
    if (!ir_shape_numel(&n->in[0]->shape, &a) || !ir_shape_numel(&n->shape, &b) ||
        !ir_dim_eq(a, b)) {
        char sa[128], sb[128];
        ir_error(err, "reshape: %s and %s have different element counts", SHP(n->in[0], sa),
                 SHP(n, sb));
        return false;
    }
    return true;
}

static bool ir_shape_transpose(const IrGraph *g, IrNode *n, IrError *err)
{
    const IrAttr *p = ir_node_attr(n, ATTR_PERM);
    const IrShape *in = &n->in[0]->shape;
    bool seen[IR_MAX_RANK] = {0};
    if (!p || p->n != in->rank) {
        ir_error(err, "transpose: 'perm' must list all %d axes", in->rank);
        return false;
    }
    IrShape s;
    memset(&s, 0, sizeof s);
    s.rank = in->rank;
    for (int i = 0; i < p->n; i++) {
        int ax = ir_axis(p->i[i], in->rank);
        if (ax < 0 || seen[ax]) {
            ir_error(err, "transpose: 'perm' is not a permutation of 0..%d", in->rank - 1);
            return false;
        }
        seen[ax] = true;
        s.d[i] = in->d[ax];
    }
    n->shape = s;
    return true;
}

static bool ir_shape_expand(const IrGraph *g, IrNode *n, IrError *err)
{
    IrShape s;
    if (!broadcast2(g, &n->in[0]->shape, &n->shape, &s, err, n))
        return false;
    if (!ir_shape_eq(&s, &n->shape)) {
        char sa[128], sb[128];
        ir_error(err, "broadcast: %s cannot be broadcast to %s", SHP(n->in[0], sa), SHP(n, sb));
        return false;
    }
    return true;
}

static bool ir_shape_slice(const IrGraph *g, IrNode *n, IrError *err)
{
    if (!need_attr(n, ATTR_AXIS, err) || !need_attr(n, ATTR_START, err) ||
        !need_attr(n, ATTR_END, err))
        return false;
    const IrShape *in = &n->in[0]->shape;
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, 0), in->rank);
    int64_t st = ir_node_int(n, ATTR_START, 0), en = ir_node_int(n, ATTR_END, 0), len;
    if (ax < 0) {
        ir_error(err, "slice: axis out of range for rank %d", in->rank);
        return false;
    }
    bool known = ir_dim_is_const(in->d[ax], &len);
    if (st < 0 || en <= st || (known && en > len)) {
        char sa[128];
        ir_error(err, "slice: [%lld:%lld) is empty or outside axis %d of %s", (long long)st,
                 (long long)en, ax, SHP(n->in[0], sa));
        return false;
    }
    n->shape = *in;
    n->shape.d[ax] = ir_dim_const(en - st);
    return true;
}

static bool ir_shape_concat(const IrGraph *g, IrNode *n, IrError *err)
{
    IrShape s = n->in[0]->shape;
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, 0), s.rank);
    if (!need_attr(n, ATTR_AXIS, err))
        return false;
    if (ax < 0) {
        ir_error(err, "concat: axis out of range for rank %d", s.rank);
        return false;
    }
    for (int i = 1; i < n->nin; i++) {
        IrShape t = n->in[i]->shape;
        bool ok = t.rank == s.rank;
        for (int k = 0; ok && k < s.rank; k++)
            ok = k == ax || ir_dim_eq(s.d[k], t.d[k]);
        if (!ok || !ir_dim_add(s.d[ax], t.d[ax], &s.d[ax])) {
            char sa[128], sb[128];
            ir_error(err, "concat: %s and %s differ outside axis %d", SHP(n->in[0], sa),
                     SHP(n->in[i], sb), ax);
            return false;
        }
    }
    n->shape = s;
    return true;
}

/* a[..., M, K] @ b[..., K, N] -> [..., M, N]; ta/tb swap the last two dims. */
static bool ir_shape_matmul(const IrGraph *g, IrNode *n, IrError *err)
{
    IrShape a = n->in[0]->shape, b = n->in[1]->shape;
    char sa[128], sb[128];
    if (a.rank < 2 || b.rank < 2) {
        ir_error(err, "matmul: operands need rank >= 2, got %s and %s", SHP(n->in[0], sa),
                 SHP(n->in[1], sb));
        return false;
    }
    IrDim m = a.d[a.rank - 2], k = a.d[a.rank - 1], k2 = b.d[b.rank - 2], nn = b.d[b.rank - 1];
    if (ir_node_int(n, ATTR_TA, 0))
        m = a.d[a.rank - 1], k = a.d[a.rank - 2];
    if (ir_node_int(n, ATTR_TB, 0))
        k2 = b.d[b.rank - 1], nn = b.d[b.rank - 2];
    if (!ir_dim_eq(k, k2)) {
        ir_error(err, "matmul: inner dims differ: %s @ %s (ta=%lld, tb=%lld)", SHP(n->in[0], sa),
                 SHP(n->in[1], sb), (long long)ir_node_int(n, ATTR_TA, 0),
                 (long long)ir_node_int(n, ATTR_TB, 0));
        return false;
    }
    IrShape ba = a, bb = b, s;
    ba.rank -= 2;
    bb.rank -= 2;
    if (!broadcast2(g, &ba, &bb, &s, err, n))
        return false;
    s.d[s.rank++] = m;
    s.d[s.rank++] = nn;
    n->shape = s;
    return true;
}

/* table[V, D...] gathered by idx[...] -> [..., D...] */
static bool ir_shape_gather(const IrGraph *g, IrNode *n, IrError *err)
{
    const IrShape *t = &n->in[0]->shape, *ix = &n->in[1]->shape;
    if (t->rank < 1 || ix->rank + t->rank - 1 > IR_MAX_RANK) {
        ir_error(err, "gather: table of rank %d and indices of rank %d are not supported",
                 t->rank, ix->rank);
        return false;
    }
    IrShape s = *ix;
    for (int i = 1; i < t->rank; i++)
        s.d[s.rank++] = t->d[i];
    n->shape = s;
    return true;
}

/* scatter_add(base[V, D...], idx[...], src[..., D...]) -> base's shape */
static bool ir_shape_scatter(const IrGraph *g, IrNode *n, IrError *err)
{
    const IrShape *b = &n->in[0]->shape, *ix = &n->in[1]->shape;
    IrShape want = *ix;
    bool ok = b->rank >= 1 && ix->rank + b->rank - 1 <= IR_MAX_RANK;
    for (int i = 1; ok && i < b->rank; i++)
        want.d[want.rank++] = b->d[i];
    if (!ok || !ir_shape_eq(&want, &n->in[2]->shape)) {
        char sa[128], sb[128], sc[128];
        ir_error(err, "scatter_add: src %s must be the indices' shape %s followed by base %s "
                 "without its first axis", SHP(n->in[2], sc), SHP(n->in[1], sb),
                 SHP(n->in[0], sa));
        return false;
    }
    n->shape = *b;
    return true;
}

/* layernorm(x[..., D], gamma[D], beta[D]) over the last axis */
static bool ir_shape_layernorm(const IrGraph *g, IrNode *n, IrError *err)
{
    const IrShape *x = &n->in[0]->shape;
    if (x->rank < 1) {
        ir_error(err, "layernorm: input must have rank >= 1");
        return false;
    }
    for (int i = 1; i < 3; i++) {
        const IrShape *p = &n->in[i]->shape;
        if (p->rank != 1 || !ir_dim_eq(p->d[0], x->d[x->rank - 1])) {
            char sa[128], sb[128];
            ir_error(err, "layernorm: %s of shape %s does not match the last axis of %s",
                     i == 1 ? "scale" : "shift", SHP(n->in[i], sb), SHP(n->in[0], sa));
            return false;
        }
    }
    n->shape = *x;
    return true;
}

static bool ir_shape_causal(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->in[0]->shape.rank < 2) {
        ir_error(err, "causal_mask: input must have rank >= 2 (..., Tq, Tk)");
        return false;
    }
    n->shape = n->in[0]->shape;
    return true;
}

/* causal_attention(qkv[..., T, 3D]) -> [..., T, D] with D a multiple of
 * heads; causal_attention_grad(qkv, out[..., T, D], dout[..., T, D]) ->
 * qkv's shape.  A trailing i32 scalar operand is the dropout step. */
static bool ir_shape_attention(const IrGraph *g, IrNode *n, IrError *err)
{
    const char *op = ir_op_name(n->op);
    const IrShape *x = &n->in[0]->shape;
    IrShape o = *x;
    int64_t heads = ir_node_int(n, ATTR_HEADS, 0), d;
    if (!need_attr(n, ATTR_HEADS, err) || !need_attr(n, ATTR_SCALE, err))
        return false;
    if (x->rank < 2 || !ir_dim_is_const(x->d[x->rank - 1], &d) || heads < 1 || d % 3 != 0 ||
        (d / 3) % heads != 0) {
        char sa[128];
        ir_error(err, "%s: qkv of shape %s must be [..., T, 3*D] with D a known multiple of "
                 "heads = %lld", op, SHP(n->in[0], sa), (long long)heads);
        return false;
    }
    o.d[o.rank - 1] = ir_dim_const(d / 3);
    for (int i = 1; n->op == OP_CAUSAL_ATTENTION_GRAD && i < 3; i++)
        if (!ir_shape_eq(&n->in[i]->shape, &o)) {
            char sa[128], sb[128];
            ir_error(err, "%s: %s of shape %s must be %s (qkv's rows, one third as wide)", op,
                     i == 1 ? "out" : "dout", SHP(n->in[i], sa),
                     (ir_shape_str(&o, g->sym, sb, sizeof sb), sb));
            return false;
        }
    n->shape = n->op == OP_CAUSAL_ATTENTION ? o : *x;
    return true;
}

/* cross_entropy(logits[..., V], targets[...]) -> mean over targets, [] */
static bool ir_shape_xent(const IrGraph *g, IrNode *n, IrError *err)
{
    IrShape lead = n->in[0]->shape;
    const IrShape *t = &n->in[1]->shape;
    lead.rank = lead.rank ? lead.rank - 1 : 0;
    if (n->in[0]->shape.rank < 1 || !ir_shape_eq(&lead, t)) {
        char sa[128], sb[128];
        ir_error(err, "cross_entropy: logits %s and targets %s: targets must be the logits' "
                 "shape without the last axis", SHP(n->in[0], sa), SHP(n->in[1], sb));
        return false;
    }
    memset(&n->shape, 0, sizeof n->shape);
    return true;
}

/* The body's input nodes, in order, against the operands: same count,
 * same types (the parser reports this at the '{'; this rule covers the
 * graphs passes build and the verifier). */
static bool check_fused_inputs(const IrGraph *g, const IrNode *n, IrError *err)
{
    int k = 0;
    for (int i = 0; i < n->body->nnodes; i++) {
        const IrNode *x = n->body->nodes[i];
        if (x->op != OP_INPUT)
            continue;
        if (k < n->nin &&
            (x->dtype != n->in[k]->dtype || !ir_shape_eq(&x->shape, &n->in[k]->shape))) {
            char sa[128], sb[128];
            ir_error(err, "fused: body input %d is %s%s but operand %d is %s%s", k,
                     ir_dtype_name(x->dtype), SHP(x, sa), k, ir_dtype_name(n->in[k]->dtype),
                     SHP(n->in[k], sb));
            return false;
        }
        k++;
    }
    if (k == n->nin)
        return true;
    ir_error(err, "fused: the body has %d inputs for %d operands", k, n->nin);
    return false;
}

/* fused: the type of the body's one output.  Without a body yet (the
 * parser reads it after the node line) the written type stands, and the
 * verifier checks it once the body is there. */
static bool ir_shape_fused(const IrGraph *g, IrNode *n, IrError *err)
{
    if (!n->body)
        return ir_shape_given(g, n, err);
    if (!check_fused_inputs(g, n, err))
        return false;
    if (n->body->nout != 1) {
        ir_error(err, "fused: the body must return one value, it returns %d", n->body->nout);
        return false;
    }
    n->shape = n->body->outs[0].node->shape;
    n->dtype = n->body->outs[0].node->dtype;
    return true;
}

/* ---------------------------------------------------------------- dtypes */

static bool dt_fail(IrNode *n, int i, const char *want, IrError *err)
{
    ir_error(err, "%s: operand %d has dtype %s, expected %s", ir_op_name(n->op), i,
             ir_dtype_name(n->in[i]->dtype), want);
    return false;
}

static bool ir_dtype_given(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->dtype >= DT_COUNT) {
        ir_error(err, "%s: invalid dtype", ir_op_name(n->op));
        return false;
    }
    return true;
}

static bool ir_dtype_i32(const IrGraph *g, IrNode *n, IrError *err)
{
    n->dtype = DT_I32;
    return true;
}

static bool ir_dtype_same(const IrGraph *g, IrNode *n, IrError *err)
{
    IrDType t = n->in[0]->dtype;
    for (int i = 1; i < n->nin; i++)
        if (n->in[i]->dtype != t)
            return dt_fail(n, i, ir_dtype_name(t), err);
    if (t == DT_BOOL && ir_ops[n->op].kind != OPK_MOVEMENT)
        return dt_fail(n, 0, "f32 or i32", err);
    n->dtype = t;
    return true;
}

static bool ir_dtype_float(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->in[0]->dtype != DT_F32)
        return dt_fail(n, 0, "f32", err);
    if (n->op == OP_LAYERNORM)
        for (int i = 1; i < 3; i++)
            if (n->in[i]->dtype != DT_F32)
                return dt_fail(n, i, "f32", err);
    if (n->op == OP_CROSS_ENTROPY && n->in[1]->dtype != DT_I32)
        return dt_fail(n, 1, "i32", err);
    if (n->op == OP_DROPOUT && n->nin == 2 && n->in[1]->dtype != DT_I32)
        return dt_fail(n, 1, "i32", err);
    n->dtype = DT_F32;
    return true;
}

static bool ir_dtype_compare(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->in[1]->dtype != n->in[0]->dtype)
        return dt_fail(n, 1, ir_dtype_name(n->in[0]->dtype), err);
    n->dtype = DT_BOOL;
    return true;
}

static bool ir_dtype_where(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->in[0]->dtype != DT_BOOL)
        return dt_fail(n, 0, "bool", err);
    if (n->in[2]->dtype != n->in[1]->dtype)
        return dt_fail(n, 2, ir_dtype_name(n->in[1]->dtype), err);
    n->dtype = n->in[1]->dtype;
    return true;
}

static bool ir_dtype_gather(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->in[1]->dtype != DT_I32)
        return dt_fail(n, 1, "i32", err);
    n->dtype = n->in[0]->dtype;
    return true;
}

static bool ir_dtype_scatter(const IrGraph *g, IrNode *n, IrError *err)
{
    if (n->in[0]->dtype != DT_F32)
        return dt_fail(n, 0, "f32", err);
    if (n->in[1]->dtype != DT_I32)
        return dt_fail(n, 1, "i32", err);
    if (n->in[2]->dtype != DT_F32)
        return dt_fail(n, 2, "f32", err);
    n->dtype = DT_F32;
    return true;
}

/* causal_attention[_grad]: f32 operands, then an optional i32 step. */
static bool ir_dtype_attention(const IrGraph *g, IrNode *n, IrError *err)
{
    int nf = n->op == OP_CAUSAL_ATTENTION ? 1 : 3;
    for (int i = 0; i < n->nin; i++)
        if (n->in[i]->dtype != (i < nf ? DT_F32 : DT_I32))
            return dt_fail(n, i, i < nf ? "f32" : "i32", err);
    n->dtype = DT_F32;
    return true;
}

/* fused: set by the shape rule from the body (or given, without one). */
static bool ir_dtype_fused(const IrGraph *g, IrNode *n, IrError *err)
{
    return ir_dtype_given(g, n, err);
}

/* ---------------------------------------------------------------- dispatch */

static const ShapeRule shape_rules[OP_COUNT] = {
#define OP(E, n, mi, ma, k, sr, ...) [OP_##E] = ir_shape_##sr,
#include "ops.def"
#undef OP
};

static const ShapeRule dtype_rules[OP_COUNT] = {
#define OP(E, n, mi, ma, k, sr, dr, ...) [OP_##E] = ir_dtype_##dr,
#include "ops.def"
#undef OP
};

static bool check_arity(const IrNode *n, IrError *err)
{
    const IrOpInfo *info = &ir_ops[n->op];
    if (n->nin >= info->min_in && n->nin <= info->max_in)
        return true;
    if (info->min_in == info->max_in)
        ir_error(err, "%s takes %d input%s, got %d", info->name, info->min_in,
                 info->min_in == 1 ? "" : "s", n->nin);
    else
        ir_error(err, "%s takes %d to %d inputs, got %d", info->name, info->min_in, info->max_in,
                 n->nin);
    return false;
}

static bool check_attr_kinds(const IrNode *n, IrError *err)
{
    for (int i = 0; i < n->nattr; i++)
        if (n->attr[i].key >= ATTR_COUNT) {
            ir_error(err, "%s: invalid attribute", ir_op_name(n->op));
            return false;
        }
    return true;
}

bool ir_infer(const IrGraph *g, IrNode *n, IrError *err)
{
    if (!check_arity(n, err) || !check_attr_kinds(n, err))
        return false;
    for (int i = 0; i < n->nin; i++)
        if (!n->in[i]) {
            ir_error(err, "%s: operand %d is missing", ir_op_name(n->op), i);
            return false;
        }
    if (ir_ops[n->op].kind == OPK_SOURCE || n->op == OP_CAST)
        if (!ir_dtype_given(g, n, err))
            return false;
    return shape_rules[n->op](g, n, err) && dtype_rules[n->op](g, n, err);
}
