/* fuzz_tokenize.c — libFuzzer harness for the tokenizers' input: any bytes,
 * invalid UTF-8 included.
 *
 * The bytes are a text.  GPT-2 BPE (tests/fuzz/bpe-mini, the first 300
 * merges of GPT-2, or the folder $GRADC_FUZZ_BPE_DIR names, such as the real
 * files) encodes it with and without <|endoftext|> as a special token; the
 * char tokenizer builds its vocabulary from it, encodes and decodes it, saves
 * and reloads the vocabulary; the text is also loaded as a saved vocabulary
 * (what a checkpoint's tokenizer.char_vocab holds).  Every id must be below
 * the vocabulary size, decode(encode(x)) must give x back, and a rejection
 * must carry a message.
 *
 *   scripts/fuzz.sh 60        (seeds in tests/fuzz/corpus_tokenize)
 *   GRADC_FUZZ_BPE_DIR=../shared/data/gpt2 build-fuzz/fuzz_tokenize tests/fuzz/corpus_tokenize
 */
#include "ir/ir.h"
#include "runtime/rt_tok.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static RtBpe *bpe(void)
{
    static RtBpe *b;
    if (!b) {
        const char *dir = getenv("GRADC_FUZZ_BPE_DIR");
        char *err = NULL;
        b = rt_bpe_load(dir ? dir : "tests/fuzz/bpe-mini", &err);
        if (!b) {
            fprintf(stderr, "fuzz_tokenize: %s (run from the source root)\n", err);
            abort();
        }
    }
    return b;
}

static void bpe_round_trip(const char *text, size_t len, bool special)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (rt_bpe_encode(bpe(), text, len, special, &ids, &n) != 0)
        return;   /* out of memory */
    for (size_t i = 0; i < n; i++) {
        IR_ASSERT(ids[i] >= 0 && ids[i] < rt_bpe_vocab_size(bpe()));
        IR_ASSERT(special || ids[i] != rt_bpe_eot_id(bpe()));
    }
    size_t back_len = 0;
    char *back = rt_bpe_decode_len(bpe(), ids, n, &back_len);
    IR_ASSERT(back && back_len == len && !memcmp(back, text, len));
    free(back);
    free(ids);
}

/* encode then decode with ct gives text back; *n the number of ids. */
static void char_round_trip(const RtCharTok *ct, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0, back_len = 0;
    char *err = NULL;
    IR_ASSERT(rt_chartok_encode(ct, text, len, &ids, &n, &err) == 0);
    for (size_t i = 0; i < n; i++)
        IR_ASSERT(ids[i] >= 0 && ids[i] < rt_chartok_vocab_size(ct));
    char *back = rt_chartok_decode(ct, ids, n, &back_len);
    IR_ASSERT(back && back_len == len && !memcmp(back, text, len));
    free(back);
    free(ids);
}

static void chartok(const char *text, size_t len)
{
    RtCharTok *ct = rt_chartok_build(text, len);
    IR_ASSERT(ct);
    char_round_trip(ct, text, len);
    size_t vlen = 0;
    char *vocab = rt_chartok_save(ct, &vlen), *err = NULL;
    RtCharTok *again = rt_chartok_load(vocab, vlen, &err);
    IR_ASSERT(again && rt_chartok_vocab_size(again) == rt_chartok_vocab_size(ct));
    char_round_trip(again, text, len);
    rt_chartok_free(again);
    rt_chartok_free(ct);
    free(vocab);
    /* the text as a saved vocabulary: refused, or one that encodes itself */
    RtCharTok *as_vocab = rt_chartok_load(text, len, &err);
    IR_ASSERT(as_vocab || (err && err[0]));
    if (as_vocab)
        char_round_trip(as_vocab, text, len);
    rt_chartok_free(as_vocab);
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    bpe_round_trip(text, size, false);
    bpe_round_trip(text, size, true);
    chartok(text, size);
    return 0;
}
