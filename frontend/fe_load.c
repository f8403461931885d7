/* fe_load.c — entry points of the frontend: files, JSON, `base`, sections.
 *
 * Loading runs in a fixed order: parse the JSON (a syntax error is
 * reported as FILE:LINE:COL), merge `base` files, check the top-level
 * sections, evaluate the config with the --set overrides, then build the
 * graph: inputs, params, nodes, outputs (fe_scope.c).
 *
 * `base` lets a model reuse another file's graph with a different config:
 *
 *   {"name": "gpt-mini", "base": "gpt2-small.json", "config": {"emb_dim": 128}}
 *
 * The base file (a path relative to this one) is loaded first; then every
 * top-level key of this file replaces the base's, except that for object
 * sections (config, inputs, params, modules, outputs) each entry replaces
 * the base's entry of the same name and new entries are added.
 */
#include "fe_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const sections[] = {"name", "base", "config", "inputs", "params", "modules",
                                       "nodes", "outputs", "//", "doc", NULL};

/* ---------------------------------------------------------------- files */

/* NULL with errno set when the file cannot be read (EISDIR for a directory,
 * which fopen opens and fread then fails on). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        errno = EISDIR;
        return NULL;
    }
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2 && cap < ((size_t)1 << 30)) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        } else if (cap - len < 2)
            break;
    }
    if (buf)
        buf[len] = 0;
    fclose(f);
    return buf;
}

/* `rel` next to `file`: "models/gpt2-small.json" for ("models/gpt-mini.json",
 * "gpt2-small.json"). */
static char *sibling(const char *file, const char *rel)
{
    const char *slash = strrchr(file, '/');
    size_t dir = rel[0] == '/' || !slash ? 0 : (size_t)(slash - file + 1);
    char *s = malloc(dir + strlen(rel) + 1);
    IR_ASSERT(s);
    memcpy(s, file, dir);
    strcpy(s + dir, rel);
    return s;
}

/* ---------------------------------------------------------------- JSON */

static void json_error(Fe *fe, const char *text, const char *at, const char *file)
{
    int line = 1, col = 1;
    for (const char *p = text; p < at && *p; p++, col++)
        if (*p == '\n')
            line++, col = 0;
    int n = 0;
    while (n < 16 && at[n] && at[n] != '\n' && at[n] != '\r')
        n++;
    if (*at)
        ir_error(fe->err, "malformed JSON near '%.*s'", n, at);
    else
        ir_error(fe->err, "malformed JSON: unexpected end of file");
    ir_error_where(fe->err, "%s:%d:%d", file, line, col);
    if (at[0] == '/')
        ir_error_hint(fe->err, "JSON has no comments; use a \"//\" key for notes");
    else
        ir_error_hint(fe->err, "look for a missing or extra comma, quote or bracket here or "
                      "just before");
}

static cJSON *parse_json(Fe *fe, const char *text, const char *file)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, 1);
    if (doc)
        return doc;
    if (!end || end < text)
        end = text;
    json_error(fe, text, end, file);
    return NULL;
}

static void put(cJSON *obj, const cJSON *item)
{
    cJSON *copy = cJSON_Duplicate(item, 1);
    IR_ASSERT(copy);
    if (cJSON_GetObjectItemCaseSensitive(obj, item->string))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, item->string, copy);
    else
        cJSON_AddItemToObject(obj, item->string, copy);
}

/* Overlays a derived document on its base (see the top of this file). */
static void merge(cJSON *dst, const cJSON *src)
{
    for (const cJSON *c = src->child; c; c = c->next) {
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, c->string);
        if (!strcmp(c->string, "base"))
            continue;
        if (cJSON_IsObject(d) && cJSON_IsObject(c))
            for (const cJSON *e = c->child; e; e = e->next)
                put(d, e);
        else
            put(dst, c);
    }
}

/* Parses `text` and the chain of its base files; returns the merged tree. */
static cJSON *load_doc(Fe *fe, const char *text, const char *file)
{
    if (fe->nlayer == FE_MAX_BASES) {
        fe_fail(fe, "/base", "base files nest deeper than %d", FE_MAX_BASES);
        fe_hint(fe, "is there a cycle of base files?");
        return NULL;
    }
    cJSON *doc = parse_json(fe, text, file);
    if (!doc)
        return NULL;
    fe->layer[fe->nlayer].file = strdup(file);
    fe->layer[fe->nlayer++].doc = doc;
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(doc, "base");
    if (!cJSON_IsObject(doc) || !base)
        return cJSON_Duplicate(doc, 1);
    if (!fe_want(fe, base, cJSON_String, "/base", "'base'"))
        return NULL;
    char *path = sibling(file, base->valuestring);
    char *btext = read_text(path);
    cJSON *merged = NULL;
    if (!btext)
        fe_fail(fe, "/base", "cannot read base file '%s': %s", path, strerror(errno));
    else
        merged = load_doc(fe, btext, path);
    free(btext);
    free(path);
    if (merged)
        merge(merged, doc);
    return merged;
}

/* ---------------------------------------------------------------- model */

static bool check_root(Fe *fe)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fe->root, "name");
    if (!cJSON_IsObject(fe->root))
        return fe_fail(fe, NULL, "a model file must hold a JSON object, got %s",
                       fe_type_name(fe->root));
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(fe->root, "modules");
    if (!fe_check_keys(fe, fe->root, "", sections, "a model file"))
        return false;
    if (mods && (!fe_want(fe, mods, cJSON_Object, "/modules", "'modules'") ||
                 !fe_check_dupes(fe, mods, "/modules")))
        return false;
    return !name || fe_want(fe, name, cJSON_String, "/name", "'name'");
}

/* The graph is named by "name", else by the file name without its folder and extension. */
static void make_graph(Fe *fe)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fe->root, "name");
    char buf[128];
    const char *base = strrchr(fe->file, '/') ? strrchr(fe->file, '/') + 1 : fe->file;
    snprintf(buf, sizeof buf, "%s", name ? name->valuestring : base);
    if (!name && strrchr(buf, '.'))
        *strrchr(buf, '.') = 0;
    fe->g = ir_graph_new(buf[0] ? buf : "model");
}

static FeModel *finish(Fe *fe, const char *path)
{
    FeModel *m = calloc(1, sizeof *m);
    IR_ASSERT(m);
    m->path = strdup(path ? path : fe->file);
    if (!fe_config_export(fe, m)) {
        fe_model_free(m);
        return NULL;
    }
    m->graph = fe->g;
    fe->g = NULL;
    return m;
}

static void cleanup(Fe *fe)
{
    for (int i = 0; i < fe->nlayer; i++) {
        free(fe->layer[i].file);
        cJSON_Delete(fe->layer[i].doc);
    }
    cJSON_Delete(fe->root);
    free(fe->key);
    fe_names_free(fe);
    ir_graph_free(fe->g);
}

FeModel *fe_load_string(const char *json, const char *path, const FeOptions *opt, IrError *err)
{
    IrError scratch;
    Fe fe;
    memset(&fe, 0, sizeof fe);
    fe.err = err ? err : &scratch;
    memset(fe.err, 0, sizeof *fe.err);
    fe.file = path ? path : "<string>";
    FeModel *m = NULL;
    fe.root = load_doc(&fe, json ? json : "", fe.file);
    if (fe.root && check_root(&fe) && fe_config_load(&fe, opt)) {
        make_graph(&fe);
        if (fe_build_top(&fe))
            m = finish(&fe, path);
    }
    cleanup(&fe);
    return m;
}

FeModel *fe_load_file(const char *path, const FeOptions *opt, IrError *err)
{
    char *text = read_text(path);
    if (!text) {
        IrError scratch;
        err = err ? err : &scratch;
        memset(err, 0, sizeof *err);
        ir_error(err, "cannot read '%s': %s", path, strerror(errno));
        ir_error_hint(err, "check the path; model files live in models/");
        return NULL;
    }
    FeModel *m = fe_load_string(text, path, opt, err);
    free(text);
    return m;
}

char *fe_flatten_file(const char *path, IrError *err)
{
    IrError scratch;
    Fe fe;
    memset(&fe, 0, sizeof fe);
    fe.err = err ? err : &scratch;
    memset(fe.err, 0, sizeof *fe.err);
    fe.file = path;
    char *text = read_text(path), *out = NULL;
    if (!text)
        ir_error(fe.err, "cannot read '%s': %s", path, strerror(errno));
    else
        fe.root = load_doc(&fe, text, path);
    if (fe.root) {
        cJSON_DeleteItemFromObjectCaseSensitive(fe.root, "base");
        out = cJSON_PrintUnformatted(fe.root);
    }
    free(text);
    cleanup(&fe);
    return out;
}

void fe_model_free(FeModel *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nconfig; i++)
        free((char *)m->config[i].key);
    free(m->config);
    free((char *)m->path);
    ir_graph_free(m->graph);
    free(m);
}

bool fe_config(const FeModel *m, const char *key, double *value)
{
    for (int i = 0; i < m->nconfig; i++)
        if (!strcmp(m->config[i].key, key)) {
            *value = m->config[i].value;
            return true;
        }
    return false;
}
