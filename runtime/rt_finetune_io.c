/* rt_finetune_io.c — what a fine-tuning run writes: the checkpoint, log.csv
 * and the plots (the formats are in rt_finetune.h).
 *
 * Everything that can be checked is checked before the first update: the
 * folder is created, each file must be writable (ir_outfile_check), and a
 * checkpoint already in the folder is another run's, which is not
 * overwritten without force.  Files are written atomically (rt_ckpt.c,
 * ir/outfile.c).  A checkpoint that cannot be written at the end is retried
 * once and then saved under $TMPDIR/gradc-rescue (or /tmp/gradc-rescue):
 * the run fails, but the weights are not lost.
 */
#define _GNU_SOURCE
#include "runtime/rt_finetune_int.h"

#include "ir/outfile.h"
#include "runtime/rt_train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double rt_ft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- outputs */

static bool refuse_existing(const RtFt *ft, IrError *err)
{
    struct stat st;
    if (ft->o.force || stat(ft->ckpt_path, &st) != 0)
        return true;
    ir_error(err, "'%s' exists (the checkpoint of an earlier run); this run would overwrite it",
             ft->ckpt_path);
    ir_error_hint(err, "pass another --out DIR, or --force to overwrite it");
    return false;
}

bool rt_ft_prepare_outputs(RtFt *ft, IrError *err)
{
    const char *d = ft->o.out_dir;
    if (!d)
        return true;
    snprintf(ft->ckpt_path, sizeof ft->ckpt_path, "%.4000s/ckpt.safetensors", d);
    snprintf(ft->csv_path, sizeof ft->csv_path, "%.4000s/log.csv", d);
    snprintf(ft->plot_path, sizeof ft->plot_path, "%.4000s/curves.svg", d);
    snprintf(ft->acc_path, sizeof ft->acc_path, "%.4000s/accuracy.svg", d);
    if (!rt_make_dirs(d, err) || !refuse_existing(ft, err))
        return false;
    const char *paths[4] = {ft->ckpt_path, ft->csv_path, ft->plot_path, ft->acc_path};
    const char *what[4] = {"checkpoint", "CSV log", "loss plot", "accuracy plot"};
    for (int k = 0; k < 4; k++) {
        ir_outfile_clean_stale(paths[k], ft->o.quiet ? NULL : ft->out);
        if (!ir_outfile_check(paths[k], what[k], err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- log.csv */

static void cell(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.6f", v);
    else
        fprintf(f, ",");
}

static void eval_row(FILE *f, const RtFtEval *e)
{
    fprintf(f, "%lld,%lld,,", (long long)e->step, (long long)e->epoch);
    for (int s = 0; s < RT_FT_NSPLIT; s++) {
        cell(f, e->loss[s]);
        cell(f, e->metric[s]);
    }
    fprintf(f, "\n");
}

/* Update rows and, after the last update of each evaluation, its row. */
static bool write_csv(RtFt *ft, IrError *err)
{
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, ft->csv_path, "CSV log", err);
    if (!f)
        return false;
    fprintf(f, "step,epoch,loss,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc\n");
    int h = 0;
    for (; h < ft->nhist && ft->hist[h].step < 0; h++)   /* before the first update */
        eval_row(f, &ft->hist[h]);
    for (int i = 0; i < ft->nup; i++) {
        const RtFtUpdate *u = &ft->up[i];
        fprintf(f, "%lld,%lld,%.6f,%.6g,,,,,,\n", (long long)u->step, (long long)u->epoch,
                u->loss, u->lr);
        for (; h < ft->nhist && ft->hist[h].step == u->step; h++)
            eval_row(f, &ft->hist[h]);
    }
    return ir_outfile_commit(&o, err);
}

/* ---------------------------------------------------------------- plots */

static const char *const colors[RT_FT_NSPLIT] = {"#1f77b4", "#ff7f0e", "#2ca02c"};

/* x: the update number (1-based, the book's "examples seen" / B). */
static bool plot_loss(RtFt *ft, IrError *err)
{
    int n = ft->nup, m = ft->nhist;
    double *x = malloc(sizeof *x * (size_t)(2 * n + 4 * m + 1)), *y = x + n;
    double *ex = y + n, *ey = ex + m;
    for (int i = 0; i < n; i++)
        x[i] = (double)ft->up[i].step + 1, y[i] = ft->up[i].loss;
    RtSeries s[1 + RT_FT_NSPLIT] = {{"Update loss", "#c7c7c7", x, y, n, false}};
    static const char *const names[RT_FT_NSPLIT] = {"Training loss", "Validation loss",
                                                    "Test loss"};
    for (int k = 0; k < RT_FT_NSPLIT; k++) {
        double *sy = ey + k * m;
        for (int i = 0; i < m; i++)
            ex[i] = (double)ft->hist[i].step + 1, sy[i] = ft->hist[i].loss[k];
        s[1 + k] = (RtSeries){names[k], colors[k], ex, sy, m, k > 0};
    }
    RtPlot p = {ft->o.model.name, "Updates", "Loss", s, 1 + RT_FT_NSPLIT};
    bool ok = rt_plot_svg(&p, ft->plot_path, err);
    free(x);
    return ok;
}

static bool plot_metric(RtFt *ft, IrError *err)
{
    int m = ft->nhist;
    double *x = malloc(sizeof *x * (size_t)(4 * m + 1)), *y = x + m;
    RtSeries s[RT_FT_NSPLIT];
    static const char *const names[RT_FT_NSPLIT] = {"Training", "Validation", "Test"};
    for (int k = 0; k < RT_FT_NSPLIT; k++) {
        double *sy = y + k * m;
        for (int i = 0; i < m; i++)
            x[i] = (double)ft->hist[i].epoch, sy[i] = ft->hist[i].metric[k];
        s[k] = (RtSeries){names[k], colors[k], x, sy, m, k > 0};
    }
    const char *name = ft->o.metric.name ? ft->o.metric.name : "metric";
    RtPlot p = {ft->o.model.name, "Epoch", !strcmp(name, "acc") ? "Accuracy" : name, s,
                RT_FT_NSPLIT};
    bool ok = rt_plot_svg(&p, ft->acc_path, err);
    free(x);
    return ok;
}

bool rt_ft_write_logs(RtFt *ft, IrError *err)
{
    if (!ft->o.out_dir)
        return true;
    return write_csv(ft, err) && plot_loss(ft, err) && (!ft->o.metric.add || plot_metric(ft, err));
}

/* ---------------------------------------------------------------- checkpoint */

static cJSON *globs_json(const char *const *g, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < n; k++)
        cJSON_AddItemToArray(a, cJSON_CreateString(g[k]));
    return a;
}

static char *options_json(const RtFt *ft)
{
    const RtFtOptions *o = &ft->o;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    cJSON_AddNumberToObject(j, "T", (double)o->T);
    cJSON_AddNumberToObject(j, "epochs", (double)o->epochs);
    cJSON_AddNumberToObject(j, "steps", (double)ft->total);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "eps", o->eps);
    cJSON_AddNumberToObject(j, "clip", o->clip);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "eval_batches", (double)o->eval_batches);
    cJSON_AddBoolToObject(j, "eval_at_start", o->eval_at_start);
    cJSON_AddNumberToObject(j, "eval_every", (double)o->eval_every);
    cJSON_AddNumberToObject(j, "eval_iter", (double)o->eval_iter);
    cJSON_AddStringToObject(j, "init", o->init ? o->init->path : "");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static char *trainable_json(const RtFt *ft)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "trainable", globs_json(ft->o.trainable, ft->o.ntrainable));
    cJSON_AddItemToObject(j, "freeze", globs_json(ft->o.freeze, ft->o.nfreeze));
    cJSON_AddNumberToObject(j, "params", (double)ft->trainable);
    cJSON_AddNumberToObject(j, "tensors", (double)ft->ntrainable);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* [[step, epoch, train_loss, train_acc, val_loss, val_acc, test_loss, test_acc], ...] */
static char *history_json(const RtFt *ft)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < ft->nhist; i++) {
        const RtFtEval *e = &ft->hist[i];
        cJSON *row = cJSON_CreateArray();
        cJSON_AddItemToArray(row, cJSON_CreateNumber((double)e->step));
        cJSON_AddItemToArray(row, cJSON_CreateNumber((double)e->epoch));
        for (int s = 0; s < RT_FT_NSPLIT; s++) {
            cJSON_AddItemToArray(row, num_or_null(e->loss[s]));
            cJSON_AddItemToArray(row, num_or_null(e->metric[s]));
        }
        cJSON_AddItemToArray(a, row);
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static void meta_owned(RtCkptWriter *w, const char *key, char *value)
{
    rt_ckpt_meta(w, key, value);
    free(value);
}

static void add_meta(RtFt *ft, RtCkptWriter *w)
{
    const RtFtModel *m = &ft->o.model;
    rt_ckpt_meta(w, "format", RT_FT_FORMAT);
    rt_ckpt_meta(w, "model.json", m->json ? m->json : "");
    rt_ckpt_meta(w, "model.path", m->name ? m->name : "");
    rt_ckpt_meta(w, "model.sets", m->sets ? m->sets : "{}");
    rt_ckpt_metaf(w, "step", "%lld", (long long)ft->step);
    rt_ckpt_metaf(w, "epoch", "%lld", (long long)ft->epoch);
    meta_owned(w, "ft.options", options_json(ft));
    meta_owned(w, "ft.trainable", trainable_json(ft));
    meta_owned(w, "ft.history", history_json(ft));
    for (int k = 0; k < ft->o.nmeta; k++)
        rt_ckpt_meta(w, ft->o.meta_key[k], ft->o.meta_value[k]);
}

bool rt_ft_save(RtFt *ft, const char *path, IrError *err)
{
    RtCkptWriter *w = rt_ckpt_writer_new();
    rt_ckpt_add_exec(w, ft->train_g, ft->train_ex);
    add_meta(ft, w);
    bool ok = rt_ckpt_write(w, path, err);
    rt_ckpt_writer_free(w);
    return ok;
}

static bool save_rescue(RtFt *ft, const IrError *first, IrError *err)
{
    const char *tmp = getenv("TMPDIR");
    const char *bases[2] = {tmp && *tmp ? tmp : "/tmp", "/tmp"};
    char dir[4200], path[4400];
    for (int k = 0; k < 2; k++) {
        snprintf(dir, sizeof dir, "%.4000s/gradc-rescue", bases[k]);
        snprintf(path, sizeof path, "%s/finetune-%ld-ckpt.safetensors", dir, (long)getpid());
        mkdir(dir, 0700);
        IrError e = {0};
        if (rt_ft_save(ft, path, &e)) {
            ir_error(err, "%s", first->msg);
            ir_error_hint(err, "the checkpoint was saved to %s instead; move it where you "
                          "want it", path);
            return false;
        }
    }
    *err = *first;
    return false;
}

bool rt_ft_checkpoint(RtFt *ft, IrError *err)
{
    if (!ft->o.out_dir)
        return true;
    IrError first = {0};
    if (rt_ft_save(ft, ft->ckpt_path, &first))
        return true;
    fprintf(stderr, "gradc: warning: %s\n  trying once more\n", first.msg);
    first = (IrError){0};
    if (rt_ft_save(ft, ft->ckpt_path, &first))
        return true;
    return save_rescue(ft, &first, err);
}

bool rt_ft_ckpt_check(const RtCkpt *c, IrError *err)
{
    const char *f = rt_ckpt_meta_get(c, "format");
    if (f && !strcmp(f, RT_FT_FORMAT))
        return true;
    ir_error(err, "'%s' is not a gradc fine-tuning checkpoint (format '%s', expected '%s')",
             c->path, f ? f : "none", RT_FT_FORMAT);
    ir_error_hint(err, "gradc classify takes a checkpoint written by gradc finetune classify");
    return false;
}
