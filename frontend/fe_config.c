/* fe_config.c — the config section: named numbers and their expressions.
 *
 *   "config": {"emb_dim": 768, "n_heads": 12, "head_dim": "emb_dim // n_heads"}
 *
 * Keys may refer to each other in any order: a key is evaluated the first
 * time it is needed (lazily) and remembered.  A key met again while it is
 * being evaluated closes a cycle, reported with its keys in order.  --set
 * overrides replace a key's value (as an expression string) before
 * anything is evaluated, so keys computed from it follow the override.
 */
#include "fe_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fe_config_find(const Fe *fe, const char *name)
{
    for (int i = 0; i < fe->nkey; i++)
        if (!strcmp(fe->key[i].key, name))
            return i;
    return -1;
}

/* "/config/KEY", or "--set KEY=VALUE" for an override. */
static void key_path(const Fe *fe, int k, char *buf)
{
    const FeKey *key = &fe->key[k];
    if (key->set)
        snprintf(buf, FE_PATH, "--set %s=%s", key->key, key->set);
    else
        fe_path_key(buf, "/config", key->key);
}

static bool cycle_error(Fe *fe, int k)
{
    char msg[400] = "";
    size_t n = 0;
    int from = 0;
    while (fe->cfg_stack[from] != k)
        from++;
    for (int i = from; i < fe->cfg_depth && n < sizeof msg - 1; i++)
        n += snprintf(msg + n, sizeof msg - n, "%s -> ", fe->key[fe->cfg_stack[i]].key);
    char path[FE_PATH];
    key_path(fe, k, path);
    return fe_fail(fe, path, "config cycle: %s%s", msg, fe->key[k].key);
}

bool fe_config_value(Fe *fe, int k, double *out)
{
    FeKey *key = &fe->key[k];
    char path[FE_PATH];
    if (key->state == 2) {
        *out = key->value;
        return true;
    }
    if (key->state == 1)
        return cycle_error(fe, k);
    key_path(fe, k, path);
    if (fe->cfg_depth == FE_MAX_CFG_DEPTH)
        return fe_fail(fe, path, "config keys nest deeper than %d", FE_MAX_CFG_DEPTH);
    key->state = 1;
    fe->cfg_stack[fe->cfg_depth++] = k;
    FeVal v;
    bool ok = key->set ? fe_eval(fe, key->set, FE_NUM, path, &v)
                       : fe_number(fe, key->item, path, &v.num);
    fe->cfg_depth--;
    if (!ok)
        return false;
    key->state = 2;
    key->value = *out = v.num;
    return true;
}

static bool collect(Fe *fe, const cJSON *cfg)
{
    if (!fe_want(fe, cfg, cJSON_Object, "/config", "'config'") ||
        !fe_check_dupes(fe, cfg, "/config"))
        return false;
    fe->key = calloc((size_t)cJSON_GetArraySize(cfg) + 1, sizeof *fe->key);
    for (const cJSON *c = cfg->child; c; c = c->next) {
        char path[FE_PATH];
        fe_path_key(path, "/config", c->string);
        if (!fe_is_ident(c->string)) {
            fe_fail(fe, path, "config key '%s' is not a name", c->string);
            fe_hint(fe, "use letters, digits and '_', starting with a letter or '_'");
            return false;
        }
        if (!cJSON_IsNumber(c) && !cJSON_IsString(c) && !cJSON_IsBool(c))
            return fe_fail(fe, path, "a config value must be a number or an expression "
                           "string, got %s", fe_type_name(c));
        fe->key[fe->nkey].key = c->string;
        fe->key[fe->nkey++].item = c;
    }
    return true;
}

static bool apply_sets(Fe *fe, const FeOptions *opt)
{
    for (int i = 0; opt && i < opt->nsets; i++) {
        const FeSet *s = &opt->sets[i];
        int k = fe_config_find(fe, s->key);
        if (k >= 0) {
            fe->key[k].set = s->value ? s->value : "";
            continue;
        }
        char where[FE_PATH];
        snprintf(where, sizeof where, "--set %s=%s", s->key, s->value ? s->value : "");
        FeNear n = fe_near(s->key);
        for (int j = 0; j < fe->nkey; j++)
            fe_near_add(&n, fe->key[j].key);
        fe_fail(fe, where, "unknown config key '%s'", s->key);
        if (!n.best)
            fe_hint(fe, "%s has no config section", fe->file);
        fe_hint_near(fe, &n);
        return false;
    }
    return true;
}

bool fe_config_load(Fe *fe, const FeOptions *opt)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(fe->root, "config");
    if (cfg && !collect(fe, cfg))
        return false;
    if (!apply_sets(fe, opt))
        return false;
    double v;
    for (int k = 0; k < fe->nkey; k++)
        if (!fe_config_value(fe, k, &v))
            return false;
    return true;
}

bool fe_config_export(Fe *fe, FeModel *m)
{
    m->config = calloc((size_t)fe->nkey + 1, sizeof *m->config);
    if (!m->config)
        return false;
    for (int k = 0; k < fe->nkey; k++) {
        m->config[k].key = strdup(fe->key[k].key);
        m->config[k].value = fe->key[k].value;
    }
    m->nconfig = fe->nkey;
    return true;
}
