/* fuse_horizontal.c — the last step of the fuse pass: kernels that only
 * write a train step's new state become one launch.
 *
 * After autodiff and the optimizer, every param has its own AdamW update:
 * one elementwise kernel (three siblings: the new m, v and weight) that
 * reads the param, its gradient, its moments and the step's scalars, and
 * whose outputs only go back into the param and its moments (outputs named
 * like a source: the runtime's write-back).  GPT-2 has 148 of them, each
 * too small to be worth a launch.  This step gathers every such kernel,
 * moves them next to one another at the place of the last of them, and
 * marks them with one `hgroup`.  Codegen then builds a single kernel that
 * runs over the concatenation of their element ranges (the parameter slab,
 * in the order of the params), split over the threads as one range.
 *
 * Moving them later is safe: their outputs have no reader in the graph, and
 * what they read is computed before the last of them.  What they read stays
 * live until the launch (memplan and schedule treat the group as one run,
 * pass_launch_run), which costs nothing here: the global gradient norm that
 * clipping and the `grad_norm` output need keeps every gradient alive until
 * the end anyway.
 *
 * A kernel qualifies when every node of its sibling run is an elementwise
 * fused node, read by no node, and returned as an output named like an
 * input or param.  With fewer than two such kernels nothing changes.
 */
#include "fuse_int.h"

#include <stdlib.h>
#include <string.h>

static bool update_node(const IrGraph *g, const IrNode *n, const int *readers)
{
    return n->op == OP_FUSED && n->body && !ir_node_attr(n, ATTR_HGROUP) &&
           readers[n->index] == 0 && pass_elementwise_kernel(n) && pass_written_back(g, n) >= 0;
}

/* Marks every node of each qualifying sibling run; returns the number of runs. */
static int find_updates(const IrGraph *g, bool *member, int *last)
{
    int *readers = calloc((size_t)g->nnodes + 1, sizeof *readers), runs = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++)
            readers[g->nodes[i]->in[k]->index]++;
    for (int i = 0; i < g->nnodes;) {
        int first, end;
        pass_sibling_run(g, i, &first, &end);
        bool all = true;
        for (int k = first; k <= end && all; k++)
            all = update_node(g, g->nodes[k], readers);
        for (int k = first; all && k <= end; k++)
            member[k] = true;
        if (all)
            runs++, *last = end;
        i = end + 1;
    }
    free(readers);
    return runs;
}

static int next_hgroup(const IrGraph *g)
{
    int h = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (ir_node_attr(g->nodes[i], ATTR_HGROUP) && ir_node_int(g->nodes[i], ATTR_HGROUP, 0) >= h)
            h = (int)ir_node_int(g->nodes[i], ATTR_HGROUP, 0) + 1;
    return h;
}

/* The order: the others before the last member, the members, the rest. */
static void regroup(IrGraph *g, const bool *member, int last, int h)
{
    int n = g->nnodes, k = 0;
    IrNode **old = malloc(sizeof *old * (size_t)n);
    memcpy(old, g->nodes, sizeof *old * (size_t)n);
    IrNode **order = malloc(sizeof *order * (size_t)n);
    for (int i = 0; i < last; i++)
        if (!member[i])
            order[k++] = old[i];
    for (int i = 0; i <= last; i++)
        if (member[i]) {
            ir_node_set_attr(g, old[i], ir_attr_int(ATTR_HGROUP, h));
            order[k++] = old[i];
        }
    for (int i = last + 1; i < n; i++)
        order[k++] = old[i];
    IR_ASSERT(k == n);
    g->nnodes = 0;
    for (int i = 0; i < n; i++)
        ir_graph_append(g, order[i]);
    free(old);
    free(order);
}

void fuse_horizontal(IrGraph *g, PassCtx *ctx)
{
    bool *member = calloc((size_t)g->nnodes + 1, sizeof *member);
    int last = -1, runs = find_updates(g, member, &last);
    if (runs >= 2) {
        int h = next_hgroup(g), nodes = 0;
        for (int i = 0; i < g->nnodes; i++)
            nodes += member[i];
        regroup(g, member, last, h);
        if (ctx->explain && ctx->out)
            fprintf(ctx->out, "// fuse: horizontal: %d update kernels (%d nodes) that only write "
                    "back params and optimizer state -> one launch (hgroup=%d)\n", runs, nodes, h);
    }
    free(member);
}
