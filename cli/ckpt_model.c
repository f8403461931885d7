/* ckpt_model.c — a checkpoint's own model and tokenizer (ckpt_model.h).
 *
 * A checkpoint of gradc train, import-gpt2 or finetune records its model
 * file (metadata model.json, bases merged), the --set values it ran with
 * (model.sets) and its tokenizer; this loads them as they were, with the
 * command line's --set values last so that they win.  LoRA adapters in the
 * checkpoint need no pass here: rt_exec_params_from_ckpt folds them into
 * their weights when the graph has none.
 */
#include "cli/ckpt_model.h"

#include "runtime/rt_train.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool no_model(const RtCkpt *c, IrError *err)
{
    ir_error(err, "checkpoint '%s' holds no model file (metadata model.json)", c->path);
    ir_error_hint(err, "use a checkpoint written by `gradc train`, `gradc finetune` or "
                  "`gradc import-gpt2`");
    return false;
}

/* The checkpoint's --set values (model.sets, a JSON object of strings),
 * then the command line's. */
static void collect_sets(CliCkptModel *m, const CliModelArgs *a)
{
    cJSON *o = cJSON_Parse(rt_ckpt_meta_get(m->c, "model.sets") ?: "{}");
    for (const cJSON *e = o ? o->child : NULL; e && m->nsets < CLI_MAX_SETS; e = e->next)
        if (cJSON_IsString(e))
            m->sets[m->nsets++] = (FeSet){strdup(e->string), strdup(e->valuestring)};
    cJSON_Delete(o);
    for (int i = 0; a && i < a->nsets; i++)
        m->sets[m->nsets++] = (FeSet){strdup(a->sets[i].key), strdup(a->sets[i].value)};
}

bool cli_ckpt_model_open(CliCkptModel *m, const char *path, const CliModelArgs *sets,
                         const char *bpe_dir, IrError *err)
{
    *m = (CliCkptModel){0};
    if (!(m->c = rt_ckpt_read(path, err)))
        return false;
    rt_ckpt_print_warnings(m->c, stderr);
    const char *json = rt_ckpt_meta_get(m->c, "model.json");
    if (!json)
        return no_model(m->c, err);
    collect_sets(m, sets);
    FeOptions fo = {m->sets, m->nsets};
    char name[4200];   /* errors in it are the checkpoint's, not the file model.path names */
    snprintf(name, sizeof name, "%s (metadata model.json)", path);
    if (!(m->model = fe_load_string(json, name, &fo, err)) ||
        !(m->tok = rt_ckpt_tokenizer(m->c, m->model->graph, bpe_dir, err)))
        return false;
    double ctx;
    m->window = fe_config(m->model, "context_length", &ctx) ? (int64_t)ctx : 256;
    return true;
}

void cli_ckpt_model_close(CliCkptModel *m)
{
    rt_tokenizer_free(m->tok);
    if (m->model)
        fe_model_free(m->model);
    rt_ckpt_free(m->c);
    for (int i = 0; i < m->nsets; i++)
        free((char *)m->sets[i].key), free((char *)m->sets[i].value);
    *m = (CliCkptModel){0};
}
