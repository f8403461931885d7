#!/usr/bin/env bash
# Bounded libFuzzer runs of every harness in tests/fuzz/fuzz_*.c: the JSON
# frontend, the IR text parser, the safetensors reader and what a checkpoint
# load does next, the BPE loader, the tokenizers' input, the data loader and
# the classification file reader (fuzz_cls).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default 60 per target, all targets
# Builds with clang into build-fuzz/, ASan and UBSan on: undefined behaviour
# aborts, so that the fuzzer keeps it as a crash, and so does an allocation
# past 256 MB (no input of max_len bytes may size one).  A crash is saved
# under tests/fuzz/regress/ as TARGET-crash-... (where
# tests/scripts/fuzz_regress.sh replays it on every test run) and makes this
# script fail.  The last lines of each log (build-fuzz/TARGET.log) give the
# number of executions.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
CC=clang scripts/build.sh build-fuzz -DGRADC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
mkdir -p tests/fuzz/regress
# name:seeds:max_len[:extra flags]
targets=(fuzz_frontend:corpus_json:8192
         fuzz_ir_parse:corpus_ir:8192:-dict=tests/fuzz/fuzz_ir_parse.dict
         fuzz_ckpt:corpus_ckpt:65536:-dict=tests/fuzz/fuzz_ckpt.dict
         fuzz_bpe:corpus_bpe:16384
         fuzz_tokenize:corpus_tokenize:8192
         fuzz_data:corpus_data:8192
         fuzz_cls:corpus_cls:8192)
status=0
for target in "${targets[@]}"; do
  IFS=: read -r name seeds maxlen extra <<<"$target"
  if [[ $# -gt 0 && " $* " != *" $name "* ]]; then continue; fi
  work=build-fuzz/corpus-$name
  art=build-fuzz/artifacts-$name
  mkdir -p "$work" "$art"
  echo "fuzz: $name for ${secs}s"
  # shellcheck disable=SC2086
  if ! build-fuzz/$name -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
       -rss_limit_mb=2048 -malloc_limit_mb=256 $extra -artifact_prefix="$art/" \
       "$work" "tests/fuzz/$seeds" >"build-fuzz/$name.log" 2>&1; then
    echo "fuzz: $name found a crash; see build-fuzz/$name.log" >&2
    for f in "$art"/*; do
      [[ -e $f ]] && cp "$f" "tests/fuzz/regress/$name-$(basename "$f")"
    done
    status=1
  fi
  tail -n 2 "build-fuzz/$name.log"
done
exit $status
