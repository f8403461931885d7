#!/usr/bin/env bash
# The differential random-graph tester (docs/testing.md): replays the corpus of
# fixed bugs (tests/fuzz/graphgen_corpus/, every run must pass), then checks
# random graphs, forward and as train steps, through gradc verify.  In the
# test suite the random graphs are a fixed set (seed 1, the first
# GRADC_GRAPHGEN_COUNT graphs), so that the suite is a regression test that
# passes or fails the same way on every run; exploring fresh seeds is asked for
# with GRADC_GRAPHGEN_SEED=random (and GRADC_GRAPHGEN_SECS).  A failure is
# shrunk to a reproducer in BUILD/graphgen-out/ (printed, with the command that
# replays it) and fails the test; the open bugs of tests/fuzz/graphgen_open/
# are reported, not failed.
#   usage: graphgen.sh GRADC SOURCE_ROOT
#   GRADC_GRAPHGEN_COUNT=N  graphs of the fixed set (default 60; the sanitizer
#                           build's ctest sets GRADC_GRAPHGEN_DEFAULT_COUNT=15)
#   GRADC_GRAPHGEN_SEED=S   another seed; `random` draws one from /dev/urandom
#                           (printed) and runs for GRADC_GRAPHGEN_SECS seconds
#                           (default 60) instead of a count
set -u
gradc=$1 root=$2
bin=$(dirname "$gradc")/graphgen
if [[ ! -x $bin ]]; then
    echo "skip: $bin is not built"
    exit 77
fi
count=${GRADC_GRAPHGEN_COUNT:-${GRADC_GRAPHGEN_DEFAULT_COUNT:-60}}
seed=${GRADC_GRAPHGEN_SEED:-1}
limit=(--count "$count")
if [[ $seed == random ]]; then
    seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    limit=(--seconds "${GRADC_GRAPHGEN_SECS:-60}")
fi
export GRADC_CACHE_DIR
GRADC_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$GRADC_CACHE_DIR"' EXIT

"$bin" --replay "$root/tests/fuzz/graphgen_corpus" || exit 1
[[ $count == 0 ]] && exit 0
out=$(dirname "$gradc")/graphgen-out
echo "graphgen: seed $seed, ${limit[*]} (rerun: GRADC_GRAPHGEN_SEED=$seed)"
if ! "$bin" --seed "$seed" "${limit[@]}" --out "$out"; then
    for f in "$out"/graphgen-"$seed"-*.gir; do
        [[ $f == *-orig.gir ]] || { echo "== $f"; cat "$f"; }
    done
    exit 1
fi
