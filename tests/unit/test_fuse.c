/* test_fuse.c — the fuse pass: kernels, refusals, and values kept.
 *
 * The oracle is the reference interpreter.  A fused graph evaluates each
 * kernel's body with the same primitive ops in the same order as the
 * graph before fusion, so every output must agree to the last bit (1e-12
 * relative is allowed): on every model in models/ shrunk with --set style
 * overrides, as a forward graph with a loss and as a train step (autodiff
 * and optimizer, when they are in the build), and on hand-built graphs.
 * Fused graphs must also verify, print and parse back to the same text,
 * and stay as they are when fused again.  The structural tests check the
 * kernels made (softmax and layernorm as one row kernel, matmul epilogues,
 * views read in place, siblings) and the reason codes of --explain for
 * the fusions that must not happen.
 */
#include "frontend/fe.h"
#include "passes/pass.h"
#include "interp_cmp.h"
#include "testlib.h"

#include <dirent.h>

#define REL_TOL 1e-12

/* ---------------------------------------------------------------- helpers */

static bool run(IrGraph *g, const char *pipeline, char **explain)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    size_t len = 0;
    ctx.verify = true;
    ctx.explain = explain != NULL;
    ctx.out = explain ? open_memstream(explain, &len) : NULL;
    bool ok = pass_run_pipeline(g, pipeline, &ctx);
    if (ctx.out)
        fclose(ctx.out);
    if (!ok)
        fprintf(stderr, "pipeline '%s': %s\n", pipeline, err.msg);
    return ok;
}

static int count_op(const IrGraph *g, IrOp op)
{
    int c = 0;
    for (int i = 0; i < g->nnodes; i++)
        c += g->nodes[i]->op == op;
    return c;
}

/* Kernels as codegen runs them: every node but inputs, params and reshapes
 * (views), siblings of one group counted once. */
static int count_kernels(const IrGraph *g)
{
    int c = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i], *next = i + 1 < g->nnodes ? g->nodes[i + 1] : NULL;
        if (n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_RESHAPE)
            continue;
        bool sibling = n->op == OP_FUSED && next && next->op == OP_FUSED &&
                       ir_node_attr(n, ATTR_GROUP) && ir_node_attr(next, ATTR_GROUP) &&
                       ir_node_int(n, ATTR_GROUP, -1) == ir_node_int(next, ATTR_GROUP, -2);
        c += !sibling;
    }
    return c;
}

/* Deterministic values from the input's name: tokens in [0, hi), some
 * targets ignored, a step >= 1, small lr, AdamW second moments >= 0. */
static double value_of(const IrNode *n, uint64_t *s, int64_t k, int64_t hi)
{
    double u = cmp_unif(s);
    if (n->dtype == DT_BOOL)
        return u < 0.5;
    if (n->dtype == DT_I32) {
        if (!strcmp(n->name, "step"))
            return 1 + floor(u * 9);
        if (!strcmp(n->name, "targets") && k % 5 == 0)
            return -100;
        return floor(u * hi);
    }
    if (!strcmp(n->name, "lr"))
        return 1e-3 * u;
    if (!strncmp(n->name, "adam.v.", 7))
        return u * 1e-3;
    return (u - 0.5) * 4.0;
}

static bool set_input(IrInterp *it, const IrNode *n, const int64_t *bind, int64_t hi)
{
    int64_t dim[IR_MAX_RANK];
    uint64_t s = cmp_name_seed(n->name);
    for (int d = 0; d < n->shape.rank; d++)
        dim[d] = ir_dim_eval(n->shape.d[d], bind);
    IrTensor *t = ir_tensor_new(n->dtype, n->shape.rank, dim);
    for (int64_t k = 0; k < t->numel; k++)
        t->data[k] = value_of(n, &s, k, hi);
    IrError err = {0};
    bool ok = ir_interp_set(it, n->name, t, &err);
    if (!ok)
        fprintf(stderr, "set %s: %s\n", n->name, err.msg);
    ir_tensor_free(t);
    return ok;
}

static IrInterp *eval(const IrGraph *g, const int64_t *bind, int64_t hi)
{
    IrError err = {0};
    IrInterp *it = ir_interp_new(g, bind, 42, &err);
    bool ok = it != NULL;
    for (int i = 0; ok && i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT)
            ok = set_input(it, g->nodes[i], bind, hi);
    if (ok && !ir_interp_run(it, &err))
        ok = false;
    if (!ok) {
        fprintf(stderr, "interp: %s\n", err.msg);
        ir_interp_free(it);
    }
    return ok ? it : NULL;
}

/* print(parse(print(g))) == print(g), and fusing again changes nothing. */
static void check_text(const IrGraph *g, const char *what)
{
    char *a = ir_print_str(g);
    IrError err = {0};
    IrGraph *h = ir_parse(a, what, &err);
    CHECK(h != NULL);
    if (!h) {
        fprintf(stderr, "%s: %s: %s\n", what, err.where, err.msg);
        free(a);
        return;
    }
    char *b = ir_print_str(h);
    CHECK_STR(b, a);
    CHECK(run(h, "fuse", NULL));
    char *c = ir_print_str(h);
    CHECK(!strcmp(c, a));
    if (strcmp(c, a))
        fprintf(stderr, "%s: fusing a fused graph again changed it\n", what);
    free(a), free(b), free(c);
    ir_graph_free(h);
}

/* g (already primitive) and a fused copy give the same outputs; returns
 * the fused copy. */
static IrGraph *check_fused(const IrGraph *g, const int64_t *bind, int64_t hi, const char *what)
{
    IrGraph *h = ir_graph_clone(g);
    bool ok = run(h, "fuse", NULL);
    CHECK(ok);
    IrInterp *a = eval(g, bind, hi), *b = ok ? eval(h, bind, hi) : NULL;
    CHECK(a && b);
    for (int i = 0; a && b && i < g->nout; i++)
        CHECK(cmp_diff_output(a, b, g->outs[i].name, what, REL_TOL) == 0);
    ir_interp_free(a);
    ir_interp_free(b);
    check_text(h, what);
    return h;
}

/* ---------------------------------------------------------------- models */

static const FeSet shrink_sets[] = {
    {"vocab_size", "61"}, {"context_length", "16"}, {"emb_dim", "24"},
    {"n_heads", "2"},     {"n_layers", "2"},        {"drop_rate", "0.1"},
};

static FeModel *load_shrunk(const char *path)
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
    fe_model_free(m);
    FeOptions o = {sets, n};
    m = fe_load_file(path, &o, &err);
    if (!m)
        fprintf(stderr, "%s (shrunk): %s\n", path, err.msg);
    return m;
}

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

static void check_graph(IrGraph *g, const int64_t *bind, int64_t hi, const char *what)
{
    int raw = g->nnodes;
    CHECK(run(g, pass_stage("opt")->forward, NULL)); /* the primitive graph, before fuse */
    IrGraph *h = check_fused(g, bind, hi, what);
    printf("  %s: %d nodes, %d primitive (%d kernels), %d fused (%d kernels, %d fused nodes)\n",
           what, raw, g->nnodes, count_kernels(g), h->nnodes, count_kernels(h),
           count_op(h, OP_FUSED));
    CHECK(count_kernels(h) < count_kernels(g));
    ir_graph_free(h);
}

static void check_model(const char *path)
{
    FeModel *m = load_shrunk(path);
    CHECK(m != NULL);
    if (!m)
        return;
    int64_t bind[IR_MAX_SYMS];
    for (int i = 0; i < m->graph->nsym; i++)
        bind[i] = !strcmp(m->graph->sym[i], "B") ? 2 : !strcmp(m->graph->sym[i], "T") ? 7 : 3;
    char what[600];
    IrGraph *g = ir_graph_clone(m->graph);
    add_loss(g);
    snprintf(what, sizeof what, "%s forward", path);
    check_graph(g, bind, 61, what);
    ir_graph_free(g);
    if (pass_lookup("autodiff") && pass_lookup("optimizer")) {
        g = ir_graph_clone(m->graph);
        CHECK(run(g, pass_stage("grad")->train, NULL)); /* the train step, as gradc train's */
        snprintf(what, sizeof what, "%s train step", path);
        check_graph(g, bind, 61, what);
        ir_graph_free(g);
    }
    fe_model_free(m);
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
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "models/%s", names[i]);
        check_model(path);
        free(names[i]);
    }
}

/* ---------------------------------------------------------------- structure */

/* Kernels per transformer block: the difference between gpt2-small with
 * two blocks and with one (small dims: the structure is the same). */
static int block_kernels(const char *pipeline)
{
    int k[2] = {0, 0};
    for (int l = 0; l < 2; l++) {
        FeSet sets[] = {{"n_layers", l ? "2" : "1"}, {"vocab_size", "61"}, {"emb_dim", "24"},
                        {"n_heads", "2"}, {"context_length", "16"}};
        FeOptions o = {sets, 5};
        IrError err = {0};
        FeModel *m = fe_load_file("models/gpt2-small.json", &o, &err);
        if (!m) {
            fprintf(stderr, "gpt2-small: %s\n", err.msg);
            return -1;
        }
        IrGraph *g = ir_graph_clone(m->graph);
        if (run(g, pipeline, NULL))
            k[l] = count_kernels(g);
        ir_graph_free(g);
        fe_model_free(m);
    }
    return k[1] - k[0];
}

/* The bounds of the optimization-passes issue, per block of gpt2-small: at
 * most 8 kernels forward and 29 forward and backward (it asked for at most
 * 30; the attention pass since brought them lower).  The forward and the
 * train step are the registry's kernels stage, as gradc run and train build
 * them (attention first). */
TEST(kernels_per_block)
{
    const PassStage *kernels = pass_stage("kernels");
    int fwd = block_kernels(kernels->forward);
    printf("  gpt2-small per block: forward %d kernels\n", fwd);
    CHECK(fwd > 0 && fwd <= 8);
    char both_pipe[512]; /* the train step without the optimizer */
    snprintf(both_pipe, sizeof both_pipe, "attention,autodiff,%s", kernels->forward);
    int both = block_kernels(both_pipe);
    int step = block_kernels(kernels->train);
    printf("  gpt2-small per block: forward+backward %d kernels, train step %d\n", both, step);
    CHECK(both > fwd && both <= 29);
    CHECK(step > both);
}

static IrGraph *parse(const char *text)
{
    IrError err = {0};
    IrGraph *g = ir_parse(text, "test", &err);
    if (!g)
        fprintf(stderr, "parse: %s %s\n", err.where, err.msg);
    CHECK(g != NULL);
    return g;
}

/* softmax then layernorm is one row kernel (four levels of reductions);
 * the matmul after it reads it from memory, and its result, a graph
 * output, is transposed by a kernel of its own. */
TEST(row_kernels_and_explain)
{
    IrGraph *g = parse(
        "graph g(B) {\n %x = input : f32[B,4,32] @x\n %s = softmax %x {axis=-1} : f32[B,4,32]\n"
        " %g = input : f32[32] @g\n %h = input : f32[32] @h\n"
        " %l = layernorm %s, %g, %h {eps=1e-05} : f32[B,4,32]\n"
        " %w = input : f32[32,32] @w\n %m = matmul %l, %w : f32[B,4,32]\n"
        " %t = transpose %m {perm=[0,2,1]} : f32[B,32,4]\n %u = exp %t : f32[B,32,4]\n"
        " return u=%u, m=%m\n}\n");
    char *ex = NULL;
    if (!g)
        return;
    CHECK(run(g, "decompose,simplify,cse,dce,fuse", &ex));
    CHECK(count_op(g, OP_FUSED) == 1 && count_op(g, OP_MATMUL) == 1);
    CHECK(count_op(g, OP_TRANSPOSE) == 1 && count_op(g, OP_EXP) == 1);
    CHECK(strstr(ex, "kernel %") && strstr(ex, " row: "));
    CHECK(strstr(ex, "SHAPE_BREAK") && strstr(ex, "MATMUL_OPERAND"));
    int64_t bind[1] = {3};
    IrGraph *raw = parse(
        "graph g(B) {\n %x = input : f32[B,4,32] @x\n %s = softmax %x {axis=-1} : f32[B,4,32]\n"
        " %g = input : f32[32] @g\n %h = input : f32[32] @h\n"
        " %l = layernorm %s, %g, %h {eps=1e-05} : f32[B,4,32]\n"
        " %w = input : f32[32,32] @w\n %m = matmul %l, %w : f32[B,4,32]\n"
        " %t = transpose %m {perm=[0,2,1]} : f32[B,32,4]\n %u = exp %t : f32[B,32,4]\n"
        " return u=%u, m=%m\n}\n");
    if (raw) {
        CHECK(run(raw, "decompose,simplify,cse,dce", NULL));
        ir_graph_free(check_fused(raw, bind, 4, "row kernels"));
    }
    free(ex);
    ir_graph_free(raw);
    ir_graph_free(g);
}

/* A graph already fused is left alone; fused nodes are never absorbed. */
TEST(fused_input_is_kept)
{
    IrGraph *g = parse(
        "graph g() {\n %x = input : f32[4] @x\n %y = fused %x : f32[4] {\n"
        "  %0 = input : f32[4] @a\n  %1 = exp %0 : f32[4]\n  return out=%1\n }\n"
        " %z = neg %y : f32[4]\n %w = neg %z : f32[4]\n return w=%w\n}\n");
    char *ex = NULL;
    if (!g)
        return;
    CHECK(run(g, "fuse", &ex));
    CHECK(count_op(g, OP_FUSED) == 2);
    CHECK(strstr(ex, "OPAQUE"));
    free(ex);
    ir_graph_free(g);
}

int main(void)
{
    RUN(models_keep_their_values);
    RUN(kernels_per_block);
    RUN(row_kernels_and_explain);
    RUN(fused_input_is_kept);
    return test_summary();
}
