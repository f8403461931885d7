/* train_model.c — the model of `gradc train`, loaded by the command.
 *
 * The runtime reads no model files: only the cli uses the frontend (the
 * layering of the README, cli -> runtime -> codegen -> passes -> ir <-
 * frontend, checked by tests/scripts/layering.sh).  So `gradc train` loads
 * the model here and hands rt_train_new an RtTrainModel: the forward graph,
 * the config's context_length, and what a checkpoint stores so that it loads
 * on its own: the model file with its base files merged (model.json), its
 * path (model.path) and the --set values in force (model.sets, a JSON object
 * of strings).  With --resume or --init-from and no MODEL.json, the model
 * is the checkpoint's model.json with its model.sets, then the command
 * line's.
 */
#include "cli/train_model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_set(CliTrainModel *m, const char *key, const char *value)
{
    m->sets[m->nsets++] = (FeSet){strdup(key), strdup(value)};
}

/* The checkpoint's model.sets, before the command line's. */
static bool ckpt_sets(CliTrainModel *m, const char *json, const char *path, IrError *err)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (json && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        ir_error(err, "checkpoint '%s': metadata model.sets is not a JSON object", path);
        return false;
    }
    for (const cJSON *e = o ? o->child : NULL; e && m->nsets < CLI_TRAIN_CKPT_SETS; e = e->next)
        if (cJSON_IsString(e))
            add_set(m, e->string, e->valuestring);
    cJSON_Delete(o);
    return true;
}

/* "{\"k\":\"v\",...}" of the --set values in force: the last of a key wins. */
static char *sets_json(const CliTrainModel *m)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < m->nsets; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, m->sets[i].key);
        cJSON_AddStringToObject(o, m->sets[i].key, m->sets[i].value);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static bool load_fe(CliTrainModel *m, const char *path, const CliModelArgs *flags,
                    const RtCkpt *c, IrError *err)
{
    const char *json = c ? rt_ckpt_meta_get(c, "model.json") : NULL;
    if (!path && !json) {
        if (c)
            ir_error(err, "checkpoint '%s' holds no model file (metadata model.json)", c->path);
        else
            ir_error(err, "no model: pass MODEL.json (or --resume a gradc checkpoint)");
        ir_error_hint(err, "pass MODEL.json, the model the checkpoint's weights are of");
        return false;
    }
    if (!path && !ckpt_sets(m, rt_ckpt_meta_get(c, "model.sets"), c->path, err))
        return false;
    for (int i = 0; i < flags->nsets; i++)
        add_set(m, flags->sets[i].key, flags->sets[i].value);
    FeOptions fo = {m->sets, m->nsets};
    if (path) {
        m->name = strdup(path);
        m->fe = fe_load_file(path, &fo, err);
        m->json = m->fe ? fe_flatten_file(path, err) : NULL;
        return m->fe && m->json;
    }
    /* errors in it are the checkpoint's, not the file model.path names */
    char name[4200];
    snprintf(name, sizeof name, "%s (metadata model.json)", c->path);
    m->name = strdup(rt_ckpt_meta_get(c, "model.path") ?: "checkpoint");
    m->json = strdup(json);
    m->fe = fe_load_string(json, name, &fo, err);
    return m->fe != NULL;
}

bool cli_train_model_load(CliTrainModel *m, const char *path, const CliModelArgs *flags,
                          RtTrainOptions *o, IrError *err)
{
    *m = (CliTrainModel){0};
    if (o->resume) {
        if (!(m->ckpt = rt_ckpt_read(o->resume, err)))
            return false;
        rt_ckpt_print_warnings(m->ckpt, stderr);
        if (!rt_train_ckpt_check(m->ckpt, err))
            return false;
    }
    if (!load_fe(m, path, flags, m->ckpt ? m->ckpt : o->init_from_ckpt, err))
        return false;
    m->sets_json = sets_json(m);
    double ctx = 0;
    bool has_ctx = fe_config(m->fe, "context_length", &ctx);
    o->model = (RtTrainModel){.graph = m->fe->graph, .json = m->json, .name = m->name,
                              .sets = m->sets_json, .context_length = (int64_t)ctx,
                              .has_context_length = has_ctx};
    o->resume_ckpt = m->ckpt;
    return true;
}

void cli_train_model_free(CliTrainModel *m)
{
    if (m->fe)
        fe_model_free(m->fe);
    rt_ckpt_free(m->ckpt);
    for (int i = 0; i < m->nsets; i++)
        free((char *)m->sets[i].key), free((char *)m->sets[i].value);
    free(m->json);
    free(m->name);
    free(m->sets_json);
    *m = (CliTrainModel){0};
}
