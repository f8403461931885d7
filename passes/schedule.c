/* schedule.c — an execution order that keeps the live bytes low.
 *
 * The graph's node order is its execution order: the runtime runs the
 * kernels as they stand, and memplan gives every buffer arena space from
 * the kernel that writes it to its last reader.  Any topological order
 * computes the same values; they differ in how many bytes are live at once.
 * This pass chooses one with a greedy list scheduler that frees early and
 * computes late:
 *
 *   - the units are the kernels as codegen runs them: one node, or a run of
 *     sibling fused nodes, which stay adjacent (one kernel writes them all);
 *     inputs and params come first, in their order;
 *   - a unit is ready when every unit it reads from has run;
 *   - its net is the arena bytes it allocates (none for a view, or for a
 *     value written back into its source's buffer) minus the bytes it frees
 *     (the arena buffers whose last reader it is);
 *   - the ready units whose net is <= 0 go first, the most freeing first;
 *     among the others, three heuristics choose differently: free-first
 *     takes the earliest of the given order (usually the autodiff's, a sound
 *     way to make progress), compute-late the one whose result is needed
 *     first (so that work waits until its reader is near), least-net the
 *     smallest net.  Ties go to the given order: the result is deterministic.
 *
 * No single greedy rule wins everywhere, and the greedy runs are cheap, so
 * all three run and memplan plans each order and the given one at the
 * binding: the smallest arena wins, the given order on ties.  The pass never
 * makes the arena larger.  On a GPT-2 small train step (B=2, T=256, fused)
 * least-net wins: 904 MB -> 776 MB, against 755 MB of outputs that live to
 * the end anyway (the gradients and the logits).
 *
 * A train step writes its new weights and AdamW moments back into the
 * params' and moments' buffers, in place when nothing after the update
 * kernel reads the old value (memplan.c).  So the update of a source waits
 * for every other reader of that source (an anti-dependence), when the given
 * order already has them first; a free-early update must not cost a copy.
 * Every edge goes forward in the given order, so there is no cycle.
 *
 * Sizes are weighed at ctx->binding, or the nominal binding B=2, T=64
 * (pass_binding): the order is valid at any binding and good near the one
 * it was chosen at.  A reordering drops any `offset` and `inplace`
 * attributes: they described the old order (run memplan again).
 * O(units * ready units) per heuristic.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct Sched {
    IrGraph *g;
    int64_t binding[IR_MAX_SYMS];
    int n, nunit;
    int *unit_of;            /* [n] unit of each node; -1 for sources */
    int *ufirst, *uend;      /* [nunit] the unit's nodes, in the given order */
    int *npred0, *npred;     /* [nunit] units it waits for; not yet run */
    int *sstart, *succ;      /* successors of unit u: succ[sstart[u] .. sstart[u+1]) */
    int64_t *alloc;          /* [nunit] arena bytes the unit allocates */
    int *root;               /* [n] buffer of each node's value (views resolved) */
    int64_t *size;           /* [n] bytes of a kernel's value */
    bool *freeable;          /* [n] roots the arena frees after their last reader */
    int *remaining0, *remaining; /* [n] roots: reader nodes; not yet run */
    int *wb;                 /* [n] sources: the unit that may write them back in place
                              * (after every other reader), or -1 */
    int *need;               /* [nunit] the first node of its first successor unit */
    int *ahead, *anext, *ato, nanti; /* anti-dependences from each unit (linked lists) */
    int *mark, *stack, stamp; /* depth-first search */
    int *ready, nready;
    int *order, norder;      /* units, as scheduled */
    int heuristic;           /* H_*: see better() */
    int *froot, *fcount;     /* [n * IR_MAX_IN] scratch of freed_by (a unit reads at most that) */
} Sched;

enum { H_GIVEN, H_FREE_FIRST, H_LEAST_NET, H_COMPUTE_LATE, H_COUNT };

typedef struct Edges {
    int *from, *to, n, cap;
} Edges;

/* ---------------------------------------------------------------- units */

static void find_units(Sched *s)
{
    for (int i = 0; i < s->n; i++) {
        s->unit_of[i] = -1;
        if (pass_mem_kind(s->g->nodes[i]) == PM_SOURCE)
            continue;
        int first, end;
        pass_launch_run(s->g, i, &first, &end);
        if (first < i && s->unit_of[i - 1] >= 0 && s->uend[s->unit_of[i - 1]] >= i) {
            s->unit_of[i] = s->unit_of[i - 1];
            continue;
        }
        s->ufirst[s->nunit] = i;
        s->uend[s->nunit] = end;
        s->unit_of[i] = s->nunit++;
    }
}

static void find_buffers(Sched *s)
{
    const IrGraph *g = s->g;
    for (int i = 0; i < s->n; i++) {
        const IrNode *nd = g->nodes[i];
        s->root[i] = pass_mem_kind(nd) == PM_VIEW ? s->root[nd->in[0]->index] : i;
        s->freeable[i] = pass_mem_kind(nd) == PM_KERNEL;
        s->size[i] = s->freeable[i] ? pass_mem_bytes(nd, s->binding) : 0;
        s->wb[i] = -1;
    }
    for (int o = 0; o < g->nout; o++)
        s->freeable[s->root[g->outs[o].node->index]] = false;
}

/* Each node counts once as a reader of each buffer it reads. */
static void count_readers(Sched *s)
{
    for (int i = 0; i < s->n; i++) {
        const IrNode *nd = s->g->nodes[i];
        for (int k = 0; k < nd->nin; k++) {
            int r = s->root[nd->in[k]->index], dup = 0;
            for (int j = 0; j < k; j++)
                dup |= s->root[nd->in[j]->index] == r;
            s->remaining0[r] += !dup;
        }
    }
}

/* ---------------------------------------------------------------- edges */

static void add_edge(Edges *e, int from, int to)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 1024;
        e->from = ir_realloc(e->from, sizeof *e->from * (size_t)e->cap);
        e->to = ir_realloc(e->to, sizeof *e->to * (size_t)e->cap);
    }
    e->from[e->n] = from;
    e->to[e->n++] = to;
}

static void data_edges(const Sched *s, Edges *e)
{
    for (int i = 0; i < s->n; i++) {
        const IrNode *nd = s->g->nodes[i];
        int u = s->unit_of[i];
        for (int k = 0; u >= 0 && k < nd->nin; k++) {
            int p = s->unit_of[nd->in[k]->index];
            if (p >= 0 && p != u)
                add_edge(e, p, u);
        }
    }
}

/* The units other than u that read src, each once, in order. */
static int readers_of(const Sched *s, int src, int u, int *out)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        const IrNode *nd = s->g->nodes[i];
        int r = s->unit_of[i];
        bool reads = false;
        for (int k = 0; k < nd->nin; k++)
            reads |= s->root[nd->in[k]->index] == src;
        if (reads && r >= 0 && r != u && (n == 0 || out[n - 1] != r))
            out[n++] = r;
    }
    return n;
}

static void push(Sched *s, int v, int *top)
{
    if (s->mark[v] != s->stamp) {
        s->mark[v] = s->stamp;
        s->stack[(*top)++] = v;
    }
}

/* True if some unit of `targets` is reachable from u over the data edges
 * and the anti-dependences added so far. */
static bool reaches(Sched *s, int u, const int *targets, int nt)
{
    int top = 0;
    s->stamp++;
    push(s, u, &top);
    while (top > 0) {
        int v = s->stack[--top];
        for (int e = s->sstart[v]; e < s->sstart[v + 1]; e++)
            push(s, s->succ[e], &top);
        for (int a = s->ahead[v]; a >= 0; a = s->anext[a])
            push(s, s->ato[a], &top);
    }
    for (int k = 0; k < nt; k++)
        if (s->mark[targets[k]] == s->stamp)
            return true;
    return false;
}

static void add_anti(Sched *s, Edges *e, int from, int to)
{
    add_edge(e, from, to);
    s->ato[s->nanti] = to;
    s->anext[s->nanti] = s->ahead[from];
    s->ahead[from] = s->nanti++;
}

/* The update of a source waits for the source's other readers (anti-
 * dependences).  A reader after the update in the given order may wait
 * the other way round only if the update does not lead to it: that would
 * be a cycle, and the write-back is left alone (copied after the run).
 * Each edge added keeps the graph acyclic, as it is checked against all
 * edges so far. */
static void anti_edges(Sched *s, Edges *e)
{
    int *rd = ir_malloc(sizeof *rd * ((size_t)s->nunit + 1));
    for (int u = 0; u < s->nunit; u++)
        for (int i = s->ufirst[u]; i <= s->uend[u]; i++) {
            int src = pass_mem_writeback(s->g, s->g->nodes[i]);
            if (src < 0)
                continue;
            int nr = readers_of(s, src, u, rd);
            if (nr > 0 && rd[nr - 1] > u && reaches(s, u, rd, nr))
                continue;
            s->wb[src] = u;
            for (int k = 0; k < nr; k++)
                add_anti(s, e, rd[k], u);
        }
    free(rd);
}

/* Successor lists (CSR) and predecessor counts.  An edge that appears
 * twice counts twice on both sides, which balances out. */
static void build_succ(Sched *s, const Edges *e)
{
    free(s->sstart);
    free(s->succ);
    memset(s->npred0, 0, sizeof *s->npred0 * (size_t)s->nunit);
    s->sstart = ir_calloc((size_t)s->nunit + 2, sizeof *s->sstart);
    s->succ = ir_malloc(sizeof *s->succ * ((size_t)e->n + 1));
    for (int k = 0; k < e->n; k++)
        s->sstart[e->from[k] + 2]++;
    for (int u = 0; u < s->nunit; u++)
        s->sstart[u + 2] += s->sstart[u + 1];
    for (int k = 0; k < e->n; k++) {
        s->succ[s->sstart[e->from[k] + 1]++] = e->to[k];
        s->npred0[e->to[k]]++;
    }
}

static void find_need(Sched *s)
{
    for (int u = 0; u < s->nunit; u++) {
        s->need[u] = s->ufirst[u];
        for (int e = s->sstart[u]; e < s->sstart[u + 1]; e++) {
            int v = s->ufirst[s->succ[e]];
            s->need[u] = e == s->sstart[u] || v < s->need[u] ? v : s->need[u];
        }
    }
}

static void find_alloc(Sched *s)
{
    for (int u = 0; u < s->nunit; u++)
        for (int i = s->ufirst[u]; i <= s->uend[u]; i++) {
            int src = pass_mem_writeback(s->g, s->g->nodes[i]);
            bool in_slab = src >= 0 && s->wb[src] == u;
            s->alloc[u] += in_slab ? 0 : s->size[i];
        }
}

/* ---------------------------------------------------------------- the greedy loop */

/* Bytes unit u frees: buffers whose remaining readers are all in u. */
static int64_t freed_by(const Sched *s, int u)
{
    int *roots = s->froot, *count = s->fcount, nr = 0;
    for (int i = s->ufirst[u]; i <= s->uend[u]; i++) {
        const IrNode *nd = s->g->nodes[i];
        for (int k = 0; k < nd->nin; k++) {
            int r = s->root[nd->in[k]->index], j = 0;
            while (j < nr && roots[j] != r)
                j++;
            if (j == nr) {
                roots[nr] = r;
                count[nr++] = 0;
            }
            bool dup = false;
            for (int q = 0; q < k; q++)
                dup |= s->root[nd->in[q]->index] == r;
            count[j] += !dup;
        }
    }
    int64_t freed = 0;
    for (int j = 0; j < nr; j++)
        if (s->freeable[roots[j]] && s->remaining[roots[j]] == count[j])
            freed += s->size[roots[j]];
    return freed;
}

/* True if ready unit a should run before ready unit b.  Each heuristic runs
 * the units that free at least what they allocate first, the most freeing
 * first; they differ on the units that allocate more than they free:
 *   free-first    the earliest of the given order;
 *   compute-late  the one whose result is needed first (its first reader's
 *                 place in the given order), so work waits until needed;
 *   least-net     the smallest allocation net of what it frees.
 * Ties go to the given order. */
static bool better(const Sched *s, int a, int64_t net_a, int b, int64_t net_b)
{
    bool least = s->heuristic == H_LEAST_NET;
    bool frees_a = net_a <= 0 || least, frees_b = net_b <= 0 || least;
    if (frees_a != frees_b)
        return frees_a;
    if (frees_a && net_a != net_b)
        return net_a < net_b;
    if (!frees_a && s->heuristic == H_COMPUTE_LATE && s->need[a] != s->need[b])
        return s->need[a] < s->need[b];
    return a < b; /* units are numbered in the given order */
}

static int pick(const Sched *s)
{
    int best = -1;
    int64_t best_net = 0;
    for (int k = 0; k < s->nready; k++) {
        int u = s->ready[k];
        int64_t net = s->alloc[u] - freed_by(s, u);
        if (best < 0 || better(s, u, net, s->ready[best], best_net)) {
            best = k;
            best_net = net;
        }
    }
    return best;
}

static void run_unit(Sched *s, int k)
{
    int u = s->ready[k];
    s->ready[k] = s->ready[--s->nready];
    s->order[s->norder++] = u;
    for (int i = s->ufirst[u]; i <= s->uend[u]; i++) {
        const IrNode *nd = s->g->nodes[i];
        for (int j = 0; j < nd->nin; j++) {
            int r = s->root[nd->in[j]->index];
            bool dup = false;
            for (int q = 0; q < j; q++)
                dup |= s->root[nd->in[q]->index] == r;
            s->remaining[r] -= !dup;
        }
    }
    for (int e = s->sstart[u]; e < s->sstart[u + 1]; e++)
        if (--s->npred[s->succ[e]] == 0)
            s->ready[s->nready++] = s->succ[e];
}

static void greedy(Sched *s, int heuristic)
{
    s->heuristic = heuristic;
    s->nready = s->norder = 0;
    memcpy(s->npred, s->npred0, sizeof *s->npred * (size_t)s->nunit);
    memcpy(s->remaining, s->remaining0, sizeof *s->remaining * (size_t)s->n);
    for (int u = 0; u < s->nunit; u++)
        if (s->npred[u] == 0)
            s->ready[s->nready++] = u;
    while (s->nready > 0)
        run_unit(s, pick(s));
    IR_ASSERT(s->norder == s->nunit);
}

/* ---------------------------------------------------------------- set-up */

static void sched_init(Sched *s, IrGraph *g, const PassCtx *ctx)
{
    size_t n = (size_t)g->nnodes + 1;
    memset(s, 0, sizeof *s);
    s->g = g;
    s->n = g->nnodes;
    pass_binding(g, ctx, s->binding);
    s->unit_of = ir_malloc(n * sizeof *s->unit_of);
    s->ufirst = ir_malloc(n * sizeof *s->ufirst);
    s->uend = ir_malloc(n * sizeof *s->uend);
    s->npred0 = ir_calloc(n, sizeof *s->npred0);
    s->npred = ir_calloc(n, sizeof *s->npred);
    s->alloc = ir_calloc(n, sizeof *s->alloc);
    s->root = ir_malloc(n * sizeof *s->root);
    s->size = ir_calloc(n, sizeof *s->size);
    s->freeable = ir_calloc(n, sizeof *s->freeable);
    s->remaining0 = ir_calloc(n, sizeof *s->remaining0);
    s->remaining = ir_calloc(n, sizeof *s->remaining);
    s->wb = ir_malloc(n * sizeof *s->wb);
    s->need = ir_malloc(n * sizeof *s->need);
    s->ahead = ir_malloc(n * sizeof *s->ahead);
    for (size_t i = 0; i < n; i++)
        s->ahead[i] = -1;
    s->anext = ir_malloc(n * IR_MAX_IN * sizeof *s->anext);
    s->ato = ir_malloc(n * IR_MAX_IN * sizeof *s->ato);
    s->froot = ir_malloc(n * IR_MAX_IN * sizeof *s->froot);
    s->fcount = ir_malloc(n * IR_MAX_IN * sizeof *s->fcount);
    s->mark = ir_calloc(n, sizeof *s->mark);
    s->stack = ir_malloc(n * sizeof *s->stack);
    s->ready = ir_malloc(n * sizeof *s->ready);
    s->order = ir_malloc(n * sizeof *s->order);
}

static void sched_free(Sched *s)
{
    free(s->unit_of);
    free(s->ufirst);
    free(s->uend);
    free(s->froot);
    free(s->fcount);
    free(s->npred0);
    free(s->npred);
    free(s->sstart);
    free(s->succ);
    free(s->alloc);
    free(s->root);
    free(s->size);
    free(s->freeable);
    free(s->remaining0);
    free(s->remaining);
    free(s->wb);
    free(s->need);
    free(s->ahead);
    free(s->anext);
    free(s->ato);
    free(s->mark);
    free(s->stack);
    free(s->ready);
    free(s->order);
}

static void build(Sched *s)
{
    Edges e = {0};
    find_units(s);
    find_buffers(s);
    count_readers(s);
    data_edges(s, &e);
    build_succ(s, &e);
    anti_edges(s, &e);
    build_succ(s, &e);
    find_need(s);
    find_alloc(s);
    free(e.from);
    free(e.to);
}

/* ---------------------------------------------------------------- the new order */

/* Sources first, in their order, then the units as scheduled. */
static void new_order(const Sched *s, IrNode **out)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->unit_of[i] < 0)
            out[k++] = s->g->nodes[i];
    for (int j = 0; j < s->norder; j++) {
        int u = s->order[j];
        for (int i = s->ufirst[u]; i <= s->uend[u]; i++)
            out[k++] = s->g->nodes[i];
    }
    IR_ASSERT(k == s->n);
}

static void set_order(IrGraph *g, IrNode *const *nodes)
{
    memcpy(g->nodes, nodes, sizeof *nodes * (size_t)g->nnodes);
    ir_graph_reindex(g);
}

/* The arena of g in its current order; -1 on an internal error. */
static int64_t arena_bytes(const IrGraph *g, const int64_t *binding, int64_t *live, IrError *err)
{
    PassMemPlan p;
    bool ok = pass_memplan_build(g, binding, NULL, &p, err);
    int64_t peak = ok ? p.peak_bytes : -1;
    *live = p.live_bytes;
    pass_memplan_free(&p);
    return peak;
}

static int moved(IrNode *const *a, IrNode *const *b, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += a[i] != b[i];
    return k;
}

static void drop_plan_attrs(IrGraph *g)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *nd = g->nodes[i];
        int k = 0;
        for (int j = 0; j < nd->nattr; j++)
            if (nd->attr[j].key != ATTR_OFFSET && nd->attr[j].key != ATTR_INPLACE)
                nd->attr[k++] = nd->attr[j];
        nd->nattr = k;
    }
}

static const char *const order_name[H_COUNT] = {"given", "free-first", "least-net",
                                                 "compute-late"};

/* "// schedule: B=2 T=64: peak-bytes P0 -> P, live-bytes L0 -> L; order H,
 * N of M nodes moved (given P0, free-first P1, least-net P2, compute-late P3)" */
static void explain(const Sched *s, const int64_t *peak, const int64_t *live, int best,
                    int nmoved, FILE *f)
{
    fprintf(f, "// schedule: ");
    for (int i = 0; i < s->g->nsym; i++)
        fprintf(f, "%s%s=%lld", i ? " " : "", s->g->sym[i], (long long)s->binding[i]);
    fprintf(f, "%speak-bytes %lld -> %lld, live-bytes %lld -> %lld; order %s, %d of %d nodes "
            "moved (", s->g->nsym ? ": " : "", (long long)peak[0], (long long)peak[best],
            (long long)live[0], (long long)live[best], order_name[best], nmoved, s->n);
    for (int h = 0; h < H_COUNT; h++)
        fprintf(f, "%s%s %lld", h ? ", " : "", order_name[h], (long long)peak[h]);
    fprintf(f, ")\n");
}

/* Plans g in each candidate order and keeps the smallest arena, the given
 * order on ties; cand[0] is the given order.  Returns the winner. */
static int pick_order(Sched *s, IrNode **cand[], int ncand, int64_t *peak, int64_t *live,
                      IrError *err)
{
    int best = 0;
    for (int c = 0; c < ncand; c++) {
        set_order(s->g, cand[c]);
        peak[c] = arena_bytes(s->g, s->binding, &live[c], err);
        if (peak[c] < 0)
            return -1;
        if (peak[c] < peak[best])
            best = c;
    }
    set_order(s->g, cand[best]);
    return best;
}

static bool choose(Sched *s, PassCtx *ctx)
{
    enum { NCAND = H_COUNT };
    IrGraph *g = s->g;
    IrNode **cand[NCAND];
    for (int c = 0; c < NCAND; c++)
        cand[c] = ir_malloc(sizeof **cand * ((size_t)s->n + 1));
    memcpy(cand[0], g->nodes, sizeof **cand * (size_t)s->n);
    for (int c = 1; c < NCAND; c++) {
        greedy(s, c);
        new_order(s, cand[c]);
    }
    int64_t peak[NCAND], live[NCAND];
    int best = pick_order(s, cand, NCAND, peak, live, ctx->err);
    int nmoved = best > 0 ? moved(cand[0], g->nodes, s->n) : 0;
    if (nmoved)
        drop_plan_attrs(g);
    if (best >= 0 && ctx->explain && ctx->out)
        explain(s, peak, live, best, nmoved, ctx->out);
    for (int c = 0; c < NCAND; c++)
        free(cand[c]);
    return best >= 0;
}

bool pass_schedule(IrGraph *g, PassCtx *ctx)
{
    if (g->nnodes == 0)
        return true;
    Sched s;
    sched_init(&s, g, ctx);
    build(&s);
    bool ok = choose(&s, ctx);
    sched_free(&s);
    return ok;
}
