/* dce.c — dead code elimination: drop the nodes no output depends on.
 *
 * One backward sweep over the node order (which is a topological order)
 * marks what the outputs reach: a node is live if it is an output or an
 * operand of a live node.  A second sweep keeps the live nodes in their
 * order and the graph is reindexed; O(nodes).
 *
 * Inputs and params are kept even when nothing reads them.  They are the
 * graph's interface, not computations: the runtime binds inputs by name,
 * checkpoints hold every param (and a frozen or not-yet-used param must
 * still load and save), and inside a fusion body the inputs stand, by
 * position, for the operands of the fusion node.  Removing one would change
 * what the graph accepts, not just how it computes.
 *
 * Fusion bodies are graphs of their own: the pass recurses into the body of
 * every node it keeps, and frees the body of every node it drops (bodies
 * have their own arenas, which ir_graph_free only reaches through nodes
 * still in the graph).
 */
#include "pass.h"

#include <stdlib.h>

static bool is_interface(const IrNode *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

static void mark_live(const IrGraph *g, bool *live)
{
    for (int i = 0; i < g->nout; i++)
        live[g->outs[i].node->index] = true;
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const IrNode *n = g->nodes[i];
        if (!live[i] && !is_interface(n))
            continue;
        live[i] = true;
        for (int j = 0; j < n->nin; j++)
            live[n->in[j]->index] = true;
    }
}

/* Keeps the live nodes in order; frees the bodies of the others. */
static void sweep(IrGraph *g, const bool *live)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (live[i]) {
            g->nodes[k++] = n;
            continue;
        }
        ir_graph_free(n->body);
        n->body = NULL;
    }
    g->nnodes = k;
    ir_graph_reindex(g);
}

bool pass_dce(IrGraph *g, PassCtx *ctx)
{
    bool *live = calloc(g->nnodes ? g->nnodes : 1, sizeof *live);
    IR_ASSERT(live);
    mark_live(g, live);
    sweep(g, live);
    free(live);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->body && !pass_dce(g->nodes[i]->body, ctx))
            return false;
    return true;
}
