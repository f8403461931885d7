/* fe_params.c — params sections and the table of param names.
 *
 *   "params": {
 *     "tok_emb.weight":  {"shape": ["vocab_size", "emb_dim"], "init": "normal", "std": 0.02},
 *     "W_query.bias":    {"shape": ["emb_dim"], "init": "zeros", "if": "qkv_bias"},
 *     "out_head.weight": {"alias": "tok_emb.weight", "if": "tie_embeddings",
 *                         "shape": ["vocab_size", "emb_dim"]}
 *   }
 *
 * A param of a module instance is named PREFIX.NAME (trf_blocks.3.att.W_query.weight).
 * `if` without `alias` switches a param off when its expression is 0; a
 * reference to it is then an error.  `alias` with `if` makes the entry the
 * very same tensor as the named param when the expression is nonzero, and
 * an ordinary param (its own shape and init) otherwise; `alias` alone always
 * aliases.  Aliases resolve after the scope's own params exist, so they may
 * point forward.  Every absolute name goes into one hash table, which finds
 * params by absolute name and reports a name defined twice.
 */
#include "fe_internal.h"
#include "ir/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- name table */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static FeName *slot(const FeName *tab, int cap, const char *name)
{
    int i = (int)(hash(name) & (uint64_t)(cap - 1));
    while (tab[i].name && strcmp(tab[i].name, name))
        i = (i + 1) & (cap - 1);
    return (FeName *)&tab[i];
}

static void grow(Fe *fe)
{
    int cap = fe->capnames ? 2 * fe->capnames : 64;
    FeName *tab = calloc((size_t)cap, sizeof *tab);
    IR_ASSERT(tab);
    for (int i = 0; i < fe->capnames; i++)
        if (fe->names[i].name)
            *slot(tab, cap, fe->names[i].name) = fe->names[i];
    free(fe->names);
    fe->names = tab;
    fe->capnames = cap;
}

IrNode *fe_name_get(const Fe *fe, const char *name)
{
    return fe->capnames ? slot(fe->names, fe->capnames, name)->node : NULL;
}

bool fe_name_put(Fe *fe, const char *name, IrNode *node, const char *path)
{
    if (2 * (fe->nnames + 1) > fe->capnames)
        grow(fe);
    FeName *s = slot(fe->names, fe->capnames, name);
    if (s->name) {
        fe_fail(fe, path, "param or input '%s' is defined twice", name);
        fe_hint(fe, "module instances need different 'prefix'es");
        return false;
    }
    s->name = name;
    s->node = node;
    fe->nnames++;
    return true;
}

void fe_names_free(Fe *fe)
{
    free(fe->names);
    fe->names = NULL;
    fe->nnames = fe->capnames = 0;
}

const char *fe_qualify(Fe *fe, const char *prefix, const char *rel)
{
    if (!prefix[0])
        return ir_arena_strdup(fe->g->arena, rel);
    size_t n = strlen(prefix) + strlen(rel) + 2;
    char *s = ir_arena_alloc(fe->g->arena, n);
    snprintf(s, n, "%s.%s", prefix, rel);
    return s;
}

/* ---------------------------------------------------------------- own params */

/* The scale key of each init kind (ir/rng.h): std for normal, bound for uniform. */
static const char *const scale_keys[] = {[IR_INIT_NORMAL] = "std", [IR_INIT_UNIFORM] = "bound"};

typedef struct FeInit {
    const char *kind;
    double scale; /* normal: std (default 0.02); uniform: bound (required) */
} FeInit;

static int init_index(Fe *fe, const cJSON *spec, const char *path, const char **init)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(spec, "init");
    char p[FE_PATH];
    fe_path_key(p, path, "init");
    *init = "normal";
    if (in && !fe_want(fe, in, cJSON_String, p, "'init'"))
        return -1;
    if (in)
        *init = in->valuestring;
    int i = ir_init_kind(*init);
    if (i >= 0)
        return i;
    FeNear n = fe_near(*init);
    fe_near_list(&n, ir_init_names);
    fe_fail(fe, p, "unknown init '%s' (there are " IR_INIT_KINDS ")", *init);
    fe_hint_near(fe, &n);
    return -1;
}

static bool read_init(Fe *fe, const cJSON *spec, const char *path, FeInit *out)
{
    int i = init_index(fe, spec, path, &out->kind);
    if (i < 0)
        return false;
    char p[FE_PATH];
    out->scale = i == IR_INIT_NORMAL ? 0.02 : 0.0;
    for (int k = IR_INIT_NORMAL; k <= IR_INIT_UNIFORM; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, scale_keys[k]);
        fe_path_key(p, path, scale_keys[k]);
        if (v && k != i)
            return fe_fail(fe, p, "'%s' goes with init '%s' only", scale_keys[k],
                           ir_init_names[k]);
        if (v && !fe_number(fe, v, p, &out->scale))
            return false;
        if (!v && k == i && k == IR_INIT_UNIFORM)
            return fe_fail(fe, path, "init 'uniform' needs a 'bound' (U(-bound, bound); "
                           "PyTorch's nn.Linear uses \"1 / sqrt(fan_in)\")");
    }
    if (out->scale >= 0)
        return true;
    fe_path_key(p, path, scale_keys[i]);
    return fe_fail(fe, p, "'%s' must be >= 0, got %g", scale_keys[i], out->scale);
}

static bool make_param(Fe *fe, FeScope *sc, const cJSON *spec, const char *path, FeLocal *loc)
{
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(spec, "shape");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(spec, "trainable");
    char p[FE_PATH];
    IrShape s;
    FeInit init;
    bool trainable = true;
    fe_path_key(p, path, "shape");
    if (!sh)
        return fe_fail(fe, path, "param '%s' needs a 'shape'", spec->string);
    if (!fe_shape(fe, sh, FE_NUM, p, &s, NULL) || !read_init(fe, spec, path, &init))
        return false;
    fe_path_key(p, path, "trainable");
    if (tr && !fe_truth(fe, tr, p, &trainable))
        return false;
    if (!fe_room(fe, path))
        return false;
    IrDType dt = DT_F32;
    bool uniform = !strcmp(init.kind, "uniform"), scaled = uniform || !strcmp(init.kind, "normal");
    IrAttr a[3] = {ir_attr_str(ATTR_INIT, init.kind), ir_attr_int(ATTR_TRAINABLE, trainable),
                   ir_attr_float(uniform ? ATTR_BOUND : ATTR_STD, init.scale)};
    IrNode *n = ir_node_new(fe->g, OP_PARAM, NULL, 0, a, scaled ? 3 : 2, &dt, &s, fe->err);
    if (!n)
        return fe_fail_ir(fe, path);
    n->name = fe_qualify(fe, sc->prefix, spec->string);
    loc->node = n;
    return fe_name_put(fe, n->name, n, path);
}

/* ---------------------------------------------------------------- entries */

static const char *const param_keys[] = {"shape", "init", "std", "bound", "trainable", "alias",
                                         "if", "//", "doc", NULL};

/* Pass 1: an own param, a switched-off one, or an alias left pending. */
static bool entry(Fe *fe, FeScope *sc, const cJSON *spec, const char *path, FeLocal *loc)
{
    const cJSON *iff = cJSON_GetObjectItemCaseSensitive(spec, "if");
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(spec, "alias");
    char p[FE_PATH];
    bool on = true;
    loc->rel = spec->string;
    if (!spec->string[0] || strchr(spec->string, ':'))
        return fe_fail(fe, path, "a param name must be non-empty and free of ':'");
    if (!fe_want(fe, spec, cJSON_Object, path, "a param") ||
        !fe_check_keys(fe, spec, path, param_keys, "a param"))
        return false;
    fe_path_key(p, path, "if");
    if (iff && !fe_truth(fe, iff, p, &on))
        return false;
    if (al && on)
        return true;
    if (!on && !al) {
        loc->off = cJSON_IsString(iff) ? iff->valuestring : "false";
        return true;
    }
    return make_param(fe, sc, spec, path, loc);
}

static IrNode *alias_target(Fe *fe, FeScope *sc, const char *target, const char *path)
{
    for (int j = 0; j < sc->nparam; j++) {
        const FeLocal *l = &sc->param[j];
        if (strcmp(l->rel, target))
            continue;
        if (l->node)
            return l->node;
        fe_fail(fe, path, l->off ? "alias target '%s' is switched off by its 'if'"
                                 : "alias target '%s' is an alias declared later", target);
        return NULL;
    }
    IrNode *n = fe_name_get(fe, target);
    if (n)
        return n;
    FeNear near = fe_near(target);
    for (int j = 0; j < sc->nparam; j++)
        fe_near_add(&near, sc->param[j].rel);
    fe_fail(fe, path, "alias of an undefined param '%s'", target);
    fe_hint_near(fe, &near);
    return NULL;
}

/* Pass 2: an alias is the target's node under one more name. */
static bool resolve_alias(Fe *fe, FeScope *sc, const cJSON *spec, const char *path, FeLocal *loc)
{
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(spec, "alias");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(spec, "shape");
    char p[FE_PATH], a[128], b[128];
    fe_path_key(p, path, "alias");
    if (!fe_want(fe, al, cJSON_String, p, "'alias'"))
        return false;
    IrNode *t = alias_target(fe, sc, al->valuestring, p);
    IrShape s;
    if (!t)
        return false;
    fe_path_key(p, path, "shape");
    if (sh && !fe_shape(fe, sh, FE_NUM, p, &s, NULL))
        return false;
    if (sh && !ir_shape_eq(&s, &t->shape))
        return fe_fail(fe, p, "alias '%s' has shape %s but '%s' has shape %s", spec->string,
                       (ir_shape_str(&s, fe->g->sym, a, sizeof a), a), al->valuestring,
                       (ir_shape_str(&t->shape, fe->g->sym, b, sizeof b), b));
    loc->node = t;
    return fe_name_put(fe, fe_qualify(fe, sc->prefix, spec->string), t, path);
}

bool fe_params_build(Fe *fe, FeScope *sc)
{
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(sc->def, "params");
    char path[FE_PATH], p[FE_PATH];
    fe_path_key(path, sc->path, "params");
    if (!ps)
        return true;
    if (!fe_want(fe, ps, cJSON_Object, path, "'params'") || !fe_check_dupes(fe, ps, path))
        return false;
    sc->param = calloc((size_t)cJSON_GetArraySize(ps) + 1, sizeof *sc->param);
    IR_ASSERT(sc->param);
    for (const cJSON *c = ps->child; c; c = c->next, sc->nparam++) {
        fe_path_key(p, path, c->string);
        if (!entry(fe, sc, c, p, &sc->param[sc->nparam]))
            return false;
    }
    int i = 0;
    for (const cJSON *c = ps->child; c; c = c->next, i++) {
        FeLocal *l = &sc->param[i];
        fe_path_key(p, path, c->string);
        if (!l->node && !l->off && !resolve_alias(fe, sc, c, p, l))
            return false;
    }
    return true;
}
