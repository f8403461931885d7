/* cg_lower.c — compiling a graph at one binding into a CgProgram.
 *
 * The flow of cg_program_compile:
 *   1. evaluate every node's dims under the binding (all constants from
 *      here on: loop bounds and strides are immediates in the IR, so LLVM
 *      knows trip counts and vectorizes without runtime checks);
 *   2. plan: walk the nodes with the op table below, emit off, which
 *      fills each CgNodeCode (kind, extent, parallel, numel, bytes, flops);
 *   3. key = printed graph text + binding + CG_LOWER_VERSION; with the
 *      cache on, a hit loads the object and skips LLVM entirely;
 *   4. otherwise walk the nodes again with emit on, building one kernel
 *      per node into one module, then hand the module to the JIT (which
 *      optimizes it at O3, emits it and stores it in the cache);
 *   5. look up every kernel's function pointer.
 * With keep_module the module is always built, so that its optimized IR
 * and assembly can be kept for `gradc dump --stage=llvm|asm`.
 *
 * Which builder lowers an op is ops.def's lower column (lower_fns, by
 * X-macro): a row that names a cg_lower_<lower> nobody defines does not
 * link.  cg_op_lowered says whether an op value has a lowering (an op
 * value past the table has none: "no lowering for op X").
 */
#include "cg_lower_int.h"
#include "ir/cost.h"
#include "passes/pass.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef bool (*LowerFn)(CgLower *L, const IrNode *n);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool cg_fail(CgLower *L, const IrNode *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ir_error(L->err, "codegen: %%%d %s: %s", n->index, ir_op_name(n->op), msg);
    return false;
}

int64_t cg_numel(const CgLower *L, const IrNode *n)
{
    int64_t v = 1;
    for (int d = 0; d < n->shape.rank; d++)
        v *= L->dim[n->index][d];
    return v;
}

void cg_set_kernel(CgLower *L, const IrNode *n, int64_t extent, bool parallel)
{
    CgNodeCode *c = &L->code[n->index];
    c->kind = CG_KERNEL;
    c->noop = false;
    c->extent = extent;
    c->parallel = parallel;
    c->flops = (double)ir_cost_node_flops(L->g, n, L->binding);
}

/* ---------------------------------------------------------------- the op switch */

bool cg_lower_source(CgLower *L, const IrNode *n)
{
    L->code[n->index].kind = CG_SOURCE;
    return true;
}

/* A view (reshape, contiguous slice) of the operand's buffer, resolved to
 * its owner, at the operand's offset plus its own. */
bool cg_lower_alias(CgLower *L, const IrNode *n)
{
    CgNodeCode *c = &L->code[n->index];
    const CgNodeCode *x = &L->code[n->in[0]->index];
    c->kind = CG_ALIAS;
    c->alias_of = L->buf[n->in[0]->index];
    c->alias_off = (x->kind == CG_ALIAS ? x->alias_off : 0) + pass_view_offset(n, L->binding);
    L->buf[n->index] = c->alias_of;
    return true;
}

int64_t cg_buf_offset(const CgLower *L, int node)
{
    return L->code[node].kind == CG_ALIAS ? L->code[node].alias_off : 0;
}

bool cg_reads_own_output(const CgLower *L, const IrNode *out, const IrNode *n, int j)
{
    int k = L->code[out->index].inplace;
    if (k < 0)
        return false;
    int x = out->in[k]->index, y = n->in[j]->index;
    return L->buf[x] == L->buf[y] && cg_buf_offset(L, x) == cg_buf_offset(L, y);
}

/* Which operand each kernel writes over: memplan's decisions at this
 * binding, as the runtime will make them (rt_memplan checks it). */
static bool plan_inplace(CgLower *L, bool own_buffers, IrError *err)
{
    for (int i = 0; own_buffers && i < L->g->nnodes; i++)
        L->code[i].inplace = -1;
    if (own_buffers)
        return true;
    PassMemPlan plan;
    PassMemOpts o = {.use_offsets = true};
    bool ok = pass_memplan_build(L->g, L->binding, &o, &plan, err);
    for (int i = 0; i < L->g->nnodes; i++)
        L->code[i].inplace = ok ? plan.inplace[i] : -1;
    pass_memplan_free(&plan);
    return ok;
}

/* ops.def's lower column: cg_lower_<lower> per op. */
static const LowerFn lower_fns[OP_COUNT] = {
#define OP(E, n, mi, ma, k, sr, dr, lower, ...) [OP_##E] = cg_lower_##lower,
#include "ir/ops.def"
#undef OP
};

/* NULL past the table, and for an elementwise row whose math column is
 * `none` (the row is wrong: say so instead of asserting in the emit). */
static LowerFn lower_fn(IrOp op)
{
    if (op >= OP_COUNT || (lower_fns[op] == cg_lower_elementwise && !cg_has_math(op)))
        return NULL;
    return lower_fns[op];
}

bool cg_op_lowered(IrOp op)
{
    return lower_fn(op) != NULL;
}

static bool lower_node(CgLower *L, const IrNode *n)
{
    LowerFn f = lower_fn(n->op);
    if (n->body && n->op != OP_FUSED)
        return cg_fail(L, n, "a body on a %s node: only fused nodes are lowered from "
                       "their bodies", ir_op_name(n->op));
    if (!f)
        return cg_fail(L, n, "no lowering for op %s", ir_op_name(n->op));
    return f(L, n);
}

static bool lower_all(CgLower *L)
{
    for (int i = 0; i < L->g->nnodes; i++)
        if (!lower_node(L, L->g->nodes[i]))
            return false;
    return true;
}

/* ---------------------------------------------------------------- binding */

static bool eval_dims(CgLower *L, const IrNode *n, CgNodeCode *c)
{
    int64_t numel = 1;
    for (int d = 0; d < n->shape.rank; d++) {
        int64_t v = ir_dim_eval(n->shape.d[d], L->binding);
        if (v <= 0 || __builtin_mul_overflow(numel, v, &numel) || numel > ((int64_t)1 << 40)) {
            char s[128];
            ir_dim_str(n->shape.d[d], L->g->sym, s, sizeof s);
            return cg_fail(L, n, "dim %d (%s) is %lld under the binding: not a usable size", d, s,
                           (long long)v);
        }
        L->dim[n->index][d] = v;
    }
    c->numel = numel;
    c->bytes = numel * (int64_t)ir_dtype_size(n->dtype);
    snprintf(c->symbol, sizeof c->symbol, "k%d_%s", n->index, ir_op_name(n->op));
    return true;
}

static bool check_graph(const IrGraph *g, const int64_t *binding, IrError *err)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->index != i) {
            ir_error(err, "codegen: node %d of graph '%s' has index %d", i, g->name,
                     g->nodes[i]->index);
            ir_error_hint(err, "call ir_graph_reindex after reordering nodes");
            return false;
        }
    if (g->nsym > 0 && !binding) {
        ir_error(err, "codegen: graph '%s' has symbolic dims but no binding was given", g->name);
        return false;
    }
    return true;
}

/* Fills L's tables for p; the dims of every node under the binding. */
static bool lower_init(CgLower *L, CgProgram *p, IrError *err)
{
    const IrGraph *g = p->graph;
    int n = g->nnodes ? g->nnodes : 1;
    memset(L, 0, sizeof *L);
    L->g = g;
    L->binding = p->binding;
    L->code = p->nodes;
    L->err = err;
    L->dim = calloc(n, sizeof *L->dim);
    L->buf = calloc(n, sizeof *L->buf);
    L->body_sig = calloc(n, sizeof *L->body_sig);
    L->body_fn = calloc(n, sizeof *L->body_fn);
    L->member = calloc(n, sizeof *L->member);
    if (!L->dim || !L->buf || !L->body_sig || !L->body_fn || !L->member) {
        ir_error(err, "codegen: out of memory");
        return false;
    }
    for (int i = 0; i < g->nnodes; i++) {
        L->buf[i] = i;
        L->code[i].alias_of = -1;
        L->code[i].alias_off = 0;
        if (!eval_dims(L, g->nodes[i], &L->code[i]))
            return false;
    }
    return true;
}

static void lower_done(CgLower *L)
{
    if (L->b)
        LLVMDisposeBuilder(L->b);
    for (int b = 0; b < L->nbody; b++)
        free(L->body_sig[b]);
    free(L->body_sig);
    free(L->body_fn);
    free(L->member);
    free(L->dim);
    free(L->buf);
}

/* ---------------------------------------------------------------- module */

static void lower_types(CgLower *L, CgModule *m)
{
    L->m = m;
    L->C = m->ctx;
    L->M = m->mod;
    L->b = LLVMCreateBuilderInContext(m->ctx);
    L->f32 = LLVMFloatTypeInContext(m->ctx);
    L->f64 = LLVMDoubleTypeInContext(m->ctx);
    L->i1 = LLVMInt1TypeInContext(m->ctx);
    L->i8 = LLVMInt8TypeInContext(m->ctx);
    L->i32 = LLVMInt32TypeInContext(m->ctx);
    L->i64 = LLVMInt64TypeInContext(m->ctx);
    L->ptr = LLVMPointerTypeInContext(m->ctx, 0);
    L->vd = LLVMVoidTypeInContext(m->ctx);
}

/* The cache key: everything that decides the LLVM IR. */
static char *key_text(const CgProgram *p)
{
    char *ir = ir_print_str(p->graph);
    if (!ir)
        return NULL;
    size_t cap = strlen(ir) + 64;
    for (int i = 0; i < p->graph->nsym; i++)
        cap += strlen(p->graph->sym[i]) + 24;
    char *key = malloc(cap);
    if (key) {
        int at = snprintf(key, cap, "%s\n; binding", ir);
        for (int i = 0; i < p->graph->nsym; i++)
            at += snprintf(key + at, cap - at, " %s=%lld", p->graph->sym[i],
                           (long long)p->binding[i]);
        snprintf(key + at, cap - at, "\n; cg_lower v%d\n", CG_LOWER_VERSION);
    }
    free(ir);
    return key;
}

/* Builds every kernel into a fresh module; keeps dumps if asked. */
static CgModule *build_module(CgLower *L, CgProgram *p, const CgOptions *o, IrError *err)
{
    double t0 = now_ms();
    CgModule *m = cg_module_new(p->graph->name ? p->graph->name : "gradc", err);
    if (!m)
        return NULL;
    lower_types(L, m);
    L->emit = true;
    if (!lower_all(L)) {
        cg_module_free(m);
        return NULL;
    }
    p->lower_ms = now_ms() - t0;
    if (o->keep_module && (!(p->llvm_ir = cg_module_to_llvm_ir(m, err)) ||
                           !(p->asm_text = cg_module_to_asm(m, err)))) {
        cg_module_free(m);
        return NULL;
    }
    return m;
}

static bool lookup_all(CgProgram *p, IrError *err)
{
    double t0 = now_ms();
    for (int i = 0; i < p->nnodes; i++) {
        CgNodeCode *c = &p->nodes[i];
        if (c->kind != CG_KERNEL)
            continue;
        p->nkernels += !c->noop;
        if (!(c->fn = (CgKernelFn)cg_jit_lookup(p->jit, c->symbol, err)))
            return false;
    }
    p->link_ms = now_ms() - t0;
    return true;
}

/* Cache, or build and add the module. */
static bool compile(CgLower *L, CgProgram *p, const CgOptions *o, IrError *err)
{
    char *key = key_text(p);
    if (!key) {
        ir_error(err, "codegen: out of memory");
        return false;
    }
    bool ok = !o->keep_module && cg_jit_add_cached(p->jit, key, &p->stats);
    if (!ok) {
        CgModule *m = build_module(L, p, o, err);
        ok = m && cg_jit_add_module(p->jit, m, key, &p->stats, err);
    }
    free(key);
    return ok && lookup_all(p, err);
}

/* ---------------------------------------------------------------- API */

static CgProgram *program_new(const IrGraph *g, const int64_t *binding, IrError *err)
{
    CgProgram *p = calloc(1, sizeof *p);
    if (p)
        p->nodes = calloc(g->nnodes ? g->nnodes : 1, sizeof *p->nodes);
    if (!p || !p->nodes) {
        free(p);
        ir_error(err, "codegen: out of memory");
        return NULL;
    }
    p->graph = g;
    p->nnodes = g->nnodes;
    for (int i = 0; binding && i < g->nsym; i++)
        p->binding[i] = binding[i];
    return p;
}

CgProgram *cg_program_compile(const IrGraph *g, const int64_t *binding, const CgOptions *opt,
                              IrError *err)
{
    double t0 = now_ms();
    CgOptions o = opt ? *opt : (CgOptions){0};
    if (!check_graph(g, binding, err))
        return NULL;
    CgProgram *p = program_new(g, binding, err);
    if (!p)
        return NULL;
    CgLower L;
    /* memplan after the plan pass, which refuses ops without a lowering */
    bool ok = lower_init(&L, p, err) && lower_all(&L) && plan_inplace(&L, o.own_buffers, err) &&
              (p->jit = cg_jit_new(err));
    if (ok && o.no_cache)
        cg_jit_set_no_cache(p->jit, true);
    ok = ok && compile(&L, p, &o, err);
    lower_done(&L);
    if (!ok) {
        cg_program_free(p);
        return NULL;
    }
    p->stats.total_ms = now_ms() - t0;
    return p;
}

void cg_program_free(CgProgram *p)
{
    if (!p)
        return;
    cg_jit_free(p->jit);
    free(p->nodes);
    free(p->llvm_ir);
    free(p->asm_text);
    free(p);
}
