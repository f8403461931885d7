/* rt_train_check.c — `gradc train --determinism-check N`: 1 thread against N.
 *
 * gradc promises that a training run gives the same bits at any thread
 * count: elementwise, row and attention kernels give every output element
 * to one thread, whose loop order does not depend on how the range was
 * split; reductions over other axes walk a fixed order per output; and
 * matmuls split C into a tile grid fixed by the shape, one single-threaded
 * sgemm per tile (codegen/cg_gemm.c).  This check tests the promise on the
 * user's own model, data and machine: it builds the run twice, at 1 thread
 * and at the configured count, takes N updates on each, and after every
 * update compares the loss and every tensor of the train step's state
 * (params, AdamW moments, and every other source buffer) bit for bit.  The
 * first difference is reported with the tensor's name, the element and the
 * two values.  Nothing is written to disk.
 */
#include "runtime/rt_train_int.h"

#include <math.h>
#include <string.h>

typedef struct Diff {
    const char *name;
    int64_t at, n;
    double a, b;
} Diff;

static double value_at(const IrNode *n, const void *buf, int64_t i)
{
    if (n->dtype == DT_F32)
        return ((const float *)buf)[i];
    if (n->dtype == DT_I32)
        return ((const int32_t *)buf)[i];
    return ((const uint8_t *)buf)[i];
}

/* The first source tensor whose bytes differ between the two runs. */
static bool first_diff(const RtTrain *a, const RtTrain *b, Diff *d)
{
    const IrGraph *g = a->train_g;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_INPUT)
            continue;
        const CgNodeCode *c = &rt_exec_program(a->train_ex)->nodes[i];
        const char *x = rt_exec_buffer(a->train_ex, i), *y = rt_exec_buffer(b->train_ex, i);
        if (!memcmp(x, y, (size_t)c->bytes))
            continue;
        int64_t e = 0, size = c->bytes / c->numel;
        while (e < c->numel && !memcmp(x + e * size, y + e * size, (size_t)size))
            e++;
        *d = (Diff){n->name, e, c->numel, value_at(n, x, e), value_at(n, y, e)};
        return true;
    }
    return false;
}

static int count_tensors(const IrGraph *g)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        k += g->nodes[i]->op == OP_PARAM || g->nodes[i]->op == OP_INPUT;
    return k;
}

static bool compare_step(RtTrain *one, RtTrain *many, int64_t step, FILE *out, IrError *err)
{
    double la, lb;
    if (!rt_train_step(one, &la, err) || !rt_train_step(many, &lb, err))
        return false;
    Diff d;
    bool differs = first_diff(one, many, &d);
    if (!differs && !memcmp(&la, &lb, sizeof la)) {
        fprintf(out, "step %lld: loss %.6f, %d tensors identical\n", (long long)step, la,
                count_tensors(one->train_g));
        return true;
    }
    if (!differs)
        d = (Diff){"loss", 0, 1, la, lb};
    int nt = rt_exec_stats(many->train_ex)->nthreads;
    ir_error(err, "not deterministic: after update %lld, '%s' differs at element %lld of %lld: "
             "%.9g at 1 thread, %.9g at %d threads", (long long)step, d.name, (long long)d.at,
             (long long)d.n, d.a, d.b, nt);
    ir_error_hint(err, "a bug in gradc: please report it with the model and these flags");
    return false;
}

static RtTrain *build(const RtTrainOptions *o, int threads, IrError *err)
{
    RtTrainOptions x = *o;
    x.threads = threads;
    x.quiet = true;
    x.no_files = true;
    return rt_train_new(&x, err);
}

bool rt_train_determinism_check(const RtTrainOptions *o, int64_t steps, IrError *err)
{
    FILE *out = o->out ? o->out : stdout;
    int n = o->threads > 0 ? o->threads : rt_default_threads();
    if (n < 2)
        n = 2; /* one against one would prove nothing */
    RtTrain *one = build(o, 1, err), *many = one ? build(o, n, err) : NULL;
    bool ok = one && many;
    if (ok)
        fprintf(out, "determinism check: %lld updates at 1 and at %d threads (OpenBLAS %s)\n",
                (long long)steps, n, rt_exec_stats(many->train_ex)->blas_core);
    for (int64_t s = 1; ok && s <= steps && s <= one->total; s++)
        ok = compare_step(one, many, s, out, err);
    if (ok)
        fprintf(out, "deterministic: every update gave the same bits at 1 and %d threads\n", n);
    rt_train_free(one);
    rt_train_free(many);
    return ok;
}
