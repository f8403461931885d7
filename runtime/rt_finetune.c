/* rt_finetune.c — the fine-tuning loop (rt_finetune.h).
 *
 * It is the book's train_classifier_simple (chapter 6) with the task taken
 * out: the batches come from the caller's source, the figure besides the
 * loss from the caller's metric, so that classification (chapter 6) and
 * instruction tuning (chapter 7) share it.
 *
 *   set-up   copy the model; params outside the trainable set get
 *            trainable = 0, so autodiff (passes/autodiff.c) gives them no
 *            gradient and the optimizer (passes/optimizer.c) no moments: the
 *            train step compiles smaller; the eval forward keeps logits;
 *            params: the seeded init, then the init checkpoint by name
 *   update   fill(train, epoch, b); lr and step (AdamW's t, from 1); run
 *   epoch    after the last batch of an epoch (and after the last update
 *            of a run that stops mid-epoch): loss and metric of each split
 *            over eval_batches batches, a line, the log and the plots;
 *            optionally also before the first update and every eval_every
 *            updates (over eval_iter batches), as the book's chapter 7
 *   end      the checkpoint (rt_finetune_io.c)
 *
 * The weights live in the train program; the eval program gets a copy of
 * every param before each evaluation.
 */
#define _GNU_SOURCE
#include "runtime/rt_finetune_int.h"

#include "passes/pass.h"
#include "runtime/rt_train.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

RtFtOptions rt_ft_defaults(void)
{
    return (RtFtOptions){.batch = 8, .epochs = 5, .lr = 5e-5, .weight_decay = 0.1,
                         .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .seed = 123};
}

const char *rt_ft_split_name(RtFtSplit s)
{
    static const char *const names[RT_FT_NSPLIT] = {"train", "val", "test"};
    return s < RT_FT_NSPLIT ? names[s] : "?";
}

/* ---------------------------------------------------------------- trainable set */

static bool any_match(const char *name, const char *const *globs, int n)
{
    for (int k = 0; k < n; k++)
        if (!fnmatch(globs[k], name, 0))
            return true;
    return false;
}

/* A glob of the set that matches no param of g: a typo must not train
 * something else silently. */
static bool check_globs(const IrGraph *g, const char *flag, const char *const *globs, int n,
                        IrError *err)
{
    for (int k = 0; k < n; k++) {
        bool hit = false;
        for (int i = 0; i < g->nnodes && !hit; i++) {
            const IrNode *p = g->nodes[i];
            hit = p->op == OP_PARAM && p->name && !fnmatch(globs[k], p->name, 0);
        }
        if (!hit) {
            ir_error(err, "%s '%s' matches no param of model '%s'", flag, globs[k],
                     g->name ? g->name : "?");
            ir_error_hint(err, "`gradc check MODEL --params` lists the param names");
            return false;
        }
    }
    return true;
}

bool rt_ft_apply_trainable(IrGraph *g, const char *const *trainable, int nt,
                           const char *const *freeze, int nf, int64_t *count, IrError *err)
{
    if (!check_globs(g, "--trainable", trainable, nt, err) ||
        !check_globs(g, "--freeze", freeze, nf, err))
        return false;
    int64_t n = 0;
    PassTrainOpts none = {0};
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *p = g->nodes[i];
        if (p->op != OP_PARAM || !p->name)
            continue;
        bool on = (nt == 0 || any_match(p->name, trainable, nt)) &&
                  !any_match(p->name, freeze, nf);
        if (!on)
            ir_node_set_attr(g, p, ir_attr_int(ATTR_TRAINABLE, 0));
        n += pass_param_trainable(p, &none) ? ir_node_numel_const(p) : 0;
    }
    if (count)
        *count = n;
    if (n > 0)
        return true;
    ir_error(err, "no param of model '%s' is left to train", g->name ? g->name : "?");
    ir_error_hint(err, "check the --trainable and --freeze globs against `gradc check MODEL "
                  "--params`");
    return false;
}

/* ---------------------------------------------------------------- programs */

static bool bind(RtFt *ft, const IrGraph *g, IrError *err)
{
    memset(ft->binding, 0, sizeof ft->binding);
    for (int s = 0; s < g->nsym; s++) {
        bool b = !strcmp(g->sym[s], "B"), t = !strcmp(g->sym[s], "T");
        ft->binding[s] = b ? ft->o.batch : t ? ft->o.T : 0;
        if (!b && !t) {
            ir_error(err, "model '%s' has a symbol '%s' that fine-tuning cannot bind",
                     ft->o.model.name, g->sym[s]);
            ir_error_hint(err, "a model to fine-tune has inputs of B (batch) and T (sequence)");
            return false;
        }
    }
    return true;
}

static PassCtx train_ctx(const RtFtOptions *o, IrError *err)
{
    PassCtx ctx = pass_ctx_default(err);
    ctx.train.logits = "logits";
    ctx.train.ignore_index = RT_IGNORE_INDEX;
    ctx.train.beta1 = o->beta1;
    ctx.train.beta2 = o->beta2;
    ctx.train.eps = o->eps;
    ctx.train.weight_decay = o->weight_decay;
    ctx.train.clip_norm = o->clip;
    ctx.train.decay_all = true;    /* torch.optim.AdamW decays every param it is given */
    return ctx;
}

static bool has_logits(const RtFt *ft, IrError *err)
{
    for (int o = 0; o < ft->model->nout; o++)
        if (!strcmp(ft->model->outs[o].name, "logits") &&
            ft->model->outs[o].node->shape.rank >= 2)
            return true;
    ir_error(err, "model '%s' has no output 'logits' [B, ..., C] to fine-tune",
             ft->o.model.name);
    ir_error_hint(err, "see models/gpt2-classifier.json");
    return false;
}

static bool build_graphs(RtFt *ft, IrError *err)
{
    if (!pass_lookup("autodiff") || !pass_lookup("optimizer")) {
        ir_error(err, "this build of gradc has no autodiff/optimizer passes, so it cannot "
                 "fine-tune");
        return false;
    }
    PassCtx ctx = train_ctx(&ft->o, err);
    ft->train_g = ir_graph_clone(ft->model);
    rt_graph_seed_dropouts(ft->train_g, ft->o.seed);
    if (!bind(ft, ft->train_g, err))
        return false;
    ctx.binding = ft->binding;
    if (!pass_run_compile(ft->train_g, ft->o.passes, true, &ctx))
        return false;
    ft->eval_g = rt_graph_eval(ft->model, true, err);
    PassCtx ectx = pass_ctx_default(err);
    ectx.binding = ft->binding;
    return ft->eval_g && bind(ft, ft->eval_g, err) &&
           pass_run_compile(ft->eval_g, ft->o.passes, false, &ectx);
}

static RtExec *compile(RtFt *ft, const IrGraph *g, IrError *err)
{
    RtExecOptions eo = {.nthreads = ft->o.threads};
    return bind(ft, g, err) ? rt_exec_new(g, ft->binding, &eo, err) : NULL;
}

/* Both programs must fit in the memory there was before either took any. */
static bool compile_all(RtFt *ft, IrError *err)
{
    char source[1000] = "";
    int64_t avail = rt_mem_available(source, sizeof source);
    const IrGraph *gs[2] = {ft->train_g, ft->eval_g};
    if (!bind(ft, ft->train_g, err))
        return false;
    int64_t need = rt_mem_planned(gs, 2, ft->binding);
    if (!rt_mem_check_at(gs, 2, ft->binding, need, avail, source,
                         "the fine-tuning train and eval programs together", err))
        return false;
    return (ft->train_ex = compile(ft, ft->train_g, err)) &&
           (ft->eval_ex = compile(ft, ft->eval_g, err));
}

static bool init_params(RtFt *ft, IrError *err)
{
    rt_exec_init_params(ft->train_ex, ft->o.seed);
    if (!ft->o.init)
        return true;
    RtInitFromStats st;
    if (!rt_params_init_from(ft->train_ex, ft->train_g, ft->o.init, ft->o.new_params,
                             ft->o.nnew, &st, err))
        return false;
    if (!ft->o.quiet)
        fprintf(ft->out, "init: %d params (%lld values) from %s, %d new\n", st.copied,
                (long long)st.copied_values, ft->o.init->path, st.kept);
    return true;
}

/* ---------------------------------------------------------------- set-up */

static void count_params(RtFt *ft)
{
    PassTrainOpts none = {0};
    for (int i = 0; i < ft->model->nnodes; i++) {
        const IrNode *p = ft->model->nodes[i];
        if (p->op != OP_PARAM)
            continue;
        int64_t k = ir_node_numel_const(p);
        ft->total_params += k;
        if (pass_param_trainable(p, &none))
            ft->ntrainable++;
    }
}

static bool plan_steps(RtFt *ft, IrError *err)
{
    ft->per_epoch = ft->o.source.batches(ft->o.source.ctx, RT_FT_TRAIN);
    if (ft->per_epoch <= 0) {
        ir_error(err, "the training set has no full batch of %lld examples",
                 (long long)ft->o.batch);
        ir_error_hint(err, "lower --batch, or give more training examples");
        return false;
    }
    ft->total = ft->o.steps > 0 ? ft->o.steps : ft->o.epochs * ft->per_epoch;
    return true;
}

static void print_setup(RtFt *ft)
{
    const RtExecStats *s = rt_exec_stats(ft->train_ex);
    fprintf(ft->out, "trainable: %lld of %lld params (%.2f%%) in %d tensors\n",
            (long long)ft->trainable, (long long)ft->total_params,
            100.0 * (double)ft->trainable / (double)(ft->total_params ? ft->total_params : 1),
            ft->ntrainable);
    fprintf(ft->out, "train step: B=%lld T=%lld, %d kernels, compiled in %.0f ms%s, arena %.1f "
            "MiB, params %.1f MiB, optimizer state %.1f MiB, %d threads\n",
            (long long)ft->o.batch, (long long)ft->o.T, s->nkernels, s->compile_ms,
            s->cache_hit ? " (cache)" : "", s->peak_bytes / 1048576.0,
            s->param_bytes / 1048576.0, s->state_bytes / 1048576.0, s->nthreads);
    fprintf(ft->out, "updates: %lld (%lld per epoch, lr %g)%s%s\n", (long long)ft->total,
            (long long)ft->per_epoch, ft->o.lr, ft->ckpt_path[0] ? "; checkpoint " : "",
            ft->ckpt_path);
}

static bool load_model(RtFt *ft, IrError *err)
{
    if (!ft->o.model.graph || !ft->o.source.batches || !ft->o.source.fill) {
        ir_error(err, "internal: rt_ft_new without a model or a batch source");
        return false;
    }
    ft->model = ir_graph_clone(ft->o.model.graph);
    return has_logits(ft, err) &&
           rt_ft_apply_trainable(ft->model, ft->o.trainable, ft->o.ntrainable, ft->o.freeze,
                                 ft->o.nfreeze, &ft->trainable, err);
}

RtFt *rt_ft_new(const RtFtOptions *o, IrError *err)
{
    RtFt *ft = calloc(1, sizeof *ft);
    ft->o = *o;
    ft->out = o->out ? o->out : stdout;
    bool ok = load_model(ft, err) && plan_steps(ft, err) && build_graphs(ft, err) &&
              rt_ft_prepare_outputs(ft, err) && compile_all(ft, err) && init_params(ft, err);
    if (!ok) {
        rt_ft_free(ft);
        return NULL;
    }
    count_params(ft);
    if (!o->quiet)
        print_setup(ft);
    return ft;
}

void rt_ft_free(RtFt *ft)
{
    if (!ft)
        return;
    rt_exec_free(ft->train_ex);
    rt_exec_free(ft->eval_ex);
    ir_graph_free(ft->train_g);
    ir_graph_free(ft->eval_g);
    ir_graph_free(ft->model);
    free(ft->up);
    free(ft->hist);
    free(ft);
}

/* ---------------------------------------------------------------- evaluation */

static bool eval_split(RtFt *ft, RtFtSplit s, int64_t n, double *loss, double *metric,
                       IrError *err)
{
    const RtFtSource *src = &ft->o.source;
    int64_t nb = src->batches(src->ctx, s), rows;
    nb = n > 0 && n < nb ? n : nb;
    double sum = 0, hits = 0, total = 0;
    for (int64_t b = 0; b < nb; b++) {
        if (!src->fill(src->ctx, ft->eval_ex, s, ft->epoch, b, &rows, err) ||
            !rt_exec_run(ft->eval_ex, err))
            return false;
        sum += *(const float *)rt_exec_output(ft->eval_ex, "loss", NULL);
        if (ft->o.metric.add)
            ft->o.metric.add(ft->o.metric.ctx, ft->eval_ex, &hits, &total);
    }
    *loss = nb ? sum / (double)nb : NAN;
    *metric = total > 0 ? hits / total : NAN;
    return true;
}

/* Evaluates splits [0, nsplit) over up to n batches each; the others NaN. */
static bool evaluate(RtFt *ft, int64_t n, int nsplit, RtFtEval *e, IrError *err)
{
    *e = (RtFtEval){.step = ft->step - 1,
                    .epoch = ft->batch == 0 ? ft->epoch : ft->epoch + 1};
    for (int s = 0; s < RT_FT_NSPLIT; s++)
        e->loss[s] = e->metric[s] = NAN;
    if (!rt_exec_params_copy(ft->eval_ex, ft->eval_g, ft->train_ex, err))
        return false;
    for (int s = 0; s < nsplit; s++)
        if (!eval_split(ft, (RtFtSplit)s, n, &e->loss[s], &e->metric[s], err))
            return false;
    return true;
}

bool rt_ft_evaluate(RtFt *ft, int64_t n, RtFtEval *e, IrError *err)
{
    return evaluate(ft, n, RT_FT_NSPLIT, e, err);
}

const RtFtEval *rt_ft_history(const RtFt *ft, int *n)
{
    *n = ft->nhist;
    return ft->hist;
}

RtExec *rt_ft_train_exec(RtFt *ft)
{
    return ft->train_ex;
}

int64_t rt_ft_trainable(const RtFt *ft, int *tensors)
{
    if (tensors)
        *tensors = ft->ntrainable;
    return ft->trainable;
}

const char *rt_ft_ckpt_path(const RtFt *ft)
{
    return ft->ckpt_path;
}

/* ---------------------------------------------------------------- updates */

static bool step(RtFt *ft, double *loss, IrError *err)
{
    const RtFtSource *src = &ft->o.source;
    int64_t rows;
    double t0 = rt_ft_now();
    bool ok = src->fill(src->ctx, ft->train_ex, RT_FT_TRAIN, ft->epoch, ft->batch, &rows,
                        err) &&
              rt_exec_set_scalar(ft->train_ex, ft->train_g, "lr", ft->o.lr, err) &&
              rt_exec_set_scalar(ft->train_ex, ft->train_g, "step", (double)(ft->step + 1),
                                 err) &&
              rt_exec_run(ft->train_ex, err);
    if (!ok)
        return false;
    *loss = *(const float *)rt_exec_output(ft->train_ex, "loss", NULL);
    ft->t_train += rt_ft_now() - t0;
    if (!isfinite(*loss)) {
        ir_error(err, "the loss is %g at update %lld: fine-tuning diverged", *loss,
                 (long long)ft->step);
        ir_error_hint(err, "lower --lr");
        return false;
    }
    if (ft->nup == ft->capup) {
        ft->capup = ft->capup ? 2 * ft->capup : 256;
        ft->up = realloc(ft->up, sizeof *ft->up * (size_t)ft->capup);
    }
    ft->up[ft->nup++] = (RtFtUpdate){ft->step, ft->epoch + 1, *loss, ft->o.lr};
    ft->step++;
    if (++ft->batch == ft->per_epoch)
        ft->batch = 0, ft->epoch++;
    return true;
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

/* A bar redrawn in place on a terminal; elsewhere (a log file, a pipe) a
 * line every tenth of an epoch. */
static void progress(RtFt *ft, double loss)
{
    int64_t done = ft->batch == 0 ? ft->per_epoch : ft->batch;
    int64_t in_epoch = ft->per_epoch;
    bool tty = isatty(fileno(ft->out));
    int64_t every = in_epoch / 10 > 0 ? in_epoch / 10 : 1;
    if (!tty && done % every != 0 && done != in_epoch)
        return;
    double wall = rt_ft_now() - ft->t_start;
    char eta[32], bar[32];
    fmt_duration(wall / (double)ft->step * (double)(ft->total - ft->step), eta, sizeof eta);
    int fill = (int)(20 * done / in_epoch);
    for (int k = 0; k < 20; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(ft->out, "%sepoch %lld [%s] %lld/%lld | step %lld/%lld | loss %.3f | %.1f ms/step "
            "| ETA %s%s", tty ? "\r" : "", (long long)(ft->batch == 0 ? ft->epoch : ft->epoch + 1),
            bar, (long long)done, (long long)in_epoch, (long long)ft->step, (long long)ft->total,
            loss, 1e3 * ft->t_train / (double)ft->step, eta, tty ? "\033[K" : "\n");
    if (tty && done == in_epoch)
        fputc('\n', ft->out);
    fflush(ft->out);
}

/* "start:" before the first update, "epoch E:" at the end of an epoch (or
 * of the run), "epoch E step S:" (S updates done) in between. */
static void print_eval(RtFt *ft, const RtFtEval *e, bool epoch_end)
{
    const char *mname = ft->o.metric.name ? ft->o.metric.name : "";
    if (e->step < 0)
        fprintf(ft->out, "start:");
    else if (epoch_end)
        fprintf(ft->out, "epoch %lld:", (long long)e->epoch);
    else
        fprintf(ft->out, "epoch %lld step %lld:", (long long)e->epoch, (long long)e->step + 1);
    int nsplit = e->step >= 0 && !epoch_end ? RT_FT_TEST : RT_FT_NSPLIT;
    for (int s = 0; s < nsplit; s++) {
        fprintf(ft->out, "%s %s loss ", s ? " |" : "", rt_ft_split_name((RtFtSplit)s));
        fprintf(ft->out, isfinite(e->loss[s]) ? "%.3f" : "-", e->loss[s]);
        if (ft->o.metric.add) {
            fprintf(ft->out, " %s ", mname);
            fprintf(ft->out, isfinite(e->metric[s]) ? "%.3f" : "-", e->metric[s]);
        }
    }
    fprintf(ft->out, "\n");
    fflush(ft->out);
}

/* ---------------------------------------------------------------- the loop */

/* Evaluates over nb batches per split, records, prints and logs it.  The
 * evaluations within an epoch skip the test split, as the book's chapter 7
 * (train and val). */
static bool record_eval(RtFt *ft, int64_t nb, bool epoch_end, IrError *err)
{
    RtFtEval e;
    bool within = !epoch_end && ft->step > 0;
    if (!evaluate(ft, nb, within ? RT_FT_TEST : RT_FT_NSPLIT, &e, err))
        return false;
    if (ft->nhist == ft->caphist) {
        ft->caphist = ft->caphist ? 2 * ft->caphist : 16;
        ft->hist = realloc(ft->hist, sizeof *ft->hist * (size_t)ft->caphist);
    }
    ft->hist[ft->nhist++] = e;
    if (!ft->o.quiet)
        print_eval(ft, &e, epoch_end);
    return rt_ft_write_logs(ft, err);
}

/* After an update: the end of an epoch (or of the run) evaluates over
 * eval_batches, every eval_every-th update within an epoch over eval_iter. */
static bool after_update(RtFt *ft, IrError *err)
{
    if (ft->batch == 0 || ft->step == ft->total)
        return record_eval(ft, ft->o.eval_batches, true, err);
    if (ft->o.eval_every > 0 && ft->step % ft->o.eval_every == 0)
        return record_eval(ft, ft->o.eval_iter, false, err);
    return true;
}

bool rt_ft_run(RtFt *ft, IrError *err)
{
    double loss;
    ft->t_start = rt_ft_now();
    if (ft->o.eval_at_start && ft->step == 0 && !record_eval(ft, ft->o.eval_batches, false, err))
        return false;
    while (ft->step < ft->total) {
        if (!step(ft, &loss, err))
            return false;
        if (!ft->o.quiet)
            progress(ft, loss);
        if (!after_update(ft, err))
            return false;
    }
    if (!rt_ft_checkpoint(ft, err))
        return false;
    if (!ft->o.quiet)
        fprintf(ft->out, "done: %lld updates in %.1f s (%.1f ms per update)%s%s\n",
                (long long)ft->step, rt_ft_now() - ft->t_start,
                ft->step ? 1e3 * ft->t_train / (double)ft->step : 0.0,
                ft->ckpt_path[0] ? "; checkpoint " : "", ft->ckpt_path);
    return true;
}
