/* exec.c — the pipeline and the compiled program, as run, verify, bench
 * and dump --stage=llvm|asm use them: the pass pipeline at the binding the
 * graph will run at, the runtime's options from the shared flags
 * (CLI_FLAGS_EXEC), the lines that report a compile, and the LLVM IR or
 * machine code of a compiled graph.
 */
#include "cli.h"
#include "passes/pass.h"
#include "runtime/rt_exec.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- pipeline */

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the pass pipeline (passes, else the llvm stage's: the graph that
 * codegen compiles) with the binding the graph will run at (NULL: the
 * passes' nominal one), so that schedule and memplan weigh the real sizes;
 * returns an exit code or -1 to go on. */
int cli_run_passes(IrGraph *g, const char *passes, const int64_t *binding, IrError *err)
{
    PassCtx ctx = pass_ctx_default(err);
    ctx.binding = binding;
    if (pass_run_compile(g, passes, false, &ctx))
        return -1;
    ir_error_print(err, stderr);
    return ctx.internal ? 2 : 1;
}

RtExec *cli_exec_new(const IrGraph *g, const int64_t *binding, const CliExecArgs *a,
                     bool timing, IrError *err)
{
    RtExecOptions opt = {.nthreads = (int)a->threads, .timing = timing,
                         .no_cache = a->no_cache};
    return rt_exec_new(g, binding, &opt, err);
}

void cli_print_exec(const RtExec *ex, FILE *f)
{
    const RtExecStats *st = rt_exec_stats(ex);
    fprintf(f, "compile: %.1f ms (%s), %d kernels\n", st->compile_ms,
            st->cache_hit ? "cache hit" : "compiled", st->nkernels);
    fprintf(f, "memory: arena %.2f MiB planned (%.2f MiB without reuse), params %.2f MiB, "
            "state %.2f MiB, inputs %.2f MiB",
            st->peak_bytes / 1048576.0, st->naive_bytes / 1048576.0,
            st->param_bytes / 1048576.0, st->state_bytes / 1048576.0,
            st->input_bytes / 1048576.0);
    if (st->pinned_bytes)
        fprintf(f, "; %.2f MiB of updates written in place", st->pinned_bytes / 1048576.0);
    fprintf(f, "\n");
    fprintf(f, "threads: %d (OpenBLAS core %s)\n", st->nthreads,
            st->blas_core ? st->blas_core : "?");
}

/* ---------------------------------------------------------------- dump --stage=llvm|asm */

static void print_text(FILE *f, const void *text)
{
    fputs(text, f);
}

int cli_dump_kernels(const IrGraph *g, const FeModel *m, const CliExecArgs *a, bool want_asm,
                     const char *out)
{
    IrError err = {0};
    int64_t binding[IR_MAX_SYMS];
    if (!cli_bind(g, m, &a->bind, binding, &err))
        return cli_fail(&err);
    CgOptions co = {.no_cache = a->no_cache, .keep_module = true};
    CgProgram *p = cg_program_compile(g, binding, &co, &err);
    if (!p)
        return cli_fail(&err);
    const char *text = want_asm ? p->asm_text : p->llvm_ir;
    int r = cli_write_out(out, print_text, text ? text : "");
    cg_program_free(p);
    return r;
}
