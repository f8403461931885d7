/* dot.c — Graphviz export of a graph (`gradc dot`).
 *
 * Every node is drawn as a box labelled with its op (and attributes), its
 * type and its name; inputs, params, constants and each kind of op have
 * their own shape or colour, and every edge carries the shape of the
 * tensor it moves.  Graph outputs are extra ovals.
 *
 * A 12-layer GPT has hundreds of nodes, most of them the same block over
 * and over, so repeated blocks are collapsed.  The frontend names the
 * nodes of a repeated module PREFIX.N.rest (trf_blocks.3.att.scores); the
 * first all-digit segment after the first segment marks the block
 * PREFIX.N.  Unnamed nodes (made by passes) join a block when all their
 * non-source operands and at least one user are in it; unnamed constants
 * join the block of their users when those agree.  By default the first instance of each
 * PREFIX is drawn in full in a cluster, and the other instances become one
 * summary box ("trf_blocks.1 … trf_blocks.11 (11 more blocks, same
 * structure)") through which the edges in and out of them are routed; the
 * params and constants of those instances are not drawn.  With
 * opt->expand every instance is drawn in its own cluster.  Output order
 * follows the graph order and node ids, so it is deterministic.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct Group { /* the blocks PREFIX.N of one PREFIX */
    const char *prefix;
    int plen;
    long *inst; /* distinct N, ascending */
    int ninst, cap;
} Group;

typedef struct Block {
    int grp;    /* -1: not in a block */
    long inst;
    int rest;   /* offset of "rest" in the name, 0 when unnamed or inherited */
} Block;

typedef struct Dot {
    const IrGraph *g;
    FILE *f;
    bool expand;
    Block *blk; /* per node index */
    Group *grp;
    int ngrp;
    int (*seen)[2]; /* edges already drawn that touch a summary box */
    int nseen, seencap;
} Dot;

/* ---------------------------------------------------------------- blocks */

/* "trf_blocks.3.att.scores" -> prefix length 10, instance 3, rest at 13. */
static bool parse_block(const char *name, int *plen, long *inst, int *rest)
{
    const char *seg = strchr(name, '.');
    while (seg) {
        const char *s = seg + 1, *e = s;
        while (*e >= '0' && *e <= '9')
            e++;
        if (e > s && e - s < 10 && (*e == '.' || *e == 0)) {
            *plen = (int)(seg - name);
            *inst = strtol(s, NULL, 10);
            *rest = *e ? (int)(e + 1 - name) : 0;
            return true;
        }
        seg = strchr(s, '.');
    }
    return false;
}

static int group_of(Dot *d, const char *prefix, int plen)
{
    for (int i = 0; i < d->ngrp; i++)
        if (d->grp[i].plen == plen && !strncmp(d->grp[i].prefix, prefix, plen))
            return i;
    d->grp = ir_realloc(d->grp, (d->ngrp + 1) * sizeof *d->grp);
    d->grp[d->ngrp] = (Group){prefix, plen, NULL, 0, 0};
    return d->ngrp++;
}

/* Records instance n of group gp, keeping the list sorted and distinct. */
static void add_instance(Group *gp, long n)
{
    int k = 0;
    while (k < gp->ninst && gp->inst[k] < n)
        k++;
    if (k < gp->ninst && gp->inst[k] == n)
        return;
    if (gp->ninst == gp->cap) {
        gp->cap = gp->cap ? 2 * gp->cap : 16;
        gp->inst = ir_realloc(gp->inst, gp->cap * sizeof *gp->inst);
    }
    memmove(gp->inst + k + 1, gp->inst + k, (gp->ninst - k) * sizeof *gp->inst);
    gp->inst[k] = n;
    gp->ninst++;
}

static bool is_source(const IrNode *n)
{
    return ir_ops[n->op].kind == OPK_SOURCE;
}

static void assign_named(Dot *d)
{
    for (int i = 0; i < d->g->nnodes; i++) {
        const IrNode *n = d->g->nodes[i];
        int plen;
        d->blk[i] = (Block){-1, 0, 0};
        if (n->name && parse_block(n->name, &plen, &d->blk[i].inst, &d->blk[i].rest))
            d->blk[i].grp = group_of(d, n->name, plen);
    }
}

static bool same_block(Block a, Block b)
{
    return a.grp == b.grp && a.inst == b.inst;
}

/* The block all non-source operands of an unnamed op share, or none. */
static Block operand_block(const Dot *d, const IrNode *n)
{
    Block b = {-1, 0, 0};
    if (n->name || is_source(n))
        return b;
    for (int j = 0; j < n->nin; j++) {
        if (is_source(n->in[j]))
            continue;
        Block o = d->blk[n->in[j]->index];
        if (o.grp < 0 || (b.grp >= 0 && !same_block(b, o)))
            return (Block){-1, 0, 0};
        b = (Block){o.grp, o.inst, 0};
    }
    return b;
}

/* Unnamed ops join a block when their non-source operands are all in it
 * and one of their users is too (so an op after the last block stays
 * outside).  Users come later in the graph: decide in reverse order. */
static void inherit_ops(Dot *d)
{
    int nn = d->g->nnodes;
    Block *cand = ir_realloc(NULL, nn * sizeof *cand);
    bool *used_inside = calloc(nn ? nn : 1, sizeof *used_inside);
    IR_ASSERT(used_inside);
    for (int i = 0; i < nn; i++)
        cand[i] = operand_block(d, d->g->nodes[i]);
    for (int i = nn - 1; i >= 0; i--) {
        const IrNode *n = d->g->nodes[i];
        if (cand[i].grp >= 0 && used_inside[i])
            d->blk[i] = cand[i];
        for (int j = 0; j < n->nin; j++) {
            int k = n->in[j]->index;
            if (d->blk[i].grp >= 0 && same_block(cand[k], d->blk[i]))
                used_inside[k] = true;
        }
    }
    free(cand);
    free(used_inside);
}

/* Unnamed constants join the block of their users when those agree. */
static void inherit_sources(Dot *d)
{
    int nn = d->g->nnodes;
    char *state = calloc(nn ? nn : 1, 1); /* 0 no user yet, 1 one block, 2 mixed */
    Block *ub = calloc(nn ? nn : 1, sizeof *ub);
    IR_ASSERT(state && ub);
    for (int i = 0; i < nn; i++) {
        const IrNode *n = d->g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            int k = n->in[j]->index;
            if (state[k] == 0)
                ub[k] = d->blk[i];
            state[k] = state[k] == 0 || (state[k] == 1 && same_block(ub[k], d->blk[i])) ? 1 : 2;
        }
    }
    for (int i = 0; i < nn; i++) {
        const IrNode *n = d->g->nodes[i];
        if (!n->name && is_source(n) && state[i] == 1 && ub[i].grp >= 0)
            d->blk[i] = (Block){ub[i].grp, ub[i].inst, 0};
    }
    free(state);
    free(ub);
}

/* ---------------------------------------------------------------- visibility */

static bool collapsed(const Dot *d, int grp)
{
    return grp >= 0 && !d->expand && d->grp[grp].ninst > 1;
}

/* Hidden: a node of a collapsed instance other than the first. */
static bool hidden(const Dot *d, int i)
{
    Block b = d->blk[i];
    return collapsed(d, b.grp) && b.inst != d->grp[b.grp].inst[0];
}

/* The drawn endpoint of node i: itself (key = index) or its summary box
 * (key = -1 - group). */
static int endpoint(const Dot *d, int i)
{
    return hidden(d, i) ? -1 - d->blk[i].grp : i;
}

static void put_endpoint(const Dot *d, int key)
{
    if (key >= 0)
        fprintf(d->f, "n%d", d->g->nodes[key]->id);
    else
        fprintf(d->f, "summary%d", -1 - key);
}

/* ---------------------------------------------------------------- labels */

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void put_attr(FILE *f, const IrAttr *a)
{
    fprintf(f, " %s=", ir_attr_name((IrAttrKey)a->key));
    switch (ir_attr_kind((IrAttrKey)a->key)) {
    case AK_INT:
        fprintf(f, "%lld", (long long)a->i[0]);
        break;
    case AK_INTS:
        fputc('[', f);
        for (int k = 0; k < a->n; k++)
            fprintf(f, "%s%lld", k ? "," : "", (long long)a->i[k]);
        fputc(']', f);
        break;
    case AK_FLOAT:
        fprintf(f, "%g", a->f);
        break;
    case AK_STR:
        put_escaped(f, a->s ? a->s : "");
        break;
    }
}

/* "op attrs\ntype\nname" (the name relative to its block inside a cluster). */
static void put_label(const Dot *d, int i)
{
    const IrNode *n = d->g->nodes[i];
    char shape[256];
    ir_shape_str(&n->shape, d->g->sym, shape, sizeof shape);
    fprintf(d->f, "label=\"%s", ir_op_name(n->op));
    for (int k = 0; k < n->nattr; k++)
        if (n->attr[k].key != ATTR_TRAINABLE)
            put_attr(d->f, &n->attr[k]);
    if (n->op == OP_PARAM && !ir_node_int(n, ATTR_TRAINABLE, 1))
        fputs(" (frozen)", d->f);
    if (n->body)
        fprintf(d->f, " (%d ops)", n->body->nnodes);
    fprintf(d->f, "\\n%s", ir_dtype_name(n->dtype));
    put_escaped(d->f, shape);
    if (n->name) {
        fputs("\\n", d->f);
        put_escaped(d->f, n->name + d->blk[i].rest);
    }
    fputc('"', d->f);
}

static const char *node_style(const IrNode *n)
{
    if (n->op == OP_INPUT)
        return "shape=invhouse, fillcolor=\"#cfe2ff\"";
    if (n->op == OP_PARAM)
        return ir_node_int(n, ATTR_TRAINABLE, 1) ? "fillcolor=\"#fff3cd\""
                                                 : "style=\"filled,dashed\", fillcolor=\"#fff3cd\"";
    switch (ir_ops[n->op].kind) {
    case OPK_SOURCE:    return "fillcolor=\"#eeeeee\", fontsize=8";
    case OPK_REDUCE:    return "style=\"rounded,filled\", fillcolor=\"#d1ecf1\"";
    case OPK_MOVEMENT:  return "style=\"rounded,filled\", fillcolor=\"#f8f9fa\"";
    case OPK_OPAQUE:    return "style=\"rounded,filled\", fillcolor=\"#f8d7da\"";
    case OPK_COMPOSITE: return "style=\"rounded,filled\", fillcolor=\"#e2d9f3\"";
    default:            return "style=\"rounded,filled\", fillcolor=\"#ffffff\"";
    }
}

static void put_node(const Dot *d, int i, const char *indent)
{
    fprintf(d->f, "%sn%d [", indent, d->g->nodes[i]->id);
    put_label(d, i);
    fprintf(d->f, ", %s];\n", node_style(d->g->nodes[i]));
}

/* ---------------------------------------------------------------- nodes */

static void put_cluster(const Dot *d, int grp, long inst)
{
    const Group *gp = &d->grp[grp];
    fprintf(d->f, "  subgraph \"cluster_%d_%ld\" {\n    label=\"", grp, inst);
    fprintf(d->f, "%.*s.%ld", gp->plen, gp->prefix, inst);
    fprintf(d->f, "\";\n    style=\"rounded,dashed\";\n    color=\"#6c757d\";\n");
    for (int i = 0; i < d->g->nnodes; i++)
        if (d->blk[i].grp == grp && d->blk[i].inst == inst)
            put_node(d, i, "    ");
    fprintf(d->f, "  }\n");
}

/* One box for instances 1..N-1: "P.a … P.z (K more blocks, same structure)". */
static void put_summary(const Dot *d, int grp)
{
    const Group *gp = &d->grp[grp];
    int more = gp->ninst - 1;
    fprintf(d->f, "  summary%d [label=\"%.*s.%ld", grp, gp->plen, gp->prefix, gp->inst[1]);
    if (more > 1)
        fprintf(d->f, " \xe2\x80\xa6 %.*s.%ld", gp->plen, gp->prefix, gp->inst[gp->ninst - 1]);
    fprintf(d->f, " (%d more block%s, same structure)\", shape=box3d, fillcolor=\"#e9ecef\"];\n",
            more, more == 1 ? "" : "s");
}

static void put_nodes(const Dot *d)
{
    for (int i = 0; i < d->g->nnodes; i++)
        if (d->blk[i].grp < 0)
            put_node(d, i, "  ");
    for (int k = 0; k < d->ngrp; k++) {
        const Group *gp = &d->grp[k];
        int shown = collapsed(d, k) ? 1 : gp->ninst;
        for (int j = 0; j < shown; j++)
            put_cluster(d, k, gp->inst[j]);
        if (collapsed(d, k))
            put_summary(d, k);
    }
    for (int i = 0; i < d->g->nout; i++) {
        fprintf(d->f, "  out%d [label=\"output\\n", i);
        put_escaped(d->f, d->g->outs[i].name);
        fprintf(d->f, "\", shape=oval, fillcolor=\"#d1e7dd\"];\n");
    }
}

/* ---------------------------------------------------------------- edges */

/* True the first time an edge between these endpoints is offered. */
static bool first_time(Dot *d, int from, int to)
{
    for (int k = 0; k < d->nseen; k++)
        if (d->seen[k][0] == from && d->seen[k][1] == to)
            return false;
    if (d->nseen == d->seencap) {
        d->seencap = d->seencap ? 2 * d->seencap : 64;
        d->seen = ir_realloc(d->seen, d->seencap * sizeof *d->seen);
    }
    d->seen[d->nseen][0] = from;
    d->seen[d->nseen++][1] = to;
    return true;
}

static void put_edge(Dot *d, int from, int to, const IrNode *u)
{
    char shape[256];
    if (from == to || ((from < 0 || to < 0) && !first_time(d, from, to)))
        return;
    ir_shape_str(&u->shape, d->g->sym, shape, sizeof shape);
    fputs("  ", d->f);
    put_endpoint(d, from);
    fputs(" -> ", d->f);
    put_endpoint(d, to);
    fputs(" [label=\"", d->f);
    put_escaped(d->f, shape);
    fputs("\"];\n", d->f);
}

static void put_edges(Dot *d)
{
    for (int i = 0; i < d->g->nnodes; i++) {
        const IrNode *n = d->g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            const IrNode *u = n->in[j];
            if (hidden(d, u->index) && is_source(u))
                continue; /* params and constants of collapsed blocks */
            put_edge(d, endpoint(d, u->index), endpoint(d, i), u);
        }
    }
    for (int i = 0; i < d->g->nout; i++) {
        const IrNode *u = d->g->outs[i].node;
        char shape[256];
        ir_shape_str(&u->shape, d->g->sym, shape, sizeof shape);
        fputs("  ", d->f);
        put_endpoint(d, endpoint(d, u->index));
        fprintf(d->f, " -> out%d [label=\"", i);
        put_escaped(d->f, shape);
        fputs("\"];\n", d->f);
    }
}

/* ---------------------------------------------------------------- entry */

void ir_dot(const IrGraph *g, const IrDotOptions *opt, FILE *f)
{
    Dot d = {g, f, opt && opt->expand, NULL, NULL, 0, NULL, 0, 0};
    for (int i = 0; i < g->nnodes; i++) /* edges are found by node index */
        IR_ASSERT(g->nodes[i]->index == i);
    d.blk = ir_realloc(NULL, g->nnodes * sizeof *d.blk);
    assign_named(&d);
    inherit_ops(&d);
    inherit_sources(&d);
    for (int i = 0; i < g->nnodes; i++)
        if (d.blk[i].grp >= 0)
            add_instance(&d.grp[d.blk[i].grp], d.blk[i].inst);
    fputs("digraph \"", f);
    put_escaped(f, g->name);
    fputs("\" {\n  rankdir=TB;\n"
          "  node [shape=box, style=filled, fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#495057\"];\n", f);
    put_nodes(&d);
    put_edges(&d);
    fputs("}\n", f);
    for (int k = 0; k < d.ngrp; k++)
        free(d.grp[k].inst);
    free(d.grp);
    free(d.blk);
    free(d.seen);
}
