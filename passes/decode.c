/* decode.c — the KV-cached decode step, built from a model's forward graph.
 *
 * Sampling with the plain forward recomputes every position for every new
 * token: O(T) forward passes of O(T) work each.  The decode step computes
 * one position, reading the keys and values of the earlier positions from
 * a cache, so a token costs one pass over the weights plus O(T) attention.
 * It is an ordinary graph, rewritten from the model's own graph, so it is
 * compiled, fused and run like any other:
 *
 *   1. dropout off; the sequence symbol T is fixed to 1 in every shape;
 *   2. the position iota (shape [1] now) becomes an input gen.pos: i32[1];
 *   3. every causal_mask(scores = matmul(q, k, tb=1)) marks an attention
 *      layer L.  Its keys k: [B,H,1,hd] are written into row pos of a cache
 *      input kv.k.L: [B,H,S,hd] (S a new symbol, the cache length):
 *          k_all = where(iota_S[1,1,S,1] == pos, k, kv.k.L)
 *      the scores become q @ k_all^T: [B,H,1,S], and the causal mask is
 *      replaced by where(iota_S[S] <= pos, scores, -inf), which hides the
 *      empty rows.  The values matmul (found by following the mask's users
 *      through elementwise ops and the softmax) reads v_all the same way;
 *   4. outputs kv.k.L = k_all and kv.v.L = v_all: the executor writes them
 *      back into the cache inputs after each run (rt_exec.h, write-back).
 *
 * A graph without that pattern (no causal_mask over a matmul of rank-4
 * heads, no T symbol) gets no decode step: pass_decode_graph returns NULL
 * with a reason, and sampling falls back to the full forward.
 */
#include "passes/pass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Dec {
    IrGraph *g;
    IrNode *pos;          /* gen.pos: i32[1] */
    IrNode *slot;         /* iota_S[1,1,S,1] == pos: the cache row to write */
    IrNode *valid;        /* iota_S[S] <= pos: the rows that hold keys */
    IrNode *neg_inf;
    IrDim S;
    int nlayers;
    IrError *err;
} Dec;

/* ---------------------------------------------------------------- T := 1 */

/* d with symbol `sym` replaced by the value v. */
static IrDim subst_dim(IrDim d, int sym, int64_t v)
{
    IrDim out = ir_dim_const(0);
    for (int k = 0; k < d.n; k++) {
        int64_t c = d.t[k].coef;
        for (int e = 0; e < d.t[k].exp[sym]; e++)
            c *= v;
        IrDim term = ir_dim_const(c);
        for (int s = 0; s < IR_MAX_SYMS; s++)
            for (int e = 0; s != sym && e < d.t[k].exp[s]; e++)
                IR_ASSERT(ir_dim_mul(term, ir_dim_sym(s), &term));
        IR_ASSERT(ir_dim_add(out, term, &out));
    }
    return out;
}

static void bind_sym(IrGraph *g, int sym, int64_t v)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrShape *s = &g->nodes[i]->shape;
        for (int d = 0; d < s->rank; d++)
            s->d[d] = subst_dim(s->d[d], sym, v);
    }
}

/* ---------------------------------------------------------------- pattern */

/* The only node that reads n, or NULL (none or several). */
static IrNode *sole_user(const IrGraph *g, const IrNode *n)
{
    IrNode *u = NULL;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            if (g->nodes[i]->in[j] == n) {
                if (u && u != g->nodes[i])
                    return NULL;
                u = g->nodes[i];
            }
    return u;
}

/* The matmul that multiplies the attention weights derived from mask m by
 * the values: follow m's users through elementwise ops and softmax. */
static IrNode *values_matmul(const IrGraph *g, IrNode *m)
{
    IrNode *cur = m;
    for (int hop = 0; hop < 8; hop++) {
        IrNode *u = sole_user(g, cur);
        if (!u)
            return NULL;
        if (u->op == OP_MATMUL)
            return u->in[0] == cur && !ir_node_int(u, ATTR_TB, 0) && !ir_node_int(u, ATTR_TA, 0)
                       ? u
                       : NULL;
        if (ir_ops[u->op].kind != OPK_ELEMWISE && u->op != OP_SOFTMAX)
            return NULL;
        cur = u;
    }
    return NULL;
}

static bool is_scores(const IrNode *s)
{
    return s->op == OP_MATMUL && ir_node_int(s, ATTR_TB, 0) && !ir_node_int(s, ATTR_TA, 0) &&
           s->shape.rank == 4 && s->in[1]->shape.rank == 4;
}

/* ---------------------------------------------------------------- rewrite */

static IrNode *node(Dec *d, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat,
                    IrDType dt, const IrShape *s)
{
    IrNode *n = ir_node_new(d->g, op, in, nin, at, nat, s ? &dt : NULL, s, d->err);
    IR_ASSERT(n);   /* shapes here follow from a verified graph */
    return n;
}

static IrNode *iota(Dec *d, int rank, int axis)
{
    IrDim dims[4] = {ir_dim_const(1), ir_dim_const(1), ir_dim_const(1), ir_dim_const(1)};
    dims[axis] = d->S;
    IrShape s = ir_shape_of(rank, dims);
    IrAttr a = ir_attr_int(ATTR_AXIS, axis);
    return node(d, OP_IOTA, NULL, 0, &a, 1, DT_I32, &s);
}

static void make_shared(Dec *d)
{
    d->pos = ir_input(d->g, "gen.pos", DT_I32, ir_shape_ints(1, (int64_t[]){1}));
    IrNode *slot_in[2] = {iota(d, 4, 2), d->pos};
    d->slot = node(d, OP_EQ, slot_in, 2, NULL, 0, DT_BOOL, NULL);
    IrNode *valid_in[2] = {iota(d, 1, 0), d->pos};
    d->valid = node(d, OP_LE, valid_in, 2, NULL, 0, DT_BOOL, NULL);
    d->neg_inf = ir_const(d->g, -INFINITY, DT_F32, ir_shape_of(0, NULL));
}

/* where(slot, x, cache) with a new cache input NAME: [B,H,S,hd]; the
 * output of the same name writes it back. */
static IrNode *cached(Dec *d, IrNode *x, const char *kind)
{
    char name[64];
    snprintf(name, sizeof name, "kv.%s.%d", kind, d->nlayers);
    IrShape s = x->shape;
    s.d[2] = d->S;
    IrNode *cache = ir_input(d->g, name, DT_F32, s);
    IrNode *in[3] = {d->slot, x, cache};
    IrNode *all = node(d, OP_WHERE, in, 3, NULL, 0, DT_F32, NULL);
    ir_graph_add_output(d->g, name, all);
    return all;
}

static bool rewrite_layer(Dec *d, IrNode *m)
{
    IrNode *s = m->in[0], *vm = values_matmul(d->g, m);
    if (!is_scores(s) || !vm || vm->in[1]->shape.rank != 4)
        return false;
    s->in[1] = cached(d, s->in[1], "k");
    vm->in[1] = cached(d, vm->in[1], "v");
    IR_ASSERT(ir_infer(d->g, s, d->err));
    IrNode *in[3] = {d->valid, s, d->neg_inf};
    ir_replace_uses(d->g, m, node(d, OP_WHERE, in, 3, NULL, 0, DT_F32, NULL));
    d->nlayers++;
    return true;
}

static bool rewrite_positions(Dec *d)
{
    int found = 0;
    for (int i = 0; i < d->g->nnodes; i++) {
        IrNode *n = d->g->nodes[i];
        int64_t len;
        if (n->op == OP_IOTA && n->shape.rank == 1 && ir_dim_is_const(n->shape.d[0], &len) &&
            len == 1 && n != d->pos) {
            ir_replace_uses(d->g, n, d->pos);
            found++;
        }
    }
    return found > 0;
}

/* ---------------------------------------------------------------- order */

/* Post-order DFS over operands from each node in the current order: a
 * valid execution order that keeps the original one where it can. */
static void visit(IrNode *n, bool *seen, IrNode **order, int *k)
{
    if (seen[n->index])
        return;
    seen[n->index] = true;
    for (int j = 0; j < n->nin; j++)
        visit(n->in[j], seen, order, k);
    order[(*k)++] = n;
}

static void topo_sort(IrGraph *g)
{
    ir_graph_reindex(g);
    bool *seen = calloc((size_t)g->nnodes, sizeof *seen);
    IrNode **order = malloc(sizeof *order * (size_t)g->nnodes);
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        visit(g->nodes[i], seen, order, &k);
    memcpy(g->nodes, order, sizeof *order * (size_t)k);
    ir_graph_reindex(g);
    free(seen);
    free(order);
}

static bool reinfer(IrGraph *g, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++)
        if (ir_ops[g->nodes[i]->op].kind != OPK_SOURCE && !ir_infer(g, g->nodes[i], err))
            return false;
    return true;
}

/* ---------------------------------------------------------------- entry */

static IrGraph *no_kv(IrGraph *g, IrError *err, const char *reason)
{
    char why[512];
    snprintf(why, sizeof why, "%s", reason);
    ir_error(err, "no KV-cached decode step for this model: %s", why);
    ir_error_hint(err, "sampling uses the full forward instead");
    ir_graph_free(g);
    return NULL;
}

static bool rewrite_layers(Dec *d)
{
    int n = d->g->nnodes;
    for (int i = 0; i < n; i++)
        if (d->g->nodes[i]->op == OP_CAUSAL_MASK && !rewrite_layer(d, d->g->nodes[i]))
            return false;
    return d->nlayers > 0;
}

void pass_no_dropout(IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++)
        if (ir_op_drops(g->nodes[i]->op))
            ir_node_set_attr(g, g->nodes[i], ir_attr_float(ATTR_P, 0.0));
}

IrGraph *pass_decode_graph(const IrGraph *model, int *nlayers, IrError *err)
{
    IrGraph *g = ir_graph_clone(model);
    int T = ir_graph_find_sym(g, "T");
    if (T < 0)
        return no_kv(g, err, "the graph has no sequence symbol T");
    pass_no_dropout(g);
    bind_sym(g, T, 1);
    Dec d = {.g = g, .err = err};
    int S = ir_graph_sym(g, "S");
    if (S < 0)
        return no_kv(g, err, "too many symbols");
    d.S = ir_dim_sym(S);
    make_shared(&d);
    if (!rewrite_positions(&d))
        return no_kv(g, err, "no position iota of shape [T]");
    if (!rewrite_layers(&d))
        return no_kv(g, err, "no causal_mask over matmul(q, k, tb=1) of [B,H,T,hd] heads "
                             "followed by softmax and a matmul with the values");
    topo_sort(g);
    PassCtx ctx = pass_ctx_default(err);
    if (!reinfer(g, err) || !pass_dce(g, &ctx) || !ir_verify(g, err))
        return no_kv(g, err, err->msg);
    *nlayers = d.nlayers;
    return g;
}
