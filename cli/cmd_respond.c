/* cmd_respond.c — `gradc respond`: a model's response to each entry of an
 * instruction file, written as the book's instruction-data-with-response.json.
 *
 * The entries are split as `gradc finetune instruct` splits them
 * (runtime/rt_inst_data.c), so that `--split test` answers the same test
 * entries as the fine-tuning run did; the responses come from
 * runtime/rt_inst_gen.c with the checkpoint's model (cli/ckpt_model.c).
 * Any GPT checkpoint will do: a pretrained one gives the "before" of a
 * fine-tuning run.
 */
#include "cli.h"
#include "cli/ckpt_model.h"
#include "runtime/rt_inst_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc respond CKPT --data FILE --out FILE.json [flags]\n"
    "\n"
    "Writes the model's response to each entry of an instruction file (a JSON array\n"
    "or JSON Lines of {instruction, input, output}): the entry's prompt in the book's\n"
    "format, continued greedily (or with --temperature and --top-k) until\n"
    "<|endoftext|>, --max-new tokens or the next '###'.  The entries are split as\n"
    "`gradc finetune instruct` splits them (85% train, 10% test, 5% val) and --split\n"
    "picks which are answered.  The output is the book's file: the entries with a\n"
    "\"model_response\" each; `gradc score` scores it.\n"
    "\n";

static const char tail[] =
    "examples:\n"
    "  gradc respond runs/gpt/ckpt.safetensors --data instruction-data.json \\\n"
    "      --out before.json\n"
    "  gradc score before.json --ckpt runs/gpt/ckpt.safetensors\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct RespArgs {
    const char *ckpt, *data, *out, *split, *style, *bpe_dir;
    int64_t max_new, top_k, seed;
    double temperature;
    bool shuffle_split, quiet;
    int threads;
    CliModelArgs model;
} RespArgs;

static const CliFlag flags[] = {
    {"--data", CLI_STR, CLI_AT(RespArgs, data), .meta = "FILE",
     .help = "the instruction entries (required)"},
    {"--split", CLI_STR, CLI_AT(RespArgs, split), .meta = "test|val|train|all", .def = "test",
     .help = "the entries to answer"},
    {"--shuffle-split", CLI_TRUE, CLI_AT(RespArgs, shuffle_split),
     .help = "split as finetune instruct --shuffle-split (with --seed)"},
    {"--prompt-style", CLI_STR, CLI_AT(RespArgs, style), .meta = "alpaca|phi3",
     .def = "the checkpoint's, else alpaca", .help = "the prompt template"},
    {"--max-new", CLI_INT, CLI_AT(RespArgs, max_new), .min = 1, .meta = "N", .def = "256",
     .help = "at most N new tokens per response"},
    {"--temperature", CLI_NUM, CLI_AT(RespArgs, temperature), .meta = "T", .def = "0",
     .help = "0: greedy; higher: more random"},
    {"--top-k", CLI_INT, CLI_AT(RespArgs, top_k), .meta = "K", .def = "0: all",
     .help = "sample among the K most likely tokens"},
    {"--seed", CLI_INT, CLI_AT(RespArgs, seed), .meta = "S", .def = "123",
     .help = "the split's shuffle and the draws"},
    {"--out", CLI_STR, CLI_AT(RespArgs, out), .meta = "FILE.json",
     .help = "where the responses go (required)"},
    {"--bpe-dir", CLI_STR, CLI_AT(RespArgs, bpe_dir), .meta = "DIR", .def = "the data cache",
     .help = "encoder.json + vocab.bpe"},
    {"--set", CLI_CALL, CLI_AT(RespArgs, model), .fn = cli_set_fn, .meta = "k=v",
     .help = "override the checkpoint's model config (repeatable)"},
    CLI_FLAG_THREADS(RespArgs, threads, "threads"),
    {"--quiet", CLI_TRUE, CLI_AT(RespArgs, quiet), .help = "no progress output"},
    {0}};

const CliSpec cmd_respond_spec = {"respond", usage, flags, tail, CLI_ONE_INPUT(RespArgs, ckpt)};

bool cli_prompt_style(const RtCkpt *c, const char *flag, RtPromptStyle *s, IrError *err)
{
    const char *name = flag ? flag : c ? rt_ckpt_meta_get(c, "inst.prompt_style") : NULL;
    if (rt_prompt_style_parse(name ? name : "alpaca", s))
        return true;
    ir_error(err, "unknown prompt style '%s'", name);
    ir_error_hint(err, "--prompt-style alpaca or phi3");
    return false;
}

static int check_args(const RespArgs *a)
{
    if (!a->ckpt)
        return cli_usage_error("respond", "missing CKPT (a checkpoint of a GPT)");
    if (!a->data)
        return cli_usage_error("respond", "missing --data FILE");
    if (!a->out)
        return cli_usage_error("respond", "missing --out FILE.json");
    const char *s = a->split ? a->split : "test";
    if (strcmp(s, "test") && strcmp(s, "val") && strcmp(s, "train") && strcmp(s, "all"))
        return cli_usage_error("respond", "unknown --split '%s' (test, val, train or all)", s);
    return -1;
}

/* The entries of the chosen split, borrowed from d. */
static int64_t pick(const RespArgs *a, const RtInstData *d, const RtInstEntry ***e)
{
    const char *s = a->split ? a->split : "test";
    if (!strcmp(s, "all")) {
        *e = malloc(sizeof **e * (size_t)(d->set.n + 1));
        for (int64_t i = 0; i < d->set.n; i++)
            (*e)[i] = &d->set.e[i];
        return d->set.n;
    }
    const RtInstSplit *sp = !strcmp(s, "train") ? &d->train : !strcmp(s, "val") ? &d->val
                                                                                : &d->test;
    *e = malloc(sizeof **e * (size_t)(sp->n + 1));
    for (int64_t i = 0; i < sp->n; i++)
        (*e)[i] = sp->ex[i].entry;
    return sp->n;
}

static bool respond(const RespArgs *a, CliCkptModel *m, IrError *err)
{
    RtInstOptions io = rt_inst_defaults();
    RtRespondOptions ro = rt_respond_defaults();
    if (!cli_prompt_style(m->c, a->style, &io.style, err))
        return false;
    io.data_path = a->data;
    io.shuffle_split = a->shuffle_split;
    io.seed = (uint64_t)a->seed;
    io.tok = m->tok;
    io.truncate = true;   /* the lengths matter to training, not here */
    io.max_len = m->window;
    RtInstData d;
    if (!rt_inst_load(&io, &d, err))
        return false;
    const RtInstEntry **e;
    int64_t n = pick(a, &d, &e);
    char **resp = calloc((size_t)n + 1, sizeof *resp);
    ro.style = io.style;
    ro.max_new = (int)a->max_new;
    ro.temperature = a->temperature;
    ro.top_k = (int)a->top_k;
    ro.seed = (uint64_t)a->seed;
    ro.progress = a->quiet ? NULL : stderr;
    RtExecOptions eo = {.nthreads = a->threads};
    RtGen *gen = rt_gen_new(m->model->graph, m->window, true, &eo, err);
    bool ok = gen && rt_gen_params_from_ckpt(gen, m->c, err) &&
              rt_inst_respond(gen, m->tok, e, n, &ro, resp, err) &&
              rt_inst_write_responses(a->out, e, n, resp, err);
    if (ok && !a->quiet)
        printf("%lld responses (%s split, %s prompt) in %s\n", (long long)n,
               a->split ? a->split : "test", rt_prompt_style_name(io.style), a->out);
    for (int64_t i = 0; i < n; i++)
        free(resp[i]);
    free(resp);
    free(e);
    rt_gen_free(gen);
    rt_inst_free(&d);
    return ok;
}

int cmd_respond(int argc, char **argv)
{
    RespArgs a = {.max_new = 256, .seed = 123};
    int r = cli_parse(&cmd_respond_spec, argc, argv, &a);
    if (r < 0)
        r = check_args(&a);
    if (r >= 0)
        return r;
    IrError err = {0};
    CliCkptModel m;
    bool ok = cli_ckpt_model_open(&m, a.ckpt, &a.model, a.bpe_dir, &err) &&
              respond(&a, &m, &err);
    cli_ckpt_model_close(&m);
    return ok ? 0 : cli_fail(&err);
}
