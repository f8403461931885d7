/* rt_train_io.c — what a training run writes and reads back: checkpoints,
 * the CSV log and the loss plot.
 *
 * A training checkpoint (format "gradc.train.v1", docs/training.md) is a
 * safetensors file (rt_ckpt.h) holding
 *   tensors   every param P of the model (f32, its own name), every state
 *             input of the train step (the AdamW moments adam.m.P and
 *             adam.v.P), and for a char tokenizer its vocabulary as
 *             tokenizer.char_vocab (u8, the characters in id order);
 *   metadata  format; model.json (the model file with its base files
 *             merged), model.path, model.sets (the --set values, a JSON
 *             object), all three as the caller loaded the model
 *             (RtTrainModel: cli/train_model.c); tokenizer; data.path and data.hash; the position
 *             (step, epoch, batch, tokens, elapsed_s); rng (the seed, and
 *             what the random streams are keyed by); train.options (every
 *             setting, JSON); train.history (the eval points, JSON); run.id
 *             and out (the run's identity and its files: rt_train_out.c).
 * So a checkpoint runs on its own: `gradc generate CKPT` needs nothing else,
 * and `gradc train --resume CKPT` only the data file, whose hash must match.
 */
#define _GNU_SOURCE
#include "runtime/rt_train_int.h"

#include "ir/outfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double rt_train_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- --set */

char *rt_train_sets_json(const RtTrain *t)
{
    return strdup(t->sets);
}

/* ---------------------------------------------------------------- save */

static bool is_state(const IrGraph *g, const IrNode *n)
{
    if (n->op != OP_INPUT || !n->name)
        return false;
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, n->name))
            return true;
    return false;
}

static void add_node(RtCkptWriter *w, const IrNode *n, const void *data)
{
    int64_t shape[IR_MAX_RANK];
    for (int d = 0; d < n->shape.rank; d++)
        IR_ASSERT(ir_dim_is_const(n->shape.d[d], &shape[d]));
    RtDType dt = n->dtype == DT_F32 ? RT_DT_F32 : n->dtype == DT_I32 ? RT_DT_I32 : RT_DT_BOOL;
    rt_ckpt_add(w, n->name, dt, n->shape.rank, shape, data);
}

void rt_ckpt_add_exec(RtCkptWriter *w, const IrGraph *g, RtExec *ex)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == OP_PARAM)
            add_node(w, n, rt_exec_param(ex, n->name));
        else if (is_state(g, n))
            add_node(w, n, rt_exec_input(ex, n->name));
    }
}

static char *options_json(const RtTrain *t)
{
    const RtTrainOptions *o = &t->o;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    cJSON_AddNumberToObject(j, "ctx", (double)t->T);
    cJSON_AddNumberToObject(j, "stride", (double)t->stride);
    cJSON_AddNumberToObject(j, "train_frac", o->train_frac);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddStringToObject(j, "tokenizer", rt_tok_kind_name(o->tokenizer));
    cJSON_AddNumberToObject(j, "epochs", (double)o->epochs);
    cJSON_AddNumberToObject(j, "steps", (double)t->total);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "min_lr", o->min_lr);
    cJSON_AddNumberToObject(j, "warmup", (double)o->warmup);
    cJSON_AddStringToObject(j, "schedule", o->schedule == RT_LR_COSINE ? "cosine" : "constant");
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "eps", o->eps);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "clip", o->clip);
    cJSON_AddBoolToObject(j, "decay_all", o->decay_all);
    cJSON_AddBoolToObject(j, "shuffle", !o->no_shuffle);
    cJSON *inits = cJSON_AddArrayToObject(j, "init_std");
    for (int k = 0; k < o->ninit_std; k++)
        cJSON_AddItemToArray(inits, cJSON_CreateString(o->init_std[k]));
    cJSON_AddNumberToObject(j, "eval_every", (double)o->eval_every);
    cJSON_AddNumberToObject(j, "eval_batches", (double)o->eval_batches);
    /* a resumed run saves as often */
    cJSON_AddNumberToObject(j, "save_every", (double)o->save_every);
    cJSON_AddNumberToObject(j, "sample_every", (double)o->sample_every);
    cJSON_AddNumberToObject(j, "log_every", (double)o->log_every);
    cJSON_AddNumberToObject(j, "sample_tokens", (double)o->sample_tokens);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static char *history_json(const RtTrain *t)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < t->nhist; i++) {
        const RtEvalPoint *p = &t->hist[i];
        /* no wall-clock time: the same run gives the same bytes (log.csv has it) */
        double v[7] = {(double)p->step, (double)p->epoch, (double)p->tokens, p->train, p->val,
                       p->lr, NAN};
        cJSON *row = cJSON_CreateArray();
        for (int k = 0; k < 7; k++)
            cJSON_AddItemToArray(row, isfinite(v[k]) ? cJSON_CreateNumber(v[k])
                                                     : cJSON_CreateNull());
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

static void add_meta(RtTrain *t, RtCkptWriter *w, const char *path)
{
    rt_ckpt_meta(w, "format", RT_TRAIN_FORMAT);
    rt_ckpt_meta(w, "model.json", t->model_json);
    rt_ckpt_meta(w, "model.path", t->model_name);
    meta_owned(w, "model.sets", rt_train_sets_json(t));
    rt_ckpt_meta(w, "tokenizer", rt_tok_kind_name(t->o.tokenizer));
    rt_ckpt_meta(w, "data.path", t->data_path);
    rt_ckpt_metaf(w, "data.hash", "%016llx", (unsigned long long)t->data_hash);
    rt_ckpt_metaf(w, "step", "%lld", (long long)t->step);
    rt_ckpt_metaf(w, "epoch", "%lld", (long long)t->epoch);
    rt_ckpt_metaf(w, "batch", "%lld", (long long)t->batch);
    rt_ckpt_metaf(w, "tokens", "%lld", (long long)t->tokens);
    rt_ckpt_metaf(w, "rng", "{\"seed\":%llu,\"shuffle\":\"%s\",\"dropout\":"
                  "\"(seed attribute, step, element)\",\"step\":%lld}",
                  (unsigned long long)t->o.seed, t->o.no_shuffle ? "off" : "(seed, epoch)",
                  (long long)t->step);
    meta_owned(w, "train.options", options_json(t));
    meta_owned(w, "train.history", history_json(t));
    if (t->o.prompt)    /* a resumed run samples as the run did */
        rt_ckpt_meta(w, "train.prompt", t->o.prompt);
    if (t->o.passes)
        rt_ckpt_meta(w, "train.passes", t->o.passes);
    if (t->o.init_from)   /* where the run's weights started (a record only) */
        rt_ckpt_meta(w, "train.init_from", t->o.init_from);
    rt_ckpt_metaf(w, "run.id", "%016llx", (unsigned long long)t->run_id);
    meta_owned(w, "out", rt_train_out_json(t, path));
}

bool rt_train_save(RtTrain *t, const char *path, IrError *err)
{
    RtCkptWriter *w = rt_ckpt_writer_new();
    size_t vlen = 0;
    char *vocab = t->tok->kind == RT_TOK_CHAR ? rt_chartok_save(t->tok->chr, &vlen) : NULL;
    rt_ckpt_add_exec(w, t->train_g, t->train_ex);
    if (vocab)
        rt_ckpt_add(w, "tokenizer.char_vocab", RT_DT_U8, 1, (int64_t[]){(int64_t)vlen}, vocab);
    add_meta(t, w, path);
    bool ok = rt_ckpt_write(w, path, err);
    rt_ckpt_writer_free(w);
    free(vocab);
    if (ok && !t->o.quiet)
        fprintf(t->out, "saved %s (step %lld)\n", path, (long long)t->step);
    return ok;
}

/* ---------------------------------------------------------------- restore */

static bool meta_int(const RtCkpt *c, const char *key, int64_t *v, IrError *err)
{
    const char *s = rt_ckpt_meta_get(c, key);
    char *end;
    errno = 0;
    long long x = s ? strtoll(s, &end, 10) : 0;
    if (s && *s && !*end && !errno && x >= 0) {
        *v = x;
        return true;
    }
    ir_error(err, "checkpoint '%s': metadata '%s' is %s%s%s, expected a count", c->path, key,
             s ? "'" : "missing", s ? s : "", s ? "'" : "");
    ir_error_hint(err, "the checkpoint is damaged or was not written by gradc train");
    return false;
}

bool rt_train_ckpt_check(const RtCkpt *c, IrError *err)
{
    const char *f = rt_ckpt_meta_get(c, "format");
    if (f && !strcmp(f, RT_TRAIN_FORMAT))
        return true;
    ir_error(err, "'%s' is not a gradc training checkpoint (format '%s', expected '%s')",
             c->path, f ? f : "none", RT_TRAIN_FORMAT);
    ir_error_hint(err, "--resume takes a checkpoint written by gradc train");
    return false;
}

/* A count of a checkpoint's metadata: an integer in [0, 2^53]; a value past
 * int64_t must not reach a cast. */
static bool count_of(double d, int64_t *v)
{
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d))
        return false;
    *v = (int64_t)d;
    return true;
}

static bool bad_option(const RtCkpt *c, const char *key, const char *want, IrError *err)
{
    ir_error(err, "checkpoint '%s': train.options '%s' is not %s", c->path, key, want);
    ir_error_hint(err, "the checkpoint is damaged or was not written by gradc train");
    return false;
}

static bool opt_num(const RtCkpt *c, const cJSON *j, const char *key, double *v, IrError *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!e)
        return true;
    if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
        return bad_option(c, key, "a number", err);
    *v = e->valuedouble;
    return true;
}

static bool opt_int(const RtCkpt *c, const cJSON *j, const char *key, int64_t *v, IrError *err)
{
    double d = NAN;
    if (!opt_num(c, j, key, &d, err))
        return false;
    return isnan(d) || count_of(d, v) || bad_option(c, key, "a count", err);
}

static bool opt_ints(const RtCkpt *c, const cJSON *j, RtTrainOptions *o, int64_t *seed,
                     IrError *err)
{
    const char *k[] = {"batch", "ctx", "stride", "seed", "epochs", "steps", "warmup",
                       "eval_every", "eval_batches", "save_every", "sample_every", "log_every"};
    int64_t *v[] = {&o->batch, &o->ctx, &o->stride, seed, &o->epochs, &o->steps, &o->warmup,
                    &o->eval_every, &o->eval_batches, &o->save_every, &o->sample_every,
                    &o->log_every};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!opt_int(c, j, k[i], v[i], err))
            return false;
    return true;
}

static bool opt_nums(const RtCkpt *c, const cJSON *j, RtTrainOptions *o, IrError *err)
{
    const char *k[] = {"train_frac", "lr", "min_lr", "beta1", "beta2", "eps", "weight_decay",
                       "clip"};
    double *v[] = {&o->train_frac, &o->lr, &o->min_lr, &o->beta1, &o->beta2, &o->eps,
                   &o->weight_decay, &o->clip};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!opt_num(c, j, k[i], v[i], err))
            return false;
    return true;
}

bool rt_train_options_from_ckpt(const RtCkpt *c, RtTrainOptions *o, IrError *err)
{
    cJSON *j = cJSON_Parse(rt_ckpt_meta_get(c, "train.options") ?: "");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        ir_error(err, "checkpoint '%s' records no training settings (train.options)", c->path);
        ir_error_hint(err, "--resume takes a checkpoint written by gradc train");
        return false;
    }
    int64_t seed = (int64_t)o->seed;
    if (!opt_ints(c, j, o, &seed, err) || !opt_nums(c, j, o, err)) {
        cJSON_Delete(j);
        return false;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    if (cJSON_IsString(e))
        o->schedule = strcmp(e->valuestring, "cosine") ? RT_LR_CONSTANT : RT_LR_COSINE;
    e = cJSON_GetObjectItemCaseSensitive(j, "decay_all");
    o->decay_all = cJSON_IsBool(e) ? cJSON_IsTrue(e) : o->decay_all;
    e = cJSON_GetObjectItemCaseSensitive(j, "shuffle");
    o->no_shuffle = cJSON_IsBool(e) ? !cJSON_IsTrue(e) : o->no_shuffle;
    e = cJSON_GetObjectItemCaseSensitive(j, "tokenizer");
    if (cJSON_IsString(e))
        rt_tok_kind_parse(e->valuestring, &o->tokenizer);
    o->seed = (uint64_t)seed;
    int64_t toks = o->sample_tokens;
    bool ok = opt_int(c, j, "sample_tokens", &toks, err) &&
              ((toks >= 1 && toks <= INT_MAX) || bad_option(c, "sample_tokens", "a count", err));
    o->sample_tokens = ok ? (int)toks : o->sample_tokens;
    cJSON_Delete(j);
    const char *prompt = rt_ckpt_meta_get(c, "train.prompt");
    const char *passes = rt_ckpt_meta_get(c, "train.passes");
    o->prompt = prompt && *prompt ? prompt : o->prompt;
    o->passes = passes && *passes ? passes : o->passes;
    return ok;
}

/* ---------------------------------------------------------------- tokenizer */

static bool tok_mismatch(const RtCkpt *c, const char *what, IrError *err)
{
    ir_error(err, "checkpoint '%s' %s", c->path, what);
    ir_error_hint(err, "the checkpoint was edited or damaged, or not written by gradc train; "
                  "use an unedited copy");
    return false;
}

/* The kind named by metadata 'tokenizer', checked against train.options and
 * against the vocabulary tensor. */
static bool ckpt_tok_kind(const RtCkpt *c, RtTokKind *kind, IrError *err)
{
    const char *name = rt_ckpt_meta_get(c, "tokenizer");
    char what[300];
    if (!rt_tok_kind_parse(name, kind)) {
        snprintf(what, sizeof what, "names the tokenizer '%.60s', not gpt2 or char",
                 name ? name : "(none)");
        return tok_mismatch(c, what, err);
    }
    cJSON *j = cJSON_Parse(rt_ckpt_meta_get(c, "train.options") ?: "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "tokenizer");
    bool agree = !cJSON_IsString(e) || !strcmp(e->valuestring, name);
    cJSON_Delete(j);
    if (!agree)
        return tok_mismatch(c, "names one tokenizer in 'tokenizer' and another in "
                            "train.options", err);
    const RtCkptTensor *v = rt_ckpt_find(c, "tokenizer.char_vocab");
    if (*kind == RT_TOK_GPT2 && v)
        return tok_mismatch(c, "names the gpt2 tokenizer but holds a char vocabulary "
                            "(tokenizer.char_vocab)", err);
    if (*kind == RT_TOK_CHAR && (!v || v->dtype != RT_DT_U8 || v->rank != 1))
        return tok_mismatch(c, "has a char tokenizer but no tokenizer.char_vocab (u8[N])", err);
    return true;
}

/* The model's vocabulary size: the last dim of its output 'logits'; -1 when
 * it has none (rt_gen_new and the trainer refuse such a model). */
static int64_t model_vocab(const IrGraph *g)
{
    int64_t V = -1;
    for (int o = 0; g && o < g->nout; o++) {
        const IrNode *n = g->outs[o].node;
        if (!strcmp(g->outs[o].name, "logits") && n->shape.rank >= 1 &&
            !ir_dim_is_const(n->shape.d[n->shape.rank - 1], &V))
            V = -1;
    }
    return V;
}

RtTokenizer *rt_ckpt_tokenizer(const RtCkpt *c, const IrGraph *model, const char *bpe_dir,
                               IrError *err)
{
    RtTokKind kind;
    if (!ckpt_tok_kind(c, &kind, err))
        return NULL;
    const RtCkptTensor *v = rt_ckpt_find(c, "tokenizer.char_vocab");
    RtTokenizer *tok = kind == RT_TOK_CHAR
                           ? rt_tokenizer_char_vocab(v->data, (size_t)v->bytes, err)
                           : rt_tokenizer_gpt2(bpe_dir, err);
    if (!tok) {
        if (kind == RT_TOK_CHAR)
            ir_error_where(err, "checkpoint '%s', tokenizer.char_vocab", c->path);
        return NULL;
    }
    int64_t n = rt_tokenizer_vocab_size(tok), V = model_vocab(model);
    if (V < 0 || n <= V)
        return tok;
    rt_tokenizer_free(tok);
    char what[300];
    snprintf(what, sizeof what, "names the %s tokenizer, which has %lld tokens, but its model "
             "has vocab_size %lld", rt_tok_kind_name(kind), (long long)n, (long long)V);
    tok_mismatch(c, what, err);
    return NULL;
}

static bool restore_state(RtTrain *t, const RtCkpt *c, IrError *err)
{
    const IrGraph *g = t->train_g;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (!is_state(g, n))
            continue;
        const RtCkptTensor *ten = rt_ckpt_find(c, n->name);
        int64_t numel = ir_node_numel_const(n);
        if (!ten || ten->dtype != RT_DT_F32 || ten->numel != numel) {
            ir_error(err, "checkpoint '%s' has no optimizer state '%s' of %lld f32 values",
                     c->path, n->name, (long long)numel);
            ir_error_hint(err, "resume from a checkpoint of `gradc train` with the same model "
                          "and optimizer settings");
            return false;
        }
        memcpy(rt_exec_input(t->train_ex, n->name), ten->data, (size_t)ten->bytes);
    }
    return true;
}

/* A setting that decides which batches a step sees must not change. */
static bool same(const RtCkpt *c, const char *what, double ours, double theirs, IrError *err)
{
    if (ours == theirs)
        return true;
    ir_error(err, "checkpoint '%s' was trained with %s %g, this run has %g", c->path, what,
             theirs, ours);
    ir_error_hint(err, "resume with the checkpoint's settings (leave out the flag: --resume "
                  "takes them from the checkpoint)");
    return false;
}

static bool check_settings(RtTrain *t, const RtCkpt *c, IrError *err)
{
    cJSON *j = cJSON_Parse(rt_ckpt_meta_get(c, "train.options") ?: "");
    double v[5] = {NAN, NAN, NAN, NAN, NAN};
    const char *k[5] = {"batch", "ctx", "stride", "train_frac", "seed"};
    for (int i = 0; i < 5; i++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, k[i]);
        v[i] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    }
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(j, "tokenizer");
    bool tok_ok = cJSON_IsString(tk) && !strcmp(tk->valuestring, rt_tok_kind_name(t->o.tokenizer));
    cJSON_Delete(j);
    double ours[5] = {(double)t->o.batch, (double)t->T, (double)t->stride, t->o.train_frac,
                      (double)t->o.seed};
    for (int i = 0; i < 5; i++)
        if (!same(c, k[i], ours[i], v[i], err))
            return false;
    if (!tok_ok) {
        ir_error(err, "checkpoint '%s' was trained with another tokenizer", c->path);
        ir_error_hint(err, "leave out --tokenizer when resuming");
    }
    return tok_ok;
}

bool rt_train_check_data(RtTrain *t, const RtCkpt *c, IrError *err)
{
    char ours[32];
    snprintf(ours, sizeof ours, "%016llx", (unsigned long long)t->data_hash);
    const char *theirs = rt_ckpt_meta_get(c, "data.hash");
    if (theirs && !strcmp(ours, theirs))
        return true;
    ir_error(err, "'%s' is not the text checkpoint '%s' was trained on (%s)", t->data_path,
             c->path, theirs ? "its hash differs" : "the checkpoint records none");
    ir_error_hint(err, "resume on the same --data file (the checkpoint names it in data.path); "
                  "for another text, start a new run");
    return false;
}

/* One row of train.history: [step, epoch, tokens, train, val, lr, seconds],
 * the first three counts, the others numbers or null. */
static bool history_row(const cJSON *row, RtEvalPoint *p)
{
    double v[7];
    for (int k = 0; k < 7; k++) {
        const cJSON *e = cJSON_GetArrayItem(row, k);
        v[k] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    }
    *p = (RtEvalPoint){0, 0, 0, v[3], v[4], v[5], v[6]};
    return cJSON_IsArray(row) && count_of(v[0], &p->step) && count_of(v[1], &p->epoch) &&
           count_of(v[2], &p->tokens);
}

static bool restore_history(RtTrain *t, const RtCkpt *c, IrError *err)
{
    cJSON *a = cJSON_Parse(rt_ckpt_meta_get(c, "train.history") ?: "[]");
    bool array = cJSON_IsArray(a), ok = array;
    for (const cJSON *row = ok ? a->child : NULL; ok && row; row = row->next) {
        RtEvalPoint p;
        if ((ok = history_row(row, &p)))
            rt_train_add_point(t, &p);
    }
    cJSON_Delete(a);
    if (!ok) {
        ir_error(err, "checkpoint '%s': metadata train.history %s", c->path,
                 array ? "has a row that is not [step, epoch, tokens, ...]"
                       : "is not a JSON array");
        ir_error_hint(err, "the checkpoint is damaged or was not written by gradc train");
    }
    return ok;
}

static bool restore_position(RtTrain *t, const RtCkpt *c, IrError *err)
{
    const char *el = rt_ckpt_meta_get(c, "elapsed_s");
    if (!meta_int(c, "step", &t->step, err) || !meta_int(c, "epoch", &t->epoch, err) ||
        !meta_int(c, "batch", &t->batch, err) || !meta_int(c, "tokens", &t->tokens, err))
        return false;
    t->seconds = el ? atof(el) : 0;
    if (t->batch < rt_loader_batches(t->data.train))
        return true;
    ir_error(err, "checkpoint '%s': batch %lld is past the %lld batches of an epoch", c->path,
             (long long)t->batch, (long long)rt_loader_batches(t->data.train));
    return false;
}

bool rt_train_restore(RtTrain *t, const RtCkpt *c, IrError *err)
{
    if (!check_settings(t, c, err) ||
        !rt_exec_params_from_ckpt(t->train_ex, t->train_g, c, err) ||
        !restore_state(t, c, err) || !restore_position(t, c, err) ||
        !restore_history(t, c, err))
        return false;
    if (!t->o.quiet)
        fprintf(t->out, "resumed from %s at step %lld (epoch %lld, batch %lld)\n", c->path,
                (long long)t->step, (long long)t->epoch + 1, (long long)t->batch);
    return true;
}

/* ---------------------------------------------------------------- log and plot */

void rt_train_add_point(RtTrain *t, const RtEvalPoint *p)
{
    if (t->nhist == t->caphist) {
        t->caphist = t->caphist ? 2 * t->caphist : 64;
        t->hist = realloc(t->hist, sizeof *t->hist * (size_t)t->caphist);
    }
    t->hist[t->nhist++] = *p;
}

bool rt_train_write_csv(RtTrain *t, IrError *err)
{
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, t->csv_path, "CSV log", err);
    if (!f)
        return false;
    fprintf(f, "step,epoch,tokens_seen,train_loss,val_loss,lr,elapsed_s\n");
    for (int i = 0; i < t->nhist; i++) {
        const RtEvalPoint *p = &t->hist[i];
        fprintf(f, "%lld,%lld,%lld,%.6f,", (long long)p->step, (long long)p->epoch,
                (long long)p->tokens, p->train);
        if (isfinite(p->val))
            fprintf(f, "%.6f", p->val);
        fprintf(f, ",%.6g,", p->lr);
        if (isfinite(p->seconds)) /* not known for the points of a resumed run's past */
            fprintf(f, "%.1f", p->seconds);
        fprintf(f, "\n");
    }
    return ir_outfile_commit(&o, err);
}

bool rt_train_write_plot(RtTrain *t, IrError *err)
{
    int n = t->nhist;
    double *x = malloc(sizeof *x * (size_t)(3 * n + 1)), *tr = x + n, *va = x + 2 * n;
    for (int i = 0; i < n; i++)
        x[i] = (double)t->hist[i].tokens, tr[i] = t->hist[i].train, va[i] = t->hist[i].val;
    RtSeries s[2] = {{"Training loss", "#1f77b4", x, tr, n, false},
                     {"Validation loss", "#ff7f0e", x, va, n, true}};
    char title[300];
    const char *base = strrchr(t->data_path, '/') ? strrchr(t->data_path, '/') + 1 : t->data_path;
    snprintf(title, sizeof title, "%s on %s", t->model->name, base);
    RtPlot p = {title, "Tokens seen", "Loss", s, t->data.val ? 2 : 1};
    bool ok = rt_plot_svg(&p, t->plot_path, err);
    free(x);
    return ok;
}
