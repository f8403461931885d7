/* rt_data.c — the data side of training: the data cache, tokenizers by name,
 * the character split and the sliding-window loader (rt_data.h).
 *
 * The loader never copies windows up front: window w is the span
 * ids[w*stride .. w*stride+ctx] of one token array, so a batch is ctx-long
 * memcpy's into the caller's (B, T) buffers.  The shuffle is a Fisher-Yates
 * permutation drawn from an xoshiro stream seeded with (seed, epoch) only:
 * the order of any epoch can be rebuilt from scratch, which is what makes a
 * resumed run see exactly the batches an uninterrupted one would.
 */
#include "runtime/rt_data.h"

#include "ir/rng.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- files */

void rt_data_dir(char *buf, size_t cap)
{
    const char *d = getenv("GRADC_DATA_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (d && *d)
        snprintf(buf, cap, "%s", d);
    else if (xdg && *xdg)
        snprintf(buf, cap, "%s/gradc/data", xdg);
    else
        snprintf(buf, cap, "%s/.cache/gradc/data", home && *home ? home : ".");
}

static char *read_stream(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

char *rt_file_read(const char *path, size_t *len, IrError *err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);   /* fopen opens a directory; fread would then fail */
        f = NULL;
        errno = EISDIR;
    }
    if (!f) {
        ir_error(err, "cannot read '%s': %s", path, strerror(errno));
        ir_error_hint(err, "check the path");
        return NULL;
    }
    char *buf = read_stream(f, len);
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        ir_error(err, "cannot read '%s': %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---------------------------------------------------------------- tokenizers */

bool rt_tok_kind_parse(const char *s, RtTokKind *kind)
{
    if (s && !strcmp(s, "gpt2"))
        return *kind = RT_TOK_GPT2, true;
    if (s && !strcmp(s, "char"))
        return *kind = RT_TOK_CHAR, true;
    return false;
}

const char *rt_tok_kind_name(RtTokKind kind)
{
    return kind == RT_TOK_GPT2 ? "gpt2" : "char";
}

/* Moves a malloc'd tokenizer message into err. */
static void tok_error(IrError *err, char *msg, const char *hint)
{
    ir_error(err, "%s", msg ? msg : "out of memory");
    if (hint)
        ir_error_hint(err, "%s", hint);
    free(msg);
}

RtTokenizer *rt_tokenizer_gpt2(const char *dir, IrError *err)
{
    char def[4096], *msg = NULL;
    if (!dir) {
        rt_data_dir(def, sizeof def - 8);
        strcat(def, "/gpt2");
        dir = def;
    }
    RtBpe *bpe = rt_bpe_load(dir, &msg);
    if (!bpe) {
        tok_error(err, msg, "pass --bpe-dir DIR (a folder with encoder.json and vocab.bpe), "
                            "or run scripts/demo.sh once to fill the data cache");
        return NULL;
    }
    RtTokenizer *t = calloc(1, sizeof *t);
    t->kind = RT_TOK_GPT2;
    t->bpe = bpe;
    return t;
}

static RtTokenizer *wrap_char(RtCharTok *ct, char *msg, IrError *err)
{
    if (!ct) {
        tok_error(err, msg, NULL);
        return NULL;
    }
    RtTokenizer *t = calloc(1, sizeof *t);
    t->kind = RT_TOK_CHAR;
    t->chr = ct;
    return t;
}

RtTokenizer *rt_tokenizer_char(const char *text, size_t len, IrError *err)
{
    return wrap_char(rt_chartok_build(text, len), NULL, err);
}

RtTokenizer *rt_tokenizer_char_vocab(const char *vocab, size_t len, IrError *err)
{
    char *msg = NULL;
    RtCharTok *ct = rt_chartok_load(vocab, len, &msg);
    return wrap_char(ct, msg, err);
}

void rt_tokenizer_free(RtTokenizer *t)
{
    if (!t)
        return;
    rt_bpe_free(t->bpe);
    rt_chartok_free(t->chr);
    free(t);
}

int rt_tokenizer_vocab_size(const RtTokenizer *t)
{
    return t->kind == RT_TOK_GPT2 ? rt_bpe_vocab_size(t->bpe) : rt_chartok_vocab_size(t->chr);
}

int32_t rt_tokenizer_eot(const RtTokenizer *t)
{
    return t->kind == RT_TOK_GPT2 ? rt_bpe_eot_id(t->bpe) : -1;
}

bool rt_tokenizer_encode(RtTokenizer *t, const char *text, size_t len, bool allow_special,
                         int32_t **ids, size_t *n, IrError *err)
{
    char *msg = NULL;
    if (t->kind == RT_TOK_GPT2) {
        if (rt_bpe_encode(t->bpe, text, len, allow_special, ids, n) == 0)
            return true;
    } else if (rt_chartok_encode(t->chr, text, len, ids, n, &msg) == 0) {
        return true;
    }
    tok_error(err, msg, t->kind == RT_TOK_CHAR
                            ? "a char tokenizer knows only the characters of its training text"
                            : NULL);
    return false;
}

/* The first id outside [0, V), or -1. */
static int64_t bad_id(const RtTokenizer *t, const int32_t *ids, size_t n)
{
    int V = rt_tokenizer_vocab_size(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return (int64_t)i;
    return -1;
}

char *rt_tokenizer_decode(const RtTokenizer *t, const int32_t *ids, size_t n, size_t *len,
                          IrError *err)
{
    int64_t b = bad_id(t, ids, n);
    if (b >= 0) {
        ir_error(err, "token %lld is id %d, outside the %s vocabulary [0, %d)", (long long)b,
                 ids[b], rt_tok_kind_name(t->kind), rt_tokenizer_vocab_size(t));
        ir_error_hint(err, "decode with the tokenizer the ids were made with");
        return NULL;
    }
    char *s = t->kind == RT_TOK_GPT2 ? rt_bpe_decode_len(t->bpe, ids, n, len)
                                     : rt_chartok_decode(t->chr, ids, n, len);
    if (!s)
        ir_error(err, "out of memory decoding %zu tokens", n);
    return s;
}

/* ---------------------------------------------------------------- split */

/* Bytes of the UTF-8 sequence led by byte c (1 for a stray byte). */
static size_t seq_len(unsigned char c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
}

/* The next character's length at s[i..len): a lead byte and its
 * continuation bytes, or one stray byte. */
static size_t char_len(const unsigned char *s, size_t i, size_t len)
{
    size_t k = seq_len(s[i]);
    if (k == 1 || i + k > len)
        return 1;
    for (size_t j = 1; j < k; j++)
        if ((s[i + j] & 0xC0) != 0x80)
            return 1;
    return k;
}

size_t rt_split_chars(const char *text, size_t len, double frac)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t nchars = 0, i = 0;
    while (i < len)
        i += char_len(s, i, len), nchars++;
    size_t cut = (size_t)(frac * (double)nchars), c = 0;
    for (i = 0; i < len && c < cut; c++)
        i += char_len(s, i, len);
    return i;
}

/* ---------------------------------------------------------------- loader */

static bool check_options(const RtLoaderOptions *o, IrError *err)
{
    if (o->ctx >= 1 && o->stride >= 1 && o->batch >= 1)
        return true;
    ir_error(err, "data loader: context %lld, stride %lld and batch %lld must all be >= 1",
             (long long)o->ctx, (long long)o->stride, (long long)o->batch);
    ir_error_hint(err, "check --seq/--set context_length, --stride and --batch");
    return false;
}

RtLoader *rt_loader_new(const int32_t *ids, int64_t n, const RtLoaderOptions *o, IrError *err)
{
    if (!check_options(o, err))
        return NULL;
    RtLoader *l = calloc(1, sizeof *l);
    l->o = *o;
    l->nids = n > 0 ? n : 0;
    l->ids = malloc(sizeof *l->ids * (size_t)(l->nids + 1));
    if (l->nids)
        memcpy(l->ids, ids, sizeof *ids * (size_t)l->nids);
    /* the book: for i in range(0, len(ids) - ctx, stride) */
    l->nwin = l->nids > o->ctx ? (l->nids - o->ctx + o->stride - 1) / o->stride : 0;
    l->order = malloc(sizeof *l->order * (size_t)(l->nwin + 1));
    l->order_epoch = -1;
    return l;
}

void rt_loader_free(RtLoader *l)
{
    if (!l)
        return;
    free(l->ids);
    free(l->order);
    free(l);
}

int64_t rt_loader_batches(const RtLoader *l)
{
    int64_t B = l->o.batch;
    return l->o.drop_last ? l->nwin / B : (l->nwin + B - 1) / B;
}

/* order = identity, or epoch e's Fisher-Yates permutation. */
static void build_order(RtLoader *l, int64_t epoch)
{
    for (int64_t w = 0; w < l->nwin; w++)
        l->order[w] = w;
    if (l->o.shuffle) {
        IrRng r;
        ir_rng_init(&r, ir_splitmix64(l->o.seed ^ ir_splitmix64((uint64_t)epoch + 1)));
        for (int64_t i = l->nwin - 1; i > 0; i--) {
            int64_t j = (int64_t)(ir_rng_next(&r) % (uint64_t)(i + 1));
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->order_epoch = epoch;
}

int64_t rt_loader_window(RtLoader *l, int64_t epoch, int64_t b, int64_t row)
{
    int64_t k = b * l->o.batch + row;
    if (k < 0 || k >= l->nwin)
        return -1;
    if (l->order_epoch != epoch)
        build_order(l, epoch);
    return l->order[k];
}

int64_t rt_loader_get(RtLoader *l, int64_t epoch, int64_t b, int32_t *x, int32_t *y)
{
    int64_t T = l->o.ctx, rows = 0;
    for (int64_t r = 0; r < l->o.batch; r++) {
        int64_t w = rt_loader_window(l, epoch, b, r);
        int32_t *xr = x + r * T, *yr = y + r * T;
        if (w < 0) {
            for (int64_t t = 0; t < T; t++)
                xr[t] = 0, yr[t] = RT_IGNORE_INDEX;
            continue;
        }
        memcpy(xr, l->ids + w * l->o.stride, sizeof *xr * (size_t)T);
        memcpy(yr, l->ids + w * l->o.stride + 1, sizeof *yr * (size_t)T);
        rows++;
    }
    return rows;
}

/* ---------------------------------------------------------------- a text file */

static RtLoader *encode_part(RtTokenizer *tok, const char *s, size_t len,
                             const RtLoaderOptions *o, int64_t *ntok, IrError *err)
{
    int32_t *ids;
    size_t n;
    if (!rt_tokenizer_encode(tok, s, len, true, &ids, &n, err))
        return NULL;
    RtLoader *l = rt_loader_new(ids, (int64_t)n, o, err);
    free(ids);
    *ntok = (int64_t)n;
    return l;
}

static bool too_short(const char *path, const char *part, int64_t ntok, const RtLoaderOptions *o,
                      IrError *err)
{
    ir_error(err, "the %s part of '%s' has %lld tokens: no window of context %lld + 1 target "
             "fits", part, path, (long long)ntok, (long long)o->ctx);
    ir_error_hint(err, "use a longer text, a smaller context (--set context_length=N) or "
                  "another --train-frac");
    return false;
}

static bool no_batch(const char *path, const RtTextData *d, const RtLoaderOptions *o,
                     IrError *err)
{
    ir_error(err, "'%s' gives %lld training windows, fewer than one batch of %lld", path,
             (long long)d->train->nwin, (long long)o->batch);
    ir_error_hint(err, "lower --batch or --stride, or use a longer text");
    return false;
}

bool rt_text_data_from(const char *text, size_t len, const char *path, RtTokenizer *tok,
                       double train_frac, const RtLoaderOptions *o, RtTextData *d, IrError *err)
{
    memset(d, 0, sizeof *d);
    RtLoaderOptions vo = *o;
    vo.shuffle = vo.drop_last = false;
    d->text_bytes = len;
    d->split_byte = rt_split_chars(text, len, train_frac);
    d->train = encode_part(tok, text, d->split_byte, o, &d->train_tokens, err);
    if (!d->train)
        return false;
    if (train_frac < 1) {
        d->val = encode_part(tok, text + d->split_byte, len - d->split_byte, &vo,
                             &d->val_tokens, err);
        if (!d->val)
            return rt_text_data_free(d), false;
    }
    bool ok = d->train->nwin > 0 || too_short(path, "training", d->train_tokens, o, err);
    ok = ok && (!d->val || d->val->nwin > 0 ||
                too_short(path, "validation", d->val_tokens, o, err));
    ok = ok && (rt_loader_batches(d->train) > 0 || no_batch(path, d, o, err));
    if (!ok)
        rt_text_data_free(d);
    return ok;
}

bool rt_text_data_load(const char *path, RtTokenizer *tok, double train_frac,
                       const RtLoaderOptions *o, RtTextData *d, IrError *err)
{
    size_t len;
    char *text = rt_file_read(path, &len, err);
    if (!text)
        return false;
    bool ok = rt_text_data_from(text, len, path, tok, train_frac, o, d, err);
    free(text);
    return ok;
}

void rt_text_data_free(RtTextData *d)
{
    rt_loader_free(d->train);
    rt_loader_free(d->val);
    d->train = d->val = NULL;
}
