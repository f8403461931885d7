#!/usr/bin/env bash
# import-gpt2 and export-gpt2 (docs/cli.md): GPT-2 weights in the Hugging
# Face layout, against tests/oracle/hf_gpt2.py (a GPT-2 written the HF way
# in PyTorch, random weights, since this machine cannot download the real
# ones).
#   1. logits: gradc's logits of the imported checkpoint equal PyTorch's
#      (float64) within 1e-5 relative (max|d| / max(1, max|logits|)), at two
#      sizes (D=96 with config.json, D=768 with the head count from GPT-2's
#      table), with and without the 'transformer.' prefix, with lm_head and
#      the causal-mask buffers, F32, F16 and BF16; F16/BF16 widened exactly.
#   2. round trip: export then import gives the imported checkpoint back
#      byte for byte, and the exported file holds the original tensors.
#   3. train --init-from an imported checkpoint: the loss of the first
#      update and the first evaluation equal PyTorch's on the same batch.
#   4. bad input: each exits 1 naming the file and the tensor or key.
# Exit 77 (skipped) only when PyTorch cannot be imported.
#   usage: hf_gpt2.sh GRADC SOURCE_ROOT
set -u
gradc=$1 root=$2
py=${GRADC_ORACLE_PYTHON:-/usr/bin/python3}   # Debian's python3-torch
if ! reason=$("$py" -c 'import torch, numpy' 2>&1); then
    echo "skipped: PyTorch cannot be imported by $py (install python3-torch):"
    echo "$reason" | tail -1
    exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export GRADC_CACHE_DIR="$TMP/cache"
source "$root/tests/scripts/lib/checks.sh"
oracle="$root/tests/oracle/hf_gpt2.py"

# ---------------------------------------------------------------- 1. logits
if "$py" "$oracle" check --gradc "$gradc" --dir "$TMP/w"; then ok "logits vs PyTorch"
else bad "logits vs PyTorch"; fi

# ---------------------------------------------------------------- 2. round trip
roundtrip() { # CASE [export flags]: import(export(import(F))) == import(F)
    local c=$TMP/w/$1; shift
    "$gradc" export-gpt2 "$c/ckpt.safetensors" --out "$c/back.safetensors" --quiet "$@" &&
        "$gradc" import-gpt2 "$c/back.safetensors" --out "$c/again.safetensors" --quiet \
            $([[ -f $c/config.json ]] && echo --config "$c/config.json") &&
        cmp "$c/ckpt.safetensors" "$c/again.safetensors"
}
check "round trip small-f32 (config.json, lm_head in the input)" roundtrip small-f32
check "round trip wide-f32-prefix, exported with --prefix" roundtrip wide-f32-prefix --prefix
check "round trip wide-f16 (F16 in, F32 out)" roundtrip wide-f16
# the exported file is the input itself, less the lm_head and buffers it had
check "export holds the original tensors" "$py" -c "
import sys; sys.path.insert(0, '$root/tests/oracle')
import safetensors_io as st, hf_gpt2 as h
t, _ = st.load('$TMP/w/small-f32/model.safetensors'); t.pop('lm_head.weight')
st.save('$TMP/orig.safetensors', t)
sys.exit(0 if h.same_hf('$TMP/orig.safetensors', '$TMP/w/small-f32/back.safetensors') else 1)"
"$gradc" export-gpt2 "$TMP/w/small-f32/ckpt.safetensors" --out "$TMP/cfg.safetensors" \
    --config-out "$TMP/config.json" --quiet
check "export folds LoRA adapters in (logits of the adapted model)" \
    "$py" "$oracle" lora --gradc "$gradc" --dir "$TMP/w"
check "--config-out writes the sizes" grep -q '"n_head": 3' "$TMP/config.json"
bpe=$root/../shared/data/gpt2
if [[ -f $bpe/encoder.json && -f $bpe/vocab.bpe ]]; then
    check "generate runs on an imported checkpoint" "$gradc" generate \
        "$TMP/w/small-f32/ckpt.safetensors" --bpe-dir "$bpe" --prompt 'Hello' --max-new 3
else
    skip_part "generate: no GPT-2 BPE files in $bpe"
fi

# ---------------------------------------------------------------- 3. train --init-from
# lr 1e-30 leaves every weight as it was (each AdamW step is below an ulp),
# so the first evaluation (after update 1) sees the imported weights too.
init_from() {
    local c=$TMP/w/small-f32 run=$TMP/run
    for i in $(seq 12); do
        echo "It was the best of times, it was the worst of times; every effort moves you."
    done >"$TMP/text.txt"
    "$gradc" tokenize --bpe-dir "$bpe" "$TMP/text.txt" >"$TMP/ids.txt" &&
    "$gradc" train --init-from "$c/ckpt.safetensors" --data "$TMP/text.txt" --bpe-dir "$bpe" \
        --set drop_rate=0 --train-frac 1 --no-shuffle --batch 2 --seq 32 --steps 1 \
        --lr 1e-30 --weight-decay 0 --eval-every 1 --eval-batches 1 --out "$run" \
        >"$TMP/train.out" || { cat "$TMP/train.out"; return 1; }
    local want got
    want=$("$py" "$oracle" loss "$c/model.safetensors" "$c/config.json" "$TMP/ids.txt" 2 32)
    got=$(awk -F, 'NR == 2 {print $4}' "$run/log.csv")
    grep -q "^init: 36 params" "$TMP/train.out" || { echo "no init line"; return 1; }
    echo "first eval loss: gradc $got, PyTorch $want"
    awk -v g="$got" -v w="$want" 'BEGIN {d = g - w; if (d < 0) d = -d;
        s = w < 0 ? -w : w; exit !(d <= 1e-5 * (s > 1 ? s : 1))}'
}
if [[ -f $bpe/encoder.json ]]; then
    check "train --init-from: first eval loss = PyTorch's" init_from
    refuse "train --init-from with --resume" "together" "$gradc" train --resume "$TMP/run/ckpt.safetensors" \
        --init-from "$TMP/w/small-f32/ckpt.safetensors" --data "$TMP/text.txt"
    refuse "train --init-from a checkpoint of another size" "was it pretrained at another size" \
        "$gradc" train "$root/models/gpt2-small.json" --set n_layers=2 --set emb_dim=96 \
        --set n_heads=3 --set context_length=32 --set qkv_bias=1 --set tie_embeddings=1 \
        --init-from "$TMP/w/small-f32/ckpt.safetensors" --data "$TMP/text.txt" \
        --bpe-dir "$bpe" --train-frac 1 --out "$TMP/run2" --steps 1
    refuse "train --init-from into a model that would drop weights" "holds 'trf_blocks.0.att.W_" \
        "$gradc" train "$root/models/gpt2-small.json" --set n_layers=2 --set emb_dim=96 \
        --set n_heads=3 --set context_length=64 --set tie_embeddings=1 \
        --init-from "$TMP/w/small-f32/ckpt.safetensors" --data "$TMP/text.txt" \
        --bpe-dir "$bpe" --train-frac 1 --out "$TMP/run3" --steps 1
else
    skip_part "train --init-from: no GPT-2 BPE files in $bpe"
fi

# ---------------------------------------------------------------- 4. bad input
b=$TMP/bad
"$py" "$oracle" bad --dir "$b"
imp() { "$gradc" import-gpt2 "$@" --out "$TMP/x.safetensors"; }
check "tiny good file imports (the bad ones differ from it in one place)" \
    imp "$b/good.safetensors" --config "$b/config.json" --quiet
refuse "missing tensor" "missing.safetensors': tensor 'h.0.mlp.c_fc.bias' is missing" \
    imp "$b/missing.safetensors" --config "$b/config.json"
refuse "extra tensor" "extra.safetensors': tensor 'h.0.attn.rotary.weight' is not part" \
    imp "$b/extra.safetensors" --config "$b/config.json"
refuse "misshaped tensor" "misshaped.safetensors': tensor 'h.0.attn.c_proj.weight' has shape \[32, 33\]" \
    imp "$b/misshaped.safetensors" --config "$b/config.json"
refuse "lm_head != wte" "lm_head.safetensors': tensor 'lm_head.weight' differs from wte" \
    imp "$b/lm_head.safetensors" --config "$b/config.json"
refuse "integer tensor" "int.safetensors': tensor 'h.0.ln_2.bias' is not F32, F16 or BF16" \
    imp "$b/int.safetensors" --config "$b/config.json"
refuse "prefix on some names only" "mixed.safetensors': tensor 'ln_f.bias' is not part" \
    imp "$b/mixed.safetensors" --config "$b/config.json"
refuse "unknown n_embd without --config" "n_embd is 32 (from wte.weight), not one of GPT-2's" imp "$b/good.safetensors"
refuse "config: another activation" "relu.json': activation_function" \
    imp "$b/good.safetensors" --config "$b/relu.json"
refuse "config: a size missing" "nolayer.json': n_layer is missing" \
    imp "$b/good.safetensors" --config "$b/nolayer.json"
refuse "config disagrees with the shapes" "good.safetensors': tensor 'wte.weight' has shape" \
    imp "$b/good.safetensors" --config "$TMP/w/small-f32/config.json"
# export: checkpoints that are not GPT-2s
"$gradc" import-gpt2 "$b/good.safetensors" --config "$b/config.json" --out "$b/ck.safetensors" \
    --quiet
"$py" -c "
import sys; sys.path.insert(0, '$root/tests/oracle')
import numpy as np, safetensors_io as st
t, m = st.load('$b/ck.safetensors')
m = {k: v for k, v in m.items() if not k.startswith('gradc.')}   # edited: no hashes
st.save('$b/head.safetensors', dict(t, **{'out_head.bias': np.zeros(2, np.float32)}), m)
st.save('$b/nonorm.safetensors', {k: v for k, v in t.items() if k != 'trf_blocks.0.norm2.scale'}, m)
st.save('$b/lora.safetensors', dict(t, **{'trf_blocks.0.att.W_query.weight.lora_A':
        np.zeros((32, 2), np.float32)}), m)"
refuse "export: a param GPT-2 has no place for" "head.safetensors': tensor 'out_head.bias' has no place" \
    "$gradc" export-gpt2 "$b/head.safetensors" --out "$TMP/x.safetensors"
refuse "export: a missing param" "nonorm.safetensors': param 'trf_blocks.0.norm2.scale' is missing" \
    "$gradc" export-gpt2 "$b/nonorm.safetensors" --out "$TMP/x.safetensors"
refuse "export: a gradc model that is not GPT-2 shaped" "param 'tok_emb.weight' is missing" \
    "$gradc" export-gpt2 "$TMP/w/small-f32/model.safetensors" --out "$TMP/x.safetensors"
refuse "export: adapters without their metadata" "lora" \
    "$gradc" export-gpt2 "$b/lora.safetensors" --out "$TMP/x.safetensors"
checks_done
