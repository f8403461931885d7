/* test_lower.c — the lowering (codegen/cg_lower*.c): JIT kernels against the
 * reference interpreter for every op, plus vector width, cache and errors.
 *
 * A small local driver stands in for the runtime: it compiles a graph with
 * cg_program_compile, gives every node its own malloc'd buffer (aliases
 * share their owner's), fills inputs with seeded random data (the same
 * values, rounded to float, go to the interpreter), and runs the kernels
 * in node order.  Each parallel kernel runs twice: once over its whole
 * range and once split in three uneven parts, and the two results must be
 * bit-identical (the threading contract).  Then every node's value is
 * compared with ir_interp_value.
 *
 * Tolerance: element i passes when |jit - ref| <= rtol * (|ref_i| + rms),
 * rms being the root mean square of the node's finite reference values;
 * rtol is 1e-5 (float rounding, a few ulp per op, summation over up to
 * 10^5 elements).  Infinities must match exactly, NaN must be NaN; i32 and
 * bool values must be equal.
 *
 * Coverage: every op a test runs successfully is marked; the last test
 * fails for any op in ops.def that has neither been tested nor been put on
 * the not_yet_lowered list below (where ops added after the lowering was
 * written wait for theirs, printed on every run).
 */
#include "codegen/cg_lower.h"
#include "frontend/fe.h"
#include "passes/pass.h"
#include "testlib.h"

#include <cblas.h>

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

/* Ops added to ops.def after the lowering; each should get a lowering
 * and a test here.  Listed by name so that this file compiles before and
 * after the op exists. */
static const char *const not_yet_lowered[] = {
    NULL,
};

static bool tested[OP_COUNT];
static char cache_dir[64];
static uint64_t rng_state = 0x12345678abcdefull;

/* ---------------------------------------------------------------- random data */

static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1p-53;
}

/* How to fill an input: uniform in [lo, hi) (integers for i32, p(1) = lo
 * for bool); `quant` rounds f32 values to multiples of it (for eq tests). */
typedef struct Gen {
    const char *name;
    double lo, hi, quant;
} Gen;

static const Gen *gen_find(const Gen *gens, const char *name)
{
    for (int i = 0; gens && gens[i].name; i++)
        if (!strcmp(gens[i].name, name))
            return &gens[i];
    return NULL;
}

static double gen_value(const Gen *g, IrDType dt)
{
    double lo = g ? g->lo : dt == DT_I32 ? 0 : dt == DT_BOOL ? 0.5 : -1;
    double hi = g ? g->hi : dt == DT_I32 ? 4 : 1;
    if (dt == DT_BOOL)
        return urand() < lo;
    if (dt == DT_I32)
        return floor(lo + urand() * (hi - lo));
    double v = (double)(float)(lo + urand() * (hi - lo));
    return g && g->quant > 0 ? g->quant * round(v / g->quant) : v;
}

/* ---------------------------------------------------------------- buffers */

static double buf_get(const void *buf, IrDType dt, int64_t i)
{
    if (dt == DT_F32)
        return ((const float *)buf)[i];
    if (dt == DT_I32)
        return ((const int32_t *)buf)[i];
    return ((const uint8_t *)buf)[i];
}

static void buf_set(void *buf, IrDType dt, int64_t i, double v)
{
    if (dt == DT_F32)
        ((float *)buf)[i] = (float)v;
    else if (dt == DT_I32)
        ((int32_t *)buf)[i] = (int32_t)v;
    else
        ((uint8_t *)buf)[i] = v != 0;
}

/* ---------------------------------------------------------------- the driver */

typedef struct Run {
    IrGraph *g;
    CgProgram *p;
    IrInterp *it;
    void **slots;
    bool ok;
} Run;

static void run_free(Run *r)
{
    for (int i = 0; r->slots && r->p && i < r->p->nnodes; i++)
        if (r->p->nodes[i].kind != CG_ALIAS)
            free(r->slots[i]);
    free(r->slots);
    ir_interp_free(r->it);
    cg_program_free(r->p);
    ir_graph_free(r->g);
}

/* Fills source node i in the JIT buffer and the interpreter alike. */
static bool fill_source(Run *r, const IrNode *n, const Gen *gens, IrError *err)
{
    int64_t dim[IR_MAX_RANK];
    for (int d = 0; d < n->shape.rank; d++)
        dim[d] = ir_dim_eval(n->shape.d[d], r->p->binding);
    IrTensor *t = ir_tensor_new(n->dtype, n->shape.rank, dim);
    const Gen *g = gen_find(gens, n->name);
    for (int64_t i = 0; i < t->numel; i++) {
        t->data[i] = gen_value(g, n->dtype);
        buf_set(r->slots[n->index], n->dtype, i, t->data[i]);
    }
    bool ok = ir_interp_set(r->it, n->name, t, err);
    ir_tensor_free(t);
    return ok;
}

static bool alloc_slots(Run *r)
{
    r->slots = calloc(r->p->nnodes, sizeof *r->slots);
    for (int i = 0; i < r->p->nnodes; i++) {
        const CgNodeCode *c = &r->p->nodes[i];
        if (c->kind == CG_ALIAS)
            r->slots[i] = (char *)r->slots[c->alias_of] + c->alias_off;
        else
            r->slots[i] = malloc(c->bytes ? c->bytes : 1);
    }
    return true;
}

/* Runs kernel i whole, then in three uneven parts: results must agree bit for bit. */
static void run_kernel(Run *r, int i)
{
    const CgNodeCode *c = &r->p->nodes[i];
    c->fn(r->slots, 0, c->extent);
    if (!c->parallel || c->extent < 2)
        return;
    void *whole = malloc(c->bytes);
    memcpy(whole, r->slots[i], c->bytes);
    memset(r->slots[i], 0x7f, c->bytes);
    int64_t a = c->extent / 3, b = c->extent - c->extent / 4;
    c->fn(r->slots, 0, a);
    c->fn(r->slots, a, b);
    c->fn(r->slots, b, c->extent);
    bool same = memcmp(whole, r->slots[i], c->bytes) == 0;
    CHECK(same);
    if (!same)
        fprintf(stderr, "  %%%d %s: split run differs from the whole run\n", i, c->symbol);
    free(whole);
}

/* Compiles g, runs JIT and interpreter on the same random inputs. */
static bool run_graph(Run *r, IrGraph *g, const int64_t *binding, const Gen *gens)
{
    IrError err = {0};
    memset(r, 0, sizeof *r);
    r->g = g;
    CgOptions o = {.no_cache = true, .own_buffers = true}; /* the cache has its own test */
    r->p = cg_program_compile(g, binding, &o, &err);
    r->it = r->p ? ir_interp_new(g, binding, 7, &err) : NULL;
    bool ok = r->p && r->it && alloc_slots(r);
    for (int i = 0; ok && i < g->nnodes; i++)
        if (r->p->nodes[i].kind == CG_SOURCE)
            ok = fill_source(r, g->nodes[i], gens, &err);
    ok = ok && ir_interp_run(r->it, &err);
    for (int i = 0; ok && i < g->nnodes; i++)
        if (r->p->nodes[i].kind == CG_KERNEL)
            run_kernel(r, i);
    if (!ok)
        fprintf(stderr, "  graph %s: %s\n", g->name, err.msg);
    CHECK(ok);
    r->ok = ok;
    return ok;
}

/* ---------------------------------------------------------------- comparing */

static double rms_of(const IrTensor *t)
{
    double s = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < t->numel; i++)
        if (isfinite(t->data[i])) {
            s += t->data[i] * t->data[i];
            n++;
        }
    return n ? sqrt(s / n) : 0;
}

static bool elem_ok(double jit, double ref, double tol)
{
    if (isnan(ref))
        return isnan(jit);
    if (isinf(ref))
        return jit == ref;
    return fabs(jit - ref) <= tol;
}

/* Compares node n; returns the worst |err| / (|ref| + rms). */
static double check_node(Run *r, const IrNode *n, double rtol)
{
    const IrTensor *t = ir_interp_value(r->it, n);
    double rms = rms_of(t), worst = 0;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < t->numel; i++) {
        double jit = buf_get(r->slots[n->index], n->dtype, i), ref = t->data[i];
        if (n->dtype == DT_F32)
            ref = (float)ref; /* the interpreter does not round f32 values */
        double scale = fabs(ref) + rms;
        double tol = n->dtype == DT_F32 ? rtol * scale : 0;
        if (!elem_ok(jit, ref, tol)) {
            bad++;
            first = first < 0 ? i : first;
        } else if (isfinite(ref) && scale > 0)
            worst = fmax(worst, fabs(jit - ref) / scale);
    }
    CHECK(bad == 0);
    if (bad)
        fprintf(stderr, "  %s %%%d %s: %lld of %lld elements off, first [%lld] jit %.9g ref %.9g\n",
                r->g->name, n->index, ir_op_name(n->op), (long long)bad, (long long)t->numel,
                (long long)first, buf_get(r->slots[n->index], n->dtype, first), t->data[first]);
    return bad ? INFINITY : worst;
}

static double worst_seen[OP_COUNT];

/* Checks every node of a run and marks the ops that passed. */
static void check_run(Run *r, double rtol)
{
    for (int i = 0; r->ok && i < r->g->nnodes; i++) {
        const IrNode *n = r->g->nodes[i];
        double w = check_node(r, n, rtol);
        if (isfinite(w))
            tested[n->op] = true;
        if (isfinite(w) && rtol <= 1e-5) /* op tests, not whole models */
            worst_seen[n->op] = fmax(worst_seen[n->op], w);
    }
}

/* Builds, runs, checks and frees in one go. */
static void verify(IrGraph *g, const int64_t *binding, const Gen *gens, double rtol)
{
    Run r;
    if (run_graph(&r, g, binding, gens))
        check_run(&r, rtol);
    run_free(&r);
}

/* ---------------------------------------------------------------- builders */

static IrShape shp(int rank, const int64_t *d)
{
    return ir_shape_ints(rank, d);
}

#define SH(...) \
    shp((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define SCALAR ir_shape_ints(0, NULL)

static IrNode *in_f32(IrGraph *g, const char *name, IrShape s)
{
    return ir_input(g, name, DT_F32, s);
}

static IrNode *op_given(IrGraph *g, IrOp op, IrNode *a, IrDType dt, const IrShape *s)
{
    IrError err = {0};
    IrNode *n = ir_node_new(g, op, &a, 1, NULL, 0, &dt, s, &err);
    if (!n)
        fprintf(stderr, "  builder: %s\n", err.msg);
    IR_ASSERT(n);
    return n;
}

static IrNode *op_n(IrGraph *g, IrOp op, IrNode *const *in, int nin, const IrAttr *a, int na)
{
    IrError err = {0};
    IrNode *n = ir_node_new(g, op, in, nin, a, na, NULL, NULL, &err);
    if (!n)
        fprintf(stderr, "  builder: %s\n", err.msg);
    IR_ASSERT(n);
    return n;
}

static const int64_t odd_sizes[] = {1, 3, 17, 1000, 1023};
#define NODD 5

/* ---------------------------------------------------------------- elementwise */

static void unary_case(IrOp op, IrShape s, double lo, double hi)
{
    IrGraph *g = ir_graph_new(ir_op_name(op));
    IrNode *x = in_f32(g, "x", s);
    ir_graph_add_output(g, "y", ir_unary(g, op, x));
    Gen gens[] = {{"x", lo, hi, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(unary_f32)
{
    static const struct { IrOp op; double lo, hi; } ops[] = {
        {OP_NEG, -5, 5}, {OP_EXP, -20, 20}, {OP_LOG, 1e-3, 100}, {OP_SQRT, 0, 100},
        {OP_RSQRT, 1e-3, 100}, {OP_TANH, -6, 6}, {OP_RECIP, 0.1, 10}, {OP_ABS, -3, 3},
        {OP_RELU, -3, 3}, {OP_GELU, -8, 8}, {OP_SIN, -10, 10}, {OP_COS, -10, 10},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        for (int s = 0; s < NODD; s++)
            unary_case(ops[i].op, SH(odd_sizes[s]), ops[i].lo, ops[i].hi);
    unary_case(OP_TANH, SH(7, 1023), -0.5, 0.5);  /* the series branch */
    unary_case(OP_EXP, SH(1000), -120, 100);      /* underflow to 0 and overflow to inf */
    unary_case(OP_LOG, SH(1000), -1, 1);          /* NaN for negatives */
    unary_case(OP_GELU, SH(3, 17), -30, 30);
}

/* exp/log/tanh/gelu over wide ranges against double: max error in ulp. */
static double max_ulp_err(IrOp op, double lo, double hi, bool logscale)
{
    IrGraph *g = ir_graph_new("ulp");
    enum { N = 20000 };
    IrNode *x = in_f32(g, "x", SH(N));
    ir_unary(g, op, x);
    Run r;
    Gen gens[] = {{"x", lo, hi, 0}, {0}};
    double worst = 0;
    if (run_graph(&r, g, NULL, gens)) {
        for (int64_t i = 0; i < N; i++) {
            double in = buf_get(r.slots[0], DT_F32, i);
            if (logscale) { /* spread over many binades: x = 2^in */
                in = (float)exp2(in);
                ((float *)r.slots[0])[i] = (float)in;
            }
            (void)in;
        }
        if (logscale)
            r.p->nodes[1].fn(r.slots, 0, r.p->nodes[1].extent);
        for (int64_t i = 0; i < N; i++) {
            double in = ((float *)r.slots[0])[i], ref;
            ref = op == OP_EXP ? exp(in) : op == OP_LOG ? log(in) : op == OP_TANH ? tanh(in)
                : op == OP_SIN ? sin(in) : op == OP_COS ? cos(in)
                : 0.5 * in * (1 + tanh(sqrt(2 / M_PI) * (in + 0.044715 * in * in * in)));
            double got = ((float *)r.slots[1])[i];
            if (!isfinite(ref) || fabs(ref) < 0x1p-126)
                continue;
            float a = (float)fabs(ref);
            worst = fmax(worst, fabs(got - ref) / (nextafterf(a, INFINITY) - a));
        }
    }
    run_free(&r);
    return worst;
}

TEST(math_accuracy)
{
    double e = max_ulp_err(OP_EXP, -87, 88, false);
    double l = max_ulp_err(OP_LOG, -140, 127, true);
    double t = max_ulp_err(OP_TANH, -9, 9, false);
    double t0 = max_ulp_err(OP_TANH, -0.6, 0.6, false);
    double ge = max_ulp_err(OP_GELU, -3, 10, false);
    double sn = max_ulp_err(OP_SIN, -1000, 1000, false);
    double cs = max_ulp_err(OP_COS, -1000, 1000, false);
    printf("  max error (ulp): exp %.2f, log %.2f, tanh %.2f (near 0: %.2f), gelu %.2f, sin %.2f, "
           "cos %.2f\n", e, l, t, t0, ge, sn, cs);
    CHECK(e <= 4 && l <= 4 && t <= 4 && t0 <= 4 && sn <= 4 && cs <= 4);
    CHECK(ge <= 12); /* for x < 0 the rounding of u is amplified by 2|u| */
}

TEST(unary_i32)
{
    IrOp ops[] = {OP_NEG, OP_ABS, OP_RELU};
    for (int i = 0; i < 3; i++) {
        IrGraph *g = ir_graph_new("unary_i32");
        IrNode *x = ir_input(g, "x", DT_I32, SH(3, 17));
        ir_unary(g, ops[i], x);
        Gen gens[] = {{"x", -1000, 1000, 0}, {0}};
        verify(g, NULL, gens, 0);
    }
}

/* Shape pairs that broadcast (numpy), odd sizes included. */
static const struct { int ra; int64_t a[4]; int rb; int64_t b[4]; } bpairs[] = {
    {1, {17}, 1, {17}},          {2, {3, 17}, 1, {17}},        {2, {3, 1}, 2, {1, 17}},
    {3, {2, 3, 4}, 2, {3, 1}},   {1, {1}, 1, {1000}},          {1, {1023}, 1, {1}},
    {3, {5, 1, 7}, 3, {1, 6, 1}}, {0, {0}, 2, {3, 3}},         {4, {2, 1, 3, 17}, 3, {4, 1, 17}},
    {2, {1000, 3}, 2, {1000, 1}},
};
#define NPAIRS (int)(sizeof bpairs / sizeof bpairs[0])

static void binary_case(IrOp op, IrDType dt, int p, double lo, double hi, double blo, double bhi)
{
    IrGraph *g = ir_graph_new(ir_op_name(op));
    IrNode *a = ir_input(g, "a", dt, shp(bpairs[p].ra, bpairs[p].a));
    IrNode *b = ir_input(g, "b", dt, shp(bpairs[p].rb, bpairs[p].b));
    ir_graph_add_output(g, "y", ir_binary(g, op, a, b));
    double q = op == OP_EQ || op == OP_LE ? 0.25 : 0;
    Gen gens[] = {{"a", lo, hi, q}, {"b", blo, bhi, q}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(binary_f32_broadcast)
{
    IrOp ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAXIMUM, OP_MINIMUM, OP_LT, OP_LE, OP_EQ};
    for (int i = 0; i < 9; i++)
        for (int p = 0; p < NPAIRS; p++)
            binary_case(ops[i], DT_F32, p, -1, 1, ops[i] == OP_DIV ? 0.5 : -1,
                        ops[i] == OP_DIV ? 2 : 1);
}

TEST(binary_i32)
{
    IrOp ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAXIMUM, OP_MINIMUM, OP_LT, OP_LE, OP_EQ};
    for (int i = 0; i < 9; i++)
        for (int p = 0; p < NPAIRS; p += 3)
            binary_case(ops[i], DT_I32, p, -50, 50, ops[i] == OP_DIV ? 1 : -5, 6);
    binary_case(OP_DIV, DT_I32, 0, -50, 50, -7, -1); /* negative divisors: toward zero */
}

/* NaN propagates through maximum/minimum (interpreter semantics). */
TEST(nan_semantics)
{
    IrGraph *g = ir_graph_new("nan");
    IrNode *a = in_f32(g, "a", SH(17)), *b = in_f32(g, "b", SH(17));
    IrNode *z = ir_const(g, 0, DT_F32, SH(17));
    IrNode *nan = ir_unary(g, OP_LOG, ir_binary(g, OP_SUB, z, ir_unary(g, OP_ABS, a)));
    ir_binary(g, OP_MAXIMUM, nan, b);
    ir_binary(g, OP_MINIMUM, b, nan);
    ir_unary(g, OP_RELU, nan);
    int ax[1] = {0};
    ir_reduce(g, OP_MAX, nan, ax, 1, false);
    Gen gens[] = {{"a", 0.5, 1, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(where_and_compare)
{
    IrGraph *g = ir_graph_new("where");
    IrNode *a = in_f32(g, "a", SH(3, 1, 17)), *b = in_f32(g, "b", SH(5, 1));
    IrNode *c = ir_input(g, "c", DT_BOOL, SH(5, 17));
    IrNode *in[3] = {c, a, b};
    op_n(g, OP_WHERE, in, 3, NULL, 0);
    IrNode *lt = ir_binary(g, OP_LT, a, b);
    IrNode *in2[3] = {lt, b, a};
    op_n(g, OP_WHERE, in2, 3, NULL, 0);
    IrNode *ia = ir_input(g, "ia", DT_I32, SH(1000)), *ib = ir_input(g, "ib", DT_I32, SH(1));
    IrNode *in3[3] = {ir_binary(g, OP_EQ, ia, ib), ia, ib};
    op_n(g, OP_WHERE, in3, 3, NULL, 0);
    IrNode *bb = ir_input(g, "bb", DT_BOOL, SH(17));
    ir_binary(g, OP_LT, c, bb);
    ir_binary(g, OP_EQ, c, bb);
    verify(g, NULL, NULL, 1e-5);
}

static void cast_case(IrDType from, IrDType to, double lo, double hi, double q)
{
    IrGraph *g = ir_graph_new("cast");
    IrShape s = SH(3, 1023);
    IrNode *x = ir_input(g, "x", from, s);
    op_given(g, OP_CAST, x, to, &s);
    Gen gens[] = {{"x", lo, hi, q}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(cast)
{
    IrDType dts[3] = {DT_F32, DT_I32, DT_BOOL};
    for (int to = 0; to < 3; to++) {
        cast_case(DT_F32, dts[to], -1e10, 1e10, 0); /* saturates to the i32 range */
        cast_case(DT_F32, dts[to], -100, 100, 0.25); /* truncation toward zero, zeros */
        cast_case(DT_I32, dts[to], -2e9, 2e9, 0);
        cast_case(DT_I32, dts[to], -3, 3, 0);
        cast_case(DT_BOOL, dts[to], 0.3, 1, 0);
    }
}

/* ---------------------------------------------------------------- dropout */

static IrNode *dropout(IrGraph *g, IrNode *x, IrNode *step, double p, int64_t seed)
{
    IrAttr a[2] = {ir_attr_float(ATTR_P, p), ir_attr_int(ATTR_SEED, seed)};
    IrNode *in[2] = {x, step};
    return op_n(g, OP_DROPOUT, in, step ? 2 : 1, a, 2);
}

/* The keep mask must match the interpreter's bit for bit. */
static void check_mask(Run *r, const IrNode *n)
{
    const IrTensor *t = ir_interp_value(r->it, n);
    int64_t diff = 0, zeros = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        bool jz = buf_get(r->slots[n->index], DT_F32, i) == 0;
        diff += jz != (t->data[i] == 0);
        zeros += jz;
    }
    CHECK(diff == 0);
    if (diff)
        fprintf(stderr, "  dropout %%%d: %lld mask bits differ (%lld zeros)\n", n->index,
                (long long)diff, (long long)zeros);
}

TEST(dropout)
{
    IrGraph *g = ir_graph_new("dropout");
    IrNode *x = in_f32(g, "x", SH(3, 1023));
    IrNode *step = ir_input(g, "step", DT_I32, SCALAR);
    IrNode *d[6] = {dropout(g, x, NULL, 0.1, 42), dropout(g, x, step, 0.5, 7),
                    dropout(g, x, step, 0.0, 7), dropout(g, x, step, 1.0, 7),
                    dropout(g, x, step, 0.3, -5),
                    dropout(g, x, step, 0.5, 8)}; /* shares d[1]'s body, not its seed */
    Gen gens[] = {{"x", 0.5, 2, 0}, {"step", 5, 100000, 0}, {0}};
    Run r;
    if (run_graph(&r, g, NULL, gens)) {
        check_run(&r, 1e-6);
        for (int i = 0; i < 6; i++)
            check_mask(&r, d[i]);
    }
    run_free(&r);
}

/* ---------------------------------------------------------------- reductions */

static void reduce_case(IrOp op, IrDType dt, IrShape s, const int *axes, int nax, bool keep,
                        double lo, double hi)
{
    IrGraph *g = ir_graph_new(ir_op_name(op));
    IrNode *x = ir_input(g, "x", dt, s);
    ir_reduce(g, op, x, axes, nax, keep);
    Gen gens[] = {{"x", lo, hi, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(reduce_every_axis)
{
    IrOp ops[3] = {OP_SUM, OP_MAX, OP_MEAN};
    for (int o = 0; o < 3; o++)
        for (int mask = 0; mask < 8; mask++)
            for (int keep = 0; keep < 2; keep++) {
                int ax[3], n = 0;
                for (int d = 0; d < 3; d++)
                    if (mask >> d & 1)
                        ax[n++] = d - (d == 2 && mask == 4 ? 3 : 0); /* -1 once */
                reduce_case(ops[o], DT_F32, SH(3, 17, 5), ax, n, keep, -1, 1);
            }
}

TEST(reduce_layouts)
{
    IrOp ops[3] = {OP_SUM, OP_MAX, OP_MEAN};
    for (int o = 0; o < 3; o++) {
        reduce_case(ops[o], DT_F32, SH(1000, 17), (int[]){0}, 1, false, -1, 1);     /* outer */
        reduce_case(ops[o], DT_F32, SH(17, 1023), (int[]){1}, 1, true, -1, 1);      /* inner */
        reduce_case(ops[o], DT_F32, SH(3, 1000, 300), (int[]){1}, 1, false, -1, 1); /* tiles */
        reduce_case(ops[o], DT_F32, SH(2, 1023, 3), (int[]){0, 2}, 2, false, -1, 1);
        reduce_case(ops[o], DT_F32, SH(5, 3, 1023), (int[]){0, 2}, 2, true, -1, 1);
        reduce_case(ops[o], DT_F32, SH(12289), NULL, 0, false, -1, 1);
        reduce_case(ops[o], DT_F32, SH(1, 1, 1), NULL, 0, true, -1, 1);
        reduce_case(ops[o], DT_F32, SH(3, 1, 17), (int[]){1}, 1, false, -1, 1);
    }
    for (int o = 0; o < 2; o++) {
        reduce_case(ops[o], DT_I32, SH(17, 33), (int[]){0}, 1, false, -1000, 1000);
        reduce_case(ops[o], DT_I32, SH(17, 33), (int[]){1}, 1, false, -1000, 1000);
        reduce_case(ops[o], DT_I32, SH(4, 300, 3), (int[]){0, 2}, 2, false, -1000, 1000);
    }
}

/* A sum of 2^20 values near 1: a plain float loop is off by ~1e-3
 * relative; the blocked, compensated scheme must stay within 1e-6. */
static double sum_rel_err(IrShape s, const int *axes, int nax)
{
    IrGraph *g = ir_graph_new("sum_acc");
    IrNode *x = in_f32(g, "x", s);
    IrNode *y = ir_reduce(g, OP_SUM, x, axes, nax, false);
    Gen gens[] = {{"x", 1, 1.001, 0}, {0}};
    Run r;
    double worst = INFINITY;
    if (run_graph(&r, g, NULL, gens)) {
        const IrTensor *t = ir_interp_value(r.it, y);
        worst = 0;
        for (int64_t i = 0; i < t->numel; i++)
            worst = fmax(worst,
                         fabs(buf_get(r.slots[y->index], DT_F32, i) - t->data[i]) / t->data[i]);
    }
    run_free(&r);
    return worst;
}

TEST(sum_accuracy)
{
    double inner = sum_rel_err(SH(1 << 20), NULL, 0);
    double outer = sum_rel_err(SH(1 << 16, 16), (int[]){0}, 1);
    printf("  sum of 2^20 values near 1: relative error %.2e (inner), %.2e (outer)\n", inner,
           outer);
    CHECK(inner < 1e-6 && outer < 1e-6);
}

/* ---------------------------------------------------------------- movement */

TEST(reshape_alias)
{
    IrGraph *g = ir_graph_new("reshape");
    IrNode *x = in_f32(g, "x", SH(3, 17));
    IrShape s1 = SH(17, 3), s2 = SH(51);
    IrNode *r1 = op_given(g, OP_RESHAPE, x, DT_F32, &s1);
    IrNode *r2 = op_given(g, OP_RESHAPE, r1, DT_F32, &s2);
    ir_unary(g, OP_NEG, r1);
    ir_binary(g, OP_ADD, r2, ir_const(g, 1, DT_F32, SH(1)));
    Run r;
    if (run_graph(&r, g, NULL, NULL)) {
        CHECK(r.p->nodes[r1->index].kind == CG_ALIAS && r.p->nodes[r1->index].alias_of == 0);
        CHECK(r.p->nodes[r2->index].kind == CG_ALIAS && r.p->nodes[r2->index].alias_of == 0);
        check_run(&r, 1e-6);
    }
    run_free(&r);
}

static void transpose_case(IrShape s, const int64_t *perm, IrDType dt)
{
    IrGraph *g = ir_graph_new("transpose");
    IrNode *x = ir_input(g, "x", dt, s);
    IrAttr a = ir_attr_ints(ATTR_PERM, perm, s.rank);
    ir_op1(g, OP_TRANSPOSE, x, &a, 1);
    verify(g, NULL, NULL, 0);
}

TEST(transpose)
{
    static const int64_t p3[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    transpose_case(SH(17, 1023), (int64_t[]){1, 0}, DT_F32);
    transpose_case(SH(1, 1000), (int64_t[]){1, 0}, DT_F32);
    for (int i = 0; i < 6; i++)
        transpose_case(SH(3, 17, 5), p3[i], DT_F32);
    transpose_case(SH(2, 3, 5, 7), (int64_t[]){0, 2, 1, 3}, DT_F32);
    transpose_case(SH(2, 3, 5, 7), (int64_t[]){3, 2, 1, 0}, DT_I32);
    transpose_case(SH(3, 17, 5), (int64_t[]){-1, 0, 1}, DT_BOOL);
}

static void broadcast_case(IrShape from, IrShape to, IrDType dt)
{
    IrGraph *g = ir_graph_new("broadcast");
    IrNode *x = ir_input(g, "x", dt, from);
    op_given(g, OP_BROADCAST, x, dt, &to);
    verify(g, NULL, NULL, 0);
}

TEST(broadcast)
{
    broadcast_case(SH(3, 1), SH(2, 3, 17), DT_F32);
    broadcast_case(SH(1), SH(1000), DT_F32);
    broadcast_case(SH(17), SH(3, 17), DT_I32);
    broadcast_case(SCALAR, SH(3, 5), DT_F32);
    broadcast_case(SH(1, 5, 1), SH(4, 5, 1023), DT_BOOL);
}

static void slice_case(IrShape s, int axis, int64_t start, int64_t end, IrDType dt)
{
    IrGraph *g = ir_graph_new("slice");
    IrNode *x = ir_input(g, "x", dt, s);
    IrAttr a[3] = {ir_attr_int(ATTR_AXIS, axis), ir_attr_int(ATTR_START, start),
                   ir_attr_int(ATTR_END, end)};
    ir_op1(g, OP_SLICE, x, a, 3);
    verify(g, NULL, NULL, 0);
}

TEST(slice)
{
    slice_case(SH(3, 17, 5), 0, 1, 3, DT_F32);
    slice_case(SH(3, 17, 5), 1, 0, 16, DT_F32);
    slice_case(SH(3, 17, 5), 2, 4, 5, DT_F32);
    slice_case(SH(3, 17, 5), -1, 1, 4, DT_I32);
    slice_case(SH(1023), 0, 5, 1000, DT_F32);
    slice_case(SH(2, 1023), 1, 0, 1, DT_BOOL);
}

static void concat_case(int n, IrShape s, int axis, const int64_t *lens, IrDType dt)
{
    IrGraph *g = ir_graph_new("concat");
    IrNode *in[IR_MAX_IN];
    int ax = ir_axis(axis, s.rank);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        IrShape si = s;
        si.d[ax] = ir_dim_const(lens[i]);
        in[i] = ir_input(g, name, dt, si);
    }
    IrAttr a = ir_attr_int(ATTR_AXIS, axis);
    op_n(g, OP_CONCAT, in, n, &a, 1);
    verify(g, NULL, NULL, 0);
}

TEST(concat)
{
    concat_case(2, SH(3, 17, 5), 0, (int64_t[]){1, 3}, DT_F32);
    concat_case(3, SH(3, 17, 5), 1, (int64_t[]){17, 1, 5}, DT_F32);
    concat_case(2, SH(3, 17, 5), 2, (int64_t[]){5, 2}, DT_I32);
    concat_case(2, SH(3, 17, 5), -1, (int64_t[]){1, 1}, DT_BOOL);
    concat_case(8, SH(1000), 0, (int64_t[]){1, 3, 17, 1000, 1023, 2, 5, 7}, DT_F32);
    concat_case(3, SH(2, 1023), 0, (int64_t[]){2, 1, 3}, DT_F32);
}

/* ---------------------------------------------------------------- matmul */

static int64_t matmul_case(IrShape sa, IrShape sb, bool ta, bool tb)
{
    IrGraph *g = ir_graph_new("matmul");
    IrNode *a = in_f32(g, "a", sa), *b = in_f32(g, "b", sb);
    IrAttr at[2] = {ir_attr_int(ATTR_TA, ta), ir_attr_int(ATTR_TB, tb)};
    IrNode *y = ir_op2(g, OP_MATMUL, a, b, at, 2);
    Run r;
    int64_t calls = -1;
    if (run_graph(&r, g, NULL, NULL)) {
        check_run(&r, 1e-5);
        calls = r.p->nodes[y->index].extent;
        CHECK(!r.p->nodes[y->index].parallel);
    }
    run_free(&r);
    return calls;
}

TEST(matmul)
{
    static const int64_t mkn[][3] = {{1, 1, 1}, {3, 17, 1}, {17, 3, 1023}, {1000, 17, 3},
                                     {5, 1023, 7}};
    for (int i = 0; i < 5; i++)
        for (int t = 0; t < 4; t++) {
            int64_t M = mkn[i][0], K = mkn[i][1], N = mkn[i][2];
            bool ta = t & 1, tb = t >> 1;
            matmul_case(ta ? SH(K, M) : SH(M, K), tb ? SH(N, K) : SH(K, N), ta, tb);
        }
    CHECK(matmul_case(SH(2, 3, 5, 17), SH(17, 7), false, false) == 1); /* folded into M */
    CHECK(matmul_case(SH(2, 3, 17, 5), SH(17, 7), true, false) == 6);
    CHECK(matmul_case(SH(5, 17), SH(2, 17, 7), false, false) == 2);
    CHECK(matmul_case(SH(2, 1, 5, 17), SH(1, 3, 7, 17), false, true) == 6);
    CHECK(matmul_case(SH(4, 17, 5), SH(4, 7, 17), true, true) == 4);
    CHECK(matmul_case(SH(3, 1, 5, 17), SH(17, 7), false, false) == 1);
}

/* ---------------------------------------------------------------- gather */

static void gather_case(IrShape ts, IrShape is, IrDType dt, double hi)
{
    IrGraph *g = ir_graph_new("gather");
    IrNode *t = ir_input(g, "table", dt, ts), *i = ir_input(g, "idx", DT_I32, is);
    ir_binary(g, OP_GATHER, t, i);
    Gen gens[] = {{"idx", 0, hi, 0}, {0}};
    verify(g, NULL, gens, 0);
}

TEST(gather)
{
    gather_case(SH(50, 17), SH(3, 7), DT_F32, 50);
    gather_case(SH(10, 2, 3), SH(1000), DT_F32, 10);
    gather_case(SH(1, 1023), SH(3), DT_F32, 1);
    gather_case(SH(7, 5), SH(2, 2), DT_I32, 7);
}

/* Out-of-range indices (an interpreter error) give rows of zeros. */
TEST(gather_out_of_range)
{
    IrGraph *g = ir_graph_new("gather_oob");
    IrNode *t = in_f32(g, "table", SH(4, 3)), *i = ir_input(g, "idx", DT_I32, SH(4));
    IrNode *y = ir_binary(g, OP_GATHER, t, i);
    IrError err = {0};
    CgProgram *p = cg_program_compile(g, NULL, &(CgOptions){.own_buffers = true}, &err);
    CHECK(p != NULL);
    if (p) {
        float table[12], out[12];
        int32_t idx[4] = {-1, 2, 4, 1 << 30};
        for (int k = 0; k < 12; k++)
            table[k] = (float)k + 1;
        void *slots[3] = {table, idx, out};
        p->nodes[y->index].fn(slots, 0, 4);
        for (int k = 0; k < 3; k++)
            CHECK(out[k] == 0 && out[3 + k] == table[6 + k] && out[6 + k] == 0 && out[9 + k] == 0);
    }
    cg_program_free(p);
    ir_graph_free(g);
}

static void scatter_case(int64_t V, IrShape rs, int64_t nidx)
{
    IrGraph *g = ir_graph_new("scatter_add");
    IrShape bs = rs, ss = rs;
    bs.rank = ss.rank = (uint8_t)(rs.rank + 1);
    for (int d = rs.rank; d > 0; d--)
        bs.d[d] = ss.d[d] = rs.d[d - 1];
    bs.d[0] = ir_dim_const(V);
    ss.d[0] = ir_dim_const(nidx);
    IrNode *in[3] = {in_f32(g, "base", bs), ir_input(g, "idx", DT_I32, SH(nidx)),
                     in_f32(g, "src", ss)};
    op_n(g, OP_SCATTER_ADD, in, 3, NULL, 0);
    Gen gens[] = {{"idx", 0, (double)V, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(scatter_add)
{
    scatter_case(1, SH(17), 3);         /* every index the same row */
    scatter_case(3, SH(1), 1000);
    scatter_case(17, SH(3, 5), 17);
    scatter_case(1000, SH(17), 1023);
    scatter_case(50, SH(128), 4096);    /* many repeats */
    scatter_case(300, SH(1), 5);        /* more blocks than indices */
    /* Out-of-range indices (an interpreter error) add nothing. */
    IrGraph *g = ir_graph_new("scatter_oob");
    IrNode *in[3] = {in_f32(g, "base", SH(4, 2)), ir_input(g, "idx", DT_I32, SH(3)),
                     in_f32(g, "src", SH(3, 2))};
    IrNode *y = op_n(g, OP_SCATTER_ADD, in, 3, NULL, 0);
    IrError err = {0};
    CgProgram *p = cg_program_compile(g, NULL, &(CgOptions){.own_buffers = true}, &err);
    CHECK(p != NULL);
    if (p) {
        float base[8] = {1, 2, 3, 4, 5, 6, 7, 8}, src[6] = {10, 20, 30, 40, 50, 60}, out[8];
        int32_t idx[3] = {-1, 2, 4};
        void *slots[4] = {base, idx, src, out};
        p->nodes[y->index].fn(slots, 0, p->nodes[y->index].extent);
        float want[8] = {1, 2, 3, 4, 35, 46, 7, 8};
        CHECK(memcmp(out, want, sizeof want) == 0);
    }
    cg_program_free(p);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- causal attention */

/* causal_attention and its gradient on qkv of shape `s` ([..., T, 3D]),
 * with H heads, dropout p (and a step) when p > 0. */
static void attention_case(IrShape s, int64_t heads, double p)
{
    IrGraph *g = ir_graph_new("attention");
    IrNode *qkv = in_f32(g, "qkv", s), *step = ir_input(g, "step", DT_I32, SCALAR);
    IrShape os = s;
    int64_t d3;
    IR_ASSERT(ir_dim_is_const(s.d[s.rank - 1], &d3));
    os.d[os.rank - 1] = ir_dim_const(d3 / 3);
    IrNode *dout = in_f32(g, "dout", os);
    IrAttr at[4] = {ir_attr_int(ATTR_HEADS, heads), ir_attr_float(ATTR_SCALE, 0.6),
                    ir_attr_float(ATTR_P, p), ir_attr_int(ATTR_SEED, 9)};
    int na = p > 0 ? 4 : 2, ns = p > 0;
    IrNode *a = op_n(g, OP_CAUSAL_ATTENTION, (IrNode *[]){qkv, step}, 1 + ns, at, na);
    op_n(g, OP_CAUSAL_ATTENTION_GRAD, (IrNode *[]){qkv, a, dout, step}, 3 + ns, at, na);
    Gen gens[] = {{"qkv", -2, 2, 0}, {"dout", -1, 1, 0}, {"step", 0, 50, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(causal_attention)
{
    attention_case(SH(1, 1, 3), 1, 0);         /* one row, one key */
    attention_case(SH(2, 9, 24), 2, 0.2);      /* two heads of 4 */
    attention_case(SH(130, 3 * 64), 1, 0.1);   /* hd 64, three key blocks, two query chunks */
    attention_case(SH(2, 3, 40, 36), 3, 0);    /* two leading dims */
    attention_case(SH(2, 70, 3 * 48), 2, 0.1); /* hd 24: a transposed tile of 16 columns, 8 more */
}

/* ---------------------------------------------------------------- composites */

static void softmax_case(IrOp op, IrShape s, int axis, double lo, double hi)
{
    IrGraph *g = ir_graph_new(ir_op_name(op));
    IrNode *x = in_f32(g, "x", s);
    IrAttr a = ir_attr_int(ATTR_AXIS, axis);
    ir_op1(g, op, x, &a, 1);
    Gen gens[] = {{"x", lo, hi, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(softmax)
{
    IrOp ops[2] = {OP_SOFTMAX, OP_LOG_SOFTMAX};
    for (int o = 0; o < 2; o++) {
        for (int s = 0; s < NODD; s++)
            softmax_case(ops[o], SH(3, odd_sizes[s]), -1, -5, 5);
        softmax_case(ops[o], SH(17, 3), 0, -5, 5);
        softmax_case(ops[o], SH(3, 17, 5), 1, -5, 5);
        softmax_case(ops[o], SH(2, 50257), -1, -10, 10);
        softmax_case(ops[o], SH(5, 1000), -1, -1000, 1000);  /* large spread */
        softmax_case(ops[o], SH(5, 1000), -1, 1e4, 1e4 + 30); /* large offset */
    }
}

/* causal_mask then softmax: masked entries are -inf, rows stay finite. */
static void causal_case(int64_t Tq, int64_t Tk)
{
    IrGraph *g = ir_graph_new("causal");
    IrNode *x = in_f32(g, "x", SH(2, 3, Tq, Tk));
    IrNode *m = ir_unary(g, OP_CAUSAL_MASK, x);
    IrAttr a = ir_attr_int(ATTR_AXIS, -1);
    ir_op1(g, OP_SOFTMAX, m, &a, 1);
    ir_op1(g, OP_LOG_SOFTMAX, m, &a, 1);
    verify(g, NULL, NULL, 1e-5);
}

TEST(causal_mask)
{
    causal_case(1, 1);
    causal_case(5, 5);
    causal_case(3, 17);
    causal_case(17, 17);
}

static void layernorm_case(int64_t rows, int64_t D, double lo, double hi, double eps)
{
    IrGraph *g = ir_graph_new("layernorm");
    IrNode *in[3] = {in_f32(g, "x", SH(rows, D)), in_f32(g, "scale", SH(D)),
                     in_f32(g, "shift", SH(D))};
    IrAttr a = ir_attr_float(ATTR_EPS, eps);
    op_n(g, OP_LAYERNORM, in, 3, &a, eps > 0 ? 1 : 0);
    Gen gens[] = {{"x", lo, hi, 0}, {"scale", 0.5, 1.5, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(layernorm)
{
    for (int s = 0; s < NODD; s++)
        layernorm_case(3, odd_sizes[s], -2, 2, 0);
    layernorm_case(64, 768, -2, 2, 1e-3);
    layernorm_case(5, 1023, 1e4, 1e4 + 2, 0);   /* |mean| >> std */
    layernorm_case(5, 17, -1e3, 1e3, 0);
    layernorm_case(2, 1000, 0.25, 0.25, 0);     /* zero variance: eps only */
}

static void xent_case(int64_t rows, int64_t V, double tlo, double thi, int64_t ignore,
                      double lo, double hi)
{
    IrGraph *g = ir_graph_new("cross_entropy");
    IrNode *in[2] = {in_f32(g, "logits", SH(rows, V)), ir_input(g, "t", DT_I32, SH(rows))};
    IrAttr a = ir_attr_int(ATTR_IGNORE_INDEX, ignore);
    op_n(g, OP_CROSS_ENTROPY, in, 2, &a, 1);
    Gen gens[] = {{"logits", lo, hi, 0}, {"t", tlo, thi, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

TEST(cross_entropy)
{
    for (int s = 0; s < NODD; s++)
        xent_case(7, odd_sizes[s], 0, (double)odd_sizes[s], -100, -3, 3);
    xent_case(64, 1000, -1, 1000, -1, -3, 3);        /* some targets ignored */
    xent_case(16, 50257, 0, 50257, -100, -10, 10);
    xent_case(5, 17, -1, 0, -1, -3, 3);              /* all ignored: 0 */
    xent_case(9, 1000, 0, 1000, -100, -500, 500);    /* large logits */
    xent_case(9, 33, 0, 33, -100, 1e4, 1e4 + 20);    /* large offset */
    /* rank 3 logits */
    IrGraph *g = ir_graph_new("xent3");
    IrNode *in[2] = {in_f32(g, "logits", SH(2, 3, 17)), ir_input(g, "t", DT_I32, SH(2, 3))};
    op_n(g, OP_CROSS_ENTROPY, in, 2, NULL, 0);
    Gen gens[] = {{"t", 0, 17, 0}, {0}};
    verify(g, NULL, gens, 1e-5);
}

/* ---------------------------------------------------------------- sources */

TEST(const_and_iota)
{
    IrGraph *g = ir_graph_new("sources");
    ir_const(g, 2.5, DT_F32, SH(3, 17));
    ir_const(g, -1e39, DT_F32, SH(3, 17)); /* shares the body above; rounds to -inf */
    ir_const(g, 12, DT_I32, SH(1000));      /* shares the body of -7 */
    ir_const(g, -7, DT_I32, SH(1000));
    ir_const(g, 1, DT_BOOL, SH(5));
    ir_const(g, -0.125, DT_F32, SCALAR);
    IrShape s[4] = {SH(3, 17), SH(3, 17), SH(2, 3, 5), SH(1023)};
    int axes[4] = {0, 1, -1, 0};
    for (int i = 0; i < 4; i++) {
        IrError err = {0};
        IrDType dt = DT_I32;
        IrAttr a = ir_attr_int(ATTR_AXIS, axes[i]);
        CHECK(ir_node_new(g, OP_IOTA, NULL, 0, &a, 1, &dt, &s[i], &err) != NULL);
    }
    verify(g, NULL, NULL, 0);
}

/* A graph with symbolic dims, compiled at a binding: x[B,T,D] through
 * layernorm, a linear layer, attention-like scores and a loss. */
TEST(symbolic_binding)
{
    IrGraph *g = ir_graph_new("symbolic");
    int B = ir_graph_sym(g, "B"), T = ir_graph_sym(g, "T");
    IrShape sx = ir_shape_of(3, (IrDim[]){ir_dim_sym(B), ir_dim_sym(T), ir_dim_const(16)});
    IrNode *x = in_f32(g, "x", sx);
    IrNode *ln_in[3] = {x, ir_param(g, "g", SH(16), "ones", 0, true),
                        ir_param(g, "b", SH(16), "zeros", 0, true)};
    IrNode *h = op_n(g, OP_LAYERNORM, ln_in, 3, NULL, 0);
    IrNode *w = ir_param(g, "w", SH(16, 16), "normal", 0.2, true);
    IrNode *q = ir_binary(g, OP_MATMUL, h, w);
    IrAttr tb = ir_attr_int(ATTR_TB, 1), ax = ir_attr_int(ATTR_AXIS, -1);
    IrNode *s = ir_unary(g, OP_CAUSAL_MASK, ir_op2(g, OP_MATMUL, q, h, &tb, 1));
    IrNode *pr = ir_op1(g, OP_SOFTMAX, s, &ax, 1);
    IrNode *o = ir_unary(g, OP_GELU, ir_binary(g, OP_MATMUL, pr, h));
    IrShape st = ir_shape_of(2, (IrDim[]){ir_dim_sym(B), ir_dim_sym(T)});
    IrNode *xin[2] = {o, ir_input(g, "targets", DT_I32, st)};
    ir_graph_add_output(g, "loss", op_n(g, OP_CROSS_ENTROPY, xin, 2, NULL, 0));
    Gen gens[] = {{"targets", 0, 16, 0}, {0}};
    IrGraph *g2 = ir_graph_clone(g);
    verify(g, (int64_t[]){2, 5}, gens, 1e-5);
    verify(g2, (int64_t[]){3, 17}, gens, 1e-5);
}

/* The forward graph of models/gpt-mini.json (shrunk) against the
 * interpreter, node by node.  Errors compound through the blocks, so the
 * tolerance is 1e-4 here, as for `gradc verify`. */
TEST(model_gpt_mini)
{
    FeSet sets[] = {{"n_layers", "2"}, {"vocab_size", "300"}, {"context_length", "16"}};
    FeOptions fo = {sets, 3};
    IrError err = {0};
    FeModel *m = fe_load_file("models/gpt-mini.json", &fo, &err);
    CHECK(m != NULL);   /* models/gpt-mini.json is in the tree */
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    int64_t bind[IR_MAX_SYMS];
    for (int i = 0; i < m->graph->nsym; i++)
        bind[i] = !strcmp(m->graph->sym[i], "B") ? 2 : 11;
    Gen gens[] = {{"idx", 0, 300, 0}, {"tokens", 0, 300, 0}, {"input_ids", 0, 300, 0}, {0}};
    IrGraph *g = ir_graph_clone(m->graph);
    verify(g, bind, gens, 1e-4);
    fe_model_free(m);
}

/* ---------------------------------------------------------------- fused kernels */

/* IR text through a pipeline ending in fuse, then JIT against the
 * interpreter node by node (fused nodes included, siblings too). */
static void fused_case(const char *text, const char *pipeline, const int64_t *bind,
                       const Gen *gens, double rtol)
{
    IrError err = {0};
    IrGraph *g = ir_parse(text, "fused_case", &err);
    PassCtx ctx = pass_ctx_default(&err);
    bool ok = g && pass_run_pipeline(g, pipeline, &ctx);
    if (!ok)
        fprintf(stderr, "  fused case: %s %s\n", err.where, err.msg);
    CHECK(ok);
    if (!ok) {
        ir_graph_free(g);
        return;
    }
    int fused = 0;
    for (int i = 0; i < g->nnodes; i++)
        fused += g->nodes[i]->op == OP_FUSED;
    CHECK(fused > 0);
    verify(g, bind, gens, rtol);
}

/* Elementwise (flat and rows), row kernels (softmax, layernorm with its
 * statistics as sibling outputs, a no-keepdim row sum), reduce kernels
 * (inner, outer, with siblings, i32, max), dropout, matmuls with an
 * epilogue, with strided views in and out. */
TEST(fused)
{
    static const char *const cases[] = {
        "graph ew(B) {\n %x = input : f32[B,17] @x\n %b = input : f32[17] @b\n"
        " %y = add %x, %b : f32[B,17]\n %e = exp %y : f32[B,17]\n %c = const {value=0.5} : f32[]\n"
        " %z = mul %e, %c : f32[B,17]\n %t = tanh %z : f32[B,17]\n %u = mul %x, %x : f32[B,17]\n"
        " %r = input : f32[B,1] @r\n %v = sub %u, %r : f32[B,17]\n %w = relu %v : f32[B,17]\n"
        " return t=%t, w=%w\n}\n",
        "graph row(B) {\n %x = input : f32[B,3,1000] @x\n %g = input : f32[1000] @g\n"
        " %h = input : f32[1000] @h\n %s = softmax %x {axis=-1} : f32[B,3,1000]\n"
        " %l = layernorm %x, %g, %h {eps=1e-05} : f32[B,3,1000]\n"
        " %n = sum %x {axes=[2], keepdim=0} : f32[B,3]\n "
        "%ls = log_softmax %x {axis=-1} : f32[B,3,1000]\n"
        " return s=%s, l=%l, n=%n, ls=%ls\n}\n",
        "graph stats(B) {\n %x = input : f32[B,5,77] @x\n "
        "%s = sum %x {axes=[2], keepdim=1} : f32[B,5,1]\n"
        " %c = const {value=0.012987012987012988} : f32[]\n %m = mul %s, %c : f32[B,5,1]\n"
        " %d = sub %x, %m : f32[B,5,77]\n %q = mul %d, %d : f32[B,5,77]\n"
        " %v = sum %q {axes=[2], keepdim=1} : f32[B,5,1]\n %e = const {value=1e-05} : f32[]\n"
        " %ve = add %v, %e : f32[B,5,1]\n %r = rsqrt %ve : f32[B,5,1]\n "
        "%xh = mul %d, %r : f32[B,5,77]\n"
        " %k = input : i32[] @step\n %dr = dropout %xh, %k {p=0.25, seed=7} : f32[B,5,77]\n"
        " return xhat=%xh, rstd=%r, drop=%dr\n}\n",
        "graph red(B) {\n %dy = input : f32[B,7,300] @dy\n %xh = input : f32[B,7,300] @xh\n"
        " %p = mul %dy, %xh : f32[B,7,300]\n %dg = sum %p {axes=[0,1], keepdim=0} : f32[300]\n"
        " %db = sum %dy {axes=[0,1], keepdim=0} : f32[300]\n %e = exp %xh : f32[B,7,300]\n"
        " %all = sum %e {axes=[], keepdim=0} : f32[]\n "
        "%mx = max %p {axes=[0], keepdim=1} : f32[1,7,300]\n"
        " %i = input : i32[B,7,300] @i\n %j = mul %i, %i : i32[B,7,300]\n"
        " %is = sum %j {axes=[0,2], keepdim=0} : i32[7]\n "
        "%mi = max %p {axes=[1,2], keepdim=0} : f32[B]\n"
        " return dg=%dg, db=%db, all=%all, mx=%mx, is=%is, mi=%mi\n}\n",
        "graph mm(B, T) {\n %x = input : f32[B,T,64] @x\n %w = input : f32[96,64] @w\n"
        " %bias = input : f32[96] @bias\n %h = matmul %x, %w {tb=1} : f32[B,T,96]\n"
        " %hb = add %h, %bias : f32[B,T,96]\n %g = gelu %hb : f32[B,T,96]\n"
        " %q = input : f32[B,T,64] @q\n %k = input : f32[B,T,64] @k\n %v = input : f32[B,T,64] @v\n"
        " %qh = reshape %q : f32[B,T,4,16]\n %qt = transpose %qh {perm=[0,2,1,3]} : f32[B,4,T,16]\n"
        " %kh = reshape %k : f32[B,T,4,16]\n %kt = transpose %kh {perm=[0,2,1,3]} : f32[B,4,T,16]\n"
        " %vh = reshape %v : f32[B,T,4,16]\n %vt = transpose %vh {perm=[0,2,1,3]} : f32[B,4,T,16]\n"
        " %s = matmul %qt, %kt {tb=1} : f32[B,4,T,T]\n %cm = causal_mask %s : f32[B,4,T,T]\n"
        " %sm = softmax %cm {axis=-1} : f32[B,4,T,T]\n %o = matmul %sm, %vt : f32[B,4,T,16]\n"
        " %ot = transpose %o {perm=[0,2,1,3]} : f32[B,T,4,16]\n %of = reshape %ot : f32[B,T,64]\n"
        " %dw = matmul %of, %x {ta=1} : f32[B,64,64]\n"
        " return g=%g, of=%of, dw=%dw, h=%hb\n}\n",
        "graph sum(B, T) {\n %a = input : f32[B,T,8,16] @a\n %b = input : f32[B,T,128] @b\n"
        " %c = input : f32[B,8,T,16] @c\n %w = input : f32[128,128] @w\n "
        "%u = input : f32[128,128] @u\n"
        " %v = input : f32[128,128] @v\n %ar = reshape %a : f32[B,T,128]\n"
        " %m1 = matmul %ar, %w : f32[B,T,128]\n %m2 = matmul %b, %u {tb=1} : f32[B,T,128]\n"
        " %s1 = add %m1, %m2 : f32[B,T,128]\n %ct = transpose %c {perm=[0,2,1,3]} : f32[B,T,8,16]\n"
        " %cr = reshape %ct : f32[B,T,128]\n %m3 = matmul %cr, %v : f32[B,T,128]\n"
        " %s2 = add %s1, %m3 : f32[B,T,128]\n %r = relu %s2 : f32[B,T,128]\n"
        " %t = add %m1, %m1 : f32[B,T,128]\n return r=%r, s=%s2\n}\n",
    };
    const char *pipe = pass_stage("kernels")->forward;
    Gen gens[] = {{"step", 1, 9, 0}, {"i", -50, 50, 0}, {0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fused_case(cases[c], pipe, (int64_t[]){3, 11}, gens, 1e-5);
        fused_case(cases[c], pipe, (int64_t[]){1, 1}, gens, 1e-5);
    }
}

/* The gpt-mini forward graph and train step (shrunk), fused, against the
 * interpreter.  Gradients are sums over the batch that cancel (the bias of
 * attention's keys is 0 in exact arithmetic, weight gradients of tiny
 * tokens), so the train step is held to 1e-3 of |ref| + rms, the forward
 * graph to 1e-4 as in model_gpt_mini. */
TEST(model_gpt_mini_fused)
{
    FeSet sets[] = {{"n_layers", "2"}, {"vocab_size", "300"}, {"context_length", "16"}};
    FeOptions fo = {sets, 3};
    IrError err = {0};
    FeModel *m = fe_load_file("models/gpt-mini.json", &fo, &err);
    CHECK(m != NULL);   /* models/gpt-mini.json is in the tree */
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    int64_t bind[IR_MAX_SYMS];
    for (int i = 0; i < m->graph->nsym; i++)
        bind[i] = !strcmp(m->graph->sym[i], "B") ? 2 : 11;
    Gen gens[] = {{"idx", 0, 300, 0}, {"targets", 0, 300, 0}, {"step", 1, 5, 0},
                  {"lr", 1e-4, 1e-3, 0}, {0}};
    for (int train = 0; train < 2; train++) {
        IrGraph *g = ir_graph_clone(m->graph);
        PassCtx ctx = pass_ctx_default(&err);
        /* the kernels stage, of the train step as gradc train builds it */
        bool ok = pass_stage_run(g, pass_stage("kernels"), train, &ctx);
        if (!ok)
            fprintf(stderr, "  gpt-mini %s: %s\n", train ? "train step" : "forward", err.msg);
        CHECK(ok);
        if (ok)
            verify(g, bind, gens, train ? 1e-3 : 1e-4);
        else
            ir_graph_free(g);
    }
    fe_model_free(m);
}

/* ---------------------------------------------------------------- asm, cache, errors */

/* The asm of an elementwise kernel uses zmm registers (AVX-512 hosts). */
TEST(elementwise_asm_has_zmm)
{
    IrGraph *g = ir_graph_new("zmm");
    IrNode *x = in_f32(g, "x", SH(4, 1023)), *y = in_f32(g, "y", SH(1023));
    IrNode *xy = ir_binary(g, OP_MUL, x, y);
    ir_binary(g, OP_MUL, ir_unary(g, OP_EXP, xy), y); /* same signature as %2: shares its body */
    IrError err = {0};
    /* own buffers: planned in place, %4 would read operand 0 through its output's
     * pointer, which is part of the signature, and not share %2's body */
    CgOptions o = {.keep_module = true, .own_buffers = true};
    CgProgram *p = cg_program_compile(g, NULL, &o, &err);
    CHECK(p && p->asm_text && p->llvm_ir);
    if (p && p->asm_text) {
        const CgTarget *t = cg_target_host(&err);
        if (!cg_target_has_feature(t, "avx512f"))
            TEST_SKIP_PART("the zmm check: the host lacks avx512f");
        else {
            const char *k = strstr(p->asm_text, "k2_mul.body:");
            const char *z = k ? strstr(k, "zmm") : NULL;
            CHECK(z != NULL);
            CHECK(strstr(p->llvm_ir, "<16 x float>") != NULL);
            CHECK(strstr(p->asm_text, "k4_mul:") && !strstr(p->asm_text, "k4_mul.body:"));
            if (z) {
                const char *ls = z;
                while (ls > p->asm_text && ls[-1] != '\n')
                    ls--;
                printf("  k2_mul.body: %.*s\n", (int)strcspn(ls, "\n"), ls);
            }
        }
    }
    cg_program_free(p);
    ir_graph_free(g);
}

static CgStats compile_stats(IrGraph *g, double cval)
{
    IrError err = {0};
    CgStats st = {0};
    CgProgram *p = cg_program_compile(g, NULL, &(CgOptions){.own_buffers = true}, &err);
    CHECK(p != NULL);
    if (p) {
        st = p->stats;
        float x[1000], y[1000];
        for (int i = 0; i < 1000; i++)
            x[i] = (float)i;
        void *slots[4] = {x, malloc(4000), y, NULL};
        for (int i = 0; i < 3; i++)
            if (p->nodes[i].kind == CG_KERNEL)
                p->nodes[i].fn(slots, 0, p->nodes[i].extent);
        CHECK(y[999] == (float)(999 + cval));
        free(slots[1]);
    }
    cg_program_free(p);
    return st;
}

static IrGraph *cache_graph(double c)
{
    IrGraph *g = ir_graph_new("cache");
    IrNode *x = in_f32(g, "x", SH(1000));
    ir_binary(g, OP_ADD, x, ir_const(g, c, DT_F32, SH(1)));
    return g;
}

TEST(cache_hit_and_miss)
{
    IrGraph *g = cache_graph(1), *g2 = cache_graph(2);
    CgStats a = compile_stats(g, 1), b = compile_stats(g, 1), c = compile_stats(g2, 2);
    CHECK(!a.hit && a.stored);
    CHECK(b.hit && strcmp(a.key, b.key) == 0);
    CHECK(!c.hit && strcmp(a.key, c.key) != 0);
    printf("  cold %.2f ms, cached %.2f ms, changed IR: %s\n", a.total_ms, b.total_ms,
           c.hit ? "hit" : "miss");
    /* no_cache compiles, and keep_module always builds the module */
    IrError err = {0};
    CgOptions o = {.no_cache = true};
    CgProgram *p = cg_program_compile(g, NULL, &o, &err);
    CHECK(p && !p->stats.hit && !p->stats.stored);
    cg_program_free(p);
    ir_graph_free(g);
    ir_graph_free(g2);
}

TEST(errors)
{
    IrError err = {0};
    CHECK(cg_op_lowered(OP_ADD) && cg_op_lowered(OP_CROSS_ENTROPY) && !cg_op_lowered(OP_COUNT));
    IrGraph *g = ir_graph_new("errs");
    int B = ir_graph_sym(g, "B");
    IrNode *x = in_f32(g, "x", ir_shape_of(1, (IrDim[]){ir_dim_sym(B)}));
    IrNode *y = ir_unary(g, OP_NEG, x);
    CHECK(cg_program_compile(g, NULL, NULL, &err) == NULL && strstr(err.msg, "no binding"));
    IrError e2 = {0};
    CHECK(cg_program_compile(g, (int64_t[]){0}, NULL, &e2) == NULL && strstr(e2.msg, "%0 input"));
    printf("  %s\n", e2.msg);
    y->body = ir_graph_new("body");
    IrError e3 = {0};
    CHECK(cg_program_compile(g, (int64_t[]){4}, NULL, &e3) == NULL &&
          strstr(e3.msg, "only fused nodes are lowered from their bodies"));
    ir_graph_free(y->body);
    y->body = NULL;
    IrNode *z = ir_unary(g, OP_NEG, x);
    IrError e4 = {0};
    z->op = (IrOp)OP_COUNT; /* an op the lowering does not know */
    CHECK(cg_program_compile(g, (int64_t[]){4}, NULL, &e4) == NULL &&
          strstr(e4.msg, "no lowering for op"));
    printf("  %s\n", e4.msg);
    z->op = OP_NEG;
    ir_graph_free(g);
}

static bool listed_not_lowered(const char *name)
{
    for (size_t i = 0; not_yet_lowered[i]; i++)
        if (!strcmp(not_yet_lowered[i], name))
            return true;
    return false;
}

/* Every op in ops.def has passed a test above, or waits on the list. */
TEST(coverage)
{
    int missing = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const char *name = ir_op_name((IrOp)op);
        if (tested[op])
            continue;
        if (ir_ops[op].kind == OPK_SOURCE && (op == OP_INPUT || op == OP_PARAM))
            continue; /* no code: checked as every test's inputs */
        if (listed_not_lowered(name)) {
            printf("  not yet lowered: %s%s\n", name,
                   cg_op_lowered((IrOp)op) ? " (has a lowering now: test it)" : "");
            continue;
        }
        printf("  op %s has no lowering test\n", name);
        missing++;
    }
    CHECK(missing == 0);
    printf("  worst error / (|ref| + rms) per op:");
    for (int op = 0; op < OP_COUNT; op++)
        if (tested[op] && ir_ops[op].kind != OPK_SOURCE && worst_seen[op] > 0)
            printf(" %s %.1e", ir_op_name((IrOp)op), worst_seen[op]);
    printf("\n");
}

/* ---------------------------------------------------------------- main */

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char path[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    /* JIT'd matmuls call cblas_sgemm through the process: keep OpenBLAS linked. */
    float one = 1, r = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1, &one, 1, &one, 1, 0, &r, 1);
    snprintf(cache_dir, sizeof cache_dir, "/tmp/gradc-test-lower.XXXXXX");
    if (!mkdtemp(cache_dir))
        TEST_SKIP("cannot make a temp dir");
    setenv("GRADC_CACHE_DIR", cache_dir, 1);
    unsetenv("GRADC_NO_CACHE");
    RUN(unary_f32);
    RUN(math_accuracy);
    RUN(unary_i32);
    RUN(binary_f32_broadcast);
    RUN(binary_i32);
    RUN(nan_semantics);
    RUN(where_and_compare);
    RUN(cast);
    RUN(dropout);
    RUN(reduce_every_axis);
    RUN(reduce_layouts);
    RUN(sum_accuracy);
    RUN(reshape_alias);
    RUN(transpose);
    RUN(broadcast);
    RUN(slice);
    RUN(concat);
    RUN(matmul);
    RUN(gather);
    RUN(gather_out_of_range);
    RUN(scatter_add);
    RUN(causal_attention);
    RUN(softmax);
    RUN(causal_mask);
    RUN(layernorm);
    RUN(cross_entropy);
    RUN(const_and_iota);
    RUN(symbolic_binding);
    RUN(model_gpt_mini);
    RUN(fused);
    RUN(model_gpt_mini_fused);
    RUN(elementwise_asm_has_zmm);
    RUN(cache_hit_and_miss);
    RUN(errors);
    RUN(coverage);
    remove_dir(cache_dir);
    return test_summary();
}
