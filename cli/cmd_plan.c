/* cmd_plan.c — `gradc plan`: kernels, memory and FLOPs, before anything runs.
 *
 * Loads a model, builds the train step with --train (autodiff, optimizer),
 * binds B and T (--batch, --seq, as gradc run does), then runs the pass
 * pipeline one pass at a time with the binding in the pass context, so that
 * schedule and memplan weigh the real sizes.  After the input graph and after
 * each pass it measures, with memplan's planner (passes/memplan.c, the one
 * the runtime lays out its arena with):
 *   kernels      kernels as codegen runs them: every node but inputs,
 *                params and reshapes, a run of fused siblings once;
 *   peak-bytes   the arena of the memory plan for the graph in its order;
 *   naive-bytes  every kernel's value in a buffer of its own;
 *   flops        ir/cost.h's per-node estimate (gradc check and bench use
 *                it too), with a run of sibling fused nodes counted as the
 *                one kernel it is: what their bodies share, once.
 * Then it prints the four figures for the final graph and a table of its
 * kernels in execution order: FLOPs and bytes moved (the distinct buffers
 * the kernel reads, a gather only the rows it copies, plus the values it
 * writes).  Nothing is compiled or run:
 * the numbers are the plan's.
 */
#include "cli.h"
#include "ir/cost.h"
#include "passes/pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc plan MODEL.json|FILE.gir [--batch B] [--seq T] [--train] [--set k=v ...]\n"
    "                  [--passes=LIST] [--bind NAME=V ...] [--top N] [--explain]\n"
    "\n"
    "Prints, before anything runs, what a compile of the model at one binding will\n"
    "cost: the kernel count, the arena's peak bytes under the memory plan, the bytes\n"
    "every value would take in a buffer of its own, the FLOPs, and a table of the\n"
    "kernels.  Nothing is compiled or run.  With --train the graph is the whole\n"
    "train step: the attention rewrite, autodiff and the AdamW optimizer run\n"
    "first, as in gradc train, each with its row.\n"
    "\n"
    "The pass pipeline (the default one, or --passes) runs one pass at a time;\n"
    "after each the kernel count, peak bytes, naive bytes and FLOPs are printed,\n"
    "so the effect of every pass shows.  schedule and memplan run at the binding\n"
    "given here (docs/passes.md).\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "output:\n"
    "  pass       kernels    peak-bytes   naive-bytes   flops    after each pass\n"
    "  kernels: N        kernels as codegen runs them (fused siblings count once)\n"
    "  peak-bytes: N     arena bytes of the memory plan (params, optimizer state\n"
    "                    and inputs live in slabs of their own: see sources:)\n"
    "  naive-bytes: N    every kernel's value in its own buffer, no reuse\n"
    "  flops: N          estimated FLOPs of one run (ir/cost.h; fused siblings'\n"
    "                    shared work once)\n"
    "  live-bytes: N     the most bytes live at one time (a lower bound on peak)\n"
    "  sources: ...      param, state and input slabs; updates written in place\n"
    "  then one line per kernel: index, node, op, name, FLOPs, bytes moved\n"
    "\n"
    "examples:\n"
    "  gradc plan models/gpt2-small.json --batch 2 --seq 256 --train\n"
    "  gradc plan models/gpt-mini.json --passes=decompose,simplify,cse,dce,schedule\n"
    "  gradc plan models/gpt-mini.json --train --top 10\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error (a pass broke the IR)\n";

typedef struct PlanArgs {
    CliExecArgs x;
    bool train, explain;
    long long top;
} PlanArgs;

#define PLAN_REFUSE(flag)                                                                     \
    {flag, CLI_REFUSE, .help = "is a flag of the commands that run; plan runs nothing"}

static const CliFlag flags[] = {
    CLI_FLAGS_BIND(PlanArgs, x.bind, "2", "64"),
    {"--train", CLI_TRUE, CLI_AT(PlanArgs, train),
     .help = "plan a train step (autodiff + AdamW) instead of a forward"},
    CLI_FLAG_SET(PlanArgs, x.model),
    CLI_FLAGS_LORA(PlanArgs, x.model.lora),
    {"--passes", CLI_STR, CLI_AT(PlanArgs, x.passes), .meta = "=LIST",
     .def = "the default pipeline, then memplan", .help = "the pipeline after the graph"},
    {"--top", CLI_INT, CLI_AT(PlanArgs, top), .meta = "N", .def = "all, in execution order",
     .help = "list only the N kernels with the most FLOPs"},
    {"--explain", CLI_TRUE, CLI_AT(PlanArgs, explain),
     .help = "print the passes' decisions (fuse, schedule, memplan) as // lines"},
    PLAN_REFUSE("--threads"), PLAN_REFUSE("--seed"), PLAN_REFUSE("--no-cache"),
    {0}};

const CliSpec cmd_plan_spec = {"plan", usage, flags, tail, CLI_ONE_INPUT(PlanArgs, x.in)};

typedef struct Kernel {
    int first, end;        /* the nodes of the kernel: a launch run (pass_launch_run) */
    int runs;              /* the sibling runs in it: 1, or the members of a horizontal launch */
    int64_t flops, bytes;
} Kernel;

/* ---------------------------------------------------------------- flags */

static int parse_args(int argc, char **argv, PlanArgs *a)
{
    int r = cli_parse(&cmd_plan_spec, argc, argv, a);
    if (r < 0 && !a->x.in)
        return cli_usage_error("plan", "missing input: a model .json file or a .gir file");
    return r;
}

/* One run of the program: every kernel's FLOPs. */
static int64_t graph_flops(const IrGraph *g, const int64_t *binding)
{
    int64_t flops = 0;
    for (int i = 0; i < g->nnodes;) {
        int first, end;
        pass_sibling_run(g, i, &first, &end);
        flops += ir_cost_run_flops(g, i, end, binding);
        i = end + 1;
    }
    return flops;
}

/* ---------------------------------------------------------------- measuring */

static bool measure(const IrGraph *g, const int64_t *binding, PassMemPlan *p, IrError *err)
{
    PassMemOpts o = {.use_offsets = true};
    return pass_memplan_build(g, binding, &o, p, err);
}

static int print_row(const char *stage, const IrGraph *g, const int64_t *binding, IrError *err)
{
    PassMemPlan p;
    if (!measure(g, binding, &p, err)) {
        pass_memplan_free(&p);
        return cli_fail(err);
    }
    printf("%-11s %9d %15lld %15lld %18lld\n", stage, p.nkernels, (long long)p.peak_bytes,
           (long long)p.naive_bytes, (long long)graph_flops(g, binding));
    pass_memplan_free(&p);
    return -1;
}

/* Runs each pass of `pipeline` alone and prints a row after it. */
static int run_pipeline(IrGraph *g, const char *pipeline, PassCtx *ctx, const int64_t *binding)
{
    char name[64];
    const char *p = pipeline;
    printf("%-11s %9s %15s %15s %18s\n", "pass", "kernels", "peak-bytes", "naive-bytes",
           "flops");
    int r = print_row("(input)", g, binding, ctx->err);
    while (r < 0 && *p) {
        size_t n = strcspn(p, ",");
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), p);
        p += n + (p[n] == ',');
        if (!pass_run_pipeline(g, name, ctx)) {
            ir_error_print(ctx->err, stderr);
            return ctx->internal ? 2 : 1;
        }
        r = print_row(name, g, binding, ctx->err);
    }
    return r;
}

/* ---------------------------------------------------------------- the kernel table */

static int64_t value_bytes(const IrNode *n, const int64_t *binding)
{
    return ir_cost_numel(&n->shape, binding) * (int64_t)ir_dtype_size(n->dtype);
}

static const IrNode *buffer_of(const IrNode *n)
{
    while (pass_mem_kind(n) == PM_VIEW)
        n = n->in[0];
    return n;
}

/* The distinct buffers kernel k reads, plus the values it writes (a gather
 * reads only the rows it copies out of its table). */
static int64_t bytes_moved(const IrGraph *g, const Kernel *k, const int64_t *binding)
{
    const IrNode *seen[IR_MAX_IN * PASS_MAX_SIBLINGS];
    int nseen = 0;
    int64_t bytes = 0;
    for (int i = k->first; i <= k->end; i++) {
        const IrNode *n = g->nodes[i];
        bytes += value_bytes(n, binding);
        for (int j = 0; j < n->nin; j++) {
            const IrNode *b = buffer_of(n->in[j]);
            int s = 0;
            while (s < nseen && seen[s] != b)
                s++;
            if (s == nseen) {
                seen[nseen++] = b;
                bytes += n->op == OP_GATHER && j == 0 ? value_bytes(n, binding)
                                                      : value_bytes(n->in[j], binding);
            }
        }
    }
    return bytes;
}

/* A kernel is a launch run: a sibling run, or the sibling runs of one
 * horizontal launch (hgroup), whose FLOPs and bytes add up run by run. */
static int find_kernels(const IrGraph *g, const int64_t *binding, Kernel *ks)
{
    int nk = 0;
    for (int i = 0; i < g->nnodes;) {
        Kernel k = {.first = i};
        int first;
        pass_launch_run(g, i, &first, &k.end);
        i = k.end + 1;
        if (pass_mem_kind(g->nodes[k.first]) != PM_KERNEL)
            continue;
        for (int j = k.first; j <= k.end; k.runs++) {
            Kernel r = {.first = j};
            pass_sibling_run(g, j, &first, &r.end);
            k.flops += ir_cost_run_flops(g, r.first, r.end, binding);
            k.bytes += bytes_moved(g, &r, binding);
            j = r.end + 1;
        }
        ks[nk++] = k;
    }
    return nk;
}

/* A reduction over the last axis only (a row kernel's). */
static bool last_axis(const IrNode *n)
{
    const IrAttr *ax = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    return ax && ax->n == 1 && ir_axis(ax->i[0], r) == r - 1;
}

/* The kind of kernel a fused body makes, as docs/passes.md (fuse) names
 * them: elementwise, row, reduce, matmul, matmul+elementwise, matmul+row. */
static const char *body_kind(const IrGraph *body)
{
    bool mm = false, row = false, red = false, ew = false;
    for (int i = 0; i < body->nnodes; i++) {
        const IrNode *n = body->nodes[i];
        mm |= n->op == OP_MATMUL;
        ew |= ir_ops[n->op].kind == OPK_ELEMWISE;
        if (ir_ops[n->op].kind == OPK_REDUCE)
            *(last_axis(n) ? &row : &red) = true;
    }
    if (mm)
        return row ? "matmul+row" : ew ? "matmul+elementwise" : "matmul";
    return red ? "reduce" : row ? "row" : "elementwise";
}

/* The name an output gives node i, else its own name, else "-". */
static const char *node_label(const IrGraph *g, int i)
{
    for (int o = 0; o < g->nout; o++)
        if (g->outs[o].node == g->nodes[i] && g->outs[o].name)
            return g->outs[o].name;
    return g->nodes[i]->name ? g->nodes[i]->name : "-";
}

static void print_kernel(const IrGraph *g, int no, const Kernel *k)
{
    const IrNode *n = g->nodes[k->end];
    char op[64];
    if (n->body && k->runs > 1)
        snprintf(op, sizeof op, "fused:%s x%d", body_kind(n->body), k->runs);
    else if (n->body)
        snprintf(op, sizeof op, "fused:%s%s", body_kind(n->body), k->end > k->first ? "*" : "");
    else
        snprintf(op, sizeof op, "%s", ir_op_name(n->op));
    printf("%5d  %%%-6d %-26s %-36.36s %16lld %14lld\n", no, k->end, op,
           node_label(g, k->end), (long long)k->flops, (long long)k->bytes);
}

static const Kernel *sort_ks; /* qsort has no context argument */

static int by_flops_desc(const void *a, const void *b)
{
    const Kernel *x = &sort_ks[*(const int *)a], *y = &sort_ks[*(const int *)b];
    if (x->flops != y->flops)
        return x->flops > y->flops ? -1 : 1;
    return x->first - y->first;
}

static void print_kernels(const IrGraph *g, const int64_t *binding, long long top)
{
    Kernel *ks = malloc(sizeof *ks * ((size_t)g->nnodes + 1));
    int nk = find_kernels(g, binding, ks);
    int *order = malloc(sizeof *order * ((size_t)nk + 1));
    for (int k = 0; k < nk; k++)
        order[k] = k;
    if (top > 0) {
        sort_ks = ks;
        qsort(order, (size_t)nk, sizeof *order, by_flops_desc);
        nk = top < nk ? (int)top : nk;
    }
    printf("\n%5s  %-7s %-26s %-36s %16s %14s\n", "#", "node", "op", "name", "flops",
           "bytes-moved");
    for (int k = 0; k < nk; k++)
        print_kernel(g, order[k] + 1, &ks[order[k]]);
    printf("(fused:KIND* is a run of sibling fused nodes: one kernel, several outputs; "
           "fused:KIND xN is one launch of N such kernels)\n");
    free(order);
    free(ks);
}

/* ---------------------------------------------------------------- the summary */

static void source_bytes(const IrGraph *g, const int64_t *binding, int64_t *sb)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (pass_mem_kind(n) != PM_SOURCE)
            continue;
        bool state = false;
        for (int o = 0; n->op == OP_INPUT && n->name && o < g->nout; o++)
            state |= g->outs[o].name && !strcmp(g->outs[o].name, n->name);
        sb[n->op == OP_PARAM ? 0 : state ? 1 : 2] += pass_mem_bytes(n, binding);
    }
}

static int print_summary(const IrGraph *g, const int64_t *binding, IrError *err)
{
    PassMemPlan p;
    if (!measure(g, binding, &p, err)) {
        pass_memplan_free(&p);
        return cli_fail(err);
    }
    int64_t sb[3] = {0, 0, 0};
    source_bytes(g, binding, sb);
    printf("\nkernels: %d\npeak-bytes: %lld\nnaive-bytes: %lld\nflops: %lld\n", p.nkernels,
           (long long)p.peak_bytes, (long long)p.naive_bytes,
           (long long)graph_flops(g, binding));
    printf("live-bytes: %lld\n", (long long)p.live_bytes);
    printf("peak/naive: %.1f%%; %d arena buffers, %d of them in place of an operand\n",
           p.naive_bytes ? 100.0 * (double)p.peak_bytes / (double)p.naive_bytes : 0.0,
           p.nbuffers, p.ninplace);
    printf("sources: params %lld bytes, state %lld, inputs %lld; updates written in place: "
           "%lld bytes\n", (long long)sb[0], (long long)sb[1], (long long)sb[2],
           (long long)p.slab_bytes);
    pass_memplan_free(&p);
    return -1;
}

/* ---------------------------------------------------------------- the command */

static int plan_graph(IrGraph *g, const FeModel *m, const PlanArgs *a, IrError *err)
{
    int64_t binding[IR_MAX_SYMS] = {0};
    PassCtx ctx = pass_ctx_default(err);
    ctx.explain = a->explain;
    /* the sched stage's passes (the compile's, then memplan), or --passes after
     * the grad stage's when a->train: a train step's rows start at the model */
    const char *pipeline = pass_stage_pipeline(pass_stage("sched"), a->train);
    char custom[1024];
    if (a->x.passes) {
        if (!pass_check_pipeline(a->x.passes, &ctx))
            return cli_fail(err);
        const char *grad = pass_stage_pipeline(pass_stage("grad"), true);
        snprintf(custom, sizeof custom, "%s%s%s", a->train ? grad : "",
                 a->train && *a->x.passes ? "," : "", a->x.passes);
        pipeline = custom;
    }
    if (!cli_bind(g, m, &a->x.bind, binding, err))
        return cli_fail(err);
    ctx.binding = binding;
    printf("plan: %s (%s)  ", a->x.in, a->train ? "train step" : "forward");
    cli_print_binding(g, binding, stdout);
    printf("\npipeline: %s\n\n", *pipeline ? pipeline : "(none)");
    int r = run_pipeline(g, pipeline, &ctx, binding);
    if (r < 0)
        r = print_summary(g, binding, err);
    if (r < 0)
        print_kernels(g, binding, a->top);
    return r < 0 ? 0 : r;
}

int cmd_plan(int argc, char **argv)
{
    IrError err = {0};
    PlanArgs a = {.x = cli_exec_args_default()};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    FeModel *model = NULL;
    IrGraph *g = cli_load(a.x.in, &a.x.model, &model, &err);
    if (!g)
        return cli_fail(&err);
    r = plan_graph(g, model, &a, &err);
    cli_unload(g, model);
    return r;
}
