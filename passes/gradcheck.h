/* gradcheck.h — autodiff checked against finite differences, in the interpreter.
 *
 * gc_check_model differentiates a model graph (pass_autodiff) and compares,
 * for every trainable param, the autodiff gradient with central finite
 * differences of the loss, both evaluated by the reference interpreter in
 * double precision.  Large params are checked on sampled elements.  When a
 * param fails, the rules of the ops between it and the loss are checked
 * one op at a time (gc_check_node) to name the op whose rule is wrong.
 *
 *   GcOptions o = gc_options_default();
 *   o.binding = (int64_t[]){2, 8};            // B, T in the graph's symbol order
 *   GcReport r;
 *   IrError err = {0};
 *   if (!gc_check_model(g, &o, &r, &err)) { ir_error_print(&err, stderr); ... }
 *   printf("%d params failed; %s\n", r.failed, r.suspect);
 *   gc_report_free(&r);
 *
 * The error of one element is |ad - fd| / max(|ad|, |fd|, floor): relative,
 * except that magnitudes below `floor` count as `floor`, so that gradients
 * that are zero up to rounding are compared absolutely (docs/autodiff.md).
 */
#ifndef GRADC_GRADCHECK_H
#define GRADC_GRADCHECK_H

#include "passes/pass.h"

typedef struct GcOptions {
    const int64_t *binding; /* value of each symbol of the graph, in its order */
    uint64_t seed;          /* inputs, param values and the sampled elements */
    double tol;             /* largest error allowed (1e-6) */
    double h;               /* finite-difference step, times max(1, |x|) */
    double floor;           /* magnitudes below it count as it */
    int samples;            /* elements checked per tensor; all when it has no more */
    int jobs;               /* threads for the finite differences; 0: one per CPU, up to 8 */
    PassTrainOpts train;    /* freeze globs, ignore_index, logits name, broken_rule */
    FILE *log;              /* a line per param as it is checked; NULL: quiet */
} GcOptions;

typedef struct GcParam {
    const char *name;       /* malloc'd */
    int64_t numel;
    int checked;            /* elements compared */
    double worst;           /* worst error */
    int64_t at;             /* the element of the worst error */
    double ad, fd;          /* autodiff and finite difference there */
    int restepped;          /* elements stepped again: a kink lay within the step */
    int skipped;            /* elements left out: the kink stayed within the smallest step */
    char kink[128];         /* the op of such a kink, e.g. "relu 'act'" */
} GcParam;

typedef struct GcReport {
    GcParam *params;        /* the trainable params, in graph order */
    int nparams;
    double loss;            /* at the checked point */
    int failed;             /* params whose worst error exceeds tol */
    int worst;              /* index of the param with the largest error */
    char suspect[512];      /* when failed: the op most likely at fault, in words */
} GcReport;

GcOptions gc_options_default(void);
/* False (with err) only when the check could not run; failed params are
 * reported in r->failed. */
bool gc_check_model(const IrGraph *g, const GcOptions *o, GcReport *r, IrError *err);
void gc_report_free(GcReport *r);

/* The rule of node n of g on its own: a graph holding n alone, its float
 * operands as params with values vals[j] (NULL or vals[j] NULL: normal
 * random), integer operands as inputs (vals[j] required), and loss =
 * sum(n * R) for a random R.  Returns the worst error over the sampled
 * elements of the float operands (0 when n has none), or -1 with err. */
double gc_check_node(const IrGraph *g, const IrNode *n, const int64_t *binding,
                     const IrTensor *const *vals, const GcOptions *o, IrError *err);
/* The same for the operands whose bit is set in wrt (bit j: operand j). */
double gc_check_node_wrt(const IrGraph *g, const IrNode *n, unsigned wrt, const int64_t *binding,
                         const IrTensor *const *vals, const GcOptions *o, IrError *err);

#endif
