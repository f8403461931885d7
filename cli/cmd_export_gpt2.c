/* cmd_export_gpt2.c — `gradc export-gpt2`: a gradc GPT-2 checkpoint in the Hugging Face layout.
 *
 * The inverse of import-gpt2 (runtime/rt_hf.c holds the mapping both ways):
 * the checkpoint's params become wte, wpe, h.N.* (Conv1D [in, out], q|k|v
 * fused into c_attn) and ln_f, F32, LoRA adapters folded into their
 * weights (rt_lora_merged, through rt_hf_export), with metadata {"format": "pt"} as
 * Hugging Face writes it.  lm_head.weight is left out when the head is tied
 * (GPT-2's own files hold none; transformers ties it on load) and written
 * when a model trained with tie_embeddings=0 has its own.  With
 * --config-out it also writes the config.json that transformers needs.
 */
#include "cli.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_hf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc export-gpt2 CKPT --out MODEL.safetensors [--prefix] [--config-out FILE]\n"
    "\n"
    "Writes the GPT-2 of a gradc checkpoint (import-gpt2's, train's or a fine-tuned\n"
    "one of models/gpt2-small.json's shape) in the Hugging Face layout, F32:\n"
    "wte, wpe, h.N.ln_1, h.N.attn.c_attn (q, k, v fused, Conv1D [in, out]),\n"
    "h.N.attn.c_proj, h.N.ln_2, h.N.mlp.c_fc, h.N.mlp.c_proj, ln_f.  A tied output\n"
    "head is left out (as in GPT-2's own files), an untied one is lm_head.weight; a\n"
    "model without attention biases (qkv_bias=0) gets zero c_attn.bias.  LoRA\n"
    "adapters are folded into their weights (W + s.(A.B)^T; a tied head's adapters\n"
    "give an untied lm_head.weight); AdamW moments are not exported.  A param that\n"
    "GPT-2 lacks (a classifier head) or a missing one is an error that names it.\n"
    "import-gpt2 of the result gives back the checkpoint import-gpt2 wrote, byte\n"
    "for byte.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc export-gpt2 gpt2.safetensors --out hf/model.safetensors --config-out "
    "hf/config.json\n"
    "  gradc export-gpt2 runs/gpt2-small/ckpt.safetensors --out model.safetensors --prefix\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct ExportArgs {
    const char *ckpt, *out, *config_out;
    bool prefix, quiet;
} ExportArgs;

static const CliFlag flags[] = {
    {"--out", CLI_STR, CLI_AT(ExportArgs, out), .meta = "FILE",
     .help = "the safetensors file to write (atomically; required)"},
    {"--prefix", CLI_TRUE, CLI_AT(ExportArgs, prefix),
     .help = "name every tensor 'transformer.NAME' (GPT2LMHeadModel's state_dict) instead of "
             "NAME (GPT2Model's, as GPT-2's own model.safetensors)"},
    {"--config-out", CLI_STR, CLI_AT(ExportArgs, config_out), .meta = "FILE",
     .help = "also write a Hugging Face config.json for the model (n_head from the "
             "checkpoint's model)"},
    {"--quiet", CLI_TRUE, CLI_AT(ExportArgs, quiet), .help = "no progress output"},
    {0}};

const CliSpec cmd_export_gpt2_spec = {"export-gpt2", usage, flags, tail,
                                      offsetof(ExportArgs, ckpt),
                                      "one checkpoint at a time ('%s' and '%s')", NULL};

static int parse_args(int argc, char **argv, ExportArgs *a)
{
    int r = cli_parse(&cmd_export_gpt2_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->ckpt)
        return cli_usage_error("export-gpt2", "missing CKPT (a gradc checkpoint)");
    return a->out ? -1 : cli_usage_error("export-gpt2", "missing --out FILE");
}

/* ---------------------------------------------------------------- config.json */

/* The checkpoint's n_heads: its model.json at its model.sets. */
static bool ckpt_heads(const RtCkpt *c, int64_t *heads, IrError *err)
{
    const char *json = rt_ckpt_meta_get(c, "model.json");
    if (!json) {
        ir_error(err, "checkpoint '%s' holds no model (metadata model.json), so n_head is "
                 "unknown", c->path);
        ir_error_hint(err, "leave out --config-out and write config.json by hand");
        return false;
    }
    cJSON *o = cJSON_Parse(rt_ckpt_meta_get(c, "model.sets") ?: "{}");
    FeSet sets[CLI_MAX_SETS];
    int n = 0;
    for (const cJSON *e = o ? o->child : NULL; e && n < CLI_MAX_SETS; e = e->next)
        if (cJSON_IsString(e))
            sets[n++] = (FeSet){e->string, e->valuestring};
    FeOptions fo = {sets, n};
    char name[4200];
    snprintf(name, sizeof name, "%s (metadata model.json)", c->path);
    FeModel *m = fe_load_string(json, name, &fo, err);
    double h = 0;
    bool ok = m && fe_config(m, "n_heads", &h) && h >= 1;
    if (m && !ok)
        ir_error(err, "checkpoint '%s': its model has no n_heads", c->path);
    *heads = (int64_t)h;
    if (m)
        fe_model_free(m);
    cJSON_Delete(o);
    return ok;
}

typedef struct ConfigOut {
    RtHfConfig c;
    bool tied;
} ConfigOut;

static void print_config(FILE *f, const void *arg)
{
    const RtHfConfig *c = &((const ConfigOut *)arg)->c;
    bool tied = ((const ConfigOut *)arg)->tied;
    fprintf(f, "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
            "  \"vocab_size\": %lld,\n  \"n_positions\": %lld,\n  \"n_ctx\": %lld,\n"
            "  \"n_embd\": %lld,\n  \"n_layer\": %lld,\n  \"n_head\": %lld,\n"
            "  \"n_inner\": null,\n  \"activation_function\": \"gelu_new\",\n"
            "  \"layer_norm_epsilon\": 1e-05,\n  \"tie_word_embeddings\": %s,\n"
            "  \"bos_token_id\": 50256,\n  \"eos_token_id\": 50256\n}\n",
            (long long)c->vocab, (long long)c->ctx, (long long)c->ctx, (long long)c->dim,
            (long long)c->layers, (long long)c->heads, tied ? "true" : "false");
}

/* ---------------------------------------------------------------- export */

static bool has_tensor(const RtHfTensors *ts, const char *name)
{
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name))
            return true;
    return false;
}

static bool write_hf(const ExportArgs *a, const RtHfTensors *ts, IrError *err)
{
    RtCkptWriter *w = rt_ckpt_writer_new();
    for (int i = 0; i < ts->n; i++)
        rt_ckpt_add(w, ts->t[i].name, RT_DT_F32, ts->t[i].rank, ts->t[i].shape, ts->t[i].data);
    rt_ckpt_meta(w, "format", "pt");
    bool ok = rt_ckpt_write(w, a->out, err);
    rt_ckpt_writer_free(w);
    return ok;
}

static void report(const ExportArgs *a, const RtHfConfig *c, const RtHfTensors *ts, double ms)
{
    int64_t n = 0;
    for (int i = 0; i < ts->n; i++)
        n += ts->t[i].rank == 2 ? ts->t[i].shape[0] * ts->t[i].shape[1] : ts->t[i].shape[0];
    printf("export-gpt2: %s -> %s: %d tensors%s, %s\n", a->ckpt, a->out, ts->n,
           a->prefix ? " (prefix transformer.)" : "",
           has_tensor(ts, "lm_head.weight") ? "untied lm_head.weight" : "head tied to wte");
    printf("  n_embd %lld, n_layer %lld, n_positions %lld, vocab_size %lld\n",
           (long long)c->dim, (long long)c->layers, (long long)c->ctx, (long long)c->vocab);
    printf("  %lld weights, %.1f MB f32, in %.0f ms\n", (long long)n, 4e-6 * (double)n, ms);
}

static bool export(const ExportArgs *a, IrError *err)
{
    double t0 = cli_now_ms();
    RtCkpt *c = rt_ckpt_read(a->ckpt, err);
    if (!c)
        return false;
    rt_ckpt_print_warnings(c, stderr);
    RtHfTensors ts = {0};
    RtHfConfig cfg;
    bool ok = rt_hf_export(c, a->prefix, NULL, NULL, &ts, &cfg, err) &&
              (!a->config_out || ckpt_heads(c, &cfg.heads, err)) && write_hf(a, &ts, err);
    if (ok && a->config_out) {
        ConfigOut co = {cfg, !has_tensor(&ts, "lm_head.weight")};
        ok = cli_write_out(a->config_out, print_config, &co) == 0;
    }
    if (ok && !a->quiet)
        report(a, &cfg, &ts, cli_now_ms() - t0);
    rt_hf_tensors_free(&ts);
    rt_ckpt_free(c);
    return ok;
}

int cmd_export_gpt2(int argc, char **argv)
{
    ExportArgs a = {0};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    IrError err = {0};
    if (export(&a, &err))
        return 0;
    return err.set ? cli_fail(&err) : 1;   /* cli_write_out reported its own error */
}
