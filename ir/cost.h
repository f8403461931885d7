/* cost.h — static costs of a graph: parameter counts, FLOPs, activation bytes.
 *
 * The one FLOP model of gradc: `gradc check`, `plan` and `bench` print it
 * and codegen's per-kernel figures (CgNodeCode.flops) are it.  Costs are
 * evaluated under a binding of the graph's symbols (binding[i] is the
 * value of symbol i, as for ir_dim_eval) and computed in double precision,
 * so that absurd shapes saturate instead of overflowing.  Each op's rule
 * and weight are the cost and flops columns of its row in ops.def:
 *
 *   matmul            2*M*N*K per batch entry
 *   elementwise       1 per output element (cast, dropout and where too)
 *   exp, log          10 per element, tanh 14: the float operations of
 *                     their inline lowering (codegen/cg_lower_math.c),
 *                     which the runtime weighs to decide a parallel split
 *   reductions        1 per input element (sum, max, mean)
 *   softmax           14 per element  (max, sub, exp, sum, div)
 *   log_softmax       14 per element  (max, sub, exp, sum, log, sub)
 *   layernorm         8 per element   (mean, sub, square, mean, rsqrt, mul, mul, add)
 *   gelu              16 per element  (the tanh form as x / (1 + exp(-2u)))
 *   causal_mask       1 per element
 *   cross_entropy     15 per logit    (log_softmax and the pick)
 *   causal_attention  per causal pair and head (ir/cost.c)
 *   sources, movement and gather   0
 * A composite's figure is that of its own kernel (cg_lower_reduce.c,
 * cg_lower_math.c), near that of its decomposition.  One FLOP model means
 * one figure: change a weight in ops.def, not here.
 *
 *   IrParamStats ps = ir_cost_params(g);
 *   int64_t flops = ir_cost_flops(g, (int64_t[]){1, 1024});   // B=1, T=1024
 */
#ifndef GRADC_IR_COST_H
#define GRADC_IR_COST_H

#include "ir.h"

typedef struct IrParamStats {
    int64_t elems;       /* elements of all params (an aliased param counts once) */
    int64_t trainable;   /* elements of params with trainable=1 */
    int64_t bytes;       /* their storage at their dtype */
    int tensors;         /* number of param nodes */
} IrParamStats;

/* Params with symbolic dims (unusual) are counted in `tensors` only. */
IrParamStats ir_cost_params(const IrGraph *g);
/* Elements of a shape under a binding (saturates at INT64_MAX/4). */
int64_t ir_cost_numel(const IrShape *s, const int64_t *binding);
int64_t ir_cost_node_flops(const IrGraph *g, const IrNode *n, const int64_t *binding);
/* The FLOPs of the one kernel that nodes first..end of g make: a node's
 * own, or for a run of sibling fused nodes (passes/fuse.c) the distinct
 * nodes of their bodies, which codegen computes once.  Codegen's per-kernel
 * figures and `gradc plan` both count with it. */
int64_t ir_cost_run_flops(const IrGraph *g, int first, int end, const int64_t *binding);
/* Forward FLOPs: the sum over nodes, fusion bodies included. */
int64_t ir_cost_flops(const IrGraph *g, const int64_t *binding);
/* Bytes of every node that is not a param: an upper bound on activation
 * memory with no buffer reuse. */
int64_t ir_cost_activation_bytes(const IrGraph *g, const int64_t *binding);
/* The last two unsaturated, in double precision: how far a binding is past
 * what the int64 figures hold (the CLI refuses it, cli_bind). */
double ir_cost_flops_f(const IrGraph *g, const int64_t *binding);
double ir_cost_activation_bytes_f(const IrGraph *g, const int64_t *binding);

#endif
