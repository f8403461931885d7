/* rt_tok.h — tokenizers of the runtime: GPT-2 byte-level BPE and a char tokenizer.
 *
 * GPT-2 BPE (rt_bpe.c) is token-exact with tiktoken's "gpt2" encoding.  It is
 * loaded from the two files GPT-2 shipped, encoder.json (token -> id) and
 * vocab.bpe (the merges in rank order), and it follows tiktoken's algorithm:
 *   1. split the text into pieces with GPT-2's pre-tokenization regex, which
 *      is hand-written in C here (no regex library; Unicode classes come from
 *      the generated table rt_unicode_tab.h);
 *   2. a piece whose bytes are a token is that token; otherwise start from its
 *      single bytes and repeatedly merge the adjacent pair whose concatenation
 *      has the lowest rank (leftmost on ties) until no pair is a token.
 * Pair ranks live in a hash map and finished pieces in a cache, so encoding
 * runs at several MB/s.  Ids are int32_t.  <|endoftext|> (id 50256) is one
 * token only when the caller passes allow_special; otherwise those 13 bytes
 * are ordinary text.  Encoding is byte-exact for any input: bytes that are not
 * valid UTF-8 are classed like punctuation, and decode(encode(x)) == x.
 *
 * The char tokenizer (rt_chartok.c) maps each distinct UTF-8 code point of a
 * training text to an id, in code-point order.  Its vocabulary saves to a
 * string (the characters in id order) so that it can travel in a checkpoint.
 *
 * Errors are malloc'd messages that say what failed and what to do; the
 * caller frees them.  Nothing here exits or prints.
 *
 *   char *err = NULL;
 *   RtBpe *bpe = rt_bpe_load("../shared/data/gpt2", &err);
 *   if (!bpe) { fprintf(stderr, "gradc: %s\n", err); free(err); return 1; }
 *   int32_t *ids; size_t n;
 *   rt_bpe_encode(bpe, "Hello, world", 12, false, &ids, &n); // 15496 11 995
 *   char *text = rt_bpe_decode(bpe, ids, n);                 // "Hello, world"
 *   free(text); free(ids); rt_bpe_free(bpe);
 *
 *   RtCharTok *ct = rt_chartok_build(corpus, corpus_len);
 *   rt_chartok_encode(ct, "to be", 5, &ids, &n, &err);
 *   size_t vlen; char *vocab = rt_chartok_save(ct, &vlen);   // store it ...
 *   RtCharTok *ct2 = rt_chartok_load(vocab, vlen, &err);     // ... and load it
 */
#ifndef GRADC_RT_TOK_H
#define GRADC_RT_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- GPT-2 byte-level BPE (rt_bpe.c) ---- */

typedef struct RtBpe RtBpe;

#define RT_BPE_ENDOFTEXT "<|endoftext|>"

/* Loads DIR/encoder.json and DIR/vocab.bpe.  On failure returns NULL and sets
 * *err (if err is not NULL) to a malloc'd message naming the file. */
RtBpe *rt_bpe_load(const char *dir, char **err);
/* The same from the two files' bytes (for the fuzz harness and tests); `name`
 * stands for the folder in messages. */
RtBpe *rt_bpe_load_mem(const char *vocab_bpe, size_t vlen, const char *encoder_json,
                       size_t jlen, const char *name, char **err);
void rt_bpe_free(RtBpe *bpe);

/* Encodes text[0..len) into a malloc'd array *ids of *n ids.  Returns 0, or
 * -1 when out of memory.  Not thread-safe: it fills the BPE's piece cache. */
int rt_bpe_encode(RtBpe *bpe, const char *text, size_t len, bool allow_special,
                  int32_t **ids, size_t *n);

/* Decodes ids into malloc'd bytes, NUL-terminated (the bytes may contain NUL;
 * use rt_bpe_decode_len to get the length).  Returns NULL if an id is not in
 * the vocabulary (id < 0 or id >= rt_bpe_vocab_size) or when out of memory. */
char *rt_bpe_decode(const RtBpe *bpe, const int32_t *ids, size_t n);
char *rt_bpe_decode_len(const RtBpe *bpe, const int32_t *ids, size_t n, size_t *len);

int rt_bpe_vocab_size(const RtBpe *bpe);   /* 50257 for GPT-2 */
int32_t rt_bpe_eot_id(const RtBpe *bpe);   /* id of <|endoftext|>: 50256 */

/* The pre-tokenizer alone: the end of the piece that starts at pos < len.
 * Exposed for tests; rt_bpe_encode calls it in a loop. */
size_t rt_bpe_piece_end(const char *text, size_t len, size_t pos);

/* ---- char tokenizer (rt_chartok.c) ---- */

typedef struct RtCharTok RtCharTok;

/* Vocabulary = the sorted distinct code points of text.  A byte that is not
 * part of valid UTF-8 counts as a character of its own, so any bytes work.
 * Returns NULL only when out of memory. */
RtCharTok *rt_chartok_build(const char *text, size_t len);
void rt_chartok_free(RtCharTok *ct);
int rt_chartok_vocab_size(const RtCharTok *ct);

/* Returns 0, or -1 with *err set when text holds a character that is not in
 * the vocabulary (or when out of memory). */
int rt_chartok_encode(const RtCharTok *ct, const char *text, size_t len,
                      int32_t **ids, size_t *n, char **err);
/* Malloc'd bytes, NUL-terminated, length in *len (may be NULL); NULL for an
 * id outside [0, vocab_size) or when out of memory. */
char *rt_chartok_decode(const RtCharTok *ct, const int32_t *ids, size_t n, size_t *len);

/* The vocabulary as a string: its characters in id order, NUL-terminated,
 * length in *len.  rt_chartok_load(save(ct)) gives the same tokenizer. */
char *rt_chartok_save(const RtCharTok *ct, size_t *len);
RtCharTok *rt_chartok_load(const char *vocab, size_t len, char **err);

#endif
