/* cg_lower_reduce.c — reductions and the row-wise composites.
 *
 * Summation scheme (sum, mean, softmax's denominator, layernorm's moments,
 * cross-entropy's log-sum-exp).  A contiguous run is cut into blocks of
 * BLOCK = 512 elements.  Inside a block the adds carry the `reassoc` flag,
 * so the loop vectorizer keeps 4 x 16 independent partial sums and adds
 * them as a tree at the end: each partial sums at most 8 elements.  Block
 * results are combined with Neumaier's compensated sum.  The error is then
 * about (8 + log2 64) ulp of the block magnitude plus O(eps^2 n), instead
 * of n ulp for a plain serial loop.  Everything accumulates in float; only
 * cross_entropy's final mean over rows is a double.
 *
 * Parallel ranges, by layout (after dropping size-1 axes and merging
 * neighbouring axes that are both kept or both reduced):
 *   - the last axis is reduced ("inner"): one work item per output
 *     element; each sums its contiguous runs as above (outer reduced axes,
 *     if any, loop around them and feed the same compensated sum);
 *   - the last axis is kept ("outer"), e.g. a bias gradient sum over
 *     [B*T, D] -> [D]: one work item per (output row, tile of TILE = 256
 *     columns); the reduced rows are summed into a stack tile CHUNK = 32
 *     rows at a time, and chunk sums are added with Neumaier compensation
 *     (a second tile holds the compensations), so the column loops
 *     vectorize and the error is that of a 32-element sum.
 * Every output element is computed by one work item in a fixed order, so
 * results do not depend on how the runtime splits the range (1 and 2
 * threads give bit-identical results).
 *
 * Max propagates NaN like the interpreter.  Mean divides the sum by the
 * count (float division, as the interpreter does in double).
 *
 * Row-wise composites, one work item per row:
 *   softmax / log_softmax   m = max x; s = sum exp(x - m) (softmax stores
 *       the exps on the way); then y = e / s, or y = (x - m) - log s.
 *       A row of all -inf gives NaN, as in the interpreter.  Axes other
 *       than the last are rows with a constant stride.
 *   layernorm   two passes with a shift: with s0 = x[0] of the row,
 *       mean' = mean(x - s0), var = mean((x - s0 - mean')^2) (biased), then
 *       y = ((x - s0) - mean') / sqrt(var + eps) * scale + shift.  The
 *       shift keeps the deviations exact when |mean| >> std (inputs of
 *       magnitude 1e4 with unit spread lose nothing), where a plain
 *       mean in float would already be off by ulp(1e4).
 *   cross_entropy   serial (extent 1): per row, m = max, s = sum exp(x - m),
 *       loss = (m - x[t]) + log s; rows whose target is ignore_index are
 *       skipped, the mean is over the counted rows, 0 when none.  A target
 *       outside [0, V) (an error in the interpreter) makes the loss NaN.
 */
#include "cg_lower_int.h"

#include <math.h>
#include <string.h>

enum { BLOCK = 512, TILE = 256, CHUNK = 32 };

/* The value of element i of a row. */
typedef LLVMValueRef (*ValFn)(CgKernel *k, LLVMValueRef i, void *ctx);

/* ---------------------------------------------------------------- row helpers */

static LLVMValueRef zero_of(CgKernel *k, IrDType dt)
{
    return dt == DT_F32 ? cg_f32c(k, 0) : cg_i32c(k, 0);
}

/* sum f(start + j) for j < n, reassociable (vectorized). */
static LLVMValueRef block_sum(CgKernel *k, IrDType dt, LLVMValueRef start, int64_t n, ValFn f,
                              void *ctx)
{
    CgFor fj;
    LLVMValueRef zero = zero_of(k, dt);
    LLVMValueRef j = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, n), 1, &zero);
    LLVMValueRef v = f(k, cg_add(k, start, j), ctx);
    LLVMValueRef acc = dt == DT_F32 ? cg_fadd_reassoc(k, fj.carry[0], v)
                                    : LLVMBuildAdd(k->b, fj.carry[0], v, "");
    cg_for_end(k, &fj, &acc);
    return fj.result[0];
}

static void add_part(CgKernel *k, IrDType dt, LLVMValueRef *s, LLVMValueRef *c, LLVMValueRef part)
{
    if (dt == DT_F32)
        cg_neumaier(k, s, c, part);
    else
        *s = LLVMBuildAdd(k->b, *s, part, "");
}

/* (s, c) += sum f(i) for i < n, BLOCK elements at a time (see the top). */
static void sum_into(CgKernel *k, IrDType dt, int64_t n, ValFn f, void *ctx, LLVMValueRef *s,
                     LLVMValueRef *c)
{
    int64_t nb = n / BLOCK, tail = n % BLOCK;
    if (nb > 0) {
        CgFor fb;
        LLVMValueRef init[2] = {*s, *c};
        LLVMValueRef blk = cg_for_begin(k, &fb, cg_i64(k, 0), cg_i64(k, nb), 2, init);
        LLVMValueRef ss = fb.carry[0], cc = fb.carry[1];
        add_part(k, dt, &ss, &cc, block_sum(k, dt, cg_mul(k, blk, BLOCK), BLOCK, f, ctx));
        LLVMValueRef next[2] = {ss, cc};
        cg_for_end(k, &fb, next);
        *s = fb.result[0];
        *c = fb.result[1];
    }
    if (tail > 0)
        add_part(k, dt, s, c, block_sum(k, dt, cg_i64(k, nb * BLOCK), tail, f, ctx));
}

static LLVMValueRef row_sum(CgKernel *k, int64_t n, ValFn f, void *ctx)
{
    LLVMValueRef s = cg_f32c(k, 0), c = cg_f32c(k, 0);
    sum_into(k, DT_F32, n, f, ctx, &s, &c);
    return LLVMBuildFAdd(k->b, s, c, "sum");
}

static LLVMValueRef min_of(CgKernel *k, IrDType dt)
{
    return dt == DT_F32 ? cg_f32c(k, -INFINITY) : cg_i32c(k, INT32_MIN);
}

/* max(init, f(i) for i < n), NaN-propagating. */
static LLVMValueRef row_max(CgKernel *k, IrDType dt, int64_t n, ValFn f, void *ctx,
                            LLVMValueRef init)
{
    CgFor fi;
    LLVMValueRef i = cg_for_begin(k, &fi, cg_i64(k, 0), cg_i64(k, n), 1, &init);
    LLVMValueRef args[2] = {fi.carry[0], f(k, i, ctx)};
    LLVMValueRef acc = dt == DT_F32 ? cg_intrin(k, "llvm.maximum", k->L->f32, args, 2)
                                    : cg_maximum(k, dt, args[0], args[1]);
    cg_for_end(k, &fi, &acc);
    return fi.result[0];
}

/* f(i) for i < n, for its stores. */
static void row_each(CgKernel *k, LLVMValueRef n, ValFn f, void *ctx)
{
    CgFor fi;
    LLVMValueRef i = cg_for_begin(k, &fi, cg_i64(k, 0), n, 0, NULL);
    f(k, i, ctx);
    cg_for_end(k, &fi, NULL);
}

/* A strided row of a buffer: element i at ptr[base + i * stride]. */
typedef struct Row {
    IrDType dt;
    LLVMValueRef ptr, base;
    int64_t stride;
} Row;

static LLVMValueRef row_at(CgKernel *k, const Row *r, LLVMValueRef i)
{
    return cg_add(k, r->base, cg_mul(k, i, r->stride));
}

static LLVMValueRef row_load(CgKernel *k, const Row *r, LLVMValueRef i)
{
    return cg_load(k, r->dt, r->ptr, row_at(k, r, i));
}

static LLVMValueRef load_fn(CgKernel *k, LLVMValueRef i, void *ctx)
{
    return row_load(k, ctx, i);
}

/* ---------------------------------------------------------------- reduce: layout */

/* The input's axes after dropping size-1 axes and merging neighbours with
 * the same flag: groups g with length len[g], input stride st[g]. */
typedef struct Red {
    int ng;
    int64_t len[IR_MAX_RANK], st[IR_MAX_RANK];
    bool red[IR_MAX_RANK];
    int64_t count; /* elements reduced into each output */
} Red;

static void red_mask(const IrNode *n, bool *mask)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    int r = n->in[0]->shape.rank;
    for (int i = 0; i < r; i++)
        mask[i] = !a || a->n == 0;
    for (int i = 0; a && i < a->n; i++)
        mask[ir_axis(a->i[i], r)] = true;
}

static void red_groups(CgLower *L, const IrNode *n, Red *r)
{
    const IrNode *x = n->in[0];
    const int64_t *dim = L->dim[x->index];
    bool mask[IR_MAX_RANK];
    red_mask(n, mask);
    memset(r, 0, sizeof *r);
    r->count = cg_numel(L, x) / (cg_numel(L, n) ? cg_numel(L, n) : 1);
    for (int d = 0; d < x->shape.rank; d++) {
        if (dim[d] == 1)
            continue;
        if (r->ng && r->red[r->ng - 1] == mask[d]) {
            r->len[r->ng - 1] *= dim[d];
            continue;
        }
        r->red[r->ng] = mask[d];
        r->len[r->ng++] = dim[d];
    }
    for (int g = r->ng - 1, s = 1; g >= 0; s *= r->len[g], g--)
        r->st[g] = s;
}

/* Offset in the input of the idx-th combination of the groups with flag
 * `red` among groups [0, upto). */
static LLVMValueRef group_offset(CgKernel *k, const Red *r, bool red, int upto, LLVMValueRef idx)
{
    LLVMValueRef off = cg_i64(k, 0), rem = idx;
    int outermost = -1;
    for (int g = 0; g < upto && outermost < 0; g++)
        outermost = r->red[g] == red ? g : -1;
    for (int g = upto - 1; g >= 0; g--) {
        if (r->red[g] != red)
            continue;
        LLVMValueRef i = g == outermost ? rem : LLVMBuildURem(k->b, rem, cg_i64(k, r->len[g]), "");
        if (g != outermost)
            rem = LLVMBuildUDiv(k->b, rem, cg_i64(k, r->len[g]), "");
        off = cg_add(k, off, cg_mul(k, i, r->st[g]));
    }
    return off;
}

static int64_t groups_size(const Red *r, bool red, int upto)
{
    int64_t s = 1;
    for (int g = 0; g < upto; g++)
        s *= r->red[g] == red ? r->len[g] : 1;
    return s;
}

static LLVMValueRef finish(CgKernel *k, const Red *r, LLVMValueRef v)
{
    if (k->n->op != OP_MEAN)
        return v;
    return LLVMBuildFDiv(k->b, v, cg_f32c(k, (double)r->count), "mean");
}

/* ---------------------------------------------------------------- reduce: inner */

/* One output element o: its runs start at base + outer-reduced offsets. */
static LLVMValueRef inner_element(CgKernel *k, const Red *r, LLVMValueRef base)
{
    IrDType dt = k->n->in[0]->dtype;
    int64_t run = r->len[r->ng - 1], q = groups_size(r, true, r->ng - 1);
    Row row = {dt, k->ptr[1], base, 1};
    if (k->n->op == OP_MAX && q == 1)
        return row_max(k, dt, run, load_fn, &row, min_of(k, dt));
    LLVMValueRef init[2] = {k->n->op == OP_MAX ? min_of(k, dt) : zero_of(k, dt), zero_of(k, dt)};
    CgFor fq;
    LLVMValueRef qi = cg_for_begin(k, &fq, cg_i64(k, 0), cg_i64(k, q), 2, init);
    LLVMValueRef s = fq.carry[0], c = fq.carry[1];
    row.base = cg_add(k, base, group_offset(k, r, true, r->ng - 1, qi));
    if (k->n->op == OP_MAX)
        s = row_max(k, dt, run, load_fn, &row, s);
    else
        sum_into(k, dt, run, load_fn, &row, &s, &c);
    LLVMValueRef next[2] = {s, c};
    cg_for_end(k, &fq, next);
    if (k->n->op == OP_MAX || dt != DT_F32)
        return fq.result[0];
    return LLVMBuildFAdd(k->b, fq.result[0], fq.result[1], "");
}

static void emit_inner(CgKernel *k, const Red *r)
{
    CgFor fo;
    LLVMValueRef o = cg_for_begin(k, &fo, k->begin, k->end, 0, NULL);
    LLVMValueRef base = group_offset(k, r, false, r->ng, o);
    LLVMValueRef v = finish(k, r, inner_element(k, r, base));
    cg_store(k, k->n->dtype, k->ptr[0], o, v);
    cg_for_end(k, &fo, NULL);
}

/* ---------------------------------------------------------------- reduce: outer */

/* Column-tile loops over j < w: dst[dbase + j] op= src[sbase + j]. */
enum { T_ZERO, T_COPY, T_ADD, T_MAX, T_DIV, T_COMP };

typedef struct Tile {
    IrDType dt;
    int op;
    LLVMValueRef dst, dbase, src, sbase;
    LLVMValueRef comp; /* T_ZERO, T_COMP: the compensation tile (f32) */
    double count;      /* T_DIV */
} Tile;

/* (dst, comp)[j] += src[j], compensated (f32) or plain (i32). */
static void tile_comp(CgKernel *k, Tile *t, LLVMValueRef j, LLVMValueRef x)
{
    LLVMValueRef at = cg_add(k, t->dbase, j), s = cg_load(k, t->dt, t->dst, at);
    if (t->dt != DT_F32) {
        cg_store(k, t->dt, t->dst, at, LLVMBuildAdd(k->b, s, x, ""));
        return;
    }
    LLVMValueRef c = cg_load(k, DT_F32, t->comp, at);
    cg_neumaier(k, &s, &c, x);
    cg_store(k, DT_F32, t->dst, at, s);
    cg_store(k, DT_F32, t->comp, at, c);
}

static LLVMValueRef tile_fn(CgKernel *k, LLVMValueRef j, void *ctx)
{
    Tile *t = ctx;
    LLVMValueRef at = cg_add(k, t->dbase, j), v = NULL, d = NULL;
    if (t->op == T_ZERO) {
        v = zero_of(k, t->dt);
        if (t->comp)
            cg_store(k, t->dt, t->comp, at, v);
    } else if (t->op != T_DIV) {
        v = cg_load(k, t->dt, t->src, cg_add(k, t->sbase, j));
    }
    if (t->op == T_COMP) {
        tile_comp(k, t, j, v);
        return v;
    }
    if (t->op == T_ADD || t->op == T_MAX || t->op == T_DIV)
        d = cg_load(k, t->dt, t->dst, at);
    if (t->op == T_ADD)
        v = t->dt == DT_F32 ? LLVMBuildFAdd(k->b, d, v, "") : LLVMBuildAdd(k->b, d, v, "");
    else if (t->op == T_MAX)
        v = cg_maximum(k, t->dt, d, v);
    else if (t->op == T_DIV)
        v = LLVMBuildFDiv(k->b, d, cg_f32c(k, t->count), "");
    cg_store(k, t->dt, t->dst, at, v);
    return v;
}

static void tile_op(CgKernel *k, LLVMValueRef w, Tile t)
{
    row_each(k, w, tile_fn, &t);
}

/* out tile = sum of the reduced rows at ibase + offset(q): CHUNK rows at a
 * time into tmp, chunk sums into (acc, comp) with compensation. */
static void outer_sum(CgKernel *k, const Red *r, LLVMValueRef obase, LLVMValueRef ibase,
                      LLVMValueRef w)
{
    IrDType dt = k->n->dtype;
    LLVMTypeRef et = cg_elem_type(k->L, dt);
    int64_t q = groups_size(r, true, r->ng);
    LLVMValueRef tmp = cg_alloca(k, et, TILE), acc = cg_alloca(k, et, TILE);
    LLVMValueRef comp = cg_alloca(k, et, TILE), x = k->ptr[1], zero = cg_i64(k, 0);
    tile_op(k, w, (Tile){dt, T_ZERO, acc, zero, NULL, NULL, comp, 0});
    CgFor fc, fq;
    LLVMValueRef c = cg_for_begin(k, &fc, zero, cg_i64(k, (q + CHUNK - 1) / CHUNK), 0, NULL);
    LLVMValueRef q0 = cg_mul(k, c, CHUNK);
    LLVMValueRef q1 = cg_min(k, cg_add(k, q0, cg_i64(k, CHUNK)), cg_i64(k, q));
    LLVMValueRef off0 = cg_add(k, ibase, group_offset(k, r, true, r->ng, q0));
    tile_op(k, w, (Tile){dt, T_COPY, tmp, zero, x, off0, NULL, 0});
    LLVMValueRef qi = cg_for_begin(k, &fq, cg_add(k, q0, cg_i64(k, 1)), q1, 0, NULL);
    LLVMValueRef off = cg_add(k, ibase, group_offset(k, r, true, r->ng, qi));
    tile_op(k, w, (Tile){dt, T_ADD, tmp, zero, x, off, NULL, 0});
    cg_for_end(k, &fq, NULL);
    tile_op(k, w, (Tile){dt, T_COMP, acc, zero, tmp, zero, comp, 0});
    cg_for_end(k, &fc, NULL);
    tile_op(k, w, (Tile){dt, T_COPY, k->ptr[0], obase, acc, zero, NULL, 0});
    tile_op(k, w, (Tile){dt, T_ADD, k->ptr[0], obase, comp, zero, NULL, 0});
}

static void outer_max(CgKernel *k, const Red *r, LLVMValueRef obase, LLVMValueRef ibase,
                      LLVMValueRef w)
{
    IrDType dt = k->n->dtype;
    CgFor fq;
    int64_t q = groups_size(r, true, r->ng);
    tile_op(k, w, (Tile){dt, T_COPY, k->ptr[0], obase, k->ptr[1], ibase, NULL, 0});
    LLVMValueRef qi = cg_for_begin(k, &fq, cg_i64(k, 1), cg_i64(k, q), 0, NULL);
    LLVMValueRef off = cg_add(k, ibase, group_offset(k, r, true, r->ng, qi));
    tile_op(k, w, (Tile){dt, T_MAX, k->ptr[0], obase, k->ptr[1], off, NULL, 0});
    cg_for_end(k, &fq, NULL);
}

static int64_t outer_tiles(const Red *r)
{
    return (r->len[r->ng - 1] + TILE - 1) / TILE;
}

/* Work item e = (output row, column tile). */
static void emit_outer(CgKernel *k, const Red *r)
{
    int64_t W = r->len[r->ng - 1], nt = outer_tiles(r);
    CgFor fe;
    LLVMValueRef e = cg_for_begin(k, &fe, k->begin, k->end, 0, NULL);
    LLVMValueRef row = LLVMBuildUDiv(k->b, e, cg_i64(k, nt), "");
    LLVMValueRef j0 = cg_mul(k, LLVMBuildURem(k->b, e, cg_i64(k, nt), ""), TILE);
    LLVMValueRef w = nt == 1 ? cg_i64(k, W) : cg_min(k, cg_i64(k, TILE),
                                                      LLVMBuildNSWSub(k->b, cg_i64(k, W), j0, ""));
    LLVMValueRef obase = cg_add(k, cg_mul(k, row, W), j0);
    LLVMValueRef ibase = cg_add(k, group_offset(k, r, false, r->ng - 1, row), j0);
    if (k->n->op == OP_MAX)
        outer_max(k, r, obase, ibase, w);
    else
        outer_sum(k, r, obase, ibase, w);
    if (k->n->op == OP_MEAN)
        tile_op(k, w, (Tile){DT_F32, T_DIV, k->ptr[0], obase, NULL, NULL, NULL, (double)r->count});
    cg_for_end(k, &fe, NULL);
}

/* sum, max, mean over attribute axes. */
bool cg_lower_reduce(CgLower *L, const IrNode *n)
{
    Red r;
    red_groups(L, n, &r);
    if (r.ng == 0) { /* one element: a copy, as a kept group of 1 */
        r.ng = 1;
        r.len[0] = r.st[0] = 1;
    }
    bool inner = r.red[r.ng - 1];
    int64_t extent = inner ? cg_numel(L, n) : groups_size(&r, false, r.ng - 1) * outer_tiles(&r);
    cg_set_kernel(L, n, extent, true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    if (inner)
        emit_inner(&k, &r);
    else
        emit_outer(&k, &r);
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- softmax */

typedef struct Soft {
    Row x, y;
    LLVMValueRef m, s;
    bool log;
} Soft;

static LLVMValueRef soft_exp(CgKernel *k, LLVMValueRef i, void *ctx)
{
    Soft *sm = ctx;
    LLVMValueRef e = cg_exp(k, LLVMBuildFSub(k->b, row_load(k, &sm->x, i), sm->m, ""));
    if (!sm->log)
        cg_store(k, DT_F32, sm->y.ptr, row_at(k, &sm->y, i), e);
    return e;
}

static LLVMValueRef soft_out(CgKernel *k, LLVMValueRef i, void *ctx)
{
    Soft *sm = ctx;
    LLVMValueRef v;
    if (sm->log)
        v = LLVMBuildFSub(k->b, LLVMBuildFSub(k->b, row_load(k, &sm->x, i), sm->m, ""), sm->s, "");
    else
        v = LLVMBuildFDiv(k->b, row_load(k, &sm->y, i), sm->s, "");
    cg_store(k, DT_F32, sm->y.ptr, row_at(k, &sm->y, i), v);
    return v;
}

/* softmax / log_softmax of the row starting at base (stride: inner). */
static void softmax_row(CgKernel *k, LLVMValueRef base, int64_t len, int64_t inner)
{
    Soft sm = {{DT_F32, k->ptr[1], base, inner}, {DT_F32, k->ptr[0], base, inner}, NULL, NULL,
               k->n->op == OP_LOG_SOFTMAX};
    sm.m = row_max(k, DT_F32, len, load_fn, &sm.x, cg_f32c(k, -INFINITY));
    sm.s = row_sum(k, len, soft_exp, &sm);
    if (sm.log)
        sm.s = cg_log(k, sm.s);
    row_each(k, cg_i64(k, len), soft_out, &sm);
}

bool cg_lower_softmax(CgLower *L, const IrNode *n)
{
    int rank = n->shape.rank, ax = ir_axis(ir_node_int(n, ATTR_AXIS, -1), rank);
    if (ax < 0)
        return cg_fail(L, n, "axis %lld is out of range for rank %d",
                       (long long)ir_node_int(n, ATTR_AXIS, -1), rank);
    int64_t len = L->dim[n->index][ax], inner = 1;
    for (int d = ax + 1; d < rank; d++)
        inner *= L->dim[n->index][d];
    cg_set_kernel(L, n, cg_numel(L, n) / len, true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    CgFor fr;
    LLVMValueRef r = cg_for_begin(&k, &fr, k.begin, k.end, 0, NULL);
    LLVMValueRef o = LLVMBuildUDiv(k.b, r, cg_i64(&k, inner), "");
    LLVMValueRef base = cg_add(&k, cg_mul(&k, o, len * inner),
                               LLVMBuildURem(k.b, r, cg_i64(&k, inner), ""));
    softmax_row(&k, base, len, inner);
    cg_for_end(&k, &fr, NULL);
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- layernorm */

typedef struct Norm {
    Row x, y;
    LLVMValueRef s0, mean, rstd;
} Norm;

/* (x[i] - s0) - mean, with mean 0 on the first pass. */
static LLVMValueRef norm_dev(CgKernel *k, LLVMValueRef i, void *ctx)
{
    Norm *nm = ctx;
    LLVMValueRef d = LLVMBuildFSub(k->b, row_load(k, &nm->x, i), nm->s0, "");
    return nm->mean ? LLVMBuildFSub(k->b, d, nm->mean, "") : d;
}

static LLVMValueRef norm_sq(CgKernel *k, LLVMValueRef i, void *ctx)
{
    LLVMValueRef d = norm_dev(k, i, ctx);
    return LLVMBuildFMul(k->b, d, d, "");
}

static LLVMValueRef norm_out(CgKernel *k, LLVMValueRef i, void *ctx)
{
    Norm *nm = ctx;
    LLVMValueRef v = LLVMBuildFMul(k->b, norm_dev(k, i, ctx), nm->rstd, "");
    v = LLVMBuildFMul(k->b, v, cg_load(k, DT_F32, k->ptr[2], i), "");
    v = LLVMBuildFAdd(k->b, v, cg_load(k, DT_F32, k->ptr[3], i), "");
    cg_store(k, DT_F32, nm->y.ptr, row_at(k, &nm->y, i), v);
    return v;
}

static void layernorm_row(CgKernel *k, LLVMValueRef base, int64_t D, double eps)
{
    Norm nm = {{DT_F32, k->ptr[1], base, 1}, {DT_F32, k->ptr[0], base, 1}, NULL, NULL, NULL};
    LLVMBuilderRef b = k->b;
    nm.s0 = row_load(k, &nm.x, cg_i64(k, 0));
    LLVMValueRef mean = LLVMBuildFDiv(b, row_sum(k, D, norm_dev, &nm), cg_f32c(k, (double)D), "");
    nm.mean = mean;
    LLVMValueRef var = LLVMBuildFDiv(b, row_sum(k, D, norm_sq, &nm), cg_f32c(k, (double)D), "");
    LLVMValueRef sd = cg_intrin(k, "llvm.sqrt", k->L->f32,
                                (LLVMValueRef[]){LLVMBuildFAdd(b, var, cg_f32c(k, eps), "")}, 1);
    nm.rstd = LLVMBuildFDiv(b, cg_f32c(k, 1), sd, "rstd");
    row_each(k, cg_i64(k, D), norm_out, &nm);
}

bool cg_lower_layernorm(CgLower *L, const IrNode *n)
{
    int64_t D = L->dim[n->index][n->shape.rank - 1];
    cg_set_kernel(L, n, cg_numel(L, n) / D, true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    CgFor fr;
    LLVMValueRef r = cg_for_begin(&k, &fr, k.begin, k.end, 0, NULL);
    layernorm_row(&k, cg_mul(&k, r, D), D, ir_node_float(n, ATTR_EPS, 1e-5));
    cg_for_end(&k, &fr, NULL);
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- cross_entropy */

/* The loss of row r with target t (i64), or NaN if t is outside [0, V). */
static LLVMValueRef xent_row(CgKernel *k, LLVMValueRef r, LLVMValueRef t, int64_t V)
{
    LLVMBuilderRef b = k->b;
    Soft sm = {{DT_F32, k->ptr[1], cg_mul(k, r, V), 1}, {DT_F32, k->ptr[0], NULL, 1}, NULL, NULL,
               true};
    sm.m = row_max(k, DT_F32, V, load_fn, &sm.x, cg_f32c(k, -INFINITY));
    LLVMValueRef lse = cg_log(k, row_sum(k, V, soft_exp, &sm));
    LLVMValueRef ok = LLVMBuildICmp(b, LLVMIntULT, t, cg_i64(k, V), "");
    LLVMValueRef xt = row_load(k, &sm.x, LLVMBuildSelect(b, ok, t, cg_i64(k, 0), ""));
    LLVMValueRef loss = LLVMBuildFAdd(b, LLVMBuildFSub(b, sm.m, xt, ""), lse, "loss");
    return LLVMBuildSelect(b, ok, loss, cg_f32c(k, NAN), "");
}

/* Loop body for row r: (total, count) += (loss, 1) unless ignored. */
static void xent_step(CgKernel *k, CgFor *f, int64_t V, int64_t ignore)
{
    LLVMBuilderRef b = k->b;
    LLVMContextRef C = k->L->C;
    LLVMValueRef t = LLVMBuildSExt(b, cg_load(k, DT_I32, k->ptr[2], f->i), k->L->i64, "t");
    LLVMBasicBlockRef use = LLVMAppendBasicBlockInContext(C, k->fn, "use");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(C, k->fn, "join");
    LLVMBasicBlockRef from = LLVMGetInsertBlock(b);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, t, cg_i64(k, ignore), ""), join, use);
    LLVMPositionBuilderAtEnd(b, use);
    LLVMValueRef loss = LLVMBuildFPExt(b, xent_row(k, f->i, t, V), k->L->f64, "");
    LLVMValueRef tot = LLVMBuildFAdd(b, f->carry[0], loss, "");
    LLVMValueRef cnt = cg_add(k, f->carry[1], cg_i64(k, 1));
    LLVMBasicBlockRef used = LLVMGetInsertBlock(b);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
    LLVMValueRef next[2];
    LLVMBasicBlockRef blocks[2] = {from, used};
    next[0] = LLVMBuildPhi(b, k->L->f64, "tot");
    LLVMAddIncoming(next[0], (LLVMValueRef[]){f->carry[0], tot}, blocks, 2);
    next[1] = LLVMBuildPhi(b, k->L->i64, "cnt");
    LLVMAddIncoming(next[1], (LLVMValueRef[]){f->carry[1], cnt}, blocks, 2);
    cg_for_end(k, f, next);
}

bool cg_lower_cross_entropy(CgLower *L, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int64_t V = L->dim[x->index][x->shape.rank - 1], R = cg_numel(L, x) / V;
    cg_set_kernel(L, n, 1, false);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    LLVMBuilderRef b = k.b;
    CgFor f;
    LLVMValueRef init[2] = {LLVMConstReal(L->f64, 0), cg_i64(&k, 0)};
    cg_for_begin(&k, &f, cg_i64(&k, 0), cg_i64(&k, R), 2, init);
    xent_step(&k, &f, V, ir_node_int(n, ATTR_IGNORE_INDEX, -100));
    LLVMValueRef cnt = f.result[1];
    LLVMValueRef any = LLVMBuildICmp(b, LLVMIntSGT, cnt, cg_i64(&k, 0), "");
    LLVMValueRef mean = LLVMBuildFDiv(b, f.result[0], LLVMBuildSIToFP(b, cnt, L->f64, ""), "");
    mean = LLVMBuildSelect(b, any, mean, LLVMConstReal(L->f64, 0), "");
    cg_store(&k, DT_F32, k.ptr[0], cg_i64(&k, 0), LLVMBuildFPTrunc(b, mean, L->f32, "loss"));
    cg_kernel_end(&k);
    return true;
}
