/* cmd_dot.c — `gradc dot`: a Graphviz drawing of a model or .gir file.
 *
 * Loads the graph like every other command (cli_load: JSON through the
 * frontend with --set overrides, .gir or - through the IR parser), brings
 * it to the asked stage and hands it to ir_dot (ir/dot.c), which collapses
 * repeated blocks unless --expand is given.  The stages are `gradc dump`'s,
 * the table of passes/registry.c, run by the same pass_stage_run, so
 * `gradc dot M --stage=S` draws the graph that `gradc dump M --stage=S`
 * prints.  The stages that depend on a binding (sched, llvm, asm) run at
 * the passes' nominal one, B=2 and T=64, which is also dump's default.  llvm
 * and asm are code, not graphs: for them dot draws the kernel graph that
 * codegen compiles into that code (kernels, then schedule), and says so in
 * a comment on the first line.  With -o the drawing goes to FILE.tmp.PID
 * and is renamed over FILE, so a failed run never leaves half a file
 * behind (a device or FIFO is written in place: ir/outfile.c).
 */
#include "cli.h"
#include "passes/pass.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
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
    "stages (those of gradc dump; see gradc dump --help):\n"
    "  graph     the frontend's graph, before any pass (the default)\n"
    "  grad      the train step as gradc train builds it\n"
    "  opt       the primitive graph: the pipeline up to fusion\n"
    "  kernels   opt, then fuse: fused kernels with their bodies\n"
    "  sched     kernels, then schedule and memplan (at B=2, T=64)\n"
    "  llvm, asm the kernel graph that codegen compiles into LLVM IR and machine\n"
    "            code (kernels, then schedule, at B=2, T=64); gradc dump prints the code\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc dot models/gpt-mini.json | dot -Tsvg > mini.svg\n"
    "  gradc dot models/gpt2-small.json --set n_layers=2 --expand -o small.dot\n"
    "  gradc dump models/gpt-mini.json -o mini.gir && gradc dot mini.gir\n"
    "\n"
    "exit codes: 0 success, 1 user error (bad file, flag or stage), 2 internal error\n";

typedef struct DotArgs {
    const char *in, *out, *stage;
    const PassStage *st;  /* the stage called `stage` */
    CliModelArgs model;
    IrDotOptions opt;
} DotArgs;

static const CliFlag flags[] = {
    CLI_FLAG_SET(DotArgs, model),
    {"--stage", CLI_STR, CLI_AT(DotArgs, stage), .meta = "=STAGE",
     .help = "the stage to draw (see above)"},
    {"--expand", CLI_TRUE, CLI_AT(DotArgs, opt.expand),
     .help = "draw every repeated block in its own cluster"},
    {"-o", CLI_STR, CLI_AT(DotArgs, out), .meta = "FILE",
     .help = "write the drawing to FILE instead of stdout"},
    {0}};

const CliSpec cmd_dot_spec = {"dot", usage, flags, tail, CLI_ONE_INPUT(DotArgs, in)};

/* ---------------------------------------------------------------- flags */

/* The stage called a->stage (passes/registry.c), or an exit code. */
static int check_stage(DotArgs *a)
{
    IrError err = {0};
    a->st = pass_stage_find(a->stage, &err);
    return a->st ? -1 : cli_fail(&err);
}

static int parse_args(int argc, char **argv, DotArgs *a)
{
    int r = cli_parse(&cmd_dot_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->in)
        return cli_usage_error("dot", "missing input: a model .json file, a .gir file or -");
    return check_stage(a);
}

/* ---------------------------------------------------------------- output */

typedef struct Drawing {
    const IrGraph *g;
    const DotArgs *a;
} Drawing;

/* The drawing of the stage's graph; for llvm and asm, first a comment that
 * says which graph it is. */
static void print_dot(FILE *f, const void *arg)
{
    const Drawing *d = arg;
    if (d->a->st->out != PASS_OUT_IR)
        fprintf(f, "// stage %s: the kernel graph that codegen compiles into this code; "
                "`gradc dump --stage=%s` prints the code\n", d->a->st->name, d->a->st->name);
    ir_dot(d->g, &d->a->opt, f);
}

/* ---------------------------------------------------------------- the command */

static int run(IrGraph *g, const DotArgs *a)
{
    IrError err = {0};
    PassCtx ctx = pass_ctx_default(&err);
    if (!pass_stage_run(g, a->st, false, &ctx)) {
        ir_error_print(&err, stderr);
        return ctx.internal ? 2 : 1;
    }
    Drawing d = {g, a};
    return cli_write_out(a->out, print_dot, &d);
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
