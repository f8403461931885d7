/* fuzz_ir_parse.c — libFuzzer harness for the IR text parser.
 *
 * The bytes are parsed as IR text.  Rejection is fine; crashing, leaking
 * or tripping a sanitizer is not.  When the text parses, the graph must
 * also keep the round-trip contract of docs/ir.md: printing it, parsing
 * the print and printing again gives the same bytes, and both graphs pass
 * the verifier.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DGRADC_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_ir_parse
 *   build-fuzz/fuzz_ir_parse -max_total_time=60 -dict=tests/fuzz/fuzz_ir_parse.dict \
 *       tests/fuzz/corpus_ir
 *
 * The seed corpus holds printed graphs of every op, bodies, odd names,
 * floats and dims, and the lit tests of tests/lit/format (errors included).
 */
#include "ir/ir.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_round_trip(const IrGraph *g)
{
    IrError err = {0};
    IR_ASSERT(ir_verify(g, &err));
    char *first = ir_print_str(g);
    IrGraph *again = ir_parse(first, "<print>", &err);
    if (!again) {
        fprintf(stderr, "printed graph does not parse: %s: %s\n%s", err.where, err.msg, first);
        IR_ASSERT(!"print -> parse failed");
    }
    IR_ASSERT(ir_verify(again, &err));
    char *second = ir_print_str(again);
    if (strcmp(first, second) != 0) {
        fprintf(stderr, "round trip differs:\n--- first\n%s--- second\n%s", first, second);
        IR_ASSERT(!"print(parse(print(g))) != print(g)");
    }
    free(first);
    free(second);
    ir_graph_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    IrError err = {0};
    IrGraph *g = ir_parse(text, "<fuzz>", &err);
    if (g) {
        check_round_trip(g);
        ir_graph_free(g);
    } else {
        IR_ASSERT(err.set && err.msg[0]);
    }
    free(text);
    return 0;
}
