#!/usr/bin/env bash
# bpe_vs_tiktoken.sh — gradc's GPT-2 BPE (runtime/rt_bpe.c) against the oracle,
# js-tiktoken's "gpt2" encoding (tests/oracle/tiktoken, version pinned there).
#
#   bash tests/scripts/bpe_vs_tiktoken.sh GRADC_BINARY SOURCE_ROOT
#
# It installs the oracle with npm if needed, runs `gradc tokenize` (one
# process for all the files of a comparison: one line of ids per file) and
# compares the ids, with and without --special, on: hand-picked texts (unicode, emoji, CRLF,
# runs of spaces and newlines, digits, contractions, <|endoftext|>), seeded
# random mixtures of them, and the data texts the-verdict.txt (5,145 tokens)
# and tinyshakespeare.txt.  It also checks decode(encode(x)) == x and that
# encoding runs at >= 1 MB/s.  Exit 77 (skip) with a reason when node/npm or
# the GPT-2 files are missing, and at the end, after the other checks, when
# a data text is.
set -uo pipefail

GRADC=${1:?usage: bpe_vs_tiktoken.sh GRADC_BINARY SOURCE_ROOT}
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
SRC=$(cd "$SRC" && pwd)
ORACLE=$SRC/tests/oracle/tiktoken
DATA=$SRC/../shared/data
GPT2=$DATA/gpt2
N_RANDOM=${BPE_FUZZ_TEXTS:-300}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

command -v node >/dev/null 2>&1 || skip "node is not installed (scripts/deps.sh installs nodejs)"
command -v npm >/dev/null 2>&1 || skip "npm is not installed (scripts/deps.sh installs npm)"
[[ -f $GPT2/encoder.json && -f $GPT2/vocab.bpe ]] ||
    skip "GPT-2 BPE files not found in $GPT2 (expected encoder.json and vocab.bpe)"

if [[ ! -d $ORACLE/node_modules/js-tiktoken ]]; then
    echo "installing the oracle (js-tiktoken) in $ORACLE"
    (cd "$ORACLE" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; }) >&2 ||
        skip "npm could not install js-tiktoken in $ORACLE (offline?)"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[[ -x $GRADC ]] || fail "gradc binary '$GRADC' not found"

# ours [--special] FILE...: gradc's ids in encode.js's format ("# FILE", then
# one id per line), and decode(encode(x)) == x for every file (the ids of
# each file decode, in one run, to the files concatenated).
ours() {
    local special=$1; shift
    "$GRADC" tokenize --bpe-dir "$GPT2" $special "$@" >"$TMP/lines" || return 1
    awk -v files="$(printf '%s\n' "$@")" 'BEGIN { n = split(files, f, "\n") }
        { print "# " f[NR]; for (i = 1; i <= NF; i++) print $i }' "$TMP/lines"
    rm -rf "$TMP/ids" && mkdir "$TMP/ids" && split -l 1 -a 6 "$TMP/lines" "$TMP/ids/"
    "$GRADC" tokenize --bpe-dir "$GPT2" --decode "$TMP"/ids/* >"$TMP/back" || return 1
    cat "$@" | cmp -s - "$TMP/back"
}
node "$ORACLE/gen_texts.js" "$TMP/texts" "$N_RANDOM" || fail "gen_texts.js failed"

passed=0 failed=0 skipped=0

# compare NAME [--special] FILE...: ids from both, diffed; the first
# differing file is shown.
compare() {
    local name=$1; shift
    local ours=$TMP/ours.txt theirs=$TMP/theirs.txt
    if ! ours "$1" "${@:2}" >"$ours"; then
        echo "FAIL $name: gradc tokenize failed or decode(encode(x)) != x"; failed=$((failed + 1)); return
    fi
    node "$ORACLE/encode.js" ${1:+"$1"} "${@:2}" >"$theirs" || fail "the oracle encode.js failed"
    if cmp -s "$ours" "$theirs"; then
        echo "ok   $name ($(( $# - 1 )) files, $(grep -vc '^#' "$ours") tokens)"
        passed=$((passed + 1))
    else
        echo "FAIL $name: ids differ from js-tiktoken (< gradc, > tiktoken):"
        diff "$ours" "$theirs" | head -20
        failed=$((failed + 1))
    fi
}

compare "texts" "" "$TMP"/texts/*.txt
compare "texts, allow_special" --special "$TMP"/texts/*.txt

if [[ -f $DATA/the-verdict.txt ]]; then
    compare "the-verdict.txt" "" "$DATA/the-verdict.txt"
    n=$(grep -vc '^#' "$TMP/ours.txt")
    if [[ $n == 5145 ]]; then echo "ok   the-verdict.txt is 5145 tokens"; passed=$((passed + 1))
    else echo "FAIL the-verdict.txt is $n tokens, expected 5145"; failed=$((failed + 1)); fi
else
    echo "skip the-verdict.txt: $DATA/the-verdict.txt not found"; skipped=$((skipped + 1))
fi

if [[ -f $DATA/tinyshakespeare.txt ]]; then
    compare "tinyshakespeare.txt" "" "$DATA/tinyshakespeare.txt"
    bench=$("$GRADC" tokenize --bpe-dir "$GPT2" --stats "$DATA/tinyshakespeare.txt" 2>&1 >/dev/null)
    echo "     speed: $bench"
    mbs=$(sed 's/.*s, \([0-9.]*\) MB\/s/\1/' <<<"$bench")
    if awk -v r="$mbs" 'BEGIN { exit !(r >= 1.0) }'; then passed=$((passed + 1))
    else echo "FAIL encoding runs at $mbs MB/s, below 1 MB/s"; failed=$((failed + 1)); fi
else
    echo "skip tinyshakespeare.txt: $DATA/tinyshakespeare.txt not found"; skipped=$((skipped + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed == 0 ]] || exit 1
[[ $skipped == 0 ]] || exit 77   # a part that did not run is a skip, not a pass
