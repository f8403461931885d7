#!/usr/bin/env bash
# determinism.sh — the same bits at 1 and 2 threads, at every OpenBLAS core
# type this CPU can run (issue 12, section 3):
#
#   check     `gradc train --determinism-check 4` on a char-level gpt-mini
#             (2 layers) compares every tensor after each update at 1 and 2
#             threads, at the environment's core type and at Haswell,
#             SkylakeX and Cooperlake where the CPU has their instructions;
#   cmp       two full runs (8 updates, dropout on, evaluations in between),
#             one at --threads 1 and one at --threads 2, write checkpoints
#             that are equal byte for byte (`cmp`): a checkpoint holds no
#             wall-clock time.
#
# The text is the project's own docs (no ../shared/data needed).
#   bash tests/scripts/determinism.sh GRADC_BINARY SOURCE_ROOT
set -uo pipefail

GRADC=${1:?usage: determinism.sh GRADC_BINARY SOURCE_ROOT}
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
cd "$SRC"
cat docs/*.md > "$TMP/text.txt"

MODEL=(models/gpt-mini.json --set n_layers=2 --set drop_rate=0.1 --data "$TMP/text.txt"
       --tokenizer char --batch 4 --seq 64)

# core types this CPU can run: Haswell needs avx2, SkylakeX avx512f, Cooperlake avx512_bf16
cores=(env)
flags=$(grep -m1 '^flags' /proc/cpuinfo)
[[ $flags == *" avx2"* ]] && cores+=(Haswell)
[[ $flags == *" avx512f"* ]] && cores+=(SkylakeX)
[[ $flags == *" avx512_bf16"* ]] && cores+=(Cooperlake)

for core in "${cores[@]}"; do
    env=()
    [[ $core != env ]] && env=(OPENBLAS_CORETYPE="$core")
    if env "${env[@]}" "$GRADC" train "${MODEL[@]}" --threads 2 --determinism-check 4 \
        >"$TMP/check.out" 2>&1 && grep -q "^deterministic" "$TMP/check.out" &&
        [[ $(grep -c "tensors identical" "$TMP/check.out") == 4 ]]; then
        ok "determinism-check at core type $core ($(grep -o 'OpenBLAS [A-Za-z0-9]*' "$TMP/check.out"))"
    else
        bad "determinism-check at core type $core"; cat "$TMP/check.out"
    fi
done

for t in 1 2; do
    "$GRADC" train "${MODEL[@]}" --steps 8 --eval-every 4 --eval-batches 2 --threads "$t" \
        --out "$TMP/run$t" --quiet >"$TMP/train$t.out" 2>&1 || { cat "$TMP/train$t.out"; }
done
if [[ -s $TMP/run1/ckpt.safetensors ]] && cmp "$TMP/run1/ckpt.safetensors" "$TMP/run2/ckpt.safetensors"; then
    ok "checkpoints of 1 and 2 threads are equal byte for byte (cmp)"
else
    bad "checkpoints of 1 and 2 threads differ"
fi

checks_done
