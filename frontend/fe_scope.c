/* fe_scope.c — node lists, name resolution, module instances and repeat.
 *
 * A scope is the top level or one instance of a module.  It owns its node
 * list (specs), its params (named relative to the instance prefix) and its
 * inputs.  Nodes may be listed in any order: each node is built once, after
 * the local nodes it names, by a depth-first walk with an explicit stack
 * (so a long chain of nodes cannot overflow the C stack).  A node met again
 * while it is on the stack closes a cycle, reported as a path of names.
 *
 * A name in "in" is looked up in this order: a node of this scope (NAME, or
 * NAME:OUTPUT for one output of a module instance), an input of the scope,
 * a param relative to the scope, an absolute param or graph input.  A
 * number or {"const": EXPR} is a scalar f32 constant.
 *
 * A module instance with "repeat": N expands to N instances named
 * PREFIX.0 ... PREFIX.N-1; the first output of each feeds the first input
 * of the next, the other inputs go to every instance unchanged.  A node
 * (or instance) whose "if" is 0 vanishes: it stands for its first input.
 */
#include "fe_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FE_NEW, FE_ACTIVE, FE_DONE };

typedef struct Frame {
    FeSpec *sp;
    int i;                     /* next entry of "in" to look at */
} Frame;

static bool build_spec(Fe *fe, FeScope *sc, FeSpec *root);
static IrNode *resolve_name(Fe *fe, FeScope *sc, const char *name, const char *path);

static void spec_path(const FeScope *sc, const FeSpec *sp, char *buf)
{
    char base[FE_PATH];
    fe_path_key(base, sc->path, "nodes");
    fe_path_idx(buf, base, sp->index);
}

/* ---------------------------------------------------------------- lookups */

static size_t base_len(const char *name)
{
    const char *c = strchr(name, ':');
    return c ? (size_t)(c - name) : strlen(name);
}

static FeSpec *find_spec(FeScope *sc, const char *name, size_t len)
{
    for (int i = 0; i < sc->nspec; i++)
        if (!strncmp(sc->spec[i].name, name, len) && !sc->spec[i].name[len])
            return &sc->spec[i];
    return NULL;
}

static int find_input(const FeScope *sc, const char *name)
{
    for (int i = 0; i < sc->nin; i++)
        if (!strcmp(sc->in_name[i], name))
            return i;
    return -1;
}

static FeLocal *find_param(FeScope *sc, const char *name)
{
    for (int i = 0; i < sc->nparam; i++)
        if (!strcmp(sc->param[i].rel, name))
            return &sc->param[i];
    return NULL;
}

static IrNode *undefined(Fe *fe, FeScope *sc, const char *name, const char *path)
{
    FeNear n = fe_near(name);
    for (int i = 0; i < sc->nspec; i++)
        fe_near_add(&n, sc->spec[i].name);
    for (int i = 0; i < sc->nin; i++)
        fe_near_add(&n, sc->in_name[i]);
    for (int i = 0; i < sc->nparam; i++)
        fe_near_add(&n, sc->param[i].rel);
    for (int i = 0; i < fe->capnames; i++)
        fe_near_add(&n, fe->names[i].name);
    if (fe_config_find(fe, name) >= 0) {
        fe_fail(fe, path, "'%s' is a config key, not a tensor", name);
        fe_hint(fe, "write {\"const\": \"%s\"} for a scalar constant", name);
        return NULL;
    }
    fe_fail(fe, path, "undefined name '%s'", name);
    fe_hint_near(fe, &n);
    return NULL;
}

/* The value of a local node, or of one output of a module instance. */
static IrNode *spec_value(Fe *fe, FeScope *sc, FeSpec *s, const char *out, const char *path)
{
    if (!build_spec(fe, sc, s))
        return NULL;
    if (!s->on && !s->node) {
        fe_fail(fe, path, "node '%s' is switched off by its 'if' and has no input to stand "
                "for it", s->name);
        return NULL;
    }
    if (!out || !s->on)
        return s->node;
    FeNear n = fe_near(out);
    for (int j = 0; j < s->nout; j++) {
        if (!strcmp(s->outname[j], out))
            return s->out[j];
        fe_near_add(&n, s->outname[j]);
    }
    if (!s->outname)
        fe_fail(fe, path, "'%s' is not a module instance, so '%s:%s' names nothing", s->name,
                s->name, out);
    else
        fe_fail(fe, path, "module instance '%s' has no output '%s'", s->name, out);
    fe_hint_near(fe, &n);
    return NULL;
}

static IrNode *resolve_name(Fe *fe, FeScope *sc, const char *name, const char *path)
{
    size_t len = base_len(name);
    FeSpec *s = find_spec(sc, name, len);
    if (s)
        return spec_value(fe, sc, s, name[len] ? name + len + 1 : NULL, path);
    int i = find_input(sc, name);
    if (i >= 0)
        return sc->in_node[i];
    FeLocal *l = find_param(sc, name);
    if (l && !l->node)
        fe_fail(fe, path, "param '%s' is switched off: its 'if' (%s) is 0", name, l->off);
    if (l)
        return l->node;
    IrNode *n = fe_name_get(fe, name);
    return n ? n : undefined(fe, sc, name, path);
}

/* A name, a number, or {"const": EXPR}. */
static IrNode *resolve(Fe *fe, FeScope *sc, const cJSON *r, const char *path)
{
    static const char *const const_keys[] = {"const", NULL};
    double v;
    char p[FE_PATH];
    if (cJSON_IsString(r))
        return resolve_name(fe, sc, r->valuestring, path);
    if (cJSON_IsNumber(r))
        return fe_number(fe, r, path, &v) ? fe_scalar(fe, v, path) : NULL;
    if (!cJSON_IsObject(r) || !cJSON_GetObjectItemCaseSensitive(r, "const")) {
        fe_fail(fe, path, "an input must be a name, a number or {\"const\": EXPR}, got %s",
                fe_type_name(r));
        return NULL;
    }
    fe_path_key(p, path, "const");
    if (!fe_check_keys(fe, r, path, const_keys, "an inline constant") ||
        !fe_number(fe, cJSON_GetObjectItemCaseSensitive(r, "const"), p, &v))
        return NULL;
    return fe_scalar(fe, v, p);
}

static bool resolve_list(Fe *fe, FeScope *sc, const cJSON *in, const char *path, IrNode **out,
                         int n)
{
    int i = 0;
    for (const cJSON *r = in ? in->child : NULL; r && i < n; r = r->next, i++) {
        char p[FE_PATH];
        fe_path_idx(p, path, i);
        if (!(out[i] = resolve(fe, sc, r, p)))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- node lists */

static bool collect_one(Fe *fe, FeScope *sc, const cJSON *item, const char *path)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    char p[FE_PATH];
    fe_path_key(p, path, "name");
    if (!fe_want(fe, item, cJSON_Object, path, "a node") ||
        !fe_want(fe, name, cJSON_String, p, "'name'"))
        return false;
    const char *s = name->valuestring;
    if (!s[0] || strchr(s, ':'))
        return fe_fail(fe, p, "a node name must be non-empty and free of ':'");
    FeSpec *prev = find_spec(sc, s, strlen(s));
    if (prev) {
        char q[FE_PATH];
        spec_path(sc, prev, q);
        return fe_fail(fe, p, "node '%s' is defined twice (first at %s)", s, q);
    }
    if (find_input(sc, s) >= 0)
        return fe_fail(fe, p, "node '%s' has the name of an input", s);
    FeSpec *sp = &sc->spec[sc->nspec];
    sp->json = item;
    sp->name = s;
    sp->index = sc->nspec++;
    sp->on = -1;
    return true;
}

static bool collect(Fe *fe, FeScope *sc)
{
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(sc->def, "nodes");
    char path[FE_PATH], p[FE_PATH];
    fe_path_key(path, sc->path, "nodes");
    if (!nodes)
        return true;
    if (!fe_want(fe, nodes, cJSON_Array, path, "'nodes'"))
        return false;
    sc->spec = calloc((size_t)cJSON_GetArraySize(nodes) + 1, sizeof *sc->spec);
    IR_ASSERT(sc->spec);
    int i = 0;
    for (const cJSON *c = nodes->child; c; c = c->next, i++) {
        fe_path_idx(p, path, i);
        if (!collect_one(fe, sc, c, p))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- the walk */

static bool spec_on(Fe *fe, FeScope *sc, FeSpec *sp)
{
    const cJSON *iff = cJSON_GetObjectItemCaseSensitive(sp->json, "if");
    char path[FE_PATH], p[FE_PATH];
    bool on = true;
    spec_path(sc, sp, path);
    fe_path_key(p, path, "if");
    if (iff && !fe_truth(fe, iff, p, &on))
        return false;
    sp->on = on;
    return true;
}

/* The next local node that f's node names and that is not built yet. */
static FeSpec *next_dep(FeScope *sc, Frame *f)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(f->sp->json, "in");
    int n = cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
    if (!f->sp->on && n > 1)
        n = 1;
    for (; f->i < n; f->i++) {
        const cJSON *r = cJSON_GetArrayItem(in, f->i);
        FeSpec *s = cJSON_IsString(r) ? find_spec(sc, r->valuestring, base_len(r->valuestring))
                                      : NULL;
        if (s && s->state != FE_DONE)
            return s;
    }
    return NULL;
}

static bool cycle_error(Fe *fe, FeScope *sc, const Frame *st, int top, const FeSpec *dep)
{
    char msg[400] = "", path[FE_PATH], p[FE_PATH];
    size_t n = 0;
    int from = 0;
    while (st[from].sp != dep)
        from++;
    for (int i = from; i < top && n < sizeof msg - 1; i++)
        n += snprintf(msg + n, sizeof msg - n, "%s -> ", st[i].sp->name);
    spec_path(sc, st[top - 1].sp, path);
    fe_path_key(p, path, "in");
    fe_path_idx(path, p, st[top - 1].i);
    return fe_fail(fe, path, "reference cycle: %s%s", msg, dep->name);
}

static bool build_one(Fe *fe, FeScope *sc, FeSpec *sp);

static bool build_spec(Fe *fe, FeScope *sc, FeSpec *root)
{
    if (root->state == FE_DONE)
        return true;
    Frame *st = malloc(sizeof *st * (size_t)(sc->nspec + 1));
    IR_ASSERT(st);
    int top = 0;
    bool ok = true;
    FeSpec *push = root;
    while (ok) {
        if (push) {
            push->state = FE_ACTIVE;
            st[top++] = (Frame){push, 0};
            if (!(ok = spec_on(fe, sc, push)))
                break;
        }
        if (!top)
            break;
        Frame *f = &st[top - 1];
        push = next_dep(sc, f);
        if (push && push->state == FE_ACTIVE)
            ok = cycle_error(fe, sc, st, top, push);
        else if (!push) {
            ok = build_one(fe, sc, f->sp);
            f->sp->state = FE_DONE;
            top--;
        }
    }
    free(st);
    return ok;
}

/* ---------------------------------------------------------------- instances */

static bool run_scope(Fe *fe, FeScope *sc)
{
    if (!fe_params_build(fe, sc) || !collect(fe, sc))
        return false;
    for (int i = 0; i < sc->nspec; i++)
        if (!build_spec(fe, sc, &sc->spec[i]))
            return false;
    return true;
}

static void scope_free(FeScope *sc)
{
    free(sc->spec);
    free(sc->param);
    free(sc);
}

static bool bind_inputs(Fe *fe, FeScope *c, IrNode **in, int nin, const char *at)
{
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(c->def, "inputs");
    char path[FE_PATH], names[200] = "";
    fe_path_key(path, c->path, "inputs");
    if (ins && !fe_want(fe, ins, cJSON_Array, path, "a module's 'inputs'"))
        return false;
    for (const cJSON *x = ins ? ins->child : NULL; x; x = x->next, c->nin++) {
        char p[FE_PATH];
        fe_path_idx(p, path, c->nin);
        if (c->nin == FE_MAX_MOD_IO)
            return fe_fail(fe, path, "a module takes at most %d inputs", FE_MAX_MOD_IO);
        if (!fe_want(fe, x, cJSON_String, p, "an input name"))
            return false;
        if (!x->valuestring[0] || strchr(x->valuestring, ':') || find_input(c, x->valuestring) >= 0)
            return fe_fail(fe, p, "input names must be distinct, non-empty and free of ':'");
        c->in_name[c->nin] = x->valuestring;
        c->in_node[c->nin] = c->nin < nin ? in[c->nin] : NULL;
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                 c->nin ? ", " : "", x->valuestring);
    }
    if (c->nin == nin)
        return true;
    return fe_fail(fe, at, "module '%s' takes %d input%s (%s), got %d", c->module, c->nin,
                   c->nin == 1 ? "" : "s", names, nin);
}

static bool bind_outputs(Fe *fe, FeScope *c, FeSpec *sp)
{
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(c->def, "outputs");
    char path[FE_PATH], p[FE_PATH];
    fe_path_key(path, c->path, "outputs");
    if (!fe_want(fe, outs, cJSON_Array, path, "a module's 'outputs'"))
        return false;
    int n = cJSON_GetArraySize(outs), i = 0;
    if (n < 1 || n > FE_MAX_MOD_IO)
        return fe_fail(fe, path, "a module needs 1 to %d outputs, got %d", FE_MAX_MOD_IO, n);
    sp->nout = n;
    sp->out = ir_arena_alloc(fe->g->arena, n * sizeof *sp->out);
    sp->outname = ir_arena_alloc(fe->g->arena, n * sizeof *sp->outname);
    for (const cJSON *o = outs->child; o; o = o->next, i++) {
        fe_path_idx(p, path, i);
        if (!fe_want(fe, o, cJSON_String, p, "an output"))
            return false;
        sp->outname[i] = o->valuestring;
        if (!(sp->out[i] = resolve_name(fe, c, o->valuestring, p)))
            return false;
    }
    return true;
}

static const cJSON *module_def(Fe *fe, const char *mod, const char *at)
{
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(fe->root, "modules");
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(mods, mod);
    if (def)
        return def;
    FeNear n = fe_near(mod);
    for (const cJSON *m = mods ? mods->child : NULL; m; m = m->next)
        fe_near_add(&n, m->string);
    fe_fail(fe, at, "unknown module '%s'", mod);
    if (!mods)
        fe_hint(fe, "define it in a \"modules\" section");
    fe_hint_near(fe, &n);
    return NULL;
}

/* One instance of module `mod` named `prefix`, for the node at `at`: its outputs go into sp. */
static bool instance(Fe *fe, const char *mod, const char *at, const char *prefix, IrNode **in,
                     int nin, FeSpec *sp)
{
    static const char *const keys[] = {"inputs", "params", "nodes", "outputs", "//", "doc",
                                       NULL};
    char pm[FE_PATH], pin[FE_PATH];
    fe_path_key(pm, at, "module");
    fe_path_key(pin, at, "in");
    const cJSON *def = module_def(fe, mod, pm);
    if (!def)
        return false;
    if (fe->depth >= FE_MAX_DEPTH) {
        fe_fail(fe, at, "modules nest deeper than %d", FE_MAX_DEPTH);
        fe_hint(fe, "does module '%s' use itself?", mod);
        return false;
    }
    FeScope *c = calloc(1, sizeof *c);
    IR_ASSERT(c);
    c->def = def;
    fe_path_key(c->path, "/modules", mod);
    c->module = mod;
    c->prefix = prefix;
    fe->depth++;
    bool ok = fe_want(fe, def, cJSON_Object, c->path, "a module") &&
              fe_check_keys(fe, def, c->path, keys, "a module") &&
              bind_inputs(fe, c, in, nin, pin) && run_scope(fe, c) && bind_outputs(fe, c, sp);
    fe->depth--;
    if (!ok)
        fe_hint(fe, "in '%s', an instance of module '%s'", prefix, mod);
    scope_free(c);
    return ok;
}

static bool read_repeat(Fe *fe, const cJSON *r, const char *path, int64_t *n)
{
    char p[FE_PATH];
    fe_path_key(p, path, "repeat");
    double v;
    if (!fe_number(fe, r, p, &v))
        return false;
    if (!(v >= 1 && v <= FE_MAX_REPEAT) || v != (int64_t)v)
        return fe_fail(fe, p, "repeat must be a positive integer up to %d, got %g",
                       FE_MAX_REPEAT, v);
    *n = (int64_t)v;
    return true;
}

static bool read_prefix(Fe *fe, FeScope *sc, FeSpec *sp, const char *path, const char **out)
{
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(sp->json, "prefix");
    char p[FE_PATH];
    fe_path_key(p, path, "prefix");
    if (pre && !fe_want(fe, pre, cJSON_String, p, "'prefix'"))
        return false;
    const char *s = pre ? pre->valuestring : sp->name;
    if (!s[0] || strchr(s, ':') || strlen(sc->prefix) + strlen(s) > 200)
        return fe_fail(fe, p, "a prefix must be non-empty, free of ':' and not too long");
    *out = fe_qualify(fe, sc->prefix, s);
    return true;
}

static bool build_instance(Fe *fe, FeScope *sc, FeSpec *sp, const char *path, const cJSON *in,
                           int nin)
{
    static const char *const keys[] = {"name", "module", "in", "prefix", "repeat", "if",
                                       "//", "doc", NULL};
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(sp->json, "module");
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(sp->json, "repeat");
    char p[FE_PATH], at[FE_PATH];
    const char *prefix = "";
    IrNode *ins[FE_MAX_MOD_IO];
    int64_t n = 1;
    fe_path_key(p, path, "module");
    fe_path_key(at, path, "in");
    if (!fe_check_keys(fe, sp->json, path, keys, "a module instance") ||
        !fe_want(fe, mod, cJSON_String, p, "'module'") || !read_prefix(fe, sc, sp, path, &prefix))
        return false;
    if (rep && !read_repeat(fe, rep, path, &n))
        return false;
    if (nin > FE_MAX_MOD_IO)
        return fe_fail(fe, at, "a module takes at most %d inputs", FE_MAX_MOD_IO);
    if (rep && nin == 0)
        return fe_fail(fe, at, "a repeated module needs an input to chain");
    if (!resolve_list(fe, sc, in, at, ins, nin))
        return false;
    for (int64_t i = 0; i < n; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%lld", (long long)i);
        if (!instance(fe, mod->valuestring, path, rep ? fe_qualify(fe, prefix, idx) : prefix,
                      ins, nin, sp))
            return false;
        if (nin)
            ins[0] = sp->out[0];
    }
    sp->node = sp->out[0];
    return true;
}

/* ---------------------------------------------------------------- one node */

static bool build_one(Fe *fe, FeScope *sc, FeSpec *sp)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(sp->json, "in");
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(sp->json, "module");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(sp->json, "op");
    char path[FE_PATH], p[FE_PATH];
    IrNode *ins[IR_MAX_IN];
    spec_path(sc, sp, path);
    fe_path_key(p, path, "in");
    if (in && !fe_want(fe, in, cJSON_Array, p, "'in'"))
        return false;
    int nin = in ? cJSON_GetArraySize(in) : 0;
    if (!sp->on) {
        sp->node = nin ? resolve_list(fe, sc, in, p, ins, 1) ? ins[0] : NULL : NULL;
        return !nin || sp->node;
    }
    if (mod && op)
        return fe_fail(fe, path, "a node has either an 'op' or a 'module', not both");
    if (mod)
        return build_instance(fe, sc, sp, path, in, nin);
    if (!op)
        return fe_fail(fe, path, "node '%s' needs an 'op' or a 'module'", sp->name);
    IrOp o = fe_op_check(fe, sp->json, path, nin);
    if (o == OP_COUNT || !resolve_list(fe, sc, in, p, ins, nin))
        return false;
    sp->node = fe_op_build(fe, sc, sp, path, o, ins, nin);
    return sp->node != NULL;
}

/* ---------------------------------------------------------------- top level */

static bool make_input(Fe *fe, FeScope *sc, const cJSON *spec, const char *path)
{
    static const char *const keys[] = {"dtype", "shape", "//", "doc", NULL};
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(spec, "dtype");
    char p[FE_PATH];
    IrShape s;
    IrDType t = DT_F32;
    if (!fe_want(fe, spec, cJSON_Object, path, "an input") ||
        !fe_check_keys(fe, spec, path, keys, "an input"))
        return false;
    if (!spec->string[0] || strchr(spec->string, ':') || sc->nin == FE_MAX_MOD_IO)
        return fe_fail(fe, path, "input names must be non-empty and free of ':' (at most %d)",
                       FE_MAX_MOD_IO);
    fe_path_key(p, path, "dtype");
    if (dt && (!fe_want(fe, dt, cJSON_String, p, "'dtype'") ||
               (t = ir_dtype_lookup(dt->valuestring)) == DT_COUNT))
        return fe_fail(fe, p, "unknown dtype (there are f32, i32 and bool)");
    fe_path_key(p, path, "shape");
    if (!fe_shape(fe, cJSON_GetObjectItemCaseSensitive(spec, "shape"), FE_INPUT, p, &s, NULL))
        return false;
    IrNode *n = ir_node_new(fe->g, OP_INPUT, NULL, 0, NULL, 0, &t, &s, fe->err);
    if (!n)
        return fe_fail_ir(fe, path);
    n->name = ir_arena_strdup(fe->g->arena, spec->string);
    sc->in_name[sc->nin] = n->name;
    sc->in_node[sc->nin++] = n;
    return fe_name_put(fe, n->name, n, path);
}

static bool build_inputs(Fe *fe, FeScope *sc)
{
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(fe->root, "inputs");
    char p[FE_PATH];
    if (!ins)
        return true;
    if (!fe_want(fe, ins, cJSON_Object, "/inputs", "'inputs'") ||
        !fe_check_dupes(fe, ins, "/inputs"))
        return false;
    for (const cJSON *c = ins->child; c; c = c->next) {
        fe_path_key(p, "/inputs", c->string);
        if (!make_input(fe, sc, c, p))
            return false;
    }
    return true;
}

static bool build_outputs(Fe *fe, FeScope *sc)
{
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(fe->root, "outputs");
    char p[FE_PATH];
    if (!fe_want(fe, outs, cJSON_Object, "/outputs", "'outputs'") ||
        !fe_check_dupes(fe, outs, "/outputs"))
        return false;
    if (!outs->child)
        return fe_fail(fe, "/outputs", "a model needs at least one output");
    for (const cJSON *o = outs->child; o; o = o->next) {
        fe_path_key(p, "/outputs", o->string);
        if (!fe_want(fe, o, cJSON_String, p, "an output"))
            return false;
        IrNode *n = resolve_name(fe, sc, o->valuestring, p);
        if (!n)
            return false;
        ir_graph_add_output(fe->g, o->string, n);
    }
    return true;
}

bool fe_build_top(Fe *fe)
{
    FeScope *sc = calloc(1, sizeof *sc);
    IR_ASSERT(sc);
    sc->def = fe->root;
    sc->prefix = "";
    bool ok = build_inputs(fe, sc) && run_scope(fe, sc) && build_outputs(fe, sc);
    scope_free(sc);
    return ok;
}
