/* cmd_check.c — `gradc check`: load and verify a model, print what it costs.
 *
 * The first thing to run on a new model file.  It loads the model (JSON
 * through the frontend with --set overrides, or IR text), runs the
 * verifier, and prints the graph's inputs and outputs, its parameter count
 * (the number to compare with PyTorch's sum(p.numel())), the forward FLOPs
 * per token (per example for a graph without T) and a rough memory
 * estimate.  Costs come from ir/cost.c under a binding of the symbols
 * (cli_bind, as every command binds): B is --batch (1), a symbol named by
 * --bind NAME=V is V, every other symbol is --seq, which defaults to the
 * config key context_length, capped at the rows of a table that a gather
 * reads with an iota over the symbol.  A binding that makes such a gather
 * read past its table is an error.
 */
#include "cli.h"
#include "passes/pass.h"
#include "ir/cost.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: gradc check MODEL.json|FILE.gir|- [--set k=v ...] [--batch B] [--seq T]\n"
    "                   [--bind NAME=V ...] [--params] [--lora-rank R ...]\n"
    "\n"
    "Loads a model, verifies its graph and prints a summary: inputs and outputs\n"
    "with their shapes, the parameter count, the forward FLOPs per token (per\n"
    "example when the graph has no sequence symbol T) and a rough memory\n"
    "estimate.  A JSON model goes through the frontend (docs/graph-format.md); a\n"
    ".gir file (or - for stdin) is IR text.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "output (gpt2-small):\n"
    "  params: 163,009,536 (trainable 163,009,536)   elements of all parameters\n"
    "  trainable: 163,009,536                        of them, the ones that train (not\n"
    "                                                frozen; with --lora-rank the adapters)\n"
    "  optimizer state: 1,304,076,288 bytes (...)    AdamW m and v (f32) of the trainable ones\n"
    "  binding: B=1 T=1024                           the sizes of the estimates\n"
    "  forward FLOPs/token: ...                      matmul 2*M*N*K, see ir/cost.h\n"
    "                                                (FLOPs/example without T)\n"
    "  memory estimate: ...                          params + every activation, no reuse\n"
    "\n"
    "examples:\n"
    "  gradc check models/gpt2-small.json\n"
    "  gradc check models/gpt2-small.json --set tie_embeddings=1\n"
    "  gradc check models/gpt-mini.json --batch 8 --seq 64 --params\n"
    "  gradc check models/gpt2-small.json --lora-rank 16 --lora-alpha 16\n"
    "  gradc check encdec.json --bind S=64 --seq 32\n"
    "\n"
    "exit codes: 0 the model is valid, 1 a user error (the message names the file\n"
    "and the place, e.g. models/x.json: /modules/block/nodes/3), 2 internal error\n";

typedef struct CheckArgs {
    const char *path;
    CliModelArgs model;
    CliBindArgs bind;          /* --batch, --seq, --bind */
    bool list;
} CheckArgs;

static const CliFlag flags[] = {
    CLI_FLAG_SET(CheckArgs, model),
    CLI_FLAGS_LORA(CheckArgs, model.lora),
    {"--batch", CLI_INT, CLI_AT(CheckArgs, bind.batch), .min = 1, .meta = "B", .def = "1",
     .help = "batch size for the FLOP and memory estimates"},
    {"--seq", CLI_CALL, CLI_AT(CheckArgs, bind), .fn = cli_seq_fn, .meta = "T",
     .def = "config key context_length, else 128; a default is capped at the rows of a "
            "positional table, one given past them is an error",
     .help = "sequence length for them; every symbol other than B without a --bind takes "
             "this value"},
    {"--bind", CLI_CALL, CLI_AT(CheckArgs, bind), .fn = cli_bind_fn, .meta = "NAME=V",
     .help = "the value of one symbol, e.g. --bind S=64 (repeatable)"},
    {"--params", CLI_TRUE, CLI_AT(CheckArgs, list),
     .help = "also list every parameter with its shape and init"},
    {0}};

const CliSpec cmd_check_spec = {"check", usage, flags, tail, offsetof(CheckArgs, path),
                                "one model at a time ('%s' and '%s')", NULL};

static int parse_args(int argc, char **argv, CheckArgs *a)
{
    int r = cli_parse(&cmd_check_spec, argc, argv, a);
    return r >= 0 || a->path ? r : cli_usage_error("check", "missing MODEL.json or FILE.gir");
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
    printf("trainable: %s\n", commas(ps.trainable, b, sizeof b));
    printf("param tensors: %d\n", ps.tensors);
    printf("param bytes: %.1f MiB (f32)\n", mib(ps.bytes));
    int64_t trainable, state;
    PassCtx ctx = pass_ctx_default(NULL);
    pass_train_stats(g, &ctx.train, &trainable, &state);
    if (state >= 0)
        printf("optimizer state: %s bytes (%.1f MiB: AdamW m and v, f32, per trainable param)\n",
               commas(state, a, sizeof a), mib(state));
}

/* B takes --batch, a symbol named by --bind its value, every other symbol
 * the sequence length (cli_bind with others_seq): --seq, else the config's
 * context_length, else 128, capped by the tables of a positional gather. */
static bool bind_symbols(const IrGraph *g, const FeModel *m, CheckArgs *a, int64_t *bind,
                         IrError *err)
{
    double ctx;
    if (!a->bind.seq_given)
        a->bind.seq = m && fe_config(m, "context_length", &ctx) && ctx >= 1 ? (long long)ctx
                                                                            : 128;
    return cli_bind(g, m, &a->bind, bind, err);
}

/* FLOPs per token when the graph has a sequence (T), else per example (B),
 * else per run: an MLP has no tokens. */
static void print_flops(const IrGraph *g, const int64_t *bind, int64_t flops)
{
    int B = ir_graph_find_sym(g, "B"), T = ir_graph_find_sym(g, "T");
    int64_t per = (B >= 0 ? bind[B] : 1) * (T >= 0 ? bind[T] : 1);
    const char *unit = T >= 0 ? "/token" : B >= 0 ? "/example" : " (one run)";
    char f[32];
    printf("forward FLOPs%s: %s (%.2f GFLOP)\n", unit, commas(flops / per, f, sizeof f),
           (double)flops / (double)per / 1e9);
}

static void print_costs(const IrGraph *g, const int64_t *bind)
{
    IrParamStats ps = ir_cost_params(g);
    int64_t act = ir_cost_activation_bytes(g, bind);
    printf("binding:");
    for (int s = 0; s < g->nsym; s++)
        printf(" %s=%lld", g->sym[s], (long long)bind[s]);
    printf("%s\n", g->nsym ? "" : " (no symbols)");
    print_flops(g, bind, ir_cost_flops(g, bind));
    printf("memory estimate: %.1f MiB (params %.1f MiB + activations %.1f MiB, no reuse)\n",
           mib(ps.bytes + act), mib(ps.bytes), mib(act));
}

int cmd_check(int argc, char **argv)
{
    CheckArgs a;
    memset(&a, 0, sizeof a);
    a.bind.batch = 1;
    a.bind.others_seq = true;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    IrError err = {0};
    FeModel *m = NULL;
    IrGraph *g = cli_load(a.path, &a.model, &m, &err);
    if (!g)
        return cli_fail(&err);
    int64_t bind[IR_MAX_SYMS];
    if (!ir_verify(g, &err)) {
        ir_error_where(&err, "%s", a.path);
        rc = cli_fail(&err);
    } else if (!bind_symbols(g, m, &a, bind, &err)) {
        ir_error_where(&err, "%s", a.path);
        rc = cli_fail(&err);
    } else {
        printf("graph: %s (%s)\nnodes: %d\n", g->name, a.path, g->nnodes);
        print_io(g);
        print_params(g, a.list);
        print_costs(g, bind);
        printf("ok\n");
        rc = 0;
    }
    cli_unload(g, m);
    return rc;
}
