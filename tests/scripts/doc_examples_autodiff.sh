#!/usr/bin/env bash
# doc_examples_autodiff.sh — the examples of docs/autodiff.md are real output.
#
# Every fenced block tagged `gir passes=LIST` must be exactly what
# `gradc opt FILE --passes=LIST` prints for the `gir` block just before it.
#
# usage: bash tests/scripts/doc_examples_autodiff.sh GRADC_BINARY SOURCE_ROOT
set -u
gradc=${1:?usage: doc_examples_autodiff.sh GRADC_BINARY SOURCE_ROOT}
root=${2:?usage: doc_examples_autodiff.sh GRADC_BINARY SOURCE_ROOT}
doc="$root/docs/autodiff.md"
[ -r "$doc" ] || { echo "cannot read $doc"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# in-NN.gir: a `gir` block; out-NN.gir + out-NN.passes: the `gir passes=` block after it.
awk -v dir="$tmp" '
    /^```gir[ \t]*$/          { n++; f = sprintf("%s/in-%02d.gir", dir, n); printf "" > f; inb = 1; next }
    /^```gir passes=[a-z,]+$/ { f = sprintf("%s/out-%02d.gir", dir, n); printf "" > f
                                sub(/^```gir passes=/, ""); print > (f ".passes"); inb = 1; next }
    /^```/ && inb             { inb = 0; close(f); next }
    inb                       { print > f }
' "$doc"

total=0
failed=0
for out in "$tmp"/out-*.gir; do
    [ -e "$out" ] || break
    total=$((total + 1))
    in=${out/out-/in-}
    passes=$(cat "$out.passes")
    if ! "$gradc" opt "$in" --passes="$passes" > "$out.got" 2>&1; then
        echo "FAIL: gradc opt --passes=$passes rejects example $(basename "$in"):"
        cat "$out.got"
        failed=$((failed + 1))
    elif ! cmp -s "$out" "$out.got"; then
        echo "FAIL: example $(basename "$out") differs from the output (diff: doc, output):"
        diff "$out" "$out.got"
        failed=$((failed + 1))
    fi
done
[ "$total" -gt 0 ] || { echo "no examples found in $doc"; exit 1; }
echo "$total example(s), $failed failed"
[ "$failed" -eq 0 ]
