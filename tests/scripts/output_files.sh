#!/usr/bin/env bash
# output_files.sh — where gradc's output goes, and what a failed write does
# (issue 13; ir/outfile.c):
#
#   in place  -o onto a FIFO or a device node writes into it, and it stays a
#             FIFO or a device (renaming a temporary file over it would have
#             put a regular file there): dump, opt, dot, dump --stage=llvm,
#             plot, and train's --ckpt/--csv/--plot;
#   atomic    -o onto a regular file or a symbolic link leaves no temporary
#             file; the link stays a link;
#   stdout    a failed write on standard output (/dev/full) exits 1 with a
#             message naming standard output, in every command that prints;
#   disk full -o onto a device like /dev/full: exit 1, "No space left on
#             device".
#
# Device nodes are made in a scratch folder (mknod, when allowed): a broken
# gradc would replace them, and must not replace the system's.  Where mknod
# is refused, the other checks run and the test exits 77 (skipped) at the end.
#
#   bash tests/scripts/output_files.sh GRADC_BINARY SOURCE_ROOT
set -uo pipefail

GRADC=${1:?usage: output_files.sh GRADC_BINARY SOURCE_ROOT}
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
[[ -c /dev/full && -w /dev/full ]] || { echo "SKIP: /dev/full (a character device) is needed"; exit 77; }

TMP=$(mktemp -d)
# shellcheck source=lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
trap 'rm -rf "$TMP"' EXIT
cd "$SRC"
# full NAME CMD...: CMD with its standard output on /dev/full exits 1 and says so
full() {
    local name=$1 rc; shift
    "$@" >/dev/full 2>"$TMP/err"; rc=$?
    if [[ $rc == 1 ]] && grep -Eq "(standard output|stdout).*No space left on device" "$TMP/err"; then
        ok "stdout full: $name"
    else bad "stdout full: $name: exit $rc, stderr: $(head -c 300 "$TMP/err")"; fi
}
no_tmp() { ! ls -a "$1" | grep -q '\.tmp'; }

MINI=models/gpt-mini.json
SMALL=(--set n_layers=1 --set emb_dim=32 --set n_heads=2 --set vocab_size=96)

# ---------------------------------------------------------------- FIFOs and devices
# into NAME CMD...: CMD writes -o "$TMP/fifo" while cat reads it; the FIFO stays one
into() {
    local name=$1; shift
    rm -f "$TMP/fifo" "$TMP/fifo.out"
    mkfifo "$TMP/fifo"
    cat "$TMP/fifo" >"$TMP/fifo.out" &
    local reader=$! rc
    "$@" >"$TMP/into.log" 2>&1; rc=$?
    [[ -p $TMP/fifo ]] || kill "$reader" 2>/dev/null  # replaced: nobody will write to it
    wait "$reader" 2>/dev/null
    if [[ $rc == 0 && -p $TMP/fifo && -s $TMP/fifo.out ]]; then ok "FIFO stays a FIFO: $name"
    else bad "FIFO stays a FIFO: $name (exit $rc, $(stat -c %F "$TMP/fifo"), $(head -c 200 "$TMP/into.log"))"; fi
}
"$GRADC" dump "$MINI" >"$TMP/mini.gir"
into "dump -o" "$GRADC" dump "$MINI" -o "$TMP/fifo"
check "dump -o FIFO: the reader got the IR" cmp -s "$TMP/fifo.out" "$TMP/mini.gir"
into "opt -o" "$GRADC" opt "$TMP/mini.gir" --passes=cse -o "$TMP/fifo"
into "dot -o" "$GRADC" dot "$MINI" -o "$TMP/fifo"
into "dump --stage=llvm -o" "$GRADC" dump "$MINI" "${SMALL[@]}" --stage=llvm -o "$TMP/fifo"
printf 'step,tokens_seen,train_loss,val_loss\n0,100,5.0,5.1\n1,200,4.0,4.2\n' >"$TMP/log.csv"
into "plot -o" "$GRADC" plot "$TMP/log.csv" -o "$TMP/fifo"

if mknod "$TMP/null" c 1 3 2>/dev/null; then
    "$GRADC" dump "$MINI" -o "$TMP/null"
    check "dump -o onto a device node: still a character device" test -c "$TMP/null"
    "$GRADC" plot "$TMP/log.csv" -o "$TMP/null"
    check "plot -o onto a device node: still a character device" test -c "$TMP/null"
else
    echo "skip device node: mknod is not allowed here (FIFOs cover the same code)"
    skipped=$((skipped + 1))
fi
check "no temporary files left" no_tmp "$TMP"

# ---------------------------------------------------------------- regular files and links
"$GRADC" dump "$MINI" -o "$TMP/a.gir" && echo old >"$TMP/target.gir" &&
    ln -s target.gir "$TMP/link.gir" && "$GRADC" dump "$MINI" -o "$TMP/link.gir"
check "-o through a symbolic link: still a link" test -L "$TMP/link.gir"
check "-o through a symbolic link: the target is replaced" cmp -s "$TMP/target.gir" "$TMP/a.gir"
check "no temporary files left" no_tmp "$TMP"
# a device node of our own: a gradc that renamed over it must not take the system's /dev/full
if mknod "$TMP/full" c 1 7 2>/dev/null; then
    refuse "dump -o onto a full device" "No space left on device" "$GRADC" dump "$MINI" -o "$TMP/full"
    refuse "plot -o onto a full device" "No space left on device" "$GRADC" plot "$TMP/log.csv" -o "$TMP/full"
    check "the full device is still a device" test -c "$TMP/full"
fi
refuse "dump -o a folder" "it is a folder" "$GRADC" dump "$MINI" -o "$TMP"

# ---------------------------------------------------------------- standard output
full "check" "$GRADC" check "$MINI"
full "plan" "$GRADC" plan "$MINI" "${SMALL[@]}" --batch 1 --seq 8
full "dump" "$GRADC" dump "$MINI"
full "opt" "$GRADC" opt "$TMP/mini.gir"
full "dot" "$GRADC" dot "$MINI"
full "tokenize" "$GRADC" tokenize --tokenizer char "$TMP/log.csv"
full "--help" "$GRADC" check --help
tr -cd '\n -~' <docs/training.md | head -c 20000 >"$TMP/text.txt"
"$GRADC" train "$MINI" "${SMALL[@]}" --tokenizer char --data "$TMP/text.txt" --seq 16 \
    --batch 2 --steps 1 --eval-every 0 --quiet --out "$TMP/run" >/dev/null 2>"$TMP/train.err" ||
    bad "a one-step training run: $(head -c 300 "$TMP/train.err")"
full "generate" "$GRADC" generate "$TMP/run/ckpt.safetensors" --prompt "The" --max-new 4
full "run" "$GRADC" run "$MINI" "${SMALL[@]}" --batch 1 --seq 8

# train's own files onto devices: written in place, the run ends normally
if [[ -c $TMP/null ]]; then
    "$GRADC" train "$MINI" "${SMALL[@]}" --tokenizer char --data "$TMP/text.txt" --seq 16 \
        --batch 2 --steps 2 --eval-every 1 --quiet --ckpt "$TMP/null" --csv "$TMP/null" \
        --plot "$TMP/null" --out "$TMP/run2" >"$TMP/dev.log" 2>&1
    rc=$?
    check "train --ckpt/--csv/--plot onto a device: exit 0, still a device" \
        bash -c "[[ $rc == 0 && -c '$TMP/null' ]]"
fi

checks_done
