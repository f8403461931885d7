/* cmd_opt.c — `gradc opt`: IR text in, passes, IR text out.
 *
 * The tool behind the pass regression tests (tests/lit): it parses a .gir
 * file (or stdin), runs a pipeline string and prints the result, optionally
 * with dumps before/after each pass.  Without --passes it just re-prints
 * its input, so for any printed IR `gradc opt a.gir > b.gir` reproduces
 * a.gir byte for byte (the text format round-trips).
 *
 * The input is IR text whatever its extension, except that a .json file is
 * refused with a pointer to `gradc dump`, which is the command that reads
 * models.  Exit codes: 1 for a bad flag, file, parse error or pipeline, 2
 * when a pass broke the IR (the verifier caught a bug in gradc).
 */
#include "cli.h"
#include "passes/pass.h"

#include <string.h>

/* Shared with cmd_dump.c, which defines it: prints g to stdout or writes it
 * atomically to path; returns an exit code. */

static const char usage[] =
    "usage: gradc opt FILE.gir|- [--passes=LIST] [--print-after=P|all] [--print-before=P|all]\n"
    "                 [--no-verify] [--explain] [-o FILE]\n"
    "\n"
    "Parses IR text (a .gir file, or - for stdin), runs the passes of LIST in order\n"
    "and prints the resulting IR.  Without --passes it prints its input re-printed,\n"
    "so `gradc opt a.gir > b.gir && cmp a.gir b.gir` holds for printed IR.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "The --print-* dumps go to stdout, each after a header line\n"
    "  // -----// IR after NAME //----- //\n"
    "\n"
    "examples:\n"
    "  gradc opt model.gir --passes=cse,dce\n"
    "  gradc dump models/gpt-mini.json | gradc opt - --passes=cse --print-after=all\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error (a pass broke the IR)\n";

typedef struct OptArgs {
    const char *in, *out, *passes;
    PassCtx ctx;
} OptArgs;

static const CliFlag flags[] = {
    {"--passes", CLI_STR, CLI_AT(OptArgs, passes), .meta = "=LIST",
     .help = "comma-separated pass names, e.g. cse,dce (see docs/passes.md)"},
    CLI_FLAGS_PASS_PRINT(OptArgs, ctx),
    CLI_FLAGS_LORA(OptArgs, ctx.lora),
    {"--no-verify", CLI_FALSE, CLI_AT(OptArgs, ctx.verify),
     .help = "do not run the verifier after each pass"},
    {"-o", CLI_STR, CLI_AT(OptArgs, out), .meta = "FILE",
     .help = "write the result to FILE (atomically) instead of stdout"},
    {0}};

const CliSpec cmd_opt_spec = {"opt", usage, flags, tail, CLI_ONE_INPUT(OptArgs, in)};

static int parse_args(int argc, char **argv, OptArgs *a)
{
    int r = cli_parse(&cmd_opt_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->in)
        return cli_usage_error("opt", "missing input: a .gir file, or - for stdin");
    size_t n = strlen(a->in);
    if (n < 5 || strcmp(a->in + n - 5, ".json"))
        return -1;
    IrError err = {0};
    ir_error(&err, "'%s' is a model file, and opt reads IR text", a->in);
    ir_error_hint(&err, "`gradc dump %s --passes=LIST` runs passes on a model", a->in);
    return cli_fail(&err);
}

static IrGraph *load(const char *path, IrError *err)
{
    if (strcmp(path, "-"))
        return ir_parse_file(path, err);
    CliModelArgs none = {0};
    FeModel *model = NULL;
    return cli_load(path, &none, &model, err);
}

int cmd_opt(int argc, char **argv)
{
    IrError err = {0};
    OptArgs a = {.ctx = pass_ctx_default(&err)};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    if (!pass_check_pipeline(a.passes, &a.ctx))
        return cli_fail(&err);
    IrGraph *g = load(a.in, &err);
    if (!g)
        return cli_fail(&err);
    if (pass_run_pipeline(g, a.passes, &a.ctx))
        r = cli_write_ir(g, a.out);
    else
        r = a.ctx.internal ? (cli_fail(&err), 2) : cli_fail(&err);
    ir_graph_free(g);
    return r;
}
