/* registry.c — the table of passes and the table of stages.
 *
 * Registering a pass is one row here (plus its entry point in pass.h).  The
 * rows follow the order of the catalogue in docs/passes.md, which is also
 * the order in which a train-step compile runs them.  The CLI's help, the
 * "unknown pass" errors and the --print-after checks all read this table.
 *
 * The stages (graph, grad, opt, kernels, sched, llvm, asm) are the other
 * table: every pipeline gradc runs on its own is a stage's, and every
 * command and test that needs one asks for the stage by name (pass_stage,
 * pass_stage_find), so that `dump`, `dot`, `plan`, the compiles and the
 * tests cannot drift apart.
 */
#include "pass.h"

const PassInfo pass_registry[] = {
    {"cse", "merge nodes that compute the same value (same op, operands, attributes, type)",
     pass_cse},
    {"dce", "remove nodes that no output depends on (inputs and params stay)", pass_dce},
    {"lora", "low-rank adapters: matmul x.W by a 2-D param -> x.W + s.(x.A).B with new params "
     "W.lora_A, W.lora_B; freezes every other param (--lora-rank R)", pass_lora},
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

/* ---------------------------------------------------------------- stages
 *
 * The stages are the points of the pipeline that the CLI names (dump, dot,
 * plan) and that the compiles run to, each defined here once by the passes
 * that lead to it from the model's graph.  Each pipeline is the one before
 * it plus a step, so a stage is always a later point of the same pipeline:
 *
 *   OPT      the primitive graph.  attention comes first so that the
 *            causal attention chains become one op before decompose would
 *            take their softmax apart.
 *   KERNELS  + fuse.  decompose and simplify joined the pipeline together
 *            with fuse: without fusion every primitive of a decomposed
 *            composite is a kernel of its own (gpt-mini forward, 2 layers:
 *            60 kernels with cse,dce, where codegen lowers the composites
 *            whole; 144 with decompose,simplify,cse,dce), and fuse rebuilds
 *            the composites' kernels and more from the primitives (26).
 *   COMPILE  + schedule, which orders the kernels for a low peak of live
 *            bytes at the binding in the pass context (nominal B=2, T=64).
 *            This is the graph that codegen compiles (gradc run, verify,
 *            bench, train; the llvm and asm stages).  memplan is not in it:
 *            its offsets are numbers at one binding, and the runtime plans
 *            its arena with memplan's planner at the binding it runs at.
 *   SCHED    + memplan, at the binding in the pass context (dump --stage=sched
 *            and plan pass theirs): the arena offsets in the graph.
 *
 * The train step (the grad stage) comes between graph and opt: a train
 * compile runs TRAIN and then the forward pipeline of its stage.  The
 * attention rewrite must come before autodiff, so that the backward is the
 * causal_attention_grad op rather than the T x T primitives' gradients; the
 * second `attention` of a train pipeline finds nothing left to rewrite.
 */
#define TRAIN "attention,autodiff,optimizer"
#define OPT "attention,decompose,simplify,cse,dce"
#define KERNELS OPT ",fuse"
#define COMPILE KERNELS ",schedule"
#define SCHED COMPILE ",memplan"

const PassStage pass_stages[] = {
    {"graph", "the frontend's graph, before any pass", "", "", PASS_OUT_IR, false},
    {"grad", "the train step: loss, gradients and AdamW update (" TRAIN ")", TRAIN, TRAIN,
     PASS_OUT_IR, false},
    {"opt", "the primitive graph: the pipeline up to fusion (" OPT ")", OPT, TRAIN "," OPT,
     PASS_OUT_IR, false},
    {"kernels", "fused kernels with their bodies (opt, then fuse)", KERNELS, TRAIN "," KERNELS,
     PASS_OUT_IR, false},
    {"sched", "the kernels in their scheduled order with arena offsets (kernels, then schedule "
     "and memplan, at a binding)", SCHED, TRAIN "," SCHED, PASS_OUT_IR, true},
    {"llvm", "the optimized LLVM IR of the kernels that codegen compiles (kernels, then "
     "schedule, at a binding)", COMPILE, TRAIN "," COMPILE, PASS_OUT_LLVM, true},
    {"asm", "the machine code of the kernels (as llvm)", COMPILE, TRAIN "," COMPILE,
     PASS_OUT_ASM, true},
};

const int pass_stage_count = sizeof pass_stages / sizeof pass_stages[0];
