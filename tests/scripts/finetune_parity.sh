#!/usr/bin/env bash
# finetune_parity.sh — `gradc finetune classify` and the book's chapter 6 in
# PyTorch agree update for update (tests/oracle/classify_parity.py): a 2-layer
# gpt2-small (d=64) classifier on a synthetic two-class data set, batch 8,
# AdamW lr 5e-5 wd 0.1, 2 epochs, with the book's trainable set and with
# every param trainable; the loss of every update, the accuracies after every
# epoch, the weights after the last update and the frozen weights compared.
#
# Exit 77 (skipped) only when PyTorch cannot be imported or the GPT-2 BPE
# files are in neither the data cache nor ../shared/data/gpt2.
#   usage: finetune_parity.sh GRADC SOURCE_ROOT
#   GRADC_ORACLE_PYTHON=PATH   the python with torch (default /usr/bin/python3)
set -u
gradc=$1 root=$2
py=${GRADC_ORACLE_PYTHON:-/usr/bin/python3}
if ! reason=$("$py" -c 'import torch, numpy' 2>&1); then
    echo "skipped: PyTorch cannot be imported by $py (install python3-torch):"
    echo "$reason" | tail -1
    exit 77
fi
cache=${GRADC_DATA_DIR:-$HOME/.cache/gradc/data}
if [[ ! -f $cache/gpt2/encoder.json || ! -f $cache/gpt2/vocab.bpe ]]; then
    shared=$root/../shared/data
    if [[ -f $shared/gpt2/encoder.json && -f $shared/gpt2/vocab.bpe ]]; then
        export GRADC_DATA_DIR=$shared
    else
        echo "skipped: the GPT-2 BPE files are in neither $cache/gpt2 (scripts/deps.sh puts"
        echo "them there) nor $shared/gpt2"
        exit 77
    fi
fi
"$py" "$root/tests/oracle/classify_parity.py" --gradc "$gradc"
