/* test_alloc.c — the checked allocator (ir/alloc.c).
 *
 * ir_malloc, ir_calloc and ir_realloc never return NULL: a request that
 * cannot be met prints the bytes and the caller's file:line and exits 1.
 * The failing request is a calloc whose size overflows size_t, which the
 * allocator refuses before asking the C library (so the test behaves the
 * same under AddressSanitizer, whose malloc aborts on huge sizes); it runs
 * in a child process, whose exit status and message are checked.
 */
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ir/ir.h"

TEST(allocates)
{
    char *p = ir_malloc(0);
    CHECK(p != NULL);
    free(p);
    int *z = ir_calloc(100, sizeof *z);
    int sum = 0;
    for (int i = 0; i < 100; i++)
        sum |= z[i];
    CHECK(sum == 0);
    for (int i = 0; i < 100; i++)
        z[i] = i;
    z = ir_realloc(z, 1000 * sizeof *z);
    CHECK(z[99] == 99 && z[0] == 0);
    free(z);
}

/* The request that fails, on the line after this enum. */
enum { OOM_LINE = __LINE__ + 1 };
static void *too_much(void) { return ir_calloc(SIZE_MAX / 2, 4); }

TEST(out_of_memory_names_the_call_site)
{
    int fd[2];
    CHECK(pipe(fd) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        fprintf(stderr, "returned %p\n", too_much());
        _exit(0);
    }
    close(fd[1]);
    char msg[512] = "";
    ssize_t n = read(fd[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = 0;
    close(fd[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    char where[64];
    snprintf(where, sizeof where, "test_alloc.c:%d", OOM_LINE);
    CHECK(strstr(msg, "out of memory") != NULL);
    CHECK(strstr(msg, where) != NULL);
    if (!strstr(msg, where))
        fprintf(stderr, "child said: %s\n", msg);
}

int main(void)
{
    RUN(allocates);
    RUN(out_of_memory_names_the_call_site);
    return test_summary();
}
