#!/usr/bin/env bash
# train_kill.sh — kill -9 a training run at random points, resume it, and get
# the uninterrupted run's checkpoint bit for bit (issue 13; docs/training.md,
# "Guarantees"):
#
#   1. an uninterrupted run: a char-level gpt-mini (2 layers, d=64) on text
#      made from docs/, 100 updates, a checkpoint after every one
#      (--save-every 1), an evaluation every 10, on one thread (the pool's
#      spinning workers would starve the loop that watches the run);
#   2. the same run killed with SIGKILL 10 times, each time at a random moment
#      (a third of them in the start-up, the others 1 to 5 checkpoints after
#      it plus up to one update's time: in an update, an evaluation or the
#      middle of writing a checkpoint), and restarted with --resume from
#      whatever checkpoint is there (from scratch while there is none);
#   3. a last restart runs it to the end.
#
# Then: every restart either was killed or finished (none found a torn
# checkpoint), the final checkpoint equals the uninterrupted one (`cmp`:
# checkpoints hold no wall-clock time), the CSV logs hold the same losses,
# and no PATH.tmp.PID file is left.  GRADC_KILL_SEED=N replays a sequence of
# kill times.
#
#   bash tests/scripts/train_kill.sh GRADC_BINARY SOURCE_ROOT
set -uo pipefail

GRADC=${1:?usage: train_kill.sh GRADC_BINARY SOURCE_ROOT}
GRADC=$(cd "$(dirname "$GRADC")" && pwd)/$(basename "$GRADC")
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read checkpoints"; exit 77; }
TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"      # a run that ignored its folder would write runs/ here
now() { date +%s.%N; }

tr -cd '\n -~' <"$SRC/docs/training.md" | head -c 20000 >"$TMP/text.txt"
RUN=(train "$SRC/models/gpt-mini.json" --set n_layers=2 --set emb_dim=64 --set n_heads=2
     --set vocab_size=96 --tokenizer char --data "$TMP/text.txt" --seq 32 --batch 4
     --steps 100 --save-every 1 --eval-every 10 --eval-batches 2 --quiet --threads 1)

# ---------------------------------------------------------------- the uninterrupted run
t0=$(now)
"$GRADC" "${RUN[@]}" --out "$TMP/ref" || { bad "the uninterrupted run"; exit 1; }
t1=$(now)
"$GRADC" train --resume "$TMP/ref/ckpt.safetensors" --quiet 2>/dev/null   # start-up only
t2=$(now)
start_ms=$(awk -v b="$t1" -v c="$t2" 'BEGIN { printf "%d", 1000 * (c - b) + 1 }')
step_ms=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { s = (b - a - (c - b)) * 10; printf "%d", (s > 1 ? s : 1) }')
seed=${GRADC_KILL_SEED:-$$}
RANDOM=$seed
echo "     uninterrupted run: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, start-up ${start_ms} ms, ${step_ms} ms an update (GRADC_KILL_SEED=$seed)"

# ---------------------------------------------------------------- killed and resumed
start() {
    if [[ -f $TMP/run/ckpt.safetensors ]]; then
        "$GRADC" train --resume "$TMP/run/ckpt.safetensors" --quiet --threads 1 >>"$TMP/run.log" 2>&1 &
    else
        "$GRADC" "${RUN[@]}" --out "$TMP/run" >>"$TMP/run.log" 2>&1 &
    fi
    pid=$!
}
pause() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
# after_saves N: returns once the run has replaced its checkpoint N times (or ended), as
# seen by its modification time (the inode numbers of the files it renames repeat)
after_saves() {
    local seen now n=0
    seen=$(stat -c %y "$TMP/run/ckpt.safetensors" 2>/dev/null || echo none)
    while (( n < $1 )) && kill -0 "$pid" 2>/dev/null; do
        now=$(stat -c %y "$TMP/run/ckpt.safetensors" 2>/dev/null || echo none)
        [[ $now != "$seen" ]] && n=$((n + 1)) && seen=$now
        sleep 0.002
    done
}
torn=0 finished=0 left=0 steps=""
for k in $(seq 10); do
    start
    if (( RANDOM % 3 == 0 )); then
        pause $((RANDOM % start_ms))                   # in the start-up
    else
        after_saves $((1 + RANDOM % 5)) && pause $((RANDOM % step_ms))   # in the updates
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    [[ $rc == 0 ]] && finished=$((finished + 1))
    [[ $rc != 0 && $rc != 137 ]] && torn=$((torn + 1)) && echo "     restart $k exited $rc"
    tmp=$(find "$TMP/run" -name '*.tmp.*' 2>/dev/null | wc -l)
    left=$((left + tmp))
    step=none
    [[ -f $TMP/run/ckpt.safetensors ]] &&
        step=$(python3 -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
print(json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]])['__metadata__']['step'])" \
            "$TMP/run/ckpt.safetensors" 2>/dev/null || echo unreadable)
    steps="$steps $step"
done
echo "     checkpoint step after each kill:$steps; temporary files left by the kills: $left"
start
wait "$pid" || bad "the last restart: $(tail -5 "$TMP/run.log")"

check "no restart found a torn or unreadable checkpoint" bash -c "[[ $torn == 0 ]] && [[ '$steps' != *unreadable* ]]"
check "the killed and resumed run ends at the uninterrupted run's checkpoint (cmp)" \
    cmp "$TMP/run/ckpt.safetensors" "$TMP/ref/ckpt.safetensors"
check "and at its losses (log.csv)" cmp <(cut -d, -f1-5 "$TMP/run/log.csv") <(cut -d, -f1-5 "$TMP/ref/log.csv")
check "no temporary file is left" bash -c "! find '$TMP/run' -name '*.tmp.*' | grep -q ."
if [[ $left -gt 0 ]]; then
    check "the restarts said they removed the temporary files of the killed runs" \
        grep -q "a temporary file left by process" "$TMP/run.log"
fi
echo "     $finished of the 10 restarts finished before their kill"

checks_done
