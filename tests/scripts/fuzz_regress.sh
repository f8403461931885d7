#!/usr/bin/env bash
# Replays every input the fuzzers ever crashed on (tests/fuzz/regress/TARGET-*)
# and the seed corpora (tests/fuzz/corpus_*), two ways:
#   - through the harness itself: BUILD/replay_TARGET, built next to gradc
#     from the same tests/fuzz/TARGET.c (CMakeLists.txt), must exit 0;
#   - through the CLI: gradc must exit 0 or 1, never die by a signal or
#     report an internal error (2).
# Every run must finish within 20 s (a hang is a failure too: timeout's 124).
#   usage: fuzz_regress.sh GRADC SOURCE_ROOT
set -u
gradc=$1 root=$2
bindir=$(cd "$(dirname "$gradc")" && pwd)
cd "$root" || exit 1
fail=0 n=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cli() {  # cli FILE ARGS...: gradc ARGS exits 0 or 1 (FILE names the input in messages)
  local f=$1 rc; shift
  timeout 20 "$gradc" "$@" >/dev/null 2>&1
  rc=$?
  n=$((n + 1))
  if [[ $rc -ne 0 && $rc -ne 1 ]]; then
    echo "FAIL: gradc $* ($f) exited $rc" >&2
    fail=1
  fi
}
harness() {  # harness TARGET FILE: the harness runs it without a finding
  local rc
  if [[ ! -x $bindir/replay_$1 ]]; then
    echo "FAIL: $bindir/replay_$1 is not built" >&2; fail=1; return
  fi
  timeout 20 "$bindir/replay_$1" "$2" >/dev/null 2>"$tmp/err"
  rc=$?
  n=$((n + 1))
  if [[ $rc -ne 0 ]]; then
    echo "FAIL: replay_$1 $2 exited $rc: $(tail -c 600 "$tmp/err")" >&2
    fail=1
  fi
}
# split_bpe FILE DIR: fuzz_bpe's input format, vocab.bpe "@@encoder.json@@\n" encoder.json
split_bpe() {
  local at
  at=$(grep -aboF '@@encoder.json@@' "$1" | head -n 1 | cut -d: -f1)
  mkdir -p "$2"
  if [[ -n $at ]]; then
    head -c "$at" "$1" >"$2/vocab.bpe"
    tail -c +$((at + 18)) "$1" >"$2/encoder.json"
  else
    cp "$1" "$2/vocab.bpe"
    : >"$2/encoder.json"
  fi
}
shopt -s nullglob
for f in tests/fuzz/regress/fuzz_frontend-* tests/fuzz/corpus_json/*; do
  cli "$f" check "$f"
  harness fuzz_frontend "$f"
done
for f in tests/fuzz/regress/fuzz_ir_parse-* tests/fuzz/corpus_ir/*; do
  cp "$f" "$tmp/in.gir"; cli "$f" opt "$tmp/in.gir"
  harness fuzz_ir_parse "$f"
done
for f in tests/fuzz/regress/fuzz_ckpt-* tests/fuzz/corpus_ckpt/*; do
  cli "$f" generate "$f" --prompt "a b" --max-new 2 --bpe-dir tests/fuzz/bpe-mini
  harness fuzz_ckpt "$f"
done
for f in tests/fuzz/regress/fuzz_bpe-* tests/fuzz/corpus_bpe/*; do
  rm -rf "$tmp/bpe"; split_bpe "$f" "$tmp/bpe"
  cli "$f" tokenize --bpe-dir "$tmp/bpe" tests/fuzz/corpus_tokenize/english
  harness fuzz_bpe "$f"
done
for f in tests/fuzz/regress/fuzz_tokenize-* tests/fuzz/corpus_tokenize/*; do
  cli "$f" tokenize --bpe-dir tests/fuzz/bpe-mini "$f"
  cli "$f" tokenize --bpe-dir tests/fuzz/bpe-mini --special "$f"
  cli "$f" tokenize --tokenizer char "$f"
  harness fuzz_tokenize "$f"
done
for f in tests/fuzz/regress/fuzz_data-* tests/fuzz/corpus_data/*; do
  cli "$f" tokenize --tokenizer char "$f"
  harness fuzz_data "$f"
done
for f in tests/fuzz/regress/fuzz_cls-* tests/fuzz/corpus_cls/*; do
  harness fuzz_cls "$f"
done
echo "replayed $n inputs"
[[ $n -gt 0 ]] || { echo "FAIL: no inputs found" >&2; exit 1; }
exit $fail
