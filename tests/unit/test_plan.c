/* test_plan.c — the schedule and memplan passes, and the runtime on their plan.
 *
 * Every plan is checked against liveness computed here, independently of
 * passes/memplan.c: no two arena buffers that are live at the same index
 * share a byte (every pair is checked), except a kernel written in place
 * over an operand that dies right there, at the same offset; peak <= naive.
 * Every schedule is checked to be a topological order that keeps sibling
 * fused nodes adjacent, and the interpreter must give the same outputs, to
 * the bit, before and after it.  On hand-built graphs, random graphs and
 * gpt-mini (forward and train step); gpt2-small's train step at B=2, T=256
 * must plan within 40% of its naive bytes (the figure).
 */
#include "frontend/fe.h"
#include "ir/rng.h"
#include "passes/pass.h"
#include "runtime/rt_exec.h"
#include "testlib.h"

/* ---------------------------------------------------------------- helpers */

static bool run(IrGraph *g, const char *pipeline, const int64_t *binding)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.binding = binding;
    ctx.verify = true;
    bool ok = pass_run_pipeline(g, pipeline, &ctx);
    if (!ok)
        fprintf(stderr, "%s: %s\n", pipeline, err.msg);
    return ok;
}

static bool plan(const IrGraph *g, const int64_t *binding, bool use_offsets, PassMemPlan *p)
{
    IrError err = {0};
    PassMemOpts o = {.use_offsets = use_offsets};
    bool ok = pass_memplan_build(g, binding, &o, p, &err);
    if (!ok)
        fprintf(stderr, "memplan: %s\n", err.msg);
    return ok;
}

static IrShape shape1(int64_t a)
{
    return ir_shape_ints(1, (int64_t[]){a});
}

static IrShape shape2(int64_t a, int64_t b)
{
    return ir_shape_ints(2, (int64_t[]){a, b});
}

/* ---------------------------------------------------------------- independent liveness */

static bool is_view(const IrNode *n)
{
    return n->op == OP_RESHAPE;
}

static bool is_source(const IrNode *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

static int root_of(const IrNode *n)
{
    while (is_view(n))
        n = n->in[0];
    return n->index;
}

/* Where node i's kernel runs: the last node of its sibling run. */
static int runs_at(const IrGraph *g, int i)
{
    int first, end;
    pass_sibling_run(g, i, &first, &end);
    return is_view(g->nodes[i]) || is_source(g->nodes[i]) ? i : end;
}

/* last[r]: the last index reading root r through any view; n for outputs. */
static void lifetimes(const IrGraph *g, int *last)
{
    for (int i = 0; i < g->nnodes; i++)
        last[i] = runs_at(g, i);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) {
            int r = root_of(g->nodes[i]->in[k]);
            last[r] = last[r] > runs_at(g, i) ? last[r] : runs_at(g, i);
        }
    for (int o = 0; o < g->nout; o++)
        last[root_of(g->outs[o].node)] = g->nnodes;
}

/* x took over y's buffer in place, legitimately: y is x's `inplace`
 * operand's buffer, dies where x is written, has x's size, same offset. */
static bool in_place_pair(const IrGraph *g, const PassMemPlan *p, const int *last, int x, int y)
{
    const IrNode *n = g->nodes[x];
    int k = (int)ir_node_int(n, ATTR_INPLACE, p->inplace[x]);
    return k >= 0 && k < n->nin && root_of(n->in[k]) == y && last[y] == runs_at(g, x) &&
           p->offset[x] == p->offset[y] && p->size[x] == p->size[y] &&
           g->nodes[y]->dtype == n->dtype;
}

static bool clash(const IrGraph *g, const PassMemPlan *p, const int *last, int a, int b)
{
    bool meet = runs_at(g, a) <= last[b] && runs_at(g, b) <= last[a];
    bool share = p->offset[a] < p->offset[b] + p->size[b] &&
                 p->offset[b] < p->offset[a] + p->size[a];
    return meet && share && !in_place_pair(g, p, last, a, b) && !in_place_pair(g, p, last, b, a);
}

/* A value written into a source's buffer: an output of that source's name,
 * and nothing after its kernel reads the source. */
static bool slab_ok(const IrGraph *g, const int *last, int i, int s)
{
    bool named = false;
    for (int o = 0; o < g->nout; o++)
        named |= root_of(g->outs[o].node) == i && !strcmp(g->outs[o].name, g->nodes[s]->name);
    return named && is_source(g->nodes[s]) && last[s] <= runs_at(g, i);
}

/* Returns the number of problems found (and prints the first few). */
static int check_sound(const IrGraph *g, const PassMemPlan *p, const char *what)
{
    int *last = calloc((size_t)g->nnodes + 1, sizeof *last), bad = 0;
    lifetimes(g, last);
    for (int a = 0; a < g->nnodes; a++) {
        if (p->slab[a] >= 0 && !slab_ok(g, last, a, p->slab[a]) && bad++ < 3)
            fprintf(stderr, "%s: %%%d written into %%%d unsafely\n", what, a, p->slab[a]);
        if (p->offset[a] < 0)
            continue;
        bad += p->offset[a] % PASS_MEM_ALIGN != 0 || p->offset[a] + p->size[a] > p->peak_bytes;
        for (int b = a + 1; b < g->nnodes; b++)
            if (p->offset[b] >= 0 && clash(g, p, last, a, b) && bad++ < 3)
                fprintf(stderr, "%s: buffers %%%d and %%%d overlap\n", what, a, b);
    }
    bad += p->peak_bytes > p->naive_bytes || p->live_bytes > p->peak_bytes;
    free(last);
    return bad;
}

/* ---------------------------------------------------------------- orders */

/* Every operand before its user. */
static int check_order(const IrGraph *g, const char *what)
{
    int bad = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        bad += n->index != i;
        for (int k = 0; k < n->nin; k++)
            bad += n->in[k]->index >= i;
    }
    if (bad)
        fprintf(stderr, "%s: not a valid order (%d problems)\n", what, bad);
    return bad;
}

static int siblings_total(const IrGraph *g, const IrNode *n)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *m = g->nodes[i];
        bool same = m->op == OP_FUSED && m->nin == n->nin && ir_node_attr(m, ATTR_GROUP) &&
                    ir_node_int(m, ATTR_GROUP, 0) == ir_node_int(n, ATTR_GROUP, 0);
        for (int j = 0; same && j < n->nin; j++)
            same = m->in[j] == n->in[j];
        k += same;
    }
    return k;
}

/* Every group of siblings is one adjacent run. */
static int check_siblings(const IrGraph *g)
{
    int bad = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_FUSED || !ir_node_attr(n, ATTR_GROUP))
            continue;
        int first, end;
        pass_sibling_run(g, i, &first, &end);
        bad += end - first + 1 != siblings_total(g, n);
    }
    return bad;
}

/* ---------------------------------------------------------------- the interpreter */

/* u uniform in [0, 1): tokens below vocab, step 3, a small lr, AdamW's
 * second moments >= 0, anything else around 0. */
static double input_value(const IrNode *n, double u, int64_t vocab)
{
    if (n->dtype == DT_I32)
        return !strcmp(n->name, "step") ? 3 : floor(u * (double)vocab);
    if (!strcmp(n->name, "lr"))
        return 1e-3;
    return !strncmp(n->name, "adam.v.", 7) ? u : u - 0.5;
}

static IrInterp *eval(const IrGraph *g, const int64_t *binding, int64_t vocab)
{
    IrError err = {0};
    IrInterp *it = ir_interp_new(g, binding, 7, &err);
    for (int i = 0; it && i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_INPUT)
            continue;
        int64_t dim[IR_MAX_RANK];
        for (int d = 0; d < n->shape.rank; d++)
            dim[d] = ir_dim_eval(n->shape.d[d], binding);
        IrTensor *t = ir_tensor_new(n->dtype, n->shape.rank, dim);
        IrRng r;
        ir_rng_init(&r, ir_rng_stream(3, n->name));
        for (int64_t k = 0; k < t->numel; k++)
            t->data[k] = input_value(n, (double)(ir_rng_next(&r) >> 11) * 0x1p-53, vocab);
        CHECK(ir_interp_set(it, n->name, t, &err));
        ir_tensor_free(t);
    }
    if (it && !ir_interp_run(it, &err)) {
        fprintf(stderr, "interp: %s\n", err.msg);
        ir_interp_free(it);
        return NULL;
    }
    return it;
}

/* Outputs of g and h (the same graph in another order) agree to the bit. */
static int same_values(const IrGraph *g, const IrGraph *h, const int64_t *binding, int64_t vocab)
{
    IrInterp *a = eval(g, binding, vocab), *b = eval(h, binding, vocab);
    int bad = !a || !b;
    for (int o = 0; !bad && o < g->nout; o++) {
        const IrTensor *x = ir_interp_output(a, g->outs[o].name);
        const IrTensor *y = ir_interp_output(b, g->outs[o].name);
        bad += !x || !y || x->numel != y->numel ||
               memcmp(x->data, y->data, sizeof *x->data * (size_t)x->numel) != 0;
    }
    ir_interp_free(a);
    ir_interp_free(b);
    return bad;
}

/* ---------------------------------------------------------------- hand-built graphs */

/* x -> exp -> neg -> exp ...: each kernel takes over its operand's buffer. */
TEST(chain_in_place)
{
    IrGraph *g = ir_graph_new("chain");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(4, 100));
    for (int i = 0; i < 10; i++)
        x = ir_unary(g, i % 2 ? OP_NEG : OP_EXP, x);
    ir_graph_add_output(g, "y", x);
    PassMemPlan p;
    CHECK(plan(g, NULL, false, &p));
    CHECK(check_sound(g, &p, "chain") == 0);
    CHECK(p.peak_bytes == 1600 && p.naive_bytes == 16000 && p.ninplace == 9);
    CHECK(p.inplace[1] == -1 && p.inplace[2] == 0 && p.nkernels == 10);
    pass_memplan_free(&p);
    ir_graph_free(g);
}

/* Taken over only when the operand dies here, element for element. */
TEST(in_place_refused)
{
    IrGraph *g = ir_graph_new("refuse");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(8, 16));
    IrNode *a = ir_unary(g, OP_EXP, x);                         /* source operand */
    IrNode *s = ir_reduce(g, OP_SUM, a, (int[]){1}, 1, true);   /* reduction */
    IrNode *b = ir_binary(g, OP_MUL, a, s);                     /* a lives on (c) */
    IrNode *c = ir_binary(g, OP_ADD, b, a);                     /* takes b or a over */
    IrNode *d = ir_binary(g, OP_SUB, s, c);                     /* s is broadcast */
    ir_graph_add_output(g, "d", d);
    PassMemPlan p;
    CHECK(plan(g, NULL, false, &p));
    CHECK(check_sound(g, &p, "refuse") == 0);
    CHECK(p.inplace[a->index] < 0 && p.inplace[s->index] < 0 && p.inplace[b->index] < 0);
    CHECK(p.inplace[c->index] == 0 && p.offset[c->index] == p.offset[b->index]);
    CHECK(p.inplace[d->index] == 1); /* over c, not over the broadcast s */
    pass_memplan_free(&p);
    ir_graph_free(g);
}

/* A view extends its base's life; the base is not freed under it. */
TEST(views_extend_life)
{
    IrGraph *g = ir_graph_new("views");
    IrNode *x = ir_input(g, "x", DT_F32, shape2(8, 8));
    IrNode *a = ir_unary(g, OP_EXP, x);
    IrShape s64 = shape1(64);
    IrError err = {0};
    IrNode *r = ir_node_new(g, OP_RESHAPE, &a, 1, NULL, 0, NULL, &s64, &err);
    IrNode *b = ir_unary(g, OP_NEG, x);
    IrNode *c = ir_unary(g, OP_EXP, b);
    IrNode *d = ir_unary(g, OP_NEG, r);
    ir_graph_add_output(g, "c", c);
    ir_graph_add_output(g, "d", d);
    PassMemPlan p;
    CHECK(plan(g, NULL, false, &p));
    CHECK(check_sound(g, &p, "views") == 0);
    CHECK(p.root[r->index] == a->index && p.offset[r->index] == -1);
    CHECK(p.last[a->index] == d->index && p.offset[c->index] != p.offset[a->index]);
    CHECK(p.inplace[d->index] == 0); /* d takes a over through the view */
    pass_memplan_free(&p);
    ir_graph_free(g);
}

/* An update output named like its param is written into the param's
 * buffer when nothing reads the old value after it; schedule keeps it so. */
TEST(write_back_in_place)
{
    IrGraph *g = ir_graph_new("step");
    IrNode *w = ir_param(g, "w", shape2(4, 8), "ones", 0, true);
    IrNode *x = ir_input(g, "x", DT_F32, shape2(4, 8));
    IrNode *y = ir_binary(g, OP_MUL, w, x);
    IrNode *w2 = ir_binary(g, OP_SUB, w, y);
    IrNode *l = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, w, x), (int[]){0, 1}, 2, false);
    ir_graph_add_output(g, "w", w2);
    ir_graph_add_output(g, "loss", l);
    PassMemPlan p;
    CHECK(plan(g, NULL, false, &p));
    CHECK(p.slab[w2->index] == -1); /* the loss reads w after the update */
    pass_memplan_free(&p);
    CHECK(run(g, "schedule", NULL));
    CHECK(check_order(g, "step") == 0);
    CHECK(plan(g, NULL, false, &p));
    CHECK(p.slab[w2->index] == w->index && p.inplace[w2->index] == 0);
    CHECK(check_sound(g, &p, "step") == 0);
    pass_memplan_free(&p);
    ir_graph_free(g);
}

/* scatter_add takes over its zero base (gather's gradient). */
TEST(scatter_over_base)
{
    IrGraph *g = ir_graph_new("scatter");
    IrNode *idx = ir_input(g, "idx", DT_I32, shape1(6));
    IrNode *src = ir_input(g, "src", DT_F32, shape2(6, 4));
    IrNode *z = ir_const(g, 0, DT_F32, shape2(10, 4));
    IrNode *in[3] = {z, idx, src};
    IrError err = {0};
    IrNode *s = ir_node_new(g, OP_SCATTER_ADD, in, 3, NULL, 0, NULL, NULL, &err);
    CHECK(s != NULL);
    ir_graph_add_output(g, "s", s);
    PassMemPlan p;
    CHECK(plan(g, NULL, false, &p));
    CHECK(p.inplace[s->index] == 0 && p.peak_bytes == 192 && p.naive_bytes == 384);
    pass_memplan_free(&p);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- random graphs */

static IrNode *pick(IrGraph *g, IrRng *r, const IrShape *want)
{
    for (int tries = 0; tries < 64; tries++) {
        IrNode *n = g->nodes[ir_rng_next(r) % (uint64_t)g->nnodes];
        if (n->dtype == DT_F32 && (!want || ir_shape_eq(&n->shape, want)))
            return n;
    }
    return NULL;
}

static void random_node(IrGraph *g, IrRng *r)
{
    IrNode *a = pick(g, r, NULL), *b;
    IrError err = {0};
    if (!a)
        return;
    switch (ir_rng_next(r) % 7) {
    case 0: ir_unary(g, OP_EXP, a); break;
    case 1: ir_unary(g, OP_TANH, a); break;
    case 2:
        b = pick(g, r, &a->shape);
        ir_binary(g, OP_ADD, a, b ? b : a);
        break;
    case 3:
        if (a->shape.rank == 2)
            ir_binary(g, OP_MUL, a, ir_reduce(g, OP_SUM, a, (int[]){1}, 1, true));
        break;
    case 4:
        if (a->shape.rank == 2)
            ir_reduce(g, OP_MAX, a, (int[]){1}, 1, false);
        break;
    case 5: {
        IrShape s = shape1(ir_node_numel_const(a));
        ir_node_new(g, OP_RESHAPE, &a, 1, NULL, 0, NULL, &s, &err);
        break;
    }
    default:
        if (a->shape.rank == 2)
            ir_op1(g, OP_TRANSPOSE, a, &(IrAttr){.key = ATTR_PERM, .n = 2, .i = {1, 0}}, 1);
    }
}

static IrGraph *random_graph(IrRng *r, int nodes)
{
    IrGraph *g = ir_graph_new("random");
    ir_input(g, "x1", DT_F32, shape2(4, 16));
    ir_input(g, "x2", DT_F32, shape2(16, 64));
    ir_param(g, "w", shape2(4, 16), "normal", 0.5, true);
    while (g->nnodes < nodes)
        random_node(g, r);
    int nout = 1 + (int)(ir_rng_next(r) % 4);
    for (int o = 0; o < nout; o++) {
        char name[16];
        snprintf(name, sizeof name, "y%d", o);
        ir_graph_add_output(g, name, pick(g, r, NULL));
    }
    IrNode *w = g->nodes[2], *u = pick(g, r, &w->shape);
    if (u && ir_rng_next(r) % 2)
        ir_graph_add_output(g, "w", ir_binary(g, OP_SUB, w, u)); /* a write-back */
    return g;
}

static int64_t peak_of(const IrGraph *g, int *bad, const char *what)
{
    PassMemPlan p;
    int64_t peak = -1;
    if (plan(g, NULL, false, &p)) {
        *bad += check_sound(g, &p, what);
        peak = p.peak_bytes;
    }
    pass_memplan_free(&p);
    return peak;
}

TEST(random_graphs)
{
    IrRng r;
    ir_rng_init(&r, 11);
    int bad = 0, moved = 0;
    for (int k = 0; k < 200; k++) {
        IrGraph *g = random_graph(&r, 8 + k % 50), *h = ir_graph_clone(g);
        int64_t before = peak_of(g, &bad, "random");
        CHECK(run(h, "schedule", NULL));
        bad += check_order(h, "random scheduled");
        int64_t after = peak_of(h, &bad, "random scheduled");
        bad += after > before;
        moved += after < before;
        bad += same_values(g, h, NULL, 1);
        ir_graph_free(g);
        ir_graph_free(h);
    }
    CHECK(bad == 0);
    CHECK(moved > 0); /* the schedule helps on some */
}

/* ---------------------------------------------------------------- gpt-mini */

static FeModel *load(const char *path, const FeSet *sets, int nsets)
{
    IrError err = {0};
    FeOptions o = {sets, nsets};
    FeModel *m = fe_load_file(path, &o, &err);
    if (!m)
        fprintf(stderr, "%s: %s\n", path, err.msg);
    return m;
}

/* g through the kernels stage's pipeline (passes/registry.c), then schedule
 * and memplan: valid, sound, the same values. */
static void check_model_graph(IrGraph *g, const int64_t *bind, int64_t vocab, const char *what)
{
    CHECK(run(g, pass_stage("kernels")->forward, bind));
    IrGraph *h = ir_graph_clone(g);
    CHECK(run(h, "schedule,memplan", bind));
    CHECK(check_order(h, what) == 0 && check_siblings(h) == 0);
    PassMemPlan p;
    CHECK(plan(h, bind, true, &p));
    CHECK(p.from_graph && check_sound(h, &p, what) == 0);
    printf("  %s: %d kernels, peak %lld, naive %lld, written back in place %lld\n", what,
           p.nkernels, (long long)p.peak_bytes, (long long)p.naive_bytes,
           (long long)p.slab_bytes);
    if (vocab)
        CHECK(same_values(g, h, bind, vocab) == 0);
    pass_memplan_free(&p);
    ir_graph_free(h);
}

TEST(gpt_mini_small)
{
    static const FeSet sets[] = {{"vocab_size", "61"}, {"context_length", "16"},
                                 {"emb_dim", "24"},    {"n_heads", "2"},
                                 {"n_layers", "2"}};
    FeModel *m = load("models/gpt-mini.json", sets, 5);
    CHECK(m != NULL);
    if (!m)
        return;
    int64_t bind[IR_MAX_SYMS] = {2, 7};
    IrGraph *g = ir_graph_clone(m->graph);
    check_model_graph(g, bind, 61, "gpt-mini (small) forward");
    ir_graph_free(g);
    g = ir_graph_clone(m->graph);
    CHECK(run(g, pass_stage("grad")->train, bind)); /* the train step, as gradc train's */
    check_model_graph(g, bind, 61, "gpt-mini (small) train step");
    ir_graph_free(g);
    fe_model_free(m);
}

/* Full size, plans only: every update written in place after the schedule. */
TEST(gpt_mini_train_step)
{
    FeModel *m = load("models/gpt-mini.json", NULL, 0);
    CHECK(m != NULL);
    if (!m)
        return;
    int64_t bind[IR_MAX_SYMS] = {2, 64};
    IrGraph *g = ir_graph_clone(m->graph);
    CHECK(run(g, pass_stage("grad")->train, bind)); /* the train step, as gradc train's */
    check_model_graph(g, bind, 0, "gpt-mini train step");
    CHECK(run(g, "schedule", bind));
    PassMemPlan p;
    CHECK(plan(g, bind, false, &p));
    int64_t params = 0;
    for (int i = 0; i < g->nnodes; i++)
        params += g->nodes[i]->op == OP_PARAM ? pass_mem_bytes(g->nodes[i], bind) : 0;
    CHECK(p.slab_bytes == 3 * params); /* new params, m and v */
    pass_memplan_free(&p);
    ir_graph_free(g);
    fe_model_free(m);
}

/* The figure: peak-bytes at most 40% of naive-bytes. */
TEST(gpt2_small_figure)
{
    FeModel *m = load("models/gpt2-small.json", NULL, 0);
    CHECK(m != NULL);
    if (!m)
        return;
    int64_t bind[IR_MAX_SYMS] = {2, 256};
    IrGraph *g = m->graph;
    CHECK(run(g, pass_stage("llvm")->train, bind)); /* the train step gradc train compiles */
    PassMemPlan p;
    CHECK(plan(g, bind, false, &p));
    printf("  gpt2-small train step B=2 T=256: %d kernels, peak %lld of naive %lld (%.1f%%)\n",
           p.nkernels, (long long)p.peak_bytes, (long long)p.naive_bytes,
           100.0 * (double)p.peak_bytes / (double)p.naive_bytes);
    CHECK(p.peak_bytes * 10 <= p.naive_bytes * 4);
    CHECK(check_sound(g, &p, "gpt2-small") == 0);
    pass_memplan_free(&p);
    fe_model_free(m);
}

/* ---------------------------------------------------------------- offsets in the IR */

static IrGraph *mlp(void)
{
    IrGraph *g = ir_graph_new("mlp");
    int B = ir_graph_sym(g, "B");
    IrShape s = ir_shape_of(2, (IrDim[]){ir_dim_sym(B), ir_dim_const(32)});
    IrNode *x = ir_input(g, "x", DT_F32, s);
    IrNode *w = ir_param(g, "w", shape2(32, 32), "normal", 0.2, true);
    IrNode *h = ir_unary(g, OP_TANH, ir_op2(g, OP_MATMUL, x, w, NULL, 0));
    IrNode *e = ir_unary(g, OP_EXP, ir_binary(g, OP_MUL, h, h));
    IrNode *y = ir_binary(g, OP_ADD, ir_op2(g, OP_MATMUL, e, w, NULL, 0), h);
    ir_graph_add_output(g, "y", ir_reduce(g, OP_SUM, y, (int[]){1}, 1, false));
    return g;
}

/* The attributes print and parse back; a plan at B=4 is kept at B=4 and
 * B=2 (valid there), refused at B=8 (too small), where a fresh plan is made. */
TEST(offsets_round_trip)
{
    IrGraph *g = mlp();
    int64_t b4[IR_MAX_SYMS] = {4}, b8[IR_MAX_SYMS] = {8}, b2[IR_MAX_SYMS] = {2};
    CHECK(run(g, "schedule,memplan", b4));
    char *text = ir_print_str(g);
    CHECK(strstr(text, "offset=") != NULL && strstr(text, "inplace=") != NULL);
    IrError err = {0};
    IrGraph *h = ir_parse(text, "mlp", &err);
    CHECK(h != NULL);
    char *again = ir_print_str(h);
    CHECK_STR(again, text);
    CHECK(run(h, "memplan", b4));
    char *twice = ir_print_str(h);
    CHECK_STR(twice, text); /* memplan replaces its attributes, same plan */
    PassMemPlan p, q;
    CHECK(plan(h, b4, true, &p) && p.from_graph && check_sound(h, &p, "b4") == 0);
    CHECK(plan(h, b2, true, &q) && q.from_graph && check_sound(h, &q, "b2") == 0);
    pass_memplan_free(&q);
    CHECK(plan(h, b8, true, &q) && !q.from_graph && check_sound(h, &q, "b8") == 0);
    CHECK(q.peak_bytes == 2 * p.peak_bytes);
    pass_memplan_free(&p);
    pass_memplan_free(&q);
    free(text), free(again), free(twice);
    ir_graph_free(h);
    ir_graph_free(g);
}

/* The executor lays its arena out with the graph's offsets and computes
 * what the interpreter does. */
TEST(runtime_uses_the_plan)
{
    IrGraph *g = mlp();
    int64_t b4[IR_MAX_SYMS] = {4};
    CHECK(run(g, "schedule,memplan", b4));
    IrError err = {0};
    RtExecOptions o = {.nthreads = 1, .no_cache = true};
    RtExec *ex = rt_exec_new(g, b4, &o, &err);
    CHECK(ex != NULL);
    if (!ex) {
        fprintf(stderr, "rt_exec_new: %s\n", err.msg);
        ir_graph_free(g);
        return;
    }
    const RtMemPlan *p = rt_exec_plan(ex);
    CHECK(p->from_graph && check_sound(g, p, "runtime") == 0);
    for (int i = 0; i < g->nnodes; i++)
        CHECK(p->offset[i] == ir_node_int(g->nodes[i], ATTR_OFFSET, -1));
    float xv[128];
    for (int k = 0; k < 128; k++)
        xv[k] = 0.01f * (float)(k % 17) - 0.08f;
    rt_exec_init_params(ex, 7);
    CHECK(rt_exec_set_input(ex, "x", xv, sizeof xv, &err) && rt_exec_run(ex, &err));
    IrInterp *it = ir_interp_new(g, b4, 7, &err);
    IrTensor *t = ir_tensor_new(DT_F32, 2, (int64_t[]){4, 32});
    for (int k = 0; k < 128; k++)
        t->data[k] = xv[k];
    CHECK(it && ir_interp_set(it, "x", t, &err) && ir_interp_run(it, &err));
    const float *y = rt_exec_output(ex, "y", NULL);
    const IrTensor *ref = it ? ir_interp_output(it, "y") : NULL;
    for (int k = 0; ref && k < 4; k++)
        CHECK_NEAR(y[k], ref->data[k], 1e-4 * fmax(1, fabs(ref->data[k])));
    ir_tensor_free(t);
    ir_interp_free(it);
    rt_exec_free(ex);
    ir_graph_free(g);
}

int main(void)
{
    RUN(chain_in_place);
    RUN(in_place_refused);
    RUN(views_extend_life);
    RUN(write_back_in_place);
    RUN(scatter_over_base);
    RUN(random_graphs);
    RUN(gpt_mini_small);
    RUN(gpt_mini_train_step);
    RUN(gpt2_small_figure);
    RUN(offsets_round_trip);
    RUN(runtime_uses_the_plan);
    return test_summary();
}
