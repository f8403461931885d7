/* cmd_check.c — `gradc check`: load and verify a model, print what it costs.
 *
 * The first thing to run on a new model file.  It loads the model (JSON
 * through the frontend with --set overrides, or IR text), runs the
 * verifier, and prints the graph's inputs and outputs, its parameter count
 * (the number to compare with PyTorch's sum(p.numel())), the forward FLOPs
 * per token and a rough memory estimate.  Costs come from ir/cost.c under
 * a binding of the symbols: B is --batch (1), every other symbol is --seq,
 * which defaults to the config key context_length.
 */
#include "cli.h"
#include "passes/pass.h"
#include "ir/cost.h"

#include <stdio.h>
#include <string.h>

const char cmd_check_usage[] =
    "usage: gradc check MODEL.json|FILE.gir|- [--set k=v ...] [--batch B] [--seq T] [--params]\n"
    "\n"
    "Loads a model, verifies its graph and prints a summary: inputs and outputs\n"
    "with their shapes, the parameter count, the forward FLOPs per token and a\n"
    "rough memory estimate.  A JSON model goes through the frontend\n"
    "(docs/graph-format.md); a .gir file (or - for stdin) is IR text.\n"
    "\n"
    "flags:\n"
    "  --set k=v     override a config value (repeatable), e.g. --set n_layers=2\n"
    "  --batch B     batch size for the FLOP and memory estimates (default 1)\n"
    "  --seq T       sequence length for them; every symbol other than B takes\n"
    "                this value (default: config key context_length, else 128)\n"
    "  --params      also list every parameter with its shape and init\n"
    "\n"
    "output (gpt2-small):\n"
    "  params: 163,009,536 (trainable 163,009,536)   elements of all parameters\n"
    "  optimizer state: 1,304,076,288 bytes (...)    AdamW m and v (f32) of the trainable ones\n"
    "  forward FLOPs/token: ...                      matmul 2*M*N*K, see ir/cost.h\n"
    "  memory estimate: ...                          params + every activation, no reuse\n"
    "\n"
    "examples:\n"
    "  gradc check models/gpt2-small.json\n"
    "  gradc check models/gpt2-small.json --set tie_embeddings=1\n"
    "  gradc check models/gpt-mini.json --batch 8 --seq 64 --params\n"
    "\n"
    "exit codes: 0 the model is valid, 1 a user error (the message names the file\n"
    "and the place, e.g. models/x.json: /modules/block/nodes/3), 2 internal error\n";

typedef struct CheckArgs {
    const char *path;
    CliModelArgs model;
    long long batch, seq;      /* seq 0: not given */
    bool list;
} CheckArgs;

/* Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, CheckArgs *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_help(argv[i]))
            return cli_help("check");
        if (cli_take_set(argv, argc, &i, &a->model)) {
            if (a->model.bad)
                return 1;
        } else if (cli_flag_value(argv, argc, &i, "--batch", &v)) {
            if (!cli_parse_int("check", "--batch", v, &a->batch) || a->batch < 1)
                return v ? cli_usage_error("check", "--batch must be a positive integer") : 1;
        } else if (cli_flag_value(argv, argc, &i, "--seq", &v)) {
            if (!cli_parse_int("check", "--seq", v, &a->seq) || a->seq < 1)
                return v ? cli_usage_error("check", "--seq must be a positive integer") : 1;
        } else if (!strcmp(argv[i], "--params"))
            a->list = true;
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error("check", "unknown flag '%s'", argv[i]);
        else if (a->path)
            return cli_usage_error("check", "one model at a time ('%s' and '%s')", a->path,
                                   argv[i]);
        else
            a->path = argv[i];
    }
    return a->path ? -1 : cli_usage_error("check", "missing MODEL.json or FILE.gir");
}

/* ---------------------------------------------------------------- printing */

/* 163009536 -> "163,009,536" */
static const char *commas(long long v, char *buf, size_t cap)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v), k = 0;
    size_t o = 0;
    if (v < 0 && o + 1 < cap)
        buf[o++] = '-';
    for (int i = 0; i < n && o + 2 < cap; i++, k++) {
        if (k && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

static double mib(long long bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void print_io(const IrGraph *g)
{
    char s[256];
    printf("inputs:\n");
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT) {
            ir_shape_str(&g->nodes[i]->shape, g->sym, s, sizeof s);
            printf("  %s: %s%s\n", g->nodes[i]->name, ir_dtype_name(g->nodes[i]->dtype), s);
        }
    printf("outputs:\n");
    for (int i = 0; i < g->nout; i++) {
        ir_shape_str(&g->outs[i].node->shape, g->sym, s, sizeof s);
        printf("  %s: %s%s\n", g->outs[i].name, ir_dtype_name(g->outs[i].node->dtype), s);
    }
}

static void print_param_list(const IrGraph *g)
{
    char s[256];
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            continue;
        ir_shape_str(&n->shape, g->sym, s, sizeof s);
        const char *init = ir_node_str(n, ATTR_INIT, "normal");
        printf("  %-44s %s%-16s %s", n->name, ir_dtype_name(n->dtype), s, init);
        if (!strcmp(init, "normal"))
            printf("(std=%g)", ir_node_float(n, ATTR_STD, 0.02));
        else if (!strcmp(init, "uniform"))
            printf("(bound=%g)", ir_node_float(n, ATTR_BOUND, 0.0));
        printf("%s\n", ir_node_int(n, ATTR_TRAINABLE, 1) ? "" : " frozen");
    }
}

static void print_params(const IrGraph *g, bool list)
{
    IrParamStats ps = ir_cost_params(g);
    char a[32], b[32];
    printf("params: %s (trainable %s)\n", commas(ps.elems, a, sizeof a),
           commas(ps.trainable, b, sizeof b));
    if (list)
        print_param_list(g);
    printf("param tensors: %d\n", ps.tensors);
    printf("param bytes: %.1f MiB (f32)\n", mib(ps.bytes));
    int64_t trainable, state;
    PassCtx ctx = pass_ctx_default(NULL);
    pass_train_stats(g, &ctx.train, &trainable, &state);
    if (state >= 0)
        printf("optimizer state: %s bytes (%.1f MiB: AdamW m and v, f32, per trainable param)\n",
               commas(state, a, sizeof a), mib(state));
}

/* B takes --batch; every other symbol takes the sequence length. */
static long long bind_symbols(const IrGraph *g, const FeModel *m, const CheckArgs *a,
                              int64_t *bind)
{
    double ctx;
    long long T = a->seq ? a->seq : m && fe_config(m, "context_length", &ctx) && ctx >= 1
                                        ? (long long)ctx : 128;
    for (int s = 0; s < IR_MAX_SYMS; s++)
        bind[s] = s < g->nsym && !strcmp(g->sym[s], "B") ? a->batch : T;
    printf("binding:");
    for (int s = 0; s < g->nsym; s++)
        printf(" %s=%lld", g->sym[s], (long long)bind[s]);
    printf("%s\n", g->nsym ? "" : " (no symbols)");
    return T;
}

static void print_costs(const IrGraph *g, const FeModel *m, const CheckArgs *a)
{
    int64_t bind[IR_MAX_SYMS];
    long long T = bind_symbols(g, m, a, bind);
    long long tokens = a->batch * T;
    int64_t flops = ir_cost_flops(g, bind);
    IrParamStats ps = ir_cost_params(g);
    int64_t act = ir_cost_activation_bytes(g, bind);
    char f[32];
    printf("forward FLOPs/token: %s (%.2f GFLOP)\n", commas(flops / tokens, f, sizeof f),
           (double)flops / (double)tokens / 1e9);
    printf("memory estimate: %.1f MiB (params %.1f MiB + activations %.1f MiB, no reuse)\n",
           mib(ps.bytes + act), mib(ps.bytes), mib(act));
}

int cmd_check(int argc, char **argv)
{
    CheckArgs a;
    memset(&a, 0, sizeof a);
    a.batch = 1;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    IrError err = {0};
    FeModel *m = NULL;
    IrGraph *g = cli_load(a.path, &a.model, &m, &err);
    if (!g)
        return cli_fail(&err);
    if (!ir_verify(g, &err)) {
        ir_error_where(&err, "%s", a.path);
        rc = cli_fail(&err);
    } else {
        printf("graph: %s (%s)\nnodes: %d\n", g->name, a.path, g->nnodes);
        print_io(g);
        print_params(g, a.list);
        print_costs(g, m, &a);
        printf("ok\n");
        rc = 0;
    }
    cli_unload(g, m);
    return rc;
}
