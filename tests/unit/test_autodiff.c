/* test_autodiff.c — gradient rules, the train-step passes and gradcheck.
 *
 * 1. Every gradient rule against central finite differences, op by op
 *    (gc_check_node): broadcasting, reductions over each axis, the four
 *    matmul transposes, gather with repeated indices, the causal mask,
 *    softmax, layernorm, gelu, cross-entropy with the ignore index, ...
 *    A coverage check at the end asks that every op of ops.def was either
 *    checked here or is declared non-differentiable.
 * 2. The structure of the autodiff output: grad.P outputs, accumulation,
 *    frozen params pruned, the added loss.
 * 3. One AdamW step in the interpreter against a hand computation, with
 *    and without clipping.
 * 4. gradcheck on a whole small model, and with a deliberately broken rule:
 *    it must fail and name the parameter and the op; elements within the
 *    finite-difference step of a kink (relu, abs, maximum, minimum, max)
 *    are stepped again or skipped rather than failed.
 */
#include "passes/gradcheck.h"
#include "testlib.h"

static bool covered[OP_COUNT];
static const int64_t BIND[2] = {3, 4}; /* B, T */

/* ---------------------------------------------------------------- helpers */

static IrShape shp(int rank, const int64_t *d)
{
    return ir_shape_ints(rank, d);
}

#define S(...) shp(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (int64_t[]){__VA_ARGS__})
#define S0 ir_shape_of(0, NULL)

static IrTensor *tensor(const IrShape *s, IrDType dt)
{
    int64_t d[IR_MAX_RANK];
    for (int i = 0; i < s->rank; i++)
        d[i] = ir_dim_eval(s->d[i], BIND);
    return ir_tensor_new(dt, s->rank, d);
}

/* Deterministic values in [lo, hi). */
static IrTensor *uniform(const IrShape *s, double lo, double hi, unsigned seed)
{
    IrTensor *t = tensor(s, DT_F32);
    for (int64_t i = 0; i < t->numel; i++) {
        seed = seed * 1103515245u + 12345u;
        t->data[i] = lo + (hi - lo) * ((seed >> 8) & 0xffff) / 65536.0;
    }
    return t;
}

static IrTensor *ints(const IrShape *s, const int *v)
{
    IrTensor *t = tensor(s, DT_I32);
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = v[i];
    return t;
}

static GcOptions opts(void)
{
    GcOptions o = gc_options_default();
    o.binding = BIND;
    o.samples = 200; /* every element of these small tensors */
    return o;
}

/* Checks the rule of n (operand values: vals, NULL for random normal). */
static double rule_error(IrGraph *g, IrNode *n, IrTensor **vals)
{
    GcOptions o = opts();
    IrError err = {0};
    double e = gc_check_node(g, n, BIND, (const IrTensor *const *)vals, &o, &err);
    if (e < 0)
        fprintf(stderr, "gc_check_node(%s): %s\n", ir_op_name(n->op), err.msg);
    covered[n->op] = true;
    for (int j = 0; vals && j < n->nin; j++)
        ir_tensor_free(vals[j]);
    return e;
}

#define RULE_OK(g, n, ...)                                                   \
    do {                                                                     \
        IrTensor *v_[IR_MAX_IN] = {__VA_ARGS__};                             \
        double e_ = rule_error(g, n, v_);                                    \
        if (!(e_ >= 0 && e_ <= 1e-6))                                        \
            fprintf(stderr, "  rule of %s: error %.3e\n", ir_op_name(n->op), e_); \
        CHECK(e_ >= 0 && e_ <= 1e-6);                                        \
    } while (0)

static IrGraph *graph(void)
{
    IrGraph *g = ir_graph_new("t");
    ir_graph_sym(g, "B");
    ir_graph_sym(g, "T");
    return g;
}

static IrNode *in(IrGraph *g, const char *name, IrShape s)
{
    return ir_input(g, name, DT_F32, s);
}

static IrNode *op(IrGraph *g, IrOp o, IrNode *a, IrAttr *at, int nat)
{
    return ir_op1(g, o, a, at, nat);
}

/* A reduction over one axis, or over all of them when axis < 0. */
static IrNode *reduce(IrGraph *g, IrOp o, IrNode *a, int axis, bool keep)
{
    int ax[1] = {axis};
    return ir_reduce(g, o, a, ax, axis < 0 ? 0 : 1, keep);
}

/* ---------------------------------------------------------------- elementwise rules */

TEST(unary_rules)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3)), *pos = in(g, "p", S(2, 3));
    IrShape s = S(2, 3);
    IrOp any[] = {OP_NEG, OP_EXP, OP_TANH, OP_ABS, OP_RELU, OP_GELU, OP_SIN, OP_COS};
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++)
        RULE_OK(g, ir_unary(g, any[i], x), uniform(&s, -2, 2, 7 + i));
    IrOp positive[] = {OP_LOG, OP_SQRT, OP_RSQRT, OP_RECIP};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        RULE_OK(g, ir_unary(g, positive[i], pos), uniform(&s, 0.5, 2, 3 + i));
    ir_graph_free(g);
}

/* cast to f32 rounds through float, so the check uses values and a step
 * that are exact in float: multiples of 1/16 and h = 2^-10. */
TEST(cast_rule)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3));
    IrDType f32 = DT_F32;
    IrError err = {0};
    IrNode *c = ir_node_new(g, OP_CAST, &x, 1, NULL, 0, &f32, NULL, &err);
    IrTensor *v = tensor(&x->shape, DT_F32);
    for (int i = 0; i < 6; i++)
        v->data[i] = (i - 2.5) * 0.375;
    GcOptions o = opts();
    o.h = 1.0 / 1024;
    double e = gc_check_node(g, c, BIND, (const IrTensor *const[]){v}, &o, &err);
    CHECK(e >= 0 && e <= 1e-6);
    covered[OP_CAST] = true;
    ir_tensor_free(v);
    ir_graph_free(g);
}

TEST(dropout_rule_uses_the_same_mask)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(4, 8)), *step = ir_input(g, "step", DT_I32, S0);
    IrAttr at[2] = {ir_attr_float(ATTR_P, 0.5), ir_attr_int(ATTR_SEED, 11)};
    IrNode *d = ir_op2(g, OP_DROPOUT, x, step, at, 2);
    RULE_OK(g, d, NULL, ints(&(IrShape){0}, (int[]){3}));
    RULE_OK(g, op(g, OP_DROPOUT, x, at, 2), NULL);
    ir_graph_free(g);
}

TEST(binary_rules_broadcast)
{
    IrGraph *g = graph();
    IrNode *a = in(g, "a", S(2, 3)), *b = in(g, "b", S(3)), *c = in(g, "c", S(2, 1));
    IrNode *d = in(g, "d", S(4, 1, 3)), *e = in(g, "e", S(1, 1));
    IrShape s3 = S(3), s413 = S(4, 1, 3);
    RULE_OK(g, ir_binary(g, OP_ADD, a, b), NULL, NULL);
    RULE_OK(g, ir_binary(g, OP_ADD, c, d), NULL, NULL); /* [2,1] + [4,1,3] -> [4,2,3] */
    RULE_OK(g, ir_binary(g, OP_SUB, b, a), NULL, NULL);
    RULE_OK(g, ir_binary(g, OP_SUB, a, e), NULL, NULL);
    RULE_OK(g, ir_binary(g, OP_MUL, a, c), NULL, NULL);
    RULE_OK(g, ir_binary(g, OP_MUL, a, a), NULL, NULL);
    RULE_OK(g, ir_binary(g, OP_DIV, a, b), NULL, uniform(&s3, 0.5, 2, 1));
    RULE_OK(g, ir_binary(g, OP_DIV, c, d), NULL, uniform(&s413, 0.5, 2, 2));
    RULE_OK(g, ir_binary(g, OP_MAXIMUM, a, b), NULL, NULL);
    RULE_OK(g, ir_binary(g, OP_MINIMUM, c, a), NULL, NULL);
    ir_graph_free(g);
}

TEST(where_rule)
{
    IrGraph *g = graph();
    IrNode *a = in(g, "a", S(2, 3)), *b = in(g, "b", S(3));
    IrNode *cond = ir_binary(g, OP_LT, a, b);
    IrNode *w = ir_node_new(g, OP_WHERE, (IrNode *[]){cond, a, b}, 3, NULL, 0, NULL, NULL, NULL);
    IrTensor *cv = tensor(&cond->shape, DT_BOOL);
    for (int i = 0; i < 6; i++)
        cv->data[i] = i % 2;
    RULE_OK(g, w, cv, NULL, NULL);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- reductions */

TEST(reductions_over_each_axis)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3, 4));
    IrOp ops[] = {OP_SUM, OP_MAX, OP_MEAN};
    for (size_t k = 0; k < 3; k++)
        for (int axis = -1; axis < 3; axis++)
            for (int keep = 0; keep < 2; keep++)
                RULE_OK(g, reduce(g, ops[k], x, axis, keep), NULL);
    int two[2] = {0, 2};
    RULE_OK(g, ir_reduce(g, OP_SUM, x, two, 2, false), NULL);
    RULE_OK(g, ir_reduce(g, OP_MEAN, x, two, 2, true), NULL);
    ir_graph_free(g);
}

static IrTensor *values(IrShape s, const double *v)
{
    IrTensor *t = tensor(&s, DT_F32);
    memcpy(t->data, v, (size_t)t->numel * sizeof *v);
    return t;
}

/* Values at a kink (relu and abs at 0, maximum and minimum at ties, max
 * with tied elements) and near one (1e-5 away): a finite difference across
 * the kink measures the kink, not the derivative.  gradcheck steps those
 * elements again with a smaller h, or skips them when the kink stays
 * within the step, so the rules pass. */
TEST(kinks_within_the_step)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3)), *y = in(g, "y", S(2, 3));
    static const double at[6] = {0, 1e-5, -1e-5, 2e-4, -0.5, 0.7};
    static const double other[6] = {0, 1e-5 + 1e-5, -0.3, 2e-4, -0.5 - 1e-5, 0.1};
    static const double ties[6] = {1, 1, 0.5, 0.2, 0.2 + 1e-5, -1};
    RULE_OK(g, ir_unary(g, OP_RELU, x), values(S(2, 3), at));
    RULE_OK(g, ir_unary(g, OP_ABS, x), values(S(2, 3), at));
    RULE_OK(g, ir_binary(g, OP_MAXIMUM, x, y), values(S(2, 3), at), values(S(2, 3), other));
    RULE_OK(g, ir_binary(g, OP_MINIMUM, x, y), values(S(2, 3), at), values(S(2, 3), other));
    RULE_OK(g, reduce(g, OP_MAX, x, 1, false), values(S(2, 3), ties));
    ir_graph_free(g);
}

TEST(mean_over_symbolic_axis)
{
    IrGraph *g = graph();
    IrShape s = ir_shape_of(2, (IrDim[]){ir_dim_sym(0), ir_dim_sym(1)});
    IrNode *x = in(g, "x", s);
    RULE_OK(g, reduce(g, OP_MEAN, x, 1, false), NULL);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- movement */

TEST(movement_rules)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3, 4)), *y = in(g, "y", S(2, 1, 4)), *z = in(g, "z", S(3, 1));
    IrShape r = S(6, 4), bs = S(2, 3, 4);
    IrError err = {0};
    RULE_OK(g, ir_node_new(g, OP_RESHAPE, &x, 1, NULL, 0, NULL, &r, &err), NULL);
    IrAttr perm = ir_attr_ints(ATTR_PERM, (int64_t[]){2, 0, 1}, 3);
    RULE_OK(g, op(g, OP_TRANSPOSE, x, &perm, 1), NULL);
    RULE_OK(g, ir_node_new(g, OP_BROADCAST, &z, 1, NULL, 0, NULL, &bs, &err), NULL);
    for (int st = 0; st < 3; st++) {
        IrAttr sl[3] = {ir_attr_int(ATTR_AXIS, 1), ir_attr_int(ATTR_START, st),
                        ir_attr_int(ATTR_END, st + 1 + (st == 0))};
        RULE_OK(g, op(g, OP_SLICE, x, sl, 3), NULL);
    }
    IrAttr ax = ir_attr_int(ATTR_AXIS, 1);
    RULE_OK(g, ir_node_new(g, OP_CONCAT, (IrNode *[]){x, y, x}, 3, &ax, 1, NULL, NULL, &err),
            NULL, NULL, NULL);
    ir_graph_free(g);
}

TEST(slice_of_symbolic_axis)
{
    IrGraph *g = graph();
    IrShape s = ir_shape_of(2, (IrDim[]){ir_dim_sym(1), ir_dim_const(3)}); /* [T, 3] */
    IrNode *x = in(g, "x", s);
    IrAttr sl[3] = {ir_attr_int(ATTR_AXIS, 0), ir_attr_int(ATTR_START, 1),
                    ir_attr_int(ATTR_END, 3)};
    RULE_OK(g, op(g, OP_SLICE, x, sl, 3), NULL);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- matmul, gather */

TEST(matmul_transposes)
{
    IrGraph *g = graph();
    IrNode *a = in(g, "a", S(3, 4)), *at = in(g, "at", S(4, 3));
    IrNode *b = in(g, "b", S(4, 5)), *bt = in(g, "bt", S(5, 4));
    IrNode *A[2] = {a, at}, *Bm[2] = {b, bt};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            IrAttr t[2] = {ir_attr_int(ATTR_TA, ta), ir_attr_int(ATTR_TB, tb)};
            RULE_OK(g, ir_op2(g, OP_MATMUL, A[ta], Bm[tb], t, 2), NULL, NULL);
        }
    ir_graph_free(g);
}

TEST(matmul_batched_and_broadcast)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3, 4)), *w = in(g, "w", S(4, 5)), *wt = in(g, "wt", S(5, 4));
    IrNode *k = in(g, "k", S(2, 5, 4)), *b1 = in(g, "b1", S(1, 4, 5)), *v = in(g, "v", S(2, 3, 5));
    IrAttr tb = ir_attr_int(ATTR_TB, 1), ta = ir_attr_int(ATTR_TA, 1);
    RULE_OK(g, ir_binary(g, OP_MATMUL, x, w), NULL, NULL);         /* x @ W      */
    RULE_OK(g, ir_op2(g, OP_MATMUL, x, wt, &tb, 1), NULL, NULL);   /* x @ W^T    */
    RULE_OK(g, ir_op2(g, OP_MATMUL, x, k, &tb, 1), NULL, NULL);    /* q @ k^T    */
    RULE_OK(g, ir_binary(g, OP_MATMUL, x, b1), NULL, NULL);        /* batch 1 vs 2 */
    RULE_OK(g, ir_op2(g, OP_MATMUL, x, v, &ta, 1), NULL, NULL);    /* x^T @ v    */
    RULE_OK(g, ir_binary(g, OP_MATMUL, w, k), NULL, NULL);         /* 2-D @ batched */
    ir_graph_free(g);
}

TEST(gather_with_repeated_indices)
{
    IrGraph *g = graph();
    IrNode *table = in(g, "table", S(5, 3));
    IrNode *idx = ir_input(g, "idx", DT_I32, S(2, 4));
    IrShape is = S(2, 4);
    RULE_OK(g, ir_binary(g, OP_GATHER, table, idx), NULL,
            ints(&is, (int[]){1, 1, 4, 0, 4, 1, 2, 1}));
    IrNode *src = in(g, "src", S(2, 4, 3));
    IrError err = {0};
    IrNode *sc = ir_node_new(g, OP_SCATTER_ADD, (IrNode *[]){table, idx, src}, 3, NULL, 0, NULL,
                             NULL, &err);
    RULE_OK(g, sc, NULL, ints(&is, (int[]){3, 3, 0, 3, 2, 2, 4, 0}), NULL);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- composites */

TEST(softmax_layernorm_gelu)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 3, 5));
    IrAttr a0 = ir_attr_int(ATTR_AXIS, 0), a1 = ir_attr_int(ATTR_AXIS, 1);
    RULE_OK(g, ir_unary(g, OP_SOFTMAX, x), NULL);
    RULE_OK(g, op(g, OP_SOFTMAX, x, &a0, 1), NULL);
    RULE_OK(g, ir_unary(g, OP_LOG_SOFTMAX, x), NULL);
    RULE_OK(g, op(g, OP_LOG_SOFTMAX, x, &a1, 1), NULL);
    IrNode *gam = in(g, "gamma", S(5)), *bet = in(g, "beta", S(5));
    IrAttr eps = ir_attr_float(ATTR_EPS, 1e-5);
    IrNode *ln = ir_node_new(g, OP_LAYERNORM, (IrNode *[]){x, gam, bet}, 3, &eps, 1, NULL, NULL,
                             NULL);
    RULE_OK(g, ln, NULL, NULL, NULL);
    ir_graph_free(g);
}

TEST(causal_mask_rule)
{
    IrGraph *g = graph();
    IrNode *sq = in(g, "sq", S(2, 4, 4)), *kv = in(g, "kv", S(3, 5));
    RULE_OK(g, ir_unary(g, OP_CAUSAL_MASK, sq), NULL);
    RULE_OK(g, ir_unary(g, OP_CAUSAL_MASK, kv), NULL);
    /* the masked scores then go through softmax, as in attention */
    RULE_OK(g, ir_unary(g, OP_SOFTMAX, ir_unary(g, OP_CAUSAL_MASK, sq)),
            NULL);
    ir_graph_free(g);
}

TEST(cross_entropy_with_ignore_index)
{
    IrGraph *g = graph();
    IrNode *z = in(g, "z", S(2, 3, 5)), *t = ir_input(g, "t", DT_I32, S(2, 3));
    IrShape ts = S(2, 3);
    IrAttr ign = ir_attr_int(ATTR_IGNORE_INDEX, -100);
    IrNode *ce = ir_op2(g, OP_CROSS_ENTROPY, z, t, &ign, 1);
    RULE_OK(g, ce, NULL, ints(&ts, (int[]){1, -100, 4, 0, 0, -100}));
    RULE_OK(g, ce, NULL, ints(&ts, (int[]){1, 2, 4, 0, 3, 3}));
    RULE_OK(g, ce, NULL, ints(&ts, (int[]){-100, -100, -100, -100, -100, -100}));
    IrAttr ign3 = ir_attr_int(ATTR_IGNORE_INDEX, 3);
    RULE_OK(g, ir_op2(g, OP_CROSS_ENTROPY, z, t, &ign3, 1), NULL,
            ints(&ts, (int[]){1, 2, 4, 0, 3, 3}));
    ir_graph_free(g);
}

/* causal_attention's rule (one causal_attention_grad) against finite
 * differences: with dropout and a step, without, and with rank-2 qkv. */
TEST(causal_attention_rule)
{
    IrGraph *g = graph();
    IrNode *qkv = in(g, "qkv", S(2, 5, 12)), *flat = in(g, "flat", S(6, 12));
    IrNode *step = ir_input(g, "step", DT_I32, S0);
    IrAttr at[4] = {ir_attr_int(ATTR_HEADS, 2), ir_attr_float(ATTR_SCALE, 0.7),
                    ir_attr_float(ATTR_P, 0.3), ir_attr_int(ATTR_SEED, 5)};
    RULE_OK(g, ir_op2(g, OP_CAUSAL_ATTENTION, qkv, step, at, 4), NULL,
            ints(&(IrShape){0}, (int[]){2}));
    RULE_OK(g, op(g, OP_CAUSAL_ATTENTION, qkv, at, 2), NULL);
    RULE_OK(g, op(g, OP_CAUSAL_ATTENTION, flat, at, 4), NULL);
    ir_graph_free(g);
}

/* There is no second derivative: differentiating causal_attention_grad is
 * an error, not a silent zero. */
TEST(causal_attention_grad_is_an_error)
{
    IrGraph *g = graph();
    IrNode *qkv = ir_param(g, "qkv", S(1, 3, 6), "normal", 1, true), *o = in(g, "o", S(1, 3, 2));
    IrAttr at[2] = {ir_attr_int(ATTR_HEADS, 1), ir_attr_float(ATTR_SCALE, 1)};
    IrNode *k = ir_node_new(g, OP_CAUSAL_ATTENTION_GRAD, (IrNode *[]){qkv, o, o}, 3, at, 2, NULL,
                            NULL, NULL);
    ir_graph_add_output(g, "loss", ir_reduce(g, OP_SUM, k, (int[]){0, 1, 2}, 3, false));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(!pass_autodiff(g, &ctx));
    CHECK(strstr(err.msg, "no second derivatives") != NULL);
    covered[OP_CAUSAL_ATTENTION_GRAD] = true;
    ir_graph_free(g);
}

/* A fused kernel (made after autodiff) on the path to a param is an error,
 * not a silent zero gradient. */
TEST(fused_kernel_is_an_error)
{
    IrGraph *g = graph();
    IrNode *x = in(g, "x", S(2, 2)), *w = ir_param(g, "w", S(2, 2), "zeros", 0, true);
    IrDType dt = DT_F32;
    IrShape s = S(2, 2);
    IrNode *k = ir_node_new(g, OP_FUSED, (IrNode *[]){x, w}, 2, NULL, 0, &dt, &s, NULL);
    ir_graph_add_output(g, "loss", ir_reduce(g, OP_SUM, k, (int[]){0, 1}, 2, false));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(!pass_autodiff(g, &ctx));
    CHECK(strstr(err.msg, "fused") && strstr(err.msg, "before the fuse pass"));
    covered[OP_FUSED] = true;
    ir_graph_free(g);
}

/* Every op is either checked above or declared non-differentiable. */
TEST(every_op_has_a_checked_rule)
{
    for (int op = 0; op < OP_COUNT; op++) {
        bool source = ir_ops[op].kind == OPK_SOURCE;
        bool nondiff = pass_autodiff_nondiff_reason((IrOp)op, 0) != NULL;
        if (!(covered[op] || source || nondiff))
            fprintf(stderr, "op %s: gradient rule not checked\n", ir_op_name((IrOp)op));
        CHECK(covered[op] || source || nondiff);
    }
    CHECK(pass_autodiff_nondiff_reason(OP_GATHER, 1) != NULL);
    CHECK(pass_autodiff_nondiff_reason(OP_GATHER, 0) == NULL);
    CHECK(pass_autodiff_nondiff_reason(OP_CROSS_ENTROPY, 1) != NULL);
}

/* ---------------------------------------------------------------- the pass's output */

static const IrOutput *output(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nout; i++)
        if (!strcmp(g->outs[i].name, name))
            return &g->outs[i];
    return NULL;
}

static bool run_pass(bool (*fn)(IrGraph *, PassCtx *), IrGraph *g, PassCtx *ctx)
{
    IrError verr = {0};
    bool ok = fn(g, ctx);
    if (ok && !ir_verify(g, &verr)) {
        fprintf(stderr, "verify: %s\n", verr.msg);
        return false;
    }
    return ok;
}

TEST(adds_loss_and_grad_outputs)
{
    IrGraph *g = graph();
    IrShape s = ir_shape_of(3, (IrDim[]){ir_dim_sym(0), ir_dim_sym(1), ir_dim_const(4)});
    IrNode *x = in(g, "x", s), *w = ir_param(g, "w", S(4, 7), "normal", 0.02, true);
    ir_graph_add_output(g, "logits", ir_binary(g, OP_MATMUL, x, w));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(run_pass(pass_autodiff, g, &ctx));
    const IrOutput *loss = output(g, "loss"), *gw = output(g, "grad.w");
    CHECK(loss && loss->node->op == OP_CROSS_ENTROPY);
    CHECK(loss && ir_node_int(loss->node, ATTR_IGNORE_INDEX, 0) == -100);
    IrNode *t = ir_graph_find(g, OP_INPUT, "targets");
    CHECK(t && t->dtype == DT_I32 && t->shape.rank == 2);
    CHECK(gw && ir_shape_eq(&gw->node->shape, &w->shape));
    CHECK(!run_pass(pass_autodiff, g, &ctx)); /* a second run is refused */
    ir_graph_free(g);
}

TEST(shared_use_accumulates)
{
    IrGraph *g = graph();
    IrNode *w = ir_param(g, "w", S(3), "normal", 1, true);
    IrNode *y = ir_binary(g, OP_ADD, ir_unary(g, OP_EXP, w), ir_binary(g, OP_MUL, w, w));
    ir_graph_add_output(g, "loss", ir_reduce(g, OP_SUM, y, (int[]){0}, 1, false));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(run_pass(pass_autodiff, g, &ctx));
    const IrOutput *gw = output(g, "grad.w");
    CHECK(gw && gw->node->op == OP_ADD);
    IrInterp *it = ir_interp_new(g, BIND, 1, &err);
    CHECK(it && ir_interp_run(it, &err));
    const IrTensor *wv = ir_interp_output(it, "grad.w");
    const IrTensor *w0 = ir_interp_value(it, w);
    for (int i = 0; it && i < 3; i++)
        CHECK_NEAR(wv->data[i], exp(w0->data[i]) + 2 * w0->data[i], 1e-12);
    ir_interp_free(it);
    ir_graph_free(g);
}

static int count_op(const IrGraph *g, IrOp op)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        n += g->nodes[i]->op == op;
    return n;
}

/* loss = sum((x @ a) @ b): freezing a prunes the matmul that would give da. */
TEST(frozen_params_are_pruned)
{
    for (int how = 0; how < 2; how++) {
        IrGraph *g = graph();
        IrNode *x = in(g, "x", S(2, 3));
        IrNode *a = ir_param(g, "enc.a", S(3, 3), "normal", 1, how != 0);
        IrNode *b = ir_param(g, "head.b", S(3, 2), "normal", 1, true);
        IrNode *y = ir_binary(g, OP_MATMUL, ir_binary(g, OP_MATMUL, x, a), b);
        ir_graph_add_output(g, "loss", ir_reduce(g, OP_SUM, y, (int[]){0, 1}, 2, false));
        IrError err = {0};
        PassCtx ctx = pass_ctx_default(&err);
        if (how == 1) {
            ctx.train.freeze[0] = "enc.*";
            ctx.train.nfreeze = 1;
        }
        CHECK(run_pass(pass_autodiff, g, &ctx));
        CHECK(output(g, "grad.head.b") != NULL);
        CHECK(output(g, "grad.enc.a") == NULL);
        CHECK(count_op(g, OP_MATMUL) == 3); /* 2 forward + db only */
        ir_graph_free(g);
    }
}

TEST(missing_logits_is_a_user_error)
{
    IrGraph *g = graph();
    ir_graph_add_output(g, "y", in(g, "x", S(2)));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(!pass_autodiff(g, &ctx));
    CHECK(strstr(err.msg, "logits") != NULL && err.hint[0]);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- AdamW */

/* loss = sum(w * c) + sum(b * d), so grad.w = c and grad.b = d exactly. */
static IrGraph *linear_loss(void)
{
    IrGraph *g = graph();
    IrNode *w = ir_param(g, "w", S(2, 2), "normal", 1, true);
    IrNode *b = ir_param(g, "b", S(2), "zeros", 0, true);
    IrNode *c = in(g, "c", S(2, 2)), *d = in(g, "d", S(2));
    IrNode *lw = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, w, c), (int[]){0, 1}, 2, false);
    IrNode *lb = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, b, d), (int[]){0}, 1, false);
    ir_graph_add_output(g, "loss", ir_binary(g, OP_ADD, lw, lb));
    return g;
}

static void set(IrInterp *it, const char *name, IrShape s, const double *v)
{
    IrTensor *t = tensor(&s, DT_F32);
    memcpy(t->data, v, t->numel * sizeof(double));
    IrError err = {0};
    CHECK(ir_interp_set(it, name, t, &err));
    ir_tensor_free(t);
}

/* PyTorch's AdamW (and clip_grad_norm_) for one element, written out. */
static void adamw_ref(double *p, double *m, double *v, double g, double lr, int step,
                      double b1, double b2, double eps, double wd)
{
    *p -= lr * wd * *p;
    *m = b1 * *m + (1 - b1) * g;
    *v = b2 * *v + (1 - b2) * g * g;
    double mhat = *m / (1 - pow(b1, step)), vhat = *v / (1 - pow(b2, step));
    *p -= lr * mhat / (sqrt(vhat) + eps);
}

static void adamw_case(double clip, bool decay_all)
{
    IrGraph *g = linear_loss();
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.train.clip_norm = clip;
    ctx.train.weight_decay = 0.1;
    ctx.train.decay_all = decay_all;
    CHECK(run_pass(pass_autodiff, g, &ctx) && run_pass(pass_optimizer, g, &ctx));
    IrInterp *it = ir_interp_new(g, BIND, 1, &err);
    double w[4] = {0.5, -1, 2, 0.25}, b[2] = {0.1, -0.2}, c[4] = {3, -4, 1, 2}, d[2] = {-2, 5};
    double mw[4] = {0.1, 0.2, -0.3, 0}, vw[4] = {0.01, 0.02, 0.03, 0.04}, mb[2] = {0}, vb[2] = {0};
    double lr = 0.01, st = 3;
    set(it, "w", S(2, 2), w);
    set(it, "b", S(2), b);
    set(it, "c", S(2, 2), c);
    set(it, "d", S(2), d);
    set(it, "adam.m.w", S(2, 2), mw);
    set(it, "adam.v.w", S(2, 2), vw);
    set(it, "adam.m.b", S(2), mb);
    set(it, "adam.v.b", S(2), vb);
    set(it, "lr", S0, &lr);
    IrTensor *stt = tensor(&(IrShape){0}, DT_I32);
    stt->data[0] = st;
    CHECK(ir_interp_set(it, "step", stt, &err));
    ir_tensor_free(stt);
    CHECK(ir_interp_run(it, &err));
    double norm = sqrt(9 + 16 + 1 + 4 + 4 + 25);
    double scale = clip > 0 ? fmin(1, clip / (norm + 1e-6)) : 1;
    for (int i = 0; i < 4; i++) {
        adamw_ref(&w[i], &mw[i], &vw[i], c[i] * scale, lr, 3, 0.9, 0.999, 1e-8, 0.1);
        CHECK_NEAR(ir_interp_output(it, "w")->data[i], w[i], 1e-12);
        CHECK_NEAR(ir_interp_output(it, "adam.m.w")->data[i], mw[i], 1e-12);
        CHECK_NEAR(ir_interp_output(it, "adam.v.w")->data[i], vw[i], 1e-12);
    }
    for (int i = 0; i < 2; i++) {
        adamw_ref(&b[i], &mb[i], &vb[i], d[i] * scale, lr, 3, 0.9, 0.999, 1e-8,
                  decay_all ? 0.1 : 0);
        CHECK_NEAR(ir_interp_output(it, "b")->data[i], b[i], 1e-12);
    }
    if (clip > 0)
        CHECK_NEAR(ir_interp_output(it, "grad_norm")->data[0], norm, 1e-12);
    CHECK(output(g, "grad.w") != NULL); /* the raw gradients stay outputs */
    ir_interp_free(it);
    ir_graph_free(g);
}

TEST(adamw_step_matches_hand_computation)
{
    adamw_case(0, true);     /* no clipping */
    adamw_case(1.0, true);   /* norm sqrt(59) > 1: clipped */
    adamw_case(100.0, true); /* norm below the clip: unchanged */
    adamw_case(1.0, false);  /* nanoGPT: the bias b is not decayed */
}

TEST(optimizer_without_autodiff_is_a_user_error)
{
    IrGraph *g = linear_loss();
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(!pass_optimizer(g, &ctx));
    CHECK(strstr(err.hint, "autodiff") != NULL);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- gradcheck */

/* A two-layer MLP with layernorm and gelu, logits over 7 classes. */
static IrGraph *small_model(void)
{
    IrGraph *g = graph();
    IrShape xs = ir_shape_of(3, (IrDim[]){ir_dim_sym(0), ir_dim_sym(1), ir_dim_const(4)});
    IrNode *x = in(g, "x", xs);
    IrNode *w1 = ir_param(g, "fc1.weight", S(8, 4), "normal", 0.5, true);
    IrNode *b1 = ir_param(g, "fc1.bias", S(8), "zeros", 0, true);
    IrNode *sc = ir_param(g, "norm.scale", S(8), "ones", 0, true);
    IrNode *sh = ir_param(g, "norm.shift", S(8), "zeros", 0, true);
    IrNode *w2 = ir_param(g, "head.weight", S(7, 8), "normal", 0.5, true);
    IrAttr tb = ir_attr_int(ATTR_TB, 1);
    IrNode *h = ir_binary(g, OP_ADD, ir_op2(g, OP_MATMUL, x, w1, &tb, 1), b1);
    h = ir_unary(g, OP_GELU, h);
    h = ir_node_new(g, OP_LAYERNORM, (IrNode *[]){h, sc, sh}, 3, NULL, 0, NULL, NULL, NULL);
    ir_graph_add_output(g, "logits", ir_op2(g, OP_MATMUL, h, w2, &tb, 1));
    return g;
}

TEST(gradcheck_passes_on_a_small_model)
{
    IrGraph *g = small_model();
    GcOptions o = opts();
    GcReport r;
    IrError err = {0};
    CHECK(gc_check_model(g, &o, &r, &err));
    CHECK(r.nparams == 5 && r.failed == 0);
    for (int i = 0; i < r.nparams; i++) {
        CHECK(r.params[i].checked == r.params[i].numel);
        CHECK(r.params[i].worst <= 1e-6);
    }
    gc_report_free(&r);
    ir_graph_free(g);
}

TEST(gradcheck_catches_a_broken_rule)
{
    IrGraph *g = small_model();
    GcOptions o = opts();
    o.train.broken_rule = "gelu";
    GcReport r;
    IrError err = {0};
    CHECK(gc_check_model(g, &o, &r, &err));
    CHECK(r.failed == 2); /* fc1.weight and fc1.bias: upstream of gelu */
    CHECK(r.nparams == 5 && r.params[0].worst > 1e-3 && r.params[4].worst <= 1e-6);
    CHECK(strstr(r.suspect, "'gelu'") != NULL && strstr(r.suspect, "fc1.bias") != NULL);
    gc_report_free(&r);
    ir_graph_free(g);
}

int main(void)
{
    RUN(unary_rules);
    RUN(cast_rule);
    RUN(dropout_rule_uses_the_same_mask);
    RUN(binary_rules_broadcast);
    RUN(where_rule);
    RUN(reductions_over_each_axis);
    RUN(kinks_within_the_step);
    RUN(mean_over_symbolic_axis);
    RUN(movement_rules);
    RUN(slice_of_symbolic_axis);
    RUN(matmul_transposes);
    RUN(matmul_batched_and_broadcast);
    RUN(gather_with_repeated_indices);
    RUN(softmax_layernorm_gelu);
    RUN(causal_mask_rule);
    RUN(cross_entropy_with_ignore_index);
    RUN(fused_kernel_is_an_error);
    RUN(causal_attention_rule);
    RUN(causal_attention_grad_is_an_error);
    RUN(every_op_has_a_checked_rule);
    RUN(adds_loss_and_grad_outputs);
    RUN(shared_use_accumulates);
    RUN(frozen_params_are_pruned);
    RUN(missing_logits_is_a_user_error);
    RUN(adamw_step_matches_hand_computation);
    RUN(optimizer_without_autodiff_is_a_user_error);
    RUN(gradcheck_passes_on_a_small_model);
    RUN(gradcheck_catches_a_broken_rule);
    return test_summary();
}
