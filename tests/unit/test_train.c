/* test_train.c — unit tests of the training side of the runtime that need
 * no train step: the sampler (rt_sample.c), the KV-cached decode graph
 * against the full forward (passes/decode.c), generation with and without the
 * cache, the learning-rate schedule, the model-file flattening that
 * checkpoints store, the SVG plot (rt_plot.c) and rt_params_init_from.  The
 * loop itself is tested end to end by tests/scripts/train_e2e.sh.
 */
#include "tests/unit/testlib.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "frontend/fe.h"
#include "passes/pass.h"
#include "runtime/rt_train.h"

/* ---------------------------------------------------------------- sampler */

TEST(greedy_is_argmax_first_on_ties)
{
    float l[5] = {1, 3, 2, 3, -1};
    RtSampler s;
    rt_sampler_init(&s, 0, 0, 1);
    CHECK(rt_sampler_pick(&s, l, 5) == 1);
    rt_sampler_init(&s, 0, 2, 1);
    CHECK(rt_sampler_pick(&s, l, 5) == 1);
}

TEST(top_k_and_temperature)
{
    float l[6] = {5, 4.9f, 4.8f, 0, 0, 0};
    int hist[6] = {0};
    RtSampler s;
    rt_sampler_init(&s, 1.0, 3, 42);
    for (int i = 0; i < 3000; i++)
        hist[rt_sampler_pick(&s, l, 6)]++;
    CHECK(hist[3] == 0 && hist[4] == 0 && hist[5] == 0);          /* outside the top 3 */
    CHECK(hist[0] > 800 && hist[1] > 800 && hist[2] > 800);       /* near-uniform */
    rt_sampler_init(&s, 1e-3, 0, 42);                             /* nearly greedy */
    for (int i = 0; i < 100; i++)
        CHECK(rt_sampler_pick(&s, l, 6) == 0);
    rt_sampler_init(&s, 100.0, 0, 42);                            /* nearly uniform */
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < 6000; i++)
        hist[rt_sampler_pick(&s, l, 6)]++;
    CHECK(hist[5] > 700);
}

TEST(top_k_keeps_ties)
{
    float l[4] = {1, 2, 2, 2};
    int hist[4] = {0};
    RtSampler s;
    rt_sampler_init(&s, 1.0, 1, 7);
    for (int i = 0; i < 600; i++)
        hist[rt_sampler_pick(&s, l, 4)]++;
    CHECK(hist[0] == 0 && hist[1] > 100 && hist[2] > 100 && hist[3] > 100);
}

TEST(sampler_is_seeded)
{
    float l[50];
    for (int i = 0; i < 50; i++)
        l[i] = (float)sin(i);
    RtSampler a, b, c;
    rt_sampler_init(&a, 1.0, 0, 5);
    rt_sampler_init(&b, 1.0, 0, 5);
    rt_sampler_init(&c, 1.0, 0, 6);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 100; i++) {
        int x = rt_sampler_pick(&a, l, 50), y = rt_sampler_pick(&b, l, 50);
        same_ab += x == y;
        same_ac += x == rt_sampler_pick(&c, l, 50);
    }
    CHECK(same_ab == 100 && same_ac < 100);
}

/* ---------------------------------------------------------------- decode graph */

static FeModel *tiny_gpt(void)
{
    static const FeSet sets[] = {{"emb_dim", "32"}, {"n_heads", "4"}, {"n_layers", "2"},
                                 {"context_length", "12"}, {"vocab_size", "50"},
                                 {"qkv_bias", "1"}};
    FeOptions o = {sets, 6};
    IrError err = {0};
    FeModel *m = fe_load_file("models/gpt-mini.json", &o, &err);
    if (!m)
        ir_error_print(&err, stderr);
    return m;
}

static RtExec *compile_at(const IrGraph *g, int64_t T)
{
    int64_t b[IR_MAX_SYMS] = {0};
    for (int s = 0; s < g->nsym; s++)
        b[s] = !strcmp(g->sym[s], "B") ? 1 : T;
    IrError err = {0};
    RtExecOptions eo = {.nthreads = 1};
    RtExec *ex = rt_exec_new(g, b, &eo, &err);
    if (!ex)
        ir_error_print(&err, stderr);
    else
        rt_exec_init_params(ex, 9);
    return ex;
}

/* Logits of the decode step at every position == those of the full
 * forward (dropout off) over the whole sequence. */
TEST(decode_step_matches_forward)
{
    FeModel *m = tiny_gpt();
    CHECK(m != NULL);
    if (!m)
        return;
    IrError err = {0};
    int nl = 0;
    IrGraph *dec = pass_decode_graph(m->graph, &nl, &err);
    CHECK(dec != NULL && nl == 2);
    IrGraph *full = ir_graph_clone(m->graph);
    pass_no_dropout(full);
    RtExec *fx = compile_at(full, 12), *dx = dec ? compile_at(dec, 12) : NULL;
    CHECK(fx && dx);
    if (fx && dx) {
        int32_t ids[12];
        for (int i = 0; i < 12; i++)
            ids[i] = (i * 7 + 3) % 50;
        CHECK(rt_exec_set_input(fx, "idx", ids, sizeof ids, &err) && rt_exec_run(fx, &err));
        const float *want = rt_exec_output(fx, "logits", NULL);
        double worst = 0;
        for (int32_t p = 0; p < 12; p++) {
            CHECK(rt_exec_set_input(dx, "idx", &ids[p], 4, &err) &&
                  rt_exec_set_input(dx, "gen.pos", &p, 4, &err) && rt_exec_run(dx, &err));
            const float *got = rt_exec_output(dx, "logits", NULL);
            for (int v = 0; v < 50; v++)
                worst = fmax(worst, fabs(got[v] - want[p * 50 + v]));
        }
        printf("  decode vs forward: worst |logit diff| %.3g\n", worst);
        CHECK(worst < 1e-4);
    }
    rt_exec_free(fx);
    rt_exec_free(dx);
    ir_graph_free(dec);
    ir_graph_free(full);
    fe_model_free(m);
}

static size_t gen_tokens(RtGen *g, int max_new, double temp, uint64_t seed, int32_t *out)
{
    int32_t prompt[3] = {1, 2, 3}, *o = NULL;
    size_t n = 0;
    RtSampler s;
    rt_sampler_init(&s, temp, 5, seed);
    RtGenOptions go = {max_new, -1, NULL, NULL, NULL};
    IrError err = {0};
    CHECK(rt_gen_run(g, &s, prompt, 3, &go, &o, &n, &err));
    memcpy(out, o, n * sizeof *o);
    free(o);
    return n;
}

/* The cached and the uncached generator give the same tokens, also past
 * the window (where the cached one falls back to the full forward). */
TEST(generation_with_and_without_cache)
{
    FeModel *m = tiny_gpt();
    if (!m)
        return;
    IrError err = {0};
    RtExecOptions eo = {.nthreads = 1};
    RtGen *kv = rt_gen_new(m->graph, 12, true, &eo, &err);
    RtGen *full = rt_gen_new(m->graph, 12, false, &eo, &err);
    CHECK(kv && full && rt_gen_has_kv(kv) && !rt_gen_has_kv(full));
    if (kv && full) {
        int32_t a[30], b[30], c[30];
        CHECK(gen_tokens(kv, 20, 0, 1, a) == 20 && gen_tokens(full, 20, 0, 1, b) == 20);
        CHECK(!memcmp(a, b, sizeof(int32_t) * 20));
        CHECK(gen_tokens(kv, 20, 1.0, 3, a) == 20 && gen_tokens(full, 20, 1.0, 3, b) == 20);
        CHECK(!memcmp(a, b, sizeof(int32_t) * 20));
        gen_tokens(kv, 20, 1.0, 3, c);                /* a second run reuses the cache */
        CHECK(!memcmp(a, c, sizeof(int32_t) * 20));
    }
    rt_gen_free(kv);
    rt_gen_free(full);
    fe_model_free(m);
}

/* ---------------------------------------------------------------- schedule */

TEST(lr_schedule)
{
    RtTrainOptions o = rt_train_defaults();
    CHECK_NEAR(rt_train_lr(&o, 0, 90), 4e-4, 0);
    CHECK_NEAR(rt_train_lr(&o, 89, 90), 4e-4, 0);
    o.warmup = 10;
    o.schedule = RT_LR_COSINE;
    o.lr = 1e-3;
    o.min_lr = 1e-4;
    CHECK_NEAR(rt_train_lr(&o, 0, 110), 1e-4, 1e-15);
    CHECK_NEAR(rt_train_lr(&o, 9, 110), 1e-3, 1e-15);
    CHECK_NEAR(rt_train_lr(&o, 10, 110), 1e-3, 1e-15);
    CHECK_NEAR(rt_train_lr(&o, 60, 110), 5.5e-4, 1e-12);
    CHECK_NEAR(rt_train_lr(&o, 110, 110), 1e-4, 1e-15);
    o.min_lr = -1;   /* default floor: lr / 10 */
    CHECK_NEAR(rt_train_lr(&o, 110, 110), 1e-4, 1e-15);
}

/* ---------------------------------------------------------------- model file */

TEST(flattened_model_loads_the_same)
{
    IrError err = {0};
    char *json = fe_flatten_file("models/gpt-mini.json", &err);
    CHECK(json && !strstr(json, "\"base\""));
    if (!json)
        return;
    FeModel *a = fe_load_file("models/gpt-mini.json", NULL, &err);
    FeModel *b = fe_load_string(json, "models/gpt-mini.json", NULL, &err);
    CHECK(a && b);
    if (a && b) {
        char *pa = ir_print_str(a->graph), *pb = ir_print_str(b->graph);
        CHECK(!strcmp(pa, pb));
        free(pa);
        free(pb);
    }
    fe_model_free(a);
    fe_model_free(b);
    free(json);
    err = (IrError){0};
    CHECK(fe_flatten_file("models/none.json", &err) == NULL && strstr(err.msg, "none.json"));
}

/* ---------------------------------------------------------------- init from */

/* A checkpoint of every param of ex but `skip`, at their current values. */
static RtCkpt *ckpt_of(RtExec *ex, const IrGraph *g, const char *skip, const char *path)
{
    RtCkptWriter *w = rt_ckpt_writer_new();
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        int64_t shape[IR_MAX_RANK];
        if (n->op != OP_PARAM || !strcmp(n->name, skip))
            continue;
        for (int d = 0; d < n->shape.rank; d++)
            ir_dim_is_const(n->shape.d[d], &shape[d]);
        rt_ckpt_add(w, n->name, RT_DT_F32, n->shape.rank, shape, rt_exec_param(ex, n->name));
    }
    rt_ckpt_add(w, "adam.m.extra", RT_DT_F32, 1, (int64_t[]){1}, (float[]){1});
    IrError err = {0};
    bool ok = rt_ckpt_write(w, path, &err);
    rt_ckpt_writer_free(w);
    return ok ? rt_ckpt_read(path, &err) : NULL;
}

static float param0(RtExec *ex, const char *name)
{
    return rt_exec_param(ex, name)[0];
}

/* Copied params equal the checkpoint's, a new one keeps its own init, one
 * that is neither is an error naming it, and a wrong shape names both. */
TEST(params_init_from)
{
    FeModel *m = tiny_gpt();
    RtExec *a = m ? compile_at(m->graph, 12) : NULL, *b = m ? compile_at(m->graph, 12) : NULL;
    CHECK(a && b);
    if (!a || !b)
        goto done;
    rt_exec_init_params(b, 10);          /* a has seed 9: every param differs */
    char path[] = "/tmp/gradc-test-init-XXXXXX";
    close(mkstemp(path));
    RtCkpt *c = ckpt_of(a, m->graph, "out_head.weight", path);
    CHECK(c != NULL);
    float own = param0(b, "out_head.weight");
    CHECK(own != param0(a, "out_head.weight"));
    IrError err = {0};
    RtInitFromStats st;
    const char *fresh[] = {"nothing", "out_head.*"};
    CHECK(c && rt_params_init_from(b, m->graph, c, fresh, 2, &st, &err));
    CHECK(st.kept == 1 && st.missing == 0 && st.copied > 10);
    CHECK(param0(b, "tok_emb.weight") == param0(a, "tok_emb.weight"));
    CHECK(param0(b, "trf_blocks.1.ff.layers.2.bias") ==
          param0(a, "trf_blocks.1.ff.layers.2.bias"));
    CHECK(param0(b, "out_head.weight") == own);
    CHECK(c && !rt_params_init_from(b, m->graph, c, fresh, 1, NULL, &err));
    CHECK(strstr(err.msg, "no tensor out_head.weight") && strstr(err.msg, path));
    rt_ckpt_free(c);
    /* the same checkpoint read as one of another size */
    FeSet sets[] = {{"emb_dim", "16"}, {"n_heads", "4"}, {"n_layers", "2"},
                    {"context_length", "12"}, {"vocab_size", "50"}, {"qkv_bias", "1"}};
    FeOptions o = {sets, 6};
    FeModel *small = fe_load_file("models/gpt-mini.json", &o, &err);
    RtExec *s = small ? compile_at(small->graph, 12) : NULL;
    c = rt_ckpt_read(path, &err);
    err = (IrError){0};
    CHECK(s && c && !rt_params_init_from(s, small->graph, c, fresh, 2, NULL, &err));
    CHECK(strstr(err.msg, "has shape [50,32], the model wants [50,16]") &&
          strstr(err.msg, "another size"));
    rt_ckpt_free(c);
    rt_exec_free(s);
    fe_model_free(small);
    unlink(path);
done:
    rt_exec_free(a);
    rt_exec_free(b);
    fe_model_free(m);
}

/* ---------------------------------------------------------------- plot */

TEST(plot_svg)
{
    double x[4] = {512, 3072, 5632, 8192}, tr[4] = {9.78, 8.11, 6.66, 5.96};
    double va[4] = {9.97, NAN, 7.06, 6.62};
    RtSeries s[2] = {{"Training loss", "#1f77b4", x, tr, 4, false},
                     {"Validation <loss>", "#ff7f0e", x, va, 4, true}};
    RtPlot p = {"gpt & co", "Tokens seen", "Loss", s, 2};
    IrError err = {0};
    char path[] = "/tmp/gradc-test-plot-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    CHECK(rt_plot_svg(&p, path, &err));
    FILE *f = fopen(path, "r");
    char buf[20000];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    CHECK(!strncmp(buf, "<svg", 4) && strstr(buf, "</svg>"));
    CHECK(strstr(buf, "Validation &lt;loss&gt;") && strstr(buf, "gpt &amp; co"));
    CHECK(strstr(buf, ">4000<") && strstr(buf, ">8<"));           /* ticks */
    CHECK(strstr(buf, "stroke-dasharray"));
    CHECK(!strstr(buf, "nan") && !strstr(buf, "inf"));
    unlink(path);
    CHECK(!rt_plot_svg(&p, "/nonexistent-dir/x.svg", &err) && strstr(err.msg, "loss plot"));
}

int main(void)
{
    RUN(greedy_is_argmax_first_on_ties);
    RUN(top_k_and_temperature);
    RUN(top_k_keeps_ties);
    RUN(sampler_is_seeded);
    RUN(lr_schedule);
    RUN(flattened_model_loads_the_same);
    RUN(plot_svg);
    RUN(params_init_from);
    RUN(decode_step_matches_forward);
    RUN(generation_with_and_without_cache);
    return test_summary();
}
