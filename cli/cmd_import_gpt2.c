/* cmd_import_gpt2.c — `gradc import-gpt2`: a Hugging Face GPT-2 into a gradc checkpoint.
 *
 * runtime/rt_hf.c does the mapping (names, Conv1D transposes, the fused
 * q|k|v split, F16/BF16); this command picks the sizes (config.json or the
 * shapes), checks the converted params against the model itself — the
 * built-in copy of models/gpt2-small.json at those sizes with qkv_bias=1
 * and tie_embeddings=1, loaded through the frontend — and writes the
 * checkpoint with the metadata that `generate`, `train --init-from` and
 * `finetune --init-from` read: model.json, model.path, model.sets and
 * tokenizer gpt2.  Nothing of the input's path or time goes in, so the same
 * weights always give the same bytes (export then import round-trips).
 */
#include "cli.h"
#include "cli/gpt2_model.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_hf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc import-gpt2 MODEL.safetensors [--config config.json] --out CKPT\n"
    "\n"
    "Reads a GPT-2 in the Hugging Face layout (wte, wpe, h.N.ln_1, h.N.attn.c_attn\n"
    "(q, k, v fused, Conv1D [in, out]), h.N.attn.c_proj, h.N.ln_2, h.N.mlp.c_fc,\n"
    "h.N.mlp.c_proj, ln_f; every name optionally prefixed 'transformer.'; F32, F16\n"
    "or BF16) and writes a gradc checkpoint of models/gpt2-small.json with\n"
    "qkv_bias=1 and tie_embeddings=1 at its sizes, which `gradc generate`,\n"
    "`gradc train --init-from` and `gradc finetune classify --init-from` take.\n"
    "The sizes come from config.json when given, else from the shapes with GPT-2's\n"
    "head counts (n_embd 768: 12, 1024: 16, 1280: 20, 1600: 25).  An lm_head.weight\n"
    "must equal wte.weight; the causal-mask buffers h.N.attn.bias and\n"
    "h.N.attn.masked_bias are ignored; any other tensor, or a missing or misshaped\n"
    "one, is an error that names it.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc import-gpt2 gpt2/model.safetensors --out gpt2.safetensors\n"
    "  gradc import-gpt2 gpt2-medium/model.safetensors --config gpt2-medium/config.json \\\n"
    "      --out gpt2-medium.safetensors\n"
    "  gradc generate gpt2.safetensors --prompt 'Every effort moves you'\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct ImportArgs {
    const char *in, *config, *out;
    bool quiet;
} ImportArgs;

static const CliFlag flags[] = {
    {"--out", CLI_STR, CLI_AT(ImportArgs, out), .meta = "CKPT",
     .help = "the gradc checkpoint to write (atomically; required)"},
    {"--config", CLI_STR, CLI_AT(ImportArgs, config), .meta = "FILE",
     .def = "sizes from the shapes",
     .help = "the model's Hugging Face config.json (n_embd, n_layer, n_head, n_positions, "
             "vocab_size); needed when n_embd is not one of GPT-2's four"},
    {"--quiet", CLI_TRUE, CLI_AT(ImportArgs, quiet), .help = "no progress output"},
    {0}};

const CliSpec cmd_import_gpt2_spec = {"import-gpt2", usage, flags, tail,
                                      CLI_ONE_INPUT(ImportArgs, in)};

static int parse_args(int argc, char **argv, ImportArgs *a)
{
    int r = cli_parse(&cmd_import_gpt2_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->in)
        return cli_usage_error("import-gpt2", "missing MODEL.safetensors (a Hugging Face GPT-2)");
    return a->out ? -1 : cli_usage_error("import-gpt2", "missing --out CKPT");
}

/* ---------------------------------------------------------------- the checkpoint */

static int64_t total_params(const RtHfTensors *ts)
{
    int64_t n = 0;
    for (int i = 0; i < ts->n; i++)
        n += ts->t[i].rank == 2 ? ts->t[i].shape[0] * ts->t[i].shape[1] : ts->t[i].shape[0];
    return n;
}

static bool write_ckpt(const ImportArgs *a, const RtHfTensors *ts, const CliGpt2Model *m,
                       IrError *err)
{
    RtCkptWriter *w = rt_ckpt_writer_new();
    for (int i = 0; i < ts->n; i++)
        rt_ckpt_add(w, ts->t[i].name, RT_DT_F32, ts->t[i].rank, ts->t[i].shape, ts->t[i].data);
    rt_ckpt_meta(w, "format", CLI_GPT2_WEIGHTS_FORMAT);
    rt_ckpt_meta(w, "model.json", m->json);
    rt_ckpt_meta(w, "model.path", CLI_GPT2_MODEL_PATH);
    rt_ckpt_meta(w, "model.sets", m->sets_json);
    rt_ckpt_meta(w, "tokenizer", "gpt2");
    rt_ckpt_meta(w, "import", "gradc import-gpt2 (Hugging Face GPT-2 layout)");
    bool ok = rt_ckpt_write(w, a->out, err);
    rt_ckpt_writer_free(w);
    return ok;
}

static void report(const ImportArgs *a, const RtHfConfig *c, const RtHfTensors *ts,
                   const RtCkpt *hf, double ms)
{
    int64_t n = total_params(ts);
    printf("import-gpt2: %s: %d tensors -> %d params of models/gpt2-small.json\n", a->in,
           hf->n, ts->n);
    printf("  n_embd %lld, n_layer %lld, n_head %lld (%s), n_positions %lld, vocab_size %lld\n",
           (long long)c->dim, (long long)c->layers, (long long)c->heads,
           a->config ? "config.json" : "GPT-2's table", (long long)c->ctx,
           (long long)c->vocab);
    printf("  %lld weights, %.1f MB f32, written to %s in %.0f ms\n", (long long)n,
           4e-6 * (double)n, a->out, ms);
}

static bool import(const ImportArgs *a, IrError *err)
{
    double t0 = cli_now_ms();
    RtHfConfig given, cfg;
    if (a->config && !rt_hf_config_read(a->config, &given, err))
        return false;
    RtCkpt *hf = rt_ckpt_read(a->in, err);
    if (!hf)
        return false;
    rt_ckpt_print_warnings(hf, stderr);
    RtHfTensors ts = {0};
    CliGpt2Model m = {0};
    bool ok = rt_hf_infer(hf, a->config ? &given : NULL, &cfg, err) &&
              rt_hf_import(hf, &cfg, &ts, err) && cli_gpt2_model_load(&m, &cfg, err) &&
              cli_gpt2_model_check(&m, &ts, err) && write_ckpt(a, &ts, &m, err);
    if (ok && !a->quiet)
        report(a, &cfg, &ts, hf, cli_now_ms() - t0);
    cli_gpt2_model_free(&m);
    rt_hf_tensors_free(&ts);
    rt_ckpt_free(hf);
    return ok;
}

int cmd_import_gpt2(int argc, char **argv)
{
    ImportArgs a = {0};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    IrError err = {0};
    return import(&a, &err) ? 0 : cli_fail(&err);
}
