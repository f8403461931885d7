/* test_exec.c — the runtime: thread pool, memory plan, executor.
 *
 * The executor is tested over hand-built programs: every node of a small
 * graph gets a C kernel here (elementwise, row sums, sgemm, const fill)
 * behind the same contract as JIT kernels (codegen/cg_lower.h), so these
 * tests do not depend on the lowering.  One more test runs a JIT-compiled
 * graph with 1 and 2 threads and checks that the results are bit-identical.
 *
 * Memory plans are checked exhaustively: for every pair of arena buffers
 * that are live at the same time, their byte ranges must not meet, on
 * chains, diamonds, aliases and a few hundred random graphs.
 */
#include "ir/rng.h"
#include "runtime/rt_exec.h"
#include "testlib.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---------------------------------------------------------------- C kernels */

/* The graph the kernels below belong to: each kernel knows its node only by
 * index, as JIT kernels do (their slot indices are constants). */
static const IrGraph *kg;

static float *slot_f(void *const *s, const IrNode *n)
{
    return (float *)s[n->index];
}

/* out[i] = a[i] op b[i] (same shapes), or op(a[i]) */
static void k_elem(const IrNode *n, void *const *s, int64_t b, int64_t e)
{
    float *y = slot_f(s, n), *a = slot_f(s, n->in[0]);
    float *c = n->nin > 1 ? slot_f(s, n->in[1]) : NULL;
    for (int64_t i = b; i < e; i++)
        switch (n->op) {
        case OP_ADD: y[i] = a[i] + c[i]; break;
        case OP_SUB: y[i] = a[i] - c[i]; break;
        case OP_MUL: y[i] = a[i] * c[i]; break;
        case OP_EXP: y[i] = expf(a[i]); break;
        case OP_NEG: y[i] = -a[i]; break;
        default: IR_ASSERT(!"no test kernel");
        }
}

/* sum over the last axis: rows [b, e) of a (R, C) -> y (R) */
static void k_sum_rows(const IrNode *n, void *const *s, int64_t b, int64_t e)
{
    const IrNode *x = n->in[0];
    int64_t C = ir_dim_eval(x->shape.d[x->shape.rank - 1], NULL);
    float *y = slot_f(s, n), *a = slot_f(s, x);
    for (int64_t r = b; r < e; r++) {
        float acc = 0;
        for (int64_t j = 0; j < C; j++)
            acc += a[r * C + j];
        y[r] = acc;
    }
}

/* (M, K) @ (K, N) -> (M, N) through OpenBLAS; one call, not split */
static void k_matmul(const IrNode *n, void *const *s)
{
    int64_t M = ir_dim_eval(n->shape.d[0], NULL), N = ir_dim_eval(n->shape.d[1], NULL);
    int64_t K = ir_dim_eval(n->in[0]->shape.d[1], NULL);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
                slot_f(s, n->in[0]), (int)K, slot_f(s, n->in[1]), (int)N, 0.0f,
                slot_f(s, n), (int)N);
}

static void test_kernel(int i, void *const *s, int64_t b, int64_t e)
{
    const IrNode *n = kg->nodes[i];
    if (n->op == OP_SUM)
        k_sum_rows(n, s, b, e);
    else if (n->op == OP_MATMUL)
        k_matmul(n, s);
    else if (n->op == OP_CONST)
        for (int64_t k = b; k < e; k++)
            slot_f(s, n)[k] = (float)ir_node_float(n, ATTR_VALUE, 0);
    else
        k_elem(n, s, b, e);
}

#define TK(i) \
    static void tk_##i(void *const *s, int64_t b, int64_t e) { test_kernel(i, s, b, e); }
TK(0) TK(1) TK(2) TK(3) TK(4) TK(5) TK(6) TK(7)
TK(8) TK(9) TK(10) TK(11) TK(12) TK(13) TK(14) TK(15)
TK(16) TK(17) TK(18) TK(19) TK(20) TK(21) TK(22) TK(23)
TK(24) TK(25) TK(26) TK(27) TK(28) TK(29) TK(30) TK(31)
static const CgKernelFn tk[] = {
    tk_0, tk_1, tk_2, tk_3, tk_4, tk_5, tk_6, tk_7, tk_8, tk_9, tk_10, tk_11, tk_12, tk_13,
    tk_14, tk_15, tk_16, tk_17, tk_18, tk_19, tk_20, tk_21, tk_22, tk_23, tk_24, tk_25,
    tk_26, tk_27, tk_28, tk_29, tk_30, tk_31
};
#define NTK (int)(sizeof tk / sizeof tk[0])

/* ---------------------------------------------------------------- hand-built programs */

static void code_node(const IrNode *n, CgNodeCode *c)
{
    c->inplace = -1;
    c->numel = ir_node_numel_const(n);
    c->bytes = c->numel * (int64_t)ir_dtype_size(n->dtype);
    if (n->op == OP_INPUT || n->op == OP_PARAM) {
        c->kind = CG_SOURCE;
        return;
    }
    if (n->op == OP_RESHAPE) {
        c->kind = CG_ALIAS;
        c->alias_of = n->in[0]->index;
        return;
    }
    c->kind = CG_KERNEL;
    c->fn = n->index < NTK ? tk[n->index] : NULL; /* plan-only graphs may be bigger */
    c->parallel = n->op != OP_MATMUL;
    c->extent = n->op == OP_MATMUL ? 1 : c->numel; /* sum: rows of its result */
    c->flops = n->op == OP_MATMUL ? 2.0 * c->numel * ir_dim_eval(n->in[0]->shape.d[1], NULL)
                                  : (double)c->numel;
}

static void assume_plan(CgProgram *p)
{
    IrError err = {0};
    PassMemPlan plan;
    PassMemOpts o = {.use_offsets = true};
    if (pass_memplan_build(p->graph, p->binding, &o, &plan, &err))
        for (int i = 0; i < p->nnodes; i++)
            p->nodes[i].inplace = plan.inplace[i];
    pass_memplan_free(&plan);
}

static CgProgram *fake_program(const IrGraph *g)
{
    CgProgram *p = calloc(1, sizeof *p);
    p->graph = g;
    p->nnodes = g->nnodes;
    p->nodes = calloc((size_t)g->nnodes, sizeof *p->nodes);
    for (int i = 0; i < g->nnodes; i++)
        code_node(g->nodes[i], &p->nodes[i]);
    assume_plan(p); /* as codegen does: kernels know what they write over */
    kg = g;
    return p;
}

static void fake_free(CgProgram *p)
{
    free(p->nodes);
    free(p);
}

static IrShape shape2(int64_t a, int64_t b)
{
    return ir_shape_ints(2, (int64_t[]){a, b});
}

/* ---------------------------------------------------------------- plan checks */

/* No two arena buffers that are live at the same time share a byte, and
 * each lies inside [0, peak). */
static void check_plan(const RtMemPlan *pl)
{
    int bad = 0;
    for (int a = 0; a < pl->n; a++) {
        if (pl->offset[a] < 0 || pl->size[a] == 0)
            continue;
        bad += pl->offset[a] % RT_ALIGN != 0 || pl->offset[a] + pl->size[a] > pl->peak_bytes;
        for (int b = a + 1; b < pl->n; b++) {
            if (pl->offset[b] < 0 || pl->size[b] == 0 || !rt_memplan_overlap_in_time(pl, a, b))
                continue;
            bool apart = pl->offset[a] + pl->size[a] <= pl->offset[b] ||
                         pl->offset[b] + pl->size[b] <= pl->offset[a];
            if (!apart && bad++ < 5)
                fprintf(stderr, "buffers %d and %d overlap\n", a, b);
        }
    }
    CHECK(bad == 0);
    CHECK(pl->peak_bytes <= pl->naive_bytes);
}

/* ---------------------------------------------------------------- pool */

static _Atomic int hits[2000];

static void count_kernel(void *const *s, int64_t b, int64_t e)
{
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&hits[i], 1);
}

TEST(pool_covers_each_index_once)
{
    static const int64_t extents[] = {0, 1, 2, 3, 17, 1000, 1023};
    for (int nt = 1; nt <= 4; nt++) {
        IrError err = {0};
        RtPool *p = rt_pool_new(nt, &err);
        CHECK(p && rt_pool_threads(p) == nt);
        for (int k = 0; k < 7; k++)
            for (int rep = 0; rep < 50; rep++) {
                memset(hits, 0, sizeof hits);
                rt_pool_run(p, count_kernel, NULL, extents[k]);
                int wrong = 0;
                for (int64_t i = 0; i < 1100; i++)
                    wrong += hits[i] != (i < extents[k]);
                CHECK(wrong == 0);
                if (rep % 10 == 0)
                    rt_pool_idle(p); /* workers sleep; the next run wakes them */
            }
        rt_pool_free(p);
    }
}

TEST(default_threads)
{
    setenv("GRADC_THREADS", "3", 1);
    CHECK(rt_default_threads() == 3);
    setenv("GRADC_THREADS", "junk", 1);
    CHECK(rt_default_threads() >= 1);
    unsetenv("GRADC_THREADS");
    CHECK(rt_default_threads() >= 1);
}

/* ---------------------------------------------------------------- memplan */

/* x -> a1 = exp(x) -> a2 = -a1 -> ... a chain: each kernel takes over its
 * operand's buffer in place (memplan), so one buffer suffices. */
TEST(plan_chain_reuses)
{
    IrGraph *g = ir_graph_new("chain");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(4, 100));
    for (int i = 0; i < 10; i++)
        x = ir_unary(g, i % 2 ? OP_NEG : OP_EXP, x);
    ir_graph_add_output(g, "y", x);
    CgProgram *p = fake_program(g);
    IrError err = {0};
    RtMemPlan pl;
    CHECK(rt_memplan(g, p, NULL, &pl, &err));
    check_plan(&pl);
    CHECK(pl.nbuffers == 10);
    CHECK(pl.naive_bytes == 10 * 1600);
    CHECK(pl.peak_bytes == 1600 && pl.ninplace == 9);
    CHECK(pl.last[x->index] == g->nnodes); /* the output lives to the end */
    rt_memplan_free(&pl);
    fake_free(p);
    ir_graph_free(g);
}

/* An alias extends its root's life to the alias's readers. */
TEST(plan_alias_extends_life)
{
    IrGraph *g = ir_graph_new("alias");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(8, 8));
    IrNode *a = ir_unary(g, OP_EXP, x);
    IrShape s64 = ir_shape_ints(2, (int64_t[]){64, 1});
    IrError err = {0};
    IrNode *r = ir_node_new(g, OP_RESHAPE, &a, 1, NULL, 0, NULL, &s64, &err);
    CHECK(r != NULL);
    IrNode *b = ir_unary(g, OP_NEG, x);  /* must not take a's place */
    IrNode *c = ir_unary(g, OP_EXP, b);
    IrNode *d = ir_unary(g, OP_NEG, r);  /* reads a through r */
    ir_graph_add_output(g, "c", c);
    ir_graph_add_output(g, "d", d);
    CgProgram *p = fake_program(g);
    RtMemPlan pl;
    CHECK(rt_memplan(g, p, NULL, &pl, &err));
    check_plan(&pl);
    CHECK(pl.root[r->index] == a->index);
    CHECK(pl.offset[r->index] == -1);
    CHECK(pl.last[a->index] == d->index);
    CHECK(rt_memplan_overlap_in_time(&pl, a->index, c->index));
    rt_memplan_free(&pl);
    fake_free(p);
    ir_graph_free(g);
}

/* Random graphs over three widths: unary ops, adds, row sums, reshapes,
 * random outputs; the plan must be sound on every one. */
static IrNode *pick(IrGraph *g, IrRng *r, const IrShape *want)
{
    for (int tries = 0; tries < 64; tries++) {
        IrNode *n = g->nodes[ir_rng_next(r) % (uint64_t)g->nnodes];
        if (!want || ir_shape_eq(&n->shape, want))
            return n;
    }
    return NULL;
}

static void random_node(IrGraph *g, IrRng *r)
{
    IrNode *a = pick(g, r, NULL), *b;
    IrError err = {0};
    switch (ir_rng_next(r) % 5) {
    case 0: ir_unary(g, OP_EXP, a); break;
    case 1: ir_unary(g, OP_NEG, a); break;
    case 2:
        b = pick(g, r, &a->shape);
        ir_binary(g, OP_ADD, a, b ? b : a);
        break;
    case 3:
        if (a->shape.rank > 0)
            ir_reduce(g, OP_SUM, a, (int[]){a->shape.rank - 1}, 1, false);
        break;
    default: {
        IrShape s = ir_shape_ints(1, (int64_t[]){ir_node_numel_const(a)});
        ir_node_new(g, OP_RESHAPE, &a, 1, NULL, 0, NULL, &s, &err);
    }
    }
}

static IrGraph *random_graph(IrRng *r, int nodes)
{
    IrGraph *g = ir_graph_new("random");
    ir_input(g, "x1", DT_F32, shape2(4, 16));
    ir_input(g, "x2", DT_F32, shape2(4, 64));
    ir_input(g, "x3", DT_F32, shape2(4, 256));
    while (g->nnodes < nodes)
        random_node(g, r);
    int nout = 1 + (int)(ir_rng_next(r) % 4);
    for (int o = 0; o < nout; o++) {
        char name[16];
        snprintf(name, sizeof name, "y%d", o);
        ir_graph_add_output(g, name, pick(g, r, NULL));
    }
    return g;
}

TEST(plan_random_graphs_sound)
{
    IrRng r;
    ir_rng_init(&r, 7);
    int64_t saved = 0, naive = 0;
    for (int k = 0; k < 300; k++) {
        IrGraph *g = random_graph(&r, 10 + k % 60);
        CgProgram *p = fake_program(g);
        IrError err = {0};
        RtMemPlan pl;
        CHECK(rt_memplan(g, p, NULL, &pl, &err));
        check_plan(&pl);
        saved += pl.naive_bytes - pl.peak_bytes;
        naive += pl.naive_bytes;
        rt_memplan_free(&pl);
        fake_free(p);
        ir_graph_free(g);
    }
    CHECK(saved > naive / 4); /* reuse happens */
}

TEST(plan_pinned_and_bad_alias)
{
    IrGraph *g = ir_graph_new("pin");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(2, 8));
    IrNode *a = ir_unary(g, OP_EXP, x), *b = ir_unary(g, OP_NEG, a);
    ir_graph_add_output(g, "b", b);
    CgProgram *p = fake_program(g);
    bool pinned[3] = {false, true, false};
    IrError err = {0};
    RtMemPlan pl;
    CHECK(p->nodes[b->index].inplace == 0); /* unpinned, b would write over a */
    CHECK(!rt_memplan(g, p, pinned, &pl, &err)); /* a plan codegen did not assume */
    CHECK(strstr(err.msg, "codegen assumed it in place") != NULL);
    p->nodes[b->index].inplace = -1;
    CHECK(rt_memplan(g, p, pinned, &pl, &err));
    CHECK(pl.offset[a->index] == -1 && pl.offset[b->index] == 0 && pl.nbuffers == 1);
    rt_memplan_free(&pl);
    p->nodes[a->index].kind = CG_ALIAS;
    p->nodes[a->index].alias_of = b->index; /* a later node: a lowering bug */
    CHECK(!rt_memplan(g, p, NULL, &pl, &err));
    CHECK(strstr(err.msg, "not an earlier node") != NULL);
    fake_free(p);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- executor */

static void fill(float *x, int64_t n, uint64_t seed)
{
    IrRng r;
    ir_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(ir_rng_uniform(&r) * 2 - 1);
}

/* y = sum_rows(exp(reshape(x @ w)) * x2) + c, big enough for the pool */
static IrGraph *mlp_graph(void)
{
    enum { R = 64, K = 32, N = 512 };
    IrGraph *g = ir_graph_new("mlp");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(R, K));
    IrNode *w = ir_param(g, "w", shape2(K, N), "normal", 0.1, true);
    IrNode *x2 = ir_input(g, "x2", DT_F32, shape2(R, N));
    IrNode *h = ir_binary(g, OP_MATMUL, x, w);
    IrShape flat = ir_shape_ints(2, (int64_t[]){R * N / 64, 64});
    IrError err = {0};
    IrNode *hr = ir_node_new(g, OP_RESHAPE, &h, 1, NULL, 0, NULL, &flat, &err);
    IrShape back = shape2(R, N);
    IrNode *e = ir_unary(g, OP_EXP, hr);
    IrNode *eb = ir_node_new(g, OP_RESHAPE, &e, 1, NULL, 0, NULL, &back, &err);
    IrNode *m = ir_binary(g, OP_MUL, eb, x2);
    IrNode *s = ir_reduce(g, OP_SUM, m, (int[]){1}, 1, false);
    IrNode *c = ir_const(g, 0.5, DT_F32, ir_shape_ints(1, (int64_t[]){R}));
    ir_graph_add_output(g, "y", ir_binary(g, OP_ADD, s, c));
    ir_graph_add_output(g, "h", hr);
    return g;
}

static RtExec *mlp_exec(const IrGraph *g, const CgProgram *p, int nthreads)
{
    IrError err = {0};
    RtExecOptions opt = {.nthreads = nthreads, .timing = true};
    RtExec *ex = rt_exec_new_program(g, p, &opt, &err);
    CHECK(ex != NULL);
    if (!ex)
        return NULL;
    static float x[64 * 32], x2[64 * 512];
    fill(x, 64 * 32, 1);
    fill(x2, 64 * 512, 2);
    rt_exec_init_params(ex, 42);
    CHECK(rt_exec_set_input(ex, "x", x, sizeof x, &err));
    CHECK(rt_exec_set_input(ex, "x2", x2, sizeof x2, &err));
    CHECK(rt_exec_run(ex, &err));
    return ex;
}

/* The reference of mlp_graph in double, from the executor's own weights. */
static double mlp_ref(RtExec *ex, int row)
{
    const float *x = rt_exec_input(ex, "x"), *x2 = rt_exec_input(ex, "x2");
    const float *w = rt_exec_param(ex, "w");
    double y = 0.5;
    for (int j = 0; j < 512; j++) {
        double h = 0;
        for (int k = 0; k < 32; k++)
            h += (double)x[row * 32 + k] * w[k * 512 + j];
        y += exp(h) * x2[row * 512 + j];
    }
    return y;
}

TEST(exec_runs_and_aliases)
{
    IrGraph *g = mlp_graph();
    CgProgram *p = fake_program(g);
    RtExec *ex = mlp_exec(g, p, 2);
    if (!ex)
        return;
    int64_t n = 0;
    const float *y = rt_exec_output(ex, "y", &n);
    CHECK(n == 64);
    double worst = 0;
    for (int r = 0; r < 64; r++) {
        double ref = mlp_ref(ex, r);
        worst = fmax(worst, fabs(y[r] - ref) / fmax(fabs(ref), 1));
    }
    CHECK(worst < 1e-4); /* 512-term float sums */
    /* reshapes share their operand's buffer; buffers are aligned */
    CHECK(rt_exec_buffer(ex, 3) == rt_exec_buffer(ex, 4));
    CHECK(rt_exec_buffer(ex, 5) == rt_exec_buffer(ex, 6));
    for (int i = 0; i < g->nnodes; i++)
        CHECK((uintptr_t)rt_exec_buffer(ex, i) % RT_ALIGN == 0);
    const RtExecStats *st = rt_exec_stats(ex);
    CHECK(st->nthreads == 2 && st->nkernels == 6 && st->blas_core != NULL);
    CHECK(st->peak_bytes < st->naive_bytes);
    CHECK(rt_exec_kernel_ns(ex)[3] > 0 && rt_exec_runs(ex) == 1);
    check_plan(rt_exec_plan(ex));
    rt_exec_free(ex);
    fake_free(p);
    ir_graph_free(g);
}

/* gradc's kernels compute each element on one thread, so their results
 * are bit-identical for any thread count.  OpenBLAS's sgemm is not always:
 * some core types (Haswell kernels) round differently when the matrix is
 * split over 2 threads; so the matmul graph is compared within tolerance
 * and its bit-identity is only reported. */
static IrGraph *pool_graph(void)
{
    IrGraph *g = ir_graph_new("pool");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(64, 32));
    IrNode *x2 = ir_input(g, "x2", DT_F32, shape2(64, 512));
    IrNode *w = ir_param(g, "w", shape2(64, 512), "normal", 0.5, true);
    IrNode *e = ir_unary(g, OP_EXP, ir_binary(g, OP_MUL, x2, w));
    IrNode *s = ir_reduce(g, OP_SUM, ir_binary(g, OP_ADD, e, x2), (int[]){1}, 1, false);
    ir_graph_add_output(g, "y", s);
    ir_graph_add_output(g, "e", ir_unary(g, OP_NEG, e));
    (void)x;
    return g;
}

static bool same_output(RtExec *a, RtExec *b, const char *name, double *rel)
{
    int64_t n;
    const float *x = rt_exec_output(a, name, &n), *y = rt_exec_output(b, name, NULL);
    double worst = 0, top = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)x[i] - y[i]));
        top = fmax(top, fabs((double)y[i]));
    }
    *rel = worst / top;
    return !memcmp(x, y, (size_t)n * sizeof *x);
}

TEST(exec_threads_identical)
{
    IrGraph *g = pool_graph();
    CgProgram *p = fake_program(g);
    RtExec *a = mlp_exec(g, p, 1), *b = mlp_exec(g, p, 2), *c = mlp_exec(g, p, 3);
    double rel;
    if (a && b && c) {
        CHECK(same_output(a, b, "y", &rel) && same_output(a, c, "y", &rel));
        CHECK(same_output(a, b, "e", &rel) && same_output(a, c, "e", &rel));
    }
    rt_exec_free(a);
    rt_exec_free(b);
    rt_exec_free(c);
    fake_free(p);
    ir_graph_free(g);
}

TEST(exec_threads_matmul)
{
    IrGraph *g = mlp_graph();
    CgProgram *p = fake_program(g);
    RtExec *a = mlp_exec(g, p, 1), *b = mlp_exec(g, p, 2);
    double rel = 1;
    if (a && b) {
        bool same = same_output(a, b, "y", &rel);
        CHECK(rel < 1e-6);
        printf("  matmul graph, 1 vs 2 threads, OpenBLAS %s: %s (max rel diff %.2g)\n",
               rt_exec_stats(a)->blas_core, same ? "bit-identical" : "differs", rel);
    }
    rt_exec_free(a);
    rt_exec_free(b);
    fake_free(p);
    ir_graph_free(g);
}

TEST(exec_init_params)
{
    IrGraph *g = ir_graph_new("init");
    IrNode *w = ir_param(g, "w", shape2(3, 5), "normal", 0.02, true);
    IrNode *z = ir_param(g, "z", shape2(1, 3), "zeros", 0, true);
    IrNode *o = ir_param(g, "o", shape2(1, 3), "ones", 0, true);
    ir_graph_add_output(g, "s", ir_binary(g, OP_ADD, z, o));
    (void)w;
    CgProgram *p = fake_program(g);
    IrError err = {0};
    RtExec *a = rt_exec_new_program(g, p, NULL, &err), *b = rt_exec_new_program(g, p, NULL, &err);
    rt_exec_init_params(a, 5);
    rt_exec_init_params(b, 5);
    CHECK(!memcmp(rt_exec_param(a, "w"), rt_exec_param(b, "w"), 15 * 4));
    IrRng r;
    ir_rng_init(&r, ir_rng_stream(5, "w"));
    CHECK(rt_exec_param(a, "w")[0] == (float)(0.02 * ir_rng_normal(&r)));
    CHECK(rt_exec_param(a, "z")[2] == 0.0f && rt_exec_param(a, "o")[2] == 1.0f);
    /* each param starts on a cache line; the slab is one block in graph order */
    CHECK((char *)rt_exec_param(a, "z") - (char *)rt_exec_param(a, "w") == 64);
    CHECK(rt_exec_stats(a)->param_bytes == 64 * 3);
    CHECK(rt_exec_param(a, "nope") == NULL);
    rt_exec_free(a);
    rt_exec_free(b);
    fake_free(p);
    ir_graph_free(g);
}

/* init "uniform": U(-bound, bound) (PyTorch's nn.Linear default), the
 * same values in the runtime (float) and the interpreter (double), with the
 * moments of a uniform: mean 0, std bound / sqrt(3). */
TEST(exec_init_uniform)
{
    IrGraph *g = ir_graph_new("uniform");
    IrNode *w = ir_param(g, "w", shape2(64, 64), "normal", 0.02, true);
    ir_node_set_attr(g, w, ir_attr_str(ATTR_INIT, "uniform"));
    ir_node_set_attr(g, w, ir_attr_float(ATTR_BOUND, 0.125));
    ir_graph_add_output(g, "y", ir_unary(g, OP_NEG, w));
    CgProgram *p = fake_program(g);
    IrError err = {0};
    RtExec *ex = rt_exec_new_program(g, p, NULL, &err);
    IrInterp *it = ir_interp_new(g, NULL, 9, &err);
    CHECK(ex && it && ir_interp_run(it, &err));
    rt_exec_init_params(ex, 9);
    const float *x = rt_exec_param(ex, "w");
    const IrTensor *ref = ir_interp_value(it, w);
    double sum = 0, sq = 0, most = 0;
    bool same = true;
    for (int i = 0; i < 64 * 64; i++) {
        same = same && x[i] == (float)ref->data[i];
        sum += x[i], sq += (double)x[i] * x[i];
        most = fabs(x[i]) > most ? fabs(x[i]) : most;
    }
    double mean = sum / 4096, sd = sqrt(sq / 4096 - mean * mean);
    CHECK(same);
    CHECK(most <= 0.125 && most > 0.12);
    CHECK(fabs(mean) < 0.005);                      /* 3 sigma of the mean: 0.0034 */
    CHECK(fabs(sd - 0.125 / sqrt(3.0)) < 0.003);    /* 0.0722 */
    ir_interp_free(it);
    rt_exec_free(ex);
    fake_free(p);
    ir_graph_free(g);
}

TEST(exec_input_errors)
{
    IrGraph *g = ir_graph_new("inputs");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(2, 2));
    ir_graph_add_output(g, "y", ir_unary(g, OP_NEG, x));
    CgProgram *p = fake_program(g);
    IrError err = {0};
    RtExec *ex = rt_exec_new_program(g, p, NULL, &err);
    float v[4] = {1, 2, 3, 4};
    CHECK(!rt_exec_run(ex, &err) && strstr(err.msg, "'x' was never set"));
    memset(&err, 0, sizeof err);
    CHECK(!rt_exec_set_input(ex, "x", v, 12, &err) && strstr(err.msg, "takes 16 bytes"));
    memset(&err, 0, sizeof err);
    CHECK(!rt_exec_set_input(ex, "q", v, 16, &err) && strstr(err.msg, "no input named 'q'"));
    CHECK(rt_exec_set_input(ex, "x", v, 16, &err) && rt_exec_run(ex, &err));
    CHECK(((const float *)rt_exec_output(ex, "y", NULL))[3] == -4.0f);
    CHECK(rt_exec_output(ex, "nope", NULL) == NULL);
    rt_exec_free(ex);
    fake_free(p);
    ir_graph_free(g);
}

/* An SGD-like step: outputs "w" and "m" write back into the param w and
 * the state input m, so a second run sees the updated values. */
TEST(exec_write_back)
{
    IrGraph *g = ir_graph_new("step");
    IrShape s = shape2(1, 4);
    IrNode *w = ir_param(g, "w", s, "ones", 0, true);
    IrNode *m = ir_input(g, "m", DT_F32, s);
    IrNode *gr = ir_input(g, "g", DT_F32, s);
    IrNode *m2 = ir_binary(g, OP_ADD, m, gr);
    IrNode *w2 = ir_binary(g, OP_SUB, w, m2);
    ir_graph_add_output(g, "w", w2);
    ir_graph_add_output(g, "m", m2);
    ir_graph_add_output(g, "loss", ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, w, w),
                                             (int[]){1}, 1, false));
    CgProgram *p = fake_program(g);
    IrError err = {0};
    RtExec *ex = rt_exec_new_program(g, p, NULL, &err);
    CHECK(rt_exec_stats(ex)->state_bytes == 64 && rt_exec_stats(ex)->input_bytes == 64);
    rt_exec_init_params(ex, 1);
    float gv[4] = {0.5f, 1, 2, 4};
    CHECK(rt_exec_set_input(ex, "g", gv, 16, &err));
    CHECK(rt_exec_run(ex, &err) && rt_exec_run(ex, &err));
    const float *wv = rt_exec_param(ex, "w"), *mv = rt_exec_input(ex, "m");
    for (int i = 0; i < 4; i++) {
        CHECK(mv[i] == 2 * gv[i]);               /* m = g + g */
        CHECK(wv[i] == 1 - gv[i] - 2 * gv[i]);   /* w = 1 - g - 2g */
    }
    /* loss of the second run saw the first update: sum((1 - g)^2) */
    CHECK(((const float *)rt_exec_output(ex, "loss", NULL))[0] == 0.25f + 0 + 1 + 9);
    /* m2 is computed in place in m's buffer (nothing reads the old m after
     * it); w2 is copied, since the loss reads the old w after it */
    CHECK(rt_exec_buffer(ex, m2->index) == (void *)mv);
    CHECK(rt_exec_buffer(ex, w2->index) != (void *)wv);
    CHECK(rt_exec_stats(ex)->pinned_bytes == 16);
    rt_exec_free(ex);
    fake_free(p);
    ir_graph_free(g);
}

/* An elementwise update that is the last reader of its param runs in
 * place; a reduction does not. */
TEST(exec_write_back_in_place)
{
    IrGraph *g = ir_graph_new("inplace");
    IrNode *w = ir_param(g, "w", shape2(4, 8), "ones", 0, true);
    ir_param(g, "b", ir_shape_ints(1, (int64_t[]){4}), "ones", 0, true);
    IrNode *x = ir_input(g, "x", DT_F32, shape2(4, 8));
    IrNode *y = ir_binary(g, OP_MUL, w, x);                   /* reads w and x */
    IrNode *w2 = ir_binary(g, OP_SUB, w, y);                  /* w - w*x: last reader of w */
    ir_graph_add_output(g, "w", w2);
    ir_graph_add_output(g, "b", ir_reduce(g, OP_SUM, w2, (int[]){1}, 1, false));
    CgProgram *p = fake_program(g);
    IrError err = {0};
    RtExec *ex = rt_exec_new_program(g, p, NULL, &err);
    CHECK(ex != NULL);
    if (ex) {
        float xv[32];
        for (int i = 0; i < 32; i++)
            xv[i] = 0.25f * (float)(i % 4);
        rt_exec_init_params(ex, 3);
        CHECK(rt_exec_set_input(ex, "x", xv, sizeof xv, &err) && rt_exec_run(ex, &err));
        CHECK(rt_exec_buffer(ex, w2->index) == (void *)rt_exec_param(ex, "w"));
        CHECK(rt_exec_stats(ex)->pinned_bytes == 32 * 4);
        for (int i = 0; i < 32; i++)
            CHECK(rt_exec_param(ex, "w")[i] == 1 - xv[i]);
        /* b[r] = sum_c (1 - x[r, c]) = 8 - 0.25 * (0+1+2+3) * 2, copied back */
        CHECK(rt_exec_param(ex, "b")[1] == 5.0f);
        check_plan(rt_exec_plan(ex));
    }
    rt_exec_free(ex);
    fake_free(p);
    ir_graph_free(g);
}

TEST(exec_write_back_type_mismatch)
{
    IrGraph *g = ir_graph_new("bad");
    IrNode *w = ir_param(g, "w", shape2(1, 4), "ones", 0, true);
    ir_graph_add_output(g, "w", ir_reduce(g, OP_SUM, w, (int[]){1}, 1, false));
    CgProgram *p = fake_program(g);
    IrError err = {0};
    CHECK(rt_exec_new_program(g, p, NULL, &err) == NULL);
    CHECK(strstr(err.msg, "writes back into param 'w'") != NULL);
    fake_free(p);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- with the JIT */

/* A JIT-compiled graph with row reductions and a matmul gives the same
 * bits with 1 and 2 threads. */
TEST(jit_threads_bit_identical)
{
    IrGraph *g = mlp_graph();
    int64_t binding[IR_MAX_SYMS] = {0};
    IrError err = {0};
    RtExec *ex[2] = {NULL, NULL};
    for (int t = 0; t < 2; t++) {
        RtExecOptions opt = {.nthreads = t + 1};
        ex[t] = rt_exec_new(g, binding, &opt, &err);
        if (!ex[t]) {
            ir_error_print(&err, stderr);
            CHECK(ex[t] != NULL);
            break;
        }
        static float x[64 * 32], x2[64 * 512];
        fill(x, 64 * 32, 1);
        fill(x2, 64 * 512, 2);
        rt_exec_init_params(ex[t], 42);
        CHECK(rt_exec_set_input(ex[t], "x", x, sizeof x, &err));
        CHECK(rt_exec_set_input(ex[t], "x2", x2, sizeof x2, &err));
        CHECK(rt_exec_run(ex[t], &err));
    }
    if (ex[0] && ex[1]) {
        int64_t n;
        const float *y = rt_exec_output(ex[0], "y", &n);
        CHECK(!memcmp(y, rt_exec_output(ex[1], "y", NULL), (size_t)n * 4));
        CHECK(fabs(y[7] - mlp_ref(ex[0], 7)) <= 1e-4 * fabs(mlp_ref(ex[0], 7)));
    }
    rt_exec_free(ex[0]);
    rt_exec_free(ex[1]);
    ir_graph_free(g);
}

int main(void)
{
    /* split every parallel kernel, however small, so that the pool runs */
    setenv("GRADC_PAR_MIN_WORK", "0", 1);
    RUN(pool_covers_each_index_once);
    RUN(default_threads);
    RUN(plan_chain_reuses);
    RUN(plan_alias_extends_life);
    RUN(plan_random_graphs_sound);
    RUN(plan_pinned_and_bad_alias);
    RUN(exec_runs_and_aliases);
    RUN(exec_threads_identical);
    RUN(exec_threads_matmul);
    RUN(exec_init_params);
    RUN(exec_init_uniform);
    RUN(exec_input_errors);
    RUN(exec_write_back);
    RUN(exec_write_back_in_place);
    RUN(exec_write_back_type_mismatch);
    RUN(jit_threads_bit_identical);
    return test_summary();
}
