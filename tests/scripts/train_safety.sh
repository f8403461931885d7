#!/usr/bin/env bash
# train_safety.sh — a training run loses nothing (issue 13; docs/training.md,
# "Guarantees"), on a tiny char-level gpt-mini and text made from docs/:
#
#   before    an unwritable checkpoint, CSV or plot path, and a standard output
#             that takes nothing, are refused before the first update;
#   faults    GRADC_FAULT makes the checkpoint, the CSV log or the plot fail
#             with ENOSPC mid-run: the run warns and goes on, a checkpoint is
#             retried and then saved to a printed rescue path (removed once
#             a later save reaches the path), the previous checkpoint stays
#             whole, no temporary file is left, and the results equal an
#             undisturbed run's byte for byte;
#   resume    --resume writes into the run's own folder, not runs/MODEL_NAME,
#             and saves and samples as the run did; a checkpoint of another run
#             (or ahead of this one) is not overwritten without --force;
#   stale     PATH.tmp.PID files of dead processes are removed at the start,
#             and the run says so;
#   done      --resume at or past --steps says "nothing to do" (also under
#             --quiet) and rewrites nothing.
#
#   bash tests/scripts/train_safety.sh GRADC_BINARY SOURCE_ROOT
set -uo pipefail

GRADC=${1:?usage: train_safety.sh GRADC_BINARY SOURCE_ROOT}
GRADC=$(cd "$(dirname "$GRADC")" && pwd)/$(basename "$GRADC")
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
cd "$TMP"      # a run without --out would write runs/ here
# expect NAME RC PATTERN CMD...: CMD exits RC and its stdout+stderr match PATTERN
expect() {
    local name=$1 want=$2 pat=$3 rc; shift 3
    "$@" >"$TMP/out" 2>&1; rc=$?
    if [[ $rc == "$want" ]] && grep -q -- "$pat" "$TMP/out"; then ok "$name"
    else bad "$name: exit $rc, output: $(head -c 600 "$TMP/out")"; fi
}
no_step() { ! grep -q "^step " "$TMP/out"; }
no_tmp() { ! find "$@" -name '*.tmp.*' | grep -q .; }
step_of() { python3 -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
print(json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]])['__metadata__']['step'])" "$1"; }
# same_tensors A B: every tensor and the step equal (the metadata may say other paths)
same_tensors() { python3 -c "
import json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items()
            if k != '__metadata__'}, h['__metadata__']['step']
sys.exit(0 if load(sys.argv[1]) == load(sys.argv[2]) else 1)" "$1" "$2" 2>/dev/null; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read checkpoints"; exit 77; }

tr -cd '\n -~' <"$SRC/docs/training.md" | head -c 20000 >text.txt
M=("$SRC/models/gpt-mini.json" --set n_layers=1 --set emb_dim=32 --set n_heads=2
   --set vocab_size=96 --tokenizer char --data text.txt --seq 16 --batch 2)
R=(--eval-every 2 --eval-batches 2 --save-every 2)

# ---------------------------------------------------------------- checked before the first step
touch afile
expect "--ckpt in a folder that is a file: refused before the first step" 1 \
    "cannot write the checkpoint 'afile/ck.safetensors': 'afile' is not a folder" \
    "$GRADC" train "${M[@]}" --steps 4 --ckpt afile/ck.safetensors
check "  ... and no update ran" no_step
expect "--out where no file can be created (/proc/self), --eval-every 0: refused first" 1 \
    "cannot write the checkpoint '/proc/self/ckpt.safetensors'" \
    "$GRADC" train "${M[@]}" --steps 4 --eval-every 0 --out /proc/self
check "  ... and no update ran" no_step
if [[ $(id -u) != 0 ]]; then
    mkdir ro && chmod 555 ro
    expect "--out at a read-only folder, --eval-every 0: refused first" 1 \
        "cannot write the checkpoint 'ro/ckpt.safetensors': Permission denied" \
        "$GRADC" train "${M[@]}" --steps 4 --eval-every 0 --out ro
    check "  ... and no update ran" no_step
fi
expect "--csv into a missing folder: refused first" 1 "cannot write the CSV log 'nowhere/log.csv'" \
    "$GRADC" train "${M[@]}" --steps 4 --out a0 --csv nowhere/log.csv
expect "--plot onto a folder: refused first" 1 "cannot write the loss plot '.*': it is a folder" \
    "$GRADC" train "${M[@]}" --steps 4 --out a0 --plot "$TMP"
"$GRADC" train "${M[@]}" --steps 4 --out a0 >/dev/full 2>"$TMP/out"
check "stdout that takes nothing: refused first" \
    grep -q "cannot write the progress to standard output: No space left on device" "$TMP/out"

# ---------------------------------------------------------------- faults mid-run
"$GRADC" train "${M[@]}" "${R[@]}" --steps 6 --out ref --quiet || bad "the undisturbed run"
"$GRADC" train "${M[@]}" "${R[@]}" --steps 4 --out ref4 --quiet || bad "the undisturbed run to 4"

GRADC_FAULT=write:1:log.csv expect "CSV write fails once: a warning, the run goes on" 0 \
    "warning: cannot write the CSV log 'csv/log.csv': No space left on device" \
    "$GRADC" train "${M[@]}" "${R[@]}" --steps 6 --out csv --quiet
check "  ... and the next evaluation rewrites the log whole" cmp -s <(cut -d, -f1-5 csv/log.csv) \
    <(cut -d, -f1-5 ref/log.csv)
GRADC_FAULT=write:1+:loss.svg expect "the plot fails every time: warnings, then exit 1 at the end" 1 \
    "error: cannot write the loss plot 'svg/loss.svg'" \
    "$GRADC" train "${M[@]}" "${R[@]}" --steps 6 --out svg --quiet
check "  ... after the checkpoint is saved (equal to the undisturbed run's)" \
    cmp -s svg/ckpt.safetensors ref/ckpt.safetensors
check "  ... and the CSV log is written" cmp -s <(cut -d, -f1-5 svg/log.csv) <(cut -d, -f1-5 ref/log.csv)

GRADC_FAULT=write:1:ckpt.safetensors expect "a checkpoint write fails once: tried again, exit 0" 0 \
    "trying once more" "$GRADC" train "${M[@]}" "${R[@]}" --steps 6 --out once --quiet
check "  ... and the checkpoint equals the undisturbed run's" cmp -s once/ckpt.safetensors ref/ckpt.safetensors

mkdir -p rescue
GRADC_FAULT=write:1-2:mid/ckpt.safetensors TMPDIR=$TMP/rescue expect \
    "a save fails twice mid-run: saved to a printed rescue path, and the run goes on" 0 \
    "the checkpoint of step 2 is saved to $TMP/rescue/gradc-rescue/.*mid-ckpt.safetensors instead" \
    "$GRADC" train "${M[@]}" "${R[@]}" --steps 6 --out mid --quiet
check "  ... the next save reaches the path and removes the out-of-date rescued file" \
    bash -c "grep -q 'removed .*mid-ckpt.safetensors: .mid/ckpt.safetensors. holds a later step (4)' \
    '$TMP/out' && ! ls rescue/gradc-rescue | grep -q ."
check "  ... and the run ends at the undisturbed run's checkpoint" \
    cmp -s mid/ckpt.safetensors ref/ckpt.safetensors

cp ref4/ckpt.safetensors held.safetensors
cp -r ref4 full
GRADC_FAULT=write:1+:full/ckpt.safetensors TMPDIR=$TMP/rescue expect \
    "the checkpoint folder stays full: saved to a printed rescue path, exit 1" 1 \
    "the final checkpoint could not be written to 'full/ckpt.safetensors'; it is at '$TMP/rescue/gradc-rescue/" \
    "$GRADC" train --resume full/ckpt.safetensors --steps 6 --quiet
check "  ... the previous checkpoint is whole" cmp -s full/ckpt.safetensors held.safetensors
check "  ... no temporary file is left" no_tmp full rescue
rescued=$(ls rescue/gradc-rescue/*.safetensors 2>/dev/null | head -1)
check "  ... the rescued checkpoint has the undisturbed run's tensors at step 6" \
    same_tensors "${rescued:-none}" ref/ckpt.safetensors
"$GRADC" train --resume "${rescued:-none}" --steps 8 --quiet || bad "resume the rescued checkpoint"
[[ $(step_of full/ckpt.safetensors) == 8 ]] && ok "  ... and resuming it writes step 8 back into full/" ||
    bad "  ... full/ckpt.safetensors is at step $(step_of full/ckpt.safetensors), expected 8"

cp -r ref4 nowhere
GRADC_FAULT=write:1+:ckpt.safetensors GRADC_SAVE_WAIT_S=1 TMPDIR=$TMP/rescue expect \
    "no path takes the checkpoint: it waits, then exit 1 naming the whole one" 1 \
    "'nowhere/ckpt.safetensors' still holds step 4, whole" \
    "$GRADC" train --resume nowhere/ckpt.safetensors --steps 6 --quiet
check "  ... which is intact" cmp -s nowhere/ckpt.safetensors held.safetensors
check "  ... and no temporary file is left" no_tmp nowhere rescue

# ---------------------------------------------------------------- resume into the run's folder
"$GRADC" train "${M[@]}" "${R[@]}" --steps 2 --out mine --quiet
"$GRADC" train --resume mine/ckpt.safetensors --steps 6 >resume.log 2>&1
[[ ! -e runs && $(step_of mine/ckpt.safetensors) == 6 ]] &&
    ok "--resume without --out writes into the run's folder (step 6 in mine/, no runs/)" ||
    bad "--resume without --out: mine/ckpt.safetensors is at step $(step_of mine/ckpt.safetensors), runs/ $([[ -e runs ]] && echo exists)"
check "  ... keeps saving every 2 steps (--save-every is a setting of the run)" \
    grep -q "saved mine/ckpt.safetensors (step 4)" resume.log
check "  ... and equals the undisturbed run's" cmp -s mine/ckpt.safetensors ref/ckpt.safetensors
S=(--prompt "The " --sample-tokens 5 --sample-every 2)
"$GRADC" train "${M[@]}" "${R[@]}" "${S[@]}" --steps 4 --out sref --quiet >sref.log 2>&1
"$GRADC" train "${M[@]}" "${R[@]}" "${S[@]}" --steps 2 --out spart --quiet >spart.log 2>&1
"$GRADC" train --resume spart/ckpt.safetensors --steps 4 --quiet >>spart.log 2>&1
check "  ... and samples as the run did (--prompt, --sample-tokens, --sample-every kept)" \
    bash -c "[[ \$(grep -c '^sample: The ' sref.log) == 2 ]] && cmp -s <(grep '^sample' sref.log) \
    <(grep '^sample' spart.log)"
expect "another run's checkpoint is not overwritten" 1 "'mine/ckpt.safetensors' holds a checkpoint of another run" \
    "$GRADC" train "${M[@]}" --seed 7 --steps 2 --out mine --quiet
expect "nor one of the same run that is ahead" 1 "holds step 6 of this same run, ahead of step 0" \
    "$GRADC" train "${M[@]}" "${R[@]}" --steps 2 --out mine --quiet
check "  ... which is intact" cmp -s mine/ckpt.safetensors ref/ckpt.safetensors
"$GRADC" train "${M[@]}" --seed 7 --steps 2 --out mine --quiet --force &&
    [[ $(step_of mine/ckpt.safetensors) == 2 ]] && ok "--force overwrites it" || bad "--force overwrites it"

# ---------------------------------------------------------------- stale temporary files
cp -r ref4 stale
for f in ckpt.safetensors log.csv loss.svg; do head -c 1000 ref4/ckpt.safetensors >"stale/$f.tmp.999999999"; done
touch stale/ckpt.safetensors.tmp.1       # pid 1 runs: not ours to remove
expect "stale temporary files of dead processes are removed, and said so" 0 \
    "removed stale/ckpt.safetensors.tmp.999999999: a temporary file left by process 999999999" \
    "$GRADC" train --resume stale/ckpt.safetensors --steps 6
check "  ... all three" bash -c "[[ \$(ls stale | grep -c 'tmp.999999999') == 0 ]]"
check "  ... but not a running process's" test -f stale/ckpt.safetensors.tmp.1

# ---------------------------------------------------------------- nothing to do
cp ref4/ckpt.safetensors done.safetensors
touch -d '2001-01-01' done.safetensors
expect "--resume at --steps says there is nothing to do, under --quiet too" 0 \
    "nothing to do: done.safetensors is at step 4, and this run ends at step 4" \
    "$GRADC" train --resume done.safetensors --steps 4 --quiet --out donedir
expect "--resume past --steps too" 0 "is at step 4, and this run ends at step 2" \
    "$GRADC" train --resume done.safetensors --steps 2 --quiet --out donedir
check "  ... and nothing is written" bash -c "[[ ! -e donedir/ckpt.safetensors && \$(stat -c %Y done.safetensors) == \$(date -d 2001-01-01 +%s) ]]"

checks_done
