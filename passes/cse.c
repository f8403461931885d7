/* cse.c — common-subexpression elimination.
 *
 * Two nodes compute the same value when they have the same op, the same
 * operands (the same nodes, by pointer), the same attributes (compared by
 * value: strings by content, floats bit for bit, so 0.0 and -0.0 stay
 * apart) and the same dtype and shape.  For add, mul, maximum, minimum and
 * eq the operand order does not matter: both orders are looked up in the
 * canonical order of the operands' node indices.
 *
 * One forward sweep in node order does it in O(nodes) with a hash table
 * keyed on (op, operands, attributes).  node->aux holds each node's
 * representative: the node itself, or the earlier node it was merged into.
 * Every node first has its operands replaced by their representatives, so a
 * chain of duplicates collapses in the same sweep (if %3 == %2 then
 * neg %3 == neg %2), and the outputs are redirected at the end.
 *
 * A merged node has no uses left, so a last sweep removes it (and frees
 * its body) and reindexes the graph.  Removing it here rather than leaving
 * it to dce matters for bodies: a body that still held a merged duplicate
 * would no longer match an equal body elsewhere.
 *
 * Never merged:
 *   - inputs and params: each is a distinct value bound from outside, even
 *     when two have equal types;
 *   - dropout: every dropout node draws its own random mask, so two of them
 *     with equal attributes (even an equal seed attribute, which names an RNG
 *     stream, not a mask) are different values; merging them would make
 *     two dropout layers share one mask;
 *   - nodes with fusion bodies, unless the bodies print identically
 *     (compared node by node, see body_eq).
 * Bodies are processed first, as graphs of their own.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct CseTable {
    IrNode **slot;
    size_t mask; /* capacity - 1, a power of two minus one */
} CseTable;

static IrNode *rep(const IrNode *n)
{
    return (IrNode *)n->aux;
}

static bool is_commutative(IrOp op)
{
    return op == OP_ADD || op == OP_MUL || op == OP_MAXIMUM || op == OP_MINIMUM || op == OP_EQ;
}

static bool mergeable(const IrNode *n)
{
    return n->op != OP_INPUT && n->op != OP_PARAM && !ir_op_drops(n->op);
}

/* Operand j of n in canonical order (commutative pairs sorted by index). */
static const IrNode *operand(const IrNode *n, int j)
{
    if (n->nin == 2 && is_commutative(n->op) && n->in[0]->index > n->in[1]->index)
        return n->in[1 - j];
    return n->in[j];
}

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t hash_attr(uint64_t h, const IrAttr *a)
{
    h = mix(h, a->key);
    switch (ir_attr_kind(a->key)) {
    case AK_INT:
        return mix(h, (uint64_t)a->i[0]);
    case AK_INTS:
        for (int k = 0; k < a->n; k++)
            h = mix(h, (uint64_t)a->i[k]);
        return mix(h, a->n);
    case AK_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &a->f, sizeof bits);
        return mix(h, bits);
    }
    case AK_STR:
        for (const char *s = a->s; s && *s; s++)
            h = mix(h, (unsigned char)*s);
        return h;
    }
    return h;
}

static uint64_t hash_node(const IrNode *n)
{
    uint64_t h = mix(n->op, n->dtype);
    for (int j = 0; j < n->nin; j++)
        h = mix(h, (uint64_t)operand(n, j)->index);
    for (int j = 0; j < n->nattr; j++)
        h = hash_attr(h, &n->attr[j]);
    return mix(h, n->shape.rank);
}

/* ---------------------------------------------------------------- equality */

static bool same_name(const char *a, const char *b)
{
    return a && b ? !strcmp(a, b) : a == b;
}

static bool attr_eq(const IrAttr *a, const IrAttr *b)
{
    if (a->key != b->key)
        return false;
    switch (ir_attr_kind(a->key)) {
    case AK_INT:
        return a->i[0] == b->i[0];
    case AK_INTS:
        return a->n == b->n && !memcmp(a->i, b->i, a->n * sizeof a->i[0]);
    case AK_FLOAT:
        return !memcmp(&a->f, &b->f, sizeof a->f);
    case AK_STR:
        return same_name(a->s, b->s);
    }
    return false;
}

static bool same_attrs(const IrNode *a, const IrNode *b)
{
    if (a->nattr != b->nattr)
        return false;
    for (int j = 0; j < a->nattr; j++)
        if (!attr_eq(&a->attr[j], &b->attr[j]))
            return false;
    return true;
}

static bool body_eq(const IrGraph *a, const IrGraph *b);

/* Same op, type and attributes: what the printer writes besides operands. */
static bool same_head(const IrNode *a, const IrNode *b)
{
    return a->op == b->op && a->nin == b->nin && a->dtype == b->dtype &&
           ir_shape_eq(&a->shape, &b->shape) && same_attrs(a, b) && body_eq(a->body, b->body);
}

/* Body nodes match position by position, operands by position too. */
static bool body_node_eq(const IrNode *a, const IrNode *b)
{
    if (!same_head(a, b) || !same_name(a->name, b->name))
        return false;
    for (int j = 0; j < a->nin; j++)
        if (a->in[j]->index != b->in[j]->index)
            return false;
    return true;
}

/* True when two bodies would print identically.  They are compared node by
 * node rather than through ir_print_str, because a body printed on its own
 * has no symbol names and would show B and T alike. */
static bool body_eq(const IrGraph *a, const IrGraph *b)
{
    if (!a || !b)
        return a == b;
    if (a->nnodes != b->nnodes || a->nout != b->nout)
        return false;
    for (int i = 0; i < a->nnodes; i++)
        if (!body_node_eq(a->nodes[i], b->nodes[i]))
            return false;
    for (int i = 0; i < a->nout; i++)
        if (a->outs[i].node->index != b->outs[i].node->index ||
            !same_name(a->outs[i].name, b->outs[i].name))
            return false;
    return true;
}

static bool node_eq(const IrNode *a, const IrNode *b)
{
    if (!same_head(a, b))
        return false;
    for (int j = 0; j < a->nin; j++)
        if (operand(a, j) != operand(b, j))
            return false;
    return true;
}

/* ---------------------------------------------------------------- table */

static CseTable table_new(int nnodes)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)nnodes)
        cap *= 2;
    CseTable t = {calloc(cap, sizeof(IrNode *)), cap - 1};
    IR_ASSERT(t.slot);
    return t;
}

/* The earlier node equal to n, or NULL after inserting n (linear probing). */
static IrNode *table_find_or_add(CseTable *t, IrNode *n)
{
    size_t i = hash_node(n) & t->mask;
    for (; t->slot[i]; i = (i + 1) & t->mask)
        if (node_eq(t->slot[i], n))
            return t->slot[i];
    t->slot[i] = n;
    return NULL;
}

/* ---------------------------------------------------------------- the pass */

static void cse_node(CseTable *t, IrNode *n)
{
    for (int j = 0; j < n->nin; j++)
        n->in[j] = rep(n->in[j]);
    IrNode *same = mergeable(n) ? table_find_or_add(t, n) : NULL;
    n->aux = same ? same : n;
}

static bool cse_bodies(IrGraph *g, PassCtx *ctx)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->body && !pass_cse(g->nodes[i]->body, ctx))
            return false;
    return true;
}

/* Drops the merged nodes (aux != self), keeping the order. */
static void sweep(IrGraph *g)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (rep(n) == n) {
            g->nodes[k++] = n;
            continue;
        }
        ir_graph_free(n->body);
        n->body = NULL;
    }
    g->nnodes = k;
    ir_graph_reindex(g);
}

bool pass_cse(IrGraph *g, PassCtx *ctx)
{
    if (!cse_bodies(g, ctx))
        return false;
    CseTable t = table_new(g->nnodes);
    for (int i = 0; i < g->nnodes; i++)
        cse_node(&t, g->nodes[i]);
    free(t.slot);
    for (int i = 0; i < g->nout; i++)
        g->outs[i].node = rep(g->outs[i].node);
    sweep(g);
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i]->aux = NULL;
    return true;
}
