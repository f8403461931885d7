#!/usr/bin/env bash
# The test command of the README: installs what is missing, checks that every
# #include follows the layering (tests/scripts/layering.sh) and that no line
# is over 100 columns and no function over 80 lines (tests/scripts/lint.sh),
# builds, and runs
# every test (C unit tests, lit/FileCheck pass tests, script tests) in a
# normal build and in an AddressSanitizer + UBSan build, then a bounded
# fuzzing run of every harness (the parsers, checkpoint, BPE, tokenizer and
# data readers: scripts/fuzz.sh).
#   GRADC_SKIP_ASAN=1   skip the sanitizer build
#   GRADC_FUZZ_SECS=N   seconds per fuzz target (default 10: a smoke run that
#                       keeps CI's two cores well under 30 minutes; 0 skips;
#                       scripts/fuzz.sh 120 for a real search)
# A stage skipped so is named in the last line, as ctest names its skipped
# tests: a skip is not a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
skipped=()

scripts/deps.sh

echo "== layering and lint"
bash tests/scripts/layering.sh
bash tests/scripts/lint.sh
echo "== build (RelWithDebInfo)"
scripts/build.sh build
echo "== tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"

if [[ ${GRADC_SKIP_ASAN:-0} != 1 ]]; then
  echo "== build (ASan + UBSan)"
  scripts/build.sh build-asan -DGRADC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  echo "== tests under ASan + UBSan (without the minutes-long numerical checks, label 'heavy')"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -LE heavy
else
  skipped+=("the sanitizer build (GRADC_SKIP_ASAN=1)")
fi

secs=${GRADC_FUZZ_SECS:-10}
if [[ $secs == 0 ]]; then
  echo "== fuzzing: SKIPPED (GRADC_FUZZ_SECS=0)"
  skipped+=("fuzzing (GRADC_FUZZ_SECS=0)")
elif ! command -v clang >/dev/null 2>&1; then
  echo "== fuzzing: SKIPPED (libFuzzer needs clang, which is not installed)"
  skipped+=("fuzzing (no clang)")
else
  echo "== fuzzing (${secs}s per target)"
  scripts/fuzz.sh "$secs"
fi
if (( ${#skipped[@]} )); then
  echo "== the tests that ran passed; skipped: $(IFS=';'; echo "${skipped[*]}" | sed 's/;/, /g')"
else
  echo "== all tests passed"
fi
