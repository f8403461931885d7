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
 *   source-output a mismatch, and an output that is a source (or a view of
 *                 one) which the run writes back: it shows the new value.
 *
 * The tests are a little wider than the bugs, so a new bug in such a
 * graph would be taken for a known one; --strict counts known ones as
 * failures too.  (row-constant and fuse-cycle went with their fixes.)
 * Drop a rule when its bug is fixed.
 */
#include "graphgen.h"
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

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
    if (pass_run_compile(c, NULL, run->train, &ctx))
        return c;
    ir_graph_free(c);
    return NULL;
}

const char *gg_known_bug(const IrGraph *g, const GgRun *run, const GgOutcome *out)
{
    if (out->kind != GG_MISMATCH)
        return NULL;
    int64_t binding[IR_MAX_SYMS] = {0};
    IrGraph *c = compiled(g, run, binding);
    const char *known = NULL;
    if (c && written_source_output(c))
        known = "source-output";
    ir_graph_free(c);
    return known;
}
