/* fuzz_data.c — libFuzzer harness for the data loader: a text to training
 * and validation windows (rt_text_data_from, as `gradc train --data` does).
 *
 * Byte 0..3 of the input are the settings: context 1 + b0 % 24, stride
 * 1 + b1 % 24, batch 1 + b2 % 4, train_frac (1 + b3 % 10) / 10, and bit 7 of
 * b3 picks GPT-2 BPE (tests/fuzz/bpe-mini, or $GRADC_FUZZ_BPE_DIR) over the
 * char tokenizer built from the text; the rest is the text, any bytes.  A
 * rejection (too short, too few windows) must carry a message.  Otherwise,
 * over two epochs, every batch must hold only real windows of the token
 * array (targets the inputs shifted by one, every id below the vocabulary
 * size) or padding (input 0, target -100), and the train batches full
 * ones.
 *
 *   scripts/fuzz.sh 60        (seeds in tests/fuzz/corpus_data)
 */
#include "runtime/rt_data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static RtTokenizer *gpt2(void)
{
    static RtTokenizer *t;
    if (!t) {
        const char *dir = getenv("GRADC_FUZZ_BPE_DIR");
        IrError err = {0};
        t = rt_tokenizer_gpt2(dir ? dir : "tests/fuzz/bpe-mini", &err);
        if (!t) {
            fprintf(stderr, "fuzz_data: %s (run from the source root)\n", err.msg);
            abort();
        }
    }
    return t;
}

/* Every batch of two epochs: real windows or padding. */
static void check_loader(RtLoader *l, int V, bool full)
{
    int64_t T = l->o.ctx, B = l->o.batch, nb = rt_loader_batches(l);
    int32_t *x = malloc(sizeof *x * (size_t)(B * T)), *y = malloc(sizeof *y * (size_t)(B * T));
    for (int64_t epoch = 0; epoch < 2; epoch++)
        for (int64_t b = 0; b < nb; b++) {
            int64_t rows = rt_loader_get(l, epoch, b, x, y);
            IR_ASSERT(rows >= 1 && rows <= B && (!full || rows == B));
            for (int64_t r = 0; r < B; r++)
                for (int64_t t = 0; t < T; t++) {
                    int32_t xi = x[r * T + t], yi = y[r * T + t];
                    if (r >= rows) {
                        IR_ASSERT(xi == 0 && yi == RT_IGNORE_INDEX);
                        continue;
                    }
                    IR_ASSERT(xi >= 0 && xi < V && yi >= 0 && yi < V);
                    IR_ASSERT(t == T - 1 || yi == x[r * T + t + 1]);
                }
        }
    free(x);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    RtLoaderOptions o = {.ctx = 1 + data[0] % 24, .stride = 1 + data[1] % 24,
                         .batch = 1 + data[2] % 4, .shuffle = true, .drop_last = true,
                         .seed = data[0] ^ (uint64_t)data[1] << 8};
    double frac = (1 + data[3] % 10) / 10.0;
    const char *text = (const char *)data + 4;
    size_t len = size - 4;
    IR_ASSERT(rt_split_chars(text, len, frac) <= len && rt_split_chars(text, len, 1) == len);
    IrError err = {0};
    RtTokenizer *own = data[3] & 0x80 ? NULL : rt_tokenizer_char(text, len, &err);
    RtTokenizer *tok = own ? own : gpt2();
    RtTextData d;
    if (rt_text_data_from(text, len, "<fuzz>", tok, frac, &o, &d, &err)) {
        int V = rt_tokenizer_vocab_size(tok);
        check_loader(d.train, V, true);
        if (d.val)
            check_loader(d.val, V, false);
        rt_text_data_free(&d);
    } else {
        IR_ASSERT(err.set && err.msg[0]);
    }
    rt_tokenizer_free(own);
    return 0;
}
