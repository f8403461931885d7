#!/usr/bin/env bash
# flops_agree.sh — one cost model: check, plan and bench print the same FLOPs.
#
# ir/cost.h is gradc's only FLOP model (per op: the cost and flops columns
# of ir/ops.def).  For the same model and binding:
#   - `gradc check`'s forward FLOPs/token times B*T, the `(input)` row of
#     `gradc plan` and bench's "per forward of the model" are one number
#     (the graph as loaded);
#   - `gradc plan`'s final `flops:` and bench's "per step as compiled" are
#     one number (the compiled graph; codegen records each kernel's FLOPs
#     with ir_cost_run_flops, the function plan counts with);
# for a forward and for a train step (--train), on gpt-mini with one layer.
#   usage: flops_agree.sh GRADC SOURCE_ROOT
set -u
gradc=${1:?usage: flops_agree.sh GRADC SOURCE_ROOT}
root=${2:?usage: flops_agree.sh GRADC SOURCE_ROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GRADC_CACHE_DIR="$tmp/cache" GRADC_THREADS=1
model=(models/gpt-mini.json --set n_layers=1)
bind=(--batch 2 --seq 32)
cd "$root" || exit 1
failed=0

# same NAME A B: A and B are the same non-empty integer
same() {
    if [[ -n $2 && $2 == "$3" ]]; then echo "ok   $1: $2"
    else echo "FAIL $1: '$2' != '$3'"; failed=1; fi
}

"$gradc" check "${model[@]}" "${bind[@]}" >"$tmp/check" 2>&1 || { cat "$tmp/check"; exit 1; }
per_token=$(sed -n 's/^forward FLOPs\/token: \([0-9,]*\) .*/\1/p' "$tmp/check" | tr -d ,)
check_total=$((per_token * 2 * 32))
for mode in forward train; do
    flag=(); [[ $mode == train ]] && flag=(--train)
    "$gradc" plan "${model[@]}" "${bind[@]}" "${flag[@]}" >"$tmp/plan" 2>&1 ||
        { cat "$tmp/plan"; exit 1; }
    "$gradc" bench "${model[@]}" "${bind[@]}" "${flag[@]}" --steps 1 --warmup 0 >"$tmp/bench" 2>&1 ||
        { cat "$tmp/bench"; exit 1; }
    plan_input=$(awk '$1 == "(input)" {print $5}' "$tmp/plan")
    plan_final=$(sed -n 's/^flops: \([0-9]*\)$/\1/p' "$tmp/plan")
    bench_step=$(sed -n 's/^flops: \([0-9]*\) per step as compiled.*/\1/p' "$tmp/bench")
    bench_model=$(sed -n 's/^flops: .*, \([0-9]*\) per forward of the model.*/\1/p' "$tmp/bench")
    same "$mode: check x B*T = plan (input)" "$check_total" "$plan_input"
    same "$mode: bench's model figure = check's" "$bench_model" "$check_total"
    same "$mode: bench as compiled = plan's flops" "$bench_step" "$plan_final"
done
exit $failed
