/* rt_inst_data.c — the instruction data set: the book's prompt formats, the
 * 85/10/5 split, tokens, the padded width, batches as custom_collate_fn
 * makes them, and the batch dump the parity oracle reads (rt_inst_data.h
 * says what each step does; rt_inst_read.c reads the files).
 *
 * The split works on entry indices (a seeded permutation when asked, then
 * three cuts); examples point at the entries of the set, which the data set
 * owns, so nothing is copied.  Every row of a batch is computed on its own
 * (rt_inst_row): with every row padded to the same width T, the book's
 * per-batch padding only decides where the dump cuts the rows.
 */
#include "runtime/rt_inst_data.h"

#include "ir/rng.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- prompts */

#define ALPACA_HEAD "Below is an instruction that describes a task. Write a response that " \
                    "appropriately completes the request."

bool rt_prompt_style_parse(const char *name, RtPromptStyle *s)
{
    if (!strcmp(name, "alpaca"))
        *s = RT_PROMPT_ALPACA;
    else if (!strcmp(name, "phi3"))
        *s = RT_PROMPT_PHI3;
    else
        return false;
    return true;
}

const char *rt_prompt_style_name(RtPromptStyle s)
{
    return s == RT_PROMPT_PHI3 ? "phi3" : "alpaca";
}

/* a + b + c + d, malloc'd. */
static char *cat4(const char *a, const char *b, const char *c, const char *d)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d);
    char *s = malloc(n + 1);
    if (s)
        snprintf(s, n + 1, "%s%s%s%s", a, b, c, d);
    return s;
}

char *rt_inst_prompt(const RtInstEntry *e, RtPromptStyle s)
{
    bool in = e->input && e->input[0];
    if (s == RT_PROMPT_PHI3)
        return cat4("<|user|>\n", e->instruction, in ? "\n" : "", in ? e->input : "");
    return cat4(ALPACA_HEAD "\n\n### Instruction:\n", e->instruction,
                in ? "\n\n### Input:\n" : "", in ? e->input : "");
}

char *rt_inst_response_text(const RtInstEntry *e, RtPromptStyle s)
{
    return cat4(s == RT_PROMPT_PHI3 ? "\n<|assistant|>:\n" : "\n\n### Response:\n", e->output,
                "", "");
}

const char *rt_inst_response_marker(RtPromptStyle s)
{
    return s == RT_PROMPT_PHI3 ? "<|assistant|>:" : "### Response:";
}

/* ---------------------------------------------------------------- tokens */

bool rt_inst_encode(RtTokenizer *tok, const RtInstEntry *e, RtPromptStyle style,
                    RtInstExample *ex, IrError *err)
{
    char *prompt = rt_inst_prompt(e, style), *resp = rt_inst_response_text(e, style);
    char *all = prompt && resp ? cat4(prompt, resp, "", "") : NULL;
    int32_t *pids = NULL;
    size_t n = 0, pn = 0;
    *ex = (RtInstExample){.entry = e};
    bool ok = all != NULL;
    if (!ok)
        ir_error(err, "out of memory");
    ok = ok && rt_tokenizer_encode(tok, prompt, strlen(prompt), false, &pids, &pn, err) &&
         rt_tokenizer_encode(tok, all, strlen(all), false, &ex->ids, &n, err);
    if (ok && n > INT32_MAX / 2) {
        ir_error(err, "entry %lld (line %lld) has more than 2^30 tokens", (long long)e->index,
                 (long long)e->line);
        ok = false;
    }
    ex->n = (int32_t)n;
    ex->prompt_n = (int32_t)pn;
    if (!ok)
        free(ex->ids), ex->ids = NULL;
    free(pids);
    free(prompt), free(resp), free(all);
    return ok;
}

/* ---------------------------------------------------------------- options, split */

RtInstOptions rt_inst_defaults(void)
{
    return (RtInstOptions){.train_frac = 0.85, .test_frac = 0.10, .seed = 123,
                           .style = RT_PROMPT_ALPACA, .pad_id = 50256};
}

static bool check_options(const RtInstOptions *o, IrError *err)
{
    const char *why = !o->tok ? "no tokenizer"
                    : !o->data_path ? "no data file"
                    : !(o->train_frac > 0 && o->train_frac <= 1) ? "train_frac is not in (0, 1]"
                    : !(o->test_frac >= 0 && o->train_frac + o->test_frac <= 1)
                          ? "test_frac is not in [0, 1 - train_frac]"
                    : o->max_len < 0 ? "a negative --max-len" : NULL;
    if (why) {
        ir_error(err, "instruction data: %s", why);
        ir_error_hint(err, "--data FILE (a JSON array or JSON Lines of instruction entries)");
    }
    return !why;
}

static void shuffle(int64_t *a, int64_t n, IrRng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(ir_rng_next(r) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Entries idx[0..n) of d->set, tokenized, into split s. */
static bool make_split(const RtInstOptions *o, RtInstData *d, RtInstSplit *s,
                       const int64_t *idx, int64_t n, IrError *err)
{
    s->ex = calloc((size_t)(n ? n : 1), sizeof *s->ex);
    if (!s->ex) {
        ir_error(err, "%s: out of memory", o->data_path);
        return false;
    }
    for (int64_t i = 0; i < n; i++, s->n++)
        if (!rt_inst_encode(o->tok, &d->set.e[idx[i]], o->style, &s->ex[i], err))
            return false;
    return true;
}

/* T = the longest example, capped at max_len; a longer one is refused
 * unless truncate. */
static bool set_width(const RtInstOptions *o, RtInstData *d, IrError *err)
{
    const RtInstSplit *sp[3] = {&d->train, &d->test, &d->val};
    const RtInstExample *first = NULL;
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < sp[k]->n; i++) {
            const RtInstExample *e = &sp[k]->ex[i];
            d->longest = e->n > d->longest ? e->n : d->longest;
            bool over = o->max_len > 0 && e->n > o->max_len;
            d->truncated += over;
            if (over && (!first || e->entry->index < first->entry->index))
                first = e;
        }
    d->T = o->max_len > 0 && d->longest > o->max_len ? o->max_len : d->longest;
    if (!first || o->truncate)
        return true;
    ir_error_where(err, "%s", o->data_path);
    ir_error(err, "entry %lld (line %lld) has %d tokens, more than --max-len %lld (%lld "
             "entries are longer)", (long long)first->entry->index, (long long)first->entry->line,
             first->n, (long long)o->max_len, (long long)d->truncated);
    ir_error_hint(err, "use --truncate to cut them as the book does, or a larger --max-len "
                  "(at most the model's context length)");
    return false;
}

bool rt_inst_load(const RtInstOptions *o, RtInstData *d, IrError *err)
{
    *d = (RtInstData){.style = o->style, .mask_prompt = o->mask_prompt, .pad_id = o->pad_id,
                      .path = o->data_path};
    if (!check_options(o, err) || !rt_inst_read(o->data_path, &d->set, err))
        return false;
    int64_t n = d->set.n, *idx = malloc(sizeof *idx * (size_t)n);
    bool ok = idx != NULL;
    for (int64_t i = 0; ok && i < n; i++)
        idx[i] = i;
    if (ok && o->shuffle_split) {
        IrRng r;
        ir_rng_init(&r, ir_rng_stream(o->seed, "inst-split"));
        shuffle(idx, n, &r);
    }
    int64_t ntr = (int64_t)((double)n * o->train_frac);
    int64_t nte = (int64_t)((double)n * o->test_frac);
    nte = ntr + nte > n ? n - ntr : nte;
    ok = ok && make_split(o, d, &d->train, idx, ntr, err) &&
         make_split(o, d, &d->test, idx + ntr, nte, err) &&
         make_split(o, d, &d->val, idx + ntr + nte, n - ntr - nte, err);
    if (ok && ntr == 0) {
        ir_error_where(err, "%s", o->data_path);
        ir_error(err, "the train split is empty (%lld entries)", (long long)n);
        ir_error_hint(err, "give more entries: the train split is int(n * %g)", o->train_frac);
        ok = false;
    }
    ok = ok && set_width(o, d, err);
    free(idx);
    if (!ok)
        rt_inst_free(d);
    return ok;
}

static void free_split(RtInstSplit *s)
{
    for (int64_t i = 0; i < s->n; i++)
        free(s->ex[i].ids);
    free(s->ex);
}

void rt_inst_free(RtInstData *d)
{
    free_split(&d->train);
    free_split(&d->val);
    free_split(&d->test);
    rt_inst_set_free(&d->set);
    *d = (RtInstData){0};
}

/* ---------------------------------------------------------------- batches */

void rt_inst_order(const RtInstSplit *s, bool shuffle_it, uint64_t seed, int64_t epoch,
                   int64_t *order)
{
    for (int64_t i = 0; i < s->n; i++)
        order[i] = i;
    if (!shuffle_it)
        return;
    IrRng r;
    ir_rng_init(&r, ir_rng_stream(seed ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull),
                                  "inst-epoch"));
    shuffle(order, s->n, &r);
}

void rt_inst_row(const int32_t *ids, int64_t n, int64_t prompt_n, bool mask_prompt,
                 int32_t pad, int64_t T, int32_t *x, int32_t *y)
{
    bool seen_pad = false;
    for (int64_t t = 0; t < T; t++) {
        x[t] = t < n ? ids[t] : pad;
        y[t] = t + 1 < n ? ids[t + 1] : pad;   /* padded[t + 1] */
        if (y[t] == pad) {                     /* every pad target but the first */
            y[t] = seen_pad ? RT_IGNORE_INDEX : pad;
            seen_pad = true;
        }
    }
    for (int64_t t = 0; mask_prompt && t < prompt_n - 1 && t < T; t++)
        y[t] = RT_IGNORE_INDEX;
}

int64_t rt_inst_fill(const RtInstData *d, const RtInstSplit *s, const int64_t *order,
                     int64_t start, int64_t B, int32_t *x, int32_t *y, int64_t *width)
{
    int64_t T = d->T, real = 0, w = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t k = start + b;
        if (start < 0 || k >= s->n) {
            for (int64_t t = 0; t < T; t++)
                x[b * T + t] = d->pad_id, y[b * T + t] = RT_IGNORE_INDEX;
            continue;
        }
        const RtInstExample *e = &s->ex[order ? order[k] : k];
        rt_inst_row(e->ids, e->n, e->prompt_n, d->mask_prompt, d->pad_id, T, x + b * T,
                    y + b * T);
        w = e->n > w ? e->n : w;
        real++;
    }
    if (width)
        *width = w < T ? w : T;
    return real;
}

static void dump_rows(FILE *f, const char *key, const int32_t *v, int64_t rows, int64_t T,
                      int64_t w)
{
    fprintf(f, ", \"%s\": [", key);
    for (int64_t b = 0; b < rows; b++) {
        fputs(b ? ", [" : "[", f);
        for (int64_t t = 0; t < w; t++)
            fprintf(f, t ? ", %d" : "%d", v[b * T + t]);
        fputc(']', f);
    }
    fputc(']', f);
}

int64_t rt_inst_dump_batches(FILE *f, const RtInstData *d, int64_t B, int64_t nbatches)
{
    size_t bytes = sizeof(int32_t) * (size_t)(B * d->T);
    int32_t *x = malloc(bytes), *y = malloc(bytes);
    int64_t b = 0;
    for (; x && y && b < nbatches && (b + 1) * B <= d->train.n; b++) {
        int64_t w;
        rt_inst_fill(d, &d->train, NULL, b * B, B, x, y, &w);
        fprintf(f, "{\"batch\": %lld, \"entries\": [", (long long)b);
        for (int64_t r = 0; r < B; r++)
            fprintf(f, r ? ", %lld" : "%lld", (long long)d->train.ex[b * B + r].entry->index);
        fputc(']', f);
        dump_rows(f, "inputs", x, B, d->T, w);
        dump_rows(f, "targets", y, B, d->T, w);
        fputs("}\n", f);
    }
    free(x);
    free(y);
    return b;
}
