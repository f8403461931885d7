/* graphgen_shrink.c — delta debugging of a failing graph.
 *
 * A failing case is a graph and the flags of its verify run.  The shrinker
 * keeps the smallest case that still fails *the same way* (gg_same_failure:
 * a mismatch in the same output; an error or a crash with the same message
 * up to numbers) and tries, until a whole round changes nothing or the
 * budget is spent:
 *
 *   1. the forward run instead of the train step (often the same bug, and
 *      a much smaller graph);
 *   2. dropping each output but one;
 *   3. cutting out a run of nodes: every node of the run that a later node
 *      or an output reads is replaced by a fresh input of its type, and
 *      what no output reads any more is removed.  Runs halve in length
 *      from half the graph down to single nodes (ddmin's coarse-to-fine
 *      order, greedy rather than complete);
 *   4. bypassing a node: its readers read one of its operands of the same
 *      type instead (drops a reshape, a tame, an abs);
 *   5. a smaller binding (B = 1, T = 1, 2, T/2) and one thread.
 *
 * Some nodes are never cut or bypassed: the `out` operand of a
 * causal_attention_grad, which must stay the causal_attention it is the
 * output of (the interpreter recomputes it, codegen reads it), and the
 * loss's anchor term (named anchor.*, summed by loss.* adds), whose
 * gradient of order 1 is the scale verify judges the other gradients by:
 * without it, gradients that vanish in exact arithmetic compare float32
 * noise against nothing, a false mismatch to shrink towards.
 *
 * Every candidate is printed as IR text and checked through the file, so
 * what is kept is exactly what the reproducer replays.  Inputs keep their
 * names (verify draws an input's data from its name and the seed), so a
 * cut changes no other value.
 */
#include "graphgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Shrink {
    IrGraph *best;
    GgRun run;
    const GgOutcome *fail;
    char cand[4096], log[4096];
    const GgShrinkLimits *lim;
    int checks;
    double t0;
    int fresh;             /* counter of the names of new inputs */
} Shrink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool budget_left(const Shrink *S)
{
    return S->checks < S->lim->max_checks && now_s() - S->t0 < S->lim->max_seconds;
}

/* ---------------------------------------------------------------- graph edits */

void gg_prune(IrGraph *g)
{
    bool *live = calloc((size_t)g->nnodes + 1, 1);
    IR_ASSERT(live);
    ir_graph_reindex(g);
    for (int o = 0; o < g->nout; o++)
        live[g->outs[o].node->index] = true;
    for (int i = g->nnodes - 1; i >= 0; i--)
        for (int j = 0; live[i] && j < g->nodes[i]->nin; j++)
            live[g->nodes[i]->in[j]->index] = true;
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (live[i])
            g->nodes[k++] = g->nodes[i];
    g->nnodes = k;
    ir_graph_reindex(g);
    free(live);
}

static bool name_taken(const IrGraph *g, const char *name)
{
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, name))
            return true;
    return ir_graph_find(g, OP_INPUT, name) || ir_graph_find(g, OP_PARAM, name);
}

/* n is the `out` operand of a causal_attention_grad, or a node of the
 * loss's anchor term (see the top). */
static bool pinned(const IrGraph *g, const IrNode *n)
{
    if (n->name && (!strncmp(n->name, "anchor", 6) || !strncmp(n->name, "loss.", 5)))
        return true;
    for (int i = n->index + 1; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_CAUSAL_ATTENTION_GRAD && g->nodes[i]->in[1] == n)
            return true;
    return false;
}

/* Node i of g becomes a fresh input of its type, placed where it stood. */
static void to_input(Shrink *S, IrGraph *g, int i)
{
    IrNode *n = g->nodes[i];
    char name[32];
    do
        snprintf(name, sizeof name, "r%d", S->fresh++);
    while (name_taken(g, name));
    IrNode *x = ir_input(g, name, n->dtype, n->shape);
    memmove(&g->nodes[i + 1], &g->nodes[i], (size_t)(g->nnodes - 1 - i) * sizeof *g->nodes);
    g->nodes[i] = x;
    ir_graph_reindex(g);
    ir_replace_uses(g, n, x);
}

static int count_ops(const IrGraph *g)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        k += ir_ops[g->nodes[i]->op].kind != OPK_SOURCE;
    return k;
}

/* ---------------------------------------------------------------- candidates */

/* Keeps c (and run) when it fails the same way, and not by a known open
 * bug that the original did not hit (a mismatch can drift into one);
 * frees it otherwise. */
static bool try_case(Shrink *S, IrGraph *c, const GgRun *run)
{
    bool keep = false;
    if (budget_left(S) && gg_write(c, S->cand, NULL)) {
        GgOutcome o = gg_check(S->cand, run, S->log, S->lim->timeout_s);
        S->checks++;
        keep = gg_same_failure(&o, S->fail) && !(S->lim->no_known && gg_known_bug(c, run, &o));
    }
    if (!keep) {
        ir_graph_free(c);
        return false;
    }
    ir_graph_free(S->best);
    S->best = c;
    S->run = *run;
    return true;
}

/* An output that is a source or a view of one, with GG_AVOID_SOURCE_OUTPUTS
 * (a cut or a bypass can make one of a computed output). */
static bool avoided(const Shrink *S, const IrGraph *c)
{
    for (int o = 0; (S->lim->avoid & GG_AVOID_SOURCE_OUTPUTS) && o < c->nout; o++)
        if (gg_source_view(c->outs[o].node))
            return true;
    return false;
}

static bool try_graph(Shrink *S, IrGraph *c)
{
    gg_prune(c);
    if (avoided(S, c)) {
        ir_graph_free(c);
        return false;
    }
    if (c->nnodes == S->best->nnodes && count_ops(c) == count_ops(S->best) &&
        c->nout == S->best->nout) {
        ir_graph_free(c); /* no smaller */
        return false;
    }
    return try_case(S, c, &S->run);
}

static bool drop_outputs(Shrink *S)
{
    bool any = false;
    for (int o = S->best->nout - 1; o >= 0 && S->best->nout > 1; o--) {
        IrGraph *c = ir_graph_clone(S->best);
        memmove(&c->outs[o], &c->outs[o + 1], (size_t)(c->nout - 1 - o) * sizeof *c->outs);
        c->nout--;
        any |= try_graph(S, c);
    }
    return any;
}

/* Cuts nodes [lo, hi) out of the best graph (sources stay as they are). */
static bool cut(Shrink *S, int lo, int hi)
{
    IrGraph *c = ir_graph_clone(S->best);
    bool changed = false;
    for (int i = lo; i < hi && i < c->nnodes; i++) {
        if (ir_ops[c->nodes[i]->op].kind == OPK_SOURCE || pinned(c, c->nodes[i]))
            continue;
        to_input(S, c, i);
        changed = true;
    }
    if (!changed) {
        ir_graph_free(c);
        return false;
    }
    return try_graph(S, c);
}

static bool cut_runs(Shrink *S)
{
    bool any = false;
    for (int len = S->best->nnodes / 2; len >= 1; len /= 2)
        for (int hi = S->best->nnodes; hi > 0 && budget_left(S); hi -= len) {
            if (hi > S->best->nnodes) /* an earlier cut pruned nodes before hi */
                hi = S->best->nnodes;
            any |= cut(S, hi > len ? hi - len : 0, hi);
        }
    return any;
}

static bool bypass(Shrink *S)
{
    bool any = false;
    for (int i = S->best->nnodes - 1; i >= 0 && budget_left(S); i--) {
        if (i >= S->best->nnodes)
            continue;
        const IrNode *n = S->best->nodes[i];
        for (int j = 0; j < n->nin && !pinned(S->best, n); j++) {
            const IrNode *x = n->in[j];
            if (x->dtype != n->dtype || !ir_shape_eq(&x->shape, &n->shape))
                continue;
            IrGraph *c = ir_graph_clone(S->best);
            ir_replace_uses(c, c->nodes[i], c->nodes[i]->in[j]);
            if (try_graph(S, c)) {
                any = true;
                break;
            }
        }
    }
    return any;
}

static bool same_run(const GgRun *a, const GgRun *b)
{
    return a->bind.batch == b->bind.batch && a->bind.seq == b->bind.seq && a->seed == b->seed &&
           a->threads == b->threads && a->train == b->train;
}

/* The k-th smaller run: forward instead of train, one thread, B = 1,
 * T = 1, T = 2, T / 2. */
static GgRun smaller(GgRun t, int k)
{
    switch (k) {
    case 0: t.train = false; break;
    case 1: t.threads = 1; break;
    case 2: t.bind.batch = 1; break;
    case 3: t.bind.seq = 1; break;
    case 4: t.bind.seq = t.bind.seq > 2 ? 2 : t.bind.seq; break;
    default: t.bind.seq = t.bind.seq > 1 ? t.bind.seq / 2 : 1; break;
    }
    return t;
}

static bool smaller_run(Shrink *S)
{
    bool any = false;
    for (int k = 0; k < 6 && budget_left(S); k++) {
        GgRun t = smaller(S->run, k);
        if (!same_run(&t, &S->run) && (k < 2 || S->best->nsym > 0))
            any |= try_case(S, ir_graph_clone(S->best), &t);
    }
    return any;
}

IrGraph *gg_shrink(const IrGraph *g, GgRun *run, const GgOutcome *fail, const char *dir,
                   const GgShrinkLimits *lim, int *checks)
{
    Shrink S = {.best = ir_graph_clone(g), .run = *run, .fail = fail, .lim = lim, .t0 = now_s()};
    snprintf(S.cand, sizeof S.cand, "%s/cand.gir", dir);
    snprintf(S.log, sizeof S.log, "%s/cand.log", dir);
    gg_prune(S.best);
    bool progress = true;
    while (progress && budget_left(&S)) {
        progress = smaller_run(&S);
        progress |= drop_outputs(&S);
        progress |= cut_runs(&S);
        progress |= bypass(&S);
    }
    *run = S.run;
    *checks = S.checks;
    return S.best;
}

bool gg_write(const IrGraph *g, const char *path, const char *header)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    if (header)
        fputs(header, f);
    ir_print(g, f);
    return fclose(f) == 0;
}
