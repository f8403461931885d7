/* cg_lower_attention.c — causal_attention and causal_attention_grad, flash style.
 *
 * qkv[lead..., T, 3D] holds per row q | k | v; head h reads the hd = D/H
 * columns from h*hd of each third (ir/interp.c is the contract).  Neither
 * kernel stores a T x T matrix: the forward visits keys in tiles of TILE,
 * the gradient in blocks of bk (64, less for a wide head or a short T),
 * and what a tile or block needs lives in stack buffers.
 *
 * Forward: the parallel range is the rows lead*H*T, item r = (b, h, i),
 * i fastest.  Per row an online softmax over the tiles of keys j <= i: the
 * tile's scores s_j = scale q_i . k_j and the new running max m; the
 * running sum l and the accumulator acc[hd] (stack) are rescaled by
 * exp(m_old - m) once per tile; then p_j = exp(s_j - m) adds to l, and
 * p_j z_ij v_j to acc, z being the dropout multiplier of the flat index
 * ((b H + h) T + i) T + j of the [lead, H, T, T] weights.  out_i = acc / l.
 *
 * Gradient (FlashAttention-2 style): the parallel range is the heads
 * lead*H; item (b, h) owns the dq, dk and dv columns of its head, so items
 * never race.  It zeroes them, then takes its query rows in chunks of up
 * to QCHUNK (one chunk unless T is larger), whose statistics live in stack
 * arrays of qc floats:
 *   pass 1: Dsum_i = dout_i . out_i (out is the forward output, operand 1:
 *     the same as sum_j P_ij g_ij), and m_i, l_i online over the key blocks
 *     (as the forward over its tiles), stored as m_i and 1 / l_i;
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
 * written once per block and chunk.  The dots run with the keys innermost
 * over the transposed block, their sums in registers across the columns
 * (no horizontal adds), each in partial sums of up to 16 columns: both
 * passes sum a score the same way, so the statistics fit the weights of
 * pass 2 bit for bit.  A group of RG rows shares the loads of the block
 * and the read-modify-write of dk_acc and dv_acc; rows past the chunk
 * repeat its last row with dS and P z set to 0.
 *
 * Loops: every loop over hd is innermost, with a constant trip count and
 * reassociable (and contractible) sums, so it vectorizes; the loops over a
 * tile's or block's keys that compute dots, exp and the dropout hash touch
 * only stack buffers, so they vectorize too.  Arithmetic is float, exp is
 * cg_exp and the keep mask is cg_dropout_keep (ir/rng.h bit for bit).  The
 * seed is the body's aux argument, so layers that differ only in seed
 * share a body.
 */
#include "cg_lower_int.h"

#include <math.h>

enum {
    TILE = 64,    /* forward: keys per tile */
    BK = 64,      /* gradient: most keys per block (AttK.bk) */
    RG = 4,       /* gradient: query rows per group (AttRows) */
    QCHUNK = 8192 /* gradient: most query rows whose statistics are kept at once */
};

/* One node's geometry and attributes. */
typedef struct Att {
    int64_t lead, T, D, H, hd;
    double scale, p;
    int step; /* operand index of the i32 step, -1 without one */
} Att;

/* A kernel being built: buffers, tile buffers and the dropout mix. */
typedef struct AttK {
    CgKernel *k;
    const Att *a;
    LLVMValueRef out, qkv;  /* the output, operand 0 */
    LLVMValueRef fwd, dout; /* gradient only: operands 1 (out) and 2 (dout) */
    LLVMValueRef sb;        /* forward: f32[TILE], a tile's scores, then weights */
    LLVMValueRef acc;       /* forward: f32[hd], the accumulator */
    LLVMValueRef mix;       /* p > 0: cg_dropout_mix of seed and step */
    /* gradient: per row r of a group, f32[bk] q_i . k_j then scale dS_ij
     * (sg) and dout_i . v_j then P_ij z_ij (gg), and f32[hd] dq_i (dq) */
    LLVMValueRef sg[RG], gg[RG], dq[RG];
    LLVMValueRef part[2 * RG]; /* gradient: f32[bk], partial sums of att_group_dots */
    /* gradient: the block's keys as rows (kr: key jj at jj hd) and
     * transposed (kt: column c at c bk), its values transposed (vt), and
     * its dk and dv sums (dka, dva: as kr), f32[bk hd] each */
    LLVMValueRef kr, kt, vt, dka, dva;
    /* gradient: per query row of a chunk, f32[qc]: m_i, then 1 / l_i (rl), dsum_i */
    LLVMValueRef rm, rl, rd;
    int64_t bk, qc; /* gradient: keys per block, query rows per chunk */
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
    if (!(a->p >= 0 && a->p < 1))
        return cg_fail(L, n, "p = %g is outside [0, 1)", a->p);
    return true;
}

/* Query-key pairs (i, j <= i) of all heads. */
static double att_pairs(const Att *a)
{
    return (double)a->lead * (double)a->H * (double)a->T * (double)(a->T + 1) / 2;
}

static void att_begin(AttK *t, CgKernel *k, const Att *a, bool grad)
{
    CgLower *L = k->L;
    *t = (AttK){.k = k, .a = a, .out = k->ptr[0], .qkv = k->ptr[1]};
    if (grad) {
        /* blocks of at most 64 KiB, and no wider than T needs */
        t->bk = BK;
        while (t->bk > 16 && (t->bk * a->hd > 16384 || t->bk - 16 >= a->T))
            t->bk -= 16;
        t->fwd = k->ptr[2];
        t->dout = k->ptr[3];
        for (int r = 0; r < RG; r++) {
            t->sg[r] = cg_alloca(k, L->f32, t->bk);
            t->gg[r] = cg_alloca(k, L->f32, t->bk);
            t->dq[r] = cg_alloca(k, L->f32, a->hd);
            t->part[2 * r] = cg_alloca(k, L->f32, t->bk);
            t->part[2 * r + 1] = cg_alloca(k, L->f32, t->bk);
        }
        LLVMValueRef *blk[] = {&t->kr, &t->kt, &t->vt, &t->dka, &t->dva};
        for (int i = 0; i < 5; i++)
            *blk[i] = cg_alloca(k, L->f32, t->bk * a->hd);
        t->qc = a->T < QCHUNK ? a->T : QCHUNK;
        t->rm = cg_alloca(k, L->f32, t->qc);
        t->rl = cg_alloca(k, L->f32, t->qc);
        t->rd = cg_alloca(k, L->f32, t->qc);
    } else {
        t->sb = cg_alloca(k, L->f32, TILE);
        t->acc = cg_alloca(k, L->f32, a->hd);
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

/* d[do + c] = s[c] * w for c < hd. */
static void att_scaled(AttK *t, LLVMValueRef d, LLVMValueRef dof, LLVMValueRef s, LLVMValueRef w)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef c = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
    LLVMValueRef v = LLVMBuildFMul(k->b, cg_load(k, DT_F32, s, c), w, "");
    cg_store(k, DT_F32, d, cg_add(k, dof, c), v);
    cg_for_end(k, &f, NULL);
}

/* ---------------------------------------------------------------- tiles of keys */

/* Begins the loop over the tiles of keys j <= i: returns the first key j0
 * of the tile and sets *n to its size, min(TILE, i + 1 - j0). */
static LLVMValueRef att_tiles(AttK *t, CgFor *f, LLVMValueRef i, int ncarry,
                              const LLVMValueRef *init, LLVMValueRef *n)
{
    CgKernel *k = t->k;
    LLVMValueRef ntile = cg_add(k, LLVMBuildUDiv(k->b, i, cg_i64(k, TILE), ""), cg_i64(k, 1));
    LLVMValueRef j0 = cg_mul(k, cg_for_begin(k, f, cg_i64(k, 0), ntile, ncarry, init), TILE);
    *n = cg_min(k, cg_i64(k, TILE), LLVMBuildNSWSub(k->b, cg_add(k, i, cg_i64(k, 1)), j0, ""));
    return j0;
}

/* Offset of column 0 of head h in row j0 + jj of the third at `base`. */
static LLVMValueRef att_row(AttK *t, LLVMValueRef base, LLVMValueRef j0, LLVMValueRef jj)
{
    return cg_add(t->k, base, cg_mul(t->k, cg_add(t->k, j0, jj), 3 * t->a->D));
}

/* sb[jj] = scale q . k_{j0+jj} for jj < n, q at qo and the keys at kb;
 * returns max(m, those scores). */
static LLVMValueRef att_scores(AttK *t, LLVMValueRef qo, LLVMValueRef kb, LLVMValueRef j0,
                               LLVMValueRef n, LLVMValueRef m)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), n, 1, &m);
    LLVMValueRef dot = att_dot(t, t->qkv, qo, t->qkv, att_row(t, kb, j0, jj));
    LLVMValueRef s = LLVMBuildFMul(k->b, dot, cg_f32c(k, t->a->scale), "s");
    cg_store(k, DT_F32, t->sb, jj, s);
    LLVMValueRef gt = LLVMBuildFCmp(k->b, LLVMRealOGT, s, f.carry[0], "");
    LLVMValueRef mx = LLVMBuildSelect(k->b, gt, s, f.carry[0], "max");
    cg_for_end(k, &f, &mx);
    return f.result[0];
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

/* sum exp(sb[jj] - m) over jj < n; with flat (the dropout index of key j0),
 * also sb[jj] = exp(sb[jj] - m) z_j, the weight before normalization. */
static LLVMValueRef att_exps(AttK *t, LLVMValueRef m, LLVMValueRef n, LLVMValueRef flat)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef zero = cg_f32c(k, 0);
    LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), n, 1, &zero);
    LLVMValueRef e = cg_exp(k, LLVMBuildFSub(k->b, cg_load(k, DT_F32, t->sb, jj), m, ""));
    LLVMValueRef sum = cg_fadd_reassoc(k, f.carry[0], e);
    if (flat)
        cg_store(k, DT_F32, t->sb, jj,
                 t->a->p > 0 ? LLVMBuildFMul(k->b, e, att_keep(t, cg_add(k, flat, jj)), "") : e);
    cg_for_end(k, &f, &sum);
    return f.result[0];
}

/* One tile of the online softmax: scores of keys [j0, j0 + n) into sb, the
 * new max *m and sum *l from the old ones (carry[0], carry[1] of f); the
 * rescale factor exp(m_old - m) of what was summed before is *alpha.  With
 * flat, sb then holds the tile's weights (see att_exps). */
static void att_online(AttK *t, const CgFor *f, LLVMValueRef qo, LLVMValueRef kb, LLVMValueRef j0,
                       LLVMValueRef n, LLVMValueRef flat, LLVMValueRef *m, LLVMValueRef *l,
                       LLVMValueRef *alpha)
{
    CgKernel *k = t->k;
    *m = att_scores(t, qo, kb, j0, n, f->carry[0]);
    *alpha = cg_exp(k, LLVMBuildFSub(k->b, f->carry[0], *m, "")); /* first tile: ~0 * 0 */
    LLVMValueRef sum = att_exps(t, *m, n, flat);
    *l = LLVMBuildFAdd(k->b, LLVMBuildFMul(k->b, f->carry[1], *alpha, ""), sum, "l");
}

/* ---------------------------------------------------------------- forward */

/* acc[c] = acc[c] * alpha + sum_jj sb[jj] v_{j0+jj}[c] for c < hd. */
static void att_accumulate(AttK *t, LLVMValueRef vb, LLVMValueRef j0, LLVMValueRef n,
                           LLVMValueRef alpha)
{
    CgKernel *k = t->k;
    CgFor fj, fc;
    att_scaled(t, t->acc, cg_i64(k, 0), t->acc, alpha);
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), n, 0, NULL);
    LLVMValueRef w = cg_load(k, DT_F32, t->sb, jj), vo = att_row(t, vb, j0, jj);
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
    att_addto(k, t->acc, c, w, cg_load(k, DT_F32, t->qkv, cg_add(k, vo, c)));
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

/* Row r = (b, h, i) of the output. */
static void att_forward_row(AttK *t, LLVMValueRef r)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMBuilderRef b = k->b;
    LLVMValueRef bh = LLVMBuildUDiv(b, r, cg_i64(k, a->T), "");
    LLVMValueRef i = LLVMBuildURem(b, r, cg_i64(k, a->T), "i");
    LLVMValueRef bi = LLVMBuildUDiv(b, bh, cg_i64(k, a->H), "b");
    LLVMValueRef h = LLVMBuildURem(b, bh, cg_i64(k, a->H), "h");
    LLVMValueRef qb = cg_add(k, cg_mul(k, bi, a->T * 3 * a->D), cg_mul(k, h, a->hd));
    LLVMValueRef kb = cg_add(k, qb, cg_i64(k, a->D)), vb = cg_add(k, qb, cg_i64(k, 2 * a->D));
    LLVMValueRef qo = att_row(t, qb, i, cg_i64(k, 0));
    att_fill(t, t->acc, cg_i64(k, 0), 0);
    CgFor f;
    LLVMValueRef init[2] = {cg_f32c(k, -INFINITY), cg_f32c(k, 0)}, n, next[2], alpha;
    LLVMValueRef j0 = att_tiles(t, &f, i, 2, init, &n);
    att_online(t, &f, qo, kb, j0, n, cg_add(k, cg_mul(k, r, a->T), j0), &next[0], &next[1],
               &alpha);
    att_accumulate(t, vb, j0, n, alpha);
    cg_for_end(k, &f, next);
    LLVMValueRef inv = LLVMBuildFDiv(b, cg_f32c(k, 1), f.result[1], "");
    LLVMValueRef oo = cg_add(k, cg_mul(k, cg_add(k, cg_mul(k, bi, a->T), i), a->D),
                             cg_mul(k, h, a->hd));
    att_scaled(t, t->out, oo, t->acc, inv);
}

/* ---------------------------------------------------------------- gradient */

/* One head's geometry: q of row i at qb + i 3D (k at + D, v at + 2D), dout
 * and out of row i at ob + i D, the dropout index of (i, j) flat + i T + j. */
typedef struct AttHead {
    LLVMValueRef qb, ob, flat;
} AttHead;

/* A group of RG query rows ib + r against the key block from j0, for rows
 * [i0, ie) of a chunk.  A row past ie (ok false) repeats row ie - 1: it
 * computes what that row does, and its dS and P z are 0. */
typedef struct AttRows {
    LLVMValueRef j0;
    LLVMValueRef i[RG];  /* the row, min(ib + r, ie - 1) */
    LLVMValueRef ok[RG]; /* ib + r < ie */
    LLVMValueRef ri[RG]; /* i - i0: its index in rm, rl, rd */
    LLVMValueRef n[RG];  /* its keys in the block, j0 + jj <= i: min(bk, i + 1 - j0) */
    LLVMValueRef qo[RG], oo[RG]; /* q_i in qkv, dout_i in dout */
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
        g->n[r] = cg_min(k, cg_i64(k, t->bk),
                         LLVMBuildNSWSub(b, cg_add(k, g->i[r], cg_i64(k, 1)), j0, ""));
        g->qo[r] = att_row(t, hh->qb, g->i[r], cg_i64(k, 0));
        g->oo[r] = cg_add(k, hh->ob, cg_mul(k, g->i[r], t->a->D));
    }
}

/* The first key of block blk, and *nb = its keys before T. */
static LLVMValueRef att_block(AttK *t, LLVMValueRef blk, LLVMValueRef *nb)
{
    CgKernel *k = t->k;
    LLVMValueRef j0 = cg_mul(k, blk, t->bk);
    *nb = cg_min(k, cg_i64(k, t->bk), LLVMBuildNSWSub(k->b, cg_i64(k, t->a->T), j0, ""));
    return j0;
}

/* Keys j0 + jj (jj < bk; a row from jj >= nb repeats row nb - 1) of the
 * head's third at base + D part: rows into d (d[jj hd + c]) or transposed
 * (d[c bk + jj]). */
static void att_load_block(AttK *t, LLVMValueRef d, bool transposed, const AttHead *hh, int part,
                           LLVMValueRef j0, LLVMValueRef nb)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    CgFor fj, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, t->bk), 0, NULL);
    LLVMValueRef j = cg_add(k, j0, cg_min(k, jj, LLVMBuildNSWSub(k->b, nb, cg_i64(k, 1), "")));
    LLVMValueRef so = att_row(t, cg_add(k, hh->qb, cg_i64(k, part * a->D)), j, cg_i64(k, 0));
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, a->hd), 0, NULL);
    LLVMValueRef at = transposed ? cg_add(k, cg_mul(k, c, t->bk), jj)
                                 : cg_add(k, cg_mul(k, jj, a->hd), c);
    cg_store(k, DT_F32, d, at, cg_load(k, DT_F32, t->qkv, cg_add(k, so, c)));
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

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
 * them.  Both passes sum the scores alike, so the statistics fit the
 * second pass's weights bit for bit. */
static void att_group_dots(AttK *t, const AttRows *g, bool values)
{
    CgKernel *k = t->k;
    LLVMValueRef d[2 * RG], x[2 * RG], xo[2 * RG], tb[2 * RG], xc[2 * RG];
    int np = 0;
    for (int r = 0; r < RG; r++) {
        d[np] = t->sg[r], x[np] = t->qkv, xo[np] = g->qo[r], tb[np++] = t->kt;
        if (values)
            d[np] = t->gg[r], x[np] = t->dout, xo[np] = g->oo[r], tb[np++] = t->vt;
    }
    int64_t cb = att_cblock(t->a->hd);
    CgFor fj, fb, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, t->bk), 0, NULL);
    for (int p = 0; p < np; p++)
        cg_store(k, DT_F32, d[p], jj, cg_f32c(k, 0));
    cg_for_end(k, &fj, NULL);
    LLVMValueRef c0 = cg_mul(k, cg_for_begin(k, &fb, cg_i64(k, 0), cg_i64(k, t->a->hd / cb), 0,
                                             NULL), cb);
    jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, t->bk), 0, NULL);
    for (int p = 0; p < np; p++)
        cg_store(k, DT_F32, t->part[p], jj, cg_f32c(k, 0));
    cg_for_end(k, &fj, NULL);
    LLVMValueRef c = cg_add(k, c0, cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, cb), 0, NULL));
    for (int p = 0; p < np; p++)
        xc[p] = cg_load(k, DT_F32, x[p], cg_add(k, xo[p], c));
    jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, t->bk), 0, NULL);
    LLVMValueRef at = cg_add(k, cg_mul(k, c, t->bk), jj);
    for (int p = 0; p < np; p++) {
        LLVMValueRef v = cg_load(k, DT_F32, tb[p], at);
        cg_store(k, DT_F32, t->part[p], jj,
                 att_madd(k, cg_load(k, DT_F32, t->part[p], jj), xc[p], v));
    }
    cg_for_end(k, &fj, NULL);
    cg_for_end(k, &fc, NULL);
    jj = cg_for_begin(k, &fj, cg_i64(k, 0), cg_i64(k, t->bk), 0, NULL);
    for (int p = 0; p < np; p++) {
        LLVMValueRef v = LLVMBuildFAdd(k->b, cg_load(k, DT_F32, d[p], jj),
                                       cg_load(k, DT_F32, t->part[p], jj), "");
        cg_store(k, DT_F32, d[p], jj, v);
    }
    cg_for_end(k, &fj, NULL);
    cg_for_end(k, &fb, NULL);
}

/* Pass 1 for a group: online over the blocks, (rm, rl) = (m_i, l_i). */
static void att_group_stats(AttK *t, const AttRows *g)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    att_group_dots(t, g, false);
    /* all loaded first: a repeated row then stores what its original does */
    LLVMValueRef mo[RG], lo[RG];
    for (int r = 0; r < RG; r++) {
        mo[r] = cg_load(k, DT_F32, t->rm, g->ri[r]);
        lo[r] = cg_load(k, DT_F32, t->rl, g->ri[r]);
    }
    for (int r = 0; r < RG; r++) {
        CgFor f;
        LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), g->n[r], 1, &mo[r]);
        LLVMValueRef s = LLVMBuildFMul(b, cg_load(k, DT_F32, t->sg[r], jj),
                                       cg_f32c(k, t->a->scale), "s");
        LLVMValueRef args[2] = {f.carry[0], s};
        LLVMValueRef mx = cg_intrin(k, "llvm.maximum", k->L->f32, args, 2); /* vectorizes */
        cg_for_end(k, &f, &mx);
        LLVMValueRef m = f.result[0], zero = cg_f32c(k, 0);
        jj = cg_for_begin(k, &f, cg_i64(k, 0), g->n[r], 1, &zero);
        s = LLVMBuildFMul(b, cg_load(k, DT_F32, t->sg[r], jj), cg_f32c(k, t->a->scale), "s");
        LLVMValueRef sum = cg_fadd_reassoc(k, f.carry[0], cg_exp(k, LLVMBuildFSub(b, s, m, "")));
        cg_for_end(k, &f, &sum);
        LLVMValueRef alpha = cg_exp(k, LLVMBuildFSub(b, mo[r], m, "")); /* first block: ~0 * 0 */
        LLVMValueRef l = LLVMBuildFAdd(b, LLVMBuildFMul(b, lo[r], alpha, ""), f.result[0], "l");
        cg_store(k, DT_F32, t->rm, g->ri[r], m);
        cg_store(k, DT_F32, t->rl, g->ri[r], l);
    }
}

/* Pass 2 for a group: from its dots, sg[r][jj] = scale dS_ij and gg[r][jj]
 * = P_ij z_ij for jj < bk, 0 from jj = n (keys after i) and in a repeated
 * row; P = exp(s - m_i) / l_i, s = scale q_i . k_j, g = z dout_i . v_j and
 * dS = P (g - dsum_i). */
static void att_group_dscores(AttK *t, const AttHead *hh, const AttRows *g)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    LLVMValueRef zero = cg_f32c(k, 0), sc = cg_f32c(k, t->a->scale);
    for (int r = 0; r < RG; r++) {
        LLVMValueRef m = cg_load(k, DT_F32, t->rm, g->ri[r]);
        LLVMValueRef inv_l = cg_load(k, DT_F32, t->rl, g->ri[r]);
        LLVMValueRef dsum = cg_load(k, DT_F32, t->rd, g->ri[r]);
        LLVMValueRef flat = cg_add(k, hh->flat, cg_add(k, cg_mul(k, g->i[r], t->a->T), g->j0));
        LLVMValueRef n = LLVMBuildSelect(b, g->ok[r], g->n[r], cg_i64(k, 0), "");
        CgFor f;
        LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), cg_i64(k, t->bk), 0, NULL);
        LLVMValueRef s = LLVMBuildFMul(b, cg_load(k, DT_F32, t->sg[r], jj), sc, "s");
        LLVMValueRef p = LLVMBuildFMul(b, cg_exp(k, LLVMBuildFSub(b, s, m, "")), inv_l, "P");
        LLVMValueRef z = att_keep(t, cg_add(k, flat, jj));
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

/* Pass 2 for a group, the sums over the keys jj in [lo, hi) for the rows
 * r >= r0: dq_i += dS_ij k_j (dq), and the block's dk_j += dS_ij q_i and
 * dv_j += P_ij z_ij dout_i (dka, dva: one read-modify-write per key for
 * all those rows). */
static void att_group_sums(AttK *t, const AttRows *g, int r0, LLVMValueRef lo, LLVMValueRef hi)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    CgFor fj, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, lo, hi, 0, NULL);
    LLVMValueRef ds[RG], pz[RG], ro = cg_mul(k, jj, a->hd);
    for (int r = r0; r < RG; r++) {
        ds[r] = cg_load(k, DT_F32, t->sg[r], jj);
        pz[r] = cg_load(k, DT_F32, t->gg[r], jj);
    }
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, a->hd), 0, NULL);
    LLVMValueRef rc = cg_add(k, ro, c), kc = cg_load(k, DT_F32, t->kr, rc);
    LLVMValueRef dk = cg_load(k, DT_F32, t->dka, rc), dv = cg_load(k, DT_F32, t->dva, rc);
    for (int r = r0; r < RG; r++) {
        att_addto(k, t->dq[r], c, ds[r], kc);
        dk = att_madd(k, dk, ds[r], cg_load(k, DT_F32, t->qkv, cg_add(k, g->qo[r], c)));
        dv = att_madd(k, dv, pz[r], cg_load(k, DT_F32, t->dout, cg_add(k, g->oo[r], c)));
    }
    cg_store(k, DT_F32, t->dka, rc, dk);
    cg_store(k, DT_F32, t->dva, rc, dv);
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

/* Pass 2 for a group, all the sums: row r sums over its keys jj < n[r]
 * only (in the block of its own key, n grows with r), so a key after i
 * never meets row i, not even as 0 times a non-finite k_j or q_i; then
 * dq_i into the output (a repeated row adds 0). */
static void att_group_all_sums(AttK *t, const AttRows *g)
{
    CgKernel *k = t->k;
    for (int r = 0; r < RG; r++)
        att_fill(t, t->dq[r], cg_i64(k, 0), 0);
    for (int r = 0; r < RG; r++)
        att_group_sums(t, g, r, r ? g->n[r - 1] : cg_i64(k, 0), g->n[r]);
    for (int r = 0; r < RG; r++) {
        CgFor fc;
        LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
        LLVMValueRef at = cg_add(k, g->qo[r], c);
        LLVMValueRef v = LLVMBuildFAdd(k->b, cg_load(k, DT_F32, t->out, at),
                                       cg_load(k, DT_F32, t->dq[r], c), "");
        cg_store(k, DT_F32, t->out, at, v);
        cg_for_end(k, &fc, NULL);
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
    att_rows(t, hh, att_groups(t, &fg, i0, ie, j0), i0, ie, j0, &g);
    att_group_stats(t, &g);
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
    att_fill_n(t, t->dka, t->bk * t->a->hd);
    att_fill_n(t, t->dva, t->bk * t->a->hd);
    CgFor fg;
    AttRows g;
    att_rows(t, hh, att_groups(t, &fg, i0, ie, j0), i0, ie, j0, &g);
    att_group_dots(t, &g, true);
    att_group_dscores(t, hh, &g);
    att_group_all_sums(t, &g);
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
    LLVMBuilderRef b = k->b;
    LLVMValueRef bi = LLVMBuildUDiv(b, e, cg_i64(k, a->H), "b");
    LLVMValueRef h = LLVMBuildURem(b, e, cg_i64(k, a->H), "h");
    LLVMValueRef hc = cg_mul(k, h, a->hd);
    AttHead hh = {
        .qb = cg_add(k, cg_mul(k, bi, a->T * 3 * a->D), hc),
        .ob = cg_add(k, cg_mul(k, bi, a->T * a->D), hc),
        .flat = cg_mul(k, e, a->T * a->T),
    };
    CgFor fz, fc, fb;
    LLVMValueRef j = cg_for_begin(k, &fz, cg_i64(k, 0), cg_i64(k, a->T), 0, NULL);
    LLVMValueRef qo = att_row(t, hh.qb, j, cg_i64(k, 0));
    for (int part = 0; part < 3; part++)
        att_fill(t, t->out, cg_add(k, qo, cg_i64(k, part * a->D)), 0);
    cg_for_end(k, &fz, NULL);

    int64_t nchunk = (a->T + t->qc - 1) / t->qc;
    LLVMValueRef i0 = cg_mul(k, cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, nchunk), 0, NULL),
                             t->qc);
    LLVMValueRef ie = cg_min(k, cg_add(k, i0, cg_i64(k, t->qc)), cg_i64(k, a->T));
    LLVMValueRef nblk =
        LLVMBuildUDiv(b, cg_add(k, ie, cg_i64(k, t->bk - 1)), cg_i64(k, t->bk), "");
    att_grad_stats(t, &hh, i0, ie, nblk);
    att_grad_block(t, &hh, cg_for_begin(k, &fb, cg_i64(k, 0), nblk, 0, NULL), i0, ie);
    cg_for_end(k, &fb, NULL);
    cg_for_end(k, &fc, NULL);
}

/* ---------------------------------------------------------------- the kernels */

/* One kernel over the items of the parallel range: rows for the forward,
 * heads for the gradient; item(t, index) builds one item's work. */
static bool att_lower(CgLower *L, const IrNode *n, bool grad, void (*item)(AttK *, LLVMValueRef))
{
    Att a;
    if (!att_plan(L, n, &a))
        return false;
    int64_t extent = grad ? a.lead * a.H : a.lead * a.H * a.T;
    cg_set_kernel(L, n, extent, true, att_pairs(&a) * (grad ? 12.0 * a.hd + 20 : 4.0 * a.hd + 10));
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
    return att_lower(L, n, false, att_forward_row);
}

/* causal_attention_grad(qkv, out, dout[, step]) -> qkv's shape: dq | dk | dv. */
bool cg_lower_causal_attention_grad(CgLower *L, const IrNode *n)
{
    return att_lower(L, n, true, att_grad_head);
}
