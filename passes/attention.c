/* attention.c — causal attention as one op, and q/k/v as one matmul.
 *
 * The book writes causal multi-head attention in primitives (models/
 * gpt2-small.json, module "attention"):
 *
 *   Qh = transpose(reshape(Xq, [B,T,H,hd]), [0,2,1,3])     (and Kh, Vh)
 *   S  = matmul(Qh, Kh, tb=1)                              [B,H,T,T]
 *   W  = softmax(causal_mask(S) * c, axis=-1)              (scale c > 0)
 *   O  = matmul(dropout(W), Vh)                            [B,H,T,hd]
 *
 * which stores the T x T scores, mask, weights and dropped weights, and
 * autodiff then keeps most of them for the backward.  This pass finds that
 * chain and replaces it with
 *
 *   qkv = concat(Xq, Xk, Xv, axis=2)                       [B,T,3D]
 *   A   = causal_attention(qkv) {heads=H, scale=c, p, seed} [B,T,D]
 *   O'  = transpose(reshape(A, [B,T,H,hd]), [0,2,1,3])     == O
 *
 * whose kernel never stores a T x T matrix (an online softmax over tiles
 * of keys, codegen/cg_lower_attention.c) and whose gradient rule is one
 * causal_attention_grad that recomputes the weights per row.  Simplify
 * later cancels O' against the model's own transpose and reshape back to
 * [B,T,D].  Dropout's mask is keyed by the same flat [B,H,T,T] index, so
 * the rewrite changes no value.
 *
 * When Xq, Xk and Xv are matmuls of one x by three weights (tb=1, the
 * nn.Linear layout), optionally plus a bias each, and nothing else reads
 * them, the three become one: qkv = matmul(x, concat(Wq, Wk, Wv), tb=1)
 * (+ concat(bq, bk, bv)): one sgemm forward, and in the backward one sgemm
 * for dx and one for the stacked weight gradient.  Linears adapted by the
 * lora pass (matmul + ((x.A) * s).B, then the bias) merge the same way,
 * their low-rank paths concatenated beside: qkv = matmul(x, concat(W), tb=1)
 * + concat(Lq, Lk, Lv) (+ concat(b)).
 *
 * The pass runs on the forward graph, before autodiff (the grad stage's
 * pipeline, passes/registry.c: attention,autodiff,optimizer), while
 * softmax and causal_mask are still composites.  With --explain each
 * rewrite and each refusal is a `// attention:` line; refusals carry a
 * reason code (value-needed, not-causal, scale, layout, dropout) and the
 * q/k/v merge's refusals qkv-inputs and qkv-value-needed (the concat then
 * copies the three instead).
 */
#include "pass.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct Match {
    IrNode *scores, *mask, *scaled, *weights, *drop, *out; /* the chain, in order */
    IrNode *x[3];   /* Xq, Xk, Xv: [B,T,D] */
    bool merge;     /* Xq, Xk, Xv = matmul(lin_in[0], w[k], tb=1) [+ lr[k]] [+ b[k]] become one */
    IrNode *lin_in[3], *w[3], *b[3];
    IrNode *lr[3];  /* the LoRA path (passes/lora.c) added to the matmul, or NULL */
    double scale;
    int64_t heads;
} Match;

typedef struct Att {
    IrGraph *g;
    PassCtx *ctx;
    int *uses; /* uses[i]: operand and output uses of node i */
} Att;

/* ---------------------------------------------------------------- explain */

static void say(const Att *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const Att *a, const char *fmt, ...)
{
    if (!a->ctx->explain || !a->ctx->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("// attention: ", a->ctx->out);
    vfprintf(a->ctx->out, fmt, ap);
    fputc('\n', a->ctx->out);
    va_end(ap);
}

static const char *nm(const IrNode *n)
{
    return n->name ? n->name : "";
}

/* Refuses the chain at softmax w: returns false. */
static bool refuse(const Att *a, const IrNode *w, const char *code, const char *why)
{
    say(a, "refuse softmax %%%d '%s': %s (%s)", w->index, nm(w), code, why);
    return false;
}

/* ---------------------------------------------------------------- matching */

static void count_uses(Att *a)
{
    IrGraph *g = a->g;
    a->uses = calloc((size_t)g->nnodes + 1, sizeof *a->uses);
    IR_ASSERT(a->uses);
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            a->uses[g->nodes[i]->in[j]->index]++;
    for (int k = 0; k < g->nout; k++)
        a->uses[g->outs[k].node->index]++;
}

/* The only node that reads n, or NULL. */
static IrNode *only_user(const Att *a, const IrNode *n)
{
    if (a->uses[n->index] != 1)
        return NULL;
    for (int i = n->index + 1; i < a->g->nnodes; i++)
        for (int j = 0; j < a->g->nodes[i]->nin; j++)
            if (a->g->nodes[i]->in[j] == n)
                return a->g->nodes[i];
    return NULL; /* the use is a graph output */
}

/* A positive scalar constant: its value, else 0. */
static double positive_const(const IrNode *c)
{
    IrDim n;
    int64_t v;
    if (c->op != OP_CONST || !ir_shape_numel(&c->shape, &n) || !ir_dim_is_const(n, &v) || v != 1)
        return 0;
    double x = ir_node_float(c, ATTR_VALUE, 0);
    return x > 0 ? x : 0;
}

/* s = x * c, c * x or x / c with c a positive scalar const: x and the factor. */
static IrNode *unscale(IrNode *s, double *c)
{
    if (s->op == OP_MUL && (*c = positive_const(s->in[1])) > 0)
        return s->in[0];
    if (s->op == OP_MUL && (*c = positive_const(s->in[0])) > 0)
        return s->in[1];
    if (s->op == OP_DIV && (*c = positive_const(s->in[1])) > 0) {
        *c = 1.0 / *c;
        return s->in[0];
    }
    *c = 1.0;
    return NULL;
}

static const int64_t heads_perm[4] = {0, 2, 1, 3};

/* h = transpose(reshape(x [B,T,D], [B,T,H,hd]), [0,2,1,3]): x, else NULL. */
static IrNode *heads_source(IrNode *h, int64_t *heads)
{
    if (h->op != OP_TRANSPOSE || h->shape.rank != 4)
        return NULL;
    const IrAttr *p = ir_node_attr(h, ATTR_PERM);
    if (!p || p->n != 4 || memcmp(p->i, heads_perm, sizeof heads_perm) != 0)
        return NULL;
    IrNode *r = h->in[0], *x = r->in[0];
    if (r->op != OP_RESHAPE || x->shape.rank != 3 || x->dtype != DT_F32)
        return NULL;
    int64_t d, hh, hd;
    const IrShape *rs = &r->shape, *xs = &x->shape;
    if (!ir_dim_eq(rs->d[0], xs->d[0]) || !ir_dim_eq(rs->d[1], xs->d[1]) ||
        !ir_dim_is_const(xs->d[2], &d) || !ir_dim_is_const(rs->d[2], &hh) ||
        !ir_dim_is_const(rs->d[3], &hd) || hh * hd != d)
        return NULL;
    *heads = hh;
    return x;
}

/* The score side: w = softmax(mask(S) * c) or softmax(mask(S * c)). */
static bool match_scores(const Att *a, IrNode *w, Match *m)
{
    IrNode *s = w->in[0], *x;
    double c = 1.0;
    if (ir_axis(ir_node_int(w, ATTR_AXIS, -1), w->shape.rank) != w->shape.rank - 1)
        return refuse(a, w, "layout", "softmax is not over the last axis");
    if (s->op == OP_CAUSAL_MASK) {
        m->mask = s;
        x = s->in[0];
        IrNode *inner = unscale(x, &c); /* mask(S * c) */
        m->scaled = inner ? x : NULL;
        m->scores = inner ? inner : x;
    } else if ((x = unscale(s, &c)) && x->op == OP_CAUSAL_MASK) {
        m->scaled = s;
        m->mask = x;
        m->scores = x->in[0];
    } else if (!unscale(s, &c) && s->op == OP_MUL) {
        return refuse(a, w, "scale", "the scores are scaled by something other than a positive "
                      "scalar constant");
    } else {
        return refuse(a, w, "not-causal", "the scores have no causal_mask");
    }
    m->scale = c;
    return true;
}

/* One node of the chain read elsewhere keeps its T x T value alive. */
static bool chain_private(const Att *a, const Match *m)
{
    IrNode *v[5] = {m->scores, m->mask, m->scaled, m->weights, m->drop};
    for (int k = 0; k < 5; k++)
        if (v[k] && a->uses[v[k]->index] != 1)
            return false;
    return true;
}

/* The whole chain around softmax w. */
static bool match(const Att *a, IrNode *w, Match *m)
{
    memset(m, 0, sizeof *m);
    m->weights = w;
    if (!match_scores(a, w, m))
        return false;
    IrNode *s = m->scores;
    if (s->op != OP_MATMUL || ir_node_int(s, ATTR_TA, 0) || !ir_node_int(s, ATTR_TB, 0) ||
        s->shape.rank != 4)
        return refuse(a, w, "layout",
                      "the scores are not matmul(q, k, tb=1) over [B,H,T,hd] heads");
    IrNode *u = only_user(a, w);
    if (u && u->op == OP_DROPOUT) {
        m->drop = u;
        u = only_user(a, u);
    }
    if (!u || u->op != OP_MATMUL || u->in[0] != (m->drop ? m->drop : w) ||
        ir_node_int(u, ATTR_TA, 0) || ir_node_int(u, ATTR_TB, 0))
        return refuse(a, w, "value-needed", "the weights are read by something other than one "
                      "matmul with the values");
    m->out = u;
    if (!chain_private(a, m))
        return refuse(a, w, "value-needed", "a T x T value of the chain is read elsewhere");
    int64_t hq = 0, hk = 0, hv = 0;
    m->x[0] = heads_source(s->in[0], &hq);
    m->x[1] = heads_source(s->in[1], &hk);
    m->x[2] = heads_source(u->in[1], &hv);
    if (!m->x[0] || !m->x[1] || !m->x[2] || hq != hk || hq != hv ||
        !ir_shape_eq(&m->x[0]->shape, &m->x[1]->shape) ||
        !ir_shape_eq(&m->x[0]->shape, &m->x[2]->shape))
        return refuse(a, w, "layout", "q, k and v are not the [B,T,D] rows split into heads "
                      "by reshape and transpose(0,2,1,3)");
    m->heads = hq;
    double p = m->drop ? ir_node_float(m->drop, ATTR_P, 0) : 0;
    if (m->drop && !(p >= 0 && p < 1))
        return refuse(a, w, "dropout", "dropout p must lie in [0, 1)");
    return true;
}

/* ---------------------------------------------------------------- rewriting */

/* Names n PREFIX.sfx where PREFIX is `like`'s name up to its last dot. */
static IrNode *named(const Att *a, IrNode *n, const IrNode *like, const char *sfx)
{
    char buf[512];
    if (!like->name)
        return n;
    const char *dot = strrchr(like->name, '.');
    int len = dot ? (int)(dot - like->name) : 0;
    snprintf(buf, sizeof buf, "%.*s%s%s", len, like->name, len ? "." : "", sfx);
    n->name = ir_arena_strdup(a->g->arena, buf);
    return n;
}

static IrNode *build(const Att *a, IrOp op, IrNode **in, int nin, const IrAttr *at, int nat,
                     const IrShape *s)
{
    IrError err = {0};
    IrNode *n = ir_node_new(a->g, op, in, nin, at, nat, NULL, s, &err);
    if (!n)
        fprintf(stderr, "gradc: internal error: attention built an ill-typed %s: %s\n",
                ir_op_name(op), err.msg);
    IR_ASSERT(n);
    return n;
}

static IrNode *concat3(const Att *a, IrNode **v, int axis)
{
    IrAttr ax = ir_attr_int(ATTR_AXIS, axis);
    return build(a, OP_CONCAT, v, 3, &ax, 1, NULL);
}

/* l = matmul(matmul(in, A) [* s], B) with A and B 2-D params: the low-rank
 * path that the lora pass adds to a linear layer of in. */
static bool lora_path(const IrNode *l, const IrNode *in)
{
    if (l->op != OP_MATMUL || ir_node_int(l, ATTR_TA, 0) || ir_node_int(l, ATTR_TB, 0) ||
        l->in[1]->op != OP_PARAM || l->in[1]->shape.rank != 2)
        return false;
    const IrNode *xa = l->in[0];
    if (xa->op == OP_MUL && xa->in[1]->op == OP_CONST)
        xa = xa->in[0];
    return xa->op == OP_MATMUL && xa->in[0] == in && !ir_node_int(xa, ATTR_TA, 0) &&
           !ir_node_int(xa, ATTR_TB, 0) && xa->in[1]->op == OP_PARAM &&
           xa->in[1]->shape.rank == 2;
}

/* x = matmul(in, W, tb=1) [+ lr] [+ b]: fills in, W, lr (the LoRA path) and
 * b (NULL without them). */
static bool linear(IrNode *x, IrNode **in, IrNode **w, IrNode **lr, IrNode **b)
{
    *b = *lr = NULL;
    if (x->op == OP_ADD && x->in[1]->shape.rank == 1 &&
        (x->in[0]->op == OP_MATMUL || x->in[0]->op == OP_ADD)) {
        *b = x->in[1];
        x = x->in[0];
    }
    if (x->op == OP_ADD && x->in[0]->op == OP_MATMUL && lora_path(x->in[1], x->in[0]->in[0])) {
        *lr = x->in[1];
        x = x->in[0];
    }
    if (x->op != OP_MATMUL || ir_node_int(x, ATTR_TA, 0) || !ir_node_int(x, ATTR_TB, 0) ||
        x->in[1]->shape.rank != 2)
        return false;
    *in = x->in[0];
    *w = x->in[1];
    return true;
}

/* Whether Xq (Xk, Xv) and the nodes between it and its matmul have no
 * other reader. */
static bool single_use(const Att *a, const Match *m, int k)
{
    const IrNode *n = m->x[k];
    if (a->uses[n->index] != 1)
        return false;
    if (m->b[k] && a->uses[(n = n->in[0])->index] != 1)
        return false;
    return !m->lr[k] || (a->uses[n->in[0]->index] == 1 && a->uses[n->in[1]->index] == 1);
}

/* Decides (at match time, while a->uses is indexed right) whether Xq, Xk,
 * Xv are linears of one x read nowhere else, and says why not. */
static void plan_qkv(const Att *a, Match *m)
{
    for (int k = 0; k < 3; k++) {
        if (!linear(m->x[k], &m->lin_in[k], &m->w[k], &m->lr[k], &m->b[k]) ||
            m->lin_in[k] != m->lin_in[0] || !m->b[k] != !m->b[0] || !m->lr[k] != !m->lr[0]) {
            say(a, "qkv of '%s': qkv-inputs (q, k and v are not linears of one input alike); "
                "concat copies them", nm(m->out));
            return;
        }
        if (!single_use(a, m, k)) {
            say(a, "qkv of '%s': qkv-value-needed ('%s' is read elsewhere); concat copies "
                "them", nm(m->out), nm(m->x[k]));
            return;
        }
    }
    m->merge = true;
    say(a, "qkv of '%s': one matmul of '%s' by concat('%s', '%s', '%s')%s", nm(m->out),
        nm(m->lin_in[0]), nm(m->w[0]), nm(m->w[1]), nm(m->w[2]),
        m->lr[0] ? ", plus the concat of their LoRA paths" : "");
}

/* qkv = matmul(x, concat(Wq, Wk, Wv), tb=1) [+ concat(bq, bk, bv)]. */
static IrNode *merged_qkv(const Att *a, const Match *m)
{
    IrNode *wc = named(a, concat3(a, (IrNode **)m->w, 0), m->x[0], "qkv_weight");
    IrAttr tb = ir_attr_int(ATTR_TB, 1);
    IrNode *mm[2] = {m->lin_in[0], wc};
    IrNode *q = named(a, build(a, OP_MATMUL, mm, 2, &tb, 1, NULL), m->x[0], "qkv_lin");
    if (m->lr[0]) {
        IrNode *add[2] = {q, named(a, concat3(a, (IrNode **)m->lr, 2), m->x[0], "qkv_lora")};
        q = named(a, build(a, OP_ADD, add, 2, NULL, 0, NULL), m->x[0], "qkv_lin");
    }
    if (!m->b[0])
        return q;
    IrNode *add[2] = {q, named(a, concat3(a, (IrNode **)m->b, 0), m->x[0], "qkv_bias")};
    return named(a, build(a, OP_ADD, add, 2, NULL, 0, NULL), m->x[0], "qkv");
}

/* The replacement of m->out, built at the end of the graph. */
static IrNode *rewrite(Att *a, const Match *m)
{
    IrNode *qkv = m->merge ? merged_qkv(a, m) : NULL;
    if (!qkv)
        qkv = named(a, concat3(a, (IrNode **)m->x, 2), m->x[0], "qkv");
    IrAttr at[4];
    int nat = 0;
    at[nat++] = ir_attr_int(ATTR_HEADS, m->heads);
    at[nat++] = ir_attr_float(ATTR_SCALE, m->scale);
    IrNode *in[2] = {qkv, NULL};
    int nin = 1;
    if (m->drop) {
        const IrAttr *p = ir_node_attr(m->drop, ATTR_P), *seed = ir_node_attr(m->drop, ATTR_SEED);
        if (p)
            at[nat++] = *p;
        if (seed)
            at[nat++] = *seed;
        if (m->drop->nin > 1)
            in[nin++] = m->drop->in[1];
    }
    IrNode *att = named(a, build(a, OP_CAUSAL_ATTENTION, in, nin, at, nat, NULL), m->out,
                        "attention");
    IrShape hs = m->x[0]->shape;
    hs.rank = 4;
    hs.d[3] = m->out->shape.d[3];
    hs.d[2] = ir_dim_const(m->heads);
    IrNode *r = named(a, build(a, OP_RESHAPE, &att, 1, NULL, 0, &hs), m->out, "attention_heads");
    IrAttr perm = ir_attr_ints(ATTR_PERM, heads_perm, 4);
    IrNode *o = build(a, OP_TRANSPOSE, &r, 1, &perm, 1, NULL);
    o->name = m->out->name;
    IR_ASSERT(ir_shape_eq(&o->shape, &m->out->shape));
    return o;
}

/* Re-appends the nodes in order; the replacement of a matched out node is
 * built at its place, and later operands and the outputs follow aux. */
static void rebuild(Att *a, Match *ms, int nm_)
{
    IrGraph *g = a->g;
    int nold = g->nnodes;
    IrNode **old = malloc((size_t)(nold ? nold : 1) * sizeof *old);
    IR_ASSERT(old);
    memcpy(old, g->nodes, (size_t)nold * sizeof *old);
    for (int i = 0; i < nold; i++)
        old[i]->aux = NULL;
    g->nnodes = 0;
    for (int i = 0, k = 0; i < nold; i++) {
        IrNode *n = old[i];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j]->aux)
                n->in[j] = n->in[j]->aux;
        if (k < nm_ && ms[k].out == n) {
            n->aux = rewrite(a, &ms[k++]);
            continue;
        }
        ir_graph_append(g, n);
    }
    for (int k = 0; k < g->nout; k++)
        if (g->outs[k].node->aux)
            g->outs[k].node = g->outs[k].node->aux;
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i]->aux = NULL;
    free(old);
}

static void explain_match(const Att *a, const Match *m)
{
    char scale[64] = "", drop[64] = "";
    if (m->scaled)
        snprintf(scale, sizeof scale, ", %%%d %s", m->scaled->index, ir_op_name(m->scaled->op));
    if (m->drop)
        snprintf(drop, sizeof drop, ", %%%d dropout", m->drop->index);
    say(a, "%%%d '%s' -> causal_attention (heads=%lld, scale=%g): absorbed %%%d matmul, "
        "%%%d causal_mask%s, %%%d softmax%s, %%%d matmul; never stores [B,H,T,T]",
        m->out->index, nm(m->out), (long long)m->heads, m->scale, m->scores->index,
        m->mask->index, scale, m->weights->index, drop, m->out->index);
}

static int by_out(const void *x, const void *y)
{
    const Match *a = x, *b = y;
    return (a->out->index > b->out->index) - (a->out->index < b->out->index);
}

bool pass_attention(IrGraph *g, PassCtx *ctx)
{
    Att a = {g, ctx, NULL};
    count_uses(&a);
    Match *ms = malloc((size_t)(g->nnodes + 1) * sizeof *ms);
    IR_ASSERT(ms);
    int nm_ = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i]->op != OP_SOFTMAX || !match(&a, g->nodes[i], &ms[nm_]))
            continue;
        explain_match(&a, &ms[nm_]);
        plan_qkv(&a, &ms[nm_++]);
    }
    qsort(ms, (size_t)nm_, sizeof *ms, by_out);
    if (nm_)
        rebuild(&a, ms, nm_);
    free(ms);
    free(a.uses);
    return !nm_ || pass_dce(g, ctx);
}
