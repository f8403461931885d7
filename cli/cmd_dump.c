/* cmd_dump.c — `gradc dump`: the IR of a model or .gir file at a stage.
 *
 * A stage is a named point of the compile pipeline, defined once with its
 * passes in passes/registry.c (docs/passes.md, Stages): `graph` is the
 * frontend's graph as built, `grad` the train step as `gradc train` builds
 * it (attention, autodiff, optimizer: loss, gradients, AdamW update;
 * docs/autodiff.md), `opt` the clean primitive graph (the pipeline up to
 * fusion), `kernels` opt then fuse (fused kernels with their bodies;
 * --explain says why each fused or not), `sched` kernels then schedule and
 * memplan, run at the binding of --batch, --seq and --bind (default B=2,
 * T=64): its `offset` attributes are arena offsets at that binding, so a
 * sched dump is specialized to it (the runtime uses them at a binding where
 * they are valid and plans afresh otherwise).  `llvm` and `asm` compile the
 * graph that every compile compiles (kernels, then schedule) at that
 * binding and print its kernels' optimized LLVM IR or machine code
 * (cli_dump_kernels in cmd_run.c).  Every stage runs its passes with the
 * binding in the pass context when it can be made.  --passes runs extra
 * passes after the stage, so any point in between can be shown.
 *
 * Output goes to stdout, or with -o FILE to FILE atomically: the text is
 * written to FILE.tmp.PID, synced, and renamed over FILE, so a failed or
 * interrupted run never leaves a half-written file; a device or FIFO is
 * written in place (ir/outfile.c, through cli_write_out).  cli_write_ir
 * is shared with cmd_opt.c.
 */
#include "cli.h"
#include "passes/pass.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: gradc dump MODEL.json|FILE.gir|- [--set k=v ...] [--stage=STAGE] [--passes=LIST]\n"
    "                  [--print-after=P|all] [--print-before=P|all] [--explain] [-o FILE]\n"
    "                  [--batch B] [--seq T] [--bind NAME=V ...] [--no-cache]\n"
    "\n"
    "Prints the IR of a model (through the JSON frontend) or of an IR text file\n"
    "at a stage of the compile pipeline.\n"
    "\n"
    "stages (passes/registry.c):\n"
    "  graph     the frontend's graph, before any pass (the default)\n"
    "  grad      the train step as gradc train builds it: loss, gradients, AdamW\n"
    "            update (passes attention,autodiff,optimizer)\n"
    "  opt       the primitive graph: the pipeline up to fusion\n"
    "            (attention,decompose,simplify,cse,dce)\n"
    "  kernels   opt, then fuse: fused kernels with their bodies\n"
    "  sched     kernels, then schedule and memplan, at --batch/--seq (default B=2,\n"
    "            T=64): the scheduled order; offsets are specialized to that binding\n"
    "  llvm      optimized LLVM IR of the kernels that gradc run and train compile\n"
    "            (kernels, then schedule), at --batch/--seq (default B=2, T=64)\n"
    "  asm       machine code of the kernels (as llvm)\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc dump models/gpt-mini.json --set n_layers=1\n"
    "  gradc dump models/gpt-mini.json --stage=opt -o mini.gir\n"
    "  gradc dump mini.gir --passes=cse,dce --print-after=all\n"
    "  gradc dump models/gpt-mini.json --stage=asm | grep zmm\n"
    "  gradc dump models/gpt-mini.json --stage=sched --batch 4 --seq 128\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error (a pass broke the IR)\n";

typedef struct DumpArgs {
    const char *in, *out, *stage, *passes;
    const PassStage *st;  /* the stage called `stage` */
    CliModelArgs model;
    PassCtx ctx;
    CliExecArgs x;        /* binding of the llvm and asm stages */
    const FeModel *fe;
} DumpArgs;

static const CliFlag flags[] = {
    CLI_FLAG_SET(DumpArgs, model),
    CLI_FLAGS_LORA(DumpArgs, model.lora),
    {"--stage", CLI_STR, CLI_AT(DumpArgs, stage), .meta = "=STAGE",
     .help = "the stage to print (see above)"},
    {"--passes", CLI_STR, CLI_AT(DumpArgs, passes), .meta = "=LIST",
     .help = "comma-separated passes to run after the stage"},
    CLI_FLAGS_PASS_PRINT(DumpArgs, ctx),
    {"-o", CLI_STR, CLI_AT(DumpArgs, out), .meta = "FILE",
     .help = "write the IR to FILE (atomically) instead of stdout"},
    {NULL, CLI_HEAD, .help = "the binding of the sched, llvm and asm stages (and of schedule and "
                       "memplan anywhere), the cache of llvm and asm (see gradc run):"},
    CLI_FLAGS_BIND(DumpArgs, x.bind, "2", "64"),
    CLI_FLAG_NO_CACHE(DumpArgs, x.no_cache),
    {0}};

const CliSpec cmd_dump_spec = {"dump", usage, flags, tail, CLI_ONE_INPUT(DumpArgs, in)};

/* ---------------------------------------------------------------- output */

static void print_ir(FILE *f, const void *g)
{
    ir_print(g, f);
}

int cli_write_ir(const IrGraph *g, const char *path)
{
    return cli_write_out(path, print_ir, g);
}

/* ---------------------------------------------------------------- flags */

/* The stage called a->stage (passes/registry.c), or an exit code. */
static int check_stage(DumpArgs *a)
{
    IrError err = {0};
    a->st = pass_stage_find(a->stage, &err);
    return a->st ? -1 : cli_fail(&err);
}

static int parse_args(int argc, char **argv, DumpArgs *a)
{
    int r = cli_parse(&cmd_dump_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->in)
        return cli_usage_error("dump", "missing input: a model .json file, a .gir file or -");
    return check_stage(a);
}

/* ---------------------------------------------------------------- the command */

static int pass_failed(const PassCtx *ctx)
{
    ir_error_print(ctx->err, stderr);
    return ctx->internal ? 2 : 1;
}

static int run(IrGraph *g, DumpArgs *a)
{
    int64_t binding[IR_MAX_SYMS] = {0};
    IrError berr = {0};
    if (cli_bind(g, a->fe, &a->x.bind, binding, &berr))
        a->ctx.binding = binding;
    else if (a->st->binding)
        return cli_fail(&berr);
    if (!pass_stage_run(g, a->st, false, &a->ctx) || !pass_run_pipeline(g, a->passes, &a->ctx))
        return pass_failed(&a->ctx);
    if (a->st->out != PASS_OUT_IR)
        return cli_dump_kernels(g, a->fe, &a->x, a->st->out == PASS_OUT_ASM, a->out);
    return cli_write_ir(g, a->out);
}

int cmd_dump(int argc, char **argv)
{
    IrError err = {0};
    DumpArgs a = {.stage = "graph", .ctx = pass_ctx_default(&err), .x = cli_exec_args_default()};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    if (!pass_check_pipeline(a.passes, &a.ctx))
        return cli_fail(&err);
    FeModel *model = NULL;
    IrGraph *g = cli_load(a.in, &a.model, &model, &err);
    if (!g)
        return cli_fail(&err);
    if (!model && a.model.nsets)
        fprintf(stderr, "gradc dump: warning: --set is ignored for IR text input '%s'\n", a.in);
    a.fe = model;
    r = run(g, &a);
    cli_unload(g, model);
    return r;
}
