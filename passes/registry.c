/* registry.c — the table of passes and the default pipeline.
 *
 * Registering a pass is one row here (plus its entry point in pass.h).  The
 * rows follow the order of the catalogue in docs/passes.md, which is also
 * the order in which a train-step compile runs them.  The CLI's help, the
 * "unknown pass" errors and the --print-after checks all read this table.
 */
#include "pass.h"

const PassInfo pass_registry[] = {
    {"cse", "merge nodes that compute the same value (same op, operands, attributes, type)",
     pass_cse},
    {"dce", "remove nodes that no output depends on (inputs and params stay)", pass_dce},
    {"attention", "causal attention chains (matmul, causal_mask, scale, softmax, dropout, matmul) "
     "-> one causal_attention op; q/k/v linears -> one matmul", pass_attention},
    {"autodiff", "add the loss (if none) and reverse-mode gradients: outputs grad.P per trainable "
     "param", pass_autodiff},
    {"optimizer", "append the AdamW update of every param with a grad.P output (lr, step inputs; "
     "adam.m/v state)", pass_optimizer},
    {"decompose", "rewrite composite ops (softmax, layernorm, gelu, cross_entropy, ...) into "
     "primitives", pass_decompose},
    {"simplify", "algebraic identities, constant folding, movement chains, broadcast folding, "
     "exact strength reductions", pass_simplify},
    {"fuse", "group primitives into kernels (elementwise, row, reduce, matmul with epilogue); "
     "fused nodes with bodies", pass_fuse},
    {"schedule", "reorder the kernels to keep the live bytes low: free early, compute late "
     "(at the binding; nominal B=2, T=64)", pass_schedule},
    {"memplan", "arena offsets by liveness, in place where safe: offset/inplace attributes "
     "(at the binding; nominal B=2, T=64)", pass_memplan},
};

const int pass_count = sizeof pass_registry / sizeof pass_registry[0];

/* What compiles run (gradc run, verify, bench, train) and, up to fuse,
 * what `gradc dump --stage=opt` shows; --stage=kernels shows all of it.
 * Later issues grow it to the full train-step pipeline, in this order:
 *     autodiff,decompose,simplify,cse,dce,fuse,schedule,memplan
 * (autodiff and the optimizer first, fusion and memory planning last).
 * decompose and simplify joined it together with fuse: without fusion
 * every primitive of a decomposed composite is a kernel of its own (gpt-mini
 * forward, 2 layers: 60 kernels with cse,dce, where codegen lowers the
 * composites whole; 144 with decompose,simplify,cse,dce), and fuse rebuilds
 * the composites' kernels and more from the primitives (26 kernels).
 * schedule orders the kernels for a low peak of live bytes, at the nominal
 * binding B=2, T=64 (compiles bind later); memplan is not in it, because
 * its offsets are numbers at one binding: the runtime plans its arena with
 * memplan's planner at its own binding, and `gradc plan` and
 * `dump --stage=sched` run memplan at theirs. */
const char *const pass_default_pipeline = "attention,decompose,simplify,cse,dce,fuse,schedule";

/* What turns a model into its train step, before the pipeline above: the
 * attention rewrite must come before autodiff, so that the backward is the
 * causal_attention_grad op rather than the T x T primitives' gradients. */
const char *const pass_train_pipeline = "attention,autodiff,optimizer";
