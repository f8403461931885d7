/* fuse_rules.c — what a kernel may absorb, and why not (the reason codes).
 *
 * fuse_check is asked about one producer p of a kernel being formed (see
 * fuse.c) and answers R_NONE or the reason it must stay out:
 *
 *   elementwise p   its shape broadcasts into the kernel's space S;
 *   reduction p     over exactly the last axis, keepdim, in an elementwise
 *                   or row kernel whose space its input fills: the kernel
 *                   becomes (or stays) a row kernel over that input's shape;
 *   matmul p        only as the head of an elementwise or row kernel whose
 *                   space is the matmul's result and which has an output
 *                   to hold it (BLAS writes there, the epilogue reads it in
 *                   place); its result must not be read anywhere else; a
 *                   second matmul only as a term of a sum of matmuls with
 *                   the first (adds read by nothing else: BLAS adds each
 *                   into the same result);
 *   anything else   movement and opaque ops stay out.
 *
 * A p that other kernels read too becomes an extra output (a sibling), if
 * the kernel is not a reduce kernel, if p covers the space (or holds one
 * value per row of it), if the kernel has outputs to spare and if no path
 * from p's other readers leads back into the kernel in the graph of
 * kernels (fuse_kernel_reaches: a path may enter another kernel at one
 * member and leave it at another).  Every kernel
 * must also stay within IR_MAX_IN buffers read.
 */
#include "fuse_int.h"

#include <stdio.h>
#include <string.h>

static const char *const reason_names[R_COUNT] = {
    [R_NONE] = "NONE",
    [R_MULTI_USE_REDUCTION] = "MULTI_USE_REDUCTION",
    [R_MATMUL_OUTPUT_NEEDED] = "MATMUL_OUTPUT_NEEDED",
    [R_SHAPE_BREAK] = "SHAPE_BREAK",
    [R_REDUCE_AXES] = "REDUCE_AXES",
    [R_SECOND_MATMUL] = "SECOND_MATMUL",
    [R_MATMUL_OPERAND] = "MATMUL_OPERAND",
    [R_OPAQUE] = "OPAQUE",
    [R_TOO_MANY_INPUTS] = "TOO_MANY_INPUTS",
    [R_TOO_MANY_OUTPUTS] = "TOO_MANY_OUTPUTS",
    [R_CYCLE] = "CYCLE",
    [R_VALUE_NEEDED] = "VALUE_NEEDED",
};

const char *fuse_reason_name(FuseReason r)
{
    return r < R_COUNT ? reason_names[r] : "?";
}

/* ---------------------------------------------------------------- shapes */

/* x broadcasts into s (numpy, right-aligned) without changing s. */
bool fuse_aligned(const IrShape *x, const IrShape *s)
{
    if (x->rank > s->rank)
        return false;
    for (int d = 0; d < x->rank; d++)
        if (!ir_dim_is_one(x->d[d]) && !ir_dim_eq(x->d[d], s->d[d + s->rank - x->rank]))
            return false;
    return true;
}

/* s with its last dim set to 1 (one value per row of s). */
static bool row_shaped(const IrShape *x, const IrShape *s)
{
    if (x->rank != s->rank || s->rank == 0 || !ir_dim_is_one(x->d[x->rank - 1]))
        return false;
    for (int d = 0; d + 1 < s->rank; d++)
        if (!ir_dim_eq(x->d[d], s->d[d]))
            return false;
    return true;
}

bool fuse_last_axis_reduction(const IrNode *n)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    if (r == 0)
        return false;
    if (!a || a->n == 0)
        return r == 1;
    return a->n == 1 && ir_axis(a->i[0], r) == r - 1;
}

static void shape_text(const Fuse *F, const IrShape *s, char *buf, size_t cap)
{
    ir_shape_str(s, F->g->sym, buf, cap);
}

/* ---------------------------------------------------------------- inputs */

/* The buffers node x stands for in the kernel's inputs: none for a free
 * node or one already counted, its operands' for a node that will be
 * inlined, else itself. */
int fuse_leaves(Fuse *F, int gi, int x)
{
    const IrNode *n = F->node[x];
    int s = fuse_state(F, gi, x), count = 0;
    if (F->seen[x] == F->seen_stamp || s == S_MEMBER || s == S_INLINE || fuse_is_free(n))
        return 0;
    F->seen[x] = F->seen_stamp;
    if (s == S_INPUT || !fuse_inlinable(F, x))
        return 1;
    for (int j = 0; j < n->nin; j++)
        count += fuse_leaves(F, gi, n->in[j]->index);
    return count;
}

int fuse_inputs_after(Fuse *F, int gi, int p)
{
    const IrNode *n = F->node[p];
    int count = 0;
    F->seen_stamp++;
    F->seen[p] = F->seen_stamp; /* p is taken in */
    for (int k = 0; k < F->nfront; k++) {
        int x = F->front[k], s = fuse_state(F, gi, x);
        if (s == S_PENDING || s == S_INPUT)
            count += fuse_leaves(F, gi, x);
    }
    for (int j = 0; j < n->nin; j++) {
        int x = n->in[j]->index;
        if (n->op == OP_MATMUL && F->seen[x] != F->seen_stamp && fuse_state(F, gi, x) == S_NONE) {
            F->seen[x] = F->seen_stamp; /* read as it is, never inlined */
            count++;
        } else if (fuse_state(F, gi, x) == S_NONE)
            count += fuse_leaves(F, gi, x);
    }
    return count;
}

static FuseReason check_inputs(Fuse *F, int gi, int p, char *detail, size_t cap)
{
    int k = fuse_inputs_after(F, gi, p);
    if (k <= IR_MAX_IN)
        return R_NONE;
    snprintf(detail, cap, "the kernel would read %d buffers, at most %d", k, IR_MAX_IN);
    return R_TOO_MANY_INPUTS;
}

/* ---------------------------------------------------------------- extra outputs */

static void reader_text(int first, char *buf, size_t cap)
{
    if (first == -2)
        snprintf(buf, cap, "a graph output");
    else if (first == -3)
        snprintf(buf, cap, "read by a matmul through a view");
    else
        snprintf(buf, cap, "also read by %%%d", first);
}

/* Some reader of p outside the kernel leads back into it, in the graph of
 * kernels: p in the kernel would make a cycle. */
static bool makes_cycle(Fuse *F, int gi, int p)
{
    return fuse_kernel_reaches(F, p, -1, gi);
}

/* p, read outside the kernel too, as an extra output of a kernel of kind
 * `kind` over space s. */
static FuseReason check_output(Fuse *F, int gi, int p, const IrShape *s, FuseKind kind,
                               char *detail, size_t cap)
{
    const FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[p];
    int first;
    bool red;
    char who[64], a[128], b[128];
    if (!fuse_outside_readers(F, gi, p, &first, &red))
        return R_NONE;
    reader_text(first, who, sizeof who);
    if (kind == G_REDUCE) {
        snprintf(detail, cap, "%s; a reduce kernel writes one value", who);
        return red ? R_MULTI_USE_REDUCTION : R_VALUE_NEEDED;
    }
    if (G->nout >= FUSE_MAX_OUTS) {
        snprintf(detail, cap, "%s; the kernel writes %d values already", who, G->nout);
        return R_TOO_MANY_OUTPUTS;
    }
    if (!ir_shape_eq(&n->shape, s) && !row_shaped(&n->shape, s)) {
        shape_text(F, &n->shape, a, sizeof a);
        shape_text(F, s, b, sizeof b);
        snprintf(detail, cap, "%s, but an output %s does not cover the space %s", who, a, b);
        return R_SHAPE_BREAK;
    }
    if (makes_cycle(F, gi, p)) {
        snprintf(detail, cap, "%s, which depends on the kernel", who);
        return R_CYCLE;
    }
    return R_NONE;
}

/* ---------------------------------------------------------------- sums of matmuls */

/* The one reader of x, or -1 (none, several, or a graph output). */
static int only_reader(const Fuse *F, int x)
{
    int r = -1;
    if (F->is_out[x])
        return -1;
    for (int k = F->use_off[x]; k < F->use_off[x + 1]; k++) {
        if (F->use[k] < 0)
            continue;
        if (r >= 0)
            return -1;
        r = F->use[k];
    }
    return r;
}

/* x is a matmul, or an add of two such sums each read only by x. */
static bool pure_sum(Fuse *F, int x)
{
    const IrNode *n = F->node[x];
    if (F->pure[x] >= 0)
        return F->pure[x];
    bool ok = n->op == OP_MATMUL && n->dtype == DT_F32;
    if (n->op == OP_ADD && n->dtype == DT_F32 && ir_shape_eq(&n->in[0]->shape, &n->shape) &&
        ir_shape_eq(&n->in[1]->shape, &n->shape) && n->in[0] != n->in[1])
        ok = only_reader(F, n->in[0]->index) == x && only_reader(F, n->in[1]->index) == x &&
             pure_sum(F, n->in[0]->index) && pure_sum(F, n->in[1]->index);
    F->pure[x] = (signed char)ok;
    return ok;
}

int fuse_sum_root(Fuse *F, int x)
{
    for (int r = only_reader(F, x); r >= 0 && pure_sum(F, r); r = only_reader(F, r))
        x = r;
    return x;
}

/* Buffers the kernel would read with the whole sum of matmuls rooted at p
 * in it: the matmuls' operands (as views, one buffer each) join. */
static int sum_tree_reads(Fuse *F, int gi, int x)
{
    const IrNode *n = F->node[x];
    int count = 0;
    for (int j = 0; j < n->nin; j++) {
        int o = n->in[j]->index;
        if (F->seen[o] == F->seen_stamp)
            continue;
        F->seen[o] = F->seen_stamp;
        if (n->op == OP_ADD)
            count += sum_tree_reads(F, gi, o);
        else if (fuse_state(F, gi, o) == S_NONE)
            count++;
    }
    return count;
}

static int sum_inputs(Fuse *F, int gi, int p)
{
    int count = 0;
    F->seen_stamp++;
    F->seen[p] = F->seen_stamp;
    for (int k = 0; k < F->nfront; k++) {
        int x = F->front[k], s = fuse_state(F, gi, x);
        if (x != p && (s == S_PENDING || s == S_INPUT))
            count += fuse_leaves(F, gi, x);
    }
    return count + sum_tree_reads(F, gi, p);
}

/* Matmul p joins the kernel's other matmuls in one sum (BLAS adds it into
 * the same result with beta = 1), whose root the kernel holds. */
static bool joins_sum(Fuse *F, int gi, int p)
{
    const FuseGroup *G = &F->gs[gi];
    int root = fuse_sum_root(F, p);
    return root != p && G->nhead < FUSE_MAX_HEADS && fuse_state(F, gi, root) == S_MEMBER &&
           fuse_sum_root(F, G->head) == root;
}

/* ---------------------------------------------------------------- by op */

static FuseReason check_pointwise(Fuse *F, int gi, int p, char *detail, size_t cap)
{
    const FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[p];
    int k;
    if (n->op == OP_ADD && pure_sum(F, p) && (k = sum_inputs(F, gi, p)) > IR_MAX_IN) {
        snprintf(detail, cap, "with the sum of matmuls it adds up, the kernel would read %d "
                 "buffers, at most %d", k, IR_MAX_IN);
        return R_TOO_MANY_INPUTS;
    }
    if (!fuse_aligned(&n->shape, &G->space)) {
        char a[128], b[128];
        shape_text(F, &n->shape, a, sizeof a);
        shape_text(F, &G->space, b, sizeof b);
        snprintf(detail, cap, "%s does not broadcast into the kernel's space %s", a, b);
        return R_SHAPE_BREAK;
    }
    FuseReason r = check_output(F, gi, p, &G->space, G->kind, detail, cap);
    return r ? r : check_inputs(F, gi, p, detail, cap);
}

/* The space of an elementwise or row kernel over s that takes reduction
 * input x: s itself, or x when s is x with its last dim 1. */
static bool grown_space(const IrShape *s, const IrShape *x, bool row, IrShape *out)
{
    if (row) {
        *out = *s;
        return fuse_aligned(x, s) && x->rank > 0 &&
               ir_dim_eq(x->d[x->rank - 1], s->d[s->rank - 1]);
    }
    *out = *x;
    return ir_shape_eq(s, x) || row_shaped(s, x);
}

static FuseReason check_reduce(Fuse *F, int gi, int p, char *detail, size_t cap)
{
    const FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[p];
    IrShape ns;
    char a[128], b[128];
    if (G->kind == G_REDUCE || !fuse_last_axis_reduction(n)) {
        snprintf(detail, cap, G->kind == G_REDUCE ? "a reduction in a reduce kernel's prologue"
                 : "it reduces other axes than the last one, the kernel's loop");
        return R_REDUCE_AXES;
    }
    if (!ir_node_int(n, ATTR_KEEPDIM, 0)) {
        snprintf(detail, cap, "keepdim=0 drops the axis the rows broadcast over");
        return R_SHAPE_BREAK;
    }
    if (!grown_space(&G->space, &n->in[0]->shape, G->kind == G_ROW, &ns) ||
        (G->head >= 0 && !ir_shape_eq(&ns, &G->space))) {
        shape_text(F, &n->in[0]->shape, a, sizeof a);
        shape_text(F, &G->space, b, sizeof b);
        snprintf(detail, cap, "its input %s does not match the kernel's space %s", a, b);
        return R_SHAPE_BREAK;
    }
    FuseReason r = check_output(F, gi, p, &ns, G_ROW, detail, cap);
    return r ? r : check_inputs(F, gi, p, detail, cap);
}

static bool has_full_output(const Fuse *F, const FuseGroup *G)
{
    for (int k = 0; k < G->nout; k++)
        if (ir_shape_eq(&F->node[G->out[k]]->shape, &G->space))
            return true;
    return false;
}

static FuseReason check_matmul(Fuse *F, int gi, int p, char *detail, size_t cap)
{
    const FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[p];
    int first;
    bool red;
    char a[128], b[128];
    if (fuse_outside_readers(F, gi, p, &first, &red)) {
        reader_text(first, detail, cap);
        return R_MATMUL_OUTPUT_NEEDED;
    }
    if (G->kind == G_REDUCE) {
        snprintf(detail, cap, "a reduce kernel does not take a matmul");
        return R_SHAPE_BREAK;
    }
    if (G->head >= 0 && !joins_sum(F, gi, p)) {
        snprintf(detail, cap, "the kernel has the matmul %%%d", G->head);
        return R_SECOND_MATMUL;
    }
    if (n->dtype != DT_F32) {
        snprintf(detail, cap, "a matmul of %s", ir_dtype_name(n->dtype));
        return R_OPAQUE;
    }
    if (!ir_shape_eq(&n->shape, &G->space) || !has_full_output(F, G)) {
        shape_text(F, &n->shape, a, sizeof a);
        shape_text(F, &G->space, b, sizeof b);
        snprintf(detail, cap, "no output of the kernel's space %s holds the result %s", b, a);
        return R_SHAPE_BREAK;
    }
    return check_inputs(F, gi, p, detail, cap);
}

FuseReason fuse_check(Fuse *F, int gi, int p, char *detail, size_t cap)
{
    const FuseGroup *G = &F->gs[gi];
    const IrNode *n = F->node[p];
    for (int k = 0; k < G->nhead; k++)
        if (p < G->heads[k] && fuse_reaches(F, p, G->heads[k], G->heads[k])) {
            snprintf(detail, cap, "the kernel's matmul %%%d reads it from memory", G->heads[k]);
            return R_MATMUL_OPERAND;
        }
    if (n->op == OP_MATMUL)
        return check_matmul(F, gi, p, detail, cap);
    if (n->op == OP_SUM || n->op == OP_MAX)
        return check_reduce(F, gi, p, detail, cap);
    if ((ir_ops[n->op].kind == OPK_ELEMWISE || n->op == OP_BROADCAST) && !n->body)
        return check_pointwise(F, gi, p, detail, cap);
    if (ir_ops[n->op].kind == OPK_MOVEMENT) {
        snprintf(detail, cap, "a %s moves elements across the iteration space", ir_op_name(n->op));
        return R_SHAPE_BREAK;
    }
    snprintf(detail, cap, "%s is lowered on its own", ir_op_name(n->op));
    return R_OPAQUE;
}

/* ---------------------------------------------------------------- views */

static bool gemm_ok(const FuseLayout *l)
{
    bool trans;
    int64_t ld;
    return l->rank >= 2 && fuse_gemm_matrix(l, &trans, &ld);
}

/* A node the view chain may pass through: a view no kernel holds. */
static bool chain_link(const Fuse *F, const IrNode *v)
{
    return fuse_is_view(v) && F->grp[v->index] < 0;
}

int fuse_view_leaf(Fuse *F, int operand)
{
    const IrNode *c[64];
    int m = 0;
    const IrNode *v = F->node[operand];
    while (chain_link(F, v) && m < 63) {
        v = v->in[0];
        c[m++] = v;
    }
    FuseLayout l;
    for (int k = m - 1; k >= 0; k--)
        if (fuse_view_in(F->node[operand], F->probe, c[k], &l) == c[k] && gemm_ok(&l))
            return c[k]->index;
    return operand;
}

/* v's users are exactly `user` (which is not a graph output path). */
static bool only_user(const Fuse *F, int v, int user)
{
    if (F->is_out[v] || F->needed[v] || F->grp[v] >= 0)
        return false;
    for (int k = F->use_off[v]; k < F->use_off[v + 1]; k++)
        if (F->use[k] >= 0 && F->use[k] != user)
            return false;
    return true;
}

bool fuse_output_view(Fuse *F, int t, int *head)
{
    const IrNode *prev = F->node[t], *v = prev->in[0];
    while (fuse_is_view(v) && only_user(F, v->index, prev->index)) {
        prev = v;
        v = v->in[0];
    }
    if (v->op != OP_MATMUL || v->dtype != DT_F32 || !only_user(F, v->index, prev->index))
        return false;
    FuseLayout l;
    bool trans;
    int64_t ld;
    if (!fuse_view_out(F->node[t], v, F->probe, &l) || !fuse_gemm_matrix(&l, &trans, &ld) ||
        trans)
        return false;
    *head = v->index;
    return true;
}
