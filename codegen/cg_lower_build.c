/* cg_lower_build.c — the building blocks of every kernel: functions, loops,
 * constants, loads and stores, intrinsics.
 *
 * A kernel is a wrapper with the contract's signature that loads its
 * buffers from `slots` and calls a body whose buffer arguments are
 * noalias (see cg_lower_int.h): an operand written over in place is read
 * through the output's pointer.  Bodies are keyed by a signature string
 * (op, attributes, dtypes, dims of the node and its operands): a node
 * whose signature was seen before gets only a wrapper around the existing
 * body, which keeps compile time proportional to the distinct kernels of
 * a model, not to its depth.  A body's first block holds only allocas and
 * branches to the code.
 *
 * Loops are the plain guarded form the vectorizer likes best:
 *     pre:   br lo < hi, body, exit
 *     body:  i = phi [lo, pre], [i + 1, latch]  ...  br i + 1 < hi, body, exit
 * with carried values (accumulators) as phis in the body and results as
 * phis in the exit block.  Index arithmetic is i64 with nsw, and loop
 * bounds are constants wherever the shape allows, so LLVM sees exact trip
 * counts and needs no runtime checks beyond the tail.
 */
#include "cg_lower_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- functions */

static void cg_fn_attr(CgLower *L, LLVMValueRef fn, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(L->C, kind, 0));
}

/* body(ptr noalias nocapture x (1 + nin), i64 begin, i64 end, i64 aux) */
static LLVMValueRef cg_body_decl(CgLower *L, const IrNode *n, const char *name)
{
    LLVMTypeRef ps[IR_MAX_IN + 4];
    int np = 1 + n->nin;
    for (int i = 0; i < np; i++)
        ps[i] = L->ptr;
    ps[np] = ps[np + 1] = ps[np + 2] = L->i64;
    LLVMValueRef fn = LLVMAddFunction(L->M, name, LLVMFunctionType(L->vd, ps, np + 3, 0));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    for (int i = 0; i < np; i++) {
        cg_fn_attr(L, fn, i + 1, "noalias");
        cg_fn_attr(L, fn, i + 1, "nocapture");
    }
    cg_fn_attr(L, fn, LLVMAttributeFunctionIndex, "noinline");
    cg_fn_attr(L, fn, LLVMAttributeFunctionIndex, "nounwind");
    return fn;
}

/* void cg_sgemm(...), with cblas_sgemm's arguments (codegen/cg_gemm.c),
 * declared once per module. */
LLVMValueRef cg_declare_sgemm(CgLower *L, LLVMTypeRef *fty)
{
    LLVMTypeRef i32 = L->i32, f32 = L->f32, p = L->ptr;
    LLVMTypeRef ps[14] = {i32, i32, i32, i32, i32, i32, f32, p, i32, p, i32, f32, p, i32};
    *fty = LLVMFunctionType(L->vd, ps, 14, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(L->M, "cg_sgemm");
    return fn ? fn : LLVMAddFunction(L->M, "cg_sgemm", *fty);
}

/* ---------------------------------------------------------------- signatures */

static int sig_dims(char *buf, size_t cap, IrDType dt, int rank, const int64_t *dim)
{
    int at = snprintf(buf, cap, " %s[", ir_dtype_name(dt));
    for (int d = 0; d < rank && (size_t)at < cap; d++)
        at += snprintf(buf + at, cap - at, "%s%lld", d ? "," : "", (long long)dim[d]);
    return at + ((size_t)at < cap ? snprintf(buf + at, cap - at, "]") : 0);
}

static int sig_attr(char *buf, size_t cap, const IrAttr *a)
{
    int at = snprintf(buf, cap, " %s=%a/%s/", ir_attr_name(a->key), a->f, a->s ? a->s : "");
    for (int i = 0; i < IR_MAX_RANK && (size_t)at < cap; i++)
        at += snprintf(buf + at, cap - at, "%lld,", (long long)a->i[i]);
    return at;
}

/* The one attribute a body takes as an argument instead of a constant:
 * the seed of an op that drops out (ir_op_drops: dropout, the attention
 * ops), const's value (its bits); 0 for other ops. */
static bool is_aux_attr(const IrNode *n, IrAttrKey key)
{
    return (ir_op_drops(n->op) && key == ATTR_SEED) || (n->op == OP_CONST && key == ATTR_VALUE);
}

static unsigned long long node_aux(const IrNode *n)
{
    uint64_t v = 0;
    if (ir_op_drops(n->op))
        v = (uint64_t)ir_node_int(n, ATTR_SEED, 0);
    if (n->op == OP_CONST) {
        double d = ir_node_float(n, ATTR_VALUE, 0.0);
        memcpy(&v, &d, sizeof v);
    }
    return v;
}

/* Everything a body depends on: op, attributes (but the aux one), dtypes
 * and dims. */
static char *node_sig(CgLower *L, const IrNode *n)
{
    char buf[2048];
    int at = snprintf(buf, sizeof buf, "%s", ir_op_name(n->op));
    at += sig_dims(buf + at, sizeof buf - at, n->dtype, n->shape.rank, L->dim[n->index]);
    for (int i = 0; i < n->nin && (size_t)at < sizeof buf; i++) {
        const IrNode *x = n->in[i];
        at += sig_dims(buf + at, sizeof buf - at, x->dtype, x->shape.rank, L->dim[x->index]);
    }
    for (int i = 0; i < n->nattr && (size_t)at < sizeof buf; i++)
        if (!is_aux_attr(n, (IrAttrKey)n->attr[i].key))
            at += sig_attr(buf + at, sizeof buf - at, &n->attr[i]);
    for (int i = 0; i < n->nin && (size_t)at < sizeof buf; i++)
        if (cg_reads_own_output(L, n, n, i))
            at += snprintf(buf + at, sizeof buf - at, " in%d=out", i);
    IR_ASSERT((size_t)at < sizeof buf);
    return strdup(buf);
}

/* The body already built for this signature, or NULL (sig then kept). */
static LLVMValueRef find_body(CgLower *L, char *sig)
{
    for (int b = 0; b < L->nbody; b++)
        if (!strcmp(L->body_sig[b], sig)) {
            free(sig);
            return L->body_fn[b];
        }
    L->body_sig[L->nbody] = sig;
    return NULL;
}

/* The buffer of node x in a kernel: slots[buf(x)] plus x's view offset. */
LLVMValueRef cg_slot(CgLower *L, LLVMValueRef slots, int x, const char *name)
{
    LLVMValueRef idx = LLVMConstInt(L->i64, (unsigned long long)L->buf[x], 0);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(L->b, L->ptr, slots, &idx, 1, "slot");
    LLVMValueRef v = LLVMBuildLoad2(L->b, L->ptr, p, name);
    int64_t off = cg_buf_offset(L, x);
    if (!off)
        return v;
    LLVMValueRef o = LLVMConstInt(L->i64, (unsigned long long)off, 0);
    return LLVMBuildInBoundsGEP2(L->b, L->i8, v, &o, 1, name);
}

/* The wrapper: loads slots[buf(out)], slots[buf(in i)] and calls body. */
static void cg_wrapper(CgLower *L, const IrNode *n, LLVMValueRef body, const char *name)
{
    LLVMTypeRef ps[3] = {L->ptr, L->i64, L->i64};
    LLVMValueRef fn = LLVMAddFunction(L->M, name, LLVMFunctionType(L->vd, ps, 3, 0));
    cg_fn_attr(L, fn, LLVMAttributeFunctionIndex, "nounwind");
    LLVMBuilderRef b = L->b;
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(L->C, fn, "entry"));
    LLVMValueRef args[IR_MAX_IN + 4], slots = LLVMGetParam(fn, 0);
    int np = 1 + n->nin;
    for (int i = 0; i < np; i++) {
        int x = i == 0 ? n->index : n->in[i - 1]->index;
        args[i] = cg_slot(L, slots, x, i == 0 ? "out" : "in");
    }
    args[np] = LLVMGetParam(fn, 1);
    args[np + 1] = LLVMGetParam(fn, 2);
    args[np + 2] = LLVMConstInt(L->i64, node_aux(n), 0);
    LLVMBuildCall2(b, LLVMGlobalGetValueType(body), body, args, np + 3, "");
    LLVMBuildRetVoid(b);
}

bool cg_kernel_begin(CgLower *L, const IrNode *n, CgKernel *k)
{
    const char *sym = L->code[n->index].symbol;
    LLVMValueRef shared = find_body(L, node_sig(L, n));
    if (shared) {
        cg_wrapper(L, n, shared, sym);
        return false;
    }
    char body_name[64];
    snprintf(body_name, sizeof body_name, "%s.body", sym);
    memset(k, 0, sizeof *k);
    k->L = L;
    k->b = L->b;
    k->n = n;
    k->fn = L->body_fn[L->nbody++] = cg_body_decl(L, n, body_name);
    cg_wrapper(L, n, k->fn, sym);
    for (int i = 0; i <= n->nin; i++)
        k->ptr[i] = LLVMGetParam(k->fn, i);
    for (int i = 0; i < n->nin; i++)
        if (cg_reads_own_output(L, n, n, i))
            k->ptr[1 + i] = k->ptr[0]; /* in place: one pointer, so noalias holds */
    k->begin = LLVMGetParam(k->fn, n->nin + 1);
    k->end = LLVMGetParam(k->fn, n->nin + 2);
    k->aux = LLVMGetParam(k->fn, n->nin + 3);
    k->entry = LLVMAppendBasicBlockInContext(L->C, k->fn, "entry");
    LLVMPositionBuilderAtEnd(k->b, LLVMAppendBasicBlockInContext(L->C, k->fn, "code"));
    return true;
}

void cg_kernel_end(CgKernel *k)
{
    LLVMBuildRetVoid(k->b);
    LLVMBasicBlockRef code = LLVMGetNextBasicBlock(k->entry);
    LLVMPositionBuilderAtEnd(k->b, k->entry);
    LLVMBuildBr(k->b, code);
}

LLVMValueRef cg_alloca(CgKernel *k, LLVMTypeRef t, int64_t n)
{
    LLVMBuilderRef b = LLVMCreateBuilderInContext(k->L->C);
    LLVMPositionBuilderAtEnd(b, k->entry);
    LLVMValueRef a = LLVMBuildAlloca(b, LLVMArrayType2(t, (uint64_t)n), "tmp");
    LLVMSetAlignment(a, 64);
    LLVMDisposeBuilder(b);
    return a;
}

/* ---------------------------------------------------------------- loops */

LLVMValueRef cg_for_begin(CgKernel *k, CgFor *f, LLVMValueRef lo, LLVMValueRef hi, int ncarry,
                          const LLVMValueRef *init)
{
    LLVMContextRef C = k->L->C;
    memset(f, 0, sizeof *f);
    f->pre = LLVMGetInsertBlock(k->b);
    f->body = LLVMAppendBasicBlockInContext(C, k->fn, "loop");
    f->exit = LLVMAppendBasicBlockInContext(C, k->fn, "after");
    f->hi = hi;
    f->ncarry = ncarry;
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, lo, hi, "any"), f->body, f->exit);
    LLVMPositionBuilderAtEnd(k->b, f->body);
    f->i = LLVMBuildPhi(k->b, k->L->i64, "i");
    LLVMAddIncoming(f->i, &lo, &f->pre, 1);
    for (int c = 0; c < ncarry; c++) {
        f->init[c] = init[c];
        f->carry[c] = LLVMBuildPhi(k->b, LLVMTypeOf(init[c]), "acc");
        LLVMAddIncoming(f->carry[c], &f->init[c], &f->pre, 1);
    }
    return f->i;
}

void cg_for_end(CgKernel *k, CgFor *f, const LLVMValueRef *next)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(k->b);
    LLVMValueRef i1 = LLVMBuildNSWAdd(k->b, f->i, cg_i64(k, 1), "next");
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, i1, f->hi, "more"), f->body, f->exit);
    LLVMAddIncoming(f->i, &i1, &latch, 1);
    LLVMPositionBuilderAtEnd(k->b, f->exit);
    for (int c = 0; c < f->ncarry; c++) {
        LLVMValueRef nx = next[c];
        LLVMAddIncoming(f->carry[c], &nx, &latch, 1);
        f->result[c] = LLVMBuildPhi(k->b, LLVMTypeOf(nx), "res");
        LLVMValueRef vals[2] = {f->init[c], nx};
        LLVMBasicBlockRef from[2] = {f->pre, latch};
        LLVMAddIncoming(f->result[c], vals, from, 2);
    }
}

/* ---------------------------------------------------------------- values */

LLVMValueRef cg_i64(CgKernel *k, int64_t v)
{
    return LLVMConstInt(k->L->i64, (unsigned long long)v, 1);
}

LLVMValueRef cg_i32c(CgKernel *k, int64_t v)
{
    return LLVMConstInt(k->L->i32, (unsigned long long)v, 1);
}

LLVMValueRef cg_f32c(CgKernel *k, double v)
{
    return LLVMConstReal(k->L->f32, (double)(float)v);
}

LLVMTypeRef cg_elem_type(CgLower *L, IrDType dt)
{
    return dt == DT_F32 ? L->f32 : dt == DT_I32 ? L->i32 : L->i8;
}

LLVMValueRef cg_gep(CgKernel *k, IrDType dt, LLVMValueRef base, LLVMValueRef idx)
{
    return LLVMBuildInBoundsGEP2(k->b, cg_elem_type(k->L, dt), base, &idx, 1, "p");
}

LLVMValueRef cg_load(CgKernel *k, IrDType dt, LLVMValueRef base, LLVMValueRef idx)
{
    return LLVMBuildLoad2(k->b, cg_elem_type(k->L, dt), cg_gep(k, dt, base, idx), "v");
}

void cg_store(CgKernel *k, IrDType dt, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v)
{
    LLVMBuildStore(k->b, v, cg_gep(k, dt, base, idx));
}

LLVMValueRef cg_intrin(CgKernel *k, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    IR_ASSERT(id != 0);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(k->L->M, id, &t, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(k->L->C, id, &t, 1);
    return LLVMBuildCall2(k->b, fty, fn, args, (unsigned)n, "");
}

LLVMValueRef cg_add(CgKernel *k, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildNSWAdd(k->b, a, b, "");
}

LLVMValueRef cg_mul(CgKernel *k, LLVMValueRef a, int64_t c)
{
    return c == 1 ? a : LLVMBuildNSWMul(k->b, a, cg_i64(k, c), "");
}

LLVMValueRef cg_min(CgKernel *k, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, a, b, ""), a, b, "");
}

LLVMValueRef cg_max(CgKernel *k, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSGT, a, b, ""), a, b, "");
}

LLVMValueRef cg_fadd_reassoc(CgKernel *k, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef s = LLVMBuildFAdd(k->b, a, b, "");
    if (LLVMIsAInstruction(s))
        LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
    return s;
}

/* t = s + x; c += |s| >= |x| ? (s - t) + x : (x - t) + s; s = t */
void cg_neumaier(CgKernel *k, LLVMValueRef *s, LLVMValueRef *c, LLVMValueRef x)
{
    LLVMBuilderRef b = k->b;
    LLVMValueRef t = LLVMBuildFAdd(b, *s, x, "t");
    LLVMValueRef as = cg_intrin(k, "llvm.fabs", k->L->f32, s, 1);
    LLVMValueRef ax = cg_intrin(k, "llvm.fabs", k->L->f32, &x, 1);
    LLVMValueRef big = LLVMBuildFCmp(b, LLVMRealOGE, as, ax, "");
    LLVMValueRef e1 = LLVMBuildFAdd(b, LLVMBuildFSub(b, *s, t, ""), x, "");
    LLVMValueRef e2 = LLVMBuildFAdd(b, LLVMBuildFSub(b, x, t, ""), *s, "");
    *c = LLVMBuildFAdd(b, *c, LLVMBuildSelect(b, big, e1, e2, ""), "c");
    *s = t;
}
