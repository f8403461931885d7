/* graphgen_check.c — one `gradc verify` run, isolated in a child process.
 *
 * graphgen does not reimplement the comparison: it calls cmd_verify, the
 * function behind `gradc verify` (cli/cmd_verify.c, linked from gradc_cli),
 * with the argv the printed reproducer command has.  So a graph is checked
 * exactly as `gradc verify FILE.gir ...` checks it: the same pipelines
 * (the default one, and for --train the train pipeline before it), the
 * same seeded inputs and shared weights, the same error metric, the same
 * 1e-4 tolerance.
 *
 * The run happens in a forked child.  A miscompiled kernel may crash or
 * hang, and the tester must survive that to shrink the graph; a sanitizer
 * report ends the child, not the search; and no JIT or thread-pool state
 * carries from one graph to the next.  The parent never compiles, so it
 * has no threads that fork would lose.  The child writes its stdout and
 * stderr to a log, and the outcome is read from the exit status and that
 * log: 0 pass; 1 with a "worst error" line a mismatch, else a user error
 * on a graph the IR builder accepted (suspect); 2 an internal error; a
 * signal a crash (SIGALRM, from the child's own alarm, a timeout); and any
 * sanitizer report a crash, whatever the exit status.
 */
#include "graphgen.h"
#include "cli/cli.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const gg_kind_names[GG_NKIND] = {"pass",  "mismatch", "user error on a valid graph",
                                             "internal error", "crash", "timeout"};

#define GG_MAXARGS 12

typedef struct Argv {
    char *v[GG_MAXARGS + 1];
    char store[6][48];
    int n;
} Argv;

static void make_argv(const char *path, const GgRun *run, Argv *a)
{
    a->n = 0;
    a->v[a->n++] = "verify";
    a->v[a->n++] = (char *)path;
    snprintf(a->store[0], sizeof a->store[0], "--batch=%lld", (long long)run->bind.batch);
    snprintf(a->store[1], sizeof a->store[1], "--seq=%lld", (long long)run->bind.seq);
    snprintf(a->store[2], sizeof a->store[2], "--seed=%lld", run->seed);
    snprintf(a->store[3], sizeof a->store[3], "--threads=%d", run->threads);
    for (int k = 0; k < 4; k++)
        a->v[a->n++] = a->store[k];
    a->v[a->n++] = "--no-cache";
    if (run->train)
        a->v[a->n++] = "--train";
    a->v[a->n] = NULL;
}

void gg_command(const char *gradc, const char *path, const GgRun *run, char *buf, size_t cap)
{
    Argv a;
    make_argv(path, run, &a);
    size_t len = (size_t)snprintf(buf, cap, "%s", gradc);
    for (int k = 0; k < a.n && len < cap; k++) {
        const char *s = a.v[k], *eq = strncmp(s, "--", 2) ? NULL : strchr(s, '=');
        if (eq) /* --batch=2 is written --batch 2, as in the docs */
            len += (size_t)snprintf(buf + len, cap - len, " %.*s %s", (int)(eq - s), s, eq + 1);
        else
            len += (size_t)snprintf(buf + len, cap - len, " %s", s);
    }
}

/* ---------------------------------------------------------------- the child */

_Noreturn static void child(const char *log, Argv *a, int timeout_s)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        _exit(120);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    alarm((unsigned)timeout_s);
    int rc = cmd_verify(a->n, a->v);
    fflush(NULL);
    exit(rc);
}

/* ---------------------------------------------------------------- the outcome */

/* The first line of the log that contains `needle` (case-sensitive). */
static bool log_line(const char *log, const char *needle, char *out, size_t cap)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) {
        if (!strstr(line, needle))
            continue;
        line[strcspn(line, "\n")] = 0;
        snprintf(out, cap, "%.*s", (int)cap - 1, line);
        found = true;
    }
    if (f)
        fclose(f);
    return found;
}

static bool sanitizer_report(const char *log, char *what, size_t cap)
{
    return log_line(log, "Sanitizer", what, cap) || log_line(log, "runtime error:", what, cap);
}

static GgOutcome classify(int status, const char *log)
{
    GgOutcome o = {GG_PASS, ""};
    if (sanitizer_report(log, o.what, sizeof o.what))
        o.kind = GG_CRASH;
    else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        o.kind = sig == SIGALRM ? GG_TIMEOUT : GG_CRASH;
        char first[200] = "";
        if (!log_line(log, "assert", first, sizeof first))
            log_line(log, "error", first, sizeof first);
        snprintf(o.what, sizeof o.what, "signal %d (%s)%s%s", sig, strsignal(sig),
                 first[0] ? ": " : "", first);
    } else if (WEXITSTATUS(status) == 0)
        o.kind = GG_PASS;
    else if (WEXITSTATUS(status) == 1 && log_line(log, "worst error:", o.what, sizeof o.what))
        o.kind = GG_MISMATCH;
    else {
        o.kind = WEXITSTATUS(status) == 2 ? GG_INTERNAL : GG_ERROR;
        if (!log_line(log, "error", o.what, sizeof o.what))
            snprintf(o.what, sizeof o.what, "exit status %d", WEXITSTATUS(status));
    }
    return o;
}

GgOutcome gg_check(const char *path, const GgRun *run, const char *log, int timeout_s)
{
    Argv a;
    make_argv(path, run, &a);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child(log, &a, timeout_s);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        GgOutcome o = {GG_INTERNAL, "graphgen: fork or wait failed"};
        return o;
    }
    return classify(status, log);
}

/* ---------------------------------------------------------------- same bug */

/* The text without numbers: node ids, sizes, pids and addresses (0x...)
 * change while shrinking. */
static void strip_digits(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    while (*s && k + 1 < cap) {
        if (s[0] == '0' && s[1] == 'x')
            for (s += 2; isxdigit((unsigned char)*s); s++)
                ;
        else if (isdigit((unsigned char)*s))
            s++;
        else
            out[k++] = *s++;
    }
    out[k] = 0;
}

/* The output named in "worst error: 2.9 (g), tolerance ...". */
static void worst_output(const char *what, char *out, size_t cap)
{
    const char *p = strchr(what, '('), *q = p ? strchr(p, ')') : NULL;
    snprintf(out, cap, "%.*s", p && q ? (int)(q - p - 1) : 0, p ? p + 1 : "");
}

bool gg_same_failure(const GgOutcome *a, const GgOutcome *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == GG_TIMEOUT || a->kind == GG_PASS)
        return true;
    char x[256], y[256];
    if (a->kind == GG_MISMATCH) {
        worst_output(a->what, x, sizeof x);
        worst_output(b->what, y, sizeof y);
        return !strcmp(x, y);
    }
    strip_digits(a->what, x, sizeof x);
    strip_digits(b->what, y, sizeof y);
    return !strcmp(x, y);
}
