/* rt_exec.c — the executor: slabs, arena, kernel loop and write-back.
 *
 * rt_exec_new compiles the graph (cg_program_compile), then lays out four
 * blocks of memory (rt_exec.h): the param slab, the state slab, the input
 * slab and the arena.  Each source node gets an offset in its slab,
 * 64-byte aligned, in graph order; each kernel's root gets the offset that
 * rt_memplan chose; every slot of an alias points at its root's buffer.
 * The slot array slots[i] is what every kernel receives: the buffer of
 * node i, whatever block it lives in.
 *
 * A run is a straight loop over the nodes in graph order.  A parallel
 * kernel with enough work goes to the pool (rt_pool_run splits its range);
 * every other kernel runs on this thread.  Matmuls are among those: their
 * cg_sgemm calls split C into tiles by shape alone and hand the tiles to
 * this run's pool (cg_gemm_set_pool), each tile one single-threaded
 * OpenBLAS call (OpenBLAS is kept at one thread).  No output element's sum
 * depends on the thread count, so 1 and N threads give the same bits.
 * After the loop, write-back copies every output named like a param or an
 * input into that buffer (a train step's updated weights and AdamW
 * moments).
 *
 * Parameter init matches the interpreter (ir/interp.c): the same stream per
 * param name (ir/rng.h), drawn in double and rounded to float.
 */
#define _GNU_SOURCE
#include "rt_exec.h"

#include "ir/rng.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Below this much work (elements or flops) a parallel kernel runs on the
 * calling thread.  Handing half a range to another core costs 1-5 us when
 * the worker spins and 20-40 us when it must be woken (after a matmul) on
 * this kind of 2-vCPU virtual machine; an elementwise kernel over 64K
 * elements takes about 25 us, so splitting it saves less than it costs,
 * while one over 256K (~100 us) gains clearly.  GRADC_PAR_MIN_WORK
 * overrides the threshold (0: split every parallel kernel). */
#define RT_PAR_MIN_WORK 262144

/* Where a source node lives. */
typedef enum SrcBlock { SB_NONE, SB_PARAM, SB_STATE, SB_INPUT } SrcBlock;

typedef struct WriteBack {
    int from, to;  /* node indices: output value, param/input node */
    int64_t bytes;
} WriteBack;

struct RtExec {
    const IrGraph *g;
    const CgProgram *prog;
    CgProgram *owned;          /* compiled by rt_exec_new */
    RtMemPlan plan;
    RtPool *pool;
    void **slots;              /* [nnodes] buffer of each node */
    SrcBlock *block;           /* [nnodes] */
    int64_t *src_off;          /* [nnodes] offset of a source in its slab */
    bool *input_set;           /* [nnodes] plain inputs set at least once */
    char *param_slab, *state_slab, *input_slab, *arena;
    void *raw[4];              /* the allocations behind the four blocks */
    WriteBack *wb;
    int nwb;
    double *kernel_ns;         /* [nnodes] with timing */
    double par_min_work;       /* RT_PAR_MIN_WORK or $GRADC_PAR_MIN_WORK */
    int runs;
    RtExecStats stats;
};

/* ---------------------------------------------------------------- helpers */

static int64_t round_up(int64_t v, int64_t a)
{
    return (v + a - 1) / a * a;
}

/* A zeroed, RT_ALIGN-aligned block of at least `bytes` bytes; *raw is
 * what to free.  calloc rather than memset: big blocks come from the
 * kernel as zero pages and are not touched twice. */
static char *slab_alloc(int64_t bytes, const char *what, void **raw, IrError *err)
{
    size_t n = (size_t)round_up(bytes > 0 ? bytes : 1, RT_ALIGN);
    *raw = calloc(1, n + RT_ALIGN);
    if (!*raw) {
        ir_error(err, "out of memory allocating the %s (%zu bytes)", what, n);
        ir_error_hint(err, "try a smaller --batch or --seq");
        return NULL;
    }
    return (char *)round_up((int64_t)(uintptr_t)*raw, RT_ALIGN);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A non-negative number from the environment, else dflt. */
static double env_number(const char *name, double dflt)
{
    const char *v = getenv(name);
    char *end;
    double x = v && *v ? strtod(v, &end) : -1;
    return v && *v && !*end && x >= 0 ? x : dflt;
}

static bool has_output(const IrGraph *g, const char *name)
{
    for (int o = 0; o < g->nout; o++)
        if (!strcmp(g->outs[o].name, name))
            return true;
    return false;
}

/* The input or param node called `name`, or -1. */
static int find_source(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if ((n->op == OP_INPUT || n->op == OP_PARAM) && n->name && !strcmp(n->name, name))
            return i;
    }
    return -1;
}

/* ---------------------------------------------------------------- sources */

static bool check_init(const IrNode *n, IrError *err)
{
    const char *init = ir_node_str(n, ATTR_INIT, NULL);
    if (ir_init_kind(init) >= 0)
        return true;
    ir_error(err, "param '%s' has %s init '%s'", n->name ? n->name : "?",
             init ? "an unknown" : "no", init ? init : "");
    ir_error_hint(err, "a param's init is one of normal (with std), uniform (with bound), "
                  "zeros, ones");
    return false;
}

static SrcBlock source_block(const IrGraph *g, const IrNode *n)
{
    if (n->op == OP_PARAM)
        return SB_PARAM;
    if (n->op == OP_INPUT)
        return n->name && has_output(g, n->name) ? SB_STATE : SB_INPUT;
    return SB_NONE;
}

/* Gives every source an offset in its slab; sums the slab sizes. */
static bool layout_sources(RtExec *ex, IrError *err)
{
    int64_t *size[4] = {NULL, &ex->stats.param_bytes, &ex->stats.state_bytes,
                        &ex->stats.input_bytes};
    for (int i = 0; i < ex->prog->nnodes; i++) {
        const IrNode *n = ex->g->nodes[i];
        if (ex->prog->nodes[i].kind != CG_SOURCE)
            continue;
        SrcBlock b = source_block(ex->g, n);
        if (b == SB_NONE) {
            ir_error(err, "internal: node %d (%s) is a source but neither an input nor a param",
                     i, ir_op_name(n->op));
            return false;
        }
        if (b == SB_PARAM && !check_init(n, err))
            return false;
        ex->block[i] = b;
        ex->src_off[i] = *size[b];
        *size[b] += round_up(ex->prog->nodes[i].bytes, RT_ALIGN);
    }
    return true;
}

/* ---------------------------------------------------------------- write-back */

static bool check_write_back(const RtExec *ex, const IrOutput *o, int to, IrError *err)
{
    const CgNodeCode *a = &ex->prog->nodes[o->node->index], *b = &ex->prog->nodes[to];
    const IrNode *dst = ex->g->nodes[to];
    if (a->bytes == b->bytes && o->node->dtype == dst->dtype)
        return true;
    ir_error(err, "output '%s' writes back into %s '%s' but has a different type "
             "(%lld bytes of %s, expected %lld bytes of %s)", o->name,
             dst->op == OP_PARAM ? "param" : "input", o->name, (long long)a->bytes,
             ir_dtype_name(o->node->dtype), (long long)b->bytes, ir_dtype_name(dst->dtype));
    ir_error_hint(err, "an output named like a param or input is its new value after a "
                  "step; rename the output otherwise");
    return false;
}

/* Pins the output's root into `to` where the plan computes it there (the
 * kernel writes the source's buffer in place: memplan's write-back rule);
 * else records a copy. */
static bool add_write_back(RtExec *ex, const IrOutput *o, int to, IrError *err)
{
    if (!check_write_back(ex, o, to, err))
        return false;
    int from = o->node->index, r = ex->plan.root[from];
    if (r == to)
        return true; /* the output is the source itself */
    if (ex->plan.slab[r] == to) {
        ex->stats.pinned_bytes += ex->prog->nodes[r].bytes;
        return true;
    }
    ex->wb[ex->nwb++] = (WriteBack){from, to, ex->prog->nodes[from].bytes};
    return true;
}

static bool find_write_backs(RtExec *ex, IrError *err)
{
    ex->wb = calloc((size_t)ex->g->nout + 1, sizeof *ex->wb);
    for (int o = 0; o < ex->g->nout; o++) {
        int to = find_source(ex->g, ex->g->outs[o].name);
        if (to >= 0 && !add_write_back(ex, &ex->g->outs[o], to, err))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- memory */

static char *block_base(const RtExec *ex, SrcBlock b)
{
    return b == SB_PARAM ? ex->param_slab : b == SB_STATE ? ex->state_slab : ex->input_slab;
}

static bool alloc_blocks(RtExec *ex, IrError *err)
{
    ex->param_slab = slab_alloc(ex->stats.param_bytes, "param slab", &ex->raw[0], err);
    if (ex->param_slab)
        ex->state_slab = slab_alloc(ex->stats.state_bytes, "state slab", &ex->raw[1], err);
    if (ex->state_slab)
        ex->input_slab = slab_alloc(ex->stats.input_bytes, "input slab", &ex->raw[2], err);
    if (ex->input_slab)
        ex->arena = slab_alloc(ex->plan.peak_bytes, "arena", &ex->raw[3], err);
    return ex->arena != NULL;
}

/* What alloc_blocks is about to take, against the memory at hand
 * (rt_mem.c): calloc would promise it and the OOM killer end the run
 * mid-step. */
static bool fits(const RtExec *ex, IrError *err)
{
    const RtExecStats *s = &ex->stats;
    int64_t need = s->param_bytes + s->state_bytes + s->input_bytes + ex->plan.peak_bytes;
    char what[600], at[200] = "";
    for (int i = 0, k = 0; i < ex->g->nsym && k < 160; i++)
        k += snprintf(at + k, sizeof at - (size_t)k, " %s=%lld", ex->g->sym[i],
                      (long long)ex->prog->binding[i]);
    snprintf(what, sizeof what, "graph '%s' at%s (arena %.1f MiB, params %.1f MiB, state "
             "%.1f MiB, inputs %.1f MiB)", ex->g->name ? ex->g->name : "?", at,
             ex->plan.peak_bytes / 1048576.0, s->param_bytes / 1048576.0,
             s->state_bytes / 1048576.0, s->input_bytes / 1048576.0);
    return rt_mem_check(&ex->g, 1, ex->prog->binding, need, what, err);
}

/* Sources first (a kernel the plan writes into a source's buffer takes it), then kernels
 * and aliases in order (an alias's root comes before it). */
static void fill_slots(RtExec *ex)
{
    for (int i = 0; i < ex->prog->nnodes; i++)
        if (ex->block[i] != SB_NONE)
            ex->slots[i] = block_base(ex, ex->block[i]) + ex->src_off[i];
    for (int i = 0; i < ex->prog->nnodes; i++) {
        int r = ex->plan.root[i];
        if (ex->block[i] != SB_NONE)
            continue;
        if (r != i) /* a view: its root's buffer at its offset (a contiguous slice) */
            ex->slots[i] = (char *)ex->slots[r] + ex->prog->nodes[i].alias_off;
        else if (ex->plan.slab[i] >= 0)
            ex->slots[i] = ex->slots[ex->plan.slab[i]];
        else
            ex->slots[i] = ex->arena + (ex->plan.offset[i] >= 0 ? ex->plan.offset[i] : 0);
    }
}

/* ---------------------------------------------------------------- life cycle */

static void count_kernels(RtExec *ex)
{
    for (int i = 0; i < ex->prog->nnodes; i++)
        if (ex->prog->nodes[i].kind == CG_KERNEL && !ex->prog->nodes[i].noop) {
            ex->stats.nkernels++;
            ex->stats.flops += ex->prog->nodes[i].flops;
        }
    ex->stats.peak_bytes = ex->plan.peak_bytes;
    ex->stats.naive_bytes = ex->plan.naive_bytes;
}

static RtExec *exec_alloc(const IrGraph *g, const CgProgram *p, const RtExecOptions *opt)
{
    RtExec *ex = calloc(1, sizeof *ex);
    size_t n = (size_t)p->nnodes + 1;
    ex->g = g;
    ex->prog = p;
    ex->slots = calloc(n, sizeof *ex->slots);
    ex->block = calloc(n, sizeof *ex->block);
    ex->src_off = calloc(n, sizeof *ex->src_off);
    ex->input_set = calloc(n, sizeof *ex->input_set);
    if (opt && opt->timing)
        ex->kernel_ns = calloc(n, sizeof *ex->kernel_ns);
    ex->stats.nthreads = opt && opt->nthreads > 0 ? opt->nthreads : rt_default_threads();
    ex->stats.blas_core = openblas_get_corename();
    ex->par_min_work = env_number("GRADC_PAR_MIN_WORK", RT_PAR_MIN_WORK);
    return ex;
}

static bool exec_setup(RtExec *ex, IrError *err)
{
    if (ex->g->nnodes != ex->prog->nnodes || ex->prog->graph != ex->g) {
        ir_error(err, "internal: the program was compiled for another graph");
        return false;
    }
    if (!layout_sources(ex, err) || !rt_memplan(ex->g, ex->prog, NULL, &ex->plan, err) ||
        !find_write_backs(ex, err) || !fits(ex, err) || !alloc_blocks(ex, err))
        return false;
    fill_slots(ex);
    count_kernels(ex);
    ex->pool = rt_pool_new(ex->stats.nthreads, err);
    if (!ex->pool)
        return false;
    openblas_set_num_threads(1); /* the pool runs cg_sgemm's tiles */
    return true;
}

RtExec *rt_exec_new_program(const IrGraph *g, const CgProgram *p, const RtExecOptions *opt,
                            IrError *err)
{
    RtExec *ex = exec_alloc(g, p, opt);
    if (!exec_setup(ex, err)) {
        rt_exec_free(ex);
        return NULL;
    }
    return ex;
}

RtExec *rt_exec_new(const IrGraph *g, const int64_t *binding, const RtExecOptions *opt,
                    IrError *err)
{
    CgOptions co = {.no_cache = opt && opt->no_cache, .keep_module = opt && opt->keep_module};
    double t0 = now_ms();
    CgProgram *p = cg_program_compile(g, binding, &co, err);
    if (!p)
        return NULL;
    double ms = now_ms() - t0;
    RtExec *ex = rt_exec_new_program(g, p, opt, err);
    if (!ex) {
        cg_program_free(p);
        return NULL;
    }
    ex->owned = p;
    ex->stats.compile_ms = ms;
    ex->stats.cache_hit = p->stats.hit;
    return ex;
}

void rt_exec_free(RtExec *ex)
{
    if (!ex)
        return;
    rt_pool_free(ex->pool);
    rt_memplan_free(&ex->plan);
    for (int k = 0; k < 4; k++)
        free(ex->raw[k]);
    free(ex->slots);
    free(ex->block);
    free(ex->src_off);
    free(ex->input_set);
    free(ex->wb);
    free(ex->kernel_ns);
    if (ex->owned)
        cg_program_free(ex->owned);
    free(ex);
}

/* ---------------------------------------------------------------- inputs and params */

bool rt_exec_set_input(RtExec *ex, const char *name, const void *data, int64_t bytes,
                       IrError *err)
{
    int i = find_source(ex->g, name);
    if (i < 0 || ex->g->nodes[i]->op != OP_INPUT) {
        ir_error(err, "the graph has no input named '%s'", name);
        ir_error_hint(err, "inputs are listed by `gradc dump` as `input` nodes");
        return false;
    }
    if (bytes != ex->prog->nodes[i].bytes) {
        ir_error(err, "input '%s' takes %lld bytes at this binding, got %lld", name,
                 (long long)ex->prog->nodes[i].bytes, (long long)bytes);
        ir_error_hint(err, "check the batch and sequence sizes the executor was built for");
        return false;
    }
    memcpy(ex->slots[i], data, (size_t)bytes);
    ex->input_set[i] = true;
    return true;
}

float *rt_exec_param(RtExec *ex, const char *name)
{
    int i = find_source(ex->g, name);
    return i >= 0 && ex->g->nodes[i]->op == OP_PARAM ? ex->slots[i] : NULL;
}

void *rt_exec_input(RtExec *ex, const char *name)
{
    int i = find_source(ex->g, name);
    return i >= 0 && ex->g->nodes[i]->op == OP_INPUT ? ex->slots[i] : NULL;
}

/* param: float[numel] from its init spec (checked by layout_sources). */
static void init_param(const IrNode *n, float *x, int64_t numel, uint64_t seed)
{
    IrInitSampler s;
    ir_init_begin(&s, n, seed);
    for (int64_t k = 0; k < numel; k++)
        x[k] = (float)ir_init_next(&s);
}

/* Params are drawn in parallel, one whole param per thread (each has its
 * own stream, so the split cannot change a value): bucket[i] is the
 * thread of param i, chosen largest first onto the least loaded thread. */
typedef struct InitJob {
    RtExec *ex;
    uint64_t seed;
    int *bucket;
} InitJob;

static void init_bucket(void *const *ctx, int64_t begin, int64_t end)
{
    const InitJob *job = (const void *)ctx;
    RtExec *ex = job->ex;
    for (int i = 0; i < ex->prog->nnodes; i++)
        if (ex->block[i] == SB_PARAM && job->bucket[i] >= begin && job->bucket[i] < end)
            init_param(ex->g->nodes[i], ex->slots[i], ex->prog->nodes[i].numel, job->seed);
}

/* Param node indices, largest first (insertion sort: a model has ~100s). */
static int params_by_size(const RtExec *ex, int *order)
{
    int n = 0;
    for (int i = 0; i < ex->prog->nnodes; i++) {
        if (ex->block[i] != SB_PARAM)
            continue;
        int k = n++;
        for (; k > 0 && ex->prog->nodes[order[k - 1]].numel < ex->prog->nodes[i].numel; k--)
            order[k] = order[k - 1];
        order[k] = i;
    }
    return n;
}

static void assign_buckets(const RtExec *ex, int *bucket, int nthreads)
{
    int *order = malloc(sizeof *order * ((size_t)ex->prog->nnodes + 1));
    int64_t *load = calloc((size_t)nthreads, sizeof *load);
    int n = params_by_size(ex, order);
    for (int k = 0; k < n; k++) {
        int best = 0;
        for (int t = 1; t < nthreads; t++)
            best = load[t] < load[best] ? t : best;
        bucket[order[k]] = best;
        load[best] += ex->prog->nodes[order[k]].numel;
    }
    free(order);
    free(load);
}

void rt_exec_init_params(RtExec *ex, uint64_t seed)
{
    int nt = rt_pool_threads(ex->pool);
    InitJob job = {ex, seed, calloc((size_t)ex->prog->nnodes + 1, sizeof(int))};
    assign_buckets(ex, job.bucket, nt);
    rt_pool_run(ex->pool, init_bucket, (void *const *)(void *)&job, nt);
    rt_pool_idle(ex->pool);
    free(job.bucket);
    memset(ex->state_slab, 0, (size_t)ex->stats.state_bytes);
}

/* ---------------------------------------------------------------- runs */

static bool check_inputs(const RtExec *ex, IrError *err)
{
    for (int i = 0; i < ex->prog->nnodes; i++)
        if (ex->block[i] == SB_INPUT && !ex->input_set[i]) {
            ir_error(err, "input '%s' was never set", ex->g->nodes[i]->name);
            ir_error_hint(err, "set every input (rt_exec_set_input) before the first run");
            return false;
        }
    return true;
}

static void pool_for_gemm(void *pool, void (*fn)(void *const *, int64_t, int64_t),
                          void *const *ctx, int64_t n)
{
    rt_pool_run(pool, fn, ctx, n);
}

static void run_kernel(RtExec *ex, const CgNodeCode *c)
{
    double work = c->flops > (double)c->numel ? c->flops : (double)c->numel;
    if (c->parallel && work >= ex->par_min_work) {
        rt_pool_run(ex->pool, c->fn, ex->slots, c->extent);
        return;
    }
    c->fn(ex->slots, 0, c->extent);
}

static void run_timed(RtExec *ex, int i)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    run_kernel(ex, &ex->prog->nodes[i]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ex->kernel_ns[i] += (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
}

static void write_back(RtExec *ex)
{
    for (int k = 0; k < ex->nwb; k++) {
        const WriteBack *w = &ex->wb[k];
        memmove(ex->slots[w->to], ex->slots[w->from], (size_t)w->bytes);
    }
}

bool rt_exec_run(RtExec *ex, IrError *err)
{
    if (!check_inputs(ex, err))
        return false;
    cg_gemm_set_pool(pool_for_gemm, ex->pool);
    for (int i = 0; i < ex->prog->nnodes; i++) {
        if (ex->prog->nodes[i].kind != CG_KERNEL || ex->prog->nodes[i].noop)
            continue;
        if (ex->kernel_ns)
            run_timed(ex, i);
        else
            run_kernel(ex, &ex->prog->nodes[i]);
    }
    cg_gemm_set_pool(NULL, NULL);
    rt_pool_idle(ex->pool);
    write_back(ex);
    ex->runs++;
    return true;
}

/* ---------------------------------------------------------------- results */

const void *rt_exec_output(const RtExec *ex, const char *name, int64_t *numel)
{
    for (int o = 0; o < ex->g->nout; o++)
        if (!strcmp(ex->g->outs[o].name, name)) {
            int i = ex->g->outs[o].node->index;
            if (numel)
                *numel = ex->prog->nodes[i].numel;
            return ex->slots[i];
        }
    return NULL;
}

void *rt_exec_buffer(const RtExec *ex, int node_index)
{
    IR_ASSERT(node_index >= 0 && node_index < ex->prog->nnodes);
    return ex->slots[node_index];
}

const CgProgram *rt_exec_program(const RtExec *ex)
{
    return ex->prog;
}

const RtMemPlan *rt_exec_plan(const RtExec *ex)
{
    return &ex->plan;
}

const RtExecStats *rt_exec_stats(const RtExec *ex)
{
    return &ex->stats;
}

const double *rt_exec_kernel_ns(const RtExec *ex)
{
    return ex->kernel_ns;
}

int rt_exec_runs(const RtExec *ex)
{
    return ex->runs;
}

void rt_exec_reset_times(RtExec *ex)
{
    if (ex->kernel_ns)
        memset(ex->kernel_ns, 0, sizeof *ex->kernel_ns * (size_t)ex->prog->nnodes);
    ex->runs = 0;
}
