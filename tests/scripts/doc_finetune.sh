#!/usr/bin/env bash
# doc_finetune.sh — the commands of docs/finetune.md run.
#
# Every ```sh block of the doc is run, in the doc's order, by bash -eo pipefail
# in one scratch folder that holds `models` (a link to the repository's) and
# whatever the blocks before it wrote, with `gradc` on the PATH; a block fails
# when a command in it fails.  The doc's runnable examples use small models
# (a 2-layer gpt2-small, d=64) so that the whole doc runs in well under a
# minute.  Blocks tagged ```text (full-size runs, output excerpts) are not
# run.  A failure names the block's line in the doc.
#
# Exit 77 (skipped) only when the GPT-2 BPE files are in neither the data
# cache (scripts/deps.sh puts them there) nor ../shared/data/gpt2.
#   usage: bash tests/scripts/doc_finetune.sh GRADC_BINARY SOURCE_ROOT
set -u
gradc=${1:?usage: doc_finetune.sh GRADC_BINARY SOURCE_ROOT}
root=$(cd "${2:?usage: doc_finetune.sh GRADC_BINARY SOURCE_ROOT}" && pwd)
[[ -x $gradc ]] || { echo "gradc binary not found: $gradc"; exit 1; }
gradc=$(cd "$(dirname "$gradc")" && pwd)/$(basename "$gradc")
doc=$root/docs/finetune.md
[[ -r $doc ]] || { echo "FAIL cannot read $doc"; exit 1; }

cache=${GRADC_DATA_DIR:-$HOME/.cache/gradc/data}
if [[ ! -f $cache/gpt2/encoder.json || ! -f $cache/gpt2/vocab.bpe ]]; then
    shared=$root/../shared/data
    if [[ -f $shared/gpt2/encoder.json && -f $shared/gpt2/vocab.bpe ]]; then
        export GRADC_DATA_DIR=$shared
    else
        echo "skipped: the GPT-2 BPE files are in neither $cache/gpt2 nor $shared/gpt2"
        exit 77
    fi
fi

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin" "$TMP/blocks" "$TMP/run"
ln -s "$gradc" "$TMP/bin/gradc"
ln -s "$root/models" "$TMP/run/models"

# Each ```sh block to blocks/NN.sh, with its first line's number in NN.sh.line.
awk -v dir="$TMP/blocks" '
    /^```sh[ \t]*$/ { n++; f = sprintf("%s/%02d.sh", dir, n); printf "" > f
                      print NR + 1 > (f ".line"); inb = 1; next }
    /^```/ && inb   { inb = 0; close(f); next }
    inb             { print > f }
' "$doc"

n=0
for f in "$TMP"/blocks/*.sh; do
    [[ -e $f ]] || break
    n=$((n + 1))
    where="docs/finetune.md:$(cat "$f.line")"
    if (cd "$TMP/run" && PATH=$TMP/bin:$PATH bash -eo pipefail "$f") >"$TMP/out" 2>&1; then
        ok "$where: $(grep -v '^\s*$' "$f" | head -1 | cut -c1-70)"
    else
        bad "$where: a command failed; the block and its output:"
        sed 's/^/    | /' "$f"
        tail -20 "$TMP/out" | sed 's/^/    > /'
    fi
done
[[ $n -gt 0 ]] || bad "no \`\`\`sh blocks found in $doc"
checks_done
