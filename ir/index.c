/* index.c — integer values that select rows or classes, and the bindings
 * that keep them inside their tables.
 *
 * Integer tensors select things: gather reads row v of a table (and
 * scatter_add, its gradient, writes it), and cross_entropy picks class v of
 * each row of its logits.  Only the reference interpreter checks v.  A
 * compiled gather past its table reads rows of zeros, and once `decompose`
 * has turned cross_entropy into a one-hot, a target outside the classes
 * picks nothing, so the loss silently becomes a logsumexp.  The commands
 * therefore check before anything runs, with the functions of this file
 * (declared in ir.h):
 *
 *   ir_index_use            the values an integer input may hold: [0, R),
 *                           R the rows of the smallest table it indexes or
 *                           the classes of the cross_entropy it gives the
 *                           targets of (followed through movement ops), and
 *                           for targets the ignore index;
 *   ir_index_check_values   integer data against that use;
 *   ir_index_sym_limit      the largest value of a symbol S that keeps every
 *                           gather by an iota over S (positions 0..S-1)
 *                           inside its table: a positional embedding of 256
 *                           rows bounds T by 256, with or without a config
 *                           key that says so;
 *   ir_index_check_binding  a binding against those gathers, naming the
 *                           table a gather would read past.
 *
 * They read the graph as the model file made it, before `decompose`, while
 * cross_entropy is one op.  IR text of a later stage still shows the
 * classes through the one-hot (`eq` of the targets against an iota) and the
 * ignore index (`eq` against a constant), and ir_index_use reads those too.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

/* "'name'" or "%id" for messages. */
static const char *label(const IrNode *n, char *buf, size_t cap)
{
    if (n->name)
        snprintf(buf, cap, "'%s'", n->name);
    else
        snprintf(buf, cap, "%%%d", n->id);
    return buf;
}

/* The value of d at binding b; -1 when d is symbolic and b is NULL. */
static int64_t dim_at(IrDim d, const int64_t *b)
{
    int64_t v;
    if (ir_dim_is_const(d, &v))
        return v;
    return b ? ir_dim_eval(d, b) : -1;
}

/* Whether n holds the values 0..count-1 of an iota, reshaped, transposed or
 * broadcast (which keep the set of values); *count: the iota's length. */
static bool iota_count(const IrNode *n, IrDim *count)
{
    while (n->op == OP_RESHAPE || n->op == OP_TRANSPOSE || n->op == OP_BROADCAST)
        n = n->in[0];
    int ax = n->op == OP_IOTA ? ir_axis(ir_node_int(n, ATTR_AXIS, -1), n->shape.rank) : -1;
    if (ax < 0)
        return false;
    *count = n->shape.d[ax];
    return true;
}

static bool is_table_op(const IrNode *n, int j)
{
    return (n->op == OP_GATHER || n->op == OP_SCATTER_ADD) && j == 1;
}

/* ---------------------------------------------------------------- integer inputs */

/* The range that operand j of n sets for its values, else 0. */
static int64_t use_range(const IrNode *n, int j, const int64_t *b)
{
    const IrShape *s = &n->in[0]->shape;
    IrDim c;
    if (is_table_op(n, j))
        return dim_at(s->d[0], b);
    if (n->op == OP_CROSS_ENTROPY && j == 1)
        return dim_at(s->d[s->rank - 1], b);
    if (n->op == OP_EQ && iota_count(n->in[1 - j], &c))
        return dim_at(c, b);
    return 0;
}

static void note_use(IrIndexUse *u, const IrNode *n, int j, const int64_t *b, bool *ignorable)
{
    if (n->op == OP_CROSS_ENTROPY && j == 1) {
        *ignorable = true;
        u->ignore = ir_node_int(n, ATTR_IGNORE_INDEX, -100);
    } else if (n->op == OP_EQ && n->in[1 - j]->op == OP_CONST) {
        *ignorable = true; /* a decomposed cross_entropy's ignore test */
        u->ignore = (int64_t)ir_node_float(n->in[1 - j], ATTR_VALUE, 0);
    }
    int64_t r = use_range(n, j, b);
    if (r <= 0 || (u->range > 0 && r >= u->range))
        return;
    u->range = r;
    u->user = n;
    u->table = n->op == OP_EQ ? NULL : n->in[0];
}

IrIndexUse ir_index_use(const IrGraph *g, const IrNode *x, const int64_t *binding)
{
    IrIndexUse u = {0};
    if (x->dtype != DT_I32)
        return u;
    IR_ASSERT(x->index < g->nnodes && g->nodes[x->index] == x);
    bool *from = calloc((size_t)g->nnodes, 1), ignorable = false, indexes = false;
    from[x->index] = true;
    for (int i = x->index + 1; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            if (!from[n->in[j]->index])
                continue;
            if (ir_ops[n->op].kind == OPK_MOVEMENT)
                from[i] = true;
            else
                note_use(&u, n, j, binding, &ignorable);
            indexes |= is_table_op(n, j);
        }
    }
    free(from);
    u.has_ignore = ignorable && !indexes && u.range > 0; /* a row -100 does not exist */
    return u;
}

/* What the range is, for a message: "the rows of 'tok_emb.weight' that
 * gather 'tok' reads" or "the classes of cross_entropy 'loss'". */
static void describe_use(const IrIndexUse *u, char *buf, size_t cap)
{
    char a[160], b[160];
    label(u->user, a, sizeof a);
    if (u->user->op == OP_GATHER || u->user->op == OP_SCATTER_ADD)
        snprintf(buf, cap, "the rows of %s that %s %s indexes", label(u->table, b, sizeof b),
                 ir_op_name(u->user->op), a);
    else if (u->user->op == OP_CROSS_ENTROPY)
        snprintf(buf, cap, "the classes of cross_entropy %s (the width of %s)", a,
                 label(u->table, b, sizeof b));
    else
        snprintf(buf, cap, "the classes of the one-hot %s", a);
}

bool ir_index_check_values(const IrIndexUse *u, const char *name, const int32_t *v, int64_t n,
                           IrError *err)
{
    for (int64_t k = 0; u->range > 0 && k < n; k++) {
        if ((v[k] >= 0 && v[k] < u->range) || (u->has_ignore && v[k] == u->ignore))
            continue;
        char what[400];
        describe_use(u, what, sizeof what);
        ir_error(err, "input '%s' holds %d at element %lld, outside [0, %lld): %s", name, v[k],
                 (long long)k, (long long)u->range, what);
        if (u->has_ignore)
            ir_error_hint(err, "a target is a class below %lld, or the ignore index %lld; if "
                          "the labels are right, the logits need more classes",
                          (long long)u->range, (long long)u->ignore);
        else
            ir_error_hint(err, "an index is a row of the table, below %lld; if the data is "
                          "right, the table needs more rows", (long long)u->range);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- gathers by position */

int64_t ir_index_sym_limit(const IrGraph *g, int sym, const IrNode **table)
{
    int64_t lim = 0, rows;
    IrDim c;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (!is_table_op(n, 1) || !iota_count(n->in[1], &c) || !ir_dim_eq(c, ir_dim_sym(sym)) ||
            !ir_dim_is_const(n->in[0]->shape.d[0], &rows) || (lim > 0 && rows >= lim))
            continue;
        lim = rows;
        if (table)
            *table = n->in[0];
    }
    return lim;
}

/* The symbol that c is, or -1 when c is not one symbol. */
static int lone_sym(const IrGraph *g, IrDim c)
{
    for (int s = 0; s < g->nsym; s++)
        if (ir_dim_eq(c, ir_dim_sym(s)))
            return s;
    return -1;
}

static void report_past(const IrGraph *g, const IrNode *n, IrDim c, const int64_t *binding,
                        int *sym, int64_t *max, IrError *err)
{
    char a[160], t[160], cs[64];
    int64_t rows = ir_dim_eval(n->in[0]->shape.d[0], binding);
    ir_dim_str(c, g->sym, cs, sizeof cs);
    *sym = lone_sym(g, c);
    *max = rows;
    ir_error(err, "%s %s reads rows 0..%s-1 of %s, which has %lld rows: at %s=%lld it would "
             "read past the end", ir_op_name(n->op), label(n, a, sizeof a), cs,
             label(n->in[0], t, sizeof t), (long long)rows, cs,
             (long long)ir_dim_eval(c, binding));
    ir_error_hint(err, "%s must be at most %lld here; bind it lower, or give %s more rows",
                  cs, (long long)rows, t);
}

bool ir_index_check_binding(const IrGraph *g, const int64_t *binding, int *sym, int64_t *max,
                            IrError *err)
{
    IrDim c;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (!is_table_op(n, 1) || !iota_count(n->in[1], &c) ||
            ir_dim_eval(c, binding) <= ir_dim_eval(n->in[0]->shape.d[0], binding))
            continue;
        report_past(g, n, c, binding, sym, max, err);
        return false;
    }
    *sym = -1;
    *max = 0;
    return true;
}
