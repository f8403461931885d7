/* fuzz_ckpt.c — libFuzzer harness for checkpoints and safetensors files: the
 * reader, and what `gradc generate` and `gradc train --resume` do with a
 * checkpoint's metadata before they compile anything.
 *
 * The bytes are a safetensors file.  They are read twice: as gradc reads a
 * file (the hashes checked, which a mutated header almost never passes), and
 * with RT_CKPT_NO_HASH, which is how an old checkpoint without hashes, or a
 * forged one, reaches everything behind them: train.options, model.json with
 * model.sets through the frontend, the tokenizer checked against the model
 * (rt_ckpt_tokenizer; gpt2 from tests/fuzz/bpe-mini, or $GRADC_FUZZ_BPE_DIR)
 * and the char vocabulary.  Rejection is fine (with a message); a crash, a
 * leak, a sanitizer report or a tensor outside the input is not.  An input
 * that starts with '{' is the header's JSON, a NUL byte and the data, the
 * length word left to the harness (see LLVMFuzzerTestOneInput).
 *
 *   scripts/fuzz.sh 60        (runs every harness; seeds in tests/fuzz/corpus_ckpt)
 *   build-fuzz/fuzz_ckpt -max_len=65536 build-fuzz/corpus-fuzz_ckpt tests/fuzz/corpus_ckpt
 */
#include "frontend/fe.h"
#include "runtime/rt_train.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every tensor lies inside the input, and together they tile what follows
 * the header; their bytes are read, so that ASan sees every one. */
static void check_tensors(const RtCkpt *c, const uint8_t *data, size_t size)
{
    int64_t total = 0;
    unsigned sum = 0;
    for (int i = 0; i < c->n; i++) {
        const RtCkptTensor *t = &c->t[i];
        const uint8_t *p = t->data;
        IR_ASSERT(p >= data + 8 && p + t->bytes <= data + size);
        IR_ASSERT(t->bytes == t->numel * (int64_t)rt_dtype_size(t->dtype));
        for (int64_t k = 0; k < t->bytes; k++)
            sum += p[k];
        total += t->bytes;
    }
    IR_ASSERT(c->n == 0 || (const uint8_t *)c->t[0].data + total == data + size);
    (void)sum;
}

/* The model and its --set values, as cmd_generate's load does. */
static FeModel *load_model(const RtCkpt *c)
{
    const char *json = rt_ckpt_meta_get(c, "model.json");
    if (!json)
        return NULL;
    FeSet sets[16];
    int n = 0;
    cJSON *o = cJSON_Parse(rt_ckpt_meta_get(c, "model.sets") ?: "{}");
    for (const cJSON *e = o ? o->child : NULL; e && n < 16; e = e->next)
        if (cJSON_IsString(e))
            sets[n++] = (FeSet){e->string, e->valuestring};
    FeOptions fo = {sets, n};
    IrError err = {0};
    FeModel *m = fe_load_string(json, "<fuzz> (metadata model.json)", &fo, &err);
    IR_ASSERT(m || (err.set && err.msg[0]));
    cJSON_Delete(o);
    return m;
}

/* What generate and --resume take from the metadata. */
static void use_metadata(const RtCkpt *c)
{
    IrError err = {0};
    RtTrainOptions o = rt_train_defaults();
    if (!rt_train_options_from_ckpt(c, &o, &err))
        IR_ASSERT(err.set && err.msg[0]);
    FeModel *m = load_model(c);
    if (!m)
        return;
    const char *bpe = getenv("GRADC_FUZZ_BPE_DIR");
    err = (IrError){0};
    RtTokenizer *tok = rt_ckpt_tokenizer(c, m->graph, bpe ? bpe : "tests/fuzz/bpe-mini", &err);
    IR_ASSERT(tok || (err.set && err.msg[0]));
    if (tok) {
        const RtCkptTensor *v = rt_ckpt_find(c, "tokenizer.char_vocab");
        int32_t *ids = NULL;
        size_t n = 0;
        const char *text = v ? (const char *)v->data : "the prompt";
        size_t len = v ? (size_t)v->bytes : 10;
        if (rt_tokenizer_encode(tok, text, len, true, &ids, &n, &err)) {
            size_t back_len = 0;
            char *back = rt_tokenizer_decode(tok, ids, n, &back_len, &err);
            IR_ASSERT(back && back_len == len && !memcmp(back, text, len));
            free(back);
            free(ids);
        }
        rt_tokenizer_free(tok);
    }
    fe_model_free(m);
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read_mem(data, size, "<fuzz>", 0, &err);
    IR_ASSERT(c || (err.set && err.msg[0]));
    if (c)
        check_tensors(c, data, size);
    rt_ckpt_free(c);
    err = (IrError){0};
    c = rt_ckpt_read_mem(data, size, "<fuzz>", RT_CKPT_NO_HASH, &err);
    IR_ASSERT(c || (err.set && err.msg[0]));
    if (c) {
        check_tensors(c, data, size);
        use_metadata(c);
    }
    rt_ckpt_free(c);
}

/* An input that starts with '{' is a header, a NUL byte and the data: the
 * harness writes the length word, so that a mutation may make the header
 * longer or shorter (inside a length-prefixed file it seldom can: the JSON
 * is cut, or runs into the data).  Any other input is the file itself. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = size && data[0] == '{' ? memchr(data, 0, size) : NULL;
    if (!nul) {
        fuzz_file(data, size);
        return 0;
    }
    size_t h = (size_t)(nul - data);
    uint8_t *file = malloc(size + 7);
    for (int b = 0; b < 8; b++)
        file[b] = (uint8_t)((uint64_t)h >> (8 * b));
    memcpy(file + 8, data, h);
    memcpy(file + 8 + h, nul + 1, size - h - 1);
    fuzz_file(file, size + 7);
    free(file);
    return 0;
}
