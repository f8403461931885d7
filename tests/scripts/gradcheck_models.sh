#!/usr/bin/env bash
# gradcheck_models.sh — `gradc gradcheck` on the GPT models of models/.
#
#   bash tests/scripts/gradcheck_models.sh GRADC_BINARY SOURCE_ROOT
#
# Autodiff against central finite differences, in the interpreter in double
# precision (docs/autodiff.md), for every trainable parameter of:
#   - models/gpt-mini.json as is (the command of the issue's "done when"),
#   - models/gpt-char.json (two samples per parameter, to keep the test short),
#   - models/gpt2-small.json shrunk with --set to 2 tiny layers, every element
#     of most tensors (--samples 64), and with a frozen embedding;
# each must exit 0 with every printed error below 1e-6.  Then a rule broken
# on purpose (--break-rule) must make gradcheck exit 1 and name a parameter
# and the op whose rule is wrong.
set -uo pipefail

GRADC=${1:?usage: gradcheck_models.sh GRADC_BINARY SOURCE_ROOT}
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
M=$SRC/models
TINY=(--set emb_dim=16 --set n_heads=2 --set n_layers=2 --set vocab_size=50
      --set context_length=16)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Every parameter line "  NAME ELEMENTS CHECKED ERROR" has ERROR < 1e-6.
errors_below() {
    awk 'NF == 4 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {
             n++; if ($4 + 0 >= 1e-6) { bad++; print "  too large: " $0 } }
         END { if (n == 0) { print "  no parameter lines"; exit 1 } exit bad > 0 }' "$OUT"
}

passes() {
    local what=$1
    shift
    echo "== gradcheck $what"
    "$GRADC" gradcheck "$@" >"$OUT" 2>&1
    local rc=$?
    tail -n 2 "$OUT"
    [[ $rc == 0 ]] || { cat "$OUT"; fail "$what: exit $rc"; return; }
    errors_below || fail "$what: an error is not below 1e-6"
    grep -q '^ok: ' "$OUT" || fail "$what: no 'ok:' verdict"
}

passes gpt-mini "$M/gpt-mini.json"
passes gpt-char "$M/gpt-char.json" --samples 2
passes gpt2-small-tiny "$M/gpt2-small.json" "${TINY[@]}" --samples 64 --seed 3
passes gpt2-small-tiny-frozen "$M/gpt2-small.json" "${TINY[@]}" --freeze 'tok_emb.*'
grep -q 'tok_emb.weight' "$OUT" && fail "frozen tok_emb.weight was checked"
# the classifier head at the last real token: last [B] is drawn in [0, T)
passes gpt2-classifier-tiny "$M/gpt2-classifier.json" "${TINY[@]}" --set n_classes=3 \
    --set qkv_bias=1 --samples 16

# A wrong rule is caught: exit 1, the parameter and the op are named.
for op in layernorm gelu softmax gather; do
    echo "== gradcheck with the rule of $op broken"
    "$GRADC" gradcheck "$M/gpt2-small.json" "${TINY[@]}" --break-rule $op >"$OUT" 2>&1
    rc=$?
    grep -E 'error|hint' "$OUT"
    [[ $rc == 1 ]] || fail "broken $op: exit $rc, expected 1"
    grep -q "gradient of '[a-z_.0-9A-Z]*' is wrong" "$OUT" || fail "broken $op: no parameter named"
    grep -q "the gradient rule of '$op'" "$OUT" || fail "broken $op: the op is not named"
done

# User errors: exit 1 with a hint.
"$GRADC" gradcheck "$M/gpt-mini.json" --break-rule gelux >"$OUT" 2>&1
[[ $? == 1 ]] && grep -q "did you mean 'gelu'" "$OUT" || fail "unknown --break-rule op"
"$GRADC" gradcheck "$M/gpt-mini.json" --samples 0 >"$OUT" 2>&1
[[ $? == 1 ]] || fail "--samples 0 accepted"

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "all gradchecks passed"
