/* verify.c — the IR verifier, run after every pass in tests and debug builds.
 *
 * Checks what every pass must preserve: SSA order (each operand is defined
 * by an earlier node of the same graph, so there are no dangling uses and
 * no cycles), unique ids, operand counts, attribute kinds, the stored
 * dtype and shape against the op's rules, unique input and param names,
 * and outputs that point into the graph.  Fusion bodies are verified as
 * graphs of their own.  Errors name the node as `%id (op)`.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static bool verify_fail(IrError *err, const IrGraph *g, const IrNode *n, const char *what)
{
    char prev[sizeof err->msg];
    snprintf(prev, sizeof prev, "%s", err->msg);
    ir_error(err, "verifier: graph '%s': %%%d (%s): %s", g->name, n->index, ir_op_name(n->op),
             what[0] ? what : prev);
    return false;
}

static bool verify_operands(const IrGraph *g, const IrNode *n, IrError *err)
{
    for (int j = 0; j < n->nin; j++) {
        const IrNode *m = n->in[j];
        if (!m || m->index < 0 || m->index >= n->index || g->nodes[m->index] != m)
            return verify_fail(err, g, n, "operand is not defined before its use");
    }
    return true;
}

static bool verify_attrs(const IrGraph *g, const IrNode *n, IrError *err)
{
    for (int j = 0; j < n->nattr; j++) {
        const IrAttr *a = &n->attr[j];
        if (a->key >= ATTR_COUNT)
            return verify_fail(err, g, n, "unknown attribute key");
        if (ir_attr_kind(a->key) == AK_STR && !a->s)
            return verify_fail(err, g, n, "string attribute without a value");
        if (j > 0 && n->attr[j - 1].key >= a->key)
            return verify_fail(err, g, n, "attributes not sorted or repeated");
    }
    return true;
}

/* Re-runs the rules on a copy and compares with the stored type. */
static bool verify_type(const IrGraph *g, const IrNode *n, IrError *err)
{
    IrNode copy = *n;
    if (!ir_infer(g, &copy, err))
        return verify_fail(err, g, n, "");
    if (copy.dtype != n->dtype || !ir_shape_eq(&copy.shape, &n->shape)) {
        char a[128], b[128], msg[300];
        ir_shape_str(&n->shape, g->sym, a, sizeof a);
        ir_shape_str(&copy.shape, g->sym, b, sizeof b);
        snprintf(msg, sizeof msg, "stored type %s%s but the op gives %s%s",
                 ir_dtype_name(n->dtype), a, ir_dtype_name(copy.dtype), b);
        return verify_fail(err, g, n, msg);
    }
    return true;
}

static bool verify_names(const IrGraph *g, const IrNode *n, IrError *err)
{
    if (n->op != OP_INPUT && n->op != OP_PARAM)
        return true;
    if (!n->name || !n->name[0])
        return verify_fail(err, g, n, "inputs and params need a name");
    for (int i = 0; i < n->index; i++) {
        const IrNode *m = g->nodes[i];
        if ((m->op == OP_INPUT || m->op == OP_PARAM) && m->name && !strcmp(m->name, n->name))
            return verify_fail(err, g, n, "name defined twice");
    }
    return true;
}

static bool verify_node(const IrGraph *g, const IrNode *n, IrError *err)
{
    if (n->op >= OP_COUNT)
        return verify_fail(err, g, n, "invalid op");
    if (!verify_operands(g, n, err) || !verify_attrs(g, n, err) || !verify_type(g, n, err) ||
        !verify_names(g, n, err))
        return false;
    if (n->body && !ir_verify(n->body, err))
        return false;
    return true;
}

static bool verify_outputs(const IrGraph *g, IrError *err)
{
    for (int i = 0; i < g->nout; i++) {
        const IrNode *n = g->outs[i].node;
        if (!n || n->index < 0 || n->index >= g->nnodes || g->nodes[n->index] != n) {
            ir_error(err, "verifier: graph '%s': output '%s' is not a node of the graph", g->name,
                     g->outs[i].name);
            return false;
        }
    }
    return true;
}

static bool verify_ids(const IrGraph *g, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->id < 0 || g->nodes[i]->id >= g->next_id) {
            ir_error(err, "verifier: graph '%s': node %d has an invalid id", g->name, i);
            return false;
        }
    return true;
}

bool ir_verify(const IrGraph *g, IrError *err)
{
    /* Indices are recomputed into a side array so a stale n->index (a pass
     * that forgot ir_graph_reindex) is reported rather than trusted. */
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->index != i) {
            ir_error(err, "verifier: graph '%s': node order is stale at position %d "
                     "(a pass must call ir_graph_reindex)", g->name, i);
            return false;
        }
    if (!verify_ids(g, err))
        return false;
    for (int i = 0; i < g->nnodes; i++)
        if (!verify_node(g, g->nodes[i], err))
            return false;
    return verify_outputs(g, err);
}
