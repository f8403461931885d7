/* rt_inst_gen.c — a response for each instruction entry and the book's
 * responses file (rt_inst_gen.h).
 *
 * Each entry's prompt is encoded and continued by rt_gen_run (the KV-cached
 * decode step of runtime/rt_sample.c); the new tokens are decoded as they
 * come, so that generation can stop at the stop marker instead of running
 * to max_new; the response is then cut from the new text as the book does.
 */
#define _GNU_SOURCE   /* memmem */
#include "runtime/rt_inst_gen.h"

#include "ir/outfile.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

RtRespondOptions rt_respond_defaults(void)
{
    return (RtRespondOptions){.style = RT_PROMPT_ALPACA, .max_new = 256, .seed = 123};
}

static const char *stop_marker(RtPromptStyle style)
{
    return style == RT_PROMPT_PHI3 ? "<|user|>" : "###";
}

/* Where the stop marker starts in text[0..len) after the first response
 * marker (or from the start without one); len when there is none. */
static size_t stop_at(const char *text, size_t len, RtPromptStyle style)
{
    const char *m = rt_inst_response_marker(style), *s = stop_marker(style);
    const char *from = memmem(text, len, m, strlen(m));
    size_t start = from ? (size_t)(from - text) + strlen(m) : 0;
    const char *at = memmem(text + start, len - start, s, strlen(s));
    return at ? (size_t)(at - text) : len;
}

char *rt_inst_extract(const char *text, size_t len, RtPromptStyle style)
{
    len = stop_at(text, len, style);
    const char *m = rt_inst_response_marker(style);
    size_t mlen = strlen(m), n = 0;
    char *out = malloc(len + 1);
    for (size_t i = 0; i < len;) {
        if (i + mlen <= len && !memcmp(text + i, m, mlen)) {
            i += mlen;
            continue;
        }
        out[n++] = text[i++];
    }
    size_t a = 0;
    while (a < n && isspace((unsigned char)out[a]))
        a++;
    while (n > a && isspace((unsigned char)out[n - 1]))
        n--;
    memmove(out, out + a, n - a);
    out[n - a] = 0;
    return out;
}

/* ---------------------------------------------------------------- generation */

typedef struct Collect {
    const RtTokenizer *tok;
    RtPromptStyle style;
    int32_t eot;
    char *text;
    size_t len, cap;
} Collect;

static void on_token(void *ctx, int32_t id)
{
    Collect *c = ctx;
    if (id == c->eot)
        return;
    size_t n;
    char *t = rt_tokenizer_decode(c->tok, &id, 1, &n, NULL);
    if (!t)
        return;
    if (c->len + n + 1 > c->cap) {
        c->cap = 2 * (c->len + n + 1);
        c->text = realloc(c->text, c->cap);
    }
    memcpy(c->text + c->len, t, n);
    c->len += n;
    c->text[c->len] = 0;
    free(t);
}

/* Only once the response marker is complete: the marker itself starts
 * with the alpaca stop marker "###". */
static bool stop(void *ctx)
{
    const Collect *c = ctx;
    const char *m = rt_inst_response_marker(c->style);
    return c->len && memmem(c->text, c->len, m, strlen(m)) &&
           stop_at(c->text, c->len, c->style) < c->len;
}

static bool respond_one(RtGen *gen, RtTokenizer *tok, const RtInstEntry *e,
                        const RtRespondOptions *o, RtSampler *s, char **response, IrError *err)
{
    char *prompt = rt_inst_prompt(e, o->style);
    int32_t *ids = NULL, *out = NULL;
    size_t n = 0, nout = 0;
    bool ok = rt_tokenizer_encode(tok, prompt, strlen(prompt), false, &ids, &n, err);
    free(prompt);
    Collect c = {tok, o->style, rt_tokenizer_eot(tok), calloc(1, 1), 0, 1};
    int64_t room = rt_gen_window(gen) - (int64_t)n;   /* the answer fits the context */
    int max_new = room < o->max_new ? (int)(room > 1 ? room : 1) : o->max_new;
    RtGenOptions go = {max_new, c.eot, on_token, &c, stop};
    ok = ok && rt_gen_run(gen, s, ids, n, &go, &out, &nout, err);
    if (ok)
        *response = rt_inst_extract(c.text, c.len, o->style);
    free(ids);
    free(out);
    free(c.text);
    return ok;
}

bool rt_inst_respond(RtGen *gen, RtTokenizer *tok, const RtInstEntry *const *e, int64_t n,
                     const RtRespondOptions *o, char **responses, IrError *err)
{
    RtSampler s;
    rt_sampler_init(&s, o->temperature, o->top_k, o->seed);
    int64_t every = n / 10 > 0 ? n / 10 : 1;
    for (int64_t i = 0; i < n; i++) {
        if (!respond_one(gen, tok, e[i], o, &s, &responses[i], err)) {
            ir_error_hint(err, "while generating the response to entry %lld",
                          (long long)e[i]->index);
            return false;
        }
        if (o->progress && ((i + 1) % every == 0 || i + 1 == n)) {
            fprintf(o->progress, "responses: %lld/%lld\n", (long long)(i + 1), (long long)n);
            fflush(o->progress);
        }
    }
    return true;
}

/* ---------------------------------------------------------------- the file */

/* Python's json.dump(indent=4) layout for one level of objects of scalars:
 * cJSON prints with tabs, so each entry is written key by key. */
static void write_entry(FILE *f, const cJSON *obj, const char *response)
{
    fputs("    {\n", f);
    for (const cJSON *k = obj->child; k; k = k->next) {
        cJSON *name = cJSON_CreateString(k->string), *tmp = cJSON_Duplicate(k, true);
        char *key = cJSON_PrintUnformatted(name), *val = cJSON_PrintUnformatted(tmp);
        fprintf(f, "        %s: %s,\n", key, val);
        cJSON_free(key);
        cJSON_free(val);
        cJSON_Delete(name);
        cJSON_Delete(tmp);
    }
    cJSON *r = cJSON_CreateString(response);
    char *val = cJSON_PrintUnformatted(r);
    fprintf(f, "        \"model_response\": %s\n    }", val);
    cJSON_free(val);
    cJSON_Delete(r);
}

bool rt_inst_write_responses(const char *path, const RtInstEntry *const *e, int64_t n,
                             char *const *responses, IrError *err)
{
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "responses file", err);
    if (!f)
        return false;
    fputs("[\n", f);
    for (int64_t i = 0; i < n; i++) {
        cJSON *obj = cJSON_Parse(e[i]->json);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "model_response");
        write_entry(f, obj, responses[i]);
        fputs(i + 1 < n ? ",\n" : "\n", f);
        cJSON_Delete(obj);
    }
    fputs("]\n", f);
    return ir_outfile_commit(&o, err);
}
