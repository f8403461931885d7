/* autodiff.c — reverse-mode automatic differentiation over the IR.
 *
 * pass_autodiff turns a model graph into the forward-and-backward part of
 * the train-step graph:
 *
 *  1. The loss.  A graph with a scalar output "loss" is differentiated as
 *     is.  Otherwise the pass adds an input `targets` (i32, the logits'
 *     shape without the last axis) and `loss = cross_entropy(logits,
 *     targets) {ignore_index}` as output "loss".
 *  2. Which nodes need a gradient: a forward sweep marks every f32 node
 *     that depends, through differentiable operands, on a trainable
 *     param.  Frozen params (attribute trainable=0, or a --freeze glob)
 *     are not marked, so backward work that would only feed them is never
 *     built (pruned by construction, not by a later dce).
 *  3. The backward sweep visits nodes from the loss towards the inputs and
 *     calls the op's rule (grad_rules.c).  Gradients live in a side table
 *     indexed by node position, never in the nodes; a value used several
 *     times gets the sum of its uses' contributions (`add` nodes).
 *  4. Every trainable param P gets an output "grad.P" of P's shape (a zero
 *     constant when the loss does not depend on it).
 *
 * Dropout: each dropout with p > 0 is given the scalar input `step` as its
 * second operand, so that its mask changes from step to step; the backward
 * dropout uses the same (seed, step) and therefore the same mask.
 *
 * The pass appends nodes only: the forward part is left untouched, so
 * the forward outputs (logits) stay valid.  passes/optimizer.c consumes
 * the "grad.P" outputs; docs/autodiff.md documents the whole contract.
 */
#include "grad_rules.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- shared with the rules */

bool ad_wants(const AdState *ad, const IrNode *n, int j)
{
    const IrNode *x = n->in[j];
    return x->index < ad->nfwd && ad->need[x->index] && x->dtype == DT_F32 &&
           !pass_autodiff_nondiff_reason(n->op, j);
}

void ad_acc(AdState *ad, IrNode *x, IrNode *g)
{
    if (x->index >= ad->nfwd || !ad->need[x->index])
        return;
    IR_ASSERT(ir_shape_eq(&x->shape, &g->shape) && g->dtype == DT_F32);
    if (ad->in_broken) {
        IrNode *k = ir_const(ad->g, 1.25, DT_F32, ir_shape_of(0, NULL));
        g = ir_binary(ad->g, OP_MUL, g, k);
    }
    IrNode **slot = &ad->grad[x->index];
    *slot = *slot ? ir_binary(ad->g, OP_ADD, *slot, g) : g;
}

void ad_fail(AdState *ad, const IrNode *n, const char *msg)
{
    if (ad->failed)
        return;
    ir_error(ad->err, "autodiff: node %%%d (%s): %s", n->index, ir_op_name(n->op), msg);
    ir_error_hint(ad->err, "freeze the params that flow through this node (--freeze) or "
                           "rewrite it with ops that have a gradient rule");
    ad->failed = true;
}

/* ---------------------------------------------------------------- params */

bool pass_param_trainable(const IrNode *p, const PassTrainOpts *o)
{
    if (p->op != OP_PARAM || ir_node_int(p, ATTR_TRAINABLE, 1) == 0)
        return false;
    for (int i = 0; i < o->nfreeze; i++)
        if (p->name && fnmatch(o->freeze[i], p->name, 0) == 0)
            return false;
    return true;
}

static const IrOutput *find_output(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nout; i++)
        if (!strcmp(g->outs[i].name, name))
            return &g->outs[i];
    return NULL;
}

/* ---------------------------------------------------------------- new inputs */

/* Moves n (a new input) up to the end of the graph's leading inputs and
 * params, so that dumps list every input first; order stays valid since
 * an input has no operands. */
void pass_place_input(IrGraph *g, IrNode *n)
{
    int k = 0, at = n->index;
    while (k < at && (g->nodes[k]->op == OP_INPUT || g->nodes[k]->op == OP_PARAM))
        k++;
    memmove(&g->nodes[k + 1], &g->nodes[k], (size_t)(at - k) * sizeof *g->nodes);
    g->nodes[k] = n;
    ir_graph_reindex(g);
}

static IrNode *new_input(IrGraph *g, const char *name, IrDType dt, IrShape s)
{
    IrNode *n = ir_input(g, name, dt, s);
    pass_place_input(g, n);
    return n;
}

/* Dropout in the train step draws a new mask every step: each dropping op
 * (ir_op_drops: dropout, causal_attention and a causal_attention_grad the
 * graph holds itself) without its step operand (ops.def's step column: the
 * one after the others) and with p > 0 gets the scalar input `step`,
 * which the optimizer's bias correction reads too.  The
 * backward then reuses (seed, step) and so the very same mask. */
static bool wire_dropout_step(IrGraph *g, PassCtx *ctx)
{
    IrNode *step = NULL;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        bool lone = ir_op_drops(n->op) && n->nin == ir_ops[n->op].step;
        if (!lone || ir_node_float(n, ATTR_P, 0) <= 0)
            continue;
        if (!step)
            step = ir_graph_find(g, OP_INPUT, "step");
        if (!step)
            step = new_input(g, "step", DT_I32, ir_shape_of(0, NULL));
        if (step->dtype != DT_I32 || step->shape.rank != 0) {
            ir_error(ctx->err, "autodiff: input 'step' must be an i32 scalar (dropout reads it)");
            return false;
        }
        if (step->index > n->index)
            pass_place_input(g, step);
        n->in[n->nin++] = step;
    }
    return true;
}

/* ---------------------------------------------------------------- the loss */

static IrNode *loss_check(IrGraph *g, IrNode *loss, PassCtx *ctx)
{
    if (loss->dtype == DT_F32 && loss->shape.rank == 0)
        return loss;
    ir_error(ctx->err, "autodiff: output 'loss' of graph '%s' must be a scalar f32", g->name);
    ir_error_hint(ctx->err, "reduce it with mean or sum over every axis");
    return NULL;
}

/* The targets input: the one the graph declares, or a new one. */
static IrNode *targets_input(IrGraph *g, const IrShape *s, PassCtx *ctx)
{
    IrNode *t = ir_graph_find(g, OP_INPUT, "targets");
    if (!t)
        return new_input(g, "targets", DT_I32, *s);
    if (t->dtype == DT_I32 && ir_shape_eq(&t->shape, s))
        return t;
    char buf[128];
    ir_shape_str(s, g->sym, buf, sizeof buf);
    ir_error(ctx->err, "autodiff: input 'targets' must be i32%s to match the logits", buf);
    return NULL;
}

static IrNode *add_loss(IrGraph *g, PassCtx *ctx)
{
    const IrOutput *o = find_output(g, "loss");
    if (o)
        return loss_check(g, o->node, ctx);
    const char *name = ctx->train.logits ? ctx->train.logits : "logits";
    o = find_output(g, name);
    if (!o || o->node->dtype != DT_F32 || o->node->shape.rank < 1) {
        ir_error(ctx->err, "autodiff: graph '%s' has no scalar output 'loss' and no f32 "
                 "output '%s'", g->name, name);
        ir_error_hint(ctx->err, "name the model's logits output '%s', or add an output 'loss'",
                      name);
        return NULL;
    }
    IrShape ts = o->node->shape;
    ts.rank--;
    IrNode *t = targets_input(g, &ts, ctx);
    if (!t)
        return NULL;
    IrAttr a = ir_attr_int(ATTR_IGNORE_INDEX, ctx->train.ignore_index);
    IrNode *loss = ir_op2(g, OP_CROSS_ENTROPY, o->node, t, &a, 1);
    ir_graph_add_output(g, "loss", loss);
    return loss;
}

IrNode *pass_train_forward(IrGraph *g, PassCtx *ctx)
{
    IrNode *loss = add_loss(g, ctx);
    return loss && wire_dropout_step(g, ctx) ? loss : NULL;
}

/* ---------------------------------------------------------------- the sweeps */

static void mark_need(AdState *ad, const PassTrainOpts *o)
{
    for (int i = 0; i < ad->nfwd; i++) {
        IrNode *n = ad->g->nodes[i];
        ad->need[i] = pass_param_trainable(n, o);
        for (int j = 0; j < n->nin && n->dtype == DT_F32 && !ad->need[i]; j++)
            ad->need[i] = ad_wants(ad, n, j);
    }
}

static IrOp broken_op(const PassTrainOpts *o)
{
    return o->broken_rule ? ir_op_lookup(o->broken_rule) : OP_COUNT;
}

static bool backward(AdState *ad, IrNode *loss)
{
    ad->grad[loss->index] = ir_const(ad->g, 1.0, DT_F32, ir_shape_of(0, NULL));
    for (int i = loss->index; i >= 0 && !ad->failed; i--) {
        IrNode *n = ad->g->nodes[i], *gi = ad->grad[i];
        if (!gi || !ad->need[i] || ir_ops[n->op].kind == OPK_SOURCE)
            continue;
        ad->in_broken = n->op == ad->broken;
        ad_rules[n->op](ad, n, gi);
        ad->in_broken = false;
    }
    return !ad->failed;
}

static void emit_grads(AdState *ad, const PassTrainOpts *o)
{
    for (int i = 0; i < ad->nfwd; i++) {
        IrNode *p = ad->g->nodes[i];
        if (!pass_param_trainable(p, o))
            continue;
        IrNode *gp = ad->grad[i] ? ad->grad[i] : ir_const(ad->g, 0, DT_F32, p->shape);
        size_t len = strlen(p->name) + 6;
        char *name = malloc(len);
        snprintf(name, len, "grad.%s", p->name);
        ir_graph_add_output(ad->g, name, gp);
        free(name);
    }
}

static bool already_differentiated(IrGraph *g, PassCtx *ctx)
{
    for (int i = 0; i < g->nout; i++)
        if (!strncmp(g->outs[i].name, "grad.", 5)) {
            ir_error(ctx->err, "autodiff: graph '%s' already has gradient output '%s'", g->name,
                     g->outs[i].name);
            ir_error_hint(ctx->err, "run autodiff once, on the model graph");
            return true;
        }
    return false;
}

bool pass_autodiff(IrGraph *g, PassCtx *ctx)
{
    if (already_differentiated(g, ctx))
        return false;
    IrNode *loss = pass_train_forward(g, ctx);
    if (!loss)
        return false;
    AdState ad = {.g = g, .nfwd = g->nnodes, .err = ctx->err, .broken = broken_op(&ctx->train)};
    ad.grad = calloc(ad.nfwd, sizeof *ad.grad);
    ad.need = calloc(ad.nfwd, sizeof *ad.need);
    IR_ASSERT(ad.grad && ad.need);
    ir_graph_reindex(g);
    mark_need(&ad, &ctx->train);
    bool ok = backward(&ad, loss);
    if (ok)
        emit_grads(&ad, &ctx->train);
    free(ad.grad);
    free(ad.need);
    return ok;
}
