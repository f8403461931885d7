/* optimizer.c — the AdamW update as graph ops, appended after autodiff.
 *
 * pass_optimizer reads the "grad.P" outputs that pass_autodiff left and
 * appends, in primitives only, PyTorch's AdamW step (torch.optim.AdamW,
 * with clip_grad_norm_ before it), so the update fuses and schedules like
 * the rest of the step:
 *
 *     norm  = sqrt(sum over all P of sum(grad.P^2))     (output grad_norm)
 *     g     = grad.P * min(1, clip / (norm + 1e-6))      (when clip_norm > 0)
 *     m     = beta1 * m + (1 - beta1) * g
 *     v     = beta2 * v + (1 - beta2) * g^2
 *     bc1   = 1 - exp(step * log(beta1)),  bc2 = 1 - exp(step * log(beta2))
 *     P     = P * (1 - lr * wd) - (m / (sqrt(v) / sqrt(bc2) + eps)) * (lr / bc1)
 *
 * in the order of PyTorch's single-tensor AdamW (decay first, then
 * addcdiv with step_size = lr / bc1), which also keeps the full-size
 * temporaries few: the scalars are computed once for all params.
 *
 * Runtime inputs: `lr` (f32[]) and `step` (i32[], 1-based), so schedules
 * need no recompile.  State: inputs `adam.m.P` and `adam.v.P`, and outputs
 * of the same names holding the new moments.  The new parameter is output
 * `P`.  An output whose name equals an input or param name is state: the
 * runtime writes it back into that input or param before the next step.
 * The "grad.P" outputs stay (the raw gradients, before clipping), so that
 * a train step can be checked against PyTorch's.  Weight decay goes to every
 * param (decay_all, PyTorch's default and the book's) or, with
 * decay_all = false, only to params of rank >= 2, skipping biases and
 * norm scales and shifts as nanoGPT does.
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The scalars shared by every param's update (f32[] nodes). */
typedef struct Opt {
    IrGraph *g;
    const PassTrainOpts *o;
    IrNode *lr;
    IrNode *step_size;   /* lr / (1 - beta1^step) */
    IrNode *sqrt_bc2;    /* sqrt(1 - beta2^step) */
    IrNode *decay;       /* 1 - lr * weight_decay */
    IrNode *clip_scale;  /* min(1, clip / (norm + 1e-6)), or NULL */
} Opt;

static IrNode *scal(IrGraph *g, double v)
{
    return ir_const(g, v, DT_F32, ir_shape_of(0, NULL));
}

static IrNode *add(IrGraph *g, IrNode *a, IrNode *b) { return ir_binary(g, OP_ADD, a, b); }
static IrNode *sub(IrGraph *g, IrNode *a, IrNode *b) { return ir_binary(g, OP_SUB, a, b); }
static IrNode *mul(IrGraph *g, IrNode *a, IrNode *b) { return ir_binary(g, OP_MUL, a, b); }
static IrNode *dvd(IrGraph *g, IrNode *a, IrNode *b) { return ir_binary(g, OP_DIV, a, b); }

/* An existing input of that name and type, or a new one. */
static IrNode *scalar_input(IrGraph *g, const char *name, IrDType dt, IrError *err)
{
    IrNode *n = ir_graph_find(g, OP_INPUT, name);
    if (!n) {
        n = ir_input(g, name, dt, ir_shape_of(0, NULL));
        pass_place_input(g, n);
        return n;
    }
    if (n->shape.rank == 0 && (n->dtype == dt || n->dtype == DT_F32))
        return n;
    ir_error(err, "optimizer: input '%s' exists but is not a %s scalar", name, ir_dtype_name(dt));
    ir_error_hint(err, "rename that input of the model; the train step owns '%s'", name);
    return NULL;
}

/* 1 - beta^step, with beta^step = exp(step * log(beta)). */
static IrNode *bias_correction(IrGraph *g, IrNode *step, double beta)
{
    return sub(g, scal(g, 1), ir_unary(g, OP_EXP, mul(g, step, scal(g, log(beta)))));
}

static IrNode *sum_all(IrGraph *g, IrNode *x)
{
    int axes[IR_MAX_RANK];
    for (int i = 0; i < x->shape.rank; i++)
        axes[i] = i;
    return x->shape.rank ? ir_reduce(g, OP_SUM, x, axes, x->shape.rank, false) : x;
}

/* min(1, clip / (norm + 1e-6)), with norm the global L2 norm of the grads. */
static IrNode *clip_scale(Opt *s, IrNode **grads, int n)
{
    IrGraph *g = s->g;
    IrNode *sq = NULL;
    for (int i = 0; i < n; i++) {
        IrNode *t = sum_all(g, mul(g, grads[i], grads[i]));
        sq = sq ? add(g, sq, t) : t;
    }
    IrNode *norm = ir_unary(g, OP_SQRT, sq ? sq : scal(g, 0));
    ir_graph_add_output(g, "grad_norm", norm);
    IrNode *r = dvd(g, scal(g, s->o->clip_norm), add(g, norm, scal(g, 1e-6)));
    return ir_binary(g, OP_MINIMUM, scal(g, 1), r);
}

static void add_named_output(IrGraph *g, const char *prefix, const char *name, IrNode *n)
{
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *full = malloc(len);
    IR_ASSERT(full);
    snprintf(full, len, "%s%s", prefix, name);
    ir_graph_add_output(g, full, n);
    free(full);
}

static IrNode *moment_input(IrGraph *g, const char *prefix, const IrNode *p)
{
    size_t len = strlen(prefix) + strlen(p->name) + 1;
    char *full = malloc(len);
    IR_ASSERT(full);
    snprintf(full, len, "%s%s", prefix, p->name);
    IrNode *n = ir_input(g, full, DT_F32, p->shape);
    pass_place_input(g, n);
    free(full);
    return n;
}

static bool decays(const Opt *s, const IrNode *p)
{
    return s->o->weight_decay != 0 && (s->o->decay_all || p->shape.rank >= 2);
}

/* The AdamW update of one param p with gradient gr. */
static void update_param(Opt *s, IrNode *p, IrNode *gr)
{
    IrGraph *g = s->g;
    const PassTrainOpts *o = s->o;
    if (s->clip_scale)
        gr = mul(g, gr, s->clip_scale);
    IrNode *m0 = moment_input(g, "adam.m.", p), *v0 = moment_input(g, "adam.v.", p);
    IrNode *m = add(g, mul(g, scal(g, o->beta1), m0), mul(g, scal(g, 1 - o->beta1), gr));
    IrNode *v = add(g, mul(g, scal(g, o->beta2), v0),
                    mul(g, scal(g, 1 - o->beta2), mul(g, gr, gr)));
    IrNode *den = add(g, dvd(g, ir_unary(g, OP_SQRT, v), s->sqrt_bc2), scal(g, o->eps));
    IrNode *pd = decays(s, p) ? mul(g, p, s->decay) : p;
    ir_graph_add_output(g, p->name, sub(g, pd, mul(g, dvd(g, m, den), s->step_size)));
    add_named_output(g, "adam.m.", p->name, m);
    add_named_output(g, "adam.v.", p->name, v);
}

/* Collects the (param, grad) pairs of the grad.P outputs.  Returns their
 * number, or -1 on an error. */
static int find_grads(IrGraph *g, IrNode **params, IrNode **grads, IrError *err)
{
    int n = 0;
    for (int i = 0; i < g->nout; i++) {
        const IrOutput o = g->outs[i];
        IrNode *p = strncmp(o.name, "grad.", 5) ? NULL : ir_graph_find(g, OP_PARAM, o.name + 5);
        if (p) {
            params[n] = p;
            grads[n++] = o.node;
        }
    }
    if (n == 0) {
        ir_error(err, "optimizer: graph '%s' has no gradient outputs 'grad.P'", g->name);
        ir_error_hint(err, "run autodiff before optimizer: --passes=autodiff,optimizer");
        return -1;
    }
    return n;
}

static bool already_optimized(const IrGraph *g, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == OP_INPUT && n->name && !strncmp(n->name, "adam.", 5)) {
            ir_error(err, "optimizer: graph '%s' already has optimizer state '%s'", g->name,
                     n->name);
            ir_error_hint(err, "run optimizer once, after autodiff");
            return true;
        }
    }
    return false;
}

bool pass_optimizer(IrGraph *g, PassCtx *ctx)
{
    if (already_optimized(g, ctx->err))
        return false;
    IrNode **params = malloc((g->nout + 1) * sizeof *params);
    IrNode **grads = malloc((g->nout + 1) * sizeof *grads);
    IR_ASSERT(params && grads);
    Opt s = {.g = g, .o = &ctx->train};
    int n = find_grads(g, params, grads, ctx->err);
    IrNode *step = n < 0 ? NULL : scalar_input(g, "step", DT_I32, ctx->err);
    s.lr = step ? scalar_input(g, "lr", DT_F32, ctx->err) : NULL;
    if (s.lr) {
        IrDType f32 = DT_F32;
        IrError e = {0};
        if (step->dtype != DT_F32)
            step = ir_node_new(g, OP_CAST, &step, 1, NULL, 0, &f32, NULL, &e);
        s.step_size = dvd(g, s.lr, bias_correction(g, step, ctx->train.beta1));
        s.sqrt_bc2 = ir_unary(g, OP_SQRT, bias_correction(g, step, ctx->train.beta2));
        s.decay = sub(g, scal(g, 1), mul(g, s.lr, scal(g, ctx->train.weight_decay)));
        if (ctx->train.clip_norm > 0)
            s.clip_scale = clip_scale(&s, grads, n);
        for (int i = 0; i < n; i++)
            update_param(&s, params[i], grads[i]);
    }
    free(params);
    free(grads);
    return s.lr != NULL;
}

void pass_train_stats(const IrGraph *g, const PassTrainOpts *o, int64_t *trainable,
                      int64_t *state_bytes)
{
    int64_t count = 0;
    for (int i = 0; i < g->nnodes && count >= 0; i++) {
        const IrNode *p = g->nodes[i];
        if (!pass_param_trainable(p, o))
            continue;
        int64_t k = ir_node_numel_const(p);
        count = k < 0 ? -1 : count + k;
    }
    *trainable = count;
    *state_bytes = count < 0 ? -1 : 2 * count * (int64_t)ir_dtype_size(DT_F32);
}
