/* manager.c — the pass manager: lookup, pipeline strings, printing, verification.
 *
 * A pipeline is a string of pass names separated by commas ("cse,dce"); the
 * empty string is the empty pipeline.  The whole string is checked before
 * any pass runs, so a typo in the last name never leaves a half-optimized
 * graph behind, and an unknown name is reported with the list of known
 * passes and the nearest one.
 *
 * pass_run_one wraps every pass the same way:
 *
 *     print-before?  ->  pass  ->  verifier (ctx->verify)  ->  print-after?
 *
 * The dumps start with a header line `// -----// IR after NAME //----- //`
 * so that several of them can be told apart (and matched by FileCheck) in
 * one output stream.  A pass that leaves a graph the verifier rejects is a
 * bug in that pass: the error names it and ctx->internal is set, so the CLI
 * can exit 2 rather than blame the user's input.  The input itself is
 * verified once before the first pass, so the blame lands on the right side.
 *
 * The stages (registry.c) are looked up here too: a stage is a name for a
 * pipeline, run by the same pass_run_pipeline.
 */
#include "pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASS_NAME_MAX 64

PassCtx pass_ctx_default(IrError *err)
{
    PassCtx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.out = stdout;
#ifdef GRADC_VERIFY_PASSES
    c.verify = true;
#endif
    c.train.logits = "logits";
    c.train.ignore_index = -100;
    c.train.beta1 = 0.9;
    c.train.beta2 = 0.999;
    c.train.eps = 1e-8;
    c.train.weight_decay = 0.1;
    c.train.clip_norm = 1.0;
    c.train.decay_all = true;
    return c;
}

const PassInfo *pass_lookup(const char *name)
{
    for (int i = 0; i < pass_count; i++)
        if (!strcmp(pass_registry[i].name, name))
            return &pass_registry[i];
    return NULL;
}

/* ---------------------------------------------------------------- names */

static int min3(int a, int b, int c)
{
    int m = a < b ? a : b;
    return m < c ? m : c;
}

/* Levenshtein distance of two short names (longer ones compare as far). */
static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la >= PASS_NAME_MAX || lb >= PASS_NAME_MAX)
        return 1 << 20;
    int d[PASS_NAME_MAX][PASS_NAME_MAX];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++)
            d[i][j] = min3(d[i - 1][j - 1] + (a[i - 1] != b[j - 1]), d[i - 1][j] + 1,
                           d[i][j - 1] + 1);
    return d[la][lb];
}

const char *pass_nearest(const char *name)
{
    const char *best = pass_count ? pass_registry[0].name : "";
    int bestd = 1 << 30;
    for (int i = 0; i < pass_count; i++) {
        int d = edit_distance(name, pass_registry[i].name);
        if (d < bestd) {
            bestd = d;
            best = pass_registry[i].name;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- stages */

const PassStage *pass_stage_lookup(const char *name)
{
    for (int i = 0; i < pass_stage_count; i++)
        if (!strcmp(pass_stages[i].name, name))
            return &pass_stages[i];
    return NULL;
}

const char *pass_stage_names(void)
{
    static char buf[256];
    size_t len = 0;
    for (int i = 0; i < pass_stage_count && len < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? ", " : "",
                                pass_stages[i].name);
    return buf;
}

const PassStage *pass_stage_find(const char *name, IrError *err)
{
    const PassStage *s = pass_stage_lookup(name);
    if (s)
        return s;
    const char *best = pass_stages[0].name;
    int bestd = 1 << 30;
    for (int i = 0; i < pass_stage_count; i++) {
        int d = edit_distance(name, pass_stages[i].name);
        if (d < bestd) {
            bestd = d;
            best = pass_stages[i].name;
        }
    }
    ir_error(err, "unknown stage '%.200s'; stages: %s", name, pass_stage_names());
    ir_error_hint(err, "did you mean '%s'?", best);
    return NULL;
}

const PassStage *pass_stage(const char *name)
{
    const PassStage *s = pass_stage_lookup(name);
    if (!s) {
        fprintf(stderr, "gradc: internal error: no stage '%s' in passes/registry.c\n", name);
        abort();
    }
    return s;
}

const char *pass_stage_pipeline(const PassStage *s, bool train)
{
    return train ? s->train : s->forward;
}

bool pass_stage_run(IrGraph *g, const PassStage *s, bool train, PassCtx *ctx)
{
    return pass_run_pipeline(g, pass_stage_pipeline(s, train), ctx);
}

bool pass_run_compile(IrGraph *g, const char *passes, bool train, PassCtx *ctx)
{
    if (!passes)
        return pass_stage_run(g, pass_stage("llvm"), train, ctx);
    if (!pass_check_pipeline(passes, ctx))
        return false;
    return (!train || pass_stage_run(g, pass_stage("grad"), true, ctx)) &&
           pass_run_pipeline(g, passes, ctx);
}

/* "autodiff, cse, dce" */
static void known_passes(char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < pass_count && len < cap; i++)
        len += snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", pass_registry[i].name);
}

static bool unknown_pass(PassCtx *ctx, const char *what, const char *name)
{
    char known[256];
    known_passes(known, sizeof known);
    ir_error(ctx->err, "unknown pass '%s' in %s; known passes: %s", name, what, known);
    ir_error_hint(ctx->err, "did you mean '%s'?", pass_nearest(name));
    return false;
}

/* ---------------------------------------------------------------- pipelines */

/* Copies the next comma-separated name of *p into buf, without surrounding
 * blanks, and advances *p past it.  Returns false at the end of the string. */
static bool next_name(const char **p, char *buf, size_t cap)
{
    const char *s = *p;
    if (!*s)
        return false;
    const char *end = strchr(s, ',');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    *p = end ? end + 1 : s + n;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return true;
}

static bool check_name(const char *name, const char *pipeline, PassCtx *ctx)
{
    if (!name[0]) {
        ir_error(ctx->err, "empty pass name in pipeline '%s'", pipeline);
        ir_error_hint(ctx->err, "separate pass names with single commas, e.g. 'cse,dce'");
        return false;
    }
    if (pass_lookup(name))
        return true;
    char what[PASS_NAME_MAX + 300];
    snprintf(what, sizeof what, "pipeline '%.300s'", pipeline);
    return unknown_pass(ctx, what, name);
}

static bool check_print(const char *name, const char *flag, PassCtx *ctx)
{
    if (!name || !strcmp(name, "all") || pass_lookup(name))
        return true;
    return unknown_pass(ctx, flag, name);
}

bool pass_check_pipeline(const char *pipeline, PassCtx *ctx)
{
    char name[PASS_NAME_MAX];
    const char *p = pipeline ? pipeline : "";
    while (next_name(&p, name, sizeof name))
        if (!check_name(name, pipeline, ctx))
            return false;
    if (pipeline && *pipeline && pipeline[strlen(pipeline) - 1] == ',')
        return check_name("", pipeline, ctx);
    return check_print(ctx->print_before, "--print-before", ctx) &&
           check_print(ctx->print_after, "--print-after", ctx);
}

static bool verify_input(const IrGraph *g, PassCtx *ctx)
{
    IrError verr = {0};
    if (!ctx->verify || ir_verify(g, &verr))
        return true;
    ir_error(ctx->err, "the input IR is invalid: %.400s", verr.msg);
    return false;
}

bool pass_run_pipeline(IrGraph *g, const char *pipeline, PassCtx *ctx)
{
    if (!pass_check_pipeline(pipeline, ctx))
        return false;
    if (!pipeline || !*pipeline)
        return true;
    if (!verify_input(g, ctx))
        return false;
    char name[PASS_NAME_MAX];
    const char *p = pipeline;
    while (next_name(&p, name, sizeof name))
        if (!pass_run_one(g, pass_lookup(name), ctx))
            return false;
    return true;
}

/* ---------------------------------------------------------------- one pass */

static void maybe_print(const IrGraph *g, const char *when, const char *sel, const char *name,
                        PassCtx *ctx)
{
    if (!sel || !ctx->out || (strcmp(sel, "all") && strcmp(sel, name)))
        return;
    fprintf(ctx->out, "// -----// IR %s %s //----- //\n", when, name);
    ir_print(g, ctx->out);
}

static bool verify_output(const IrGraph *g, const PassInfo *p, PassCtx *ctx)
{
    IrError verr = {0};
    if (ir_verify(g, &verr))
        return true;
    ir_error(ctx->err, "pass %s produced invalid IR: %.400s", p->name, verr.msg);
    ir_error_hint(ctx->err, "this is a bug in gradc's '%s' pass; --no-verify shows the broken "
                  "output", p->name);
    ctx->internal = true;
    return false;
}

bool pass_run_one(IrGraph *g, const PassInfo *p, PassCtx *ctx)
{
    IR_ASSERT(g && p && p->fn && ctx);
    maybe_print(g, "before", ctx->print_before, p->name, ctx);
    if (!p->fn(g, ctx)) {
        if (ctx->err && !ctx->err->set)
            ir_error(ctx->err, "pass %s failed", p->name);
        return false;
    }
    if (ctx->verify && !verify_output(g, p, ctx))
        return false;
    maybe_print(g, "after", ctx->print_after, p->name, ctx);
    return true;
}
