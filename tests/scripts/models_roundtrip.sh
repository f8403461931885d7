#!/usr/bin/env bash
# Every model in models/ verifies and its IR round-trips byte for byte at
# every printable stage: dump > a.gir; gradc opt a.gir > b.gir; cmp.  The
# gpt2-small acceptance check of the foundation issue is the first case.
#   usage: models_roundtrip.sh GRADC SOURCE_ROOT
set -euo pipefail
gradc=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for model in "$root"/models/*.json; do
  name=$(basename "$model" .json)
  "$gradc" check "$model" >/dev/null
  for stage in graph opt kernels grad; do
    sets=()
    # the train-step graph of the full GPT-2 vocabulary is large: shrink it
    [[ $stage == grad ]] && sets=(--set n_layers=2)
    "$gradc" dump "$model" "${sets[@]}" --stage=$stage -o "$tmp/a.gir"
    "$gradc" opt "$tmp/a.gir" -o "$tmp/b.gir"
    if ! cmp -s "$tmp/a.gir" "$tmp/b.gir"; then
      echo "FAIL: $name --stage=$stage does not round-trip:" >&2
      diff "$tmp/a.gir" "$tmp/b.gir" | head -5 >&2
      exit 1
    fi
    n=$((n + 1))
  done
done
echo "ok: $n dumps round-trip byte for byte"
