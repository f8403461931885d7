/* rt_train.h — pretraining and sampling: the loop behind `gradc train` and
 * `gradc generate` (docs/training.md).
 *
 * Sections follow the files:
 *   rt_plot.c     RtPlot: line plots as SVG (the loss figure)
 *   rt_sample.c   RtSampler: greedy / temperature / top-k choice of a token;
 *                 RtGen: a compiled forward (or KV-cached decode step) that
 *                 extends a prompt token by token
 *   rt_init_from.c  rt_params_init_from: params from another run's checkpoint
 *                 (fine-tuning, --init-from)
 *   rt_train.c    RtTrain: the training loop, its checkpoints and logs
 *
 * Three programs are compiled from one model graph, all at one binding:
 *   train   autodiff + AdamW (passes/autodiff.c, optimizer.c): inputs idx,
 *           targets, lr, step and the moments adam.m.P / adam.v.P; outputs
 *           loss and, written back, every P and moment; B x T;
 *   eval    the forward with dropout off and cross_entropy: B x T, loss;
 *   gen     the forward with dropout off at B = 1 (or the decode step).
 * Weights live in the train program and are copied into the others before
 * they run (an eval every few steps costs one copy of the weights).
 *
 * The runtime reads no model files: the caller loads the model (gradc
 * train: cli/train_model.c, through the frontend) and hands it over as an
 * RtTrainModel.
 *
 *   RtTrainOptions o = rt_train_defaults();
 *   o.model = (RtTrainModel){.graph = g, .json = text, .name = "gpt-mini.json"};
 *   o.data_path = "input.txt";
 *   o.steps = 100;
 *   RtTrain *t = rt_train_new(&o, &err);      // tokenizes, compiles
 *   if (!t || !rt_train_run(t, &err)) ...;    // progress on stdout
 *   rt_train_free(t);
 */
#ifndef GRADC_RT_TRAIN_H
#define GRADC_RT_TRAIN_H

#include "ir/ir.h"
#include "ir/rng.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_data.h"
#include "runtime/rt_exec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- rt_plot.c */

typedef struct RtSeries {
    const char *name;       /* legend text */
    const char *color;      /* SVG color, e.g. "#1f77b4" */
    const double *x, *y;    /* n points; non-finite ones are skipped */
    int n;
    bool dashed;
} RtSeries;

typedef struct RtPlot {
    const char *title, *xlabel, *ylabel;
    const RtSeries *series;
    int nseries;
} RtPlot;

/* Writes the plot as SVG to path, atomically. */
bool rt_plot_svg(const RtPlot *p, const char *path, IrError *err);

/* ---------------------------------------------------------------- rt_sample.c */

typedef struct RtSampler {
    double temperature;     /* <= 0: greedy (argmax, first on ties) */
    int top_k;              /* > 0: keep the k largest logits (ties at the k-th kept) */
    IrRng rng;              /* seeded by rt_sampler_init */
} RtSampler;

void rt_sampler_init(RtSampler *s, double temperature, int top_k, uint64_t seed);
/* The next token from logits[V], as the book's generate(): top-k, then
 * logits / temperature, softmax and a draw (double precision). */
int32_t rt_sampler_pick(RtSampler *s, const float *logits, int64_t V);

/* The i32 input that a gather reads token ids with (the model's "idx"). */
const IrNode *rt_graph_token_input(const IrGraph *g);

typedef struct RtGenOptions {
    int max_new;            /* tokens to add */
    int32_t stop_id;        /* stop after this token (<|endoftext|>); -1: never */
    /* called with every new token as it is chosen (may be NULL) */
    void (*on_token)(void *ctx, int32_t id);
    void *ctx;
    /* after on_token: true stops generation there (may be NULL) */
    bool (*stop)(void *ctx);
} RtGenOptions;

typedef struct RtGen RtGen;

/* Compiles the model graph (left unchanged) for sampling with a window of
 * up to `window` tokens (the context length).  With kv, it builds the
 * KV-cached decode step (one token in, logits out, the keys and values of
 * every attention layer kept as state) and falls back to the full forward
 * only when the sequence outgrows the window; without kv, every token runs
 * the full forward over the last `window` tokens.  Returns NULL + err. */
RtGen *rt_gen_new(const IrGraph *model, int64_t window, bool kv, const RtExecOptions *eo,
                  IrError *err);
void rt_gen_free(RtGen *gen);
/* The window it was built for. */
int64_t rt_gen_window(const RtGen *gen);
/* True when the KV-cached decode step is in use (the model had the
 * attention pattern it needs; see rt_sample.c). */
bool rt_gen_has_kv(const RtGen *gen);
/* Copies every param from src (an executor of a graph with the same params). */
bool rt_gen_params_from_exec(RtGen *gen, RtExec *src, IrError *err);
/* Copies every param from a checkpoint (shape and dtype checked). */
bool rt_gen_params_from_ckpt(RtGen *gen, const RtCkpt *c, IrError *err);
/* Extends prompt[0..n) (n >= 1) by up to o->max_new tokens; *out gets the
 * new tokens only (malloc'd), *nout their count. */
bool rt_gen_run(RtGen *gen, RtSampler *s, const int32_t *prompt, size_t n,
                const RtGenOptions *o, int32_t **out, size_t *nout, IrError *err);

/* Copies every param of dst's graph from a checkpoint: names, shapes and
 * dtypes must match (the error names the tensor and the checkpoint).  A
 * param with LoRA adapters in the checkpoint that the graph lacks (a model
 * loaded without the lora pass) gets its weight with the adapters folded
 * in (rt_lora_merged), so such a checkpoint runs as its merged model. */
bool rt_exec_params_from_ckpt(RtExec *dst, const IrGraph *g, const RtCkpt *c, IrError *err);
/* Copies every param of dst's graph from src by name. */
bool rt_exec_params_copy(RtExec *dst, const IrGraph *g, RtExec *src, IrError *err);

/* ---------------------------------------------------------------- shared with fine-tuning */

/* rt_train.c: the forward of model with dropout off and the mean
 * cross-entropy of output "logits" against a new input "targets" (its shape
 * minus the last axis, i32, -100 ignored) as output "loss"; with
 * keep_logits "logits" stays an output too.  NULL + err. */
IrGraph *rt_graph_eval(const IrGraph *model, bool keep_logits, IrError *err);
/* rt_train.c: keys every dropout's random stream by seed too (the frontend
 * numbers them 0, 1, ...), so that --seed changes the masks as it changes
 * the init; the backward dropouts copy these attributes. */
void rt_graph_seed_dropouts(IrGraph *g, uint64_t seed);
/* rt_train.c: sets a scalar input of ex (f32 or i32, one element: lr, step). */
bool rt_exec_set_scalar(RtExec *ex, const IrGraph *g, const char *name, double v,
                        IrError *err);
/* rt_train_io.c: adds every param and every state input (an input that an
 * output of the same name writes back: the AdamW moments adam.m.P and
 * adam.v.P of the trainable params) of ex, compiled from g, to w; the data
 * is borrowed until rt_ckpt_write. */
void rt_ckpt_add_exec(RtCkptWriter *w, const IrGraph *g, RtExec *ex);
/* rt_train_out.c: creates folder path and its parents (mkdir -p); false +
 * err (hint: another --out DIR) when one cannot be made. */
bool rt_make_dirs(const char *path, IrError *err);

/* ---------------------------------------------------------------- rt_init_from.c */

typedef struct RtInitFromStats {
    int copied;              /* params copied from the checkpoint */
    int64_t copied_values;   /* their element count */
    int kept;                /* new params (matching a new-param glob) left at their init */
    int missing;             /* params neither found nor new (an error) */
} RtInitFromStats;

/* Initializes the params of ex (compiled from g, after rt_exec_init_params)
 * from checkpoint c by name: a param c holds is copied, its shape checked
 * ("checkpoint X: tensor P has shape [..], the model wants [..]: was it
 * pretrained at another size?"); one c lacks, or holds at another shape,
 * keeps its init when its name matches one of new_globs[0..nnew) (fnmatch:
 * the classifier head "out_head.*", LoRA adapters "*.lora_[AB]"), else it
 * is an error naming it.  Other tensors of c are ignored.  stats may be
 * NULL.  For example
 *
 *   const char *fresh[] = {"out_head.*"};
 *   rt_exec_init_params(ex, seed);
 *   if (!rt_params_init_from(ex, g, ckpt, fresh, 1, &st, &err)) ...
 */
bool rt_params_init_from(RtExec *ex, const IrGraph *g, const RtCkpt *c,
                         const char *const *new_globs, int nnew, RtInitFromStats *stats,
                         IrError *err);

/* ---------------------------------------------------------------- rt_train.c */

typedef enum RtSchedule { RT_LR_CONSTANT, RT_LR_COSINE } RtSchedule;

#define RT_TRAIN_MAX_INIT 16

/* The model of a run, loaded by the caller.  Strings and graph are
 * borrowed; rt_train_new copies them. */
typedef struct RtTrainModel {
    const IrGraph *graph;      /* the forward graph */
    const char *json;          /* the model file with its bases merged (checkpoint metadata
                                * model.json, so that a checkpoint loads on its own) */
    const char *name;          /* its path, or the checkpoint's record of it */
    const char *sets;          /* the --set values in force, a JSON object of strings
                                * (metadata model.sets); NULL: none */
    int64_t context_length;    /* config context_length, when has_context_length */
    bool has_context_length;
} RtTrainModel;

typedef struct RtTrainOptions {
    RtTrainModel model;
    const char *data_path;     /* NULL with resume: the checkpoint's data file */
    RtTokKind tokenizer;
    const char *bpe_dir;       /* NULL: the data cache */
    int64_t batch, ctx, stride;    /* ctx 0: context_length; stride 0: ctx */
    double train_frac;         /* 0.9: the book's split */
    int64_t epochs, steps;     /* steps > 0 wins; else epochs */
    double lr, min_lr;         /* peak and floor of the schedule */
    int64_t warmup;            /* linear warmup steps from lr / warmup */
    RtSchedule schedule;
    double beta1, beta2, eps, weight_decay, clip;
    bool decay_all;            /* true: decay every param (PyTorch, the book) */
    bool no_shuffle;           /* windows in text order every epoch (comparisons) */
    uint64_t seed;             /* init, shuffle, dropout */
    int64_t eval_every, eval_batches;  /* eval_every 0: at the end only */
    int64_t sample_every;      /* 0: at the end of each epoch when prompt is set */
    const char *prompt;
    int sample_tokens;
    int64_t save_every;        /* 0: at the end only */
    int64_t log_every;         /* progress line every N steps (and at evals) */
    const char *out_dir;       /* checkpoint, CSV and plot go here by default; NULL: the
                                * resumed run's folder, else runs/MODEL_NAME */
    const char *ckpt_path, *csv_path, *plot_path;  /* NULL: OUT/ckpt.safetensors, ... */
    const char *resume;        /* a checkpoint to continue from */
    const RtCkpt *resume_ckpt; /* it, opened by the caller (NULL: rt_train_new reads it) */
    /* a new run (step 0, fresh AdamW state) from the weights of a checkpoint
     * (import-gpt2's, another run's): every param of the model is copied
     * from it by name and shape (rt_params_init_from); not with resume */
    const char *init_from;
    const RtCkpt *init_from_ckpt;  /* it, opened by the caller (NULL: rt_train_new reads it) */
    /* --init-std GLOB=STD: normal-init params whose name matches GLOB
     * start from N(0, STD^2) instead of the model file's std (the book's
     * PyTorch init has N(0, 1) embeddings: "*_emb.weight=1") */
    const char *init_std[RT_TRAIN_MAX_INIT];
    int ninit_std;
    const char *passes;        /* pipeline after the train-step passes; NULL: default */
    int threads;               /* 0: the runtime decides */
    bool quiet;                /* no progress lines */
    bool no_files;             /* create no output directory (the run saves nothing) */
    bool force;                /* overwrite a checkpoint of another run at ckpt_path */
    FILE *out;                 /* progress; NULL: stdout */
} RtTrainOptions;

/* The book's chapter 5 settings where it has one: batch 2, train_frac
 * 0.9, AdamW lr 4e-4 (constant), weight decay 0.1, betas (0.9, 0.999),
 * eps 1e-8, no clipping, decay of every param, eval every 5 steps over 5
 * batches, 1 epoch, seed 123, 50 sample tokens. */
RtTrainOptions rt_train_defaults(void);

/* One row of the log: the book's train_model_simple records these at
 * every evaluation.  step is the book's global_step (0 after the first
 * update); val is NaN when there is no validation split. */
typedef struct RtEvalPoint {
    int64_t step, epoch, tokens;
    double train, val, lr, seconds;
} RtEvalPoint;

typedef struct RtTrain RtTrain;

/* The settings recorded in a training checkpoint (train.options, the
 * tokenizer, train.prompt and train.passes) copied into o: what `gradc train
 * --resume` starts from, before its flags.  o->prompt and o->passes then
 * point into c, which must outlive o.  Fills err when there are none or one
 * is not a value of its kind. */
bool rt_train_options_from_ckpt(const RtCkpt *c, RtTrainOptions *o, IrError *err);

/* The tokenizer a checkpoint was trained with, checked before it is used
 * (gradc generate, gradc train --resume): metadata 'tokenizer' must be gpt2
 * or char and agree with train.options; a char checkpoint must hold its
 * vocabulary (tokenizer.char_vocab, u8) and a gpt2 one must not; and the
 * tokenizer must fit the model's vocabulary (the last dim of its output
 * 'logits').  A gpt2 tokenizer is loaded from bpe_dir (NULL: the data cache).
 * NULL + err, naming the checkpoint. */
RtTokenizer *rt_ckpt_tokenizer(const RtCkpt *c, const IrGraph *model, const char *bpe_dir,
                               IrError *err);

/* A checkpoint --resume can take: one gradc train wrote (metadata format
 * gradc.train.v1).  false + err naming it. */
bool rt_train_ckpt_check(const RtCkpt *c, IrError *err);

/* Loads the data, compiles the programs, initialises the weights (or
 * restores a checkpoint).  Prints what it did on o->out. */
RtTrain *rt_train_new(const RtTrainOptions *o, IrError *err);
void rt_train_free(RtTrain *t);
/* Trains to the end (steps or epochs), evaluating, sampling, logging and
 * saving as asked.  Returns false + err on failure. */
bool rt_train_run(RtTrain *t, IrError *err);
/* One update on the next batch; *loss is its mean loss. */
bool rt_train_step(RtTrain *t, double *loss, IrError *err);
/* Mean loss over up to n batches of the train (val = false) or validation
 * split, with dropout off. */
bool rt_train_eval(RtTrain *t, bool val, int64_t n, double *loss, IrError *err);
bool rt_train_save(RtTrain *t, const char *path, IrError *err);
/* The learning rate of update number `step` (0-based) under o. */
double rt_train_lr(const RtTrainOptions *o, int64_t step, int64_t total);
int64_t rt_train_total_steps(const RtTrain *t);
const RtEvalPoint *rt_train_history(const RtTrain *t, int *n);

/* rt_train_check.c: builds the run of o twice, at 1 thread and at
 * o->threads (at least 2), takes `steps` updates on each and compares the
 * loss and every param, moment and input bit for bit after each; prints a
 * line per update on o->out.  False + err (naming the first tensor and
 * element that differ) when they do.  Writes no files. */
bool rt_train_determinism_check(const RtTrainOptions *o, int64_t steps, IrError *err);

#endif
