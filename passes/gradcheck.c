/* gradcheck.c — autodiff against central finite differences (gradcheck.h).
 *
 * Two graphs are built from the model: `fwd` (the model plus its loss) and
 * `bwd` (fwd after pass_autodiff).  Both run in the reference interpreter,
 * in double precision, on the same inputs and param values.  One run of
 * bwd gives every "grad.P"; then each sampled element x of each trainable
 * param P is perturbed in fwd and the loss re-evaluated for the
 * fourth-order central difference
 *
 *     fd = (8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / (12 h)
 *
 * whose truncation error is O(h^4), so h can be large enough (3e-4) that
 * rounding in L hardly matters.  The element error is
 * |ad - fd| / max(|ad|, |fd|, floor).
 *
 * Values.  Inputs are random: f32 normal, i32 uniform below the size of
 * what they index (gather tables, cross_entropy classes); one target in
 * eight is the ignore index, so that path is checked too; scalar i32
 * inputs (a dropout step) are 1.  Params take their init spec (normal with
 * their std); zeros and ones get normal noise of std 0.02 around 0 or 1,
 * so that no gradient is zero by symmetry.  Dropout stays on: its mask is a
 * function of (seed, step, element), identical in every evaluation.
 *
 * Sampling.  A tensor with at most `samples` elements is checked whole.
 * Otherwise half the samples are drawn among the elements whose autodiff
 * gradient is nonzero (an embedding table's used rows) and the rest
 * uniformly, so a gradient that autodiff wrongly leaves at zero can
 * still be seen.
 *
 * Cost.  Each evaluation reruns only the param's cone, the nodes that
 * depend on it (the rest are inputs holding the values of the bwd run),
 * and the evaluations are spread over threads, each with its own
 * interpreter.  The results do not depend on the number of threads.
 *
 * Kinks.  A difference across a kink of relu, abs, maximum, minimum or max
 * (or a jump of a comparison) measures the kink.  Each evaluation reads the
 * branches of those ops; when they differ between the four points, the
 * element is stepped again with h/8 (three times at most) and otherwise
 * skipped, and the report names the op (see "kinks" below).
 *
 * Blame.  When params fail, the one nearest the loss is taken, and every
 * op on a path from it to the loss is checked on its own (gc_check_node)
 * with the operand values of the failing run; the first op whose rule
 * fails is named.
 */
#include "gradcheck.h"
#include "ir/rng.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GC_MAX_SAMPLES 4096

GcOptions gc_options_default(void)
{
    GcOptions o;
    memset(&o, 0, sizeof o);
    o.tol = 1e-6;
    o.h = 3e-4;
    o.floor = 1e-3;
    o.samples = 4;
    o.train = pass_ctx_default(NULL).train;
    return o;
}

/* ---------------------------------------------------------------- kinks */

/* A finite difference measures the derivative only where the loss is
 * smooth from x-2h to x+2h.  relu, abs, maximum, minimum and max have
 * kinks, and comparisons (lt, le, eq) and casts of floats to integers
 * jump; when an element of one of them changes branch between the four
 * evaluations, the difference measures the kink.  So every evaluation
 * reads the branch of each such node that can reach the loss (a kink on a
 * differentiable path to it, a jump anywhere before it) and the four must
 * agree.  When they do not, the element is stepped again with h/8, up to
 * GC_RESTEPS times, and skipped, with the op named, when the kink stays
 * within the step. */
#define GC_RESTEPS 3

typedef struct Kinks {
    const IrNode **node;
    int n;
} Kinks;

static bool is_kink_op(IrOp op)
{
    return op == OP_RELU || op == OP_ABS || op == OP_MAXIMUM || op == OP_MINIMUM || op == OP_MAX;
}

static bool is_jump(const IrNode *n)
{
    bool fin = n->nin && n->in[0]->dtype == DT_F32;
    return fin && (n->op == OP_LT || n->op == OP_LE || n->op == OP_EQ ||
                   (n->op == OP_CAST && n->dtype != DT_F32));
}

/* The kinks and jumps of g that can move its output "loss". */
static Kinks find_kinks(const IrGraph *g)
{
    Kinks k = {calloc((size_t)g->nnodes + 1, sizeof *k.node), 0};
    const IrNode *loss = NULL;
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, "loss"))
            loss = g->outs[o].node;
    bool *diff = calloc((size_t)g->nnodes + 1, 2), *before = diff + g->nnodes;
    if (loss)
        diff[loss->index] = before[loss->index] = true;
    for (int i = loss ? loss->index : -1; i >= 0; i--) {
        const IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin && before[i]; j++) {
            before[n->in[j]->index] = true;
            diff[n->in[j]->index] |= diff[i] && n->in[j]->dtype == DT_F32 &&
                                     !pass_autodiff_nondiff_reason(n->op, j);
        }
        if ((diff[i] && is_kink_op(n->op)) || (before[i] && is_jump(n)))
            k.node[k.n++] = n;
    }
    free(diff);
    return k;
}

static double cmp3(double a, double b)
{
    return a > b ? 2 : a < b ? 0 : 1;
}

/* The element of a (broadcast to y's shape) at y's flat index k. */
static int64_t bcast_index(const IrTensor *y, const IrTensor *a, int64_t k)
{
    int64_t o = 0, stride = 1;
    for (int d = y->rank - 1, da = a->rank - 1; da >= 0; d--, da--) {
        int64_t c = k % y->dim[d];
        k /= y->dim[d];
        o += a->dim[da] == 1 ? 0 : c * stride;
        stride *= a->dim[da];
    }
    return o;
}

/* The element of max reduction n's output that element k of its input a goes to. */
static int64_t reduced_index(const IrNode *n, const IrTensor *a, int64_t k)
{
    const IrAttr *ax = ir_node_attr(n, ATTR_AXES);
    bool red[IR_MAX_RANK];
    for (int d = 0; d < a->rank; d++)
        red[d] = !ax || ax->n == 0;
    for (int i = 0; ax && i < ax->n; i++)
        red[ir_axis(ax->i[i], a->rank)] = true;
    int64_t o = 0, stride = 1;
    for (int d = a->rank - 1; d >= 0; d--) {
        int64_t c = k % a->dim[d];
        k /= a->dim[d];
        o += red[d] ? 0 : c * stride;
        stride *= red[d] ? 1 : a->dim[d];
    }
    return o;
}

/* The branch of every element of kink or jump n after a run, into out
 * (NULL: only counted); returns how many. */
static int64_t branches(const IrInterp *it, const IrNode *n, double *out)
{
    const IrTensor *y = ir_interp_value(it, n), *a = ir_interp_value(it, n->in[0]);
    const IrTensor *b = n->nin > 1 ? ir_interp_value(it, n->in[1]) : NULL;
    bool per_input = n->op == OP_RELU || n->op == OP_ABS || n->op == OP_MAX;
    int64_t count = per_input ? a->numel : y->numel;
    for (int64_t k = 0; out && k < count; k++) {
        if (n->op == OP_RELU || n->op == OP_ABS)
            out[k] = cmp3(a->data[k], 0);
        else if (n->op == OP_MAX)
            out[k] = a->data[k] == y->data[reduced_index(n, a, k)];
        else if (n->op == OP_MAXIMUM || n->op == OP_MINIMUM)
            out[k] = cmp3(a->data[bcast_index(y, a, k)], b->data[bcast_index(y, b, k)]);
        else
            out[k] = y->data[k];
    }
    return count;
}

/* ---------------------------------------------------------------- finite differences */

/* The loss of an interpreter as a function of one named tensor. */
typedef struct Probe {
    IrInterp *it;
    const char *name;
    IrTensor *val;        /* our copy of the tensor's value, perturbed in place */
    IrError *err;
    const Kinks *kinks;   /* of the interpreter's graph; NULL: none */
    double *sig;          /* the branches at the first of the four points */
    int64_t nsig;
    const IrNode *moved;  /* out: a kink or jump that changed branch, else NULL */
    int resteps;          /* out: how often h was cut */
    bool skipped;         /* out: the kink stayed within the smallest step */
} Probe;

/* Records the branches of the first evaluation (i == 0), or compares the
 * others with them, setting p->moved at the first change. */
static void note_branches(Probe *p, int i)
{
    int64_t total = 0, off = 0;
    for (int k = 0; i == 0 && k < p->kinks->n; k++)
        total += branches(p->it, p->kinks->node[k], NULL);
    if (i == 0 && total > p->nsig) {
        free(p->sig);
        p->sig = malloc((size_t)total * sizeof *p->sig);
        p->nsig = total;
    }
    double *now = i == 0 ? p->sig : malloc((size_t)p->nsig * sizeof *now + 1);
    for (int k = 0; k < p->kinks->n; k++) {
        const IrNode *n = p->kinks->node[k];
        int64_t c = branches(p->it, n, now + off);
        if (i && !p->moved && memcmp(now + off, p->sig + off, (size_t)c * sizeof *now))
            p->moved = n;
        off += c;
    }
    if (i)
        free(now);
}

static bool loss_now(Probe *p, double *loss)
{
    if (!ir_interp_set(p->it, p->name, p->val, p->err) || !ir_interp_run(p->it, p->err))
        return false;
    *loss = ir_interp_output(p->it, "loss")->data[0];
    return true;
}

static bool loss_at(Probe *p, int64_t e, double x, double *loss)
{
    double keep = p->val->data[e];
    p->val->data[e] = x;
    bool ok = loss_now(p, loss);
    p->val->data[e] = keep;
    return ok;
}

/* The central difference at element e, stepped again while a kink lies
 * within the step (p->resteps, p->moved); p->skipped when it still does
 * after GC_RESTEPS cuts. */
static bool fd_elem(Probe *p, int64_t e, double h0, double *fd)
{
    double x = p->val->data[e], h = h0 * fmax(1.0, fabs(x)), l[4];
    bool watch = p->kinks && p->kinks->n;
    const IrNode *last = NULL;
    p->resteps = 0;
    p->skipped = false;
    for (int t = 0; t <= GC_RESTEPS; t++, h /= 8) {
        double at[4] = {x + h, x - h, x + 2 * h, x - 2 * h};
        p->moved = NULL;
        for (int i = 0; i < 4; i++) {
            if (!loss_at(p, e, at[i], &l[i]))
                return false;
            if (watch)
                note_branches(p, i);
        }
        *fd = (8 * (l[0] - l[1]) - (l[2] - l[3])) / (12 * h);
        if (!p->moved)
            break;
        last = p->moved;
        p->resteps += t < GC_RESTEPS;
        p->skipped = t == GC_RESTEPS;
    }
    p->moved = last;
    return true;
}

static double elem_error(double ad, double fd, double floor)
{
    double d = fabs(ad - fd) / fmax(fmax(fabs(ad), fabs(fd)), floor);
    return isnan(d) ? INFINITY : d;
}

/* ---------------------------------------------------------------- sampling */

static bool picked(const int64_t *idx, int n, int64_t e)
{
    for (int i = 0; i < n; i++)
        if (idx[i] == e)
            return true;
    return false;
}

/* Reservoir sample of up to k elements whose gradient is nonzero. */
static int pick_nonzero(IrRng *r, const IrTensor *grad, int k, int64_t *idx)
{
    int n = 0;
    int64_t seen = 0;
    for (int64_t e = 0; e < grad->numel && k > 0; e++) {
        if (grad->data[e] == 0)
            continue;
        seen++;
        if (n < k)
            idx[n++] = e;
        else if (ir_rng_uniform(r) * (double)seen < (double)k)
            idx[(int64_t)(ir_rng_uniform(r) * k)] = e;
    }
    return n;
}

static int pick_elements(IrRng *r, const IrTensor *grad, int k, int64_t *idx)
{
    k = k < 1 ? 1 : k > GC_MAX_SAMPLES ? GC_MAX_SAMPLES : k;
    if (grad->numel <= k) {
        for (int64_t e = 0; e < grad->numel; e++)
            idx[e] = e;
        return (int)grad->numel;
    }
    int n = pick_nonzero(r, grad, k / 2, idx);
    while (n < k) {
        int64_t e = (int64_t)(ir_rng_uniform(r) * (double)grad->numel);
        if (!picked(idx, n, e))
            idx[n++] = e;
    }
    return n;
}

/* "relu 'act'" or "relu %7": a kink for messages. */
static void kink_label(const IrNode *n, char *buf, size_t cap)
{
    if (n->name)
        snprintf(buf, cap, "%s '%s'", ir_op_name(n->op), n->name);
    else
        snprintf(buf, cap, "%s %%%d", ir_op_name(n->op), n->id);
}

/* Counts an element whose step met a kink; true when it was skipped. */
static bool note_kink(GcParam *res, const IrNode *moved, int resteps, bool skipped)
{
    if (!moved)
        return false;
    res->restepped += resteps > 0 && !skipped;
    res->skipped += skipped;
    kink_label(moved, res->kink, sizeof res->kink);
    return skipped;
}

/* Compares grad with finite differences on sampled elements of p->val. */
static bool check_tensor(Probe *p, const IrTensor *grad, const GcOptions *o, IrRng *r,
                         GcParam *res)
{
    int64_t *idx = malloc(GC_MAX_SAMPLES * sizeof *idx);
    int n = pick_elements(r, grad, o->samples, idx);
    for (int i = 0; i < n; i++) {
        int64_t e = idx[i];
        double fd;
        if (!isfinite(p->val->data[e]))
            continue;
        if (!fd_elem(p, e, o->h, &fd)) {
            free(idx);
            return false;
        }
        if (note_kink(res, p->moved, p->resteps, p->skipped))
            continue;
        double err = elem_error(grad->data[e], fd, o->floor);
        if (res->checked++ == 0 || err > res->worst) {
            res->worst = err;
            res->at = e;
            res->ad = grad->data[e];
            res->fd = fd;
        }
    }
    free(idx);
    return ir_interp_set(p->it, p->name, p->val, p->err);
}

/* ---------------------------------------------------------------- values */

static IrTensor *tensor_for(const IrNode *n, const int64_t *binding)
{
    int64_t dim[IR_MAX_RANK];
    for (int i = 0; i < n->shape.rank; i++)
        dim[i] = ir_dim_eval(n->shape.d[i], binding);
    return ir_tensor_new(n->dtype, n->shape.rank, dim);
}

static IrTensor *tensor_copy(const IrTensor *t)
{
    IrTensor *c = ir_tensor_new(t->dtype, t->rank, t->dim);
    memcpy(c->data, t->data, t->numel * sizeof *t->data);
    return c;
}

static void fill_normal(IrRng *r, IrTensor *t, double mean, double std)
{
    for (int64_t e = 0; e < t->numel; e++)
        t->data[e] = mean + std * ir_rng_normal(r);
}

/* An integer input takes values below the smallest size it indexes (gather
 * table rows, cross_entropy classes: ir_index_use), or 2 when it indexes
 * nothing; one target in eight is the ignore index. */
static void fill_input(const IrGraph *g, const IrNode *x, IrTensor *t, IrRng *r,
                       const GcOptions *o)
{
    IrIndexUse use = ir_index_use(g, x, o->binding);
    int64_t hi = use.range > 0 ? use.range : 2;
    for (int64_t e = 0; e < t->numel; e++) {
        double u = ir_rng_uniform(r);
        if (x->dtype == DT_F32)
            t->data[e] = ir_rng_normal(r);
        else if (x->dtype == DT_BOOL)
            t->data[e] = u < 0.5;
        else if (t->rank == 0)
            t->data[e] = 1;
        else if (use.has_ignore && u < 0.125)
            t->data[e] = (double)use.ignore;
        else
            t->data[e] = (double)(int64_t)(ir_rng_uniform(r) * (double)hi);
    }
}

static void fill_param(const IrNode *p, IrTensor *t, IrRng *r)
{
    const char *init = ir_node_str(p, ATTR_INIT, "zeros");
    if (!strcmp(init, "normal"))
        fill_normal(r, t, 0, ir_node_float(p, ATTR_STD, 0.02));
    else if (!strcmp(init, "uniform")) /* the same std as U(-bound, bound) */
        fill_normal(r, t, 0, ir_node_float(p, ATTR_BOUND, 0.0) / sqrt(3.0));
    else
        fill_normal(r, t, !strcmp(init, "ones"), 0.02);
}

/* ---------------------------------------------------------------- one op alone */

typedef struct NodeCheck {
    IrGraph *m, *mb;         /* the op alone, and after autodiff */
    IrInterp *it, *itb;
    IrTensor *val[IR_MAX_IN + 1];
    bool diff[IR_MAX_IN];
    unsigned wrt;            /* the operands to check, one bit each */
} NodeCheck;

static IrNode *operand_for(IrGraph *m, const IrNode *n, int j, unsigned wrt, bool *diff)
{
    const IrNode *x = n->in[j];
    char name[16];
    snprintf(name, sizeof name, "x%d", j);
    *diff = x->dtype == DT_F32 && !pass_autodiff_nondiff_reason(n->op, j) && (wrt >> j & 1);
    if (*diff)
        return ir_param(m, name, x->shape, "zeros", 0, true);
    return ir_input(m, name, x->dtype, x->shape);
}

/* loss = sum(finite(y) * R): elements of y that are +-inf (causal_mask)
 * are left out, so the loss stays finite. */
static void add_probe_loss(IrGraph *m, IrNode *y)
{
    IrNode *r = ir_input(m, "cotangent", DT_F32, y->shape);
    IrNode *big = ir_const(m, 1e300, DT_F32, ir_shape_of(0, NULL));
    IrNode *zero = ir_const(m, 0, DT_F32, ir_shape_of(0, NULL));
    IrNode *in[3] = {ir_binary(m, OP_LT, ir_unary(m, OP_ABS, y), big), y, zero};
    IrError e = {0};
    IrNode *fin = ir_node_new(m, OP_WHERE, in, 3, NULL, 0, NULL, NULL, &e);
    IrNode *l = ir_binary(m, OP_MUL, fin, r);
    int axes[IR_MAX_RANK] = {0, 1, 2, 3, 4, 5};
    if (l->shape.rank)
        l = ir_reduce(m, OP_SUM, l, axes, l->shape.rank, false);
    ir_graph_add_output(m, "loss", l);
}

static bool build_node_graphs(NodeCheck *c, const IrGraph *g, const IrNode *n,
                              const GcOptions *o, IrError *err)
{
    IrNode *in[IR_MAX_IN];
    c->m = ir_graph_new("rule");
    for (int i = 0; i < g->nsym; i++)
        ir_graph_sym(c->m, g->sym[i]);
    for (int j = 0; j < n->nin; j++)
        in[j] = operand_for(c->m, n, j, c->wrt, &c->diff[j]);
    IrNode *y = ir_node_new(c->m, n->op, in, n->nin, n->attr, n->nattr, &n->dtype, &n->shape, err);
    if (!y)
        return false;
    y->name = n->name ? ir_arena_strdup(c->m->arena, n->name) : NULL; /* names a kink */
    add_probe_loss(c->m, y);
    PassCtx ctx = pass_ctx_default(err);
    ctx.train = o->train;
    ctx.train.nfreeze = 0;
    if (o->train.broken_rule && strcmp(o->train.broken_rule, ir_op_name(n->op)))
        ctx.train.broken_rule = NULL; /* break n's rule, not the probe's */
    if (!pass_train_forward(c->m, &ctx))
        return false;
    c->mb = ir_graph_clone(c->m);
    return pass_autodiff(c->mb, &ctx);
}

/* The step input that the train step wires into a lone dropout: 1. */
static bool set_step(NodeCheck *c, IrError *err)
{
    if (!ir_graph_find(c->m, OP_INPUT, "step"))
        return true;
    IrTensor *t = ir_tensor_new(DT_I32, 0, NULL);
    t->data[0] = 1;
    bool ok = ir_interp_set(c->it, "step", t, err) && ir_interp_set(c->itb, "step", t, err);
    ir_tensor_free(t);
    return ok;
}

static bool set_node_values(NodeCheck *c, const IrNode *n, const IrTensor *const *vals,
                            const GcOptions *o, IrRng *r, IrError *err)
{
    for (int j = 0; j <= n->nin; j++) {
        const IrTensor *v = j < n->nin && vals ? vals[j] : NULL;
        const IrNode *x = j < n->nin ? n->in[j] : n;
        if (!v && x->dtype != DT_F32) {
            ir_error(err, "gradcheck: operand %d of %s needs a value", j, ir_op_name(n->op));
            return false;
        }
        c->val[j] = v ? tensor_copy(v) : tensor_for(x, o->binding);
        if (!v)
            fill_normal(r, c->val[j], 0, 1);
        char name[16];
        snprintf(name, sizeof name, j < n->nin ? "x%d" : "cotangent", j);
        if (!ir_interp_set(c->it, name, c->val[j], err) ||
            !ir_interp_set(c->itb, name, c->val[j], err))
            return false;
    }
    return true;
}

static double compare_node(NodeCheck *c, const IrNode *n, const GcOptions *o, IrRng *r,
                           IrError *err)
{
    double worst = 0;
    if (!ir_interp_run(c->itb, err))
        return -1;
    Kinks kinks = find_kinks(c->m);
    for (int j = 0; j < n->nin && worst >= 0; j++) {
        char name[16], gname[24];
        snprintf(name, sizeof name, "x%d", j);
        snprintf(gname, sizeof gname, "grad.x%d", j);
        if (!c->diff[j])
            continue;
        Probe p = {.it = c->it, .name = name, .val = c->val[j], .err = err, .kinks = &kinks};
        GcParam res = {0};
        bool ok = check_tensor(&p, ir_interp_output(c->itb, gname), o, r, &res);
        worst = ok ? fmax(worst, res.worst) : -1;
        free(p.sig);
    }
    free(kinks.node);
    return worst;
}

static void node_check_free(NodeCheck *c)
{
    for (int j = 0; j <= IR_MAX_IN; j++)
        ir_tensor_free(c->val[j]);
    ir_interp_free(c->it);
    ir_interp_free(c->itb);
    ir_graph_free(c->m);
    ir_graph_free(c->mb);
}

double gc_check_node_wrt(const IrGraph *g, const IrNode *n, unsigned wrt, const int64_t *binding,
                         const IrTensor *const *vals, const GcOptions *o, IrError *err)
{
    if (n->dtype != DT_F32 || ir_ops[n->op].kind == OPK_SOURCE)
        return 0;
    NodeCheck c;
    memset(&c, 0, sizeof c);
    c.wrt = wrt;
    IrRng r;
    ir_rng_init(&r, o->seed ^ 0x5eedull);
    double worst = -1;
    if (build_node_graphs(&c, g, n, o, err) &&
        (c.it = ir_interp_new(c.m, binding, o->seed, err)) &&
        (c.itb = ir_interp_new(c.mb, binding, o->seed, err)) &&
        set_node_values(&c, n, vals, o, &r, err) && set_step(&c, err))
        worst = compare_node(&c, n, o, &r, err);
    node_check_free(&c);
    return worst;
}

double gc_check_node(const IrGraph *g, const IrNode *n, const int64_t *binding,
                     const IrTensor *const *vals, const GcOptions *o, IrError *err)
{
    return gc_check_node_wrt(g, n, ~0u, binding, vals, o, err);
}

/* ---------------------------------------------------------------- the whole model */

typedef struct Gc {
    const GcOptions *o;
    IrGraph *fwd, *bwd;
    IrInterp *itb;      /* bwd: the gradients, and every forward value */
    IrGraph **cone;     /* by fwd node index: the cone of each trainable param */
    Kinks *kinks;       /* by fwd node index: the kinks and jumps of its cone */
    IrTensor **val;     /* by fwd node index: the values of inputs and params */
    IrRng rng;
    IrError *err;
} Gc;

static bool build_graphs(Gc *s, const IrGraph *g)
{
    PassCtx ctx = pass_ctx_default(s->err);
    ctx.train = s->o->train;
    s->fwd = ir_graph_clone(g);
    if (!pass_train_forward(s->fwd, &ctx))
        return false;
    s->bwd = ir_graph_clone(s->fwd);
    return pass_autodiff(s->bwd, &ctx) && ir_verify(s->bwd, s->err);
}

static bool set_values(Gc *s)
{
    s->val = calloc(s->fwd->nnodes, sizeof *s->val);
    for (int i = 0; i < s->fwd->nnodes; i++) {
        const IrNode *n = s->fwd->nodes[i];
        if (n->op != OP_INPUT && n->op != OP_PARAM)
            continue;
        s->val[i] = tensor_for(n, s->o->binding);
        if (n->op == OP_INPUT)
            fill_input(s->fwd, n, s->val[i], &s->rng, s->o);
        else
            fill_param(n, s->val[i], &s->rng);
        if (!ir_interp_set(s->itb, n->name, s->val[i], s->err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- finite differences, parallel */

/* One finite difference: element `elem` of the param at fwd index `node`. */
typedef struct FdJob {
    int node;
    int64_t elem;
    double fd;
    const IrNode *moved;  /* a kink met within the step (cone node), else NULL */
    int resteps;
    bool skipped;
} FdJob;

typedef struct FdPool {
    Gc *s;
    FdJob *jobs;
    int njobs;
    atomic_int next;
    atomic_bool failed;
    pthread_mutex_t lock;
} FdPool;

static const IrNode *output_node(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nout; i++)
        if (!strcmp(g->outs[i].name, name))
            return g->outs[i].node;
    return NULL;
}

/* ---------------------------------------------------------------- cones */

/* The cone of a param: the part of fwd that depends on it, with every
 * other operand an input "cone.N" that holds the value of fwd node N at
 * the checked point (read from the bwd run).  Perturbing the param then
 * re-evaluates only its cone: a param of the last block does not rerun
 * the blocks before it.  NULL when the loss does not depend on the param
 * (its finite differences are 0). */
static IrNode *cone_operand(IrGraph *c, IrNode **map, const IrNode *m)
{
    if (!map[m->index]) {
        char name[32];
        snprintf(name, sizeof name, "cone.%d", m->index);
        map[m->index] = ir_input(c, name, m->dtype, m->shape);
    }
    return map[m->index];
}

static IrGraph *build_cone(const Gc *s, const IrNode *p, const IrNode *loss)
{
    const IrGraph *f = s->fwd;
    IrGraph *c = ir_graph_new("cone");
    IrNode **map = calloc(f->nnodes, sizeof *map);
    bool *down = calloc(f->nnodes, sizeof *down);
    for (int i = 0; i < f->nsym; i++)
        ir_graph_sym(c, f->sym[i]);
    map[p->index] = ir_param(c, p->name, p->shape, "zeros", 0, true);
    down[p->index] = true;
    for (int i = p->index + 1; i < f->nnodes; i++) {
        const IrNode *n = f->nodes[i];
        IrNode *in[IR_MAX_IN];
        for (int j = 0; j < n->nin; j++)
            down[i] |= down[n->in[j]->index];
        for (int j = 0; down[i] && j < n->nin; j++)
            in[j] = down[n->in[j]->index] ? map[n->in[j]->index] : cone_operand(c, map, n->in[j]);
        if (down[i])
            map[i] = ir_node_new(c, n->op, in, n->nin, n->attr, n->nattr, &n->dtype, &n->shape,
                                 NULL);
        IR_ASSERT(!down[i] || map[i]);
        if (down[i] && n->name) /* names a kink */
            map[i]->name = ir_arena_strdup(c->arena, n->name);
    }
    if (down[loss->index])
        ir_graph_add_output(c, "loss", map[loss->index]);
    bool used = down[loss->index];
    free(map);
    free(down);
    if (!used)
        ir_graph_free(c);
    return used ? c : NULL;
}

/* A worker owns an interpreter of the cone of the param it is perturbing
 * and a private copy of that param, so workers share nothing but the job
 * counter (the cones and the bwd values are only read). */
typedef struct Worker {
    FdPool *pool;
    IrInterp *it;
    IrTensor *own;
    int own_node;
    IrError err;
    pthread_t tid;
} Worker;

static bool set_cone_inputs(Worker *w, const IrGraph *c)
{
    Gc *s = w->pool->s;
    for (int i = 0; i < c->nnodes; i++) {
        const IrNode *n = c->nodes[i];
        if (n->op != OP_INPUT)
            continue;
        const IrNode *src = s->bwd->nodes[atoi(n->name + 5)];
        if (!ir_interp_set(w->it, n->name, ir_interp_value(s->itb, src), &w->err))
            return false;
    }
    return true;
}

/* Makes `node` the perturbed param: an interpreter of its cone. */
static bool worker_switch(Worker *w, int node)
{
    Gc *s = w->pool->s;
    if (w->own_node == node)
        return true;
    ir_interp_free(w->it);
    ir_tensor_free(w->own);
    w->it = NULL;
    w->own = tensor_copy(s->val[node]);
    w->own_node = node;
    const IrGraph *c = s->cone[node];
    return !c || ((w->it = ir_interp_new(c, s->o->binding, s->o->seed, &w->err)) &&
                  set_cone_inputs(w, c));
}

static bool worker_job(Worker *w, FdJob *j)
{
    Gc *s = w->pool->s;
    if (!worker_switch(w, j->node))
        return false;
    Probe p = {.it = w->it, .name = s->fwd->nodes[j->node]->name, .val = w->own,
               .err = &w->err, .kinks = &s->kinks[j->node]};
    j->fd = 0;
    bool ok = !w->it || fd_elem(&p, j->elem, s->o->h, &j->fd);
    j->moved = w->it ? p.moved : NULL;
    j->resteps = p.resteps;
    j->skipped = p.skipped;
    free(p.sig);
    return ok;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    FdPool *pool = w->pool;
    bool ok = true;
    w->own_node = -1;
    for (int k; ok && !pool->failed && (k = atomic_fetch_add(&pool->next, 1)) < pool->njobs;)
        ok = worker_job(w, &pool->jobs[k]);
    if (!ok) {
        pthread_mutex_lock(&pool->lock);
        if (!pool->failed)
            *pool->s->err = w->err;
        pool->failed = true;
        pthread_mutex_unlock(&pool->lock);
    }
    ir_tensor_free(w->own);
    ir_interp_free(w->it);
    return NULL;
}

static int worker_count(const GcOptions *o, int njobs)
{
    long n = o->jobs > 0 ? o->jobs : sysconf(_SC_NPROCESSORS_ONLN);
    n = n < 1 ? 1 : n > 8 && o->jobs <= 0 ? 8 : n;
    return (int)(n < njobs ? n : njobs > 0 ? njobs : 1);
}

static bool run_jobs(Gc *s, FdJob *jobs, int njobs)
{
    FdPool pool = {.s = s, .jobs = jobs, .njobs = njobs};
    int nw = worker_count(s->o, njobs);
    Worker *w = calloc(nw, sizeof *w);
    pthread_mutex_init(&pool.lock, NULL);
    for (int i = 0; i < nw; i++) {
        w[i].pool = &pool;
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            IR_ASSERT(!"gradcheck: cannot start a thread");
    }
    for (int i = 0; i < nw; i++)
        pthread_join(w[i].tid, NULL);
    pthread_mutex_destroy(&pool.lock);
    free(w);
    return !pool.failed;
}

/* ---------------------------------------------------------------- per-param results */

static const IrTensor *grad_of(Gc *s, const IrNode *p)
{
    char gname[512];
    snprintf(gname, sizeof gname, "grad.%s", p->name);
    return ir_interp_output(s->itb, gname);
}

/* Picks the elements of every trainable param; jobs[first[k] ..
 * first[k+1]) belong to the k-th. */
static FdJob *plan_jobs(Gc *s, GcReport *r, int *first, int *njobs)
{
    int64_t idx[GC_MAX_SAMPLES];
    int per = s->o->samples < 1 ? 1
            : s->o->samples > GC_MAX_SAMPLES ? GC_MAX_SAMPLES : s->o->samples;
    FdJob *jobs = malloc(((size_t)r->nparams * per + 1) * sizeof *jobs);
    int n = 0;
    for (int k = 0; k < r->nparams; k++) {
        const IrNode *p = ir_graph_find(s->fwd, OP_PARAM, r->params[k].name);
        int m = pick_elements(&s->rng, grad_of(s, p), per, idx);
        first[k] = n;
        for (int i = 0; i < m; i++)
            jobs[n++] = (FdJob){.node = p->index, .elem = idx[i]};
    }
    first[r->nparams] = n;
    *njobs = n;
    return jobs;
}

/* The param's line, and a note when kinks cut steps or skipped elements. */
static void log_param(const GcOptions *o, const GcParam *res)
{
    fprintf(o->log, "  %-44s %10lld %7d   %.2e%s\n", res->name, (long long)res->numel,
            res->checked, res->worst, res->worst > o->tol ? "   FAIL" : "");
    if (res->restepped || res->skipped)
        fprintf(o->log, "      %d element%s within the step of a kink of %s: %d stepped again "
                "with a smaller h, %d skipped\n", res->restepped + res->skipped,
                res->restepped + res->skipped == 1 ? "" : "s", res->kink, res->restepped,
                res->skipped);
}

static void score_param(Gc *s, GcParam *res, const FdJob *jobs, int n)
{
    const IrNode *p = ir_graph_find(s->fwd, OP_PARAM, res->name);
    const IrTensor *grad = grad_of(s, p), *val = s->val[p->index];
    for (int i = 0; i < n; i++) {
        double ad = grad->data[jobs[i].elem];
        if (!isfinite(val->data[jobs[i].elem]) ||
            note_kink(res, jobs[i].moved, jobs[i].resteps, jobs[i].skipped))
            continue;
        double err = elem_error(ad, jobs[i].fd, s->o->floor);
        if (res->checked++ == 0 || err > res->worst) {
            res->worst = err;
            res->at = jobs[i].elem;
            res->ad = ad;
            res->fd = jobs[i].fd;
        }
    }
    if (s->o->log)
        log_param(s->o, res);
}

static void list_params(Gc *s, GcReport *r)
{
    r->params = calloc(s->fwd->nnodes, sizeof *r->params);
    for (int i = 0; i < s->fwd->nnodes; i++) {
        const IrNode *p = s->fwd->nodes[i];
        if (!pass_param_trainable(p, &s->o->train))
            continue;
        r->params[r->nparams].name = strdup(p->name);
        r->params[r->nparams++].numel = s->val[i]->numel;
    }
}

static void build_cones(Gc *s)
{
    const IrNode *loss = output_node(s->fwd, "loss");
    s->cone = calloc(s->fwd->nnodes, sizeof *s->cone);
    s->kinks = calloc(s->fwd->nnodes, sizeof *s->kinks);
    for (int i = 0; i < s->fwd->nnodes; i++)
        if (pass_param_trainable(s->fwd->nodes[i], &s->o->train) &&
            (s->cone[i] = build_cone(s, s->fwd->nodes[i], loss)))
            s->kinks[i] = find_kinks(s->cone[i]);
}

static bool check_params(Gc *s, GcReport *r)
{
    list_params(s, r);
    build_cones(s);
    int *first = malloc((r->nparams + 1) * sizeof *first), njobs;
    FdJob *jobs = plan_jobs(s, r, first, &njobs);
    bool ok = run_jobs(s, jobs, njobs);
    for (int k = 0; ok && k < r->nparams; k++) {
        GcParam *res = &r->params[k];
        score_param(s, res, jobs + first[k], first[k + 1] - first[k]);
        r->failed += res->worst > s->o->tol;
        if (res->worst > r->params[r->worst].worst)
            r->worst = k;
    }
    free(first);
    free(jobs);
    return ok;
}

/* ---------------------------------------------------------------- blame */

/* on[i]: nodes[i] lies on a path from `from` to `to`. */
static bool *path_nodes(const IrGraph *g, const IrNode *from, const IrNode *to)
{
    bool *down = calloc(g->nnodes, 1), *up = calloc(g->nnodes, 1);
    down[from->index] = up[to->index] = true;
    for (int i = from->index + 1; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            down[i] |= down[g->nodes[i]->in[j]->index];
    for (int i = to->index; i >= 0; i--)
        for (int j = 0; up[i] && j < g->nodes[i]->nin; j++)
            up[g->nodes[i]->in[j]->index] = true;
    for (int i = 0; i < g->nnodes; i++)
        down[i] = down[i] && up[i];
    free(up);
    return down;
}

static const IrNode *first_consumer(const IrGraph *g, const IrNode *p)
{
    for (int i = p->index + 1; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++)
            if (g->nodes[i]->in[j] == p)
                return g->nodes[i];
    return NULL;
}

/* Checks the rule of fwd node n on the operand values of the failing run,
 * for the operands on the path (a constant operand of the model is not
 * differentiated there, and may be multiplied by -inf). */
static double blame_node(Gc *s, const IrNode *n, const bool *on)
{
    const IrTensor *vals[IR_MAX_IN];
    unsigned wrt = 0;
    for (int j = 0; j < n->nin && j < IR_MAX_IN; j++) {
        vals[j] = ir_interp_value(s->itb, s->bwd->nodes[n->in[j]->index]);
        if (on[n->in[j]->index])
            wrt |= 1u << j;
    }
    GcOptions o = *s->o;
    o.log = NULL;
    IrError err = {0};
    return gc_check_node_wrt(s->fwd, n, wrt, o.binding, vals, &o, &err);
}

static void blame(Gc *s, GcReport *r)
{
    const GcParam *last = NULL;
    for (int i = 0; i < r->nparams; i++)
        if (r->params[i].worst > s->o->tol)
            last = &r->params[i];
    const IrNode *p = ir_graph_find(s->fwd, OP_PARAM, last->name);
    const IrNode *loss = output_node(s->fwd, "loss");
    bool *on = path_nodes(s->fwd, p, loss);
    for (int i = p->index + 1; i < s->fwd->nnodes; i++) {
        const IrNode *n = s->fwd->nodes[i];
        double e = on[i] ? blame_node(s, n, on) : 0;
        if (e > s->o->tol) {
            snprintf(r->suspect, sizeof r->suspect, "the gradient rule of '%s' (node %%%d, on "
                     "the path from %s to the loss) fails the op-by-op check with error %.2e",
                     ir_op_name(n->op), n->index, p->name, e);
            free(on);
            return;
        }
    }
    free(on);
    const IrNode *c = first_consumer(s->fwd, p);
    int n = snprintf(r->suspect, sizeof r->suspect, "no single op's rule fails on its own; %s "
                     "is first used by '%s' (node %%%d)", p->name,
                     c ? ir_op_name(c->op) : "nothing", c ? c->index : -1);
    if (last->restepped + last->skipped && n > 0 && (size_t)n < sizeof r->suspect)
        snprintf(r->suspect + n, sizeof r->suspect - n, "; %d of its elements lay within the "
                 "step of a kink of %s", last->restepped + last->skipped, last->kink);
}

static void gc_free(Gc *s)
{
    for (int i = 0; s->cone && i < s->fwd->nnodes; i++)
        ir_graph_free(s->cone[i]);
    for (int i = 0; s->kinks && i < s->fwd->nnodes; i++)
        free(s->kinks[i].node);
    free(s->cone);
    free(s->kinks);
    for (int i = 0; s->val && i < s->fwd->nnodes; i++)
        ir_tensor_free(s->val[i]);
    free(s->val);
    ir_interp_free(s->itb);
    ir_graph_free(s->fwd);
    ir_graph_free(s->bwd);
}

static bool run_backward(Gc *s, GcReport *r)
{
    if (!ir_interp_run(s->itb, s->err))
        return false;
    r->loss = ir_interp_output(s->itb, "loss")->data[0];
    return true;
}

bool gc_check_model(const IrGraph *g, const GcOptions *o, GcReport *r, IrError *err)
{
    Gc s = {.o = o, .err = err};
    memset(r, 0, sizeof *r);
    ir_rng_init(&s.rng, o->seed);
    bool ok = build_graphs(&s, g) &&
              (s.itb = ir_interp_new(s.bwd, o->binding, o->seed, err)) && set_values(&s) &&
              run_backward(&s, r) && check_params(&s, r);
    if (ok && r->failed)
        blame(&s, r);
    gc_free(&s);
    return ok;
}

void gc_report_free(GcReport *r)
{
    for (int i = 0; i < r->nparams; i++)
        free((char *)r->params[i].name);
    free(r->params);
    memset(r, 0, sizeof *r);
}
