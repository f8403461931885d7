/* rt_finetune.h — the fine-tuning loop: a pretrained model, a trainable
 * subset of its params, a task's batches (runtime/rt_finetune.c).
 *
 * The loop knows nothing of the task.  The caller hands it
 *   - the model graph (the forward, with any LoRA adapters already added by
 *     passes/lora.c) and an output "logits" whose shape minus its last axis
 *     is the shape of the labels: [B, C] with targets [B] (classification),
 *     [B, T, V] with targets [B, T] (language modelling, -100 ignored);
 *   - the trainable set: globs of the params that train (NULL: all), then
 *     globs that freeze some of them.  The others get trainable = 0 before
 *     autodiff, so they get no gradient, no AdamW moments and no update, and
 *     the train step's arena and optimizer state shrink accordingly;
 *   - a checkpoint to start from (rt_params_init_from, with the globs of the
 *     params that are new: the head, the adapters);
 *   - a batch source: for split s (train, val, test) and batch b of epoch e,
 *     a callback sets the data inputs of the program it is given (the
 *     model's inputs and "targets") and says how many rows are real;
 *   - optionally a metric (accuracy): a callback that reads the eval
 *     program's outputs after each batch and counts hits out of a total.
 *
 * It compiles two programs at fixed B and T (symbols of the model; any
 * other symbol is an error): the train step (autodiff + AdamW, as gradc
 * train: passes/autodiff.c, optimizer.c) and the eval forward (dropout off,
 * outputs "loss", the mean cross-entropy over the real rows, and "logits").
 * Then it runs epochs: each update is one batch of the train split (lr
 * constant, AdamW step count from 1); after each epoch, and at the end of a
 * run that stops mid-epoch (--steps), it evaluates the loss (the mean of
 * the batch losses, as the book's calc_loss_loader) and the metric (hits /
 * total, as calc_accuracy_loader) of each split over its first
 * eval_batches batches (0: all), prints a line, and rewrites the log.  With
 * eval_at_start it evaluates so before the first update too (a line
 * "start:", step -1 in the log), and with eval_every every that many updates
 * within an epoch over eval_iter batches (chapter 7's eval_freq and
 * eval_iter; a line "epoch E step S:"; these skip the test split, as the
 * book's train_model_simple evaluates train and val only).
 *
 * Files in out_dir (created):
 *   ckpt.safetensors  every param; the AdamW moments adam.m.P / adam.v.P of
 *                     the trainable params only; metadata format
 *                     "gradc.finetune.v1", model.json, model.path,
 *                     model.sets, ft.options, ft.history, ft.trainable and
 *                     the caller's entries (task, tokenizer, labels, ...);
 *   log.csv           step,epoch,loss,lr,train_loss,train_acc,val_loss,
 *                     val_acc,test_loss,test_acc: one row per update (step
 *                     0-based, epoch 1-based, loss and lr), one row per
 *                     evaluation (step of the last update, the six others);
 *   curves.svg        the loss of every update and the evaluated losses;
 *   accuracy.svg      the evaluated metric of each split (with a metric).
 * An existing checkpoint in out_dir is not overwritten without force; a
 * checkpoint that cannot be written is retried, then written to a rescue
 * path under $TMPDIR/gradc-rescue (printed) and the run fails.
 *
 *   RtFtOptions o = rt_ft_defaults();                 // the book's chapter 6
 *   o.model = (RtFtModel){graph, json, "models/gpt2-classifier.json", sets};
 *   o.trainable = (const char *[]){"trf_blocks.11.*", "final_norm.*", "out_head.*"};
 *   o.ntrainable = 3;
 *   o.init = ckpt; o.new_params = (const char *[]){"out_head.*"}; o.nnew = 1;
 *   o.batch = 8; o.T = 120; o.source = my_source; o.metric = my_accuracy;
 *   o.out_dir = "runs/spam";
 *   RtFt *ft = rt_ft_new(&o, &err);                   // compiles, prints setup
 *   if (!ft || !rt_ft_run(ft, &err)) ...;             // epochs, evals, files
 *   rt_ft_free(ft);
 */
#ifndef GRADC_RT_FINETUNE_H
#define GRADC_RT_FINETUNE_H

#include "ir/ir.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_exec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The checkpoint format of a fine-tuning run. */
#define RT_FT_FORMAT "gradc.finetune.v1"

typedef enum RtFtSplit { RT_FT_TRAIN, RT_FT_VAL, RT_FT_TEST, RT_FT_NSPLIT } RtFtSplit;

/* "train", "val", "test" */
const char *rt_ft_split_name(RtFtSplit s);

/* Where the batches come from.  Callbacks get ctx. */
typedef struct RtFtSource {
    void *ctx;
    /* Batches of split s in one pass: per epoch for train (drop the last
     * partial one, as the book), every example for val and test; 0: the
     * split is empty (its figures are NaN, its CSV cells empty). */
    int64_t (*batches)(void *ctx, RtFtSplit s);
    /* Sets every data input of ex (the model's inputs and "targets", B rows
     * each) to batch b of split s; epoch (0-based) picks the train order.
     * *rows gets the real rows (padding rows have targets -100).  ex is the
     * train program for s = RT_FT_TRAIN during updates, else the eval one. */
    bool (*fill)(void *ctx, RtExec *ex, RtFtSplit s, int64_t epoch, int64_t b, int64_t *rows,
                 IrError *err);
} RtFtSource;

/* A figure of the eval program's outputs besides the loss (may be all NULL). */
typedef struct RtFtMetric {
    const char *name;   /* "acc": the CSV columns are SPLIT_acc, the plot's label */
    void *ctx;
    /* After ex (the eval program) ran on the batch that fill just set:
     * adds to *hits and *total (accuracy: correct rows, real rows). */
    void (*add)(void *ctx, RtExec *ex, double *hits, double *total);
} RtFtMetric;

/* The model, loaded by the caller; strings and graph borrowed. */
typedef struct RtFtModel {
    const IrGraph *graph;   /* the forward; rt_ft_new works on a copy */
    const char *json;       /* the model file, bases merged (metadata model.json) */
    const char *name;       /* its path (model.path) */
    const char *sets;       /* the --set values in force, a JSON object (model.sets) */
} RtFtModel;

#define RT_FT_MAX_GLOBS 64
#define RT_FT_MAX_META 16

typedef struct RtFtOptions {
    RtFtModel model;
    /* trainable: NULL / 0 = every param that the graph does not freeze */
    const char *const *trainable;
    int ntrainable;
    const char *const *freeze;
    int nfreeze;
    /* start here: params by name (rt_params_init_from); NULL: the seeded init */
    const RtCkpt *init;
    const char *const *new_params;     /* globs of params init may lack */
    int nnew;
    RtFtSource source;
    RtFtMetric metric;
    int64_t batch, T;
    int64_t epochs, steps;             /* steps > 0 stops after that many updates */
    double lr, weight_decay, beta1, beta2, eps, clip;
    uint64_t seed;                     /* init of the new params, dropout */
    int64_t eval_batches;              /* per split and epoch-end evaluation; 0: all */
    /* the book's chapter 7: evaluate before the first update (eval_batches
     * batches), and every eval_every updates (0: never) over eval_iter
     * batches per split (0: all) */
    bool eval_at_start;
    int64_t eval_every, eval_iter;
    const char *passes;                /* pipeline after the train passes; NULL: default */
    int threads;
    /* extra checkpoint metadata, key/value pairs: task, tokenizer, labels... */
    const char *meta_key[RT_FT_MAX_META], *meta_value[RT_FT_MAX_META];
    int nmeta;
    const char *out_dir;               /* NULL: write nothing (tests) */
    bool force;                        /* overwrite the checkpoint in out_dir */
    bool quiet;                        /* no setup, progress or epoch lines */
    FILE *out;                         /* NULL: stdout */
} RtFtOptions;

/* The book's chapter 6: AdamW lr 5e-5, weight decay 0.1, betas (0.9, 0.999),
 * eps 1e-8, no clipping, batch 8, 5 epochs, seed 123, every batch evaluated. */
RtFtOptions rt_ft_defaults(void);

/* Sets trainable = 0 on every param of g that matches no glob of
 * trainable[0..nt) (nt 0: none is frozen so) or one of freeze[0..nf).  A
 * glob that matches no param is an error naming it; so is a set with no
 * trainable param left.  *count (may be NULL) gets the trainable elements. */
bool rt_ft_apply_trainable(IrGraph *g, const char *const *trainable, int nt,
                           const char *const *freeze, int nf, int64_t *count, IrError *err);

typedef struct RtFt RtFt;

/* Copies the model, applies the trainable set, compiles both programs,
 * initializes the params (seed, then o->init) and checks out_dir.  Prints
 * the setup on o->out: trainable count and the train step's "arena X MiB,
 * params Y MiB, optimizer state Z MiB". */
RtFt *rt_ft_new(const RtFtOptions *o, IrError *err);
void rt_ft_free(RtFt *ft);
/* Trains to the end, evaluating after each epoch, then saves. */
bool rt_ft_run(RtFt *ft, IrError *err);

/* The figures of one evaluation (NaN where a split is empty or there is
 * no metric). */
typedef struct RtFtEval {
    int64_t step, epoch;   /* step: the last update's (-1: before the first) */
    double loss[RT_FT_NSPLIT], metric[RT_FT_NSPLIT];
} RtFtEval;

/* Evaluates the current weights over up to n batches per split (0: all). */
bool rt_ft_evaluate(RtFt *ft, int64_t n, RtFtEval *e, IrError *err);
/* The evaluations of the run so far. */
const RtFtEval *rt_ft_history(const RtFt *ft, int *n);
/* The train program (after rt_ft_new): its params, and its stats. */
RtExec *rt_ft_train_exec(RtFt *ft);
/* Trainable elements and tensors of the train step. */
int64_t rt_ft_trainable(const RtFt *ft, int *tensors);
/* Writes the checkpoint to path (atomically). */
bool rt_ft_save(RtFt *ft, const char *path, IrError *err);
/* The checkpoint path of the run (out_dir/ckpt.safetensors); "" without. */
const char *rt_ft_ckpt_path(const RtFt *ft);

/* Checks that c is a fine-tuning checkpoint (format RT_FT_FORMAT). */
bool rt_ft_ckpt_check(const RtCkpt *c, IrError *err);

/* ---------------------------------------------------------------- rt_ft_cls.c
 * Classification (the book's chapter 6) as a source and a metric: batches
 * of an RtClsData (runtime/rt_cls_data.h) into the inputs "idx" [B, T],
 * "last" [B] and "targets" [B]; train batches in the order of
 * rt_cls_order(train, shuffle, seed, epoch), the last partial one dropped;
 * val and test in split order, all of them (padding rows: targets -100);
 * accuracy: the argmax of "logits" [B, C] against targets, real rows only.
 *
 *   RtFtCls *c = rt_ft_cls_new(&data, B, shuffle, seed);
 *   o.source = rt_ft_cls_source(c);
 *   o.metric = rt_ft_cls_accuracy(c);
 *   ...
 *   rt_ft_cls_free(c);        // after rt_ft_free
 */
struct RtClsData;
typedef struct RtFtCls RtFtCls;

RtFtCls *rt_ft_cls_new(const struct RtClsData *d, int64_t batch, bool shuffle, uint64_t seed);
void rt_ft_cls_free(RtFtCls *c);
RtFtSource rt_ft_cls_source(RtFtCls *c);
RtFtMetric rt_ft_cls_accuracy(RtFtCls *c);

/* ---------------------------------------------------------------- rt_ft_inst.c
 * Instruction fine-tuning (the book's chapter 7) as a source: batches of an
 * RtInstData (runtime/rt_inst_data.h) into the inputs "idx" [B, T] and
 * "targets" [B, T] (custom_collate_fn, padded to the data's T); train
 * batches in the order of rt_inst_order(train, shuffle, seed, epoch), the
 * last partial one dropped; val and test in split order, all of them
 * (padding rows: targets -100).  No metric.
 *
 *   RtFtInst *c = rt_ft_inst_new(&data, B, shuffle, seed);
 *   o.source = rt_ft_inst_source(c); o.T = data.T;
 *   ...
 *   rt_ft_inst_free(c);       // after rt_ft_free
 */
struct RtInstData;
typedef struct RtFtInst RtFtInst;

/* NULL when out of memory. */
RtFtInst *rt_ft_inst_new(const struct RtInstData *d, int64_t batch, bool shuffle, uint64_t seed);
void rt_ft_inst_free(RtFtInst *c);
RtFtSource rt_ft_inst_source(RtFtInst *c);

/* ---------------------------------------------------------------- rt_classify.c
 * A fine-tuned classifier applied to one text at a time (`gradc classify`):
 * the model's forward with dropout off at B = 1 and T = the checkpoint's
 * padded length, its params from the checkpoint (names and shapes checked).
 *
 *   RtClassifier *k = rt_classifier_new(graph, ckpt, T, 0, &err);
 *   rt_classifier_run(k, x, last, probs, &err);   // x [T], probs [C]: softmax
 */
typedef struct RtClassifier RtClassifier;

RtClassifier *rt_classifier_new(const IrGraph *model, const RtCkpt *c, int64_t T, int threads,
                                IrError *err);
void rt_classifier_free(RtClassifier *k);
/* The number of classes (the last dim of "logits"). */
int64_t rt_classifier_classes(const RtClassifier *k);
bool rt_classifier_run(RtClassifier *k, const int32_t *x, int32_t last, double *probs,
                       IrError *err);

#endif
