/* fuse.h — what the fuse pass (passes/fuse*.c) and the lowering of fused
 * kernels (codegen/cg_lower_fused.c) share: strided views.
 *
 * A matmul reads its operands and writes its result through BLAS, which
 * takes a matrix as a pointer, a leading dimension and a transpose flag.
 * So a chain of reshapes and transposes between a buffer and a matmul
 * costs nothing when the chain is a *strided view* of the buffer: every
 * dim of the viewed value steps through the buffer by a constant stride.
 * FuseLayout is such a view (dims and strides in elements), and the
 * functions below follow a chain of view nodes to it.  The pass decides
 * with the dims at a probe binding (every symbol a distinct prime), the
 * lowering computes the same layout at the real binding.
 *
 *   FuseLayout l;
 *   const IrNode *leaf = fuse_view_in(operand, binding, NULL, &l);   // read side
 *   bool ok = leaf && fuse_gemm_matrix(&l, &trans, &ld);
 */
#ifndef GRADC_FUSE_H
#define GRADC_FUSE_H

#include "ir/ir.h"

typedef struct FuseLayout {
    int rank;
    int64_t dim[IR_MAX_RANK];
    int64_t st[IR_MAX_RANK]; /* elements between neighbours along each dim */
} FuseLayout;

/* A view op: reshape or transpose (no arithmetic, no copy when strided). */
bool fuse_is_view(const IrNode *n);
/* The dims of n's shape under binding (every dim at least 1). */
void fuse_dims(const IrNode *n, const int64_t *binding, int64_t *dim);
/* The row-major layout of a buffer of n's shape. */
void fuse_layout_dense(const IrNode *n, const int64_t *binding, FuseLayout *l);
/* The layout of `v` read through its chain of views down to, and not
 * including, the first node that is not a view or is `stop` (the leaf,
 * returned).  NULL when some reshape of the chain is not a strided view. */
const IrNode *fuse_view_in(const IrNode *v, const int64_t *binding, const IrNode *stop,
                           FuseLayout *l);
/* The layout, in root's row-major buffer, of `head`, where root is a chain
 * of views over head.  False when the chain is not a strided view. */
bool fuse_view_out(const IrNode *root, const IrNode *head, const int64_t *binding, FuseLayout *l);
/* Whether the last two dims of l are a BLAS matrix: one of them steps by 1.
 * *trans: the rows step by 1 (read it transposed); *ld: the leading
 * dimension.  Size-1 dims fit any stride. */
bool fuse_gemm_matrix(const FuseLayout *l, bool *trans, int64_t *ld);
/* A binding for legality checks: symbol i is the (i+3)-th prime. */
void fuse_probe_binding(int64_t *binding);

#endif
