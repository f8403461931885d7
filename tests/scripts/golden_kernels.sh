#!/usr/bin/env bash
# golden_kernels.sh — the fused kernels of models/gpt-mini.json, checked in.
#
# `gradc dump models/gpt-mini.json --stage=kernels` (the forward graph after
# the default pipeline: decompose, simplify, cse, dce, fuse) must print
# tests/golden/gpt-mini.kernels.gir byte for byte, so that any change in
# what fuses (or in the passes before it) shows up in review as a diff of
# that file.  The golden file must also round-trip through `gradc opt`.
#
# When a change in fusion is intended, regenerate the file and commit it
# with the change:
#     GRADC_UPDATE_GOLDEN=1 bash tests/scripts/golden_kernels.sh build/gradc .
#
# usage: bash tests/scripts/golden_kernels.sh GRADC_BINARY SOURCE_ROOT
set -u
gradc=${1:?usage: golden_kernels.sh GRADC_BINARY SOURCE_ROOT}
root=${2:?usage: golden_kernels.sh GRADC_BINARY SOURCE_ROOT}
model="$root/models/gpt-mini.json"
golden="$root/tests/golden/gpt-mini.kernels.gir"
[ -x "$gradc" ] || { echo "gradc binary not found: $gradc"; exit 1; }
[ -r "$model" ] || { echo "cannot read $model"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$gradc" dump "$model" --stage=kernels -o "$tmp/now.gir" 2> "$tmp/err"; then
    echo "FAIL: gradc dump --stage=kernels failed:"
    sed 's/^/    /' "$tmp/err"
    exit 1
fi
if [ "${GRADC_UPDATE_GOLDEN:-0}" = 1 ]; then
    cp "$tmp/now.gir" "$golden"
    echo "updated $golden ($(wc -l < "$golden") lines)"
    exit 0
fi
[ -r "$golden" ] || { echo "FAIL: no golden file $golden (GRADC_UPDATE_GOLDEN=1 makes it)"; exit 1; }
if ! cmp -s "$golden" "$tmp/now.gir"; then
    echo "FAIL: the kernels of gpt-mini changed (diff: golden, now); if intended, run"
    echo "    GRADC_UPDATE_GOLDEN=1 bash tests/scripts/golden_kernels.sh GRADC_BINARY SOURCE_ROOT"
    diff "$golden" "$tmp/now.gir" | head -60 | sed 's/^/    /'
    exit 1
fi
if ! "$gradc" opt "$golden" > "$tmp/again.gir" 2> "$tmp/err" || ! cmp -s "$golden" "$tmp/again.gir"; then
    echo "FAIL: the golden kernels do not round-trip through gradc opt"
    sed 's/^/    /' "$tmp/err"
    exit 1
fi
echo "ok: gpt-mini kernels match $golden ($(grep -c ' = fused ' "$golden") fused nodes)"
