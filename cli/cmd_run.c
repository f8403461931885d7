/* cmd_run.c — `gradc run`: one forward on seeded random inputs.
 *
 * The command loads a model (or .gir), runs the pass pipeline, compiles
 * the graph at a binding of its symbols (bind.c), fills the params from
 * their init specs and the inputs with seeded random data (inputs.c), runs
 * once and prints a summary of every output.  It is the smallest
 * end-to-end use of the runtime; the pieces it needs are shared with
 * `gradc verify` and `gradc bench` (bind.c, inputs.c, exec.c, declared in
 * cli.h).
 */
#include "cli.h"
#include "runtime/rt_exec.h"

#include <stdio.h>
#include <string.h>

typedef struct RunArgs {
    CliExecArgs x;
} RunArgs;

static const char usage[] =
    "usage: gradc run MODEL.json|FILE.gir [--set k=v ...] [--batch B] [--seq T] [--seed S]\n"
    "                 [--bind NAME=V ...] [--passes=LIST] [--threads N] [--no-cache]\n"
    "\n"
    "Compiles the graph (after the pass pipeline) to native code, fills the params\n"
    "from their init specs and the inputs with seeded random data, runs one forward\n"
    "and prints every output's shape, mean, std, min, max and first values, with the\n"
    "compile time (and whether the kernels came from the on-disk cache) and run time.\n"
    "\n"
    "Integer inputs (token ids, targets) are uniform in [0, V), V being the rows of\n"
    "the table a gather reads with them (else the classes of the cross_entropy they\n"
    "are the targets of, else vocab_size), read before decompose; a value outside\n"
    "is an error before anything runs.  Float inputs are standard normal (lr = 1e-3,\n"
    "step = 1).\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc run models/gpt-mini.json\n"
    "  gradc run models/gpt2-small.json --batch 1 --seq 32 --set n_layers=2\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

static const CliFlag flags[] = {
    CLI_FLAG_SET(RunArgs, x.model),
    CLI_FLAGS_LORA(RunArgs, x.model.lora),
    CLI_FLAGS_EXEC(RunArgs, x),
    {"--passes", CLI_STR, CLI_AT(RunArgs, x.passes), .meta = "=LIST",
     .def = "the default pipeline; '' for none", .help = "the pass pipeline before compiling"},
    {0}};

const CliSpec cmd_run_spec = {"run", usage, flags, tail, CLI_ONE_INPUT(RunArgs, x.in)};

/* ---------------------------------------------------------------- the command */

static int parse_args(int argc, char **argv, RunArgs *a)
{
    int r = cli_parse(&cmd_run_spec, argc, argv, a);
    if (r < 0 && !a->x.in)
        return cli_usage_error("run", "missing input: a model .json file or a .gir file");
    return r;
}

static int run_once(RtExec *ex, const IrGraph *g, const int64_t *binding, IrError *err)
{
    double t0 = cli_now_ms();
    if (!rt_exec_run(ex, err))
        return cli_fail(err);
    printf("run: %.2f ms\noutputs:\n", cli_now_ms() - t0);
    for (int o = 0; o < g->nout; o++) {
        int64_t n = 0;
        const void *data = rt_exec_output(ex, g->outs[o].name, &n);
        cli_print_output(g, &g->outs[o], binding, data, n, stdout);
    }
    return 0;
}

static int run_graph(IrGraph *g, const FeModel *m, const CliExecArgs *a, IrError *err)
{
    int64_t binding[IR_MAX_SYMS];
    if (!cli_bind(g, m, &a->bind, binding, err))
        return cli_fail(err);
    CliInputs in; /* before decompose, which removes cross_entropy */
    cli_make_inputs(g, m, binding, (uint64_t)a->seed, false, &in);
    int r = cli_run_passes(g, a->passes, binding, err);
    RtExec *ex = r < 0 ? cli_exec_new(g, binding, a, false, err) : NULL;
    if (!ex) {
        cli_free_inputs(&in);
        return r >= 0 ? r : cli_fail(err);
    }
    rt_exec_init_params(ex, (uint64_t)a->seed);
    printf("model: %s  ", a->in);
    cli_print_binding(g, binding, stdout);
    printf("\n");
    cli_print_exec(ex, stdout);
    r = cli_set_inputs(ex, &in, err) ? run_once(ex, g, binding, err) : cli_fail(err);
    cli_free_inputs(&in);
    rt_exec_free(ex);
    return r;
}

int cmd_run(int argc, char **argv)
{
    IrError err = {0};
    RunArgs ra = {cli_exec_args_default()};
    const CliExecArgs *a = &ra.x;
    int r = parse_args(argc, argv, &ra);
    if (r >= 0)
        return r;
    FeModel *model = NULL;
    IrGraph *g = cli_load(a->in, &a->model, &model, &err);
    if (!g)
        return cli_fail(&err);
    r = run_graph(g, model, a, &err);
    cli_unload(g, model);
    return r;
}
