/* cmd_gradcheck.c — `gradc gradcheck`: autodiff against finite differences.
 *
 * Thin: it binds the graph's symbols (B from --batch, T from --seq, any
 * other from --bind), fills GcOptions from the flags and prints the
 * report of gc_check_model (passes/gradcheck.c): one line per trainable
 * param with its worst error, then a verdict.  A failure exits 1 with an
 * error that names the worst param and the op whose rule is suspect.
 */
#include "cli.h"
#include "passes/gradcheck.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc gradcheck MODEL.json|FILE.gir [--set k=v ...] [--batch B] [--seq T]\n"
    "                       [--bind NAME=V ...] [--seed S] [--tol X] [--samples N]\n"
    "                       [--jobs N] [--freeze GLOB ...]\n"
    "\n"
    "Checks the autodiff gradient of every trainable parameter against central\n"
    "finite differences of the loss, both computed by the reference interpreter in\n"
    "double precision.  The loss is the model's scalar output 'loss', or else\n"
    "cross_entropy(logits, targets) with random targets (some set to the ignore\n"
    "index -100).  Tensors with more than N elements are checked on N sampled\n"
    "elements.  The error of an element is |ad - fd| / max(|ad|, |fd|, 1e-3);\n"
    "each parameter's worst error is printed.  When one exceeds the tolerance, the\n"
    "ops between that parameter and the loss are checked one by one, and the op\n"
    "whose gradient rule fails is named.  Dropout stays on: its masks depend only\n"
    "on (seed, step, element), so every evaluation sees the same ones.  An element\n"
    "whose step crosses a kink of relu, abs, maximum, minimum or max (or flips a\n"
    "comparison) is stepped again with h/8, up to 3 times, then skipped; a line\n"
    "under the parameter counts them and names the op.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc gradcheck models/gpt-mini.json\n"
    "  gradc gradcheck models/gpt2-small.json --set emb_dim=16 --set n_heads=2 \\\n"
    "        --set n_layers=2 --set vocab_size=50 --set context_length=16\n"
    "  gradc gradcheck models/gpt-char.json --samples 32 --freeze 'tok_emb.*'\n"
    "\n"
    "exit codes: 0 every error within the tolerance, 1 a failed check or a user\n"
    "error, 2 internal error\n";

typedef struct GcArgs {
    const char *in;
    CliModelArgs model;
    CliBindArgs bind;          /* --batch, --seq, --bind */
    long long seed, samples, jobs;
    double tol;
    PassTrainOpts train;
} GcArgs;

static int break_rule_fn(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    (void)f;
    if (ir_op_lookup(v) == OP_COUNT)
        return cli_usage_error(cmd, "--break-rule: unknown op '%s' (did you mean '%s'?)", v,
                               ir_op_nearest(v));
    *(const char **)field = v;
    return 0;
}

static const CliFlag flags[] = {
    CLI_FLAG_SET(GcArgs, model),
    CLI_FLAGS_LORA(GcArgs, model.lora),
    CLI_FLAGS_BIND(GcArgs, bind, "2", "8"),
    {"--seed", CLI_INT, CLI_AT(GcArgs, seed), .meta = "S", .def = "0",
     .help = "seed of the inputs, parameter values and samples"},
    {"--tol", CLI_NUM, CLI_AT(GcArgs, tol), .positive = true, .meta = "X", .def = "1e-6",
     .help = "largest error allowed"},
    {"--samples", CLI_INT, CLI_AT(GcArgs, samples), .min = 1, .meta = "N", .def = "4",
     .help = "elements checked per parameter"},
    {"--jobs", CLI_INT, CLI_AT(GcArgs, jobs), .min = 1, .meta = "N", .def = "one per CPU",
     .help = "threads for the finite differences"},
    {"--freeze", CLI_LIST, CLI_AT(GcArgs, train.freeze), .count = offsetof(GcArgs, train.nfreeze),
     .meta = "GLOB", .help = "freeze the parameters whose name matches (repeatable)"},
    {"--break-rule", CLI_CALL, CLI_AT(GcArgs, train.broken_rule), .fn = break_rule_fn,
     .meta = "OP", .help = "testing aid: scale the gradient rule of OP by 1.25, so that "
                           "gradcheck must fail and name it"},
    {0}};

const CliSpec cmd_gradcheck_spec = {"gradcheck", usage, flags, tail, offsetof(GcArgs, in),
                                    "more than one model ('%s' and '%s')", NULL};

/* ---------------------------------------------------------------- flags */

static int parse_args(int argc, char **argv, GcArgs *a)
{
    int r = cli_parse(&cmd_gradcheck_spec, argc, argv, a);
    if (r < 0 && !a->in)
        return cli_usage_error("gradcheck", "missing input: a model .json file or a .gir file");
    return r;
}

/* ---------------------------------------------------------------- report */

static void print_header(const IrGraph *g, const GcArgs *a, const int64_t *binding)
{
    printf("gradcheck %s:", a->in);
    for (int i = 0; i < g->nsym; i++)
        printf(" %s=%lld", g->sym[i], (long long)binding[i]);
    printf(", seed %lld, %lld samples per parameter, tolerance %g\n", a->seed, a->samples,
           a->tol);
    printf("error = |ad - fd| / max(|ad|, |fd|, 1e-3), worst over the checked elements\n");
    printf("  %-44s %10s %7s   %s\n", "parameter", "elements", "checked", "worst error");
    fflush(stdout);
}

static int verdict(const GcReport *r, const GcArgs *a)
{
    printf("loss %.10g at the checked point\n", r->loss);
    if (r->nparams == 0) {
        printf("no trainable parameters: nothing to check\n");
        return 0;
    }
    const GcParam *w = &r->params[r->worst];
    if (!r->failed) {
        printf("ok: %d parameter%s, worst error %.2e (%s)\n", r->nparams,
               r->nparams == 1 ? "" : "s", w->worst, w->name);
        return 0;
    }
    printf("FAIL: %d of %d parameters exceed the tolerance %g\n", r->failed, r->nparams, a->tol);
    IrError err = {0};
    ir_error(&err, "gradcheck: the gradient of '%s' is wrong: error %.2e at element %lld "
             "(autodiff %.10g, finite differences %.10g)", w->name, w->worst, (long long)w->at,
             w->ad, w->fd);
    ir_error_hint(&err, "%s", r->suspect);
    return cli_fail(&err);
}

/* Loads the model, binds its symbols and runs the check. */
static int gradcheck(const GcArgs *a, IrError *err)
{
    FeModel *model = NULL;
    IrGraph *g = cli_load(a->in, &a->model, &model, err);
    int64_t binding[IR_MAX_SYMS] = {0};
    if (!g || !cli_bind(g, model, &a->bind, binding, err)) {
        if (g)
            cli_unload(g, model);
        return cli_fail(err);
    }
    GcOptions o = gc_options_default();
    o.binding = binding;
    o.seed = (uint64_t)a->seed;
    o.tol = a->tol;
    o.samples = (int)(a->samples > 4096 ? 4096 : a->samples);
    o.jobs = (int)(a->jobs > 64 ? 64 : a->jobs);
    o.train = a->train;
    o.log = stdout;
    print_header(g, a, binding);
    GcReport rep;
    int r = gc_check_model(g, &o, &rep, err) ? verdict(&rep, a) : cli_fail(err);
    gc_report_free(&rep);
    cli_unload(g, model);
    return r;
}

int cmd_gradcheck(int argc, char **argv)
{
    IrError err = {0};
    GcArgs a = {.bind = {.batch = 2, .seq = 8}, .samples = 4, .tol = 1e-6,
                .train = pass_ctx_default(&err).train};
    int r = parse_args(argc, argv, &a);
    return r < 0 ? gradcheck(&a, &err) : r;
}
