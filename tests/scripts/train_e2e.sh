#!/usr/bin/env bash
# train_e2e.sh — `gradc train` and `gradc generate` end to end, on
# ../shared/data/the-verdict.txt with gpt-mini shrunk to run in seconds:
#
#   loss      a char-level gpt-mini (2 layers, d=64) trains 100 updates and
#             its val loss falls from ln(vocab) + 1/6 ~ 4.7 (the init's logits) to below 3.0;
#   resume    train 2N updates, or N, save, --resume, N more: every tensor of
#             the two final checkpoints (weights and AdamW moments) is equal
#             byte for byte; dropout is on and evaluations run in between;
#   generate  the same seed gives the same text, the KV-cached decode step
#             and the full forward give the same text, greedy is greedy;
#   refusals  a truncated, bit-flipped or foreign checkpoint, a checkpoint of
#             another model size, another data file: exit 1 with a message
#             that names the file;
#   gpt2      a few updates with the GPT-2 BPE (needs ../shared/data/gpt2).
#
#   bash tests/scripts/train_e2e.sh GRADC_BINARY SOURCE_ROOT
#
# Exit 77 (skip) without ../shared/data/the-verdict.txt, and at the end,
# after the other checks, when the gpt2 BPE part could not run (no
# ../shared/data/gpt2).
set -uo pipefail

GRADC=${1:?usage: train_e2e.sh GRADC_BINARY SOURCE_ROOT}
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
DATA=$SRC/../shared/data
VERDICT=$DATA/the-verdict.txt
[[ -f $VERDICT ]] || { echo "SKIP: $VERDICT not found"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to compare checkpoints"; exit 77; }

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
cd "$SRC"

MINI=(models/gpt-mini.json --set vocab_size=96 --set n_layers=2 --set emb_dim=64
      --set n_heads=2 --tokenizer char --data "$VERDICT" --seq 64 --batch 4)

# ---------------------------------------------------------------- the loss falls
"$GRADC" train "${MINI[@]}" --lr 1e-3 --steps 100 --eval-every 10 --eval-batches 4 \
    --log-every 50 --out "$TMP/a" --prompt "I had" --sample-every 50 >"$TMP/a.log" 2>&1
check "train runs (100 updates)" grep -q "saved $TMP/a/ckpt.safetensors (step 100)" "$TMP/a.log"
read -r first last < <(awk -F, 'NR == 2 { f = $5 } NR > 1 { l = $5 } END { print f, l }' "$TMP/a/log.csv")
echo "     val loss: $first at step 0, $last at step 90"
# At init the logits are about N(0, 1/3): final_norm's output has unit variance and the head's
# weights are U(-1/sqrt(d), 1/sqrt(d)), variance 1/(3d), over d inputs.  So the expected loss
# is about ln(96) + (1/3)/2 = 4.73.
check "val loss starts near ln(vocab) + 1/6" awk -v x="$first" 'BEGIN { exit !(x > 4.45 && x < 5.0) }'
check "val loss falls below 3.0 in 100 updates" awk -v x="$last" 'BEGIN { exit !(x < 3.0) }'
check "CSV: header and 10 eval rows" bash -c "head -1 '$TMP/a/log.csv' | grep -q '^step,epoch,tokens_seen,train_loss,val_loss' && [[ \$(wc -l < '$TMP/a/log.csv') == 11 ]]"
check "SVG plot" grep -q "</svg>" "$TMP/a/loss.svg"
check "samples during training" grep -q "^sample: I had" "$TMP/a.log"
check "progress line" grep -Eq "^step +99 \| epoch +2 \| tokens +25600 \| loss [0-9.]+ \| lr 1.00e-03 \| [0-9]+ tok/s \| ETA" "$TMP/a.log"

# ---------------------------------------------------------------- resume is bit-exact
R=("${MINI[@]}" --eval-every 7 --eval-batches 2 --quiet)
"$GRADC" train "${R[@]}" --steps 40 --out "$TMP/full" &&
"$GRADC" train "${R[@]}" --steps 20 --out "$TMP/half" &&
"$GRADC" train --resume "$TMP/half/ckpt.safetensors" --data "$VERDICT" --steps 40 --quiet \
    --out "$TMP/half" || bad "resume runs"
cat >"$TMP/cmp.py" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    d = b[8 + n:]
    return {k: d[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items()
            if k != "__metadata__"}, h["__metadata__"]
a, ma = load(sys.argv[1])
b, mb = load(sys.argv[2])
diff = [k for k in a if a[k] != b.get(k)]
moments = sum(1 for k in a if k.startswith("adam."))
print("     %d tensors (%d AdamW moments), %d differ%s; steps %s and %s" %
      (len(a), moments, len(diff), (": " + ", ".join(diff[:4])) if diff else "",
       ma["step"], mb["step"]))
sys.exit(0 if not diff and sorted(a) == sorted(b) and moments > 0 and ma["step"] == mb["step"] else 1)
EOF
check "2N updates == N + resume + N, byte for byte" python3 "$TMP/cmp.py" "$TMP/full/ckpt.safetensors" "$TMP/half/ckpt.safetensors"
check "resumed log has the same losses" bash -c "diff <(cut -d, -f1-5 '$TMP/full/log.csv') <(cut -d, -f1-5 '$TMP/half/log.csv')"
# --no-shuffle is a setting of the run: kept by the checkpoint and by --resume, and a resumed
# run in text order is bit-exact too.
"$GRADC" train "${R[@]}" --no-shuffle --steps 30 --out "$TMP/ns_full" &&
"$GRADC" train "${R[@]}" --no-shuffle --steps 15 --out "$TMP/ns_half" &&
"$GRADC" train --resume "$TMP/ns_half/ckpt.safetensors" --data "$VERDICT" --steps 30 --quiet \
    --out "$TMP/ns_half" || bad "--no-shuffle runs and resumes"
check "--no-shuffle: 2N updates == N + resume + N" python3 "$TMP/cmp.py" "$TMP/ns_full/ckpt.safetensors" "$TMP/ns_half/ckpt.safetensors"
check "--no-shuffle is recorded in the checkpoint" python3 -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
m = json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]])['__metadata__']
sys.exit(0 if json.loads(m['train.options'])['shuffle'] is False else 1)" "$TMP/ns_half/ckpt.safetensors"
"$GRADC" train "${R[@]}" --steps 30 --out "$TMP/sh30" || bad "shuffled 30 updates"
check "--no-shuffle sees other batches than the shuffled run" bash -c \
    "! diff -q <(cut -d, -f1-5 '$TMP/ns_full/log.csv') <(cut -d, -f1-5 '$TMP/sh30/log.csv') >/dev/null"
"$GRADC" train "${MINI[@]}" --steps 40 --save-every 20 --eval-every 0 --log-every 0 \
    --out "$TMP/mid" >"$TMP/mid.log" 2>&1
check "--save-every writes a checkpoint mid-run" grep -q "mid/ckpt.safetensors (step 20)" "$TMP/mid.log"
check "--eval-every 0 evaluates at the end" grep -q "^final: train [0-9.]* | val [0-9.]*" "$TMP/mid.log"

# ---------------------------------------------------------------- generation
CK=$TMP/a/ckpt.safetensors
gen() { "$GRADC" generate "$CK" --prompt "I had always" --max-new 40 "$@"; }
gen --temperature 0.9 --top-k 20 --seed 7 >"$TMP/g1" && gen --temperature 0.9 --top-k 20 --seed 7 >"$TMP/g2"
check "same seed, same text" cmp -s "$TMP/g1" "$TMP/g2"
gen --temperature 0.9 --top-k 20 --seed 8 >"$TMP/g3"
check "another seed, other text" bash -c "! cmp -s '$TMP/g1' '$TMP/g3'"
gen --temperature 0.9 --top-k 20 --seed 7 --no-kv-cache >"$TMP/g4"
check "KV cache and full forward agree" cmp -s "$TMP/g1" "$TMP/g4"
gen >"$TMP/g5" && gen --seed 99 >"$TMP/g6"
check "greedy ignores the seed" cmp -s "$TMP/g5" "$TMP/g6"
check "the prompt comes first" grep -q "^I had always" "$TMP/g1"
gen --stats 2>"$TMP/stats" >/dev/null
check "--stats reports the KV-cached decode step" grep -q "KV-cached decode step" "$TMP/stats"

# ---------------------------------------------------------------- refusals
sz=$(stat -c %s "$CK")
head -c $((sz - 1000)) "$CK" >"$TMP/trunc.safetensors"
refuse "truncated checkpoint" "trunc.safetensors' is corrupt" "$GRADC" generate "$TMP/trunc.safetensors" --prompt x
cp "$CK" "$TMP/flip.safetensors"
printf '\x55' | dd of="$TMP/flip.safetensors" bs=1 seek=$((sz - 5000)) conv=notrunc status=none
refuse "bit-flipped checkpoint" "does not match its hash" "$GRADC" generate "$TMP/flip.safetensors" --prompt x
refuse "corrupt checkpoint on --resume" "is corrupt" "$GRADC" train --resume "$TMP/flip.safetensors" --data "$VERDICT"
refuse "not a checkpoint" "is corrupt" "$GRADC" generate "$VERDICT" --prompt x
refuse "missing checkpoint" "cannot open checkpoint" "$GRADC" generate "$TMP/none.safetensors" --prompt x
refuse "checkpoint of another model size" "does not match the model" \
    "$GRADC" train models/gpt-mini.json --set vocab_size=96 --set n_layers=2 --set emb_dim=32 \
    --set n_heads=2 --resume "$CK" --data "$VERDICT"
head -c 15000 "$VERDICT" >"$TMP/other.txt"
refuse "resume on another text" "is not the text checkpoint" "$GRADC" train --resume "$CK" --data "$TMP/other.txt"
refuse "resume with another batch" "was trained with batch 4" "$GRADC" train --resume "$CK" --batch 2
refuse "--seq longer than the context" "longer than the model's context_length" \
    "$GRADC" train "${MINI[@]}" --seq 512
refuse "bad --lr" "--lr expects a positive number" "$GRADC" train "${MINI[@]}" --lr -1
refuse "missing --data" "missing --data" "$GRADC" train models/gpt-mini.json
refuse "--init-std that matches no param" "no param with a normal init matches 'nope'" \
    "$GRADC" train "${MINI[@]}" --init-std 'nope=1'
refuse "unwritable --out" "cannot create the folder" "$GRADC" train "${MINI[@]}" --out /proc/gradc-no

# ---------------------------------------------------------------- GPT-2 BPE
if [[ -f $DATA/gpt2/encoder.json ]]; then
    "$GRADC" train models/gpt-mini.json --set n_layers=1 --set emb_dim=32 --set n_heads=2 \
        --data "$VERDICT" --bpe-dir "$DATA/gpt2" --seq 32 --batch 2 --steps 4 --eval-every 2 \
        --eval-batches 1 --out "$TMP/bpe" >"$TMP/bpe.log" 2>&1
    check "gpt2 BPE: trains" grep -q "(step 4)" "$TMP/bpe.log"
    "$GRADC" generate "$TMP/bpe/ckpt.safetensors" --bpe-dir "$DATA/gpt2" --prompt "Every effort" \
        --max-new 5 >"$TMP/bpe.gen" 2>&1
    check "gpt2 BPE: generates" grep -q "^Every effort" "$TMP/bpe.gen"
else
    echo "skip gpt2 BPE: $DATA/gpt2 not found"; skipped=$((skipped + 1))
fi

checks_done
