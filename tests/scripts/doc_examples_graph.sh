#!/usr/bin/env bash
# doc_examples_graph.sh — every ```json example of docs/graph-format.md is a valid model.
#
# Extracts each fenced block tagged json (fragments are tagged jsonc and
# skipped) to its own file and runs `gradc check` on it; any failure fails
# the test, with the block's line in the doc.
#
# usage: bash tests/scripts/doc_examples_graph.sh GRADC_BINARY SOURCE_ROOT
set -u
gradc=${1:?usage: doc_examples_graph.sh GRADC_BINARY SOURCE_ROOT}
root=${2:?usage: doc_examples_graph.sh GRADC_BINARY SOURCE_ROOT}
doc="$root/docs/graph-format.md"
[ -r "$doc" ] || { echo "cannot read $doc"; exit 1; }
[ -x "$gradc" ] || { echo "gradc binary not found: $gradc"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Each block goes to example-NN.json; example-NN.json.line holds its line in the doc.
awk -v dir="$tmp" '
    /^```json[ \t]*$/ { n++; f = sprintf("%s/example-%02d.json", dir, n)
                        printf "" > f; print NR + 1 > (f ".line"); inb = 1; next }
    /^```/ && inb     { inb = 0; close(f); next }
    inb               { print > f }
' "$doc"

total=0
failed=0
for f in "$tmp"/example-*.json; do
    [ -e "$f" ] || break
    total=$((total + 1))
    where="docs/graph-format.md:$(cat "$f.line")"
    if "$gradc" check "$f" > "$f.out" 2> "$f.err"; then
        echo "ok   $where: $(grep -m1 '^params:' "$f.out")"
    else
        echo "FAIL $where: gradc check rejects the example:"
        sed 's/^/    /' "$f.err"
        failed=$((failed + 1))
    fi
done

if [ "$total" -eq 0 ]; then
    echo "no \`\`\`json blocks found in $doc"
    exit 1
fi
echo "$total examples, $failed failed"
[ "$failed" -eq 0 ]
