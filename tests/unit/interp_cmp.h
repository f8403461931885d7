/* interp_cmp.h — what the pass tests (test_fuse.c, test_simplify.c) share to
 * check that a pass keeps a graph's values: seeded uniforms per input name,
 * and an output-by-output comparison of two interpreter runs.
 *
 *   uint64_t s = cmp_name_seed(n->name);  double u = cmp_unif(&s);
 *   CHECK(cmp_diff_output(before, after, "logits", "fuse gpt-mini", 1e-12) == 0);
 */
#ifndef GRADC_INTERP_CMP_H
#define GRADC_INTERP_CMP_H

#include "ir/ir.h"
#include "ir/rng.h"

#include <math.h>
#include <stdio.h>

/* FNV-1a of the name: each input draws its own stream. */
static inline uint64_t cmp_name_seed(const char *name)
{
    uint64_t s = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        s = (s ^ (unsigned char)*p) * 1099511628211ull;
    return s;
}

/* The next uniform in [0, 1) of the stream s (splitmix64, top 53 bits). */
static inline double cmp_unif(uint64_t *s)
{
    *s = ir_splitmix64(*s);
    return (double)(*s >> 11) * 0x1p-53;
}

static inline bool cmp_close(double a, double b, double rel_tol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b || fabs(a - b) <= rel_tol * fmax(fabs(a), fabs(b));
}

/* Elements of output `name` that differ between runs a (before the pass) and
 * b (after); 1 when it is missing or resized.  The first is printed. */
static inline int64_t cmp_diff_output(IrInterp *a, IrInterp *b, const char *name,
                                      const char *what, double rel_tol)
{
    const IrTensor *ta = ir_interp_output(a, name), *tb = ir_interp_output(b, name);
    if (!ta || !tb || ta->numel != tb->numel) {
        fprintf(stderr, "%s: output %s missing or resized\n", what, name);
        return 1;
    }
    int64_t bad = 0;
    for (int64_t k = 0; k < ta->numel; k++)
        if (!cmp_close(ta->data[k], tb->data[k], rel_tol) && bad++ == 0)
            fprintf(stderr, "%s: %s[%lld] = %.17g before, %.17g after\n", what, name,
                    (long long)k, ta->data[k], tb->data[k]);
    return bad;
}

#endif
