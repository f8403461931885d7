/* rt_inst_gen.h — what instruction tuning does after training: a response
 * for each entry, the book's responses file, and objective scores of the
 * responses (runtime/rt_inst_gen.c, runtime/rt_inst_score.c).
 *
 * Responses, as the book's chapter 7: the prompt is the entry's prompt
 * (rt_inst_prompt, without the response text); the model continues it
 * (greedy by default, else temperature and top-k, rt_sampler_pick) until
 * <|endoftext|>, max_new tokens, the end of the model's context (prompt and
 * response together fit the window: the KV cache serves every token, and
 * the model never reads a response whose start has slid out of view; the
 * book's generate() crops the context instead), or a stop marker in the new text after
 * its response marker: the next "###" (alpaca) or "<|user|>" (phi3), so a
 * model that goes on with a new instruction stops there.  The response is
 * the new text with every response marker ("### Response:" or
 * "<|assistant|>:") removed, cut at the stop marker, and stripped of white
 * space: the book's generated_text[len(input_text):].replace(...).strip().
 *
 * The responses file: the entries as a JSON array, every key of each entry
 * as it was read, in order, plus "model_response"; indented by 4 spaces
 * like Python's json.dump(indent=4); written atomically.
 *
 * Scores (the book judges with a large model, which this machine lacks):
 *   exact      the response equals the output (both stripped);
 *   exact_norm the same after SQuAD's normalization: lower case, ASCII
 *              punctuation removed, the articles a/an/the removed, white
 *              space collapsed;
 *   f1         SQuAD's token F1 of the normalized response and output:
 *              2PR/(P+R) over the multiset of common words (both empty: 1,
 *              one empty: 0);
 *   loss, ppl  with a model: the mean cross-entropy per token of the
 *              reference response (its response text and the closing
 *              <|endoftext|>, the targets that --mask-prompt leaves) given
 *              the prompt, over all entries' tokens, and exp(loss).
 */
#ifndef GRADC_RT_INST_GEN_H
#define GRADC_RT_INST_GEN_H

#include "ir/ir.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_inst_data.h"
#include "runtime/rt_train.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- responses (rt_inst_gen.c) */

typedef struct RtRespondOptions {
    RtPromptStyle style;
    int max_new;           /* 256, the book's */
    double temperature;    /* 0: greedy */
    int top_k;             /* 0: all */
    uint64_t seed;
    FILE *progress;        /* a line per tenth of the entries; NULL: quiet */
} RtRespondOptions;

RtRespondOptions rt_respond_defaults(void);   /* alpaca, 256, greedy, seed 123 */

/* The response in new[0..len) (the text after the prompt), malloc'd. */
char *rt_inst_extract(const char *text, size_t len, RtPromptStyle style);

/* responses[i] (malloc'd) for entries e[0..n), with gen's params. */
bool rt_inst_respond(RtGen *gen, RtTokenizer *tok, const RtInstEntry *const *e, int64_t n,
                     const RtRespondOptions *o, char **responses, IrError *err);

/* The book's instruction-data-with-response.json at path. */
bool rt_inst_write_responses(const char *path, const RtInstEntry *const *e, int64_t n,
                             char *const *responses, IrError *err);

/* ---------------------------------------------------------------- scores (rt_inst_score.c) */

/* SQuAD's normalization of s, malloc'd. */
char *rt_score_normalize(const char *s);
/* 1 when the stripped texts are equal (norm: after normalization). */
int rt_score_exact(const char *response, const char *output, bool norm);
/* Token F1 of the normalized texts. */
double rt_score_f1(const char *response, const char *output);

/* The reference loss: the model's eval forward at B = 1 and T (the longest
 * example, at most the context length), params from a checkpoint. */
typedef struct RtScorer RtScorer;
RtScorer *rt_scorer_new(const IrGraph *model, const RtCkpt *c, int64_t T, int threads,
                        IrError *err);
void rt_scorer_free(RtScorer *s);
/* The summed cross-entropy of the response tokens of e under the model and
 * their count (*sum, *count). */
bool rt_scorer_entry(RtScorer *s, RtTokenizer *tok, const RtInstEntry *e, RtPromptStyle style,
                     double *sum, int64_t *count, IrError *err);

#endif
