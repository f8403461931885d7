/* test_passes.c — the pass manager, dce and cse on graphs built in C.
 *
 * Each test builds a small graph with the builder API, runs passes and
 * checks node counts and where the outputs point.  The pass-manager tests
 * cover pipeline-string errors, --print-before/after dumps, and a
 * deliberately broken pass (run through a local PassInfo) that the
 * verifier must catch by name.
 */
#include "passes/pass.h"
#include "testlib.h"

static IrShape vec(int64_t n)
{
    return ir_shape_ints(1, (int64_t[]){n});
}

static IrShape mat(int64_t m, int64_t n)
{
    return ir_shape_ints(2, (int64_t[]){m, n});
}

/* Runs `pipeline` with the verifier on and no printing; false on error. */
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

static IrNode *output(const IrGraph *g, int i)
{
    return g->outs[i].node;
}

/* Adds n as output "o<k>" (output names stay unique). */
static void add_out(IrGraph *g, IrNode *n)
{
    char name[16];
    snprintf(name, sizeof name, "o%d", g->nout);
    ir_graph_add_output(g, name, n);
}

/* ---------------------------------------------------------------- ctx, lookup */

TEST(ctx_defaults)
{
    IrError err = {0};
    PassCtx c = pass_ctx_default(&err);
    CHECK(c.err == &err && c.out == stdout && c.verify);
    CHECK(!c.print_after && !c.print_before && !c.explain && !c.internal);
    CHECK(c.train.ignore_index == -100 && c.train.decay_all);
    CHECK_STR(c.train.logits, "logits");
    CHECK_NEAR(c.train.beta1, 0.9, 0);
    CHECK_NEAR(c.train.beta2, 0.999, 0);
    CHECK_NEAR(c.train.eps, 1e-8, 0);
    CHECK_NEAR(c.train.weight_decay, 0.1, 0);
    CHECK_NEAR(c.train.clip_norm, 1.0, 0);
}

TEST(lookup)
{
    CHECK(pass_lookup("dce") && pass_lookup("dce")->fn == pass_dce);
    CHECK(pass_lookup("cse") && pass_lookup("cse")->fn == pass_cse);
    CHECK(!pass_lookup("dcee") && !pass_lookup(""));
    CHECK_STR(pass_nearest("dcee"), "dce");
    CHECK_STR(pass_nearest("csee"), "cse");
    for (int i = 0; i < pass_count; i++)
        CHECK(pass_registry[i].desc && pass_registry[i].desc[0]);
    IrGraph *g = ir_graph_new("empty");
    CHECK(run(g, pass_stage("llvm")->forward));
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- stages */

static bool starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* The stages of issue 14, in pipeline order, each with valid pipelines. */
TEST(stage_table)
{
    static const char *const names[] = {"graph", "grad", "opt", "kernels", "sched", "llvm", "asm"};
    CHECK(pass_stage_count == (int)(sizeof names / sizeof names[0]));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    for (int i = 0; i < pass_stage_count && i < (int)(sizeof names / sizeof names[0]); i++) {
        const PassStage *st = &pass_stages[i];
        CHECK_STR(st->name, names[i]);
        CHECK(pass_stage_lookup(names[i]) == st && pass_stage(names[i]) == st);
        CHECK(st->desc && st->desc[0]);
        CHECK(pass_check_pipeline(st->forward, &ctx) && pass_check_pipeline(st->train, &ctx));
        CHECK(pass_stage_pipeline(st, false) == st->forward);
        CHECK(pass_stage_pipeline(st, true) == st->train);
        CHECK(strstr(pass_stage_names(), names[i]) != NULL);
    }
    CHECK(!pass_stage_lookup("") && !pass_stage_lookup("kernel"));
}

/* Each stage is a later point of one pipeline, and a train step runs the
 * grad stage's passes (attention before autodiff) before the forward ones. */
TEST(stage_pipelines)
{
    const PassStage *graph = pass_stage("graph"), *grad = pass_stage("grad");
    const PassStage *opt = pass_stage("opt"), *kernels = pass_stage("kernels");
    const PassStage *sched = pass_stage("sched"), *llvm = pass_stage("llvm");
    CHECK_STR(graph->forward, "");
    CHECK_STR(graph->train, "");
    CHECK_STR(grad->forward, grad->train);
    const char *att = strstr(grad->train, "attention"), *ad = strstr(grad->train, "autodiff");
    CHECK(att && ad && att < ad && strstr(grad->train, "optimizer"));
    CHECK(!strstr(opt->forward, "fuse") && strstr(kernels->forward, "fuse"));
    CHECK(starts_with(kernels->forward, opt->forward));
    CHECK(starts_with(llvm->forward, kernels->forward) && strstr(llvm->forward, "schedule"));
    CHECK(starts_with(sched->forward, llvm->forward) && strstr(sched->forward, "memplan"));
    CHECK(!strstr(llvm->forward, "memplan"));
    CHECK_STR(pass_stage("asm")->forward, llvm->forward);
    CHECK(llvm->out == PASS_OUT_LLVM && pass_stage("asm")->out == PASS_OUT_ASM);
    CHECK(kernels->out == PASS_OUT_IR && !kernels->binding && sched->binding);
    for (int i = 2; i < pass_stage_count; i++) {
        const PassStage *st = &pass_stages[i];
        char want[512];
        snprintf(want, sizeof want, "%s,%s", grad->train, st->forward);
        CHECK_STR(st->train, want);
    }
    /* test_lower's fused train step (kernels, train) is the start of the
     * pipeline that gradc train runs (pass_run_compile: llvm, train) */
    CHECK(starts_with(llvm->train, kernels->train) && starts_with(kernels->train, grad->train));
}

/* A typo lists the stages and suggests the nearest. */
TEST(stage_unknown)
{
    IrError err = {0};
    CHECK(pass_stage_find("kernel", &err) == NULL);
    CHECK(strstr(err.msg, "unknown stage 'kernel'") != NULL);
    for (int i = 0; i < pass_stage_count; i++)
        CHECK(strstr(err.msg, pass_stages[i].name) != NULL);
    CHECK(strstr(err.hint, "'kernels'") != NULL);
    IrError err2 = {0};
    CHECK(pass_stage_find("sced", &err2) == NULL && strstr(err2.hint, "'sched'"));
    IrError ok = {0};
    CHECK(pass_stage_find("opt", &ok) == pass_stage("opt") && !ok.set);
}

/* pass_run_compile runs the llvm stage, or --passes in place of its forward
 * part, and checks --passes before it runs anything. */
TEST(run_compile)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    IrGraph *g = ir_parse("graph g() {\n %x = input : f32[4] @x\n %e = exp %x : f32[4]\n"
                          " %a = neg %e : f32[4]\n %b = neg %e : f32[4]\n return a=%a, b=%b\n}\n",
                          "t", &err);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK(!pass_run_compile(g, "cse,dcee", true, &ctx) && strstr(err.msg, "dcee"));
    CHECK(g->nnodes == 4); /* nothing ran: no train step half-built */
    IrError err2 = {0};
    PassCtx ctx2 = pass_ctx_default(&err2);
    CHECK(pass_run_compile(g, "cse", false, &ctx2) && g->nnodes == 3);
    CHECK(pass_run_compile(g, NULL, false, &ctx2));
    int fused = 0;
    for (int i = 0; i < g->nnodes; i++)
        fused += g->nodes[i]->op == OP_FUSED;
    CHECK(fused == 1);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- dce */

/* x, w (unused), a = neg x, dead chain exp a -> log, output y = a */
TEST(dce_dead_chain)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *w = ir_param(g, "w", vec(4), "zeros", 0, true);
    IrNode *a = ir_unary(g, OP_NEG, x);
    ir_unary(g, OP_LOG, ir_unary(g, OP_EXP, a));
    ir_graph_add_output(g, "y", a);
    CHECK(run(g, "dce"));
    CHECK(g->nnodes == 3);
    CHECK(g->nodes[0] == x && g->nodes[1] == w && g->nodes[2] == a);
    CHECK(a->index == 2 && output(g, 0) == a);
    ir_graph_free(g);
}

TEST(dce_keeps_unused_interface)
{
    IrGraph *g = ir_graph_new("g");
    ir_input(g, "x", DT_F32, vec(4));
    ir_input(g, "unused_in", DT_I32, vec(2));
    ir_param(g, "unused_w", vec(4), "normal", 0.02, true);
    IrNode *c = ir_const(g, 1.0, DT_F32, vec(4));
    ir_graph_add_output(g, "y", c);
    CHECK(run(g, "dce"));
    CHECK(g->nnodes == 4);
    ir_graph_free(g);
}

TEST(dce_nothing_to_do)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, mat(2, 3));
    IrNode *s = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, x, x), (int[]){1}, 1, false);
    ir_graph_add_output(g, "y", s);
    ir_graph_add_output(g, "x2", g->nodes[1]);
    CHECK(run(g, "dce"));
    CHECK(g->nnodes == 3 && output(g, 0) == s);
    ir_graph_free(g);
}

TEST(dce_no_outputs)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    ir_unary(g, OP_NEG, x);
    CHECK(run(g, "dce"));
    CHECK(g->nnodes == 1 && g->nodes[0] == x);
    ir_graph_free(g);
}

/* A body graph: input a, b = neg a, dead = exp a, return b. */
static IrGraph *body_with_dead_node(void)
{
    IrGraph *b = ir_graph_new("body");
    IrNode *a = ir_input(b, "a", DT_F32, vec(4));
    IrNode *n = ir_unary(b, OP_NEG, a);
    ir_unary(b, OP_EXP, a);
    ir_graph_add_output(b, "out", n);
    return b;
}

TEST(dce_recurses_into_bodies)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *f = ir_unary(g, OP_NEG, x);
    f->body = body_with_dead_node();
    IrNode *dead = ir_unary(g, OP_NEG, x);
    dead->body = body_with_dead_node(); /* dropped with its node: freed, not leaked */
    ir_graph_add_output(g, "y", f);
    CHECK(run(g, "dce"));
    CHECK(g->nnodes == 2 && f->body->nnodes == 2);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- cse */

TEST(cse_identical_adds)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *y = ir_input(g, "y", DT_F32, vec(4));
    IrNode *a = ir_binary(g, OP_ADD, x, y);
    IrNode *b = ir_binary(g, OP_ADD, x, y);
    IrNode *m = ir_binary(g, OP_MUL, a, b);
    ir_graph_add_output(g, "out", m);
    ir_graph_add_output(g, "b", b);
    CHECK(run(g, "cse"));
    CHECK(g->nnodes == 4 && g->nodes[2] == a && g->nodes[3] == m && m->index == 3);
    CHECK(m->in[0] == a && m->in[1] == a && output(g, 1) == a);
    (void)b;
    ir_graph_free(g);
}

TEST(cse_commutative)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, mat(2, 4));
    IrNode *y = ir_input(g, "y", DT_F32, vec(4));
    IrOp comm[] = {OP_ADD, OP_MUL, OP_MAXIMUM, OP_MINIMUM, OP_EQ};
    for (int i = 0; i < 5; i++) {
        add_out(g, ir_binary(g, comm[i], x, y));
        add_out(g, ir_binary(g, comm[i], y, x));
    }
    IrNode *s1 = ir_binary(g, OP_SUB, x, y), *s2 = ir_binary(g, OP_SUB, y, x);
    add_out(g, s1);
    add_out(g, s2);
    CHECK(run(g, "cse,dce"));
    for (int i = 0; i < 5; i++)
        CHECK(output(g, 2 * i) == output(g, 2 * i + 1));
    CHECK(output(g, 10) == s1 && output(g, 11) == s2);
    CHECK(g->nnodes == 2 + 5 + 2);
    ir_graph_free(g);
}

TEST(cse_attrs)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, mat(2, 3));
    IrNode *r0 = ir_reduce(g, OP_SUM, x, (int[]){0}, 1, false);
    IrNode *r1 = ir_reduce(g, OP_SUM, x, (int[]){1}, 1, false);
    IrNode *r0b = ir_reduce(g, OP_SUM, x, (int[]){0}, 1, false);
    IrNode *r0k = ir_reduce(g, OP_SUM, x, (int[]){0}, 1, true);
    IrNode *outs[] = {r0, r1, r0b, r0k};
    for (int i = 0; i < 4; i++)
        add_out(g, outs[i]);
    CHECK(run(g, "cse,dce"));
    CHECK(output(g, 2) == r0 && output(g, 1) == r1 && output(g, 3) == r0k);
    CHECK(g->nnodes == 4);
    ir_graph_free(g);
}

TEST(cse_consts)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *c1 = ir_const(g, 1.5, DT_F32, vec(4));
    IrNode *c2 = ir_const(g, 1.5, DT_F32, vec(4));
    IrNode *z = ir_const(g, 0.0, DT_F32, vec(4));
    IrNode *nz = ir_const(g, -0.0, DT_F32, vec(4));
    IrNode *c3 = ir_const(g, 1.5, DT_F32, vec(3));
    IrNode *c4 = ir_const(g, 1.5, DT_I32, vec(4));
    IrNode *outs[] = {c1, c2, z, nz, c3, c4};
    for (int i = 0; i < 6; i++)
        add_out(g, outs[i]);
    CHECK(run(g, "cse"));
    CHECK(output(g, 1) == c1);
    for (int i = 2; i < 6; i++)
        CHECK(output(g, i) == outs[i]);
    ir_graph_free(g);
}

TEST(cse_never_merges_sources_or_dropout)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *x2 = ir_input(g, "x2", DT_F32, vec(4));
    IrNode *w = ir_param(g, "w", vec(4), "zeros", 0, true);
    IrNode *w2 = ir_param(g, "w2", vec(4), "zeros", 0, true);
    IrAttr p = ir_attr_float(ATTR_P, 0.1);
    IrNode *d1 = ir_op1(g, OP_DROPOUT, x, &p, 1);
    IrNode *d2 = ir_op1(g, OP_DROPOUT, x, &p, 1);
    IrNode *outs[] = {x, x2, w, w2, d1, d2};
    for (int i = 0; i < 6; i++)
        add_out(g, outs[i]);
    CHECK(run(g, "cse,dce"));
    for (int i = 0; i < 6; i++)
        CHECK(output(g, i) == outs[i]);
    CHECK(g->nnodes == 6);
    ir_graph_free(g);
}

/* neg(add x y) twice: the adds merge, then the negs see equal operands. */
TEST(cse_chain)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *y = ir_input(g, "y", DT_F32, vec(4));
    IrNode *n1 = ir_unary(g, OP_NEG, ir_binary(g, OP_ADD, x, y));
    IrNode *n2 = ir_unary(g, OP_NEG, ir_binary(g, OP_ADD, y, x));
    ir_graph_add_output(g, "a", n1);
    ir_graph_add_output(g, "b", n2);
    CHECK(run(g, "cse,dce"));
    CHECK(output(g, 1) == n1 && g->nnodes == 4);
    ir_graph_free(g);
}

/* Two fusion-like nodes on the same operand, with equal or different bodies. */
TEST(cse_bodies)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *f[3];
    for (int i = 0; i < 3; i++) {
        f[i] = ir_unary(g, OP_NEG, x);
        f[i]->body = body_with_dead_node();
        add_out(g, f[i]);
    }
    IrNode *b2 = f[2]->body->nodes[1];
    b2->op = OP_ABS; /* same type rule as neg */
    CHECK(run(g, "cse"));
    CHECK(output(g, 1) == f[0] && output(g, 2) == f[2]);
    CHECK(g->nnodes == 3); /* f[1] and its body are gone (freed: no leak) */
    CHECK(f[0]->body->nnodes == 3); /* nothing to merge inside; the dead exp stays */
    CHECK(run(g, "dce"));
    CHECK(g->nnodes == 3 && f[0]->body->nnodes == 2);
    ir_graph_free(g);
}

TEST(cse_inside_body)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    IrNode *f = ir_unary(g, OP_NEG, x);
    IrGraph *b = ir_graph_new("body");
    IrNode *a = ir_input(b, "a", DT_F32, vec(4));
    IrNode *e1 = ir_unary(b, OP_EXP, a), *e2 = ir_unary(b, OP_EXP, a);
    ir_graph_add_output(b, "out", ir_binary(b, OP_ADD, e1, e2));
    f->body = b;
    ir_graph_add_output(g, "y", f);
    CHECK(run(g, "cse,dce"));
    CHECK(b->nnodes == 3 && output(b, 0)->in[1] == e1);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- pipelines */

static bool pipeline_error(const char *pipeline, const char *want_msg, const char *want_hint)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    ir_unary(g, OP_NEG, x); /* dead: must survive a pipeline rejected up front */
    ir_graph_add_output(g, "y", x);
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    bool ok = pass_run_pipeline(g, pipeline, &ctx);
    bool good = !ok && err.set && strstr(err.msg, want_msg) && g->nnodes == 2 &&
                (!want_hint || strstr(err.hint, want_hint));
    if (!good)
        fprintf(stderr, "pipeline '%s': msg '%s' hint '%s'\n", pipeline, err.msg, err.hint);
    ir_graph_free(g);
    return good;
}

TEST(pipeline_errors)
{
    CHECK(pipeline_error("dcee", "unknown pass 'dcee'", "did you mean 'dce'?"));
    CHECK(pipeline_error("dcee", "known passes: cse, dce", NULL));
    CHECK(pipeline_error("cse,dcee", "unknown pass 'dcee'", NULL)); /* cse did not run */
    CHECK(pipeline_error("dce,bogus", "unknown pass 'bogus'", NULL)); /* nor dce */
    CHECK(pipeline_error("cse,,dce", "empty pass name", NULL));
    CHECK(pipeline_error("dce,", "empty pass name", NULL));
    CHECK(pipeline_error(",dce", "empty pass name", NULL));
}

TEST(pipeline_forms)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    ir_unary(g, OP_NEG, x);
    ir_graph_add_output(g, "y", x);
    CHECK(run(g, "") && g->nnodes == 2);
    CHECK(run(g, NULL) && g->nnodes == 2);
    CHECK(run(g, " cse , dce ") && g->nnodes == 1);
    CHECK(run(g, "dce,dce,cse") && g->nnodes == 1);
    ir_graph_free(g);
}

TEST(print_flag_errors)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.print_after = "dcx";
    CHECK(!pass_check_pipeline("dce", &ctx) && strstr(err.msg, "--print-after"));
    ctx.print_after = "all";
    ctx.print_before = "cse";
    CHECK(pass_check_pipeline("dce", &ctx));
}

/* ---------------------------------------------------------------- printing */

static char *slurp(FILE *f)
{
    long n = ftell(f);
    char *s = calloc(1, (size_t)n + 1);
    rewind(f);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = 0;
    return s;
}

static int count(const char *hay, const char *needle)
{
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        k++;
    return k;
}

static char *run_printing(const char *after, const char *before)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    ir_graph_add_output(g, "y", ir_unary(g, OP_NEG, x));
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.out = tmpfile();
    ctx.print_after = after;
    ctx.print_before = before;
    CHECK(pass_run_pipeline(g, "cse,dce", &ctx));
    char *s = slurp(ctx.out);
    fclose(ctx.out);
    ir_graph_free(g);
    return s;
}

TEST(print_after_before)
{
    char *s = run_printing("all", NULL);
    CHECK(count(s, "// -----// IR after cse //----- //\ngraph g(") == 1);
    CHECK(count(s, "// -----// IR after dce //----- //\ngraph g(") == 1);
    CHECK(count(s, "IR before") == 0 && count(s, "graph g(") == 2);
    CHECK(strstr(s, "after cse") < strstr(s, "after dce"));
    free(s);
    s = run_printing(NULL, "dce");
    CHECK(count(s, "// -----// IR before dce //----- //\n") == 1);
    CHECK(count(s, "IR after") == 0 && count(s, "graph g(") == 1);
    free(s);
    s = run_printing("cse", "all");
    CHECK(count(s, "IR before") == 2 && count(s, "IR after") == 1);
    CHECK(strstr(s, "before cse") < strstr(s, "after cse"));
    CHECK(strstr(s, "after cse") < strstr(s, "before dce"));
    free(s);
}

/* ---------------------------------------------------------------- verification */

/* Breaks SSA order: swaps the first two nodes and reindexes. */
static bool broken_pass(IrGraph *g, PassCtx *ctx)
{
    IrNode *t = g->nodes[0];
    g->nodes[0] = g->nodes[1];
    g->nodes[1] = t;
    ir_graph_reindex(g);
    return true;
}

/* Drops the first node but forgets ir_graph_reindex. */
static bool stale_pass(IrGraph *g, PassCtx *ctx)
{
    g->nodes[0] = g->nodes[1];
    g->nnodes = 1;
    return true;
}

static bool failing_pass(IrGraph *g, PassCtx *ctx)
{
    return false; /* and forgets to describe why */
}

static IrGraph *two_nodes(void)
{
    IrGraph *g = ir_graph_new("g");
    IrNode *x = ir_input(g, "x", DT_F32, vec(4));
    ir_graph_add_output(g, "y", ir_unary(g, OP_NEG, x));
    return g;
}

static void expect_caught(PassFn fn, const char *want)
{
    IrGraph *g = two_nodes();
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    PassInfo p = {"broken", "a test-only pass that breaks the IR", fn};
    CHECK(!pass_run_one(g, &p, &ctx));
    CHECK(ctx.internal);
    CHECK(strstr(err.msg, "pass broken produced invalid IR: ") == err.msg);
    CHECK(strstr(err.msg, want));
    ir_graph_free(g);
}

TEST(verifier_catches_broken_pass)
{
    expect_caught(broken_pass, "operand is not defined before its use");
    expect_caught(stale_pass, "ir_graph_reindex");
    IrGraph *g = two_nodes();
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.verify = false;
    PassInfo p = {"broken", "", broken_pass};
    CHECK(pass_run_one(g, &p, &ctx)); /* --no-verify lets it through */
    p.fn = failing_pass;
    CHECK(!pass_run_one(g, &p, &ctx) && !ctx.internal);
    CHECK_STR(err.msg, "pass broken failed");
    ir_graph_free(g);
}

TEST(invalid_input_is_not_blamed_on_a_pass)
{
    IrGraph *g = two_nodes();
    broken_pass(g, NULL);
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    CHECK(!pass_run_pipeline(g, "dce", &ctx));
    CHECK(!ctx.internal && strstr(err.msg, "input IR is invalid"));
    ir_graph_free(g);
}

int main(void)
{
    RUN(ctx_defaults);
    RUN(lookup);
    RUN(stage_table);
    RUN(stage_pipelines);
    RUN(stage_unknown);
    RUN(run_compile);
    RUN(dce_dead_chain);
    RUN(dce_keeps_unused_interface);
    RUN(dce_nothing_to_do);
    RUN(dce_no_outputs);
    RUN(dce_recurses_into_bodies);
    RUN(cse_identical_adds);
    RUN(cse_commutative);
    RUN(cse_attrs);
    RUN(cse_consts);
    RUN(cse_never_merges_sources_or_dropout);
    RUN(cse_chain);
    RUN(cse_bodies);
    RUN(cse_inside_body);
    RUN(pipeline_errors);
    RUN(pipeline_forms);
    RUN(print_flag_errors);
    RUN(print_after_before);
    RUN(verifier_catches_broken_pass);
    RUN(invalid_input_is_not_blamed_on_a_pass);
    return test_summary();
}
