/* rt_inst_data.h — instruction data for instruction fine-tuning: the file
 * reader (runtime/rt_inst_read.c) and the pipeline that formats, splits,
 * tokenizes, pads and batches the entries (runtime/rt_inst_data.c).  It
 * follows the book's chapter 7 (format_input, InstructionDataset,
 * custom_collate_fn) and its exercises 7.1 (the Phi-3 prompt) and 7.2
 * (masking the prompt in the loss).
 *
 * Files.  UTF-8 (checked; a leading BOM is skipped), one of:
 *   a JSON array of objects    [{"instruction": ..., "input": ..., "output": ...}, ...]
 *                              (the Alpaca format, as instruction-data.json);
 *   JSON Lines                 one object per line; blank lines are skipped.
 * The first character that is not white space picks the format: '[' is an
 * array, '{' is JSON Lines.  Each entry needs a string "instruction" and a
 * string "output"; "input" may be absent, null or a string (absent and
 * null read as ""); other keys are kept in RtInstEntry.json and otherwise
 * ignored.  Entries are counted from 0 in file order ("entry 12" is
 * data[12] in Python) and know the 1-based line they start on.  Errors name
 * the file and the place: a JSON syntax error at FILE:LINE:COL; an entry
 * that is not an object, lacks a field, has a non-string field or repeats
 * one as "FILE: entry 12 (line 88): ..."; an empty file, an empty array.
 *
 * Prompts (the book's whitespace exactly, so the token ids are the book's):
 *   alpaca  "Below is an instruction that describes a task. Write a response
 *           that appropriately completes the request.\n\n### Instruction:\n"
 *           + instruction + ("\n\n### Input:\n" + input if input)
 *           response text "\n\n### Response:\n" + output
 *   phi3    "<|user|>\n" + instruction + ("\n" + input if input)
 *           response text "\n<|assistant|>:\n" + output
 * An example's ids are encode(prompt + response text) (GPT-2 BPE;
 * <|endoftext|> in a text is ordinary text), prompt_n = len(encode(prompt)).
 *
 * Split (the book's): in file order (o.shuffle_split: a seeded shuffle
 * first, stream "inst-split"), train = the first int(n * train_frac), test
 * = the next int(n * test_frac), val = the rest (1100 -> 935/110/55).
 *
 * Padding.  One width T for every batch of every split: the tokens of the
 * longest example, capped at o.max_len (0: no cap).  An example longer than
 * max_len is an error naming it ("FILE: entry 12 (line 88) has 130 tokens,
 * more than --max-len 128 ...") unless o.truncate; then it is cut as the
 * book's collate cuts it, and counted in `truncated`.
 *
 * Batches.  rt_inst_fill is custom_collate_fn with each row padded to T.
 * A row of an example with ids[0..n) and t in [0, T):
 *   x[t] = ids[t] for t < n, else pad;
 *   y[t] = ids[t+1] for t+1 < n; pad at t = n-1 (the first pad target, the
 *          end of the text); -100 (RT_IGNORE_INDEX) after it; as the book,
 *          every target equal to pad but the first becomes -100;
 *   with mask_prompt also y[t] = -100 for t < prompt_n - 1.
 * The book pads a batch to its longest row only (width max(n), capped at
 * max_len); the columns past that width are x pad, y -100 here, so each
 * row's loss terms are the book's (attention is causal, -100 is skipped).
 * Rows past the end of the split are padding: x all pad, y all -100.
 * The book's train loader shuffles every epoch and drops the last partial
 * batch; val and test keep their order and every entry (rt_ft_inst.c).
 *
 *   RtTokenizer *tok = rt_tokenizer_gpt2(NULL, &err);
 *   RtInstOptions o = rt_inst_defaults();      // 0.85/0.10, alpaca, seed 123
 *   o.data_path = "instruction-data.json"; o.tok = tok; o.max_len = 1024;
 *   RtInstData d;
 *   if (!rt_inst_load(&o, &d, &err)) ...;      // d.train.n 935, d.T 91
 *   int64_t order[d.train.n], width;
 *   rt_inst_order(&d.train, true, o.seed, epoch, order);
 *   for (int64_t s = 0; s + B <= d.train.n; s += B)           // drop_last
 *       rt_inst_fill(&d, &d.train, order, s, B, x, y, &width); // x, y (B, T)
 *   rt_inst_free(&d);
 */
#ifndef GRADC_RT_INST_DATA_H
#define GRADC_RT_INST_DATA_H

#include "ir/ir.h"
#include "runtime/rt_data.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- reading (rt_inst_read.c) */

typedef struct RtInstEntry {
    char *instruction, *input, *output;  /* input "" when absent or null */
    char *json;        /* the entry object as read, unformatted (cJSON_PrintUnformatted) */
    int64_t index;     /* 0-based position in the file */
    int64_t line;      /* 1-based line where the entry starts */
} RtInstEntry;

typedef struct RtInstSet {
    RtInstEntry *e;
    int64_t n;
    bool jsonl;        /* the format it was read as */
} RtInstSet;

/* Parses buf[0..len) (any bytes) as the file `path` (named in messages). */
bool rt_inst_parse(const char *buf, size_t len, const char *path, RtInstSet *s, IrError *err);
/* Reads and parses the file. */
bool rt_inst_read(const char *path, RtInstSet *s, IrError *err);
void rt_inst_set_free(RtInstSet *s);

/* ---------------------------------------------------------------- prompts (rt_inst_data.c) */

typedef enum RtPromptStyle { RT_PROMPT_ALPACA, RT_PROMPT_PHI3 } RtPromptStyle;

/* "alpaca", "phi3"; false for anything else. */
bool rt_prompt_style_parse(const char *name, RtPromptStyle *s);
const char *rt_prompt_style_name(RtPromptStyle s);
/* format_input(e), malloc'd. */
char *rt_inst_prompt(const RtInstEntry *e, RtPromptStyle s);
/* "\n\n### Response:\n" + output (phi3: "\n<|assistant|>:\n" + output), malloc'd. */
char *rt_inst_response_text(const RtInstEntry *e, RtPromptStyle s);
/* "### Response:" / "<|assistant|>:" */
const char *rt_inst_response_marker(RtPromptStyle s);

/* ---------------------------------------------------------------- the data set (rt_inst_data.c) */

typedef struct RtInstOptions {
    const char *data_path;
    double train_frac, test_frac;   /* 0.85, 0.10; val gets the rest */
    bool shuffle_split;
    uint64_t seed;
    RtPromptStyle style;
    bool mask_prompt;
    int64_t max_len;                /* cap on T (the context length); 0: none */
    bool truncate;                  /* longer than max_len: cut (true) or error */
    RtTokenizer *tok;               /* not owned */
    int32_t pad_id;                 /* 50256 */
} RtInstOptions;

typedef struct RtInstExample {
    const RtInstEntry *entry;       /* into RtInstData.set */
    int32_t *ids;                   /* prompt + response tokens (before truncation) */
    int32_t n;
    int32_t prompt_n;               /* len(encode(format_input(e))) */
} RtInstExample;

typedef struct RtInstSplit {
    RtInstExample *ex;
    int64_t n;
} RtInstSplit;

typedef struct RtInstData {
    RtInstSet set;
    RtInstSplit train, val, test;
    int64_t T;            /* padded width of every batch */
    int64_t longest;      /* tokens of the longest example (all splits) */
    int64_t truncated;    /* examples cut to max_len */
    RtPromptStyle style;
    bool mask_prompt;
    int32_t pad_id;
    const char *path;     /* o.data_path (borrowed) */
} RtInstData;

/* 0.85 / 0.10, file order, seed 123, alpaca, no mask, no cap, pad 50256. */
RtInstOptions rt_inst_defaults(void);
/* Reads, splits and tokenizes as described at the top.  False + err (d is
 * then empty and need not be freed). */
bool rt_inst_load(const RtInstOptions *o, RtInstData *d, IrError *err);
void rt_inst_free(RtInstData *d);
/* Tokenizes one example (e borrowed): ids of prompt + response text, and
 * prompt_n. */
bool rt_inst_encode(RtTokenizer *tok, const RtInstEntry *e, RtPromptStyle style,
                    RtInstExample *ex, IrError *err);

/* order[0..s->n): 0, 1, ... or, when shuffle, a permutation that depends
 * only on (seed, epoch). */
void rt_inst_order(const RtInstSplit *s, bool shuffle, uint64_t seed, int64_t epoch,
                   int64_t *order);
/* Rows order[start .. start+B) of s (order NULL: split order) into x and y,
 * (B, T) each, as described at the top.  Returns the real rows; *width (may
 * be NULL) gets the book's tensor width of these rows, min(max n, T) (0
 * without a real row). */
int64_t rt_inst_fill(const RtInstData *d, const RtInstSplit *s, const int64_t *order,
                     int64_t start, int64_t B, int32_t *x, int32_t *y, int64_t *width);
/* One row of an example (ids[0..n), prompt_n) into x[0..T), y[0..T). */
void rt_inst_row(const int32_t *ids, int64_t n, int64_t prompt_n, bool mask_prompt,
                 int32_t pad, int64_t T, int32_t *x, int32_t *y);
/* `gradc finetune instruct --dump-batches N`: the first N train batches in
 * split order (no shuffle; whole batches only, as drop_last), one JSON line
 * each: {"batch": b, "entries": [file index of each row], "inputs": [[..]],
 * "targets": [[..]]}, the rows cut to the book's width.  Returns the
 * batches written. */
int64_t rt_inst_dump_batches(FILE *f, const RtInstData *d, int64_t B, int64_t nbatches);

#endif
