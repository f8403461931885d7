/* cg_lower_elem.c — strided maps: elementwise ops, movement, const, iota.
 *
 * All of these are one loop nest over an iteration space in which every
 * buffer is addressed affinely: offset = off + sum_d idx[d] * st[d].
 * Broadcasting is a stride of 0, transpose permutes strides, slice adds an
 * offset, concat is several spaces (pieces) writing disjoint parts of one
 * output.  The strides are constants of the binding.
 *
 * Before emitting, a space is coalesced: size-1 axes are dropped and
 * neighbouring axes merge when every buffer steps through them as one
 * (st[d] == st[d+1] * dim[d+1]).  An add of two same-shape tensors thus
 * becomes one flat loop; x[B,T,D] + bias[D] becomes [B*T, D] with strides
 * (D, 1) and (0, 1).
 *
 * Parallel range (documented in docs/codegen.md):
 *   - a space that coalesces to one axis is a flat range over its
 *     elements: the kernel runs i in [begin, end) in one loop, so the
 *     threads split it evenly and the loop vectorizes with a tail;
 *   - otherwise the range is over output rows (all axes but the last),
 *     and each row is an inner loop over the last axis with constant trip
 *     count and constant strides (1 or 0 for the output and most inputs),
 *     which vectorizes well; the row's base offsets come from the row
 *     index by division by constants.
 *   - pieces (concat) are rows one after another: piece p owns rows
 *     [R0_p, R0_p + rows_p) of the range.
 */
#include "cg_lower_int.h"
#include "passes/pass.h"

#include <math.h>
#include <string.h>

/* An affine map from the iteration space to elements of buffer k->ptr[buf]. */
typedef struct Map {
    int buf;
    IrDType dt;
    int64_t off;
    int64_t st[IR_MAX_RANK];
} Map;

/* map[0] is the output; map[1..] are the values handed to the element fn. */
typedef struct Space {
    int rank;
    int64_t dim[IR_MAX_RANK];
    int nmap;
    Map map[IR_MAX_IN + 1];
} Space;

/* out = f(v[0..nmap-2]) for the element at flat output offset `flat`. */
typedef LLVMValueRef (*ElemFn)(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx);

typedef struct Job {
    int nsp;
    Space sp[IR_MAX_IN];
    ElemFn f;
    void *ctx;
    void (*setup)(CgKernel *k, void *ctx); /* before the loops; may be NULL */
} Job;

/* ---------------------------------------------------------------- spaces */

static void dense_strides(int rank, const int64_t *dim, int64_t *st)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= dim[d];
    }
}

/* The iteration space of node n's output with the output as map 0. */
static void space_of_output(CgLower *L, const IrNode *n, Space *s)
{
    memset(s, 0, sizeof *s);
    s->rank = n->shape.rank;
    memcpy(s->dim, L->dim[n->index], sizeof s->dim);
    s->nmap = 1;
    s->map[0].dt = n->dtype;
    dense_strides(s->rank, s->dim, s->map[0].st);
}

/* Adds operand i of n, broadcast (numpy, right-aligned) to the space. */
static void space_add_bcast(CgLower *L, const IrNode *n, int i, Space *s)
{
    const IrNode *x = n->in[i];
    int r = x->shape.rank;
    int64_t st[IR_MAX_RANK];
    dense_strides(r, L->dim[x->index], st);
    Map *m = &s->map[s->nmap++];
    memset(m, 0, sizeof *m);
    m->buf = 1 + i;
    m->dt = x->dtype;
    for (int d = 0; d < s->rank; d++) {
        int xd = d - (s->rank - r);
        m->st[d] = xd >= 0 && L->dim[x->index][xd] != 1 ? st[xd] : 0;
    }
}

static void space_drop_axis(Space *s, int d)
{
    for (int e = d; e + 1 < s->rank; e++) {
        s->dim[e] = s->dim[e + 1];
        for (int m = 0; m < s->nmap; m++)
            s->map[m].st[e] = s->map[m].st[e + 1];
    }
    s->rank--;
}

static bool space_mergeable(const Space *s, int d)
{
    for (int m = 0; m < s->nmap; m++)
        if (s->map[m].st[d] != s->map[m].st[d + 1] * s->dim[d + 1])
            return false;
    return true;
}

static void space_coalesce(Space *s)
{
    for (int d = s->rank - 1; d >= 0; d--)
        if (s->dim[d] == 1)
            space_drop_axis(s, d);
    for (int d = s->rank - 2; d >= 0; d--)
        if (space_mergeable(s, d)) {
            s->dim[d + 1] *= s->dim[d]; /* the merged axis keeps the inner strides */
            space_drop_axis(s, d);
        }
    if (s->rank == 0) {
        s->rank = 1;
        s->dim[0] = 1;
        for (int m = 0; m < s->nmap; m++)
            s->map[m].st[0] = 0;
    }
}

static int64_t space_rows(const Space *s)
{
    int64_t r = 1;
    for (int d = 0; d + 1 < s->rank; d++)
        r *= s->dim[d];
    return r;
}

static bool job_flat(const Job *j)
{
    return j->nsp == 1 && j->sp[0].rank == 1;
}

static int64_t job_extent(const Job *j)
{
    if (job_flat(j))
        return j->sp[0].dim[0];
    int64_t e = 0;
    for (int p = 0; p < j->nsp; p++)
        e += space_rows(&j->sp[p]);
    return e;
}

/* ---------------------------------------------------------------- emission */

/* One element: loads every input map at off[m] + i*st, stores f(...). */
static void emit_element(CgKernel *k, const Job *j, const Space *s, LLVMValueRef *off,
                         LLVMValueRef i)
{
    LLVMValueRef v[IR_MAX_IN + 1], at[IR_MAX_IN + 1];
    int last = s->rank - 1;
    for (int m = 0; m < s->nmap; m++)
        at[m] = cg_add(k, off[m], cg_mul(k, i, s->map[m].st[last]));
    for (int m = 1; m < s->nmap; m++)
        v[m - 1] = cg_load(k, s->map[m].dt, k->ptr[s->map[m].buf], at[m]);
    LLVMValueRef y = j->f(k, v, at[0], j->ctx);
    cg_store(k, s->map[0].dt, k->ptr[s->map[0].buf], at[0], y);
}

static void emit_flat(CgKernel *k, const Job *j)
{
    const Space *s = &j->sp[0];
    LLVMValueRef off[IR_MAX_IN + 1];
    for (int m = 0; m < s->nmap; m++)
        off[m] = cg_i64(k, s->map[m].off);
    CgFor f;
    LLVMValueRef i = cg_for_begin(k, &f, k->begin, k->end, 0, NULL);
    emit_element(k, j, s, off, i);
    cg_for_end(k, &f, NULL);
}

/* Base offsets of row r: the row's multi-index by division by constants. */
static void row_offsets(CgKernel *k, const Space *s, LLVMValueRef r, LLVMValueRef *off)
{
    for (int m = 0; m < s->nmap; m++)
        off[m] = cg_i64(k, s->map[m].off);
    LLVMValueRef rem = r;
    for (int d = s->rank - 2; d >= 0; d--) {
        LLVMValueRef idx = d == 0 ? rem : LLVMBuildURem(k->b, rem, cg_i64(k, s->dim[d]), "");
        if (d > 0)
            rem = LLVMBuildUDiv(k->b, rem, cg_i64(k, s->dim[d]), "");
        for (int m = 0; m < s->nmap; m++)
            if (s->map[m].st[d])
                off[m] = cg_add(k, off[m], cg_mul(k, idx, s->map[m].st[d]));
    }
}

/* Rows [max(begin - r0, 0), min(end - r0, rows)) of space s. */
static void emit_rows(CgKernel *k, const Job *j, const Space *s, int64_t r0)
{
    LLVMValueRef rows = cg_i64(k, space_rows(s));
    LLVMValueRef lo = cg_max(k, LLVMBuildNSWSub(k->b, k->begin, cg_i64(k, r0), ""), cg_i64(k, 0));
    LLVMValueRef hi = cg_min(k, LLVMBuildNSWSub(k->b, k->end, cg_i64(k, r0), ""), rows);
    LLVMValueRef off[IR_MAX_IN + 1];
    CgFor fr, fc;
    LLVMValueRef r = cg_for_begin(k, &fr, lo, hi, 0, NULL);
    row_offsets(k, s, r, off);
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, s->dim[s->rank - 1]), 0, NULL);
    emit_element(k, j, s, off, c);
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fr, NULL);
}

/* Coalesces, plans and (when emitting) builds the kernel of job j. */
static bool run_job(CgLower *L, const IrNode *n, Job *j)
{
    for (int p = 0; p < j->nsp; p++)
        space_coalesce(&j->sp[p]);
    cg_set_kernel(L, n, job_extent(j), true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    if (j->setup)
        j->setup(&k, j->ctx);
    if (job_flat(j))
        emit_flat(&k, j);
    int64_t r0 = 0;
    for (int p = 0; !job_flat(j) && p < j->nsp; p++) {
        emit_rows(&k, j, &j->sp[p], r0);
        r0 += space_rows(&j->sp[p]);
    }
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- elementwise */

static LLVMValueRef elem_fn(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx)
{
    return cg_elem(k, k->n, v);
}

/* unary, binary, where, cast, broadcast, gelu: out = f(broadcast inputs) */
bool cg_lower_elementwise(CgLower *L, const IrNode *n)
{
    Job j = {.nsp = 1, .f = elem_fn};
    space_of_output(L, n, &j.sp[0]);
    for (int i = 0; i < n->nin; i++)
        space_add_bcast(L, n, i, &j.sp[0]);
    return run_job(L, n, &j);
}

/* ---------------------------------------------------------------- dropout */

/* seed ^ step * C1 (ir/rng.h), both i64: what every element's hash of
 * one dropout shares. */
LLVMValueRef cg_dropout_mix(CgKernel *k, LLVMValueRef seed, LLVMValueRef step)
{
    LLVMValueRef sm = LLVMBuildMul(k->b, step, cg_i64(k, (int64_t)0xA0761D6478BD642Full), "");
    return LLVMBuildXor(k->b, sm, seed, "mix");
}

/* z ^= z >> s; z *= c (mod 2^64) */
static LLVMValueRef xsm(CgKernel *k, LLVMValueRef z, int s, uint64_t c)
{
    z = LLVMBuildXor(k->b, z, LLVMBuildLShr(k->b, z, cg_i64(k, s), ""), "");
    return c ? LLVMBuildMul(k->b, z, cg_i64(k, (int64_t)c), "") : z;
}

/* keep(seed, step, index, p) as in ir/rng.h: u >= p with u the top 53 bits
 * of splitmix64(mix ^ index C2) over 2^53, i.e. (z >> 11) >= ceil(p 2^53)
 * exactly.  Only for 0 < p < 1. */
LLVMValueRef cg_dropout_keep(CgKernel *k, LLVMValueRef mix, LLVMValueRef index, double p)
{
    LLVMBuilderRef b = k->b;
    LLVMValueRef x = LLVMBuildMul(b, index, cg_i64(k, (int64_t)0xE7037ED1A0B428DBull), "");
    x = LLVMBuildXor(b, x, mix, "");
    LLVMValueRef z = LLVMBuildAdd(b, x, cg_i64(k, (int64_t)0x9E3779B97F4A7C15ull), "");
    z = xsm(k, xsm(k, xsm(k, z, 30, 0xBF58476D1CE4E5B9ull), 27, 0x94D049BB133111EBull), 31, 0);
    uint64_t thresh = (uint64_t)ceil(p * 0x1p53);
    return LLVMBuildICmp(b, LLVMIntUGE, LLVMBuildLShr(b, z, cg_i64(k, 11), ""),
                         cg_i64(k, (int64_t)thresh), "keep");
}

typedef struct Dropout {
    double p;
    LLVMValueRef mix; /* cg_dropout_mix of the seed (the body's aux argument) and step */
} Dropout;

static void dropout_setup(CgKernel *k, void *ctx)
{
    Dropout *d = ctx;
    LLVMValueRef step = cg_i64(k, 0);
    if (k->n->nin == 2)
        step = LLVMBuildSExt(k->b, cg_load(k, DT_I32, k->ptr[2], cg_i64(k, 0)), k->L->i64, "");
    d->mix = cg_dropout_mix(k, k->aux, step);
}

/* x * keep(seed, step, flat, p): x / (1 - p) or 0. */
static LLVMValueRef dropout_fn(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx)
{
    Dropout *d = ctx;
    if (d->p <= 0)
        return v[0];
    if (d->p >= 1)
        return cg_f32c(k, 0);
    LLVMValueRef keep = cg_dropout_keep(k, d->mix, flat, d->p);
    LLVMValueRef scaled = LLVMBuildFMul(k->b, v[0], cg_f32c(k, 1.0 / (1.0 - d->p)), "");
    return LLVMBuildSelect(k->b, keep, scaled, cg_f32c(k, 0), "");
}

bool cg_lower_dropout(CgLower *L, const IrNode *n)
{
    Dropout d = {ir_node_float(n, ATTR_P, 0.0), NULL};
    Job j = {.nsp = 1, .f = dropout_fn, .ctx = &d, .setup = dropout_setup};
    space_of_output(L, n, &j.sp[0]);
    space_add_bcast(L, n, 0, &j.sp[0]);
    return run_job(L, n, &j);
}

/* ---------------------------------------------------------------- movement */

static LLVMValueRef copy_fn(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx)
{
    return v[0];
}

/* Adds operand i with its own dense strides, permuted/offset by the caller. */
static Map *space_add_dense(CgLower *L, const IrNode *n, int i, Space *s)
{
    const IrNode *x = n->in[i];
    Map *m = &s->map[s->nmap++];
    memset(m, 0, sizeof *m);
    m->buf = 1 + i;
    m->dt = x->dtype;
    dense_strides(x->shape.rank, L->dim[x->index], m->st);
    return m;
}

/* out[i0..ir] = x[j] with j[perm[d]] = i[d]: x's strides, permuted. */
bool cg_lower_transpose(CgLower *L, const IrNode *n)
{
    Job j = {.nsp = 1, .f = copy_fn};
    space_of_output(L, n, &j.sp[0]);
    Map *m = space_add_dense(L, n, 0, &j.sp[0]);
    int64_t st[IR_MAX_RANK];
    memcpy(st, m->st, sizeof st);
    const IrAttr *perm = ir_node_attr(n, ATTR_PERM);
    for (int d = 0; d < n->shape.rank; d++)
        m->st[d] = st[ir_axis(perm->i[d], n->shape.rank)];
    return run_job(L, n, &j);
}

/* out = x[..., start:end, ...] along axis: x's strides plus an offset. */
/* A slice over leading dims of 1 is a view (memplan's rule); any other
 * copies its range. */
bool cg_lower_slice(CgLower *L, const IrNode *n)
{
    if (pass_mem_kind(n) == PM_VIEW)
        return cg_lower_alias(L, n);
    Job j = {.nsp = 1, .f = copy_fn};
    space_of_output(L, n, &j.sp[0]);
    Map *m = space_add_dense(L, n, 0, &j.sp[0]);
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, 0), n->shape.rank);
    m->off = ir_node_int(n, ATTR_START, 0) * m->st[ax];
    return run_job(L, n, &j);
}

/* Piece p writes operand p into out[..., at:at+len_p, ...]. */
bool cg_lower_concat(CgLower *L, const IrNode *n)
{
    Job j = {.nsp = n->nin, .f = copy_fn};
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, 0), n->shape.rank);
    int64_t at = 0;
    for (int p = 0; p < n->nin; p++) {
        Space *s = &j.sp[p];
        space_of_output(L, n, s);
        s->dim[ax] = L->dim[n->in[p]->index][ax];
        s->map[0].off = at * s->map[0].st[ax];
        space_add_dense(L, n, p, s);
        at += s->dim[ax];
    }
    return run_job(L, n, &j);
}

/* ---------------------------------------------------------------- sources */

/* The value comes in as the double bits of the body's aux argument. */
static LLVMValueRef const_fn(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx)
{
    return *(LLVMValueRef *)ctx;
}

static void const_setup(CgKernel *k, void *ctx)
{
    LLVMValueRef *val = ctx;
    LLVMValueRef d = LLVMBuildBitCast(k->b, k->aux, k->L->f64, "value");
    *val = cg_cast_f64(k, k->n->dtype, d);
}

bool cg_lower_const(CgLower *L, const IrNode *n)
{
    LLVMValueRef value = NULL;
    Job j = {.nsp = 1, .f = const_fn, .ctx = &value, .setup = const_setup};
    space_of_output(L, n, &j.sp[0]);
    return run_job(L, n, &j);
}

/* iota: the index along axis, (flat / inner) % len, as i32. */
typedef struct Iota {
    int64_t len, inner;
} Iota;

static LLVMValueRef iota_fn(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx)
{
    Iota *io = ctx;
    LLVMValueRef q = LLVMBuildUDiv(k->b, flat, cg_i64(k, io->inner), "");
    q = LLVMBuildURem(k->b, q, cg_i64(k, io->len), "");
    return LLVMBuildTrunc(k->b, q, k->L->i32, "");
}

static int64_t inner_of(const CgLower *L, const IrNode *n, int ax)
{
    int64_t inner = 1;
    for (int d = ax + 1; d < n->shape.rank; d++)
        inner *= L->dim[n->index][d];
    return inner;
}

bool cg_lower_iota(CgLower *L, const IrNode *n)
{
    int ax = ir_axis(ir_node_int(n, ATTR_AXIS, 0), n->shape.rank);
    Iota io = {L->dim[n->index][ax], inner_of(L, n, ax)};
    Job j = {.nsp = 1, .f = iota_fn, .ctx = &io};
    space_of_output(L, n, &j.sp[0]);
    return run_job(L, n, &j);
}

/* ---------------------------------------------------------------- causal_mask */

/* x[..., Tq, Tk]: element (i, j) is -inf when j > i + (Tk - Tq). */
static LLVMValueRef causal_fn(CgKernel *k, const LLVMValueRef *v, LLVMValueRef flat, void *ctx)
{
    const int64_t *t = ctx; /* Tq, Tk */
    LLVMBuilderRef b = k->b;
    LLVMValueRef j = LLVMBuildURem(b, flat, cg_i64(k, t[1]), "");
    LLVMValueRef i =
        LLVMBuildURem(b, LLVMBuildUDiv(b, flat, cg_i64(k, t[1]), ""), cg_i64(k, t[0]), "");
    LLVMValueRef lim = cg_add(k, i, cg_i64(k, t[1] - t[0]));
    LLVMValueRef masked = LLVMBuildICmp(b, LLVMIntSGT, j, lim, "");
    return LLVMBuildSelect(b, masked, cg_f32c(k, -INFINITY), v[0], "");
}

bool cg_lower_causal_mask(CgLower *L, const IrNode *n)
{
    int r = n->shape.rank;
    int64_t t[2] = {L->dim[n->index][r - 2], L->dim[n->index][r - 1]};
    Job j = {.nsp = 1, .f = causal_fn, .ctx = t};
    space_of_output(L, n, &j.sp[0]);
    space_add_bcast(L, n, 0, &j.sp[0]);
    return run_job(L, n, &j);
}
