/* inputs.c — seeded random inputs and output summaries (run, verify, bench).
 *
 * Integer inputs are uniform in [0, V) where V is the size of the table
 * that a gather indexes with them (or the logits' width for cross_entropy
 * targets, else config vocab_size), read from the graph before `decompose`
 * (ir_index_use), and checked against that range when set.  Float inputs
 * are standard normal, except `lr` (1e-3) and `step` (1); bool inputs are
 * fair coins.  State inputs (an output of the same name writes them back)
 * start at zero, or with `state_random` at small values (AdamW moments: m
 * normal with std 1e-3, v uniform in [1e-6, 2e-6], so that an update is a
 * smooth function of the gradient).  Each input draws from its own stream
 * (the seed and its name), so adding an input changes no other.
 */
#include "cli.h"
#include "ir/rng.h"
#include "runtime/rt_exec.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- random inputs */

static bool is_state(const IrGraph *g, const IrNode *x)
{
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, x->name))
            return true;
    return false;
}

static void fill_state(const char *name, float *x, int64_t n, IrRng *r)
{
    bool second = strstr(name, ".v.") || !strncmp(name, "v.", 2);
    for (int64_t k = 0; k < n; k++)
        x[k] = second ? (float)(1e-6 * (1 + ir_rng_uniform(r)))
                      : (float)(1e-3 * ir_rng_normal(r));
}

static void fill_float(const IrGraph *g, const IrNode *x, float *v, int64_t n, IrRng *r,
                       bool state_random)
{
    bool state = is_state(g, x);
    for (int64_t k = 0; k < n && !state; k++)
        v[k] = !strcmp(x->name, "lr") ? 1e-3f : !strcmp(x->name, "step") ? 1.0f
                                                                         : (float)ir_rng_normal(r);
    if (state && state_random)
        fill_state(x->name, v, n, r);
}

static void fill_int(const FeModel *m, const CliInput *in, int32_t *v, int64_t n, IrRng *r)
{
    const IrNode *x = in->node;
    int64_t range = in->use.range;
    if (range <= 0 && !cli_config_int(m, "vocab_size", &range))
        range = 2;
    for (int64_t k = 0; k < n; k++)
        v[k] = !strcmp(x->name, "step") ? 1 : (int32_t)(ir_rng_next(r) % (uint64_t)range);
}

static void fill_input(const IrGraph *g, const FeModel *m, CliInput *in,
                       uint64_t seed, bool state_random)
{
    IrRng r;
    ir_rng_init(&r, ir_rng_stream(seed ^ 0x1badc0deULL, in->node->name));
    if (in->node->dtype == DT_F32)
        fill_float(g, in->node, in->data, in->numel, &r, state_random);
    else if (in->node->dtype == DT_I32)
        fill_int(m, in, in->data, in->numel, &r);
    else
        for (int64_t k = 0; k < in->numel; k++)
            ((uint8_t *)in->data)[k] = (uint8_t)(ir_rng_next(&r) & 1);
}

static int64_t node_numel(const IrNode *n, const int64_t *binding, int64_t *dims)
{
    int64_t numel = 1;
    for (int d = 0; d < n->shape.rank; d++) {
        dims[d] = ir_dim_eval(n->shape.d[d], binding);
        numel *= dims[d];
    }
    return numel;
}

void cli_make_inputs(const IrGraph *g, const FeModel *m, const int64_t *binding, uint64_t seed,
                     bool state_random, CliInputs *out)
{
    memset(out, 0, sizeof *out);
    out->in = calloc((size_t)g->nnodes + 1, sizeof *out->in);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_INPUT)
            continue;
        CliInput *in = &out->in[out->n++];
        in->node = n;
        in->numel = node_numel(n, binding, in->dim);
        in->bytes = in->numel * (int64_t)ir_dtype_size(n->dtype);
        in->data = calloc((size_t)in->bytes + 1, 1);
        in->state = is_state(g, n);
        in->use = ir_index_use(g, n, binding);
        fill_input(g, m, in, seed, state_random);
    }
}

void cli_free_inputs(CliInputs *in)
{
    for (int k = 0; in->in && k < in->n; k++)
        free(in->in[k].data);
    free(in->in);
    memset(in, 0, sizeof *in);
}

bool cli_set_inputs(RtExec *ex, const CliInputs *in, IrError *err)
{
    for (int k = 0; k < in->n; k++) {
        const CliInput *x = &in->in[k];
        if (x->node->dtype == DT_I32 &&
            !ir_index_check_values(&x->use, x->node->name, x->data, x->numel, err))
            return false;
        if (!rt_exec_set_input(ex, x->node->name, x->data, x->bytes, err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- summaries */

static double value_at(IrDType dt, const void *data, int64_t k)
{
    if (dt == DT_F32)
        return ((const float *)data)[k];
    if (dt == DT_I32)
        return ((const int32_t *)data)[k];
    return ((const uint8_t *)data)[k];
}

static void print_stats(IrDType dt, const void *data, int64_t n, FILE *f)
{
    double sum = 0, sq = 0, lo = DBL_MAX, hi = -DBL_MAX;
    for (int64_t k = 0; k < n; k++) {
        double v = value_at(dt, data, k);
        sum += v;
        sq += v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = n ? sum / (double)n : 0, var = n ? sq / (double)n - mean * mean : 0;
    fprintf(f, "    mean %.6g  std %.6g  min %.6g  max %.6g\n", mean, sqrt(var > 0 ? var : 0),
            n ? lo : 0, n ? hi : 0);
}

void cli_print_output(const IrGraph *g, const IrOutput *o, const int64_t *binding,
                      const void *data, int64_t numel, FILE *f)
{
    char shape[256];
    int64_t dims[IR_MAX_RANK];
    node_numel(o->node, binding, dims);
    IrShape s = ir_shape_ints(o->node->shape.rank, dims);
    ir_shape_str(&s, g->sym, shape, sizeof shape);
    fprintf(f, "  %s: %s%s\n", o->name, ir_dtype_name(o->node->dtype), shape);
    print_stats(o->node->dtype, data, numel, f);
    fprintf(f, "    first:");
    for (int64_t k = 0; k < numel && k < 8; k++)
        fprintf(f, " %.6g", value_at(o->node->dtype, data, k));
    fprintf(f, "%s\n", numel > 8 ? " ..." : "");
}
