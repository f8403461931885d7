#!/usr/bin/env bash
# doc_examples_ir.sh — the ```gir examples of docs/ir.md are canonical IR.
#
# Extracts every fenced block tagged gir from docs/ir.md and checks that
# `gradc opt FILE` (no passes: parse and re-print) gives the block back
# byte for byte.  So the examples parse, verify, and are written in the
# exact form the printer produces (the round-trip contract of the format).
#
# usage: bash tests/scripts/doc_examples_ir.sh GRADC_BINARY SOURCE_ROOT
set -u
gradc=${1:?usage: doc_examples_ir.sh GRADC_BINARY SOURCE_ROOT}
root=${2:?usage: doc_examples_ir.sh GRADC_BINARY SOURCE_ROOT}
doc="$root/docs/ir.md"
[ -r "$doc" ] || { echo "cannot read $doc"; exit 1; }
[ -x "$gradc" ] || { echo "gradc binary not found: $gradc"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Each block goes to example-NN.gir; example-NN.line holds its line in the doc.
awk -v dir="$tmp" '
    /^```gir[ \t]*$/ { n++; f = sprintf("%s/example-%02d.gir", dir, n)
                       printf "" > f; print NR + 1 > (f ".line"); inb = 1; next }
    /^```/ && inb    { inb = 0; close(f); next }
    inb              { print > f }
' "$doc"

total=0
failed=0
for f in "$tmp"/example-*.gir; do
    [ -e "$f" ] || break
    total=$((total + 1))
    where="docs/ir.md:$(cat "$f.line")"
    if ! "$gradc" opt "$f" > "$f.out" 2> "$f.err"; then
        echo "FAIL $where: gradc opt rejects the example:"
        sed 's/^/    /' "$f.err"
        failed=$((failed + 1))
    elif ! cmp -s "$f" "$f.out"; then
        echo "FAIL $where: the example is not in printed form (diff: doc, printed):"
        diff "$f" "$f.out" | sed 's/^/    /'
        failed=$((failed + 1))
    else
        echo "ok   $where"
    fi
done

if [ "$total" -eq 0 ]; then
    echo "no \`\`\`gir blocks found in $doc"
    exit 1
fi
echo "$total examples, $failed failed"
[ "$failed" -eq 0 ]
