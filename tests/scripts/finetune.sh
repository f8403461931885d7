#!/usr/bin/env bash
# finetune.sh — `gradc finetune classify` and `gradc classify` end to end on
# a 2-layer GPT-2 (emb_dim 32, the GPT-2 BPE vocabulary) and a toy data set
# of two classes that one word separates:
#   learns      the loss falls and the test accuracy reaches 0.9;
#   frozen      with the book's trainable set, every param outside it is
#               bit for bit the pretrained one, every param in it changed,
#               and the checkpoint holds AdamW moments for exactly the
#               trainable params (numpy on the safetensors files);
#   smaller     the train step of the book's set has a smaller arena and
#               optimizer state than full fine-tuning (--trainable '*');
#   log         log.csv: the header, one row per update, one per epoch;
#   classify    gradc classify on every test text gives the accuracy that
#               fine-tuning reported (B=1 against the batched eval);
#   LoRA        --lora-rank: only the adapters train and have moments, the
#               base params stay bit for bit, the metadata `lora` is written;
#               --merge folds them in, and classify gives the same answers
#               from the merged checkpoint as from the adapted one;
#   bad input   a line without a label, a test label unknown to training, a
#               checkpoint of another size, a missing file, a glob that
#               matches nothing, an earlier run's checkpoint: exit 1 and a
#               message naming the file and the place.
# Exit 77 (skip) without ../shared/data/gpt2 (the BPE files) or numpy.
set -uo pipefail

GRADC=$(realpath "${1:?usage: finetune.sh GRADC_BINARY SOURCE_ROOT}")
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

SIZE=(--set emb_dim=32 --set n_layers=2 --set n_heads=2 --set context_length=64)
for i in $(seq 40); do
    printf 'ham\tsee you at %d tonight, ok?\n' "$i"
    printf 'spam\tWIN a FREE prize now! call 0800%04d to claim\n' "$i"
done >tiny.tsv
cut -f2 tiny.tsv >tiny.txt
"$GRADC" train "$SRC/models/gpt2-small.json" "${SIZE[@]}" --data tiny.txt --bpe-dir "$BPE" \
    --steps 2 --batch 2 --seq 32 --out pre --quiet || { echo "FAIL: pretraining"; exit 1; }

ft() { "$GRADC" finetune classify --init-from pre/ckpt.safetensors --bpe-dir "$BPE" "$@"; }

# ---------------------------------------------------------------- learns
ft --data tiny.tsv --epochs 3 --lr 1e-3 --out book >book.log 2>&1
check "finetune runs" grep -q "^done: 21 updates" book.log
cat book.log | grep -E "^(trainable|train step|epoch [0-9]+:)"
read -r l1 l3 acc < <(awk '/^epoch 1:/ {a = $5} /^epoch 3:/ {b = $5; c = $19}
                           END {print a, b, c}' book.log)
check "the train loss falls ($l1 -> $l3)" awk -v a="$l1" -v b="$l3" 'BEGIN {exit !(b < a)}'
check "test accuracy >= 0.9 ($acc)" awk -v a="$acc" 'BEGIN {exit !(a >= 0.9)}'

# ---------------------------------------------------------------- frozen
cat >frozen.py <<'PY'
import re, sys
sys.path.insert(0, sys.argv[1] + "/tests/oracle")
from safetensors_io import load
pre, _ = load("pre/ckpt.safetensors")
ft, meta = load("book/ckpt.safetensors")
train = re.compile(r"^(trf_blocks\.1\.|final_norm\.|out_head\.)")
params = [k for k in ft if not k.startswith("adam.")]
bad = []
for k in params:
    if train.match(k):
        if k in pre and pre[k].shape == ft[k].shape and (pre[k] == ft[k]).all():
            bad.append("trainable %s did not change" % k)
    elif k not in pre or pre[k].tobytes() != ft[k].tobytes():
        bad.append("frozen %s changed" % k)
moments = sorted(k[len("adam.m."):] for k in ft if k.startswith("adam.m."))
if moments != sorted(k for k in params if train.match(k)):
    bad.append("AdamW moments for %s" % moments)
if sorted(k[len("adam.v."):] for k in ft if k.startswith("adam.v.")) != moments:
    bad.append("adam.v and adam.m differ")
if meta.get("format") != "gradc.finetune.v1" or meta.get("cls.labels") != '["ham","spam"]':
    bad.append("metadata %s" % {k: meta.get(k) for k in ("format", "cls.labels")})
print("\n".join(bad) or "%d params, %d trainable with moments" % (len(params), len(moments)))
sys.exit(1 if bad else 0)
PY
check "frozen params unchanged, moments only for trainable ones" $PY frozen.py "$SRC"

# ---------------------------------------------------------------- smaller
ft --data tiny.tsv --steps 2 --trainable '*' --out full >full.log 2>&1
check "full fine-tuning runs" grep -q "^done: 2 updates" full.log
mib() { sed -n "s/.*$2 \([0-9.]*\) MiB.*/\1/p" "$1"; }
for what in arena "optimizer state"; do
    b=$(mib book.log "$what") f=$(mib full.log "$what")
    check "$what: book's set $b MiB < full $f MiB" awk -v b="$b" -v f="$f" \
        'BEGIN {exit !(b != "" && b + 0 < f + 0)}'
done

# ---------------------------------------------------------------- log
check "log.csv header" [ "$(head -1 book/log.csv)" = \
    "step,epoch,loss,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc" ]
check "log.csv: 21 update rows, 3 eval rows" [ "$(awk -F, 'NR > 1 && $3 != "" {u++}
    NR > 1 && $3 == "" && $10 != "" {e++} END {print u, e}' book/log.csv)" = "21 3" ]
check "split files" [ "$(cat book/split/{train,val,test}.tsv | grep -c .)" -ge 80 ]
check "plots" grep -q "</svg>" book/curves.svg book/accuracy.svg

# ---------------------------------------------------------------- classify
# after one epoch the accuracy is not 1: a mismatch between the two paths shows
ft --data tiny.tsv --epochs 1 --lr 1e-3 --out one >one.log 2>&1
grep -v $'^label\ttext$' one/split/test.tsv >test.tsv
cut -f2- test.tsv >test.txt
for run in one book; do
    acc=$(awk '/^epoch [0-9]+:/ {a = $19} END {print a}' $run.log)
    "$GRADC" classify $run/ckpt.safetensors --bpe-dir "$BPE" --file test.txt >pred.txt 2>&1
    right=$(paste <(cut -f1 test.tsv) <(cut -f1 pred.txt) | awk '$1 == $2' | wc -l)
    n=$(wc -l <test.tsv)
    check "classify ($run): $right of $n right, fine-tuning said $acc" awk -v r="$right" \
        -v n="$n" -v a="$acc" 'BEGIN {exit !(n > 0 && sprintf("%.3f", r / n) == a)}'
done
check "classify prints LABEL<TAB>PROB" grep -qE $'^(ham|spam)\t(0\\.[5-9][0-9]*|1\\.0+)$' pred.txt

# ---------------------------------------------------------------- LoRA
ft --data tiny.tsv --epochs 2 --lr 1e-2 --lora-rank 4 --lora-alpha 8 --out lora >lora.log 2>&1
check "LoRA fine-tuning runs" grep -q "^done: 14 updates" lora.log
grep -E "^(trainable|train step|epoch [0-9]+:)" lora.log
cat >lora.py <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1] + "/tests/oracle")
from safetensors_io import load
pre, _ = load("pre/ckpt.safetensors")
ft, meta = load("lora/ckpt.safetensors")
ad = lambda k: k.endswith(".lora_A") or k.endswith(".lora_B")
params = [k for k in ft if not k.startswith("adam.")]
bad = ["base %s changed" % k for k in params if not ad(k) and k in pre
       and pre[k].shape == ft[k].shape and pre[k].tobytes() != ft[k].tobytes()]
bad += ["adapter %s did not train" % k for k in params
        if k.endswith(".lora_B") and not ft[k].any()]
moments = sorted(k[len("adam.m."):] for k in ft if k.startswith("adam.m."))
if moments != sorted(k for k in params if ad(k)) or not moments:
    bad.append("AdamW moments for %s" % moments)
lora = json.loads(meta.get("lora", "{}"))
if lora.get("rank") != 4 or "out_head.weight" not in lora.get("targets", {}):
    bad.append("metadata lora %s" % meta.get("lora"))
print("\n".join(bad) or "%d adapters trained, base unchanged" % len(moments))
sys.exit(1 if bad else 0)
PY
check "LoRA: only the adapters train, base params unchanged" $PY lora.py "$SRC"
acc=$(awk '/^epoch 2:/ {print $19}' lora.log)
check "LoRA: test accuracy >= 0.9 ($acc)" awk -v a="$acc" 'BEGIN {exit !(a >= 0.9)}'
ft --data tiny.tsv --epochs 2 --lr 1e-2 --lora-rank 4 --lora-alpha 8 --merge --out merged \
    >merged.log 2>&1
check "--merge drops the adapters" $PY -c "import sys; sys.path.insert(0, '$SRC/tests/oracle')
from safetensors_io import load
t, m = load('merged/ckpt.safetensors')
sys.exit(any('lora' in k for k in t) or 'lora' in m)"
for run in lora merged; do
    "$GRADC" classify $run/ckpt.safetensors --bpe-dir "$BPE" --file test.txt >$run.pred 2>&1
done
check "classify: the merged model gives the adapted one's labels and probabilities" \
    awk -F'\t' 'NR == FNR {l[FNR] = $1; p[FNR] = $2; next}
                 {if ($1 != l[FNR] || (p[FNR] - $2) ^ 2 > 1e-6) bad = 1; n++}
                 END {exit bad || n == 0}' lora.pred merged.pred

# ---------------------------------------------------------------- bad input
printf 'ham\thello there\nno label here\nspam\tWIN\n' >nolabel.tsv
refuse "a line without a label" "nolabel.tsv:2" ft --data nolabel.tsv --out x1
head -20 tiny.tsv >train.tsv
printf 'ham\tsee you\nmaybe\tWIN big\n' >test2.tsv
refuse "a test label unknown to training" "test2.tsv:2" \
    ft --train train.tsv --test test2.tsv --out x2
refuse "a checkpoint of another size" "tensor tok_emb.weight has shape \[50257,32\], the model wants \[50257,64\]" \
    ft --data tiny.tsv --set emb_dim=64 --out x3
refuse "a missing --data file" "missing.tsv" ft --data missing.tsv --out x4
refuse "a --trainable glob that matches nothing" "'trf_blocks.9.\*' matches no param" \
    ft --data tiny.tsv --trainable 'trf_blocks.9.*' --out x5
refuse "an earlier run's checkpoint" "book/ckpt.safetensors' exists" ft --data tiny.tsv --out book
refuse "classify: not a fine-tuning checkpoint" "not a gradc fine-tuning checkpoint" \
    "$GRADC" classify pre/ckpt.safetensors --bpe-dir "$BPE" --text hello
checks_done
