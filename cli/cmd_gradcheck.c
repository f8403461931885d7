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

const char cmd_gradcheck_usage[] =
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
    "\n"
    "flags:\n"
    "  --set k=v          override a config value of a JSON model (repeatable)\n"
    "  --batch B          value of the symbol B (default 2)\n"
    "  --seq T            value of the symbol T (default 8, capped at context_length\n"
    "                     and at the rows of a positional table; past them: an error)\n"
    "  --bind NAME=V      value of any other symbol of the graph (repeatable)\n"
    "  --seed S           seed of the inputs, parameter values and samples (default 0)\n"
    "  --tol X            largest error allowed (default 1e-6)\n"
    "  --samples N        elements checked per parameter (default 4)\n"
    "  --jobs N           threads for the finite differences (default: one per CPU)\n"
    "  --freeze GLOB      freeze the parameters whose name matches (repeatable)\n"
    "  --break-rule OP    testing aid: scale the gradient rule of OP by 1.25, so that\n"
    "                     gradcheck must fail and name it\n"
    "\n"
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

/* ---------------------------------------------------------------- flags */

static int take_double(const char *flag, const char *v, double *out)
{
    char *end;
    if (!v)
        return 1;
    *out = strtod(v, &end);
    if (*end || !(*out > 0))
        return cli_usage_error("gradcheck", "%s expects a positive number, got '%s'", flag, v);
    return -1;
}

static int take_int(const char *flag, const char *v, long long *out)
{
    if (!v || !cli_parse_int("gradcheck", flag, v, out))
        return 1;
    if (*out < 0 || (*out == 0 && strcmp(flag, "--seed")))
        return cli_usage_error("gradcheck", "%s must be positive, got '%s'", flag, v);
    return -1;
}

static int take_freeze(GcArgs *a, const char *v)
{
    if (!v)
        return 1;
    if (a->train.nfreeze == PASS_MAX_FREEZE)
        return cli_usage_error("gradcheck", "at most %d --freeze patterns", PASS_MAX_FREEZE);
    a->train.freeze[a->train.nfreeze++] = v;
    return -1;
}

static int take_break(GcArgs *a, const char *v)
{
    if (!v)
        return 1;
    if (ir_op_lookup(v) == OP_COUNT)
        return cli_usage_error("gradcheck", "--break-rule: unknown op '%s' (did you mean '%s'?)",
                               v, ir_op_nearest(v));
    a->train.broken_rule = v;
    return -1;
}

/* Returns -1 to go on, or an exit code. */
static int take_arg(char **argv, int argc, int *i, GcArgs *a)
{
    const char *arg = argv[*i], *v = NULL;
    if (cli_is_help(arg))
        return cli_help("gradcheck");
    if (cli_take_set(argv, argc, i, &a->model))
        return a->model.bad ? 1 : -1;
    int r = cli_bind_flag("gradcheck", argv, argc, i, &a->bind);
    if (r >= 0)
        return r ? r : -1;
    if (cli_flag_value(argv, argc, i, "--seed", &v))
        return take_int("--seed", v, &a->seed);
    if (cli_flag_value(argv, argc, i, "--samples", &v))
        return take_int("--samples", v, &a->samples);
    if (cli_flag_value(argv, argc, i, "--jobs", &v))
        return take_int("--jobs", v, &a->jobs);
    if (cli_flag_value(argv, argc, i, "--tol", &v))
        return take_double("--tol", v, &a->tol);
    if (cli_flag_value(argv, argc, i, "--freeze", &v))
        return take_freeze(a, v);
    if (cli_flag_value(argv, argc, i, "--break-rule", &v))
        return take_break(a, v);
    if (arg[0] == '-' && arg[1])
        return cli_usage_error("gradcheck", "unknown flag '%s'", arg);
    if (a->in)
        return cli_usage_error("gradcheck", "more than one model ('%s' and '%s')", a->in, arg);
    a->in = arg;
    return -1;
}

static int parse_args(int argc, char **argv, GcArgs *a)
{
    for (int i = 1; i < argc; i++) {
        int r = take_arg(argv, argc, &i, a);
        if (r >= 0)
            return r;
    }
    if (!a->in)
        return cli_usage_error("gradcheck", "missing input: a model .json file or a .gir file");
    return -1;
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
