/* cmd_verify.c — `gradc verify`: the compiled graph against the interpreter.
 *
 * Two graphs come from one model file:
 *   reference  the frontend's graph, unoptimized (with --train: after the
 *              train-step passes autodiff and optimizer only), evaluated by
 *              the reference interpreter in double precision (ir/interp.c);
 *   compiled   a clone of the reference after the pass pipeline (--passes,
 *              else the default), JIT-compiled and run by the executor in
 *              float32.
 * Both see the same weights (the interpreter's params are set from the
 * executor's slab after rt_exec_init_params, before the step writes back)
 * and the same seeded random inputs, and every output of the reference —
 * in train mode the loss, every grad.P, every updated param P and every
 * AdamW moment — is compared by name.
 *
 * The error of one output is relative to its largest reference value,
 * with a floor from its group:
 *
 *     err = max_i |jit_i - ref_i| / max(max_i |ref_i|, 1e-3 * G, 1e-6)
 *
 * where G is the largest |ref| over the output's group: all grad.* outputs
 * are one group, all adam.m.* another, all adam.v.* a third, and any
 * other output is a group of its own (so G is its own max and the floor
 * changes nothing).  Dividing by the tensor's max rather than elementwise
 * keeps elements near zero, where relative error means nothing, from
 * dominating.  The group floor does the same for a whole tensor that is
 * zero in exact arithmetic: the gradient of the attention key bias is
 * (softmax ignores a shift of all scores), so both runs hold rounding
 * noise there, and that noise is judged against the scale of the other
 * gradients.  A NaN or Inf where the reference is finite is an infinite
 * error.  An output above --tol gets a second chance against its own
 * rounding noise: the reference is rerun with float32 emulated and every
 * value perturbed by up to one ulp (run_noise), and the output passes if
 * max|jit - ref| is within VERIFY_NOISE_MULT times that run's distance to
 * the exact one (a zero gradient that is a cancelling sum, as of a shift
 * before a layernorm, holds noise of 1e-6 in any float32 evaluation).
 * The command prints every output's error, the worst one judged by --tol,
 * and exits 1 when it exceeds --tol.
 */
#include "cli.h"
#include "passes/pass.h"
#include "runtime/rt_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_DEFAULT_TOL 1e-4
#define VERIFY_NOISE_MULT 10.0
#define VERIFY_NOISE_RUNS 2

static const char usage[] =
    "usage: gradc verify MODEL.json|FILE.gir [--set k=v ...] [--batch B] [--seq T]\n"
    "                    [--passes=LIST] [--train] [--tol X] [--seed S] [--threads N]\n"
    "                    [--bind NAME=V ...] [--no-cache]\n"
    "\n"
    "Runs the graph twice on the same seeded random inputs and weights: compiled to\n"
    "native code after the pass pipeline (float32), and in the reference interpreter\n"
    "on the unoptimized graph (double precision).  Compares every output and prints\n"
    "the error of each,\n"
    "    max|jit - ref| / max(max|ref|, 1e-3 * G, 1e-6)     (per output tensor)\n"
    "G being the largest |ref| of the output's group (all grad.* outputs, all\n"
    "adam.m.*, all adam.v.*; any other output is its own group)\n"
    "then the worst one.  An output above --tol still passes when its difference\n"
    "is within 10x its float32 rounding noise (the reference rerun with float32\n"
    "storage and every value perturbed by up to one ulp).  With --train the graph\n"
    "is first made a train step (autodiff, optimizer: loss, grad.P, updated\n"
    "params and AdamW moments), and\n"
    "every gradient and updated parameter is compared too.  The compiled step is\n"
    "built as gradc train builds it (attention, autodiff, optimizer, then the\n"
    "pipeline), the reference from the primitives, so the attention op and its\n"
    "gradient are checked against the graph they replace.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "examples:\n"
    "  gradc verify models/gpt2-small.json --batch 1 --seq 32\n"
    "  gradc verify models/gpt-mini.json --train --passes=cse,dce\n"
    "\n"
    "exit codes: 0 all outputs within --tol, 1 an error above it or a user error,\n"
    "2 internal error\n";

typedef struct VerifyArgs {
    CliExecArgs x;
    bool train;
    double tol;
} VerifyArgs;

static const CliFlag flags[] = {
    CLI_FLAG_SET(VerifyArgs, x.model),
    CLI_FLAGS_LORA(VerifyArgs, x.model.lora),
    CLI_FLAGS_BIND(VerifyArgs, x.bind, "2", "64"),
    {"--passes", CLI_STR, CLI_AT(VerifyArgs, x.passes), .meta = "=LIST",
     .def = "the default pipeline",
     .help = "the pipeline of the compiled graph; the reference is never optimized"},
    {"--train", CLI_TRUE, CLI_AT(VerifyArgs, train),
     .help = "verify one train step (needs the autodiff and optimizer passes)"},
    {"--tol", CLI_NUM, CLI_AT(VerifyArgs, tol), .positive = true, .meta = "X",
     .def = "1e-4; float32 runs of GPT-2 small forward land near 1e-6",
     .help = "the largest error accepted"},
    {"--seed", CLI_INT, CLI_AT(VerifyArgs, x.seed), .meta = "S", .def = "42",
     .help = "seed of params and inputs"},
    CLI_FLAG_THREADS(VerifyArgs, x.threads, "runtime threads"),
    CLI_FLAG_NO_CACHE(VerifyArgs, x.no_cache),
    {0}};

const CliSpec cmd_verify_spec = {"verify", usage, flags, tail, CLI_ONE_INPUT(VerifyArgs, x.in)};

typedef struct Verify {
    const VerifyArgs *a;
    IrGraph *ref, *jit;
    FeModel *model;
    int64_t binding[IR_MAX_SYMS];
    CliInputs inputs;
    RtExec *ex;
    IrInterp *it;
    double *noise; /* noise[o]: output o's float32 rounding noise (run_noise), or NULL */
    double jit_ms, ref_ms;
} Verify;

/* ---------------------------------------------------------------- flags */

static int parse_args(int argc, char **argv, VerifyArgs *a)
{
    int r = cli_parse(&cmd_verify_spec, argc, argv, a);
    if (r < 0 && !a->x.in)
        return cli_usage_error("verify", "missing input: a model .json file or a .gir file");
    return r;
}

/* ---------------------------------------------------------------- graphs */

static int pass_failed(const PassCtx *ctx)
{
    ir_error_print(ctx->err, stderr);
    return ctx->internal ? 2 : 1;
}

/* A train step: the reference's is autodiff and optimizer, nothing else;
 * the compiled one's is the grad stage's (passes/registry.c, as gradc
 * train builds it), which also rewrites causal attention into its own op
 * first, so the check covers that rewrite. */
static int make_train_step(IrGraph *g, const char *pipeline, IrError *err)
{
    if (!pass_lookup("autodiff") || !pass_lookup("optimizer")) {
        ir_error(err, "--train needs the autodiff and optimizer passes, which this build of "
                 "gradc does not have");
        ir_error_hint(err, "run `gradc verify` without --train to check the forward graph");
        return cli_fail(err);
    }
    PassCtx ctx = pass_ctx_default(err);
    return pass_run_pipeline(g, pipeline, &ctx) ? -1 : pass_failed(&ctx);
}

static int make_graphs(Verify *v, IrError *err)
{
    v->jit = ir_graph_clone(v->ref);
    int r = v->a->train ? make_train_step(v->ref, "autodiff,optimizer", err) : -1;
    if (r < 0 && v->a->train)
        r = make_train_step(v->jit, pass_stage("grad")->train, err);
    if (r >= 0)
        return r;
    if (!cli_bind(v->ref, v->model, &v->a->x.bind, v->binding, err))
        return cli_fail(err);
    return cli_run_passes(v->jit, v->a->x.passes, v->binding, err);
}

/* ---------------------------------------------------------------- the two runs */

static IrTensor *tensor_of(const IrNode *n, const int64_t *binding)
{
    int64_t dim[IR_MAX_RANK];
    for (int d = 0; d < n->shape.rank; d++)
        dim[d] = ir_dim_eval(n->shape.d[d], binding);
    return ir_tensor_new(n->dtype, n->shape.rank, dim);
}

static void to_double(IrDType dt, const void *src, IrTensor *t)
{
    for (int64_t k = 0; k < t->numel; k++)
        t->data[k] = dt == DT_F32 ? ((const float *)src)[k]
                     : dt == DT_I32 ? ((const int32_t *)src)[k] : ((const uint8_t *)src)[k];
}

/* Sets one param or input of the interpreter from float/int data. */
static bool set_ref(Verify *v, const IrNode *n, const void *data, IrError *err)
{
    IrTensor *t = tensor_of(n, v->binding);
    if (!t) {
        ir_error(err, "out of memory for the reference value of '%s'", n->name);
        return false;
    }
    to_double(n->dtype, data, t);
    bool ok = ir_interp_set(v->it, n->name, t, err);
    ir_tensor_free(t);
    return ok;
}

/* The executor's weights (before the step writes back) into the reference. */
static bool share_params(Verify *v, IrError *err)
{
    for (int i = 0; i < v->ref->nnodes; i++) {
        const IrNode *n = v->ref->nodes[i];
        const float *w = n->op == OP_PARAM ? rt_exec_param(v->ex, n->name) : NULL;
        if (w && !set_ref(v, n, w, err))
            return false;
    }
    for (int k = 0; k < v->inputs.n; k++)
        if (!set_ref(v, v->inputs.in[k].node, v->inputs.in[k].data, err))
            return false;
    return true;
}

static bool setup_runs(Verify *v, IrError *err)
{
    v->ex = cli_exec_new(v->jit, v->binding, &v->a->x, false, err);
    if (!v->ex)
        return false;
    rt_exec_init_params(v->ex, (uint64_t)v->a->x.seed);
    cli_make_inputs(v->ref, v->model, v->binding, (uint64_t)v->a->x.seed, v->a->train,
                    &v->inputs);
    if (!cli_set_inputs(v->ex, &v->inputs, err))
        return false;
    v->it = ir_interp_new(v->ref, v->binding, (uint64_t)v->a->x.seed, err);
    return v->it && share_params(v, err);
}

static bool run_both(Verify *v, IrError *err)
{
    double t0 = cli_now_ms();
    if (!rt_exec_run(v->ex, err))
        return false;
    double t1 = cli_now_ms();
    if (!ir_interp_run(v->it, err))
        return false;
    v->jit_ms = t1 - t0;
    v->ref_ms = cli_now_ms() - t1;
    return true;
}

/* ---------------------------------------------------------------- comparison */

typedef struct OutErr {
    double err, ref_max, abs_max;
    int64_t at, n;
    double noise; /* max|ref32 - ref| (run_noise), 0 before it runs */
} OutErr;

static double jit_value(IrDType dt, const void *data, int64_t k)
{
    return dt == DT_F32 ? ((const float *)data)[k]
           : dt == DT_I32 ? ((const int32_t *)data)[k] : ((const uint8_t *)data)[k];
}

static const char *const groups[] = {"grad.", "adam.m.", "adam.v."};
#define NGROUPS 3

/* The group of an output name (see the top of the file); -1: its own. */
static int group_of(const char *name)
{
    for (int k = 0; k < NGROUPS; k++)
        if (!strncmp(name, groups[k], strlen(groups[k])))
            return k;
    return -1;
}

static double max_abs(const IrTensor *t)
{
    double m = 0;
    for (int64_t k = 0; k < t->numel; k++)
        if (isfinite(t->data[k]) && fabs(t->data[k]) > m)
            m = fabs(t->data[k]);
    return m;
}

/* G of every group: the largest |ref| over its outputs. */
static void group_maxima(const Verify *v, double *gmax)
{
    for (int k = 0; k < NGROUPS; k++)
        gmax[k] = 0;
    for (int o = 0; o < v->ref->nout; o++) {
        int k = group_of(v->ref->outs[o].name);
        if (k >= 0)
            gmax[k] = fmax(gmax[k], max_abs(ir_interp_output(v->it, v->ref->outs[o].name)));
    }
}

/* err = max|a - b| / max(max|b|, floor); non-finite mismatches are infinite. */
static OutErr compare(IrDType dt, const void *jit, const IrTensor *ref, double floor)
{
    OutErr e = {.at = -1};
    for (int64_t k = 0; k < ref->numel; k++) {
        double a = jit_value(dt, jit, k), b = ref->data[k];
        double d = isnan(a) && isnan(b) ? 0 : a == b ? 0 : fabs(a - b);
        if (isnan(d))
            d = INFINITY;
        if (d > e.abs_max)
            e.abs_max = d, e.at = k;
        if (isfinite(b) && fabs(b) > e.ref_max)
            e.ref_max = fabs(b);
    }
    e.err = e.abs_max / fmax(e.ref_max, floor);
    return e;
}

/* max|a - b| over the elements where both are finite. */
static double max_diff(const IrTensor *a, const IrTensor *b)
{
    double m = 0;
    for (int64_t k = 0; k < a->numel; k++)
        if (isfinite(a->data[k]) && isfinite(b->data[k]))
            m = fmax(m, fabs(a->data[k] - b->data[k]));
    return m;
}

/* The rounding noise of each output: the reference is run again with
 * float32 storage emulated and every f32 value perturbed by up to one ulp
 * (ir_interp_noise_f32), from the same sources, VERIFY_NOISE_RUNS times
 * with different draws; noise[o] is the largest distance of output o to
 * the exact run.  Only computed when an output misses --tol. */
static bool run_noise(Verify *v, IrError *err)
{
    IrInterp *it = ir_interp_new(v->ref, v->binding, (uint64_t)v->a->x.seed, err);
    v->noise = calloc(v->ref->nout ? v->ref->nout : 1, sizeof *v->noise);
    bool ok = it && v->noise;
    for (int i = 0; ok && i < v->ref->nnodes; i++) {
        const IrNode *n = v->ref->nodes[i];
        if ((n->op == OP_INPUT || n->op == OP_PARAM) && n->name)
            ok = ir_interp_set(it, n->name, ir_interp_value(v->it, n), err);
    }
    for (int r = 1; ok && r <= VERIFY_NOISE_RUNS; r++) {
        ir_interp_noise_f32(it, (uint64_t)r);
        ok = ir_interp_run(it, err);
        for (int o = 0; ok && o < v->ref->nout; o++) {
            const char *name = v->ref->outs[o].name;
            v->noise[o] = fmax(v->noise[o], max_diff(ir_interp_output(it, name),
                                                      ir_interp_output(v->it, name)));
        }
    }
    ir_interp_free(it);
    return ok;
}

/* Output o's comparison; e->noise is set once run_noise has run. */
static bool compare_one(Verify *v, int o, const double *gmax, OutErr *e,
                        IrError *err)
{
    const IrOutput *out = &v->ref->outs[o];
    int64_t n = 0;
    const void *data = rt_exec_output(v->ex, out->name, &n);
    const IrTensor *ref = ir_interp_output(v->it, out->name);
    if (!data || !ref || n != ref->numel) {
        ir_error(err, "internal: output '%s' is missing or has another size in the compiled "
                 "graph", out->name);
        return false;
    }
    int grp = group_of(out->name);
    double floor = fmax(grp >= 0 ? 1e-3 * gmax[grp] : 0, 1e-6);
    *e = compare(out->node->dtype, data, ref, floor);
    e->n = n;
    e->noise = v->noise ? v->noise[o] : 0;
    return true;
}

/* An output passes within --tol, or when its difference is at most
 * VERIFY_NOISE_MULT times the float32 rounding noise of the graph itself
 * (a gradient that is zero in exact arithmetic, e.g. of a shift before a
 * layernorm, is a cancelling sum whose float32 value is noise). */
static bool within_noise(const OutErr *e)
{
    return e->noise > 0 && isfinite(e->abs_max) && e->abs_max <= VERIFY_NOISE_MULT * e->noise;
}

static void print_one(const IrOutput *o, const OutErr *e, double tol)
{
    printf("  %-40s %10lld  max|ref| %-10.4g max|diff| %-10.4g err %-10.3g %s", o->name,
           (long long)e->n, e->ref_max, e->abs_max, e->err,
           e->err <= tol || within_noise(e) ? "ok" : "FAIL");
    if (e->err > tol && e->noise > 0)
        printf(" (float32 noise %.3g: %s %g x)", e->noise,
               within_noise(e) ? "within" : "beyond", VERIFY_NOISE_MULT);
    printf("\n");
}

static bool compare_all(Verify *v, OutErr *e, IrError *err)
{
    double gmax[NGROUPS];
    group_maxima(v, gmax);
    for (int o = 0; o < v->ref->nout; o++)
        if (!compare_one(v, o, gmax, &e[o], err))
            return false;
    return true;
}

static int report(Verify *v, IrError *err)
{
    OutErr *e = calloc(v->ref->nout ? v->ref->nout : 1, sizeof *e);
    bool ok = e && compare_all(v, e, err), missed = false;
    for (int o = 0; ok && o < v->ref->nout; o++)
        missed |= !(e[o].err <= v->a->tol);
    if (ok && missed)
        ok = run_noise(v, err) && compare_all(v, e, err);
    if (!ok) {
        free(e);
        ir_error_print(err, stderr);
        return 2;
    }
    double worst = 0;
    const char *worst_name = "-";
    int by_noise = 0;
    printf("outputs (err = max|jit - ref| / max(max|ref|, 1e-3 * group max|ref|, 1e-6)):\n");
    for (int o = 0; o < v->ref->nout; o++) {
        print_one(&v->ref->outs[o], &e[o], v->a->tol);
        if (!(e[o].err <= v->a->tol) && within_noise(&e[o]))
            by_noise++;
        else if (!(e[o].err <= worst))
            worst = e[o].err, worst_name = v->ref->outs[o].name;
    }
    free(e);
    if (by_noise)
        printf("%d output%s above --tol but within %g x %s float32 rounding noise (the "
               "reference rerun with float32 storage, perturbed by one ulp)\n", by_noise,
               by_noise > 1 ? "s" : "", VERIFY_NOISE_MULT, by_noise > 1 ? "their" : "its");
    printf("worst error: %.3g (%s), tolerance %.3g: %s\n", worst, worst_name, v->a->tol,
           worst <= v->a->tol ? "PASS" : "FAIL");
    return worst <= v->a->tol ? 0 : 1;
}

/* ---------------------------------------------------------------- the command */

static void print_header(const Verify *v)
{
    printf("verify: %s (%s)  ", v->a->x.in, v->a->train ? "train step" : "forward");
    cli_print_binding(v->ref, v->binding, stdout);
    printf("  seed %lld\n", v->a->x.seed);
    printf("compiled: %d nodes after `%s`; reference: %d nodes, unoptimized\n",
           v->jit->nnodes, v->a->x.passes ? v->a->x.passes : pass_stage("llvm")->forward,
           v->ref->nnodes);
    cli_print_exec(v->ex, stdout);
}

static int verify(Verify *v, IrError *err)
{
    int r = make_graphs(v, err);
    if (r >= 0)
        return r;
    if (!setup_runs(v, err))
        return cli_fail(err);
    print_header(v);
    fflush(stdout);
    if (!run_both(v, err))
        return cli_fail(err);
    printf("run: compiled %.2f ms, reference interpreter %.2f ms\n", v->jit_ms, v->ref_ms);
    return report(v, err);
}

static void verify_free(Verify *v)
{
    ir_interp_free(v->it);
    free(v->noise);
    rt_exec_free(v->ex);
    cli_free_inputs(&v->inputs);
    ir_graph_free(v->jit);
    cli_unload(v->ref, v->model);
}

int cmd_verify(int argc, char **argv)
{
    IrError err = {0};
    VerifyArgs a = {.x = cli_exec_args_default(), .tol = VERIFY_DEFAULT_TOL};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    Verify v = {.a = &a};
    v.ref = cli_load(a.x.in, &a.x.model, &v.model, &err);
    if (!v.ref)
        return cli_fail(&err);
    r = verify(&v, &err);
    verify_free(&v);
    return r;
}
