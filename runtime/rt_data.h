/* rt_data.h — text data for training: tokenizers by name, the data cache,
 * the train/val split and the sliding-window loader (runtime/rt_data.c).
 *
 * It follows the book's chapter 2 and 5 (GPTDatasetV1 and its DataLoader):
 *
 *   split    the text is cut at character int(train_frac * nchars) (code
 *            points, as Python's len(str)); each part is tokenized on its
 *            own, with <|endoftext|> allowed as the special token;
 *   windows  window w starts at token w * stride and is ctx tokens long;
 *            its targets are the same span shifted by one token; windows
 *            start at 0, stride, ... while start < ntokens - ctx;
 *   batches  `batch` windows each; the train loader shuffles the windows
 *            every epoch (a seeded permutation: epoch e's order depends only
 *            on the seed and e, so a resumed run sees the same batches) and
 *            drops the last partial batch; the val loader keeps the order
 *            and the partial batch.
 *
 * A partial batch is padded to `batch` rows: input id 0 and target -100,
 * the ignore index of cross_entropy, so its loss is the mean over the real
 * rows only and the compiled step keeps one batch size.
 *
 *   RtTokenizer *tok = rt_tokenizer_gpt2(NULL, &err);     // the data cache
 *   RtLoaderOptions lo = {.ctx = 256, .stride = 256, .batch = 2, .seed = 123};
 *   RtTextData d;
 *   if (!rt_text_data_load("the-verdict.txt", tok, 0.9, &lo, &d, &err)) ...;
 *   int32_t x[2 * 256], y[2 * 256];                        // (B, T)
 *   for (int64_t b = 0; b < rt_loader_batches(d.train); b++)
 *       rt_loader_get(d.train, epoch, b, x, y);
 *   rt_text_data_free(&d);
 */
#ifndef GRADC_RT_DATA_H
#define GRADC_RT_DATA_H

#include "ir/ir.h"
#include "runtime/rt_tok.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The target that cross_entropy skips (PyTorch's ignore_index). */
#define RT_IGNORE_INDEX (-100)

/* ---------------------------------------------------------------- files */

/* The data cache: $GRADC_DATA_DIR, else $XDG_CACHE_HOME/gradc/data, else
 * $HOME/.cache/gradc/data.  scripts/demo.sh fills it (gpt2/, moby-dick.txt). */
void rt_data_dir(char *buf, size_t cap);
/* The whole file, NUL-terminated (len excludes the NUL).  NULL + err. */
char *rt_file_read(const char *path, size_t *len, IrError *err);

/* ---------------------------------------------------------------- tokenizers */

typedef enum RtTokKind { RT_TOK_GPT2, RT_TOK_CHAR } RtTokKind;

typedef struct RtTokenizer {
    RtTokKind kind;
    RtBpe *bpe;          /* RT_TOK_GPT2 */
    RtCharTok *chr;      /* RT_TOK_CHAR */
} RtTokenizer;

/* "gpt2" or "char"; false for anything else. */
bool rt_tok_kind_parse(const char *s, RtTokKind *kind);
const char *rt_tok_kind_name(RtTokKind kind);
/* GPT-2 BPE from DIR/encoder.json and DIR/vocab.bpe; dir NULL: the data
 * cache's gpt2/ folder. */
RtTokenizer *rt_tokenizer_gpt2(const char *dir, IrError *err);
/* A char tokenizer whose vocabulary is the characters of text. */
RtTokenizer *rt_tokenizer_char(const char *text, size_t len, IrError *err);
/* A char tokenizer from a saved vocabulary (rt_chartok_save). */
RtTokenizer *rt_tokenizer_char_vocab(const char *vocab, size_t len, IrError *err);
void rt_tokenizer_free(RtTokenizer *t);
int rt_tokenizer_vocab_size(const RtTokenizer *t);
/* <|endoftext|>'s id; -1 when the tokenizer has none (char). */
int32_t rt_tokenizer_eot(const RtTokenizer *t);
/* malloc'd ids; allow_special makes <|endoftext|> one token (gpt2 only). */
bool rt_tokenizer_encode(RtTokenizer *t, const char *text, size_t len, bool allow_special,
                         int32_t **ids, size_t *n, IrError *err);
/* malloc'd bytes, NUL-terminated, length in *len (may be NULL). */
char *rt_tokenizer_decode(const RtTokenizer *t, const int32_t *ids, size_t n, size_t *len,
                          IrError *err);

/* ---------------------------------------------------------------- split */

/* The byte offset of character int(frac * nchars) of text (a character is a
 * UTF-8 code point; a stray byte counts as one). */
size_t rt_split_chars(const char *text, size_t len, double frac);

/* ---------------------------------------------------------------- loader */

typedef struct RtLoaderOptions {
    int64_t ctx;         /* tokens per window (T) */
    int64_t stride;      /* tokens between window starts */
    int64_t batch;       /* windows per batch (B) */
    bool shuffle;        /* a new seeded order every epoch */
    bool drop_last;      /* skip the last partial batch */
    uint64_t seed;
} RtLoaderOptions;

typedef struct RtLoader {
    RtLoaderOptions o;
    int32_t *ids;        /* owned copy of the token ids */
    int64_t nids;
    int64_t nwin;        /* windows */
    int64_t *order;      /* [nwin] window order of epoch order_epoch */
    int64_t order_epoch;
} RtLoader;

/* Windows over ids[0..n).  Zero windows is not an error here (the caller
 * decides); n < 0 or bad options are. */
RtLoader *rt_loader_new(const int32_t *ids, int64_t n, const RtLoaderOptions *o, IrError *err);
void rt_loader_free(RtLoader *l);
/* Batches per epoch. */
int64_t rt_loader_batches(const RtLoader *l);
/* The window index of row `row` of batch b in epoch e (e counts from 0). */
int64_t rt_loader_window(RtLoader *l, int64_t epoch, int64_t b, int64_t row);
/* Fills x and y, (batch, ctx) each, with batch b of epoch e; returns the
 * number of real rows (the rest is padding: x 0, y RT_IGNORE_INDEX). */
int64_t rt_loader_get(RtLoader *l, int64_t epoch, int64_t b, int32_t *x, int32_t *y);

/* ---------------------------------------------------------------- a text file */

typedef struct RtTextData {
    RtLoader *train, *val;   /* val is NULL when train_frac is 1 */
    size_t split_byte;       /* where the text was cut */
    size_t text_bytes;
    int64_t train_tokens, val_tokens;
} RtTextData;

/* Reads path, cuts it at character int(train_frac * nchars), tokenizes both parts
 * and builds the two loaders: train with o's shuffle and drop_last, val in
 * order with its partial batch.  An empty split is an error that names the
 * file, the token counts and what to change. */
bool rt_text_data_load(const char *path, RtTokenizer *tok, double train_frac,
                       const RtLoaderOptions *o, RtTextData *d, IrError *err);
/* The same over text already in memory (path is used in messages). */
bool rt_text_data_from(const char *text, size_t len, const char *path, RtTokenizer *tok,
                       double train_frac, const RtLoaderOptions *o, RtTextData *d, IrError *err);
void rt_text_data_free(RtTextData *d);

#endif
