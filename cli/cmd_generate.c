/* cmd_generate.c — `gradc generate`: sample text from a checkpoint.
 *
 * A training checkpoint carries its model file, --set values and tokenizer
 * (rt_train_io.c), so this command needs nothing but the checkpoint (and,
 * for the GPT-2 tokenizer, the BPE files).  It compiles the KV-cached decode
 * step of the model (passes/decode.c) unless --no-kv-cache, copies the weights
 * in, and streams the continuation of --prompt to stdout token by token.
 */
#include "cli.h"
#include "cli/ckpt_model.h"
#include "runtime/rt_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc generate CKPT --prompt TEXT [--max-new N] [--temperature T]\n"
    "                      [--top-k K] [--seed S] [--no-kv-cache] [--bpe-dir DIR]\n"
    "                      [--set k=v ...] [--threads N] [--stats]\n"
    "\n"
    "Continues TEXT with a model trained by `gradc train` and prints the prompt\n"
    "and the new text.  Each new token is chosen from the logits as the book's\n"
    "generate() does: keep the top K, divide by T, softmax, draw; T = 0 is greedy.\n"
    "Generation stops after N tokens or at <|endoftext|>.  The same seed gives the\n"
    "same text.  Each token costs one decode step over a cache of the earlier\n"
    "keys and values (O(T) per token, not a whole forward pass).\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "example:\n"
    "  gradc generate runs/gpt-mini/ckpt.safetensors --prompt 'Call me' \\\n"
    "      --max-new 60 --temperature 0.8 --top-k 40 --seed 1\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct GenArgs {
    const char *ckpt, *prompt, *bpe_dir;
    long long max_new, top_k, seed, threads;
    double temperature;
    bool no_kv, stats;
    CliModelArgs model;
} GenArgs;

static const CliFlag flags[] = {
    {"--prompt", CLI_STR, CLI_AT(GenArgs, prompt), .meta = "TEXT",
     .help = "the text to continue (required)"},
    {"--max-new", CLI_INT, CLI_AT(GenArgs, max_new), .meta = "N", .def = "50",
     .help = "tokens to add"},
    {"--temperature", CLI_NUM, CLI_AT(GenArgs, temperature), .meta = "T", .def = "0",
     .help = "0: greedy; higher: more random"},
    {"--top-k", CLI_INT, CLI_AT(GenArgs, top_k), .meta = "K", .def = "0: all",
     .help = "sample among the K most likely tokens"},
    {"--seed", CLI_INT, CLI_AT(GenArgs, seed), .meta = "S", .def = "123",
     .help = "seed of the draws"},
    {"--no-kv-cache", CLI_TRUE, CLI_AT(GenArgs, no_kv),
     .help = "recompute the whole window for every token"},
    {"--bpe-dir", CLI_STR, CLI_AT(GenArgs, bpe_dir), .meta = "DIR", .def = "the data cache",
     .help = "encoder.json + vocab.bpe"},
    {"--set", CLI_CALL, CLI_AT(GenArgs, model), .fn = cli_set_fn, .meta = "k=v",
     .help = "override the checkpoint's model config (repeatable)"},
    CLI_FLAG_THREADS(GenArgs, threads, "threads"),
    {"--stats", CLI_TRUE, CLI_AT(GenArgs, stats),
     .help = "print tokens/s and whether the KV cache was used to stderr"},
    {0}};

const CliSpec cmd_generate_spec = {"generate", usage, flags, tail, offsetof(GenArgs, ckpt),
                                   "one checkpoint at a time ('%s' and '%s')", NULL};

/* -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, GenArgs *a)
{
    int r = cli_parse(&cmd_generate_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->ckpt)
        return cli_usage_error("generate", "missing CKPT (a checkpoint of gradc train)");
    return a->prompt ? -1 : cli_usage_error("generate", "missing --prompt TEXT");
}

/* ---------------------------------------------------------------- the model */

typedef struct Gen {
    CliCkptModel m;
    RtGen *gen;
} Gen;

static bool load(Gen *g, const GenArgs *a, IrError *err)
{
    if (!cli_ckpt_model_open(&g->m, a->ckpt, &a->model, a->bpe_dir, err))
        return false;
    RtExecOptions eo = {.nthreads = (int)a->threads};
    g->gen = rt_gen_new(g->m.model->graph, g->m.window, !a->no_kv, &eo, err);
    return g->gen && rt_gen_params_from_ckpt(g->gen, g->m.c, err);
}

static void unload(Gen *g)
{
    rt_gen_free(g->gen);
    cli_ckpt_model_close(&g->m);
}

/* ---------------------------------------------------------------- output */

typedef struct Stream {
    const RtTokenizer *tok;
    int32_t eot;
} Stream;

/* Prints each token as it comes (bytes of a character split over two
 * tokens simply arrive in two writes). */
static void print_token(void *ctx, int32_t id)
{
    const Stream *s = ctx;
    if (id == s->eot)
        return;
    size_t len;
    char *text = rt_tokenizer_decode(s->tok, &id, 1, &len, NULL);
    if (text)
        fwrite(text, 1, len, stdout);
    free(text);
    fflush(stdout);
}

static bool generate(Gen *g, const GenArgs *a, IrError *err)
{
    int32_t *ids, *out = NULL;
    size_t n, nout = 0;
    if (!rt_tokenizer_encode(g->m.tok, a->prompt, strlen(a->prompt), true, &ids, &n, err))
        return false;
    if (n == 0) {
        free(ids);
        ir_error(err, "--prompt is empty");
        ir_error_hint(err, "give at least one character of text to continue");
        return false;
    }
    RtSampler s;
    rt_sampler_init(&s, a->temperature, (int)a->top_k, (uint64_t)a->seed);
    Stream st = {g->m.tok, rt_tokenizer_eot(g->m.tok)};
    RtGenOptions go = {(int)a->max_new, st.eot, print_token, &st, NULL};
    fputs(a->prompt, stdout);
    double t0 = cli_now_ms();
    bool ok = rt_gen_run(g->gen, &s, ids, n, &go, &out, &nout, err);
    double ms = cli_now_ms() - t0;
    putchar('\n');
    if (ok && a->stats)
        fprintf(stderr, "generate: %zu prompt + %zu new tokens in %.0f ms (%.1f tokens/s), "
                "%s\n", n, nout, ms, ms > 0 ? 1e3 * (double)(n + nout) / ms : 0,
                rt_gen_has_kv(g->gen) ? "KV-cached decode step" : "full forward per token");
    free(ids);
    free(out);
    return ok;
}

int cmd_generate(int argc, char **argv)
{
    GenArgs a = {.max_new = 50, .seed = 123};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    IrError err = {0};
    Gen g = {0};
    bool ok = load(&g, &a, &err) && generate(&g, &a, &err);
    unload(&g);
    if (ok)
        return 0;
    ir_error_print(&err, stderr);
    return strncmp(err.msg, "internal", 8) ? 1 : 2;
}
