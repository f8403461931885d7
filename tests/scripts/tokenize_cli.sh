#!/usr/bin/env bash
# tokenize_cli.sh — `gradc tokenize`: the command's contract (ids on one line
# per file, --decode, --special, the char tokenizer, the data cache default)
# and its errors (exit 1 with a message).  The token-exactness against
# tiktoken is tests/scripts/bpe_vs_tiktoken.sh.
#
#   bash tests/scripts/tokenize_cli.sh GRADC_BINARY SOURCE_ROOT
#
# Needs ../shared/data/gpt2 for the GPT-2 cases; exit 77 without it.
set -uo pipefail

GRADC=${1:?usage: tokenize_cli.sh GRADC_BINARY SOURCE_ROOT}
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
GPT2=$SRC/../shared/data/gpt2
[[ -f $GPT2/encoder.json && -f $GPT2/vocab.bpe ]] ||
    { echo "SKIP: GPT-2 BPE files not found in $GPT2"; exit 77; }

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
# expect NAME WANT CMD...: stdout of CMD equals WANT and it exits 0
expect() {
    local name=$1 want=$2 got; shift 2
    if got=$("$@" 2>"$TMP/err") && [[ $got == "$want" ]]; then ok "$name"
    else bad "$name: got '$got', expected '$want' ($(head -c 300 "$TMP/err"))"; fi
}
# refuse NAME PATTERN CMD...: CMD exits 1 and stderr matches PATTERN

tok() { "$GRADC" tokenize --bpe-dir "$GPT2" "$@"; }

printf 'Hello, world' >"$TMP/hello.txt"
printf 'a<|endoftext|>b' >"$TMP/eot.txt"
printf '' >"$TMP/empty.txt"
printf 'héllo wörld 🙂\r\n  x' >"$TMP/uni.txt"

expect "encode" "15496 11 995" tok "$TMP/hello.txt"
expect "encode stdin" "15496 11 995" tok - <"$TMP/hello.txt"
expect "one line per file" $'15496 11 995\n\n15496 11 995' tok "$TMP/hello.txt" "$TMP/empty.txt" "$TMP/hello.txt"
expect "special off: ordinary text" "64 27 91 437 1659 5239 91 29 65" tok "$TMP/eot.txt"
expect "special on: one token" "64 50256 65" tok --special "$TMP/eot.txt"
expect "decode" "Hello, world" tok --decode - <<<"15496 11 995"
expect "decode any white space" "Hello, world" tok --decode - <<<$'15496\n\t11   995\n'
expect "decode 50256" "<|endoftext|>" tok --decode - <<<"50256"

tok "$TMP/uni.txt" >"$TMP/uni.ids" && tok --decode "$TMP/uni.ids" >"$TMP/uni.back"
if cmp -s "$TMP/uni.txt" "$TMP/uni.back"; then ok "round trip (unicode, emoji, CRLF)"
else bad "round trip (unicode, emoji, CRLF)"; fi

mkdir -p "$TMP/cache/gpt2" && cp "$GPT2"/encoder.json "$GPT2"/vocab.bpe "$TMP/cache/gpt2/"
expect "default: the data cache" "15496 11 995" env GRADC_DATA_DIR="$TMP/cache" "$GRADC" tokenize "$TMP/hello.txt"
refuse "empty data cache" "run scripts/demo.sh" env GRADC_DATA_DIR="$TMP/none" "$GRADC" tokenize "$TMP/hello.txt"

printf 'to be or not to be' >"$TMP/c.txt"
expect "char: ids in code-point order" "6 4 0 1 2 0 4 5 0 3 4 6 0 6 4 0 1 2" "$GRADC" tokenize --tokenizer char "$TMP/c.txt"
"$GRADC" tokenize --tokenizer char "$TMP/c.txt" >"$TMP/c.ids"
expect "char: decode with --vocab-from" "to be or not to be" "$GRADC" tokenize --tokenizer char --decode --vocab-from "$TMP/c.txt" "$TMP/c.ids"
refuse "char: decode needs the vocabulary" "needs the vocabulary" "$GRADC" tokenize --tokenizer char --decode "$TMP/c.ids"
printf 'xyz' >"$TMP/xyz.txt"
refuse "char: unknown character" "not in the char vocabulary" "$GRADC" tokenize --tokenizer char --vocab-from "$TMP/c.txt" "$TMP/xyz.txt"

refuse "missing file" "cannot read" tok "$TMP/nope.txt"
refuse "bad tokenizer" "expects gpt2 or char" tok --tokenizer bpe "$TMP/hello.txt"
refuse "unknown flag" "unknown flag" tok --frobnicate "$TMP/hello.txt"
refuse "no file" "missing FILE" tok
refuse "junk id" "'x' is not a token id" tok --decode - <<<"1 x 3"
refuse "id out of range" "outside the gpt2 vocabulary" tok --decode - <<<"50257"
refuse "bad bpe dir" "not found" "$GRADC" tokenize --bpe-dir "$TMP" "$TMP/hello.txt"
"$GRADC" tokenize --help | grep -q "usage: gradc tokenize" && ok "help" || bad "help"

checks_done
