/* cg_lower_matmul.c — matmul as cblas_sgemm calls, gather and scatter_add.
 *
 * matmul(a[..., M, K], b[..., K, N]) -> [..., M, N], with ta/tb reading a
 * as [..., K, M] and b as [..., N, K].  The leading (batch) dims broadcast
 * like numpy.  The kernel declares
 *     void cg_sgemm(int, int, int, int, int, int, float, const float *,
 *                   int, const float *, int, float, float *, int)
 * (cblas_sgemm's arguments; codegen/cg_gemm.c tiles C and calls OpenBLAS
 * per tile, so results do not depend on the thread count) and calls it
 * once per output batch, with the batch's offsets into a and b (0
 * stride on broadcast axes) computed from the batch index by division by
 * constants.  When b has no batch and a is not transposed and not
 * broadcast, the batch folds into M: one sgemm of (batch*M) x K @ K x N,
 * the usual case of a linear layer on [B, T, D], which lets OpenBLAS use
 * its big-matrix kernels.  Matmul kernels are not parallel: the runtime
 * calls them once with [0, extent) and cg_sgemm spreads each call's tiles
 * over the runtime's threads; extent is the number of sgemm calls.  Only f32 is lowered.
 *
 * gather(table[V, R...], idx[I...]) -> [I..., R...]: one work item per
 * index, copying a row of R elements.  An index outside [0, V), which
 * the interpreter reports as an error, gives a row of zeros here: the JIT
 * never reads out of bounds, and the interpreter is the checker that
 * names the bad index (`gradc verify`).
 *
 * scatter_add, gather's gradient, adds rows of src into a copy of base at
 * their indices.  Repeated indices make a parallel loop over indices race,
 * so work items own blocks of output rows instead and each scans all the
 * indices (see cg_lower_scatter_add).
 */
#include "cg_lower_int.h"

#include <string.h>

/* CBLAS constants (fixed by the CBLAS interface). */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef struct Mm {
    int64_t M, N, K;
    bool ta, tb;
    int nbd;                    /* batch dims of the output */
    int64_t bdim[IR_MAX_RANK];
    int64_t ast[IR_MAX_RANK], bst[IR_MAX_RANK]; /* element strides per batch dim */
    int64_t nbatch;             /* sgemm calls */
} Mm;

/* Strides (in elements) of operand x's batch dims against the output's. */
static void batch_strides(CgLower *L, const IrNode *x, const Mm *mm, int64_t *st)
{
    const int64_t *d = L->dim[x->index];
    int xb = x->shape.rank - 2;
    int64_t s = d[xb] * d[xb + 1];
    for (int i = mm->nbd - 1; i >= 0; i--) {
        int xi = i - (mm->nbd - xb);
        st[i] = xi >= 0 && d[xi] != 1 ? s : 0;
        if (xi >= 0)
            s *= d[xi];
    }
}

static bool all_zero(const int64_t *v, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i])
            return false;
    return true;
}

static bool a_dense_batch(const Mm *mm)
{
    int64_t s = mm->M * mm->K;
    for (int i = mm->nbd - 1; i >= 0; s *= mm->bdim[i], i--)
        if (mm->bdim[i] != 1 && mm->ast[i] != s)
            return false;
    return true;
}

static void mm_plan(CgLower *L, const IrNode *n, Mm *mm)
{
    const int64_t *od = L->dim[n->index];
    const IrNode *a = n->in[0];
    memset(mm, 0, sizeof *mm);
    mm->ta = ir_node_int(n, ATTR_TA, 0) != 0;
    mm->tb = ir_node_int(n, ATTR_TB, 0) != 0;
    mm->nbd = n->shape.rank - 2;
    mm->M = od[mm->nbd];
    mm->N = od[mm->nbd + 1];
    mm->K = L->dim[a->index][a->shape.rank - (mm->ta ? 2 : 1)];
    memcpy(mm->bdim, od, mm->nbd * sizeof *od);
    batch_strides(L, a, mm, mm->ast);
    batch_strides(L, n->in[1], mm, mm->bst);
    mm->nbatch = 1;
    for (int i = 0; i < mm->nbd; i++)
        mm->nbatch *= od[i];
    if (!mm->ta && all_zero(mm->bst, mm->nbd) && a_dense_batch(mm)) {
        mm->M *= mm->nbatch; /* fold the batch into M */
        mm->nbd = 0;
        mm->nbatch = 1;
    }
}

/* Offsets of batch bi in a and b (elements). */
static void batch_offsets(CgKernel *k, const Mm *mm, LLVMValueRef bi, LLVMValueRef *ao,
                          LLVMValueRef *bo)
{
    LLVMValueRef rem = bi;
    *ao = *bo = cg_i64(k, 0);
    for (int i = mm->nbd - 1; i >= 0; i--) {
        LLVMValueRef idx = i == 0 ? rem : LLVMBuildURem(k->b, rem, cg_i64(k, mm->bdim[i]), "");
        if (i > 0)
            rem = LLVMBuildUDiv(k->b, rem, cg_i64(k, mm->bdim[i]), "");
        if (mm->ast[i])
            *ao = cg_add(k, *ao, cg_mul(k, idx, mm->ast[i]));
        if (mm->bst[i])
            *bo = cg_add(k, *bo, cg_mul(k, idx, mm->bst[i]));
    }
}

static void emit_sgemm(CgKernel *k, const Mm *mm, LLVMValueRef bi)
{
    LLVMTypeRef fty;
    LLVMValueRef fn = cg_declare_sgemm(k->L, &fty), ao, bo;
    batch_offsets(k, mm, bi, &ao, &bo);
    LLVMValueRef co = cg_mul(k, bi, mm->M * mm->N);
    LLVMValueRef args[14] = {
        cg_i32c(k, CBLAS_ROW_MAJOR), cg_i32c(k, mm->ta ? CBLAS_TRANS : CBLAS_NO_TRANS),
        cg_i32c(k, mm->tb ? CBLAS_TRANS : CBLAS_NO_TRANS), cg_i32c(k, mm->M), cg_i32c(k, mm->N),
        cg_i32c(k, mm->K), cg_f32c(k, 1.0), cg_gep(k, DT_F32, k->ptr[1], ao),
        cg_i32c(k, mm->ta ? mm->M : mm->K), cg_gep(k, DT_F32, k->ptr[2], bo),
        cg_i32c(k, mm->tb ? mm->K : mm->N), cg_f32c(k, 0.0), cg_gep(k, DT_F32, k->ptr[0], co),
        cg_i32c(k, mm->N),
    };
    LLVMBuildCall2(k->b, fty, fn, args, 14, "");
}

bool cg_lower_matmul(CgLower *L, const IrNode *n)
{
    Mm mm;
    if (n->dtype != DT_F32)
        return cg_fail(L, n, "matmul of %s is not supported (only f32)", ir_dtype_name(n->dtype));
    mm_plan(L, n, &mm);
    if (mm.M > INT32_MAX || mm.N > INT32_MAX || mm.K > INT32_MAX)
        return cg_fail(L, n, "matmul dims %lld x %lld x %lld exceed the BLAS int range",
                       (long long)mm.M, (long long)mm.N, (long long)mm.K);
    cg_set_kernel(L, n, mm.nbatch, false);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    CgFor f;
    LLVMValueRef bi = cg_for_begin(&k, &f, k.begin, k.end, 0, NULL);
    emit_sgemm(&k, &mm, bi);
    cg_for_end(&k, &f, NULL);
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- gather */

bool cg_lower_gather(CgLower *L, const IrNode *n)
{
    const IrNode *table = n->in[0];
    int64_t V = L->dim[table->index][0], R = cg_numel(L, table) / V;
    cg_set_kernel(L, n, cg_numel(L, n->in[1]), true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    LLVMBuilderRef b = k.b;
    IrDType dt = n->dtype;
    CgFor fi, fj;
    LLVMValueRef i = cg_for_begin(&k, &fi, k.begin, k.end, 0, NULL);
    LLVMValueRef t = LLVMBuildSExt(b, cg_load(&k, DT_I32, k.ptr[2], i), L->i64, "");
    LLVMValueRef ok = LLVMBuildICmp(b, LLVMIntULT, t, cg_i64(&k, V), "ok");
    LLVMValueRef src = cg_mul(&k, LLVMBuildSelect(b, ok, t, cg_i64(&k, 0), ""), R);
    LLVMValueRef dst = cg_mul(&k, i, R);
    LLVMValueRef j = cg_for_begin(&k, &fj, cg_i64(&k, 0), cg_i64(&k, R), 0, NULL);
    LLVMValueRef v = cg_load(&k, dt, k.ptr[1], cg_add(&k, src, j));
    v = LLVMBuildSelect(b, ok, v, LLVMConstNull(cg_elem_type(L, dt)), "");
    cg_store(&k, dt, k.ptr[0], cg_add(&k, dst, j), v);
    cg_for_end(&k, &fj, NULL);
    cg_for_end(&k, &fi, NULL);
    cg_kernel_end(&k);
    return true;
}

/* ---------------------------------------------------------------- scatter_add */

/* Rows [v0, v1) of out: out = base there, then src rows whose index falls
 * in [v0, v1) are added in index order.  Work items own disjoint rows, so
 * they never race, and each row sums in the interpreter's order. */
static void scatter_rows(CgKernel *k, LLVMValueRef v0, LLVMValueRef v1, int64_t I, int64_t R)
{
    LLVMBuilderRef b = k->b;
    CgFor fc, fi, fr;
    LLVMValueRef c = cg_for_begin(k, &fc, cg_mul(k, v0, R), cg_mul(k, v1, R), 0, NULL);
    cg_store(k, DT_F32, k->ptr[0], c, cg_load(k, DT_F32, k->ptr[1], c));
    cg_for_end(k, &fc, NULL);
    LLVMValueRef i = cg_for_begin(k, &fi, cg_i64(k, 0), cg_i64(k, I), 0, NULL);
    LLVMValueRef t = LLVMBuildSExt(b, cg_load(k, DT_I32, k->ptr[2], i), k->L->i64, "t");
    LLVMValueRef mine = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGE, t, v0, ""),
                                     LLVMBuildICmp(b, LLVMIntSLT, t, v1, ""), "mine");
    LLVMBasicBlockRef add = LLVMAppendBasicBlockInContext(k->L->C, k->fn, "add");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(k->L->C, k->fn, "join");
    LLVMBuildCondBr(b, mine, add, join);
    LLVMPositionBuilderAtEnd(b, add);
    LLVMValueRef dst = cg_mul(k, t, R), src = cg_mul(k, i, R);
    LLVMValueRef r = cg_for_begin(k, &fr, cg_i64(k, 0), cg_i64(k, R), 0, NULL);
    LLVMValueRef at = cg_add(k, dst, r);
    LLVMValueRef sum = LLVMBuildFAdd(b, cg_load(k, DT_F32, k->ptr[0], at),
                                     cg_load(k, DT_F32, k->ptr[3], cg_add(k, src, r)), "");
    cg_store(k, DT_F32, k->ptr[0], at, sum);
    cg_for_end(k, &fr, NULL);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
    cg_for_end(k, &fi, NULL);
}

/* scatter_add(base[V, R...], idx[I...], src[I..., R...]) -> [V, R...].
 * The range is over blocks of rows (at most 64 blocks); each block copies
 * its rows of base and scans every index.  An index outside [0, V), an
 * error in the interpreter, adds nothing. */
bool cg_lower_scatter_add(CgLower *L, const IrNode *n)
{
    int64_t V = L->dim[n->index][0], R = cg_numel(L, n) / V, I = cg_numel(L, n->in[1]);
    int64_t rows = (V + 63) / 64, extent = (V + rows - 1) / rows;
    cg_set_kernel(L, n, extent, true);
    CgKernel k;
    if (!L->emit || !cg_kernel_begin(L, n, &k))
        return true;
    CgFor fe;
    LLVMValueRef e = cg_for_begin(&k, &fe, k.begin, k.end, 0, NULL);
    LLVMValueRef v0 = cg_mul(&k, e, rows);
    LLVMValueRef v1 = cg_min(&k, cg_add(&k, v0, cg_i64(&k, rows)), cg_i64(&k, V));
    scatter_rows(&k, v0, v1, I, R);
    cg_for_end(&k, &fe, NULL);
    cg_kernel_end(&k);
    return true;
}
