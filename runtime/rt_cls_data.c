/* rt_cls_data.c — the classification data set: labels, balancing, the
 * 70/10/20 split, tokens, padding, batches and the split files
 * (rt_cls_data.h says what each step does; rt_cls_read.c reads the files).
 *
 * rt_cls_load works on record indices until the very end: balancing and
 * shuffling permute an index array, the split cuts it in three, and only
 * then are the texts moved out of the records into the examples and
 * tokenized, so nothing is copied twice.  Every random choice comes from
 * its own named xoshiro stream of the seed (ir/rng.h), so the split depends
 * on the seed and the file only.
 */
#include "runtime/rt_cls_data.h"

#include "ir/outfile.h"
#include "ir/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- options, labels */

RtClsOptions rt_cls_defaults(void)
{
    return (RtClsOptions){.balance = true, .train_frac = 0.7, .val_frac = 0.1, .seed = 123,
                          .pad_id = 50256};
}

static bool check_options(const RtClsOptions *o, IrError *err)
{
    const char *why = !o->tok ? "no tokenizer"
                    : !o->data_path == !o->train_path ? "give one data file or a train file"
                    : o->data_path && (o->val_path || o->test_path)
                          ? "a data file is split here: give no val or test file with it"
                    : !(o->train_frac > 0 && o->train_frac <= 1) ? "train_frac is not in (0, 1]"
                    : !(o->val_frac >= 0 && o->train_frac + o->val_frac <= 1)
                          ? "val_frac is not in [0, 1 - train_frac]"
                    : o->max_len < 0 || o->context_length < 0 ? "a negative length" : NULL;
    if (why) {
        ir_error(err, "classification data: %s", why);
        ir_error_hint(err, "--data FILE, or --train FILE [--val FILE] [--test FILE]");
    }
    return !why;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rt_cls_label_id(const RtClsData *d, const char *name)
{
    char *const *hit = bsearch(&name, d->labels, (size_t)d->nlabels, sizeof *d->labels, cmp_str);
    return hit ? (int)(hit - d->labels) : -1;
}

/* The distinct labels of t, sorted; at least 2. */
static bool collect_labels(const RtClsTable *t, const char *path, RtClsData *d, IrError *err)
{
    d->labels = malloc(sizeof *d->labels * (size_t)(t->n ? t->n : 1));
    for (int64_t i = 0; i < t->n; i++)
        d->labels[i] = t->rec[i].label;
    qsort(d->labels, (size_t)t->n, sizeof *d->labels, cmp_str);
    int64_t k = 0;
    for (int64_t i = 0; i < t->n; i++)
        if (k == 0 || strcmp(d->labels[k - 1], d->labels[i]))
            d->labels[k++] = d->labels[i];
    for (int64_t i = 0; i < k; i++)
        d->labels[i] = strdup(d->labels[i]);
    d->nlabels = (int)k;
    if (k >= 2)
        return true;
    ir_error_where(err, "%s", path);
    ir_error(err, k ? "every example has the label '%s': classification needs at least 2 "
                      "labels" : "no examples%s", k ? d->labels[0] : "");
    ir_error_hint(err, "a line is LABEL<TAB>TEXT (or a CSV with a label,text header)");
    return false;
}

/* Every label of t is a training label. */
static bool check_labels(const RtClsData *d, const RtClsTable *t, const char *path,
                         IrError *err)
{
    for (int64_t i = 0; i < t->n; i++) {
        if (rt_cls_label_id(d, t->rec[i].label) >= 0)
            continue;
        char set[200] = "";
        for (int k = 0; k < d->nlabels && strlen(set) < 150; k++)
            snprintf(set + strlen(set), sizeof set - strlen(set), "%s%s", k ? ", " : "",
                     d->labels[k]);
        ir_error(err, "label '%s' at %s:%lld is not among the training labels {%s%s}",
                 t->rec[i].label, path, (long long)t->rec[i].line, set,
                 strlen(set) >= 150 ? ", ..." : "");
        ir_error_hint(err, "the val and test files may use only the train file's labels");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- balance, shuffle, split */

static void shuffle(int64_t *a, int64_t n, IrRng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(ir_rng_next(r) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The record indices kept: every class cut to the smallest class's count by a
 * seeded draw (a partial Fisher-Yates per class), in file order. */
static int64_t balance(const int *lab, int64_t n, int nl, uint64_t seed, int64_t *keep)
{
    int64_t *cnt = calloc((size_t)nl, sizeof *cnt), *idx = malloc(sizeof *idx * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        cnt[lab[i]]++;
    int64_t m = n, k = 0;
    for (int c = 0; c < nl; c++)
        m = cnt[c] < m ? cnt[c] : m;
    IrRng r;
    ir_rng_init(&r, ir_rng_stream(seed, "cls-balance"));
    for (int c = 0; c < nl; c++) {
        int64_t nc = 0;
        for (int64_t i = 0; i < n; i++)
            if (lab[i] == c)
                idx[nc++] = i;
        for (int64_t i = 0; i < m; i++) {   /* idx[0..m) becomes a random m-subset */
            int64_t j = i + (int64_t)(ir_rng_next(&r) % (uint64_t)(nc - i)), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        memcpy(keep + k, idx, sizeof *idx * (size_t)m);
        k += m;
    }
    qsort(keep, (size_t)k, sizeof *keep, cmp_i64);
    free(cnt);
    free(idx);
    return k;
}

/* ---------------------------------------------------------------- examples */

/* Moves records idx[0..n) of t into split s, with their label ids. */
static bool make_split(RtClsData *d, RtClsSplit *s, RtClsTable *t, const int64_t *idx,
                       int64_t n, const char *path)
{
    s->ex = calloc((size_t)(n ? n : 1), sizeof *s->ex);
    s->source = strdup(path);
    if (!s->ex || !s->source)
        return false;
    for (int64_t i = 0; i < n; i++) {
        RtClsRecord *r = &t->rec[idx ? idx[i] : i];
        s->ex[i] = (RtClsExample){.text = r->text, .label = rt_cls_label_id(d, r->label),
                                  .line = r->line};
        r->text = NULL;
    }
    s->n = n;
    return true;
}

static bool tokenize_split(const RtClsOptions *o, RtClsSplit *s, IrError *err)
{
    for (int64_t i = 0; i < s->n; i++) {
        RtClsExample *e = &s->ex[i];
        size_t n = 0;
        if (!rt_tokenizer_encode(o->tok, e->text, strlen(e->text), false, &e->ids, &n, err))
            return false;
        if (n == 0 || n > INT32_MAX) {
            ir_error_where(err, "%s:%lld", s->source, (long long)e->line);
            ir_error(err, n ? "the text has more than 2^31 tokens" : "the text encodes to no "
                     "token");
            return false;
        }
        e->n = (int32_t)n;
    }
    return true;
}

static void set_pad_len(const RtClsOptions *o, RtClsData *d)
{
    for (int64_t i = 0; i < d->train.n; i++)
        d->longest = d->train.ex[i].n > d->longest ? d->train.ex[i].n : d->longest;
    d->pad_len = o->max_len > 0 ? o->max_len : d->longest;
    if (o->context_length > 0 && d->pad_len > o->context_length)
        d->pad_len = o->context_length;
    const RtClsSplit *sp[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < sp[k]->n; i++)
            d->truncated += sp[k]->ex[i].n > d->pad_len;
}

/* ---------------------------------------------------------------- load */

static bool load_one(const RtClsOptions *o, RtClsData *d, IrError *err)
{
    RtClsTable t;
    if (!rt_cls_read(o->data_path, &t, err))
        return false;
    bool ok = collect_labels(&t, o->data_path, d, err);
    int64_t n = t.n, *pool = malloc(sizeof *pool * (size_t)(n ? n : 1));
    int *lab = malloc(sizeof *lab * (size_t)(n ? n : 1));
    if (ok) {
        for (int64_t i = 0; i < n; i++)
            lab[i] = rt_cls_label_id(d, t.rec[i].label), pool[i] = i;
        int64_t m = o->balance ? balance(lab, n, d->nlabels, o->seed, pool) : n;
        IrRng r;
        ir_rng_init(&r, ir_rng_stream(o->seed, "cls-shuffle"));
        shuffle(pool, m, &r);
        int64_t ntr = (int64_t)(o->train_frac * (double)m);
        int64_t nva = (int64_t)(o->val_frac * (double)m);
        nva = ntr + nva > m ? m - ntr : nva;
        d->read = n;
        d->dropped = n - m;
        ok = make_split(d, &d->train, &t, pool, ntr, o->data_path) &&
             make_split(d, &d->val, &t, pool + ntr, nva, o->data_path) &&
             make_split(d, &d->test, &t, pool + ntr + nva, m - ntr - nva, o->data_path);
        if (ok && ntr == 0) {
            ir_error_where(err, "%s", o->data_path);
            ir_error(err, "the train split is empty (%lld examples after balancing)",
                     (long long)m);
            ir_error_hint(err, "give more examples, or a larger train fraction");
            ok = false;
        }
    }
    free(pool);
    free(lab);
    rt_cls_table_free(&t);
    return ok;
}

/* A val or test file into s (path NULL: empty). */
static bool load_extra(RtClsData *d, RtClsSplit *s, const char *path, IrError *err)
{
    if (!path)
        return make_split(d, s, &(RtClsTable){0}, NULL, 0, "");
    RtClsTable t;
    if (!rt_cls_read(path, &t, err))
        return false;
    bool ok = check_labels(d, &t, path, err) && make_split(d, s, &t, NULL, t.n, path);
    d->read += t.n;
    rt_cls_table_free(&t);
    return ok;
}

static bool load_files(const RtClsOptions *o, RtClsData *d, IrError *err)
{
    RtClsTable t;
    if (!rt_cls_read(o->train_path, &t, err))
        return false;
    bool ok = collect_labels(&t, o->train_path, d, err) &&
              make_split(d, &d->train, &t, NULL, t.n, o->train_path);
    d->read = t.n;
    rt_cls_table_free(&t);
    return ok && load_extra(d, &d->val, o->val_path, err) &&
           load_extra(d, &d->test, o->test_path, err);
}

bool rt_cls_load(const RtClsOptions *o, RtClsData *d, IrError *err)
{
    *d = (RtClsData){0};
    if (!check_options(o, err))
        return false;
    bool ok = o->data_path ? load_one(o, d, err) : load_files(o, d, err);
    ok = ok && tokenize_split(o, &d->train, err) && tokenize_split(o, &d->val, err) &&
         tokenize_split(o, &d->test, err);
    d->pad_id = o->pad_id;
    if (ok)
        set_pad_len(o, d);
    else
        rt_cls_free(d);
    return ok;
}

static void free_split(RtClsSplit *s)
{
    for (int64_t i = 0; i < s->n; i++)
        free(s->ex[i].text), free(s->ex[i].ids);
    free(s->ex);
    free(s->source);
}

void rt_cls_free(RtClsData *d)
{
    for (int i = 0; i < d->nlabels; i++)
        free(d->labels[i]);
    free(d->labels);
    free_split(&d->train);
    free_split(&d->val);
    free_split(&d->test);
    *d = (RtClsData){0};
}

int64_t rt_cls_count(const RtClsSplit *s, int label)
{
    int64_t c = 0;
    for (int64_t i = 0; i < s->n; i++)
        c += s->ex[i].label == label;
    return c;
}

/* ---------------------------------------------------------------- batches */

void rt_cls_order(const RtClsSplit *s, bool shuffle_it, uint64_t seed, int64_t epoch,
                  int64_t *order)
{
    for (int64_t i = 0; i < s->n; i++)
        order[i] = i;
    if (!shuffle_it)
        return;
    IrRng r;
    ir_rng_init(&r, ir_rng_stream(seed ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull), "cls-epoch"));
    shuffle(order, s->n, &r);
}

/* One row: ids[0..n) cut or padded to T; returns the last real index. */
static int32_t fill_row(const int32_t *ids, int64_t n, int64_t T, int32_t pad, int32_t *x)
{
    int64_t k = n < T ? n : T;
    memcpy(x, ids, sizeof *x * (size_t)k);
    for (int64_t t = k; t < T; t++)
        x[t] = pad;
    return (int32_t)(k - 1);
}

int64_t rt_cls_fill(const RtClsData *d, const RtClsSplit *s, const int64_t *order,
                    int64_t start, int64_t B, int32_t *x, int32_t *last, int32_t *y)
{
    int64_t T = d->pad_len, real = 0;
    int32_t pad = d->pad_id;
    for (int64_t b = 0; b < B; b++) {
        int64_t k = start + b;
        if (start < 0 || k >= s->n) {
            for (int64_t t = 0; t < T; t++)
                x[b * T + t] = pad;
            last[b] = 0;
            y[b] = RT_IGNORE_INDEX;
            continue;
        }
        const RtClsExample *e = &s->ex[order ? order[k] : k];
        last[b] = fill_row(e->ids, e->n, T, pad, x + b * T);
        y[b] = e->label;
        real++;
    }
    return real;
}

bool rt_cls_encode_text(RtTokenizer *tok, const char *text, size_t len, int64_t pad_len,
                        int32_t pad_id, int32_t *x, int32_t *last, bool *truncated,
                        IrError *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rt_tokenizer_encode(tok, text, len, false, &ids, &n, err))
        return false;
    if (n == 0 || pad_len < 1) {
        free(ids);
        if (n)
            ir_error(err, "the padded length is %lld, not positive", (long long)pad_len);
        else
            ir_error(err, "the text encodes to no token");
        ir_error_hint(err, "give a text with at least one character");
        return false;
    }
    *last = fill_row(ids, (int64_t)n, pad_len, pad_id, x);
    if (truncated)
        *truncated = (int64_t)n > pad_len;
    free(ids);
    return true;
}

/* ---------------------------------------------------------------- writing */

void rt_cls_write_text(FILE *f, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\t' || *p == '\n' || *p == '\r')
            fputc('\\', f), fputc(*p == '\t' ? 't' : *p == '\n' ? 'n' : 'r', f);
        else if (*p == '\\' && strchr("\\tnr\t\n\r", p[1]))   /* p[1] 0 matches too */
            fputs("\\\\", f);
        else
            fputc(*p, f);
    }
}

static bool make_dir(const char *path, IrError *err)
{
    struct stat st;
    if (mkdir(path, 0755) == 0 || (errno == EEXIST && stat(path, &st) == 0 &&
                                   S_ISDIR(st.st_mode)))
        return true;
    ir_error(err, "cannot create the folder '%s': %s", path,
             errno == EEXIST ? "a file of that name is in the way" : strerror(errno));
    ir_error_hint(err, "pass another --out DIR");
    return false;
}

static bool write_one(const RtClsData *d, const RtClsSplit *s, const char *path, IrError *err)
{
    IrOutFile of;
    FILE *f = ir_outfile_open(&of, path, "split file", err);
    if (!f)
        return false;
    fputs("label\ttext\n", f);   /* so that a first example "label<TAB>text" stays one */
    for (int64_t i = 0; i < s->n; i++) {
        fprintf(f, "%s\t", d->labels[s->ex[i].label]);
        rt_cls_write_text(f, s->ex[i].text);
        fputc('\n', f);
    }
    return ir_outfile_commit(&of, err);
}

bool rt_cls_write_split(const RtClsData *d, const char *dir, IrError *err)
{
    char path[IR_PATH_MAX];
    snprintf(path, sizeof path, "%.4000s/split", dir);
    if (!make_dir(dir, err) || !make_dir(path, err))
        return false;
    const RtClsSplit *sp[3] = {&d->train, &d->val, &d->test};
    const char *name[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%.4000s/split/%s.tsv", dir, name[k]);
        if (!write_one(d, sp[k], path, err))
            return false;
    }
    return true;
}
