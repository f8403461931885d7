/* cg_lower_attention.c — causal_attention and causal_attention_grad, flash style.
 *
 * qkv[lead..., T, 3D] holds per row q | k | v; head h reads the hd = D/H
 * columns from h*hd of each third (ir/interp.c is the contract).  Neither
 * kernel stores a T x T matrix: both visit the keys in blocks of bk (64,
 * less for a wide head or a short T), copied to the stack with K
 * transposed (tiles of TV x TV transposed in registers), and take the
 * query rows RG at a time against a block: the group's dots run with the
 * keys innermost, their sums in registers across the columns (no
 * horizontal adds), each in partial sums of up to 16 columns, and the
 * group shares the loads of the block.  The online softmax step of a
 * group (max, exp and sum over the block's keys) runs its rows side by
 * side.  A row of a group past the rows being done repeats the last one,
 * and what it computes goes nowhere.
 *
 * Forward (FlashAttention-2 style): the parallel range is (head, chunk of
 * qc = FQ bk query rows), lead*H*ceil(T / qc) items, the chunk fastest:
 * an item costs ~ its rows' i, but a head's items are contiguous, so with
 * an even number of heads each of 2 threads gets the same work, and finer
 * items than heads leave less to chance elsewhere.  An item keeps per query row the running
 * max m_i and sum l_i (stack arrays of qc) and the accumulator acc_i[hd]
 * (stack, qc rows).  Per key block up to that of its last row: the keys
 * (transposed) and values (as rows) are copied to the stack; then per
 * group of RG rows i >= j0 the scores s_ij = scale q_i . k_j, per row the
 * online step over its keys j <= i: the new max m, alpha = exp(m_old -
 * m), l = l alpha + sum_j exp(s_ij - m), and the weights exp(s_ij - m)
 * z_ij, z being the dropout multiplier of the flat index ((b H + h) T + i)
 * T + j of the [lead, H, T, T] weights; then the group's accumulators come
 * to the stack rescaled by alpha, sum the weighted values (one load of v_j
 * for the group, the sums in registers) and go back.  At the end out_i =
 * acc_i / l_i.
 *
 * Gradient (FlashAttention-2 style): the parallel range is the heads
 * lead*H; item (b, h) owns the dq, dk and dv columns of its head, so items
 * never race.  It zeroes them, then takes its query rows in chunks of up
 * to QCHUNK (one chunk unless T is larger), whose statistics live in stack
 * arrays of qc floats:
 *   pass 1: Dsum_i = dout_i . out_i (out is the forward output, operand 1:
 *     the same as sum_j P_ij g_ij), and m_i, l_i online over the key blocks
 *     (the forward's step without weights), stored as m_i and 1 / l_i;
 *   pass 2, per key block [j0, j0 + bk): its keys (as rows and transposed)
 *     and values (transposed) are copied to the stack, dk_acc[bk][hd] and
 *     dv_acc[bk][hd] (stack) zeroed; then for the query rows i >= j0 of
 *     the chunk, RG at a time: the dots q_i . k_j and dout_i . v_j of the
 *     block, P_ij = exp(s_ij - m_i) / l_i, g_ij = z_ij dout_i . v_j and
 *     dS_ij = P_ij (g_ij - Dsum_i) (0 for j > i), then dq_i += scale dS_ij
 *     k_j (stack, added to the output once per row and block), dk_acc[j]
 *     += scale dS_ij q_i and dv_acc[j] += P_ij z_ij dout_i.  At the end of
 *     the block dk_acc and dv_acc are added to the output.
 * So the per-pair sums touch only stack buffers (L1), and dk and dv are
 * written once per block and chunk.  Both passes sum a score the same
 * way, so the statistics fit the weights of pass 2 bit for bit.  A group
 * also shares the read-modify-write of dk_acc and dv_acc; its repeated
 * rows have dS and P z set to 0.
 *
 * Loops: every loop over hd is innermost, with a constant trip count and
 * reassociable (and contractible) sums, so it vectorizes; the loops over a
 * block's keys that compute dots, exp and the dropout hash touch only
 * stack buffers, so they vectorize too.  Arithmetic is float, exp is
 * cg_exp and the keep mask is cg_dropout_keep (ir/rng.h bit for bit).  The
 * seed is the body's aux argument, so layers that differ only in seed
 * share a body.
 */
#include "cg_lower_int.h"

#include <math.h>
#include <string.h>

enum {
    BK = 64,      /* most keys per block (Att.bk) */
    RG = 4,       /* query rows per group (AttRows) */
    TV = 16,      /* floats per vector of a transposed block copy (bk is a multiple) */
    FQ = 2,       /* forward: query rows per item (Att.qc), in blocks */
    QCHUNK = 8192 /* gradient: most query rows whose statistics are kept at once */
};

/* One node's geometry and attributes. */
typedef struct Att {
    int64_t lead, T, D, H, hd;
    int64_t bk; /* keys per block */
    /* query rows per chunk: the forward's per item, FQ blocks; the
     * gradient's whose statistics are kept at once, T up to QCHUNK */
    int64_t qc;
    double scale, p;
    int step; /* operand index of the i32 step, -1 without one */
} Att;

/* A kernel being built: buffers, block buffers and the dropout mix. */
typedef struct AttK {
    CgKernel *k;
    const Att *a;
    LLVMValueRef out, qkv;  /* the output, operand 0 */
    LLVMValueRef fwd, dout; /* gradient only: operands 1 (out) and 2 (dout) */
    LLVMValueRef mix;       /* p > 0: cg_dropout_mix of seed and step */
    /* per row r of a group, f32[bk]: q_i . k_j, then the forward's weights
     * exp(s_ij - m) z_ij or the gradient's scale dS_ij (sg); gradient only,
     * dout_i . v_j then P_ij z_ij (gg); f32[hd], the row's sum over the
     * block's keys: the forward's accumulator, the gradient's dq_i (rs) */
    LLVMValueRef sg[RG], gg[RG], rs[RG];
    LLVMValueRef part[2 * RG]; /* f32[bk], partial sums of att_group_dots */
    /* the block's keys transposed (kt: column c at c bk), f32[bk hd]; the
     * forward's values as rows (vr: key jj at jj hd); the gradient's keys
     * as rows (kr), values transposed (vt), and dk and dv sums (dka, dva:
     * as kr) */
    LLVMValueRef kt, vr, kr, vt, dka, dva;
    /* per query row of a chunk, f32[qc]: m_i (rm), l_i (rl; the gradient's
     * pass 2: 1 / l_i), the gradient's dsum_i (rd) */
    LLVMValueRef rm, rl, rd;
    LLVMValueRef acc; /* forward: f32[(qc + 1) hd], acc_i at (i - i0) hd; row qc for a repeat */
} AttK;

static bool att_plan(CgLower *L, const IrNode *n, Att *a)
{
    const IrNode *x = n->in[0];
    const int64_t *d = L->dim[x->index];
    int r = x->shape.rank, nf = n->op == OP_CAUSAL_ATTENTION ? 1 : 3;
    a->T = d[r - 2];
    a->D = d[r - 1] / 3;
    a->H = ir_node_int(n, ATTR_HEADS, 1);
    a->hd = a->D / a->H;
    a->lead = cg_numel(L, x) / (a->T * 3 * a->D);
    a->scale = ir_node_float(n, ATTR_SCALE, 1.0);
    a->p = ir_node_float(n, ATTR_P, 0.0);
    a->step = n->nin > nf ? nf : -1;
    /* blocks of at most 64 KiB, and no wider than T needs */
    a->bk = BK;
    while (a->bk > 16 && (a->bk * a->hd > 16384 || a->bk - 16 >= a->T))
        a->bk -= 16;
    a->qc = n->op == OP_CAUSAL_ATTENTION ? FQ * a->bk : a->T < QCHUNK ? a->T : QCHUNK;
    if (!(a->p >= 0 && a->p < 1))
        return cg_fail(L, n, "p = %g is outside [0, 1)", a->p);
    return true;
}

/* Chunks of query rows per head. */
static int64_t att_chunks(const Att *a)
{
    return (a->T + a->qc - 1) / a->qc;
}

static void att_begin(AttK *t, CgKernel *k, const Att *a, bool grad)
{
    CgLower *L = k->L;
    int64_t bk = a->bk, hd = a->hd;
    *t = (AttK){.k = k, .a = a, .out = k->ptr[0], .qkv = k->ptr[1]};
    for (int r = 0; r < RG; r++) {
        t->sg[r] = cg_alloca(k, L->f32, bk);
        t->rs[r] = cg_alloca(k, L->f32, hd);
    }
    for (int p = 0; p < (grad ? 2 : 1) * RG; p++)
        t->part[p] = cg_alloca(k, L->f32, bk);
    t->kt = cg_alloca(k, L->f32, bk * hd);
    t->rm = cg_alloca(k, L->f32, a->qc);
    t->rl = cg_alloca(k, L->f32, a->qc);
    if (grad) {
        t->fwd = k->ptr[2];
        t->dout = k->ptr[3];
        for (int r = 0; r < RG; r++)
            t->gg[r] = cg_alloca(k, L->f32, bk);
        LLVMValueRef *blk[] = {&t->kr, &t->vt, &t->dka, &t->dva};
        for (int i = 0; i < 4; i++)
            *blk[i] = cg_alloca(k, L->f32, bk * hd);
        t->rd = cg_alloca(k, L->f32, a->qc);
    } else {
        t->vr = cg_alloca(k, L->f32, bk * hd);
        t->acc = cg_alloca(k, L->f32, (a->qc + 1) * hd);
    }
    if (a->p > 0) {
        LLVMValueRef step = cg_i64(k, 0);
        if (a->step >= 0)
            step = LLVMBuildSExt(k->b, cg_load(k, DT_I32, k->ptr[1 + a->step], cg_i64(k, 0)),
                                 L->i64, "step");
        t->mix = cg_dropout_mix(k, k->aux, step);
    }
}

/* ---------------------------------------------------------------- vectors of hd */

/* acc + x * y, reassociable and contractible into an fma. */
static LLVMValueRef att_madd(CgKernel *k, LLVMValueRef acc, LLVMValueRef x, LLVMValueRef y)
{
    LLVMValueRef m = LLVMBuildFMul(k->b, x, y, "");
    LLVMValueRef s = LLVMBuildFAdd(k->b, acc, m, "");
    if (LLVMIsAInstruction(m))
        LLVMSetFastMathFlags(m, LLVMFastMathAllowContract);
    if (LLVMIsAInstruction(s))
        LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
    return s;
}

/* d[at] += w * x */
static void att_addto(CgKernel *k, LLVMValueRef d, LLVMValueRef at, LLVMValueRef w, LLVMValueRef x)
{
    cg_store(k, DT_F32, d, at, att_madd(k, cg_load(k, DT_F32, d, at), w, x));
}

/* sum_c x[xo + c] y[yo + c] over c < hd. */
static LLVMValueRef att_dot(AttK *t, LLVMValueRef x, LLVMValueRef xo, LLVMValueRef y,
                            LLVMValueRef yo)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef zero = cg_f32c(k, 0);
    LLVMValueRef c = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, t->a->hd), 1, &zero);
    LLVMValueRef s = att_madd(k, f.carry[0], cg_load(k, DT_F32, x, cg_add(k, xo, c)),
                              cg_load(k, DT_F32, y, cg_add(k, yo, c)));
    cg_for_end(k, &f, &s);
    return f.result[0];
}

/* d[o + c] = v for c < hd. */
static void att_fill(AttK *t, LLVMValueRef d, LLVMValueRef o, double v)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef c = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
    cg_store(k, DT_F32, d, cg_add(k, o, c), cg_f32c(k, v));
    cg_for_end(k, &f, NULL);
}

/* d[i] = 0 for i < n. */
static void att_fill_n(AttK *t, LLVMValueRef d, int64_t n)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef i = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, n), 0, NULL);
    cg_store(k, DT_F32, d, i, cg_f32c(k, 0));
    cg_for_end(k, &f, NULL);
}

/* d[do + c] = s[so + c] * w for c < hd (w NULL: a copy). */
static void att_scaled(AttK *t, LLVMValueRef d, LLVMValueRef dof, LLVMValueRef s, LLVMValueRef so,
                       LLVMValueRef w)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef c = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
    LLVMValueRef v = cg_load(k, DT_F32, s, cg_add(k, so, c));
    cg_store(k, DT_F32, d, cg_add(k, dof, c), w ? LLVMBuildFMul(k->b, v, w, "") : v);
    cg_for_end(k, &f, NULL);
}

/* ---------------------------------------------------------------- blocks of keys */

/* Offset of column 0 of head h in row j0 + jj of the third at `base`. */
static LLVMValueRef att_row(AttK *t, LLVMValueRef base, LLVMValueRef j0, LLVMValueRef jj)
{
    return cg_add(t->k, base, cg_mul(t->k, cg_add(t->k, j0, jj), 3 * t->a->D));
}

/* The dropout multiplier of flat weight index `flat`: 1/(1-p) or 0 (1 without dropout). */
static LLVMValueRef att_keep(AttK *t, LLVMValueRef flat)
{
    CgKernel *k = t->k;
    double p = t->a->p;
    if (p == 0)
        return cg_f32c(k, 1);
    LLVMValueRef keep = cg_dropout_keep(k, t->mix, flat, p);
    return LLVMBuildSelect(k->b, keep, cg_f32c(k, 1.0 / (1.0 - p)), cg_f32c(k, 0), "z");
}

/* One head's geometry: q of row i at qb + i 3D (k at + D, v at + 2D), the
 * output (forward), dout and out (gradient) of row i at ob + i D, the
 * dropout index of (i, j) flat + i T + j. */
typedef struct AttHead {
    LLVMValueRef qb, ob, flat;
} AttHead;

/* Head e = (b, h) of the lead*H heads. */
static AttHead att_head(AttK *t, LLVMValueRef e)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMValueRef bi = LLVMBuildUDiv(k->b, e, cg_i64(k, a->H), "b");
    LLVMValueRef h = LLVMBuildURem(k->b, e, cg_i64(k, a->H), "h");
    LLVMValueRef hc = cg_mul(k, h, a->hd);
    return (AttHead){
        .qb = cg_add(k, cg_mul(k, bi, a->T * 3 * a->D), hc),
        .ob = cg_add(k, cg_mul(k, bi, a->T * a->D), hc),
        .flat = cg_mul(k, e, a->T * a->T),
    };
}

/* A group of RG query rows ib + r against the key block from j0, for rows
 * [i0, ie) of a chunk.  A row past ie (ok false) repeats row ie - 1: it
 * computes what that row does, and its results go nowhere. */
typedef struct AttRows {
    LLVMValueRef j0;
    LLVMValueRef i[RG];  /* the row, min(ib + r, ie - 1) */
    LLVMValueRef ok[RG]; /* ib + r < ie */
    LLVMValueRef ri[RG]; /* i - i0: its index in rm, rl, rd */
    LLVMValueRef n[RG];  /* its keys in the block, j0 + jj <= i: min(bk, i + 1 - j0) */
    LLVMValueRef qo[RG], oo[RG]; /* q_i in qkv, dout_i in dout */
    LLVMValueRef flat[RG];       /* the dropout index of (i, j0) */
} AttRows;

static void att_rows(AttK *t, const AttHead *hh, LLVMValueRef ib, LLVMValueRef i0,
                     LLVMValueRef ie, LLVMValueRef j0, AttRows *g)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    LLVMValueRef last = LLVMBuildNSWSub(b, ie, cg_i64(k, 1), "");
    g->j0 = j0;
    for (int r = 0; r < RG; r++) {
        LLVMValueRef i = cg_add(k, ib, cg_i64(k, r));
        g->ok[r] = LLVMBuildICmp(b, LLVMIntSLT, i, ie, "");
        g->i[r] = cg_min(k, i, last);
        g->ri[r] = LLVMBuildNSWSub(b, g->i[r], i0, "");
        g->n[r] = cg_min(k, cg_i64(k, t->a->bk),
                         LLVMBuildNSWSub(b, cg_add(k, g->i[r], cg_i64(k, 1)), j0, ""));
        g->qo[r] = att_row(t, hh->qb, g->i[r], cg_i64(k, 0));
        g->oo[r] = cg_add(k, hh->ob, cg_mul(k, g->i[r], t->a->D));
        g->flat[r] = cg_add(k, hh->flat, cg_add(k, cg_mul(k, g->i[r], t->a->T), j0));
    }
}

/* Begins the loop over the groups of rows [max(i0, j0), ie) for block j0. */
static LLVMValueRef att_groups(AttK *t, CgFor *f, LLVMValueRef i0, LLVMValueRef ie,
                               LLVMValueRef j0)
{
    CgKernel *k = t->k;
    LLVMValueRef first = cg_max(k, i0, j0);
    LLVMValueRef ng = LLVMBuildUDiv(k->b, cg_add(k, LLVMBuildNSWSub(k->b, ie, first, ""),
                                                 cg_i64(k, RG - 1)), cg_i64(k, RG), "");
    return cg_add(k, first, cg_mul(k, cg_for_begin(k, f, cg_i64(k, 0), ng, 0, NULL), RG));
}

/* The first key of block blk, and *nb = its keys before T. */
static LLVMValueRef att_block(AttK *t, LLVMValueRef blk, LLVMValueRef *nb)
{
    CgKernel *k = t->k;
    LLVMValueRef j0 = cg_mul(k, blk, t->a->bk);
    *nb = cg_min(k, cg_i64(k, t->a->bk), LLVMBuildNSWSub(k->b, cg_i64(k, t->a->T), j0, ""));
    return j0;
}

/* The blocks of keys before row ie (the keys j < ie). */
static LLVMValueRef att_nblocks(AttK *t, LLVMValueRef ie)
{
    CgKernel *k = t->k;
    return LLVMBuildUDiv(k->b, cg_add(k, ie, cg_i64(k, t->a->bk - 1)), cg_i64(k, t->a->bk), "");
}

/* The row of key j0 + min(jj, nb - 1) of the head's third at qb + D part. */
static LLVMValueRef att_key_row(AttK *t, const AttHead *hh, int part, LLVMValueRef j0,
                                LLVMValueRef jj, LLVMValueRef nb)
{
    CgKernel *k = t->k;
    LLVMValueRef j = cg_min(k, jj, LLVMBuildNSWSub(k->b, nb, cg_i64(k, 1), ""));
    return att_row(t, cg_add(k, hh->qb, cg_i64(k, part * t->a->D)), j0, j);
}

/* The <TV x float> at x[at], unaligned. */
static LLVMValueRef att_vload(AttK *t, LLVMValueRef x, LLVMValueRef at)
{
    CgKernel *k = t->k;
    LLVMTypeRef vt = LLVMVectorType(k->L->f32, TV);
    LLVMValueRef v = LLVMBuildLoad2(k->b, vt, cg_gep(k, DT_F32, x, at), "");
    LLVMSetAlignment(v, 4);
    return v;
}

static void att_vstore(AttK *t, LLVMValueRef d, LLVMValueRef at, LLVMValueRef v)
{
    CgKernel *k = t->k;
    LLVMSetAlignment(LLVMBuildStore(k->b, v, cg_gep(k, DT_F32, d, at)), 4);
}

/* The transpose of the TV x TV tile v[r][c] in place, v[c][r]: log2(TV)
 * perfect shuffles of the rows (r, r + TV/2), each a two-input shuffle. */
static void att_transpose(AttK *t, LLVMValueRef *v)
{
    CgKernel *k = t->k;
    LLVMValueRef lo[TV], hi[TV], o[TV];
    for (int e = 0; e < TV / 2; e++) {
        lo[2 * e] = cg_i32c(k, e), lo[2 * e + 1] = cg_i32c(k, TV + e);
        hi[2 * e] = cg_i32c(k, TV / 2 + e), hi[2 * e + 1] = cg_i32c(k, TV + TV / 2 + e);
    }
    LLVMValueRef mlo = LLVMConstVector(lo, TV), mhi = LLVMConstVector(hi, TV);
    for (int s = 1; s < TV; s *= 2) {
        for (int r = 0; r < TV / 2; r++) {
            o[2 * r] = LLVMBuildShuffleVector(k->b, v[r], v[r + TV / 2], mlo, "");
            o[2 * r + 1] = LLVMBuildShuffleVector(k->b, v[r], v[r + TV / 2], mhi, "");
        }
        memcpy(v, o, sizeof o);
    }
}

/* Keys j0 + jj (jj < bk; a row from jj >= nb repeats row nb - 1) of the
 * head's third at qb + D part: rows into d (d[jj hd + c]) or transposed
 * (d[c bk + jj]).  Transposed, the columns below hd rounded down to TV go
 * by tiles of TV x TV, transposed in registers (a strided store or load
 * per element would be a scatter or a gather). */
static void att_load_block(AttK *t, LLVMValueRef d, bool transposed, const AttHead *hh, int part,
                           LLVMValueRef j0, LLVMValueRef nb)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    int64_t ct = transposed ? a->hd / TV * TV : 0; /* columns by tiles */
    CgFor fj, fc;
    if (ct > 0) {
        LLVMValueRef jt = cg_mul(k, cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, a->bk / TV), 0,
                                                 NULL), TV);
        LLVMValueRef ro[TV], v[TV];
        for (int r = 0; r < TV; r++)
            ro[r] = att_key_row(t, hh, part, j0, cg_add(k, jt, cg_i64(k, r)), nb);
        LLVMValueRef c = cg_mul(k, cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, ct / TV), 0, NULL),
                                TV);
        for (int r = 0; r < TV; r++)
            v[r] = att_vload(t, t->qkv, cg_add(k, ro[r], c));
        att_transpose(t, v);
        for (int r = 0; r < TV; r++)
            att_vstore(t, d, cg_add(k, cg_mul(k, cg_add(k, c, cg_i64(k, r)), a->bk), jt), v[r]);
        cg_for_end(k, &fc, NULL);
        cg_for_end(k, &fj, NULL);
        if (ct == a->hd)
            return;
    }
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, a->bk), 0, NULL);
    LLVMValueRef so = att_key_row(t, hh, part, j0, jj, nb);
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, ct), cg_i64(k, a->hd), 0, NULL);
    LLVMValueRef at = transposed ? cg_add(k, cg_mul(k, c, a->bk), jj)
                                 : cg_add(k, cg_mul(k, jj, a->hd), c);
    cg_store(k, DT_F32, d, at, cg_load(k, DT_F32, t->qkv, cg_add(k, so, c)));
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

/* Columns per partial sum of att_group_dots: the largest divisor of hd up
 * to 16.  Fma chains of 64 lose too much: the weights exp(s - m) turn the
 * error of a score into a relative one. */
static int64_t att_cblock(int64_t hd)
{
    int64_t cb = 16;
    while (hd % cb)
        cb--;
    return cb;
}

/* The group's dots with the block's keys, for jj < bk: sg[r][jj] = q_i .
 * k_jj and, with values, gg[r][jj] = dout_i . v_jj.  The loop over c is
 * outside, the one over the keys innermost: it vectorizes over keys, and
 * the sums stay in registers across c, one chain of fmas per vector of
 * them.  Every pass sums a score alike, so the gradient's statistics fit
 * its second pass's weights bit for bit. */
static void att_group_dots(AttK *t, const AttRows *g, bool values)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMValueRef d[2 * RG], x[2 * RG], xo[2 * RG], tb[2 * RG], xc[2 * RG];
    int np = 0;
    for (int r = 0; r < RG; r++) {
        d[np] = t->sg[r], x[np] = t->qkv, xo[np] = g->qo[r], tb[np++] = t->kt;
        if (values)
            d[np] = t->gg[r], x[np] = t->dout, xo[np] = g->oo[r], tb[np++] = t->vt;
    }
    int64_t cb = att_cblock(a->hd);
    CgFor fj, fb, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, a->bk), 0, NULL);
    for (int p = 0; p < np; p++)
        cg_store(k, DT_F32, d[p], jj, cg_f32c(k, 0));
    cg_for_end(k, &fj, NULL);
    LLVMValueRef c0 = cg_mul(k, cg_for_begin(k, &fb, cg_i64(k, 0), cg_i64(k, a->hd / cb), 0,
                                             NULL), cb);
    jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, a->bk), 0, NULL);
    for (int p = 0; p < np; p++)
        cg_store(k, DT_F32, t->part[p], jj, cg_f32c(k, 0));
    cg_for_end(k, &fj, NULL);
    LLVMValueRef c = cg_add(k, c0, cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, cb), 0, NULL));
    for (int p = 0; p < np; p++)
        xc[p] = cg_load(k, DT_F32, x[p], cg_add(k, xo[p], c));
    jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, a->bk), 0, NULL);
    LLVMValueRef at = cg_add(k, cg_mul(k, c, a->bk), jj);
    for (int p = 0; p < np; p++) {
        LLVMValueRef v = cg_load(k, DT_F32, tb[p], at);
        cg_store(k, DT_F32, t->part[p], jj,
                 att_madd(k, cg_load(k, DT_F32, t->part[p], jj), xc[p], v));
    }
    cg_for_end(k, &fj, NULL);
    cg_for_end(k, &fc, NULL);
    jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, a->bk), 0, NULL);
    for (int p = 0; p < np; p++) {
        LLVMValueRef v = LLVMBuildFAdd(k->b, cg_load(k, DT_F32, d[p], jj),
                                       cg_load(k, DT_F32, t->part[p], jj), "");
        cg_store(k, DT_F32, d[p], jj, v);
    }
    cg_for_end(k, &fj, NULL);
    cg_for_end(k, &fb, NULL);
}

/* The online softmax step of a group over the block, from its dots sg[r]:
 * per row the new max m and sum l over its keys jj < n[r], from and back
 * into (rm, rl), and alpha[r] = exp(m_old - m), the factor that rescales
 * what the row summed before.  With weights (the forward), also sg[r][jj]
 * = exp(s_ij - m) z_ij for jj < n[r].  The rows share the loops over the
 * block's keys (constant trip counts; a key jj >= n[r] is masked out), so
 * their reductions run side by side. */
static void att_group_online(AttK *t, const AttRows *g, bool weights, LLVMValueRef *alpha)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    LLVMValueRef sc = cg_f32c(k, t->a->scale), zero = cg_f32c(k, 0);
    LLVMValueRef ninf = cg_f32c(k, -INFINITY), bk = cg_i64(k, t->a->bk);
    /* all loaded first: a repeated row then stores what its original does */
    LLVMValueRef mo[RG], lo[RG], m[RG], sum[RG], zeros[RG], s[RG], in[RG];
    for (int r = 0; r < RG; r++) {
        mo[r] = cg_load(k, DT_F32, t->rm, g->ri[r]);
        lo[r] = cg_load(k, DT_F32, t->rl, g->ri[r]);
        zeros[r] = zero;
    }
    CgFor f;
    LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), bk, RG, mo);
    for (int r = 0; r < RG; r++) {
        s[r] = LLVMBuildFMul(b, cg_load(k, DT_F32, t->sg[r], jj), sc, "s");
        in[r] = LLVMBuildICmp(b, LLVMIntSLT, jj, g->n[r], "");
        LLVMValueRef args[2] = {f.carry[r], LLVMBuildSelect(b, in[r], s[r], ninf, "")};
        m[r] = cg_intrin(k, "llvm.maximum", k->L->f32, args, 2); /* vectorizes */
    }
    cg_for_end(k, &f, m);
    memcpy(m, f.result, sizeof m);
    jj = cg_for_begin(k, &f, cg_i64(k, 0), bk, RG, zeros);
    for (int r = 0; r < RG; r++) {
        s[r] = LLVMBuildFMul(b, cg_load(k, DT_F32, t->sg[r], jj), sc, "s");
        in[r] = LLVMBuildICmp(b, LLVMIntSLT, jj, g->n[r], "");
        LLVMValueRef e = LLVMBuildSelect(b, in[r], cg_exp(k, LLVMBuildFSub(b, s[r], m[r], "")),
                                         zero, "");
        sum[r] = cg_fadd_reassoc(k, f.carry[r], e);
        if (weights && t->a->p > 0)
            e = LLVMBuildFMul(b, e, att_keep(t, cg_add(k, g->flat[r], jj)), "");
        if (weights)
            cg_store(k, DT_F32, t->sg[r], jj, e);
    }
    cg_for_end(k, &f, sum);
    for (int r = 0; r < RG; r++) {
        alpha[r] = cg_exp(k, LLVMBuildFSub(b, mo[r], m[r], "")); /* first block: ~0 * 0 */
        LLVMValueRef l = LLVMBuildFAdd(b, LLVMBuildFMul(b, lo[r], alpha[r], ""), f.result[r], "l");
        cg_store(k, DT_F32, t->rm, g->ri[r], m[r]);
        cg_store(k, DT_F32, t->rl, g->ri[r], l);
    }
}

/* The sums over the keys jj in [lo, hi) of the block for the rows r >= r0:
 * rs[r] += sg[r][jj] rows_jj (rows: the block as rows, vr or kr); with
 * grad, also the block's dk_j += dS_ij q_i and dv_j += P_ij z_ij dout_i
 * (dka, dva: one read-modify-write per key for all those rows). */
static void att_group_sums(AttK *t, const AttRows *g, int r0, LLVMValueRef lo, LLVMValueRef hi,
                           LLVMValueRef rows, bool grad)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    CgFor fj, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, lo, hi, 0, NULL);
    LLVMValueRef w[RG], pz[RG], ro = cg_mul(k, jj, a->hd), dk = NULL, dv = NULL;
    for (int r = r0; r < RG; r++) {
        w[r] = cg_load(k, DT_F32, t->sg[r], jj);
        if (grad)
            pz[r] = cg_load(k, DT_F32, t->gg[r], jj);
    }
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, a->hd), 0, NULL);
    LLVMValueRef rc = cg_add(k, ro, c), x = cg_load(k, DT_F32, rows, rc);
    if (grad) {
        dk = cg_load(k, DT_F32, t->dka, rc);
        dv = cg_load(k, DT_F32, t->dva, rc);
    }
    for (int r = r0; r < RG; r++) {
        att_addto(k, t->rs[r], c, w[r], x);
        if (grad) {
            dk = att_madd(k, dk, w[r], cg_load(k, DT_F32, t->qkv, cg_add(k, g->qo[r], c)));
            dv = att_madd(k, dv, pz[r], cg_load(k, DT_F32, t->dout, cg_add(k, g->oo[r], c)));
        }
    }
    if (grad) {
        cg_store(k, DT_F32, t->dka, rc, dk);
        cg_store(k, DT_F32, t->dva, rc, dv);
    }
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

/* All the sums of a group (att_group_sums): row r sums over its keys jj <
 * n[r] only (in the block of its own key, n grows with r), so a key after
 * i never meets row i, not even as 0 times a non-finite k_j, v_j or q_i. */
static void att_group_all_sums(AttK *t, const AttRows *g, LLVMValueRef rows, bool grad)
{
    for (int r = 0; r < RG; r++)
        att_group_sums(t, g, r, r ? g->n[r - 1] : cg_i64(t->k, 0), g->n[r], rows, grad);
}

/* ---------------------------------------------------------------- forward */

/* A group against the block: the scores, the online step (weights into
 * sg), then the accumulators, rescaled by alpha into rs, sum the weighted
 * values and go back (a repeated row's to row qc of acc). */
static void att_forward_group(AttK *t, const AttRows *g)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMValueRef alpha[RG], ao[RG], zero = cg_i64(k, 0);
    att_group_dots(t, g, false);
    att_group_online(t, g, true, alpha);
    for (int r = 0; r < RG; r++) {
        ao[r] = cg_mul(k, LLVMBuildSelect(k->b, g->ok[r], g->ri[r], cg_i64(k, a->qc), ""), a->hd);
        att_scaled(t, t->rs[r], zero, t->acc, ao[r], alpha[r]);
    }
    att_group_all_sums(t, g, t->vr, false);
    for (int r = 0; r < RG; r++)
        att_scaled(t, t->acc, ao[r], t->rs[r], zero, NULL);
}

/* Item e = (head, chunk of query rows [i0, ie)): online over the key
 * blocks up to the last row's, then out_i = acc_i / l_i. */
static void att_forward_item(AttK *t, LLVMValueRef e)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMBuilderRef b = k->b;
    LLVMValueRef nc = cg_i64(k, att_chunks(a));
    AttHead hh = att_head(t, LLVMBuildUDiv(b, e, nc, "head"));
    LLVMValueRef i0 = cg_mul(k, LLVMBuildURem(b, e, nc, "chunk"), a->qc);
    LLVMValueRef ie = cg_min(k, cg_add(k, i0, cg_i64(k, a->qc)), cg_i64(k, a->T));
    LLVMValueRef nr = LLVMBuildNSWSub(b, ie, i0, "");
    CgFor fr, fb, fg;
    LLVMValueRef r = cg_for_begin(k, &fr, cg_i64(k, 0), nr, 0, NULL);
    cg_store(k, DT_F32, t->rm, r, cg_f32c(k, -INFINITY));
    cg_store(k, DT_F32, t->rl, r, cg_f32c(k, 0));
    cg_for_end(k, &fr, NULL);
    att_fill_n(t, t->acc, (a->qc + 1) * a->hd);

    LLVMValueRef nb, j0 = att_block(t, cg_for_begin(k, &fb, cg_i64(k, 0), att_nblocks(t, ie), 0,
                                                    NULL), &nb);
    att_load_block(t, t->kt, true, &hh, 1, j0, nb);
    att_load_block(t, t->vr, false, &hh, 2, j0, nb);
    AttRows g;
    att_rows(t, &hh, att_groups(t, &fg, i0, ie, j0), i0, ie, j0, &g);
    att_forward_group(t, &g);
    cg_for_end(k, &fg, NULL);
    cg_for_end(k, &fb, NULL);

    r = cg_for_begin(k, &fr, cg_i64(k, 0), nr, 0, NULL);
    LLVMValueRef inv = LLVMBuildFDiv(b, cg_f32c(k, 1), cg_load(k, DT_F32, t->rl, r), "inv_l");
    LLVMValueRef oo = cg_add(k, hh.ob, cg_mul(k, cg_add(k, i0, r), a->D));
    att_scaled(t, t->out, oo, t->acc, cg_mul(k, r, a->hd), inv);
    cg_for_end(k, &fr, NULL);
}

/* ---------------------------------------------------------------- gradient */

/* Adds the block sums s (rows jj < nb, as kr) into the output rows of the
 * third `part` of keys j0 + jj. */
static void att_store_block(AttK *t, LLVMValueRef s, const AttHead *hh, int part, LLVMValueRef j0,
                            LLVMValueRef nb)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    CgFor fj, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), nb, 0, NULL);
    LLVMValueRef dof = att_row(t, cg_add(k, hh->qb, cg_i64(k, part * a->D)), j0, jj);
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, a->hd), 0, NULL);
    LLVMValueRef at = cg_add(k, dof, c);
    LLVMValueRef v = cg_load(k, DT_F32, s, cg_add(k, cg_mul(k, jj, a->hd), c));
    cg_store(k, DT_F32, t->out, at, LLVMBuildFAdd(k->b, cg_load(k, DT_F32, t->out, at), v, ""));
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

/* Pass 2 for a group: from its dots, sg[r][jj] = scale dS_ij and gg[r][jj]
 * = P_ij z_ij for jj < bk, 0 from jj = n (keys after i) and in a repeated
 * row; P = exp(s - m_i) / l_i, s = scale q_i . k_j, g = z dout_i . v_j and
 * dS = P (g - dsum_i). */
static void att_group_dscores(AttK *t, const AttRows *g)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    LLVMValueRef zero = cg_f32c(k, 0), sc = cg_f32c(k, t->a->scale);
    for (int r = 0; r < RG; r++) {
        LLVMValueRef m = cg_load(k, DT_F32, t->rm, g->ri[r]);
        LLVMValueRef inv_l = cg_load(k, DT_F32, t->rl, g->ri[r]);
        LLVMValueRef dsum = cg_load(k, DT_F32, t->rd, g->ri[r]);
        LLVMValueRef n = LLVMBuildSelect(b, g->ok[r], g->n[r], cg_i64(k, 0), "");
        CgFor f;
        LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, t->a->bk), 0, NULL);
        LLVMValueRef s = LLVMBuildFMul(b, cg_load(k, DT_F32, t->sg[r], jj), sc, "s");
        LLVMValueRef p = LLVMBuildFMul(b, cg_exp(k, LLVMBuildFSub(b, s, m, "")), inv_l, "P");
        LLVMValueRef z = att_keep(t, cg_add(k, g->flat[r], jj));
        LLVMValueRef zg = LLVMBuildFMul(b, z, cg_load(k, DT_F32, t->gg[r], jj), "g");
        LLVMValueRef ds = LLVMBuildFMul(b, LLVMBuildFMul(b, p, LLVMBuildFSub(b, zg, dsum, ""), ""),
                                        sc, "dS");
        LLVMValueRef in = LLVMBuildICmp(b, LLVMIntSLT, jj, n, "");
        cg_store(k, DT_F32, t->sg[r], jj, LLVMBuildSelect(b, in, ds, zero, ""));
        cg_store(k, DT_F32, t->gg[r], jj, LLVMBuildSelect(b, in, LLVMBuildFMul(b, p, z, ""), zero,
                                                          "Pz"));
        cg_for_end(k, &f, NULL);
    }
}

/* Pass 2 for a group, all the sums (att_group_all_sums: dq_i in rs, the
 * block's dk and dv in dka and dva); then dq_i into the output (a repeated
 * row adds 0). */
static void att_group_grad_sums(AttK *t, const AttRows *g)
{
    CgKernel *k = t->k;
    for (int r = 0; r < RG; r++)
        att_fill(t, t->rs[r], cg_i64(k, 0), 0);
    att_group_all_sums(t, g, t->kr, true);
    for (int r = 0; r < RG; r++) {
        CgFor fc;
        LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
        LLVMValueRef at = cg_add(k, g->qo[r], c);
        LLVMValueRef v = LLVMBuildFAdd(k->b, cg_load(k, DT_F32, t->out, at),
                                       cg_load(k, DT_F32, t->rs[r], c), "");
        cg_store(k, DT_F32, t->out, at, v);
        cg_for_end(k, &fc, NULL);
    }
}

/* Pass 1 over the query rows [i0, ie) of a chunk: rm = m_i and rl = 1 / l_i,
 * online over the key blocks, and rd = dsum_i = dout_i . out_i. */
static void att_grad_stats(AttK *t, const AttHead *hh, LLVMValueRef i0, LLVMValueRef ie,
                           LLVMValueRef nblk)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    LLVMValueRef nr = LLVMBuildNSWSub(b, ie, i0, "");
    CgFor fr, fb, fg;
    LLVMValueRef r = cg_for_begin(k, &fr, cg_i64(k, 0), nr, 0, NULL);
    LLVMValueRef oo = cg_add(k, hh->ob, cg_mul(k, cg_add(k, i0, r), t->a->D));
    cg_store(k, DT_F32, t->rm, r, cg_f32c(k, -INFINITY));
    cg_store(k, DT_F32, t->rl, r, cg_f32c(k, 0));
    cg_store(k, DT_F32, t->rd, r, att_dot(t, t->dout, oo, t->fwd, oo));
    cg_for_end(k, &fr, NULL);

    LLVMValueRef nb, j0 = att_block(t, cg_for_begin(k, &fb, cg_i64(k, 0), nblk, 0, NULL), &nb);
    att_load_block(t, t->kt, true, hh, 1, j0, nb);
    AttRows g;
    LLVMValueRef alpha[RG];
    att_rows(t, hh, att_groups(t, &fg, i0, ie, j0), i0, ie, j0, &g);
    att_group_dots(t, &g, false);
    att_group_online(t, &g, false, alpha);
    cg_for_end(k, &fg, NULL);
    cg_for_end(k, &fb, NULL);

    r = cg_for_begin(k, &fr, cg_i64(k, 0), nr, 0, NULL);
    LLVMValueRef inv = LLVMBuildFDiv(b, cg_f32c(k, 1), cg_load(k, DT_F32, t->rl, r), "inv_l");
    cg_store(k, DT_F32, t->rl, r, inv);
    cg_for_end(k, &fr, NULL);
}

/* Pass 2, key block blk against the query rows [max(i0, j0), ie): dk and
 * dv of its keys sum in dka and dva, added to the output at the end. */
static void att_grad_block(AttK *t, const AttHead *hh, LLVMValueRef blk, LLVMValueRef i0,
                           LLVMValueRef ie)
{
    CgKernel *k = t->k;
    LLVMValueRef nb, j0 = att_block(t, blk, &nb);
    att_load_block(t, t->kr, false, hh, 1, j0, nb);
    att_load_block(t, t->kt, true, hh, 1, j0, nb);
    att_load_block(t, t->vt, true, hh, 2, j0, nb);
    att_fill_n(t, t->dka, t->a->bk * t->a->hd);
    att_fill_n(t, t->dva, t->a->bk * t->a->hd);
    CgFor fg;
    AttRows g;
    att_rows(t, hh, att_groups(t, &fg, i0, ie, j0), i0, ie, j0, &g);
    att_group_dots(t, &g, true);
    att_group_dscores(t, &g);
    att_group_grad_sums(t, &g);
    cg_for_end(k, &fg, NULL);
    att_store_block(t, t->dka, hh, 1, j0, nb);
    att_store_block(t, t->dva, hh, 2, j0, nb);
}

/* Head item e = (b, h): zero its dq, dk and dv columns, then per chunk of
 * query rows pass 1 and pass 2 (key block by key block). */
static void att_grad_head(AttK *t, LLVMValueRef e)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    AttHead hh = att_head(t, e);
    CgFor fz, fc, fb;
    LLVMValueRef j = cg_for_begin(k, &fz, cg_i64(k, 0), cg_i64(k, a->T), 0, NULL);
    LLVMValueRef qo = att_row(t, hh.qb, j, cg_i64(k, 0));
    for (int part = 0; part < 3; part++)
        att_fill(t, t->out, cg_add(k, qo, cg_i64(k, part * a->D)), 0);
    cg_for_end(k, &fz, NULL);

    LLVMValueRef i0 = cg_mul(k, cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, att_chunks(a)), 0,
                                             NULL), a->qc);
    LLVMValueRef ie = cg_min(k, cg_add(k, i0, cg_i64(k, a->qc)), cg_i64(k, a->T));
    LLVMValueRef nblk = att_nblocks(t, ie);
    att_grad_stats(t, &hh, i0, ie, nblk);
    att_grad_block(t, &hh, cg_for_begin(k, &fb, cg_i64(k, 0), nblk, 0, NULL), i0, ie);
    cg_for_end(k, &fb, NULL);
    cg_for_end(k, &fc, NULL);
}

/* ---------------------------------------------------------------- the kernels */

/* One kernel over the items of the parallel range: (head, query block) for
 * the forward, heads for the gradient; item(t, index) builds one item's
 * work. */
static bool att_lower(CgLower *L, const IrNode *n, bool grad, void (*item)(AttK *, LLVMValueRef))
{
    Att a;
    if (!att_plan(L, n, &a))
        return false;
    int64_t extent = a.lead * a.H * (grad ? 1 : att_chunks(&a));
    cg_set_kernel(L, n, extent, true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    AttK t;
    att_begin(&t, &k, &a, grad);
    CgFor f;
    LLVMValueRef e = cg_for_begin(&k, &f, k.begin, k.end, 0, NULL);
    item(&t, e);
    cg_for_end(&k, &f, NULL);
    cg_kernel_end(&k);
    return true;
}

/* causal_attention(qkv[, step]) -> [lead..., T, D]. */
bool cg_lower_causal_attention(CgLower *L, const IrNode *n)
{
    return att_lower(L, n, false, att_forward_item);
}

/* causal_attention_grad(qkv, out, dout[, step]) -> qkv's shape: dq | dk | dv. */
bool cg_lower_causal_attention_grad(CgLower *L, const IrNode *n)
{
    return att_lower(L, n, true, att_grad_head);
}
