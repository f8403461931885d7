/* lora.c — LoRA as a graph pass: low-rank adapters on the linear layers.
 *
 * Every matmul whose right operand is a 2-D f32 param W (a linear layer;
 * a gather's table is not a matmul operand and stays as it is) and whose
 * name matches one of ctx->lora.targets (none given: every such W) becomes
 *
 *     y = x.W + ((x.A) * s).B        A = W.lora_A [in, r], B = W.lora_B [r, out]
 *
 * with the matmul's ta and tb kept: with tb=1 W is [out, in] (nn.Linear's
 * layout), with tb=0 [in, out]; with ta=1 the first low-rank matmul takes
 * ta=1 too; leading (batch) dims of x broadcast as in the original matmul.
 * The scale s (alpha/r, or alpha with PASS_LORA_ALPHA) is a const node that
 * multiplies the r-wide x.A rather than the out-wide product, which is the
 * same value for less work.  A is U(-1/sqrt(r), 1/sqrt(r)), the book's
 * LoRALayer init (Kaiming-uniform with a=sqrt(5): fan_in is r for a tensor
 * [in, r]), and B is zeros, so the rewritten graph computes what the base
 * graph did until B trains.  Each W gets one pair of adapters, placed right
 * after W among the params, shared by every matmul that reads W the same
 * way.  Then every param that is not an adapter is frozen (trainable=0), so
 * autodiff computes no gradient for W at all: only dx through x.W, and the
 * adapters' gradients.
 *
 * Tied embeddings: a W that a gather reads as well (out_head.weight as an
 * alias of tok_emb.weight) is adapted like any other: the head gets the
 * low-rank path and the embedding lookup stays unadapted.  Folding such
 * adapters into W (runtime/rt_lora.c) changes the lookup too, so a merged
 * tied model is not the adapted one; --explain says so for such a W, and
 * --lora-targets can leave it out.
 *
 * Nothing happens (and --explain says why) with rank 0 or when no matmul
 * reads a 2-D param.  A target glob that matches no adaptable weight is a
 * user error that names it.  A W whose adapters already exist (the pass
 * run twice) and a W read by matmuls with different tb are left alone.
 */
#include "pass.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct LoraW {
    IrNode *a, *b;             /* the adapters, once made */
    int tb;                    /* -1: not read as a weight; 2: read with both layouts */
    bool match, tied;          /* a target; read by a non-matmul op too */
} LoraW;

typedef struct Lora {
    IrGraph *g;
    PassCtx *ctx;
    const PassLoraOpts *o;
    LoraW *w;                  /* [nnodes] by node index (before the rewrite) */
    LoraW **byid;              /* [next_id] the adapted weights by node id */
} Lora;

double pass_lora_alpha(const PassLoraOpts *o)
{
    return o->alpha > 0 ? o->alpha : (double)o->rank;
}

double pass_lora_scale(const PassLoraOpts *o)
{
    double a = pass_lora_alpha(o);
    return o->scale == PASS_LORA_ALPHA || o->rank <= 0 ? a : a / o->rank;
}

const char *pass_lora_scale_name(PassLoraScale s)
{
    return s == PASS_LORA_ALPHA ? "alpha" : "alpha/r";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

bool pass_lora_is_adapter(const char *name)
{
    return name && (ends_with(name, ".lora_A") || ends_with(name, ".lora_B"));
}

static void explain(const Lora *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void explain(const Lora *l, const char *fmt, ...)
{
    if (!l->ctx->explain || !l->ctx->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("// lora: ", l->ctx->out);
    vfprintf(l->ctx->out, fmt, ap);
    fputc('\n', l->ctx->out);
    va_end(ap);
}

/* ---------------------------------------------------------------- what to adapt */

/* The param W that matmul n reads as its weight, or NULL. */
static IrNode *weight_of(const IrNode *n)
{
    if (n->op != OP_MATMUL || n->nin != 2)
        return NULL;
    IrNode *w = n->in[1];
    bool ok = w->op == OP_PARAM && w->shape.rank == 2 && w->dtype == DT_F32 && w->name &&
              !pass_lora_is_adapter(w->name);
    return ok ? w : NULL;
}

static bool has_param(const IrGraph *g, const char *name)
{
    return ir_graph_find(g, OP_PARAM, name) != NULL;
}

/* Every param read as a weight: its layout, and whether others read it. */
static void find_weights(Lora *l)
{
    IrGraph *g = l->g;
    for (int i = 0; i < g->nnodes; i++)
        l->w[i].tb = -1;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i], *w = weight_of(n);
        for (int j = 0; j < n->nin; j++)
            if (n->in[j]->op == OP_PARAM && (n->in[j] != w || j != 1))
                l->w[n->in[j]->index].tied = true;
        if (!w)
            continue;
        int tb = ir_node_int(n, ATTR_TB, 0) ? 1 : 0, *t = &l->w[w->index].tb;
        *t = *t < 0 || *t == tb ? tb : 2;
    }
}

/* Marks the targets; false + err for a glob that matches no weight. */
static bool match_targets(Lora *l)
{
    const PassLoraOpts *o = l->o;
    IrGraph *g = l->g;
    const char *example = NULL;
    for (int i = 0; i < g->nnodes; i++)
        if (l->w[i].tb >= 0) {
            l->w[i].match = o->ntargets == 0;
            example = example ? example : g->nodes[i]->name;
        }
    for (int k = 0; k < o->ntargets; k++) {
        bool any = false;
        for (int i = 0; i < g->nnodes; i++)
            if (l->w[i].tb >= 0 && !fnmatch(o->targets[k], g->nodes[i]->name, 0))
                l->w[i].match = any = true;
        if (any)
            continue;
        ir_error(l->ctx->err, "lora: --lora-targets '%s' matches no weight of a linear layer "
                 "(a 2-D param that a matmul reads as its right operand)", o->targets[k]);
        if (example)
            ir_error_hint(l->ctx->err, "targets are globs over param names, e.g. '%s' or "
                          "'*.W_query.weight'; `gradc check --params` lists the params",
                          example);
        else
            ir_error_hint(l->ctx->err, "this graph has no matmul that reads a 2-D param");
        return false;
    }
    return true;
}

/* Decides which matched weights get adapters; the count. */
static int choose(Lora *l)
{
    int n = 0;
    char name[512];
    for (int i = 0; i < l->g->nnodes; i++) {
        LoraW *w = &l->w[i];
        const char *wn = l->g->nodes[i]->name;
        if (!w->match)
            continue;
        snprintf(name, sizeof name, "%s.lora_A", wn);
        if (has_param(l->g, name)) {
            explain(l, "%s already has adapters: left as it is", wn);
            w->match = false;
        } else if (w->tb == 2) {
            explain(l, "%s is read both as [in,out] and as [out,in] (tb=0 and tb=1): "
                    "left as it is", wn);
            w->match = false;
        } else {
            n++;
        }
    }
    return n;
}

/* ---------------------------------------------------------------- the rewrite */

static IrNode *adapter(IrGraph *g, const char *w, const char *suffix, IrDim d0, IrDim d1,
                       const char *init)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", w, suffix);
    return ir_param(g, name, ir_shape_of(2, (IrDim[]){d0, d1}), init, 0.0, true);
}

/* W's adapters, appended to the graph (rebuild moves them next to W). */
static void make_adapters(Lora *l, IrNode *w)
{
    LoraW *lw = &l->w[w->index];
    IrDim in = w->shape.d[lw->tb ? 1 : 0], out = w->shape.d[lw->tb ? 0 : 1];
    IrDim r = ir_dim_const(l->o->rank);
    lw->a = adapter(l->g, w->name, "lora_A", in, r, "uniform");
    ir_node_set_attr(l->g, lw->a, ir_attr_float(ATTR_BOUND, 1.0 / sqrt((double)l->o->rank)));
    lw->b = adapter(l->g, w->name, "lora_B", r, out, "zeros");
    char s[64], dims[2][64];
    ir_dim_str(in, l->g->sym, dims[0], sizeof dims[0]);
    ir_dim_str(out, l->g->sym, dims[1], sizeof dims[1]);
    snprintf(s, sizeof s, "%g", pass_lora_scale(l->o));
    explain(l, "%s (tb=%d, in %s, out %s): x.W + %s * (x.A).B, A = %s [%s,%d] "
            "uniform(1/sqrt(%d)), B = %s [%d,%s] zeros%s", w->name, lw->tb, dims[0], dims[1], s,
            lw->a->name, dims[0], l->o->rank, l->o->rank, lw->b->name, l->o->rank, dims[1],
            lw->tied ? "; also read by another op (a tied embedding?): merging the "
                       "adapters into it changes that op too" : "");
}

/* y = m + ((x.A) * s).B after matmul m, in g's order. */
static IrNode *low_rank(Lora *l, IrNode *m, const LoraW *w)
{
    IrGraph *g = l->g;
    IrAttr ta = ir_attr_int(ATTR_TA, 1);
    int nta = ir_node_int(m, ATTR_TA, 0) ? 1 : 0;
    IrNode *xa = ir_op2(g, OP_MATMUL, m->in[0], w->a, &ta, nta);
    IrNode *s = ir_const(g, pass_lora_scale(l->o), DT_F32, ir_shape_of(0, NULL));
    IrNode *xas = ir_binary(g, OP_MUL, xa, s);
    IrNode *xab = ir_op2(g, OP_MATMUL, xas, w->b, NULL, 0);
    return ir_binary(g, OP_ADD, m, xab);
}

static IrNode *resolve(IrNode *n)
{
    return n->aux ? (IrNode *)n->aux : n;
}

/* g's nodes again from old[]: each adapted W followed by its adapters, each
 * adapted matmul by its low-rank path, which takes over the matmul's uses. */
static void rebuild(Lora *l, IrNode **old, int nold)
{
    IrGraph *g = l->g;
    g->nnodes = 0;
    for (int i = 0; i < nold; i++) {
        IrNode *n = old[i];
        for (int j = 0; j < n->nin; j++)
            n->in[j] = resolve(n->in[j]);
        ir_graph_append(g, n);
        IrNode *w = weight_of(n);
        const LoraW *lw = w ? l->byid[w->id] : NULL;
        if (n->op == OP_PARAM && l->w[i].match) {
            ir_graph_append(g, l->w[i].a);
            ir_graph_append(g, l->w[i].b);
        } else if (lw) {
            n->aux = low_rank(l, n, lw);
        }
    }
    for (int i = 0; i < g->nout; i++)
        g->outs[i].node = resolve(g->outs[i].node);
}

static void freeze_base(Lora *l)
{
    int nfrozen = 0;
    for (int i = 0; i < l->g->nnodes; i++) {
        IrNode *n = l->g->nodes[i];
        if (n->op != OP_PARAM || pass_lora_is_adapter(n->name))
            continue;
        nfrozen += ir_node_int(n, ATTR_TRAINABLE, 1) != 0;
        ir_node_set_attr(l->g, n, ir_attr_int(ATTR_TRAINABLE, 0));
    }
    explain(l, "froze %d params: only the adapters train", nfrozen);
}

static void rewrite(Lora *l)
{
    IrGraph *g = l->g;
    int nold = g->nnodes;
    IrNode **old = ir_malloc((size_t)nold * sizeof *old);
    memcpy(old, g->nodes, (size_t)nold * sizeof *old);
    l->byid = ir_calloc((size_t)g->next_id + 1, sizeof *l->byid);
    for (int i = 0; i < nold; i++) {
        old[i]->aux = NULL;
        if (old[i]->op == OP_PARAM && l->w[i].match) {
            make_adapters(l, old[i]);
            l->byid[old[i]->id] = &l->w[i];
        }
    }
    rebuild(l, old, nold);
    for (int i = 0; i < nold; i++)
        old[i]->aux = NULL;
    free(old);
    free(l->byid);
    ir_graph_reindex(g);
}

bool pass_lora(IrGraph *g, PassCtx *ctx)
{
    const PassLoraOpts *o = &ctx->lora;
    Lora l = {g, ctx, o, NULL, NULL};
    if (o->rank <= 0) {
        explain(&l, "rank 0: nothing to do (--lora-rank R turns LoRA on)");
        return true;
    }
    ir_graph_reindex(g);
    l.w = ir_calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *l.w);
    find_weights(&l);
    bool ok = match_targets(&l);
    int n = ok ? choose(&l) : 0;
    if (ok && n == 0)
        explain(&l, "no matmul reads a 2-D param that can be adapted: nothing to do");
    if (ok && n > 0) {
        explain(&l, "rank %d, alpha %g, scale %s = %g: %d weight(s)", o->rank,
                pass_lora_alpha(o), pass_lora_scale_name(o->scale), pass_lora_scale(o), n);
        rewrite(&l);
        freeze_base(&l);
    }
    free(l.w);
    return ok;
}
