/* graph.c — the op table, dtypes, attributes, graphs and the builder.
 *
 * The op and attribute tables are expanded here from ops.def/attrs.def.
 * ir_node_new is the one way nodes come to be: it copies operands and
 * attributes inline, runs the op's shape and dtype rules (ir_infer) and
 * appends the node to the graph's order.  Graph node lists grow by
 * doubling inside the arena (the old array is simply left behind).
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ops */

const IrOpInfo ir_ops[OP_COUNT] = {
#define ND(operand, why) operand, why
#define ND_NONE -2, NULL
#define OP(E, n, mi, ma, k, sr, dr, lower, math, cost, flops, step, keys, nd) \
    [OP_##E] = {#n, mi, ma, OPK_##k, flops, step, keys, nd},
#include "ops.def"
#undef OP
#undef ND
#undef ND_NONE
};

_Static_assert(OP_COUNT == sizeof ir_ops / sizeof ir_ops[0], "op table out of sync");

const char *ir_op_name(IrOp op)
{
    return op < OP_COUNT ? ir_ops[op].name : "?";
}

bool ir_op_drops(IrOp op)
{
    return op < OP_COUNT && ir_ops[op].step >= 0;
}

IrOp ir_op_lookup(const char *name)
{
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(ir_ops[i].name, name) == 0)
            return (IrOp)i;
    return OP_COUNT;
}

static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

const char *ir_op_nearest(const char *name)
{
    const char *best = ir_ops[0].name;
    int bestd = 1 << 30;
    for (int i = 0; i < OP_COUNT; i++) {
        int d = edit_distance(name, ir_ops[i].name);
        if (d < bestd) {
            bestd = d;
            best = ir_ops[i].name;
        }
    }
    return best;
}

const char *ir_opkind_name(IrOpKind k)
{
    static const char *names[] = {"source", "elementwise", "reduction", "movement", "opaque",
                                  "composite", "fused"};
    return k <= OPK_FUSED ? names[k] : "?";
}

/* ---------------------------------------------------------------- dtypes */

static const char *dtype_names[DT_COUNT] = {"f32", "i32", "bool"};
static const size_t dtype_sizes[DT_COUNT] = {4, 4, 1};

const char *ir_dtype_name(IrDType t)
{
    return t < DT_COUNT ? dtype_names[t] : "?";
}

IrDType ir_dtype_lookup(const char *name)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(dtype_names[i], name) == 0)
            return (IrDType)i;
    return DT_COUNT;
}

size_t ir_dtype_size(IrDType t)
{
    return t < DT_COUNT ? dtype_sizes[t] : 0;
}

/* ---------------------------------------------------------------- attributes */

static const struct {
    const char *name;
    IrAttrKind kind;
} attr_info[ATTR_COUNT] = {
#define ATTR(E, n, k) [ATTR_##E] = {#n, AK_##k},
#include "attrs.def"
#undef ATTR
};

const char *ir_attr_name(IrAttrKey k)
{
    return k < ATTR_COUNT ? attr_info[k].name : "?";
}

IrAttrKind ir_attr_kind(IrAttrKey k)
{
    IR_ASSERT(k < ATTR_COUNT);
    return attr_info[k].kind;
}

IrAttrKey ir_attr_lookup(const char *name)
{
    for (int i = 0; i < ATTR_COUNT; i++)
        if (strcmp(attr_info[i].name, name) == 0)
            return (IrAttrKey)i;
    return ATTR_COUNT;
}

IrAttr ir_attr_int(IrAttrKey k, int64_t v)
{
    IrAttr a;
    memset(&a, 0, sizeof a);
    a.key = (uint8_t)k;
    a.i[0] = v;
    return a;
}

IrAttr ir_attr_ints(IrAttrKey k, const int64_t *v, int n)
{
    IR_ASSERT(n >= 0 && n <= IR_MAX_RANK);
    IrAttr a = ir_attr_int(k, 0);
    a.n = (uint8_t)n;
    for (int i = 0; i < n; i++)
        a.i[i] = v[i];
    return a;
}

IrAttr ir_attr_float(IrAttrKey k, double v)
{
    IrAttr a = ir_attr_int(k, 0);
    a.f = v;
    return a;
}

IrAttr ir_attr_str(IrAttrKey k, const char *s)
{
    IrAttr a = ir_attr_int(k, 0);
    a.s = s;
    return a;
}

const IrAttr *ir_node_attr(const IrNode *n, IrAttrKey k)
{
    for (int i = 0; i < n->nattr; i++)
        if (n->attr[i].key == k)
            return &n->attr[i];
    return NULL;
}

int64_t ir_node_int(const IrNode *n, IrAttrKey k, int64_t dflt)
{
    const IrAttr *a = ir_node_attr(n, k);
    return a ? a->i[0] : dflt;
}

double ir_node_float(const IrNode *n, IrAttrKey k, double dflt)
{
    const IrAttr *a = ir_node_attr(n, k);
    return a ? a->f : dflt;
}

const char *ir_node_str(const IrNode *n, IrAttrKey k, const char *dflt)
{
    const IrAttr *a = ir_node_attr(n, k);
    return a && a->s ? a->s : dflt;
}

/* Keeps attributes sorted by key so that printing is canonical. */
void ir_node_set_attr(IrGraph *g, IrNode *n, IrAttr a)
{
    if (a.s)
        a.s = ir_arena_strdup(g->arena, a.s);
    for (int i = 0; i < n->nattr; i++)
        if (n->attr[i].key == a.key) {
            n->attr[i] = a;
            return;
        }
    IR_ASSERT(n->nattr < IR_MAX_ATTRS);
    int k = n->nattr++;
    while (k > 0 && n->attr[k - 1].key > a.key) {
        n->attr[k] = n->attr[k - 1];
        k--;
    }
    n->attr[k] = a;
}

/* ---------------------------------------------------------------- graphs */

IrGraph *ir_graph_new(const char *name)
{
    IrArena *a = ir_arena_new();
    IrGraph *g = ir_arena_alloc(a, sizeof *g);
    g->arena = a;
    g->name = ir_arena_strdup(a, name ? name : "main");
    return g;
}

/* Fusion bodies are graphs of their own and are freed with their parent. */
void ir_graph_free(IrGraph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nnodes; i++)
        ir_graph_free(g->nodes[i]->body);
    ir_arena_free(g->arena);
}

int ir_graph_find_sym(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nsym; i++)
        if (strcmp(g->sym[i], name) == 0)
            return i;
    return -1;
}

int ir_graph_sym(IrGraph *g, const char *name)
{
    int i = ir_graph_find_sym(g, name);
    if (i >= 0)
        return i;
    if (g->nsym == IR_MAX_SYMS)
        return -1;
    g->sym[g->nsym] = ir_arena_strdup(g->arena, name);
    return g->nsym++;
}

void ir_graph_append(IrGraph *g, IrNode *n)
{
    if (g->nnodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        IrNode **nodes = ir_arena_alloc(g->arena, cap * sizeof *nodes);
        if (g->nnodes)
            memcpy(nodes, g->nodes, g->nnodes * sizeof *nodes);
        g->nodes = nodes;
        g->cap = cap;
    }
    n->index = g->nnodes;
    g->nodes[g->nnodes++] = n;
}

void ir_graph_add_output(IrGraph *g, const char *name, IrNode *n)
{
    if (g->nout == g->outcap) {
        int cap = g->outcap ? 2 * g->outcap : 8;
        IrOutput *outs = ir_arena_alloc(g->arena, cap * sizeof *outs);
        if (g->nout)
            memcpy(outs, g->outs, g->nout * sizeof *outs);
        g->outs = outs;
        g->outcap = cap;
    }
    g->outs[g->nout].name = ir_arena_strdup(g->arena, name);
    g->outs[g->nout++].node = n;
}

IrNode *ir_graph_find(const IrGraph *g, IrOp op, const char *name)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (n->op == op && n->name && strcmp(n->name, name) == 0)
            return n;
    }
    return NULL;
}

void ir_graph_reindex(IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i]->index = i;
}

/* ---------------------------------------------------------------- builder */

IrNode *ir_node_new(IrGraph *g, IrOp op, IrNode *const *in, int nin,
                    const IrAttr *attrs, int nattr,
                    const IrDType *type_dt, const IrShape *type_shape, IrError *err)
{
    IR_ASSERT(op < OP_COUNT && nin >= 0 && nin <= IR_MAX_IN && nattr <= IR_MAX_ATTRS);
    IrNode *n = ir_arena_alloc(g->arena, sizeof *n);
    n->op = op;
    n->nin = nin;
    for (int i = 0; i < nin; i++)
        n->in[i] = in[i];
    for (int i = 0; i < nattr; i++)
        ir_node_set_attr(g, n, attrs[i]);
    if (type_dt)
        n->dtype = *type_dt;
    if (type_shape)
        n->shape = *type_shape;
    if (!ir_infer(g, n, err))
        return NULL;
    n->id = g->next_id++;
    ir_graph_append(g, n);
    return n;
}

static IrNode *must(IrNode *n, IrError *err)
{
    if (!n) {
        fprintf(stderr, "gradc: internal error: builder: %s\n", err->msg);
        IR_ASSERT(!"node construction failed");
    }
    return n;
}

IrNode *ir_input(IrGraph *g, const char *name, IrDType dt, IrShape s)
{
    IrError err = {0};
    IrNode *n = must(ir_node_new(g, OP_INPUT, NULL, 0, NULL, 0, &dt, &s, &err), &err);
    n->name = ir_arena_strdup(g->arena, name);
    return n;
}

IrNode *ir_param(IrGraph *g, const char *name, IrShape s, const char *init, double std,
                 bool trainable)
{
    IrError err = {0};
    IrDType dt = DT_F32;
    IrAttr a[3] = {ir_attr_str(ATTR_INIT, init), ir_attr_float(ATTR_STD, std),
                   ir_attr_int(ATTR_TRAINABLE, trainable)};
    int na = strcmp(init, "normal") == 0 ? 3 : 1;
    if (na == 1)
        a[1] = a[2];
    IrNode *n = must(ir_node_new(g, OP_PARAM, NULL, 0, a, na == 1 ? 2 : 3, &dt, &s, &err), &err);
    n->name = ir_arena_strdup(g->arena, name);
    return n;
}

IrNode *ir_const(IrGraph *g, double v, IrDType dt, IrShape s)
{
    IrError err = {0};
    IrAttr a = ir_attr_float(ATTR_VALUE, v);
    return must(ir_node_new(g, OP_CONST, NULL, 0, &a, 1, &dt, &s, &err), &err);
}

IrNode *ir_unary(IrGraph *g, IrOp op, IrNode *a)
{
    return ir_op1(g, op, a, NULL, 0);
}

IrNode *ir_binary(IrGraph *g, IrOp op, IrNode *a, IrNode *b)
{
    return ir_op2(g, op, a, b, NULL, 0);
}

IrNode *ir_reduce(IrGraph *g, IrOp op, IrNode *a, const int *axes, int naxes, bool keepdim)
{
    int64_t ax[IR_MAX_RANK];
    for (int i = 0; i < naxes; i++)
        ax[i] = axes[i];
    IrAttr at[2] = {ir_attr_ints(ATTR_AXES, ax, naxes), ir_attr_int(ATTR_KEEPDIM, keepdim)};
    return ir_op1(g, op, a, at, 2);
}

IrNode *ir_op1(IrGraph *g, IrOp op, IrNode *a, const IrAttr *attrs, int nattr)
{
    IrError err = {0};
    return must(ir_node_new(g, op, &a, 1, attrs, nattr, NULL, NULL, &err), &err);
}

IrNode *ir_op2(IrGraph *g, IrOp op, IrNode *a, IrNode *b, const IrAttr *attrs, int nattr)
{
    IrError err = {0};
    IrNode *in[2] = {a, b};
    return must(ir_node_new(g, op, in, 2, attrs, nattr, NULL, NULL, &err), &err);
}

void ir_replace_uses(IrGraph *g, IrNode *from, IrNode *to)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] == from)
                n->in[j] = to;
    }
    for (int i = 0; i < g->nout; i++)
        if (g->outs[i].node == from)
            g->outs[i].node = to;
}

int64_t ir_node_numel_const(const IrNode *n)
{
    int64_t total = 1, v;
    for (int i = 0; i < n->shape.rank; i++) {
        if (!ir_dim_is_const(n->shape.d[i], &v))
            return -1;
        total *= v;
    }
    return total;
}

/* ---------------------------------------------------------------- clone */

static IrGraph *clone_into(const IrGraph *g, IrGraph *c);

IrGraph *ir_graph_clone(const IrGraph *g)
{
    IrGraph *c = ir_graph_new(g->name);
    return clone_into(g, c);
}

static IrGraph *clone_into(const IrGraph *g, IrGraph *c)
{
    for (int i = 0; i < g->nsym; i++)
        ir_graph_sym(c, g->sym[i]);
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i]->aux = NULL;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        IrNode *m = ir_arena_alloc(c->arena, sizeof *m);
        *m = *n;
        for (int j = 0; j < n->nin; j++)
            m->in[j] = n->in[j]->aux;
        for (int j = 0; j < n->nattr; j++)
            m->attr[j].s = ir_arena_strdup(c->arena, n->attr[j].s);
        m->name = ir_arena_strdup(c->arena, n->name);
        m->body = n->body ? ir_graph_clone(n->body) : NULL;
        m->aux = NULL;
        ir_graph_append(c, m);
        g->nodes[i]->aux = m;
    }
    c->next_id = g->next_id;
    for (int i = 0; i < g->nout; i++)
        ir_graph_add_output(c, g->outs[i].name, g->outs[i].node->aux);
    return c;
}
