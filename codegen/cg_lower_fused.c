/* cg_lower_fused.c — a fused node (passes/fuse.c) becomes one kernel.
 *
 * The body of a fused node says what its kernel computes.  Sibling fused
 * nodes (adjacent, the same operands, the same `group`) are the outputs of
 * one kernel: their bodies are merged into one graph (cse shares what they
 * have in common: a layernorm's statistics, a softmax's sums) and the last
 * sibling's kernel computes and stores every output; the others' kernels
 * do nothing (the memory plan gives each sibling its buffer at its own
 * position, and the operands, common to all, stay live until the last).
 * If siblings are not adjacent (after a reordering), each computes its own
 * body, which is right, only slower.
 *
 * A horizontal launch (adjacent sibling runs with one `hgroup`, from
 * passes/fuse_horizontal.c: the AdamW updates of every param) is one kernel
 * over the concatenation of its members' ranges: each member is built as
 * above under the name SYMBOL.m, and the last node's kernel calls every
 * member on the part of its range that falls in [begin, end), so the
 * runtime splits the whole launch over its threads at once.  The other
 * members' nodes get empty kernels, as siblings do.
 *
 * From the merged body this file decides the kind of kernel:
 *   matmul       the body is a matmul whose operands and result are
 *                strided views (reshapes and transposes around it): one
 *                cblas_sgemm per batch entry, with leading dimensions and
 *                transpose flags from the views (passes/fuse.h);
 *   reduce       reductions over other axes than the last one, with an
 *                elementwise prologue over their input's space;
 *   row          reductions over the last axis: per row, one loop per level
 *                of reductions, then the outputs;
 *   elementwise  everything else.
 * A matmul may head an elementwise or row kernel: BLAS writes its result
 * into the primary output, and the loops read it from there in place
 * (each element is read before the same element is written).  Such
 * kernels run once (not parallel; OpenBLAS threads inside), the others are
 * parallel over rows, elements or output tiles (cg_lower_fused_loops.c).
 *
 * Bodies are shared between kernels with the same signature (the body's
 * ops, attributes and concrete dims), as for single ops: dropout seeds are
 * not part of it but come in through an i64 array the wrapper passes, so
 * the twelve blocks of GPT-2 compile their kernels once.
 */
#include "cg_fused_int.h"

#include "ir/cost.h"
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

/* ---------------------------------------------------------------- siblings */

/* Sibling runs and launch runs are the passes' (pass_sibling_run,
 * pass_launch_run), so codegen, schedule and memplan agree on them. */
_Static_assert(FX_MAX_OUT == PASS_MAX_SIBLINGS, "a sibling run is one kernel's outputs");

/* ---------------------------------------------------------------- the merged body */

static IrNode *clone_node(IrGraph *m, const IrNode *n, IrNode **map)
{
    IrNode *in[IR_MAX_IN];
    IrError err = {0};
    for (int j = 0; j < n->nin; j++)
        in[j] = map[n->in[j]->index];
    IrNode *c = ir_node_new(m, n->op, in, n->nin, n->attr, n->nattr, &n->dtype, &n->shape, &err);
    IR_ASSERT(c);
    c->name = n->name;
    return c;
}

/* The sibling bodies in one graph with one output per sibling; cse then
 * merges what they compute alike. */
static IrGraph *merge_bodies(Fx *x)
{
    const IrGraph *b0 = x->sib[0]->body;
    IrGraph *m = ir_graph_new("fused");
    for (int i = 0; i < b0->nsym; i++)
        ir_graph_sym(m, b0->sym[i]);
    IrNode *ins[IR_MAX_IN];
    int nin = 0;
    for (int i = 0; i < b0->nnodes; i++)
        if (b0->nodes[i]->op == OP_INPUT)
            ins[nin++] = ir_input(m, b0->nodes[i]->name, b0->nodes[i]->dtype, b0->nodes[i]->shape);
    for (int s = 0; s < x->nsib; s++) {
        const IrGraph *b = x->sib[s]->body;
        IrNode **map = calloc((size_t)b->nnodes + 1, sizeof *map);
        IR_ASSERT(map);
        for (int i = 0, k = 0; i < b->nnodes; i++)
            map[i] = b->nodes[i]->op == OP_INPUT ? ins[k++] : clone_node(m, b->nodes[i], map);
        char name[16];
        snprintf(name, sizeof name, "o%d", s);
        ir_graph_add_output(m, name, map[b->outs[0].node->index]);
        free(map);
    }
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.out = NULL;
    pass_cse(m, &ctx);
    return m;
}

/* ---------------------------------------------------------------- classifying */

static bool fx_fail(Fx *x, const char *what)
{
    return cg_fail(x->L, x->sib[x->nsib - 1], "fused kernel: %s", what);
}

static int node_kind(const IrNode *n)
{
    switch (n->op) {
    case OP_INPUT:     return X_INPUT;
    case OP_MATMUL:    return X_MM;
    case OP_RESHAPE:
    case OP_TRANSPOSE: return X_VIEW;
    case OP_CONST:     return X_CONST;
    case OP_IOTA:      return X_IOTA;
    case OP_DROPOUT:   return X_DROPOUT;
    case OP_SUM:
    case OP_MAX:       return X_RED;
    default:           break;
    }
    bool elem = ir_ops[n->op].kind == OPK_ELEMWISE || n->op == OP_BROADCAST;
    return elem && !n->body ? X_ELEM : -1;
}

static void mark_need(Fx *x, int i)
{
    if (x->x[i].need)
        return;
    x->x[i].need = true;
    for (int j = 0; j < x->x[i].n->nin; j++)
        mark_need(x, x->x[i].n->in[j]->index);
}

/* The one reader of node i in the body, or -1 (none, several, an output). */
static int body_reader(const Fx *x, int i)
{
    int r = -1;
    for (int s = 0; s < x->nsib; s++)
        if (x->out[s] == i)
            return -1;
    for (int u = i + 1; u < x->M->nnodes; u++)
        for (int j = 0; j < x->x[u].n->nin; j++)
            if (x->x[u].n->in[j]->index == i) {
                if (r >= 0 && r != u)
                    return -1;
                r = u;
            }
    return r;
}

/* Node i is a matmul, or an add of two such sums each read only by it. */
static bool pure_sum(const Fx *x, int i)
{
    const IrNode *n = x->x[i].n;
    if (n->op == OP_MATMUL)
        return true;
    if (n->op != OP_ADD || n->in[0] == n->in[1] || !ir_shape_eq(&n->in[0]->shape, &n->shape) ||
        !ir_shape_eq(&n->in[1]->shape, &n->shape))
        return false;
    for (int j = 0; j < 2; j++)
        if (body_reader(x, n->in[j]->index) != i || !pure_sum(x, n->in[j]->index))
            return false;
    return true;
}

/* Marks the adds and matmuls under a sum's root: BLAS computes them. */
static int mark_sum(Fx *x, int i)
{
    x->x[i].kind = X_MM;
    if (x->x[i].n->op == OP_MATMUL)
        return 1;
    return mark_sum(x, x->x[i].n->in[0]->index) + mark_sum(x, x->x[i].n->in[1]->index);
}

/* The value BLAS computes: the matmul, or the root of the sum of matmuls
 * it is a term of, which becomes the head (BLAS adds the terms into one
 * result, beta = 1). */
static bool find_head(Fx *x)
{
    int root = x->mm[0];
    for (int r = body_reader(x, root); r >= 0 && pure_sum(x, r); r = body_reader(x, r))
        root = r;
    if (mark_sum(x, root) != x->nmm)
        return fx_fail(x, "matmuls that are not one sum");
    x->head = root;
    x->x[root].kind = X_HEAD;
    return true;
}

static bool classify(Fx *x)
{
    const IrGraph *M = x->M;
    x->x = calloc((size_t)M->nnodes + 1, sizeof *x->x);
    IR_ASSERT(x->x);
    x->head = x->primary = -1;
    for (int i = 0; i < M->nnodes; i++) {
        FxNode *v = &x->x[i];
        v->n = M->nodes[i];
        v->kind = node_kind(v->n);
        v->map = -1;
        if (v->kind < 0)
            return fx_fail(x, "an op the fused lowering does not know");
        if (v->kind == X_INPUT)
            v->slot = x->nin++;
        if (v->kind == X_MM && x->nmm == 4)
            return fx_fail(x, "more than four matmuls in one kernel");
        if (v->kind == X_MM)
            x->mm[x->nmm++] = i;
        if (v->kind == X_RED)
            v->acc = x->nacc++;
        if (v->kind == X_DROPOUT)
            v->aux = x->naux++;
    }
    for (int s = 0; s < x->nsib; s++)
        mark_need(x, x->out[s]);
    if (x->nacc > FX_MAX_OUT * 4)
        return fx_fail(x, "too many reductions in one kernel");
    return !x->nmm || find_head(x);
}

/* The output s reached from the head through views only (or the head). */
static bool is_output_view(const Fx *x, int o)
{
    const IrNode *n = x->x[o].n;
    while (n->index != x->head && fuse_is_view(n))
        n = n->in[0];
    return n->index == x->head;
}

/* Views must sit between a body input and the matmul, or between the
 * matmul and an output of a matmul kernel. */
static bool check_views(Fx *x)
{
    bool *ok = calloc((size_t)x->M->nnodes + 1, sizeof *ok);
    IR_ASSERT(ok);
    for (int m = 0; m < x->nmm; m++)
        for (int j = 0; j < x->x[x->mm[m]].n->nin; j++)
            for (const IrNode *n = x->x[x->mm[m]].n->in[j]; fuse_is_view(n); n = n->in[0])
                ok[n->index] = true;
    for (int s = 0; x->kind == FK_MATMUL && s < x->nsib; s++)
        for (const IrNode *n = x->x[x->out[s]].n; n->index != x->head; n = n->in[0])
            ok[n->index] = true;
    bool good = true;
    for (int i = 0; i < x->M->nnodes; i++)
        good = good && (x->x[i].kind != X_VIEW || !x->x[i].need || ok[i]);
    free(ok);
    return good || fx_fail(x, "a reshape or transpose that is not a view around its matmul");
}

/* ---------------------------------------------------------------- the space */

static void dims_of(const Fx *x, const IrNode *n, int64_t *dim)
{
    fuse_dims(n, x->L->binding, dim);
}

static bool last_axis_only(const IrNode *n)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    if (!a || a->n == 0)
        return r == 1;
    return a->n == 1 && ir_axis(a->i[0], r) == r - 1;
}

/* mask[d]: reduction n reduces axis d of its input. */
static void red_mask(const IrNode *n, bool *mask)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    for (int d = 0; d < IR_MAX_RANK; d++)
        mask[d] = d < r && (!a || a->n == 0);
    for (int i = 0; a && i < a->n; i++)
        mask[ir_axis(a->i[i], r)] = true;
}

static bool all_outputs_views(const Fx *x)
{
    for (int s = 0; s < x->nsib; s++)
        if (!is_output_view(x, x->out[s]))
            return false;
    return x->head >= 0;
}

/* The kind of kernel and its space s (symbolic: the dims come later). */
static bool choose_kind(Fx *x, IrShape *s)
{
    int red = -1, outer = -1;
    for (int i = 0; i < x->M->nnodes; i++)
        if (x->x[i].need && x->x[i].kind == X_RED) {
            red = red < 0 ? i : red;
            outer = !last_axis_only(x->x[i].n) && outer < 0 ? i : outer;
        }
    if (all_outputs_views(x)) {
        x->kind = FK_MATMUL;
        *s = x->x[x->out[0]].n->shape;
        return x->nsib == 1 || fx_fail(x, "a matmul kernel writes one output");
    }
    x->kind = outer >= 0 ? FK_REDUCE : red >= 0 ? FK_ROW : FK_ELEM;
    if (red >= 0) {
        *s = x->x[outer >= 0 ? outer : red].n->in[0]->shape;
        return true;
    }
    int64_t best = -1, dim[IR_MAX_RANK];
    for (int k = 0; k < x->nsib; k++) {
        const IrNode *o = x->x[x->out[k]].n;
        int64_t numel = 1;
        dims_of(x, o, dim);
        for (int d = 0; d < o->shape.rank; d++)
            numel *= dim[d];
        if (numel > best)
            best = numel, *s = o->shape;
    }
    return true;
}

/* ---------------------------------------------------------------- maps */

/* Whether the loops need node i's value: an output (unless the kernel is
 * a matmul alone), or an operand of a node they compute. */
static bool valued(const Fx *x, int i)
{
    if (x->kind == FK_MATMUL)
        return false;
    for (int s = 0; s < x->nsib; s++)
        if (x->out[s] == i)
            return true;
    for (int u = i + 1; u < x->M->nnodes; u++) {
        const FxNode *v = &x->x[u];
        if (!v->need || v->kind == X_VIEW || v->kind == X_HEAD || v->kind == X_MM)
            continue;
        for (int j = 0; j < v->n->nin; j++)
            if (v->n->in[j]->index == i)
                return true;
    }
    return false;
}

/* A map over the space sd[sr] for a value of dims vd[vr], dense strides
 * with 0 on broadcast dims; right-aligned, or left-aligned for a reduction
 * that dropped the last axis.  -1 if the value does not fit the space. */
static int add_map(Fx *x, const int64_t *sd, int sr, const int64_t *vd, int vr, bool left)
{
    if (vr > sr || x->nmap == FX_MAX_MAP)
        return -1;
    int m = x->nmap++;
    int64_t s = 1;
    memset(x->st[m], 0, sizeof x->st[m]);
    for (int d = vr - 1; d >= 0; d--) {
        int at = left ? d : d + sr - vr;
        if (vd[d] != 1 && vd[d] != sd[at])
            return -1;
        x->st[m][at] = vd[d] == 1 ? 0 : s;
        s *= vd[d];
    }
    return m;
}

/* An iota's map: its index along its axis. */
static int iota_map(Fx *x, const IrNode *n, const int64_t *sd, int sr)
{
    int64_t vd[IR_MAX_RANK];
    dims_of(x, n, vd);
    int m = add_map(x, sd, sr, vd, n->shape.rank, false);
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, 0), n->shape.rank);
    if (m < 0)
        return -1;
    for (int d = 0; d < sr; d++)
        x->st[m][d] = d == ax + sr - n->shape.rank && vd[ax] != 1 ? 1 : 0;
    return m;
}

static int node_map(Fx *x, int i, const int64_t *sd, int sr)
{
    const IrNode *n = x->x[i].n;
    int64_t vd[IR_MAX_RANK];
    if (x->x[i].kind == X_IOTA)
        return iota_map(x, n, sd, sr);
    if (x->x[i].kind == X_HEAD)
        return add_map(x, sd, sr, sd, sr, false);
    dims_of(x, n, vd);
    return add_map(x, sd, sr, vd, n->shape.rank, false);
}

/* An output's map: its dense layout in the space (a reduce kernel's
 * outputs keep their reduced dims as 1; a row kernel's reduction without
 * keepdim is one value per row). */
static int output_map(Fx *x, int i, const int64_t *sd, int sr)
{
    const IrNode *n = x->x[i].n;
    int64_t vd[IR_MAX_RANK];
    bool mask[IR_MAX_RANK];
    if (x->kind == FK_REDUCE) {
        red_mask(n, mask);
        for (int d = 0; d < sr; d++)
            vd[d] = mask[d] ? 1 : sd[d];
        return add_map(x, sd, sr, vd, sr, false);
    }
    dims_of(x, n, vd);
    bool left = x->x[i].kind == X_RED && !ir_node_int(n, ATTR_KEEPDIM, 0) &&
                n->shape.rank == sr - 1;
    int m = add_map(x, sd, sr, vd, n->shape.rank, left);
    for (int d = 0; m >= 0 && d + 1 < sr; d++)
        if (sd[d] != 1 && !x->st[m][d])
            return -1; /* it would be written by several rows */
    return m;
}

/* Every value the loops compute broadcasts into the space. */
static bool values_fit(Fx *x, const int64_t *sd, int sr)
{
    for (int i = 0; i < x->M->nnodes; i++) {
        const FxNode *v = &x->x[i];
        int64_t vd[IR_MAX_RANK];
        bool skip = !v->need || v->kind == X_VIEW || v->kind == X_HEAD || v->kind == X_MM ||
                    (v->kind == X_RED &&
                     (x->kind == FK_REDUCE || !ir_node_int(v->n, ATTR_KEEPDIM, 0)));
        if (skip || !valued(x, i))
            continue;
        dims_of(x, v->n, vd);
        int vr = v->n->shape.rank;
        for (int d = 0; d < vr; d++)
            if (vr > sr || (vd[d] != 1 && vd[d] != sd[d + sr - vr]))
                return fx_fail(x, "a value does not broadcast into the kernel's space");
    }
    return true;
}

static bool build_maps(Fx *x, const IrShape *s)
{
    int64_t sd[IR_MAX_RANK];
    int sr = s->rank;
    for (int d = 0; d < sr; d++) {
        int64_t v = ir_dim_eval(s->d[d], x->L->binding);
        sd[d] = v > 0 ? v : 1;
    }
    if (!values_fit(x, sd, sr))
        return false;
    for (int i = 0; i < x->M->nnodes; i++) {
        FxNode *v = &x->x[i];
        bool leaf = v->kind == X_INPUT || v->kind == X_IOTA || v->kind == X_DROPOUT ||
                    v->kind == X_HEAD;
        if (v->need && leaf && valued(x, i) && (v->map = node_map(x, i, sd, sr)) < 0)
            return fx_fail(x, "a value does not broadcast into the kernel's space");
        if (v->kind == X_DROPOUT && v->map < 0 && (v->map = node_map(x, i, sd, sr)) < 0)
            return fx_fail(x, "a dropout does not fit the kernel's space");
    }
    for (int k = 0; x->kind != FK_MATMUL && k < x->nsib; k++)
        if ((x->out_map[k] = output_map(x, x->out[k], sd, sr)) < 0)
            return fx_fail(x, "an output does not cover the kernel's space");
    x->rank = sr;
    memcpy(x->dim, sd, sizeof sd);
    return true;
}

/* ---------------------------------------------------------------- coalescing */

static void drop_dim(Fx *x, int d)
{
    for (int e = d; e + 1 < x->rank; e++) {
        x->dim[e] = x->dim[e + 1];
        x->red[e] = x->red[e + 1];
        for (int m = 0; m < x->nmap; m++)
            x->st[m][e] = x->st[m][e + 1];
    }
    x->rank--;
}

/* Dims d and d+1 can be one: the same class, and every map steps through
 * them as one. */
static bool mergeable(const Fx *x, int d)
{
    if ((x->kind == FK_ROW && d + 1 == x->rank - 1) || x->red[d] != x->red[d + 1])
        return false;
    for (int m = 0; m < x->nmap; m++)
        if (x->st[m][d] != x->st[m][d + 1] * x->dim[d + 1])
            return false;
    return true;
}

/* Drops size-1 dims (a row kernel keeps its last) and merges neighbours. */
static void coalesce(Fx *x)
{
    for (int d = x->rank - 1; d >= 0; d--)
        if (x->dim[d] == 1 && x->rank > 1 && !(x->kind == FK_ROW && d == x->rank - 1))
            drop_dim(x, d);
    for (int d = x->rank - 2; d >= 0; d--)
        if (mergeable(x, d)) {
            x->dim[d + 1] *= x->dim[d];
            drop_dim(x, d);
        }
    if (x->rank == 0) {
        x->rank = 1;
        x->dim[0] = 1;
        for (int m = 0; m < x->nmap; m++)
            x->st[m][0] = 0;
    }
}

/* The reduced dims of a reduce kernel (from its first reduction). */
static void reduce_dims(Fx *x)
{
    for (int i = 0; i < x->M->nnodes; i++)
        if (x->x[i].need && x->x[i].kind == X_RED) {
            red_mask(x->x[i].n, x->red);
            return;
        }
}

/* varies: depends on the last dim; level: the reductions below a node. */
static void mark_varies(Fx *x)
{
    for (int i = 0; i < x->M->nnodes; i++) {
        FxNode *v = &x->x[i];
        v->varies = v->map >= 0 && x->st[v->map][x->rank - 1] != 0;
        for (int j = 0; j < v->n->nin && v->kind != X_VIEW && v->kind != X_HEAD && v->kind != X_MM;
             j++) {
            const FxNode *o = &x->x[v->n->in[j]->index];
            v->varies = v->varies || (o->varies && v->kind != X_RED);
            v->level = o->level > v->level ? o->level : v->level;
        }
        if (v->kind == X_RED)
            v->level++;
        if (v->need && v->level > x->maxlevel)
            x->maxlevel = v->level;
    }
}

static bool analyze(Fx *x)
{
    IrShape s;
    if (!classify(x) || !choose_kind(x, &s) || !check_views(x))
        return false;
    if (x->head >= 0 && x->kind != FK_MATMUL) {
        for (int k = 0; k < x->nsib && x->primary < 0; k++)
            if (ir_shape_eq(&x->x[x->out[k]].n->shape, &x->x[x->head].n->shape))
                x->primary = k;
        if (x->primary < 0 || x->kind == FK_REDUCE || !ir_shape_eq(&x->x[x->head].n->shape, &s))
            return fx_fail(x, "no output holds the matmul's result");
    }
    if (x->kind == FK_MATMUL)
        return true;
    if (!build_maps(x, &s))
        return false;
    if (x->kind == FK_REDUCE)
        reduce_dims(x);
    coalesce(x);
    mark_varies(x);
    return true;
}

/* ---------------------------------------------------------------- signature */

static void sig_attrs(FILE *f, const IrNode *n)
{
    for (int a = 0; a < n->nattr; a++) {
        const IrAttr *t = &n->attr[a];
        if (n->op == OP_DROPOUT && t->key == ATTR_SEED)
            continue; /* passed in the aux array */
        fprintf(f, " %s=%a/%s/", ir_attr_name((IrAttrKey)t->key), t->f, t->s ? t->s : "");
        for (int i = 0; i < IR_MAX_RANK; i++)
            fprintf(f, "%lld,", (long long)t->i[i]);
    }
}

/* Everything the kernel's body depends on: the merged body's ops,
 * attributes (not dropout seeds), dtypes and concrete dims, and which
 * nodes are written. */
static char *signature(const Fx *x)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    IR_ASSERT(f);
    fprintf(f, "fused %d %d", x->nsib, x->nin);
    for (int i = 0; i < x->M->nnodes; i++) {
        const IrNode *n = x->M->nodes[i];
        int64_t dim[IR_MAX_RANK];
        dims_of(x, n, dim);
        fprintf(f, "\n%s %s[", ir_op_name(n->op), ir_dtype_name(n->dtype));
        for (int d = 0; d < n->shape.rank; d++)
            fprintf(f, "%lld,", (long long)dim[d]);
        fprintf(f, "]");
        for (int j = 0; j < n->nin; j++)
            fprintf(f, " %%%d", n->in[j]->index);
        sig_attrs(f, n);
    }
    for (int s = 0; s < x->nsib; s++) {
        fprintf(f, "\nout %d", x->out[s]);
        for (int i = 0; i < x->nin; i++)
            if (cg_reads_own_output(x->L, x->sib[s], x->sib[x->nsib - 1], i))
                fprintf(f, " in%d", i);
    }
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------- functions */

static void fn_attr(CgLower *L, LLVMValueRef fn, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(L->C, kind, 0));
}

/* body(ptr noalias out..., ptr noalias in..., i64 begin, i64 end, ptr aux) */
static LLVMValueRef body_decl(Fx *x, const char *name)
{
    CgLower *L = x->L;
    LLVMTypeRef ps[FX_MAX_OUT + IR_MAX_IN + 3];
    int np = x->nsib + x->nin;
    for (int i = 0; i < np; i++)
        ps[i] = L->ptr;
    ps[np] = ps[np + 1] = L->i64;
    ps[np + 2] = L->ptr;
    LLVMValueRef fn = LLVMAddFunction(L->M, name, LLVMFunctionType(L->vd, ps, np + 3, 0));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    for (int i = 0; i < np; i++) {
        fn_attr(L, fn, i + 1, "noalias");
        fn_attr(L, fn, i + 1, "nocapture");
    }
    fn_attr(L, fn, LLVMAttributeFunctionIndex, "noinline");
    fn_attr(L, fn, LLVMAttributeFunctionIndex, "nounwind");
    return fn;
}

/* The dropout seeds of the body, in order, as a constant i64 array. */
static LLVMValueRef aux_array(Fx *x)
{
    CgLower *L = x->L;
    if (!x->naux)
        return LLVMConstNull(L->ptr);
    LLVMValueRef v[64];
    int n = 0;
    for (int i = 0; i < x->M->nnodes && n < 64; i++)
        if (x->x[i].kind == X_DROPOUT)
            v[n++] = LLVMConstInt(L->i64,
                                  (unsigned long long)ir_node_int(x->x[i].n, ATTR_SEED, 0), 0);
    LLVMTypeRef t = LLVMArrayType2(L->i64, (uint64_t)n);
    LLVMValueRef g = LLVMAddGlobal(L->M, t, "seeds");
    LLVMSetInitializer(g, LLVMConstArray2(L->i64, v, (uint64_t)n));
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    return g;
}

/* kN_fused(slots, begin, end): the buffers from slots, then the body. */
/* A kernel function void NAME(slots, begin, end), the builder at its entry. */
static LLVMValueRef kernel_fn(CgLower *L, const char *name)
{
    LLVMTypeRef ps[3] = {L->ptr, L->i64, L->i64};
    LLVMValueRef fn = LLVMAddFunction(L->M, name, LLVMFunctionType(L->vd, ps, 3, 0));
    fn_attr(L, fn, LLVMAttributeFunctionIndex, "nounwind");
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->C, fn, "entry"));
    return fn;
}

static void wrapper(Fx *x, LLVMValueRef body, const char *name)
{
    CgLower *L = x->L;
    const IrNode *last = x->sib[x->nsib - 1];
    LLVMValueRef fn = kernel_fn(L, name);
    LLVMValueRef args[FX_MAX_OUT + IR_MAX_IN + 3], slots = LLVMGetParam(fn, 0);
    int np = 0;
    for (int s = 0; s < x->nsib; s++)
        args[np++] = cg_slot(L, slots, x->sib[s]->index, "buf");
    for (int i = 0; i < x->nin; i++)
        args[np++] = cg_slot(L, slots, last->in[i]->index, "buf");
    args[np++] = LLVMGetParam(fn, 1);
    args[np++] = LLVMGetParam(fn, 2);
    args[np++] = aux_array(x);
    LLVMBuildCall2(L->b, LLVMGlobalGetValueType(body), body, args, (unsigned)np, "");
    LLVMBuildRetVoid(L->b);
}

/* An operand that memplan puts under sibling s's output (in place) is read
 * through that output's pointer: with two noalias pointers to one buffer,
 * LLVM may move sibling s's store above another sibling's load of the
 * same element (the loops load every value before they store, but only
 * one pointer makes LLVM keep that order). */
static void read_in_place(Fx *x)
{
    const IrNode *last = x->sib[x->nsib - 1];
    for (int s = 0; s < x->nsib; s++)
        for (int i = 0; i < x->nin; i++)
            if (cg_reads_own_output(x->L, x->sib[s], last, i))
                x->inp[i] = x->outp[s];
}

/* The wrapper, and the body when no kernel before had this signature
 * (then the builder is in it and true is returned). */
static bool begin_kernel(Fx *x)
{
    CgLower *L = x->L;
    const char *sym = L->code[x->sib[x->nsib - 1]->index].symbol;
    char *sig = signature(x), name[64];
    for (int b = 0; b < L->nbody; b++)
        if (!strcmp(L->body_sig[b], sig)) {
            free(sig);
            wrapper(x, L->body_fn[b], sym);
            return false;
        }
    snprintf(name, sizeof name, "%s.body", sym);
    L->body_sig[L->nbody] = sig;
    LLVMValueRef fn = L->body_fn[L->nbody++] = body_decl(x, name);
    wrapper(x, fn, sym);
    memset(&x->k, 0, sizeof x->k);
    x->k.L = L;
    x->k.b = L->b;
    x->k.n = x->sib[x->nsib - 1];
    x->k.fn = fn;
    for (int s = 0; s < x->nsib; s++)
        x->outp[s] = LLVMGetParam(fn, (unsigned)s);
    for (int i = 0; i < x->nin; i++)
        x->inp[i] = LLVMGetParam(fn, (unsigned)(x->nsib + i));
    read_in_place(x);
    x->k.begin = LLVMGetParam(fn, (unsigned)(x->nsib + x->nin));
    x->k.end = LLVMGetParam(fn, (unsigned)(x->nsib + x->nin + 1));
    x->auxp = LLVMGetParam(fn, (unsigned)(x->nsib + x->nin + 2));
    x->k.entry = LLVMAppendBasicBlockInContext(L->C, fn, "entry");
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->C, fn, "code"));
    return true;
}

/* ---------------------------------------------------------------- matmul */

typedef struct Gemm {
    bool ta, tb;                 /* BLAS transposes */
    int64_t m, n, k, lda, ldb, ldc;
    int nbd;                     /* batch dims */
    int64_t bdim[IR_MAX_RANK], ast[IR_MAX_RANK], bst[IR_MAX_RANK], cst[IR_MAX_RANK];
    int64_t nbatch;
    int a, b;                    /* input slots of the operands */
} Gemm;

/* Operand j of matmul h: its buffer's slot, layout and BLAS matrix. */
static bool gemm_operand(Fx *x, const IrNode *h, int j, FuseLayout *l, int *slot, bool *trans,
                         int64_t *ld)
{
    const IrNode *leaf = fuse_view_in(h->in[j], x->L->binding, NULL, l);
    if (!leaf || leaf->op != OP_INPUT || l->rank < 2 || !fuse_gemm_matrix(l, trans, ld))
        return fx_fail(x, "a matmul operand is not a strided view of a buffer");
    *slot = x->x[leaf->index].slot;
    return true;
}

/* Batch strides of an operand of layout l against the output's batch dims. */
static void batch_strides(const Gemm *g, const FuseLayout *l, int64_t *st)
{
    int lb = l->rank - 2;
    for (int i = 0; i < g->nbd; i++) {
        int li = i - (g->nbd - lb);
        st[i] = li >= 0 && l->dim[li] != 1 ? l->st[li] : 0;
    }
}

/* The batch dims step through the rows as one matrix of nbatch * m rows. */
static bool rows_chain(const Gemm *g, const int64_t *st, int64_t ld)
{
    int64_t want = ld * g->m;
    for (int i = g->nbd - 1; i >= 0; i--) {
        if (g->bdim[i] == 1)
            continue;
        if (st[i] != want)
            return false;
        want *= g->bdim[i];
    }
    return true;
}

static void gemm_fold(Gemm *g)
{
    for (int i = 0; i < g->nbd; i++)
        if (g->bst[i])
            return;
    if (g->ta || !rows_chain(g, g->ast, g->lda) || !rows_chain(g, g->cst, g->ldc))
        return;
    g->m *= g->nbatch;
    g->nbatch = 1;
    g->nbd = 0;
}

/* C's layout: the output view of a matmul kernel, or dense in the primary. */
static bool gemm_result(Fx *x, FuseLayout *lc)
{
    const IrNode *h = x->x[x->head].n; /* the matmul, or the sum of them */
    if (x->kind != FK_MATMUL) {
        fuse_layout_dense(h, x->L->binding, lc);
        return true;
    }
    return fuse_view_out(x->x[x->out[0]].n, h, x->L->binding, lc) ||
           fx_fail(x, "a matmul result is not a strided view of its output");
}

static bool plan_gemm(Fx *x, int mm, Gemm *g)
{
    const IrNode *h = x->x[mm].n;
    FuseLayout la, lb, lc;
    bool sa, sb, sc;
    int64_t hd[IR_MAX_RANK], ldc;
    memset(g, 0, sizeof *g);
    if (!gemm_operand(x, h, 0, &la, &g->a, &sa, &g->lda) ||
        !gemm_operand(x, h, 1, &lb, &g->b, &sb, &g->ldb) || !gemm_result(x, &lc))
        return false;
    if (!fuse_gemm_matrix(&lc, &sc, &ldc) || sc)
        return fx_fail(x, "a matmul result that BLAS cannot write in place");
    bool ta = ir_node_int(h, ATTR_TA, 0) != 0, tb = ir_node_int(h, ATTR_TB, 0) != 0;
    dims_of(x, h, hd);
    g->ta = ta != sa;
    g->tb = tb != sb;
    g->ldc = ldc;
    g->nbd = h->shape.rank - 2;
    g->m = hd[g->nbd];
    g->n = hd[g->nbd + 1];
    g->k = la.dim[la.rank - (ta ? 2 : 1)];
    g->nbatch = 1;
    for (int i = 0; i < g->nbd; i++) {
        g->bdim[i] = hd[i];
        g->cst[i] = lc.st[i];
        g->nbatch *= hd[i];
    }
    batch_strides(g, &la, g->ast);
    batch_strides(g, &lb, g->bst);
    gemm_fold(g);
    if (g->m > INT32_MAX || g->n > INT32_MAX || g->k > INT32_MAX || g->lda > INT32_MAX ||
        g->ldb > INT32_MAX || g->ldc > INT32_MAX)
        return fx_fail(x, "matmul dims exceed the BLAS int range");
    return true;
}

/* Offsets of batch bi in A, B and C. */
static void gemm_offsets(Fx *x, const Gemm *g, LLVMValueRef bi, LLVMValueRef *o)
{
    CgKernel *k = &x->k;
    LLVMValueRef rem = bi;
    o[0] = o[1] = o[2] = cg_i64(k, 0);
    for (int i = g->nbd - 1; i >= 0; i--) {
        LLVMValueRef idx = i == 0 ? rem : LLVMBuildURem(k->b, rem, cg_i64(k, g->bdim[i]), "");
        if (i > 0)
            rem = LLVMBuildUDiv(k->b, rem, cg_i64(k, g->bdim[i]), "");
        const int64_t st[3] = {g->ast[i], g->bst[i], g->cst[i]};
        for (int t = 0; t < 3; t++)
            if (st[t])
                o[t] = cg_add(k, o[t], cg_mul(k, idx, st[t]));
    }
}

static void emit_sgemm(Fx *x, const Gemm *g, LLVMValueRef c, LLVMValueRef bi, double beta)
{
    CgKernel *k = &x->k;
    LLVMTypeRef fty;
    LLVMValueRef fn = cg_declare_sgemm(x->L, &fty), o[3];
    gemm_offsets(x, g, bi, o);
    LLVMValueRef args[14] = {
        cg_i32c(k, CBLAS_ROW_MAJOR), cg_i32c(k, g->ta ? CBLAS_TRANS : CBLAS_NO_TRANS),
        cg_i32c(k, g->tb ? CBLAS_TRANS : CBLAS_NO_TRANS), cg_i32c(k, g->m), cg_i32c(k, g->n),
        cg_i32c(k, g->k), cg_f32c(k, 1.0), cg_gep(k, DT_F32, x->inp[g->a], o[0]),
        cg_i32c(k, g->lda), cg_gep(k, DT_F32, x->inp[g->b], o[1]), cg_i32c(k, g->ldb),
        cg_f32c(k, beta), cg_gep(k, DT_F32, c, o[2]), cg_i32c(k, g->ldc),
    };
    LLVMBuildCall2(k->b, fty, fn, args, 14, "");
}

/* One sgemm per batch entry, into the output (or the primary output);
 * the terms of a sum after the first add into it (beta = 1). */
static void emit_gemm(Fx *x, const Gemm *g, double beta)
{
    LLVMValueRef c = x->outp[x->kind == FK_MATMUL ? 0 : x->primary];
    if (g->nbatch == 1) {
        emit_sgemm(x, g, c, cg_i64(&x->k, 0), beta);
        return;
    }
    CgFor f;
    LLVMValueRef bi = cg_for_begin(&x->k, &f, cg_i64(&x->k, 0), cg_i64(&x->k, g->nbatch), 0, NULL);
    emit_sgemm(x, g, c, bi, beta);
    cg_for_end(&x->k, &f, NULL);
}

/* ---------------------------------------------------------------- entry */

static void fx_free(Fx *x)
{
    if (x->own)
        ir_graph_free(x->M);
    free(x->x);
}

/* A sibling whose outputs the last sibling's kernel writes: nothing to do. */
static bool lower_noop(CgLower *L, const IrNode *n)
{
    cg_set_kernel(L, n, 1, false);
    L->code[n->index].flops = 0;
    L->code[n->index].noop = true;
    if (!L->emit)
        return true;
    kernel_fn(L, L->code[n->index].symbol);
    LLVMBuildRetVoid(L->b);
    return true;
}

static bool emit(Fx *x, const Gemm *g)
{
    if (!begin_kernel(x))
        return true;
    for (int m = 0; m < x->nmm; m++)
        emit_gemm(x, &g[m], m ? 1.0 : 0.0);
    if (x->kind != FK_MATMUL)
        fx_emit_loops(x, x->head >= 0);
    cg_kernel_end(&x->k);
    return true;
}

static void fx_init(Fx *x, CgLower *L, const IrNode *n, int lo, int hi)
{
    memset(x, 0, sizeof *x);
    x->L = L;
    x->nsib = hi - lo + 1;
    for (int s = 0; s < x->nsib; s++)
        x->sib[s] = L->g->nodes[lo + s];
    if (x->nsib == 1) {
        x->M = n->body;
        x->out[0] = n->body->outs[0].node->index;
        return;
    }
    x->M = merge_bodies(x);
    x->own = true;
    for (int s = 0; s < x->nsib; s++)
        x->out[s] = x->M->outs[s].node->index;
}

/* Calls member m on the part of [begin, end) in [off, off + ext), shifted to its own range. */
static void call_member(CgLower *L, LLVMValueRef fn, LLVMValueRef m, int64_t off, int64_t ext,
                        bool parallel)
{
    LLVMTypeRef fty = LLVMGlobalGetValueType(m);
    LLVMValueRef slots = LLVMGetParam(fn, 0), args[3] = {slots, NULL, NULL};
    if (!parallel) {
        args[1] = LLVMConstInt(L->i64, 0, 0);
        args[2] = LLVMConstInt(L->i64, (unsigned long long)ext, 0);
        LLVMBuildCall2(L->b, fty, m, args, 3, "");
        return;
    }
    LLVMValueRef b = LLVMGetParam(fn, 1), e = LLVMGetParam(fn, 2);
    LLVMValueRef o = LLVMConstInt(L->i64, (unsigned long long)off, 0);
    LLVMValueRef oe = LLVMConstInt(L->i64, (unsigned long long)(off + ext), 0);
    LLVMValueRef lo = LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSGT, b, o, ""), b, o, "");
    LLVMValueRef hi = LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, e, oe, ""), e, oe, "");
    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(L->C, fn, "member");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->C, fn, "next");
    LLVMBuildCondBr(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, lo, hi, ""), run, next);
    LLVMPositionBuilderAtEnd(L->b, run);
    args[1] = LLVMBuildSub(L->b, lo, o, ""), args[2] = LLVMBuildSub(L->b, hi, o, "");
    LLVMBuildCall2(L->b, fty, m, args, 3, "");
    LLVMBuildBr(L->b, next);
    LLVMPositionBuilderAtEnd(L->b, next);
}

/* The kernel of the launch [hlo, hhi], at its last node n: every member on
 * its part of the concatenated range (all parallel), or whole (else). */
static bool lower_launch(CgLower *L, const IrNode *n, int hlo, int hhi)
{
    int64_t total = 0;
    bool parallel = true;
    double flops = 0;
    for (int j = hlo; j <= hhi; j++)
        if (L->member[j].kind == CG_KERNEL) {
            total += L->member[j].extent, flops += L->member[j].flops;
            parallel = parallel && L->member[j].parallel;
        }
    cg_set_kernel(L, n, parallel ? total : 1, parallel);
    L->code[n->index].flops = flops;
    if (!L->emit)
        return true;
    LLVMValueRef fn = kernel_fn(L, L->code[n->index].symbol);
    int64_t off = 0;
    for (int j = hlo; j <= hhi; j++) {
        if (L->member[j].kind != CG_KERNEL)
            continue;
        LLVMValueRef m = LLVMGetNamedFunction(L->M, L->member[j].symbol);
        if (!m)
            return cg_fail(L, n, "horizontal launch: member kernel %s is missing",
                           L->member[j].symbol);
        call_member(L, fn, m, off, L->member[j].extent, parallel);
        off += L->member[j].extent;
    }
    LLVMBuildRetVoid(L->b);
    return true;
}

static bool lower_run(CgLower *L, const IrNode *n, int lo, int hi);

bool cg_lower_fused(CgLower *L, const IrNode *n)
{
    int lo, hi, hlo, hhi;
    if (!n->body || n->body->nout != 1)
        return cg_fail(L, n, "a fused node needs a body with one output");
    pass_sibling_run(L->g, n->index, &lo, &hi);
    if (n->index != hi)
        return lower_noop(L, n);
    pass_launch_run(L->g, n->index, &hlo, &hhi);
    if (hlo == lo && hhi == hi)
        return lower_run(L, n, lo, hi);
    /* a member of a horizontal launch: its kernel under SYMBOL.m */
    CgNodeCode *c = &L->code[n->index];
    char sym[sizeof c->symbol];
    memcpy(sym, c->symbol, sizeof sym);
    snprintf(c->symbol, sizeof c->symbol, "%.45s.m", sym);
    bool ok = lower_run(L, n, lo, hi);
    L->member[n->index] = *c;
    memcpy(c->symbol, sym, sizeof sym);
    if (!ok)
        return false;
    return n->index == hhi ? lower_launch(L, n, hlo, hhi) : lower_noop(L, n);
}

/* The kernel of the sibling run [lo, hi], at its last node n. */
static bool lower_run(CgLower *L, const IrNode *n, int lo, int hi)
{
    Fx x;
    Gemm g[4];
    fx_init(&x, L, n, lo, hi);
    bool ok = analyze(&x);
    for (int m = 0; ok && m < x.nmm; m++)
        ok = plan_gemm(&x, x.mm[m], &g[m]);
    if (ok) {
        bool whole = x.head >= 0;
        cg_set_kernel(L, n, whole ? 1 : fx_extent(&x), !whole);
        L->code[n->index].flops = (double)ir_cost_run_flops(L->g, lo, hi, L->binding);
        ok = !L->emit || emit(&x, g);
    }
    fx_free(&x);
    return ok;
}
