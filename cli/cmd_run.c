/* cmd_run.c — `gradc run`: one forward on seeded random inputs.
 *
 * The command loads a model (or .gir), runs the pass pipeline, compiles
 * the graph at a binding of its symbols, fills the params from their init
 * specs and the inputs with seeded random data, runs once and prints a
 * summary of every output.  It is the smallest end-to-end use of the
 * runtime, and the pieces it needs are shared with `gradc verify` and
 * `gradc bench` (declared in cli.h):
 *
 *   binding   B from --batch, T from --seq, any symbol from --bind
 *             NAME=V; an unbound symbol is an error that names it and the
 *             flag.  A default T is capped at the config's context_length
 *             and at the rows of a table gathered by positions (an iota
 *             over T); a value given past either is an error, which names
 *             the table (ir_index_check_binding);
 *   inputs    integer inputs are uniform in [0, V) where V is the size of
 *             the table that a gather indexes with them (or the logits'
 *             width for cross_entropy targets, else config vocab_size),
 *             read from the graph before `decompose` (ir_index_use), and
 *             checked against that range when set;
 *             float inputs are standard normal, except `lr` (1e-3) and
 *             `step` (1); bool inputs are fair coins.  State inputs (an
 *             output of the same name writes them back) start at zero, or
 *             with `state_random` at small values (AdamW moments: m normal
 *             with std 1e-3, v uniform in [1e-6, 2e-6], so that an update
 *             is a smooth function of the gradient).
 */
#include "cli.h"
#include "ir/cost.h"
#include "ir/outfile.h"
#include "ir/rng.h"
#include "passes/pass.h"
#include "runtime/rt_exec.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    CLI_FLAGS_EXEC(RunArgs, x),
    {"--passes", CLI_STR, CLI_AT(RunArgs, x.passes), .meta = "=LIST",
     .def = "the default pipeline; '' for none", .help = "the pass pipeline before compiling"},
    {0}};

const CliSpec cmd_run_spec = {"run", usage, flags, tail, CLI_ONE_INPUT(RunArgs, x.in)};

CliExecArgs cli_exec_args_default(void)
{
    return (CliExecArgs){.bind = {.batch = 2, .seq = 64}, .seed = 42};
}

/* ---------------------------------------------------------------- binding */

static bool config_int(const FeModel *m, const char *key, int64_t *v)
{
    double d;
    if (!m || !fe_config(m, key, &d) || d < 1)
        return false;
    *v = (int64_t)d;
    return true;
}

/* A symbol at its default: no larger than the rows of a table a gather
 * reads with an iota over it (and T no larger than context_length). */
static int64_t cap_default(const IrGraph *g, int s, const FeModel *m, int64_t v)
{
    int64_t ctx, lim = ir_index_sym_limit(g, s, NULL);
    if (!strcmp(g->sym[s], "T") && config_int(m, "context_length", &ctx) && v > ctx)
        v = ctx;
    return lim > 0 && v > lim ? lim : v;
}

static bool bind_seq(const FeModel *m, const CliBindArgs *b, int64_t *T, IrError *err)
{
    int64_t ctx;
    *T = b->seq;
    if (!b->seq_given || !config_int(m, "context_length", &ctx) || *T <= ctx)
        return true;
    ir_error(err, "--seq %lld is longer than the model's context_length (%lld)", b->seq,
             (long long)ctx);
    ir_error_hint(err, "use --seq %lld or less, or --set context_length=%lld", (long long)ctx,
                  b->seq);
    return false;
}

static bool bind_one(const IrGraph *g, int s, const FeModel *m, const CliBindArgs *b,
                     int64_t *binding, IrError *err)
{
    for (int k = 0; k < b->n; k++)
        if (!strcmp(b->name[k], g->sym[s]))
            return binding[s] = b->value[k], true;
    if (!strcmp(g->sym[s], "B"))
        return binding[s] = b->batch, true;
    bool seq = !strcmp(g->sym[s], "T") || b->others_seq;
    if (seq && !bind_seq(m, b, &binding[s], err))
        return false;
    if (seq && !b->seq_given)
        binding[s] = cap_default(g, s, m, binding[s]);
    if (seq)
        return true;
    ir_error(err, "symbol '%s' of the graph has no value", g->sym[s]);
    ir_error_hint(err, "give it one with --bind %s=VALUE (B and T come from --batch and --seq)",
                  g->sym[s]);
    return false;
}

static bool check_binds(const IrGraph *g, const CliBindArgs *b, IrError *err)
{
    for (int k = 0; k < b->n; k++)
        if (ir_graph_find_sym(g, b->name[k]) < 0) {
            ir_error(err, "--bind %s: the graph has no symbol '%s'", b->name[k], b->name[k]);
            ir_error_hint(err, "the graph's symbols are the open dims of its inputs (B, T, ...)");
            return false;
        }
    return true;
}

/* A binding past what gradc's 64-bit counts hold is refused with its
 * figures, rather than printed saturated (check said "ok" at 2^61) or
 * wrapped around (plan printed negative bytes).  The limits leave room for
 * a train step, which holds about 14 times the forward's values and 3
 * times its FLOPs: 2^56 bytes of values and 2^60 FLOPs in one forward. */
static bool check_sizes(const IrGraph *g, const int64_t *binding, IrError *err)
{
    double bytes = ir_cost_activation_bytes_f(g, binding), flops = ir_cost_flops_f(g, binding);
    if (bytes < 0x1p56 && flops < 0x1p60)
        return true;
    char at[300] = "";
    for (int s = 0, k = 0; s < g->nsym && k < 260; s++)
        k += snprintf(at + k, sizeof at - (size_t)k, "%s%s=%lld", s ? " " : "", g->sym[s],
                      (long long)binding[s]);
    ir_error(err, "at %s one forward holds %.3g bytes of values and takes %.3g FLOPs: more "
             "than gradc counts (2^56 bytes, 2^60 FLOPs)", at, bytes, flops);
    ir_error_hint(err, "use a smaller --batch, --seq or --bind value");
    return false;
}

/* No gather by position past its table; the hint names the flag to lower. */
static bool check_tables(const IrGraph *g, const int64_t *binding, IrError *err)
{
    int s;
    int64_t max;
    if (ir_index_check_binding(g, binding, &s, &max, err))
        return true;
    if (s >= 0 && (!strcmp(g->sym[s], "T") || !strcmp(g->sym[s], "B")))
        ir_error_hint(err, "use --%s %lld or less, or give the table more rows in the model",
                      g->sym[s][0] == 'T' ? "seq" : "batch", (long long)max);
    else if (s >= 0)
        ir_error_hint(err, "use --bind %s=%lld or less, or give the table more rows in the model",
                      g->sym[s], (long long)max);
    return false;
}

bool cli_bind(const IrGraph *g, const FeModel *m, const CliBindArgs *b, int64_t *binding,
              IrError *err)
{
    memset(binding, 0, sizeof(int64_t) * IR_MAX_SYMS);
    bool ok = check_binds(g, b, err);
    for (int s = 0; ok && s < g->nsym; s++)
        ok = bind_one(g, s, m, b, binding, err);
    ok = ok && check_tables(g, binding, err) && check_sizes(g, binding, err);
    if (!ok && m && m->path)
        ir_error_where(err, "%s", m->path);
    return ok;
}

int cli_check_seq(const char *path, const CliModelArgs *m, long long batch, long long seq)
{
    IrError err = {0};
    FeModel *model = NULL;
    IrGraph *g = cli_load(path, m, &model, &err);
    int64_t ctx = 0, binding[IR_MAX_SYMS];
    CliBindArgs b = {.batch = batch, .seq = seq, .seq_given = true};
    bool bindable = g && (seq > 0 || config_int(model, "context_length", &ctx));
    for (int s = 0; bindable && s < g->nsym; s++)
        bindable = !strcmp(g->sym[s], "B") || !strcmp(g->sym[s], "T");
    if (bindable && seq <= 0)
        b.seq = ctx;
    /* what train cannot bind, or cannot load, it reports itself */
    bool ok = !bindable || cli_bind(g, model, &b, binding, &err);
    if (g)
        cli_unload(g, model);
    return ok ? -1 : cli_fail(&err);
}

/* "B=2 T=64" */
void cli_print_binding(const IrGraph *g, const int64_t *binding, FILE *f)
{
    for (int s = 0; s < g->nsym; s++)
        fprintf(f, "%s%s=%lld", s ? " " : "", g->sym[s], (long long)binding[s]);
    if (!g->nsym)
        fprintf(f, "(no symbols)");
}

/* ---------------------------------------------------------------- random inputs */

static bool is_state(const IrGraph *g, const IrNode *x)
{
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, x->name))
            return true;
    return false;
}

static void fill_state(const char *name, float *x, int64_t n, IrRng *r)
{
    bool second = strstr(name, ".v.") || !strncmp(name, "v.", 2);
    for (int64_t k = 0; k < n; k++)
        x[k] = second ? (float)(1e-6 * (1 + ir_rng_uniform(r)))
                      : (float)(1e-3 * ir_rng_normal(r));
}

static void fill_float(const IrGraph *g, const IrNode *x, float *v, int64_t n, IrRng *r,
                       bool state_random)
{
    bool state = is_state(g, x);
    for (int64_t k = 0; k < n && !state; k++)
        v[k] = !strcmp(x->name, "lr") ? 1e-3f : !strcmp(x->name, "step") ? 1.0f
                                                                         : (float)ir_rng_normal(r);
    if (state && state_random)
        fill_state(x->name, v, n, r);
}

static void fill_int(const FeModel *m, const CliInput *in, int32_t *v, int64_t n, IrRng *r)
{
    const IrNode *x = in->node;
    int64_t range = in->use.range;
    if (range <= 0 && !config_int(m, "vocab_size", &range))
        range = 2;
    for (int64_t k = 0; k < n; k++)
        v[k] = !strcmp(x->name, "step") ? 1 : (int32_t)(ir_rng_next(r) % (uint64_t)range);
}

static void fill_input(const IrGraph *g, const FeModel *m, CliInput *in,
                       uint64_t seed, bool state_random)
{
    IrRng r;
    ir_rng_init(&r, ir_rng_stream(seed ^ 0x1badc0deULL, in->node->name));
    if (in->node->dtype == DT_F32)
        fill_float(g, in->node, in->data, in->numel, &r, state_random);
    else if (in->node->dtype == DT_I32)
        fill_int(m, in, in->data, in->numel, &r);
    else
        for (int64_t k = 0; k < in->numel; k++)
            ((uint8_t *)in->data)[k] = (uint8_t)(ir_rng_next(&r) & 1);
}

static int64_t node_numel(const IrNode *n, const int64_t *binding, int64_t *dims)
{
    int64_t numel = 1;
    for (int d = 0; d < n->shape.rank; d++) {
        dims[d] = ir_dim_eval(n->shape.d[d], binding);
        numel *= dims[d];
    }
    return numel;
}

void cli_make_inputs(const IrGraph *g, const FeModel *m, const int64_t *binding, uint64_t seed,
                     bool state_random, CliInputs *out)
{
    memset(out, 0, sizeof *out);
    out->in = calloc((size_t)g->nnodes + 1, sizeof *out->in);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_INPUT)
            continue;
        CliInput *in = &out->in[out->n++];
        in->node = n;
        in->numel = node_numel(n, binding, in->dim);
        in->bytes = in->numel * (int64_t)ir_dtype_size(n->dtype);
        in->data = calloc((size_t)in->bytes + 1, 1);
        in->state = is_state(g, n);
        in->use = ir_index_use(g, n, binding);
        fill_input(g, m, in, seed, state_random);
    }
}

void cli_free_inputs(CliInputs *in)
{
    for (int k = 0; in->in && k < in->n; k++)
        free(in->in[k].data);
    free(in->in);
    memset(in, 0, sizeof *in);
}

bool cli_set_inputs(RtExec *ex, const CliInputs *in, IrError *err)
{
    for (int k = 0; k < in->n; k++) {
        const CliInput *x = &in->in[k];
        if (x->node->dtype == DT_I32 &&
            !ir_index_check_values(&x->use, x->node->name, x->data, x->numel, err))
            return false;
        if (!rt_exec_set_input(ex, x->node->name, x->data, x->bytes, err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- summaries */

static double value_at(IrDType dt, const void *data, int64_t k)
{
    if (dt == DT_F32)
        return ((const float *)data)[k];
    if (dt == DT_I32)
        return ((const int32_t *)data)[k];
    return ((const uint8_t *)data)[k];
}

static void print_stats(IrDType dt, const void *data, int64_t n, FILE *f)
{
    double sum = 0, sq = 0, lo = DBL_MAX, hi = -DBL_MAX;
    for (int64_t k = 0; k < n; k++) {
        double v = value_at(dt, data, k);
        sum += v;
        sq += v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = n ? sum / (double)n : 0, var = n ? sq / (double)n - mean * mean : 0;
    fprintf(f, "    mean %.6g  std %.6g  min %.6g  max %.6g\n", mean, sqrt(var > 0 ? var : 0),
            n ? lo : 0, n ? hi : 0);
}

void cli_print_output(const IrGraph *g, const IrOutput *o, const int64_t *binding,
                      const void *data, int64_t numel, FILE *f)
{
    char shape[256];
    int64_t dims[IR_MAX_RANK];
    node_numel(o->node, binding, dims);
    IrShape s = ir_shape_ints(o->node->shape.rank, dims);
    ir_shape_str(&s, g->sym, shape, sizeof shape);
    fprintf(f, "  %s: %s%s\n", o->name, ir_dtype_name(o->node->dtype), shape);
    print_stats(o->node->dtype, data, numel, f);
    fprintf(f, "    first:");
    for (int64_t k = 0; k < numel && k < 8; k++)
        fprintf(f, " %.6g", value_at(o->node->dtype, data, k));
    fprintf(f, "%s\n", numel > 8 ? " ..." : "");
}

/* ---------------------------------------------------------------- pipeline */

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the pass pipeline (passes, else the llvm stage's: the graph that
 * codegen compiles) with the binding the graph will run at (NULL: the
 * passes' nominal one), so that schedule and memplan weigh the real sizes;
 * returns an exit code or -1 to go on. */
int cli_run_passes(IrGraph *g, const char *passes, const int64_t *binding, IrError *err)
{
    PassCtx ctx = pass_ctx_default(err);
    ctx.binding = binding;
    if (pass_run_compile(g, passes, false, &ctx))
        return -1;
    ir_error_print(err, stderr);
    return ctx.internal ? 2 : 1;
}

RtExec *cli_exec_new(const IrGraph *g, const int64_t *binding, const CliExecArgs *a,
                     bool timing, IrError *err)
{
    RtExecOptions opt = {.nthreads = (int)a->threads, .timing = timing,
                         .no_cache = a->no_cache};
    return rt_exec_new(g, binding, &opt, err);
}

void cli_print_exec(const RtExec *ex, FILE *f)
{
    const RtExecStats *st = rt_exec_stats(ex);
    fprintf(f, "compile: %.1f ms (%s), %d kernels\n", st->compile_ms,
            st->cache_hit ? "cache hit" : "compiled", st->nkernels);
    fprintf(f, "memory: arena %.2f MiB planned (%.2f MiB without reuse), params %.2f MiB, "
            "state %.2f MiB, inputs %.2f MiB",
            st->peak_bytes / 1048576.0, st->naive_bytes / 1048576.0,
            st->param_bytes / 1048576.0, st->state_bytes / 1048576.0,
            st->input_bytes / 1048576.0);
    if (st->pinned_bytes)
        fprintf(f, "; %.2f MiB of updates written in place", st->pinned_bytes / 1048576.0);
    fprintf(f, "\n");
    fprintf(f, "threads: %d (OpenBLAS core %s)\n", st->nthreads,
            st->blas_core ? st->blas_core : "?");
}

/* ---------------------------------------------------------------- dump --stage=llvm|asm */

/* text to path through ir/outfile.c (atomic over a regular file, in place
 * into a device); returns an exit code */
static int write_text_atomic(const char *text, const char *path)
{
    IrError err = {0};
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "output", &err);
    if (!f)
        return cli_fail(&err);
    fputs(text, f);
    return ir_outfile_commit(&o, &err) ? 0 : cli_fail(&err);
}

int cli_dump_kernels(const IrGraph *g, const FeModel *m, const CliExecArgs *a, bool want_asm,
                     const char *out)
{
    IrError err = {0};
    int64_t binding[IR_MAX_SYMS];
    if (!cli_bind(g, m, &a->bind, binding, &err))
        return cli_fail(&err);
    CgOptions co = {.no_cache = a->no_cache, .keep_module = true};
    CgProgram *p = cg_program_compile(g, binding, &co, &err);
    if (!p)
        return cli_fail(&err);
    const char *text = want_asm ? p->asm_text : p->llvm_ir;
    int r = 0;
    if (out && strcmp(out, "-"))
        r = write_text_atomic(text ? text : "", out);
    else
        fputs(text ? text : "", stdout);
    cg_program_free(p);
    return r;
}

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
