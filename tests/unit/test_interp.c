/* test_interp.c — the reference interpreter against hand-computed values.
 *
 * The interpreter is the oracle of every other check, so its own tests
 * compare with numbers worked out by hand (the arithmetic is in the
 * comments), never with its own output.  Each EXPECT marks the op of the
 * node it checks as covered; the last test fails when an op of ops.def
 * has no checked value, so a new op cannot land without a test here.
 * The end of the file also checks ir_dot on a small GPT (collapsed and
 * expanded blocks).
 */
#include "ir/ir.h"
#include "ir/rng.h"
#include "testlib.h"

#include <stdarg.h>
#include <time.h>

static bool covered[OP_COUNT];

#define NUM(...) ((int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))
#define SH(...)                                                              \
    ir_shape_ints((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                  (int64_t[]){__VA_ARGS__})
#define SCALAR ir_shape_ints(0, NULL)

/* Checks every element of node's value (numel must match); marks the op. */
#define EXPECT(f, node, tol, ...) \
    expect_vals(&(f), (node), (double[]){__VA_ARGS__}, NUM(__VA_ARGS__), (tol), __LINE__)
/* Checks the dims of node's value. */
#define EXPECT_DIMS(f, node, ...) \
    expect_dims(&(f), (node), (int64_t[]){__VA_ARGS__}, \
                (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), __LINE__)

/* ---------------------------------------------------------------- fixture */

typedef struct Fx {
    IrGraph *g;
    IrInterp *it;
    IrError err;
} Fx;

static Fx fx_new(void)
{
    Fx f;
    memset(&f, 0, sizeof f);
    f.g = ir_graph_new("t");
    return f;
}

static void fx_free(Fx *f)
{
    ir_interp_free(f->it);
    ir_graph_free(f->g);
}

/* Any node, built with ir_node_new; a failure is a test failure. */
static IrNode *node(Fx *f, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat,
                    const IrDType *dt, const IrShape *s)
{
    IrError err = {0};
    IrNode *n = ir_node_new(f->g, op, in, nin, at, nat, dt, s, &err);
    if (!n)
        fprintf(stderr, "building %s: %s\n", ir_op_name(op), err.msg);
    CHECK(n != NULL);
    return n;
}

static IrNode *in_f32(Fx *f, const char *name, IrShape s)
{
    return ir_input(f->g, name, DT_F32, s);
}

static IrNode *in_i32(Fx *f, const char *name, IrShape s)
{
    return ir_input(f->g, name, DT_I32, s);
}

static bool fx_start(Fx *f, const int64_t *binding)
{
    f->it = ir_interp_new(f->g, binding, 1234, &f->err);
    if (!f->it)
        fprintf(stderr, "ir_interp_new: %s\n", f->err.msg);
    CHECK(f->it != NULL);
    return f->it != NULL;
}

/* Sets an input or param from a literal array of its (bound) shape. */
static void fx_put(Fx *f, const char *name, const double *data)
{
    const IrNode *n = NULL;
    for (int i = 0; i < f->g->nnodes && !n; i++)
        if (f->g->nodes[i]->name && !strcmp(f->g->nodes[i]->name, name))
            n = f->g->nodes[i];
    const IrTensor *v = n ? ir_interp_value(f->it, n) : NULL;
    CHECK(v != NULL);
    if (!v)
        return;
    IrTensor *t = ir_tensor_new(v->dtype, v->rank, v->dim);
    memcpy(t->data, data, t->numel * sizeof(double));
    IrError err = {0};
    bool ok = ir_interp_set(f->it, name, t, &err);
    if (!ok)
        fprintf(stderr, "set %s: %s\n", name, err.msg);
    CHECK(ok);
    ir_tensor_free(t);
}

static bool fx_run(Fx *f)
{
    bool ok = ir_interp_run(f->it, &f->err);
    if (!ok)
        fprintf(stderr, "ir_interp_run: %s\n", f->err.msg);
    CHECK(ok);
    return ok;
}

static bool near(double got, double want, double tol)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= tol;
}

static void expect_vals(Fx *f, const IrNode *n, const double *want, int count, double tol,
                        int line)
{
    const IrTensor *v = ir_interp_value(f->it, n);
    test_checks++;
    if (!v || v->numel != count) {
        test_failures++;
        fprintf(stderr, "%s:%d: %s has %lld elements, expected %d\n", __FILE__, line,
                ir_op_name(n->op), v ? (long long)v->numel : -1LL, count);
        return;
    }
    for (int i = 0; i < count; i++)
        if (!near(v->data[i], want[i], tol)) {
            test_failures++;
            fprintf(stderr, "%s:%d: %s element %d = %.17g, expected %.17g\n", __FILE__, line,
                    ir_op_name(n->op), i, v->data[i], want[i]);
            return;
        }
    covered[n->op] = true;
}

static void expect_dims(Fx *f, const IrNode *n, const int64_t *dim, int rank, int line)
{
    const IrTensor *v = ir_interp_value(f->it, n);
    bool ok = v && v->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = v->dim[i] == dim[i];
    test_checks++;
    if (!ok) {
        test_failures++;
        fprintf(stderr, "%s:%d: %s has the wrong dims\n", __FILE__, line, ir_op_name(n->op));
    }
}

static IrNode *attr1(Fx *f, IrOp op, IrNode *a, IrAttr at)
{
    return node(f, op, &a, 1, &at, 1, NULL, NULL);
}

static IrNode *axes_op(Fx *f, IrOp op, IrNode *a, int n, const int64_t *axes, int keep)
{
    IrAttr at[2] = {ir_attr_ints(ATTR_AXES, axes, n), ir_attr_int(ATTR_KEEPDIM, keep)};
    return node(f, op, &a, 1, at, 2, NULL, NULL);
}

/* ---------------------------------------------------------------- sources */

TEST(const_and_iota)
{
    Fx f = fx_new();
    IrNode *c = ir_const(f.g, 2.5, DT_F32, SH(2, 2));
    IrShape s = SH(2, 3);
    IrAttr ax1 = ir_attr_int(ATTR_AXIS, 1), ax0 = ir_attr_int(ATTR_AXIS, 0);
    IrNode *i1 = node(&f, OP_IOTA, NULL, 0, &ax1, 1, NULL, &s);
    IrNode *i0 = node(&f, OP_IOTA, NULL, 0, &ax0, 1, NULL, &s);
    if (fx_start(&f, NULL) && fx_run(&f)) {
        EXPECT(f, c, 0, 2.5, 2.5, 2.5, 2.5);
        EXPECT(f, i1, 0, 0, 1, 2, 0, 1, 2); /* index along axis 1 */
        EXPECT(f, i0, 0, 0, 0, 0, 1, 1, 1); /* index along axis 0 */
        CHECK(ir_interp_value(f.it, i1)->dtype == DT_I32);
    }
    fx_free(&f);
}

TEST(inputs_and_params)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2));
    IrNode *z = ir_param(f.g, "z", SH(2), "zeros", 0, true);
    IrNode *o = ir_param(f.g, "o", SH(3), "ones", 0, true);
    IrNode *s = ir_param(f.g, "s", SH(2), "normal", 0.02, true);
    if (fx_start(&f, NULL)) {
        fx_put(&f, "x", (double[]){3, -4});
        fx_put(&f, "s", (double[]){7, 8}); /* a set param overrides its init */
        if (fx_run(&f)) {
            EXPECT(f, x, 0, 3, -4);
            EXPECT(f, z, 0, 0, 0);
            EXPECT(f, o, 0, 1, 1, 1);
            EXPECT(f, s, 0, 7, 8);
        }
    }
    fx_free(&f);
}

/* Sample statistics of a normal init: mean 0, std 0.5, about 68.27% of the
 * values within one std; deterministic per (seed, name). */
static void normal_stats(const IrTensor *t, double *mean, double *std, double *within)
{
    double s = 0, ss = 0, in = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        s += t->data[i];
        ss += t->data[i] * t->data[i];
        in += fabs(t->data[i]) <= 0.5;
    }
    *mean = s / t->numel;
    *std = sqrt(ss / t->numel - *mean * *mean);
    *within = in / t->numel;
}

TEST(param_normal_init)
{
    IrGraph *g = ir_graph_new("p");
    IrNode *a = ir_param(g, "a", SH(64, 64), "normal", 0.5, true);
    IrNode *b = ir_param(g, "b", SH(64, 64), "normal", 0.5, true);
    IrError err = {0};
    IrInterp *i1 = ir_interp_new(g, NULL, 7, &err), *i2 = ir_interp_new(g, NULL, 7, &err);
    IrInterp *i3 = ir_interp_new(g, NULL, 8, &err);
    CHECK(ir_interp_run(i1, &err) && ir_interp_run(i2, &err) && ir_interp_run(i3, &err));
    const IrTensor *a1 = ir_interp_value(i1, a), *a2 = ir_interp_value(i2, a);
    const IrTensor *a3 = ir_interp_value(i3, a), *b1 = ir_interp_value(i1, b);
    double mean, std, within;
    normal_stats(a1, &mean, &std, &within);
    /* 4096 samples: the std error of the mean is 0.5/64 ~ 0.008, of the
     * fraction within one std ~ 0.007; the tolerances are 4-5 of those. */
    CHECK_NEAR(mean, 0.0, 0.04);
    CHECK_NEAR(std, 0.5, 0.03);
    CHECK_NEAR(within, 0.6827, 0.035);
    CHECK(!memcmp(a1->data, a2->data, a1->numel * sizeof(double))); /* same seed */
    CHECK(memcmp(a1->data, a3->data, a1->numel * sizeof(double)));  /* other seed */
    CHECK(memcmp(a1->data, b1->data, a1->numel * sizeof(double)));  /* other name */
    covered[OP_PARAM] = true;
    ir_interp_free(i1);
    ir_interp_free(i2);
    ir_interp_free(i3);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- unary */

TEST(unary_math)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(5)), *p = in_f32(&f, "p", SH(4));
    IrNode *neg = ir_unary(f.g, OP_NEG, x), *ab = ir_unary(f.g, OP_ABS, x);
    IrNode *relu = ir_unary(f.g, OP_RELU, x), *ex = ir_unary(f.g, OP_EXP, p);
    IrNode *lg = ir_unary(f.g, OP_LOG, p), *sq = ir_unary(f.g, OP_SQRT, p);
    IrNode *rs = ir_unary(f.g, OP_RSQRT, p), *th = ir_unary(f.g, OP_TANH, x);
    IrNode *rc = ir_unary(f.g, OP_RECIP, p);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){-2, -0.5, 0, 1, 0.5});
    fx_put(&f, "p", (double[]){4, 0.25, 1, 2});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, neg, 0, 2, 0.5, 0, -1, -0.5);
    EXPECT(f, ab, 0, 2, 0.5, 0, 1, 0.5);
    EXPECT(f, relu, 0, 0, 0, 0, 1, 0.5);
    /* e^4 = 54.598150033144236, e^0.25 = 1.2840254166877414, e, e^2 */
    EXPECT(f, ex, 1e-12, 54.598150033144236, 1.2840254166877414, 2.718281828459045,
           7.38905609893065);
    /* ln 4 = 2 ln 2 = 1.3862943611198906, ln 0.25 = -ln 4, ln 1 = 0, ln 2 */
    EXPECT(f, lg, 1e-15, 1.3862943611198906, -1.3862943611198906, 0, 0.6931471805599453);
    EXPECT(f, sq, 1e-15, 2, 0.5, 1, 1.4142135623730951);
    EXPECT(f, rs, 1e-15, 0.5, 2, 1, 0.7071067811865476); /* 1/sqrt(2) = sqrt(2)/2 */
    EXPECT(f, rc, 1e-15, 0.25, 4, 1, 0.5);
    /* tanh(t) = (e^2t - 1)/(e^2t + 1): tanh(2) = (e^4-1)/(e^4+1) = 53.598150/55.598150
     * = 0.9640275800758169, tanh(1) = (e^2-1)/(e^2+1) = 6.389056/8.389056
     * = 0.7615941559557649, tanh(0.5) = (e-1)/(e+1) = 0.46211715726000974; odd */
    EXPECT(f, th, 1e-15, -0.9640275800758169, -0.46211715726000974, 0, 0.7615941559557649,
           0.46211715726000974);
out:
    fx_free(&f);
}

/* sin and cos at angles whose values are known exactly: sin(pi/6) = 1/2,
 * cos(pi/6) = sqrt(3)/2, sin(pi/2) = 1, cos(pi) = -1; the double nearest
 * pi misses it by 1.2246e-16, which is what sin(pi) and cos(pi/2) give. */
TEST(sin_cos)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(5));
    IrNode *sn = ir_unary(f.g, OP_SIN, x), *cs = ir_unary(f.g, OP_COS, x);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){0, M_PI / 6, M_PI / 2, -M_PI / 2, M_PI});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, sn, 1e-15, 0, 0.5, 1, -1, 0);
    EXPECT(f, cs, 1e-15, 1, 0.8660254037844386, 0, 0, -1);
out:
    fx_free(&f);
}

TEST(cast)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(4));
    IrDType f32 = DT_F32, i32 = DT_I32, b = DT_BOOL;
    IrNode *cf = node(&f, OP_CAST, &x, 1, NULL, 0, &f32, NULL);
    IrNode *ci = node(&f, OP_CAST, &x, 1, NULL, 0, &i32, NULL);
    IrNode *cb = node(&f, OP_CAST, &x, 1, NULL, 0, &b, NULL);
    if (fx_start(&f, NULL)) {
        fx_put(&f, "x", (double[]){0.1, 2.7, -2.7, 0});
        if (fx_run(&f)) {
            /* 0.1f = 13421773 * 2^-27 = 0.100000001490116119384765625; 2.7f = 11324621 * 2^-22 */
            EXPECT(f, cf, 0, 0.100000001490116119384765625, 11324621.0 / 4194304,
                   -11324621.0 / 4194304, 0);
            EXPECT(f, ci, 0, 0, 2, -2, 0); /* toward zero */
            EXPECT(f, cb, 0, 1, 1, 1, 0);  /* != 0 */
        }
    }
    fx_free(&f);
}

/* ---------------------------------------------------------------- dropout */

TEST(dropout_hash)
{
    /* splitmix64 started at 0 gives 0xE220A8397B1DCDAF first (the published
     * reference sequence); with seed = step = index = 0 the hash input is 0, so
     * u = (0xE220A8397B1DCDAF >> 11) * 2^-53 = 0.88331...: kept at p = 0.5
     * (scale 1/(1-0.5) = 2), dropped at p = 0.9. */
    CHECK(ir_splitmix64(0) == 0xE220A8397B1DCDAFull);
    CHECK(ir_dropout_keep(0, 0, 0, 0.5) == 2.0);
    CHECK(ir_dropout_keep(0, 0, 0, 0.9) == 0.0);
    CHECK(ir_dropout_keep(0, 0, 0, 0.0) == 1.0);
    CHECK(ir_dropout_keep(5, 1, 3, 1.0) == 0.0);
    /* keep fraction ~ 1 - p over many indices (std error ~ 0.003) */
    int kept = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        double k = ir_dropout_keep(99, 4, i, 0.25);
        CHECK(k == 0.0 || k == 1.0 / 0.75);
        kept += k != 0;
    }
    CHECK_NEAR(kept / 20000.0, 0.75, 0.015);
}

static double mask_mean(const IrTensor *t, int *bad)
{
    double s = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        s += t->data[i];
        *bad += t->data[i] != 0 && t->data[i] != 2;
    }
    return s / t->numel;
}

static int count_diff(const IrTensor *a, const IrTensor *b)
{
    int d = 0;
    for (int64_t i = 0; i < a->numel; i++)
        d += a->data[i] != b->data[i];
    return d;
}

TEST(dropout)
{
    Fx f = fx_new();
    enum { N = 4096 };
    IrNode *x = ir_const(f.g, 1.0, DT_F32, SH(N)), *s0 = in_i32(&f, "s0", SCALAR);
    IrNode *s1 = in_i32(&f, "s1", SCALAR), *v = in_f32(&f, "v", SH(3));
    IrAttr at[2] = {ir_attr_float(ATTR_P, 0.5), ir_attr_int(ATTR_SEED, 11)};
    IrAttr other[2] = {ir_attr_float(ATTR_P, 0.5), ir_attr_int(ATTR_SEED, 12)};
    IrNode *d = node(&f, OP_DROPOUT, &x, 1, at, 2, NULL, NULL);
    IrNode *d0 = node(&f, OP_DROPOUT, (IrNode *[]){x, s0}, 2, at, 2, NULL, NULL);
    IrNode *d1 = node(&f, OP_DROPOUT, (IrNode *[]){x, s1}, 2, at, 2, NULL, NULL);
    IrNode *dseed = node(&f, OP_DROPOUT, &x, 1, other, 2, NULL, NULL);
    IrNode *id = attr1(&f, OP_DROPOUT, v, ir_attr_float(ATTR_P, 0.0));
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "s0", (double[]){0});
    fx_put(&f, "s1", (double[]){1});
    fx_put(&f, "v", (double[]){1.5, -2, 3});
    if (!fx_run(&f))
        goto out;
    const IrTensor *td = ir_interp_value(f.it, d);
    int bad = 0;
    /* mask mean 1 (std error sqrt(p/(1-p)/N) = 1/64); values 0 or 1/(1-p) = 2 */
    CHECK_NEAR(mask_mean(td, &bad), 1.0, 0.07);
    CHECK(bad == 0);
    CHECK(count_diff(td, ir_interp_value(f.it, d0)) == 0);  /* absent step = step 0 */
    /* a new step (or seed) redraws: P(differ) = 2 p (1-p) = 1/2 per element */
    CHECK_NEAR(count_diff(td, ir_interp_value(f.it, d1)) / (double)N, 0.5, 0.05);
    CHECK_NEAR(count_diff(td, ir_interp_value(f.it, dseed)) / (double)N, 0.5, 0.05);
    for (int i = 0; i < N; i++) /* element i uses the documented hash of (seed, step, i) */
        if (td->data[i] != ir_dropout_keep(11, 0, i, 0.5)) {
            CHECK(!"dropout disagrees with ir_dropout_keep");
            break;
        }
    CHECK(fx_run(&f) && count_diff(td, ir_interp_value(f.it, d)) == 0); /* deterministic */
    EXPECT(f, id, 0, 1.5, -2, 3); /* p = 0 is the identity */
    covered[OP_DROPOUT] = true;
out:
    fx_free(&f);
}

/* ---------------------------------------------------------------- binary */

TEST(binary_broadcast)
{
    Fx f = fx_new();
    IrNode *a = in_f32(&f, "a", SH(2, 3)), *b = in_f32(&f, "b", SH(3));
    IrNode *col = in_f32(&f, "col", SH(2, 1)), *row = in_f32(&f, "row", SH(1, 3));
    IrNode *k = in_f32(&f, "k", SCALAR);
    IrNode *add = ir_binary(f.g, OP_ADD, a, b);       /* [2,3] + [3]   */
    IrNode *outer = ir_binary(f.g, OP_ADD, col, row); /* [2,1] + [1,3] */
    IrNode *sub = ir_binary(f.g, OP_SUB, b, a);       /* [3] - [2,3]   */
    IrNode *mul = ir_binary(f.g, OP_MUL, a, col);     /* [2,3] * [2,1] */
    IrNode *dv = ir_binary(f.g, OP_DIV, col, a);      /* [2,1] / [2,3] */
    IrNode *mx = ir_binary(f.g, OP_MAXIMUM, a, k), *mn = ir_binary(f.g, OP_MINIMUM, k, a);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "a", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "b", (double[]){10, 20, 30});
    fx_put(&f, "col", (double[]){2, 4});
    fx_put(&f, "row", (double[]){10, 20, 30});
    fx_put(&f, "k", (double[]){3.5});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, add, 0, 11, 22, 33, 14, 25, 36);
    EXPECT(f, outer, 0, 12, 22, 32, 14, 24, 34);
    EXPECT(f, sub, 0, 9, 18, 27, 6, 15, 24);
    EXPECT(f, mul, 0, 2, 4, 6, 16, 20, 24);
    EXPECT(f, dv, 1e-15, 2.0 / 1, 2.0 / 2, 2.0 / 3, 4.0 / 4, 4.0 / 5, 4.0 / 6);
    EXPECT(f, mx, 0, 3.5, 3.5, 3.5, 4, 5, 6);
    EXPECT(f, mn, 0, 1, 2, 3, 3.5, 3.5, 3.5);
out:
    fx_free(&f);
}

TEST(integer_div_and_nan)
{
    Fx f = fx_new();
    IrNode *p = in_i32(&f, "p", SH(4)), *q = in_i32(&f, "q", SH(4));
    IrNode *x = in_f32(&f, "x", SH(3)), *y = in_f32(&f, "y", SH(3));
    IrNode *dv = ir_binary(f.g, OP_DIV, p, q);
    IrNode *mx = ir_binary(f.g, OP_MAXIMUM, x, y), *mn = ir_binary(f.g, OP_MINIMUM, x, y);
    IrNode *rmax = axes_op(&f, OP_MAX, x, 0, NULL, 0);
    if (fx_start(&f, NULL)) {
        fx_put(&f, "p", (double[]){7, -7, 6, 1});
        fx_put(&f, "q", (double[]){2, 2, -4, 3});
        fx_put(&f, "x", (double[]){NAN, 1, 5});
        fx_put(&f, "y", (double[]){0, NAN, 2});
        if (fx_run(&f)) {
            EXPECT(f, dv, 0, 3, -3, -1, 0); /* C division: 7/2=3, -7/2=-3, 6/-4=-1, 1/3=0 */
            EXPECT(f, mx, 0, NAN, NAN, 5);  /* NaN propagates, as in PyTorch */
            EXPECT(f, mn, 0, NAN, NAN, 2);
            EXPECT(f, rmax, 0, NAN);
        }
        fx_put(&f, "q", (double[]){2, 0, 1, 1});
        CHECK(!ir_interp_run(f.it, &f.err) && strstr(f.err.msg, "division by zero"));
    }
    fx_free(&f);
}

TEST(compare_and_where)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(3)), *y = in_f32(&f, "y", SCALAR);
    IrNode *a = in_f32(&f, "a", SH(2, 3)), *b = in_f32(&f, "b", SH(3));
    IrNode *cm = in_f32(&f, "cm", SH(2, 1)), *zero = ir_const(f.g, 0, DT_F32, SCALAR);
    IrNode *lt = ir_binary(f.g, OP_LT, x, y), *le = ir_binary(f.g, OP_LE, x, y);
    IrNode *eq = ir_binary(f.g, OP_EQ, y, x);
    IrNode *cond = ir_binary(f.g, OP_LT, zero, cm); /* [2,1] bool */
    IrNode *w = node(&f, OP_WHERE, (IrNode *[]){cond, a, b}, 3, NULL, 0, NULL, NULL);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3});
    fx_put(&f, "y", (double[]){2});
    fx_put(&f, "a", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "b", (double[]){10, 20, 30});
    fx_put(&f, "cm", (double[]){1, -1}); /* cond = [[true], [false]] */
    if (!fx_run(&f))
        goto out;
    EXPECT(f, lt, 0, 1, 0, 0);
    EXPECT(f, le, 0, 1, 1, 0);
    EXPECT(f, eq, 0, 0, 1, 0);
    CHECK(ir_interp_value(f.it, eq)->dtype == DT_BOOL);
    EXPECT(f, w, 0, 1, 2, 3, 10, 20, 30); /* row 0 from a, row 1 from b */
out:
    fx_free(&f);
}

/* ---------------------------------------------------------------- reductions */

TEST(reduce_sum)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 3)), *c = in_f32(&f, "c", SH(2, 2, 2));
    IrNode *s0 = axes_op(&f, OP_SUM, x, 1, (int64_t[]){0}, 0);
    IrNode *s0k = axes_op(&f, OP_SUM, x, 1, (int64_t[]){0}, 1);
    IrNode *s1 = axes_op(&f, OP_SUM, x, 1, (int64_t[]){1}, 0);
    IrNode *s1k = axes_op(&f, OP_SUM, x, 1, (int64_t[]){-1}, 1);
    IrNode *all = axes_op(&f, OP_SUM, x, 0, NULL, 0);
    IrNode *allk = axes_op(&f, OP_SUM, x, 2, (int64_t[]){0, 1}, 1);
    IrNode *ends = axes_op(&f, OP_SUM, c, 2, (int64_t[]){0, 2}, 0);
    IrNode *endsk = axes_op(&f, OP_SUM, c, 2, (int64_t[]){2, 0}, 1);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "c", (double[]){0, 1, 2, 3, 4, 5, 6, 7}); /* c[i][j][k] = 4i + 2j + k */
    if (!fx_run(&f))
        goto out;
    EXPECT(f, s0, 0, 5, 7, 9);    /* 1+4, 2+5, 3+6 */
    EXPECT(f, s0k, 0, 5, 7, 9);
    EXPECT(f, s1, 0, 6, 15);      /* 1+2+3, 4+5+6 */
    EXPECT(f, s1k, 0, 6, 15);
    EXPECT(f, all, 0, 21);
    EXPECT(f, allk, 0, 21);
    EXPECT(f, ends, 0, 10, 18);   /* j=0: 0+1+4+5, j=1: 2+3+6+7 */
    EXPECT(f, endsk, 0, 10, 18);
    EXPECT_DIMS(f, s0, 3);
    EXPECT_DIMS(f, s0k, 1, 3);
    EXPECT_DIMS(f, s1k, 2, 1);
    EXPECT_DIMS(f, all, );
    EXPECT_DIMS(f, allk, 1, 1);
    EXPECT_DIMS(f, endsk, 1, 2, 1);
out:
    fx_free(&f);
}

TEST(reduce_max_and_mean)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 3)), *y = in_f32(&f, "y", SH(2, 3));
    IrNode *m0 = axes_op(&f, OP_MAX, x, 1, (int64_t[]){0}, 0);
    IrNode *m1 = axes_op(&f, OP_MAX, x, 1, (int64_t[]){1}, 1);
    IrNode *mall = axes_op(&f, OP_MAX, x, 0, NULL, 0);
    IrNode *a0 = axes_op(&f, OP_MEAN, y, 1, (int64_t[]){0}, 0);
    IrNode *a1 = axes_op(&f, OP_MEAN, y, 1, (int64_t[]){1}, 1);
    IrNode *aall = axes_op(&f, OP_MEAN, y, 0, NULL, 0);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){-1, -5, 2, -3, -2, -7});
    fx_put(&f, "y", (double[]){1, 2, 3, 4, 5, 6});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, m0, 0, -1, -2, 2); /* max(-1,-3), max(-5,-2), max(2,-7) */
    EXPECT(f, m1, 0, 2, -2);     /* max(-1,-5,2), max(-3,-2,-7) */
    EXPECT(f, mall, 0, 2);
    EXPECT(f, a0, 1e-15, 2.5, 3.5, 4.5);
    EXPECT(f, a1, 1e-15, 2, 5);  /* 6/3, 15/3 */
    EXPECT(f, aall, 1e-15, 3.5); /* 21/6 */
    EXPECT_DIMS(f, m1, 2, 1);
    EXPECT_DIMS(f, a1, 2, 1);
out:
    fx_free(&f);
}

/* ---------------------------------------------------------------- movement */

TEST(reshape_transpose_broadcast)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 3)), *c = in_f32(&f, "c", SH(1, 2, 3));
    IrNode *col = in_f32(&f, "col", SH(2, 1)), *v = in_f32(&f, "v", SH(3));
    IrShape s32 = SH(3, 2), s23 = SH(2, 3), s223 = SH(2, 2, 3);
    IrNode *rs = node(&f, OP_RESHAPE, &x, 1, NULL, 0, NULL, &s32);
    IrNode *t2 = attr1(&f, OP_TRANSPOSE, x, ir_attr_ints(ATTR_PERM, (int64_t[]){1, 0}, 2));
    IrNode *t3 = attr1(&f, OP_TRANSPOSE, c, ir_attr_ints(ATTR_PERM, (int64_t[]){2, 0, 1}, 3));
    IrNode *bc = node(&f, OP_BROADCAST, &col, 1, NULL, 0, NULL, &s23);
    IrNode *bv = node(&f, OP_BROADCAST, &v, 1, NULL, 0, NULL, &s223);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "c", (double[]){0, 1, 2, 3, 4, 5}); /* c[0][j][k] = 3j + k */
    fx_put(&f, "col", (double[]){1, 2});
    fx_put(&f, "v", (double[]){7, 8, 9});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, rs, 0, 1, 2, 3, 4, 5, 6);
    EXPECT_DIMS(f, rs, 3, 2);
    EXPECT(f, t2, 0, 1, 4, 2, 5, 3, 6);
    /* out[a][0][b] = c[0][b][a] = 3b + a: a=0: 0,3; a=1: 1,4; a=2: 2,5 */
    EXPECT(f, t3, 0, 0, 3, 1, 4, 2, 5);
    EXPECT_DIMS(f, t3, 3, 1, 2);
    EXPECT(f, bc, 0, 1, 1, 1, 2, 2, 2);
    EXPECT(f, bv, 0, 7, 8, 9, 7, 8, 9, 7, 8, 9, 7, 8, 9);
out:
    fx_free(&f);
}

static IrNode *slice(Fx *f, IrNode *x, int64_t axis, int64_t start, int64_t end)
{
    IrAttr at[3] = {ir_attr_int(ATTR_AXIS, axis), ir_attr_int(ATTR_START, start),
                    ir_attr_int(ATTR_END, end)};
    return node(f, OP_SLICE, &x, 1, at, 3, NULL, NULL);
}

TEST(slice_and_concat)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 3)), *c = in_f32(&f, "c", SH(2, 3, 2));
    IrNode *a = in_f32(&f, "a", SH(2, 1)), *b = in_f32(&f, "b", SH(2, 2));
    IrNode *r1 = in_f32(&f, "r1", SH(1, 2)), *r3 = in_f32(&f, "r3", SH(1, 2));
    IrNode *s1 = slice(&f, x, 1, 1, 3), *s0 = slice(&f, x, 0, 1, 2);
    IrNode *sm = slice(&f, c, -2, 1, 2);
    IrAttr ax1 = ir_attr_int(ATTR_AXIS, -1), ax0 = ir_attr_int(ATTR_AXIS, 0);
    IrNode *cat1 = node(&f, OP_CONCAT, (IrNode *[]){a, b}, 2, &ax1, 1, NULL, NULL);
    IrNode *cat0 = node(&f, OP_CONCAT, (IrNode *[]){r1, b, r3}, 3, &ax0, 1, NULL, NULL);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "c", (double[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}); /* 6i + 2j + k */
    fx_put(&f, "a", (double[]){1, 2});
    fx_put(&f, "b", (double[]){10, 11, 12, 13});
    fx_put(&f, "r1", (double[]){-1, -2});
    fx_put(&f, "r3", (double[]){-3, -4});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, s1, 0, 2, 3, 5, 6);
    EXPECT(f, s0, 0, 4, 5, 6);
    EXPECT(f, sm, 0, 2, 3, 8, 9); /* c[i][1][k] = 6i + 2 + k */
    EXPECT_DIMS(f, sm, 2, 1, 2);
    EXPECT(f, cat1, 0, 1, 10, 11, 2, 12, 13);
    EXPECT(f, cat0, 0, -1, -2, 10, 11, 12, 13, -3, -4);
    EXPECT_DIMS(f, cat0, 4, 2);
out:
    fx_free(&f);
}

/* ---------------------------------------------------------------- matmul, gather */

static IrNode *matmul(Fx *f, IrNode *a, IrNode *b, int ta, int tb)
{
    IrAttr at[2] = {ir_attr_int(ATTR_TA, ta), ir_attr_int(ATTR_TB, tb)};
    return node(f, OP_MATMUL, (IrNode *[]){a, b}, 2, at, 2, NULL, NULL);
}

TEST(matmul_2d)
{
    Fx f = fx_new();
    IrNode *a = in_f32(&f, "a", SH(2, 3)), *b = in_f32(&f, "b", SH(3, 2));
    IrNode *at = in_f32(&f, "at", SH(3, 2)), *bt = in_f32(&f, "bt", SH(2, 3));
    IrNode *p = matmul(&f, a, b, 0, 0), *pa = matmul(&f, at, b, 1, 0);
    IrNode *pb = matmul(&f, a, bt, 0, 1), *pab = matmul(&f, at, bt, 1, 1);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "a", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "at", (double[]){1, 4, 2, 5, 3, 6}); /* a transposed */
    fx_put(&f, "b", (double[]){7, 8, 9, 10, 11, 12});
    fx_put(&f, "bt", (double[]){7, 9, 11, 8, 10, 12}); /* b transposed */
    if (!fx_run(&f))
        goto out;
    /* [1 2 3; 4 5 6] @ [7 8; 9 10; 11 12]:
     * 1*7+2*9+3*11 = 58, 1*8+2*10+3*12 = 64, 4*7+5*9+6*11 = 139, 4*8+5*10+6*12 = 154 */
    EXPECT(f, p, 0, 58, 64, 139, 154);
    EXPECT(f, pa, 0, 58, 64, 139, 154);
    EXPECT(f, pb, 0, 58, 64, 139, 154);
    EXPECT(f, pab, 0, 58, 64, 139, 154);
out:
    fx_free(&f);
}

TEST(matmul_batch_broadcast)
{
    Fx f = fx_new();
    IrNode *a = in_f32(&f, "a", SH(2, 2, 2)), *b = in_f32(&f, "b", SH(2, 2));
    IrNode *s = in_f32(&f, "s", SH(1, 2, 2)), *bb = in_f32(&f, "bb", SH(2, 2, 2));
    IrNode *r = in_f32(&f, "r", SH(2, 1, 1, 2)), *cl = in_f32(&f, "cl", SH(3, 2, 1));
    IrNode *p1 = matmul(&f, a, b, 0, 0);   /* [2,2,2] @ [2,2]     -> [2,2,2]     */
    IrNode *p2 = matmul(&f, s, bb, 0, 0);  /* [1,2,2] @ [2,2,2]   -> [2,2,2]     */
    IrNode *p3 = matmul(&f, r, cl, 0, 0);  /* [2,1,1,2] @ [3,2,1] -> [2,3,1,1]   */
    IrNode *p4 = matmul(&f, bb, s, 1, 1);  /* [2,2,2]^T @ [1,2,2]^T              */
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "a", (double[]){1, 0, 0, 1, 0, 1, 1, 0}); /* identity, swap */
    fx_put(&f, "b", (double[]){1, 2, 3, 4});
    fx_put(&f, "s", (double[]){1, 1, 0, 1});                 /* shear [1 1; 0 1] */
    fx_put(&f, "bb", (double[]){1, 0, 0, 1, 1, 2, 3, 4});    /* identity, [1 2; 3 4] */
    fx_put(&f, "r", (double[]){1, 1, 2, 1});                 /* rows [i+1, 1] */
    fx_put(&f, "cl", (double[]){0, 10, 1, 10, 2, 10});       /* columns [j, 10] */
    if (!fx_run(&f))
        goto out;
    EXPECT(f, p1, 0, 1, 2, 3, 4, 3, 4, 1, 2);   /* I @ B = B; swap @ B swaps B's rows */
    /* [1 1; 0 1] @ I = itself; [1 1; 0 1] @ [1 2; 3 4] = [1+3 2+4; 3 4] */
    EXPECT(f, p2, 0, 1, 1, 0, 1, 4, 6, 3, 4);
    EXPECT(f, p3, 0, 10, 11, 12, 10, 12, 14); /* (i+1)*j + 10 */
    EXPECT_DIMS(f, p3, 2, 3, 1, 1);
    /* bb^T @ s^T = (s @ bb)^T: batch 0 = [1 0; 1 1], batch 1 = [4 3; 6 4] */
    EXPECT(f, p4, 0, 1, 0, 1, 1, 4, 3, 6, 4);
out:
    fx_free(&f);
}

TEST(gather)
{
    Fx f = fx_new();
    IrNode *t = in_f32(&f, "t", SH(3, 2)), *i = in_i32(&f, "i", SH(2, 2));
    IrNode *v = in_f32(&f, "v", SH(4)), *j = in_i32(&f, "j", SH(3));
    IrNode *g1 = ir_binary(f.g, OP_GATHER, t, i), *g2 = ir_binary(f.g, OP_GATHER, v, j);
    g1->name = "emb";
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "t", (double[]){0, 1, 10, 11, 20, 21});
    fx_put(&f, "i", (double[]){2, 0, 2, 2}); /* repeated indices */
    fx_put(&f, "v", (double[]){5, 6, 7, 8});
    fx_put(&f, "j", (double[]){3, 3, 0});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, g1, 0, 20, 21, 0, 1, 20, 21, 20, 21);
    EXPECT_DIMS(f, g1, 2, 2, 2);
    EXPECT(f, g2, 0, 8, 8, 5);
    fx_put(&f, "i", (double[]){0, 1, 3, 0}); /* 3 is not a row of a 3-row table */
    CHECK(!ir_interp_run(f.it, &f.err));
    CHECK(strstr(f.err.msg, "emb") && strstr(f.err.msg, "index 3") &&
          strstr(f.err.msg, "gather"));
    fx_put(&f, "i", (double[]){0, -1, 1, 0});
    CHECK(!ir_interp_run(f.it, &f.err) && strstr(f.err.msg, "index -1"));
out:
    fx_free(&f);
}

TEST(scatter_add)
{
    Fx f = fx_new();
    IrNode *b = in_f32(&f, "b", SH(3, 2)), *i = in_i32(&f, "i", SH(2, 2));
    IrNode *s = in_f32(&f, "s", SH(2, 2, 2));
    IrNode *sc = node(&f, OP_SCATTER_ADD, (IrNode *[]){b, i, s}, 3, NULL, 0, NULL, NULL);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "b", (double[]){0, 1, 10, 11, 20, 21});
    fx_put(&f, "i", (double[]){2, 0, 2, 2}); /* row 2 three times, row 0 once, row 1 never */
    fx_put(&f, "s", (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    if (!fx_run(&f))
        goto out;
    /* row 0: 0+3, 1+4; row 1 unchanged; row 2: 20+1+5+7, 21+2+6+8 */
    EXPECT(f, sc, 0, 3, 5, 10, 11, 33, 37);
    fx_put(&f, "i", (double[]){0, 3, 1, 0});
    CHECK(!ir_interp_run(f.it, &f.err) && strstr(f.err.msg, "index 3"));
out:
    fx_free(&f);
}

/* ---------------------------------------------------------------- composites */

TEST(softmax)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 3)), *y = in_f32(&f, "y", SH(2, 3));
    IrNode *sm = ir_unary(f.g, OP_SOFTMAX, x);
    IrNode *sm0 = attr1(&f, OP_SOFTMAX, y, ir_attr_int(ATTR_AXIS, 0));
    IrNode *ls = ir_unary(f.g, OP_LOG_SOFTMAX, x);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, 1000, 1001, 1002}); /* row 2 = row 1 + 999 */
    fx_put(&f, "y", (double[]){0, 0, 2, 0, 1.0986122886681098, 0}); /* ln 3 */
    if (!fx_run(&f))
        goto out;
    /* softmax([1,2,3]) = [1, e, e^2] / (1 + e + e^2), 1 + e + e^2 = 11.107337927389695:
     * 1/11.1073 = 0.09003057317038046, e/11.1073 = 0.24472847105479764,
     * e^2/11.1073 = 0.6652409557748219.  Shifting a row by 999 changes nothing
     * (and would overflow exp without the max subtraction). */
    EXPECT(f, sm, 1e-15, 0.09003057317038046, 0.24472847105479764, 0.6652409557748219,
           0.09003057317038046, 0.24472847105479764, 0.6652409557748219);
    /* along axis 0: columns [0,0] -> 1/2,1/2; [0, ln 3] -> 1/4, 3/4;
     * [2, 0] -> 1/(1+e^-2) = 0.8807970779778823, e^-2/(1+e^-2) = 0.11920292202211755 */
    EXPECT(f, sm0, 1e-15, 0.5, 0.25, 0.8807970779778823, 0.5, 0.75, 0.11920292202211755);
    /* log_softmax = x - logsumexp, logsumexp([1,2,3]) = 3 + ln(1 + e^-1 + e^-2)
     * = 3 + 0.4076059644443804 */
    EXPECT(f, ls, 1e-13, -2.4076059644443804, -1.4076059644443804, -0.4076059644443804,
           -2.4076059644443804, -1.4076059644443804, -0.4076059644443804);
    const IrTensor *v = ir_interp_value(f.it, sm);
    CHECK_NEAR(v->data[0] + v->data[1] + v->data[2], 1.0, 1e-15);
out:
    fx_free(&f);
}

TEST(layernorm)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 4)), *sc = in_f32(&f, "sc", SH(4));
    IrNode *sh = in_f32(&f, "sh", SH(4)), *z = in_f32(&f, "z", SH(2));
    IrNode *one = ir_const(f.g, 1, DT_F32, SH(2)), *nil = ir_const(f.g, 0, DT_F32, SH(2));
    IrAttr eps0 = ir_attr_float(ATTR_EPS, 0.0);
    IrNode *ln = node(&f, OP_LAYERNORM, (IrNode *[]){x, sc, sh}, 3, &eps0, 1, NULL, NULL);
    IrNode *ld = node(&f, OP_LAYERNORM, (IrNode *[]){z, one, nil}, 3, NULL, 0, NULL, NULL);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, 4, 0, 0, 2, 2});
    fx_put(&f, "sc", (double[]){1, 2, 1, 2});
    fx_put(&f, "sh", (double[]){0, 0, 1, 1});
    fx_put(&f, "z", (double[]){0, 2});
    if (!fx_run(&f))
        goto out;
    /* row [1,2,3,4]: mean 2.5, biased var (2.25+0.25+0.25+2.25)/4 = 1.25,
     * 1/sqrt(1.25) = 0.8944271909999159: normalised [-1.5,-0.5,0.5,1.5] * 0.894427
     * = [-1.3416407864998738, -0.4472135954999579, +0.447..., +1.341...];
     * then * [1,2,1,2] + [0,0,1,1].  Row [0,0,2,2]: mean 1, var 1 -> [-1,-1,1,1]. */
    EXPECT(f, ln, 1e-15, -1.3416407864998738, -0.8944271909999159, 1.4472135954999579,
           3.6832815729997477, -1, -2, 2, 3);
    /* default eps 1e-5: [0,2] -> mean 1, var 1 -> +-1/sqrt(1.00001)
     * = +-(1 - 0.5e-5 + 0.375e-10) = +-0.9999950000375 */
    EXPECT(f, ld, 1e-13, -0.9999950000375, 0.9999950000375);
out:
    fx_free(&f);
}

TEST(gelu)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(5)), *y = ir_unary(f.g, OP_GELU, x);
    if (fx_start(&f, NULL)) {
        fx_put(&f, "x", (double[]){0, 1, -1, 2, -3});
        /* c = sqrt(2/pi) = 0.7978845608028654.
         * x=1:  z = c*1.044715 = 0.8335619689391656, tanh z = 0.6823839812165535,
         *       0.5*(1+0.68238...) = 0.8411919906082768
         * x=-1: gelu(-x) = gelu(x) - x (z is odd): 0.84119... - 1 = -0.15880800939172324
         * x=2:  z = c*(2+0.35772) = 1.8811883866961319, tanh z = 0.9545976940877751,
         *       1 + 0.95459... = 1.954597694087775
         * x=-3: z = c*(-3-1.207305) = -3.3569437020886994, tanh z = -0.9975750719454847,
         *       -1.5*(1-0.99757507...) = -0.0036373920817729943 */
        if (fx_run(&f))
            EXPECT(f, y, 1e-15, 0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775,
                   -0.0036373920817729943);
    }
    fx_free(&f);
}

TEST(causal_mask)
{
    Fx f = fx_new();
    IrNode *sq = in_f32(&f, "sq", SH(3, 3)), *wide = in_f32(&f, "wide", SH(2, 4));
    IrNode *tall = in_f32(&f, "tall", SH(3, 2)), *bat = in_f32(&f, "bat", SH(2, 2, 2));
    IrNode *m1 = ir_unary(f.g, OP_CAUSAL_MASK, sq), *m2 = ir_unary(f.g, OP_CAUSAL_MASK, wide);
    IrNode *m3 = ir_unary(f.g, OP_CAUSAL_MASK, tall), *m4 = ir_unary(f.g, OP_CAUSAL_MASK, bat);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "sq", (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    fx_put(&f, "wide", (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    fx_put(&f, "tall", (double[]){1, 2, 3, 4, 5, 6});
    fx_put(&f, "bat", (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    if (!fx_run(&f))
        goto out;
    double ninf = -INFINITY;
    EXPECT(f, m1, 0, 1, ninf, ninf, 4, 5, ninf, 7, 8, 9); /* j > i */
    EXPECT(f, m2, 0, 1, 2, 3, ninf, 5, 6, 7, 8);          /* Tq=2, Tk=4: j > i + 2 */
    EXPECT(f, m3, 0, ninf, ninf, 3, ninf, 5, 6);          /* Tq=3, Tk=2: j > i - 1 */
    EXPECT(f, m4, 0, 1, ninf, 3, 4, 5, ninf, 7, 8);       /* each batch alike */
out:
    fx_free(&f);
}

static IrNode *xent(Fx *f, IrNode *logits, IrNode *t, int64_t ignore)
{
    IrAttr at = ir_attr_int(ATTR_IGNORE_INDEX, ignore);
    return node(f, OP_CROSS_ENTROPY, (IrNode *[]){logits, t}, 2, &at, ignore == -100 ? 0 : 1,
                NULL, NULL);
}

TEST(cross_entropy)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(3, 3)), *t = in_i32(&f, "t", SH(3));
    IrNode *u = in_i32(&f, "u", SH(3)), *z = in_i32(&f, "z", SH(3));
    IrNode *x3 = in_f32(&f, "x3", SH(1, 2, 3)), *t3 = in_i32(&f, "t3", SH(1, 2));
    IrNode *l = xent(&f, x, t, -100), *lu = xent(&f, x, u, 2), *lz = xent(&f, x, z, -100);
    IrNode *l3 = xent(&f, x3, t3, -100);
    l->name = "loss";
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, 0, 0, 0, 5, 5, 5});
    fx_put(&f, "t", (double[]){2, 0, -100});
    fx_put(&f, "u", (double[]){2, 0, 1}); /* ignore_index = 2 skips row 0 */
    fx_put(&f, "z", (double[]){-100, -100, -100});
    fx_put(&f, "x3", (double[]){1, 2, 3, 0, 0, 0});
    fx_put(&f, "t3", (double[]){2, 0});
    if (!fx_run(&f))
        goto out;
    /* row 0: logsumexp([1,2,3]) - 3 = 0.4076059644443804; row 1: ln 3 - 0 =
     * 1.0986122886681098; row 2 ignored: mean = 1.5062182531124902 / 2 */
    EXPECT(f, l, 1e-15, 0.7531091265562451);
    /* rows 1 and 2: ln 3 each (row 2: 5 + ln 3 - 5) */
    EXPECT(f, lu, 1e-15, 1.0986122886681098);
    EXPECT(f, lz, 0, 0); /* every target ignored: 0 by definition */
    EXPECT(f, l3, 1e-15, 0.7531091265562451);
    EXPECT_DIMS(f, l, );
    fx_put(&f, "t", (double[]){2, 3, 0}); /* 3 is not a class of 3 */
    CHECK(!ir_interp_run(f.it, &f.err) && strstr(f.err.msg, "target 3") &&
          strstr(f.err.msg, "loss"));
    fx_put(&f, "t", (double[]){2, -1, 0}); /* -1 is not the ignore index */
    CHECK(!ir_interp_run(f.it, &f.err) && strstr(f.err.msg, "target -1"));
out:
    fx_free(&f);
}

/* causal_attention by hand: T = 2, one head of width 1, scale 1.  Row 0
 * sees only key 0 (out = v0 = 2); row 1 scores (q1 k0, q1 k1) = (0, ln 3),
 * weights (1/4, 3/4), out = 2/4 + 6 * 3/4 = 5.  The gradient with dout = 1:
 * dv = (1 + 1/4, 3/4); row 1: g = (2, 6), sum P g = 5, dS = (-3/4, 3/4),
 * dq1 = 3/4 ln 3, dk = (-3/4 q1, 3/4 q1); row 0 has dS = 0. */
TEST(causal_attention)
{
    Fx f = fx_new();
    IrNode *qkv = in_f32(&f, "qkv", SH(2, 3)), *dout = in_f32(&f, "dout", SH(2, 1));
    IrAttr at[2] = {ir_attr_int(ATTR_HEADS, 1), ir_attr_float(ATTR_SCALE, 1.0)};
    IrNode *a = node(&f, OP_CAUSAL_ATTENTION, &qkv, 1, at, 2, NULL, NULL);
    IrNode *da = node(&f, OP_CAUSAL_ATTENTION_GRAD, (IrNode *[]){qkv, a, dout}, 3, at, 2, NULL,
                      NULL);
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "qkv", (double[]){7, 0, 2, 1, log(3.0), 6});
    fx_put(&f, "dout", (double[]){1, 1});
    if (!fx_run(&f))
        goto out;
    EXPECT(f, a, 1e-15, 2, 5);
    EXPECT_DIMS(f, a, 2, 1);
    EXPECT(f, da, 1e-15, 0, -0.75, 1.25, 0.75 * log(3.0), 0.75, 0.75);
    covered[OP_CAUSAL_ATTENTION] = covered[OP_CAUSAL_ATTENTION_GRAD] = true;
out:
    fx_free(&f);
}

/* ---------------------------------------------------------------- binding, errors */

TEST(symbolic_binding)
{
    Fx f = fx_new();
    int B = ir_graph_sym(f.g, "B"), T = ir_graph_sym(f.g, "T");
    IrDim bd = ir_dim_sym(B), td = ir_dim_sym(T), bt;
    CHECK(ir_dim_mul(bd, td, &bt));
    IrNode *x = in_f32(&f, "x", ir_shape_of(2, (IrDim[]){bd, ir_dim_const(2)}));
    IrNode *y = in_f32(&f, "y", ir_shape_of(2, (IrDim[]){bd, td}));
    IrShape flat = ir_shape_of(1, &bt);
    IrNode *s = axes_op(&f, OP_SUM, x, 1, (int64_t[]){0}, 0);
    IrNode *r = node(&f, OP_RESHAPE, &y, 1, NULL, 0, NULL, &flat);
    if (fx_start(&f, (int64_t[]){3, 2})) {
        fx_put(&f, "x", (double[]){1, 2, 3, 4, 5, 6});
        fx_put(&f, "y", (double[]){1, 2, 3, 4, 5, 6});
        if (fx_run(&f)) {
            EXPECT(f, s, 0, 9, 12); /* 1+3+5, 2+4+6 */
            EXPECT(f, r, 0, 1, 2, 3, 4, 5, 6);
            EXPECT_DIMS(f, r, 6);   /* B*T = 3*2 */
        }
        IrTensor *bad = ir_tensor_new(DT_F32, 2, (int64_t[]){2, 2});
        CHECK(!ir_interp_set(f.it, "x", bad, &f.err) && strstr(f.err.msg, "f32[3,2]"));
        bad->dtype = DT_I32;
        CHECK(!ir_interp_set(f.it, "nope", bad, &f.err) && strstr(f.err.msg, "nope"));
        ir_tensor_free(bad);
    }
    IrError err = {0};
    CHECK(!ir_interp_new(f.g, (int64_t[]){0, 2}, 1, &err) && strstr(err.msg, "B"));
    CHECK(!ir_interp_new(f.g, NULL, 1, &err) && strstr(err.msg, "binding"));
    fx_free(&f);
}

TEST(missing_input)
{
    Fx f = fx_new();
    IrNode *x = in_i32(&f, "tokens", SH(2));
    ir_graph_add_output(f.g, "y", ir_unary(f.g, OP_NEG, x));
    if (fx_start(&f, NULL)) {
        CHECK(!ir_interp_run(f.it, &f.err));
        CHECK(strstr(f.err.msg, "tokens") != NULL);
        fx_put(&f, "tokens", (double[]){4, -5});
        CHECK(fx_run(&f));
        const IrTensor *y = ir_interp_output(f.it, "y");
        CHECK(y && y->data[0] == -4 && y->data[1] == 5);
        CHECK(ir_interp_output(f.it, "z") == NULL);
        covered[OP_INPUT] = true;
    }
    fx_free(&f);
}

TEST(too_large)
{
    Fx f = fx_new();
    int B = ir_graph_sym(f.g, "B");
    IrDim b = ir_dim_sym(B);
    IrNode *x = in_f32(&f, "x", ir_shape_of(3, (IrDim[]){b, b, b}));
    (void)x;
    IrError err = {0};
    /* 2^20 cubed overflows the element limit, not the process */
    CHECK(!ir_interp_new(f.g, (int64_t[]){1 << 20}, 1, &err) && strstr(err.msg, "elements"));
    fx_free(&f);
}

/* ---------------------------------------------------------------- a small GPT */

typedef struct Gpt {
    Fx f;
    int L, H;
    int64_t V, D, C;
    IrDim B, T;
    IrNode *loss, *logits;
} Gpt;

static IrNode *named(Gpt *m, IrNode *n, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    n->name = ir_arena_strdup(m->f.g->arena, buf);
    return n;
}

static IrNode *gparam(Gpt *m, const char *name, IrShape s, const char *init)
{
    return ir_param(m->f.g, name, s, init, 0.02, true);
}

static IrShape dims(Gpt *m, int rank, const IrDim *d)
{
    (void)m;
    return ir_shape_of(rank, d);
}

/* y = x @ W + b for x[B,T,in], W[in,out], b[out]; names PFX.w/b/y. */
static IrNode *linear(Gpt *m, IrNode *x, int64_t nin, int64_t nout, const char *pfx)
{
    char w[96], b[96];
    snprintf(w, sizeof w, "%s.weight", pfx);
    snprintf(b, sizeof b, "%s.bias", pfx);
    IrNode *W = gparam(m, w, SH(nin, nout), "normal"), *bias = gparam(m, b, SH(nout), "zeros");
    IrNode *y = matmul(&m->f, x, W, 0, 0);
    return named(m, ir_binary(m->f.g, OP_ADD, named(m, y, "%s.mm", pfx), bias), "%s.out", pfx);
}

static IrNode *layernorm(Gpt *m, IrNode *x, const char *pfx)
{
    char s[96], b[96];
    snprintf(s, sizeof s, "%s.scale", pfx);
    snprintf(b, sizeof b, "%s.shift", pfx);
    IrNode *in[3] = {x, gparam(m, s, SH(m->D), "ones"), gparam(m, b, SH(m->D), "zeros")};
    return named(m, node(&m->f, OP_LAYERNORM, in, 3, NULL, 0, NULL, NULL), "%s", pfx);
}

/* [B,T,D] <-> [B,H,T,D/H] */
static IrNode *split_heads(Gpt *m, IrNode *x)
{
    IrShape s = dims(m, 4, (IrDim[]){m->B, m->T, ir_dim_const(m->H), ir_dim_const(m->D / m->H)});
    IrNode *r = node(&m->f, OP_RESHAPE, &x, 1, NULL, 0, NULL, &s);
    return attr1(&m->f, OP_TRANSPOSE, r, ir_attr_ints(ATTR_PERM, (int64_t[]){0, 2, 1, 3}, 4));
}

static IrNode *merge_heads(Gpt *m, IrNode *x)
{
    IrNode *t = attr1(&m->f, OP_TRANSPOSE, x, ir_attr_ints(ATTR_PERM, (int64_t[]){0, 2, 1, 3}, 4));
    IrShape s = dims(m, 3, (IrDim[]){m->B, m->T, ir_dim_const(m->D)});
    return node(&m->f, OP_RESHAPE, &t, 1, NULL, 0, NULL, &s);
}

static IrNode *attention(Gpt *m, IrNode *h, int l)
{
    char p[64];
    snprintf(p, sizeof p, "trf_blocks.%d.att", l);
    char pq[80], pk[80], pv[80], po[80];
    snprintf(pq, sizeof pq, "%s.q", p);
    snprintf(pk, sizeof pk, "%s.k", p);
    snprintf(pv, sizeof pv, "%s.v", p);
    snprintf(po, sizeof po, "%s.proj", p);
    IrNode *q = split_heads(m, linear(m, h, m->D, m->D, pq)); /* [B,H,T,Dh] */
    IrNode *k = split_heads(m, linear(m, h, m->D, m->D, pk));
    IrNode *v = split_heads(m, linear(m, h, m->D, m->D, pv));
    IrNode *sc = named(m, matmul(&m->f, q, k, 0, 1), "%s.scores", p); /* [B,H,T,T] */
    IrNode *scale = ir_const(m->f.g, 1.0 / sqrt((double)(m->D / m->H)), DT_F32, SCALAR);
    IrNode *ms = ir_unary(m->f.g, OP_CAUSAL_MASK, ir_binary(m->f.g, OP_MUL, sc, scale));
    IrNode *w = named(m, ir_unary(m->f.g, OP_SOFTMAX, named(m, ms, "%s.mask", p)), "%s.w", p);
    IrNode *ctx = merge_heads(m, matmul(&m->f, w, v, 0, 0));
    IrNode *o = linear(m, named(m, ctx, "%s.ctx", p), m->D, m->D, po);
    return attr1(&m->f, OP_DROPOUT, o, ir_attr_float(ATTR_P, 0.1));
}

static IrNode *block(Gpt *m, IrNode *x, int l)
{
    char p[64], n1[80], n2[80], ff[80];
    snprintf(p, sizeof p, "trf_blocks.%d", l);
    snprintf(n1, sizeof n1, "%s.norm1", p);
    snprintf(n2, sizeof n2, "%s.norm2", p);
    IrNode *a = attention(m, layernorm(m, x, n1), l);
    x = named(m, ir_binary(m->f.g, OP_ADD, x, a), "%s.res1", p);
    IrNode *h = layernorm(m, x, n2);
    snprintf(ff, sizeof ff, "%s.ff.up", p);
    IrNode *u = named(m, ir_unary(m->f.g, OP_GELU, linear(m, h, m->D, 4 * m->D, ff)),
                      "%s.ff.act", p);
    snprintf(ff, sizeof ff, "%s.ff.down", p);
    return named(m, ir_binary(m->f.g, OP_ADD, x, linear(m, u, 4 * m->D, m->D, ff)), "%s.res2", p);
}

/* GPT-2 shaped: token + position embeddings, L pre-norm blocks, tied head. */
static void gpt_build(Gpt *m)
{
    IrGraph *g = m->f.g;
    m->B = ir_dim_sym(ir_graph_sym(g, "B"));
    m->T = ir_dim_sym(ir_graph_sym(g, "T"));
    IrShape bt = dims(m, 2, (IrDim[]){m->B, m->T}), t = dims(m, 1, &m->T);
    IrNode *idx = ir_input(g, "idx", DT_I32, bt), *tgt = ir_input(g, "targets", DT_I32, bt);
    IrNode *wte = gparam(m, "tok_emb.weight", SH(m->V, m->D), "normal");
    IrNode *wpe = gparam(m, "pos_emb.weight", SH(m->C, m->D), "normal");
    IrAttr ax = ir_attr_int(ATTR_AXIS, 0);
    IrNode *pos = node(&m->f, OP_IOTA, NULL, 0, &ax, 1, NULL, &t);
    IrNode *x = ir_binary(g, OP_ADD, named(m, ir_binary(g, OP_GATHER, wte, idx), "tok_emb"),
                          named(m, ir_binary(g, OP_GATHER, wpe, pos), "pos_emb"));
    for (int l = 0; l < m->L; l++)
        x = block(m, x, l);
    x = layernorm(m, x, "final_norm");
    m->logits = named(m, matmul(&m->f, x, wte, 0, 1), "out_head"); /* [B,T,V] */
    m->loss = named(m, xent(&m->f, m->logits, tgt, -100), "loss");
    ir_graph_add_output(g, "logits", m->logits);
    ir_graph_add_output(g, "loss", m->loss);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

TEST(gpt_forward)
{
    Gpt m = {.f = fx_new(), .L = 3, .H = 4, .V = 512, .D = 64, .C = 16};
    gpt_build(&m);
    double idx[32], tgt[32];
    for (int i = 0; i < 32; i++) {
        idx[i] = (i * 37) % m.V;
        tgt[i] = (i * 91 + 5) % m.V;
    }
    double t0 = now();
    if (fx_start(&m.f, (int64_t[]){2, 16})) {
        fx_put(&m.f, "idx", idx);
        fx_put(&m.f, "targets", tgt);
        if (fx_run(&m.f)) {
            double loss = ir_interp_output(m.f.it, "loss")->data[0];
            /* with 0.02-std weights the logits are ~N(0, 64 * 0.02^2 = 0.0256):
             * loss ~ ln 512 + 0.0256/2 = 6.238 + 0.013 */
            CHECK_NEAR(loss, log(512.0) + 0.0128, 0.08);
            EXPECT_DIMS(m.f, m.logits, 2, 16, 512);
        }
    }
    double dt = now() - t0;
    printf("  gpt forward (L=3, D=64, V=512, B=2, T=16): %.3f s\n", dt);
    CHECK(dt < 2.0);
    fx_free(&m.f);
}

/* ---------------------------------------------------------------- Graphviz */

static char *dot_str(const IrGraph *g, bool expand)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    IrDotOptions opt = {expand};
    ir_dot(g, &opt, f);
    fclose(f);
    return buf;
}

static int count(const char *s, const char *sub)
{
    int c = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        c++;
    return c;
}

TEST(dot_collapses_blocks)
{
    Gpt m = {.f = fx_new(), .L = 3, .H = 4, .V = 64, .D = 16, .C = 16};
    gpt_build(&m);
    char *c = dot_str(m.f.g, false), *c2 = dot_str(m.f.g, false), *e = dot_str(m.f.g, true);
    CHECK(!strcmp(c, c2)); /* deterministic */
    CHECK(!strncmp(c, "digraph", 7) && count(c, "{") == count(c, "}"));
    CHECK(strstr(c, "trf_blocks.1 \xe2\x80\xa6 trf_blocks.2 (2 more blocks, same structure)"));
    CHECK(count(c, "subgraph") == 1 && count(e, "subgraph") == 3);
    CHECK(strstr(c, "\"trf_blocks.0\"") && !strstr(c, "\"trf_blocks.2\""));
    CHECK(strstr(e, "\"trf_blocks.2\"") && !strstr(e, "more blocks"));
    CHECK(count(e, "->") > count(c, "->") + 40);
    CHECK(count(c, "att.q.weight") == 1 && count(e, "att.q.weight") == 3); /* hidden params */
    CHECK(strstr(c, "tok_emb.weight") && strstr(c, "[B,T,16]"));
    free(c);
    free(c2);
    free(e);
    fx_free(&m.f);
}

/* Unnamed nodes join the block around them: an op whose operands are all in
 * one block, a constant whose users are all in one block. */
TEST(dot_unnamed_nodes_join_blocks)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(4));
    for (int l = 0; l < 3; l++) {
        char name[64];
        IrNode *c = ir_const(f.g, l, DT_F32, SCALAR);
        IrNode *y = ir_binary(f.g, OP_ADD, x, c);
        snprintf(name, sizeof name, "enc.layers.%d.y", l);
        y->name = ir_arena_strdup(f.g->arena, name);
        IrNode *z = ir_unary(f.g, OP_NEG, y);
        x = ir_binary(f.g, OP_MUL, z, z);
        snprintf(name, sizeof name, "enc.layers.%d.out", l);
        x->name = ir_arena_strdup(f.g->arena, name);
    }
    ir_graph_add_output(f.g, "y", ir_unary(f.g, OP_EXP, x));
    char *c = dot_str(f.g, false), *e = dot_str(f.g, true);
    CHECK(strstr(c, "enc.layers.1 \xe2\x80\xa6 enc.layers.2 (2 more blocks, same structure)"));
    CHECK(count(c, "\"neg") == 1 && count(e, "\"neg") == 3);
    CHECK(count(c, "\"const") == 1 && count(e, "\"const") == 3);
    CHECK(count(c, "-> summary0") == 1 && count(c, "summary0 ->") == 1); /* deduplicated */
    CHECK(count(c, "\"exp") == 1); /* after the last block: not absorbed into it */
    CHECK(strstr(c, "label=\"output\\ny\""));
    free(c);
    free(e);
    fx_free(&f);
}

/* ---------------------------------------------------------------- fused */

/* A body with its own inputs: b = x (f32[2,2]), w (f32[2]); returns
 * sum(b * b, axis 1, keepdim) * w + b. */
static IrGraph *fused_body(const IrGraph *g)
{
    IrGraph *b = ir_graph_new("body");
    for (int i = 0; i < g->nsym; i++)
        ir_graph_sym(b, g->sym[i]);
    IrNode *x = ir_input(b, "x", DT_F32, SH(2, 2)), *w = ir_input(b, "w", DT_F32, SH(2));
    IrNode *sq = ir_reduce(b, OP_SUM, ir_binary(b, OP_MUL, x, x), (int[]){1}, 1, true);
    ir_graph_add_output(b, "out", ir_binary(b, OP_ADD, ir_binary(b, OP_MUL, sq, w), x));
    return b;
}

TEST(fused)
{
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(2, 2)), *w = in_f32(&f, "w", SH(2));
    IrDType dt = DT_F32;
    IrShape s = SH(2, 2);
    IrNode *k = node(&f, OP_FUSED, (IrNode *[]){x, w}, 2, NULL, 0, &dt, &s);
    k->body = fused_body(f.g);
    IrNode *twice = node(&f, OP_FUSED, (IrNode *[]){x, w}, 2, NULL, 0, &dt, &s);
    twice->body = fused_body(f.g);
    ir_graph_add_output(f.g, "y", ir_binary(f.g, OP_SUB, k, twice));
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", (double[]){1, 2, 3, -4});
    fx_put(&f, "w", (double[]){10, -1});
    for (int run = 0; run < 2; run++) { /* the body's interpreter is kept between runs */
        if (!fx_run(&f))
            goto out;
        /* row sums of squares: 1 + 4 = 5, 9 + 16 = 25; times w = [10, -1]:
         * [50, -5] and [250, -25]; plus x: [51, -3] and [253, -29]. */
        EXPECT(f, k, 0, 51, -3, 253, -29);
        EXPECT(f, twice, 0, 51, -3, 253, -29);
    }
    fx_put(&f, "x", (double[]){0, 1, 0, 0});
    if (fx_run(&f)) /* 1 * [10, -1] + [0, 1] = [10, 0]; zeros stay zero */
        EXPECT(f, k, 0, 10, 0, 0, 0);
out:
    fx_free(&f);
    /* a body whose input types do not match the operands is an error */
    Fx g = fx_new();
    IrNode *a = in_f32(&g, "a", SH(2, 2));
    IrNode *bad = node(&g, OP_FUSED, &a, 1, NULL, 0, &dt, &s);
    bad->body = fused_body(g.g);
    IrError err = {0};
    CHECK(!ir_verify(g.g, &err) && strstr(err.msg, "body has 2 inputs for 1 operands"));
    fx_free(&g);
}

/* ---------------------------------------------------------------- coverage */

TEST(every_op_checked)
{
    for (int op = 0; op < OP_COUNT; op++)
        if (!covered[op]) {
            fprintf(stderr, "op '%s' has no interpreter test in test_interp.c\n",
                    ir_op_name((IrOp)op));
            CHECK(!"every op of ops.def has a checked value");
        }
}

/* ir_interp_noise_f32: every computed f32 value lands within one ulp of
 * relative error plus a rounding of its exact value (and differs from it
 * somewhere), sums also round their running total, inputs are kept, and
 * seed 0 gives the exact values back.  The bounds are worked out from the
 * error model, not taken from a run. */
TEST(noise_f32)
{
    enum { N = 1000 };
    Fx f = fx_new();
    IrNode *x = in_f32(&f, "x", SH(N)), *k = in_f32(&f, "k", SH(N));
    IrNode *y = ir_binary(f.g, OP_MUL, x, k);
    IrNode *s = axes_op(&f, OP_SUM, y, 0, NULL, 0);
    double xv[N], kv[N];
    for (int i = 0; i < N; i++)
        xv[i] = 0.1, kv[i] = 3.0; /* y = 0.3 (not a float), sum = 300 */
    if (!fx_start(&f, NULL))
        goto out;
    fx_put(&f, "x", xv);
    fx_put(&f, "k", kv);
    ir_interp_noise_f32(f.it, 7);
    if (!fx_run(&f))
        goto out;
    const IrTensor *yv = ir_interp_value(f.it, y), *sv = ir_interp_value(f.it, s);
    int moved = 0;
    bool within = true;
    for (int i = 0; i < N; i++) {
        moved += yv->data[i] != 0.3;
        /* 0.3 (1 + d), |d| <= 2^-23, then rounded: relative 2^-23 + 2^-24 */
        within &= fabs(yv->data[i] - 0.3) <= 0.3 * (0x1p-23 + 0x1p-24) * (1 + 1e-9);
        within &= yv->data[i] == (float)yv->data[i];
    }
    CHECK(within);
    CHECK(moved > N / 2);
    CHECK(ir_interp_value(f.it, x)->data[0] == 0.1); /* sources are not perturbed */
    /* a running float sum of N values near 0.3 is off by at most about
     * N * 2^-24 * 300 (each step's rounding) plus the values' own errors */
    CHECK(sv->data[0] != 300.0);
    CHECK(fabs(sv->data[0] - 300.0) <= N * 0x1p-24 * 300 + N * 0.3 * 0x1p-22);
    ir_interp_noise_f32(f.it, 0);
    if (!fx_run(&f))
        goto out;
    EXPECT(f, s, 1e-9, 300);
    bool exact = true;
    for (int i = 0; i < N; i++)
        exact &= fabs(ir_interp_value(f.it, y)->data[i] - 0.3) <= 1e-15;
    CHECK(exact);
out:
    fx_free(&f);
}

int main(void)
{
    RUN(const_and_iota);
    RUN(inputs_and_params);
    RUN(param_normal_init);
    RUN(unary_math);
    RUN(sin_cos);
    RUN(cast);
    RUN(dropout_hash);
    RUN(dropout);
    RUN(binary_broadcast);
    RUN(integer_div_and_nan);
    RUN(compare_and_where);
    RUN(reduce_sum);
    RUN(reduce_max_and_mean);
    RUN(reshape_transpose_broadcast);
    RUN(slice_and_concat);
    RUN(matmul_2d);
    RUN(matmul_batch_broadcast);
    RUN(gather);
    RUN(scatter_add);
    RUN(softmax);
    RUN(layernorm);
    RUN(gelu);
    RUN(causal_mask);
    RUN(cross_entropy);
    RUN(causal_attention);
    RUN(fused);
    RUN(noise_f32);
    RUN(symbolic_binding);
    RUN(missing_input);
    RUN(too_large);
    RUN(gpt_forward);
    RUN(dot_collapses_blocks);
    RUN(dot_unnamed_nodes_join_blocks);
    RUN(every_op_checked);
    return test_summary();
}
