/* test_bpe.c — unit tests of the tokenizers: GPT-2 BPE (rt_bpe.c) and the
 * char tokenizer (rt_chartok.c).
 *
 * The expected ids come from the oracle, js-tiktoken 1.0.21's gpt2 encoding
 * (tests/oracle/tiktoken: `node encode.js FILE`, or enc.encode(text, [], [])
 * and enc.encode(text, "all") for the special-token cases).  The wider
 * comparison against it is tests/scripts/bpe_vs_tiktoken.sh.
 *
 * The GPT-2 files are looked up at ../shared/data/gpt2 from the source root
 * (ctest's working directory); without them the BPE tests are skipped.  The
 * char tokenizer needs no data and runs first.
 */
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/rt_tok.h"

#define GPT2_DIR "../shared/data/gpt2"

static RtBpe *bpe;

static bool ids_equal(const int32_t *got, size_t n, const int32_t *want, size_t m)
{
    if (n != m) {
        fprintf(stderr, "  got %zu ids, expected %zu\n", n, m);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "  id %zu: got %d, expected %d\n", i, got[i], want[i]);
            return false;
        }
    return true;
}

/* Encodes s and compares with the oracle's ids. */
static bool encodes_to(const char *s, bool special, const int32_t *want, size_t m)
{
    int32_t *ids;
    size_t n;
    if (rt_bpe_encode(bpe, s, strlen(s), special, &ids, &n) != 0) return false;
    bool ok = ids_equal(ids, n, want, m);
    free(ids);
    return ok;
}

#define ENCODES_TO(s, special, ...)                                             \
    do {                                                                        \
        static const int32_t want_[] = {__VA_ARGS__};                           \
        CHECK(encodes_to(s, special, want_, sizeof want_ / sizeof want_[0]));   \
    } while (0)

/* decode(encode(s)) == s, byte for byte, with and without special tokens. */
static bool round_trips(const char *s, size_t len)
{
    bool ok = true;
    for (int special = 0; special < 2; special++) {
        int32_t *ids;
        size_t n, back_len = 0;
        if (rt_bpe_encode(bpe, s, len, special, &ids, &n) != 0) return false;
        char *back = rt_bpe_decode_len(bpe, ids, n, &back_len);
        ok = ok && back && back_len == len && memcmp(back, s, len) == 0;
        free(back);
        free(ids);
    }
    return ok;
}

/* ---- GPT-2 BPE ---- */

TEST(known_ids)
{
    ENCODES_TO("Hello, world", false, 15496, 11, 995);
    ENCODES_TO("I'm here. They'll see  \n\n  12345 and 3.14!", false,
               40, 1101, 994, 13, 1119, 1183, 766, 220, 220, 628, 220, 17031, 2231, 290,
               513, 13, 1415, 0);
    ENCODES_TO("Grüße 中文 😀", false,
               8642, 9116, 39683, 68, 220, 40792, 23877, 229, 30325, 222);
    ENCODES_TO("a\r\n\r\n b", false, 64, 201, 198, 201, 198, 275);
}

TEST(special_token)
{
    CHECK(rt_bpe_vocab_size(bpe) == 50257);
    CHECK(rt_bpe_eot_id(bpe) == 50256);
    ENCODES_TO("Hi<|endoftext|>there", false, 17250, 27, 91, 437, 1659, 5239, 91, 29, 8117);
    ENCODES_TO("Hi<|endoftext|>there", true, 17250, 50256, 8117);
    ENCODES_TO("<|endoftext|><|endoftext|>", true, 50256, 50256);
    ENCODES_TO("<|endoftext|", true, 27, 91, 437, 1659, 5239, 91);
    int32_t eot = 50256;
    char *s = rt_bpe_decode(bpe, &eot, 1);
    CHECK_STR(s, "<|endoftext|>");
    free(s);
}

TEST(empty_and_bad_ids)
{
    int32_t *ids;
    size_t n = 99;
    CHECK(rt_bpe_encode(bpe, "", 0, false, &ids, &n) == 0 && n == 0 && ids != NULL);
    free(ids);
    char *s = rt_bpe_decode(bpe, NULL, 0);
    CHECK_STR(s, "");
    free(s);
    int32_t bad[] = {15496, 50257}, neg[] = {-1};
    CHECK(rt_bpe_decode(bpe, bad, 2) == NULL);
    CHECK(rt_bpe_decode(bpe, neg, 1) == NULL);
}

TEST(round_trip)
{
    static const char *texts[] = {
        "Hello, world", "  leading and trailing  ", "\n\n\n", "tabs\tand\r\nCRLF\r\n",
        "I'm can't we'll 'tis ''s", "Ωμέγα Жизнь 中文 😀👍🏽🇫🇷", "<|endoftext|> in the middle",
        "12345678901234567890", "!!!???...", "\xff\xfe invalid \xc3 UTF-8 \xed\xa0\x80 \xe2\x82",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        CHECK(round_trips(texts[i], strlen(texts[i])));
    CHECK(round_trips("nul\0byte", 8));
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    CHECK(round_trips((const char *)all, sizeof all));
}

/* Pseudo-random bytes biased towards ASCII: encode must never fail to round trip. */
TEST(round_trip_random)
{
    uint32_t x = 12345;
    char buf[512];
    for (int t = 0; t < 200; t++) {
        size_t len = (size_t)(t * 7 % 500) + 1;
        for (size_t i = 0; i < len; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (x >> 24) < 200 ? " aZ9'.\n\xc3\xa9"[(x >> 8) % 10] : (char)(x >> 16);
        }
        CHECK(round_trips(buf, len));
    }
}

/* A long piece goes through the heap-based merge loop without trouble. */
TEST(long_piece)
{
    size_t len = 100000;
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++) s[i] = "ab"[i % 3 == 0];
    CHECK(round_trips(s, len));
    free(s);
}

/* The pre-tokenizer alone: the pieces of a text, joined by '|'. */
static void pieces(const char *s, char *out)
{
    size_t len = strlen(s);
    for (size_t pos = 0, end; pos < len; pos = end) {
        end = rt_bpe_piece_end(s, len, pos);
        if (pos > 0) *out++ = '|';
        memcpy(out, s + pos, end - pos);
        out += end - pos;
    }
    *out = 0;
}

TEST(pretokenizer)
{
    char buf[256];
    pieces("Hello  world's\n\n x", buf);
    CHECK_STR(buf, "Hello| | world|'s|\n\n| x");
    pieces("it'sn't 'S 'll", buf);
    CHECK_STR(buf, "it|'s|n|'t| '|S| '|ll");
    pieces("abc123 !?x  \t\ny \n", buf);
    CHECK_STR(buf, "abc|123| !?|x|  \t|\n|y| \n");
    pieces("a\xc2\xa0\xc2\xa0" "b \xe3\x80\x80" "c", buf);   /* U+00A0 and U+3000 are \s */
    CHECK_STR(buf, "a|\xc2\xa0|\xc2\xa0|b| |\xe3\x80\x80|c");
    pieces("x\xff\xfe y", buf);                             /* stray bytes are "other" */
    CHECK_STR(buf, "x|\xff\xfe| y");
}

TEST(load_errors)
{
    char *err = NULL;
    CHECK(rt_bpe_load("/nonexistent/gpt2", &err) == NULL);
    CHECK(err && strstr(err, "/nonexistent/gpt2") && strstr(err, "encoder.json") &&
          strstr(err, "--bpe-dir"));
    free(err);
    char dir[] = "/tmp/gradc_bpe_XXXXXX", path[64];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    FILE *f = fopen(path, "w");
    fputs("#version: 0.2\nnot three tokens\n", f);
    fclose(f);
    err = NULL;
    CHECK(rt_bpe_load(dir, &err) == NULL);
    CHECK(err && strstr(err, "vocab.bpe:2"));
    free(err);
    remove(path);
    rmdir(dir);
}

/* ---- char tokenizer ---- */

TEST(chartok_basic)
{
    const char *text = "hello, wörld!";
    RtCharTok *ct = rt_chartok_build(text, strlen(text));
    CHECK(rt_chartok_vocab_size(ct) == 11);     /* " !,dehlorwö" */
    int32_t *ids;
    size_t n;
    char *err = NULL;
    CHECK(rt_chartok_encode(ct, "hold ö", 7, &ids, &n, &err) == 0);
    static const int32_t want[] = {5, 7, 6, 3, 0, 10};
    CHECK(ids_equal(ids, n, want, 6));
    size_t len;
    char *back = rt_chartok_decode(ct, ids, n, &len);
    CHECK_STR(back, "hold ö");
    free(back);
    free(ids);
    CHECK(rt_chartok_encode(ct, "hex", 3, &ids, &n, &err) == -1);
    CHECK(err && strstr(err, "U+0078") && strstr(err, "offset 2"));
    free(err);
    int32_t bad = 11;
    CHECK(rt_chartok_decode(ct, &bad, 1, NULL) == NULL);
    rt_chartok_free(ct);
}

TEST(chartok_save_load)
{
    const char text[] = "zebra \xe2\x82\xac 😀 \xff\xc3 \x80 abc\n";
    size_t tlen = sizeof text - 1;
    RtCharTok *ct = rt_chartok_build(text, tlen);
    size_t vlen;
    char *vocab = rt_chartok_save(ct, &vlen), *err = NULL;
    RtCharTok *ct2 = rt_chartok_load(vocab, vlen, &err);
    CHECK(ct2 && rt_chartok_vocab_size(ct2) == rt_chartok_vocab_size(ct));
    int32_t *a, *b;
    size_t na, nb, len;
    CHECK(rt_chartok_encode(ct, text, tlen, &a, &na, &err) == 0);
    CHECK(rt_chartok_encode(ct2, text, tlen, &b, &nb, &err) == 0);
    CHECK(ids_equal(a, na, b, nb));
    char *back = rt_chartok_decode(ct2, b, nb, &len);
    CHECK(back && len == tlen && memcmp(back, text, tlen) == 0);
    free(back); free(a); free(b); free(vocab);
    CHECK(rt_chartok_load("ba", 2, &err) == NULL);
    CHECK(err && strstr(err, "out of order"));
    free(err);
    rt_chartok_free(ct);
    rt_chartok_free(ct2);
}

int main(void)
{
    RUN(chartok_basic);
    RUN(chartok_save_load);
    struct stat st;
    if (stat(GPT2_DIR "/encoder.json", &st) != 0 || stat(GPT2_DIR "/vocab.bpe", &st) != 0) {
        if (test_failures) return test_summary();
        TEST_SKIP("GPT-2 BPE tests: %s/{encoder.json,vocab.bpe} not found from the working "
                  "directory; run from the source root with shared/ beside it", GPT2_DIR);
    }
    char *err = NULL;
    bpe = rt_bpe_load(GPT2_DIR, &err);
    CHECK(bpe != NULL);
    if (!bpe) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return test_summary();
    }
    RUN(known_ids);
    RUN(special_token);
    RUN(empty_and_bad_ids);
    RUN(round_trip);
    RUN(round_trip_random);
    RUN(long_piece);
    RUN(pretokenizer);
    RUN(load_errors);
    rt_bpe_free(bpe);
    return test_summary();
}
