/* cg_lower_attention.c — causal_attention and causal_attention_grad, flash style.
 *
 * qkv[lead..., T, 3D] holds per row q | k | v; head h reads the hd = D/H
 * columns from h*hd of each third (ir/interp.c is the contract).  Neither
 * kernel stores a T x T matrix: keys are visited in tiles of TILE, and a
 * tile's scores (in the gradient also its dout . v_j) live in stack buffers
 * of TILE floats.
 *
 * Forward: the parallel range is the rows lead*H*T, item r = (b, h, i),
 * i fastest.  Per row an online softmax over the tiles of keys j <= i: the
 * tile's scores s_j = scale q_i . k_j and the new running max m; the
 * running sum l and the accumulator acc[hd] (stack) are rescaled by
 * exp(m_old - m) once per tile; then p_j = exp(s_j - m) adds to l, and
 * p_j z_ij v_j to acc, z being the dropout multiplier of the flat index
 * ((b H + h) T + i) T + j of the [lead, H, T, T] weights.  out_i = acc / l.
 *
 * Gradient: the parallel range is the heads lead*H; item (b, h) owns the
 * dq, dk and dv columns of its head, so items never race.  It zeroes its
 * dk and dv columns, then per query row i: pass 1 recomputes m_i and l_i
 * over the tiles (online, as the forward); Dsum_i = dout_i . out_i (out is
 * the forward output, operand 1: the same as sum_j P_ij g_ij); pass 2
 * recomputes per tile P_ij = exp(s_ij - m_i) / l_i, g_ij = z_ij dout_i . v_j
 * and dS_ij = P_ij (g_ij - Dsum_i), then adds scale dS_ij k_j into dq_i
 * (stack), scale dS_ij q_i into dk_j and P_ij z_ij dout_i into dv_j (in
 * the output).  dq_i is stored when its row is done.
 *
 * Loops: every loop over hd is innermost, with a constant trip count and
 * reassociable (and contractible) sums, so it vectorizes; the loops over a
 * tile's keys that compute exp and the dropout hash touch only the tile
 * buffers, so they vectorize too.  Arithmetic is float, exp is cg_exp and
 * the keep mask is cg_dropout_keep (ir/rng.h bit for bit).  The seed is
 * the body's aux argument, so layers that differ only in seed share a body.
 */
#include "cg_lower_int.h"

#include <math.h>

enum { TILE = 64 };

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
    LLVMValueRef sb, gb;    /* f32[TILE]: a tile's scores, then weights; gb: gradient only */
    LLVMValueRef acc;       /* f32[hd]: the forward accumulator, or dq_i */
    LLVMValueRef mix;       /* p > 0: cg_dropout_mix of seed and step */
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
    t->sb = cg_alloca(k, L->f32, TILE);
    t->acc = cg_alloca(k, L->f32, a->hd);
    if (grad) {
        t->fwd = k->ptr[2];
        t->dout = k->ptr[3];
        t->gb = cg_alloca(k, L->f32, TILE);
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

/* causal_attention(qkv[, step]) -> [lead..., T, D]. */
bool cg_lower_causal_attention(CgLower *L, const IrNode *n)
{
    Att a;
    if (!att_plan(L, n, &a))
        return false;
    cg_set_kernel(L, n, a.lead * a.H * a.T, true, att_pairs(&a) * (4.0 * a.hd + 10));
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    AttK t;
    att_begin(&t, &k, &a, false);
    CgFor f;
    LLVMValueRef r = cg_for_begin(&k, &f, k.begin, k.end, 0, NULL);
    att_forward_row(&t, r);
    cg_for_end(&k, &f, NULL);
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- gradient */

/* Pass 1 over the keys of row i: (m_i, 1 / l_i). */
static void att_row_stats(AttK *t, LLVMValueRef qo, LLVMValueRef kb, LLVMValueRef i,
                          LLVMValueRef *m, LLVMValueRef *inv_l)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef init[2] = {cg_f32c(k, -INFINITY), cg_f32c(k, 0)}, n, next[2], alpha;
    LLVMValueRef j0 = att_tiles(t, &f, i, 2, init, &n);
    att_online(t, &f, qo, kb, j0, n, NULL, &next[0], &next[1], &alpha);
    cg_for_end(k, &f, next);
    *m = f.result[0];
    *inv_l = LLVMBuildFDiv(k->b, cg_f32c(k, 1), f.result[1], "inv_l");
}

/* gb[jj] = dout_i . v_{j0+jj} for jj < n (dout_i at oo, the values at vb). */
static void att_gdots(AttK *t, LLVMValueRef oo, LLVMValueRef vb, LLVMValueRef j0, LLVMValueRef n)
{
    CgKernel *k = t->k;
    CgFor f;
    LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), n, 0, NULL);
    cg_store(k, DT_F32, t->gb, jj, att_dot(t, t->dout, oo, t->qkv, att_row(t, vb, j0, jj)));
    cg_for_end(k, &f, NULL);
}

/* From the scores (sb) and dout_i . v_j (gb) of a tile: sb[jj] = scale dS_ij
 * and gb[jj] = P_ij z_ij, with P = exp(s - m) / l, dS = P (z g - dsum). */
static void att_dscores(AttK *t, LLVMValueRef m, LLVMValueRef inv_l, LLVMValueRef dsum,
                        LLVMValueRef n, LLVMValueRef flat)
{
    CgKernel *k = t->k;
    LLVMBuilderRef b = k->b;
    CgFor f;
    LLVMValueRef jj = cg_for_begin(k, &f, cg_i64(k, 0), n, 0, NULL);
    LLVMValueRef s = cg_load(k, DT_F32, t->sb, jj), g = cg_load(k, DT_F32, t->gb, jj);
    LLVMValueRef p = LLVMBuildFMul(b, cg_exp(k, LLVMBuildFSub(b, s, m, "")), inv_l, "P");
    LLVMValueRef z = att_keep(t, cg_add(k, flat, jj));
    LLVMValueRef zg = LLVMBuildFMul(b, z, g, "g");
    LLVMValueRef ds = LLVMBuildFMul(b, p, LLVMBuildFSub(b, zg, dsum, ""), "");
    cg_store(k, DT_F32, t->sb, jj, LLVMBuildFMul(b, ds, cg_f32c(k, t->a->scale), "dS"));
    cg_store(k, DT_F32, t->gb, jj, LLVMBuildFMul(b, p, z, "Pz"));
    cg_for_end(k, &f, NULL);
}

/* For the keys of a tile: dq_i += dS k_j (acc), dk_j += dS q_i, dv_j += Pz dout_i. */
static void att_grad_acc(AttK *t, LLVMValueRef qo, LLVMValueRef oo, LLVMValueRef kb,
                         LLVMValueRef j0, LLVMValueRef n)
{
    CgKernel *k = t->k;
    CgFor fj, fc;
    LLVMValueRef jj = cg_for_begin(k, &fj, cg_i64(k, 0), n, 0, NULL);
    LLVMValueRef ds = cg_load(k, DT_F32, t->sb, jj), pz = cg_load(k, DT_F32, t->gb, jj);
    LLVMValueRef ko = att_row(t, kb, j0, jj), vo = cg_add(k, ko, cg_i64(k, t->a->D));
    LLVMValueRef c = cg_for_begin(k, &fc, cg_i64(k, 0), cg_i64(k, t->a->hd), 0, NULL);
    LLVMValueRef kc = cg_add(k, ko, c);
    att_addto(k, t->acc, c, ds, cg_load(k, DT_F32, t->qkv, kc));
    att_addto(k, t->out, kc, ds, cg_load(k, DT_F32, t->qkv, cg_add(k, qo, c)));
    att_addto(k, t->out, cg_add(k, vo, c), pz, cg_load(k, DT_F32, t->dout, cg_add(k, oo, c)));
    cg_for_end(k, &fc, NULL);
    cg_for_end(k, &fj, NULL);
}

/* Query row i of head item e: pass 1, then pass 2 into dq_i, dk, dv. */
static void att_grad_row(AttK *t, LLVMValueRef e, LLVMValueRef qb, LLVMValueRef ob,
                         LLVMValueRef i)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMValueRef kb = cg_add(k, qb, cg_i64(k, a->D)), vb = cg_add(k, qb, cg_i64(k, 2 * a->D));
    LLVMValueRef qo = att_row(t, qb, i, cg_i64(k, 0));
    LLVMValueRef oo = cg_add(k, ob, cg_mul(k, i, a->D));
    LLVMValueRef flat = cg_mul(k, cg_add(k, cg_mul(k, e, a->T), i), a->T);
    LLVMValueRef dsum = att_dot(t, t->dout, oo, t->fwd, oo), m, inv_l, n;
    att_row_stats(t, qo, kb, i, &m, &inv_l);
    att_fill(t, t->acc, cg_i64(k, 0), 0);
    CgFor f;
    LLVMValueRef j0 = att_tiles(t, &f, i, 0, NULL, &n);
    att_scores(t, qo, kb, j0, n, m);
    att_gdots(t, oo, vb, j0, n);
    att_dscores(t, m, inv_l, dsum, n, cg_add(k, flat, j0));
    att_grad_acc(t, qo, oo, kb, j0, n);
    cg_for_end(k, &f, NULL);
    att_scaled(t, t->out, qo, t->acc, cg_f32c(k, 1));
}

/* Head item e = (b, h): zero its dk and dv columns, then every query row. */
static void att_grad_head(AttK *t, LLVMValueRef e)
{
    CgKernel *k = t->k;
    const Att *a = t->a;
    LLVMValueRef bi = LLVMBuildUDiv(k->b, e, cg_i64(k, a->H), "b");
    LLVMValueRef h = LLVMBuildURem(k->b, e, cg_i64(k, a->H), "h");
    LLVMValueRef hc = cg_mul(k, h, a->hd);
    LLVMValueRef qb = cg_add(k, cg_mul(k, bi, a->T * 3 * a->D), hc);
    LLVMValueRef ob = cg_add(k, cg_mul(k, bi, a->T * a->D), hc);
    CgFor fz, fi;
    LLVMValueRef j = cg_for_begin(k, &fz, cg_i64(k, 0), cg_i64(k, a->T), 0, NULL);
    LLVMValueRef ko = att_row(t, cg_add(k, qb, cg_i64(k, a->D)), j, cg_i64(k, 0));
    att_fill(t, t->out, ko, 0);
    att_fill(t, t->out, cg_add(k, ko, cg_i64(k, a->D)), 0);
    cg_for_end(k, &fz, NULL);
    LLVMValueRef i = cg_for_begin(k, &fi, cg_i64(k, 0), cg_i64(k, a->T), 0, NULL);
    att_grad_row(t, e, qb, ob, i);
    cg_for_end(k, &fi, NULL);
}

/* causal_attention_grad(qkv, out, dout[, step]) -> qkv's shape: dq | dk | dv. */
bool cg_lower_causal_attention_grad(CgLower *L, const IrNode *n)
{
    Att a;
    if (!att_plan(L, n, &a))
        return false;
    cg_set_kernel(L, n, a.lead * a.H, true, att_pairs(&a) * (12.0 * a.hd + 20));
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    AttK t;
    att_begin(&t, &k, &a, true);
    CgFor f;
    LLVMValueRef e = cg_for_begin(&k, &f, k.begin, k.end, 0, NULL);
    att_grad_head(&t, e);
    cg_for_end(&k, &f, NULL);
    cg_kernel_end(&k);
    return true;
}
