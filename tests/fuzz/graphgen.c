/* graphgen.c — the differential random-graph tester: options, the main
 * loop, corpus replay and reproducer files (docs/testing.md).
 *
 * Each graph of a run has its own seed, splitmix64(splitmix64(SEED) + k)
 * (runs of neighbouring seeds share no graph), so a run is
 * replayed by its --seed alone.  A graph is checked twice through
 * `gradc verify` (graphgen_check.c): forward, then as a train step, at the
 * binding it was drawn for.  The first failure is shrunk
 * (graphgen_shrink.c) and written as OUT/graphgen-SEED-K.gir, whose header
 * holds the verify flags, and graphgen prints the one command that
 * replays it and exits 1.  The unshrunk graph is kept next to it
 * (-orig.gir).  With --replay, graphgen checks committed reproducers
 * instead (forward, and as a train step when the graph has a "loss" and a
 * trainable param),
 * each at the flags of its `// verify:` header line.
 */
#include "graphgen.h"
#include "ir/rng.h"
#include "passes/pass.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: graphgen [--seed S] [--seconds N] [--count N] [--out DIR] [--keep-going]\n"
    "                [--open] [--strict] [--timeout N] [--shrink-runs N] [--threads N]\n"
    "                [--dump] [-v]\n"
    "       graphgen --replay DIR|FILE.gir\n"
    "       graphgen --shrink FILE.gir [--out DIR]\n"
    "\n"
    "Draws random graphs from the op table and checks each with `gradc verify`\n"
    "(the default pipeline, JIT-compiled, against the reference interpreter),\n"
    "forward and as a train step.  A failure is shrunk to a small .gir reproducer\n"
    "in --out (default graphgen-out), the command that replays it is printed, and\n"
    "graphgen exits 1.  --replay checks committed reproducers instead, forward\n"
    "and (with a \"loss\") as a train step, at the flags of their `// verify:` line;\n"
    "--shrink shrinks a failing .gir file (its `// verify:` flags, --train among\n"
    "them, say how to run it) into --out.\n"
    "\n"
    "  --seed S        seed of the run (default: from /dev/urandom; printed)\n"
    "  --seconds N     start no graph after N seconds\n"
    "  --count N       check N graphs (default 20 when --seconds is not given)\n"
    "  --out DIR       where reproducers go (default graphgen-out)\n"
    "  --keep-going    after a failure, go on with the next graph\n"
    "  --open          also draw the patterns of the open bugs, which graphgen\n"
    "                  otherwise keeps clear of (tests/fuzz/graphgen_open/)\n"
    "  --strict        a failure that is a known open bug fails the run too (by\n"
    "                  default it is reported and counted, and the run goes on)\n"
    "  --timeout N     seconds one verify run may take (default 120)\n"
    "  --shrink-runs N verify runs the shrinker may spend (default 400)\n"
    "  --threads N     runtime threads of every run (default: 1 or 2, by graph)\n"
    "  --dump          print the graphs instead of checking them\n"
    "  -v              one line per verify run\n"
    "\n"
    "exit codes: 0 every check passed, 1 a failure (reproducer written), 2 usage\n";

typedef struct Opts {
    uint64_t seed;
    double seconds;
    long count;
    const char *replay, *shrink, *out;
    int timeout_s, shrink_runs, threads;
    bool keep_going, dump, verbose, open, strict;
} Opts;

typedef struct Stats {
    long graphs, runs, failures, known;
    double t0;
    GgCoverage cov, cov_train;
} Stats;

static char gradc_path[4200] = "gradc";
static char work[4096];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- options */

static uint64_t fresh_seed(void)
{
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &s, sizeof s) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (fd >= 0)
        close(fd);
    return s % 1000000000000ULL;
}

/* `--name V` or `--name=V`; advances *i. */
static const char *value_of(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n))
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] || *i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static bool take_number(int argc, char **argv, int *i, Opts *o)
{
    const char *v;
    if ((v = value_of(argc, argv, i, "--seed")))
        return o->seed = strtoull(v, NULL, 0), true;
    if ((v = value_of(argc, argv, i, "--seconds")))
        return o->seconds = atof(v), true;
    if ((v = value_of(argc, argv, i, "--count")))
        return o->count = atol(v), true;
    if ((v = value_of(argc, argv, i, "--timeout")))
        return o->timeout_s = atoi(v), true;
    if ((v = value_of(argc, argv, i, "--shrink-runs")))
        return o->shrink_runs = atoi(v), true;
    if ((v = value_of(argc, argv, i, "--threads")))
        return o->threads = atoi(v), true;
    if ((v = value_of(argc, argv, i, "--replay")))
        return o->replay = v, true;
    if ((v = value_of(argc, argv, i, "--shrink")))
        return o->shrink = v, true;
    if ((v = value_of(argc, argv, i, "--out")))
        return o->out = v, true;
    return false;
}

/* Returns -1 to go on, or an exit code. */
static int parse_opts(int argc, char **argv, Opts *o)
{
    *o = (Opts){.seed = fresh_seed(), .out = "graphgen-out", .timeout_s = 120,
                .shrink_runs = 400};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return fputs(usage, stdout), 0;
        if (!strcmp(argv[i], "--keep-going"))
            o->keep_going = true;
        else if (!strcmp(argv[i], "--dump"))
            o->dump = true;
        else if (!strcmp(argv[i], "--open"))
            o->open = true;
        else if (!strcmp(argv[i], "--strict"))
            o->strict = true;
        else if (!strcmp(argv[i], "-v"))
            o->verbose = true;
        else if (!take_number(argc, argv, &i, o)) {
            fprintf(stderr, "graphgen: unknown or incomplete option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (o->count <= 0 && o->seconds <= 0)
        o->count = 20;
    if (o->timeout_s < 1)
        o->timeout_s = 1;
    return -1;
}

/* ---------------------------------------------------------------- coverage */

/* Ops a train step adds on its own (scatter_add for gather, the attention
 * gradient), seen by building it here as verify --train compiles it (the
 * grad stage: attention, autodiff, optimizer). */
static void cover_train(const IrGraph *g, GgCoverage *cov)
{
    IrError err = {0};
    IrGraph *c = ir_graph_clone(g);
    PassCtx ctx = pass_ctx_default(&err);
    if (pass_stage_run(c, pass_stage("grad"), true, &ctx))
        gg_cover(c, cov);
    ir_graph_free(c);
}

static const char *never_reason(IrOp op)
{
    if (op == OP_FUSED)
        return "made by the fuse pass, not a front-end op: every compiled graph is made of "
               "them, and the verifier checks their bodies";
    return "not drawn in this run";
}

static void print_coverage(const Stats *st)
{
    int fwd = 0, all = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        fwd += st->cov.count[op] > 0;
        all += st->cov.count[op] > 0 || st->cov_train.count[op] > 0;
    }
    printf("coverage: %d of %d ops in the generated graphs, %d with the train steps' own\n", fwd,
           OP_COUNT, all);
    for (int op = 0; op < OP_COUNT; op++)
        if (!st->cov.count[op] && st->cov_train.count[op])
            printf("  %-22s only in train steps (autodiff makes it)\n", ir_op_name(op));
    for (int op = 0; op < OP_COUNT; op++)
        if (!st->cov.count[op] && !st->cov_train.count[op])
            printf("  %-22s not covered: %s\n", ir_op_name(op), never_reason(op));
}

/* ---------------------------------------------------------------- failures */

/* mkdir -p */
static bool make_dirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0777);
            *c = '/';
        }
    return mkdir(p, 0777) == 0 || errno == EEXIST;
}

static void flags_of(const GgRun *run, char *buf, size_t cap)
{
    char cmd[512];
    gg_command("", "", run, cmd, sizeof cmd);
    snprintf(buf, cap, "%.200s", cmd + strlen(" verify  ")); /* after "verify" and the path */
}

/* Where a failing case came from: the base of its file names and the
 * first words of its header. */
typedef struct Origin {
    char base[256];   /* graphgen-SEED-K, or the shrunk file's name */
    char text[512];   /* "graph K of --seed S", "FILE" */
} Origin;

/* Writes OUT/BASE[SUFFIX].gir with its header into path. */
static bool write_case(const Opts *o, const Origin *from, const IrGraph *g, const GgRun *run,
                       const GgOutcome *out, const char *note, const char *suffix, char *path,
                       size_t cap)
{
    char header[2048], flags[512];
    flags_of(run, flags, sizeof flags);
    snprintf(path, cap, "%s/%s%s.gir", o->out, from->base, suffix);
    snprintf(header, sizeof header,
             "// graphgen reproducer: %s, %s\n"
             "// %s: %s: %s\n"
             "// verify: %s\n",
             from->text, note, run->train ? "train step" : "forward", gg_kind_names[out->kind],
             out->what, flags);
    if (!make_dirs(o->out) || !gg_write(g, path, header)) {
        fprintf(stderr, "graphgen: cannot write %s\n", path);
        return false;
    }
    return true;
}

/* Reports a failure, keeps the graph as it was (BASE-orig.gir), shrinks
 * it and writes the reproducer BASE.gir with the command that replays it. */
static void failed(const Opts *o, const Origin *from, const IrGraph *g, GgRun run,
                   const GgOutcome *out)
{
    char path[4200], note[128], cmd[4800], tmp[4200], log[4200];
    printf("graphgen: FAIL %s, %s: %s: %s\n", from->text, run.train ? "train step" : "forward",
           gg_kind_names[out->kind], out->what);
    snprintf(note, sizeof note, "as drawn (%d nodes)", g->nnodes);
    write_case(o, from, g, &run, out, note, "-orig", path, sizeof path);
    GgShrinkLimits lim = {o->shrink_runs, 600, o->timeout_s, o->open ? 0 : GG_AVOID_ALL,
                          !gg_known_bug(g, &run, out)};
    int checks = 0;
    printf("graphgen: shrinking (at most %d verify runs) ...\n", lim.max_checks);
    fflush(stdout);
    IrGraph *s = gg_shrink(g, &run, out, work, &lim, &checks);
    snprintf(tmp, sizeof tmp, "%s/final.gir", work);
    snprintf(log, sizeof log, "%s/final.log", work);
    gg_write(s, tmp, NULL);
    GgOutcome last = gg_check(tmp, &run, log, o->timeout_s);
    snprintf(note, sizeof note, "shrunk from %d to %d nodes in %d runs", g->nnodes, s->nnodes,
             checks);
    printf("graphgen: %s; now %s: %s\n", note, gg_kind_names[last.kind], last.what);
    if (write_case(o, from, s, &run, &last, note, "", path, sizeof path)) {
        gg_command(gradc_path, path, &run, cmd, sizeof cmd);
        printf("graphgen: reproducer %s\nreproduce: %s\n", path, cmd);
    }
    ir_graph_free(s);
}

/* ---------------------------------------------------------------- the loop */

/* A failure of graph k: a known open bug (counted, unless --strict), or
 * a new one (shrunk and written).  Returns true for a new one. */
static bool judge(const Opts *o, Stats *st, long k, const IrGraph *g, const GgRun *run,
                  const GgOutcome *out)
{
    const char *known = o->strict ? NULL : gg_known_bug(g, run, out);
    if (known) {
        printf("graphgen: graph %ld, %s: known open bug '%s' (tests/fuzz/graphgen_open/"
               "README.md): %s\n", k, run->train ? "train step" : "forward", known, out->what);
        st->known++;
        return false;
    }
    Origin from;
    snprintf(from.base, sizeof from.base, "graphgen-%llu-%ld", (unsigned long long)o->seed, k);
    snprintf(from.text, sizeof from.text, "graph %ld of --seed %llu", k,
             (unsigned long long)o->seed);
    failed(o, &from, g, *run, out);
    return true;
}

/* Checks graph k, forward then as a train step; true when it failed. */
static bool one_graph(const Opts *o, Stats *st, long k)
{
    uint64_t gs = ir_splitmix64(ir_splitmix64(o->seed) + (uint64_t)k);
    GgRun run = {.seed = (long long)(gs % 1000), .threads = o->threads ? o->threads : 1 + k % 2};
    IrGraph *g = gg_generate(gs, o->open ? 0 : GG_AVOID_ALL, &run.bind, &st->cov);
    cover_train(g, &st->cov_train);
    char path[4200], log[4200];
    snprintf(path, sizeof path, "%s/g.gir", work);
    snprintf(log, sizeof log, "%s/g.log", work);
    bool bad = false;
    if (o->dump)
        ir_print(g, stdout);
    else if (!gg_write(g, path, NULL)) {
        fprintf(stderr, "graphgen: cannot write %s\n", path);
        exit(2);
    }
    for (int train = 0; train < 2 && !bad && !o->dump; train++) {
        run.train = train;
        GgOutcome out = gg_check(path, &run, log, o->timeout_s);
        st->runs++;
        if (o->verbose)
            printf("graph %ld %-10s %3d nodes  %s  %s\n", k, train ? "train" : "forward",
                   g->nnodes, gg_kind_names[out.kind], out.what);
        if (out.kind != GG_PASS)
            bad = judge(o, st, k, g, &run, &out);
    }
    st->graphs++;
    ir_graph_free(g);
    return bad;
}

static int run_loop(const Opts *o, Stats *st)
{
    printf("graphgen: seed %llu%s\n", (unsigned long long)o->seed,
           o->dump ? " (printing graphs only)" : "");
    fflush(stdout);
    for (long k = 0; (o->count <= 0 || k < o->count) &&
                     (o->seconds <= 0 || now_s() - st->t0 < o->seconds); k++) {
        st->failures += one_graph(o, st, k);
        if (st->failures && !o->keep_going)
            break;
    }
    double dt = now_s() - st->t0;
    printf("graphgen: %ld graphs (%ld verify runs) in %.1f s: %.1f graphs/min, %ld failed, "
           "%ld known open bugs hit; seed %llu\n", st->graphs, st->runs, dt,
           dt > 0 ? st->graphs * 60 / dt : 0, st->failures, st->known,
           (unsigned long long)o->seed);
    print_coverage(st);
    return st->failures ? 1 : 0;
}

/* ---------------------------------------------------------------- replay */

/* The flags of a reproducer's `// verify:` line (defaults: B=2, T=8,
 * seed 42, 2 threads). */
static GgRun flags_from_file(const char *path)
{
    GgRun run = {{2, 8}, 42, 2, false};
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "// verify:");
        if (!p)
            continue;
        char *tok[32];
        int n = 0;
        for (char *t = strtok(p + 10, " \n"); t && n < 32; t = strtok(NULL, " \n"))
            tok[n++] = t;
        for (int i = 0; i + 1 < n; i++) {
            const char *t = tok[i], *v = tok[i + 1];
            if (!strcmp(t, "--batch"))
                run.bind.batch = atoll(v), i++;
            else if (!strcmp(t, "--seq"))
                run.bind.seq = atoll(v), i++;
            else if (!strcmp(t, "--seed"))
                run.seed = atoll(v), i++;
            else if (!strcmp(t, "--threads"))
                run.threads = atoi(v), i++;
        }
        for (int i = 0; i < n; i++)
            run.train |= !strcmp(tok[i], "--train");
        break;
    }
    if (f)
        fclose(f);
    return run;
}

/* A graph with a scalar output "loss" and a trainable param can be a
 * train step. */
static bool trainable(const char *path)
{
    IrError err = {0};
    IrGraph *g = ir_parse_file(path, &err);
    bool loss = false, param = false;
    for (int o = 0; g && o < g->nout; o++)
        loss |= !strcmp(g->outs[o].name, "loss") && g->outs[o].node->shape.rank == 0;
    for (int i = 0; g && i < g->nnodes; i++)
        param |= g->nodes[i]->op == OP_PARAM && ir_node_int(g->nodes[i], ATTR_TRAINABLE, 1);
    ir_graph_free(g);
    return loss && param;
}

static int replay_file(const Opts *o, const char *path)
{
    GgRun run = flags_from_file(path);
    char log[4200], cmd[4800];
    snprintf(log, sizeof log, "%s/replay.log", work);
    int bad = 0;
    for (int train = 0; train < 1 + trainable(path); train++) { /* both, whatever --train says */
        run.train = train;
        GgOutcome out = gg_check(path, &run, log, o->timeout_s);
        gg_command(gradc_path, path, &run, cmd, sizeof cmd);
        printf("%s  %s\n", out.kind == GG_PASS ? "ok  " : "FAIL", cmd);
        if (out.kind != GG_PASS) {
            printf("      %s: %s\n", gg_kind_names[out.kind], out.what);
            bad++;
        }
    }
    return bad;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay(const Opts *o)
{
    DIR *d = opendir(o->replay);
    if (!d)
        return replay_file(o, o->replay) ? 1 : 0;
    char *names[1024];
    int n = 0, bad = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 1024;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".gir"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int k = 0; k < n; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", o->replay, names[k]);
        bad += replay_file(o, path);
        free(names[k]);
    }
    printf("graphgen: replayed %d reproducers, %d runs failed\n", n, bad);
    return bad || !n ? 1 : 0;
}

/* ---------------------------------------------------------------- shrinking a file */

static int shrink_file(const Opts *o)
{
    IrError err = {0};
    IrGraph *g = ir_parse_file(o->shrink, &err);
    if (!g) {
        ir_error_print(&err, stderr);
        return 2;
    }
    GgRun run = flags_from_file(o->shrink);
    char log[4200];
    snprintf(log, sizeof log, "%s/g.log", work);
    GgOutcome out = gg_check(o->shrink, &run, log, o->timeout_s);
    if (out.kind == GG_PASS) {
        printf("graphgen: %s passes; nothing to shrink\n", o->shrink);
        ir_graph_free(g);
        return 0;
    }
    Origin from;
    const char *slash = strrchr(o->shrink, '/');
    snprintf(from.base, sizeof from.base, "%.200s", slash ? slash + 1 : o->shrink);
    char *dot = strrchr(from.base, '.');
    if (dot)
        snprintf(dot, sizeof from.base - (size_t)(dot - from.base), "-shrunk");
    snprintf(from.text, sizeof from.text, "%.500s", o->shrink);
    failed(o, &from, g, run, &out);
    ir_graph_free(g);
    return 1;
}

/* ---------------------------------------------------------------- main */

/* The gradc next to this program, for the printed commands. */
static void find_gradc(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = 0;
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/gradc", dirname(self));
    if (access(cand, X_OK) == 0)
        snprintf(gradc_path, sizeof gradc_path, "%s", cand);
}

static bool make_work(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(work, sizeof work, "%s/graphgen.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(work) != NULL;
}

static void remove_work(void)
{
    static const char *const files[] = {"g.gir",     "g.log",     "cand.gir",  "cand.log",
                                        "final.gir", "final.log", "replay.log"};
    char p[4200];
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", work, files[k]);
        unlink(p);
    }
    rmdir(work);
}

int main(int argc, char **argv)
{
    Opts o;
    int r = parse_opts(argc, argv, &o);
    if (r >= 0)
        return r;
    find_gradc();
    if (!make_work()) {
        perror("graphgen: mkdtemp");
        return 2;
    }
    Stats st = {.t0 = now_s()};
    r = o.replay ? replay(&o) : o.shrink ? shrink_file(&o) : run_loop(&o, &st);
    remove_work();
    return r;
}
