/* rt_exec.h — the executor: a compiled graph, its memory and its threads.
 *
 * An RtExec runs one graph at one binding of its dims (B=2, T=64, ...).  It
 * compiles the graph with cg_program_compile (codegen/cg_lower.h), plans
 * memory and runs the kernels in graph order.  Memory comes in four blocks:
 *
 *   param slab   every param, in graph order, each start 64-byte aligned
 *                (llm.c style: one allocation carved by offsets);
 *   state slab   persistent inputs: inputs that an output of the same name
 *                writes back after every run (AdamW moments adam.m.P/adam.v.P);
 *   input slab   the other inputs (tokens, targets, lr, step), set per run;
 *   arena        every kernel's result at an offset planned by liveness
 *                (memplan's planner, passes/memplan.c, through rt_memplan.c);
 *                a reshape shares its operand's buffer, and an elementwise
 *                kernel may take over the buffer of an operand that dies there.
 *
 * After a run, every output named like a param or an input is copied into
 * that param's or input's buffer: that is how a train-step graph updates its
 * weights and optimizer state ("write-back").  Where it is safe — the
 * output comes from an elementwise kernel, and nothing after that kernel
 * reads the old value — the kernel writes straight into the slab instead
 * ("pinned": memplan decides it, PassMemPlan.slab), so an AdamW step needs
 * neither arena space nor copies for the new params and moments.
 *
 * Threads (rt_pool.c).  The runtime owns the threading so that OpenBLAS and
 * gradc's kernels never oversubscribe the cores: nthreads is GRADC_THREADS or
 * the number of CPUs this process may run on.  OpenBLAS gets nthreads and
 * runs only inside matmul kernels (parallel=false), which run on the calling
 * thread while the pool's workers sleep; parallel kernels run on the pool
 * while OpenBLAS is idle.  Each output element of a parallel kernel is
 * computed by exactly one thread, in the same order whatever the split, so
 * results are bit-identical across thread counts (tests/unit/test_exec.c).
 *
 * Sections follow the files:
 *   rt_pool.c      RtPool: persistent pthread workers, a barrier per kernel
 *   rt_memplan.c   RtMemPlan: memplan's plan, checked against the program
 *   rt_exec.c      RtExec: slabs, inputs, params, runs, write-back, timing
 *
 * Example: one forward of a model at B=2, T=64.
 *
 *   IrError err = {0};
 *   int64_t binding[IR_MAX_SYMS] = {2, 64};          // symbols B, T
 *   RtExec *ex = rt_exec_new(g, binding, NULL, &err);
 *   if (!ex) { ir_error_print(&err, stderr); return 1; }
 *   rt_exec_init_params(ex, 42);
 *   rt_exec_set_input(ex, "idx", tokens, 2 * 64 * sizeof(int32_t), &err);
 *   if (!rt_exec_run(ex, &err)) ...;
 *   int64_t n;
 *   const float *logits = rt_exec_output(ex, "logits", &n);
 *   rt_exec_free(ex);
 */
#ifndef GRADC_RT_EXEC_H
#define GRADC_RT_EXEC_H

#include "codegen/cg_lower.h"
#include "ir/ir.h"
#include "passes/pass.h"

#include <stdbool.h>
#include <stdint.h>

/* Every buffer of the runtime starts on a cache line (and a zmm load). */
#define RT_ALIGN 64

/* The most threads an executor runs: more is refused before any starts. */
#define RT_MAX_THREADS 1024

/* ---------------------------------------------------------------- rt_pool.c */

typedef struct RtPool RtPool;

/* The thread count the runtime uses when the caller leaves it open:
 * $GRADC_THREADS when set to a positive integer, else the CPUs this process
 * may run on (online CPUs, narrowed by its affinity mask). */
int rt_default_threads(void);

/* A pool of nthreads - 1 persistent workers; the calling thread is the
 * nthreads-th.  Returns NULL and fills err if nthreads is above
 * RT_MAX_THREADS (before any thread starts) or a thread cannot start. */
RtPool *rt_pool_new(int nthreads, IrError *err);
void rt_pool_free(RtPool *p);
int rt_pool_threads(const RtPool *p);

/* Runs fn(slots, begin, end) over [0, extent) split into nthreads
 * contiguous chunks (chunk t = [extent*t/n, extent*(t+1)/n)), the calling
 * thread taking chunk 0, and returns when every chunk is done (a barrier).
 * Empty chunks are not called. */
void rt_pool_run(RtPool *p, CgKernelFn fn, void *const *slots, int64_t extent);

/* Tells the workers to stop spinning and sleep: call it before work that
 * uses the cores otherwise (an OpenBLAS call).  The next rt_pool_run wakes
 * them. */
void rt_pool_idle(RtPool *p);

/* ---------------------------------------------------------------- rt_memplan.c */

/* Where each node's value lives: memplan's plan (passes/pass.h,
 * PassMemPlan) at the executor's binding.  Buffers are identified by their
 * root: the node that writes them (an ALIAS's root is the root of
 * alias_of).  Arena buffers have an offset; inputs, params, and updates
 * written in place into a param's or state input's buffer (slab[i] >= 0)
 * have offset -1 and are placed by the executor. */
typedef PassMemPlan RtMemPlan;

/* Plans the arena for program p of graph g with pass_memplan_build at
 * p->binding, after checking that codegen and the planner agree on every
 * node's kind and size: a buffer is live from the kernel that writes it to
 * its last reader (outputs to the end; an alias extends its root's life to
 * the alias's own readers); an elementwise kernel takes over an operand's
 * buffer when the operand dies there; buffers are placed largest first in
 * the smallest gap among those live at the same time (best fit).  The
 * graph's own `offset` attributes are used when they are valid here.
 * pinned (may be NULL) marks roots that live outside the arena.  Returns
 * false and fills err on an inconsistent program (an alias of a later
 * node, a kind or size codegen and the planner disagree on). */
bool rt_memplan(const IrGraph *g, const CgProgram *p, const bool *pinned,
                RtMemPlan *plan, IrError *err);
void rt_memplan_free(RtMemPlan *plan);
/* The index of the last sibling of fused node i (the node whose kernel
 * writes the outputs of the whole group), or i when it has none. */
int rt_sibling_end(const IrGraph *g, int i);
/* True if arena roots a and b need memory of their own at the same time
 * (their lives overlap and neither took the other's buffer over in place). */
bool rt_memplan_overlap_in_time(const RtMemPlan *plan, int a, int b);

/* ---------------------------------------------------------------- rt_mem.c */

/* The memory this process may still take: the least of MemAvailable, what
 * its cgroup (v2 or v1) still allows and $GRADC_MEM_AVAILABLE (bytes, or K,
 * M, G), with `source` naming the one that decided; -1 when none is known. */
int64_t rt_mem_available(char *source, size_t cap);
/* True when `need` bytes fit in rt_mem_available.  Else false + err: what
 * (a phrase, "the train step") needs how much, what is available and, when
 * the first graph has a symbol B, the largest batch at which the plans of
 * all ng graphs (binding: the first graph's, matched by symbol name) fit.
 * Called by rt_exec_new before it allocates. */
bool rt_mem_check(const IrGraph *const *gs, int ng, const int64_t *binding, int64_t need,
                  const char *what, IrError *err);
/* What rt_exec_new would allocate for the ng graphs at binding (the first
 * graph's, matched by symbol name): sources and memplan's arena, planned
 * without compiling anything; -1 when a plan fails. */
int64_t rt_mem_planned(const IrGraph *const *gs, int ng, const int64_t *binding);
/* The same against `avail` bytes measured earlier (by rt_mem_available,
 * which named its source): for programs whose pages are partly touched by
 * now, such as a training run's. */
bool rt_mem_check_at(const IrGraph *const *gs, int ng, const int64_t *binding, int64_t need,
                     int64_t avail, const char *source, const char *what, IrError *err);

/* ---------------------------------------------------------------- rt_exec.c */

typedef struct RtExecOptions {
    int nthreads;        /* 0: rt_default_threads() */
    bool timing;         /* measure every kernel (rt_exec_kernel_ns) */
    bool no_cache;       /* compile even when the object is cached */
    bool keep_module;    /* keep LLVM IR and asm text (CgProgram.llvm_ir, asm_text) */
} RtExecOptions;

typedef struct RtExecStats {
    int nthreads;
    int nkernels;
    double compile_ms;   /* cg_program_compile, wall clock */
    bool cache_hit;
    int64_t peak_bytes;  /* arena, as planned */
    int64_t naive_bytes; /* arena without reuse */
    int64_t param_bytes, state_bytes, input_bytes;
    int64_t pinned_bytes; /* write-back outputs computed in place in their slab */
    double flops;        /* one run, from the program's per-node estimates */
    const char *blas_core; /* openblas_get_corename() */
} RtExecStats;

typedef struct RtExec RtExec;

/* Compiles g at binding (binding[i] is the value of symbol i), plans and
 * allocates memory and starts the thread pool.  g must outlive the
 * executor.  opt may be NULL (defaults).  Returns NULL and fills err. */
RtExec *rt_exec_new(const IrGraph *g, const int64_t *binding, const RtExecOptions *opt,
                    IrError *err);
/* The same over a program compiled elsewhere (or built by hand in tests).
 * The executor borrows p; p->graph must be g; free p after the executor. */
RtExec *rt_exec_new_program(const IrGraph *g, const CgProgram *p, const RtExecOptions *opt,
                            IrError *err);
void rt_exec_free(RtExec *ex);

/* Copies `bytes` bytes into input `name` (a plain input or a state input).
 * bytes must equal the input's size at this binding. */
bool rt_exec_set_input(RtExec *ex, const char *name, const void *data, int64_t bytes,
                       IrError *err);
/* The buffer of a param (float, in the slab) or an input (any dtype);
 * NULL when there is none of that name.  Writable. */
float *rt_exec_param(RtExec *ex, const char *name);
void *rt_exec_input(RtExec *ex, const char *name);
/* Fills every param from its init spec (normal with std, zeros, ones),
 * drawn from ir_rng_stream(seed, name) as the interpreter does, and zeroes
 * the state slab.  Deterministic: same seed, same bits. */
void rt_exec_init_params(RtExec *ex, uint64_t seed);

/* Runs every kernel in order, then writes back.  Fails (before running
 * anything) when a plain input was never set. */
bool rt_exec_run(RtExec *ex, IrError *err);

/* The value of output `name` after a run (numel elements of the output
 * node's dtype), NULL when there is no such output. */
const void *rt_exec_output(const RtExec *ex, const char *name, int64_t *numel);
/* The buffer of any node (after a run: its value, if still live at the end
 * of the run — outputs, inputs and params always are). */
void *rt_exec_buffer(const RtExec *ex, int node_index);

const CgProgram *rt_exec_program(const RtExec *ex);
const RtMemPlan *rt_exec_plan(const RtExec *ex);
const RtExecStats *rt_exec_stats(const RtExec *ex);
/* With opt.timing: nanoseconds spent in each node's kernel over all runs,
 * indexed like the graph's nodes; NULL without timing. */
const double *rt_exec_kernel_ns(const RtExec *ex);
int rt_exec_runs(const RtExec *ex);
/* Zeroes the kernel times and the run count (after a warm-up, say). */
void rt_exec_reset_times(RtExec *ex);

#endif
