/* rt_hf.c — GPT-2 weights in the Hugging Face layout, both ways (rt_hf.h).
 *
 * One table (layer_map) says, for every param of a transformer block, which
 * HF tensor holds it and where: an HF tensor of [rows*D, cols*D] (or a
 * vector of cols*D) is cut into column blocks of width*D, and block `part`
 * is the gradc param, transposed for a matrix (Conv1D keeps [in, out],
 * gradc's nn.Linear layout [out, in]).  Import reads through the table one
 * way (slice), export the other (place), so the two cannot disagree.  The
 * embeddings and the final norm are plain copies (global_map).
 *
 * Both directions check the whole file first: every tensor is either one
 * the table expects, or one of the few known extras (the causal-mask
 * buffers and lm_head.weight on import; AdamW moments and the tokenizer
 * vocabulary on export), else the error names it.
 */
#include "runtime/rt_hf.h"
#include "runtime/rt_lora.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the mapping */

typedef struct LayerMap {
    const char *hf, *gradc;
    int rows;    /* the HF tensor's rows in units of D; 0: a vector */
    int cols;    /* its columns (or length) in units of D */
    int part;    /* the gradc param is column block `part`, of width `width` units of D */
    int width;
} LayerMap;

static const LayerMap layer_map[] = {
    {"ln_1.weight", "norm1.scale", 0, 1, 0, 1},
    {"ln_1.bias", "norm1.shift", 0, 1, 0, 1},
    {"attn.c_attn.weight", "att.W_query.weight", 1, 3, 0, 1},
    {"attn.c_attn.weight", "att.W_key.weight", 1, 3, 1, 1},
    {"attn.c_attn.weight", "att.W_value.weight", 1, 3, 2, 1},
    {"attn.c_attn.bias", "att.W_query.bias", 0, 3, 0, 1},
    {"attn.c_attn.bias", "att.W_key.bias", 0, 3, 1, 1},
    {"attn.c_attn.bias", "att.W_value.bias", 0, 3, 2, 1},
    {"attn.c_proj.weight", "att.out_proj.weight", 1, 1, 0, 1},
    {"attn.c_proj.bias", "att.out_proj.bias", 0, 1, 0, 1},
    {"ln_2.weight", "norm2.scale", 0, 1, 0, 1},
    {"ln_2.bias", "norm2.shift", 0, 1, 0, 1},
    {"mlp.c_fc.weight", "ff.layers.0.weight", 1, 4, 0, 4},
    {"mlp.c_fc.bias", "ff.layers.0.bias", 0, 4, 0, 4},
    {"mlp.c_proj.weight", "ff.layers.2.weight", 4, 1, 0, 1},
    {"mlp.c_proj.bias", "ff.layers.2.bias", 0, 1, 0, 1},
};
enum { NLAYER_MAP = sizeof layer_map / sizeof layer_map[0] };

/* The HF buffers of old files that hold no weights (the causal mask). */
static const char *const ignored_buffers[] = {"attn.bias", "attn.masked_bias"};

typedef enum Rows { ROWS_V, ROWS_P, ROWS_NONE } Rows;

typedef struct GlobalMap {
    const char *hf, *gradc;
    Rows rows;   /* [V, D], [P, D] or a vector [D] */
} GlobalMap;

static const GlobalMap global_map[] = {
    {"wte.weight", "tok_emb.weight", ROWS_V},
    {"wpe.weight", "pos_emb.weight", ROWS_P},
    {"ln_f.weight", "final_norm.scale", ROWS_NONE},
    {"ln_f.bias", "final_norm.shift", ROWS_NONE},
};
enum { NGLOBAL_MAP = sizeof global_map / sizeof global_map[0] };

#define PREFIX "transformer."

/* ---------------------------------------------------------------- tensors */

void rt_hf_tensors_free(RtHfTensors *ts)
{
    for (int i = 0; i < ts->n; i++)
        free(ts->t[i].data);
    free(ts->t);
    *ts = (RtHfTensors){0};
}

/* A new zeroed tensor of out, named and shaped; its data to fill. */
static float *push(RtHfTensors *ts, const char *name, int rank, int64_t d0, int64_t d1)
{
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 64;
        ts->t = ir_realloc(ts->t, sizeof *ts->t * (size_t)ts->cap);
    }
    RtHfTensor *t = &ts->t[ts->n++];
    *t = (RtHfTensor){.rank = rank, .shape = {d0, d1}};
    snprintf(t->name, sizeof t->name, "%s", name);
    int64_t numel = rank == 2 ? d0 * d1 : d0;
    t->data = ir_calloc((size_t)(numel ? numel : 1), sizeof(float));
    return t->data;
}

static void shape_str(char *buf, size_t n, int rank, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < rank && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
}

static bool has_shape(const RtCkptTensor *t, int rank, int64_t d0, int64_t d1)
{
    return t->rank == rank && t->shape[0] == d0 && (rank == 1 || t->shape[1] == d1);
}

static bool bad_shape(const char *file, const char *name, const RtCkptTensor *t, int rank,
                      int64_t d0, int64_t d1, IrError *err)
{
    char has[128], want[128];
    shape_str(has, sizeof has, t->rank, t->shape);
    shape_str(want, sizeof want, rank, (int64_t[]){d0, d1});
    ir_error(err, "'%s': tensor '%s' has shape %s, a GPT-2 of this size wants %s", file, name,
             has, want);
    ir_error_hint(err, "the file is damaged or of another model; give the model's config.json "
                  "with --config if its sizes are not GPT-2's own");
    return false;
}

/* ---------------------------------------------------------------- f16, bf16 */

static float f32_of_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE half to float, exactly: normals, subnormals, zeros, inf and NaN. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 0x3ffu;
    if (e == 31)
        return f32_of_bits(sign | 0x7f800000u | (m << 13));
    if (e)
        return f32_of_bits(sign | ((e + 112u) << 23) | (m << 13));
    float f = ldexpf((float)m, -24);   /* zero or subnormal: m * 2^-24, exact in f32 */
    return sign ? -f : f;
}

/* bfloat16 is the top half of an f32. */
static float bf16_to_f32(uint16_t h)
{
    return f32_of_bits((uint32_t)h << 16);
}

static bool float_dtype(RtDType dt)
{
    return dt == RT_DT_F32 || dt == RT_DT_F16 || dt == RT_DT_BF16;
}

/* t's values as f32 (malloc'd); t's dtype is one of float_dtype's. */
static float *to_f32(const RtCkptTensor *t)
{
    float *out = ir_malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    const unsigned char *p = t->data;
    if (t->dtype == RT_DT_F32) {
        memcpy(out, p, (size_t)t->bytes);
        return out;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = t->dtype == RT_DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    return out;
}

/* ---------------------------------------------------------------- names */

/* "transformer." when the file's names carry it, "" when not; NULL when
 * there is no wte.weight at all (an error). */
static const char *file_prefix(const RtCkpt *hf, IrError *err)
{
    bool bare = rt_ckpt_find(hf, "wte.weight"), pre = rt_ckpt_find(hf, PREFIX "wte.weight");
    if (bare != pre)
        return bare ? "" : PREFIX;
    if (bare)
        ir_error(err, "'%s' holds both wte.weight and " PREFIX "wte.weight", hf->path);
    else
        ir_error(err, "'%s': tensor 'wte.weight' is missing", hf->path);
    ir_error_hint(err, "import-gpt2 reads GPT-2 in the Hugging Face layout: wte.weight, "
                  "wpe.weight, h.N.*, ln_f.* (all with or all without 'transformer.')");
    return NULL;
}

/* The layer N of "h.N.REST" (after the prefix), with *rest at REST; -1 when
 * the name is not of that form. */
static int64_t layer_of(const char *name, const char *lead, const char **rest)
{
    size_t n = strlen(lead);
    if (strncmp(name, lead, n) || name[n] < '0' || name[n] > '9')
        return -1;
    char *end;
    long long v = strtoll(name + n, &end, 10);
    if (*end != '.' || v > 100000 || (name[n] == '0' && end != name + n + 1))
        return -1;
    *rest = end + 1;
    return v;
}

/* Whether REST is one of the HF tensor names of a block (in_map) or an
 * ignored buffer. */
static bool layer_hf_name(const char *rest, bool *ignored)
{
    *ignored = false;
    for (int k = 0; k < NLAYER_MAP; k++)
        if (!strcmp(rest, layer_map[k].hf))
            return true;
    for (size_t k = 0; k < sizeof ignored_buffers / sizeof *ignored_buffers; k++)
        if (!strcmp(rest, ignored_buffers[k]))
            return *ignored = true;
    return false;
}

/* ---------------------------------------------------------------- config */

static bool cfg_int(const cJSON *j, const char *key, const char *alt, int64_t *v,
                    const char *path, IrError *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!e && alt)
        e = cJSON_GetObjectItemCaseSensitive(j, alt);
    if (cJSON_IsNumber(e) && e->valuedouble >= 1 && e->valuedouble <= 1e9 &&
        e->valuedouble == floor(e->valuedouble)) {
        *v = (int64_t)e->valuedouble;
        return true;
    }
    ir_error(err, "'%s': %s %s", path, key, e ? "is not a positive integer" : "is missing");
    ir_error_where(err, "%s: /%s", path, key);
    ir_error_hint(err, "a GPT-2 config.json has n_embd, n_layer, n_head, n_positions and "
                  "vocab_size");
    return false;
}

static bool cfg_refuse(const char *path, const char *key, const char *what, IrError *err)
{
    ir_error(err, "'%s': %s %s; gradc's GPT-2 (models/gpt2-small.json) has not", path, key,
             what);
    ir_error_where(err, "%s: /%s", path, key);
    ir_error_hint(err, "only GPT-2's own settings import exactly: gelu_new, layer norm eps "
                  "1e-5, n_inner 4*n_embd, tied embeddings");
    return false;
}

/* The settings gradc's GPT-2 cannot express. */
static bool cfg_supported(const cJSON *j, const RtHfConfig *c, const char *path, IrError *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "activation_function");
    if (e && !(cJSON_IsString(e) && !strcmp(e->valuestring, "gelu_new")))
        return cfg_refuse(path, "activation_function", "is not gelu_new (tanh GELU)", err);
    e = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_epsilon");
    if (e && !(cJSON_IsNumber(e) && fabs(e->valuedouble - 1e-5) < 1e-12))
        return cfg_refuse(path, "layer_norm_epsilon", "is not 1e-5", err);
    e = cJSON_GetObjectItemCaseSensitive(j, "n_inner");
    if (e && !cJSON_IsNull(e) && !(cJSON_IsNumber(e) && e->valuedouble == 4.0 * (double)c->dim))
        return cfg_refuse(path, "n_inner", "is not null or 4*n_embd", err);
    e = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    if (e && !cJSON_IsTrue(e))
        return cfg_refuse(path, "tie_word_embeddings", "is not true", err);
    if (c->dim % c->heads == 0)
        return true;
    ir_error(err, "'%s': n_embd %lld is not a multiple of n_head %lld", path,
             (long long)c->dim, (long long)c->heads);
    ir_error_where(err, "%s: /n_head", path);
    return false;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 4096 + 1 > cap)
            buf = ir_realloc(buf, cap = 2 * cap + 8192);
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0 && n < (64u << 20));
    fclose(f);
    buf[n] = 0;
    return buf;
}

bool rt_hf_config_read(const char *path, RtHfConfig *cfg, IrError *err)
{
    char *text = read_all(path);
    if (!text) {
        ir_error(err, "cannot read config '%s'", path);
        ir_error_hint(err, "--config takes the model's config.json");
        return false;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    bool ok = cJSON_IsObject(j);
    if (!ok)
        ir_error(err, "'%s' is not a JSON object (a Hugging Face config.json)", path);
    ok = ok && cfg_int(j, "n_embd", NULL, &cfg->dim, path, err) &&
         cfg_int(j, "n_layer", NULL, &cfg->layers, path, err) &&
         cfg_int(j, "n_head", NULL, &cfg->heads, path, err) &&
         cfg_int(j, "n_positions", "n_ctx", &cfg->ctx, path, err) &&
         cfg_int(j, "vocab_size", NULL, &cfg->vocab, path, err) &&
         cfg_supported(j, cfg, path, err);
    cJSON_Delete(j);
    return ok;
}

/* ---------------------------------------------------------------- sizes */

static int64_t gpt2_heads(int64_t dim)
{
    static const int64_t table[][2] = {{768, 12}, {1024, 16}, {1280, 20}, {1600, 25}};
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        if (table[k][0] == dim)
            return table[k][1];
    return 0;
}

/* 1 + the largest N of the names LEAD N.* (0 when none): "h." in an HF
 * file, "trf_blocks." in a gradc checkpoint. */
static int64_t count_layers(const RtCkpt *hf, const char *prefix, const char *head)
{
    char lead[32];
    snprintf(lead, sizeof lead, "%s%s", prefix, head);
    int64_t L = 0;
    const char *rest;
    for (int i = 0; i < hf->n; i++) {
        int64_t N = layer_of(hf->t[i].name, lead, &rest);
        if (N >= L)
            L = N + 1;
    }
    return L;
}

static bool infer_from_shapes(const RtCkpt *hf, const RtCkptTensor *wte,
                              const RtCkptTensor *wpe, const char *prefix, RtHfConfig *cfg,
                              IrError *err)
{
    *cfg = (RtHfConfig){.vocab = wte->shape[0], .dim = wte->shape[1],
                        .ctx = wpe->rank == 2 ? wpe->shape[0] : 0,
                        .layers = count_layers(hf, prefix, "h."),
                        .heads = gpt2_heads(wte->shape[1])};
    if (!cfg->heads) {
        ir_error(err, "'%s': n_embd is %lld (from %swte.weight), not one of GPT-2's (768, "
                 "1024, 1280, 1600), so the head count is unknown", hf->path,
                 (long long)cfg->dim, prefix);
        ir_error_hint(err, "give the model's config.json with --config");
        return false;
    }
    if (cfg->layers)
        return true;
    ir_error(err, "'%s': tensor '%sh.0.ln_1.weight' is missing (no transformer blocks)",
             hf->path, prefix);
    return false;
}

/* config.json's sizes against the embeddings' shapes. */
static bool check_given(const RtCkpt *hf, const RtCkptTensor *wte, const RtCkptTensor *wpe,
                        const char *prefix, const RtHfConfig *g, IrError *err)
{
    char name[64];
    snprintf(name, sizeof name, "%swte.weight", prefix);
    if (!has_shape(wte, 2, g->vocab, g->dim))
        return bad_shape(hf->path, name, wte, 2, g->vocab, g->dim, err);
    snprintf(name, sizeof name, "%swpe.weight", prefix);
    if (!has_shape(wpe, 2, g->ctx, g->dim))
        return bad_shape(hf->path, name, wpe, 2, g->ctx, g->dim, err);
    return true;
}

static const RtCkptTensor *find_pre(const RtCkpt *hf, const char *prefix, const char *name)
{
    char full[160];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return rt_ckpt_find(hf, full);
}

static bool missing(const RtCkpt *hf, const char *prefix, const char *name, IrError *err)
{
    ir_error(err, "'%s': tensor '%s%s' is missing", hf->path, prefix, name);
    ir_error_hint(err, "the file is not a whole GPT-2 in the Hugging Face layout (a shard of "
                  "a larger checkpoint, or another model)");
    return false;
}

bool rt_hf_infer(const RtCkpt *hf, const RtHfConfig *given, RtHfConfig *cfg, IrError *err)
{
    const char *prefix = file_prefix(hf, err);
    if (!prefix)
        return false;
    const RtCkptTensor *wte = find_pre(hf, prefix, "wte.weight");
    const RtCkptTensor *wpe = find_pre(hf, prefix, "wpe.weight");
    if (!wpe)
        return missing(hf, prefix, "wpe.weight", err);
    if (given) {
        *cfg = *given;
        return check_given(hf, wte, wpe, prefix, given, err);
    }
    if (wte->rank != 2) {
        ir_error(err, "'%s': tensor '%swte.weight' has rank %d, not 2 ([vocab, n_embd])",
                 hf->path, prefix, wte->rank);
        return false;
    }
    return infer_from_shapes(hf, wte, wpe, prefix, cfg, err);
}

/* ---------------------------------------------------------------- import */

static bool extra(const char *file, const char *name, const char *why, IrError *err)
{
    ir_error(err, "'%s': tensor '%s' %s", file, name, why);
    ir_error_hint(err, "a GPT-2 in the Hugging Face layout holds wte, wpe, h.0..h.%s, ln_f "
                  "and optionally lm_head.weight; remove the others or check the model",
                  "{n_layer-1}");
    return false;
}

/* Whether an HF tensor name (prefix stripped) is one import expects or
 * ignores; lm_head.weight is checked later. */
static bool known_hf(const char *rest, const RtHfConfig *cfg)
{
    for (int k = 0; k < NGLOBAL_MAP; k++)
        if (!strcmp(rest, global_map[k].hf))
            return true;
    const char *tail;
    bool ignored;
    int64_t N = layer_of(rest, "h.", &tail);
    return N >= 0 && N < cfg->layers && layer_hf_name(tail, &ignored);
}

/* Every tensor of hf is known, of a float dtype where it is read. */
static bool check_names(const RtCkpt *hf, const char *prefix, const RtHfConfig *cfg,
                        IrError *err)
{
    size_t np = strlen(prefix);
    for (int i = 0; i < hf->n; i++) {
        const RtCkptTensor *t = &hf->t[i];
        if (!strcmp(t->name, "lm_head.weight"))
            continue;
        bool pre = !strncmp(t->name, prefix, np);
        const char *tail;
        bool ignored = false;
        int64_t N = pre ? layer_of(t->name + np, "h.", &tail) : -1;
        if (!pre || !known_hf(t->name + np, cfg))
            return extra(hf->path, t->name, N >= cfg->layers
                         ? "belongs to a layer past n_layer" : "is not part of GPT-2", err);
        if (N >= 0)
            layer_hf_name(tail, &ignored);
        if (!ignored && !float_dtype(t->dtype))
            return extra(hf->path, t->name, "is not F32, F16 or BF16", err);
    }
    return true;
}

/* hf's tensor NAME (after the prefix) as f32 of the given shape, or NULL. */
static float *read_hf(const RtCkpt *hf, const char *prefix, const char *name, int rank,
                      int64_t d0, int64_t d1, IrError *err)
{
    const RtCkptTensor *t = find_pre(hf, prefix, name);
    if (!t)
        return missing(hf, prefix, name, err), NULL;
    if (!has_shape(t, rank, d0, d1)) {
        char full[160];
        snprintf(full, sizeof full, "%s%s", prefix, name);
        return bad_shape(hf->path, full, t, rank, d0, d1, err), NULL;
    }
    return to_f32(t);
}

static int64_t rows_of(Rows r, const RtHfConfig *cfg)
{
    return r == ROWS_V ? cfg->vocab : r == ROWS_P ? cfg->ctx : cfg->dim;
}

static bool import_global(const RtCkpt *hf, const char *prefix, const GlobalMap *m,
                          const RtHfConfig *cfg, RtHfTensors *out, IrError *err)
{
    int rank = m->rows == ROWS_NONE ? 1 : 2;
    int64_t d0 = rows_of(m->rows, cfg), d1 = cfg->dim;
    float *x = read_hf(hf, prefix, m->hf, rank, d0, d1, err);
    if (!x)
        return false;
    memcpy(push(out, m->gradc, rank, d0, d1), x, sizeof *x * (size_t)(rank == 2 ? d0 * d1 : d0));
    free(x);
    return true;
}

/* Column block `part` (width W) of x [R, C] transposed into out [W, R],
 * or of a vector x [C] into out [W]. */
static void slice(const float *x, const LayerMap *m, int64_t D, float *out)
{
    int64_t R = m->rows * D, C = m->cols * D, W = m->width * D, c0 = m->part * W;
    if (!m->rows) {
        memcpy(out, x + c0, sizeof *out * (size_t)W);
        return;
    }
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < W; j++)
            out[j * R + i] = x[i * C + c0 + j];
}

static bool import_layer(const RtCkpt *hf, const char *prefix, int64_t N, const RtHfConfig *cfg,
                         RtHfTensors *out, IrError *err)
{
    int64_t D = cfg->dim;
    float *x = NULL;
    for (int k = 0; k < NLAYER_MAP; k++) {
        const LayerMap *m = &layer_map[k];
        char name[128], gname[128];
        snprintf(name, sizeof name, "h.%lld.%s", (long long)N, m->hf);
        if (k == 0 || strcmp(m->hf, layer_map[k - 1].hf)) {
            free(x);
            x = read_hf(hf, prefix, name, m->rows ? 2 : 1, m->rows ? m->rows * D : m->cols * D,
                        m->cols * D, err);
            if (!x)
                return false;
        }
        snprintf(gname, sizeof gname, "trf_blocks.%lld.%s", (long long)N, m->gradc);
        int64_t W = m->width * D;
        slice(x, m, D, push(out, gname, m->rows ? 2 : 1, W, m->rows * D));
    }
    free(x);
    return true;
}

/* lm_head.weight, when present, must be wte.weight (out[0] holds it). */
static bool check_lm_head(const RtCkpt *hf, const RtHfConfig *cfg, const RtHfTensors *out,
                          IrError *err)
{
    const RtCkptTensor *t = rt_ckpt_find(hf, "lm_head.weight");
    if (!t)
        return true;
    float *x = read_hf(hf, "", "lm_head.weight", 2, cfg->vocab, cfg->dim, err);
    if (!x)
        return false;
    bool same = !memcmp(x, out->t[0].data, sizeof *x * (size_t)(cfg->vocab * cfg->dim));
    free(x);
    if (same)
        return true;
    ir_error(err, "'%s': tensor 'lm_head.weight' differs from wte.weight", hf->path);
    ir_error_hint(err, "gradc's GPT-2 ties the output head to the token embedding "
                  "(tie_embeddings=1), as GPT-2 does; an untied head cannot be imported");
    return false;
}

bool rt_hf_import(const RtCkpt *hf, const RtHfConfig *cfg, RtHfTensors *out, IrError *err)
{
    *out = (RtHfTensors){0};
    const char *prefix = file_prefix(hf, err);
    bool ok = prefix && check_names(hf, prefix, cfg, err);
    for (int k = 0; ok && k < 2; k++)   /* tok_emb, pos_emb first */
        ok = import_global(hf, prefix, &global_map[k], cfg, out, err);
    for (int64_t N = 0; ok && N < cfg->layers; N++)
        ok = import_layer(hf, prefix, N, cfg, out, err);
    for (int k = 2; ok && k < NGLOBAL_MAP; k++)
        ok = import_global(hf, prefix, &global_map[k], cfg, out, err);
    ok = ok && check_lm_head(hf, cfg, out, err);
    if (!ok)
        rt_hf_tensors_free(out);
    return ok;
}

/* ---------------------------------------------------------------- export */

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* The default RtHfParamFn: P with its LoRA adapters folded in when c has
 * any for it (rt_lora_merged), else c's f32 tensor P, copied when
 * misaligned.  tok_emb.weight's adapters belong to the tied head's matmul,
 * not to the embedding lookup: export_head folds them into lm_head. */
static const float *plain_param(void *ctx, const RtCkpt *c, const char *P, bool *found,
                                float **owned, IrError *err)
{
    (void)ctx;
    *owned = NULL;
    *found = false;
    if (strcmp(P, "tok_emb.weight") && ((*owned = rt_lora_merged(c, P, found, err)) || *found))
        return *owned;
    const RtCkptTensor *t = rt_ckpt_find(c, P);
    *found = t != NULL;
    *owned = NULL;
    if (!t)
        return NULL;
    if (t->dtype != RT_DT_F32) {
        ir_error(err, "checkpoint '%s': param '%s' is %s, not F32", c->path, P,
                 rt_dtype_name(t->dtype));
        return NULL;
    }
    if ((uintptr_t)t->data % sizeof(float) == 0)
        return t->data;
    *owned = ir_malloc((size_t)t->bytes + 1);
    memcpy(*owned, t->data, (size_t)t->bytes);
    return *owned;
}

typedef struct Export {
    const RtCkpt *c;
    RtHfParamFn get;
    void *ctx;
    RtHfConfig *cfg;
    IrError *err;
} Export;

static bool not_gpt2(const Export *x, const char *name, const char *why)
{
    ir_error(x->err, "checkpoint '%s': %s '%s'%s", x->c->path,
             why ? "tensor" : "param", name, why ? why : " is missing");
    ir_error_hint(x->err, "export-gpt2 writes models of models/gpt2-small.json's shape "
                  "(tok_emb, pos_emb, trf_blocks.N.*, final_norm; a tied or [vocab, emb_dim] "
                  "out_head)");
    return false;
}

/* Whether a gradc tensor name is a param of the GPT-2 (or out_head). */
static bool known_gradc(const char *name, const RtHfConfig *cfg)
{
    for (int k = 0; k < NGLOBAL_MAP; k++)
        if (!strcmp(name, global_map[k].gradc))
            return true;
    if (!strcmp(name, "out_head.weight"))
        return true;
    const char *rest;
    int64_t N = layer_of(name, "trf_blocks.", &rest);
    for (int k = 0; N >= 0 && N < cfg->layers && k < NLAYER_MAP; k++)
        if (!strcmp(rest, layer_map[k].gradc))
            return true;
    return false;
}

/* Optimizer moments, the tokenizer and adapters are not params to place. */
static bool skipped_gradc(const char *name)
{
    return !strncmp(name, "adam.", 5) || !strncmp(name, "tokenizer.", 10) ||
           ends_with(name, ".lora_A") || ends_with(name, ".lora_B");
}

static bool export_sizes(Export *x)
{
    const RtCkptTensor *te = rt_ckpt_find(x->c, "tok_emb.weight");
    const RtCkptTensor *pe = rt_ckpt_find(x->c, "pos_emb.weight");
    if (!te || te->rank != 2)
        return not_gpt2(x, "tok_emb.weight", te ? " is not [vocab, emb_dim]" : NULL);
    if (!pe || pe->rank != 2)
        return not_gpt2(x, "pos_emb.weight", pe ? " is not [context_length, emb_dim]" : NULL);
    *x->cfg = (RtHfConfig){.vocab = te->shape[0], .dim = te->shape[1], .ctx = pe->shape[0],
                           .layers = count_layers(x->c, "", "trf_blocks.")};
    for (int i = 0; i < x->c->n; i++) {
        const char *name = x->c->t[i].name;
        if (!skipped_gradc(name) && !known_gradc(name, x->cfg))
            return not_gpt2(x, name, " has no place in GPT-2's Hugging Face layout");
    }
    return x->cfg->layers ? true : not_gpt2(x, "trf_blocks.0.norm1.scale", NULL);
}

/* gradc param P through get, shape-checked ([d0, d1] or [d0]); NULL with
 * *found = false when absent and `optional`. */
static const float *get_param(Export *x, const char *P, int rank, int64_t d0, int64_t d1,
                              bool optional, bool *found, float **owned)
{
    const float *p = x->get(x->ctx, x->c, P, found, owned, x->err);
    if (!p && !*found && !x->err->set && !optional)
        not_gpt2(x, P, NULL);
    if (!p)
        return NULL;
    const RtCkptTensor *t = rt_ckpt_find(x->c, P);
    if (t && !has_shape(t, rank, d0, d1)) {
        char has[128], want[128];
        shape_str(has, sizeof has, t->rank, t->shape);
        shape_str(want, sizeof want, rank, (int64_t[]){d0, d1});
        ir_error(x->err, "checkpoint '%s': param '%s' has shape %s, GPT-2 with emb_dim %lld "
                 "wants %s", x->c->path, P, has, (long long)x->cfg->dim, want);
        free(*owned);
        *owned = NULL;
        return NULL;
    }
    return p;
}

static bool export_global(Export *x, const GlobalMap *m, const char *prefix, RtHfTensors *out)
{
    int rank = m->rows == ROWS_NONE ? 1 : 2;
    int64_t d0 = rows_of(m->rows, x->cfg), d1 = x->cfg->dim;
    bool found;
    float *owned;
    const float *p = get_param(x, m->gradc, rank, d0, d1, false, &found, &owned);
    if (!p)
        return false;
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, m->hf);
    memcpy(push(out, name, rank, d0, d1), p, sizeof *p * (size_t)(rank == 2 ? d0 * d1 : d0));
    free(owned);
    return true;
}

/* The inverse of slice: p [W, R] (or [W]) into column block `part` of x. */
static void place(const float *p, const LayerMap *m, int64_t D, float *x)
{
    int64_t R = m->rows * D, C = m->cols * D, W = m->width * D, c0 = m->part * W;
    if (!m->rows) {
        memcpy(x + c0, p, sizeof *p * (size_t)W);
        return;
    }
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < W; j++)
            x[i * C + c0 + j] = p[j * R + i];
}

/* The three attention biases are all there, or all absent (qkv_bias=0:
 * c_attn.bias stays zero). */
static bool qkv_bias_optional(Export *x, int64_t N, const LayerMap *m, bool *ok)
{
    if (strcmp(m->hf, "attn.c_attn.bias"))
        return false;
    int have = 0;
    for (int k = 0; k < 3; k++) {
        char P[128];
        snprintf(P, sizeof P, "trf_blocks.%lld.%s", (long long)N, layer_map[5 + k].gradc);
        have += rt_ckpt_find(x->c, P) != NULL;
    }
    *ok = have == 0 || have == 3;
    if (!*ok)
        ir_error(x->err, "checkpoint '%s': block %lld has %d of the three attention biases "
                 "(W_query/W_key/W_value.bias)", x->c->path, (long long)N, have);
    return have == 0;
}

static bool export_layer(Export *x, int64_t N, const char *prefix, RtHfTensors *out)
{
    int64_t D = x->cfg->dim;
    float *dst = NULL;
    for (int k = 0; k < NLAYER_MAP; k++) {
        const LayerMap *m = &layer_map[k];
        char name[160], P[128];
        if (k == 0 || strcmp(m->hf, layer_map[k - 1].hf)) {
            snprintf(name, sizeof name, "%sh.%lld.%s", prefix, (long long)N, m->hf);
            dst = push(out, name, m->rows ? 2 : 1, m->rows ? m->rows * D : m->cols * D,
                       m->cols * D);
        }
        bool ok = true, found;
        if (qkv_bias_optional(x, N, m, &ok) || !ok) {
            if (!ok)
                return false;
            continue;
        }
        snprintf(P, sizeof P, "trf_blocks.%lld.%s", (long long)N, m->gradc);
        float *owned;
        const float *p = get_param(x, P, m->rows ? 2 : 1, m->width * D, m->rows * D, false,
                                   &found, &owned);
        if (!p)
            return false;
        place(p, m, D, dst);
        free(owned);
    }
    return true;
}

/* lm_head.weight when the head differs from wte: an untied out_head.weight,
 * or a tied head with LoRA adapters (tok_emb.weight.lora_A/B: the pass put
 * them on the head's matmul, which the embedding lookup does not see, so
 * one wte cannot hold both and the exported head is untied). */
static bool export_head(Export *x, RtHfTensors *out)
{
    bool found;
    float *owned;
    int64_t V = x->cfg->vocab, D = x->cfg->dim;
    const float *p = get_param(x, "out_head.weight", 2, V, D, true, &found, &owned);
    if (!p && !x->err->set)
        p = owned = rt_lora_merged(x->c, "tok_emb.weight", &found, x->err);
    if (!p)
        return !x->err->set;
    if (memcmp(p, out->t[0].data, sizeof *p * (size_t)(V * D)))
        memcpy(push(out, "lm_head.weight", 2, V, D), p, sizeof *p * (size_t)(V * D));
    free(owned);
    return true;
}

bool rt_hf_export(const RtCkpt *c, bool prefix, RtHfParamFn get, void *ctx, RtHfTensors *out,
                  RtHfConfig *cfg, IrError *err)
{
    *out = (RtHfTensors){0};
    Export x = {c, get ? get : plain_param, ctx, cfg, err};
    const char *pre = prefix ? PREFIX : "";
    bool ok = export_sizes(&x);
    for (int k = 0; ok && k < 2; k++)
        ok = export_global(&x, &global_map[k], pre, out);
    for (int64_t N = 0; ok && N < cfg->layers; N++)
        ok = export_layer(&x, N, pre, out);
    for (int k = 2; ok && k < NGLOBAL_MAP; k++)
        ok = export_global(&x, &global_map[k], pre, out);
    ok = ok && export_head(&x, out);
    if (!ok)
        rt_hf_tensors_free(out);
    return ok;
}
