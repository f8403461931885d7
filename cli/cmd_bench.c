/* cmd_bench.c — `gradc bench`: throughput and where the time goes.
 *
 * Compiles a model at --batch/--seq (a forward, or with --train one train
 * step: autodiff, optimizer and the pass pipeline), runs --warmup steps
 * that are not measured, then --steps measured ones with per-kernel timing
 * on, and prints:
 *   tokens/s       B*T tokens per step over the measured wall time;
 *   GFLOP/s        the program's FLOPs per step (ir/cost.h's model, as
 *                  codegen records it per kernel and `gradc plan` prints
 *                  it for the compiled graph) over the same time, and the
 *                  same for the model's forward graph as loaded (the
 *                  figure of `gradc check`); then both as integers;
 *   top kernels    the 15 with the most total time, with op, node name,
 *                  share of the step and their own GFLOP/s;
 *   peak RSS, the thread count and OpenBLAS's core type.
 * In train mode the `step` input counts up from 1 as a training loop's
 * would; the inputs are otherwise the seeded random ones of `gradc run`.
 *
 * Timing every kernel costs two clock reads per kernel, well under 1% of
 * a step here; the "kernels" total next to the wall time shows the rest
 * (the loop, write-back and the pool's barriers).
 */
#include "cli.h"
#include "codegen/cg.h"
#include "ir/cost.h"
#include "passes/pass.h"
#include "runtime/rt_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define BENCH_TOP 15

static const char usage[] =
    "usage: gradc bench MODEL.json|FILE.gir [--batch B] [--seq T] [--steps N] [--warmup W]\n"
    "                   [--train] [--set k=v ...] [--passes=LIST] [--threads N] [--seed S]\n"
    "                   [--bind NAME=V ...] [--no-cache]\n"
    "\n"
    "Compiles the model (a forward pass, or with --train a whole train step), runs W\n"
    "warm-up steps, then N timed steps, and prints tokens/s, achieved GFLOP/s, the 15\n"
    "kernels that take the most time (op, node, ms per step, share, GFLOP/s), peak\n"
    "RSS, the thread count and the OpenBLAS core type in use (OPENBLAS_CORETYPE is\n"
    "never changed by gradc).\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc bench models/gpt-mini.json --batch 4 --seq 64\n"
    "  GRADC_THREADS=1 gradc bench models/gpt-mini.json --batch 4 --seq 64 --train\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct BenchArgs {
    CliExecArgs x;
    long long steps, warmup;
    bool train;
} BenchArgs;

static const CliFlag flags[] = {
    CLI_FLAGS_BIND(BenchArgs, x.bind, "2", "64"),
    {"--steps", CLI_INT, CLI_AT(BenchArgs, steps), .min = 1, .meta = "N", .def = "10",
     .help = "timed steps"},
    {"--warmup", CLI_INT, CLI_AT(BenchArgs, warmup), .meta = "W", .def = "2",
     .help = "untimed steps first"},
    {"--train", CLI_TRUE, CLI_AT(BenchArgs, train),
     .help = "time a train step (autodiff + AdamW) instead of a forward"},
    CLI_FLAG_SET(BenchArgs, x.model),
    CLI_FLAGS_LORA(BenchArgs, x.model.lora),
    {"--passes", CLI_STR, CLI_AT(BenchArgs, x.passes), .meta = "=LIST",
     .def = "the default one", .help = "the pass pipeline before compiling"},
    CLI_FLAG_THREADS(BenchArgs, x.threads, "runtime and OpenBLAS threads"),
    {"--seed", CLI_INT, CLI_AT(BenchArgs, x.seed), .meta = "S", .def = "42",
     .help = "seed of params and inputs"},
    CLI_FLAG_NO_CACHE(BenchArgs, x.no_cache),
    {0}};

const CliSpec cmd_bench_spec = {"bench", usage, flags, tail, CLI_ONE_INPUT(BenchArgs, x.in)};

/* ---------------------------------------------------------------- flags */

static int parse_args(int argc, char **argv, BenchArgs *a)
{
    int r = cli_parse(&cmd_bench_spec, argc, argv, a);
    if (r < 0 && !a->x.in)
        return cli_usage_error("bench", "missing input: a model .json file or a .gir file");
    return r;
}

/* ---------------------------------------------------------------- the graph */

/* The train step (with --train), the random inputs, then the pipeline: the
 * inputs come before `decompose`, which removes cross_entropy, the op that
 * says which classes a target may name. */
static int prepare(IrGraph *g, const FeModel *m, const BenchArgs *a, const int64_t *binding,
                   CliInputs *in, IrError *err)
{
    memset(in, 0, sizeof *in);
    if (a->train) {
        if (!pass_lookup("autodiff") || !pass_lookup("optimizer")) {
            ir_error(err, "--train needs the autodiff and optimizer passes, which this build "
                     "of gradc does not have");
            ir_error_hint(err, "run `gradc bench` without --train to time the forward graph");
            return cli_fail(err);
        }
        PassCtx ctx = pass_ctx_default(err);
        ctx.binding = binding;
        if (!pass_stage_run(g, pass_stage("grad"), true, &ctx)) {
            ir_error_print(err, stderr);
            return ctx.internal ? 2 : 1;
        }
    }
    cli_make_inputs(g, m, binding, (uint64_t)a->x.seed, false, in);
    return cli_run_passes(g, a->x.passes, binding, err);
}

/* ---------------------------------------------------------------- timing */

/* Sets `step` (train mode) to the 1-based step number, if there is one. */
static void set_step(RtExec *ex, const IrGraph *g, long long step)
{
    const IrNode *n = ir_graph_find(g, OP_INPUT, "step");
    void *buf = rt_exec_input(ex, "step");
    if (!n || !buf || ir_node_numel_const(n) != 1)
        return;
    if (n->dtype == DT_F32)
        *(float *)buf = (float)step;
    else if (n->dtype == DT_I32)
        *(int32_t *)buf = (int32_t)step;
}

static bool run_steps(RtExec *ex, const IrGraph *g, long long first, long long n, IrError *err)
{
    for (long long s = 0; s < n; s++) {
        set_step(ex, g, first + s);
        if (!rt_exec_run(ex, err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- report */

static const double *sort_ns; /* qsort has no context argument */

static int by_time_desc(const void *a, const void *b)
{
    double x = sort_ns[*(const int *)a], y = sort_ns[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* Kernel node indices, slowest first; returns their number. */
static int rank_kernels(const RtExec *ex, int *order)
{
    const CgProgram *p = rt_exec_program(ex);
    int n = 0;
    for (int i = 0; i < p->nnodes; i++)
        if (p->nodes[i].kind == CG_KERNEL && !p->nodes[i].noop)
            order[n++] = i;
    sort_ns = rt_exec_kernel_ns(ex);
    qsort(order, (size_t)n, sizeof *order, by_time_desc);
    sort_ns = NULL;
    return n;
}

static void node_label(const IrNode *n, char *buf, size_t cap)
{
    if (n->name)
        snprintf(buf, cap, "%s", n->name);
    else
        snprintf(buf, cap, "%%%d", n->id);
}

static void print_kernels(const RtExec *ex, const IrGraph *g, long long steps, double step_ms)
{
    const CgProgram *p = rt_exec_program(ex);
    const double *ns = rt_exec_kernel_ns(ex);
    int *order = malloc(sizeof *order * ((size_t)p->nnodes + 1)), n = rank_kernels(ex, order);
    printf("top kernels (of %d), per step:\n", n);
    printf("  %4s %10s %6s %9s  %-14s %s\n", "#", "ms", "%", "GFLOP/s", "op", "node");
    for (int k = 0; k < n && k < BENCH_TOP; k++) {
        int i = order[k];
        double ms = ns[i] / 1e6 / (double)steps;
        char label[96];
        node_label(g->nodes[i], label, sizeof label);
        printf("  %4d %10.3f %6.1f %9.2f  %-14s %s\n", k + 1, ms, 100 * ms / step_ms,
               ms > 0 ? p->nodes[i].flops / ms / 1e6 : 0, ir_op_name(g->nodes[i]->op), label);
    }
    free(order);
}

/* Kernel time per op, largest first: where a step goes, in one line. */
static void print_by_op(const RtExec *ex, const IrGraph *g, long long steps)
{
    const CgProgram *p = rt_exec_program(ex);
    double ms[OP_COUNT] = {0};
    int count[OP_COUNT] = {0}, order[OP_COUNT], n = 0;
    for (int i = 0; i < p->nnodes; i++)
        if (p->nodes[i].kind == CG_KERNEL && !p->nodes[i].noop) {
            ms[g->nodes[i]->op] += rt_exec_kernel_ns(ex)[i] / 1e6 / (double)steps;
            count[g->nodes[i]->op]++;
        }
    for (int op = 0; op < OP_COUNT; op++) {
        int k = count[op] ? n++ : -1;
        for (; k > 0 && ms[order[k - 1]] < ms[op]; k--)
            order[k] = order[k - 1];
        if (k >= 0)
            order[k] = op;
    }
    printf("time by op, ms per step:");
    for (int k = 0; k < n; k++)
        printf("%s %s %.3f (%d)", k ? "," : "", ir_op_name((IrOp)order[k]), ms[order[k]],
               count[order[k]]);
    printf("\n");
}

static double kernel_ms(const RtExec *ex)
{
    const CgProgram *p = rt_exec_program(ex);
    double total = 0;
    for (int i = 0; i < p->nnodes; i++)
        total += rt_exec_kernel_ns(ex)[i];
    return total / 1e6;
}

/* model_flops: the FLOPs of the model's graph as loaded (what `gradc
 * check` prints); the program's are those of the compiled graph (what
 * `gradc plan` prints for it).  Both are ir/cost.h's one model. */
static void print_summary(const RtExec *ex, const BenchArgs *a, const int64_t *binding,
                          const IrGraph *g, double model_flops, double wall_ms)
{
    const RtExecStats *st = rt_exec_stats(ex);
    double step_ms = wall_ms / (double)a->steps;
    int64_t tokens = 1;
    for (int s = 0; s < g->nsym; s++)
        if (!strcmp(g->sym[s], "B") || !strcmp(g->sym[s], "T"))
            tokens *= binding[s];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("steps: %lld timed after %lld warm-up; %.3f ms/step (kernels %.3f ms)\n", a->steps,
           a->warmup, step_ms, kernel_ms(ex) / (double)a->steps);
    printf("tokens/s: %.1f (%lld tokens/step)\n", (double)tokens * 1e3 / step_ms,
           (long long)tokens);
    printf("GFLOP/s: %.2f (%.4g GFLOP/step as compiled; %.2f GFLOP/s against the %.4g GFLOP "
           "of the model's forward)\n", st->flops / step_ms / 1e6, st->flops / 1e9,
           model_flops / step_ms / 1e6, model_flops / 1e9);
    printf("flops: %.0f per step as compiled (gradc plan), %.0f per forward of the model "
           "(gradc check)\n", st->flops, model_flops);
    printf("peak RSS: %.1f MiB\n", ru.ru_maxrss / 1024.0);
    print_by_op(ex, g, a->steps);
    print_kernels(ex, g, a->steps, step_ms);
}

/* A hint when OpenBLAS runs kernels narrower than the CPU's vectors (its
 * core detection can fall back to Prescott): cli/blas.c picks SkylakeX on
 * its own unless the caller set OPENBLAS_CORETYPE or GRADC_BLAS_AUTO=0. */
static void note_blas_core(const RtExecStats *st)
{
    static const char *const wide[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    IrError err = {0};
    const CgTarget *t = cg_target_host(&err);
    if (!st->blas_core || !t || !cg_target_has_feature(t, "avx512f"))
        return;
    for (int k = 0; wide[k]; k++)
        if (!strcmp(st->blas_core, wide[k]))
            return;
    printf("note: OpenBLAS uses its %s kernels on a CPU with AVX-512; "
           "OPENBLAS_CORETYPE=SkylakeX is usually much faster for sgemm\n", st->blas_core);
}

/* ---------------------------------------------------------------- the command */

static int bench(IrGraph *g, const FeModel *m, const BenchArgs *a, IrError *err)
{
    int64_t binding[IR_MAX_SYMS];
    if (!cli_bind(g, m, &a->x.bind, binding, err))
        return cli_fail(err);
    double model_flops = ir_cost_flops_f(g, binding);
    CliInputs in;
    int r = prepare(g, m, a, binding, &in, err);
    RtExec *ex = r < 0 ? cli_exec_new(g, binding, &a->x, true, err) : NULL;
    if (!ex) {
        cli_free_inputs(&in);
        return r >= 0 ? r : cli_fail(err);
    }
    rt_exec_init_params(ex, (uint64_t)a->x.seed);
    printf("bench: %s (%s)  ", a->x.in, a->train ? "train step" : "forward");
    cli_print_binding(g, binding, stdout);
    printf("\n");
    cli_print_exec(ex, stdout);
    note_blas_core(rt_exec_stats(ex));
    fflush(stdout);
    bool ok = cli_set_inputs(ex, &in, err) && run_steps(ex, g, 1, a->warmup, err);
    rt_exec_reset_times(ex);
    double t0 = cli_now_ms();
    ok = ok && run_steps(ex, g, 1 + a->warmup, a->steps, err);
    if (ok)
        print_summary(ex, a, binding, g, model_flops, cli_now_ms() - t0);
    cli_free_inputs(&in);
    rt_exec_free(ex);
    return ok ? 0 : cli_fail(err);
}

int cmd_bench(int argc, char **argv)
{
    IrError err = {0};
    BenchArgs a = {.x = cli_exec_args_default(), .steps = 10, .warmup = 2};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    FeModel *model = NULL;
    IrGraph *g = cli_load(a.x.in, &a.x.model, &model, &err);
    if (!g)
        return cli_fail(&err);
    r = bench(g, model, &a, &err);
    cli_unload(g, model);
    return r;
}
