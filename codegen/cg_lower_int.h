/* cg_lower_int.h — internals shared by the cg_lower_*.c files (not public).
 *
 * Lowering runs over the graph once or twice with the same code: a plan
 * pass (L->emit false) fills each node's CgNodeCode (kind, extent,
 * parallel, numel, bytes, flops), and, unless the object came from the
 * cache, an emit pass (L->emit true) also builds the LLVM IR.  Each op
 * family computes its iteration space the same way in both passes, so a
 * cache hit needs no LLVM work at all and still knows every extent.
 *
 * A kernel is two functions:
 *   kN_op(ptr slots, i64 begin, i64 end)            external: the contract
 *   kM_op.body(ptr noalias out, ptr noalias in0..., i64 begin, i64 end, i64 aux)
 * The wrapper loads the buffers from slots (aliases resolved to the buffer
 * that owns the memory) and calls the body, which is internal and never
 * inlined, so that nodes computing the same thing on different buffers
 * share one body (M is the first such node).  Noalias buffer arguments
 * let the loop vectorizer skip runtime overlap checks.  To keep that
 * promise, an operand that memplan puts under the output (in place) is
 * read through the output's pointer (cg_reads_own_output), and which
 * operands those are is part of the body's signature.
 *
 * Sections follow the files:
 *   cg_lower.c          the driver: plan, cache, module, lookups; the op table
 *   cg_lower_build.c    kernels, loops, constants, intrinsics, index math
 *   cg_lower_math.c     scalar math: exp/log/tanh/gelu, one cg_math_<op> rule per
 *                       elementwise op, cast
 *   cg_lower_elem.c     strided maps: elementwise, movement, const, iota, dropout
 *   cg_lower_reduce.c   sum/max/mean, softmax, log_softmax, layernorm, cross_entropy
 *   cg_lower_matmul.c   matmul (cblas_sgemm), gather, scatter_add
 *   cg_lower_attention.c  causal_attention and its gradient (flash style)
 *   cg_lower_fused*.c   fused nodes: one kernel per body (cg_fused_int.h)
 */
#ifndef GRADC_CG_LOWER_INT_H
#define GRADC_CG_LOWER_INT_H

#include "cg_lower.h"

/* ---------------------------------------------------------------- cg_lower.c */

/* One program being lowered. */
typedef struct CgLower {
    const IrGraph *g;
    const int64_t *binding;
    int64_t (*dim)[IR_MAX_RANK]; /* dim[i]: concrete dims of node i */
    int *buf;                    /* buf[i]: node whose buffer node i uses (aliases resolved) */
    CgNodeCode *code;            /* the program's nodes */
    bool emit;                   /* build IR (else plan only) */
    CgModule *m;                 /* emit only */
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef b;
    LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr, vd;
    int nbody;                   /* kernel bodies built so far */
    char **body_sig;             /* body_sig[b]: what body b computes (see cg_kernel_begin) */
    LLVMValueRef *body_fn;
    CgNodeCode *member;          /* member[i]: the kernel of sibling run i (its last node) when it
                                  * is part of a horizontal launch (cg_lower_fused.c) */
    IrError *err;
} CgLower;

/* A view with no code (reshape, contiguous slice): ALIAS of the operand's
 * owner; cg_buf_offset is a node's byte offset in its owner's buffer. */
bool cg_lower_alias(CgLower *L, const IrNode *n);
int64_t cg_buf_offset(const CgLower *L, int node);
/* Operand j of node n lives in the buffer that kernel `out` writes in
 * place (out is n, or a sibling of n with the same operands): the body
 * must read it through out's pointer. */
bool cg_reads_own_output(const CgLower *L, const IrNode *out, const IrNode *n, int j);
/* Fills kind/extent/parallel of node n's code (KERNEL), and its FLOPs
 * from ir/cost.h (a fused run's are set by cg_lower_fused). */
void cg_set_kernel(CgLower *L, const IrNode *n, int64_t extent, bool parallel);
int64_t cg_numel(const CgLower *L, const IrNode *n);
/* Fails with "codegen: %N op: MSG"; returns false. */
bool cg_fail(CgLower *L, const IrNode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- cg_lower_build.c */

/* The kernel being built: ptr[0] is the output buffer, ptr[1 + i] operand
 * i's.  begin/end are the part of the parallel range to compute. */
typedef struct CgKernel {
    CgLower *L;
    LLVMBuilderRef b;
    const IrNode *n;
    LLVMValueRef fn;
    LLVMValueRef begin, end;
    LLVMValueRef aux; /* i64: a dropout seed (dropout, causal_attention[_grad]), const's
                       * value bits (see cg_kernel_begin) */
    LLVMValueRef ptr[IR_MAX_IN + 1];
    LLVMBasicBlockRef entry; /* allocas go here */
} CgKernel;

/* Creates the wrapper kN_op.  If no node before had the same signature
 * (op, attributes, dtypes and dims of the node and its operands), also
 * creates a body, positions the builder in it and returns true: build
 * the body, then cg_kernel_end.  Otherwise the wrapper calls the existing
 * body and it returns false: nothing more to build.  Twelve identical
 * transformer blocks thus compile their kernels once.  The seed of dropout
 * and of the attention ops and const's value are not part of the
 * signature: the wrapper passes them to the body as the i64 argument
 * k->aux (the value as its double bits). */
bool cg_kernel_begin(CgLower *L, const IrNode *n, CgKernel *k);
void cg_kernel_end(CgKernel *k);
/* In a kernel function: node x's buffer, slots[buf(x)] plus its view offset. */
LLVMValueRef cg_slot(CgLower *L, LLVMValueRef slots, int x, const char *name);
/* The module's declaration of cg_sgemm (cg.h), and its type in *fty. */
LLVMValueRef cg_declare_sgemm(CgLower *L, LLVMTypeRef *fty);

/* A counted loop for (i = lo; i < hi; i++) with up to 4 carried values.
 *   CgFor f;  LLVMValueRef i = cg_for_begin(k, &f, lo, hi, 1, &init);
 *   ... f.carry[0] is the value on entry of this iteration ...
 *   cg_for_end(k, &f, &next);  f.result[0] is the value after the loop. */
typedef struct CgFor {
    LLVMBasicBlockRef pre, body, exit;
    LLVMValueRef i, hi;
    int ncarry;
    LLVMValueRef init[4], carry[4], result[4];
} CgFor;

LLVMValueRef cg_for_begin(CgKernel *k, CgFor *f, LLVMValueRef lo, LLVMValueRef hi, int ncarry,
                          const LLVMValueRef *init);
void cg_for_end(CgKernel *k, CgFor *f, const LLVMValueRef *next);

LLVMValueRef cg_i64(CgKernel *k, int64_t v);
LLVMValueRef cg_i32c(CgKernel *k, int64_t v);
LLVMValueRef cg_f32c(CgKernel *k, double v);
LLVMTypeRef cg_elem_type(CgLower *L, IrDType dt);
/* &base[idx] for elements of dtype dt. */
LLVMValueRef cg_gep(CgKernel *k, IrDType dt, LLVMValueRef base, LLVMValueRef idx);
LLVMValueRef cg_load(CgKernel *k, IrDType dt, LLVMValueRef base, LLVMValueRef idx);
void cg_store(CgKernel *k, IrDType dt, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v);
/* A call of intrinsic `name` overloaded on type t. */
LLVMValueRef cg_intrin(CgKernel *k, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n);
LLVMValueRef cg_add(CgKernel *k, LLVMValueRef a, LLVMValueRef b);        /* i64, nsw */
LLVMValueRef cg_mul(CgKernel *k, LLVMValueRef a, int64_t c);             /* i64 * const */
LLVMValueRef cg_min(CgKernel *k, LLVMValueRef a, LLVMValueRef b);        /* i64, signed */
LLVMValueRef cg_max(CgKernel *k, LLVMValueRef a, LLVMValueRef b);
/* An f32 add that may be reassociated (so reductions vectorize). */
LLVMValueRef cg_fadd_reassoc(CgKernel *k, LLVMValueRef a, LLVMValueRef b);
/* Neumaier (compensated) add of x into the pair (s, c). */
void cg_neumaier(CgKernel *k, LLVMValueRef *s, LLVMValueRef *c, LLVMValueRef x);
/* A stack array of n elements of type t, in the entry block. */
LLVMValueRef cg_alloca(CgKernel *k, LLVMTypeRef t, int64_t n);

/* ---------------------------------------------------------------- cg_lower_math.c */

LLVMValueRef cg_exp(CgKernel *k, LLVMValueRef x);
LLVMValueRef cg_log(CgKernel *k, LLVMValueRef x);
LLVMValueRef cg_tanh(CgKernel *k, LLVMValueRef x);
LLVMValueRef cg_gelu(CgKernel *k, LLVMValueRef x);
/* NaN-propagating max/min (as the interpreter); i32 is signed. */
LLVMValueRef cg_maximum(CgKernel *k, IrDType dt, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_minimum(CgKernel *k, IrDType dt, LLVMValueRef a, LLVMValueRef b);
/* One element of elementwise node n from its operands' elements a[]: the
 * math rule of ops.def's math column (cg_math_<math>, declared below). */
LLVMValueRef cg_elem(CgKernel *k, const IrNode *n, const LLVMValueRef *a);
bool cg_has_math(IrOp op);
LLVMValueRef cg_cast(CgKernel *k, IrDType from, IrDType to, LLVMValueRef x);
/* A double value (f64) as dtype dt, as the interpreter's casts do. */
LLVMValueRef cg_cast_f64(CgKernel *k, IrDType dt, LLVMValueRef d);

/* ---------------------------------------------------------------- cg_lower_elem.c */

bool cg_lower_elementwise(CgLower *L, const IrNode *n); /* unary, binary, where, cast, broadcast */
bool cg_lower_dropout(CgLower *L, const IrNode *n);
bool cg_lower_transpose(CgLower *L, const IrNode *n);
bool cg_lower_slice(CgLower *L, const IrNode *n);
bool cg_lower_concat(CgLower *L, const IrNode *n);
bool cg_lower_const(CgLower *L, const IrNode *n);
bool cg_lower_iota(CgLower *L, const IrNode *n);
bool cg_lower_causal_mask(CgLower *L, const IrNode *n);
/* The dropout hash of ir/rng.h, for every kernel that drops: mix = seed ^
 * step * C1 (i64 seed and step) once per kernel, then per element the i1
 * keep(mix, index) for a probability 0 < p < 1. */
LLVMValueRef cg_dropout_mix(CgKernel *k, LLVMValueRef seed, LLVMValueRef step);
LLVMValueRef cg_dropout_keep(CgKernel *k, LLVMValueRef mix, LLVMValueRef index, double p);

/* ---------------------------------------------------------------- cg_lower_reduce.c */

bool cg_lower_reduce(CgLower *L, const IrNode *n); /* sum, max, mean */
bool cg_lower_softmax(CgLower *L, const IrNode *n); /* softmax, log_softmax */
bool cg_lower_layernorm(CgLower *L, const IrNode *n);
bool cg_lower_cross_entropy(CgLower *L, const IrNode *n);

/* ---------------------------------------------------------------- cg_lower_matmul.c */

bool cg_lower_matmul(CgLower *L, const IrNode *n);
bool cg_lower_gather(CgLower *L, const IrNode *n);
bool cg_lower_scatter_add(CgLower *L, const IrNode *n);

/* ---------------------------------------------------------------- cg_lower_attention.c */

bool cg_lower_causal_attention(CgLower *L, const IrNode *n);      /* parallel over rows */
bool cg_lower_causal_attention_grad(CgLower *L, const IrNode *n); /* parallel over heads */

/* ---------------------------------------------------------------- cg_lower_fused.c */

/* A fused node (passes/fuse.c): one kernel for it and its siblings. */
bool cg_lower_fused(CgLower *L, const IrNode *n);

/* ---------------------------------------------------------------- the rules of ops.def */

/* Every rule a row of ops.def names: the builder of its lower column and
 * the scalar rule of its math column (`none`: cg_math_none, which no
 * elementwise lowering may reach).  A rule that is declared here and
 * defined nowhere fails the link. */
bool cg_lower_source(CgLower *L, const IrNode *n); /* input, param: no code */
#define OP(E, n, mi, ma, k, sr, dr, lower, math, ...) \
    bool cg_lower_##lower(CgLower *L, const IrNode *node); \
    LLVMValueRef cg_math_##math(CgKernel *k, const IrNode *node, const LLVMValueRef *a);
#include "ir/ops.def"
#undef OP

#endif
