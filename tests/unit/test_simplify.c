/* test_simplify.c — the decompose and simplify passes keep the values of graphs.
 *
 * The oracle is the reference interpreter: a graph and a copy of it after
 * a pipeline ("decompose", "simplify", "decompose,simplify,cse,dce") are
 * run on the same inputs (and the same params, initialised from the same
 * seed), and every output must agree within 1e-12 relative (NaN with NaN).
 * After decompose no composite op may remain.  This runs on every model in
 * models/, shrunk with --set style overrides, as a forward graph with a
 * cross-entropy loss added, and as a train-step graph when the autodiff
 * pass is in the build; and on hand-built graphs for each composite and
 * each rewrite, some with inf, -inf, NaN and -0 in their inputs.  The
 * structural tests check which rewrites happen, and which must not (x * 0
 * and x - x for floats, division by a constant that is not a power of two,
 * transposes that do not cancel).
 *
 * The attention pass is checked the same way on every model, with dropout
 * on (p = 0.25): the forward with a loss, and the train step built with
 * attention before autodiff against the one built without it, so that
 * causal_attention and causal_attention_grad are held to the primitives
 * and their autodiff, output by output (within 1e-9 of each output's
 * largest element plus 1e-15: the gradient sums in another order, and
 * the key bias's gradient is zero up to rounding).
 */
#include "frontend/fe.h"
#include "passes/pass.h"
#include "interp_cmp.h"
#include "testlib.h"

#include <dirent.h>

#define REL_TOL 1e-12

/* How inputs are filled (deterministically, from each input's name). */
typedef struct Fill {
    int64_t int_hi;   /* i32 inputs: uniform in [0, int_hi) */
    int ignore_every; /* i32 input "targets": every k-th is -100; 0: none, 1: all */
    bool specials;    /* f32 inputs: some inf, -inf, NaN and -0 */
    const IrGraph *src; /* when set: an i32 input of that name stays inside the range its
                         * uses there allow (ir_index_use: a classifier's targets [0, C),
                         * a one-hot index [0, T)) */
} Fill;

static const Fill plain = {8, 0, false, NULL};
static const Fill special = {8, 0, true, NULL};

/* ---------------------------------------------------------------- helpers */

static IrShape shp(int rank, const IrDim *d)
{
    return ir_shape_of(rank, d);
}

static IrShape ints(int rank, const int64_t *d)
{
    return ir_shape_ints(rank, d);
}

static IrDim C(int64_t v)
{
    return ir_dim_const(v);
}

static IrDim S(int sym)
{
    return ir_dim_sym(sym);
}

static IrNode *scalar(IrGraph *g, double v)
{
    return ir_const(g, v, DT_F32, ints(0, NULL));
}

static IrNode *op_attr(IrGraph *g, IrOp op, IrNode *a, IrAttr at)
{
    return ir_op1(g, op, a, &at, 1);
}

/* Runs `pipeline` with the verifier on; false (and a message) on error. */
static bool run(IrGraph *g, const char *pipeline)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.verify = true;
    bool ok = pass_run_pipeline(g, pipeline, &ctx);
    if (!ok)
        fprintf(stderr, "pipeline '%s': %s\n", pipeline, err.msg);
    return ok;
}

static int count_kind(const IrGraph *g, IrOpKind k)
{
    int c = 0;
    for (int i = 0; i < g->nnodes; i++)
        c += ir_ops[g->nodes[i]->op].kind == k;
    return c;
}

static int count_op(const IrGraph *g, IrOp op)
{
    int c = 0;
    for (int i = 0; i < g->nnodes; i++)
        c += g->nodes[i]->op == op;
    return c;
}

static IrNode *out(const IrGraph *g, int i)
{
    return g->outs[i].node;
}

/* ---------------------------------------------------------------- inputs */

static double f32_value(uint64_t *s, int64_t k, bool specials)
{
    static const double sp[] = {INFINITY, -INFINITY, NAN, -0.0};
    if (specials && k % 7 == 3)
        return sp[(k / 7) % 4];
    return (cmp_unif(s) - 0.5) * 6.0;
}

/* An i32 element: targets are sometimes ignore_index, a step is >= 1 (AdamW's
 * bias correction divides by 1 - beta^step). */
static double i32_value(const IrNode *n, uint64_t *s, int64_t k, const Fill *f, int64_t hi)
{
    if (!strcmp(n->name, "targets") && f->ignore_every > 0 && k % f->ignore_every == 0)
        return -100;
    if (!strcmp(n->name, "step"))
        return 1 + floor(cmp_unif(s) * 9);
    return floor(cmp_unif(s) * (double)hi);
}

/* The top of an i32 input's values: f->int_hi, or less where f->src's uses
 * of the input of that name allow less. */
static int64_t i32_hi(const IrNode *n, const int64_t *bind, const Fill *f)
{
    const IrNode *x = f->src && n->name ? ir_graph_find(f->src, OP_INPUT, n->name) : NULL;
    int64_t r = x ? ir_index_use(f->src, x, bind).range : 0;
    return r > 0 && r < f->int_hi ? r : f->int_hi;
}

/* f32 elements: AdamW's second moments (adam.v.*) are >= 0, lr is small. */
static double f32_input(const IrNode *n, uint64_t *s, int64_t k, const Fill *f)
{
    double v = f32_value(s, k, f->specials);
    if (!strncmp(n->name, "adam.v.", 7))
        return fabs(v);
    return !strcmp(n->name, "lr") ? 1e-3 * fabs(v) : v;
}

static void fill_tensor(const IrNode *n, IrTensor *t, const Fill *f, int64_t hi)
{
    uint64_t s = cmp_name_seed(n->name);
    for (int64_t k = 0; k < t->numel; k++) {
        if (t->dtype == DT_F32)
            t->data[k] = f32_input(n, &s, k, f);
        else if (t->dtype == DT_BOOL)
            t->data[k] = cmp_unif(&s) < 0.5;
        else
            t->data[k] = i32_value(n, &s, k, f, hi);
    }
}

static bool set_input(IrInterp *it, const IrNode *n, const int64_t *bind, const Fill *f)
{
    int64_t dim[IR_MAX_RANK];
    for (int d = 0; d < n->shape.rank; d++)
        dim[d] = ir_dim_eval(n->shape.d[d], bind);
    IrTensor *t = ir_tensor_new(n->dtype, n->shape.rank, dim);
    IrError err = {0};
    fill_tensor(n, t, f, i32_hi(n, bind, f));
    bool ok = ir_interp_set(it, n->name, t, &err);
    if (!ok)
        fprintf(stderr, "set %s: %s\n", n->name, err.msg);
    ir_tensor_free(t);
    return ok;
}

/* Runs g under the binding with filled inputs; NULL (and a message) on error. */
static IrInterp *eval(const IrGraph *g, const int64_t *bind, const Fill *f)
{
    IrError err = {0};
    IrInterp *it = ir_interp_new(g, bind, 42, &err);
    bool ok = it != NULL;
    for (int i = 0; ok && i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT)
            ok = set_input(it, g->nodes[i], bind, f);
    if (ok && !ir_interp_run(it, &err)) {
        fprintf(stderr, "interp: %s\n", err.msg);
        ok = false;
    } else if (!it)
        fprintf(stderr, "interp: %s\n", err.msg);
    if (!ok)
        ir_interp_free(it);
    return ok ? it : NULL;
}

/* ---------------------------------------------------------------- comparison */

/* Non-finite elements over all outputs of a run (models must have none, or
 * the comparison would only be NaN against NaN). */
static int64_t count_nonfinite(const IrGraph *g, IrInterp *it)
{
    int64_t bad = 0;
    for (int i = 0; i < g->nout; i++) {
        const IrTensor *t = ir_interp_output(it, g->outs[i].name);
        for (int64_t k = 0; t && k < t->numel; k++)
            bad += !isfinite(t->data[k]);
    }
    return bad;
}

static bool require_finite; /* set while checking models */

/* A copy of g after `pipeline` gives g's outputs; after decompose, no
 * composite is left.  Returns the copy's node count (-1 on failure). */
static int check_same(const IrGraph *g, const char *pipeline, const int64_t *bind,
                      const Fill *f, const char *what)
{
    char label[256];
    snprintf(label, sizeof label, "%s [%s]", what, pipeline);
    IrGraph *h = ir_graph_clone(g);
    bool ok = run(h, pipeline);
    CHECK(ok);
    if (strstr(pipeline, "decompose"))
        CHECK(count_kind(h, OPK_COMPOSITE) == 0);
    IrInterp *a = eval(g, bind, f), *b = ok ? eval(h, bind, f) : NULL;
    CHECK(a && b);
    if (a && require_finite)
        CHECK(count_nonfinite(g, a) == 0);
    for (int i = 0; a && b && i < g->nout; i++)
        CHECK(cmp_diff_output(a, b, g->outs[i].name, label, REL_TOL) == 0);
    int n = ok ? h->nnodes : -1;
    ir_interp_free(a);
    ir_interp_free(b);
    ir_graph_free(h);
    return n;
}

static const char *const pipelines[] = {"decompose", "simplify", "decompose,simplify",
                                        "decompose,simplify,cse,dce"};

static void check_all(const IrGraph *g, const int64_t *bind, const Fill *f, const char *what)
{
    for (size_t i = 0; i < sizeof pipelines / sizeof *pipelines; i++)
        check_same(g, pipelines[i], bind, f, what);
}

/* ---------------------------------------------------------------- the op table */

TEST(every_composite_has_a_rule)
{
    for (int op = 0; op < OP_COUNT; op++)
        if (ir_ops[op].kind == OPK_COMPOSITE && !pass_decompose_has_rule((IrOp)op)) {
            fprintf(stderr, "no decomposition for %s\n", ir_op_name((IrOp)op));
            CHECK(!"composite without a rule");
        }
    CHECK(pass_lookup("decompose") && pass_lookup("decompose")->fn == pass_decompose);
    CHECK(pass_lookup("simplify") && pass_lookup("simplify")->fn == pass_simplify);
}

/* ---------------------------------------------------------------- decompose */

/* softmax and log_softmax over each axis of x[3,B,5], with specials. */
TEST(decompose_softmax_axes)
{
    for (int ax = -1; ax < 3; ax++) {
        IrGraph *g = ir_graph_new("sm");
        int B = ir_graph_sym(g, "B");
        IrNode *x = ir_input(g, "x", DT_F32, shp(3, (IrDim[]){C(3), S(B), C(5)}));
        IrAttr a = ir_attr_int(ATTR_AXIS, ax);
        ir_graph_add_output(g, "sm", op_attr(g, OP_SOFTMAX, x, a));
        ir_graph_add_output(g, "lsm", op_attr(g, OP_LOG_SOFTMAX, x, a));
        check_all(g, (int64_t[]){4}, &plain, "softmax");
        check_all(g, (int64_t[]){4}, &special, "softmax specials");
        ir_graph_free(g);
    }
}

/* A row that is all -inf gives NaN both ways; large values do not overflow. */
TEST(decompose_softmax_extremes)
{
    IrGraph *g = ir_graph_new("sm");
    IrNode *x = ir_input(g, "x", DT_F32, ints(2, (int64_t[]){3, 4}));
    IrNode *big = ir_binary(g, OP_MUL, x, scalar(g, 1e300));
    ir_graph_add_output(g, "a", ir_unary(g, OP_SOFTMAX, big));
    ir_graph_add_output(g, "b", ir_unary(g, OP_LOG_SOFTMAX, big));
    IrNode *ninf = ir_const(g, -INFINITY, DT_F32, ints(2, (int64_t[]){2, 3}));
    ir_graph_add_output(g, "c", ir_unary(g, OP_SOFTMAX, ninf));
    check_all(g, NULL, &plain, "softmax extremes");
    ir_graph_free(g);
}

/* layernorm over a symbolic width D: the count is a sum of ones. */
TEST(decompose_layernorm)
{
    IrGraph *g = ir_graph_new("ln");
    int B = ir_graph_sym(g, "B"), D = ir_graph_sym(g, "D");
    IrNode *x = ir_input(g, "x", DT_F32, shp(3, (IrDim[]){S(B), C(3), S(D)}));
    IrNode *sc = ir_input(g, "scale", DT_F32, shp(1, (IrDim[]){S(D)}));
    IrNode *sh = ir_input(g, "shift", DT_F32, shp(1, (IrDim[]){S(D)}));
    IrNode *in[3] = {x, sc, sh};
    IrAttr eps = ir_attr_float(ATTR_EPS, 1e-3);
    IrError err = {0};
    IrNode *ln = ir_node_new(g, OP_LAYERNORM, in, 3, &eps, 1, NULL, NULL, &err);
    ir_graph_add_output(g, "y", ln);
    check_all(g, (int64_t[]){2, 7}, &plain, "layernorm");
    check_all(g, (int64_t[]){2, 1}, &plain, "layernorm D=1");
    check_all(g, (int64_t[]){2, 5}, &special, "layernorm specials");
    ir_graph_free(g);
}

/* A constant offset of 1e4 in the input: the two-pass variance keeps it exact. */
TEST(decompose_layernorm_offset)
{
    IrGraph *g = ir_graph_new("ln");
    IrNode *x = ir_input(g, "x", DT_F32, ints(2, (int64_t[]){4, 6}));
    IrNode *xo = ir_binary(g, OP_ADD, x, scalar(g, 1e4));
    IrNode *one = ir_const(g, 1, DT_F32, ints(1, (int64_t[]){6}));
    IrNode *zero = ir_const(g, 0, DT_F32, ints(1, (int64_t[]){6}));
    IrNode *in[3] = {xo, one, zero};
    IrError err = {0};
    ir_graph_add_output(g, "y", ir_node_new(g, OP_LAYERNORM, in, 3, NULL, 0, NULL, NULL, &err));
    check_all(g, NULL, &plain, "layernorm offset");
    ir_graph_free(g);
}

TEST(decompose_gelu)
{
    IrGraph *g = ir_graph_new("gelu");
    int B = ir_graph_sym(g, "B");
    IrNode *x = ir_input(g, "x", DT_F32, shp(2, (IrDim[]){S(B), C(9)}));
    ir_graph_add_output(g, "y", ir_unary(g, OP_GELU, x));
    check_all(g, (int64_t[]){3}, &plain, "gelu");
    check_all(g, (int64_t[]){3}, &special, "gelu specials");
    ir_graph_free(g);
}

/* causal_mask on x[2, Q, K] for the given dims, bound to q and k. */
static void check_causal(IrDim q, IrDim k, const int64_t *bind, const char *what)
{
    IrGraph *g = ir_graph_new("cm");
    ir_graph_sym(g, "Q");
    ir_graph_sym(g, "K");
    IrNode *x = ir_input(g, "x", DT_F32, shp(3, (IrDim[]){C(2), q, k}));
    ir_graph_add_output(g, "y", ir_unary(g, OP_CAUSAL_MASK, x));
    check_all(g, bind, &plain, what);
    ir_graph_free(g);
}

TEST(decompose_causal_mask)
{
    IrDim q1;
    ir_dim_add(S(0), C(2), &q1);
    check_causal(S(0), S(0), (int64_t[]){5, 5}, "causal T,T");
    check_causal(C(3), C(5), (int64_t[]){1, 1}, "causal 3,5");
    check_causal(C(5), C(3), (int64_t[]){1, 1}, "causal 5,3");
    check_causal(S(0), q1, (int64_t[]){4, 1}, "causal Q,Q+2");
    check_causal(S(0), S(1), (int64_t[]){3, 6}, "causal Q,K");
    check_causal(C(1), S(1), (int64_t[]){1, 6}, "causal 1,K");
}

/* mean over several axis sets, with and without keepdim, symbolic dims. */
TEST(decompose_mean)
{
    static const int64_t axes[][4] = {{1, 1}, {2, 0, 2}, {0}, {1, -1}, {3, 0, 1, 2}};
    for (int k = 0; k < 5; k++)
        for (int keep = 0; keep < 2; keep++) {
            IrGraph *g = ir_graph_new("mean");
            int B = ir_graph_sym(g, "B");
            IrNode *x = ir_input(g, "x", DT_F32, shp(3, (IrDim[]){S(B), C(3), C(4)}));
            IrAttr at[2] = {ir_attr_ints(ATTR_AXES, axes[k] + 1, (int)axes[k][0]),
                            ir_attr_int(ATTR_KEEPDIM, keep)};
            ir_graph_add_output(g, "y", ir_op1(g, OP_MEAN, x, at, 2));
            check_all(g, (int64_t[]){5}, &plain, "mean");
            ir_graph_free(g);
        }
}

/* cross_entropy(logits[B,T,V], targets[B,T]) under a fill of the targets. */
static void check_xent(int64_t ignore_index, const Fill *f, const char *what)
{
    IrGraph *g = ir_graph_new("xent");
    int B = ir_graph_sym(g, "B"), T = ir_graph_sym(g, "T");
    IrNode *x = ir_input(g, "logits", DT_F32, shp(3, (IrDim[]){S(B), S(T), C(6)}));
    IrNode *t = ir_input(g, "targets", DT_I32, shp(2, (IrDim[]){S(B), S(T)}));
    IrAttr a = ir_attr_int(ATTR_IGNORE_INDEX, ignore_index);
    ir_graph_add_output(g, "loss", ir_op2(g, OP_CROSS_ENTROPY, x, t, &a, 1));
    check_all(g, (int64_t[]){2, 5}, f, what);
    ir_graph_free(g);
}

TEST(decompose_cross_entropy)
{
    Fill some = {6, 3, false, NULL}, all = {6, 1, false, NULL}, none = {6, 0, false, NULL};
    check_xent(-100, &none, "xent");
    check_xent(-100, &some, "xent ignore some");
    check_xent(-100, &all, "xent ignore all");
    check_xent(2, &none, "xent ignore_index=2");
    Fill sp = {6, 4, true, NULL};
    check_xent(-100, &sp, "xent specials");
}

/* Every target ignored: the loss is exactly 0, before and after. */
TEST(decompose_cross_entropy_all_ignored_is_zero)
{
    IrGraph *g = ir_graph_new("xent");
    IrNode *x = ir_input(g, "logits", DT_F32, ints(2, (int64_t[]){3, 4}));
    IrNode *t = ir_input(g, "targets", DT_I32, ints(1, (int64_t[]){3}));
    ir_graph_add_output(g, "loss", ir_binary(g, OP_CROSS_ENTROPY, x, t));
    CHECK(run(g, "decompose,simplify,cse,dce") && count_kind(g, OPK_COMPOSITE) == 0);
    Fill all = {4, 1, false, NULL};
    IrInterp *it = eval(g, NULL, &all);
    CHECK(it && ir_interp_output(it, "loss")->data[0] == 0.0);
    ir_interp_free(it);
    ir_graph_free(g);
}

/* Rank-1 logits with a scalar target. */
TEST(decompose_cross_entropy_scalar_target)
{
    IrGraph *g = ir_graph_new("xent");
    IrNode *x = ir_input(g, "logits", DT_F32, ints(1, (int64_t[]){5}));
    IrNode *t = ir_input(g, "targets", DT_I32, ints(0, NULL));
    ir_graph_add_output(g, "loss", ir_binary(g, OP_CROSS_ENTROPY, x, t));
    Fill f = {5, 0, false, NULL};
    check_all(g, NULL, &f, "xent scalar");
    ir_graph_free(g);
}

/* Replacement nodes carry the composite's name: NAME on the value, NAME.x inside. */
TEST(decompose_keeps_names)
{
    IrGraph *g = ir_graph_new("names");
    IrNode *x = ir_input(g, "x", DT_F32, ints(2, (int64_t[]){2, 3}));
    IrNode *s = ir_unary(g, OP_SOFTMAX, x);
    s->name = "att.weights";
    IrNode *m = ir_unary(g, OP_GELU, x); /* unnamed: replacements stay unnamed */
    ir_graph_add_output(g, "y", ir_binary(g, OP_ADD, s, m));
    CHECK(run(g, "decompose"));
    IrNode *y = out(g, 0);
    CHECK_STR(y->in[0]->name, "att.weights");
    CHECK(y->in[0]->op == OP_DIV && y->in[1]->op == OP_MUL && !y->in[1]->name);
    CHECK(ir_graph_find(g, OP_MAX, "att.weights.max") &&
          ir_graph_find(g, OP_EXP, "att.weights.exp"));
    ir_graph_free(g);
}

/* A composite that is an output, used twice, and a graph without composites. */
TEST(decompose_outputs_and_uses)
{
    IrGraph *g = ir_graph_new("uses");
    IrNode *x = ir_input(g, "x", DT_F32, ints(2, (int64_t[]){2, 3}));
    IrNode *s = ir_unary(g, OP_SOFTMAX, x);
    ir_graph_add_output(g, "s", s);
    ir_graph_add_output(g, "t", ir_binary(g, OP_MUL, s, s));
    check_all(g, NULL, &plain, "uses");
    IrGraph *h = ir_graph_new("none");
    IrNode *y = ir_input(h, "y", DT_F32, ints(1, (int64_t[]){3}));
    ir_graph_add_output(h, "z", ir_unary(h, OP_EXP, y));
    char *before = ir_print_str(h);
    CHECK(run(h, "decompose"));
    char *after = ir_print_str(h);
    CHECK_STR(after, before);
    free(before);
    free(after);
    ir_graph_free(h);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- simplify: rewrites */

static IrGraph *graph_x(IrNode **x, IrDType dt)
{
    IrGraph *g = ir_graph_new("s");
    int B = ir_graph_sym(g, "B");
    *x = ir_input(g, "x", dt, shp(2, (IrDim[]){S(B), C(4)}));
    return g;
}

/* Each identity removes its node: the outputs become x (or neg x). */
TEST(simplify_identities)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    ir_graph_add_output(g, "add0", ir_binary(g, OP_ADD, x, scalar(g, 0)));
    ir_graph_add_output(g, "add0l", ir_binary(g, OP_ADD, scalar(g, -0.0), x));
    ir_graph_add_output(g, "sub0", ir_binary(g, OP_SUB, x, scalar(g, 0)));
    ir_graph_add_output(g, "mul1", ir_binary(g, OP_MUL, scalar(g, 1), x));
    ir_graph_add_output(g, "div1", ir_binary(g, OP_DIV, x, scalar(g, 1)));
    ir_graph_add_output(g, "negneg", ir_unary(g, OP_NEG, ir_unary(g, OP_NEG, x)));
    ir_graph_add_output(g, "mulm1", ir_binary(g, OP_MUL, x, scalar(g, -1)));
    ir_graph_add_output(g, "divm1", ir_binary(g, OP_DIV, x, scalar(g, -1)));
    check_same(g, "simplify", (int64_t[]){3}, &special, "identities");
    CHECK(run(g, "simplify,dce"));
    for (int i = 0; i < 6; i++)
        CHECK(out(g, i) == x);
    CHECK(out(g, 6)->op == OP_NEG && out(g, 7)->op == OP_NEG);
    ir_graph_free(g);
}

/* x * 0 and x - x stay for f32 (NaN, inf, -0); for i32 they fold to 0. */
TEST(simplify_unsafe_float_rules_not_applied)
{
    IrNode *x, *xi;
    IrGraph *g = graph_x(&x, DT_F32);
    xi = ir_input(g, "xi", DT_I32, x->shape);
    IrNode *zi = ir_const(g, 0, DT_I32, ints(0, NULL));
    ir_graph_add_output(g, "mul0", ir_binary(g, OP_MUL, x, scalar(g, 0)));
    ir_graph_add_output(g, "subxx", ir_binary(g, OP_SUB, x, x));
    ir_graph_add_output(g, "imul0", ir_binary(g, OP_MUL, xi, zi));
    ir_graph_add_output(g, "isubxx", ir_binary(g, OP_SUB, xi, xi));
    check_same(g, "simplify", (int64_t[]){3}, &special, "unsafe");
    CHECK(run(g, "simplify"));
    CHECK(out(g, 0)->op == OP_MUL && out(g, 1)->op == OP_SUB);
    CHECK(out(g, 2)->op == OP_CONST && out(g, 3)->op == OP_CONST);
    CHECK(ir_node_float(out(g, 3), ATTR_VALUE, 1) == 0 && out(g, 3)->dtype == DT_I32);
    ir_graph_free(g);
}

/* Division by a power of two becomes a multiplication; by 3 or by x it stays. */
TEST(simplify_div_by_const)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    IrNode *y = ir_input(g, "y", DT_F32, x->shape);
    ir_graph_add_output(g, "d4", ir_binary(g, OP_DIV, x, scalar(g, 4)));
    ir_graph_add_output(g, "dq", ir_binary(g, OP_DIV, x, scalar(g, -0.125)));
    ir_graph_add_output(g, "d3", ir_binary(g, OP_DIV, x, scalar(g, 3)));
    ir_graph_add_output(g, "dy", ir_binary(g, OP_DIV, x, y));
    ir_graph_add_output(g, "d768", ir_binary(g, OP_DIV, x, scalar(g, 768)));
    ir_graph_add_output(g, "huge", ir_binary(g, OP_DIV, x, scalar(g, 0x1p127)));
    ir_graph_add_output(g, "recip", ir_binary(g, OP_DIV, scalar(g, 1), y));
    check_same(g, "simplify", (int64_t[]){3}, &special, "div");
    CHECK(run(g, "simplify"));
    CHECK(out(g, 0)->op == OP_MUL && ir_node_float(out(g, 0)->in[1], ATTR_VALUE, 0) == 0.25);
    CHECK(out(g, 1)->op == OP_MUL && ir_node_float(out(g, 1)->in[1], ATTR_VALUE, 0) == -8);
    CHECK(out(g, 2)->op == OP_DIV && out(g, 3)->op == OP_DIV && out(g, 4)->op == OP_DIV);
    CHECK(out(g, 5)->op == OP_DIV); /* 2^-127 is subnormal in f32: kept */
    CHECK(out(g, 6)->op == OP_RECIP && out(g, 6)->in[0] == y);
    ir_graph_free(g);
}

TEST(simplify_recip_sqrt_rsqrt)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    ir_graph_add_output(g, "rs", ir_unary(g, OP_RECIP, ir_unary(g, OP_SQRT, x)));
    ir_graph_add_output(g, "rr", ir_unary(g, OP_RECIP, ir_unary(g, OP_RECIP, x)));
    IrNode *sq = ir_unary(g, OP_SQRT, x);
    ir_graph_add_output(g, "ds", ir_binary(g, OP_DIV, scalar(g, 1), sq));
    check_same(g, "simplify", (int64_t[]){3}, &plain, "recip");
    CHECK(run(g, "simplify"));
    CHECK(out(g, 0)->op == OP_RSQRT && out(g, 0)->in[0] == x);
    CHECK(out(g, 1) == x);
    CHECK(out(g, 2)->op == OP_RSQRT && out(g, 2)->in[0] == x); /* 1/s -> recip s -> rsqrt */
    ir_graph_free(g);
}

TEST(simplify_add_neg_to_sub)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    IrNode *y = ir_input(g, "y", DT_F32, ints(1, (int64_t[]){4}));
    ir_graph_add_output(g, "a", ir_binary(g, OP_ADD, x, ir_unary(g, OP_NEG, y)));
    ir_graph_add_output(g, "b", ir_binary(g, OP_ADD, ir_unary(g, OP_NEG, y), x));
    ir_graph_add_output(g, "c", ir_binary(g, OP_SUB, x, ir_unary(g, OP_NEG, y)));
    ir_graph_add_output(g, "d", ir_binary(g, OP_ADD, x, ir_binary(g, OP_MUL, y, scalar(g, -1))));
    check_same(g, "simplify", (int64_t[]){3}, &special, "neg");
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_SUB && out(g, 0)->in[0] == x && out(g, 0)->in[1] == y);
    CHECK(out(g, 1)->op == OP_SUB && out(g, 1)->in[0] == x && out(g, 1)->in[1] == y);
    CHECK(out(g, 2)->op == OP_ADD && out(g, 2)->in[1] == y);
    CHECK(out(g, 3)->op == OP_SUB && out(g, 3)->in[1] == y);
    CHECK(count_op(g, OP_NEG) == 0);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- simplify: constants */

TEST(simplify_constant_folding)
{
    IrGraph *g = ir_graph_new("c");
    IrShape s0 = ints(0, NULL), s3 = ints(2, (int64_t[]){3, 2});
    IrNode *two = ir_const(g, 2, DT_F32, s3), *three = scalar(g, 3);
    IrNode *i7 = ir_const(g, 7, DT_I32, s0), *i2 = ir_const(g, -2, DT_I32, s0);
    IrNode *i0 = ir_const(g, 0, DT_I32, s0);
    ir_graph_add_output(g, "sum", ir_binary(g, OP_ADD, two, three));
    ir_graph_add_output(g, "exp", ir_unary(g, OP_EXP, ir_binary(g, OP_MUL, two, three)));
    ir_graph_add_output(g, "idiv", ir_binary(g, OP_DIV, i7, i2));
    ir_graph_add_output(g, "lt", ir_binary(g, OP_LT, two, three));
    IrDType i32 = DT_I32;
    IrError err = {0};
    IrNode *c = ir_node_new(g, OP_CAST, &three, 1, NULL, 0, &i32, NULL, &err);
    ir_graph_add_output(g, "cast", c);
    ir_graph_add_output(g, "div0", ir_binary(g, OP_DIV, i7, i0)); /* an error at run time: kept */
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_CONST && ir_node_float(out(g, 0), ATTR_VALUE, 0) == 5);
    CHECK(ir_shape_eq(&out(g, 0)->shape, &s3));
    CHECK(out(g, 1)->op == OP_CONST && ir_node_float(out(g, 1), ATTR_VALUE, 0) == exp(6.0));
    CHECK(out(g, 2)->op == OP_CONST && ir_node_float(out(g, 2), ATTR_VALUE, 0) == -3);
    CHECK(out(g, 3)->op == OP_CONST && out(g, 3)->dtype == DT_BOOL &&
          ir_node_float(out(g, 3), ATTR_VALUE, 0) == 1);
    CHECK(out(g, 4)->op == OP_CONST && out(g, 4)->dtype == DT_I32);
    CHECK(out(g, 5)->op == OP_DIV);
    ir_graph_free(g);
}

/* Movement of a const is a const; reductions of consts are not folded. */
TEST(simplify_const_movement_not_reduction)
{
    IrGraph *g = ir_graph_new("c");
    int B = ir_graph_sym(g, "B");
    IrNode *c = ir_const(g, 0.5, DT_F32, ints(1, (int64_t[]){4}));
    IrError err = {0};
    IrShape bs = shp(2, (IrDim[]){S(B), C(4)});
    IrNode *b = ir_node_new(g, OP_BROADCAST, &c, 1, NULL, 0, NULL, &bs, &err);
    IrNode *t = op_attr(g, OP_TRANSPOSE, b, ir_attr_ints(ATTR_PERM, (int64_t[]){1, 0}, 2));
    ir_graph_add_output(g, "t", t);
    ir_graph_add_output(g, "s", ir_reduce(g, OP_SUM, b, (int[]){0}, 1, false));
    check_same(g, "simplify", (int64_t[]){3}, &plain, "const movement");
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_CONST && out(g, 0)->shape.rank == 2);
    CHECK(out(g, 1)->op == OP_SUM && out(g, 1)->in[0]->op == OP_CONST);
    ir_graph_free(g);
}

TEST(simplify_where_and_dropout)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    IrNode *y = ir_input(g, "y", DT_F32, x->shape), *c = ir_input(g, "c", DT_BOOL, x->shape);
    IrNode *t = ir_const(g, 1, DT_BOOL, ints(0, NULL));
    IrNode *in[3] = {t, x, y}, *in2[3] = {c, y, y};
    IrError err = {0};
    ir_graph_add_output(g, "w1", ir_node_new(g, OP_WHERE, in, 3, NULL, 0, NULL, NULL, &err));
    ir_graph_add_output(g, "w2", ir_node_new(g, OP_WHERE, in2, 3, NULL, 0, NULL, NULL, &err));
    ir_graph_add_output(g, "d0", op_attr(g, OP_DROPOUT, x, ir_attr_float(ATTR_P, 0)));
    ir_graph_add_output(g, "d1", op_attr(g, OP_DROPOUT, x, ir_attr_float(ATTR_P, 0.5)));
    check_same(g, "simplify", (int64_t[]){3}, &plain, "where/dropout");
    CHECK(run(g, "simplify"));
    CHECK(out(g, 0) == x && out(g, 1) == y && out(g, 2) == x && out(g, 3)->op == OP_DROPOUT);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- simplify: movement */

static IrNode *transpose(IrGraph *g, IrNode *x, const int64_t *perm)
{
    return op_attr(g, OP_TRANSPOSE, x, ir_attr_ints(ATTR_PERM, perm, x->shape.rank));
}

TEST(simplify_transposes)
{
    IrGraph *g = ir_graph_new("t");
    IrNode *x = ir_input(g, "x", DT_F32, ints(4, (int64_t[]){2, 3, 4, 5}));
    IrNode *a = transpose(g, x, (int64_t[]){0, 2, 1, 3});
    ir_graph_add_output(g, "cancel", transpose(g, a, (int64_t[]){0, 2, 1, 3}));
    IrNode *b = transpose(g, x, (int64_t[]){1, 2, 3, 0});
    ir_graph_add_output(g, "compose", transpose(g, b, (int64_t[]){1, 2, 3, 0}));
    ir_graph_add_output(g, "single", transpose(g, x, (int64_t[]){0, 2, 1, 3}));
    ir_graph_add_output(g, "id", transpose(g, x, (int64_t[]){0, 1, 2, 3}));
    check_same(g, "simplify", NULL, &plain, "transposes");
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0) == x && out(g, 3) == x);
    IrNode *c = out(g, 1);
    const IrAttr *p = ir_node_attr(c, ATTR_PERM);
    CHECK(c->op == OP_TRANSPOSE && c->in[0] == x && p->i[0] == 2 && p->i[1] == 3 &&
          p->i[2] == 0 && p->i[3] == 1);
    CHECK(out(g, 2)->op == OP_TRANSPOSE && out(g, 2)->in[0] == x);
    ir_graph_free(g);
}

TEST(simplify_reshapes_and_broadcasts)
{
    IrGraph *g = ir_graph_new("r");
    int B = ir_graph_sym(g, "B");
    IrNode *x = ir_input(g, "x", DT_F32, shp(2, (IrDim[]){S(B), C(6)}));
    IrNode *y = ir_input(g, "y", DT_F32, ints(1, (int64_t[]){6}));
    IrShape s1 = shp(3, (IrDim[]){S(B), C(2), C(3)}), s2 = shp(2, (IrDim[]){C(3), C(2)});
    IrShape s3 = shp(3, (IrDim[]){S(B), C(3), C(2)}), bs = x->shape;
    IrError err = {0};
    IrNode *r1 = ir_node_new(g, OP_RESHAPE, &x, 1, NULL, 0, NULL, &s1, &err);
    IrNode *r2 = ir_node_new(g, OP_RESHAPE, &r1, 1, NULL, 0, NULL, &s3, &err);
    IrNode *r3 = ir_node_new(g, OP_RESHAPE, &r1, 1, NULL, 0, NULL, &x->shape, &err);
    IrNode *by = ir_node_new(g, OP_BROADCAST, &y, 1, NULL, 0, NULL, &bs, &err);
    IrNode *yy = ir_node_new(g, OP_RESHAPE, &y, 1, NULL, 0, NULL, &s2, &err);
    ir_graph_add_output(g, "chain", r2);
    ir_graph_add_output(g, "back", r3);
    ir_graph_add_output(g, "fold", ir_binary(g, OP_ADD, x, by));
    ir_graph_add_output(g, "keep", ir_binary(g, OP_ADD, by, y)); /* y alone is only [6] */
    ir_graph_add_output(g, "yy", yy);
    check_same(g, "simplify", (int64_t[]){4}, &plain, "reshapes");
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_RESHAPE && out(g, 0)->in[0] == x);
    CHECK(out(g, 1) == x);
    CHECK(out(g, 2)->op == OP_ADD && out(g, 2)->in[1] == y);
    CHECK(out(g, 3)->op == OP_ADD && out(g, 3)->in[0]->op == OP_BROADCAST);
    ir_graph_free(g);
}

/* A const operand shrinks to rank 0 when the op broadcasts anyway. */
TEST(simplify_const_operand_shrinks)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    IrNode *c = ir_const(g, 2.5, DT_F32, x->shape);
    ir_graph_add_output(g, "y", ir_binary(g, OP_MUL, x, c));
    check_same(g, "simplify", (int64_t[]){3}, &plain, "const shrink");
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_MUL && out(g, 0)->in[1]->shape.rank == 0);
    ir_graph_free(g);
}

/* Long chains reach the fixed point; a second run changes nothing. */
TEST(simplify_fixed_point)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    IrNode *v = x;
    for (int i = 0; i < 9; i++)
        v = ir_unary(g, OP_NEG, ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, v, scalar(g, 1)),
                                          scalar(g, 0)));
    ir_graph_add_output(g, "y", v);
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_NEG && out(g, 0)->in[0] == x && g->nnodes == 2);
    char *a = ir_print_str(g);
    CHECK(run(g, "simplify"));
    char *b = ir_print_str(g);
    CHECK_STR(b, a);
    free(a);
    free(b);
    ir_graph_free(g);
}

/* A node with a fusion body is neither rewritten nor looked through. */
TEST(simplify_leaves_bodies_alone)
{
    IrNode *x;
    IrGraph *g = graph_x(&x, DT_F32);
    IrNode *n = ir_unary(g, OP_NEG, x);
    IrGraph *body = ir_graph_new("body");
    IrNode *bx = ir_input(body, "a", DT_F32, x->shape);
    IrNode *one = ir_const(body, 1, DT_F32, ints(0, NULL));
    ir_graph_add_output(body, "out", ir_unary(body, OP_NEG, ir_binary(body, OP_MUL, bx, one)));
    n->body = body;
    ir_graph_add_output(g, "y", ir_unary(g, OP_NEG, n));
    CHECK(run(g, "simplify,dce"));
    CHECK(out(g, 0)->op == OP_NEG && out(g, 0)->in[0] == n && n->body);
    CHECK(out(g, 0)->in[0]->body->outs[0].node->in[0] == bx); /* the body was simplified */
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- models */

static const FeSet shrink_sets[] = {
    {"n_layers", "2"},       {"emb_dim", "32"},        {"n_heads", "2"},
    {"vocab_size", "64"},    {"context_length", "16"}, {"drop_rate", "0"},
};

/* The model at path with every shrink key that its config has; drop_rate
 * as given. */
static FeModel *load_shrunk(const char *path, const char *drop_rate)
{
    FeOptions none = {NULL, 0};
    IrError err = {0};
    FeModel *m = fe_load_file(path, &none, &err);
    if (!m) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return NULL;
    }
    FeSet sets[6];
    int n = 0;
    double v;
    for (int i = 0; i < 6; i++)
        if (fe_config(m, shrink_sets[i].key, &v))
            sets[n++] = shrink_sets[i];
    for (int i = 0; i < n; i++)
        if (!strcmp(sets[i].key, "drop_rate"))
            sets[i].value = drop_rate;
    fe_model_free(m);
    FeOptions o = {sets, n};
    m = fe_load_file(path, &o, &err);
    if (!m)
        fprintf(stderr, "%s (shrunk): %s\n", path, err.msg);
    return m;
}

/* B = 2, T = 7, anything else 3. */
static void model_binding(const IrGraph *g, int64_t *bind)
{
    for (int i = 0; i < g->nsym; i++)
        bind[i] = !strcmp(g->sym[i], "B") ? 2 : !strcmp(g->sym[i], "T") ? 7 : 3;
}

/* Adds input targets and output loss = cross_entropy(logits, targets). */
static void add_loss(IrGraph *g)
{
    IrNode *logits = NULL;
    for (int i = 0; i < g->nout; i++)
        if (!strcmp(g->outs[i].name, "logits"))
            logits = g->outs[i].node;
    if (!logits || logits->shape.rank < 1)
        return;
    IrShape ts = logits->shape;
    ts.rank--;
    IrNode *t = ir_input(g, "targets", DT_I32, ts);
    ir_graph_add_output(g, "loss", ir_binary(g, OP_CROSS_ENTROPY, logits, t));
}

/* The train-step graph of g, when autodiff is in the build; else NULL. */
static IrGraph *train_step(const IrGraph *g)
{
    if (!pass_lookup("autodiff"))
        return NULL;
    IrGraph *h = ir_graph_clone(g);
    const char *pipe = pass_lookup("optimizer") ? "autodiff,optimizer" : "autodiff";
    if (!run(h, pipe)) {
        CHECK(!"autodiff failed");
        ir_graph_free(h);
        return NULL;
    }
    return h;
}

/* Output `name` of runs a and b within tol of its largest element. */
static int64_t diff_scaled(IrInterp *a, IrInterp *b, const char *name, const char *what, double tol)
{
    const IrTensor *ta = ir_interp_output(a, name), *tb = ir_interp_output(b, name);
    if (!ta || !tb || ta->numel != tb->numel) {
        fprintf(stderr, "%s: output %s missing or resized\n", what, name);
        return 1;
    }
    double big = 0;
    int64_t bad = 0;
    for (int64_t k = 0; k < ta->numel; k++)
        big = fmax(big, fabs(ta->data[k]));
    for (int64_t k = 0; k < ta->numel; k++)
        if (!(fabs(ta->data[k] - tb->data[k]) <= tol * big + 1e-15) && bad++ == 0)
            fprintf(stderr, "%s: %s[%lld] = %.17g without, %.17g with attention\n", what, name,
                    (long long)k, ta->data[k], tb->data[k]);
    return bad;
}

static int count_attention(const IrGraph *g)
{
    return count_op(g, OP_CAUSAL_ATTENTION);
}

/* The train step with the attention pass before autodiff against the one
 * without: every output (loss, grads, updated params, moments). */
static void check_attention_step(const IrGraph *g, const int64_t *bind, const Fill *f,
                                 const char *path)
{
    IrGraph *t0 = ir_graph_clone(g), *t1 = ir_graph_clone(g);
    bool ok = run(t0, "autodiff,optimizer") && run(t1, pass_stage("grad")->train);
    CHECK(ok);
    CHECK(count_op(t1, OP_CAUSAL_ATTENTION_GRAD) == count_attention(t1));
    Fill tf = *f;
    tf.src = t0;    /* its targets: the train step's */
    IrInterp *a = ok ? eval(t0, bind, &tf) : NULL, *b = ok ? eval(t1, bind, &tf) : NULL;
    CHECK(!ok || (a && b));
    int64_t bad = !(a && b);
    for (int i = 0; a && b && i < t0->nout; i++)
        bad += diff_scaled(a, b, t0->outs[i].name, path, 1e-9);
    CHECK(bad == 0);
    if (!bad)
        printf("  %s: attention: %d causal_attention ops; train step (%d outputs) agrees\n", path,
           count_attention(t1), t0->nout);
    ir_interp_free(a);
    ir_interp_free(b);
    ir_graph_free(t0);
    ir_graph_free(t1);
}

/* A model of models/ shrunk, its binding, how to fill its inputs, and a
 * copy of its graph to check. */
typedef struct ModelCase {
    FeModel *m;
    int64_t bind[IR_MAX_SYMS];
    Fill f;
    IrGraph *g;
} ModelCase;

static bool model_case(const char *path, const char *drop_rate, ModelCase *c)
{
    c->m = load_shrunk(path, drop_rate);
    CHECK(c->m != NULL);
    if (!c->m)
        return false;
    double vocab = 64;
    fe_config(c->m, "vocab_size", &vocab);
    model_binding(c->m->graph, c->bind);
    c->f = (Fill){(int64_t)vocab, 5, false, NULL};
    c->g = ir_graph_clone(c->m->graph);
    c->f.src = c->g;
    return true;
}

static void model_case_free(ModelCase *c)
{
    ir_graph_free(c->g);
    fe_model_free(c->m);
}

/* The attention pass with dropout on: forward with a loss, and train step. */
static void check_attention(const char *path)
{
    ModelCase c;
    if (!model_case(path, "0.25", &c))
        return;
    if (pass_lookup("autodiff") && pass_lookup("optimizer"))
        check_attention_step(c.g, c.bind, &c.f, path);
    add_loss(c.g);
    check_same(c.g, "attention", c.bind, &c.f, path);
    model_case_free(&c);
}

static void check_model(const char *path)
{
    ModelCase c;
    if (!model_case(path, "0", &c))
        return;
    IrGraph *g = c.g, *t = train_step(g);
    require_finite = true;
    add_loss(g);
    int before = g->nnodes;
    int after = check_same(g, "decompose,simplify,cse,dce", c.bind, &c.f, path);
    printf("  %s: forward+loss %d nodes, after decompose,simplify,cse,dce %d\n", path, before,
           after);
    check_all(g, c.bind, &c.f, path);
    if (t) {
        check_all(t, c.bind, &c.f, path);
        printf("  %s: train step checked (%d nodes)\n", path, t->nnodes);
    }
    require_finite = false;
    ir_graph_free(t);
    model_case_free(&c);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(models_keep_their_values)
{
    DIR *d = opendir("models");
    if (!d) {
        CHECK(!"models/ not found (run from the source root)");
        return;
    }
    char *names[64];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 64;) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    CHECK(n > 0);
    if (!pass_lookup("autodiff"))
        printf("  autodiff is not in the build: train-step graphs not checked\n");
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "models/%s", names[i]);
        check_model(path);
        check_attention(path);
        free(names[i]);
    }
}

int main(void)
{
    RUN(every_composite_has_a_rule);
    RUN(decompose_softmax_axes);
    RUN(decompose_softmax_extremes);
    RUN(decompose_layernorm);
    RUN(decompose_layernorm_offset);
    RUN(decompose_gelu);
    RUN(decompose_causal_mask);
    RUN(decompose_mean);
    RUN(decompose_cross_entropy);
    RUN(decompose_cross_entropy_all_ignored_is_zero);
    RUN(decompose_cross_entropy_scalar_target);
    RUN(decompose_keeps_names);
    RUN(decompose_outputs_and_uses);
    RUN(simplify_identities);
    RUN(simplify_unsafe_float_rules_not_applied);
    RUN(simplify_div_by_const);
    RUN(simplify_recip_sqrt_rsqrt);
    RUN(simplify_add_neg_to_sub);
    RUN(simplify_constant_folding);
    RUN(simplify_const_movement_not_reduction);
    RUN(simplify_where_and_dropout);
    RUN(simplify_transposes);
    RUN(simplify_reshapes_and_broadcasts);
    RUN(simplify_const_operand_shrinks);
    RUN(simplify_fixed_point);
    RUN(simplify_leaves_bodies_alone);
    RUN(models_keep_their_values);
    return test_summary();
}
