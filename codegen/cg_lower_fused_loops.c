/* cg_lower_fused_loops.c — the loops of fused kernels, and their values.
 *
 * A position in the kernel's space is a base offset per map (the outer
 * dims, computed from a work item's index by division by constants) plus
 * the inner index j times the map's stride along the last dim.  fx_value
 * builds a body node's value at the current position from its operands',
 * caching it for the loop it was built in: a value built before a loop is
 * reused inside it, one built inside is forgotten when the loop closes.
 * Values that do not vary with j (a row's statistics, a bias of a row
 * kernel whose rows are its last dim) are built once per row.
 *
 *   elementwise  a flat loop over the elements when the space coalesces
 *                to one dim, else rows: per row, a loop over the last dim;
 *   row          per row: for each level of reductions (a layernorm's mean,
 *                then its variance), one loop accumulating them; then the
 *                outputs, one value per row before the last loop and the
 *                others in it;
 *   reduce       the last dim reduced: one work item per output element,
 *                a loop over the outer reduced dims around a loop over the
 *                last; the last dim kept: one work item per output row and
 *                tile of FX_TILE columns, the reduced dims summed into a
 *                stack tile so that the column loop vectorizes.
 * Sums of f32 values accumulate in double (with the reassoc flag, so the
 * loop vectorizes with 8 partial sums per zmm): exact to the f32 result
 * for rows of any length, where a float sum would lose about log2(n) bits.
 * Max propagates NaN (llvm.maximum), as the interpreter does.  Each output
 * element is computed by one work item in a fixed order: results do not
 * depend on how the runtime splits the range.
 */
#include "cg_fused_int.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- positions */

static LLVMValueRef position(Fx *x, int m)
{
    LLVMValueRef off = x->base[m];
    int64_t s = x->st[m][x->rank - 1];
    if (x->j && s)
        off = cg_add(&x->k, off, cg_mul(&x->k, x->j, s));
    return off;
}

static void zero_bases(Fx *x)
{
    for (int m = 0; m < x->nmap; m++)
        x->base[m] = cg_i64(&x->k, 0);
}

/* base[m] += the offsets of idx, decomposed row-major over dims ds[0..n). */
static void add_offsets(Fx *x, LLVMValueRef idx, const int *ds, int n, LLVMValueRef *base)
{
    CgKernel *k = &x->k;
    LLVMValueRef rem = idx;
    for (int t = n - 1; t >= 0; t--) {
        int d = ds[t];
        LLVMValueRef i = t == 0 ? rem : LLVMBuildURem(k->b, rem, cg_i64(k, x->dim[d]), "");
        if (t > 0)
            rem = LLVMBuildUDiv(k->b, rem, cg_i64(k, x->dim[d]), "");
        for (int m = 0; m < x->nmap; m++)
            if (x->st[m][d])
                base[m] = cg_add(k, base[m], cg_mul(k, i, x->st[m][d]));
    }
}

void fx_forget(Fx *x, int d)
{
    for (int i = 0; i < x->M->nnodes; i++)
        if (x->x[i].v && x->x[i].depth >= d)
            x->x[i].v = NULL;
}

/* A counted loop [lo, hi) one level deeper; its index. */
static LLVMValueRef open_loop(Fx *x, CgFor *f, LLVMValueRef lo, LLVMValueRef hi)
{
    x->depth++;
    return cg_for_begin(&x->k, f, lo, hi, 0, NULL);
}

static void close_loop(Fx *x, CgFor *f)
{
    fx_forget(x, x->depth);
    x->depth--;
    cg_for_end(&x->k, f, NULL);
}

/* ---------------------------------------------------------------- values */

static LLVMValueRef const_value(Fx *x, const IrNode *n)
{
    LLVMValueRef d = LLVMConstReal(x->L->f64, ir_node_float(n, ATTR_VALUE, 0.0));
    return cg_cast_f64(&x->k, n->dtype, d);
}

static LLVMValueRef elem_value(Fx *x, const IrNode *n)
{
    CgKernel *k = &x->k;
    LLVMValueRef a[3];
    for (int j = 0; j < n->nin; j++)
        a[j] = fx_value(x, n->in[j]->index);
    return cg_elem(k, n, a);
}

/* z ^= z >> s; z *= c (mod 2^64) */
static LLVMValueRef xsm(CgKernel *k, LLVMValueRef z, int s, uint64_t c)
{
    z = LLVMBuildXor(k->b, z, LLVMBuildLShr(k->b, z, cg_i64(k, s), ""), "");
    return c ? LLVMBuildMul(k->b, z, cg_i64(k, (int64_t)c), "") : z;
}

/* x * keep(seed, step, index, p) as ir/rng.h computes it (and the single
 * op's lowering in cg_lower_elem.c): keep when the top 53 bits of
 * splitmix64(seed ^ step C1 ^ index C2) are >= ceil(p 2^53). */
static LLVMValueRef dropout_value(Fx *x, int i)
{
    CgKernel *k = &x->k;
    const IrNode *n = x->x[i].n;
    double p = ir_node_float(n, ATTR_P, 0.0);
    LLVMValueRef v = fx_value(x, n->in[0]->index);
    if (p <= 0)
        return v;
    if (p >= 1)
        return cg_f32c(k, 0);
    LLVMValueRef step = n->nin == 2 ? LLVMBuildSExt(k->b, fx_value(x, n->in[1]->index),
                                                    x->L->i64, "") : cg_i64(k, 0);
    LLVMValueRef at = cg_i64(k, x->x[i].aux);
    LLVMValueRef seed = LLVMBuildLoad2(k->b, x->L->i64, LLVMBuildInBoundsGEP2(k->b, x->L->i64,
                                       x->auxp, &at, 1, ""), "seed");
    LLVMValueRef mix = LLVMBuildXor(k->b, LLVMBuildMul(k->b, step,
                                    cg_i64(k, (int64_t)0xA0761D6478BD642Full), ""), seed, "");
    LLVMValueRef h = LLVMBuildMul(k->b, position(x, x->x[i].map),
                                  cg_i64(k, (int64_t)0xE7037ED1A0B428DBull), "");
    LLVMValueRef z = LLVMBuildAdd(k->b, LLVMBuildXor(k->b, h, mix, ""),
                                  cg_i64(k, (int64_t)0x9E3779B97F4A7C15ull), "");
    z = xsm(k, xsm(k, xsm(k, z, 30, 0xBF58476D1CE4E5B9ull), 27, 0x94D049BB133111EBull), 31, 0);
    uint64_t thresh = (uint64_t)ceil(p * 0x1p53);
    LLVMValueRef keep = LLVMBuildICmp(k->b, LLVMIntUGE, LLVMBuildLShr(k->b, z, cg_i64(k, 11), ""),
                                      cg_i64(k, (int64_t)thresh), "");
    LLVMValueRef scaled = LLVMBuildFMul(k->b, v, cg_f32c(k, 1.0 / (1.0 - p)), "");
    return LLVMBuildSelect(k->b, keep, scaled, cg_f32c(k, 0), "");
}

static LLVMValueRef compute(Fx *x, int i)
{
    const FxNode *v = &x->x[i];
    CgKernel *k = &x->k;
    switch (v->kind) {
    case X_INPUT:   return cg_load(k, v->n->dtype, x->inp[v->slot], position(x, v->map));
    case X_HEAD:    return cg_load(k, DT_F32, x->outp[x->primary], position(x, v->map));
    case X_CONST:   return const_value(x, v->n);
    case X_IOTA:    return LLVMBuildTrunc(k->b, position(x, v->map), x->L->i32, "");
    case X_DROPOUT: return dropout_value(x, i);
    case X_ELEM:    return elem_value(x, v->n);
    default:        IR_ASSERT(!"a reduction's value comes from its loop");
    }
}

LLVMValueRef fx_value(Fx *x, int i)
{
    FxNode *v = &x->x[i];
    if (!v->v) {
        IR_ASSERT(v->kind != X_INPUT || v->map >= 0);
        v->v = compute(x, i);
        v->depth = x->depth;
    }
    return v->v;
}

/* ---------------------------------------------------------------- accumulators */

static bool is_sum(const FxNode *r)
{
    return r->n->op == OP_SUM;
}

static LLVMTypeRef acc_type(Fx *x, const FxNode *r)
{
    if (r->n->dtype != DT_F32)
        return x->L->i32;
    return is_sum(r) ? x->L->f64 : x->L->f32;
}

static LLVMValueRef acc_init(Fx *x, const FxNode *r)
{
    if (r->n->dtype != DT_F32)
        return cg_i32c(&x->k, is_sum(r) ? 0 : INT32_MIN);
    return is_sum(r) ? LLVMConstReal(x->L->f64, 0) : cg_f32c(&x->k, -INFINITY);
}

static LLVMValueRef acc_step(Fx *x, const FxNode *r, LLVMValueRef acc, LLVMValueRef v)
{
    CgKernel *k = &x->k;
    if (r->n->dtype != DT_F32)
        return is_sum(r) ? LLVMBuildAdd(k->b, acc, v, "") : cg_maximum(k, DT_I32, acc, v);
    if (!is_sum(r)) {
        LLVMValueRef args[2] = {acc, v};
        return cg_intrin(k, "llvm.maximum", x->L->f32, args, 2);
    }
    return cg_fadd_reassoc(k, acc, LLVMBuildFPExt(k->b, v, x->L->f64, ""));
}

static LLVMValueRef acc_final(Fx *x, const FxNode *r, LLVMValueRef acc)
{
    if (r->n->dtype == DT_F32 && is_sum(r))
        return LLVMBuildFPTrunc(x->k.b, acc, x->L->f32, "");
    return acc;
}

/* acc[j] = op(acc[j], the reduction's input here) for an accumulator
 * array (n elements, index j) or a scalar (j NULL). */
static void accumulate(Fx *x, int r, LLVMValueRef j)
{
    const FxNode *v = &x->x[r];
    LLVMTypeRef t = acc_type(x, v);
    LLVMValueRef p = x->acc[v->acc];
    if (j)
        p = LLVMBuildInBoundsGEP2(x->k.b, t, p, &j, 1, "");
    LLVMValueRef in = fx_value(x, v->n->in[0]->index);
    LLVMBuildStore(x->k.b, acc_step(x, v, LLVMBuildLoad2(x->k.b, t, p, "acc"), in), p);
}

/* ---------------------------------------------------------------- outputs */

/* Output s is stored inside the last loop: its value varies with j, or its
 * own map steps along the last dim (a value constant along a row, an iota
 * over another axis or a broadcast [.., 1], still fills every column of
 * its row; stored once per row, it wrote column 0 only). */
static bool stored_per_column(const Fx *x, int s)
{
    return x->x[x->out[s]].varies || x->st[x->out_map[s]][x->rank - 1] != 0;
}

/* Stores the outputs that are stored per column (inside the last loop) or
 * those that are not (before it); every value first, then the stores, so
 * that an output written in place over the matmul's result is read before. */
static void store_outputs(Fx *x, bool varying)
{
    LLVMValueRef v[FX_MAX_OUT];
    for (int s = 0; s < x->nsib; s++)
        if (stored_per_column(x, s) == varying)
            v[s] = fx_value(x, x->out[s]);
    for (int s = 0; s < x->nsib; s++)
        if (stored_per_column(x, s) == varying)
            cg_store(&x->k, x->x[x->out[s]].n->dtype, x->outp[s], position(x, x->out_map[s]), v[s]);
}

static bool any_varying_output(const Fx *x)
{
    for (int s = 0; s < x->nsib; s++)
        if (stored_per_column(x, s))
            return true;
    return false;
}

/* ---------------------------------------------------------------- elementwise and row kernels */

/* Builds the row-level nodes of level `level` now, once per row. */
static void eager(Fx *x, int level)
{
    for (int i = 0; i < x->M->nnodes; i++) {
        const FxNode *v = &x->x[i];
        if (v->need && !v->varies && v->level == level &&
            (v->kind == X_ELEM || v->kind == X_DROPOUT))
            fx_value(x, i);
    }
}

/* One loop over the row accumulating every reduction of `level`. */
static void level_loop(Fx *x, int level, int64_t C)
{
    CgFor f;
    for (int i = 0; i < x->M->nnodes; i++) {
        FxNode *v = &x->x[i];
        if (!v->need || v->kind != X_RED || v->level != level)
            continue;
        if (!x->acc[v->acc])
            x->acc[v->acc] = cg_alloca(&x->k, acc_type(x, v), 1);
        LLVMBuildStore(x->k.b, acc_init(x, v), x->acc[v->acc]);
    }
    x->j = open_loop(x, &f, cg_i64(&x->k, 0), cg_i64(&x->k, C));
    for (int i = 0; i < x->M->nnodes; i++)
        if (x->x[i].need && x->x[i].kind == X_RED && x->x[i].level == level)
            accumulate(x, i, NULL);
    x->j = NULL;
    close_loop(x, &f);
    for (int i = 0; i < x->M->nnodes; i++) {
        FxNode *v = &x->x[i];
        if (!v->need || v->kind != X_RED || v->level != level)
            continue;
        v->v = acc_final(x, v, LLVMBuildLoad2(x->k.b, acc_type(x, v), x->acc[v->acc], "red"));
        v->depth = x->depth;
    }
}

static int64_t rows_of(const Fx *x)
{
    int64_t r = 1;
    for (int d = 0; d + 1 < x->rank; d++)
        r *= x->dim[d];
    return r;
}

/* One row: the outer dims from r, the levels, the outputs. */
static void emit_row(Fx *x, LLVMValueRef r)
{
    int ds[IR_MAX_RANK];
    for (int d = 0; d + 1 < x->rank; d++)
        ds[d] = d;
    zero_bases(x);
    add_offsets(x, r, ds, x->rank - 1, x->base);
    eager(x, 0);
    for (int level = 1; level <= x->maxlevel; level++) {
        level_loop(x, level, x->dim[x->rank - 1]);
        eager(x, level);
    }
    store_outputs(x, false);
    if (!any_varying_output(x))
        return;
    CgFor f;
    x->j = open_loop(x, &f, cg_i64(&x->k, 0), cg_i64(&x->k, x->dim[x->rank - 1]));
    store_outputs(x, true);
    x->j = NULL;
    close_loop(x, &f);
}

static void range(Fx *x, bool whole, int64_t extent, LLVMValueRef *lo, LLVMValueRef *hi)
{
    *lo = whole ? cg_i64(&x->k, 0) : x->k.begin;
    *hi = whole ? cg_i64(&x->k, extent) : x->k.end;
}

static void emit_rows(Fx *x, bool whole)
{
    CgFor f;
    LLVMValueRef lo, hi;
    range(x, whole, rows_of(x), &lo, &hi);
    LLVMValueRef r = open_loop(x, &f, lo, hi);
    emit_row(x, r);
    close_loop(x, &f);
}

/* One loop over every element: the space is one dim. */
static void emit_flat(Fx *x, bool whole)
{
    CgFor f;
    LLVMValueRef lo, hi;
    range(x, whole, x->dim[0], &lo, &hi);
    zero_bases(x);
    x->j = open_loop(x, &f, lo, hi);
    store_outputs(x, true);
    store_outputs(x, false);
    x->j = NULL;
    close_loop(x, &f);
}

/* ---------------------------------------------------------------- reduce kernels */

/* The kept (reduced = false) or reduced dims, in order, but the last dim. */
static int dims_where(const Fx *x, bool red, bool with_last, int *ds)
{
    int n = 0;
    for (int d = 0; d < x->rank; d++)
        if (x->red[d] == red && (with_last || d + 1 < x->rank))
            ds[n++] = d;
    return n;
}

static int64_t product(const Fx *x, const int *ds, int n)
{
    int64_t p = 1;
    for (int t = 0; t < n; t++)
        p *= x->dim[ds[t]];
    return p;
}

static void for_reductions(Fx *x, void (*f)(Fx *x, int r, LLVMValueRef j), LLVMValueRef j)
{
    for (int i = 0; i < x->M->nnodes; i++)
        if (x->x[i].need && x->x[i].kind == X_RED)
            f(x, i, j);
}

/* A loop over the reduced dims (the last one aside when it is reduced)
 * around the innermost loop of `inner` steps, accumulating; base0 is the
 * work item's base.  With `tile`, the accumulators are arrays indexed by
 * the innermost index (the columns of a tile). */
static void reduce_loops(Fx *x, const LLVMValueRef *base0, LLVMValueRef inner, bool tile)
{
    int rd[IR_MAX_RANK];
    int nr = dims_where(x, true, tile, rd);
    CgFor fq, fj;
    LLVMValueRef q = open_loop(x, &fq, cg_i64(&x->k, 0), cg_i64(&x->k, product(x, rd, nr)));
    memcpy(x->base, base0, sizeof x->base);
    add_offsets(x, q, rd, nr, x->base);
    x->j = open_loop(x, &fj, cg_i64(&x->k, 0), inner);
    for_reductions(x, accumulate, tile ? x->j : NULL);
    x->j = NULL;
    close_loop(x, &fj);
    close_loop(x, &fq);
}

static void init_scalar(Fx *x, int r, LLVMValueRef j)
{
    const FxNode *v = &x->x[r];
    if (!x->acc[v->acc])
        x->acc[v->acc] = cg_alloca(&x->k, acc_type(x, v), 1);
    LLVMBuildStore(x->k.b, acc_init(x, v), x->acc[v->acc]);
}

static int out_of(const Fx *x, int r)
{
    for (int s = 0; s < x->nsib; s++)
        if (x->out[s] == r)
            return s;
    IR_ASSERT(!"a reduction of a reduce kernel is one of its outputs");
}

static void store_scalar(Fx *x, int r, LLVMValueRef j)
{
    const FxNode *v = &x->x[r];
    int s = out_of(x, r);
    LLVMValueRef a = LLVMBuildLoad2(x->k.b, acc_type(x, v), x->acc[v->acc], "red");
    cg_store(&x->k, v->n->dtype, x->outp[s], position(x, x->out_map[s]), acc_final(x, v, a));
}

/* The last dim reduced: one output element per work item. */
static void emit_reduce_inner(Fx *x)
{
    int kd[IR_MAX_RANK];
    int nk = dims_where(x, false, true, kd);
    LLVMValueRef base0[FX_MAX_MAP];
    CgFor f;
    LLVMValueRef o = open_loop(x, &f, x->k.begin, x->k.end);
    zero_bases(x);
    add_offsets(x, o, kd, nk, x->base);
    memcpy(base0, x->base, sizeof base0);
    for_reductions(x, init_scalar, NULL);
    reduce_loops(x, base0, cg_i64(&x->k, x->dim[x->rank - 1]), false);
    memcpy(x->base, base0, sizeof base0);
    for_reductions(x, store_scalar, NULL);
    close_loop(x, &f);
}

static void tile_init(Fx *x, int r, LLVMValueRef j)
{
    const FxNode *v = &x->x[r];
    LLVMTypeRef t = acc_type(x, v);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(x->k.b, t, x->acc[v->acc], &j, 1, "");
    LLVMBuildStore(x->k.b, acc_init(x, v), p);
}

static void tile_store(Fx *x, int r, LLVMValueRef j)
{
    const FxNode *v = &x->x[r];
    LLVMTypeRef t = acc_type(x, v);
    int s = out_of(x, r);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(x->k.b, t, x->acc[v->acc], &j, 1, "");
    LLVMValueRef a = acc_final(x, v, LLVMBuildLoad2(x->k.b, t, p, "red"));
    cg_store(&x->k, v->n->dtype, x->outp[s], position(x, x->out_map[s]), a);
}

/* Runs f over the tile's columns [0, w). */
static void tile_loop(Fx *x, LLVMValueRef w, void (*f)(Fx *x, int r, LLVMValueRef j))
{
    CgFor fj;
    x->j = open_loop(x, &fj, cg_i64(&x->k, 0), w);
    for_reductions(x, f, x->j);
    x->j = NULL;
    close_loop(x, &fj);
}

static void tile_allocas(Fx *x, int r, LLVMValueRef j)
{
    const FxNode *v = &x->x[r];
    if (!x->acc[v->acc])
        x->acc[v->acc] = cg_alloca(&x->k, acc_type(x, v), FX_TILE);
}

/* The last dim kept: a work item per (output row, tile of columns). */
static void emit_reduce_outer(Fx *x)
{
    CgKernel *k = &x->k;
    int kd[IR_MAX_RANK];
    int nk = dims_where(x, false, false, kd);
    int64_t W = x->dim[x->rank - 1], nt = (W + FX_TILE - 1) / FX_TILE;
    LLVMValueRef base0[FX_MAX_MAP];
    CgFor f;
    for_reductions(x, tile_allocas, NULL);
    LLVMValueRef e = open_loop(x, &f, k->begin, k->end);
    LLVMValueRef j0 = cg_mul(k, LLVMBuildURem(k->b, e, cg_i64(k, nt), ""), FX_TILE);
    LLVMValueRef w = cg_min(k, cg_i64(k, FX_TILE), LLVMBuildNSWSub(k->b, cg_i64(k, W), j0, ""));
    zero_bases(x);
    add_offsets(x, LLVMBuildUDiv(k->b, e, cg_i64(k, nt), ""), kd, nk, x->base);
    for (int m = 0; m < x->nmap; m++)
        x->base[m] = cg_add(k, x->base[m], cg_mul(k, j0, x->st[m][x->rank - 1]));
    memcpy(base0, x->base, sizeof base0);
    tile_loop(x, w, tile_init);
    reduce_loops(x, base0, w, true);
    memcpy(x->base, base0, sizeof base0);
    tile_loop(x, w, tile_store);
    close_loop(x, &f);
}

/* ---------------------------------------------------------------- entry */

int64_t fx_extent(const Fx *x)
{
    int kd[IR_MAX_RANK];
    if (x->kind == FK_ELEM && x->rank == 1)
        return x->dim[0];
    if (x->kind != FK_REDUCE)
        return rows_of(x);
    if (x->red[x->rank - 1])
        return product(x, kd, dims_where(x, false, true, kd));
    int64_t W = x->dim[x->rank - 1];
    return product(x, kd, dims_where(x, false, false, kd)) * ((W + FX_TILE - 1) / FX_TILE);
}

void fx_emit_loops(Fx *x, bool whole)
{
    if (x->kind == FK_REDUCE && x->red[x->rank - 1])
        emit_reduce_inner(x);
    else if (x->kind == FK_REDUCE)
        emit_reduce_outer(x);
    else if (x->kind == FK_ELEM && x->rank == 1)
        emit_flat(x, whole);
    else
        emit_rows(x, whole);
}
