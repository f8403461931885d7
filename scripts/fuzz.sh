#!/usr/bin/env bash
# Bounded libFuzzer runs of the JSON frontend and the IR text parser.
#   scripts/fuzz.sh [SECONDS]     default 60 per target
# Builds with clang into build-fuzz/.  A crash is saved under
# tests/fuzz/regress/ (where tests/scripts/fuzz_regress.sh replays it on
# every test run) and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
CC=clang scripts/build.sh build-fuzz -DGRADC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
mkdir -p tests/fuzz/regress build-fuzz/artifacts
status=0
for target in fuzz_frontend:corpus_json fuzz_ir_parse:corpus_ir; do
  bin=build-fuzz/${target%%:*}
  seeds=tests/fuzz/${target##*:}
  work=build-fuzz/corpus-${target%%:*}
  mkdir -p "$work"
  echo "fuzz: ${target%%:*} for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix=build-fuzz/artifacts/ "$work" "$seeds" >build-fuzz/${target%%:*}.log 2>&1; then
    echo "fuzz: ${target%%:*} found a crash; see build-fuzz/${target%%:*}.log" >&2
    for f in build-fuzz/artifacts/*; do
      [[ -e $f ]] && cp "$f" "tests/fuzz/regress/${target%%:*}-$(basename "$f")"
    done
    status=1
  fi
  tail -n 2 build-fuzz/${target%%:*}.log
done
exit $status
