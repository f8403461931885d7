/* rt_classify.c — a fine-tuned classifier applied to texts (rt_finetune.h).
 *
 * The eval forward of the fine-tuning loop at B = 1: dropout off, the params
 * copied from the checkpoint by name with their shapes checked
 * (rt_exec_params_from_ckpt, which folds LoRA adapters into their weights:
 * the model is the plain one, the adapters come from the pass), the softmax
 * of "logits" in double precision.
 * One text per run keeps a text's answer independent of the others, as the
 * classifier's read at the last real token already does for the padding.
 */
#include "runtime/rt_finetune.h"

#include "passes/pass.h"
#include "runtime/rt_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct RtClassifier {
    IrGraph *g;
    RtExec *ex;
    int64_t T, C;
};

static bool find_logits(RtClassifier *k, IrError *err)
{
    for (int o = 0; o < k->g->nout; o++) {
        const IrNode *n = k->g->outs[o].node;
        if (!strcmp(k->g->outs[o].name, "logits") && n->shape.rank == 2 &&
            ir_dim_is_const(n->shape.d[1], &k->C))
            return true;
    }
    ir_error(err, "model '%s' has no output 'logits' [B, n_classes]",
             k->g->name ? k->g->name : "?");
    ir_error_hint(err, "gradc classify takes a checkpoint of gradc finetune classify");
    return false;
}

static bool compile(RtClassifier *k, int threads, IrError *err)
{
    int64_t b[IR_MAX_SYMS] = {0};
    for (int s = 0; s < k->g->nsym; s++)
        b[s] = !strcmp(k->g->sym[s], "B") ? 1 : !strcmp(k->g->sym[s], "T") ? k->T : 0;
    PassCtx ctx = pass_ctx_default(err);
    ctx.binding = b;
    RtExecOptions eo = {.nthreads = threads};
    return pass_run_compile(k->g, NULL, false, &ctx) &&
           (k->ex = rt_exec_new(k->g, b, &eo, err)) != NULL;
}

RtClassifier *rt_classifier_new(const IrGraph *model, const RtCkpt *c, int64_t T, int threads,
                                IrError *err)
{
    RtClassifier *k = calloc(1, sizeof *k);
    k->g = ir_graph_clone(model);
    k->T = T;
    pass_no_dropout(k->g);
    if (!find_logits(k, err) || !compile(k, threads, err) ||
        !rt_exec_params_from_ckpt(k->ex, k->g, c, err)) {
        rt_classifier_free(k);
        return NULL;
    }
    return k;
}

void rt_classifier_free(RtClassifier *k)
{
    if (!k)
        return;
    rt_exec_free(k->ex);
    ir_graph_free(k->g);
    free(k);
}

int64_t rt_classifier_classes(const RtClassifier *k)
{
    return k->C;
}

bool rt_classifier_run(RtClassifier *k, const int32_t *x, int32_t last, double *probs,
                       IrError *err)
{
    if (!rt_exec_set_input(k->ex, "idx", x, k->T * 4, err) ||
        !rt_exec_set_input(k->ex, "last", &last, 4, err) || !rt_exec_run(k->ex, err))
        return false;
    const float *l = rt_exec_output(k->ex, "logits", NULL);
    double top = l[0], sum = 0;
    for (int64_t c = 1; c < k->C; c++)
        top = fmax(top, l[c]);
    for (int64_t c = 0; c < k->C; c++)
        sum += probs[c] = exp(l[c] - top);
    for (int64_t c = 0; c < k->C; c++)
        probs[c] /= sum;
    return true;
}
