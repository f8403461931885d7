/* rt_sample.c — choosing tokens and generating text (rt_train.h).
 *
 * The sampler follows the book's generate(): keep the top-k logits (every
 * logit equal to the k-th largest survives, as torch.where(logits < kth)
 * does), divide by the temperature, softmax, draw one token; temperature 0
 * is greedy argmax.  Draws come from the project's xoshiro stream (ir/rng.h)
 * seeded with --seed, and are computed in double precision, so a seed gives
 * the same text on every machine and thread count.
 *
 * The generator owns up to two compiled programs at B = 1:
 *   decode  the KV-cached step of passes/decode.c: one token in, its logits
 *           out, the keys and values of earlier positions kept in state
 *           buffers; the prompt goes in token by token (prefill), then
 *           each new token costs one step;
 *   full    the forward over a window of `window` tokens (the context
 *           length), right-padded; by causality the logits at the last
 *           real position do not see the padding.  It is used when the
 *           model has no decode step, and when a sequence outgrows the
 *           cache: from then on the book's generate() crops to the last
 *           window tokens, with positions from 0, which only the full
 *           forward can do.  Compiled lazily in KV mode.
 */
#include "runtime/rt_train.h"
#include "passes/pass.h"
#include "runtime/rt_lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- sampler */

void rt_sampler_init(RtSampler *s, double temperature, int top_k, uint64_t seed)
{
    s->temperature = temperature;
    s->top_k = top_k;
    ir_rng_init(&s->rng, ir_rng_stream(seed, "sample"));
}

static int64_t argmax(const float *x, int64_t V)
{
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int desc_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The k-th largest logit (k >= 1). */
static float kth_largest(const float *x, int64_t V, int k)
{
    float *c = malloc(sizeof *c * (size_t)V);
    memcpy(c, x, sizeof *c * (size_t)V);
    qsort(c, (size_t)V, sizeof *c, desc_float);
    float t = c[k - 1];
    free(c);
    return t;
}

int32_t rt_sampler_pick(RtSampler *s, const float *logits, int64_t V)
{
    int64_t best = argmax(logits, V);
    if (s->temperature <= 0)
        return (int32_t)best;
    float thr = s->top_k > 0 && s->top_k < V ? kth_largest(logits, V, s->top_k) : -INFINITY;
    double max = logits[best], sum = 0;
    double *p = malloc(sizeof *p * (size_t)V);
    for (int64_t i = 0; i < V; i++)
        sum += p[i] = logits[i] >= thr ? exp(((double)logits[i] - max) / s->temperature) : 0;
    double u = ir_rng_uniform(&s->rng) * sum, acc = 0;
    int64_t pick = best;
    for (int64_t i = 0; i < V; i++)
        if (p[i] > 0 && (acc += p[i]) > u) {
            pick = i;
            break;
        }
    free(p);
    return (int32_t)pick;
}

/* ---------------------------------------------------------------- graphs */

const IrNode *rt_graph_token_input(const IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == OP_GATHER && n->in[1]->op == OP_INPUT && n->in[1]->dtype == DT_I32)
            return n->in[1];
    }
    return NULL;
}

/* ---------------------------------------------------------------- params */

static void shape_text(const IrNode *n, char *buf, size_t cap)
{
    IrShape s = n->shape;
    ir_shape_str(&s, NULL, buf, cap);
}

static bool ckpt_mismatch(const RtCkpt *c, const IrNode *n, const RtCkptTensor *t, IrError *err)
{
    char want[128], got[128] = "missing";
    shape_text(n, want, sizeof want);
    if (t) {
        int len = snprintf(got, sizeof got, "%s[", rt_dtype_name(t->dtype));
        for (int d = 0; d < t->rank; d++)
            len += snprintf(got + len, sizeof got - (size_t)len, d ? ",%lld" : "%lld",
                            (long long)t->shape[d]);
        snprintf(got + len, sizeof got - (size_t)len, "]");
    }
    ir_error(err, "checkpoint '%s' does not match the model: param '%s' is f32%s in the model, "
             "%s in the checkpoint", c->path, n->name, want, got);
    ir_error_hint(err, "use the model file and --set values the checkpoint was trained with "
                  "(they are in its metadata: model.json, model.sets)");
    return false;
}

static bool tensor_fits(const IrNode *n, const RtCkptTensor *t)
{
    if (!t || t->dtype != RT_DT_F32 || t->rank != n->shape.rank)
        return false;
    for (int d = 0; d < t->rank; d++) {
        int64_t v;
        if (!ir_dim_is_const(n->shape.d[d], &v) || v != t->shape[d])
            return false;
    }
    return true;
}

/* A checkpoint with LoRA adapters of n that g does not have (a model
 * loaded without --lora-rank): n's weights with the adapters folded in. */
static bool adapted_elsewhere(const IrGraph *g, const RtCkpt *c, const IrNode *n)
{
    char a[600];
    snprintf(a, sizeof a, "%s.lora_A", n->name);
    return rt_ckpt_find(c, a) && !ir_graph_find(g, OP_PARAM, a);
}

bool rt_exec_params_from_ckpt(RtExec *dst, const IrGraph *g, const RtCkpt *c, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            continue;
        const RtCkptTensor *t = rt_ckpt_find(c, n->name);
        if (!tensor_fits(n, t))
            return ckpt_mismatch(c, n, t, err);
        bool found, adapted = adapted_elsewhere(g, c, n);
        float *merged = adapted ? rt_lora_merged(c, n->name, &found, err) : NULL;
        if (adapted && !merged)
            return false;
        memcpy(rt_exec_param(dst, n->name), merged ? merged : t->data, (size_t)t->bytes);
        free(merged);
    }
    return true;
}

bool rt_exec_params_copy(RtExec *dst, const IrGraph *g, RtExec *src, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            continue;
        float *to = rt_exec_param(dst, n->name), *from = rt_exec_param(src, n->name);
        int64_t numel = ir_node_numel_const(n);
        if (!to || !from || numel < 0) {
            ir_error(err, "internal: param '%s' is missing from one of two programs", n->name);
            return false;
        }
        memcpy(to, from, sizeof(float) * (size_t)numel);
    }
    return true;
}

/* ---------------------------------------------------------------- generator */

struct RtGen {
    const IrGraph *model;
    RtExecOptions eo;
    int64_t window;          /* full: T; decode: cache rows S */
    int64_t V;
    const char *tok_name;    /* the token input ("idx") */
    IrGraph *full, *dec;
    RtExec *full_ex, *dec_ex;
    int nlayers;
};

static bool bind_gen(const IrGraph *g, int64_t window, int64_t *b, IrError *err)
{
    memset(b, 0, sizeof *b * IR_MAX_SYMS);
    for (int s = 0; s < g->nsym; s++) {
        const char *n = g->sym[s];
        b[s] = !strcmp(n, "B") ? 1 : !strcmp(n, "T") || !strcmp(n, "S") ? window : 0;
        if (!b[s]) {
            ir_error(err, "cannot sample from a graph with symbol '%s'", n);
            ir_error_hint(err, "sampling binds only B (batch) and T (sequence)");
            return false;
        }
    }
    return true;
}

static RtExec *compile(const IrGraph *g, int64_t window, const RtExecOptions *eo, IrError *err)
{
    int64_t b[IR_MAX_SYMS];
    if (!bind_gen(g, window, b, err))
        return NULL;
    RtExec *ex = rt_exec_new(g, b, eo, err);
    if (ex)
        rt_exec_init_params(ex, 0);   /* zeroes the caches; params are copied in */
    return ex;
}

static bool compile_full(RtGen *gen, IrError *err)
{
    gen->full = ir_graph_clone(gen->model);
    pass_no_dropout(gen->full);
    gen->full_ex = compile(gen->full, gen->window, &gen->eo, err);
    if (gen->full_ex && gen->dec_ex)
        return rt_exec_params_copy(gen->full_ex, gen->full, gen->dec_ex, err);
    return gen->full_ex != NULL;
}

static bool try_decode(RtGen *gen, IrError *err)
{
    IrError why = {0};
    gen->dec = pass_decode_graph(gen->model, &gen->nlayers, &why);
    if (!gen->dec)
        return true;   /* no KV pattern: the full forward does it all */
    gen->dec_ex = compile(gen->dec, gen->window, &gen->eo, err);
    return gen->dec_ex != NULL;
}

static bool find_logits(RtGen *gen, IrError *err)
{
    const IrNode *tok = rt_graph_token_input(gen->model);
    const IrOutput *lo = NULL;
    for (int o = 0; o < gen->model->nout; o++)
        if (!strcmp(gen->model->outs[o].name, "logits"))
            lo = &gen->model->outs[o];
    if (!tok || !lo || lo->node->shape.rank != 3 ||
        !ir_dim_is_const(lo->node->shape.d[2], &gen->V)) {
        ir_error(err, "cannot sample from model '%s': it needs an i32 token input read by a "
                 "gather and an output 'logits' [B,T,V]", gen->model->name);
        ir_error_hint(err, "see models/gpt2-small.json");
        return false;
    }
    gen->tok_name = tok->name;
    return true;
}

RtGen *rt_gen_new(const IrGraph *model, int64_t window, bool kv, const RtExecOptions *eo,
                  IrError *err)
{
    RtGen *gen = calloc(1, sizeof *gen);
    gen->model = model;
    gen->window = window;
    if (eo)
        gen->eo = *eo;
    bool ok = find_logits(gen, err) && (!kv || try_decode(gen, err));
    ok = ok && (gen->dec_ex || compile_full(gen, err));
    if (!ok) {
        rt_gen_free(gen);
        return NULL;
    }
    return gen;
}

void rt_gen_free(RtGen *gen)
{
    if (!gen)
        return;
    rt_exec_free(gen->full_ex);
    rt_exec_free(gen->dec_ex);
    ir_graph_free(gen->full);
    ir_graph_free(gen->dec);
    free(gen);
}

int64_t rt_gen_window(const RtGen *gen)
{
    return gen->window;
}

bool rt_gen_has_kv(const RtGen *gen)
{
    return gen->dec_ex != NULL;
}

bool rt_gen_params_from_exec(RtGen *gen, RtExec *src, IrError *err)
{
    if (gen->dec_ex && !rt_exec_params_copy(gen->dec_ex, gen->dec, src, err))
        return false;
    return !gen->full_ex || rt_exec_params_copy(gen->full_ex, gen->full, src, err);
}

bool rt_gen_params_from_ckpt(RtGen *gen, const RtCkpt *c, IrError *err)
{
    if (gen->dec_ex && !rt_exec_params_from_ckpt(gen->dec_ex, gen->dec, c, err))
        return false;
    return !gen->full_ex || rt_exec_params_from_ckpt(gen->full_ex, gen->full, c, err);
}

/* logits [V] after the last of seq[0..len) with the full forward. */
static const float *full_logits(RtGen *gen, const int32_t *seq, size_t len, IrError *err)
{
    if (!gen->full_ex && !compile_full(gen, err))
        return NULL;
    int64_t W = gen->window, m = (int64_t)len < W ? (int64_t)len : W;
    int32_t *x = calloc((size_t)W, sizeof *x);
    memcpy(x, seq + len - m, sizeof *x * (size_t)m);
    bool ok = rt_exec_set_input(gen->full_ex, gen->tok_name, x, W * 4, err) &&
              rt_exec_run(gen->full_ex, err);
    free(x);
    return ok ? (const float *)rt_exec_output(gen->full_ex, "logits", NULL) + (m - 1) * gen->V
              : NULL;
}

/* One decode step: token id at position pos; its logits [V]. */
static const float *decode_step(RtGen *gen, int32_t id, int32_t pos, IrError *err)
{
    bool ok = rt_exec_set_input(gen->dec_ex, gen->tok_name, &id, 4, err) &&
              rt_exec_set_input(gen->dec_ex, "gen.pos", &pos, 4, err) &&
              rt_exec_run(gen->dec_ex, err);
    return ok ? rt_exec_output(gen->dec_ex, "logits", NULL) : NULL;
}

/* Logits after the whole prompt; KV mode prefills the cache. */
static const float *prefill(RtGen *gen, const int32_t *seq, size_t n, bool kv, IrError *err)
{
    if (!kv)
        return full_logits(gen, seq, n, err);
    const float *l = NULL;
    for (size_t i = 0; i < n; i++)
        if (!(l = decode_step(gen, seq[i], (int32_t)i, err)))
            return NULL;
    return l;
}

bool rt_gen_run(RtGen *gen, RtSampler *s, const int32_t *prompt, size_t n,
                const RtGenOptions *o, int32_t **out, size_t *nout, IrError *err)
{
    int32_t *seq = malloc(sizeof *seq * (n + (size_t)o->max_new + 1));
    memcpy(seq, prompt, sizeof *seq * n);
    size_t len = n;
    bool kv = gen->dec_ex && (int64_t)n <= gen->window;
    const float *l = o->max_new > 0 ? prefill(gen, seq, n, kv, err) : NULL;
    bool ok = o->max_new <= 0 || l;
    for (int k = 0; ok && k < o->max_new; k++) {
        int32_t id = rt_sampler_pick(s, l, gen->V);
        seq[len++] = id;
        if (o->on_token)
            o->on_token(o->ctx, id);
        if (id == o->stop_id || k + 1 == o->max_new || (o->stop && o->stop(o->ctx)))
            break;
        kv = kv && (int64_t)len <= gen->window;
        l = kv ? decode_step(gen, id, (int32_t)len - 1, err) : full_logits(gen, seq, len, err);
        ok = l != NULL;
    }
    *nout = len - n;
    *out = malloc(sizeof **out * (*nout + 1));
    memcpy(*out, seq + n, sizeof **out * *nout);
    free(seq);
    return ok;
}
