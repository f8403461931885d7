/* rt_cls_data.h — labelled texts for classification fine-tuning: the file
 * reader (runtime/rt_cls_read.c) and the pipeline that balances, splits,
 * tokenizes, pads and batches them (runtime/rt_cls_data.c).  It follows the
 * book's chapter 6 (create_balanced_dataset, random_split, SpamDataset).
 *
 * Files.  Two formats, UTF-8 (checked: a bad byte is an error at line:col;
 * a leading BOM is skipped), LF or CRLF line ends:
 *   TSV  `LABEL<TAB>TEXT` per line, no header: the SMS Spam Collection.  The
 *        text is everything after the first tab.  A first line that reads
 *        `label<TAB>text` or `text<TAB>label` (any case) is a header, and
 *        the second one swaps the columns.  Blank lines are skipped.  In a
 *        text, \t \n \r and \\ stand for a tab, a newline, a carriage return
 *        and a backslash; any other backslash is itself (the SMS file's
 *        don\'t stays don\'t).
 *   CSV  RFC 4180 with a header line that names a `label` and a `text`
 *        column (any case, any order, other columns ignored): fields may be
 *        quoted, "" in a quoted field is a quote, and quoted fields may hold
 *        commas and newlines.  No backslash escapes.  Every record has the
 *        header's number of fields.
 * The format: .csv is CSV, .tsv is TSV; any other name is CSV when its
 * first line has no tab but a comma, else TSV.
 * Labels are trimmed of spaces; an empty label, an empty text, a label with
 * a tab or newline, a line without a tab (TSV), an unterminated quote or a
 * field count that differs from the header's (CSV) is an error naming
 * FILE:LINE (the line a record starts on) and, where it helps, the column.
 *
 * Labels.  Label ids are the training labels sorted by byte order (strcmp):
 * ham = 0, spam = 1.  Training data with fewer than 2 labels is an error.
 *
 * One file (o.data_path).  As the book: every class is undersampled to the
 * smallest class's count (a seeded draw without replacement; the kept
 * examples stay in file order), unless o.balance is false; then the pool is
 * shuffled with the seed (Fisher-Yates on ir/rng.h's xoshiro stream
 * ir_rng_stream(seed, "cls-shuffle"); the draw uses "cls-balance") and
 * split: train = floor(train_frac * n), val = floor(val_frac * n), test =
 * the rest (Python's int(n * 0.7), so 1494 examples give 1045/149/300).
 * Pre-split files (o.train_path, with o.val_path and o.test_path, either
 * may be NULL: an empty split): no balancing, no shuffle, file order kept;
 * a val or test label that is not a training label is an error ("label
 * 'foo' at test.tsv:12 is not among the training labels {ham, spam}").
 *
 * Tokens.  Every text is encoded with o.tok (GPT-2 BPE; <|endoftext|> in a
 * text is ordinary text, as tiktoken's encode() by default refuses it) and
 * all of its ids are kept in ex.ids[0..n).  A text that encodes to no token
 * is an error naming its line.  The padded length is
 *     pad_len = min(max_len > 0 ? max_len : longest training example,
 *                   context_length)          (context_length 0: no cap)
 * for all three splits; a longer example is truncated to its first pad_len
 * tokens (`truncated` counts them, in all splits), and its last real token
 * is at min(n, pad_len) - 1.
 *
 * Batches.  rt_cls_fill copies rows order[start .. start+B) of a split into
 * x (B, T = pad_len), padded with o.pad_id, with last[b] the index of the
 * row's last real token and y[b] its label id.  It returns the number of
 * real rows: past the end of the split, a row is padding (x all pad_id,
 * last 0, y RT_IGNORE_INDEX, which cross_entropy skips), so the compiled
 * step keeps one batch size.  The caller chooses: the book drops the last
 * partial train batch (drop_last=True: train for n / B batches) and
 * evaluates every val/test example (ceil(n / B) batches, counting only the
 * real rows).  rt_cls_order gives the order of an epoch.
 *
 * Writing.  rt_cls_write_split writes DIR/split/{train,val,test}.tsv: the
 * header line `label<TAB>text`, then one `label<TAB>text` line per example
 * in split order; this reader reads them back as the same examples
 * (o.train_path etc.; the header keeps an example that reads "label<TAB>
 * text" from being taken for one).  A tab,
 * newline or carriage return in a text is written \t \n \r, and a backslash
 * as \\ where it would otherwise read as part of one (before \ t n r, a
 * tab, a line break, or at the end); other texts are written as they are.
 *
 *   RtTokenizer *tok = rt_tokenizer_gpt2(bpe_dir, &err);
 *   RtClsOptions o = rt_cls_defaults();        // balance, 0.7/0.1, seed 123
 *   o.data_path = "SMSSpamCollection"; o.tok = tok; o.context_length = 1024;
 *   RtClsData d;
 *   if (!rt_cls_load(&o, &d, &err)) ...;       // d.labels {ham, spam}
 *   int64_t T = d.pad_len, order[d.train.n];
 *   rt_cls_order(&d.train, true, o.seed, epoch, order);
 *   for (int64_t s = 0; s + B <= d.train.n; s += B)           // drop_last
 *       rt_cls_fill(&d, &d.train, order, s, B, x, last, y);   // x (B, T)
 *   rt_cls_write_split(&d, "runs/spam", &err);
 *   rt_cls_free(&d);
 */
#ifndef GRADC_RT_CLS_DATA_H
#define GRADC_RT_CLS_DATA_H

#include "ir/ir.h"
#include "runtime/rt_data.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- reading (rt_cls_read.c) */

typedef struct RtClsRecord {
    char *label;         /* trimmed, non-empty, no tab or newline */
    char *text;          /* unescaped / unquoted, non-empty */
    int64_t line;        /* 1-based line the record starts on */
} RtClsRecord;

typedef struct RtClsTable {
    RtClsRecord *rec;
    int64_t n;
    bool csv;            /* the format it was read as */
} RtClsTable;

/* Parses buf[0..len) (any bytes; NUL-terminated or not) as the file `path`
 * (its extension picks the format; it names the file in messages). */
bool rt_cls_parse(const char *buf, size_t len, const char *path, RtClsTable *t, IrError *err);
/* Reads and parses the file. */
bool rt_cls_read(const char *path, RtClsTable *t, IrError *err);
void rt_cls_table_free(RtClsTable *t);

/* ---------------------------------------------------------------- the data set (rt_cls_data.c) */

typedef struct RtClsOptions {
    const char *data_path;       /* one file: balanced, shuffled, split */
    const char *train_path;      /* or pre-split files (val, test may be NULL) */
    const char *val_path, *test_path;
    bool balance;                /* undersample to the smallest class (one file) */
    double train_frac, val_frac; /* test gets the rest (one file) */
    uint64_t seed;
    int64_t max_len;             /* 0: the longest training example */
    int64_t context_length;      /* cap on pad_len; 0: none */
    RtTokenizer *tok;            /* not owned; encoding fills its cache */
    int32_t pad_id;              /* 50256, <|endoftext|> */
} RtClsOptions;

typedef struct RtClsExample {
    char *text;
    int32_t *ids;        /* all n tokens (rt_cls_fill truncates to pad_len) */
    int32_t n;
    int32_t label;       /* id: index into RtClsData.labels */
    int64_t line;        /* line in source */
} RtClsExample;

typedef struct RtClsSplit {
    RtClsExample *ex;
    int64_t n;           /* may be 0 for val and test */
    char *source;        /* the file its examples come from */
} RtClsSplit;

typedef struct RtClsData {
    char **labels;       /* sorted by byte order; id = index */
    int nlabels;
    RtClsSplit train, val, test;
    int64_t pad_len;     /* T */
    int32_t pad_id;      /* the options' */
    int64_t longest;     /* tokens of the longest training example */
    int64_t truncated;   /* examples (all splits) longer than pad_len */
    int64_t read;        /* examples in the file(s) */
    int64_t dropped;     /* removed by balancing */
} RtClsData;

/* Balance on, 0.7 / 0.1, seed 123, pad_id 50256, no max_len or cap. */
RtClsOptions rt_cls_defaults(void);
/* Reads, checks, balances, splits and tokenizes as described at the top.
 * False + err (d is then empty and need not be freed). */
bool rt_cls_load(const RtClsOptions *o, RtClsData *d, IrError *err);
void rt_cls_free(RtClsData *d);
/* The label's id, -1 when it is not a training label. */
int rt_cls_label_id(const RtClsData *d, const char *name);
/* Examples of split s with label id `label` (the summary counts). */
int64_t rt_cls_count(const RtClsSplit *s, int label);

/* order[0..s->n): 0, 1, ... or, when shuffle, a permutation that depends
 * only on (seed, epoch). */
void rt_cls_order(const RtClsSplit *s, bool shuffle, uint64_t seed, int64_t epoch,
                  int64_t *order);
/* Rows order[start ..] of s into x (B, pad_len), last (B) and y (B); order
 * NULL: the split's order.  Returns the real rows, min(B, n - start) (0 when
 * start >= n); the other rows are padding as described at the top. */
int64_t rt_cls_fill(const RtClsData *d, const RtClsSplit *s, const int64_t *order,
                    int64_t start, int64_t B, int32_t *x, int32_t *last, int32_t *y);
/* One text for `gradc classify`: encodes text[0..len) into x (pad_len ids,
 * padded with pad_id, truncated past pad_len), *last = its last real token
 * index, *truncated whether it was cut (may be NULL).  A text with no
 * token is an error. */
bool rt_cls_encode_text(RtTokenizer *tok, const char *text, size_t len, int64_t pad_len,
                        int32_t pad_id, int32_t *x, int32_t *last, bool *truncated,
                        IrError *err);

/* DIR/split/{train,val,test}.tsv (the folder is created), atomically. */
bool rt_cls_write_split(const RtClsData *d, const char *dir, IrError *err);
/* Writes one text with the escapes described at the top. */
void rt_cls_write_text(FILE *f, const char *text);

#endif
