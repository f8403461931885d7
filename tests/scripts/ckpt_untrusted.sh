#!/usr/bin/env bash
# ckpt_untrusted.sh — checkpoints whose metadata was edited, stripped or
# forged, end to end through `gradc generate` and `gradc train --resume`
# (issue 13): none may be used as if it were whole.
#
#   edited    a tokenizer, a --set value, a model file value, a deleted data
#             hash: gradc.header_hash refuses each ("edited or damaged");
#   old       a checkpoint without gradc.header_hash (as an older gradc wrote
#             it) still loads, with a warning that its metadata cannot be
#             checked; then what can be checked still is: the tokenizer
#             against the checkpoint and vocab_size, train.options and
#             train.history values, and an error in its model.json names the
#             checkpoint, not the model file on disk;
#   data      resuming a char checkpoint on another text is the data-hash
#             refusal, as it is for GPT-2 BPE (it was a vocabulary error).
#
# The text, the model and the BPE files (tests/fuzz/bpe-mini) are made or
# kept here: no ../shared/data needed.  Needs python3 to edit headers.
#
#   bash tests/scripts/ckpt_untrusted.sh GRADC_BINARY SOURCE_ROOT
set -uo pipefail

GRADC=${1:?usage: ckpt_untrusted.sh GRADC_BINARY SOURCE_ROOT}
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to edit checkpoint headers"; exit 77; }

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
cd "$SRC"

# edit.py IN OUT [--strip KEY] [--meta KEY VALUE] [--rename-tensor OLD NEW] [--sub KEY OLD NEW]:
# rewrites the header as another tool would (json.dumps); the tensor bytes stay.
cat >"$TMP/edit.py" <<'EOF'
import json, struct, sys
src, dst, args = sys.argv[1], sys.argv[2], sys.argv[3:]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h["__metadata__"]
while args:
    op = args.pop(0)
    if op == "--strip":
        m.pop(args.pop(0), None)
    elif op == "--meta":
        k = args.pop(0); m[k] = args.pop(0)
    elif op == "--rename-tensor":
        old = args.pop(0); h[args.pop(0)] = h.pop(old)
    elif op == "--sub":
        k, old, new = args.pop(0), args.pop(0), args.pop(0)
        assert old in m[k], (k, old)
        m[k] = m[k].replace(old, new, 1)
hdr = json.dumps(h, separators=(",", ":")).encode()
hdr += b" " * (-len(hdr) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hdr)) + hdr + b[8 + n:])
EOF
edit() { python3 "$TMP/edit.py" "$@"; }

# ---------------------------------------------------------------- a tiny char run
python3 -c "
import random
random.seed(7)
w = 'the of and to in a is that it was for on with as his he be at by had not'.split()
print(' '.join(random.choice(w) for _ in range(2500)))" >"$TMP/text.txt"
MINI=(models/gpt-mini.json --set vocab_size=40 --set n_layers=1 --set emb_dim=16 --set n_heads=2
      --set context_length=32 --tokenizer char --batch 2 --seq 32 --eval-every 0 --quiet)
"$GRADC" train "${MINI[@]}" --data "$TMP/text.txt" --steps 2 --out "$TMP/run" ||
    { echo "FAIL: the tiny run does not train"; exit 1; }
CK=$TMP/run/ckpt.safetensors
BPE=(--bpe-dir "$SRC/tests/fuzz/bpe-mini")
gen() { "$GRADC" generate "$1" --prompt "the" --max-new 3 "${BPE[@]}"; }
resume() { "$GRADC" train --resume "$1" --data "$TMP/text.txt" --steps 3 --out "$TMP/r" --quiet "${@:2}"; }
gen "$CK" >"$TMP/g" 2>"$TMP/gerr"
if [[ $? == 0 && ! -s $TMP/gerr ]]; then ok "the whole checkpoint generates, without a warning"
else bad "the whole checkpoint: $(head -c 300 "$TMP/gerr")"; fi

# ---------------------------------------------------------------- edited: refused
edit "$CK" "$TMP/tok.st" --meta tokenizer gpt2
refuse "tokenizer edited to gpt2: generate" "was edited or damaged" gen "$TMP/tok.st"
refuse "tokenizer edited to gpt2: --resume" "was edited or damaged" resume "$TMP/tok.st"
edit "$CK" "$TMP/heads.st" --sub model.sets '"n_heads":"2"' '"n_heads":"4"'
refuse "n_heads edited in model.sets: --resume" "was edited or damaged" resume "$TMP/heads.st"
refuse "n_heads edited in model.sets: generate" "was edited or damaged" gen "$TMP/heads.st"
edit "$CK" "$TMP/drop.st" --sub model.json '"drop_rate":0.1' '"drop_rate":0.5'
refuse "drop_rate edited in model.json: --resume" "was edited or damaged" resume "$TMP/drop.st"
edit "$CK" "$TMP/nohash.st" --strip gradc.data_hash
refuse "data hash deleted" "was edited or damaged" gen "$TMP/nohash.st"
edit "$CK" "$TMP/step.st" --meta step 1
refuse "position edited" "was edited or damaged" resume "$TMP/step.st"

# ---------------------------------------------------------------- old: warned, then checked
edit "$CK" "$TMP/old.st" --strip gradc.header_hash
gen "$TMP/old.st" >/dev/null 2>"$TMP/err"
if [[ $? == 0 ]] && grep -q "warning: checkpoint '.*old.st' has no gradc.header_hash" "$TMP/err"
then ok "no header hash: generate warns and runs"
else bad "no header hash: $(head -c 300 "$TMP/err")"; fi
edit "$CK" "$TMP/bare.st" --strip gradc.header_hash --strip gradc.data_hash
gen "$TMP/bare.st" >/dev/null 2>"$TMP/err"
if [[ $? == 0 ]] && grep -q "has no gradc.data_hash: its tensor bytes cannot be checked" "$TMP/err"
then ok "no hashes at all: generate warns about each"
else bad "no hashes: $(head -c 300 "$TMP/err")"; fi
edit "$CK" "$TMP/oldtok.st" --strip gradc.header_hash --meta tokenizer gpt2
refuse "no header hash, tokenizer gpt2 in one place, char in train.options" \
    "names one tokenizer in 'tokenizer' and another in train.options" resume "$TMP/oldtok.st"
edit "$CK" "$TMP/oldtok1.st" --strip gradc.header_hash --meta tokenizer gpt2 \
    --sub train.options '"tokenizer":"char"' '"tokenizer":"gpt2"'
refuse "no header hash, tokenizer gpt2 but a char vocabulary" \
    "names the gpt2 tokenizer but holds a char vocabulary" gen "$TMP/oldtok1.st"
edit "$CK" "$TMP/oldtok2.st" --strip gradc.header_hash --meta tokenizer gpt2 \
    --sub train.options '"tokenizer":"char"' '"tokenizer":"gpt2"' \
    --rename-tensor tokenizer.char_vocab tokenizer.char_vocax
refuse "no header hash, tokenizer gpt2 on a 40-token model" \
    "names the gpt2 tokenizer, which has 557 tokens, but its model has vocab_size 40" gen "$TMP/oldtok2.st"
refuse "... on --resume too" "which has 557 tokens, but its model has vocab_size 40" \
    resume "$TMP/oldtok2.st" "${BPE[@]}"
edit "$CK" "$TMP/oldtok3.st" --strip gradc.header_hash --meta tokenizer bpe
refuse "no header hash, an unknown tokenizer" "names the tokenizer 'bpe', not gpt2 or char" gen "$TMP/oldtok3.st"
edit "$CK" "$TMP/oldbatch.st" --strip gradc.header_hash --sub train.options '"batch":2' '"batch":1e300'
refuse "no header hash, train.options batch 1e300" "train.options 'batch' is not a count" resume "$TMP/oldbatch.st"
edit "$CK" "$TMP/oldhist.st" --strip gradc.header_hash --meta train.history '[[1e300,0,0,1,1,1,null]]'
refuse "no header hash, a train.history step of 1e300" "train.history has a row that is not" resume "$TMP/oldhist.st"
edit "$CK" "$TMP/oldjson.st" --strip gradc.header_hash --sub model.json '"config":' '"config" '
refuse "a bad model.json names the checkpoint (generate)" "oldjson.st (metadata model.json):1:" gen "$TMP/oldjson.st"
refuse "a bad model.json names the checkpoint (--resume)" "oldjson.st (metadata model.json):1:" resume "$TMP/oldjson.st"
if grep -q "gpt-mini.json" "$TMP/err"; then bad "... and not models/gpt-mini.json"; else ok "... and not models/gpt-mini.json"; fi

# ---------------------------------------------------------------- data: the hash decides
printf 'Zebras quietly jumped over %s\n' {1..300} >"$TMP/other.txt"
refuse "a char checkpoint resumed on another text" "is not the text checkpoint .* was trained on" \
    "$GRADC" train --resume "$CK" --data "$TMP/other.txt" --steps 3 --out "$TMP/r2" --quiet

checks_done
