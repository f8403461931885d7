#!/usr/bin/env bash
# gradc against PyTorch (tests/oracle/README.md): the same weights and the
# same batch must give the same logits, loss, gradients and AdamW updates
# within the stated tolerances, for models/gpt-mini.json and a 2-layer
# GPT-2-shaped model (d=768, 12 heads), and gpt-char shrunk to 2 layers;
# dropout is checked by its statistics.
#
# Exit 77 (skipped) only when PyTorch cannot be imported.  When gradc lacks
# something the check needs (the train step, say), the test FAILS with a
# MISSING line naming it: a parity test that cannot run has not passed.
#   usage: oracle_pytorch.sh GRADC SOURCE_ROOT
#   GRADC_ORACLE_PYTHON=PATH   the python with torch (default /usr/bin/python3)
set -u
gradc=$1 root=$2
py=${GRADC_ORACLE_PYTHON:-/usr/bin/python3}   # Debian's python3-torch; a pyenv python3 may come first on PATH

if ! reason=$("$py" -c 'import torch, numpy' 2>&1); then
    echo "skipped: PyTorch cannot be imported by $py (install python3-torch):"
    echo "$reason" | tail -1
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GRADC_CACHE_DIR="$tmp/cache"
oracle="$root/tests/oracle/oracle.py"

failed=0 missing=0
check() { # NAME ARGS...: one oracle run; its output, then a status line
    local name=$1; shift
    echo "== $name"
    "$py" "$oracle" --gradc "$gradc" "$@"
    case $? in
        0) echo "ok    $name" ;;
        3) echo "MISSING $name (see above)"; missing=$((missing + 1)) ;;
        *) echo "FAIL  $name"; failed=$((failed + 1)) ;;
    esac
}

check "dropout statistics" --dropout
check "gpt-mini" --model "$root/models/gpt-mini.json" --set drop_rate=0 --batch 2 --seq 32
check "gpt2-small 2 layers" --model "$root/models/gpt2-small.json" --set n_layers=2 \
    --set drop_rate=0 --batch 2 --seq 32
# qkv biases and tied embeddings (one param, two uses), which the two above lack
check "gpt-char 2 layers" --model "$root/models/gpt-char.json" --set n_layers=2 \
    --set drop_rate=0 --batch 2 --seq 32

echo "$failed failed, $missing could not run"
[ "$failed" -eq 0 ] && [ "$missing" -eq 0 ]
