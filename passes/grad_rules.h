/* grad_rules.h — private interface between autodiff.c and grad_rules.c.
 *
 * autodiff.c walks the graph backwards and keeps the gradient side table;
 * grad_rules.c holds one rule per op (ad_<name>, from ops.def) that reads
 * the gradient of a node's output and hands a gradient to each operand
 * with ad_acc.  Nothing outside these two files includes this header.
 */
#ifndef GRADC_GRAD_RULES_H
#define GRADC_GRAD_RULES_H

#include "passes/pass.h"

typedef struct AdState {
    IrGraph *g;
    int nfwd;          /* nodes of the forward graph; the side tables' size */
    IrNode **grad;     /* grad[i]: d loss / d nodes[i], NULL while none */
    bool *need;        /* need[i]: nodes[i] depends on a trainable param */
    IrOp broken;       /* test hook: this op's rule is scaled (OP_COUNT: none) */
    bool in_broken;    /* the rule being run is the broken one */
    IrError *err;
    bool failed;
} AdState;

/* A rule gets the node and the gradient of its output (same shape). */
typedef void (*AdRule)(AdState *ad, IrNode *n, IrNode *g);

extern const AdRule ad_rules[OP_COUNT];

/* Adds `g` (already of x's shape) to the gradient of x, if x needs one. */
void ad_acc(AdState *ad, IrNode *x, IrNode *g);
/* True when operand j of n is differentiable and depends on a param. */
bool ad_wants(const AdState *ad, const IrNode *n, int j);
/* Records a user error for node n; the pass then fails. */
void ad_fail(AdState *ad, const IrNode *n, const char *msg);

#endif
