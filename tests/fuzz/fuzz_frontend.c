/* fuzz_frontend.c — libFuzzer harness for the JSON graph-file frontend.
 *
 * The bytes are loaded as a model file.  Rejection is fine (the error must
 * then carry a message); crashing, leaking, overflowing or tripping a
 * sanitizer is not.  A model that loads must pass the verifier, and its
 * error-free load must not depend on anything but the bytes: `base` files
 * are looked up next to "<fuzz>", that is in the working directory.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DGRADC_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_frontend
 *   build-fuzz/fuzz_frontend -max_total_time=60 tests/fuzz/corpus_json
 */
#include "frontend/fe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    /* --set overrides take part too: a fixed pair exercises that path */
    FeSet sets[] = {{"n_layers", "1"}};
    FeOptions opt = {sets, size % 2};
    IrError err = {0};
    FeModel *m = fe_load_string(text, "<fuzz>", &opt, &err);
    if (m) {
        IrError verr = {0};
        if (!ir_verify(m->graph, &verr)) {
            fprintf(stderr, "frontend built an invalid graph: %s\n", verr.msg);
            IR_ASSERT(!"fe_load_string result fails ir_verify");
        }
        fe_model_free(m);
    } else {
        IR_ASSERT(err.set && err.msg[0]);
    }
    free(text);
    return 0;
}
