/* rt_train_out.c — where a training run's files go, and what happens when
 * they cannot be written (docs/training.md, "Guarantees").
 *
 * Hours of training must not die at the last step, so everything that can
 * be checked is checked before the first update:
 *
 *   paths     the checkpoint, the CSV log and the plot come from --ckpt,
 *             --csv, --plot, else --out DIR, else the resumed checkpoint's
 *             record of where its run wrote ("out" metadata), else
 *             runs/MODEL_NAME; each must be writable (ir_outfile_check);
 *   stale     PATH.tmp.PID files that a killed run left are removed, and
 *             the run says so;
 *   another   a checkpoint at the path that belongs to another run (its
 *   run       run id differs) or is ahead of this one is not overwritten
 *             without --force.  The run id is a hash of the model, the data
 *             and the settings that fix which batches an update sees, so a
 *             resumed run keeps it.
 *
 * The "out" record holds each path relative to the checkpoint's own folder
 * when it is inside it ({"dir": ".", "ckpt": "ckpt.safetensors", ...} by
 * default): two runs in different folders still write the same bytes, and
 * a run resumes into the folder its checkpoint is in.
 *
 * During the run a save that fails is retried once and then written to a
 * rescue path under $TMPDIR/gradc-rescue, which is printed; the weights stay
 * in memory and training goes on; the next save that reaches the path
 * removes the rescued file, which it makes out of date.  At the end, if no
 * path takes the checkpoint, the run waits for space (retrying every 30 s,
 * up to GRADC_SAVE_WAIT_S seconds, default 600) before it gives up.  A CSV log or
 * plot that cannot be written is a warning: both are rebuilt whole from the
 * history at the next evaluation, and at the end one still failing makes
 * the run exit 1 after its checkpoint is safe.
 */
#define _GNU_SOURCE
#include "runtime/rt_train_int.h"

#include "ir/outfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- run id */

void rt_train_set_run_id(RtTrain *t, const RtCkpt *c)
{
    const char *theirs = c ? rt_ckpt_meta_get(c, "run.id") : NULL;
    char *end;
    if (theirs && (t->run_id = strtoull(theirs, &end, 16), !*end && *theirs))
        return;
    char *sets = rt_train_sets_json(t), head[512];
    snprintf(head, sizeof head, "%016llx|%s|%lld|%lld|%lld|%.17g|%llu|%d|",
             (unsigned long long)t->data_hash, rt_tok_kind_name(t->o.tokenizer),
             (long long)t->o.batch, (long long)t->T, (long long)t->stride, t->o.train_frac,
             (unsigned long long)t->o.seed, (int)t->o.no_shuffle);
    uint64_t h = rt_ckpt_hash(head, strlen(head)) ^ rt_ckpt_hash(t->model_json,
                                                                 strlen(t->model_json));
    h = h * 0x9E3779B97F4A7C15ull ^ rt_ckpt_hash(sets, strlen(sets));
    for (int k = 0; k < t->o.ninit_std; k++)
        h = h * 0x9E3779B97F4A7C15ull ^ rt_ckpt_hash(t->o.init_std[k], strlen(t->o.init_std[k]));
    t->run_id = h;
    free(sets);
}

/* ---------------------------------------------------------------- paths */

static const char *base_of(const char *path)
{
    return strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
}

/* folder + "/" + name, or name when it is absolute. */
static void join(char *dst, size_t cap, const char *folder, const char *name)
{
    if (name[0] == '/')
        snprintf(dst, cap, "%s", name);
    else
        snprintf(dst, cap, "%.3800s/%s", folder, name);
}

bool rt_make_dirs(const char *path, IrError *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    struct stat st;
    if (mkdir(buf, 0755) == 0 || (errno == EEXIST && stat(buf, &st) == 0 && S_ISDIR(st.st_mode)))
        return true;
    ir_error(err, "cannot create the folder '%s': %s", path,
             errno == EEXIST ? "a file of that name is in the way" : strerror(errno));
    ir_error_hint(err, "pass another --out DIR");
    return false;
}

/* The resumed checkpoint's record of one of its run's paths, resolved
 * against the checkpoint's folder; false when it has none. */
static bool recorded(const RtCkpt *c, const char *key, char *dst)
{
    cJSON *j = c ? cJSON_Parse(rt_ckpt_meta_get(c, "out") ?: "") : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, key);
    bool ok = cJSON_IsString(e) && e->valuestring[0];
    if (ok) {
        char dir[4096];
        ir_outfile_dir_of(c->path, dir, sizeof dir);
        join(dst, 4096, dir, e->valuestring);
    }
    cJSON_Delete(j);
    return ok;
}

static void pick_path(char *dst, const char *flag, bool use_record, const RtCkpt *c,
                      const char *key, const char *dir, const char *file)
{
    if (flag)
        snprintf(dst, 4096, "%s", flag);
    else if (!(use_record && recorded(c, key, dst)))
        join(dst, 4096, dir, file);
}

static void resolve_paths(RtTrain *t, const RtCkpt *c)
{
    bool record = c && !t->o.out_dir;   /* --out DIR: every file in DIR */
    if (t->o.out_dir)
        snprintf(t->out_dir, sizeof t->out_dir, "%s", t->o.out_dir);
    else if (c && !recorded(c, "dir", t->out_dir))
        /* a checkpoint without "out" */
        ir_outfile_dir_of(c->path, t->out_dir, sizeof t->out_dir);
    else if (!c)
        snprintf(t->out_dir, sizeof t->out_dir, "runs/%s", t->model->name);
    pick_path(t->ckpt_path, t->o.ckpt_path, record, c, "ckpt", t->out_dir, "ckpt.safetensors");
    pick_path(t->csv_path, t->o.csv_path, record, c, "csv", t->out_dir, "log.csv");
    pick_path(t->plot_path, t->o.plot_path, record, c, "plot", t->out_dir, "loss.svg");
}

/* path relative to the real folder `base` when it is inside it, else its
 * real path; a path whose folder does not resolve stays as it is. */
static void relative(const char *path, bool is_dir, const char *base, char *out, size_t cap)
{
    char dir[4096], real[PATH_MAX];
    if (is_dir)
        snprintf(dir, sizeof dir, "%s", path);
    else
        ir_outfile_dir_of(path, dir, sizeof dir);
    const char *name = is_dir ? "" : base_of(path), *sep = is_dir ? "" : "/";
    size_t n = strlen(base);
    if (!realpath(dir, real))
        snprintf(out, cap, "%s", path);
    else if (!strcmp(real, base))
        snprintf(out, cap, "%s", is_dir ? "." : name);
    else if (!strncmp(real, base, n) && (real[n] == '/' || n == 1))
        snprintf(out, cap, "%s%s%s", real + n + (n > 1), sep, name);
    else
        snprintf(out, cap, "%s%s%s", real, sep, name);
}

char *rt_train_out_json(const RtTrain *t, const char *path)
{
    char dir[4096], base[PATH_MAX], rel[4][4200];
    ir_outfile_dir_of(path, dir, sizeof dir);
    if (!realpath(dir, base))
        snprintf(base, sizeof base, "%s", dir);
    relative(t->out_dir, true, base, rel[0], sizeof rel[0]);
    relative(t->ckpt_path, false, base, rel[1], sizeof rel[1]);
    relative(t->csv_path, false, base, rel[2], sizeof rel[2]);
    relative(t->plot_path, false, base, rel[3], sizeof rel[3]);
    cJSON *j = cJSON_CreateObject();
    const char *keys[4] = {"dir", "ckpt", "csv", "plot"};
    for (int k = 0; k < 4; k++)
        cJSON_AddStringToObject(j, keys[k], rel[k]);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* ---------------------------------------------------------------- before the first step */

static FILE *notes(const RtTrain *t)
{
    return t->o.quiet ? stderr : t->out;
}

static bool same_file(const char *a, const char *b)
{
    struct stat x, y;
    return a && b && stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

static bool refuse_overwrite(const RtTrain *t, const char *why, IrError *err)
{
    ir_error(err, "'%s' %s; this run would overwrite it", t->ckpt_path, why);
    ir_error_hint(err, "pass --out DIR (or --ckpt PATH) for this run, --resume %s to continue "
                  "that run, or --force to overwrite it", t->ckpt_path);
    return false;
}

/* A checkpoint already at ckpt_path must be this run's, at or behind the
 * step this run starts from (or the one it resumes). */
static bool check_overwrite(RtTrain *t, IrError *err)
{
    struct stat st;
    t->ckpt_step = -1;
    if (same_file(t->ckpt_path, t->o.resume))
        t->ckpt_step = t->step;
    if (stat(t->ckpt_path, &st) != 0 || !S_ISREG(st.st_mode) || t->o.force ||
        t->ckpt_step >= 0)
        return true;
    IrError rerr = {0};
    RtCkpt *c = rt_ckpt_read(t->ckpt_path, &rerr);
    const char *id = c ? rt_ckpt_meta_get(c, "run.id") : NULL;
    const char *step = c ? rt_ckpt_meta_get(c, "step") : NULL;
    char ours[32], why[700];
    snprintf(ours, sizeof ours, "%016llx", (unsigned long long)t->run_id);
    long long at = step ? atoll(step) : -1;
    bool ok = id && !strcmp(id, ours) && at >= 0 && at <= t->step;
    t->ckpt_step = ok ? at : -1;
    if (!c)
        snprintf(why, sizeof why, "exists and is not a checkpoint gradc can read (%.500s)",
                 rerr.msg);
    else if (!id || strcmp(id, ours))
        snprintf(why, sizeof why, "holds a checkpoint of another run (model %.200s, data "
                 "%.200s, step %s)", rt_ckpt_meta_get(c, "model.path") ?: "?",
                 rt_ckpt_meta_get(c, "data.path") ?: "?", step ? step : "?");
    else
        snprintf(why, sizeof why, "holds step %lld of this same run, ahead of step %lld where "
                 "this run starts", at, (long long)t->step);
    rt_ckpt_free(c);
    return ok || refuse_overwrite(t, why, err);
}

static bool in_out_dir(const RtTrain *t, const char *path)
{
    size_t n = strlen(t->out_dir);
    return !strncmp(path, t->out_dir, n) && path[n] == '/';
}

/* Each file that can be written; those outside out_dir first, so that a bad
 * --ckpt does not leave an empty out_dir behind, which is made only when a
 * file goes into it. */
static bool check_paths(RtTrain *t, IrError *err)
{
    const char *paths[3] = {t->ckpt_path, t->csv_path, t->plot_path};
    const char *what[3] = {"checkpoint", "CSV log", "loss plot"};
    bool inside = false;
    for (int k = 0; k < 3; k++) {
        bool in = in_out_dir(t, paths[k]);
        inside |= in;
        if (!in && !ir_outfile_check(paths[k], what[k], err))
            return false;
    }
    if (inside && !rt_make_dirs(t->out_dir, err))
        return false;
    for (int k = 0; k < 3; k++)
        if (in_out_dir(t, paths[k]) && !ir_outfile_check(paths[k], what[k], err))
            return false;
    return true;
}

bool rt_train_prepare_outputs(RtTrain *t, const RtCkpt *c, IrError *err)
{
    resolve_paths(t, c);
    if (!check_paths(t, err))
        return false;
    ir_outfile_clean_stale(t->ckpt_path, notes(t));
    ir_outfile_clean_stale(t->csv_path, notes(t));
    ir_outfile_clean_stale(t->plot_path, notes(t));
    return check_overwrite(t, err);
}

/* ---------------------------------------------------------------- saving */

static void warn(const IrError *e, const char *then)
{
    fprintf(stderr, "gradc: warning: %s\n", e->msg);
    if (then)
        fprintf(stderr, "  %s\n", then);
}

/* BASE/gradc-rescue/FOLDER-OF-CKPT-ckpt.safetensors: one file per run,
 * replaced by the next rescue of the same run. */
static void rescue_path(const RtTrain *t, const char *base, char *dst, size_t cap)
{
    char dir[4096], real[PATH_MAX], name[600];
    ir_outfile_dir_of(t->ckpt_path, dir, sizeof dir);
    if (!realpath(dir, real))
        snprintf(real, sizeof real, "%s", dir);
    snprintf(name, sizeof name, "%.300s-%.200s", real[1] ? real + 1 : "root",
             base_of(t->ckpt_path));
    for (char *p = name; *p; p++)
        *p = *p == '/' ? '-' : *p;
    snprintf(dst, cap, "%.1000s/gradc-rescue/%s", base, name);
}

/* The rescue path under $TMPDIR, else under /tmp (a $TMPDIR that is gone or
 * full must not cost the weights). */
static bool save_rescue(RtTrain *t, IrError *err)
{
    const char *tmp = getenv("TMPDIR");
    const char *bases[2] = {tmp && *tmp ? tmp : "/tmp", "/tmp"};
    char path[4200], dir[4200];
    for (int k = 0; k < 2; k++) {
        if (k && !strcmp(bases[0], bases[1]))
            break;
        rescue_path(t, bases[k], path, sizeof path);
        ir_outfile_dir_of(path, dir, sizeof dir);
        mkdir(dir, 0700);
        *err = (IrError){0};
        if (!rt_train_save(t, path, err))
            continue;
        if (t->rescued[0] && strcmp(t->rescued, path))
            unlink(t->rescued);     /* an older step of this run */
        snprintf(t->rescued, sizeof t->rescued, "%s", path);
        fprintf(stderr, "gradc: warning: the checkpoint of step %lld is saved to %s instead "
                "of %s\n", (long long)t->step, path, t->ckpt_path);
        return true;
    }
    return false;
}

/* ckpt_path took a later step than the rescue path holds: the rescued
 * checkpoint of this run is out of date, and may be large. */
static void drop_rescue(RtTrain *t)
{
    if (t->rescued[0] && unlink(t->rescued) == 0)
        fprintf(notes(t), "removed %s: '%s' holds a later step (%lld) now\n", t->rescued,
                t->ckpt_path, (long long)t->step);
    t->rescued[0] = 0;
}

/* The checkpoint at ckpt_path, else once more, else at the rescue path. */
static bool save_somewhere(RtTrain *t, IrError *err)
{
    IrError e1 = {0};
    bool ok = rt_train_save(t, t->ckpt_path, &e1);
    if (!ok) {
        warn(&e1, "trying once more");
        *err = (IrError){0};
        ok = rt_train_save(t, t->ckpt_path, err);
    }
    if (ok) {
        drop_rescue(t);
        t->ckpt_step = t->step;
        return true;
    }
    warn(err, "saving to a rescue path instead; the weights are still in memory");
    IrError e2 = {0};
    return save_rescue(t, &e2) || (warn(&e2, NULL), false);
}

static bool wait_for_space(RtTrain *t, IrError *err)
{
    const char *v = getenv("GRADC_SAVE_WAIT_S");
    double left = v && *v ? atof(v) : 600;
    while (left > 0) {
        unsigned s = left < 30 ? (unsigned)(left + 0.999) : 30;
        fprintf(stderr, "gradc: the checkpoint of step %lld could not be written anywhere; "
                "retrying in %u s (%.0f s left; free some space, or Ctrl-C to give up)\n",
                (long long)t->step, s, left);
        sleep(s);
        left -= s;
        *err = (IrError){0};
        if (save_somewhere(t, err))
            return true;
    }
    return false;
}

bool rt_train_checkpoint(RtTrain *t, bool final, IrError *err)
{
    if (save_somewhere(t, err) || (final && wait_for_space(t, err))) {
        if (final && t->rescued[0]) {
            ir_error(err, "the final checkpoint could not be written to '%s'; it is at '%s'",
                     t->ckpt_path, t->rescued);
            ir_error_hint(err, "move it where it belongs once there is space; --resume %s "
                          "continues the run", t->rescued);
            return false;
        }
        return true;
    }
    if (!final)
        return true;    /* warned; the weights are in memory and the next save tries again */
    char why[sizeof err->msg];
    memcpy(why, err->msg, sizeof why);
    ir_error(err, "the checkpoint of step %lld could not be written to '%s' or a rescue path "
             "(%.300s)", (long long)t->step, t->ckpt_path, why);
    if (t->ckpt_step >= 0)
        ir_error_hint(err, "'%s' still holds step %lld, whole; free some space and resume from "
                      "it", t->ckpt_path, (long long)t->ckpt_step);
    else
        ir_error_hint(err, "free some space and run again; no checkpoint of this run was saved");
    return false;
}

/* ---------------------------------------------------------------- the log and the plot */

bool rt_train_write_logs(RtTrain *t, bool final, IrError *err)
{
    IrError e = {0};
    if (!final || t->csv_stale)
        t->csv_stale = !rt_train_write_csv(t, &e);
    if (t->csv_stale && !final)
        warn(&e, "training goes on; the log is rewritten whole at the next evaluation");
    IrError f = {0};
    if (!final || t->plot_stale)
        t->plot_stale = !rt_train_write_plot(t, &f);
    if (t->plot_stale && !final)
        warn(&f, "training goes on; the plot is redrawn at the next evaluation");
    if (!final || !(t->csv_stale || t->plot_stale))
        return true;
    *err = t->csv_stale ? e : f;
    ir_error_hint(err, "the checkpoint is saved and holds every evaluation (train.history): "
                  "a resumed run rewrites the file at its next evaluation");
    return false;
}
