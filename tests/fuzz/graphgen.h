/* graphgen.h — the differential random-graph tester (docs/testing.md).
 *
 * graphgen draws random well-typed graphs from the op table, runs each one
 * through `gradc verify` (the default pipeline, JIT-compiled, against the
 * reference interpreter on the unoptimized graph) as a forward pass and as
 * a train step, and shrinks any failure to a small .gir reproducer that
 * `gradc verify FILE.gir ...` replays in one command.
 *
 * Sections follow the files:
 *   graphgen_gen.c     the generator: IR builder calls, shapes, numerics
 *   graphgen_check.c   one verify run in a child process, its outcome
 *   graphgen_shrink.c  delta debugging of a failing case
 *   graphgen_known.c   whether a failure is one of the open bugs
 *   graphgen.c         options, the main loop, replay, reproducer files
 */
#ifndef GRADC_GRAPHGEN_H
#define GRADC_GRAPHGEN_H

#include "ir/ir.h"

#include <stdbool.h>
#include <stdint.h>

/* ---------------------------------------------------------------- graphgen_gen.c */

/* The binding of B and T a generated graph runs at (unused when the graph
 * has no symbols). */
typedef struct GgBinding {
    int64_t batch, seq;
} GgBinding;

/* How often each op of the table appeared in generated graphs. */
typedef struct GgCoverage {
    long count[OP_COUNT];
} GgCoverage;

/* Patterns of open bugs (tests/fuzz/graphgen_open/README.md) that the
 * generator keeps clear of, so that a run finds new bugs; --open draws
 * them too.  Drop a flag when its bug is fixed. */
enum {
    GG_AVOID_SOURCE_OUTPUTS = 2, /* runtime: an output that is a written-back source */
    GG_AVOID_ALL = 2
};

/* A random graph from `seed`: inputs, params (some shared, some frozen),
 * 6-36 op steps, outputs y0.., and a scalar output "loss" that depends on
 * a trainable param, so that autodiff can make a train step of it.  *b
 * receives the binding it was sized for.  `avoid`: GG_AVOID_* flags.
 * Counts its ops into cov (may be NULL). */
IrGraph *gg_generate(uint64_t seed, unsigned avoid, GgBinding *b, GgCoverage *cov);
void gg_cover(const IrGraph *g, GgCoverage *cov);
/* A source, or a view of one (reshape, slice): its buffer is the source's,
 * which a train step (or a state output) overwrites. */
bool gg_source_view(const IrNode *n);

/* ---------------------------------------------------------------- graphgen_check.c */

/* The flags of one verify run besides the file. */
typedef struct GgRun {
    GgBinding bind;
    long long seed;      /* --seed: params and inputs */
    int threads;         /* --threads */
    bool train;          /* --train */
} GgRun;

typedef enum GgKind {
    GG_PASS,        /* every output within the tolerance */
    GG_MISMATCH,    /* verify's worst error above 1e-4 */
    GG_ERROR,       /* exit 1 without a comparison: a user error on a valid graph */
    GG_INTERNAL,    /* exit 2: a pass broke the verifier's invariants, or alike */
    GG_CRASH,       /* killed by a signal (an abort, a segfault, a sanitizer) */
    GG_TIMEOUT,     /* ran past the time limit */
    GG_NKIND
} GgKind;

typedef struct GgOutcome {
    GgKind kind;
    char what[256];      /* the worst-error line, the first error line, the signal */
} GgOutcome;

extern const char *const gg_kind_names[GG_NKIND];

/* Runs `gradc verify PATH flags...` in a child process (cmd_verify, in
 * process after fork) with its output in LOG; never returns on the
 * child's side.  timeout_s bounds the child's wall time. */
GgOutcome gg_check(const char *path, const GgRun *run, const char *log, int timeout_s);
/* The verify command line of a run, for messages: "verify PATH --batch .." */
void gg_command(const char *gradc, const char *path, const GgRun *run, char *buf, size_t cap);
/* Two failures count as the same bug when they have the same kind, for a
 * mismatch the same worst output, and for errors and crashes the same
 * message up to numbers (node ids change while shrinking). */
bool gg_same_failure(const GgOutcome *a, const GgOutcome *b);

/* ---------------------------------------------------------------- graphgen_known.c */

/* The open bug (tests/fuzz/graphgen_open/README.md) that explains this
 * failure of (g, run): "source-output"; or
 * NULL for a new one. */
const char *gg_known_bug(const IrGraph *g, const GgRun *run, const GgOutcome *out);

/* ---------------------------------------------------------------- graphgen_shrink.c */

typedef struct GgShrinkLimits {
    int max_checks;      /* verify runs at most */
    double max_seconds;
    int timeout_s;       /* of each run */
    unsigned avoid;      /* GG_AVOID_*: candidates keep clear of these too */
    bool no_known;       /* refuse candidates whose failure is a known open bug */
} GgShrinkLimits;

/* Shrinks (g, *run), which fails with `fail`, to a smaller graph that
 * fails the same way: drops outputs, replaces nodes by inputs of their
 * type or by an operand of their type, removes what no output reads,
 * lowers the binding and the threads, and tries the forward run for a
 * failing train step.  Candidates are written to DIR/cand.gir.  Returns
 * the smallest failing graph (a new graph; *run is updated) and the
 * number of verify runs in *checks. */
IrGraph *gg_shrink(const IrGraph *g, GgRun *run, const GgOutcome *fail, const char *dir,
                   const GgShrinkLimits *lim, int *checks);
/* Removes every node that no output reads, inputs and params included. */
void gg_prune(IrGraph *g);
/* Writes g as IR text to path; false on an I/O error. */
bool gg_write(const IrGraph *g, const char *path, const char *header);

#endif
