#!/usr/bin/env bash
# The differential random-graph tester (docs/testing.md): replays the corpus of
# fixed bugs (tests/fuzz/graphgen_corpus/, every run must pass), then checks
# random graphs for a bounded time with a fresh seed (printed), forward and as
# train steps, through gradc verify.  A new failure is shrunk to a reproducer
# in BUILD/graphgen-out/ (printed, with the command that replays it) and fails
# the test; the open bugs of tests/fuzz/graphgen_open/ are reported, not failed.
#   usage: graphgen.sh GRADC SOURCE_ROOT
#   GRADC_GRAPHGEN_SECS=N   seconds of random graphs (default 60; the sanitizer
#                           build's ctest sets GRADC_GRAPHGEN_DEFAULT_SECS=20)
#   GRADC_GRAPHGEN_SEED=S   the seed (default: from /dev/urandom)
set -u
gradc=$1 root=$2
bin=$(dirname "$gradc")/graphgen
if [[ ! -x $bin ]]; then
    echo "skip: $bin is not built"
    exit 77
fi
secs=${GRADC_GRAPHGEN_SECS:-${GRADC_GRAPHGEN_DEFAULT_SECS:-60}}
seed=${GRADC_GRAPHGEN_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
export GRADC_CACHE_DIR
GRADC_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$GRADC_CACHE_DIR"' EXIT

"$bin" --replay "$root/tests/fuzz/graphgen_corpus" || exit 1
[[ $secs == 0 ]] && exit 0
out=$(dirname "$gradc")/graphgen-out
echo "graphgen: seed $seed for ${secs}s (rerun: GRADC_GRAPHGEN_SEED=$seed)"
if ! "$bin" --seed "$seed" --seconds "$secs" --out "$out"; then
    for f in "$out"/graphgen-"$seed"-*.gir; do
        [[ $f == *-orig.gir ]] || { echo "== $f"; cat "$f"; }
    done
    exit 1
fi
