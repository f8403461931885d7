/* cmd_dot.c — `gradc dot`: a Graphviz drawing of a model or .gir file.
 *
 * Loads the graph like every other command (cli_load: JSON through the
 * frontend with --set overrides, .gir or - through the IR parser), brings
 * it to the asked stage and hands it to ir_dot (ir/dot.c), which collapses
 * repeated blocks unless --expand is given.  Stages follow `gradc dump`:
 * `graph` is the frontend's graph, `opt` the graph after the default pass
 * pipeline; the later stages are listed and refused with a clear message
 * until they exist.  With -o the drawing goes to FILE.tmp.PID and is
 * renamed over FILE, so a failed run never leaves half a file behind (a
 * device or FIFO is written in place: ir/outfile.c).
 */
#include "cli.h"
#include "passes/pass.h"
#include "ir/outfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char cmd_dot_usage[] =
    "usage: gradc dot MODEL.json|FILE.gir|- [--set k=v ...] [--stage=STAGE] [--expand]\n"
    "                 [-o FILE]\n"
    "\n"
    "Writes the graph of a model (through the JSON frontend) or of an IR text file\n"
    "in Graphviz dot syntax.  Each node shows its op and attributes, its type and\n"
    "its name; inputs, params and constants have their own shapes and colours, and\n"
    "every edge is labelled with the shape of the tensor it carries.\n"
    "\n"
    "Repeated blocks (nodes named PREFIX.N.rest, such as trf_blocks.3.att.scores)\n"
    "are collapsed: the first block is drawn in full in a cluster, and the others\n"
    "become one box, e.g. \"trf_blocks.1 ... trf_blocks.11 (11 more blocks, same\n"
    "structure)\", with their params hidden.  --expand draws every block.\n"
    "\n"
    "stages:\n"
    "  graph     the frontend's graph, before any pass (the default)\n"
    "  opt       after the default pass pipeline\n"
    "  grad, kernels, sched   later stages of the pipeline (not yet available)\n"
    "\n"
    "flags:\n"
    "  --set k=v        override a config value of a JSON model (repeatable)\n"
    "  --stage=STAGE    the stage to draw (see above)\n"
    "  --expand         draw every repeated block in its own cluster\n"
    "  -o FILE          write the drawing to FILE instead of stdout\n"
    "\n"
    "examples:\n"
    "  gradc dot models/gpt-mini.json | dot -Tsvg > mini.svg\n"
    "  gradc dot models/gpt2-small.json --set n_layers=2 --expand -o small.dot\n"
    "  gradc dump models/gpt-mini.json -o mini.gir && gradc dot mini.gir\n"
    "\n"
    "exit codes: 0 success, 1 user error (bad file, flag or stage), 2 internal error\n";

typedef struct DotArgs {
    const char *in, *out, *stage;
    CliModelArgs model;
    IrDotOptions opt;
} DotArgs;

/* ---------------------------------------------------------------- flags */

static int store(const char **dst, const char *v)
{
    if (!v)
        return 1; /* cli_flag_value reported the missing value */
    *dst = v;
    return -1;
}

/* Returns -1 to go on, or an exit code. */
static int take_arg(char **argv, int argc, int *i, DotArgs *a)
{
    const char *arg = argv[*i], *v = NULL;
    if (cli_is_help(arg))
        return cli_help("dot");
    if (cli_take_set(argv, argc, i, &a->model))
        return a->model.bad ? 1 : -1;
    if (cli_flag_value(argv, argc, i, "--stage", &v))
        return store(&a->stage, v);
    if (cli_flag_value(argv, argc, i, "-o", &v))
        return store(&a->out, v);
    if (!strcmp(arg, "--expand")) {
        a->opt.expand = true;
        return -1;
    }
    if (arg[0] == '-' && arg[1])
        return cli_usage_error("dot", "unknown flag '%s'", arg);
    if (a->in)
        return cli_usage_error("dot", "more than one input file ('%s' and '%s')", a->in, arg);
    a->in = arg;
    return -1;
}

static int check_stage(const char *stage)
{
    static const char *const later[] = {"grad", "kernels", "sched", "llvm", "asm"};
    if (!strcmp(stage, "graph") || !strcmp(stage, "opt"))
        return -1;
    for (size_t k = 0; k < sizeof later / sizeof later[0]; k++)
        if (!strcmp(stage, later[k])) {
            IrError err = {0};
            ir_error(&err, "stage '%s' is not yet available in this version of gradc", stage);
            ir_error_hint(&err, "available stages: graph, opt");
            return cli_fail(&err);
        }
    return cli_usage_error("dot", "unknown stage '%s'; stages: graph, opt, grad, kernels, sched",
                           stage);
}

static int parse_args(int argc, char **argv, DotArgs *a)
{
    for (int i = 1; i < argc; i++) {
        int r = take_arg(argv, argc, &i, a);
        if (r >= 0)
            return r;
    }
    if (!a->in)
        return cli_usage_error("dot", "missing input: a model .json file, a .gir file or -");
    return check_stage(a->stage);
}

/* ---------------------------------------------------------------- output */

static int write_failed(const char *path, int e)
{
    IrError err = {0};
    ir_error(&err, "cannot write '%s': %s", path, strerror(e));
    ir_error_hint(&err, "check that the directory exists and is writable");
    return cli_fail(&err);
}

/* Draws g into FILE through ir/outfile.c: atomically over a regular file,
 * in place into a device or FIFO. */
static int write_file(const IrGraph *g, const IrDotOptions *opt, const char *path)
{
    IrError err = {0};
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "output", &err);
    if (!f)
        return cli_fail(&err);
    ir_dot(g, opt, f);
    return ir_outfile_commit(&o, &err) ? 0 : cli_fail(&err);
}

static int write_dot(const IrGraph *g, const DotArgs *a)
{
    if (a->out && strcmp(a->out, "-"))
        return write_file(g, &a->opt, a->out);
    ir_dot(g, &a->opt, stdout);
    if (fflush(stdout) != 0)
        return write_failed("<stdout>", errno);
    return 0;
}

/* ---------------------------------------------------------------- the command */

static int run(IrGraph *g, const DotArgs *a)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    if (!strcmp(a->stage, "opt") && !pass_run_pipeline(g, pass_default_pipeline, &ctx)) {
        ir_error_print(&err, stderr);
        return ctx.internal ? 2 : 1;
    }
    return write_dot(g, a);
}

int cmd_dot(int argc, char **argv)
{
    DotArgs a = {.stage = "graph"};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    IrError err = {0};
    FeModel *model = NULL;
    IrGraph *g = cli_load(a.in, &a.model, &model, &err);
    if (!g)
        return cli_fail(&err);
    if (!model && a.model.nsets)
        fprintf(stderr, "gradc dot: warning: --set is ignored for IR text input '%s'\n", a.in);
    r = run(g, &a);
    cli_unload(g, model);
    return r;
}
