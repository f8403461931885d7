#!/usr/bin/env bash
# bpe_vs_tiktoken.sh — gradc's GPT-2 BPE (runtime/rt_bpe.c) against the oracle,
# js-tiktoken's "gpt2" encoding (tests/oracle/tiktoken, version pinned there).
#
#   bash tests/scripts/bpe_vs_tiktoken.sh GRADC_BINARY SOURCE_ROOT
#
# It installs the oracle with npm if needed, builds the small driver
# tests/oracle/tiktoken/bpe_encode.c against runtime/rt_bpe.c (until the CLI
# has `gradc tokenize`; GRADC_BINARY is not used yet), and compares the ids,
# with and without allow_special, on: hand-picked texts (unicode, emoji, CRLF,
# runs of spaces and newlines, digits, contractions, <|endoftext|>), seeded
# random mixtures of them, and the data texts the-verdict.txt (5,145 tokens)
# and tinyshakespeare.txt.  It also checks decode(encode(x)) == x and that
# encoding runs at >= 1 MB/s.  Exit 77 (skip) with a reason when node/npm or
# the GPT-2 files are missing.
set -uo pipefail

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
CC=${CC:-gcc}
"$CC" -std=gnu11 -O2 -Wall -Wextra -I"$SRC" "$SRC/runtime/rt_bpe.c" "$ORACLE/bpe_encode.c" \
    -lcjson -o "$TMP/bpe_encode" || fail "cannot build the driver $ORACLE/bpe_encode.c"
node "$ORACLE/gen_texts.js" "$TMP/texts" "$N_RANDOM" || fail "gen_texts.js failed"

passed=0 failed=0

# compare NAME [--special] FILE...: ids from both, diffed; the first
# differing file is shown.
compare() {
    local name=$1; shift
    local ours=$TMP/ours.txt theirs=$TMP/theirs.txt
    if ! "$TMP/bpe_encode" --roundtrip ${1:+"$1"} "$GPT2" "${@:2}" >"$ours"; then
        echo "FAIL $name: bpe_encode failed or decode(encode(x)) != x"; failed=$((failed + 1)); return
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
    echo "skip the-verdict.txt: $DATA/the-verdict.txt not found"
fi

if [[ -f $DATA/tinyshakespeare.txt ]]; then
    compare "tinyshakespeare.txt" "" "$DATA/tinyshakespeare.txt"
    bench=$("$TMP/bpe_encode" --bench "$GPT2" "$DATA/tinyshakespeare.txt")
    echo "     speed: $bench"
    mbs=$(sed 's/.*s, \([0-9.]*\) MB\/s/\1/' <<<"$bench")
    if awk -v r="$mbs" 'BEGIN { exit !(r >= 1.0) }'; then passed=$((passed + 1))
    else echo "FAIL encoding runs at $mbs MB/s, below 1 MB/s"; failed=$((failed + 1)); fi
else
    echo "skip tinyshakespeare.txt: $DATA/tinyshakespeare.txt not found"
fi

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
