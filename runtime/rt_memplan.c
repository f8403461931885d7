/* rt_memplan.c — arena offsets for a compiled graph, by liveness.
 *
 * Every KERNEL node of a CgProgram writes one buffer; an ALIAS (a reshape)
 * writes none and reads its operand's, so buffers are named by their root:
 * follow alias_of until a node that is not an alias.  Roots that are
 * SOURCE nodes (inputs, params) or pinned by the caller live outside the
 * arena; every other root gets an arena offset.
 *
 * Lifetimes are intervals of node indices, both ends inclusive:
 *   begin  the root's own index (the kernel writes it there);
 *   end    the largest index of a node that reads the root through any
 *          alias; n (past the last node) when any graph output reaches it,
 *          since outputs and write-back values are read after the run.
 * Sibling fused nodes (the outputs of one multi-output kernel: adjacent,
 * same `group`, same operands) are all written by the last sibling's
 * kernel (codegen/cg_lower_fused.c), so each sibling's life extends at
 * least to the last sibling's index.
 * Two buffers whose intervals meet must not overlap in memory.  Because a
 * kernel's operands are live at its own index, its result never shares
 * memory with them: no kernel works in place (the passes issue may add
 * safe in-place reuse later).
 *
 * Placement is offline, since every lifetime is known before anything runs:
 * buffers are taken largest first (ties by index), and each goes into the
 * smallest gap between the already placed buffers that are live at the same
 * time (best fit), or on top of them.  The arena size is the highest end.
 * This is O(buffers^2), a few milliseconds for a GPT-2 train step.
 */
#include "rt_exec.h"

#include <stdlib.h>
#include <string.h>

typedef struct Placed {
    int64_t off, size;
} Placed;

static int64_t round_up(int64_t v, int64_t a)
{
    return (v + a - 1) / a * a;
}

/* ---------------------------------------------------------------- roots */

static bool find_roots(const CgProgram *p, int *root, IrError *err)
{
    for (int i = 0; i < p->nnodes; i++) {
        const CgNodeCode *c = &p->nodes[i];
        root[i] = i;
        if (c->kind != CG_ALIAS)
            continue;
        if (c->alias_of < 0 || c->alias_of >= i) {
            ir_error(err, "internal: node %d aliases node %d, which is not an earlier node",
                     i, c->alias_of);
            return false;
        }
        root[i] = root[c->alias_of];
    }
    return true;
}

static bool same_operands(const IrNode *a, const IrNode *b)
{
    if (a->nin != b->nin)
        return false;
    for (int k = 0; k < a->nin; k++)
        if (a->in[k] != b->in[k])
            return false;
    return true;
}

int rt_sibling_end(const IrGraph *g, int i)
{
    const IrNode *a = g->nodes[i];
    if (a->op != OP_FUSED || !ir_node_attr(a, ATTR_GROUP))
        return i;
    int64_t grp = ir_node_int(a, ATTR_GROUP, 0);
    while (i + 1 < g->nnodes) {
        const IrNode *b = g->nodes[i + 1];
        if (b->op != OP_FUSED || !ir_node_attr(b, ATTR_GROUP) ||
            ir_node_int(b, ATTR_GROUP, 0) != grp || !same_operands(a, b))
            break;
        i++;
    }
    return i;
}

/* last[r] for every root r: readers through any alias, outputs to the end. */
static void find_last_uses(const IrGraph *g, RtMemPlan *plan)
{
    for (int i = 0; i < plan->n; i++)
        plan->last[i] = rt_sibling_end(g, i);
    for (int i = 0; i < plan->n; i++) {
        const IrNode *nd = g->nodes[i];
        for (int j = 0; j < nd->nin; j++) {
            int r = plan->root[nd->in[j]->index];
            if (plan->last[r] < i)
                plan->last[r] = i;
        }
    }
    for (int o = 0; o < g->nout; o++)
        plan->last[plan->root[g->outs[o].node->index]] = plan->n;
}

static bool in_arena(const CgProgram *p, const bool *pinned, const int *root, int i)
{
    return root[i] == i && p->nodes[i].kind == CG_KERNEL && !(pinned && pinned[i]);
}

/* ---------------------------------------------------------------- placement */

static const int64_t *sort_sizes; /* qsort has no context argument */

static int by_size_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (sort_sizes[x] != sort_sizes[y])
        return sort_sizes[x] > sort_sizes[y] ? -1 : 1;
    return x - y;
}

static int by_offset(const void *a, const void *b)
{
    const Placed *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The offset of a buffer of `size` bytes among `busy` (sorted by offset):
 * the smallest gap that fits, else the top of the highest buffer. */
static int64_t best_fit(const Placed *busy, int nbusy, int64_t size)
{
    int64_t top = 0, best = -1, best_gap = INT64_MAX;
    for (int k = 0; k < nbusy; k++) {
        int64_t gap = busy[k].off - top;
        if (gap >= size && gap < best_gap) {
            best = top;
            best_gap = gap;
        }
        if (busy[k].off + busy[k].size > top)
            top = busy[k].off + busy[k].size;
    }
    return best >= 0 ? best : top;
}

/* Places buffer b given the buffers order[0..k) placed before it. */
static void place_one(RtMemPlan *plan, const int *order, int k, Placed *busy)
{
    int b = order[k], nbusy = 0;
    for (int j = 0; j < k; j++) {
        int o = order[j];
        if (plan->size[o] > 0 && rt_memplan_overlap_in_time(plan, b, o))
            busy[nbusy++] = (Placed){plan->offset[o], plan->size[o]};
    }
    qsort(busy, (size_t)nbusy, sizeof *busy, by_offset);
    plan->offset[b] = best_fit(busy, nbusy, plan->size[b]);
    if (plan->offset[b] + plan->size[b] > plan->peak_bytes)
        plan->peak_bytes = plan->offset[b] + plan->size[b];
}

static void place_all(RtMemPlan *plan, int *order, int nbuf)
{
    sort_sizes = plan->size;
    qsort(order, (size_t)nbuf, sizeof *order, by_size_desc);
    sort_sizes = NULL;
    Placed *busy = malloc(sizeof *busy * (size_t)(nbuf + 1));
    for (int k = 0; k < nbuf; k++)
        place_one(plan, order, k, busy);
    free(busy);
}

/* ---------------------------------------------------------------- entry */

static void alloc_plan(RtMemPlan *plan, int n)
{
    memset(plan, 0, sizeof *plan);
    plan->n = n;
    plan->root = calloc((size_t)n + 1, sizeof *plan->root);
    plan->last = calloc((size_t)n + 1, sizeof *plan->last);
    plan->offset = calloc((size_t)n + 1, sizeof *plan->offset);
    plan->size = calloc((size_t)n + 1, sizeof *plan->size);
}

/* Sizes of the arena buffers; returns their indices in `order`. */
static int collect(const CgProgram *p, const bool *pinned, RtMemPlan *plan, int *order)
{
    int nbuf = 0;
    for (int i = 0; i < plan->n; i++) {
        plan->offset[i] = -1;
        if (!in_arena(p, pinned, plan->root, i))
            continue;
        plan->size[i] = round_up(p->nodes[i].bytes, RT_ALIGN);
        plan->naive_bytes += plan->size[i];
        order[nbuf++] = i;
    }
    return nbuf;
}

bool rt_memplan(const IrGraph *g, const CgProgram *p, const bool *pinned,
                RtMemPlan *plan, IrError *err)
{
    IR_ASSERT(g->nnodes == p->nnodes);
    alloc_plan(plan, p->nnodes);
    if (!find_roots(p, plan->root, err)) {
        rt_memplan_free(plan);
        return false;
    }
    find_last_uses(g, plan);
    int *order = malloc(sizeof *order * ((size_t)plan->n + 1));
    plan->nbuffers = collect(p, pinned, plan, order);
    place_all(plan, order, plan->nbuffers);
    free(order);
    return true;
}

void rt_memplan_free(RtMemPlan *plan)
{
    free(plan->root);
    free(plan->last);
    free(plan->offset);
    free(plan->size);
    memset(plan, 0, sizeof *plan);
}

bool rt_memplan_overlap_in_time(const RtMemPlan *plan, int a, int b)
{
    return a <= plan->last[b] && b <= plan->last[a];
}
