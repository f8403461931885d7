/* rt_mem.c — the memory this process may still take, and whether a planned
 * program fits in it (rt_exec.h).
 *
 * calloc hands out far more than a machine holds: pages are committed only
 * when first touched.  So a plan larger than memory used to be refused only
 * when one big allocation happened to fail, and one between free and total
 * memory was accepted and met the OOM killer in the middle of a step.  The
 * executor now compares what it is about to allocate (params, optimizer
 * state, inputs, arena) with the least of
 *
 *   MemAvailable in /proc/meminfo (free memory plus what the kernel can
 *     reclaim without swapping);
 *   the cgroup's limit less what it uses, page cache it can drop not
 *     counted: cgroup v2 memory.max - (memory.current - inactive_file) at
 *     every level from the process's group up, cgroup v1
 *     hierarchical_memory_limit - (memory.usage_in_bytes -
 *     total_inactive_file); inside a container whose cgroup namespace hides
 *     the path, the mount's own root;
 *   $GRADC_MEM_AVAILABLE (bytes, or with a K, M or G suffix), when set: to
 *     leave room for other work, and for tests.
 *
 * When the plan does not fit, the message says what would: the largest
 * batch B at the same sequence length, found by planning the arena again at
 * each candidate (memplan's planner, nothing compiled; a binary search, as
 * the bytes grow with B).
 */
#define _GNU_SOURCE
#include "runtime/rt_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_LIMIT ((int64_t)1 << 60)   /* cgroup v1 writes ~2^63 for "none" */

/* ---------------------------------------------------------------- reading files */

/* The first integer of a file ("max" and junk: -1). */
static int64_t file_int(const char *dir, const char *name)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    long long v = -1;
    if (f && fscanf(f, "%lld", &v) != 1)
        v = -1;
    if (f)
        fclose(f);
    return v;
}

/* The value of `key VALUE` lines (memory.stat, /proc/meminfo), or -1. */
static int64_t keyed(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t n = strlen(key);
    long long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && (line[n] == ' ' || line[n] == ':') &&
            sscanf(line + n + 1, "%lld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void take(int64_t v, const char *why, int64_t *best, char *source, size_t cap)
{
    if (v < 0 || (*best >= 0 && v >= *best))
        return;
    *best = v;
    snprintf(source, cap, "%s", why);
}

/* ---------------------------------------------------------------- cgroups */

/* The path of this process's group in the hierarchy whose line in
 * /proc/self/cgroup matches `want` ("" for v2's "0::"). */
static bool group_path(const char *want, char *path, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[1024];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) {
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!b)
            continue;
        *b = 0;
        bool v2 = !*want && !strcmp(line, "0") && a + 1 == b;
        found = v2 || (*want && strstr(a + 1, want));
        if (found)
            snprintf(path, cap, "%.*s", (int)strcspn(b + 1, "\n"), b + 1);
    }
    if (f)
        fclose(f);
    return found;
}

static int64_t v2_level(const char *dir)
{
    int64_t max = file_int(dir, "memory.max"), cur = file_int(dir, "memory.current");
    char stat[1100];
    snprintf(stat, sizeof stat, "%s/memory.stat", dir);
    int64_t cache = keyed(stat, "inactive_file");
    if (max < 0 || cur < 0)
        return -1;
    int64_t used = cur - (cache > 0 ? cache : 0);
    return max > used ? max - used : 0;
}

static void cgroup_v2(int64_t *best, char *source, size_t cap)
{
    char rel[700], dir[800];
    if (!group_path("", rel, sizeof rel))
        return;
    snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", rel);
    if (file_int(dir, "memory.current") < 0)
        snprintf(dir, sizeof dir, "/sys/fs/cgroup");   /* a cgroup namespace */
    for (;;) {
        char why[900];
        snprintf(why, sizeof why, "the memory.max of cgroup %s", dir);
        take(v2_level(dir), why, best, source, cap);
        char *slash = strrchr(dir, '/');
        if (!slash || !strcmp(dir, "/sys/fs/cgroup"))
            break;
        *slash = 0;
    }
}

static void cgroup_v1(int64_t *best, char *source, size_t cap)
{
    char rel[700], dir[800], stat[900];
    if (!group_path("memory", rel, sizeof rel))
        return;
    snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s", rel);
    if (file_int(dir, "memory.usage_in_bytes") < 0)
        snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory");
    snprintf(stat, sizeof stat, "%s/memory.stat", dir);
    int64_t limit = keyed(stat, "hierarchical_memory_limit");
    int64_t used = file_int(dir, "memory.usage_in_bytes");
    int64_t cache = keyed(stat, "total_inactive_file");
    if (limit < 0 || limit >= NO_LIMIT || used < 0)
        return;
    used -= cache > 0 ? cache : 0;
    char why[900];
    snprintf(why, sizeof why, "the memory limit of cgroup %s", dir);
    take(limit > used ? limit - used : 0, why, best, source, cap);
}

/* ---------------------------------------------------------------- available */

static int64_t env_bytes(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    double unit = *end == 'K' || *end == 'k' ? 1024.0 : *end == 'M' || *end == 'm' ? 1048576.0
                : *end == 'G' || *end == 'g' ? 1073741824.0 : 1;
    end += unit > 1;
    return *v && !*end && x >= 0 && x * unit < 9e18 ? (int64_t)(x * unit) : -1;
}

int64_t rt_mem_available(char *source, size_t cap)
{
    int64_t best = -1;
    const char *env = getenv("GRADC_MEM_AVAILABLE");
    if (env && *env) {
        take(env_bytes(env), "GRADC_MEM_AVAILABLE", &best, source, cap);
        if (best >= 0)
            return best;
    }
    int64_t kb = keyed("/proc/meminfo", "MemAvailable");
    take(kb >= 0 ? kb * 1024 : -1, "MemAvailable in /proc/meminfo", &best, source, cap);
    cgroup_v2(&best, source, cap);
    cgroup_v1(&best, source, cap);
    return best;
}

/* ---------------------------------------------------------------- the largest batch */

/* What rt_exec_new allocates for g at binding b: every source and the arena. */
static int64_t planned_bytes(const IrGraph *g, const int64_t *b)
{
    PassMemPlan plan;
    int64_t total = -1;
    if (pass_memplan_build(g, b, &(PassMemOpts){0}, &plan, NULL)) {
        total = plan.peak_bytes;
        for (int i = 0; i < g->nnodes; i++)
            if (pass_mem_kind(g->nodes[i]) == PM_SOURCE)
                total += pass_mem_bytes(g->nodes[i], b);
    }
    pass_memplan_free(&plan);
    return total;
}

/* The bytes of every graph with B = batch and the other symbols as in the
 * first graph's binding (matched by name). */
static int64_t bytes_at(const IrGraph *const *gs, int ng, const int64_t *binding, int64_t batch)
{
    int64_t sum = 0;
    for (int k = 0; k < ng; k++) {
        int64_t b[IR_MAX_SYMS] = {0};
        for (int s = 0; s < gs[k]->nsym; s++) {
            int at = ir_graph_find_sym(gs[0], gs[k]->sym[s]);
            b[s] = !strcmp(gs[k]->sym[s], "B") ? batch : at >= 0 ? binding[at] : 0;
        }
        int64_t n = planned_bytes(gs[k], b);
        if (n < 0)
            return -1;
        sum += n;
    }
    return sum;
}

int64_t rt_mem_planned(const IrGraph *const *gs, int ng, const int64_t *binding)
{
    int B = ir_graph_find_sym(gs[0], "B");
    return bytes_at(gs, ng, binding, B >= 0 ? binding[B] : 0);
}

/* The largest B below the bound one whose plans fit in avail; 0: none. */
static int64_t largest_batch(const IrGraph *const *gs, int ng, const int64_t *binding,
                             int64_t avail)
{
    int B = ir_graph_find_sym(gs[0], "B");
    int64_t lo = 0, hi = B >= 0 ? binding[B] : 1;    /* fits at lo, not at hi */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2, n = bytes_at(gs, ng, binding, mid);
        if (n >= 0 && n <= avail)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static double mib(int64_t b)
{
    return (double)b / 1048576.0;
}

bool rt_mem_check(const IrGraph *const *gs, int ng, const int64_t *binding, int64_t need,
                  const char *what, IrError *err)
{
    char source[1000] = "";
    int64_t avail = rt_mem_available(source, sizeof source);
    return rt_mem_check_at(gs, ng, binding, need, avail, source, what, err);
}

bool rt_mem_check_at(const IrGraph *const *gs, int ng, const int64_t *binding, int64_t need,
                     int64_t avail, const char *source, const char *what, IrError *err)
{
    if (avail < 0 || need <= avail)
        return true;
    ir_error(err, "not enough memory for %s: %.1f MiB needed, %.1f MiB available (%s)", what,
             mib(need), mib(avail), source);
    int B = ir_graph_find_sym(gs[0], "B");
    int64_t fit = B >= 0 && binding[B] > 1 ? largest_batch(gs, ng, binding, avail) : 0;
    int T = ir_graph_find_sym(gs[0], "T");
    if (fit > 0 && T >= 0)
        ir_error_hint(err, "the largest batch that fits at this sequence length (T=%lld) is "
                      "--batch %lld", (long long)binding[T], (long long)fit);
    else if (fit > 0)
        ir_error_hint(err, "the largest batch that fits is --batch %lld", (long long)fit);
    else if (B >= 0)
        ir_error_hint(err, "not even --batch 1 fits: use a shorter --seq or a smaller model");
    else
        ir_error_hint(err, "use smaller sizes (--seq, --bind) or a smaller model");
    return false;
}
