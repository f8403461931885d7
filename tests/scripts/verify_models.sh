#!/usr/bin/env bash
# `gradc verify` on every model in models/: the JIT-compiled graph against
# the reference interpreter, as a forward pass and as a train step.
#
# Models are shrunk to keep the test quick: 2 layers where the config has
# n_layers (resolved through `base` files), B=2, T=16; train steps also get
# a vocabulary of at most 1024 where the config has vocab_size (the
# interpreter keeps every value of a train step in double precision, and
# AdamW over GPT-2's 50257x768 tables would need tens of GB).  A check that
# cannot run (an op without a lowering, a build without the autodiff and
# optimizer passes) is skipped with a printed reason, and then the whole test
# exits 77 (skipped) rather than 0; 1 if any verify failed.
#   usage: verify_models.sh GRADC SOURCE_ROOT
set -u
gradc=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GRADC_CACHE_DIR="$tmp/cache"

# "--set n_layers=2" when the model's config (or a base file's) has
# n_layers; with "train" also "--set vocab_size=1024" when it is larger.
shrink_flags() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, os, sys
path, mode = sys.argv[1], sys.argv[2]
config = {}
while path:
    d = json.load(open(path))
    config = {**d.get("config", {}), **config}
    base = d.get("base")
    path = os.path.join(os.path.dirname(path), base) if base else None
flags = ["--set n_layers=2"] if "n_layers" in config else []
vocab = config.get("vocab_size")
if mode == "train" and isinstance(vocab, (int, float)) and vocab > 1024:
    flags.append("--set vocab_size=1024")
print(" ".join(flags))
PY
}

ran=0 failed=0 skipped=0 skipped_train=""
check() { # NAME ARGS...: runs gradc verify, records the outcome
    local name=$1; shift
    if "$gradc" verify "$@" >"$tmp/out" 2>&1; then
        ran=$((ran + 1))
        echo "ok    $name: $(grep '^worst error' "$tmp/out")"
        return 0
    fi
    if grep -q "no kernel lowering" "$tmp/out"; then
        echo "skip  $name: $(head -1 "$tmp/out")"
        skipped=$((skipped + 1))
        return 0
    fi
    if grep -q "needs the autodiff and optimizer passes" "$tmp/out"; then
        skipped_train="the build has no autodiff/optimizer passes"
        echo "skip  $name: $skipped_train"
        skipped=$((skipped + 1))
        return 0
    fi
    ran=$((ran + 1)) failed=$((failed + 1))
    echo "FAIL  $name: gradc verify $*"
    cat "$tmp/out"
}

for model in "$root"/models/*.json; do
    name=$(basename "$model" .json)
    flags=$(shrink_flags "$model" forward)
    # shellcheck disable=SC2086 # flags are words
    check "$name forward" "$model" --batch 2 --seq 16 $flags
    flags=$(shrink_flags "$model" train)
    # shellcheck disable=SC2086
    [ -z "$skipped_train" ] && check "$name train" "$model" --batch 2 --seq 16 --train $flags
done
[ -n "$skipped_train" ] && echo "note: train-step verification skipped: $skipped_train"
echo "$ran verified, $failed failed, $skipped skipped"
[ "$failed" -gt 0 ] && exit 1
[ "$skipped" -gt 0 ] && exit 77   # a check that did not run is a skip, not a pass
[ "$ran" -eq 0 ] && exit 77
exit 0
