#!/usr/bin/env bash
# score.sh — `gradc score` and `gradc respond` against independent answers:
#   scores      a hand-written responses file: exact match, SQuAD exact match
#               and token F1 equal hand-computed means (1/4, 2/4, 2/3 here)
#               and tests/oracle/score_oracle.py's SQuAD implementation;
#   loss        --ckpt on a 2-layer GPT-2 (GPT-2 BPE) trained 2 steps: the
#               reference outputs' loss and perplexity equal PyTorch's
#               (score_oracle.py: the book's GPT, masked prompt targets) to
#               1e-5 relative;
#   respond     greedy responses are the same twice; the file keeps every
#               entry's keys in order plus model_response;
#   bad input   a missing file, an entry without model_response: exit 1
#               naming the file.
# Exit 77 (skip) without ../shared/data/gpt2 (the BPE files) or torch.
set -uo pipefail

GRADC=$(realpath "${1:?usage: score.sh GRADC_BINARY SOURCE_ROOT}")
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
BPE=$SRC/../shared/data/gpt2
PY=/usr/bin/python3
ORACLE=$SRC/tests/oracle/score_oracle.py
[[ -f $BPE/encoder.json ]] || { echo "SKIP: $BPE (GPT-2 BPE files) not found"; exit 77; }
$PY -c 'import torch, numpy' 2>/dev/null || { echo "SKIP: $PY has no torch/numpy"; exit 77; }

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
export GRADC_CACHE_DIR=$TMP/cache
cd "$TMP"

# entry 1: exact after strip; 2: exact only normalized; 3: F1 = 2/3 (P 1, R 1/2);
# 4: F1 0, not exact.  Means over 4 entries: exact 1/4, exact_norm 2/4,
# f1 (1 + 1 + 2/3 + 0) / 4 = 2/3
cat >r.json <<'J'
[{"instruction": "Name the capital of France.", "input": "", "output": "Paris",
  "model_response": "  Paris\n"},
 {"instruction": "Say it.", "input": "x", "output": "The cat sat.",
  "model_response": "the cat sat"},
 {"instruction": "Count to four.", "output": "one two three four",
  "model_response": "one two"},
 {"instruction": "Name a colour.", "input": "", "output": "Red.", "model_response": "blue"}]
J
"$GRADC" score r.json --json >s.json 2>s.err || { cat s.err; echo "FAIL: gradc score"; exit 1; }
cat s.json
near() {   # near FILE KEY WANT TOL: |FILE[KEY] - WANT| <= TOL * max(1, |WANT|)
    $PY -c "import json,sys; v=json.load(open('$1'))['$2']; w=float($3)
sys.exit(abs(v - w) > $4 * max(1.0, abs(w)))"
}
check "exact 1/4" near s.json exact 1/4 1e-6
check "exact_norm 2/4" near s.json exact_norm 2/4 1e-6
check "f1 2/3" near s.json f1 2/3 1e-6
$PY "$ORACLE" r.json >o.json || { echo "FAIL: score_oracle.py"; exit 1; }
for k in exact exact_norm f1; do
    w=$($PY -c "import json; print(json.load(open('o.json'))['$k'])")
    check "$k equals the Python SQuAD oracle ($w)" near s.json $k "$w" 1e-6
done

# ---------------------------------------------------------------- loss against PyTorch
SIZE=(--set emb_dim=32 --set n_layers=2 --set n_heads=2 --set context_length=64)
$PY -c "import json
print(' '.join(e['instruction'] + ' ' + e['output'] for e in json.load(open('r.json'))) * 20)" >t.txt
"$GRADC" train "$SRC/models/gpt2-small.json" "${SIZE[@]}" --data t.txt --bpe-dir "$BPE" \
    --steps 2 --batch 2 --seq 32 --out pre --quiet || { echo "FAIL: pretraining"; exit 1; }
"$GRADC" score r.json --ckpt pre/ckpt.safetensors --bpe-dir "$BPE" --json >l.json 2>l.err \
    || { cat l.err; echo "FAIL: gradc score --ckpt"; exit 1; }
cat l.json
$PY "$ORACLE" r.json --prompts texts
: >ids.txt
for i in 0 1 2 3; do
    "$GRADC" tokenize --bpe-dir "$BPE" "texts/$i.p" >>ids.txt
    "$GRADC" tokenize --bpe-dir "$BPE" "texts/$i.f" >>ids.txt
done
sets=()
for s in emb_dim=32 n_layers=2 n_heads=2 context_length=64; do sets+=(--set "$s"); done
$PY "$ORACLE" r.json --ckpt pre/ckpt.safetensors --model "$SRC/models/gpt2-small.json" \
    "${sets[@]}" --ids ids.txt >ol.json || { echo "FAIL: score_oracle.py --ckpt"; exit 1; }
cat ol.json
for k in loss ppl; do
    w=$($PY -c "import json; print(repr(json.load(open('ol.json'))['$k']))")
    check "$k equals PyTorch's ($w) to 1e-5" near l.json $k "$w" 1e-5
done
w=$($PY -c "import json; print(json.load(open('ol.json'))['tokens'])")
check "the loss counts the oracle's $w targets" near l.json tokens "$w" 0

# ---------------------------------------------------------------- respond
resp() {
    "$GRADC" respond pre/ckpt.safetensors --data r.json --split all --max-new 8 \
        --bpe-dir "$BPE" --out "$1" 2>"$1.err"
}
if resp a.json && resp b.json; then
    check "greedy respond: the same responses twice" cmp -s a.json b.json
    check "respond keeps each entry's keys in order plus model_response" $PY -c "
import json
a, r = json.load(open('a.json')), json.load(open('r.json'))
assert len(a) == len(r)
for x, e in zip(a, r):
    assert list(x) == list(e), (list(x), list(e))
    assert all(x[k] == e[k] for k in e if k != 'model_response')
    assert isinstance(x['model_response'], str)"
else
    cat a.json.err b.json.err 2>/dev/null; bad "gradc respond runs"
fi

# ---------------------------------------------------------------- bad input
refuse "a missing file" "nope.json" "$GRADC" score nope.json
printf '[{"instruction": "x", "output": "y"}]\n' >nor.json
refuse "an entry without model_response" "nor.json" "$GRADC" score nor.json
checks_done
