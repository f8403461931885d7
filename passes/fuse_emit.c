/* fuse_emit.c — from kernels to the fused graph, and --explain.
 *
 * The kernels of fuse.c become *units*: a kernel with its merged siblings,
 * or one node kept as it is (inputs, params, reshapes, opaque ops, and
 * kernels of one node with nothing to fuse).  Units are ordered by Kahn's
 * algorithm, the unit whose position (its last node in the input order)
 * is smallest first, so the output reads like the input; an extra output
 * can make a kernel come before a node that preceded its root.  Each
 * output of a kernel becomes a fused node whose body is the cone of that
 * output inside the kernel: its members, the copies of inlined nodes, and
 * one input node per buffer the kernel reads (the same list, in the same
 * order, for all siblings).  The siblings of a kernel with several outputs
 * follow one another and carry the same `group` attribute.
 *
 * Reduce kernels with the same space and axes, and row kernels with the
 * same space (without a matmul), that read a common buffer and do not
 * depend on each other (a layernorm's scale and shift gradients; the loss
 * and its gradient, which both read the logits) are merged into one
 * kernel first: siblings too.
 *
 * With ctx->explain, every kernel, every refusal and every merge is one
 * comment line on ctx->out, in the order of the output graph, with the
 * nodes named by their index in the input (`// fuse: ...`), and a last
 * line with the counts.
 */
#include "fuse_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Unit {
    int gi;       /* the kernel, or -1 for a node kept as it is */
    int node;     /* that node */
    int pos;      /* its last node in the input order */
    int in[IR_MAX_IN * FUSE_MAX_OUTS], nin;
    int out[FUSE_MAX_OUTS], nout;
} Unit;

typedef struct Emit {
    Fuse *F;
    Unit *u;
    int nu;
    int *unit_of;   /* the unit that writes node i, or -1 */
    int *order, norder;
    IrNode **mat;   /* the node of the output graph that holds node i's value */
    int *opnd;      /* opnd[i * IR_MAX_IN + j]: operand j of node i, by input index (emitting
                     * a node rewrites its operands and index) */
    int ngroups;    /* sibling groups numbered so far */
} Emit;

/* ---------------------------------------------------------------- siblings */

/* Fills mask[] with the axes a reduction reduces (none listed = all). */
static bool reduce_mask(const IrNode *n, bool *mask)
{
    const IrAttr *x = ir_node_attr(n, ATTR_AXES);
    int nx = x ? x->n : 0, r = n->in[0]->shape.rank;
    for (int i = 0; i < IR_MAX_RANK; i++)
        mask[i] = i < r && !nx;
    for (int i = 0; i < nx; i++) {
        int ax = ir_axis(x->i[i], r);
        if (ax < 0)
            return false;
        mask[ax] = true;
    }
    return true;
}

static bool same_axes(const IrNode *a, const IrNode *b)
{
    bool ma[IR_MAX_RANK], mb[IR_MAX_RANK];
    if (a->op != b->op || a->in[0]->shape.rank != b->in[0]->shape.rank)
        return false;
    return reduce_mask(a, ma) && reduce_mask(b, mb) && !memcmp(ma, mb, sizeof ma);
}

static int union_inputs(const FuseGroup *a, const FuseGroup *b, int *in)
{
    int n = 0;
    for (int k = 0; k < a->nin; k++)
        in[n++] = a->in[k];
    for (int k = 0; k < b->nin; k++) {
        bool dup = false;
        for (int j = 0; j < a->nin; j++)
            dup = dup || a->in[j] == b->in[k];
        if (!dup)
            in[n++] = b->in[k];
    }
    return n;
}

static bool shares_input(const FuseGroup *a, const FuseGroup *b)
{
    for (int i = 0; i < a->nin; i++)
        for (int j = 0; j < b->nin; j++)
            if (a->in[i] == b->in[j])
                return true;
    return false;
}

static int total_outputs(const Fuse *F, int gi)
{
    int n = 0;
    for (int k = 0; k < F->ngs; k++)
        if (k == gi || F->gs[k].merged_into == gi)
            n += F->gs[k].nout;
    return n;
}

/* Kernel bi depends on ai's kernel (with its siblings), or the other way
 * round, in the graph of kernels. */
static bool unit_depends(Fuse *F, int ai, int bi)
{
    return fuse_kernel_reaches(F, -1, ai, bi) || fuse_kernel_reaches(F, -1, bi, ai);
}

/* Reduce kernels over the same axes, or row kernels without a matmul. */
static bool mergeable_kinds(const Fuse *F, const FuseGroup *a, const FuseGroup *b)
{
    if (a->kind != b->kind || a->head >= 0 || b->head >= 0)
        return false;
    if (a->kind == G_REDUCE)
        return same_axes(F->node[a->root], F->node[b->root]);
    return a->kind == G_ROW;
}

static bool has_merged(const Fuse *F, int gi);

/* b joins a's kernel: b is in no kernel yet and has taken no sibling in
 * (those would stay marked as merged into b, a kernel no more). */
static bool can_merge(Fuse *F, int ai, int bi)
{
    FuseGroup *a = &F->gs[ai], *b = &F->gs[bi];
    int in[2 * IR_MAX_IN];
    if (b->merged_into >= 0 || has_merged(F, bi) || !mergeable_kinds(F, a, b) ||
        !ir_shape_eq(&a->space, &b->space) || !shares_input(a, b))
        return false;
    if (union_inputs(a, b, in) > IR_MAX_IN || total_outputs(F, ai) + b->nout > FUSE_MAX_OUTS)
        return false;
    return !unit_depends(F, ai, bi);
}

static void merge_siblings(Fuse *F)
{
    for (int ai = 0; ai < F->ngs; ai++) {
        FuseGroup *a = &F->gs[ai];
        if ((a->kind != G_REDUCE && a->kind != G_ROW) || a->merged_into >= 0)
            continue;
        for (int bi = 0; bi < F->ngs; bi++) {
            if (bi == ai || !can_merge(F, ai, bi))
                continue;
            F->gs[bi].merged_into = ai;
            F->gs[bi].next_sib = a->next_sib;
            a->next_sib = bi;
            a->nin = union_inputs(a, &F->gs[bi], a->in);
        }
    }
}

/* ---------------------------------------------------------------- units */

static void sort_ints(int *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

/* A kernel unit: the group and its merged siblings; outputs nobody reads
 * any more are dropped. */
static void kernel_unit(Emit *E, int gi, Unit *u)
{
    Fuse *F = E->F;
    u->gi = gi;
    u->node = F->gs[gi].root;
    for (int k = 0; k < F->gs[gi].nin; k++)
        u->in[u->nin++] = F->gs[gi].in[k];
    for (int s = 0; s < F->ngs; s++) {
        const FuseGroup *G = &F->gs[s];
        if (s != gi && G->merged_into != gi)
            continue;
        u->pos = G->root > u->pos ? G->root : u->pos;
        for (int k = 0; k < G->nout; k++)
            if (F->needed[G->out[k]])
                u->out[u->nout++] = G->out[k];
    }
    sort_ints(u->out, u->nout);
}

static void node_unit(Emit *E, int i, Unit *u)
{
    const IrNode *n = E->F->node[i];
    u->gi = -1;
    u->node = u->pos = i;
    u->out[u->nout++] = i;
    for (int j = 0; j < n->nin; j++)
        u->in[u->nin++] = n->in[j]->index;
}

static bool has_merged(const Fuse *F, int gi)
{
    for (int k = 0; k < F->ngs; k++)
        if (F->gs[k].merged_into == gi)
            return true;
    return false;
}

/* Whether node i is kept as it is: a source, or a live node outside any
 * kernel, or a kernel of one node. */
static bool kept(const Fuse *F, int i)
{
    const IrNode *n = F->node[i];
    if (n->op == OP_INPUT || n->op == OP_PARAM)
        return true;
    if (F->grp[i] < 0)
        return F->needed[i] && F->done[i];
    const FuseGroup *G = &F->gs[F->grp[i]];
    return G->root == i && G->trivial && G->merged_into < 0 && !has_merged(F, F->grp[i]);
}

static void make_units(Emit *E)
{
    Fuse *F = E->F;
    E->u = ir_calloc((size_t)F->n, sizeof *E->u);
    E->unit_of = ir_calloc((size_t)F->n, sizeof *E->unit_of);
    for (int i = 0; i < F->n; i++)
        E->unit_of[i] = -1;
    for (int i = 0; i < F->n; i++) {
        int gi = F->grp[i];
        Unit *u = &E->u[E->nu];
        if (kept(F, i))
            node_unit(E, i, u);
        else if (gi >= 0 && F->gs[gi].root == i && F->gs[gi].merged_into < 0)
            kernel_unit(E, gi, u);
        else
            continue;
        for (int k = 0; k < u->nout; k++)
            E->unit_of[u->out[k]] = E->nu;
        E->nu++;
    }
}

/* ---------------------------------------------------------------- order */

static void heap_push(int *h, int *n, const Unit *u, int x)
{
    int i = (*n)++;
    for (; i > 0 && u[h[(i - 1) / 2]].pos > u[x].pos; i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = x;
}

static int heap_pop(int *h, int *n, const Unit *u)
{
    int top = h[0], x = h[--*n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && u[h[c + 1]].pos < u[h[c]].pos)
            c++;
        if (u[h[c]].pos >= u[x].pos)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = x;
    return top;
}

/* Kahn's algorithm, the ready unit with the smallest position first. */
static void order_units(Emit *E)
{
    int *indeg = ir_calloc((size_t)E->nu, sizeof *indeg);
    int *off = ir_calloc((size_t)E->nu + 1, sizeof *off);
    for (int a = 0; a < E->nu; a++)
        for (int k = 0; k < E->u[a].nin; k++) {
            int b = E->unit_of[E->u[a].in[k]];
            IR_ASSERT(b >= 0);
            off[b + 1]++;
            indeg[a]++;
        }
    for (int b = 0; b < E->nu; b++)
        off[b + 1] += off[b];
    int *next = ir_calloc((size_t)off[E->nu] + 1, sizeof *next);
    int *fill = ir_calloc((size_t)E->nu, sizeof *fill);
    for (int a = 0; a < E->nu; a++)
        for (int k = 0; k < E->u[a].nin; k++) {
            int b = E->unit_of[E->u[a].in[k]];
            next[off[b] + fill[b]++] = a;
        }
    int *heap = ir_calloc((size_t)E->nu, sizeof *heap), nh = 0;
    E->order = ir_calloc((size_t)E->nu, sizeof *E->order);
    for (int a = 0; a < E->nu; a++)
        if (!indeg[a])
            heap_push(heap, &nh, E->u, a);
    while (nh) {
        int a = heap_pop(heap, &nh, E->u);
        E->order[E->norder++] = a;
        for (int k = off[a]; k < off[a + 1]; k++)
            if (!--indeg[next[k]])
                heap_push(heap, &nh, E->u, next[k]);
    }
    IR_ASSERT(E->norder == E->nu); /* the rules keep kernels acyclic */
    free(indeg), free(off), free(next), free(fill), free(heap);
}

/* ---------------------------------------------------------------- bodies */


/* Whether node x is computed inside kernel gi (a member or a copy). */
static bool inside(const Fuse *F, int gi, int x, const unsigned char *inl)
{
    return F->grp[x] == gi || inl[x];
}

/* Marks the cone of x inside kernel gi in cone[]. */
static void mark_cone(const Emit *E, int gi, int x, const unsigned char *inl, unsigned char *cone)
{
    if (cone[x] || !inside(E->F, gi, x, inl))
        return;
    cone[x] = 1;
    for (int j = 0; j < E->F->node[x]->nin; j++)
        mark_cone(E, gi, E->opnd[(size_t)x * IR_MAX_IN + j], inl, cone);
}

/* The name of the body's input k: its buffer's name when that is unique
 * among the inputs, else inK. */
static const char *input_name(const Emit *E, const Unit *u, int k, char *buf, size_t cap)
{
    const char *name = E->F->node[u->in[k]]->name;
    for (int j = 0; name && j < u->nin; j++)
        if (j != k && E->F->node[u->in[j]]->name && !strcmp(E->F->node[u->in[j]]->name, name))
            name = NULL;
    if (name && *name)
        return name;
    snprintf(buf, cap, "in%d", k);
    return buf;
}

static IrNode *clone_into(IrGraph *b, const IrNode *n, const int *operand, IrNode **map)
{
    IrNode *in[IR_MAX_IN];
    IrError err = {0};
    for (int j = 0; j < n->nin; j++)
        in[j] = map[operand[j]];
    IrNode *m = ir_node_new(b, n->op, in, n->nin, n->attr, n->nattr, &n->dtype, &n->shape, &err);
    IR_ASSERT(m && m->dtype == n->dtype && ir_shape_eq(&m->shape, &n->shape));
    m->name = n->name ? ir_arena_strdup(b->arena, n->name) : NULL;
    return m;
}

/* The body computing output o of unit u: inputs, then the cone of o. */
static IrGraph *build_body(Emit *E, const Unit *u, int o, unsigned char *cone,
                           unsigned char *inl, IrNode **map)
{
    Fuse *F = E->F;
    int gi = F->grp[o];
    const FuseGroup *G = &F->gs[gi];
    IrGraph *b = ir_graph_new("kernel");
    for (int i = 0; i < F->g->nsym; i++)
        ir_graph_sym(b, F->g->sym[i]);
    for (int k = 0; k < u->nin; k++) {
        char buf[32];
        const IrNode *x = F->node[u->in[k]];
        map[u->in[k]] = ir_input(b, input_name(E, u, k, buf, sizeof buf), x->dtype, x->shape);
    }
    for (int k = 0; k < G->ninl; k++)
        inl[G->inl[k]] = 1;
    mark_cone(E, gi, o, inl, cone);
    for (int i = 0; i < F->n; i++)
        if (cone[i]) {
            map[i] = clone_into(b, F->node[i], E->opnd + (size_t)i * IR_MAX_IN, map);
            cone[i] = 0;
        }
    for (int k = 0; k < G->ninl; k++)
        inl[G->inl[k]] = 0;
    ir_graph_add_output(b, "out", map[o]);
    return b;
}

/* ---------------------------------------------------------------- the graph */

static void push_node(IrGraph *g, IrNode *n)
{
    if (g->nnodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        IrNode **nodes = ir_arena_alloc(g->arena, (size_t)cap * sizeof *nodes);
        if (g->nnodes)
            memcpy(nodes, g->nodes, (size_t)g->nnodes * sizeof *nodes);
        g->nodes = nodes;
        g->cap = cap;
    }
    n->index = g->nnodes;
    g->nodes[g->nnodes++] = n;
}

static void emit_kept(Emit *E, const Unit *u)
{
    IrNode *n = E->F->node[u->node];
    for (int j = 0; j < n->nin; j++)
        n->in[j] = E->mat[u->in[j]];
    push_node(E->F->g, n);
    E->mat[u->node] = n;
}

static void emit_kernel(Emit *E, const Unit *u, unsigned char *cone, unsigned char *inl,
                        IrNode **map)
{
    Fuse *F = E->F;
    IrNode *ops[IR_MAX_IN];
    IrAttr grp = ir_attr_int(ATTR_GROUP, E->ngroups);
    for (int k = 0; k < u->nin; k++)
        ops[k] = E->mat[u->in[k]];
    for (int k = 0; k < u->nout; k++) {
        const IrNode *o = F->node[u->out[k]];
        IrError err = {0};
        IrNode *f = ir_node_new(F->g, OP_FUSED, ops, u->nin, &grp, u->nout > 1, &o->dtype,
                                &o->shape, &err);
        IR_ASSERT(f);
        f->body = build_body(E, u, u->out[k], cone, inl, map);
        f->name = o->name ? ir_arena_strdup(F->g->arena, o->name) : NULL;
        E->mat[u->out[k]] = f;
    }
    E->ngroups += u->nout > 1;
}

/* Frees the bodies of dropped nodes (their arenas are their own). */
static void free_dropped(Emit *E)
{
    for (int i = 0; i < E->F->n; i++)
        if (E->mat[i] != E->F->node[i] && E->F->node[i]->body) {
            ir_graph_free(E->F->node[i]->body);
            E->F->node[i]->body = NULL;
        }
}

static void rebuild(Emit *E)
{
    Fuse *F = E->F;
    IrGraph *g = F->g;
    unsigned char *cone = ir_calloc((size_t)F->n, 1), *inl = ir_calloc((size_t)F->n, 1);
    IrNode **map = ir_calloc((size_t)F->n, sizeof *map);
    int *outs = ir_calloc((size_t)g->nout, sizeof *outs);
    E->mat = ir_calloc((size_t)F->n, sizeof *E->mat);
    E->opnd = ir_calloc((size_t)F->n * IR_MAX_IN, sizeof *E->opnd);
    for (int i = 0; i < F->n; i++)
        for (int j = 0; j < F->node[i]->nin; j++)
            E->opnd[(size_t)i * IR_MAX_IN + j] = F->node[i]->in[j]->index;
    for (int i = 0; i < g->nout; i++)
        outs[i] = g->outs[i].node->index;
    g->nnodes = 0;
    for (int k = 0; k < E->norder; k++) {
        const Unit *u = &E->u[E->order[k]];
        if (u->gi < 0)
            emit_kept(E, u);
        else
            emit_kernel(E, u, cone, inl, map);
    }
    for (int i = 0; i < g->nout; i++)
        g->outs[i].node = E->mat[outs[i]];
    free_dropped(E);
    ir_graph_reindex(g);
    free(cone), free(inl), free(map), free(outs);
}

/* ---------------------------------------------------------------- --explain */

static const char *kind_name(const FuseGroup *G)
{
    if (G->kind == G_MATMUL)
        return "matmul";
    if (G->head >= 0)
        return G->kind == G_ROW ? "matmul+row" : "matmul+elementwise";
    return G->kind == G_ROW ? "row" : G->kind == G_REDUCE ? "reduce" : "elementwise";
}

static void put_list(const Fuse *F, FILE *f, const char *what, int *v, int n)
{
    sort_ints(v, n);
    for (int k = 0; k < n; k++)
        fprintf(f, "%s%%%d %s", k ? ", " : what, v[k], ir_op_name(F->node[v[k]]->op));
}

static void explain_kernel(const Fuse *F, const FuseGroup *G, FILE *f)
{
    const IrNode *r = F->node[G->root];
    int outs[FUSE_MAX_OUTS], nout = 0;
    fprintf(f, "// fuse: kernel %%%d %s", G->root, kind_name(G));
    if (r->name)
        fprintf(f, " '%s'", r->name);
    put_list(F, f, ": ", G->mem, G->nmem);
    put_list(F, f, "; inlined ", G->inl, G->ninl);
    for (int k = 0; k < G->nout; k++)
        if (F->needed[G->out[k]])
            outs[nout++] = G->out[k];
    for (int k = 0; nout > 1 && k < nout; k++)
        fprintf(f, "%s%%%d", k ? ", " : "; outputs ", outs[k]);
    fputc('\n', f);
}

static void explain_refusals(const Fuse *F, const FuseGroup *G, FILE *f)
{
    for (int k = 0; k < G->nref; k++) {
        const FuseRefusal *r = &G->ref[k];
        fprintf(f, "// fuse: refuse %%%d %s for kernel %%%d: %s (%s)\n", r->node,
                ir_op_name(F->node[r->node]->op), G->root, fuse_reason_name(r->why), r->detail);
    }
}

static int by_node(const void *a, const void *b)
{
    const FuseRefusal *x = a, *y = b;
    return (x->node > y->node) - (x->node < y->node);
}

static void explain_group(const Fuse *F, int gi, FILE *f)
{
    FuseGroup *G = &F->gs[gi];
    if (!G->trivial || G->merged_into >= 0 || has_merged(F, gi))
        explain_kernel(F, G, f);
    if (G->nref)
        qsort(G->ref, (size_t)G->nref, sizeof *G->ref, by_node);
    explain_refusals(F, G, f);
}

static void explain_unit(const Emit *E, const Unit *u, FILE *f)
{
    const Fuse *F = E->F;
    int gi = u->gi >= 0 ? u->gi : F->grp[u->node], list[FUSE_MAX_OUTS], n = 0;
    if (gi < 0 || F->gs[gi].root != u->node)
        return;
    for (int s = 0; s < F->ngs && n < FUSE_MAX_OUTS; s++)
        if (s == gi || F->gs[s].merged_into == gi)
            list[n++] = s;
    for (int i = 1; i < n; i++) /* by root, ascending */
        for (int j = i; j > 0 && F->gs[list[j - 1]].root > F->gs[list[j]].root; j--) {
            int t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    for (int k = 0; k < n; k++)
        explain_group(F, list[k], f);
    for (int k = 0; n > 1 && k < n; k++)
        fprintf(f, "%s%%%d", k ? ", " : "// fuse: siblings ", F->gs[list[k]].root);
    if (n > 1)
        fprintf(f, ": one %s kernel (same space%s, a shared input)\n",
                F->gs[gi].kind == G_ROW ? "row" : "reduce",
                F->gs[gi].kind == G_ROW ? "" : " and axes");
}

static void explain(const Emit *E, int nin_nodes)
{
    const Fuse *F = E->F;
    FILE *f = F->ctx->out;
    int kernels = 0, fused = 0;
    if (!F->ctx->explain || !f)
        return;
    for (int k = 0; k < E->norder; k++) {
        const Unit *u = &E->u[E->order[k]];
        const IrNode *n = F->node[u->node];
        explain_unit(E, u, f);
        kernels += u->gi >= 0 || !(fuse_is_source(n) || n->op == OP_RESHAPE);
        fused += u->gi >= 0;
    }
    fprintf(f, "// fuse: %d nodes in, %d out; %d kernel%s, %d fused\n", nin_nodes, F->g->nnodes,
            kernels, kernels == 1 ? "" : "s", fused);
}

/* ---------------------------------------------------------------- entry */

void fuse_emit(Fuse *F)
{
    Emit E;
    memset(&E, 0, sizeof E);
    E.F = F;
    for (int i = 0; i < F->n; i++) /* new groups get numbers the input does not use */
        if (F->node[i]->op == OP_FUSED && ir_node_attr(F->node[i], ATTR_GROUP) &&
            ir_node_int(F->node[i], ATTR_GROUP, 0) >= E.ngroups)
            E.ngroups = (int)ir_node_int(F->node[i], ATTR_GROUP, 0) + 1;
    merge_siblings(F);
    make_units(&E);
    order_units(&E);
    rebuild(&E);
    explain(&E, F->n);
    free(E.u);
    free(E.unit_of);
    free(E.order);
    free(E.mat);
    free(E.opnd);
}
