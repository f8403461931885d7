/* fuse.c — the fuse pass: primitive ops into kernels.
 *
 * After decompose, simplify, cse and dce, a graph is made of primitives:
 * elementwise ops, reductions, movement, matmul, gather.  Run one kernel
 * per primitive and a softmax reads and writes memory six times.  This
 * pass groups primitives into kernels that read their inputs once and
 * write their results once, and records each kernel as a `fused` node
 * whose body is the group (docs/ir.md, Bodies).  The kinds of kernel,
 * each with an iteration space S (a shape):
 *
 *   elementwise  every value is S or broadcasts into it: one loop over S;
 *   row          S = [rows..., C] with reductions over the last axis
 *                (keepdim): per row, one loop per level of reductions,
 *                then the results; softmax, layernorm, cross-entropy and
 *                their backward passes are one such kernel each;
 *   reduce       a reduction over other axes (a bias gradient over
 *                [B*T, D]) with an elementwise prologue;
 *   matmul       a matmul whose operands are strided views (transposes
 *                and reshapes read in place by BLAS), with an elementwise
 *                or row epilogue over its result (bias, GELU, residual,
 *                even a whole softmax or layernorm), or writing its result
 *                through a transpose (the attention heads); or a sum of
 *                matmuls, which BLAS adds into one result.
 *
 * Kernels are formed greedily from the back of the graph: the last live
 * node not yet in a kernel starts one (its root) and absorbs producers,
 * latest first, while the rules of fuse_rules.c allow; each refusal has a
 * reason code that --explain prints.  Because every producer is decided
 * after all its users, a producer read by other kernels is known to be;
 * it may still join as an extra output (the layernorm kernel writes the
 * normalised value and 1/std for the backward pass too) unless that would
 * create a cycle in the graph of kernels (fuse_kernel_reaches).  Consts,
 * iotas and their elementwise cones (masks), scalar cones of inputs
 * (AdamW's bias corrections) and the views feeding a matmul are not
 * absorbed but copied into every kernel that reads them, so they cost no
 * kernel and no memory.  A kernel reads at most IR_MAX_IN buffers and
 * writes at most FUSE_MAX_OUTS.
 *
 * A kernel with several outputs is printed as sibling fused nodes, one
 * per output, each with the body of its own value, all with the same
 * operands and the same `group` attribute; codegen computes them in one
 * kernel.  fuse_emit.c also merges independent reduce kernels (same space
 * and axes) and row kernels (same space) that share an input into
 * siblings (a layernorm's scale and shift gradients; the loss's pick and
 * the logits' gradient), orders the kernels, and rebuilds the graph.
 * Last, fuse_horizontal.c makes the kernels that only write back a train
 * step's new params and optimizer state (the AdamW updates) one launch.
 */
#include "fuse_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- node classes */

bool fuse_is_source(const IrNode *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

bool fuse_is_free(const IrNode *n)
{
    return n->op == OP_CONST || n->op == OP_IOTA;
}

static bool is_pointwise(const IrNode *n)
{
    return (ir_ops[n->op].kind == OPK_ELEMWISE || n->op == OP_BROADCAST) && !n->body;
}

/* 1: free, 2: a cone of frees, 3: a scalar cone of frees and sources, 0: no. */
static int inl_class(Fuse *F, int i)
{
    const IrNode *n = F->node[i];
    if (F->inl[i] >= 0)
        return F->inl[i];
    int c = fuse_is_free(n) ? 1 : 0;
    if (!c && is_pointwise(n) && n->op != OP_DROPOUT) {
        bool idx = true, scal = ir_node_numel_const(n) == 1;
        for (int j = 0; j < n->nin; j++) {
            int k = inl_class(F, n->in[j]->index);
            idx = idx && (k == 1 || k == 2);
            scal = scal && (k > 0 || fuse_is_source(n->in[j]));
        }
        c = idx ? 2 : scal ? 3 : 0;
    }
    F->inl[i] = (signed char)c;
    return c;
}

bool fuse_inlinable(Fuse *F, int i)
{
    return inl_class(F, i) > 0;
}

/* ---------------------------------------------------------------- users */

static void build_users(Fuse *F)
{
    int *cnt = ir_calloc((size_t)F->n + 1, sizeof *cnt);
    for (int i = 0; i < F->n; i++)
        for (int j = 0; j < F->node[i]->nin; j++)
            cnt[F->node[i]->in[j]->index]++;
    F->use_off = ir_calloc((size_t)F->n + 1, sizeof *F->use_off);
    for (int i = 0; i < F->n; i++)
        F->use_off[i + 1] = F->use_off[i] + cnt[i];
    F->use = ir_calloc((size_t)F->use_off[F->n] + 1, sizeof *F->use);
    memset(cnt, 0, (size_t)F->n * sizeof *cnt);
    for (int i = 0; i < F->n; i++)
        for (int j = 0; j < F->node[i]->nin; j++) {
            int x = F->node[i]->in[j]->index, at = F->use_off[x] + cnt[x];
            if (cnt[x] && F->use[at - 1] == i)
                continue; /* an operand twice (mul x, x): one user */
            F->use[at] = i;
            cnt[x]++;
        }
    for (int i = 0; i < F->n; i++) /* close the gaps of deduplicated users */
        for (int k = F->use_off[i] + cnt[i]; k < F->use_off[i + 1]; k++)
            F->use[k] = -1;
    free(cnt);
}

int fuse_state(const Fuse *F, int gi, int i)
{
    return F->stamp[i] == gi + 1 ? F->state[i] : S_NONE;
}

void fuse_set_state(Fuse *F, int gi, int i, int s)
{
    F->stamp[i] = gi + 1;
    F->state[i] = (unsigned char)s;
}

int fuse_outside_readers(const Fuse *F, int gi, int i, int *first, bool *red)
{
    int count = 0;
    *first = -1;
    *red = false;
    for (int k = F->use_off[i]; k < F->use_off[i + 1]; k++) {
        int u = F->use[k];
        if (u < 0 || fuse_state(F, gi, u) == S_MEMBER)
            continue;
        bool reads = !F->done[u] || (F->grp[u] >= 0 && F->grp[u] != gi) || F->needed[u];
        if (!reads)
            continue; /* a dead node */
        if (*first < 0)
            *first = u;
        *red = *red || ir_ops[F->node[u]->op].kind == OPK_REDUCE;
        count++;
    }
    if (F->is_out[i] || (count == 0 && F->needed[i])) {
        if (*first < 0)
            *first = F->is_out[i] ? -2 : -3; /* an output; a matmul through a view */
        count++;
    }
    return count;
}

bool fuse_reaches(Fuse *F, int from, int to, int limit)
{
    int top = 0;
    F->seen_stamp++;
    F->dfs[top++] = from;
    F->seen[from] = F->seen_stamp;
    while (top) {
        int x = F->dfs[--top];
        if (x == to)
            return true;
        for (int k = F->use_off[x]; k < F->use_off[x + 1]; k++) {
            int u = F->use[k];
            if (u < 0 || u > limit || F->seen[u] == F->seen_stamp)
                continue;
            F->seen[u] = F->seen_stamp;
            F->dfs[top++] = u;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- the graph of kernels */

/* A node path is not enough to keep kernels acyclic: kernel A may take in
 * a value that kernel B reads while it reads another output of B, with no
 * path between nodes that leads back (B's two members are not connected).
 * The search below walks the contracted graph: reaching any member of a
 * kernel reaches all of them, whose readers it follows in turn. */

int fuse_unit(const Fuse *F, int gi)
{
    return F->gs[gi].merged_into >= 0 ? F->gs[gi].merged_into : gi;
}

static void reach_push(Fuse *F, int *top, int x)
{
    if (F->seen[x] == F->seen_stamp)
        return;
    F->seen[x] = F->seen_stamp;
    F->dfs[(*top)++] = x;
}

/* Pushes the members of kernel k and of the groups merged into it. */
static void reach_kernel(Fuse *F, int *top, int k)
{
    F->gs[k].seen = F->seen_stamp;
    for (int s = k; s >= 0; s = F->gs[s].next_sib)
        for (int m = 0; m < F->gs[s].nmem; m++)
            reach_push(F, top, F->gs[s].mem[m]);
}

bool fuse_kernel_reaches(Fuse *F, int node, int kernel, int target)
{
    int top = 0;
    F->seen_stamp++;
    if (kernel >= 0)
        reach_kernel(F, &top, kernel);
    if (node >= 0)
        for (int k = F->use_off[node]; k < F->use_off[node + 1]; k++) {
            int u = F->use[k]; /* a reader in target itself is no path back */
            if (u >= 0 && (F->grp[u] < 0 || fuse_unit(F, F->grp[u]) != target))
                reach_push(F, &top, u);
        }
    while (top) {
        int x = F->dfs[--top], g = F->grp[x] >= 0 ? fuse_unit(F, F->grp[x]) : -1;
        if (g == target)
            return true;
        if (g >= 0 && F->gs[g].seen != F->seen_stamp)
            reach_kernel(F, &top, g);
        for (int k = F->use_off[x]; k < F->use_off[x + 1]; k++)
            if (F->use[k] >= 0)
                reach_push(F, &top, F->use[k]);
    }
    return false;
}

/* ---------------------------------------------------------------- candidates */

static void heap_push(Fuse *F, int x)
{
    int i = F->nheap++;
    for (; i > 0 && F->heap[(i - 1) / 2] < x; i = (i - 1) / 2)
        F->heap[i] = F->heap[(i - 1) / 2];
    F->heap[i] = x;
}

static int heap_pop(Fuse *F)
{
    int top = F->heap[0], x = F->heap[--F->nheap], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= F->nheap)
            break;
        if (c + 1 < F->nheap && F->heap[c + 1] > F->heap[c])
            c++;
        if (F->heap[c] <= x)
            break;
        F->heap[i] = F->heap[c];
        i = c;
    }
    if (F->nheap)
        F->heap[i] = x;
    return top;
}

/* ---------------------------------------------------------------- groups */

static void push_int(int **v, int *n, int *cap, int x)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = realloc(*v, (size_t)*cap * sizeof **v);
        IR_ASSERT(*v);
    }
    (*v)[(*n)++] = x;
}

static int new_group(Fuse *F, int root)
{
    if (F->ngs == F->capgs) {
        F->capgs = F->capgs ? 2 * F->capgs : 64;
        F->gs = realloc(F->gs, (size_t)F->capgs * sizeof *F->gs);
        IR_ASSERT(F->gs);
    }
    FuseGroup *G = &F->gs[F->ngs];
    memset(G, 0, sizeof *G);
    G->root = root;
    G->head = -1;
    G->merged_into = G->next_sib = -1;
    return F->ngs++;
}

static void refuse(Fuse *F, int gi, int p, FuseReason why, const char *detail)
{
    FuseGroup *G = &F->gs[gi];
    if (G->nref == G->capref) {
        G->capref = G->capref ? 2 * G->capref : 4;
        G->ref = realloc(G->ref, (size_t)G->capref * sizeof *G->ref);
        IR_ASSERT(G->ref);
    }
    FuseRefusal *r = &G->ref[G->nref++];
    r->node = p;
    r->why = why;
    snprintf(r->detail, sizeof r->detail, "%s", detail);
}

/* A candidate: a node the kernel reads, to absorb, inline or read. */
static void push_candidate(Fuse *F, int gi, int x)
{
    if (fuse_state(F, gi, x) != S_NONE)
        return;
    fuse_set_state(F, gi, x, S_PENDING);
    heap_push(F, x);
    F->front[F->nfront++] = x;
}

static void push_operands(Fuse *F, int gi, int p)
{
    const IrNode *n = F->node[p];
    for (int j = 0; j < n->nin; j++)
        push_candidate(F, gi, n->in[j]->index);
}

/* The matmul's operands: read from memory (through views, see
 * place_views), never absorbed, so they are not candidates. */
static void reserve_operands(Fuse *F, int gi, int h)
{
    const IrNode *n = F->node[h];
    for (int j = 0; j < n->nin; j++) {
        int x = n->in[j]->index;
        if (fuse_state(F, gi, x) == S_NONE) {
            fuse_set_state(F, gi, x, S_PENDING);
            F->front[F->nfront++] = x;
        }
    }
}

static void add_member(Fuse *F, int gi, int p)
{
    FuseGroup *G = &F->gs[gi];
    fuse_set_state(F, gi, p, S_MEMBER);
    F->grp[p] = gi;
    push_int(&G->mem, &G->nmem, &G->capmem, p);
}

static void add_inline(Fuse *F, int gi, int p)
{
    FuseGroup *G = &F->gs[gi];
    fuse_set_state(F, gi, p, S_INLINE);
    push_int(&G->inl, &G->ninl, &G->capinl, p);
}

/* ---------------------------------------------------------------- absorbing */

static void absorb(Fuse *F, int gi, int p)
{
    FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[p];
    int first;
    bool red;
    bool out = fuse_outside_readers(F, gi, p, &first, &red) > 0;
    add_member(F, gi, p);
    if (out)
        G->out[G->nout++] = p;
    if (n->op == OP_MATMUL) {
        if (G->head < 0)
            G->head = p;
        G->heads[G->nhead++] = p;
        reserve_operands(F, gi, p);
        return;
    }
    if (ir_ops[n->op].kind == OPK_REDUCE && G->kind == G_ELEM) {
        G->kind = G_ROW;
        G->space = n->in[0]->shape;
    }
    push_operands(F, gi, p);
}

static void inline_node(Fuse *F, int gi, int p)
{
    add_inline(F, gi, p);
    push_operands(F, gi, p);
}

/* A reshape of a computed value: the element order of its operand is not
 * the kernel's, so the kernel reads it from memory. */
static void read_reshape(Fuse *F, int gi, int p)
{
    const IrNode *x = F->node[p]->in[0];
    if (!fuse_is_source(x) && !fuse_is_free(x) && x->op != OP_RESHAPE)
        refuse(F, gi, p, R_SHAPE_BREAK, "a reshape of a computed value: read from memory");
    fuse_set_state(F, gi, p, S_INPUT);
}

static void consider(Fuse *F, int gi, int p)
{
    const IrNode *n = F->node[p];
    char detail[120] = "";
    if (fuse_is_source(n) || F->grp[p] >= 0) {
        fuse_set_state(F, gi, p, S_INPUT);
        return;
    }
    if (n->op == OP_RESHAPE) {
        read_reshape(F, gi, p);
        return;
    }
    if (fuse_inlinable(F, p)) {
        if (fuse_is_free(n) || fuse_inputs_after(F, gi, p) <= IR_MAX_IN)
            inline_node(F, gi, p);
        else
            fuse_set_state(F, gi, p, S_INPUT);
        return;
    }
    FuseReason r = fuse_check(F, gi, p, detail, sizeof detail);
    if (r == R_NONE) {
        absorb(F, gi, p);
        return;
    }
    refuse(F, gi, p, r, detail);
    fuse_set_state(F, gi, p, S_INPUT);
}

/* ---------------------------------------------------------------- matmul operands */

/* Inlines the views between operand o and the leaf the matmul reads. */
static void place_view(Fuse *F, int gi, int o)
{
    int leaf = fuse_view_leaf(F, o);
    int ls = fuse_state(F, gi, leaf);
    if (leaf == o || ls == S_MEMBER || ls == S_INLINE) {
        fuse_set_state(F, gi, o, S_INPUT);
        leaf = o;
    } else {
        for (const IrNode *v = F->node[o]; v->index != leaf; v = v->in[0])
            add_inline(F, gi, v->index);
        if (ls == S_NONE) {
            fuse_set_state(F, gi, leaf, S_INPUT);
            F->front[F->nfront++] = leaf;
        }
    }
    const IrNode *x = F->node[leaf];
    if (F->grp[leaf] < 0 && (is_pointwise(x) || ir_ops[x->op].kind == OPK_REDUCE) &&
        !fuse_inlinable(F, leaf))
        refuse(F, gi, leaf, R_MATMUL_OPERAND, "BLAS reads the matmul's operands from memory");
}

static void place_views(Fuse *F, int gi)
{
    for (int k = 0; k < F->gs[gi].nhead; k++) {
        const IrNode *h = F->node[F->gs[gi].heads[k]];
        for (int j = 0; j < h->nin; j++)
            if (fuse_state(F, gi, h->in[j]->index) == S_PENDING)
                place_view(F, gi, h->in[j]->index);
    }
}

/* ---------------------------------------------------------------- forming a kernel */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Inputs (ascending), outputs (ascending); marks the inputs needed. */
static void finish_group(Fuse *F, int gi, const int *touched, int ntouched)
{
    FuseGroup *G = &F->gs[gi];
    for (int k = 0; k < ntouched; k++) {
        int x = touched[k], s = fuse_state(F, gi, x);
        if (s == S_INPUT || s == S_PENDING) {
            IR_ASSERT(G->nin < IR_MAX_IN);
            G->in[G->nin++] = x;
            F->needed[x] = true;
        }
    }
    qsort(G->in, (size_t)G->nin, sizeof *G->in, cmp_int);
    qsort(G->out, (size_t)G->nout, sizeof *G->out, cmp_int);
    G->trivial = G->nmem == 1 && G->ninl == 0;
}

/* The nodes whose state this kernel set: its members, inlined nodes and
 * the operands of both. */
static int collect_touched(Fuse *F, int gi, int *touched)
{
    FuseGroup *G = &F->gs[gi];
    int nt = 0;
    F->seen_stamp++;
    for (int pass = 0; pass < 2; pass++) {
        int cnt = pass ? G->ninl : G->nmem, *list = pass ? G->inl : G->mem;
        for (int k = 0; k < cnt; k++) {
            const IrNode *n = F->node[list[k]];
            for (int j = 0; j < n->nin; j++) {
                int x = n->in[j]->index;
                if (F->seen[x] != F->seen_stamp) {
                    F->seen[x] = F->seen_stamp;
                    touched[nt++] = x;
                }
            }
        }
    }
    return nt;
}

static void init_group(Fuse *F, int gi)
{
    FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[G->root];
    G->out[G->nout++] = G->root;
    if (n->op == OP_MATMUL) {
        G->kind = G_MATMUL;
        G->head = G->heads[G->nhead++] = G->root;
        G->space = n->shape;
        reserve_operands(F, gi, G->root);
        return;
    }
    if (ir_ops[n->op].kind == OPK_REDUCE) {
        G->kind = fuse_last_axis_reduction(n) ? G_ROW : G_REDUCE;
        G->space = n->in[0]->shape;
    } else {
        G->kind = G_ELEM;
        G->space = n->shape;
    }
    push_operands(F, gi, G->root);
}

/* A transpose that BLAS writes straight from the matmul under it. */
static void init_output_view(Fuse *F, int gi, int head)
{
    FuseGroup *G = &F->gs[gi];
    G->out[G->nout++] = G->root;
    G->kind = G_MATMUL;
    G->space = F->node[G->root]->shape;
    for (const IrNode *v = F->node[G->root]->in[0]; v->index != head; v = v->in[0])
        add_member(F, gi, v->index);
    add_member(F, gi, head);
    G->head = G->heads[G->nhead++] = head;
    reserve_operands(F, gi, head);
}

static void form_group(Fuse *F, int root, int view_head)
{
    int gi = new_group(F, root);
    F->nfront = 0;
    add_member(F, gi, root);
    if (view_head >= 0)
        init_output_view(F, gi, view_head);
    else
        init_group(F, gi);
    while (F->nheap) {
        int p = heap_pop(F);
        if (fuse_state(F, gi, p) == S_PENDING)
            consider(F, gi, p);
    }
    if (F->gs[gi].head >= 0)
        place_views(F, gi);
    int *touched = ir_calloc((size_t)(F->gs[gi].nmem + F->gs[gi].ninl) * IR_MAX_IN + 1,
                           sizeof *touched);
    finish_group(F, gi, touched, collect_touched(F, gi, touched));
    free(touched);
}

/* ---------------------------------------------------------------- the main loop */

static void keep(Fuse *F, int i)
{
    const IrNode *n = F->node[i];
    for (int j = 0; j < n->nin; j++)
        F->needed[n->in[j]->index] = true;
}

static bool starts_kernel(const IrNode *n)
{
    return is_pointwise(n) || n->op == OP_SUM || n->op == OP_MAX || n->op == OP_MATMUL;
}

static void visit(Fuse *F, int i)
{
    const IrNode *n = F->node[i];
    int head = -1;
    if (fuse_is_free(n) || n->body || !starts_kernel(n)) {
        if (n->op == OP_TRANSPOSE && fuse_output_view(F, i, &head))
            form_group(F, i, head);
        else
            keep(F, i);
        return;
    }
    form_group(F, i, -1);
}

static void main_loop(Fuse *F)
{
    for (int i = F->n - 1; i >= 0; i--) {
        F->done[i] = true;
        if (F->grp[i] >= 0 || fuse_is_source(F->node[i]) || !F->needed[i])
            continue;
        visit(F, i);
    }
}

/* ---------------------------------------------------------------- the pass */

static void fuse_init(Fuse *F, IrGraph *g, PassCtx *ctx)
{
    memset(F, 0, sizeof *F);
    F->g = g;
    F->ctx = ctx;
    F->n = g->nnodes;
    size_t n = (size_t)F->n + 1;
    F->node = ir_calloc(n, sizeof *F->node);
    if (F->n)
        memcpy(F->node, g->nodes, (size_t)F->n * sizeof *F->node);
    F->is_out = ir_calloc(n, sizeof *F->is_out);
    F->grp = ir_calloc(n, sizeof *F->grp);
    F->needed = ir_calloc(n, sizeof *F->needed);
    F->done = ir_calloc(n, sizeof *F->done);
    F->inl = ir_calloc(n, sizeof *F->inl);
    F->pure = ir_calloc(n, sizeof *F->pure);
    F->state = ir_calloc(n, sizeof *F->state);
    F->stamp = ir_calloc(n, sizeof *F->stamp);
    F->heap = ir_calloc(n, sizeof *F->heap);
    F->front = ir_calloc(n, sizeof *F->front);
    F->seen = ir_calloc(n, sizeof *F->seen);
    F->dfs = ir_calloc(n, sizeof *F->dfs);
    for (int i = 0; i < F->n; i++) {
        F->grp[i] = -1;
        F->inl[i] = F->pure[i] = -1;
    }
    for (int i = 0; i < g->nout; i++)
        F->is_out[g->outs[i].node->index] = F->needed[g->outs[i].node->index] = true;
    fuse_probe_binding(F->probe);
    build_users(F);
}

static void fuse_free(Fuse *F)
{
    for (int i = 0; i < F->ngs; i++) {
        free(F->gs[i].mem);
        free(F->gs[i].inl);
        free(F->gs[i].ref);
    }
    free(F->gs);
    free(F->node);
    free(F->use_off);
    free(F->use);
    free(F->is_out);
    free(F->grp);
    free(F->needed);
    free(F->done);
    free(F->inl);
    free(F->pure);
    free(F->state);
    free(F->stamp);
    free(F->heap);
    free(F->front);
    free(F->seen);
    free(F->dfs);
}

bool pass_fuse(IrGraph *g, PassCtx *ctx)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->body && g->nodes[i]->op != OP_FUSED && !pass_fuse(g->nodes[i]->body, ctx))
            return false;
    Fuse F;
    fuse_init(&F, g, ctx);
    main_loop(&F);
    fuse_emit(&F);
    fuse_free(&F);
    fuse_horizontal(g, ctx);
    return true;
}
