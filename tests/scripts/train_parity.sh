#!/usr/bin/env bash
# train_parity.sh — `gradc train` and PyTorch's loop agree update for
# update (tests/oracle/train_parity.py): 40 updates of a 2-layer gpt-mini on
# the repository's LICENSE text (characters), warmup and clipping on, from
# gradc's init; every update's loss and every weight at the end are compared.
#
# Exit 77 (skipped) only when PyTorch cannot be imported.
#   usage: train_parity.sh GRADC SOURCE_ROOT
#   GRADC_ORACLE_PYTHON=PATH   the python with torch (default /usr/bin/python3)
set -u
gradc=$1 root=$2
py=${GRADC_ORACLE_PYTHON:-/usr/bin/python3}
if ! reason=$("$py" -c 'import torch, numpy' 2>&1); then
    echo "skipped: PyTorch cannot be imported by $py (install python3-torch):"
    echo "$reason" | tail -1
    exit 77
fi
"$py" "$root/tests/oracle/train_parity.py" --gradc "$gradc" --text "$root/LICENSE"
