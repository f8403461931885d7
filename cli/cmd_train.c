/* cmd_train.c — `gradc train`: pretraining from the command line.
 *
 * Thin, as every command: it maps flags onto RtTrainOptions, loads the model
 * (cli/train_model.c: the runtime reads no model files) and calls
 * rt_train_new / rt_train_run (runtime/rt_train.h, docs/training.md).  With
 * --resume the checkpoint's recorded settings become the defaults before
 * the flags are read, so `gradc train --resume CKPT --steps 200` continues
 * a run as it was; flags that would change which batches the run sees
 * (batch, sequence, stride, split, seed, tokenizer) must agree with the
 * checkpoint and are refused otherwise.
 */
#include "cli.h"
#include "cli/train_model.h"
#include "runtime/rt_train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_train_usage[] =
    "usage: gradc train MODEL.json --data FILE [flags]\n"
    "       gradc train --resume CKPT [--data FILE] [flags]\n"
    "\n"
    "Pretrains a GPT on a UTF-8 text file: the text is split 90/10 by characters,\n"
    "each part tokenized, cut into windows of --seq tokens every --stride tokens\n"
    "and batched (shuffled per epoch, last partial batch dropped).  Each update\n"
    "runs one compiled train step: forward, cross-entropy, backward and AdamW.\n"
    "It prints a progress line (step, epoch, tokens seen, losses, lr, tokens/s,\n"
    "ETA), evaluates train and val loss, and writes a CSV log, an SVG loss plot\n"
    "and a checkpoint (safetensors) under --out.\n"
    "\n"
    "model and data:\n"
    "  --set k=v            override a model config value (repeatable)\n"
    "  --data FILE          the training text\n"
    "  --tokenizer gpt2|char  GPT-2 BPE (default) or characters of the text\n"
    "  --bpe-dir DIR        encoder.json + vocab.bpe (default: the data cache)\n"
    "  --batch B            windows per batch (default 2)\n"
    "  --seq T              tokens per window (default: config context_length;\n"
    "                       at most it, and at most a positional table's rows)\n"
    "  --stride S           tokens between window starts (default: T)\n"
    "  --train-frac F       training share of the text (default 0.9)\n"
    "length:\n"
    "  --epochs N           passes over the training windows (default 1)\n"
    "  --steps N            stop after update N instead (counts resumed updates)\n"
    "optimizer (AdamW):\n"
    "  --lr LR              peak learning rate (default 4e-4)\n"
    "  --schedule constant|cosine  after warmup: constant (default) or cosine\n"
    "                       decay to --min-lr at the last step\n"
    "  --min-lr LR          floor of the cosine decay (default lr/10)\n"
    "  --warmup N           linear warmup over the first N updates (default 0)\n"
    "  --weight-decay WD    (default 0.1, the book's)\n"
    "  --no-decay-bias-norm decay only matrices (nanoGPT); default: every param\n"
    "  --beta1 B1 --beta2 B2 --eps E   (default 0.9, 0.999, 1e-8)\n"
    "  --clip NORM          clip the global gradient norm (default 0: off)\n"
    "  --seed S             init, shuffle and dropout (default 123)\n"
    "  --no-shuffle         batches in text order every epoch (to compare runs)\n"
    "  --init-std GLOB=STD  start the normal-init params matching GLOB from\n"
    "                       N(0, STD^2) instead of the model file's std\n"
    "                       (repeatable): --init-std '*_emb.weight=0.02'\n"
    "evaluation, samples, output:\n"
    "  --eval-every N       train/val loss every N updates (default 5; 0: at the end)\n"
    "  --eval-batches N     batches per evaluation (default 5; 0: all)\n"
    "  --prompt TEXT        show a greedy continuation of TEXT at the end of every\n"
    "                       epoch, or every --sample-every N updates\n"
    "  --sample-tokens N    tokens per sample (default 50)\n"
    "  --save-every N       also checkpoint every N updates (default: at the end)\n"
    "  --log-every N        progress line every N updates (default 1)\n"
    "  --out DIR            where the files go (default: with --resume the run's\n"
    "                       folder, else runs/MODEL_NAME); each path is checked\n"
    "                       before the first update\n"
    "  --ckpt PATH --csv PATH --plot PATH   override one file's path\n"
    "  --resume CKPT        continue from a checkpoint, bit-exactly\n"
    "  --force              overwrite a checkpoint of another run at the checkpoint\n"
    "                       path (refused otherwise)\n"
    "  --passes=LIST        the pipeline after attention/autodiff/optimizer (default:\n"
    "                       default)\n"
    "  --threads N          threads (default: $GRADC_THREADS, else the CPUs)\n"
    "  --determinism-check N  train nothing: take N updates at 1 thread and at\n"
    "                       --threads (at least 2), compare every tensor bit for bit\n"
    "                       after each, report the first that differs (exit 1)\n"
    "  --quiet              no progress output\n"
    "\n"
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

static int bad_value(const char *flag, const char *v, const char *want)
{
    return cli_usage_error("train", "%s expects %s, got '%s'", flag, want, v);
}

/* --flag X for a float X (finite, >= min): -1 not this flag, 0 taken, else an exit code. */
static int float_flag(char **argv, int argc, int *i, const char *name, double min, double *out)
{
    const char *v;
    if (!cli_flag_value(argv, argc, i, name, &v))
        return -1;
    if (!v)
        return 1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < min)
        return bad_value(name, v, min > 0 ? "a positive number" : "a number >= 0");
    *out = x;
    return 0;
}

/* --flag N for an integer N >= min into an int64_t. */
static int int_flag(char **argv, int argc, int *i, const char *name, long long min,
                    int64_t *out)
{
    long long v;
    int r = cli_int_flag("train", argv, argc, i, name, min, &v);
    if (r == 0)
        *out = v;
    return r;
}

static int threads_flag(char **argv, int argc, int *i, int64_t *out)
{
    long long v;
    int r = cli_threads_flag("train", argv, argc, i, &v);
    if (r == 0)
        *out = v;
    return r;
}

static int take_ints(char **argv, int argc, int *i, RtTrainOptions *o)
{
    int64_t seed = (int64_t)o->seed, threads = o->threads, toks = o->sample_tokens;
    int r;
    if ((r = int_flag(argv, argc, i, "--batch", 1, &o->batch)) >= 0 ||
        (r = int_flag(argv, argc, i, "--seq", 1, &o->ctx)) >= 0 ||
        (r = int_flag(argv, argc, i, "--stride", 1, &o->stride)) >= 0 ||
        (r = int_flag(argv, argc, i, "--epochs", 1, &o->epochs)) >= 0 ||
        (r = int_flag(argv, argc, i, "--steps", 1, &o->steps)) >= 0 ||
        (r = int_flag(argv, argc, i, "--warmup", 0, &o->warmup)) >= 0 ||
        (r = int_flag(argv, argc, i, "--eval-every", 0, &o->eval_every)) >= 0 ||
        (r = int_flag(argv, argc, i, "--eval-batches", 0, &o->eval_batches)) >= 0 ||
        (r = int_flag(argv, argc, i, "--sample-every", 0, &o->sample_every)) >= 0 ||
        (r = int_flag(argv, argc, i, "--save-every", 0, &o->save_every)) >= 0 ||
        (r = int_flag(argv, argc, i, "--log-every", 0, &o->log_every)) >= 0 ||
        (r = int_flag(argv, argc, i, "--sample-tokens", 1, &toks)) >= 0 ||
        (r = threads_flag(argv, argc, i, &threads)) >= 0 ||
        (r = int_flag(argv, argc, i, "--seed", 0, &seed)) >= 0) {
        o->seed = (uint64_t)seed, o->threads = (int)threads, o->sample_tokens = (int)toks;
        return r;
    }
    return -1;
}

static int take_floats(char **argv, int argc, int *i, RtTrainOptions *o)
{
    int r;
    if ((r = float_flag(argv, argc, i, "--lr", 1e-300, &o->lr)) >= 0 ||
        (r = float_flag(argv, argc, i, "--min-lr", 0, &o->min_lr)) >= 0 ||
        (r = float_flag(argv, argc, i, "--weight-decay", 0, &o->weight_decay)) >= 0 ||
        (r = float_flag(argv, argc, i, "--beta1", 0, &o->beta1)) >= 0 ||
        (r = float_flag(argv, argc, i, "--beta2", 0, &o->beta2)) >= 0 ||
        (r = float_flag(argv, argc, i, "--eps", 0, &o->eps)) >= 0 ||
        (r = float_flag(argv, argc, i, "--clip", 0, &o->clip)) >= 0 ||
        (r = float_flag(argv, argc, i, "--train-frac", 1e-300, &o->train_frac)) >= 0)
        return r;
    return -1;
}

static int take_enum(const char *flag, const char *v, RtTrainOptions *o)
{
    if (!v)
        return 1;
    if (!strcmp(flag, "--tokenizer"))
        return rt_tok_kind_parse(v, &o->tokenizer) ? 0 : bad_value(flag, v, "gpt2 or char");
    if (!strcmp(v, "constant") || !strcmp(v, "cosine"))
        return o->schedule = strcmp(v, "cosine") ? RT_LR_CONSTANT : RT_LR_COSINE, 0;
    return bad_value(flag, v, "constant or cosine");
}

static int take_strings(char **argv, int argc, int *i, RtTrainOptions *o)
{
    static const char *const names[] = {"--data", "--bpe-dir", "--prompt", "--out", "--ckpt",
                                        "--csv", "--plot", "--resume", "--passes"};
    const char **dst[] = {&o->data_path, &o->bpe_dir, &o->prompt, &o->out_dir, &o->ckpt_path,
                          &o->csv_path, &o->plot_path, &o->resume, &o->passes};
    const char *v;
    for (int k = 0; k < 9; k++)
        if (cli_flag_value(argv, argc, i, names[k], &v))
            return v ? (*dst[k] = v, 0) : 1;
    if (cli_flag_value(argv, argc, i, "--tokenizer", &v))
        return take_enum("--tokenizer", v, o);
    if (cli_flag_value(argv, argc, i, "--init-std", &v)) {
        if (v && o->ninit_std == RT_TRAIN_MAX_INIT)
            return cli_usage_error("train", "at most %d --init-std flags", RT_TRAIN_MAX_INIT);
        return v ? (o->init_std[o->ninit_std++] = v, 0) : 1;
    }
    if (cli_flag_value(argv, argc, i, "--schedule", &v))
        return take_enum("--schedule", v, o);
    return -1;
}

static int take_switch(const char *arg, RtTrainOptions *o)
{
    if (!strcmp(arg, "--quiet"))
        return o->quiet = true, 0;
    if (!strcmp(arg, "--force"))
        return o->force = true, 0;
    if (!strcmp(arg, "--no-decay-bias-norm"))
        return o->decay_all = false, 0;
    if (!strcmp(arg, "--no-shuffle"))
        return o->no_shuffle = true, 0;
    return -1;
}

/* -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, TrainArgs *a)
{
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i]))
            return cli_help("train");
        if (cli_take_set(argv, argc, &i, &a->model)) {
            if (a->model.bad)
                return 1;
            continue;
        }
        if ((r = int_flag(argv, argc, &i, "--determinism-check", 1, &a->determinism_steps)) >= 0 ||
            (r = take_ints(argv, argc, &i, &a->o)) >= 0 ||
            (r = take_floats(argv, argc, &i, &a->o)) >= 0 ||
            (r = take_strings(argv, argc, &i, &a->o)) >= 0 || (r = take_switch(argv[i], &a->o)) >= 0) {
            if (r)
                return r;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("train", "unknown flag '%s'", argv[i]);
        } else if (a->model_path) {
            return cli_usage_error("train", "one model at a time ('%s' and '%s')",
                                   a->model_path, argv[i]);
        } else {
            a->model_path = argv[i];
        }
    }
    return -1;
}

static int check_args(const TrainArgs *a)
{
    const RtTrainOptions *o = &a->o;
    if (!a->model_path && !o->resume)
        return cli_usage_error("train", "missing MODEL.json (or --resume CKPT)");
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
    const char *path = NULL;
    for (int i = 1; i < argc; i++)
        if (cli_flag_value(argv, argc, &i, "--resume", &path) && !path)
            return 1;
    if (!path)
        return -1;
    IrError err = {0};
    *c = rt_ckpt_read(path, &err);
    bool ok = *c && rt_train_options_from_ckpt(*c, o, &err);
    return ok ? -1 : cli_fail(&err);
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
    RtCkpt *resumed = NULL;
    int r = resume_defaults(argc, argv, &a.o, &resumed);
    if (r < 0)
        r = parse_args(argc, argv, &a);
    if (r < 0)
        r = check_args(&a);
    if (r < 0 && a.model_path) /* a position past its table: cmd_run.c, cli_bind */
        r = cli_check_seq(a.model_path, &a.model, a.o.batch, a.o.ctx);
    if (r < 0)
        r = train(&a);
    rt_ckpt_free(resumed);
    return r;
}
