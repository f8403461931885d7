/* test_inst_data.c — unit tests of the instruction data pipeline
 * (runtime/rt_inst_read.c, runtime/rt_inst_data.c).
 *
 * The prompts are checked against the book's strings written out by hand;
 * collate (rt_inst_row) against rows worked out by hand from the book's
 * custom_collate_fn on small id lists (first pad target kept, later ones
 * -100, the mask-prompt variant, truncation, padding rows); the reader
 * against small files, including every error with its place.  The split
 * and the width use tests/fuzz/bpe-mini; instruction-data.json's figures
 * (1100 entries -> 935/110/55, longest 91 tokens) need ../shared/data.
 */
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/rt_inst_data.h"

#define DATA_DIR "../shared/data"

static char tmpdir[64];
static RtTokenizer *tok;

static const char *put(const char *name, const char *content)
{
    static char p[160];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    fputs(content, f);
    fclose(f);
    return p;
}

TEST(prompts)
{
    RtInstEntry e = {.instruction = "Add 2 and 3.", .input = "", .output = "5"};
    char *p = rt_inst_prompt(&e, RT_PROMPT_ALPACA), *r = rt_inst_response_text(&e, 0);
    CHECK_STR(p, "Below is an instruction that describes a task. Write a response that "
                 "appropriately completes the request.\n\n### Instruction:\nAdd 2 and 3.");
    CHECK_STR(r, "\n\n### Response:\n5");
    free(p), free(r);
    e.input = "x";
    p = rt_inst_prompt(&e, RT_PROMPT_ALPACA);
    CHECK(strstr(p, "### Instruction:\nAdd 2 and 3.\n\n### Input:\nx") && p[strlen(p) - 1] == 'x');
    free(p);
    p = rt_inst_prompt(&e, RT_PROMPT_PHI3), r = rt_inst_response_text(&e, RT_PROMPT_PHI3);
    CHECK_STR(p, "<|user|>\nAdd 2 and 3.\nx");
    CHECK_STR(r, "\n<|assistant|>:\n5");
    free(p), free(r);
    e.input = "";
    p = rt_inst_prompt(&e, RT_PROMPT_PHI3);
    CHECK_STR(p, "<|user|>\nAdd 2 and 3.");
    free(p);
    RtPromptStyle s;
    CHECK(rt_prompt_style_parse("phi3", &s) && s == RT_PROMPT_PHI3);
    CHECK(!rt_prompt_style_parse("chatml", &s));
    CHECK_STR(rt_inst_response_marker(RT_PROMPT_ALPACA), "### Response:");
}

static void row_is(const int32_t *got, const int32_t *want, int n)
{
    for (int i = 0; i < n; i++)
        CHECK(got[i] == want[i]);
}

/* Rows worked out from custom_collate_fn by hand (pad 99). */
TEST(collate_rows)
{
    int32_t ids[3] = {10, 11, 12}, x[6], y[6];
    rt_inst_row(ids, 3, 2, false, 99, 6, x, y);
    row_is(x, (int32_t[]){10, 11, 12, 99, 99, 99}, 6);
    row_is(y, (int32_t[]){11, 12, 99, -100, -100, -100}, 6);
    rt_inst_row(ids, 3, 2, true, 99, 6, x, y);          /* targets[:2-1] = -100 */
    row_is(y, (int32_t[]){-100, 12, 99, -100, -100, -100}, 6);
    rt_inst_row(ids, 3, 3, true, 99, 6, x, y);
    row_is(y, (int32_t[]){-100, -100, 99, -100, -100, -100}, 6);
    rt_inst_row(ids, 3, 1, true, 99, 6, x, y);          /* targets[:0]: nothing */
    row_is(y, (int32_t[]){11, 12, 99, -100, -100, -100}, 6);
    rt_inst_row(ids, 3, 1, false, 99, 3, x, y);         /* width n: the pad target stays */
    row_is(x, ids, 3);
    row_is(y, (int32_t[]){11, 12, 99}, 3);
    rt_inst_row(ids, 3, 1, false, 99, 2, x, y);         /* truncated to 2 */
    row_is(x, (int32_t[]){10, 11}, 2);
    row_is(y, (int32_t[]){11, 12}, 2);
    int32_t withpad[3] = {10, 99, 12};                  /* the book masks by value */
    rt_inst_row(withpad, 3, 1, false, 99, 5, x, y);
    row_is(y, (int32_t[]){99, 12, -100, -100, -100}, 5);
}

TEST(fill_batches)
{
    int32_t a[2] = {1, 2}, b[4] = {3, 4, 5, 6}, c[1] = {7};
    RtInstExample ex[3] = {{NULL, a, 2, 1}, {NULL, b, 4, 2}, {NULL, c, 1, 1}};
    RtInstData d = {.train = {ex, 3}, .T = 5, .pad_id = 9};
    int32_t x[2 * 5], y[2 * 5];
    int64_t w, order[3] = {2, 0, 1};
    CHECK(rt_inst_fill(&d, &d.train, NULL, 0, 2, x, y, &w) == 2 && w == 4);
    row_is(x, (int32_t[]){1, 2, 9, 9, 9, 3, 4, 5, 6, 9}, 10);
    row_is(y, (int32_t[]){2, 9, -100, -100, -100, 4, 5, 6, 9, -100}, 10);
    CHECK(rt_inst_fill(&d, &d.train, order, 2, 2, x, y, &w) == 1 && w == 4);
    row_is(x, (int32_t[]){3, 4, 5, 6, 9, 9, 9, 9, 9, 9}, 10);          /* a padding row */
    row_is(y + 5, (int32_t[]){-100, -100, -100, -100, -100}, 5);
    CHECK(rt_inst_fill(&d, &d.train, order, 0, 1, x, y, &w) == 1 && w == 1);
    row_is(y, (int32_t[]){9, -100, -100, -100, -100}, 5);
    int64_t o1[3], o2[3];
    rt_inst_order(&d.train, true, 5, 1, o1);
    rt_inst_order(&d.train, true, 5, 1, o2);
    CHECK(o1[0] + o1[1] + o1[2] == 3 && !memcmp(o1, o2, sizeof o1));
}

static void refused(const char *name, const char *content, const char *want_where,
                    const char *want_msg)
{
    RtInstSet s;
    IrError err = {0};
    char where[200];
    CHECK(!rt_inst_read(put(name, content), &s, &err));
    snprintf(where, sizeof where, "%s/%s", tmpdir, want_where);
    CHECK(!strncmp(err.where, where, strlen(where)));   /* a prefix: "FILE:LINE:" */
    if (strncmp(err.where, where, strlen(where)))
        fprintf(stderr, "  where: %s\n", err.where);
    CHECK(strstr(err.msg, want_msg) != NULL);
    if (!strstr(err.msg, want_msg))
        fprintf(stderr, "  message: %s\n", err.msg);
    CHECK(s.n == 0 && !s.e);
}

TEST(reader)
{
    RtInstSet s;
    IrError err = {0};
    CHECK(rt_inst_read(put("a.json", "\xEF\xBB\xBF[\n  {\"instruction\": \"a\", \"input\": "
                           "\"b\",\n   \"output\": \"c\"},\n\n  {\"output\": \"d\\n\", \"x\": "
                           "[1, \"]\"], \"instruction\": \"e\"}, {\"instruction\": \"f\", "
                           "\"input\": null, \"output\": \"\"}\n]\n"), &s, &err));
    CHECK(s.n == 3 && !s.jsonl);
    if (s.n == 3) {
        CHECK(s.e[0].line == 2 && s.e[1].line == 5 && s.e[2].line == 5);
        CHECK_STR(s.e[0].input, "b");
        CHECK_STR(s.e[1].input, "");
        CHECK_STR(s.e[1].output, "d\n");
        CHECK_STR(s.e[2].input, "");
        CHECK(s.e[2].index == 2 && strstr(s.e[1].json, "\"x\":[1,\"]\"]"));
    }
    rt_inst_set_free(&s);
    CHECK(rt_inst_read(put("b.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\r\n\n  \n"
                           "{\"instruction\":\"c\",\"output\":\"d\"}"), &s, &err));
    CHECK(s.n == 2 && s.jsonl && s.e[1].line == 4 && s.e[1].index == 1);
    rt_inst_set_free(&s);

    refused("e1.json", "[{\"input\": \"\", \"output\": \"x\"}]", "e1.json",
            "entry 0 (line 1): no \"instruction\" field");
    refused("e2.json", "[{\"instruction\": \"a\", \"output\": \"x\"},\n{\"instruction\": \"a\"}]",
            "e2.json", "entry 1 (line 2): no \"output\" field");
    refused("e3.json", "[\n{\"instruction\": \"a\", \"output\": 5}]", "e3.json",
            "entry 0 (line 2): the field \"output\" is not a string but a number");
    refused("e4.json", "[{\"instruction\": \"a\", \"input\": [], \"output\": \"\"}]", "e4.json",
            "\"input\" is not a string but an array");
    refused("e5.json", "[{\"instruction\": \"a\", \"output\": \"\"},\n \"hi\"]", "e5.json",
            "entry 1 (line 2): not an object but a string");
    refused("e6.json", "[\n  {\"instruction\": \"a\",\n   \"output\" \"x\"}]", "e6.json:3:13",
            "JSON syntax error");
    refused("e7.json", "", "e7.json", "the file is empty");
    refused("e8.json", " \n\t\n", "e8.json", "the file is empty");
    refused("e9.json", "[ ]\n", "e9.json", "the array is empty");
    refused("e10.json", "[{\"instruction\": \"a\", \"instruction\": \"b\", \"output\": \"\"}]",
            "e10.json", "appears 2 times");
    refused("e11.jsonl", "{\"instruction\": \"a\", \"output\": \"\"}\n{\"instruction\": 1}\n",
            "e11.jsonl", "entry 1 (line 2)");
    refused("e12.jsonl", "{\"instruction\": \"a\", \"output\": \"\"}\n{\"instruction\":\n",
            "e12.jsonl:2:", "JSON syntax error");
    refused("e13.json", "\"text\"", "e13.json:1:1", "neither '[' nor '{'");
    refused("e14.json", "[{\"instruction\": \"a\", \"output\": \"\"}] x", "e14.json:1:38",
            "text after the end");
    refused("e15.json", "[{\"instruction\": \"\xff\", \"output\": \"\"}]", "e15.json:1:19",
            "not UTF-8");
}

/* n entries, entry i with an output of i % 7 + 1 words. */
static const char *many(const char *name, int n)
{
    size_t cap = (size_t)n * 200 + 8, k = 0;
    char *s = malloc(cap);
    k += (size_t)snprintf(s, cap, "[");
    for (int i = 0; i < n; i++) {
        k += (size_t)snprintf(s + k, cap - k, "%s{\"instruction\": \"say %d\", \"output\": \"",
                              i ? ",\n" : "", i);
        for (int w = 0; w <= i % 7; w++)
            k += (size_t)snprintf(s + k, cap - k, "%sword", w ? " " : "");
        k += (size_t)snprintf(s + k, cap - k, "\"}");
    }
    snprintf(s + k, cap - k, "]\n");
    const char *p = put(name, s);
    free(s);
    return p;
}

TEST(load_split_width)
{
    RtInstOptions o = rt_inst_defaults();
    RtInstData d;
    IrError err = {0};
    o.tok = tok;
    o.data_path = many("n20.json", 20);
    CHECK(rt_inst_load(&o, &d, &err));
    CHECK(d.train.n == 17 && d.test.n == 2 && d.val.n == 1);   /* int(17.0), int(2.0) */
    CHECK(d.train.ex[16].entry->index == 16 && d.test.ex[0].entry->index == 17 &&
          d.val.ex[0].entry->index == 19);
    int64_t longest = 0;
    for (int64_t i = 0; i < d.train.n; i++) {
        RtInstExample e;
        CHECK(rt_inst_encode(tok, d.train.ex[i].entry, RT_PROMPT_ALPACA, &e, &err));
        CHECK(e.n == d.train.ex[i].n && e.prompt_n == d.train.ex[i].prompt_n &&
              e.prompt_n < e.n && !memcmp(e.ids, d.train.ex[i].ids, 4 * (size_t)e.n));
        free(e.ids);
    }
    const RtInstSplit *sp[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < sp[k]->n; i++)
            longest = sp[k]->ex[i].n > longest ? sp[k]->ex[i].n : longest;
    CHECK(d.T == longest && d.longest == longest && d.truncated == 0);
    int64_t max_len = longest - 1;
    rt_inst_free(&d);

    o.max_len = max_len;   /* refused, naming the first entry over it */
    CHECK(!rt_inst_load(&o, &d, &err) && strstr(err.msg, "more than --max-len") &&
          strstr(err.hint, "--truncate"));
    err = (IrError){0};
    o.truncate = true;
    CHECK(rt_inst_load(&o, &d, &err) && d.T == max_len && d.truncated > 0);
    rt_inst_free(&d);

    o.max_len = 0, o.truncate = false, o.shuffle_split = true;
    o.data_path = many("n1100.json", 1100);
    CHECK(rt_inst_load(&o, &d, &err));
    CHECK(d.train.n == 935 && d.test.n == 110 && d.val.n == 55);
    CHECK(d.train.ex[0].entry->index != 0 || d.train.ex[1].entry->index != 1);
    rt_inst_free(&d);
}

TEST(instruction_data_json)
{
    IrError err = {0};
    RtTokenizer *gpt2 = rt_tokenizer_gpt2(DATA_DIR "/gpt2", &err);
    if (!gpt2) {
        TEST_SKIP_PART("instruction_data_json (%s/gpt2 not found)", DATA_DIR);
        return;
    }
    RtInstOptions o = rt_inst_defaults();
    o.tok = gpt2;
    o.data_path = DATA_DIR "/instruction-data.json";
    RtInstData d;
    CHECK(rt_inst_load(&o, &d, &err));
    CHECK(d.train.n == 935 && d.test.n == 110 && d.val.n == 55);
    CHECK(d.longest == 91 && d.T == 91);   /* the book's figures: max 91 tokens */
    int64_t shortest = 1000;
    const RtInstSplit *sp[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < sp[k]->n; i++)
            shortest = sp[k]->ex[i].n < shortest ? sp[k]->ex[i].n : shortest;
    CHECK(shortest == 40);
    rt_inst_free(&d);
    rt_tokenizer_free(gpt2);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_inst_data.XXXXXX");
    if (!mkdtemp(tmpdir))
        TEST_SKIP("cannot make a temporary folder");
    IrError err = {0};
    tok = rt_tokenizer_gpt2("tests/fuzz/bpe-mini", &err);
    if (!tok) {
        fprintf(stderr, "tests/fuzz/bpe-mini: %s\n", err.msg);
        return 1;
    }
    RUN(prompts);
    RUN(collate_rows);
    RUN(fill_batches);
    RUN(reader);
    RUN(load_split_width);
    if (access(DATA_DIR "/instruction-data.json", R_OK) == 0)
        RUN(instruction_data_json);
    else
        TEST_SKIP_PART("instruction_data_json (%s/instruction-data.json not found)", DATA_DIR);
    rt_tokenizer_free(tok);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
