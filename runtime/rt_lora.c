/* rt_lora.c — LoRA adapters in checkpoints: the metadata `lora`, and the
 * merged weights P + s.A.B (see rt_lora.h for the format).
 *
 * The metadata is written from the adapted graph itself: every param named
 * P.lora_A is an adapter of the param P, and P's layout (tb) is that of the
 * matmul that reads P as its weight.  Reading checks everything a merge
 * relies on against the tensors (P, A and B present, F32, 2-D, shapes
 * [in,out] or [out,in] by tb, [in,r] and [r,out]) and names the tensor and
 * the checkpoint when one is wrong.  A merged element is computed in double
 * (P + s * sum_k A[i,k] B[k,j]) and rounded once to f32.
 */
#include "runtime/rt_lora.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rt_lora_is_adapter(const char *name)
{
    return pass_lora_is_adapter(name);
}

/* ---------------------------------------------------------------- writing */

static int weight_tb(const IrGraph *g, const IrNode *p)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op == OP_MATMUL && n->nin == 2 && n->in[1] == p)
            return ir_node_int(n, ATTR_TB, 0) ? 1 : 0;
    }
    return -1;
}

/* every P with a param P.lora_A, read as a matmul's weight, with its tb */
static int add_targets(const IrGraph *g, cJSON *targets)
{
    int n = 0;
    char base[512];
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *a = g->nodes[i];
        size_t len = a->op == OP_PARAM && a->name ? strlen(a->name) : 0;
        if (len <= 7 || strcmp(a->name + len - 7, ".lora_A") || len - 7 >= sizeof base)
            continue;
        snprintf(base, sizeof base, "%.*s", (int)(len - 7), a->name);
        const IrNode *p = ir_graph_find(g, OP_PARAM, base);
        int tb = p ? weight_tb(g, p) : -1;
        if (tb < 0)
            continue;
        cJSON *t = cJSON_AddObjectToObject(targets, base);
        cJSON_AddNumberToObject(t, "tb", tb);
        n++;
    }
    return n;
}

char *rt_lora_meta_json(const IrGraph *g, const PassLoraOpts *o)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "rank", o->rank);
    cJSON_AddNumberToObject(root, "alpha", pass_lora_alpha(o));
    cJSON_AddNumberToObject(root, "scale", pass_lora_scale(o));
    cJSON_AddStringToObject(root, "scale_mode", pass_lora_scale_name(o->scale));
    cJSON *globs = cJSON_AddArrayToObject(root, "globs");
    for (int i = 0; i < o->ntargets; i++)
        cJSON_AddItemToArray(globs, cJSON_CreateString(o->targets[i]));
    cJSON *targets = cJSON_AddObjectToObject(root, "targets");
    char *s = add_targets(g, targets) > 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* ---------------------------------------------------------------- reading the metadata */

static bool bad_meta(IrError *err, const RtCkpt *c, const char *what)
{
    ir_error(err, "checkpoint '%s': metadata '%s' %s", c->path, RT_LORA_META, what);
    ir_error_hint(err, "it is written by gradc with the adapters; was it edited?");
    return false;
}

static bool has_adapters(const RtCkpt *c)
{
    for (int i = 0; i < c->n; i++)
        if (rt_lora_is_adapter(c->t[i].name))
            return true;
    return false;
}

static bool read_opts(const RtCkpt *c, const cJSON *root, RtLoraMeta *m, IrError *err)
{
    const cJSON *rank = cJSON_GetObjectItemCaseSensitive(root, "rank");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(root, "alpha");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(root, "scale");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(root, "scale_mode");
    const cJSON *globs = cJSON_GetObjectItemCaseSensitive(root, "globs");
    if (!cJSON_IsNumber(rank) || rank->valuedouble < 1 || rank->valuedouble > 1e6 ||
        !cJSON_IsNumber(alpha) || !cJSON_IsNumber(scale) || !cJSON_IsString(mode))
        return bad_meta(err, c, "lacks a number rank (>= 1), alpha or scale, or scale_mode");
    bool book = !strcmp(mode->valuestring, "alpha");
    if (!book && strcmp(mode->valuestring, "alpha/r"))
        return bad_meta(err, c, "has a scale_mode other than alpha/r and alpha");
    m->opts.rank = rank->valueint;
    m->opts.alpha = alpha->valuedouble;
    m->opts.scale = book ? PASS_LORA_ALPHA : PASS_LORA_ALPHA_R;
    m->scale = scale->valuedouble;
    const cJSON *gl;
    cJSON_ArrayForEach(gl, globs) {
        if (!cJSON_IsString(gl) || m->opts.ntargets == PASS_MAX_LORA_TARGETS)
            return bad_meta(err, c, "has globs that are not up to 16 strings");
        m->globs[m->opts.ntargets] = strdup(gl->valuestring);
        m->opts.targets[m->opts.ntargets] = m->globs[m->opts.ntargets];
        m->opts.ntargets++;
    }
    return true;
}

static bool read_targets(const RtCkpt *c, const cJSON *root, RtLoraMeta *m, IrError *err)
{
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(root, "targets"), *t;
    if (!cJSON_IsObject(targets))
        return bad_meta(err, c, "has no object 'targets'");
    int n = cJSON_GetArraySize(targets);
    m->target = calloc((size_t)n + 1, sizeof *m->target);
    m->tb = calloc((size_t)n + 1, sizeof *m->tb);
    cJSON_ArrayForEach(t, targets) {
        const cJSON *tb = cJSON_GetObjectItemCaseSensitive(t, "tb");
        if (!cJSON_IsNumber(tb) || (tb->valuedouble != 0 && tb->valuedouble != 1))
            return bad_meta(err, c, "has a target without tb 0 or 1");
        m->target[m->ntargets] = strdup(t->string);
        m->tb[m->ntargets++] = tb->valueint;
    }
    return true;
}

bool rt_lora_meta_read(const RtCkpt *c, RtLoraMeta *m, bool *found, IrError *err)
{
    memset(m, 0, sizeof *m);
    const char *json = rt_ckpt_meta_get(c, RT_LORA_META);
    *found = json != NULL;
    if (!json && has_adapters(c)) {
        ir_error(err, "checkpoint '%s' holds LoRA adapters (*.lora_A, *.lora_B) but no "
                 "metadata '%s' that says how to fold them in", c->path, RT_LORA_META);
        ir_error_hint(err, "was it written by gradc? the metadata is written with the adapters");
        return false;
    }
    if (!json)
        return true;
    cJSON *root = cJSON_Parse(json);
    bool ok = cJSON_IsObject(root) ? read_opts(c, root, m, err) && read_targets(c, root, m, err)
                                   : bad_meta(err, c, "is not a JSON object");
    cJSON_Delete(root);
    if (!ok)
        rt_lora_meta_free(m);
    return ok;
}

void rt_lora_meta_free(RtLoraMeta *m)
{
    for (int i = 0; i < m->ntargets; i++)
        free(m->target[i]);
    for (int i = 0; i < m->opts.ntargets; i++)
        free(m->globs[i]);
    free(m->target);
    free(m->tb);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- merging */

static const RtCkptTensor *tensor(const RtCkpt *c, const char *name, IrError *err)
{
    const RtCkptTensor *t = rt_ckpt_find(c, name);
    if (!t)
        ir_error(err, "checkpoint '%s': no tensor '%s', which metadata '%s' names",
                 c->path, name, RT_LORA_META);
    else if (t->dtype != RT_DT_F32 || t->rank != 2)
        ir_error(err, "checkpoint '%s': tensor '%s' is %s with %d dims; LoRA merges 2-D F32 "
                 "tensors", c->path, name, rt_dtype_name(t->dtype), t->rank);
    else
        return t;
    ir_error_hint(err, "was the checkpoint edited, or written by another program?");
    return NULL;
}

/* A [in,r], B [r,out] and P [in,out] (tb=0) or [out,in] (tb=1) agree */
static bool shapes_agree(const RtCkpt *c, const RtCkptTensor *p, const RtCkptTensor *a,
                         const RtCkptTensor *b, int tb, IrError *err)
{
    int64_t in = p->shape[tb ? 1 : 0], out = p->shape[tb ? 0 : 1];
    if (a->shape[0] == in && b->shape[1] == out && a->shape[1] == b->shape[0])
        return true;
    ir_error(err, "checkpoint '%s': adapters '%s' [%lld,%lld] and '%s' [%lld,%lld] do not fit "
             "'%s' [%lld,%lld] (tb=%d: A is [in,r], B [r,out])", c->path, a->name,
             (long long)a->shape[0], (long long)a->shape[1], b->name, (long long)b->shape[0],
             (long long)b->shape[1], p->name, (long long)p->shape[0], (long long)p->shape[1],
             tb);
    ir_error_hint(err, "was the checkpoint edited, or written by another program?");
    return false;
}

/* w = P + s.A.B, or + s.(A.B)^T */
static float *fold(const RtCkptTensor *p, const RtCkptTensor *a, const RtCkptTensor *b,
                   int tb, double s)
{
    int64_t in = a->shape[0], r = a->shape[1], out = b->shape[1];
    const float *P = p->data, *A = a->data, *B = b->data;
    float *w = ir_malloc((size_t)p->numel * sizeof *w);
    for (int64_t i = 0; i < in; i++)
        for (int64_t j = 0; j < out; j++) {
            double acc = 0;
            for (int64_t k = 0; k < r; k++)
                acc += (double)A[i * r + k] * (double)B[k * out + j];
            int64_t at = tb ? j * in + i : i * out + j;
            w[at] = (float)((double)P[at] + s * acc);
        }
    return w;
}

static int target_index(const RtLoraMeta *m, const char *P)
{
    for (int i = 0; i < m->ntargets; i++)
        if (!strcmp(m->target[i], P))
            return i;
    return -1;
}

static float *merged_with(const RtCkpt *c, const RtLoraMeta *m, const char *P, bool *found,
                          IrError *err)
{
    char an[600], bn[600];
    snprintf(an, sizeof an, "%s.lora_A", P);
    snprintf(bn, sizeof bn, "%s.lora_B", P);
    int k = target_index(m, P);
    *found = k >= 0 || rt_ckpt_find(c, an) || rt_ckpt_find(c, bn);
    if (!*found)
        return NULL;
    if (k < 0) {
        ir_error(err, "checkpoint '%s' holds adapters of '%s' that its metadata '%s' does not "
                 "list", c->path, P, RT_LORA_META);
        ir_error_hint(err, "was the checkpoint edited, or written by another program?");
        return NULL;
    }
    const RtCkptTensor *p = tensor(c, P, err), *a = p ? tensor(c, an, err) : NULL;
    const RtCkptTensor *b = a ? tensor(c, bn, err) : NULL;
    if (!b || !shapes_agree(c, p, a, b, m->tb[k], err))
        return NULL;
    return fold(p, a, b, m->tb[k], m->scale);
}

float *rt_lora_merged(const RtCkpt *c, const char *P, bool *found, IrError *err)
{
    RtLoraMeta m;
    bool meta;
    *found = false;
    if (!rt_lora_meta_read(c, &m, &meta, err)) {
        *found = true;
        return NULL;
    }
    float *w = meta ? merged_with(c, &m, P, found, err) : NULL;
    rt_lora_meta_free(&m);
    return w;
}

/* ---------------------------------------------------------------- rt_lora_merge_file */

static bool copy_merged(const RtCkpt *c, const RtLoraMeta *m, RtCkptWriter *w, float **owned,
                        IrError *err)
{
    for (int i = 0; i < c->n; i++) {
        const RtCkptTensor *t = &c->t[i];
        if (rt_lora_is_adapter(t->name))
            continue;
        bool found = false;
        const void *data = t->data;
        if (m && target_index(m, t->name) >= 0) {
            owned[i] = merged_with(c, m, t->name, &found, err);
            if (!owned[i])
                return false;
            data = owned[i];
        }
        rt_ckpt_add(w, t->name, t->dtype, t->rank, t->shape, data);
    }
    for (int i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i].key, RT_LORA_META))
            rt_ckpt_meta(w, c->meta[i].key, c->meta[i].value);
    return true;
}

bool rt_lora_merge_file(const char *in, const char *out, IrError *err)
{
    RtCkpt *c = rt_ckpt_read(in, err);
    if (!c)
        return false;
    RtLoraMeta m;
    bool meta, ok = rt_lora_meta_read(c, &m, &meta, err);
    float **owned = ir_calloc((size_t)c->n + 1, sizeof *owned);
    RtCkptWriter *w = rt_ckpt_writer_new();
    ok = ok && copy_merged(c, meta ? &m : NULL, w, owned, err) && rt_ckpt_write(w, out, err);
    rt_ckpt_writer_free(w);
    for (int i = 0; i < c->n; i++)
        free(owned[i]);
    free(owned);
    if (meta)
        rt_lora_meta_free(&m);
    rt_ckpt_free(c);
    return ok;
}
