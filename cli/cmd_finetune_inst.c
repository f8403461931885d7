/* cmd_finetune_inst.c — `gradc finetune instruct`: a pretrained GPT taught
 * to follow instructions (the book's chapter 7; docs/finetune.md).
 *
 * Glue, as cmd_finetune.c is for classify: the model is the --init-from
 * checkpoint's own language model (cli/ft_model.c, dropout off), the data
 * come from runtime/rt_inst_data.c (Alpaca entries, the book's prompt, its
 * collate, 85/10/5 split), the batches from rt_ft_inst.c and the loop from
 * rt_finetune.c with the book's evaluation schedule (before training, then
 * every --eval-every updates over --eval-batches batches, and the whole val
 * and test sets at the end of each epoch).  After training it writes a
 * response for every test entry (runtime/rt_inst_gen.c) to
 * DIR/instruction-data-with-response.json, as the book does.
 *
 * Every batch is padded to one width T (the longest example, capped at
 * --max-len), so one train and one eval program serve the whole run: the
 * padding costs compute (printed: the mean of the book's per-batch widths
 * over T), not correctness (causal attention, ignored targets).
 */
#include "cli.h"
#include "cli/ft_model.h"
#include "runtime/rt_finetune.h"
#include "runtime/rt_inst_data.h"
#include "runtime/rt_inst_gen.h"
#include "runtime/rt_lora.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc finetune instruct --init-from CKPT --data FILE --out DIR [flags]\n"
    "\n"
    "Fine-tunes a pretrained GPT (a checkpoint of gradc train or import-gpt2) to\n"
    "follow instructions, as the book's chapter 7.  The data are a JSON array (or\n"
    "JSON Lines) of {instruction, input, output} entries, the Alpaca format; each\n"
    "becomes the book's prompt (--prompt-style) followed by its response, tokenized\n"
    "with GPT-2's BPE.  The entries split 85/10/5 into train, test and val in file\n"
    "order (--shuffle-split: shuffled with --seed).  Batches are the book's\n"
    "custom_collate_fn: <|endoftext|> after each entry, targets shifted by one, the\n"
    "padding after the first <|endoftext|> ignored (-100), and with --mask-prompt\n"
    "the prompt's tokens too.  Every param trains unless --trainable/--freeze or\n"
    "--lora-rank say otherwise.  It evaluates before training, every --eval-every\n"
    "updates and at the end of each epoch; then it writes a response for every\n"
    "test entry.  Files in DIR: ckpt.safetensors, log.csv, curves.svg and\n"
    "instruction-data-with-response.json.\n"
    "\n";

static const char tail[] =
    "examples:\n"
    "  gradc finetune instruct --init-from runs/gpt/ckpt.safetensors \\\n"
    "      --data instruction-data.json --out runs/instruct\n"
    "  gradc finetune instruct --init-from gpt2.ckpt --data alpaca.jsonl --mask-prompt \\\n"
    "      --lora-rank 16 --lora-alpha 16 --merge --out runs/instruct-lora\n"
    "  gradc score runs/instruct/instruction-data-with-response.json \\\n"
    "      --ckpt runs/instruct/ckpt.safetensors\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

#define IN_MAX_GLOBS RT_FT_MAX_GLOBS

typedef struct InArgs {
    const char *task;
    CliFtModelArgs m;
    const char *data, *out, *style;
    int64_t epochs, steps, batch, max_len, seed, eval_every, eval_batches, dump_batches;
    int64_t max_new, top_k;
    double lr, weight_decay, temperature;
    bool mask_prompt, truncate, shuffle_split, no_shuffle, no_respond, quiet, merge, force;
    const char *trainable[IN_MAX_GLOBS], *freeze[IN_MAX_GLOBS];
    int ntrainable, nfreeze;
    int threads;
} InArgs;

#define IN_INT(flag, field, m, meta_, d, what)                                               \
    {flag, CLI_INT, CLI_AT(InArgs, field), .min = m, .meta = meta_, .def = d, .help = what}
#define IN_STR(flag, field, meta_, d, what)                                                  \
    {flag, CLI_STR, CLI_AT(InArgs, field), .meta = meta_, .def = d, .help = what}
#define IN_TRUE(flag, field, what) {flag, CLI_TRUE, CLI_AT(InArgs, field), .help = what}
#define IN_LIST(flag, field, what)                                                           \
    {flag, CLI_LIST, CLI_AT(InArgs, field), .count = offsetof(InArgs, n##field),           \
     .meta = "GLOB", .help = what}

static const CliFlag flags[] = {
    {NULL, CLI_HEAD, .help = "model:"},
    IN_STR("--init-from", m.init, "CKPT", NULL,
           "the pretrained GPT: its model, sizes and weights"),
    IN_STR("--model", m.model_path, "FILE", "the checkpoint's model",
           "a model file to load at the checkpoint's sizes instead"),
    CLI_FLAG_SET(InArgs, m.model),
    CLI_FLAGS_LORA(InArgs, m.model.lora),
    IN_STR("--bpe-dir", m.bpe_dir, "DIR", "the data cache", "encoder.json + vocab.bpe"),
    {NULL, CLI_HEAD, .help = "data:"},
    IN_STR("--data", data, "FILE", NULL,
           "a JSON array or JSON Lines of {instruction, input, output}"),
    IN_STR("--prompt-style", style, "alpaca|phi3", "alpaca",
           "the prompt template: the book's Alpaca one or Phi-3's (exercise 7.1)"),
    IN_TRUE("--mask-prompt", mask_prompt,
            "leave the prompt's tokens out of the loss (exercise 7.2)"),
    IN_INT("--max-len", max_len, 2, "N", "the context length",
           "the longest example in tokens; a longer one is an error"),
    IN_TRUE("--truncate", truncate,
            "cut examples longer than --max-len, as the book's collate does"),
    IN_TRUE("--shuffle-split", shuffle_split,
            "shuffle the entries with --seed before the 85/10/5 split"),
    {NULL, CLI_HEAD, .help = "training:"},
    IN_LIST("--trainable", trainable,
            "train only the params matching GLOB (repeatable); by default every param (with "
            "LoRA the adapters)"),
    IN_LIST("--freeze", freeze, "freeze the params matching GLOB (repeatable)"),
    IN_INT("--epochs", epochs, 1, "N", "2", "passes over the training set"),
    IN_INT("--steps", steps, 1, "N", NULL, "stop after N updates instead"),
    IN_INT("--batch", batch, 1, "B", "8", "examples per batch"),
    {"--lr", CLI_NUM, CLI_AT(InArgs, lr), .positive = true, .meta = "LR", .def = "5e-5",
     .help = "AdamW learning rate (constant)"},
    {"--weight-decay", CLI_NUM, CLI_AT(InArgs, weight_decay), .meta = "WD", .def = "0.1",
     .help = "AdamW weight decay"},
    IN_INT("--seed", seed, 0, "S", "123", "shuffles, LoRA's init, sampling"),
    IN_TRUE("--no-shuffle", no_shuffle,
            "training batches in split order every epoch (to compare runs)"),
    IN_INT("--eval-every", eval_every, 0, "N", "5",
           "evaluate every N updates (0: only at the end of each epoch)"),
    IN_INT("--eval-batches", eval_batches, 0, "N", "5",
           "batches per split in those evaluations (0: all)"),
    {NULL, CLI_HEAD, .help = "responses:"},
    IN_TRUE("--no-respond", no_respond, "do not generate the test entries' responses"),
    IN_INT("--max-new", max_new, 1, "N", "256", "at most N new tokens per response"),
    {"--temperature", CLI_NUM, CLI_AT(InArgs, temperature), .meta = "T", .def = "0",
     .help = "0: greedy; higher: more random"},
    IN_INT("--top-k", top_k, 0, "K", "0: all", "sample among the K most likely tokens"),
    {NULL, CLI_HEAD, .help = "output:"},
    IN_STR("--out", out, "DIR", NULL, "where the checkpoint, log, plot and responses go"),
    {"--merge", CLI_TRUE, CLI_AT(InArgs, merge),
     .help = "with LoRA: fold the adapters into their weights in the final checkpoint"},
    {"--force", CLI_TRUE, CLI_AT(InArgs, force),
     .help = "overwrite the checkpoint of an earlier run in DIR"},
    CLI_FLAG_THREADS(InArgs, threads, "threads"),
    {"--quiet", CLI_TRUE, CLI_AT(InArgs, quiet), .help = "no progress output"},
    IN_INT("--dump-batches", dump_batches, 1, "N", NULL,
           "print the first N training batches (split order) as JSON lines and stop"),
    {0}};

const CliSpec cmd_finetune_instruct_spec = {"finetune instruct", usage, flags, tail,
                                            CLI_ONE_INPUT(InArgs, task)};

static int check_args(const InArgs *a, RtPromptStyle *style)
{
    const char *cmd = "finetune instruct";
    if (!a->m.init)
        return cli_usage_error(cmd, "missing --init-from CKPT (the pretrained model)");
    if (!a->data)
        return cli_usage_error(cmd, "missing --data FILE");
    if (!a->out && !a->dump_batches)
        return cli_usage_error(cmd, "missing --out DIR");
    if (a->merge && a->m.model.lora.rank <= 0)
        return cli_usage_error(cmd, "--merge needs --lora-rank R");
    if (!rt_prompt_style_parse(a->style ? a->style : "alpaca", style))
        return cli_usage_error(cmd, "unknown --prompt-style '%s' (alpaca or phi3)", a->style);
    return -1;
}

/* ---------------------------------------------------------------- data */

static bool load_data(const InArgs *a, RtPromptStyle style, CliFtModel *fm, RtInstData *d,
                      IrError *err)
{
    RtInstOptions o = rt_inst_defaults();
    o.data_path = a->data;
    o.shuffle_split = a->shuffle_split;
    o.seed = (uint64_t)a->seed;
    o.style = style;
    o.mask_prompt = a->mask_prompt;
    o.max_len = a->max_len ? a->max_len : fm->context_length;
    o.truncate = a->truncate;
    o.tok = fm->tok;
    return rt_inst_load(&o, d, err);
}

/* The mean of the book's per-batch widths (in split order) over T: the
 * share of the padded compute that the book's collate would also do. */
static double width_use(const RtInstData *d, int64_t B)
{
    int64_t n = d->train.n / B, sum = 0, width;
    if (n == 0 || d->T == 0)
        return 1;
    size_t bytes = sizeof(int32_t) * (size_t)(B * d->T);
    int32_t *x = malloc(bytes), *y = malloc(bytes);
    for (int64_t b = 0; b < n; b++) {
        rt_inst_fill(d, &d->train, NULL, b * B, B, x, y, &width);
        sum += width;
    }
    free(x);
    free(y);
    return (double)sum / (double)(n * d->T);
}

static void print_data(const InArgs *a, const RtInstData *d)
{
    printf("data: %s: %lld entries (%s prompt%s)\n", a->data, (long long)d->set.n,
           rt_prompt_style_name(d->style), d->mask_prompt ? ", prompt masked" : "");
    printf("  train %lld, val %lld, test %lld%s\n", (long long)d->train.n, (long long)d->val.n,
           (long long)d->test.n, a->shuffle_split ? " (shuffled)" : " (file order)");
    printf("  padded to %lld tokens (longest example %lld), %lld truncated; the book's batch "
           "widths use %.0f%% of it\n", (long long)d->T, (long long)d->longest,
           (long long)d->truncated, 100 * width_use(d, a->batch));
}

/* ---------------------------------------------------------------- run */

typedef struct InRun {
    RtFtOptions o;
    RtFtInst *src;
} InRun;

static void meta(RtFtOptions *o, const char *k, const char *v)
{
    o->meta_key[o->nmeta] = k;
    o->meta_value[o->nmeta++] = v;
}

static void options(const InArgs *a, const CliFtModel *fm, const RtInstData *d, InRun *r)
{
    static const char *const fresh[2] = {"*.lora_A", "*.lora_B"};
    static const char *const lora[2] = {"*.lora_A", "*.lora_B"};
    RtFtOptions *o = &r->o;
    *o = rt_ft_defaults();
    o->model = fm->model;
    o->init = fm->init;
    o->new_params = fresh;
    o->nnew = 2;
    o->trainable = a->ntrainable ? a->trainable : a->m.model.lora.rank > 0 ? lora : NULL;
    o->ntrainable = a->ntrainable ? a->ntrainable : a->m.model.lora.rank > 0 ? 2 : 0;
    o->freeze = a->freeze;
    o->nfreeze = a->nfreeze;
    r->src = rt_ft_inst_new(d, a->batch, !a->no_shuffle, (uint64_t)a->seed);
    o->source = rt_ft_inst_source(r->src);
    o->batch = a->batch;
    o->T = d->T;
    o->epochs = a->epochs;
    o->steps = a->steps;
    o->lr = a->lr;
    o->weight_decay = a->weight_decay;
    o->seed = (uint64_t)a->seed;
    o->eval_batches = 0;   /* the whole of each split at the end of an epoch */
    o->eval_at_start = true;
    o->eval_every = a->eval_every;
    o->eval_iter = a->eval_batches;
    o->threads = a->threads;
    o->out_dir = a->out;
    o->force = a->force;
    o->quiet = a->quiet;
    meta(o, "task", "instruct");
    meta(o, "tokenizer", "gpt2");
    meta(o, "inst.prompt_style", rt_prompt_style_name(d->style));
    meta(o, "inst.mask_prompt", d->mask_prompt ? "1" : "0");
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

/* DIR/instruction-data-with-response.json: the test entries answered by
 * the fine-tuned weights (the train program's), as the book's chapter 7. */
static bool respond(const InArgs *a, const CliFtModel *fm, const RtInstData *d, RtFt *ft,
                    IrError *err)
{
    int64_t n = d->test.n;
    const RtInstEntry **e = malloc(sizeof *e * (size_t)(n + 1));
    char **resp = calloc((size_t)n + 1, sizeof *resp), path[4200];
    for (int64_t i = 0; i < n; i++)
        e[i] = d->test.ex[i].entry;
    RtRespondOptions ro = rt_respond_defaults();
    ro.style = d->style;
    ro.max_new = (int)a->max_new;
    ro.temperature = a->temperature;
    ro.top_k = (int)a->top_k;
    ro.seed = (uint64_t)a->seed;
    ro.progress = a->quiet ? NULL : stdout;
    snprintf(path, sizeof path, "%s/instruction-data-with-response.json", a->out);
    RtExecOptions eo = {.nthreads = a->threads};
    RtGen *gen = rt_gen_new(fm->model.graph, fm->context_length, true, &eo, err);
    double t0 = cli_now_ms();
    bool ok = gen && rt_gen_params_from_exec(gen, rt_ft_train_exec(ft), err) &&
              rt_inst_respond(gen, fm->tok, e, n, &ro, resp, err) &&
              rt_inst_write_responses(path, e, n, resp, err);
    if (ok && !a->quiet)
        printf("responses: %lld test entries in %.1f s; %s\n", (long long)n,
               (cli_now_ms() - t0) / 1e3, path);
    for (int64_t i = 0; i < n; i++)
        free(resp[i]);
    free(resp);
    free(e);
    rt_gen_free(gen);
    return ok;
}

static bool run(const InArgs *a, CliFtModel *fm, const RtInstData *d, IrError *err)
{
    InRun r = {0};
    options(a, fm, d, &r);
    RtFt *ft = rt_ft_new(&r.o, err);
    bool ok = ft && rt_ft_run(ft, err) && (a->no_respond || respond(a, fm, d, ft, err)) &&
              (!a->merge || merge(rt_ft_ckpt_path(ft), a->quiet, err));
    rt_ft_free(ft);
    rt_ft_inst_free(r.src);
    return ok;
}

static int finetune(InArgs *a, RtPromptStyle style)
{
    IrError err = {0};
    CliFtModel fm;
    RtInstData d = {0};
    bool loaded = false;
    bool ok = cli_ft_model_open(&fm, &a->m, &err) &&
              (loaded = load_data(a, style, &fm, &d, &err));
    if (ok && a->dump_batches) {
        rt_inst_dump_batches(stdout, &d, a->batch, a->dump_batches);
    } else {
        if (ok && !a->quiet)
            print_data(a, &d);
        ok = ok && cli_ft_model_load_lm(&fm, &a->m, &err);
        if (ok) {
            signal(SIGPIPE, SIG_IGN);   /* a closed pipe on stdout must not kill the run */
            ok = run(a, &fm, &d, &err);
        }
    }
    if (loaded)
        rt_inst_free(&d);
    cli_ft_model_free(&fm);
    return ok ? 0 : cli_fail(&err);
}

int cmd_finetune_instruct(int argc, char **argv)
{
    InArgs a = {.epochs = 2, .batch = 8, .lr = 5e-5, .weight_decay = 0.1, .seed = 123,
                .eval_every = 5, .eval_batches = 5, .max_new = 256};
    RtPromptStyle style = RT_PROMPT_ALPACA;
    int r = cli_parse(&cmd_finetune_instruct_spec, argc, argv, &a);
    if (r < 0)
        r = check_args(&a, &style);
    if (r < 0)
        r = finetune(&a, style);
    return r;
}
