/* graphgen_known.c — is a failure one of the open bugs?
 *
 * Some bugs graphgen found are not fixed yet (tests/fuzz/graphgen_open/
 * README.md).  The generator keeps clear of their patterns where it can,
 * but a train step makes some of them by itself (the gradient of a
 * reduction is a broadcast), so a run would keep finding the same open
 * bugs and hide new ones.  This file recognises them from the compiled
 * graph, which it builds here with the same passes verify runs (no JIT:
 * the passes are pure), and from the outcome:
 *
 *   row-constant  a mismatch, and a fused kernel whose output is constant
 *                 along its last axis wider than 1 but not everywhere
 *                 (every body value that spans the axis is a const, a
 *                 broadcast of a [.., 1], an iota over another axis):
 *                 codegen stores such an output once per row;
 *   source-output a mismatch, and an output that is a source (or a view of
 *                 one) which the run writes back: it shows the new value;
 *   fuse-cycle    a crash in the fuser's unit order (E->norder == E->nu):
 *                 two kernels each read an output of the other.
 *
 * The tests are a little wider than the bugs (a kernel that coalesces to
 * one dim does not show the first), so a new bug in such a graph would be
 * taken for a known one; --strict counts known ones as failures too.
 * Drop a rule when its bug is fixed.
 */
#include "graphgen.h"
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- row-constant */

/* The axis of n that lines up with the kernel's last axis wider than 1
 * (k trailing axes of 1 after it), if it is wider than 1 in n; else -1. */
static int kernel_axis(const IrNode *n, int k, const int64_t *binding)
{
    int p = n->shape.rank - 1 - k;
    return p >= 0 && ir_dim_eval(n->shape.d[p], binding) > 1 ? p : -1;
}

/* Whether body node n surely varies along the kernel's last wide axis, as
 * codegen sees it: a loaded operand spanning it, an iota along it, a
 * dropout's mask, a view or a matmul (taken as varying: they move axes),
 * or an operand that does. */
static bool body_varies(const IrNode *n, const bool *v, int k, const int64_t *binding)
{
    int p = kernel_axis(n, k, binding);
    if (p < 0)
        return false;
    switch (n->op) {
    case OP_INPUT: case OP_DROPOUT: case OP_RESHAPE: case OP_TRANSPOSE: case OP_MATMUL:
        return true;
    case OP_CONST: return false;
    case OP_IOTA: return ir_axis(ir_node_int(n, ATTR_AXIS, 0), n->shape.rank) == p;
    default: break;
    }
    for (int j = 0; j < n->nin; j++)
        if (v[n->in[j]->index])
            return true;
    return false;
}

/* A fused node of more than one element whose value is constant along its
 * last axis wider than 1. */
static bool row_constant_kernel(const IrNode *f, const int64_t *binding)
{
    const IrGraph *b = f->body;
    int k = 0, r = f->shape.rank;
    if (f->op != OP_FUSED || !b || !b->nout)
        return false;
    while (k < r && ir_dim_eval(f->shape.d[r - 1 - k], binding) == 1)
        k++;
    if (k == r)
        return false;
    bool *v = calloc((size_t)b->nnodes + 1, 1);
    IR_ASSERT(v);
    ir_graph_reindex((IrGraph *)b);
    for (int i = 0; i < b->nnodes; i++)
        v[i] = body_varies(b->nodes[i], v, k, binding);
    bool flat = !v[b->outs[0].node->index];
    free(v);
    return flat;
}

/* ---------------------------------------------------------------- source-output */

static const IrNode *view_root(const IrNode *n)
{
    while (n->op == OP_RESHAPE || n->op == OP_SLICE)
        n = n->in[0];
    return n;
}

static bool output_named(const IrGraph *g, const char *name)
{
    for (int o = 0; name && o < g->nout; o++)
        if (!strcmp(g->outs[o].name, name))
            return true;
    return false;
}

/* An output whose buffer is a source that an output of its name writes back. */
static bool written_source_output(const IrGraph *g)
{
    for (int o = 0; o < g->nout; o++) {
        const IrNode *r = view_root(g->outs[o].node);
        bool source = r->op == OP_INPUT || r->op == OP_PARAM;
        if (source && strcmp(g->outs[o].name, r->name) && output_named(g, r->name))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- the compiled graph */

/* g through verify's passes for this run, at its binding; NULL if a pass fails. */
static IrGraph *compiled(const IrGraph *g, const GgRun *run, int64_t *binding)
{
    IrError err = {0};
    IrGraph *c = ir_graph_clone(g);
    for (int s = 0; s < c->nsym; s++)
        binding[s] = !strcmp(c->sym[s], "B") ? run->bind.batch : run->bind.seq;
    PassCtx ctx = pass_ctx_default(&err);
    ctx.binding = binding;
    bool ok = !run->train || pass_run_pipeline(c, pass_train_pipeline, &ctx);
    if (ok && pass_run_pipeline(c, pass_default_pipeline, &ctx))
        return c;
    ir_graph_free(c);
    return NULL;
}

const char *gg_known_bug(const IrGraph *g, const GgRun *run, const GgOutcome *out)
{
    if (out->kind == GG_CRASH && strstr(out->what, "fuse_emit.c") &&
        strstr(out->what, "E->norder == E->nu"))
        return "fuse-cycle";
    if (out->kind != GG_MISMATCH)
        return NULL;
    int64_t binding[IR_MAX_SYMS] = {0};
    IrGraph *c = compiled(g, run, binding);
    const char *known = NULL;
    for (int i = 0; c && !known && i < c->nnodes; i++)
        if (row_constant_kernel(c->nodes[i], binding))
            known = "row-constant";
    if (c && !known && written_source_output(c))
        known = "source-output";
    ir_graph_free(c);
    return known;
}
