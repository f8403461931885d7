#!/usr/bin/env bash
# doc_examples.sh — the examples of the format docs are real.
#
#   docs/graph-format.md  every ```json block (fragments are tagged jsonc and
#                         skipped) is a model that `gradc check` accepts;
#   docs/ir.md            every ```gir block parses, verifies and is in the
#                         printer's exact form: `gradc opt FILE` (no passes)
#                         prints it back byte for byte.
#
# A failure names the block's line in its doc.  (docs/autodiff.md's input and
# output pairs are checked by doc_examples_autodiff.sh.)
#
# usage: bash tests/scripts/doc_examples.sh GRADC_BINARY SOURCE_ROOT
set -u
gradc=${1:?usage: doc_examples.sh GRADC_BINARY SOURCE_ROOT}
root=${2:?usage: doc_examples.sh GRADC_BINARY SOURCE_ROOT}
[ -x "$gradc" ] || { echo "gradc binary not found: $gradc"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total=0 failed=0

fail() { # WHERE WHAT FILE: a failure with FILE's lines indented
    echo "FAIL $1: $2"
    sed 's/^/    /' "$3"
    failed=$((failed + 1))
}

# check_json FILE WHERE / check_gir FILE WHERE: one example.
check_json() {
    if "$gradc" check "$1" > "$1.out" 2> "$1.err"; then
        echo "ok   $2: $(grep -m1 '^params:' "$1.out")"
    else
        fail "$2" "gradc check rejects the example:" "$1.err"
    fi
}
check_gir() {
    if ! "$gradc" opt "$1" > "$1.out" 2> "$1.err"; then
        fail "$2" "gradc opt rejects the example:" "$1.err"
    elif ! cmp -s "$1" "$1.out"; then
        diff "$1" "$1.out" > "$1.diff"
        fail "$2" "the example is not in printed form (diff: doc, printed):" "$1.diff"
    else
        echo "ok   $2"
    fi
}

# examples DOC TAG: every ```TAG block of DOC to its own file, checked by check_TAG.
examples() {
    local doc=$root/$1 tag=$2 dir=$tmp/$2 n=0 f
    [ -r "$doc" ] || { echo "FAIL cannot read $doc"; failed=$((failed + 1)); return; }
    mkdir -p "$dir"
    awk -v dir="$dir" -v tag="$tag" '
        $0 ~ "^```" tag "[ \t]*$" { n++; f = sprintf("%s/example-%02d.%s", dir, n, tag)
                                    printf "" > f; print NR + 1 > (f ".line"); inb = 1; next }
        /^```/ && inb             { inb = 0; close(f); next }
        inb                       { print > f }
    ' "$doc"
    for f in "$dir"/example-*."$tag"; do
        [ -e "$f" ] || break
        n=$((n + 1))
        "check_$tag" "$f" "$1:$(cat "$f.line")"
    done
    [ "$n" -gt 0 ] || { echo "FAIL no \`\`\`$tag blocks found in $doc"; failed=$((failed + 1)); }
    total=$((total + n))
}

examples docs/graph-format.md json
examples docs/ir.md gir
echo "$total examples, $failed failed"
[ "$failed" -eq 0 ]
