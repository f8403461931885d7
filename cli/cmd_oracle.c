/* cmd_oracle.c — `gradc oracle-step`: the numbers that PyTorch checks.
 *
 * A diagnostic command for tests/oracle/ (and anyone comparing gradc with
 * another framework): it reads weights and a batch from a safetensors file,
 * runs gradc's compiled programs on exactly those values, and writes what
 * they computed to another safetensors file.
 *
 *   forward     the model graph after the pass pipeline, once: every output
 *               of the graph under its own name (logits).
 *   --steps N   also the train step (autodiff, optimizer with the --clip,
 *               --weight-decay, ... flags, then the pipeline), run N times
 *               on the same batch from the file's weights and zero AdamW
 *               state, with lr = the file's `lr`[s-1] and step = s:
 *                 loss.s       the loss of step s (s = 1..N)
 *                 grad.P       every gradient of step 1 (before any update),
 *                 grad_norm    and their global norm (when clipping)
 *                 after.P      every param after step N (the write-back)
 *
 * Input file: every param of the graph by name (f32, the graph's shape),
 * every input (idx: i32 [B,T]; targets: i32 [B,T] with --steps; any other
 * input of a small graph), and with --steps `lr`, f32 [N].  Symbols (B, T)
 * are bound from the inputs' shapes.  A param or input that is missing, a
 * shape that does not match and a tensor that nothing uses are all errors,
 * so a naming mismatch between the two sides cannot pass unnoticed.
 *
 * Both files go through the runtime's safetensors code (rt_ckpt.h).
 */
#include "cli.h"
#include "passes/pass.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc oracle-step MODEL.json|FILE.gir --in IN.safetensors --out OUT.safetensors\n"
    "                         [--steps N] [--set k=v ...] [--passes=LIST] [--threads N]\n"
    "                         [--clip X] [--weight-decay X] [--beta1 X] [--beta2 X] [--eps X]\n"
    "                         [--no-cache]\n"
    "\n"
    "Diagnostic command of the PyTorch oracle test (tests/oracle/README.md).  Loads\n"
    "every param and input of the graph from IN (symbols such as B and T are bound\n"
    "from the inputs' shapes), runs the compiled forward graph once and writes its\n"
    "outputs to OUT.  With --steps N it also compiles the train step (autodiff,\n"
    "AdamW) and runs it N times on the same batch, starting from IN's weights and\n"
    "zero optimizer state, with lr = IN's `lr`[s-1] (f32 [N]) and step = s, and\n"
    "writes loss.s for every step, grad.P and grad_norm of step 1 and after.P,\n"
    "every param after step N.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "example:\n"
    "  gradc oracle-step models/gpt-mini.json --set drop_rate=0 --in w.safetensors \\\n"
    "      --out r.safetensors --steps 3 --clip 0.5\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

/* ---------------------------------------------------------------- files */

/* The results: copies of the values, since the writer borrows its data. */
typedef struct Results {
    RtCkptWriter *w;
    void **buf;
    int n, cap;
} Results;

static RtDType rt_dtype_of(IrDType dt)
{
    return dt == DT_F32 ? RT_DT_F32 : dt == DT_I32 ? RT_DT_I32 : RT_DT_U8;
}

static bool dtype_matches(IrDType dt, RtDType t)
{
    return t == rt_dtype_of(dt) || (dt == DT_BOOL && t == RT_DT_BOOL);
}

static void put(Results *r, const char *name, IrDType dt, int rank, const int64_t *dims,
                const void *data)
{
    size_t bytes = ir_dtype_size(dt);
    for (int d = 0; d < rank; d++)
        bytes *= (size_t)dims[d];
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->buf = realloc(r->buf, sizeof *r->buf * (size_t)r->cap);
    }
    void *copy = r->buf[r->n++] = malloc(bytes + 1);
    memcpy(copy, data, bytes);
    rt_ckpt_add(r->w, name, rt_dtype_of(dt), rank, dims, copy);
}

static void results_free(Results *r)
{
    for (int k = 0; k < r->n; k++)
        free(r->buf[k]);
    free(r->buf);
    rt_ckpt_writer_free(r->w);
}

/* ---------------------------------------------------------------- flags */

typedef struct OracleArgs {
    CliExecArgs x;
    const char *in_path, *out_path;
    long long steps;
    double clip, weight_decay, beta1, beta2, eps;
} OracleArgs;

#define ORACLE_NUM(flag, field, d, what)                                                     \
    {flag, CLI_NUM, CLI_AT(OracleArgs, field), .meta = "X", .def = d, .help = what}

static const CliFlag flags[] = {
    {"--in", CLI_STR, CLI_AT(OracleArgs, in_path), .meta = "FILE",
     .help = "weights and inputs (safetensors; F32, I32 or U8 tensors)"},
    {"--out", CLI_STR, CLI_AT(OracleArgs, out_path), .meta = "FILE",
     .help = "where the results go (written atomically)"},
    {"--steps", CLI_INT, CLI_AT(OracleArgs, steps), .meta = "N",
     .def = "0: the forward graph only", .help = "train steps to run"},
    ORACLE_NUM("--clip", clip, "1; 0: none", "global gradient-norm clipping"),
    ORACLE_NUM("--weight-decay", weight_decay, "0.1", "AdamW weight decay"),
    ORACLE_NUM("--beta1", beta1, "0.9", "AdamW beta1"),
    ORACLE_NUM("--beta2", beta2, "0.999", "AdamW beta2"),
    ORACLE_NUM("--eps", eps, "1e-8", "AdamW epsilon"),
    CLI_FLAG_SET(OracleArgs, x.model),
    {"--passes", CLI_STR, CLI_AT(OracleArgs, x.passes), .meta = "=LIST",
     .def = "the default pipeline",
     .help = "the pipeline of both graphs, after autodiff and optimizer for the train step"},
    CLI_FLAG_THREADS(OracleArgs, x.threads, "runtime threads"),
    CLI_FLAG_NO_CACHE(OracleArgs, x.no_cache),
    {0}};

const CliSpec cmd_oracle_spec = {"oracle-step", usage, flags, tail, offsetof(OracleArgs, x.in),
                                 "more than one model ('%s' and '%s')", NULL};

static int parse_args(int argc, char **argv, OracleArgs *a)
{
    int r = cli_parse(&cmd_oracle_spec, argc, argv, a);
    if (r < 0 && (!a->x.in || !a->in_path || !a->out_path))
        return cli_usage_error("oracle-step", "needs a model, --in FILE and --out FILE");
    return r;
}

/* ---------------------------------------------------------------- the input file */

/* The input file, and which of its tensors a graph has taken. */
typedef struct Inputs {
    const char *path;
    RtCkpt *c;
    bool *used;          /* [c->n] */
} Inputs;

static const RtCkptTensor *find(const Inputs *in, const char *name)
{
    return rt_ckpt_find(in->c, name);
}

static void mark_used(Inputs *in, const RtCkptTensor *t)
{
    in->used[t - in->c->t] = true;
}

/* ---------------------------------------------------------------- binding */

/* The symbol of a dim that is exactly one symbol (B, not 2*B or B*T), or -1. */
static int lone_symbol(IrDim d)
{
    if (d.n != 1 || d.t[0].coef != 1)
        return -1;
    int sym = -1;
    for (int s = 0; s < IR_MAX_SYMS; s++) {
        if (d.t[0].exp[s] > 1 || (d.t[0].exp[s] == 1 && sym >= 0))
            return -1;
        if (d.t[0].exp[s] == 1)
            sym = s;
    }
    return sym;
}

/* In the train step, lr and step are set by the command for every step
 * rather than read from the file. */
static bool per_step_input(const IrNode *n, bool train)
{
    return train && (!strcmp(n->name, "lr") || !strcmp(n->name, "step"));
}

static void bind_from(const IrNode *n, const RtCkptTensor *t, int64_t *binding)
{
    for (int d = 0; d < t->rank && t->rank == n->shape.rank; d++) {
        int s = lone_symbol(n->shape.d[d]);
        if (s >= 0 && binding[s] == 0)
            binding[s] = t->shape[d];
    }
}

/* Binds every symbol of g from the shapes of its inputs in the file (a
 * shape that disagrees is reported when the values are loaded). */
static bool bind_symbols(const IrGraph *g, const Inputs *in, bool train, int64_t *binding,
                         IrError *err)
{
    memset(binding, 0, sizeof(int64_t) * IR_MAX_SYMS);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        const RtCkptTensor *t = n->op == OP_INPUT ? find(in, n->name) : NULL;
        if (t && !per_step_input(n, train))
            bind_from(n, t, binding);
    }
    for (int s = 0; s < g->nsym; s++)
        if (binding[s] <= 0) {
            ir_error(err, "%s: symbol '%s' is not the whole dim of any input in the file",
                     in->path, g->sym[s]);
            ir_error_hint(err, "add the graph's inputs (idx [B,T], ...) to the --in file");
            return false;
        }
    return true;
}

/* ---------------------------------------------------------------- loading values */

static bool shape_matches(const IrNode *n, const RtCkptTensor *t, const int64_t *binding)
{
    if (!dtype_matches(n->dtype, t->dtype) || t->rank != n->shape.rank)
        return false;
    for (int d = 0; d < t->rank; d++)
        if (ir_dim_eval(n->shape.d[d], binding) != t->shape[d])
            return false;
    return true;
}

static bool missing(const char *what, const IrNode *n, const char *path, IrError *err)
{
    ir_error(err, "%s: %s '%s' of the graph is not in the file", path, what, n->name);
    ir_error_hint(err, "the file must hold every param and input by its graph name");
    return false;
}

static bool mismatch(const IrNode *n, const Inputs *in, const IrGraph *g, const int64_t *b,
                     IrError *err)
{
    char want[128];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < n->shape.rank; d++)
        dims[d] = ir_dim_eval(n->shape.d[d], b);
    IrShape s = ir_shape_ints(n->shape.rank, dims);
    ir_shape_str(&s, g->sym, want, sizeof want);
    ir_error(err, "%s: tensor '%s' has the wrong dtype or shape: the graph wants %s%s",
             in->path, n->name, ir_dtype_name(n->dtype), want);
    ir_error_hint(err, "f32 is F32, i32 is I32 and bool is U8 in the file");
    return false;
}

/* Copies one value into the executor: a param into the slab, an input
 * through rt_exec_set_input. */
static bool load_one(RtExec *ex, const IrNode *n, const RtCkptTensor *t, IrError *err)
{
    float *w = n->op == OP_PARAM ? rt_exec_param(ex, n->name) : NULL;
    if (w)
        memcpy(w, t->data, (size_t)t->bytes);
    return w || rt_exec_set_input(ex, n->name, t->data, t->bytes, err);
}

/* Copies every param and input of g from the file; AdamW state (inputs
 * named adam.*) that the file lacks stays zero. */
static bool load_values(RtExec *ex, const IrGraph *g, const int64_t *b, Inputs *in, bool train,
                        IrError *err)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if ((n->op != OP_PARAM && n->op != OP_INPUT) || per_step_input(n, train))
            continue;
        const RtCkptTensor *t = find(in, n->name);
        if (!t && n->op == OP_INPUT && !strncmp(n->name, "adam.", 5))
            continue;
        if (!t)
            return missing(n->op == OP_PARAM ? "param" : "input", n, in->path, err);
        if (!shape_matches(n, t, b))
            return mismatch(n, in, g, b, err);
        mark_used(in, t);
        if (!load_one(ex, n, t, err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- programs */

typedef struct Oracle {
    const OracleArgs *a;
    IrGraph *g;           /* as loaded */
    FeModel *model;
    Inputs in;
    Results out;
} Oracle;

/* Compiles g (already through its passes) and loads the file's values. */
static RtExec *prepare(Oracle *o, const IrGraph *g, bool train, int64_t *binding,
                       IrError *err)
{
    if (!bind_symbols(g, &o->in, train, binding, err))
        return NULL;
    RtExec *ex = cli_exec_new(g, binding, &o->a->x, false, err);
    if (!ex)
        return NULL;
    rt_exec_init_params(ex, 0); /* zeroes the optimizer state; every param is overwritten */
    if (!load_values(ex, g, binding, &o->in, train, err)) {
        rt_exec_free(ex);
        return NULL;
    }
    return ex;
}

static void put_output(Oracle *o, const RtExec *ex, const IrOutput *out, const char *name,
                       const int64_t *binding)
{
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < out->node->shape.rank; d++)
        dims[d] = ir_dim_eval(out->node->shape.d[d], binding);
    put(&o->out, name, out->node->dtype, out->node->shape.rank, dims,
        rt_exec_output(ex, out->name, NULL));
}

static void print_exec(const char *what, const IrGraph *g, const RtExec *ex,
                       const int64_t *binding)
{
    printf("%s: %d nodes, ", what, g->nnodes);
    cli_print_binding(g, binding, stdout);
    printf("\n");
    cli_print_exec(ex, stdout);
}

/* The forward graph after the pipeline, run once: every output.  Returns
 * -1 to go on, else an exit code. */
static int run_forward(Oracle *o, IrError *err)
{
    IrGraph *g = ir_graph_clone(o->g);
    int64_t binding[IR_MAX_SYMS];
    int r = cli_run_passes(g, o->a->x.passes, NULL, err);
    RtExec *ex = r < 0 ? prepare(o, g, false, binding, err) : NULL;
    if (ex)
        print_exec("forward", g, ex, binding);
    if (ex && rt_exec_run(ex, err))
        for (int k = 0; k < g->nout; k++)
            put_output(o, ex, &g->outs[k], g->outs[k].name, binding);
    else if (r < 0)
        r = cli_fail(err);
    rt_exec_free(ex);
    ir_graph_free(g);
    return r;
}

/* The train step: autodiff and the optimizer with the command's AdamW
 * settings, then the pipeline.  Returns -1 to go on, else an exit code. */
static int make_train_step(IrGraph *g, const OracleArgs *a, IrError *err)
{
    if (!pass_lookup("autodiff") || !pass_lookup("optimizer")) {
        ir_error(err, "--steps needs the autodiff and optimizer passes, which this build of "
                 "gradc does not have");
        ir_error_hint(err, "run without --steps to check the forward graph only");
        return cli_fail(err);
    }
    PassCtx ctx = pass_ctx_default(err);
    ctx.train.clip_norm = a->clip;
    ctx.train.weight_decay = a->weight_decay;
    ctx.train.beta1 = a->beta1;
    ctx.train.beta2 = a->beta2;
    ctx.train.eps = a->eps;
    if (!pass_stage_run(g, pass_stage("grad"), true, &ctx)) {
        ir_error_print(err, stderr);
        return ctx.internal ? 2 : 1;
    }
    return cli_run_passes(g, a->x.passes, NULL, err);
}

/* Sets a one-element input (lr, step) of g, whatever its dtype, if g has it. */
static bool set_scalar(RtExec *ex, const IrGraph *g, const char *name, double v, IrError *err)
{
    const IrNode *n = ir_graph_find(g, OP_INPUT, name);
    if (!n)
        return true;
    if (ir_node_numel_const(n) != 1) {
        ir_error(err, "input '%s' of the train step has more than one element", name);
        return false;
    }
    float f = (float)v;
    int32_t i = (int32_t)v;
    return rt_exec_set_input(ex, name, n->dtype == DT_F32 ? (void *)&f : (void *)&i, 4, err);
}

/* The file's learning rates: f32 [N] with N >= --steps. */
static const float *learning_rates(Oracle *o, IrError *err)
{
    const RtCkptTensor *t = find(&o->in, "lr");
    if (!t || t->dtype != RT_DT_F32 || t->rank != 1 || t->shape[0] < o->a->steps) {
        ir_error(err, "%s: --steps %lld needs a tensor 'lr', F32 [%lld]: the learning rate "
                 "of every step", o->in.path, o->a->steps, o->a->steps);
        return NULL;
    }
    mark_used(&o->in, t);
    return t->data;
}

static const IrOutput *find_output(const IrGraph *g, const char *name)
{
    for (int k = 0; k < g->nout; k++)
        if (!strcmp(g->outs[k].name, name))
            return &g->outs[k];
    return NULL;
}

/* grad.P outputs of step 1 (and grad_norm, with clipping), under their
 * own names. */
static void put_grads(Oracle *o, const IrGraph *g, const RtExec *ex, const int64_t *b)
{
    for (int k = 0; k < g->nout; k++)
        if (!strncmp(g->outs[k].name, "grad.", 5) || !strcmp(g->outs[k].name, "grad_norm"))
            put_output(o, ex, &g->outs[k], g->outs[k].name, b);
}

/* after.P: every param of g as the write-back left it. */
static void put_params(Oracle *o, const IrGraph *g, RtExec *ex, const int64_t *b)
{
    char name[512];
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            continue;
        int64_t dims[IR_MAX_RANK];
        for (int d = 0; d < n->shape.rank; d++)
            dims[d] = ir_dim_eval(n->shape.d[d], b);
        snprintf(name, sizeof name, "after.%s", n->name);
        put(&o->out, name, DT_F32, n->shape.rank, dims, rt_exec_param(ex, n->name));
    }
}

static bool train_loop(Oracle *o, const IrGraph *g, RtExec *ex, const int64_t *b, IrError *err)
{
    const float *lr = learning_rates(o, err);
    const IrOutput *loss = find_output(g, "loss");
    if (lr && !loss)
        ir_error(err, "internal: the train step has no output 'loss'");
    if (!lr || !loss)
        return false;
    for (long long s = 1; s <= o->a->steps; s++) {
        char name[32];
        if (!set_scalar(ex, g, "lr", lr[s - 1], err) ||
            !set_scalar(ex, g, "step", (double)s, err) || !rt_exec_run(ex, err))
            return false;
        snprintf(name, sizeof name, "loss.%lld", s);
        put_output(o, ex, loss, name, b);
        if (s == 1)
            put_grads(o, g, ex, b);
        printf("step %lld: lr %.6g loss %.6f\n", s, lr[s - 1],
               *(const float *)rt_exec_output(ex, "loss", NULL));
    }
    put_params(o, g, ex, b);
    return true;
}

static int run_train(Oracle *o, IrError *err)
{
    IrGraph *g = ir_graph_clone(o->g);
    int64_t binding[IR_MAX_SYMS];
    int r = make_train_step(g, o->a, err);
    RtExec *ex = r < 0 ? prepare(o, g, true, binding, err) : NULL;
    if (ex) {
        print_exec("train step", g, ex, binding);
        printf("AdamW: clip %g, weight decay %g, betas %g %g, eps %g\n", o->a->clip,
               o->a->weight_decay, o->a->beta1, o->a->beta2, o->a->eps);
    }
    if (r < 0 && (!ex || !train_loop(o, g, ex, binding, err)))
        r = cli_fail(err);
    rt_exec_free(ex);
    ir_graph_free(g);
    return r;
}

/* ---------------------------------------------------------------- indices */

/* One integer input of the file inside the rows or classes it selects. */
static bool check_input(const Oracle *o, const IrGraph *g, const IrNode *n, const int64_t *b,
                        IrError *err)
{
    const RtCkptTensor *t = n->op == OP_INPUT && n->dtype == DT_I32 ? find(&o->in, n->name)
                                                                    : NULL;
    if (!t || !shape_matches(n, t, b))
        return true; /* load_values reports it */
    IrIndexUse u = ir_index_use(g, n, b);
    return ir_index_check_values(&u, n->name, t->data, t->bytes / 4, err);
}

/* Before anything runs, on the graph as loaded (with --steps, the forward
 * with its loss, as the train step makes it, so that `targets` counts):
 * no gather by position past its table, and every integer input of the
 * file inside the rows or classes it selects.  The compiled programs
 * check neither, and after decompose a target outside the classes gives
 * a finite, wrong loss. */
static bool check_indices(Oracle *o, IrError *err)
{
    IrGraph *g = ir_graph_clone(o->g);
    PassCtx ctx = pass_ctx_default(err);
    int64_t b[IR_MAX_SYMS], max;
    int sym;
    bool train = o->a->steps > 0;
    bool ok = (!train || pass_train_forward(g, &ctx)) && bind_symbols(g, &o->in, train, b, err) &&
              ir_index_check_binding(g, b, &sym, &max, err);
    for (int i = 0; ok && i < g->nnodes; i++)
        ok = check_input(o, g, g->nodes[i], b, err);
    if (!ok && !err->where[0])
        ir_error_where(err, "%s", o->in.path);
    ir_graph_free(g);
    return ok;
}

/* ---------------------------------------------------------------- the command */

/* Every tensor of the file must have been taken by one of the graphs. */
static bool check_unused(const Oracle *o, IrError *err)
{
    for (int k = 0; k < o->in.c->n; k++)
        if (!o->in.used[k]) {
            ir_error(err, "%s: tensor '%s' is neither a param nor an input of the graph%s",
                     o->in.path, o->in.c->t[k].name, o->a->steps ? "" : " (forward only)");
            ir_error_hint(err, "names must match the graph's (gradc check lists the params)");
            return false;
        }
    return true;
}

static int oracle(Oracle *o, IrError *err)
{
    o->in.path = o->a->in_path;
    if (!(o->in.c = rt_ckpt_read(o->in.path, err)))
        return cli_fail(err);
    o->in.used = calloc((size_t)o->in.c->n + 1, sizeof *o->in.used);
    o->out.w = rt_ckpt_writer_new();
    int r = check_indices(o, err) ? run_forward(o, err) : cli_fail(err);
    if (r < 0 && o->a->steps > 0)
        r = run_train(o, err);
    if (r < 0 && !check_unused(o, err))
        r = cli_fail(err);
    if (r < 0 && !rt_ckpt_write(o->out.w, o->a->out_path, err))
        r = cli_fail(err);
    if (r < 0)
        printf("wrote %d tensors to %s\n", o->out.n, o->a->out_path);
    return r < 0 ? 0 : r;
}

int cmd_oracle(int argc, char **argv)
{
    IrError err = {0};
    OracleArgs a = {.x = cli_exec_args_default(), .clip = 1.0, .weight_decay = 0.1,
                    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    Oracle o = {.a = &a};
    o.g = cli_load(a.x.in, &a.x.model, &o.model, &err);
    if (!o.g)
        return cli_fail(&err);
    r = oracle(&o, &err);
    results_free(&o.out);
    free(o.in.used);
    rt_ckpt_free(o.in.c);
    cli_unload(o.g, o.model);
    return r;
}
