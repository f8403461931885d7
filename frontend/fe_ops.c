/* fe_ops.c — one op node from its JSON object.
 *
 *   {"name": "scores", "op": "matmul", "in": ["q", "k"], "tb": 1}
 *   {"name": "q_heads", "op": "reshape", "in": ["q"], "shape": ["B", "T", "n_heads", -1]}
 *
 * Every key of the object other than name/op/in/if is an attribute of
 * attrs.def (axis, axes, keepdim, perm, start, end, ta, tb, value, p, seed,
 * eps, ignore_index), or `shape` / `dtype` for the ops whose type is given
 * (reshape, broadcast, const, iota, cast).  The keys column of ir/ops.def
 * says which keys each op takes, so a misplaced key is an error rather than
 * silently ignored.  The IR's shape rules then check the node; their message gets
 * the node's JSON path.  Dropout nodes without a seed get the next one of a
 * counter, so that no two dropout nodes share a random stream.
 */
#include "fe_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct Build {
    IrOp op;
    IrAttr attr[IR_MAX_ATTRS];
    int nattr;
    bool has_shape, has_dtype;
    IrShape shape;
    IrDType dtype;
    int infer;                 /* index of a -1 in a reshape's shape, or -1 */
} Build;

static const char *const structural[] = {"name", "op", "in", "if", "//", "doc", NULL};

/* The keys an op takes, space-separated (ops.def's keys column); NULL:
 * any attribute. */
static const char *op_keys(IrOp op)
{
    return ir_ops[op].keys;
}

/* w is one of the space-separated words of list (an empty w never is:
 * strstr would find it everywhere without moving on). */
static bool has_word(const char *list, const char *w)
{
    size_t n = strlen(w);
    if (!n)
        return false;
    for (const char *s = list; (s = strstr(s, w)); s += n)
        if ((s == list || s[-1] == ' ') && (s[n] == ' ' || !s[n]))
            return true;
    return false;
}

static bool is_param_attr(const char *key)
{
    return !strcmp(key, "init") || !strcmp(key, "std") || !strcmp(key, "bound") ||
           !strcmp(key, "trainable");
}

static bool takes(IrOp op, const char *key)
{
    const char *list = op_keys(op);
    if (is_param_attr(key))
        return false;
    if (list)
        return has_word(list, key);
    return !strcmp(key, "shape") || !strcmp(key, "dtype") || ir_attr_lookup(key) != ATTR_COUNT;
}

static bool bad_key(Fe *fe, IrOp op, const char *key, const char *path)
{
    const char *list = op_keys(op);
    if (ir_attr_lookup(key) != ATTR_COUNT || !strcmp(key, "shape") || !strcmp(key, "dtype")) {
        fe_fail(fe, path, "op '%s' takes no '%s'", ir_op_name(op), key);
        if (is_param_attr(key))
            fe_hint(fe, "'%s' belongs to a param in a params section", key);
        else if (list && list[0])
            fe_hint(fe, "'%s' takes: %s", ir_op_name(op), list);
        else
            fe_hint(fe, "'%s' takes no attributes", ir_op_name(op));
        return false;
    }
    FeNear n = fe_near(key);
    fe_near_list(&n, structural);
    fe_near_add(&n, "shape");
    fe_near_add(&n, "dtype");
    for (int i = 0; i < ATTR_COUNT; i++)
        fe_near_add(&n, ir_attr_name((IrAttrKey)i));
    fe_fail(fe, path, "unknown key '%s' in a node", key);
    fe_hint_near(fe, &n);
    return false;
}

/* ---------------------------------------------------------------- values */

static bool read_ints(Fe *fe, const cJSON *v, const char *path, int64_t *out, int *n)
{
    if (!cJSON_IsArray(v)) {
        *n = 1;
        return fe_int(fe, v, path, out);
    }
    *n = cJSON_GetArraySize(v);
    if (*n > IR_MAX_RANK)
        return fe_fail(fe, path, "a list of %d axes; at most %d", *n, IR_MAX_RANK);
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        char p[FE_PATH];
        fe_path_idx(p, path, i);
        if (!fe_int(fe, c, p, &out[i]))
            return false;
    }
    return true;
}

static bool read_attr(Fe *fe, Build *b, IrAttrKey k, const cJSON *v, const char *path)
{
    int64_t iv[IR_MAX_RANK];
    double f;
    int n;
    if (b->nattr == IR_MAX_ATTRS)
        return fe_fail(fe, path, "more than %d attributes", IR_MAX_ATTRS);
    switch (ir_attr_kind(k)) {
    case AK_INT:
        if (!fe_int(fe, v, path, iv))
            return false;
        b->attr[b->nattr++] = ir_attr_int(k, iv[0]);
        return true;
    case AK_INTS:
        if (!read_ints(fe, v, path, iv, &n))
            return false;
        b->attr[b->nattr++] = ir_attr_ints(k, iv, n);
        return true;
    case AK_FLOAT:
        if (!fe_number(fe, v, path, &f))
            return false;
        b->attr[b->nattr++] = ir_attr_float(k, f);
        return true;
    default:
        if (!fe_want(fe, v, cJSON_String, path, "this attribute"))
            return false;
        b->attr[b->nattr++] = ir_attr_str(k, v->valuestring);
        return true;
    }
}

static bool read_dtype(Fe *fe, Build *b, const cJSON *v, const char *path)
{
    static const char *const names[] = {"f32", "i32", "bool", NULL};
    if (!fe_want(fe, v, cJSON_String, path, "'dtype'"))
        return false;
    b->dtype = ir_dtype_lookup(v->valuestring);
    b->has_dtype = true;
    if (b->dtype != DT_COUNT)
        return true;
    FeNear n = fe_near(v->valuestring);
    fe_near_list(&n, names);
    fe_fail(fe, path, "unknown dtype '%s' (there are f32, i32 and bool)", v->valuestring);
    fe_hint_near(fe, &n);
    return false;
}

static bool read_key(Fe *fe, Build *b, const cJSON *c, const char *path)
{
    if (!strcmp(c->string, "dtype"))
        return read_dtype(fe, b, c, path);
    if (!strcmp(c->string, "shape")) {
        b->has_shape = true;
        return fe_shape(fe, c, FE_DIM, path, &b->shape, b->op == OP_RESHAPE ? &b->infer : NULL);
    }
    return read_attr(fe, b, ir_attr_lookup(c->string), c, path);
}

static bool read_keys(Fe *fe, Build *b, const cJSON *spec, const char *path)
{
    for (const cJSON *c = spec->child; c; c = c->next) {
        char p[FE_PATH];
        fe_path_key(p, path, c->string);
        bool s = false;
        for (int i = 0; structural[i] && !s; i++)
            s = !strcmp(c->string, structural[i]);
        if (s)
            continue;
        if (!takes(b->op, c->string))
            return bad_key(fe, b->op, c->string, p);
        if (!read_key(fe, b, c, p))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- types */

static bool need(Fe *fe, bool have, IrOp op, const char *key, const char *path)
{
    return have ? true : fe_fail(fe, path, "op '%s' needs '%s'", ir_op_name(op), key);
}

static bool has_attr(const Build *b, IrAttrKey k)
{
    for (int i = 0; i < b->nattr; i++)
        if (b->attr[i].key == k)
            return true;
    return false;
}

/* A dropping op without a seed takes the next number of the model's
 * counter, so that no two share a random stream. */
static bool fe_seed(Fe *fe, Build *b)
{
    if (!has_attr(b, ATTR_SEED) && b->nattr < IR_MAX_ATTRS)
        b->attr[b->nattr++] = ir_attr_int(ATTR_SEED, fe->ndropout);
    fe->ndropout++;
    return true;
}

/* Defaults and required keys of the ops with given types. */
static bool complete(Fe *fe, Build *b, const char *path)
{
    IrOp op = b->op;
    if (op == OP_CONST) {
        if (!b->has_dtype)
            b->dtype = DT_F32, b->has_dtype = true;
        if (!b->has_shape)
            b->shape = ir_shape_of(0, NULL), b->has_shape = true;
        return need(fe, has_attr(b, ATTR_VALUE), op, "value", path);
    }
    if (op == OP_RESHAPE || op == OP_BROADCAST || op == OP_IOTA)
        return need(fe, b->has_shape, op, "shape", path);
    if (op == OP_CAST)
        return need(fe, b->has_dtype, op, "dtype", path);
    if (op == OP_CAUSAL_ATTENTION)
        return need(fe, has_attr(b, ATTR_HEADS), op, "heads", path) &&
               need(fe, has_attr(b, ATTR_SCALE), op, "scale", path) && fe_seed(fe, b);
    if (op == OP_DROPOUT)
        return fe_seed(fe, b);
    return true;
}

/* a / m for a monomial m, term by term; false unless exact. */
static bool div_monomial(IrDim a, IrDim m, IrDim *out)
{
    IrDim r = ir_dim_const(0);
    if (m.n != 1)
        return false;
    for (int i = 0; i < a.n; i++) {
        IrDim q = ir_dim_const(1);
        q.t[0] = a.t[i];
        if (q.t[0].coef % m.t[0].coef)
            return false;
        q.t[0].coef /= m.t[0].coef;
        for (int s = 0; s < IR_MAX_SYMS; s++) {
            if (q.t[0].exp[s] < m.t[0].exp[s])
                return false;
            q.t[0].exp[s] -= m.t[0].exp[s];
        }
        if (!ir_dim_add(r, q, &r))
            return false;
    }
    *out = r;
    return true;
}

/* Replaces the -1 of a reshape's shape by elements(x) / product(others). */
static bool infer_dim(Fe *fe, Build *b, const IrNode *x, const char *path)
{
    IrDim total, known = ir_dim_const(1);
    char sa[128], sb[128];
    bool ok = ir_shape_numel(&x->shape, &total);
    for (int i = 0; ok && i < b->shape.rank; i++)
        if (i != b->infer)
            ok = fe_dim_mag(known) * fe_dim_mag(b->shape.d[i]) < 4e18 &&
                 ir_dim_mul(known, b->shape.d[i], &known);
    if (ok && div_monomial(total, known, &b->shape.d[b->infer]))
        return fe_size_ok(fe, &b->shape, path);
    b->shape.d[b->infer] = ir_dim_const(1);
    ir_shape_str(&x->shape, fe->g->sym, sa, sizeof sa);
    ir_shape_str(&b->shape, fe->g->sym, sb, sizeof sb);
    return fe_fail(fe, path, "reshape: cannot infer the -1 in 'shape': %s does not divide "
                   "into %s with 1 at the -1", sa, sb);
}

/* ---------------------------------------------------------------- nodes */

bool fe_room(Fe *fe, const char *path)
{
    if (fe->g->nnodes < FE_MAX_NODES)
        return true;
    fe_fail(fe, path, "the graph would have more than %d nodes", FE_MAX_NODES);
    fe_hint(fe, "lower the repeat counts");
    return false;
}

IrNode *fe_scalar(Fe *fe, double v, const char *path)
{
    IrDType dt = DT_F32;
    IrShape s = ir_shape_of(0, NULL);
    IrAttr a = ir_attr_float(ATTR_VALUE, v);
    if (!fe_room(fe, path))
        return NULL;
    IrNode *n = ir_node_new(fe->g, OP_CONST, NULL, 0, &a, 1, &dt, &s, fe->err);
    if (!n)
        fe_fail_ir(fe, path);
    return n;
}

IrOp fe_op_check(Fe *fe, const cJSON *spec, const char *path, int nin)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(spec, "op");
    char p[FE_PATH];
    fe_path_key(p, path, "op");
    if (!fe_want(fe, o, cJSON_String, p, "'op'"))
        return OP_COUNT;
    IrOp op = ir_op_lookup(o->valuestring);
    if (op == OP_COUNT) {
        fe_fail(fe, path, "unknown op '%s'", o->valuestring);
        fe_hint(fe, "did you mean '%s'?", ir_op_nearest(o->valuestring));
        return OP_COUNT;
    }
    if (op == OP_INPUT || op == OP_PARAM) {
        fe_fail(fe, path, "op '%s' cannot be a node", o->valuestring);
        fe_hint(fe, "declare it in the %ss section", o->valuestring);
        return OP_COUNT;
    }
    const IrOpInfo *info = &ir_ops[op];
    fe_path_key(p, path, "in");
    if (nin >= info->min_in && nin <= info->max_in)
        return op;
    if (info->min_in == info->max_in)
        fe_fail(fe, p, "op '%s' takes %d input%s, got %d", info->name, info->min_in,
                info->min_in == 1 ? "" : "s", nin);
    else
        fe_fail(fe, p, "op '%s' takes %d to %d inputs, got %d", info->name, info->min_in,
                info->max_in, nin);
    return OP_COUNT;
}

IrNode *fe_op_build(Fe *fe, FeScope *sc, FeSpec *sp, const char *path, IrOp op, IrNode **in,
                    int nin)
{
    Build b;
    memset(&b, 0, sizeof b);
    b.op = op;
    b.infer = -1;
    if (!fe_check_dupes(fe, sp->json, path) || !read_keys(fe, &b, sp->json, path) ||
        !complete(fe, &b, path))
        return NULL;
    if (b.infer >= 0 && !infer_dim(fe, &b, in[0], path))
        return NULL;
    if (!fe_room(fe, path))
        return NULL;
    IrNode *n = ir_node_new(fe->g, op, in, nin, b.attr, b.nattr, b.has_dtype ? &b.dtype : NULL,
                            b.has_shape ? &b.shape : NULL, fe->err);
    if (!n) {
        fe_fail_ir(fe, path);
        return NULL;
    }
    n->name = fe_qualify(fe, sc->prefix, sp->name);
    return fe_size_ok(fe, &n->shape, path) ? n : NULL;
}
