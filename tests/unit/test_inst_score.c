/* test_inst_score.c — unit tests of the response extraction
 * (rt_inst_extract, runtime/rt_inst_gen.c) and the objective scores
 * (rt_score_normalize, rt_score_exact, rt_score_f1, runtime/rt_inst_score.c).
 *
 * Every expected value is worked out by hand from the book's rule
 * (generated_text[len(input_text):].replace(marker, "").strip(), cut at the
 * next stop marker) and from SQuAD's normalize_answer / f1_score: lower
 * case, ASCII punctuation removed, whole-word articles a/an/the removed,
 * white space collapsed; F1 = 2PR/(P+R) over the multiset of common words.
 */
#include "tests/unit/testlib.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/rt_inst_gen.h"

static void check_extract(const char *text, RtPromptStyle st, const char *want)
{
    char *got = rt_inst_extract(text, strlen(text), st);
    CHECK_STR(got, want);
    free(got);
}

static void check_norm(const char *s, const char *want)
{
    char *got = rt_score_normalize(s);
    CHECK_STR(got, want);
    free(got);
}

TEST(extract_alpaca)
{
    RtPromptStyle a = RT_PROMPT_ALPACA;
    check_extract("\n\n### Response:\nThe sky is blue.\n\n### Instruction:\nNext", a,
                  "The sky is blue.");
    check_extract("\n\n### Response:\n  Paris  \n", a, "Paris");
    /* no response marker: cut at the first "###" from the start */
    check_extract("Hello there\n### Input:\nx", a, "Hello there");
    check_extract("", a, "");
    check_extract("\n\n### Response:\n", a, "");
    /* a second marker before the stop is removed too, as replace() does */
    check_extract("### Response:\nA ### Response: B", a, "A");
}

TEST(extract_phi3)
{
    RtPromptStyle p = RT_PROMPT_PHI3;
    check_extract("\n<|assistant|>:\nHi!<|user|>\nmore", p, "Hi!");
    check_extract("\n<|assistant|>:\n### kept\n", p, "### kept");
    check_extract("plain text\n", p, "plain text");
}

TEST(normalize)
{
    check_norm("The Cat, sat on a mat!", "cat sat on mat");
    check_norm("  An  apple\tA DAY  ", "apple day");
    check_norm("theater anthem", "theater anthem");
    check_norm("rock'n'roll (2x)", "rocknroll 2x");
    check_norm("the", "");
    check_norm("", "");
}

TEST(exact_match)
{
    CHECK(rt_score_exact("  Paris\n", "Paris", false) == 1);
    CHECK(rt_score_exact("paris", "Paris", false) == 0);
    CHECK(rt_score_exact("paris", "Paris", true) == 1);
    CHECK(rt_score_exact("The answer.", "answer", true) == 1);
    CHECK(rt_score_exact("The answer.", "answer", false) == 0);
    CHECK(rt_score_exact("an answer", "answers", true) == 0);
}

TEST(token_f1)
{
    /* "cat sat on mat" vs "cat sat": 2 common, P = 1/2, R = 1: F1 = 2/3 */
    CHECK_NEAR(rt_score_f1("the cat sat on the mat", "a cat sat"), 2.0 / 3.0, 1e-12);
    /* multisets: red red blue / red blue blue: 2 common of 3 and 3 */
    CHECK_NEAR(rt_score_f1("red red blue", "red blue blue"), 2.0 / 3.0, 1e-12);
    /* 1 common of 4 and 2 words: P = 1/4, R = 1/2, F1 = 1/3 */
    CHECK_NEAR(rt_score_f1("Water boils at 100", "boils quickly."), 1.0 / 3.0, 1e-12);
    CHECK_NEAR(rt_score_f1("Same words, here", "same WORDS here"), 1.0, 1e-12);
    CHECK_NEAR(rt_score_f1("", "the"), 1.0, 1e-12);   /* both empty after normalizing */
    CHECK_NEAR(rt_score_f1("", "x"), 0.0, 1e-12);
    CHECK_NEAR(rt_score_f1("a b", "c"), 0.0, 1e-12);
}

int main(void)
{
    RUN(extract_alpaca);
    RUN(extract_phi3);
    RUN(normalize);
    RUN(exact_match);
    RUN(token_f1);
    return test_summary();
}
