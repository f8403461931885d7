/* test_lora.c — the lora pass against the base model, and merging through
 * checkpoints (passes/lora.c, runtime/rt_lora.c).
 *
 * The oracle is the reference interpreter (double precision) on two graphs:
 * the model as loaded, and the same model after pass_lora.  With B = 0 the
 * adapted forward must equal the base forward exactly; with random A and B
 * the adapted forward must equal the base forward run with the merged
 * weights W' = W + s.A.B (tb=0) or W + s.(A.B)^T (tb=1), which come from a
 * checkpoint of the adapted model through rt_lora_merged and through
 * rt_lora_merge_file.  Models: GPT-2 (every linear layer nn.Linear, tb=1,
 * with the LM head) and the classifier, both tiny, and an IR graph with a
 * tb=0 weight, a ta=1 matmul and batched x; for that one a compiled base
 * program loads the adapted checkpoint as its merged model.
 */
#include "frontend/fe.h"
#include "passes/pass.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_exec.h"
#include "runtime/rt_lora.h"
#include "runtime/rt_train.h"
#include "testlib.h"

#include <stdint.h>
#include <unistd.h>

/* ---------------------------------------------------------------- values */

static uint64_t rng = 88172645463325252ull;

static float urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* f32 values of every param of g, by node index (NULL for other nodes);
 * `zero_b`: the adapters B stay zero. */
static float **random_params(const IrGraph *g, bool zero_b)
{
    float **v = ir_calloc((size_t)g->nnodes, sizeof *v);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        int64_t k = n->op == OP_PARAM ? ir_node_numel_const(n) : 0;
        if (k <= 0)
            continue;
        v[i] = ir_malloc((size_t)k * sizeof **v);
        size_t len = strlen(n->name);
        bool b = len > 7 && !strcmp(n->name + len - 7, ".lora_B");
        for (int64_t e = 0; e < k; e++)
            v[i][e] = b && zero_b ? 0.0f : 0.5f * urand();
    }
    return v;
}

static void free_params(const IrGraph *g, float **v)
{
    for (int i = 0; i < g->nnodes; i++)
        free(v[i]);
    free(v);
}

static const float *param_of(const IrGraph *g, float **v, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM && !strcmp(g->nodes[i]->name, name))
            return v[i];
    return NULL;
}

/* the values of src's params (sv, by node index of src) for dst's params, by name */
static float **params_like(const IrGraph *dst, const IrGraph *src, float **sv)
{
    float **v = ir_calloc((size_t)dst->nnodes, sizeof *v);
    for (int i = 0; i < dst->nnodes; i++) {
        const IrNode *n = dst->nodes[i];
        int64_t e = n->op == OP_PARAM ? ir_node_numel_const(n) : 0;
        const float *from = e > 0 ? param_of(src, sv, n->name) : NULL;
        if (from) {
            v[i] = ir_malloc((size_t)e * sizeof **v);
            memcpy(v[i], from, (size_t)e * sizeof **v);
        }
    }
    return v;
}

/* ---------------------------------------------------------------- the interpreter */

static void set_f32(IrInterp *it, const IrNode *n, const float *data)
{
    int64_t dim[IR_MAX_RANK];
    for (int d = 0; d < n->shape.rank; d++)
        IR_ASSERT(ir_dim_is_const(n->shape.d[d], &dim[d]));
    IrTensor *t = ir_tensor_new(DT_F32, n->shape.rank, dim);
    for (int64_t e = 0; e < t->numel; e++)
        t->data[e] = data[e];
    IrError err = {0};
    CHECK(ir_interp_set(it, n->name, t, &err));
    ir_tensor_free(t);
}

/* every input: integers in [0, 3) (token ids, last positions < T), f32 in [-1, 1);
 * the same values for every graph */
static void set_inputs(IrInterp *it, const IrGraph *g, const int64_t *bind)
{
    uint64_t keep = rng;
    rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_INPUT)
            continue;
        int64_t dim[IR_MAX_RANK];
        for (int d = 0; d < n->shape.rank; d++)
            dim[d] = ir_dim_eval(n->shape.d[d], bind);
        IrTensor *t = ir_tensor_new(n->dtype, n->shape.rank, dim);
        for (int64_t e = 0; e < t->numel; e++) {
            double r = urand();
            t->data[e] = n->dtype == DT_I32 ? (double)(rng % 3) : r;
        }
        IrError err = {0};
        CHECK(ir_interp_set(it, n->name, t, &err));
        ir_tensor_free(t);
    }
    rng = keep;
}

/* The output `out` of g with params v (by node index of g); a copy. */
static IrTensor *forward(const IrGraph *g, float **v, const char *out, const int64_t *bind)
{
    IrError err = {0};
    IrInterp *it = ir_interp_new(g, bind, 1, &err);
    IR_ASSERT(it);
    set_inputs(it, g, bind);
    for (int i = 0; i < g->nnodes; i++)
        if (v[i])
            set_f32(it, g->nodes[i], v[i]);
    bool ok = ir_interp_run(it, &err);
    if (!ok)
        ir_error_print(&err, stderr);
    CHECK(ok);
    const IrTensor *o = ir_interp_output(it, out);
    IrTensor *copy = ir_tensor_new(o->dtype, o->rank, o->dim);
    memcpy(copy->data, o->data, (size_t)o->numel * sizeof *o->data);
    ir_interp_free(it);
    return copy;
}

static double max_abs(const IrTensor *t)
{
    double m = 0;
    for (int64_t e = 0; e < t->numel; e++)
        m = fabs(t->data[e]) > m ? fabs(t->data[e]) : m;
    return m;
}

static double max_diff(const IrTensor *a, const IrTensor *b)
{
    double m = 0;
    IR_ASSERT(a->numel == b->numel);
    for (int64_t e = 0; e < a->numel; e++)
        m = fabs(a->data[e] - b->data[e]) > m ? fabs(a->data[e] - b->data[e]) : m;
    return m;
}

/* ---------------------------------------------------------------- checkpoints */

static void write_ckpt(const IrGraph *g, float **v, const char *meta, const char *path)
{
    RtCkptWriter *w = rt_ckpt_writer_new();
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (!v[i])
            continue;
        int64_t dim[IR_MAX_RANK];
        for (int d = 0; d < n->shape.rank; d++)
            IR_ASSERT(ir_dim_is_const(n->shape.d[d], &dim[d]));
        rt_ckpt_add(w, n->name, RT_DT_F32, n->shape.rank, dim, v[i]);
    }
    if (meta)
        rt_ckpt_meta(w, RT_LORA_META, meta);
    rt_ckpt_meta(w, "model.json", "{\"the\":\"model\"}");
    IrError err = {0};
    CHECK(rt_ckpt_write(w, path, &err));
    rt_ckpt_writer_free(w);
}

/* base params: each one's merged value from ckpt c, or its own */
static float **merged_params(const IrGraph *base, float **lv, const IrGraph *lg,
                             const RtCkpt *c, int *nmerged)
{
    float **v = ir_calloc((size_t)base->nnodes, sizeof *v);
    *nmerged = 0;
    for (int i = 0; i < base->nnodes; i++) {
        const IrNode *n = base->nodes[i];
        int64_t k = n->op == OP_PARAM ? ir_node_numel_const(n) : 0;
        if (k <= 0)
            continue;
        bool found = true;
        IrError err = {0};
        v[i] = rt_lora_merged(c, n->name, &found, &err);
        CHECK(!err.set);
        *nmerged += found;
        if (!found) {
            v[i] = ir_malloc((size_t)k * sizeof **v);
            memcpy(v[i], param_of(lg, lv, n->name), (size_t)k * sizeof **v);
        }
    }
    return v;
}

/* The attention pass (its q/k/v merge takes the LoRA paths along) keeps
 * the adapted model's values. */
static void check_attention(const IrGraph *lg, float **lv, const char *out, const int64_t *bind,
                            const IrTensor *ya)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    IrGraph *ga = ir_graph_clone(lg);
    CHECK(pass_run_pipeline(ga, "attention,dce", &ctx));
    float **av = params_like(ga, lg, lv);
    IrTensor *y = forward(ga, av, out, bind);
    CHECK(max_diff(y, ya) <= 1e-12 * max_abs(ya));
    int concats = 0;
    for (int i = 0; i < ga->nnodes; i++)
        concats += ga->nodes[i]->op == OP_CONCAT;
    printf("  attention: %d concats, |after - before| %.3g\n", concats, max_diff(y, ya));
    ir_tensor_free(y);
    free_params(ga, av);
    ir_graph_free(ga);
}

/* A compiled program of the base model reads the adapted checkpoint as
 * its merged model (rt_exec_params_from_ckpt), every param as mv holds it. */
static void check_exec_load(const IrGraph *base, const int64_t *bind, const RtCkpt *c,
                            float **mv)
{
    IrError err = {0};
    RtExecOptions eo = {.nthreads = 1};
    RtExec *ex = rt_exec_new(base, bind, &eo, &err);
    CHECK(ex != NULL);
    if (!ex)
        return;
    CHECK(rt_exec_params_from_ckpt(ex, base, c, &err));
    for (int i = 0; i < base->nnodes; i++)
        if (mv[i]) {
            const float *p = rt_exec_param(ex, base->nodes[i]->name);
            CHECK(p && !memcmp(p, mv[i], (size_t)ir_node_numel_const(base->nodes[i]) * 4));
        }
    rt_exec_free(ex);
}

/* ---------------------------------------------------------------- the checks */

typedef struct Case {
    const char *name;
    IrGraph *base, *lora;
    PassLoraOpts o;
    const char *out;
    int64_t bind[IR_MAX_SYMS];
    int nweights;       /* the weights the pass adapts */
    bool exec;          /* also load the checkpoint into a compiled base model */
} Case;

static void run_case(Case *k)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    ctx.lora = k->o;
    k->lora = ir_graph_clone(k->base);
    CHECK(pass_lora(k->lora, &ctx) && ir_verify(k->lora, &err));
    char *meta = rt_lora_meta_json(k->lora, &k->o);
    CHECK(meta != NULL);
    float **lv = random_params(k->lora, true);
    float **bv = params_like(k->base, k->lora, lv);
    /* B = 0: the adapted model is the base model, exactly */
    IrTensor *y0 = forward(k->base, bv, k->out, k->bind);
    IrTensor *y1 = forward(k->lora, lv, k->out, k->bind);
    CHECK(max_abs(y0) > 0.1);
    CHECK_NEAR(max_diff(y0, y1), 0, 0);

    /* random B: the adapted model is the base model with merged weights */
    free_params(k->lora, lv);
    lv = random_params(k->lora, false);
    IrTensor *ya = forward(k->lora, lv, k->out, k->bind);
    char path[256], mpath[256];
    snprintf(path, sizeof path, "/tmp/test_lora_%d_%s.safetensors", (int)getpid(), k->name);
    snprintf(mpath, sizeof mpath, "/tmp/test_lora_%d_%s_m.safetensors", (int)getpid(), k->name);
    write_ckpt(k->lora, lv, meta, path);
    RtCkpt *c = rt_ckpt_read(path, &err);
    CHECK(c != NULL);
    int nmerged = 0;
    float **mv = merged_params(k->base, lv, k->lora, c, &nmerged);
    CHECK(nmerged == k->nweights);
    IrTensor *ym = forward(k->base, mv, k->out, k->bind);
    IrTensor *yb = forward(k->base, bv, k->out, k->bind);
    double scale = max_abs(ya), d = max_diff(ya, ym);
    printf("  %s: %d weights merged, |adapted - merged| %.3g of %.3g, |adapted - base| %.3g\n",
           k->name, nmerged, d, scale, max_diff(ya, yb));
    CHECK(d <= 1e-5 * scale);
    CHECK(max_diff(ya, yb) > 1e-2 * scale);   /* the adapters do change the output */
    check_attention(k->lora, lv, k->out, k->bind, ya);
    if (k->exec)
        check_exec_load(k->base, k->bind, c, mv);

    /* rt_lora_merge_file: the same weights, no adapters, no `lora`, the rest as it was */
    CHECK(rt_lora_merge_file(path, mpath, &err));
    RtCkpt *m = rt_ckpt_read(mpath, &err);
    CHECK(m != NULL && !rt_ckpt_meta_get(m, RT_LORA_META));
    CHECK_STR(m ? rt_ckpt_meta_get(m, "model.json") : NULL, "{\"the\":\"model\"}");
    int nbase = 0;
    for (int i = 0; m && i < k->base->nnodes; i++) {
        const IrNode *n = k->base->nodes[i];
        if (!mv[i])
            continue;
        nbase++;
        const RtCkptTensor *t = rt_ckpt_find(m, n->name);
        CHECK(t && !memcmp(t->data, mv[i], (size_t)t->bytes));
    }
    CHECK(m && m->n == nbase);
    rt_ckpt_free(m);
    rt_ckpt_free(c);
    unlink(path);
    unlink(mpath);
    free(meta);
    free_params(k->lora, lv);
    free_params(k->base, bv);
    free_params(k->base, mv);
    ir_tensor_free(y0), ir_tensor_free(y1), ir_tensor_free(ya);
    ir_tensor_free(ym), ir_tensor_free(yb);
    ir_graph_free(k->lora);
}

static void bind_all(const IrGraph *g, int64_t *bind, int64_t b, int64_t t)
{
    for (int s = 0; s < g->nsym; s++)
        bind[s] = !strcmp(g->sym[s], "B") ? b : t;
}

static FeModel *tiny(const char *path, bool tied)
{
    const FeSet sets[] = {{"emb_dim", "8"}, {"n_heads", "2"}, {"n_layers", "2"},
                          {"context_length", "6"}, {"vocab_size", "11"}, {"drop_rate", "0"},
                          {"qkv_bias", "1"}, {"tie_embeddings", tied ? "1" : "0"}};
    FeOptions o = {sets, 8};
    IrError err = {0};
    FeModel *m = fe_load_file(path, &o, &err);
    if (!m)
        ir_error_print(&err, stderr);
    return m;
}

/* GPT-2: 6 linear layers per block and the LM head, all tb=1; s = 3/2 */
TEST(gpt2_merge)
{
    FeModel *m = tiny("models/gpt2-small.json", false);
    CHECK(m != NULL);
    if (!m)
        return;
    Case k = {"gpt2", m->graph, NULL, {.rank = 2, .alpha = 3}, "logits", {0}, 13, true};
    bind_all(m->graph, k.bind, 2, 5);
    run_case(&k);
    fe_model_free(m);
}

/* the classifier (H-ft's model), when in this tree: s = alpha = 4 (the book's) */
TEST(classifier_merge)
{
    if (access("models/gpt2-classifier.json", R_OK)) {
        TEST_SKIP_PART("models/gpt2-classifier.json is not in this tree");
        return;
    }
    FeModel *m = tiny("models/gpt2-classifier.json", false);
    CHECK(m != NULL);
    if (!m)
        return;
    Case k = {"cls", m->graph, NULL, {.rank = 3, .alpha = 4, .scale = PASS_LORA_ALPHA},
              "logits", {0}, 13, false};
    bind_all(m->graph, k.bind, 2, 5);
    run_case(&k);
    fe_model_free(m);
}

/* a tb=0 weight read by two matmuls (one with ta=1) and a batched x [B,T,5] */
TEST(ir_merge)
{
    static const char text[] =
        "graph g(B, T) {\n"
        "  %x = input : f32[B,T,5] @x\n"
        "  %xt = input : f32[B,5,T] @xt\n"
        "  %w = param {init=\"zeros\"} : f32[5,3] @w\n"
        "  %v = param {init=\"zeros\"} : f32[4,3] @v\n"
        "  %a = matmul %x, %w : f32[B,T,3]\n"
        "  %b = matmul %xt, %w {ta=1} : f32[B,T,3]\n"
        "  %h = tanh %a : f32[B,T,3]\n"
        "  %c = matmul %h, %v {tb=1} : f32[B,T,4]\n"
        "  %s = sum %b {axes=[2], keepdim=1} : f32[B,T,1]\n"
        "  %y = add %c, %s : f32[B,T,4]\n"
        "  return y=%y\n"
        "}\n";
    IrError err = {0};
    IrGraph *g = ir_parse(text, "ir_merge", &err);
    CHECK(g != NULL);
    if (!g)
        return;
    Case k = {"ir", g, NULL, {.rank = 2, .alpha = 5}, "y", {0}, 2, true};
    bind_all(g, k.bind, 2, 3);
    run_case(&k);
    ir_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

TEST(adapter_names)
{
    CHECK(rt_lora_is_adapter("a.weight.lora_A"));
    CHECK(rt_lora_is_adapter("adam.m.a.weight.lora_B"));
    CHECK(!rt_lora_is_adapter("a.weight"));
    CHECK(!rt_lora_is_adapter("lora_A"));
    CHECK(!rt_lora_is_adapter("x.lora_Ab"));
}

static RtCkpt *ckpt_of(const char *meta, const int64_t *ashape, const char *path)
{
    float w[12] = {0}, a[8] = {0}, b[6] = {0};
    RtCkptWriter *wr = rt_ckpt_writer_new();
    rt_ckpt_add(wr, "w", RT_DT_F32, 2, (int64_t[]){3, 4}, w);     /* [out 3, in 4], tb=1 */
    rt_ckpt_add(wr, "w.lora_A", RT_DT_F32, 2, ashape, a);
    rt_ckpt_add(wr, "w.lora_B", RT_DT_F32, 2, (int64_t[]){2, 3}, b);
    rt_ckpt_add(wr, "u", RT_DT_F32, 1, (int64_t[]){3}, b);
    if (meta)
        rt_ckpt_meta(wr, RT_LORA_META, meta);
    IrError err = {0};
    CHECK(rt_ckpt_write(wr, path, &err));
    rt_ckpt_writer_free(wr);
    RtCkpt *c = rt_ckpt_read(path, &err);
    unlink(path);
    return c;
}

TEST(bad_checkpoints)
{
    const char *meta = "{\"rank\":2,\"alpha\":2,\"scale\":1,\"scale_mode\":\"alpha/r\","
                       "\"globs\":[],\"targets\":{\"w\":{\"tb\":1}}}";
    char path[128];
    snprintf(path, sizeof path, "/tmp/test_lora_bad_%d.safetensors", (int)getpid());
    IrError err = {0};
    bool found;
    /* fine: w merges, u has no adapters (not found, no error) */
    RtCkpt *c = ckpt_of(meta, (int64_t[]){4, 2}, path);
    float *v = rt_lora_merged(c, "w", &found, &err);
    CHECK(v && found && !err.set);
    free(v);
    CHECK(!rt_lora_merged(c, "u", &found, &err) && !found && !err.set);
    RtLoraMeta m;
    CHECK(rt_lora_meta_read(c, &m, &found, &err) && found && m.opts.rank == 2 &&
          m.ntargets == 1 && m.tb[0] == 1 && m.scale == 1);
    rt_lora_meta_free(&m);
    rt_ckpt_free(c);
    /* adapters without the metadata */
    c = ckpt_of(NULL, (int64_t[]){4, 2}, path);
    CHECK(!rt_lora_merged(c, "w", &found, &err) && found && strstr(err.msg, "no metadata"));
    rt_ckpt_free(c);
    /* A of the wrong shape ([3,2]: w is [out 3, in 4] with tb=1, so A is [4,2]) */
    err = (IrError){0};
    c = ckpt_of(meta, (int64_t[]){3, 2}, path);
    CHECK(!rt_lora_merged(c, "w", &found, &err) && strstr(err.msg, "'w.lora_A' [3,2]"));
    rt_ckpt_free(c);
    /* a malformed metadata */
    err = (IrError){0};
    c = ckpt_of("{\"rank\":2}", (int64_t[]){4, 2}, path);
    CHECK(!rt_lora_merged(c, "w", &found, &err) && strstr(err.msg, "metadata 'lora'"));
    rt_ckpt_free(c);
}

int main(void)
{
    RUN(gpt2_merge);
    RUN(classifier_merge);
    RUN(ir_merge);
    RUN(adapter_names);
    RUN(bad_checkpoints);
    return test_summary();
}
