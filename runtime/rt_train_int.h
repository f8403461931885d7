/* rt_train_int.h — what rt_train.c (the loop) and rt_train_io.c (checkpoints,
 * CSV, plot, model files) share.  Not a public header. */
#ifndef GRADC_RT_TRAIN_INT_H
#define GRADC_RT_TRAIN_INT_H

#include "runtime/rt_train.h"

/* The checkpoint format this code writes and reads (docs/training.md). */
#define RT_TRAIN_FORMAT "gradc.train.v1"

struct RtTrain {
    RtTrainOptions o;          /* strings borrowed from the caller, except: */
    char *model_json;          /* the flattened model file */
    char *model_name;          /* its path, or the checkpoint's record of it */
    char *data_path;           /* o.data_path, or the checkpoint's record */
    char *sets;                /* the --set values in force, a JSON object */
    FILE *out;
    IrGraph *model;            /* the forward graph (a copy of o.model.graph) */
    RtTokenizer *tok;
    RtTextData data;
    uint64_t data_hash;        /* rt_ckpt_hash of the data file */
    IrGraph *train_g, *eval_g;
    RtExec *train_ex, *eval_ex;
    RtGen *gen;
    const char *tok_name;      /* the token input ("idx") */
    int64_t binding[IR_MAX_SYMS];
    int64_t B, T, stride, V;
    int32_t *x, *y;            /* one batch: (B, T) each */
    /* position: the next update is number `step` (0-based), on batch
     * `batch` of epoch `epoch` (0-based) */
    int64_t step, epoch, batch, tokens;
    int64_t total;             /* the step to stop at */
    double seconds;            /* wall time of earlier runs (resume) */
    double gnorm;              /* the last update's gradient norm (with --clip), else NaN */
    double t_start, t_train;   /* this run: start, time inside updates */
    int64_t tokens_at_start, step_at_start;
    RtEvalPoint *hist;
    int nhist, caphist;
    char ckpt_path[4096], csv_path[4096], plot_path[4096];
    char out_dir[4096];        /* the folder of the run's files (rt_train_out.c) */
    uint64_t run_id;           /* what makes two checkpoints the same run */
    int64_t ckpt_step;         /* the step of the checkpoint at ckpt_path; -1: none of ours */
    bool csv_stale, plot_stale;    /* their last write failed: rewrite at the end */
    char rescued[4200];        /* where the last checkpoint went instead of ckpt_path */
};

/* rt_train_io.c */
bool rt_train_restore(RtTrain *t, const RtCkpt *c, IrError *err);
/* The data file is the one the checkpoint was trained on (data.hash). */
bool rt_train_check_data(RtTrain *t, const RtCkpt *c, IrError *err);
bool rt_train_write_csv(RtTrain *t, IrError *err);
bool rt_train_write_plot(RtTrain *t, IrError *err);
void rt_train_add_point(RtTrain *t, const RtEvalPoint *p);
/* "{\"k\":\"v\",...}" of the --set values; malloc'd */
char *rt_train_sets_json(const RtTrain *t);
double rt_train_now(void);

/* rt_train_out.c: where a run's files go, and what happens when they cannot
 * be written. */
/* The run id: a hash of the model, the data and the settings that decide
 * which batches an update sees; a resumed run keeps its checkpoint's. */
void rt_train_set_run_id(RtTrain *t, const RtCkpt *c);
/* Resolves the checkpoint, CSV and plot paths (flags, else the resumed
 * checkpoint's record, else runs/MODEL_NAME), creates the folder, checks
 * that each file can be written, removes stale temporary files and refuses
 * to overwrite another run's checkpoint without o.force. */
bool rt_train_prepare_outputs(RtTrain *t, const RtCkpt *c, IrError *err);
/* The "out" metadata of a checkpoint written to `path` (malloc'd). */
char *rt_train_out_json(const RtTrain *t, const char *path);
/* Saves the checkpoint at ckpt_path; on failure retries, then saves to a
 * rescue path that it prints.  Mid-run (final false) a failure is a warning
 * and the run goes on; at the end it also waits for space (GRADC_SAVE_WAIT_S,
 * default 600 s) before it gives up with err. */
bool rt_train_checkpoint(RtTrain *t, bool final, IrError *err);
/* Rewrites the CSV log and the plot; a failure is a warning, retried at the
 * next evaluation; at the end (final) one still failing is err. */
bool rt_train_write_logs(RtTrain *t, bool final, IrError *err);

#endif
