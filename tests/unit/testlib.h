/* testlib.h — a minimal test harness for gradc's C unit tests.
 *
 * Each tests/unit/test_*.c is one executable registered with ctest.  A check
 * that fails prints file:line and the expression and counts as a failure;
 * the program exits non-zero if any check failed.  A test that cannot run
 * (missing data) calls TEST_SKIP, which exits 77 (ctest reports it as
 * skipped, never as passed).  A part that cannot run here while the rest
 * can (missing data, a CPU feature) calls TEST_SKIP_PART: the program goes
 * on, and test_summary exits 77 when no check failed, so that ctest reports
 * the program as skipped rather than as a pass.
 *
 *   TEST(add_broadcast) { CHECK(x == 3); CHECK_NEAR(y, 0.5, 1e-12); }
 *   int main(void) { RUN(add_broadcast); return test_summary(); }
 */
#ifndef GRADC_TESTLIB_H
#define GRADC_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures, test_checks, test_skips;

#define TEST(name) static void test_##name(void)
#define RUN(name)                                   \
    do {                                            \
        int before_ = test_failures;                \
        test_##name();                              \
        printf("%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #name); \
    } while (0)

#define CHECK(c)                                                            \
    do {                                                                    \
        test_checks++;                                                      \
        if (!(c)) {                                                         \
            test_failures++;                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
        }                                                                   \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                               \
    do {                                                                    \
        double a_ = (a), b_ = (b);                                          \
        test_checks++;                                                      \
        if (!(fabs(a_ - b_) <= (tol))) {                                    \
            test_failures++;                                                \
            fprintf(stderr, "%s:%d: %s = %.17g, expected %s = %.17g (tol %g)\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol));     \
        }                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                     \
    do {                                                                    \
        const char *a_ = (a), *b_ = (b);                                    \
        test_checks++;                                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                            \
            test_failures++;                                                \
            fprintf(stderr, "%s:%d: %s = \"%s\", expected \"%s\"\n",        \
                    __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
        }                                                                   \
    } while (0)

#define TEST_SKIP(...)                                                      \
    do {                                                                    \
        printf("SKIP: ");                                                   \
        printf(__VA_ARGS__);                                                \
        printf("\n");                                                       \
        exit(77);                                                           \
    } while (0)

#define TEST_SKIP_PART(...)                                                 \
    do {                                                                    \
        test_skips++;                                                       \
        printf("SKIP: ");                                                   \
        printf(__VA_ARGS__);                                                \
        printf("\n");                                                       \
    } while (0)

/* 1 if a check failed (or none ran, and nothing was skipped), 77 (skipped)
 * if a part was skipped, else 0. */
static inline int test_summary(void)
{
    printf("%d checks, %d failed, %d parts skipped\n", test_checks, test_failures, test_skips);
    if (test_failures)
        return 1;
    if (test_skips)
        return 77;
    if (test_checks == 0) {
        fprintf(stderr, "no checks ran\n");
        return 1;
    }
    return 0;
}

#endif
