/* cmd_train.c — `gradc train`: pretraining from the command line.
 *
 * Thin, as every command: it maps flags onto RtTrainOptions, loads the model
 * (cli/train_model.c: the runtime reads no model files) and calls
 * rt_train_new / rt_train_run (runtime/rt_train.h, docs/training.md).  With
 * --resume the checkpoint's recorded settings become the defaults before
 * the flags are read, so `gradc train --resume CKPT --steps 200` continues
 * a run as it was; flags that would change which batches the run sees
 * (batch, sequence, stride, split, seed, tokenizer) must agree with the
 * checkpoint and are refused otherwise.  With --init-from a new run starts
 * from a checkpoint's weights only (import-gpt2's, another run's): its
 * model and tokenizer are the defaults, nothing else of it is.
 */
#include "cli.h"
#include "cli/train_model.h"
#include "runtime/rt_train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc train MODEL.json --data FILE [flags]\n"
    "       gradc train --resume CKPT [--data FILE] [flags]\n"
    "       gradc train [MODEL.json] --init-from CKPT --data FILE [flags]\n"
    "\n"
    "Pretrains a GPT on a UTF-8 text file: the text is split 90/10 by characters,\n"
    "each part tokenized, cut into windows of --seq tokens every --stride tokens\n"
    "and batched (shuffled per epoch, last partial batch dropped).  Each update\n"
    "runs one compiled train step: forward, cross-entropy, backward and AdamW.\n"
    "It prints a progress line (step, epoch, tokens seen, losses, lr, tokens/s,\n"
    "ETA), evaluates train and val loss, and writes a CSV log, an SVG loss plot\n"
    "and a checkpoint (safetensors) under --out.  --init-from starts a new run\n"
    "(step 0, fresh optimizer) from the weights of a checkpoint, such as one of\n"
    "`gradc import-gpt2`; without MODEL.json the model is the checkpoint's.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc train models/gpt-mini.json --data moby-dick.txt --steps 300 --prompt 'Call me'\n"
    "  # the book's chapter 5 run (docs/training.md):\n"
    "  gradc train models/gpt2-small.json --set context_length=256 --data the-verdict.txt \\\n"
    "      --batch 2 --lr 4e-4 --weight-decay 0.1 --epochs 10 --eval-every 5 --eval-batches 5\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct TrainArgs {
    RtTrainOptions o;
    const char *model_path;      /* NULL with --resume: the checkpoint's model */
    CliModelArgs model;
    int64_t determinism_steps;   /* --determinism-check N; 0: train */
} TrainArgs;

static int schedule_fn(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    RtSchedule *s = field;
    if (strcmp(v, "constant") && strcmp(v, "cosine"))
        return cli_usage_error(cmd, "%s expects constant or cosine, got '%s'", f->name, v);
    *s = strcmp(v, "cosine") ? RT_LR_CONSTANT : RT_LR_COSINE;
    return 0;
}

#define TRAIN_INT(flag, field, m, meta_, d, what)                                            \
    {flag, CLI_INT, CLI_AT(TrainArgs, o.field), .min = m, .meta = meta_, .def = d, .help = what}
#define TRAIN_NUM(flag, field, pos, meta_, d, what)                                          \
    {flag, CLI_NUM, CLI_AT(TrainArgs, o.field), .positive = pos, .meta = meta_, .def = d,    \
     .help = what}
#define TRAIN_STR(flag, field, meta_, d, what)                                               \
    {flag, CLI_STR, CLI_AT(TrainArgs, o.field), .meta = meta_, .def = d, .help = what}
#define TRAIN_SWITCH(flag, kind, field, what) {flag, kind, CLI_AT(TrainArgs, o.field), .help = what}

static const CliFlag flags[] = {
    {NULL, CLI_HEAD, .help = "model and data:"},
    CLI_FLAG_SET(TrainArgs, model),
    TRAIN_STR("--data", data_path, "FILE", NULL, "the training text"),
    {"--tokenizer", CLI_CALL, CLI_AT(TrainArgs, o.tokenizer), .fn = cli_tokenizer_fn,
     .meta = "gpt2|char", .def = "gpt2", .help = "GPT-2 BPE or characters of the text"},
    TRAIN_STR("--bpe-dir", bpe_dir, "DIR", "the data cache", "encoder.json + vocab.bpe"),
    TRAIN_INT("--batch", batch, 1, "B", "2", "windows per batch"),
    TRAIN_INT("--seq", ctx, 1, "T", "config context_length",
              "tokens per window: at most context_length, and at most a positional table's "
              "rows"),
    TRAIN_INT("--stride", stride, 1, "S", "T", "tokens between window starts"),
    TRAIN_NUM("--train-frac", train_frac, true, "F", "0.9", "training share of the text"),
    {NULL, CLI_HEAD, .help = "length:"},
    TRAIN_INT("--epochs", epochs, 1, "N", "1", "passes over the training windows"),
    TRAIN_INT("--steps", steps, 1, "N", NULL,
              "stop after update N instead (counts resumed updates)"),
    {NULL, CLI_HEAD, .help = "optimizer (AdamW):"},
    TRAIN_NUM("--lr", lr, true, "LR", "4e-4", "peak learning rate"),
    {"--schedule", CLI_CALL, CLI_AT(TrainArgs, o.schedule), .fn = schedule_fn,
     .meta = "constant|cosine", .def = "constant",
     .help = "after warmup: constant, or cosine decay to --min-lr at the last step"},
    TRAIN_NUM("--min-lr", min_lr, false, "LR", "lr/10", "floor of the cosine decay"),
    TRAIN_INT("--warmup", warmup, 0, "N", "0", "linear warmup over the first N updates"),
    TRAIN_NUM("--weight-decay", weight_decay, false, "WD", "0.1, the book's", "weight decay"),
    TRAIN_SWITCH("--no-decay-bias-norm", CLI_FALSE, decay_all,
                 "decay only matrices (nanoGPT); by default every param"),
    TRAIN_NUM("--beta1", beta1, false, "B1", "0.9", "AdamW beta1"),
    TRAIN_NUM("--beta2", beta2, false, "B2", "0.999", "AdamW beta2"),
    TRAIN_NUM("--eps", eps, false, "E", "1e-8", "AdamW epsilon"),
    TRAIN_NUM("--clip", clip, false, "NORM", "0: off", "clip the global gradient norm"),
    TRAIN_INT("--seed", seed, 0, "S", "123", "init, shuffle and dropout"),
    TRAIN_SWITCH("--no-shuffle", CLI_TRUE, no_shuffle,
                 "batches in text order every epoch (to compare runs)"),
    {"--init-std", CLI_LIST, CLI_AT(TrainArgs, o.init_std),
     .count = offsetof(TrainArgs, o.ninit_std), .meta = "GLOB=STD",
     .help = "start the normal-init params matching GLOB from N(0, STD^2) instead of the "
             "model file's std (repeatable): --init-std '*_emb.weight=0.02'"},
    {NULL, CLI_HEAD, .help = "evaluation, samples, output:"},
    TRAIN_INT("--eval-every", eval_every, 0, "N", "5; 0: at the end",
              "train/val loss every N updates"),
    TRAIN_INT("--eval-batches", eval_batches, 0, "N", "5; 0: all", "batches per evaluation"),
    TRAIN_STR("--prompt", prompt, "TEXT", NULL,
              "show a greedy continuation of TEXT at the end of every epoch, or every "
              "--sample-every N updates"),
    TRAIN_INT("--sample-every", sample_every, 0, "N", "0: at the end of each epoch",
              "sample the --prompt every N updates"),
    TRAIN_INT("--sample-tokens", sample_tokens, 1, "N", "50", "tokens per sample"),
    TRAIN_INT("--save-every", save_every, 0, "N", "at the end", "also checkpoint every N updates"),
    TRAIN_INT("--log-every", log_every, 0, "N", "1", "progress line every N updates"),
    TRAIN_STR("--out", out_dir, "DIR", "with --resume the run's folder, else runs/MODEL_NAME",
              "where the files go; each path is checked before the first update"),
    TRAIN_STR("--ckpt", ckpt_path, "PATH", "OUT/ckpt.safetensors", "the checkpoint's path"),
    TRAIN_STR("--csv", csv_path, "PATH", "in OUT", "the CSV log's path"),
    TRAIN_STR("--plot", plot_path, "PATH", "in OUT", "the SVG loss plot's path"),
    TRAIN_STR("--resume", resume, "CKPT", NULL, "continue from a checkpoint, bit-exactly"),
    TRAIN_STR("--init-from", init_from, "CKPT", NULL,
              "start a new run from the weights of CKPT (every param by name and shape; its "
              "model and tokenizer unless given)"),
    TRAIN_SWITCH("--force", CLI_TRUE, force,
                 "overwrite a checkpoint of another run at the checkpoint path (refused "
                 "otherwise)"),
    TRAIN_STR("--passes", passes, "=LIST", "default",
              "the pipeline after attention/autodiff/optimizer"),
    CLI_FLAG_THREADS(TrainArgs, o.threads, "threads"),
    {"--determinism-check", CLI_INT, CLI_AT(TrainArgs, determinism_steps), .min = 1,
     .meta = "N", .help = "train nothing: take N updates at 1 thread and at --threads (at "
                          "least 2), compare every tensor bit for bit after each, report the "
                          "first that differs (exit 1)"},
    TRAIN_SWITCH("--quiet", CLI_TRUE, quiet, "no progress output"),
    {0}};

const CliSpec cmd_train_spec = {"train", usage, flags, tail, offsetof(TrainArgs, model_path),
                                "one model at a time ('%s' and '%s')", NULL};

/* -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, TrainArgs *a)
{
    return cli_parse(&cmd_train_spec, argc, argv, a);
}

static int check_args(const TrainArgs *a)
{
    const RtTrainOptions *o = &a->o;
    if (!a->model_path && !o->resume && !o->init_from)
        return cli_usage_error("train", "missing MODEL.json (or --resume CKPT or --init-from "
                               "CKPT)");
    if (o->resume && o->init_from)
        return cli_usage_error("train", "--resume and --init-from together: --resume continues "
                               "a run, --init-from starts a new one from its weights");
    if (!o->data_path && !o->resume)
        return cli_usage_error("train", "missing --data FILE (the training text)");
    if (o->train_frac > 1)
        return cli_usage_error("train", "--train-frac must be in (0, 1], got %g", o->train_frac);
    if (o->beta1 >= 1 || o->beta2 >= 1)
        return cli_usage_error("train", "--beta1 and --beta2 must be below 1");
    return -1;
}

/* With --resume, the checkpoint's settings are the defaults; *c is kept
 * for as long as o is used (o's prompt and passes point into it). */
static int resume_defaults(int argc, char **argv, RtTrainOptions *o, RtCkpt **c)
{
    const char *path = cli_flag_last(&cmd_train_spec, argc, argv, "--resume");
    if (!path)
        return -1;
    IrError err = {0};
    *c = rt_ckpt_read(path, &err);
    bool ok = *c && rt_train_options_from_ckpt(*c, o, &err);
    return ok ? -1 : cli_fail(&err);
}

/* With --init-from, the checkpoint's tokenizer is the default (before the
 * flags); *c is kept and handed to the run. */
static int init_defaults(int argc, char **argv, RtTrainOptions *o, RtCkpt **c)
{
    const char *path = cli_flag_last(&cmd_train_spec, argc, argv, "--init-from");
    if (!path)
        return -1;
    IrError err = {0};
    if (!(*c = rt_ckpt_read(path, &err)))
        return cli_fail(&err);
    rt_ckpt_print_warnings(*c, stderr);
    rt_tok_kind_parse(rt_ckpt_meta_get(*c, "tokenizer"), &o->tokenizer);
    o->init_from_ckpt = *c;
    return -1;
}

static int fail(const IrError *err)
{
    ir_error_print(err, stderr);
    return strncmp(err->msg, "internal", 8) ? 1 : 2;
}

static int train(TrainArgs *a)
{
    IrError err = {0};
    CliTrainModel m;
    bool ok = cli_train_model_load(&m, a->model_path, &a->model, &a->o, &err);
    if (ok && a->determinism_steps) {
        ok = rt_train_determinism_check(&a->o, a->determinism_steps, &err);
    } else if (ok) {
        signal(SIGPIPE, SIG_IGN);   /* a closed pipe on stdout must not kill the run (main.c) */
        RtTrain *t = rt_train_new(&a->o, &err);
        ok = t && rt_train_run(t, &err);
        rt_train_free(t);
    }
    cli_train_model_free(&m);
    return ok ? 0 : fail(&err);
}

int cmd_train(int argc, char **argv)
{
    TrainArgs a = {.o = rt_train_defaults()};
    RtCkpt *resumed = NULL, *init = NULL;
    int r = resume_defaults(argc, argv, &a.o, &resumed);
    if (r < 0)
        r = init_defaults(argc, argv, &a.o, &init);
    if (r < 0)
        r = parse_args(argc, argv, &a);
    if (r < 0)
        r = check_args(&a);
    if (r < 0 && a.model_path) /* a position past its table: cmd_run.c, cli_bind */
        r = cli_check_seq(a.model_path, &a.model, a.o.batch, a.o.ctx);
    if (r < 0)
        r = train(&a);
    rt_ckpt_free(resumed);
    rt_ckpt_free(init);
    return r;
}
