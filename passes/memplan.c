/* memplan.c — arena offsets by liveness, with in-place reuse where it is safe.
 *
 * This is the one memory planner of gradc: the `memplan` pass writes its
 * plan into the IR (`offset` and `inplace` attributes), `gradc plan` prints
 * its numbers, and the runtime (runtime/rt_memplan.c) lays out its arena
 * with it, so what a dump says is what runs.  Sizes depend on the binding,
 * so a plan is made at one binding; decisions other than offsets (what is
 * a buffer, who takes over whose buffer) depend only on the graph.
 *
 * Buffers.  Every node's value is one of (pass_mem_kind):
 *   source  an input or param: the runtime's slabs hold it, not planned;
 *   view    a reshape, or a slice whose dims before its axis are all 1 (its
 *           elements are one contiguous range of the operand's, at a byte
 *           offset: pass_view_offset): codegen gives it no code and no
 *           memory, it reads its operand's buffer (a chain of views
 *           resolves to its root, the offsets add up);
 *   kernel  everything else, consts and iotas included: one arena buffer.
 * Transposes, other slices and broadcasts are kernels that copy (codegen
 * lowers them so); inside a fused body they are views, but bodies are the
 * kernels' business, not the planner's.  Sibling fused nodes (adjacent, one
 * `group`, the same operands) are computed by the last one's kernel, so
 * their buffers are all written there.
 *
 * Lifetimes are intervals of node indices, both ends inclusive: from the
 * index where the buffer is written (`begin`: the node, or the last node of
 * its sibling run) to the last index that reads it through any view
 * (`last`), or past the end (n) when an output reaches it: outputs are read
 * after the run.  Two buffers whose intervals meet need memory of their
 * own, with one exception, in-place reuse:
 *
 *   kernel K may write its value over the buffer of its operand X when
 *     - K is elementwise: a plain elementwise op, or a fused node whose body
 *       holds only elementwise ops, sources, reshapes and broadcasts (so no
 *       reduction, matmul, transpose or slice), and so is every sibling of
 *       its run, each of K's element count;
 *     - K reads X element for element: X (and every other operand on X's
 *       buffer) has K's element count, not fewer (no broadcast);
 *     - X dies at K: nothing after K's kernel reads X, and X is no output;
 *     - X has K's dtype and byte size, lives in the arena, and no other
 *       kernel has taken it over already.
 *   This is codegen's contract (codegen/cg_lower.h): an output may share
 *   memory with an input only element for element, never shifted or
 *   broadcast; for fused kernels, only the elementwise kind reads every
 *   operand in step with the output it writes.
 *
 * Write-back in place is the same rule applied to a source: a train step's
 * output named like a param or state input (the new weights, AdamW's
 * moments) is copied into that source after the run, unless its kernel can
 * compute it straight into the source's buffer: the kernel reads the
 * source as operand, element for element, is elementwise as above, and
 * nothing after it reads the old value (pass_mem_writeback; the schedule
 * keeps the old value's readers first).  Such a value takes no arena space.
 *
 * Placement is offline, since every lifetime is known before anything runs.
 * An in-place chain (X, K over X, L over K, ...) is one buffer whose life is
 * the union of its members'.  Chains are taken largest first (ties by
 * index), and each goes into the smallest gap between the already placed
 * chains that are live at the same time (best fit), or on top of them.  The
 * arena size (peak_bytes) is the highest end.  O(chains^2): a few
 * milliseconds for a GPT-2 train step.  With opts.use_offsets a graph that
 * carries an `offset` on every arena buffer keeps them when they are valid
 * at this binding (no two live buffers share a byte, except in place).
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct Placed {
    int64_t off, size;
} Placed;

typedef struct Mem {
    const IrGraph *g;
    const int64_t *binding;
    const PassMemOpts *o;
    PassMemPlan *p;
    int *end;                /* [n] the last node of each node's sibling run */
    int64_t *chain_last;     /* [n] chain heads: last index of the chain */
    bool *taken;             /* [n] arena roots some kernel took over */
} Mem;

static int64_t round_up(int64_t v, int64_t a)
{
    return (v + a - 1) / a * a;
}

/* ---------------------------------------------------------------- buffers */

void pass_binding(const IrGraph *g, const PassCtx *ctx, int64_t *binding)
{
    for (int s = 0; s < IR_MAX_SYMS; s++) {
        const char *name = s < g->nsym ? g->sym[s] : "";
        binding[s] = !strcmp(name, "B") ? 2 : 64;
        if (ctx && ctx->binding && s < g->nsym)
            binding[s] = ctx->binding[s];
    }
}

/* A slice is contiguous when every dim before its axis is 1. */
static bool contiguous_slice(const IrNode *n)
{
    if (n->op != OP_SLICE)
        return false;
    const IrShape *s = &n->in[0]->shape;
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, -1), s->rank);
    if (ax < 0)
        return false;
    for (int d = 0; d < ax; d++)
        if (!ir_dim_is_one(s->d[d]))
            return false;
    return true;
}

PassMemKind pass_mem_kind(const IrNode *n)
{
    if (n->op == OP_INPUT || n->op == OP_PARAM)
        return PM_SOURCE;
    return n->op == OP_RESHAPE || contiguous_slice(n) ? PM_VIEW : PM_KERNEL;
}

int64_t pass_view_offset(const IrNode *n, const int64_t *binding)
{
    if (!contiguous_slice(n))
        return 0;
    const IrShape *s = &n->in[0]->shape;
    int64_t inner = (int64_t)ir_dtype_size(n->dtype);
    for (int d = ir_axis(ir_node_int(n, ATTR_AXIS, -1), s->rank) + 1; d < s->rank; d++)
        inner *= ir_dim_eval(s->d[d], binding);
    return ir_node_int(n, ATTR_START, 0) * inner;
}

int64_t pass_mem_bytes(const IrNode *n, const int64_t *binding)
{
    int64_t numel = 1;
    for (int d = 0; d < n->shape.rank; d++) {
        int64_t v = ir_dim_eval(n->shape.d[d], binding);
        numel *= v > 0 ? v : 0;
    }
    return round_up(numel * (int64_t)ir_dtype_size(n->dtype), PASS_MEM_ALIGN);
}

static const IrNode *view_root(const IrNode *n)
{
    while (pass_mem_kind(n) == PM_VIEW)
        n = n->in[0];
    return n;
}

static bool same_numel(const IrNode *a, const IrNode *b)
{
    IrDim x, y;
    return ir_shape_numel(&a->shape, &x) && ir_shape_numel(&b->shape, &y) && ir_dim_eq(x, y);
}

/* ---------------------------------------------------------------- siblings */

static bool same_operands(const IrNode *a, const IrNode *b)
{
    if (a->nin != b->nin)
        return false;
    for (int k = 0; k < a->nin; k++)
        if (a->in[k] != b->in[k])
            return false;
    return true;
}

/* The rule of codegen/cg_lower_fused.c. */
static bool siblings(const IrNode *a, const IrNode *b)
{
    return a->op == OP_FUSED && b->op == OP_FUSED && a->body && b->body &&
           ir_node_attr(a, ATTR_GROUP) && ir_node_attr(b, ATTR_GROUP) &&
           ir_node_int(a, ATTR_GROUP, 0) == ir_node_int(b, ATTR_GROUP, 0) && same_operands(a, b);
}

void pass_sibling_run(const IrGraph *g, int i, int *first, int *end)
{
    int lo = i, hi = i;
    while (lo > 0 && siblings(g->nodes[lo - 1], g->nodes[i]))
        lo--;
    while (hi + 1 < g->nnodes && siblings(g->nodes[hi + 1], g->nodes[i]))
        hi++;
    if (hi - lo + 1 > PASS_MAX_SIBLINGS)
        lo = hi = i;
    *first = lo;
    *end = hi;
}

static bool same_hgroup(const IrNode *a, const IrNode *b)
{
    return a->op == OP_FUSED && b->op == OP_FUSED && ir_node_attr(a, ATTR_HGROUP) &&
           ir_node_attr(b, ATTR_HGROUP) &&
           ir_node_int(a, ATTR_HGROUP, 0) == ir_node_int(b, ATTR_HGROUP, 0);
}

void pass_launch_run(const IrGraph *g, int i, int *first, int *end)
{
    pass_sibling_run(g, i, first, end);
    while (*first > 0 && same_hgroup(g->nodes[*first - 1], g->nodes[i]))
        (*first)--;
    while (*end + 1 < g->nnodes && same_hgroup(g->nodes[*end + 1], g->nodes[i]))
        (*end)++;
}

/* ---------------------------------------------------------------- the in-place rule */

bool pass_elementwise_kernel(const IrNode *n)
{
    if (!n->body)
        return ir_ops[n->op].kind == OPK_ELEMWISE;
    if (n->op != OP_FUSED)
        return false;
    for (int i = 0; i < n->body->nnodes; i++) {
        const IrNode *b = n->body->nodes[i];
        IrOpKind k = ir_ops[b->op].kind;
        if (k != OPK_ELEMWISE && k != OPK_SOURCE && b->op != OP_RESHAPE && b->op != OP_BROADCAST)
            return false;
    }
    return true;
}

/* Every node of n's sibling run elementwise, of n's element count. */
static bool run_elementwise(const IrGraph *g, const IrNode *n)
{
    int first, end;
    pass_sibling_run(g, n->index, &first, &end);
    for (int i = first; i <= end; i++)
        if (!pass_elementwise_kernel(g->nodes[i]) || !same_numel(g->nodes[i], n))
            return false;
    return true;
}

/* Some operand of n is on x's buffer, and every such one is read element
 * for element. */
static bool reads_in_step(const IrNode *n, const IrNode *x)
{
    bool reads = false;
    for (int k = 0; k < n->nin; k++) {
        if (view_root(n->in[k]) != x)
            continue;
        if (!same_numel(n->in[k], n))
            return false;
        reads = true;
    }
    return reads;
}

static bool same_type(const IrNode *a, const IrNode *b)
{
    return a->dtype == b->dtype && same_numel(a, b);
}

static int source_named(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (pass_mem_kind(n) == PM_SOURCE && n->name && !strcmp(n->name, name))
            return i;
    }
    return -1;
}

int pass_written_back(const IrGraph *g, const IrNode *n)
{
    for (int o = 0; o < g->nout; o++) {
        if (view_root(g->outs[o].node) != n || !g->outs[o].name)
            continue;
        int s = source_named(g, g->outs[o].name);
        if (s >= 0 && s != n->index)
            return s;
    }
    return -1;
}

int pass_mem_writeback(const IrGraph *g, const IrNode *n)
{
    if (pass_mem_kind(n) != PM_KERNEL)
        return -1;
    int s = pass_written_back(g, n);
    if (s < 0)
        return -1;
    const IrNode *src = g->nodes[s];
    return same_type(src, n) && run_elementwise(g, n) && reads_in_step(n, src) ? s : -1;
}

/* ---------------------------------------------------------------- lifetimes */

static bool check_order(const IrGraph *g, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        bool ok = n->index == i;
        for (int k = 0; ok && k < n->nin; k++)
            ok = n->in[k]->index >= 0 && n->in[k]->index < i;
        if (!ok) {
            ir_error(err, "internal: memplan: node %d is out of SSA order or not reindexed", i);
            return false;
        }
    }
    return true;
}

static void find_runs(Mem *m)
{
    for (int i = 0; i < m->g->nnodes;) {
        int first, end;
        pass_launch_run(m->g, i, &first, &end);
        for (int k = first; k <= end; k++)
            m->end[k] = end;
        i = end + 1;
    }
}

/* root, begin, size; last starts at begin (a value nobody reads is still written). */
static void find_roots(Mem *m)
{
    PassMemPlan *p = m->p;
    for (int i = 0; i < p->n; i++) {
        const IrNode *n = m->g->nodes[i];
        PassMemKind k = pass_mem_kind(n);
        p->root[i] = k == PM_VIEW ? p->root[n->in[0]->index] : i;
        p->begin[i] = k == PM_KERNEL ? m->end[i] : i;
        p->last[i] = p->begin[i];
        if (k == PM_KERNEL)
            p->size[i] = pass_mem_bytes(n, m->binding);
    }
}

/* A kernel reads its operands where its run's kernel runs; a view where it stands. */
static void find_last_uses(Mem *m)
{
    PassMemPlan *p = m->p;
    for (int i = 0; i < p->n; i++) {
        const IrNode *n = m->g->nodes[i];
        int at = pass_mem_kind(n) == PM_KERNEL ? m->end[i] : i;
        for (int k = 0; k < n->nin; k++) {
            int r = p->root[n->in[k]->index];
            p->last[r] = p->last[r] > at ? p->last[r] : at;
        }
    }
    for (int o = 0; o < m->g->nout; o++)
        p->last[p->root[m->g->outs[o].node->index]] = p->n;
}

/* ---------------------------------------------------------------- explain */

static void explain_writeback(const Mem *m, int i, int s, const char *why)
{
    if (!m->o->explain)
        return;
    const char *name = m->g->nodes[s]->name;
    if (why)
        fprintf(m->o->explain, "// memplan: %%%d not written into @%s: %s\n", i, name, why);
    else
        fprintf(m->o->explain, "// memplan: %%%d written into @%s (write-back in place)\n", i,
                name);
}

/* Some kernel of i's launch run, other than i's own sibling run, reads the
 * buffer of root r.  The kernels of one launch (an hgroup) run over their
 * concatenated ranges in any order, so none of them may write a buffer
 * that another one reads; siblings are one kernel, which reads in step. */
static bool read_in_launch(const Mem *m, int i, int r)
{
    int lf, le, sf, se;
    pass_launch_run(m->g, i, &lf, &le);
    pass_sibling_run(m->g, i, &sf, &se);
    for (int k = lf; k <= le; k++) {
        const IrNode *n = m->g->nodes[k];
        for (int j = 0; (k < sf || k > se) && j < n->nin; j++)
            if (m->p->root[n->in[j]->index] == r)
                return true;
    }
    return false;
}

static const char *writeback_refusal(const Mem *m, const IrNode *n, const IrNode *src)
{
    if (!same_type(src, n))
        return "type";
    if (!run_elementwise(m->g, n))
        return "not-elementwise";
    if (!reads_in_step(n, src))
        return "not-read-in-step";
    if (m->p->last[src->index] > m->end[n->index])
        return "read-after";
    return read_in_launch(m, n->index, src->index) ? "read-in-launch" : NULL;
}

/* ---------------------------------------------------------------- decisions */

static bool pinned(const Mem *m, int i)
{
    return m->o->pinned && m->o->pinned[i];
}

/* Output root i computed straight into the source it writes back, if it may. */
static void decide_slab(Mem *m, int i)
{
    PassMemPlan *p = m->p;
    const IrNode *n = m->g->nodes[i];
    int s = pass_written_back(m->g, n);
    if (s < 0)
        return;
    const char *why = writeback_refusal(m, n, m->g->nodes[s]);
    explain_writeback(m, i, s, why);
    if (why)
        return;
    p->slab[i] = s;
    for (int k = n->nin - 1; k >= 0; k--)
        if (p->root[n->in[k]->index] == s)
            p->inplace[i] = k;
}

static bool in_arena(const Mem *m, int i)
{
    const PassMemPlan *p = m->p;
    return p->root[i] == i && pass_mem_kind(m->g->nodes[i]) == PM_KERNEL && p->slab[i] < 0 &&
           !pinned(m, i);
}

/* scatter_add copies its base (operand 0) element for element into its
 * rows of the result before it adds into them (codegen/cg_lower_matmul.c),
 * and reads nothing else in step. */
static bool scatter_base(const IrNode *n, int k)
{
    if (n->op != OP_SCATTER_ADD || k != 0)
        return false;
    const IrNode *base = view_root(n->in[0]);
    return view_root(n->in[1]) != base && view_root(n->in[2]) != base;
}

/* Why kernel i may not take over operand k's buffer; NULL if it may. */
static const char *inplace_refusal(const Mem *m, int i, int k)
{
    const IrNode *n = m->g->nodes[i];
    int r = m->p->root[n->in[k]->index];
    const IrNode *x = m->g->nodes[r];
    if (pass_mem_kind(x) == PM_SOURCE)
        return "source";
    if (!in_arena(m, r))
        return "outside-arena";
    if (m->p->last[r] != m->p->begin[i])
        return "lives-on";
    if (read_in_launch(m, i, r))
        return "read-in-launch";
    if (!same_type(x, n) || m->p->size[r] != m->p->size[i])
        return "size";
    if (!scatter_base(n, k) && !reads_in_step(n, x))
        return "size";
    return m->taken[r] ? "taken" : NULL;
}

static void explain_inplace(const Mem *m, int i, int k, const char *why)
{
    if (!m->o->explain)
        return;
    fprintf(m->o->explain, "// memplan: %%%d ", i);
    if (k >= 0) {
        fprintf(m->o->explain, "in place of %%%d\n", m->p->root[m->g->nodes[i]->in[k]->index]);
        return;
    }
    fprintf(m->o->explain, "not in place: %s\n", why);
}

/* Operand k whose buffer kernel i takes over, or -1 (reasons in `why`). */
static int pick_operand(const Mem *m, int i, char *why, size_t cap)
{
    const IrNode *n = m->g->nodes[i];
    size_t len = 0;
    why[0] = 0;
    if (n->op == OP_SCATTER_ADD) {
        const char *r = inplace_refusal(m, i, 0);
        snprintf(why, cap, "%%%d %s", m->p->root[n->in[0]->index], r ? r : "");
        return r ? -1 : 0;
    }
    if (!run_elementwise(m->g, n)) {
        snprintf(why, cap, "not-elementwise");
        return -1;
    }
    for (int k = 0; k < n->nin; k++) {
        const char *r = inplace_refusal(m, i, k);
        if (!r)
            return k;
        bool seen = false;
        for (int j = 0; j < k; j++)
            seen |= m->p->root[n->in[j]->index] == m->p->root[n->in[k]->index];
        if (!seen && len < cap)
            len += snprintf(why + len, cap - len, "%s%%%d %s", len ? ", " : "",
                            m->p->root[n->in[k]->index], r);
    }
    return -1;
}

static void take_over(Mem *m, int i, int k)
{
    PassMemPlan *p = m->p;
    int r = p->root[m->g->nodes[i]->in[k]->index];
    p->inplace[i] = k;
    p->chain[i] = p->chain[r];
    m->taken[r] = true;
    p->ninplace++;
}

/* Kernel i over an operand's buffer, if one may be taken over. */
static void decide_inplace(Mem *m, int i)
{
    char why[512];
    m->p->chain[i] = i;
    if (m->g->nodes[i]->nin == 0)
        return;
    int k = pick_operand(m, i, why, sizeof why);
    if (k >= 0)
        take_over(m, i, k);
    explain_inplace(m, i, k, why);
}

/* In node order, so that an operand's own decision comes first. */
static void decide(Mem *m)
{
    for (int i = 0; i < m->p->n; i++) {
        if (pass_mem_kind(m->g->nodes[i]) != PM_KERNEL || pinned(m, i))
            continue;
        decide_slab(m, i);
        if (in_arena(m, i))
            decide_inplace(m, i);
    }
}

/* ---------------------------------------------------------------- placement */

/* Chains, largest first, then by index (no global state: plans may be made
 * on several threads at once). */
typedef struct Sized {
    int64_t size;
    int index;
} Sized;

static int by_size_desc(const void *a, const void *b)
{
    const Sized *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return x->index - y->index;
}

static void sort_by_size(const Mem *m, int *order, int n)
{
    Sized *s = ir_malloc(sizeof *s * ((size_t)n + 1));
    for (int k = 0; k < n; k++)
        s[k] = (Sized){m->p->size[order[k]], order[k]};
    qsort(s, (size_t)n, sizeof *s, by_size_desc);
    for (int k = 0; k < n; k++)
        order[k] = s[k].index;
    free(s);
}

static int by_offset(const void *a, const void *b)
{
    const Placed *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static bool chains_meet(const Mem *m, int a, int b)
{
    return m->p->begin[a] <= m->chain_last[b] && m->p->begin[b] <= m->chain_last[a];
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

/* Places chain order[k] among the chains order[0..k) placed before it. */
static void place_one(Mem *m, const int *order, int k, Placed *busy)
{
    int c = order[k], nbusy = 0;
    for (int j = 0; j < k; j++) {
        int o = order[j];
        if (m->p->size[o] > 0 && chains_meet(m, c, o))
            busy[nbusy++] = (Placed){m->p->offset[o], m->p->size[o]};
    }
    qsort(busy, (size_t)nbusy, sizeof *busy, by_offset);
    m->p->offset[c] = best_fit(busy, nbusy, m->p->size[c]);
}

/* Chain heads in `order`; chain_last of each. */
static int collect_chains(Mem *m, int *order)
{
    PassMemPlan *p = m->p;
    int nchain = 0;
    for (int i = 0; i < p->n; i++) {
        if (!in_arena(m, i))
            continue;
        int c = p->chain[i];
        if (c == i)
            order[nchain++] = i;
        m->chain_last[c] = m->chain_last[c] > p->last[i] ? m->chain_last[c] : p->last[i];
    }
    return nchain;
}

static void place_chains(Mem *m, int *order, int nchain)
{
    sort_by_size(m, order, nchain);
    Placed *busy = ir_malloc(sizeof *busy * ((size_t)nchain + 1));
    for (int k = 0; k < nchain; k++)
        place_one(m, order, k, busy);
    free(busy);
    for (int i = 0; i < m->p->n; i++)
        if (in_arena(m, i))
            m->p->offset[i] = m->p->offset[m->p->chain[i]];
}

/* ---------------------------------------------------------------- the graph's own offsets */

static bool overlap_bytes(const PassMemPlan *p, int a, int b)
{
    return p->offset[a] < p->offset[b] + p->size[b] && p->offset[b] < p->offset[a] + p->size[a];
}

/* Live at one index and sharing a byte, unless one took the other over in
 * place at the very same offset. */
static bool conflict(const PassMemPlan *p, int a, int b)
{
    bool meet = p->begin[a] <= p->last[b] && p->begin[b] <= p->last[a];
    if (!meet || !overlap_bytes(p, a, b))
        return false;
    return p->chain[a] != p->chain[b] || p->offset[a] != p->offset[b];
}

/* In-place decisions that the graph's offsets do not carry out. */
static void drop_unplaced_inplace(Mem *m)
{
    PassMemPlan *p = m->p;
    for (int i = 0; i < p->n; i++) {
        if (p->inplace[i] < 0 || p->slab[i] >= 0)
            continue;
        int r = p->root[m->g->nodes[i]->in[p->inplace[i]]->index];
        if (p->offset[r] != p->offset[i]) {
            p->inplace[i] = -1;
            p->ninplace--;
        }
    }
}

/* Every arena root carries an aligned offset, and no two clash. */
static bool adopt_offsets(Mem *m)
{
    PassMemPlan *p = m->p;
    int *roots = ir_malloc(sizeof *roots * ((size_t)p->n + 1)), nroots = 0;
    bool ok = true;
    for (int i = 0; ok && i < p->n; i++) {
        if (!in_arena(m, i))
            continue;
        p->offset[i] = ir_node_int(m->g->nodes[i], ATTR_OFFSET, -1);
        ok = p->offset[i] >= 0 && p->offset[i] % PASS_MEM_ALIGN == 0;
        roots[nroots++] = i;
    }
    for (int a = 0; ok && a < nroots; a++)
        for (int b = a + 1; ok && b < nroots; b++)
            ok = !conflict(p, roots[a], roots[b]);
    free(roots);
    if (ok)
        drop_unplaced_inplace(m);
    return ok;
}

/* ---------------------------------------------------------------- totals */

/* The most bytes live at one index: a sweep over chain starts and ends. */
static int64_t live_peak(const Mem *m)
{
    const PassMemPlan *p = m->p;
    int64_t *delta = ir_calloc((size_t)p->n + 2, sizeof *delta), live = 0, peak = 0;
    for (int i = 0; i < p->n; i++)
        if (in_arena(m, i) && p->chain[i] == i) {
            delta[p->begin[i]] += p->size[i];
            delta[m->chain_last[i] + 1] -= p->size[i];
        }
    for (int i = 0; i <= p->n; i++) {
        live += delta[i];
        peak = live > peak ? live : peak;
    }
    free(delta);
    return peak;
}

static void totals(Mem *m)
{
    PassMemPlan *p = m->p;
    for (int i = 0; i < p->n; i++) {
        if (pass_mem_kind(m->g->nodes[i]) != PM_KERNEL)
            continue;
        p->naive_bytes += p->size[i];
        p->nkernels += m->end[i] == i;
        p->slab_bytes += p->slab[i] >= 0 ? p->size[i] : 0;
        if (!in_arena(m, i))
            continue;
        p->nbuffers++;
        if (p->offset[i] + p->size[i] > p->peak_bytes)
            p->peak_bytes = p->offset[i] + p->size[i];
    }
    p->live_bytes = live_peak(m);
}

/* ---------------------------------------------------------------- entry */

static void alloc_plan(PassMemPlan *p, int n)
{
    memset(p, 0, sizeof *p);
    size_t k = (size_t)n + 1;
    p->n = n;
    p->root = ir_calloc(k, sizeof *p->root);
    p->begin = ir_calloc(k, sizeof *p->begin);
    p->last = ir_calloc(k, sizeof *p->last);
    p->inplace = ir_malloc(k * sizeof *p->inplace);
    p->slab = ir_malloc(k * sizeof *p->slab);
    p->chain = ir_malloc(k * sizeof *p->chain);
    p->offset = ir_malloc(k * sizeof *p->offset);
    p->size = ir_calloc(k, sizeof *p->size);
    for (size_t i = 0; i < k; i++) {
        p->inplace[i] = p->slab[i] = p->chain[i] = -1;
        p->offset[i] = -1;
    }
}

static void mem_init(Mem *m, const IrGraph *g, const int64_t *binding, const PassMemOpts *o,
                     PassMemPlan *p)
{
    size_t k = (size_t)g->nnodes + 1;
    m->g = g;
    m->binding = binding;
    m->o = o;
    m->p = p;
    m->end = ir_calloc(k, sizeof *m->end);
    m->chain_last = ir_calloc(k, sizeof *m->chain_last);
    m->taken = ir_calloc(k, sizeof *m->taken);
}

static void mem_done(Mem *m)
{
    free(m->end);
    free(m->chain_last);
    free(m->taken);
}

static void place(Mem *m)
{
    int *order = ir_malloc(sizeof *order * ((size_t)m->p->n + 1));
    int nchain = collect_chains(m, order);
    if (m->o->use_offsets)
        m->p->from_graph = adopt_offsets(m);
    if (!m->p->from_graph)
        place_chains(m, order, nchain);
    free(order);
}

bool pass_memplan_build(const IrGraph *g, const int64_t *binding, const PassMemOpts *opts,
                        PassMemPlan *plan, IrError *err)
{
    static const PassMemOpts none = {0};
    alloc_plan(plan, g->nnodes);
    if (!check_order(g, err))
        return false;
    Mem m;
    mem_init(&m, g, binding, opts ? opts : &none, plan);
    find_runs(&m);
    find_roots(&m);
    find_last_uses(&m);
    decide(&m);
    place(&m);
    totals(&m);
    mem_done(&m);
    return true;
}

void pass_memplan_free(PassMemPlan *p)
{
    free(p->root);
    free(p->begin);
    free(p->last);
    free(p->inplace);
    free(p->slab);
    free(p->chain);
    free(p->offset);
    free(p->size);
    memset(p, 0, sizeof *p);
}

bool pass_memplan_overlap_in_time(const PassMemPlan *p, int a, int b)
{
    bool meet = p->begin[a] <= p->last[b] && p->begin[b] <= p->last[a];
    /* one chain: members follow each other, touching where one takes over */
    return a == b || (meet && !(p->chain[a] >= 0 && p->chain[a] == p->chain[b]));
}

/* ---------------------------------------------------------------- the pass */

static void drop_attr(IrNode *n, IrAttrKey key)
{
    int k = 0;
    for (int j = 0; j < n->nattr; j++)
        if (n->attr[j].key != key)
            n->attr[k++] = n->attr[j];
    n->nattr = k;
}

/* A node holds at most IR_MAX_ATTRS attributes: a user error, not an abort. */
static bool room_for(const IrNode *n, const PassMemPlan *p, PassCtx *ctx)
{
    if (n->nattr + (p->offset[n->index] >= 0) + (p->inplace[n->index] >= 0) <= IR_MAX_ATTRS)
        return true;
    ir_error(ctx->err, "memplan: node %%%d (%s) has no room for its offset and inplace "
             "attributes (at most %d attributes per node)", n->index, ir_op_name(n->op),
             IR_MAX_ATTRS);
    ir_error_hint(ctx->err, "drop attributes the node does not use");
    return false;
}

static bool write_attrs(IrGraph *g, const PassMemPlan *p, PassCtx *ctx)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        drop_attr(n, ATTR_OFFSET);
        drop_attr(n, ATTR_INPLACE);
        if (!room_for(n, p, ctx))
            return false;
        if (p->offset[i] >= 0)
            ir_node_set_attr(g, n, ir_attr_int(ATTR_OFFSET, p->offset[i]));
        if (p->inplace[i] >= 0)
            ir_node_set_attr(g, n, ir_attr_int(ATTR_INPLACE, p->inplace[i]));
    }
    return true;
}

/* "B=2 T=64" */
static void print_binding(const IrGraph *g, const int64_t *binding, FILE *f)
{
    for (int s = 0; s < g->nsym; s++)
        fprintf(f, "%s%s=%lld", s ? " " : "", g->sym[s], (long long)binding[s]);
    fprintf(f, "%s", g->nsym ? ": " : "");
}

static void explain_summary(const IrGraph *g, const int64_t *binding, const PassMemPlan *p,
                            FILE *f)
{
    fprintf(f, "// memplan: ");
    print_binding(g, binding, f);
    fprintf(f, "peak-bytes %lld, naive-bytes %lld, live-bytes %lld; %d buffers, %d in place, "
            "%lld bytes written back in place\n", (long long)p->peak_bytes,
            (long long)p->naive_bytes, (long long)p->live_bytes, p->nbuffers, p->ninplace,
            (long long)p->slab_bytes);
}

bool pass_memplan(IrGraph *g, PassCtx *ctx)
{
    int64_t binding[IR_MAX_SYMS];
    pass_binding(g, ctx, binding);
    PassMemOpts o = {.explain = ctx->explain ? ctx->out : NULL};
    PassMemPlan p;
    bool ok = pass_memplan_build(g, binding, &o, &p, ctx->err) && write_attrs(g, &p, ctx);
    if (ok && o.explain)
        explain_summary(g, binding, &p, o.explain);
    pass_memplan_free(&p);
    return ok;
}
