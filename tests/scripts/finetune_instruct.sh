#!/usr/bin/env bash
# finetune_instruct.sh — `gradc finetune instruct` end to end on a 2-layer
# GPT-2 (emb_dim 32, the GPT-2 BPE vocabulary) and a toy instruction set
# whose answers follow from the instruction:
#   learns      the val loss of the last evaluation is below 70% of the one
#               before the first update ("start:"), and log.csv has that
#               start row (step -1), one row per update and the evaluations;
#   schedule    --eval-every 3 evaluates after updates 3, 6, 9, ... (train and
#               val only), the epoch ends evaluate every split;
#   LoRA        --lora-rank: only the adapters train and have AdamW moments,
#               every base param stays bit for bit (numpy on the files);
#               --merge folds them in: no adapter is left, the metadata
#               `lora` is gone;
#   formats     JSON Lines gives the same batches as the JSON array;
#               --prompt-style phi3 and --mask-prompt change the batches as
#               the book's formats say (the prompt's targets are -100);
#   responses   instruction-data-with-response.json holds the test entries,
#               their keys in order, plus a string model_response each, in
#               the learnt format (words of the set, no marker, no prompt);
#   bad input   an entry without instruction or output, a non-string field,
#               an entry longer than --max-len (refused, then accepted with
#               --truncate), an empty file, a syntax error: exit 1 and a
#               message naming the file and the entry.
# The token ids themselves are checked against the book's Python by
# tests/oracle/instruct_parity.py.  Exit 77 (skip) without
# ../shared/data/gpt2 (the BPE files) or numpy.
set -uo pipefail

GRADC=$(realpath "${1:?usage: finetune_instruct.sh GRADC_BINARY SOURCE_ROOT}")
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
BPE=$SRC/../shared/data/gpt2
PY=/usr/bin/python3
[[ -f $BPE/encoder.json ]] || { echo "SKIP: $BPE (GPT-2 BPE files) not found"; exit 77; }
$PY -c 'import numpy' 2>/dev/null || { echo "SKIP: $PY has no numpy"; exit 77; }

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
export GRADC_CACHE_DIR=$TMP/cache
cd "$TMP"

# 40 entries: the answer repeats a word of the instruction; every third has an input
$PY - <<'PY'
import json
words = ["apple", "river", "stone", "cloud", "green", "seven", "table", "music"]
data = []
for i in range(40):
    w = words[i % len(words)]
    e = {"instruction": "Say the word %s twice." % w, "input": "", "output": "%s %s" % (w, w),
         "id": i}
    if i % 3 == 0:
        e = {"instruction": "Repeat the input.", "input": w, "output": w, "id": i}
    data.append(e)
json.dump(data, open("tiny.json", "w"), indent=2)
with open("tiny.jsonl", "w") as f:
    for e in data:
        f.write(json.dumps(e) + "\n")
PY
SIZE=(--set emb_dim=32 --set n_layers=2 --set n_heads=2 --set context_length=64)
$PY -c "import json; print(' '.join(e['instruction'] + ' ' + e['output'] for e in json.load(open('tiny.json')) * 4))" >tiny.txt
"$GRADC" train "$SRC/models/gpt2-small.json" "${SIZE[@]}" --data tiny.txt --bpe-dir "$BPE" \
    --steps 2 --batch 2 --seq 32 --out pre --quiet || { echo "FAIL: pretraining"; exit 1; }

ft() { "$GRADC" finetune instruct --init-from pre/ckpt.safetensors --bpe-dir "$BPE" "$@"; }

# ---------------------------------------------------------------- learns, schedule
ft --data tiny.json --epochs 12 --lr 1e-2 --eval-every 3 --max-new 12 --out full >full.log 2>&1
check "finetune instruct runs" grep -q "^done: 48 updates" full.log
grep -E "^(data|  |trainable|train step|start|epoch [0-9]+:)" full.log
read -r v0 v1 < <(awk '/^start:/ {a = $8} /^epoch 12:/ {b = $9} END {print a, b}' full.log)
check "the val loss falls by 30% ($v0 -> $v1)" awk -v a="$v0" -v b="$v1" 'BEGIN {exit !(b < 0.7 * a)}'
check "an evaluation after update 3, train and val only" \
    grep -qE "^epoch 1 step 3: train loss [0-9.]+ \| val loss [0-9.]+$" full.log
check "no evaluation after update 2" bash -c "! grep -q '^epoch 1 step 2:' full.log"
check "log.csv: the start row, step -1" grep -q "^-1,0,," full/log.csv
check "log.csv: 48 update rows" \
    test "$(awk -F, 'NR > 1 && $3 != ""' full/log.csv | wc -l)" -eq 48

# ---------------------------------------------------------------- responses
R=full/instruction-data-with-response.json
$PY - "$R" tiny.json >resp.out 2>&1 <<'PY'
import json, sys
resp = json.load(open(sys.argv[1]))
data = json.load(open(sys.argv[2]))
test = data[34:38]               # 40 entries: train 34, test int(4.0) = 4, val 2
assert len(resp) == len(test), (len(resp), len(test))
for r, e in zip(resp, test):
    assert list(r) == list(e) + ["model_response"], list(r)
    assert all(r[k] == e[k] for k in e)
    assert isinstance(r["model_response"], str)
# the format is learnt: each response is one to three of the set's words, nothing else
# (an empty response here was a stop at the response marker's own "###")
words = {"apple", "river", "stone", "cloud", "green", "seven", "table", "music"}
said = [r["model_response"].split() for r in resp]
assert all(1 <= len(w) <= 3 and set(w) <= words for w in said), said
print("responses ok")
PY
check "the responses file: the test entries + model_response" grep -q "responses ok" resp.out
cat resp.out | head -5

# ---------------------------------------------------------------- LoRA, merge
ft --data tiny.json --epochs 1 --lr 1e-3 --lora-rank 4 --lora-alpha 8 --no-respond \
    --out lora >lora.log 2>&1
check "LoRA fine-tuning runs" grep -q "^done:" lora.log
cat >frozen.py <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/tests/oracle")
from safetensors_io import load
pre, _ = load("pre/ckpt.safetensors")
ft, meta = load(sys.argv[2])
bad = []
params = [k for k in ft if not k.startswith("adam.")]
for k in params:
    if ".lora_" in k:
        continue
    if k not in pre or pre[k].tobytes() != ft[k].tobytes():
        bad.append("base param %s changed" % k)
moments = sorted(k[len("adam.m."):] for k in ft if k.startswith("adam.m."))
if moments != sorted(k for k in params if ".lora_" in k):
    bad.append("AdamW moments for %s" % moments)
if not any(".lora_B" in k and abs(ft[k]).max() > 0 for k in params):
    bad.append("no adapter B moved from zero")
print("\n".join(bad) if bad else "frozen ok")
PY
$PY frozen.py "$SRC" lora/ckpt.safetensors >frozen.out 2>&1
check "LoRA: only the adapters train and have moments" grep -qx "frozen ok" frozen.out
cat frozen.out | head -5
ft --data tiny.json --epochs 1 --lr 1e-3 --lora-rank 4 --merge --no-respond \
    --out merged >merged.log 2>&1
check "--merge runs" grep -q "^merged the LoRA adapters" merged.log
$PY - "$SRC" <<'PY' >merge.out 2>&1
import sys
sys.path.insert(0, sys.argv[1] + "/tests/oracle")
from safetensors_io import load
t, meta = load("merged/ckpt.safetensors")
left = [k for k in t if ".lora_" in k]
print("merge ok" if not left and "lora" not in meta else "left: %s %s" % (left, "lora" in meta))
PY
check "--merge: no adapter and no lora metadata left" grep -qx "merge ok" merge.out

# ---------------------------------------------------------------- formats
dump() { ft --data "$1" --dump-batches 2 --batch 4 "${@:2}"; }
dump tiny.json >a.jsonl && dump tiny.jsonl >b.jsonl
check "JSON Lines gives the JSON array's batches" cmp -s a.jsonl b.jsonl
dump tiny.json --mask-prompt >m.jsonl
dump tiny.json --prompt-style phi3 >p.jsonl
$PY - <<'PY' >fmt.out 2>&1
import json
a = [json.loads(l) for l in open("a.jsonl")]
m = [json.loads(l) for l in open("m.jsonl")]
p = [json.loads(l) for l in open("p.jsonl")]
assert [b["inputs"] for b in a] == [b["inputs"] for b in m], "mask changes the inputs"
first = a[0]["targets"][0]; masked = m[0]["targets"][0]
n = next(i for i, t in enumerate(masked) if t != -100)
assert n > 10 and all(t == -100 for t in masked[:n]) and masked[n:] == first[n:], n
assert p[0]["inputs"][0][:3] != a[0]["inputs"][0][:3], "phi3 starts as alpaca"
assert len(p[0]["inputs"][0]) < len(a[0]["inputs"][0]), "phi3's prompt is shorter"
print("formats ok")
PY
check "--mask-prompt ignores the prompt's targets; phi3 is another prompt" \
    grep -qx "formats ok" fmt.out
cat fmt.out | head -3

# ---------------------------------------------------------------- bad input
bad_json() { printf '%s' "$2" >"$1"; }
bad_json noinst.json '[{"instruction": "a", "output": "b"}, {"input": "x", "output": "y"}]'
refuse "an entry without instruction" 'noinst.json: entry 1 (line 1): no "instruction"' \
    ft --data noinst.json --out x --no-respond
bad_json noout.jsonl $'{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n'
refuse "an entry without output (JSON Lines)" 'noout.jsonl: entry 1 (line 2): no "output"' \
    ft --data noout.jsonl --out x --no-respond
bad_json num.json '[{"instruction": "a", "input": 3, "output": "b"}]'
refuse "a non-string field" 'num.json: entry 0 (line 1): the field "input" is not a string' \
    ft --data num.json --out x --no-respond
bad_json empty.json ''
refuse "an empty file" "empty.json: the file is empty" ft --data empty.json --out x --no-respond
bad_json none.json '[]'
refuse "an empty array" "none.json: .*no instruction entries" \
    ft --data none.json --out x --no-respond
bad_json syntax.json $'[\n {"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}\n]'
refuse "a JSON syntax error" "syntax.json:3:" ft --data syntax.json --out x --no-respond
refuse "an entry longer than --max-len" "tiny.json: entry 0 (line 2) has [0-9]* tokens, more than" \
    ft --data tiny.json --max-len 20 --out x --no-respond
ft --data tiny.json --max-len 20 --truncate --steps 1 --no-respond --out trunc >trunc.log 2>&1
check "--truncate cuts it and says so" grep -qE "[1-9][0-9]* truncated" trunc.log
refuse "an unknown prompt style" "unknown --prompt-style 'chatml'" \
    ft --data tiny.json --prompt-style chatml --out x

checks_done
