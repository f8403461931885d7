/* fuse_int.h — internals of the fuse pass, shared by its files (not public).
 *
 *   fuse.c         the pass: users, the main loop, kernel formation
 *   fuse_rules.c   what a kernel may absorb, with the reason codes
 *   fuse_emit.c    siblings, order, bodies, the rebuilt graph, --explain
 *   fuse_layout.c  strided views (fuse.h, shared with codegen)
 *
 * Nodes are named by their index in the graph as the pass found it (the
 * %N of the input's dump), which is also what --explain prints.
 */
#ifndef GRADC_FUSE_INT_H
#define GRADC_FUSE_INT_H

#include "fuse.h"
#include "pass.h"

#define FUSE_MAX_OUTS 6
#define FUSE_MAX_HEADS 4

/* Why a node stays out of a kernel (docs/passes.md, fuse). */
typedef enum FuseReason {
    R_NONE,
    R_MULTI_USE_REDUCTION, /* read by reductions in two kernels that cannot share a loop */
    R_MATMUL_OUTPUT_NEEDED,/* a matmul result also read elsewhere: the epilogue must not
                            * overwrite it */
    R_SHAPE_BREAK,         /* its shape does not fit the kernel's iteration space */
    R_REDUCE_AXES,         /* a reduction over other axes than the kernel's loop */
    R_SECOND_MATMUL,       /* the kernel has a matmul already */
    R_MATMUL_OPERAND,      /* a matmul reads it from memory */
    R_OPAQUE,              /* gather, scatter_add, composites, kernels: not fusable */
    R_TOO_MANY_INPUTS,     /* the kernel would read more than IR_MAX_IN buffers */
    R_TOO_MANY_OUTPUTS,    /* the kernel would write more than FUSE_MAX_OUTS buffers */
    R_CYCLE,               /* the kernel would depend on itself */
    R_VALUE_NEEDED,        /* read elsewhere, and this kind of kernel has one output */
    R_COUNT
} FuseReason;

const char *fuse_reason_name(FuseReason r);

typedef enum FuseKind { G_ELEM, G_ROW, G_REDUCE, G_MATMUL } FuseKind;

/* Node states inside the kernel being formed (stamped with the kernel). */
enum { S_NONE, S_PENDING, S_INPUT, S_MEMBER, S_INLINE };

typedef struct FuseRefusal {
    int node;
    FuseReason why;
    char detail[120];
} FuseRefusal;

typedef struct FuseGroup {
    int root;
    FuseKind kind;
    int head;                    /* the (first) matmul, or -1 */
    int heads[FUSE_MAX_HEADS], nhead; /* all its matmuls: a sum of matmuls, added by BLAS */
    IrShape space;               /* the iteration space */
    int *mem, nmem, capmem;      /* absorbed nodes, the root first */
    int *inl, ninl, capinl;      /* inlined copies: consts, iotas, index and scalar cones, views */
    int in[IR_MAX_IN], nin;      /* buffers read (ascending) */
    int out[FUSE_MAX_OUTS], nout;/* values written: the root first */
    FuseRefusal *ref;
    int nref, capref;
    bool trivial;                /* one node and nothing inlined: stays as it is */
    int merged_into;             /* -1, or the group whose kernel also computes this one */
    int next_sib;                /* the next group merged into the same kernel, or -1 */
    int seen;                    /* scratch of fuse_kernel_reaches */
} FuseGroup;

typedef struct Fuse {
    IrGraph *g;
    PassCtx *ctx;
    int n;                       /* nodes of the input graph */
    IrNode **node;               /* the input order */
    int *use_off, *use;          /* users of i: use[use_off[i] .. use_off[i + 1]), unique */
    bool *is_out;                /* a graph output */
    int *grp;                    /* the group node i is a member of, or -1 */
    bool *needed;                /* read from memory by a live node or an output */
    bool *done;                  /* passed by the main loop */
    signed char *inl;            /* inlinable: 1 yes, 0 no, -1 not known yet */
    unsigned char *state;        /* S_* in the group being formed */
    int *stamp;                  /* which group state[i] belongs to */
    int *heap, nheap;            /* candidates of the group being formed, max first */
    int *front, nfront;          /* nodes it reads or may read (pending or input) */
    int *seen, seen_stamp;       /* scratch of the depth-first searches */
    int *dfs;                    /* their stack */
    FuseGroup *gs;
    int ngs, capgs;
    int64_t probe[IR_MAX_SYMS];  /* the binding of legality checks */
    signed char *pure;           /* memo of sum trees: 1 yes, 0 no, -1 not known yet */
} Fuse;

/* ---------------------------------------------------------------- fuse.c */

int fuse_state(const Fuse *F, int gi, int i);
void fuse_set_state(Fuse *F, int gi, int i, int s);
/* Users of i outside group gi that read i from memory (or will: users the
 * main loop has not reached count); the first one in *first, -1 if none;
 * *red: one of them is a reduction.  Graph outputs count as a reader -2. */
int fuse_outside_readers(const Fuse *F, int gi, int i, int *first, bool *red);
/* Whether `to` is reachable from `from` along users, through nodes <= limit. */
bool fuse_reaches(Fuse *F, int from, int to, int limit);
/* The kernel that computes group gi: gi, or the one it was merged into. */
int fuse_unit(const Fuse *F, int gi);
/* Whether kernel `target` depends on the readers of node `node` outside
 * it (node >= 0), or on kernel `kernel` (kernel >= 0), in the graph of
 * kernels: every kernel (with its merged siblings) is one vertex, every
 * other node its own.  A kernel reads an output of another, or of a node,
 * where one of its members reads it. */
bool fuse_kernel_reaches(Fuse *F, int node, int kernel, int target);
/* Whether i can be copied into every kernel that reads it (consts, iotas,
 * index-only and scalar cones). */
bool fuse_inlinable(Fuse *F, int i);
bool fuse_is_free(const IrNode *n);
bool fuse_is_source(const IrNode *n);

/* ---------------------------------------------------------------- fuse_rules.c */

bool fuse_aligned(const IrShape *x, const IrShape *s);
bool fuse_last_axis_reduction(const IrNode *n);
/* R_NONE when kernel gi may absorb node p, else why not (detail filled). */
FuseReason fuse_check(Fuse *F, int gi, int p, char *detail, size_t cap);
/* The buffers node x stands for among kernel gi's inputs (fuse_rules.c). */
int fuse_leaves(Fuse *F, int gi, int x);
/* The input count of kernel gi after it takes p (absorbed or inlined). */
int fuse_inputs_after(Fuse *F, int gi, int p);
/* The deepest node down the view chain of the matmul's operand that the
 * matmul can read strided (the operand itself if none). */
int fuse_view_leaf(Fuse *F, int operand);
/* The root of the sum of matmuls that matmul x is a term of: the last of a
 * tree of adds whose every leaf is a matmul and whose every node has one
 * reader; x itself when it is in no such sum. */
int fuse_sum_root(Fuse *F, int x);
/* Whether transpose root t is a view of a matmul's result that BLAS can
 * write in place; the matmul in *head. */
bool fuse_output_view(Fuse *F, int t, int *head);

/* ---------------------------------------------------------------- fuse_emit.c */

/* Merges sibling reduce kernels, orders the kernels, rebuilds the graph,
 * prints --explain. */
void fuse_emit(Fuse *F);
/* fuse_horizontal.c: the write-back-only kernels (AdamW updates) into one launch. */
void fuse_horizontal(IrGraph *g, PassCtx *ctx);

#endif
