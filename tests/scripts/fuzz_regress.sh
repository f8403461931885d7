#!/usr/bin/env bash
# Replays every input the fuzzers ever crashed on (tests/fuzz/regress/) and
# the seed corpora through the CLI: gradc must exit 0 or 1, never die by a
# signal or report an internal error (2), and must finish within 20 s (a
# hang is a failure too: timeout's 124).
#   usage: fuzz_regress.sh GRADC SOURCE_ROOT
set -u
gradc=$1 root=$2
fail=0 n=0
check() {  # $1 = file, $2 = subcommand
  timeout 20 "$gradc" "$2" "$1" >/dev/null 2>&1
  rc=$?
  n=$((n + 1))
  if [[ $rc -ne 0 && $rc -ne 1 ]]; then
    echo "FAIL: gradc $2 $1 exited $rc" >&2
    fail=1
  fi
}
shopt -s nullglob
for f in "$root"/tests/fuzz/regress/fuzz_frontend-* "$root"/tests/fuzz/corpus_json/*; do
  check "$f" check
done
for f in "$root"/tests/fuzz/regress/fuzz_ir_parse-* "$root"/tests/fuzz/corpus_ir/*; do
  tmp=$(mktemp --suffix=.gir); cp "$f" "$tmp"; check "$tmp" opt; rm -f "$tmp"
done
echo "replayed $n inputs"
[[ $n -gt 0 ]] || { echo "FAIL: no inputs found" >&2; exit 1; }
exit $fail
