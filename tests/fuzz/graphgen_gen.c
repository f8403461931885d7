/* graphgen_gen.c — random well-typed graphs from the op table.
 *
 * A graph grows one step at a time.  Each step picks an op family (unary,
 * broadcast binary, integer arithmetic, comparison and where, reduction,
 * softmax, layernorm, matmul, view, concat, gather, scatter_add, dropout,
 * iota, causal mask, attention as one op or as the book's primitive chain,
 * the attention gradient, cross-entropy) and draws its operands from the
 * values built so far, with a bias to recent values (deep chains) and to
 * the most read values (many readers); partners of a broadcast are a
 * suffix of the first operand's shape with some dims set to 1.  Missing
 * operands are made fresh: inputs, params (reused when one of that shape
 * exists: shared params; some frozen) and consts.  All nodes come from the
 * IR builder (ir_node_new), so every graph passes the shape rules.
 *
 * Dims are constants (1, 2, 3, 5, 7, 130, ...) or the symbols B and T, and
 * every dim stays a monomial (c * B^i * T^j), so a reshape can regroup the
 * prime factors and symbols of a shape freely.  No value has more than
 * GG_MAX_EL elements at the binding the graph is drawn for.
 *
 * The generator also keeps the numerics honest, so that a mismatch between
 * float32 and double means a bug and not rounding: it tracks a rough bound
 * on |x| per value (mag) and a lower bound for positive values (lo), scales
 * values down before exp-like ops, makes the operand of log, sqrt, rsqrt,
 * recip and a divisor positive (|x| + c), and compares only values that are
 * the same bits in float32 and in double (`exact`: inputs, params, consts,
 * their views, max/min/abs/relu of them, integers), since a comparison of
 * two computed values can flip on the last bit.  Index inputs get a range
 * of their own (one table or class count each), because `gradc verify`
 * draws integer inputs below the size of the table they index.
 */
#include "graphgen.h"
#include "ir/rng.h"
#include "passes/pass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GG_MAX_EL 1536     /* elements of one value at the binding */
#define GG_MAX_RANK 5

/* What the generator knows about a value. */
typedef struct Info {
    double mag;     /* a rough bound on |x| */
    double lo;      /* > 0: every element is at least lo */
    bool exact;     /* the same bits in float32 and double: comparisons may read it */
    bool dep;       /* depends on a trainable param through differentiable ops */
    bool index;     /* an integer index input: only gather/scatter/xent read it */
    bool inf;       /* holds -inf (a causal mask before its softmax): no operand */
    IrDim range;    /* of an index input: the size of what it indexes */
    bool vlast;     /* its elements surely differ along its last axis */
    bool vall;      /* ... and along every axis: random data */
    int uses;
} Info;

typedef struct Gen {
    IrGraph *g;
    IrRng r;
    int64_t bind[IR_MAX_SYMS];
    Info *info;            /* by node id */
    int cap;
    int ninput, nparam;
    IrNode *loss[8];       /* cross-entropy terms of the loss */
    int nloss;
    unsigned avoid;        /* GG_AVOID_* */
} Gen;

/* ---------------------------------------------------------------- randomness */

static uint32_t below(Gen *G, uint32_t n)
{
    return n ? (uint32_t)(ir_rng_next(&G->r) % n) : 0;
}

static bool chance(Gen *G, double p)
{
    return ir_rng_uniform(&G->r) < p;
}

static IrShape scalar_shape(void)
{
    return ir_shape_of(0, NULL);
}

/* ---------------------------------------------------------------- dims and shapes */

static int64_t numel_of(const Gen *G, const IrShape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= ir_dim_eval(s->d[i], G->bind);
    return n;
}

static bool fits(const Gen *G, const IrShape *s)
{
    return numel_of(G, s) <= GG_MAX_EL;
}

static bool has_sym(const IrShape *s)
{
    for (int i = 0; i < s->rank; i++)
        if (!ir_dim_is_const(s->d[i], NULL))
            return true;
    return false;
}

/* A dim whose value is at most room: a symbol or an odd-ish size. */
static IrDim rand_dim(Gen *G, int64_t room)
{
    static const int64_t sizes[] = {1, 3, 7, 2, 5, 130, 4, 3, 1, 6, 13};
    if (G->g->nsym && chance(G, 0.3)) {
        int s = (int)below(G, (uint32_t)G->g->nsym);
        if (G->bind[s] <= room)
            return ir_dim_sym(s);
    }
    for (int t = 0; t < 8; t++) {
        int64_t v = sizes[below(G, sizeof sizes / sizeof sizes[0])];
        if (v <= room)
            return ir_dim_const(v);
    }
    return ir_dim_const(1);
}

static IrShape rand_shape(Gen *G, int rank)
{
    IrShape s = {0};
    int64_t room = GG_MAX_EL;
    s.rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        s.d[i] = rand_dim(G, room);
        room /= ir_dim_eval(s.d[i], G->bind);
    }
    return s;
}

/* ---------------------------------------------------------------- value facts */

static Info *I(Gen *G, const IrNode *n)
{
    return &G->info[n->id];
}

static void grow_info(Gen *G, int id)
{
    if (id < G->cap)
        return;
    int cap = G->cap ? 2 * G->cap : 256;
    while (cap <= id)
        cap *= 2;
    G->info = realloc(G->info, (size_t)cap * sizeof *G->info);
    IR_ASSERT(G->info);
    memset(G->info + G->cap, 0, (size_t)(cap - G->cap) * sizeof *G->info);
    G->cap = cap;
}

/* Elements that one output element of a reduction (or matmul) sums. */
static double fan_in(const Gen *G, const IrNode *n)
{
    if (n->op == OP_MATMUL) {
        const IrShape *a = &n->in[0]->shape;
        int k = ir_node_int(n, ATTR_TA, 0) ? a->rank - 2 : a->rank - 1;
        return (double)ir_dim_eval(a->d[k], G->bind);
    }
    double o = (double)numel_of(G, &n->shape);
    return o > 0 ? (double)numel_of(G, &n->in[0]->shape) / o : 1;
}

static double source_mag(const Gen *G, const IrNode *n)
{
    if (n->op == OP_INPUT)
        return n->dtype == DT_F32 ? 4.5 : 1;
    if (n->op == OP_CONST)
        return fabs(ir_node_float(n, ATTR_VALUE, 0));
    if (n->op == OP_IOTA)
        return (double)ir_dim_eval(n->shape.d[ir_axis(ir_node_int(n, ATTR_AXIS, 0),
                                                       n->shape.rank)], G->bind);
    const char *init = ir_node_str(n, ATTR_INIT, "normal");
    if (!strcmp(init, "normal"))
        return 4.5 * ir_node_float(n, ATTR_STD, 1);
    if (!strcmp(init, "uniform"))
        return ir_node_float(n, ATTR_BOUND, 1);
    return !strcmp(init, "ones") ? 1 : 0;
}

/* mag and lo of elementwise ops. */
static void elem_facts(const Gen *G, const IrNode *n, const Info *a, const Info *b, Info *r)
{
    switch (n->op) {
    case OP_EXP: r->mag = exp(a->mag), r->lo = exp(-a->mag); break;
    case OP_LOG: r->mag = fmax(fabs(log(fmax(a->lo, 1e-30))), log(fmax(a->mag, 1))); break;
    case OP_SQRT: r->mag = sqrt(a->mag), r->lo = sqrt(a->lo); break;
    case OP_RSQRT: r->mag = 1 / sqrt(fmax(a->lo, 1e-30)), r->lo = 1 / sqrt(a->mag + 1e-30); break;
    case OP_RECIP: r->mag = 1 / fmax(a->lo, 1e-30), r->lo = 1 / (a->mag + 1e-30); break;
    case OP_TANH: r->mag = fmin(a->mag, 1); break;
    case OP_SIN: case OP_COS: r->mag = 1; break;
    case OP_DROPOUT: r->mag = a->mag / (1 - fmin(ir_node_float(n, ATTR_P, 0), 0.99)); break;
    case OP_ADD: r->mag = a->mag + b->mag, r->lo = a->lo > 0 && b->lo > 0 ? a->lo + b->lo : 0;
        break;
    case OP_SUB: r->mag = a->mag + b->mag; break;
    case OP_MUL: r->mag = a->mag * b->mag, r->lo = a->lo * b->lo; break;
    case OP_DIV: r->mag = a->mag / fmax(b->lo, 1e-30), r->lo = a->lo / (b->mag + 1e-30); break;
    case OP_MAXIMUM: r->mag = fmax(a->mag, b->mag), r->lo = fmax(a->lo, b->lo); break;
    case OP_MINIMUM: r->mag = fmax(a->mag, b->mag), r->lo = fmin(a->lo, b->lo); break;
    case OP_ABS: case OP_RELU: case OP_NEG: case OP_CAST: case OP_GELU:
        r->mag = a->mag, r->lo = n->op == OP_NEG ? 0 : a->lo;
        break;
    default: break;
    }
}

/* The facts of a new node from its operands (a per-op table, kept flat). */
static void node_facts(Gen *G, IrNode *n, Info *r)
{
    Info none = {0}, *a = n->nin ? I(G, n->in[0]) : &none, *b = n->nin > 1 ? I(G, n->in[1]) : &none;
    IrOpKind k = ir_ops[n->op].kind;
    r->mag = a->mag;
    r->exact = n->dtype != DT_F32;
    if (k == OPK_SOURCE) {
        r->mag = source_mag(G, n), r->exact = true;
        r->lo = n->op == OP_CONST && r->mag > 0 && ir_node_float(n, ATTR_VALUE, 0) > 0 ? r->mag : 0;
        r->dep = pass_param_trainable(n, &(PassTrainOpts){0});
        return;
    }
    for (int j = 0; j < n->nin; j++)
        r->dep |= n->dtype == DT_F32 && I(G, n->in[j])->dep &&
                  !pass_autodiff_nondiff_reason(n->op, j);
    for (int j = 0; j < n->nin; j++)
        r->inf |= I(G, n->in[j])->inf && n->op != OP_SOFTMAX;
    if (k == OPK_ELEMWISE)
        elem_facts(G, n, a, b, r);
    switch (n->op) {
    case OP_NEG: case OP_ABS: case OP_RELU: case OP_CAST:
        r->exact = r->exact || a->exact; break;
    case OP_MAXIMUM: case OP_MINIMUM: r->exact = r->exact || (a->exact && b->exact); break;
    case OP_LT: case OP_LE: case OP_EQ: r->mag = 1, r->exact = true; break;
    case OP_WHERE: {
        Info *c = I(G, n->in[2]);
        r->mag = fmax(b->mag, c->mag), r->lo = fmin(b->lo, c->lo);
        r->exact = r->exact || (b->exact && c->exact);
        break;
    }
    case OP_SUM: r->mag = a->mag * fan_in(G, n), r->lo = a->lo; break;
    case OP_MAX: r->exact = r->exact || a->exact, r->lo = a->lo; break;
    case OP_MEAN: r->lo = a->lo; break;
    case OP_RESHAPE: case OP_TRANSPOSE: case OP_BROADCAST: case OP_SLICE:
        r->exact = r->exact || a->exact, r->lo = a->lo; break;
    case OP_CONCAT:
        r->exact = true, r->lo = a->lo;
        for (int j = 0; j < n->nin; j++) {
            Info *x = I(G, n->in[j]);
            r->mag = fmax(r->mag, x->mag), r->lo = fmin(r->lo, x->lo), r->exact &= x->exact;
        }
        break;
    case OP_MATMUL: r->mag = a->mag * b->mag * fan_in(G, n); break;
    case OP_GATHER: r->exact = r->exact || a->exact; break;
    case OP_SCATTER_ADD: r->mag = a->mag + I(G, n->in[2])->mag * 16; break;
    case OP_CAUSAL_ATTENTION: r->mag = a->mag * 2; break;
    case OP_CAUSAL_MASK: r->inf = true; break;
    case OP_CAUSAL_ATTENTION_GRAD: r->mag = 1e3; break;
    case OP_SOFTMAX: r->mag = 1; break;
    case OP_LOG_SOFTMAX: case OP_CROSS_ENTROPY: r->mag = 2 * a->mag + 6; break;
    case OP_LAYERNORM: r->mag = 40 * I(G, n->in[1])->mag + I(G, n->in[2])->mag; break;
    default: break;
    }
}

/* Whether the operands of an elementwise-like node that span its last
 * axis vary along it (vlast), and whether one of its shape is random data
 * (vall). */
static void vary_elementwise(Gen *G, const IrNode *n, Info *r)
{
    IrDim last = n->shape.d[n->shape.rank - 1];
    for (int j = 0; j < n->nin; j++) {
        const IrNode *x = n->in[j];
        const Info *f = I(G, x);
        if (x->shape.rank && ir_dim_eq(x->shape.d[x->shape.rank - 1], last))
            r->vlast |= f->vlast;
        r->vall |= f->vall && ir_shape_eq(&x->shape, &n->shape);
    }
}

/* vlast and vall of a new node: only as sure as avoiding one open codegen
 * bug needs (see unflatten and docs/testing.md). */
static void vary_facts(Gen *G, const IrNode *n, Info *r)
{
    const Info *a = n->nin ? I(G, n->in[0]) : NULL;
    const IrShape *s = &n->shape;
    int rk = s->rank;
    if (!rk)
        return;
    switch (n->op) {
    case OP_INPUT: r->vall = true; break;
    case OP_PARAM: r->vall = strcmp(ir_node_str(n, ATTR_INIT, "normal"), "ones") &&
                             strcmp(ir_node_str(n, ATTR_INIT, "normal"), "zeros"); break;
    case OP_CONST: break;
    case OP_IOTA: r->vlast = ir_axis(ir_node_int(n, ATTR_AXIS, 0), rk) == rk - 1; break;
    case OP_RESHAPE:
        r->vall = a->vall;
        r->vlast = a->vall || (a->vlast && ir_dim_eq(s->d[rk - 1],
                                                     n->in[0]->shape.d[n->in[0]->shape.rank - 1]));
        break;
    case OP_TRANSPOSE:
        r->vall = a->vall;
        r->vlast = ir_node_attr(n, ATTR_PERM)->i[rk - 1] == rk - 1 ? a->vlast : a->vall;
        break;
    case OP_SLICE: case OP_SUM: case OP_MAX: case OP_MEAN: case OP_SCATTER_ADD:
        r->vall = a->vall;
        r->vlast = a->vall || (a->vlast && ir_dim_eq(s->d[rk - 1],
                                                     n->in[0]->shape.d[n->in[0]->shape.rank - 1]));
        break;
    case OP_MATMUL: r->vlast = I(G, n->in[1])->vall, r->vall = a->vall && r->vlast; break;
    case OP_GATHER:
        r->vall = n->in[0]->shape.rank == 1 || a->vall;
        r->vlast = r->vall || (n->in[0]->shape.rank > 1 && a->vlast);
        break;
    case OP_CAUSAL_ATTENTION: case OP_CAUSAL_ATTENTION_GRAD: r->vall = r->vlast = a->vall; break;
    case OP_CONCAT: r->vall = r->vlast = true;
        for (int j = 0; j < n->nin; j++)
            r->vall &= I(G, n->in[j])->vall, r->vlast &= I(G, n->in[j])->vlast;
        break;
    default: vary_elementwise(G, n, r); break;
    }
    r->vlast |= r->vall;
}

static void note(Gen *G, IrNode *n)
{
    grow_info(G, n->id);
    Info r = {0};
    node_facts(G, n, &r);
    vary_facts(G, n, &r);
    G->info[n->id] = r;
    for (int j = 0; j < n->nin; j++)
        I(G, n->in[j])->uses++;
}

/* ---------------------------------------------------------------- building */

static IrNode *mk(Gen *G, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat,
                  const IrDType *dt, const IrShape *s);
static IrNode *input(Gen *G, const char *prefix, IrDType dt, IrShape s);

static IrNode *mk(Gen *G, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat,
                  const IrDType *dt, const IrShape *s)
{
    IrError e = {0};
    IrNode *n = ir_node_new(G->g, op, in, nin, at, nat, dt, s, &e);
    if (!n) {
        fprintf(stderr, "graphgen: generator bug: %s: %s\n", ir_op_name(op), e.msg);
        abort();
    }
    note(G, n);
    return n;
}

static IrNode *mk1(Gen *G, IrOp op, IrNode *a)
{
    return mk(G, op, &a, 1, NULL, 0, NULL, NULL);
}

static IrNode *mk2(Gen *G, IrOp op, IrNode *a, IrNode *b)
{
    IrNode *in[2] = {a, b};
    return mk(G, op, in, 2, NULL, 0, NULL, NULL);
}

static IrNode *konst(Gen *G, double v, IrDType dt, IrShape s)
{
    IrAttr a = ir_attr_float(ATTR_VALUE, v);
    return mk(G, OP_CONST, NULL, 0, &a, 1, &dt, &s);
}

static IrNode *scalar(Gen *G, double v)
{
    return konst(G, v, DT_F32, scalar_shape());
}

static IrNode *input(Gen *G, const char *prefix, IrDType dt, IrShape s)
{
    char name[32];
    snprintf(name, sizeof name, "%s%d", prefix, G->ninput++);
    IrNode *n = mk(G, OP_INPUT, NULL, 0, NULL, 0, &dt, &s);
    n->name = ir_arena_strdup(G->g->arena, name);
    return n;
}

/* A param of shape s; frozen_ok: maybe frozen and maybe a constant init. */
static IrNode *new_param(Gen *G, IrShape s, bool frozen_ok)
{
    static const char *const inits[] = {"normal", "uniform", "ones", "normal", "uniform", "zeros"};
    const char *init = frozen_ok ? inits[below(G, chance(G, 0.97) ? 5 : 6)] : "normal";
    IrAttr at[3];
    int na = 0;
    at[na++] = ir_attr_str(ATTR_INIT, init);
    if (!strcmp(init, "normal"))
        at[na++] = ir_attr_float(ATTR_STD, chance(G, 0.5) ? 0.5 : 0.02 + below(G, 4) * 0.25);
    if (!strcmp(init, "uniform"))
        at[na++] = ir_attr_float(ATTR_BOUND, chance(G, 0.5) ? 1 : 0.25);
    at[na++] = ir_attr_int(ATTR_TRAINABLE, !frozen_ok || chance(G, 0.9));
    char name[32];
    snprintf(name, sizeof name, "w%d", G->nparam++);
    IrDType dt = DT_F32;
    for (int i = 0; i < s.rank; i++) /* a param's shape is numbers */
        if (!ir_dim_is_const(s.d[i], NULL))
            s.d[i] = ir_dim_const(3);
    IrNode *n = mk(G, OP_PARAM, NULL, 0, at, na, &dt, &s);
    n->name = ir_arena_strdup(G->g->arena, name);
    return n;
}

/* A param of shape s: an existing one (shared) or a new one. */
static IrNode *param(Gen *G, IrShape s)
{
    for (int i = 0; i < G->g->nnodes && chance(G, 0.6); i++) {
        IrNode *n = G->g->nodes[below(G, (uint32_t)G->g->nnodes)];
        if (n->op == OP_PARAM && ir_shape_eq(&n->shape, &s))
            return n;
    }
    return new_param(G, s, true);
}

/* A fresh f32 leaf of shape s: a param when s is constant, else an input. */
static IrNode *leaf(Gen *G, IrShape s)
{
    if (!has_sym(&s) && chance(G, 0.55))
        return param(G, s);
    return input(G, "x", DT_F32, s);
}

/* ---------------------------------------------------------------- choosing operands */

typedef struct Want {
    unsigned dtypes;       /* bit per IrDType */
    int min_rank, max_rank;
    bool exact, no_dep;
} Want;

static bool wanted(Gen *G, const IrNode *n, const Want *w)
{
    const Info *f = I(G, n);
    return (w->dtypes >> n->dtype & 1) && !f->index && !f->inf && n->shape.rank >= w->min_rank &&
           n->shape.rank <= w->max_rank && (!w->exact || f->exact) && (!w->no_dep || !f->dep);
}

/* A value built so far: mostly a recent one, sometimes the most read one. */
static IrNode *pick(Gen *G, const Want *w)
{
    IrNode *cand[512];
    int nc = 0, best = -1;
    for (int i = G->g->nnodes - 1; i >= 0 && nc < 512; i--)
        if (wanted(G, G->g->nodes[i], w))
            cand[nc++] = G->g->nodes[i];
    if (!nc)
        return NULL;
    if (chance(G, 0.15)) {
        for (int k = 0; k < nc; k++)
            if (best < 0 || I(G, cand[k])->uses > I(G, cand[best])->uses)
                best = k;
        return cand[best];
    }
    return cand[chance(G, 0.6) ? below(G, nc < 6 ? nc : 6) : below(G, nc)];
}

static IrNode *pick_f32(Gen *G, int min_rank)
{
    Want w = {1u << DT_F32, min_rank, GG_MAX_RANK, false, false};
    IrNode *n = pick(G, &w);
    return n ? n : leaf(G, rand_shape(G, min_rank + (int)below(G, 4 - (min_rank > 3))));
}

/* An existing value of exactly this type, or NULL. */
static IrNode *find(Gen *G, IrDType dt, const IrShape *s, bool exact)
{
    for (int t = 0; t < 24 && G->g->nnodes; t++) {
        IrNode *n = G->g->nodes[below(G, (uint32_t)G->g->nnodes)];
        if (n->dtype == dt && !I(G, n)->index && !I(G, n)->inf && ir_shape_eq(&n->shape, s) &&
            (!exact || I(G, n)->exact))
            return n;
    }
    return NULL;
}

/* Scales x down when its bound exceeds lim (before exp-like ops). */
static IrNode *tame(Gen *G, IrNode *x, double lim)
{
    double m = I(G, x)->mag;
    if (!(m > lim))
        return x;
    double c = lim / m;
    return mk2(G, OP_MUL, x, scalar(G, c > 1e-30 ? c : 1e-30));
}

/* x when it is safely positive, else |x| + c. */
static IrNode *positive(Gen *G, IrNode *x)
{
    if (I(G, x)->lo >= 0.05 && I(G, x)->mag < 1e4)
        return x;
    x = tame(G, x, 1e3);
    return mk2(G, OP_ADD, mk1(G, OP_ABS, x), scalar(G, chance(G, 0.5) ? 0.5 : 1));
}

/* ---------------------------------------------------------------- index inputs */

/* An i32 index input of shape s for a table (or class count) of `range`. */
static IrNode *index_input(Gen *G, IrShape s, IrDim range)
{
    for (int i = 0; i < G->g->nnodes; i++) {
        IrNode *n = G->g->nodes[i];
        if (I(G, n)->index && ir_dim_eq(I(G, n)->range, range) &&
            ir_shape_eq(&n->shape, &s) && chance(G, 0.5))
            return n;
    }
    IrNode *n = input(G, "i", DT_I32, s);
    I(G, n)->index = true;
    I(G, n)->range = range;
    return n;
}


/* ---------------------------------------------------------------- operands of a shape */

/* A shape that broadcasts with s: a suffix of it with some dims set to 1
 * and, with `stretch`, some of s's 1-dims widened (within GG_MAX_EL). */
static IrShape partner_shape(Gen *G, const IrShape *s, bool stretch)
{
    IrShape p = {0};
    int k = chance(G, 0.5) ? s->rank : (int)below(G, s->rank + 1);
    int64_t room = GG_MAX_EL / numel_of(G, s);
    p.rank = (uint8_t)k;
    for (int i = 0; i < k; i++) {
        IrDim d = s->d[s->rank - k + i];
        if (chance(G, 0.25))
            d = ir_dim_const(1);
        else if (stretch && ir_dim_is_one(d) && chance(G, 0.3)) {
            d = rand_dim(G, room);
            room /= ir_dim_eval(d, G->bind);
        }
        p.d[i] = d;
    }
    return p;
}

/* A const that is exact in float32: k/4 in [-2, 2] (an integer for i32). */
static double nice_value(Gen *G, IrDType dt)
{
    return dt == DT_F32 ? ((int)below(G, 17) - 8) / 4.0 : (int)below(G, 5) - 1;
}

/* A value of type (dt, s): an existing one, a const, or a fresh leaf. */
static IrNode *operand(Gen *G, IrDType dt, IrShape s, bool exact)
{
    IrNode *n = chance(G, 0.5) ? find(G, dt, &s, exact) : NULL;
    if (n)
        return n;
    if (dt == DT_BOOL)
        return konst(G, below(G, 2), dt, s);
    if ((dt == DT_I32 && chance(G, 0.5)) || (numel_of(G, &s) == 1 && chance(G, 0.5)) ||
        chance(G, 0.1))
        return konst(G, nice_value(G, dt), dt, s);
    return dt == DT_F32 ? leaf(G, s) : input(G, "n", dt, s);
}

/* ---------------------------------------------------------------- reductions and views */

static IrNode *reduce(Gen *G, IrOp op, IrNode *x, bool keep)
{
    int64_t axes[IR_MAX_RANK];
    int na = 0, r = x->shape.rank, nat = 0;
    for (int i = 0; i < r; i++)
        if (chance(G, 0.4))
            axes[na++] = chance(G, 0.3) ? i - r : i;
    if (!na && r && chance(G, 0.7))
        axes[na++] = below(G, (uint32_t)r);
    IrAttr at[2];
    if (na || chance(G, 0.5))
        at[nat++] = ir_attr_ints(ATTR_AXES, axes, na);
    if (keep || chance(G, 0.4))
        at[nat++] = ir_attr_int(ATTR_KEEPDIM, keep || chance(G, 0.5));
    return mk(G, op, &x, 1, at, nat, NULL, NULL);
}

static IrNode *reduce_all(Gen *G, IrOp op, IrNode *x)
{
    return mk(G, op, &x, 1, NULL, 0, NULL, NULL);
}

/* The prime factors of a monomial dim's coefficient and its symbols. */
static int atoms_of(IrDim d, IrDim *out)
{
    int n = 0;
    if (d.n != 1) {
        out[n++] = d;
        return n;
    }
    int64_t c = d.t[0].coef;
    for (int64_t p = 2; c > 1 && p <= c; p++)
        while (c % p == 0 && n < 16)
            out[n++] = ir_dim_const(p), c /= p;
    for (int s = 0; s < IR_MAX_SYMS; s++)
        for (int e = 0; e < d.t[0].exp[s] && n < 16; e++)
            out[n++] = ir_dim_sym(s);
    return n;
}

/* A reshape that regroups the factors of x's dims (in order, or shuffled). */
static IrNode *reshape(Gen *G, IrNode *x)
{
    IrDim atoms[IR_MAX_RANK * 16];
    int na = 0, rank = 1 + (int)below(G, GG_MAX_RANK), group[IR_MAX_RANK * 16];
    for (int i = 0; i < x->shape.rank; i++)
        na += atoms_of(x->shape.d[i], atoms + na);
    for (int i = na - 1; i > 0 && chance(G, 0.4); i--) {
        int j = (int)below(G, (uint32_t)i + 1);
        IrDim t = atoms[i];
        atoms[i] = atoms[j], atoms[j] = t;
    }
    for (int i = 0; i < na; i++)
        group[i] = (int)below(G, (uint32_t)rank);
    for (int i = 1; i < na; i++) /* insertion sort: contiguous groups */
        for (int j = i; j > 0 && group[j - 1] > group[j]; j--) {
            int t = group[j];
            group[j] = group[j - 1], group[j - 1] = t;
        }
    IrShape s = {.rank = (uint8_t)rank};
    for (int i = 0; i < rank; i++)
        s.d[i] = ir_dim_const(1);
    for (int i = 0; i < na; i++)
        IR_ASSERT(ir_dim_mul(s.d[group[i]], atoms[i], &s.d[group[i]]));
    return mk(G, OP_RESHAPE, &x, 1, NULL, 0, &x->dtype, &s);
}

static IrNode *transpose(Gen *G, IrNode *x)
{
    int64_t perm[IR_MAX_RANK];
    int r = x->shape.rank;
    for (int i = 0; i < r; i++)
        perm[i] = i;
    for (int i = r - 1; i > 0; i--) {
        int j = (int)below(G, (uint32_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    IrAttr a = ir_attr_ints(ATTR_PERM, perm, r);
    return mk(G, OP_TRANSPOSE, &x, 1, &a, 1, NULL, NULL);
}

static IrNode *slice_at(Gen *G, IrNode *x, int ax, int64_t start, int64_t end)
{
    IrAttr at[3] = {ir_attr_int(ATTR_AXIS, chance(G, 0.2) ? ax - x->shape.rank : ax),
                    ir_attr_int(ATTR_START, start), ir_attr_int(ATTR_END, end)};
    return mk(G, OP_SLICE, &x, 1, at, 3, NULL, NULL);
}

static IrNode *slice_axis(Gen *G, IrNode *x, int ax)
{
    int64_t len;
    IR_ASSERT(ir_dim_is_const(x->shape.d[ax], &len));
    int64_t start = below(G, (uint32_t)len), end = start + 1 + below(G, (uint32_t)(len - start));
    return slice_at(G, x, ax, start, end);
}

/* A slice along a constant axis, or NULL when x has none. */
static IrNode *slice(Gen *G, IrNode *x)
{
    int axes[IR_MAX_RANK], na = 0;
    for (int i = 0; i < x->shape.rank; i++)
        if (ir_dim_is_const(x->shape.d[i], NULL))
            axes[na++] = i;
    return na ? slice_axis(G, x, axes[below(G, (uint32_t)na)]) : NULL;
}

/* broadcast: leading dims added, 1-dims widened. */
static IrNode *expand(Gen *G, IrNode *x)
{
    IrShape s = {0};
    int lead = (int)below(G, (uint32_t)(GG_MAX_RANK - x->shape.rank + 1));
    int64_t room = GG_MAX_EL / numel_of(G, &x->shape);
    for (int i = 0; i < lead; i++) {
        s.d[s.rank] = rand_dim(G, room);
        room /= ir_dim_eval(s.d[s.rank++], G->bind);
    }
    for (int i = 0; i < x->shape.rank; i++) {
        IrDim d = x->shape.d[i];
        if (ir_dim_is_one(d) && chance(G, 0.6)) {
            d = rand_dim(G, room);
            room /= ir_dim_eval(d, G->bind);
        }
        s.d[s.rank++] = d;
    }
    return mk(G, OP_BROADCAST, &x, 1, NULL, 0, &x->dtype, &s);
}

static IrNode *view_once(Gen *G, IrNode *x)
{
    IrNode *v = NULL;
    switch (below(G, 4)) {
    case 0: return reshape(G, x);
    case 1: v = x->shape.rank >= 2 ? transpose(G, x) : NULL; break;
    case 2: v = slice(G, x); break;
    default: break;
    }
    return v ? v : expand(G, x);
}

/* ---------------------------------------------------------------- op families */

static IrNode *op_unary(Gen *G)
{
    static const IrOp ops[] = {OP_NEG,  OP_EXP,   OP_LOG, OP_SQRT, OP_RSQRT, OP_TANH,
                               OP_RECIP, OP_ABS, OP_RELU, OP_GELU, OP_SIN,  OP_COS};
    IrOp op = ops[below(G, sizeof ops / sizeof ops[0])];
    IrNode *x = pick_f32(G, 0);
    if (op == OP_EXP || op == OP_TANH || op == OP_GELU)
        x = tame(G, x, op == OP_EXP ? 4 : 8);
    if (op == OP_LOG || op == OP_SQRT || op == OP_RSQRT || op == OP_RECIP)
        x = positive(G, x);
    return mk1(G, op, x);
}

static IrNode *op_binary(Gen *G)
{
    static const IrOp ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAXIMUM, OP_MINIMUM};
    IrOp op = ops[below(G, sizeof ops / sizeof ops[0])];
    IrNode *a = pick_f32(G, 0), *b;
    if (a->shape.rank && chance(G, 0.2)) {
        static const IrOp red[] = {OP_SUM, OP_MAX, OP_MEAN};
        b = reduce(G, red[below(G, 3)], a, true);
    } else
        b = operand(G, DT_F32, partner_shape(G, &a->shape, true), false);
    if (op == OP_MUL)
        a = tame(G, a, 1e3), b = tame(G, b, 1e3);
    if (op == OP_DIV)
        b = positive(G, b);
    if (op != OP_DIV && chance(G, 0.4)) {
        IrNode *t = a;
        a = b, b = t;
    }
    return mk2(G, op, a, b);
}

static IrNode *cast(Gen *G, IrNode *x, IrDType dt)
{
    return mk(G, OP_CAST, &x, 1, NULL, 0, &dt, NULL);
}

static IrNode *iota(Gen *G)
{
    IrShape s = rand_shape(G, 1 + (int)below(G, 3));
    IrAttr a = ir_attr_int(ATTR_AXIS, (int)below(G, s.rank) - (chance(G, 0.3) ? s.rank : 0));
    IrDType dt = DT_I32;
    return mk(G, OP_IOTA, NULL, 0, &a, 1, &dt, &s);
}

/* An i32 value: an existing one, an iota, a cast of an exact f32, an input. */
static IrNode *int_value(Gen *G)
{
    Want w = {1u << DT_I32, 0, GG_MAX_RANK, false, false};
    Want e = {1u << DT_F32, 0, GG_MAX_RANK, true, false};
    IrNode *n = chance(G, 0.6) ? pick(G, &w) : NULL;
    if (!n && chance(G, 0.5))
        n = pick(G, &e);
    if (n && n->dtype == DT_F32)
        return cast(G, n, DT_I32);
    if (n)
        return n;
    return chance(G, 0.5) ? iota(G) : input(G, "n", DT_I32, rand_shape(G, 1 + (int)below(G, 3)));
}

/* Integer arithmetic (exact in both runs while it stays small), often
 * cast back to f32. */
static IrNode *op_int(Gen *G)
{
    static const IrOp ops[] = {OP_ADD, OP_SUB,  OP_MUL, OP_DIV, OP_MAXIMUM, OP_MINIMUM,
                               OP_NEG, OP_ABS,  OP_RELU, OP_SUM, OP_MAX};
    IrOp op = ops[below(G, sizeof ops / sizeof ops[0])];
    IrNode *a = int_value(G), *r;
    if (op == OP_NEG || op == OP_ABS || op == OP_RELU)
        r = mk1(G, op, a);
    else if (op == OP_SUM || op == OP_MAX)
        r = reduce(G, I(G, a)->mag * GG_MAX_EL > 1e8 ? OP_MAX : op, a, false);
    else {
        IrNode *b = operand(G, DT_I32, partner_shape(G, &a->shape, true), true);
        if (op == OP_DIV)
            b = mk2(G, OP_ADD, mk1(G, OP_ABS, b), konst(G, 1, DT_I32, scalar_shape()));
        if (op == OP_MUL && I(G, a)->mag * I(G, b)->mag > 1e6)
            op = OP_ADD;
        r = mk2(G, op, a, b);
    }
    return chance(G, 0.6) ? cast(G, r, DT_F32) : r;
}

/* A bool of shape s from a comparison of exact values. */
static IrNode *compare(Gen *G, IrShape s)
{
    static const IrOp ops[] = {OP_LT, OP_LE, OP_EQ};
    IrDType dt = chance(G, 0.3) ? DT_I32 : DT_F32;
    IrNode *a = find(G, dt, &s, true), *b;
    if (!a)
        a = dt == DT_F32 ? input(G, "x", DT_F32, s) : input(G, "n", DT_I32, s);
    if (chance(G, 0.5))
        b = operand(G, dt, partner_shape(G, &s, false), true);
    else
        b = konst(G, nice_value(G, dt), dt, scalar_shape());
    if (chance(G, 0.3)) {
        IrNode *t = a;
        a = b, b = t;
    }
    return mk2(G, ops[below(G, 3)], a, b);
}

static IrNode *op_where(Gen *G)
{
    IrNode *x = pick_f32(G, 0);
    IrNode *c = compare(G, partner_shape(G, &x->shape, false));
    IrNode *y = operand(G, DT_F32, partner_shape(G, &x->shape, false), false);
    IrNode *in[3] = {c, x, y};
    if (chance(G, 0.5))
        in[1] = y, in[2] = x;
    if (chance(G, 0.2)) /* a mask as numbers */
        return cast(G, c, DT_F32);
    return mk(G, OP_WHERE, in, 3, NULL, 0, NULL, NULL);
}

static IrNode *op_reduce(Gen *G)
{
    static const IrOp ops[] = {OP_SUM, OP_MAX, OP_MEAN};
    return reduce(G, ops[below(G, 3)], pick_f32(G, 0), false);
}

/* An axis of x wider than 1, or -1.  Softmax, layernorm and cross-entropy
 * over an axis of 1 are constants whose gradients vanish in exact
 * arithmetic, where verify would judge float32 rounding noise against
 * nothing. */
static int wide_axis(Gen *G, const IrNode *x)
{
    int axes[IR_MAX_RANK], n = 0;
    for (int i = 0; i < x->shape.rank; i++)
        if (!ir_dim_is_one(x->shape.d[i]))
            axes[n++] = i;
    return n ? axes[below(G, (uint32_t)n)] : -1;
}

static IrNode *op_softmax(Gen *G)
{
    IrNode *x = pick_f32(G, 1);
    int r = x->shape.rank, ax = wide_axis(G, x);
    if (ax < 0 || !(ax == r - 1 ? I(G, x)->vlast : I(G, x)->vall))
        return NULL;
    x = tame(G, x, 6);
    IrAttr a = ir_attr_int(ATTR_AXIS, ax - (chance(G, 0.4) ? r : 0));
    return mk(G, chance(G, 0.7) ? OP_SOFTMAX : OP_LOG_SOFTMAX, &x, 1, &a, 1, NULL, NULL);
}

static bool wide_last(const IrNode *x)
{
    return x->shape.rank && !ir_dim_is_one(x->shape.d[x->shape.rank - 1]);
}

static IrNode *op_layernorm(Gen *G)
{
    IrNode *x = pick_f32(G, 1);
    int64_t len;
    if (!ir_dim_is_const(x->shape.d[x->shape.rank - 1], &len) || len < 4)
        return NULL; /* over 2 or 3 values the output is nearly +-1 whatever x: its gradient
                      * is all cancellation, float32 and double part after 4 digits */
    /* rows of random spread: over rows that are nearly constant, x - mean
     * cancels and 1/std amplifies float32 rounding past any tolerance */
    if (!I(G, x)->exact || !I(G, x)->vall)
        x = mk2(G, OP_ADD, tame(G, x, 1), input(G, "x", DT_F32, x->shape));
    IrShape d = {.rank = 1, .d = {x->shape.d[x->shape.rank - 1]}};
    IrNode *in[3] = {x, leaf(G, d), leaf(G, d)};
    IrAttr a = ir_attr_float(ATTR_EPS, chance(G, 0.5) ? 1e-5 : 1e-3);
    return mk(G, OP_LAYERNORM, in, 3, &a, chance(G, 0.7), NULL, NULL);
}

static IrNode *matmul(Gen *G, IrNode *a, IrNode *b, bool ta, bool tb)
{
    IrAttr at[2];
    int n = 0;
    if (ta || chance(G, 0.1))
        at[n++] = ir_attr_int(ATTR_TA, ta);
    if (tb || chance(G, 0.1))
        at[n++] = ir_attr_int(ATTR_TB, tb);
    IrNode *in[2] = {a, b};
    return mk(G, OP_MATMUL, in, 2, at, n, NULL, NULL);
}

/* a[..., M, K] @ b[..., K, N]: b a weight (shared when one fits), a value
 * or a fresh input, with broadcast leading dims and ta/tb. */
static IrNode *op_matmul(Gen *G)
{
    IrNode *a = tame(G, pick_f32(G, 2), 10);
    const IrShape *s = &a->shape;
    bool ta = chance(G, 0.2), tb = chance(G, 0.3);
    IrDim K = s->d[s->rank - 1 - ta];
    int64_t room = GG_MAX_EL * ir_dim_eval(K, G->bind) / numel_of(G, s);
    IrDim N = rand_dim(G, room);
    IrShape lead = {.rank = (uint8_t)(s->rank - 2)};
    memcpy(lead.d, s->d, sizeof(IrDim) * lead.rank);
    IrShape bs = chance(G, 0.6) ? (IrShape){0} : partner_shape(G, &lead, false);
    bs.d[bs.rank++] = tb ? N : K;
    bs.d[bs.rank++] = tb ? K : N;
    IrNode *b = chance(G, 0.5) ? find(G, DT_F32, &bs, false) : NULL;
    b = tame(G, b ? b : leaf(G, bs), 10);
    return matmul(G, a, b, ta, tb);
}

static IrNode *op_view(Gen *G)
{
    Want w = {1u << DT_F32 | 1u << DT_I32 | 1u << DT_BOOL, 0, GG_MAX_RANK, false, false};
    IrNode *x = chance(G, 0.8) ? pick_f32(G, 0) : pick(G, &w);
    x = x ? x : pick_f32(G, 0);
    for (int n = 1 + (int)below(G, 3); n > 0; n--)
        x = view_once(G, x);
    return x;
}

/* concat along a constant axis of x with x itself, slices of x, values
 * and leaves of the same shape off that axis. */
static IrNode *op_concat(Gen *G)
{
    IrNode *x = pick_f32(G, 1), *in[4] = {x};
    int axes[IR_MAX_RANK], na = 0, n = 2 + (int)below(G, 3);
    for (int i = 0; i < x->shape.rank; i++)
        if (ir_dim_is_const(x->shape.d[i], NULL))
            axes[na++] = i;
    if (!na || numel_of(G, &x->shape) * n > GG_MAX_EL)
        return NULL;
    int ax = axes[below(G, (uint32_t)na)];
    int64_t len;
    ir_dim_is_const(x->shape.d[ax], &len);
    for (int k = 1; k < n; k++) {
        IrShape s = x->shape;
        s.d[ax] = ir_dim_const(1 + below(G, (uint32_t)len));
        uint32_t c = below(G, 3);
        in[k] = c == 0 ? x : c == 1 ? slice_axis(G, x, ax) : operand(G, DT_F32, s, false);
    }
    for (int k = n - 1; k > 0; k--) {
        int j = (int)below(G, (uint32_t)k + 1);
        IrNode *t = in[k];
        in[k] = in[j], in[j] = t;
    }
    IrAttr a = ir_attr_int(ATTR_AXIS, chance(G, 0.2) ? ax - x->shape.rank : ax);
    return mk(G, OP_CONCAT, in, n, &a, 1, NULL, NULL);
}

/* Indices of shape rank 1-2 for a table whose rows hold `row` elements,
 * sometimes seen through a view. */
static IrNode *indices(Gen *G, IrDim range, int64_t row, int max_rank, bool view)
{
    IrShape s = rand_shape(G, 1 + (int)below(G, (uint32_t)max_rank));
    while (numel_of(G, &s) * row > GG_MAX_EL && s.rank)
        s.rank--;
    IrNode *idx = index_input(G, s, range);
    if (view && idx->shape.rank >= 2 && chance(G, 0.3))
        idx = transpose(G, idx);
    return idx;
}

/* gather(table[V, D...], idx): an embedding param or a computed table. */
static IrNode *op_gather(Gen *G)
{
    static const int64_t vs[] = {3, 7, 130, 2, 1};
    Want w = {1u << DT_F32, 1, 3, false, false};
    IrNode *t = chance(G, 0.4) ? pick(G, &w) : NULL;
    if (!t) {
        IrShape s = rand_shape(G, 1 + (int)below(G, 3));
        s.d[0] = ir_dim_const(vs[below(G, 5)]);
        t = param(G, s);
    }
    int64_t row = numel_of(G, &t->shape) / ir_dim_eval(t->shape.d[0], G->bind);
    IrNode *idx = indices(G, t->shape.d[0], row, GG_MAX_RANK - t->shape.rank + 1, true);
    return mk2(G, OP_GATHER, t, idx);
}

/* scatter_add(base[V, D...], idx, src): rows of src added at idx.  V is a
 * number >= 2: lone indices of a .gir are drawn from {0, 1}. */
static IrNode *op_scatter(Gen *G)
{
    Want w = {1u << DT_F32, 1, 3, false, false};
    IrNode *base = pick(G, &w);
    int64_t v;
    if (!base || !ir_dim_is_const(base->shape.d[0], &v) || v < 2) {
        IrShape s = rand_shape(G, 1 + (int)below(G, 2));
        s.d[0] = ir_dim_const(chance(G, 0.5) ? 7 : 2);
        base = leaf(G, s);
    }
    int64_t row = numel_of(G, &base->shape) / ir_dim_eval(base->shape.d[0], G->bind);
    IrNode *idx = indices(G, base->shape.d[0], row, GG_MAX_RANK - base->shape.rank + 1, false);
    IrShape ss = idx->shape;
    for (int i = 1; i < base->shape.rank; i++)
        ss.d[ss.rank++] = base->shape.d[i];
    IrNode *src = chance(G, 0.4) ? mk2(G, OP_GATHER, base, idx) : operand(G, DT_F32, ss, false);
    IrNode *in[3] = {base, idx, src};
    return mk(G, OP_SCATTER_ADD, in, 3, NULL, 0, NULL, NULL);
}

/* The i32 scalar input `step`, which autodiff also wires into dropout. */
static IrNode *step_input(Gen *G)
{
    IrNode *s = ir_graph_find(G->g, OP_INPUT, "step");
    if (s)
        return s;
    IrDType dt = DT_I32;
    IrShape sc = scalar_shape();
    s = mk(G, OP_INPUT, NULL, 0, NULL, 0, &dt, &sc);
    s->name = ir_arena_strdup(G->g->arena, "step");
    return s;
}

/* Attributes p and seed of a dropping op (p = 0 sometimes). */
static int drop_attrs(Gen *G, IrAttr *at, bool always)
{
    static const double ps[] = {0.1, 0.25, 0.5, 0.75};
    if (!always && chance(G, 0.6))
        return 0;
    at[0] = ir_attr_float(ATTR_P, chance(G, 0.1) ? 0 : ps[below(G, 4)]);
    at[1] = ir_attr_int(ATTR_SEED, below(G, 1000));
    return 2;
}

static IrNode *op_dropout(Gen *G)
{
    IrNode *in[2] = {pick_f32(G, 0), NULL};
    IrAttr at[2];
    int nat = drop_attrs(G, at, true), nin = 1;
    if (chance(G, 0.3))
        in[nin++] = step_input(G);
    return mk(G, OP_DROPOUT, in, nin, at, nat, NULL, NULL);
}

/* A cast between f32, i32 and bool of an exact value. */
static IrNode *op_cast(Gen *G)
{
    Want w = {1u << DT_F32 | 1u << DT_I32 | 1u << DT_BOOL, 0, GG_MAX_RANK, true, false};
    IrNode *x = pick(G, &w);
    if (!x)
        return NULL;
    IrDType to = (IrDType)((x->dtype + 1 + below(G, 2)) % 3);
    if (to == DT_I32 && I(G, x)->mag > 1e6)
        to = DT_BOOL;
    return cast(G, x, to);
}

static IrNode *op_iota(Gen *G)
{
    IrNode *i = iota(G);
    return chance(G, 0.7) ? cast(G, i, DT_F32) : i;
}

static IrNode *op_const(Gen *G)
{
    IrShape s = rand_shape(G, (int)below(G, 4));
    return konst(G, nice_value(G, DT_F32), DT_F32, s);
}

/* causal_mask then softmax over the keys: x[..., Tq, Tk] with Tq <= Tk at
 * every binding (equal dims, numbers in order, or Tq = 1), so that no row
 * is all -inf. */
static IrNode *op_mask(Gen *G)
{
    IrNode *x = pick_f32(G, 2);
    const IrShape *s = &x->shape;
    int64_t q, k;
    IrDim dq = s->d[s->rank - 2], dk = s->d[s->rank - 1];
    bool ok = ir_dim_eq(dq, dk) || ir_dim_is_one(dq) ||
              (ir_dim_is_const(dq, &q) && ir_dim_is_const(dk, &k) && q <= k);
    if (!ok || ir_dim_is_one(dk)) {
        IrShape t = *s;
        if (ir_dim_is_one(t.d[t.rank - 1]))
            t.d[t.rank - 1] = ir_dim_const(3);
        t.d[t.rank - 2] = t.d[t.rank - 1];
        if (!fits(G, &t))
            return NULL;
        x = operand(G, DT_F32, t, false);
    }
    IrNode *m = mk1(G, OP_CAUSAL_MASK, tame(G, x, 6));
    if (chance(G, 0.3))
        m = mk2(G, OP_MUL, m, scalar(G, 0.5));
    IrAttr a = ir_attr_int(ATTR_AXIS, -1);
    return mk(G, OP_SOFTMAX, &m, 1, &a, 1, NULL, NULL);
}

/* Heads and head size of an attention. */
typedef struct Heads {
    int64_t h, hd, d;    /* d = h * hd */
    double scale;
    IrAttr at[4];
    int nat;
} Heads;

static Heads heads(Gen *G)
{
    static const int64_t hds[] = {1, 2, 3, 4, 8};
    Heads H = {.h = 1 + below(G, 3), .hd = hds[below(G, 5)]};
    H.d = H.h * H.hd;
    H.scale = chance(G, 0.7) ? 1 / sqrt((double)H.hd) : 0.5;
    H.at[H.nat++] = ir_attr_int(ATTR_HEADS, H.h);
    H.at[H.nat++] = ir_attr_float(ATTR_SCALE, H.scale);
    H.nat += drop_attrs(G, H.at + H.nat, false);
    return H;
}

/* x[..., T, C] @ W[C, n]: the projection of an attention. */
static IrNode *project(Gen *G, IrNode *x, int64_t n, bool tb)
{
    IrDim c = x->shape.d[x->shape.rank - 1];
    IrShape ws = {.rank = 2, .d = {tb ? ir_dim_const(n) : c, tb ? c : ir_dim_const(n)}};
    return matmul(G, x, tame(G, leaf(G, ws), 1), false, tb);
}

/* An x[..., T, C] whose qkv [..., T, 3D] and scores [..., H, T, T] fit. */
static IrNode *attention_input(Gen *G, const Heads *H, int rank)
{
    Want w = {1u << DT_F32, rank, rank, false, false};
    IrNode *x = pick(G, &w);
    if (!x)
        x = leaf(G, rand_shape(G, rank));
    const IrShape *s = &x->shape;
    int64_t rows = numel_of(G, s) / ir_dim_eval(s->d[s->rank - 1], G->bind);
    int64_t t = ir_dim_eval(s->d[s->rank - 2], G->bind);
    if (rows * 3 * H->d > GG_MAX_EL || rows * t * H->h > GG_MAX_EL)
        return NULL;
    return tame(G, x, 2);
}

static IrNode *op_attention(Gen *G)
{
    Heads H = heads(G);
    IrNode *x = attention_input(G, &H, 2 + (int)below(G, 3));
    if (!x)
        return NULL;
    IrNode *in[2] = {tame(G, project(G, x, 3 * H.d, chance(G, 0.3)), 2), NULL};
    int nin = 1;
    if (H.nat > 2 && chance(G, 0.3))
        in[nin++] = step_input(G);
    return mk(G, OP_CAUSAL_ATTENTION, in, nin, H.at, H.nat, NULL, NULL);
}

/* The gradient op on values no trainable param reaches (it has no
 * gradient rule of its own): (qkv, causal_attention(qkv), dout).  Its
 * `out` must be that forward output, step included: the interpreter
 * recomputes the weights, codegen reads their softmax term from `out`.
 * With dropout both read the input `step`, here or (when the graph
 * leaves it out) by autodiff in the train step. */
static IrNode *op_attention_grad(Gen *G)
{
    Heads H = heads(G);
    IrShape s = rand_shape(G, 1 + (int)below(G, 3));
    s.d[s.rank++] = ir_dim_const(3 * H.d);
    int64_t t = ir_dim_eval(s.d[s.rank - 2], G->bind);
    if (numel_of(G, &s) > GG_MAX_EL || numel_of(G, &s) / (3 * H.d) * t * H.h > GG_MAX_EL)
        return NULL;
    IrNode *in[4] = {input(G, "x", DT_F32, s)};
    IrNode *step = H.nat > 2 && chance(G, 0.5) ? step_input(G) : NULL;
    IrNode *fwd[2] = {in[0], step};
    in[1] = mk(G, OP_CAUSAL_ATTENTION, fwd, step ? 2 : 1, H.at, H.nat, NULL, NULL);
    Want w = {1u << DT_F32, 0, GG_MAX_RANK, false, true};
    in[2] = find(G, DT_F32, &in[1]->shape, false);
    if (!in[2] || !wanted(G, in[2], &w))
        in[2] = input(G, "x", DT_F32, in[1]->shape);
    in[3] = step;
    return mk(G, OP_CAUSAL_ATTENTION_GRAD, in, step ? 4 : 3, H.at, H.nat, NULL, NULL);
}

/* [b, t, D] -> [b, H, t, hd] and back. */
static IrNode *split_heads(Gen *G, IrNode *x, const Heads *H)
{
    IrShape s = {.rank = 4, .d = {x->shape.d[0], x->shape.d[1], ir_dim_const(H->h),
                                  ir_dim_const(H->hd)}};
    IrAttr p = ir_attr_ints(ATTR_PERM, (int64_t[]){0, 2, 1, 3}, 4);
    return mk(G, OP_TRANSPOSE, (IrNode *[]){mk(G, OP_RESHAPE, &x, 1, NULL, 0, &x->dtype, &s)},
              1, &p, 1, NULL, NULL);
}

static IrNode *merge_heads(Gen *G, IrNode *o, const Heads *H)
{
    IrAttr p = ir_attr_ints(ATTR_PERM, (int64_t[]){0, 2, 1, 3}, 4);
    IrNode *t = mk(G, OP_TRANSPOSE, &o, 1, &p, 1, NULL, NULL);
    IrShape s = {.rank = 3, .d = {t->shape.d[0], t->shape.d[1], ir_dim_const(H->d)}};
    return mk(G, OP_RESHAPE, &t, 1, NULL, 0, &t->dtype, &s);
}

/* q, k, v [b, t, D]: three nn.Linear projections (the attention pass
 * merges them), or slices of one. */
static void qkv_of(Gen *G, IrNode *x, const Heads *H, IrNode **qkv)
{
    if (chance(G, 0.5)) {
        for (int k = 0; k < 3; k++) {
            qkv[k] = project(G, x, H->d, true);
            if (chance(G, 0.3))
                qkv[k] = mk2(G, OP_ADD, qkv[k], param(G, ir_shape_ints(1, &H->d)));
            qkv[k] = tame(G, qkv[k], 2);
        }
        return;
    }
    IrNode *all = tame(G, project(G, x, 3 * H->d, false), 2);
    for (int k = 0; k < 3; k++)
        qkv[k] = slice_at(G, all, 2, k * H->d, (k + 1) * H->d);
}

/* The book's attention in primitives, which the attention pass rewrites
 * (or refuses, when the scale comes before the mask). */
static IrNode *op_attention_chain(Gen *G)
{
    Heads H = heads(G);
    IrNode *x = attention_input(G, &H, 3), *qkv[3];
    if (!x)
        return NULL;
    qkv_of(G, x, &H, qkv);
    IrNode *q = split_heads(G, qkv[0], &H), *k = split_heads(G, qkv[1], &H);
    IrNode *v = split_heads(G, qkv[2], &H);
    IrNode *s = matmul(G, q, k, false, true), *c = scalar(G, H.scale);
    bool mask_first = chance(G, 0.8);
    s = mask_first ? mk2(G, OP_MUL, mk1(G, OP_CAUSAL_MASK, s), c)
                   : mk1(G, OP_CAUSAL_MASK, mk2(G, OP_MUL, s, c));
    IrAttr ax = ir_attr_int(ATTR_AXIS, -1);
    IrNode *w = mk(G, OP_SOFTMAX, &s, 1, &ax, 1, NULL, NULL);
    if (H.nat > 2)
        w = mk(G, OP_DROPOUT, &w, 1, H.at + 2, 2, NULL, NULL);
    return merge_heads(G, matmul(G, w, v, false, false), &H);
}

/* cross_entropy(logits[..., V], targets): a term of the loss. */
static IrNode *op_xent(Gen *G)
{
    IrNode *x = pick_f32(G, 1);
    if (!wide_last(x) || !I(G, x)->vlast)
        return NULL;
    x = tame(G, x, 6);
    IrShape ts = x->shape;
    ts.rank--;
    IrNode *t = index_input(G, ts, x->shape.d[x->shape.rank - 1]);
    IrAttr a = ir_attr_int(ATTR_IGNORE_INDEX, chance(G, 0.5) ? 0 : -100);
    IrNode *in[2] = {x, t};
    IrNode *l = mk(G, OP_CROSS_ENTROPY, in, 2, &a, chance(G, 0.6), NULL, NULL);
    if (G->nloss < 8)
        G->loss[G->nloss++] = l;
    return l;
}

/* ---------------------------------------------------------------- the graph */

typedef IrNode *(*Family)(Gen *G);

static const struct {
    Family f;
    int weight;
} families[] = {
    {op_unary, 10},  {op_binary, 14},  {op_int, 4},      {op_where, 5},
    {op_reduce, 8},  {op_softmax, 5},  {op_layernorm, 4}, {op_matmul, 8},
    {op_view, 12},   {op_concat, 4},   {op_gather, 3},    {op_scatter, 2},
    {op_dropout, 3}, {op_cast, 3},     {op_iota, 2},      {op_const, 1},
    {op_mask, 2},    {op_attention, 2}, {op_attention_chain, 2},
    {op_attention_grad, 1}, {op_xent, 2},
};
#define NFAMILIES (int)(sizeof families / sizeof families[0])

static void step(Gen *G)
{
    int total = 0;
    for (int k = 0; k < NFAMILIES; k++)
        total += families[k].weight;
    int r = (int)below(G, (uint32_t)total), k = 0;
    while (r >= families[k].weight)
        r -= families[k++].weight;
    families[k].f(G);
}

/* A value no one reads yet (the last ones first), else any. */
static IrNode *sink(Gen *G, const Want *w)
{
    for (int i = G->g->nnodes - 1; i >= 0; i--) {
        IrNode *n = G->g->nodes[i];
        if (!I(G, n)->uses && ir_ops[n->op].kind != OPK_SOURCE && wanted(G, n, w) &&
            chance(G, 0.7))
            return n;
    }
    return pick(G, w);
}

/* sum (or mean) of v times random weights: a loss term whose gradient is
 * not degenerate (the gradient of sum(softmax(x)) is zero, for one). */
static IrNode *loss_term(Gen *G, IrNode *v)
{
    IrNode *w = input(G, "lw", DT_F32, v->shape);
    return reduce_all(G, chance(G, 0.5) ? OP_SUM : OP_MEAN, mk2(G, OP_MUL, tame(G, v, 1e3), w));
}

static IrNode *named(Gen *G, IrNode *n, const char *name)
{
    n->name = ir_arena_strdup(G->g->arena, name);
    return n;
}

/* 8 + sum(tanh(w) * lw) for a new trainable w of a few elements: a loss
 * term whose gradient is of order 1, and a loss far from 0 (a loss that
 * cancels to near 0 would judge float32 rounding against itself).  Its
 * nodes are named anchor.*: the shrinker keeps them. */
static IrNode *anchor(Gen *G)
{
    IrShape s = {.rank = 1, .d = {ir_dim_const(1 + below(G, 7))}};
    IrNode *p = new_param(G, s, false);
    IrNode *t = named(G, mk1(G, OP_TANH, p), "anchor.tanh");
    IrNode *m = named(G, mk2(G, OP_MUL, t, input(G, "lw", DT_F32, s)), "anchor.mul");
    IrNode *r = named(G, reduce_all(G, OP_SUM, m), "anchor.sum");
    return named(G, mk2(G, OP_ADD, r, scalar(G, 8)), "anchor");
}

/* The scalar output "loss": the anchor, terms of values that depend on
 * params, and the cross-entropies.  With the anchor's gradient of order
 * 1, verify judges the other gradients against that scale (its group
 * floor) even when they vanish in exact arithmetic. */
static void add_loss(Gen *G)
{
    Want w = {1u << DT_F32, 0, GG_MAX_RANK, false, false};
    IrNode *v[3];
    int n = 1 + (int)below(G, 3);
    for (int k = 0; k < n; k++)
        v[k] = sink(G, &w);
    IrNode *loss = anchor(G);
    for (int k = 0; k < n; k++)
        if (v[k] && I(G, v[k])->dep)
            loss = named(G, mk2(G, OP_ADD, loss, loss_term(G, v[k])), "loss.sum");
    for (int k = 0; k < G->nloss; k++)
        loss = named(G, mk2(G, OP_ADD, loss, G->loss[k]), "loss.sum");
    ir_graph_add_output(G->g, "loss", loss);
}

/* A transpose that keeps the order, a broadcast that adds nothing:
 * simplify makes a view of either. */
static bool no_op_move(const IrNode *n)
{
    if (n->op == OP_BROADCAST)
        return ir_shape_eq(&n->shape, &n->in[0]->shape);
    if (n->op != OP_TRANSPOSE)
        return false;
    const IrAttr *p = ir_node_attr(n, ATTR_PERM);
    for (int i = 0; p && i < p->n; i++)
        if (p->i[i] != i)
            return false;
    return true;
}

bool gg_source_view(const IrNode *n)
{
    while (n->op == OP_RESHAPE || n->op == OP_SLICE || no_op_move(n))
        n = n->in[0];
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

/* Outputs y0.. (any dtype, sometimes a view or a source), and now and
 * then an output named like an input, which the runtime writes back. */
static void add_outputs(Gen *G)
{
    Want any = {1u << DT_F32 | 1u << DT_I32 | 1u << DT_BOOL, 0, GG_MAX_RANK, false, false};
    char name[32];
    for (int k = 0, n = 1 + (int)below(G, 3); k < n; k++) {
        IrNode *v = chance(G, 0.8) ? sink(G, &any) : pick(G, &any);
        snprintf(name, sizeof name, "y%d", k);
        if (v && (G->avoid & GG_AVOID_SOURCE_OUTPUTS) && gg_source_view(v))
            v = NULL; /* open runtime bug: see GG_AVOID_SOURCE_OUTPUTS */
        if (v)
            ir_graph_add_output(G->g, name, v);
    }
    for (int i = 0; i < G->g->nnodes && chance(G, 0.15); i++) {
        IrNode *x = G->g->nodes[below(G, (uint32_t)G->g->nnodes)];
        bool f32_input = x->op == OP_INPUT && x->dtype == DT_F32;
        IrNode *v = f32_input ? find(G, DT_F32, &x->shape, false) : NULL;
        if (v && v != x) {
            ir_graph_add_output(G->g, x->name, mk2(G, OP_ADD, v, x));
            break;
        }
    }
}

static void pick_binding(Gen *G, GgBinding *b)
{
    static const int64_t seqs[] = {1, 2, 3, 5, 7, 8, 13};
    b->batch = 1 + below(G, 3);
    b->seq = seqs[below(G, 7)];
    if (chance(G, 0.55)) {
        G->bind[ir_graph_sym(G->g, "B")] = b->batch;
        G->bind[ir_graph_sym(G->g, "T")] = b->seq;
    }
}

IrGraph *gg_generate(uint64_t seed, unsigned avoid, GgBinding *b, GgCoverage *cov)
{
    Gen G = {.avoid = avoid};
    ir_rng_init(&G.r, seed);
    G.g = ir_graph_new("fuzz");
    pick_binding(&G, b);
    for (int n = 6 + (int)below(&G, 30); n > 0; n--)
        step(&G);
    add_outputs(&G);
    add_loss(&G);
    gg_cover(G.g, cov);
    free(G.info);
    return G.g;
}

void gg_cover(const IrGraph *g, GgCoverage *cov)
{
    for (int i = 0; cov && i < g->nnodes; i++)
        cov->count[g->nodes[i]->op]++;
}
