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
    bool decay_all;            /* true: decay every param (PyTorch, the book); false: skip biases and norms */
} PassTrainOpts;

typedef struct PassCtx {
    IrError *err;
    FILE *out;                 /* where --print-after/--print-before and --explain go */
    const char *print_after;   /* pass name, "all", or NULL */
    const char *print_before;  /* pass name, "all", or NULL */
    bool explain;              /* passes print their decisions (fuse) */
    bool verify;               /* run the verifier after every pass */
    PassTrainOpts train;
    bool internal;             /* set with err when the verifier rejected a pass's output:
                                * a bug in gradc, not in the input (the CLI exits 2) */
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

/* The default pipelines, as strings (docs/passes.md). */
extern const char *const pass_default_pipeline;

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

#endif
