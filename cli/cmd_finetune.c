/* cmd_finetune.c — `gradc finetune classify`: a pretrained GPT made into a
 * text classifier (the book's chapter 6; docs/finetune.md).
 *
 * The command is glue: the runtime reads no model files, so the sizes of the
 * --init-from checkpoint (its model.json read with its model.sets: emb_dim,
 * n_layers, ...), the label count of the data (n_classes) and the --set
 * values load the classifier model here (cli/ft_model.c); LoRA adapters are
 * added by the lora pass (cli_lora_apply); the data come from
 * runtime/rt_cls_data.c, the batches and the accuracy from rt_ft_cls.c and
 * the loop from rt_finetune.c.
 *
 * The trainable set: the book's by default (the last block, the final norm
 * and the head), with LoRA the adapters only; --trainable GLOB replaces it
 * and --freeze GLOB removes from it.
 */
#include "cli.h"
#include "cli/ft_model.h"
#include "runtime/rt_cls_data.h"
#include "runtime/rt_finetune.h"
#include "runtime/rt_lora.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc finetune classify --init-from CKPT --data FILE --out DIR [flags]\n"
    "       gradc finetune classify --init-from CKPT --train F [--val F --test F] --out DIR\n"
    "\n"
    "Fine-tunes a pretrained GPT (a checkpoint of gradc train or import-gpt2) as a\n"
    "text classifier, as the book's chapter 6: the model is --model (the GPT with\n"
    "its LM head replaced by a linear layer to the data's label count, read at each\n"
    "text's last token), its sizes those of the checkpoint.  The data (label<TAB>text\n"
    "or a label,text CSV) are balanced by undersampling, shuffled and split 70/10/20,\n"
    "tokenized with GPT-2's BPE and padded with <|endoftext|> to the longest\n"
    "training text.  By default only the last block, the final norm and the head\n"
    "train (with --lora-rank, only the adapters).  After each epoch it prints the\n"
    "loss and accuracy of the train, val and test sets; it writes DIR/ckpt.safetensors,\n"
    "DIR/log.csv, DIR/curves.svg, DIR/accuracy.svg and DIR/split/{train,val,test}.tsv.\n"
    "Instruction tuning (chapter 7) is `gradc finetune instruct`: see\n"
    "`gradc finetune instruct --help`.\n"
    "\n";

static const char tail[] =
    "examples:\n"
    "  gradc finetune classify --init-from gpt2.ckpt --data SMSSpamCollection --out runs/spam\n"
    "  # full fine-tuning, and LoRA (rank 16, the book's alpha 16 and scale):\n"
    "  gradc finetune classify --init-from gpt2.ckpt --data sms.tsv --trainable '*' --out full\n"
    "  gradc finetune classify --init-from gpt2.ckpt --data sms.tsv --lora-rank 16 \\\n"
    "      --lora-alpha 16 --lora-scale alpha --merge --out lora\n"
    "  gradc classify runs/spam/ckpt.safetensors --text 'WIN a FREE prize!'\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

#define FT_MAX_GLOBS RT_FT_MAX_GLOBS

typedef struct FtArgs {
    const char *task;
    CliFtModelArgs m;
    const char *data, *train, *val, *test, *out;
    int64_t epochs, steps, batch, max_len, eval_batches, seed;
    double lr, weight_decay;
    bool no_balance, no_shuffle, quiet, merge, force;
    const char *trainable[FT_MAX_GLOBS], *freeze[FT_MAX_GLOBS];
    int ntrainable, nfreeze;
    int threads;
} FtArgs;

#define FT_INT(flag, field, m, meta_, d, what)                                               \
    {flag, CLI_INT, CLI_AT(FtArgs, field), .min = m, .meta = meta_, .def = d, .help = what}
#define FT_STR(flag, field, meta_, d, what)                                                  \
    {flag, CLI_STR, CLI_AT(FtArgs, field), .meta = meta_, .def = d, .help = what}
#define FT_LIST(flag, field, what)                                                           \
    {flag, CLI_LIST, CLI_AT(FtArgs, field), .count = offsetof(FtArgs, n##field),           \
     .meta = "GLOB", .help = what}

static const CliFlag flags[] = {
    {NULL, CLI_HEAD, .help = "model:"},
    FT_STR("--init-from", m.init, "CKPT", NULL,
           "the pretrained GPT: every param but the head comes from it, and its sizes"),
    FT_STR("--model", m.model_path, "FILE", "models/gpt2-classifier.json",
           "the classifier's model file"),
    CLI_FLAG_SET(FtArgs, m.model),
    CLI_FLAGS_LORA(FtArgs, m.model.lora),
    FT_STR("--bpe-dir", m.bpe_dir, "DIR", "the data cache", "encoder.json + vocab.bpe"),
    {NULL, CLI_HEAD, .help = "data:"},
    FT_STR("--data", data, "FILE", NULL, "label<TAB>text lines, or a CSV with label,text"),
    FT_STR("--train", train, "FILE", NULL, "pre-split training examples instead of --data"),
    FT_STR("--val", val, "FILE", NULL, "pre-split validation examples"),
    FT_STR("--test", test, "FILE", NULL, "pre-split test examples"),
    {"--no-balance", CLI_TRUE, CLI_AT(FtArgs, no_balance),
     .help = "keep every example of --data (by default each class is undersampled to the "
             "smallest)"},
    FT_INT("--max-len", max_len, 1, "N", "the longest training text",
           "pad (and truncate) every text to N tokens, at most context_length"),
    {NULL, CLI_HEAD, .help = "training:"},
    FT_LIST("--trainable", trainable,
            "train only the params matching GLOB (repeatable; '*': full fine-tuning); by "
            "default the last block, final_norm.* and out_head.* (with LoRA the adapters)"),
    FT_LIST("--freeze", freeze, "freeze the params matching GLOB (repeatable)"),
    FT_INT("--epochs", epochs, 1, "N", "5", "passes over the training set"),
    FT_INT("--steps", steps, 1, "N", NULL, "stop after N updates instead"),
    FT_INT("--batch", batch, 1, "B", "8", "examples per batch"),
    {"--lr", CLI_NUM, CLI_AT(FtArgs, lr), .positive = true, .meta = "LR", .def = "5e-5",
     .help = "AdamW learning rate (constant)"},
    {"--weight-decay", CLI_NUM, CLI_AT(FtArgs, weight_decay), .meta = "WD", .def = "0.1",
     .help = "AdamW weight decay"},
    FT_INT("--seed", seed, 0, "S", "123", "balance, split, shuffle, the head's init"),
    {"--no-shuffle", CLI_TRUE, CLI_AT(FtArgs, no_shuffle),
     .help = "training batches in split order every epoch (to compare runs)"},
    FT_INT("--eval-batches", eval_batches, 0, "N", "0: all",
           "batches per split in each evaluation"),
    {NULL, CLI_HEAD, .help = "output:"},
    FT_STR("--out", out, "DIR", NULL, "where the checkpoint, log, plots and splits go"),
    {"--merge", CLI_TRUE, CLI_AT(FtArgs, merge),
     .help = "with LoRA: fold the adapters into their weights in the final checkpoint"},
    {"--force", CLI_TRUE, CLI_AT(FtArgs, force),
     .help = "overwrite the checkpoint of an earlier run in DIR"},
    CLI_FLAG_THREADS(FtArgs, threads, "threads"),
    {"--quiet", CLI_TRUE, CLI_AT(FtArgs, quiet), .help = "no progress output"},
    {0}};

const CliSpec cmd_finetune_spec = {"finetune", usage, flags, tail,
                                   CLI_ONE_INPUT(FtArgs, task)};

static int check_args(const FtArgs *a)
{
    if (!a->task)
        return cli_usage_error("finetune", "missing the task: gradc finetune classify ...");
    if (strcmp(a->task, "classify"))
        return cli_usage_error("finetune", "unknown task '%s' (the tasks: classify, instruct)",
                               a->task);
    if (!a->m.init)
        return cli_usage_error("finetune", "missing --init-from CKPT (the pretrained model)");
    if (!a->data == !a->train)
        return cli_usage_error("finetune", a->data ? "--data and --train exclude each other"
                                                   : "missing --data FILE (or --train FILE)");
    if (a->data && (a->val || a->test))
        return cli_usage_error("finetune", "--val and --test go with --train, not --data");
    if (!a->out)
        return cli_usage_error("finetune", "missing --out DIR");
    if (a->merge && a->m.model.lora.rank <= 0)
        return cli_usage_error("finetune", "--merge needs --lora-rank R");
    return -1;
}

/* ---------------------------------------------------------------- data */

static bool load_data(const FtArgs *a, CliFtModel *fm, RtClsData *d, IrError *err)
{
    RtClsOptions o = rt_cls_defaults();
    o.data_path = a->data;
    o.train_path = a->train;
    o.val_path = a->val;
    o.test_path = a->test;
    o.balance = !a->no_balance;
    o.seed = (uint64_t)a->seed;
    o.max_len = a->max_len;
    o.context_length = fm->context_length;
    o.tok = fm->tok;
    return rt_cls_load(&o, d, err);
}

static void print_split(const RtClsData *d, const char *name, const RtClsSplit *s)
{
    printf("  %-5s %6lld:", name, (long long)s->n);
    for (int k = 0; k < d->nlabels; k++)
        printf(" %s %lld", d->labels[k], (long long)rt_cls_count(s, k));
    printf("\n");
}

static void print_data(const FtArgs *a, const RtClsData *d)
{
    printf("data: %s: %lld examples", a->data ? a->data : a->train, (long long)d->read);
    if (d->dropped)
        printf(", %lld dropped by balancing", (long long)d->dropped);
    printf("; labels");
    for (int k = 0; k < d->nlabels; k++)
        printf(" %s=%d", d->labels[k], k);
    printf("\n");
    print_split(d, "train", &d->train);
    print_split(d, "val", &d->val);
    print_split(d, "test", &d->test);
    printf("  padded to %lld tokens (longest training text %lld), %lld truncated\n",
           (long long)d->pad_len, (long long)d->longest, (long long)d->truncated);
}

/* ---------------------------------------------------------------- run */

static char *labels_json(const RtClsData *d)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < d->nlabels; k++)
        cJSON_AddItemToArray(a, cJSON_CreateString(d->labels[k]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

typedef struct FtRun {
    RtFtOptions o;
    char *labels, pad[32];
    const char *defaults[3];
    char last_block[64];
    RtFtCls *cls;
} FtRun;

static void meta(RtFtOptions *o, const char *k, const char *v)
{
    o->meta_key[o->nmeta] = k;
    o->meta_value[o->nmeta++] = v;
}

/* The book's trainable set, or the adapters with LoRA, unless --trainable. */
static void trainable_set(const FtArgs *a, const CliFtModel *fm, FtRun *r)
{
    RtFtOptions *o = &r->o;
    o->trainable = a->trainable;
    o->ntrainable = a->ntrainable;
    o->freeze = a->freeze;
    o->nfreeze = a->nfreeze;
    if (a->ntrainable)
        return;
    if (a->m.model.lora.rank > 0) {
        static const char *const lora[2] = {"*.lora_A", "*.lora_B"};
        o->trainable = lora;
        o->ntrainable = 2;
        return;
    }
    snprintf(r->last_block, sizeof r->last_block, "trf_blocks.%lld.*",
             (long long)fm->n_layers - 1);
    r->defaults[0] = r->last_block;
    r->defaults[1] = "final_norm.*";
    r->defaults[2] = "out_head.*";
    o->trainable = r->defaults;
    o->ntrainable = 3;
}

static void options(const FtArgs *a, const CliFtModel *fm, const RtClsData *d, FtRun *r)
{
    static const char *const fresh[3] = {"out_head.*", "*.lora_A", "*.lora_B"};
    RtFtOptions *o = &r->o;
    *o = rt_ft_defaults();
    o->model = fm->model;
    o->init = fm->init;
    o->new_params = fresh;
    o->nnew = 3;
    trainable_set(a, fm, r);
    r->cls = rt_ft_cls_new(d, a->batch, !a->no_shuffle, (uint64_t)a->seed);
    o->source = rt_ft_cls_source(r->cls);
    o->metric = rt_ft_cls_accuracy(r->cls);
    o->batch = a->batch;
    o->T = d->pad_len;
    o->epochs = a->epochs;
    o->steps = a->steps;
    o->lr = a->lr;
    o->weight_decay = a->weight_decay;
    o->seed = (uint64_t)a->seed;
    o->eval_batches = a->eval_batches;
    o->threads = a->threads;
    o->out_dir = a->out;
    o->force = a->force;
    o->quiet = a->quiet;
    r->labels = labels_json(d);
    snprintf(r->pad, sizeof r->pad, "%lld", (long long)d->pad_len);
    meta(o, "task", "classify");
    meta(o, "tokenizer", "gpt2");
    meta(o, "cls.labels", r->labels);
    meta(o, "cls.pad_len", r->pad);
    meta(o, "cls.pad_id", "50256");
    if (fm->lora_json)
        meta(o, RT_LORA_META, fm->lora_json);
}

/* --merge: the checkpoint rewritten in place with the adapters folded in. */
static bool merge(const char *ckpt, bool quiet, IrError *err)
{
    if (!rt_lora_merge_file(ckpt, ckpt, err))
        return false;
    if (!quiet)
        printf("merged the LoRA adapters into their weights: %s\n", ckpt);
    return true;
}

static bool run(const FtArgs *a, CliFtModel *fm, const RtClsData *d, IrError *err)
{
    FtRun r = {0};
    options(a, fm, d, &r);
    RtFt *ft = rt_ft_new(&r.o, err);
    bool ok = ft && rt_cls_write_split(d, a->out, err) && rt_ft_run(ft, err) &&
              (!a->merge || merge(rt_ft_ckpt_path(ft), a->quiet, err));
    rt_ft_free(ft);
    rt_ft_cls_free(r.cls);
    free(r.labels);
    return ok;
}

static int finetune(FtArgs *a)
{
    IrError err = {0};
    CliFtModel fm;
    RtClsData d = {0};
    bool loaded = false;
    bool ok = cli_ft_model_open(&fm, &a->m, &err) && (loaded = load_data(a, &fm, &d, &err));
    if (ok && !a->quiet)
        print_data(a, &d);
    ok = ok && cli_ft_model_load(&fm, &a->m, d.nlabels, &err);
    if (ok) {
        signal(SIGPIPE, SIG_IGN);   /* a closed pipe on stdout must not kill the run */
        ok = run(a, &fm, &d, &err);
    }
    if (loaded)
        rt_cls_free(&d);
    cli_ft_model_free(&fm);
    return ok ? 0 : cli_fail(&err);
}

int cmd_finetune(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "instruct"))
        return cmd_finetune_instruct(argc, argv);
    FtArgs a = {.epochs = 5, .batch = 8, .lr = 5e-5, .weight_decay = 0.1, .seed = 123};
    int r = cli_parse(&cmd_finetune_spec, argc, argv, &a);
    if (r < 0)
        r = check_args(&a);
    if (r < 0)
        r = finetune(&a);
    return r;
}
