/* fuzz_cls.c — libFuzzer harness for the classification file reader
 * (rt_cls_parse, as `gradc finetune classify --data` reads a file) and the
 * split-file writer's escapes (rt_cls_write_text).
 *
 * Byte 0 picks the file name, and with it the format: b0 % 3 is 0 for
 * "in.tsv", 1 for "in.csv", 2 for "in.txt" (found by content); the rest
 * is the file, any bytes.  A rejection must carry a message and a place.
 * Otherwise every record has a trimmed label with no tab or line break, a
 * non-empty text and a line number that grows; and the records written as
 * a split file is (the header, then label<TAB>escaped text per line) must
 * read back as the same records.
 *
 *   scripts/fuzz.sh 60 fuzz_cls      (seeds in tests/fuzz/corpus_cls)
 */
#include "runtime/rt_cls_data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_records(const RtClsTable *t)
{
    for (int64_t i = 0; i < t->n; i++) {
        const RtClsRecord *r = &t->rec[i];
        size_t n = strlen(r->label);
        IR_ASSERT(n && !strpbrk(r->label, "\t\n\r") && r->label[0] != ' ' &&
                  r->label[n - 1] != ' ');
        IR_ASSERT(r->text[0] && r->line >= 1 && (i == 0 || r->line > t->rec[i - 1].line));
    }
}

/* The records as a split file, read back. */
static void round_trip(const RtClsTable *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fputs("label\ttext\n", f);
    for (int64_t i = 0; i < t->n; i++) {
        fprintf(f, "%s\t", t->rec[i].label);
        rt_cls_write_text(f, t->rec[i].text);
        fputc('\n', f);
    }
    fclose(f);
    RtClsTable u;
    IrError err = {0};
    IR_ASSERT(rt_cls_parse(buf, len, "split.tsv", &u, &err));
    IR_ASSERT(u.n == t->n);
    for (int64_t i = 0; i < t->n; i++)
        IR_ASSERT(!strcmp(u.rec[i].label, t->rec[i].label) &&
                  !strcmp(u.rec[i].text, t->rec[i].text));
    rt_cls_table_free(&u);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const names[3] = {"in.tsv", "in.csv", "in.txt"};
    RtClsTable t;
    IrError err = {0};
    if (rt_cls_parse((const char *)data + 1, size - 1, names[data[0] % 3], &t, &err)) {
        check_records(&t);
        round_trip(&t);
        rt_cls_table_free(&t);
    } else {
        IR_ASSERT(err.set && err.msg[0] && err.where[0]);
    }
    return 0;
}
