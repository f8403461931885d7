/* pass.h — the pass manager and the passes of gradc.
 *
 * Every pass is one file with one entry point of one signature,
 *     bool pass_NAME(IrGraph *g, PassCtx *ctx);
 * that rewrites g in place (nodes come from g's arena; dropped nodes are
 * simply forgotten) and returns false only on a user error, which it
 * describes in ctx->err.  Passes are registered by name with a one-line
 * description in passes/registry.c, and pipelines are strings:
 *
 *     PassCtx ctx = pass_ctx_default(&err);
 *     ctx.print_after = "all";
 *     if (!pass_run_pipeline(g, "cse,dce", &ctx)) { ir_error_print(&err, stderr); ... }
 *
 * With GRADC_VERIFY_PASSES (tests and debug builds) the verifier runs after
 * every pass, and a pass that leaves a broken graph is reported by name.
 */
#ifndef GRADC_PASS_H
#define GRADC_PASS_H

#include "ir/ir.h"

#define PASS_MAX_FREEZE 16

/* Options of the train-step passes (autodiff, optimizer). */
typedef struct PassTrainOpts {
    const char *logits;        /* output holding the logits ("logits") */
    int ignore_index;          /* cross-entropy targets to skip (-100) */
    const char *freeze[PASS_MAX_FREEZE]; /* glob patterns of params to freeze */
    int nfreeze;
    double beta1, beta2, eps, weight_decay;
    double clip_norm;          /* <= 0: no clipping */
    bool decay_all;            /* true: decay every param (PyTorch, the book); false: skip
                                * biases and norms */
    const char *broken_rule;   /* tests of gradcheck only: an op whose gradient rule autodiff
                                * scales by 1.25, so that gradcheck must catch it; NULL: none */
} PassTrainOpts;

#define PASS_MAX_LORA_TARGETS 16

/* How the LoRA scale s is computed from alpha and the rank r (lora.c). */
typedef enum PassLoraScale {
    PASS_LORA_ALPHA_R,         /* s = alpha / r (PEFT's, the default) */
    PASS_LORA_ALPHA,           /* s = alpha (the book's LoRALayer) */
} PassLoraScale;

/* Options of the lora pass (docs/passes.md, lora). */
typedef struct PassLoraOpts {
    int rank;                  /* r; 0: the pass does nothing */
    double alpha;              /* <= 0: the rank */
    PassLoraScale scale;
    const char *targets[PASS_MAX_LORA_TARGETS]; /* globs of the weights to adapt; none: every
                                * 2-D param that is a matmul's right operand */
    int ntargets;
} PassLoraOpts;

typedef struct PassCtx {
    IrError *err;
    FILE *out;                 /* where --print-after/--print-before and --explain go */
    const char *print_after;   /* pass name, "all", or NULL */
    const char *print_before;  /* pass name, "all", or NULL */
    bool explain;              /* passes print their decisions (fuse) */
    bool verify;               /* run the verifier after every pass */
    PassTrainOpts train;
    PassLoraOpts lora;
    bool internal;             /* set with err when the verifier rejected a pass's output:
                                * a bug in gradc, not in the input (the CLI exits 2) */
    const int64_t *binding;    /* binding[i]: the value of symbol i, for the passes that weigh
                                * sizes (schedule, memplan); NULL: pass_binding's nominal one */
} PassCtx;

typedef bool (*PassFn)(IrGraph *g, PassCtx *ctx);

typedef struct PassInfo {
    const char *name;
    const char *desc;
    PassFn fn;
} PassInfo;

/* The registered passes, in the order of the catalogue (docs/passes.md). */
extern const PassInfo pass_registry[];
extern const int pass_count;

/* ---------------------------------------------------------------- stages
 * The named points of the pipeline (registry.c, docs/passes.md "Stages"),
 * in pipeline order: graph, grad, opt, kernels, sched, llvm, asm.  A stage
 * is reached from the model's graph by its pipeline: `forward` for the
 * model itself, `train` for its train step, which runs the grad stage's
 * passes first (grad comes between graph and opt; graph and grad are the
 * same in both).  llvm and asm are codegen's output for the graph of their
 * pipeline, the graph that every compile compiles:
 *
 *     const PassStage *s = pass_stage_find(name, &err);    // user input
 *     if (!s || !pass_stage_run(g, s, train, &ctx)) ...
 *     pass_stage_run(g, pass_stage("kernels"), false, &ctx); // gradc's own
 */
typedef enum PassStageOut {
    PASS_OUT_IR,         /* the stage is a graph */
    PASS_OUT_LLVM,       /* the optimized LLVM IR of the stage graph's kernels */
    PASS_OUT_ASM,        /* their machine code */
} PassStageOut;

typedef struct PassStage {
    const char *name;
    const char *desc;      /* one line, for help texts */
    const char *forward;   /* the pipeline from the model's graph to the stage */
    const char *train;     /* the same for the model's train step */
    PassStageOut out;
    bool binding;          /* specialized to the binding in the pass context (sched, llvm, asm) */
} PassStage;

extern const PassStage pass_stages[];
extern const int pass_stage_count;

/* The stage called name, or NULL. */
const PassStage *pass_stage_lookup(const char *name);
/* The same for a name from the user: NULL after an error in err that lists
 * the stages and suggests the nearest. */
const PassStage *pass_stage_find(const char *name, IrError *err);
/* The stage called name, which must exist (a name in gradc's own code). */
const PassStage *pass_stage(const char *name);
/* "graph, grad, opt, kernels, sched, llvm, asm", for messages. */
const char *pass_stage_names(void);
/* s's pipeline: s->train when train, else s->forward. */
const char *pass_stage_pipeline(const PassStage *s, bool train);
/* Runs s's pipeline on the model's graph g. */
bool pass_stage_run(IrGraph *g, const PassStage *s, bool train, PassCtx *ctx);
/* The passes of a compile (gradc run, verify, bench, train): the pipeline
 * of the llvm stage, or with passes != NULL the pipeline `passes` in place
 * of its forward part (after the grad stage's when train). */
bool pass_run_compile(IrGraph *g, const char *passes, bool train, PassCtx *ctx);

PassCtx pass_ctx_default(IrError *err);
/* NULL when no pass has that name. */
const PassInfo *pass_lookup(const char *name);
/* The registered pass name nearest to `name` (edit distance), for hints. */
const char *pass_nearest(const char *name);
/* Checks a pipeline string and ctx->print_after/print_before (each a pass
 * name, "all" or NULL) without running anything, so a CLI can reject a bad
 * flag before loading a model.  Fills ctx->err. */
bool pass_check_pipeline(const char *pipeline, PassCtx *ctx);
/* Runs a comma-separated list of pass names.  Unknown names are errors that
 * list the known passes. */
bool pass_run_pipeline(IrGraph *g, const char *pipeline, PassCtx *ctx);
bool pass_run_one(IrGraph *g, const PassInfo *p, PassCtx *ctx);

/* The passes (one file each). */
bool pass_dce(IrGraph *g, PassCtx *ctx);
bool pass_cse(IrGraph *g, PassCtx *ctx);

/* decompose.c: every composite op into primitives (docs/passes.md). */
bool pass_decompose(IrGraph *g, PassCtx *ctx);
/* Whether decompose knows composite op `op` (tests check every composite). */
bool pass_decompose_has_rule(IrOp op);
/* simplify.c: algebraic identities, constant folding, movement chains,
 * broadcast folding and exact strength reductions, to a fixed point. */
bool pass_simplify(IrGraph *g, PassCtx *ctx);

/* fuse.c (+ fuse_rules.c, fuse_emit.c, fuse_layout.c): primitives into
 * kernels, fused nodes with bodies (docs/passes.md, fuse); with
 * ctx->explain every kernel and refusal is a `// fuse:` line on ctx->out. */
bool pass_fuse(IrGraph *g, PassCtx *ctx);

/* autodiff.c, grad_rules.c, optimizer.c: the train-step graph (docs/autodiff.md).
 * pass_autodiff adds the loss (if the graph has no scalar output "loss") and
 * an output "grad.P" for every trainable param P; pass_optimizer consumes
 * them and appends the AdamW update (outputs P, adam.m.P, adam.v.P). */
/* Causal attention chains -> causal_attention; q/k/v -> one matmul (attention.c). */
bool pass_attention(IrGraph *g, PassCtx *ctx);
bool pass_autodiff(IrGraph *g, PassCtx *ctx);
bool pass_optimizer(IrGraph *g, PassCtx *ctx);
/* The forward half of the train step, which pass_autodiff runs first:
 * the "loss" output (adding input `targets` and cross_entropy over the
 * logits when there is none) and the input `step` wired into every
 * dropout.  Returns the loss node; NULL (and ctx->err) on failure. */
IrNode *pass_train_forward(IrGraph *g, PassCtx *ctx);
/* Moves a new input up among the graph's leading inputs and params. */
void pass_place_input(IrGraph *g, IrNode *n);
/* A param with trainable != 0 that no freeze glob matches. */
bool pass_param_trainable(const IrNode *p, const PassTrainOpts *o);
/* Why operand `operand` of op has no gradient, or NULL if it has one. */
const char *pass_autodiff_nondiff_reason(IrOp op, int operand);
/* Trainable parameter count and AdamW state bytes (m and v, f32) of a
 * model graph; -1 counts when a param shape is symbolic. */
void pass_train_stats(const IrGraph *g, const PassTrainOpts *o, int64_t *trainable,
                      int64_t *state_bytes);

/* lora.c: every matmul x.W whose right operand W is a 2-D param matching
 * ctx->lora.targets becomes x.W + s.(x.A).B with new params W.lora_A [in, r]
 * and W.lora_B [r, out]; every other param is frozen (docs/passes.md, lora). */
bool pass_lora(IrGraph *g, PassCtx *ctx);
/* The scale s of o: alpha / r or alpha (alpha <= 0 taken as r). */
double pass_lora_scale(const PassLoraOpts *o);
/* alpha as o means it: o->alpha, or the rank when o->alpha <= 0. */
double pass_lora_alpha(const PassLoraOpts *o);
/* "alpha/r" or "alpha". */
const char *pass_lora_scale_name(PassLoraScale s);
/* Whether name is an adapter's: it ends in ".lora_A" or ".lora_B". */
bool pass_lora_is_adapter(const char *name);

/* ---------------------------------------------------------------- schedule.c, memplan.c
 * Ordering and memory at one binding of the dims (docs/passes.md, schedule
 * and memplan).  Every node's value is a buffer: inputs and params live in
 * the runtime's slabs (sources), a reshape is a view of its operand's buffer
 * (codegen lowers it to no code), and every other node is a kernel whose
 * result gets arena space; sibling fused nodes are one kernel.
 *
 *   PassMemPlan p;
 *   if (pass_memplan_build(g, binding, NULL, &p, &err))
 *       printf("peak %lld of %lld\n", (long long)p.peak_bytes, (long long)p.naive_bytes);
 *   pass_memplan_free(&p);
 */

/* Arena buffers start on a cache line (the runtime's RT_ALIGN). */
#define PASS_MEM_ALIGN 64
/* At most this many adjacent siblings are computed by one kernel; a longer
 * run computes each sibling on its own (codegen's FX_MAX_OUT). */
#define PASS_MAX_SIBLINGS 8

/* binding[i] for every symbol i of g: ctx->binding when set (ctx may be
 * NULL), else the nominal binding B=2, T=64 and 64 for any other symbol. */
void pass_binding(const IrGraph *g, const PassCtx *ctx, int64_t *binding);

typedef enum PassMemKind { PM_SOURCE, PM_VIEW, PM_KERNEL } PassMemKind;
PassMemKind pass_mem_kind(const IrNode *n);
/* A view's byte offset into its operand's buffer at binding: 0 for a
 * reshape, start * (the elements of one index of the axis) for a slice
 * whose leading dims before the axis are all 1 (a contiguous range). */
int64_t pass_view_offset(const IrNode *n, const int64_t *binding);
/* Bytes of n's value at the binding, rounded up to PASS_MEM_ALIGN. */
int64_t pass_mem_bytes(const IrNode *n, const int64_t *binding);
/* [*first, *end]: the sibling run that computes node i as one kernel
 * (i alone when it has no siblings). */
void pass_sibling_run(const IrGraph *g, int i, int *first, int *end);
/* [*first, *end]: the nodes that one kernel launch computes with node i:
 * its sibling run, or the adjacent sibling runs of one horizontal group
 * (`hgroup`, fuse_horizontal.c), which codegen runs as one kernel over the
 * concatenation of their spaces.  Every value these nodes read is live
 * until *end, and all their outputs are written at *end. */
void pass_launch_run(const IrGraph *g, int i, int *first, int *end);
/* A kernel that reads every operand in step with the element it writes:
 * an elementwise op, or a fused node whose body is elementwise. */
bool pass_elementwise_kernel(const IrNode *n);
/* The input or param that output root n writes back (an output named like
 * it), when n's kernel may compute the new value straight into that source's
 * buffer provided nothing after the kernel reads the old value; else -1. */
int pass_mem_writeback(const IrGraph *g, const IrNode *n);
/* The input or param that an output whose root is n is named like (the
 * runtime writes n's value back into it after a run), or -1. */
int pass_written_back(const IrGraph *g, const IrNode *n);

typedef struct PassMemOpts {
    const bool *pinned;    /* [nnodes] kernel roots the caller keeps outside the arena; may
                            * be NULL */
    bool use_offsets;      /* adopt the graph's `offset` attributes when they are valid here */
    FILE *explain;         /* each in-place decision as a `// memplan:` line; NULL: quiet */
} PassMemOpts;

/* Where each node's value lives, by liveness, at one binding. */
typedef struct PassMemPlan {
    int n;                 /* nodes */
    int *root;             /* [n] node whose buffer node i uses (views resolved) */
    int *begin;            /* [n] roots: index where the buffer is written (a sibling
                            * run's last node: its kernel writes every sibling) */
    int *last;             /* [n] roots: last index that reads it; n: lives to the end */
    int *inplace;          /* [n] operand index whose buffer node i takes over, or -1 */
    int *slab;             /* [n] the source node whose buffer node i is written into
                            * (write-back in place), or -1 */
    int *chain;            /* [n] arena roots: the first root of its in-place chain */
    int64_t *offset;       /* [n] arena offset of a root, -1 when not in the arena */
    int64_t *size;         /* [n] bytes of a kernel root, rounded up to PASS_MEM_ALIGN */
    int64_t peak_bytes;    /* arena size: the highest offset + size */
    int64_t naive_bytes;   /* every kernel's value in a buffer of its own */
    int64_t live_bytes;    /* the most bytes live at one time (a lower bound on peak) */
    int64_t slab_bytes;    /* values written in place into a source's buffer */
    int nbuffers;          /* arena roots */
    int ninplace;          /* arena roots that take over an operand's buffer */
    int nkernels;          /* kernels as codegen runs them (a sibling run once) */
    bool from_graph;       /* the offsets are the graph's own (opts.use_offsets) */
} PassMemPlan;

/* Plans g's arena at binding (NULL for a graph without symbols).  opts
 * may be NULL.  Fills err (an internal error) only when g is not in SSA
 * order; free the plan with pass_memplan_free either way. */
bool pass_memplan_build(const IrGraph *g, const int64_t *binding, const PassMemOpts *opts,
                        PassMemPlan *plan, IrError *err);
void pass_memplan_free(PassMemPlan *plan);
/* True if arena roots a and b need memory of their own at the same time:
 * their lives overlap and neither took the other's buffer over in place. */
bool pass_memplan_overlap_in_time(const PassMemPlan *plan, int a, int b);

/* schedule.c: a topological order that keeps the live bytes low, at
 * ctx->binding (docs/passes.md, schedule). */
bool pass_schedule(IrGraph *g, PassCtx *ctx);
/* memplan.c: the plan of pass_memplan_build as `offset` and `inplace`
 * attributes, at ctx->binding. */
bool pass_memplan(IrGraph *g, PassCtx *ctx);

/* decode.c: the KV-cached decode step of a model graph (see there):
 * inputs idx [B,1], gen.pos i32[1] and the caches kv.k.L / kv.v.L
 * [B,H,S,hd] (state, written back by outputs of the same names); output
 * logits [B,1,V].  NULL + err (the reason) when the model lacks the
 * attention pattern.  Not a registered pass: it returns a new graph. */
IrGraph *pass_decode_graph(const IrGraph *model, int *nlayers, IrError *err);
/* Sets p = 0 on every dropout node: the inference form of a graph. */
void pass_no_dropout(IrGraph *g);

#endif
