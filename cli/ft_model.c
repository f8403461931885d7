/* ft_model.c — the model of `gradc finetune`: a classifier at the size of
 * the checkpoint it starts from.
 *
 * A pretrained checkpoint (gradc train, import-gpt2) records its model as
 * model.json (the file, bases merged) and model.sets (the --set values).
 * The sizes are read from that model at those sets, not from model.sets
 * alone, since a model file such as gpt-mini.json sets them in its config.
 * They become --set values of the classifier model file, before n_classes
 * (the data's label count) and the command line's --set values, which win;
 * drop_rate is not carried over (the book fine-tunes without dropout).
 */
#include "cli/ft_model.h"
#include "runtime/rt_lora.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const size_keys[] = {"vocab_size", "context_length", "emb_dim", "n_heads",
                                        "n_layers", "qkv_bias", "tie_embeddings"};
#define NSIZE (int)(sizeof size_keys / sizeof size_keys[0])

static bool check_tokenizer(const RtCkpt *c, IrError *err)
{
    const char *t = rt_ckpt_meta_get(c, "tokenizer");
    if (!t || !strcmp(t, "gpt2"))
        return true;
    ir_error(err, "checkpoint '%s' was trained with the %s tokenizer; fine-tuning uses "
             "GPT-2's BPE", c->path, t);
    ir_error_hint(err, "start from a checkpoint trained with --tokenizer gpt2 (or imported "
                  "with gradc import-gpt2)");
    return false;
}

/* The checkpoint's model.sets as FeSets (strings owned by the cJSON). */
static int ckpt_sets(const cJSON *o, FeSet *sets, int cap)
{
    int n = 0;
    for (const cJSON *e = o ? o->child : NULL; e && n < cap; e = e->next)
        if (cJSON_IsString(e))
            sets[n++] = (FeSet){e->string, e->valuestring};
    return n;
}

FeModel *cli_ft_ckpt_model(const RtCkpt *c, IrError *err)
{
    const char *json = rt_ckpt_meta_get(c, "model.json");
    if (!json) {
        ir_error(err, "checkpoint '%s' does not record its model (metadata model.json)",
                 c->path);
        ir_error_hint(err, "start from a checkpoint of gradc train or gradc import-gpt2");
        return NULL;
    }
    cJSON *o = cJSON_Parse(rt_ckpt_meta_get(c, "model.sets") ?: "{}");
    FeSet sets[64];
    FeOptions fo = {sets, ckpt_sets(o, sets, 64)};
    char name[4200];
    snprintf(name, sizeof name, "%s (metadata model.json)", c->path);
    FeModel *fe = fe_load_string(json, name, &fo, err);
    cJSON_Delete(o);
    return fe;
}

static void add_set(CliFtModel *m, const char *key, const char *value)
{
    m->sets[m->nsets++] = (FeSet){key, value};
}

/* The flag's value of key, else NULL. */
static const char *flag_set(const CliFtModelArgs *a, const char *key)
{
    const char *v = NULL;
    for (int i = 0; i < a->model.nsets; i++)
        if (!strcmp(a->model.sets[i].key, key))
            v = a->model.sets[i].value;
    return v;
}

static bool read_sizes(CliFtModel *m, const CliFtModelArgs *a, IrError *err)
{
    FeModel *fe = cli_ft_ckpt_model(m->init, err);
    if (!fe)
        return false;
    for (int k = 0; k < NSIZE; k++) {
        double v;
        if (!fe_config(fe, size_keys[k], &v))
            continue;
        snprintf(m->values[m->nsize], sizeof m->values[0], "%.17g", v);
        add_set(m, size_keys[k], m->values[m->nsize++]);
    }
    fe_model_free(fe);
    for (int i = 0; i < m->nsets; i++) {
        const char *v = flag_set(a, m->sets[i].key);
        v = v ? v : m->sets[i].value;
        if (!strcmp(m->sets[i].key, "context_length"))
            m->context_length = atoll(v);
        if (!strcmp(m->sets[i].key, "n_layers"))
            m->n_layers = atoll(v);
    }
    return true;
}

bool cli_ft_model_open(CliFtModel *m, const CliFtModelArgs *a, IrError *err)
{
    *m = (CliFtModel){0};
    if (!(m->init = rt_ckpt_read(a->init, err)))
        return false;
    rt_ckpt_print_warnings(m->init, stderr);
    return check_tokenizer(m->init, err) && read_sizes(m, a, err) &&
           (m->tok = rt_tokenizer_gpt2(a->bpe_dir, err)) != NULL;
}

/* "{\"k\":\"v\",...}" of the sets in force: the last of a key wins. */
static char *sets_json(const CliFtModel *m)
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

/* models/gpt2-classifier.json from the working folder, else from the
 * source tree the binary was built in (build/gradc -> models/). */
static const char *default_model(char *buf, size_t cap)
{
    static const char rel[] = "models/gpt2-classifier.json";
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (access(rel, R_OK) == 0 || n <= 0)
        return rel;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    snprintf(buf, cap, "%s/../%s", exe, rel);
    return access(buf, R_OK) == 0 ? buf : rel;
}

/* The model's FeModel loaded (from m->sets) and named: the common tail of
 * both loaders, which also adds the LoRA adapters. */
static bool finish_load(CliFtModel *m, const CliFtModelArgs *a, IrError *err)
{
    m->sets_json = sets_json(m);
    if (!cli_lora_apply(m->fe->graph, &a->model.lora, err))
        return false;
    m->lora_json = rt_lora_meta_json(m->fe->graph, &a->model.lora);
    m->model = (RtFtModel){m->fe->graph, m->json, m->name, m->sets_json};
    return true;
}

static void add_flag_sets(CliFtModel *m, const CliFtModelArgs *a)
{
    for (int i = 0; i < a->model.nsets; i++)
        add_set(m, a->model.sets[i].key, a->model.sets[i].value);
}

bool cli_ft_model_load(CliFtModel *m, const CliFtModelArgs *a, int n_classes, IrError *err)
{
    char buf[PATH_MAX + 64];
    const char *path = a->model_path ? a->model_path : default_model(buf, sizeof buf);
    snprintf(m->n_classes, sizeof m->n_classes, "%d", n_classes);
    add_set(m, "n_classes", m->n_classes);
    add_flag_sets(m, a);
    FeOptions fo = {m->sets, m->nsets};
    m->name = strdup(path);
    if (!(m->fe = fe_load_file(path, &fo, err)) || !(m->json = fe_flatten_file(path, err)))
        return false;
    return finish_load(m, a, err);
}

bool cli_ft_model_load_lm(CliFtModel *m, const CliFtModelArgs *a, IrError *err)
{
    if (a->model_path) {
        add_flag_sets(m, a);
        FeOptions fo = {m->sets, m->nsets};
        m->name = strdup(a->model_path);
        if (!(m->fe = fe_load_file(a->model_path, &fo, err)) ||
            !(m->json = fe_flatten_file(a->model_path, err)))
            return false;
        return finish_load(m, a, err);
    }
    const char *json = rt_ckpt_meta_get(m->init, "model.json");
    if (!json) {
        ir_error(err, "checkpoint '%s' does not record its model (metadata model.json)",
                 m->init->path);
        ir_error_hint(err, "start from a checkpoint of gradc train or gradc import-gpt2, or "
                      "name the model with --model FILE");
        return false;
    }
    cJSON *o = cJSON_Parse(rt_ckpt_meta_get(m->init, "model.sets") ?: "{}");
    /* the checkpoint's own sets replace the sizes read from them */
    m->nsets = ckpt_sets(o, m->sets, CLI_FT_MAX_SETS);
    add_set(m, "drop_rate", "0");
    add_flag_sets(m, a);
    const char *path = rt_ckpt_meta_get(m->init, "model.path");
    char name[4200];
    snprintf(name, sizeof name, "%s (metadata model.json)", m->init->path);
    FeOptions fo = {m->sets, m->nsets};
    m->fe = fe_load_string(json, name, &fo, err);
    m->name = strdup(path ? path : name);
    m->json = strdup(json);
    bool ok = m->fe && finish_load(m, a, err);   /* sets_json copies the cJSON's strings */
    cJSON_Delete(o);
    return ok;
}

void cli_ft_model_free(CliFtModel *m)
{
    if (m->fe)
        fe_model_free(m->fe);
    rt_ckpt_free(m->init);
    rt_tokenizer_free(m->tok);
    free(m->json);
    free(m->name);
    free(m->sets_json);
    free(m->lora_json);
    *m = (CliFtModel){0};
}
