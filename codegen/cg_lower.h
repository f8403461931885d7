/* cg_lower.h — lowering a graph to native kernels, at one binding of its dims.
 *
 * A CgProgram is a graph compiled for concrete dims (B=2, T=64, ...): every
 * node becomes one of
 *   SOURCE  input, param or const: the runtime owns its buffer (const nodes
 *           get a kernel that fills them, so they are KERNEL too);
 *   ALIAS   a view with no code (memplan's views: reshape, and a slice over
 *           leading dims of 1): it shares its operand's buffer (alias_of =
 *           the node that owns the memory, alias_off = the view's byte
 *           offset in it: a chain of views resolves to its root, the
 *           offsets add up); kernels read the root's slot plus the offset,
 *           the runtime fills an alias's slot likewise for its outputs;
 *   KERNEL  one JIT-compiled function
 *               void fn(void *const *slots, int64_t begin, int64_t end);
 *           slots[i] is the buffer of node i (f32 as float, i32 as int32_t,
 *           bool as uint8_t, row-major, dense).  The kernel computes the
 *           part [begin, end) of its parallel range [0, extent): the
 *           runtime splits that range over its threads when `parallel`, and
 *           calls fn(slots, 0, extent) once otherwise (matmuls, which call
 *           cblas_sgemm and thread inside OpenBLAS).
 * Buffers are noalias, and that promise is kept: an output may share
 * memory with an input only where memplan puts it in place (element for
 * element, same shape), and codegen plans memory the same way
 * (pass_memplan_build at this binding), so a body reads such an operand
 * through the output's own pointer and never through a second, noalias
 * one.  (A second pointer let LLVM move a sibling's store above another
 * sibling's load of the same element: tests/lit/codegen/inplace-siblings.gir.)
 * The runtime checks that its plan is the one codegen assumed.
 * Fused nodes (node->body, from the fuse pass) are one kernel each.  Every
 * kernel of a program lives in one LLVM module, cached on disk by the IR
 * text of the graph, the binding and CG_LOWER_VERSION.
 *
 *   CgProgram *p = cg_program_compile(g, binding, NULL, &err);
 *   // runtime: allocate buffers, fill slots[], then for every node i:
 *   //   if (p->nodes[i].kind == CG_KERNEL) p->nodes[i].fn(slots, 0, p->nodes[i].extent);
 *   cg_program_free(p);
 */
#ifndef GRADC_CG_LOWER_H
#define GRADC_CG_LOWER_H

#include "cg.h"

/* Bump when the generated code changes for the same IR (cache key). */
#define CG_LOWER_VERSION 9

typedef enum CgNodeKind { CG_SOURCE, CG_ALIAS, CG_KERNEL } CgNodeKind;

typedef void (*CgKernelFn)(void *const *slots, int64_t begin, int64_t end);

typedef struct CgNodeCode {
    CgNodeKind kind;
    int alias_of;          /* CG_ALIAS: node index whose buffer this is */
    int64_t alias_off;     /* CG_ALIAS: byte offset into that buffer (a contiguous slice) */
    CgKernelFn fn;         /* CG_KERNEL */
    int64_t extent;        /* parallel range [0, extent) */
    bool parallel;         /* the runtime may split [0, extent) over threads */
    int inplace;           /* KERNEL: the operand whose buffer memplan lets it write over
                            * (PassMemPlan.inplace), or -1; its body reads that operand
                            * through its own output pointer (see below) */
    bool noop;             /* a kernel with nothing to do: a sibling (or a member of a
                            * horizontal launch) whose outputs a later kernel writes */
    int64_t numel;         /* elements of the node's value at this binding */
    int64_t bytes;         /* numel * dtype size */
    double flops;          /* estimated floating-point operations */
    char symbol[48];       /* kernel function name in the module */
} CgNodeCode;

typedef struct CgOptions {
    bool no_cache;         /* compile even when the object is cached */
    bool keep_module;      /* keep LLVM IR / asm text for dumps (llvm_ir, asm) */
    bool own_buffers;      /* every node gets a buffer of its own (a harness that reads
                            * every node's value after the run): no kernel reads an
                            * operand through its output's pointer, and the runtime,
                            * which plans in place, refuses the program */
} CgOptions;

typedef struct CgProgram {
    const IrGraph *graph;  /* not owned; must outlive the program */
    int64_t binding[IR_MAX_SYMS];
    int nnodes;
    CgNodeCode *nodes;     /* indexed like graph->nodes */
    CgJit *jit;
    CgStats stats;         /* cache hit, opt/codegen ms; total_ms: all of cg_program_compile */
    char *llvm_ir;         /* with keep_module: optimized LLVM IR (malloc'd) */
    char *asm_text;        /* with keep_module: machine code (malloc'd) */
    double lower_ms;       /* building the LLVM IR (0 on a cache hit) */
    double link_ms;        /* looking up every kernel (links the object) */
    int nkernels;          /* nodes of kind CG_KERNEL that do work (not noop): the launches */
} CgProgram;

/* Compiles every node of g (in g->nodes order, node->index == position)
 * at the binding (binding[i] is the value of symbol i; may be NULL for a
 * graph without symbols).  opt may be NULL.  Returns NULL and fills err
 * on a bad binding, an op without a lowering ("no lowering for op X"), or
 * an LLVM failure; nothing is printed. */
CgProgram *cg_program_compile(const IrGraph *g, const int64_t *binding,
                              const CgOptions *opt, IrError *err);
void cg_program_free(CgProgram *p);

/* True if op has a lowering (ops added to ops.def later may not). */
bool cg_op_lowered(IrOp op);

#endif
