/* rt_train.c — the pretraining loop of `gradc train` (rt_train.h).
 *
 * It is the book's train_model_simple (chapter 5) with nanoGPT's extras:
 *
 *   for each update s = 0, 1, ...:
 *       x, y   = batch `batch` of epoch `epoch` (rt_data.c: shuffled per
 *                epoch from the seed, last partial batch dropped)
 *       loss   = one run of the train-step program: forward, cross-entropy,
 *                backward, optional global-norm clipping and AdamW, all
 *                compiled from one graph (passes/autodiff.c, optimizer.c);
 *                lr (the schedule's value at s) and step (s + 1, AdamW's
 *                bias correction and dropout's counter) are runtime inputs
 *       every eval_every updates (s % eval_every == 0, the book's rule):
 *                mean loss over eval_batches batches of each split with a
 *                forward-only program (dropout off), a log row, the plot
 *       sample, save, progress line as asked.
 *
 * The whole state of a run is the weights, the AdamW moments, s, the data
 * position and the seed: shuffles are keyed by (seed, epoch) and dropout
 * masks by (seed, step, element), so nothing else needs saving for a
 * resumed run to repeat an uninterrupted one bit for bit.  Checkpoints,
 * logs and plots are rt_train_io.c.
 */
#define _GNU_SOURCE
#include "runtime/rt_train_int.h"

#include "passes/pass.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- options */

RtTrainOptions rt_train_defaults(void)
{
    return (RtTrainOptions){
        .tokenizer = RT_TOK_GPT2, .batch = 2, .train_frac = 0.9, .epochs = 1,
        .lr = 4e-4, .min_lr = -1, .schedule = RT_LR_CONSTANT, .beta1 = 0.9, .beta2 = 0.999,
        .eps = 1e-8, .weight_decay = 0.1, .decay_all = true, .seed = 123, .eval_every = 5,
        .eval_batches = 5, .sample_tokens = 50, .log_every = 1,
    };
}

double rt_train_lr(const RtTrainOptions *o, int64_t step, int64_t total)
{
    if (o->warmup > 0 && step < o->warmup)
        return o->lr * (double)(step + 1) / (double)o->warmup;
    if (o->schedule == RT_LR_CONSTANT || total <= o->warmup)
        return o->lr;
    double min = o->min_lr >= 0 ? o->min_lr : 0.1 * o->lr;
    double p = (double)(step - o->warmup) / (double)(total - o->warmup);
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    return min + 0.5 * (o->lr - min) * (1 + cos(M_PI * p));
}

/* ---------------------------------------------------------------- model */

static bool pick_context(RtTrain *t, IrError *err)
{
    int64_t ctx = t->o.model.context_length;
    bool has = t->o.model.has_context_length;
    t->T = t->o.ctx > 0 ? t->o.ctx : ctx;
    if (t->T <= 0) {
        ir_error(err, "model '%s' has no config key context_length", t->model_name);
        ir_error_hint(err, "pass the sequence length with --seq T");
        return false;
    }
    if (has && t->T > ctx) {
        ir_error(err, "--seq %lld is longer than the model's context_length %lld",
                 (long long)t->T, (long long)ctx);
        ir_error_hint(err, "use --seq %lld or less, or --set context_length=%lld",
                      (long long)ctx, (long long)t->T);
        return false;
    }
    return true;
}

static bool find_io(RtTrain *t, IrError *err)
{
    const IrGraph *g = t->model;
    const IrNode *tok = rt_graph_token_input(g);
    const IrNode *logits = NULL;
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, "logits"))
            logits = g->outs[o].node;
    if (!tok || !logits || logits->shape.rank != 3 ||
        !ir_dim_is_const(logits->shape.d[2], &t->V)) {
        ir_error(err, "model '%s' cannot be pretrained: it needs an i32 token input read by a "
                 "gather and an output 'logits' [B,T,V]", t->model_name);
        ir_error_hint(err, "see models/gpt2-small.json and docs/training.md");
        return false;
    }
    t->tok_name = tok->name;
    return true;
}

/* --init-std GLOB=STD on the model's normal-init params (before any
 * program is built from it); a glob that matches none is an error. */
static bool apply_one_init(RtTrain *t, const char *spec, IrError *err)
{
    const char *eq = strrchr(spec, '=');
    char glob[256], *end;
    double std = eq ? strtod(eq + 1, &end) : -1;
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof glob || !eq[1] || *end || std < 0) {
        ir_error(err, "--init-std expects GLOB=STD with STD >= 0, got '%s'", spec);
        ir_error_hint(err, "for example --init-std '*_emb.weight=1'");
        return false;
    }
    snprintf(glob, sizeof glob, "%.*s", (int)(eq - spec), spec);
    int hits = 0;
    IrGraph *g = t->model;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (n->op == OP_PARAM && n->name && !fnmatch(glob, n->name, 0) &&
            !strcmp(ir_node_str(n, ATTR_INIT, ""), "normal"))
            ir_node_set_attr(g, n, ir_attr_float(ATTR_STD, std)), hits++;
    }
    if (hits)
        return true;
    ir_error(err, "--init-std %s: no param with a normal init matches '%s'", spec, glob);
    ir_error_hint(err, "`gradc check %s --params` lists the params and their inits",
                  t->model_name);
    return false;
}

static bool apply_init_std(RtTrain *t, IrError *err)
{
    for (int k = 0; k < t->o.ninit_std; k++)
        if (!apply_one_init(t, t->o.init_std[k], err))
            return false;
    return true;
}

/* The caller's model (RtTrainModel), copied. */
static bool load_model(RtTrain *t, IrError *err)
{
    const RtTrainModel *m = &t->o.model;
    if (!m->graph || !m->json) {
        ir_error(err, "internal: rt_train_new without a model (RtTrainOptions.model)");
        return false;
    }
    t->model_name = strdup(m->name ? m->name : m->graph->name);
    t->model_json = strdup(m->json);
    t->sets = strdup(m->sets ? m->sets : "{}");
    t->model = ir_graph_clone(m->graph);
    return find_io(t, err) && pick_context(t, err) && apply_init_std(t, err);
}

/* ---------------------------------------------------------------- data */

static bool make_tokenizer(RtTrain *t, const RtCkpt *c, const char *text, size_t len,
                           IrError *err)
{
    if (c) /* the checkpoint's, checked against the model (check_settings: against o) */
        return (t->tok = rt_ckpt_tokenizer(c, t->model, t->o.bpe_dir, err)) != NULL;
    if (t->o.tokenizer == RT_TOK_GPT2)
        t->tok = rt_tokenizer_gpt2(t->o.bpe_dir, err);
    else
        t->tok = rt_tokenizer_char(text, len, err);
    if (!t->tok)
        return false;
    int n = rt_tokenizer_vocab_size(t->tok);
    if (n <= t->V)
        return true;
    ir_error(err, "the %s tokenizer has %d tokens, but model '%s' has vocab_size %lld",
             rt_tok_kind_name(t->o.tokenizer), n, t->model_name, (long long)t->V);
    ir_error_hint(err, "pass --set vocab_size=%d", n);
    return false;
}

static bool load_data(RtTrain *t, const RtCkpt *c, IrError *err)
{
    const char *path = t->o.data_path ? t->o.data_path
                                      : c ? rt_ckpt_meta_get(c, "data.path") : NULL;
    if (!path) {
        ir_error(err, "no training text: pass --data FILE");
        return false;
    }
    t->data_path = strdup(path);
    size_t len;
    char *text = rt_file_read(path, &len, err);
    if (!text)
        return false;
    t->data_hash = rt_ckpt_hash(text, len);
    RtLoaderOptions lo = {t->T, t->stride, t->o.batch, !t->o.no_shuffle, true, t->o.seed};
    /* another text is refused by its hash before a char vocabulary can
     * fail on a character it lacks */
    bool ok = (!c || rt_train_check_data(t, c, err)) && make_tokenizer(t, c, text, len, err) &&
              rt_text_data_from(text, len, path, t->tok, t->o.train_frac, &lo, &t->data, err);
    free(text);
    return ok;
}

/* ---------------------------------------------------------------- graphs */

static PassCtx train_ctx(const RtTrainOptions *o, IrError *err)
{
    PassCtx ctx = pass_ctx_default(err);
    ctx.train.logits = "logits";
    ctx.train.ignore_index = RT_IGNORE_INDEX;
    ctx.train.beta1 = o->beta1;
    ctx.train.beta2 = o->beta2;
    ctx.train.eps = o->eps;
    ctx.train.weight_decay = o->weight_decay;
    ctx.train.clip_norm = o->clip;
    ctx.train.decay_all = o->decay_all;
    return ctx;
}

IrGraph *rt_graph_eval(const IrGraph *model, bool keep_logits, IrError *err)
{
    IrGraph *g = ir_graph_clone(model);
    pass_no_dropout(g);
    IrNode *logits = NULL;
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, "logits"))
            logits = g->outs[o].node;
    IrShape s = logits->shape;
    s.rank--;
    IrNode *in[2] = {logits, ir_input(g, "targets", DT_I32, s)};
    IrAttr a = ir_attr_int(ATTR_IGNORE_INDEX, RT_IGNORE_INDEX);
    IrNode *loss = ir_node_new(g, OP_CROSS_ENTROPY, in, 2, &a, 1, NULL, NULL, err);
    if (!loss) {
        ir_graph_free(g);
        return NULL;
    }
    g->nout = 0;
    ir_graph_add_output(g, "loss", loss);
    if (keep_logits)
        ir_graph_add_output(g, "logits", logits);
    return g;
}

void rt_graph_seed_dropouts(IrGraph *g, uint64_t seed)
{
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (!ir_op_drops(n->op))
            continue;
        uint64_t s = ir_splitmix64(seed ^ ir_splitmix64((uint64_t)ir_node_int(n, ATTR_SEED, 0)));
        ir_node_set_attr(g, n, ir_attr_int(ATTR_SEED, (int64_t)(s >> 1)));
    }
}

static bool need_passes(IrError *err)
{
    if (pass_lookup("autodiff") && pass_lookup("optimizer"))
        return true;
    ir_error(err, "this build of gradc has no autodiff/optimizer passes, so it cannot train");
    ir_error_hint(err, "build gradc from a tree with passes/autodiff.c and passes/optimizer.c");
    return false;
}

static bool bind(RtTrain *t, const IrGraph *g, IrError *err);

/* The pipelines run at the binding the programs will run at (B, T), so that
 * schedule and memplan weigh the real sizes. */
static bool build_graphs(RtTrain *t, IrError *err)
{
    if (!need_passes(err))
        return false;
    PassCtx ctx = train_ctx(&t->o, err);
    t->train_g = ir_graph_clone(t->model);
    rt_graph_seed_dropouts(t->train_g, t->o.seed);
    if (!bind(t, t->train_g, err))
        return false;
    ctx.binding = t->binding;
    if (!pass_run_compile(t->train_g, t->o.passes, true, &ctx))
        return false;
    t->eval_g = rt_graph_eval(t->model, false, err);
    PassCtx ectx = pass_ctx_default(err);
    ectx.binding = t->binding;
    return t->eval_g && bind(t, t->eval_g, err) &&
           pass_run_compile(t->eval_g, t->o.passes, false, &ectx);
}

/* ---------------------------------------------------------------- programs */

static bool bind(RtTrain *t, const IrGraph *g, IrError *err)
{
    memset(t->binding, 0, sizeof t->binding);
    for (int s = 0; s < g->nsym; s++) {
        bool b = !strcmp(g->sym[s], "B"), tt = !strcmp(g->sym[s], "T");
        t->binding[s] = b ? t->o.batch : tt ? t->T : 0;
        if (!b && !tt) {
            ir_error(err, "model '%s' has a symbol '%s' that training cannot bind",
                     t->model_name, g->sym[s]);
            ir_error_hint(err, "a trainable model's inputs use B (batch) and T (sequence)");
            return false;
        }
    }
    return true;
}

static RtExec *compile(RtTrain *t, const IrGraph *g, IrError *err)
{
    RtExecOptions eo = {.nthreads = t->o.threads};
    return bind(t, g, err) ? rt_exec_new(g, t->binding, &eo, err) : NULL;
}

bool rt_exec_set_scalar(RtExec *ex, const IrGraph *g, const char *name, double v,
                        IrError *err)
{
    const IrNode *n = ir_graph_find(g, OP_INPUT, name);
    if (!n || ir_node_numel_const(n) != 1) {
        ir_error(err, "internal: the train step has no scalar input '%s'", name);
        return false;
    }
    float f = (float)v;
    int32_t i = (int32_t)v;
    return rt_exec_set_input(ex, name, n->dtype == DT_I32 ? (void *)&i : (void *)&f, 4, err);
}

static bool check_train_graph(RtTrain *t, IrError *err)
{
    const char *need[] = {"targets", "lr", "step"};
    for (int k = 0; k < 3; k++)
        if (!ir_graph_find(t->train_g, OP_INPUT, need[k])) {
            ir_error(err, "internal: the train step has no input '%s'", need[k]);
            return false;
        }
    if (!rt_exec_output(t->train_ex, "loss", NULL)) {
        ir_error(err, "internal: the train step has no output 'loss'");
        return false;
    }
    return true;
}

static bool compile_train(RtTrain *t, IrError *err)
{
    t->train_ex = compile(t, t->train_g, err);
    t->x = calloc((size_t)(t->o.batch * t->T), sizeof *t->x);
    t->y = calloc((size_t)(t->o.batch * t->T), sizeof *t->y);
    return t->train_ex && check_train_graph(t, err);
}

/* ---------------------------------------------------------------- set-up */

static bool make_gen(RtTrain *t, IrError *err);

/* The eval program and, with --prompt, the sampler are built now, not at
 * their first use: a run must not fail to compile or to find memory for
 * them after hours of updates (the first evaluation of --eval-every 0 is
 * after the last step). */
static bool compile_others(RtTrain *t, IrError *err)
{
    if (t->o.no_files)    /* the determinism check: updates only */
        return true;
    if (!(t->eval_ex = compile(t, t->eval_g, err)))
        return false;
    return !t->o.prompt || make_gen(t, err);
}

/* The train and eval programs together must fit in the memory there was
 * before the run took any (the pages of a calloc'd arena count only once a
 * step touches them), checked on their plans before anything compiles;
 * rt_exec_new checks each program again as it allocates. */
static bool fit_together(RtTrain *t, int64_t avail, const char *source, IrError *err)
{
    const IrGraph *gs[2] = {t->train_g, t->eval_g};
    int ng = t->o.no_files ? 1 : 2;
    if (!bind(t, t->train_g, err))
        return false;
    int64_t need = rt_mem_planned(gs, ng, t->binding);
    return rt_mem_check_at(gs, ng, t->binding, need, avail, source,
                           ng == 2 ? "the train and eval programs together" : "the train step",
                           err);
}

static int64_t total_steps(const RtTrain *t)
{
    return t->o.steps > 0 ? t->o.steps : t->o.epochs * rt_loader_batches(t->data.train);
}

static void print_setup(RtTrain *t)
{
    const RtExecStats *s = rt_exec_stats(t->train_ex);
    fprintf(t->out, "model: %s  B=%lld T=%lld  tokenizer %s (%d tokens)\n", t->model_name,
            (long long)t->o.batch, (long long)t->T, rt_tok_kind_name(t->o.tokenizer),
            rt_tokenizer_vocab_size(t->tok));
    fprintf(t->out, "data: %s  train %lld tokens (%lld batches/epoch), val %lld tokens "
            "(%lld batches)\n", t->data_path, (long long)t->data.train_tokens,
            (long long)rt_loader_batches(t->data.train), (long long)t->data.val_tokens,
            t->data.val ? (long long)rt_loader_batches(t->data.val) : 0LL);
    fprintf(t->out, "train step: %d kernels, compiled in %.0f ms%s, arena %.1f MiB, params "
            "%.1f MiB, optimizer state %.1f MiB, %d threads, OpenBLAS %s\n", s->nkernels,
            s->compile_ms, s->cache_hit ? " (cache)" : "", s->peak_bytes / 1048576.0,
            s->param_bytes / 1048576.0, s->state_bytes / 1048576.0, s->nthreads,
            s->blas_core ? s->blas_core : "?");
    fprintf(t->out, "steps: %lld to %lld; checkpoint %s, log %s, plot %s\n",
            (long long)t->step, (long long)t->total, t->ckpt_path, t->csv_path, t->plot_path);
}

/* The progress lines and samples must have somewhere to go too: a full
 * disk or a read-only descriptor behind stdout is found before the first
 * update (a pipe closed later is main.c's to report, at the end). */
static bool check_progress_out(RtTrain *t, IrError *err)
{
    if (t->o.quiet && !t->o.prompt)
        return true;
    errno = 0;
    int fd = fileno(t->out), fl = 0;
    if (fflush(t->out) == 0 && !ferror(t->out) &&
        (fd < 0 || ((fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_ACCMODE) != O_RDONLY)))
        return true;
    ir_error(err, "cannot write the progress%s to %s: %s", t->o.prompt ? " and samples" : "",
             t->out == stdout ? "standard output" : "its stream",
             errno ? strerror(errno) : "it is not open for writing");
    ir_error_hint(err, "send standard output to a file or pipe that takes it%s",
                  t->o.prompt ? "" : ", or pass --quiet");
    return false;
}

/* --init-from: the checkpoint's tokenizer must be the run's (a char
 * vocabulary, built from the text, must be the same), then every param of
 * the train step comes from it. */
static bool init_tok_agrees(RtTrain *t, const RtCkpt *c, IrError *err)
{
    const char *name = rt_ckpt_meta_get(c, "tokenizer");
    RtTokKind kind;
    const RtCkptTensor *v = rt_ckpt_find(c, "tokenizer.char_vocab");
    if (name && rt_tok_kind_parse(name, &kind) && kind != t->o.tokenizer) {
        ir_error(err, "--init-from '%s' was trained with the %s tokenizer, this run uses %s",
                 c->path, name, rt_tok_kind_name(t->o.tokenizer));
        ir_error_hint(err, "pass --tokenizer %s", name);
        return false;
    }
    if (t->o.tokenizer != RT_TOK_CHAR || !v)
        return true;
    size_t n = 0;
    char *mine = rt_chartok_save(t->tok->chr, &n);
    bool same = (int64_t)n == v->bytes && !memcmp(mine, v->data, n);
    free(mine);
    if (!same) {
        ir_error(err, "--init-from '%s' has another character vocabulary than --data's text",
                 c->path);
        ir_error_hint(err, "a char model's token ids depend on its text: train on the same "
                      "text, or use the gpt2 tokenizer");
    }
    return same;
}

/* A weight of the checkpoint that the model lacks would be dropped without
 * a word (a model loaded with qkv_bias=0 from an imported GPT-2): for
 * `train`, unlike finetune's new head, that is an error. */
static bool init_all_used(RtTrain *t, const RtCkpt *c, IrError *err)
{
    for (int i = 0; i < c->n; i++) {
        const char *name = c->t[i].name;
        if (!strncmp(name, "adam.", 5) || !strncmp(name, "tokenizer.", 10))
            continue;
        bool used = false;
        for (int k = 0; k < t->train_g->nnodes && !used; k++) {
            const IrNode *n = t->train_g->nodes[k];
            used = n->op == OP_PARAM && !strcmp(n->name, name);
        }
        if (!used) {
            ir_error(err, "--init-from '%s' holds '%s', which the model has no param for",
                     c->path, name);
            ir_error_hint(err, "train the checkpoint's own model: leave out MODEL.json, or "
                          "match its settings (qkv_bias, tie_embeddings, n_layers)");
            return false;
        }
    }
    return true;
}

static bool init_from(RtTrain *t, const RtCkpt *c, IrError *err)
{
    RtInitFromStats st;
    if (!init_tok_agrees(t, c, err) || !init_all_used(t, c, err) ||
        !rt_params_init_from(t->train_ex, t->train_g, c, NULL, 0, &st, err))
        return false;
    if (!t->o.quiet)
        fprintf(t->out, "init: %d params (%lld values) from %s\n", st.copied,
                (long long)st.copied_values, c->path);
    return true;
}

static bool open_ckpt(const char *path, const RtCkpt *given, const RtCkpt **c, RtCkpt **own,
                      IrError *err)
{
    *c = given;
    if (!path || given)
        return true;
    if (!(*c = *own = rt_ckpt_read(path, err)))
        return false;
    rt_ckpt_print_warnings(*own, stderr);
    return true;
}

RtTrain *rt_train_new(const RtTrainOptions *o, IrError *err)
{
    char msource[1000] = "";
    int64_t avail = rt_mem_available(msource, sizeof msource);
    RtTrain *t = calloc(1, sizeof *t);
    t->o = *o;
    t->out = o->out ? o->out : stdout;
    RtCkpt *own = NULL, *own_init = NULL;
    const RtCkpt *c = NULL, *ci = NULL;
    bool ok = !o->resume || !o->init_from;
    if (!ok)
        ir_error(err, "--resume and --init-from together: a run continues or starts anew");
    ok = ok && open_ckpt(o->resume, o->resume_ckpt, &c, &own, err) &&
         open_ckpt(o->init_from, o->init_from_ckpt, &ci, &own_init, err);
    ok = ok && (!c || rt_train_ckpt_check(c, err)) && load_model(t, err);
    t->stride = t->o.stride > 0 ? t->o.stride : t->T;
    ok = ok && load_data(t, c, err) && build_graphs(t, err) &&
         fit_together(t, avail, msource, err) && compile_train(t, err);
    if (ok)
        rt_exec_init_params(t->train_ex, t->o.seed);
    ok = ok && (!c || rt_train_restore(t, c, err)) && (!ci || init_from(t, ci, err));
    if (ok)
        rt_train_set_run_id(t, c);
    ok = ok && (o->no_files || rt_train_prepare_outputs(t, c, err)) && compile_others(t, err);
    rt_ckpt_free(own);
    rt_ckpt_free(own_init);
    if (!ok) {
        rt_train_free(t);
        return NULL;
    }
    t->total = total_steps(t);
    t->t_start = rt_train_now();
    t->tokens_at_start = t->tokens;
    t->step_at_start = t->step;
    if (!t->o.quiet)
        print_setup(t);
    if (!check_progress_out(t, err)) {
        rt_train_free(t);
        return NULL;
    }
    return t;
}

void rt_train_free(RtTrain *t)
{
    if (!t)
        return;
    rt_gen_free(t->gen);
    rt_exec_free(t->train_ex);
    rt_exec_free(t->eval_ex);
    ir_graph_free(t->train_g);
    ir_graph_free(t->eval_g);
    rt_text_data_free(&t->data);
    rt_tokenizer_free(t->tok);
    ir_graph_free(t->model);
    free(t->sets);
    free(t->model_json);
    free(t->model_name);
    free(t->data_path);
    free(t->x);
    free(t->y);
    free(t->hist);
    free(t);
}

/* ---------------------------------------------------------------- steps */

static bool set_batch(RtTrain *t, RtExec *ex, RtLoader *l, int64_t epoch, int64_t b,
                      int64_t *rows, IrError *err)
{
    int64_t bytes = t->o.batch * t->T * 4;
    *rows = rt_loader_get(l, epoch, b, t->x, t->y);
    return rt_exec_set_input(ex, t->tok_name, t->x, bytes, err) &&
           rt_exec_set_input(ex, "targets", t->y, bytes, err);
}

static bool read_loss(RtExec *ex, int64_t step, double *loss, IrError *err)
{
    *loss = *(const float *)rt_exec_output(ex, "loss", NULL);
    if (isfinite(*loss))
        return true;
    ir_error(err, "the loss is %g at step %lld: training diverged", *loss, (long long)step);
    ir_error_hint(err, "lower --lr, add --warmup N or --clip 1.0, or resume from an earlier "
                  "checkpoint");
    return false;
}

bool rt_train_step(RtTrain *t, double *loss, IrError *err)
{
    int64_t rows;
    double t0 = rt_train_now();
    double lr = rt_train_lr(&t->o, t->step, t->total);
    bool ok = set_batch(t, t->train_ex, t->data.train, t->epoch, t->batch, &rows, err) &&
              rt_exec_set_scalar(t->train_ex, t->train_g, "lr", lr, err) &&
              rt_exec_set_scalar(t->train_ex, t->train_g, "step", (double)(t->step + 1), err) &&
              rt_exec_run(t->train_ex, err) && read_loss(t->train_ex, t->step, loss, err);
    if (!ok)
        return false;
    const float *gn = rt_exec_output(t->train_ex, "grad_norm", NULL);
    t->gnorm = gn ? *gn : NAN;
    t->tokens += rows * t->T;
    t->step++;
    if (++t->batch == rt_loader_batches(t->data.train))
        t->batch = 0, t->epoch++;
    t->t_train += rt_train_now() - t0;
    return true;
}

bool rt_train_eval(RtTrain *t, bool val, int64_t n, double *loss, IrError *err)
{
    RtLoader *l = val ? t->data.val : t->data.train;
    *loss = NAN;
    if (!l)
        return true;
    if (!t->eval_ex && !(t->eval_ex = compile(t, t->eval_g, err)))
        return false;
    if (!rt_exec_params_copy(t->eval_ex, t->eval_g, t->train_ex, err))
        return false;
    int64_t nb = rt_loader_batches(l), rows;
    nb = n > 0 && n < nb ? n : nb;
    double sum = 0;
    for (int64_t b = 0; b < nb; b++) {
        if (!set_batch(t, t->eval_ex, l, val ? 0 : t->epoch, b, &rows, err) ||
            !rt_exec_run(t->eval_ex, err))
            return false;
        sum += *(const float *)rt_exec_output(t->eval_ex, "loss", NULL);
    }
    *loss = nb ? sum / (double)nb : NAN;
    return true;
}

int64_t rt_train_total_steps(const RtTrain *t)
{
    return t->total;
}

const RtEvalPoint *rt_train_history(const RtTrain *t, int *n)
{
    *n = t->nhist;
    return t->hist;
}

/* ---------------------------------------------------------------- progress */

static void fmt_duration(double s, char *buf, size_t cap)
{
    long v = (long)(s + 0.5);
    if (v >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", v / 60, v % 60);
}

/* The epoch (1-based, as the book prints it) of the update just done. */
static int64_t done_epoch(const RtTrain *t)
{
    return t->batch == 0 ? t->epoch : t->epoch + 1;
}

static void progress(RtTrain *t, double loss, const RtEvalPoint *p)
{
    double wall = rt_train_now() - t->t_start;
    int64_t here = t->step - t->step_at_start;
    double tps = t->t_train > 0 ? (double)(t->tokens - t->tokens_at_start) / t->t_train : 0;
    char eta[32];
    fmt_duration(here > 0 ? wall / (double)here * (double)(t->total - t->step) : 0, eta,
                 sizeof eta);
    fprintf(t->out, "step %5lld | epoch %2lld | tokens %8lld | loss %.3f", (long long)t->step - 1,
            (long long)done_epoch(t), (long long)t->tokens, loss);
    if (p && isfinite(p->val))
        fprintf(t->out, " | train %.3f | val %.3f", p->train, p->val);
    else if (p)
        fprintf(t->out, " | train %.3f | val -", p->train);
    if (isfinite(t->gnorm))
        fprintf(t->out, " | gnorm %.3g", t->gnorm);
    fprintf(t->out, " | lr %.2e | %.0f tok/s | ETA %s\n",
            rt_train_lr(&t->o, t->step - 1, t->total), tps, eta);
    fflush(t->out);
}

/* ---------------------------------------------------------------- the loop */

/* Evaluates both splits, records the point, rewrites the CSV and plot. */
static bool evaluate(RtTrain *t, RtEvalPoint *p, IrError *err)
{
    *p = (RtEvalPoint){.step = t->step - 1, .epoch = done_epoch(t), .tokens = t->tokens,
                       .lr = rt_train_lr(&t->o, t->step - 1, t->total)};
    if (!rt_train_eval(t, false, t->o.eval_batches, &p->train, err) ||
        !rt_train_eval(t, true, t->o.eval_batches, &p->val, err))
        return false;
    p->seconds = t->seconds + rt_train_now() - t->t_start;
    rt_train_add_point(t, p);
    return t->o.no_files || rt_train_write_logs(t, false, err);
}

/* Greedy continuation of --prompt, printed on one line (the book's
 * generate_and_print_sample). */
static bool make_gen(RtTrain *t, IrError *err)
{
    t->gen = rt_gen_new(t->model, t->T, true, &(RtExecOptions){.nthreads = t->o.threads},
                        err);
    return t->gen != NULL;
}

static bool sample(RtTrain *t, IrError *err)
{
    if (!t->gen && !make_gen(t, err))
        return false;
    int32_t *ids, *out = NULL;
    size_t n, nout;
    RtSampler s;
    rt_sampler_init(&s, 0, 0, t->o.seed);
    RtGenOptions go = {t->o.sample_tokens, rt_tokenizer_eot(t->tok), NULL, NULL, NULL};
    if (!rt_tokenizer_encode(t->tok, t->o.prompt, strlen(t->o.prompt), true, &ids, &n, err))
        return false;
    if (n == 0) {
        free(ids);
        ir_error(err, "--prompt is empty");
        return false;
    }
    bool ok = rt_gen_params_from_exec(t->gen, t->train_ex, err) &&
              rt_gen_run(t->gen, &s, ids, n, &go, &out, &nout, err);
    char *text = ok ? rt_tokenizer_decode(t->tok, out, nout, NULL, err) : NULL;
    for (char *c = text; c && *c; c++)
        *c = *c == '\n' ? ' ' : *c;
    if (text)
        fprintf(t->out, "sample: %s%s\n", t->o.prompt, text);
    free(ids);
    free(out);
    bool printed = text != NULL;
    free(text);
    return printed;
}

static bool want_sample(const RtTrain *t)
{
    if (!t->o.prompt)
        return false;
    if (t->o.sample_every > 0)
        return t->step % t->o.sample_every == 0;
    return t->batch == 0;   /* the end of an epoch */
}

/* Everything after update number t->step - 1. */
static bool after_step(RtTrain *t, double loss, IrError *err)
{
    int64_t s = t->step - 1;
    RtEvalPoint p;
    bool eval = t->o.eval_every > 0 && s % t->o.eval_every == 0;
    if (eval && !evaluate(t, &p, err))
        return false;
    if (!t->o.quiet && (eval || (t->o.log_every > 0 && t->step % t->o.log_every == 0) ||
                        t->step == t->total))
        progress(t, loss, eval ? &p : NULL);
    if (want_sample(t) && !sample(t, err))
        return false;
    if (t->o.save_every > 0 && t->step % t->o.save_every == 0 && t->step < t->total)
        return rt_train_checkpoint(t, false, err);
    return true;
}

static void summary(RtTrain *t)
{
    double wall = rt_train_now() - t->t_start;
    int64_t tok = t->tokens - t->tokens_at_start;
    fprintf(t->out, "done: %lld steps, %lld tokens in %.1f s (%.1f s in updates: %.0f tok/s); "
            "checkpoint %s\n", (long long)(t->step - t->step_at_start), (long long)tok, wall,
            t->t_train, t->t_train > 0 ? (double)tok / t->t_train : 0, t->ckpt_path);
}

/* A resumed run already at (or past) its last step: nothing is trained or
 * written, and the run says so even under --quiet. */
static bool nothing_to_do(RtTrain *t)
{
    if (t->step < t->total)
        return false;
    fprintf(t->o.quiet ? stderr : t->out, "nothing to do: %s is at step %lld, and this run "
            "ends at step %lld (pass a larger --steps or --epochs to train on)\n",
            t->o.resume ? t->o.resume : "the run", (long long)t->step, (long long)t->total);
    return true;
}

bool rt_train_run(RtTrain *t, IrError *err)
{
    double loss = NAN;
    if (nothing_to_do(t))
        return true;
    while (t->step < t->total)
        if (!rt_train_step(t, &loss, err) || !after_step(t, loss, err))
            return false;
    RtEvalPoint p;
    if (t->o.eval_every == 0 && t->step > t->step_at_start && !evaluate(t, &p, err))
        return false;
    /* val is nan without a split */
    if (t->o.eval_every == 0 && !t->o.quiet && t->step > t->step_at_start)
        fprintf(t->out, "final: train %.3f | val %.3f\n", p.train, p.val);
    if (!rt_train_checkpoint(t, true, err))
        return false;
    if (!t->o.quiet)
        summary(t);
    return rt_train_write_logs(t, true, err);
}
