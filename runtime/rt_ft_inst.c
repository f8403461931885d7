/* rt_ft_inst.c — instruction fine-tuning as a batch source for the
 * fine-tuning loop (rt_finetune.h): the book's chapter 7 loaders over an
 * RtInstData (runtime/rt_inst_data.h).
 *
 * The train loader shuffles every epoch and drops the last partial batch
 * (drop_last=True); the val and test loaders keep their order and every
 * entry, the last batch padded with rows of pad inputs and -100 targets,
 * which cross_entropy skips, so that the programs keep one batch size.  The
 * inputs are "idx" [B, T] and "targets" [B, T]; there is no metric.
 */
#include "runtime/rt_finetune.h"
#include "runtime/rt_inst_data.h"

#include <stdlib.h>

struct RtFtInst {
    const RtInstData *d;
    int64_t B, T;
    bool shuffle;
    uint64_t seed;
    int64_t *order;            /* the train order of epoch order_epoch */
    int64_t order_epoch;
    int32_t *x, *y;            /* one batch: (B, T) each */
};

RtFtInst *rt_ft_inst_new(const RtInstData *d, int64_t batch, bool shuffle, uint64_t seed)
{
    RtFtInst *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = (RtFtInst){d, batch, d->T, shuffle, seed, NULL, -1, NULL, NULL};
    c->order = calloc((size_t)d->train.n + 1, sizeof *c->order);
    c->x = calloc((size_t)(batch * d->T), sizeof *c->x);
    c->y = calloc((size_t)(batch * d->T), sizeof *c->y);
    if (!c->order || !c->x || !c->y) {
        rt_ft_inst_free(c);
        return NULL;
    }
    return c;
}

void rt_ft_inst_free(RtFtInst *c)
{
    if (!c)
        return;
    free(c->order);
    free(c->x);
    free(c->y);
    free(c);
}

static const RtInstSplit *split_of(const RtFtInst *c, RtFtSplit s)
{
    return s == RT_FT_TRAIN ? &c->d->train : s == RT_FT_VAL ? &c->d->val : &c->d->test;
}

static int64_t batches(void *ctx, RtFtSplit s)
{
    RtFtInst *c = ctx;
    int64_t n = split_of(c, s)->n;
    return s == RT_FT_TRAIN ? n / c->B : (n + c->B - 1) / c->B;
}

static bool fill(void *ctx, RtExec *ex, RtFtSplit s, int64_t epoch, int64_t b, int64_t *rows,
                 IrError *err)
{
    RtFtInst *c = ctx;
    const RtInstSplit *sp = split_of(c, s);
    const int64_t *order = NULL;
    if (s == RT_FT_TRAIN) {
        if (c->order_epoch != epoch)
            rt_inst_order(sp, c->shuffle, c->seed, epoch, c->order);
        c->order_epoch = epoch;
        order = c->order;
    }
    *rows = rt_inst_fill(c->d, sp, order, b * c->B, c->B, c->x, c->y, NULL);
    return rt_exec_set_input(ex, "idx", c->x, c->B * c->T * 4, err) &&
           rt_exec_set_input(ex, "targets", c->y, c->B * c->T * 4, err);
}

RtFtSource rt_ft_inst_source(RtFtInst *c)
{
    return (RtFtSource){c, batches, fill};
}
