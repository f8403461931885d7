/* fuzz_bpe.c — libFuzzer harness for the GPT-2 BPE loader (vocab.bpe and
 * encoder.json from anywhere).
 *
 * The bytes are the two files: vocab.bpe, then a line "@@encoder.json@@",
 * then encoder.json (no such line: all of it is vocab.bpe, and encoder.json
 * is empty).  Rejection is fine (with a message); a crash, a leak or a
 * sanitizer report is not.  A vocabulary that loads must keep the
 * tokenizer's contract on a few texts: every id below the vocabulary size,
 * decode(encode(x)) == x, and <|endoftext|> one token only when allowed.
 *
 *   scripts/fuzz.sh 60        (seeds in tests/fuzz/corpus_bpe)
 *   build-fuzz/fuzz_bpe -max_len=16384 build-fuzz/corpus-fuzz_bpe tests/fuzz/corpus_bpe
 */
#define _GNU_SOURCE
#include "ir/ir.h"
#include "runtime/rt_tok.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MARKER "@@encoder.json@@\n"

static void round_trip(RtBpe *b, const char *text, size_t len, bool special)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (rt_bpe_encode(b, text, len, special, &ids, &n) != 0)
        return;   /* out of memory */
    int V = rt_bpe_vocab_size(b);
    for (size_t i = 0; i < n; i++) {
        IR_ASSERT(ids[i] >= 0 && ids[i] < V);
        IR_ASSERT(special || ids[i] != rt_bpe_eot_id(b));
    }
    size_t back_len = 0;
    char *back = rt_bpe_decode_len(b, ids, n, &back_len);
    IR_ASSERT(back && back_len == len && !memcmp(back, text, len));
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *m = memmem(s, size, MARKER, sizeof MARKER - 1);
    size_t mlen = m ? (size_t)(m - s) : size;
    const char *json = m ? m + sizeof MARKER - 1 : "";
    size_t jlen = m ? size - mlen - (sizeof MARKER - 1) : 0;
    char *err = NULL;
    RtBpe *b = rt_bpe_load_mem(s, mlen, json, jlen, "<fuzz>", &err);
    IR_ASSERT(b || (err && err[0]));
    free(err);
    if (!b)
        return 0;
    static const char *const texts[] = {
        "Hello, world! It's 2024.\n\n  the cat's  hat<|endoftext|>ok",
        "\xff\xfe caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 \xc3",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa    \t\t\n 123456789",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        round_trip(b, texts[i], strlen(texts[i]), false);
        round_trip(b, texts[i], strlen(texts[i]), true);
    }
    round_trip(b, s, mlen, true);   /* the merges file as text */
    rt_bpe_free(b);
    return 0;
}
