/* rt_ft_cls.c — classification fine-tuning as a batch source and an
 * accuracy metric for the fine-tuning loop (rt_finetune.h).
 *
 * It is the book's chapter 6 data loading: the train loader shuffles every
 * epoch and drops the last partial batch (drop_last=True); the val and test
 * loaders keep their order and every example, the last batch padded with
 * rows whose target is -100 (cross_entropy skips them, accuracy does not
 * count them), so that the programs keep one batch size.  Accuracy is
 * calc_accuracy_loader: correct real rows over real rows.
 */
#include "runtime/rt_cls_data.h"
#include "runtime/rt_finetune.h"

#include <stdlib.h>
#include <string.h>

struct RtFtCls {
    const RtClsData *d;
    int64_t B, T;
    bool shuffle;
    uint64_t seed;
    int64_t *order;            /* the train order of epoch order_epoch */
    int64_t order_epoch;
    int32_t *x, *last, *y;     /* one batch: (B, T), (B), (B) */
};

RtFtCls *rt_ft_cls_new(const RtClsData *d, int64_t batch, bool shuffle, uint64_t seed)
{
    RtFtCls *c = calloc(1, sizeof *c);
    *c = (RtFtCls){d, batch, d->pad_len, shuffle, seed, NULL, -1, NULL, NULL, NULL};
    c->order = calloc((size_t)d->train.n + 1, sizeof *c->order);
    c->x = calloc((size_t)(batch * d->pad_len), sizeof *c->x);
    c->last = calloc((size_t)batch, sizeof *c->last);
    c->y = calloc((size_t)batch, sizeof *c->y);
    return c;
}

void rt_ft_cls_free(RtFtCls *c)
{
    if (!c)
        return;
    free(c->order);
    free(c->x);
    free(c->last);
    free(c->y);
    free(c);
}

static const RtClsSplit *split_of(const RtFtCls *c, RtFtSplit s)
{
    return s == RT_FT_TRAIN ? &c->d->train : s == RT_FT_VAL ? &c->d->val : &c->d->test;
}

static int64_t batches(void *ctx, RtFtSplit s)
{
    RtFtCls *c = ctx;
    int64_t n = split_of(c, s)->n;
    return s == RT_FT_TRAIN ? n / c->B : (n + c->B - 1) / c->B;
}

static bool fill(void *ctx, RtExec *ex, RtFtSplit s, int64_t epoch, int64_t b, int64_t *rows,
                 IrError *err)
{
    RtFtCls *c = ctx;
    const RtClsSplit *sp = split_of(c, s);
    const int64_t *order = NULL;
    if (s == RT_FT_TRAIN) {
        if (c->order_epoch != epoch)
            rt_cls_order(sp, c->shuffle, c->seed, epoch, c->order);
        c->order_epoch = epoch;
        order = c->order;
    }
    *rows = rt_cls_fill(c->d, sp, order, b * c->B, c->B, c->x, c->last, c->y);
    return rt_exec_set_input(ex, "idx", c->x, c->B * c->T * 4, err) &&
           rt_exec_set_input(ex, "last", c->last, c->B * 4, err) &&
           rt_exec_set_input(ex, "targets", c->y, c->B * 4, err);
}

RtFtSource rt_ft_cls_source(RtFtCls *c)
{
    return (RtFtSource){c, batches, fill};
}

/* logits [B, C]: a row is right when its first largest logit is its label. */
static void accuracy(void *ctx, RtExec *ex, double *hits, double *total)
{
    RtFtCls *c = ctx;
    int64_t n;
    const float *l = rt_exec_output(ex, "logits", &n);
    int64_t C = n / c->B;
    for (int64_t b = 0; b < c->B; b++) {
        if (c->y[b] < 0)
            continue;
        int64_t best = 0;
        for (int64_t k = 1; k < C; k++)
            best = l[b * C + k] > l[b * C + best] ? k : best;
        *hits += best == c->y[b];
        *total += 1;
    }
}

RtFtMetric rt_ft_cls_accuracy(RtFtCls *c)
{
    return (RtFtMetric){"acc", c, accuracy};
}
