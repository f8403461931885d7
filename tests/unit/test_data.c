/* test_data.c — unit tests of the data loader (runtime/rt_data.c).
 *
 * The-verdict numbers are the book's chapter 5 settings (context 256,
 * stride 256, batch 2, a 90/10 split by characters, each part tokenized on
 * its own): 20,479 characters cut at 18,431; 4,612 and 534 tokens (counted
 * with js-tiktoken's gpt2 encoding); 18 and 2 windows, so 9 train batches
 * and 1 val batch, 4,608 and 512 tokens in the loaders as the book prints.
 * Those need ../shared/data and are skipped without it (the program then
 * exits 77, so ctest reports it as skipped); the rest uses small synthetic
 * token arrays.
 */
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/rt_data.h"

#define DATA_DIR "../shared/data"

static int32_t seq_ids[1000];

static RtLoader *seq_loader(int64_t n, int64_t ctx, int64_t stride, int64_t batch, bool shuffle,
                            bool drop_last, uint64_t seed)
{
    for (int i = 0; i < 1000; i++)
        seq_ids[i] = i;
    RtLoaderOptions o = {ctx, stride, batch, shuffle, drop_last, seed};
    IrError err = {0};
    RtLoader *l = rt_loader_new(seq_ids, n, &o, &err);
    CHECK(l != NULL);
    return l;
}

TEST(window_count_matches_range)
{
    /* range(0, n - ctx, stride) */
    RtLoader *l = seq_loader(10, 4, 2, 1, false, false, 0);
    CHECK(l->nwin == 3);              /* 0, 2, 4 */
    rt_loader_free(l);
    l = seq_loader(11, 4, 2, 1, false, false, 0);
    CHECK(l->nwin == 4);              /* 0, 2, 4, 6 */
    rt_loader_free(l);
    l = seq_loader(4, 4, 1, 1, false, false, 0);
    CHECK(l->nwin == 0);              /* no target for the last token */
    rt_loader_free(l);
}

TEST(windows_and_shifted_targets)
{
    RtLoader *l = seq_loader(20, 4, 3, 2, false, false, 0);
    int32_t x[8], y[8];
    CHECK(rt_loader_get(l, 0, 1, x, y) == 2);
    /* batch 1 = windows 2 and 3: starts 6 and 9 */
    CHECK(x[0] == 6 && x[3] == 9 && y[0] == 7 && y[3] == 10);
    CHECK(x[4] == 9 && x[7] == 12 && y[4] == 10 && y[7] == 13);
    rt_loader_free(l);
}

TEST(drop_last_and_padding)
{
    RtLoader *l = seq_loader(6, 1, 1, 2, false, true, 0);   /* 5 windows */
    CHECK(l->nwin == 5 && rt_loader_batches(l) == 2);
    rt_loader_free(l);
    l = seq_loader(6, 1, 1, 2, false, false, 0);
    CHECK(rt_loader_batches(l) == 3);
    int32_t x[2], y[2];
    CHECK(rt_loader_get(l, 0, 2, x, y) == 1);
    CHECK(x[0] == 4 && y[0] == 5);
    CHECK(x[1] == 0 && y[1] == RT_IGNORE_INDEX);
    rt_loader_free(l);
}

/* Every window exactly once in `epoch`. */
static bool is_permutation(RtLoader *l, int64_t epoch)
{
    int seen[1000] = {0};
    for (int64_t k = 0; k < l->nwin; k++) {
        int64_t w = rt_loader_window(l, epoch, k / l->o.batch, k % l->o.batch);
        if (w < 0 || w >= l->nwin || seen[w]++)
            return false;
    }
    return true;
}

static bool same_order(RtLoader *a, int64_t ea, RtLoader *b, int64_t eb)
{
    for (int64_t k = 0; k < a->nwin; k++)
        if (rt_loader_window(a, ea, k, 0) != rt_loader_window(b, eb, k, 0))
            return false;
    return true;
}

TEST(shuffle_is_seeded_per_epoch)
{
    RtLoader *a = seq_loader(500, 4, 4, 1, true, true, 7);
    RtLoader *b = seq_loader(500, 4, 4, 1, true, true, 7);
    RtLoader *c = seq_loader(500, 4, 4, 1, true, true, 8);
    RtLoader *plain = seq_loader(500, 4, 4, 1, false, true, 7);
    CHECK(is_permutation(a, 0) && is_permutation(a, 3));
    CHECK(!same_order(a, 0, plain, 0));
    CHECK(!same_order(a, 0, a, 1));
    CHECK(!same_order(a, 2, c, 2));
    /* epoch 5 of b, asked for out of order, equals epoch 5 of a */
    (void)rt_loader_window(b, 9, 0, 0);
    CHECK(same_order(a, 5, b, 5));
    CHECK(same_order(a, 1, b, 1));
    rt_loader_free(a);
    rt_loader_free(b);
    rt_loader_free(c);
    rt_loader_free(plain);
}

TEST(split_counts_characters)
{
    const char *s = "a\xc3\xa9\xe2\x82\xac" "b";         /* a é € b: 4 chars, 7 bytes */
    CHECK(rt_split_chars(s, 7, 0.5) == 3);
    CHECK(rt_split_chars(s, 7, 0.9) == 6);                /* int(3.6) = 3 chars */
    CHECK(rt_split_chars(s, 7, 1.0) == 7);
    CHECK(rt_split_chars(s, 7, 0.0) == 0);
    CHECK(rt_split_chars("\xff\xfe", 2, 0.5) == 1);       /* stray bytes count as one */
}

TEST(char_text_data)
{
    const char *text = "abcabcabcabcabcabcabcabcabcabc";   /* 30 chars */
    IrError err = {0};
    RtTokenizer *tok = rt_tokenizer_char(text, 30, &err);
    RtLoaderOptions o = {.ctx = 4, .stride = 4, .batch = 2, .shuffle = true, .drop_last = true};
    RtTextData d;
    CHECK(rt_text_data_from(text, 30, "abc.txt", tok, 0.8, &o, &d, &err));
    CHECK(d.split_byte == 24 && d.train_tokens == 24 && d.val_tokens == 6);
    CHECK(d.train->nwin == 5 && d.val->nwin == 1);
    CHECK(rt_loader_batches(d.train) == 2 && rt_loader_batches(d.val) == 1);
    rt_text_data_free(&d);
    rt_tokenizer_free(tok);
}

TEST(too_short_is_an_error)
{
    const char *text = "abcdefghij";
    IrError err = {0};
    RtTokenizer *tok = rt_tokenizer_char(text, 10, &err);
    RtLoaderOptions o = {.ctx = 5, .stride = 4, .batch = 1};
    RtTextData d;
    CHECK(!rt_text_data_from(text, 10, "short.txt", tok, 0.7, &o, &d, &err));
    CHECK(strstr(err.msg, "validation part of 'short.txt' has 3 tokens") != NULL);
    CHECK(err.hint[0] != 0);
    o.ctx = 4;
    o.batch = 3;
    o.drop_last = true;
    err = (IrError){0};
    CHECK(!rt_text_data_from(text, 10, "short.txt", tok, 1.0, &o, &d, &err));
    CHECK(strstr(err.msg, "fewer than one batch of 3") != NULL);
    rt_tokenizer_free(tok);
}

TEST(data_dir_follows_env)
{
    char buf[256];
    setenv("GRADC_DATA_DIR", "/tmp/gd", 1);
    rt_data_dir(buf, sizeof buf);
    CHECK_STR(buf, "/tmp/gd");
    unsetenv("GRADC_DATA_DIR");
    setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
    rt_data_dir(buf, sizeof buf);
    CHECK_STR(buf, "/tmp/xdg/gradc/data");
    unsetenv("XDG_CACHE_HOME");
}

TEST(the_verdict_book_settings)
{
    IrError err = {0};
    RtTokenizer *tok = rt_tokenizer_gpt2(DATA_DIR "/gpt2", &err);
    CHECK(tok != NULL);
    if (!tok)
        return;
    RtLoaderOptions o = {.ctx = 256, .stride = 256, .batch = 2, .shuffle = true,
                         .drop_last = true, .seed = 123};
    RtTextData d;
    CHECK(rt_text_data_load(DATA_DIR "/the-verdict.txt", tok, 0.9, &o, &d, &err));
    CHECK(d.text_bytes == 20479 && d.split_byte == 18431);
    CHECK(d.train_tokens == 4612 && d.val_tokens == 534);
    CHECK(d.train->nwin == 18 && d.val->nwin == 2);
    CHECK(rt_loader_batches(d.train) == 9 && rt_loader_batches(d.val) == 1);
    CHECK(rt_loader_batches(d.train) * 2 * 256 == 4608);
    int32_t x[512], y[512];
    CHECK(rt_loader_get(d.val, 0, 0, x, y) == 2);
    CHECK(x[0] == 518 && x[1] == 6 && x[2] == 14707 && y[0] == 6);   /* js-tiktoken */
    /* train window 0 is "I HAD always thought ..." = 40 367 2885 1464 1807 */
    CHECK(d.train->ids[0] == 40 && d.train->ids[4] == 1807 && d.train->ids[256] == 10197);
    rt_text_data_free(&d);
    rt_tokenizer_free(tok);
}

int main(void)
{
    RUN(window_count_matches_range);
    RUN(windows_and_shifted_targets);
    RUN(drop_last_and_padding);
    RUN(shuffle_is_seeded_per_epoch);
    RUN(split_counts_characters);
    RUN(char_text_data);
    RUN(too_short_is_an_error);
    RUN(data_dir_follows_env);
    if (access(DATA_DIR "/the-verdict.txt", R_OK) != 0 ||
        access(DATA_DIR "/gpt2/encoder.json", R_OK) != 0) {
        TEST_SKIP_PART("the_verdict_book_settings (%s not found)", DATA_DIR);
        return test_summary();
    }
    RUN(the_verdict_book_settings);
    return test_summary();
}
