/* cg_fused_int.h — internals of the lowering of fused kernels (not public).
 *
 *   cg_lower_fused.c        siblings, the merged body, its analysis (kind,
 *                           space, maps), the kernel function, matmuls
 *   cg_lower_fused_loops.c  the value of a body node at a position, and
 *                           the loop nests of elementwise, row and reduce
 *                           kernels
 *
 * A kernel iterates over a space S (a shape with concrete dims).  Every
 * body value lives in S: its shape broadcasts into S, so the element of a
 * value at a point of S is found through a *map*, one stride per dim of S
 * (0 where the value is broadcast).  The leaves of a body have maps: the
 * buffers it reads (inputs, and the matmul's result in its output), the
 * iotas (their index along their axis) and the dropouts (their element's
 * index in their own shape, which keys the mask); so have its outputs.
 * Neighbouring dims of S that every map steps through as one are merged
 * before the loops are built (coalescing), as the elementwise lowering of
 * single ops does.
 */
#ifndef GRADC_CG_FUSED_INT_H
#define GRADC_CG_FUSED_INT_H

#include "cg_lower_int.h"
#include "passes/fuse.h"

#define FX_MAX_OUT 8
#define FX_MAX_MAP 64
#define FX_TILE    256 /* columns per work item of an outer reduction */

/* What a body node is to the loops (X_MM: a matmul, or an add of matmuls,
 * that BLAS computes; X_HEAD: the value BLAS leaves in the primary output). */
enum { X_INPUT, X_HEAD, X_VIEW, X_CONST, X_IOTA, X_ELEM, X_DROPOUT, X_RED, X_MM };

/* The kinds of kernel (docs/codegen.md, fused kernels). */
enum { FK_ELEM, FK_ROW, FK_REDUCE, FK_MATMUL };

typedef struct FxNode {
    const IrNode *n;
    int kind;
    int slot;          /* X_INPUT: operand index */
    int map;           /* leaves: their map, else -1 */
    int level;         /* row kernels: reductions under it, as a depth (0: none) */
    int acc;           /* X_RED: its accumulator */
    int aux;           /* X_DROPOUT: index of its seed in the aux array */
    bool varies;       /* depends on the innermost loop index */
    bool need;         /* an output depends on it */
    LLVMValueRef v;    /* its value where the builder is */
    int depth;         /* the loop depth v was computed at */
} FxNode;

typedef struct Fx {
    CgLower *L;
    const IrNode *sib[FX_MAX_OUT];  /* the sibling nodes, in graph order */
    int nsib;
    IrGraph *M;                     /* the body: merged when there are siblings */
    bool own;
    FxNode *x;                      /* per node of M */
    int nin;                        /* inputs of M (the operands) */
    int out[FX_MAX_OUT];            /* node of M that sibling s writes */
    int out_map[FX_MAX_OUT];
    int kind;
    int head, primary;              /* the matmul (or the root of a sum of matmuls) and the
                                     * output holding it, or -1 */
    int mm[4], nmm;                 /* the matmuls, in order (BLAS adds the later ones in) */
    int rank;                       /* the space, coalesced */
    int64_t dim[IR_MAX_RANK];
    bool red[IR_MAX_RANK];          /* reduce kernels: the reduced dims */
    int64_t st[FX_MAX_MAP][IR_MAX_RANK];
    int nmap;
    int nacc, naux, maxlevel;
    /* emission */
    CgKernel k;
    LLVMValueRef outp[FX_MAX_OUT], inp[IR_MAX_IN], auxp;
    LLVMValueRef base[FX_MAX_MAP];  /* offsets of the current position, inner index aside */
    LLVMValueRef j;                 /* the inner index, NULL outside the inner loop */
    int depth;
    LLVMValueRef acc[FX_MAX_OUT * 4]; /* accumulators (allocas) */
} Fx;

/* cg_lower_fused_loops.c */
LLVMValueRef fx_value(Fx *x, int i);
/* Drops the values computed at loop depth >= d (leaving such a loop). */
void fx_forget(Fx *x, int d);
int64_t fx_extent(const Fx *x);
void fx_emit_loops(Fx *x, bool whole);

#endif
