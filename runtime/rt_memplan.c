/* rt_memplan.c — the executor's arena plan: memplan's, checked against codegen.
 *
 * gradc has one memory planner, passes/memplan.c (pass_memplan_build): the
 * `memplan` pass prints its plan into the IR, `gradc plan` reports it, and
 * the executor lays out its arena with it, at the executor's binding.  So
 * the lifetimes, the in-place rule (elementwise kernels over an operand that
 * dies there, scatter_add over its base), the write-back of updates straight
 * into their param's or state's buffer and the best-fit placement are
 * written down once, in that file, and docs/passes.md (memplan).
 *
 * When the graph carries memplan's `offset` attributes (a graph planned by
 * `gradc dump --stage=sched`, say) and they are valid at this binding, the
 * executor uses them as they are; otherwise it plans afresh.
 *
 * What this file adds is the check that codegen and the planner agree on
 * what each node is: a source (input, param), an alias (a reshape, sharing
 * an earlier node's buffer) or a kernel, and on its size.  A disagreement
 * is a bug in gradc, reported as an internal error rather than a corrupt
 * arena.
 */
#include "rt_exec.h"

#include <string.h>

_Static_assert(RT_ALIGN == PASS_MEM_ALIGN, "the runtime and memplan align buffers alike");

static bool agree(const IrGraph *g, const CgProgram *p, int i, IrError *err)
{
    static const CgNodeKind kind[] = {[PM_SOURCE] = CG_SOURCE, [PM_VIEW] = CG_ALIAS,
                                      [PM_KERNEL] = CG_KERNEL};
    const CgNodeCode *c = &p->nodes[i];
    const IrNode *n = g->nodes[i];
    if (c->kind == CG_ALIAS && (c->alias_of < 0 || c->alias_of >= i)) {
        ir_error(err, "internal: node %d aliases node %d, which is not an earlier node", i,
                 c->alias_of);
        return false;
    }
    if (c->kind == kind[pass_mem_kind(n)] &&
        (c->kind != CG_KERNEL || (c->bytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN ==
                                 pass_mem_bytes(n, p->binding)))
        return true;
    ir_error(err, "internal: codegen and memplan disagree on node %d (%s): kind %d, %lld bytes",
             i, ir_op_name(n->op), (int)c->kind, (long long)c->bytes);
    return false;
}

/* Codegen read every in-place operand through its output's pointer
 * (cg_lower.h): the plan must put the same outputs over the same operands. */
static bool same_inplace(const IrGraph *g, const CgProgram *p, const RtMemPlan *plan,
                         IrError *err)
{
    for (int i = 0; i < p->nnodes; i++) {
        if (p->nodes[i].kind != CG_KERNEL || p->nodes[i].inplace == plan->inplace[i])
            continue;
        ir_error(err, "internal: node %d (%s): codegen assumed it in place of operand %d, "
                 "the memory plan says %d", i, ir_op_name(g->nodes[i]->op),
                 p->nodes[i].inplace, plan->inplace[i]);
        return false;
    }
    return true;
}

bool rt_memplan(const IrGraph *g, const CgProgram *p, const bool *pinned,
                RtMemPlan *plan, IrError *err)
{
    IR_ASSERT(g->nnodes == p->nnodes);
    memset(plan, 0, sizeof *plan);
    for (int i = 0; i < p->nnodes; i++)
        if (!agree(g, p, i, err))
            return false;
    PassMemOpts o = {.pinned = pinned, .use_offsets = true};
    if (pass_memplan_build(g, p->binding, &o, plan, err) && same_inplace(g, p, plan, err))
        return true;
    rt_memplan_free(plan);
    return false;
}

void rt_memplan_free(RtMemPlan *plan)
{
    pass_memplan_free(plan);
}

int rt_sibling_end(const IrGraph *g, int i)
{
    int first, end;
    pass_sibling_run(g, i, &first, &end);
    return end;
}

bool rt_memplan_overlap_in_time(const RtMemPlan *plan, int a, int b)
{
    return pass_memplan_overlap_in_time(plan, a, b);
}
